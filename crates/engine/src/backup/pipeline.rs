//! The parallel part of a backup: compression on every core, sealing and packing on one thread.
//!
//! The walker (the caller's thread) reads, chunks, hashes and deduplicates; only chunks the
//! repository lacks are submitted here. Workers compress them (the expensive step: zstd runs at
//! ~0.5 GB/s per core on source code, everything else is several times faster), and one packer
//! thread seals them into packs (sealing needs the pack's running offset as the nonce, so it is
//! sequential, and AES-GCM is fast enough not to matter) and hands finished packs to two upload
//! threads, so one pack can be written and fsynced while the next is filled. Every
//! `PACKS_PER_INDEX` durable packs, and at the end, an index file lists them. Channels are bounded, so
//! memory stays flat however large the backup: at most a few chunks per worker are in flight.

use crate::crypt::{compress, Crypt};
use crate::pack::{FinishedPack, PackWriter};
use crate::{Error, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use snapguard_backend::{Backend, FileType};
use snapguard_format::{BlobId, BlobType, Compression, IndexFile, IndexId, IndexPack, ObjectKind};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub(crate) const PACKS_PER_INDEX: usize = 64;

/// A chunk to store.
pub(crate) struct Job {
    pub id: BlobId,
    pub kind: BlobType,
    pub data: Vec<u8>,
}

struct Compressed {
    id: BlobId,
    kind: BlobType,
    compression: Compression,
    body: Vec<u8>,
    raw_len: usize,
}

/// What the packer did.
#[derive(Default)]
pub(crate) struct PackerOutput {
    pub bytes_stored: u64,
    /// Every pack written (so the caller's in-memory index can learn them).
    pub packs: Vec<IndexPack>,
}

/// Settings of the pipeline.
pub(crate) struct PipelineConfig {
    /// zstd level, or None to store blobs uncompressed.
    pub level: Option<i32>,
    pub pack_target: usize,
    pub threads: usize,
    pub dry_run: bool,
}

pub(crate) struct Pipeline {
    tx: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    packer: Option<JoinHandle<Result<PackerOutput>>>,
}

impl Pipeline {
    pub(crate) fn start(backend: Arc<dyn Backend>, crypt: Crypt, cfg: PipelineConfig) -> Pipeline {
        let threads = cfg.threads.max(1);
        let (tx, rx) = bounded::<Job>(threads * 2);
        let (ctx, crx) = bounded::<Compressed>(threads * 2);
        let workers = (0..threads)
            .filter_map(|i| {
                let rx = rx.clone();
                let ctx = ctx.clone();
                let level = cfg.level;
                std::thread::Builder::new()
                    .name(format!("compress-{i}"))
                    .spawn(move || worker(rx, ctx, level))
                    .ok()
            })
            .collect();
        drop(ctx);
        let packer = std::thread::Builder::new()
            .name("packer".into())
            .spawn(move || packer(crx, backend, crypt, cfg.pack_target, cfg.dry_run))
            .ok();
        Pipeline {
            tx: Some(tx),
            workers,
            packer,
        }
    }

    /// Queue a chunk (blocks while the workers are busy, which bounds memory).
    pub(crate) fn submit(&mut self, job: Job) -> Result<()> {
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(job).is_ok())
            .unwrap_or(false);
        if sent {
            return Ok(());
        }
        // The packer stopped: report why.
        match self.shutdown() {
            Err(e) => Err(e),
            Ok(_) => Err(Error::InvalidArgument(
                "the backup pipeline stopped unexpectedly".into(),
            )),
        }
    }

    /// Wait for every queued chunk to be packed and indexed.
    pub(crate) fn finish(mut self) -> Result<PackerOutput> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<PackerOutput> {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.packer.take() {
            Some(p) => p
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("the packer thread panicked".into()))),
            None => Err(Error::InvalidArgument(
                "the packer thread could not be started".into(),
            )),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.packer.is_some() {
            let _ = self.shutdown();
        }
    }
}

fn worker(rx: Receiver<Job>, tx: Sender<Compressed>, level: Option<i32>) {
    for job in rx {
        let raw_len = job.data.len();
        let (compression, body) = match level {
            Some(l) => compress(&job.data, l),
            None => (Compression::None, job.data),
        };
        if tx
            .send(Compressed {
                id: job.id,
                kind: job.kind,
                compression,
                body,
                raw_len,
            })
            .is_err()
        {
            break;
        }
    }
}

/// Shared by the upload threads: packs written but not yet listed in an index file.
struct Uploaded {
    unindexed: Vec<IndexPack>,
    all: Vec<IndexPack>,
    error: Option<Error>,
}

/// How many packs upload at once: while one pack is being written and fsynced, the packer fills
/// the next. A finished pack is handed over directly (no queue), so at most `UPLOADERS + 1`
/// packs are in memory; a queue of two more cost 30-70 MiB of peak RSS and no measurable
/// speed (bench/params.py).
const UPLOADERS: usize = 2;

fn packer(
    rx: Receiver<Compressed>,
    backend: Arc<dyn Backend>,
    crypt: Crypt,
    target: usize,
    dry_run: bool,
) -> Result<PackerOutput> {
    let (utx, urx) = bounded::<FinishedPack>(0);
    // Buffers of stored packs go back to the packer for the next packs.
    let (recycle_tx, recycle_rx) = bounded::<Vec<u8>>(UPLOADERS + 1);
    let shared = Arc::new(Mutex::new(Uploaded {
        unindexed: Vec::new(),
        all: Vec::new(),
        error: None,
    }));
    let uploaders: Vec<_> = (0..UPLOADERS)
        .filter_map(|i| {
            let (urx, backend, crypt, shared, recycle) = (
                urx.clone(),
                backend.clone(),
                crypt.clone(),
                shared.clone(),
                recycle_tx.clone(),
            );
            std::thread::Builder::new()
                .name(format!("upload-{i}"))
                .spawn(move || uploader(urx, &*backend, &crypt, dry_run, &shared, &recycle))
                .ok()
        })
        .collect();
    drop(urx);
    drop(recycle_tx);
    let mut bytes_stored = 0u64;
    let sealed = (|| -> Result<()> {
        let mut writer: Option<PackWriter> = None;
        for c in rx {
            let w = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(match recycle_rx.try_recv() {
                    Ok(buf) => PackWriter::new_in(&crypt, buf)?,
                    Err(_) => PackWriter::new(&crypt)?,
                }),
            };
            bytes_stored +=
                u64::from(w.add_compressed(c.id, c.kind, c.compression, &c.body, c.raw_len)?);
            if w.len() >= target {
                if let Some(w) = writer.take() {
                    if utx.send(w.finish()).is_err() {
                        return Ok(()); // every uploader stopped: their error is reported below
                    }
                }
            }
        }
        if let Some(w) = writer.take() {
            if !w.is_empty() {
                let _ = utx.send(w.finish());
            }
        }
        Ok(())
    })();
    drop(utx);
    for u in uploaders {
        let _ = u.join();
    }
    sealed?;
    let mut state = shared
        .lock()
        .map_err(|_| Error::Internal("upload state poisoned".into()))?;
    if let Some(e) = state.error.take() {
        return Err(e);
    }
    let rest = std::mem::take(&mut state.unindexed);
    write_index(&*backend, &crypt, dry_run, rest)?;
    Ok(PackerOutput {
        bytes_stored,
        packs: std::mem::take(&mut state.all),
    })
}

fn uploader(
    rx: Receiver<FinishedPack>,
    backend: &dyn Backend,
    crypt: &Crypt,
    dry_run: bool,
    shared: &Mutex<Uploaded>,
    recycle: &Sender<Vec<u8>>,
) {
    for done in rx {
        let written = if dry_run {
            Ok(())
        } else {
            backend
                .write(FileType::Pack, &done.id.to_hex(), &done.bytes)
                .map_err(|cause| Error::Backend {
                    location: backend.location(),
                    cause,
                })
        };
        let Ok(mut state) = shared.lock() else { return };
        if let Err(e) = written {
            state.error.get_or_insert(e);
            return;
        }
        let pack = IndexPack {
            id: done.id,
            size: done.bytes.len() as u64,
            epoch: done.epoch,
            cipher_code: done.cipher_code,
            blobs: done.blobs,
        };
        let _ = recycle.try_send(done.bytes);
        state.all.push(pack.clone());
        state.unindexed.push(pack);
        if state.unindexed.len() >= PACKS_PER_INDEX {
            let batch = std::mem::take(&mut state.unindexed);
            drop(state);
            if let Err(e) = write_index(backend, crypt, dry_run, batch) {
                if let Ok(mut state) = shared.lock() {
                    state.error.get_or_insert(e);
                }
                return;
            }
        }
    }
}

/// Write one index file listing `packs`, which are already durable.
fn write_index(
    backend: &dyn Backend,
    crypt: &Crypt,
    dry_run: bool,
    packs: Vec<IndexPack>,
) -> Result<()> {
    if packs.is_empty() || dry_run {
        return Ok(());
    }
    let file = IndexFile {
        packs,
        supersedes: Vec::new(),
    };
    let (id, bytes) = crypt.seal_object(ObjectKind::Index, &file.encode())?;
    backend
        .write(FileType::Index, &IndexId(id).to_hex(), &bytes)
        .map_err(|cause| Error::Backend {
            location: backend.location(),
            cause,
        })
}
