//! Sealing and opening repository objects with the unlocked key bundle.
//!
//! This is the only module that turns plaintext into repository bytes and back. Every sealed
//! object gets its own subkey derived from the current data key and a fresh random 256-bit salt
//! (a pack's id is its salt), so nonces are small counters that can never repeat under one key,
//! whatever the number of concurrent writers. Associated data binds the object kind and id, so an
//! object swapped or renamed by an attacker fails to open.

use crate::{Error, Result};
use snapguard_crypto::{counter_nonce, derive_subkey, random_bytes, Cipher, KeyBundle, SealKey};
use snapguard_format::{
    BlobId, BlobType, Compression, EnvelopeHeader, ObjectKind, PackBlob, PackId,
    ENVELOPE_HEADER_LEN,
};

/// Nonce of a pack's sealed header (blob nonces are their offsets, always far below this).
pub(crate) const PACK_HEADER_NONCE: u64 = u64::MAX;
/// Largest plaintext a blob may claim, so hostile lengths cannot make us allocate without bound.
pub(crate) const MAX_BLOB_PLAINTEXT: u32 = 256 << 20;

/// The unlocked keys of a repository plus its cipher.
#[derive(Clone)]
pub struct Crypt {
    pub(crate) bundle: KeyBundle,
    pub(crate) cipher: Cipher,
}

impl std::fmt::Debug for Crypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crypt({})", self.cipher.name())
    }
}

thread_local! {
    // zstd contexts are expensive to create (about 5% of a backup's CPU when made per chunk);
    // each thread keeps one compressor (for its current level) and one decompressor.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn zstd_compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match c.as_mut() {
            Some((_, comp)) => comp.compress(data),
            None => zstd::bulk::compress(data, level),
        }
    })
}

fn zstd_decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        match d.as_mut() {
            Some(dec) => dec.decompress(data, capacity),
            None => zstd::bulk::decompress(data, capacity),
        }
    })
}

/// zstd-compress `data` if that saves at least 1/32 of it; otherwise store it as is.
pub(crate) fn compress(data: &[u8], level: i32) -> (Compression, Vec<u8>) {
    if data.len() >= 64 {
        if let Ok(z) = zstd_compress(data, level) {
            if z.len() < data.len() - data.len() / 32 {
                return (Compression::Zstd, z);
            }
        }
    }
    (Compression::None, data.to_vec())
}

pub(crate) fn decompress(
    object: &dyn Fn() -> String,
    compression: Compression,
    data: Vec<u8>,
    raw_len: usize,
) -> Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(data),
        Compression::Zstd => {
            let out = zstd_decompress(&data, raw_len).map_err(|e| Error::corrupt(object(), e))?;
            if out.len() != raw_len {
                return Err(Error::corrupt(
                    object(),
                    "decompressed length differs from the recorded length",
                ));
            }
            Ok(out)
        }
    }
}

/// Associated data of a sealed blob.
pub(crate) fn blob_aad(
    kind: BlobType,
    compression: Compression,
    id: &BlobId,
    raw_length: u32,
) -> [u8; 42] {
    let mut aad = [0u8; 42];
    aad[..4].copy_from_slice(b"SGB1");
    aad[4] = kind.code();
    aad[5] = compression.code();
    aad[6..38].copy_from_slice(&id.0);
    aad[38..42].copy_from_slice(&raw_length.to_le_bytes());
    aad
}

/// Associated data of a pack header.
pub(crate) fn pack_header_aad(pack: &PackId, epoch: u32) -> [u8; 40] {
    let mut aad = [0u8; 40];
    aad[..4].copy_from_slice(b"SGH1");
    aad[4..36].copy_from_slice(&pack.0);
    aad[36..40].copy_from_slice(&epoch.to_le_bytes());
    aad
}

impl Crypt {
    pub fn new(bundle: KeyBundle, cipher: Cipher) -> Crypt {
        Crypt { bundle, cipher }
    }

    pub fn bundle(&self) -> &KeyBundle {
        &self.bundle
    }

    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Keyed id of some plaintext.
    pub fn id_of(&self, data: &[u8]) -> [u8; 32] {
        self.bundle.id_of(data)
    }

    /// The sealing key of pack `pack` at data-key `epoch`.
    pub(crate) fn pack_key(&self, pack: &PackId, epoch: u32, cipher: Cipher) -> Result<SealKey> {
        let data_key = self.bundle.data_key(epoch).ok_or_else(|| {
            Error::corrupt(
                format!("pack {pack}"),
                format!("unknown data key epoch {epoch}"),
            )
        })?;
        Ok(SealKey::new(cipher, derive_subkey(data_key, &pack.0)))
    }

    /// Seal a whole-file object (snapshot, index). Returns its id and the file bytes.
    pub(crate) fn seal_object(
        &self,
        kind: ObjectKind,
        plaintext: &[u8],
    ) -> Result<([u8; 32], Vec<u8>)> {
        self.seal_object_with_salt(kind, plaintext, random_bytes(&mut rand_core::OsRng))
    }

    /// [`Crypt::seal_object`] with a given salt (for test vectors; production salts are random).
    pub(crate) fn seal_object_with_salt(
        &self,
        kind: ObjectKind,
        plaintext: &[u8],
        salt: [u8; 32],
    ) -> Result<([u8; 32], Vec<u8>)> {
        let id = self.id_of(plaintext);
        let epoch = self.bundle.current_epoch();
        let header = EnvelopeHeader {
            kind,
            cipher_code: self.cipher.code(),
            epoch,
            salt,
        }
        .encode();
        let data_key = self
            .bundle
            .data_key(epoch)
            .ok_or_else(|| Error::corrupt("key bundle", "current data key missing"))?;
        let key = SealKey::new(self.cipher, derive_subkey(data_key, &salt));
        let (compression, body) = compress(plaintext, 3);
        let mut payload = Vec::with_capacity(body.len() + 5);
        payload.push(compression.code());
        payload.extend_from_slice(&(plaintext.len() as u64).to_le_bytes());
        payload.extend_from_slice(&body);
        let mut aad = header.to_vec();
        aad.extend_from_slice(&id);
        let mut out = header.to_vec();
        key.seal_into(&counter_nonce(0), &aad, &payload, &mut out);
        Ok((id, out))
    }

    /// Open a whole-file object and check that its plaintext hashes to `id`.
    pub(crate) fn open_object(
        &self,
        kind: ObjectKind,
        id: &[u8; 32],
        bytes: &[u8],
        object: &str,
    ) -> Result<Vec<u8>> {
        let (header, head, sealed) =
            EnvelopeHeader::parse(bytes).map_err(|e| Error::corrupt(object, e))?;
        if header.kind != kind {
            return Err(Error::corrupt(
                object,
                format!("holds a {:?} object, expected {:?}", header.kind, kind),
            ));
        }
        let cipher =
            Cipher::from_code(header.cipher_code).map_err(|e| Error::corrupt(object, e))?;
        let data_key = self.bundle.data_key(header.epoch).ok_or_else(|| {
            Error::corrupt(object, format!("unknown data key epoch {}", header.epoch))
        })?;
        let key = SealKey::new(cipher, derive_subkey(data_key, &header.salt));
        debug_assert_eq!(head.len(), ENVELOPE_HEADER_LEN);
        let mut aad = head.to_vec();
        aad.extend_from_slice(id);
        let payload = key
            .open(&counter_nonce(0), &aad, sealed)
            .map_err(|e| Error::corrupt(object, e))?;
        if payload.len() < 9 {
            return Err(Error::corrupt(object, "payload too short"));
        }
        let raw_len = u64::from_le_bytes(payload[1..9].try_into().unwrap_or([0; 8]));
        if raw_len > u64::from(MAX_BLOB_PLAINTEXT) * 4 {
            return Err(Error::corrupt(object, "implausible length"));
        }
        let compression = match payload[0] {
            0 => Compression::None,
            1 => Compression::Zstd,
            c => return Err(Error::corrupt(object, format!("unknown compression {c}"))),
        };
        let plain = decompress(
            &|| object.to_string(),
            compression,
            payload[9..].to_vec(),
            raw_len as usize,
        )?;
        if &self.id_of(&plain) != id {
            return Err(Error::corrupt(object, "content does not match its id"));
        }
        Ok(plain)
    }

    /// Open one sealed blob read from pack `pack` and verify its id.
    pub(crate) fn open_blob(
        &self,
        pack: &PackId,
        key: &SealKey,
        blob: &PackBlob,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let object = || format!("blob {} in pack {}", blob.id, pack);
        if blob.raw_length > MAX_BLOB_PLAINTEXT {
            return Err(Error::corrupt(object(), "implausible length"));
        }
        let aad = blob_aad(blob.kind, blob.compression, &blob.id, blob.raw_length);
        let data = key
            .open(&counter_nonce(u64::from(blob.offset)), &aad, sealed)
            .map_err(|e| Error::corrupt(object(), e))?;
        let plain = decompress(&object, blob.compression, data, blob.raw_length as usize)?;
        if plain.len() != blob.raw_length as usize || self.id_of(&plain) != blob.id.0 {
            return Err(Error::corrupt(object(), "content does not match its id"));
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod vectors;
