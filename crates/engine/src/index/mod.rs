//! The blob index: blob id → pack and position.
//!
//! The repository's index files are the truth. With a cache directory (the CLI always gives one:
//! `SNAPGUARD_CACHE_DIR`, else the XDG cache), they are turned into sorted on-disk *segments*
//! ([`segment`]) that are reused from run to run and extended by the index files other runs
//! added; only each segment's fan-out table and Bloom filter stay in memory, about 1.3 bytes per
//! blob instead of the ~100 a hash map entry costs. Without a cache directory everything is
//! kept in a hash map. Blobs added during this session are always in memory (their number is
//! bounded by what this session writes, not by the repository). See
//! docs/design/index-cache.md.

mod bloom;
pub(crate) mod cache;
mod segment;

use crate::Result;
use segment::Segment;
use snapguard_format::{BlobId, IndexPack, PackBlob, PackId};
use std::collections::HashMap;

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub epoch: u32,
    pub cipher_code: u8,
    pub blob: PackBlob,
}

/// A pack as the index describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInfo {
    pub id: PackId,
    /// Size of the pack file in bytes.
    pub size: u64,
    pub epoch: u32,
    pub cipher_code: u8,
}

/// All known blobs: on-disk segments first, then the in-memory part. A blob listed more than
/// once keeps the first location found in that order.
#[derive(Default, Debug)]
pub struct Index {
    segments: Vec<Segment>,
    blobs: HashMap<BlobId, BlobLocation>,
    packs: HashMap<PackId, PackInfo>,
}

impl Index {
    pub(crate) fn from_segments(segments: Vec<Segment>) -> Index {
        Index {
            segments,
            ..Index::default()
        }
    }

    /// Record every blob of a pack in memory. A blob already known keeps its first location.
    pub fn add_pack(&mut self, pack: &IndexPack) {
        self.packs.insert(
            pack.id,
            PackInfo {
                id: pack.id,
                size: pack.size,
                epoch: pack.epoch,
                cipher_code: pack.cipher_code,
            },
        );
        for b in &pack.blobs {
            self.blobs.entry(b.id).or_insert(BlobLocation {
                pack: pack.id,
                epoch: pack.epoch,
                cipher_code: pack.cipher_code,
                blob: *b,
            });
        }
    }

    /// Where `id` is stored, if anywhere. Fails only if an on-disk segment cannot be read.
    pub fn get(&self, id: &BlobId) -> Result<Option<BlobLocation>> {
        for s in &self.segments {
            if let Some(loc) = s.get(id)? {
                return Ok(Some(loc));
            }
        }
        Ok(self.blobs.get(id).copied())
    }

    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        if self.blobs.contains_key(id) {
            return Ok(true);
        }
        Ok(self.get(id)?.is_some())
    }

    /// A pack as recorded in the index.
    pub fn pack(&self, id: &PackId) -> Option<PackInfo> {
        self.segments
            .iter()
            .find_map(|s| s.pack(id).copied())
            .or_else(|| self.packs.get(id).copied())
    }

    /// Size of a pack as recorded in the index.
    pub fn pack_size(&self, id: &PackId) -> Option<u64> {
        self.pack(id).map(|p| p.size)
    }

    /// Every indexed pack, once, in no particular order.
    pub fn packs(&self) -> Vec<PackInfo> {
        let mut all: HashMap<PackId, PackInfo> = HashMap::new();
        for p in self
            .segments
            .iter()
            .flat_map(|s| s.packs().iter())
            .chain(self.packs.values())
        {
            all.entry(p.id).or_insert(*p);
        }
        all.into_values().collect()
    }

    /// Blob entries (a blob indexed twice, e.g. in two segments, counts twice).
    pub fn blob_count(&self) -> u64 {
        self.segments.iter().map(|s| s.blob_count()).sum::<u64>() + self.blobs.len() as u64
    }

    /// On-disk segments in use (0 without a cache directory).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}
