//! `export` (snapshot → tar or zip archive) and `import tar` (tar archive → snapshot).
//!
//! The archive goes to standard output with `-o -`; then every message, and `--json`'s
//! summary, goes to standard error, so the archive stays clean. An archive written to a file is
//! first written under a temporary name next to it (mode 0600) and renamed when complete, so a
//! failed export never leaves a truncated archive under the requested name.

use crate::args::{ExportArgs, GlobalArgs, ImportCommand, ImportTarArgs};
use crate::commands::{hostname, name_snapshot, open, parse_compression, split_spec, username};
use crate::{exit, render, usage};
use anyhow::{Context, Result};
use serde_json::json;
use snapguard_engine::export::{ExportFormat, ExportOptions, ExportOutput, ExportSummary};
use snapguard_engine::import::IngestOptions;
use snapguard_engine::lock::LockKind;
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub fn export(g: &GlobalArgs, a: &ExportArgs) -> Result<i32> {
    let to_stdout = a.output.as_os_str() == "-";
    let format = match a.format.as_deref() {
        Some("zip") => ExportFormat::Zip,
        Some(_) => ExportFormat::Tar,
        None if a.output.extension().is_some_and(|e| e == "zip") => ExportFormat::Zip,
        None => ExportFormat::Tar,
    };
    if a.inode_numbers && format == ExportFormat::Zip {
        return Err(usage!("--inode-numbers applies to tar archives only"));
    }
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(usage!(
            "refusing to write an archive to a terminal; redirect standard output or give -o FILE"
        ));
    }
    let (repo, _lock) = open(g, LockKind::Shared, "export")?;
    let (spec, sub) = split_spec(&a.snapshot)?;
    let (id, snap) = repo.find_snapshot(&spec)?;
    let display = crate::progress::Display::start(g, "export", "files");
    let opts = ExportOptions {
        format,
        inode_numbers: a.inode_numbers,
        progress: Some(display.progress.clone()),
    };
    let result = if to_stdout {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let r = snapguard_engine::export::export(
            &repo,
            &snap,
            &sub,
            ExportOutput::Stream(&mut out),
            &opts,
        );
        r.and_then(|s| {
            out.flush()
                .map_err(|e| snapguard_engine::Error::Io {
                    path: "standard output".into(),
                    cause: e,
                })
                .map(|()| s)
        })
        .map_err(anyhow::Error::from)
    } else {
        write_file(&a.output, |file| {
            snapguard_engine::export::export(&repo, &snap, &sub, ExportOutput::File(file), &opts)
                .map_err(anyhow::Error::from)
        })
    };
    drop(display);
    let summary = result.map_err(|e| match e.downcast::<snapguard_engine::Error>() {
        Ok(engine) => anyhow::Error::from(name_snapshot(engine, &id)),
        Err(other) => other,
    })?;
    report_export(g, a, to_stdout, &id.short(), format, &summary)
}

/// Write `a.output` through a temporary file in the same directory, renamed into place when
/// `write` succeeds (and removed when it fails). Special files (a FIFO, /dev/null) are written
/// directly.
fn write_file<T>(path: &Path, write: impl FnOnce(&mut std::fs::File) -> Result<T>) -> Result<T> {
    let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file());
    if special {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        return write(&mut f);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".snapguard-{}.partial", std::process::id()));
    let tmp = dir.join(tmp_name);
    // Readable by the owner only, like the repository it was decrypted from.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = write(&mut f).and_then(|v| {
        f.sync_all()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        Ok(v)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn report_export(
    g: &GlobalArgs,
    a: &ExportArgs,
    to_stdout: bool,
    snapshot: &str,
    format: ExportFormat,
    s: &ExportSummary,
) -> Result<i32> {
    for w in &s.warnings {
        eprintln!("note: {}: {}", w.path, w.message);
    }
    let format_name = match format {
        ExportFormat::Tar => "tar",
        ExportFormat::Zip => "zip",
    };
    if g.json {
        let v = json!({
            "snapshot": snapshot,
            "format": format_name,
            "output": a.output,
            "files": s.files,
            "hardlinks": s.hardlinks,
            "dirs": s.dirs,
            "other": s.other,
            "bytes": s.bytes,
            "warnings": s.warnings,
        });
        let text = serde_json::to_string_pretty(&v)?;
        if to_stdout {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    } else if !g.quiet {
        let line = format!(
            "exported {} file(s) ({} as hardlinks), {} dir(s), {} other, {} of content from snapshot {snapshot} as {format_name} to {}",
            s.files,
            s.hardlinks,
            s.dirs,
            s.other,
            render::size(s.bytes),
            if to_stdout {
                "standard output".to_string()
            } else {
                a.output.display().to_string()
            }
        );
        if to_stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(0)
}

pub fn import(g: &GlobalArgs, c: &ImportCommand) -> Result<i32> {
    match c {
        ImportCommand::Tar(a) => import_tar(g, a),
        ImportCommand::Restic(a) => crate::import_restic::import_restic(g, a),
    }
}

fn import_tar(g: &GlobalArgs, a: &ImportTarArgs) -> Result<i32> {
    let base = a.path.as_bytes();
    if !base.starts_with(b"/") || snapguard_tar::name::components(base).is_err() {
        return Err(usage!(
            "--path {:?}: give an absolute path without '..'",
            a.path
        ));
    }
    let from_stdin = a.file.as_os_str() == "-";
    if from_stdin && std::io::stdin().is_terminal() {
        return Err(usage!(
            "refusing to read an archive from a terminal; pipe one in or give a file"
        ));
    }
    let mut file = if from_stdin {
        None
    } else {
        Some(
            std::fs::File::open(&a.file)
                .with_context(|| format!("cannot open {}", a.file.display()))?,
        )
    };
    let (mut repo, _lock) = open(g, LockKind::Shared, "import")?;
    let display = crate::progress::Display::start(g, "import", "files");
    let opts = IngestOptions {
        base: base.to_vec(),
        tags: a.tags.clone(),
        hostname: a.host.clone().unwrap_or_else(hostname),
        username: username(),
        time: match &a.time {
            Some(t) => render::parse_time(t)?,
            None => render::now(),
        },
        compression: a
            .compression
            .as_deref()
            .map(parse_compression)
            .transpose()?,
        threads: a.threads.map(usize::from),
        dry_run: a.dry_run,
        progress: Some(display.progress.clone()),
        program_version: format!("snapguard {}", env!("CARGO_PKG_VERSION")),
    };
    let name = if from_stdin {
        "standard input".to_string()
    } else {
        a.file.display().to_string()
    };
    let result = match &mut file {
        Some(f) => snapguard_engine::import::import_tar(&mut repo, f, &name, opts),
        None => {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            snapguard_engine::import::import_tar(&mut repo, &mut lock, &name, opts)
        }
    };
    drop(display);
    let r = result?;
    let errors = crate::commands::print_warnings(&r.warnings);
    let s = &r.summary;
    if g.json {
        let v = json!({
            "snapshot_id": r.snapshot_id.map(|i| i.to_hex()),
            "tree": r.tree.to_hex(),
            "dry_run": a.dry_run,
            "files": s.files_new,
            "dirs": s.dirs,
            "other_entries": s.other_entries,
            "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added,
            "bytes_stored": s.bytes_stored,
            "blobs_added": s.blobs_added,
            "duration_ms": s.duration_ms,
            "errors": r.warnings.iter().filter(|w| w.error).collect::<Vec<_>>(),
            "notes": r.warnings.iter().filter(|w| !w.error).collect::<Vec<_>>(),
        });
        crate::commands::print_json(&v)?;
    } else {
        if !g.quiet {
            println!(
                "Entries:   {} file(s), {} dir(s), {} other",
                s.files_new, s.dirs, s.other_entries
            );
            println!(
                "Data:      {} read, {} added ({} stored after compression and encryption)",
                render::size(s.bytes_read),
                render::size(s.bytes_added),
                render::size(s.bytes_stored)
            );
        }
        match r.snapshot_id {
            Some(id) => println!("snapshot {} saved", id.short()),
            None => println!("dry run: nothing was written"),
        }
    }
    if errors > 0 {
        eprintln!(
            "warning: {errors} entr{} of the archive could not be imported; the snapshot is incomplete (see above)",
            if errors == 1 { "y" } else { "ies" }
        );
        return Ok(exit::INCOMPLETE_BACKUP);
    }
    Ok(0)
}
