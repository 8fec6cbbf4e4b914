//! Table tests of the calendar rules (`keep_hourly` … `keep_yearly`) and their combination with
//! `keep_last`, on hand-built snapshot series: hourly snapshots over ten days, a daily series
//! over fifteen months, a series with gaps, and the effect of the caller's UTC offset on which
//! local day, week or month a snapshot falls in.
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use rstest::rstest;
use snapguard_policy::{apply, Decision, GroupBy, KeepReason, RetentionPolicy, SnapshotInfo};

/// Seconds since the epoch of `y-m-d h:min:00` UTC.
fn ts(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|date| date.and_hms_opt(h, min, 0))
        .unwrap()
        .and_utc()
        .timestamp()
}

fn snap(id: String, time_secs: i64) -> SnapshotInfo {
    SnapshotInfo {
        id,
        time_secs,
        time_nanos: 0,
        hostname: "host".into(),
        paths: vec!["/data".into()],
        tags: vec![],
        locked_until: None,
    }
}

/// One snapshot every hour from 2024-01-01 00:00 (a Monday) to 2024-01-10 23:00 UTC, with ids
/// `dDDhHH` (e.g. `d10h23` is the newest). Days 1–7 are ISO week 1 of 2024, days 8–10 week 2.
fn hourly_ten_days() -> Vec<SnapshotInfo> {
    let mut v = Vec::new();
    for day in 1..=10 {
        for hour in 0..24 {
            v.push(snap(
                format!("d{day:02}h{hour:02}"),
                ts(2024, 1, day, hour, 0),
            ));
        }
    }
    v
}

/// One snapshot a day at 12:00 UTC from 2023-01-01 to 2024-03-31, with ids `YYYY-MM-DD`.
fn daily_fifteen_months() -> Vec<SnapshotInfo> {
    let mut v = Vec::new();
    let mut date = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
    let end = NaiveDate::from_ymd_opt(2024, 3, 31).unwrap();
    while date <= end {
        let t = date.and_hms_opt(12, 0, 0).unwrap().and_utc().timestamp();
        v.push(snap(date.format("%Y-%m-%d").to_string(), t));
        date = date.succ_opt().unwrap();
    }
    v
}

fn run(snaps: &[SnapshotInfo], policy: &RetentionPolicy, offset: i32) -> Vec<Decision> {
    let now = ts(2030, 1, 1, 0, 0);
    apply(snaps, policy, GroupBy::default(), now, offset).unwrap()
}

/// Ids of kept snapshots, in output order (newest first).
fn kept(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.id.clone())
        .collect()
}

fn policy(last: u32, hourly: u32, daily: u32, weekly: u32, monthly: u32) -> RetentionPolicy {
    let some = |n: u32| (n > 0).then_some(n);
    RetentionPolicy {
        keep_last: some(last),
        keep_hourly: some(hourly),
        keep_daily: some(daily),
        keep_weekly: some(weekly),
        keep_monthly: some(monthly),
        ..Default::default()
    }
}

#[rstest]
#[case::hourly_3(policy(0, 3, 0, 0, 0), &["d10h23", "d10h22", "d10h21"])]
#[case::daily_1(policy(0, 0, 1, 0, 0), &["d10h23"])]
#[case::daily_7(
    policy(0, 0, 7, 0, 0),
    &["d10h23", "d09h23", "d08h23", "d07h23", "d06h23", "d05h23", "d04h23"]
)]
#[case::daily_more_than_days(
    policy(0, 0, 30, 0, 0),
    &["d10h23", "d09h23", "d08h23", "d07h23", "d06h23", "d05h23", "d04h23", "d03h23", "d02h23",
      "d01h23"]
)]
#[case::weekly_4(policy(0, 0, 0, 4, 0), &["d10h23", "d07h23"])]
#[case::weekly_1(policy(0, 0, 0, 1, 0), &["d10h23"])]
#[case::monthly_12(policy(0, 0, 0, 0, 12), &["d10h23"])]
#[case::last_2_daily_3(policy(2, 0, 3, 0, 0), &["d10h23", "d10h22", "d09h23", "d08h23"])]
#[case::daily_3_weekly_2(policy(0, 0, 3, 2, 0), &["d10h23", "d09h23", "d08h23", "d07h23"])]
fn hourly_series(#[case] policy: RetentionPolicy, #[case] want: &[&str]) {
    let decisions = run(&hourly_ten_days(), &policy, 0);
    assert_eq!(decisions.len(), 240);
    assert_eq!(kept(&decisions), want);
}

#[test]
fn combined_rules_report_every_reason() {
    let decisions = run(&hourly_ten_days(), &policy(2, 0, 3, 2, 12), 0);
    let got: Vec<(&str, &[KeepReason])> = decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| (d.id.as_str(), d.reasons.as_slice()))
        .collect();
    use KeepReason::*;
    let want: Vec<(&str, &[KeepReason])> = vec![
        ("d10h23", &[Last, Daily, Weekly, Monthly]),
        ("d10h22", &[Last]),
        ("d09h23", &[Daily]),
        ("d08h23", &[Daily]),
        ("d07h23", &[Weekly]),
    ];
    assert_eq!(got, want);
    assert!(decisions.iter().all(|d| d.keep != d.reasons.is_empty()));
}

#[rstest]
#[case::monthly_12(
    RetentionPolicy { keep_monthly: Some(12), ..Default::default() },
    &["2024-03-31", "2024-02-29", "2024-01-31", "2023-12-31", "2023-11-30", "2023-10-31",
      "2023-09-30", "2023-08-31", "2023-07-31", "2023-06-30", "2023-05-31", "2023-04-30"]
)]
#[case::yearly_5(
    RetentionPolicy { keep_yearly: Some(5), ..Default::default() },
    &["2024-03-31", "2023-12-31"]
)]
#[case::weekly_4(
    // 2024-03-31 is a Sunday: ISO weeks end on Sundays.
    RetentionPolicy { keep_weekly: Some(4), ..Default::default() },
    &["2024-03-31", "2024-03-24", "2024-03-17", "2024-03-10"]
)]
#[case::weekly_across_new_year(
    // ISO week 1 of 2024 starts on Monday 2024-01-01; week 52 of 2023 ends 2023-12-31.
    RetentionPolicy { keep_weekly: Some(14), ..Default::default() },
    &["2024-03-31", "2024-03-24", "2024-03-17", "2024-03-10", "2024-03-03", "2024-02-25",
      "2024-02-18", "2024-02-11", "2024-02-04", "2024-01-28", "2024-01-21", "2024-01-14",
      "2024-01-07", "2023-12-31"]
)]
#[case::daily_7_monthly_3_yearly_2(
    RetentionPolicy {
        keep_daily: Some(7), keep_monthly: Some(3), keep_yearly: Some(2), ..Default::default()
    },
    &["2024-03-31", "2024-03-30", "2024-03-29", "2024-03-28", "2024-03-27", "2024-03-26",
      "2024-03-25", "2024-02-29", "2024-01-31", "2023-12-31"]
)]
fn daily_series(#[case] policy: RetentionPolicy, #[case] want: &[&str]) {
    let decisions = run(&daily_fifteen_months(), &policy, 0);
    assert_eq!(decisions.len(), 456);
    assert_eq!(kept(&decisions), want);
}

#[rstest]
// Empty days are skipped, not counted: the 3 most recent days *with snapshots*.
#[case::daily_skips_gaps(RetentionPolicy { keep_daily: Some(3), ..Default::default() },
    &["jan09-b", "jan05", "jan02"])]
#[case::hourly_newest_of_each_hour(RetentionPolicy { keep_hourly: Some(2), ..Default::default() },
    &["jan09-b", "jan05"])]
// November and December 2023 have no snapshots.
#[case::monthly_skips_empty_months(RetentionPolicy { keep_monthly: Some(2), ..Default::default() },
    &["jan09-b", "oct31"])]
fn series_with_gaps(#[case] policy: RetentionPolicy, #[case] want: &[&str]) {
    let snaps = vec![
        snap("oct31".into(), ts(2023, 10, 31, 8, 0)),
        snap("jan02".into(), ts(2024, 1, 2, 8, 0)),
        snap("jan05".into(), ts(2024, 1, 5, 8, 0)),
        snap("jan09-a".into(), ts(2024, 1, 9, 8, 10)),
        snap("jan09-b".into(), ts(2024, 1, 9, 8, 50)),
    ];
    assert_eq!(kept(&run(&snaps, &policy, 0)), want);
}

#[rstest]
// UTC+2: 2024-01-10 22:00 UTC is already 2024-01-11 00:00 local.
#[case::east(2 * 3600, &["d10h23", "d10h21", "d09h21"])]
#[case::utc(0, &["d10h23", "d09h23", "d08h23"])]
// UTC-5: local days run from 05:00 to 04:00 UTC.
#[case::west(-5 * 3600, &["d10h23", "d10h04", "d09h04"])]
#[case::half_hour(5 * 3600 + 1800, &["d10h23", "d10h18", "d09h18"])]
fn daily_buckets_follow_the_utc_offset(#[case] offset: i32, #[case] want: &[&str]) {
    let policy = RetentionPolicy {
        keep_daily: Some(3),
        ..Default::default()
    };
    assert_eq!(kept(&run(&hourly_ten_days(), &policy, offset)), want);
}

#[test]
fn weekly_and_monthly_buckets_follow_the_utc_offset() {
    // 2023-12-31 23:30 UTC is a Sunday in 2023 at UTC, but Monday 2024-01-01 at UTC+1.
    let snaps = vec![
        snap("new-year".into(), ts(2023, 12, 31, 23, 30)),
        snap("before".into(), ts(2023, 12, 31, 12, 0)),
    ];
    for (offset, want) in [(0, vec!["new-year"]), (3600, vec!["new-year", "before"])] {
        for policy in [
            RetentionPolicy {
                keep_weekly: Some(2),
                ..Default::default()
            },
            RetentionPolicy {
                keep_monthly: Some(2),
                ..Default::default()
            },
            RetentionPolicy {
                keep_yearly: Some(2),
                ..Default::default()
            },
        ] {
            assert_eq!(kept(&run(&snaps, &policy, offset)), want, "{policy}");
        }
    }
}
