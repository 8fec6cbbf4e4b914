//! Key slots: the [`KeyBundle`] wrapped under a key-encryption key (KEK)
//! obtained from a passphrase or a key file, plus sealed metadata that any
//! unlocked client can read to list the repository's slots.
//!
//! A repository stores each slot as `keys/<slot id hex>`, where the id is
//! [`KeySlot::id`]. The byte layout is documented on [`KeySlot::encode`].
//! The wrap is authenticated together with the slot header (magic, version,
//! cipher and the encoded [`SlotKind`] with its KDF parameters and salt), so
//! weakening the parameters or swapping the kind is detected as an
//! authentication failure. Every way of failing to unlock (wrong secret,
//! wrong kind of unlocker, tampered bytes) is the same
//! [`CryptoError::Authentication`].

mod codec;
pub(crate) mod kdf;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use self::codec::{SLOT_FORMAT_VERSION, SLOT_MAGIC, SLOT_MAX_FIELD_LEN};
pub use self::kdf::Argon2Params;

use crate::{derive_subkey, random_bytes, Cipher, CryptoError, KeyBundle, SealKey, NONCE_LEN};

/// Domain-separation prefix of the wrap's associated data.
const WRAP_AAD_PREFIX: &[u8] = b"snapguard key slot v1";
/// Associated data of the sealed metadata.
const META_AAD: &[u8] = b"snapguard key slot meta v1";
/// Version byte in front of the postcard-encoded [`SlotMeta`] plaintext.
const META_VERSION: u8 = 1;
/// Both seals of a slot use the all-zero nonce: each key is used once.
const ZERO_NONCE: [u8; NONCE_LEN] = [0; NONCE_LEN];

/// How a slot's KEK is obtained.
///
/// Variants are append-only: the postcard variant index is the on-disk tag.
/// Later versions add `Tpm2`, `Pkcs11`, `SecretService`, `Fido2`, `Recovery`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotKind {
    /// KEK = Argon2id(passphrase, salt, params), 32 bytes.
    Passphrase {
        /// Argon2id cost parameters.
        params: Argon2Params,
        /// Random per-slot salt.
        salt: [u8; 32],
    },
    /// KEK = BLAKE3 derive_key("snapguard 2026-11 key-file slot v1", key file || salt).
    KeyFile {
        /// Random per-slot salt.
        salt: [u8; 32],
    },
}

impl SlotKind {
    /// Number of variants this version knows (higher tags are
    /// [`CryptoError::Unsupported`]).
    pub(crate) const KNOWN_VARIANTS: u32 = 2;

    /// Short user-facing name: `"passphrase"` or `"key-file"`.
    pub fn name(&self) -> &'static str {
        match self {
            SlotKind::Passphrase { .. } => "passphrase",
            SlotKind::KeyFile { .. } => "key-file",
        }
    }
}

/// What unlocks a slot. `Debug` does not print the secret.
#[derive(Clone, Copy)]
pub enum Unlocker<'a> {
    /// The passphrase bytes (UTF-8 as typed; no normalisation is applied).
    Passphrase(&'a [u8]),
    /// The full contents of the key file.
    KeyFile(&'a [u8]),
}

impl std::fmt::Debug for Unlocker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unlocker::Passphrase(_) => f.write_str("Unlocker::Passphrase(<redacted>)"),
            Unlocker::KeyFile(_) => f.write_str("Unlocker::KeyFile(<redacted>)"),
        }
    }
}

/// The kind of slot [`KeySlot::create`] makes; it draws the salts itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotTemplate {
    /// A passphrase slot with these Argon2id parameters.
    Passphrase(Argon2Params),
    /// A key-file slot.
    KeyFile,
}

/// Descriptive, non-secret information about a slot, sealed so that only
/// clients holding the bundle can read it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SlotMeta {
    /// Free-form label chosen by the user.
    pub label: String,
    /// Host the slot was created on.
    pub hostname: String,
    /// User who created the slot.
    pub username: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: i64,
    /// Capabilities granted, e.g. `["read", "write"]`.
    pub capabilities: Vec<String>,
}

/// A key slot as stored in the repository (file `keys/<slot id hex>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySlot {
    /// How the KEK is derived (with its salt and parameters).
    pub kind: SlotKind,
    /// Cipher of both the wrap and the sealed metadata.
    pub cipher: Cipher,
    /// `KeyBundle::encode()` sealed under the KEK, zero nonce, AAD =
    /// `b"snapguard key slot v1" || slot header` (see [`KeySlot::encode`]).
    pub wrapped: Vec<u8>,
    /// `1 || postcard(SlotMeta)` sealed under
    /// `derive_subkey(data key of epoch 0, meta_salt)`, zero nonce,
    /// AAD = `b"snapguard key slot meta v1"`.
    pub sealed_meta: Vec<u8>,
    /// Random salt of the metadata subkey.
    pub meta_salt: [u8; 32],
}

impl KeySlot {
    /// Create a slot that wraps `bundle` for `unlocker`.
    ///
    /// `template` and `unlocker` must be of the same kind, the Argon2
    /// parameters must pass [`Argon2Params::validate`] and a key file must
    /// not be empty (all [`CryptoError::Kdf`]); the bundle needs a data key
    /// for epoch 0 to seal the metadata ([`CryptoError::Malformed`]).
    pub fn create(
        rng: &mut (impl rand_core::CryptoRngCore + ?Sized),
        bundle: &KeyBundle,
        template: SlotTemplate,
        unlocker: &Unlocker,
        cipher: Cipher,
        meta: &SlotMeta,
    ) -> Result<KeySlot, CryptoError> {
        let kind = match (template, unlocker) {
            (SlotTemplate::Passphrase(params), Unlocker::Passphrase(_)) => {
                params.validate()?;
                SlotKind::Passphrase {
                    params,
                    salt: random_bytes(rng),
                }
            }
            (SlotTemplate::KeyFile, Unlocker::KeyFile(contents)) => {
                if contents.is_empty() {
                    return Err(CryptoError::Kdf("the key file is empty".into()));
                }
                SlotKind::KeyFile {
                    salt: random_bytes(rng),
                }
            }
            (template, _) => {
                return Err(CryptoError::Kdf(format!(
                    "a {template:?} slot cannot be created with {unlocker:?}"
                )))
            }
        };
        Self::create_with_salts(bundle, kind, unlocker, cipher, meta, random_bytes(rng))
    }

    /// [`KeySlot::create`] with the salts already drawn (they are in `kind`
    /// and `meta_salt`); deterministic, for test vectors.
    pub(crate) fn create_with_salts(
        bundle: &KeyBundle,
        kind: SlotKind,
        unlocker: &Unlocker,
        cipher: Cipher,
        meta: &SlotMeta,
        meta_salt: [u8; 32],
    ) -> Result<KeySlot, CryptoError> {
        let meta_key = meta_subkey(bundle, &meta_salt)?;
        let kek = kek(&kind, unlocker)?;
        let aad = wrap_aad(cipher, &kind)?;
        let wrapped = SealKey::new(cipher, kek).seal(&ZERO_NONCE, &aad, &bundle.encode());

        let mut meta_plain = vec![META_VERSION];
        meta_plain = postcard::to_extend(meta, meta_plain)
            .map_err(|e| CryptoError::malformed("slot metadata", e.to_string()))?;
        let sealed_meta = SealKey::new(cipher, meta_key).seal(&ZERO_NONCE, META_AAD, &meta_plain);

        Ok(KeySlot {
            kind,
            cipher,
            wrapped,
            sealed_meta,
            meta_salt,
        })
    }

    /// Unwrap the bundle.
    ///
    /// A wrong secret, an unlocker of the wrong kind and tampered slot bytes
    /// all give [`CryptoError::Authentication`]. Out-of-bounds Argon2
    /// parameters give [`CryptoError::Kdf`] before any work is done.
    pub fn unlock(&self, unlocker: &Unlocker) -> Result<KeyBundle, CryptoError> {
        if !self.matches(unlocker) {
            return Err(CryptoError::Authentication);
        }
        let kek = kek(&self.kind, unlocker)?;
        let aad = wrap_aad(self.cipher, &self.kind)?;
        let plain = Zeroizing::new(SealKey::new(self.cipher, kek).open(
            &ZERO_NONCE,
            &aad,
            &self.wrapped,
        )?);
        KeyBundle::decode(&plain)
    }

    /// Whether `unlocker` is of the kind this slot needs (cheap, no KDF).
    pub fn matches(&self, unlocker: &Unlocker) -> bool {
        matches!(
            (&self.kind, unlocker),
            (SlotKind::Passphrase { .. }, Unlocker::Passphrase(_))
                | (SlotKind::KeyFile { .. }, Unlocker::KeyFile(_))
        )
    }

    /// Open the sealed metadata with `bundle` (any bundle that unlocks any
    /// slot of the repository).
    pub fn meta(&self, bundle: &KeyBundle) -> Result<SlotMeta, CryptoError> {
        const WHAT: &str = "slot metadata";
        let key = meta_subkey(bundle, &self.meta_salt)?;
        let plain =
            SealKey::new(self.cipher, key).open(&ZERO_NONCE, META_AAD, &self.sealed_meta)?;
        let Some((&version, body)) = plain.split_first() else {
            return Err(CryptoError::malformed(WHAT, "empty"));
        };
        if version != META_VERSION {
            return Err(CryptoError::Unsupported {
                what: "slot metadata version",
                value: u32::from(version),
            });
        }
        let (meta, rest): (SlotMeta, &[u8]) = postcard::take_from_bytes(body)
            .map_err(|e| CryptoError::malformed(WHAT, e.to_string()))?;
        if !rest.is_empty() {
            return Err(CryptoError::malformed(
                WHAT,
                format!("{} trailing bytes", rest.len()),
            ));
        }
        Ok(meta)
    }

    /// The slot id: unkeyed BLAKE3 of [`KeySlot::encode`]. Slot ids are
    /// public; they name the slot's file.
    pub fn id(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }
}

/// The KEK for `kind` from `unlocker` (kinds already known to match).
fn kek(kind: &SlotKind, unlocker: &Unlocker) -> Result<crate::Key32, CryptoError> {
    match (kind, unlocker) {
        (SlotKind::Passphrase { params, salt }, Unlocker::Passphrase(pass)) => {
            kdf::passphrase_kek(pass, salt, params)
        }
        (SlotKind::KeyFile { salt }, Unlocker::KeyFile(contents)) => {
            Ok(kdf::key_file_kek(contents, salt))
        }
        _ => Err(CryptoError::Authentication),
    }
}

/// AAD of the wrap: prefix || slot header bytes.
fn wrap_aad(cipher: Cipher, kind: &SlotKind) -> Result<Vec<u8>, CryptoError> {
    let mut aad = WRAP_AAD_PREFIX.to_vec();
    aad.extend_from_slice(&codec::header(cipher, &codec::kind_bytes(kind)?));
    Ok(aad)
}

/// The metadata subkey: `derive_subkey(data key of epoch 0, salt)`.
fn meta_subkey(bundle: &KeyBundle, salt: &[u8; 32]) -> Result<crate::Key32, CryptoError> {
    let data_key = bundle
        .data_key(0)
        .ok_or_else(|| CryptoError::malformed("key bundle", "no data key for epoch 0"))?;
    Ok(derive_subkey(data_key, salt))
}
