//! [`plan_cleanup`]: which local snapshots `snapguard local cleanup` deletes, in which order and
//! why, and why every other one is kept. It only decides; the snapshot store deletes.
//!
//! The rules are Snapper's number and timeline cleanup algorithms with its space-aware passes
//! (snapper-configs(5), `snapper cleanup`), computed in one pure function over a list of
//! [`LocalSnapshotInfo`] instead of a loop that deletes and re-measures: the space-aware part
//! works from the snapshots' exclusive sizes, an estimate the caller confirms by measuring again
//! (see [`SpaceReport::remeasure`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::calendar::Period;
use super::{CountRange, LocalRetention};

/// The role of a snapshot, as in Snapper: a lone snapshot, or the snapshot before or after a
/// change (a package upgrade) that belongs with its partner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalKind {
    /// A snapshot on its own.
    Single,
    /// Taken before a change; its post snapshot names it in `pre_number`.
    Pre,
    /// Taken after a change; `pre_number` is its pre snapshot.
    Post,
}

/// Which cleanup rule may delete a snapshot (Snapper's cleanup algorithm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanupAlgorithm {
    /// Never deleted by cleanup, only by an explicit `local delete`.
    None,
    /// Thinned by `number_limit`.
    Number,
    /// Thinned by the hourly … yearly counts.
    Timeline,
}

/// What the cleanup policy needs to know about one local snapshot; the snapshot store builds
/// these from its metadata and from btrfs. Nothing here is read from disk.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LocalSnapshotInfo {
    /// The snapshot's number in its configuration (1, 2, 3 …); 0 is the current state of the
    /// subvolume, as in Snapper, and is never deleted. Numbers should be unique; a number that
    /// appears more than once is never deleted ([`LocalKeepReason::Duplicate`]).
    pub number: u32,
    /// When it was taken, in seconds since the Unix epoch (UTC).
    pub time: i64,
    /// Single, pre or post.
    pub kind: LocalKind,
    /// For a post snapshot, the number of its pre snapshot.
    pub pre_number: Option<u32>,
    /// The rule that may delete it.
    pub cleanup: CleanupAlgorithm,
    /// Bytes only this snapshot references (its btrfs qgroup's exclusive size), when quotas are
    /// enabled; what deleting it frees.
    pub exclusive_bytes: Option<u64>,
    /// Never delete: mounted, the default subvolume, the lower layer of a live session, or
    /// marked important by the user.
    pub protected: bool,
}

/// The filesystem holding the snapshots, as measured by the caller (`statvfs`, or btrfs's own
/// accounting): enables the space-aware part of the cleanup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceInfo {
    /// The filesystem's size in bytes.
    pub fs_size: u64,
    /// Its free bytes.
    pub fs_free: u64,
}

/// Why a snapshot is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteReason {
    /// A timeline snapshot that no timeline count keeps.
    Timeline,
    /// A number snapshot beyond `number_limit`.
    Number,
    /// Deleted to bring the free space up to `free_limit`.
    FreeSpace,
    /// Deleted to bring the snapshots' space down to `space_limit`.
    SpaceLimit,
}

/// One snapshot to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlannedDeletion {
    /// The snapshot's number.
    pub number: u32,
    /// Why.
    pub reason: DeleteReason,
}

/// One reason a snapshot is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalKeepReason {
    /// Number 0, the current state of the subvolume.
    Current,
    /// Its number appears more than once in the input, so deleting "it" would be ambiguous.
    Duplicate,
    /// Marked protected by the caller (mounted, default subvolume, live mode, important).
    Protected,
    /// Its cleanup algorithm is `none`.
    NoCleanup,
    /// The first snapshot of one of the youngest `hourly` hours.
    Hourly,
    /// The first snapshot of one of the youngest `daily` days.
    Daily,
    /// The first snapshot of one of the youngest `weekly` weeks.
    Weekly,
    /// The first snapshot of one of the youngest `monthly` months.
    Monthly,
    /// The first snapshot of one of the youngest `quarterly` quarters.
    Quarterly,
    /// The first snapshot of one of the youngest `yearly` years.
    Yearly,
    /// One of the newest `number_limit` number snapshots.
    Number,
    /// Younger than `min_age` (or, for a number snapshot, `number_min_age`).
    MinAge,
    /// Deletable itself, but its pre/post partner (this number) is kept, and a pair is only
    /// ever deleted together.
    Pair(u32),
}

/// One snapshot that stays, with every reason, in the order of [`LocalKeepReason`]'s variants.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeptSnapshot {
    /// The snapshot's number.
    pub number: u32,
    /// Never empty.
    pub reasons: Vec<LocalKeepReason>,
}

/// The space-aware part of a plan: what was measured, and the estimate after the plan.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpaceReport {
    /// As given in [`SpaceInfo`].
    pub fs_size: u64,
    /// As given in [`SpaceInfo`].
    pub fs_free: u64,
    /// The snapshots' total exclusive bytes (all but number 0) before the plan, if every size
    /// is known.
    pub snapshots_bytes: Option<u64>,
    /// The same total for the snapshots the plan keeps, if every one of their sizes is known
    /// (deleting the only snapshots of unknown size makes it known).
    pub snapshots_bytes_after: Option<u64>,
    /// The exclusive bytes of the planned deletions whose size is known: the estimated gain.
    pub freed_bytes: u64,
    /// Whether `fs_free + freed_bytes` reaches `free_limit` of `fs_size`; `None` when the check
    /// is off (`free_limit` 0, or a zero-sized filesystem).
    pub free_limit_met: Option<bool>,
    /// Whether `snapshots_bytes_after` is within `space_limit` of `fs_size`; `None` when the
    /// check is off (`space_limit` 1, a zero-sized filesystem) or a kept snapshot's size is
    /// unknown.
    pub space_limit_met: Option<bool>,
    /// The free space was still short when the plan reached a deletion of unknown size, so it
    /// stopped there: delete what is planned, wait until btrfs has freed the space
    /// (`btrfs subvolume sync`), measure again and plan again.
    pub remeasure: bool,
}

/// The outcome of [`plan_cleanup`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CleanupPlan {
    /// The snapshots to delete, in this order: first the ordinary cleanup, then the
    /// space-aware deletions; members of a pre/post pair are next to each other.
    pub delete: Vec<PlannedDeletion>,
    /// Every other input snapshot, by ascending number, with why it stays.
    pub keep: Vec<KeptSnapshot>,
    /// Present when [`SpaceInfo`] was given.
    pub space: Option<SpaceReport>,
}

impl CleanupPlan {
    /// The numbers to delete, in order.
    pub fn numbers(&self) -> Vec<u32> {
        self.delete.iter().map(|d| d.number).collect()
    }
}

/// Plans the cleanup of one configuration's snapshots. Pure: `now` is the current time in Unix
/// seconds, `space` the filesystem's measured size and free space (if known). The result does
/// not depend on the order of `snapshots`. `retention` should have passed
/// [`LocalRetention::validate`]; fractions outside 0..=1 are clamped.
///
/// **Never deleted**: number 0; a number given more than once; `protected` snapshots;
/// snapshots with cleanup `none`; timeline snapshots younger than `min_age` and number
/// snapshots younger than `min_age` or `number_min_age` (age = `now - time`, so a snapshot
/// from the future is young).
///
/// **Timeline** (cleanup `timeline`): for each of hour, day, week (Monday to Sunday), month,
/// quarter and year, the timeline snapshots are put into calendar buckets in UTC; of the
/// youngest `n` buckets that contain one, the *first* (oldest) snapshot of each is kept, `n`
/// being the upper bound of that count. One snapshot may be kept by several counts. Every
/// other timeline snapshot is deleted (reason `timeline`).
///
/// **Number** (cleanup `number`): the `number_limit` (upper bound) highest-numbered number
/// snapshots are kept, the rest deleted (reason `number`).
///
/// **Pairs**: a post snapshot and its pre (and any other snapshot naming the same pre) are
/// deleted together or not at all, so cleanup never leaves one without the other; a pair whose
/// partner is missing from the input is treated as a single snapshot.
///
/// **Space-aware**, only with `space`: after the ordinary cleanup, while the exclusive bytes of
/// the snapshots that stay exceed `space_limit` of the filesystem (only when every one of their
/// sizes is known, and `space_limit` < 1) or the free space is below `free_limit` (when
/// `free_limit` > 0), more
/// snapshots are deleted, lowest number first: number and timeline snapshots that the *lower*
/// bounds of the counts (`number_limit = "2-10"` → 2) do not keep, subject to the same
/// protections and pairing (reasons `space-limit`, checked first, and `free-space`). The
/// effect of a deletion is estimated by its exclusive size: deleting several snapshots may free
/// more than the sum (data shared only among them), and btrfs frees space in the background,
/// so the caller should measure again after deleting. When a deletion's size is unknown (no
/// quotas) and free space is still short, the plan stops after it with
/// [`SpaceReport::remeasure`] set: the caller deletes, measures again and calls again, one
/// pair or snapshot per round, as Snapper does.
///
/// Every input snapshot appears exactly once, in [`CleanupPlan::delete`] or
/// [`CleanupPlan::keep`]. Raising a count or an age never deletes more in the ordinary
/// cleanup; lowering `free_limit`, raising `space_limit` or having more free space never
/// deletes more in the space-aware one. Applying a plan and planning again with the same
/// `now` deletes nothing further unless space is still short.
///
/// ```
/// use snapguard_policy::{
///     plan_cleanup, CleanupAlgorithm, CountRange, LocalKind, LocalRetention, LocalSnapshotInfo,
/// };
///
/// // Timeline snapshots 1 to 30, one an hour, the newest taken an hour ago.
/// let now = 1_710_000_000;
/// let snaps: Vec<LocalSnapshotInfo> = (1..=30)
///     .map(|n| LocalSnapshotInfo {
///         number: n,
///         time: now - i64::from(31 - n) * 3600,
///         kind: LocalKind::Single,
///         pre_number: None,
///         cleanup: CleanupAlgorithm::Timeline,
///         exclusive_bytes: None,
///         protected: false,
///     })
///     .collect();
/// let hourly_only = LocalRetention {
///     hourly: CountRange::exactly(10),
///     daily: CountRange::exactly(0),
///     monthly: CountRange::exactly(0),
///     yearly: CountRange::exactly(0),
///     ..LocalRetention::default()
/// };
/// let plan = plan_cleanup(&snaps, &hourly_only, now, None);
/// assert_eq!(plan.numbers(), (1..=20).collect::<Vec<u32>>());
/// assert_eq!(plan.keep.len(), 10);
/// ```
pub fn plan_cleanup(
    snapshots: &[LocalSnapshotInfo],
    retention: &LocalRetention,
    now: i64,
    space: Option<SpaceInfo>,
) -> CleanupPlan {
    // A canonical order (by number, then by every field) makes the result independent of the
    // input order, duplicates included; "lowest number first" is the order of deletion.
    let mut snaps: Vec<&LocalSnapshotInfo> = snapshots.iter().collect();
    snaps.sort_by(|a, b| a.number.cmp(&b.number).then_with(|| a.cmp(b)));
    let n = snaps.len();

    let duplicate: Vec<bool> = (0..n)
        .map(|i| {
            (i > 0 && snaps[i - 1].number == snaps[i].number)
                || (i + 1 < n && snaps[i + 1].number == snaps[i].number)
        })
        .collect();
    // What keeps a snapshot whatever the counts.
    let fixed: Vec<Vec<LocalKeepReason>> = (0..n)
        .map(|i| {
            let s = snaps[i];
            let mut r = Vec::new();
            if s.number == 0 {
                r.push(LocalKeepReason::Current);
            }
            if duplicate[i] {
                r.push(LocalKeepReason::Duplicate);
            }
            if s.protected {
                r.push(LocalKeepReason::Protected);
            }
            if s.cleanup == CleanupAlgorithm::None {
                r.push(LocalKeepReason::NoCleanup);
            }
            r
        })
        .collect();
    let young: Vec<bool> = snaps.iter().map(|s| is_young(s, retention, now)).collect();
    let upper = count_reasons(&snaps, retention, CountRange::max);
    let lower_kept: Vec<bool> = count_reasons(&snaps, retention, CountRange::min)
        .iter()
        .map(|r| !r.is_empty())
        .collect();
    let deletable = |i: usize| fixed[i].is_empty() && !young[i];

    let groups = pair_groups(&snaps);
    let mut deleted: Vec<Option<DeleteReason>> = vec![None; n];
    let mut order: Vec<usize> = Vec::new();

    // The ordinary cleanup: whole groups none of whose members anything keeps.
    for group in &groups {
        if group.iter().all(|&i| deletable(i) && upper[i].is_empty()) {
            for &i in group {
                deleted[i] = Some(match snaps[i].cleanup {
                    CleanupAlgorithm::Number => DeleteReason::Number,
                    _ => DeleteReason::Timeline,
                });
                order.push(i);
            }
        }
    }

    let space_report = space.map(|space| {
        let candidates: Vec<&Vec<usize>> = groups
            .iter()
            .filter(|group| {
                group
                    .iter()
                    .all(|&i| deleted[i].is_none() && deletable(i) && !lower_kept[i])
            })
            .collect();
        let mut candidates = candidates.into_iter().peekable();
        let mut pass = SpacePass::new(&snaps, &deleted, retention, space);
        while let Some(reason) = pass.shortage() {
            if reason == DeleteReason::FreeSpace && pass.unknown_pending {
                // The free-space estimate cannot go on; whether more is needed is for a new
                // measurement. (The space limit is computed from the sizes of the snapshots that
                // stay, so a deletion of unknown size does not stop it.)
                pass.remeasure = candidates.peek().is_some();
                break;
            }
            let Some(group) = candidates.next() else {
                break;
            };
            for &i in group {
                deleted[i] = Some(reason);
                order.push(i);
                pass.account(snaps[i]);
            }
        }
        pass.report()
    });

    let keep = (0..n)
        .filter(|&i| deleted[i].is_none())
        .map(|i| {
            let mut reasons = fixed[i].clone();
            reasons.extend_from_slice(&upper[i]);
            if young[i] && snaps[i].cleanup != CleanupAlgorithm::None {
                reasons.push(LocalKeepReason::MinAge);
            }
            if reasons.is_empty() {
                reasons.push(LocalKeepReason::Pair(blocking_partner(
                    i, &groups, &snaps, &fixed, &young, &upper,
                )));
            }
            KeptSnapshot {
                number: snaps[i].number,
                reasons,
            }
        })
        .collect();
    let delete = order
        .into_iter()
        .filter_map(|i| {
            deleted[i].map(|reason| PlannedDeletion {
                number: snaps[i].number,
                reason,
            })
        })
        .collect();
    CleanupPlan {
        delete,
        keep,
        space: space_report,
    }
}

/// Younger than its minimum age: `min_age` for every snapshot, and also `number_min_age` for
/// number snapshots.
fn is_young(s: &LocalSnapshotInfo, r: &LocalRetention, now: i64) -> bool {
    let min_age = match s.cleanup {
        CleanupAlgorithm::Number => r.min_age.max(r.number_min_age),
        _ => r.min_age,
    };
    // i128: neither the difference of two i64 nor a u64 age can overflow it.
    i128::from(now) - i128::from(s.time) < i128::from(min_age)
}

const TIMELINE_REASONS: [LocalKeepReason; 6] = [
    LocalKeepReason::Hourly,
    LocalKeepReason::Daily,
    LocalKeepReason::Weekly,
    LocalKeepReason::Monthly,
    LocalKeepReason::Quarterly,
    LocalKeepReason::Yearly,
];

/// The timeline and number reasons of every snapshot, with each count's bound chosen by `pick`
/// (`CountRange::max` for the ordinary cleanup, `CountRange::min` for the space-aware one).
/// Number 0 is not a snapshot of either algorithm and takes no slot.
fn count_reasons(
    snaps: &[&LocalSnapshotInfo],
    r: &LocalRetention,
    pick: fn(CountRange) -> u32,
) -> Vec<Vec<LocalKeepReason>> {
    let mut reasons = vec![Vec::new(); snaps.len()];
    let of = |algorithm| {
        (0..snaps.len()).filter(move |&i| snaps[i].number != 0 && snaps[i].cleanup == algorithm)
    };
    let timeline: Vec<usize> = of(CleanupAlgorithm::Timeline).collect();
    for ((period, count), reason) in Period::ALL
        .into_iter()
        .zip(r.timeline())
        .zip(TIMELINE_REASONS)
    {
        let count = pick(count) as usize;
        if count == 0 {
            continue;
        }
        // The first snapshot of each bucket: earliest time, then lowest number, then the
        // canonical order (for duplicates).
        let mut first: BTreeMap<i64, usize> = BTreeMap::new();
        for &i in &timeline {
            let key = |j: usize| (snaps[j].time, j);
            first
                .entry(period.bucket(snaps[i].time))
                .and_modify(|j| {
                    if key(i) < key(*j) {
                        *j = i;
                    }
                })
                .or_insert(i);
        }
        for &i in first.values().rev().take(count) {
            reasons[i].push(reason);
        }
    }
    let number: Vec<usize> = of(CleanupAlgorithm::Number).collect();
    let count = pick(r.number_limit) as usize;
    for &i in number.iter().rev().take(count) {
        reasons[i].push(LocalKeepReason::Number);
    }
    reasons
}

/// The snapshots that must be deleted together, as lists of indices into `snaps` (ascending),
/// ordered by their highest member: each snapshot with the one its `pre_number` names, and all
/// snapshots sharing a number. Taken transitively, so that malformed links (two posts of one
/// pre, a post naming a post) only ever make groups larger, never split a pair.
fn pair_groups(snaps: &[&LocalSnapshotInfo]) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..snaps.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    fn union(parent: &mut [usize], a: usize, b: usize) {
        let (a, b) = (root(parent, a), root(parent, b));
        parent[a.max(b)] = a.min(b);
    }
    let mut by_number: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, s) in snaps.iter().enumerate() {
        match by_number.get(&s.number) {
            Some(&j) => union(&mut parent, i, j),
            None => {
                by_number.insert(s.number, i);
            }
        }
    }
    for (i, s) in snaps.iter().enumerate() {
        if let Some(&j) = s.pre_number.and_then(|p| by_number.get(&p)) {
            union(&mut parent, i, j);
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..snaps.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.sort_by_key(|g| g.last().copied());
    groups
}

/// The lowest-numbered member of `i`'s group that is kept for a reason of its own.
fn blocking_partner(
    i: usize,
    groups: &[Vec<usize>],
    snaps: &[&LocalSnapshotInfo],
    fixed: &[Vec<LocalKeepReason>],
    young: &[bool],
    upper: &[Vec<LocalKeepReason>],
) -> u32 {
    groups
        .iter()
        .find(|g| g.contains(&i))
        .and_then(|g| {
            g.iter()
                .find(|&&j| j != i && (!fixed[j].is_empty() || young[j] || !upper[j].is_empty()))
        })
        // A group is only kept when one of its members is kept for its own reasons, so the
        // fallback (the snapshot itself) cannot happen.
        .map_or(snaps[i].number, |&j| snaps[j].number)
}

/// The running estimate of the space-aware cleanup.
struct SpacePass {
    space: SpaceInfo,
    free_limit: f64,
    space_limit: f64,
    /// The snapshots' exclusive bytes before the plan, if all are known.
    snapshots_bytes: Option<u64>,
    /// Exclusive bytes of the snapshots not (yet) planned for deletion whose size is known, and
    /// how many of them have an unknown size.
    remaining_known: u64,
    remaining_unknown: usize,
    /// Exclusive bytes of the deletions planned so far whose size is known.
    freed: u64,
    /// A planned deletion has an unknown size, so the free-space estimate cannot go on.
    unknown_pending: bool,
    remeasure: bool,
}

impl SpacePass {
    fn new(
        snaps: &[&LocalSnapshotInfo],
        deleted: &[Option<DeleteReason>],
        r: &LocalRetention,
        space: SpaceInfo,
    ) -> Self {
        // Number 0 is the subvolume itself, not a snapshot using space.
        let counted = || snaps.iter().filter(|s| s.number != 0);
        let remaining_known = counted()
            .filter_map(|s| s.exclusive_bytes)
            .fold(0u64, u64::saturating_add);
        let remaining_unknown = counted().filter(|s| s.exclusive_bytes.is_none()).count();
        // A NaN limit turns its check off, like 0 and 1 do.
        let clamp = |v: f64, off: f64| if v.is_nan() { off } else { v.clamp(0.0, 1.0) };
        let mut pass = SpacePass {
            space,
            free_limit: clamp(r.free_limit, 0.0),
            space_limit: clamp(r.space_limit, 1.0),
            snapshots_bytes: (remaining_unknown == 0).then_some(remaining_known),
            remaining_known,
            remaining_unknown,
            freed: 0,
            unknown_pending: false,
            remeasure: false,
        };
        for (s, d) in snaps.iter().zip(deleted) {
            if d.is_some() {
                pass.account(s);
            }
        }
        pass
    }

    /// Counts the planned deletion of `s`.
    fn account(&mut self, s: &LocalSnapshotInfo) {
        if s.number == 0 {
            return;
        }
        match s.exclusive_bytes {
            Some(b) => {
                self.freed = self.freed.saturating_add(b);
                self.remaining_known = self.remaining_known.saturating_sub(b);
            }
            None => {
                self.unknown_pending = true;
                self.remaining_unknown = self.remaining_unknown.saturating_sub(1);
            }
        }
    }

    fn free_limit_met(&self) -> Option<bool> {
        if self.free_limit <= 0.0 || self.space.fs_size == 0 {
            return None;
        }
        let free = self.space.fs_free.saturating_add(self.freed) as f64;
        Some(free >= self.free_limit * self.space.fs_size as f64)
    }

    fn snapshots_bytes_after(&self) -> Option<u64> {
        (self.remaining_unknown == 0).then_some(self.remaining_known)
    }

    fn space_limit_met(&self) -> Option<bool> {
        if self.space_limit >= 1.0 || self.space.fs_size == 0 {
            return None;
        }
        let used = self.snapshots_bytes_after()? as f64;
        Some(used <= self.space_limit * self.space.fs_size as f64)
    }

    /// The reason for the next deletion, if space is short.
    fn shortage(&self) -> Option<DeleteReason> {
        if self.space_limit_met() == Some(false) {
            Some(DeleteReason::SpaceLimit)
        } else if self.free_limit_met() == Some(false) {
            Some(DeleteReason::FreeSpace)
        } else {
            None
        }
    }

    fn report(&self) -> SpaceReport {
        SpaceReport {
            fs_size: self.space.fs_size,
            fs_free: self.space.fs_free,
            snapshots_bytes: self.snapshots_bytes,
            snapshots_bytes_after: self.snapshots_bytes_after(),
            freed_bytes: self.freed,
            free_limit_met: self.free_limit_met(),
            space_limit_met: self.space_limit_met(),
            remeasure: self.remeasure,
        }
    }
}

impl fmt::Display for LocalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocalKind::Single => "single",
            LocalKind::Pre => "pre",
            LocalKind::Post => "post",
        })
    }
}

impl fmt::Display for CleanupAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupAlgorithm::None => "none",
            CleanupAlgorithm::Number => "number",
            CleanupAlgorithm::Timeline => "timeline",
        })
    }
}

impl FromStr for CleanupAlgorithm {
    type Err = String;

    /// `none`, `number` or `timeline`; the empty string is `none`, as in Snapper.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" | "" => Ok(CleanupAlgorithm::None),
            "number" => Ok(CleanupAlgorithm::Number),
            "timeline" => Ok(CleanupAlgorithm::Timeline),
            _ => Err(format!(
                "unknown cleanup algorithm {s:?}: use number, timeline or none"
            )),
        }
    }
}

impl fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeleteReason::Timeline => "timeline",
            DeleteReason::Number => "number",
            DeleteReason::FreeSpace => "free-space",
            DeleteReason::SpaceLimit => "space-limit",
        })
    }
}

impl fmt::Display for LocalKeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            LocalKeepReason::Current => "current",
            LocalKeepReason::Duplicate => "duplicate number",
            LocalKeepReason::Protected => "protected",
            LocalKeepReason::NoCleanup => "no cleanup",
            LocalKeepReason::Hourly => "hourly",
            LocalKeepReason::Daily => "daily",
            LocalKeepReason::Weekly => "weekly",
            LocalKeepReason::Monthly => "monthly",
            LocalKeepReason::Quarterly => "quarterly",
            LocalKeepReason::Yearly => "yearly",
            LocalKeepReason::Number => "number",
            LocalKeepReason::MinAge => "min-age",
            LocalKeepReason::Pair(n) => return write!(f, "pair of {n}"),
        };
        f.write_str(s)
    }
}
