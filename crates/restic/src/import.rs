//! Recreating restic snapshots as SnapGuard snapshots.
//!
//! [`plan`] decides which restic snapshots still need importing: a snapshot that an earlier run
//! imported carries the tag `restic:<full restic id>` ([`marker_tag`]), written in the same
//! snapshot file as everything else, so a run that was interrupted resumes with the first
//! snapshot it had not committed and nothing is imported twice.
//!
//! [`Importer::import`] walks one restic snapshot's trees in name order and hands every entry to
//! the engine's [`Ingest`]. A file's content is read from restic blob by blob, each blob checked
//! against its SHA-256 id, and chunked afresh by SnapGuard. A file whose list of restic blobs was
//! already imported by this run (the same file in the next snapshot) gets the SnapGuard content
//! of that import without being read again. Entries that share restic's (device, inode) and
//! have a link count above one become hardlinks of the first of them.

use crate::convert;
use crate::error::{Error, Result};
use crate::placement::{self, Placement};
use crate::source::{ResticRepo, ResticSnapshot};
use rustic_core::repofile::{BlobType, Tree};
use rustic_core::{BlobId, DataId, TreeId};
use snapguard_engine::annotate;
use snapguard_engine::import::{FileData, Ingest, IngestOptions, IngestResult};
use snapguard_engine::Repository;
use snapguard_format::{ContentPart, NodeKind, SnapshotId};
use std::collections::HashMap;

/// The tag that marks a SnapGuard snapshot as the import of a restic snapshot.
pub const MARKER_PREFIX: &str = "restic:";

/// `restic:<id>` for the restic snapshot with full id `id`.
pub fn marker_tag(id: &str) -> String {
    format!("{MARKER_PREFIX}{id}")
}

/// What an import run will do.
#[derive(Clone, Debug, Default)]
pub struct ImportPlan {
    /// Snapshots to import, oldest first.
    pub import: Vec<ResticSnapshot>,
    /// Snapshots an earlier run imported, with the SnapGuard snapshot that holds each.
    pub already: Vec<(ResticSnapshot, SnapshotId)>,
}

/// Split `selected` into those still to import and those `repo` already has.
pub fn plan(repo: &Repository, selected: Vec<ResticSnapshot>) -> Result<ImportPlan> {
    let done = imported(repo)?;
    let mut plan = ImportPlan::default();
    for s in selected {
        match done.get(&s.id) {
            Some(id) => plan.already.push((s, *id)),
            None => plan.import.push(s),
        }
    }
    Ok(plan)
}

/// Restic snapshot id → the SnapGuard snapshot imported from it. The snapshot's own tags count
/// as well as its effective ones, so removing the marker with `snapguard tag` does not make the
/// next run import the snapshot again.
pub fn imported(repo: &Repository) -> Result<HashMap<String, SnapshotId>> {
    let (views, _damaged) = annotate::views(repo)?;
    let mut out = HashMap::new();
    for v in views {
        for t in v.snapshot.tags.iter().chain(v.tags.iter()) {
            if let Some(id) = t.strip_prefix(MARKER_PREFIX) {
                out.entry(id.to_string()).or_insert(v.id);
            }
        }
    }
    Ok(out)
}

/// How to write the imported snapshots.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Tags added to every imported snapshot (besides restic's own and the marker).
    pub tags: Vec<String>,
    /// Compression, threads, dry run, progress and program version for the engine. Its `base`,
    /// `tags`, `hostname`, `username` and `time` are filled in from each restic snapshot.
    pub ingest: IngestOptions,
}

/// Imports snapshots of one restic repository, remembering what it imported so that files
/// repeated in later snapshots are not read again.
pub struct Importer<'a> {
    restic: &'a ResticRepo,
    /// blake3 of a file's restic blob ids → the SnapGuard content made of them.
    seen: HashMap<[u8; 32], Vec<ContentPart>>,
}

impl<'a> Importer<'a> {
    pub fn new(restic: &'a ResticRepo) -> Importer<'a> {
        Importer {
            restic,
            seen: HashMap::new(),
        }
    }

    /// Recreate `snap` in `repo` (whose index must be loaded) and commit it.
    pub fn import(
        &mut self,
        repo: &mut Repository,
        snap: &ResticSnapshot,
        opts: &ImportOptions,
    ) -> Result<IngestResult> {
        let mut tags = snap.tags.clone();
        for t in opts.tags.iter().cloned().chain([marker_tag(&snap.id)]) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let dry_run = opts.ingest.dry_run;
        let ingest_opts = IngestOptions {
            base: b"/".to_vec(),
            tags,
            hostname: snap.hostname.clone(),
            username: snap.username.clone(),
            time: snap.time,
            ..opts.ingest.clone()
        };
        let root = self.restic.tree(snap, snap.tree)?;
        let tops: Vec<Vec<u8>> = root.nodes.iter().map(convert::name).collect();
        let placement = placement::place(&snap.paths, &tops, &mut |p: &[Vec<u8>]| {
            self.restic.holds(snap, snap.tree, p)
        })?;
        let mut ingest = Ingest::start(repo, ingest_opts)?;
        ingest.set_paths(placement.paths.clone());
        if let Some(note) = &placement.note {
            ingest.warn(
                "/",
                format!("{note}; the entries are placed as restic stored them"),
                false,
            );
        }
        ingest.set_owner(snap.uid, snap.gid);
        let mut walk = Walk {
            restic: self.restic,
            snap,
            ingest,
            seen: &self.seen,
            fresh: HashMap::new(),
            links: HashMap::new(),
            path: Vec::new(),
        };
        walk.nodes(snap.tree, &root, Some(&placement))?;
        let Walk { ingest, fresh, .. } = walk;
        let result = ingest.finish()?;
        // Only now are the blobs of this snapshot's contents in the index (and in a dry run
        // they never are).
        if !dry_run {
            self.seen.extend(fresh);
        }
        Ok(result)
    }
}

/// One snapshot's walk.
struct Walk<'a, 'r> {
    restic: &'a ResticRepo,
    snap: &'a ResticSnapshot,
    ingest: Ingest<'r>,
    /// Contents of earlier snapshots of this run.
    seen: &'a HashMap<[u8; 32], Vec<ContentPart>>,
    /// Contents read for this snapshot (reusable within it: the ingest knows their blobs).
    fresh: HashMap<[u8; 32], Vec<ContentPart>>,
    /// (device, inode) of entries with more than one link → their path.
    links: HashMap<(u64, u64), Vec<Vec<u8>>>,
    path: Vec<Vec<u8>>,
}

impl Walk<'_, '_> {
    fn display(&self) -> String {
        let mut s = String::new();
        for c in &self.path {
            s.push('/');
            s.push_str(&String::from_utf8_lossy(c));
        }
        if s.is_empty() {
            s.push('/');
        }
        s
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::Corrupt {
            path: self.restic.path().to_path_buf(),
            detail: format!(
                "snapshot {}, {}: {detail}",
                self.snap.short_id(),
                self.display()
            ),
        }
    }

    fn tree(&mut self, id: TreeId) -> Result<()> {
        let tree = self.restic.tree(self.snap, id)?;
        self.nodes(id, &tree, None)
    }

    /// The entries of tree `id`; `placement` for the root tree.
    fn nodes(&mut self, id: TreeId, tree: &Tree, placement: Option<&Placement>) -> Result<()> {
        for node in &tree.nodes {
            let name = convert::name(node);
            if let Some(p) = placement {
                self.path = p.under.get(&name).unwrap_or(&p.default_under).clone();
            }
            if !snapguard_format::Node::valid_name(&name) {
                return Err(self.corrupt(format!(
                    "tree {id} has an entry named {:?}, which no file system allows",
                    String::from_utf8_lossy(&name)
                )));
            }
            self.path.push(name);
            let res = self.entry(node);
            self.path.pop();
            res?;
        }
        Ok(())
    }

    fn entry(&mut self, node: &rustic_core::repofile::Node) -> Result<()> {
        let Some(kind) = convert::kind(&node.node_type) else {
            let at = self.display();
            self.ingest.warn(
                &at,
                "socket left out (restic records sockets but does not restore them; nor does SnapGuard)",
                false,
            );
            return Ok(());
        };
        let mut sg = convert::node(kind, node, self.snap.time);
        match kind {
            NodeKind::Dir => {
                let Some(sub) = node.subtree else {
                    return Err(self.corrupt("directory without a subtree".into()));
                };
                self.ingest.add(&self.path, sg, None)?;
                self.tree(sub)
            }
            _ => {
                if node.meta.links > 1 && node.meta.inode != 0 {
                    let key = (node.meta.device_id, node.meta.inode);
                    if let Some(first) = self.links.get(&key) {
                        if self.ingest.add_hardlink(&self.path, first) {
                            return Ok(());
                        }
                    } else {
                        self.links.insert(key, self.path.clone());
                    }
                }
                if kind == NodeKind::File {
                    let ids = node.content.clone().unwrap_or_default();
                    self.file(sg, &ids)
                } else {
                    sg.content.clear();
                    Ok(self.ingest.add(&self.path, sg, None)?)
                }
            }
        }
    }

    /// A regular file whose content is the restic blobs `ids`.
    fn file(&mut self, mut sg: snapguard_format::Node, ids: &[DataId]) -> Result<()> {
        let mut lens = Vec::with_capacity(ids.len());
        for id in ids {
            let entry = self.restic.repo.get_index_entry(id).map_err(|_| {
                self.corrupt(format!(
                    "data blob {} is in no index of the repository",
                    id.to_hex().as_str()
                ))
            })?;
            lens.push(u64::from(entry.data_length()));
        }
        let total: u64 = lens.iter().sum();
        if total != sg.size {
            let at = self.display();
            self.ingest.warn(
                &at,
                format!(
                    "restic recorded a size of {} bytes but stored {total} bytes of content (the file changed while restic read it); the stored content is imported",
                    sg.size
                ),
                false,
            );
            sg.size = total;
        }
        let key = {
            let mut h = blake3::Hasher::new();
            for id in ids {
                h.update(id.to_hex().as_str().as_bytes());
            }
            *h.finalize().as_bytes()
        };
        if let Some(content) = self.seen.get(&key).or_else(|| self.fresh.get(&key)) {
            sg.content.clone_from(content);
            self.ingest.add_stored(&self.path, sg)?;
            return Ok(());
        }
        let mut reader = BlobReader {
            restic: self.restic,
            ids,
            lens: &lens,
            next: 0,
            current: bytes::Bytes::new(),
            pos: 0,
            failure: None,
        };
        let runs = [(0, total)];
        let added = {
            let mut read = |buf: &mut [u8]| reader.read(buf);
            self.ingest.add(
                &self.path,
                sg,
                Some(FileData {
                    runs: &runs,
                    read: &mut read,
                }),
            )
        };
        if let Some(failure) = reader.failure.take() {
            return Err(match failure {
                BlobFailure::Rustic(what, e) => crate::source::read_failure(
                    self.restic.path(),
                    self.snap,
                    format!("{}, {what}", self.display()),
                    &e,
                ),
                BlobFailure::Corrupt(detail) => self.corrupt(detail),
            });
        }
        added?;
        if let Some(n) = self.ingest.node(&self.path) {
            self.fresh.insert(key, n.content.clone());
        }
        Ok(())
    }
}

enum BlobFailure {
    Rustic(String, Box<rustic_core::RusticError>),
    Corrupt(String),
}

/// A file's content, read from restic one blob at a time.
struct BlobReader<'a> {
    restic: &'a ResticRepo,
    ids: &'a [DataId],
    lens: &'a [u64],
    next: usize,
    current: bytes::Bytes,
    pos: usize,
    /// Why reading stopped (the engine sees only that it did).
    failure: Option<BlobFailure>,
}

impl BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> snapguard_engine::Result<usize> {
        while self.pos == self.current.len() {
            let Some(id) = self.ids.get(self.next) else {
                return Ok(0);
            };
            let want = self.lens[self.next];
            self.next += 1;
            let data = match self
                .restic
                .repo
                .get_blob_cached(&BlobId::from(*id), BlobType::Data)
            {
                Ok(d) => d,
                Err(e) => {
                    let what = format!("data blob {}", id.to_hex().as_str());
                    return Err(self.fail(BlobFailure::Rustic(what, e)));
                }
            };
            if data.len() as u64 != want || !id.blob_matches_reader(want, &mut &data[..]) {
                return Err(self.fail(BlobFailure::Corrupt(format!(
                    "data blob {} does not match its id ({} bytes)",
                    id.to_hex().as_str(),
                    data.len()
                ))));
            }
            self.current = data;
            self.pos = 0;
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    fn fail(&mut self, f: BlobFailure) -> snapguard_engine::Error {
        self.failure = Some(f);
        snapguard_engine::Error::Import {
            input: "restic repository".into(),
            detail: "a blob could not be read".into(),
        }
    }
}
