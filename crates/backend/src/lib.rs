//! Storage backends: where repository files live.
//!
//! A backend stores opaque, immutable files in a handful of directories ([`FileType`]). It knows
//! nothing about encryption or formats. The contract every backend must keep:
//! - `write` is atomic and durable: after it returns, the file is complete on stable storage; a
//!   crash before that leaves no file at the final name (at most a temporary file).
//! - `write` never replaces an existing file (write-once); it fails with `AlreadyExists`.
//!   Remote backends accept writing the identical bytes again, which is what a retried upload
//!   whose first attempt arrived looks like; names are content hashes or random ids.
//! - Every backend uses the same names ([`FileType::path`]), so a repository can be copied file
//!   for file between them.
//! - `read_range` returns exactly the requested bytes or an error.

mod faulty;
mod local;
mod object_lock;
mod remote;
mod stats;
mod throttle;

pub use faulty::{FaultPlan, FaultyBackend, Op, OpCounts, OpRecord, TornFile, INJECTED};
pub use local::LocalBackend;
pub use object_lock::{
    fmt_system_time, BucketLock, ExtendReport, ObjectLock, Retention, RetentionMode, WriteRetention,
};
pub use remote::{OpendalBackend, RemoteOptions, S3Config, SftpConfig, UrlError};
pub use stats::{BackendStats, CountingBackend, TypeStats};
pub use throttle::{RateLimiter, ThrottledBackend};

use std::fmt;

/// The directories of a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    Config,
    Key,
    Snapshot,
    Index,
    Pack,
    Lock,
    Annotation,
}

impl FileType {
    pub const ALL: [FileType; 7] = [
        FileType::Config,
        FileType::Key,
        FileType::Snapshot,
        FileType::Index,
        FileType::Pack,
        FileType::Lock,
        FileType::Annotation,
    ];

    /// The directory name (`""` for the config file at the top).
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Snapshot => "snapshots",
            FileType::Index => "index",
            FileType::Pack => "data",
            FileType::Lock => "locks",
            FileType::Annotation => "annotations",
        }
    }

    /// The path of file `name` relative to the repository root.
    pub fn path(self, name: &str) -> String {
        match self {
            FileType::Config => "config".to_string(),
            FileType::Pack => format!("data/{}/{}", name.get(..2).unwrap_or("00"), name),
            other => format!("{}/{}", other.dir(), name),
        }
    }
}

/// Why a backend operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{path} does not exist")]
    NotFound { path: String },
    #[error("{path} already exists; repository files are never overwritten")]
    AlreadyExists { path: String },
    #[error("no space left on the device holding {path}; free some space and retry")]
    NoSpace { path: String },
    #[error("permission denied for {path}")]
    PermissionDenied { path: String },
    #[error("{path}: expected {expected} bytes at offset {offset}, found only {found} (file truncated?)")]
    ShortRead {
        path: String,
        offset: u64,
        expected: u64,
        found: u64,
    },
    #[error("{path}: the storage server failed or could not be reached: {}; check the network, the server and the credentials, then run the command again (transient failures were already retried)", with_causes(.source))]
    Remote {
        path: String,
        source: Box<opendal::Error>,
    },
    /// An S3 request SnapGuard sends itself (Object Lock) failed; `status` 0: no answer.
    #[error("{path}: {operation} failed (HTTP {status} {code}: {message}); check the network, the server and the credentials, and that the bucket supports S3 Object Lock")]
    S3 {
        path: String,
        operation: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// The object is under an S3 Object Lock retention that has not ended; it was left in place.
    #[error(
        "{path} is protected by S3 Object Lock until {until}; it cannot be deleted before then"
    )]
    RetentionLocked { path: String, until: String },
    /// In an Object Lock repository, HeadObject showed no retention for an object that must
    /// have one: the credentials most likely lack s3:GetObjectRetention (S3 then leaves the
    /// lock headers out), or the object was written behind SnapGuard's back.
    #[error("{path}: HeadObject shows no S3 Object Lock retention, but every {kind} of this object-lock repository has one; the credentials probably lack s3:GetObjectRetention (S3 omits the retention without it). Grant s3:GetObjectRetention, s3:PutObjectRetention, s3:DeleteObjectVersion, s3:GetBucketObjectLockConfiguration and s3:GetBucketVersioning on the bucket (docs/remote.md, \"Object lock\"); if the credentials have them, the object was written without a retention: run 'snapguard object-lock refresh'")]
    RetentionMissing { path: String, kind: String },
    #[error("{location}: the bucket does not exist or cannot be listed with these credentials; create it first (SnapGuard never creates buckets)")]
    BucketMissing { location: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl BackendError {
    pub(crate) fn from_io(path: String, source: std::io::Error) -> BackendError {
        match source.kind() {
            std::io::ErrorKind::NotFound => BackendError::NotFound { path },
            std::io::ErrorKind::AlreadyExists => BackendError::AlreadyExists { path },
            std::io::ErrorKind::StorageFull => BackendError::NoSpace { path },
            std::io::ErrorKind::PermissionDenied => BackendError::PermissionDenied { path },
            _ => BackendError::Io { path, source },
        }
    }
}

pub type Result<T> = std::result::Result<T, BackendError>;

/// A repository store.
pub trait Backend: Send + Sync + fmt::Debug {
    /// A human-readable location (path or URL) used in messages.
    fn location(&self) -> String;
    /// Create the directory structure of a new repository. Fails if a config already exists.
    fn create(&self) -> Result<()>;
    /// Read a whole file.
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>>;
    /// Read `len` bytes at `offset`.
    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Size of a file in bytes.
    fn size(&self, t: FileType, name: &str) -> Result<u64>;
    /// Store a new file atomically and durably; never replaces an existing one.
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()>;
    /// Names and sizes of all files of a type.
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>>;
    /// Delete a file. Deleting a file that does not exist either succeeds (object stores) or
    /// fails with `NotFound`; callers treat both as "gone".
    fn remove(&self, t: FileType, name: &str) -> Result<()>;
    /// Atomically replace the repository's `config` (the one file that is ever rewritten, for
    /// a format or mode change): readers see the old or the new file, never a mix.
    fn replace_config(&self, data: &[u8]) -> Result<()>;
    /// S3 Object Lock on this backend, if it has it (S3 buckets); wrappers forward it.
    fn object_lock(&self) -> Option<&dyn ObjectLock> {
        None
    }
}

/// An OpenDAL error followed by the causes its own message leaves out (OpenDAL prints one level
/// of source; the reason ssh gave, such as "Host key verification failed", is deeper).
fn with_causes(e: &opendal::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let s = c.to_string();
        if !s.is_empty() && !text.contains(&s) {
            text.push_str(": ");
            text.push_str(s.trim());
        }
        cause = c.source();
    }
    text
}
