//! `snapguard --daemon restore` through the binary: a user in `[daemon] allow_users` restores
//! their own files through the daemon's control socket without the repository's password, the
//! files written by tar running as that user; a subtree with someone else's entry is refused
//! naming it; a target the user cannot write stays untouched (the kernel says no, not the
//! daemon); users not listed get nothing; root gets the in-process restore.

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
    let built = fx.finish();
    sg.backup(&[&src], &[]);

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
        let mut cmd = match uid {
            None => assert_cmd::Command::new(crate::support::cmd::bin()),
            Some(u) => {
                let mut c = assert_cmd::Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={u}"),
                    "--clear-groups",
                    "--",
                ])
                .arg(crate::support::cmd::bin());
                c
            }
        };
        cmd.env("SNAPGUARD_CONFIG", "/dev/null")
            .env("SNAPGUARD_DAEMON_SOCKET", &socket)
            .env_remove("SNAPGUARD_REPOSITORY")
            .env_remove("SNAPGUARD_PASSWORD")
            .env_remove("SNAPGUARD_PASSWORD_FILE")
            .current_dir("/")
            .timeout(Duration::from_secs(120));
        let mut all = vec!["--daemon"];
        all.extend_from_slice(args);
        crate::support::cmd::run_cmd(&mut cmd, all)
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
    assert_eq!(out.code, Some(1), "{out}");
    let err = out.stderr_str();
    assert!(
        err.contains("home/mixed/zz/root.txt") && err.contains("belongs to uid 0"),
        "{out}"
    );
    assert!(!refused.exists(), "a refused restore wrote {refused:?}");

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
