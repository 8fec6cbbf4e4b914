//! The in-memory blob index: blob id → pack and position.
//!
//! Loaded from every index file at open; backups add entries for the packs they write and
//! persist them as a new index file before the snapshot that needs them. (A bounded, disk-backed
//! index is future work; this map costs about 80 bytes per blob.)

use snapguard_format::{BlobId, IndexPack, PackBlob, PackId};
use std::collections::HashMap;

/// Where a blob is stored.
#[derive(Clone, Copy, Debug)]
pub struct BlobLocation {
    pub pack: PackId,
    pub epoch: u32,
    pub cipher_code: u8,
    pub blob: PackBlob,
}

/// All known blobs.
#[derive(Default, Debug)]
pub struct Index {
    blobs: HashMap<BlobId, BlobLocation>,
    packs: HashMap<PackId, u64>,
}

impl Index {
    /// Record every blob of a pack. A blob already known keeps its first location.
    pub fn add_pack(&mut self, pack: &IndexPack) {
        self.packs.insert(pack.id, pack.size);
        for b in &pack.blobs {
            self.blobs.entry(b.id).or_insert(BlobLocation {
                pack: pack.id,
                epoch: pack.epoch,
                cipher_code: pack.cipher_code,
                blob: *b,
            });
        }
    }

    pub fn get(&self, id: &BlobId) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// Size of a pack as recorded in the index.
    pub fn pack_size(&self, id: &PackId) -> Option<u64> {
        self.packs.get(id).copied()
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub fn pack_count(&self) -> usize {
        self.packs.len()
    }

    /// Total bytes of all packs.
    pub fn packed_bytes(&self) -> u64 {
        self.packs.values().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&BlobId, &BlobLocation)> {
        self.blobs.iter()
    }
}
