//! Builder for source trees with exact, known metadata.
//!
//! Content, links, owners and xattrs are applied immediately; modes are
//! applied in `finish` (deepest first, so 000 directories can still be
//! filled), and timestamps LAST (children before parents), to every entry
//! of the tree, with explicit sec+nsec values. `finish` then checks the
//! scanned tree really carries those timestamps.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};
use rustix::io::Errno;

use super::compare::{fmt_time, Tree};
use super::XorShift;

/// Interesting timestamps: before 1970, around 2038, after 2038, 0, 1 ns.
pub const TIMES: &[(i64, i64)] = &[
    (-1_234_567_891, 876_543_211), // -1234567890.123456789
    (4_102_444_800, 999_999_999),
    (0, 1),
    (-1, 999_999_999), // -0.000000001
    (1_234_567_890, 123_456_789),
    (2_147_483_647, 999_999_999),
    (2_147_483_648, 1),
    (946_684_799, 500_000_000),
    (-2_000_000_000, 0),
    (1_700_000_000, 0),
];

/// (atime, mtime), each as (seconds, nanoseconds).
pub type AtimeMtime = ((i64, i64), (i64, i64));

pub fn ts(t: (i64, i64)) -> Timespec {
    Timespec {
        tv_sec: t.0,
        tv_nsec: t.1 as _,
    }
}

pub struct Fixture {
    pub root: PathBuf,
    modes: Vec<(PathBuf, u32)>,
    times: BTreeMap<PathBuf, AtimeMtime>,
    /// Things that could not be created here (not root, unsupported...).
    pub notes: Vec<String>,
}

/// The finished fixture.
pub struct Built {
    pub root: PathBuf,
    /// Source tree scanned right after creation (before any backup reads it).
    pub tree: Tree,
    /// Timestamps (atime, mtime) set on each entry.
    pub times: BTreeMap<PathBuf, AtimeMtime>,
    pub notes: Vec<String>,
}

impl Fixture {
    /// Creates `root` (and its parents).
    pub fn new(root: &Path) -> Fixture {
        fs::create_dir_all(root).unwrap_or_else(|e| panic!("mkdir {root:?}: {e}"));
        Fixture {
            root: root.to_path_buf(),
            modes: Vec::new(),
            times: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        if rel.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn note(&mut self, msg: String) {
        eprintln!("fixture note: {msg}");
        self.notes.push(msg);
    }

    fn parent(&self, rel: &Path) {
        if let Some(p) = self.path(rel).parent() {
            fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir -p {p:?}: {e}"));
        }
    }

    pub fn dir(&mut self, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir -p {p:?}: {e}"));
        p
    }

    pub fn file(&mut self, rel: impl AsRef<Path>, content: &[u8]) -> PathBuf {
        let rel = rel.as_ref();
        self.parent(rel);
        let p = self.path(rel);
        fs::write(&p, content).unwrap_or_else(|e| panic!("write {p:?}: {e}"));
        p
    }

    /// A file of `len` pseudo-random bytes, written in 1 MiB pieces.
    pub fn random_file(&mut self, rel: impl AsRef<Path>, len: u64, seed: u64) -> PathBuf {
        let rel = rel.as_ref();
        self.parent(rel);
        let p = self.path(rel);
        let mut f = File::create(&p).unwrap_or_else(|e| panic!("create {p:?}: {e}"));
        let mut rng = XorShift::new(seed);
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill(&mut buf[..n]);
            f.write_all(&buf[..n]).expect("write random file");
            left -= n as u64;
        }
        p
    }

    /// A sparse file of `size` bytes with random data at the given (offset, len).
    pub fn sparse_file(
        &mut self,
        rel: impl AsRef<Path>,
        size: u64,
        data: &[(u64, usize)],
        seed: u64,
    ) -> PathBuf {
        let rel = rel.as_ref();
        self.parent(rel);
        let p = self.path(rel);
        let f = File::create(&p).unwrap_or_else(|e| panic!("create {p:?}: {e}"));
        f.set_len(size).expect("set_len");
        let mut rng = XorShift::new(seed);
        for &(off, len) in data {
            let mut buf = vec![0u8; len];
            rng.fill(&mut buf);
            f.write_all_at(&buf, off).expect("pwrite");
        }
        p
    }

    pub fn symlink(&mut self, rel: impl AsRef<Path>, target: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        self.parent(rel);
        let p = self.path(rel);
        std::os::unix::fs::symlink(target, &p).unwrap_or_else(|e| panic!("symlink {p:?}: {e}"));
        p
    }

    pub fn hardlink(&mut self, rel: impl AsRef<Path>, existing: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        self.parent(rel);
        let p = self.path(rel);
        fs::hard_link(self.path(existing), &p).unwrap_or_else(|e| panic!("link {p:?}: {e}"));
        p
    }

    pub fn fifo(&mut self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        self.parent(rel);
        let p = self.path(rel);
        rustix::fs::mknodat(CWD, &p, FileType::Fifo, Mode::from_raw_mode(0o644), 0)
            .unwrap_or_else(|e| panic!("mkfifo {p:?}: {e}"));
        p
    }

    /// A character (`char_dev`) or block device; root only. Returns false if skipped.
    pub fn device(
        &mut self,
        rel: impl AsRef<Path>,
        char_dev: bool,
        major: u32,
        minor: u32,
    ) -> bool {
        let rel = rel.as_ref();
        self.parent(rel);
        let p = self.path(rel);
        let ft = if char_dev {
            FileType::CharacterDevice
        } else {
            FileType::BlockDevice
        };
        let dev = rustix::fs::makedev(major, minor);
        match rustix::fs::mknodat(CWD, &p, ft, Mode::from_raw_mode(0o640), dev) {
            Ok(()) => true,
            Err(e) => {
                self.note(format!("device {rel:?} not created: {e}"));
                false
            }
        }
    }

    /// A unix socket (the listener is dropped, the socket file stays).
    pub fn socket(&mut self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        self.parent(rel);
        let p = self.path(rel);
        drop(
            std::os::unix::net::UnixListener::bind(&p)
                .unwrap_or_else(|e| panic!("bind {p:?}: {e}")),
        );
        p
    }

    /// lchown; returns false (with a note) if not permitted.
    pub fn chown(&mut self, rel: impl AsRef<Path>, uid: u32, gid: u32) -> bool {
        let rel = rel.as_ref();
        match std::os::unix::fs::lchown(self.path(rel), Some(uid), Some(gid)) {
            Ok(()) => true,
            Err(e) => {
                self.note(format!("chown {uid}:{gid} {rel:?} skipped: {e}"));
                false
            }
        }
    }

    /// Mode (all 12 bits), applied in `finish`. Never for symlinks.
    pub fn mode(&mut self, rel: impl AsRef<Path>, mode: u32) {
        self.modes.push((rel.as_ref().to_path_buf(), mode));
    }

    /// Set an xattr now; panics on failure.
    pub fn xattr(&mut self, rel: impl AsRef<Path>, name: &str, value: &[u8]) {
        let p = self.path(rel);
        rustix::fs::lsetxattr(&p, name, value, XattrFlags::empty())
            .unwrap_or_else(|e| panic!("setxattr {name} on {p:?}: {e}"));
    }

    /// Set an xattr now if the kernel/privileges allow; returns false (with a note) if not.
    pub fn xattr_optional(&mut self, rel: impl AsRef<Path>, name: &str, value: &[u8]) -> bool {
        let rel = rel.as_ref();
        match rustix::fs::lsetxattr(self.path(rel), name, value, XattrFlags::empty()) {
            Ok(()) => true,
            Err(e @ (Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS)) => {
                self.note(format!("xattr {name} on {rel:?} skipped: {e}"));
                false
            }
            Err(e) => panic!("setxattr {name} on {rel:?}: {e}"),
        }
    }

    /// Explicit (atime, mtime) for one entry; every other entry gets generated ones.
    pub fn times(&mut self, rel: impl AsRef<Path>, atime: (i64, i64), mtime: (i64, i64)) {
        self.times
            .insert(rel.as_ref().to_path_buf(), (atime, mtime));
    }

    pub fn finish(mut self) -> Built {
        // Modes, deepest first.
        let mut modes = std::mem::take(&mut self.modes);
        modes.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (rel, mode) in &modes {
            let p = self.path(rel);
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode))
                .unwrap_or_else(|e| panic!("chmod {mode:o} {p:?}: {e}"));
        }
        // Timestamps of every entry, children before parents.
        let mut all = Vec::new();
        collect(&self.root, PathBuf::new(), &mut all);
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        let mut times = BTreeMap::new();
        // Hardlinks share one inode and so one set of timestamps.
        let mut by_inode = BTreeMap::new();
        for (i, rel) in all.iter().enumerate() {
            let p = self.path(rel);
            let meta = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {p:?}: {e}"));
            let own = self
                .times
                .get(rel)
                .copied()
                .unwrap_or_else(|| generated_times(i));
            let t = *by_inode.entry((meta.dev(), meta.ino())).or_insert(own);
            let stamps = Timestamps {
                last_access: ts(t.0),
                last_modification: ts(t.1),
            };
            rustix::fs::utimensat(CWD, &p, &stamps, AtFlags::SYMLINK_NOFOLLOW)
                .unwrap_or_else(|e| panic!("utimensat {p:?}: {e}"));
            times.insert(rel.clone(), t);
        }
        let tree = Tree::scan(&self.root);
        // Harness self-check: the tree carries exactly the times we set.
        for (rel, (at, mt)) in &times {
            let e = tree.get(rel);
            assert_eq!(
                (e.atime, e.mtime),
                (*at, *mt),
                "fixture {rel:?}: times not as set (atime {} mtime {})",
                fmt_time(*at),
                fmt_time(*mt)
            );
        }
        Built {
            root: self.root,
            tree,
            times,
            notes: self.notes,
        }
    }
}

fn generated_times(i: usize) -> AtimeMtime {
    let n = TIMES.len();
    let a = TIMES[i % n];
    let m = TIMES[(i * 7 + 3) % n];
    let k = i as i64;
    (
        (a.0 + 3 * k, a.1),
        (m.0 + 5 * k, (m.1 + 7 * k) % 1_000_000_000),
    )
}

fn collect(root: &Path, rel: PathBuf, out: &mut Vec<PathBuf>) {
    let abs = if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(&rel)
    };
    let is_dir = fs::symlink_metadata(&abs)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    out.push(rel.clone());
    if is_dir {
        let mut names: Vec<_> = fs::read_dir(&abs)
            .unwrap_or_else(|e| panic!("read_dir {abs:?}: {e}"))
            .map(|d| d.expect("dir entry").file_name())
            .collect();
        names.sort();
        for name in names {
            collect(root, rel.join(name), out);
        }
    }
}

/// Rewrite a file in place (used by mutation self-tests).
pub fn overwrite_at(path: &Path, off: u64, data: &[u8]) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.write_all_at(data, off)
}
