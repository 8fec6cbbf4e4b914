//! The policy engine: [`apply`] validates its whole input, groups and sorts the snapshots, then
//! runs every rule independently over each group and records which rules kept each snapshot.
//!
//! The calendar rules share one walk: go through the group newest first and keep a snapshot
//! whenever its bucket (local hour, day, ISO week, month or year) differs from the bucket of the
//! last snapshot that rule kept, until the rule's count is used up. Since a fixed UTC offset is
//! used, buckets never decrease with time, so this keeps exactly the newest snapshot of each of
//! the `n` most recent buckets that contain snapshots.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike};

use crate::{Decision, GroupBy, GroupKey, KeepReason, PolicyError, RetentionPolicy, SnapshotInfo};

/// A calendar bucket size for the `keep_hourly` … `keep_yearly` rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// A snapshot with what sorting and bucketing need, computed once.
struct Entry<'a> {
    key: GroupKey,
    snap: &'a SnapshotInfo,
    /// Wall-clock time at the caller's UTC offset.
    local: NaiveDateTime,
}

/// Decide, for every snapshot, whether `policy` keeps it. See the crate docs for the semantics.
///
/// `now_secs` is the current time (seconds since the Unix epoch); it is used for lock expiry and
/// to clamp the keep-within reference. `utc_offset_secs` is added to every snapshot time before
/// calendar bucketing (e.g. `3600` for UTC+1); it must be strictly between -86400 and 86400.
///
/// Returns one [`Decision`] per input snapshot: groups in [`GroupKey`] order, each group newest
/// first, ties by ascending id. The result does not depend on the order of `snapshots`.
///
/// # Errors
///
/// [`PolicyError::EmptyPolicy`] or [`PolicyError::NegativeWithin`] for a policy that fails
/// [`RetentionPolicy::validate`]; [`PolicyError::InvalidUtcOffset`];
/// [`PolicyError::DuplicateId`] if two snapshots share an id; [`PolicyError::InvalidTime`] for
/// a time with no calendar date or with `time_nanos >= 1_000_000_000`.
pub fn apply(
    snapshots: &[SnapshotInfo],
    policy: &RetentionPolicy,
    group_by: GroupBy,
    now_secs: i64,
    utc_offset_secs: i32,
) -> Result<Vec<Decision>, PolicyError> {
    policy.validate()?;
    if FixedOffset::east_opt(utc_offset_secs).is_none() {
        return Err(PolicyError::InvalidUtcOffset(utc_offset_secs));
    }
    let mut seen = BTreeSet::new();
    let mut entries = Vec::with_capacity(snapshots.len());
    for snap in snapshots {
        if !seen.insert(snap.id.as_str()) {
            return Err(PolicyError::DuplicateId(snap.id.clone()));
        }
        entries.push(Entry {
            key: group_by.key_for(snap),
            snap,
            local: local_time(snap, utc_offset_secs)?,
        });
    }
    entries.sort_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then_with(|| {
                let newer = (b.snap.time_secs, b.snap.time_nanos);
                newer.cmp(&(a.snap.time_secs, a.snap.time_nanos))
            })
            .then_with(|| a.snap.id.cmp(&b.snap.id))
    });
    let mut keep_tags: Vec<&String> = Vec::with_capacity(policy.keep_tags.len());
    for tag in &policy.keep_tags {
        if !keep_tags.contains(&tag) {
            keep_tags.push(tag);
        }
    }
    let mut out = Vec::with_capacity(entries.len());
    for group in entries.chunk_by(|a, b| a.key == b.key) {
        decide_group(group, policy, &keep_tags, now_secs, &mut out);
    }
    Ok(out)
}

/// The snapshot's wall-clock time at `offset`, or `InvalidTime` if it has no calendar date.
fn local_time(snap: &SnapshotInfo, offset: i32) -> Result<NaiveDateTime, PolicyError> {
    let invalid = || PolicyError::InvalidTime {
        id: snap.id.clone(),
        secs: snap.time_secs,
        nanos: snap.time_nanos,
    };
    if snap.time_nanos >= 1_000_000_000 || DateTime::from_timestamp(snap.time_secs, 0).is_none() {
        return Err(invalid());
    }
    let local_secs = snap
        .time_secs
        .checked_add(i64::from(offset))
        .ok_or_else(invalid)?;
    DateTime::from_timestamp(local_secs, 0)
        .map(|t| t.naive_utc())
        .ok_or_else(invalid)
}

/// A number identifying `t`'s bucket of size `period`; later buckets have larger numbers.
fn bucket(period: Period, t: &NaiveDateTime) -> i64 {
    let date = t.date();
    let days = i64::from(date.num_days_from_ce());
    match period {
        Period::Hour => days * 24 + i64::from(t.hour()),
        Period::Day => days,
        Period::Week => {
            let week = date.iso_week();
            i64::from(week.year()) * 100 + i64::from(week.week())
        }
        Period::Month => i64::from(date.year()) * 12 + i64::from(date.month0()),
        Period::Year => i64::from(date.year()),
    }
}

/// Run every rule over one group (sorted newest first) and append its decisions to `out`.
fn decide_group(
    group: &[Entry<'_>],
    policy: &RetentionPolicy,
    keep_tags: &[&String],
    now_secs: i64,
    out: &mut Vec<Decision>,
) {
    let mut reasons: Vec<Vec<KeepReason>> = vec![Vec::new(); group.len()];

    if let Some(n) = policy.keep_last {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        for r in reasons.iter_mut().take(n) {
            r.push(KeepReason::Last);
        }
    }

    let calendar = [
        (policy.keep_hourly, Period::Hour, KeepReason::Hourly),
        (policy.keep_daily, Period::Day, KeepReason::Daily),
        (policy.keep_weekly, Period::Week, KeepReason::Weekly),
        (policy.keep_monthly, Period::Month, KeepReason::Monthly),
        (policy.keep_yearly, Period::Year, KeepReason::Yearly),
    ];
    for (count, period, reason) in calendar {
        let mut remaining = count.unwrap_or(0);
        let mut last_bucket = None;
        for (entry, r) in group.iter().zip(reasons.iter_mut()) {
            if remaining == 0 {
                break;
            }
            let b = bucket(period, &entry.local);
            if last_bucket != Some(b) {
                r.push(reason.clone());
                last_bucket = Some(b);
                remaining -= 1;
            }
        }
    }

    if let (Some(within), Some(newest)) = (policy.keep_within_secs, group.first()) {
        let reference = newest.snap.time_secs.min(now_secs);
        let threshold = reference.saturating_sub(within);
        for (entry, r) in group.iter().zip(reasons.iter_mut()) {
            if entry.snap.time_secs >= threshold {
                r.push(KeepReason::Within);
            }
        }
    }

    for (entry, mut r) in group.iter().zip(reasons) {
        for tag in keep_tags {
            if entry.snap.tags.contains(tag) {
                r.push(KeepReason::Tag((*tag).clone()));
            }
        }
        if entry
            .snap
            .locked_until
            .is_some_and(|until| now_secs < until)
        {
            r.push(KeepReason::Locked);
        }
        out.push(Decision {
            id: entry.snap.id.clone(),
            keep: !r.is_empty(),
            reasons: r,
            group: entry.key.clone(),
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use rstest::rstest;

    fn at(y: i32, mo: u32, d: u32, h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_opt(h, 0, 0))
            .unwrap()
    }

    fn snap(id: &str, time_secs: i64, time_nanos: u32) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            time_secs,
            time_nanos,
            hostname: "h".into(),
            paths: vec!["/".into()],
            tags: vec![],
            locked_until: None,
        }
    }

    fn last(n: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: Some(n),
            ..Default::default()
        }
    }

    #[rstest]
    // ISO weeks: 2024-12-30 (Mon) is in week 1 of 2025; 2021-01-03 (Sun) in week 53 of 2020.
    #[case(Period::Week, at(2024, 12, 29, 0), at(2024, 12, 30, 0), false)]
    #[case(Period::Week, at(2024, 12, 30, 0), at(2025, 1, 5, 23), true)]
    #[case(Period::Week, at(2020, 12, 28, 0), at(2021, 1, 3, 12), true)]
    #[case(Period::Week, at(2021, 1, 3, 0), at(2021, 1, 4, 0), false)]
    #[case(Period::Day, at(2024, 2, 28, 23), at(2024, 2, 29, 0), false)]
    #[case(Period::Day, at(2024, 2, 29, 0), at(2024, 2, 29, 23), true)]
    #[case(Period::Hour, at(2024, 5, 1, 23), at(2024, 5, 2, 0), false)]
    #[case(Period::Month, at(2024, 1, 31, 23), at(2024, 2, 1, 0), false)]
    #[case(Period::Month, at(2023, 12, 1, 0), at(2023, 12, 31, 23), true)]
    #[case(Period::Year, at(2023, 12, 31, 23), at(2024, 1, 1, 0), false)]
    fn buckets(
        #[case] period: Period,
        #[case] earlier: NaiveDateTime,
        #[case] later: NaiveDateTime,
        #[case] same: bool,
    ) {
        let (a, b) = (bucket(period, &earlier), bucket(period, &later));
        assert!(a <= b, "{period:?}: buckets must not decrease");
        assert_eq!(a == b, same, "{period:?} {earlier} {later}");
    }

    #[rstest]
    #[case::empty(RetentionPolicy::default(), 0, PolicyError::EmptyPolicy)]
    #[case::zero_counts(last(0), 0, PolicyError::EmptyPolicy)]
    #[case::negative_within(
        RetentionPolicy { keep_within_secs: Some(-5), ..Default::default() },
        0,
        PolicyError::NegativeWithin(-5)
    )]
    #[case::offset_a_day(last(1), 86_400, PolicyError::InvalidUtcOffset(86_400))]
    #[case::offset_minus_day(last(1), -86_400, PolicyError::InvalidUtcOffset(-86_400))]
    fn refuses_bad_policy_or_offset(
        #[case] policy: RetentionPolicy,
        #[case] offset: i32,
        #[case] want: PolicyError,
    ) {
        let snaps = [snap("a", 0, 0)];
        assert_eq!(
            apply(&snaps, &policy, GroupBy::default(), 0, offset),
            Err(want)
        );
    }

    #[rstest]
    #[case::nanos(snap("bad", 0, 1_000_000_000))]
    #[case::far_future(snap("bad", i64::MAX, 0))]
    #[case::far_past(snap("bad", i64::MIN, 0))]
    fn refuses_bad_times(#[case] bad: SnapshotInfo) {
        let snaps = [snap("ok", 0, 0), bad.clone()];
        let got = apply(&snaps, &last(1), GroupBy::default(), 0, 0);
        let want = PolicyError::InvalidTime {
            id: "bad".into(),
            secs: bad.time_secs,
            nanos: bad.time_nanos,
        };
        assert_eq!(got, Err(want));
    }

    #[test]
    fn refuses_duplicate_ids_even_in_different_groups() {
        let mut other = snap("a", 10, 0);
        other.hostname = "elsewhere".into();
        let snaps = [snap("a", 0, 0), other];
        let got = apply(&snaps, &last(5), GroupBy::default(), 0, 0);
        assert_eq!(got, Err(PolicyError::DuplicateId("a".into())));
    }

    #[test]
    fn nanos_and_ids_break_ties() {
        let snaps = [
            snap("b", 5, 0),
            snap("a", 5, 0),
            snap("c", 5, 1),
            snap("d", 4, 999),
        ];
        let got = apply(&snaps, &last(2), GroupBy::default(), 0, 0).unwrap();
        let order: Vec<(&str, bool)> = got.iter().map(|d| (d.id.as_str(), d.keep)).collect();
        assert_eq!(
            order,
            [("c", true), ("a", true), ("b", false), ("d", false)]
        );
    }

    #[test]
    fn no_snapshots_no_decisions() {
        assert_eq!(apply(&[], &last(1), GroupBy::default(), 0, 0), Ok(vec![]));
    }
}
