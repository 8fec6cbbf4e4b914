//! `restore --delete`: removing what the target holds and the snapshot does not.
//!
//! The walk lists every restored directory that already existed and plans the removal of the
//! names the snapshot's tree does not have ([`Extra`]); the restore removes them after the data
//! is written and before directory metadata is applied (removing an entry changes its
//! directory's mtime). With `--dry-run` the same code runs without removing anything, so what it
//! reports is exactly what a real run would remove.
//!
//! What is never removed:
//! - anything outside the directories the snapshot holds in full: the directories *above* the
//!   backed-up paths are only recorded as the way to them ([`Scope`]), so restoring a whole
//!   snapshot with `--delete` cleans `/home/u` if `/home/u` was backed up, but not `/home`;
//! - entries that `--exclude` excludes from the restore, entries the backup itself excluded (its
//!   recorded exclude patterns: they were never meant to be in the snapshot), and, with
//!   `--include`, entries that no include pattern selects;
//! - anything reached through a symlink: entries are examined with `fstatat(AT_SYMLINK_NOFOLLOW)`
//!   and directories opened with `O_NOFOLLOW` relative to their parent's descriptor, so a symlink
//!   is removed as a link and whatever it points to survives;
//! - anything on another filesystem than the restore target (a mount point below the target is
//!   reported and left alone, like `rsync -x`).

use super::{RestoreWarning, Restorer};
use crate::filter::PathFilter;
use crate::fsmeta;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use snapguard_format::{NodeKind, Tree};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Which restored directories `--delete` may clean.
pub(super) struct Scope {
    /// The snapshot's backed-up paths (absolute, without trailing slash; `/` for the root).
    roots: Vec<Vec<u8>>,
    /// The filesystem of the restore target.
    dev: Option<u64>,
}

impl Scope {
    pub(super) fn new(paths: &[serde_bytes::ByteBuf], target: &Path) -> Scope {
        let roots = paths
            .iter()
            .map(|p| {
                let mut p = p.to_vec();
                while p.len() > 1 && p.ends_with(b"/") {
                    p.pop();
                }
                p
            })
            .collect();
        Scope {
            roots,
            dev: fsmeta::lstat(target).ok().map(|s| s.dev),
        }
    }

    /// Whether the directory restored from snapshot path `snap` (`""` for the root) into `dir`
    /// may be cleaned.
    pub(super) fn covers(&self, snap: &[u8], dir: &Path) -> bool {
        let snap: &[u8] = if snap.is_empty() { b"/" } else { snap };
        let inside = self.roots.iter().any(|r| {
            r.as_slice() == b"/"
                || snap == r.as_slice()
                || (snap.starts_with(r) && snap.get(r.len()) == Some(&b'/'))
        });
        inside
            && match (self.dev, fsmeta::lstat(dir)) {
                (Some(dev), Ok(st)) => st.dev == dev && st.kind == Some(NodeKind::Dir),
                _ => false,
            }
    }
}

/// Names in directory `dir` that `tree` does not have, sorted. A directory that does not exist
/// (a dry run's new directory) has none.
pub(super) fn extras(dir: &Path, tree: &Tree) -> std::io::Result<Vec<Vec<u8>>> {
    let mut names = match fsmeta::read_dir_names(dir, true) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    names.retain(|n| tree.find(n).is_none());
    names.sort();
    Ok(names)
}

/// An entry found in a restored directory that the snapshot does not have.
#[derive(Debug)]
pub(super) struct Extra {
    /// The directory holding it.
    pub(super) dir: PathBuf,
    pub(super) name: Vec<u8>,
    /// Where it would be in the snapshot (for the filters).
    pub(super) snap_path: Vec<u8>,
    /// Its directory was included in the restore (`--include` given and matched above it).
    pub(super) included: bool,
}

/// Removes extras (or, in a dry run, counts what it would remove).
pub(super) struct Remover<'a> {
    pub(super) includes: &'a PathFilter,
    pub(super) excludes: &'a PathFilter,
    /// The exclude patterns the backup was made with.
    pub(super) backup_excludes: &'a PathFilter,
    pub(super) dry_run: bool,
    /// Entries removed (or that would be), directories and their contents each counted.
    pub(super) removed: u64,
    /// What could not be removed: (path, reason).
    pub(super) warnings: Vec<(PathBuf, String)>,
    /// What was left alone on purpose (mount points): (path, reason).
    pub(super) notes: Vec<(PathBuf, String)>,
}

impl Remover<'_> {
    /// Whether `--exclude` or the backup's own excludes leave the entry at snapshot path `snap`
    /// alone.
    pub(super) fn excluded(&self, snap: &[u8], name: &[u8]) -> bool {
        self.excludes.matches(snap, name) || self.backup_excludes.matches(snap, name)
    }

    /// Remove entry `name` of directory `dir` (which must be a real directory, not a symlink)
    /// with everything below it that the filters allow. Returns whether it is gone (or would
    /// be, in a dry run).
    pub(super) fn remove_in(
        &mut self,
        dir: &Path,
        name: &[u8],
        snap: &[u8],
        included: bool,
    ) -> bool {
        let fd = match open_dir(rustix::fs::CWD, dir.as_os_str()) {
            Ok(fd) => fd,
            Err(e) => {
                self.warnings.push((
                    dir.to_path_buf(),
                    format!("cannot open to delete entries: {e}"),
                ));
                return false;
            }
        };
        let dev = match rustix::fs::fstat(&fd) {
            Ok(st) => fsmeta::stat_info(&st).dev,
            Err(e) => {
                self.warnings
                    .push((dir.to_path_buf(), format!("cannot examine: {e}")));
                return false;
            }
        };
        self.remove(fd.as_fd(), dir, dev, name, snap, included)
    }

    fn remove(
        &mut self,
        parent: BorrowedFd<'_>,
        parent_path: &Path,
        dev: u64,
        name: &[u8],
        snap: &[u8],
        included: bool,
    ) -> bool {
        let os_name = OsStr::from_bytes(name);
        let path = parent_path.join(os_name);
        let st = match rustix::fs::statat(parent, os_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => fsmeta::stat_info(&st),
            Err(Errno::NOENT) => return true,
            Err(e) => {
                self.warnings.push((path, format!("not deleted: {e}")));
                return false;
            }
        };
        let included = included || self.includes.matches(snap, name);
        if st.kind != Some(NodeKind::Dir) {
            if !included {
                return false;
            }
            return self.unlink(parent, os_name, path, AtFlags::empty());
        }
        if st.dev != dev {
            self.notes.push((
                path,
                "not deleted: a mount point (another filesystem); restore into it separately to clean it"
                    .into(),
            ));
            return false;
        }
        let fd = match open_dir(parent, os_name) {
            Ok(fd) => fd,
            Err(e) => {
                self.warnings.push((path, format!("not deleted: {e}")));
                return false;
            }
        };
        let names = match list(&fd) {
            Ok(n) => n,
            Err(e) => {
                self.warnings
                    .push((path, format!("not deleted: cannot list it: {e}")));
                return false;
            }
        };
        let mut empty = true;
        for child in names {
            let mut child_snap = snap.to_vec();
            child_snap.push(b'/');
            child_snap.extend_from_slice(&child);
            if self.excluded(&child_snap, &child) {
                empty = false;
                continue;
            }
            empty &= self.remove(fd.as_fd(), &path, dev, &child, &child_snap, included);
        }
        drop(fd);
        if !included || !empty {
            return false;
        }
        self.unlink(parent, os_name, path, AtFlags::REMOVEDIR)
    }

    fn unlink(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        path: PathBuf,
        flags: AtFlags,
    ) -> bool {
        if !self.dry_run {
            match rustix::fs::unlinkat(parent, name, flags) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => {
                    self.warnings.push((path, format!("not deleted: {e}")));
                    return false;
                }
            }
        }
        tracing::debug!(path = %path.display(), dry_run = self.dry_run, "deleted");
        self.removed += 1;
        true
    }
}

fn open_dir<Fd: AsFd>(parent: Fd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Names in an open directory, without `.` and `..`, sorted.
fn list(fd: &OwnedFd) -> rustix::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(fd)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

impl Restorer<'_> {
    /// `delete`: plan the removal of what directory `dest` holds and `tree` does not.
    pub(super) fn plan_deletions(
        &mut self,
        tree: &Tree,
        dest: &Path,
        snap_path: &[u8],
        included: bool,
    ) {
        if !self
            .scope
            .as_ref()
            .is_some_and(|s| s.covers(snap_path, dest))
        {
            return;
        }
        let names = match extras(dest, tree) {
            Ok(n) => n,
            Err(e) => {
                self.warn(dest, format!("cannot list for --delete: {e}"));
                return;
            }
        };
        for name in names {
            let mut child = snap_path.to_vec();
            child.push(b'/');
            child.extend_from_slice(&name);
            if self.excludes.matches(&child, &name) || self.backup_excludes.matches(&child, &name) {
                continue;
            }
            self.extras.push(Extra {
                dir: dest.to_path_buf(),
                name,
                snap_path: child,
                included,
            });
        }
    }

    /// Remove (or in a dry run, count) what `plan_deletions` found.
    pub(super) fn delete_extras(&mut self) {
        for e in std::mem::take(&mut self.extras) {
            self.delete_entry(&e.dir, &e.name, &e.snap_path, e.included);
        }
    }

    /// Remove entry `name` of directory `dir` with what is below it, as far as the filters
    /// allow; record it. Returns whether it is gone (would be, in a dry run).
    pub(super) fn delete_entry(
        &mut self,
        dir: &Path,
        name: &[u8],
        snap_path: &[u8],
        included: bool,
    ) -> bool {
        let mut rm = Remover {
            includes: &self.includes,
            excludes: &self.excludes,
            backup_excludes: &self.backup_excludes,
            dry_run: self.opts.dry_run,
            removed: 0,
            warnings: Vec::new(),
            notes: Vec::new(),
        };
        let gone = rm.remove_in(dir, name, snap_path, included);
        let Remover {
            removed,
            warnings,
            notes,
            ..
        } = rm;
        if removed > 0 {
            self.summary.deleted += removed;
            self.summary
                .deleted_paths
                .push(dir.join(OsStr::from_bytes(name)).display().to_string());
        }
        for (path, message) in warnings {
            self.warn(&path, message);
        }
        for (path, message) in notes {
            self.summary.notes.push(RestoreWarning {
                path: path.display().to_string(),
                message,
            });
        }
        gone
    }
}
