//! [`KeyBundle`]: generation, encode/decode round trip and rejection of bad
//! encodings, ids and the gear table.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::{assert_bundle_eq, seq, TestRng};
use crate::{CryptoError, Key32, KeyBundle, KEY_BUNDLE_VERSION};

fn bundle() -> impl Strategy<Value = KeyBundle> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        prop::collection::btree_set(any::<u32>(), 1..6),
        any::<u64>(),
        any::<Option<[u8; 32]>>(),
    )
        .prop_map(|(id, chunker, epochs, seed, sensitive)| {
            let mut rng = TestRng::new(seed);
            KeyBundle {
                id_key: Key32::from_bytes(id),
                chunker_key: Key32::from_bytes(chunker),
                data_keys: epochs
                    .into_iter()
                    .map(|e| (e, Key32::generate(&mut rng)))
                    .collect(),
                sensitive_key: sensitive.map(Key32::from_bytes),
            }
        })
}

proptest! {
    #[test]
    fn encode_decode_round_trip(b in bundle()) {
        let bytes = b.encode();
        prop_assert_eq!(bytes[0], KEY_BUNDLE_VERSION);
        let back = KeyBundle::decode(&bytes).unwrap();
        assert_bundle_eq(&b, &back);
        prop_assert_eq!(&back.encode()[..], &bytes[..]);
        let max = b.data_keys.iter().map(|(e, _)| *e).max().unwrap();
        prop_assert_eq!(back.current_epoch(), max);
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = KeyBundle::decode(&bytes);
    }

    #[test]
    fn every_truncation_is_rejected(b in bundle()) {
        let bytes = b.encode();
        for len in 0..bytes.len() {
            prop_assert!(KeyBundle::decode(&bytes[..len]).is_err(), "prefix {} accepted", len);
        }
    }
}

#[test]
fn generate_has_epoch_zero() {
    let b = KeyBundle::generate(&mut rand_core::OsRng);
    assert_eq!(b.data_keys.len(), 1);
    assert_eq!(b.current_epoch(), 0);
    assert!(b.data_key(0).is_some());
    assert!(b.data_key(1).is_none());
    assert!(b.sensitive_key.is_none());
    let keys = [
        b.id_key.as_bytes(),
        b.chunker_key.as_bytes(),
        b.data_keys[0].1.as_bytes(),
    ];
    let distinct: BTreeSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), 3);
    let enc = b.encode();
    assert_eq!(enc.len(), 1 + 32 + 32 + 1 + 1 + 32 + 1);
}

#[test]
fn generate_is_deterministic_under_a_seeded_rng() {
    let a = KeyBundle::generate(&mut TestRng::new(3));
    let b = KeyBundle::generate(&mut TestRng::new(3));
    assert_bundle_eq(&a, &b);
}

#[test]
fn debug_does_not_leak() {
    let b = KeyBundle::generate(&mut TestRng::new(4));
    let dbg = format!("{b:?}");
    assert!(dbg.contains("<redacted>"));
    for key in [&b.id_key, &b.chunker_key, &b.data_keys[0].1] {
        let byte = format!("{}", key.as_bytes()[0]);
        let list = format!("[{byte}, {}", key.as_bytes()[1]);
        assert!(!dbg.contains(&list), "{dbg}");
    }
}

#[test]
fn bad_encodings_are_rejected() {
    let mut b = KeyBundle::generate(&mut TestRng::new(5));
    let good = b.encode().to_vec();

    assert!(matches!(
        KeyBundle::decode(&[]),
        Err(CryptoError::Malformed { .. })
    ));
    let mut v2 = good.clone();
    v2[0] = 2;
    assert!(matches!(
        KeyBundle::decode(&v2),
        Err(CryptoError::Unsupported {
            what: "key bundle version",
            value: 2
        })
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        KeyBundle::decode(&trailing),
        Err(CryptoError::Malformed { .. })
    ));

    b.data_keys.clear();
    assert!(matches!(
        KeyBundle::decode(&b.encode()),
        Err(CryptoError::Malformed { .. })
    ));
    b.data_keys = vec![
        (3, Key32::from_bytes([1; 32])),
        (3, Key32::from_bytes([2; 32])),
    ];
    assert!(matches!(
        KeyBundle::decode(&b.encode()),
        Err(CryptoError::Malformed { .. })
    ));
    b.data_keys = vec![
        (3, Key32::from_bytes([1; 32])),
        (1, Key32::from_bytes([2; 32])),
    ];
    assert!(matches!(
        KeyBundle::decode(&b.encode()),
        Err(CryptoError::Malformed { .. })
    ));
}

#[test]
fn epochs_and_data_keys() {
    let mut b = KeyBundle::generate(&mut TestRng::new(6));
    b.data_keys.push((1, Key32::from_bytes([1; 32])));
    b.data_keys.push((7, Key32::from_bytes([7; 32])));
    assert_eq!(b.current_epoch(), 7);
    assert_eq!(b.data_key(7).unwrap().as_bytes(), &[7; 32]);
    assert_eq!(b.data_key(1).unwrap().as_bytes(), &[1; 32]);
    assert!(b.data_key(2).is_none());
    let back = KeyBundle::decode(&b.encode()).unwrap();
    assert_eq!(back.current_epoch(), 7);
}

#[test]
fn ids_are_keyed_blake3_and_streamable() {
    let mut b = KeyBundle::generate(&mut TestRng::new(7));
    b.id_key = Key32::from_bytes(seq(0));
    let data = vec![0xabu8; 100_000];
    let id = b.id_of(&data);
    assert_eq!(&id, blake3::keyed_hash(&seq(0), &data).as_bytes());
    let mut h = b.id_hasher();
    for chunk in data.chunks(777) {
        h.update(chunk);
    }
    assert_eq!(h.finalize().as_bytes(), &id);
    assert_ne!(id, *blake3::hash(&data).as_bytes());
    b.id_key = Key32::from_bytes(seq(1));
    assert_ne!(b.id_of(&data), id);
}

#[test]
fn gear_table_is_keyed_xof() {
    let mut b = KeyBundle::generate(&mut TestRng::new(8));
    b.chunker_key = Key32::from_bytes(seq(0));
    let table = b.gear_table();
    assert_eq!(table, b.gear_table());
    let mut xof = [0u8; 2048];
    let mut h = blake3::Hasher::new_derive_key(crate::GEAR_CONTEXT);
    h.update(&seq::<32>(0));
    h.finalize_xof().fill(&mut xof);
    for (i, entry) in table.iter().enumerate() {
        let word: [u8; 8] = xof[i * 8..i * 8 + 8].try_into().unwrap();
        assert_eq!(*entry, u64::from_le_bytes(word));
    }
    // The first 32 bytes are plain derive_key output.
    let dk = blake3::derive_key(crate::GEAR_CONTEXT, &seq::<32>(0));
    assert_eq!(&xof[..32], &dk);
    let distinct: BTreeSet<u64> = table.iter().copied().collect();
    assert_eq!(distinct.len(), 256);
    b.chunker_key = Key32::from_bytes(seq(1));
    assert_ne!(b.gear_table(), table);
}
