//! Deterministic helpers for the unit tests: a splitmix64-derived gear table,
//! xorshift pseudo-random bytes and small chunking parameters.

use crate::params::ChunkerParams;

/// Gear table from a splitmix64 sequence (stand-in for a key-derived one).
pub(crate) fn gear(seed: u64) -> [u64; 256] {
    let mut state = seed;
    std::array::from_fn(|_| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// `len` pseudo-random bytes from xorshift64 (seed 0 is remapped).
pub(crate) fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

/// min 64, avg 256, max 1024.
pub(crate) fn small_params() -> ChunkerParams {
    ChunkerParams {
        min_size: 64,
        avg_size: 256,
        max_size: 1024,
    }
}
