//! Read-only views of snapshots: walking (`ls`), reading one file (`dump`), comparing two
//! snapshots (`diff`) and sizing (`stats`).
//!
//! `diff` leans on tree ids being Merkle digests: equal subtree ids are skipped without being
//! read, so comparing two snapshots costs time proportional to what changed.

use crate::restore::find_node;
use crate::{Error, Repository, Result};
use snapguard_format::{BlobId, ContentPart, Node, NodeKind, SnapshotFile, TreeId};
use std::collections::HashSet;
use std::io::Write;

/// Visit every node below absolute `path` of a snapshot (depth-first, name order), with its
/// absolute path. The node at `path` itself is visited first unless `path` is `/`.
pub fn walk(
    repo: &Repository,
    snapshot: &SnapshotFile,
    path: &[u8],
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<()>,
) -> Result<()> {
    let node = find_node(repo, snapshot.tree, path)?.ok_or_else(|| Error::PathNotFound {
        path: String::from_utf8_lossy(path).into_owned(),
        snapshot: "the snapshot".into(),
    })?;
    let mut base: Vec<u8> = path.to_vec();
    while base.ends_with(b"/") {
        base.pop();
    }
    if !base.is_empty() {
        visit(&base, &node)?;
    }
    if let Some(sub) = node.subtree {
        walk_tree(repo, sub, &mut base, visit)?;
    }
    Ok(())
}

fn walk_tree(
    repo: &Repository,
    id: TreeId,
    path: &mut Vec<u8>,
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<()>,
) -> Result<()> {
    let tree = repo.read_tree(&id)?;
    for node in &tree.nodes {
        let len = path.len();
        path.push(b'/');
        path.extend_from_slice(&node.name);
        visit(path, node)?;
        if let Some(sub) = node.subtree {
            walk_tree(repo, sub, path, visit)?;
        }
        path.truncate(len);
    }
    Ok(())
}

/// Write the content of the regular file at `path` to `out`.
pub fn dump(
    repo: &Repository,
    snapshot: &SnapshotFile,
    path: &[u8],
    out: &mut dyn Write,
) -> Result<u64> {
    let shown = String::from_utf8_lossy(path).into_owned();
    let node = find_node(repo, snapshot.tree, path)?.ok_or_else(|| Error::PathNotFound {
        path: shown.clone(),
        snapshot: "the snapshot".into(),
    })?;
    if node.kind != NodeKind::File {
        return Err(Error::InvalidArgument(format!(
            "{shown} is a {:?}, not a regular file; use 'snapguard restore' for directories",
            node.kind
        )));
    }
    let io = |e: std::io::Error| Error::io("standard output", e);
    let zeros = vec![0u8; 1 << 20];
    for part in &node.content {
        match part {
            ContentPart::Data { id, .. } => out.write_all(&repo.read_blob(id)?).map_err(io)?,
            ContentPart::Hole { len } => {
                let mut left = *len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    out.write_all(&zeros[..n]).map_err(io)?;
                    left -= n as u64;
                }
            }
        }
    }
    out.flush().map_err(io)?;
    Ok(node.size)
}

/// How an entry differs between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    /// Content (or symlink target, or type) changed.
    Modified,
    /// Only metadata (mode, owner, times, xattrs) changed.
    Metadata,
}

impl Change {
    pub fn symbol(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }
}

/// Compare two snapshots. Calls `report` for every changed path in name order.
pub fn diff(
    repo: &Repository,
    a: &SnapshotFile,
    b: &SnapshotFile,
    report: &mut dyn FnMut(&[u8], Change, &Node),
) -> Result<()> {
    diff_trees(repo, Some(a.tree), Some(b.tree), &mut Vec::new(), report)
}

fn diff_trees(
    repo: &Repository,
    a: Option<TreeId>,
    b: Option<TreeId>,
    path: &mut Vec<u8>,
    report: &mut dyn FnMut(&[u8], Change, &Node),
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let ta = match a {
        Some(id) => repo.read_tree(&id)?.nodes,
        None => Vec::new(),
    };
    let tb = match b {
        Some(id) => repo.read_tree(&id)?.nodes,
        None => Vec::new(),
    };
    let (mut i, mut j) = (0, 0);
    while i < ta.len() || j < tb.len() {
        let order = match (ta.get(i), tb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let len = path.len();
        match order {
            std::cmp::Ordering::Less => {
                let n = &ta[i];
                push(path, &n.name);
                report(path, Change::Removed, n);
                diff_trees(repo, n.subtree, None, path, report)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let n = &tb[j];
                push(path, &n.name);
                report(path, Change::Added, n);
                diff_trees(repo, None, n.subtree, path, report)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&ta[i], &tb[j]);
                push(path, &y.name);
                if x.kind != y.kind {
                    report(path, Change::Removed, x);
                    diff_trees(repo, x.subtree, None, path, report)?;
                    report(path, Change::Added, y);
                    diff_trees(repo, None, y.subtree, path, report)?;
                } else {
                    let content = x.content != y.content
                        || x.link_target != y.link_target
                        || x.rdev != y.rdev;
                    let meta = x.mode != y.mode
                        || x.uid != y.uid
                        || x.gid != y.gid
                        || x.mtime != y.mtime
                        || x.xattrs != y.xattrs;
                    if content {
                        report(path, Change::Modified, y);
                    } else if meta {
                        report(path, Change::Metadata, y);
                    }
                    diff_trees(repo, x.subtree, y.subtree, path, report)?;
                }
                i += 1;
                j += 1;
            }
        }
        path.truncate(len);
    }
    Ok(())
}

fn push(path: &mut Vec<u8>, name: &[u8]) {
    path.push(b'/');
    path.extend_from_slice(name);
}

/// Sizes of one or more snapshots.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub snapshots: u64,
    pub files: u64,
    pub dirs: u64,
    /// Sum of the sizes of all files as seen by the user (hardlinks once per snapshot).
    pub logical_size: u64,
    /// Distinct blobs referenced, their plaintext size and their size in packs.
    pub unique_blobs: u64,
    pub unique_raw_size: u64,
    pub stored_size: u64,
    /// logical_size / unique data size.
    pub dedup_ratio: f64,
    /// unique plaintext size / stored size.
    pub compression_ratio: f64,
}

/// Statistics over the given snapshots.
pub fn stats(repo: &Repository, snapshots: &[SnapshotFile]) -> Result<Stats> {
    let mut s = Stats {
        snapshots: snapshots.len() as u64,
        ..Stats::default()
    };
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut seen_trees: HashSet<TreeId> = HashSet::new();
    let mut data_raw = 0u64;
    for snap in snapshots {
        let mut links: HashSet<(u64, u64)> = HashSet::new();
        let mut stack = vec![snap.tree];
        let mut first = true;
        while let Some(id) = stack.pop() {
            // Files are counted in every snapshot; blobs (and so trees) only once.
            let tree = repo.read_tree(&id)?;
            if seen_trees.insert(id) {
                count_blob(repo, &BlobId::from(id), &mut seen, &mut s)?;
            }
            first = false;
            for n in &tree.nodes {
                match n.kind {
                    NodeKind::Dir => {
                        s.dirs += 1;
                        if let Some(sub) = n.subtree {
                            stack.push(sub);
                        }
                    }
                    NodeKind::File => {
                        s.files += 1;
                        if n.nlink <= 1 || links.insert((n.device, n.inode)) {
                            s.logical_size += n.size;
                        }
                        for p in &n.content {
                            if let ContentPart::Data { id, len } = p {
                                if count_blob(repo, id, &mut seen, &mut s)? {
                                    data_raw += u64::from(*len);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let _ = first;
    }
    s.dedup_ratio = if data_raw > 0 {
        s.logical_size as f64 / data_raw as f64
    } else {
        0.0
    };
    s.compression_ratio = if s.stored_size > 0 {
        s.unique_raw_size as f64 / s.stored_size as f64
    } else {
        0.0
    };
    Ok(s)
}

fn count_blob(
    repo: &Repository,
    id: &BlobId,
    seen: &mut HashSet<BlobId>,
    s: &mut Stats,
) -> Result<bool> {
    if !seen.insert(*id) {
        return Ok(false);
    }
    s.unique_blobs += 1;
    if let Some(loc) = repo.index().get(id)? {
        s.unique_raw_size += u64::from(loc.blob.raw_length);
        s.stored_size += u64::from(loc.blob.length);
    }
    Ok(true)
}
