//! Streaming reader: headers in, [`Entry`] values and their data out.
//!
//! The reader never seeks and never buffers more than one header's extension data, whose size
//! is capped by [`Limits`]; file data is handed to the caller as it is read. Extension headers
//! (`x`, `g`, `L`, `K`) are folded into the entry that follows them. Sparse maps of every GNU
//! flavour are decoded into [`Segment`]s, and [`Reader::read_data`] then yields exactly the
//! stored data bytes, back to back.

use crate::entry::{Entry, EntryKind, Segment, Time};
use crate::error::{Error, ErrorKind};
use crate::header::{self, Block, Flavor};
use crate::pax::{self, Records};
use crate::{padding, BLOCK};
use std::io::Read;

/// Bounds on what an archive may make the reader hold in memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest extension header (pax records, GNU long name or link) accepted, in bytes.
    pub max_header: u64,
    /// The most data runs a sparse file may have.
    pub max_segments: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header: 16 << 20,
            max_segments: 1 << 20,
        }
    }
}

/// The largest file size accepted (the kernel's `off_t` limit).
const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// Reads a tar stream entry by entry.
pub struct Reader<R> {
    inner: R,
    limits: Limits,
    /// Bytes consumed from `inner`.
    pos: u64,
    /// Records of global (`g`) headers, applied to every later entry.
    global: Records,
    /// Data bytes of the current entry not yet read, and the padding after them.
    remaining: u64,
    pad: u64,
    /// The current entry's path and header offset (for errors).
    current: Option<(Vec<u8>, u64)>,
    done: bool,
}

/// Extension headers seen before an entry.
#[derive(Default)]
struct Pending {
    records: Records,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    /// Offset of the first extension header (the entry starts there).
    start: Option<u64>,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Reader<R> {
        Reader::with_limits(inner, Limits::default())
    }

    pub fn with_limits(inner: R, limits: Limits) -> Reader<R> {
        Reader {
            inner,
            limits,
            pos: 0,
            global: Vec::new(),
            remaining: 0,
            pad: 0,
            current: None,
            done: false,
        }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next entry, or `None` at the end-of-archive marker. Data of the previous entry that
    /// was not read is skipped. After an error of kind [`ErrorKind::Unsupported`] (an entry type
    /// this reader does not handle) the reader is positioned after that entry and may go on;
    /// after any other error it should be abandoned.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        self.current = None;
        let mut pending = Pending::default();
        loop {
            let offset = self.pos;
            let mut block = [0u8; BLOCK];
            if !self.read_block(&mut block, None)? {
                let what = if offset == 0 {
                    "the input is empty".to_string()
                } else if pending.start.is_some() {
                    "it ends after an extended header, before the entry it describes".to_string()
                } else {
                    "it ends without the end-of-archive marker (two zero blocks)".to_string()
                };
                return Err(Error::new(offset, None, ErrorKind::Truncated(what)));
            }
            if header::is_zero(&block) {
                if pending.start.is_some() {
                    return Err(self.malformed(
                        offset,
                        None,
                        "an extended header is followed by the end of the archive",
                    ));
                }
                // The end-of-archive marker; a second zero block normally follows (a lone one
                // is accepted, as GNU tar does), and whatever comes after is padding.
                self.done = true;
                return Ok(None);
            }
            let name = header::cstr(&block, header::NAME).to_vec();
            match header::checksum_ok(&block) {
                Ok(true) => {}
                _ if offset == 0 => {
                    return Err(self.malformed(
                        offset,
                        None,
                        "the first header's checksum is wrong: this is not a tar archive (is it compressed? decompress it first)",
                    ))
                }
                _ => {
                    return Err(self.malformed(
                        offset,
                        Some(&name),
                        "header checksum mismatch: the archive is damaged",
                    ))
                }
            }
            pending.start.get_or_insert(offset);
            let typeflag = block[header::TYPEFLAG];
            match typeflag {
                b'x' | b'X' | b'g' => {
                    let data = self.read_extension(&block, offset, &name)?;
                    let records =
                        pax::parse(&data).map_err(|d| self.malformed(offset, Some(&name), &d))?;
                    if typeflag == b'g' {
                        // A global header describes no entry by itself.
                        merge(&mut self.global, records);
                        if pending.records.is_empty()
                            && pending.long_name.is_none()
                            && pending.long_link.is_none()
                        {
                            pending.start = None;
                        }
                    } else {
                        pending.records.extend(records);
                    }
                }
                b'L' | b'K' => {
                    let mut data = self.read_extension(&block, offset, &name)?;
                    if let Some(nul) = data.iter().position(|&b| b == 0) {
                        data.truncate(nul);
                    }
                    if typeflag == b'L' {
                        pending.long_name = Some(data);
                    } else {
                        pending.long_link = Some(data);
                    }
                }
                b'V' => {
                    // A volume label: not an entry.
                    let size = self.header_size(&block, offset, &name)?;
                    self.skip(size + padding(size))?;
                    pending = Pending::default();
                }
                _ => return self.entry(block, pending).map(Some),
            }
        }
    }

    /// Read up to `buf.len()` bytes of the current entry's stored data (a sparse file's runs
    /// back to back). Returns 0 at the end of the data.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error_here(ErrorKind::Io(e))),
            }
        };
        if n == 0 {
            let left = self.remaining;
            return Err(self.error_here(ErrorKind::Truncated(format!(
                "{left} byte(s) of the entry's data are missing"
            ))));
        }
        self.pos += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Byte offset of the current entry's first header (its extended header, if any).
    pub fn entry_offset(&self) -> u64 {
        self.current.as_ref().map_or(self.pos, |(_, o)| *o)
    }

    /// Stored data bytes of the current entry not yet read.
    pub fn data_remaining(&self) -> u64 {
        self.remaining
    }

    fn error_here(&self, kind: ErrorKind) -> Error {
        match &self.current {
            Some((path, _)) => Error::new(self.pos, Some(path), kind),
            None => Error::new(self.pos, None, kind),
        }
    }

    fn malformed(&self, offset: u64, entry: Option<&[u8]>, detail: &str) -> Error {
        Error::new(offset, entry, ErrorKind::Malformed(detail.to_string()))
    }

    /// Skip the unread data and padding of the current entry.
    fn skip_rest(&mut self) -> Result<(), Error> {
        let n = self.remaining + self.pad;
        self.remaining = 0;
        self.pad = 0;
        self.skip(n)
    }

    fn skip(&mut self, n: u64) -> Result<(), Error> {
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| self.error_here(ErrorKind::Io(e)))?;
        self.pos += copied;
        if copied < n {
            return Err(self.error_here(ErrorKind::Truncated(format!(
                "{} byte(s) of data or padding are missing",
                n - copied
            ))));
        }
        Ok(())
    }

    /// Fill `buf` completely. Ok(false) at a clean end of input (nothing read); a partial
    /// block is an error naming `entry`.
    fn read_block(&mut self, buf: &mut Block, entry: Option<&[u8]>) -> Result<bool, Error> {
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::new(self.pos, entry, ErrorKind::Io(e))),
            }
        }
        let start = self.pos;
        self.pos += got as u64;
        match got {
            0 => Ok(false),
            BLOCK => Ok(true),
            n if start == 0 => Err(Error::new(
                0,
                None,
                ErrorKind::Malformed(format!(
                    "the input has only {n} bytes (a tar archive has at least 1024)"
                )),
            )),
            n => Err(Error::new(
                start,
                entry,
                ErrorKind::Truncated(format!("the last block has only {n} of 512 bytes")),
            )),
        }
    }

    fn header_size(&self, block: &Block, offset: u64, name: &[u8]) -> Result<u64, Error> {
        let n = header::parse_number(header::field(block, header::SIZE))
            .map_err(|d| self.malformed(offset, Some(name), &format!("size field: {d}")))?;
        u64::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_FILE_SIZE)
            .ok_or_else(|| self.malformed(offset, Some(name), &format!("invalid size {n}")))
    }

    /// Read the data of an extension header (pax records, long name), within the limit.
    fn read_extension(
        &mut self,
        block: &Block,
        offset: u64,
        name: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let size = self.header_size(block, offset, name)?;
        if size > self.limits.max_header {
            return Err(Error::new(
                offset,
                Some(name),
                ErrorKind::TooLarge(format!(
                    "an extended header of {size} bytes (at most {} are accepted)",
                    self.limits.max_header
                )),
            ));
        }
        let mut data = Vec::new();
        let got = (&mut self.inner)
            .take(size)
            .read_to_end(&mut data)
            .map_err(|e| Error::new(self.pos, Some(name), ErrorKind::Io(e)))?;
        self.pos += got as u64;
        if (got as u64) < size {
            return Err(Error::new(
                self.pos,
                Some(name),
                ErrorKind::Truncated(format!("an extended header of {size} bytes has only {got}")),
            ));
        }
        self.skip(padding(size))?;
        Ok(data)
    }

    /// Build the entry whose main header is `block`, with the extension headers before it.
    fn entry(&mut self, block: Block, pending: Pending) -> Result<Entry, Error> {
        let offset = pending.start.unwrap_or(self.pos - BLOCK as u64);
        let flavor = header::flavor(&block);
        let typeflag = block[header::TYPEFLAG];
        let name = header::cstr(&block, header::NAME);
        let mut path = match flavor {
            Flavor::Ustar if !header::cstr(&block, header::PREFIX).is_empty() => {
                let mut p = header::cstr(&block, header::PREFIX).to_vec();
                p.push(b'/');
                p.extend_from_slice(name);
                p
            }
            _ => name.to_vec(),
        };
        if let Some(long) = &pending.long_name {
            path.clone_from(long);
        }
        let records: Records = self
            .global
            .iter()
            .filter(|(k, _)| !is_per_entry(k))
            .cloned()
            .chain(pending.records)
            .collect();
        // The path record, and the real name of a GNU sparse file, override the header name.
        for key in [&b"path"[..], b"GNU.sparse.name"] {
            if let Some((_, v)) = records.iter().rev().find(|(k, _)| k == key) {
                path.clone_from(v);
            }
        }
        let err_path = path.clone();
        let bad =
            |detail: String| Error::new(offset, Some(&err_path), ErrorKind::Malformed(detail));
        let number = |f: (usize, usize), what: &str| {
            header::parse_number(header::field(&block, f))
                .map_err(|d| bad(format!("{what} field: {d}")))
        };
        let kind = match typeflag {
            b'0' | b'7' | b'S' => EntryKind::File,
            0 if path.ends_with(b"/") => EntryKind::Dir,
            0 => EntryKind::File,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' | b'D' => EntryKind::Dir,
            b'6' => EntryKind::Fifo,
            other => {
                let size = self.header_size(&block, offset, &path)?;
                self.current = Some((path.clone(), offset));
                self.remaining = size;
                self.pad = padding(size);
                let what = match other {
                    b'M' => "a multi-volume continuation entry".to_string(),
                    b'N' => "an old GNU long-name entry (type N)".to_string(),
                    c if c.is_ascii_graphic() => format!("entry type '{}'", c as char),
                    c => format!("entry type {c:#04x}"),
                };
                return Err(Error::new(
                    offset,
                    Some(&path),
                    ErrorKind::Unsupported(format!("{what}; the entry is skipped")),
                ));
            }
        };
        let mut e = Entry::new(path, kind);
        e.link = match &pending.long_link {
            Some(l) => l.clone(),
            None => header::cstr(&block, header::LINKNAME).to_vec(),
        };
        let mode = number(header::MODE, "mode")?;
        e.mode = u32::try_from(mode & 0o7777).unwrap_or(0);
        let nonneg =
            |v: i128, what: &str| u64::try_from(v).map_err(|_| bad(format!("invalid {what} {v}")));
        e.uid = nonneg(number(header::UID, "uid")?, "uid")?;
        e.gid = nonneg(number(header::GID, "gid")?, "gid")?;
        let mut size = self.header_size(&block, offset, &e.path)?;
        let secs = |v: i128, what: &str| {
            i64::try_from(v).map_err(|_| bad(format!("{what} {v} is out of range")))
        };
        e.mtime = Time {
            secs: secs(number(header::MTIME, "mtime")?, "mtime")?,
            nanos: 0,
        };
        if flavor != Flavor::V7 {
            e.uname = header::cstr(&block, header::UNAME).to_vec();
            e.gname = header::cstr(&block, header::GNAME).to_vec();
            if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
                e.dev_major = nonneg(number(header::DEVMAJOR, "devmajor")?, "devmajor")?;
                e.dev_minor = nonneg(number(header::DEVMINOR, "devminor")?, "devminor")?;
            }
        }
        if flavor == Flavor::Gnu {
            for (f, slot, what) in [
                (header::GNU_ATIME, &mut e.atime, "atime"),
                (header::GNU_CTIME, &mut e.ctime, "ctime"),
            ] {
                // Only GNU tar's incremental mode fills these; zero means absent.
                let v = header::parse_number(header::field(&block, f)).unwrap_or(0);
                if v != 0 {
                    *slot = Some(Time {
                        secs: secs(v, what)?,
                        nanos: 0,
                    });
                }
            }
        }
        // Old GNU sparse map: in the header and in extension blocks after it.
        let mut sparse: Option<Vec<Segment>> = None;
        let mut realsize: Option<u64> = None;
        if typeflag == b'S' {
            let (segs, real) = self.old_gnu_sparse(&block, offset, &e.path)?;
            sparse = Some(segs);
            realsize = Some(real);
        }
        // pax records (global ones first, then the entry's own; the last occurrence wins).
        let mut sparse_version: Option<(u64, u64)> = None;
        let mut sparse_pairs: Vec<u64> = Vec::new();
        let mut sparse_map: Option<Vec<u8>> = None;
        let mut numblocks: Option<u64> = None;
        for (k, v) in &records {
            let k = k.as_slice();
            let dec = |what: &str| {
                pax::parse_decimal(v).ok_or_else(|| {
                    bad(format!(
                        "pax record {what}={:?} is not a number",
                        String::from_utf8_lossy(v)
                    ))
                })
            };
            let time = |what: &str| {
                pax::parse_time(v).ok_or_else(|| {
                    bad(format!(
                        "pax record {what}={:?} is not a time",
                        String::from_utf8_lossy(v)
                    ))
                })
            };
            match k {
                b"path" | b"GNU.sparse.name" => {}
                b"linkpath" => e.link.clone_from(v),
                b"size" => size = dec("size")?,
                b"uid" => e.uid = dec("uid")?,
                b"gid" => e.gid = dec("gid")?,
                b"uname" => e.uname.clone_from(v),
                b"gname" => e.gname.clone_from(v),
                b"mtime" => e.mtime = time("mtime")?,
                b"atime" => e.atime = Some(time("atime")?),
                b"ctime" => e.ctime = Some(time("ctime")?),
                b"SCHILY.devmajor" => e.dev_major = dec("SCHILY.devmajor")?,
                b"SCHILY.devminor" => e.dev_minor = dec("SCHILY.devminor")?,
                b"SCHILY.dev" => e.device = Some(dec("SCHILY.dev")?),
                b"SCHILY.ino" => e.inode = Some(dec("SCHILY.ino")?),
                b"SCHILY.nlink" => e.nlink = Some(dec("SCHILY.nlink")?),
                b"SCHILY.acl.access" => e.acl_access = Some(v.clone()),
                b"SCHILY.acl.default" => e.acl_default = Some(v.clone()),
                b"GNU.sparse.major" => {
                    sparse_version.get_or_insert((0, 0)).0 = dec("GNU.sparse.major")?
                }
                b"GNU.sparse.minor" => {
                    sparse_version.get_or_insert((0, 0)).1 = dec("GNU.sparse.minor")?
                }
                b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                    realsize = Some(dec("GNU.sparse.realsize")?)
                }
                b"GNU.sparse.numblocks" => numblocks = Some(dec("GNU.sparse.numblocks")?),
                b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                    if sparse_pairs.len() >= 2 * self.limits.max_segments {
                        return Err(too_many(offset, &e.path, self.limits.max_segments));
                    }
                    sparse_pairs.push(dec("GNU.sparse.offset")?)
                }
                b"GNU.sparse.map" => sparse_map = Some(v.clone()),
                _ => {
                    if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                        set_xattr(&mut e.xattrs, pax::schily_xattr_name(name), v.clone());
                    } else if let Some(name) = k.strip_prefix(b"LIBARCHIVE.xattr.") {
                        let name = pax::url_decode(name)
                            .ok_or_else(|| bad("invalid LIBARCHIVE.xattr name".into()))?;
                        let value = pax::base64_decode(v)
                            .ok_or_else(|| bad("invalid LIBARCHIVE.xattr value".into()))?;
                        set_xattr(&mut e.xattrs, name, value);
                    }
                    // Anything else (comment, charset, hdrcharset, other vendors' records)
                    // carries nothing SnapGuard keeps.
                }
            }
        }
        if e.xattrs.iter().any(|(n, _)| n.is_empty()) {
            return Err(bad("an extended attribute with an empty name".into()));
        }
        self.current = Some((e.path.clone(), offset));
        self.remaining = size;
        self.pad = padding(size);
        let pax_sparse =
            sparse_version.is_some() || sparse_map.is_some() || !sparse_pairs.is_empty();
        if pax_sparse && kind == EntryKind::File {
            let segs = match sparse_version {
                Some((1, 0)) => self.sparse_map_in_data(offset, &e.path)?,
                Some((0, _)) | None => {
                    let nums = match &sparse_map {
                        Some(map) if !map.is_empty() => map
                            .split(|&b| b == b',')
                            .map(|n| {
                                pax::parse_decimal(n)
                                    .ok_or_else(|| bad("invalid GNU.sparse.map".into()))
                            })
                            .collect::<Result<Vec<u64>, Error>>()?,
                        Some(_) => Vec::new(),
                        None => std::mem::take(&mut sparse_pairs),
                    };
                    if nums.len() % 2 != 0 || nums.len() / 2 > self.limits.max_segments {
                        return Err(bad("invalid GNU sparse map".into()));
                    }
                    if numblocks.is_some_and(|n| n != (nums.len() / 2) as u64) {
                        return Err(bad(
                            "GNU.sparse.numblocks does not match the sparse map".into()
                        ));
                    }
                    nums.chunks_exact(2)
                        .map(|p| Segment {
                            offset: p[0],
                            len: p[1],
                        })
                        .collect()
                }
                Some((major, minor)) => {
                    return Err(Error::new(
                        offset,
                        Some(&e.path),
                        ErrorKind::Unsupported(format!("GNU sparse format {major}.{minor}")),
                    ))
                }
            };
            sparse = Some(segs);
            if realsize.is_none() {
                return Err(bad("a sparse file without GNU.sparse.realsize".into()));
            }
        }
        match (kind, sparse) {
            (EntryKind::File, Some(segs)) => {
                let real = realsize.unwrap_or(0);
                validate_segments(&segs, real, self.remaining)
                    .map_err(|d| bad(format!("sparse map: {d}")))?;
                e.size = real;
                e.sparse = Some(segs);
            }
            (EntryKind::File, None) => e.size = size,
            _ => e.size = 0,
        }
        Ok(e)
    }

    fn old_gnu_sparse(
        &mut self,
        block: &Block,
        offset: u64,
        path: &[u8],
    ) -> Result<(Vec<Segment>, u64), Error> {
        let bad = |d: String| Error::new(offset, Some(path), ErrorKind::Malformed(d));
        let mut segs = Vec::new();
        let add = |area: &[u8], count: usize, segs: &mut Vec<Segment>| -> Result<(), Error> {
            for i in 0..count {
                let e = &area[i * 24..i * 24 + 24];
                let off =
                    header::parse_number(&e[..12]).map_err(|d| bad(format!("sparse map: {d}")))?;
                let len =
                    header::parse_number(&e[12..]).map_err(|d| bad(format!("sparse map: {d}")))?;
                if off == 0 && len == 0 && e.iter().all(|&b| b == 0) {
                    break;
                }
                let (Ok(offset), Ok(len)) = (u64::try_from(off), u64::try_from(len)) else {
                    return Err(bad("negative number in the sparse map".into()));
                };
                segs.push(Segment { offset, len });
            }
            Ok(())
        };
        add(
            &block[header::GNU_SPARSE..header::GNU_SPARSE + 24 * header::GNU_SPARSE_ENTRIES],
            header::GNU_SPARSE_ENTRIES,
            &mut segs,
        )?;
        let real = header::parse_number(header::field(block, header::GNU_REALSIZE))
            .map_err(|d| bad(format!("realsize field: {d}")))?;
        let real = u64::try_from(real).map_err(|_| bad("negative real size".into()))?;
        let mut extended = block[header::GNU_ISEXTENDED] != 0;
        while extended {
            let mut ext = [0u8; BLOCK];
            if !self.read_block(&mut ext, Some(path))? {
                return Err(Error::new(
                    self.pos,
                    Some(path),
                    ErrorKind::Truncated("the sparse map's extension blocks are missing".into()),
                ));
            }
            if segs.len() > self.limits.max_segments {
                return Err(too_many(offset, path, self.limits.max_segments));
            }
            add(
                &ext[..24 * header::GNU_EXT_ENTRIES],
                header::GNU_EXT_ENTRIES,
                &mut segs,
            )?;
            extended = ext[header::GNU_EXT_ISEXTENDED] != 0;
        }
        Ok((segs, real))
    }

    /// GNU sparse 1.0: the map is at the start of the data, as decimal lines, padded to a block.
    fn sparse_map_in_data(&mut self, offset: u64, path: &[u8]) -> Result<Vec<Segment>, Error> {
        let mut numbers: Vec<u64> = Vec::new();
        let mut want: Option<u64> = None;
        let mut digits: Vec<u8> = Vec::new();
        let bad = |d: &str| {
            Error::new(
                offset,
                Some(path),
                ErrorKind::Malformed(format!("sparse map: {d}")),
            )
        };
        loop {
            if self.remaining < BLOCK as u64 {
                return Err(bad("the map runs past the entry's data"));
            }
            let mut block = [0u8; BLOCK];
            if !self.read_block(&mut block, Some(path))? {
                return Err(Error::new(
                    self.pos,
                    Some(path),
                    ErrorKind::Truncated("the sparse map is cut off".into()),
                ));
            }
            self.remaining -= BLOCK as u64;
            for &b in block.iter() {
                if want.is_some_and(|w| numbers.len() as u64 == 2 * w + 1) {
                    break;
                }
                match b {
                    b'0'..=b'9' if digits.len() < 20 => digits.push(b),
                    b'\n' => {
                        let n = pax::parse_decimal(&digits).ok_or_else(|| bad("invalid number"))?;
                        digits.clear();
                        if want.is_none() {
                            if n > self.limits.max_segments as u64 {
                                return Err(too_many(offset, path, self.limits.max_segments));
                            }
                            want = Some(n);
                        }
                        numbers.push(n);
                    }
                    _ => return Err(bad("unexpected byte")),
                }
            }
            if want.is_some_and(|w| numbers.len() as u64 == 2 * w + 1) {
                break;
            }
        }
        Ok(numbers[1..]
            .chunks_exact(2)
            .map(|p| Segment {
                offset: p[0],
                len: p[1],
            })
            .collect())
    }
}

fn too_many(offset: u64, path: &[u8], max: usize) -> Error {
    Error::new(
        offset,
        Some(path),
        ErrorKind::TooLarge(format!("a sparse map of more than {max} runs")),
    )
}

/// Runs must be in order, not overlap, lie within the file, and add up to the stored data.
fn validate_segments(segs: &[Segment], realsize: u64, stored: u64) -> Result<(), String> {
    if realsize > MAX_FILE_SIZE {
        return Err(format!("real size {realsize} is too large"));
    }
    let mut end = 0u64;
    let mut total = 0u64;
    for s in segs {
        if s.offset < end {
            return Err(format!("run at {} overlaps the one before it", s.offset));
        }
        end = s
            .offset
            .checked_add(s.len)
            .filter(|&e| e <= realsize)
            .ok_or_else(|| {
                format!(
                    "run at {} of {} bytes ends past the file's size {realsize}",
                    s.offset, s.len
                )
            })?;
        total = total.saturating_add(s.len);
    }
    if total != stored {
        return Err(format!(
            "the runs hold {total} bytes but the entry stores {stored}"
        ));
    }
    Ok(())
}

fn set_xattr(xattrs: &mut Vec<(Vec<u8>, Vec<u8>)>, name: Vec<u8>, value: Vec<u8>) {
    match xattrs.iter_mut().find(|(n, _)| *n == name) {
        Some(x) => x.1 = value,
        None => xattrs.push((name, value)),
    }
}

/// Records that describe one entry only and so are ignored in global headers.
fn is_per_entry(key: &[u8]) -> bool {
    key == b"path" || key == b"linkpath" || key == b"size" || key.starts_with(b"GNU.sparse.")
}

/// Merge global records (a later value replaces an earlier one of the same keyword).
fn merge(global: &mut Records, records: Records) {
    for (k, v) in records {
        match global.iter_mut().find(|(g, _)| *g == k) {
            Some(slot) => slot.1 = v,
            None => global.push((k, v)),
        }
    }
}
