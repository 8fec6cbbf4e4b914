//! `[notify] desktop = true` through the binary: the daemon calls
//! org.freedesktop.Notifications.Notify on real session buses (private `dbus-daemon`s), where a
//! small notification server (Python with GLib's Gio, Debian's python3-gi) owns the name and
//! records every call with the UID of the caller and the time. Covered: `desktop = true` without
//! `desktop_users` is refused; as root, only listed users' buses under a run-user directory
//! (`SNAPGUARD_RUN_USER_DIR`) are called, each by a child that takes the user's UID (the
//! recorded caller UID proves it) and in a session of its own, never an unlisted user's bus, a socket owned by another user
//! or `DBUS_SESSION_BUS_ADDRESS`; the body carries no task-log line; a bus that never answers
//! does not hold up another user's notification; a bus that cannot be reached is logged while
//! the daemon goes on.

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
import json, sys, time
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

def session(sender):
    # The caller's process: its pid, session id and controlling terminal (/proc/PID/stat).
    try:
        pid = bus("GetConnectionUnixProcessID", GLib.Variant("(s)", (sender,)), "(u)")
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return {"pid": pid, "sid": int(fields[3]), "tty_nr": int(fields[4])}
    except Exception as e:
        return {"error": repr(e)}

def call(conn, sender, path, iface, method, params, inv):
    if method == "Notify":
        app, replaces, icon, summary, body, actions, hints, timeout = params.unpack()
        count[0] += 1
        rec = {"app_name": app, "replaces_id": replaces, "app_icon": icon, "summary": summary,
               "body": body, "actions": list(actions), "hints": dict(hints),
               "expire_timeout": timeout, "id": count[0], "time": time.time(),
               "caller_session": session(sender),
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

/// Whether dbus-daemon, gdbus and python3-gi are there and the tests run as root (calling a
/// user's bus as that user takes root); in CI their absence is a failure
/// (`.ci/run` installs them).
fn tools() -> bool {
    let ok = |c: &mut Command| {
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let have = ok(Command::new("dbus-daemon").arg("--version"))
        && ok(Command::new("/usr/bin/gdbus").arg("help"))
        && ok(Command::new(PYTHON).args(["-c", "from gi.repository import Gio"]));
    if !have {
        if std::env::var_os("CI").is_some() && std::env::var_os("SG_ALLOW_SKIP").is_none() {
            panic!("desktop notification tests cannot run in CI: dbus-daemon, gdbus or python3-gi is missing (.ci/run installs them)");
        }
        eprintln!("skipped: needs dbus-daemon (dbus), gdbus (libglib2.0-bin) and python3-gi");
    }
    if have && !crate::support::is_root() {
        eprintln!("skipped: switching to a user's UID needs root");
        return false;
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

const BROKEN: &str =
    "[jobs.broken]\nkind = \"backup\"\npaths = [\"{missing}\"]\nschedule = \"every 1h\"\n";

/// `DIR/UID`, owned by the user and only theirs, as systemd-logind makes it.
fn user_dir(run_user: &Path, uid: u32, gid: u32) -> PathBuf {
    let d = run_user.join(uid.to_string());
    std::fs::create_dir(&d).expect("mkdir");
    std::os::unix::fs::chown(&d, Some(uid), Some(gid)).expect("chown");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    d
}

/// A workspace whose root the users can enter (their run-user directories are below it).
fn open_ws() -> Ws {
    let ws = Ws::new();
    std::fs::set_permissions(&ws.root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    ws
}

/// `desktop = true` without `desktop_users` is a config error: the daemon does not start, and a
/// user's bus that the old default (every regular user) would have reached gets nothing.
#[test]
fn desktop_without_desktop_users_is_refused() {
    if !tools() {
        return;
    }
    let ws = open_ws();
    let sg = setup(&ws, "desktop = true", BROKEN);
    let d = user_dir(&ws.path("run-user"), 1501, 1501);
    std::fs::create_dir(ws.path("root-bus")).expect("mkdir");
    // Owned by root, not 1501: the test only shows that nothing at all is sent.
    let bus = Bus::start(&d.join("bus"), &ws.path("root-bus"), None);
    let state = ws.path("state");
    let out = sg.run(["daemon", "--state-dir", state.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(2), "{}", out.stderr_str());
    assert!(
        out.stderr_str()
            .contains("desktop = true needs desktop_users"),
        "{}",
        out.stderr_str()
    );
    assert!(bus.calls().is_empty(), "{:?}", bus.calls());
}

/// A daemon run as root reaches the session buses of the users in `desktop_users` under the
/// run-user directory (`DIR/UID/bus`) by calling as the user: the bus only lets its own user
/// in, and the server records the caller's UID. A failed job and a job with `notify_success`
/// each notify once, with job, result and host in the summary, the failure critical, and a body
/// of run id, the run's own error and the log command, but no line of the task log (which
/// names the missing path); a quiet success does not notify. Never called: the bus of an
/// unlisted user, a bus whose socket belongs to another user than its directory names, and the
/// bus in the daemon's `DBUS_SESSION_BUS_ADDRESS`.
#[test]
fn job_results_reach_only_listed_users_as_those_users() {
    if !tools() {
        return;
    }
    let (nobody, nogroup) = crate::support::lookup_user("nobody").expect("user nobody");
    let (daemon_uid, daemon_gid) = crate::support::lookup_user("daemon").expect("user daemon");
    let ws = open_ws();
    let mut sg = setup(
        &ws,
        "desktop = true\ndesktop_users = [\"nobody\", \"no-such-user-sg\"]",
        THREE_JOBS,
    );
    let run_user = ws.path("run-user");
    let d = user_dir(&run_user, nobody, nogroup);
    let nobody_bus = Bus::start(&d.join("bus"), &d, Some((nobody, nogroup)));
    // Not listed.
    let d = user_dir(&run_user, daemon_uid, daemon_gid);
    let daemon_bus = Bus::start(&d.join("bus"), &d, Some((daemon_uid, daemon_gid)));
    // A bus in the directory of UID 1501 whose socket is root's.
    let d = user_dir(&run_user, 1501, 1501);
    std::fs::create_dir(ws.path("root-bus")).expect("mkdir");
    let root_bus = Bus::start(&d.join("bus"), &ws.path("root-bus"), None);
    // The daemon's environment names a bus (as after `su` without `-`): ignored as root.
    std::fs::create_dir(ws.path("env-bus")).expect("mkdir");
    let env_bus = Bus::start(&ws.path("env-bus/bus"), &ws.path("env-bus"), None);
    sg.extra_env
        .push(("DBUS_SESSION_BUS_ADDRESS".into(), env_bus.address().into()));

    let state = ws.path("state");
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), state.as_os_str()]);
    let runs = wait_for_runs(&sg, &state, 3, &mut daemon);
    let calls = nobody_bus.wait_for(2);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(
        calls.iter().all(|c| c["caller_uid"] == nobody),
        "{calls:#?}"
    );
    // gdbus ran in a session of its own (setsid), without a controlling terminal.
    for c in &calls {
        let s = &c["caller_session"];
        assert_eq!(s["sid"], s["pid"], "{c}");
        assert_eq!(s["tty_nr"], 0, "{c}");
    }
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
    let broken_id = id_of(&runs, "broken");
    let body = broken["body"].as_str().expect("body");
    assert_eq!(
        body,
        format!("Run {broken_id}: exit code 1.\nLog: snapguard jobs log {broken_id}")
    );
    // The task log says why (the missing path); the notification does not carry it.
    let log = wait_for_log(&sg, &state, broken_id, "gone");
    assert!(!body.contains("gone"), "{body}\n{log}");
    let loud = summary(format!("loud succeeded on {host}"));
    assert_eq!(loud["hints"]["urgency"], 1, "{loud}");
    let loud_body = loud["body"].as_str().expect("body");
    assert!(loud_body.contains("finished in"), "{loud}");
    assert!(
        loud_body.contains(&format!("snapguard jobs log {}", id_of(&runs, "loud"))),
        "{loud}"
    );
    assert!(!calls.iter().any(|c| c.to_string().contains("quiet")));

    let sent = "notification sent to the desktop of nobody (uid 65534)";
    let log = wait_for_log(&sg, &state, broken_id, sent);
    assert!(
        log.contains("desktop_users: there is no user \"no-such-user-sg\""),
        "{log}"
    );
    wait_for_log(&sg, &state, id_of(&runs, "loud"), sent);
    for (what, bus) in [
        ("unlisted user", &daemon_bus),
        ("socket of another user", &root_bus),
        ("DBUS_SESSION_BUS_ADDRESS", &env_bus),
    ] {
        assert!(bus.calls().is_empty(), "{what}: {:?}", bus.calls());
    }
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}

/// Two listed users: root's bus accepts connections and never answers (gdbus hangs in the
/// handshake). nobody's notification still arrives promptly, well before the per-bus deadline
/// (10 s) at which gdbus for root's bus is killed, which the run's log then says.
#[test]
fn a_stalled_bus_does_not_hold_up_another_users_notification() {
    if !tools() {
        return;
    }
    let (nobody, nogroup) = crate::support::lookup_user("nobody").expect("user nobody");
    let ws = open_ws();
    // root first: called one after the other, nobody would wait for root's deadline.
    let sg = setup(
        &ws,
        "desktop = true\ndesktop_users = [\"root\", \"nobody\"]",
        BROKEN,
    );
    let run_user = ws.path("run-user");
    let d = user_dir(&run_user, 0, 0);
    // Connections wait in the backlog: accepted by the kernel, never answered.
    let _stalled = std::os::unix::net::UnixListener::bind(d.join("bus")).expect("bind");
    let d = user_dir(&run_user, nobody, nogroup);
    let nobody_bus = Bus::start(&d.join("bus"), &d, Some((nobody, nogroup)));

    let state = ws.path("state");
    let state_arg = state.display().to_string();
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), state.as_os_str()]);
    let runs = wait_for_runs(&sg, &state, 1, &mut daemon);
    let id = id_of(&runs, "broken");
    let calls = nobody_bus.wait_for(1);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let ended = jobs(&sg, &state_arg)
        .iter()
        .find(|r| r["id"] == id)
        .and_then(|r| r["ended"].as_f64())
        .expect("ended");
    let at = calls[0]["time"].as_f64().expect("time");
    // `ended` is in whole seconds (up to 1 s early).
    assert!(
        at - ended < 7.0,
        "nobody's notification came {:.1} s after the run ended",
        at - ended
    );
    let log = wait_for_log(
        &sg,
        &state,
        id,
        "notification not sent: desktop of root (uid 0): gdbus did not finish in 10 s",
    );
    assert!(
        log.contains("notification sent to the desktop of nobody (uid 65534)"),
        "{log}"
    );
    // Killed: no gdbus of this test's bus is left.
    let left = Command::new("pgrep")
        .args([
            "-f",
            &format!("gdbus call --address unix:path={}", run_user.display()),
        ])
        .output()
        .expect("pgrep");
    assert!(
        left.stdout.is_empty(),
        "gdbus still runs: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    assert!(daemon.running(), "the daemon exited");
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}

/// A listed user's bus nobody listens on: each failed run's log says the notification was not
/// sent and why, and the daemon goes on to the next job and stops cleanly. A listed user
/// without a bus: the log says no session could be notified.
#[test]
fn an_unreachable_bus_is_logged_and_the_daemon_goes_on() {
    if !tools() {
        return;
    }
    let (nobody, nogroup) = crate::support::lookup_user("nobody").expect("user nobody");
    let ws = open_ws();
    let jobs = "[jobs.first]\nkind = \"backup\"\npaths = [\"{missing}\"]\nschedule = \"every 1h\"\n\n\
                [jobs.second]\nkind = \"backup\"\npaths = [\"{missing}\"]\nschedule = \"every 1h\"\n";
    let sg = setup(&ws, "desktop = true\ndesktop_users = [\"nobody\"]", jobs);
    let d = user_dir(&ws.path("run-user"), nobody, nogroup);
    // A socket file of nobody's with nobody listening.
    drop(std::os::unix::net::UnixListener::bind(d.join("bus")).expect("bind"));
    std::os::unix::fs::chown(d.join("bus"), Some(nobody), Some(nogroup)).expect("chown");
    let state = ws.path("state");
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), state.as_os_str()]);
    let runs = wait_for_runs(&sg, &state, 2, &mut daemon);
    for job in ["first", "second"] {
        let log = wait_for_log(
            &sg,
            &state,
            id_of(&runs, job),
            "notification not sent: desktop of nobody (uid 65534): ",
        );
        assert!(!log.contains("notification sent"), "{log}");
    }
    assert!(daemon.running(), "the daemon exited");
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));

    // No bus at all in nobody's directory: said once per run.
    std::fs::remove_file(d.join("bus")).expect("rm bus");
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
