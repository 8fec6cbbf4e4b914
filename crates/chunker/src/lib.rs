//! Content-defined chunking for SnapGuard: FastCDC over a secret gear table.
//!
//! This crate owns exactly one decision: where a byte stream is cut into
//! chunks. It is pure — no I/O, no clock, no dependencies. It does *not*
//! read files ([`StreamChunker`] is fed by the caller), hash or encrypt chunk
//! contents, or derive the gear table: the caller supplies `[u64; 256]`
//! derived from a repository key, which makes chunk boundaries (and so chunk
//! sizes) secret to anyone without the key.
//!
//! # Algorithm
//!
//! FastCDC (Xia et al., USENIX ATC 2016 / IEEE TC 2020):
//!
//! * **Gear rolling hash** `fp = (fp << 1) + gear[byte]`. A byte's
//!   contribution leaves the 64-bit word after 64 steps, so the hash at a
//!   position is a function of the 64 bytes ending there.
//! * **Cut-point skipping**: no cut is considered before `min_size`. The
//!   hash is reset at every chunk start and hashing begins 63 bytes before
//!   the first candidate (a full window, hence `min_size >= 64`), so a
//!   boundary depends only on the content since the previous cut. An edit
//!   therefore only changes chunks near it.
//! * **Normalized chunking, level 2**: candidate lengths `L <= avg_size` must
//!   pass `fp & MaskS == 0` with `log2(avg) + 2` mask bits (harder), lengths
//!   above must pass `fp & MaskL == 0` with `log2(avg) - 2` bits (easier), and
//!   a chunk is forced at `max_size`. The chunk ends after the byte whose
//!   hash passed.
//! * **Padded masks**: the one-bits of each mask are spread evenly over the
//!   top 48 bits of the hash, bit 63 always included, as FastCDC recommends;
//!   bit `k` of the gear hash depends on the last `k + 1` bytes, so every
//!   tested bit sees at least 17 bytes and the top one all 64.
//!
//! # Chunk sizes
//!
//! Treating each candidate as an independent trial, the expected mean length
//! is `min + Σ_{L=min}^{max-1} P(len > L)`. For [`ChunkerParams::DEFAULT`]
//! (512 KiB / 1 MiB / 8 MiB) that is ≈ 1.19 MiB: only ≈ 12 % of chunks end
//! before 1 MiB, the rest run on for a further ≈ 256 KiB on average. For
//! min 64 / avg 256 / max 1024 it is ≈ 292 bytes.
//!
//! # Streaming
//!
//! [`Chunker::next_boundary`] reports a cut only once it is certain, so
//! feeding the same bytes in any pieces through [`StreamChunker`] yields the
//! same chunks as [`Chunker::chunk_lengths`] on the whole buffer — which is
//! what makes deduplication work.

mod chunker;
mod params;
mod stream;
#[cfg(test)]
mod testutil;

pub use chunker::{Chunker, Chunks};
pub use params::{ChunkerParams, ParamsError};
pub use stream::StreamChunker;
