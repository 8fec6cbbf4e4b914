//! `snapguard --daemon restore` through the binary: a user in `[daemon] allow_users` restores
//! their own files through the daemon's control socket without the repository's password, the
//! files written by tar running as that user (with the groups of the asking process, in a
//! session of its own); a subtree with someone else's entry, or below a directory the user
//! cannot enter, is refused like a missing path; other hosts' snapshots do not count; a
//! target the user cannot write stays untouched (the kernel says no, not the daemon); users
//! not listed get nothing; root gets the in-process restore. A stopped tar loses its slot
//! after the stall limit, and a stopping daemon answers its restores' clients.

use crate::maintenance::{os, Bg};
use crate::support::cmd::{Out, Sg, Ws};
use crate::support::compare::{assert_same, Opts, Tree};
use crate::support::fixture::Fixture;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {p:?}: {e}"));
}

/// `snapguard --daemon ARGS` as `uid` (None: root) with the supplementary `groups` (None:
/// none), the config file `config`, talking to the daemon at `socket`; not yet started.
fn client(
    socket: &Path,
    uid: Option<u32>,
    groups: Option<&str>,
    config: &Path,
    args: &[&str],
) -> std::process::Command {
    let mut cmd = match uid {
        None => std::process::Command::new(crate::support::cmd::bin()),
        Some(u) => {
            let mut c = std::process::Command::new("setpriv");
            c.args([&format!("--reuid={u}"), &format!("--regid={u}")]);
            match groups {
                Some(g) => c.arg(format!("--groups={g}")),
                None => c.arg("--clear-groups"),
            };
            c.arg("--").arg(crate::support::cmd::bin());
            c
        }
    };
    cmd.env("SNAPGUARD_CONFIG", config)
        .env("SNAPGUARD_DAEMON_SOCKET", socket)
        .env_remove("SNAPGUARD_REPOSITORY")
        .env_remove("SNAPGUARD_PASSWORD")
        .env_remove("SNAPGUARD_PASSWORD_FILE")
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .arg("--daemon")
        .args(args);
    cmd
}

/// Run a client to its end.
fn finish(mut cmd: std::process::Command) -> Out {
    let cmdline = format!("{cmd:?}");
    let out = cmd.output().expect("run the client");
    Out {
        cmdline,
        code: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// Fields of /proc/PID/stat after the command name: index 0 is field 3 (state).
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    rest.split_whitespace().map(str::to_string).collect()
}

/// The pid of the daemon's child once it runs `tar` (as `uid`), watched closely from its
/// start, so that it can be stopped before it has read much of its archive.
fn find_tar(daemon: u32, uid: u32) -> u32 {
    let t0 = Instant::now();
    loop {
        for task in std::fs::read_dir(format!("/proc/{daemon}/task"))
            .expect("tasks")
            .flatten()
        {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for pid in children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
            {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "tar"
                    && std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid)
                {
                    return pid;
                }
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no tar as uid {uid}"
        );
    }
}

#[test]
fn users_restore_their_own_files_through_the_daemon() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root to ask as other users");
        return;
    }
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("setpriv (util-linux) is not installed; cannot ask as another user");
    }
    let ws = Ws::new();
    // Other users must reach the socket and the targets.
    chmod(&ws.root, 0o755);
    let mut sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    // nobody's tree: files, a big file (more than a socket buffer), a symlink, modes, an xattr.
    fx.file("home/nobody-dir/a.txt", b"nobody's notes\n");
    fx.random_file("home/nobody-dir/sub/big.bin", 3_000_000, 7);
    fx.file("home/nobody-dir/sub/run.sh", b"#!/bin/sh\necho hi\n");
    fx.symlink("home/nobody-dir/link", "a.txt");
    fx.mode("home/nobody-dir/a.txt", 0o640);
    fx.mode("home/nobody-dir/sub/run.sh", 0o755);
    fx.mode("home/nobody-dir/sub", 0o750);
    fx.mode("home/nobody-dir", 0o711);
    fx.xattr_optional("home/nobody-dir/a.txt", "user.note", b"mine");
    for p in [
        "home/nobody-dir",
        "home/nobody-dir/a.txt",
        "home/nobody-dir/sub",
        "home/nobody-dir/sub/big.bin",
        "home/nobody-dir/sub/run.sh",
        "home/nobody-dir/link",
    ] {
        assert!(fx.chown(p, NOBODY, NOBODY), "chown {p}");
    }
    // A POSIX ACL (tar --acls sets it as nobody, who owns the file).
    let acl = std::process::Command::new("setfacl")
        .args(["-m", "u:12345:r"])
        .arg(fx.path("home/nobody-dir/a.txt"))
        .status()
        .is_ok_and(|s| s.success());
    if !acl {
        eprintln!("note: no ACL in the fixture (setfacl missing or refused)");
    }
    // A tree of nobody's with one file of root's in it.
    fx.file("home/mixed/own.txt", b"mine\n");
    fx.file("home/mixed/zz/root.txt", b"root's\n");
    for p in ["home/mixed", "home/mixed/own.txt", "home/mixed/zz"] {
        assert!(fx.chown(p, NOBODY, NOBODY), "chown {p}");
    }
    // A file of nobody's in a directory only root may enter.
    fx.file("home/locked/nobody.txt", b"in a locked room\n");
    assert!(fx.chown("home/locked/nobody.txt", NOBODY, NOBODY));
    fx.mode("home/locked", 0o700);
    let built = fx.finish();
    sg.backup(&[&src], &[]);
    // A newer snapshot of another host, where uid 65534 may be someone else: not nobody's.
    let elsewhere = ws.path("elsewhere");
    let mut fx2 = Fixture::new(&elsewhere);
    fx2.file("theirs.txt", b"another host's\n");
    assert!(fx2.chown("theirs.txt", NOBODY, NOBODY));
    fx2.finish();
    std::os::unix::fs::chown(&elsewhere, Some(NOBODY), Some(NOBODY)).expect("chown elsewhere");
    // (It is the newest snapshot: every `latest:` below must still mean this host's newest.)
    let other_host = sg.backup(&[&elsewhere], &["--host", "some-other-host"]);

    let config = ws.path("config.toml");
    std::fs::write(&config, "[daemon]\nallow_users = [\"nobody\"]\n").expect("config");
    sg.config = config;
    let socket = ws.path("run/daemon.sock");
    sg.extra_env
        .push(("SNAPGUARD_DAEMON_SOCKET".into(), socket.clone().into()));
    let state = ws.path("state");
    let state_arg = state.display().to_string();
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    let t0 = Instant::now();
    while !socket.exists() {
        assert!(daemon.running(), "the daemon exited");
        assert!(t0.elapsed() < Duration::from_secs(20), "no control socket");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The client gets neither the repository's location nor its password.
    let ask = |uid: Option<u32>, args: &[&str]| -> Out {
        finish(client(&socket, uid, None, Path::new("/dev/null"), args))
    };
    let spec = |rel: &str| format!("latest:{}", src.join(rel).display());

    let targets = ws.path("targets");
    std::fs::create_dir(&targets).expect("mkdir targets");
    chmod(&targets, 0o755);
    let mine = targets.join("mine");
    std::fs::create_dir(&mine).expect("mkdir mine");
    std::os::unix::fs::chown(&mine, Some(NOBODY), Some(NOBODY)).expect("chown mine");
    let root_only = targets.join("root-only");
    std::fs::create_dir(&root_only).expect("mkdir root-only");
    chmod(&root_only, 0o755);

    // nobody restores their tree into a directory they own (created by them): bit-exact.
    let out_dir = mine.join("out");
    let out = ask(
        Some(NOBODY),
        &[
            "--json",
            "restore",
            &spec("home/nobody-dir"),
            "--target",
            out_dir.to_str().expect("utf-8"),
        ],
    );
    out.expect_code(0);
    let answer = out.json();
    assert_eq!(answer["as_user"], "nobody", "{answer}");
    assert_eq!(answer["files"], 3, "{answer}");
    assert_eq!(answer["bytes"], 3_000_000 + 15 + 18, "{answer}");
    let expected = built.tree.subtree("home/nobody-dir");
    let opts = Opts {
        // tar sets access times only where the archive has them; the content and every other
        // piece of metadata must be the snapshot's.
        atime: false,
        ..Opts::default()
    };
    assert_same(
        &expected,
        &Tree::scan(&out_dir),
        &opts,
        "restored by nobody through the daemon",
    );
    assert_eq!(
        std::fs::metadata(&out_dir).expect("out").uid(),
        NOBODY,
        "the target was not created as nobody"
    );

    // A subtree with an entry of root's: refused, naming it; nothing written.
    let refused = mine.join("mixed");
    let out = ask(
        Some(NOBODY),
        &[
            "restore",
            &spec("home/mixed"),
            "--target",
            refused.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(15), "{out}");
    let mixed_err = out.stderr_str();
    assert!(mixed_err.contains("not all of it is yours"), "{out}");
    assert!(!refused.exists(), "a refused restore wrote {refused:?}");
    // A file of nobody's in a directory nobody cannot enter: refused with the message a
    // missing path gets (nobody learns nothing about what is in there).
    let locked = src.join("home/locked/nobody.txt");
    let missing = src.join("home/locked/nothing.txt");
    let mut errs = Vec::new();
    for p in [&locked, &missing] {
        let out = ask(
            Some(NOBODY),
            &[
                "restore",
                &format!("latest:{}", p.display()),
                "--target",
                refused.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(out.code, Some(15), "{out}");
        errs.push(out.stderr_str().replace(p.to_str().expect("utf-8"), "PATH"));
    }
    assert_eq!(errs[0], errs[1], "the locked file and a missing one differ");
    assert!(!refused.exists(), "a refused restore wrote {refused:?}");
    // Another host's snapshot is not found for nobody, although it is newer and nobody owns it.
    let out = ask(
        Some(NOBODY),
        &[
            "restore",
            &format!("{}:{}", other_host.id, elsewhere.display()),
            "--target",
            refused.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(15), "{out}");
    assert!(out.stderr_str().contains("no snapshot matches"), "{out}");
    let out = ask(
        Some(NOBODY),
        &[
            "restore",
            &format!("latest:{}", elsewhere.display()),
            "--target",
            refused.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(15), "{out}");
    assert!(!refused.exists(), "a refused restore wrote {refused:?}");
    // A target with a newline (it would forge a line of the daemon's log): refused.
    let out = ask(
        Some(NOBODY),
        &[
            "restore",
            &spec("home/nobody-dir"),
            "--target",
            &format!(
                "{}\nFAKE control: root restored everything",
                mine.join("nl").display()
            ),
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr_str().contains("control characters"), "{out}");
    // tar gets the groups of the asking process, not those the user database lists: nobody
    // with group 4242 may write into a directory of that group.
    let group_dir = targets.join("group-4242");
    std::fs::create_dir(&group_dir).expect("mkdir group dir");
    std::os::unix::fs::chown(&group_dir, Some(0), Some(4242)).expect("chown group dir");
    chmod(&group_dir, 0o770);
    let group_out = group_dir.join("out");
    let out = finish(client(
        &socket,
        Some(NOBODY),
        Some("4242"),
        Path::new("/dev/null"),
        &[
            "restore",
            &spec("home/nobody-dir/a.txt"),
            "--target",
            group_out.to_str().expect("utf-8"),
        ],
    ));
    out.expect_code(0);
    assert!(group_out.join("a.txt").exists(), "{out}");
    // ... and not one more: without it, the same process is told no.
    let out = ask(
        Some(NOBODY),
        &[
            "restore",
            &spec("home/nobody-dir/a.txt"),
            "--target",
            group_dir.join("out2").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(18), "{out}");
    // A config file only root may read (like /etc/snapguard/config.toml) does not stop a user's
    // --daemon restore.
    let secret_config = ws.path("root-only.toml");
    std::fs::write(&secret_config, "[daemon]\nallow_users = [\"nobody\"]\n").expect("config");
    chmod(&secret_config, 0o600);
    let out = finish(client(
        &socket,
        Some(NOBODY),
        None,
        &secret_config,
        &[
            "restore",
            &spec("home/nobody-dir/a.txt"),
            "--target",
            mine.join("cfg").to_str().expect("utf-8"),
        ],
    ));
    out.expect_code(0);

    // A target nobody cannot write: tar, running as nobody, is told no by the kernel.
    let out = ask(
        Some(NOBODY),
        &[
            "restore",
            &spec("home/nobody-dir"),
            "--target",
            root_only.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(18), "{out}");
    assert!(out.stderr_str().contains("Permission denied"), "{out}");
    assert_eq!(
        std::fs::read_dir(&root_only)
            .expect("read root-only")
            .count(),
        0,
        "something was written into the root-owned directory"
    );
    let meta = std::fs::metadata(&root_only).expect("root-only");
    assert_eq!(
        (meta.uid(), meta.mode() & 0o7777),
        (0, 0o755),
        "the root-owned target's metadata changed"
    );
    // Nor below it.
    let out = ask(
        Some(NOBODY),
        &[
            "restore",
            &spec("home/nobody-dir"),
            "--target",
            root_only.join("new").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(18), "{out}");
    assert!(!root_only.join("new").exists());
    // tar ending early did not end the daemon.
    assert!(daemon.running(), "the daemon died with the failed restore");

    // A user not listed: nothing.
    let out = ask(
        Some(12345),
        &[
            "restore",
            &spec("home/nobody-dir"),
            "--target",
            "/tmp/never",
        ],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr_str().contains("may not control the daemon"),
        "{out}"
    );

    // Root: the in-process restore, owners included, also of the mixed tree.
    let root_out = targets.join("root-out");
    let out = ask(
        None,
        &[
            "restore",
            &spec("home/mixed"),
            "--target",
            root_out.to_str().expect("utf-8"),
        ],
    );
    out.expect_code(0);
    assert!(out.stdout_str().contains("restored 2 file(s)"), "{out}");
    assert_same(
        &built.tree.subtree("home/mixed"),
        &Tree::scan(&root_out),
        &Opts {
            root_meta: false,
            ..Opts::default()
        },
        "restored by root through the daemon",
    );
    // A missing snapshot: exit code 15 as without --daemon.
    let out = ask(None, &["restore", "ffffffff:/x", "--target", "/tmp/never"]);
    assert_eq!(out.code, Some(15), "{out}");

    // Other commands do not go through the daemon.
    let out = ask(None, &["snapshots"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr_str().contains("'restore' and 'jobs'"), "{out}");
    // jobs status does.
    ask(Some(NOBODY), &["jobs", "status"]).expect_code(0);

    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}

/// tar runs in a session of its own with no controlling terminal; a tar its user stopped holds
/// the user's one restore slot only until the daemon's stall limit (60 s) and is then killed;
/// a stopping daemon answers the client of a running restore naming the stop.
#[test]
fn a_stopped_tar_loses_its_slot_and_a_stopping_daemon_answers() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root to ask as other users");
        return;
    }
    let ws = Ws::new();
    chmod(&ws.root, 0o755);
    let mut sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    // Far more than the socket buffers hold, so that a stopped tar blocks the daemon.
    fx.random_file("big/big.bin", 64_000_000, 3);
    assert!(fx.chown("big/big.bin", NOBODY, NOBODY));
    assert!(fx.chown("big", NOBODY, NOBODY));
    fx.finish();
    sg.backup(&[&src], &[]);
    let (daemon, socket) = start_daemon(&ws, &mut sg);
    let targets = ws.path("targets");
    std::fs::create_dir(&targets).expect("mkdir targets");
    std::os::unix::fs::chown(&targets, Some(NOBODY), Some(NOBODY)).expect("chown targets");
    let spec = format!("latest:{}", src.join("big").display());
    let restore = |name: &str| {
        client(
            &socket,
            Some(NOBODY),
            None,
            Path::new("/dev/null"),
            &[
                "restore",
                &spec,
                "--target",
                targets.join(name).to_str().expect("utf-8"),
            ],
        )
    };

    let mut first = restore("first").spawn().expect("start a restore");
    let tar = find_tar(daemon.pid(), NOBODY);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(tar as i32).expect("pid"),
        rustix::process::Signal::STOP,
    )
    .expect("SIGSTOP tar");
    // A session of its own (not the daemon's), and no controlling terminal.
    let tar_stat = stat_fields(tar);
    let daemon_stat = stat_fields(daemon.pid());
    assert_eq!(
        tar_stat[3],
        tar.to_string(),
        "tar does not lead its own session"
    );
    assert_ne!(
        tar_stat[3], daemon_stat[3],
        "tar is in the daemon's session"
    );
    assert_eq!(tar_stat[4], "0", "tar has a controlling terminal");
    // No descriptors beyond stdin, stdout and stderr but the files tar extracts.
    let foreign: Vec<String> = std::fs::read_dir(format!("/proc/{tar}/fd"))
        .expect("tar's fds")
        .flatten()
        .filter(|e| e.file_name().to_str().and_then(|f| f.parse::<u32>().ok()) > Some(2))
        .map(|e| std::fs::read_link(e.path()).unwrap_or_default())
        .filter(|l| !l.starts_with(&targets))
        .map(|l| l.display().to_string())
        .collect();
    assert!(foreign.is_empty(), "tar has descriptors of {foreign:?}");
    assert!(
        first.try_wait().expect("try_wait").is_none(),
        "the restore ended before its tar could be stopped"
    );
    // One restore per user: a second one is refused while the first is stuck.
    let out = finish(restore("second"));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr_str().contains("running already"), "{out}");
    // The stuck one ends by the stall limit, tar killed.
    let t0 = Instant::now();
    let out = first
        .wait_with_output()
        .expect("wait for the first restore");
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("read nothing for 60 s"), "{err}");
    // The stall limit is 60 s; a loaded machine (the whole suite in parallel) adds to it.
    assert!(took < Duration::from_secs(180), "took {took:?}");
    assert!(
        !Path::new(&format!("/proc/{tar}")).exists() || stat_fields(tar)[0] == "Z",
        "the stopped tar was not killed"
    );
    // The slot is back: the next restore of this user runs (and is complete).
    finish(restore("third")).expect_code(0);
    assert_eq!(
        std::fs::metadata(targets.join("third/big.bin"))
            .expect("restored")
            .len(),
        64_000_000
    );

    // A stopping daemon answers the client of a restore it cuts off.
    let last = restore("last").spawn().expect("start a restore");
    let tar = find_tar(daemon.pid(), NOBODY);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(tar as i32).expect("pid"),
        rustix::process::Signal::STOP,
    )
    .expect("SIGSTOP tar");
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal(rustix::process::Signal::TERM);
    let out = last.wait_with_output().expect("wait for the last restore");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the daemon is stopping (SIGTERM)"), "{err}");
    assert_eq!(daemon.finish().code, Some(0));
}

/// Start a daemon that lets nobody restore, on the repository of `sg`; its socket.
fn start_daemon(ws: &Ws, sg: &mut Sg) -> (Bg, std::path::PathBuf) {
    let config = ws.path("config.toml");
    std::fs::write(&config, "[daemon]\nallow_users = [\"nobody\"]\n").expect("config");
    sg.config = config;
    let socket = ws.path("run/daemon.sock");
    sg.extra_env
        .push(("SNAPGUARD_DAEMON_SOCKET".into(), socket.clone().into()));
    let state = ws.path("state").display().to_string();
    let mut daemon = Bg::spawn(sg, &[os("daemon"), os("--state-dir"), os(&state)]);
    let t0 = Instant::now();
    while !socket.exists() {
        assert!(daemon.running(), "the daemon exited");
        assert!(t0.elapsed() < Duration::from_secs(20), "no control socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    (daemon, socket)
}

/// The largest file below `dir`.
fn largest_file(dir: &Path) -> std::path::PathBuf {
    let mut best = (0, dir.to_path_buf());
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).expect("stat");
        let candidate = if m.is_dir() {
            largest_file(&p)
        } else {
            p.clone()
        };
        let len = std::fs::metadata(&candidate).map_or(0, |m| m.len());
        if candidate != *dir && len > best.0 {
            best = (len, candidate);
        }
    }
    best.1
}

/// When the export fails partway (a damaged pack), the client is told that, with its exit code
/// (14), not tar's complaint about the archive ending early.
#[test]
fn a_failing_export_is_reported_instead_of_tars_eof() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root to ask as other users");
        return;
    }
    let ws = Ws::new();
    chmod(&ws.root, 0o755);
    let mut sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.random_file("d/big.bin", 8_000_000, 5);
    assert!(fx.chown("d/big.bin", NOBODY, NOBODY));
    assert!(fx.chown("d", NOBODY, NOBODY));
    fx.finish();
    sg.backup(&[&src], &[]);
    // Damage the middle of the largest pack: the export reads good blobs, then a bad one.
    let pack = largest_file(&sg.repo);
    let mut bytes = std::fs::read(&pack).expect("read pack");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&pack, bytes).expect("write pack");
    let (daemon, socket) = start_daemon(&ws, &mut sg);
    let targets = ws.path("targets");
    std::fs::create_dir(&targets).expect("mkdir targets");
    std::os::unix::fs::chown(&targets, Some(NOBODY), Some(NOBODY)).expect("chown targets");
    let out = finish(client(
        &socket,
        Some(NOBODY),
        None,
        Path::new("/dev/null"),
        &[
            "restore",
            &format!("latest:{}", src.join("d").display()),
            "--target",
            targets.join("out").to_str().expect("utf-8"),
        ],
    ));
    assert_eq!(out.code, Some(14), "{out}");
    assert!(!out.stderr_str().contains("Unexpected EOF"), "{out}");
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
}
