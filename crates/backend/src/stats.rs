//! Traffic counters: a backend wrapper that counts requests and bytes per [`FileType`].
//!
//! [`CountingBackend`] forwards every call to the backend it wraps and adds to a shared
//! [`BackendStats`]: how many read requests (whole-file and range reads), listings, writes and
//! removes went to each directory, and how many bytes were read and written. It sees the
//! [`Backend`] calls, not the wire: retries inside a remote backend and HTTP overhead are not
//! counted, so the numbers are what SnapGuard asked for. The CLI uses them for the
//! `bytes_downloaded` of summaries and for `SNAPGUARD_BACKEND_STATS` (see docs/remote.md);
//! tests use them to prove that the metadata cache avoids downloads.
//!
//! It counts only calls that succeeded; a failed call is the caller's error to report.

use crate::{Backend, FileType, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters for one [`FileType`].
#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    bytes_read: AtomicU64,
    writes: AtomicU64,
    bytes_written: AtomicU64,
    lists: AtomicU64,
    removes: AtomicU64,
}

/// A copy of the counters of one [`FileType`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeStats {
    /// Read requests (`read`, `read_range`) that succeeded.
    pub reads: u64,
    pub bytes_read: u64,
    /// Files written.
    pub writes: u64,
    pub bytes_written: u64,
    /// Listings of the type's directory.
    pub lists: u64,
    /// Files deleted.
    pub removes: u64,
}

/// Shared counters of a [`CountingBackend`], readable while it is in use.
#[derive(Debug, Default)]
pub struct BackendStats {
    by_type: [Counters; FileType::ALL.len()],
}

fn slot(t: FileType) -> usize {
    match t {
        FileType::Config => 0,
        FileType::Key => 1,
        FileType::Snapshot => 2,
        FileType::Index => 3,
        FileType::Pack => 4,
        FileType::Lock => 5,
        FileType::Annotation => 6,
    }
}

impl BackendStats {
    fn of(&self, t: FileType) -> &Counters {
        &self.by_type[slot(t)]
    }

    /// The counters of one file type so far.
    pub fn get(&self, t: FileType) -> TypeStats {
        let c = self.of(t);
        TypeStats {
            reads: c.reads.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
            removes: c.removes.load(Ordering::Relaxed),
        }
    }

    /// Bytes read from the repository, all types together.
    pub fn bytes_read(&self) -> u64 {
        FileType::ALL.iter().map(|t| self.get(*t).bytes_read).sum()
    }

    /// Bytes written to the repository, all types together.
    pub fn bytes_written(&self) -> u64 {
        FileType::ALL
            .iter()
            .map(|t| self.get(*t).bytes_written)
            .sum()
    }
}

/// A backend that counts the requests and bytes going through it into a [`BackendStats`].
#[derive(Debug)]
pub struct CountingBackend {
    inner: Arc<dyn Backend>,
    stats: Arc<BackendStats>,
}

impl CountingBackend {
    /// Wrap `inner`; [`CountingBackend::stats`] gives the counters.
    pub fn new(inner: Arc<dyn Backend>) -> CountingBackend {
        CountingBackend {
            inner,
            stats: Arc::new(BackendStats::default()),
        }
    }

    /// The counters, shared: they keep counting while the backend is used.
    pub fn stats(&self) -> Arc<BackendStats> {
        self.stats.clone()
    }

    fn read_done(&self, t: FileType, n: usize) {
        let c = self.stats.of(t);
        c.reads.fetch_add(1, Ordering::Relaxed);
        c.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn write_done(&self, t: FileType, n: usize) {
        let c = self.stats.of(t);
        c.writes.fetch_add(1, Ordering::Relaxed);
        c.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl Backend for CountingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let data = self.inner.read(t, name)?;
        self.read_done(t, data.len());
        Ok(data)
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let data = self.inner.read_range(t, name, offset, len)?;
        self.read_done(t, data.len());
        Ok(data)
    }

    fn size(&self, t: FileType, name: &str) -> Result<u64> {
        self.inner.size(t, name)
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write(t, name, data)?;
        self.write_done(t, data.len());
        Ok(())
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let out = self.inner.list(t)?;
        self.stats.of(t).lists.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.inner.remove(t, name)?;
        self.stats.of(t).removes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn replace_config(&self, data: &[u8]) -> Result<()> {
        self.inner.replace_config(data)?;
        self.write_done(FileType::Config, data.len());
        Ok(())
    }

    // Object Lock requests are not counted; the wrapper only passes them through.
    fn object_lock(&self) -> Option<&dyn crate::ObjectLock> {
        self.inner.object_lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBackend;

    #[test]
    fn counts_requests_and_bytes_per_type() {
        let dir = tempfile::tempdir().expect("test");
        let local = Arc::new(LocalBackend::new(dir.path().join("r")));
        let b = CountingBackend::new(local);
        let stats = b.stats();
        b.create().expect("test");
        b.write(FileType::Pack, "aa01", &[1u8; 100]).expect("test");
        b.write(FileType::Snapshot, "bb", &[2u8; 10]).expect("test");
        assert_eq!(
            b.read_range(FileType::Pack, "aa01", 10, 20)
                .expect("test")
                .len(),
            20
        );
        assert_eq!(b.read(FileType::Pack, "aa01").expect("test").len(), 100);
        assert!(b.read(FileType::Pack, "missing").is_err());
        assert_eq!(b.list(FileType::Snapshot).expect("test").len(), 1);
        b.remove(FileType::Snapshot, "bb").expect("test");
        assert_eq!(
            stats.get(FileType::Pack),
            TypeStats {
                reads: 2,
                bytes_read: 120,
                writes: 1,
                bytes_written: 100,
                lists: 0,
                removes: 0,
            }
        );
        assert_eq!(
            stats.get(FileType::Snapshot),
            TypeStats {
                reads: 0,
                bytes_read: 0,
                writes: 1,
                bytes_written: 10,
                lists: 1,
                removes: 1,
            }
        );
        assert_eq!(stats.bytes_read(), 120);
        assert_eq!(stats.bytes_written(), 110);
    }
}
