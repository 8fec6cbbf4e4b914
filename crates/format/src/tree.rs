//! Trees (directory listings) and nodes (one entry with all of its Linux metadata).
//!
//! A [`Tree`] is the plaintext of a tree blob. Its nodes are sorted by name bytes and unique;
//! names are arbitrary bytes (not necessarily UTF-8) but never empty, never `.` or `..` and never
//! contain `/` or NUL. [`Tree::decode`] enforces this so a hostile repository cannot make a
//! restore escape its target directory.

use crate::{decode_versioned, encode_versioned, BlobId, FormatError, TreeId};
use serde::{Deserialize, Serialize};

const TREE_VERSION: u8 = 1;

/// Node flag: the file changed while it was being read, even after retries; the stored content
/// may mix versions (the backup reported it).
pub const NODE_CHANGED_WHILE_READ: u32 = 1;
/// Node flag: the file could not be read completely; content is missing or partial (reported).
pub const NODE_READ_ERROR: u32 = 2;

/// Seconds and nanoseconds since the Unix epoch; seconds may be negative (before 1970).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// The file type of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
}

/// One extended attribute (including `system.posix_acl_access` and `system.posix_acl_default`,
/// kept in the kernel's binary form so ACLs restore bit-exact).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// A piece of a regular file's content, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContentPart {
    /// A data blob of `len` plaintext bytes.
    Data { id: BlobId, len: u32 },
    /// A hole of `len` bytes (reads as zeros; restored as a hole).
    Hole { len: u64 },
}

impl ContentPart {
    pub fn len(&self) -> u64 {
        match self {
            ContentPart::Data { len, .. } => u64::from(*len),
            ContentPart::Hole { len } => *len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One directory entry and all of its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// User and group names at backup time, if the ids resolved.
    pub user: Option<String>,
    pub group: Option<String>,
    pub size: u64,
    pub mtime: Timestamp,
    pub atime: Timestamp,
    pub ctime: Timestamp,
    pub inode: u64,
    pub device: u64,
    pub nlink: u64,
    /// Device number for character and block devices.
    pub rdev: u64,
    /// Symlink target bytes.
    #[serde(with = "serde_bytes")]
    pub link_target: Vec<u8>,
    pub xattrs: Vec<Xattr>,
    /// Regular files: the content, in order; sums to `size`.
    pub content: Vec<ContentPart>,
    /// Directories: the subtree.
    pub subtree: Option<TreeId>,
    /// `NODE_*` flags.
    pub flags: u32,
}

impl Node {
    /// A node with the given name and kind and every other field zero or empty.
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            size: 0,
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            device: 0,
            nlink: 1,
            rdev: 0,
            link_target: Vec::new(),
            xattrs: Vec::new(),
            content: Vec::new(),
            subtree: None,
            flags: 0,
        }
    }

    /// Whether `name` is acceptable as one path component.
    pub fn valid_name(name: &[u8]) -> bool {
        !name.is_empty()
            && name != b"."
            && name != b".."
            && !name.contains(&b'/')
            && !name.contains(&0)
    }

    /// The name as (lossy) UTF-8, for display.
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// The plaintext of a tree blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sort nodes by name. Callers building a tree must not insert duplicate names.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(TREE_VERSION, self)
    }

    /// Decode and validate: sorted unique valid names, content consistent with kind and size.
    pub fn decode(bytes: &[u8]) -> Result<Tree, FormatError> {
        let tree: Tree = decode_versioned("tree", TREE_VERSION, bytes)?;
        let bad = |detail: String| FormatError::Malformed {
            what: "tree",
            detail,
        };
        for (i, node) in tree.nodes.iter().enumerate() {
            if !Node::valid_name(&node.name) {
                return Err(bad(format!("invalid entry name {:?}", node.display_name())));
            }
            if i > 0 && tree.nodes[i - 1].name >= node.name {
                return Err(bad("entries not sorted or duplicated".into()));
            }
            if node.kind != NodeKind::File && !node.content.is_empty() {
                return Err(bad(format!(
                    "{:?} has content but is not a file",
                    node.display_name()
                )));
            }
            if (node.kind == NodeKind::Dir) != node.subtree.is_some() {
                return Err(bad(format!(
                    "{:?}: subtree does not match kind",
                    node.display_name()
                )));
            }
            let total = node
                .content
                .iter()
                .try_fold(0u64, |acc, p| acc.checked_add(p.len()));
            if node.kind == NodeKind::File && total != Some(node.size) {
                return Err(bad(format!(
                    "{:?}: content does not add up to its size",
                    node.display_name()
                )));
            }
            if node.mode > 0o7777 {
                return Err(bad(format!(
                    "{:?}: invalid mode {:o}",
                    node.display_name(),
                    node.mode
                )));
            }
            if [node.mtime, node.atime, node.ctime]
                .iter()
                .any(|t| t.nanos >= 1_000_000_000)
            {
                return Err(bad(format!(
                    "{:?}: invalid nanoseconds",
                    node.display_name()
                )));
            }
        }
        Ok(tree)
    }

    /// Find a node by name (binary search; nodes are sorted).
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .and_then(|i| self.nodes.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_ts() -> impl Strategy<Value = Timestamp> {
        (any::<i64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(1u8..=255, 1..40)
                .prop_filter("valid", |n| Node::valid_name(n)),
            0u32..=0o7777,
            any::<(u32, u32, u64, u64, u64)>(),
            arb_ts(),
            arb_ts(),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 1..20),
                    proptest::collection::vec(any::<u8>(), 0..20),
                ),
                0..3,
            ),
            proptest::collection::vec((any::<[u8; 32]>(), 1u32..10_000_000), 0..4),
            proptest::option::of(0u64..1 << 40),
        )
            .prop_map(
                |(
                    name,
                    mode,
                    (uid, gid, inode, device, rdev),
                    mtime,
                    atime,
                    xattrs,
                    chunks,
                    hole,
                )| {
                    let mut n = Node::new(name, NodeKind::File);
                    n.mode = mode;
                    n.uid = uid;
                    n.gid = gid;
                    n.inode = inode;
                    n.device = device;
                    n.rdev = rdev;
                    n.mtime = mtime;
                    n.atime = atime;
                    n.user = Some("user".into());
                    n.xattrs = xattrs
                        .into_iter()
                        .map(|(name, value)| Xattr { name, value })
                        .collect();
                    n.content = chunks
                        .into_iter()
                        .map(|(id, len)| ContentPart::Data {
                            id: BlobId(id),
                            len,
                        })
                        .collect();
                    if let Some(len) = hole {
                        n.content.push(ContentPart::Hole { len });
                    }
                    n.size = n.content.iter().map(|p| p.len()).sum();
                    n
                },
            )
    }

    proptest! {
        #[test]
        fn tree_round_trip(mut nodes in proptest::collection::vec(arb_node(), 0..8)) {
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            nodes.dedup_by(|a, b| a.name == b.name);
            let tree = Tree { nodes };
            let bytes = tree.encode();
            prop_assert_eq!(Tree::decode(&bytes), Ok(tree));
        }

        #[test]
        fn tree_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Tree::decode(&bytes);
        }
    }

    #[test]
    fn rejects_traversal_names() {
        for name in [&b".."[..], b".", b"a/b", b"", b"a\0"] {
            let tree = Tree {
                nodes: vec![Node::new(name.to_vec(), NodeKind::Fifo)],
            };
            assert!(Tree::decode(&tree.encode()).is_err(), "{name:?}");
        }
    }

    #[test]
    fn rejects_unsorted_and_unknown_version() {
        let tree = Tree {
            nodes: vec![
                Node::new(b"b".to_vec(), NodeKind::Fifo),
                Node::new(b"a".to_vec(), NodeKind::Fifo),
            ],
        };
        assert!(Tree::decode(&tree.encode()).is_err());
        let mut bytes = Tree::default().encode();
        bytes[0] = 2;
        assert!(matches!(
            Tree::decode(&bytes),
            Err(FormatError::UnsupportedVersion { .. })
        ));
    }
}
