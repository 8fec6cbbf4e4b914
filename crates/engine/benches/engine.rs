//! zstd compression of 1 MiB chunks (text-like and incompressible) at levels
//! 1, 3 and 19, and lookups in the blob index with 1M entries (hits and
//! misses), in memory and in an on-disk index segment.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use snapguard_crypto::{Argon2Params, Cipher};
use snapguard_engine::index::Index;
use snapguard_engine::{InitOptions, Repository, Secret};
use snapguard_format::{BlobId, BlobType, Compression, IndexPack, PackBlob, PackId, Timestamp};
use std::sync::Arc;

const LEN: usize = 1024 * 1024;
const INDEX_ENTRIES: usize = 1_000_000;
const BLOBS_PER_PACK: usize = 4096;

/// Deterministic xorshift64* stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn id(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for part in out.chunks_mut(8) {
            part.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Source-code-like text: lines built from a small vocabulary picked by a
/// seeded generator, so it compresses roughly like real text (about 4-5x at
/// level 3) rather than like one repeated paragraph.
fn text_like(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "static",
        "int",
        "struct",
        "return",
        "if",
        "else",
        "for",
        "while",
        "unsigned",
        "long",
        "const",
        "char",
        "void",
        "*dev",
        "->",
        "NULL",
        "err",
        "goto",
        "out;",
        "spin_lock(&lock);",
        "kfree(p);",
        "size_t",
        "len",
        "=",
        "==",
        "!=",
        "0;",
        "1;",
        "{",
        "}",
        "(",
        ")",
        "u32",
        "u64",
        "page",
        "buffer",
        "inode",
        "mutex_unlock(&m);",
        "/*",
        "*/",
        "EINVAL",
        "ENOMEM",
        "#include",
        "<linux/kernel.h>",
        "case",
        "break;",
        "switch",
        "default:",
        "sizeof",
    ];
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len + 128);
    while out.len() < len {
        let indent = (rng.next() % 4) as usize;
        out.extend(std::iter::repeat_n(b'\t', indent));
        let words = 2 + rng.next() % 9;
        for i in 0..words {
            if i > 0 {
                out.push(b' ');
            }
            let w = WORDS[(rng.next() % WORDS.len() as u64) as usize];
            out.extend_from_slice(w.as_bytes());
            if rng.next() & 7 == 0 {
                out.extend_from_slice(format!("{}", rng.next() % 4096).as_bytes());
            }
        }
        out.push(b'\n');
    }
    out.truncate(len);
    out
}

fn bench_zstd(c: &mut Criterion) {
    let inputs = [
        ("text", text_like(1, LEN)),
        ("random", random_bytes(2, LEN)),
    ];
    let mut group = c.benchmark_group("zstd_compress_1MiB");
    group.throughput(Throughput::Bytes(LEN as u64));
    for level in [1, 3, 19] {
        if level == 19 {
            group.sample_size(10);
        }
        for (name, input) in &inputs {
            group.bench_function(format!("{name}_level{level}"), |b| {
                b.iter(|| zstd::bulk::compress(black_box(input), level).expect("zstd compresses"))
            });
        }
    }
    group.finish();
}

fn build_packs(rng: &mut Rng) -> (Vec<IndexPack>, Vec<BlobId>) {
    let mut packs = Vec::new();
    let mut ids = Vec::with_capacity(INDEX_ENTRIES);
    let mut remaining = INDEX_ENTRIES;
    while remaining > 0 {
        let n = remaining.min(BLOBS_PER_PACK);
        let blobs: Vec<PackBlob> = (0..n)
            .map(|i| {
                let id = BlobId(rng.id());
                ids.push(id);
                PackBlob {
                    id,
                    kind: BlobType::Data,
                    offset: (i * 4096) as u32,
                    length: 4096,
                    raw_length: 8192,
                    compression: Compression::Zstd,
                }
            })
            .collect();
        packs.push(IndexPack {
            id: PackId(rng.id()),
            size: (n * 4096) as u64,
            epoch: 0,
            cipher_code: 1,
            blobs,
        });
        remaining -= n;
    }
    (packs, ids)
}

/// A repository in `dir` whose index lists `packs`, opened with its on-disk index cache
/// (built here, in `dir/cache`).
fn disk_index_repo(dir: &std::path::Path, packs: &[IndexPack]) -> Repository {
    let backend = || -> Arc<dyn snapguard_backend::Backend> {
        Arc::new(snapguard_backend::LocalBackend::new(dir.join("repo")))
    };
    let secret = || Secret::Password(zeroize::Zeroizing::new(b"bench".to_vec()));
    let opts = InitOptions {
        cipher: Cipher::Aes256Gcm,
        kdf: Argon2Params {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        },
        now: Timestamp { secs: 0, nanos: 0 },
        hostname: "bench".into(),
        username: "bench".into(),
        compression_level: 3,
        pack_target_size: 16 << 20,
        chunk_avg: None,
        append_only: false,
    };
    let repo = Repository::init(backend(), &secret(), &opts).expect("init");
    for batch in packs.chunks(64) {
        repo.store_synthetic_index(batch.to_vec())
            .expect("store index");
    }
    let mut repo = Repository::open(backend(), &[secret()]).expect("open");
    repo.set_cache_dir(Some(dir.join("cache")));
    repo.load_index().expect("load index");
    assert_eq!(repo.index().segment_count(), 1);
    repo
}

fn bench_index(c: &mut Criterion) {
    let mut rng = Rng(0x1de5);
    let (packs, ids) = build_packs(&mut rng);
    let mut memory = Index::default();
    for p in &packs {
        memory.add_pack(p);
    }
    assert_eq!(memory.blob_count(), INDEX_ENTRIES as u64);
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = disk_index_repo(dir.path(), &packs);
    // Look up in a shuffled order so hits are not served from neighbouring cache lines.
    let probes: Vec<BlobId> = (0..4096)
        .map(|_| ids[(rng.next() % ids.len() as u64) as usize])
        .collect();
    let misses: Vec<BlobId> = (0..4096).map(|_| BlobId(rng.id())).collect();

    for (name, index) in [("memory", &memory), ("disk_segment", repo.index())] {
        let mut group = c.benchmark_group(format!("index_get_1M_entries_{name}"));
        group.throughput(Throughput::Elements(probes.len() as u64));
        group.bench_function("hit_x4096", |b| {
            b.iter(|| {
                probes
                    .iter()
                    .filter(|id| matches!(index.get(black_box(id)), Ok(Some(_))))
                    .count()
            })
        });
        group.bench_function("miss_x4096", |b| {
            b.iter(|| {
                misses
                    .iter()
                    .filter(|id| matches!(index.get(black_box(id)), Ok(Some(_))))
                    .count()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_zstd, bench_index);
criterion_main!(benches);
