//! Idle-time scheduling: a job marked `when = "idle"` starts once the machine has been idle for
//! a while, and at the latest at its deadline; while it runs it is paused when the user comes
//! back (throttled instead once the deadline has passed, so it still finishes).
//!
//! The readings come from the daemon: the load average (`/proc/loadavg`), CPU and I/O pressure
//! (`/proc/pressure/{cpu,io}`, Linux PSI) and, where logind runs, whether the user's session
//! says it is idle. [`parse_pressure`] and [`parse_loadavg`] read those files' text;
//! [`IdleWatch`] turns a series of readings into an [`IdleAction`]. Nothing here reads them
//! itself, so recorded readings replay exactly (`tests/idle.rs`).

use super::ScheduleError;

/// One line of a PSI file: the share of time (percent) some task (or, for `full`, every task)
/// waited for the resource, averaged over 10, 60 and 300 seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PressureLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
}

/// A PSI file (`/proc/pressure/cpu`, `/proc/pressure/io`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pressure {
    pub some: PressureLine,
    /// Absent in the CPU file of kernels before 5.13.
    pub full: Option<PressureLine>,
}

fn bad(input: &str, reason: &str) -> ScheduleError {
    ScheduleError::Invalid {
        input: input.chars().take(200).collect(),
        reason: reason.to_owned(),
    }
}

/// Parse a PSI file's text: `some avg10=0.12 avg60=… avg300=… total=…` and optionally a `full`
/// line.
pub fn parse_pressure(text: &str) -> Result<Pressure, ScheduleError> {
    let mut some = None;
    let mut full = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let kind = words.next().unwrap_or_default();
        let mut avg = [None; 3];
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(bad(text, "a field without '='"));
            };
            let slot = match k {
                "avg10" => 0,
                "avg60" => 1,
                "avg300" => 2,
                _ => continue,
            };
            let v: f64 = v
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(text, "an average that is not a non-negative number"))?;
            avg[slot] = Some(v);
        }
        let [Some(avg10), Some(avg60), Some(avg300)] = avg else {
            return Err(bad(text, "a line without avg10, avg60 and avg300"));
        };
        let l = PressureLine {
            avg10,
            avg60,
            avg300,
        };
        match kind {
            "some" => some = Some(l),
            "full" => full = Some(l),
            _ => return Err(bad(text, "a line that is neither 'some' nor 'full'")),
        }
    }
    let some = some.ok_or_else(|| bad(text, "no 'some' line"))?;
    Ok(Pressure { some, full })
}

/// The one-minute load average from `/proc/loadavg`'s text.
pub fn parse_loadavg(text: &str) -> Result<f64, ScheduleError> {
    text.split_whitespace()
        .next()
        .and_then(|w| w.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| bad(text, "the first field is not a load average"))
}

/// One reading of the machine's state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IdleSample {
    /// When it was taken (Unix seconds).
    pub at: i64,
    pub load1: f64,
    /// Online CPUs (at least 1).
    pub cpus: u32,
    /// `None` where PSI is not available (kernel without CONFIG_PSI).
    pub cpu: Option<Pressure>,
    pub io: Option<Pressure>,
    /// logind's `IdleHint` of the active session: `Some(true)` idle, `Some(false)` someone is
    /// using it, `None` no session manager (a server).
    pub session_idle: Option<bool>,
}

/// When the machine counts as idle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IdleThresholds {
    /// Load average per CPU below which the machine may be idle.
    pub load_per_cpu: f64,
    /// CPU `some` pressure (avg10, percent) below which it may be idle.
    pub cpu_pressure: f64,
    /// I/O `some` pressure (avg10, percent) below which it may be idle.
    pub io_pressure: f64,
    /// How long it must stay idle before a job starts (seconds).
    pub settle_secs: i64,
}

impl Default for IdleThresholds {
    fn default() -> Self {
        IdleThresholds {
            load_per_cpu: 0.3,
            cpu_pressure: 5.0,
            io_pressure: 5.0,
            settle_secs: 120,
        }
    }
}

/// What a reading says about the machine.
#[derive(Clone, Debug, PartialEq)]
pub enum Activity {
    Idle,
    /// The user's session is active.
    UserActive,
    /// No one is at the session (or there is none) but the machine is working; why.
    Busy(String),
}

/// Classify one reading.
pub fn classify(s: &IdleSample, th: &IdleThresholds) -> Activity {
    if s.session_idle == Some(false) {
        return Activity::UserActive;
    }
    let per_cpu = s.load1 / f64::from(s.cpus.max(1));
    if per_cpu >= th.load_per_cpu {
        return Activity::Busy(format!(
            "load {:.2} on {} CPUs (idle below {:.2} per CPU)",
            s.load1, s.cpus, th.load_per_cpu
        ));
    }
    if let Some(p) = s.cpu.filter(|p| p.some.avg10 >= th.cpu_pressure) {
        return Activity::Busy(format!(
            "CPU pressure {:.1}% (idle below {:.1}%)",
            p.some.avg10, th.cpu_pressure
        ));
    }
    if let Some(p) = s.io.filter(|p| p.some.avg10 >= th.io_pressure) {
        return Activity::Busy(format!(
            "I/O pressure {:.1}% (idle below {:.1}%)",
            p.some.avg10, th.io_pressure
        ));
    }
    Activity::Idle
}

/// What to do with an idle-time job.
#[derive(Clone, Debug, PartialEq)]
pub enum IdleAction {
    /// Not running; keep waiting for idleness (why not yet).
    Wait(String),
    /// Start it: the machine has been idle long enough.
    StartIdle,
    /// Start it: the deadline has come, idle or not.
    StartDeadline,
    /// Running: go on at full speed.
    Run,
    /// Running past the deadline while the user is back: go on, slowly.
    Throttle,
    /// Running before the deadline and the user came back: pause until idle again.
    Pause,
}

/// Follows readings over time: how long the machine has been idle, and what a job should do.
///
/// While the job runs its own work raises the load and the pressure, so readings then only
/// count for the user's presence (the session's idle hint); without a session manager a
/// started job runs to the end.
#[derive(Clone, Debug, Default)]
pub struct IdleWatch {
    idle_since: Option<i64>,
}

impl IdleWatch {
    pub fn new() -> IdleWatch {
        IdleWatch::default()
    }

    /// Take a reading and decide. `running`: whether the job is running now; `deadline`: the
    /// latest time it must start by.
    pub fn observe(
        &mut self,
        s: &IdleSample,
        th: &IdleThresholds,
        running: bool,
        deadline: i64,
    ) -> IdleAction {
        let activity = classify(s, th);
        if running {
            // Our own load does not count; only the user does.
            return match (s.session_idle, s.at >= deadline) {
                (Some(false), true) => IdleAction::Throttle,
                (Some(false), false) => IdleAction::Pause,
                _ => IdleAction::Run,
            };
        }
        match activity {
            Activity::Idle => {
                let since = *self.idle_since.get_or_insert(s.at);
                if s.at >= deadline {
                    IdleAction::StartDeadline
                } else if s.at - since >= th.settle_secs {
                    IdleAction::StartIdle
                } else {
                    IdleAction::Wait(format!(
                        "idle for {} s of the {} s needed",
                        s.at - since,
                        th.settle_secs
                    ))
                }
            }
            Activity::UserActive | Activity::Busy(_) if s.at >= deadline => {
                self.idle_since = None;
                IdleAction::StartDeadline
            }
            Activity::UserActive => {
                self.idle_since = None;
                IdleAction::Wait("the user's session is active".into())
            }
            Activity::Busy(why) => {
                self.idle_since = None;
                IdleAction::Wait(why)
            }
        }
    }

    /// When the current idle stretch began, if the machine is idle.
    pub fn idle_since(&self) -> Option<i64> {
        self.idle_since
    }
}

/// What logind says of one session (`loginctl show-session ID -p Class -p Active -p IdleHint`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionProps {
    /// `user`, `greeter`, `lock-screen`, `background` …
    pub class: String,
    pub active: bool,
    pub idle_hint: bool,
}

/// Parse `KEY=VALUE` lines as `loginctl show-session` prints them; unknown keys are ignored.
pub fn parse_session_props(text: &str) -> SessionProps {
    let mut p = SessionProps::default();
    for line in text.lines() {
        match line.trim().split_once('=') {
            Some(("Class", v)) => p.class = v.to_string(),
            Some(("Active", v)) => p.active = v == "yes",
            Some(("IdleHint", v)) => p.idle_hint = v == "yes",
            _ => {}
        }
    }
    p
}

/// The session idle hint for [`IdleSample::session_idle`]: `Some(false)` when an active user
/// session is not idle (someone is at the machine), `Some(true)` when every active user session
/// is idle, `None` when there is no user session (a server; the load decides alone).
pub fn user_presence(sessions: &[SessionProps]) -> Option<bool> {
    let active: Vec<&SessionProps> = sessions
        .iter()
        .filter(|s| s.class == "user" && s.active)
        .collect();
    if active.is_empty() {
        return None;
    }
    Some(active.iter().all(|s| s.idle_hint))
}
