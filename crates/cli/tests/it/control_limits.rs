//! The daemon's control socket under abuse, through the binary: many idle connections from
//! other users do not keep root's `jobs status` from being answered and never take the daemon
//! down (users who may do nothing are refused at once, a listed user holds at most a few
//! connections), a client trickling its request in is cut after the request deadline, and the
//! daemon refuses a socket directory others could swap entries in.

use crate::maintenance::{os, Bg};
use crate::support::cmd::{Out, Sg, Ws};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A workspace with a repository, a configuration with one yearly job (nothing runs unless
/// asked) and `allow_users`, and a daemon listening at `socket`.
struct Daemon {
    _ws: Ws,
    socket: PathBuf,
    bg: Bg,
}

/// The workspace, its `snapguard`, the socket path and the `daemon` arguments.
fn setup(
    allow_users: &[&str],
    socket_rel: &str,
    prepare: impl FnOnce(&Path),
) -> (Ws, Sg, PathBuf, Vec<String>) {
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    std::fs::create_dir_all(ws.path("src")).expect("src");
    let config = ws.path("config.toml");
    let users: Vec<String> = allow_users.iter().map(|u| format!("{u:?}")).collect();
    std::fs::write(
        &config,
        format!(
            "[daemon]\nallow_users = [{}]\n\n\
             [jobs.home]\nkind = \"backup\"\npaths = [\"{}\"]\nschedule = \"@yearly\"\n",
            users.join(", "),
            ws.path("src").display()
        ),
    )
    .expect("config");
    sg.config = config;
    // Other users must reach the socket.
    std::fs::set_permissions(&ws.root, PermissionsExt::from_mode(0o755)).expect("chmod ws");
    prepare(&ws.root);
    let socket = ws.path(socket_rel);
    sg.extra_env
        .push(("SNAPGUARD_DAEMON_SOCKET".into(), socket.clone().into()));
    let state = ws.path("state").display().to_string();
    let args = vec!["daemon".to_string(), "--state-dir".into(), state];
    (ws, sg, socket, args)
}

fn start(allow_users: &[&str], socket_rel: &str, prepare: impl FnOnce(&Path)) -> Daemon {
    let (ws, sg, socket, args) = setup(allow_users, socket_rel, prepare);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| os(a)).collect();
    let mut bg = Bg::spawn(&sg, &args);
    let t0 = Instant::now();
    while !socket.exists() && bg.running() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no control socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon {
        _ws: ws,
        socket,
        bg,
    }
}

impl Daemon {
    /// `snapguard jobs ARGS` as root (`uid` None) or as `uid` through setpriv.
    fn ask(&self, uid: Option<&str>, args: &[&str]) -> Out {
        let mut cmd = crate::support::cmd::as_user(uid);
        cmd.env("SNAPGUARD_DAEMON_SOCKET", &self.socket)
            .current_dir("/");
        let mut all = vec!["jobs"];
        all.extend_from_slice(args);
        crate::support::cmd::run_cmd(&mut cmd, all)
    }

    fn stop(mut self) {
        assert!(self.bg.running(), "the daemon exited");
        self.bg.signal(rustix::process::Signal::TERM);
        let out = self.bg.finish();
        assert_eq!(out.code, Some(0), "{out}");
    }
}

/// Opens `n` connections to `socket` as `uid` and keeps them open, sending nothing, until its
/// stdin closes. One line on stdout after 2 s: for each connection what the daemon said so far
/// (its error, or "" for a connection it keeps open).
const HOLDER: &str = r#"
import json, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    conns.append(s)
time.sleep(2)
said = []
for s in conns:
    s.setblocking(False)
    try:
        data = s.recv(65536)
        said.append(json.loads(data)["error"] if data else "closed")
    except BlockingIOError:
        said.append("")
print(json.dumps(said), flush=True)
sys.stdin.read()
"#;

struct Holder {
    child: Child,
    said: Vec<String>,
}

fn hold(socket: &Path, uid: &str, n: usize) -> Holder {
    let mut child = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            "--",
            "/usr/bin/python3",
            "-c",
            HOLDER,
        ])
        .arg(socket)
        .arg(n.to_string())
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the holder");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("holder output");
    let said: Vec<String> =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("holder said {line:?}: {e}"));
    assert_eq!(said.len(), n);
    Holder { child, said }
}

impl Holder {
    fn count(&self, what: &str) -> usize {
        self.said.iter().filter(|s| s.contains(what)).count()
    }

    fn open(&self) -> usize {
        self.said.iter().filter(|s| s.is_empty()).count()
    }

    /// Closes its stdin: it exits and its connections close.
    fn release(mut self) {
        drop(self.child.stdin.take());
        let st = self.child.wait().expect("wait holder");
        assert!(st.success(), "holder: {st}");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `jobs status` as root answers, and soon.
fn root_status_answers(d: &Daemon) {
    let t0 = Instant::now();
    let out = d.ask(None, &["--json", "status"]);
    out.expect_code(0);
    assert_eq!(out.json()["jobs"][0]["name"], "home", "{out}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "status took {:?}",
        t0.elapsed()
    );
}

#[test]
fn idle_connections_of_other_users_do_not_stop_the_control_socket() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root to connect as other users");
        return;
    }
    let mut d = start(&["nobody"], "run/daemon.sock", |_| {});
    root_status_answers(&d);

    // A user who may do nothing is told so at once on each connection: none stays open.
    let unlisted = hold(&d.socket, "12345", 100);
    assert_eq!(
        unlisted.count("may not control the daemon"),
        100,
        "{:?}",
        unlisted.said
    );
    root_status_answers(&d);

    // A listed user keeps at most 8 connections open; the others are refused at once.
    let listed = hold(&d.socket, "65534", 100);
    assert_eq!(listed.open(), 8, "{:?}", listed.said);
    assert_eq!(
        listed.count("connections to the daemon open already"),
        92,
        "{:?}",
        listed.said
    );
    // (Within the 10 s the held connections have to send their request.)
    let out = d.ask(Some("65534"), &["status"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr_str().contains("open already"),
        "the 9th connection of a user: {out}"
    );
    root_status_answers(&d);
    assert!(d.bg.running(), "the daemon exited");

    // Once they close, the user is served again.
    unlisted.release();
    listed.release();
    let t0 = Instant::now();
    loop {
        let out = d.ask(Some("65534"), &["status"]);
        if out.code == Some(0) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "slots not given back: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    d.stop();
}

#[test]
fn a_request_trickling_in_is_cut_after_the_deadline() {
    if !crate::support::is_root() {
        eprintln!("skipped: the daemon refuses unlisted users before reading anything");
        return;
    }
    let d = start(&[], "run/daemon.sock", |_| {});
    let conn = UnixStream::connect(&d.socket).expect("connect");
    let t0 = Instant::now();
    let mut w = conn.try_clone().expect("clone");
    // One byte a second: each read is quick, the whole line never comes in time.
    let writer = std::thread::spawn(move || {
        for b in br#"{"op":"status"                           "#.iter() {
            if w.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // One answer line; reading on to EOF could end in ECONNRESET instead, since the daemon
    // closes while the trickled bytes are still unread.
    let mut answer = String::new();
    BufReader::new(&conn)
        .read_line(&mut answer)
        .expect("read answer");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(15),
        "cut after {took:?}"
    );
    let answer: Value = serde_json::from_str(answer.trim()).expect("JSON answer");
    assert_eq!(answer["ok"], false);
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or("")
            .contains("no complete request within 10 s"),
        "{answer}"
    );
    drop(conn);
    writer.join().expect("writer");
    root_status_answers(&d);
    d.stop();
}

#[test]
fn a_socket_directory_others_may_write_to_is_refused() {
    // World-writable without the sticky bit: others could swap the socket for a symlink.
    let (_ws, sg, socket, args) = setup(&[], "open/daemon.sock", |root| {
        let dir = root.join("open");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o777)).expect("chmod");
    });
    let out = sg.run(&args);
    assert_eq!(out.code, Some(1), "{out}");
    let dir = socket.parent().expect("dir").display().to_string();
    assert!(
        out.stderr_str().contains("writable by other users")
            && out.stderr_str().contains(&format!("directory {dir} "))
            && out.stderr_str().contains("chmod go-w"),
        "{out}"
    );
    assert!(!socket.exists(), "a socket was made: {out}");

    // With the sticky bit (like /tmp) it is fine.
    let d = start(&[], "sticky/daemon.sock", |root| {
        let dir = root.join("sticky");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o1777)).expect("chmod");
    });
    root_status_answers(&d);
    d.stop();
}

/// CPU time (user + system, in clock ticks) the process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

#[test]
fn out_of_descriptors_the_daemon_waits_instead_of_spinning() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root to lower the daemon's descriptor limit");
        return;
    }
    let mut d = start(&[], "run/daemon.sock", |_| {});
    root_status_answers(&d);
    let pid = d.bg.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .count();
    let limit = |n: String| {
        let st = Command::new("prlimit")
            .args(["--pid", &pid.to_string(), &format!("--nofile={n}:")])
            .status()
            .expect("prlimit");
        assert!(st.success(), "prlimit: {st}");
    };
    // Only the soft limit: raising it back needs no privilege.
    let soft = String::from_utf8(
        Command::new("prlimit")
            .args([
                "--pid",
                &pid.to_string(),
                "--nofile",
                "--raw",
                "--noheadings",
            ])
            .args(["--output", "SOFT"])
            .output()
            .expect("prlimit")
            .stdout,
    )
    .expect("utf-8")
    .trim()
    .to_string();
    limit((open + 8).to_string());
    // More connections than descriptors: the rest wait in the backlog, accept fails (EMFILE).
    let conns: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(&d.socket).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(pid) - before;
    let ticks_per_s: u64 = String::from_utf8(
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf")
            .stdout,
    )
    .expect("utf-8")
    .trim()
    .parse()
    .expect("CLK_TCK");
    let secs = used as f64 / ticks_per_s as f64;
    assert!(
        secs < 0.5,
        "the daemon used {secs:.2} s of CPU in {:?} with no descriptors left",
        t0.elapsed()
    );
    assert!(d.bg.running(), "the daemon exited");
    // Once the connections go, it serves again.
    drop(conns);
    limit(soft);
    let t0 = Instant::now();
    loop {
        let out = d.ask(None, &["status"]);
        if out.code == Some(0) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no answer: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    root_status_answers(&d);
    d.stop();
}
