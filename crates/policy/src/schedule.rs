//! When jobs run: schedules (cron expressions or plain intervals), what is due now after the
//! machine was asleep or off (missed runs catch up once, not once per missed time), and the
//! idle-time decision ([`idle`]).
//!
//! Pure like the rest of the crate: the caller passes the current time (Unix seconds) and the
//! time zone; nothing here reads a clock or a file. The daemon samples `/proc` and logind and
//! hands the readings to [`idle::IdleWatch`].

pub mod cron;
pub mod idle;

pub use cron::CronExpr;

/// A schedule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid cron expression {input:?}: {reason}")]
    Cron { input: String, reason: String },
    #[error("invalid schedule {input:?}: {reason}")]
    Invalid { input: String, reason: String },
}

/// When a job runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// At the times a cron expression names, in the caller's time zone.
    Cron(CronExpr),
    /// Every so many seconds after the previous run started.
    Every(i64),
}

impl Schedule {
    /// `every 6h`, `every 1d12h`, `every 90m` (units `w`, `d`, `h`, `m` or `min` for minutes,
    /// `s`; at least a minute in all), a cron
    /// expression (`30 2 * * *`), a cron macro (`@daily`) or one of the words `hourly`,
    /// `daily`, `weekly`, `monthly`, `yearly`.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let t = text.trim();
        if let Some(d) = t.strip_prefix("every ") {
            let secs = parse_interval(d.trim()).map_err(|reason| ScheduleError::Invalid {
                input: text.to_owned(),
                reason,
            })?;
            if secs < 60 {
                return Err(ScheduleError::Invalid {
                    input: text.to_owned(),
                    reason: "the interval must be at least one minute".into(),
                });
            }
            return Ok(Schedule::Every(secs));
        }
        match t {
            "hourly" | "daily" | "weekly" | "monthly" | "yearly" => {
                CronExpr::parse(&format!("@{t}")).map(Schedule::Cron)
            }
            _ => CronExpr::parse(t).map(Schedule::Cron),
        }
    }

    /// The first time strictly after `after_secs` at which the schedule fires; for an interval,
    /// `after_secs` is the previous run.
    pub fn next_after<Tz: chrono::TimeZone>(&self, after_secs: i64, tz: &Tz) -> Option<i64> {
        match self {
            Schedule::Cron(c) => c.next_after(after_secs, tz),
            Schedule::Every(d) => after_secs.checked_add(*d),
        }
    }
}

/// What the scheduler should do about one job now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// Start the job now.
    pub run_now: bool,
    /// How many scheduled times passed without a run (counted up to [`MISSED_CAP`]); they are
    /// caught up by this one run.
    pub missed: u32,
    /// When the job is next due if it runs now (or, if not due, when it will be).
    pub next: Option<i64>,
    /// The scheduled time this run stands for: the latest one at or before `now` (`None` if
    /// not due). Idle jobs count their deadline from it; a run well after it is a catch-up.
    pub scheduled: Option<i64>,
}

/// Missed runs are counted up to this many, for the log; they all collapse into one run.
pub const MISSED_CAP: u32 = 1000;

/// Whether a job with `schedule` is due at `now`.
///
/// `last_run` is when it last started (`None`: never); `since` is when the scheduler first saw
/// the job (its configuration was loaded), so a new cron job waits for its first time instead of
/// running at once. A new interval job runs at once. A `last_run` in the future (the clock was
/// set back) counts as now, so a wrong clock cannot stop a job for long.
pub fn due<Tz: chrono::TimeZone>(
    schedule: &Schedule,
    last_run: Option<i64>,
    since: i64,
    now: i64,
    tz: &Tz,
) -> Due {
    let last = last_run.map(|l| l.min(now));
    match schedule {
        Schedule::Every(d) => match last {
            None => Due {
                run_now: true,
                missed: 0,
                next: now.checked_add(*d),
                scheduled: Some(now),
            },
            Some(l) => {
                let first = l.saturating_add(*d);
                if first <= now {
                    let periods = (now - first) / d;
                    let missed = periods.min(i64::from(MISSED_CAP)) as u32;
                    Due {
                        run_now: true,
                        missed,
                        next: now.checked_add(*d),
                        scheduled: Some(first + periods * d),
                    }
                } else {
                    Due {
                        run_now: false,
                        missed: 0,
                        next: Some(first),
                        scheduled: None,
                    }
                }
            }
        },
        Schedule::Cron(_) => {
            let reference = last.unwrap_or(since.min(now));
            match schedule.next_after(reference, tz) {
                Some(first) if first <= now => {
                    let mut missed = 0u32;
                    let mut t = first;
                    while let Some(n) = schedule.next_after(t, tz) {
                        if n > now {
                            break;
                        }
                        missed += 1;
                        t = n;
                        if missed >= MISSED_CAP {
                            // The latest scheduled time, without walking to it.
                            t = latest_at_or_before(schedule, t, now, tz);
                            break;
                        }
                    }
                    Due {
                        run_now: true,
                        missed,
                        next: schedule.next_after(now, tz),
                        scheduled: Some(t),
                    }
                }
                next => Due {
                    run_now: false,
                    missed: 0,
                    next,
                    scheduled: None,
                },
            }
        }
    }
}

/// An interval such as `6h`, `1d12h`, `90m`, `45min`: numbers with units `w`, `d`, `h`, `m` or
/// `min` (minutes, unlike retention durations where `m` is a month) and `s`.
fn parse_interval(text: &str) -> Result<i64, String> {
    const HELP: &str = "use numbers with units w, d, h, m (minutes) or s, e.g. 6h or 1d12h";
    if text.is_empty() {
        return Err(format!("no interval; {HELP}"));
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{rest:?} does not start with a number; {HELP}"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{:?} is too large", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "w" => 7 * 86_400,
            "d" => 86_400,
            "h" => 3_600,
            "m" | "min" => 60,
            "s" => 1,
            "" => return Err(format!("a number without a unit; {HELP}")),
            u => return Err(format!("unknown unit {u:?}; {HELP}")),
        };
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "the interval is too long".to_string())?;
    }
    Ok(total)
}

/// The latest time at or before `now` (and not before `from`) at which `schedule` fires,
/// searched backwards a day at a time, so a long gap is not walked minute by minute.
fn latest_at_or_before<Tz: chrono::TimeZone>(
    schedule: &Schedule,
    from: i64,
    now: i64,
    tz: &Tz,
) -> i64 {
    let mut start = now;
    loop {
        start = (start - 86_400).max(from);
        let mut best = None;
        let mut t = start;
        while let Some(n) = schedule.next_after(t, tz) {
            if n > now {
                break;
            }
            best = Some(n);
            t = n;
        }
        if let Some(b) = best {
            return b;
        }
        if start <= from {
            return from;
        }
    }
}
