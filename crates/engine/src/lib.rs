//! The SnapGuard repository engine.
//!
//! Owns everything between the command line and the storage backend: unlocking a repository
//! ([`Repository`]), backing a directory tree up into it ([`backup()`]), restoring it
//! ([`restore()`]), and read-only views ([`browse`]). It does not parse arguments, print, or ask
//! for passwords: the CLI does that and hands secrets in. See ARCHITECTURE.md for the data path.

pub mod annotate;
pub mod backup;
pub mod browse;
pub mod check;
pub mod copy;
mod crypt;
mod error;
pub mod export;
pub mod filter;
pub mod forget;
pub mod fsmeta;
pub mod import;
pub mod index;
pub mod json;
pub mod lock;
pub mod metacache;
pub mod object_lock;
mod pack;
pub mod progress;
pub mod prune;
pub mod repair;
mod repo;
pub mod restore;
pub mod verify;
pub mod versions;

pub use backup::{
    absolute_path, backup, BackupOptions, BackupResult, BackupWarning, BtrfsMode, CompressionChoice,
};
pub use crypt::Crypt;
pub use error::{Error, Result};
pub use repo::{probe, InitOptions, KeySlotInfo, Repository, Secret};
pub use restore::{restore, RestoreOptions, RestoreSummary, RestoreWarning};

/// A timestamp as RFC 3339 (UTC), for messages.
pub(crate) fn fmt_time(t: snapguard_format::Timestamp) -> String {
    match chrono::DateTime::from_timestamp(t.secs, t.nanos) {
        Some(d) => d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => format!("{}s after 1970", t.secs),
    }
}
