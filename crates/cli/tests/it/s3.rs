//! Repositories on S3 through the binary, against a real S3 server (`s3s-fs` on 127.0.0.1,
//! which checks signatures): the full flow, a repository copied file for file from a local
//! directory into the bucket, and the errors a user meets first.

#[path = "../../../backend/tests/support/s3_server.rs"]
mod s3_server;

use crate::support::cmd::{Sg, Ws, PASSWORD};
use crate::support::compare::{assert_same, Opts, Tree};
use crate::support::fixture::{Built, Fixture};
use crate::support::{restored_path, varied};
use s3_server::S3Server;
use serde_json::Value;
use snapguard_backend::{Backend, FileType, LocalBackend, OpendalBackend, RemoteOptions, S3Config};
use std::path::{Path, PathBuf};

/// An `Sg` for the repository at `prefix` in the server's bucket, with the test credentials in
/// the standard AWS variables (and no profile files that could interfere).
fn sg_at(ws: &Ws, server: &S3Server, prefix: &str, cache: &str) -> Sg {
    let cache = ws.path(cache);
    std::fs::create_dir_all(&cache).expect("mkdir cache");
    let none = ws.path("no-aws-files");
    Sg {
        bin: crate::support::cmd::bin(),
        repo: PathBuf::from(server.url(prefix)),
        cache,
        config: crate::support::cmd::empty_config(ws),
        wrapper: Vec::new(),
        extra_env: [
            ("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_CONFIG_FILE", none.display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", none.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect(),
    }
}

fn init(sg: &Sg) {
    sg.run(["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"])
        .expect_code(0);
}

fn varied_source(ws: &Ws) -> (PathBuf, Built) {
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    varied::build(&mut fx);
    fx.random_file("big/random.bin", 6 << 20, 7);
    (src, fx.finish())
}

fn restore_and_compare(sg: &Sg, ws: &Ws, id: &str, src: &Path, built: &Built, name: &str) {
    let target = ws.path(name);
    sg.restore(id, &target, &[]).expect_code(0);
    let actual = Tree::scan(&restored_path(&target, src));
    assert_same(&built.tree, &actual, &Opts::default(), name);
}

fn snapshot_ids(sg: &Sg) -> Vec<String> {
    let v = sg.run(["--json", "snapshots"]).expect_code(0).json();
    v.as_array()
        .unwrap_or_else(|| panic!("snapshots --json is not an array: {v}"))
        .iter()
        .map(|s| {
            s.get("id")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("snapshot without id: {s}"))
                .to_string()
        })
        .collect()
}

#[test]
fn s3_init_backup_restore_check_forget_prune() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let ws = Ws::new();
    let (src, built) = varied_source(&ws);
    let sg = sg_at(&ws, &server, "hosts/one", "cache");
    init(&sg);
    // The repository is in the bucket under the prefix, laid out like a local one.
    let root = server.bucket_dir().join("hosts/one");
    assert!(root.join("config").is_file(), "no config object");
    assert!(
        std::fs::read_dir(root.join("keys")).is_ok_and(|mut d| d.next().is_some()),
        "no key slot object"
    );

    let first = sg.backup(&[&src], &[]);
    first.out.expect_code(0);
    assert_eq!(snapshot_ids(&sg).len(), 1);
    restore_and_compare(&sg, &ws, &first.id, &src, &built, "restore-1");
    sg.run(["check", "--read-data"]).expect_code(0);

    // A second snapshot after a change, then keep only it and prune the first one's data.
    std::fs::remove_file(src.join("big/random.bin")).expect("rm");
    let mut fx = Fixture::new(&ws.path("src2"));
    fx.file("note.txt", b"second generation\n");
    let built2 = fx.finish();
    let second = sg.backup(&[&ws.path("src2")], &[]);
    second.out.expect_code(0);
    let packs_before = count_files(&root.join("data"));
    sg.run([
        "forget",
        "--keep-last",
        "1",
        "--group-by",
        "host",
        "--prune",
    ])
    .expect_code(0);
    assert_eq!(snapshot_ids(&sg), vec![second.id.clone()]);
    assert!(
        count_files(&root.join("data")) < packs_before,
        "prune removed no pack objects"
    );
    sg.run(["check", "--read-data"]).expect_code(0);
    restore_and_compare(&sg, &ws, &second.id, &ws.path("src2"), &built2, "restore-2");
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            n += count_files(&p);
        } else if !e.file_name().to_string_lossy().starts_with('.') {
            n += 1;
        }
    }
    n
}

#[test]
fn s3_repository_copied_file_for_file_from_a_local_directory_opens_and_restores() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let ws = Ws::new();
    let (src, built) = varied_source(&ws);
    let local = Sg::init(&ws, None);
    let backup = local.backup(&[&src], &[]);
    backup.out.expect_code(0);

    // Copy every file through the backends, as a sync tool would.
    let from = LocalBackend::new(&local.repo);
    let mut cfg = S3Config::parse(&server.url("copied")["s3:".len()..]).expect("URL");
    cfg.access_key_id = Some(s3_server::ACCESS_KEY.into());
    cfg.secret_access_key = Some(s3_server::SECRET_KEY.into());
    let to = OpendalBackend::s3(&cfg, &RemoteOptions::default()).expect("backend");
    to.create().expect("create");
    let mut copied = 0;
    for t in FileType::ALL {
        for (name, _) in from.list(t).expect("list") {
            to.write(t, &name, &from.read(t, &name).expect("read"))
                .expect("write");
            copied += 1;
        }
    }
    assert!(copied >= 5, "only {copied} files copied");

    let remote = sg_at(&ws, &server, "copied", "cache-remote");
    assert_eq!(snapshot_ids(&remote), vec![backup.id.clone()]);
    restore_and_compare(&remote, &ws, &backup.id, &src, &built, "restore-remote");
    remote.run(["check", "--read-data"]).expect_code(0);
    // The same password opens it: the key slots came along.
    assert!(!PASSWORD.is_empty());
}

#[test]
fn s3_errors_name_the_bucket_and_say_what_to_do() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let ws = Ws::new();

    let missing = sg_at(&ws, &server, "x", "cache");
    let missing = Sg {
        repo: PathBuf::from(format!("s3:{}/no-such-bucket/x", server.endpoint())),
        ..missing
    };
    let out = missing.run(["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"]);
    out.expect_code(1);
    let err = out.stderr_str();
    assert!(
        err.contains("no-such-bucket") && err.contains("create it first"),
        "{out}"
    );

    // Nothing at the prefix yet: "no repository", before any password is asked.
    let empty = sg_at(&ws, &server, "nothing-here", "cache");
    let out = empty.run(["snapshots"]);
    out.expect_code(10);
    assert!(out.stderr_str().contains("nothing-here"), "{out}");

    // A wrong secret is not "no repository": the server refuses the signature.
    let mut wrong = sg_at(&ws, &server, "nothing-here", "cache");
    wrong.extra_env[1].1 = "wrong-secret".into();
    let out = wrong.run(["snapshots"]);
    assert_ne!(out.code, Some(0), "{out}");
    assert_ne!(out.code, Some(10), "{out}");
    let err = out.stderr_str();
    assert!(err.contains("nothing-here/config"), "{out}");
    assert!(
        err.contains("SignatureDoesNotMatch") && err.contains("credentials"),
        "{out}"
    );

    // Malformed URLs are usage errors; rest: stays unavailable.
    for (url, code, says) in [
        ("s3:https://host", 2, "no bucket"),
        ("s3:ftp://host/b", 2, "http:// or https://"),
        ("sftp:host", 2, "no path"),
        ("rest:http://host/", 1, "not available"),
    ] {
        let sg = Sg {
            repo: PathBuf::from(url),
            ..sg_at(&ws, &server, "x", "cache")
        };
        let out = sg.run(["snapshots"]);
        out.expect_code(code);
        assert!(out.stderr_str().contains(says), "{url}: {out}");
    }
    let out = sg_at(&ws, &server, "x", "cache").run(["--connections", "0", "snapshots"]);
    out.expect_code(2);
    assert!(out.stderr_str().contains("--connections"), "{out}");
}
