//! Pack files: many sealed blobs followed by a sealed header.
//!
//! A [`PackWriter`] accumulates blobs in memory until the pack reaches its target size; the
//! caller then stores the finished bytes under the pack id (a random 256-bit value that is also
//! the salt of the pack's subkey). Reading goes blob by blob through ranges, or the header for
//! verification and index rebuilding.

use crate::crypt::{blob_aad, compress, pack_header_aad, Crypt, PACK_HEADER_NONCE};
use crate::{Error, Result};
use snapguard_crypto::{counter_nonce, random_bytes, SealKey};
use snapguard_format::{
    BlobId, BlobType, PackBlob, PackHeader, PackId, PackTrailer, PACK_MAGIC, PACK_TRAILER_LEN,
};

/// Initial capacity of a pack buffer: the default 16 MiB target plus a maximal 8 MiB chunk and
/// its header.
const PACK_BUFFER_CAPACITY: usize = 25 << 20;

/// A pack under construction.
pub(crate) struct PackWriter {
    id: PackId,
    key: SealKey,
    cipher_code: u8,
    epoch: u32,
    buf: Vec<u8>,
    blobs: Vec<PackBlob>,
    /// Plaintext bytes added (before compression).
    pub(crate) raw_bytes: u64,
}

/// A finished pack ready to be stored.
pub(crate) struct FinishedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub blobs: Vec<PackBlob>,
    pub epoch: u32,
    pub cipher_code: u8,
}

impl PackWriter {
    pub(crate) fn new(crypt: &Crypt) -> Result<PackWriter> {
        Self::with_id(crypt, PackId(random_bytes(&mut rand_core::OsRng)))
    }

    /// A new pack built in `buf`, the buffer of a pack already stored (recycling it keeps the
    /// allocator from growing its heap by a pack's size per pack).
    pub(crate) fn new_in(crypt: &Crypt, mut buf: Vec<u8>) -> Result<PackWriter> {
        let mut w = Self::new(crypt)?;
        buf.clear();
        buf.reserve(PACK_BUFFER_CAPACITY);
        buf.extend_from_slice(PACK_MAGIC);
        w.buf = buf;
        Ok(w)
    }

    /// A pack with a given id (test vectors only; production ids are random).
    pub(crate) fn with_id(crypt: &Crypt, id: PackId) -> Result<PackWriter> {
        let epoch = crypt.bundle.current_epoch();
        let key = crypt.pack_key(&id, epoch, crypt.cipher)?;
        // Room for a full pack plus one more maximal chunk, so the buffer is never reallocated
        // (and copied) while it fills; untouched capacity costs no memory until written.
        let mut buf = Vec::with_capacity(PACK_BUFFER_CAPACITY);
        buf.extend_from_slice(PACK_MAGIC);
        Ok(PackWriter {
            id,
            key,
            cipher_code: crypt.cipher.code(),
            epoch,
            buf,
            blobs: Vec::new(),
            raw_bytes: 0,
        })
    }

    /// Current size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Compress (if worthwhile) and seal one blob; returns its stored length.
    pub(crate) fn add(
        &mut self,
        id: BlobId,
        kind: BlobType,
        plaintext: &[u8],
        level: i32,
    ) -> Result<u32> {
        let (compression, body) = compress(plaintext, level);
        self.add_compressed(id, kind, compression, &body, plaintext.len())
    }

    /// Seal one blob that was already compressed (or deliberately left raw) by the caller.
    pub(crate) fn add_compressed(
        &mut self,
        id: BlobId,
        kind: BlobType,
        compression: snapguard_format::Compression,
        body: &[u8],
        raw_len: usize,
    ) -> Result<u32> {
        let raw_length =
            u32::try_from(raw_len).map_err(|_| Error::InvalidArgument("blob too large".into()))?;
        let offset = u32::try_from(self.buf.len())
            .map_err(|_| Error::InvalidArgument("pack too large".into()))?;
        let aad = blob_aad(kind, compression, &id, raw_length);
        self.key
            .seal_into(&counter_nonce(u64::from(offset)), &aad, body, &mut self.buf);
        let length = self.buf.len() as u32 - offset;
        self.blobs.push(PackBlob {
            id,
            kind,
            offset,
            length,
            raw_length,
            compression,
        });
        self.raw_bytes += u64::from(raw_length);
        Ok(length)
    }

    /// Seal the header and trailer.
    pub(crate) fn finish(self) -> FinishedPack {
        // Pad the header by 0-255 random bytes so its length does not give away the blob count.
        let pad_len = usize::from(random_bytes::<1>(&mut rand_core::OsRng)[0]);
        self.finish_with_padding(pad_len)
    }

    pub(crate) fn finish_with_padding(mut self, pad_len: usize) -> FinishedPack {
        let header = PackHeader {
            blobs: self.blobs.clone(),
            padding: vec![0u8; pad_len],
        };
        let aad = pack_header_aad(&self.id, self.epoch);
        let start = self.buf.len();
        self.key.seal_into(
            &counter_nonce(PACK_HEADER_NONCE),
            &aad,
            &header.encode(),
            &mut self.buf,
        );
        let header_len = (self.buf.len() - start) as u32;
        let trailer = PackTrailer {
            header_len,
            epoch: self.epoch,
            cipher_code: self.cipher_code,
        };
        self.buf.extend_from_slice(&trailer.encode());
        FinishedPack {
            id: self.id,
            bytes: self.buf,
            blobs: self.blobs,
            epoch: self.epoch,
            cipher_code: self.cipher_code,
        }
    }
}

/// Open and verify the header of a whole pack file (the bytes of the complete file).
pub(crate) fn read_header(crypt: &Crypt, id: &PackId, bytes: &[u8]) -> Result<Vec<PackBlob>> {
    let object = || format!("pack {id}");
    if bytes.len() < PACK_MAGIC.len() + PACK_TRAILER_LEN || &bytes[..PACK_MAGIC.len()] != PACK_MAGIC
    {
        return Err(Error::corrupt(
            object(),
            "not a pack file (bad magic or truncated)",
        ));
    }
    let tail = &bytes[bytes.len() - PACK_TRAILER_LEN..];
    let (_, header_start) =
        PackTrailer::parse(tail, bytes.len() as u64).map_err(|e| Error::corrupt(object(), e))?;
    let sealed = &bytes[header_start as usize..bytes.len() - PACK_TRAILER_LEN];
    open_header(crypt, id, sealed, tail, bytes.len() as u64)
}

/// Open a pack header from its sealed bytes and the trailer, without the rest of the pack.
pub(crate) fn open_header(
    crypt: &Crypt,
    id: &PackId,
    sealed: &[u8],
    tail: &[u8],
    pack_len: u64,
) -> Result<Vec<PackBlob>> {
    let object = || format!("pack {id}");
    let (trailer, header_start) =
        PackTrailer::parse(tail, pack_len).map_err(|e| Error::corrupt(object(), e))?;
    let cipher = snapguard_crypto::Cipher::from_code(trailer.cipher_code)
        .map_err(|e| Error::corrupt(object(), e))?;
    let key = crypt.pack_key(id, trailer.epoch, cipher)?;
    let plain = key
        .open(
            &counter_nonce(PACK_HEADER_NONCE),
            &pack_header_aad(id, trailer.epoch),
            sealed,
        )
        .map_err(|e| Error::corrupt(object(), format!("header: {e}")))?;
    let header =
        PackHeader::decode(&plain, header_start).map_err(|e| Error::corrupt(object(), e))?;
    Ok(header.blobs)
}
