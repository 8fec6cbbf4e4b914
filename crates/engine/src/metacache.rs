//! The metadata cache: sealed copies of snapshot, annotation and tree objects on local disk, so
//! that `snapshots`, `ls`, `versions`, `find`, `diff`, `stats` and the tree walks of `backup`
//! and `restore` do not download them from a remote repository again.
//!
//! What it stores is exactly the bytes the repository holds, still sealed: nothing decrypted
//! is ever written to disk. Every use opens and verifies a cached copy exactly as a fresh read
//! would (AEAD open, then the id hash), and a copy that fails is deleted and read from the
//! repository again; a broken cache is never an error for the user, only a slower run.
//!
//! Layout under the directory given to [`MetaCache::new`] (the CLI uses
//! `CACHE/REPO_ID/meta`, beside the index cache in `CACHE/REPO_ID/index`):
//!
//! - `snapshots/ID`, `annotations/ID`: the whole object file. Both are write-once and small.
//! - `trees/PACK/BLOB`: the sealed bytes of tree blob `BLOB` as stored in pack `PACK`. Tree
//!   blobs share packs with data blobs (the backup pipeline has one packer), so the cache keeps
//!   the blob's byte range rather than packs; the key to open it (pack id, offset, length,
//!   epoch, cipher) comes from the index on every use, so an entry whose blob the index now
//!   places elsewhere (after a repack) is simply not found.
//!
//! What is kept: a snapshot or annotation file only while the repository lists it (entries
//! missing from a listing are deleted when the listing is made), a pack's tree entries only
//! while the index lists that pack (swept after every index load). So the cache never holds
//! more than the repository's live metadata. Writes go to a temporary file and are renamed into
//! place, so concurrent processes see a whole entry or none; a torn entry left by a crash
//! fails verification and is replaced.
//!
//! It does not cache index files (the index cache does that), packs' data blobs, locks, keys or
//! the config, which must always be read fresh.

use crate::index::BlobLocation;
use crate::repo::Repository;
use crate::{Error, Result};
use snapguard_backend::FileType;
use snapguard_format::{BlobId, ObjectKind, PackId};
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// Temporary files older than this are leftovers of a crashed process.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// A repository's metadata cache directory.
#[derive(Debug)]
pub struct MetaCache {
    dir: PathBuf,
    trees: bool,
    /// Set once a write failed, so that a read-only or full disk is reported once per process.
    warned: AtomicBool,
}

impl MetaCache {
    /// A cache in `dir` (created when first written). `trees`: also cache tree blobs; worth it
    /// only for remote repositories, since reading a local pack is as fast as reading the
    /// cache. Snapshot and annotation files are always cached.
    pub fn new(dir: PathBuf, trees: bool) -> MetaCache {
        MetaCache {
            dir,
            trees,
            warned: AtomicBool::new(false),
        }
    }

    /// The same cache for another session (its warning state starts afresh).
    pub fn reopen(&self) -> MetaCache {
        MetaCache::new(self.dir.clone(), self.trees)
    }

    /// The directory of cached whole files of type `t`, if that type is cached.
    fn object_dir(&self, t: FileType) -> Option<PathBuf> {
        match t {
            FileType::Snapshot => Some(self.dir.join("snapshots")),
            FileType::Annotation => Some(self.dir.join("annotations")),
            _ => None,
        }
    }

    fn tree_path(&self, pack: &PackId, blob: &BlobId) -> PathBuf {
        self.dir
            .join("trees")
            .join(pack.to_hex())
            .join(blob.to_string())
    }

    fn get(&self, path: &Path) -> Option<Vec<u8>> {
        match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::debug!("metadata cache: cannot read {}: {e}", path.display());
                None
            }
        }
    }

    /// Store `bytes` at `path` atomically (temporary file, then rename). Failures are logged,
    /// never returned: the cache only saves downloads.
    fn put(&self, path: &Path, bytes: &[u8]) {
        if let Err(e) = write_atomic(path, bytes) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "cannot write to the metadata cache in {}: {e}; metadata will be downloaded again next time",
                    self.dir.display()
                );
            }
        }
    }

    /// Delete an entry that failed verification.
    fn drop_entry(&self, path: &Path, why: &Error) {
        tracing::debug!(
            "metadata cache: dropping {} ({why}); reading it from the repository",
            path.display()
        );
        let _ = std::fs::remove_file(path);
    }

    /// Delete the cached files of type `t` whose names are not in `listed` (the repository's
    /// current listing), and stale temporary files.
    fn retain(&self, t: FileType, listed: &HashSet<&str>) {
        let Some(dir) = self.object_dir(t) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") {
                remove_if_stale(&e.path());
            } else if !listed.contains(name.as_ref()) {
                tracing::debug!("metadata cache: {t:?} {name} is gone from the repository");
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Delete the tree entries of packs for which `live` says no, and stale temporary files:
    /// at the top of `trees/` every time, inside the packs' directories at most once per
    /// [`STALE_TEMP`] (a file has to be that old to be removed anyway, so looking more often
    /// would only cost a directory read per pack). `trees/.swept` records the last time.
    fn sweep_trees(&self, live: impl Fn(&PackId) -> bool) {
        let trees = self.dir.join("trees");
        let Ok(entries) = std::fs::read_dir(&trees) else {
            return;
        };
        let stamp = trees.join(SWEPT_STAMP);
        let inner_due = !is_younger_than(&stamp, STALE_TEMP);
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name == SWEPT_STAMP {
                continue;
            }
            if name.starts_with(".tmp-") {
                remove_if_stale(&e.path());
                continue;
            }
            let keep = PackId::from_hex(&name).is_ok_and(|p| live(&p));
            if !keep {
                tracing::debug!("metadata cache: pack {name} is no longer indexed");
                let _ = std::fs::remove_dir_all(e.path());
            } else if inner_due {
                if let Ok(inner) = std::fs::read_dir(e.path()) {
                    for f in inner.flatten() {
                        if f.file_name().to_string_lossy().starts_with(".tmp-") {
                            remove_if_stale(&f.path());
                        }
                    }
                }
            }
        }
        if inner_due {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&stamp)
                .and_then(|f| f.set_modified(SystemTime::now()));
        }
    }
}

/// The file in `trees/` whose modification time is the last sweep inside the packs' directories.
const SWEPT_STAMP: &str = ".swept";

/// Whether `path` exists and was modified less than `age` ago.
fn is_younger_than(path: &Path, age: Duration) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|a| a < age)
}

fn remove_if_stale(path: &Path) {
    let old = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE_TEMP);
    if old {
        let _ = std::fs::remove_file(path);
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache path without a directory"))?;
    // Like the index cache: directories 0700, files 0600 (the bytes are sealed, but their
    // names and sizes are the repository's business).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut suffix = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut suffix);
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        hex::encode(suffix)
    ));
    let res = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Read and open the whole-file object `t/name` (a snapshot or an annotation) with id `id`:
/// from the cache when a copy there opens and verifies, else from the repository (and then
/// cached). Returns the plaintext.
pub(crate) fn read_object(
    repo: &Repository,
    t: FileType,
    kind: ObjectKind,
    id: &[u8; 32],
    name: &str,
    object: &str,
) -> Result<Vec<u8>> {
    let path = repo
        .meta_cache()
        .and_then(|c| Some((c, c.object_dir(t)?.join(name))));
    if let Some((cache, path)) = &path {
        if let Some(bytes) = cache.get(path) {
            match repo.crypt().open_object(kind, id, &bytes, object) {
                Ok(plain) => return Ok(plain),
                Err(e) => cache.drop_entry(path, &e),
            }
        }
    }
    let bytes = repo.backend().read(t, name).map_err(repo.backend_err())?;
    let plain = repo.crypt().open_object(kind, id, &bytes, object)?;
    if let Some((cache, path)) = &path {
        cache.put(path, &bytes);
    }
    Ok(plain)
}

/// Remember the sealed bytes of an object this process just wrote (a new snapshot), so the
/// next listing does not download it.
pub(crate) fn remember_object(repo: &Repository, t: FileType, name: &str, bytes: &[u8]) {
    if let Some(cache) = repo.meta_cache() {
        if let Some(dir) = cache.object_dir(t) {
            cache.put(&dir.join(name), bytes);
        }
    }
}

/// After listing type `t`: forget cached files the listing no longer has.
pub(crate) fn retain_listed<'a>(
    repo: &Repository,
    t: FileType,
    listed: impl IntoIterator<Item = &'a str>,
) {
    if let Some(cache) = repo.meta_cache() {
        cache.retain(t, &listed.into_iter().collect());
    }
}

/// After loading the index: forget tree entries of packs the index no longer lists (pruned or
/// repacked).
pub(crate) fn sweep_trees(repo: &Repository) {
    if let Some(cache) = repo.meta_cache() {
        cache.sweep_trees(|p| repo.index().pack(p).is_some());
    }
}

/// Read, open and verify the tree blob `id` located at `loc`: from the cache when a copy there
/// opens and verifies, else from its pack (and then cached, when trees are cached).
pub(crate) fn read_tree_blob(
    repo: &Repository,
    id: &BlobId,
    loc: &BlobLocation,
) -> Result<Vec<u8>> {
    let Some(cache) = repo.meta_cache().filter(|c| c.trees) else {
        return repo.read_located(id, loc);
    };
    let path = cache.tree_path(&loc.pack, id);
    if let Some(sealed) = cache.get(&path) {
        match repo.open_located(loc, &sealed) {
            Ok(plain) => return Ok(plain),
            Err(e) => cache.drop_entry(&path, &e),
        }
    }
    let sealed = repo.read_sealed(id, loc)?;
    let plain = repo.open_located(loc, &sealed)?;
    cache.put(&path, &sealed);
    Ok(plain)
}

#[cfg(test)]
mod tests;
