//! `snapguard daemon` and `snapguard jobs` through the binary: configured jobs run (one
//! repository job at a time), their results and task logs are recorded, a failing job is
//! recorded as failed with the reason, SIGTERM stops the daemon cleanly, a restart does not
//! run the jobs again before their time, and one state directory has one daemon.

use crate::maintenance::{os, Bg};
use crate::support::cmd::{Out, Sg, Ws};
use crate::support::compare::{assert_same, Opts, Tree};
use crate::support::fixture::Fixture;
use crate::support::{restored_path, varied};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn jobs(sg: &Sg, state: &Path) -> Vec<Value> {
    let out = sg.run([
        "--json",
        "jobs",
        "--state-dir",
        state.to_str().expect("utf-8"),
    ]);
    out.expect_code(0);
    out.json().as_array().expect("array").clone()
}

/// Waits until `n` runs have ended.
fn wait_for_runs(sg: &Sg, state: &Path, n: usize, daemon: &mut Bg) -> Vec<Value> {
    let t0 = Instant::now();
    loop {
        if state.join("state.db").exists() {
            let runs = jobs(sg, state);
            let ended = runs.iter().filter(|r| !r["ended"].is_null()).count();
            if ended >= n {
                return runs;
            }
        }
        assert!(daemon.running(), "the daemon exited");
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "runs did not end in time: {:?}",
            state.join("state.db").exists().then(|| jobs(sg, state))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_daemon_runs_configured_jobs_records_them_and_stops_cleanly() {
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    varied::build(&mut fx);
    let built = fx.finish();
    let config = ws.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.home]\nkind = \"backup\"\npaths = [\"{}\"]\ntags = [\"daemon\"]\nschedule = \"every 1h\"\n\n\
             [jobs.missing]\nkind = \"backup\"\npaths = [\"{}\"]\nschedule = \"every 1h\"\n",
            src.display(),
            ws.path("no-such-dir").display()
        ),
    )
    .expect("config");
    sg.config = config;
    let state = ws.path("state");
    let state_arg = state.display().to_string();
    sg.extra_env.push((
        "SNAPGUARD_DAEMON_SOCKET".into(),
        ws.path("daemon.sock").into(),
    ));
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);

    // New interval jobs run at once, one after the other (both use the repository).
    let runs = wait_for_runs(&sg, &state, 2, &mut daemon);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let by_job = |j: &str| -> &Value {
        runs.iter()
            .find(|r| r["job"] == j)
            .unwrap_or_else(|| panic!("no run of {j}: {runs:#?}"))
    };
    let home = by_job("home");
    let missing = by_job("missing");
    assert_eq!(home["status"], "succeeded", "{home:#}");
    assert_eq!(home["trigger"], "schedule");
    assert_eq!(missing["status"], "failed", "{missing:#}");
    assert!(missing["error"]
        .as_str()
        .is_some_and(|e| e.contains("exit code")));
    let (a, b) = if home["id"].as_i64() < missing["id"].as_i64() {
        (home, missing)
    } else {
        (missing, home)
    };
    assert!(
        a["ended"].as_i64() <= b["started"].as_i64(),
        "two repository jobs ran at once: {runs:#?}"
    );

    // The summary is the backup's JSON result: the snapshot restores bit-exact.
    let id = home["summary"]["snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot id in the summary: {home:#}"));
    let target = ws.path("restore");
    sg.restore(id, &target, &[]).expect_code(0);
    let actual = Tree::scan(&restored_path(&target, &src));
    assert_same(&built.tree, &actual, &Opts::default(), "daemon backup");
    let snaps = sg.run(["--json", "snapshots"]).expect_code(0).json();
    assert!(snaps.to_string().contains("daemon"), "tag missing: {snaps}");

    // The failed run's log says why, naming the path.
    let log = sg.run([
        "jobs",
        "--state-dir",
        &state_arg,
        "log",
        &missing["id"].to_string(),
    ]);
    log.expect_code(0);
    let text = log.stdout_str();
    assert!(text.contains("started (schedule)"), "{text}");
    assert!(
        text.contains("no-such-dir"),
        "the log does not name the path:\n{text}"
    );
    assert!(text.contains("failed: exit code"), "{text}");
    sg.run(["jobs", "--state-dir", &state_arg, "log", "9999"])
        .expect_code(2);

    // A second daemon on the same state directory is refused.
    let second = sg.run(["daemon", "--state-dir", &state_arg]);
    second.expect_code(2);
    assert!(
        second.stderr_str().contains("another snapguard daemon"),
        "{second}"
    );

    // SIGTERM: a clean stop.
    daemon.signal(rustix::process::Signal::TERM);
    let out = daemon.finish();
    assert_eq!(out.code, Some(0), "{out}");

    // Restarted, it does not run the jobs again before their hour is up.
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(daemon.running(), "the restarted daemon exited");
    assert_eq!(jobs(&sg, &state).len(), 2, "jobs ran again after a restart");
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}

#[test]
fn a_daemon_stopped_while_a_job_runs_records_it_as_cancelled() {
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.random_file("big.bin", 8 << 20, 3);
    fx.finish();
    let config = ws.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "[limits]\nupload = 0.5\n\n[jobs.slow]\nkind = \"backup\"\npaths = [\"{}\"]\nschedule = \"every 1d\"\n",
            src.display()
        ),
    )
    .expect("config");
    sg.config = config;
    let state = ws.path("state");
    let state_arg = state.display().to_string();
    sg.extra_env.push((
        "SNAPGUARD_DAEMON_SOCKET".into(),
        ws.path("daemon.sock").into(),
    ));
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    let t0 = Instant::now();
    while !state.join("state.db").exists() || jobs(&sg, &state).is_empty() {
        assert!(daemon.running(), "the daemon exited");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    daemon.signal(rustix::process::Signal::TERM);
    let out = daemon.finish();
    assert_eq!(out.code, Some(0), "{out}");
    let runs = jobs(&sg, &state);
    assert_eq!(runs[0]["status"], "cancelled", "{runs:#?}");
    // The repository is consistent and unlocked: no snapshot, nothing to complain about.
    sg.run(["check"]).expect_code(0);
    let snaps = sg.run(["--json", "snapshots"]).expect_code(0).json();
    assert_eq!(snaps.as_array().map(Vec::len), Some(0));
}

/// The shipped systemd unit is valid (`systemd-analyze verify`, with ExecStart pointing at
/// the binary under test) and starts the daemon as the docs say.
#[test]
fn the_systemd_unit_verifies() {
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd/snapguard.service"),
    )
    .expect("unit file");
    assert!(unit.contains("ExecStart=/usr/local/bin/snapguard daemon"));
    let ws = Ws::new();
    let copy = ws.path("snapguard.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/snapguard",
            &crate::support::cmd::bin().display().to_string(),
        ),
    )
    .expect("write unit");
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("snapguard.service"),
        "systemd-analyze verify: {err}"
    );
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
        .ok_or(())
}

/// `[notify]`: a failed job and a job with `notify_success` each send one e-mail, received by a
/// real SMTP server; a quiet success sends none; the run logs say where the mail went.
#[test]
fn job_results_are_mailed_as_configured() {
    let ws = Ws::new();
    let Some(smtp) = crate::support::smtp::SmtpSink::start(&ws.root) else {
        return;
    };
    let mut sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("a.txt", b"hello\n");
    fx.finish();
    let config = ws.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\nemail_to = [\"ops@example.com\", \"backup@example.com\"]\n\
             email_from = \"snapguard@test.example\"\nsmtp_host = \"127.0.0.1\"\n\
             smtp_port = {port}\nsmtp_security = \"none\"\n\n\
             [jobs.loud]\nkind = \"backup\"\npaths = [\"{src}\"]\nschedule = \"every 1h\"\nnotify_success = true\n\n\
             [jobs.quiet]\nkind = \"backup\"\npaths = [\"{src}\"]\nschedule = \"every 1h\"\n\n\
             [jobs.broken]\nkind = \"backup\"\npaths = [\"{missing}\"]\nschedule = \"every 1h\"\n",
            port = smtp.port,
            src = src.display(),
            missing = ws.path("gone").display()
        ),
    )
    .expect("config");
    sg.config = config;
    let state = ws.path("state");
    let state_arg = state.display().to_string();
    sg.extra_env.push((
        "SNAPGUARD_DAEMON_SOCKET".into(),
        ws.path("daemon.sock").into(),
    ));
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    let runs = wait_for_runs(&sg, &state, 3, &mut daemon);
    let mails = smtp.wait_for(2);
    // Give a wrongly sent third mail the chance to arrive before counting.
    std::thread::sleep(Duration::from_secs(1));
    let mails = if smtp.messages().len() > mails.len() {
        smtp.messages()
    } else {
        mails
    };
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let broken = mails
        .iter()
        .find(|m| m.contains("Subject: [snapguard] broken failed on"))
        .unwrap_or_else(|| panic!("no failure mail: {mails:#?}"));
    assert!(broken.contains("ops@example.com") && broken.contains("backup@example.com"));
    assert!(broken.contains("From: snapguard@test.example"), "{broken}");
    assert!(broken.contains("Error:    exit code"), "{broken}");
    assert!(
        broken.contains("gone"),
        "the mail does not name the path:\n{broken}"
    );
    assert!(broken.contains("snapguard jobs log"), "{broken}");
    let loud = mails
        .iter()
        .find(|m| m.contains("Subject: [snapguard] loud succeeded on"))
        .unwrap_or_else(|| panic!("no success mail: {mails:#?}"));
    assert!(
        loud.contains("snapshot_id"),
        "the summary is missing:\n{loud}"
    );
    assert!(!mails.iter().any(|m| m.contains("quiet")));

    // The logs record the delivery (it may land just after the run ended).
    let broken_id = runs
        .iter()
        .find(|r| r["job"] == "broken")
        .and_then(|r| r["id"].as_i64())
        .expect("broken run");
    let t0 = Instant::now();
    loop {
        let log = sg
            .run([
                "jobs",
                "--state-dir",
                &state_arg,
                "log",
                &broken_id.to_string(),
            ])
            .expect_code(0)
            .stdout_str();
        if log.contains("notification sent to ops@example.com, backup@example.com") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}

/// STARTTLS (the default security): the mail goes out only when the server's certificate is
/// trusted (here through `smtp_ca_file`, a test CA); with an untrusted certificate nothing is
/// sent and the run's log says why.
#[test]
fn notifications_use_starttls_and_check_the_certificate() {
    let ws = Ws::new();
    let d = ws.path("pki");
    std::fs::create_dir_all(&d).expect("mkdir");
    let sh = |script: &str| {
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&d)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("sh");
        assert!(ok.success(), "{script}");
    };
    // A test CA and a certificate for 127.0.0.1 signed by it.
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca");
    sh("openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1");
    sh("printf 'subjectAltName=IP:127.0.0.1\\n' > ext && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext");
    let Some(smtp) = crate::support::smtp::SmtpSink::start_with(
        &ws.root,
        Some((&d.join("srv.pem"), &d.join("srv.key"))),
    ) else {
        return;
    };
    let mut sg = Sg::init(&ws, None);
    let config = |ca: Option<&Path>| {
        format!(
            "[notify]\nemail_to = [\"ops@example.com\"]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n{}\n\
             [jobs.broken]\nkind = \"backup\"\npaths = [\"{}\"]\nschedule = \"every 1h\"\n",
            smtp.port,
            ca.map(|c| format!("smtp_ca_file = \"{}\"\n", c.display()))
                .unwrap_or_default(),
            ws.path("gone").display()
        )
    };
    // Untrusted: refused, and the log says so.
    let path = ws.path("untrusted.toml");
    std::fs::write(&path, config(None)).expect("config");
    sg.config = path;
    let state = ws.path("state-1");
    let state_arg = state.display().to_string();
    sg.extra_env.push((
        "SNAPGUARD_DAEMON_SOCKET".into(),
        ws.path("daemon.sock").into(),
    ));
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    let runs = wait_for_runs(&sg, &state, 1, &mut daemon);
    let id = runs[0]["id"].to_string();
    let t0 = Instant::now();
    let log = loop {
        let log = sg
            .run(["jobs", "--state-dir", &state_arg, "log", &id])
            .expect_code(0)
            .stdout_str();
        if log.contains("notification") {
            break log;
        }
        assert!(t0.elapsed() < Duration::from_secs(40), "{log}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        log.contains("notification not sent") && log.contains("127.0.0.1"),
        "{log}"
    );
    assert!(
        smtp.messages().is_empty(),
        "mail sent over an untrusted TLS session"
    );
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));

    // Trusted through smtp_ca_file: delivered over STARTTLS.
    let path = ws.path("trusted.toml");
    std::fs::write(&path, config(Some(&d.join("ca.pem")))).expect("config");
    sg.config = path;
    let state = ws.path("state-2");
    let state_arg = state.display().to_string();
    sg.extra_env.push((
        "SNAPGUARD_DAEMON_SOCKET".into(),
        ws.path("daemon.sock").into(),
    ));
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    wait_for_runs(&sg, &state, 1, &mut daemon);
    let mails = smtp.wait_for(1);
    assert!(
        mails[0].contains("Subject: [snapguard] broken failed on"),
        "{mails:#?}"
    );
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}

/// A job that leaves a process behind holding its output (here a password command that starts
/// a helper in the background, as gpg-agent does) still ends when its own process ends: the
/// run is recorded, the helper is killed with the job's process group, and the next job runs.
#[test]
fn a_job_whose_helper_keeps_its_output_open_still_ends() {
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("a.txt", b"x\n");
    fx.finish();
    let marker = ws.path("helper-alive");
    let config = ws.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.a]\nkind = \"backup\"\npaths = [\"{src}\"]\nschedule = \"every 1h\"\n\n\
             [jobs.b]\nkind = \"backup\"\npaths = [\"{src}\"]\nschedule = \"every 1h\"\n",
            src = src.display()
        ),
    )
    .expect("config");
    sg.config = config;
    // The helper holds stderr (not stdout, which the password is read from) for an hour.
    sg.extra_env.push((
        "SNAPGUARD_PASSWORD_COMMAND".into(),
        format!(
            "(touch {m}; exec sleep 3171) >/dev/null & echo {pw}",
            m = marker.display(),
            pw = crate::support::cmd::PASSWORD
        )
        .into(),
    ));
    let state = ws.path("state");
    let state_arg = state.display().to_string();
    sg.extra_env.push((
        "SNAPGUARD_DAEMON_SOCKET".into(),
        ws.path("daemon.sock").into(),
    ));
    let t0 = Instant::now();
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    let runs = wait_for_runs(&sg, &state, 2, &mut daemon);
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "the runs waited for the helper"
    );
    assert!(
        marker.exists(),
        "the helper never started; the test proves nothing"
    );
    for r in &runs {
        assert_eq!(r["status"], "succeeded", "{runs:#?}");
    }
    // No helper survives its job.
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
    let mut leftover = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmdline == b"sleep\x003171\x00" {
            leftover.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    assert!(leftover.is_empty(), "helpers left running: {leftover:?}");
}

/// The control socket: the kernel's peer credentials decide. Root may run any job; a user in
/// `[daemon] allow_users` may ask for the status and run jobs that create snapshots, not a
/// prune; any other user is refused by name. Manual runs are recorded with who asked.
#[test]
fn the_control_socket_decides_by_peer_credentials() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root to ask as other users");
        return;
    }
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("a.txt", b"x\n");
    fx.finish();
    let config = ws.path("config.toml");
    // Yearly jobs: nothing runs unless asked.
    std::fs::write(
        &config,
        format!(
            "[daemon]\nallow_users = [\"nobody\"]\n\n\
             [jobs.home]\nkind = \"backup\"\npaths = [\"{}\"]\nschedule = \"@yearly\"\n\n\
             [jobs.prune]\nkind = \"prune\"\nschedule = \"@yearly\"\n",
            src.display()
        ),
    )
    .expect("config");
    sg.config = config;
    let state = ws.path("state");
    let state_arg = state.display().to_string();
    // Other users must reach the socket: its directory is made world-searchable.
    std::fs::set_permissions(
        &ws.root,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod ws");
    let socket = ws.path("run/daemon.sock");
    sg.extra_env
        .push(("SNAPGUARD_DAEMON_SOCKET".into(), socket.clone().into()));
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    let t0 = Instant::now();
    while !socket.exists() {
        assert!(daemon.running(), "the daemon exited");
        assert!(t0.elapsed() < Duration::from_secs(20), "no control socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ask = |uid: Option<&str>, args: &[&str]| -> Out {
        let mut cmd = crate::support::cmd::as_user(uid);
        cmd.env("SNAPGUARD_DAEMON_SOCKET", &socket);
        let mut all = vec!["jobs"];
        all.extend_from_slice(args);
        crate::support::cmd::run_cmd(&mut cmd, all)
    };

    let status = ask(None, &["--json", "status"]);
    status.expect_code(0);
    let names: Vec<String> = status.json()["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(names, ["home", "prune"]);

    // A listed user: status and a backup, but not a prune.
    ask(Some("65534"), &["status"]).expect_code(0);
    let out = ask(Some("65534"), &["run", "prune"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr_str()
            .contains("may run jobs that create snapshots"),
        "{out}"
    );
    ask(Some("65534"), &["run", "home"]).expect_code(0);
    // Anyone else: nothing.
    let out = ask(Some("12345"), &["status"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr_str().contains("may not control the daemon"),
        "{out}"
    );
    // Root: any job; unknown jobs and a job already running are refused.
    let out = ask(None, &["run", "nonexistent"]);
    assert!(out.stderr_str().contains("no job"), "{out}");
    let runs = wait_for_runs(&sg, &state, 1, &mut daemon);
    assert_eq!(runs[0]["job"], "home");
    assert_eq!(runs[0]["trigger"], "manual");
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    ask(None, &["run", "prune"]).expect_code(0);
    let runs = wait_for_runs(&sg, &state, 2, &mut daemon);
    assert!(
        runs.iter()
            .any(|r| r["job"] == "prune" && r["status"] == "succeeded"),
        "{runs:#?}"
    );
    let home_id = runs
        .iter()
        .find(|r| r["job"] == "home")
        .and_then(|r| r["id"].as_i64())
        .expect("home run");
    let log = sg
        .run([
            "jobs",
            "--state-dir",
            &state_arg,
            "log",
            &home_id.to_string(),
        ])
        .expect_code(0)
        .stdout_str();
    assert!(log.contains("run now, asked by nobody (uid 65534"), "{log}");

    // A second daemon on the same socket is refused; the socket goes when the daemon stops.
    let other = sg.run([
        "daemon",
        "--state-dir",
        &ws.path("state-2").display().to_string(),
    ]);
    assert_ne!(other.code, Some(0), "{other}");
    assert!(
        other
            .stderr_str()
            .contains("another snapguard daemon listens"),
        "{other}"
    );
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
    assert!(!socket.exists(), "the socket outlived the daemon");
    let out = ask(None, &["status"]);
    assert!(out.stderr_str().contains("no daemon answers"), "{out}");
}
