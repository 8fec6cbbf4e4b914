//! Throughput of the chunker on 64 MiB inputs with the default parameters:
//! pseudo-random bytes (typical for compressed or encrypted files) and a
//! repeated text paragraph. On the latter no position passes a mask with the
//! bench's gear table, so every chunk runs to `max_size` and ~94 % of the
//! bytes are hashed (the worst case), versus ~58 % on random data.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use snapguard_chunker::{Chunker, ChunkerParams, StreamChunker};

#[path = "../tests/support/data.rs"]
mod data;

const LEN: usize = 64 * 1024 * 1024;

fn chunker() -> Chunker {
    Chunker::new(data::gear(0x5eed), ChunkerParams::DEFAULT).expect("default params are valid")
}

fn bench_chunk_lengths(c: &mut Criterion) {
    let chunker = chunker();
    let inputs = [
        ("random", data::random_bytes(1, LEN)),
        ("repetitive_text", data::repetitive_text(LEN)),
    ];
    let mut group = c.benchmark_group("chunk_lengths_64MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(LEN as u64));
    for (name, input) in &inputs {
        group.bench_function(*name, |b| {
            b.iter(|| chunker.chunk_lengths(black_box(input)))
        });
    }
    group.finish();

    // Streaming in 1 MiB pieces adds the copy into owned chunks.
    let mut group = c.benchmark_group("stream_push_1MiB_pieces_64MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(LEN as u64));
    let random = &inputs[0].1;
    group.bench_function("random", |b| {
        b.iter(|| {
            let mut stream = StreamChunker::new(chunker.clone());
            let mut n = 0;
            for piece in black_box(random).chunks(1 << 20) {
                n += stream.push(piece).len();
            }
            n + stream.finish().len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_chunk_lengths);
criterion_main!(benches);
