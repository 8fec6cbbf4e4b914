//! Restore: recreate a snapshot's tree (or part of it) with all metadata.
//!
//! Three phases:
//! 1. The walk creates directories, symlinks, FIFOs, devices and hardlinks, and creates every
//!    regular file (with its final size if it ends in a hole: holes are never written, so they
//!    stay holes), recording which blob goes where in a plan.
//! 2. The plan is worked off pack by pack by a few threads (module `data`): each pack's needed
//!    bytes are read once, each blob is opened and verified once and written everywhere it is
//!    needed.
//!    As soon as the last byte of a file is written, the thread that wrote it applies the file's
//!    metadata (owner, extended attributes, mode, times: nothing writes to it any more).
//! 3. Files whose data could not be read from the repository are removed and reported (the rest
//!    of the restore goes on); then directory metadata is applied, deepest first (creating or
//!    removing children would change a directory's mtime, and a mode of 000 would lock us out).
//!
//! Entries without data to write (symlinks, devices, empty or all-hole files) get their
//! metadata in phase 1, right after they are created.
//!
//! Hardlinked files are linked to the first restored path of their inode. Running out of disk
//! space stops the restore.
//!
//! Entries that already exist in the target are kept, replaced or left alone according to
//! [`Overwrite`] (module `existing`); with [`RestoreOptions::delete`], entries the snapshot does
//! not have are removed between phases 2 and 3 (module `delete`). [`original_location`] tells
//! whether a restore writes over the paths it was backed up from (the CLI asks before it does).

mod data;
mod delete;
mod existing;
mod location;
#[cfg(test)]
mod tests;

pub use existing::Overwrite;
pub use location::{original_location, OriginalLocation};

use crate::filter::PathFilter;
use crate::fsmeta;
use crate::{Error, Repository, Result};
use snapguard_format::{
    ContentPart, Node, NodeKind, SnapshotFile, TreeId, NODE_CHANGED_WHILE_READ, NODE_READ_ERROR,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What to restore where.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    pub dry_run: bool,
    /// What to do with entries that already exist in the target.
    pub overwrite: Overwrite,
    /// Make the restored directories identical to the snapshot: remove the entries they hold
    /// that the snapshot does not (within the limits described in module `delete`).
    pub delete: bool,
    /// Counters for a progress display (files and bytes of file data written).
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
}

/// Something that could not be restored exactly.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreWarning {
    pub path: String,
    pub message: String,
}

/// The outcome of a restore (of a dry run: what a real run would do).
///
/// `files`, `dirs`, `other` and `bytes` count the entries that hold the snapshot's content
/// afterwards, whether written or found identical; `skipped_unchanged` and `overwritten` say
/// how many of them were already there.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    /// The size of the restored files (holes included).
    pub bytes: u64,
    /// Existing non-directories that already equalled the snapshot's and were kept (their
    /// metadata set to the snapshot's); counted in `files` and `other`.
    pub skipped_unchanged: u64,
    /// Existing non-directories left untouched by [`Overwrite::Never`]; not counted elsewhere.
    pub skipped_existing: u64,
    /// Restored entries that replaced an existing entry.
    pub overwritten: u64,
    /// Entries removed by [`RestoreOptions::delete`] (everything inside a removed directory
    /// counted, the directory too).
    pub deleted: u64,
    /// The entries [`RestoreOptions::delete`] removed from restored directories (a removed
    /// directory is listed, not its contents).
    pub deleted_paths: Vec<String>,
    /// File content written into the target, in bytes.
    pub bytes_written: u64,
    /// Bytes read from pack files for file content (tree reads not counted): 0 when every
    /// file was already up to date.
    pub bytes_fetched: u64,
    /// Bytes of existing files read to compare them with the snapshot.
    pub bytes_compared: u64,
    pub warnings: Vec<RestoreWarning>,
    /// Things worth knowing that do not make the restore inexact (e.g. a file that was
    /// already changing while it was backed up).
    pub notes: Vec<RestoreWarning>,
}

/// Find the node at absolute `path` in a snapshot. `/` yields a synthetic directory node for the
/// root tree.
pub fn find_node(repo: &Repository, root: TreeId, path: &[u8]) -> Result<Option<Node>> {
    let mut node = Node::new(b"/".to_vec(), NodeKind::Dir);
    node.subtree = Some(root);
    for comp in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        let Some(sub) = node.subtree else {
            return Ok(None);
        };
        let tree = repo.read_tree(&sub)?;
        match tree.find(comp) {
            Some(n) => node = n.clone(),
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

struct Restorer<'a> {
    repo: &'a Repository,
    opts: &'a RestoreOptions,
    includes: PathFilter,
    excludes: PathFilter,
    /// The exclude patterns the snapshot was made with (`delete` leaves what they match).
    backup_excludes: PathFilter,
    /// First restored path of each hardlinked inode.
    hardlinks: HashMap<(u64, u64), LinkFirst>,
    /// Reads existing files for [`Overwrite::IfChanged`].
    comparer: existing::Comparer<'a>,
    /// Where `delete` may remove entries (None without `delete`).
    scope: Option<delete::Scope>,
    /// Entries to remove in phase 3.
    extras: Vec<delete::Extra>,
    summary: RestoreSummary,
    /// Every directory the walk entered, in pre-order.
    dirs: Vec<DirRec>,
    /// Kept directories in post-order (children before parents): the metadata order.
    dir_order: Vec<usize>,
    /// The directory whose entries are being restored (None at the top).
    cur_dir: Option<usize>,
    /// Data still to write, and the files it goes to ([`data`]); `pending` runs parallel to
    /// `slots`.
    plan: data::Plan,
    slots: Vec<data::FileSlot>,
    pending: Vec<PendingFile>,
    /// Bytes of file data the plan will write (progress totals).
    planned_bytes: u64,
}

/// The first restored path of a hardlinked inode.
#[derive(Clone, Debug)]
struct LinkFirst {
    path: PathBuf,
    /// Its pending file, if its data is still to be written.
    pending: Option<usize>,
    /// It existed already with the right content and was kept.
    kept: bool,
}

/// A directory created (or found) by the walk.
struct DirRec {
    path: PathBuf,
    /// Its metadata (without content).
    node: Node,
    existed: bool,
    /// Its metadata is set in phase 3 (not for an existing directory with [`Overwrite::Never`]).
    set_meta: bool,
    /// It replaced another kind of entry.
    replaced: bool,
    included: bool,
    parent: Option<usize>,
    /// Entries restored in it so far (files whose data is pending count as restored).
    live: usize,
    /// Restored, so counted and given its metadata.
    kept: bool,
}

/// A regular file whose data is written in phase 2.
struct PendingFile {
    /// Its metadata (without content), applied once its data is written.
    node: Node,
    parent: Option<usize>,
    /// Other paths hardlinked to it.
    links: Vec<Link>,
    /// The content is longer than the recorded size: cut it after writing.
    truncate: bool,
    /// It replaced an existing entry.
    replaced: bool,
    /// What [`complete`] could not apply.
    warnings: OnceLock<Vec<String>>,
}

/// Another path hardlinked to a pending file.
struct Link {
    path: PathBuf,
    dir: Option<usize>,
    /// The size to count.
    size: u64,
    /// It replaced an existing entry.
    replaced: bool,
}

/// A pending file's data is all written: cut it to size if needed and apply its metadata
/// (called by the data phase's threads; the warnings are reported in phase 3, in order).
fn complete(slot: &data::FileSlot, p: &PendingFile) -> Result<()> {
    if p.truncate {
        slot.reopen()?
            .set_len(p.node.size)
            .map_err(|e| Error::io(&slot.path, e))?;
    }
    let _ = p.warnings.set(fsmeta::apply_metadata(&slot.path, &p.node));
    Ok(())
}

/// What became of a regular file in the walk.
enum FileOutcome {
    /// Created with all its content (there was no data to write).
    Done,
    /// Created; data to be written by phase 2 into pending file N.
    Pending(usize),
    /// Not restored (already reported).
    Failed,
}

/// A copy of `node`'s metadata, without its content list.
fn meta_only(node: &Node) -> Node {
    let mut n = node.clone();
    n.content = Vec::new();
    n
}

/// Restore `subpath` (absolute, within the snapshot; `/` for everything) of `snapshot`.
/// A directory's contents go directly into the target; a file or other entry is created in it.
pub fn restore(
    repo: &Repository,
    snapshot: &SnapshotFile,
    subpath: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreSummary> {
    let node = find_node(repo, snapshot.tree, subpath)?.ok_or_else(|| Error::PathNotFound {
        path: String::from_utf8_lossy(subpath).into_owned(),
        snapshot: "the snapshot".into(),
    })?;
    let includes = PathFilter::new(&opts.includes)?;
    let excludes = PathFilter::new(&opts.excludes)?;
    if !opts.dry_run {
        prepare_target(&opts.target)?;
    }
    let mut r = Restorer {
        repo,
        opts,
        includes,
        excludes,
        // Patterns a backup accepted are valid; should one not be, it protects nothing.
        backup_excludes: PathFilter::new(&snapshot.excludes).or_else(|_| PathFilter::new(&[]))?,
        hardlinks: HashMap::new(),
        comparer: existing::Comparer::new(repo.crypt().bundle()),
        scope: opts
            .delete
            .then(|| delete::Scope::new(&snapshot.paths, &opts.target)),
        extras: Vec::new(),
        summary: RestoreSummary::default(),
        dirs: Vec::new(),
        dir_order: Vec::new(),
        cur_dir: None,
        plan: data::Plan::default(),
        slots: Vec::new(),
        pending: Vec::new(),
        planned_bytes: 0,
    };
    let started = std::time::Instant::now();
    let base: Vec<u8> = subpath.to_vec();
    let base = trim_trailing_slash(&base);
    match node.subtree {
        Some(tree) if node.kind == NodeKind::Dir => {
            // If not even the starting directory can be read, nothing can be restored: that is
            // an integrity error, not a partial restore.
            repo.read_tree(&tree)?;
            r.restore_tree(tree, &opts.target, base, r.includes.is_empty(), true)?;
        }
        _ => {
            let parent_path = match base.iter().rposition(|&b| b == b'/') {
                Some(i) => &base[..i],
                None => &b""[..],
            };
            r.restore_entry(&node, &opts.target, parent_path, r.includes.is_empty())?;
        }
    }
    r.summary.bytes_compared = r.comparer.bytes_read;
    if opts.dry_run {
        r.delete_extras();
    } else {
        tracing::debug!(
            elapsed = ?started.elapsed(),
            files = r.slots.len(),
            "restore: tree walked, data planned"
        );
        let plan = std::mem::take(&mut r.plan);
        let progress = opts.progress.as_deref();
        if let Some(p) = progress {
            p.set_totals(r.slots.len() as u64, r.planned_bytes);
        }
        let written = data::run(repo, plan, &r.slots, progress, &|i| {
            if let Some(p) = progress {
                p.add_files(1);
            }
            complete(&r.slots[i], &r.pending[i])
        })?;
        r.summary.bytes_written = written.bytes_written;
        r.summary.bytes_fetched = written.bytes_fetched;
        tracing::debug!(elapsed = ?started.elapsed(), "restore: data written");
        r.finish()?;
        tracing::debug!(elapsed = ?started.elapsed(), "restore: metadata applied");
    }
    Ok(r.summary)
}

fn trim_trailing_slash(p: &[u8]) -> &[u8] {
    let mut p = p;
    while p.len() > 1 && p.ends_with(b"/") {
        p = &p[..p.len() - 1];
    }
    if p == b"/" {
        &p[..0]
    } else {
        p
    }
}

fn prepare_target(target: &Path) -> Result<()> {
    std::fs::create_dir_all(target).map_err(|e| Error::TargetNotWritable {
        path: target.to_path_buf(),
        cause: e,
    })?;
    let probe = target.join(format!(".snapguard-write-test-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::TargetNotWritable {
            path: target.to_path_buf(),
            cause: e,
        }),
    }
}

impl Restorer<'_> {
    fn warn(&mut self, path: &Path, message: impl Into<String>) {
        let w = RestoreWarning {
            path: path.display().to_string(),
            message: message.into(),
        };
        tracing::debug!(path = %w.path, "{}", w.message);
        self.summary.warnings.push(w);
    }

    fn count(&mut self, node: &Node) {
        match node.kind {
            NodeKind::File => {
                self.summary.files += 1;
                self.summary.bytes += node.size;
            }
            _ => self.summary.other += 1,
        }
    }

    /// Restore the entries of tree `id` into directory `dest` (which `existed` before the
    /// restore). Returns whether anything was restored.
    fn restore_tree(
        &mut self,
        id: TreeId,
        dest: &Path,
        snap_path: &[u8],
        included: bool,
        existed: bool,
    ) -> Result<bool> {
        let tree = match self.repo.read_tree(&id) {
            Ok(t) => t,
            Err(e @ Error::Corrupt { .. }) => {
                self.warn(dest, format!("directory contents cannot be restored: {e}"));
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if existed {
            self.plan_deletions(&tree, dest, snap_path, included);
        }
        let mut any = false;
        for node in &tree.nodes {
            if self.restore_entry(node, dest, snap_path, included)? {
                any = true;
                if let Some(d) = self.cur_dir {
                    self.dirs[d].live += 1;
                }
            }
        }
        Ok(any)
    }

    /// `lstat` of where an entry goes: None if nothing is there. An entry that cannot be
    /// examined is reported (Err: not restored).
    fn examine(&mut self, dest: &Path) -> std::result::Result<Option<fsmeta::StatInfo>, ()> {
        match fsmeta::lstat(dest) {
            Ok(st) => Ok(Some(st)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => {
                self.warn(dest, format!("cannot examine the existing entry: {e}"));
                Err(())
            }
        }
    }

    fn restore_entry(
        &mut self,
        node: &Node,
        dest_dir: &Path,
        snap_dir: &[u8],
        included: bool,
    ) -> Result<bool> {
        let mut snap_path = snap_dir.to_vec();
        snap_path.push(b'/');
        snap_path.extend_from_slice(&node.name);
        if self.excludes.matches(&snap_path, &node.name) {
            return Ok(false);
        }
        let included = included || self.includes.matches(&snap_path, &node.name);
        let dest = dest_dir.join(OsStr::from_bytes(&node.name));
        if node.kind == NodeKind::Dir {
            return self.restore_dir(node, dest, snap_path, included);
        }
        if !included {
            return Ok(false);
        }
        let Ok(existing) = self.examine(&dest) else {
            return Ok(false);
        };
        let link_key =
            (node.kind == NodeKind::File && node.nlink > 1).then_some((node.device, node.inode));
        let mut replaced = false;
        if let Some(st) = existing {
            if self.opts.overwrite == Overwrite::IfChanged
                && self.unchanged(node, &st, &dest, link_key)
            {
                self.keep(node, dest, link_key);
                return Ok(true);
            }
            if !self.make_way(&dest, &st, &snap_path)? {
                return Ok(false);
            }
            replaced = true;
        }
        if self.opts.dry_run {
            self.count(node);
            self.summary.overwritten += u64::from(replaced);
            if let Some(k) = link_key {
                self.hardlinks.entry(k).or_insert(LinkFirst {
                    path: dest,
                    pending: None,
                    kept: false,
                });
            }
            return Ok(true);
        }
        if let Some(first) = link_key.and_then(|k| self.hardlinks.get(&k).cloned()) {
            match std::fs::hard_link(&first.path, &dest) {
                Ok(()) => {
                    match first.pending {
                        // Counted (or removed) with the file it links to, once its data is in.
                        Some(i) => self.pending[i].links.push(Link {
                            path: dest,
                            dir: self.cur_dir,
                            size: node.size,
                            replaced,
                        }),
                        None => {
                            self.count(node);
                            self.summary.overwritten += u64::from(replaced);
                        }
                    }
                    return Ok(true);
                }
                Err(e) => self.warn(
                    &dest,
                    format!(
                        "cannot hardlink to {}: {e}; restoring a copy",
                        first.path.display()
                    ),
                ),
            }
        }
        let created = match node.kind {
            NodeKind::File => {
                self.note_changed_while_read(node, &dest);
                match self.restore_file(node, &dest, replaced)? {
                    FileOutcome::Done => true,
                    FileOutcome::Failed => false,
                    // Counted and given its metadata in phase 3.
                    FileOutcome::Pending(i) => {
                        if let Some(k) = link_key {
                            self.hardlinks.insert(
                                k,
                                LinkFirst {
                                    path: dest,
                                    pending: Some(i),
                                    kept: false,
                                },
                            );
                        }
                        return Ok(true);
                    }
                }
            }
            NodeKind::Symlink => {
                match std::os::unix::fs::symlink(OsStr::from_bytes(&node.link_target), &dest) {
                    Ok(()) => true,
                    Err(e) => {
                        self.warn(&dest, format!("cannot create symlink: {e}"));
                        false
                    }
                }
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                match fsmeta::make_special(&dest, node) {
                    Ok(()) => true,
                    Err(e) => {
                        self.warn(&dest, format!("cannot create {:?}: {e}", node.kind));
                        false
                    }
                }
            }
            NodeKind::Dir => false,
        };
        if !created {
            return Ok(false);
        }
        self.count(node);
        self.summary.overwritten += u64::from(replaced);
        for w in fsmeta::apply_metadata(&dest, node) {
            self.warn(&dest, w);
        }
        if let Some(k) = link_key {
            self.hardlinks.insert(
                k,
                LinkFirst {
                    path: dest,
                    pending: None,
                    kept: false,
                },
            );
        }
        Ok(true)
    }

    fn note_changed_while_read(&mut self, node: &Node, dest: &Path) {
        if node.flags & (NODE_CHANGED_WHILE_READ | NODE_READ_ERROR) != 0 {
            self.summary.notes.push(RestoreWarning {
                path: dest.display().to_string(),
                message: "this file was changing while it was backed up; the stored version may mix old and new content".into(),
            });
        }
    }

    /// Restore directory `node` at `dest` and what is in it.
    fn restore_dir(
        &mut self,
        node: &Node,
        dest: PathBuf,
        snap_path: Vec<u8>,
        included: bool,
    ) -> Result<bool> {
        let Ok(existing) = self.examine(&dest) else {
            return Ok(false);
        };
        let existed = existing.is_some_and(|st| st.kind == Some(NodeKind::Dir));
        let mut replaced = false;
        if let Some(st) = existing.filter(|_| !existed) {
            // Something else is where the directory goes: replace it only if the directory is
            // going to be restored.
            if !included && !self.has_included(node, &snap_path) {
                return Ok(false);
            }
            if !self.make_way(&dest, &st, &snap_path)? {
                return Ok(false);
            }
            replaced = true;
        }
        if !self.opts.dry_run && !existed {
            if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&dest) {
                if e.kind() == std::io::ErrorKind::StorageFull {
                    return Err(Error::NoSpace { path: dest });
                }
                self.warn(&dest, format!("cannot create directory: {e}"));
                return Ok(false);
            }
        }
        let idx = self.dirs.len();
        self.dirs.push(DirRec {
            path: dest.clone(),
            node: meta_only(node),
            existed,
            set_meta: !(existed && self.opts.overwrite == Overwrite::Never),
            replaced,
            included,
            parent: self.cur_dir,
            live: 0,
            kept: false,
        });
        let outer = self.cur_dir.replace(idx);
        let any = match node.subtree {
            Some(sub) => self.restore_tree(sub, &dest, &snap_path, included, existed),
            None => Ok(false),
        };
        self.cur_dir = outer;
        if !included && !any? {
            if !existed && !self.opts.dry_run {
                let _ = std::fs::remove_dir(&dest);
            }
            return Ok(false);
        }
        // Counted now; uncounted (and removed) again in phase 3 if it only held files
        // whose data turns out to be unreadable.
        self.summary.dirs += 1;
        self.summary.overwritten += u64::from(replaced);
        self.dirs[idx].kept = true;
        self.dir_order.push(idx);
        Ok(true)
    }

    /// Whether the (not included) directory `node` holds anything `--include` selects.
    fn has_included(&self, node: &Node, snap_path: &[u8]) -> bool {
        let Some(sub) = node.subtree else {
            return false;
        };
        // Unreadable: let the walk find out and report it.
        let Ok(tree) = self.repo.read_tree(&sub) else {
            return true;
        };
        tree.nodes.iter().any(|n| {
            let mut p = snap_path.to_vec();
            p.push(b'/');
            p.extend_from_slice(&n.name);
            !self.excludes.matches(&p, &n.name)
                && (self.includes.matches(&p, &n.name)
                    || (n.kind == NodeKind::Dir && self.has_included(n, &p)))
        })
    }

    /// Create a regular file at its final size and plan its content (holes are left unwritten).
    /// A file whose blobs are not all in the index is removed and reported at once.
    fn restore_file(&mut self, node: &Node, dest: &Path, replaced: bool) -> Result<FileOutcome> {
        let file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                return Err(Error::NoSpace { path: dest.into() })
            }
            Err(e) => {
                self.warn(dest, format!("cannot create file: {e}"));
                return Ok(FileOutcome::Failed);
            }
        };
        let index = self.repo.index();
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut data_end = 0u64;
        for part in &node.content {
            match part {
                ContentPart::Hole { len } => offset += len,
                ContentPart::Data { id, len } => {
                    let Some(loc) = index.get(id)? else {
                        drop(file);
                        let _ = std::fs::remove_file(dest);
                        let e = Error::corrupt(
                            format!("blob {id}"),
                            "not in the index (missing data; run 'snapguard check')",
                        );
                        self.warn(dest, format!("not restored: {e}"));
                        return Ok(FileOutcome::Failed);
                    };
                    parts.push((loc, offset, *len));
                    offset += u64::from(*len);
                    data_end = offset;
                }
            }
        }
        // Writing the last data part sets the size, unless a hole follows it.
        if data_end < node.size {
            file.set_len(node.size).map_err(|e| Error::io(dest, e))?;
        }
        if parts.is_empty() {
            return Ok(FileOutcome::Done);
        }
        let mut slot =
            data::FileSlot::new(dest.to_path_buf(), &file).map_err(|e| Error::io(dest, e))?;
        let i = self.slots.len();
        for (loc, offset, len) in parts {
            self.planned_bytes += u64::from(len);
            self.plan.add(&loc, i, offset, len);
            slot.add_target();
        }
        self.slots.push(slot);
        self.pending.push(PendingFile {
            node: meta_only(node),
            parent: self.cur_dir,
            links: Vec::new(),
            truncate: data_end > node.size,
            replaced,
            warnings: OnceLock::new(),
        });
        Ok(FileOutcome::Pending(i))
    }

    /// Phase 3: remove and report files whose data could not be read, count the others and
    /// report what of their metadata could not be applied, remove what `delete` planned, then
    /// apply directory metadata, deepest first.
    fn finish(&mut self) -> Result<()> {
        let slots = std::mem::take(&mut self.slots);
        let pending = std::mem::take(&mut self.pending);
        for (slot, p) in slots.iter().zip(&pending) {
            let Some(message) = slot.failed.get() else {
                continue;
            };
            let first = (&slot.path, p.parent);
            for (path, parent) in
                std::iter::once(first).chain(p.links.iter().map(|l| (&l.path, l.dir)))
            {
                let _ = std::fs::remove_file(path);
                self.warn(path, message.clone());
                self.release(parent);
            }
        }
        for (slot, p) in slots.iter().zip(&pending) {
            if slot.failed.get().is_some() {
                continue;
            }
            if p.warnings.get().is_none() {
                // Every file with data is completed by the data phase; this is a safety net.
                complete(slot, p)?;
            }
            self.count(&p.node);
            self.summary.overwritten += u64::from(p.replaced);
            for link in &p.links {
                self.summary.files += 1;
                self.summary.bytes += link.size;
                self.summary.overwritten += u64::from(link.replaced);
            }
            for w in p.warnings.get().into_iter().flatten() {
                self.warn(&slot.path, w.clone());
            }
        }
        self.delete_extras();
        for k in 0..self.dir_order.len() {
            let d = &self.dirs[self.dir_order[k]];
            if !d.kept || !d.set_meta {
                continue;
            }
            let warnings = fsmeta::apply_metadata(&d.path, &d.node);
            let path = d.path.clone();
            for w in warnings {
                self.warn(&path, w);
            }
        }
        Ok(())
    }

    /// An entry of directory `dir` turned out not to be restored: a directory that was kept
    /// only for its restored entries and now has none is dropped, as the walk would have done.
    fn release(&mut self, dir: Option<usize>) {
        let mut cur = dir;
        while let Some(i) = cur {
            let d = &mut self.dirs[i];
            d.live -= 1;
            if d.live > 0 || d.included || !d.kept {
                return;
            }
            d.kept = false;
            if !d.existed {
                let _ = std::fs::remove_dir(&d.path);
            }
            self.summary.dirs -= 1;
            self.summary.overwritten -= u64::from(d.replaced);
            cur = d.parent;
        }
    }
}
