//! Opening, creating and reading a repository.
//!
//! [`probe`] reads the plaintext config header (so "no repository" and "format too new" are
//! reported before any password is asked); [`Repository::open`] unlocks a key slot, opens the
//! config and loads the index. Write order for crash safety is the caller's: packs, then the
//! index that lists them, then the snapshot as the single commit point.

use crate::crypt::Crypt;
use crate::index::Index;
use crate::{Error, Result};
use snapguard_backend::{Backend, BackendError, FileType};
use snapguard_crypto::{
    random_bytes, Argon2Params, Cipher, KeyBundle, KeySlot, SlotMeta, SlotTemplate, Unlocker,
};
use snapguard_format::{
    BlobId, BlobType, ConfigFile, ConfigHeader, FeatureFlags, IndexFile, IndexId, IndexPack,
    ObjectKind, RepoId, SlotId, SnapshotFile, SnapshotId, Timestamp, Tree, TreeId, FORMAT_VERSION,
};
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Feature bits this version understands.
const KNOWN_INCOMPAT: u64 = snapguard_format::INCOMPAT_OBJECT_LOCK;
const KNOWN_RO_COMPAT: u64 = snapguard_format::RO_COMPAT_APPEND_ONLY;

/// A secret that may open a key slot.
pub enum Secret {
    Password(Zeroizing<Vec<u8>>),
    KeyFile(Zeroizing<Vec<u8>>),
}

impl Secret {
    fn unlocker(&self) -> Unlocker<'_> {
        match self {
            Secret::Password(p) => Unlocker::Passphrase(p),
            Secret::KeyFile(k) => Unlocker::KeyFile(k),
        }
    }
    fn template(&self, kdf: Argon2Params) -> SlotTemplate {
        match self {
            Secret::Password(_) => SlotTemplate::Passphrase(kdf),
            Secret::KeyFile(_) => SlotTemplate::KeyFile,
        }
    }
}

/// Options for `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub cipher: Cipher,
    pub kdf: Argon2Params,
    pub now: Timestamp,
    pub hostname: String,
    pub username: String,
    pub compression_level: i32,
    pub pack_target_size: u32,
    /// Average chunk size (a power of two); the minimum is half of it and the maximum eight
    /// times it. None: 1 MiB (512 KiB / 1 MiB / 8 MiB).
    pub chunk_avg: Option<u32>,
    /// Create the repository in append-only mode.
    pub append_only: bool,
}

impl InitOptions {
    /// Settings for tests: a cheap KDF (8 MiB, one pass), AES-256-GCM, a fixed time and host,
    /// packs of `pack_target_size` bytes.
    #[cfg(test)]
    pub(crate) fn for_tests(pack_target_size: u32) -> InitOptions {
        InitOptions {
            cipher: Cipher::Aes256Gcm,
            kdf: Argon2Params {
                memory_kib: 8192,
                iterations: 1,
                parallelism: 1,
            },
            now: Timestamp {
                secs: 1_700_000_000,
                nanos: 0,
            },
            hostname: "h".into(),
            username: "u".into(),
            compression_level: 3,
            pack_target_size,
            chunk_avg: None,
            append_only: false,
        }
    }
}

/// Snapshots with their ids, oldest first.
pub type SnapshotList = Vec<(SnapshotId, SnapshotFile)>;

/// One key slot as listed by [`Repository::key_slots`].
#[derive(Debug)]
pub struct KeySlotInfo {
    pub id: SlotId,
    /// None if this version cannot parse the slot (damaged or newer).
    pub slot: Option<KeySlot>,
    /// None if the slot's metadata cannot be opened with this repository's keys.
    pub meta: Option<SlotMeta>,
}

/// An unlocked repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    crypt: Crypt,
    config: ConfigFile,
    header: ConfigHeader,
    index: Index,
    /// Index files that could not be read by the last `load_index`.
    index_errors: Vec<Error>,
    /// Where the on-disk index segments live (None: the index is kept in memory).
    cache_dir: Option<PathBuf>,
    /// Sealed copies of snapshots, annotations and trees (see [`crate::metacache`]).
    meta_cache: Option<crate::metacache::MetaCache>,
    /// Reads to keep in flight where work can be spread (0: by CPU count).
    read_parallelism: usize,
    /// Freshness of the lock this session holds, checked before every commit point.
    lock_refreshed: std::sync::Mutex<Option<Arc<std::sync::Mutex<std::time::Instant>>>>,
    slot: SlotId,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.backend.location())
    }
}

fn backend_err(backend: &dyn Backend) -> impl Fn(BackendError) -> Error + '_ {
    move |source| Error::Backend {
        location: backend.location(),
        cause: source,
    }
}

/// Read and check the config header of the repository at `backend`.
pub fn probe(backend: &dyn Backend) -> Result<(ConfigHeader, Vec<u8>)> {
    let bytes = match backend.read(FileType::Config, "config") {
        Ok(b) => b,
        Err(BackendError::NotFound { .. }) => {
            return Err(Error::RepositoryNotFound {
                location: backend.location(),
            })
        }
        Err(e) => return Err(backend_err(backend)(e)),
    };
    let header = match ConfigHeader::parse(&bytes) {
        Ok((h, _, _)) => h,
        Err(snapguard_format::FormatError::UnsupportedVersion { version, .. }) => {
            return Err(Error::NewerFormat {
                location: backend.location(),
                detail: format!("repository format version {version} is newer than this SnapGuard supports ({FORMAT_VERSION})"),
            })
        }
        Err(e) => return Err(Error::corrupt(format!("config of {}", backend.location()), e)),
    };
    let unknown = header.features.incompat & !KNOWN_INCOMPAT;
    if unknown != 0 {
        return Err(Error::NewerFormat {
            location: backend.location(),
            detail: format!("the repository uses features this SnapGuard does not know (incompat bits {unknown:#x})"),
        });
    }
    Ok((header, bytes))
}

impl Repository {
    fn assemble(
        backend: Arc<dyn Backend>,
        crypt: Crypt,
        config: ConfigFile,
        header: ConfigHeader,
        slot: SlotId,
    ) -> Repository {
        Repository {
            backend,
            crypt,
            config,
            header,
            index: Index::default(),
            index_errors: Vec::new(),
            cache_dir: None,
            meta_cache: None,
            read_parallelism: 0,
            lock_refreshed: std::sync::Mutex::new(None),
            slot,
        }
    }

    /// Create a new repository with one key slot opened by `secret`.
    pub fn init(
        backend: Arc<dyn Backend>,
        secret: &Secret,
        opts: &InitOptions,
    ) -> Result<Repository> {
        Self::init_with_keys(backend, secret, opts, None)
    }

    /// Create a new repository sharing `from`'s key bundle, cipher and chunker parameters (but
    /// with its own repository id and key slot), so that `snapguard copy` can move sealed
    /// blobs and whole packs between the two without decrypting them (see `copy`).
    pub fn init_sharing_keys(
        backend: Arc<dyn Backend>,
        secret: &Secret,
        opts: &InitOptions,
        from: &Repository,
    ) -> Result<Repository> {
        let mut opts = opts.clone();
        opts.cipher = from.cipher();
        let shared = (from.crypt.bundle.clone(), from.config.clone());
        Self::init_with_keys(backend, secret, &opts, Some(shared))
    }

    fn init_with_keys(
        backend: Arc<dyn Backend>,
        secret: &Secret,
        opts: &InitOptions,
        shared: Option<(KeyBundle, ConfigFile)>,
    ) -> Result<Repository> {
        match backend.read(FileType::Config, "config") {
            Ok(_) => {
                return Err(Error::AlreadyInitialized {
                    location: backend.location(),
                })
            }
            Err(BackendError::NotFound { .. }) => {}
            Err(e) => return Err(backend_err(&*backend)(e)),
        }
        // No config but other repository files: an interrupted init or a damaged repository.
        // Refuse rather than mix a new key with old data.
        for t in [FileType::Snapshot, FileType::Index, FileType::Pack] {
            if !backend.list(t).map_err(backend_err(&*backend))?.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "{} has no config but already holds repository files ({}/): an interrupted 'init' or a damaged repository; use an empty directory, or remove that one if it holds nothing you need",
                    backend.location(),
                    t.dir()
                )));
            }
        }
        // Only key slots: an init interrupted between its key slot and its config (on an S3
        // Object Lock bucket such a slot cannot be deleted for the whole period). Finish it
        // with that slot if this password opens every slot there.
        let resumed = resumable_slot(&*backend, secret, shared.is_some())?;
        opts.kdf
            .validate()
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        backend.create().map_err(backend_err(&*backend))?;
        let (bundle, from_config) = match (shared, &resumed) {
            (Some((bundle, config)), _) => (bundle, Some(config)),
            (None, Some((_, bundle))) => (bundle.clone(), None),
            (None, None) => (KeyBundle::generate(&mut rand_core::OsRng), None),
        };
        let crypt = Crypt::new(bundle, opts.cipher);
        let repo_id = RepoId(random_bytes(&mut rand_core::OsRng));
        let avg = from_config
            .as_ref()
            .map(|c| c.chunker_avg)
            .unwrap_or(opts.chunk_avg.unwrap_or(1 << 20));
        let chunker = match &from_config {
            Some(c) => snapguard_chunker::ChunkerParams {
                min_size: c.chunker_min as usize,
                avg_size: c.chunker_avg as usize,
                max_size: c.chunker_max as usize,
            },
            None => snapguard_chunker::ChunkerParams {
                min_size: avg as usize / 2,
                avg_size: avg as usize,
                max_size: (avg as usize).saturating_mul(8),
            },
        };
        chunker
            .validate()
            .map_err(|e| Error::InvalidArgument(format!("chunk size: {e}")))?;
        if !(64 << 10..=1 << 30).contains(&opts.pack_target_size) {
            return Err(Error::InvalidArgument(format!(
                "pack size {} is outside 64 KiB to 1 GiB",
                opts.pack_target_size
            )));
        }
        let config = ConfigFile {
            repo_id,
            created: opts.now,
            chunker_min: chunker.min_size as u32,
            chunker_avg: avg,
            chunker_max: chunker.max_size as u32,
            pack_target_size: opts.pack_target_size,
            compression_level: opts.compression_level,
            // Armed by `object_lock::prepare_init` before init, or None.
            object_lock: crate::object_lock::armed_settings(&*backend),
        };
        let header = ConfigHeader {
            version: FORMAT_VERSION,
            features: FeatureFlags {
                incompat: if config.object_lock.is_some() {
                    snapguard_format::INCOMPAT_OBJECT_LOCK
                } else {
                    0
                },
                ro_compat: if opts.append_only {
                    snapguard_format::RO_COMPAT_APPEND_ONLY
                } else {
                    0
                },
                ..FeatureFlags::default()
            },
            cipher_code: opts.cipher.code(),
            repo_id,
            salt: random_bytes(&mut rand_core::OsRng),
        };
        // The key slot goes first: a crash before the config is written leaves a directory
        // without config, which `init` can simply be run on again.
        let meta = SlotMeta {
            label: "initial".into(),
            hostname: opts.hostname.clone(),
            username: opts.username.clone(),
            created_unix: opts.now.secs,
            capabilities: vec!["read".into(), "write".into()],
        };
        let slot_id = match resumed {
            Some((id, _)) => {
                tracing::info!(slot = %id.to_hex(), "finishing an interrupted init with its key slot");
                id
            }
            None => {
                let slot = KeySlot::create(
                    &mut rand_core::OsRng,
                    &crypt.bundle,
                    secret.template(opts.kdf),
                    &secret.unlocker(),
                    opts.cipher,
                    &meta,
                )
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                let slot_id = SlotId(slot.id());
                backend
                    .write(FileType::Key, &slot_id.to_hex(), &slot.encode())
                    .map_err(backend_err(&*backend))?;
                slot_id
            }
        };
        let bytes = seal_config(&crypt, &header, &config)?;
        backend
            .write(FileType::Config, "config", &bytes)
            .map_err(backend_err(&*backend))?;
        Ok(Repository::assemble(
            backend, crypt, config, header, slot_id,
        ))
    }

    /// Unlock the repository with the first of `secrets` that opens a key slot. Callers then
    /// take a lock ([`Repository::lock`]) and load the index ([`Repository::load_index`]), in
    /// that order, so the index they see cannot be pruned underneath them.
    pub fn open(backend: Arc<dyn Backend>, secrets: &[Secret]) -> Result<Repository> {
        let (header, config_bytes) = probe(&*backend)?;
        let slots = list_slots(&*backend)?;
        let cipher =
            Cipher::from_code(header.cipher_code).map_err(|e| Error::corrupt("config", e))?;
        let mut opened = None;
        let mut config_error = None;
        'outer: for secret in secrets {
            let unlocker = secret.unlocker();
            for (id, slot) in &slots {
                let Some(slot) = slot else { continue };
                if !slot.matches(&unlocker) {
                    continue;
                }
                let Ok(bundle) = slot.unlock(&unlocker) else {
                    continue;
                };
                // A slot that unlocks but whose keys do not open the config belongs to another
                // repository (e.g. left by an interrupted init): try the next one.
                let crypt = Crypt::new(bundle, cipher);
                match open_config(&crypt, &config_bytes) {
                    Ok(config) if config.repo_id == header.repo_id => {
                        opened = Some((*id, crypt, config));
                        break 'outer;
                    }
                    Ok(_) => {
                        config_error = Some(Error::corrupt(
                            "config",
                            "repository id in the sealed body differs from the header",
                        ))
                    }
                    Err(e) => config_error = Some(e),
                }
            }
        }
        let Some((slot, crypt, config)) = opened else {
            return Err(config_error.unwrap_or(Error::WrongPassword {
                location: backend.location(),
                slots: slots.len(),
            }));
        };
        crate::object_lock::arm(&*backend, &header, &config)?;
        Ok(Repository::assemble(backend, crypt, config, header, slot))
    }

    /// Another handle on this unlocked repository, as a new session: the same keys, backend
    /// and cache settings, but no index and no lock. A long-running process (the daemon's web
    /// API) unlocks once and takes a session per request, which then locks and loads the index
    /// like any command, so a prune between requests is never missed.
    pub fn session(&self) -> Repository {
        let mut r = Repository::assemble(
            self.backend.clone(),
            self.crypt.clone(),
            self.config.clone(),
            self.header.clone(),
            self.slot,
        );
        r.cache_dir = self.cache_dir.clone();
        r.meta_cache = self.meta_cache.as_ref().map(|m| m.reopen());
        r.read_parallelism = self.read_parallelism;
        r
    }

    /// A shared handle on the backend (for worker threads).
    pub fn backend_arc(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    pub fn config(&self) -> &ConfigFile {
        &self.config
    }

    pub fn cipher(&self) -> Cipher {
        self.crypt.cipher
    }

    pub fn crypt(&self) -> &Crypt {
        &self.crypt
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The key slot this session was opened with.
    pub fn opened_slot(&self) -> SlotId {
        self.slot
    }

    /// Whether the repository refuses deletions and rewrites.
    pub fn is_append_only(&self) -> bool {
        self.header.features.ro_compat & snapguard_format::RO_COMPAT_APPEND_ONLY != 0
    }

    /// Fail if the repository uses features this version may read but must not write.
    pub fn ensure_writable(&self) -> Result<()> {
        if self.read_only_features() {
            return Err(Error::NewerFormat {
                location: self.location(),
                detail: "the repository uses features that this SnapGuard may read but not write"
                    .into(),
            });
        }
        Ok(())
    }

    /// Fail with [`Error::AppendOnly`] if the repository is append-only.
    pub fn ensure_deletable(&self, operation: &str) -> Result<()> {
        self.ensure_writable()?;
        if self.is_append_only() {
            return Err(Error::AppendOnly {
                location: self.location(),
                operation: operation.into(),
            });
        }
        Ok(())
    }

    /// Switch the repository to append-only mode (there is no way back through SnapGuard).
    pub fn enable_append_only(&mut self) -> Result<()> {
        self.ensure_writable()?;
        if self.is_append_only() {
            return Ok(());
        }
        let mut header = self.header.clone();
        header.features.ro_compat |= snapguard_format::RO_COMPAT_APPEND_ONLY;
        header.salt = random_bytes(&mut rand_core::OsRng);
        let bytes = seal_config(&self.crypt, &header, &self.config)?;
        self.backend
            .replace_config(&bytes)
            .map_err(self.backend_err())?;
        self.header = header;
        Ok(())
    }

    /// Whether features exist that this version may read but must not write.
    pub fn read_only_features(&self) -> bool {
        self.header.features.ro_compat & !KNOWN_RO_COMPAT != 0
    }

    pub(crate) fn backend_err(&self) -> impl Fn(BackendError) -> Error + '_ {
        backend_err(&*self.backend)
    }

    /// Take a shared or exclusive lock for `operation`; held until the guard is dropped.
    pub fn lock(
        &self,
        kind: crate::lock::LockKind,
        operation: &str,
        owner: &crate::lock::LockOwner,
    ) -> Result<crate::lock::LockGuard> {
        let guard =
            crate::lock::acquire(self.backend.clone(), &self.crypt, kind, operation, owner)?;
        if let Ok(mut w) = self.lock_refreshed.lock() {
            *w = Some(guard.refreshed.clone());
        }
        Ok(guard)
    }

    /// Before a commit point: fail if our lock may have been taken for stale.
    pub(crate) fn ensure_lock_fresh(&self) -> Result<()> {
        let watch = self.lock_refreshed.lock().ok().and_then(|w| w.clone());
        match watch {
            Some(r) => crate::lock::ensure_fresh(&r, &self.location()),
            None => Ok(()),
        }
    }

    /// Load every index file into memory, skipping files that another index file supersedes
    /// (a compaction that crashed before deleting them leaves both).
    pub fn load_index(&mut self) -> Result<()> {
        let names = self
            .backend
            .list(FileType::Index)
            .map_err(self.backend_err())?;
        self.index_errors.clear();
        let mut listing = Vec::with_capacity(names.len());
        for (name, _) in names {
            match IndexId::from_hex(&name) {
                Ok(id) => listing.push(id),
                Err(e) => self
                    .index_errors
                    .push(Error::corrupt(format!("index/{name}"), e)),
            }
        }
        if let Some(dir) = self.cache_dir.clone() {
            let mac_key = self.crypt.bundle().cache_mac_key();
            let mut errors = Vec::new();
            let loaded = crate::index::cache::load(
                &dir,
                crate::index::cache::Source {
                    repo: self.config.repo_id,
                    mac_key: mac_key.as_bytes(),
                    listing: &listing,
                    read: &mut |id| self.read_index_or_record(id, &mut errors),
                },
                Default::default(),
            );
            match loaded {
                Ok(index) => {
                    self.index = index;
                    self.index_errors.extend(errors);
                    crate::metacache::sweep_trees(self);
                    return Ok(());
                }
                Err(crate::index::cache::LoadError::Repo(e)) => return Err(e),
                Err(crate::index::cache::LoadError::Cache(e)) => {
                    tracing::warn!(
                        "cannot use the index cache in {}: {e}; keeping the index in memory",
                        dir.display()
                    );
                }
            }
        }
        let mut files = Vec::with_capacity(listing.len());
        let mut errors = Vec::new();
        for id in &listing {
            if let Some(f) = self.read_index_or_record(id, &mut errors)? {
                files.push((*id, f));
            }
        }
        self.index_errors.extend(errors);
        let superseded: std::collections::HashSet<IndexId> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut index = Index::default();
        for (id, file) in &files {
            if superseded.contains(id) {
                continue;
            }
            for pack in &file.packs {
                index.add_pack(pack);
            }
        }
        self.index = index;
        crate::metacache::sweep_trees(self);
        Ok(())
    }

    /// Read an index file; a damaged one is recorded in `errors` (it loses only the locations
    /// it lists: `check` reports it and `repair index` rebuilds it) and gives `None`.
    fn read_index_or_record(
        &self,
        id: &IndexId,
        errors: &mut Vec<Error>,
    ) -> Result<Option<IndexFile>> {
        match self.read_index(&id.to_hex()) {
            Ok(f) => Ok(Some(f)),
            Err(e @ Error::Corrupt { .. }) => {
                tracing::debug!("{e}");
                errors.push(e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Keep the index in on-disk segments under `dir` (see [`crate::index`]) from the next
    /// [`Repository::load_index`] on. `None` keeps it in memory.
    pub fn set_cache_dir(&mut self, dir: Option<PathBuf>) {
        self.cache_dir = dir;
    }

    /// Keep sealed copies of snapshots, annotations and (if `cache.trees`) tree blobs in a
    /// [`crate::metacache::MetaCache`]; `None` reads them from the repository every time.
    pub fn set_meta_cache(&mut self, cache: Option<crate::metacache::MetaCache>) {
        self.meta_cache = cache;
    }

    pub(crate) fn meta_cache(&self) -> Option<&crate::metacache::MetaCache> {
        self.meta_cache.as_ref()
    }

    /// Keep up to `n` reads in flight where the work allows (restore's data phase); for remote
    /// repositories, where a read waits for a round trip rather than the CPU. 0: one per core.
    pub fn set_read_parallelism(&mut self, n: usize) {
        self.read_parallelism = n;
    }

    pub(crate) fn read_parallelism(&self) -> usize {
        self.read_parallelism
    }

    /// Record packs this session wrote (already listed in index files on disk).
    pub(crate) fn add_to_index(&mut self, packs: &[IndexPack]) {
        for p in packs {
            self.index.add_pack(p);
        }
    }

    /// Damaged index files found by the last [`Repository::load_index`].
    pub fn index_errors(&self) -> &[Error] {
        &self.index_errors
    }

    /// Ids of all index files, in listing order.
    pub fn index_ids(&self) -> Result<Vec<IndexId>> {
        self.backend
            .list(FileType::Index)
            .map_err(self.backend_err())?
            .into_iter()
            .map(|(n, _)| {
                IndexId::from_hex(&n).map_err(|e| Error::corrupt(format!("index/{n}"), e))
            })
            .collect()
    }

    /// Read and open one index file.
    pub fn read_index(&self, name: &str) -> Result<IndexFile> {
        let object = format!("index file {name} (index/{name})");
        let id = IndexId::from_hex(name).map_err(|e| Error::corrupt(&object, e))?;
        let bytes = self
            .backend
            .read(FileType::Index, name)
            .map_err(self.backend_err())?;
        let plain = self
            .crypt
            .open_object(ObjectKind::Index, &id.0, &bytes, &object)?;
        IndexFile::decode(&plain).map_err(|e| Error::corrupt(&object, e))
    }

    /// Seal and store a new index file listing `packs`, and add them to the in-memory index.
    pub(crate) fn write_index(&mut self, packs: Vec<IndexPack>) -> Result<IndexId> {
        self.write_index_superseding(packs, Vec::new())
    }

    /// Write an index file that replaces the index files `supersedes` (which the caller
    /// deletes afterwards; until then, loading skips them).
    pub(crate) fn write_index_superseding(
        &mut self,
        packs: Vec<IndexPack>,
        supersedes: Vec<IndexId>,
    ) -> Result<IndexId> {
        self.ensure_writable()?;
        let file = IndexFile { packs, supersedes };
        let (id, bytes) = self.crypt.seal_object(ObjectKind::Index, &file.encode())?;
        let id = IndexId(id);
        match self.backend.write(FileType::Index, &id.to_hex(), &bytes) {
            Ok(()) => {}
            // An index file's id is the keyed hash of its content: another process (e.g. a
            // concurrent same-keys copy) wrote exactly these entries. Use it if it opens.
            Err(BackendError::AlreadyExists { .. }) => {
                let name = id.to_hex();
                let existing = self
                    .backend
                    .read(FileType::Index, &name)
                    .map_err(self.backend_err())?;
                self.crypt.open_object(
                    ObjectKind::Index,
                    &id.0,
                    &existing,
                    &format!("index/{name}"),
                )?;
            }
            Err(e) => return Err(self.backend_err()(e)),
        }
        for p in &file.packs {
            self.index.add_pack(p);
        }
        Ok(id)
    }

    /// Seal and store an index file without adding its packs to this session's index. For
    /// tools that generate test repositories (bench/index-rss.sh); nothing checks that the
    /// packs it lists exist, so a repository written this way fails `check`.
    #[doc(hidden)]
    pub fn store_synthetic_index(&self, packs: Vec<IndexPack>) -> Result<IndexId> {
        self.ensure_writable()?;
        let file = IndexFile {
            packs,
            supersedes: Vec::new(),
        };
        let (id, bytes) = self.crypt.seal_object(ObjectKind::Index, &file.encode())?;
        let id = IndexId(id);
        self.backend
            .write(FileType::Index, &id.to_hex(), &bytes)
            .map_err(self.backend_err())?;
        Ok(id)
    }

    /// Read, open and verify one blob.
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?;
        self.read_located(id, &loc)
    }

    fn locate(&self, id: &BlobId) -> Result<crate::index::BlobLocation> {
        self.index.get(id)?.ok_or_else(|| {
            Error::corrupt(
                format!("blob {id}"),
                "not in the index (missing data; run 'snapguard check')",
            )
        })
    }

    /// Read, open and verify blob `id` stored at `loc`.
    pub(crate) fn read_located(
        &self,
        id: &BlobId,
        loc: &crate::index::BlobLocation,
    ) -> Result<Vec<u8>> {
        let sealed = self.read_sealed(id, loc)?;
        self.open_located(loc, &sealed)
    }

    /// The sealed bytes of blob `id` stored at `loc`, as its pack holds them.
    pub(crate) fn read_sealed(
        &self,
        id: &BlobId,
        loc: &crate::index::BlobLocation,
    ) -> Result<Vec<u8>> {
        let name = loc.pack.to_hex();
        let sealed = self
            .backend
            .read_range(
                FileType::Pack,
                &name,
                u64::from(loc.blob.offset),
                u64::from(loc.blob.length),
            )
            .map_err(|e| match e {
                BackendError::NotFound { path } | BackendError::ShortRead { path, .. } => {
                    Error::corrupt(
                        format!("blob {id} in pack {} ({path})", loc.pack),
                        "the pack is missing or truncated",
                    )
                }
                other => self.backend_err()(other),
            })?;
        Ok(sealed)
    }

    /// Open and verify the sealed bytes of the blob stored at `loc`.
    pub(crate) fn open_located(
        &self,
        loc: &crate::index::BlobLocation,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let cipher = Cipher::from_code(loc.cipher_code)
            .map_err(|e| Error::corrupt(format!("pack {}", loc.pack), e))?;
        let key = self.crypt.pack_key(&loc.pack, loc.epoch, cipher)?;
        self.crypt.open_blob(&loc.pack, &key, &loc.blob, sealed)
    }

    /// Read a whole pack and open its header (used by `cat pack` and verification).
    pub fn read_pack_header(
        &self,
        id: &snapguard_format::PackId,
    ) -> Result<Vec<snapguard_format::PackBlob>> {
        let bytes = self
            .backend
            .read(FileType::Pack, &id.to_hex())
            .map_err(self.backend_err())?;
        crate::pack::read_header(&self.crypt, id, &bytes)
    }

    /// Read and decode a tree.
    pub fn read_tree(&self, id: &TreeId) -> Result<Tree> {
        let blob = BlobId::from(*id);
        let loc = self.locate(&blob)?;
        if loc.blob.kind != BlobType::Tree {
            return Err(Error::corrupt(
                format!("tree {id}"),
                "index says it is a data blob",
            ));
        }
        let bytes = crate::metacache::read_tree_blob(self, &blob, &loc)?;
        Tree::decode(&bytes).map_err(|e| Error::corrupt(format!("tree {id}"), e))
    }

    /// Seal and store a snapshot (the commit point of a backup).
    pub fn save_snapshot(&self, snapshot: &SnapshotFile) -> Result<SnapshotId> {
        self.ensure_writable()?;
        self.ensure_lock_fresh()?;
        let (id, bytes) = self
            .crypt
            .seal_object(ObjectKind::Snapshot, &snapshot.encode())?;
        let id = SnapshotId(id);
        self.backend
            .write(FileType::Snapshot, &id.to_hex(), &bytes)
            .map_err(self.backend_err())?;
        crate::metacache::remember_object(self, FileType::Snapshot, &id.to_hex(), &bytes);
        Ok(id)
    }

    /// Read and open one snapshot.
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<SnapshotFile> {
        let name = id.to_hex();
        let object = format!("snapshot {name} (snapshots/{name})");
        let plain = crate::metacache::read_object(
            self,
            FileType::Snapshot,
            ObjectKind::Snapshot,
            &id.0,
            &name,
            &object,
        )?;
        SnapshotFile::decode(&plain).map_err(|e| Error::corrupt(&object, e))
    }

    /// All snapshots, oldest first.
    pub fn list_snapshots(&self) -> Result<Vec<(SnapshotId, SnapshotFile)>> {
        let (list, errors) = self.list_snapshots_report()?;
        for e in errors {
            tracing::warn!("{e}; skipping it (run 'snapguard check')");
        }
        Ok(list)
    }

    /// All readable snapshots, oldest first, and an error for each one that cannot be read.
    pub fn list_snapshots_report(&self) -> Result<(SnapshotList, Vec<Error>)> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let listing = self
            .backend
            .list(FileType::Snapshot)
            .map_err(self.backend_err())?;
        crate::metacache::retain_listed(
            self,
            FileType::Snapshot,
            listing.iter().map(|(n, _)| n.as_str()),
        );
        for (name, _) in listing {
            let loaded = SnapshotId::from_hex(&name)
                .map_err(|e| Error::corrupt(format!("snapshots/{name}"), e))
                .and_then(|id| Ok((id, self.load_snapshot(&id)?)));
            match loaded {
                Ok(x) => out.push(x),
                Err(e @ Error::Corrupt { .. }) => errors.push(e),
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((out, errors))
    }

    /// Resolve a full id or unique prefix of at least 4 hex digits from file names alone,
    /// without reading the snapshot (so damaged snapshot files can still be named).
    pub fn resolve_snapshot_name(&self, spec: &str) -> Result<SnapshotId> {
        if spec.len() < 4 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidArgument(format!(
                "{spec:?} is not a snapshot id: give 'latest', a full id or at least 4 hex digits of one"
            )));
        }
        let spec_lc = spec.to_ascii_lowercase();
        let names = self
            .backend
            .list(FileType::Snapshot)
            .map_err(self.backend_err())?;
        let matches: Vec<&String> = names
            .iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with(&spec_lc))
            .collect();
        match matches.as_slice() {
            [] => Err(Error::SnapshotNotFound {
                spec: spec.to_string(),
            }),
            [one] => {
                SnapshotId::from_hex(one).map_err(|e| Error::corrupt(format!("snapshots/{one}"), e))
            }
            many => Err(Error::AmbiguousSnapshot {
                spec: spec.to_string(),
                candidates: many
                    .iter()
                    .map(|n| n[..12.min(n.len())].to_string())
                    .collect(),
            }),
        }
    }

    /// Resolve `latest`, a full id or a unique prefix of at least 4 hex digits.
    pub fn find_snapshot(&self, spec: &str) -> Result<(SnapshotId, SnapshotFile)> {
        if spec == "latest" {
            return self
                .list_snapshots()?
                .pop()
                .ok_or_else(|| Error::SnapshotNotFound {
                    spec: spec.to_string(),
                });
        }
        let id = self.resolve_snapshot_name(spec)?;
        Ok((id, self.load_snapshot(&id)?))
    }

    /// All key slots with their metadata (readable once unlocked).
    pub fn key_slots(&self) -> Result<Vec<KeySlotInfo>> {
        Ok(list_slots(&*self.backend)?
            .into_iter()
            .map(|(id, slot)| {
                let meta = slot.as_ref().and_then(|s| s.meta(&self.crypt.bundle).ok());
                KeySlotInfo { id, slot, meta }
            })
            .collect())
    }

    /// Add a key slot opened by `secret`.
    pub fn add_key_slot(
        &self,
        secret: &Secret,
        kdf: Argon2Params,
        meta: &SlotMeta,
    ) -> Result<SlotId> {
        self.ensure_writable()?;
        kdf.validate()
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let slot = KeySlot::create(
            &mut rand_core::OsRng,
            &self.crypt.bundle,
            secret.template(kdf),
            &secret.unlocker(),
            self.crypt.cipher,
            meta,
        )
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let id = SlotId(slot.id());
        self.backend
            .write(FileType::Key, &id.to_hex(), &slot.encode())
            .map_err(self.backend_err())?;
        Ok(id)
    }

    /// Remove a key slot, refusing to remove the last usable one.
    pub fn remove_key_slot(&self, id: &SlotId) -> Result<()> {
        self.ensure_deletable("removing a key slot")?;
        let slots = list_slots(&*self.backend)?;
        if !slots.iter().any(|(s, _)| s == id) {
            return Err(Error::InvalidArgument(format!(
                "there is no key slot {id}; see 'snapguard key list'"
            )));
        }
        let usable_others = slots
            .iter()
            .filter(|(s, slot)| {
                s != id
                    && slot
                        .as_ref()
                        .is_some_and(|k| k.meta(&self.crypt.bundle).is_ok())
            })
            .count();
        if usable_others == 0 {
            return Err(Error::LastKeySlot { slot: id.to_hex() });
        }
        self.backend
            .remove(FileType::Key, &id.to_hex())
            .map_err(self.backend_err())
    }

    /// Resolve a slot id prefix.
    pub fn find_key_slot(&self, spec: &str) -> Result<SlotId> {
        let names = self
            .backend
            .list(FileType::Key)
            .map_err(self.backend_err())?;
        let m: Vec<_> = names
            .iter()
            .filter(|(n, _)| n.starts_with(&spec.to_ascii_lowercase()))
            .collect();
        match m.as_slice() {
            [(one, _)] => {
                SlotId::from_hex(one).map_err(|e| Error::corrupt(format!("keys/{one}"), e))
            }
            [] => Err(Error::InvalidArgument(format!(
                "there is no key slot {spec:?}; see 'snapguard key list'"
            ))),
            _ => Err(Error::InvalidArgument(format!(
                "key slot id {spec:?} is ambiguous; give more digits"
            ))),
        }
    }
}

/// For `init` on a location without config: None if it holds no key slot; the first slot and
/// its keys if `secret` opens every slot there (an interrupted init run again with the same
/// password); else an error that explains.
fn resumable_slot(
    backend: &dyn Backend,
    secret: &Secret,
    sharing_keys: bool,
) -> Result<Option<(SlotId, KeyBundle)>> {
    let slots = list_slots(backend)?;
    if slots.is_empty() {
        return Ok(None);
    }
    let refuse = |why: String| {
        Error::InvalidArgument(format!(
            "{} has no config but already holds {} key slot(s) (keys/){why}: an interrupted 'init' or a damaged repository; run 'init' again with the password (or key file) given the first time to finish it, or use an empty location (on an S3 Object Lock bucket the slots cannot be deleted before their retention ends)",
            backend.location(),
            slots.len()
        ))
    };
    if sharing_keys {
        return Err(refuse(", and --copy-keys-from cannot reuse them".into()));
    }
    let unlocker = secret.unlocker();
    let mut first = None;
    for (id, slot) in &slots {
        let bundle = slot
            .as_ref()
            .filter(|s| s.matches(&unlocker))
            .and_then(|s| s.unlock(&unlocker).ok());
        match bundle {
            Some(b) => {
                first.get_or_insert((*id, b));
            }
            None => {
                return Err(refuse(format!(
                    " that this password does not open ({})",
                    id.to_hex()
                )))
            }
        }
    }
    Ok(first)
}

fn list_slots(backend: &dyn Backend) -> Result<Vec<(SlotId, Option<KeySlot>)>> {
    let mut out = Vec::new();
    for (name, _) in backend.list(FileType::Key).map_err(backend_err(backend))? {
        let Ok(id) = SlotId::from_hex(&name) else {
            continue;
        };
        let bytes = backend
            .read(FileType::Key, &name)
            .map_err(backend_err(backend))?;
        let slot = KeySlot::decode(&bytes).ok().filter(|s| s.id() == id.0);
        if slot.is_none() {
            tracing::warn!(slot = %name, "key slot cannot be parsed (damaged, or from a newer SnapGuard); skipping it");
        }
        out.push((id, slot));
    }
    Ok(out)
}

fn config_aad(head: &[u8]) -> Vec<u8> {
    let mut aad = b"SGCFG1".to_vec();
    aad.extend_from_slice(head);
    aad
}

/// The key sealing the config body: a subkey of data key epoch 0 and the header's salt.
fn config_key(crypt: &Crypt, header: &ConfigHeader) -> Result<snapguard_crypto::SealKey> {
    let data_key = crypt
        .bundle
        .data_key(0)
        .ok_or_else(|| Error::corrupt("key bundle", "data key 0 missing"))?;
    Ok(snapguard_crypto::SealKey::new(
        crypt.cipher,
        snapguard_crypto::derive_subkey(data_key, &header.salt),
    ))
}

fn seal_config(crypt: &Crypt, header: &ConfigHeader, config: &ConfigFile) -> Result<Vec<u8>> {
    let head = header.encode();
    let key = config_key(crypt, header)?;
    let mut out = head.clone();
    key.seal_into(
        &snapguard_crypto::counter_nonce(0),
        &config_aad(&head),
        &config.encode(),
        &mut out,
    );
    Ok(out)
}

fn open_config(crypt: &Crypt, bytes: &[u8]) -> Result<ConfigFile> {
    let (header, head, body) =
        ConfigHeader::parse(bytes).map_err(|e| Error::corrupt("config", e))?;
    let key = config_key(crypt, &header)?;
    let plain = key
        .open(&snapguard_crypto::counter_nonce(0), &config_aad(head), body)
        .map_err(|e| Error::corrupt("config", e))?;
    ConfigFile::decode(&plain).map_err(|e| Error::corrupt("config", e))
}
