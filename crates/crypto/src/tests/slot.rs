//! [`KeySlot`]: create/unlock for passphrases and key files, rejection of
//! wrong secrets, wrong kinds and tampered files, metadata, and the file
//! codec (round trip, strictness, never panicking).

use proptest::prelude::*;

use super::{assert_bundle_eq, TestRng, FAST_ARGON};
use crate::{
    Argon2Params, Cipher, CryptoError, KeyBundle, KeySlot, SlotKind, SlotMeta, SlotTemplate,
    Unlocker, SLOT_MAX_FIELD_LEN,
};

fn meta(label: &str) -> SlotMeta {
    SlotMeta {
        label: label.into(),
        hostname: "host".into(),
        username: "alice".into(),
        created_unix: 1_800_000_000,
        capabilities: vec!["read".into(), "write".into()],
    }
}

fn passphrase_slot(rng: &mut TestRng, bundle: &KeyBundle, pass: &[u8], cipher: Cipher) -> KeySlot {
    let template = SlotTemplate::Passphrase(FAST_ARGON);
    KeySlot::create(
        rng,
        bundle,
        template,
        &Unlocker::Passphrase(pass),
        cipher,
        &meta("laptop"),
    )
    .unwrap()
}

fn is_auth<T>(r: Result<T, CryptoError>) -> bool {
    matches!(r, Err(CryptoError::Authentication))
}

#[test]
fn passphrase_slot_round_trip() {
    let mut rng = TestRng::new(10);
    let bundle = KeyBundle::generate(&mut rng);
    for cipher in Cipher::ALL {
        let slot = passphrase_slot(&mut rng, &bundle, b"correct horse", cipher);
        let decoded = KeySlot::decode(&slot.encode()).unwrap();
        assert_eq!(decoded, slot);
        assert_eq!(decoded.id(), slot.id());
        let unlocked = decoded
            .unlock(&Unlocker::Passphrase(b"correct horse"))
            .unwrap();
        assert_bundle_eq(&bundle, &unlocked);
        assert_eq!(decoded.meta(&unlocked).unwrap(), meta("laptop"));
        assert!(
            matches!(decoded.kind, SlotKind::Passphrase { params, .. } if params == FAST_ARGON)
        );
        assert_eq!(decoded.kind.name(), "passphrase");
    }
}

#[test]
fn key_file_slot_round_trip() {
    let mut rng = TestRng::new(11);
    let bundle = KeyBundle::generate(&mut rng);
    let file = [0x5au8; 64];
    let slot = KeySlot::create(
        &mut rng,
        &bundle,
        SlotTemplate::KeyFile,
        &Unlocker::KeyFile(&file),
        Cipher::ChaCha20Poly1305,
        &meta("usb stick"),
    )
    .unwrap();
    let decoded = KeySlot::decode(&slot.encode()).unwrap();
    assert_bundle_eq(&bundle, &decoded.unlock(&Unlocker::KeyFile(&file)).unwrap());
    assert_eq!(decoded.meta(&bundle).unwrap().label, "usb stick");
    assert_eq!(decoded.kind.name(), "key-file");

    let mut other = file;
    other[63] ^= 1;
    assert!(is_auth(decoded.unlock(&Unlocker::KeyFile(&other))));
    assert!(is_auth(decoded.unlock(&Unlocker::KeyFile(&file[..63]))));
}

#[test]
fn wrong_passphrase_is_authentication() {
    let mut rng = TestRng::new(12);
    let bundle = KeyBundle::generate(&mut rng);
    let slot = passphrase_slot(&mut rng, &bundle, b"right", Cipher::Aes256Gcm);
    assert!(is_auth(slot.unlock(&Unlocker::Passphrase(b"wrong"))));
    assert!(is_auth(slot.unlock(&Unlocker::Passphrase(b""))));
    assert!(is_auth(slot.unlock(&Unlocker::Passphrase(b"right "))));
}

#[test]
fn wrong_kind_is_authentication() {
    let mut rng = TestRng::new(13);
    let bundle = KeyBundle::generate(&mut rng);
    let pass_slot = passphrase_slot(&mut rng, &bundle, b"secret", Cipher::Aes256Gcm);
    let file_slot = KeySlot::create(
        &mut rng,
        &bundle,
        SlotTemplate::KeyFile,
        &Unlocker::KeyFile(b"secret"),
        Cipher::Aes256Gcm,
        &meta("file"),
    )
    .unwrap();
    assert!(pass_slot.matches(&Unlocker::Passphrase(b"x")));
    assert!(!pass_slot.matches(&Unlocker::KeyFile(b"x")));
    assert!(file_slot.matches(&Unlocker::KeyFile(b"x")));
    assert!(!file_slot.matches(&Unlocker::Passphrase(b"x")));
    assert!(is_auth(pass_slot.unlock(&Unlocker::KeyFile(b"secret"))));
    assert!(is_auth(file_slot.unlock(&Unlocker::Passphrase(b"secret"))));
}

/// Offsets in the encoded file: magic 0..8, version 8..10, cipher 10,
/// kind length 11..15, kind from 15 (variant, memory varint, iterations...).
#[test]
fn tampered_header_is_authentication() {
    let mut rng = TestRng::new(14);
    let bundle = KeyBundle::generate(&mut rng);
    let slot = passphrase_slot(&mut rng, &bundle, b"pw", Cipher::Aes256Gcm);
    let good = slot.encode();
    // FAST_ARGON encodes as variant 0, memory 8192 = [0x80, 0x40], iterations 1, parallelism 1.
    assert_eq!(&good[15..20], &[0, 0x80, 0x40, 1, 1]);
    let unlock = |bytes: &[u8]| {
        KeySlot::decode(bytes)
            .unwrap()
            .unlock(&Unlocker::Passphrase(b"pw"))
    };
    assert!(unlock(&good).is_ok());

    let mut weaker_iterations = good.clone();
    weaker_iterations[18] = 2;
    assert!(is_auth(unlock(&weaker_iterations)));
    let mut memory = good.clone();
    memory[16] = 0x81; // 8193 KiB
    assert!(is_auth(unlock(&memory)));
    let mut lanes = good.clone();
    lanes[19] = 2;
    assert!(is_auth(unlock(&lanes)));
    let mut salt = good.clone();
    salt[20] ^= 0x01;
    assert!(is_auth(unlock(&salt)));
    let mut cipher = good.clone();
    cipher[10] = Cipher::ChaCha20Poly1305.code();
    assert!(is_auth(unlock(&cipher)));

    // Out-of-bounds parameters are refused before running Argon2.
    let mut zero_iterations = good.clone();
    zero_iterations[18] = 0;
    assert!(matches!(unlock(&zero_iterations), Err(CryptoError::Kdf(_))));

    // Any flipped byte of the wrapped bundle.
    let wrapped_start = 15 + 37 + 4;
    for i in wrapped_start..wrapped_start + slot.wrapped.len() {
        let mut t = good.clone();
        t[i] ^= 0x80;
        assert!(is_auth(unlock(&t)), "byte {i}");
    }
}

#[test]
fn meta_needs_the_right_bundle_and_salt() {
    let mut rng = TestRng::new(15);
    let bundle = KeyBundle::generate(&mut rng);
    let slot = passphrase_slot(&mut rng, &bundle, b"pw", Cipher::ChaCha20Poly1305);
    let other = KeyBundle::generate(&mut rng);
    assert!(is_auth(slot.meta(&other)));
    let mut moved = slot.clone();
    moved.meta_salt[0] ^= 1;
    assert!(is_auth(moved.meta(&bundle)));
    let mut flipped = slot.clone();
    flipped.sealed_meta[0] ^= 1;
    assert!(is_auth(flipped.meta(&bundle)));
    // Any slot's metadata is readable with the bundle from any other slot.
    let second = passphrase_slot(&mut rng, &bundle, b"other", Cipher::Aes256Gcm);
    let unlocked = second.unlock(&Unlocker::Passphrase(b"other")).unwrap();
    assert_eq!(slot.meta(&unlocked).unwrap(), meta("laptop"));
    assert_ne!(slot.id(), second.id());
}

#[test]
fn create_refuses_bad_input() {
    let mut rng = TestRng::new(16);
    let bundle = KeyBundle::generate(&mut rng);
    let m = meta("x");
    let mismatch = KeySlot::create(
        &mut rng,
        &bundle,
        SlotTemplate::KeyFile,
        &Unlocker::Passphrase(b"pw"),
        Cipher::Aes256Gcm,
        &m,
    );
    assert!(matches!(mismatch, Err(CryptoError::Kdf(_))));
    let mismatch = KeySlot::create(
        &mut rng,
        &bundle,
        SlotTemplate::Passphrase(FAST_ARGON),
        &Unlocker::KeyFile(b"file"),
        Cipher::Aes256Gcm,
        &m,
    );
    assert!(matches!(mismatch, Err(CryptoError::Kdf(_))));
    let empty = KeySlot::create(
        &mut rng,
        &bundle,
        SlotTemplate::KeyFile,
        &Unlocker::KeyFile(b""),
        Cipher::Aes256Gcm,
        &m,
    );
    assert!(matches!(empty, Err(CryptoError::Kdf(_))));
    let weak = Argon2Params {
        memory_kib: 1024,
        ..FAST_ARGON
    };
    let weak = KeySlot::create(
        &mut rng,
        &bundle,
        SlotTemplate::Passphrase(weak),
        &Unlocker::Passphrase(b"pw"),
        Cipher::Aes256Gcm,
        &m,
    );
    assert!(matches!(weak, Err(CryptoError::Kdf(_))));
    let mut no_epoch0 = bundle.clone();
    no_epoch0.data_keys[0].0 = 1;
    let r = KeySlot::create(
        &mut rng,
        &no_epoch0,
        SlotTemplate::KeyFile,
        &Unlocker::KeyFile(b"f"),
        Cipher::Aes256Gcm,
        &m,
    );
    assert!(matches!(r, Err(CryptoError::Malformed { .. })));
}

#[test]
fn unlocker_debug_is_redacted() {
    assert_eq!(
        format!("{:?}", Unlocker::Passphrase(b"hunter2")),
        "Unlocker::Passphrase(<redacted>)"
    );
    assert_eq!(
        format!("{:?}", Unlocker::KeyFile(b"hunter2")),
        "Unlocker::KeyFile(<redacted>)"
    );
}

fn sample_slot() -> KeySlot {
    KeySlot {
        kind: SlotKind::KeyFile { salt: [3; 32] },
        cipher: Cipher::Aes256Gcm,
        wrapped: vec![1; 40],
        sealed_meta: vec![2; 30],
        meta_salt: [4; 32],
    }
}

#[test]
fn decode_rejects_bad_files() {
    let good = sample_slot().encode();
    assert_eq!(&good[..8], b"SGKEYSLT");
    assert_eq!(&good[8..11], &[1, 0, 1]);
    let malformed = |b: &[u8]| matches!(KeySlot::decode(b), Err(CryptoError::Malformed { .. }));

    let mut magic = good.clone();
    magic[0] = b'X';
    assert!(malformed(&magic));
    let mut version = good.clone();
    version[8] = 2;
    assert!(matches!(
        KeySlot::decode(&version),
        Err(CryptoError::Unsupported { value: 2, .. })
    ));
    let mut cipher = good.clone();
    cipher[10] = 3;
    assert!(matches!(
        KeySlot::decode(&cipher),
        Err(CryptoError::Unsupported {
            what: "cipher",
            value: 3
        })
    ));
    let mut kind = good.clone();
    kind[15] = 5; // a slot kind from the future
    assert!(matches!(
        KeySlot::decode(&kind),
        Err(CryptoError::Unsupported {
            what: "key slot kind",
            value: 5
        })
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(malformed(&trailing));
    for len in 0..good.len() {
        assert!(KeySlot::decode(&good[..len]).is_err(), "prefix {len}");
    }
    // wrapped length just above the 1 MiB limit, with that much data present.
    let mut huge = good[..15 + 33].to_vec();
    huge.extend_from_slice(&((SLOT_MAX_FIELD_LEN + 1) as u32).to_le_bytes());
    huge.resize(huge.len() + SLOT_MAX_FIELD_LEN + 1 + 32 + 4, 0);
    assert!(malformed(&huge));
    // Non-canonical varint (0x81 0x00 for 1) in a passphrase kind.
    let pass = KeySlot {
        kind: SlotKind::Passphrase {
            params: FAST_ARGON,
            salt: [0; 32],
        },
        ..sample_slot()
    };
    let enc = pass.encode();
    let mut noncanon = enc[..15].to_vec();
    noncanon[11..15].copy_from_slice(&38u32.to_le_bytes());
    noncanon.extend_from_slice(&[0, 0x80, 0x40, 0x81, 0x00, 1]);
    noncanon.extend_from_slice(&enc[15 + 5..]);
    assert!(malformed(&noncanon));
}

fn slot_strategy() -> impl Strategy<Value = KeySlot> {
    let kind = prop_oneof![
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<[u8; 32]>()).prop_map(
            |(m, t, p, salt)| {
                SlotKind::Passphrase {
                    params: Argon2Params {
                        memory_kib: m,
                        iterations: t,
                        parallelism: p,
                    },
                    salt,
                }
            }
        ),
        any::<[u8; 32]>().prop_map(|salt| SlotKind::KeyFile { salt }),
    ];
    let cipher = prop_oneof![Just(Cipher::Aes256Gcm), Just(Cipher::ChaCha20Poly1305)];
    (
        kind,
        cipher,
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<[u8; 32]>(),
    )
        .prop_map(|(kind, cipher, wrapped, sealed_meta, meta_salt)| KeySlot {
            kind,
            cipher,
            wrapped,
            sealed_meta,
            meta_salt,
        })
}

proptest! {
    #[test]
    fn slot_encode_decode_round_trip(slot in slot_strategy()) {
        let bytes = slot.encode();
        let back = KeySlot::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &slot);
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back.id(), *blake3::hash(&slot.encode()).as_bytes());
    }

    #[test]
    fn slot_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = KeySlot::decode(&bytes);
    }

    #[test]
    fn slot_decode_never_panics_on_mutations(
        slot in slot_strategy(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = slot.encode();
        // Edit the header region, then restore the magic so decoding gets
        // past it and exercises the length and kind checks.
        for (at, value) in edits {
            let i = at.index(bytes.len().min(80));
            bytes[i] = value;
        }
        bytes[..8].copy_from_slice(b"SGKEYSLT");
        let _ = KeySlot::decode(&bytes);
        let len = cut.index(bytes.len() + 1);
        let _ = KeySlot::decode(&bytes[..len]);
        if let Ok(decoded) = KeySlot::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}
