//! Binary layout of a key slot file: [`KeySlot::encode`] and the strict,
//! panic-free [`KeySlot::decode`].
//!
//! Decoding checks structure only (magic, version, cipher code, lengths,
//! canonical [`SlotKind`] encoding, no trailing bytes); it does not validate
//! KDF parameters, which [`KeySlot::unlock`] does before running Argon2.

use super::{KeySlot, SlotKind};
use crate::{Cipher, CryptoError};

/// The 8 magic bytes every slot file starts with.
pub const SLOT_MAGIC: [u8; 8] = *b"SGKEYSLT";
/// Slot file format version written by this crate (`u16` LE after the magic).
pub const SLOT_FORMAT_VERSION: u16 = 1;
/// Largest accepted length of any variable-length field of a slot file (1 MiB).
pub const SLOT_MAX_FIELD_LEN: usize = 1 << 20;

const WHAT: &str = "key slot";

/// postcard encoding of `kind`.
pub(super) fn kind_bytes(kind: &SlotKind) -> Result<Vec<u8>, CryptoError> {
    postcard::to_stdvec(kind).map_err(|e| CryptoError::malformed("key slot kind", e.to_string()))
}

/// The slot header: everything in the file before the wrapped-length field.
/// It is also the tail of the wrap's associated data.
pub(super) fn header(cipher: Cipher, kind_bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 2 + 1 + 4 + kind_bytes.len());
    out.extend_from_slice(&SLOT_MAGIC);
    out.extend_from_slice(&SLOT_FORMAT_VERSION.to_le_bytes());
    out.push(cipher.code());
    put_field(&mut out, kind_bytes);
    out
}

/// Append `u32 LE length || bytes`. Lengths beyond `u32::MAX` are written as
/// `u32::MAX`, which [`KeySlot::decode`] rejects (limit 1 MiB).
fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

impl KeySlot {
    /// Encode the slot file.
    ///
    /// Layout (all integers little-endian):
    ///
    /// | field | size |
    /// |---|---|
    /// | magic `b"SGKEYSLT"` | 8 |
    /// | format version `u16` = 1 | 2 |
    /// | cipher code `u8` (1 = AES-256-GCM, 2 = ChaCha20-Poly1305) | 1 |
    /// | kind length `u32` | 4 |
    /// | `postcard(SlotKind)` | kind length |
    /// | wrapped length `u32` | 4 |
    /// | wrapped bundle (ciphertext ‖ 16-byte tag) | wrapped length |
    /// | meta salt | 32 |
    /// | sealed meta length `u32` | 4 |
    /// | sealed meta (ciphertext ‖ 16-byte tag) | sealed meta length |
    ///
    /// `postcard(SlotKind)` is the variant index as a varint (0 =
    /// passphrase, 1 = key file) followed, for a passphrase, by the varints
    /// `memory_kib`, `iterations`, `parallelism` and then the 32 salt bytes;
    /// for a key file by the 32 salt bytes.
    ///
    /// The wrap's AAD is `b"snapguard key slot v1"` followed by the file's
    /// bytes up to (not including) the wrapped-length field, so the cipher,
    /// the kind, its KDF parameters and salt cannot be changed undetected.
    pub fn encode(&self) -> Vec<u8> {
        // SlotKind holds only integers and arrays; postcard cannot fail on
        // it. Should it ever, the empty kind makes decode and unlock fail.
        let kind = kind_bytes(&self.kind).unwrap_or_default();
        let mut out = header(self.cipher, &kind);
        out.reserve(4 + self.wrapped.len() + 32 + 4 + self.sealed_meta.len());
        put_field(&mut out, &self.wrapped);
        out.extend_from_slice(&self.meta_salt);
        put_field(&mut out, &self.sealed_meta);
        out
    }

    /// Decode a slot file. Never panics; every structural problem is
    /// [`CryptoError::Malformed`], an unknown format version, cipher code or
    /// slot kind is [`CryptoError::Unsupported`].
    pub fn decode(bytes: &[u8]) -> Result<KeySlot, CryptoError> {
        let mut r = Reader { rest: bytes };
        if r.take(SLOT_MAGIC.len(), "magic")? != SLOT_MAGIC {
            return Err(CryptoError::malformed(
                WHAT,
                "not a key slot file (bad magic)",
            ));
        }
        let version = u16::from_le_bytes(r.array("format version")?);
        if version != SLOT_FORMAT_VERSION {
            return Err(CryptoError::Unsupported {
                what: "key slot format version",
                value: u32::from(version),
            });
        }
        let [code] = r.array("cipher code")?;
        let cipher = Cipher::from_code(code)?;
        let kind_raw = r.field("kind")?;
        let kind = decode_kind(kind_raw)?;
        let wrapped = r.field("wrapped key bundle")?.to_vec();
        let meta_salt = r.array("meta salt")?;
        let sealed_meta = r.field("sealed metadata")?.to_vec();
        if !r.rest.is_empty() {
            return Err(CryptoError::malformed(
                WHAT,
                format!("{} trailing bytes", r.rest.len()),
            ));
        }
        Ok(KeySlot {
            kind,
            cipher,
            wrapped,
            sealed_meta,
            meta_salt,
        })
    }
}

/// Decode the kind, insisting on the canonical encoding so that the wrap's
/// AAD (recomputed from the decoded kind) equals the bytes in the file.
fn decode_kind(raw: &[u8]) -> Result<SlotKind, CryptoError> {
    match postcard::take_from_bytes::<SlotKind>(raw) {
        Ok((kind, [])) => {
            if kind_bytes(&kind)? != raw {
                return Err(CryptoError::malformed(WHAT, "non-canonical kind encoding"));
            }
            Ok(kind)
        }
        Ok((_, rest)) => Err(CryptoError::malformed(
            WHAT,
            format!("{} trailing bytes after the kind", rest.len()),
        )),
        Err(e) => match postcard::take_from_bytes::<u32>(raw) {
            Ok((tag, _)) if tag >= SlotKind::KNOWN_VARIANTS => Err(CryptoError::Unsupported {
                what: "key slot kind",
                value: tag,
            }),
            _ => Err(CryptoError::malformed(WHAT, format!("bad kind: {e}"))),
        },
    }
}

/// Bounds-checked cursor over the input.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CryptoError> {
        if self.rest.len() < n {
            return Err(CryptoError::malformed(
                WHAT,
                format!(
                    "truncated: {what} needs {n} bytes, {} left",
                    self.rest.len()
                ),
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CryptoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// A `u32 LE length || bytes` field of at most [`SLOT_MAX_FIELD_LEN`].
    fn field(&mut self, what: &str) -> Result<&'a [u8], CryptoError> {
        let len = u32::from_le_bytes(self.array(what)?);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > SLOT_MAX_FIELD_LEN {
            return Err(CryptoError::malformed(
                WHAT,
                format!("{what} length {len} exceeds the {SLOT_MAX_FIELD_LEN}-byte limit"),
            ));
        }
        self.take(len, what)
    }
}
