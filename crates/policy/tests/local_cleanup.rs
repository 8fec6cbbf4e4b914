//! Table tests of `plan_cleanup` on hand-built histories of local snapshots: the timeline counts
//! on hourly snapshots over two days and on dates around week, month, quarter and year
//! boundaries, number limits and their ranges, minimum ages, pre/post pairs, what is never
//! deleted, and the space-aware passes (free space, space limit, unknown sizes).
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use rstest::rstest;
use snapguard_policy::{
    plan_cleanup, CleanupAlgorithm, CleanupPlan, CountRange, DeleteReason, LocalKeepReason,
    LocalKind, LocalRetention, LocalSnapshotInfo, SpaceInfo,
};

use CleanupAlgorithm::{Number, Timeline};
use LocalKeepReason as K;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
const GIB: u64 = 1 << 30;

/// Seconds since the epoch of `y-m-d h:00:00` UTC.
fn ts(y: i32, m: u32, d: u32, h: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|date| date.and_hms_opt(h, 0, 0))
        .unwrap()
        .and_utc()
        .timestamp()
}

fn snap(number: u32, time: i64, cleanup: CleanupAlgorithm) -> LocalSnapshotInfo {
    LocalSnapshotInfo {
        number,
        time,
        kind: LocalKind::Single,
        pre_number: None,
        cleanup,
        exclusive_bytes: None,
        protected: false,
    }
}

fn c(n: u32) -> CountRange {
    CountRange::exactly(n)
}

/// Keeps nothing by count; the minimum ages are Snapper's 30 minutes.
fn nothing() -> LocalRetention {
    LocalRetention {
        hourly: c(0),
        daily: c(0),
        weekly: c(0),
        monthly: c(0),
        quarterly: c(0),
        yearly: c(0),
        number_limit: c(0),
        ..LocalRetention::default()
    }
}

fn kept(plan: &CleanupPlan) -> Vec<u32> {
    plan.keep.iter().map(|k| k.number).collect()
}

fn reasons(plan: &CleanupPlan, number: u32) -> Vec<LocalKeepReason> {
    plan.keep
        .iter()
        .find(|k| k.number == number)
        .map(|k| k.reasons.clone())
        .unwrap_or_else(|| panic!("{number} is not kept: {plan:?}"))
}

/// 48 timeline snapshots, one an hour from Monday 2024-03-04 00:00 UTC; number n at hour n-1,
/// so 1–24 are the first day and 25–48 the second.
fn two_days() -> Vec<LocalSnapshotInfo> {
    let start = ts(2024, 3, 4, 0);
    (1..=48)
        .map(|n| snap(n, start + i64::from(n - 1) * HOUR, Timeline))
        .collect()
}

#[test]
fn hourly_10_daily_7_over_two_days() {
    let snaps = two_days();
    let now = snaps[47].time + HOUR;
    let r = LocalRetention {
        hourly: c(10),
        daily: c(7),
        ..nothing()
    };
    let plan = plan_cleanup(&snaps, &r, now, None);
    let mut want: Vec<u32> = vec![1, 25];
    want.extend(39..=48);
    assert_eq!(kept(&plan), want);
    // Lowest number first, all by the timeline rule.
    let deleted: Vec<u32> = (2..=24).chain(26..=38).collect();
    assert_eq!(plan.numbers(), deleted);
    assert!(plan
        .delete
        .iter()
        .all(|d| d.reason == DeleteReason::Timeline));
    // The first snapshot of each day, not the last.
    assert_eq!(reasons(&plan, 1), [K::Daily]);
    assert_eq!(reasons(&plan, 25), [K::Daily]);
    assert_eq!(reasons(&plan, 39), [K::Hourly]);
    assert_eq!(reasons(&plan, 48), [K::Hourly]);
    assert_eq!(plan.space, None);
}

/// With Snapper's defaults the first snapshot also starts the month and the year, and one
/// snapshot carries all three reasons.
#[test]
fn two_days_with_snapper_defaults() {
    let snaps = two_days();
    let plan = plan_cleanup(
        &snaps,
        &LocalRetention::default(),
        snaps[47].time + HOUR,
        None,
    );
    let mut want: Vec<u32> = vec![1, 25];
    want.extend(39..=48);
    assert_eq!(kept(&plan), want);
    assert_eq!(reasons(&plan, 1), [K::Daily, K::Monthly, K::Yearly]);
}

/// The newest hour is counted even while it is still running, and a snapshot younger than
/// `min_age` is never deleted, whatever the counts say. `now` is ten minutes after 48, so 47 is
/// 70 minutes old and 46 130 minutes.
#[rstest]
#[case::no_min_age(0, vec![48])]
#[case::twenty_minutes(20 * 60, vec![48])]
#[case::two_hours(2 * HOUR, vec![47, 48])]
#[case::everything_young(2 * DAY, (1..=48).collect())]
fn min_age_protects(#[case] min_age: i64, #[case] want: Vec<u32>) {
    let snaps = two_days();
    let now = snaps[47].time + 10 * 60;
    let r = LocalRetention {
        hourly: c(1),
        min_age: min_age.unsigned_abs(),
        ..nothing()
    };
    let plan = plan_cleanup(&snaps, &r, now, None);
    assert_eq!(kept(&plan), want);
    let newest = if min_age > 10 * 60 {
        vec![K::Hourly, K::MinAge]
    } else {
        vec![K::Hourly]
    };
    assert_eq!(reasons(&plan, 48), newest);
    for k in plan.keep.iter().filter(|k| k.number != 48) {
        assert_eq!(k.reasons, [K::MinAge], "{k:?}");
    }
}

/// Dates around the boundaries: 2023-12-31 is a Sunday and 2024-01-01 a Monday, so they fall
/// in different weeks, quarters and years; 2024-03-31 (Sunday) and 2024-04-01 (Monday) in
/// different weeks, months and quarters.
fn boundaries() -> Vec<LocalSnapshotInfo> {
    [
        ts(2023, 11, 15, 12), // 1
        ts(2023, 12, 31, 23), // 2
        ts(2024, 1, 1, 0),    // 3
        ts(2024, 1, 3, 9),    // 4
        ts(2024, 2, 10, 9),   // 5 (a Saturday)
        ts(2024, 3, 31, 9),   // 6
        ts(2024, 4, 1, 9),    // 7
        ts(2024, 4, 2, 9),    // 8
    ]
    .into_iter()
    .zip(1..)
    .map(|(t, n)| snap(n, t, Timeline))
    .collect()
}

#[rstest]
#[case::weekly_2(LocalRetention { weekly: c(2), ..nothing() }, vec![6, 7])]
#[case::weekly_4(LocalRetention { weekly: c(4), ..nothing() }, vec![3, 5, 6, 7])]
#[case::weekly_5(LocalRetention { weekly: c(5), ..nothing() }, vec![2, 3, 5, 6, 7])]
#[case::monthly_3(LocalRetention { monthly: c(3), ..nothing() }, vec![5, 6, 7])]
#[case::monthly_9(LocalRetention { monthly: c(9), ..nothing() }, vec![1, 2, 3, 5, 6, 7])]
#[case::quarterly_2(LocalRetention { quarterly: c(2), ..nothing() }, vec![3, 7])]
#[case::quarterly_3(LocalRetention { quarterly: c(3), ..nothing() }, vec![1, 3, 7])]
#[case::yearly_1(LocalRetention { yearly: c(1), ..nothing() }, vec![3])]
#[case::yearly_2(LocalRetention { yearly: c(2), ..nothing() }, vec![1, 3])]
#[case::daily_3(LocalRetention { daily: c(3), ..nothing() }, vec![6, 7, 8])]
#[case::mixed(
    LocalRetention { daily: c(1), weekly: c(1), monthly: c(2), yearly: c(1), ..nothing() },
    vec![3, 6, 7, 8]
)]
#[case::nothing(nothing(), vec![])]
fn calendar_buckets(#[case] r: LocalRetention, #[case] want: Vec<u32>) {
    let plan = plan_cleanup(&boundaries(), &r, ts(2024, 4, 3, 0), None);
    assert_eq!(kept(&plan), want);
    assert_eq!(plan.keep.len() + plan.delete.len(), 8);
}

#[test]
fn one_snapshot_many_reasons() {
    let r = LocalRetention {
        daily: c(1),
        weekly: c(1),
        monthly: c(2),
        yearly: c(1),
        ..nothing()
    };
    let plan = plan_cleanup(&boundaries(), &r, ts(2024, 4, 3, 0), None);
    assert_eq!(reasons(&plan, 3), [K::Yearly]);
    assert_eq!(reasons(&plan, 6), [K::Monthly]);
    assert_eq!(reasons(&plan, 7), [K::Weekly, K::Monthly]);
    assert_eq!(reasons(&plan, 8), [K::Daily]);
}

/// 60 number snapshots a day apart: the newest `number_limit` stay, the oldest go first.
#[rstest]
#[case(c(50), (11..=60).collect())]
#[case(c(0), vec![])]
#[case(c(100), (1..=60).collect())]
#[case::range_without_space(CountRange::new(2, 10).unwrap(), (51..=60).collect())]
fn number_limit(#[case] limit: CountRange, #[case] want: Vec<u32>) {
    let snaps: Vec<_> = (1..=60)
        .map(|n| snap(n, ts(2024, 1, 1, 0) + i64::from(n) * DAY, Number))
        .collect();
    let r = LocalRetention {
        number_limit: limit,
        ..nothing()
    };
    let plan = plan_cleanup(&snaps, &r, ts(2024, 6, 1, 0), None);
    assert_eq!(kept(&plan), want);
    let deleted: Vec<u32> = (1..=60).filter(|n| !want.contains(n)).collect();
    assert_eq!(plan.numbers(), deleted);
    assert!(plan.delete.iter().all(|d| d.reason == DeleteReason::Number));
}

/// `number_min_age` holds number snapshots only; `min_age` holds both kinds.
#[test]
fn number_min_age_applies_to_number_snapshots() {
    let now = ts(2024, 1, 2, 0);
    let snaps = [
        snap(1, now - 3 * HOUR, Number),
        snap(2, now - 3 * HOUR, Timeline),
    ];
    let r = LocalRetention {
        number_min_age: 4 * HOUR as u64,
        min_age: 0,
        ..nothing()
    };
    let plan = plan_cleanup(&snaps, &r, now, None);
    assert_eq!(kept(&plan), [1]);
    assert_eq!(reasons(&plan, 1), [K::MinAge]);
    assert_eq!(plan.numbers(), [2]);
    let r = LocalRetention {
        number_min_age: 0,
        min_age: 4 * HOUR as u64,
        ..nothing()
    };
    assert_eq!(kept(&plan_cleanup(&snaps, &r, now, None)), [1, 2]);
}

/// A snapshot from the future (a clock that was ahead) is young, not ancient.
#[test]
fn future_snapshots_are_young() {
    let now = ts(2024, 1, 1, 0);
    let snaps = [snap(1, now + 365 * DAY, Number), snap(2, i64::MIN, Number)];
    let plan = plan_cleanup(&snaps, &nothing(), now, None);
    assert_eq!(kept(&plan), [1]);
    assert_eq!(plan.numbers(), [2]);
}

fn pair(pre: u32, post: u32, time: i64, cleanup: CleanupAlgorithm) -> [LocalSnapshotInfo; 2] {
    let mut a = snap(pre, time, cleanup);
    a.kind = LocalKind::Pre;
    let mut b = snap(post, time + 60, cleanup);
    b.kind = LocalKind::Post;
    b.pre_number = Some(pre);
    [a, b]
}

/// apt-style pre/post pairs with cleanup `number`: a pair goes or stays as a whole.
#[test]
fn pairs_are_deleted_together() {
    let t = ts(2024, 1, 1, 0);
    let mut snaps = Vec::new();
    snaps.extend(pair(1, 2, t, Number));
    snaps.extend(pair(3, 4, t + DAY, Number));
    snaps.push(snap(5, t + 2 * DAY, Number));
    let now = t + 10 * DAY;
    // Keep 2: 5 and 4. 4's pre (3) is deletable by count but stays with 4.
    let r = LocalRetention {
        number_limit: c(2),
        ..nothing()
    };
    let plan = plan_cleanup(&snaps, &r, now, None);
    assert_eq!(plan.numbers(), [1, 2]);
    assert_eq!(kept(&plan), [3, 4, 5]);
    assert_eq!(reasons(&plan, 3), [K::Pair(4)]);
    assert_eq!(reasons(&plan, 4), [K::Number]);

    // A post whose pre is protected stays too; a pre whose post is missing goes alone.
    snaps[0].protected = true;
    snaps[3].number = 40;
    snaps[3].pre_number = Some(30); // no longer names 3
    let plan = plan_cleanup(&snaps, &r, now, None);
    assert_eq!(reasons(&plan, 1), [K::Protected]);
    assert_eq!(reasons(&plan, 2), [K::Pair(1)]);
    assert_eq!(plan.numbers(), [3]);
}

/// Two posts naming one pre (a post taken twice) form one group: none goes while one stays.
#[test]
fn two_posts_of_one_pre() {
    let t = ts(2024, 1, 1, 0);
    let mut snaps: Vec<_> = pair(1, 2, t, Number).into();
    let mut extra = snaps[1].clone();
    extra.number = 3;
    snaps.push(extra);
    let r = LocalRetention {
        number_limit: c(1),
        ..nothing()
    };
    let plan = plan_cleanup(&snaps, &r, t + DAY, None);
    assert_eq!(kept(&plan), [1, 2, 3]);
    assert_eq!(reasons(&plan, 1), [K::Pair(3)]);
    let plan = plan_cleanup(&snaps, &nothing(), t + DAY, None);
    assert_eq!(plan.numbers(), [1, 2, 3]);
}

/// Number 0, protected snapshots, cleanup `none` and duplicated numbers are never deleted,
/// and do not use up a count.
#[test]
fn never_deleted() {
    let t = ts(2024, 1, 1, 0);
    let mut current = snap(0, t, Number);
    current.exclusive_bytes = Some(GIB);
    let mut protected = snap(1, t, Number);
    protected.protected = true;
    let manual = snap(2, t, CleanupAlgorithm::None);
    let dup_a = snap(3, t, Number);
    let dup_b = snap(3, t + 1, Number);
    let plain = snap(4, t, Number);
    let newest = snap(5, t + 1, Number);
    let snaps = [current, protected, manual, dup_a, dup_b, plain, newest];
    let r = LocalRetention {
        number_limit: c(1),
        ..nothing()
    };
    let plan = plan_cleanup(&snaps, &r, t + 30 * DAY, None);
    assert_eq!(plan.numbers(), [4]);
    assert_eq!(reasons(&plan, 0), [K::Current]);
    assert_eq!(reasons(&plan, 1), [K::Protected]);
    assert_eq!(reasons(&plan, 2), [K::NoCleanup]);
    assert_eq!(reasons(&plan, 3), [K::Duplicate]);
    assert_eq!(reasons(&plan, 5), [K::Number]);
    assert_eq!(plan.keep.iter().filter(|k| k.number == 3).count(), 2);
}

/// Ten number snapshots of 1 GiB each on a 100 GiB filesystem, `number_limit = "2-10"`.
fn sized(sizes: &[Option<u64>]) -> Vec<LocalSnapshotInfo> {
    sizes
        .iter()
        .zip(1..)
        .map(|(&bytes, n)| {
            let mut s = snap(n, ts(2024, 1, 1, 0) + i64::from(n) * DAY, Number);
            s.exclusive_bytes = bytes;
            s
        })
        .collect()
}

fn space_retention(free_limit: f64, space_limit: f64) -> LocalRetention {
    LocalRetention {
        number_limit: CountRange::new(2, 10).unwrap(),
        free_limit,
        space_limit,
        ..nothing()
    }
}

#[rstest]
// 19 GiB free of 100 and 20 % wanted: the oldest snapshot goes.
#[case::free_one(0.2, 1.0, 19, vec![1], Some(true), None)]
// 15 GiB free: five go, oldest first.
#[case::free_five(0.2, 1.0, 15, vec![1, 2, 3, 4, 5], Some(true), None)]
// Enough free space: nothing beyond the ordinary cleanup.
#[case::free_enough(0.2, 1.0, 20, vec![], Some(true), None)]
// Never below the lower bound 2, even when that is not enough.
#[case::free_exhausted(0.5, 1.0, 10, (1..=8).collect(), Some(false), None)]
// free_limit 0 turns the check off.
#[case::free_off(0.0, 1.0, 0, vec![], None, None)]
// The ten snapshots use 10 GiB; at most 7 % of 100 GiB: three go.
#[case::space_limit(0.0, 0.07, 50, vec![1, 2, 3], None, Some(true))]
fn space_aware(
    #[case] free_limit: f64,
    #[case] space_limit: f64,
    #[case] free_gib: u64,
    #[case] want: Vec<u32>,
    #[case] free_met: Option<bool>,
    #[case] space_met: Option<bool>,
) {
    let snaps = sized(&[Some(GIB); 10]);
    let space = SpaceInfo {
        fs_size: 100 * GIB,
        fs_free: free_gib * GIB,
    };
    let plan = plan_cleanup(
        &snaps,
        &space_retention(free_limit, space_limit),
        ts(2025, 1, 1, 0),
        Some(space),
    );
    assert_eq!(plan.numbers(), want);
    let reason = if space_limit < 1.0 {
        DeleteReason::SpaceLimit
    } else {
        DeleteReason::FreeSpace
    };
    assert!(plan.delete.iter().all(|d| d.reason == reason), "{plan:?}");
    let report = plan.space.unwrap();
    assert_eq!(report.snapshots_bytes, Some(10 * GIB));
    assert_eq!(report.freed_bytes, want.len() as u64 * GIB);
    assert_eq!(report.free_limit_met, free_met);
    assert_eq!(report.space_limit_met, space_met);
    assert!(!report.remeasure);
}

/// The ordinary cleanup's deletions count towards the free space before the space-aware pass
/// adds any, and the deletions come in that order.
#[test]
fn ordinary_deletions_count_first() {
    let snaps = sized(&[Some(3 * GIB), Some(GIB), Some(GIB), Some(GIB)]);
    let r = LocalRetention {
        number_limit: CountRange::new(1, 3).unwrap(),
        ..space_retention(0.2, 1.0)
    };
    let space = SpaceInfo {
        fs_size: 100 * GIB,
        fs_free: 16 * GIB,
    };
    let plan = plan_cleanup(&snaps, &r, ts(2025, 1, 1, 0), Some(space));
    let got: Vec<(u32, DeleteReason)> = plan.delete.iter().map(|d| (d.number, d.reason)).collect();
    assert_eq!(
        got,
        [(1, DeleteReason::Number), (2, DeleteReason::FreeSpace)]
    );
    assert_eq!(plan.space.unwrap().freed_bytes, 4 * GIB);
}

/// Without quotas the sizes are unknown: the plan deletes one snapshot (or pair) and asks the
/// caller to measure again; the space limit is not checked at all.
#[test]
fn unknown_sizes_remeasure() {
    let snaps = sized(&[None; 10]);
    let space = SpaceInfo {
        fs_size: 100 * GIB,
        fs_free: 5 * GIB,
    };
    let plan = plan_cleanup(
        &snaps,
        &space_retention(0.2, 0.0),
        ts(2025, 1, 1, 0),
        Some(space),
    );
    assert_eq!(plan.numbers(), [1]);
    assert_eq!(plan.delete[0].reason, DeleteReason::FreeSpace);
    let report = plan.space.unwrap();
    assert!(report.remeasure);
    assert_eq!(report.snapshots_bytes, None);
    assert_eq!(report.space_limit_met, None);
    assert_eq!(report.free_limit_met, Some(false));

    // Next round, after deleting 1 and measuring 21 GiB free: done.
    let rest = &snaps[1..];
    let space = SpaceInfo {
        fs_size: 100 * GIB,
        fs_free: 21 * GIB,
    };
    let plan = plan_cleanup(
        rest,
        &space_retention(0.2, 0.0),
        ts(2025, 1, 1, 0),
        Some(space),
    );
    assert!(plan.delete.is_empty());
    assert!(!plan.space.unwrap().remeasure);
}

/// The space limit counts the snapshots that stay: once the only snapshot of unknown size is
/// planned for deletion, the rest are known and the limit applies; the free-space estimate,
/// which would need that size, asks for a new measurement instead.
#[rstest]
#[case::space_only(0.0, None, false)]
#[case::free_short_too(0.5, Some(false), true)]
fn space_limit_counts_what_stays(
    #[case] free_limit: f64,
    #[case] free_met: Option<bool>,
    #[case] remeasure: bool,
) {
    let snaps = sized(&[None, Some(GIB), Some(GIB), Some(GIB)]);
    let r = LocalRetention {
        number_limit: CountRange::new(1, 3).unwrap(),
        ..space_retention(free_limit, 0.02)
    };
    let space = SpaceInfo {
        fs_size: 100 * GIB,
        fs_free: 10 * GIB,
    };
    let plan = plan_cleanup(&snaps, &r, ts(2025, 1, 1, 0), Some(space));
    let got: Vec<(u32, DeleteReason)> = plan.delete.iter().map(|d| (d.number, d.reason)).collect();
    assert_eq!(
        got,
        [(1, DeleteReason::Number), (2, DeleteReason::SpaceLimit)]
    );
    let report = plan.space.unwrap();
    assert_eq!(report.snapshots_bytes, None);
    assert_eq!(report.snapshots_bytes_after, Some(2 * GIB));
    assert_eq!(report.space_limit_met, Some(true));
    assert_eq!(report.free_limit_met, free_met);
    assert_eq!(report.remeasure, remeasure);
}

/// The space-aware pass takes pairs whole, ordered by their younger member, and skips what
/// the lower bounds, protection and minimum age keep.
#[test]
fn space_pass_respects_pairs_and_protection() {
    let t = ts(2024, 1, 1, 0);
    let mut snaps: Vec<LocalSnapshotInfo> = Vec::new();
    let [mut pre, post] = pair(1, 4, t, Number);
    pre.exclusive_bytes = Some(GIB);
    let mut post = post;
    post.exclusive_bytes = Some(GIB);
    post.time = t + 3 * DAY;
    snaps.extend([pre, post]);
    let mut s2 = snap(2, t + DAY, Number);
    s2.exclusive_bytes = Some(GIB);
    s2.protected = true;
    let mut s3 = snap(3, t + 2 * DAY, Timeline);
    s3.exclusive_bytes = Some(GIB);
    snaps.extend([s2, s3]);
    for n in 5..=8 {
        let mut s = snap(n, t + i64::from(n) * DAY, Number);
        s.exclusive_bytes = Some(GIB);
        snaps.push(s);
    }
    let mut young = snap(9, t + 20 * DAY, Number);
    young.exclusive_bytes = Some(GIB);
    snaps.push(young);
    let r = LocalRetention {
        number_limit: CountRange::new(2, 10).unwrap(),
        daily: CountRange::new(0, 5).unwrap(),
        free_limit: 0.5,
        space_limit: 1.0,
        ..nothing()
    };
    let space = SpaceInfo {
        fs_size: 100 * GIB,
        fs_free: 0,
    };
    let now = t + 20 * DAY + 60;
    let plan = plan_cleanup(&snaps, &r, now, Some(space));
    // 2 is protected, 9 is young and with 8 within the lower bound 2 of number_limit; the
    // timeline snapshot 3 goes down to daily 0.
    assert_eq!(plan.numbers(), [3, 1, 4, 5, 6, 7]);
    assert_eq!(kept(&plan), [2, 8, 9]);
    assert_eq!(reasons(&plan, 8), [K::Number]);
    assert_eq!(reasons(&plan, 9), [K::Number, K::MinAge]);
    assert_eq!(plan.space.unwrap().free_limit_met, Some(false));
}

/// Input order does not matter, duplicates included.
#[test]
fn order_independent() {
    let mut snaps = two_days();
    snaps.push(snap(7, 0, Number));
    let r = LocalRetention {
        hourly: c(5),
        daily: c(2),
        ..nothing()
    };
    let now = snaps[47].time + HOUR;
    let plan = plan_cleanup(&snaps, &r, now, None);
    snaps.reverse();
    assert_eq!(plan_cleanup(&snaps, &r, now, None), plan);
}

/// What `--json` shows.
#[test]
fn reasons_display() {
    assert_eq!(DeleteReason::FreeSpace.to_string(), "free-space");
    assert_eq!(DeleteReason::SpaceLimit.to_string(), "space-limit");
    assert_eq!(K::Pair(12).to_string(), "pair of 12");
    assert_eq!(K::MinAge.to_string(), "min-age");
    assert_eq!("timeline".parse(), Ok(Timeline));
    assert_eq!("".parse(), Ok(CleanupAlgorithm::None));
    assert!("Timeline".parse::<CleanupAlgorithm>().is_err());
}
