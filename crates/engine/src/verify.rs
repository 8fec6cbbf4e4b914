//! Comparing a directory on disk with a snapshot: `restore --verify` and `snapguard verify`.
//!
//! Tree ids are Merkle digests: a tree's id is the keyed hash of its entries, which contain the
//! ids of their subtrees and of every content chunk. Verification recomputes that digest's
//! leaves from disk and compares the rest entry by entry: for each file, every chunk's keyed
//! BLAKE3 over the same byte range on disk must equal the chunk id in the snapshot (holes must
//! read as zeros), and the metadata the digest commits to (type, mode, owner, mtime, size,
//! symlink target, device number, extended attributes) must match. Fields that a restore cannot
//! reproduce (inode, device, ctime, link count) and atime (which reading changes) are not
//! compared. The first difference in each entry is reported with its path.
//!
//! In quick mode (the default for `snapguard verify` of a live tree), files whose size, mtime,
//! ctime, inode and device still equal the snapshot's are not read, exactly like an incremental
//! backup would skip them.

use crate::filter::PathFilter;
use crate::fsmeta::{self, StatInfo};
use crate::restore::find_node;
use crate::{Error, Repository, Result};
use snapguard_format::{ContentPart, Node, NodeKind, SnapshotFile, TreeId};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How thorough to be.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Read every file (otherwise files whose stat matches the snapshot are trusted).
    pub read_all: bool,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
}

/// One difference between disk and snapshot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Difference {
    pub path: String,
    pub what: String,
}

/// The result of a verification.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub files_read: u64,
    pub files_trusted: u64,
    pub bytes_read: u64,
    pub differences: Vec<Difference>,
}

struct Verifier<'a> {
    repo: &'a Repository,
    opts: &'a VerifyOptions,
    includes: PathFilter,
    excludes: PathFilter,
    report: VerifyReport,
    buf: Vec<u8>,
}

/// Verify that `target` holds what restoring `subpath` of `snapshot` into it would create.
pub fn verify(
    repo: &Repository,
    snapshot: &SnapshotFile,
    subpath: &[u8],
    target: &Path,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let node = find_node(repo, snapshot.tree, subpath)?.ok_or_else(|| Error::PathNotFound {
        path: String::from_utf8_lossy(subpath).into_owned(),
        snapshot: "the snapshot".into(),
    })?;
    let mut v = Verifier {
        repo,
        opts,
        includes: PathFilter::new(&opts.includes)?,
        excludes: PathFilter::new(&opts.excludes)?,
        report: VerifyReport::default(),
        buf: vec![0u8; 1 << 20],
    };
    let base: Vec<u8> = subpath
        .iter()
        .copied()
        .filter(|_| subpath != b"/")
        .collect();
    let all = v.includes.is_empty();
    match node.subtree {
        Some(tree) if node.kind == NodeKind::Dir => v.dir(tree, target, &base, all)?,
        _ => {
            let parent = match base.iter().rposition(|&b| b == b'/') {
                Some(i) => base[..i].to_vec(),
                None => Vec::new(),
            };
            v.entry(&node, target, &parent, all)?;
        }
    }
    Ok(v.report)
}

impl Verifier<'_> {
    fn diff(&mut self, path: &Path, what: impl Into<String>) {
        self.report.differences.push(Difference {
            path: path.display().to_string(),
            what: what.into(),
        });
    }

    fn dir(&mut self, id: TreeId, dest: &Path, snap_path: &[u8], included: bool) -> Result<()> {
        let tree = self.repo.read_tree(&id)?;
        // Entries on disk that the snapshot does not have.
        if included && self.excludes.is_empty() {
            if let Ok(rd) = std::fs::read_dir(dest) {
                let mut extra: Vec<Vec<u8>> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().as_bytes().to_vec())
                    .filter(|n| tree.find(n).is_none())
                    .collect();
                extra.sort();
                for n in extra {
                    self.diff(
                        &dest.join(OsStr::from_bytes(&n)),
                        "exists on disk but not in the snapshot",
                    );
                }
            }
        }
        for node in &tree.nodes {
            self.entry(node, dest, snap_path, included)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        node: &Node,
        dest_dir: &Path,
        snap_dir: &[u8],
        included: bool,
    ) -> Result<()> {
        let mut snap_path = snap_dir.to_vec();
        snap_path.push(b'/');
        snap_path.extend_from_slice(&node.name);
        if self.excludes.matches(&snap_path, &node.name) {
            return Ok(());
        }
        let included = included || self.includes.matches(&snap_path, &node.name);
        let path = dest_dir.join(OsStr::from_bytes(&node.name));
        if node.kind == NodeKind::Dir {
            if included && self.compare_meta(node, &path)?.is_none() {
                return Ok(());
            }
            if let Some(sub) = node.subtree {
                if fsmeta::lstat(&path)
                    .map(|s| s.kind == Some(NodeKind::Dir))
                    .unwrap_or(false)
                {
                    self.dir(sub, &path, &snap_path, included)?;
                }
            }
            return Ok(());
        }
        if !included {
            return Ok(());
        }
        let Some(st) = self.compare_meta(node, &path)? else {
            return Ok(());
        };
        if node.kind == NodeKind::File {
            self.compare_content(node, &path, &st)?;
        }
        Ok(())
    }

    /// Compare type and metadata; None if the entry is missing or of another type.
    fn compare_meta(&mut self, node: &Node, path: &Path) -> Result<Option<StatInfo>> {
        self.report.entries += 1;
        let st = match fsmeta::lstat(path) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.diff(path, "missing on disk");
                return Ok(None);
            }
            Err(e) => {
                self.diff(path, format!("cannot be read: {e}"));
                return Ok(None);
            }
        };
        if st.kind != Some(node.kind) {
            self.diff(
                path,
                format!(
                    "is a {:?} on disk but a {:?} in the snapshot",
                    st.kind, node.kind
                ),
            );
            return Ok(None);
        }
        if node.kind != NodeKind::Symlink && st.mode != node.mode {
            self.diff(
                path,
                format!(
                    "mode {:04o} on disk, {:04o} in the snapshot",
                    st.mode, node.mode
                ),
            );
        }
        if (st.uid, st.gid) != (node.uid, node.gid) {
            self.diff(
                path,
                format!(
                    "owner {}:{} on disk, {}:{} in the snapshot",
                    st.uid, st.gid, node.uid, node.gid
                ),
            );
        }
        if node.kind != NodeKind::Dir && st.mtime != node.mtime {
            self.diff(
                path,
                format!(
                    "mtime {}.{:09} on disk, {}.{:09} in the snapshot",
                    st.mtime.secs, st.mtime.nanos, node.mtime.secs, node.mtime.nanos
                ),
            );
        }
        if node.kind == NodeKind::Dir && st.mtime != node.mtime && self.opts.read_all {
            self.diff(path, "directory mtime differs");
        }
        if node.kind == NodeKind::File && st.size != node.size {
            self.diff(
                path,
                format!("{} bytes on disk, {} in the snapshot", st.size, node.size),
            );
        }
        if matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice) && st.rdev != node.rdev
        {
            self.diff(path, "device number differs");
        }
        if node.kind == NodeKind::Symlink {
            match std::fs::read_link(path) {
                Ok(t) if t.as_os_str().as_bytes() == node.link_target.as_slice() => {}
                Ok(_) => self.diff(path, "symlink target differs"),
                Err(e) => self.diff(path, format!("cannot read symlink: {e}")),
            }
        }
        match fsmeta::read_xattrs(path) {
            Ok(x) if x == node.xattrs => {}
            Ok(x) => {
                let names = |v: &[snapguard_format::Xattr]| {
                    v.iter()
                        .map(|a| String::from_utf8_lossy(&a.name).into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                self.diff(
                    path,
                    format!(
                        "extended attributes differ (disk: [{}], snapshot: [{}])",
                        names(&x),
                        names(&node.xattrs)
                    ),
                );
            }
            Err(e) => self.diff(path, format!("cannot read extended attributes: {e}")),
        }
        Ok(Some(st))
    }

    /// Recompute every chunk id over the same byte range on disk; holes must be zeros.
    fn compare_content(&mut self, node: &Node, path: &Path, st: &StatInfo) -> Result<()> {
        let unchanged = st.size == node.size
            && st.mtime == node.mtime
            && st.ctime == node.ctime
            && st.ino == node.inode
            && st.dev == node.device;
        if unchanged && !self.opts.read_all {
            self.report.files_trusted += 1;
            return Ok(());
        }
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.diff(path, format!("cannot be read: {e}"));
                return Ok(());
            }
        };
        self.report.files_read += 1;
        let mut offset = 0u64;
        for part in &node.content {
            let len = part.len();
            let ok = match part {
                ContentPart::Data { id, .. } => {
                    let mut h = self.repo.crypt().bundle().id_hasher();
                    let read = self.hash_range(&file, offset, len, &mut |b| {
                        h.update(b);
                        true
                    });
                    read.map_err(|e| Error::io(path, e))? && h.finalize().as_bytes() == &id.0
                }
                ContentPart::Hole { .. } => {
                    let read =
                        self.hash_range(&file, offset, len, &mut |b| b.iter().all(|&x| x == 0));
                    read.map_err(|e| Error::io(path, e))?
                }
            };
            if !ok {
                self.diff(
                    path,
                    format!(
                        "content differs from the snapshot in bytes {offset}..{}",
                        offset + len
                    ),
                );
                return Ok(());
            }
            offset += len;
        }
        Ok(())
    }

    /// Feed bytes [offset, offset+len) to `f`; false if the file is shorter or `f` says so.
    fn hash_range(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        len: u64,
        f: &mut dyn FnMut(&[u8]) -> bool,
    ) -> std::io::Result<bool> {
        let mut done = 0u64;
        let mut ok = true;
        while done < len {
            let want = (len - done).min(self.buf.len() as u64) as usize;
            let n = file.read_at(&mut self.buf[..want], offset + done)?;
            if n == 0 {
                return Ok(false);
            }
            self.report.bytes_read += n as u64;
            ok &= f(&self.buf[..n]);
            done += n as u64;
        }
        Ok(ok)
    }
}
