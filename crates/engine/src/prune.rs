//! Garbage collection: plan, then execute.
//!
//! Mark: every blob reachable from any snapshot (trees and data). Sweep, per pack listed in the
//! index: a pack with no used blob is deleted; a pack whose unused share is large is repacked
//! (its used blobs are opened, verified and sealed again into new packs) while the unused bytes
//! left in the repository exceed `max_unused_percent`; pack files no index lists are leftovers of
//! interrupted backups and are deleted.
//!
//! Prune runs under an exclusive lock, so no backup can be adding data that refers to blobs
//! about to be deleted. Execution order makes every crash harmless: new packs → one new index
//! file that supersedes all old ones → delete old index files → delete packs. See
//! docs/design/locking.md for the table of what each crash leaves behind.

use crate::pack::PackWriter;
use crate::{Error, Repository, Result};
use snapguard_backend::FileType;
use snapguard_format::{BlobId, IndexId, IndexPack, PackId, TreeId};
use std::collections::{HashMap, HashSet};

/// Prune settings (shared by the CLI and, later, the daemon's config).
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack until at most this share of the stored bytes is unused (0–100).
    pub max_unused_percent: f64,
    /// Stop choosing packs to repack once this many bytes would be rewritten.
    pub max_repack_bytes: Option<u64>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused_percent: 5.0,
            max_repack_bytes: None,
        }
    }
}

/// Why a pack is treated as it is.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PackPlan {
    pub pack: String,
    pub size: u64,
    pub used_blobs: u64,
    pub unused_blobs: u64,
    pub used_bytes: u64,
    pub unused_bytes: u64,
    /// "keep", "delete" (nothing used), "repack", "delete-unreferenced".
    pub action: &'static str,
}

/// What prune would do; printable with `--dry-run`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PrunePlan {
    pub snapshots: u64,
    pub used_blobs: u64,
    pub used_bytes: u64,
    pub unused_blobs: u64,
    pub unused_bytes: u64,
    pub packs: Vec<PackPlan>,
    pub packs_to_delete: u64,
    pub packs_to_repack: u64,
    pub bytes_to_repack: u64,
    pub bytes_freed: u64,
    pub unused_after_percent: f64,
    /// S3 Object Lock: packs that would be deleted or repacked but are still retained; they
    /// stay as they are (see `object_lock`).
    pub retained: Vec<crate::object_lock::RetainedObject>,
    /// S3 Object Lock: every pack whose retention has not ended, with its date.
    #[serde(skip)]
    retained_until: HashMap<String, std::time::SystemTime>,
    /// S3 Object Lock: superseded index files still retained.
    #[serde(skip)]
    retained_superseded: usize,
    #[serde(skip)]
    index_ids: Vec<IndexId>,
    #[serde(skip)]
    index_packs: Vec<IndexPack>,
    #[serde(skip)]
    used: HashSet<BlobId>,
}

impl PrunePlan {
    /// Whether executing would change anything.
    pub fn is_noop(&self) -> bool {
        // Superseded index files S3 Object Lock still retains cannot be deleted: writing yet
        // another index would only add one more.
        self.packs.iter().all(|p| p.action == "keep")
            && self.index_ids.len() - self.retained_superseded.min(self.index_ids.len()) <= 1
    }
}

/// Every blob reachable from the repository's snapshots.
pub fn used_blobs(repo: &Repository) -> Result<(HashSet<BlobId>, u64)> {
    if let Some(e) = repo.index_errors().first() {
        // A damaged index file hides which packs hold which blobs: pruning could delete data.
        return Err(Error::Corrupt {
            object: "repository".into(),
            detail: format!(
                "{e}; refusing to prune until 'snapguard repair index' has rebuilt the index"
            ),
        });
    }
    let (snaps, damaged) = repo.list_snapshots_report()?;
    if let Some(e) = damaged.into_iter().next() {
        // Pruning with an unreadable snapshot could delete the data it refers to.
        return Err(Error::Corrupt {
            object: "repository".into(),
            detail: format!(
                "{e}; refusing to prune while a snapshot cannot be read (if it cannot be recovered, remove it with 'snapguard forget ID')"
            ),
        });
    }
    let mut used = HashSet::new();
    let mut trees: Vec<TreeId> = snaps.iter().map(|(_, s)| s.tree).collect();
    while let Some(t) = trees.pop() {
        if !used.insert(BlobId::from(t)) {
            continue;
        }
        for n in repo.read_tree(&t)?.nodes {
            if let Some(sub) = n.subtree {
                trees.push(sub);
            }
            for p in &n.content {
                if let snapguard_format::ContentPart::Data { id, .. } = p {
                    used.insert(*id);
                }
            }
        }
    }
    Ok((used, snaps.len() as u64))
}

/// Decide what to delete and repack.
pub fn plan(repo: &Repository, opts: &PruneOptions) -> Result<PrunePlan> {
    let (used, snapshots) = used_blobs(repo)?;
    for id in &used {
        if !repo.index().contains(id)? {
            return Err(Error::Corrupt {
                object: format!("blob {id}"),
                detail: "used by a snapshot but missing from the index; run 'snapguard check' and 'snapguard repair' before pruning".into(),
            });
        }
    }
    let mut index_ids = Vec::new();
    let mut index_packs: Vec<IndexPack> = Vec::new();
    let mut superseded = HashSet::new();
    let mut files = Vec::new();
    for id in repo.index_ids()? {
        let file = repo.read_index(&id.to_hex())?;
        superseded.extend(file.supersedes.iter().copied());
        files.push((id, file));
    }
    let mut seen_packs = HashSet::new();
    for (id, file) in files {
        index_ids.push(id);
        if superseded.contains(&id) {
            continue;
        }
        for p in file.packs {
            if seen_packs.insert(p.id) {
                index_packs.push(p);
            }
        }
    }
    let mut plan = PrunePlan {
        snapshots,
        index_ids,
        retained_until: crate::object_lock::retained_packs(repo)?,
        ..Default::default()
    };
    let superseded_names = plan
        .index_ids
        .iter()
        .filter(|id| superseded.contains(id))
        .map(|id| id.to_hex())
        .collect();
    plan.retained_superseded =
        crate::object_lock::retained(repo, FileType::Index, superseded_names)?.len();
    // A blob stored twice counts as used only in the first pack that has it.
    let mut claimed: HashSet<BlobId> = HashSet::new();
    let mut candidates = Vec::new();
    let mut total_unused = 0u64;
    let mut total = 0u64;
    for p in &index_packs {
        let mut pp = PackPlan {
            pack: p.id.to_hex(),
            size: p.size,
            used_blobs: 0,
            unused_blobs: 0,
            used_bytes: 0,
            unused_bytes: 0,
            action: "keep",
        };
        for b in &p.blobs {
            if used.contains(&b.id) && claimed.insert(b.id) {
                pp.used_blobs += 1;
                pp.used_bytes += u64::from(b.length);
            } else {
                pp.unused_blobs += 1;
                pp.unused_bytes += u64::from(b.length);
            }
        }
        total += p.size;
        if let Some(until) = plan
            .retained_until
            .get(&pp.pack)
            .filter(|_| pp.used_blobs == 0)
        {
            // S3 Object Lock: not deleted while retained; a later prune will.
            plan.retained.push(crate::object_lock::RetainedObject::new(
                FileType::Pack,
                pp.pack.clone(),
                crate::object_lock::fmt_until(*until),
            ));
        } else if pp.used_blobs == 0 {
            pp.action = "delete";
            plan.bytes_freed += p.size;
        } else if pp.unused_blobs > 0 {
            total_unused += pp.unused_bytes;
            candidates.push(plan.packs.len());
        }
        plan.used_blobs += pp.used_blobs;
        plan.unused_blobs += pp.unused_blobs;
        plan.used_bytes += pp.used_bytes;
        plan.unused_bytes += pp.unused_bytes;
        plan.packs.push(pp);
    }
    // Repack the packs with the most unused bytes first, until the unused share is acceptable.
    candidates.sort_by_key(|&i| std::cmp::Reverse(plan.packs[i].unused_bytes));
    let kept_total = total - plan.bytes_freed;
    let limit = (kept_total as f64 * opts.max_unused_percent / 100.0) as u64;
    for i in candidates {
        if total_unused <= limit {
            break;
        }
        let p = &mut plan.packs[i];
        if let Some(until) = plan.retained_until.get(&p.pack) {
            // S3 Object Lock: repacking could not delete it, and would move a locked
            // snapshot's blobs into packs without its retention.
            plan.retained.push(crate::object_lock::RetainedObject::new(
                FileType::Pack,
                p.pack.clone(),
                crate::object_lock::fmt_until(*until),
            ));
            continue;
        }
        if let Some(max) = opts.max_repack_bytes {
            if plan.bytes_to_repack + p.used_bytes > max {
                continue;
            }
        }
        p.action = "repack";
        plan.bytes_to_repack += p.used_bytes;
        plan.bytes_freed += p.unused_bytes;
        total_unused -= p.unused_bytes;
    }
    // Pack files no index knows: leftovers of interrupted backups (no backup can be running:
    // we hold the exclusive lock).
    let known: HashSet<String> = index_packs.iter().map(|p| p.id.to_hex()).collect();
    for (name, size) in repo
        .backend()
        .list(FileType::Pack)
        .map_err(repo.backend_err())?
    {
        if let Some(until) = plan
            .retained_until
            .get(&name)
            .filter(|_| !known.contains(&name))
        {
            plan.retained.push(crate::object_lock::RetainedObject::new(
                FileType::Pack,
                name,
                crate::object_lock::fmt_until(*until),
            ));
        } else if !known.contains(&name) {
            plan.bytes_freed += size;
            plan.packs.push(PackPlan {
                pack: name,
                size,
                used_blobs: 0,
                unused_blobs: 0,
                used_bytes: 0,
                unused_bytes: 0,
                action: "delete-unreferenced",
            });
        }
    }
    plan.packs_to_delete = plan
        .packs
        .iter()
        .filter(|p| p.action.starts_with("delete"))
        .count() as u64;
    plan.packs_to_repack = plan.packs.iter().filter(|p| p.action == "repack").count() as u64;
    let after = kept_total.saturating_sub(plan.bytes_freed.min(kept_total));
    plan.unused_after_percent = if after > 0 {
        total_unused as f64 * 100.0 / after as f64
    } else {
        0.0
    };
    plan.index_packs = index_packs;
    plan.used = used;
    Ok(plan)
}

/// Outcome of executing a plan.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PruneStats {
    pub packs_deleted: u64,
    pub packs_written: u64,
    pub blobs_repacked: u64,
    pub index_files_replaced: u64,
    /// Objects left in place because S3 Object Lock still retains them (a later prune
    /// deletes them once their retention has ended).
    pub retained: Vec<crate::object_lock::RetainedObject>,
}

/// Execute a plan. The caller must hold an exclusive lock taken before the plan was made.
pub fn execute(repo: &mut Repository, plan: &PrunePlan) -> Result<PruneStats> {
    execute_with_progress(repo, plan, None)
}

/// [`execute`], reporting packs repacked or deleted to `progress`.
pub fn execute_with_progress(
    repo: &mut Repository,
    plan: &PrunePlan,
    progress: Option<&crate::progress::Progress>,
) -> Result<PruneStats> {
    if let Some(pr) = progress {
        let work: Vec<&PackPlan> = plan.packs.iter().filter(|p| p.action != "keep").collect();
        pr.set_totals(work.len() as u64, work.iter().map(|p| p.size).sum());
    }
    repo.ensure_deletable("prune")?;
    let mut stats = PruneStats::default();
    if plan.is_noop() {
        return Ok(stats);
    }
    let action: HashMap<&str, &str> = plan
        .packs
        .iter()
        .map(|p| (p.pack.as_str(), p.action))
        .collect();
    let mut kept: Vec<IndexPack> = Vec::new();
    let mut claimed: HashSet<BlobId> = HashSet::new();
    let mut writer: Option<PackWriter> = None;
    let level = repo.config().compression_level;
    let target = repo.config().pack_target_size as usize;
    // 1. Repack: copy used blobs of chosen packs into new packs.
    for p in &plan.index_packs {
        match action.get(p.id.to_hex().as_str()).copied() {
            Some("keep") => {
                claimed.extend(
                    p.blobs
                        .iter()
                        .filter(|b| plan.used.contains(&b.id))
                        .map(|b| b.id),
                );
                kept.push(p.clone());
            }
            Some("repack") => {
                if let Some(pr) = progress {
                    pr.set_current(&p.id.to_hex());
                    pr.add_files(1);
                    pr.add_bytes(p.size);
                }
                let bytes = repo
                    .backend()
                    .read(FileType::Pack, &p.id.to_hex())
                    .map_err(repo.backend_err())?;
                let cipher = snapguard_crypto::Cipher::from_code(p.cipher_code)
                    .map_err(|e| Error::corrupt(format!("pack {}", p.id), e))?;
                let key = repo.crypt().pack_key(&p.id, p.epoch, cipher)?;
                for b in &p.blobs {
                    if !plan.used.contains(&b.id) || claimed.contains(&b.id) {
                        continue;
                    }
                    let start = b.offset as usize;
                    let end = start + b.length as usize;
                    let sealed = bytes.get(start..end).ok_or_else(|| {
                        Error::corrupt(format!("pack {}", p.id), "shorter than its index says")
                    })?;
                    let plain = repo.crypt().open_blob(&p.id, &key, b, sealed)?;
                    if writer.is_none() {
                        writer = Some(PackWriter::new(repo.crypt())?);
                    }
                    if let Some(w) = writer.as_mut() {
                        w.add(b.id, b.kind, &plain, level)?;
                        if w.len() >= target {
                            if let Some(w) = writer.take() {
                                kept.push(store_pack(repo, w)?);
                                stats.packs_written += 1;
                            }
                        }
                    }
                    claimed.insert(b.id);
                    stats.blobs_repacked += 1;
                }
            }
            _ => {}
        }
    }
    if let Some(w) = writer.take() {
        if !w.is_empty() {
            kept.push(store_pack(repo, w)?);
            stats.packs_written += 1;
        }
    }
    // 2. One new index that supersedes every old index file. Deleting is only safe while
    // our exclusive lock is unquestionably ours.
    repo.ensure_lock_fresh()?;
    let old = plan.index_ids.clone();
    let kept_names: Vec<String> = kept.iter().map(|p| p.id.to_hex()).collect();
    let new_index = repo.write_index_superseding(kept, old.clone())?;
    crate::object_lock::cover_index(repo, new_index, &kept_names, &plan.retained_until)?;
    // 3. Old index files go before any pack, so no index ever lists a deleted pack.
    for id in &old {
        match repo.backend().remove(FileType::Index, &id.to_hex()) {
            Ok(()) | Err(snapguard_backend::BackendError::NotFound { .. }) => {
                stats.index_files_replaced += 1
            }
            // Superseded by the new index, so harmless where it is.
            Err(snapguard_backend::BackendError::RetentionLocked { until, .. }) => {
                stats.index_files_replaced += 1;
                stats.retained.push(crate::object_lock::RetainedObject::new(
                    FileType::Index,
                    id.to_hex(),
                    until,
                ));
            }
            Err(e) => return Err(repo.backend_err()(e)),
        }
    }
    // 4. Packs.
    for p in &plan.packs {
        if p.action != "keep" && p.action != "repack" {
            if let Some(pr) = progress {
                pr.add_files(1);
                pr.add_bytes(p.size);
            }
        }
        if p.action != "keep" {
            match repo.backend().remove(FileType::Pack, &p.pack) {
                Ok(()) | Err(snapguard_backend::BackendError::NotFound { .. }) => {
                    stats.packs_deleted += 1
                }
                // In no index any more: a later prune finds it as unreferenced and deletes it
                // once the retention has ended.
                Err(snapguard_backend::BackendError::RetentionLocked { until, .. }) => {
                    stats.retained.push(crate::object_lock::RetainedObject::new(
                        FileType::Pack,
                        p.pack.clone(),
                        until,
                    ))
                }
                Err(e) => return Err(repo.backend_err()(e)),
            }
        }
    }
    repo.load_index()?;
    Ok(stats)
}

fn store_pack(repo: &Repository, w: PackWriter) -> Result<IndexPack> {
    let done = w.finish();
    repo.backend()
        .write(FileType::Pack, &done.id.to_hex(), &done.bytes)
        .map_err(repo.backend_err())?;
    Ok(IndexPack {
        id: done.id,
        size: done.bytes.len() as u64,
        epoch: done.epoch,
        cipher_code: done.cipher_code,
        blobs: done.blobs,
    })
}

/// Pack ids referenced by the plan (for tests).
pub fn planned(plan: &PrunePlan, action: &str) -> Vec<PackId> {
    plan.packs
        .iter()
        .filter(|p| p.action == action)
        .filter_map(|p| PackId::from_hex(&p.pack).ok())
        .collect()
}
