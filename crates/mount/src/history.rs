//! `history/<path>/`: every version of a path across all snapshots.
//!
//! Every path in `history/` is a directory. It lists
//! - the names found below `<path>` in any snapshot where `<path>` is a directory (each again
//!   a history directory), and
//! - one entry per *version* of `<path>` in the snapshots where it is not a directory: every
//!   distinct content is one version, named after the oldest snapshot holding it
//!   (`<time>-<short id>`) and showing the entry as that snapshot has it. Content means the
//!   file's data (its blob ids and holes), a symlink's target or a device's number; a change of
//!   mode, owner or times alone makes no new version, and content that comes back after a
//!   change is the version it was before (as `snapguard versions` counts them).
//!
//! Walking `<path>` in every snapshot reads one tree per level per snapshot, but unchanged
//! directories have the same tree id in every snapshot, so the tree cache answers most reads.

use crate::catalog::{Catalog, Snap};
use crate::store::Store;
use snapguard_engine::Result;
use snapguard_format::{ContentPart, Node, NodeKind, TreeId};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// One entry of a history directory.
#[derive(Debug)]
pub(crate) enum HistEntry {
    /// `<path>/<name>` exists in some snapshot.
    Path { name: Vec<u8> },
    /// A version of `<path>` itself.
    Version {
        name: String,
        snap: Arc<Snap>,
        node: Arc<Node>,
    },
}

impl HistEntry {
    pub fn name(&self) -> &[u8] {
        match self {
            HistEntry::Path { name } => name,
            HistEntry::Version { name, .. } => name.as_bytes(),
        }
    }
}

/// What makes a version: the type and content of an entry (data blob ids and holes, a
/// symlink's target, a device's number), hashed; metadata is left out.
pub(crate) fn content_key(n: &Node) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(format!("{:?}\0", n.kind).as_bytes());
    h.update(&n.size.to_le_bytes());
    h.update(&n.rdev.to_le_bytes());
    h.update(&(n.link_target.len() as u64).to_le_bytes());
    h.update(&n.link_target);
    for p in &n.content {
        match p {
            ContentPart::Data { id, len } => {
                h.update(b"D");
                h.update(id.as_bytes());
                h.update(&len.to_le_bytes());
            }
            ContentPart::Hole { len } => {
                h.update(b"H");
                h.update(&len.to_le_bytes());
            }
        }
    }
    *h.finalize().as_bytes()
}

/// The node at `path` (components separated by `/`; empty for the root) below `root`.
pub(crate) fn node_at(store: &Store, root: TreeId, path: &[u8]) -> Result<Option<Node>> {
    let mut node = Node::new(b"/".to_vec(), NodeKind::Dir);
    node.subtree = Some(root);
    for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        let Some(sub) = node.subtree else {
            return Ok(None);
        };
        match store.tree(&sub)?.find(comp) {
            Some(n) => node = n.clone(),
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

/// The entries of `history/<path>`: sub-paths in name order, then versions oldest first.
pub(crate) fn listing(store: &Store, catalog: &Catalog, path: &[u8]) -> Result<Vec<HistEntry>> {
    let mut children: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut versions: Vec<HistEntry> = Vec::new();
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    let mut last_tree: Option<TreeId> = None;
    for snap in &catalog.snaps {
        let Some(node) = node_at(store, snap.file.tree, path)? else {
            continue;
        };
        if node.kind == NodeKind::Dir {
            let Some(sub) = node.subtree else { continue };
            // The same tree as the previous snapshot's adds no names.
            if last_tree != Some(sub) {
                for n in &store.tree(&sub)?.nodes {
                    if !children.contains(&n.name) {
                        children.insert(n.name.clone());
                    }
                }
                last_tree = Some(sub);
            }
            continue;
        }
        if !seen.insert(content_key(&node)) {
            continue;
        }
        versions.push(HistEntry::Version {
            name: snap.name.clone(),
            snap: snap.clone(),
            node: Arc::new(node),
        });
    }
    // A version whose name equals a real child's name (a path below named like a snapshot)
    // would be unreachable; the real path wins, and the version stays visible in snapshots/.
    versions.retain(|v| {
        let clash = children.contains(v.name());
        if clash {
            tracing::debug!(
                "history of {:?}: version {} hidden by a path of the same name",
                String::from_utf8_lossy(path),
                String::from_utf8_lossy(v.name())
            );
        }
        !clash
    });
    let mut out: Vec<HistEntry> = children
        .into_iter()
        .map(|name| HistEntry::Path { name })
        .collect();
    out.extend(versions);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use snapguard_format::{BlobId, Timestamp};

    fn file(content: &[u8; 1], mode: u32, mtime: i64) -> Node {
        let mut n = Node::new(b"f".to_vec(), NodeKind::File);
        n.content = vec![ContentPart::Data {
            id: BlobId([content[0]; 32]),
            len: 1,
        }];
        n.size = 1;
        n.mode = mode;
        n.mtime = Timestamp {
            secs: mtime,
            nanos: 0,
        };
        n
    }

    #[test]
    fn metadata_changes_are_not_new_versions() {
        let same = |a: &Node, b: &Node| content_key(a) == content_key(b);
        assert!(same(&file(b"a", 0o644, 1), &file(b"a", 0o600, 2)));
        assert!(!same(&file(b"a", 0o644, 1), &file(b"b", 0o644, 1)));
        let mut link = Node::new(b"f".to_vec(), NodeKind::Symlink);
        link.link_target = b"x".to_vec();
        let mut other = link.clone();
        other.link_target = b"y".to_vec();
        assert!(!same(&link, &other));
        assert!(!same(&link, &file(b"a", 0o644, 1)));
        // A hole is not data of the same length.
        let mut hole = file(b"a", 0o644, 1);
        hole.content = vec![ContentPart::Hole { len: 1 }];
        assert!(!same(&hole, &file(b"a", 0o644, 1)));
    }
}
