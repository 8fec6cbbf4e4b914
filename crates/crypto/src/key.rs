//! Secret 256-bit keys ([`Key32`]) and per-object subkey derivation
//! ([`derive_subkey`]).
//!
//! A [`Key32`] wipes its bytes when dropped and never prints them. Subkeys
//! are derived with BLAKE3 in key-derivation mode under the context
//! [`crate::SUBKEY_CONTEXT`], from the data key followed by a 32-byte random
//! salt that is stored in the clear next to the sealed object.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::SUBKEY_CONTEXT;

/// 32 secret bytes, zeroized on drop. `Debug` prints `Key32(<redacted>)`.
///
/// There is deliberately no `PartialEq`: compare keys through
/// [`Key32::as_bytes`] in tests only.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    /// Wrap existing key bytes (the caller should wipe its own copy).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key32(bytes)
    }

    /// A fresh uniformly random key.
    pub fn generate(rng: &mut (impl rand_core::CryptoRngCore + ?Sized)) -> Self {
        let mut key = Key32([0u8; 32]);
        rng.fill_bytes(&mut key.0);
        key
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// An all-zero key to be filled in place (avoids stray stack copies).
    pub(crate) fn zeroed() -> Self {
        Key32([0u8; 32])
    }

    /// Mutable access for in-place derivation.
    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(<redacted>)")
    }
}

/// Per-object subkey: BLAKE3 `derive_key` with context
/// `"snapguard 2026-11 object subkey v1"` over `data_key || salt`.
///
/// Every pack and every sealed file has its own random 256-bit salt, so the
/// counter nonces ([`crate::counter_nonce`]) used under a subkey never repeat,
/// no matter how many writers run concurrently.
pub fn derive_subkey(data_key: &Key32, salt: &[u8; 32]) -> Key32 {
    let mut hasher = blake3::Hasher::new_derive_key(SUBKEY_CONTEXT);
    hasher.update(data_key.as_bytes());
    hasher.update(salt);
    let mut out = Key32::zeroed();
    hasher.finalize_xof().fill(out.as_mut_bytes());
    hasher.zeroize();
    out
}

/// BLAKE3 `derive_key(context, parts[0] || parts[1] || ...)` into a [`Key32`],
/// wiping the hasher state afterwards.
pub(crate) fn derive_key_parts(context: &str, parts: &[&[u8]]) -> Key32 {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    for part in parts {
        hasher.update(part);
    }
    let mut out = Key32::zeroed();
    hasher.finalize_xof().fill(out.as_mut_bytes());
    hasher.zeroize();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = Key32::from_bytes([0x42; 32]);
        assert_eq!(format!("{k:?}"), "Key32(<redacted>)");
        assert!(!format!("{k:?}").contains("42"));
    }

    #[test]
    fn subkey_matches_blake3_derive_key() {
        let key = Key32::from_bytes([7; 32]);
        let salt = [9u8; 32];
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(key.as_bytes());
        material[32..].copy_from_slice(&salt);
        let expected = blake3::derive_key(SUBKEY_CONTEXT, &material);
        assert_eq!(derive_subkey(&key, &salt).as_bytes(), &expected);
        let parts = derive_key_parts(SUBKEY_CONTEXT, &[key.as_bytes(), &salt]);
        assert_eq!(parts.as_bytes(), &expected);
    }

    #[test]
    fn subkeys_differ_per_salt_and_key() {
        let key = Key32::from_bytes([1; 32]);
        let a = derive_subkey(&key, &[0; 32]);
        let b = derive_subkey(&key, &[1; 32]);
        let c = derive_subkey(&Key32::from_bytes([2; 32]), &[0; 32]);
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), c.as_bytes());
    }
}
