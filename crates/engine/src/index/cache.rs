//! Keeping the on-disk index segments in step with the repository's index files.
//!
//! A segment records which index files it covers and which index files those supersede. At
//! load, segments covering only index files that still exist (and are not superseded) are
//! reused; the index files no segment covers are read from the repository and sorted into one
//! new segment (an external merge sort, so memory stays bounded however many there are); then
//! small segments are merged so that there are O(log n) of them. Everything here is a cache:
//! an unreadable, foreign or damaged segment is deleted and rebuilt from the repository.

use super::segment::{
    self, Accounting, Entry, Segment, SegmentError, SegmentHeader, SegmentWriter, RECORD_LEN,
};
use super::{Index, PackInfo};
use crate::{Error, Result};
use snapguard_format::{IndexFile, IndexId, PackId, RepoId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Entries sorted in memory before a run is spilled to disk (about 7 MiB).
pub(crate) const RUN_RECORDS: usize = 1 << 17;
/// At most this many segments; beyond it the smallest are merged whatever their sizes.
const MAX_SEGMENTS: usize = 12;
const SEGMENT_SUFFIX: &str = ".sgx";
const DROPPED: u32 = u32::MAX;

/// Why loading through the cache failed.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// Reading the repository failed: the caller reports it.
    Repo(Error),
    /// The cache directory could not be used: the caller falls back to memory.
    Cache(Error),
}

/// Tuning for tests; production uses [`Tuning::default`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    pub run_records: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            run_records: RUN_RECORDS,
        }
    }
}

/// Everything a load needs to know about the repository.
pub(crate) struct Source<'a> {
    pub repo: RepoId,
    pub mac_key: &'a [u8; 32],
    /// Index files in the repository, in listing order.
    pub listing: &'a [IndexId],
    /// Read one index file; `Ok(None)` if it is damaged (the caller records why).
    pub read: &'a mut dyn FnMut(&IndexId) -> Result<Option<IndexFile>>,
}

fn random_name(prefix: &str, suffix: &str) -> String {
    let r: [u8; 12] = snapguard_crypto::random_bytes(&mut rand_core::OsRng);
    format!("{prefix}{}{suffix}", hex::encode(r))
}

fn cache_err(e: Error) -> LoadError {
    LoadError::Cache(e)
}

/// Remove a cache file, ignoring failure (another process may have removed it first).
fn discard(path: &Path, why: &str) {
    tracing::debug!("discarding index cache file {}: {why}", path.display());
    let _ = std::fs::remove_file(path);
}

/// Load the index of a repository through the segment cache in `dir`.
pub(crate) fn load(
    dir: &Path,
    src: Source<'_>,
    tuning: Tuning,
) -> std::result::Result<Index, LoadError> {
    create_private_dir(dir).map_err(cache_err)?;
    remove_stale_temporaries(dir);
    let listing: HashSet<IndexId> = src.listing.iter().copied().collect();

    // Segments whose index files all still exist; the rest are stale. Every supersede
    // statement they record is a fact about listed files, valid whether or not the segment
    // is used.
    let mut candidates = Vec::new();
    for path in segment_files(dir).map_err(cache_err)? {
        match segment::read_header(&path, &src.repo) {
            Ok(h) if h.files().all(|id| listing.contains(id)) => candidates.push(h),
            Ok(_) => discard(&path, "covers index files that are gone"),
            Err(SegmentError::Invalid(why)) => discard(&path, &why),
            Err(SegmentError::Io(e)) => return Err(LoadError::Cache(e)),
        }
    }
    let mut superseded: HashSet<IndexId> = candidates
        .iter()
        .flat_map(|h| h.supersedes.iter().copied())
        .collect();
    // Biggest first; a segment overlapping a chosen one is redundant.
    candidates.sort_by(|a, b| b.blobs.cmp(&a.blobs).then(a.path.cmp(&b.path)));
    let mut chosen: Vec<Segment> = Vec::new();
    let mut accounted: HashSet<IndexId> = HashSet::new();
    let mut retired: Vec<PathBuf> = Vec::new();
    for h in candidates {
        if h.files().any(|id| accounted.contains(id)) {
            retired.push(h.path.clone());
            continue;
        }
        let path = h.path.clone();
        match Segment::open(h, src.mac_key, &src.repo) {
            Ok(s) => {
                accounted.extend(s.header.files().copied());
                chosen.push(s);
            }
            Err(SegmentError::Invalid(why)) => discard(&path, &why),
            Err(SegmentError::Io(e)) => return Err(LoadError::Cache(e)),
        }
    }

    // Read the index files no segment accounts for. What they supersede can invalidate a
    // chosen segment (it holds entries of a now superseded file), whose files are then read
    // too, until nothing changes.
    let mut builder = Builder::new(dir, tuning.run_records);
    let mut read: HashSet<IndexId> = HashSet::new();
    loop {
        let pending: Vec<IndexId> = src
            .listing
            .iter()
            .filter(|id| !accounted.contains(id) && !read.contains(id))
            .copied()
            .collect();
        for id in pending {
            read.insert(id);
            if let Some(file) = (src.read)(&id).map_err(LoadError::Repo)? {
                superseded.extend(file.supersedes.iter().copied());
                builder.add(id, file).map_err(cache_err)?;
            }
        }
        let (keep, stale): (Vec<Segment>, Vec<Segment>) = chosen
            .into_iter()
            .partition(|s| s.header.valid_under(&superseded));
        chosen = keep;
        if stale.is_empty() {
            break;
        }
        for s in stale {
            for id in s.header.files() {
                accounted.remove(id);
            }
            retired.push(s.header.path.clone());
        }
    }
    if let Some(h) = builder
        .finish(&superseded, src.mac_key, &src.repo)
        .map_err(cache_err)?
    {
        let s = Segment::open(h, src.mac_key, &src.repo).map_err(|e| match e {
            SegmentError::Invalid(why) => LoadError::Cache(Error::Internal(format!(
                "fresh index segment fails to verify: {why}"
            ))),
            SegmentError::Io(e) => LoadError::Cache(e),
        })?;
        chosen.push(s);
    }
    for p in retired {
        discard(&p, "redundant or outdated");
    }
    let segments = compact(dir, chosen, src.mac_key, &src.repo).map_err(cache_err)?;
    Ok(Index::from_segments(segments))
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

fn segment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name();
        if name.to_string_lossy().ends_with(SEGMENT_SUFFIX) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Temporary files of runs that crashed more than a day ago.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let day = std::time::Duration::from_secs(24 * 3600);
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > day);
        if old && e.file_name().to_string_lossy().starts_with("tmp-") {
            discard(&e.path(), "left by an interrupted run");
        }
    }
}

/// A temporary file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn sort_entries(v: &mut [Entry]) {
    v.sort_unstable_by_key(|e| (e.id, e.pack));
}

/// Collects the entries of index files and writes them as one sorted segment.
struct Builder<'a> {
    dir: &'a Path,
    run_records: usize,
    buf: Vec<Entry>,
    runs: Vec<TempFile>,
    entries: u64,
    /// Every pack read, numbered in reading order, with the number of its index file.
    packs: Vec<(PackInfo, u32)>,
    /// Index files read, with what they supersede.
    files: Vec<(IndexId, Vec<IndexId>)>,
}

impl<'a> Builder<'a> {
    fn new(dir: &'a Path, run_records: usize) -> Builder<'a> {
        Builder {
            dir,
            run_records: run_records.max(1),
            buf: Vec::new(),
            runs: Vec::new(),
            entries: 0,
            packs: Vec::new(),
            files: Vec::new(),
        }
    }

    fn add(&mut self, id: IndexId, file: IndexFile) -> Result<()> {
        let file_no = self.files.len() as u32;
        self.files.push((id, file.supersedes));
        for p in file.packs {
            let pack_no = u32::try_from(self.packs.len())
                .ok()
                .filter(|&n| n != DROPPED)
                .ok_or_else(|| Error::Internal("too many packs for one index segment".into()))?;
            self.packs.push((
                PackInfo {
                    id: p.id,
                    size: p.size,
                    epoch: p.epoch,
                    cipher_code: p.cipher_code,
                },
                file_no,
            ));
            for b in &p.blobs {
                self.buf.push(Entry::new(pack_no, b));
                self.entries += 1;
                if self.buf.len() >= self.run_records {
                    self.spill()?;
                }
            }
        }
        Ok(())
    }

    /// Sort the buffered entries and write them to a run file.
    fn spill(&mut self) -> Result<()> {
        sort_entries(&mut self.buf);
        let run = TempFile(self.dir.join(random_name("tmp-run-", "")));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&run.0)
            .map_err(|e| Error::io(&run.0, e))?;
        let mut w = BufWriter::with_capacity(1 << 16, file);
        for e in self.buf.drain(..) {
            w.write_all(&e.encode()).map_err(|e| Error::io(&run.0, e))?;
        }
        w.flush().map_err(|e| Error::io(&run.0, e))?;
        self.runs.push(run);
        Ok(())
    }

    /// Write the segment (None if no index file was read).
    fn finish(
        mut self,
        superseded: &HashSet<IndexId>,
        mac_key: &[u8; 32],
        repo: &RepoId,
    ) -> Result<Option<SegmentHeader>> {
        if self.files.is_empty() {
            return Ok(None);
        }
        let keep_file: Vec<bool> = self
            .files
            .iter()
            .map(|(id, _)| !superseded.contains(id))
            .collect();
        let (covered, dead): (Vec<IndexId>, Vec<IndexId>) = self
            .files
            .iter()
            .map(|(id, _)| *id)
            .partition(|id| !superseded.contains(id));
        let mut supersedes: Vec<IndexId> = self
            .files
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        supersedes.sort();
        supersedes.dedup();
        // Final pack table: packs of kept files, sorted by id, each once.
        let mut order: Vec<usize> = (0..self.packs.len())
            .filter(|&i| keep_file[self.packs[i].1 as usize])
            .collect();
        order.sort_by_key(|&i| (self.packs[i].0.id, i));
        let mut map = vec![DROPPED; self.packs.len()];
        let mut table: Vec<PackInfo> = Vec::new();
        for i in order {
            let p = self.packs[i].0;
            if table.last().map(|l| l.id) != Some(p.id) {
                table.push(p);
            }
            map[i] = (table.len() - 1) as u32;
        }
        sort_entries(&mut self.buf);
        let mut sources: Vec<Box<dyn Iterator<Item = Result<Entry>> + '_>> = Vec::new();
        for run in &self.runs {
            sources.push(Box::new(read_run(&run.0)?));
        }
        sources.push(Box::new(self.buf.iter().copied().map(Ok)));
        let maps = vec![map.as_slice(); sources.len()];
        let files = Accounting {
            covered,
            dead,
            supersedes,
        };
        let target = SegmentTarget {
            dir: self.dir,
            mac_key,
            repo,
        };
        target
            .write(&files, &table, self.entries, sources, &maps)
            .map(Some)
    }
}

/// Where and for which repository a new segment is written.
struct SegmentTarget<'a> {
    dir: &'a Path,
    mac_key: &'a [u8; 32],
    repo: &'a RepoId,
}

impl SegmentTarget<'_> {
    /// Merge `sources` (sorted; pack numbers translated by `maps`) into a new segment
    /// listing `table`, publish it and return its header.
    fn write<'s>(
        &self,
        files: &Accounting,
        table: &[PackInfo],
        max_records: u64,
        sources: Vec<Box<dyn Iterator<Item = Result<Entry>> + 's>>,
        maps: &[&[u32]],
    ) -> Result<SegmentHeader> {
        let tmp = TempFile(self.dir.join(random_name("tmp-seg-", "")));
        let mut w =
            SegmentWriter::create(&tmp.0, self.mac_key, self.repo, files, table, max_records)?;
        merge_sorted(sources, maps, |e| w.push(&e))?;
        w.finish()?;
        publish(self.dir, tmp, self.repo)
    }
}

fn read_run(path: &Path) -> Result<impl Iterator<Item = Result<Entry>>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = BufReader::with_capacity(1 << 16, file);
    let path = path.to_path_buf();
    Ok(std::iter::from_fn(move || {
        let mut rec = [0u8; RECORD_LEN];
        match r.read_exact(&mut rec) {
            Ok(()) => Some(Entry::decode(&rec).ok_or_else(|| {
                Error::Internal(format!("bad record in run file {}", path.display()))
            })),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
            Err(e) => Some(Err(Error::io(&path, e))),
        }
    }))
}

/// Rename a finished temporary segment to its final name and read back its header.
fn publish(dir: &Path, tmp: TempFile, repo: &RepoId) -> Result<SegmentHeader> {
    let path = dir.join(random_name("", SEGMENT_SUFFIX));
    std::fs::rename(&tmp.0, &path).map_err(|e| Error::io(&path, e))?;
    std::mem::forget(tmp);
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    segment::read_header(&path, repo).map_err(|e| match e {
        SegmentError::Invalid(why) => Error::Internal(format!("fresh index segment: {why}")),
        SegmentError::Io(e) => e,
    })
}

/// Heap item of the k-way merge: smallest id first, then lowest source, then lowest pack.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Head {
    id: snapguard_format::BlobId,
    source: usize,
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    flags: u8,
}

/// Merge sorted entry streams into `sink` in id order, each id once. Pack numbers are
/// translated through `maps[source]`; entries whose pack maps to [`DROPPED`] are skipped.
/// For equal ids the entry of the lowest source (then the lowest pack number) wins.
fn merge_sorted<'s>(
    mut sources: Vec<Box<dyn Iterator<Item = Result<Entry>> + 's>>,
    maps: &[&[u32]],
    mut sink: impl FnMut(Entry) -> Result<()>,
) -> Result<()> {
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<Reverse<Head>>, source: usize, e: Entry| {
        heap.push(Reverse(Head {
            id: e.id,
            source,
            pack: e.pack,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
            flags: e.flags,
        }))
    };
    for (i, s) in sources.iter_mut().enumerate() {
        if let Some(e) = s.next() {
            push(&mut heap, i, e?);
        }
    }
    let mut last = None;
    while let Some(Reverse(h)) = heap.pop() {
        if let Some(e) = sources[h.source].next() {
            push(&mut heap, h.source, e?);
        }
        let pack = maps[h.source]
            .get(h.pack as usize)
            .copied()
            .ok_or_else(|| Error::Internal("index entry names an unknown pack".into()))?;
        if pack == DROPPED || last == Some(h.id) {
            continue;
        }
        last = Some(h.id);
        sink(Entry {
            id: h.id,
            pack,
            offset: h.offset,
            length: h.length,
            raw_length: h.raw_length,
            flags: h.flags,
        })?;
    }
    Ok(())
}

/// Merge segments so that each is at least twice as big as all younger ones together (and at
/// most [`MAX_SEGMENTS`] remain): O(log n) segments, each entry rewritten O(log n) times.
fn compact(
    dir: &Path,
    mut segs: Vec<Segment>,
    mac_key: &[u8; 32],
    repo: &RepoId,
) -> Result<Vec<Segment>> {
    loop {
        segs.sort_by_key(|s| Reverse(s.blob_count()));
        let n = segs.len();
        if n < 2 {
            return Ok(segs);
        }
        let mut start = n - 1;
        let mut tail = segs[n - 1].blob_count();
        while start > 0 && (tail * 2 >= segs[start - 1].blob_count() || start + 1 > MAX_SEGMENTS) {
            start -= 1;
            tail += segs[start].blob_count();
        }
        if start == n - 1 {
            return Ok(segs);
        }
        let inputs = segs.split_off(start);
        let merged = merge_segments(dir, &inputs, mac_key, repo)?;
        let merged = Segment::open(merged, mac_key, repo).map_err(|e| match e {
            SegmentError::Invalid(why) => Error::Internal(format!("merged index segment: {why}")),
            SegmentError::Io(e) => e,
        })?;
        for s in &inputs {
            discard(&s.header.path, "merged into a bigger segment");
        }
        segs.push(merged);
    }
}

fn merge_segments(
    dir: &Path,
    inputs: &[Segment],
    mac_key: &[u8; 32],
    repo: &RepoId,
) -> Result<SegmentHeader> {
    let mut ids: Vec<PackId> = inputs
        .iter()
        .flat_map(|s| s.packs().iter().map(|p| p.id))
        .collect();
    ids.sort();
    ids.dedup();
    let position: HashMap<PackId, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();
    let mut table: Vec<Option<PackInfo>> = vec![None; ids.len()];
    let maps: Vec<Vec<u32>> = inputs
        .iter()
        .map(|s| {
            s.packs()
                .iter()
                .map(|p| {
                    let at = position[&p.id];
                    table[at as usize].get_or_insert(*p);
                    at
                })
                .collect()
        })
        .collect();
    let table: Vec<PackInfo> = table.into_iter().flatten().collect();
    let covered: Vec<IndexId> = inputs
        .iter()
        .flat_map(|s| s.header.covered.iter().copied())
        .collect();
    let dead: Vec<IndexId> = inputs
        .iter()
        .flat_map(|s| s.header.dead.iter().copied())
        .collect();
    let mut supersedes: Vec<IndexId> = inputs
        .iter()
        .flat_map(|s| s.header.supersedes.iter().copied())
        .collect();
    supersedes.sort();
    supersedes.dedup();
    let total = inputs.iter().map(|s| s.blob_count()).sum();
    let mut sources: Vec<Box<dyn Iterator<Item = Result<Entry>> + '_>> = Vec::new();
    for s in inputs {
        sources.push(Box::new(s.records()?));
    }
    let maps: Vec<&[u32]> = maps.iter().map(|m| m.as_slice()).collect();
    let files = Accounting {
        covered,
        dead,
        supersedes,
    };
    SegmentTarget { dir, mac_key, repo }.write(&files, &table, total, sources, &maps)
}

#[cfg(test)]
mod tests;
