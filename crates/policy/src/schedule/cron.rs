//! Cron expressions: the five fields of Vixie cron (minute, hour, day of month, month, day of
//! week) with lists, ranges, steps and names, and the `@hourly`-style macros.
//!
//! Times are wall-clock times in a [`chrono::TimeZone`] the caller passes, so a job at 03:00
//! stays at 03:00 across daylight-saving changes. A time that does not exist on a
//! spring-forward day (02:30 when clocks jump from 02:00 to 03:00) fires at the first instant
//! after the gap; a time that happens twice on a fall-back day fires once, the first time.

use super::ScheduleError;
use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike};

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    weekdays: u8,
    /// The day-of-month field was `*` (possibly with a step): see [`CronExpr::day_matches`].
    days_star: bool,
    weekdays_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// How far ahead a next run is searched: long enough for 29 February on a given weekday.
const SEARCH_DAYS: i64 = 366 * 28;

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Names and numbers start at this value (1 for months, 0 for weekdays).
    name_base: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        name_base: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        name_base: 0,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        name_base: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        name_base: 1,
    },
    Field {
        name: "day of week",
        // 7 is Sunday as well; folded into 0 after parsing.
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        name_base: 0,
    },
];

impl CronExpr {
    /// Parse five whitespace-separated fields, or one of `@yearly`, `@annually`, `@monthly`,
    /// `@weekly`, `@daily`, `@midnight`, `@hourly`.
    pub fn parse(text: &str) -> Result<CronExpr, ScheduleError> {
        let err = |reason: String| ScheduleError::Cron {
            input: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
            "@monthly" => "0 0 1 * *".to_owned(),
            "@weekly" => "0 0 * * 0".to_owned(),
            "@daily" | "@midnight" => "0 0 * * *".to_owned(),
            "@hourly" => "0 * * * *".to_owned(),
            m if m.starts_with('@') => {
                return Err(err(format!(
                    "unknown macro {m}; use @hourly, @daily, @weekly, @monthly or @yearly"
                )))
            }
            _ => trimmed.to_owned(),
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(err(format!(
                "{} fields; a cron expression has five: minute hour day-of-month month day-of-week (for example \"0 3 * * *\")",
                parts.len()
            )));
        }
        let mut bits = [0u64; 5];
        for (i, (part, field)) in parts.iter().zip(FIELDS.iter()).enumerate() {
            bits[i] = parse_field(part, field).map_err(err)?;
        }
        let mut weekdays = bits[4];
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        let expr = CronExpr {
            text: trimmed.to_owned(),
            minutes: bits[0],
            hours: bits[1] as u32,
            days: bits[2] as u32,
            months: bits[3] as u16,
            weekdays: weekdays as u8,
            days_star: parts[2].starts_with('*'),
            weekdays_star: parts[4].starts_with('*'),
        };
        if !expr.can_ever_match() {
            return Err(err(
                "the day of month never occurs in the months given (for example 30 February)"
                    .into(),
            ));
        }
        Ok(expr)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether some month given has the day of month given (days are OR-ed with weekdays when
    /// both are restricted, so then any weekday will do).
    fn can_ever_match(&self) -> bool {
        if !self.weekdays_star && !self.days_star {
            return true;
        }
        if self.days_star {
            return true;
        }
        (1..=12u32).any(|m| {
            self.months & (1 << m) != 0 && {
                let longest = match m {
                    2 => 29,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                (1..=longest).any(|d| self.days & (1 << d) != 0)
            }
        })
    }

    /// Vixie cron's rule: when both day fields are restricted (neither starts with `*`) a day
    /// matches if either does; otherwise both must match, so `*/2` in one field still
    /// restricts.
    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.days_star || self.weekdays_star {
            // `*` sets every bit, so only the restricted field (or a `*/2` step) counts.
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first wall-clock minute at or after `t` (a whole minute) that matches, within the
    /// search horizon.
    fn next_civil(&self, mut t: NaiveDateTime) -> Option<NaiveDateTime> {
        let end = t + Duration::days(SEARCH_DAYS);
        while t < end {
            let date = t.date();
            if self.months & (1 << date.month()) == 0 {
                let (y, m) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_matches(date) {
                t = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            let Some(hour) = next_bit(u64::from(self.hours), t.hour()) else {
                t = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            };
            if hour != t.hour() {
                t = date.and_hms_opt(hour, 0, 0)?;
            }
            let Some(minute) = next_bit(self.minutes, t.minute()) else {
                t = date.and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
                continue;
            };
            return date.and_hms_opt(t.hour(), minute, 0);
        }
        None
    }

    /// The first time strictly after `after_secs` (Unix seconds) at which this expression
    /// fires in `tz`; `None` only if it never fires within 28 years.
    pub fn next_after<Tz: TimeZone>(&self, after_secs: i64, tz: &Tz) -> Option<i64> {
        let after = tz.timestamp_opt(after_secs, 0).single()?;
        let local = after.naive_local();
        let mut t = local.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        for _ in 0..100_000 {
            t = self.next_civil(t)?;
            match tz.from_local_datetime(&t) {
                LocalResult::Single(dt) | LocalResult::Ambiguous(dt, _) => {
                    let secs = dt.timestamp();
                    if secs > after_secs {
                        return Some(secs);
                    }
                }
                LocalResult::None => {
                    // In a spring-forward gap: the first instant after it.
                    let mut g = t;
                    for _ in 0..(26 * 60) {
                        g += Duration::minutes(1);
                        if let LocalResult::Single(dt) | LocalResult::Ambiguous(dt, _) =
                            tz.from_local_datetime(&g)
                        {
                            let secs = dt.timestamp();
                            if secs > after_secs {
                                return Some(secs);
                            }
                            break;
                        }
                    }
                }
            }
            t += Duration::minutes(1);
        }
        None
    }
}

/// The lowest set bit at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = bits >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

fn parse_field(text: &str, f: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    if text.is_empty() {
        return Err(format!("empty {} field", f.name));
    }
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| {
                    format!("{} field: step {s:?} in {item:?} is not a number", f.name)
                })?;
                if step == 0 {
                    return Err(format!("{} field: a step of 0 in {item:?}", f.name));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (f.min, if f.max == 7 { 6 } else { f.max })
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, f, item)?, value(b, f, item)?)
        } else {
            let v = value(range, f, item)?;
            // `5/15` means from 5 to the end in steps of 15.
            (v, if item.contains('/') { f.max } else { v })
        };
        if lo > hi {
            return Err(format!(
                "{} field: the range {item:?} runs backwards; write it from low to high",
                f.name
            ));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn value(text: &str, f: &Field, item: &str) -> Result<u32, String> {
    if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(i as u32 + f.name_base);
    }
    let v: u32 = text.parse().map_err(|_| {
        let names = if f.names.is_empty() {
            String::new()
        } else {
            format!(" or a name ({}…)", f.names[..3].join(", "))
        };
        format!(
            "{} field: {text:?} in {item:?} is not a number from {} to {}{names}",
            f.name, f.min, f.max
        )
    })?;
    if v < f.min || v > f.max {
        return Err(format!(
            "{} field: {v} in {item:?} is outside {}-{}",
            f.name, f.min, f.max
        ));
    }
    Ok(v)
}
