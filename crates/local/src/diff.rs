//! `local diff`: what differs between two directory trees, with Snapper's status flags.
//!
//! The trees are two read-only btrfs snapshots of one subvolume in production, but any two
//! directories work. Both are walked together in name order (a merge of two sorted listings),
//! never following symlinks and never descending into another filesystem or nested subvolume.
//! An entry whose inode number, size, mtime and ctime are the same on both sides is unchanged
//! (btrfs snapshots of one subvolume share inode numbers, and every change of an inode, xattrs
//! and ACLs included, moves its ctime), so an unchanged file is neither read nor its extended
//! attributes listed. Everything else is compared for real: contents byte for byte up to the
//! first difference, symlink targets, device numbers, permission bits, owners, extended
//! attributes and ACLs.
//!
//! This module only reads. Reverting changes is [`crate::undo`]; the CLI renders [`Change`]s.

use crate::{Error, Result};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use snapguard_engine::fsmeta::{self, StatInfo};
use snapguard_format::{NodeKind, Xattr};
use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The extended attributes that hold POSIX ACLs; a difference in them is the `a` flag, a
/// difference in any other attribute the `x` flag.
const ACL_XATTRS: [&[u8]; 2] = [b"system.posix_acl_access", b"system.posix_acl_default"];

/// How much of each file is read at a time when contents are compared.
const COMPARE_BUFFER: usize = 1 << 20;

/// What [`diff`] looks at.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// Report only these paths and what lies below them (relative to the tree roots; `.`
    /// components are ignored, absolute paths and `..` are refused). Empty: the whole tree.
    pub paths: Vec<PathBuf>,
}

/// How one path differs: Snapper's status flags.
///
/// `Display` gives Snapper's six-character string: the first character is `+` (created),
/// `-` (deleted), `t` (type changed), `c` (content changed) or `.`, then `p` (permission
/// bits, including setuid, setgid and sticky), `u` (owner), `g` (group), `x` (extended
/// attributes other than ACLs) and `a` (ACLs), each `.` when unchanged. A created or deleted
/// entry has no other flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Status {
    /// The path exists only in the new tree.
    pub created: bool,
    /// The path exists only in the old tree.
    pub deleted: bool,
    /// The type changed (file, directory, symlink, FIFO, socket, character or block device).
    /// Contents are not compared then.
    #[serde(rename = "type")]
    pub type_changed: bool,
    /// File contents, the symlink target, or the device number differ.
    pub content: bool,
    /// The permission bits differ (`st_mode & 0o7777`).
    pub permissions: bool,
    /// The owner (uid) differs.
    pub user: bool,
    /// The group (gid) differs.
    pub group: bool,
    /// Extended attributes other than ACLs differ (added, removed or changed value).
    pub xattrs: bool,
    /// The access or default ACL (`system.posix_acl_access`, `system.posix_acl_default`)
    /// differs.
    pub acl: bool,
}

impl Status {
    /// No flag set: the path is the same in both trees.
    pub fn is_unchanged(&self) -> bool {
        *self == Status::default()
    }

    /// Snapper's status string, e.g. `c.ug..` (see the type's documentation).
    pub fn snapper(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = if self.created {
            '+'
        } else if self.deleted {
            '-'
        } else if self.type_changed {
            't'
        } else if self.content {
            'c'
        } else {
            '.'
        };
        let flag = |on: bool, c: char| if on { c } else { '.' };
        write!(
            f,
            "{first}{}{}{}{}{}",
            flag(self.permissions, 'p'),
            flag(self.user, 'u'),
            flag(self.group, 'g'),
            flag(self.xattrs, 'x'),
            flag(self.acl, 'a'),
        )
    }
}

/// One path that differs between the trees.
///
/// Serializes (for `--json`) as `{"path": …, "status": "c.p...", "flags": {"created": false,
/// …}}`, plus `"path_hex"` (the raw bytes in hex) when the path is not valid UTF-8, in which
/// case `"path"` is a lossy rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Relative to the tree roots; never empty (the roots themselves are not compared). File
    /// names are raw bytes and need not be UTF-8.
    pub path: PathBuf,
    pub status: Status,
}

impl Serialize for Change {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Change", 4)?;
        serialize_path_fields(&mut m, &self.path)?;
        m.serialize_field("status", &self.status.to_string())?;
        m.serialize_field("flags", &self.status)?;
        m.end()
    }
}

/// Write `path` (lossy) and, for a path that is not UTF-8, `path_hex` into a struct.
pub(crate) fn serialize_path_fields<M: SerializeStruct>(
    m: &mut M,
    path: &Path,
) -> std::result::Result<(), M::Error> {
    let bytes = path.as_os_str().as_bytes();
    m.serialize_field("path", &path.to_string_lossy())?;
    if std::str::from_utf8(bytes).is_ok() {
        m.skip_field("path_hex")
    } else {
        m.serialize_field("path_hex", &hex::encode(bytes))
    }
}

/// Every path that differs between `old` and `new`, in path order (component by component,
/// as `Path` orders them: a directory comes right before its contents), with its [`Status`].
///
/// An entry that exists on one side only is reported as created or deleted, and so is every
/// entry below it. A directory that is the root of another filesystem or of a nested btrfs
/// subvolume (its device differs from its tree root's; in a snapshot, a nested subvolume is an
/// empty placeholder directory on a device of its own) is never entered, on either side; it
/// is reported when it appears, disappears or replaces a directory of the tree, but not
/// compared when it is nested on both sides (so the snapshot directory, a subvolume of its
/// own, never shows up). The roots themselves are not compared.
///
/// An entry whose inode number, size, mtime and ctime (and type, mode and owners) agree on
/// both sides counts as unchanged without reading it. That is exact for btrfs snapshots of one
/// subvolume: the kernel moves ctime on every change of an inode and userspace cannot set it.
/// Otherwise regular files are compared byte for byte up to the first difference.
///
/// Errors: a root that is not a directory ([`Error::NotADirectory`]), a path in
/// `opts.paths` that is absolute or contains `..` ([`Error::PathOutsideTree`]), and any entry
/// that cannot be read ([`Error::Io`], naming it): a partial answer would be misleading.
pub fn diff(old: &Path, new: &Path, opts: &DiffOptions) -> Result<Vec<Change>> {
    let scope = Scope::new(&opts.paths)?;
    let old_dev = root_dev(old)?;
    let new_dev = root_dev(new)?;
    let mut walker = Walker {
        old: old.to_path_buf(),
        new: new.to_path_buf(),
        rel: PathBuf::new(),
        old_dev,
        new_dev,
        scope,
        buffers: None,
        out: Vec::new(),
    };
    walker.run()?;
    tracing::debug!(
        old = %old.display(),
        new = %new.display(),
        changes = walker.out.len(),
        "compared trees"
    );
    Ok(walker.out)
}

/// The device of a tree root, which must be a directory.
fn root_dev(root: &Path) -> Result<u64> {
    match fsmeta::lstat(root) {
        Ok(st) if st.kind == Some(NodeKind::Dir) => Ok(st.dev),
        Ok(_) => Err(Error::NotADirectory {
            path: root.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotADirectory {
            path: root.to_path_buf(),
        }),
        Err(e) => Err(Error::io("read", root, e)),
    }
}

/// The part of a tree that [`diff`] (and so `undo`) looks at: everything, or the given paths
/// and what lies below them.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    /// `None`: the whole tree. Otherwise normalized relative paths, none empty.
    paths: Option<Vec<PathBuf>>,
}

impl Scope {
    /// Normalize `paths` (drop `.` components; refuse absolute paths and `..`). No paths, or
    /// one that names the root (`.`), is the whole tree.
    pub(crate) fn new(paths: &[PathBuf]) -> Result<Scope> {
        let mut out = Vec::new();
        for p in paths {
            let n = normalize(p)?;
            if n.as_os_str().is_empty() {
                return Ok(Scope { paths: None });
            }
            out.push(n);
        }
        Ok(Scope {
            paths: if out.is_empty() { None } else { Some(out) },
        })
    }

    /// `rel` is one of the paths or lies below one.
    fn selects(&self, rel: &Path) -> bool {
        match &self.paths {
            None => true,
            Some(ps) => ps.iter().any(|p| rel.starts_with(p)),
        }
    }

    /// One of the paths lies below `rel`, so the walk must go through it.
    fn leads_to(&self, rel: &Path) -> bool {
        match &self.paths {
            None => true,
            Some(ps) => ps.iter().any(|p| p.starts_with(rel) && p != rel),
        }
    }
}

/// A relative path with only normal components, or an error naming `p`.
pub(crate) fn normalize(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(Error::PathOutsideTree {
                    path: p.to_path_buf(),
                    reason: "'..' is not allowed",
                })
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Error::PathOutsideTree {
                    path: p.to_path_buf(),
                    reason: "it is absolute",
                })
            }
        }
    }
    Ok(out)
}

/// The type of an entry, sockets included (which `NodeKind` leaves out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Node(NodeKind),
    Socket,
    Unknown,
}

pub(crate) fn kind_of(st: &StatInfo) -> Kind {
    match st.kind {
        Some(k) => Kind::Node(k),
        None if st.is_socket => Kind::Socket,
        None => Kind::Unknown,
    }
}

fn is_dir(st: &StatInfo) -> bool {
    st.kind == Some(NodeKind::Dir)
}

/// One directory being merged: the names of both sides, sorted, and how far the walk got.
struct Frame {
    /// (name, exists in old, exists in new)
    names: Vec<(Vec<u8>, bool, bool)>,
    next: usize,
    /// The directory is in the scope, so everything below it is.
    selected: bool,
}

struct Walker {
    old: PathBuf,
    new: PathBuf,
    /// The current entry relative to the roots; `old` and `new` are kept at root + `rel`.
    rel: PathBuf,
    old_dev: u64,
    new_dev: u64,
    scope: Scope,
    /// Two buffers for comparing contents, allocated on the first comparison.
    buffers: Option<(Vec<u8>, Vec<u8>)>,
    out: Vec<Change>,
}

impl Walker {
    /// Depth-first over both trees with an explicit stack (no recursion, so any depth works).
    fn run(&mut self) -> Result<()> {
        let root_selected = self.scope.selects(Path::new(""));
        let mut stack = vec![self.frame(true, true, root_selected)?];
        while let Some(top) = stack.last_mut() {
            if top.next == top.names.len() {
                stack.pop();
                if !stack.is_empty() {
                    self.pop();
                }
                continue;
            }
            let (name, in_old, in_new) = std::mem::take(&mut top.names[top.next]);
            top.next += 1;
            let parent_selected = top.selected;
            self.push(&name);
            let selected = parent_selected || self.scope.selects(&self.rel);
            if !selected && !self.scope.leads_to(&self.rel) {
                self.pop();
                continue;
            }
            let o = if in_old { self.lstat(true)? } else { None };
            let n = if in_new { self.lstat(false)? } else { None };
            // A mount point or nested subvolume root: its device is not its tree root's. (In a
            // snapshot, a nested subvolume is an empty placeholder directory on a device of
            // its own.)
            let boundary_old = o.is_some_and(|s| is_dir(&s) && s.dev != self.old_dev);
            let boundary_new = n.is_some_and(|s| is_dir(&s) && s.dev != self.new_dev);
            if selected {
                let status = match (&o, &n) {
                    // Nested on both sides: a placeholder's metadata says nothing about the
                    // subvolume, and what is in it is not part of this tree.
                    (Some(_), Some(_)) if boundary_old && boundary_new => Status::default(),
                    (Some(o), Some(n)) => self.compare(o, n)?,
                    (Some(_), None) => Status {
                        deleted: true,
                        ..Status::default()
                    },
                    (None, Some(_)) => Status {
                        created: true,
                        ..Status::default()
                    },
                    (None, None) => Status::default(),
                };
                if !status.is_unchanged() {
                    self.out.push(Change {
                        path: self.rel.clone(),
                        status,
                    });
                }
            }
            // Enter directories of this filesystem only; a mount point or nested subvolume on
            // either side stops the walk on both.
            let boundary = boundary_old || boundary_new;
            let enter_old = o.is_some_and(|s| is_dir(&s));
            let enter_new = n.is_some_and(|s| is_dir(&s));
            if !boundary && (enter_old || enter_new) {
                let frame = self.frame(enter_old, enter_new, selected)?;
                stack.push(frame);
            } else {
                self.pop();
            }
        }
        Ok(())
    }

    fn push(&mut self, name: &[u8]) {
        let name = OsStr::from_bytes(name);
        self.rel.push(name);
        self.old.push(name);
        self.new.push(name);
    }

    fn pop(&mut self) {
        self.rel.pop();
        self.old.pop();
        self.new.pop();
    }

    /// The merged, sorted listing of the current directory on the sides that have it.
    fn frame(&self, old: bool, new: bool, selected: bool) -> Result<Frame> {
        let list = |dir: &Path| -> Result<Vec<Vec<u8>>> {
            let mut names = fsmeta::read_dir_names(dir, true)
                .map_err(|e| Error::io("read directory", dir, e))?;
            names.sort_unstable();
            Ok(names)
        };
        let a = if old { list(&self.old)? } else { Vec::new() };
        let b = if new { list(&self.new)? } else { Vec::new() };
        let mut names = Vec::with_capacity(a.len().max(b.len()));
        let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => a.next().map(|x| (x, true, false)),
                (None, Some(_)) => b.next().map(|y| (y, false, true)),
                (Some(x), Some(y)) => match x.cmp(y) {
                    std::cmp::Ordering::Less => a.next().map(|x| (x, true, false)),
                    std::cmp::Ordering::Greater => b.next().map(|y| (y, false, true)),
                    std::cmp::Ordering::Equal => {
                        b.next();
                        a.next().map(|x| (x, true, true))
                    }
                },
            };
            names.extend(next);
        }
        Ok(Frame {
            names,
            next: 0,
            selected,
        })
    }

    /// `lstat` of the current entry on one side; `None` if it vanished since the listing
    /// (possible only when a tree is being modified, never in a read-only snapshot).
    fn lstat(&self, old: bool) -> Result<Option<StatInfo>> {
        let path = if old { &self.old } else { &self.new };
        match fsmeta::lstat(path) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Compare the current entry, present on both sides.
    fn compare(&mut self, o: &StatInfo, n: &StatInfo) -> Result<Status> {
        let kind = kind_of(o);
        let same_kind = kind == kind_of(n);
        if same_kind && unchanged_inode(o, n) {
            return Ok(Status::default());
        }
        let mut s = Status {
            type_changed: !same_kind,
            permissions: o.mode != n.mode,
            user: o.uid != n.uid,
            group: o.gid != n.gid,
            ..Status::default()
        };
        if same_kind {
            s.content = match kind {
                Kind::Node(NodeKind::File) => !self.same_file_content(o, n)?,
                Kind::Node(NodeKind::Symlink) => read_link(&self.old)? != read_link(&self.new)?,
                Kind::Node(NodeKind::CharDevice | NodeKind::BlockDevice) => o.rdev != n.rdev,
                _ => false,
            };
        }
        let xo = fsmeta::read_xattrs(&self.old)
            .map_err(|e| Error::io("read xattrs of", &self.old, e))?;
        let xn = fsmeta::read_xattrs(&self.new)
            .map_err(|e| Error::io("read xattrs of", &self.new, e))?;
        let (acl_o, other_o): (Vec<&Xattr>, Vec<&Xattr>) = xo.iter().partition(|x| is_acl(x));
        let (acl_n, other_n): (Vec<&Xattr>, Vec<&Xattr>) = xn.iter().partition(|x| is_acl(x));
        s.acl = acl_o != acl_n;
        s.xattrs = other_o != other_n;
        Ok(s)
    }

    /// Whether the regular files at the current path have the same bytes. Sizes first, then
    /// both files in big blocks up to the first difference.
    fn same_file_content(&mut self, o: &StatInfo, n: &StatInfo) -> Result<bool> {
        if o.size != n.size {
            return Ok(false);
        }
        if o.size == 0 {
            return Ok(true);
        }
        let mut fo = open_for_reading(&self.old)?;
        let mut fn_ = open_for_reading(&self.new)?;
        let (bo, bn) = self
            .buffers
            .get_or_insert_with(|| (vec![0; COMPARE_BUFFER], vec![0; COMPARE_BUFFER]));
        loop {
            let a = fill(&mut fo, bo).map_err(|e| Error::io("read", &self.old, e))?;
            let b = fill(&mut fn_, bn).map_err(|e| Error::io("read", &self.new, e))?;
            if a != b || bo[..a] != bn[..b] {
                return Ok(false);
            }
            if a < bo.len() {
                return Ok(true);
            }
        }
    }
}

/// Both sides are the same inode in the same state: equal inode number, type bits, size,
/// times, mode, owners and device number. For clones of one subvolume (btrfs snapshots) that
/// means nothing about the inode changed, xattrs included, because every change moves ctime.
fn unchanged_inode(o: &StatInfo, n: &StatInfo) -> bool {
    o.ino == n.ino
        && o.ctime == n.ctime
        && o.mtime == n.mtime
        && o.size == n.size
        && o.mode == n.mode
        && o.uid == n.uid
        && o.gid == n.gid
        && o.rdev == n.rdev
}

fn is_acl(x: &Xattr) -> bool {
    ACL_XATTRS.contains(&x.name.as_slice())
}

/// Open a file to read its contents, without updating its access time where allowed and never
/// following a symlink.
pub(crate) fn open_for_reading(path: &Path) -> Result<File> {
    use rustix::fs::{Mode, OFlags};
    let base = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = match rustix::fs::open(path, base | OFlags::NOATIME, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::PERM) => rustix::fs::open(path, base, Mode::empty())
            .map_err(|e| Error::io("open", path, e.into()))?,
        Err(e) => return Err(Error::io("open", path, e.into())),
    };
    Ok(File::from(fd))
}

/// Read until `buf` is full or the file ends; the number of bytes read.
fn fill(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A symlink's target bytes.
pub(crate) fn read_link(path: &Path) -> Result<Vec<u8>> {
    rustix::fs::readlink(path, Vec::new())
        .map(|t| t.into_bytes())
        .map_err(|e| Error::io("read symlink", path, e.into()))
}

#[cfg(test)]
mod tests;
