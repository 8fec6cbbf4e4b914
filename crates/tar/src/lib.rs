//! The tar archive format, as SnapGuard writes (`export`) and reads (`import`) it.
//!
//! Writing produces POSIX pax archives (`ustar` headers plus `x` extended headers) with
//! everything a Linux file has: nanosecond `mtime`/`atime`/`ctime` records, `uname`/`gname`,
//! binary-safe `SCHILY.xattr.*` records, `SCHILY.acl.access`/`SCHILY.acl.default` ACL text next to
//! the binary `system.posix_acl_*` attributes, hardlink entries, device numbers, long and
//! non-UTF-8 names, and sparse files in GNU sparse format 1.0 (the map at the start of the data).
//! GNU tar extracts all of it with `tar --xattrs --xattrs-include='*' --acls -xpSf`.
//!
//! Reading accepts what real tools write: ustar, GNU (`L`/`K` long names, base-256 numbers, old
//! `S` sparse entries with extension blocks), pax (`x` and `g` headers, GNU sparse 0.0, 0.1 and
//! 1.0, `SCHILY.*` and `LIBARCHIVE.xattr.*` records) and the output of Python's `tarfile` (which
//! `borg export-tar` uses). Every input is treated as hostile: a damaged, truncated or absurd
//! archive yields an [`Error`] that names the entry and its byte offset, never a panic, and no
//! size taken from the archive is allocated before the bytes have actually arrived.
//!
//! This crate knows nothing about repositories or the file system: names are bytes, owners are
//! numbers and names, and [`acl`] resolves user and group names only through a callback.

pub mod acl;
mod entry;
mod error;
mod header;
pub mod name;
mod pax;
mod read;
mod write;

pub use entry::{Entry, EntryKind, Segment, Time};
pub use error::{Error, ErrorKind};
pub use read::{Limits, Reader};
pub use write::Writer;

/// The size of a tar block.
pub const BLOCK: usize = 512;

/// Bytes needed to pad `len` to a whole number of blocks.
pub(crate) fn padding(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
}
