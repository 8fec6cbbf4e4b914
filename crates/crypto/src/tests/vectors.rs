//! Known-answer test vectors, also published in `VECTORS.md`. Every value
//! was cross-checked against independent implementations (Python
//! `cryptography` for AES-256-GCM, ChaCha20-Poly1305 and Argon2id, the
//! `blake3` Python package for BLAKE3). Run
//! `cargo test -p snapguard-crypto print_vectors -- --nocapture` to print them.

use super::seq;
use crate::slot::kdf::{key_file_kek, passphrase_kek};
use crate::{
    counter_nonce, derive_subkey, Argon2Params, Cipher, Key32, KeyBundle, KeySlot, SealKey,
    SlotKind, SlotMeta, Unlocker,
};

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const AAD: &[u8] = b"snapguard test vector";
const PLAINTEXT: &[u8] = b"SnapGuard test vector plaintext";
const KEY_FILE: &[u8] = b"SnapGuard test key file";
const PASSPHRASE: &[u8] = b"correct horse battery staple";

const AES_256_GCM_SEALED: &str = "b142e34fe3da8d752e2471a64fb5a8bda902bb410e881b7e2f76338a785ef3200c3d407c0ca10cd3dfd13090c3a9f9";
const CHACHA20_POLY1305_SEALED: &str = "c7511a9e8396fd58137ba7961e4bfd2d44db84b75fd9a951f429992d72d96541d8dc098448a69e7f8ff91fab4ca8dc";
const SUBKEY: &str = "244bd57ed97ae8103d439ca01b02d286139add37341dcf16c9a6dcafed36f210";
const ID_ABC: &str = "6da54495d8152f2bcba87bd7282df70901cdb66b4448ed5f4c7bd2852b8b5532";
const GEAR_0_3: [u64; 4] = [
    0xc870_5869_e0c0_d896,
    0x7156_f475_25d1_20d4,
    0x1537_aebc_b010_eb32,
    0xf6c1_a4b3_daf5_d12e,
];
const KEY_FILE_KEK: &str = "e0ffb7e1d5c08f8ac61c05f7b8483ad79a0dbdbf4915a97b6533fc12a0e14067";
const PASSPHRASE_KEK: &str = "306a28335fb4220d5c047a055a935e74e8f08bae9bab84c151ad5e2fd17b78a2";
const BUNDLE_ENCODING: &str = concat!(
    "01000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
    "1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e",
    "3f0100404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c",
    "5d5e5f00",
);
const SLOT_FILE: &str = concat!(
    "53474b4559534c540100012100000001606162636465666768696a6b6c6d6e6f",
    "707172737475767778797a7b7c7d7e7f7400000012c2ec8e89bad1d967d5e4bd",
    "15e4491ae02b0a40d1bb4fe5913e7fb2333ecbdac1c628c3f0c82fde5a31fe0d",
    "f1a3883363fce3069645263fb7b199d5ef969d1db256f4e76147ebd77cb8c208",
    "7289bcbb88839cc1ff6e412e331e56b59b4c3ffc1a42395b03180870c3e71c2a",
    "d2f1769a953a281e808182838485868788898a8b8c8d8e8f9091929394959697",
    "98999a9b9c9d9e9f3100000097c8e5e7674420b1814016be28ba5cf5d3c2529c",
    "f674e2c583121854b7b5072de60c7b688b57ae69ee03794a14b287eba5",
);
const SLOT_ID: &str = "f65ab788fab201d7324a881604e013dd3aa4f81f875d964829263738f3f928e8";

/// Argon2id parameters of the passphrase KEK vector.
const ARGON: Argon2Params = Argon2Params {
    memory_kib: 8192,
    iterations: 1,
    parallelism: 1,
};

fn key() -> Key32 {
    Key32::from_bytes(seq(0))
}

/// Every key 0x00..0x1f (id, gear and sealing vectors).
fn bundle() -> KeyBundle {
    KeyBundle {
        id_key: key(),
        chunker_key: key(),
        data_keys: vec![(0, key())],
        sensitive_key: None,
    }
}

/// Distinct keys for the slot file vector: id 0x00.., chunker 0x20..,
/// data key (epoch 0) 0x40...
fn slot_bundle() -> KeyBundle {
    KeyBundle {
        id_key: Key32::from_bytes(seq(0)),
        chunker_key: Key32::from_bytes(seq(0x20)),
        data_keys: vec![(0, Key32::from_bytes(seq(0x40)))],
        sensitive_key: None,
    }
}

fn slot_meta() -> SlotMeta {
    SlotMeta {
        label: "test".into(),
        hostname: "host".into(),
        username: "user".into(),
        created_unix: 1_800_000_000,
        capabilities: vec!["read".into(), "write".into()],
    }
}

/// Key-file slot, AES-256-GCM, key file `KEY_FILE`, salt 0x60..0x7f,
/// meta salt 0x80..0x9f.
fn slot() -> KeySlot {
    let kind = SlotKind::KeyFile { salt: seq(0x60) };
    let unlocker = Unlocker::KeyFile(KEY_FILE);
    KeySlot::create_with_salts(
        &slot_bundle(),
        kind,
        &unlocker,
        Cipher::Aes256Gcm,
        &slot_meta(),
        seq(0x80),
    )
    .unwrap()
}

fn sealed(cipher: Cipher) -> String {
    hex::encode(SealKey::new(cipher, key()).seal(&counter_nonce(1), AAD, PLAINTEXT))
}

fn subkey() -> String {
    hex::encode(derive_subkey(&key(), &seq(0x20)).as_bytes())
}

fn key_file_kek_hex() -> String {
    hex::encode(key_file_kek(KEY_FILE, &seq(0)).as_bytes())
}

fn passphrase_kek_hex() -> String {
    hex::encode(
        passphrase_kek(PASSPHRASE, &seq(0), &ARGON)
            .unwrap()
            .as_bytes(),
    )
}

#[test]
fn aead_vectors() {
    assert_eq!(hex::encode(seq::<32>(0)), KEY_HEX);
    assert_eq!(hex::encode(counter_nonce(1)), "010000000000000000000000");
    assert_eq!(sealed(Cipher::Aes256Gcm), AES_256_GCM_SEALED);
    assert_eq!(sealed(Cipher::ChaCha20Poly1305), CHACHA20_POLY1305_SEALED);
    for (cipher, hex_sealed) in [
        (Cipher::Aes256Gcm, AES_256_GCM_SEALED),
        (Cipher::ChaCha20Poly1305, CHACHA20_POLY1305_SEALED),
    ] {
        let bytes = hex::decode(hex_sealed).unwrap();
        let opened = SealKey::new(cipher, key())
            .open(&counter_nonce(1), AAD, &bytes)
            .unwrap();
        assert_eq!(opened, PLAINTEXT);
    }
}

#[test]
fn key_derivation_vectors() {
    assert_eq!(subkey(), SUBKEY);
    assert_eq!(hex::encode(bundle().id_of(b"abc")), ID_ABC);
    assert_eq!(bundle().gear_table()[..4], GEAR_0_3);
    assert_eq!(key_file_kek_hex(), KEY_FILE_KEK);
    assert_eq!(passphrase_kek_hex(), PASSPHRASE_KEK);
}

#[test]
fn slot_file_vector() {
    let slot = slot();
    assert_eq!(hex::encode(slot_bundle().encode()), BUNDLE_ENCODING);
    assert_eq!(hex::encode(slot.encode()), SLOT_FILE);
    assert_eq!(hex::encode(slot.id()), SLOT_ID);
    let decoded = KeySlot::decode(&hex::decode(SLOT_FILE).unwrap()).unwrap();
    let bundle = decoded.unlock(&Unlocker::KeyFile(KEY_FILE)).unwrap();
    assert_eq!(bundle.encode(), slot_bundle().encode());
    assert_eq!(decoded.meta(&bundle).unwrap(), slot_meta());
}

#[test]
fn print_vectors() {
    println!("key       = {KEY_HEX}");
    println!("nonce     = {}", hex::encode(counter_nonce(1)));
    println!(
        "aad       = {} ({:?})",
        hex::encode(AAD),
        std::str::from_utf8(AAD).unwrap()
    );
    println!(
        "plaintext = {} ({:?})",
        hex::encode(PLAINTEXT),
        std::str::from_utf8(PLAINTEXT).unwrap()
    );
    for cipher in Cipher::ALL {
        println!("{} sealed = {}", cipher.name(), sealed(cipher));
    }
    println!("derive_subkey(key, salt 0x20..0x3f) = {}", subkey());
    println!("id_of(b\"abc\") = {}", hex::encode(bundle().id_of(b"abc")));
    for (i, entry) in bundle().gear_table().iter().take(4).enumerate() {
        println!("gear[{i}] = 0x{entry:016x}");
    }
    println!("key-file KEK = {}", key_file_kek_hex());
    println!("passphrase KEK = {}", passphrase_kek_hex());
    println!("bundle encoding = {}", hex::encode(slot_bundle().encode()));
    println!("slot file = {}", hex::encode(slot().encode()));
    println!("slot id = {}", hex::encode(slot().id()));
}
