//! Typed 256-bit identifiers.
//!
//! Every id is 32 bytes shown as 64 lowercase hex digits. Blob, tree, snapshot and index ids are
//! keyed BLAKE3 hashes of the object's plaintext (so they double as integrity checks once the
//! object is opened); pack and repository ids are random. Distinct types keep a `PackId` from
//! ever being looked up as a `BlobId`.

use crate::FormatError;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The id as 64 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// Parse 64 hex digits.
            pub fn from_hex(s: &str) -> Result<Self, FormatError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| FormatError::InvalidId(s.to_string()))?;
                Ok(Self(out))
            }
            /// The first 8 hex digits, for display.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
    };
}

define_id!(
    /// Id of a data or tree blob: keyed BLAKE3 of its plaintext.
    BlobId
);
define_id!(
    /// Id of a tree blob (a directory listing): keyed BLAKE3 of its encoding. Because a tree
    /// contains the ids of its subtrees and file chunks, a tree id is a Merkle digest of the
    /// whole subtree.
    TreeId
);
define_id!(
    /// Id of a pack file: 32 random bytes, also the salt of the pack's subkey.
    PackId
);
define_id!(
    /// Id of a snapshot file: keyed BLAKE3 of its plaintext encoding.
    SnapshotId
);
define_id!(
    /// Id of an index file: keyed BLAKE3 of its plaintext encoding.
    IndexId
);
define_id!(
    /// Id of a key slot file: unkeyed BLAKE3 of the slot file (slot ids are public).
    SlotId
);
define_id!(
    /// Id of an annotation file: keyed BLAKE3 of its plaintext.
    AnnotationId
);
define_id!(
    /// Id of a lock file: keyed BLAKE3 of its plaintext.
    LockId
);
define_id!(
    /// Random id of a repository, fixed at `init`.
    RepoId
);

impl From<TreeId> for BlobId {
    fn from(t: TreeId) -> BlobId {
        BlobId(t.0)
    }
}
impl From<BlobId> for TreeId {
    fn from(b: BlobId) -> TreeId {
        TreeId(b.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trip(bytes in any::<[u8; 32]>()) {
            let id = BlobId(bytes);
            prop_assert_eq!(BlobId::from_hex(&id.to_hex()).ok(), Some(id));
        }
        #[test]
        fn from_hex_never_panics(s in ".{0,80}") {
            let _ = SnapshotId::from_hex(&s);
        }
    }
}
