//! Building trees with every kind of entry and metadata, and capturing a tree (contents and
//! metadata) to compare two of them.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, CWD};
use snapguard_local::diff::Change;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether tests that chown, mknod and set trusted metadata can run; prints why not.
pub fn root_or_skip() -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        eprintln!("skipped: needs root (chown, device nodes)");
        false
    }
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("parent");
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn mkdir(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
}

pub fn symlink(target: &str, path: &Path) {
    std::os::unix::fs::symlink(target, path).expect("symlink");
}

pub fn chmod(path: &Path, mode: u32) {
    rustix::fs::chmod(path, Mode::from_raw_mode(mode)).expect("chmod");
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    rustix::fs::chownat(
        CWD,
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("chown");
}

pub fn mknod(path: &Path, kind: FileType, rdev: u64) {
    rustix::fs::mknodat(CWD, path, kind, Mode::from_raw_mode(0o640), rdev).expect("mknod");
}

pub fn setxattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).expect("setxattr");
}

pub fn setfacl(args: &[&str], path: &Path) {
    run(Command::new("setfacl").args(args).arg(path));
}

/// Set atime and mtime (seconds, nanoseconds), not following symlinks.
pub fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let ts = |(s, n): (i64, i64)| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: n,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("utimensat");
}

/// One entry's contents and metadata, as compared between trees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    /// `None` for directories and symlinks unless asked for: on a writable tree, listing a
    /// directory or reading a link moves its atime (not on a read-only snapshot).
    pub atime: Option<(i64, i64)>,
    pub rdev: u64,
    pub target: Vec<u8>,
    /// File contents (small files) or a digest of them.
    pub content: Vec<u8>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Hard links: the first path (in path order) of this inode, if that is another path.
    pub link_of: Option<PathBuf>,
}

/// Everything below `root` (not the root itself), by relative path, not entering other
/// filesystems or subvolumes, skipping `skip` (relative paths and what is below them).
/// Metadata is read before a directory is listed and contents last, so capturing does not
/// disturb the times it records.
pub fn capture(root: &Path, all_atimes: bool, skip: &[&str]) -> BTreeMap<PathBuf, Entry> {
    let root_dev = std::fs::symlink_metadata(root).expect("root").dev();
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    let mut files = Vec::new();
    while let Some(rel) = stack.pop() {
        let abs = root.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&abs)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        for name in names {
            let r = rel.join(&name);
            if skip.iter().any(|s| r.starts_with(s)) {
                continue;
            }
            let p = root.join(&r);
            let md = std::fs::symlink_metadata(&p).expect("lstat");
            let ft = md.file_type();
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_file() {
                'f'
            } else if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_fifo() {
                'p'
            } else if ft.is_char_device() {
                'c'
            } else if ft.is_block_device() {
                'b'
            } else {
                's'
            };
            let mut xattrs = BTreeMap::new();
            for x in xattr_names(&p) {
                let mut v = vec![0u8; 65536];
                let n = rustix::fs::lgetxattr(&p, OsStr::from_bytes(&x), &mut v).expect("getxattr");
                v.truncate(n);
                xattrs.insert(x, v);
            }
            let e = Entry {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if kind == 'd' { 0 } else { md.size() },
                mtime: (md.mtime(), md.mtime_nsec()),
                atime: (!matches!(kind, 'd' | 'l') || all_atimes)
                    .then(|| (md.atime(), md.atime_nsec())),
                rdev: if kind == 'c' || kind == 'b' {
                    md.rdev()
                } else {
                    0
                },
                target: if kind == 'l' {
                    std::fs::read_link(&p)
                        .expect("readlink")
                        .into_os_string()
                        .into_vec()
                } else {
                    Vec::new()
                },
                content: Vec::new(),
                xattrs,
                link_of: None,
            };
            out.insert(r.clone(), e);
            if kind == 'f' {
                if md.nlink() > 1 {
                    inodes.entry(md.ino()).or_insert_with(|| r.clone());
                }
                files.push((r.clone(), md.ino(), md.nlink()));
            }
            if kind == 'd' && md.dev() == root_dev {
                stack.push(r);
            }
        }
    }
    // Path order decides which link is "first", whatever order the walk found them in.
    let mut first: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for (r, ino, nlink) in &files {
        if *nlink > 1 {
            let f = first.entry(*ino).or_insert_with(|| r.clone());
            if r < f {
                *f = r.clone();
            }
        }
    }
    for (r, ino, _) in files {
        let content = read_content(&root.join(&r));
        let e = out.get_mut(&r).expect("captured");
        e.content = content;
        if let Some(f) = first.get(&ino) {
            if f != &r {
                e.link_of = Some(f.clone());
            }
        }
    }
    out
}

use std::os::unix::ffi::OsStringExt;

fn xattr_names(p: &Path) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut buf).expect("listxattr");
    buf[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Small files whole; big ones as a digest (length, and a running sum of 64 KiB blocks).
fn read_content(p: &Path) -> Vec<u8> {
    let fd = rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::NOATIME | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .expect("open");
    let mut f = File::from(fd);
    let mut data = Vec::new();
    f.read_to_end(&mut data).expect("read");
    if data.len() <= 1 << 20 {
        return data;
    }
    use std::hash::{Hash, Hasher};
    let mut out = (data.len() as u64).to_le_bytes().to_vec();
    for block in data.chunks(1 << 16) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        block.hash(&mut h);
        out.extend_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// Assert two captures are equal, naming the first difference.
pub fn assert_same(a: &BTreeMap<PathBuf, Entry>, b: &BTreeMap<PathBuf, Entry>, what: &str) {
    for (p, ea) in a {
        match b.get(p) {
            None => panic!("{what}: {} is missing on the right", p.display()),
            Some(eb) => assert_eq!(ea, eb, "{what}: {} differs", p.display()),
        }
    }
    for p in b.keys() {
        assert!(
            a.contains_key(p),
            "{what}: {} is extra on the right",
            p.display()
        );
    }
}

/// A diff as (path, snapper string) pairs for comparing with a table.
pub fn flags(changes: &[Change]) -> Vec<(String, String)> {
    changes
        .iter()
        .map(|c| (c.path.to_string_lossy().into_owned(), c.status.to_string()))
        .collect()
}

pub fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect()
}

/// Bytes read by this thread so far (`/proc/thread-self/io`), to see whether a diff read
/// file contents.
pub fn thread_read_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/io").expect("io accounting");
    s.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar")
}

/// Write `data` at `offset` without changing anything else.
pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.write_all_at(data, offset).expect("write");
}

/// The "rich" tree used by the undo tests: every kind of entry and metadata SnapGuard keeps.
pub fn rich_tree(root: &Path) {
    mkdir(&root.join("docs/deep/deeper"));
    write(&root.join("docs/readme"), b"read me\n");
    write(&root.join("docs/deep/deeper/leaf"), b"leaf");
    write(&root.join("plain"), b"plain contents");
    write(&root.join("setuid"), b"#!/bin/sh\n");
    chmod(&root.join("setuid"), 0o4755);
    mkdir(&root.join("sticky"));
    chmod(&root.join("sticky"), 0o1777);
    write(&root.join("owned"), b"owned by someone");
    chown(&root.join("owned"), 1234, 4321);
    write(&root.join("xattr"), b"with attributes");
    setxattr(&root.join("xattr"), "user.color", b"blue");
    setxattr(&root.join("xattr"), "user.empty", b"");
    write(&root.join("acl"), b"with an ACL");
    setfacl(&["-m", "u:1234:rw,g:4321:r"], &root.join("acl"));
    mkdir(&root.join("acldir"));
    setfacl(&["-d", "-m", "u:1234:rwx"], &root.join("acldir"));
    write(&root.join("acldir/inherited"), b"x");
    symlink("docs/readme", &root.join("link"));
    symlink("/nonexistent/target", &root.join("dangling"));
    mknod(&root.join("fifo"), FileType::Fifo, 0);
    mknod(
        &root.join("chardev"),
        FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
    );
    mknod(
        &root.join("blockdev"),
        FileType::BlockDevice,
        rustix::fs::makedev(7, 200),
    );
    write(&root.join("hard1"), b"linked");
    std::fs::hard_link(root.join("hard1"), root.join("docs/hard2")).expect("link");
    let sparse = root.join("sparse");
    let f = File::create(&sparse).expect("create");
    f.write_all_at(b"start", 0).expect("write");
    f.write_all_at(b"end", (32 << 20) - 3).expect("write");
    drop(f);
    write(
        &root.join(OsStr::from_bytes(b"caf\xe9 latin1")),
        b"not UTF-8 name",
    );
    // Distinct nanosecond times everywhere, directories last.
    let all = capture(root, false, &[]);
    let mut n = 0;
    for (rel, e) in all.iter().rev() {
        n += 1;
        let p = root.join(rel);
        let t = (1_600_000_000 + n * 1000, 123_456_789 + n);
        if e.kind != 'd' {
            set_times(&p, (t.0 + 7, t.1), t);
        }
    }
    for (rel, e) in all.iter().rev() {
        n += 1;
        if e.kind == 'd' {
            let t = (1_600_000_000 + n * 1000, 987_654_321 - n);
            set_times(&root.join(rel), (t.0 + 7, t.1), t);
        }
    }
}

/// Put back the atimes of files that reading them (by `cp`) moved.
pub fn reset_atimes(root: &Path, before: &BTreeMap<PathBuf, Entry>) {
    for (rel, e) in before {
        if let Some(atime) = e.atime {
            if e.kind != 'd' && e.kind != 'l' {
                set_times(&root.join(rel), atime, e.mtime);
            }
        }
    }
}

/// A copy of `src` at `dst` with all metadata (GNU `cp -a`, reflinking where it can).
pub fn copy_tree(src: &Path, dst: &Path) {
    run(Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg("--")
        .arg(src)
        .arg(dst));
}
