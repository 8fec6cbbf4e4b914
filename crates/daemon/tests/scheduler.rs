//! The scheduler with an injected clock: a simulated machine whose jobs take minutes, whose
//! daemon is stopped for days, and whose user comes and goes.

use chrono::Utc;
use snapguard_daemon::runs::{JobTimes, Trigger};
use snapguard_daemon::scheduler::{Decision, Scheduler};
use snapguard_policy::jobs::JobConfig;
use snapguard_policy::schedule::idle::{parse_pressure, IdleSample, IdleThresholds};
use std::collections::BTreeMap;

fn jobs(text: &str) -> BTreeMap<String, JobConfig> {
    #[derive(serde::Deserialize)]
    struct F {
        jobs: BTreeMap<String, JobConfig>,
    }
    toml::from_str::<F>(text).expect("jobs").jobs
}

fn utc(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("time")
        .timestamp()
}

/// The daemon's side: recorded times, running processes with their end times, and a log.
struct World {
    times: BTreeMap<String, JobTimes>,
    running: BTreeMap<String, i64>,
    durations: BTreeMap<String, i64>,
    log: Vec<(i64, Decision)>,
}

impl World {
    fn new(durations: &[(&str, i64)]) -> World {
        World {
            times: BTreeMap::new(),
            running: BTreeMap::new(),
            durations: durations.iter().map(|(n, d)| (n.to_string(), *d)).collect(),
            log: Vec::new(),
        }
    }

    /// One wake-up at `now`.
    fn step(&mut self, s: &mut Scheduler<Utc>, now: i64, sample: Option<&IdleSample>) {
        let ended: Vec<String> = self
            .running
            .iter()
            .filter(|(_, end)| **end <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for n in ended {
            self.running.remove(&n);
            s.finished(&n);
        }
        let times = &mut self.times;
        let mut get = |name: &str| {
            *times.entry(name.to_string()).or_insert(JobTimes {
                first_seen: now,
                last_start: None,
            })
        };
        let decisions = s.tick(now, &mut get, sample);
        for d in decisions {
            if let Decision::Start { job, .. } = &d {
                self.times.get_mut(job).expect("seen").last_start = Some(now);
                let dur = self.durations.get(job).copied().unwrap_or(60);
                self.running.insert(job.clone(), now + dur);
            }
            self.log.push((now, d));
        }
    }

    fn starts(&self) -> Vec<(i64, String, Trigger)> {
        self.log
            .iter()
            .filter_map(|(t, d)| match d {
                Decision::Start { job, trigger } => Some((*t, job.clone(), *trigger)),
                _ => None,
            })
            .collect()
    }
}

const CONFIG: &str = r#"
[jobs.home]
kind = "backup"
paths = ["/home"]
schedule = "0 3 * * *"

[jobs.prune]
kind = "prune"
schedule = "30 3 * * *"

[jobs.timeline]
kind = "local-snapshot"
local = "data"
schedule = "0 * * * *"
"#;

#[test]
fn jobs_run_at_their_times_one_repository_job_at_a_time() {
    let mut s = Scheduler::new(&jobs(CONFIG), Utc, IdleThresholds::default());
    // The backup takes 45 minutes, so the prune due at 03:30 waits for it; local snapshots
    // go on beside both.
    let mut w = World::new(&[("home", 45 * 60), ("prune", 10 * 60), ("timeline", 30)]);
    let t0 = utc("2026-11-24T00:00:00Z");
    for m in 0..(6 * 60) {
        w.step(&mut s, t0 + m * 60, None);
    }
    let starts = w.starts();
    let at = |job: &str| -> Vec<String> {
        starts
            .iter()
            .filter(|(_, j, _)| j == job)
            .map(|(t, _, tr)| format!("{} {tr:?}", (t - t0) / 60))
            .collect()
    };
    assert_eq!(at("home"), ["180 Schedule"]);
    // 03:30 is due while the backup runs until 03:45: it starts then, a catch-up.
    assert_eq!(at("prune"), ["225 CatchUp"]);
    assert_eq!(
        at("timeline"),
        [
            "60 Schedule",
            "120 Schedule",
            "180 Schedule",
            "240 Schedule",
            "300 Schedule"
        ]
    );
}

#[test]
fn a_daemon_stopped_for_three_days_catches_up_once_per_job() {
    let mut s = Scheduler::new(&jobs(CONFIG), Utc, IdleThresholds::default());
    let mut w = World::new(&[("home", 600), ("prune", 60), ("timeline", 30)]);
    let t0 = utc("2026-11-20T02:00:00Z");
    w.step(&mut s, t0, None);
    for m in 1..120 {
        w.step(&mut s, t0 + m * 60, None);
    }
    let before = w.starts().len();
    // Off from 04:00 on the 20th to 12:00 on the 23rd; a new scheduler, the same records.
    let mut s = Scheduler::new(&jobs(CONFIG), Utc, IdleThresholds::default());
    let back = utc("2026-11-23T12:00:00Z");
    w.step(&mut s, back, None);
    w.step(&mut s, back + 60, None);
    let after: Vec<(i64, String, Trigger)> = w.starts()[before..].to_vec();
    // home and timeline start at once (timeline runs beside the backup); prune waits for
    // the backup to end: each once, as catch-ups.
    assert_eq!(
        after,
        [
            (back, "home".to_string(), Trigger::CatchUp),
            (back, "timeline".to_string(), Trigger::CatchUp),
        ]
    );
    for m in 2..30 {
        w.step(&mut s, back + m * 60, None);
    }
    let prunes: Vec<_> = w.starts()[before..]
        .iter()
        .filter(|(_, j, _)| j == "prune")
        .cloned()
        .collect();
    assert_eq!(
        prunes,
        [(back + 600, "prune".to_string(), Trigger::CatchUp)]
    );
}

fn reading(at: i64, load1: f64, session_idle: Option<bool>) -> IdleSample {
    let p = parse_pressure("some avg10=0.50 avg60=0.50 avg300=0.50 total=1\n").expect("psi");
    IdleSample {
        at,
        load1,
        cpus: 2,
        cpu: Some(p),
        io: Some(p),
        session_idle,
    }
}

#[test]
fn an_idle_job_waits_for_idleness_pauses_for_the_user_and_meets_its_deadline() {
    let cfg = jobs(
        r#"
        [jobs.home]
        kind = "backup"
        paths = ["/home"]
        schedule = "0 20 * * *"
        when = "idle"
        deadline = "4h"
        "#,
    );
    let mut s = Scheduler::new(&cfg, Utc, IdleThresholds::default());
    let mut w = World::new(&[("home", 3600)]);
    let t0 = utc("2026-11-24T19:00:00Z");
    // 19:00-20:30 the user works; 20:30 they leave; 20:45 they come back for ten minutes.
    for m in 0..(5 * 60) {
        let now = t0 + m * 60;
        let user_here = m < 90 || (105..115).contains(&m);
        let load = if w.running.is_empty() && user_here {
            1.5
        } else {
            0.2
        };
        w.step(&mut s, now, Some(&reading(now, load, Some(!user_here))));
    }
    let events: Vec<String> = w
        .log
        .iter()
        .map(|(t, d)| format!("{} {d:?}", (t - t0) / 60))
        .collect();
    assert_eq!(
        events,
        [
            // Pending from 20:00; idle from 20:30, started after two quiet minutes.
            "92 Start { job: \"home\", trigger: Idle }",
            "105 Pause { job: \"home\" }",
            "115 Resume { job: \"home\" }",
        ],
        "{events:#?}"
    );

    // The next evening the user never leaves: the backup starts at 00:00 (20:00 + 4 h) and is
    // throttled, not paused, while they stay.
    let mut s = Scheduler::new(&cfg, Utc, IdleThresholds::default());
    let mut w2 = World::new(&[("home", 3600)]);
    w2.times = w.times.clone();
    let t1 = utc("2026-11-25T19:00:00Z");
    for m in 0..(6 * 60) {
        let now = t1 + m * 60;
        w2.step(&mut s, now, Some(&reading(now, 1.5, Some(false))));
    }
    let events: Vec<String> = w2
        .log
        .iter()
        .map(|(t, d)| format!("{} {d:?}", (t - t1) / 60))
        .collect();
    assert_eq!(
        events,
        [
            "300 Start { job: \"home\", trigger: Deadline }",
            "301 Throttle { job: \"home\" }",
        ],
        "{events:#?}"
    );
}

#[test]
fn a_manual_run_is_refused_while_the_job_runs_and_counts_as_its_last_start() {
    let mut s = Scheduler::new(&jobs(CONFIG), Utc, IdleThresholds::default());
    assert!(s.start_manual("prune"));
    assert!(s.is_running("prune"));
    assert!(!s.start_manual("prune"), "two runs of one job at once");
    assert!(!s.start_manual("nonexistent"));
    s.finished("prune");
    assert!(!s.is_running("prune"));
    let now = utc("2026-11-24T10:00:00Z");
    let mut times = |_: &str| JobTimes {
        first_seen: now - 86_400,
        last_start: Some(now - 60),
    };
    assert_eq!(
        s.next_wakeup(now, &mut times),
        Some(utc("2026-11-24T11:00:00Z")),
        "the hourly timeline is next"
    );
}
