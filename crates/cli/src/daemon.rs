//! `snapguard daemon`: runs the `[jobs.NAME]` of the configuration file on their schedules, in
//! the foreground (a systemd service or a container runs it as it is), and `snapguard jobs`:
//! the runs it recorded and their logs.
//!
//! One event loop: it wakes at the next scheduled time, at least every [`TICK`] (to read the
//! machine for idle jobs), and whenever a job prints a line or ends. Each job runs as a child
//! process of this binary (`snapguard --json backup …`) with the daemon's repository options
//! in its environment, so a job that crashes cannot take the daemon with it, pausing is
//! SIGSTOP/SIGCONT and throttling is the lowest CPU priority. Its stderr lines are the run's
//! task log; its JSON result on stdout is the run's summary. The decisions are
//! `snapguard_daemon::scheduler`; the records `snapguard_daemon::State`.

use crate::args::GlobalArgs;
use crate::commands::print_json;
use crate::{render, usage};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use snapguard_daemon::runs::{Status, Trigger};
use snapguard_daemon::scheduler::{Decision, Scheduler};
use snapguard_daemon::{State, DEFAULT_STATE_DIR};
use snapguard_policy::jobs::{JobAction, JobConfig};
use snapguard_policy::schedule::idle::{parse_loadavg, parse_pressure, IdleSample, IdleThresholds};
use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The longest sleep of the event loop.
const TICK: Duration = Duration::from_secs(30);
/// At most this much of a job's stdout is kept (its JSON summary).
const MAX_SUMMARY: usize = 1 << 20;
/// How long stopping jobs may take when the daemon is asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// `snapguard daemon`.
#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Where accounts, job runs and logs are kept.
    #[arg(long, env = "SNAPGUARD_STATE_DIR", default_value = DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// The local control socket (`snapguard jobs run|status`).
    #[arg(long, env = "SNAPGUARD_DAEMON_SOCKET", default_value = crate::control::DEFAULT_SOCKET,
          value_name = "PATH")]
    pub socket: PathBuf,
    /// Where the web UI and REST API listen (HTTPS): ADDR:PORT, or `off`. Default: [daemon]
    /// listen, else 127.0.0.1:8443.
    #[arg(long, env = "SNAPGUARD_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
}

/// `snapguard jobs`.
#[derive(Args, Debug)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
    /// The daemon's state directory.
    #[arg(long, env = "SNAPGUARD_STATE_DIR", default_value = DEFAULT_STATE_DIR, global = true,
          value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Only runs of this job.
    #[arg(long)]
    pub job: Option<String>,
    /// At most this many runs, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// The daemon's control socket (for `run` and `status`).
    #[arg(long, env = "SNAPGUARD_DAEMON_SOCKET", default_value = crate::control::DEFAULT_SOCKET,
          global = true, value_name = "PATH")]
    pub socket: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Print a run's task log.
    Log {
        /// The run's id (from `snapguard jobs`).
        id: i64,
    },
    /// Ask the running daemon to start a job now (root, or a user in [daemon] allow_users
    /// for jobs that create snapshots).
    Run {
        /// The job's name ([jobs.NAME]).
        job: String,
    },
    /// The running daemon's jobs and which of them run.
    Status,
    /// Stop a running run (root only): its processes get SIGTERM, SIGKILL after 30 s.
    Cancel {
        /// The run's id (from `snapguard jobs`).
        id: i64,
    },
}

fn now() -> i64 {
    render::now().secs
}

/// What the event loop hears about.
pub(crate) enum Event {
    Stderr {
        job: String,
        line: String,
    },
    Stdout {
        job: String,
        bytes: Vec<u8>,
    },
    Exited {
        job: String,
    },
    Stop(i32),
    /// A notification was sent (Ok: to whom) or not (Err: why).
    Notified {
        run: i64,
        outcome: Result<String, String>,
    },
    /// A request on the control socket.
    Control(crate::control::Incoming),
    /// A request of the web API.
    Web(crate::web::WebIncoming),
}

struct Running {
    run: i64,
    child: Child,
    summary: Vec<u8>,
    /// Output pipes still open.
    readers: usize,
    /// The job's process has ended, with this status, at this time.
    status: Option<(std::process::ExitStatus, std::time::Instant)>,
    /// Stopped (SIGSTOP) since.
    paused_at: Option<std::time::Instant>,
    /// Someone asked to cancel it: who.
    cancelled_by: Option<String>,
    /// A cancelled job still running then is killed (SIGKILL to its group).
    kill_at: Option<std::time::Instant>,
}

/// The longest a job stays stopped: well inside the 15 minutes after which an unrefreshed
/// repository lock counts as possibly stale (docs/design/locking.md).
const PAUSE_MAX: Duration = Duration::from_secs(10 * 60);

/// After a job's process ended, how long its output may still be read (a process it left
/// behind holding the pipes is then killed with its process group).
const DRAIN_GRACE: Duration = Duration::from_secs(5);

impl Running {
    /// Whether the run is over: the process has ended and its output is read (or the grace
    /// time for reading it has passed). Never blocks.
    fn poll_done(&mut self) -> bool {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some((st, std::time::Instant::now()));
            }
        }
        match self.status {
            Some(_) if self.readers == 0 => true,
            Some((_, at)) if at.elapsed() >= DRAIN_GRACE => {
                // Something the job started still holds its output: end the whole group.
                signal_group(&self.child, rustix::process::Signal::KILL);
                true
            }
            _ => false,
        }
    }
}

/// A job's command line as text (for the settings page).
pub(crate) fn job_command_line(config: &JobConfig) -> String {
    let mut words = vec!["snapguard".to_string()];
    words.extend(job_args(config));
    words.join(" ")
}

/// The command line of a job, after the binary and the global options.
fn job_args(config: &JobConfig) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |s: &str| a.push(s.to_string());
    match &config.action {
        JobAction::Backup {
            paths,
            exclude,
            tags,
            host,
            one_file_system,
        } => {
            push("backup");
            for e in exclude {
                push("--exclude");
                push(e);
            }
            for t in tags {
                push("--tag");
                push(t);
            }
            if let Some(h) = host {
                push("--host");
                push(h);
            }
            if *one_file_system {
                push("--one-file-system");
            }
            push("--");
            for p in paths {
                a.push(p.display().to_string());
            }
        }
        JobAction::Forget {
            policy,
            group_by,
            prune,
        } => {
            push("forget");
            for (flag, v) in [
                ("--keep-last", policy.keep_last),
                ("--keep-hourly", policy.keep_hourly),
                ("--keep-daily", policy.keep_daily),
                ("--keep-weekly", policy.keep_weekly),
                ("--keep-monthly", policy.keep_monthly),
                ("--keep-yearly", policy.keep_yearly),
            ] {
                if let Some(n) = v {
                    push(flag);
                    push(&n.to_string());
                }
            }
            if let Some(w) = policy.keep_within_secs {
                push("--keep-within");
                push(&snapguard_policy::format_duration(w));
            }
            for t in &policy.keep_tags {
                push("--keep-tag");
                push(t);
            }
            if let Some(g) = group_by {
                push("--group-by");
                push(g);
            }
            if *prune {
                push("--prune");
            }
        }
        JobAction::Prune => push("prune"),
        JobAction::Check { read_data_percent } => {
            push("check");
            match read_data_percent {
                Some(100) => push("--read-data"),
                Some(p) => {
                    push("--read-data-subset");
                    push(&format!("{p}%"));
                }
                None => {}
            }
        }
        JobAction::LocalSnapshot { local } => {
            push("local");
            push("create");
            push(local);
            push("--description");
            push("timeline (snapguard daemon)");
        }
        JobAction::LocalCleanup { local } => {
            push("local");
            push("cleanup");
            push(local);
        }
    }
    a
}

/// The daemon's own options, handed to its jobs through the environment.
fn job_env(g: &GlobalArgs) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    let mut set = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            env.push((k, v));
        }
    };
    set("SNAPGUARD_REPOSITORY", g.repo.clone());
    set(
        "SNAPGUARD_PASSWORD_FILE",
        g.password_file.as_ref().map(|p| p.display().to_string()),
    );
    set("SNAPGUARD_PASSWORD_COMMAND", g.password_command.clone());
    set(
        "SNAPGUARD_KEY_FILE",
        g.key_file.as_ref().map(|p| p.display().to_string()),
    );
    set(
        "SNAPGUARD_CONFIG",
        g.config.as_ref().map(|p| p.display().to_string()),
    );
    set("SNAPGUARD_CONNECTIONS", Some(g.connections.to_string()));
    set(
        "SNAPGUARD_SFTP_KEY",
        g.sftp_key.as_ref().map(|p| p.display().to_string()),
    );
    set("SNAPGUARD_SFTP_KNOWN_HOSTS", g.sftp_known_hosts.clone());
    if g.s3_virtual_host {
        set("SNAPGUARD_S3_VIRTUAL_HOST", Some("1".into()));
    }
    env
}

/// logind's view of the user sessions (`Some(false)`: someone is at the machine), or `None`
/// where logind does not run (servers, containers) or cannot be asked.
fn session_idle() -> Option<bool> {
    use snapguard_policy::schedule::idle::{parse_session_props, user_presence};
    if !Path::new("/run/systemd/seats").exists() {
        return None;
    }
    let run = |args: &[&str]| -> Option<String> {
        let out = Command::new("loginctl")
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let list = run(&["list-sessions", "--no-legend"])?;
    let sessions: Vec<_> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|id| {
            run(&[
                "show-session",
                id,
                "-p",
                "Class",
                "-p",
                "Active",
                "-p",
                "IdleHint",
            ])
            .map(|t| parse_session_props(&t))
        })
        .collect();
    user_presence(&sessions)
}

/// A reading of the machine for idle jobs: load average, PSI and logind's session idle hint.
fn sample_machine(at: i64) -> Option<IdleSample> {
    let load1 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| parse_loadavg(&t).ok())?;
    let psi = |f: &str| {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|t| parse_pressure(&t).ok())
    };
    Some(IdleSample {
        at,
        load1,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        cpu: psi("/proc/pressure/cpu"),
        io: psi("/proc/pressure/io"),
        session_idle: session_idle(),
    })
}

/// An exclusive lock on `<state>/daemon.lock`: one daemon per state directory.
fn lock_state_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("daemon.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        usage!(
            "another snapguard daemon is running with state directory {}; stop it first, or use another --state-dir",
            dir.display()
        )
    })?;
    Ok(f)
}

/// The CPU priority of every thread of every process of a job (its process group; on Linux
/// nice values are per thread).
fn set_nice(child: &Child, nice: i32) {
    let pid = rustix::process::Pid::from_child(child);
    if let Err(e) = rustix::process::setpriority_pgrp(Some(pid), nice) {
        tracing::warn!("cannot set the priority of job process group {pid:?}: {e}");
    }
}

/// Signal a job and everything it started (each job leads a process group of its own).
fn signal_group(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(pid, sig);
}

/// Close the file descriptors the daemon inherited beyond stdin, stdout and stderr (a shell's,
/// sudo's): the processes it starts as other users (tar for a user's restore, gdbus for their
/// desktop) must not get them.
fn close_inherited_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    // The directory's own descriptor is in the list and closed by now: EBADF is fine.
    for fd in fds {
        let _ = nix::unistd::close(fd);
    }
}

pub fn daemon(g: &GlobalArgs, a: &DaemonArgs) -> Result<i32> {
    close_inherited_fds();
    let jobs = g.settings.jobs.clone();
    let state = State::open(&a.state_dir)?;
    let _lock = lock_state_dir(&a.state_dir)?;
    let interrupted = state.interrupt_stale_runs(now())?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "runs cut short when the daemon last stopped"
        );
    }
    if jobs.is_empty() {
        eprintln!(
            "snapguard daemon: no [jobs.NAME] in {}; nothing to run until jobs are configured (docs/config.md)",
            g.settings
                .source
                .as_ref()
                .map_or("the configuration (no file was read)".into(), |p| p
                    .display()
                    .to_string())
        );
    } else if !g.quiet {
        eprintln!(
            "snapguard daemon: {} job(s): {}",
            jobs.len(),
            jobs.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let (tx, rx) = mpsc::channel::<Event>();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("cannot install signal handlers")?;
    let stop_tx = tx.clone();
    std::thread::Builder::new()
        .name("sg-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let _ = stop_tx.send(Event::Stop(sig));
            }
        })
        .context("cannot start the signal thread")?;

    let ctl_tx = std::sync::Mutex::new(tx.clone());
    crate::control::serve(
        &a.socket,
        g.settings.daemon.allow_users.clone(),
        move |inc| ctl_tx.lock().ok()?.send(Event::Control(inc)).ok(),
    )?;
    if let Some(addr) = crate::web::start(g, a, tx.clone())? {
        eprintln!("snapguard daemon: web UI and API at https://{addr}/");
        let _ = std::fs::write(a.state_dir.join("web-address"), format!("{addr}\n"));
    }
    let allow_users = g.settings.daemon.allow_users.clone();
    let exe = std::env::current_exe().context("cannot find the snapguard binary")?;
    let env = job_env(g);
    // The daemon's flags without a variable of their own.
    let mut pass_flags = Vec::new();
    if let Some(l) = g.limit_upload {
        pass_flags.extend(["--limit-upload".to_string(), l.to_string()]);
    }
    if g.no_cache {
        pass_flags.push("--no-cache".to_string());
    }
    let mut scheduler = Scheduler::new(&jobs, chrono::Local, IdleThresholds::default());
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let has_idle_jobs = jobs
        .values()
        .any(|j| matches!(j.timing, snapguard_policy::jobs::Timing::Idle { .. }));
    let mut last_sample: Option<IdleSample> = None;
    // A run asked for on the control socket or the web API; its run id.
    let start_manual = |job: &str, running: &mut BTreeMap<String, Running>| -> Result<i64> {
        start_job(
            &state,
            &exe,
            &env,
            &jobs,
            job,
            Trigger::Manual,
            &tx,
            running,
            &pass_flags,
        )?;
        Ok(running.get(job).map_or(0, |r| r.run))
    };
    loop {
        let t = now();
        // The machine is read only for idle jobs, and at most every 10 s (the loop wakes
        // twice a second while jobs run).
        if has_idle_jobs && last_sample.as_ref().is_none_or(|s| t - s.at >= 10) {
            last_sample = sample_machine(t);
        }
        let sample = last_sample.filter(|_| has_idle_jobs);
        let mut times = |name: &str| {
            state
                .job_times(name, t)
                .unwrap_or(snapguard_daemon::runs::JobTimes {
                    first_seen: t,
                    last_start: Some(t),
                })
        };
        for d in scheduler.tick(t, &mut times, sample.as_ref()) {
            match d {
                Decision::Start { job, trigger } => {
                    start_job(
                        &state,
                        &exe,
                        &env,
                        &jobs,
                        &job,
                        trigger,
                        &tx,
                        &mut running,
                        &pass_flags,
                    )
                    .unwrap_or_else(|e| {
                        tracing::error!(job = %job, "cannot start: {e:#}");
                        scheduler.finished(&job);
                    });
                }
                Decision::Pause { job } => {
                    if let Some(r) = running.get_mut(&job) {
                        let _ = state.log(r.run, t, "info", "paused: the user is back");
                        signal_group(&r.child, rustix::process::Signal::STOP);
                        r.paused_at = Some(std::time::Instant::now());
                    }
                }
                Decision::Resume { job } => {
                    if let Some(r) = running.get_mut(&job) {
                        r.paused_at = None;
                        let _ = state.log(r.run, t, "info", "resumed at full speed");
                        set_nice(&r.child, 0);
                        signal_group(&r.child, rustix::process::Signal::CONT);
                    }
                }
                Decision::Throttle { job } => {
                    if let Some(r) = running.get_mut(&job) {
                        r.paused_at = None;
                        let _ = state.log(r.run, t, "info", "throttled: past its deadline");
                        set_nice(&r.child, 19);
                        signal_group(&r.child, rustix::process::Signal::CONT);
                    }
                }
            }
        }
        // A stopped job's lock heartbeat stops too, and a lock unrefreshed for 15 minutes
        // makes its backup refuse to commit: a pause ends after PAUSE_MAX, at low priority.
        for r in running.values_mut() {
            if r.paused_at.is_some_and(|p| p.elapsed() >= PAUSE_MAX) {
                r.paused_at = None;
                let _ = state.log(
                    r.run,
                    t,
                    "info",
                    "going on slowly: a longer pause would let the repository lock go stale",
                );
                set_nice(&r.child, 19);
                signal_group(&r.child, rustix::process::Signal::CONT);
            }
        }
        for r in running.values_mut() {
            if r.status.is_none() && r.kill_at.is_some_and(|k| std::time::Instant::now() >= k) {
                r.kill_at = None;
                let _ = state.log(r.run, t, "error", "killed: it did not stop after SIGTERM");
                signal_group(&r.child, rustix::process::Signal::KILL);
            }
        }
        let mut wake = scheduler
            .next_wakeup(t, &mut times)
            .map_or(TICK, |w| Duration::from_secs((w - t).clamp(1, 30) as u64));
        if !running.is_empty() {
            // A job's end is noticed by polling its process, not only by its pipes closing.
            wake = wake.min(Duration::from_millis(500));
        }
        let first = match rx.recv_timeout(wake) {
            Ok(e) => Some(e),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut events: Vec<Event> = first.into_iter().collect();
        events.extend(rx.try_iter());
        for e in events {
            match e {
                Event::Stderr { job, line } => {
                    if let Some(r) = running.get(&job) {
                        let level = if line.contains("error") {
                            "error"
                        } else {
                            "info"
                        };
                        let _ = state.log(r.run, now(), level, &line);
                    }
                }
                Event::Stdout { job, bytes } => {
                    if let Some(r) = running.get_mut(&job) {
                        let room = MAX_SUMMARY.saturating_sub(r.summary.len());
                        r.summary.extend(bytes.into_iter().take(room));
                    }
                }
                Event::Exited { job } => {
                    if let Some(r) = running.get_mut(&job) {
                        r.readers = r.readers.saturating_sub(1);
                    }
                }
                Event::Notified { run, outcome } => {
                    let (level, line) = match outcome {
                        Ok(to) => ("info", format!("notification sent to {to}")),
                        Err(e) => ("error", format!("notification not sent: {e}")),
                    };
                    let _ = state.log(run, now(), level, &line);
                }
                Event::Web(inc) => {
                    let answer = web_answer(
                        inc.request,
                        &jobs,
                        &mut scheduler,
                        &state,
                        &mut running,
                        &mut |job: &str, running: &mut BTreeMap<String, Running>| {
                            start_manual(job, running)
                        },
                    );
                    let _ = inc.reply.send(answer);
                }
                Event::Control(inc)
                    if matches!(inc.request, crate::control::Request::Cancel { .. }) =>
                {
                    let crate::control::Request::Cancel { run } = inc.request else {
                        continue;
                    };
                    let who = format!(
                        "{} (uid {}, pid {})",
                        inc.caller.user, inc.caller.uid, inc.caller.pid
                    );
                    let answer = match crate::control::allowed(
                        &inc.caller,
                        &allow_users,
                        &inc.request,
                        None,
                    ) {
                        Err(e) => json!({"ok": false, "error": e}),
                        Ok(()) => match cancel_run(&state, &mut running, run, &who) {
                            Ok(()) => json!({"ok": true, "run": run}),
                            Err(e) => json!({"ok": false, "error": e}),
                        },
                    };
                    let _ = inc.reply.send(answer);
                }
                Event::Control(inc)
                    if matches!(inc.request, crate::control::Request::Restore { .. }) =>
                {
                    // Answered by a thread of its own when the restore has ended.
                    match crate::control::allowed(&inc.caller, &allow_users, &inc.request, None) {
                        Err(e) => {
                            tracing::warn!(
                                "control: refused a restore from {} (uid {}): {e}",
                                inc.caller.user,
                                inc.caller.uid
                            );
                            let _ = inc.reply.send(json!({"ok": false, "error": e}));
                        }
                        Ok(()) => crate::daemon_restore::start(g, inc),
                    }
                }
                Event::Control(inc) => {
                    let answer = control_answer(
                        &inc,
                        &allow_users,
                        &jobs,
                        &mut scheduler,
                        &state,
                        &mut |job: &str| start_manual(job, &mut running),
                    );
                    let _ = inc.reply.send(answer);
                }
                Event::Stop(sig) => {
                    eprintln!(
                        "snapguard daemon: stopping ({}); ending {} running job(s)",
                        if sig == signal_hook::consts::SIGINT {
                            "SIGINT"
                        } else {
                            "SIGTERM"
                        },
                        running.len()
                    );
                    stop_all(&state, &mut running);
                    // Restores through the socket are cut off and told so.
                    crate::daemon_restore::stop_all(if sig == signal_hook::consts::SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    });
                    let _ = std::fs::remove_file(&a.socket);
                    // Answers already given (a cut-off restore's) reach their clients.
                    crate::control::finish_answers(Duration::from_secs(3));
                    return Ok(0);
                }
            }
        }
        let done: Vec<String> = running
            .iter_mut()
            .filter_map(|(n, r)| r.poll_done().then(|| n.clone()))
            .collect();
        for job in done {
            if let Some(r) = running.remove(&job) {
                let id = r.run;
                finish_job(&state, &job, r);
                scheduler.finished(&job);
                if let (Some(n), Some(cfg)) = (&g.settings.notify, jobs.get(&job)) {
                    notify_run(&state, n, id, cfg.notify_success, &tx);
                }
            }
        }
    }
    Ok(0)
}

#[allow(clippy::too_many_arguments)]
fn start_job(
    state: &State,
    exe: &Path,
    env: &[(&'static str, String)],
    jobs: &BTreeMap<String, JobConfig>,
    job: &str,
    trigger: Trigger,
    tx: &mpsc::Sender<Event>,
    running: &mut BTreeMap<String, Running>,
    pass_flags: &[String],
) -> Result<()> {
    let config = jobs
        .get(job)
        .ok_or_else(|| anyhow::anyhow!("job {job} is not configured"))?;
    let t = now();
    let run = state.start_run(job, trigger, t)?;
    let args = job_args(config);
    let _ = state.log(
        run,
        t,
        "info",
        &format!(
            "started ({}): snapguard --json {}",
            trigger.as_str(),
            args.join(" ")
        ),
    );
    let mut cmd = Command::new(exe);
    // Its own process group: signals reach everything the job starts, and a Ctrl-C meant for
    // the daemon (which ends jobs itself) does not reach them directly.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.arg("--json")
        .args(pass_flags)
        .args(&args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("cannot start {}: {e}", exe.display());
            let _ = state.finish_run(run, Status::Failed, now(), None, Some(&msg));
            anyhow::bail!(msg);
        }
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    if let Some(mut out) = stdout {
        let tx = tx.clone();
        let job = job.to_string();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = tx.send(Event::Stdout {
                    job: job.clone(),
                    bytes: buf[..n].to_vec(),
                });
            }
            let _ = tx.send(Event::Exited { job });
        });
    }
    if let Some(err) = stderr {
        let tx = tx.clone();
        let job = job.to_string();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(err);
            let mut buf = Vec::new();
            // Bytes, not UTF-8 lines: a path that is not UTF-8 must not end the reading.
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches('\n')
                    .to_string();
                buf.clear();
                let _ = tx.send(Event::Stderr {
                    job: job.clone(),
                    line,
                });
            }
            let _ = tx.send(Event::Exited { job });
        });
    }
    running.insert(
        job.to_string(),
        Running {
            run,
            child,
            summary: Vec::new(),
            readers: 2,
            status: None,
            paused_at: None,
            cancelled_by: None,
            kill_at: None,
        },
    );
    Ok(())
}

fn finish_job(state: &State, job: &str, mut r: Running) {
    let status = match r.status {
        Some((st, _)) => Ok(st),
        None => r.child.wait(),
    };
    let t = now();
    let summary: Option<serde_json::Value> = serde_json::from_slice(&r.summary).ok();
    let (st, err) = match status {
        _ if r.cancelled_by.is_some() => (
            Status::Cancelled,
            Some(format!(
                "cancelled by {}",
                r.cancelled_by.as_deref().unwrap_or("someone")
            )),
        ),
        Ok(s) if s.success() => (Status::Succeeded, None),
        Ok(s) => (
            Status::Failed,
            Some(match s.code() {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".to_string(),
            }),
        ),
        Err(e) => (
            Status::Failed,
            Some(format!("cannot wait for the job: {e}")),
        ),
    };
    let _ = state.log(
        r.run,
        t,
        if st == Status::Succeeded {
            "info"
        } else {
            "error"
        },
        &format!(
            "{}{}",
            st.as_str(),
            err.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
    );
    if let Err(e) = state.finish_run(r.run, st, t, summary.as_ref(), err.as_deref()) {
        tracing::error!(job = %job, "cannot record the end of run {}: {e}", r.run);
    }
}

/// Cancel a running run: SIGCONT (it may be paused) and SIGTERM to its process group; it is
/// recorded as cancelled when it has ended (SIGKILL follows after [`STOP_GRACE`]).
fn cancel_run(
    state: &State,
    running: &mut BTreeMap<String, Running>,
    run: i64,
    who: &str,
) -> Result<(), String> {
    let Some(r) = running.values_mut().find(|r| r.run == run) else {
        return Err(format!("run {run} is not running"));
    };
    if r.cancelled_by.is_none() {
        r.cancelled_by = Some(who.to_string());
        r.paused_at = None;
        let _ = state.log(run, now(), "info", &format!("cancel asked by {who}"));
        tracing::info!("{who} cancelled run {run}");
        signal_group(&r.child, rustix::process::Signal::CONT);
        signal_group(&r.child, rustix::process::Signal::TERM);
        // A job that ignores SIGTERM is killed after the grace time by the event loop, while
        // it still runs (never later: its process group id could be reused by then).
        r.kill_at = Some(std::time::Instant::now() + STOP_GRACE);
    }
    Ok(())
}

/// Starts a job now, returning its run id.
type StartJob<'a> = dyn FnMut(&str, &mut BTreeMap<String, Running>) -> Result<i64> + 'a;

/// The answer to a web API request (permissions were checked by the API).
fn web_answer(
    request: crate::web::WebRequest,
    jobs: &BTreeMap<String, JobConfig>,
    scheduler: &mut Scheduler<chrono::Local>,
    state: &State,
    running: &mut BTreeMap<String, Running>,
    start: &mut StartJob<'_>,
) -> Result<serde_json::Value, snapguard_web::ApiError> {
    use crate::web::WebRequest;
    use snapguard_web::ApiError;
    use snapguard_web::JobInfo;
    match request {
        WebRequest::Jobs => {
            let t = now();
            let rows: Vec<JobInfo> = jobs
                .iter()
                .map(|(name, j)| {
                    let times =
                        state
                            .job_times(name, t)
                            .unwrap_or(snapguard_daemon::runs::JobTimes {
                                first_seen: t,
                                last_start: Some(t),
                            });
                    let from = times.last_start.unwrap_or(times.first_seen);
                    JobInfo {
                        name: name.clone(),
                        kind: j.action.kind().to_string(),
                        schedule: j.schedule_text.clone(),
                        when: match j.timing {
                            snapguard_policy::jobs::Timing::OnTime => "schedule".into(),
                            snapguard_policy::jobs::Timing::Idle { .. } => "idle".into(),
                        },
                        running: running.get(name).map(|r| r.run),
                        next_run: j
                            .schedule
                            .next_after(from, &chrono::Local)
                            // Past due: it runs at the next tick (a catch-up).
                            .map(|n| n.max(t))
                            .and_then(|n| chrono::DateTime::from_timestamp(n, 0))
                            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    }
                })
                .collect();
            serde_json::to_value(rows).map_err(|e| ApiError::internal(e.to_string()))
        }
        WebRequest::Run { job, who } => {
            if !jobs.contains_key(&job) {
                return Err(ApiError::not_found(format!("no job {job:?} is configured")));
            }
            if !scheduler.start_manual(&job) {
                return Err(ApiError::conflict(format!("job {job} is already running")));
            }
            match start(&job, running) {
                Ok(run) => {
                    let _ = state.log(run, now(), "info", &format!("run now, asked by {who}"));
                    tracing::info!("{who} started {job} (run {run})");
                    Ok(json!({"run": run}))
                }
                Err(e) => {
                    scheduler.finished(&job);
                    Err(ApiError::internal(format!("cannot start {job}: {e:#}")))
                }
            }
        }
        WebRequest::Cancel { run, who } => cancel_run(state, running, run, &who)
            .map(|()| json!({"run": run}))
            .map_err(ApiError::conflict),
    }
}

/// The answer to a control request, after the permission check; a `run` starts the job now.
fn control_answer(
    inc: &crate::control::Incoming,
    allow_users: &[String],
    jobs: &BTreeMap<String, JobConfig>,
    scheduler: &mut Scheduler<chrono::Local>,
    state: &State,
    start: &mut dyn FnMut(&str) -> Result<i64>,
) -> serde_json::Value {
    use crate::control::{allowed, Request};
    let kind = match &inc.request {
        Request::Run { job } => jobs.get(job).map(|j| j.action.kind()),
        Request::Status | Request::Cancel { .. } | Request::Restore { .. } => None,
    };
    let who = format!(
        "{} (uid {}, pid {})",
        inc.caller.user, inc.caller.uid, inc.caller.pid
    );
    if let Err(e) = allowed(&inc.caller, allow_users, &inc.request, kind) {
        tracing::warn!("control: refused {:?} from {who}: {e}", inc.request);
        return json!({"ok": false, "error": e});
    }
    match &inc.request {
        Request::Status => json!({
            "ok": true,
            "jobs": jobs.iter().map(|(name, j)| json!({
                "name": name,
                "kind": j.action.kind(),
                "schedule": j.schedule_text,
                "running": scheduler.is_running(name),
            })).collect::<Vec<_>>(),
        }),
        Request::Cancel { run } => {
            json!({"ok": false, "error": format!("run {run}: cancel is answered by the event loop")})
        }
        Request::Restore { .. } => {
            json!({"ok": false, "error": "a restore is answered by its own thread"})
        }
        Request::Run { job } => {
            if !jobs.contains_key(job) {
                return json!({"ok": false, "error": format!("no job {job:?} is configured")});
            }
            if !scheduler.start_manual(job) {
                return json!({"ok": false, "error": format!("job {job} is already running")});
            }
            match start(job) {
                Ok(run) => {
                    let _ = state.log(run, now(), "info", &format!("run now, asked by {who}"));
                    tracing::info!("control: {who} started {job} (run {run})");
                    json!({"ok": true, "job": job, "run": run})
                }
                Err(e) => {
                    scheduler.finished(job);
                    json!({"ok": false, "error": format!("cannot start {job}: {e:#}")})
                }
            }
        }
    }
}

/// Report a finished run by e-mail and/or desktop notification if it should be, off this
/// thread; each outcome comes back as an event and goes into the run's log.
fn notify_run(
    state: &State,
    n: &crate::config::Notify,
    id: i64,
    notify_success: bool,
    tx: &mpsc::Sender<Event>,
) {
    let Ok(run) = state.run(id) else { return };
    if !crate::notify::wanted(&run, notify_success) {
        return;
    }
    let lines = state.log_lines(id, 0).unwrap_or_default();
    let tail = &lines[lines.len().saturating_sub(20)..];
    let host = crate::commands::hostname();
    let tx = tx.clone();
    crate::notify::deliver(n, &run, &host, tail, move |outcome| {
        let _ = tx.send(Event::Notified { run: id, outcome });
    });
}

/// SIGTERM every job (after SIGCONT, in case it is paused), wait for them, record them as
/// cancelled.
fn stop_all(state: &State, running: &mut BTreeMap<String, Running>) {
    for r in running.values() {
        signal_group(&r.child, rustix::process::Signal::CONT);
        signal_group(&r.child, rustix::process::Signal::TERM);
    }
    let deadline = std::time::Instant::now() + STOP_GRACE;
    for (job, mut r) in std::mem::take(running) {
        if r.status.is_some() {
            // It had ended by itself: record how.
            finish_job(state, &job, r);
            continue;
        }
        loop {
            match r.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if std::time::Instant::now() >= deadline => {
                    signal_group(&r.child, rustix::process::Signal::KILL);
                    let _ = r.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        // Whatever the job left running in its group goes with it.
        signal_group(&r.child, rustix::process::Signal::KILL);
        let t = now();
        let _ = state.log(r.run, t, "error", "cancelled: the daemon stopped");
        if let Err(e) = state.finish_run(
            r.run,
            Status::Cancelled,
            t,
            None,
            Some("the daemon stopped while the job ran"),
        ) {
            tracing::error!(job = %job, "cannot record the end of run {}: {e}", r.run);
        }
    }
}

pub fn jobs(g: &GlobalArgs, a: &JobsArgs) -> Result<i32> {
    use crate::control::{request, Request};
    let ask = |req: Request| -> Result<serde_json::Value> {
        let answer = request(&a.socket, &req)?;
        if answer["ok"] != true {
            anyhow::bail!(
                "the daemon refused: {}",
                answer["error"].as_str().unwrap_or("no reason given")
            );
        }
        Ok(answer)
    };
    match &a.command {
        Some(JobsCommand::Run { job }) => {
            let answer = ask(Request::Run { job: job.clone() })?;
            if g.json {
                return print_json(&answer);
            }
            println!(
                "started {job}: run {} ('snapguard jobs log {}' shows its log)",
                answer["run"], answer["run"]
            );
            return Ok(0);
        }
        Some(JobsCommand::Cancel { id }) => {
            let answer = ask(Request::Cancel { run: *id })?;
            if g.json {
                return print_json(&answer);
            }
            println!("cancelling run {id}; 'snapguard jobs log {id}' shows when it has ended");
            return Ok(0);
        }
        Some(JobsCommand::Status) => {
            let answer = ask(Request::Status)?;
            if g.json {
                return print_json(&answer);
            }
            for j in answer["jobs"].as_array().into_iter().flatten() {
                println!(
                    "{:<20} {:<15} {:<20} {}",
                    j["name"].as_str().unwrap_or_default(),
                    j["kind"].as_str().unwrap_or_default(),
                    j["schedule"].as_str().unwrap_or_default(),
                    if j["running"] == true { "running" } else { "" }
                );
            }
            return Ok(0);
        }
        _ => {}
    }
    if !a.state_dir.join("state.db").exists() {
        return Err(usage!(
            "no daemon state in {}: the daemon has not run with this --state-dir yet",
            a.state_dir.display()
        ));
    }
    let state = State::open(&a.state_dir)?;
    match &a.command {
        None => {
            let runs = state.runs(a.job.as_deref(), a.limit)?;
            if g.json {
                return print_json(&json!(runs));
            }
            if runs.is_empty() {
                println!("no job has run yet");
            }
            for r in runs {
                let took = r
                    .ended
                    .map(|e| format!("{} s", e - r.started))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:>6}  {:<16} {:<12} {:<10} {}  {:>8}{}",
                    r.id,
                    r.job,
                    r.status.as_str(),
                    r.trigger.as_str(),
                    render::local(snapguard_format::Timestamp {
                        secs: r.started,
                        nanos: 0
                    }),
                    took,
                    r.error.map(|e| format!("  {e}")).unwrap_or_default()
                );
            }
            Ok(0)
        }
        Some(JobsCommand::Run { .. } | JobsCommand::Status | JobsCommand::Cancel { .. }) => Ok(0),
        Some(JobsCommand::Log { id }) => {
            let lines = state.log_lines(*id, 0).map_err(|e| match e {
                snapguard_daemon::Error::NoRun(_) => {
                    usage!("no job run {id}; 'snapguard jobs' lists them")
                }
                e => anyhow::Error::new(e),
            })?;
            if g.json {
                return print_json(&json!(lines));
            }
            for l in lines {
                println!(
                    "{} {:<5} {}",
                    render::local(snapguard_format::Timestamp {
                        secs: l.at,
                        nanos: 0
                    }),
                    l.level,
                    l.line
                );
            }
            Ok(0)
        }
    }
}
