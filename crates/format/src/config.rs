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
/// Body version of a repository with S3 Object Lock: version 1's fields, then
/// [`ObjectLockSettings`]. Repositories without Object Lock keep writing version 1, so every
/// older client still reads them.
const CONFIG_BODY_VERSION_OBJECT_LOCK: u8 = 2;
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

/// `incompat` bit: the repository lives in an S3 bucket with Object Lock and every object it
/// stores carries a retention ([`ConfigFile::object_lock`]). Incompatible, not read-only
/// compatible: an older client could not decode the config body (version 2), and a writer that
/// did not know the bit would store objects without retention and send deletions for retained
/// ones (which on a versioned bucket only hide them behind delete markers).
pub const INCOMPAT_OBJECT_LOCK: u64 = 1;

/// Which S3 Object Lock retention mode new objects get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectLockMode {
    /// Can be shortened or lifted by users holding `s3:BypassGovernanceRetention`.
    Governance,
    /// Cannot be shortened or lifted by anyone before it ends.
    Compliance,
}

/// The repository's Object Lock settings, which every client applies to what it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockSettings {
    pub mode: ObjectLockMode,
    /// Every object is retained for this many seconds after it is written.
    pub retention_secs: u64,
}

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
    /// S3 Object Lock (None: off). Stored only in body version 2.
    #[serde(default)]
    pub object_lock: Option<ObjectLockSettings>,
}

/// Body version 1 (and the first part of version 2), field for field.
#[derive(Serialize, Deserialize)]
struct BodyV1 {
    repo_id: RepoId,
    created: Timestamp,
    chunker_min: u32,
    chunker_avg: u32,
    chunker_max: u32,
    pack_target_size: u32,
    compression_level: i32,
}

/// Body version 2: version 1 followed by the Object Lock settings.
#[derive(Serialize, Deserialize)]
struct BodyV2 {
    v1: BodyV1,
    object_lock: ObjectLockSettings,
}

impl ConfigFile {
    fn v1(&self) -> BodyV1 {
        BodyV1 {
            repo_id: self.repo_id,
            created: self.created,
            chunker_min: self.chunker_min,
            chunker_avg: self.chunker_avg,
            chunker_max: self.chunker_max,
            pack_target_size: self.pack_target_size,
            compression_level: self.compression_level,
        }
    }

    fn from_v1(b: BodyV1, object_lock: Option<ObjectLockSettings>) -> ConfigFile {
        ConfigFile {
            repo_id: b.repo_id,
            created: b.created,
            chunker_min: b.chunker_min,
            chunker_avg: b.chunker_avg,
            chunker_max: b.chunker_max,
            pack_target_size: b.pack_target_size,
            compression_level: b.compression_level,
            object_lock,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self.object_lock {
            None => encode_versioned(CONFIG_BODY_VERSION, &self.v1()),
            Some(object_lock) => encode_versioned(
                CONFIG_BODY_VERSION_OBJECT_LOCK,
                &BodyV2 {
                    v1: self.v1(),
                    object_lock,
                },
            ),
        }
    }
    pub fn decode(bytes: &[u8]) -> Result<ConfigFile, FormatError> {
        let c = match bytes.first() {
            Some(&CONFIG_BODY_VERSION_OBJECT_LOCK) => {
                let b: BodyV2 = decode_versioned("config", CONFIG_BODY_VERSION_OBJECT_LOCK, bytes)?;
                if b.object_lock.retention_secs == 0 {
                    return Err(FormatError::Malformed {
                        what: "config",
                        detail: "object lock retention of 0 seconds".into(),
                    });
                }
                ConfigFile::from_v1(b.v1, Some(b.object_lock))
            }
            _ => ConfigFile::from_v1(
                decode_versioned("config", CONFIG_BODY_VERSION, bytes)?,
                None,
            ),
        };
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
        fn body_round_trip(secs in any::<i64>(), level in -5i32..22,
                           lock in proptest::option::of((any::<bool>(), 1u64..u64::MAX))) {
            let object_lock = lock.map(|(compliance, retention_secs)| ObjectLockSettings {
                mode: if compliance { ObjectLockMode::Compliance } else { ObjectLockMode::Governance },
                retention_secs,
            });
            let c = ConfigFile { repo_id: RepoId([7; 32]), created: Timestamp { secs, nanos: 5 },
                chunker_min: 512 << 10, chunker_avg: 1 << 20, chunker_max: 8 << 20,
                pack_target_size: 16 << 20, compression_level: level, object_lock };
            let bytes = c.encode();
            // Without Object Lock the body stays version 1, readable by every older client.
            prop_assert_eq!(bytes[0], if object_lock.is_some() { 2 } else { 1 });
            prop_assert_eq!(ConfigFile::decode(&bytes), Ok(c));
        }
    }

    /// A version 1 body as every release before Object Lock wrote it still decodes, and the
    /// bytes of a repository without Object Lock are unchanged.
    #[test]
    fn version_1_body_is_unchanged() {
        let c = ConfigFile {
            repo_id: RepoId([1; 32]),
            created: Timestamp {
                secs: 1_700_000_000,
                nanos: 0,
            },
            chunker_min: 512 << 10,
            chunker_avg: 1 << 20,
            chunker_max: 8 << 20,
            pack_target_size: 16 << 20,
            compression_level: 3,
            object_lock: None,
        };
        let old = encode_versioned(CONFIG_BODY_VERSION, &c.v1());
        assert_eq!(c.encode(), old);
        assert_eq!(ConfigFile::decode(&old), Ok(c.clone()));
        // Version 2 is version 1's bytes plus the settings.
        let locked = ConfigFile {
            object_lock: Some(ObjectLockSettings {
                mode: ObjectLockMode::Compliance,
                retention_secs: 86_400,
            }),
            ..c.clone()
        };
        let v2 = locked.encode();
        assert_eq!(v2[0], 2);
        // The test vector of docs/design/repository-format.md: compliance, 30 days.
        let month = ConfigFile {
            object_lock: Some(ObjectLockSettings {
                mode: ObjectLockMode::Compliance,
                retention_secs: 30 * 86_400,
            }),
            ..c.clone()
        };
        assert!(month.encode().ends_with(&[0x01, 0x80, 0x9a, 0x9e, 0x01]));
        assert_eq!(&v2[1..old.len()], &old[1..]);
        let mut zero = v2.clone();
        // retention_secs is the last varint: 86400 = 0x80 0xa3 0x05.
        let n = zero.len();
        zero.truncate(n - 3);
        zero.push(0);
        assert!(ConfigFile::decode(&zero).is_err());
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
