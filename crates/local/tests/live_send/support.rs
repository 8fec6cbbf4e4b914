//! Helpers: a manifest of a tree with every piece of metadata that live-mode commit must
//! reproduce, a varied fixture tree, and a guard that unmounts what a test mounted.

use rustix::fs::{FileType, Mode, OFlags};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Everything about one entry, as text (easy to diff in a failure message).
pub type Manifest = BTreeMap<String, String>;

/// Walk `root` (never following symlinks, reading without updating access times) and describe
/// every entry: type, mode, owner, size, device number, modification and (for non-directories)
/// access times with nanoseconds, content hash, symlink target, extended attributes, and which
/// earlier path it is a hard link of.
pub fn manifest(root: &Path) -> Manifest {
    let mut out = Manifest::new();
    let mut inodes: HashMap<u64, String> = HashMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(root: &Path, p: &Path, out: &mut Manifest, inodes: &mut HashMap<u64, String>) {
    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    let st = rustix::fs::lstat(p).unwrap();
    let ft = FileType::from_raw_mode(st.st_mode);
    let mut d = format!(
        "{ft:?} mode={:o} uid={} gid={}",
        st.st_mode & 0o7777,
        st.st_uid,
        st.st_gid,
    );
    // The empty directory that stands for the nested snapshot subvolume inside a snapshot is
    // made up by btrfs with the current time each time it is looked up.
    if rel != ".snapshots" {
        write!(d, " mtime={}.{:09}", st.st_mtime, st.st_mtime_nsec).unwrap();
    }
    // Reading a symlink updates its access time, and there is no O_NOATIME for readlink.
    if ft != FileType::Directory && ft != FileType::Symlink {
        write!(d, " atime={}.{:09}", st.st_atime, st.st_atime_nsec).unwrap();
    }
    if ft != FileType::Directory && st.st_nlink > 1 {
        match inodes.get(&st.st_ino) {
            Some(first) => write!(d, " hardlink-of={first}").unwrap(),
            None => {
                inodes.insert(st.st_ino, rel.clone());
            }
        }
    }
    match ft {
        FileType::RegularFile => {
            let fd = rustix::fs::open(
                p,
                OFlags::RDONLY | OFlags::NOATIME | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .unwrap();
            let mut f = std::fs::File::from(fd);
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut data).unwrap();
            write!(d, " size={} data={:016x}", data.len(), fnv(&data)).unwrap();
        }
        FileType::Symlink => {
            write!(d, " target={}", std::fs::read_link(p).unwrap().display()).unwrap();
        }
        FileType::CharacterDevice | FileType::BlockDevice => {
            write!(d, " rdev={:x}", st.st_rdev).unwrap();
        }
        _ => {}
    }
    for (name, value) in xattrs(p) {
        write!(d, " xattr:{name}={}", hex(&value)).unwrap();
    }
    // The snapshot directory (a subvolume of its own inside the subvolume) is not part of it.
    let descend = ft == FileType::Directory && rel != ".snapshots";
    out.insert(if rel.is_empty() { "/".into() } else { rel }, d);
    if descend {
        let fd = rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOATIME | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let mut names: Vec<PathBuf> = rustix::fs::Dir::read_from(&fd)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_bytes().to_vec())
            .filter(|n| n != b"." && n != b"..")
            .map(|n| PathBuf::from(std::ffi::OsStr::from_bytes(&n)))
            .collect();
        names.sort();
        for n in names {
            walk(root, &p.join(n), out, inodes);
        }
    }
}

fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// Extended attributes of `p` (not following symlinks), sorted.
pub fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap();
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap().to_string();
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(p, name.as_str(), &mut value[..]).unwrap();
        value.truncate(len);
        out.push((name, value));
    }
    out.sort();
    out
}

/// Panic with a readable list of differences if the manifests differ.
pub fn assert_same(what: &str, expected: &Manifest, got: &Manifest) {
    if expected == got {
        return;
    }
    let mut msg = format!("{what}: trees differ\n");
    for (k, v) in expected {
        match got.get(k) {
            None => writeln!(msg, "  missing {k}: {v}").unwrap(),
            Some(g) if g != v => writeln!(msg, "  {k}:\n    want {v}\n    got  {g}").unwrap(),
            _ => {}
        }
    }
    for (k, v) in got {
        if !expected.contains_key(k) {
            writeln!(msg, "  extra {k}: {v}").unwrap();
        }
    }
    panic!("{msg}");
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn set_times(p: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let ts = |(s, n)| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: n,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

pub fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

/// A varied tree: files (one sparse, one large), nested directories, a symlink, a FIFO, a
/// device node, hard links, extended attributes, ACLs, other owners, setuid, exact times.
pub fn populate(d: &Path) {
    use std::fs;
    fs::write(d.join("a.txt"), b"alpha\n").unwrap();
    set_xattr(&d.join("a.txt"), "user.color", b"blue");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(d.join("big.bin"), &big).unwrap();
    let f = fs::File::create(d.join("sparse.img")).unwrap();
    f.set_len(8 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"middle", 4 << 20).unwrap();
    drop(f);
    for p in [
        "docs/sub",
        "tree/x",
        "tree/y/z",
        "swap1",
        "swap2",
        "olddir/inner",
    ] {
        fs::create_dir_all(d.join(p)).unwrap();
    }
    fs::write(d.join("docs/readme"), b"read me\n").unwrap();
    fs::write(d.join("docs/sub/deep.txt"), b"deep\n").unwrap();
    set_xattr(&d.join("docs"), "user.dir", b"docs");
    set_xattr(&d.join("docs"), "user.gone", b"soon removed");
    fs::write(d.join("tree/x/f"), b"x-f\n").unwrap();
    fs::write(d.join("tree/y/z/g"), b"g\n").unwrap();
    fs::write(d.join("tree/keep"), b"keep\n").unwrap();
    fs::write(d.join("swap1/one"), b"1\n").unwrap();
    fs::write(d.join("swap2/two"), b"2\n").unwrap();
    fs::write(d.join("olddir/inner/old"), b"old\n").unwrap();
    std::os::unix::fs::symlink("a.txt", d.join("link")).unwrap();
    run(Command::new("mkfifo").arg(d.join("pipe")));
    run(Command::new("mknod")
        .arg(d.join("null"))
        .args(["c", "1", "3"]));
    fs::write(d.join("h1"), b"linked\n").unwrap();
    fs::hard_link(d.join("h1"), d.join("h2")).unwrap();
    fs::write(d.join("acl.txt"), b"acl\n").unwrap();
    run(Command::new("setfacl")
        .args(["-m", "u:1000:rw,g:2000:r"])
        .arg(d.join("acl.txt")));
    run(Command::new("setfacl")
        .args(["-d", "-m", "u:1000:rwx"])
        .arg(d.join("docs")));
    fs::write(d.join("owned"), b"owned\n").unwrap();
    std::os::unix::fs::lchown(d.join("owned"), Some(1000), Some(1000)).unwrap();
    fs::write(d.join("suid"), b"#!/bin/sh\n").unwrap();
    rustix::fs::chmod(d.join("suid"), Mode::from_raw_mode(0o4755)).unwrap();
    set_times(
        &d.join("a.txt"),
        (1_600_000_000, 123_456_789),
        (1_500_000_000, 987_654_321),
    );
    set_times(&d.join("tree/x"), (1_600_000_001, 1), (1_500_000_001, 2));
}

/// Unmounts, on drop, every mount below `.0` (deepest first) except `.1` itself (the loop
/// filesystem, which `LoopFs` unmounts), so that a failing test does not leave overlays
/// holding the loop filesystems busy.
pub struct MountGuard(pub PathBuf, pub Vec<PathBuf>);

impl Drop for MountGuard {
    fn drop(&mut self) {
        for _ in 0..3 {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let mut points: Vec<PathBuf> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .map(|p| PathBuf::from(p.replace("\\040", " ")))
                .filter(|p| p.starts_with(&self.0) && !self.1.contains(p))
                .collect();
            if points.is_empty() {
                return;
            }
            points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for p in points {
                let ok = Command::new("umount")
                    .arg(&p)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    let _ = Command::new("umount").arg("-l").arg(&p).status();
                }
            }
        }
    }
}

/// Whether anything is mounted at or below `dir`.
pub fn mounted_below(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(str::to_string)
        .collect()
}
