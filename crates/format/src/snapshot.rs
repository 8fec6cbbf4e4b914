//! Snapshot records: the commit point of a backup, pointing at a root tree.

use crate::{decode_versioned, encode_versioned, FormatError, SnapshotId, Timestamp, TreeId};
use serde::{Deserialize, Serialize};

const SNAPSHOT_VERSION: u8 = 1;

/// Counters recorded at the end of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SnapshotSummary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    pub other_entries: u64,
    /// Bytes of file content read from the source.
    pub bytes_read: u64,
    /// Plaintext bytes of blobs that were new to the repository.
    pub bytes_added: u64,
    /// Bytes those new blobs occupy in packs (compressed and sealed).
    pub bytes_stored: u64,
    pub blobs_added: u64,
    pub duration_ms: u64,
    /// Entries that could not be read or were skipped with a warning.
    pub errors: u64,
}

/// The plaintext of a snapshot file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub time: Timestamp,
    pub tree: TreeId,
    /// The absolute source paths, as given (bytes; not necessarily UTF-8).
    pub paths: Vec<serde_bytes::ByteBuf>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    pub tags: Vec<String>,
    pub parent: Option<SnapshotId>,
    pub excludes: Vec<String>,
    pub program_version: String,
    pub summary: Option<SnapshotSummary>,
}

impl SnapshotFile {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(SNAPSHOT_VERSION, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<SnapshotFile, FormatError> {
        let s: SnapshotFile = decode_versioned("snapshot", SNAPSHOT_VERSION, bytes)?;
        if s.time.nanos >= 1_000_000_000 {
            return Err(FormatError::Malformed {
                what: "snapshot",
                detail: "invalid nanoseconds".into(),
            });
        }
        Ok(s)
    }
    /// Paths as lossy UTF-8 strings, for display and JSON.
    pub fn display_paths(&self) -> Vec<String> {
        self.paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(secs in any::<i64>(), nanos in 0u32..1_000_000_000, tree in any::<[u8; 32]>(),
                      host in ".{0,20}", tags in proptest::collection::vec(".{0,10}", 0..4),
                      paths in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..4),
                      parent in proptest::option::of(any::<[u8; 32]>()), files in any::<u64>()) {
            let s = SnapshotFile {
                time: Timestamp { secs, nanos }, tree: TreeId(tree),
                paths: paths.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                hostname: host, username: "u".into(), uid: 1, gid: 2, tags,
                parent: parent.map(SnapshotId), excludes: vec!["*.o".into()],
                program_version: "snapguard 0.1.0".into(),
                summary: Some(SnapshotSummary { files_new: files, ..Default::default() }),
            };
            prop_assert_eq!(SnapshotFile::decode(&s.encode()), Ok(s));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = SnapshotFile::decode(&bytes);
        }
    }
}
