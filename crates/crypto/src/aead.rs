//! Authenticated encryption: the two supported AEAD ciphers ([`Cipher`]),
//! a key bound to one of them ([`SealKey`]) and the counter nonce scheme.
//!
//! Sealed output is always `ciphertext || tag` with a [`TAG_LEN`]-byte tag;
//! the ciphertext has exactly the plaintext's length. Nonces are explicit
//! [`NONCE_LEN`]-byte values chosen by the caller. SnapGuard never reuses a
//! key across objects: each pack or sealed file gets its own subkey
//! ([`crate::derive_subkey`]) from a fresh random salt, and the n-th object
//! under that subkey uses [`counter_nonce`]`(n)`.

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;

use crate::{CryptoError, Key32};

/// Length in bytes of the authentication tag appended to every sealed value.
pub const TAG_LEN: usize = 16;
/// Length in bytes of an AEAD nonce (96 bits).
pub const NONCE_LEN: usize = 12;

/// An AEAD cipher SnapGuard can seal with.
///
/// Binary repository formats store [`Cipher::code`] (a `u8`), configuration
/// uses [`Cipher::name`]. The serde derive (variant name / variant index) is
/// for in-memory or self-describing use only and is not an on-disk code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Cipher {
    /// AES-256 in Galois/Counter Mode (on-disk code 1). Fast with AES-NI.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439, on-disk code 2). Fast without AES hardware.
    ChaCha20Poly1305,
}

impl Cipher {
    /// All ciphers, in code order.
    pub const ALL: [Cipher; 2] = [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305];

    /// The on-disk code: `Aes256Gcm` = 1, `ChaCha20Poly1305` = 2.
    pub fn code(self) -> u8 {
        match self {
            Cipher::Aes256Gcm => 1,
            Cipher::ChaCha20Poly1305 => 2,
        }
    }

    /// Inverse of [`Cipher::code`]; unknown codes are
    /// [`CryptoError::Unsupported`].
    pub fn from_code(code: u8) -> Result<Cipher, CryptoError> {
        match code {
            1 => Ok(Cipher::Aes256Gcm),
            2 => Ok(Cipher::ChaCha20Poly1305),
            other => Err(CryptoError::Unsupported {
                what: "cipher",
                value: u32::from(other),
            }),
        }
    }

    /// The user-facing name: `"aes-256-gcm"` or `"chacha20-poly1305"`.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// Inverse of [`Cipher::name`] (exact, lower-case match).
    pub fn from_name(name: &str) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Nonce for the `n`-th object sealed under one subkey: `n` as `u64`
/// little-endian in bytes `0..8`, zeros in bytes `8..12`.
pub fn counter_nonce(n: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&n.to_le_bytes());
    nonce
}

/// The initialised cipher state. Both variants wipe their key material on
/// drop (ChaCha20-Poly1305 natively, AES through the `aes/zeroize` feature).
#[derive(Clone)]
enum Engine {
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// An AEAD key bound to a [`Cipher`].
///
/// The key schedule is computed once in [`SealKey::new`], so sealing many
/// objects under one key costs no per-call setup.
#[derive(Clone)]
pub struct SealKey {
    cipher: Cipher,
    engine: Engine,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl SealKey {
    /// Bind `key` to `cipher`.
    pub fn new(cipher: Cipher, key: Key32) -> Self {
        let k = GenericArray::from_slice(key.as_bytes());
        let engine = match cipher {
            Cipher::Aes256Gcm => Engine::Aes(Box::new(Aes256Gcm::new(k))),
            Cipher::ChaCha20Poly1305 => Engine::ChaCha(Box::new(ChaCha20Poly1305::new(k))),
        };
        SealKey { cipher, engine }
    }

    /// The cipher this key seals with.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Seal `plaintext` with `aad`; returns `ciphertext || tag`
    /// (`plaintext.len() + TAG_LEN` bytes).
    ///
    /// # Panics
    ///
    /// If `plaintext` or `aad` exceeds the cipher's limit (64 GiB for
    /// AES-GCM, 256 GiB for ChaCha20-Poly1305); SnapGuard objects are at most
    /// a few MiB.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        self.seal_into(nonce, aad, plaintext, &mut out);
        out
    }

    /// Like [`SealKey::seal`] but appends `ciphertext || tag` to `out`,
    /// reserving the space once, so a hot loop can reuse one buffer.
    ///
    /// # Panics
    ///
    /// As [`SealKey::seal`].
    pub fn seal_into(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) {
        out.reserve(plaintext.len() + TAG_LEN);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let buf = &mut out[start..];
        let n = GenericArray::from_slice(nonce);
        let tag = match &self.engine {
            Engine::Aes(c) => c.encrypt_in_place_detached(n, aad, buf),
            Engine::ChaCha(c) => c.encrypt_in_place_detached(n, aad, buf),
        };
        match tag {
            Ok(tag) => out.extend_from_slice(&tag),
            Err(_) => {
                // Only reachable past the ciphers' length limits (tens of GiB).
                out.truncate(start);
                panic!("{} cannot seal this much data in one object", self.cipher);
            }
        }
    }

    /// Verify and decrypt `ciphertext || tag`.
    ///
    /// Returns [`CryptoError::Malformed`] if `sealed` is shorter than the
    /// tag and [`CryptoError::Authentication`] on any other failure (wrong
    /// key, nonce or aad, or modified bytes).
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let Some(ct_len) = sealed.len().checked_sub(TAG_LEN) else {
            return Err(CryptoError::malformed(
                "sealed data",
                format!(
                    "{} bytes is shorter than the {TAG_LEN}-byte tag",
                    sealed.len()
                ),
            ));
        };
        let (ct, tag) = sealed.split_at(ct_len);
        let mut buf = ct.to_vec();
        let n = GenericArray::from_slice(nonce);
        let tag = GenericArray::from_slice(tag);
        let result = match &self.engine {
            Engine::Aes(c) => c.decrypt_in_place_detached(n, aad, &mut buf, tag),
            Engine::ChaCha(c) => c.decrypt_in_place_detached(n, aad, &mut buf, tag),
        };
        match result {
            Ok(()) => Ok(buf),
            Err(_) => Err(CryptoError::Authentication),
        }
    }
}
