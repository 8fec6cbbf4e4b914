//! Property tests of `apply` on random snapshot sets (two hosts, a few paths and tags, clustered
//! and tied times, random locks), random non-empty policies, groupings, clocks and UTC offsets:
//! keep-last picks exactly the newest of each group, every input gets exactly one decision,
//! adding or widening a rule never drops a kept snapshot, a large keep-last keeps everything,
//! and the result does not depend on the input order.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use snapguard_policy::{apply, Decision, GroupBy, KeepReason, RetentionPolicy, SnapshotInfo};

/// 2023-01-01 00:00 UTC.
const BASE: i64 = 1_672_531_200;
const DAY: i64 = 86_400;

fn snapshot(i: usize) -> impl Strategy<Value = SnapshotInfo> {
    let time = prop_oneof![
        // Spread over three years, clustered within a few days, or exactly tied.
        BASE..BASE + 3 * 365 * DAY,
        BASE + 400 * DAY..BASE + 403 * DAY,
        Just(BASE + 500 * DAY),
    ];
    let nanos = prop_oneof![Just(0u32), 0u32..1_000_000_000];
    let host = prop::sample::select(vec!["alpha", "beta"]);
    let paths = prop::sample::subsequence(vec!["/etc", "/home", "/srv"], 0..=3);
    let tags = prop::sample::subsequence(vec!["cron", "keep", "manual"], 0..=3);
    let lock = prop::option::weighted(0.2, BASE..BASE + 4 * 365 * DAY);
    (time, nanos, host, paths, tags, lock).prop_map(move |(t, n, h, p, tg, lock)| SnapshotInfo {
        id: format!("snap-{i:03}"),
        time_secs: t,
        time_nanos: n,
        hostname: h.to_owned(),
        paths: p.into_iter().rev().map(str::to_owned).collect(),
        tags: tg.into_iter().map(str::to_owned).collect(),
        locked_until: lock,
    })
}

fn snapshots() -> impl Strategy<Value = Vec<SnapshotInfo>> {
    (0usize..40).prop_flat_map(|n| (0..n).map(snapshot).collect::<Vec<_>>())
}

fn count() -> impl Strategy<Value = Option<u32>> {
    prop::option::of(0u32..12)
}

fn policy() -> impl Strategy<Value = RetentionPolicy> {
    let tags = prop::sample::subsequence(vec!["keep", "manual", "absent"], 0..=1);
    (
        (count(), count(), count(), count(), count(), count()),
        prop::option::weighted(0.3, 0..400 * DAY),
        tags,
    )
        .prop_map(|((l, h, d, w, m, y), within, tags)| RetentionPolicy {
            keep_last: l,
            keep_hourly: h,
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: m,
            keep_yearly: y,
            keep_within_secs: within,
            keep_tags: tags.into_iter().map(str::to_owned).collect(),
        })
        .prop_filter("policy must keep something", |p| !p.is_empty())
}

fn group_by() -> impl Strategy<Value = GroupBy> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(host, paths, tags)| GroupBy {
        host,
        paths,
        tags,
    })
}

fn now() -> impl Strategy<Value = i64> {
    BASE..BASE + 4 * 365 * DAY
}

fn offset() -> impl Strategy<Value = i32> {
    prop_oneof![Just(0), -86_399i32..86_400]
}

/// Make `policy` keep at least as much: add or raise one rule, chosen by `which`.
fn widen(policy: &RetentionPolicy, which: usize, by: u32, secs: i64) -> RetentionPolicy {
    let mut p = policy.clone();
    let raise = |c: &mut Option<u32>| *c = Some(c.unwrap_or(0) + by);
    match which {
        0 => raise(&mut p.keep_last),
        1 => raise(&mut p.keep_hourly),
        2 => raise(&mut p.keep_daily),
        3 => raise(&mut p.keep_weekly),
        4 => raise(&mut p.keep_monthly),
        5 => raise(&mut p.keep_yearly),
        6 => p.keep_within_secs = Some(p.keep_within_secs.unwrap_or(0).saturating_add(secs)),
        _ => p.keep_tags.push("cron".to_owned()),
    }
    p
}

fn kept_ids(decisions: &[Decision]) -> BTreeSet<&str> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.id.as_str())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (1) The snapshots kept by keep-last N are exactly the N newest of each group (ties by id).
    #[test]
    fn keep_last_keeps_only_the_newest_of_each_group(
        snaps in snapshots(), policy in policy(), gb in group_by(), now in now(), off in offset(),
    ) {
        let decisions = apply(&snaps, &policy, gb, now, off).unwrap();
        let n = policy.keep_last.unwrap_or(0) as usize;
        let mut groups: BTreeMap<_, Vec<&SnapshotInfo>> = BTreeMap::new();
        for s in &snaps {
            groups.entry(gb.key_for(s)).or_default().push(s);
        }
        let mut newest = BTreeSet::new();
        for members in groups.values_mut() {
            members.sort_by(|a, b| {
                (b.time_secs, b.time_nanos).cmp(&(a.time_secs, a.time_nanos)).then(a.id.cmp(&b.id))
            });
            newest.extend(members.iter().take(n).map(|s| s.id.as_str()));
        }
        let by_last: BTreeSet<&str> = decisions
            .iter()
            .filter(|d| d.reasons.contains(&KeepReason::Last))
            .map(|d| d.id.as_str())
            .collect();
        prop_assert_eq!(by_last, newest);
    }

    /// (2) Every input snapshot gets exactly one decision, and `keep` agrees with `reasons`.
    #[test]
    fn decisions_cover_every_input_exactly_once(
        snaps in snapshots(), policy in policy(), gb in group_by(), now in now(), off in offset(),
    ) {
        let decisions = apply(&snaps, &policy, gb, now, off).unwrap();
        prop_assert_eq!(decisions.len(), snaps.len());
        let mut got: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
        let mut want: Vec<&str> = snaps.iter().map(|s| s.id.as_str()).collect();
        got.sort_unstable();
        want.sort_unstable();
        prop_assert_eq!(got, want);
        for d in &decisions {
            prop_assert_eq!(d.keep, !d.reasons.is_empty());
            let s = snaps.iter().find(|s| s.id == d.id).unwrap();
            prop_assert_eq!(&d.group, &gb.key_for(s));
            let locked = s.locked_until.is_some_and(|u| now < u);
            prop_assert_eq!(d.reasons.contains(&KeepReason::Locked), locked);
        }
    }

    /// (3) Adding a rule, raising a count or widening keep-within never removes a kept snapshot.
    #[test]
    fn adding_a_rule_never_removes_a_kept_snapshot(
        snaps in snapshots(), policy in policy(), gb in group_by(), now in now(), off in offset(),
        which in 0usize..8, by in 1u32..10, secs in 1i64..100 * DAY,
    ) {
        let wider = widen(&policy, which, by, secs);
        let before = apply(&snaps, &policy, gb, now, off).unwrap();
        let after = apply(&snaps, &wider, gb, now, off).unwrap();
        let (before, after) = (kept_ids(&before), kept_ids(&after));
        prop_assert!(before.is_subset(&after), "{} -> {}: lost {:?}", policy, wider,
            before.difference(&after).collect::<Vec<_>>());
    }

    /// (4) keep-last of at least the number of snapshots keeps every snapshot.
    #[test]
    fn keep_last_at_least_count_keeps_all(
        snaps in snapshots(), extra in 0u32..5, gb in group_by(), now in now(), off in offset(),
    ) {
        let policy = RetentionPolicy {
            keep_last: Some(snaps.len() as u32 + extra),
            ..Default::default()
        };
        prop_assume!(!policy.is_empty());
        let decisions = apply(&snaps, &policy, gb, now, off).unwrap();
        prop_assert!(decisions.iter().all(|d| d.keep && d.reasons.contains(&KeepReason::Last)));
    }

    /// (5) The result, order included, does not depend on the order of the input.
    #[test]
    fn apply_is_deterministic_under_permutation(
        (snaps, shuffled) in snapshots().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        policy in policy(), gb in group_by(), now in now(), off in offset(),
    ) {
        let a = apply(&snaps, &policy, gb, now, off).unwrap();
        let b = apply(&shuffled, &policy, gb, now, off).unwrap();
        prop_assert_eq!(a, b);
    }

    /// A calendar rule with count N keeps at most N snapshots per group, and keep-within keeps
    /// exactly the snapshots inside its documented window, `min(newest, now) - d` onwards.
    #[test]
    fn counts_bound_calendar_rules_and_within_matches_its_window(
        snaps in snapshots(), policy in policy(), gb in group_by(), now in now(), off in offset(),
    ) {
        let decisions = apply(&snaps, &policy, gb, now, off).unwrap();
        let rules = [
            (KeepReason::Hourly, policy.keep_hourly),
            (KeepReason::Daily, policy.keep_daily),
            (KeepReason::Weekly, policy.keep_weekly),
            (KeepReason::Monthly, policy.keep_monthly),
            (KeepReason::Yearly, policy.keep_yearly),
        ];
        let mut newest_in_group = BTreeMap::new();
        for s in &snaps {
            let e = newest_in_group.entry(gb.key_for(s)).or_insert(i64::MIN);
            *e = (*e).max(s.time_secs);
        }
        for (reason, count) in rules {
            let mut per_group = BTreeMap::new();
            for d in decisions.iter().filter(|d| d.reasons.contains(&reason)) {
                *per_group.entry(&d.group).or_insert(0u32) += 1;
            }
            let limit = count.unwrap_or(0);
            prop_assert!(per_group.values().all(|&c| c <= limit), "{:?}", reason);
        }
        for d in &decisions {
            let s = snaps.iter().find(|s| s.id == d.id).unwrap();
            let in_window = policy.keep_within_secs.is_some_and(|w| {
                s.time_secs >= newest_in_group[&d.group].min(now).saturating_sub(w)
            });
            prop_assert_eq!(d.reasons.contains(&KeepReason::Within), in_window);
        }
    }
}
