//! The synthetic directory tree above the backed-up paths.
//!
//! Backing up `/home/a/docs` and `/home/b` stores `home` → {`a` → {`docs`}, `b`} so that every
//! path keeps its absolute location. Intermediate directories carry their real metadata but only
//! the children on the way to a target. A target inside another target is dropped (the outer
//! one already covers it).

use super::Children;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, PathBuf};

/// A node of the synthetic tree.
#[derive(Debug, Default)]
pub(crate) struct VirtualDir {
    /// This path itself was named on the command line: back up everything below it.
    pub is_target: bool,
    pub children: Children,
}

impl VirtualDir {
    /// Build from absolute, normalized paths.
    pub fn from_paths(paths: &[PathBuf]) -> VirtualDir {
        let mut root = VirtualDir::default();
        for p in paths {
            let mut cur = &mut root;
            for c in p.components() {
                if cur.is_target {
                    break;
                }
                if let Component::Normal(name) = c {
                    cur = cur.children.entry(name.as_bytes().to_vec()).or_default();
                }
            }
            if !cur.is_target {
                cur.is_target = true;
                cur.children.clear();
            }
        }
        root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_targets_collapse() {
        let v = VirtualDir::from_paths(&[
            PathBuf::from("/a/b"),
            PathBuf::from("/a/b/c"),
            PathBuf::from("/a/d"),
        ]);
        let a = &v.children[&b"a".to_vec()];
        assert!(!a.is_target);
        assert!(a.children[&b"b".to_vec()].is_target);
        assert!(a.children[&b"b".to_vec()].children.is_empty());
        assert!(a.children[&b"d".to_vec()].is_target);
        let root = VirtualDir::from_paths(&[PathBuf::from("/"), PathBuf::from("/x")]);
        assert!(root.is_target && root.children.is_empty());
    }
}
