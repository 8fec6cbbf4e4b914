//! Key-encryption-key (KEK) derivation for key slots: Argon2id for
//! passphrases ([`Argon2Params`]) and BLAKE3 key derivation for key files.
//!
//! A KEK is unique per slot because every slot draws a fresh 256-bit salt,
//! which is why the wrap can use an all-zero nonce. Parameters read from a
//! slot file are validated before Argon2 runs, so a tampered file cannot make
//! an unlock allocate unbounded memory or run for hours before the tag check
//! rejects it.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::key::derive_key_parts;
use crate::{CryptoError, Key32, KEY_FILE_CONTEXT};

/// Argon2id parameters for deriving a passphrase slot's KEK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Argon2Params {
    /// Memory cost in KiB (`m`).
    pub memory_kib: u32,
    /// Number of passes (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Argon2Params {
    /// 64 MiB, 3 passes, 1 lane: RFC 9106's second recommended setting
    /// (64 MiB, t = 3) with a single lane.
    ///
    /// Why one lane: the `argon2` crate computes lanes one after another on
    /// one thread, and SnapGuard targets small (2-core) machines, so more
    /// lanes would only lengthen our own unlock without costing an attacker
    /// more per guess: the memory-hardness comes from `memory_kib`. Why not
    /// more memory: unlocking must stay well under a second and must not
    /// push a small machine already running a backup into swap.
    pub const DEFAULT: Self = Argon2Params {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// Smallest accepted memory cost: 8 MiB.
    pub const MIN_MEMORY_KIB: u32 = 8 * 1024;
    /// Largest accepted memory cost: 4 GiB.
    pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    /// Largest accepted number of passes (bounds unlock time on a tampered
    /// or absurd slot).
    pub const MAX_ITERATIONS: u32 = 1024;
    /// Largest accepted number of lanes.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Check the bounds: 8 MiB <= memory <= 4 GiB, 1 <= iterations <= 1024,
    /// 1 <= parallelism <= 16. Violations are [`CryptoError::Kdf`].
    pub fn validate(&self) -> Result<(), CryptoError> {
        let err = |msg: String| Err(CryptoError::Kdf(msg));
        if self.memory_kib < Self::MIN_MEMORY_KIB {
            return err(format!(
                "Argon2 memory {} KiB is below the minimum {} KiB (8 MiB)",
                self.memory_kib,
                Self::MIN_MEMORY_KIB
            ));
        }
        if self.memory_kib > Self::MAX_MEMORY_KIB {
            return err(format!(
                "Argon2 memory {} KiB is above the maximum {} KiB (4 GiB)",
                self.memory_kib,
                Self::MAX_MEMORY_KIB
            ));
        }
        if !(1..=Self::MAX_ITERATIONS).contains(&self.iterations) {
            return err(format!(
                "Argon2 iterations {} is outside 1..={}",
                self.iterations,
                Self::MAX_ITERATIONS
            ));
        }
        if !(1..=Self::MAX_PARALLELISM).contains(&self.parallelism) {
            return err(format!(
                "Argon2 parallelism {} is outside 1..={}",
                self.parallelism,
                Self::MAX_PARALLELISM
            ));
        }
        Ok(())
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// KEK of a passphrase slot: Argon2id v1.3 (`passphrase`, `salt`, `params`),
/// 32 bytes of output.
pub(crate) fn passphrase_kek(
    passphrase: &[u8],
    salt: &[u8; 32],
    params: &Argon2Params,
) -> Result<Key32, CryptoError> {
    params.validate()?;
    let argon_params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut kek = Key32::zeroed();
    argon
        .hash_password_into(passphrase, salt, kek.as_mut_bytes())
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(kek)
}

/// KEK of a key-file slot: BLAKE3 `derive_key("snapguard 2026-11 key-file
/// slot v1", key_file_bytes || salt)`.
pub(crate) fn key_file_kek(key_file: &[u8], salt: &[u8; 32]) -> Key32 {
    derive_key_parts(KEY_FILE_CONTEXT, &[key_file, salt])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FAST: Argon2Params = Argon2Params {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn default_is_valid() {
        Argon2Params::DEFAULT.validate().unwrap();
        FAST.validate().unwrap();
    }

    #[test]
    fn bounds_are_enforced() {
        let bad = [
            Argon2Params {
                memory_kib: 8191,
                ..FAST
            },
            Argon2Params {
                memory_kib: 4 * 1024 * 1024 + 1,
                ..FAST
            },
            Argon2Params {
                iterations: 0,
                ..FAST
            },
            Argon2Params {
                iterations: 1025,
                ..FAST
            },
            Argon2Params {
                parallelism: 0,
                ..FAST
            },
            Argon2Params {
                parallelism: 17,
                ..FAST
            },
        ];
        for p in bad {
            assert!(matches!(p.validate(), Err(CryptoError::Kdf(_))), "{p:?}");
            assert!(matches!(
                passphrase_kek(b"pw", &[0; 32], &p),
                Err(CryptoError::Kdf(_))
            ));
        }
        let edge = Argon2Params {
            memory_kib: 4 * 1024 * 1024,
            iterations: 1024,
            parallelism: 16,
        };
        edge.validate().unwrap();
    }

    #[test]
    fn passphrase_kek_is_deterministic_and_salted() {
        let a = passphrase_kek(b"correct horse", &[1; 32], &FAST).unwrap();
        let b = passphrase_kek(b"correct horse", &[1; 32], &FAST).unwrap();
        let c = passphrase_kek(b"correct horse", &[2; 32], &FAST).unwrap();
        let d = passphrase_kek(b"correct horsf", &[1; 32], &FAST).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), c.as_bytes());
        assert_ne!(a.as_bytes(), d.as_bytes());
    }

    #[test]
    fn key_file_kek_matches_blake3() {
        let mut material = b"key file contents".to_vec();
        material.extend_from_slice(&[3; 32]);
        let expected = blake3::derive_key(KEY_FILE_CONTEXT, &material);
        assert_eq!(
            key_file_kek(b"key file contents", &[3; 32]).as_bytes(),
            &expected
        );
    }
}
