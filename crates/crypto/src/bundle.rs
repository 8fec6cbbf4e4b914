//! The repository's master secret ([`KeyBundle`]): independent random keys
//! for object ids, the chunker and data sealing, and its binary encoding.
//!
//! The keys are independent (not derived from one another) so that
//! capabilities can be split later: a write-only client could get the id and
//! chunker keys but no data keys, and a sensitive tier gets its own key.
//!
//! # Encoding
//!
//! [`KeyBundle::encode`] writes a version byte ([`KEY_BUNDLE_VERSION`] = 1)
//! followed by the postcard encoding of a private struct:
//! `id_key [u8;32] | chunker_key [u8;32] | data_keys: varint count, then
//! (epoch varint u32, key [u8;32])* | sensitive_key: 0, or 1 then [u8;32]`.
//! Trailing bytes are rejected.
//!
//! Postcard is not self-describing, so any future addition (a new key, a new
//! field) is made by bumping the version byte and teaching
//! [`KeyBundle::decode`] both layouts. Older clients then refuse the bundle
//! with [`CryptoError::Unsupported`] instead of silently dropping keys they
//! do not know when they re-wrap the bundle into a new key slot.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{CryptoError, Key32, GEAR_CONTEXT};

/// Version byte at the start of an encoded [`KeyBundle`].
pub const KEY_BUNDLE_VERSION: u8 = 1;

/// The secret that key slots wrap ("master secret").
#[derive(Clone, Debug)]
pub struct KeyBundle {
    /// Key of the keyed BLAKE3 ids of blobs, trees and snapshots.
    pub id_key: Key32,
    /// Derives the secret gear table of the content-defined chunker.
    pub chunker_key: Key32,
    /// Data keys as `(epoch, key)`, epochs strictly increasing; epoch 0 is
    /// created at init and key rotation appends.
    pub data_keys: Vec<(u32, Key32)>,
    /// Reserved for the stronger "sensitive" tier (`None` for now).
    pub sensitive_key: Option<Key32>,
}

/// On-the-wire form of a [`KeyBundle`] (version 1). Wiped on drop.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct BundleWireV1 {
    id_key: [u8; 32],
    chunker_key: [u8; 32],
    data_keys: Vec<DataKeyWire>,
    sensitive_key: Option<[u8; 32]>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct DataKeyWire {
    epoch: u32,
    key: [u8; 32],
}

impl KeyBundle {
    /// Fresh random keys with one data key at epoch 0 and no sensitive key.
    pub fn generate(rng: &mut (impl rand_core::CryptoRngCore + ?Sized)) -> KeyBundle {
        KeyBundle {
            id_key: Key32::generate(rng),
            chunker_key: Key32::generate(rng),
            data_keys: vec![(0, Key32::generate(rng))],
            sensitive_key: None,
        }
    }

    /// Versioned binary encoding (see the module docs), in a buffer that is
    /// wiped on drop.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let wire = BundleWireV1 {
            id_key: *self.id_key.as_bytes(),
            chunker_key: *self.chunker_key.as_bytes(),
            data_keys: self
                .data_keys
                .iter()
                .map(|(epoch, key)| DataKeyWire {
                    epoch: *epoch,
                    key: *key.as_bytes(),
                })
                .collect(),
            sensitive_key: self.sensitive_key.as_ref().map(|k| *k.as_bytes()),
        };
        // Upper bound of the encoded size, so the buffer never reallocates
        // (a reallocation would leave an unwiped copy of the keys behind).
        let capacity = 1 + 32 + 32 + 5 + self.data_keys.len() * (5 + 32) + 1 + 32;
        let mut out = Vec::with_capacity(capacity);
        out.push(KEY_BUNDLE_VERSION);
        // Serializing plain arrays, integers and a Vec into an extendable
        // buffer cannot fail; an empty result would be rejected by decode.
        Zeroizing::new(postcard::to_extend(&wire, out).unwrap_or_default())
    }

    /// Inverse of [`KeyBundle::encode`].
    ///
    /// Rejects unknown versions ([`CryptoError::Unsupported`]), truncated or
    /// trailing bytes, an empty data key list and epochs that are not
    /// strictly increasing ([`CryptoError::Malformed`]).
    pub fn decode(bytes: &[u8]) -> Result<KeyBundle, CryptoError> {
        const WHAT: &str = "key bundle";
        let Some((&version, body)) = bytes.split_first() else {
            return Err(CryptoError::malformed(WHAT, "empty"));
        };
        if version != KEY_BUNDLE_VERSION {
            return Err(CryptoError::Unsupported {
                what: "key bundle version",
                value: u32::from(version),
            });
        }
        let (wire, rest): (BundleWireV1, &[u8]) = postcard::take_from_bytes(body)
            .map_err(|e| CryptoError::malformed(WHAT, e.to_string()))?;
        if !rest.is_empty() {
            return Err(CryptoError::malformed(
                WHAT,
                format!("{} trailing bytes", rest.len()),
            ));
        }
        if wire.data_keys.is_empty() {
            return Err(CryptoError::malformed(WHAT, "no data key"));
        }
        if wire.data_keys.windows(2).any(|w| w[0].epoch >= w[1].epoch) {
            return Err(CryptoError::malformed(
                WHAT,
                "data key epochs are not strictly increasing",
            ));
        }
        Ok(KeyBundle {
            id_key: Key32::from_bytes(wire.id_key),
            chunker_key: Key32::from_bytes(wire.chunker_key),
            data_keys: wire
                .data_keys
                .iter()
                .map(|d| (d.epoch, Key32::from_bytes(d.key)))
                .collect(),
            sensitive_key: wire.sensitive_key.map(Key32::from_bytes),
        })
    }

    /// The newest data key epoch (the one new data is sealed under).
    pub fn current_epoch(&self) -> u32 {
        self.data_keys
            .iter()
            .map(|(epoch, _)| *epoch)
            .max()
            .unwrap_or(0)
    }

    /// The data key of `epoch`, if this bundle has it.
    pub fn data_key(&self, epoch: u32) -> Option<&Key32> {
        self.data_keys
            .iter()
            .find(|(e, _)| *e == epoch)
            .map(|(_, key)| key)
    }

    /// Keyed BLAKE3 (`blake3::keyed_hash` with `id_key`) of `data`.
    pub fn id_of(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(self.id_key.as_bytes(), data).as_bytes()
    }

    /// Incremental id hasher: feeding it `data` and finalizing gives the same
    /// result as [`KeyBundle::id_of`]. It holds the id key; drop it promptly.
    pub fn id_hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(self.id_key.as_bytes())
    }

    /// Key of the keyed BLAKE3 MAC over local cache files (the on-disk index
    /// cache): `derive_key("snapguard 2026-11 local cache mac v1", id_key)`.
    /// A cache file that does not verify under it was not written by a
    /// client holding this repository's keys.
    pub fn cache_mac_key(&self) -> Key32 {
        crate::key::derive_key_parts(crate::CACHE_MAC_CONTEXT, &[self.id_key.as_bytes()])
    }

    /// The chunker's 256-entry gear table: BLAKE3
    /// `derive_key("snapguard 2026-11 chunker gear v1", chunker_key)` used as
    /// an XOF, 2048 bytes read, each 8 bytes a little-endian `u64`.
    pub fn gear_table(&self) -> [u64; 256] {
        let mut bytes = Zeroizing::new([0u8; 2048]);
        let mut hasher = blake3::Hasher::new_derive_key(GEAR_CONTEXT);
        hasher.update(self.chunker_key.as_bytes());
        hasher.finalize_xof().fill(&mut bytes[..]);
        hasher.zeroize();
        let mut table = [0u64; 256];
        for (entry, chunk) in table.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *entry = u64::from_le_bytes(word);
        }
        table
    }
}
