//! Table tests of the non-calendar rules and of grouping: `keep_last`, `keep_within_secs`
//! (measured from `min(newest in group, now)`), `keep_tags`, immutability locks, and
//! `--group-by` over two hosts with different paths and tags. Snapshot times are small round
//! numbers of seconds; the ids name the snapshots by age (`s1` is the oldest).
#![allow(clippy::unwrap_used)]

use rstest::rstest;
use snapguard_policy::{
    apply, Decision, GroupBy, GroupKey, KeepReason, PolicyError, RetentionPolicy, SnapshotInfo,
};

const DAY: i64 = 86_400;

fn snap(id: &str, time_secs: i64) -> SnapshotInfo {
    SnapshotInfo {
        id: id.into(),
        time_secs,
        time_nanos: 0,
        hostname: "alpha".into(),
        paths: vec!["/home".into()],
        tags: vec![],
        locked_until: None,
    }
}

fn tagged(id: &str, time_secs: i64, tags: &[&str]) -> SnapshotInfo {
    SnapshotInfo {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..snap(id, time_secs)
    }
}

/// Five daily snapshots `s1` (day 1) … `s5` (day 5).
fn five_days() -> Vec<SnapshotInfo> {
    (1..=5).map(|i| snap(&format!("s{i}"), i * DAY)).collect()
}

fn kept(decisions: &[Decision]) -> Vec<&str> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.id.as_str())
        .collect()
}

fn reasons_of<'a>(decisions: &'a [Decision], id: &str) -> &'a [KeepReason] {
    &decisions.iter().find(|d| d.id == id).unwrap().reasons
}

fn within(secs: i64) -> RetentionPolicy {
    RetentionPolicy {
        keep_within_secs: Some(secs),
        ..Default::default()
    }
}

#[rstest]
#[case(1, &["s5"])]
#[case(3, &["s5", "s4", "s3"])]
#[case(5, &["s5", "s4", "s3", "s2", "s1"])]
#[case(1000, &["s5", "s4", "s3", "s2", "s1"])]
fn keep_last(#[case] n: u32, #[case] want: &[&str]) {
    let mut snaps = five_days();
    snaps.reverse(); // input order must not matter
    let policy = RetentionPolicy {
        keep_last: Some(n),
        ..Default::default()
    };
    let decisions = apply(&snaps, &policy, GroupBy::default(), 100 * DAY, 0).unwrap();
    assert_eq!(kept(&decisions), want);
    let ids: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["s5", "s4", "s3", "s2", "s1"], "newest first");
}

#[rstest]
// Backups stopped long ago: measured from the newest snapshot, not from `now`.
#[case::stale_backups(within(DAY), 100 * DAY, &["s5", "s4"])]
#[case::boundary_inclusive(within(2 * DAY), 100 * DAY, &["s5", "s4", "s3"])]
#[case::one_second_short(within(2 * DAY - 1), 100 * DAY, &["s5", "s4"])]
#[case::zero_keeps_newest(within(0), 100 * DAY, &["s5"])]
#[case::huge(within(i64::MAX), 100 * DAY, &["s5", "s4", "s3", "s2", "s1"])]
// `now` earlier than the newest snapshot: the window is measured from `now` instead.
#[case::newest_in_future(within(DAY), 3 * DAY, &["s5", "s4", "s3", "s2"])]
fn keep_within(#[case] policy: RetentionPolicy, #[case] now: i64, #[case] want: &[&str]) {
    let decisions = apply(&five_days(), &policy, GroupBy::default(), now, 0).unwrap();
    assert_eq!(kept(&decisions), want);
    for id in want {
        assert_eq!(reasons_of(&decisions, id), [KeepReason::Within]);
    }
}

#[test]
fn keep_within_ignores_a_future_dated_snapshot_as_reference() {
    // A client with a clock ten years fast must not push every real snapshot out of the window.
    let mut snaps = five_days();
    snaps.push(snap("bogus", 3650 * DAY));
    let decisions = apply(&snaps, &within(DAY), GroupBy::default(), 5 * DAY, 0).unwrap();
    assert_eq!(kept(&decisions), ["bogus", "s5", "s4"]);
}

#[rstest]
#[case::one_tag(&["keep"], &["s4", "s2"])]
#[case::any_of_two(&["keep", "monthly"], &["s5", "s4", "s2"])]
#[case::no_match(&["nope"], &[])]
#[case::case_sensitive(&["KEEP"], &[])]
fn keep_tag(#[case] tags: &[&str], #[case] want: &[&str]) {
    let snaps = vec![
        tagged("s1", DAY, &["other"]),
        tagged("s2", 2 * DAY, &["keep"]),
        tagged("s3", 3 * DAY, &[]),
        tagged("s4", 4 * DAY, &["monthly", "keep"]),
        tagged("s5", 5 * DAY, &["monthly"]),
    ];
    let policy = RetentionPolicy {
        keep_tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let decisions = apply(&snaps, &policy, GroupBy::default(), 10 * DAY, 0).unwrap();
    assert_eq!(kept(&decisions), want);
}

#[test]
fn keep_tag_records_each_matching_tag_once_in_policy_order() {
    let snaps = vec![tagged("s1", DAY, &["b", "a", "c"])];
    let policy = RetentionPolicy {
        keep_last: Some(1),
        keep_tags: vec!["c".into(), "a".into(), "c".into(), "z".into()],
        ..Default::default()
    };
    let decisions = apply(&snaps, &policy, GroupBy::default(), 10 * DAY, 0).unwrap();
    let want = [
        KeepReason::Last,
        KeepReason::Tag("c".into()),
        KeepReason::Tag("a".into()),
    ];
    assert_eq!(reasons_of(&decisions, "s1"), want);
}

#[rstest]
#[case::lock_active(Some(11 * DAY), true)]
#[case::lock_expires_now(Some(10 * DAY), false)]
#[case::lock_expired(Some(9 * DAY), false)]
#[case::no_lock(None, false)]
fn locked(#[case] locked_until: Option<i64>, #[case] s1_kept: bool) {
    let mut snaps = five_days();
    snaps[0].locked_until = locked_until;
    let policy = RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    };
    let decisions = apply(&snaps, &policy, GroupBy::default(), 10 * DAY, 0).unwrap();
    let s1 = decisions.iter().find(|d| d.id == "s1").unwrap();
    assert_eq!(s1.keep, s1_kept);
    assert_eq!(s1.reasons == [KeepReason::Locked], s1_kept);
    assert_eq!(reasons_of(&decisions, "s5"), [KeepReason::Last]);
}

#[test]
fn locked_adds_to_other_reasons_and_still_counts_for_keep_last() {
    let mut snaps = five_days();
    snaps[4].locked_until = Some(i64::MAX); // s5, the newest
    let policy = RetentionPolicy {
        keep_last: Some(2),
        ..Default::default()
    };
    let decisions = apply(&snaps, &policy, GroupBy::default(), 10 * DAY, 0).unwrap();
    assert_eq!(
        reasons_of(&decisions, "s5"),
        [KeepReason::Last, KeepReason::Locked]
    );
    assert_eq!(kept(&decisions), ["s5", "s4"]);
}

/// Two hosts; `alpha` backs up `/home` twice with different tags and `/etc` once, `beta`
/// backs up `/home` and `/srv` together (listed in a different order each time).
fn two_hosts() -> Vec<SnapshotInfo> {
    let mk = |id: &str, t: i64, host: &str, paths: &[&str], tags: &[&str]| SnapshotInfo {
        hostname: host.into(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        ..tagged(id, t * DAY, tags)
    };
    vec![
        mk("a-home-1", 1, "alpha", &["/home"], &["cron"]),
        mk("a-home-2", 2, "alpha", &["/home"], &["manual"]),
        mk("a-home-3", 3, "alpha", &["/home"], &["cron"]),
        mk("a-etc-1", 4, "alpha", &["/etc"], &["cron"]),
        mk("b-1", 5, "beta", &["/srv", "/home"], &["cron"]),
        mk("b-2", 6, "beta", &["/home", "/srv"], &["cron"]),
    ]
}

#[rstest]
#[case::host_paths("host,paths", &["a-etc-1", "a-home-3", "b-2"], 3)]
#[case::host("host", &["a-etc-1", "b-2"], 2)]
#[case::paths("paths", &["a-etc-1", "a-home-3", "b-2"], 3)]
#[case::tags("tags", &["b-2", "a-home-2"], 2)]
#[case::host_paths_tags("host,paths,tags", &["a-etc-1", "a-home-3", "a-home-2", "b-2"], 4)]
#[case::none("", &["b-2"], 1)]
fn grouping_keep_last_1(#[case] spec: &str, #[case] want: &[&str], #[case] groups: usize) {
    let group_by = GroupBy::parse(spec).unwrap();
    let policy = RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    };
    let decisions = apply(&two_hosts(), &policy, group_by, 10 * DAY, 0).unwrap();
    assert_eq!(decisions.len(), 6);
    assert_eq!(kept(&decisions), want);
    let mut keys: Vec<&GroupKey> = decisions.iter().map(|d| &d.group).collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "groups in key order");
    keys.dedup();
    assert_eq!(keys.len(), groups);
}

#[test]
fn group_keys_hold_sorted_paths_and_only_grouped_fields() {
    let decisions = apply(
        &two_hosts(),
        &RetentionPolicy {
            keep_daily: Some(1),
            ..Default::default()
        },
        GroupBy::default(),
        10 * DAY,
        0,
    )
    .unwrap();
    let beta = decisions.iter().find(|d| d.id == "b-1").unwrap();
    let want = GroupKey {
        hostname: Some("beta".into()),
        paths: Some(vec!["/home".into(), "/srv".into()]),
        tags: None,
    };
    assert_eq!(beta.group, want);
    assert_eq!(reasons_of(&decisions, "b-2"), [KeepReason::Daily]);
    assert!(!beta.keep, "b-1 and b-2 share a group despite path order");
}

#[test]
fn empty_policy_is_refused_whatever_the_input() {
    for policy in [
        RetentionPolicy::default(),
        RetentionPolicy {
            keep_last: Some(0),
            keep_weekly: Some(0),
            ..Default::default()
        },
    ] {
        let got = apply(&two_hosts(), &policy, GroupBy::default(), 0, 0);
        assert_eq!(got, Err(PolicyError::EmptyPolicy));
        let got = apply(&[], &policy, GroupBy::NONE, 0, 0);
        assert_eq!(got, Err(PolicyError::EmptyPolicy));
    }
}
