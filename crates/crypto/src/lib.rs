//! Cryptography for SnapGuard: sealing objects with an AEAD, deriving
//! per-object subkeys, the repository's secret [`KeyBundle`] and the
//! [`KeySlot`]s that wrap it under a passphrase or a key file.
//!
//! The crate is pure: it does no file I/O, reads no clock and owns no random
//! number generator. Every function that needs randomness takes a
//! `&mut impl rand_core::CryptoRngCore` (production code passes
//! [`rand_core::OsRng`]). Only vetted primitives are used: the RustCrypto
//! AES-256-GCM and ChaCha20-Poly1305 AEADs, BLAKE3 (keyed hashing, key
//! derivation, XOF) and Argon2id.
//!
//! # Overview
//!
//! * [`SealKey`] seals and opens bytes with an explicit 96-bit nonce and
//!   associated data; output is `ciphertext || 16-byte tag`.
//! * [`derive_subkey`] turns a data key and a random 256-bit salt (one per
//!   pack or sealed file) into the key that object is sealed under, so the
//!   simple [`counter_nonce`] never repeats under one key, however many
//!   writers run at once.
//! * [`KeyBundle`] is the master secret: id key, chunker key, data keys by
//!   epoch and an optional sensitive-tier key.
//! * [`KeySlot`] wraps an encoded bundle under a key-encryption key derived
//!   from a passphrase (Argon2id) or a key file (BLAKE3), with a sealed,
//!   listable [`SlotMeta`].
//!
//! All secret bytes live in [`Key32`] or [`zeroize::Zeroizing`] buffers and
//! are wiped on drop.
//!
//! # Example
//!
//! ```
//! use rand_core::OsRng;
//! use snapguard_crypto::*;
//!
//! let bundle = KeyBundle::generate(&mut OsRng);
//! let meta = SlotMeta {
//!     label: "laptop".into(),
//!     hostname: "host".into(),
//!     username: "alice".into(),
//!     created_unix: 1_800_000_000,
//!     capabilities: vec!["read".into(), "write".into()],
//! };
//! let params = Argon2Params { memory_kib: 8192, iterations: 1, parallelism: 1 };
//! let pass = Unlocker::Passphrase(b"correct horse battery staple");
//! let slot = KeySlot::create(
//!     &mut OsRng, &bundle, SlotTemplate::Passphrase(params), &pass, Cipher::Aes256Gcm, &meta,
//! )?;
//! let file = slot.encode(); // stored as keys/<hex of slot.id()>
//!
//! let unlocked = KeySlot::decode(&file)?.unlock(&pass)?;
//! let salt: [u8; 32] = random_bytes(&mut OsRng); // one per pack
//! let key = SealKey::new(Cipher::Aes256Gcm, derive_subkey(unlocked.data_key(0).unwrap(), &salt));
//! let sealed = key.seal(&counter_nonce(0), b"aad", b"chunk");
//! assert_eq!(key.open(&counter_nonce(0), b"aad", &sealed)?, b"chunk");
//! # Ok::<(), CryptoError>(())
//! ```

mod aead;
mod bundle;
mod key;
mod slot;

pub use crate::aead::{counter_nonce, Cipher, SealKey, NONCE_LEN, TAG_LEN};
pub use crate::bundle::{KeyBundle, KEY_BUNDLE_VERSION};
pub use crate::key::{derive_subkey, Key32};
pub use crate::slot::{
    Argon2Params, KeySlot, SlotKind, SlotMeta, SlotTemplate, Unlocker, SLOT_FORMAT_VERSION,
    SLOT_MAGIC, SLOT_MAX_FIELD_LEN,
};
/// The operating system's CSPRNG, re-exported for callers that need one.
pub use rand_core::OsRng;

/// BLAKE3 `derive_key` context for per-object subkeys ([`derive_subkey`]).
pub const SUBKEY_CONTEXT: &str = "snapguard 2026-11 object subkey v1";
/// BLAKE3 `derive_key` context for the chunker gear table ([`KeyBundle::gear_table`]).
pub const GEAR_CONTEXT: &str = "snapguard 2026-11 chunker gear v1";
/// BLAKE3 `derive_key` context for the key-encryption key of a key-file slot.
pub const KEY_FILE_CONTEXT: &str = "snapguard 2026-11 key-file slot v1";
/// BLAKE3 `derive_key` context for the MAC key of local cache files
/// ([`KeyBundle::cache_mac_key`]).
pub const CACHE_MAC_CONTEXT: &str = "snapguard 2026-11 local cache mac v1";

/// Everything that can go wrong in this crate.
///
/// Authentication failures are deliberately uninformative: a wrong key, a
/// wrong passphrase, a wrong kind of unlocker and tampered bytes all look the
/// same, so that nothing about the secret leaks through error messages.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum CryptoError {
    /// The AEAD tag did not verify.
    #[error("authentication failed: data was corrupted or tampered with, or the key is wrong")]
    Authentication,
    /// Bytes that do not follow the expected layout.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being decoded, e.g. `"key slot"`.
        what: &'static str,
        /// Human-readable description of the problem.
        detail: String,
    },
    /// A well-formed value this version does not know (a newer format).
    #[error("unsupported {what} {value} (written by a newer SnapGuard?)")]
    Unsupported {
        /// What carried the unknown value, e.g. `"cipher"`.
        what: &'static str,
        /// The unknown value.
        value: u32,
    },
    /// Key derivation could not run (bad parameters, missing input).
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

impl CryptoError {
    /// Shorthand for [`CryptoError::Malformed`].
    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        CryptoError::Malformed {
            what,
            detail: detail.into(),
        }
    }
}

/// `N` bytes from `rng`, e.g. a 32-byte salt: `random_bytes::<32>(&mut OsRng)`.
pub fn random_bytes<const N: usize>(rng: &mut (impl rand_core::CryptoRngCore + ?Sized)) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
