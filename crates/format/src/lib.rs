//! On-disk types of a SnapGuard repository and their byte encodings.
//!
//! This crate owns the *shape* of every persisted object: typed ids, trees and nodes, snapshot,
//! index and pack-header records, the configuration, and the fixed framing (magic numbers,
//! versions, trailers) around sealed objects. It does no I/O, reads no clock and knows nothing
//! about keys: sealing and opening live in `snapguard-crypto` and the engine. Every decoder here
//! accepts hostile bytes and returns an error instead of panicking.
//!
//! Encodings: a one-byte structure version followed by the [postcard] wire format of a serde
//! struct (varint integers, length-prefixed byte strings). See docs/design/repository-format.md.

mod annotation;
mod config;
mod envelope;
mod error;
mod id;
mod index;
mod lock;
mod snapshot;
mod tree;

pub use annotation::AnnotationFile;
pub use config::{
    ConfigFile, ConfigHeader, FeatureFlags, ObjectLockMode, ObjectLockSettings, CONFIG_MAGIC,
    FORMAT_VERSION, INCOMPAT_OBJECT_LOCK, RO_COMPAT_APPEND_ONLY,
};
pub use envelope::{
    EnvelopeHeader, ObjectKind, PackTrailer, ENVELOPE_HEADER_LEN, ENVELOPE_MAGIC, PACK_MAGIC,
    PACK_TRAILER_LEN,
};
pub use error::FormatError;
pub use id::{AnnotationId, BlobId, IndexId, LockId, PackId, RepoId, SlotId, SnapshotId, TreeId};
pub use index::{BlobType, Compression, IndexFile, IndexPack, PackBlob, PackHeader};
pub use lock::LockFile;
pub use snapshot::{BtrfsOrigin, CopyOrigin, SnapshotFile, SnapshotSource, SnapshotSummary};
pub use tree::{
    ContentPart, Node, NodeKind, Timestamp, Tree, Xattr, NODE_CHANGED_WHILE_READ, NODE_READ_ERROR,
};

/// Encode `value` as `version byte || postcard`.
fn encode_versioned<T: serde::Serialize>(version: u8, value: &T) -> Vec<u8> {
    let out = vec![version];
    // postcard serialization into a Vec cannot fail for our types (no maps with
    // non-string keys, no unsized sequences), but we still avoid unwrap in library code.
    match postcard::to_extend(value, out) {
        Ok(v) => v,
        Err(_) => vec![version],
    }
}

/// Decode `version byte || postcard`, rejecting unknown versions and trailing bytes.
fn decode_versioned<'a, T: serde::Deserialize<'a>>(
    what: &'static str,
    version: u8,
    bytes: &'a [u8],
) -> Result<T, FormatError> {
    let (&v, rest) = bytes.split_first().ok_or(FormatError::Malformed {
        what,
        detail: "empty".into(),
    })?;
    if v != version {
        return Err(FormatError::UnsupportedVersion {
            what,
            version: u32::from(v),
        });
    }
    let (value, trailing) =
        postcard::take_from_bytes(rest).map_err(|e| FormatError::Malformed {
            what,
            detail: e.to_string(),
        })?;
    if !trailing.is_empty() {
        return Err(FormatError::Malformed {
            what,
            detail: format!("{} trailing bytes", trailing.len()),
        });
    }
    Ok(value)
}
