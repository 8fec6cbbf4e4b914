//! Tree searches (`BTRFS_IOC_TREE_SEARCH_V2`): the default subvolume, qgroup sizes, and the
//! directories holding inodes changed since a generation.
//!
//! Item layouts are the on-disk ones (`btrfs_tree.h`, little-endian, packed). Every item read
//! from the kernel is bounds-checked before use; a short item is an error, never a panic.

use crate::{open_dir, sys, Error, QgroupUsage, Result};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

const ROOT_TREE: u64 = 1;
const QUOTA_TREE: u64 = 8;
/// The root tree's directory that holds the `default` entry.
const ROOT_TREE_DIR: u64 = 6;

const INODE_ITEM: u32 = 1;
const INODE_REF: u32 = 12;
const INODE_EXTREF: u32 = 13;
const DIR_ITEM: u32 = 84;
const ROOT_REF: u32 = 156;
const QGROUP_INFO: u32 = 242;

/// Stop collecting and let the caller fall back to a full walk beyond this many changed inodes:
/// the point of the search is to be cheaper than the walk.
const MAX_CHANGED_INODES: usize = 2_000_000;

/// One item of a search result.
pub(crate) struct Item<'a> {
    pub objectid: u64,
    pub kind: u32,
    pub offset: u64,
    pub data: &'a [u8],
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn malformed(path: &Path, what: &str) -> Error {
    Error::Invalid {
        path: path.to_path_buf(),
        detail: format!("malformed {what} item returned by the kernel"),
    }
}

/// Run a tree search over the key range in `key`, calling `f` for every item in order. `f`
/// returns false to stop early.
pub(crate) fn search(
    fd: BorrowedFd<'_>,
    path: &Path,
    mut key: sys::SearchKey,
    mut f: impl FnMut(Item<'_>) -> Result<bool>,
) -> Result<()> {
    let mut buf = sys::zeroed::<sys::SearchBuf>();
    loop {
        key.nr_items = u32::MAX;
        buf.args.key = key;
        sys::tree_search_v2(fd, &mut buf)
            .map_err(|e| Error::io(path, "search the btrfs trees", e))?;
        let n = buf.args.key.nr_items;
        if n == 0 {
            return Ok(());
        }
        let mut at = 0usize;
        let (mut last_obj, mut last_type, mut last_off) = (0, 0, 0);
        for _ in 0..n {
            let h = buf
                .buf
                .get(at..at + sys::SEARCH_HEADER_LEN)
                .ok_or_else(|| malformed(path, "search header"))?;
            let objectid = le64(h, 8).ok_or_else(|| malformed(path, "search header"))?;
            let offset = le64(h, 16).ok_or_else(|| malformed(path, "search header"))?;
            let kind = le32(h, 24).ok_or_else(|| malformed(path, "search header"))?;
            let len = le32(h, 28).ok_or_else(|| malformed(path, "search header"))? as usize;
            at += sys::SEARCH_HEADER_LEN;
            let data = buf
                .buf
                .get(at..at + len)
                .ok_or_else(|| malformed(path, "search result"))?;
            at += len;
            (last_obj, last_type, last_off) = (objectid, kind, offset);
            if !f(Item {
                objectid,
                kind,
                offset,
                data,
            })? {
                return Ok(());
            }
        }
        // Continue right after the last key returned.
        if last_off < u64::MAX {
            key.min_objectid = last_obj;
            key.min_type = last_type;
            key.min_offset = last_off + 1;
        } else if last_type < 255 {
            key.min_objectid = last_obj;
            key.min_type = last_type + 1;
            key.min_offset = 0;
        } else if last_obj < u64::MAX {
            key.min_objectid = last_obj + 1;
            key.min_type = 0;
            key.min_offset = 0;
        } else {
            return Ok(());
        }
        if (key.min_objectid, key.min_type, key.min_offset)
            > (key.max_objectid, key.max_type, key.max_offset)
        {
            return Ok(());
        }
    }
}

fn full_range(tree_id: u64) -> sys::SearchKey {
    sys::SearchKey {
        tree_id,
        max_objectid: u64::MAX,
        max_offset: u64::MAX,
        max_transid: u64::MAX,
        max_type: 255,
        ..Default::default()
    }
}

pub(crate) fn default_subvolume(fs_path: &Path) -> Result<u64> {
    let fd = open_dir(fs_path, "open")?;
    let mut key = full_range(ROOT_TREE);
    key.min_objectid = ROOT_TREE_DIR;
    key.max_objectid = ROOT_TREE_DIR;
    key.min_type = DIR_ITEM;
    key.max_type = DIR_ITEM;
    let mut found = None;
    search(fd.as_fd(), fs_path, key, |item| {
        if item.kind != DIR_ITEM {
            return Ok(true);
        }
        // struct btrfs_dir_item: location key (le64 objectid, u8 type, le64 offset), le64
        // transid, le16 data_len, le16 name_len, u8 type; then the name.
        let d = item.data;
        let name_len = le16(d, 27).ok_or_else(|| malformed(fs_path, "dir"))? as usize;
        let name = d
            .get(30..30 + name_len)
            .ok_or_else(|| malformed(fs_path, "dir"))?;
        if name == b"default" {
            found = Some(le64(d, 0).ok_or_else(|| malformed(fs_path, "dir"))?);
            return Ok(false);
        }
        Ok(true)
    })?;
    // Without a `default` entry the top-level subvolume is the default.
    Ok(match found {
        Some(0) | None => crate::TOP_LEVEL_ID,
        Some(id) => id,
    })
}

pub(crate) fn qgroup_usage(fs_path: &Path) -> Result<Option<HashMap<u64, QgroupUsage>>> {
    let fd = open_dir(fs_path, "open")?;
    let mut key = full_range(QUOTA_TREE);
    key.min_type = QGROUP_INFO;
    key.max_type = QGROUP_INFO;
    key.max_objectid = 0;
    let mut out = HashMap::new();
    let r = search(fd.as_fd(), fs_path, key, |item| {
        if item.kind == QGROUP_INFO && item.offset >> 48 == 0 {
            // struct btrfs_qgroup_info_item: generation, rfer, rfer_cmpr, excl, excl_cmpr.
            let d = item.data;
            out.insert(
                item.offset,
                QgroupUsage {
                    referenced: le64(d, 8).ok_or_else(|| malformed(fs_path, "qgroup"))?,
                    exclusive: le64(d, 24).ok_or_else(|| malformed(fs_path, "qgroup"))?,
                },
            );
        }
        Ok(true)
    });
    match r {
        Ok(()) => Ok(Some(out)),
        // No quota tree: quotas are off.
        Err(e) if e.os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn nested_subvolumes(subvol: &Path, id: u64) -> Result<Vec<std::path::PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let fd = open_dir(subvol, "open the subvolume")?;
    let mut key = full_range(ROOT_TREE);
    key.min_objectid = id;
    key.max_objectid = id;
    key.min_type = ROOT_REF;
    key.max_type = ROOT_REF;
    // struct btrfs_root_ref: le64 dirid, le64 sequence, le16 name_len; then the name.
    let mut refs = Vec::new();
    search(fd.as_fd(), subvol, key, |item| {
        if item.kind == ROOT_REF && item.objectid == id {
            let d = item.data;
            let dirid = le64(d, 0).ok_or_else(|| malformed(subvol, "root ref"))?;
            let n = le16(d, 16).ok_or_else(|| malformed(subvol, "root ref"))? as usize;
            let name = d
                .get(18..18 + n)
                .ok_or_else(|| malformed(subvol, "root ref"))?;
            refs.push((dirid, name.to_vec()));
        }
        Ok(true)
    })?;
    let mut out = Vec::new();
    for (dirid, name) in refs {
        let mut rel = ino_path(fd.as_fd(), subvol, dirid)?;
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&name);
        out.push(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&rel)));
    }
    out.sort();
    Ok(out)
}

/// The path of directory inode `ino` relative to the subvolume root `fd` is in.
pub(crate) fn ino_path(fd: BorrowedFd<'_>, path: &Path, ino: u64) -> Result<Vec<u8>> {
    let mut a = sys::zeroed::<sys::InoLookupArgs>();
    a.treeid = 0;
    a.objectid = ino;
    sys::ino_lookup(fd, &mut a).map_err(|e| Error::io(path, "look up a directory's path", e))?;
    let len = a.name.iter().position(|&b| b == 0).unwrap_or(a.name.len());
    let mut p = a.name[..len].to_vec();
    if p.last() == Some(&b'/') {
        p.pop();
    }
    Ok(p)
}

/// Which directories of a subvolume hold something changed since a generation.
///
/// A directory is *dirty* if an inode in it (or it itself) was created or changed in a
/// transaction at or after the generation, or if any directory below it is dirty. Deleting or
/// renaming an entry changes its directory, so a directory that is not dirty, and whose inode is
/// the same as in a snapshot taken at that generation, has exactly the same subtree there.
#[derive(Debug, Default, Clone)]
pub struct ChangedDirs {
    /// Paths relative to the subvolume root, without leading or trailing slash; the root is
    /// the empty path.
    dirty: HashSet<Vec<u8>>,
    /// The inode numbers whose items changed.
    changed: HashSet<u64>,
    /// How many changed inodes were found.
    pub changed_inodes: u64,
}

impl ChangedDirs {
    /// Whether the directory at `rel` (relative to the subvolume root) must be walked.
    pub fn is_dirty(&self, rel: &[u8]) -> bool {
        self.dirty.contains(rel)
    }
    /// Whether inode `ino` was created or changed (content, metadata, names) since the
    /// generation. An inode that did not is exactly as it was in a snapshot taken then.
    pub fn is_changed(&self, ino: u64) -> bool {
        self.changed.contains(&ino)
    }
    /// Mark the directory at `rel` and its ancestors as dirty (for what the search cannot see,
    /// such as nested subvolumes, whose changes are in trees of their own).
    pub fn mark_dirty(&mut self, rel: &[u8]) {
        self.mark(rel.to_vec());
    }
    /// How many directories are dirty.
    pub fn dirty_dirs(&self) -> usize {
        self.dirty.len()
    }
    fn mark(&mut self, mut rel: Vec<u8>) {
        loop {
            if !self.dirty.insert(rel.clone()) {
                return; // ancestors are already in
            }
            match rel.iter().rposition(|&b| b == b'/') {
                Some(i) => rel.truncate(i),
                None if rel.is_empty() => return,
                None => rel.clear(),
            }
        }
    }
}

/// The directories of the subvolume rooted at `subvol` that hold inodes changed in transaction
/// `since` or later (see [`ChangedDirs`]), or `None` if there are so many changes that a full
/// walk is cheaper. Root only.
pub fn changed_dirs(subvol: &Path, since: u64) -> Result<Option<ChangedDirs>> {
    let fd = open_dir(subvol, "open the subvolume")?;
    let fd = fd.as_fd();
    let mut key = full_range(0);
    key.min_transid = since;
    // Inodes whose item was written at or after `since`: (inode, is directory).
    let mut changed: Vec<(u64, bool)> = Vec::new();
    let mut too_many = false;
    search(fd, subvol, key, |item| {
        if item.kind != INODE_ITEM {
            return Ok(true);
        }
        // struct btrfs_inode_item: generation, transid, ..., mode (le32 at 52).
        let transid = le64(item.data, 8).ok_or_else(|| malformed(subvol, "inode"))?;
        let mode = le32(item.data, 52).ok_or_else(|| malformed(subvol, "inode"))?;
        if transid >= since {
            changed.push((item.objectid, mode & 0o170000 == 0o040000));
            if changed.len() > MAX_CHANGED_INODES {
                too_many = true;
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    if too_many {
        return Ok(None);
    }
    let mut out = ChangedDirs {
        changed_inodes: changed.len() as u64,
        changed: changed.iter().map(|&(ino, _)| ino).collect(),
        ..Default::default()
    };
    let mut dir_paths: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut lookup = |ino: u64, out: &mut ChangedDirs| -> Result<()> {
        if let Some(p) = dir_paths.get(&ino) {
            out.mark(p.clone());
            return Ok(());
        }
        match ino_path(fd, subvol, ino) {
            Ok(p) => {
                dir_paths.insert(ino, p.clone());
                out.mark(p);
                Ok(())
            }
            // Deleted since the search (a live subvolume): its parent changed too.
            Err(e) if e.os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) => Ok(()),
            Err(e) => Err(e),
        }
    };
    for (ino, is_dir) in changed {
        if is_dir {
            lookup(ino, &mut out)?;
            continue;
        }
        // A file: every directory holding a name of it (hard links) is dirty.
        let mut parents = Vec::new();
        let mut key = full_range(0);
        key.min_objectid = ino;
        key.max_objectid = ino;
        key.min_type = INODE_REF;
        key.max_type = INODE_EXTREF;
        search(fd, subvol, key, |item| {
            match item.kind {
                INODE_REF => parents.push(item.offset),
                INODE_EXTREF => {
                    // struct btrfs_inode_extref: le64 parent, le64 index, le16 name_len, name;
                    // several may be packed in one item.
                    let d = item.data;
                    let mut at = 0;
                    while at < d.len() {
                        parents.push(le64(d, at).ok_or_else(|| malformed(subvol, "extref"))?);
                        let n = le16(d, at + 16).ok_or_else(|| malformed(subvol, "extref"))?;
                        at += 18 + n as usize;
                    }
                }
                _ => {}
            }
            Ok(true)
        })?;
        for p in parents {
            lookup(p, &mut out)?;
        }
    }
    Ok(Some(out))
}
