//! Throughput of the primitives on the backup hot path: keyed BLAKE3 chunk
//! ids (`KeyBundle::id_of`), sealing 1 MiB with each AEAD
//! (`SealKey::seal_into` into a reused buffer) and per-object subkey
//! derivation (`derive_subkey`, once per pack or sealed file).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use snapguard_crypto::{counter_nonce, derive_subkey, Cipher, Key32, KeyBundle, OsRng, SealKey};

const LEN: usize = 1024 * 1024;

/// Deterministic pseudo-random bytes (xorshift64*), so runs are comparable.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn bench_id_of(c: &mut Criterion) {
    let bundle = KeyBundle::generate(&mut OsRng);
    let data = pseudo_random(1, LEN);
    let mut group = c.benchmark_group("blake3_keyed_id_of");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.bench_function("1MiB", |b| b.iter(|| bundle.id_of(black_box(&data))));
    group.finish();
}

fn bench_seal(c: &mut Criterion) {
    let data = pseudo_random(2, LEN);
    let mut group = c.benchmark_group("seal_into");
    group.throughput(Throughput::Bytes(LEN as u64));
    for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
        let key = SealKey::new(cipher, Key32::from_bytes([7; 32]));
        let mut out = Vec::with_capacity(LEN + snapguard_crypto::TAG_LEN);
        let mut n = 0u64;
        group.bench_function(format!("{}_1MiB", cipher.name()), |b| {
            b.iter(|| {
                out.clear();
                n += 1;
                key.seal_into(&counter_nonce(n), b"aad", black_box(&data), &mut out);
                out.len()
            })
        });
    }
    group.finish();
}

fn bench_derive_subkey(c: &mut Criterion) {
    let data_key = Key32::from_bytes([9; 32]);
    let salt = [3u8; 32];
    c.bench_function("derive_subkey", |b| {
        b.iter(|| derive_subkey(black_box(&data_key), black_box(&salt)))
    });
}

criterion_group!(benches, bench_id_of, bench_seal, bench_derive_subkey);
criterion_main!(benches);
