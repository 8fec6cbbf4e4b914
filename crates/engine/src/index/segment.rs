//! One on-disk index segment: blob locations sorted by blob id, with a fan-out table and a
//! Bloom filter that stay in memory, and a keyed MAC over the whole file.
//!
//! Layout (all integers little-endian; see docs/design/index-cache.md):
//!
//! ```text
//! header    72 B   magic "SGIXSEG1", version u32, fanout_bits u32, bloom_blocks u32,
//!                  pack_count u32, covered_count u32, dead_count u32, supersedes_count u32,
//!                  repo id [32], 4 zero bytes
//! covered   32 B × covered_count     index files whose entries this segment holds
//! dead      32 B × dead_count        index files read but superseded (no entries here)
//! supersedes 32 B × supersedes_count index files that the covered and dead files supersede
//! packs     48 B × pack_count        id, size u64, epoch u32, cipher u8, 3 zero bytes; sorted by id
//! records   52 B × n                 blob id, pack number u32, offset u32, length u32,
//!                                    raw length u32, flags u8 (1 tree, 2 zstd), 3 zero bytes;
//!                                    sorted by blob id, ids unique
//! fanout    4 B × (2^fanout_bits + 1) records whose id's top bits are below each bucket
//! bloom     64 B × bloom_blocks
//! footer    n u64, MAC [32] = keyed BLAKE3 over everything before it
//! ```
//!
//! Only the header, id lists, pack table, fan-out table and filter are kept in memory (about
//! 1.25 bytes per blob plus 48 bytes per pack); a lookup that passes the filter reads one
//! fan-out bucket (a few KiB) with `pread`.

use super::bloom::Bloom;
use super::{BlobLocation, PackInfo};
use crate::{Error, Result};
use snapguard_format::{BlobId, BlobType, Compression, IndexId, PackBlob, PackId, RepoId};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SGIXSEG1";
const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: u64 = 72;
const PACK_LEN: u64 = 48;
pub(crate) const RECORD_LEN: usize = 52;
const FOOTER_LEN: u64 = 8 + 32;
/// Target records per fan-out bucket (one `pread` of about 3 KiB per lookup).
const BUCKET_TARGET: u64 = 64;
const MAX_FANOUT_BITS: u32 = 16;

/// One blob location with the pack given by its number in a pack table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: BlobId,
    pub pack: u32,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    pub flags: u8,
}

impl Entry {
    pub fn new(pack: u32, b: &PackBlob) -> Entry {
        let mut flags = 0;
        if b.kind == BlobType::Tree {
            flags |= 1;
        }
        if b.compression == Compression::Zstd {
            flags |= 2;
        }
        Entry {
            id: b.id,
            pack,
            offset: b.offset,
            length: b.length,
            raw_length: b.raw_length,
            flags,
        }
    }

    pub fn blob(&self) -> PackBlob {
        PackBlob {
            id: self.id,
            kind: if self.flags & 1 != 0 {
                BlobType::Tree
            } else {
                BlobType::Data
            },
            offset: self.offset,
            length: self.length,
            raw_length: self.raw_length,
            compression: if self.flags & 2 != 0 {
                Compression::Zstd
            } else {
                Compression::None
            },
        }
    }

    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut r = [0u8; RECORD_LEN];
        r[..32].copy_from_slice(&self.id.0);
        r[32..36].copy_from_slice(&self.pack.to_le_bytes());
        r[36..40].copy_from_slice(&self.offset.to_le_bytes());
        r[40..44].copy_from_slice(&self.length.to_le_bytes());
        r[44..48].copy_from_slice(&self.raw_length.to_le_bytes());
        r[48] = self.flags;
        r
    }

    pub fn decode(r: &[u8]) -> Option<Entry> {
        if r.len() != RECORD_LEN || r[48] & !3 != 0 || r[49..] != [0, 0, 0] {
            return None;
        }
        let u = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&r[..32]);
        Some(Entry {
            id: BlobId(id),
            pack: u(32),
            offset: u(36),
            length: u(40),
            raw_length: u(44),
            flags: r[48],
        })
    }
}

fn encode_pack(p: &PackInfo) -> [u8; PACK_LEN as usize] {
    let mut r = [0u8; PACK_LEN as usize];
    r[..32].copy_from_slice(&p.id.0);
    r[32..40].copy_from_slice(&p.size.to_le_bytes());
    r[40..44].copy_from_slice(&p.epoch.to_le_bytes());
    r[44] = p.cipher_code;
    r
}

fn decode_pack(r: &[u8]) -> PackInfo {
    let mut id = [0u8; 32];
    id.copy_from_slice(&r[..32]);
    let mut size = [0u8; 8];
    size.copy_from_slice(&r[32..40]);
    PackInfo {
        id: PackId(id),
        size: u64::from_le_bytes(size),
        epoch: u32::from_le_bytes([r[40], r[41], r[42], r[43]]),
        cipher_code: r[44],
    }
}

/// Fan-out bits for about `n` records.
pub(crate) fn fanout_bits(n: u64) -> u32 {
    let buckets = n.div_ceil(BUCKET_TARGET).max(1);
    (u64::BITS - (buckets - 1).leading_zeros()).min(MAX_FANOUT_BITS)
}

fn bucket_of(id: &BlobId, bits: u32) -> usize {
    if bits == 0 {
        return 0;
    }
    let top = u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]);
    (top >> (32 - bits)) as usize
}

/// What a segment covers, readable without verifying the whole file.
#[derive(Debug, Clone)]
pub(crate) struct SegmentHeader {
    pub path: PathBuf,
    pub covered: Vec<IndexId>,
    pub dead: Vec<IndexId>,
    pub supersedes: Vec<IndexId>,
    /// Records, from the file size (trusted only after [`Segment::open`] verified the MAC).
    pub blobs: u64,
}

impl SegmentHeader {
    /// Every index file the segment accounts for, with entries or without.
    pub fn files(&self) -> impl Iterator<Item = &IndexId> {
        self.covered.iter().chain(&self.dead)
    }

    /// Whether the segment's contents are right when exactly `superseded` are superseded.
    pub fn valid_under(&self, superseded: &std::collections::HashSet<IndexId>) -> bool {
        !self.covered.iter().any(|id| superseded.contains(id))
            && self.dead.iter().all(|id| superseded.contains(id))
    }
}

/// The index files a segment accounts for (see [`SegmentHeader`]).
pub(crate) struct Accounting {
    pub covered: Vec<IndexId>,
    pub dead: Vec<IndexId>,
    pub supersedes: Vec<IndexId>,
}

/// Writes a segment from records in ascending id order.
pub(crate) struct SegmentWriter {
    out: BufWriter<File>,
    mac: blake3::Hasher,
    path: PathBuf,
    bits: u32,
    fanout: Vec<u32>,
    bloom: Bloom,
    count: u64,
    pack_count: u32,
    last: Option<BlobId>,
}

impl SegmentWriter {
    /// Start a segment at `path` (a temporary name; the caller renames it into place after
    /// [`SegmentWriter::finish`]). `max_records` bounds the records to come (sizes the filter).
    pub fn create(
        path: &Path,
        mac_key: &[u8; 32],
        repo: &RepoId,
        files: &Accounting,
        packs: &[PackInfo],
        max_records: u64,
    ) -> Result<SegmentWriter> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let bits = fanout_bits(max_records);
        let bloom = Bloom::with_capacity(max_records);
        let pack_count = u32::try_from(packs.len())
            .map_err(|_| Error::Internal("more than 2^32 packs in one index segment".into()))?;
        let mut w = SegmentWriter {
            out: BufWriter::with_capacity(1 << 16, file),
            mac: blake3::Hasher::new_keyed(mac_key),
            path: path.to_path_buf(),
            bits,
            fanout: vec![0; (1usize << bits) + 1],
            bloom,
            count: 0,
            pack_count,
            last: None,
        };
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&bits.to_le_bytes());
        header[16..20].copy_from_slice(&w.bloom.blocks().to_le_bytes());
        header[20..24].copy_from_slice(&pack_count.to_le_bytes());
        header[24..28].copy_from_slice(&(files.covered.len() as u32).to_le_bytes());
        header[28..32].copy_from_slice(&(files.dead.len() as u32).to_le_bytes());
        header[32..36].copy_from_slice(&(files.supersedes.len() as u32).to_le_bytes());
        header[36..68].copy_from_slice(&repo.0);
        w.put(&header)?;
        for id in files
            .covered
            .iter()
            .chain(&files.dead)
            .chain(&files.supersedes)
        {
            w.put(&id.0)?;
        }
        let mut last: Option<PackId> = None;
        for p in packs {
            if last.is_some_and(|l| l >= p.id) {
                return Err(Error::Internal("index segment packs out of order".into()));
            }
            last = Some(p.id);
            w.put(&encode_pack(p))?;
        }
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.mac.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Append the next record; ids must be strictly ascending.
    pub fn push(&mut self, e: &Entry) -> Result<()> {
        if self.last.is_some_and(|l| l >= e.id) || e.pack >= self.pack_count {
            return Err(Error::Internal(
                "index segment records out of order or with an unknown pack".into(),
            ));
        }
        self.last = Some(e.id);
        self.fanout[bucket_of(&e.id, self.bits) + 1] += 1;
        self.bloom.insert(&e.id);
        self.count += 1;
        self.put(&e.encode())
    }

    /// Write the fan-out table, filter and footer, and make the file durable.
    pub fn finish(mut self) -> Result<u64> {
        for i in 1..self.fanout.len() {
            self.fanout[i] += self.fanout[i - 1];
        }
        let fanout: Vec<u8> = self.fanout.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.put(&fanout)?;
        let bloom = std::mem::replace(&mut self.bloom, Bloom::empty(0));
        bloom.for_each_slice(|b| self.put(b))?;
        let count = self.count.to_le_bytes();
        self.put(&count)?;
        let mac = *self.mac.finalize().as_bytes();
        self.out
            .write_all(&mac)
            .map_err(|e| Error::io(&self.path, e))?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.path, e))?;
        Ok(self.count)
    }
}

struct Layout {
    bits: u32,
    bloom_blocks: u32,
    pack_count: u32,
    covered: u32,
    dead: u32,
    supersedes: u32,
}

impl Layout {
    fn parse(
        header: &[u8; HEADER_LEN as usize],
        repo: &RepoId,
    ) -> std::result::Result<Layout, String> {
        let u =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        if &header[..8] != MAGIC {
            return Err("not an index segment".into());
        }
        if u(8) != VERSION {
            return Err(format!("unknown segment version {}", u(8)));
        }
        if header[36..68] != repo.0 || header[68..72] != [0; 4] {
            return Err("belongs to another repository".into());
        }
        let l = Layout {
            bits: u(12),
            bloom_blocks: u(16),
            pack_count: u(20),
            covered: u(24),
            dead: u(28),
            supersedes: u(32),
        };
        if l.bits > MAX_FANOUT_BITS || l.bloom_blocks == 0 {
            return Err("bad fan-out or filter size".into());
        }
        Ok(l)
    }

    fn ids_len(&self) -> u64 {
        32 * (u64::from(self.covered) + u64::from(self.dead) + u64::from(self.supersedes))
    }

    fn records_offset(&self) -> u64 {
        HEADER_LEN + self.ids_len() + PACK_LEN * u64::from(self.pack_count)
    }

    fn fanout_len(&self) -> u64 {
        4 * ((1u64 << self.bits) + 1)
    }

    /// Record count implied by the file size.
    fn records(&self, file_len: u64) -> Option<u64> {
        let fixed = self.records_offset()
            + self.fanout_len()
            + Bloom::BLOCK_BYTES * u64::from(self.bloom_blocks)
            + FOOTER_LEN;
        let rest = file_len.checked_sub(fixed)?;
        (rest % RECORD_LEN as u64 == 0).then_some(rest / RECORD_LEN as u64)
    }
}

fn read_ids(file: &File, offset: u64, n: u32, path: &Path) -> Result<Vec<IndexId>> {
    let mut buf = vec![0u8; 32 * n as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| Error::io(path, e))?;
    Ok(buf
        .chunks_exact(32)
        .map(|c| {
            let mut id = [0u8; 32];
            id.copy_from_slice(c);
            IndexId(id)
        })
        .collect())
}

/// Why a segment file is unusable (the caller deletes it and rebuilds what it covered).
#[derive(Debug)]
pub(crate) enum SegmentError {
    /// Not a valid segment of this repository: damaged, foreign, or from another version.
    Invalid(String),
    Io(Error),
}

impl From<Error> for SegmentError {
    fn from(e: Error) -> Self {
        SegmentError::Io(e)
    }
}

/// Read what a segment covers (cheap: the header and two id lists).
pub(crate) fn read_header(
    path: &Path,
    repo: &RepoId,
) -> std::result::Result<SegmentHeader, SegmentError> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)
        .map_err(|_| SegmentError::Invalid("truncated header".into()))?;
    let layout = Layout::parse(&header, repo).map_err(SegmentError::Invalid)?;
    let blobs = layout
        .records(len)
        .ok_or_else(|| SegmentError::Invalid("size does not match its header".into()))?;
    let covered = read_ids(&file, HEADER_LEN, layout.covered, path)?;
    let dead = read_ids(
        &file,
        HEADER_LEN + 32 * u64::from(layout.covered),
        layout.dead,
        path,
    )?;
    let supersedes = read_ids(
        &file,
        HEADER_LEN + 32 * (u64::from(layout.covered) + u64::from(layout.dead)),
        layout.supersedes,
        path,
    )?;
    Ok(SegmentHeader {
        path: path.to_path_buf(),
        covered,
        dead,
        supersedes,
        blobs,
    })
}

/// An opened, verified segment.
#[derive(Debug)]
pub(crate) struct Segment {
    file: File,
    path: PathBuf,
    pub header: SegmentHeader,
    packs: Vec<PackInfo>,
    records_offset: u64,
    bits: u32,
    fanout: Vec<u32>,
    bloom: Bloom,
}

impl Segment {
    /// Open a segment and verify its MAC (one sequential read of the file; only the fan-out
    /// table, filter and pack table are kept).
    pub fn open(
        header: SegmentHeader,
        mac_key: &[u8; 32],
        repo: &RepoId,
    ) -> std::result::Result<Segment, SegmentError> {
        let path = header.path.clone();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let mut mac = blake3::Hasher::new_keyed(mac_key);
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let invalid = |what: &str| SegmentError::Invalid(what.to_string());
        let mut head = [0u8; HEADER_LEN as usize];
        reader
            .read_exact(&mut head)
            .map_err(|_| invalid("truncated header"))?;
        mac.update(&head);
        let layout = Layout::parse(&head, repo).map_err(SegmentError::Invalid)?;
        let n = layout
            .records(len)
            .ok_or_else(|| invalid("size does not match its header"))?;
        let mut take = |reader: &mut BufReader<&File>,
                        len: u64|
         -> std::result::Result<Vec<u8>, SegmentError> {
            let mut buf = vec![0u8; len as usize];
            reader
                .read_exact(&mut buf)
                .map_err(|e| SegmentError::Io(Error::io(&path, e)))?;
            mac.update(&buf);
            Ok(buf)
        };
        take(&mut reader, layout.ids_len())?;
        let packs: Vec<PackInfo> = take(&mut reader, PACK_LEN * u64::from(layout.pack_count))?
            .chunks_exact(PACK_LEN as usize)
            .map(decode_pack)
            .collect();
        // Stream the records through the MAC without keeping them.
        let mut left = n * RECORD_LEN as u64;
        while left > 0 {
            let chunk = left.min(1 << 20);
            take(&mut reader, chunk)?;
            left -= chunk;
        }
        let fanout: Vec<u32> = take(&mut reader, layout.fanout_len())?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // The filter is the biggest table kept; read it in slices so that it is never in
        // memory twice.
        let mut bloom = Bloom::empty(layout.bloom_blocks as usize);
        let mut left = u64::from(layout.bloom_blocks);
        while left > 0 {
            let blocks = left.min(1 << 14);
            bloom.extend_from_bytes(&take(&mut reader, Bloom::BLOCK_BYTES * blocks)?);
            left -= blocks;
        }
        let count = take(&mut reader, 8)?;
        let mut expected = [0u8; 32];
        reader
            .read_exact(&mut expected)
            .map_err(|_| invalid("truncated footer"))?;
        if !macs_equal(mac.finalize().as_bytes(), &expected) {
            return Err(invalid(
                "MAC mismatch (damaged, or not written with this repository's keys)",
            ));
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(&count);
        if u64::from_le_bytes(c) != n
            || fanout.windows(2).any(|w| w[0] > w[1])
            || fanout.last().map(|&v| u64::from(v)) != Some(n)
            || packs.windows(2).any(|w| w[0].id >= w[1].id)
        {
            return Err(invalid("inconsistent tables"));
        }
        Ok(Segment {
            file,
            path,
            records_offset: layout.records_offset(),
            bits: layout.bits,
            header,
            packs,
            fanout,
            bloom,
        })
    }

    pub fn blob_count(&self) -> u64 {
        self.header.blobs
    }

    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    pub fn pack(&self, id: &PackId) -> Option<&PackInfo> {
        self.packs
            .binary_search_by(|p| p.id.cmp(id))
            .ok()
            .map(|i| &self.packs[i])
    }

    fn corrupt(&self, detail: &str) -> Error {
        Error::corrupt(
            format!("index cache segment {}", self.path.display()),
            format!("{detail}; delete the file and run the command again"),
        )
    }

    /// Where `id` is, if this segment lists it.
    pub fn get(&self, id: &BlobId) -> Result<Option<BlobLocation>> {
        if !self.bloom.contains(id) {
            return Ok(None);
        }
        let b = bucket_of(id, self.bits);
        let (lo, hi) = (self.fanout[b] as u64, self.fanout[b + 1] as u64);
        if lo == hi {
            return Ok(None);
        }
        let mut buf = vec![0u8; ((hi - lo) as usize) * RECORD_LEN];
        self.file
            .read_exact_at(&mut buf, self.records_offset + lo * RECORD_LEN as u64)
            .map_err(|e| Error::io(&self.path, e))?;
        let Some(r) = find_record(&buf, id) else {
            return Ok(None);
        };
        let e = Entry::decode(r).ok_or_else(|| self.corrupt("bad record"))?;
        let pack = self
            .packs
            .get(e.pack as usize)
            .ok_or_else(|| self.corrupt("record names an unknown pack"))?;
        Ok(Some(BlobLocation {
            pack: pack.id,
            epoch: pack.epoch,
            cipher_code: pack.cipher_code,
            blob: e.blob(),
        }))
    }

    /// All records in id order, read sequentially (for merging segments).
    pub fn records(&self) -> Result<impl Iterator<Item = Result<Entry>> + '_> {
        let mut reader = BufReader::with_capacity(1 << 18, &self.file);
        std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(self.records_offset))
            .map_err(|e| Error::io(&self.path, e))?;
        let mut left = self.header.blobs;
        Ok(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut r = [0u8; RECORD_LEN];
            Some(match reader.read_exact(&mut r) {
                Err(e) => Err(Error::io(&self.path, e)),
                Ok(()) => Entry::decode(&r).ok_or_else(|| self.corrupt("bad record")),
            })
        }))
    }
}

/// Binary search of records sorted by id.
fn find_record<'a>(buf: &'a [u8], id: &BlobId) -> Option<&'a [u8]> {
    let record = |i: usize| &buf[i * RECORD_LEN..(i + 1) * RECORD_LEN];
    let (mut a, mut b) = (0, buf.len() / RECORD_LEN);
    while a < b {
        let mid = a + (b - a) / 2;
        match record(mid)[..32].cmp(&id.0[..]) {
            std::cmp::Ordering::Less => a = mid + 1,
            std::cmp::Ordering::Greater => b = mid,
            std::cmp::Ordering::Equal => return Some(record(mid)),
        }
    }
    None
}

/// Constant-time comparison of two MACs (`blake3::Hash` compares in constant time).
fn macs_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    blake3::Hash::from_bytes(*a) == blake3::Hash::from_bytes(*b)
}
