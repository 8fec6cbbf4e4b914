//! Repositories on S3 through the binary, against a real S3 server (`s3s-fs` on 127.0.0.1,
//! which checks signatures): the full flow, a repository copied file for file from a local
//! directory into the bucket, and the errors a user meets first.

#[path = "../../../backend/tests/support/s3_server.rs"]
pub(crate) mod s3_server;

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
    crate::support::cmd::s3_sg(
        ws,
        server.url(prefix),
        cache,
        s3_server::ACCESS_KEY,
        s3_server::SECRET_KEY,
    )
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

/// Two hosts back up into one bucket at the same time, each with its own cache (as two
/// machines would have), while a third host tries to prune: both backups succeed and restore
/// bit-exact; the prune is refused with exit code 11 naming a holder (shared locks of the
/// backups block its exclusive one, docs/design/locking.md), and once the backups are done a
/// prune from the third host runs and leaves every snapshot whole.
#[test]
fn s3_two_hosts_back_up_concurrently_while_a_third_prunes() {
    use crate::maintenance::{os, Bg};
    let Some(server) = S3Server::start() else {
        return;
    };
    let ws = Ws::new();
    let host_a = sg_at(&ws, &server, "shared", "cache-a");
    let host_b = sg_at(&ws, &server, "shared", "cache-b");
    let host_c = sg_at(&ws, &server, "shared", "cache-c");
    init(&host_a);
    let repo_dir = server.bucket_dir().join("shared");

    // Something for prune to do: an old snapshot, forgotten.
    let old = ws.path("old");
    let mut fx = Fixture::new(&old);
    fx.random_file("old.bin", 3 << 20, 99);
    fx.finish();
    let gone = host_c.backup(&[&old], &["--host", "c"]);
    gone.out.expect_code(0);
    host_c.run(["forget", &gone.id]).expect_code(0);

    let mut sources = Vec::new();
    for (k, name) in ["a", "b"].into_iter().enumerate() {
        let src = ws.path(format!("src-{name}"));
        let mut fx = Fixture::new(&src);
        varied::build(&mut fx);
        fx.random_file("payload.bin", 6 << 20, 40 + k as u64);
        sources.push((src, fx.finish()));
    }
    // Throttled to about 1.5 MiB/s each, so the backups overlap for seconds.
    let spawn = |sg: &Sg, host: &str, src: &Path| {
        Bg::spawn(
            sg,
            &[
                os("--json"),
                os("--limit-upload"),
                os("1.5"),
                os("backup"),
                os("--host"),
                os(host),
                src.as_os_str(),
            ],
        )
    };
    let mut a = spawn(&host_a, "a", &sources[0].0);
    let mut b = spawn(&host_b, "b", &sources[1].0);
    // Wait until both hold their shared locks in the bucket, then prune from the third host.
    let t0 = std::time::Instant::now();
    while lock_objects(&repo_dir).len() < 2 {
        assert!(
            a.running() && b.running(),
            "a backup ended before both held locks"
        );
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "the backups never held two locks"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let prune = host_c.run(["prune", "--max-unused", "0"]);
    prune.expect_code(11);
    let err = prune.stderr_str();
    assert!(
        err.contains("locked") && err.contains("backup") && err.contains("snapguard unlock"),
        "the refused prune does not name the holder and the way out\n{prune}"
    );
    assert!(
        a.running() || b.running(),
        "the prune did not overlap the backups; the test proves nothing"
    );

    let mut ids = Vec::new();
    for (what, bg) in [("a", a), ("b", b)] {
        let out = bg.finish();
        crate::errors::no_panic(&out);
        out.expect_code(0);
        let id = out.json()["snapshot_id"]
            .as_str()
            .unwrap_or_else(|| panic!("backup {what}: no snapshot id\n{out}"))
            .to_string();
        ids.push(id);
    }
    assert!(lock_objects(&repo_dir).is_empty(), "locks left behind");

    // Now the third host's prune runs, and removes the forgotten snapshot's data only.
    let packs_before = count_files(&repo_dir.join("data"));
    host_c.run(["prune", "--max-unused", "0"]).expect_code(0);
    assert!(
        count_files(&repo_dir.join("data")) < packs_before,
        "prune removed nothing"
    );
    let mut listed = snapshot_ids(&host_c);
    listed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(listed, want);
    host_c.run(["check", "--read-data"]).expect_code(0);
    // Each snapshot restores bit-exact, also from the other host.
    for (k, (id, reader)) in ids.iter().zip([&host_b, &host_a]).enumerate() {
        let (src, built) = &sources[k];
        restore_and_compare(reader, &ws, id, src, built, &format!("restore-{k}"));
    }
}

/// The lock objects of the repository at `root` in the server's bucket directory (none while
/// the server has no `locks/` directory yet).
fn lock_objects(root: &Path) -> Vec<String> {
    match std::fs::read_dir(root.join("locks")) {
        Ok(d) => d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read_dir {root:?}/locks: {e}"),
    }
}

/// Virtual-hosted-style addressing (`--s3-virtual-host`): requests go to
/// `BUCKET.s3.snapguard.test`, which resolves to 127.0.0.1 only inside a private mount
/// namespace whose /etc/hosts says so. A full backup and restore work, and without the flag
/// the same endpoint is reached path style.
#[test]
fn s3_virtual_host_style_requests_reach_the_bucket_by_name() {
    let Some(server) = S3Server::start() else {
        return;
    };
    if !crate::support::is_root() {
        eprintln!("skipped: needs root for a private mount namespace with its own /etc/hosts");
        return;
    }
    let ws = Ws::new();
    let hosts = ws.path("hosts");
    std::fs::write(
        &hosts,
        format!(
            "127.0.0.1 localhost {d} {b}.{d}\n",
            d = s3_server::DOMAIN,
            b = s3_server::BUCKET
        ),
    )
    .expect("hosts");
    let endpoint = format!("http://{}:{}", s3_server::DOMAIN, server.port);
    let with_hosts = |sg: Sg| Sg {
        repo: PathBuf::from(format!("s3:{endpoint}/{}/vhost", s3_server::BUCKET)),
        wrapper: [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
        ]
        .into_iter()
        .map(Into::into)
        .chain([hosts.clone().into_os_string()])
        .collect(),
        ..sg
    };
    let mut vhost = with_hosts(sg_at(&ws, &server, "unused", "cache-v"));
    vhost
        .extra_env
        .push(("SNAPGUARD_S3_VIRTUAL_HOST".into(), "1".into()));
    let (src, built) = varied_source(&ws);
    init(&vhost);
    let b = vhost.backup(&[&src], &[]);
    b.out.expect_code(0);
    restore_and_compare(&vhost, &ws, &b.id, &src, &built, "restore-vhost");
    assert!(server.bucket_dir().join("vhost/config").is_file());
    // The same repository, path style through the same host name.
    let path_style = with_hosts(sg_at(&ws, &server, "unused", "cache-p"));
    assert_eq!(snapshot_ids(&path_style), vec![b.id.clone()]);
}

/// Credentials from an AWS profile file (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_PROFILE`) when the
/// environment has no keys: a repository is made, backed up into and listed; a profile with
/// the wrong secret is refused by the server.
#[test]
fn s3_credentials_come_from_a_profile_file() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let ws = Ws::new();
    let creds = ws.path("aws-credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {k}\naws_secret_access_key = wrong\n\n\
             [backup]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n",
            k = s3_server::ACCESS_KEY,
            s = s3_server::SECRET_KEY
        ),
    )
    .expect("credentials file");
    let with_profile = |profile: &str| {
        let mut sg = sg_at(&ws, &server, "profiled", "cache");
        sg.extra_env.retain(|(k, _)| {
            k != "AWS_ACCESS_KEY_ID"
                && k != "AWS_SECRET_ACCESS_KEY"
                && k != "AWS_SHARED_CREDENTIALS_FILE"
        });
        sg.extra_env
            .push(("AWS_SHARED_CREDENTIALS_FILE".into(), creds.clone().into()));
        sg.extra_env.push(("AWS_PROFILE".into(), profile.into()));
        sg
    };
    let sg = with_profile("backup");
    init(&sg);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("a.txt", b"from a profile\n");
    fx.finish();
    let b = sg.backup(&[&src], &[]);
    b.out.expect_code(0);
    assert_eq!(snapshot_ids(&sg), vec![b.id.clone()]);
    let out = with_profile("default").run(["snapshots"]);
    assert_ne!(out.code, Some(0), "{out}");
    assert!(out.stderr_str().contains("SignatureDoesNotMatch"), "{out}");
}
