//! Same-keys copying: blobs move still sealed or still compressed, never re-identified.

use super::CopyStats;
use crate::crypt::{blob_aad, decompress, Crypt};
use crate::index::BlobLocation;
use crate::pack::{read_header, PackWriter};
use crate::progress::Progress;
use crate::{Error, Repository, Result};
use snapguard_backend::{BackendError, FileType};
use snapguard_crypto::{counter_nonce, Cipher, SealKey};
use snapguard_format::{
    BlobId, BlobType, Compression, ContentPart, IndexPack, PackBlob, PackId, PackTrailer, TreeId,
    PACK_TRAILER_LEN,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A source pack is copied whole when the blobs needed from it fill at least this fraction
/// (1/N) of it; the rest of it becomes unused data in the target, which `prune` reclaims.
const VERBATIM_FRACTION: u64 = 2;

pub(super) struct SealedCopier {
    /// Blobs handled in this run (copied or found in the target).
    seen: HashSet<BlobId>,
    /// Trees whose children were listed in this run.
    expanded: HashSet<TreeId>,
    /// Pack files in the target (name → size) when the copy started, to adopt packs an
    /// interrupted copy uploaded under their own names but did not index.
    target_packs: HashMap<String, u64>,
    writer: Option<PackWriter>,
    unindexed: Vec<IndexPack>,
    packs_per_index: usize,
    progress: Option<Arc<Progress>>,
}

impl SealedCopier {
    pub(super) fn new(
        dst: &Repository,
        packs_per_index: usize,
        progress: Option<Arc<Progress>>,
    ) -> Result<SealedCopier> {
        let target_packs = dst
            .backend()
            .list(FileType::Pack)
            .map_err(dst.backend_err())?
            .into_iter()
            .collect();
        Ok(SealedCopier {
            seen: HashSet::new(),
            expanded: HashSet::new(),
            target_packs,
            writer: None,
            unindexed: Vec::new(),
            packs_per_index: packs_per_index.max(1),
            progress,
        })
    }

    /// Copy every blob below `root` that the target lacks, then make it durable and indexed.
    pub(super) fn copy_tree(
        &mut self,
        src: &Repository,
        dst: &mut Repository,
        root: TreeId,
        stats: &mut CopyStats,
    ) -> Result<()> {
        let needed = self.needed(src, dst, root, stats)?;
        // Group by source pack, packs in order of first need.
        let mut order: Vec<PackId> = Vec::new();
        let mut by_pack: HashMap<PackId, Vec<BlobLocation>> = HashMap::new();
        for id in needed {
            let loc = src.index().get(&id)?.ok_or_else(|| missing(&id))?;
            by_pack
                .entry(loc.pack)
                .or_insert_with(|| {
                    order.push(loc.pack);
                    Vec::new()
                })
                .push(loc);
        }
        let jobs: Vec<Job> = order
            .into_iter()
            .map(|pack| {
                let blobs = by_pack.remove(&pack).unwrap_or_default();
                let plan = self.plan(src, dst, pack, &blobs);
                Job { pack, blobs, plan }
            })
            .collect();
        // One thread reads (and authenticates) the next packs from the source while this one
        // writes to the target, so downloads and uploads overlap.
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) = crossbeam_channel::bounded::<Result<Fetched>>(PREFETCH);
            let jobs = &jobs;
            s.spawn(move || {
                for job in jobs {
                    let fetched = fetch(src, job);
                    let failed = fetched.is_err();
                    if tx.send(fetched).is_err() || failed {
                        break;
                    }
                }
            });
            for job in jobs {
                let fetched = rx
                    .recv()
                    .map_err(|_| Error::Internal("the pack reader thread stopped".into()))??;
                self.apply(src, dst, job, fetched, stats)?;
            }
            Ok(())
        })?;
        self.flush_writer(dst, stats)?;
        self.write_index(dst, stats)
    }

    /// The blobs below `root` the target does not have, children before parents.
    fn needed(
        &mut self,
        src: &Repository,
        dst: &Repository,
        root: TreeId,
        stats: &mut CopyStats,
    ) -> Result<Vec<BlobId>> {
        let mut out = Vec::new();
        // Depth-first with an explicit stack: (tree, children done).
        let mut stack = vec![(root, false)];
        while let Some((tree, expanded)) = stack.pop() {
            let blob = BlobId::from(tree);
            if expanded {
                self.consider(dst, blob, &mut out, stats)?;
                continue;
            }
            if self.seen.contains(&blob) || !self.expanded.insert(tree) {
                continue;
            }
            stack.push((tree, true));
            let t = src.read_tree(&tree)?;
            for node in t.nodes.iter().rev() {
                for part in &node.content {
                    if let ContentPart::Data { id, .. } = part {
                        self.consider(dst, *id, &mut out, stats)?;
                    }
                }
                if let Some(sub) = node.subtree {
                    stack.push((sub, false));
                }
            }
        }
        Ok(out)
    }

    fn consider(
        &mut self,
        dst: &Repository,
        id: BlobId,
        out: &mut Vec<BlobId>,
        stats: &mut CopyStats,
    ) -> Result<()> {
        if !self.seen.insert(id) {
            return Ok(());
        }
        if dst.index().contains(&id)? {
            stats.blobs_skipped += 1;
        } else {
            out.push(id);
        }
        Ok(())
    }

    /// How the blobs needed from `pack` will get into the target.
    fn plan(
        &self,
        src: &Repository,
        dst: &Repository,
        pack: PackId,
        blobs: &[BlobLocation],
    ) -> Plan {
        let name = pack.to_hex();
        let size = src.index().pack_size(&pack).unwrap_or(0);
        let needed_len: u64 = blobs.iter().map(|b| u64::from(b.blob.length)).sum();
        match self.target_packs.get(&name) {
            // An interrupted copy uploaded this very pack but did not index it.
            Some(&have) if have == size && dst.index().pack(&pack).is_none() => Plan::Adopt,
            Some(_) => Plan::Reseal,
            None if size > 0 && needed_len * VERBATIM_FRACTION >= size => Plan::Whole,
            None => Plan::Reseal,
        }
    }

    fn apply(
        &mut self,
        src: &Repository,
        dst: &mut Repository,
        job: &Job,
        fetched: Fetched,
        stats: &mut CopyStats,
    ) -> Result<()> {
        let name = job.pack.to_hex();
        match fetched {
            Fetched::Nothing => {
                // An interrupted copy uploaded this pack under its own name: index it if it
                // authenticates and holds the needed blobs, else copy them again.
                let size = self.target_packs.get(&name).copied().unwrap_or(0);
                match verify_target_pack(dst, job.pack, size, &job.blobs) {
                    Ok(entry) => {
                        tracing::debug!(pack = %name, "adopting a pack uploaded by an interrupted copy");
                        self.count_blobs(&job.blobs, stats);
                        stats.packs_adopted += 1;
                        self.push_durable(dst, entry, stats)
                    }
                    Err(e @ Error::Corrupt { .. }) => {
                        tracing::warn!("{e}; copying the blobs needed from it again");
                        self.reseal_instead(src, dst, job, stats)
                    }
                    Err(e) => Err(e),
                }
            }
            Fetched::Whole(bytes, entry) => {
                match dst.backend().write(FileType::Pack, &name, &bytes) {
                    Ok(()) => {
                        self.target_packs.insert(name, bytes.len() as u64);
                        self.count_blobs(&job.blobs, stats);
                        stats.packs_verbatim += 1;
                        stats.bytes_uploaded += bytes.len() as u64;
                        self.push_durable(dst, entry, stats)
                    }
                    // Another copy into this target (same keys) wrote the same pack meanwhile:
                    // use its file if it authenticates and holds the needed blobs.
                    Err(BackendError::AlreadyExists { .. }) => {
                        let size = dst
                            .backend()
                            .size(FileType::Pack, &name)
                            .map_err(dst.backend_err())?;
                        match verify_target_pack(dst, job.pack, size, &job.blobs) {
                            Ok(entry) => {
                                tracing::debug!(pack = %name, "the target already has this pack (written by another copy)");
                                self.target_packs.insert(name, size);
                                self.count_blobs(&job.blobs, stats);
                                stats.packs_adopted += 1;
                                self.push_durable(dst, entry, stats)
                            }
                            Err(e @ Error::Corrupt { .. }) => {
                                tracing::warn!(
                                    "{e}; sealing the blobs needed from it into new packs instead"
                                );
                                self.reseal_instead(src, dst, job, stats)
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(dst.backend_err()(e)),
                }
            }
            Fetched::Opened(bodies) => {
                for (loc, body) in job.blobs.iter().zip(bodies) {
                    self.add_resealed(dst, &loc.blob, &body, stats)?;
                }
                Ok(())
            }
        }
    }

    /// Copy the blobs `job` needs by sealing them again into new packs (when the pack file of
    /// the same name in the target cannot be used).
    fn reseal_instead(
        &mut self,
        src: &Repository,
        dst: &mut Repository,
        job: &Job,
        stats: &mut CopyStats,
    ) -> Result<()> {
        let again = Job {
            pack: job.pack,
            blobs: job.blobs.clone(),
            plan: Plan::Reseal,
        };
        let fetched = fetch(src, &again)?;
        self.apply(src, dst, &again, fetched, stats)
    }

    fn count_blobs(&self, blobs: &[BlobLocation], stats: &mut CopyStats) {
        let bytes = blobs
            .iter()
            .map(|b| u64::from(b.blob.raw_length))
            .sum::<u64>();
        stats.blobs_copied += blobs.len() as u64;
        stats.bytes_copied += bytes;
        if let Some(p) = &self.progress {
            p.add_bytes(bytes);
        }
    }

    fn add_resealed(
        &mut self,
        dst: &mut Repository,
        blob: &PackBlob,
        body: &[u8],
        stats: &mut CopyStats,
    ) -> Result<()> {
        let w = match self.writer.as_mut() {
            Some(w) => w,
            None => self.writer.insert(PackWriter::new(dst.crypt())?),
        };
        w.add_compressed(
            blob.id,
            blob.kind,
            blob.compression,
            body,
            blob.raw_length as usize,
        )?;
        stats.blobs_copied += 1;
        stats.blobs_resealed += 1;
        stats.bytes_copied += u64::from(blob.raw_length);
        if let Some(p) = &self.progress {
            p.add_bytes(u64::from(blob.raw_length));
        }
        if w.len() >= dst.config().pack_target_size as usize {
            self.flush_writer(dst, stats)?;
        }
        Ok(())
    }

    fn flush_writer(&mut self, dst: &mut Repository, stats: &mut CopyStats) -> Result<()> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        if w.is_empty() {
            return Ok(());
        }
        let done = w.finish();
        dst.backend()
            .write(FileType::Pack, &done.id.to_hex(), &done.bytes)
            .map_err(dst.backend_err())?;
        stats.packs_written += 1;
        stats.bytes_uploaded += done.bytes.len() as u64;
        let entry = IndexPack {
            id: done.id,
            size: done.bytes.len() as u64,
            epoch: done.epoch,
            cipher_code: done.cipher_code,
            blobs: done.blobs,
        };
        self.push_durable(dst, entry, stats)
    }

    /// Record a pack that is durable in the target; index a batch when it is full.
    fn push_durable(
        &mut self,
        dst: &mut Repository,
        entry: IndexPack,
        stats: &mut CopyStats,
    ) -> Result<()> {
        self.unindexed.push(entry);
        if self.unindexed.len() >= self.packs_per_index {
            self.write_index(dst, stats)?;
        }
        Ok(())
    }

    fn write_index(&mut self, dst: &mut Repository, stats: &mut CopyStats) -> Result<()> {
        if self.unindexed.is_empty() {
            return Ok(());
        }
        let packs = std::mem::take(&mut self.unindexed);
        dst.write_index(packs)?;
        stats.index_files += 1;
        Ok(())
    }
}

/// Packs read ahead of the one being written.
const PREFETCH: usize = 2;

/// How the blobs needed from one source pack get into the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// The target holds the pack file already (uploaded by an interrupted copy): index it.
    Adopt,
    /// Copy the pack file byte for byte.
    Whole,
    /// Open the needed blobs and seal them again into new packs.
    Reseal,
}

struct Job {
    pack: PackId,
    blobs: Vec<BlobLocation>,
    plan: Plan,
}

/// What was read from the source for one [`Job`].
enum Fetched {
    /// Nothing (the pack is adopted from the target).
    Nothing,
    /// The whole pack file and its index entry, every blob in it authenticated.
    Whole(Vec<u8>, IndexPack),
    /// The needed blobs, opened but still compressed, in the job's order.
    Opened(Vec<Vec<u8>>),
}

/// Read what `job` needs from the source. Nothing is vouched for unauthenticated: a whole
/// pack's header and every blob in it are opened, resealed blobs are opened one by one.
fn fetch(src: &Repository, job: &Job) -> Result<Fetched> {
    let pack = job.pack;
    let name = pack.to_hex();
    match job.plan {
        Plan::Adopt => Ok(Fetched::Nothing),
        Plan::Whole => {
            let bytes = src
                .backend()
                .read(FileType::Pack, &name)
                .map_err(src.backend_err())?;
            let entry = index_entry(src, pack, &bytes)?;
            // The snapshot will need these blobs where the source index says; a pack whose
            // header disagrees would leave the copy referencing blobs the target lacks.
            check_covers(&entry, &job.blobs).map_err(|detail| {
                Error::corrupt(
                    format!("pack {pack} of the source"),
                    format!("{detail}; the source index disagrees with the pack (run 'snapguard check' and 'snapguard repair index' on the source)"),
                )
            })?;
            let key = pack_key(src, &entry)?;
            for b in &entry.blobs {
                let range = b.offset as usize..(b.offset as usize + b.length as usize);
                let sealed = bytes.get(range).ok_or_else(|| {
                    Error::corrupt(format!("pack {pack}"), "blob beyond the end of the pack")
                })?;
                open_sealed(src.crypt(), &key, &pack, b, sealed)?;
            }
            Ok(Fetched::Whole(bytes, entry))
        }
        Plan::Reseal => {
            let sealed = read_sealed(src, pack, &job.blobs)?;
            let mut out = Vec::with_capacity(job.blobs.len());
            for (loc, sealed) in job.blobs.iter().zip(sealed) {
                let cipher = Cipher::from_code(loc.cipher_code)
                    .map_err(|e| Error::corrupt(format!("pack {pack}"), e))?;
                let key = src.crypt().pack_key(&pack, loc.epoch, cipher)?;
                out.push(open_sealed(src.crypt(), &key, &pack, &loc.blob, &sealed)?);
            }
            Ok(Fetched::Opened(out))
        }
    }
}

/// The sealed bytes of `blobs` (all in `pack`), in their order: one request for the whole
/// span when they cover at least half of it, else one per blob.
fn read_sealed(repo: &Repository, pack: PackId, blobs: &[BlobLocation]) -> Result<Vec<Vec<u8>>> {
    let name = pack.to_hex();
    let needed_len: u64 = blobs.iter().map(|b| u64::from(b.blob.length)).sum();
    let first = blobs.iter().map(|b| b.blob.offset).min().unwrap_or(0);
    let end = blobs
        .iter()
        .map(|b| u64::from(b.blob.offset) + u64::from(b.blob.length))
        .max()
        .unwrap_or(0);
    let span = end.saturating_sub(u64::from(first));
    let whole = if needed_len * 2 >= span {
        Some(
            repo.backend()
                .read_range(FileType::Pack, &name, u64::from(first), span)
                .map_err(repo.backend_err())?,
        )
    } else {
        None
    };
    let mut out = Vec::with_capacity(blobs.len());
    for loc in blobs {
        let sealed = match &whole {
            Some(buf) => {
                let start = (loc.blob.offset - first) as usize;
                buf.get(start..start + loc.blob.length as usize)
                    .ok_or_else(|| Error::corrupt(format!("pack {pack}"), "the pack is truncated"))?
                    .to_vec()
            }
            None => repo
                .backend()
                .read_range(
                    FileType::Pack,
                    &name,
                    u64::from(loc.blob.offset),
                    u64::from(loc.blob.length),
                )
                .map_err(repo.backend_err())?,
        };
        out.push(sealed);
    }
    Ok(out)
}

/// Whether the pack `entry` describes (from its authenticated header) holds every blob of
/// `needed` exactly where the source index places it; else which one it lacks.
pub(super) fn check_covers(
    entry: &IndexPack,
    needed: &[BlobLocation],
) -> std::result::Result<(), String> {
    let by_id: HashMap<BlobId, &PackBlob> = entry.blobs.iter().map(|b| (b.id, b)).collect();
    for loc in needed {
        let listed = by_id.get(&loc.blob.id).is_some_and(|b| **b == loc.blob);
        if !listed || loc.epoch != entry.epoch || loc.cipher_code != entry.cipher_code {
            return Err(format!(
                "its header does not list blob {} at offset {} with length {}",
                loc.blob.id, loc.blob.offset, loc.blob.length
            ));
        }
    }
    Ok(())
}

/// Check the pack file `pack` (`size` bytes) that is already in the target before using it in
/// place of a copy: its header must authenticate and list every blob of `needed` where the
/// source has it, and each of those blobs must authenticate and match its id. Reads only the
/// trailer, the header and the needed blobs (as ranges). Returns its index entry.
pub(super) fn verify_target_pack(
    dst: &Repository,
    pack: PackId,
    size: u64,
    needed: &[BlobLocation],
) -> Result<IndexPack> {
    let object = || format!("pack {pack} in the target");
    let entry = crate::repair::read_pack_index(dst, &pack, size)?;
    check_covers(&entry, needed).map_err(|detail| Error::corrupt(object(), detail))?;
    let key = pack_key(dst, &entry)?;
    for (loc, sealed) in needed.iter().zip(read_sealed(dst, pack, needed)?) {
        open_sealed(dst.crypt(), &key, &pack, &loc.blob, &sealed)?;
    }
    Ok(entry)
}

fn missing(id: &BlobId) -> Error {
    Error::corrupt(
        format!("blob {id}"),
        "not in the source repository's index (missing data; run 'snapguard check' on it)",
    )
}

/// The index entry of a whole pack file, from its authenticated header.
fn index_entry(repo: &Repository, pack: PackId, bytes: &[u8]) -> Result<IndexPack> {
    let blobs = read_header(repo.crypt(), &pack, bytes)?;
    let tail = &bytes[bytes.len() - PACK_TRAILER_LEN..];
    let (trailer, _) = PackTrailer::parse(tail, bytes.len() as u64)
        .map_err(|e| Error::corrupt(format!("pack {pack}"), e))?;
    Ok(IndexPack {
        id: pack,
        size: bytes.len() as u64,
        epoch: trailer.epoch,
        cipher_code: trailer.cipher_code,
        blobs,
    })
}

fn pack_key(repo: &Repository, entry: &IndexPack) -> Result<SealKey> {
    let cipher = Cipher::from_code(entry.cipher_code)
        .map_err(|e| Error::corrupt(format!("pack {}", entry.id), e))?;
    repo.crypt().pack_key(&entry.id, entry.epoch, cipher)
}

/// Authenticate and decrypt one sealed blob and check its content against its id (as
/// reading it would), returning it still compressed as stored. The associated data binds the
/// blob's id, kind, compression and length, so a blob that opens is the one the header names;
/// the id check catches a blob sealed under a wrong id by a faulty writer.
pub(super) fn open_sealed(
    crypt: &Crypt,
    key: &SealKey,
    pack: &PackId,
    blob: &PackBlob,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let object = || format!("blob {} in pack {pack}", blob.id);
    if blob.raw_length > crate::crypt::MAX_BLOB_PLAINTEXT
        || (blob.kind != BlobType::Data && blob.kind != BlobType::Tree)
    {
        return Err(Error::corrupt(object(), "implausible length"));
    }
    let aad = blob_aad(blob.kind, blob.compression, &blob.id, blob.raw_length);
    let data = key
        .open(&counter_nonce(u64::from(blob.offset)), &aad, sealed)
        .map_err(|e| Error::corrupt(object(), e))?;
    let matches =
        |plain: &[u8]| plain.len() == blob.raw_length as usize && crypt.id_of(plain) == blob.id.0;
    let ok = match blob.compression {
        Compression::None => matches(&data),
        _ => matches(&decompress(
            &object,
            blob.compression,
            data.clone(),
            blob.raw_length as usize,
        )?),
    };
    if !ok {
        return Err(Error::corrupt(object(), "content does not match its id"));
    }
    Ok(data)
}
