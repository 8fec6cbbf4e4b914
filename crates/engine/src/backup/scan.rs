//! A quick parallel scan of the source tree so progress can show totals and an ETA.
//!
//! It only counts regular files and their sizes (with the same excludes and filesystem
//! boundary as the backup), never reads contents, and stops as soon as the backup is done.

use crate::filter::PathFilter;
use crate::progress::Progress;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(crate) struct Scanner {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Scanner {
    pub(crate) fn start(
        paths: Vec<PathBuf>,
        excludes: PathFilter,
        one_fs: bool,
        progress: Arc<Progress>,
    ) -> Scanner {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("scan".into())
            .spawn(move || {
                for p in &paths {
                    let dev = std::fs::symlink_metadata(p).map(|m| m.dev()).unwrap_or(0);
                    scan(p, &excludes, one_fs, dev, &progress, &s);
                }
                if !s.load(Ordering::Relaxed) {
                    progress.totals_done();
                }
            })
            .ok();
        Scanner { stop, handle }
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn scan(
    path: &Path,
    excludes: &PathFilter,
    one_fs: bool,
    dev: u64,
    progress: &Progress,
    stop: &AtomicBool,
) {
    if stop.load(Ordering::Relaxed) {
        return;
    }
    let name = path.file_name().map(|n| n.as_bytes()).unwrap_or(b"");
    if excludes.matches(path.as_os_str().as_bytes(), name) {
        return;
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file() {
        progress.add_totals(1, meta.len());
    } else if meta.is_dir() && (!one_fs || meta.dev() == dev) {
        // Never change the source's access times just to count: skip what cannot be read
        // with O_NOATIME (the totals are then a little low).
        let Ok(names) = crate::fsmeta::read_dir_names(path, false) else {
            return;
        };
        for n in names {
            scan(
                &path.join(std::ffi::OsStr::from_bytes(&n)),
                excludes,
                one_fs,
                dev,
                progress,
                stop,
            );
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}
