//! The error type of `import restic`.

use std::path::PathBuf;

/// Why reading a restic repository or importing from it failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path} is not a restic repository: {detail}; give the directory that 'restic init' created (it holds config, keys/, data/, index/ and snapshots/)")]
    NotARepository { path: PathBuf, detail: String },
    #[error("{path} is a SnapGuard repository, not a restic one; give the restic repository to import from as REPO, and the SnapGuard repository with --repo or SNAPGUARD_REPOSITORY")]
    SnapGuardRepository { path: PathBuf },
    #[error("wrong password for the restic repository at {path}: none of its {keys} key(s) opens with it; check --restic-password-file, --restic-password-command, RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND or RESTIC_PASSWORD")]
    WrongPassword { path: PathBuf, keys: usize },
    #[error("the restic repository at {path} has no snapshot {spec:?}; list them with 'restic -r {path} snapshots'")]
    SnapshotNotFound { path: PathBuf, spec: String },
    #[error("restic snapshot id {spec:?} is ambiguous in {path}: it matches {}; give more digits", candidates.join(", "))]
    AmbiguousSnapshot {
        path: PathBuf,
        spec: String,
        candidates: Vec<String>,
    },
    #[error("restic repository {path}: {detail}")]
    Unsupported { path: PathBuf, detail: String },
    /// Reading the restic repository failed (I/O, damaged or missing files).
    #[error("cannot read the restic repository at {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    /// Restic data that does not match its id: the restic repository is damaged.
    #[error("integrity error in the restic repository at {path}: {detail}; run 'restic -r {path} check --read-data'")]
    Corrupt { path: PathBuf, detail: String },
    /// An error of the SnapGuard repository (writing the imported snapshot).
    #[error(transparent)]
    Engine(#[from] snapguard_engine::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
