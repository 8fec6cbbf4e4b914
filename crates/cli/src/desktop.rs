//! Desktop notifications of job results (`[notify] desktop = true`): a call of
//! `org.freedesktop.Notifications.Notify` on the session buses of the users named in
//! `desktop_users` (required with `desktop = true`), through `/usr/bin/gdbus` (Debian:
//! libglib2.0-bin).
//!
//! Which buses: for each listed user, the socket `/run/user/UID/bus`, and only when it is a
//! socket (not a symlink) owned by that UID. `DBUS_SESSION_BUS_ADDRESS` is never used: a daemon
//! run as root would otherwise call as root whatever address its environment carries. A session
//! bus only lets its own user in, so a daemon run as root calls `gdbus` as that user: a
//! short-lived child with the user's UID and GID, no supplementary groups, an empty
//! environment, and a session of its own (`/usr/bin/setsid`, no controlling terminal). A daemon
//! run as another user reaches only its own user's bus (when that user is listed).
//!
//! The buses are called in parallel, each with a deadline, and all of them with one overall
//! deadline, so that a bus that never answers delays nobody else's notification.
//!
//! The notification carries no log lines (they can name other users' files, or text a user
//! planted): job, result and host, the run's own short error ("exit code 1"), and the command
//! that shows the log.
//!
//! `SNAPGUARD_RUN_USER_DIR` replaces `/run/user` (for tests, which must not notify the real
//! sessions of the machine they run on).

use snapguard_daemon::runs::{LogLine, Run, Status};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The D-Bus command-line client, by absolute path (never through PATH).
const GDBUS: &str = "/usr/bin/gdbus";
/// util-linux's setsid: gdbus runs in a new session, without a controlling terminal.
const SETSID: &str = "/usr/bin/setsid";

/// How long gdbus waits for the answer to the call (its `--timeout`).
const CALL_TIMEOUT: Duration = Duration::from_secs(8);
/// How long one bus may take in all (connecting, authenticating, the call, gdbus's exit):
/// gdbus is killed then.
const BUS_DEADLINE: Duration = Duration::from_secs(10);
/// How long all buses together may take.
const TOTAL_DEADLINE: Duration = Duration::from_secs(12);

/// Where a user's session bus is found (`DIR/UID/bus`).
fn run_user_dir() -> PathBuf {
    std::env::var_os("SNAPGUARD_RUN_USER_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/user"))
}

/// One desktop notification.
#[derive(Debug, Clone)]
pub struct Note {
    pub summary: String,
    /// Plain text (escaped for servers that read the body as markup when sent).
    pub body: String,
    /// 1 (normal) or 2 (critical).
    pub urgency: u8,
    pub icon: &'static str,
}

impl Note {
    /// The notification for a finished run: job, result and host in the summary; the run id,
    /// the run's own error (how the daemon saw it end: "exit code 1", first line, at most 120
    /// characters) or how long it took, and the command that prints the log in the body.
    /// `_log_tail` is not used: task-log lines can name other users' files or carry text a
    /// user planted, and a desktop notification is seen by whoever sits at that desktop.
    /// Failures and interrupted runs are critical (they stay until dismissed); successes and
    /// cancelled runs are normal.
    pub fn for_run(run: &Run, host: &str, _log_tail: &[LogLine]) -> Note {
        let summary = format!("{} {} on {host}", run.job, run.status.as_str());
        let mut body = format!("Run {}", run.id);
        match (&run.error, run.ended) {
            (Some(e), _) => {
                let first = e.lines().next().unwrap_or_default().trim();
                let mut line: String = first
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(120)
                    .collect();
                if line.chars().count() < first.chars().count() {
                    line.push('…');
                }
                if !line.is_empty() {
                    body.push_str(": ");
                    body.push_str(&line);
                }
            }
            (None, Some(end)) => body.push_str(&format!(": finished in {} s", end - run.started)),
            (None, None) => {}
        }
        body.push_str(&format!(".\nLog: snapguard jobs log {}", run.id));
        let critical = matches!(run.status, Status::Failed | Status::Interrupted);
        Note {
            summary,
            body,
            urgency: if critical { 2 } else { 1 },
            icon: if critical {
                "dialog-error"
            } else {
                "dialog-information"
            },
        }
    }
}

/// A session bus to notify.
#[derive(Debug, Clone)]
struct Target {
    /// Whom the log line names: "the desktop of alice (uid 1000)".
    label: String,
    address: String,
    /// The UID and GID to call as; `None`: as the daemon's own user.
    user: Option<(u32, u32)>,
}

/// How one call went.
enum Sent {
    Yes,
    /// Nobody on that bus serves notifications (a session without a desktop).
    NoService(String),
    Failed(String),
}

/// Notifies the session bus of each user in `users` that [the module's rules](self) allow;
/// returns one outcome per bus reached or failed (Ok: to whom, Err: why not), or a single Err
/// when no session could be notified at all. Buses without a notification service (a user
/// logged in without a desktop, a lingering user) are passed over quietly unless nothing else
/// was notified. `None` (no `desktop_users`, which the config does not allow with
/// `desktop = true`) notifies nobody.
pub fn notify_all(users: Option<&[String]>, note: &Note) -> Vec<Result<String, String>> {
    let Some(users) = users.filter(|u| !u.is_empty()) else {
        return vec![Err(
            "no desktop_users: desktop notifications go only to the users \
                         named there, so nobody was notified"
                .into(),
        )];
    };
    let dir = run_user_dir();
    let (targets, mut outcomes) = targets(users, &dir);
    let mut quiet = Vec::new();
    for (t, sent) in call_all(&targets, note) {
        match sent {
            Sent::Yes => outcomes.push(Ok(t.label.clone())),
            Sent::NoService(why) => quiet.push(format!("{}: {why}", t.label)),
            Sent::Failed(why) => outcomes.push(Err(format!("{}: {why}", strip_the(&t.label)))),
        }
    }
    if outcomes.is_empty() {
        let why = if quiet.is_empty() {
            format!(
                "no desktop session to notify (no session bus in {}/UID/bus for {})",
                dir.display(),
                users.join(", ")
            )
        } else {
            format!("no desktop session to notify: {}", quiet.join("; "))
        };
        outcomes.push(Err(why));
    }
    outcomes
}

/// Calls every target in a thread of its own; waits for all of them up to [TOTAL_DEADLINE].
/// The outcomes are in the order of `targets`.
fn call_all<'a>(targets: &'a [Target], note: &Note) -> Vec<(&'a Target, Sent)> {
    let deadline = Instant::now() + TOTAL_DEADLINE;
    let (tx, rx) = mpsc::channel();
    let mut results: Vec<Option<Sent>> = targets.iter().map(|_| None).collect();
    let mut waiting = 0;
    for (i, t) in targets.iter().enumerate() {
        let (tx, t2, note) = (tx.clone(), t.clone(), note.clone());
        let spawned = std::thread::Builder::new()
            .name("sg-notify-bus".into())
            .spawn(move || {
                let _ = tx.send((i, call(&t2, &note)));
            });
        match spawned {
            Ok(_) => waiting += 1,
            Err(e) => results[i] = Some(Sent::Failed(format!("cannot start a thread: {e}"))),
        }
    }
    drop(tx);
    while waiting > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, sent)) => {
                results[i] = Some(sent);
                waiting -= 1;
            }
            Err(_) => break,
        }
    }
    targets
        .iter()
        .zip(results)
        .map(|(t, r)| {
            (
                t,
                r.unwrap_or_else(|| {
                    Sent::Failed(format!("no answer in {} s", TOTAL_DEADLINE.as_secs()))
                }),
            )
        })
        .collect()
}

fn strip_the(label: &str) -> &str {
    label.strip_prefix("the ").unwrap_or(label)
}

/// The buses to call, and errors for `users` that do not exist or cannot be reached.
fn targets(users: &[String], dir: &Path) -> (Vec<Target>, Vec<Result<String, String>>) {
    let mut targets: Vec<Target> = Vec::new();
    let mut errors = Vec::new();
    let euid = nix::unistd::geteuid().as_raw();
    for name in users {
        let user = match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => u,
            Ok(None) => {
                errors.push(Err(format!("desktop_users: there is no user {name:?}")));
                continue;
            }
            Err(e) => {
                errors.push(Err(format!("desktop_users: cannot look up {name:?}: {e}")));
                continue;
            }
        };
        let uid = user.uid.as_raw();
        let label = format!("the desktop of {} (uid {uid})", user.name);
        // Another user's bus can only be reached as that user, which takes root.
        if euid != 0 && uid != euid {
            errors.push(Err(format!(
                "{}: not reachable: the daemon runs as uid {euid}, not as root",
                strip_the(&label)
            )));
            continue;
        }
        if targets.iter().any(|t| t.label == label) {
            continue;
        }
        let bus = dir.join(uid.to_string()).join("bus");
        let Ok(meta) = std::fs::symlink_metadata(&bus) else {
            continue;
        };
        // Only a socket (not a symlink) that belongs to the user the directory is named after.
        if !meta.file_type().is_socket() || meta.uid() != uid {
            continue;
        }
        let Some(path) = bus.to_str() else { continue };
        targets.push(Target {
            label,
            address: format!("unix:path={}", escape_address(path)),
            user: (euid == 0 && uid != 0).then_some((uid, user.gid.as_raw())),
        });
    }
    (targets, errors)
}

/// A path as a D-Bus address value: bytes other than `[-0-9A-Za-z_/.\*]` as `%XX`.
fn escape_address(path: &str) -> String {
    let mut s = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_/.\\*".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02x}"));
        }
    }
    s
}

/// A GVariant text-format string literal.
fn gvariant_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The body with the characters that notification servers reading markup would take as such
/// replaced by entities.
fn escape_markup(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Calls Notify on one bus through `gdbus`, as the bus's user when there is one to switch to,
/// in a session of its own; gdbus (and whatever it started in its process group) is killed at
/// [BUS_DEADLINE], and its stderr is read by a thread that is not waited for beyond then.
fn call(t: &Target, note: &Note) -> Sent {
    if !Path::new(GDBUS).exists() {
        return Sent::Failed(format!(
            "gdbus not found ({GDBUS}); apt install libglib2.0-bin"
        ));
    }
    if !Path::new(SETSID).exists() {
        return Sent::Failed(format!(
            "setsid not found ({SETSID}); apt install util-linux"
        ));
    }
    let deadline = Instant::now() + BUS_DEADLINE;
    let mut cmd = Command::new(SETSID);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        // --wait: should setsid ever have to fork, it still ends with gdbus and its status.
        .args([
            "--wait",
            GDBUS,
            "call",
            "--address",
            &t.address,
            "--timeout",
        ])
        .arg(CALL_TIMEOUT.as_secs().to_string())
        .args([
            "--dest",
            "org.freedesktop.Notifications",
            "--object-path",
            "/org/freedesktop/Notifications",
            "--method",
            "org.freedesktop.Notifications.Notify",
        ])
        .arg(gvariant_string("SnapGuard"))
        .arg("uint32 0")
        .arg(gvariant_string(note.icon))
        .arg(gvariant_string(&note.summary))
        .arg(gvariant_string(&escape_markup(&note.body)))
        .arg("@as []")
        .arg(format!(
            "@a{{sv}} {{'urgency': <byte {}>, 'desktop-entry': <'snapguard'>}}",
            note.urgency
        ))
        .arg("int32 -1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some((uid, gid)) = t.user {
        // std drops the supplementary groups when root sets a UID.
        cmd.uid(uid).gid(gid);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Sent::Failed(format!("cannot run gdbus: {e}")),
    };
    // Kills the child's process group (its own session: setsid made it the leader), then the
    // child; only while the child is not reaped, so the group id cannot have been reused.
    let kill = |child: &mut std::process::Child| {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    };
    // stderr in a thread: a process that keeps the pipe open must not hold this one up.
    let (etx, erx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        let spawned = std::thread::Builder::new()
            .name("sg-notify-gdbus".into())
            .spawn(move || {
                let mut err = String::new();
                let _ = stderr.take(16 * 1024).read_to_string(&mut err);
                let _ = etx.send(err);
            });
        if let Err(e) = spawned {
            kill(&mut child);
            return Sent::Failed(format!("cannot start a thread: {e}"));
        }
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                kill(&mut child);
                return Sent::Failed(format!(
                    "gdbus did not finish in {} s (killed)",
                    BUS_DEADLINE.as_secs()
                ));
            }
            Err(e) => {
                kill(&mut child);
                return Sent::Failed(format!("cannot wait for gdbus: {e}"));
            }
        }
    };
    // What gdbus said, as far as it arrives by the deadline (at least a moment after its exit).
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500));
    let err = erx.recv_timeout(wait).unwrap_or_default();
    if status.success() {
        return Sent::Yes;
    }
    let err = err.trim();
    let err = if err.is_empty() {
        format!("gdbus failed ({status})")
    } else {
        err.lines().collect::<Vec<_>>().join(" ")
    };
    if err.contains("org.freedesktop.DBus.Error.ServiceUnknown")
        || err.contains("org.freedesktop.DBus.Error.NameHasNoOwner")
    {
        Sent::NoService(format!("no notification service on the bus ({err})"))
    } else {
        Sent::Failed(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_addresses_are_quoted() {
        assert_eq!(
            gvariant_string("a \"b\" \\ c\nd\u{1}"),
            "\"a \\\"b\\\" \\\\ c\\nd\\u0001\""
        );
        assert_eq!(escape_address("/run/user/1000/bus"), "/run/user/1000/bus");
        assert_eq!(escape_address("/tmp/a b=c"), "/tmp/a%20b%3dc");
        assert_eq!(escape_markup("<a> & b"), "&lt;a&gt; &amp; b");
    }

    /// The body is the run's own error (one line, at most 120 characters, no control
    /// characters) and the log command; lines of the task log never go into it.
    #[test]
    fn the_body_carries_no_log_lines() {
        let mut run = Run {
            id: 7,
            job: "home".into(),
            trigger: snapguard_daemon::runs::Trigger::Schedule,
            started: 100,
            ended: Some(160),
            status: Status::Failed,
            summary: None,
            error: Some("exit code 1".into()),
        };
        let tail = [LogLine {
            seq: 1,
            at: 150,
            level: "error".into(),
            line: "snapguard: error: /home/bob/secret-plan.txt: Permission denied".into(),
        }];
        let n = Note::for_run(&run, "host1", &tail);
        assert_eq!(n.summary, "home failed on host1");
        assert_eq!(n.body, "Run 7: exit code 1.\nLog: snapguard jobs log 7");
        assert_eq!((n.urgency, n.icon), (2, "dialog-error"));
        run.error = Some(format!("{}\u{1b}[2J\nsecond line", "x".repeat(200)));
        let n = Note::for_run(&run, "host1", &tail);
        assert_eq!(
            n.body,
            format!("Run 7: {}….\nLog: snapguard jobs log 7", "x".repeat(120))
        );
        run.error = None;
        run.status = Status::Succeeded;
        let n = Note::for_run(&run, "host1", &tail);
        assert_eq!(
            n.body,
            "Run 7: finished in 60 s.\nLog: snapguard jobs log 7"
        );
        assert_eq!((n.urgency, n.icon), (1, "dialog-information"));
    }
}
