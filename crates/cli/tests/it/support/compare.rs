//! Scan a tree (lstat only, never following symlinks) and compare two scans.
//!
//! `Tree::scan` records every entry's metadata *before* reading it (a
//! directory is lstat'ed before it is listed), so scanning does not disturb
//! the atimes it records. Content is compared afterwards by streaming the
//! files of both trees from disk.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, SeekFrom};
use rustix::io::Errno;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Char,
    Block,
    Socket,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    /// All 12 permission bits (incl. setuid, setgid, sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    pub nlink: u64,
    pub rdev: u64,
    pub dev: u64,
    pub ino: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub target: Option<Vec<u8>>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Data segments (SEEK_DATA/SEEK_HOLE) of regular files.
    pub data: Option<Vec<(u64, u64)>>,
}

impl Entry {
    /// True for a regular file with at least one hole.
    pub fn is_sparse(&self) -> bool {
        match &self.data {
            Some(segs) => segs.iter().map(|(a, b)| b - a).sum::<u64>() < self.size,
            None => false,
        }
    }
}

pub struct Tree {
    pub root: PathBuf,
    /// Keyed by path relative to `root`; the root itself is "".
    pub entries: BTreeMap<PathBuf, Entry>,
}

impl Tree {
    pub fn scan(root: &Path) -> Tree {
        let mut entries = BTreeMap::new();
        visit(root, PathBuf::new(), &mut entries);
        Tree {
            root: root.to_path_buf(),
            entries,
        }
    }

    pub fn get(&self, rel: impl AsRef<Path>) -> &Entry {
        let rel = rel.as_ref();
        self.entries
            .get(rel)
            .unwrap_or_else(|| panic!("{rel:?} not in tree {:?}", self.root))
    }

    /// The part of this scan below `rel`, re-rooted there.
    pub fn subtree(&self, rel: impl AsRef<Path>) -> Tree {
        let rel = rel.as_ref();
        let entries = self
            .entries
            .iter()
            .filter_map(|(p, e)| {
                p.strip_prefix(rel)
                    .ok()
                    .map(|sub| (sub.to_path_buf(), e.clone()))
            })
            .collect();
        Tree {
            root: self.root.join(rel),
            entries,
        }
    }

    pub fn abs(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// Paths (sorted) of the non-directories sharing `rel`'s inode.
    fn link_group(&self, rel: &Path) -> Vec<PathBuf> {
        let e = self.get(rel);
        self.entries
            .iter()
            .filter(|(_, o)| o.kind != Kind::Dir && o.dev == e.dev && o.ino == e.ino)
            .map(|(p, _)| p.clone())
            .collect()
    }
}

fn visit(root: &Path, rel: PathBuf, out: &mut BTreeMap<PathBuf, Entry>) {
    let abs = if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(&rel)
    };
    let m = std::fs::symlink_metadata(&abs).unwrap_or_else(|e| panic!("lstat {abs:?}: {e}"));
    let ft = m.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_char_device() {
        Kind::Char
    } else if ft.is_block_device() {
        Kind::Block
    } else if ft.is_socket() {
        Kind::Socket
    } else {
        panic!("{abs:?}: unknown file type")
    };
    let target = (kind == Kind::Symlink).then(|| {
        std::fs::read_link(&abs)
            .unwrap_or_else(|e| panic!("readlink {abs:?}: {e}"))
            .into_os_string()
            .into_encoded_bytes()
    });
    let data = (kind == Kind::File)
        .then(|| data_segments(&abs, m.len()).unwrap_or_else(|e| panic!("SEEK_DATA {abs:?}: {e}")));
    let entry = Entry {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: m.len(),
        blocks: m.blocks(),
        nlink: m.nlink(),
        rdev: m.rdev(),
        dev: m.dev(),
        ino: m.ino(),
        atime: (m.atime(), m.atime_nsec()),
        mtime: (m.mtime(), m.mtime_nsec()),
        target,
        xattrs: read_xattrs(&abs).unwrap_or_else(|e| panic!("xattrs of {abs:?}: {e}")),
        data,
    };
    out.insert(rel.clone(), entry);
    if kind == Kind::Dir {
        for name in list_dir(&abs).unwrap_or_else(|e| panic!("read_dir {abs:?}: {e}")) {
            visit(root, rel.join(name), out);
        }
    }
}

/// Open with O_NOATIME when permitted (owner or root), so that the harness
/// itself never changes the atimes it compares.
fn open_noatime(path: &Path, dir: bool) -> io::Result<OwnedFd> {
    let mut flags = OFlags::RDONLY | OFlags::CLOEXEC;
    if dir {
        flags |= OFlags::DIRECTORY;
    }
    match rustix::fs::open(path, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => Ok(rustix::fs::open(path, flags, Mode::empty())?),
        r => Ok(r?),
    }
}

/// Sorted names in a directory, read without touching its atime.
pub fn list_dir(path: &Path) -> io::Result<Vec<OsString>> {
    let fd = open_noatime(path, true)?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name));
        }
    }
    names.sort();
    Ok(names)
}

/// All extended attributes of `path` (not following symlinks).
pub fn read_xattrs(path: &Path) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let len = rustix::fs::llistxattr_query(path)?;
    if len == 0 {
        return Ok(out);
    }
    let mut names = vec![0u8; len + 256];
    let n = rustix::fs::llistxattr(path, &mut names[..])?;
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_os = std::ffi::OsStr::from_bytes(name);
        let vlen = rustix::fs::lgetxattr_query(path, name_os)?;
        let value = if vlen == 0 {
            Vec::new()
        } else {
            let mut buf = vec![0u8; vlen];
            let got = rustix::fs::lgetxattr(path, name_os, &mut buf[..])?;
            buf.truncate(got);
            buf
        };
        out.insert(name.to_vec(), value);
    }
    Ok(out)
}

/// Data segments of a regular file as [start, end) pairs.
pub fn data_segments(path: &Path, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let f = open_noatime(path, false)?;
    let mut segs = Vec::new();
    let mut off = 0;
    while off < size {
        let start = match rustix::fs::seek(&f, SeekFrom::Data(off)) {
            Ok(s) => s,
            Err(Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = rustix::fs::seek(&f, SeekFrom::Hole(start))?;
        segs.push((start, end));
        off = end;
    }
    Ok(segs)
}

/// What to compare.
#[derive(Clone, Debug)]
pub struct Opts {
    pub owner: bool,
    /// atime of regular files and directories.
    pub atime: bool,
    /// Compare nlink of non-directories.
    pub nlink: bool,
    /// Compare the metadata of the roots themselves (not just their contents).
    pub root_meta: bool,
    /// Extended attributes whose name starts with one of these are ignored.
    pub ignore_xattrs: Vec<String>,
    /// Paths that may be absent from the actual tree.
    pub allow_missing: Vec<PathBuf>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            owner: true,
            atime: true,
            nlink: true,
            root_meta: true,
            ignore_xattrs: Vec::new(),
            allow_missing: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Diff {
    pub path: PathBuf,
    pub what: String,
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.path, self.what)
    }
}

pub fn fmt_time(t: (i64, i64)) -> String {
    format!("{}.{:09}", t.0, t.1)
}

/// Printable preview of a byte string.
pub fn preview(b: &[u8]) -> String {
    let s: String = b
        .iter()
        .take(48)
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect();
    if b.len() > 48 {
        format!("b\"{s}\"... ({} bytes)", b.len())
    } else {
        format!("b\"{s}\"")
    }
}

/// Compare `exp` (the source, scanned before backup) to `act` (restored).
pub fn compare(exp: &Tree, act: &Tree, opts: &Opts) -> Vec<Diff> {
    let mut diffs = Vec::new();
    for (rel, e) in &exp.entries {
        let mut d = |what: String| {
            diffs.push(Diff {
                path: rel.clone(),
                what,
            })
        };
        let Some(a) = act.entries.get(rel) else {
            if !opts.allow_missing.contains(rel) {
                d(format!(
                    "missing from restored tree (expected {:?})",
                    e.kind
                ));
            }
            continue;
        };
        if e.kind != a.kind {
            d(format!(
                "file type: expected {:?}, got {:?}",
                e.kind, a.kind
            ));
            continue;
        }
        let is_root = rel.as_os_str().is_empty();
        if !is_root || opts.root_meta {
            compare_meta(e, a, opts, &mut d);
        }
        if e.kind == Kind::File && e.size == a.size {
            if let Some(what) = compare_content(&exp.abs(rel), &act.abs(rel)) {
                d(what);
            }
        }
        if e.kind == Kind::File && e.is_sparse() {
            if e.data != a.data {
                d(format!(
                    "sparse layout (data segments): expected {:?}, got {:?}",
                    e.data, a.data
                ));
            }
            if a.blocks > e.blocks + 64 {
                d(format!(
                    "allocated size: expected ~{} bytes ({} blocks), got {} bytes of {} (not sparse?)",
                    e.blocks * 512,
                    e.blocks,
                    a.blocks * 512,
                    a.size
                ));
            }
        }
        if e.kind != Kind::Dir && (e.nlink > 1 || a.nlink > 1) {
            let (eg, ag) = (exp.link_group(rel), act.link_group(rel));
            if eg != ag {
                d(format!("hardlink group: expected {eg:?}, got {ag:?}"));
            }
        }
    }
    for rel in act.entries.keys() {
        if !exp.entries.contains_key(rel) {
            diffs.push(Diff {
                path: rel.clone(),
                what: format!("unexpected extra entry ({:?})", act.entries[rel].kind),
            });
        }
    }
    diffs
}

fn compare_meta(e: &Entry, a: &Entry, opts: &Opts, d: &mut impl FnMut(String)) {
    if e.kind != Kind::Symlink && e.mode != a.mode {
        d(format!("mode: expected {:04o}, got {:04o}", e.mode, a.mode));
    }
    if opts.owner && (e.uid, e.gid) != (a.uid, a.gid) {
        d(format!(
            "owner: expected {}:{}, got {}:{}",
            e.uid, e.gid, a.uid, a.gid
        ));
    }
    if matches!(e.kind, Kind::File | Kind::Symlink) && e.size != a.size {
        d(format!("size: expected {}, got {}", e.size, a.size));
    }
    if e.mtime != a.mtime {
        d(format!(
            "mtime: expected {}, got {}",
            fmt_time(e.mtime),
            fmt_time(a.mtime)
        ));
    }
    if opts.atime && matches!(e.kind, Kind::File | Kind::Dir) && e.atime != a.atime {
        d(format!(
            "atime: expected {}, got {}",
            fmt_time(e.atime),
            fmt_time(a.atime)
        ));
    }
    if e.target != a.target {
        let p = |t: &Option<Vec<u8>>| t.as_deref().map(preview).unwrap_or_default();
        d(format!(
            "symlink target: expected {}, got {}",
            p(&e.target),
            p(&a.target)
        ));
    }
    if matches!(e.kind, Kind::Char | Kind::Block) && e.rdev != a.rdev {
        d(format!(
            "rdev: expected {}:{}, got {}:{}",
            rustix::fs::major(e.rdev),
            rustix::fs::minor(e.rdev),
            rustix::fs::major(a.rdev),
            rustix::fs::minor(a.rdev)
        ));
    }
    if opts.nlink && e.kind != Kind::Dir && e.nlink != a.nlink {
        d(format!("nlink: expected {}, got {}", e.nlink, a.nlink));
    }
    let ignored = |n: &[u8]| {
        opts.ignore_xattrs
            .iter()
            .any(|p| n.starts_with(p.as_bytes()))
    };
    for (name, ev) in e.xattrs.iter().filter(|(n, _)| !ignored(n)) {
        match a.xattrs.get(name) {
            None => d(format!(
                "xattr {} missing (expected value {})",
                preview(name),
                preview(ev)
            )),
            Some(av) if av != ev => d(format!(
                "xattr {}: expected {}, got {}",
                preview(name),
                preview(ev),
                preview(av)
            )),
            Some(_) => {}
        }
    }
    for (name, av) in a.xattrs.iter().filter(|(n, _)| !ignored(n)) {
        if !e.xattrs.contains_key(name) {
            d(format!(
                "unexpected xattr {} = {}",
                preview(name),
                preview(av)
            ));
        }
    }
}

/// Stream-compare two files; describes the first difference.
pub fn compare_content(exp: &Path, act: &Path) -> Option<String> {
    let open = |p: &Path| {
        open_noatime(p, false)
            .map(File::from)
            .map_err(|e| format!("cannot open {p:?}: {e}"))
    };
    let (mut fe, mut fa) = match (open(exp), open(act)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Some(e),
    };
    let mut be = vec![0u8; 1 << 20];
    let mut ba = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let ne = read_full(&mut fe, &mut be).expect("read source");
        let na = match read_full(&mut fa, &mut ba) {
            Ok(n) => n,
            Err(e) => return Some(format!("read error at offset {off}: {e}")),
        };
        if be[..ne] != ba[..na] {
            let i = be[..ne]
                .iter()
                .zip(&ba[..na])
                .position(|(x, y)| x != y)
                .unwrap_or(ne.min(na));
            return Some(format!("content differs at byte offset {}", off + i as u64));
        }
        if ne == 0 {
            return None;
        }
        off += ne as u64;
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Panics listing every difference.
pub fn assert_same(exp: &Tree, act: &Tree, opts: &Opts, context: &str) {
    let diffs = compare(exp, act, opts);
    if !diffs.is_empty() {
        let list: Vec<String> = diffs.iter().map(|d| format!("  {d}")).collect();
        panic!(
            "{context}: {} difference(s) between source {:?} and restored {:?}:\n{}",
            diffs.len(),
            exp.root,
            act.root,
            list.join("\n")
        );
    }
}
