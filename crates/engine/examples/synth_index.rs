//! Fill a repository with synthetic index entries, for measuring how memory grows with the
//! number of indexed blobs (bench/index-rss.sh). The packs named do not exist.
//!
//! Usage: synth_index REPO PASSWORD BLOBS

use snapguard_engine::{Repository, Secret};
use snapguard_format::{BlobId, BlobType, Compression, IndexPack, PackBlob, PackId};
use std::sync::Arc;

const BLOBS_PER_PACK: u64 = 1000;
const PACKS_PER_INDEX: u64 = 50;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, repo, password, blobs] = args.as_slice() else {
        return Err("usage: synth_index REPO PASSWORD BLOBS".into());
    };
    let blobs: u64 = blobs.parse()?;
    let backend = Arc::new(snapguard_backend::LocalBackend::new(repo));
    let secret = Secret::Password(zeroize::Zeroizing::new(password.as_bytes().to_vec()));
    let repo = Repository::open(backend, &[secret])?;
    let hash = |tag: &[u8], n: u64| {
        let mut h = blake3::Hasher::new();
        h.update(tag);
        h.update(&n.to_le_bytes());
        *h.finalize().as_bytes()
    };
    let mut next = 0u64;
    let mut pack_no = 0u64;
    while next < blobs {
        let mut packs = Vec::new();
        while packs.len() < PACKS_PER_INDEX as usize && next < blobs {
            let n = BLOBS_PER_PACK.min(blobs - next);
            let entries = (0..n)
                .map(|i| PackBlob {
                    id: BlobId(hash(b"blob", next + i)),
                    kind: BlobType::Data,
                    offset: (i * 16384) as u32,
                    length: 16000,
                    raw_length: 16384,
                    compression: Compression::Zstd,
                })
                .collect();
            packs.push(IndexPack {
                id: PackId(hash(b"pack", pack_no)),
                size: n * 16384,
                epoch: 0,
                cipher_code: repo.cipher().code(),
                blobs: entries,
            });
            next += n;
            pack_no += 1;
        }
        repo.store_synthetic_index(packs)?;
    }
    eprintln!("wrote {blobs} synthetic index entries in {pack_no} packs");
    Ok(())
}
