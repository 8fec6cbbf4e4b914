//! The history of paths across snapshots: every distinct version of one path ([`history`], for
//! `snapguard versions`) and which snapshots hold paths matching a glob ([`find`], for
//! `snapguard find`).
//!
//! Both lean on tree ids being Merkle digests. [`history`] walks each snapshot only along the
//! path's components and remembers what it found below each (depth, tree id), so a directory that
//! is the same in many snapshots is read once, however many snapshots there are. [`find`]
//! remembers the matches below each tree the same way and re-uses them under the right path.
//!
//! These are pure functions over a [`Repository`]: the caller chooses the snapshots (and their
//! order, normally oldest first) and renders the result. Nothing here prints, filters snapshots
//! by host or tag, or decides what a missing path means to the user.

pub mod find;
#[cfg(test)]
mod tests;

use crate::{Error, Repository, Result};
use snapguard_format::{ContentPart, Node, NodeKind, TreeId};
use std::collections::HashMap;
use std::sync::Arc;

pub use find::{Finder, FoundEntry, PathPattern};

/// What makes two occurrences of a path different versions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Granularity {
    /// The content only: a file's list of chunks and holes, a directory's subtree id, a symlink's
    /// target, a device's number (and the entry's type). Metadata-only changes (mode, owner,
    /// times, extended attributes) stay within one version.
    #[default]
    Content,
    /// The content and the metadata that `diff` reports as a metadata change and `restore`
    /// applies: mode, uid, gid, mtime and extended attributes (which hold the ACLs). Not the
    /// atime (reading a file changes it), nor ctime, inode, device or link count (they change
    /// when a file is copied, moved or linked, without anything a restore could bring back).
    Metadata,
}

/// One distinct version of the path.
#[derive(Clone, Debug)]
pub struct PathVersion {
    /// The entry as the newest snapshot holding this version has it, without its content list
    /// (a restore from that snapshot gives exactly this metadata).
    pub node: Node,
    /// Positions, in the list given to [`history`], of every snapshot holding this version;
    /// ascending and never empty.
    pub snapshots: Vec<usize>,
    /// How many different metadata states (mode, uid, gid, mtime, extended attributes) the
    /// snapshots of this version have; always 1 with [`Granularity::Metadata`].
    pub metadata_variants: usize,
    /// Directories: the number of entries directly in it.
    pub entries: Option<usize>,
}

impl PathVersion {
    /// Position of the oldest snapshot holding this version.
    pub fn first(&self) -> usize {
        self.snapshots.first().copied().unwrap_or(0)
    }

    /// Position of the newest snapshot holding this version.
    pub fn last(&self) -> usize {
        self.snapshots.last().copied().unwrap_or(0)
    }

    /// The snapshots holding this version as runs of consecutive positions, `(first, last)`
    /// inclusive. More than one run means the path was absent, or had another version, in
    /// between.
    pub fn runs(&self) -> Vec<(usize, usize)> {
        runs(self.snapshots.iter().copied())
    }
}

/// Every version of one path across a list of snapshots.
#[derive(Debug)]
pub struct PathHistory {
    /// The path looked up (absolute, as given).
    pub path: Vec<u8>,
    /// For each snapshot given, the index into `versions` of the version it holds, or `None`
    /// if the path is not in it (or the snapshot could not be searched, see `errors`).
    pub timeline: Vec<Option<usize>>,
    /// The distinct versions, ordered by the first snapshot holding each.
    pub versions: Vec<PathVersion>,
    /// Snapshots that could not be searched because repository data is damaged: their
    /// position and the integrity error. Other errors end the search instead.
    pub errors: Vec<(usize, Error)>,
    /// Trees read from the repository (each (depth, tree id) at most once).
    pub trees_read: usize,
}

impl PathHistory {
    /// Whether no snapshot holds the path.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// How many snapshots hold the path.
    pub fn snapshots_with_path(&self) -> usize {
        self.timeline.iter().filter(|v| v.is_some()).count()
    }

    /// Runs of consecutive snapshots that were searched and do not hold the path,
    /// `(first, last)` inclusive.
    pub fn absent_runs(&self) -> Vec<(usize, usize)> {
        let failed: Vec<usize> = self.errors.iter().map(|(i, _)| *i).collect();
        runs(
            self.timeline
                .iter()
                .enumerate()
                .filter(|(i, v)| v.is_none() && !failed.contains(i))
                .map(|(i, _)| i),
        )
    }
}

/// Group ascending positions into runs of consecutive ones.
fn runs(positions: impl Iterator<Item = usize>) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for p in positions {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == p => *last = p,
            _ => out.push((p, p)),
        }
    }
    out
}

/// Find every distinct version of absolute `path` in the snapshots whose root trees are `roots`
/// (in the order given; pass them oldest first). Versions are told apart as `granularity` says;
/// an occurrence equal to an earlier version, even after a gap, is that version again.
///
/// A snapshot whose trees are damaged is recorded in [`PathHistory::errors`] and the search goes
/// on; any other error ends it. A path in no snapshot gives an empty history, not an error.
pub fn history(
    repo: &Repository,
    roots: &[TreeId],
    path: &[u8],
    granularity: Granularity,
) -> Result<PathHistory> {
    let components: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let mut lookup = Lookup {
        repo,
        components: &components,
        memo: HashMap::new(),
        trees_read: 0,
    };
    let mut out = PathHistory {
        path: path.to_vec(),
        timeline: Vec::with_capacity(roots.len()),
        versions: Vec::new(),
        errors: Vec::new(),
        trees_read: 0,
    };
    // Version key → index into `out.versions`, and each version's metadata states.
    let mut by_key: HashMap<[u8; 32], usize> = HashMap::new();
    let mut variants: Vec<Vec<[u8; 32]>> = Vec::new();
    for (pos, root) in roots.iter().enumerate() {
        let found = match lookup.find(*root) {
            Ok(f) => f,
            Err(e @ Error::Corrupt { .. }) => {
                out.errors.push((pos, e));
                out.timeline.push(None);
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some(found) = found else {
            out.timeline.push(None);
            continue;
        };
        let key = match granularity {
            Granularity::Content => found.content,
            Granularity::Metadata => combine(&found.content, &found.meta),
        };
        let index = match by_key.get(&key) {
            Some(&i) => i,
            None => {
                let i = out.versions.len();
                by_key.insert(key, i);
                out.versions.push(PathVersion {
                    node: Node::new(Vec::new(), NodeKind::File),
                    snapshots: Vec::new(),
                    metadata_variants: 0,
                    entries: None,
                });
                variants.push(Vec::new());
                i
            }
        };
        let version = &mut out.versions[index];
        // The newest occurrence wins: it is the one the suggested restore command names.
        version.node = found.node.as_ref().clone();
        version.snapshots.push(pos);
        if !variants[index].contains(&found.meta) {
            variants[index].push(found.meta);
        }
        out.timeline.push(Some(index));
    }
    for (version, metas) in out.versions.iter_mut().zip(&variants) {
        version.metadata_variants = metas.len();
        if let Some(sub) = version.node.subtree {
            version.entries = Some(repo.read_tree(&sub)?.nodes.len());
            lookup.trees_read += 1;
        }
    }
    out.trees_read = lookup.trees_read;
    Ok(out)
}

/// The entry found at the path in one snapshot, with its keys.
#[derive(Clone)]
struct Found {
    /// Without its content list.
    node: Arc<Node>,
    content: [u8; 32],
    meta: [u8; 32],
}

/// Looks the path's components up, remembering the outcome below each (depth, tree id).
struct Lookup<'a> {
    repo: &'a Repository,
    components: &'a [&'a [u8]],
    /// (depth, tree id) → what the rest of the path leads to from that tree. The depth is part
    /// of the key because one tree (an empty directory, say) can appear at several depths.
    memo: HashMap<(usize, TreeId), Option<Found>>,
    trees_read: usize,
}

impl Lookup<'_> {
    /// The entry at the path in the snapshot with root tree `root`.
    fn find(&mut self, root: TreeId) -> Result<Option<Found>> {
        if self.components.is_empty() {
            // The root itself: a synthetic directory, as `restore::find_node` makes it.
            let mut node = Node::new(b"/".to_vec(), NodeKind::Dir);
            node.subtree = Some(root);
            return Ok(Some(found(node)));
        }
        // Iterate down, then fill the memo for every level on the way back up.
        let mut visited: Vec<(usize, TreeId)> = Vec::new();
        let mut tree = root;
        let mut result = None;
        for depth in 0..self.components.len() {
            if let Some(hit) = self.memo.get(&(depth, tree)) {
                result = hit.clone();
                break;
            }
            visited.push((depth, tree));
            let listing = self.repo.read_tree(&tree)?;
            self.trees_read += 1;
            let Some(node) = listing.find(self.components[depth]) else {
                break;
            };
            if depth + 1 == self.components.len() {
                result = Some(found(node.clone()));
                break;
            }
            match node.subtree {
                Some(sub) => tree = sub,
                None => break,
            }
        }
        for key in visited {
            self.memo.insert(key, result.clone());
        }
        Ok(result)
    }
}

/// Key a node: content and metadata digests, and the node without its content list.
fn found(mut node: Node) -> Found {
    let content = content_key(&node);
    let meta = metadata_key(&node);
    node.content = Vec::new();
    Found {
        node: Arc::new(node),
        content,
        meta,
    }
}

/// A digest of what [`Granularity::Content`] compares.
fn content_key(n: &Node) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"snapguard version content");
    let kind: u8 = match n.kind {
        NodeKind::File => 1,
        NodeKind::Dir => 2,
        NodeKind::Symlink => 3,
        NodeKind::Fifo => 4,
        NodeKind::CharDevice => 5,
        NodeKind::BlockDevice => 6,
    };
    h.update(&[kind]);
    match n.kind {
        NodeKind::File => {
            h.update(&n.size.to_le_bytes());
            for part in &n.content {
                match part {
                    ContentPart::Data { id, len } => {
                        h.update(&[0]);
                        h.update(id.as_bytes());
                        h.update(&len.to_le_bytes());
                    }
                    ContentPart::Hole { len } => {
                        h.update(&[1]);
                        h.update(&len.to_le_bytes());
                    }
                }
            }
        }
        NodeKind::Dir => {
            h.update(&n.subtree.unwrap_or_default().0);
        }
        NodeKind::Symlink => {
            h.update(&(n.link_target.len() as u64).to_le_bytes());
            h.update(&n.link_target);
        }
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            h.update(&n.rdev.to_le_bytes());
        }
        NodeKind::Fifo => {}
    }
    *h.finalize().as_bytes()
}

/// A digest of the metadata [`Granularity::Metadata`] adds.
fn metadata_key(n: &Node) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"snapguard version metadata");
    h.update(&n.mode.to_le_bytes());
    h.update(&n.uid.to_le_bytes());
    h.update(&n.gid.to_le_bytes());
    h.update(&n.mtime.secs.to_le_bytes());
    h.update(&n.mtime.nanos.to_le_bytes());
    h.update(&(n.xattrs.len() as u64).to_le_bytes());
    for x in &n.xattrs {
        h.update(&(x.name.len() as u64).to_le_bytes());
        h.update(&x.name);
        h.update(&(x.value.len() as u64).to_le_bytes());
        h.update(&x.value);
    }
    *h.finalize().as_bytes()
}

fn combine(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(a);
    h.update(b);
    *h.finalize().as_bytes()
}
