//! Backup: walk source paths, store new content, write the tree, commit a snapshot.
//!
//! The walk is depth-first in name order. Each directory becomes a tree blob written after its
//! children, so a tree id is a Merkle digest of its subtree. Files are read region by region
//! (holes found with `SEEK_DATA`/`SEEK_HOLE` are recorded, not read), cut into content-defined
//! chunks, and only chunks the repository lacks are compressed, sealed and packed. A file that
//! changes while it is read is re-read (up to three times) and flagged if it never holds still.
//! With a parent snapshot, files whose size, mtime, ctime, inode and device are unchanged reuse
//! the parent's content without being read.
//!
//! Paths in btrfs subvolumes are read from read-only snapshots taken first (see [`btrfs`]), so
//! that the snapshot is one point in time, and the parent's unchanged entries are found from
//! btrfs generations without `stat`.
//!
//! Commit order: packs, then the index file listing them, then the snapshot.

use crate::filter::PathFilter;
use crate::fsmeta::{self, NameCache, StatInfo};
use crate::{Error, Repository, Result};
use snapguard_chunker::{Chunker, ChunkerParams, StreamChunker};
use snapguard_format::{
    BlobId, BlobType, ContentPart, Node, NodeKind, SnapshotFile, SnapshotId, SnapshotSummary,
    Timestamp, Tree, TreeId, NODE_CHANGED_WHILE_READ,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

// Also used by `import::ingest`, which feeds the same pipeline from an archive.
mod btrfs;
pub(crate) mod pipeline;
mod scan;
mod walk;

use pipeline::{Job, Pipeline, PipelineConfig};

const READ_BUF: usize = 4 << 20;
const MAX_READ_ATTEMPTS: usize = 3;
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// What to back up and how.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub time: Timestamp,
    pub excludes: Vec<String>,
    pub exclude_caches: bool,
    pub one_file_system: bool,
    pub dry_run: bool,
    /// Compare against this parent instead of the latest snapshot of the same host and paths.
    pub parent: Option<SnapshotId>,
    /// Read every file even if the parent says it is unchanged.
    pub force: bool,
    /// Compression for new blobs (None: the repository's default level).
    pub compression: Option<CompressionChoice>,
    /// Compression threads (None: one per core).
    pub threads: Option<usize>,
    /// Counters for a progress display.
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
    /// Limit on reading source files (`--limit-read`).
    pub read_limit: Option<std::sync::Arc<snapguard_backend::RateLimiter>>,
    pub program_version: String,
    /// Whether to read btrfs subvolumes through read-only snapshots taken first.
    pub btrfs: BtrfsMode,
    /// Read the one path in `paths` from this directory instead (a read-only snapshot of it,
    /// such as a local-tier snapshot); `paths[0]` is what is recorded.
    pub read_from: Option<PathBuf>,
    /// With `read_from`: the local-tier config and snapshot number, to record.
    pub local_snapshot: Option<(String, u32)>,
    /// Compare every entry with `stat` even where btrfs generations show it unchanged.
    pub no_generations: bool,
}

/// Whether a backup reads btrfs subvolumes through read-only snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BtrfsMode {
    /// Snapshot each subvolume holding a backed-up path; if that fails (not root, no space),
    /// warn and read the live files.
    #[default]
    Auto,
    /// Read the live files.
    Off,
    /// Snapshot, or fail: every path must be on btrfs and the snapshots must succeed.
    Require,
}

/// How to compress new blobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionChoice {
    /// Store blobs as they are.
    Off,
    /// zstd at this level (incompressible blobs are still stored raw).
    Level(i32),
}

/// Something the user should hear about: an unreadable file (error) or a skipped socket (note).
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackupWarning {
    pub path: String,
    pub message: String,
    /// True for problems that make the snapshot incomplete (exit code 3).
    pub error: bool,
}

/// The outcome of a backup.
#[derive(Clone, Debug)]
pub struct BackupResult {
    /// None for a dry run.
    pub snapshot_id: Option<SnapshotId>,
    pub parent: Option<SnapshotId>,
    pub summary: SnapshotSummary,
    pub warnings: Vec<BackupWarning>,
    /// Entries taken from the parent without `stat` because btrfs generations show them
    /// unchanged (a directory counts once, for its whole subtree).
    pub unchanged_by_generation: u64,
    /// The btrfs subvolumes read through read-only snapshots.
    pub btrfs_snapshots: Vec<PathBuf>,
}

/// Make `p` absolute and lexically normal (no `.`/`..`), without resolving symlinks.
pub fn absolute_path(p: &Path) -> Result<PathBuf> {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(".", e))?
            .join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

struct Archiver<'r> {
    repo: &'r mut Repository,
    opts: &'r BackupOptions,
    chunker: Chunker,
    excludes: PathFilter,
    pipeline: Pipeline,
    /// Blobs submitted to the pipeline by this backup (not in the loaded index).
    pending: HashSet<BlobId>,
    hardlinks: HashMap<(u64, u64), (Timestamp, u64, Vec<ContentPart>)>,
    names: NameCache,
    summary: SnapshotSummary,
    warnings: Vec<BackupWarning>,
    buf: Vec<u8>,
    sources: btrfs::Sources,
    /// Depth of nested btrfs subvolumes being read (change detection by generation covers only
    /// the outermost subvolume).
    in_nested: u32,
    unchanged_by_generation: u64,
}

/// Run a backup.
pub fn backup(repo: &mut Repository, opts: &BackupOptions) -> Result<BackupResult> {
    if opts.paths.is_empty() {
        return Err(Error::InvalidArgument(
            "nothing to back up: give at least one path".into(),
        ));
    }
    if repo.read_only_features() {
        return Err(Error::NewerFormat {
            location: repo.location(),
            detail: "the repository uses features that this SnapGuard may read but not write"
                .into(),
        });
    }
    let start = Instant::now();
    let mut paths = Vec::new();
    for p in &opts.paths {
        let abs = absolute_path(p)?;
        fsmeta::lstat(&abs).map_err(|e| Error::io(&abs, e))?;
        paths.push(abs);
    }
    paths.sort();
    paths.dedup();
    let chunker = repo_chunker(repo)?;
    let parent = match opts.parent {
        Some(id) => Some((id, repo.load_snapshot(&id)?)),
        None if opts.force => None,
        None => find_parent(repo, &paths, &opts.hostname)?,
    };
    let parent_tree = match &parent {
        Some((_, s)) => Some(repo.read_tree(&s.tree)?),
        None => None,
    };
    let walk_key = walk_key(opts);
    let mut sources = btrfs::Sources::prepare(
        &paths,
        opts.btrfs,
        opts.read_from.as_deref(),
        opts.local_snapshot.clone(),
        walk_key,
    )?;
    if let (Some((_, p)), false, false) = (&parent, opts.force, opts.no_generations) {
        sources.enable_generations(p);
    }
    let pipeline = start_pipeline(repo, opts.compression, opts.threads, opts.dry_run);
    let mut a = Archiver {
        repo,
        opts,
        chunker,
        excludes: PathFilter::new(&opts.excludes)?,
        pipeline,
        pending: HashSet::new(),
        hardlinks: HashMap::new(),
        names: NameCache::default(),
        summary: SnapshotSummary::default(),
        warnings: Vec::new(),
        buf: vec![0u8; READ_BUF],
        sources,
        in_nested: 0,
        unchanged_by_generation: 0,
    };
    let _scanner = opts.progress.as_ref().map(|p| {
        scan::Scanner::start(
            paths.clone(),
            a.excludes.clone(),
            opts.one_file_system,
            p.clone(),
        )
    });
    let root = walk::VirtualDir::from_paths(&paths);
    let tree = a.save_virtual(&root, Path::new("/"), parent_tree.as_ref())?;
    for (path, message, error) in std::mem::take(&mut a.sources.notes) {
        a.warn(&path, message, error);
    }
    let origins = a.sources.records();
    let unchanged_by_generation = a.unchanged_by_generation;
    let btrfs_snapshots: Vec<PathBuf> = a
        .sources
        .origins
        .iter()
        .map(|o| o.live_root.clone())
        .collect();
    // Packs, then the index files listing them, are durable once the pipeline finishes; only
    // then is the snapshot written.
    let Archiver {
        repo: repo_ref,
        pipeline,
        mut summary,
        warnings,
        sources,
        ..
    } = a;
    // The snapshots read are no longer needed.
    drop(sources);
    let packed = pipeline.finish()?;
    summary.bytes_stored = packed.bytes_stored;
    if !opts.dry_run {
        // This session may go on (a daemon, a test): its index must know what it just wrote.
        repo_ref.add_to_index(&packed.packs);
    }
    let mut a = Finished { summary, warnings };
    a.summary.duration_ms = start.elapsed().as_millis() as u64;
    a.summary.errors = a.warnings.iter().filter(|w| w.error).count() as u64;
    let snapshot = SnapshotFile {
        time: opts.time,
        tree,
        paths: paths
            .iter()
            .map(|p| serde_bytes::ByteBuf::from(p.as_os_str().as_bytes().to_vec()))
            .collect(),
        hostname: opts.hostname.clone(),
        username: opts.username.clone(),
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        tags: opts.tags.clone(),
        parent: parent.as_ref().map(|(id, _)| *id),
        excludes: opts.excludes.clone(),
        program_version: opts.program_version.clone(),
        summary: Some(a.summary.clone()),
        source: (!origins.is_empty())
            .then_some(snapguard_format::SnapshotSource { btrfs: origins }),
        copied_from: None,
    };
    let snapshot_id = if opts.dry_run {
        None
    } else {
        Some(repo_ref.save_snapshot(&snapshot)?)
    };
    Ok(BackupResult {
        snapshot_id,
        parent: parent.map(|(id, _)| id),
        summary: a.summary,
        warnings: a.warnings,
        unchanged_by_generation,
        btrfs_snapshots,
    })
}

/// A digest of the options that decide which entries a walk includes: a backup may reuse a
/// parent's unchanged subtrees by btrfs generation only if they are equal.
fn walk_key(opts: &BackupOptions) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("snapguard 2026 backup walk key");
    for e in &opts.excludes {
        h.update(&(e.len() as u64).to_le_bytes());
        h.update(e.as_bytes());
    }
    h.update(&[
        u8::from(opts.exclude_caches),
        u8::from(opts.one_file_system),
    ]);
    *h.finalize().as_bytes()
}

/// The repository's content-defined chunker (its parameters and secret gear table).
pub(crate) fn repo_chunker(repo: &Repository) -> Result<Chunker> {
    let cfg = repo.config();
    let params = ChunkerParams {
        min_size: cfg.chunker_min as usize,
        avg_size: cfg.chunker_avg as usize,
        max_size: cfg.chunker_max as usize,
    };
    Chunker::new(repo.crypt().bundle().gear_table(), params)
        .map_err(|e| Error::corrupt("config", format!("chunker parameters: {e}")))
}

/// Start the store pipeline (compression, packing, upload) for new blobs of `repo`.
pub(crate) fn start_pipeline(
    repo: &Repository,
    compression: Option<CompressionChoice>,
    threads: Option<usize>,
    dry_run: bool,
) -> Pipeline {
    let cfg = repo.config();
    let level = match compression {
        Some(CompressionChoice::Off) => None,
        Some(CompressionChoice::Level(l)) => Some(l),
        None => Some(cfg.compression_level),
    };
    Pipeline::start(
        repo.backend_arc(),
        repo.crypt().clone(),
        PipelineConfig {
            level,
            pack_target: cfg.pack_target_size as usize,
            threads: threads.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            }),
            dry_run,
        },
    )
}

fn find_parent(
    repo: &Repository,
    paths: &[PathBuf],
    host: &str,
) -> Result<Option<(SnapshotId, SnapshotFile)>> {
    let want: Vec<&[u8]> = paths.iter().map(|p| p.as_os_str().as_bytes()).collect();
    Ok(repo.list_snapshots()?.into_iter().rev().find(|(_, s)| {
        s.hostname == host && s.paths.iter().map(|p| p.as_slice()).collect::<Vec<_>>() == want
    }))
}

impl Archiver<'_> {
    fn warn(&mut self, path: &Path, message: impl Into<String>, error: bool) {
        let w = BackupWarning {
            path: path.display().to_string(),
            message: message.into(),
            error,
        };
        tracing::debug!(path = %w.path, "{}", w.message);
        self.warnings.push(w);
    }

    /// Save the synthetic directories above the backed-up paths.
    fn save_virtual(
        &mut self,
        dir: &walk::VirtualDir,
        path: &Path,
        parent: Option<&Tree>,
    ) -> Result<TreeId> {
        if dir.is_target {
            let read = self.sources.read_path(path);
            let st = fsmeta::lstat(&read).map_err(|e| Error::io(path, e))?;
            return self.save_dir(&read, path, st.dev, parent);
        }
        let mut tree = Tree::default();
        for (name, child) in &dir.children {
            let child_path = path.join(std::ffi::OsStr::from_bytes(name));
            let parent_node = parent.and_then(|t| t.find(name));
            let node = if child.is_target {
                let read = self.sources.read_path(&child_path);
                let dev = match fsmeta::lstat(&read) {
                    Ok(st) => st.dev,
                    Err(e) => return Err(Error::io(&child_path, e)),
                };
                self.save_entry(&read, &child_path, name, dev, parent_node)?
            } else {
                let st = fsmeta::lstat(&child_path).map_err(|e| Error::io(&child_path, e))?;
                let mut node = self.dir_node(&child_path, name, &st);
                let parent_sub = self.parent_subtree(parent_node)?;
                node.subtree = Some(self.save_virtual(child, &child_path, parent_sub.as_ref())?);
                Some(node)
            };
            if let Some(node) = node {
                tree.nodes.push(node);
            }
        }
        self.save_tree(tree)
    }

    fn parent_subtree(&self, node: Option<&Node>) -> Result<Option<Tree>> {
        match node.and_then(|n| n.subtree) {
            Some(id) => Ok(Some(self.repo.read_tree(&id)?)),
            None => Ok(None),
        }
    }

    fn dir_node(&mut self, path: &Path, name: &[u8], st: &StatInfo) -> Node {
        let mut node = Node::new(name.to_vec(), NodeKind::Dir);
        fsmeta::fill_node(&mut node, st, &mut self.names);
        match fsmeta::read_xattrs(path) {
            Ok(x) => node.xattrs = x,
            Err(e) => self.warn(path, format!("cannot read extended attributes: {e}"), true),
        }
        node
    }

    /// Save one directory's entries (read at `read`, recorded as `path`); returns its tree id.
    fn save_dir(
        &mut self,
        read: &Path,
        path: &Path,
        dev: u64,
        parent: Option<&Tree>,
    ) -> Result<TreeId> {
        let mut entries = match fsmeta::read_dir_entries(read, true) {
            Ok(n) => n,
            Err(e) => {
                self.warn(path, format!("cannot list directory: {e}"), true);
                Vec::new()
            }
        };
        entries.sort();
        if self.opts.exclude_caches && is_cache_dir(read) {
            entries.retain(|(n, _)| n == b"CACHEDIR.TAG");
        }
        let mut tree = Tree::default();
        for (name, ino) in entries {
            let os_name = std::ffi::OsStr::from_bytes(&name);
            let child = path.join(os_name);
            let parent_node = parent.and_then(|t| t.find(&name));
            if let Some(node) = self.unchanged_by_generation(&child, ino, parent_node) {
                tree.nodes.push(node);
                continue;
            }
            if let Some(node) =
                self.save_entry(&read.join(os_name), &child, &name, dev, parent_node)?
            {
                tree.nodes.push(node);
            }
        }
        self.save_tree(tree)
    }

    /// The parent's node for `path` if btrfs generations prove it unchanged: its inode was not
    /// written since the parent's snapshot and, for a directory, nothing below it was either.
    fn unchanged_by_generation(
        &mut self,
        path: &Path,
        ino: u64,
        parent: Option<&Node>,
    ) -> Option<Node> {
        let p = parent?;
        if self.in_nested > 0 || p.inode != ino || btrfs::is_placeholder(ino) {
            return None;
        }
        let (changed, rel) = self.sources.generations_for(path)?;
        if changed.is_changed(ino) || (p.kind == NodeKind::Dir && changed.is_dirty(rel)) {
            return None;
        }
        match p.kind {
            NodeKind::Dir => self.summary.dirs += 1,
            NodeKind::File => {
                self.summary.files_unchanged += 1;
                if let Some(progress) = &self.opts.progress {
                    progress.add_files(1);
                    progress.add_bytes(p.size);
                }
            }
            _ => self.summary.other_entries += 1,
        }
        self.unchanged_by_generation += 1;
        Some(p.clone())
    }

    /// Save one entry of any kind, read at `read` and recorded as `path`. Returns None if it was
    /// excluded or skipped.
    fn save_entry(
        &mut self,
        read: &Path,
        path: &Path,
        name: &[u8],
        dev: u64,
        parent: Option<&Node>,
    ) -> Result<Option<Node>> {
        if self.excludes.matches(path.as_os_str().as_bytes(), name) {
            return Ok(None);
        }
        let mut st = match fsmeta::lstat(read) {
            Ok(st) => st,
            Err(e) => {
                self.warn(path, format!("cannot stat: {e}"), true);
                return Ok(None);
            }
        };
        if name.starts_with(btrfs::TEMP_PREFIX) && st.kind == Some(NodeKind::Dir) {
            // Another backup's snapshot of this subvolume.
            if btrfs::is_placeholder(st.ino) || st.ino == snapguard_btrfs::SUBVOLUME_ROOT_INO {
                return Ok(None);
            }
        }
        // A nested subvolume inside a snapshot: read a snapshot of its own instead.
        let mut read = std::borrow::Cow::Borrowed(read);
        let mut nested = false;
        let mut mount_point = false;
        if btrfs::is_placeholder(st.ino)
            && st.kind == Some(NodeKind::Dir)
            && !self.opts.one_file_system
            && read.as_ref() != path
        {
            if let Some(snap) = self.sources.nested(path)? {
                st = fsmeta::lstat(&snap).map_err(|e| Error::io(&snap, e))?;
                read = std::borrow::Cow::Owned(snap);
                nested = true;
            }
        } else if st.kind == Some(NodeKind::Dir)
            && read.as_ref() != path
            && self.sources.is_mount_point(path)
        {
            // Something is mounted here in the live tree; the snapshot shows the directory
            // below it. As in a live walk, `--one-file-system` keeps the directory empty;
            // otherwise a btrfs subvolume is read through a snapshot of its own and anything
            // else live.
            let live = fsmeta::lstat(path).map_err(|e| Error::io(path, e))?;
            if self.opts.one_file_system {
                mount_point = true;
            } else if snapguard_btrfs::is_subvolume(path).unwrap_or(false) {
                match self.sources.nested(path)? {
                    Some(snap) => {
                        st = fsmeta::lstat(&snap).map_err(|e| Error::io(&snap, e))?;
                        read = std::borrow::Cow::Owned(snap);
                        nested = true;
                    }
                    // A read-only subvolume (a snapshot) mounted here: not descended into.
                    None => mount_point = true,
                }
            } else if live.kind == Some(NodeKind::Dir) {
                self.sources.note(
                    path,
                    "a mount point: read live, not from the btrfs snapshot".into(),
                );
                st = live;
                read = std::borrow::Cow::Borrowed(path);
                nested = true;
            }
        }
        let read = read.as_ref();
        if let Some((secs, nanos)) = self.sources.root_atime(read) {
            st.atime = Timestamp { secs, nanos };
        }
        let raw_dev = st.dev;
        st.dev = self.sources.record_dev(st.dev);
        let Some(kind) = st.kind else {
            if st.is_socket {
                self.warn(path, "socket skipped (sockets cannot be backed up)", false);
            } else {
                self.warn(path, "unknown file type skipped", false);
            }
            return Ok(None);
        };
        let mut node = Node::new(name.to_vec(), kind);
        fsmeta::fill_node(&mut node, &st, &mut self.names);
        match fsmeta::read_xattrs(read) {
            Ok(x) => node.xattrs = x,
            Err(e) => self.warn(path, format!("cannot read extended attributes: {e}"), true),
        }
        match kind {
            NodeKind::Dir => {
                self.summary.dirs += 1;
                if mount_point || (self.opts.one_file_system && raw_dev != dev) {
                    // A mount point: keep the directory itself, not what is mounted on it.
                    node.subtree = Some(self.save_tree(Tree::default())?);
                } else {
                    let parent_sub =
                        self.parent_subtree(parent.filter(|p| p.kind == NodeKind::Dir))?;
                    self.in_nested += u32::from(nested);
                    let saved = self.save_dir(read, path, dev, parent_sub.as_ref());
                    self.in_nested -= u32::from(nested);
                    node.subtree = Some(saved?);
                }
            }
            NodeKind::Symlink => {
                self.summary.other_entries += 1;
                match std::fs::read_link(read) {
                    Ok(t) => node.link_target = t.as_os_str().as_bytes().to_vec(),
                    Err(e) => {
                        self.warn(path, format!("cannot read symlink: {e}"), true);
                        return Ok(None);
                    }
                }
            }
            NodeKind::File => {
                let unchanged = parent.filter(|p| {
                    !self.opts.force
                        && p.kind == NodeKind::File
                        && p.flags == 0
                        && p.size == st.size
                        && p.mtime == st.mtime
                        && p.ctime == st.ctime
                        && p.inode == st.ino
                        && p.device == st.dev
                });
                if let Some(progress) = &self.opts.progress {
                    progress.set_current(&path.to_string_lossy());
                }
                if let Some(p) = unchanged {
                    node.content = p.content.clone();
                    self.summary.files_unchanged += 1;
                    if let Some(progress) = &self.opts.progress {
                        progress.add_bytes(p.size);
                    }
                } else {
                    if parent.is_some() {
                        self.summary.files_changed += 1;
                    } else {
                        self.summary.files_new += 1;
                    }
                    match self.save_file(read, path, &st) {
                        Ok((content, mut final_st, flags)) => {
                            final_st.dev = self.sources.record_dev(final_st.dev);
                            fsmeta::fill_node(&mut node, &final_st, &mut self.names);
                            node.size = content.iter().map(ContentPart::len).sum();
                            node.content = content;
                            node.flags = flags;
                        }
                        Err(FileError::Fatal(e)) => return Err(e),
                        Err(FileError::Source(e)) => {
                            self.warn(path, format!("cannot read file: {e}"), true);
                            return Ok(None);
                        }
                    }
                }
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                self.summary.other_entries += 1
            }
        }
        if kind == NodeKind::File {
            if let Some(progress) = &self.opts.progress {
                progress.add_files(1);
            }
        }
        Ok(Some(node))
    }

    /// Read a regular file and store its chunks.
    fn save_file(
        &mut self,
        read: &Path,
        path: &Path,
        st: &StatInfo,
    ) -> std::result::Result<(Vec<ContentPart>, StatInfo, u32), FileError> {
        if st.nlink > 1 {
            if let Some((mtime, size, content)) = self.hardlinks.get(&(st.dev, st.ino)) {
                if *mtime == st.mtime && *size == st.size {
                    return Ok((content.clone(), *st, 0));
                }
            }
        }
        let file = open_noatime(read).map_err(FileError::Source)?;
        let mut flags = 0;
        let mut result = None;
        for attempt in 0..MAX_READ_ATTEMPTS {
            let before = fsmeta::stat_info(
                &rustix::fs::fstat(&file).map_err(|e| FileError::Source(e.into()))?,
            );
            let content = self.read_content(&file, &before)?;
            let after = fsmeta::stat_info(
                &rustix::fs::fstat(&file).map_err(|e| FileError::Source(e.into()))?,
            );
            let total: u64 = content.iter().map(ContentPart::len).sum();
            let stable = before.mtime == after.mtime
                && before.ctime == after.ctime
                && before.size == after.size
                && total == after.size;
            result = Some((content, after));
            if stable {
                break;
            }
            if attempt + 1 == MAX_READ_ATTEMPTS {
                flags |= NODE_CHANGED_WHILE_READ;
                self.warn(
                    path,
                    format!("file changed while it was read ({MAX_READ_ATTEMPTS} attempts); the stored version may mix old and new content"),
                    true,
                );
            }
        }
        let Some((content, after)) = result else {
            return Err(FileError::Source(std::io::Error::other(
                "file could not be read",
            )));
        };
        if after.nlink > 1 {
            self.hardlinks.insert(
                (st.dev, after.ino),
                (after.mtime, after.size, content.clone()),
            );
        }
        Ok((content, after, flags))
    }

    /// Read the data regions of `file`, recording holes.
    fn read_content(
        &mut self,
        file: &File,
        st: &StatInfo,
    ) -> std::result::Result<Vec<ContentPart>, FileError> {
        let mut parts = Vec::new();
        let sparse = st.blocks.saturating_mul(512) < st.size;
        let regions = if sparse {
            data_regions(file).map_err(FileError::Source)?
        } else {
            vec![(0, u64::MAX)]
        };
        let mut pos = 0u64;
        for (start, end) in regions {
            if start > pos {
                parts.push(ContentPart::Hole { len: start - pos });
            }
            let read_end = self.read_region(file, start, end, &mut parts)?;
            pos = read_end;
        }
        // A hole at the end of the file.
        if sparse && pos < st.size {
            let end = rustix::fs::seek(file, rustix::fs::SeekFrom::End(0))
                .map_err(|e| FileError::Source(e.into()))?;
            if end > pos {
                parts.push(ContentPart::Hole { len: end - pos });
            }
        }
        Ok(parts)
    }

    /// Chunk and store bytes [start, end) (or to EOF); returns where reading stopped.
    fn read_region(
        &mut self,
        file: &File,
        start: u64,
        end: u64,
        parts: &mut Vec<ContentPart>,
    ) -> std::result::Result<u64, FileError> {
        let mut sc = StreamChunker::new(self.chunker.clone());
        let mut buf = std::mem::take(&mut self.buf);
        let mut pos = start;
        let res = (|| {
            while pos < end {
                let want = usize::try_from((end - pos).min(buf.len() as u64)).unwrap_or(buf.len());
                let n = match file.read_at(&mut buf[..want], pos) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(FileError::Source(e)),
                };
                pos += n as u64;
                self.summary.bytes_read += n as u64;
                if let Some(l) = &self.opts.read_limit {
                    l.take(n);
                }
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
        Ok(pos)
    }

    fn store_data(&mut self, chunk: Vec<u8>) -> std::result::Result<ContentPart, FileError> {
        let len = chunk.len() as u32;
        let id = self
            .store_blob(BlobType::Data, chunk)
            .map_err(FileError::Fatal)?;
        Ok(ContentPart::Data { id, len })
    }

    fn save_tree(&mut self, mut tree: Tree) -> Result<TreeId> {
        tree.sort();
        let bytes = tree.encode();
        Ok(TreeId::from(self.store_blob(BlobType::Tree, bytes)?))
    }

    /// Store a blob unless the repository already has it.
    fn store_blob(&mut self, kind: BlobType, data: Vec<u8>) -> Result<BlobId> {
        let sink = BlobSink {
            repo: self.repo,
            pipeline: &mut self.pipeline,
            pending: &mut self.pending,
            summary: &mut self.summary,
        };
        sink.store(kind, data)
    }
}

/// Where new blobs go: deduplicated against the loaded index and the blobs this command has
/// already queued, then counted and handed to the pipeline (backup and import share it).
pub(crate) struct BlobSink<'a> {
    pub repo: &'a Repository,
    pub pipeline: &'a mut Pipeline,
    pub pending: &'a mut HashSet<BlobId>,
    pub summary: &'a mut SnapshotSummary,
}

impl BlobSink<'_> {
    /// Store `data` unless the repository already has it; returns its id.
    pub(crate) fn store(self, kind: BlobType, data: Vec<u8>) -> Result<BlobId> {
        let id = BlobId(self.repo.crypt().id_of(&data));
        if self.repo.index().contains(&id)? || !self.pending.insert(id) {
            return Ok(id);
        }
        self.summary.bytes_added += data.len() as u64;
        self.summary.blobs_added += 1;
        self.pipeline.submit(Job { id, kind, data })?;
        Ok(id)
    }
}

/// What is left of the archiver once the pipeline is done.
struct Finished {
    summary: SnapshotSummary,
    warnings: Vec<BackupWarning>,
}

enum FileError {
    /// The source file could not be read: report and go on.
    Source(std::io::Error),
    /// The repository could not be written: stop.
    Fatal(Error),
}

fn open_noatime(path: &Path) -> std::io::Result<File> {
    let open = |flags: i32| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags | nix::libc::O_NOFOLLOW)
            .open(path)
    };
    match open(nix::libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => open(0),
        other => other,
    }
}

/// Data regions of a sparse file as (start, end) pairs.
fn data_regions(file: &File) -> std::io::Result<Vec<(u64, u64)>> {
    use rustix::fs::{seek, SeekFrom};
    let mut out = Vec::new();
    let mut pos = 0u64;
    loop {
        let data = match seek(file, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = seek(file, SeekFrom::Hole(data))?;
        out.push((data, hole));
        pos = hole;
    }
    Ok(out)
}

fn is_cache_dir(dir: &Path) -> bool {
    let mut buf = [0u8; CACHEDIR_SIGNATURE.len()];
    match File::open(dir.join("CACHEDIR.TAG")) {
        Ok(f) => f.read_exact_at(&mut buf, 0).is_ok() && buf == CACHEDIR_SIGNATURE,
        Err(_) => false,
    }
}

/// Keep BTreeMap in scope for the walk module.
pub(crate) type Children = BTreeMap<Vec<u8>, walk::VirtualDir>;
