//! Incremental chunking of input that arrives in pieces.
//!
//! [`StreamChunker`] buffers bytes the caller has read (it performs no I/O
//! itself) and hands back each chunk as soon as its end is certain. The
//! chunks are byte-for-byte those [`Chunker::chunk_lengths`] would produce on
//! the concatenated input, however the input was split into pieces. Each
//! input byte is hashed once: after an inconclusive scan the search resumes
//! where it stopped, which is exact because the gear hash only depends on the
//! last 64 bytes.

use crate::chunker::Chunker;

/// Push-based chunker that owns its buffer.
#[derive(Debug, Clone)]
pub struct StreamChunker {
    chunker: Chunker,
    /// Bytes of the current, still incomplete chunk (and possibly more).
    buf: Vec<u8>,
    /// Candidate lengths below this were already checked without a cut.
    checked: usize,
}

impl StreamChunker {
    /// Starts a stream with an empty buffer.
    pub fn new(chunker: Chunker) -> Self {
        StreamChunker {
            chunker,
            buf: Vec::new(),
            checked: 0,
        }
    }

    /// The underlying chunker.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// Number of bytes held back because their chunk is not complete yet
    /// (always below `max_size` after [`StreamChunker::push`] returns).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes read by the caller and returns the chunks completed so
    /// far, in order (possibly none).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(bytes);
        self.drain(false)
    }

    /// Ends the input and returns the remaining bytes as final chunk(s);
    /// only the very last one may be shorter than `min_size`.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.drain(true)
    }

    fn drain(&mut self, eof: bool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < self.buf.len() {
            let rest = &self.buf[pos..];
            match self.chunker.boundary_from(rest, eof, self.checked) {
                Some(len) => {
                    out.push(rest[..len].to_vec());
                    pos += len;
                    self.checked = 0;
                }
                None => {
                    // Every length up to min(len, max) was checked.
                    let max = self.chunker.params().max_size;
                    self.checked = rest.len().min(max) + 1;
                    break;
                }
            }
        }
        // Each byte is moved at most once: the next drain that removes
        // anything removes it as part of its own chunk.
        self.buf.drain(..pos);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{gear, random_bytes, small_params};

    #[test]
    fn byte_at_a_time_matches_whole_buffer() {
        let c = Chunker::new(gear(21), small_params()).expect("valid params");
        let data = random_bytes(22, 20_000);
        let want: Vec<&[u8]> = c.chunks(&data).collect();
        let mut s = StreamChunker::new(c.clone());
        let mut got = Vec::new();
        for b in &data {
            got.extend(s.push(std::slice::from_ref(b)));
            assert!(s.buffered() < 1024);
        }
        got.extend(s.finish());
        assert_eq!(got, want);
    }

    #[test]
    fn empty_stream_and_empty_pushes() {
        let c = Chunker::new(gear(1), small_params()).expect("valid params");
        let mut s = StreamChunker::new(c);
        assert!(s.push(&[]).is_empty());
        assert!(s.finish().is_empty());
    }

    #[test]
    fn chunks_are_emitted_as_soon_as_certain() {
        let c = Chunker::new(gear(2), small_params()).expect("valid params");
        let data = random_bytes(3, 5000);
        let first = c.next_boundary(&data, false).expect("5000 > max");
        let mut s = StreamChunker::new(c);
        assert!(s.push(&data[..first - 1]).is_empty());
        let out = s.push(&data[first - 1..first]);
        assert_eq!(out, vec![data[..first].to_vec()]);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn short_stream_is_one_chunk() {
        let c = Chunker::new(gear(2), small_params()).expect("valid params");
        let mut s = StreamChunker::new(c);
        assert!(s.push(b"hello").is_empty());
        assert!(s.push(b" world").is_empty());
        assert_eq!(s.finish(), vec![b"hello world".to_vec()]);
    }
}
