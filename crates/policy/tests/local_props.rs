//! Property tests of `plan_cleanup` on random histories of local snapshots (numbers with gaps
//! and the odd duplicate, times spread over years, clustered or in the future, pre/post pairs
//! with missing or doubled partners, all three cleanup algorithms, known and unknown sizes,
//! protected snapshots), random retention ranges, clocks and filesystem sizes.
//!
//! Checked: every input is decided exactly once and every kept snapshot has a reason; what
//! must never be deleted is not; pairs go together; the plan does not depend on input order;
//! planning again after applying a plan deletes nothing more when space is fine; raising a
//! count or an age never deletes more, and neither does a looser space condition; the lower
//! bound of `number_limit` survives any space pressure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use snapguard_policy::{
    plan_cleanup, CleanupAlgorithm, CleanupPlan, CountRange, DeleteReason, LocalKind,
    LocalRetention, LocalSnapshotInfo, SpaceInfo,
};

/// 2023-01-01 00:00 UTC.
const BASE: i64 = 1_672_531_200;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// "now" is this, plus up to two days.
const NOW: i64 = BASE + 3 * 365 * DAY;
const GIB: u64 = 1 << 30;

fn snapshot(number: u32, numbers: Vec<u32>) -> impl Strategy<Value = LocalSnapshotInfo> {
    let time = prop_oneof![
        // Spread over three years, clustered in two days near now, or in the future.
        BASE..NOW,
        NOW - 2 * DAY..NOW + 2 * DAY,
        Just(NOW - 5 * DAY),
    ];
    let kind = prop::sample::select(vec![LocalKind::Single, LocalKind::Pre, LocalKind::Post]);
    // A post names a snapshot of the history, or a missing one (200).
    let mut partners = numbers;
    partners.push(200);
    let pre = prop::sample::select(partners);
    let cleanup = prop::sample::select(vec![
        CleanupAlgorithm::None,
        CleanupAlgorithm::Number,
        CleanupAlgorithm::Number,
        CleanupAlgorithm::Timeline,
        CleanupAlgorithm::Timeline,
        CleanupAlgorithm::Timeline,
    ]);
    let bytes = prop::option::weighted(0.8, 0..4 * GIB);
    let protected = prop::bool::weighted(0.1);
    (time, kind, pre, cleanup, bytes, protected).prop_map(
        move |(time, kind, pre, cleanup, exclusive_bytes, protected)| LocalSnapshotInfo {
            number,
            time,
            kind,
            pre_number: (kind == LocalKind::Post).then_some(pre),
            cleanup,
            exclusive_bytes,
            protected,
        },
    )
}

/// Distinct numbers from 0..80, and with probability 0.1 one of them twice.
fn history() -> impl Strategy<Value = Vec<LocalSnapshotInfo>> {
    let numbers = (0usize..40)
        .prop_flat_map(|n| prop::sample::subsequence((0u32..80).collect::<Vec<_>>(), n));
    (numbers, prop::bool::weighted(0.1)).prop_flat_map(|(numbers, dup)| {
        let mut list = numbers.clone();
        if dup {
            if let Some(&first) = numbers.first() {
                list.push(first);
            }
        }
        list.into_iter()
            .map(|n| snapshot(n, numbers.clone()))
            .collect::<Vec<_>>()
    })
}

fn range() -> impl Strategy<Value = CountRange> {
    (0u32..12, 0u32..12).prop_map(|(a, b)| CountRange::new(a.min(b), a.max(b)).unwrap())
}

fn retention() -> impl Strategy<Value = LocalRetention> {
    let counts = (
        range(),
        range(),
        range(),
        range(),
        range(),
        range(),
        range(),
    );
    let ages = (0u64..3 * DAY as u64, 0u64..3 * DAY as u64);
    let fractions = (
        prop_oneof![Just(0.0), 0.0..=1.0],
        prop_oneof![Just(1.0), 0.0..=1.0],
    );
    (counts, ages, fractions).prop_map(
        |((hourly, daily, weekly, monthly, quarterly, yearly, number_limit), (a, b), (f, s))| {
            LocalRetention {
                hourly,
                daily,
                weekly,
                monthly,
                quarterly,
                yearly,
                min_age: a,
                number_limit,
                number_min_age: b,
                free_limit: f,
                space_limit: s,
            }
        },
    )
}

fn space() -> impl Strategy<Value = Option<SpaceInfo>> {
    prop::option::weighted(
        0.7,
        (1..200 * GIB).prop_flat_map(|size| {
            (Just(size), 0..=size).prop_map(|(fs_size, fs_free)| SpaceInfo { fs_size, fs_free })
        }),
    )
}

fn now() -> impl Strategy<Value = i64> {
    NOW..NOW + 2 * DAY
}

fn deleted(plan: &CleanupPlan) -> BTreeSet<u32> {
    plan.delete.iter().map(|d| d.number).collect()
}

fn count(list: impl IntoIterator<Item = u32>) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    for n in list {
        *m.entry(n).or_default() += 1;
    }
    m
}

fn without(snaps: &[LocalSnapshotInfo], gone: &BTreeSet<u32>) -> Vec<LocalSnapshotInfo> {
    snaps
        .iter()
        .filter(|s| !gone.contains(&s.number))
        .cloned()
        .collect()
}

/// One of the counts or ages, raised by `by`.
fn raise(r: &LocalRetention, which: usize, by: u32) -> LocalRetention {
    let mut r = r.clone();
    let up = |c: CountRange| CountRange::new(c.min(), c.max() + by).unwrap();
    match which {
        0 => r.hourly = up(r.hourly),
        1 => r.daily = up(r.daily),
        2 => r.weekly = up(r.weekly),
        3 => r.monthly = up(r.monthly),
        4 => r.quarterly = up(r.quarterly),
        5 => r.yearly = up(r.yearly),
        6 => r.number_limit = up(r.number_limit),
        7 => r.min_age += u64::from(by) * 3600,
        _ => r.number_min_age += u64::from(by) * 3600,
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_snapshot_decided_once(snaps in history(), r in retention(), now in now(), space in space()) {
        let plan = plan_cleanup(&snaps, &r, now, space);
        let decided = plan.delete.iter().map(|d| d.number).chain(plan.keep.iter().map(|k| k.number));
        prop_assert_eq!(count(decided), count(snaps.iter().map(|s| s.number)));
        prop_assert_eq!(deleted(&plan).len(), plan.delete.len());
        for k in &plan.keep {
            prop_assert!(!k.reasons.is_empty(), "{:?}", k);
        }
        let kept: Vec<u32> = plan.keep.iter().map(|k| k.number).collect();
        prop_assert!(kept.windows(2).all(|w| w[0] <= w[1]), "keep is not sorted: {:?}", kept);
        prop_assert_eq!(plan.space.is_some(), space.is_some());
        if space.is_none() {
            prop_assert!(plan.delete.iter().all(|d| matches!(d.reason, DeleteReason::Number | DeleteReason::Timeline)));
        }
    }

    #[test]
    fn never_deletes_what_must_stay(snaps in history(), r in retention(), now in now(), space in space()) {
        let plan = plan_cleanup(&snaps, &r, now, space);
        let gone = deleted(&plan);
        let numbers = count(snaps.iter().map(|s| s.number));
        for s in &snaps {
            if !gone.contains(&s.number) {
                continue;
            }
            prop_assert!(s.number != 0 && !s.protected && numbers[&s.number] == 1, "{:?}", s);
            prop_assert!(s.cleanup != CleanupAlgorithm::None, "{:?}", s);
            let min_age = match s.cleanup {
                CleanupAlgorithm::Number => r.min_age.max(r.number_min_age),
                _ => r.min_age,
            };
            prop_assert!(i128::from(now) - i128::from(s.time) >= i128::from(min_age), "young {:?}", s);
            let reason = plan.delete.iter().find(|d| d.number == s.number).unwrap().reason;
            match reason {
                DeleteReason::Number => prop_assert_eq!(s.cleanup, CleanupAlgorithm::Number),
                DeleteReason::Timeline => prop_assert_eq!(s.cleanup, CleanupAlgorithm::Timeline),
                DeleteReason::FreeSpace | DeleteReason::SpaceLimit => {}
            }
        }
    }

    #[test]
    fn pairs_go_together(snaps in history(), r in retention(), now in now(), space in space()) {
        let plan = plan_cleanup(&snaps, &r, now, space);
        let gone = deleted(&plan);
        let present: BTreeSet<u32> = snaps.iter().map(|s| s.number).collect();
        for s in &snaps {
            if let Some(pre) = s.pre_number.filter(|p| present.contains(p)) {
                prop_assert_eq!(gone.contains(&s.number), gone.contains(&pre), "{:?}", s);
            }
        }
        // A well-formed pair (a pre named by exactly one post, each number once) is deleted
        // as two neighbours.
        let order: Vec<u32> = plan.delete.iter().map(|d| d.number).collect();
        let numbers = count(snaps.iter().map(|s| s.number));
        for post in &snaps {
            let Some(pre) = post.pre_number else { continue };
            let well_formed = numbers.get(&pre) == Some(&1)
                && numbers[&post.number] == 1
                && snaps.iter().filter(|o| o.pre_number == Some(pre) || o.pre_number == Some(post.number)).count() == 1
                && snaps.iter().all(|o| o.number != pre || o.pre_number.is_none());
            let at = |n: u32| order.iter().position(|&x| x == n);
            if let (true, Some(a), Some(b)) = (well_formed, at(pre), at(post.number)) {
                prop_assert_eq!(a.abs_diff(b), 1, "{:?} and its pre in {:?}", post, order);
            }
        }
    }

    #[test]
    fn input_order_does_not_matter(
        (snaps, shuffled) in history().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        r in retention(), now in now(), space in space(),
    ) {
        prop_assert_eq!(plan_cleanup(&snaps, &r, now, space), plan_cleanup(&shuffled, &r, now, space));
    }

    #[test]
    fn planning_again_deletes_nothing_more(snaps in history(), r in retention(), now in now(), space in space()) {
        let plan = plan_cleanup(&snaps, &r, now, space);
        let rest = without(&snaps, &deleted(&plan));
        let again = plan_cleanup(&rest, &r, now, None);
        prop_assert!(again.delete.is_empty(), "{:?}\nthen {:?}", plan, again);
        // With the space the plan estimated, a satisfied space condition stays satisfied.
        if let (Some(space), Some(report)) = (space, plan.space) {
            if report.free_limit_met != Some(false) && report.space_limit_met != Some(false) && !report.remeasure {
                let after = SpaceInfo { fs_free: space.fs_free.saturating_add(report.freed_bytes), ..space };
                let again = plan_cleanup(&rest, &r, now, Some(after));
                prop_assert!(again.delete.is_empty(), "{:?}\nthen {:?}", plan, again);
            }
        }
    }

    #[test]
    fn raising_a_count_or_age_never_deletes_more(
        snaps in history(), r in retention(), now in now(), which in 0usize..9, by in 1u32..5,
    ) {
        let before = deleted(&plan_cleanup(&snaps, &r, now, None));
        let after = deleted(&plan_cleanup(&snaps, &raise(&r, which, by), now, None));
        prop_assert!(after.is_subset(&before), "{:?} ⊄ {:?}", after, before);
    }

    #[test]
    fn looser_space_never_deletes_more(
        snaps in history(), r in retention(), now in now(), space in space(),
        less_free in 0.0..=1.0f64, more_space in 0.0..=1.0f64, extra in 0..50 * GIB,
    ) {
        let Some(space) = space else { return Ok(()) };
        let before = deleted(&plan_cleanup(&snaps, &r, now, Some(space)));
        let loose = LocalRetention {
            free_limit: r.free_limit * less_free,
            space_limit: r.space_limit + (1.0 - r.space_limit) * more_space,
            ..r.clone()
        };
        let roomier = SpaceInfo { fs_free: (space.fs_free + extra).min(space.fs_size), ..space };
        let after = deleted(&plan_cleanup(&snaps, &loose, now, Some(roomier)));
        prop_assert!(after.is_subset(&before), "{:?} ⊄ {:?}", after, before);
    }

    #[test]
    fn lower_number_bound_survives_any_pressure(snaps in history(), r in retention(), now in now()) {
        let r = LocalRetention { free_limit: 1.0, space_limit: 0.0, ..r };
        let space = SpaceInfo { fs_size: 100 * GIB, fs_free: 0 };
        let plan = plan_cleanup(&snaps, &r, now, Some(space));
        let gone = deleted(&plan);
        let numbered = snaps.iter().filter(|s| s.number != 0 && s.cleanup == CleanupAlgorithm::Number);
        let total = numbered.clone().count();
        let left = numbered.filter(|s| !gone.contains(&s.number)).count();
        prop_assert!(left >= total.min(r.number_limit.min() as usize), "{} of {} left", left, total);
    }
}
