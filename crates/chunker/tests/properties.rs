//! Property tests of the chunker's contract: lossless splitting, size
//! bounds, identical results for any streaming split, resistance to shifted
//! content, and dependence of boundaries on the (secret) gear table.

use std::collections::HashSet;

use proptest::prelude::*;
use snapguard_chunker::{Chunker, ChunkerParams, StreamChunker};

#[path = "support/data.rs"]
mod data;

/// Random small parameters: avg 128..=1024, 64 <= min < avg < max <= 8 avg.
fn small_params() -> impl Strategy<Value = ChunkerParams> {
    (7u32..=10)
        .prop_flat_map(|bits| {
            let avg = 1usize << bits;
            (64..avg, Just(avg), avg + 1..=avg * 8)
        })
        .prop_map(|(min_size, avg_size, max_size)| ChunkerParams {
            min_size,
            avg_size,
            max_size,
        })
}

/// Arbitrary bytes, or low-entropy bytes (long runs, repeated patterns).
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12_000),
        prop::collection::vec(0u8..3, 0..12_000),
        (any::<u64>(), 0usize..40_000).prop_map(|(seed, len)| data::random_bytes(seed, len)),
    ]
}

fn chunker(seed: u64, params: ChunkerParams) -> Chunker {
    Chunker::new(data::gear(seed), params).expect("strategy yields valid params")
}

fn fixed_params() -> ChunkerParams {
    ChunkerParams {
        min_size: 64,
        avg_size: 256,
        max_size: 1024,
    }
}

/// Fraction of `old`'s chunks whose exact bytes are also a chunk of `new`.
fn reused_fraction(c: &Chunker, old: &[u8], new: &[u8]) -> f64 {
    let new_chunks: HashSet<&[u8]> = c.chunks(new).collect();
    let old_chunks: Vec<&[u8]> = c.chunks(old).collect();
    let kept = old_chunks
        .iter()
        .filter(|ch| new_chunks.contains(*ch))
        .count();
    kept as f64 / old_chunks.len() as f64
}

proptest! {
    // Failures print the shrunk case; persisting them needs a lib.rs/main.rs
    // next to the test source, which integration tests do not have.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (1) The chunks concatenate back to the input.
    #[test]
    fn chunks_concatenate_to_input(
        seed in any::<u64>(), params in small_params(), data in input()
    ) {
        let c = chunker(seed, params);
        let lens = c.chunk_lengths(&data);
        prop_assert_eq!(lens.iter().sum::<usize>(), data.len());
        prop_assert_eq!(c.chunks(&data).collect::<Vec<_>>().concat(), data);
    }

    /// (2) Pushing the input in arbitrary pieces (including empty ones)
    /// yields exactly the chunks of the whole buffer.
    #[test]
    fn streaming_matches_whole_buffer(
        seed in any::<u64>(),
        params in small_params(),
        data in input(),
        pieces in prop::collection::vec(0usize..3_000, 1..20),
    ) {
        let c = chunker(seed, params);
        let want: Vec<&[u8]> = c.chunks(&data).collect();
        let mut stream = StreamChunker::new(c);
        let mut got = Vec::new();
        let mut rest = &data[..];
        for &n in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            got.extend(stream.push(piece));
            prop_assert!(stream.buffered() < params.max_size);
        }
        got.extend(stream.finish());
        prop_assert_eq!(got, want);
    }

    /// (3) All chunks but the last have min <= len <= max; the last is
    /// non-empty and at most max.
    #[test]
    fn chunk_sizes_are_bounded(
        seed in any::<u64>(), params in small_params(), data in input()
    ) {
        let lens = chunker(seed, params).chunk_lengths(&data);
        if let Some((last, full)) = lens.split_last() {
            prop_assert!((1..=params.max_size).contains(last), "last {}", last);
            for &len in full {
                prop_assert!(
                    (params.min_size..=params.max_size).contains(&len),
                    "len {} outside {:?}", len, params
                );
            }
        } else {
            prop_assert!(data.is_empty());
        }
    }

    /// (4) Inserting bytes at the start of a large buffer only disturbs the
    /// first chunk(s): at least 80 % of the old chunks reappear verbatim.
    #[test]
    fn insertion_at_start_keeps_later_chunks(
        seed in any::<u64>(), inserted in prop::collection::vec(any::<u8>(), 1..300)
    ) {
        let c = chunker(seed, fixed_params());
        let old = data::random_bytes(seed, 256 * 1024);
        let new = [&inserted[..], &old[..]].concat();
        let reused = reused_fraction(&c, &old, &new);
        prop_assert!(reused >= 0.8, "only {:.3} of chunks reused", reused);
    }

    /// (4b) The same for an insertion in the middle; moreover every chunk
    /// that ends before the edit is unchanged.
    #[test]
    fn insertion_in_middle_keeps_other_chunks(
        seed in any::<u64>(),
        at in 0usize..256 * 1024,
        inserted in prop::collection::vec(any::<u8>(), 1..300),
    ) {
        let c = chunker(seed, fixed_params());
        let old = data::random_bytes(seed, 256 * 1024);
        let new = [&old[..at], &inserted[..], &old[at..]].concat();
        let reused = reused_fraction(&c, &old, &new);
        prop_assert!(reused >= 0.8, "only {:.3} of chunks reused", reused);
        let mut end = 0;
        for (a, b) in c.chunks(&old).zip(c.chunks(&new)) {
            end += a.len();
            if end > at {
                break;
            }
            prop_assert_eq!(a, b);
        }
    }

    /// (5) A different gear table gives different boundaries.
    #[test]
    fn gear_table_changes_boundaries(
        seed_a in any::<u64>(), seed_b in any::<u64>(), data_seed in any::<u64>()
    ) {
        prop_assume!(seed_a != seed_b);
        let data = data::random_bytes(data_seed, 64 * 1024);
        let a = chunker(seed_a, fixed_params()).chunk_lengths(&data);
        let b = chunker(seed_b, fixed_params()).chunk_lengths(&data);
        prop_assert_ne!(a, b);
    }
}
