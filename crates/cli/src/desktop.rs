//! Desktop notifications of job results (`[notify] desktop = true`): a call of
//! `org.freedesktop.Notifications.Notify` on the session bus of every user who has one, through
//! `gdbus` (Debian: libglib2.0-bin).
//!
//! Which buses: the one in `DBUS_SESSION_BUS_ADDRESS` when the daemon has that variable (a
//! daemon run by a user in a session), and each `/run/user/UID/bus` socket owned by its UID, for
//! regular users (UID 1000 to 60000) or, with `desktop_users`, for the users named there. A
//! session bus only lets its own user in (it checks the peer's credentials), so a daemon run as
//! root calls `gdbus` as that user: a short-lived child with the user's UID and GID, no
//! supplementary groups and an empty environment. A daemon run as another user only reaches
//! its own user's bus.
//!
//! `SNAPGUARD_RUN_USER_DIR` replaces `/run/user` (for tests, which must not notify the real
//! sessions of the machine they run on).

use snapguard_daemon::runs::{LogLine, Run, Status};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one notification may take (connecting, authenticating and the call).
const TIMEOUT: Duration = Duration::from_secs(15);

/// The range of regular users' UIDs on Debian (`UID_MIN` and `UID_MAX` in login.defs).
const UIDS: std::ops::RangeInclusive<u32> = 1000..=60000;

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
    /// The notification for a finished run: job, result and host in the summary, the error (the
    /// last one in `log_tail`, the end of its task log, or how long it took) and the command that prints the log in the body. Failures and
    /// interrupted runs are critical (they stay until dismissed); successes and cancelled runs
    /// are normal.
    pub fn for_run(run: &Run, host: &str, log_tail: &[LogLine]) -> Note {
        let summary = format!("{} {} on {host}", run.job, run.status.as_str());
        let mut body = match (&run.error, run.ended) {
            (Some(e), _) => {
                // The run's error is often only how the job's process ended ("exit code 1");
                // the last error the job logged says why.
                let why = log_tail
                    .iter()
                    .rev()
                    .find(|l| {
                        l.level == "error" && !l.line.trim().is_empty() && !l.line.contains(e)
                    })
                    .map_or(e.as_str(), |l| {
                        let l = l.line.trim();
                        l.strip_prefix("snapguard: error: ").unwrap_or(l)
                    });
                let first = why.lines().next().unwrap_or_default();
                let mut line: String = first.chars().take(300).collect();
                if line.len() < first.len() {
                    line.push('…');
                }
                if why != e.as_str() && !line.contains(e.as_str()) {
                    line = format!("{line} ({e})");
                }
                line
            }
            (None, Some(end)) => format!("Finished in {} s.", end - run.started),
            (None, None) => String::new(),
        };
        if !body.is_empty() {
            body.push('\n');
        }
        body.push_str(&format!("Log: snapguard jobs log {}", run.id));
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
#[derive(Debug)]
struct Target {
    /// Whom the log line names: "the desktop of alice (uid 1000)".
    label: String,
    address: String,
    /// The UID and GID to call as; `None`: as the daemon's own user.
    user: Option<(u32, u32)>,
    /// From `DBUS_SESSION_BUS_ADDRESS`: every failure is reported, even a bus without a
    /// notification service.
    explicit: bool,
}

/// How one call went.
enum Sent {
    Yes,
    /// Nobody on that bus serves notifications (a session without a desktop).
    NoService(String),
    Failed(String),
}

/// Notifies every session bus that [the module's rules](self) choose; returns one outcome per
/// bus reached or failed (Ok: to whom, Err: why not), or a single Err when no session could be
/// notified at all. Buses without a notification service (a user logged in without a desktop,
/// a lingering user) are passed over quietly unless nothing else was notified.
pub fn notify_all(users: Option<&[String]>, note: &Note) -> Vec<Result<String, String>> {
    let dir = run_user_dir();
    let (targets, mut outcomes) = targets(users, &dir);
    let mut quiet = Vec::new();
    for t in &targets {
        match call(t, note) {
            Sent::Yes => outcomes.push(Ok(t.label.clone())),
            Sent::NoService(why) if !t.explicit => quiet.push(format!("{}: {why}", t.label)),
            Sent::NoService(why) | Sent::Failed(why) => {
                outcomes.push(Err(format!("{}: {why}", strip_the(&t.label))))
            }
        }
    }
    if outcomes.is_empty() {
        let why = if quiet.is_empty() {
            format!(
                "no desktop session to notify (no session bus in {}/UID/bus for {}, and \
                 DBUS_SESSION_BUS_ADDRESS is not set)",
                dir.display(),
                match users {
                    Some(u) => u.join(", "),
                    None => format!("a regular user (UID {} to {})", UIDS.start(), UIDS.end()),
                }
            )
        } else {
            format!("no desktop session to notify: {}", quiet.join("; "))
        };
        outcomes.push(Err(why));
    }
    outcomes
}

fn strip_the(label: &str) -> &str {
    label.strip_prefix("the ").unwrap_or(label)
}

/// The buses to call, and errors for `users` that do not exist.
fn targets(users: Option<&[String]>, dir: &Path) -> (Vec<Target>, Vec<Result<String, String>>) {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    let env = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
    if !env.is_empty() {
        targets.push(Target {
            label: format!("the session bus {env}"),
            address: env.clone(),
            user: None,
            explicit: true,
        });
    }
    let euid = nix::unistd::geteuid().as_raw();
    // Which UIDs, and the user names to put in the log.
    let wanted: Option<Vec<u32>> = users.map(|names| {
        names
            .iter()
            .filter_map(|name| match nix::unistd::User::from_name(name) {
                Ok(Some(u)) => Some(u.uid.as_raw()),
                Ok(None) => {
                    errors.push(Err(format!("desktop_users: there is no user {name:?}")));
                    None
                }
                Err(e) => {
                    errors.push(Err(format!("desktop_users: cannot look up {name:?}: {e}")));
                    None
                }
            })
            .collect()
    });
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (targets, errors);
    };
    let mut uids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|uid| match &wanted {
            Some(w) => w.contains(uid),
            None => UIDS.contains(uid),
        })
        // Another user's bus can only be reached as that user, which takes root.
        .filter(|&uid| euid == 0 || uid == euid)
        .collect();
    uids.sort_unstable();
    for uid in uids {
        let bus = dir.join(uid.to_string()).join("bus");
        let Ok(meta) = std::fs::symlink_metadata(&bus) else {
            continue;
        };
        // Only a socket that belongs to the user the directory is named after.
        if !meta.file_type().is_socket() || meta.uid() != uid {
            continue;
        }
        let Some(path) = bus.to_str() else { continue };
        let address = format!("unix:path={}", escape_address(path));
        if targets.iter().any(|t| t.address == address) {
            continue;
        }
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        let gid = user.as_ref().map_or(meta.gid(), |u| u.gid.as_raw());
        let label = match &user {
            Some(u) => format!("the desktop of {} (uid {uid})", u.name),
            None => format!("the desktop of uid {uid}"),
        };
        targets.push(Target {
            label,
            address,
            user: (euid == 0 && uid != 0).then_some((uid, gid)),
            explicit: false,
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

/// Calls Notify on one bus through `gdbus`, as the bus's user when there is one to switch to.
fn call(t: &Target, note: &Note) -> Sent {
    let mut cmd = Command::new("gdbus");
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/")
        .args(["call", "--address", &t.address, "--timeout"])
        .arg(TIMEOUT.as_secs().to_string())
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Sent::Failed("gdbus is not installed (Debian package libglib2.0-bin)".into())
        }
        Err(e) => return Sent::Failed(format!("cannot run gdbus: {e}")),
    };
    let deadline = Instant::now() + TIMEOUT + Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Sent::Failed(format!("gdbus did not finish in {} s", TIMEOUT.as_secs()));
            }
            Err(e) => return Sent::Failed(format!("cannot wait for gdbus: {e}")),
        }
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
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
}
