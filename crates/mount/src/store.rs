//! The repository as the mount reads it: blobs and trees through caches, and background
//! read-ahead of blobs.
//!
//! Blobs are fetched with [`Repository::read_blob`] (one ranged read of the pack, decrypt,
//! decompress, verify the id) and kept in a byte-bounded LRU cache. Read-ahead workers fetch
//! the blobs a sequential reader will need next into the same cache, so a `cp` of a large
//! file overlaps fetching and decrypting with the kernel copying out. Trees are cached by id:
//! unchanged directories have the same tree id in every snapshot, so walking the same path
//! through many snapshots (`history/`) mostly hits the cache.

use crate::cache::{Cache, CacheStats, Weigh};
use crossbeam_channel::{Receiver, Sender};
use snapguard_engine::{Repository, Result};
use snapguard_format::{BlobId, ContentPart, Tree, TreeId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

impl Weigh for Tree {
    fn weight(&self) -> usize {
        // Roughly what a decoded tree holds: a fixed part per node plus names, xattrs and
        // content lists.
        self.nodes
            .iter()
            .map(|n| {
                160 + n.name.len()
                    + n.link_target.len()
                    + n.xattrs
                        .iter()
                        .map(|x| x.name.len() + x.value.len() + 48)
                        .sum::<usize>()
                    + n.content.len() * std::mem::size_of::<ContentPart>()
            })
            .sum::<usize>()
            + 64
    }
}

/// Cache sizes and read-ahead.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Bytes of decrypted blobs kept in memory.
    pub blob_cache_bytes: usize,
    /// Bytes of decoded trees kept in memory (approximately).
    pub tree_cache_bytes: usize,
    /// How far ahead of a sequential reader blobs are fetched, in bytes.
    pub readahead_bytes: u64,
    /// Threads fetching blobs ahead of readers.
    pub readahead_threads: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            blob_cache_bytes: 128 << 20,
            tree_cache_bytes: 32 << 20,
            readahead_bytes: 24 << 20,
            readahead_threads: std::thread::available_parallelism()
                .map(|n| n.get().clamp(2, 4))
                .unwrap_or(2),
        }
    }
}

pub(crate) struct Store {
    repo: RwLock<Repository>,
    blobs: Cache<BlobId, Vec<u8>>,
    trees: Cache<TreeId, Tree>,
    pub(crate) opts: StoreOptions,
}

impl Store {
    pub fn new(repo: Repository, opts: StoreOptions) -> Store {
        Store {
            repo: RwLock::new(repo),
            blobs: Cache::new(opts.blob_cache_bytes),
            trees: Cache::new(opts.tree_cache_bytes),
            opts,
        }
    }

    /// The repository, for reading. Poisoning is ignored: readers never leave it half-changed.
    pub fn repo(&self) -> RwLockReadGuard<'_, Repository> {
        self.repo.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Load the index again (after new snapshots appeared: their blobs are in index files
    /// written after ours was loaded).
    pub fn reload_index(&self) -> Result<()> {
        let mut repo = self.repo.write().unwrap_or_else(|p| p.into_inner());
        repo.load_index()?;
        for e in repo.index_errors() {
            tracing::warn!("{e}; the blobs it lists are unavailable until 'snapguard repair index' rebuilds it");
        }
        Ok(())
    }

    /// One blob's plaintext, checked against `expected_len` (the length the tree records).
    pub fn blob(&self, id: &BlobId, expected_len: u32) -> Result<Arc<Vec<u8>>> {
        let data = self.blobs.get_or_load(*id, || self.repo().read_blob(id))?;
        if data.len() != expected_len as usize {
            return Err(snapguard_engine::Error::Corrupt {
                object: format!("blob {id}"),
                detail: format!(
                    "it holds {} bytes but the file's content list says {expected_len}",
                    data.len()
                ),
            });
        }
        Ok(data)
    }

    pub fn tree(&self, id: &TreeId) -> Result<Arc<Tree>> {
        self.trees.get_or_load(*id, || self.repo().read_tree(id))
    }

    /// Whether a blob is cached or being fetched.
    pub fn blob_pending_or_cached(&self, id: &BlobId) -> bool {
        self.blobs.has(id)
    }

    pub fn blob_stats(&self) -> CacheStats {
        self.blobs.stats()
    }
}

/// Background workers fetching blobs into the cache.
pub(crate) struct Readahead {
    tx: Option<Sender<BlobId>>,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
}

impl Readahead {
    pub fn start(store: &Arc<Store>) -> std::io::Result<Readahead> {
        // A short queue: read-ahead that cannot be queued is simply skipped, and a reader
        // never waits for the queue.
        let (tx, rx) = crossbeam_channel::bounded::<BlobId>(64);
        let mut workers = Vec::new();
        let stopping = Arc::new(AtomicBool::new(false));
        for i in 0..store.opts.readahead_threads.max(1) {
            let (store, rx): (Arc<Store>, Receiver<BlobId>) = (store.clone(), rx.clone());
            let stopping = stopping.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("sg-readahead-{i}"))
                    .spawn(move || {
                        for id in rx {
                            if stopping.load(Ordering::Relaxed) {
                                break;
                            }
                            if store.blob_pending_or_cached(&id) {
                                continue;
                            }
                            // An error here is reported when a reader needs the blob.
                            if let Err(e) =
                                store.blobs.get_or_load(id, || store.repo().read_blob(&id))
                            {
                                tracing::debug!("read-ahead of blob {id}: {e}");
                            }
                        }
                    })?,
            );
        }
        Ok(Readahead {
            tx: Some(tx),
            workers,
            stopping,
        })
    }

    /// Ask for `id` to be fetched; false if the queue is full.
    pub fn request(&self, id: BlobId) -> bool {
        match &self.tx {
            Some(tx) => tx.try_send(id).is_ok(),
            None => false,
        }
    }

    /// Stop the workers; each finishes at most the blob it is fetching.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Readahead {
    fn drop(&mut self) {
        self.stop();
    }
}
