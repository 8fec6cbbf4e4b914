//! Forgetting snapshots: by id, or by a retention policy (plan, then execute).
//!
//! The decision is the pure `snapguard_policy::apply`; this module feeds it the effective view
//! of each snapshot (tags and immutability locks from annotations) and deletes what it says,
//! re-checking immutability and append-only mode at deletion time. Forgetting only removes
//! snapshot files (and their annotations); `prune` reclaims the data.

use crate::annotate::SnapshotView;
use crate::{Error, Repository, Result};
use snapguard_backend::{BackendError, FileType};
use snapguard_format::{SnapshotId, Timestamp};
use snapguard_policy::{GroupBy, RetentionPolicy, SnapshotInfo};

/// What to forget.
#[derive(Clone, Debug, Default)]
pub struct ForgetOptions {
    /// Forget exactly these snapshots.
    pub ids: Vec<SnapshotId>,
    /// Or apply this policy to every snapshot.
    pub policy: Option<RetentionPolicy>,
    pub group_by: Option<GroupBy>,
    pub now: Timestamp,
    pub utc_offset_secs: i32,
}

/// The decision for one snapshot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ForgetDecision {
    pub id: String,
    pub short_id: String,
    pub time_secs: i64,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub keep: bool,
    /// Why it is kept ("daily", "tag:important", "locked", "not selected") or removed.
    pub reasons: Vec<String>,
    pub group: String,
}

fn info(v: &SnapshotView) -> SnapshotInfo {
    SnapshotInfo {
        id: v.id.to_hex(),
        time_secs: v.snapshot.time.secs,
        time_nanos: v.snapshot.time.nanos,
        hostname: v.snapshot.hostname.clone(),
        paths: v.snapshot.display_paths(),
        tags: v.tags.clone(),
        locked_until: v.lock_until.map(|t| t.secs),
    }
}

/// Decide; nothing is changed.
pub fn plan(views: &[SnapshotView], opts: &ForgetOptions) -> Result<Vec<ForgetDecision>> {
    let decision =
        |v: &SnapshotView, keep: bool, reasons: Vec<String>, group: String| ForgetDecision {
            id: v.id.to_hex(),
            short_id: v.id.short(),
            time_secs: v.snapshot.time.secs,
            hostname: v.snapshot.hostname.clone(),
            paths: v.snapshot.display_paths(),
            tags: v.tags.clone(),
            keep,
            reasons,
            group,
        };
    if !opts.ids.is_empty() {
        let mut out = Vec::new();
        // Snapshots named on the command line whose files cannot be read: forgetting them is
        // the way to get rid of a damaged snapshot file (prune refuses while one exists).
        for id in &opts.ids {
            if !views.iter().any(|v| v.id == *id) {
                out.push(ForgetDecision {
                    id: id.to_hex(),
                    short_id: id.short(),
                    time_secs: 0,
                    hostname: String::new(),
                    paths: Vec::new(),
                    tags: Vec::new(),
                    keep: false,
                    reasons: vec!["named on the command line (snapshot file unreadable)".into()],
                    group: String::new(),
                });
            }
        }
        for v in views {
            if opts.ids.contains(&v.id) {
                if v.locked_at(opts.now) {
                    return Err(immutable(v));
                }
                out.push(decision(
                    v,
                    false,
                    vec!["named on the command line".into()],
                    String::new(),
                ));
            } else {
                out.push(decision(
                    v,
                    true,
                    vec!["not selected".into()],
                    String::new(),
                ));
            }
        }
        return Ok(out);
    }
    let Some(policy) = &opts.policy else {
        return Err(Error::InvalidArgument(
            "nothing to forget: name snapshots or give a policy (--keep-last, --keep-daily, …)"
                .into(),
        ));
    };
    let infos: Vec<SnapshotInfo> = views.iter().map(info).collect();
    let group_by = opts.group_by.unwrap_or_default();
    let decisions = snapguard_policy::apply(
        &infos,
        policy,
        group_by,
        opts.now.secs,
        opts.utc_offset_secs,
    )
    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let by_id: std::collections::HashMap<String, &SnapshotView> =
        views.iter().map(|v| (v.id.to_hex(), v)).collect();
    let mut out = Vec::new();
    for d in decisions {
        let Some(v) = by_id.get(&d.id) else { continue };
        let reasons = if d.keep {
            d.reasons.iter().map(|r| r.to_string()).collect()
        } else {
            vec!["no rule keeps it".into()]
        };
        out.push(decision(v, d.keep, reasons, d.group.to_string()));
    }
    Ok(out)
}

/// S3 Object Lock: a snapshot whose file the storage still retains cannot be forgotten yet.
/// Decided by a policy, it is kept with the reason "retained by object lock until DATE" (a
/// later run forgets it once the retention has ended); named on the command line
/// (`opts.ids`), the whole run fails with [`Error::ObjectLocked`] naming the first one, before
/// anything is deleted. Nothing (and no request) on a repository without Object Lock.
pub fn keep_retained(
    repo: &Repository,
    decisions: &mut [ForgetDecision],
    opts: &ForgetOptions,
) -> Result<()> {
    let doomed: Vec<SnapshotId> = decisions
        .iter()
        .filter(|d| !d.keep)
        .filter_map(|d| SnapshotId::from_hex(&d.id).ok())
        .collect();
    let held = crate::object_lock::retained_snapshots(repo, &doomed)?;
    if let (false, Some((id, until))) = (opts.ids.is_empty(), held.first()) {
        return Err(crate::object_lock::retained_snapshot_error(
            id,
            until.clone(),
        ));
    }
    for (id, until) in held {
        if let Some(d) = decisions.iter_mut().find(|d| d.id == id.to_hex()) {
            d.keep = true;
            d.reasons = vec![format!("retained by object lock until {until}")];
        }
    }
    Ok(())
}

fn immutable(v: &SnapshotView) -> Error {
    Error::Immutable {
        snapshot: v.id.short(),
        until: v.lock_until.map(crate::fmt_time).unwrap_or_default(),
    }
}

/// Delete the snapshots the plan removes. The caller holds an exclusive lock.
pub fn execute(repo: &Repository, decisions: &[ForgetDecision], now: Timestamp) -> Result<u64> {
    repo.ensure_deletable("forget")?;
    repo.ensure_lock_fresh()?;
    let (views, _) = crate::annotate::views(repo)?;
    let annotations = crate::annotate::load(repo)?;
    // S3 Object Lock: refuse before anything is deleted (`keep_retained` kept those it could
    // when the plan was made; this catches a plan made without it).
    let doomed: Vec<SnapshotId> = decisions
        .iter()
        .filter(|d| !d.keep)
        .filter_map(|d| SnapshotId::from_hex(&d.id).ok())
        .collect();
    if let Some((id, until)) = crate::object_lock::retained_snapshots(repo, &doomed)?
        .into_iter()
        .next()
    {
        return Err(crate::object_lock::retained_snapshot_error(&id, until));
    }
    let mut removed = 0;
    for d in decisions.iter().filter(|d| !d.keep) {
        let Ok(id) = SnapshotId::from_hex(&d.id) else {
            continue;
        };
        // Re-check at deletion time: a lock may have been added since the plan was made. A
        // damaged snapshot file has no view; its annotations still say whether it is locked.
        let until = match views.iter().find(|v| v.id == id) {
            Some(v) => v.lock_until,
            None => annotations
                .get(&id)
                .and_then(|a| a.iter().filter_map(|(_, x)| x.lock_until).max()),
        };
        if until.is_some_and(|u| u > now) {
            return Err(Error::Immutable {
                snapshot: id.short(),
                until: until.map(crate::fmt_time).unwrap_or_default(),
            });
        }
        match repo.backend().remove(FileType::Snapshot, &d.id) {
            Ok(()) | Err(BackendError::NotFound { .. }) => removed += 1,
            Err(e) => {
                let what = format!("snapshot {} (snapshots/{})", id.short(), d.id);
                return Err(crate::object_lock::locked_error(what, e)
                    .unwrap_or_else(|e| repo.backend_err()(e)));
            }
        }
        for (aid, _) in annotations.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
            let _ = repo.backend().remove(FileType::Annotation, &aid.to_hex());
        }
    }
    Ok(removed)
}
