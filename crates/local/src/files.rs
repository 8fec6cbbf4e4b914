//! SnapGuard's own small files beside the snapshots (`info.json`, journals, session records,
//! lock files): written atomically and durably, locked with `flock(2)`, removed without caring
//! whether they are still there. Used by the store, rollback, live mode and replication, so that
//! each of them keeps the same crash-safety rules.
//!
//! It does not know what the files mean; the modules that own them do.

use crate::{Error, Result};
use rustix::fs::FlockOperation;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `v` as pretty JSON with a final newline (how every SnapGuard record is stored).
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(v).map_err(|e| Error::Internal(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

/// Writes `dir/name` atomically and durably: a temporary file `.<name>.tmp`, `fsync`, `rename`,
/// `fsync` of the directory. A crash leaves the old file or the new one, never a mix.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename into place", &dest, e))?;
    fsync_dir(dir)
}

/// `fsync` of a directory, so that the names created, renamed or removed in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io("open", dir, e))?;
    f.sync_all().map_err(|e| Error::io("sync", dir, e))
}

/// Removes the file `path`; nothing there is not an error.
pub(crate) fn remove_file_if_exists(path: &Path) -> Result<()> {
    absent_ok(std::fs::remove_file(path), path)
}

/// Removes the empty directory `path`; nothing there is not an error.
pub(crate) fn remove_dir_if_exists(path: &Path) -> Result<()> {
    absent_ok(std::fs::remove_dir(path), path)
}

/// Removes the directory tree `path`; nothing there is not an error.
pub(crate) fn remove_tree_if_exists(path: &Path) -> Result<()> {
    absent_ok(std::fs::remove_dir_all(path), path)
}

fn absent_ok(r: std::io::Result<()>, path: &Path) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// An exclusive `flock(2)` on a lock file, released when dropped (or when the process dies, so
/// a crash never leaves a lock behind).
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Opens (creating it, mode 0600) the lock file `path` and locks it without waiting:
    /// `None` while another process holds it.
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<FileLock>> {
        let file = open_lock_file(path)?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io("lock", path, e.into())),
        }
    }

    /// The same, but waits as long as another process holds it.
    pub(crate) fn acquire(path: &Path) -> Result<FileLock> {
        let file = open_lock_file(path)?;
        rustix::fs::flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| Error::io("lock", path, e.into()))?;
        Ok(FileLock { _file: file })
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    // std opens with O_CLOEXEC, so a child process (btrfs send) never inherits the lock.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("open the lock file", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_waits_for_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.lock");
        let first = FileLock::try_acquire(&path).expect("lock").expect("free");
        assert!(FileLock::try_acquire(&path).expect("lock").is_none());
        drop(first);
        let _again = FileLock::acquire(&path).expect("lock");
        assert!(FileLock::try_acquire(&path).expect("lock").is_none());
    }

    #[test]
    fn atomic_write_and_tolerant_removal() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(dir.path(), "a.json", &to_json(&[1, 2]).expect("json")).expect("write");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.json")).expect("read"),
            "[\n  1,\n  2\n]\n"
        );
        assert!(!dir.path().join(".a.json.tmp").exists());
        remove_file_if_exists(&dir.path().join("a.json")).expect("remove");
        remove_file_if_exists(&dir.path().join("a.json")).expect("already gone");
        remove_dir_if_exists(&dir.path().join("none")).expect("already gone");
        remove_tree_if_exists(&dir.path().join("none")).expect("already gone");
    }
}
