//! The local-disk backend.
//!
//! Writes go to a temporary file in the destination directory, are fsynced, then hard-linked to
//! the final name (which fails if it exists, giving write-once semantics on every Linux
//! filesystem), the temporary is unlinked and the directory fsynced. A crash leaves at most a
//! `.tmp-*` file, which `list` ignores.

use crate::{Backend, BackendError, FileType, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A repository in a local directory.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, t: FileType, name: &str) -> PathBuf {
        self.root.join(t.path(name))
    }

    fn err(&self, path: &Path, e: std::io::Error) -> BackendError {
        BackendError::from_io(path.display().to_string(), e)
    }
}

/// A fresh temporary name in `dir` (random, so leftovers of crashed writers never collide).
fn temp_name(dir: &Path) -> PathBuf {
    let mut suffix = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut suffix);
    dir.join(format!(".tmp-{}", hex::encode(suffix)))
}

/// Create `tmp` (which must not exist) with `data`, fsynced.
fn write_durable(tmp: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Give the complete temporary file its final name without ever replacing an existing file:
/// a hard link where the filesystem has them, else `renameat2(RENAME_NOREPLACE)`, else (for
/// filesystems that have neither, such as FAT/exFAT) a check for the name followed by a rename,
/// which is only safe against other writers of the same name because names are content or
/// random ids.
fn publish(tmp: &Path, path: &Path) -> std::io::Result<()> {
    use rustix::io::Errno;
    match fs::hard_link(tmp, path) {
        Ok(()) => return Ok(()),
        Err(e)
            if !matches!(
                Errno::from_io_error(&e),
                Some(Errno::PERM | Errno::NOTSUP | Errno::MLINK | Errno::NOSYS)
            ) =>
        {
            return Err(e)
        }
        Err(_) => {}
    }
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        tmp,
        rustix::fs::CWD,
        path,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {
            if path.exists() {
                return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
            }
            fs::rename(tmp, path)
        }
        Err(e) => Err(e.into()),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<()> {
        let config = self.root.join("config");
        if config.exists() {
            return Err(BackendError::AlreadyExists {
                path: config.display().to_string(),
            });
        }
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for t in FileType::ALL {
            let dir = self.root.join(t.dir());
            builder.create(&dir).map_err(|e| self.err(&dir, e))?;
        }
        Ok(())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let path = self.full(t, name);
        fs::read(&path).map_err(|e| self.err(&path, e))
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.full(t, name);
        let mut f = File::open(&path).map_err(|e| self.err(&path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| self.err(&path, e))?;
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        f.take(len)
            .read_to_end(&mut buf)
            .map_err(|e| self.err(&path, e))?;
        if buf.len() as u64 != len {
            return Err(BackendError::ShortRead {
                path: path.display().to_string(),
                offset,
                expected: len,
                found: buf.len() as u64,
            });
        }
        Ok(buf)
    }

    fn size(&self, t: FileType, name: &str) -> Result<u64> {
        let path = self.full(t, name);
        Ok(fs::metadata(&path).map_err(|e| self.err(&path, e))?.len())
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        let path = self.full(t, name);
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| self.err(&dir, e))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent).map_err(|e| self.err(parent, e))?;
            }
        }
        let tmp = temp_name(&dir);
        let result = write_durable(&tmp, data).and_then(|()| publish(&tmp, &path));
        // Whatever happened, the temporary name must go; the final name (if linked) stays.
        let _ = fs::remove_file(&tmp);
        result.map_err(|e| self.err(&path, e))?;
        sync_dir(&dir).map_err(|e| self.err(&dir, e))?;
        tracing::trace!(path = %path.display(), len = data.len(), "wrote");
        Ok(())
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        if t == FileType::Config {
            if let Ok(m) = fs::metadata(self.root.join("config")) {
                out.push(("config".to_string(), m.len()));
            }
            return Ok(out);
        }
        let dir = self.root.join(t.dir());
        // A missing directory (e.g. an empty one not kept by a copy tool) holds no files.
        if !dir.exists() {
            return Ok(out);
        }
        let mut dirs = vec![dir.clone()];
        if t == FileType::Pack {
            dirs.clear();
            for entry in fs::read_dir(&dir).map_err(|e| self.err(&dir, e))? {
                let entry = entry.map_err(|e| self.err(&dir, e))?;
                if entry.file_type().map(|ft| ft.is_dir()).unwrap_or(false) {
                    dirs.push(entry.path());
                }
            }
        }
        for d in dirs {
            for entry in fs::read_dir(&d).map_err(|e| self.err(&d, e))? {
                let entry = entry.map_err(|e| self.err(&d, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    // Removed between reading the directory and looking at it (a lock
                    // released by another process): it is not there any more.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(self.err(&entry.path(), e)),
                };
                if meta.is_file() {
                    out.push((name, meta.len()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn replace_config(&self, data: &[u8]) -> Result<()> {
        let path = self.root.join("config");
        let tmp = temp_name(&self.root);
        let result = write_durable(&tmp, data).and_then(|()| fs::rename(&tmp, &path));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| self.err(&path, e))?;
        sync_dir(&self.root).map_err(|e| self.err(&self.root, e))
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        let path = self.full(t, name);
        fs::remove_file(&path).map_err(|e| self.err(&path, e))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(|e| self.err(dir, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files that disappear while a listing runs (locks released by other processes) are left
    /// out, never an error.
    #[test]
    fn listing_while_files_vanish_never_fails() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| BackendError::Io {
            path: "tmp".into(),
            source: e,
        })?;
        let b = std::sync::Arc::new(LocalBackend::new(dir.path().join("repo")));
        b.create()?;
        const FILES: u64 = 500;
        for i in 0..FILES {
            b.write(FileType::Lock, &format!("{i:064x}"), b"lock")?;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (b, stop) = (b.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = format!("{:064x}", i % FILES);
                    let _ = b.remove(FileType::Lock, &name);
                    let _ = b.write(FileType::Lock, &name, b"lock");
                    i += 1;
                }
            })
        };
        let started = std::time::Instant::now();
        let mut result = Ok(());
        while started.elapsed() < std::time::Duration::from_millis(500) && result.is_ok() {
            result = b.list(FileType::Lock).map(|_| ());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = churn.join();
        result
    }

    #[test]
    fn write_once_read_list_remove() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| BackendError::Io {
            path: "tmp".into(),
            source: e,
        })?;
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create()?;
        let name = "ab".repeat(32);
        b.write(FileType::Pack, &name, b"hello world")?;
        assert!(matches!(
            b.write(FileType::Pack, &name, b"other"),
            Err(BackendError::AlreadyExists { .. })
        ));
        assert_eq!(b.read(FileType::Pack, &name)?, b"hello world");
        assert_eq!(b.read_range(FileType::Pack, &name, 6, 5)?, b"world");
        assert!(matches!(
            b.read_range(FileType::Pack, &name, 6, 50),
            Err(BackendError::ShortRead { .. })
        ));
        assert_eq!(b.list(FileType::Pack)?, vec![(name.clone(), 11)]);
        assert_eq!(b.size(FileType::Pack, &name)?, 11);
        b.remove(FileType::Pack, &name)?;
        assert!(matches!(
            b.read(FileType::Pack, &name),
            Err(BackendError::NotFound { .. })
        ));
        assert!(b.list(FileType::Pack)?.is_empty());
        // no temporary files are left behind
        let leftovers = std::fs::read_dir(dir.path().join("repo/data/ab"))
            .map_err(|e| BackendError::Io {
                path: "ls".into(),
                source: e,
            })?
            .count();
        assert_eq!(leftovers, 0);
        Ok(())
    }

    #[test]
    fn create_refuses_existing_repository() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| BackendError::Io {
            path: "tmp".into(),
            source: e,
        })?;
        let b = LocalBackend::new(dir.path());
        b.create()?;
        b.write(FileType::Config, "config", b"x")?;
        assert!(matches!(
            b.create(),
            Err(BackendError::AlreadyExists { .. })
        ));
        Ok(())
    }
}
