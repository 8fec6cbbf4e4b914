//! Annotations: changes to a snapshot's tags, comment and immutability lock, stored as separate
//! sealed objects so the snapshot itself is never rewritten.
//!
//! A snapshot's effective tags, comment and lock are its own fields with every annotation that
//! names it applied in (time, id) order.

use crate::{decode_versioned, encode_versioned, FormatError, SnapshotId, Timestamp};
use serde::{Deserialize, Serialize};

const ANNOTATION_VERSION: u8 = 1;

/// The plaintext of an annotation file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnotationFile {
    pub snapshot: SnapshotId,
    pub time: Timestamp,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    /// Replaces the comment when set (an empty string clears it).
    pub comment: Option<String>,
    /// Makes the snapshot immutable until this time (can only be extended).
    pub lock_until: Option<Timestamp>,
}

impl AnnotationFile {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(ANNOTATION_VERSION, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<AnnotationFile, FormatError> {
        decode_versioned("annotation", ANNOTATION_VERSION, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(id in any::<[u8; 32]>(), t in any::<i64>(), add in proptest::collection::vec(".{0,8}", 0..3),
                      rm in proptest::collection::vec(".{0,8}", 0..3), c in proptest::option::of(".{0,20}"),
                      lock in proptest::option::of(any::<i64>())) {
            let a = AnnotationFile { snapshot: SnapshotId(id), time: Timestamp { secs: t, nanos: 0 }, add_tags: add,
                remove_tags: rm, comment: c, lock_until: lock.map(|secs| Timestamp { secs, nanos: 0 }) };
            prop_assert_eq!(AnnotationFile::decode(&a.encode()), Ok(a));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = AnnotationFile::decode(&bytes);
        }
    }
}
