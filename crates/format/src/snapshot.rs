//! Snapshot records: the commit point of a backup, pointing at a root tree.

use crate::{
    decode_versioned, encode_versioned, FormatError, RepoId, SnapshotId, Timestamp, TreeId,
};
use serde::{Deserialize, Serialize};

/// Version 1 had no `source`; it is still written when there is none, so that older SnapGuard
/// versions keep reading those snapshots. Version 2 had no `copied_from`, and is likewise still
/// written for snapshots that are not copies.
const SNAPSHOT_VERSION_1: u8 = 1;
const SNAPSHOT_VERSION_2: u8 = 2;
const SNAPSHOT_VERSION: u8 = 3;

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
    /// How the source was captured, when it was more than a walk of the live files (version 2).
    pub source: Option<SnapshotSource>,
    /// Set on a snapshot written by `snapguard copy`: which snapshot it is a copy of (version 3).
    pub copied_from: Option<CopyOrigin>,
}

/// Where a copied snapshot came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOrigin {
    /// The original snapshot: the one first backed up, also when this is a copy of a copy (so
    /// a copy is recognised in every repository of a chain).
    pub snapshot: SnapshotId,
    /// The repository the original snapshot was backed up into.
    pub repository: RepoId,
    /// The snapshot this one was copied from directly (equal to `snapshot` for a first copy).
    pub source: SnapshotId,
    /// The repository it was copied from directly.
    pub source_repository: RepoId,
}

/// How the files of a snapshot were captured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SnapshotSource {
    /// The backed-up paths (or the subvolumes holding them) that were read from read-only btrfs
    /// snapshots: a point-in-time copy of each subvolume.
    pub btrfs: Vec<BtrfsOrigin>,
}

/// One btrfs subvolume read through a read-only snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BtrfsOrigin {
    /// The subvolume's root, as recorded in the snapshot (absolute; bytes).
    pub subvolume: serde_bytes::ByteBuf,
    /// The UUID of the live subvolume that was snapshotted.
    pub subvolume_uuid: [u8; 16],
    /// The UUID of the filesystem.
    pub fsid: [u8; 16],
    /// The UUID of the read-only snapshot that was read.
    pub snapshot_uuid: [u8; 16],
    /// The transaction in which that snapshot was taken: every change to the subvolume made in
    /// a later transaction is not in this backup.
    pub generation: u64,
    /// Nested subvolumes below `subvolume` that were read through snapshots of their own
    /// (paths relative to `subvolume`).
    pub nested: Vec<serde_bytes::ByteBuf>,
    /// A local-tier snapshot (`local backup CONFIG ID`): the config's name and number.
    pub local: Option<(String, u32)>,
    /// A digest of what decides which entries a walk includes (excludes, filesystem boundary):
    /// a later backup may reuse this one's unchanged subtrees only if it is equal.
    pub walk_key: [u8; 32],
}

/// Version 1 of [`SnapshotFile`]: the same without `source`.
#[derive(Deserialize)]
struct SnapshotFileV1 {
    time: Timestamp,
    tree: TreeId,
    paths: Vec<serde_bytes::ByteBuf>,
    hostname: String,
    username: String,
    uid: u32,
    gid: u32,
    tags: Vec<String>,
    parent: Option<SnapshotId>,
    excludes: Vec<String>,
    program_version: String,
    summary: Option<SnapshotSummary>,
}

/// Version 2 of [`SnapshotFile`]: the same without `copied_from`.
#[derive(Deserialize)]
struct SnapshotFileV2 {
    time: Timestamp,
    tree: TreeId,
    paths: Vec<serde_bytes::ByteBuf>,
    hostname: String,
    username: String,
    uid: u32,
    gid: u32,
    tags: Vec<String>,
    parent: Option<SnapshotId>,
    excludes: Vec<String>,
    program_version: String,
    summary: Option<SnapshotSummary>,
    source: Option<SnapshotSource>,
}

/// Version 2's encoding of a snapshot without `copied_from` (borrowing, for `encode`).
#[derive(Serialize)]
struct SnapshotFileV2Ref<'a> {
    time: &'a Timestamp,
    tree: &'a TreeId,
    paths: &'a Vec<serde_bytes::ByteBuf>,
    hostname: &'a String,
    username: &'a String,
    uid: u32,
    gid: u32,
    tags: &'a Vec<String>,
    parent: &'a Option<SnapshotId>,
    excludes: &'a Vec<String>,
    program_version: &'a String,
    summary: &'a Option<SnapshotSummary>,
    source: &'a Option<SnapshotSource>,
}

/// Version 1's encoding of a snapshot without `source` (borrowing, for `encode`).
#[derive(Serialize)]
struct SnapshotFileV1Ref<'a> {
    time: &'a Timestamp,
    tree: &'a TreeId,
    paths: &'a Vec<serde_bytes::ByteBuf>,
    hostname: &'a String,
    username: &'a String,
    uid: u32,
    gid: u32,
    tags: &'a Vec<String>,
    parent: &'a Option<SnapshotId>,
    excludes: &'a Vec<String>,
    program_version: &'a String,
    summary: &'a Option<SnapshotSummary>,
}

impl SnapshotFile {
    pub fn encode(&self) -> Vec<u8> {
        if self.copied_from.is_some() {
            return encode_versioned(SNAPSHOT_VERSION, self);
        }
        if self.source.is_some() {
            return encode_versioned(
                SNAPSHOT_VERSION_2,
                &SnapshotFileV2Ref {
                    time: &self.time,
                    tree: &self.tree,
                    paths: &self.paths,
                    hostname: &self.hostname,
                    username: &self.username,
                    uid: self.uid,
                    gid: self.gid,
                    tags: &self.tags,
                    parent: &self.parent,
                    excludes: &self.excludes,
                    program_version: &self.program_version,
                    summary: &self.summary,
                    source: &self.source,
                },
            );
        }
        encode_versioned(
            SNAPSHOT_VERSION_1,
            &SnapshotFileV1Ref {
                time: &self.time,
                tree: &self.tree,
                paths: &self.paths,
                hostname: &self.hostname,
                username: &self.username,
                uid: self.uid,
                gid: self.gid,
                tags: &self.tags,
                parent: &self.parent,
                excludes: &self.excludes,
                program_version: &self.program_version,
                summary: &self.summary,
            },
        )
    }
    pub fn decode(bytes: &[u8]) -> Result<SnapshotFile, FormatError> {
        let s: SnapshotFile = if bytes.first() == Some(&SNAPSHOT_VERSION_1) {
            let v: SnapshotFileV1 = decode_versioned("snapshot", SNAPSHOT_VERSION_1, bytes)?;
            SnapshotFile {
                time: v.time,
                tree: v.tree,
                paths: v.paths,
                hostname: v.hostname,
                username: v.username,
                uid: v.uid,
                gid: v.gid,
                tags: v.tags,
                parent: v.parent,
                excludes: v.excludes,
                program_version: v.program_version,
                summary: v.summary,
                source: None,
                copied_from: None,
            }
        } else if bytes.first() == Some(&SNAPSHOT_VERSION_2) {
            let v: SnapshotFileV2 = decode_versioned("snapshot", SNAPSHOT_VERSION_2, bytes)?;
            SnapshotFile {
                time: v.time,
                tree: v.tree,
                paths: v.paths,
                hostname: v.hostname,
                username: v.username,
                uid: v.uid,
                gid: v.gid,
                tags: v.tags,
                parent: v.parent,
                excludes: v.excludes,
                program_version: v.program_version,
                summary: v.summary,
                source: v.source,
                copied_from: None,
            }
        } else {
            decode_versioned("snapshot", SNAPSHOT_VERSION, bytes)?
        };
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
                      parent in proptest::option::of(any::<[u8; 32]>()), files in any::<u64>(),
                      btrfs in proptest::option::of((any::<[u8; 16]>(), any::<u64>(), proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..10), 0..3), proptest::option::of((".{0,8}", any::<u32>())))),
                      copied in proptest::option::of((any::<[u8; 32]>(), any::<[u8; 32]>(), any::<[u8; 32]>(), any::<[u8; 32]>()))) {
            let s = SnapshotFile {
                time: Timestamp { secs, nanos }, tree: TreeId(tree),
                paths: paths.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                hostname: host, username: "u".into(), uid: 1, gid: 2, tags,
                parent: parent.map(SnapshotId), excludes: vec!["*.o".into()],
                program_version: "snapguard 0.1.0".into(),
                summary: Some(SnapshotSummary { files_new: files, ..Default::default() }),
                source: btrfs.map(|(uuid, generation, nested, local)| SnapshotSource {
                    btrfs: vec![BtrfsOrigin {
                        subvolume: serde_bytes::ByteBuf::from(b"/data".to_vec()),
                        subvolume_uuid: uuid, fsid: [7; 16], snapshot_uuid: [9; 16], generation,
                        nested: nested.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                        local, walk_key: [3; 32],
                    }],
                }),
                copied_from: copied.map(|(a, b, c, d)| CopyOrigin {
                    snapshot: SnapshotId(a), repository: RepoId(b), source: SnapshotId(c),
                    source_repository: RepoId(d),
                }),
            };
            let bytes = s.encode();
            // Without a source the snapshot stays in version 1, readable by older versions;
            // only copies need version 3.
            let expected = if s.copied_from.is_some() { 3 } else if s.source.is_some() { 2 } else { 1 };
            prop_assert_eq!(bytes[0], expected);
            prop_assert_eq!(SnapshotFile::decode(&bytes), Ok(s));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = SnapshotFile::decode(&bytes);
        }
    }
}
