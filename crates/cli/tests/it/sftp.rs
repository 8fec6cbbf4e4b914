//! A repository on an SFTP server through the binary, against a real sshd on 127.0.0.1:
//! init, backup, snapshots, restore, check --read-data, forget --prune; and the same
//! repository opened as a local directory (the layouts are the same).

use crate::support::cmd::{Sg, Ws};
use crate::support::compare::{assert_same, Opts, Tree};
use crate::support::fixture::Fixture;
use crate::support::sshd::Sshd;
use crate::support::{restored_path, varied};
use std::path::PathBuf;

/// An `Sg` for the repository `dir` on the test server, logging in with the test key and
/// checking the host key strictly (the default) against the server's own key.
fn sftp_sg(ws: &Ws, sshd: &Sshd, dir: &std::path::Path) -> Sg {
    let cache = ws.path("cache");
    std::fs::create_dir_all(&cache).expect("mkdir cache");
    Sg {
        bin: crate::support::cmd::bin(),
        repo: PathBuf::from(format!(
            "sftp:root@127.0.0.1:{}{}",
            sshd.port,
            dir.display()
        )),
        cache,
        config: crate::support::cmd::empty_config(ws),
        wrapper: Vec::new(),
        extra_env: vec![
            (
                "SNAPGUARD_SFTP_KEY".into(),
                sshd.ssh_args()[2].clone().into(),
            ),
            ("PATH".into(), sshd.client_path()),
        ],
    }
}

#[test]
fn sftp_init_backup_restore_check_forget_prune() {
    let Some(sshd) = Sshd::start() else { return };
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    varied::build(&mut fx);
    fx.random_file("big/random.bin", 3 << 20, 11);
    let built = fx.finish();

    let dir = ws.path("server/repo");
    let sg = sftp_sg(&ws, &sshd, &dir);
    sg.run(["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"])
        .expect_code(0);
    assert!(dir.join("config").is_file());

    let first = sg.backup(&[&src], &[]);
    first.out.expect_code(0);
    let target = ws.path("restore");
    sg.restore(&first.id, &target, &[]).expect_code(0);
    let actual = Tree::scan(&restored_path(&target, &src));
    assert_same(&built.tree, &actual, &Opts::default(), "sftp restore");
    sg.run(["check", "--read-data"]).expect_code(0);

    let second = sg.backup(&[&src], &["--tag", "second"]);
    second.out.expect_code(0);
    sg.run(["forget", &first.id, "--prune"]).expect_code(0);
    let out = sg.run(["snapshots"]).expect_code(0).stdout_str();
    assert!(
        out.contains(&second.id[..8]) && !out.contains(&first.id[..8]),
        "{out}"
    );
    sg.run(["check", "--read-data"]).expect_code(0);

    // The directory on the server is an ordinary local repository.
    let local = Sg {
        repo: dir.clone(),
        extra_env: Vec::new(),
        ..sg
    };
    let target = ws.path("restore-local");
    local.restore(&second.id, &target, &[]).expect_code(0);
    let actual = Tree::scan(&restored_path(&target, &src));
    assert_same(
        &built.tree,
        &actual,
        &Opts::default(),
        "local open of the sftp repository",
    );
}

/// Host keys are checked strictly by default: a server whose key is not the one on record is
/// refused before anything is read or written, with a message that names the server.
#[test]
fn sftp_refuses_a_server_whose_host_key_is_not_the_known_one() {
    let Some(sshd) = Sshd::start() else { return };
    let ws = Ws::new();
    let dir = ws.path("server/repo");
    let sg = sftp_sg(&ws, &sshd, &dir);
    // Record another key for this server, as after a server was replaced (or impersonated).
    let other = ws.path("other");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("ssh-keygen");
    assert!(ok.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).expect("pub");
    std::fs::write(
        sshd.known_hosts(),
        format!("[127.0.0.1]:{} {other_pub}", sshd.port),
    )
    .expect("known_hosts");
    let out = sg.run(["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"]);
    assert_ne!(out.code, Some(0), "{out}");
    let err = out.stderr_str();
    assert!(
        err.contains("127.0.0.1"),
        "the error does not name the server\n{out}"
    );
    assert!(
        err.to_lowercase().contains("host key"),
        "the error does not say the host key is wrong\n{out}"
    );
    assert!(!dir.exists(), "something was written to the server");
}
