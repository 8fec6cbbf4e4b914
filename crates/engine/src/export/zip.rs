//! Zip output of `export`, for sharing with people on other systems.
//!
//! What zip carries: directories and regular files (deflated; zip64 for files of 4 GiB and
//! more), symlinks as Unix symlink entries, the permission bits in the external attributes, the
//! modification time (the DOS field, in local time and to 2 seconds, and exactly to the second in
//! the Info-ZIP extended timestamp field), and numeric owners in the Info-ZIP Unix field
//! (`unzip -X` restores them). What it cannot carry, and so is reported once per kind in the
//! summary: extended attributes and ACLs, setuid/setgid/sticky bits (the `zip` crate keeps only
//! the permission bits), atime and nanoseconds, FIFOs and devices (left out),
//! hardlinks (stored as separate copies), holes (stored as zeros, which deflate squeezes), and
//! names that are not UTF-8 (stored with U+FFFD in place of the bad bytes).

use super::{stream_content, ExportOptions, ExportOutput, ExportSummary, ExportWarning, Walk};
use crate::{Error, Repository, Result};
use chrono::{Datelike, TimeZone, Timelike};
use snapguard_format::{Node, NodeKind};
use std::collections::HashSet;
use std::io::{Seek, Write};
use zip::write::{FileOptions, FullFileOptions};
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Info-ZIP extended timestamp extra field ("UT").
const EXTENDED_TIMESTAMP: u16 = 0x5455;
/// Info-ZIP Unix extra field, third version ("ux"): uid and gid.
const INFOZIP_UNIX: u16 = 0x7875;
/// Files this large need zip64 records.
const ZIP64_FROM: u64 = 0xFFFF_FFFF;

pub(super) fn export_zip(
    repo: &Repository,
    walk: &mut Walk,
    out: ExportOutput,
    opts: &ExportOptions,
) -> Result<ExportSummary> {
    match out {
        ExportOutput::File(f) => write_file(repo, walk, f, opts),
        ExportOutput::Stream(s) => {
            // The zip crate's streaming mode marks directories as followed by a data
            // descriptor it never writes, which unzip rejects ("overlapped components"); so the
            // archive is built in an unnamed temporary file and then copied out.
            let mut tmp = anonymous_temp_file()
                .map_err(|e| Error::io(std::env::temp_dir().join("(zip export)"), e))?;
            let summary = write_file(repo, walk, &mut tmp, opts)?;
            tmp.seek(std::io::SeekFrom::Start(0))
                .and_then(|_| std::io::copy(&mut tmp, s))
                .and_then(|_| s.flush())
                .map_err(|e| Error::io("the archive output", e))?;
            Ok(summary)
        }
    }
}

fn write_file(
    repo: &Repository,
    walk: &mut Walk,
    f: &mut std::fs::File,
    opts: &ExportOptions,
) -> Result<ExportSummary> {
    let zw = ZipWriter::new(std::io::BufWriter::with_capacity(1 << 20, f));
    let (zw, summary) = write_all(repo, walk, zw, opts)?;
    let mut inner = zw.finish().map_err(zip_error)?;
    inner
        .flush()
        .map_err(|e| Error::io("the archive output", e))?;
    Ok(summary)
}

/// A temporary file with no name (`O_TMPFILE`; where the file system lacks it, a named file
/// removed at once).
fn anonymous_temp_file() -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let dir = std::env::temp_dir();
    match rustix::fs::open(
        &dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => Ok(std::fs::File::from(fd)),
        Err(_) => {
            let path = dir.join(format!(
                ".snapguard-zip-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(f)
        }
    }
}

fn rand_suffix() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}

fn zip_error(e: zip::result::ZipError) -> Error {
    match e {
        zip::result::ZipError::Io(cause) => Error::io("the archive output", cause),
        other => Error::Internal(format!("writing the zip archive: {other}")),
    }
}

/// What zip could not keep, each reported once with a count.
#[derive(Default)]
struct Losses {
    xattrs: (u64, Option<String>),
    mode_bits: (u64, Option<String>),
    special: (u64, Option<String>),
    hardlinks: (u64, Option<String>),
    names: (u64, Option<String>),
    times: (u64, Option<String>),
}

fn note(slot: &mut (u64, Option<String>), path: &str) {
    slot.0 += 1;
    slot.1.get_or_insert_with(|| path.to_string());
}

fn write_all<W: Write + Seek>(
    repo: &Repository,
    walk: &mut Walk,
    mut zw: ZipWriter<W>,
    opts: &ExportOptions,
) -> Result<(ZipWriter<W>, ExportSummary)> {
    let mut summary = ExportSummary::default();
    let mut losses = Losses::default();
    let mut used: HashSet<String> = HashSet::new();
    let mut linked: HashSet<(u64, u64)> = HashSet::new();
    let progress = opts.progress.as_deref();
    while let Some((path, node)) = walk.next_node()? {
        let shown = String::from_utf8_lossy(&path).into_owned();
        if path == b"." {
            // A folder's own metadata has no place in a zip archive.
            continue;
        }
        if let Some(p) = progress {
            p.set_current(&shown);
        }
        if !node.xattrs.is_empty() {
            note(&mut losses.xattrs, &shown);
        }
        if node.mode & 0o7000 != 0 && node.kind != NodeKind::Symlink {
            note(&mut losses.mode_bits, &shown);
        }
        if matches!(
            node.kind,
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice
        ) {
            note(&mut losses.special, &shown);
            summary.other += 1;
            continue;
        }
        if std::str::from_utf8(&path).is_err()
            || (node.kind == NodeKind::Symlink && std::str::from_utf8(&node.link_target).is_err())
        {
            note(&mut losses.names, &shown);
        }
        let name = unique_name(&mut used, shown.clone(), node.kind == NodeKind::Dir);
        if name != shown && std::str::from_utf8(&path).is_ok() {
            note(&mut losses.names, &shown);
        }
        let options = entry_options(&node, &mut losses, &shown)?;
        match node.kind {
            NodeKind::Dir => {
                zw.add_directory(name, options).map_err(zip_error)?;
                summary.dirs += 1;
            }
            NodeKind::Symlink => {
                let target = String::from_utf8_lossy(&node.link_target).into_owned();
                zw.add_symlink(name, target, options).map_err(zip_error)?;
                summary.other += 1;
            }
            NodeKind::File => {
                if node.nlink > 1 && node.inode != 0 && !linked.insert((node.device, node.inode)) {
                    note(&mut losses.hardlinks, &shown);
                }
                zw.start_file(name, options).map_err(zip_error)?;
                summary.bytes += stream_content(repo, &node, &path, true, progress, &mut |d| {
                    zw.write_all(d)
                        .map_err(|e| Error::io("the archive output", e))
                })?;
                summary.files += 1;
                if let Some(p) = progress {
                    p.add_files(1);
                }
            }
            _ => {}
        }
    }
    let mut report = |slot: &(u64, Option<String>), what: &str| {
        if let (n, Some(first)) = slot {
            summary.warnings.push(ExportWarning {
                path: first.clone(),
                message: format!(
                    "{what} ({n} entr{} in all)",
                    if *n == 1 { "y" } else { "ies" }
                ),
            });
        }
    };
    report(
        &losses.xattrs,
        "extended attributes and ACLs cannot be stored in a zip archive and were left out",
    );
    report(
        &losses.mode_bits,
        "setuid, setgid and sticky bits cannot be stored in this zip archive and were left out",
    );
    report(
        &losses.special,
        "FIFOs and device files cannot be stored in a zip archive and were left out",
    );
    report(
        &losses.hardlinks,
        "hardlinks cannot be stored in a zip archive; they are separate copies",
    );
    report(
        &losses.names,
        "names that are not valid UTF-8 (or clash once made valid) were changed",
    );
    report(
        &losses.times,
        "modification times outside 1980-2107 were clamped in the DOS field (and outside 1901-2038 have no exact timestamp)",
    );
    Ok((zw, summary))
}

/// The name an entry gets: lossy UTF-8, made unique with a ` (N)` suffix if needed.
fn unique_name(used: &mut HashSet<String>, name: String, dir: bool) -> String {
    let key = |n: &str| if dir { format!("{n}/") } else { n.to_string() };
    if used.insert(key(&name)) {
        return name;
    }
    let mut i = 2;
    loop {
        let candidate = format!("{name} ({i})");
        if used.insert(key(&candidate)) {
            return candidate;
        }
        i += 1;
    }
}

/// Compression, permissions, times and owners of one entry.
fn entry_options<'k>(node: &Node, losses: &mut Losses, shown: &str) -> Result<FullFileOptions<'k>> {
    let mut o: FullFileOptions<'k> = FileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(node.mode)
        .large_file(node.kind == NodeKind::File && node.size >= ZIP64_FROM);
    let (dos, clamped) = dos_time(node.mtime.secs);
    o = o.last_modified_time(dos);
    match i32::try_from(node.mtime.secs) {
        Ok(secs) => {
            let mut ut = vec![1u8];
            ut.extend_from_slice(&secs.to_le_bytes());
            o.add_extra_data(EXTENDED_TIMESTAMP, ut.into_boxed_slice(), false)
                .map_err(zip_error)?;
            if clamped {
                note(&mut losses.times, shown);
            }
        }
        Err(_) => note(&mut losses.times, shown),
    }
    let mut ux = vec![1u8, 4];
    ux.extend_from_slice(&node.uid.to_le_bytes());
    ux.push(4);
    ux.extend_from_slice(&node.gid.to_le_bytes());
    o.add_extra_data(INFOZIP_UNIX, ux.into_boxed_slice(), false)
        .map_err(zip_error)?;
    Ok(o)
}

/// The DOS date and time (local time, even seconds) of a Unix time, clamped to 1980-2107;
/// true if it had to be clamped.
fn dos_time(secs: i64) -> (DateTime, bool) {
    let min = DateTime::from_date_and_time(1980, 1, 1, 0, 0, 0).unwrap_or_default();
    let max = DateTime::from_date_and_time(2107, 12, 31, 23, 59, 58).unwrap_or_default();
    let Some(local) = chrono::Local.timestamp_opt(secs, 0).earliest() else {
        return (if secs < 0 { min } else { max }, true);
    };
    if local.year() < 1980 {
        return (min, true);
    }
    if local.year() > 2107 {
        return (max, true);
    }
    let dt = DateTime::from_date_and_time(
        local.year() as u16,
        local.month() as u8,
        local.day() as u8,
        local.hour() as u8,
        local.minute() as u8,
        local.second() as u8,
    );
    match dt {
        Ok(d) => (d, false),
        Err(_) => (min, true),
    }
}
