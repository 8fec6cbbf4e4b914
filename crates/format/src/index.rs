//! Index files and pack headers: where each blob lives.
//!
//! A pack header lists the blobs of one pack with their offsets; an index file lists many packs'
//! headers so a client can find any blob without opening packs. Both are rebuilt-able from each
//! other: the index is a cache of the pack headers, which are the source of truth.

use crate::{decode_versioned, encode_versioned, BlobId, FormatError, IndexId, PackId};
use serde::{Deserialize, Serialize};

const INDEX_VERSION: u8 = 1;
const PACK_HEADER_VERSION: u8 = 1;

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlobType {
    Data,
    Tree,
}

impl BlobType {
    /// The byte bound into the blob's associated data.
    pub fn code(self) -> u8 {
        match self {
            BlobType::Data => 0,
            BlobType::Tree => 1,
        }
    }
}

/// How a blob's plaintext was compressed before sealing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Compression {
    None,
    Zstd,
}

impl Compression {
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
        }
    }
}

/// One blob inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackBlob {
    pub id: BlobId,
    pub kind: BlobType,
    /// Byte offset of the sealed blob in the pack file.
    pub offset: u32,
    /// Length of the sealed blob (ciphertext and tag).
    pub length: u32,
    /// Length of the plaintext after decompression.
    pub raw_length: u32,
    pub compression: Compression,
}

/// The plaintext of a pack header (sealed at the end of every pack).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PackHeader {
    pub blobs: Vec<PackBlob>,
    /// Random padding so header sizes do not reveal blob counts exactly.
    #[serde(with = "serde_bytes")]
    pub padding: Vec<u8>,
}

impl PackHeader {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(PACK_HEADER_VERSION, self)
    }
    /// Decode and check that blobs are in file order, do not overlap and lie before `data_end`.
    pub fn decode(bytes: &[u8], data_end: u64) -> Result<PackHeader, FormatError> {
        let h: PackHeader = decode_versioned("pack header", PACK_HEADER_VERSION, bytes)?;
        check_blob_layout(&h.blobs, data_end)?;
        Ok(h)
    }
}

fn check_blob_layout(blobs: &[PackBlob], data_end: u64) -> Result<(), FormatError> {
    let mut prev_end = 0u64;
    for b in blobs {
        let start = u64::from(b.offset);
        let end = start + u64::from(b.length);
        if start < prev_end || end > data_end || b.length < 16 {
            return Err(FormatError::Malformed {
                what: "pack header",
                detail: format!(
                    "blob {} at {}+{} overlaps or lies outside the pack",
                    b.id, b.offset, b.length
                ),
            });
        }
        prev_end = end;
    }
    Ok(())
}

/// One pack as recorded in an index file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: PackId,
    /// Total size of the pack file in bytes.
    pub size: u64,
    /// Data-key epoch and cipher the pack was sealed with (copied from its trailer, so readers
    /// need not fetch the trailer first).
    pub epoch: u32,
    pub cipher_code: u8,
    pub blobs: Vec<PackBlob>,
}

/// The plaintext of an index file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
    /// Index files this one replaces (written by index compaction; the superseded files may be
    /// deleted once this one is durable).
    pub supersedes: Vec<IndexId>,
}

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(INDEX_VERSION, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<IndexFile, FormatError> {
        let idx: IndexFile = decode_versioned("index", INDEX_VERSION, bytes)?;
        for p in &idx.packs {
            check_blob_layout(&p.blobs, p.size)?;
        }
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_blobs() -> impl Strategy<Value = Vec<PackBlob>> {
        proptest::collection::vec(
            (
                any::<[u8; 32]>(),
                any::<bool>(),
                16u32..100_000,
                any::<u32>(),
                any::<bool>(),
            ),
            0..20,
        )
        .prop_map(|v| {
            let mut off = 8u32;
            v.into_iter()
                .map(|(id, tree, length, raw_length, z)| {
                    let b = PackBlob {
                        id: BlobId(id),
                        kind: if tree { BlobType::Tree } else { BlobType::Data },
                        offset: off,
                        length,
                        raw_length,
                        compression: if z {
                            Compression::Zstd
                        } else {
                            Compression::None
                        },
                    };
                    off += length;
                    b
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn header_round_trip(blobs in arb_blobs(), padding in proptest::collection::vec(any::<u8>(), 0..64)) {
            let h = PackHeader { blobs, padding };
            prop_assert_eq!(PackHeader::decode(&h.encode(), u64::MAX), Ok(h));
        }

        #[test]
        fn index_round_trip(packs in proptest::collection::vec((any::<[u8; 32]>(), arb_blobs()), 0..5),
                            sup in proptest::collection::vec(any::<[u8; 32]>(), 0..3)) {
            let idx = IndexFile {
                packs: packs.into_iter().map(|(id, blobs)| IndexPack { id: PackId(id), size: 1 << 40, epoch: 0, cipher_code: 1, blobs }).collect(),
                supersedes: sup.into_iter().map(IndexId).collect(),
            };
            prop_assert_eq!(IndexFile::decode(&idx.encode()), Ok(idx));
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = IndexFile::decode(&bytes);
            let _ = PackHeader::decode(&bytes, 1 << 30);
        }
    }

    #[test]
    fn rejects_blob_outside_pack() {
        let h = PackHeader {
            blobs: vec![PackBlob {
                id: BlobId([0; 32]),
                kind: BlobType::Data,
                offset: 8,
                length: 100,
                raw_length: 84,
                compression: Compression::None,
            }],
            padding: vec![],
        };
        assert!(PackHeader::decode(&h.encode(), 50).is_err());
    }
}
