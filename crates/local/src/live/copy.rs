//! Copying single filesystem entries with all their metadata, for live-mode commit: regular
//! files (contents by [`crate::content`]: a reflink, else a sparse-aware copy), directories, symlinks, device nodes, FIFOs and
//! sockets; owner, mode, extended attributes (ACLs among them) and times with nanoseconds.
//!
//! OverlayFS keeps its own bookkeeping in `trusted.overlay.*` attributes of the upper layer
//! (whiteouts, opaque and redirected directories, origins); those are never copied. Nothing
//! here follows a symlink. Every failure is an error naming the path: a commit that cannot
//! reproduce an entry exactly must not produce a snapshot.

use crate::{Error, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps, CWD};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The prefix of the extended attributes OverlayFS sets on its upper layer for itself.
pub(crate) const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// Whether an extended attribute belongs to OverlayFS rather than to the file.
pub(crate) fn is_overlay_private(name: &[u8]) -> bool {
    name.starts_with(OVERLAY_XATTR_PREFIX)
}

/// The file type of a `stat`.
pub(crate) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

pub(crate) fn lstat(path: &Path) -> Result<Stat> {
    rustix::fs::lstat(path).map_err(|e| Error::io("stat", path, e.into()))
}

/// `lstat`, or `None` when nothing is at `path`.
pub(crate) fn lstat_opt(path: &Path) -> Result<Option<Stat>> {
    match rustix::fs::lstat(path) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::io("stat", path, e.into())),
    }
}

/// One extended attribute: its value, or `None` when the file does not have it.
pub(crate) fn get_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(Errno::NODATA) | Err(Errno::NOTSUP) => Ok(None),
        Err(e) => Err(Error::io("read extended attributes of", path, e.into())),
    }
}

/// Remembers which copied inodes have more than one name, so further names become hard links
/// to the first copy instead of separate files.
#[derive(Default)]
pub(crate) struct Links {
    first: HashMap<(u64, u64), PathBuf>,
}

/// Remove whatever is at `path` (a whole tree for a directory; never following symlinks).
/// Returns whether something was there.
pub(crate) fn remove_path(path: &Path) -> Result<bool> {
    let Some(st) = lstat_opt(path)? else {
        return Ok(false);
    };
    let res = if file_type(&st) == FileType::Directory {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    res.map_err(|e| Error::io("remove", path, e))?;
    Ok(true)
}

/// Create `dst` (which must not exist) as a copy of the non-directory `src`, whose `lstat` is
/// `st`, with all its metadata. A further name of an inode already copied through `links`
/// becomes a hard link to that copy.
pub(crate) fn copy_entry(src: &Path, st: &Stat, dst: &Path, links: &mut Links) -> Result<()> {
    let ft = file_type(st);
    if matches!(ft, FileType::Directory | FileType::Unknown) {
        return Err(Error::io(
            "copy",
            src,
            std::io::Error::other("not a file, symlink or special file"),
        ));
    }
    let key = (st.st_dev, st.st_ino);
    if st.st_nlink > 1 {
        if let Some(first) = links.first.get(&key) {
            return std::fs::hard_link(first, dst)
                .map_err(|e| Error::io("create hard link", dst, e));
        }
    }
    match ft {
        FileType::RegularFile => copy_file(src, st, dst)?,
        FileType::Symlink => {
            let target = std::fs::read_link(src).map_err(|e| Error::io("read symlink", src, e))?;
            std::os::unix::fs::symlink(&target, dst)
                .map_err(|e| Error::io("create symlink", dst, e))?;
        }
        // Device nodes, FIFOs and sockets (directories were refused above).
        _ => {
            rustix::fs::mknodat(CWD, dst, ft, Mode::from_raw_mode(0o600), st.st_rdev)
                .map_err(|e| Error::io("create special file", dst, e.into()))?;
        }
    }
    copy_metadata(src, st, dst)?;
    if st.st_nlink > 1 {
        links.first.insert(key, dst.to_path_buf());
    }
    Ok(())
}

/// Copy the directory tree `src` to `dst` (which must not exist), entries and metadata, with
/// hard links inside the tree kept as hard links. Returns the number of entries copied.
pub(crate) fn copy_tree(src: &Path, dst: &Path, links: &mut Links) -> Result<u64> {
    let st = lstat(src)?;
    std::fs::create_dir(dst).map_err(|e| Error::io("create directory", dst, e))?;
    let mut count = 1;
    for name in read_dir_sorted(src)? {
        let s = src.join(&name);
        let d = dst.join(&name);
        let cst = lstat(&s)?;
        if file_type(&cst) == FileType::Directory {
            count += copy_tree(&s, &d, links)?;
        } else {
            copy_entry(&s, &cst, &d, links)?;
            count += 1;
        }
    }
    // Last, so that creating the children does not change the directory's times again.
    copy_metadata(src, &st, dst)?;
    Ok(count)
}

/// The names in a directory, sorted (so commits are deterministic).
pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let names = snapguard_engine::fsmeta::read_dir_names(dir, true)
        .map_err(|e| Error::io("read directory", dir, e))?;
    let mut names: Vec<PathBuf> = names
        .into_iter()
        .map(|n| PathBuf::from(OsStr::from_bytes(&n)))
        .collect();
    names.sort();
    Ok(names)
}

/// Make the metadata of `dst` equal that of `src` (whose `lstat` is `st`): owner, extended
/// attributes (removing those `dst` has and `src` has not; never OverlayFS's own), mode, and
/// access and modification times with nanoseconds. The order matters: `chown` clears setuid
/// bits and file capabilities, setting an ACL changes the group bits of the mode, and every
/// change updates the times.
pub(crate) fn copy_metadata(src: &Path, st: &Stat, dst: &Path) -> Result<()> {
    let is_link = file_type(st) == FileType::Symlink;
    rustix::fs::chownat(
        CWD,
        dst,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::io("set the owner of", dst, e.into()))?;

    let wanted: Vec<_> = snapguard_engine::fsmeta::read_xattrs(src)
        .map_err(|e| Error::io("read extended attributes of", src, e))?
        .into_iter()
        .filter(|x| !is_overlay_private(&x.name))
        .collect();
    let present = snapguard_engine::fsmeta::read_xattrs(dst)
        .map_err(|e| Error::io("read extended attributes of", dst, e))?;
    for x in present {
        if !wanted.iter().any(|w| w.name == x.name) {
            rustix::fs::lremovexattr(dst, OsStr::from_bytes(&x.name))
                .map_err(|e| Error::io("remove an extended attribute of", dst, e.into()))?;
        }
    }
    for x in &wanted {
        rustix::fs::lsetxattr(
            dst,
            OsStr::from_bytes(&x.name),
            &x.value,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|e| {
            Error::io(
                "set an extended attribute of",
                dst,
                std::io::Error::other(format!("{}: {e}", String::from_utf8_lossy(&x.name))),
            )
        })?;
    }

    if !is_link {
        rustix::fs::chmodat(
            CWD,
            dst,
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| Error::io("set the mode of", dst, e.into()))?;
    }
    #[allow(clippy::unnecessary_cast)]
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as i64,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as i64,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    rustix::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| Error::io("set the times of", dst, e.into()))?;
    Ok(())
}

fn copy_file(src: &Path, st: &Stat, dst: &Path) -> Result<()> {
    let from = rustix::fs::open(
        src,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", src, e.into()))?;
    let to = rustix::fs::open(
        dst,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| Error::io("create", dst, e.into()))?;
    let (from, to) = (File::from(from), File::from(to));
    #[allow(clippy::unnecessary_cast)]
    crate::content::copy_content(&from, &to, st.st_size as u64)
        .map_err(|e| Error::io("copy the data to", dst, e))
}
