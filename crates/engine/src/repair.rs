//! Repair: rebuild the index from pack headers, and save what is left of damaged snapshots.
//!
//! Neither operation deletes a snapshot or a pack. `index` writes one new index file from the
//! headers of every readable pack, superseding all existing index files (which are then removed
//! unless the repository is append-only). `snapshots` writes, for every snapshot that refers to
//! data the index no longer has, a new snapshot without the damaged files, tagged `repaired`,
//! with an annotation listing what was lost; the original stays.

use crate::annotate::{self, AnnotationChange};
use crate::pack::{self, PackWriter};
use crate::{Error, Repository, Result};
use snapguard_backend::FileType;
use snapguard_format::{
    BlobId, BlobType, ContentPart, IndexPack, PackId, PackTrailer, SnapshotId, Timestamp, Tree,
    TreeId, PACK_TRAILER_LEN,
};
use std::collections::HashMap;

/// Result of `repair index`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IndexRepair {
    pub packs_indexed: u64,
    pub blobs_indexed: u64,
    /// Packs whose header could not be read (their blobs are lost).
    pub packs_unreadable: Vec<(String, String)>,
    pub index_files_replaced: u64,
}

/// Rebuild the index from pack headers. The caller holds an exclusive lock.
pub fn repair_index(repo: &mut Repository) -> Result<IndexRepair> {
    let mut report = IndexRepair::default();
    let mut packs = Vec::new();
    for (name, size) in repo
        .backend()
        .list(FileType::Pack)
        .map_err(repo.backend_err())?
    {
        let Ok(id) = PackId::from_hex(&name) else {
            report
                .packs_unreadable
                .push((name, "not a pack name".into()));
            continue;
        };
        match read_pack_index(repo, &id, size) {
            Ok(p) => {
                report.packs_indexed += 1;
                report.blobs_indexed += p.blobs.len() as u64;
                packs.push(p);
            }
            Err(e) => report.packs_unreadable.push((name, e.to_string())),
        }
    }
    let old = repo.index_ids()?;
    let listed: Vec<String> = packs.iter().map(|p| p.id.to_hex()).collect();
    let new_index = repo.write_index_superseding(packs, old.clone())?;
    // S3 Object Lock: the new index is what makes the retained packs it lists readable, so it
    // gets their latest retention, like prune's new index files.
    let retained = crate::object_lock::retained_packs(repo)?;
    crate::object_lock::cover_index(repo, new_index, &listed, &retained)?;
    if !repo.is_append_only() {
        for id in old {
            if repo.backend().remove(FileType::Index, &id.to_hex()).is_ok() {
                report.index_files_replaced += 1;
            }
        }
    }
    repo.load_index()?;
    Ok(report)
}

/// The index entry of pack `id` (`size` bytes) from its authenticated header, reading only
/// the trailer and the header (as ranges).
pub(crate) fn read_pack_index(repo: &Repository, id: &PackId, size: u64) -> Result<IndexPack> {
    let name = id.to_hex();
    let object = || format!("pack {name}");
    if size < PACK_TRAILER_LEN as u64 {
        return Err(Error::corrupt(object(), "too short to be a pack"));
    }
    let tail = repo
        .backend()
        .read_range(
            FileType::Pack,
            &name,
            size - PACK_TRAILER_LEN as u64,
            PACK_TRAILER_LEN as u64,
        )
        .map_err(repo.backend_err())?;
    let (trailer, start) =
        PackTrailer::parse(&tail, size).map_err(|e| Error::corrupt(object(), e))?;
    let sealed = repo
        .backend()
        .read_range(FileType::Pack, &name, start, u64::from(trailer.header_len))
        .map_err(repo.backend_err())?;
    let blobs = pack::open_header(repo.crypt(), id, &sealed, &tail, size)?;
    Ok(IndexPack {
        id: *id,
        size,
        epoch: trailer.epoch,
        cipher_code: trailer.cipher_code,
        blobs,
    })
}

/// One repaired snapshot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotRepair {
    pub original: String,
    /// None for a dry run.
    pub repaired: Option<String>,
    pub lost: Vec<String>,
}

struct Saver<'r> {
    repo: &'r mut Repository,
    pack: Option<PackWriter>,
    dry_run: bool,
    written: Vec<IndexPack>,
    pending: std::collections::HashSet<BlobId>,
    /// Packs the index lists but whose file is missing or has the wrong size.
    lost_packs: std::collections::HashSet<PackId>,
}

impl Saver<'_> {
    /// Whether a blob's data is gone: not indexed, or its pack is missing or truncated.
    fn lost(&self, id: &BlobId) -> Result<bool> {
        Ok(match self.repo.index().get(id)? {
            None => true,
            Some(loc) => self.lost_packs.contains(&loc.pack),
        })
    }
}

impl Saver<'_> {
    fn save_tree(&mut self, tree: &Tree) -> Result<TreeId> {
        let bytes = tree.encode();
        let id = BlobId(self.repo.crypt().id_of(&bytes));
        if self.dry_run || self.repo.index().contains(&id)? || self.pending.contains(&id) {
            return Ok(TreeId::from(id));
        }
        if self.pack.is_none() {
            self.pack = Some(PackWriter::new(self.repo.crypt())?);
        }
        if let Some(p) = self.pack.as_mut() {
            p.add(
                id,
                BlobType::Tree,
                &bytes,
                self.repo.config().compression_level,
            )?;
        }
        self.pending.insert(id);
        Ok(TreeId::from(id))
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(p) = self.pack.take() {
            let done = p.finish();
            self.repo
                .backend()
                .write(FileType::Pack, &done.id.to_hex(), &done.bytes)
                .map_err(self.repo.backend_err())?;
            self.written.push(IndexPack {
                id: done.id,
                size: done.bytes.len() as u64,
                epoch: done.epoch,
                cipher_code: done.cipher_code,
                blobs: done.blobs,
            });
        }
        if !self.written.is_empty() {
            let packs = std::mem::take(&mut self.written);
            self.repo.write_index(packs)?;
        }
        Ok(())
    }

    /// Rebuild a tree without unreadable subtrees and files with missing data.
    fn fix(
        &mut self,
        id: TreeId,
        path: &[u8],
        lost: &mut Vec<String>,
        memo: &mut HashMap<TreeId, (TreeId, usize)>,
    ) -> Result<TreeId> {
        if let Some((new, n)) = memo.get(&id) {
            if *n == 0 {
                return Ok(*new);
            }
        }
        let tree = match self.repo.read_tree(&id) {
            Ok(t) => t,
            Err(Error::Corrupt { .. }) => {
                lost.push(format!(
                    "{}/ (directory contents)",
                    String::from_utf8_lossy(path)
                ));
                return self.save_tree(&Tree::default());
            }
            Err(e) => return Err(e),
        };
        let before = lost.len();
        let mut out = Tree::default();
        for mut node in tree.nodes {
            let mut child = path.to_vec();
            child.push(b'/');
            child.extend_from_slice(&node.name);
            if let Some(sub) = node.subtree {
                node.subtree = Some(self.fix(sub, &child, lost, memo)?);
            }
            let mut missing = false;
            for c in &node.content {
                if let ContentPart::Data { id, .. } = c {
                    missing |= self.lost(id)?;
                }
            }
            if missing {
                lost.push(String::from_utf8_lossy(&child).into_owned());
                continue;
            }
            out.nodes.push(node);
        }
        let new = if lost.len() == before {
            id
        } else {
            self.save_tree(&out)?
        };
        memo.insert(id, (new, lost.len() - before));
        Ok(new)
    }
}

/// Write repaired copies of damaged snapshots. The caller holds an exclusive lock.
pub fn repair_snapshots(
    repo: &mut Repository,
    now: Timestamp,
    dry_run: bool,
) -> Result<Vec<SnapshotRepair>> {
    let (snaps, _) = repo.list_snapshots_report()?;
    let files: HashMap<String, u64> = repo
        .backend()
        .list(FileType::Pack)
        .map_err(repo.backend_err())?
        .into_iter()
        .collect();
    let mut lost_packs = std::collections::HashSet::new();
    for p in repo.index().packs() {
        if files.get(&p.id.to_hex()).copied() != Some(p.size) {
            lost_packs.insert(p.id);
        }
    }
    let mut saver = Saver {
        repo,
        pack: None,
        dry_run,
        written: Vec::new(),
        pending: Default::default(),
        lost_packs,
    };
    let mut memo = HashMap::new();
    let mut fixed: Vec<(SnapshotId, snapguard_format::SnapshotFile, Vec<String>)> = Vec::new();
    for (id, snap) in snaps {
        let mut lost = Vec::new();
        let tree = saver.fix(snap.tree, b"", &mut lost, &mut memo)?;
        if lost.is_empty() {
            continue;
        }
        let mut new = snap.clone();
        new.tree = tree;
        new.parent = Some(id);
        // The original's counters describe the original, not what is left.
        new.summary = None;
        if !new.tags.iter().any(|t| t == "repaired") {
            new.tags.push("repaired".into());
        }
        fixed.push((id, new, lost));
    }
    // Trees first (packs, then index), then the snapshots that refer to them.
    if !dry_run {
        saver.flush()?;
    }
    let repo = saver.repo;
    let mut out = Vec::new();
    for (orig, new, lost) in fixed {
        let repaired = if dry_run {
            None
        } else {
            let nid = repo.save_snapshot(&new)?;
            let view = annotate::view_of(repo, nid, new.clone())?;
            let mut comment = format!(
                "repaired from snapshot {}; lost {} item(s): ",
                orig.short(),
                lost.len()
            );
            comment.push_str(&lost.iter().take(50).cloned().collect::<Vec<_>>().join(", "));
            if lost.len() > 50 {
                comment.push_str(", …");
            }
            annotate::annotate(
                repo,
                &view,
                &AnnotationChange {
                    comment: Some(comment),
                    ..Default::default()
                },
                now,
            )?;
            Some(nid.to_hex())
        };
        out.push(SnapshotRepair {
            original: orig.to_hex(),
            repaired,
            lost,
        });
    }
    Ok(out)
}
