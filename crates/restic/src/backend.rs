//! A read-only view of a local restic repository for `rustic_core`.
//!
//! restic's local layout: `config` at the top, `keys/`, `snapshots/`, `index/` and `locks/` with
//! one file per id, and `data/<first two hex digits>/<id>` for packs. Unlike the local backend of
//! `rustic_backend`, a directory that cannot be listed is an error here, not an empty listing:
//! an unreadable `keys/` must not look like a wrong password, nor an unreadable `snapshots/` like
//! a repository without snapshots. Every write is refused: an import never changes the restic
//! repository.

use bytes::Bytes;
use rustic_core::{ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A local restic repository, read-only.
#[derive(Clone, Debug)]
pub(crate) struct LocalRepo {
    path: PathBuf,
}

impl LocalRepo {
    pub(crate) fn new(path: &Path) -> LocalRepo {
        LocalRepo {
            path: path.to_path_buf(),
        }
    }

    fn file(&self, tpe: FileType, id: &Id) -> PathBuf {
        let hex = id.to_hex();
        match tpe {
            FileType::Config => self.path.join("config"),
            FileType::Pack => self
                .path
                .join("data")
                .join(&hex.as_str()[..2])
                .join(hex.as_str()),
            _ => self.path.join(tpe.dirname()).join(hex.as_str()),
        }
    }

    /// Every file of a type with its size (`data/` has one level of subdirectories).
    fn walk(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        let dir = self.path.join(tpe.dirname());
        let mut out = Vec::new();
        let mut dirs = vec![dir.clone()];
        while let Some(d) = dirs.pop() {
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                // restic creates every directory at init, but a repository copied without its
                // empty directories is still readable.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && d == dir => break,
                Err(e) => return Err(io_error("list", &d, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_error("list", &d, e))?;
                let ft = entry
                    .file_type()
                    .map_err(|e| io_error("stat", &entry.path(), e))?;
                if ft.is_dir() && tpe == FileType::Pack && d == dir {
                    dirs.push(entry.path());
                    continue;
                }
                if !ft.is_file() {
                    continue;
                }
                let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<Id>().ok())
                else {
                    // restic ignores what is not named by an id (editor backups, temporary
                    // files of an interrupted upload) and so does the import.
                    continue;
                };
                let len = entry
                    .metadata()
                    .map_err(|e| io_error("stat", &entry.path(), e))?
                    .len();
                let len = u32::try_from(len).map_err(|_| {
                    RusticError::new(
                        ErrorKind::Backend,
                        "`{path}` is larger than restic repository files can be",
                    )
                    .attach_context("path", entry.path().display().to_string())
                })?;
                out.push((id, len));
            }
        }
        Ok(out)
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Box<RusticError> {
    RusticError::with_source(ErrorKind::InputOutput, "cannot {what} `{path}`", e)
        .attach_context("what", what.to_string())
        .attach_context("path", path.display().to_string())
}

impl ReadBackend for LocalRepo {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            let path = self.path.join("config");
            return match std::fs::metadata(&path) {
                Ok(m) => Ok(vec![(Id::default(), u32::try_from(m.len()).unwrap_or(0))]),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(io_error("stat", &path, e)),
            };
        }
        self.walk(tpe)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let path = self.file(tpe, id);
        Ok(std::fs::read(&path)
            .map_err(|e| io_error("read", &path, e))?
            .into())
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        let path = self.file(tpe, id);
        let mut f = File::open(&path).map_err(|e| io_error("open", &path, e))?;
        f.seek(SeekFrom::Start(offset.into()))
            .map_err(|e| io_error("seek in", &path, e))?;
        let mut buf = vec![0u8; length as usize];
        f.read_exact(&mut buf).map_err(|e| {
            RusticError::with_source(
                ErrorKind::InputOutput,
                "cannot read {length} bytes at offset {offset} of `{path}` (truncated pack?)",
                e,
            )
            .attach_context("length", length.to_string())
            .attach_context("offset", offset.to_string())
            .attach_context("path", path.display().to_string())
        })?;
        Ok(buf.into())
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.file(tpe, id).display().to_string()
    }
}

impl WriteBackend for LocalRepo {
    fn create(&self) -> RusticResult<()> {
        Err(refused())
    }

    fn write_bytes(
        &self,
        _tpe: FileType,
        _id: &Id,
        _cacheable: bool,
        _buf: Bytes,
    ) -> RusticResult<()> {
        Err(refused())
    }

    fn remove(&self, _tpe: FileType, _id: &Id, _cacheable: bool) -> RusticResult<()> {
        Err(refused())
    }
}

fn refused() -> Box<RusticError> {
    RusticError::new(
        ErrorKind::Internal,
        "the restic repository is opened read-only for an import; nothing may be written to it",
    )
}
