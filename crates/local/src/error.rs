//! The error type of the local snapshot tier: one `#[non_exhaustive]` enum for the crate. Every
//! variant names the object concerned, so a message can be shown to the user as it is.

use std::path::PathBuf;

/// What can go wrong in the local snapshot tier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call on `path` failed; `action` says what was being done ("read directory").
    /// (`cause` is not an error `source`: the message already contains it, and anyhow's `{:#}`
    /// would print it twice.)
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A path given to select part of a tree is absolute or climbs out of it with `..`.
    #[error(
        "path {} is not inside the snapshot: {reason}; give paths relative to the subvolume, without '..'",
        path.display()
    )]
    PathOutsideTree { path: PathBuf, reason: &'static str },
    /// A tree given to `diff` or `undo` is missing or not a directory.
    #[error("{} is not a directory (expected a snapshot or subvolume directory)", path.display())]
    NotADirectory { path: PathBuf },

    // The snapshot store and rollback (store.rs, rollback.rs, cleanup.rs). Their messages name
    // the configuration and, where there is one, the snapshot number and path.
    /// The configured subvolume does not exist.
    #[error("config {config}: subvolume {} does not exist; correct 'subvolume' in [local.{config}] of the config file, or create it with 'btrfs subvolume create'", path.display())]
    SubvolumeMissing { config: String, path: PathBuf },
    /// The configured subvolume is not on btrfs.
    #[error("config {config}: {} is not on a btrfs filesystem; local snapshots need btrfs", path.display())]
    NotBtrfs { config: String, path: PathBuf },
    /// The configured path is on btrfs but not the root of a subvolume.
    #[error("config {config}: {} is not a btrfs subvolume (only whole subvolumes can be snapshotted); make it one with 'btrfs subvolume create', or name the subvolume that contains it", path.display())]
    NotSubvolume { config: String, path: PathBuf },
    /// A btrfs operation failed; `context` names the configuration and what was being done.
    #[error("{context}: {cause}")]
    Btrfs {
        context: String,
        cause: snapguard_btrfs::Error,
    },
    /// The snapshot directory cannot hold snapshots.
    #[error("config {config}: snapshot directory {} cannot be used: {reason}", path.display())]
    SnapshotDirUnusable {
        config: String,
        path: PathBuf,
        reason: String,
    },
    /// No complete snapshot with this number.
    #[error("config {config}: there is no snapshot {number} in {}; list the snapshots with 'snapguard local list {config}'", dir.display())]
    NoSuchSnapshot {
        config: String,
        number: u32,
        dir: PathBuf,
    },
    /// The entry exists but is not a complete snapshot.
    #[error("config {config}: snapshot {number} ({}) is incomplete: {detail}", dir.display())]
    IncompleteSnapshot {
        config: String,
        number: u32,
        dir: PathBuf,
        detail: String,
    },
    /// A snapshot that must not be deleted.
    #[error("config {config}: refusing to delete snapshot {number} ({}): {reason}", path.display())]
    Protected {
        config: String,
        number: u32,
        path: PathBuf,
        reason: String,
    },
    /// A subvolume that SnapGuard would delete is not the one it made.
    #[error("config {config}: refusing to delete {} (snapshot {number}): {detail}", path.display())]
    NotOurs {
        config: String,
        number: u32,
        path: PathBuf,
        detail: String,
    },
    /// Only one half of a pre/post pair was selected for deletion.
    #[error("config {config}: snapshot {given} is one of the pair {pre} (pre) and {post} (post), which are only deleted together; give both numbers ('{pre} {post}' or '{pre}-{post}')")]
    PairSplit {
        config: String,
        given: u32,
        other: u32,
        pre: u32,
        post: u32,
    },
    /// Options of a create, delete or rollback that do not fit together.
    #[error("config {config}: {reason}")]
    InvalidOptions { config: String, reason: String },
    /// A SnapGuard file of the snapshot directory is damaged.
    #[error("config {config}: {} is damaged: {detail}", path.display())]
    Damaged {
        config: String,
        path: PathBuf,
        detail: String,
    },
    /// The operation needs root (CAP_SYS_ADMIN).
    #[error("config {config}: cannot {action}: this needs root (CAP_SYS_ADMIN); run it as root")]
    NeedsRoot {
        config: String,
        action: &'static str,
    },
    /// A rollback of the subvolume was interrupted; its journal says how far it got.
    #[error("config {config}: a rollback of this subvolume was interrupted (journal {}); finish it with 'snapguard local rollback {config} --resume' before anything else", journal.display())]
    RollbackInterrupted { config: String, journal: PathBuf },
    /// The subvolume cannot be swapped because it is in use as a mount.
    #[error("config {config}: cannot roll back {} in place: it is mounted at {mounts} (the mount would keep showing the old subvolume); unmount it first, or use 'snapguard local rollback {config} ID --set-default' and mount the new default subvolume", path.display())]
    SubvolumeBusy {
        config: String,
        path: PathBuf,
        mounts: String,
    },
    /// A rollback is not started because of the subvolume's state (what to do is said).
    #[error("config {config}: refusing to roll back: {reason}")]
    RollbackRefused { config: String, reason: String },
    /// A step of a rollback failed; the journal lets `--resume` go on once it is fixed.
    #[error("config {config}: rollback failed: {detail}; fix the cause, then finish it with 'snapguard local rollback {config} --resume'")]
    RollbackFailed { config: String, detail: String },
    /// A bug: an invariant did not hold.
    #[error("internal error: {0}; please report it")]
    Internal(String),

    // Live mode and replication (live.rs, send.rs).
    /// Live mode (`snapguard live`): the session of `config` is missing, already active, or in
    /// a state that prevents the operation; `detail` says which and what to do.
    #[error("live session of config '{config}': {detail}")]
    Live { config: String, detail: String },
    /// The upper layer of a live session holds something that commit cannot apply.
    #[error("cannot commit {}: {detail}", path.display())]
    UpperLayer { path: PathBuf, detail: String },
    /// Replication (`snapguard local send`) of `config` to `target` failed.
    #[error("sending snapshots of config '{config}' to {target}: {detail}")]
    Send {
        config: String,
        target: String,
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            action,
            path: path.into(),
            cause: source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
