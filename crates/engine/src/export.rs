//! Export: stream a snapshot, a folder of it or one file as a tar or zip archive.
//!
//! The walk is depth-first in name order, like a restore's; each file's content is read blob by
//! blob ([`Repository::read_blob`], which verifies every blob) and written out at once, so memory
//! stays flat however large the files are.
//!
//! Tar (`snapguard_tar`): POSIX pax with everything a snapshot holds (see docs/export-import.md):
//! owners by number and name, nanosecond times, every extended attribute (ACLs also as
//! `SCHILY.acl.*` text), hardlinks as link entries to the first name exported, devices, FIFOs,
//! sparse files as GNU sparse 1.0 entries whose holes are never written. With
//! [`ExportOptions::inode_numbers`], inode numbers, devices and link counts go along too
//! (star's `SCHILY.ino`/`SCHILY.dev`/`SCHILY.nlink`), and importing the archive reproduces the
//! snapshot's tree ids exactly.
//!
//! Zip (module `zip`): for people on other systems; what zip cannot carry is listed in the
//! summary's warnings.
//!
//! A folder is exported like a restore puts it in its target: its contents at the top of the
//! archive (and, in a tar, its own metadata as the `./` entry); a file or other entry as a
//! single member under its own name.

mod zip;

use crate::restore::find_node;
use crate::{Error, Repository, Result};
use snapguard_format::{ContentPart, Node, NodeKind, SnapshotFile, Timestamp, TreeId};
use snapguard_tar::{acl, Entry, EntryKind, Segment, Time};
use std::collections::HashMap;
use std::io::Write;

/// The archive format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Tar,
    Zip,
}

/// How to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub format: ExportFormat,
    /// Tar only: also record inode numbers, devices and link counts.
    pub inode_numbers: bool,
    /// Counters for a progress display (files and bytes of content written).
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
}

/// Where the archive goes.
pub enum ExportOutput<'a> {
    /// A regular file: zip entries then carry their sizes in their local headers.
    File(&'a mut std::fs::File),
    /// A pipe or standard output (never seeked).
    Stream(&'a mut dyn Write),
}

/// Something the archive does not carry exactly.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportWarning {
    pub path: String,
    pub message: String,
}

/// What was exported.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ExportSummary {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    /// Hardlink entries (tar) among `files`.
    pub hardlinks: u64,
    /// Bytes of file content.
    pub bytes: u64,
    pub warnings: Vec<ExportWarning>,
}

/// Export `subpath` (absolute, within the snapshot; `/` for everything) of `snapshot`.
pub fn export(
    repo: &Repository,
    snapshot: &SnapshotFile,
    subpath: &[u8],
    out: ExportOutput,
    opts: &ExportOptions,
) -> Result<ExportSummary> {
    let node = find_node(repo, snapshot.tree, subpath)?.ok_or_else(|| Error::PathNotFound {
        path: String::from_utf8_lossy(subpath).into_owned(),
        snapshot: "the snapshot".into(),
    })?;
    let whole = subpath.iter().all(|&b| b == b'/');
    let mut items = Walk {
        repo,
        stack: Vec::new(),
    };
    match (node.kind, node.subtree) {
        (NodeKind::Dir, Some(tree)) => {
            // Fail early, with the snapshot's own error, if the top tree cannot be read.
            repo.read_tree(&tree)?;
            items.push_tree(tree, b"")?;
            if !whole {
                // First: the folder's own metadata, as "./".
                items
                    .stack
                    .push(Item::Node(b".".to_vec(), Box::new(meta_only(&node))));
            }
        }
        _ => items
            .stack
            .push(Item::Node(node.name.clone(), Box::new(node))),
    }
    match opts.format {
        ExportFormat::Tar => match out {
            ExportOutput::File(f) => {
                // Headers are 512-byte writes; batch them (the writer flushes at the end).
                let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                export_tar(repo, &mut items, &mut w, opts)
            }
            ExportOutput::Stream(s) => export_tar(repo, &mut items, s, opts),
        },
        ExportFormat::Zip => zip::export_zip(repo, &mut items, out, opts),
    }
}

/// A depth-first, name-ordered walk that reads one tree at a time.
pub(crate) struct Walk<'r> {
    repo: &'r Repository,
    /// Entries still to visit, the next one last.
    stack: Vec<Item>,
}

enum Item {
    /// A node and its archive path.
    Node(Vec<u8>, Box<Node>),
    /// A tree whose entries go below this archive path.
    Tree(TreeId, Vec<u8>),
}

impl Walk<'_> {
    fn push_tree(&mut self, id: TreeId, prefix: &[u8]) -> Result<()> {
        let tree = self.repo.read_tree(&id)?;
        for node in tree.nodes.into_iter().rev() {
            let mut path = prefix.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&node.name);
            self.stack.push(Item::Node(path, Box::new(node)));
        }
        Ok(())
    }

    /// The next (archive path, node); a directory's entries follow it.
    pub(crate) fn next_node(&mut self) -> Result<Option<(Vec<u8>, Node)>> {
        loop {
            match self.stack.pop() {
                None => return Ok(None),
                Some(Item::Tree(id, prefix)) => self.push_tree(id, &prefix)?,
                Some(Item::Node(path, node)) => {
                    if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                        self.stack.push(Item::Tree(sub, path.clone()));
                    }
                    return Ok(Some((path, *node)));
                }
            }
        }
    }
}

/// A copy of `node`'s metadata, without content or subtree.
fn meta_only(node: &Node) -> Node {
    let mut n = node.clone();
    n.content = Vec::new();
    n.subtree = None;
    n
}

/// Write each data blob of `node` through `write` (holes as zeros if `holes` is set, else
/// skipped); returns the number of content bytes written.
pub(crate) fn stream_content(
    repo: &Repository,
    node: &Node,
    path: &[u8],
    holes: bool,
    progress: Option<&crate::progress::Progress>,
    write: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let zeros = vec![0u8; 1 << 20];
    let mut written = 0u64;
    for part in &node.content {
        match part {
            ContentPart::Data { id, len } => {
                let data = repo.read_blob(id)?;
                if data.len() != *len as usize {
                    return Err(Error::corrupt(
                        format!("blob {id}"),
                        format!(
                            "it holds {} bytes but {:?} lists it with {len}",
                            data.len(),
                            String::from_utf8_lossy(path)
                        ),
                    ));
                }
                write(&data)?;
                written += data.len() as u64;
                if let Some(p) = progress {
                    p.add_bytes(data.len() as u64);
                }
            }
            ContentPart::Hole { len } if holes => {
                let mut left = *len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    write(&zeros[..n])?;
                    left -= n as u64;
                    written += n as u64;
                }
            }
            ContentPart::Hole { .. } => {}
        }
    }
    Ok(written)
}

fn time(t: Timestamp) -> Time {
    Time {
        secs: t.secs,
        nanos: t.nanos,
    }
}

/// The data runs of a file with holes (consecutive data parts merged), or None if it has none.
fn data_runs(node: &Node) -> Option<Vec<Segment>> {
    if !node
        .content
        .iter()
        .any(|p| matches!(p, ContentPart::Hole { .. }))
    {
        return None;
    }
    let mut runs: Vec<Segment> = Vec::new();
    let mut pos = 0u64;
    for p in &node.content {
        if let ContentPart::Data { len, .. } = p {
            match runs.last_mut() {
                Some(r) if r.offset + r.len == pos => r.len += u64::from(*len),
                _ => runs.push(Segment {
                    offset: pos,
                    len: u64::from(*len),
                }),
            }
        }
        pos += p.len();
    }
    Some(runs)
}

/// The tar entry for a node (without the hardlink decision).
fn tar_entry(path: &[u8], node: &Node, opts: &ExportOptions) -> Entry {
    let kind = match node.kind {
        NodeKind::File => EntryKind::File,
        NodeKind::Dir => EntryKind::Dir,
        NodeKind::Symlink => EntryKind::Symlink,
        NodeKind::Fifo => EntryKind::Fifo,
        NodeKind::CharDevice => EntryKind::CharDevice,
        NodeKind::BlockDevice => EntryKind::BlockDevice,
    };
    let mut e = Entry::new(path.to_vec(), kind);
    e.mode = node.mode;
    e.uid = u64::from(node.uid);
    e.gid = u64::from(node.gid);
    e.uname = node.user.clone().unwrap_or_default().into_bytes();
    e.gname = node.group.clone().unwrap_or_default().into_bytes();
    e.mtime = time(node.mtime);
    e.atime = Some(time(node.atime));
    e.ctime = Some(time(node.ctime));
    if matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        e.dev_major = u64::from(rustix::fs::major(node.rdev));
        e.dev_minor = u64::from(rustix::fs::minor(node.rdev));
    }
    if node.kind == NodeKind::Symlink {
        e.link.clone_from(&node.link_target);
    }
    if node.kind == NodeKind::File {
        e.size = node.size;
        e.sparse = data_runs(node);
    }
    e.xattrs = node
        .xattrs
        .iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect();
    for x in &node.xattrs {
        // GNU tar's --acls reads the text records; the binary attributes carry the same.
        if x.name == acl::ACCESS_XATTR {
            e.acl_access = acl::to_text(&x.value);
        } else if x.name == acl::DEFAULT_XATTR {
            e.acl_default = acl::to_text(&x.value);
        }
    }
    if opts.inode_numbers {
        e.inode = Some(node.inode);
        e.device = Some(node.device);
        e.nlink = Some(node.nlink);
    }
    e
}

fn tar_error(e: snapguard_tar::Error) -> Error {
    match e.kind {
        snapguard_tar::ErrorKind::Io(cause) => Error::io("the archive output", cause),
        _ => Error::Internal(format!("writing the archive: {e}")),
    }
}

fn export_tar(
    repo: &Repository,
    walk: &mut Walk,
    out: &mut dyn Write,
    opts: &ExportOptions,
) -> Result<ExportSummary> {
    let mut w = snapguard_tar::Writer::new(out);
    let mut summary = ExportSummary::default();
    // First archive path of each hardlinked inode, with its content (a link is written only
    // if the content is the same, which a file changing during the backup could break).
    let mut links: HashMap<(u64, u64), (Vec<u8>, Vec<ContentPart>)> = HashMap::new();
    let progress = opts.progress.as_deref();
    while let Some((path, node)) = walk.next_node()? {
        let mut entry = tar_entry(&path, &node, opts);
        let key = (node.kind == NodeKind::File && node.nlink > 1 && node.inode != 0)
            .then_some((node.device, node.inode));
        if let Some(p) = progress {
            p.set_current(&String::from_utf8_lossy(&path));
        }
        match node.kind {
            NodeKind::Dir => summary.dirs += 1,
            NodeKind::File => summary.files += 1,
            _ => summary.other += 1,
        }
        if let Some((first, content)) = key.and_then(|k| links.get(&k)) {
            if *content == node.content {
                entry.kind = EntryKind::HardLink;
                entry.link.clone_from(first);
                entry.size = 0;
                entry.sparse = None;
                w.append(&entry).map_err(tar_error)?;
                summary.hardlinks += 1;
                continue;
            }
        }
        w.append(&entry).map_err(tar_error)?;
        if node.kind == NodeKind::File {
            summary.bytes += stream_content(
                repo,
                &node,
                &path,
                entry.sparse.is_none(),
                progress,
                &mut |d| w.write_data(d).map_err(tar_error),
            )?;
            if let Some(p) = progress {
                p.add_files(1);
            }
        }
        if let Some(k) = key {
            links.entry(k).or_insert((path, node.content));
        }
    }
    w.finish().map_err(tar_error)?;
    Ok(summary)
}
