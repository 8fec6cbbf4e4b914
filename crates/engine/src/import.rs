//! Import: create snapshots from what other tools wrote.
//!
//! [`ingest`] builds a snapshot from a stream of entries with the backup's own machinery
//! (chunking, deduplication, compression, packing, Merkle trees); the importers turn a foreign
//! format into such entries. [`import_tar`] reads tar streams (GNU tar, pax, star, Python's
//! `tarfile` and so `borg export-tar`, and SnapGuard's own `export`).
//!
//! An importer never trusts its input: names are reduced to safe components
//! (`snapguard_tar::name`), so nothing can land outside the snapshot's tree, and a damaged or
//! truncated stream fails with [`Error::Import`] naming the entry and byte offset, before any
//! snapshot is written (the blobs already stored are left for `prune`, as after an interrupted
//! backup).

pub mod ingest;
mod tar;
#[cfg(test)]
mod tests;

pub use ingest::{FileData, Ingest, IngestOptions, IngestResult};
pub use tar::import_tar;
