//! Restore: recreate a snapshot's tree (or part of it) with all metadata.
//!
//! Entries are created depth-first; directory metadata is applied after the directory's
//! children (creating children would change its mtime, and a mode of 000 would lock us out).
//! Hardlinked files are linked to the first restored path of their inode. Holes are skipped
//! (never written), so sparse files come back sparse. A file whose data cannot be read from the
//! repository is removed and reported; the rest of the restore goes on. Running out of disk
//! space stops the restore.

use crate::filter::PathFilter;
use crate::fsmeta;
use crate::{Error, Repository, Result};
use snapguard_format::{
    ContentPart, Node, NodeKind, SnapshotFile, TreeId, NODE_CHANGED_WHILE_READ, NODE_READ_ERROR,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What to restore where.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    pub dry_run: bool,
}

/// Something that could not be restored exactly.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreWarning {
    pub path: String,
    pub message: String,
}

/// The outcome of a restore.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
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
    hardlinks: HashMap<(u64, u64), PathBuf>,
    summary: RestoreSummary,
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
    let mut r = Restorer {
        repo,
        opts,
        includes: PathFilter::new(&opts.includes)?,
        excludes: PathFilter::new(&opts.excludes)?,
        hardlinks: HashMap::new(),
        summary: RestoreSummary::default(),
    };
    if !opts.dry_run {
        prepare_target(&opts.target)?;
    }
    let base: Vec<u8> = subpath.to_vec();
    let base = trim_trailing_slash(&base);
    match node.subtree {
        Some(tree) if node.kind == NodeKind::Dir => {
            // If not even the starting directory can be read, nothing can be restored: that is
            // an integrity error, not a partial restore.
            repo.read_tree(&tree)?;
            r.restore_tree(tree, &opts.target, base, r.includes.is_empty())?;
        }
        _ => {
            let parent_path = match base.iter().rposition(|&b| b == b'/') {
                Some(i) => &base[..i],
                None => &b""[..],
            };
            r.restore_entry(&node, &opts.target, parent_path, r.includes.is_empty())?;
        }
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
        tracing::warn!(path = %w.path, "{}", w.message);
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

    /// Restore the entries of tree `id` into directory `dest`. Returns whether anything was
    /// restored.
    fn restore_tree(
        &mut self,
        id: TreeId,
        dest: &Path,
        snap_path: &[u8],
        included: bool,
    ) -> Result<bool> {
        let tree = match self.repo.read_tree(&id) {
            Ok(t) => t,
            Err(e @ Error::Corrupt { .. }) => {
                self.warn(dest, format!("directory contents cannot be restored: {e}"));
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let mut any = false;
        for node in &tree.nodes {
            any |= self.restore_entry(node, dest, snap_path, included)?;
        }
        Ok(any)
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
            let existed = fsmeta::lstat(&dest)
                .map(|s| s.kind == Some(NodeKind::Dir))
                .unwrap_or(false);
            if !self.opts.dry_run && !existed {
                if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&dest) {
                    if e.kind() == std::io::ErrorKind::StorageFull {
                        return Err(Error::NoSpace { path: dest });
                    }
                    self.warn(&dest, format!("cannot create directory: {e}"));
                    return Ok(false);
                }
            }
            let any = match node.subtree {
                Some(sub) => self.restore_tree(sub, &dest, &snap_path, included)?,
                None => false,
            };
            if !included && !any {
                if !existed && !self.opts.dry_run {
                    let _ = std::fs::remove_dir(&dest);
                }
                return Ok(false);
            }
            self.summary.dirs += 1;
            if !self.opts.dry_run {
                for w in fsmeta::apply_metadata(&dest, node) {
                    self.warn(&dest, w);
                }
            }
            return Ok(true);
        }
        if !included {
            return Ok(false);
        }
        if self.opts.dry_run {
            self.count(node);
            return Ok(true);
        }
        if let Ok(st) = fsmeta::lstat(&dest) {
            if st.kind == Some(NodeKind::Dir) {
                self.warn(&dest, "a directory is in the way; not replaced");
                return Ok(false);
            }
            if let Err(e) = std::fs::remove_file(&dest) {
                self.warn(&dest, format!("cannot replace existing file: {e}"));
                return Ok(false);
            }
        }
        let link_key =
            (node.kind == NodeKind::File && node.nlink > 1).then_some((node.device, node.inode));
        if let Some(first) = link_key.and_then(|k| self.hardlinks.get(&k)) {
            match std::fs::hard_link(first, &dest) {
                Ok(()) => {
                    self.count(node);
                    return Ok(true);
                }
                Err(e) => self.warn(
                    &dest,
                    format!(
                        "cannot hardlink to {}: {e}; restoring a copy",
                        first.display()
                    ),
                ),
            }
        }
        let created = match node.kind {
            NodeKind::File => {
                if node.flags & (NODE_CHANGED_WHILE_READ | NODE_READ_ERROR) != 0 {
                    self.summary.notes.push(RestoreWarning {
                        path: dest.display().to_string(),
                        message: "this file was changing while it was backed up; the stored version may mix old and new content".into(),
                    });
                }
                self.restore_file(node, &dest)?
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
        for w in fsmeta::apply_metadata(&dest, node) {
            self.warn(&dest, w);
        }
        if let Some(k) = link_key {
            self.hardlinks.insert(k, dest);
        }
        Ok(true)
    }

    /// Write a file's content, leaving holes unwritten. Returns false (and removes the partial
    /// file) if the repository data for it is damaged.
    fn restore_file(&mut self, node: &Node, dest: &Path) -> Result<bool> {
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
                return Ok(false);
            }
        };
        let mut offset = 0u64;
        for part in &node.content {
            match part {
                ContentPart::Hole { len } => offset += len,
                ContentPart::Data { id, len } => {
                    let data = match self.repo.read_blob(id) {
                        Ok(d) => d,
                        Err(e @ Error::Corrupt { .. }) => {
                            drop(file);
                            let _ = std::fs::remove_file(dest);
                            self.warn(dest, format!("not restored: {e}"));
                            return Ok(false);
                        }
                        Err(e) => return Err(e),
                    };
                    if data.len() != *len as usize {
                        return Err(Error::corrupt(
                            format!("blob {id}"),
                            "length differs from the tree's record",
                        ));
                    }
                    file.write_all_at(&data, offset)
                        .map_err(|e| Error::io(dest, e))?;
                    offset += u64::from(*len);
                }
            }
        }
        file.set_len(node.size).map_err(|e| Error::io(dest, e))?;
        Ok(true)
    }
}
