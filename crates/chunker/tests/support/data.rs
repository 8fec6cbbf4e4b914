//! Deterministic test and bench inputs: a gear table from splitmix64 (a
//! stand-in for the key-derived table), xorshift64 pseudo-random bytes and
//! highly repetitive text. Included with `#[path]` by the integration tests
//! and the bench, so it is not a test target of its own.

#![allow(dead_code)]

/// Next value of a splitmix64 sequence.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Gear table from the splitmix64 sequence starting at `seed`.
pub fn gear(seed: u64) -> [u64; 256] {
    let mut state = seed;
    std::array::from_fn(|_| splitmix64(&mut state))
}

/// `len` pseudo-random bytes from xorshift64, eight bytes per step.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = splitmix64(&mut seed.clone()) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `len` bytes of one English-like paragraph repeated verbatim.
pub fn repetitive_text(len: usize) -> Vec<u8> {
    const PARAGRAPH: &str = "SnapGuard keeps encrypted, deduplicated snapshots of \
        your files. Each file is split into content-defined chunks; identical \
        chunks are stored once, so a second backup of a mostly unchanged tree \
        uploads only what changed. The quick brown fox jumps over the lazy dog \
        while the backup engine walks the directory tree, line after line.\n";
    PARAGRAPH.bytes().cycle().take(len).collect()
}
