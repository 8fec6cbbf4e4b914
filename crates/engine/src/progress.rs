//! Progress counters that operations update and front ends render.
//!
//! The engine never prints: it bumps atomic counters here (cheap, lock-free) and front ends
//! (the CLI's progress bar, periodic lines or JSON events; later the daemon's task log) read
//! them on their own schedule. Totals may be unknown at first and filled in later (a backup
//! scans the source tree in parallel with reading it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Shared counters of one running operation.
#[derive(Debug, Default)]
pub struct Progress {
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    totals_known: AtomicBool,
    current: Mutex<String>,
}

/// A consistent-enough copy of the counters.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ProgressSnapshot {
    pub files_done: u64,
    pub bytes_done: u64,
    pub files_total: u64,
    pub bytes_total: u64,
    /// Whether the totals are final (otherwise they are still growing).
    pub totals_known: bool,
    pub current: String,
}

impl Progress {
    pub fn new() -> Progress {
        Progress::default()
    }

    pub fn add_files(&self, n: u64) {
        self.files_done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }

    /// Grow the totals (while scanning).
    pub fn add_totals(&self, files: u64, bytes: u64) {
        self.files_total.fetch_add(files, Ordering::Relaxed);
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Set final totals.
    pub fn set_totals(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.totals_known.store(true, Ordering::Relaxed);
    }

    /// Mark the totals grown with `add_totals` as complete.
    pub fn totals_done(&self) {
        self.totals_known.store(true, Ordering::Relaxed);
    }

    /// What is being worked on (a path, a pack id).
    pub fn set_current(&self, what: &str) {
        if let Ok(mut c) = self.current.try_lock() {
            c.clear();
            c.push_str(what);
        }
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            files_done: self.files_done.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            totals_known: self.totals_known.load(Ordering::Relaxed),
            current: self.current.lock().map(|c| c.clone()).unwrap_or_default(),
        }
    }
}
