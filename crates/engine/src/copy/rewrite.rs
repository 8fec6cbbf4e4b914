//! Re-encrypt copying: every blob is read, re-identified with the target's keyed hash and
//! stored through the backup pipeline; trees are rewritten bottom-up with the new ids.

use super::{CopyOptions, CopyStats};
use crate::backup::pipeline::{Job, Pipeline, PACKS_PER_INDEX};
use crate::progress::Progress;
use crate::{Repository, Result};
use snapguard_format::{BlobId, BlobType, ContentPart, Tree, TreeId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Data blobs of one tree read at once (each up to the chunker's maximum, 8 MiB by default).
const READ_BATCH: usize = 16;
/// Threads reading them (requests in flight to a remote source).
const READERS: usize = 8;

/// Old id → new id, for the whole run (what a snapshot stored is indexed before the next one
/// starts, so the mapping stays valid across snapshots).
pub(super) struct Rewriter {
    blobs: HashMap<BlobId, BlobId>,
    trees: HashMap<TreeId, TreeId>,
    progress: Option<Arc<Progress>>,
}

/// One snapshot's pass: the pipeline and what it has queued.
struct Pass<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    pipeline: Pipeline,
    pending: HashSet<BlobId>,
    stats: &'a mut CopyStats,
}

impl Rewriter {
    pub(super) fn new(progress: Option<Arc<Progress>>) -> Rewriter {
        Rewriter {
            blobs: HashMap::new(),
            trees: HashMap::new(),
            progress,
        }
    }

    /// Store everything below `root` in `dst` and return the root's new id. When this
    /// returns, the new blobs are in durable, indexed packs.
    pub(super) fn copy_snapshot(
        &mut self,
        src: &Repository,
        dst: &mut Repository,
        root: TreeId,
        opts: &CopyOptions,
        stats: &mut CopyStats,
    ) -> Result<TreeId> {
        let pipeline = crate::backup::start_pipeline(dst, opts.compression, opts.threads, false);
        let mut pass = Pass {
            src,
            dst,
            pipeline,
            pending: HashSet::new(),
            stats,
        };
        let new_root = self.tree(&mut pass, root);
        let Pass {
            pipeline, stats, ..
        } = pass;
        // Finish the pipeline even after an error, so that what was stored gets indexed.
        let out = pipeline.finish();
        let new_root = new_root?;
        let out = out?;
        stats.packs_written += out.packs.len() as u64;
        stats.bytes_uploaded += out.packs.iter().map(|p| p.size).sum::<u64>();
        stats.index_files += out.packs.len().div_ceil(PACKS_PER_INDEX) as u64;
        dst.add_to_index(&out.packs);
        Ok(new_root)
    }

    fn tree(&mut self, pass: &mut Pass, old: TreeId) -> Result<TreeId> {
        if let Some(new) = self.trees.get(&old) {
            return Ok(*new);
        }
        let mut tree = pass.src.read_tree(&old)?;
        // The data blobs of this directory's files, read a batch at a time on a few threads
        // (one range request each), then stored in file order.
        let mut wanted = Vec::new();
        let mut listed = HashSet::new();
        for node in &tree.nodes {
            for part in &node.content {
                if let ContentPart::Data { id, .. } = part {
                    if !self.blobs.contains_key(id) && listed.insert(*id) {
                        wanted.push(*id);
                    }
                }
            }
        }
        for batch in wanted.chunks(READ_BATCH) {
            for (old, data) in batch.iter().zip(read_all(pass.src, batch)?) {
                let len = data.len() as u64;
                let new = store(pass, BlobType::Data, data)?;
                self.blobs.insert(*old, new);
                if let Some(p) = &self.progress {
                    p.add_bytes(len);
                }
            }
        }
        for node in &mut tree.nodes {
            for part in &mut node.content {
                if let ContentPart::Data { id, .. } = part {
                    *id = self.blobs.get(id).copied().ok_or_else(|| {
                        crate::Error::Internal(format!("blob {id} was not copied"))
                    })?;
                }
            }
            if let Some(sub) = node.subtree {
                node.subtree = Some(self.tree(pass, sub)?);
            }
        }
        let new = TreeId::from(store(pass, BlobType::Tree, encode(&tree))?);
        pass.stats.trees_rewritten += 1;
        self.trees.insert(old, new);
        Ok(new)
    }
}

/// Read `ids` from `src` on up to [`READERS`] threads, in order. `read_blob` authenticates each
/// blob and checks it against its id.
fn read_all(src: &Repository, ids: &[BlobId]) -> Result<Vec<Vec<u8>>> {
    if ids.len() == 1 {
        return Ok(vec![src.read_blob(&ids[0])?]);
    }
    let readers = READERS.min(ids.len()).max(1);
    let mut slots: Vec<Option<Result<Vec<u8>>>> = (0..ids.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                s.spawn(move || {
                    ids.iter()
                        .enumerate()
                        .skip(r)
                        .step_by(readers)
                        .map(|(i, id)| (i, src.read_blob(id)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            if let Ok(done) = h.join() {
                for (i, r) in done {
                    slots[i] = Some(r);
                }
            }
        }
    });
    slots
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err(crate::Error::Internal("a reader thread panicked".into())))
        })
        .collect()
}

/// A tree's encoding (node order is by name and names do not change, so it stays sorted).
fn encode(tree: &Tree) -> Vec<u8> {
    tree.encode()
}

/// Queue `data` unless the target has it or this pass queued it; returns its new id.
fn store(pass: &mut Pass, kind: BlobType, data: Vec<u8>) -> Result<BlobId> {
    let id = BlobId(pass.dst.crypt().id_of(&data));
    if pass.dst.index().contains(&id)? || pass.pending.contains(&id) {
        pass.stats.blobs_skipped += 1;
        return Ok(id);
    }
    pass.pending.insert(id);
    pass.stats.blobs_copied += 1;
    pass.stats.bytes_copied += data.len() as u64;
    pass.pipeline.submit(Job { id, kind, data })?;
    Ok(id)
}
