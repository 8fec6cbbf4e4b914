//! The calendar buckets of the timeline cleanup: which hour, day, week, month, quarter or year a
//! local snapshot was taken in, as one integer per bucket so that "same bucket" is `==` and
//! "younger bucket" is `>`.
//!
//! Buckets are computed in UTC with integer arithmetic only, so every `i64` time has a bucket
//! (no calendar library can fail on an absurd timestamp, and the planner stays infallible).
//! Weeks start on Monday, as Snapper's (and ISO 8601) do; a week that spans New Year is one
//! bucket. Months use the proleptic Gregorian calendar.

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// A bucket size of the timeline cleanup, youngest-first in the order of the retention keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Period {
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Period {
    pub(crate) const ALL: [Period; 6] = [
        Period::Hour,
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Quarter,
        Period::Year,
    ];

    /// The bucket `time` (Unix seconds, UTC) falls in. Buckets of one period are consecutive
    /// integers, increasing with time.
    pub(crate) fn bucket(self, time: i64) -> i64 {
        let day = time.div_euclid(DAY);
        match self {
            Period::Hour => time.div_euclid(HOUR),
            Period::Day => day,
            // 1970-01-01 was a Thursday, so day 0 is the fourth day of week 0 (Monday = day -3).
            Period::Week => (day + 3).div_euclid(7),
            Period::Month => {
                let (year, month) = civil_from_days(day);
                year * 12 + i64::from(month - 1)
            }
            Period::Quarter => {
                let (year, month) = civil_from_days(day);
                year * 4 + i64::from((month - 1) / 3)
            }
            Period::Year => civil_from_days(day).0,
        }
    }
}

/// The Gregorian year and month (1–12) of a day counted from 1970-01-01, for every `i64` day
/// that `i64` seconds can produce. This is Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>): shift the epoch to
/// 0000-03-01 so that leap days fall at the end of a year, split into 400-year eras of
/// 146 097 days, then into years and months within the era.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // month counted from March, 0..=11
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // `month` is 1..=12 by construction.
    (year, month as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::{DateTime, Datelike};
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case(0, (1970, 1))]
    #[case(-1, (1969, 12))]
    #[case(59, (1970, 3))] // 1970-03-01
    #[case(11_016, (2000, 2))] // 2000-02-29, a leap day of a century year
    #[case(11_017, (2000, 3))]
    #[case(-719_468, (0, 3))] // 0000-03-01
    #[case(-719_469, (0, 2))]
    fn civil_dates(#[case] days: i64, #[case] want: (i64, u32)) {
        assert_eq!(civil_from_days(days), want);
    }

    /// 2024-12-30 is a Monday: it and 2025-01-05 (a Sunday) share a week across New Year;
    /// 2025-01-06 starts the next one.
    #[test]
    fn weeks_start_on_monday_across_new_year() {
        let monday = DateTime::parse_from_rfc3339("2024-12-30T00:00:00Z")
            .unwrap()
            .timestamp();
        let before = monday - 1;
        let sunday_night = monday + 7 * DAY - 1;
        let next_monday = monday + 7 * DAY;
        let w = Period::Week.bucket(monday);
        assert_eq!(Period::Week.bucket(before), w - 1);
        assert_eq!(Period::Week.bucket(sunday_night), w);
        assert_eq!(Period::Week.bucket(next_monday), w + 1);
    }

    #[test]
    fn extreme_times_have_buckets() {
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            for p in Period::ALL {
                let _ = p.bucket(t);
            }
        }
        assert!(Period::Year.bucket(i64::MAX) > 292_000_000_000);
        assert!(Period::Year.bucket(i64::MIN) < -292_000_000_000);
    }

    proptest! {
        /// Year and month agree with chrono wherever chrono has a date.
        #[test]
        fn matches_chrono(t in -8_000_000_000_000i64..8_000_000_000_000) {
            let dt = DateTime::from_timestamp(t, 0).unwrap();
            let (y, m) = civil_from_days(t.div_euclid(DAY));
            prop_assert_eq!((y, m), (i64::from(dt.year()), dt.month()));
            // The week is the one starting on the Monday on or before t's day (chrono's
            // weekday), at midnight, and ending a second before the next Monday.
            let monday = (dt.date_naive()
                - chrono::Days::new(u64::from(dt.weekday().num_days_from_monday())))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
            let w = Period::Week.bucket(t);
            prop_assert_eq!(Period::Week.bucket(monday), w);
            prop_assert_eq!(Period::Week.bucket(monday + 7 * DAY - 1), w);
            prop_assert_eq!(Period::Week.bucket(monday - 1), w - 1);
            let q = i64::from(dt.year()) * 4 + i64::from(dt.month0() / 3);
            prop_assert_eq!(Period::Quarter.bucket(t), q);
        }

        /// Buckets never decrease with time and every period's bucket changes exactly at its
        /// boundaries: one second later is the same bucket or the next one.
        #[test]
        fn buckets_are_monotone_and_consecutive(t in -100_000_000_000i64..100_000_000_000) {
            for p in Period::ALL {
                let (a, b) = (p.bucket(t), p.bucket(t + 1));
                prop_assert!(b == a || b == a + 1, "{p:?} {t}: {a} -> {b}");
            }
        }
    }
}
