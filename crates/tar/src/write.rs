//! Streaming writer of POSIX pax archives.
//!
//! Each entry is an optional `x` extended header followed by a `ustar` header, like GNU tar's
//! `--format=posix`. Fields that fit the `ustar` header go there; what does not (long or
//! non-ASCII names, large ids and sizes, negative times) goes into pax records, with zero in the
//! header field. Every time is also recorded with nanoseconds (`mtime`, `atime`, `ctime`).
//! Sparse files use GNU sparse format 1.0. The archive ends with two zero blocks and is padded
//! to a multiple of 10240 bytes (GNU tar's default record size).

use crate::entry::{Entry, EntryKind, Segment};
use crate::error::{Error, ErrorKind};
use crate::header;
use crate::{padding, pax, BLOCK};
use std::io::Write;

/// GNU tar's default record size (20 blocks); the archive is padded to a multiple of it.
const RECORD: u64 = 20 * BLOCK as u64;

/// Writes a pax archive entry by entry.
pub struct Writer<W: Write> {
    inner: W,
    pos: u64,
    /// Data bytes the current entry still needs, and the padding after them.
    data_left: u64,
    pad: u64,
    current: Option<Vec<u8>>,
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W) -> Writer<W> {
        Writer {
            inner,
            pos: 0,
            data_left: 0,
            pad: 0,
            current: None,
        }
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Write the headers of `entry` (and a sparse file's map). Afterwards exactly
    /// [`Entry::stored_size`] bytes of data must be given to [`Writer::write_data`]: a regular
    /// file's content, or a sparse file's runs back to back.
    pub fn append(&mut self, entry: &Entry) -> Result<(), Error> {
        self.end_entry()?;
        self.current = Some(entry.path.clone());
        validate(entry).map_err(|d| self.err(ErrorKind::Invalid(d)))?;
        let (header_name, real_name) = names(entry);
        let mut records = Vec::new();
        let mut block = [0u8; BLOCK];

        // Sparse files: the real name and size are records; the map precedes the data.
        let mut map = Vec::new();
        if let (EntryKind::File, Some(segs)) = (entry.kind, &entry.sparse) {
            let mut segs = segs.clone();
            if segs.last().is_none_or(|s| s.offset + s.len < entry.size) {
                // As GNU tar does: a last, empty run at the end gives the size on its own.
                segs.push(Segment {
                    offset: entry.size,
                    len: 0,
                });
            }
            pax::push(&mut records, b"GNU.sparse.major", b"1");
            pax::push(&mut records, b"GNU.sparse.minor", b"0");
            pax::push(&mut records, b"GNU.sparse.name", &real_name);
            pax::push(
                &mut records,
                b"GNU.sparse.realsize",
                entry.size.to_string().as_bytes(),
            );
            map.extend_from_slice(format!("{}\n", segs.len()).as_bytes());
            for s in &segs {
                map.extend_from_slice(format!("{}\n{}\n", s.offset, s.len).as_bytes());
            }
            map.resize(map.len() + padding(map.len() as u64) as usize, 0);
        } else if !fits(&real_name, header::NAME.1) {
            pax::push(&mut records, b"path", &real_name);
        }
        header::put_bytes(
            &mut block,
            header::NAME,
            truncate(&header_name, header::NAME.1),
        );

        let link = matches!(entry.kind, EntryKind::Symlink | EntryKind::HardLink);
        if link {
            if !fits(&entry.link, header::LINKNAME.1) {
                pax::push(&mut records, b"linkpath", &entry.link);
            }
            header::put_bytes(
                &mut block,
                header::LINKNAME,
                truncate(&entry.link, header::LINKNAME.1),
            );
        }
        let stored = map.len() as u64 + entry.stored_size();
        for (field, value, key) in [
            (header::SIZE, stored, &b"size"[..]),
            (header::UID, entry.uid, b"uid"),
            (header::GID, entry.gid, b"gid"),
        ] {
            if !header::put_octal(&mut block, field, value) {
                header::put_octal(&mut block, field, 0);
                pax::push(&mut records, key, value.to_string().as_bytes());
            }
        }
        for (field, value, key) in [
            (header::UNAME, &entry.uname, &b"uname"[..]),
            (header::GNAME, &entry.gname, b"gname"),
        ] {
            if fits(value, field.1) {
                header::put_bytes(&mut block, field, value);
            } else {
                pax::push(&mut records, key, value);
            }
        }
        header::put_octal(&mut block, header::MODE, u64::from(entry.mode));
        let mtime = u64::try_from(entry.mtime.secs)
            .ok()
            .filter(|&s| s <= header::octal_max(header::MTIME))
            .unwrap_or(0);
        header::put_octal(&mut block, header::MTIME, mtime);
        pax::push(
            &mut records,
            b"mtime",
            pax::format_time(entry.mtime).as_bytes(),
        );
        if let Some(t) = entry.atime {
            pax::push(&mut records, b"atime", pax::format_time(t).as_bytes());
        }
        if let Some(t) = entry.ctime {
            pax::push(&mut records, b"ctime", pax::format_time(t).as_bytes());
        }
        for (key, value) in [
            (&b"SCHILY.dev"[..], entry.device),
            (b"SCHILY.ino", entry.inode),
            (b"SCHILY.nlink", entry.nlink),
        ] {
            if let Some(v) = value {
                pax::push(&mut records, key, v.to_string().as_bytes());
            }
        }
        if let Some(acl) = &entry.acl_access {
            pax::push(&mut records, b"SCHILY.acl.access", acl);
        }
        if let Some(acl) = &entry.acl_default {
            pax::push(&mut records, b"SCHILY.acl.default", acl);
        }
        for (name, value) in &entry.xattrs {
            pax::push(&mut records, &pax::xattr_keyword(name), value);
        }
        block[header::TYPEFLAG] = match entry.kind {
            EntryKind::File => b'0',
            EntryKind::HardLink => b'1',
            EntryKind::Symlink => b'2',
            EntryKind::CharDevice => b'3',
            EntryKind::BlockDevice => b'4',
            EntryKind::Dir => b'5',
            EntryKind::Fifo => b'6',
        };
        header::put_bytes(&mut block, header::MAGIC, b"ustar\0");
        header::put_bytes(&mut block, header::VERSION, b"00");
        let device = matches!(entry.kind, EntryKind::CharDevice | EntryKind::BlockDevice);
        for (field, value) in [
            (header::DEVMAJOR, entry.dev_major),
            (header::DEVMINOR, entry.dev_minor),
        ] {
            let value = if device { value } else { 0 };
            // No pax keyword for device numbers exists that GNU tar reads; GNU's base-256
            // form is what it understands for numbers too large for octal.
            if !header::put_octal(&mut block, field, value) {
                header::put_base256(&mut block, field, value);
            }
        }
        header::set_checksum(&mut block);

        if !records.is_empty() {
            let mut x = [0u8; BLOCK];
            header::put_bytes(
                &mut x,
                header::NAME,
                truncate(&pax_name(&header_name), header::NAME.1),
            );
            header::put_octal(&mut x, header::MODE, 0o644);
            header::put_octal(&mut x, header::UID, 0);
            header::put_octal(&mut x, header::GID, 0);
            header::put_octal(&mut x, header::SIZE, records.len() as u64);
            header::put_octal(&mut x, header::MTIME, mtime);
            x[header::TYPEFLAG] = b'x';
            header::put_bytes(&mut x, header::MAGIC, b"ustar\0");
            header::put_bytes(&mut x, header::VERSION, b"00");
            header::put_octal(&mut x, header::DEVMAJOR, 0);
            header::put_octal(&mut x, header::DEVMINOR, 0);
            header::set_checksum(&mut x);
            self.put(&x)?;
            let pad = padding(records.len() as u64) as usize;
            records.resize(records.len() + pad, 0);
            self.put(&records)?;
        }
        self.put(&block)?;
        self.put(&map)?;
        self.data_left = entry.stored_size();
        self.pad = padding(stored);
        Ok(())
    }

    /// Write data of the current entry.
    pub fn write_data(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.len() as u64 > self.data_left {
            let left = self.data_left;
            return Err(self.err(ErrorKind::Invalid(format!(
                "{} bytes of data given where {left} remain",
                data.len()
            ))));
        }
        self.data_left -= data.len() as u64;
        self.put(data)
    }

    /// Write the end-of-archive marker and the padding to a whole record; returns the inner
    /// writer (flushed).
    pub fn finish(mut self) -> Result<W, Error> {
        self.end_entry()?;
        self.current = None;
        let zeros = [0u8; 2 * BLOCK];
        self.put(&zeros)?;
        let rest = (RECORD - self.pos % RECORD) % RECORD;
        self.put(&vec![0u8; rest as usize])?;
        self.inner
            .flush()
            .map_err(|e| Error::new(self.pos, None, ErrorKind::Io(e)))?;
        Ok(self.inner)
    }

    /// Check the current entry got all its data and pad it.
    fn end_entry(&mut self) -> Result<(), Error> {
        if self.data_left > 0 {
            let left = self.data_left;
            return Err(self.err(ErrorKind::Invalid(format!(
                "{left} bytes of the entry's data were not written"
            ))));
        }
        let pad = vec![0u8; self.pad as usize];
        self.pad = 0;
        self.put(&pad)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if let Err(e) = self.inner.write_all(bytes) {
            return Err(self.err(ErrorKind::Io(e)));
        }
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(self.pos, self.current.as_deref(), kind)
    }
}

/// Whether a name can go into a `ustar` field as it is: short enough, and plain ASCII without
/// NUL (anything else is written as a pax record, as GNU tar does).
fn fits(name: &[u8], len: usize) -> bool {
    name.len() <= len && name.iter().all(|&b| b != 0 && b.is_ascii())
}

/// At most `len` bytes of `name`.
fn truncate(name: &[u8], len: usize) -> &[u8] {
    &name[..name.len().min(len)]
}

/// (name for the ustar header, the entry's real name). Directories end in `/`; a sparse
/// file's header name is `DIR/GNUSparseFile.0/BASE`, as GNU sparse 1.0 prescribes.
fn names(entry: &Entry) -> (Vec<u8>, Vec<u8>) {
    let mut real = entry.path.clone();
    if entry.kind == EntryKind::Dir && !real.ends_with(b"/") {
        real.push(b'/');
    }
    if entry.kind == EntryKind::File && entry.sparse.is_some() {
        let (dir, base) = split(&real);
        let mut h = dir.to_vec();
        h.extend_from_slice(b"GNUSparseFile.0/");
        h.extend_from_slice(base);
        return (h, real);
    }
    (real.clone(), real)
}

/// The name of an entry's extended header: `DIR/PaxHeaders/BASE`, as GNU tar names it.
fn pax_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = split(trimmed);
    let mut h = dir.to_vec();
    h.extend_from_slice(b"PaxHeaders/");
    h.extend_from_slice(base);
    h
}

/// ("dir/", "base") of a path ("" for the directory part of a bare name).
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => (&b""[..], path),
    }
}

fn validate(e: &Entry) -> Result<(), String> {
    if e.path.is_empty() || e.path.contains(&0) {
        return Err("the name is empty or contains a NUL byte".into());
    }
    if e.link.contains(&0) {
        return Err("the link target contains a NUL byte".into());
    }
    if matches!(e.kind, EntryKind::Symlink | EntryKind::HardLink) && e.link.is_empty() {
        return Err("a link without a target".into());
    }
    if e.mode > 0o7777 {
        return Err(format!("invalid mode {:o}", e.mode));
    }
    for (n, _) in &e.xattrs {
        if n.is_empty() || n.contains(&0) {
            return Err("an extended attribute name is empty or contains a NUL byte".into());
        }
    }
    if let (EntryKind::File, Some(segs)) = (e.kind, &e.sparse) {
        let mut end = 0u64;
        for s in segs {
            let e_end = s.offset.checked_add(s.len).filter(|&x| x <= e.size);
            match e_end {
                Some(x) if s.offset >= end => end = x,
                _ => {
                    return Err(
                        "the sparse runs overlap, are out of order or exceed the size".into(),
                    )
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
