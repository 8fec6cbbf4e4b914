//! `[notify] desktop = true` through the binary: the daemon calls
//! org.freedesktop.Notifications.Notify on real session buses (private `dbus-daemon`s), where a
//! small notification server (Python with GLib's Gio, Debian's python3-gi) owns the name and
//! records every call with the UID of the caller. Covered: the bus of
//! `DBUS_SESSION_BUS_ADDRESS`; users' buses under a run-user directory
//! (`SNAPGUARD_RUN_USER_DIR`), reached as root by a child that takes the user's UID (the
//! recorded caller UID proves it); `desktop_users`; and a bus that cannot be reached, which is
//! logged while the daemon goes on.

use crate::maintenance::{os, Bg};
use crate::support::cmd::{Sg, Ws};
use crate::support::fixture::Fixture;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The notification server: owns org.freedesktop.Notifications on the bus at argv[1], appends
/// each Notify call as a JSON line to argv[2] (with the caller's UID from the bus) and answers
/// with a fresh id; prints "ready" once it owns the name.
const SERVER: &str = r#"
import json, sys
from gi.repository import Gio, GLib

XML = """<node><interface name="org.freedesktop.Notifications">
<method name="Notify"><arg type="s" direction="in"/><arg type="u" direction="in"/>
<arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="s" direction="in"/>
<arg type="as" direction="in"/><arg type="a{sv}" direction="in"/><arg type="i" direction="in"/>
<arg type="u" direction="out"/></method>
<method name="GetCapabilities"><arg type="as" direction="out"/></method>
</interface></node>"""
address, out = sys.argv[1], sys.argv[2]
conn = Gio.DBusConnection.new_for_address_sync(
    address,
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
    None, None)
count = [0]

def bus(method, args, ret):
    return conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                          method, args, GLib.VariantType(ret), Gio.DBusCallFlags.NONE, -1,
                          None).unpack()[0]

def call(conn, sender, path, iface, method, params, inv):
    if method == "Notify":
        app, replaces, icon, summary, body, actions, hints, timeout = params.unpack()
        count[0] += 1
        rec = {"app_name": app, "replaces_id": replaces, "app_icon": icon, "summary": summary,
               "body": body, "actions": list(actions), "hints": dict(hints),
               "expire_timeout": timeout, "id": count[0],
               "caller_uid": bus("GetConnectionUnixUser", GLib.Variant("(s)", (sender,)), "(u)")}
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        inv.return_value(GLib.Variant("(u)", (count[0],)))
    else:
        inv.return_value(GLib.Variant("(as)", (["body"],)))

node = Gio.DBusNodeInfo.new_for_xml(XML)
conn.register_object("/org/freedesktop/Notifications", node.interfaces[0], call, None, None)
if bus("RequestName", GLib.Variant("(su)", ("org.freedesktop.Notifications", 4)), "(u)") != 1:
    sys.exit("cannot own org.freedesktop.Notifications")
print("ready", flush=True)
GLib.MainLoop().run()
"#;

/// Debian's Python, which has python3-gi (a python3 earlier in PATH may not).
const PYTHON: &str = "/usr/bin/python3";

/// Whether dbus-daemon, gdbus and python3-gi are there; in CI their absence is a failure
/// (`.ci/run` installs them).
fn tools() -> bool {
    let ok = |c: &mut Command| {
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let have = ok(Command::new("dbus-daemon").arg("--version"))
        && ok(Command::new("gdbus").arg("help"))
        && ok(Command::new(PYTHON).args(["-c", "from gi.repository import Gio"]));
    if !have {
        if std::env::var_os("CI").is_some() && std::env::var_os("SG_ALLOW_SKIP").is_none() {
            panic!("desktop notification tests cannot run in CI: dbus-daemon, gdbus or python3-gi is missing (.ci/run installs them)");
        }
        eprintln!("skipped: needs dbus-daemon (dbus), gdbus (libglib2.0-bin) and python3-gi");
    }
    have
}

/// A private session bus with a recording notification server on it, both run as `uid` (and
/// `gid`) when given; killed on drop.
struct Bus {
    daemon: Child,
    server: Child,
    path: PathBuf,
    calls: PathBuf,
}

impl Bus {
    /// The bus listens on `path`; the server's script and record go into `dir`, which the
    /// user must be able to write.
    fn start(path: &Path, dir: &Path, user: Option<(u32, u32)>) -> Bus {
        let as_user = |c: &mut Command| {
            c.env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HOME", "/nonexistent")
                .stdin(Stdio::null());
            if let Some((uid, gid)) = user {
                c.uid(uid).gid(gid);
            }
        };
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg("--session")
            .arg(format!("--address=unix:path={}", path.display()))
            .args(["--nofork", "--print-address"]);
        as_user(&mut cmd);
        let mut daemon = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        // It prints its address once it listens.
        let mut line = String::new();
        BufReader::new(daemon.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("dbus-daemon address");
        assert!(line.starts_with("unix:path="), "dbus-daemon said {line:?}");
        let script = dir.join("notification_server.py");
        std::fs::write(&script, SERVER).expect("write server");
        let calls = dir.join("calls.jsonl");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(&script)
            .arg(format!("unix:path={}", path.display()))
            .arg(&calls);
        as_user(&mut cmd);
        let mut server = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the notification server");
        let mut line = String::new();
        BufReader::new(server.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server output");
        let mut bus = Bus {
            daemon,
            server,
            path: path.to_path_buf(),
            calls,
        };
        assert_eq!(
            line.trim(),
            "ready",
            "the notification server did not start: {:?}",
            bus.server.try_wait()
        );
        bus
    }

    fn address(&self) -> String {
        format!("unix:path={}", self.path.display())
    }

    /// The Notify calls recorded so far.
    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    /// Waits (up to 60 s) for `n` calls, then a moment for a wrong extra one to show.
    fn wait_for(&self, n: usize) -> Vec<Value> {
        let t0 = Instant::now();
        while self.calls().len() < n {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{} of {n} notifications arrived: {:#?}",
                self.calls().len(),
                self.calls()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(1));
        self.calls()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        for c in [&mut self.server, &mut self.daemon] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn jobs(sg: &Sg, state: &str) -> Vec<Value> {
    let out = sg.run(["--json", "jobs", "--state-dir", state]);
    out.expect_code(0);
    out.json().as_array().expect("array").clone()
}

/// Waits until `n` runs have ended; returns job name → run id.
fn wait_for_runs(sg: &Sg, state: &Path, n: usize, daemon: &mut Bg) -> Vec<(String, i64)> {
    let state_arg = state.display().to_string();
    let t0 = Instant::now();
    loop {
        if state.join("state.db").exists() {
            let runs = jobs(sg, &state_arg);
            if runs.iter().filter(|r| !r["ended"].is_null()).count() >= n {
                return runs
                    .iter()
                    .map(|r| {
                        (
                            r["job"].as_str().expect("job").to_string(),
                            r["id"].as_i64().expect("id"),
                        )
                    })
                    .collect();
            }
        }
        assert!(daemon.running(), "the daemon exited");
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "runs did not end in time"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (up to 30 s) until the log of run `id` has a line containing `what`; returns the log.
fn wait_for_log(sg: &Sg, state: &Path, id: i64, what: &str) -> String {
    let t0 = Instant::now();
    loop {
        let log = sg
            .run([
                "jobs",
                "--state-dir",
                state.to_str().expect("utf-8"),
                "log",
                &id.to_string(),
            ])
            .expect_code(0)
            .stdout_str();
        if log.contains(what) {
            return log;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no {what:?} in the log of run {id}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn id_of(runs: &[(String, i64)], job: &str) -> i64 {
    runs.iter()
        .find(|(j, _)| j == job)
        .unwrap_or_else(|| panic!("no run of {job}: {runs:?}"))
        .1
}

/// A workspace with a repository, a source tree and a config of `[notify]` plus `jobs`
/// (`{src}` and `{missing}` replaced), a state directory, and an empty run-user directory so
/// that the machine's real sessions are never notified.
fn setup(ws: &Ws, notify: &str, jobs: &str) -> Sg {
    let mut sg = Sg::init(ws, None);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("a.txt", b"hello\n");
    fx.finish();
    let config = ws.path("config.toml");
    let jobs = jobs
        .replace("{src}", &src.display().to_string())
        .replace("{missing}", &ws.path("gone").display().to_string());
    std::fs::write(&config, format!("[notify]\n{notify}\n\n{jobs}")).expect("config");
    sg.config = config;
    std::fs::create_dir_all(ws.path("run-user")).expect("mkdir run-user");
    sg.extra_env.extend([
        (
            "SNAPGUARD_DAEMON_SOCKET".into(),
            ws.path("daemon.sock").into(),
        ),
        ("SNAPGUARD_RUN_USER_DIR".into(), ws.path("run-user").into()),
        ("DBUS_SESSION_BUS_ADDRESS".into(), "".into()),
    ]);
    sg
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

const THREE_JOBS: &str = "[jobs.loud]\nkind = \"backup\"\npaths = [\"{src}\"]\nschedule = \"every 1h\"\nnotify_success = true\n\n\
     [jobs.quiet]\nkind = \"backup\"\npaths = [\"{src}\"]\nschedule = \"every 1h\"\n\n\
     [jobs.broken]\nkind = \"backup\"\npaths = [\"{missing}\"]\nschedule = \"every 1h\"\n";

/// The bus of `DBUS_SESSION_BUS_ADDRESS` (a daemon run in a user's session): a failed job and a
/// job with `notify_success` each notify once, with job, result and host in the summary, the
/// failure critical; a quiet success does not notify; the run logs say where it went.
#[test]
fn job_results_reach_the_session_bus_of_the_daemon() {
    if !tools() {
        return;
    }
    let ws = Ws::new();
    let mut sg = setup(&ws, "desktop = true", THREE_JOBS);
    let bus = Bus::start(&ws.path("bus"), &ws.root, None);
    sg.extra_env
        .push(("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into()));
    let state = ws.path("state");
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), state.as_os_str()]);
    let runs = wait_for_runs(&sg, &state, 3, &mut daemon);
    let calls = bus.wait_for(2);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let host = hostname();
    let summary = |s: String| {
        calls
            .iter()
            .find(|c| c["summary"] == s.as_str())
            .unwrap_or_else(|| panic!("no notification {s:?}: {calls:#?}"))
            .clone()
    };
    let broken = summary(format!("broken failed on {host}"));
    assert_eq!(broken["app_name"], "SnapGuard");
    assert_eq!(broken["hints"]["urgency"], 2, "{broken}");
    assert_eq!(broken["expire_timeout"], -1);
    assert_eq!(broken["app_icon"], "dialog-error");
    let body = broken["body"].as_str().expect("body");
    let broken_id = id_of(&runs, "broken");
    assert!(
        body.contains(&format!("snapguard jobs log {broken_id}")),
        "{body}"
    );
    assert!(body.contains("gone"), "the body does not say why: {body}");
    let loud = summary(format!("loud succeeded on {host}"));
    assert_eq!(loud["hints"]["urgency"], 1, "{loud}");
    assert!(
        loud["body"].as_str().expect("body").contains("Finished in"),
        "{loud}"
    );
    assert!(!calls.iter().any(|c| c.to_string().contains("quiet")));

    let sent = format!("notification sent to the session bus {}", bus.address());
    wait_for_log(&sg, &state, broken_id, &sent);
    wait_for_log(&sg, &state, id_of(&runs, "loud"), &sent);
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}

/// A bus nobody listens on: each failed run's log says the notification was not sent and why,
/// and the daemon goes on to the next job and stops cleanly.
#[test]
fn an_unreachable_bus_is_logged_and_the_daemon_goes_on() {
    if !tools() {
        return;
    }
    let ws = Ws::new();
    let jobs = "[jobs.first]\nkind = \"backup\"\npaths = [\"{missing}\"]\nschedule = \"every 1h\"\n\n\
                [jobs.second]\nkind = \"backup\"\npaths = [\"{missing}\"]\nschedule = \"every 1h\"\n";
    let mut sg = setup(&ws, "desktop = true", jobs);
    let address = format!("unix:path={}", ws.path("no-bus").display());
    sg.extra_env
        .push(("DBUS_SESSION_BUS_ADDRESS".into(), address.clone().into()));
    let state = ws.path("state");
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), state.as_os_str()]);
    let runs = wait_for_runs(&sg, &state, 2, &mut daemon);
    for job in ["first", "second"] {
        let log = wait_for_log(
            &sg,
            &state,
            id_of(&runs, job),
            &format!("notification not sent: session bus {address}: "),
        );
        assert!(!log.contains("notification sent"), "{log}");
    }
    assert!(daemon.running(), "the daemon exited");
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));

    // No bus at all (no variable, nothing in the run-user directory): said once per run.
    sg.extra_env
        .push(("DBUS_SESSION_BUS_ADDRESS".into(), "".into()));
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), state.as_os_str()]);
    // As soon as the daemon answers on its socket.
    let t0 = Instant::now();
    loop {
        let out = sg.run(["jobs", "run", "first"]);
        if out.code == Some(0) {
            break;
        }
        assert!(daemon.running(), "the daemon exited");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "jobs run first: {}",
            out.stderr_str()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let runs = wait_for_runs(&sg, &state, 3, &mut daemon);
    let last = runs.iter().map(|r| r.1).max().expect("runs");
    wait_for_log(
        &sg,
        &state,
        last,
        "notification not sent: no desktop session to notify (no session bus in",
    );
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}

/// A daemon run as root reaches users' session buses under the run-user directory
/// (`DIR/UID/bus`) by calling as the user: the bus only lets its own user in, and the server
/// records the caller's UID. By default only regular users (UID 1000 to 60000) are notified, so
/// not nobody (65534), and a bus whose socket belongs to another user than its directory names
/// is never called; `desktop_users = ["nobody"]` notifies nobody.
#[test]
fn users_session_buses_are_called_as_their_users() {
    if !tools() {
        return;
    }
    if !crate::support::is_root() {
        eprintln!("skipped: switching to a user's UID needs root");
        return;
    }
    let (nobody, nogroup) = crate::support::lookup_user("nobody").expect("user nobody");
    assert_eq!(nobody, 65534);
    for listed in [false, true] {
        let notify = if listed {
            "desktop = true\ndesktop_users = [\"nobody\"]"
        } else {
            "desktop = true"
        };
        let ws = Ws::new();
        // The users must reach their directories.
        std::fs::set_permissions(&ws.root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let jobs =
            "[jobs.broken]\nkind = \"backup\"\npaths = [\"{missing}\"]\nschedule = \"every 1h\"\n";
        let sg = setup(&ws, notify, jobs);
        let run_user = ws.path("run-user");
        let user_dir = |uid: u32, gid: u32| {
            let d = run_user.join(uid.to_string());
            std::fs::create_dir(&d).expect("mkdir");
            std::os::unix::fs::chown(&d, Some(uid), Some(gid)).expect("chown");
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
            d
        };
        let d = user_dir(nobody, nogroup);
        let nobody_bus = Bus::start(&d.join("bus"), &d, Some((nobody, nogroup)));
        // A bus in the directory of UID 1501 (a regular user's) whose socket is root's.
        let d = user_dir(1501, 1501);
        std::fs::create_dir(ws.path("root-bus")).expect("mkdir");
        let root_bus = Bus::start(&d.join("bus"), &ws.path("root-bus"), None);

        let state = ws.path("state");
        let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), state.as_os_str()]);
        let runs = wait_for_runs(&sg, &state, 1, &mut daemon);
        let id = id_of(&runs, "broken");
        if listed {
            let calls = nobody_bus.wait_for(1);
            assert_eq!(calls.len(), 1, "{calls:#?}");
            assert_eq!(calls[0]["caller_uid"], nobody, "{calls:#?}");
            assert_eq!(calls[0]["hints"]["urgency"], 2);
            assert_eq!(
                calls[0]["summary"],
                format!("broken failed on {}", hostname()).as_str()
            );
            let log = wait_for_log(
                &sg,
                &state,
                id,
                "notification sent to the desktop of nobody (uid 65534)",
            );
            assert!(!log.contains("not sent"), "{log}");
        } else {
            wait_for_log(
                &sg,
                &state,
                id,
                "notification not sent: no desktop session to notify (no session bus in",
            );
            assert!(nobody_bus.calls().is_empty(), "{:?}", nobody_bus.calls());
        }
        assert!(
            root_bus.calls().is_empty(),
            "{notify}: {:?}",
            root_bus.calls()
        );
        daemon.signal(rustix::process::Signal::TERM);
        assert_eq!(daemon.finish().code, Some(0));
    }
}
