//! OverlayFS live mode: a read-only snapshot as the lower layer of an overlay with a throwaway
//! upper layer, so that changes can be tried out and then thrown away (`discard`) or turned
//! into a new snapshot (`commit`). Documented for users in `docs/live.md`.
//!
//! A session of configuration `C` consists of:
//!
//! ```text
//! <run_dir>/C.json             the session record (LiveSession), written first, removed last
//! <run_dir>/C.lock             flock(2): one live command per configuration at a time
//! <run_dir>/C/layer            a tmpfs (mode 0700) holding upper/ and work/ (default), or
//! <DIR>/upper, <DIR>/work      a scratch directory given with --upper DIR
//! <run_dir>/C/merged           the overlay mount (default mount point)
//! <snapshot_dir>/<N>/live.lock the session record again: protects snapshot N from deletion
//! ```
//!
//! `run_dir` is `/run/snapguard/live` (a tmpfs on a normal system, so records vanish with the
//! mounts at reboot; a `live.lock` from an earlier boot is recognised as stale by its boot id).
//!
//! Commit never changes the lower snapshot. It unmounts the overlay (so the upper layer holds
//! still), makes a writable btrfs snapshot of the lower snapshot under the temporary name
//! `<snapshot_dir>/.live-commit-C`, applies the upper layer onto it ([`apply`]), makes it
//! read-only and registers it with [`Store::create_from`] as the next number, then deletes the
//! temporary subvolume and ends the session. A crash before registration leaves only the
//! temporary subvolume, which is never listed and is deleted by the next commit or discard of
//! that configuration; a failure remounts the overlay so the session goes on unchanged.

mod apply;
mod copy;
mod overlay;

pub use apply::{apply_upper, ApplyStats};
pub use overlay::parse_tmpfs_size;

use crate::files::{
    remove_dir_if_exists, remove_file_if_exists, remove_tree_if_exists, to_json, write_atomic,
    FileLock,
};
use crate::store::{CreateOptions, LocalSnapshot, Store};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Where session records and default mounts live.
pub const DEFAULT_RUN_DIR: &str = "/run/snapguard/live";
/// The description of the snapshot `live start` takes when no ID is given.
pub const START_DESCRIPTION: &str = "live mode";
const RECORD_VERSION: u32 = 1;

/// Where the upper layer lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpperSpec {
    /// A tmpfs of its own, optionally limited (`size=` of tmpfs: `2G`, `25%`).
    Tmpfs { size: Option<String> },
    /// `upper/` and `work/` in this directory (created if missing), which must be on a
    /// filesystem that supports overlay upper layers (ext4, xfs, btrfs, tmpfs).
    Dir(PathBuf),
}

/// Options of [`start`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartOptions {
    /// Where session records are kept ([`DEFAULT_RUN_DIR`]).
    pub run_dir: PathBuf,
    /// Where to mount the merged view; default `<run_dir>/<config>/merged`.
    pub mountpoint: Option<PathBuf>,
    pub upper: UpperSpec,
}

/// Where a session's upper layer is, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum UpperLayer {
    /// A tmpfs mounted at `mount`.
    Tmpfs {
        mount: PathBuf,
        size: Option<String>,
    },
    /// A scratch directory; `created` if the session made it (and so removes it).
    Dir { dir: PathBuf, created: bool },
}

/// One live session, as recorded in `<run_dir>/<config>.json` and in the lower snapshot's
/// `live.lock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSession {
    pub version: u32,
    pub config: String,
    /// The number of the lower snapshot.
    pub lower: u32,
    /// `<snapshot_dir>/<lower>/snapshot`.
    pub lower_path: PathBuf,
    /// Whether `live start` took the lower snapshot itself (no ID given).
    pub lower_created: bool,
    pub snapshot_dir: PathBuf,
    /// Where the merged view is mounted.
    pub mountpoint: PathBuf,
    /// Whether the session created the mount point directory (and so removes it).
    pub mountpoint_created: bool,
    pub upper: UpperLayer,
    pub upper_dir: PathBuf,
    pub work_dir: PathBuf,
    /// When the session started: RFC 3339, UTC, with nanoseconds, and as Unix seconds.
    pub time: String,
    pub unix: i64,
    /// `/proc/sys/kernel/random/boot_id` when it started: a record from another boot is stale.
    pub boot_id: String,
    /// The session record's path.
    pub state_file: PathBuf,
}

/// A session and what is true of it now, for `live status`.
#[derive(Clone, Debug, Serialize)]
pub struct SessionStatus {
    #[serde(flatten)]
    pub session: LiveSession,
    /// Whether the overlay is mounted at the mount point.
    pub mounted: bool,
    /// Whether the upper layer still exists (a commit needs it).
    pub upper_present: bool,
    /// Bytes used by the tmpfs of the upper layer.
    pub upper_used_bytes: Option<u64>,
}

/// What `live commit` did.
#[derive(Clone, Debug, Serialize)]
pub struct CommitReport {
    pub session: LiveSession,
    pub snapshot: LocalSnapshot,
    pub changes: ApplyStats,
}

/// What `live discard` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DiscardReport {
    /// The session that ended, if there was one.
    pub session: Option<LiveSession>,
    /// Snapshots whose stale `live.lock` (from an earlier boot or a crashed start) was removed.
    pub stale_locks_removed: Vec<u32>,
}

/// The current boot's id.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether the `live.lock` at `path` belongs to a session that may still be running: written
/// during this boot, and its session record still exists and names the same session. A lock
/// that cannot be read counts as active (never unprotect by mistake).
pub fn lock_is_active(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return path.exists();
    };
    let Ok(lock) = serde_json::from_slice::<LiveSession>(&bytes) else {
        return true;
    };
    if lock.boot_id != boot_id() {
        return false;
    }
    match std::fs::read(&lock.state_file) {
        Ok(b) => serde_json::from_slice::<LiveSession>(&b)
            .map(|s| s.lower_path == lock.lower_path && s.unix == lock.unix)
            .unwrap_or(true),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

fn live_error(config: &str, detail: impl Into<String>) -> Error {
    Error::Live {
        config: config.to_string(),
        detail: detail.into(),
    }
}

/// Configuration names become file names here.
fn check_config_name(config: &str) -> Result<()> {
    let ok = !config.is_empty()
        && !config.starts_with('.')
        && config
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(live_error(
            config,
            "live mode needs a configuration name of letters, digits, '_', '-' and '.' \
             (it names files under the run directory)",
        ))
    }
}

fn state_path(run_dir: &Path, config: &str) -> PathBuf {
    run_dir.join(format!("{config}.json"))
}

/// An exclusive flock on `<run_dir>/<config>.lock`, held while a live command works on the
/// configuration; another one is refused rather than queued.
fn lock_config(run_dir: &Path, config: &str) -> Result<FileLock> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(run_dir)
        .map_err(|e| Error::io("create", run_dir, e))?;
    let path = run_dir.join(format!("{config}.lock"));
    FileLock::try_acquire(&path)?.ok_or_else(|| {
        live_error(
            config,
            format!(
                "another 'snapguard live' command is working on it (it holds {}); wait for it \
                 to finish",
                path.display()
            ),
        )
    })
}

/// The session record of `config`, if there is one.
pub fn load(run_dir: &Path, config: &str) -> Result<Option<LiveSession>> {
    check_config_name(config)?;
    let path = state_path(run_dir, config);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Damaged {
                config: config.to_string(),
                path,
                detail: format!(
                    "{e}; remove it after checking 'mount' for leftovers of the session"
                ),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

fn write_record(path: &Path, session: &LiveSession) -> Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Internal(format!(
            "bad record path {}",
            path.display()
        )));
    };
    write_atomic(dir, &name.to_string_lossy(), &to_json(session)?)
}

/// Start a live session of `store`'s configuration on snapshot `id`, or on a new snapshot
/// (described "live mode") when `id` is `None`.
pub fn start(store: &Store, id: Option<u32>, opts: &StartOptions) -> Result<LiveSession> {
    let config = store.name();
    check_config_name(config)?;
    if let UpperSpec::Tmpfs { size: Some(size) } = &opts.upper {
        // It becomes part of the tmpfs mount options.
        parse_tmpfs_size(size).map_err(|e| live_error(config, e))?;
    }
    let _lock = lock_config(&opts.run_dir, config)?;
    if let Some(s) = load(&opts.run_dir, config)? {
        return Err(live_error(
            config,
            format!(
                "a session is already active on snapshot {} (mounted at {}, since {}); end it \
                 with 'snapguard live commit {config}' or 'snapguard live discard {config}' first",
                s.lower,
                s.mountpoint.display(),
                s.time
            ),
        ));
    }
    remove_stale_locks(store)?;
    let (lower, created) = match id {
        Some(n) => (store.get(n)?, false),
        None => (
            store.create(&CreateOptions {
                description: START_DESCRIPTION.into(),
                ..CreateOptions::default()
            })?,
            true,
        ),
    };
    let result = start_on(store, &lower, created, opts);
    if result.is_err() && created {
        if let Err(e) = store.delete(lower.number) {
            tracing::warn!(
                "config {config}: could not delete snapshot {} taken for the failed live \
                 session: {e}",
                lower.number
            );
        }
    }
    result
}

fn start_on(
    store: &Store,
    lower: &LocalSnapshot,
    created: bool,
    opts: &StartOptions,
) -> Result<LiveSession> {
    let config = store.name();
    let ro = snapguard_btrfs::is_readonly(&lower.path).map_err(|e| Error::Btrfs {
        context: format!("config {config}: check snapshot {}", lower.number),
        cause: e,
    })?;
    if !ro {
        return Err(live_error(
            config,
            format!(
                "snapshot {} ({}) is writable; live mode needs a read-only snapshot as its \
                 lower layer",
                lower.number,
                lower.path.display()
            ),
        ));
    }
    let session_dir = opts.run_dir.join(config);
    let (upper, upper_dir, work_dir) = match &opts.upper {
        UpperSpec::Tmpfs { size } => {
            let mount = session_dir.join("layer");
            (
                UpperLayer::Tmpfs {
                    mount: mount.clone(),
                    size: size.clone(),
                },
                mount.join("upper"),
                mount.join("work"),
            )
        }
        UpperSpec::Dir(dir) => {
            let dir = absolute(dir)?;
            if dir.starts_with(&lower.path) || dir.starts_with(store.snapshot_dir()) {
                return Err(live_error(
                    config,
                    format!(
                        "the upper directory {} lies inside the snapshots; choose a scratch \
                         directory elsewhere",
                        dir.display()
                    ),
                ));
            }
            let created = !dir.exists();
            (
                UpperLayer::Dir {
                    dir: dir.clone(),
                    created,
                },
                dir.join("upper"),
                dir.join("work"),
            )
        }
    };
    let (mountpoint, mountpoint_created) = match &opts.mountpoint {
        Some(m) => {
            let m = absolute(m)?;
            let created = !m.exists();
            (m, created)
        }
        None => (session_dir.join("merged"), true),
    };
    let now = chrono::Utc::now();
    let session = LiveSession {
        version: RECORD_VERSION,
        config: config.to_string(),
        lower: lower.number,
        lower_path: lower.path.clone(),
        lower_created: created,
        snapshot_dir: store.snapshot_dir().to_path_buf(),
        mountpoint,
        mountpoint_created,
        upper,
        upper_dir,
        work_dir,
        time: now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        unix: now.timestamp(),
        boot_id: boot_id(),
        state_file: state_path(&opts.run_dir, config),
    };
    check_free(&session)?;
    // The record comes first, so that whatever a crash leaves behind is found by `status`
    // and removed by `discard`.
    write_record(&session.state_file, &session)?;
    match set_up(store, &session) {
        Ok(()) => {
            tracing::info!(
                "config {config}: live session on snapshot {} mounted at {}",
                lower.number,
                session.mountpoint.display()
            );
            Ok(session)
        }
        Err(e) => {
            if let Err(t) = tear_down(&session) {
                tracing::warn!("config {config}: cleaning up the failed live start: {t}");
            }
            Err(e)
        }
    }
}

/// Refuses to start when something the session would create or mount over is already there.
/// Checked before the session record is written, so that undoing a failed or crashed start
/// ([`tear_down`]) only ever removes and unmounts what the session itself made, never a
/// user's directory or another mount.
fn check_free(s: &LiveSession) -> Result<()> {
    let refuse = |detail: String| Err(live_error(&s.config, detail));
    if let UpperLayer::Tmpfs { mount, .. } = &s.upper {
        if overlay::mount_type(mount)?.is_some() {
            return refuse(format!(
                "{} is already a mount point; unmount it first",
                mount.display()
            ));
        }
    }
    for d in [&s.upper_dir, &s.work_dir] {
        if std::fs::symlink_metadata(d).is_ok() {
            let other = match s.upper {
                UpperLayer::Dir { .. } => ", or choose another --upper directory",
                UpperLayer::Tmpfs { .. } => "",
            };
            return refuse(format!(
                "{} already exists (left over from another session?); remove it{other}",
                d.display()
            ));
        }
    }
    if overlay::mount_type(&s.mountpoint)?.is_some() {
        return refuse(format!(
            "{} is already a mount point; choose another --mountpoint",
            s.mountpoint.display()
        ));
    }
    match std::fs::read_dir(&s.mountpoint).map(|mut rd| rd.next().is_some()) {
        Ok(true) => refuse(format!(
            "the mount point {} is not empty; choose an empty or new directory",
            s.mountpoint.display()
        )),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("read", &s.mountpoint, e)),
    }
}

/// Builds the session checked by [`check_free`]: the upper layer, the mount point, the
/// `live.lock` and the overlay mount.
fn set_up(store: &Store, s: &LiveSession) -> Result<()> {
    let mkdir = |p: &Path, mode: u32| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(p)
            .map_err(|e| Error::io("create", p, e))
    };
    match &s.upper {
        UpperLayer::Tmpfs { mount, size } => {
            mkdir(mount, 0o700)?;
            overlay::mount_tmpfs(mount, size.as_deref())?;
        }
        UpperLayer::Dir { dir, .. } => mkdir(dir, 0o700)?,
    }
    std::fs::create_dir(&s.upper_dir).map_err(|e| Error::io("create", &s.upper_dir, e))?;
    std::fs::create_dir(&s.work_dir).map_err(|e| Error::io("create", &s.work_dir, e))?;
    // The merged view's root is the upper directory itself: give it the snapshot root's owner,
    // mode, attributes and times, so the merged view starts out identical to the snapshot.
    let root = copy::lstat(&s.lower_path)?;
    copy::copy_metadata(&s.lower_path, &root, &s.upper_dir)?;
    mkdir(&s.mountpoint, 0o755)?;
    // Protect the lower snapshot before the overlay uses it.
    write_record(&store.live_lock_path(s.lower), s)?;
    overlay::mount_overlay(&s.lower_path, &s.upper_dir, &s.work_dir, &s.mountpoint)
}

/// Undo everything a session set up that still exists: the overlay mount, the mount point it
/// created, the upper layer, the `live.lock` and the record. Stops at the first failure to
/// unmount, so that an upper layer still in use is never removed.
fn tear_down(s: &LiveSession) -> Result<()> {
    if overlay::mount_type(&s.mountpoint)?.as_deref() == Some("overlay") {
        overlay::unmount(&s.mountpoint)?;
    }
    if s.mountpoint_created {
        // Not worth failing the discard over: the user may have put something there.
        if let Err(e) = remove_dir_if_exists(&s.mountpoint) {
            tracing::warn!("config {}: {e}", s.config);
        }
    }
    match &s.upper {
        UpperLayer::Tmpfs { mount, .. } => {
            if overlay::mount_type(mount)?.as_deref() == Some("tmpfs") {
                overlay::unmount(mount)?;
            }
            // Anything left is on the filesystem below the (now unmounted) tmpfs.
            for d in [&s.upper_dir, &s.work_dir] {
                remove_tree_if_exists(d)?;
            }
            remove_dir_if_exists(mount)?;
            if let Some(session_dir) = mount.parent() {
                // Only if empty: a user's mount point may live there.
                let _ = std::fs::remove_dir(session_dir);
            }
        }
        UpperLayer::Dir { dir, created } => {
            for d in [&s.upper_dir, &s.work_dir] {
                remove_tree_if_exists(d)?;
            }
            if *created {
                remove_dir_if_exists(dir)?;
            }
        }
    }
    let lock = s
        .snapshot_dir
        .join(s.lower.to_string())
        .join(crate::store::LIVE_LOCK_FILE);
    if let Ok(bytes) = std::fs::read(&lock) {
        if serde_json::from_slice::<LiveSession>(&bytes).ok().as_ref() == Some(s) {
            remove_file_if_exists(&lock)?;
        }
    }
    remove_file_if_exists(&s.state_file)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))
}

/// Remove `live.lock` files of `store`'s snapshots that belong to no running session.
fn remove_stale_locks(store: &Store) -> Result<Vec<u32>> {
    let mut removed = Vec::new();
    for snap in store.list()? {
        let lock = store.live_lock_path(snap.number);
        if lock.exists() && !lock_is_active(&lock) {
            remove_file_if_exists(&lock)?;
            tracing::info!(
                "config {}: removed the stale live-mode lock of snapshot {}",
                store.name(),
                snap.number
            );
            removed.push(snap.number);
        }
    }
    Ok(removed)
}

/// The sessions recorded in `run_dir` (only `config`'s if given), with their current state.
pub fn status(run_dir: &Path, config: Option<&str>) -> Result<Vec<SessionStatus>> {
    let sessions = match config {
        Some(c) => load(run_dir, c)?.into_iter().collect(),
        None => {
            let mut out = Vec::new();
            let rd = match std::fs::read_dir(run_dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(Error::io("list", run_dir, e)),
            };
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
                .collect();
            names.sort();
            for n in names {
                if check_config_name(&n).is_ok() {
                    out.extend(load(run_dir, &n)?);
                }
            }
            out
        }
    };
    sessions
        .into_iter()
        .map(|s| {
            let mounted = overlay::mount_type(&s.mountpoint)?.as_deref() == Some("overlay");
            let (upper_present, used) = match &s.upper {
                UpperLayer::Tmpfs { mount, .. } => {
                    let m = overlay::mount_type(mount)?.as_deref() == Some("tmpfs");
                    let used = m
                        .then(|| rustix::fs::statvfs(mount).ok())
                        .flatten()
                        .map(|v| (v.f_blocks - v.f_bfree) * v.f_frsize);
                    (m && s.upper_dir.is_dir(), used)
                }
                UpperLayer::Dir { .. } => (s.upper_dir.is_dir(), None),
            };
            Ok(SessionStatus {
                session: s,
                mounted,
                upper_present,
                upper_used_bytes: used,
            })
        })
        .collect()
}

/// End the session of `store`'s configuration and drop every change: unmount the overlay,
/// remove the upper and work directories (and free the tmpfs). The lower snapshot stays.
/// Also removes stale `live.lock` files; with no session and no stale lock it is an error.
pub fn discard(store: &Store, run_dir: &Path) -> Result<DiscardReport> {
    let config = store.name();
    check_config_name(config)?;
    let _lock = lock_config(run_dir, config)?;
    let session = load(run_dir, config)?;
    if let Some(s) = &session {
        tear_down(s)?;
        tracing::info!(
            "config {config}: live session on snapshot {} discarded",
            s.lower
        );
    }
    remove_commit_leftover(store)?;
    let stale = remove_stale_locks(store)?;
    if session.is_none() && stale.is_empty() {
        return Err(no_session(config));
    }
    Ok(DiscardReport {
        session,
        stale_locks_removed: stale,
    })
}

fn no_session(config: &str) -> Error {
    live_error(
        config,
        format!("there is no live session; start one with 'snapguard live start {config}'"),
    )
}

fn commit_temp_path(store: &Store) -> PathBuf {
    store
        .snapshot_dir()
        .join(format!(".live-commit-{}", store.name()))
}

/// Delete the temporary subvolume of a commit that crashed.
fn remove_commit_leftover(store: &Store) -> Result<()> {
    let temp = commit_temp_path(store);
    if std::fs::symlink_metadata(&temp).is_err() {
        return Ok(());
    }
    tracing::info!(
        "config {}: deleting {} left by an interrupted live commit",
        store.name(),
        temp.display()
    );
    snapguard_btrfs::delete_subvolume(&temp).map_err(|e| Error::Btrfs {
        context: format!(
            "config {}: delete the leftover of an interrupted live commit",
            store.name()
        ),
        cause: e,
    })
}

/// Turn the merged view of the session of `store`'s configuration into a new snapshot (see
/// the module documentation), then end the session. `description` defaults to
/// "live mode: commit of snapshot N". On failure nothing is registered and the session goes on.
pub fn commit(store: &Store, run_dir: &Path, description: Option<&str>) -> Result<CommitReport> {
    let config = store.name();
    check_config_name(config)?;
    let _lock = lock_config(run_dir, config)?;
    let Some(s) = load(run_dir, config)? else {
        return Err(no_session(config));
    };
    if !s.upper_dir.is_dir()
        || matches!(&s.upper, UpperLayer::Tmpfs { mount, .. }
            if overlay::mount_type(mount)?.as_deref() != Some("tmpfs"))
    {
        return Err(live_error(
            config,
            format!(
                "the upper layer {} is gone (after a reboot or a manual unmount), so there is \
                 nothing to commit; end the session with 'snapguard live discard {config}'",
                s.upper_dir.display()
            ),
        ));
    }
    let was_mounted = overlay::mount_type(&s.mountpoint)?.as_deref() == Some("overlay");
    if was_mounted {
        // Flush and freeze the view: the upper layer must not change while it is applied.
        if let Ok(f) = File::open(&s.mountpoint) {
            let _ = rustix::fs::syncfs(&f);
        }
        overlay::unmount(&s.mountpoint).map_err(|e| {
            live_error(
                config,
                format!("cannot commit while the merged view is in use: {e}"),
            )
        })?;
    }
    let opts = CreateOptions {
        description: description
            .map(str::to_string)
            .unwrap_or_else(|| format!("live mode: commit of snapshot {}", s.lower)),
        ..CreateOptions::default()
    };
    match build_and_register(store, &s, &opts) {
        Ok((snapshot, changes)) => {
            // The commit is done; a failure now must say so, or a second commit would
            // register the same changes again.
            tear_down(&s).map_err(|e| {
                live_error(
                    config,
                    format!(
                        "the changes were committed as snapshot {}, but ending the session \
                         failed: {e}; end it with 'snapguard live discard {config}' (do not \
                         commit again)",
                        snapshot.number
                    ),
                )
            })?;
            tracing::info!(
                "config {config}: live session on snapshot {} committed as snapshot {}",
                s.lower,
                snapshot.number
            );
            Ok(CommitReport {
                session: s,
                snapshot,
                changes,
            })
        }
        Err(e) => {
            let mut detail = format!("{e}; nothing was committed");
            if let Err(c) = remove_commit_leftover(store) {
                detail.push_str(&format!(
                    " (and removing the temporary subvolume failed: {c})"
                ));
            }
            if was_mounted {
                match overlay::mount_overlay(
                    &s.lower_path,
                    &s.upper_dir,
                    &s.work_dir,
                    &s.mountpoint,
                ) {
                    Ok(()) => detail.push_str(&format!(
                        "; the session goes on at {}",
                        s.mountpoint.display()
                    )),
                    Err(m) => detail.push_str(&format!(
                        "; remounting the session failed ({m}); its changes are still in {}",
                        s.upper_dir.display()
                    )),
                }
            }
            Err(live_error(config, detail))
        }
    }
}

fn build_and_register(
    store: &Store,
    s: &LiveSession,
    opts: &CreateOptions,
) -> Result<(LocalSnapshot, ApplyStats)> {
    let config = store.name();
    let btrfs = |what: &str| {
        let context = format!("config {config}: live commit: {what}");
        move |cause| Error::Btrfs { context, cause }
    };
    remove_commit_leftover(store)?;
    let temp = commit_temp_path(store);
    snapguard_btrfs::snapshot(&s.lower_path, &temp, false)
        .map_err(btrfs("make a writable copy of the lower snapshot"))?;
    let changes = apply_upper(&s.upper_dir, &s.lower_path, &temp)?;
    snapguard_btrfs::set_readonly(&temp, true).map_err(btrfs("make the result read-only"))?;
    let snapshot = store.create_from(&temp, opts)?;
    // Registered: from here on a failure must not undo the commit.
    if let Err(e) = snapguard_btrfs::delete_subvolume(&temp) {
        tracing::warn!(
            "config {config}: could not delete the temporary subvolume {}: {e}; the next live \
             commit or discard deletes it",
            temp.display()
        );
    }
    Ok((snapshot, changes))
}
