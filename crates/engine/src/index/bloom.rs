//! A blocked Bloom filter over blob ids: "certainly not stored" answers without touching disk.
//!
//! Blob ids are keyed BLAKE3 hashes, uniformly distributed and not choosable by anyone without
//! the repository keys, so the filter takes its hash bits straight from the id: bytes 8..16
//! pick a 512-bit block, bytes 16..24 give six 9-bit positions inside it. With 10 bits per blob
//! about 1 % of absent ids pass the filter (and cost one bucket read); present ids always pass.
//! Bytes 0..4 of the id choose the fan-out bucket, so the two never share bits.

use snapguard_format::BlobId;

const WORDS: usize = 8;
const PROBES: u32 = 6;
const BITS_PER_BLOB: u64 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bloom {
    blocks: Vec<[u64; WORDS]>,
}

fn word(id: &BlobId, at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[at..at + 8]);
    u64::from_le_bytes(b)
}

impl Bloom {
    /// Bytes per block on disk.
    pub const BLOCK_BYTES: u64 = (WORDS * 8) as u64;

    /// An empty filter sized for `n` blobs.
    pub fn with_capacity(n: u64) -> Bloom {
        let blocks = (n * BITS_PER_BLOB).div_ceil(512).max(1);
        Bloom {
            blocks: vec![[0; WORDS]; blocks as usize],
        }
    }

    pub fn blocks(&self) -> u32 {
        self.blocks.len() as u32
    }

    fn positions(&self, id: &BlobId) -> (usize, impl Iterator<Item = u32>) {
        let block = ((u128::from(word(id, 8)) * self.blocks.len() as u128) >> 64) as usize;
        let bits = word(id, 16);
        (
            block,
            (0..PROBES).map(move |i| ((bits >> (9 * i)) & 511) as u32),
        )
    }

    pub fn insert(&mut self, id: &BlobId) {
        let (block, bits) = self.positions(id);
        let b = &mut self.blocks[block];
        for bit in bits {
            b[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        let (block, mut bits) = self.positions(id);
        let b = &self.blocks[block];
        bits.all(|bit| b[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// The on-disk form, in slices of at most 64 KiB (so it is never in memory twice).
    pub fn for_each_slice<E>(
        &self,
        mut write: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for blocks in self.blocks.chunks(1024) {
            let bytes: Vec<u8> = blocks
                .iter()
                .flatten()
                .flat_map(|w| w.to_le_bytes())
                .collect();
            write(&bytes)?;
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.for_each_slice(|b| {
            out.extend_from_slice(b);
            Ok::<(), ()>(())
        });
        out
    }

    /// A filter with no blocks yet, room for `capacity` (filled by
    /// [`Bloom::extend_from_bytes`]).
    pub fn empty(capacity: usize) -> Bloom {
        Bloom {
            blocks: Vec::with_capacity(capacity),
        }
    }

    /// Append blocks as written by [`Bloom::to_bytes`] (whole blocks only).
    pub fn extend_from_bytes(&mut self, bytes: &[u8]) {
        self.blocks
            .extend(bytes.chunks_exact(Self::BLOCK_BYTES as usize).map(|c| {
                let mut block = [0u64; WORDS];
                for (w, b) in block.iter_mut().zip(c.chunks_exact(8)) {
                    let mut x = [0u8; 8];
                    x.copy_from_slice(b);
                    *w = u64::from_le_bytes(x);
                }
                block
            }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(seed: u64) -> BlobId {
        BlobId(*blake3::hash(&seed.to_le_bytes()).as_bytes())
    }

    #[test]
    fn false_positive_rate_is_about_one_percent() {
        let mut f = Bloom::with_capacity(100_000);
        for i in 0..100_000 {
            f.insert(&id(i));
        }
        let fp = (100_000..200_000).filter(|&i| f.contains(&id(i))).count();
        assert!(fp < 2_500, "{fp} false positives in 100000");
    }

    proptest! {
        #[test]
        fn inserted_ids_are_always_found_and_bytes_round_trip(
            seeds in proptest::collection::vec(any::<u64>(), 0..500)
        ) {
            let mut f = Bloom::with_capacity(seeds.len() as u64);
            for s in &seeds {
                f.insert(&id(*s));
            }
            let mut g = Bloom::empty(0);
            g.extend_from_bytes(&f.to_bytes());
            prop_assert_eq!(&f, &g);
            for s in &seeds {
                prop_assert!(g.contains(&id(*s)));
            }
        }
    }
}
