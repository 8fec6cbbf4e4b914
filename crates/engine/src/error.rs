//! The engine's error type.
//!
//! Every variant names the object concerned and, where there is one, what the user can do.
//! Integrity problems (corrupt or tampered data) are their own variant, never a bare I/O error.

use snapguard_backend::BackendError;
use std::path::PathBuf;

/// Why an engine operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("there is no SnapGuard repository at {location}; create one with 'snapguard init'")]
    RepositoryNotFound { location: String },
    #[error(
        "a repository already exists at {location}; choose another location or use it as it is"
    )]
    AlreadyInitialized { location: String },
    #[error("{location}: {detail}; upgrade SnapGuard to open this repository")]
    NewerFormat { location: String, detail: String },
    #[error("repository at {location} is {holder}; wait for it to finish, or run 'snapguard unlock' if that process is gone")]
    Locked { location: String, holder: String },
    #[error("wrong password or key file: none of the {slots} key slot(s) of {location} could be opened with it")]
    WrongPassword { location: String, slots: usize },
    #[error("integrity error in {object}: {detail}")]
    Corrupt { object: String, detail: String },
    #[error("no snapshot matches {spec:?}; list them with 'snapguard snapshots'")]
    SnapshotNotFound { spec: String },
    #[error("snapshot id {spec:?} is ambiguous: it matches {}; give more digits", candidates.join(", "))]
    AmbiguousSnapshot {
        spec: String,
        candidates: Vec<String>,
    },
    #[error("path {path:?} does not exist in snapshot {snapshot}; see 'snapguard ls {snapshot}'")]
    PathNotFound { path: String, snapshot: String },
    #[error("path {path:?} is in none of {snapshots}; give it as 'snapguard ls' lists it (absolute, as it was backed up), or search by name with 'snapguard find'")]
    PathInNoSnapshot { path: String, snapshots: String },
    #[error("{0}")]
    InvalidArgument(String),
    /// An archive given to `import` is damaged, truncated or hostile; nothing was committed.
    #[error("cannot import {input}: {detail}")]
    Import { input: String, detail: String },
    #[error("internal error: {0}; please report it")]
    Internal(String),
    #[error("snapshot {snapshot} is immutable until {until}; it cannot be forgotten, pruned or have tags removed before then")]
    Immutable { snapshot: String, until: String },
    /// An object is under an S3 Object Lock retention that has not ended.
    #[error("{what} is protected by S3 Object Lock until {until}; it cannot be deleted before then (run the command again after that date)")]
    ObjectLocked { what: String, until: String },
    #[error("cannot use S3 Object Lock with {location}: {reason}")]
    ObjectLockUnavailable { location: String, reason: String },
    #[error("repository {location} is append-only: {operation} would delete or rewrite data, which no client may do")]
    AppendOnly { location: String, operation: String },
    #[error("refusing to remove key slot {slot}: it is the last one that can open the repository; add another with 'snapguard key add' first")]
    LastKeySlot { slot: String },
    #[error("no space left on the device while writing {path}; free some space (or pick another target) and run the command again")]
    NoSpace { path: PathBuf },
    #[error("cannot write to {path}: {cause}; choose a target directory you may write to")]
    TargetNotWritable {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("repository {location}: {cause}")]
    Backend {
        location: String,
        cause: BackendError,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            return Error::NoSpace { path };
        }
        Error::Io {
            path,
            cause: source,
        }
    }

    pub(crate) fn corrupt(object: impl Into<String>, detail: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            object: object.into(),
            detail: detail.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
