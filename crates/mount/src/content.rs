//! Reading a file's content: map a byte range onto the file's parts (data blobs and holes),
//! answer `SEEK_DATA`/`SEEK_HOLE`, and decide what to read ahead.
//!
//! Holes read as zeros without touching the repository. Read-ahead is per open file: when
//! reads continue where the previous one ended (allowing for the kernel's own read-ahead
//! issuing a few requests out of order), the blobs covering the next
//! `StoreOptions::readahead_bytes` are requested from the read-ahead workers.

use crate::store::{Readahead, Store};
use snapguard_engine::Result;
use snapguard_format::{ContentPart, Node};
use std::sync::{Arc, Mutex};

/// Reads within this distance of the previous read's end count as sequential: with several
/// FUSE threads, the kernel's read-ahead requests can arrive slightly out of order.
const SEQUENTIAL_SLACK: u64 = 8 << 20;

/// Where each part of a file starts.
pub(crate) struct Layout {
    pub node: Arc<Node>,
    /// `starts[i]` is the offset of `node.content[i]`; one more entry holds the size.
    starts: Vec<u64>,
}

impl Layout {
    pub fn new(node: Arc<Node>) -> Layout {
        let mut starts = Vec::with_capacity(node.content.len() + 1);
        let mut off = 0u64;
        for p in &node.content {
            starts.push(off);
            off = off.saturating_add(p.len());
        }
        starts.push(off);
        Layout { node, starts }
    }

    pub fn size(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Index of the part holding byte `off` (`off` < size).
    fn part_at(&self, off: u64) -> usize {
        // The last start <= off; parts of length 0 are skipped over by taking the last.
        self.starts[..self.starts.len() - 1]
            .partition_point(|&s| s <= off)
            .saturating_sub(1)
    }

    /// Bytes `[offset, offset + len)` (clipped to the size), fetching blobs through `store`.
    pub fn read(&self, store: &Store, offset: u64, len: u32) -> Result<Vec<u8>> {
        let end = offset.saturating_add(u64::from(len)).min(self.size());
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut i = self.part_at(offset);
        let mut pos = offset;
        while pos < end {
            let (start, part) = (self.starts[i], &self.node.content[i]);
            let part_end = start + part.len();
            let take_end = part_end.min(end);
            if take_end > pos {
                let (a, b) = ((pos - start) as usize, (take_end - start) as usize);
                match part {
                    ContentPart::Data { id, len } => {
                        let blob = store.blob(id, *len)?;
                        out.extend_from_slice(&blob[a..b]);
                    }
                    ContentPart::Hole { .. } => out.resize(out.len() + (b - a), 0),
                }
                pos = take_end;
            }
            i += 1;
        }
        Ok(out)
    }

    /// `lseek(SEEK_DATA)`: the first offset >= `off` holding data, None (ENXIO) if none.
    pub fn seek_data(&self, off: u64) -> Option<u64> {
        if off >= self.size() {
            return None;
        }
        (self.part_at(off)..self.node.content.len()).find_map(|i| match self.node.content[i] {
            ContentPart::Data { len, .. } if len > 0 => Some(self.starts[i].max(off)),
            _ => None,
        })
    }

    /// `lseek(SEEK_HOLE)`: the first offset >= `off` in a hole; the end of the file counts as
    /// a hole. None (ENXIO) if `off` is at or past the end.
    pub fn seek_hole(&self, off: u64) -> Option<u64> {
        if off >= self.size() {
            return None;
        }
        let hole =
            (self.part_at(off)..self.node.content.len()).find_map(|i| match self.node.content[i] {
                ContentPart::Hole { len } if len > 0 => Some(self.starts[i].max(off)),
                _ => None,
            });
        Some(hole.unwrap_or(self.size()))
    }
}

/// State of one open file.
pub(crate) struct OpenFile {
    pub layout: Layout,
    seq: Mutex<Sequence>,
}

#[derive(Default)]
struct Sequence {
    /// Where the previous read ended.
    next: u64,
    /// Parts before this index have already been requested for read-ahead.
    requested_to: usize,
}

impl OpenFile {
    pub fn new(node: Arc<Node>) -> OpenFile {
        OpenFile {
            layout: Layout::new(node),
            seq: Mutex::new(Sequence::default()),
        }
    }

    /// Read `[offset, offset+len)`, first asking the read-ahead workers for what follows if
    /// the reads are sequential.
    pub fn read(
        &self,
        store: &Store,
        readahead: &Readahead,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>> {
        self.plan_readahead(store, readahead, offset, len);
        self.layout.read(store, offset, len)
    }

    fn plan_readahead(&self, store: &Store, readahead: &Readahead, offset: u64, len: u32) {
        let size = self.layout.size();
        if size == 0 || offset >= size {
            return;
        }
        let end = offset.saturating_add(u64::from(len)).min(size);
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        let sequential = offset.abs_diff(seq.next) <= SEQUENTIAL_SLACK;
        seq.next = seq.next.max(end);
        if !sequential {
            // A jump: follow the reader from here on, but do not fetch ahead until it reads on.
            seq.next = end;
            seq.requested_to = self.layout.part_at(end.saturating_sub(1)) + 1;
            return;
        }
        // Parts after the one this read ends in, up to `readahead_bytes` beyond the read.
        let first = (self.layout.part_at(end.saturating_sub(1)) + 1).max(seq.requested_to);
        let limit = end.saturating_add(store.opts.readahead_bytes);
        let mut i = first;
        while i < self.layout.node.content.len() && self.layout.starts[i] < limit {
            if let ContentPart::Data { id, .. } = self.layout.node.content[i] {
                if !store.blob_pending_or_cached(&id) && !readahead.request(id) {
                    // Queue full: try again on the next read.
                    break;
                }
            }
            i += 1;
        }
        seq.requested_to = seq.requested_to.max(i);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use snapguard_format::{BlobId, NodeKind};

    fn layout(parts: &[(bool, u64)]) -> Layout {
        let mut n = Node::new(b"f".to_vec(), NodeKind::File);
        n.content = parts
            .iter()
            .enumerate()
            .map(|(i, &(data, len))| {
                if data {
                    ContentPart::Data {
                        id: BlobId([i as u8; 32]),
                        len: len as u32,
                    }
                } else {
                    ContentPart::Hole { len }
                }
            })
            .collect();
        n.size = parts.iter().map(|p| p.1).sum();
        Layout::new(Arc::new(n))
    }

    #[test]
    fn seek_data_and_hole_follow_the_parts() {
        // hole 0..100, data 100..150, data 150..200, hole 200..300, data 300..310
        let l = layout(&[
            (false, 100),
            (true, 50),
            (true, 50),
            (false, 100),
            (true, 10),
        ]);
        assert_eq!(l.seek_data(0), Some(100));
        assert_eq!(l.seek_data(120), Some(120));
        assert_eq!(l.seek_data(200), Some(300));
        assert_eq!(l.seek_data(309), Some(309));
        assert_eq!(l.seek_data(310), None);
        assert_eq!(l.seek_hole(0), Some(0));
        assert_eq!(
            l.seek_hole(100),
            Some(200),
            "consecutive data parts are one extent"
        );
        assert_eq!(l.seek_hole(250), Some(250));
        assert_eq!(l.seek_hole(300), Some(310), "the end of the file is a hole");
        assert_eq!(l.seek_hole(310), None);
    }

    #[test]
    fn dense_and_empty_files() {
        let l = layout(&[(true, 10)]);
        assert_eq!(l.seek_data(0), Some(0));
        assert_eq!(l.seek_hole(0), Some(10));
        let e = layout(&[]);
        assert_eq!(e.size(), 0);
        assert_eq!(e.seek_data(0), None);
        assert_eq!(e.seek_hole(0), None);
    }

    #[test]
    fn part_lookup_at_boundaries() {
        let l = layout(&[(true, 10), (false, 5), (true, 1)]);
        assert_eq!(l.part_at(0), 0);
        assert_eq!(l.part_at(9), 0);
        assert_eq!(l.part_at(10), 1);
        assert_eq!(l.part_at(14), 1);
        assert_eq!(l.part_at(15), 2);
    }
}
