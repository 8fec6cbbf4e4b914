//! `local undo`: revert, in the live subvolume, the changes made between two snapshots, as
//! Snapper's `undochange ID1..ID2` does.
//!
//! The plan is the [`diff`](crate::diff::diff) of the two snapshots (restricted to the given
//! paths); nothing is touched before it is complete. It is then carried out in three passes:
//! entries created after the old snapshot are removed, deepest first; deleted and modified
//! entries are restored from the old snapshot, parents first (file contents by
//! [`crate::content`]: a reflink where the filesystem allows it, else a sparse-aware copy;
//! owner, permission bits, extended attributes, ACLs and nanosecond times by the engine's
//! `fsmeta`); and finally directory metadata is applied, deepest first, so that writing into a
//! directory does not disturb the times it gets back.
//!
//! The live tree is changed through directory file descriptors opened one component at a time
//! without following symlinks and without crossing into another filesystem or subvolume, so a
//! symlink in the live tree can never redirect a write outside it. Files, symlinks and special
//! files are built under a temporary name beside their final one and renamed into place, so a
//! reader sees either the current entry or the restored one.
//!
//! This module does not check that `live` is the subvolume the snapshots were taken of: that
//! is the caller's business.

use crate::diff::{self, kind_of, Change, DiffOptions, Kind};
use crate::{Error, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};
use snapguard_engine::fsmeta::{self, StatInfo};
use snapguard_format::{Node, NodeKind};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// What [`undo`] did.
///
/// Every path is relative to the tree roots. An entry that was changed but not completely
/// restored (for example its owner could not be set) is listed in `failed` only, with what
/// went wrong. A non-empty `failed` means the undo was incomplete; the CLI exits non-zero.
///
/// Serializes as `{"removed": [{"path": …}, …], "created": […], "modified": […], "failed":
/// [{"path": …, "error": …}, …]}`, each path with a `"path_hex"` beside it when it is not
/// UTF-8 (as in [`Change`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UndoReport {
    /// Entries created after the old snapshot, now removed from the live tree.
    pub removed: Vec<PathBuf>,
    /// Entries deleted after the old snapshot (or missing parent directories of restored
    /// entries), now recreated from it.
    pub created: Vec<PathBuf>,
    /// Entries changed after the old snapshot (contents, type or metadata), now restored.
    pub modified: Vec<PathBuf>,
    /// Entries that could not be (completely) restored, and why.
    pub failed: Vec<UndoFailure>,
}

impl UndoReport {
    /// Every change was reverted.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// One entry [`undo`] could not restore.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UndoFailure {
    pub path: PathBuf,
    /// What went wrong, for people (it does not repeat the path).
    pub error: String,
}

impl Serialize for UndoFailure {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("UndoFailure", 3)?;
        diff::serialize_path_fields(&mut m, &self.path)?;
        m.serialize_field("error", &self.error)?;
        m.end()
    }
}

impl Serialize for UndoReport {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("UndoReport", 4)?;
        m.serialize_field("removed", &PathList(&self.removed))?;
        m.serialize_field("created", &PathList(&self.created))?;
        m.serialize_field("modified", &PathList(&self.modified))?;
        m.serialize_field("failed", &self.failed)?;
        m.end()
    }
}

/// Paths as a JSON array of `{"path": …, "path_hex"?: …}` objects.
struct PathList<'a>(&'a [PathBuf]);
struct PathEntry<'a>(&'a Path);

impl Serialize for PathList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for p in self.0 {
            seq.serialize_element(&PathEntry(p))?;
        }
        seq.end()
    }
}

impl Serialize for PathEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("PathEntry", 2)?;
        diff::serialize_path_fields(&mut m, self.0)?;
        m.end()
    }
}

/// Make `paths` (relative to the roots; empty: everything) in the `live` tree as they were in
/// `old`, for the changes between `old` and `new`: what [`diff::diff`]`(old, new, paths)`
/// reports is reverted, nothing else is touched.
///
/// - Created (`+`): removed from `live`, deepest first. A directory that holds entries the
///   `new` snapshot does not have (added later) is left in place and reported as failed;
///   nested subvolumes and mount points are never removed.
/// - Deleted (`-`): recreated from `old`, parents first. A missing parent directory is
///   recreated from `old` too (and listed as created).
/// - Type or content changed (`t`, `c`): replaced by `old`'s entry. Metadata only (`p`, `u`,
///   `g`, `x`, `a`): `old`'s metadata applied to the live entry in place.
///
/// Restored entries get all of `old`'s metadata: type, permission bits (setuid, setgid and
/// sticky included), owner and group, nanosecond mtime and atime, extended attributes and
/// ACLs, symlink targets, FIFOs, sockets and device nodes. File contents are cloned by reflink
/// when `old` and `live` are on one btrfs filesystem (instant, no extra space), else copied
/// with holes kept. Files that were hard links of each other in `old` and are both restored are
/// hard links again. A directory whose entries were changed gets `old`'s times back when its
/// live modification time was still that of `new` (so later changes are not hidden).
///
/// Errors (before anything is changed): what [`diff::diff`] refuses (paths that are absolute
/// or contain `..`, unreadable snapshots), and a `live` that is not a directory. Problems with
/// single entries do not stop the undo: they are collected in [`UndoReport::failed`].
pub fn undo(old: &Path, new: &Path, live: &Path, paths: &[PathBuf]) -> Result<UndoReport> {
    let changes = diff::diff(
        old,
        new,
        &DiffOptions {
            paths: paths.to_vec(),
        },
    )?;
    let live_tree = Live::open(live)?;
    let mut u = Undo {
        old,
        new,
        live: live_tree,
        report: UndoReport::default(),
        failed: HashSet::new(),
        finish: BTreeMap::new(),
        touched: HashSet::new(),
        links: HashMap::new(),
        tmp_counter: 0,
    };
    // 1. Remove what was created, deepest first (reverse path order puts every entry before
    //    its directory), and directories that must become something else.
    for c in changes.iter().rev() {
        if c.status.created {
            u.remove_created(&c.path);
        } else if c.status.type_changed {
            u.remove_replaced_dir(&c.path);
        }
    }
    // 2. Restore the rest from `old`, parents first.
    for c in &changes {
        if !c.status.created {
            u.restore(c);
        }
    }
    // 3. Directory metadata, deepest first.
    u.finish_dirs();

    let mut report = u.report;
    report.removed.sort();
    report.created.sort();
    report.modified.sort();
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    tracing::info!(
        live = %live.display(),
        removed = report.removed.len(),
        created = report.created.len(),
        modified = report.modified.len(),
        failed = report.failed.len(),
        "undo finished"
    );
    Ok(report)
}

/// What the last pass does to a directory.
enum Finish {
    /// All of `old`'s metadata: the directory was restored or recreated.
    Full(Node),
    /// Only `old`'s atime and mtime: entries in it were changed.
    Times(Node),
}

struct Undo<'a> {
    old: &'a Path,
    new: &'a Path,
    live: Live,
    report: UndoReport,
    /// Paths that failed; their descendants are not attempted.
    failed: HashSet<PathBuf>,
    finish: BTreeMap<PathBuf, Finish>,
    /// Directories in which an entry was (about to be) added, removed or replaced.
    touched: HashSet<PathBuf>,
    /// Inode number in `old` → where this run restored that file, for hard links.
    links: HashMap<u64, PathBuf>,
    tmp_counter: u64,
}

/// A directory of the live tree: its path relative to the root and a descriptor pinning it.
#[derive(Clone)]
struct Dir {
    rel: PathBuf,
    fd: Rc<OwnedFd>,
}

/// Why a directory of the live tree could not be opened.
enum DirError {
    /// It (or a parent) does not exist.
    Missing,
    Other(String),
}

impl Undo<'_> {
    fn fail(&mut self, rel: &Path, error: impl Into<String>) {
        let error = error.into();
        // Not a warning: the report carries it, and the caller shows it.
        tracing::debug!(path = %rel.display(), %error, "undo: entry not restored");
        self.failed.insert(rel.to_path_buf());
        self.report.failed.push(UndoFailure {
            path: rel.to_path_buf(),
            error,
        });
    }

    /// The nearest ancestor of `rel` that failed, if any.
    fn failed_ancestor(&self, rel: &Path) -> Option<PathBuf> {
        rel.ancestors()
            .skip(1)
            .find(|a| self.failed.contains(*a))
            .map(Path::to_path_buf)
    }

    /// Called before the first entry is added to, removed from or replaced in `dir`: the
    /// directory will get `old`'s times back in pass 3 if it is a directory in `old` and `new`
    /// and its live mtime is still `new`'s (so no change made after `new` is hidden).
    fn touch(&mut self, dir: &Dir) {
        if !self.touched.insert(dir.rel.clone()) || self.finish.contains_key(&dir.rel) {
            return;
        }
        let (Ok(o), Ok(n)) = (
            fsmeta::lstat(&self.old.join(&dir.rel)),
            fsmeta::lstat(&self.new.join(&dir.rel)),
        ) else {
            return;
        };
        if o.kind != Some(NodeKind::Dir) || n.kind != Some(NodeKind::Dir) {
            return;
        }
        let Ok(live) = rustix::fs::fstat(&*dir.fd).map(|st| fsmeta::stat_info(&st)) else {
            return;
        };
        if live.mtime == n.mtime {
            self.finish
                .insert(dir.rel.clone(), Finish::Times(node_from(&o)));
        }
    }

    fn touch_and_remove(
        &mut self,
        dir: &Dir,
        name: &OsStr,
        st: &StatInfo,
    ) -> std::result::Result<(), String> {
        self.touch(dir);
        self.live.remove(dir, name, st)
    }

    /// Pass 1 for a created entry: remove it from the live tree if it is there.
    fn remove_created(&mut self, rel: &Path) {
        let (parent, name) = split(rel);
        let dir = match self.live.dir(parent) {
            Ok(d) => d,
            // Already gone with its parent.
            Err(DirError::Missing) => return,
            Err(DirError::Other(e)) => return self.fail(rel, e),
        };
        match self.live.stat_at(&dir, name) {
            Ok(None) => {}
            Ok(Some(st)) => match self.touch_and_remove(&dir, name, &st) {
                Ok(()) => self.report.removed.push(rel.to_path_buf()),
                Err(e) => self.fail(rel, e),
            },
            Err(e) => self.fail(rel, format!("cannot read it in the live tree: {e}")),
        }
    }

    /// Pass 1 for a type change: a live directory where `old` has something else is removed
    /// now, after the entries created in it (which come earlier in reverse order). Other
    /// entries are replaced in pass 2 by a rename.
    fn remove_replaced_dir(&mut self, rel: &Path) {
        let old_is_dir = fsmeta::lstat(&self.old.join(rel))
            .map(|st| st.kind == Some(NodeKind::Dir))
            .unwrap_or(false);
        if old_is_dir {
            return;
        }
        let (parent, name) = split(rel);
        let Ok(dir) = self.live.dir(parent) else {
            return;
        };
        if let Ok(Some(st)) = self.live.stat_at(&dir, name) {
            if st.kind == Some(NodeKind::Dir) {
                if let Err(e) = self.touch_and_remove(&dir, name, &st) {
                    self.fail(rel, e);
                }
            }
        }
    }

    /// Pass 2: make the live entry at `rel` what it is in `old`.
    fn restore(&mut self, c: &Change) {
        let rel = c.path.as_path();
        if self.failed.contains(rel) {
            return;
        }
        if let Some(a) = self.failed_ancestor(rel) {
            return self.fail(
                rel,
                format!("not restored because {} could not be restored", a.display()),
            );
        }
        let old_path = self.old.join(rel);
        let o = match fsmeta::lstat(&old_path) {
            Ok(st) => st,
            Err(e) => return self.fail(rel, format!("cannot read {}: {e}", old_path.display())),
        };
        let mut node = node_from(&o);
        match fsmeta::read_xattrs(&old_path) {
            Ok(x) => node.xattrs = x,
            Err(e) => {
                return self.fail(
                    rel,
                    format!(
                        "cannot read the extended attributes of {}: {e}",
                        old_path.display()
                    ),
                )
            }
        }
        let (parent, name) = split(rel);
        let dir = match self.ensure_dir(parent) {
            Ok(d) => d,
            Err(e) => return self.fail(rel, e),
        };
        let live = match self.live.stat_at(&dir, name) {
            Ok(l) => l,
            Err(e) => return self.fail(rel, format!("cannot read it in the live tree: {e}")),
        };
        let same_kind = live.is_some_and(|l| kind_of(&l) == kind_of(&o));
        let needs_content = c.status.deleted || c.status.type_changed || c.status.content;
        let result = if o.kind == Some(NodeKind::Dir) {
            self.restore_dir(&dir, name, live.as_ref(), same_kind)
                .map(|()| {
                    self.finish.insert(rel.to_path_buf(), Finish::Full(node));
                })
        } else if same_kind && !needs_content {
            let path = self.live.meta_path(&dir, name);
            let warnings = fsmeta::apply_metadata(&path, &node);
            if warnings.is_empty() {
                Ok(())
            } else {
                Err(warnings.join("; "))
            }
        } else {
            self.replace(rel, &old_path, &o, &node, &dir, name, live.as_ref())
        };
        match result {
            Ok(()) if c.status.deleted => self.report.created.push(rel.to_path_buf()),
            Ok(()) => self.report.modified.push(rel.to_path_buf()),
            Err(e) => self.fail(rel, e),
        }
    }

    /// A directory in `old`: keep a live directory (its metadata comes in pass 3), or replace
    /// whatever else is there by a new one.
    fn restore_dir(
        &mut self,
        dir: &Dir,
        name: &OsStr,
        live: Option<&StatInfo>,
        same_kind: bool,
    ) -> std::result::Result<(), String> {
        if let Some(l) = live {
            if same_kind && l.dev != self.live.dev {
                return Err(
                    "it is a nested subvolume or mount point in the live tree; it was not changed"
                        .into(),
                );
            }
            if same_kind {
                return Ok(());
            }
            self.touch_and_remove(dir, name, l)?;
        }
        self.touch(dir);
        rustix::fs::mkdirat(&*dir.fd, name, Mode::from_raw_mode(0o700))
            .map_err(|e| format!("cannot create the directory: {e}"))
    }

    /// A non-directory in `old`: build it under a temporary name beside `name`, give it its
    /// metadata, and rename it over the live entry (removing a live directory first).
    #[allow(clippy::too_many_arguments)]
    fn replace(
        &mut self,
        rel: &Path,
        old_path: &Path,
        o: &StatInfo,
        node: &Node,
        dir: &Dir,
        name: &OsStr,
        live: Option<&StatInfo>,
    ) -> std::result::Result<(), String> {
        self.touch(dir);
        let linked = if o.kind == Some(NodeKind::File) && o.nlink > 1 {
            self.links.get(&o.ino).cloned()
        } else {
            None
        };
        let (tmp, warnings) = match linked {
            Some(first) => match self.link_tmp(&first, dir) {
                Ok(tmp) => (tmp, Vec::new()),
                // The first copy is gone or cannot be linked to: copy instead.
                Err(e) => {
                    tracing::debug!(path = %rel.display(), error = %e, "hard link not restored, copying");
                    self.build_tmp(old_path, o, node, dir)?
                }
            },
            None => self.build_tmp(old_path, o, node, dir)?,
        };
        let result = (|| {
            if let Some(l) = live {
                if l.kind == Some(NodeKind::Dir) {
                    self.live.remove(dir, name, l)?;
                }
            }
            rustix::fs::renameat(&*dir.fd, &tmp, &*dir.fd, name)
                .map_err(|e| format!("cannot rename the restored copy into place: {e}"))
        })();
        if let Err(e) = result {
            let _ = rustix::fs::unlinkat(&*dir.fd, &tmp, AtFlags::empty());
            return Err(e);
        }
        if o.kind == Some(NodeKind::File) && o.nlink > 1 {
            self.links.entry(o.ino).or_insert_with(|| rel.to_path_buf());
        }
        if warnings.is_empty() {
            Ok(())
        } else {
            Err(format!("restored, but {}", warnings.join("; ")))
        }
    }

    /// Create `old`'s entry under a new temporary name in `dir`, with its metadata. Returns
    /// the name and the metadata warnings.
    fn build_tmp(
        &mut self,
        old_path: &Path,
        o: &StatInfo,
        node: &Node,
        dir: &Dir,
    ) -> std::result::Result<(OsString, Vec<String>), String> {
        let fd = &*dir.fd;
        let tmp = match kind_of(o) {
            Kind::Node(NodeKind::File) => self.copy_file_tmp(old_path, o, dir)?,
            Kind::Node(NodeKind::Symlink) => {
                let target = diff::read_link(old_path).map_err(|e| e.to_string())?;
                create_tmp(&mut self.tmp_counter, |t| {
                    rustix::fs::symlinkat(OsStr::from_bytes(&target), fd, t).map_err(Into::into)
                })
                .map_err(|e| format!("cannot create the symlink: {e}"))?
            }
            Kind::Node(NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice) => {
                let live = &self.live;
                create_tmp(&mut self.tmp_counter, |t| {
                    fsmeta::make_special(&live.meta_path(dir, t), node)
                })
                .map_err(|e| format!("cannot create the special file: {e}"))?
            }
            Kind::Socket => create_tmp(&mut self.tmp_counter, |t| {
                rustix::fs::mknodat(fd, t, FileType::Socket, Mode::from_raw_mode(0o600), 0)
                    .map_err(Into::into)
            })
            .map_err(|e| format!("cannot create the socket: {e}"))?,
            Kind::Node(NodeKind::Dir) | Kind::Unknown => {
                return Err("the entry in the old snapshot is of an unknown type".into())
            }
        };
        let warnings = fsmeta::apply_metadata(&self.live.meta_path(dir, &tmp), node);
        Ok((tmp, warnings))
    }

    /// A hard link to the file this run restored at `first`, under a temporary name in `dir`.
    fn link_tmp(&mut self, first: &Path, dir: &Dir) -> std::result::Result<OsString, String> {
        let (parent, name) = split(first);
        let src = match self.live.dir(parent) {
            Ok(d) => d,
            Err(DirError::Missing) => return Err("its first link is gone".into()),
            Err(DirError::Other(e)) => return Err(e),
        };
        create_tmp(&mut self.tmp_counter, |t| {
            rustix::fs::linkat(&*src.fd, name, &*dir.fd, t, AtFlags::empty()).map_err(Into::into)
        })
        .map_err(|e| format!("cannot link to {}: {e}", first.display()))
    }

    /// Copy a regular file of `old` into a new temporary file in `dir`: by reflink where the
    /// filesystem can, else the data ranges only, so holes stay holes.
    fn copy_file_tmp(
        &mut self,
        old_path: &Path,
        o: &StatInfo,
        dir: &Dir,
    ) -> std::result::Result<OsString, String> {
        let src = diff::open_for_reading(old_path).map_err(|e| e.to_string())?;
        let mut opened = None;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let tmp = create_tmp(&mut self.tmp_counter, |t| {
            opened = Some(rustix::fs::openat(
                &*dir.fd,
                t,
                flags,
                Mode::from_raw_mode(0o600),
            )?);
            Ok(())
        })
        .map_err(|e| format!("cannot create a file in the live tree: {e}"))?;
        let Some(fd) = opened else {
            return Err("internal error: temporary file not opened".into());
        };
        let dst = File::from(fd);
        if let Err(e) = crate::content::copy_content(&src, &dst, o.size) {
            let _ = rustix::fs::unlinkat(&*dir.fd, &tmp, AtFlags::empty());
            return Err(format!(
                "cannot copy the contents of {}: {e}",
                old_path.display()
            ));
        }
        Ok(tmp)
    }

    /// The live directory `rel`, recreating missing directories on the way from `old`.
    fn ensure_dir(&mut self, rel: &Path) -> std::result::Result<Dir, String> {
        match self.live.dir(rel) {
            Ok(d) => return Ok(d),
            Err(DirError::Other(e)) => return Err(e),
            Err(DirError::Missing) => {}
        }
        let mut prefix = PathBuf::new();
        for comp in rel.components() {
            let parent = prefix.clone();
            prefix.push(comp);
            match self.live.dir(&prefix) {
                Ok(_) => continue,
                Err(DirError::Other(e)) => return Err(e),
                Err(DirError::Missing) => {}
            }
            let o = match fsmeta::lstat(&self.old.join(&prefix)) {
                Ok(st) if st.kind == Some(NodeKind::Dir) => st,
                _ => {
                    return Err(format!(
                        "its parent directory {} is missing in the live tree and is not a directory in the old snapshot",
                        prefix.display()
                    ))
                }
            };
            let mut node = node_from(&o);
            node.xattrs = fsmeta::read_xattrs(&self.old.join(&prefix)).map_err(|e| {
                format!(
                    "cannot read the extended attributes of {}: {e}",
                    prefix.display()
                )
            })?;
            let pdir = match self.live.dir(&parent) {
                Ok(d) => d,
                Err(DirError::Missing) => return Err(format!("{} vanished", parent.display())),
                Err(DirError::Other(e)) => return Err(e),
            };
            let name = prefix.file_name().unwrap_or_default();
            self.touch(&pdir);
            rustix::fs::mkdirat(&*pdir.fd, name, Mode::from_raw_mode(0o700)).map_err(|e| {
                format!(
                    "cannot recreate its parent directory {}: {e}",
                    prefix.display()
                )
            })?;
            self.report.created.push(prefix.clone());
            self.finish.insert(prefix.clone(), Finish::Full(node));
        }
        self.live.dir(rel).map_err(|e| match e {
            DirError::Missing => format!("{} vanished", rel.display()),
            DirError::Other(e) => e,
        })
    }

    /// Pass 3: directory metadata, deepest first.
    fn finish_dirs(&mut self) {
        let finish = std::mem::take(&mut self.finish);
        for (rel, what) in finish.into_iter().rev() {
            if self.failed.contains(&rel) || self.failed_ancestor(&rel).is_some() {
                continue;
            }
            let (pinned, path) = match self.live.entry_path(&rel) {
                Ok(x) => x,
                Err(e) => {
                    self.fail(&rel, e);
                    continue;
                }
            };
            let warnings = match &what {
                Finish::Full(node) => fsmeta::apply_metadata(&path, node),
                Finish::Times(node) => match fsmeta::set_times(&path, node) {
                    Ok(()) => Vec::new(),
                    Err(e) => vec![format!("could not set times: {e}")],
                },
            };
            drop(pinned);
            if !warnings.is_empty() {
                // Take the path out of the success lists: it was not completely restored.
                self.report.created.retain(|p| p != &rel);
                self.report.modified.retain(|p| p != &rel);
                self.fail(&rel, warnings.join("; "));
            }
        }
    }
}

/// Run `create(name)` with fresh temporary names until one does not exist yet.
fn create_tmp(
    counter: &mut u64,
    mut create: impl FnMut(&OsStr) -> std::io::Result<()>,
) -> std::io::Result<OsString> {
    loop {
        let t = tmp_name(counter);
        match create(&t) {
            Ok(()) => return Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A fresh temporary name: hidden, unique to this process.
fn tmp_name(counter: &mut u64) -> OsString {
    *counter += 1;
    OsString::from(format!(
        ".snapguard-undo.{}.{}",
        std::process::id(),
        counter
    ))
}

/// Split a non-empty relative path into its parent (possibly empty) and its last component.
fn split(rel: &Path) -> (&Path, &OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().unwrap_or_default(),
    )
}

/// A node carrying the metadata `fsmeta::apply_metadata` applies (xattrs are added by the
/// caller). Sockets, which `NodeKind` lacks, pass as FIFOs: only symlinks are treated
/// differently there.
fn node_from(st: &StatInfo) -> Node {
    let mut node = Node::new(Vec::new(), st.kind.unwrap_or(NodeKind::Fifo));
    node.mode = st.mode;
    node.uid = st.uid;
    node.gid = st.gid;
    node.size = st.size;
    node.atime = st.atime;
    node.mtime = st.mtime;
    node.rdev = st.rdev;
    node
}

/// The live tree, reached through directory descriptors.
struct Live {
    root: PathBuf,
    fd: OwnedFd,
    dev: u64,
    /// `/proc/self/fd` works, so metadata can be applied through a pinned directory.
    proc_fd: bool,
    /// The last directory opened.
    cache: Option<Dir>,
}

impl Live {
    fn open(root: &Path) -> Result<Live> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(root, flags, Mode::empty()).map_err(|e| match e {
            Errno::NOENT | Errno::NOTDIR => Error::NotADirectory {
                path: root.to_path_buf(),
            },
            e => Error::io("open", root, e.into()),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("read", root, e.into()))?;
        Ok(Live {
            root: root.to_path_buf(),
            fd,
            dev: fsmeta::stat_info(&st).dev,
            proc_fd: Path::new("/proc/self/fd").is_dir(),
            cache: None,
        })
    }

    /// Open the live directory `rel`: every component a real directory (no symlink) on the
    /// root's filesystem and subvolume.
    fn dir(&mut self, rel: &Path) -> std::result::Result<Dir, DirError> {
        if let Some(d) = &self.cache {
            if d.rel == rel {
                return Ok(d.clone());
            }
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let other = |e: String| DirError::Other(e);
        let mut cur = rustix::fs::openat(&self.fd, ".", flags, Mode::empty()).map_err(|e| {
            other(format!(
                "cannot open the live tree {}: {e}",
                self.root.display()
            ))
        })?;
        let mut at = PathBuf::new();
        for comp in rel.components() {
            at.push(comp);
            let next = match rustix::fs::openat(&cur, comp.as_os_str(), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Err(DirError::Missing),
                Err(Errno::NOTDIR | Errno::LOOP) => {
                    return Err(other(format!(
                        "{} is not a directory in the live tree (a symlink or file is in the way); undo it too, or move it away",
                        at.display()
                    )))
                }
                Err(e) => {
                    return Err(other(format!(
                        "cannot open {} in the live tree: {e}",
                        at.display()
                    )))
                }
            };
            let st = rustix::fs::fstat(&next).map_err(|e| {
                other(format!(
                    "cannot read {} in the live tree: {e}",
                    at.display()
                ))
            })?;
            if fsmeta::stat_info(&st).dev != self.dev {
                return Err(other(format!(
                    "{} is another filesystem or subvolume in the live tree; undo does not cross into it",
                    at.display()
                )));
            }
            cur = next;
        }
        let d = Dir {
            rel: rel.to_path_buf(),
            fd: Rc::new(cur),
        };
        self.cache = Some(d.clone());
        Ok(d)
    }

    /// `lstat` of `name` in `dir`; `None` if there is no such entry.
    fn stat_at(&self, dir: &Dir, name: &OsStr) -> std::io::Result<Option<StatInfo>> {
        match rustix::fs::statat(&*dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(fsmeta::stat_info(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Remove the entry `name` (of stat `st`) from `dir`: a file with `unlink`, a directory
    /// only when empty. Never a nested subvolume or mount point.
    fn remove(
        &mut self,
        dir: &Dir,
        name: &OsStr,
        st: &StatInfo,
    ) -> std::result::Result<(), String> {
        if st.kind != Some(NodeKind::Dir) {
            return rustix::fs::unlinkat(&*dir.fd, name, AtFlags::empty())
                .map_err(|e| format!("cannot remove it: {e}"));
        }
        if st.dev != self.dev {
            return Err(
                "it is a nested subvolume or mount point in the live tree; it was not removed"
                    .into(),
            );
        }
        // Descriptors below a removed directory are useless now.
        self.cache = None;
        match rustix::fs::unlinkat(&*dir.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(()),
            Err(Errno::NOTEMPTY | Errno::EXIST) => Err(
                "the directory was not removed: it holds entries that are not in the newer snapshot (added since); move them away, or undo up to a later snapshot"
                    .into(),
            ),
            Err(e) => Err(format!("cannot remove the directory: {e}")),
        }
    }

    /// A path for the path-based `fsmeta` functions that reaches `name` through the pinned
    /// descriptor `dir` (`/proc/self/fd/N/name`), so a directory renamed or replaced by a
    /// symlink meanwhile cannot redirect it. Without `/proc`, the plain path under the root.
    fn meta_path(&self, dir: &Dir, name: &OsStr) -> PathBuf {
        let mut p = if self.proc_fd {
            PathBuf::from(format!("/proc/self/fd/{}", dir.fd.as_raw_fd()))
        } else {
            self.root.join(&dir.rel)
        };
        p.push(name);
        p
    }

    /// The pinned parent and the path for `fsmeta` of the entry `rel` (the root for `""`).
    fn entry_path(&mut self, rel: &Path) -> std::result::Result<(Dir, PathBuf), String> {
        if rel.as_os_str().is_empty() {
            let fd = self.dir(rel).map_err(|e| match e {
                DirError::Missing => "the live tree vanished".to_string(),
                DirError::Other(e) => e,
            })?;
            let path = self.meta_path(&fd, OsStr::new("."));
            return Ok((fd, path));
        }
        let (parent, name) = split(rel);
        let fd = self.dir(parent).map_err(|e| match e {
            DirError::Missing => "it vanished from the live tree".to_string(),
            DirError::Other(e) => e,
        })?;
        let path = self.meta_path(&fd, name);
        Ok((fd, path))
    }
}

#[cfg(test)]
mod tests;
