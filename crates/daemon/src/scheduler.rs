//! The scheduler's decisions, apart from processes and clocks: [`Scheduler::tick`] takes the
//! time, each job's recorded times and a reading of the machine, and says which jobs to start,
//! pause, resume or throttle. The daemon calls it on every wake-up and carries the decisions
//! out; tests call it with an injected clock (`tests/scheduler.rs`).
//!
//! Rules:
//! - A job never runs twice at once; its due runs wait until it ends (and then collapse into
//!   one, as missed runs do: `snapguard_policy::schedule::due`).
//! - Jobs on the repository (backup, forget, prune, check) run one at a time, so a prune never
//!   fails on a backup's lock; local-snapshot jobs run beside them. Waiting jobs start in name
//!   order.
//! - A run more than [`CATCH_UP_AFTER_SECS`] after its scheduled time is a catch-up.
//! - `when = "idle"` jobs become pending at their scheduled time and start when
//!   [`IdleWatch`] says so, at the latest at the scheduled time plus the deadline.

use crate::runs::{JobTimes, Trigger};
use snapguard_policy::jobs::{JobAction, JobConfig, Timing};
use snapguard_policy::schedule::due;
use snapguard_policy::schedule::idle::{IdleAction, IdleSample, IdleThresholds, IdleWatch};
use std::collections::BTreeMap;

/// A run that starts this long after its scheduled time counts as a catch-up.
pub const CATCH_UP_AFTER_SECS: i64 = 120;

/// What the daemon should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Start {
        job: String,
        trigger: Trigger,
    },
    /// Stop the job's process for now (the user came back before its deadline).
    Pause {
        job: String,
    },
    /// Let a paused or throttled job go on at full speed.
    Resume {
        job: String,
    },
    /// Let it go on, slowly (the user is back but the deadline has passed).
    Throttle {
        job: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Speed {
    Full,
    Paused,
    Throttled,
}

#[derive(Debug)]
struct Entry {
    config: JobConfig,
    /// An idle job's scheduled time, once due and not yet started.
    pending: Option<i64>,
    running: Option<Speed>,
    /// The deadline of the current idle run (for pausing decisions while it runs).
    deadline: Option<i64>,
    watch: IdleWatch,
}

/// The scheduler of one daemon.
#[derive(Debug)]
pub struct Scheduler<Tz: chrono::TimeZone> {
    tz: Tz,
    thresholds: IdleThresholds,
    jobs: BTreeMap<String, Entry>,
}

fn uses_repository(a: &JobAction) -> bool {
    !matches!(
        a,
        JobAction::LocalSnapshot { .. } | JobAction::LocalCleanup { .. }
    )
}

impl<Tz: chrono::TimeZone> Scheduler<Tz> {
    pub fn new(jobs: &BTreeMap<String, JobConfig>, tz: Tz, thresholds: IdleThresholds) -> Self {
        Scheduler {
            tz,
            thresholds,
            jobs: jobs
                .iter()
                .map(|(name, config)| {
                    (
                        name.clone(),
                        Entry {
                            config: config.clone(),
                            pending: None,
                            running: None,
                            deadline: None,
                            watch: IdleWatch::new(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// The decisions for `now`. `times` gives each job's recorded times (first seen, last
    /// start); `sample` is a reading of the machine, `None` if none could be taken (idle jobs
    /// then start only at their deadline).
    pub fn tick(
        &mut self,
        now: i64,
        times: &mut dyn FnMut(&str) -> JobTimes,
        sample: Option<&IdleSample>,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        let mut repo_busy = self
            .jobs
            .values()
            .any(|e| e.running.is_some() && uses_repository(&e.config.action));
        let names: Vec<String> = self.jobs.keys().cloned().collect();
        for name in names {
            let thresholds = self.thresholds;
            let tz = self.tz.clone();
            let Some(e) = self.jobs.get_mut(&name) else {
                continue;
            };
            if let Some(speed) = e.running {
                // Only idle jobs change speed while they run.
                let (Timing::Idle { .. }, Some(s), Some(deadline)) =
                    (e.config.timing, sample, e.deadline)
                else {
                    continue;
                };
                let want = match e.watch.observe(s, &thresholds, true, deadline) {
                    IdleAction::Pause => Speed::Paused,
                    IdleAction::Throttle => Speed::Throttled,
                    _ => Speed::Full,
                };
                if want != speed {
                    e.running = Some(want);
                    out.push(match want {
                        Speed::Paused => Decision::Pause { job: name.clone() },
                        Speed::Throttled => Decision::Throttle { job: name.clone() },
                        Speed::Full => Decision::Resume { job: name.clone() },
                    });
                }
                continue;
            }
            let repo = uses_repository(&e.config.action);
            let t = times(&name);
            let trigger = match e.config.timing {
                Timing::OnTime => {
                    let d = due(&e.config.schedule, t.last_start, t.first_seen, now, &tz);
                    if !d.run_now {
                        continue;
                    }
                    let late = d.scheduled.is_some_and(|s| now - s > CATCH_UP_AFTER_SECS);
                    if late || d.missed > 0 {
                        Trigger::CatchUp
                    } else {
                        Trigger::Schedule
                    }
                }
                Timing::Idle { deadline_secs } => {
                    if e.pending.is_none() {
                        let d = due(&e.config.schedule, t.last_start, t.first_seen, now, &tz);
                        if !d.run_now {
                            continue;
                        }
                        e.pending = Some(d.scheduled.unwrap_or(now));
                        e.watch = IdleWatch::new();
                    }
                    let deadline = e.pending.unwrap_or(now).saturating_add(deadline_secs);
                    let action = match sample {
                        Some(s) => e.watch.observe(s, &thresholds, false, deadline),
                        None if now >= deadline => IdleAction::StartDeadline,
                        None => IdleAction::Wait("no reading of the machine".into()),
                    };
                    e.deadline = Some(deadline);
                    match action {
                        IdleAction::StartIdle => Trigger::Idle,
                        IdleAction::StartDeadline => Trigger::Deadline,
                        _ => continue,
                    }
                }
            };
            if repo && repo_busy {
                continue;
            }
            repo_busy |= repo;
            e.pending = None;
            e.running = Some(Speed::Full);
            out.push(Decision::Start {
                job: name.clone(),
                trigger,
            });
        }
        out
    }

    /// A manual start ("run now"): refused (false) while the job runs.
    pub fn start_manual(&mut self, job: &str) -> bool {
        match self.jobs.get_mut(job) {
            Some(e) if e.running.is_none() => {
                e.running = Some(Speed::Full);
                e.pending = None;
                true
            }
            _ => false,
        }
    }

    /// The job's process ended.
    pub fn finished(&mut self, job: &str) {
        if let Some(e) = self.jobs.get_mut(job) {
            e.running = None;
            e.deadline = None;
        }
    }

    /// Whether the job is running.
    pub fn is_running(&self, job: &str) -> bool {
        self.jobs.get(job).is_some_and(|e| e.running.is_some())
    }

    /// The earliest time after `now` at which something may become due, for the daemon's
    /// sleep (it also wakes on events and re-reads the machine while idle jobs wait).
    pub fn next_wakeup(&self, now: i64, times: &mut dyn FnMut(&str) -> JobTimes) -> Option<i64> {
        self.jobs
            .iter()
            .filter(|(_, e)| e.running.is_none() && e.pending.is_none())
            .filter_map(|(name, e)| {
                let t = times(name);
                due(
                    &e.config.schedule,
                    t.last_start,
                    t.first_seen,
                    now,
                    &self.tz,
                )
                .next
            })
            .min()
    }
}
