//! Copying snapshots from one repository into another (`snapguard copy`).
//!
//! Two modes, chosen by comparing the two repositories' key bundles ([`mode`]):
//!
//! - **Same keys** (the target was made with `init --copy-keys-from`): blob and tree ids are
//!   equal in both repositories, so whatever the target's index already lists is skipped
//!   without being read, and the rest moves without being decompressed or re-encrypted
//!   ([`sealed`]). A source pack whose needed blobs make up at least half of it is copied byte
//!   for byte under its own name (its id is the salt of its subkey, so it opens in the target
//!   as it is); from other packs only the needed blobs are opened (authenticated, still
//!   compressed) and sealed again into new packs, because a sealed blob's nonce is its offset
//!   in its pack under that pack's subkey and so cannot be moved on its own.
//! - **Different keys**: every blob is read from the source, its id recomputed with the
//!   target's keyed hash, and stored through the backup pipeline (deduplicated against the
//!   target's index, compressed at the target's level); trees are rewritten bottom-up with the
//!   new ids ([`rewrite`]). Ids are remembered for the run, so shared subtrees are done once.
//!
//! Write order is a backup's: packs, then index files listing only durable packs, then the
//! snapshot as the commit point, one snapshot at a time. A killed copy leaves a consistent
//! target; a rerun skips the snapshots already copied (a copy records its original in
//! [`snapguard_format::CopyOrigin`]) and the blobs already indexed, and adopts packs that were
//! uploaded under their own name but not yet indexed.

mod rewrite;
mod sealed;
#[cfg(test)]
mod tests;

use crate::backup::CompressionChoice;
use crate::progress::Progress;
use crate::{Error, Repository, Result};
use snapguard_backend::{BackendError, FileType};
use snapguard_format::{
    AnnotationFile, AnnotationId, CopyOrigin, ObjectKind, SnapshotFile, SnapshotId,
};
use std::collections::HashMap;
use std::sync::Arc;

/// How blobs move between the two repositories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyMode {
    /// Same key bundle: sealed blobs and whole packs are copied without decrypting them.
    SameKeys,
    /// Different keys: blobs are decrypted, re-identified and re-encrypted.
    Reencrypt,
}

impl CopyMode {
    pub fn name(self) -> &'static str {
        match self {
            CopyMode::SameKeys => "same-keys",
            CopyMode::Reencrypt => "re-encrypt",
        }
    }
}

/// Settings of a copy.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Re-encrypt mode: compression of the stored blobs (None: the target's level).
    pub compression: Option<CompressionChoice>,
    /// Re-encrypt mode: compression threads (None: one per core).
    pub threads: Option<usize>,
    /// Same-keys mode: write an index file after this many packs (at least 1), so that an
    /// interrupted copy loses at most that many packs' worth of uploads.
    pub packs_per_index: usize,
    /// Counters for a progress display: files are snapshots, bytes are plaintext bytes of
    /// blobs handled.
    pub progress: Option<Arc<Progress>>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            compression: None,
            threads: None,
            packs_per_index: 8,
            progress: None,
        }
    }
}

/// A snapshot written into the target.
#[derive(Clone, Debug)]
pub struct CopiedSnapshot {
    pub source: SnapshotId,
    pub target: SnapshotId,
    pub annotations: usize,
}

/// A selected snapshot the target already had a copy of.
#[derive(Clone, Debug)]
pub struct SkippedSnapshot {
    pub source: SnapshotId,
    /// The target's copy (or the original, if the source snapshot is itself a copy of it).
    pub existing: SnapshotId,
    /// Annotations added to the source after the earlier copy and copied now.
    pub annotations: usize,
}

/// Counters of a copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Blobs (data and tree) stored into the target.
    pub blobs_copied: u64,
    /// Their plaintext bytes.
    pub bytes_copied: u64,
    /// Blobs the target already had (not stored again; in same-keys mode not even read).
    pub blobs_skipped: u64,
    /// Blobs opened and sealed again, still compressed, into new packs (same-keys mode).
    pub blobs_resealed: u64,
    /// Packs copied byte for byte (same-keys mode).
    pub packs_verbatim: u64,
    /// Packs found already uploaded by an interrupted copy and only indexed now.
    pub packs_adopted: u64,
    /// New packs written (resealed blobs, or re-encrypted ones).
    pub packs_written: u64,
    /// Bytes written to the target's pack files.
    pub bytes_uploaded: u64,
    /// Trees rewritten with new ids (re-encrypt mode).
    pub trees_rewritten: u64,
    /// Index files written.
    pub index_files: u64,
}

/// The outcome of [`copy`].
#[derive(Clone, Debug)]
pub struct CopyReport {
    pub mode: CopyMode,
    pub copied: Vec<CopiedSnapshot>,
    pub skipped: Vec<SkippedSnapshot>,
    pub stats: CopyStats,
}

/// Whether `src` and `dst` share their key material (id key, chunker key and every data key).
pub fn mode(src: &Repository, dst: &Repository) -> CopyMode {
    let (a, b) = (src.crypt().bundle(), dst.crypt().bundle());
    let same = a.encode() == b.encode();
    if same {
        CopyMode::SameKeys
    } else {
        CopyMode::Reencrypt
    }
}

/// The id a snapshot is known by across copies: its original's.
pub fn origin_of(id: SnapshotId, snapshot: &SnapshotFile) -> SnapshotId {
    snapshot
        .copied_from
        .as_ref()
        .map(|c| c.snapshot)
        .unwrap_or(id)
}

/// Copy `selected` snapshots (from `src`, oldest first) into `dst`. Both repositories must be
/// locked (shared) and have their indexes loaded.
pub fn copy(
    src: &Repository,
    dst: &mut Repository,
    selected: &[(SnapshotId, SnapshotFile)],
    opts: &CopyOptions,
) -> Result<CopyReport> {
    dst.ensure_writable()?;
    // One repository may be reached by two locations (a path and sftp:…, a symlink): the id
    // decides.
    if src.config().repo_id == dst.config().repo_id {
        return Err(Error::InvalidArgument(format!(
            "{} and {} are the same repository (id {}), or one is a file-for-file copy of the other; give another one with --to",
            src.location(),
            dst.location(),
            src.config().repo_id.short()
        )));
    }
    let mode = mode(src, dst);
    if mode == CopyMode::Reencrypt {
        let (s, d) = (src.config(), dst.config());
        if (s.chunker_min, s.chunker_avg, s.chunker_max)
            != (d.chunker_min, d.chunker_avg, d.chunker_max)
        {
            tracing::info!("the repositories use different chunk sizes: chunks are copied as they are, so later backups into the target deduplicate against the copies only per chunk");
        }
    }
    // What the target already has, by original snapshot id.
    let mut present: HashMap<SnapshotId, SnapshotId> = HashMap::new();
    for (id, s) in dst.list_snapshots()? {
        present.entry(origin_of(id, &s)).or_insert(id);
    }
    let src_annotations = crate::annotate::load(src)?;
    let dst_annotations = crate::annotate::load(dst)?;
    let mut report = CopyReport {
        mode,
        copied: Vec::new(),
        skipped: Vec::new(),
        stats: CopyStats::default(),
    };
    let progress = opts.progress.clone();
    if let Some(p) = &progress {
        p.set_totals(selected.len() as u64, 0);
    }
    let mut sealed = sealed::SealedCopier::new(dst, opts.packs_per_index, progress.clone())?;
    let mut rewriter = rewrite::Rewriter::new(progress.clone());
    for (id, snap) in selected {
        if let Some(p) = &progress {
            p.set_current(&format!(
                "snapshot {} of {} at {}",
                id.short(),
                snap.hostname,
                crate::fmt_time(snap.time)
            ));
        }
        let origin = origin_of(*id, snap);
        let anns = src_annotations.get(id).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(existing) = present.get(&origin) {
            let have = dst_annotations
                .get(existing)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let annotations = copy_annotations(dst, *existing, anns, have)?;
            report.skipped.push(SkippedSnapshot {
                source: *id,
                existing: *existing,
                annotations,
            });
            if let Some(p) = &progress {
                p.add_files(1);
            }
            continue;
        }
        let tree = match mode {
            CopyMode::SameKeys => {
                sealed.copy_tree(src, dst, snap.tree, &mut report.stats)?;
                snap.tree
            }
            CopyMode::Reencrypt => {
                rewriter.copy_snapshot(src, dst, snap.tree, opts, &mut report.stats)?
            }
        };
        let mut copy = snap.clone();
        copy.tree = tree;
        copy.parent = match snap.parent {
            // Point at the parent's copy in the target if there is one.
            Some(p) => parent_origin(src, selected, p)?.and_then(|o| present.get(&o).copied()),
            None => None,
        };
        copy.copied_from = Some(CopyOrigin {
            snapshot: origin,
            repository: snap
                .copied_from
                .as_ref()
                .map(|c| c.repository)
                .unwrap_or(src.config().repo_id),
            source: *id,
            source_repository: src.config().repo_id,
        });
        let target = match dst.save_snapshot(&copy) {
            Ok(target) => target,
            // Same keys: the snapshot's id is the keyed hash of its content, so another copy
            // running at the same time has committed exactly this snapshot.
            Err(Error::Backend {
                cause: BackendError::AlreadyExists { .. },
                ..
            }) => {
                let existing = SnapshotId(dst.crypt().id_of(&copy.encode()));
                dst.load_snapshot(&existing)?;
                tracing::info!(source = %id.short(), target = %existing.short(), "another copy has just copied this snapshot");
                present.insert(origin, existing);
                let have = crate::annotate::load(dst)?;
                let have = have.get(&existing).map(Vec::as_slice).unwrap_or(&[]);
                let annotations = copy_annotations(dst, existing, anns, have)?;
                report.skipped.push(SkippedSnapshot {
                    source: *id,
                    existing,
                    annotations,
                });
                if let Some(p) = &progress {
                    p.add_files(1);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        tracing::info!(source = %id.short(), target = %target.short(), "copied snapshot");
        present.insert(origin, target);
        let annotations = copy_annotations(dst, target, anns, &[])?;
        report.copied.push(CopiedSnapshot {
            source: *id,
            target,
            annotations,
        });
        if let Some(p) = &progress {
            p.add_files(1);
        }
    }
    Ok(report)
}

/// The original of the source snapshot `parent` (itself if it is not a copy, or if it cannot
/// be read any more).
fn parent_origin(
    src: &Repository,
    selected: &[(SnapshotId, SnapshotFile)],
    parent: SnapshotId,
) -> Result<Option<SnapshotId>> {
    if let Some((i, s)) = selected.iter().find(|(i, _)| *i == parent) {
        return Ok(Some(origin_of(*i, s)));
    }
    match src.load_snapshot(&parent) {
        Ok(s) => Ok(Some(origin_of(parent, &s))),
        // Forgotten or damaged in the source: its id is the best guess at its origin.
        Err(Error::Backend {
            cause: BackendError::NotFound { .. },
            ..
        })
        | Err(Error::Corrupt { .. }) => Ok(Some(parent)),
        Err(e) => Err(e),
    }
}

/// Write the annotations of `from` that `have` (the target snapshot's) lacks, naming `target`,
/// with their original times (so the effective tags, comment and lock come out the same).
fn copy_annotations(
    dst: &Repository,
    target: SnapshotId,
    from: &[(AnnotationId, AnnotationFile)],
    have: &[(AnnotationId, AnnotationFile)],
) -> Result<usize> {
    let mut written = 0;
    for (_, a) in from {
        let mut copy = a.clone();
        copy.snapshot = target;
        if have.iter().any(|(_, h)| *h == copy) {
            continue;
        }
        let (id, bytes) = dst
            .crypt()
            .seal_object(ObjectKind::Annotation, &copy.encode())?;
        match dst
            .backend()
            .write(FileType::Annotation, &AnnotationId(id).to_hex(), &bytes)
        {
            Ok(()) | Err(BackendError::AlreadyExists { .. }) => {}
            Err(e) => return Err(dst.backend_err()(e)),
        }
        written += 1;
    }
    Ok(written)
}
