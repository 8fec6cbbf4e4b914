//! Properties of [`SealKey`]: round trips for both ciphers, and every kind of
//! modification (bit flips, aad, nonce, key, cipher, truncation) rejected.

use proptest::prelude::*;
use proptest::sample::Index;

use crate::{counter_nonce, Cipher, CryptoError, Key32, SealKey, NONCE_LEN, TAG_LEN};

fn cipher() -> impl Strategy<Value = Cipher> {
    prop_oneof![Just(Cipher::Aes256Gcm), Just(Cipher::ChaCha20Poly1305)]
}

fn seal_key(cipher: Cipher, key: [u8; 32]) -> SealKey {
    SealKey::new(cipher, Key32::from_bytes(key))
}

proptest! {
    #[test]
    fn round_trip(
        cipher in cipher(),
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; NONCE_LEN]>(),
        aad in prop::collection::vec(any::<u8>(), 0..64),
        plaintext in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let k = seal_key(cipher, key);
        let sealed = k.seal(&nonce, &aad, &plaintext);
        prop_assert_eq!(sealed.len(), plaintext.len() + TAG_LEN);
        prop_assert_eq!(k.open(&nonce, &aad, &sealed).unwrap(), plaintext.clone());

        let mut out = b"prefix".to_vec();
        k.seal_into(&nonce, &aad, &plaintext, &mut out);
        prop_assert_eq!(&out[..6], b"prefix");
        prop_assert_eq!(&out[6..], &sealed[..]);
    }

    #[test]
    fn any_bit_flip_is_rejected(
        cipher in cipher(),
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; NONCE_LEN]>(),
        aad in prop::collection::vec(any::<u8>(), 0..32),
        plaintext in prop::collection::vec(any::<u8>(), 0..512),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let k = seal_key(cipher, key);
        let mut sealed = k.seal(&nonce, &aad, &plaintext);
        let i = at.index(sealed.len());
        sealed[i] ^= 1 << bit;
        prop_assert!(matches!(k.open(&nonce, &aad, &sealed), Err(CryptoError::Authentication)));
    }

    #[test]
    fn changed_aad_nonce_key_or_cipher_is_rejected(
        cipher in cipher(),
        key in any::<[u8; 32]>(),
        other_key in any::<[u8; 32]>(),
        nonce in any::<[u8; NONCE_LEN]>(),
        other_nonce in any::<[u8; NONCE_LEN]>(),
        aad in prop::collection::vec(any::<u8>(), 0..32),
        other_aad in prop::collection::vec(any::<u8>(), 0..32),
        plaintext in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let k = seal_key(cipher, key);
        let sealed = k.seal(&nonce, &aad, &plaintext);
        if other_aad != aad {
            prop_assert!(matches!(k.open(&nonce, &other_aad, &sealed), Err(CryptoError::Authentication)));
        }
        if other_nonce != nonce {
            prop_assert!(matches!(k.open(&other_nonce, &aad, &sealed), Err(CryptoError::Authentication)));
        }
        if other_key != key {
            let wrong = seal_key(cipher, other_key);
            prop_assert!(matches!(wrong.open(&nonce, &aad, &sealed), Err(CryptoError::Authentication)));
        }
        let other_cipher = if cipher == Cipher::Aes256Gcm { Cipher::ChaCha20Poly1305 } else { Cipher::Aes256Gcm };
        let wrong = seal_key(other_cipher, key);
        prop_assert!(matches!(wrong.open(&nonce, &aad, &sealed), Err(CryptoError::Authentication)));
    }

    #[test]
    fn truncation_is_an_error_not_a_panic(
        cipher in cipher(),
        key in any::<[u8; 32]>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
        cut in any::<Index>(),
    ) {
        let k = seal_key(cipher, key);
        let nonce = counter_nonce(7);
        let sealed = k.seal(&nonce, b"aad", &plaintext);
        let len = cut.index(sealed.len());
        match k.open(&nonce, b"aad", &sealed[..len]) {
            Err(CryptoError::Malformed { .. }) => prop_assert!(len < TAG_LEN),
            Err(CryptoError::Authentication) => prop_assert!(len >= TAG_LEN),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn open_never_panics_on_arbitrary_input(
        cipher in cipher(),
        sealed in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let k = seal_key(cipher, [5; 32]);
        prop_assert!(k.open(&[0; NONCE_LEN], b"", &sealed).is_err());
    }
}

#[test]
fn cipher_codes_and_names() {
    for c in Cipher::ALL {
        assert_eq!(Cipher::from_code(c.code()).unwrap(), c);
        assert_eq!(Cipher::from_name(c.name()), Some(c));
        assert_eq!(c.to_string(), c.name());
    }
    assert_eq!(Cipher::Aes256Gcm.code(), 1);
    assert_eq!(Cipher::ChaCha20Poly1305.code(), 2);
    assert_eq!(Cipher::Aes256Gcm.name(), "aes-256-gcm");
    assert_eq!(Cipher::ChaCha20Poly1305.name(), "chacha20-poly1305");
    for bad in [0u8, 3, 255] {
        assert!(matches!(
            Cipher::from_code(bad),
            Err(CryptoError::Unsupported { what: "cipher", value }) if value == u32::from(bad)
        ));
    }
    assert_eq!(Cipher::from_name("AES-256-GCM"), None);
    assert_eq!(Cipher::from_name("aes"), None);
}

#[test]
fn counter_nonce_layout() {
    assert_eq!(counter_nonce(0), [0; 12]);
    assert_eq!(counter_nonce(1), [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        counter_nonce(0x0102_0304_0506_0708),
        [8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0]
    );
    assert_eq!(counter_nonce(u64::MAX)[..8], [0xff; 8]);
    assert_eq!(counter_nonce(u64::MAX)[8..], [0; 4]);
}

#[test]
fn empty_plaintext_and_debug() {
    for c in Cipher::ALL {
        let k = seal_key(c, [1; 32]);
        let sealed = k.seal(&counter_nonce(0), b"", b"");
        assert_eq!(sealed.len(), TAG_LEN);
        assert_eq!(k.open(&counter_nonce(0), b"", &sealed).unwrap(), b"");
        assert_eq!(k.cipher(), c);
        let dbg = format!("{k:?}");
        assert!(dbg.contains("SealKey") && !dbg.contains("[1"), "{dbg}");
    }
}
