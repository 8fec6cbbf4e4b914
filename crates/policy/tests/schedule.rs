//! Schedules: cron parsing and next times (in UTC and across daylight-saving changes), intervals,
//! and catch-up after missed runs.

use chrono::{TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use rstest::rstest;
use snapguard_policy::schedule::{due, CronExpr, Schedule, MISSED_CAP};

fn utc(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .timestamp()
}

fn show(secs: i64) -> String {
    Utc.timestamp_opt(secs, 0)
        .single()
        .expect("time")
        .to_rfc3339()
}

#[rstest]
#[case("0 3 * * *", "2026-11-24T10:00:00Z", "2026-11-25T03:00:00Z")]
#[case("0 3 * * *", "2026-11-24T02:59:59Z", "2026-11-24T03:00:00Z")]
#[case("0 3 * * *", "2026-11-24T03:00:00Z", "2026-11-25T03:00:00Z")]
#[case("*/15 * * * *", "2026-11-24T10:07:00Z", "2026-11-24T10:15:00Z")]
#[case("*/15 * * * *", "2026-11-24T10:45:30Z", "2026-11-24T11:00:00Z")]
#[case("5/20 * * * *", "2026-11-24T10:26:00Z", "2026-11-24T10:45:00Z")]
#[case("30 2 1 * *", "2026-11-24T00:00:00Z", "2026-12-01T02:30:00Z")]
#[case("0 0 * * sun", "2026-11-24T00:00:00Z", "2026-11-29T00:00:00Z")]
#[case("0 0 * * 7", "2026-11-24T00:00:00Z", "2026-11-29T00:00:00Z")]
#[case("0 9 * * mon-fri", "2026-11-27T10:00:00Z", "2026-11-30T09:00:00Z")]
#[case("0 12 13 * 5", "2026-11-24T00:00:00Z", "2026-11-27T12:00:00Z")]
#[case("0 0 29 feb *", "2026-11-24T00:00:00Z", "2028-02-29T00:00:00Z")]
#[case("0 0 31 * *", "2026-11-24T00:00:00Z", "2026-12-31T00:00:00Z")]
#[case("0 6,18 * DEC *", "2026-11-24T00:00:00Z", "2026-12-01T06:00:00Z")]
#[case("@hourly", "2026-11-24T10:00:00Z", "2026-11-24T11:00:00Z")]
#[case("@weekly", "2026-11-24T10:00:00Z", "2026-11-29T00:00:00Z")]
#[case("@yearly", "2026-11-24T10:00:00Z", "2027-01-01T00:00:00Z")]
#[case("0 0 1-7 * 1", "2026-11-24T10:00:00Z", "2026-11-30T00:00:00Z")]
#[case("0 3 */2 * *", "2026-11-24T10:00:00Z", "2026-11-25T03:00:00Z")]
#[case("0 3 */2 * *", "2026-11-25T10:00:00Z", "2026-11-27T03:00:00Z")]
#[case("0 3 * * */2", "2026-11-24T10:00:00Z", "2026-11-26T03:00:00Z")]
#[case("0 3 */10 * mon", "2026-11-24T10:00:00Z", "2026-12-21T03:00:00Z")]
fn next_times_in_utc(#[case] expr: &str, #[case] after: &str, #[case] want: &str) {
    let c = CronExpr::parse(expr).expect("parse");
    let got = c.next_after(utc(after), &Utc).expect("fires");
    assert_eq!(show(got), show(utc(want)), "{expr} after {after}");
}

#[rstest]
#[case("0 3 * *", "five")]
#[case("60 * * * *", "outside 0-59")]
#[case("* 24 * * *", "outside 0-23")]
#[case("* * 0 * *", "outside 1-31")]
#[case("* * * 13 *", "outside 1-12")]
#[case("* * * * 8", "outside 0-7")]
#[case("*/0 * * * *", "step of 0")]
#[case("10-5 * * * *", "backwards")]
#[case("x * * * *", "not a number")]
#[case("* * * foo *", "not a number from 1 to 12 or a name")]
#[case("0 0 30 feb *", "never occurs")]
#[case("@reboot", "unknown macro")]
#[case("", "five")]
fn bad_cron_expressions_say_what_is_wrong(#[case] expr: &str, #[case] says: &str) {
    let e = CronExpr::parse(expr).expect_err("must fail").to_string();
    assert!(e.contains(says), "{expr:?}: {e}");
}

#[test]
fn daylight_saving_changes_keep_wall_clock_times_and_never_double_or_skip_a_day() {
    // Berlin: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
    let c = CronExpr::parse("30 2 * * *").expect("parse");
    // The spring-forward day has no 02:30: the job runs when the gap ends (03:00 CEST).
    let spring = c
        .next_after(utc("2026-03-28T12:00:00Z"), &Berlin)
        .expect("fires");
    assert_eq!(show(spring), show(utc("2026-03-29T01:00:00Z")));
    let after = c.next_after(spring, &Berlin).expect("fires");
    assert_eq!(show(after), show(utc("2026-03-30T00:30:00Z")), "02:30 CEST");
    // The fall-back day has 02:30 twice: the job runs once, the first time (CEST).
    let fall = c
        .next_after(utc("2026-10-24T12:00:00Z"), &Berlin)
        .expect("fires");
    assert_eq!(show(fall), show(utc("2026-10-25T00:30:00Z")));
    let next = c.next_after(fall, &Berlin).expect("fires");
    assert_eq!(
        show(next),
        show(utc("2026-10-26T01:30:00Z")),
        "next day, CET"
    );

    // Every day of a year in Berlin fires exactly once for a daily job.
    let daily = CronExpr::parse("0 3 * * *").expect("parse");
    let mut t = utc("2025-12-31T12:00:00Z");
    let mut days = std::collections::BTreeSet::new();
    for _ in 0..365 {
        t = daily.next_after(t, &Berlin).expect("fires");
        let local = Berlin.timestamp_opt(t, 0).single().expect("local");
        assert_eq!(local.format("%H:%M").to_string(), "03:00");
        assert!(days.insert(local.date_naive()), "two runs on one day");
    }
    assert_eq!(days.len(), 365);
}

#[rstest]
#[case("every 6h", Schedule::Every(6 * 3600))]
#[case("every 1d12h", Schedule::Every(36 * 3600))]
#[case("every 90m", Schedule::Every(90 * 60))]
#[case("every 1h30min", Schedule::Every(90 * 60))]
#[case("daily", Schedule::Cron(CronExpr::parse("@daily").expect("parse")))]
#[case("15 4 * * *", Schedule::Cron(CronExpr::parse("15 4 * * *").expect("parse")))]
fn schedules_parse(#[case] text: &str, #[case] want: Schedule) {
    assert_eq!(Schedule::parse(text).expect("parse"), want);
}

#[rstest]
#[case("every 30s", "at least one minute")]
#[case("every soon", "does not start with a number")]
#[case("every 5", "without a unit")]
#[case("every 2y", "unknown unit")]
#[case("sometimes", "five")]
fn bad_schedules_are_refused(#[case] text: &str, #[case] says: &str) {
    let e = Schedule::parse(text).expect_err("must fail").to_string();
    assert!(e.contains(says), "{text}: {e}");
}

#[test]
fn a_machine_that_was_off_for_a_week_runs_a_daily_job_once_then_at_its_time() {
    let s = Schedule::parse("0 3 * * *").expect("parse");
    let last = utc("2026-11-10T03:00:05Z");
    let now = utc("2026-11-17T14:00:00Z");
    let d = due(&s, Some(last), last, now, &Utc);
    assert!(d.run_now);
    assert_eq!(d.missed, 6, "7 times passed: one run now, six more missed");
    assert_eq!(d.scheduled, Some(utc("2026-11-17T03:00:00Z")));
    assert_eq!(d.next, Some(utc("2026-11-18T03:00:00Z")));
    // After that run, nothing more is due until 03:00.
    let d = due(&s, Some(now), last, now + 60, &Utc);
    assert!(!d.run_now);
    assert_eq!(d.next, Some(utc("2026-11-18T03:00:00Z")));
}

#[test]
fn a_new_cron_job_waits_for_its_first_time_and_a_new_interval_job_runs_at_once() {
    let now = utc("2026-11-24T10:00:00Z");
    let cron = Schedule::parse("0 3 * * *").expect("parse");
    let d = due(&cron, None, now, now, &Utc);
    assert!(!d.run_now);
    assert_eq!(d.next, Some(utc("2026-11-25T03:00:00Z")));
    // Seen since yesterday, never run, 03:00 has passed: due once.
    let d = due(&cron, None, now - 86_400, now, &Utc);
    assert!(d.run_now && d.missed == 0, "{d:?}");

    let every = Schedule::parse("every 6h").expect("parse");
    let d = due(&every, None, now, now, &Utc);
    assert!(d.run_now);
    assert_eq!(d.next, Some(now + 6 * 3600));
}

#[rstest]
#[case(0, false, 0)]
#[case(6 * 3600 - 1, false, 0)]
#[case(6 * 3600, true, 0)]
#[case(18 * 3600 + 5, true, 2)]
fn intervals_count_from_the_last_run(#[case] elapsed: i64, #[case] run: bool, #[case] missed: u32) {
    let s = Schedule::Every(6 * 3600);
    let last = utc("2026-11-24T00:00:00Z");
    let d = due(&s, Some(last), last, last + elapsed, &Utc);
    assert_eq!((d.run_now, d.missed), (run, missed), "{d:?}");
    if run {
        assert_eq!(d.scheduled, Some(last + 6 * 3600 * (i64::from(missed) + 1)));
    }
}

#[test]
fn a_clock_set_back_does_not_stop_a_job_and_missed_runs_are_capped() {
    let s = Schedule::parse("*/5 * * * *").expect("parse");
    let now = utc("2026-11-24T10:00:00Z");
    // The last run is "in the future": treated as now, due again in five minutes.
    let d = due(&s, Some(now + 86_400), now, now, &Utc);
    assert!(!d.run_now);
    assert_eq!(d.next, Some(now + 300));
    // A year off: one run, the count stops at the cap.
    let d = due(&s, Some(now - 365 * 86_400), now, now, &Utc);
    assert!(d.run_now);
    assert_eq!(d.missed, MISSED_CAP);
    assert_eq!(d.scheduled, Some(now), "the latest scheduled time, 10:00");
}

mod props {
    use super::*;
    use chrono::{Datelike, Timelike};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A field as a list of values, and its text.
    /// Values from `lo` to `hi` in lists and ranges; `*/step` covers the field's whole range,
    /// up to `top`.
    fn field(lo: u32, hi: u32, top: u32) -> impl Strategy<Value = (Option<BTreeSet<u32>>, String)> {
        prop_oneof![
            Just((None, "*".to_string())),
            proptest::collection::btree_set(lo..=hi, 1..4).prop_map(|s| {
                let text = s.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
                (Some(s), text)
            }),
            (lo..=hi, 1u32..6).prop_map(move |(a, step)| {
                let set: BTreeSet<u32> = (a..=hi).step_by(step as usize).collect();
                (Some(set), format!("{a}-{hi}/{step}"))
            }),
            (2u32..6).prop_map(move |step| {
                let set: BTreeSet<u32> = (lo..=top).step_by(step as usize).collect();
                (Some(set), format!("*/{step}"))
            }),
        ]
    }

    fn matches(f: &[(Option<BTreeSet<u32>>, String); 5], t: &chrono::DateTime<Utc>) -> bool {
        let has = |i: usize, v: u32| f[i].0.as_ref().is_none_or(|s| s.contains(&v));
        let dom = has(2, t.day());
        let dow = has(4, t.weekday().num_days_from_sunday());
        let star = |i: usize| f[i].1.starts_with('*');
        let day = if star(2) || star(4) {
            dom && dow
        } else {
            dom || dow
        };
        has(0, t.minute()) && has(1, t.hour()) && has(3, t.month()) && day
    }

    proptest! {
        #[test]
        fn next_after_is_the_first_matching_minute(
            fields in (field(0, 59, 59), field(0, 23, 23), field(1, 28, 31), field(1, 12, 12), field(0, 6, 6)),
            after in 1_700_000_000i64..1_900_000_000,
        ) {
            let f = [fields.0, fields.1, fields.2, fields.3, fields.4];
            let text = f.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(" ");
            let c = CronExpr::parse(&text).expect("generated expressions parse");
            let next = c.next_after(after, &Utc).expect("fires within years");
            prop_assert!(next > after);
            let at = Utc.timestamp_opt(next, 0).single().expect("time");
            prop_assert!(at.second() == 0 && matches(&f, &at), "{} at {}", text, at);
            // No matching minute in between (checked when the gap is short enough to walk).
            if next - after <= 20 * 86_400 {
                let mut t = (after / 60 + 1) * 60;
                while t < next {
                    let at = Utc.timestamp_opt(t, 0).single().expect("time");
                    prop_assert!(!matches(&f, &at), "{} skipped {}", text, at);
                    t += 60;
                }
            }
        }
    }
}
