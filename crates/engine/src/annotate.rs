//! Snapshot annotations (tags, comments, immutability locks) and the effective view of a
//! snapshot with its annotations applied.
//!
//! Annotations are append-only sealed objects (`annotations/<id>`); a snapshot file is never
//! rewritten. An immutability lock can only be extended, and while it holds, tags cannot be
//! removed and the snapshot cannot be forgotten.

use crate::{Error, Repository, Result};
use snapguard_backend::FileType;
use snapguard_format::{
    AnnotationFile, AnnotationId, ObjectKind, SnapshotFile, SnapshotId, Timestamp,
};
use std::collections::HashMap;

/// A snapshot as users see it: its own fields plus all annotations.
#[derive(Clone, Debug)]
pub struct SnapshotView {
    pub id: SnapshotId,
    pub snapshot: SnapshotFile,
    /// Effective tags (the snapshot's tags with annotations applied).
    pub tags: Vec<String>,
    pub comment: Option<String>,
    pub lock_until: Option<Timestamp>,
}

impl SnapshotView {
    /// Whether the snapshot is immutable at `now`.
    pub fn locked_at(&self, now: Timestamp) -> bool {
        self.lock_until.is_some_and(|u| u > now)
    }
}

/// A requested change.
#[derive(Clone, Debug, Default)]
pub struct AnnotationChange {
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    pub comment: Option<String>,
    pub lock_until: Option<Timestamp>,
}

/// All annotations by snapshot, each list in application order.
pub fn load(repo: &Repository) -> Result<HashMap<SnapshotId, Vec<(AnnotationId, AnnotationFile)>>> {
    let mut out: HashMap<SnapshotId, Vec<(AnnotationId, AnnotationFile)>> = HashMap::new();
    let listing = repo
        .backend()
        .list(FileType::Annotation)
        .map_err(repo.backend_err())?;
    crate::metacache::retain_listed(
        repo,
        FileType::Annotation,
        listing.iter().map(|(n, _)| n.as_str()),
    );
    for (name, _) in listing {
        let object = format!("annotation {name} (annotations/{name})");
        let id = AnnotationId::from_hex(&name).map_err(|e| Error::corrupt(&object, e))?;
        let loaded = crate::metacache::read_object(
            repo,
            FileType::Annotation,
            ObjectKind::Annotation,
            &id.0,
            &name,
            &object,
        )
        .and_then(|p| AnnotationFile::decode(&p).map_err(|e| Error::corrupt(&object, e)));
        match loaded {
            Ok(a) => out.entry(a.snapshot).or_default().push((id, a)),
            Err(e @ Error::Corrupt { .. }) => {
                tracing::warn!("{e}; ignoring it (run 'snapguard check')")
            }
            Err(e) => return Err(e),
        }
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    }
    Ok(out)
}

/// The snapshot with annotations applied.
pub fn view(
    id: SnapshotId,
    snapshot: SnapshotFile,
    annotations: &[(AnnotationId, AnnotationFile)],
) -> SnapshotView {
    let mut tags = snapshot.tags.clone();
    let mut comment = None;
    let mut lock_until: Option<Timestamp> = None;
    for (_, a) in annotations {
        tags.retain(|t| !a.remove_tags.contains(t));
        for t in &a.add_tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        if let Some(c) = &a.comment {
            comment = if c.is_empty() { None } else { Some(c.clone()) };
        }
        if let Some(u) = a.lock_until {
            lock_until = Some(lock_until.map_or(u, |cur| cur.max(u)));
        }
    }
    SnapshotView {
        id,
        snapshot,
        tags,
        comment,
        lock_until,
    }
}

/// Every readable snapshot with its annotations, oldest first, and errors for unreadable ones.
pub fn views(repo: &Repository) -> Result<(Vec<SnapshotView>, Vec<Error>)> {
    let (snaps, errors) = repo.list_snapshots_report()?;
    let anns = load(repo)?;
    let empty = Vec::new();
    let v = snaps
        .into_iter()
        .map(|(id, s)| view(id, s, anns.get(&id).unwrap_or(&empty)))
        .collect();
    Ok((v, errors))
}

/// One snapshot's view.
pub fn view_of(repo: &Repository, id: SnapshotId, snapshot: SnapshotFile) -> Result<SnapshotView> {
    let anns = load(repo)?;
    Ok(view(
        id,
        snapshot,
        anns.get(&id).map(Vec::as_slice).unwrap_or(&[]),
    ))
}

/// Record a change, refusing destructive changes to an immutable snapshot.
pub fn annotate(
    repo: &Repository,
    current: &SnapshotView,
    change: &AnnotationChange,
    now: Timestamp,
) -> Result<AnnotationId> {
    if current.locked_at(now) {
        let until = current.lock_until.map(crate::fmt_time).unwrap_or_default();
        let removes = change.remove_tags.iter().any(|t| current.tags.contains(t));
        let shortens = change
            .lock_until
            .is_some_and(|u| current.lock_until.is_some_and(|c| u < c));
        if removes || shortens {
            return Err(Error::Immutable {
                snapshot: current.id.short(),
                until,
            });
        }
    }
    repo.ensure_writable()?;
    let file = AnnotationFile {
        snapshot: current.id,
        time: now,
        add_tags: change.add_tags.clone(),
        remove_tags: change.remove_tags.clone(),
        comment: change.comment.clone(),
        lock_until: change.lock_until,
    };
    let (id, bytes) = repo
        .crypt()
        .seal_object(ObjectKind::Annotation, &file.encode())?;
    let id = AnnotationId(id);
    repo.backend()
        .write(FileType::Annotation, &id.to_hex(), &bytes)
        .map_err(repo.backend_err())?;
    Ok(id)
}
