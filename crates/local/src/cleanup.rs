//! `local cleanup`: applies the retention of one configuration. The decision is
//! `snapguard_policy::plan_cleanup` (pure); this module measures what it needs (exclusive
//! sizes from btrfs qgroups, free space from `statvfs`), deletes what the plan says, and, when
//! space-aware limits are involved, waits for btrfs to free the space, measures again and plans
//! again, as Snapper does. It also finishes off entries left incomplete by a crash.
//!
//! Plan, then execute: [`plan`] only reads, so `--dry-run` prints exactly what [`cleanup`]
//! would delete first, with the reasons.

use crate::store::{Incomplete, Store};
use crate::{Error, Result};
use snapguard_policy::{plan_cleanup, CleanupPlan, PlannedDeletion, SpaceInfo};
use std::path::Path;
use std::time::{Duration, Instant};

/// Measures the filesystem holding `path`: its size and the space available to unprivileged
/// users (`f_bavail`, what Snapper's free-space check uses too).
pub fn measure_space(path: &Path) -> Result<SpaceInfo> {
    let st = rustix::fs::statvfs(path).map_err(|e| Error::Io {
        action: "measure the free space of",
        path: path.to_path_buf(),
        cause: e.into(),
    })?;
    Ok(SpaceInfo {
        fs_size: st.f_blocks.saturating_mul(st.f_frsize),
        fs_free: st.f_bavail.saturating_mul(st.f_frsize),
    })
}

/// The cleanup plan for `store` now: every complete snapshot with its protection and size.
/// Commits the filesystem's transaction first, so that the qgroup sizes are current.
pub fn plan(store: &Store, now: i64) -> Result<CleanupPlan> {
    // Stale sizes only make the estimate rougher; the plan is still safe.
    if let Err(e) = sync(store) {
        tracing::debug!("{e}");
    }
    let snaps = store.list()?;
    let view = store.policy_view(&snaps)?;
    let space = measure_space(store.subvolume())?;
    Ok(plan_cleanup(
        &view,
        &store.config().retention,
        now,
        Some(space),
    ))
}

/// What [`cleanup`] did.
#[derive(Debug, Default)]
pub struct CleanupReport {
    /// Each round's plan (more than one when space had to be measured again).
    pub plans: Vec<CleanupPlan>,
    /// The deletions that were carried out, in order.
    pub deleted: Vec<PlannedDeletion>,
    /// Planned deletions that failed (the snapshot number and the error), e.g. because the
    /// snapshot was mounted meanwhile.
    pub failed: Vec<(u32, String)>,
    /// Incomplete entries that were removed.
    pub incomplete_removed: Vec<u32>,
    /// Incomplete entries that were left alone (foreign or damaged) or could not be removed,
    /// with why.
    pub incomplete_left: Vec<(Incomplete, String)>,
}

/// At most this many plan-delete-measure rounds (each deletes at least one snapshot).
const MAX_ROUNDS: usize = 1000;

/// Applies the retention of `store` (see the module documentation).
pub fn cleanup(store: &Store, now: i64) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    for inc in store.incomplete()? {
        if !inc.state.removable() {
            let why = inc.state.to_string();
            report.incomplete_left.push((inc, why));
            continue;
        }
        match store.remove_incomplete(inc.number) {
            Ok(()) => report.incomplete_removed.push(inc.number),
            Err(e) => report.incomplete_left.push((inc, e.to_string())),
        }
    }
    for _ in 0..MAX_ROUNDS {
        let plan = plan(store, now)?;
        let deletions = plan.delete.clone();
        let space_aware = plan.space.is_some_and(|s| {
            s.remeasure || s.free_limit_met == Some(false) || s.space_limit_met == Some(false)
        }) || deletions.iter().any(|d| {
            matches!(
                d.reason,
                snapguard_policy::DeleteReason::FreeSpace
                    | snapguard_policy::DeleteReason::SpaceLimit
            )
        });
        report.plans.push(plan);
        if deletions.is_empty() {
            break;
        }
        let mut progress = false;
        for d in deletions {
            match store.delete(d.number) {
                Ok(()) => {
                    report.deleted.push(d);
                    progress = true;
                }
                Err(e) => report.failed.push((d.number, e.to_string())),
            }
        }
        if !progress || !space_aware {
            break;
        }
        wait_for_space(store)?;
    }
    Ok(report)
}

/// After deleting snapshots: commits the transaction and waits (up to 30 s) until the free
/// space stops growing, because btrfs frees a deleted subvolume's extents in the background.
fn wait_for_space(store: &Store) -> Result<()> {
    sync(store)?;
    let start = Instant::now();
    let mut last = measure_space(store.subvolume())?.fs_free;
    let mut stable_since = Instant::now();
    while start.elapsed() < Duration::from_secs(30)
        && stable_since.elapsed() < Duration::from_secs(1)
    {
        std::thread::sleep(Duration::from_millis(200));
        sync(store)?;
        let free = measure_space(store.subvolume())?.fs_free;
        if free != last {
            last = free;
            stable_since = Instant::now();
        }
    }
    Ok(())
}

fn sync(store: &Store) -> Result<()> {
    snapguard_btrfs::sync(store.subvolume()).map_err(|cause| Error::Btrfs {
        context: format!("config {}: sync the filesystem", store.name()),
        cause,
    })
}
