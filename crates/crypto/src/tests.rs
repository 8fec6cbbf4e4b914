//! Crate tests: AEAD properties, bundle and slot encodings, slot
//! create/unlock, and the published test vectors. Shared helpers live here.

mod aead;
mod bundle;
mod slot;
mod vectors;

use rand_core::{CryptoRng, RngCore};

use crate::{Argon2Params, Key32, KeyBundle};

/// Cheap Argon2 parameters so passphrase tests run fast.
pub(crate) const FAST_ARGON: Argon2Params = Argon2Params {
    memory_kib: 8192,
    iterations: 1,
    parallelism: 1,
};

/// Deterministic test-only RNG: the BLAKE3 XOF of a seed. Not for production.
pub(crate) struct TestRng(blake3::OutputReader);

impl TestRng {
    pub(crate) fn new(seed: u64) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("snapguard crypto tests rng");
        hasher.update(&seed.to_le_bytes());
        TestRng(hasher.finalize_xof())
    }
}

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl CryptoRng for TestRng {}

/// Bytes `start, start+1, ...` (`N` of them).
pub(crate) fn seq<const N: usize>(start: u8) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = start.wrapping_add(i as u8);
    }
    out
}

/// Field-by-field equality of two bundles (Key32 has no PartialEq).
pub(crate) fn assert_bundle_eq(a: &KeyBundle, b: &KeyBundle) {
    let bytes = |k: &Key32| *k.as_bytes();
    assert_eq!(bytes(&a.id_key), bytes(&b.id_key));
    assert_eq!(bytes(&a.chunker_key), bytes(&b.chunker_key));
    let dk = |x: &KeyBundle| {
        x.data_keys
            .iter()
            .map(|(e, k)| (*e, bytes(k)))
            .collect::<Vec<_>>()
    };
    assert_eq!(dk(a), dk(b));
    assert_eq!(
        a.sensitive_key.as_ref().map(bytes),
        b.sensitive_key.as_ref().map(bytes)
    );
}

#[test]
fn random_bytes_uses_the_rng() {
    let a: [u8; 32] = crate::random_bytes(&mut TestRng::new(1));
    let b: [u8; 32] = crate::random_bytes(&mut TestRng::new(1));
    let c: [u8; 32] = crate::random_bytes(&mut TestRng::new(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let d: [u8; 32] = crate::random_bytes(&mut rand_core::OsRng);
    let e: [u8; 32] = crate::random_bytes(&mut rand_core::OsRng);
    assert_ne!(d, e);
    let dyn_rng: &mut dyn rand_core::CryptoRngCore = &mut TestRng::new(1);
    assert_eq!(crate::random_bytes::<32>(dyn_rng), a);
}

#[test]
fn error_messages() {
    use crate::CryptoError;
    assert_eq!(
        CryptoError::Authentication.to_string(),
        "authentication failed: data was corrupted or tampered with, or the key is wrong"
    );
    let e = CryptoError::Unsupported {
        what: "cipher",
        value: 9,
    };
    assert_eq!(
        e.to_string(),
        "unsupported cipher 9 (written by a newer SnapGuard?)"
    );
    let e = CryptoError::Malformed {
        what: "key slot",
        detail: "x".into(),
    };
    assert_eq!(e.to_string(), "malformed key slot: x");
    assert_eq!(
        CryptoError::Kdf("y".into()).to_string(),
        "key derivation failed: y"
    );
}
