//! Phase 2 of a restore: writing file content, pack by pack.
//!
//! The walk (phase 1) creates every regular file and records, for each data part, which blob
//! goes where ([`Plan`]). Here the plan is worked off by a few threads, one pack
//! at a time: the needed blobs of a pack are read with one range read (or a few, if they are far
//! apart or the pack is very large), each blob is opened and verified once, and its plaintext is
//! written at every place that needs it. Holes are never written, so they stay holes.
//!
//! When the last part of a file is written, the thread that wrote it calls the caller's
//! `complete` (which applies the file's metadata). A blob that cannot be read or does not verify
//! marks every file using it as failed instead (the first reason is kept, so each file is
//! reported once); the caller removes those files. Anything else
//! that goes wrong (an I/O error on the target, a backend error other than a missing or truncated
//! pack) stops all threads and is returned.
//!
//! Memory stays bounded: each thread holds one range (at most [`MAX_RANGE`] bytes, or one blob)
//! and one opened blob at a time. Open target files are bounded too ([`Handles`]).

use crate::fsmeta;
use crate::index::BlobLocation;
use crate::{Error, Repository, Result};
use snapguard_backend::{BackendError, FileType};
use snapguard_crypto::{Cipher, SealKey};
use snapguard_format::{BlobId, PackBlob, PackId};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Most threads used for the data phase.
const MAX_WORKERS: usize = 4;
/// Most threads for a repository with a read parallelism set (a remote one): each holds one
/// range of at most [`MAX_RANGE`] bytes.
const MAX_REMOTE_WORKERS: usize = 16;
/// Needed blobs at most this far apart are fetched with one read (the gap is read and dropped).
const MAX_GAP: u64 = 256 << 10;
/// Largest single read; a pack bigger than this (or one blob bigger than this) is read in parts.
const MAX_RANGE: u64 = 8 << 20;

/// `len` plaintext bytes of a blob go to `offset` of file `file`.
#[derive(Clone, Copy, Debug)]
struct Target {
    file: usize,
    offset: u64,
    len: u32,
}

#[derive(Debug)]
struct BlobJob {
    blob: PackBlob,
    targets: Vec<Target>,
}

#[derive(Debug)]
struct PackJob {
    pack: PackId,
    epoch: u32,
    cipher_code: u8,
    blobs: Vec<BlobJob>,
}

/// Every blob to write, grouped by pack, packs in the order the walk first needed them.
#[derive(Default, Debug)]
pub(super) struct Plan {
    packs: Vec<PackJob>,
    pack_pos: HashMap<PackId, usize>,
    blob_pos: HashMap<BlobId, (usize, usize)>,
}

impl Plan {
    /// Write the blob at `loc` (of plaintext length `len`) to `offset` of file `file`.
    pub(super) fn add(&mut self, loc: &BlobLocation, file: usize, offset: u64, len: u32) {
        let target = Target { file, offset, len };
        if let Some(&(p, b)) = self.blob_pos.get(&loc.blob.id) {
            self.packs[p].blobs[b].targets.push(target);
            return;
        }
        let packs = &mut self.packs;
        let p = *self.pack_pos.entry(loc.pack).or_insert_with(|| {
            packs.push(PackJob {
                pack: loc.pack,
                epoch: loc.epoch,
                cipher_code: loc.cipher_code,
                blobs: Vec::new(),
            });
            packs.len() - 1
        });
        let job = &mut self.packs[p];
        job.blobs.push(BlobJob {
            blob: loc.blob,
            targets: vec![target],
        });
        self.blob_pos.insert(loc.blob.id, (p, job.blobs.len() - 1));
    }
}

/// A regular file that gets content in the data phase.
#[derive(Debug)]
pub(super) struct FileSlot {
    pub(super) path: PathBuf,
    /// Identity of the file created by the walk: a reopened path must still be that file.
    dev: u64,
    ino: u64,
    handle: Mutex<Option<Arc<File>>>,
    /// Targets not yet written (or skipped); the handle is closed when this reaches zero.
    remaining: AtomicUsize,
    /// Why the file cannot be restored (the first reason found).
    pub(super) failed: OnceLock<String>,
}

impl FileSlot {
    pub(super) fn new(path: PathBuf, file: &File) -> std::io::Result<FileSlot> {
        let st = fsmeta::stat_info(&rustix::fs::fstat(file)?);
        Ok(FileSlot {
            path,
            dev: st.dev,
            ino: st.ino,
            handle: Mutex::new(None),
            remaining: AtomicUsize::new(0),
            failed: OnceLock::new(),
        })
    }

    /// One more target (to be added to the plan) writes into this file.
    pub(super) fn add_target(&mut self) {
        *self.remaining.get_mut() += 1;
    }

    fn handle(&self) -> MutexGuard<'_, Option<Arc<File>>> {
        self.handle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open the file again for writing, making sure it is still the file the walk created.
    pub(super) fn reopen(&self) -> Result<File> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            &self.path,
            OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(&self.path, e.into()))?;
        let st = fsmeta::stat_info(
            &rustix::fs::fstat(&fd).map_err(|e| Error::io(&self.path, e.into()))?,
        );
        if st.dev != self.dev || st.ino != self.ino {
            return Err(Error::io(
                &self.path,
                std::io::Error::other("the file was replaced by another one during the restore"),
            ));
        }
        Ok(File::from(fd))
    }
}

/// Open target files, at most `cap` of them (oldest opened closed first); a file closed early
/// is simply opened again when it is needed.
struct Handles {
    opened: Mutex<VecDeque<usize>>,
    cap: usize,
}

impl Handles {
    fn new() -> Handles {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let cap = if cfg!(test) {
            // Unit tests restore a handful of files: make them close and reopen some.
            2
        } else {
            usize::try_from((soft / 4).clamp(16, 1024)).unwrap_or(16)
        };
        Handles {
            opened: Mutex::new(VecDeque::new()),
            cap,
        }
    }

    fn get(&self, files: &[FileSlot], i: usize) -> Result<Arc<File>> {
        let slot = &files[i];
        let file = {
            let mut h = slot.handle();
            if let Some(f) = &*h {
                return Ok(f.clone());
            }
            let f = Arc::new(slot.reopen()?);
            *h = Some(f.clone());
            f
        };
        let evict = {
            let mut q = self.opened.lock().unwrap_or_else(|e| e.into_inner());
            q.push_back(i);
            if q.len() > self.cap {
                q.pop_front()
            } else {
                None
            }
        };
        if let Some(j) = evict.filter(|&j| j != i) {
            files[j].handle().take();
        }
        Ok(file)
    }
}

struct Ctx<'a> {
    repo: &'a Repository,
    progress: Option<&'a crate::progress::Progress>,
    jobs: &'a [PackJob],
    files: &'a [FileSlot],
    complete: &'a Complete<'a>,
    handles: Handles,
    next: AtomicUsize,
    abort: AtomicBool,
    fatal: Mutex<Option<Error>>,
    fetched: AtomicU64,
    written: AtomicU64,
}

/// What the data phase read and wrote.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DataStats {
    /// Bytes read from pack files (sealed blobs and the gaps between them).
    pub(super) bytes_fetched: u64,
    /// Plaintext bytes written into target files.
    pub(super) bytes_written: u64,
}

/// Called (on some worker thread) for each file whose data is completely written, once no
/// thread uses it any more.
pub(super) type Complete<'a> = dyn Fn(usize) -> Result<()> + Sync + 'a;

/// Write every blob of `plan` into `files`. Failed files are marked in their slot; `complete` is
/// called for every other file that gets data.
pub(super) fn run(
    repo: &Repository,
    plan: Plan,
    files: &[FileSlot],
    progress: Option<&crate::progress::Progress>,
    complete: &Complete<'_>,
) -> Result<DataStats> {
    let Plan { packs, .. } = plan;
    if packs.is_empty() {
        return Ok(DataStats::default());
    }
    // Local reads are bounded by the CPU (opening and writing the blobs); remote ones by the
    // round trip, so they get as many threads as the caller allows requests in flight.
    let workers = match repo.read_parallelism() {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_WORKERS),
        n => n.min(MAX_REMOTE_WORKERS),
    }
    .min(packs.len());
    let ctx = Ctx {
        repo,
        progress,
        jobs: &packs,
        files,
        complete,
        handles: Handles::new(),
        next: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        fatal: Mutex::new(None),
        fetched: AtomicU64::new(0),
        written: AtomicU64::new(0),
    };
    if workers <= 1 {
        ctx.worker();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| ctx.worker());
            }
        });
    }
    let stats = DataStats {
        bytes_fetched: ctx.fetched.load(Ordering::Relaxed),
        bytes_written: ctx.written.load(Ordering::Relaxed),
    };
    match ctx.fatal.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

/// The message for a blob whose pack cannot be read, as [`Repository::read_blob`] words it.
fn missing(blob: &PackBlob, pack: &PackId, path: &str) -> String {
    let e = Error::corrupt(
        format!("blob {} in pack {pack} ({path})", blob.id),
        "the pack is missing or truncated",
    );
    format!("not restored: {e}")
}

impl Ctx<'_> {
    fn worker(&self) {
        while !self.abort.load(Ordering::Relaxed) {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = self.jobs.get(i) else {
                return;
            };
            if let Err(e) = self.pack(job) {
                let mut fatal = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
                fatal.get_or_insert(e);
                self.abort.store(true, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Read, open and write every needed blob of one pack.
    fn pack(&self, job: &PackJob) -> Result<()> {
        let backend = self.repo.backend();
        let name = job.pack.to_hex();
        let mut order: Vec<&BlobJob> = job.blobs.iter().collect();
        order.sort_by_key(|b| b.blob.offset);
        let mut key: Option<std::result::Result<SealKey, String>> = None;
        for (start, end, blobs) in ranges(&order) {
            if self.abort.load(Ordering::Relaxed) {
                return Ok(());
            }
            let buf = match backend.read_range(FileType::Pack, &name, start, end - start) {
                Ok(b) => {
                    self.fetched.fetch_add(b.len() as u64, Ordering::Relaxed);
                    Some(b)
                }
                Err(BackendError::ShortRead { .. }) if blobs.len() > 1 => None,
                Err(BackendError::NotFound { path } | BackendError::ShortRead { path, .. }) => {
                    for b in blobs {
                        self.fail(b, &missing(&b.blob, &job.pack, &path))?;
                    }
                    continue;
                }
                Err(other) => return Err(self.repo.backend_err()(other)),
            };
            for b in blobs {
                let off = u64::from(b.blob.offset);
                let len = u64::from(b.blob.length);
                let fetched;
                let sealed: &[u8] = match &buf {
                    Some(buf) => {
                        let from = usize::try_from(off - start).unwrap_or(usize::MAX);
                        match from
                            .checked_add(b.blob.length as usize)
                            .and_then(|to| buf.get(from..to))
                        {
                            Some(s) => s,
                            None => {
                                self.fail(b, &missing(&b.blob, &job.pack, &name))?;
                                continue;
                            }
                        }
                    }
                    // Part of the range is beyond the end of the pack: find out blob by blob.
                    None => match backend.read_range(FileType::Pack, &name, off, len) {
                        Ok(v) => {
                            self.fetched.fetch_add(v.len() as u64, Ordering::Relaxed);
                            fetched = v;
                            &fetched
                        }
                        Err(
                            BackendError::NotFound { path } | BackendError::ShortRead { path, .. },
                        ) => {
                            self.fail(b, &missing(&b.blob, &job.pack, &path))?;
                            continue;
                        }
                        Err(other) => return Err(self.repo.backend_err()(other)),
                    },
                };
                let key = key.get_or_insert_with(|| self.key(job));
                let plain = match key {
                    Ok(k) => self.repo.crypt().open_blob(&job.pack, k, &b.blob, sealed),
                    Err(msg) => {
                        self.fail(b, msg)?;
                        continue;
                    }
                };
                match plain {
                    Ok(p) => self.write(b, &p)?,
                    Err(e @ Error::Corrupt { .. }) => {
                        self.fail(b, &format!("not restored: {e}"))?
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn key(&self, job: &PackJob) -> std::result::Result<SealKey, String> {
        Cipher::from_code(job.cipher_code)
            .map_err(|e| Error::corrupt(format!("pack {}", job.pack), e))
            .and_then(|c| self.repo.crypt().pack_key(&job.pack, job.epoch, c))
            .map_err(|e| format!("not restored: {e}"))
    }

    /// Write an opened blob everywhere it is needed.
    fn write(&self, b: &BlobJob, plain: &[u8]) -> Result<()> {
        for t in &b.targets {
            if plain.len() != t.len as usize {
                return Err(Error::corrupt(
                    format!("blob {}", b.blob.id),
                    "length differs from the tree's record",
                ));
            }
            let slot = &self.files[t.file];
            if slot.failed.get().is_none() {
                let file = self.handles.get(self.files, t.file)?;
                file.write_all_at(plain, t.offset)
                    .map_err(|e| Error::io(&slot.path, e))?;
                self.written
                    .fetch_add(plain.len() as u64, Ordering::Relaxed);
                if let Some(p) = self.progress {
                    p.add_bytes(plain.len() as u64);
                }
            }
            self.done(t.file)?;
        }
        Ok(())
    }

    /// Mark every file using blob `b` as failed.
    fn fail(&self, b: &BlobJob, message: &str) -> Result<()> {
        for t in &b.targets {
            let _ = self.files[t.file].failed.set(message.to_string());
            self.done(t.file)?;
        }
        Ok(())
    }

    /// One target of file `i` is written (or skipped): close the file after its last one.
    fn done(&self, i: usize) -> Result<()> {
        let slot = &self.files[i];
        if slot.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return Ok(());
        }
        slot.handle().take();
        if slot.failed.get().is_some() {
            return Ok(());
        }
        (self.complete)(i)
    }
}

/// Split blobs sorted by offset into ranges to read: `(start, end, blobs)`.
fn ranges<'b, 'j>(sorted: &'b [&'j BlobJob]) -> Vec<(u64, u64, &'b [&'j BlobJob])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let first = &sorted[i].blob;
        let start = u64::from(first.offset);
        let mut end = start + u64::from(first.length);
        let mut j = i + 1;
        while let Some(b) = sorted.get(j) {
            let b_start = u64::from(b.blob.offset);
            let b_end = b_start + u64::from(b.blob.length);
            if b_start > end + MAX_GAP || b_end.max(end) - start > MAX_RANGE {
                break;
            }
            end = end.max(b_end);
            j += 1;
        }
        out.push((start, end, &sorted[i..j]));
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapguard_format::{BlobType, Compression};

    fn job(offset: u32, length: u32) -> BlobJob {
        BlobJob {
            blob: PackBlob {
                id: BlobId([offset as u8; 32]),
                kind: BlobType::Data,
                offset,
                length,
                raw_length: length,
                compression: Compression::None,
            },
            targets: Vec::new(),
        }
    }

    #[test]
    fn ranges_merge_close_blobs_and_split_far_or_large_ones() {
        let mib = 1u32 << 20;
        let jobs = [
            job(0, 100),
            job(100, 100),
            job(300, 100),     // small gap: same range
            job(2 * mib, 100), // far: new range
            job(3 * mib, 20 * mib),
            job(23 * mib, 5 * mib), // would exceed MAX_RANGE: new range
        ];
        let sorted: Vec<&BlobJob> = jobs.iter().collect();
        let r: Vec<(u64, u64, usize)> = ranges(&sorted)
            .into_iter()
            .map(|(s, e, b)| (s, e, b.len()))
            .collect();
        let m = u64::from(mib);
        assert_eq!(
            r,
            vec![
                (0, 400, 3),
                (2 * m, 2 * m + 100, 1),
                (3 * m, 23 * m, 1),
                (23 * m, 28 * m, 1)
            ]
        );
    }

    #[test]
    fn ranges_of_a_single_huge_blob() {
        let jobs = [job(0, 40 << 20)];
        let sorted: Vec<&BlobJob> = jobs.iter().collect();
        let r = ranges(&sorted);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].0, r[0].1), (0, 40 << 20));
    }
}
