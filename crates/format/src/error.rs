//! The error type for decoding repository bytes.

/// Why bytes could not be decoded into a repository object.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("{what} has version {version}, which this SnapGuard does not understand (written by a newer version?)")]
    UnsupportedVersion { what: &'static str, version: u32 },
    #[error("invalid id {0:?}: expected 64 hex digits")]
    InvalidId(String),
}
