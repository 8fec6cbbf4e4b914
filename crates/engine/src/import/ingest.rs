//! Build a snapshot from entries that do not come from a directory walk (an archive, another
//! backup tool's repository).
//!
//! The caller hands over entries in any order, each a [`Node`] with its path relative to the
//! snapshot's base path and, for regular files, a source of its data. File data goes through
//! the same machinery as a backup's: content-defined chunking per data run, deduplication
//! against the index, and the compression/packing pipeline of `backup::pipeline`. Only the
//! nodes are kept in memory until [`Ingest::finish`], which writes every directory's tree
//! (children first, so tree ids stay Merkle digests) and then commits the snapshot: packs,
//! index, snapshot, in that order, as a backup does.
//!
//! Directories that entries imply but that were never added get mode 0755, owner 0:0 and the
//! snapshot's time. A later entry for a path replaces an earlier one (a directory keeps its
//! children if it is replaced by a directory), as extracting the archive would. Hardlinks are
//! copies of their target's node; entries whose inode numbers the source did not carry get
//! canonical ones (numbered in tree order), so the tree ids do not depend on the order entries
//! arrived in.

use crate::backup::pipeline::Pipeline;
use crate::backup::{BackupWarning, CompressionChoice};
use crate::{Error, Repository, Result};
use snapguard_chunker::{Chunker, StreamChunker};
use snapguard_format::{
    BlobId, BlobType, ContentPart, Node, NodeKind, SnapshotFile, SnapshotId, SnapshotSummary,
    Timestamp, Tree, TreeId,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

const READ_BUF: usize = 4 << 20;
/// Marks a node whose inode number is provisional (assigned by `add_hardlink`, renumbered in
/// `finish`): its `device` during the build.
const PROVISIONAL_DEVICE: u64 = u64::MAX;

/// Where and how to build the snapshot.
#[derive(Clone, Debug, Default)]
pub struct IngestOptions {
    /// Absolute path in the snapshot under which the entries go (`/` for the root).
    pub base: Vec<u8>,
    pub tags: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub time: Timestamp,
    /// Compression for new blobs (None: the repository's default level).
    pub compression: Option<CompressionChoice>,
    /// Compression threads (None: one per core).
    pub threads: Option<usize>,
    /// Read and chunk everything but write nothing.
    pub dry_run: bool,
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
    pub program_version: String,
}

/// The outcome of an ingest.
#[derive(Clone, Debug)]
pub struct IngestResult {
    /// None for a dry run.
    pub snapshot_id: Option<SnapshotId>,
    pub tree: TreeId,
    pub summary: SnapshotSummary,
    pub warnings: Vec<BackupWarning>,
}

/// A regular file's data: `runs` of (offset, length) in order, whose bytes `read` yields back to
/// back (`read` returns 0 only when it has nothing more); everything else up to the node's size
/// is a hole.
pub struct FileData<'a> {
    pub runs: &'a [(u64, u64)],
    pub read: &'a mut dyn FnMut(&mut [u8]) -> Result<usize>,
}

/// A path in the snapshot being built: a leaf (`node` of a non-directory kind, no children) or
/// a directory (`node` its own metadata, if an entry for it arrived, and its children).
#[derive(Default)]
struct Slot {
    node: Option<Node>,
    children: BTreeMap<Vec<u8>, Slot>,
}

impl Slot {
    fn is_leaf(&self) -> bool {
        self.node.as_ref().is_some_and(|n| n.kind != NodeKind::Dir)
    }
}

/// A snapshot being built.
pub struct Ingest<'r> {
    repo: &'r mut Repository,
    opts: IngestOptions,
    base: Vec<Vec<u8>>,
    chunker: Chunker,
    pipeline: Pipeline,
    /// Blobs submitted to the pipeline by this ingest (not in the loaded index).
    pending: HashSet<BlobId>,
    root: Slot,
    next_group: u64,
    summary: SnapshotSummary,
    warnings: Vec<BackupWarning>,
    buf: Vec<u8>,
    start: Instant,
    /// Paths and owner to record instead of the base path and this process's ids
    /// ([`Ingest::set_paths`], [`Ingest::set_owner`]).
    paths: Option<Vec<Vec<u8>>>,
    owner: Option<(u32, u32)>,
}

impl<'r> Ingest<'r> {
    /// Prepare to build a snapshot in `repo` (whose index must be loaded).
    pub fn start(repo: &'r mut Repository, opts: IngestOptions) -> Result<Ingest<'r>> {
        if repo.read_only_features() {
            return Err(Error::NewerFormat {
                location: repo.location(),
                detail: "the repository uses features that this SnapGuard may read but not write"
                    .into(),
            });
        }
        let base = match snapguard_tar::name::components(&opts.base) {
            Ok(c) if opts.base.starts_with(b"/") => c.parts,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "invalid snapshot path {:?}: give an absolute path without '..'",
                    String::from_utf8_lossy(&opts.base)
                )))
            }
        };
        let chunker = crate::backup::repo_chunker(repo)?;
        let pipeline =
            crate::backup::start_pipeline(repo, opts.compression, opts.threads, opts.dry_run);
        Ok(Ingest {
            repo,
            opts,
            base,
            chunker,
            pipeline,
            pending: HashSet::new(),
            root: Slot::default(),
            next_group: 1,
            summary: SnapshotSummary::default(),
            warnings: Vec::new(),
            buf: vec![0u8; READ_BUF],
            start: Instant::now(),
            paths: None,
            owner: None,
        })
    }

    /// Report something about an entry (`error`: the snapshot is incomplete because of it).
    pub fn warn(&mut self, path: &str, message: impl Into<String>, error: bool) {
        let w = BackupWarning {
            path: path.to_string(),
            message: message.into(),
            error,
        };
        tracing::debug!(path = %w.path, "{}", w.message);
        self.warnings.push(w);
    }

    /// Add an entry at `path` (components relative to the base; empty for the base directory
    /// itself). A regular file's data is read from `data` and stored; its node's `content` is
    /// filled in here.
    pub fn add(&mut self, path: &[Vec<u8>], mut node: Node, data: Option<FileData>) -> Result<()> {
        if let Some(p) = &self.opts.progress {
            p.set_current(&display(path));
        }
        match node.kind {
            NodeKind::File => {
                let content = match data {
                    Some(d) => self.store_runs(node.size, d)?,
                    None if node.size == 0 => Vec::new(),
                    None => vec![ContentPart::Hole { len: node.size }],
                };
                node.content = content;
                self.summary.files_new += 1;
                if let Some(p) = &self.opts.progress {
                    p.add_files(1);
                }
            }
            NodeKind::Dir => self.summary.dirs += 1,
            _ => self.summary.other_entries += 1,
        }
        self.insert(path, node);
        Ok(())
    }

    /// Add `path` as a hardlink to the earlier entry `target` (both relative to the base).
    /// Returns false (and adds nothing) if there is no such non-directory entry.
    pub fn add_hardlink(&mut self, path: &[Vec<u8>], target: &[Vec<u8>]) -> bool {
        let group = self.next_group;
        let Some(t) = self.lookup_mut(target).and_then(|s| s.node.as_mut()) else {
            return false;
        };
        if t.kind == NodeKind::Dir {
            return false;
        }
        let mut allocated = false;
        if t.inode == 0 && t.device == 0 {
            t.device = PROVISIONAL_DEVICE;
            t.inode = group;
            allocated = true;
        } else if t.device != PROVISIONAL_DEVICE {
            t.nlink = t.nlink.max(2);
        }
        let mut node = t.clone();
        if allocated {
            self.next_group += 1;
        }
        if let Some(name) = path.last() {
            node.name.clone_from(name);
        }
        if node.kind == NodeKind::File {
            self.summary.files_new += 1;
        } else {
            self.summary.other_entries += 1;
        }
        self.insert(path, node);
        true
    }

    /// Add a regular file whose content is already stored: `node.content` lists data blobs that
    /// are in the repository's index or were stored by this ingest (for example what an earlier
    /// ingest made of the same source file), and adds up to `node.size`. Nothing is read.
    pub fn add_stored(&mut self, path: &[Vec<u8>], node: Node) -> Result<()> {
        if node.kind != NodeKind::File {
            return Err(Error::Internal("add_stored is for regular files".into()));
        }
        let total = node
            .content
            .iter()
            .try_fold(0u64, |acc, p| acc.checked_add(p.len()));
        if total != Some(node.size) {
            return Err(Error::Internal(format!(
                "stored content of {} does not add up to its size {}",
                display(path),
                node.size
            )));
        }
        for part in &node.content {
            if let ContentPart::Data { id, .. } = part {
                if !self.pending.contains(id) && !self.repo.index().contains(id)? {
                    return Err(Error::Internal(format!(
                        "stored content of {} names blob {}, which the repository does not have",
                        display(path),
                        id.to_hex()
                    )));
                }
            }
        }
        if let Some(p) = &self.opts.progress {
            p.set_current(&display(path));
            p.add_files(1);
            p.add_bytes(node.size);
        }
        self.summary.files_unchanged += 1;
        self.insert(path, node);
        Ok(())
    }

    /// The node added at `path` so far (a regular file's with its content list filled in).
    pub fn node(&self, path: &[Vec<u8>]) -> Option<&Node> {
        let mut slot = &self.root;
        for comp in path {
            slot = slot.children.get(comp)?;
        }
        slot.node.as_ref()
    }

    /// Record `paths` (absolute) as the snapshot's backed-up paths instead of the base path,
    /// for sources that name them (a restic snapshot).
    pub fn set_paths(&mut self, paths: Vec<Vec<u8>>) {
        self.paths = Some(paths);
    }

    /// Record `uid`/`gid` as the snapshot's creator instead of this process's ids.
    pub fn set_owner(&mut self, uid: u32, gid: u32) {
        self.owner = Some((uid, gid));
    }

    /// Chunk and store a file's data runs; returns its content list.
    fn store_runs(&mut self, size: u64, data: FileData) -> Result<Vec<ContentPart>> {
        let mut parts = Vec::new();
        let mut pos = 0u64;
        for &(offset, len) in data.runs {
            if len == 0 {
                continue;
            }
            if offset < pos || offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(Error::Internal(format!(
                    "data run {offset}+{len} of a {size}-byte file is out of order"
                )));
            }
            if offset > pos {
                parts.push(ContentPart::Hole { len: offset - pos });
            }
            self.store_run(len, data.read, &mut parts)?;
            pos = offset + len;
        }
        if size > pos {
            parts.push(ContentPart::Hole { len: size - pos });
        }
        Ok(parts)
    }

    /// Read `len` bytes and store them as chunks (one run is chunked on its own, as a backup
    /// chunks each data region of a sparse file on its own).
    fn store_run(
        &mut self,
        len: u64,
        read: &mut dyn FnMut(&mut [u8]) -> Result<usize>,
        parts: &mut Vec<ContentPart>,
    ) -> Result<()> {
        let mut sc = StreamChunker::new(self.chunker.clone());
        let mut buf = std::mem::take(&mut self.buf);
        let mut left = len;
        let res = (|| {
            while left > 0 {
                let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                let n = read(&mut buf[..want])?;
                if n == 0 {
                    return Err(Error::Internal(format!(
                        "the data source ended {left} bytes early"
                    )));
                }
                left -= n as u64;
                self.summary.bytes_read += n as u64;
                if let Some(p) = &self.opts.progress {
                    p.add_bytes(n as u64);
                }
                for chunk in sc.push(&buf[..n]) {
                    parts.push(self.store_data(chunk)?);
                }
            }
            Ok(())
        })();
        self.buf = buf;
        res?;
        for chunk in sc.finish() {
            parts.push(self.store_data(chunk)?);
        }
        Ok(())
    }

    fn store_data(&mut self, chunk: Vec<u8>) -> Result<ContentPart> {
        let len = chunk.len() as u32;
        let id = self.store_blob(BlobType::Data, chunk)?;
        Ok(ContentPart::Data { id, len })
    }

    /// Store a blob unless the repository already has it.
    fn store_blob(&mut self, kind: BlobType, data: Vec<u8>) -> Result<BlobId> {
        crate::backup::BlobSink {
            repo: self.repo,
            pipeline: &mut self.pipeline,
            pending: &mut self.pending,
            summary: &mut self.summary,
        }
        .store(kind, data)
    }

    fn save_tree(&mut self, mut tree: Tree) -> Result<TreeId> {
        tree.sort();
        let bytes = tree.encode();
        Ok(TreeId::from(self.store_blob(BlobType::Tree, bytes)?))
    }

    /// Put `node` at `path`, creating the directories above it.
    fn insert(&mut self, path: &[Vec<u8>], mut node: Node) {
        let Some((name, _)) = path.split_last() else {
            // The base directory itself.
            if node.kind == NodeKind::Dir {
                self.root.node = Some(node);
            } else {
                let what = display(&self.base);
                self.warn(
                    &what,
                    "the archive's root entry is not a directory; it is left out",
                    true,
                );
            }
            return;
        };
        node.name.clone_from(name);
        let mut replaced: Vec<String> = Vec::new();
        let mut slot = &mut self.root;
        for (i, comp) in path.iter().enumerate() {
            slot = slot.children.entry(comp.clone()).or_default();
            let last = i + 1 == path.len();
            // A file in the way of a deeper entry, or a directory with contents replaced by a
            // file: the later entry wins.
            if (!last && slot.is_leaf())
                || (last && node.kind != NodeKind::Dir && !slot.children.is_empty())
            {
                replaced.push(display(&path[..=i]));
                slot.node = None;
                slot.children.clear();
            }
        }
        slot.node = Some(node);
        for r in replaced {
            self.warn(
                &r,
                "replaced by a later entry of another type (as extracting the archive would)",
                false,
            );
        }
    }

    fn lookup_mut(&mut self, path: &[Vec<u8>]) -> Option<&mut Slot> {
        let mut slot = &mut self.root;
        for comp in path {
            slot = slot.children.get_mut(comp)?;
        }
        Some(slot)
    }

    /// Write every tree, then (unless a dry run) the snapshot.
    pub fn finish(mut self) -> Result<IngestResult> {
        let mut root = std::mem::take(&mut self.root);
        renumber_inodes(&mut root);
        let base_meta = root.node.take();
        let mut tree = self.save_dir(root)?;
        // The directories of the base path, innermost first.
        let mut meta = base_meta;
        for name in self.base.clone().iter().rev() {
            let mut node = match meta.take() {
                Some(m) => m,
                None => self.implied_dir(),
            };
            node.name.clone_from(name);
            node.subtree = Some(tree);
            tree = self.save_tree(Tree { nodes: vec![node] })?;
        }
        if meta.is_some() {
            self.warn(
                "/",
                "the archive's root directory entry is left out: the snapshot's root has no metadata of its own (use --path to import it into a directory)",
                false,
            );
        }
        // The base as an absolute, normal path ("/a/b", or "/").
        let mut base_path = Vec::new();
        for c in &self.base {
            base_path.push(b'/');
            base_path.extend_from_slice(c);
        }
        if base_path.is_empty() {
            base_path.push(b'/');
        }
        let Ingest {
            repo,
            opts,
            pipeline,
            mut summary,
            warnings,
            start,
            paths,
            owner,
            ..
        } = self;
        let packed = pipeline.finish()?;
        summary.bytes_stored = packed.bytes_stored;
        if !opts.dry_run {
            repo.add_to_index(&packed.packs);
        }
        summary.duration_ms = start.elapsed().as_millis() as u64;
        summary.errors = warnings.iter().filter(|w| w.error).count() as u64;
        let snapshot = SnapshotFile {
            time: opts.time,
            tree,
            paths: match paths {
                Some(p) => p.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                None => vec![serde_bytes::ByteBuf::from(base_path)],
            },
            hostname: opts.hostname.clone(),
            username: opts.username.clone(),
            uid: owner.map_or_else(|| rustix::process::getuid().as_raw(), |o| o.0),
            gid: owner.map_or_else(|| rustix::process::getgid().as_raw(), |o| o.1),
            tags: opts.tags.clone(),
            parent: None,
            excludes: Vec::new(),
            program_version: opts.program_version.clone(),
            summary: Some(summary.clone()),
            source: None,
            copied_from: None,
        };
        let snapshot_id = if opts.dry_run {
            None
        } else {
            Some(repo.save_snapshot(&snapshot)?)
        };
        Ok(IngestResult {
            snapshot_id,
            tree,
            summary,
            warnings,
        })
    }

    /// A directory that entries imply but that was never added.
    fn implied_dir(&self) -> Node {
        let mut node = Node::new(Vec::new(), NodeKind::Dir);
        node.mode = 0o755;
        node.mtime = self.opts.time;
        node.atime = self.opts.time;
        node
    }

    /// Save a directory's subtree (children first); returns its tree id.
    fn save_dir(&mut self, dir: Slot) -> Result<TreeId> {
        let mut tree = Tree::default();
        for (name, mut child) in dir.children {
            let node = match child.node.take() {
                Some(n) if n.kind != NodeKind::Dir => n,
                meta => {
                    let mut node = meta.unwrap_or_else(|| self.implied_dir());
                    node.name = name;
                    node.subtree = Some(self.save_dir(child)?);
                    node
                }
            };
            tree.nodes.push(node);
        }
        self.save_tree(tree)
    }
}

/// Give hardlink groups whose inode numbers the source did not carry the numbers 1, 2, ... in
/// tree order (device 0), and each member the group's size as its link count.
fn renumber_inodes(root: &mut Slot) {
    let mut counts: HashMap<u64, u64> = HashMap::new();
    let mut order: HashMap<u64, u64> = HashMap::new();
    visit_leaves(root, &mut |n| {
        if n.device == PROVISIONAL_DEVICE {
            *counts.entry(n.inode).or_default() += 1;
            let next = order.len() as u64 + 1;
            order.entry(n.inode).or_insert(next);
        }
    });
    visit_leaves(root, &mut |n| {
        if n.device == PROVISIONAL_DEVICE {
            n.nlink = counts.get(&n.inode).copied().unwrap_or(1);
            n.inode = order.get(&n.inode).copied().unwrap_or(0);
            n.device = 0;
        }
    });
}

fn visit_leaves(dir: &mut Slot, f: &mut dyn FnMut(&mut Node)) {
    for child in dir.children.values_mut() {
        match &mut child.node {
            Some(n) if n.kind != NodeKind::Dir => f(n),
            _ => visit_leaves(child, f),
        }
    }
}

/// A relative path for messages.
fn display(path: &[Vec<u8>]) -> String {
    let mut s = String::from("/");
    for (i, c) in path.iter().enumerate() {
        if i > 0 {
            s.push('/');
        }
        s.push_str(&String::from_utf8_lossy(c));
    }
    s
}
