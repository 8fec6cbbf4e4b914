//! Lock records: who is using a repository, how, and since when.
//!
//! Lock files are the one kind of repository object that is deleted routinely: a running
//! operation writes one, refreshes it by writing a new one (with a newer heartbeat) and deleting
//! the old, and deletes it when done. They are sealed like every other object, so a reader
//! without the key cannot learn host names or operations.

use crate::{decode_versioned, encode_versioned, FormatError, Timestamp};
use serde::{Deserialize, Serialize};

const LOCK_VERSION: u8 = 1;

/// The plaintext of a lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    /// Exclusive locks (prune, repair) conflict with every other lock; shared ones (backup,
    /// restore, check …) only with exclusive ones.
    pub exclusive: bool,
    /// The command holding the lock, for messages ("backup", "prune", …).
    pub operation: String,
    pub created: Timestamp,
    /// Refreshed periodically; a lock whose heartbeat is too old is stale.
    pub heartbeat: Timestamp,
}

impl LockFile {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(LOCK_VERSION, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<LockFile, FormatError> {
        decode_versioned("lock", LOCK_VERSION, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(host in ".{0,30}", pid in any::<u32>(), ex in any::<bool>(), op in "[a-z]{0,10}",
                      c in any::<i64>(), h in any::<i64>()) {
            let l = LockFile { hostname: host, username: "u".into(), pid, exclusive: ex, operation: op,
                created: Timestamp { secs: c, nanos: 1 }, heartbeat: Timestamp { secs: h, nanos: 2 } };
            prop_assert_eq!(LockFile::decode(&l.encode()), Ok(l));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = LockFile::decode(&bytes);
        }
    }
}
