//! The daemon's web side through the binary and a real HTTPS client (curl): the self-signed
//! certificate is valid for localhost, the UI is served, the API needs a session, jobs started
//! from the API run in the daemon and stream their progress, a run is cancelled from the API
//! and from the control socket, /metrics counts it, and a configured certificate is used.

use crate::maintenance::{os, Bg};
use crate::support::cmd::{Sg, Ws};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "admin password 1";

/// A curl with the daemon's certificate as the only trusted one and a cookie jar.
struct Client {
    base: String,
    ca: PathBuf,
    jar: PathBuf,
    csrf: String,
}

struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

impl Client {
    fn curl(&self, args: &[&str]) -> Answer {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "60", "--cacert"])
            .arg(&self.ca)
            .arg("-b")
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "curl {args:?} failed: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (body, code) = text.rsplit_once('\n').expect("status line");
        Answer {
            status: code.trim().parse().expect("status"),
            body: body.to_string(),
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.curl(&[&format!("{}{path}", self.base)])
    }

    fn send(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        let url = format!("{}{path}", self.base);
        let csrf = format!("X-CSRF-Token: {}", self.csrf);
        let mut a = vec![
            "-X",
            method,
            "-H",
            &csrf,
            "-H",
            "Content-Type: application/json",
        ];
        if let Some(b) = body {
            a.extend(["--data-binary", b]);
        }
        a.push(&url);
        self.curl(&a)
    }

    fn login(&mut self, user: &str, password: &str) -> Answer {
        let body = serde_json::json!({"username": user, "password": password}).to_string();
        let a = self.curl(&[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
            &format!("{}/api/v1/session", self.base),
        ]);
        if a.status == 200 {
            self.csrf = a.json()["csrf_token"].as_str().expect("csrf").to_string();
        }
        a
    }
}

/// The address the daemon's web server listens on (it writes it once bound).
pub(crate) fn wait_for_address(state: &Path, daemon: &mut Bg) -> u16 {
    let t0 = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(state.join("web-address")) {
            if let Some((_, port)) = s.trim().rsplit_once(':') {
                return port.parse().expect("port");
            }
        }
        assert!(daemon.running(), "the daemon exited");
        assert!(t0.elapsed() < Duration::from_secs(30), "no web address");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for_status(c: &Client, run: i64, want: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let r = c.get(&format!("/api/v1/runs/{run}")).json();
        if r["status"] == want {
            return r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "run {run} never became {want}: {r:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Setup {
    ws: Ws,
    sg: Sg,
    state: PathBuf,
    src: PathBuf,
}

fn setup(extra_config: &str) -> Setup {
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    let src = ws.path("src");
    std::fs::create_dir_all(src.join("docs")).expect("mkdir");
    std::fs::write(src.join("docs/readme.txt"), b"first version\n").expect("write");
    // Incompressible, so that a throttled upload takes a while.
    let mut big = vec![0u8; 6 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::create_dir_all(ws.path("big")).expect("mkdir");
    std::fs::write(ws.path("big/random.bin"), &big).expect("write");
    let config = ws.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.docs]\nkind = \"backup\"\npaths = [\"{}\"]\nschedule = \"@yearly\"\n\n\
             [jobs.slow]\nkind = \"backup\"\npaths = [\"{}\"]\nschedule = \"@yearly\"\n{extra_config}",
            src.display(),
            ws.path("big").display()
        ),
    )
    .expect("config");
    sg.config = config;
    sg.extra_env.push((
        "SNAPGUARD_DAEMON_SOCKET".into(),
        ws.path("daemon.sock").into(),
    ));
    let state = ws.path("state");
    add_admin(&sg, &state, ADMIN_PASSWORD);
    Setup { ws, sg, state, src }
}

/// `snapguard user add admin --role admin` in the daemon's state directory.
pub(crate) fn add_admin(sg: &Sg, state: &Path, password: &str) {
    let mut add = sg.command();
    add.env("SNAPGUARD_NEW_PASSWORD", password).args([
        "user",
        "add",
        "admin",
        "--role",
        "admin",
        "--state-dir",
        state.to_str().expect("utf-8"),
    ]);
    add.assert().success();
}

#[test]
fn the_web_api_runs_streams_and_cancels_jobs_over_https() {
    let Setup { ws, sg, state, src } = setup("");
    let state_arg = state.display().to_string();
    // Jobs inherit the daemon's upload limit: the big backup takes about 12 s.
    let mut daemon = Bg::spawn(
        &sg,
        &[
            os("--limit-upload"),
            os("0.5"),
            os("daemon"),
            os("--state-dir"),
            os(&state_arg),
        ],
    );
    let port = wait_for_address(&state, &mut daemon);
    let mut c = Client {
        base: format!("https://localhost:{port}"),
        ca: state.join("tls/cert.pem"),
        jar: ws.path("cookies"),
        csrf: String::new(),
    };
    // The key of the self-signed certificate is the daemon's alone.
    let mode = std::fs::metadata(state.join("tls/key.pem"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("key");
    assert_eq!(mode, 0o600);

    // The UI is served (the certificate verifies for localhost); the API needs a session.
    let page = c.get("/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/assets/app.js"), "{}", page.body);
    let js = c.get("/assets/app.js");
    assert_eq!(js.status, 200);
    assert!(js.body.len() > 1000, "the UI script is missing");
    let no = c.get("/api/v1/jobs");
    assert_eq!(no.status, 401, "{}", no.body);
    assert_eq!(no.json()["code"], "unauthenticated");
    assert_eq!(c.login("admin", "wrong password").status, 401);
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 200);

    // Run a job from the API: it runs in the daemon, its progress streams as events.
    let jobs = c.get("/api/v1/jobs").json();
    assert_eq!(jobs.as_array().map(Vec::len), Some(2), "{jobs:#}");
    let run = c.send("POST", "/api/v1/jobs/docs/run", None).json()["run"]
        .as_i64()
        .expect("run id");
    let events = c.curl(&["-N", &format!("{}/api/v1/runs/{run}/events", c.base)]);
    assert_eq!(events.status, 200);
    assert!(events.body.contains("event: log"), "{}", events.body);
    assert!(
        events.body.contains("run now, asked by web user admin"),
        "{}",
        events.body
    );
    let end = events
        .body
        .split("event: end\ndata: ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .unwrap_or_else(|| panic!("no end event: {}", events.body));
    let end: Value = serde_json::from_str(end).expect("end event JSON");
    assert_eq!(end["status"], "succeeded", "{end:#}");
    let snapshot = end["summary"]["snapshot_id"].as_str().expect("snapshot id");
    // The new snapshot is there, and its file downloads bit-exact.
    let listed = c.get("/api/v1/snapshots").json();
    assert_eq!(listed[0]["id"], snapshot, "{listed:#}");
    let file = c.get(&format!(
        "/api/v1/snapshots/{snapshot}/file?path={}/docs/readme.txt",
        src.display()
    ));
    assert_eq!(file.body, "first version\n");

    // Cancel from the API while it runs.
    let run = c.send("POST", "/api/v1/jobs/slow/run", None).json()["run"]
        .as_i64()
        .expect("run id");
    let again = c.send("POST", "/api/v1/jobs/slow/run", None);
    assert_eq!(again.status, 409, "{}", again.body);
    std::thread::sleep(Duration::from_secs(1));
    let r = c.send("POST", &format!("/api/v1/runs/{run}/cancel"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = wait_for_status(&c, run, "cancelled");
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("web user admin")),
        "{r:#}"
    );
    let finished = c.send("POST", &format!("/api/v1/runs/{run}/cancel"), None);
    assert_eq!(finished.status, 409, "{}", finished.body);

    // Cancel through the control socket (as root).
    let run = c.send("POST", "/api/v1/jobs/slow/run", None).json()["run"]
        .as_i64()
        .expect("run id");
    std::thread::sleep(Duration::from_secs(1));
    sg.run(["jobs", "cancel", &run.to_string()]).expect_code(0);
    let r = wait_for_status(&c, run, "cancelled");
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("uid 0")),
        "{r:#}"
    );
    let log = c.get(&format!("/api/v1/runs/{run}/log")).json();
    assert!(log.to_string().contains("cancel asked by"), "{log:#}");
    // No snapshot of the cancelled backups.
    assert_eq!(
        c.get("/api/v1/snapshots").json().as_array().map(Vec::len),
        Some(1)
    );

    // Prometheus, with HTTP Basic authentication.
    let m = c.curl(&[
        "-u",
        &format!("admin:{ADMIN_PASSWORD}"),
        &format!("{}/metrics", c.base),
    ]);
    assert_eq!(m.status, 200, "{}", m.body);
    assert!(
        m.body
            .contains("snapguard_job_runs_total{job=\"slow\",status=\"cancelled\"} 2"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains("snapguard_repository_snapshots 1"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("snapguard_job_last_success_timestamp_seconds{job=\"docs\"}"),
        "{}",
        m.body
    );

    daemon.signal(rustix::process::Signal::TERM);
    let out = daemon.finish();
    assert_eq!(out.code, Some(0), "{out}");
}

#[test]
fn listen_and_certificate_settings_are_checked_and_used() {
    let Setup { ws, sg, state, .. } = setup("");
    let state_arg = state.display().to_string();
    let bad = sg.run(["daemon", "--state-dir", &state_arg, "--listen", "localhost"]);
    bad.expect_code(2);
    assert!(bad.stderr_str().contains("ADDR:PORT"), "{bad}");

    // A port in use is named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let busy = sg.run(["daemon", "--state-dir", &state_arg, "--listen", &addr]);
    assert_ne!(busy.code, Some(0), "{busy}");
    assert!(
        busy.stderr_str()
            .contains(&format!("cannot listen on {addr}")),
        "{busy}"
    );
    drop(taken);

    // A configured certificate (made here by openssl) is the one served.
    let cert = ws.path("site.pem");
    let key = ws.path("site.key");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut sg = sg;
    let text = std::fs::read_to_string(&sg.config).expect("config");
    std::fs::write(
        &sg.config,
        format!("[daemon]\ntls_cert = \"{}\"\n\n{text}", cert.display()),
    )
    .expect("config");
    let half = sg.run(["daemon", "--state-dir", &state_arg]);
    assert_ne!(half.code, Some(0), "{half}");
    assert!(half.stderr_str().contains("tls_cert and tls_key"), "{half}");
    std::fs::write(
        &sg.config,
        format!(
            "[daemon]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n{text}",
            cert.display(),
            key.display()
        ),
    )
    .expect("config");
    sg.extra_env
        .push(("SNAPGUARD_LISTEN".into(), "127.0.0.1:0".into()));
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    let port = wait_for_address(&state, &mut daemon);
    let mut c = Client {
        base: format!("https://localhost:{port}"),
        ca: cert.clone(),
        jar: ws.path("cookies"),
        csrf: String::new(),
    };
    // curl trusts only the configured certificate: the login proves it is the one served.
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 200);
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}

#[test]
fn names_that_are_not_utf8_are_reached_byte_exact() {
    use std::os::unix::ffi::OsStrExt;
    let Setup { ws, sg, state, src } = setup("");
    // Two names that read the same once made valid UTF-8: only path_hex tells them apart.
    let dir = src.join("odd");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let raw = dir.join(std::ffi::OsStr::from_bytes(b"bad\xff.txt"));
    let lookalike = dir.join("bad\u{fffd}.txt");
    std::fs::write(&raw, b"the raw name\n").expect("write");
    std::fs::write(&lookalike, b"the replacement character\n").expect("write");
    sg.backup(&[&src], &[]);
    let state_arg = state.display().to_string();
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    let port = wait_for_address(&state, &mut daemon);
    let mut c = Client {
        base: format!("https://localhost:{port}"),
        ca: state.join("tls/cert.pem"),
        jar: ws.path("cookies"),
        csrf: String::new(),
    };
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 200);
    let tree = c
        .get(&format!(
            "/api/v1/snapshots/latest/tree?path={}",
            dir.display()
        ))
        .json();
    let entries = tree["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{tree:#}");
    let hex = entries
        .iter()
        .find_map(|e| e["path_hex"].as_str())
        .unwrap_or_else(|| panic!("no path_hex: {tree:#}"));
    assert_eq!(hex::decode(hex).expect("hex"), raw.as_os_str().as_bytes());
    let exact = c.get(&format!("/api/v1/snapshots/latest/file?path_hex={hex}"));
    assert_eq!(exact.body, "the raw name\n");
    let by_text = c.get(&format!(
        "/api/v1/snapshots/latest/file?path={}/bad%EF%BF%BD.txt",
        dir.display()
    ));
    assert_eq!(by_text.body, "the replacement character\n");
    let versions = c.get(&format!("/api/v1/versions?path_hex={hex}")).json();
    assert_eq!(
        versions["versions"].as_array().map(Vec::len),
        Some(1),
        "{versions:#}"
    );
    assert_eq!(versions["path_hex"], hex);
    // Restore to the server, byte-exact.
    let target = ws.path("restored");
    let body = serde_json::json!({
        "snapshot": "latest", "path_hex": hex, "target": target.display().to_string()
    })
    .to_string();
    let r = c.send("POST", "/api/v1/restore", Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    let got = std::fs::read(target.join(std::ffi::OsStr::from_bytes(b"bad\xff.txt")))
        .expect("the restored file has the raw name");
    assert_eq!(got, b"the raw name\n");
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}

/// Descriptors the daemon inherits (from a shell, sudo) are closed at start, so that nothing
/// it starts as another user (tar for a restore, gdbus) can use them.
#[test]
fn the_daemon_keeps_no_inherited_descriptors() {
    let Setup {
        ws: _ws,
        mut sg,
        state,
        ..
    } = setup("");
    sg.wrapper = vec![
        "sh".into(),
        "-c".into(),
        "exec 7</etc/hostname 9</etc/hostname; exec \"$0\" \"$@\"".into(),
    ];
    let state_arg = state.display().to_string();
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    wait_for_address(&state, &mut daemon);
    let fds = Path::new("/proc").join(daemon.pid().to_string()).join("fd");
    let open: Vec<String> = std::fs::read_dir(&fds)
        .expect("the daemon's fds")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for fd in ["7", "9"] {
        let target = std::fs::read_link(fds.join(fd)).ok();
        assert!(
            target.as_deref() != Some(Path::new("/etc/hostname")),
            "inherited fd {fd} is still open: {open:?}"
        );
    }
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}
