//! `snapguard copy` through the binary: re-encrypting between repositories with different keys,
//! sealed copying between repositories that share keys (`init --copy-keys-from`), reruns that
//! copy nothing, resuming after `kill -9`, the errors a user meets, and a chain of copies
//! local → S3 (s3s-fs) → SFTP (sshd) → local ending in a bit-exact restore.

use crate::s3::s3_server::{self, S3Server};
use crate::support::cmd::{Out, Sg, Ws, PASSWORD};
use crate::support::compare::{assert_same, Opts, Tree};
use crate::support::fixture::{Built, Fixture};
use crate::support::sshd::Sshd;
use crate::support::{restored_path, varied};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TARGET_PASSWORD: &str = "copy-target-password";

/// A second repository `ws/NAME` with its own password (and cache).
fn sg_named(ws: &Ws, name: &str, password: &str) -> Sg {
    let cache = ws.path(format!("cache-{name}"));
    std::fs::create_dir_all(&cache).expect("mkdir cache");
    Sg {
        bin: crate::support::cmd::bin(),
        repo: ws.path(name),
        cache,
        config: crate::support::cmd::empty_config(ws),
        wrapper: Vec::new(),
        extra_env: vec![("SNAPGUARD_PASSWORD".into(), password.into())],
    }
}

fn init(sg: &Sg, extra: &[&str]) -> Out {
    let mut args = vec!["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"];
    args.extend(extra);
    sg.run(args)
}

fn password_file(ws: &Ws, password: &str) -> PathBuf {
    let p = ws.path(format!("pw-{}", password.len()));
    std::fs::write(&p, format!("{password}\n")).expect("password file");
    p
}

fn varied_source(ws: &Ws, name: &str, random: u64) -> (PathBuf, Built) {
    let src = ws.path(name);
    let mut fx = Fixture::new(&src);
    varied::build(&mut fx);
    fx.random_file("big/random.bin", random, 7);
    (src, fx.finish())
}

fn restore_and_compare(sg: &Sg, ws: &Ws, id: &str, src: &Path, built: &Built, name: &str) {
    let target = ws.path(name);
    sg.restore(id, &target, &[]).expect_code(0);
    let actual = Tree::scan(&restored_path(&target, src));
    assert_same(&built.tree, &actual, &Opts::default(), name);
}

fn snapshots(sg: &Sg) -> Vec<Value> {
    let v = sg.run(["--json", "snapshots"]).expect_code(0).json();
    v.as_array()
        .unwrap_or_else(|| panic!("snapshots --json is not an array: {v}"))
        .clone()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

fn list_len(v: &Value, key: &str) -> usize {
    v.get(key)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no list {key:?} in {v}"))
        .len()
}

/// `copy --json ARGS --to TARGET --to-password-file FILE` run with `sg`'s environment.
fn copy_json(sg: &Sg, target: &str, pw: &Path, extra: &[&str]) -> Value {
    let mut args: Vec<OsString> = vec!["--json".into(), "copy".into()];
    args.extend(extra.iter().map(OsString::from));
    args.extend(["--to".into(), target.into(), "--to-password-file".into()]);
    args.push(pw.as_os_str().to_owned());
    let out = sg.run(&args);
    out.expect_code(0);
    out.json()
}

/// Pack files of a local repository: path relative to the repository → bytes.
fn packs(repo: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(dirs) = std::fs::read_dir(repo.join("data")) else {
        return out;
    };
    for d in dirs {
        let d = d.expect("entry").path();
        for f in std::fs::read_dir(&d).expect("read_dir") {
            let f = f.expect("entry").path();
            // Not the temporary file of a write that a kill interrupted.
            if f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let rel = f.strip_prefix(repo).expect("prefix").to_path_buf();
            out.insert(rel, std::fs::read(&f).expect("read pack"));
        }
    }
    out
}

/// Repository files in `dir` (named by a 64-digit id; not the temporary files of a write in
/// progress).
fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
                })
                .count()
        })
        .unwrap_or(0)
}

/// Effective time, host, tags, comment and lock of a snapshot in `snapshots --json`.
fn metadata(v: &Value) -> (String, String, Value, Value, Value, Value) {
    (
        str_of(v, "time").to_string(),
        str_of(v, "hostname").to_string(),
        v["tags"].clone(),
        v["comment"].clone(),
        v["locked_until"].clone(),
        v["paths"].clone(),
    )
}

#[test]
fn copy_reencrypts_between_different_keys_and_keeps_metadata() {
    let ws = Ws::new();
    let (src, built) = varied_source(&ws, "src", 3 << 20);
    let sg = Sg::init(&ws, None);
    let b = sg.backup(
        &[&src],
        &[
            "--tag",
            "daily",
            "--host",
            "web-1",
            "--time",
            "2024-05-06T07:08:09Z",
        ],
    );
    sg.run(["tag", &b.id, "--add", "keep", "--remove", "daily"])
        .expect_code(0);
    sg.run(["annotate", &b.id, "--comment", "before the upgrade"])
        .expect_code(0);
    sg.run(["lock", &b.id, "--until", "2099-01-01T00:00:00Z"])
        .expect_code(0);

    let target = sg_named(&ws, "target", TARGET_PASSWORD);
    init(&target, &[]).expect_code(0);
    let pw = password_file(&ws, TARGET_PASSWORD);
    let to = target.repo.display().to_string();
    let r = copy_json(&sg, &to, &pw, &[]);
    assert_eq!(str_of(&r, "mode"), "re-encrypt", "{r}");
    assert_eq!(list_len(&r, "copied"), 1, "{r}");
    assert!(
        num(&r, "blobs_copied") > 0 && num(&r, "trees_rewritten") > 0,
        "{r}"
    );
    assert_eq!(num(&r, "packs_verbatim"), 0, "{r}");

    let orig = &snapshots(&sg)[0];
    let copies = snapshots(&target);
    assert_eq!(copies.len(), 1);
    let copy = &copies[0];
    assert_eq!(metadata(copy), metadata(orig));
    assert_eq!(copy["tags"], serde_json::json!(["keep"]));
    assert_eq!(copy["comment"], "before the upgrade");
    assert_eq!(copy["summary"], orig["summary"]);
    assert_ne!(
        copy["tree"], orig["tree"],
        "different keys give different ids"
    );
    assert_eq!(copy["copied_from"]["snapshot"], orig["id"]);
    // The lock holds in the target too.
    let id = str_of(copy, "id").to_string();
    target.run(["forget", &id]).expect_code(19);

    restore_and_compare(&target, &ws, &id, &src, &built, "restore-copy");
    target.run(["check", "--read-data"]).expect_code(0);

    // A rerun copies nothing and says which snapshot it skipped.
    let again = copy_json(&sg, &to, &pw, &[]);
    assert_eq!(list_len(&again, "copied"), 0, "{again}");
    assert_eq!(list_len(&again, "skipped"), 1, "{again}");
    assert_eq!(num(&again, "blobs_copied"), 0, "{again}");
    assert_eq!(num(&again, "bytes_uploaded"), 0, "{again}");
    let text = sg.run([
        OsString::from("copy"),
        "--to".into(),
        to.clone().into(),
        "--to-password-file".into(),
        pw.clone().into(),
    ]);
    text.expect_code(0);
    assert!(
        text.stdout_str()
            .contains(&format!("skipped snapshot {}", &b.id[..8])),
        "{text}"
    );
    // An annotation added in the source later is brought over by the next copy.
    sg.run(["annotate", &b.id, "--comment", "after the upgrade"])
        .expect_code(0);
    let r = copy_json(&sg, &to, &pw, &[]);
    assert_eq!(r["skipped"][0]["annotations"], 1, "{r}");
    assert_eq!(snapshots(&target)[0]["comment"], "after the upgrade");
}

#[test]
fn copy_errors_name_the_problem() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("a.txt", b"alpha\n");
    fx.finish();
    let sg = Sg::init(&ws, None);
    sg.backup(&[&src], &[]);
    let target = sg_named(&ws, "target", TARGET_PASSWORD);
    init(&target, &[]).expect_code(0);
    let to = target.repo.display().to_string();
    let good = password_file(&ws, TARGET_PASSWORD);
    let bad = ws.path("bad-pw");
    std::fs::write(&bad, "wrong\n").expect("write");

    let run = |extra: &[&str], pw: &Path| {
        let mut args: Vec<OsString> = vec!["copy".into()];
        args.extend(extra.iter().map(OsString::from));
        args.extend(["--to-password-file".into(), pw.as_os_str().to_owned()]);
        sg.run(&args)
    };
    let out = run(&["--to", &to], &bad);
    out.expect_code(12);
    assert!(out.stderr_str().contains("target"), "{out}");
    let nowhere = ws.path("nowhere").display().to_string();
    let out = run(&["--to", &nowhere], &good);
    out.expect_code(10);
    assert!(out.stderr_str().contains(&nowhere), "{out}");
    let out = run(&["beefcafe", "--to", &to], &good);
    out.expect_code(15);
    assert!(out.stderr_str().contains("beefcafe"), "{out}");
    let me = sg.repo.display().to_string();
    let out = run(&["--to", &me], &password_file(&ws, PASSWORD));
    out.expect_code(2);
    assert!(out.stderr_str().contains("same repository"), "{out}");
    // No target password at all.
    let out = sg.run(["copy", "--to", &to]);
    out.expect_code(1);
    assert!(out.stderr_str().contains("SNAPGUARD_TO_PASSWORD"), "{out}");

    // The target locked exclusively (as by a prune): exit 11, naming the holder.
    let backend: std::sync::Arc<dyn snapguard_backend::Backend> =
        std::sync::Arc::new(snapguard_backend::LocalBackend::new(&target.repo));
    let repo = snapguard_engine::Repository::open(
        backend,
        &[snapguard_engine::Secret::Password(zeroize::Zeroizing::new(
            TARGET_PASSWORD.as_bytes().to_vec(),
        ))],
    )
    .expect("open target");
    let owner = snapguard_engine::lock::LockOwner {
        hostname: "prune-host".into(),
        username: "someone".into(),
    };
    let guard = repo
        .lock(snapguard_engine::lock::LockKind::Exclusive, "prune", &owner)
        .expect("lock");
    let out = run(&["--to", &to], &good);
    out.expect_code(11);
    assert!(out.stderr_str().contains("prune-host"), "{out}");
    drop(guard);
    run(&["--to", &to], &good).expect_code(0);

    // An append-only target is fine: copy only adds.
    let ao = sg_named(&ws, "append-only", TARGET_PASSWORD);
    init(&ao, &["--append-only"]).expect_code(0);
    run(&["--to", &ao.repo.display().to_string()], &good).expect_code(0);
    assert_eq!(snapshots(&ao).len(), 1);
}

#[test]
fn copy_with_shared_keys_moves_packs_without_reencrypting() {
    let ws = Ws::new();
    let (src, built) = varied_source(&ws, "src", 6 << 20);
    let sg = Sg::init(&ws, None);
    let first = sg.backup(&[&src], &["--tag", "one"]);
    let target = sg_named(&ws, "target", TARGET_PASSWORD);
    let from_pw = password_file(&ws, PASSWORD);
    let me = sg.repo.display().to_string();
    init(
        &target,
        &[
            "--copy-keys-from",
            &me,
            "--from-password-file",
            &from_pw.display().to_string(),
        ],
    )
    .expect_code(0);
    // Its own password opens it; the source's does not.
    target.run(["snapshots"]).expect_code(0);
    let other = Sg {
        extra_env: vec![("SNAPGUARD_PASSWORD".into(), PASSWORD.into())],
        ..sg_named(&ws, "target", TARGET_PASSWORD)
    };
    other.run(["snapshots"]).expect_code(12);

    let pw = password_file(&ws, TARGET_PASSWORD);
    let to = target.repo.display().to_string();
    let r = copy_json(&sg, &to, &pw, &[]);
    assert_eq!(str_of(&r, "mode"), "same-keys", "{r}");
    assert_eq!(num(&r, "trees_rewritten"), 0, "{r}");
    let verbatim = num(&r, "packs_verbatim");
    assert!(verbatim > 0, "{r}");
    // Those packs are the source's files, byte for byte, under the same names.
    let (a, b) = (packs(&sg.repo), packs(&target.repo));
    let same = b.iter().filter(|(k, v)| a.get(*k) == Some(*v)).count();
    assert_eq!(same as u64, verbatim, "{r}");
    let copy = &snapshots(&target)[0];
    let orig = &snapshots(&sg)[0];
    assert_eq!(copy["tree"], orig["tree"], "same keys give the same ids");
    assert_eq!(metadata(copy), metadata(orig));

    // A second backup shares almost everything: only its new blobs move.
    std::fs::write(src.join("new.txt"), b"a new file\n").expect("write");
    let second = sg.backup(&[&src], &["--tag", "two"]);
    let r2 = copy_json(&sg, &to, &pw, &[]);
    assert_eq!(list_len(&r2, "copied"), 1, "{r2}");
    assert_eq!(str_of(&r2["skipped"][0], "source"), first.id, "{r2}");
    assert!(num(&r2, "blobs_skipped") > 10, "{r2}");
    assert!(
        num(&r2, "bytes_uploaded") < num(&r, "bytes_uploaded") / 10,
        "the second copy uploaded too much: {r2}"
    );
    let id2 = snapshots(&target)
        .iter()
        .find(|s| s["copied_from"]["snapshot"] == second.id.as_str())
        .map(|s| str_of(s, "id").to_string())
        .expect("the second copy");
    target.run(["check", "--read-data"]).expect_code(0);
    std::fs::remove_file(src.join("new.txt")).expect("rm");
    restore_and_compare(&target, &ws, &first.id_in(&target), &src, &built, "r1");
    let out = target.restore(&id2, &ws.path("r2"), &[]);
    out.expect_code(0);
}

trait IdIn {
    fn id_in(&self, repo: &Sg) -> String;
}

impl IdIn for crate::support::cmd::Backup {
    /// The id of this snapshot's copy in `repo`.
    fn id_in(&self, repo: &Sg) -> String {
        snapshots(repo)
            .iter()
            .find(|s| {
                s["copied_from"]["snapshot"] == self.id.as_str() || s["id"] == self.id.as_str()
            })
            .map(|s| str_of(s, "id").to_string())
            .unwrap_or_else(|| panic!("no copy of {} in {}", self.id, repo.repo.display()))
    }
}

/// Run `copy` in the background, kill it with SIGKILL once `ready` says it is mid-way, and
/// return whether it was still running at the kill.
fn kill_copy_when(sg: &Sg, args: &[OsString], mut ready: impl FnMut() -> bool) -> bool {
    let mut child = sg
        .std_command()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn copy");
    let t0 = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        if ready() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "copy never got there"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    true
}

#[test]
fn copy_killed_midway_resumes_without_uploading_again() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    for i in 0..6 {
        fx.random_file(format!("r{i}.bin"), 4 << 20, 100 + i);
    }
    fx.file("small.txt", b"small\n");
    let built = fx.finish();
    let sg = sg_named(&ws, "repo", PASSWORD);
    init(&sg, &["--pack-size", "1"]).expect_code(0);
    let first = sg.backup(&[&src], &[]);
    let total_source: u64 = packs(&sg.repo).values().map(|v| v.len() as u64).sum();

    let target = sg_named(&ws, "target", TARGET_PASSWORD);
    let from_pw = password_file(&ws, PASSWORD);
    init(
        &target,
        &[
            "--copy-keys-from",
            &sg.repo.display().to_string(),
            "--from-password-file",
            &from_pw.display().to_string(),
        ],
    )
    .expect_code(0);
    let pw = password_file(&ws, TARGET_PASSWORD);
    let args: Vec<OsString> = vec![
        "--limit-upload".into(),
        "6".into(),
        "--json".into(),
        "copy".into(),
        "--to".into(),
        target.repo.clone().into(),
        "--to-password-file".into(),
        pw.clone().into(),
    ];
    // Kill once at least one index file (listing durable packs) is in the target.
    let index_dir = target.repo.join("index");
    let killed = kill_copy_when(&sg, &args, || files_in(&index_dir) > 0);
    assert!(killed, "the copy finished before it could be killed");
    assert!(
        snapshots(&target).is_empty(),
        "no snapshot before the commit"
    );
    let before = packs(&target.repo);
    assert!(!before.is_empty());
    // The interrupted target is consistent.
    target.run(["unlock"]).expect_code(0);
    target.run(["check", "--read-data"]).expect_code(0);

    let r = copy_json(&sg, &target.repo.display().to_string(), &pw, &[]);
    assert_eq!(list_len(&r, "copied"), 1, "{r}");
    assert!(num(&r, "blobs_skipped") > 0, "{r}");
    let uploaded_before: u64 = before.values().map(|v| v.len() as u64).sum();
    assert!(
        num(&r, "bytes_uploaded") + uploaded_before <= total_source + (2 << 20),
        "the rerun uploaded again what was there: {uploaded_before} before, {r}"
    );
    // Every pack of the first run is still there, unchanged (none was replaced).
    let after = packs(&target.repo);
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k:?} changed");
    }
    target.run(["check", "--read-data"]).expect_code(0);
    restore_and_compare(&target, &ws, &first.id_in(&target), &src, &built, "restore");
}

#[test]
fn reencrypting_copy_killed_between_snapshots_resumes() {
    let ws = Ws::new();
    let src = ws.path("src");
    let sg = sg_named(&ws, "repo", PASSWORD);
    init(&sg, &["--pack-size", "1"]).expect_code(0);
    let mut ids = Vec::new();
    let mut trees = Vec::new();
    for i in 0..3 {
        let mut fx = Fixture::new(&src.join(format!("g{i}")));
        fx.random_file("data.bin", 6 << 20, 200 + i);
        fx.finish();
        ids.push(sg.backup(&[&src], &[]));
        trees.push(Tree::scan(&src));
    }
    let target = sg_named(&ws, "target", TARGET_PASSWORD);
    init(&target, &[]).expect_code(0);
    let pw = password_file(&ws, TARGET_PASSWORD);
    let args: Vec<OsString> = vec![
        "--limit-upload".into(),
        "8".into(),
        "copy".into(),
        "--to".into(),
        target.repo.clone().into(),
        "--to-password-file".into(),
        pw.clone().into(),
    ];
    let snap_dir = target.repo.join("snapshots");
    let killed = kill_copy_when(&sg, &args, || files_in(&snap_dir) > 0);
    assert!(killed, "the copy finished before it could be killed");
    target.run(["unlock"]).expect_code(0);
    target.run(["check", "--read-data"]).expect_code(0);
    let done = snapshots(&target).len();
    assert!((1..3).contains(&done), "{done} snapshots before the kill");
    let r = copy_json(&sg, &target.repo.display().to_string(), &pw, &[]);
    assert_eq!(list_len(&r, "skipped"), done, "{r}");
    assert_eq!(list_len(&r, "copied"), 3 - done, "{r}");
    assert_eq!(snapshots(&target).len(), 3);
    target.run(["check", "--read-data"]).expect_code(0);
    let last = ids.last().expect("id").id_in(&target);
    let out = ws.path("restore");
    target.restore(&last, &out, &[]).expect_code(0);
    let actual = Tree::scan(&restored_path(&out, &src));
    assert_same(
        trees.last().expect("tree"),
        &actual,
        &Opts::default(),
        "last",
    );
}

/// An `Sg` for a repository on the S3 test server, with the test credentials.
fn s3_env(ws: &Ws) -> Vec<(OsString, OsString)> {
    let none = ws.path("no-aws-files");
    [
        ("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_KEY.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_CONFIG_FILE", none.display().to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", none.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect()
}

#[test]
fn copy_chain_local_s3_sftp_local_restores_bit_exact() {
    let Some(s3) = S3Server::start() else { return };
    let Some(sshd) = Sshd::start() else { return };
    let ws = Ws::new();
    let (src, built) = varied_source(&ws, "src", 5 << 20);
    // Every process gets the S3 credentials and the SFTP client settings: a strict host-key
    // check against this test's own known_hosts (Sshd::client_path), never ~/.ssh.
    let mut env = s3_env(&ws);
    env.push((
        "SNAPGUARD_SFTP_KEY".into(),
        sshd.ssh_args()[2].clone().into(),
    ));
    env.push(("PATH".into(), sshd.client_path()));
    let with = |repo: PathBuf, password: &str, cache: &str| {
        let cache = ws.path(cache);
        std::fs::create_dir_all(&cache).expect("mkdir cache");
        let mut extra_env = env.clone();
        extra_env.push(("SNAPGUARD_PASSWORD".into(), password.into()));
        Sg {
            bin: crate::support::cmd::bin(),
            repo,
            cache,
            config: crate::support::cmd::empty_config(&ws),
            wrapper: Vec::new(),
            extra_env,
        }
    };
    let (pa, pb, pc, pd) = ("pass-a", "pass-bb", "pass-ccc", "pass-dddd");
    let a = with(ws.path("a"), pa, "cache-a");
    let s3_url = s3.url("copies/b");
    let b = with(PathBuf::from(&s3_url), pb, "cache-b");
    let sftp_dir = ws.path("server/c");
    let sftp_url = format!("sftp:root@127.0.0.1:{}{}", sshd.port, sftp_dir.display());
    let c = with(PathBuf::from(&sftp_url), pc, "cache-c");
    let d = with(ws.path("d"), pd, "cache-d");
    for sg in [&a, &b, &c] {
        init(sg, &[]).expect_code(0);
    }
    let orig = a.backup(&[&src], &["--tag", "chain", "--host", "origin-host"]);
    a.run(["annotate", &orig.id, "--comment", "through three backends"])
        .expect_code(0);

    // local → S3 (re-encrypt), S3 → SFTP (re-encrypt).
    let r = copy_json(&a, &s3_url, &password_file(&ws, pb), &[]);
    assert_eq!(
        (str_of(&r, "mode"), list_len(&r, "copied")),
        ("re-encrypt", 1),
        "{r}"
    );
    let r = copy_json(&b, &sftp_url, &password_file(&ws, pc), &["latest"]);
    assert_eq!(
        (str_of(&r, "mode"), list_len(&r, "copied")),
        ("re-encrypt", 1),
        "{r}"
    );
    // SFTP → local with shared keys (no re-encryption on the last hop).
    init(
        &d,
        &[
            "--copy-keys-from",
            &sftp_url,
            "--from-password-file",
            &password_file(&ws, pc).display().to_string(),
        ],
    )
    .expect_code(0);
    let r = copy_json(
        &c,
        &d.repo.display().to_string(),
        &password_file(&ws, pd),
        &[],
    );
    assert_eq!(
        (str_of(&r, "mode"), list_len(&r, "copied")),
        ("same-keys", 1),
        "{r}"
    );
    d.run(["check", "--read-data"]).expect_code(0);

    let last = &snapshots(&d)[0];
    let first = &snapshots(&a)[0];
    assert_eq!(metadata(last), metadata(first));
    assert_eq!(last["comment"], "through three backends");
    assert_eq!(last["copied_from"]["snapshot"], orig.id.as_str());
    restore_and_compare(&d, &ws, str_of(last, "id"), &src, &built, "restore-d");

    // Every hop knows the snapshot now: copying the original along again copies nothing,
    // and neither does copying the last copy back to the start.
    let r = copy_json(&a, &s3_url, &password_file(&ws, pb), &[]);
    assert_eq!(list_len(&r, "copied"), 0, "{r}");
    let r = copy_json(
        &d,
        &a.repo.display().to_string(),
        &password_file(&ws, pa),
        &[],
    );
    assert_eq!(list_len(&r, "copied"), 0, "{r}");
    assert_eq!(str_of(&r["skipped"][0], "existing"), orig.id, "{r}");
}

#[test]
fn copy_selects_by_id_host_tag_and_path_and_takes_the_target_password_from_the_environment() {
    let ws = Ws::new();
    let (one, two) = (ws.path("one"), ws.path("two"));
    for (dir, text) in [(&one, "one\n"), (&two, "two\n")] {
        let mut fx = Fixture::new(dir);
        fx.file("f.txt", text.as_bytes());
        fx.finish();
    }
    let sg = Sg::init(&ws, None);
    let a = sg.backup(&[&one], &["--host", "alpha", "--tag", "keep"]);
    let b = sg.backup(&[&two], &["--host", "beta"]);
    let c = sg.backup(&[&one], &["--host", "beta", "--tag", "keep"]);
    let target = sg_named(&ws, "target", TARGET_PASSWORD);
    init(&target, &[]).expect_code(0);
    let copy = |extra: &[&str]| {
        let mut cmd = sg.command();
        cmd.env("SNAPGUARD_TO_PASSWORD", TARGET_PASSWORD)
            .env("SNAPGUARD_TO_REPOSITORY", &target.repo);
        let mut args = vec!["--json", "copy"];
        args.extend(extra);
        let out = crate::support::cmd::run_cmd(&mut cmd, args);
        out.expect_code(0);
        out.json()
    };
    let sources = |r: &Value| -> Vec<String> {
        r["copied"]
            .as_array()
            .expect("copied")
            .iter()
            .map(|c| str_of(c, "source").to_string())
            .collect()
    };
    assert_eq!(
        sources(&copy(&["--host", "beta", "--tag", "keep"])),
        [c.id.as_str()]
    );
    assert_eq!(
        sources(&copy(&["--path", &one.display().to_string()])),
        [a.id.as_str()]
    );
    assert_eq!(sources(&copy(&[&b.id[..8]])), [b.id.as_str()]);
    let r = copy(&[]);
    assert_eq!(list_len(&r, "copied"), 0, "{r}");
    assert_eq!(list_len(&r, "skipped"), 3, "{r}");
    assert_eq!(snapshots(&target).len(), 3);

    // init --copy-keys-from with the wrong password for the source.
    let bad = ws.path("bad");
    std::fs::write(&bad, "nope\n").expect("write");
    let other = sg_named(&ws, "other", TARGET_PASSWORD);
    let out = init(
        &other,
        &[
            "--copy-keys-from",
            &sg.repo.display().to_string(),
            "--from-password-file",
            &bad.display().to_string(),
        ],
    );
    out.expect_code(12);
    assert!(out.stderr_str().contains("copy its keys"), "{out}");
    assert!(!other.repo.join("config").exists());
}

#[test]
fn copy_latest_applies_the_filters_first_and_unmatched_arguments_fail() {
    let ws = Ws::new();
    let one = ws.path("one");
    let mut fx = Fixture::new(&one);
    fx.file("f.txt", b"one\n");
    fx.finish();
    let sg = Sg::init(&ws, None);
    let older = sg.backup(&[&one], &["--host", "alpha", "--tag", "daily"]);
    let wanted = sg.backup(&[&one], &["--host", "alpha", "--tag", "daily"]);
    let other_host = sg.backup(&[&one], &["--host", "beta", "--tag", "daily"]);
    // The newest snapshot overall does not pass the filters.
    sg.backup(&[&one], &["--host", "alpha", "--tag", "weekly"]);
    let target = sg_named(&ws, "target", TARGET_PASSWORD);
    init(&target, &[]).expect_code(0);
    let to = target.repo.display().to_string();
    let pw = password_file(&ws, TARGET_PASSWORD);

    let r = copy_json(
        &sg,
        &to,
        &pw,
        &["latest", "--host", "alpha", "--tag", "daily"],
    );
    assert_eq!(num(&r, "selected"), 1, "{r}");
    assert_eq!(str_of(&r["copied"][0], "source"), wanted.id, "{r}");
    assert_ne!(wanted.id, older.id);

    // Arguments that select nothing: exit 15, naming what was asked.
    let run = |extra: &[&str]| {
        let mut args: Vec<OsString> = vec!["copy".into()];
        args.extend(extra.iter().map(OsString::from));
        args.extend([
            "--to".into(),
            to.clone().into(),
            "--to-password-file".into(),
        ]);
        args.push(pw.as_os_str().to_owned());
        sg.run(&args)
    };
    let out = run(&["latest", "--host", "gamma"]);
    out.expect_code(15);
    assert!(out.stderr_str().contains("latest --host gamma"), "{out}");
    let prefix = &other_host.id[..8];
    let out = run(&[prefix, "--host", "alpha"]);
    out.expect_code(15);
    assert!(
        out.stderr_str().contains(&format!("{prefix} --host alpha")),
        "{out}"
    );
    assert_eq!(snapshots(&target).len(), 1);
}

#[test]
fn concurrent_same_keys_copies_into_one_target_both_succeed() {
    let ws = Ws::new();
    let (src, built) = varied_source(&ws, "src", 8 << 20);
    let sg = Sg::init(&ws, None);
    let first = sg.backup(&[&src], &[]);
    std::fs::write(src.join("second.txt"), b"second\n").expect("write");
    sg.backup(&[&src], &[]);
    std::fs::remove_file(src.join("second.txt")).expect("rm");
    let target = sg_named(&ws, "target", TARGET_PASSWORD);
    let from_pw = password_file(&ws, PASSWORD);
    let me = sg.repo.display().to_string();
    init(
        &target,
        &[
            "--copy-keys-from",
            &me,
            "--from-password-file",
            &from_pw.display().to_string(),
        ],
    )
    .expect_code(0);
    let pw = password_file(&ws, TARGET_PASSWORD);
    let args: Vec<OsString> = vec![
        "--json".into(),
        "copy".into(),
        "--to".into(),
        target.repo.clone().into_os_string(),
        "--to-password-file".into(),
        pw.clone().into_os_string(),
    ];
    // Both start before either has written anything, so they pick the same packs to copy
    // whole and compute the same snapshot ids.
    let children: Vec<_> = (0..2)
        .map(|_| {
            sg.std_command()
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn copy")
        })
        .collect();
    let mut reports = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "a concurrent copy failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).expect("json");
        reports.push(r);
    }
    for r in &reports {
        assert_eq!(list_len(r, "copied") + list_len(r, "skipped"), 2, "{r}");
    }
    // Each source snapshot once in the target, everything readable.
    assert_eq!(snapshots(&target).len(), 2, "{reports:?}");
    target.run(["check", "--read-data"]).expect_code(0);
    restore_and_compare(&target, &ws, &first.id_in(&target), &src, &built, "r1");
}
