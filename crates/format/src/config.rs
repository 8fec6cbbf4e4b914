//! The repository configuration file.
//!
//! `config` starts with a fixed plaintext header that a client must understand *before* it asks
//! for a password (format version, feature flags, cipher, repository id), followed by the sealed
//! [`ConfigFile`] body whose associated data is that header, so the header cannot be altered
//! without detection once the repository is unlocked.
//!
//! Feature flags follow ext4's model: an unknown bit in `incompat` means "do not open", in
//! `ro_compat` "open read-only", in `compat` "safe to ignore".

use crate::{decode_versioned, encode_versioned, FormatError, RepoId, Timestamp};
use serde::{Deserialize, Serialize};

/// Magic bytes at the start of `config`.
pub const CONFIG_MAGIC: &[u8; 8] = b"SGCONFIG";
/// The repository format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const CONFIG_BODY_VERSION: u8 = 1;
/// Length of the plaintext header.
pub const CONFIG_HEADER_LEN: usize = 8 + 4 + 8 * 3 + 1 + 32 + 32;

/// Feature bit sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FeatureFlags {
    pub incompat: u64,
    pub ro_compat: u64,
    pub compat: u64,
}

/// `ro_compat` bit: the repository is append-only. Clients that know it refuse every deletion
/// and rewrite; clients that do not know it must open the repository read-only.
pub const RO_COMPAT_APPEND_ONLY: u64 = 1;

/// The plaintext header of `config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigHeader {
    pub version: u32,
    pub features: FeatureFlags,
    pub cipher_code: u8,
    pub repo_id: RepoId,
    /// Salt of the subkey that seals the body.
    pub salt: [u8; 32],
}

impl ConfigHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CONFIG_HEADER_LEN);
        out.extend_from_slice(CONFIG_MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.features.incompat.to_le_bytes());
        out.extend_from_slice(&self.features.ro_compat.to_le_bytes());
        out.extend_from_slice(&self.features.compat.to_le_bytes());
        out.push(self.cipher_code);
        out.extend_from_slice(&self.repo_id.0);
        out.extend_from_slice(&self.salt);
        out
    }

    /// Split a config file into its header, the header bytes (the AAD) and the sealed body.
    pub fn parse(bytes: &[u8]) -> Result<(ConfigHeader, &[u8], &[u8]), FormatError> {
        let bad = |detail: &str| FormatError::Malformed {
            what: "config",
            detail: detail.into(),
        };
        if bytes.len() < 12 || &bytes[..8] != CONFIG_MAGIC {
            return Err(bad("not a SnapGuard repository config (bad magic)"));
        }
        let version = u32::from_le_bytes(arr(&bytes[8..12]));
        if version == 0 {
            return Err(bad("format version 0 does not exist (damaged config)"));
        }
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "repository format",
                version,
            });
        }
        if bytes.len() < CONFIG_HEADER_LEN {
            return Err(bad("truncated header"));
        }
        let u64_at = |o: usize| u64::from_le_bytes(arr(&bytes[o..o + 8]));
        let header = ConfigHeader {
            version,
            features: FeatureFlags {
                incompat: u64_at(12),
                ro_compat: u64_at(20),
                compat: u64_at(28),
            },
            cipher_code: bytes[36],
            repo_id: RepoId(arr(&bytes[37..69])),
            salt: arr(&bytes[69..101]),
        };
        let (head, body) = bytes.split_at(CONFIG_HEADER_LEN);
        Ok((header, head, body))
    }
}

pub(crate) fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&s[..N]);
    out
}

/// The sealed body of `config`: parameters every writer must agree on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    pub repo_id: RepoId,
    pub created: Timestamp,
    pub chunker_min: u32,
    pub chunker_avg: u32,
    pub chunker_max: u32,
    /// Packs are closed once they reach this many bytes.
    pub pack_target_size: u32,
    /// zstd level used by default for new blobs.
    pub compression_level: i32,
}

impl ConfigFile {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(CONFIG_BODY_VERSION, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<ConfigFile, FormatError> {
        let c: ConfigFile = decode_versioned("config", CONFIG_BODY_VERSION, bytes)?;
        let ok = c.chunker_min >= 64
            && c.chunker_min < c.chunker_avg
            && c.chunker_avg < c.chunker_max
            && c.chunker_avg.is_power_of_two()
            && c.chunker_max <= 64 << 20
            && c.pack_target_size >= 1 << 16
            && c.pack_target_size <= 1 << 30;
        if !ok {
            return Err(FormatError::Malformed {
                what: "config",
                detail: "parameters out of range".into(),
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_round_trip(inc in any::<u64>(), ro in any::<u64>(), c in any::<u64>(), cipher in any::<u8>(),
                             id in any::<[u8; 32]>(), salt in any::<[u8; 32]>(), body in proptest::collection::vec(any::<u8>(), 0..50)) {
            let h = ConfigHeader { version: FORMAT_VERSION, features: FeatureFlags { incompat: inc, ro_compat: ro, compat: c },
                                   cipher_code: cipher, repo_id: RepoId(id), salt };
            let mut bytes = h.encode();
            bytes.extend_from_slice(&body);
            let (h2, head, b2) = ConfigHeader::parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(h2, h);
            prop_assert_eq!(head.len(), CONFIG_HEADER_LEN);
            prop_assert_eq!(b2, &body[..]);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ConfigHeader::parse(&bytes);
            let _ = ConfigFile::decode(&bytes);
        }

        #[test]
        fn body_round_trip(secs in any::<i64>(), level in -5i32..22) {
            let c = ConfigFile { repo_id: RepoId([7; 32]), created: Timestamp { secs, nanos: 5 },
                chunker_min: 512 << 10, chunker_avg: 1 << 20, chunker_max: 8 << 20,
                pack_target_size: 16 << 20, compression_level: level };
            prop_assert_eq!(ConfigFile::decode(&c.encode()), Ok(c));
        }
    }

    #[test]
    fn newer_version_is_reported() {
        let mut bytes = ConfigHeader {
            version: 2,
            features: FeatureFlags::default(),
            cipher_code: 1,
            repo_id: RepoId([0; 32]),
            salt: [0; 32],
        }
        .encode();
        bytes.extend_from_slice(&[0; 20]);
        assert_eq!(
            ConfigHeader::parse(&bytes).err(),
            Some(FormatError::UnsupportedVersion {
                what: "repository format",
                version: 2
            })
        );
    }
}
