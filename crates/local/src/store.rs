//! The snapshot store of one `[local.NAME]` configuration: numbered, read-only btrfs snapshots of
//! a subvolume in `<snapshot_dir>/<N>/snapshot`, each described by `<N>/info.json`, as Snapper
//! keeps them (`<N>/info.xml` there).
//!
//! What it owns: numbering, creating, listing and deleting snapshots, crash safety of those
//! steps, and deciding which snapshots are protected (mounted, the default subvolume, the lower
//! layer of live mode, marked important). What it does not do: deciding *which* snapshots to
//! delete (that is `snapguard_policy::plan_cleanup`, applied by [`crate::cleanup`]), comparing
//! snapshots ([`crate::diff`]) or replacing the subvolume ([`crate::rollback`]).
//!
//! # Layout
//!
//! ```text
//! <snapshot_dir>/                 a btrfs subvolume of its own (created on the first `create`)
//!   .snapguard.lock               flock(2): one writer (create, delete, cleanup) at a time
//!   .snapguard-last-number        the highest number ever handed out (never reused)
//!   .snapguard-send.lock          flock(2): one `local send` of the configuration at a time
//!   <N>/creating.json             written before the btrfs snapshot exists, removed after
//!   <N>/snapshot                  the read-only btrfs snapshot
//!   <N>/info.json                 the snapshot's description: its presence makes N complete
//!   <N>/deleting.json             info.json renamed when a delete starts
//!   <N>/live.lock                 present while live mode uses the snapshot as a lower layer
//! ```
//!
//! # Crash safety
//!
//! A number is recorded in `.snapguard-last-number` (written atomically and `fsync`ed) before
//! its directory is made, so it is never handed out twice. `creating.json` (naming the UUID of
//! the subvolume being snapshotted) is written before the snapshot, and `info.json` after it:
//! renaming `info.json` into place is the commit point, and [`Store::list`] shows only entries
//! that have it. A delete first renames `info.json` to `deleting.json`, so an interrupted delete
//! is no longer listed. An entry without `info.json` is *incomplete*; [`Store::incomplete`]
//! reports it and [`Store::remove_incomplete`] finishes it off. A btrfs subvolume is only ever
//! deleted after checking that it is `<snapshot_dir>/<N>/snapshot` and that its `parent_uuid` is
//! the UUID recorded when it was made (and, for a complete entry, that its own UUID is the
//! recorded one), so a stray or foreign subvolume (Snapper's, a user's) is never touched.

use crate::files::{fsync_dir, remove_file_if_exists, to_json, write_atomic, FileLock};
use crate::mounts::{show, FsMounts};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use snapguard_btrfs::{Subvolume, Uuid};
use snapguard_policy::{CleanupAlgorithm, LocalConfig, LocalKind, LocalSnapshotInfo};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The description of a complete snapshot: its entry's number, the btrfs snapshot's path
/// `<snapshot_dir>/<N>/snapshot`, its permanent file name.
pub const INFO_FILE: &str = "info.json";
/// Written before the btrfs snapshot is made; see the module documentation.
pub const CREATING_FILE: &str = "creating.json";
/// `info.json` renamed when a delete begins.
pub const DELETING_FILE: &str = "deleting.json";
/// Present while live mode uses `<N>/snapshot` as an OverlayFS lower layer; such a snapshot is
/// protected from deletion.
pub const LIVE_LOCK_FILE: &str = "live.lock";
/// The name of the btrfs snapshot inside an entry.
pub const SNAPSHOT_NAME: &str = "snapshot";
const LOCK_FILE: &str = ".snapguard.lock";
const LAST_NUMBER_FILE: &str = ".snapguard-last-number";
/// The `userdata` key and value that mark a snapshot important (Snapper's `important=yes`).
pub const IMPORTANT_KEY: &str = "important";
/// The format version written into `info.json`.
const INFO_VERSION: u32 = 1;

/// What to record about a new snapshot (shared by `local create`, the apt hook, rollback and
/// live mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateOptions {
    /// Single, pre or post.
    pub kind: LocalKind,
    /// The pre snapshot of a post snapshot; must be `None` for the other kinds.
    pub pre_number: Option<u32>,
    pub description: String,
    pub tags: Vec<String>,
    /// Which cleanup rule may delete it later.
    pub cleanup: CleanupAlgorithm,
    /// Free-form key/value pairs (Snapper's userdata); `important=yes` protects the snapshot.
    pub userdata: BTreeMap<String, String>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            kind: LocalKind::Single,
            pre_number: None,
            description: String::new(),
            tags: Vec::new(),
            cleanup: CleanupAlgorithm::None,
            userdata: BTreeMap::new(),
        }
    }
}

/// One complete snapshot, as stored in `<snapshot_dir>/<N>/info.json` (written atomically).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSnapshot {
    /// The version of this record's layout (1).
    #[serde(default = "info_version")]
    pub version: u32,
    pub number: u32,
    /// When it was taken: RFC 3339, UTC, with nanoseconds.
    pub time: String,
    /// The same time in seconds since the Unix epoch.
    pub unix: i64,
    pub kind: LocalKind,
    pub pre_number: Option<u32>,
    pub description: String,
    pub tags: Vec<String>,
    pub cleanup: CleanupAlgorithm,
    pub userdata: BTreeMap<String, String>,
    /// The btrfs UUID of the snapshot subvolume.
    pub uuid: String,
    /// Its `otransid`: the transaction it was created in.
    pub generation: u64,
    /// The UUID of the subvolume that was snapshotted (the snapshot's `parent_uuid`): the
    /// configured subvolume at the time, or the source given to [`Store::create_from`].
    pub source_uuid: String,
    /// Set when the snapshot was not taken of the configured subvolume: the path of the
    /// subvolume it was taken of ([`Store::create_from`], the writable copy of a root rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_from: Option<PathBuf>,
    /// A writable snapshot (only the copy made by a root rollback, which becomes the new root).
    #[serde(default)]
    pub writable: bool,
    /// `<snapshot_dir>/<N>/snapshot`.
    #[serde(skip)]
    pub path: PathBuf,
}

fn info_version() -> u32 {
    INFO_VERSION
}

impl LocalSnapshot {
    /// Whether the user marked it important (`important=yes` in its userdata).
    pub fn is_important(&self) -> bool {
        self.userdata.get(IMPORTANT_KEY).map(String::as_str) == Some("yes")
    }
}

/// What `creating.json` records.
#[derive(Debug, Serialize, Deserialize)]
struct CreatingRecord {
    number: u32,
    source_uuid: String,
    source: PathBuf,
}

/// Why a snapshot may not be deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Mounted (its subvolume is the root of these mounts).
    Mounted(Vec<PathBuf>),
    /// It is the default subvolume of the filesystem: what a mount without `subvol=` (and a
    /// boot) uses.
    Default,
    /// Live mode uses it (`live.lock`, or an OverlayFS mount at these mount points whose lower
    /// layer is inside it).
    Live(Vec<PathBuf>),
    /// Marked `important=yes`.
    Important,
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[PathBuf]| v.iter().map(|p| show(p)).collect::<Vec<_>>().join(", ");
        match self {
            Protection::Mounted(at) => write!(f, "it is mounted at {}; unmount it first", list(at)),
            Protection::Default => f.write_str(
                "it is the default subvolume of the filesystem (what is booted or mounted without \
                 subvol=); make another subvolume the default first (a rollback does)",
            ),
            Protection::Live(at) if at.is_empty() => f.write_str(
                "live mode uses it as its lower layer; end the session with 'snapguard live \
                 discard' or 'snapguard live commit' first",
            ),
            Protection::Live(at) => write!(
                f,
                "it is the lower layer of the OverlayFS mount at {}; end that live session \
                 ('snapguard live discard') first",
                list(at)
            ),
            Protection::Important => f.write_str(
                "it is marked important (userdata important=yes); give --force to delete it anyway",
            ),
        }
    }
}

/// What is known about a snapshot's use and size, for `local list` and for protection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// The btrfs subvolume id.
    pub subvolume_id: u64,
    /// Mount points whose root is in this snapshot.
    pub mounted_at: Vec<PathBuf>,
    /// Whether it is the filesystem's default subvolume; `None` when that could not be read
    /// (it needs root).
    pub default: Option<bool>,
    /// Live mode: `live.lock` present, or OverlayFS mounts using it (their mount points).
    pub live: bool,
    pub live_mounts: Vec<PathBuf>,
    /// Bytes only this snapshot references (qgroup exclusive), when quotas are enabled.
    pub exclusive_bytes: Option<u64>,
}

/// The filesystem-wide facts that the status of every snapshot needs, read once.
pub struct UseContext {
    mounts: FsMounts,
    default_id: Option<u64>,
    qgroups: Option<HashMap<u64, snapguard_btrfs::QgroupUsage>>,
}

/// Options of [`Store::delete_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Delete even if marked `important=yes` (never overrides the other protections).
    pub allow_important: bool,
}

/// An entry of the snapshot directory that is not a complete snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incomplete {
    pub number: u32,
    pub state: IncompleteState,
    /// `<snapshot_dir>/<N>`.
    pub dir: PathBuf,
}

/// What an incomplete entry is, and so what finishing it off means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IncompleteState {
    /// A create was interrupted (`creating.json`, with or without the btrfs snapshot).
    Creating,
    /// A delete was interrupted (`deleting.json`).
    Deleting,
    /// An empty directory, or one holding only SnapGuard's temporary files (a create
    /// interrupted before it wrote anything).
    Empty,
    /// Not made by SnapGuard (no SnapGuard file; perhaps Snapper's): never removed.
    Foreign,
    /// `info.json` exists but cannot be read or parsed: never removed automatically.
    Damaged(String),
}

impl std::fmt::Display for IncompleteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IncompleteState::Creating => f.write_str("an interrupted create"),
            IncompleteState::Deleting => f.write_str("an interrupted delete"),
            IncompleteState::Empty => f.write_str("an empty entry"),
            IncompleteState::Foreign => {
                f.write_str("not made by SnapGuard (no SnapGuard record); remove it by hand if it is not needed")
            }
            IncompleteState::Damaged(why) => write!(f, "damaged: {why}"),
        }
    }
}

impl IncompleteState {
    /// Whether [`Store::remove_incomplete`] may remove it.
    pub fn removable(&self) -> bool {
        matches!(
            self,
            IncompleteState::Creating | IncompleteState::Deleting | IncompleteState::Empty
        )
    }
}

/// The snapshots of one configuration. Cheap to open; every method reads the disk afresh.
#[derive(Clone, Debug)]
pub struct Store {
    name: String,
    config: LocalConfig,
    snapshot_dir: PathBuf,
}

impl Store {
    /// Opens the store of configuration `name`. Checks that the subvolume exists and is a btrfs
    /// subvolume, that no rollback of it was interrupted, and, if the snapshot directory exists,
    /// that it is a directory on the same filesystem. Creates nothing.
    pub fn open(name: &str, cfg: &LocalConfig) -> Result<Store> {
        let sub = &cfg.subvolume;
        let config = name.to_string();
        // The name becomes a path component (replication targets, live-mode records).
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(Error::InvalidOptions {
                config,
                reason: "a configuration name must be a plain name (letters, digits, '_' and \
                         '-'), not a path"
                    .into(),
            });
        }
        match std::fs::symlink_metadata(sub) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::SubvolumeMissing {
                    config,
                    path: sub.clone(),
                })
            }
            Err(e) => return Err(Error::io("read", sub, e)),
            Ok(_) => {}
        }
        let btrfs = |e| Error::Btrfs {
            context: format!("config {name}"),
            cause: e,
        };
        if !snapguard_btrfs::is_btrfs(sub).map_err(btrfs)? {
            return Err(Error::NotBtrfs {
                config,
                path: sub.clone(),
            });
        }
        if !snapguard_btrfs::is_subvolume(sub).map_err(btrfs)? {
            return Err(Error::NotSubvolume {
                config,
                path: sub.clone(),
            });
        }
        if let Some(journal) = crate::rollback::pending_journal(sub) {
            return Err(Error::RollbackInterrupted { config, journal });
        }
        let store = Store {
            name: name.to_string(),
            config: cfg.clone(),
            snapshot_dir: cfg.snapshot_dir(),
        };
        if store.snapshot_dir.exists() {
            store.check_snapshot_dir()?;
        }
        Ok(store)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A store that was not checked against the filesystem, for unit tests of pure helpers.
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str, cfg: &LocalConfig) -> Store {
        Store {
            name: name.to_string(),
            config: cfg.clone(),
            snapshot_dir: cfg.snapshot_dir(),
        }
    }

    pub fn config(&self) -> &LocalConfig {
        &self.config
    }

    pub fn subvolume(&self) -> &Path {
        &self.config.subvolume
    }

    pub fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// `<snapshot_dir>/<N>/snapshot`.
    pub fn snapshot_path(&self, number: u32) -> PathBuf {
        self.entry_dir(number).join(SNAPSHOT_NAME)
    }

    /// `<snapshot_dir>/<N>/live.lock`: live mode creates it while it uses snapshot N and
    /// removes it afterwards; while it exists the snapshot cannot be deleted.
    pub fn live_lock_path(&self, number: u32) -> PathBuf {
        self.entry_dir(number).join(LIVE_LOCK_FILE)
    }

    fn entry_dir(&self, number: u32) -> PathBuf {
        self.snapshot_dir.join(number.to_string())
    }

    fn btrfs_err(
        &self,
        what: impl std::fmt::Display,
    ) -> impl FnOnce(snapguard_btrfs::Error) -> Error {
        let context = format!("config {}: {what}", self.name);
        move |cause| Error::Btrfs { context, cause }
    }

    fn check_snapshot_dir(&self) -> Result<()> {
        let dir = &self.snapshot_dir;
        let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::io("read", dir, e))?;
        let elsewhere = |reason: &str| Error::SnapshotDirUnusable {
            config: self.name.clone(),
            path: dir.clone(),
            reason: reason.to_string(),
        };
        if !meta.is_dir() {
            return Err(elsewhere("it is not a directory"));
        }
        if std::os::unix::fs::MetadataExt::ino(&meta) == snapguard_btrfs::NESTED_PLACEHOLDER_INO {
            return Err(elsewhere(
                "it is the empty placeholder btrfs leaves in a snapshot where a nested \
                 subvolume was (after a root rollback the snapshot subvolume must be mounted \
                 there, see docs/local.md); mount the snapshot subvolume at this path",
            ));
        }
        if !snapguard_btrfs::is_btrfs(dir)
            .map_err(self.btrfs_err("check the snapshot directory"))?
        {
            return Err(elsewhere("it is not on btrfs"));
        }
        let a = snapguard_btrfs::fs_info(dir).map_err(self.btrfs_err("read the filesystem"))?;
        let b = snapguard_btrfs::fs_info(self.subvolume())
            .map_err(self.btrfs_err("read the filesystem"))?;
        if a.fsid != b.fsid {
            return Err(elsewhere(
                "it is on another btrfs filesystem than the subvolume (snapshots can only be made \
                 on the same filesystem)",
            ));
        }
        Ok(())
    }

    /// Every complete snapshot, ascending by number. Incomplete and damaged entries are left
    /// out (see [`Store::incomplete`]).
    pub fn list(&self) -> Result<Vec<LocalSnapshot>> {
        Ok(self
            .scan()?
            .into_iter()
            .filter_map(|e| match e {
                Entry::Complete(s) => Some(*s),
                Entry::Incomplete(i) => {
                    if let IncompleteState::Damaged(why) = &i.state {
                        tracing::warn!(
                            "config {}: snapshot {} is not listed: {why}",
                            self.name,
                            i.number
                        );
                    }
                    None
                }
            })
            .collect())
    }

    /// The complete snapshot `number`.
    pub fn get(&self, number: u32) -> Result<LocalSnapshot> {
        let dir = self.entry_dir(number);
        match self.read_entry(number, &dir)? {
            Some(Entry::Complete(s)) => Ok(*s),
            Some(Entry::Incomplete(i)) => Err(Error::IncompleteSnapshot {
                config: self.name.clone(),
                number,
                dir: i.dir,
                detail: match i.state {
                    IncompleteState::Damaged(why) => why,
                    IncompleteState::Foreign => "it was not made by SnapGuard".into(),
                    _ => "its creation or deletion was interrupted; 'snapguard local cleanup' \
                          removes it"
                        .into(),
                },
            }),
            None => Err(Error::NoSuchSnapshot {
                config: self.name.clone(),
                number,
                dir: self.snapshot_dir.clone(),
            }),
        }
    }

    /// The entries of the snapshot directory that are not complete snapshots.
    pub fn incomplete(&self) -> Result<Vec<Incomplete>> {
        Ok(self
            .scan()?
            .into_iter()
            .filter_map(|e| match e {
                Entry::Incomplete(i) => Some(i),
                Entry::Complete(_) => None,
            })
            .collect())
    }

    fn scan(&self) -> Result<Vec<Entry>> {
        let dir = &self.snapshot_dir;
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list the snapshot directory", dir, e)),
        };
        let mut numbers = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("list the snapshot directory", dir, e))?;
            if let Some(n) = ent.file_name().to_str().and_then(parse_number) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        let mut out = Vec::new();
        for n in numbers {
            if let Some(e) = self.read_entry(n, &self.entry_dir(n))? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The entry in `dir`, or `None` if there is none (or it vanished meanwhile).
    fn read_entry(&self, number: u32, dir: &Path) -> Result<Option<Entry>> {
        let incomplete = |state| {
            Ok(Some(Entry::Incomplete(Incomplete {
                number,
                state,
                dir: dir.to_path_buf(),
            })))
        };
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", dir, e)),
            Ok(m) if !m.is_dir() => return Ok(None),
            Ok(_) => {}
        }
        let info = dir.join(INFO_FILE);
        match std::fs::read(&info) {
            Ok(bytes) => {
                return match serde_json::from_slice::<LocalSnapshot>(&bytes) {
                    Ok(mut s) if s.number == number => {
                        s.path = dir.join(SNAPSHOT_NAME);
                        Ok(Some(Entry::Complete(Box::new(s))))
                    }
                    Ok(s) => incomplete(IncompleteState::Damaged(format!(
                        "{} names snapshot {} instead of {number}",
                        info.display(),
                        s.number
                    ))),
                    Err(e) => incomplete(IncompleteState::Damaged(format!(
                        "{} cannot be parsed: {e}",
                        info.display()
                    ))),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return incomplete(IncompleteState::Damaged(format!(
                    "cannot read {}: {e}",
                    info.display()
                )))
            }
        }
        if dir.join(DELETING_FILE).exists() {
            return incomplete(IncompleteState::Deleting);
        }
        if dir.join(CREATING_FILE).exists() {
            return incomplete(IncompleteState::Creating);
        }
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("list", dir, e))?;
            if !is_temp_name(&ent.file_name()) {
                return incomplete(IncompleteState::Foreign);
            }
        }
        incomplete(IncompleteState::Empty)
    }

    /// A new read-only snapshot of the configured subvolume, numbered one above every number
    /// ever used in this snapshot directory. Creates the snapshot directory (as a subvolume) on
    /// first use.
    pub fn create(&self, opts: &CreateOptions) -> Result<LocalSnapshot> {
        self.create_inner(self.subvolume(), opts, &Extra::default())
    }

    /// The same as [`Store::create`], but the snapshot is taken of `source`, another subvolume
    /// on the same filesystem (live mode turns its merged view into a subvolume first). The
    /// info records `created_from`.
    pub fn create_from(&self, source: &Path, opts: &CreateOptions) -> Result<LocalSnapshot> {
        self.create_inner(
            source,
            opts,
            &Extra {
                created_from: Some(source.to_path_buf()),
                ..Extra::default()
            },
        )
    }

    /// [`Store::create`] with the recorded time set to `unix` seconds and `nanos` instead of the
    /// snapshot's creation time. Only for tests of time-based retention (`local create --time`,
    /// hidden): the btrfs snapshot is still taken now.
    pub fn create_at(&self, opts: &CreateOptions, unix: i64, nanos: u32) -> Result<LocalSnapshot> {
        self.create_inner(
            self.subvolume(),
            opts,
            &Extra {
                time: Some((unix, nanos)),
                ..Extra::default()
            },
        )
    }

    /// A writable numbered copy of snapshot `of` (the new root of a root-filesystem rollback).
    pub(crate) fn create_writable_copy(
        &self,
        of: &LocalSnapshot,
        opts: &CreateOptions,
    ) -> Result<LocalSnapshot> {
        self.create_inner(
            &of.path,
            opts,
            &Extra {
                created_from: Some(of.path.clone()),
                writable: true,
                ..Extra::default()
            },
        )
    }

    fn check_options(&self, opts: &CreateOptions) -> Result<()> {
        let invalid = |reason: String| Error::InvalidOptions {
            config: self.name.clone(),
            reason,
        };
        match (opts.kind, opts.pre_number) {
            (LocalKind::Post, None) => {
                return Err(invalid(
                    "a post snapshot needs the number of its pre snapshot (--post N)".into(),
                ))
            }
            (LocalKind::Post, Some(pre)) => {
                let p = self.get(pre)?;
                if p.kind != LocalKind::Pre {
                    return Err(invalid(format!(
                        "snapshot {pre} is a {} snapshot, not a pre snapshot; give the number \
                         that 'local create --pre' printed",
                        p.kind
                    )));
                }
                if let Some(post) = self
                    .list()?
                    .into_iter()
                    .find(|s| s.kind == LocalKind::Post && s.pre_number == Some(pre))
                {
                    return Err(invalid(format!(
                        "pre snapshot {pre} already has its post snapshot {}",
                        post.number
                    )));
                }
            }
            (_, Some(_)) => {
                return Err(invalid("only a post snapshot names a pre snapshot".into()))
            }
            (_, None) => {}
        }
        for key in opts.userdata.keys() {
            if key.is_empty() || key.contains('=') || key.contains(',') {
                return Err(invalid(format!(
                    "userdata key {key:?} is invalid: give KEY=VALUE with a non-empty key \
                     without '=' or ','"
                )));
            }
        }
        if opts.tags.iter().any(|t| t.is_empty()) {
            return Err(invalid("a tag is empty".into()));
        }
        Ok(())
    }

    fn create_inner(
        &self,
        source: &Path,
        opts: &CreateOptions,
        extra: &Extra,
    ) -> Result<LocalSnapshot> {
        self.ensure_snapshot_dir()?;
        let _lock = self.lock()?;
        self.check_options(opts)?;
        let src = snapguard_btrfs::subvolume_info(source)
            .map_err(self.btrfs_err(format_args!("read subvolume {}", source.display())))?;
        let number = self.next_number()?;
        self.write_last_number(number)?;
        let dir = self.entry_dir(number);
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .map_err(|e| Error::io("create", &dir, e))?;
        fsync_dir(&self.snapshot_dir)?;
        let creating = CreatingRecord {
            number,
            source_uuid: src.uuid.to_string(),
            source: source.to_path_buf(),
        };
        write_atomic(&dir, CREATING_FILE, &to_json(&creating)?)?;
        let path = dir.join(SNAPSHOT_NAME);
        // Commit what was written so far first, so that the snapshot's own transaction holds
        // as little as possible: a backup of this snapshot counts changes made in that
        // transaction as changed for the next backup (docs/btrfs.md).
        if let Err(e) = snapguard_btrfs::sync(source) {
            tracing::debug!("{e}");
        }
        snapguard_btrfs::snapshot(source, &path, !extra.writable).map_err(self.btrfs_err(
            format_args!(
                "snapshot {}: cannot create snapshot {number}",
                source.display()
            ),
        ))?;
        let sub = snapguard_btrfs::subvolume_info(&path)
            .map_err(self.btrfs_err(format_args!("read new snapshot {number}")))?;
        let (unix, nanos) = extra.time.unwrap_or(sub.otime);
        let snap = LocalSnapshot {
            version: INFO_VERSION,
            number,
            time: rfc3339(unix, nanos),
            unix,
            kind: opts.kind,
            pre_number: opts.pre_number,
            description: opts.description.clone(),
            tags: opts.tags.clone(),
            cleanup: opts.cleanup,
            userdata: opts.userdata.clone(),
            uuid: sub.uuid.to_string(),
            generation: sub.otransid,
            source_uuid: src.uuid.to_string(),
            created_from: extra.created_from.clone(),
            writable: extra.writable,
            path: path.clone(),
        };
        // The commit point: from here on the snapshot is listed.
        write_atomic(&dir, INFO_FILE, &to_json(&snap)?)?;
        remove_file_if_exists(&dir.join(CREATING_FILE))?;
        fsync_dir(&dir)?;
        tracing::info!(
            "config {}: created snapshot {number} of {}",
            self.name,
            source.display()
        );
        Ok(snap)
    }

    /// Creates the snapshot directory as a btrfs subvolume (mode 0750, as Snapper: older
    /// snapshots may hold files whose permissions were tightened since) if it does not exist.
    fn ensure_snapshot_dir(&self) -> Result<()> {
        let dir = &self.snapshot_dir;
        if std::fs::symlink_metadata(dir).is_ok() {
            return self.check_snapshot_dir();
        }
        match dir.parent() {
            Some(p) if p.is_dir() => {}
            _ => {
                return Err(Error::SnapshotDirUnusable {
                    config: self.name.clone(),
                    path: dir.clone(),
                    reason: "its parent directory does not exist; create it, or set snapshot_dir \
                             to a directory on the subvolume's filesystem"
                        .into(),
                })
            }
        }
        if let Err(e) = snapguard_btrfs::create_subvolume(dir) {
            // Another process may have created it first.
            if std::fs::symlink_metadata(dir).is_err() {
                return Err(self.btrfs_err("create the snapshot directory")(e));
            }
            return self.check_snapshot_dir();
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
            .map_err(|e| Error::io("set the permissions of", dir, e))?;
        if let Some(p) = dir.parent() {
            fsync_dir(p)?;
        }
        tracing::info!(
            "config {}: created the snapshot directory {} (a btrfs subvolume)",
            self.name,
            dir.display()
        );
        self.check_snapshot_dir()
    }

    fn lock(&self) -> Result<FileLock> {
        let path = self.snapshot_dir.join(LOCK_FILE);
        if let Some(lock) = FileLock::try_acquire(&path)? {
            return Ok(lock);
        }
        tracing::warn!(
            "config {}: waiting for another snapguard process working on {}",
            self.name,
            self.snapshot_dir.display()
        );
        FileLock::acquire(&path)
    }

    fn next_number(&self) -> Result<u32> {
        let path = self.snapshot_dir.join(LAST_NUMBER_FILE);
        let last = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<u32>().map_err(|_| Error::Damaged {
                config: self.name.clone(),
                path: path.clone(),
                detail: format!("{:?} is not a snapshot number", s.trim()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let mut max = last;
        let rd = std::fs::read_dir(&self.snapshot_dir)
            .map_err(|e| Error::io("list the snapshot directory", &self.snapshot_dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("list", &self.snapshot_dir, e))?;
            if let Some(n) = ent.file_name().to_str().and_then(parse_number) {
                max = max.max(n);
            }
        }
        max.checked_add(1).ok_or_else(|| Error::Damaged {
            config: self.name.clone(),
            path,
            detail: "every snapshot number is used up".into(),
        })
    }

    fn write_last_number(&self, n: u32) -> Result<()> {
        write_atomic(
            &self.snapshot_dir,
            LAST_NUMBER_FILE,
            format!("{n}\n").as_bytes(),
        )
    }

    /// Reads the facts [`Store::status`] needs once: the mount table, the default subvolume and
    /// the qgroup sizes (`None` without quotas). The default subvolume needs root; without it
    /// `default` is unknown.
    pub fn use_context(&self) -> Result<UseContext> {
        let fs = snapguard_btrfs::fs_info(self.subvolume())
            .map_err(self.btrfs_err("read the filesystem"))?;
        let mounts = FsMounts::of_filesystem(fs.fsid)?;
        let default_id = match snapguard_btrfs::default_subvolume(self.subvolume()) {
            Ok(id) => Some(id),
            Err(snapguard_btrfs::Error::NeedsRoot { .. }) => None,
            Err(e) => return Err(self.btrfs_err("read the default subvolume")(e)),
        };
        let qgroups = match snapguard_btrfs::qgroup_usage(self.subvolume()) {
            Ok(q) => q,
            Err(snapguard_btrfs::Error::NeedsRoot { .. }) => None,
            Err(e) => return Err(self.btrfs_err("read the qgroup sizes")(e)),
        };
        Ok(UseContext {
            mounts,
            default_id,
            qgroups,
        })
    }

    /// Mounts, default-subvolume, live-mode and size facts of one snapshot.
    pub fn status(&self, snap: &LocalSnapshot, ctx: &UseContext) -> Result<SnapshotStatus> {
        let info = snapguard_btrfs::subvolume_info(&snap.path)
            .map_err(self.btrfs_err(format_args!("read snapshot {}", snap.number)))?;
        let live_mounts: Vec<PathBuf> = ctx
            .mounts
            .overlays_on(&snap.path)
            .into_iter()
            .map(Path::to_path_buf)
            .collect();
        Ok(SnapshotStatus {
            subvolume_id: info.id,
            mounted_at: ctx
                .mounts
                .mount_points_of(info.id)
                .into_iter()
                .map(Path::to_path_buf)
                .collect(),
            default: ctx.default_id.map(|d| d == info.id),
            live: self.live_lock_path(snap.number).exists() || !live_mounts.is_empty(),
            live_mounts,
            exclusive_bytes: ctx
                .qgroups
                .as_ref()
                .and_then(|q| q.get(&info.id))
                .map(|u| u.exclusive),
        })
    }

    /// Every reason snapshot `snap` may not be deleted (empty: it may).
    pub fn protections(&self, snap: &LocalSnapshot, ctx: &UseContext) -> Result<Vec<Protection>> {
        let st = self.status(snap, ctx)?;
        let mut out = Vec::new();
        if !st.mounted_at.is_empty() {
            out.push(Protection::Mounted(st.mounted_at));
        }
        match st.default {
            Some(true) => out.push(Protection::Default),
            Some(false) => {}
            None => {
                return Err(Error::NeedsRoot {
                    config: self.name.clone(),
                    action: "check whether a snapshot is the default subvolume",
                })
            }
        }
        if st.live {
            out.push(Protection::Live(st.live_mounts));
        }
        if snap.is_important() {
            out.push(Protection::Important);
        }
        Ok(out)
    }

    /// The snapshots as the cleanup policy sees them: with exclusive sizes when quotas are on,
    /// and `protected` set for every snapshot with a [`Protection`].
    pub fn policy_view(&self, snaps: &[LocalSnapshot]) -> Result<Vec<LocalSnapshotInfo>> {
        let ctx = self.use_context()?;
        let mut out = Vec::with_capacity(snaps.len());
        for s in snaps {
            let st = self.status(s, &ctx)?;
            out.push(LocalSnapshotInfo {
                number: s.number,
                time: s.unix,
                kind: s.kind,
                pre_number: s.pre_number,
                cleanup: s.cleanup,
                exclusive_bytes: st.exclusive_bytes,
                protected: !self.protections(s, &ctx)?.is_empty(),
            });
        }
        Ok(out)
    }

    /// Deletes snapshot `number`, refusing protected ones ([`Error::Protected`]).
    pub fn delete(&self, number: u32) -> Result<()> {
        self.delete_with(number, &DeleteOptions::default())
    }

    /// [`Store::delete`] with options.
    pub fn delete_with(&self, number: u32, opts: &DeleteOptions) -> Result<()> {
        let _lock = self.lock()?;
        let snap = self.get(number)?;
        let ctx = self.use_context()?;
        let refusals: Vec<Protection> = self
            .protections(&snap, &ctx)?
            .into_iter()
            .filter(|p| !(opts.allow_important && *p == Protection::Important))
            .collect();
        if let Some(p) = refusals.into_iter().next() {
            return Err(Error::Protected {
                config: self.name.clone(),
                number,
                path: snap.path.clone(),
                reason: p.to_string(),
            });
        }
        let expected = parse_uuid(&self.name, &snap.uuid, &snap.path)?;
        let source = parse_uuid(&self.name, &snap.source_uuid, &snap.path)?;
        self.verify_ours(number, Some(expected), source)?;
        let dir = self.entry_dir(number);
        // From here on the snapshot is no longer listed; a crash leaves an incomplete entry
        // that `remove_incomplete` finishes.
        std::fs::rename(dir.join(INFO_FILE), dir.join(DELETING_FILE))
            .map_err(|e| Error::io("rename", dir.join(INFO_FILE), e))?;
        fsync_dir(&dir)?;
        self.finish_delete(number, Some(expected), source)
    }

    /// Checks that `<snapshot_dir>/<N>/snapshot` is a subvolume that SnapGuard made: its
    /// `parent_uuid` is `source` and (if given) its UUID is `expected`.
    fn verify_ours(
        &self,
        number: u32,
        expected: Option<Uuid>,
        source: Uuid,
    ) -> Result<Option<Subvolume>> {
        let path = self.snapshot_path(number);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let refuse = |detail: String| Error::NotOurs {
            config: self.name.clone(),
            number,
            path: path.clone(),
            detail,
        };
        if !snapguard_btrfs::is_subvolume(&path)
            .map_err(self.btrfs_err(format_args!("check snapshot {number}")))?
        {
            return Err(refuse("it is not a btrfs subvolume".into()));
        }
        let info = snapguard_btrfs::subvolume_info(&path)
            .map_err(self.btrfs_err(format_args!("read snapshot {number}")))?;
        if info.parent_uuid != Some(source) {
            return Err(refuse(format!(
                "it is not a snapshot of the subvolume recorded for it (its parent UUID is {}, \
                 expected {source})",
                info.parent_uuid
                    .map_or_else(|| "none".to_string(), |u| u.to_string())
            )));
        }
        if let Some(u) = expected {
            if info.uuid != u {
                return Err(refuse(format!(
                    "its UUID is {}, but info.json records {u}",
                    info.uuid
                )));
            }
        }
        Ok(Some(info))
    }

    fn finish_delete(&self, number: u32, expected: Option<Uuid>, source: Uuid) -> Result<()> {
        let path = self.snapshot_path(number);
        if self.verify_ours(number, expected, source)?.is_some() {
            snapguard_btrfs::delete_subvolume(&path)
                .map_err(self.btrfs_err(format_args!("delete snapshot {number}")))?;
        }
        self.remove_entry_dir(number)?;
        tracing::info!("config {}: deleted snapshot {number}", self.name);
        Ok(())
    }

    /// Removes SnapGuard's own files from an entry directory, then the directory.
    fn remove_entry_dir(&self, number: u32) -> Result<()> {
        let dir = self.entry_dir(number);
        for f in [DELETING_FILE, CREATING_FILE, INFO_FILE] {
            remove_file_if_exists(&dir.join(f))?;
        }
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for ent in rd.flatten() {
                if is_temp_name(&ent.file_name()) {
                    remove_file_if_exists(&ent.path())?;
                }
            }
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &dir, e)),
        }
        fsync_dir(&self.snapshot_dir)
    }

    /// Finishes off an incomplete entry (an interrupted create or delete, or an empty
    /// directory): deletes its btrfs snapshot, after checking it is the one SnapGuard made, and
    /// its directory. Refuses foreign and damaged entries.
    pub fn remove_incomplete(&self, number: u32) -> Result<()> {
        let _lock = self.lock()?;
        let dir = self.entry_dir(number);
        let Some(Entry::Incomplete(inc)) = self.read_entry(number, &dir)? else {
            return Err(Error::InvalidOptions {
                config: self.name.clone(),
                reason: format!("snapshot {number} is not an incomplete entry"),
            });
        };
        match inc.state {
            IncompleteState::Empty => self.remove_entry_dir(number),
            IncompleteState::Creating => {
                let rec: CreatingRecord = read_json(&self.name, &dir.join(CREATING_FILE))?;
                let source = parse_uuid(&self.name, &rec.source_uuid, &dir)?;
                self.finish_delete(number, None, source)
            }
            IncompleteState::Deleting => {
                let rec: LocalSnapshot = read_json(&self.name, &dir.join(DELETING_FILE))?;
                let expected = parse_uuid(&self.name, &rec.uuid, &dir)?;
                let source = parse_uuid(&self.name, &rec.source_uuid, &dir)?;
                self.finish_delete(number, Some(expected), source)
            }
            IncompleteState::Foreign | IncompleteState::Damaged(_) => Err(Error::NotOurs {
                config: self.name.clone(),
                number,
                path: dir,
                detail: "it has no SnapGuard record to check it against; remove it by hand if \
                         it is not needed"
                    .into(),
            }),
        }
    }
}

/// Checks a selection of snapshots to delete together: a pre snapshot and its post snapshot
/// are deleted together or not at all.
pub fn check_pairs(config: &str, all: &[LocalSnapshot], selected: &[u32]) -> Result<()> {
    for s in all {
        if s.kind != LocalKind::Post {
            continue;
        }
        let Some(pre) = s.pre_number else { continue };
        if !all.iter().any(|p| p.number == pre) {
            continue;
        }
        let (has_pre, has_post) = (selected.contains(&pre), selected.contains(&s.number));
        if has_pre != has_post {
            let (given, other) = if has_pre {
                (pre, s.number)
            } else {
                (s.number, pre)
            };
            return Err(Error::PairSplit {
                config: config.to_string(),
                given,
                other,
                pre,
                post: s.number,
            });
        }
    }
    Ok(())
}

#[derive(Default)]
struct Extra {
    time: Option<(i64, u32)>,
    created_from: Option<PathBuf>,
    writable: bool,
}

enum Entry {
    Complete(Box<LocalSnapshot>),
    Incomplete(Incomplete),
}

/// A snapshot number written the canonical way: 1 to 4294967295, no sign, no leading zero.
pub fn parse_number(s: &str) -> Option<u32> {
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n.starts_with('.') && n.ends_with(".tmp")
}

fn parse_uuid(config: &str, s: &str, path: &Path) -> Result<Uuid> {
    s.parse().map_err(|e: String| Error::Damaged {
        config: config.to_string(),
        path: path.to_path_buf(),
        detail: e,
    })
}

/// RFC 3339 in UTC with nanoseconds.
pub fn rfc3339(unix: i64, nanos: u32) -> String {
    use chrono::TimeZone;
    match chrono::Utc.timestamp_opt(unix, nanos).single() {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        None => format!("{unix}.{nanos:09}"),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(config: &str, path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Damaged {
        config: config.to_string(),
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
