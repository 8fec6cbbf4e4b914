//! S3 Object Lock through the binary, against a server that enforces it (moto on 127.0.0.1):
//! init on a bucket without Object Lock, retention on every object a backup writes, `lock`
//! extending it over everything a snapshot needs, `forget` refusing a retained snapshot, and
//! prune keeping retained packs and index files while the repository stays whole, then
//! deleting them once the retention has ended.

#[path = "../../../backend/tests/support/moto_server.rs"]
#[allow(dead_code)]
mod moto_server;

use crate::support::cmd::{Sg, Ws};
use crate::support::compare::{assert_same, Opts, Tree};
use crate::support::fixture::Fixture;
use crate::support::{restored_path, varied};
use moto_server::MotoServer;
use serde_json::Value;
use snapguard_backend::{
    Backend, FileType, OpendalBackend, RemoteOptions, Retention, RetentionMode, S3Config,
};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

fn sg_at(ws: &Ws, server: &MotoServer, bucket: &str, prefix: &str) -> Sg {
    let cache = ws.path(format!("cache-{bucket}"));
    std::fs::create_dir_all(&cache).expect("mkdir cache");
    let none = ws.path("no-aws-files");
    Sg {
        bin: crate::support::cmd::bin(),
        repo: PathBuf::from(server.url(bucket, prefix)),
        cache,
        config: crate::support::cmd::empty_config(ws),
        wrapper: Vec::new(),
        extra_env: [
            ("AWS_ACCESS_KEY_ID", moto_server::ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", moto_server::SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_CONFIG_FILE", none.display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", none.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect(),
    }
}

/// The test's own view of the bucket, to read retentions.
fn backend(server: &MotoServer, bucket: &str, prefix: &str) -> OpendalBackend {
    let mut cfg = S3Config::parse(&server.url(bucket, prefix)["s3:".len()..]).expect("URL");
    cfg.access_key_id = Some(moto_server::ACCESS_KEY.into());
    cfg.secret_access_key = Some(moto_server::SECRET_KEY.into());
    OpendalBackend::s3(&cfg, &RemoteOptions::default()).expect("backend")
}

fn retention(b: &OpendalBackend, t: FileType, name: &str) -> Option<Retention> {
    b.object_lock()
        .expect("S3")
        .retention(t, name)
        .unwrap_or_else(|e| panic!("retention of {}: {e}", t.path(name)))
}

const INIT: [&str; 5] = ["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"];

#[test]
fn object_lock_needs_a_bucket_with_object_lock() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    let ws = Ws::new();
    server.create_bucket("plain-bucket", false);
    let sg = sg_at(&ws, &server, "plain-bucket", "repo");
    let out = sg.run(INIT.iter().copied().chain(["--object-lock"]));
    out.expect_code(2);
    let err = out.stderr_str();
    assert!(err.contains("plain-bucket"), "names the bucket: {err}");
    assert!(
        err.contains("does not have S3 Object Lock enabled")
            && err.contains("--object-lock-enabled-for-bucket"),
        "says what to do: {err}"
    );
    // Refused before anything was written: the prefix can still be initialized without it.
    assert!(server.versions("plain-bucket").is_empty());
    sg.run(INIT).expect_code(0);

    // A default retention rule on the bucket would also retain lock files: refused.
    server.create_bucket("rule-bucket", true);
    server.set_default_retention("rule-bucket", 1);
    let out = sg_at(&ws, &server, "rule-bucket", "repo")
        .run(INIT.iter().copied().chain(["--object-lock"]));
    out.expect_code(2);
    assert!(
        out.stderr_str()
            .contains("default retention rule (GOVERNANCE 1d)"),
        "{}",
        out.stderr_str()
    );
    assert!(server.versions("rule-bucket").is_empty());

    // A local repository has no object lock at all.
    let local = Sg {
        repo: ws.path("local-repo"),
        ..sg_at(&ws, &server, "plain-bucket", "x")
    };
    let out = local.run(INIT.iter().copied().chain(["--object-lock"]));
    out.expect_code(2);
    assert!(
        out.stderr_str().contains("only S3 repositories"),
        "{}",
        out.stderr_str()
    );
    // The retention options need --object-lock.
    sg.run(
        INIT.iter()
            .copied()
            .chain(["--object-lock-retention", "1d"]),
    )
    .expect_code(2);
}

#[test]
fn object_lock_backup_lock_forget_prune() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    let ws = Ws::new();
    server.create_bucket("locked-bucket", true);
    let sg = sg_at(&ws, &server, "locked-bucket", "repo");
    let b = backend(&server, "locked-bucket", "repo");
    // A short default retention, so the test can watch it end.
    let out = sg.run(INIT.iter().copied().chain([
        "--object-lock",
        "--object-lock-retention",
        "12s",
        "--pack-size",
        "1",
    ]));
    out.expect_code(0);
    assert!(
        out.stdout_str().contains("S3 Object Lock: compliance mode"),
        "{}",
        out.stdout_str()
    );

    // Snapshot 1: a.bin and b.bin (one data pack). Snapshot 2: a.bin again plus a varied tree.
    let src1 = ws.path("src1");
    let mut fx = Fixture::new(&src1);
    fx.random_file("a.bin", 300 << 10, 1);
    fx.random_file("b.bin", 300 << 10, 2);
    fx.finish();
    let first = sg.backup(&[&src1], &[]);
    // forget refuses a snapshot whose file is still retained (here: by the default retention
    // alone, no immutability annotation), naming it and the date, and deletes nothing.
    let out = sg.run(["forget", &first.id]);
    out.expect_code(19);
    let err = out.stderr_str();
    assert!(
        err.contains(&first.id[..8]) && err.contains("protected by S3 Object Lock until"),
        "{err}"
    );
    assert_eq!(b.list(FileType::Snapshot).expect("list").len(), 1);

    let src2 = ws.path("src2");
    let mut fx = Fixture::new(&src2);
    varied::build(&mut fx);
    fx.random_file("a.bin", 300 << 10, 1);
    let built2 = fx.finish();
    let second = sg.backup(&[&src2], &[]);

    // Every object the backups wrote carries a compliance retention of about 12 s; no lock
    // file is left.
    let now = SystemTime::now();
    let mut first_until = None;
    for t in [
        FileType::Config,
        FileType::Key,
        FileType::Snapshot,
        FileType::Index,
        FileType::Pack,
    ] {
        let listed = b.list(t).expect("list");
        assert!(!listed.is_empty(), "{t:?}");
        for (name, _) in listed {
            let r = retention(&b, t, &name)
                .unwrap_or_else(|| panic!("{} has no retention", t.path(&name)));
            assert_eq!(r.mode, RetentionMode::Compliance, "{name}");
            assert!(
                r.until > now - Duration::from_secs(12) && r.until <= now + Duration::from_secs(13),
                "{}: {:?}",
                t.path(&name),
                r.until
            );
            if t == FileType::Snapshot && name == first.id {
                first_until = Some(r.until);
            }
        }
    }
    assert!(b.list(FileType::Lock).expect("list").is_empty());
    let first_until = first_until.expect("snapshot 1's file");

    // lock extends the retention of everything snapshot 2 needs: its file, its new annotation,
    // its packs (including the one it shares with snapshot 1) and their index files.
    let until = (chrono::Utc::now() + chrono::Duration::seconds(45))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let lock = sg
        .run(["--json", "lock", &second.id, "--until", &until])
        .expect_code(0)
        .json();
    let ol = &lock["object_lock"];
    let extended = ol["extended"].as_u64().expect("extended");
    assert_eq!(ol["unchanged"].as_u64(), Some(0), "{lock}");
    assert_eq!(ol["objects"].as_u64(), Some(extended), "{lock}");
    assert!(ol["packs"].as_u64().expect("packs") >= 2, "{lock}");
    assert!(
        ol["index_files"].as_u64().expect("index files") >= 1,
        "{lock}"
    );
    let locked_until = retention(&b, FileType::Snapshot, &second.id)
        .expect("retained")
        .until;
    assert!(
        locked_until > SystemTime::now() + Duration::from_secs(30),
        "{locked_until:?}"
    );
    for (name, _) in b.list(FileType::Annotation).expect("list") {
        assert_eq!(
            retention(&b, FileType::Annotation, &name).map(|r| r.until),
            Some(locked_until)
        );
    }
    // Idempotent: a second run changes nothing and says so.
    let again = sg
        .run(["lock", &second.id, "--until", &until])
        .expect_code(0)
        .stdout_str();
    assert!(
        again.contains("retention of 0 object(s) extended to")
            && again.contains(&format!("({extended} already retained that long)")),
        "{again}"
    );

    // check notes an immutable snapshot whose objects are retained for less time than its
    // lock (here: the snapshot file's retention cut short behind SnapGuard's back, which moto
    // allows), and a second lock repairs it.
    sg.run(["check"]).expect_code(0);
    assert!(
        !sg.run(["check"]).stderr_str().contains("S3 Object Lock"),
        "no note while everything is retained"
    );
    let short = (chrono::Utc::now() + chrono::Duration::seconds(20))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let r = server.raw_with_body(
        "PUT",
        &format!("/locked-bucket/repo/snapshots/{}?retention", second.id),
        &[],
        &format!("<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>{short}</RetainUntilDate></Retention>"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let out = sg.run(["check"]);
    out.expect_code(0);
    let err = out.stderr_str();
    assert!(
        err.contains(&format!("note: snapshot {}", &second.id[..8]))
            && err.contains("1 of the")
            && err.contains("retained by S3 Object Lock only until")
            && err.contains(&format!("run 'snapguard lock {}", &second.id[..8])),
        "{err}"
    );
    let fixed = sg
        .run(["lock", &second.id, "--until", &until])
        .expect_code(0)
        .stdout_str();
    assert!(
        fixed.contains("retention of 1 object(s) extended"),
        "{fixed}"
    );
    assert!(!sg.run(["check"]).stderr_str().contains("S3 Object Lock"));

    // Once snapshot 1's own retention has ended it can be forgotten; pruning with
    // --max-unused 0 repacks the pack it shared with snapshot 2, but that pack is retained
    // by the lock: it is kept (and said so), like the superseded index files listing it.
    while SystemTime::now() <= first_until + Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = sg.run(["forget", &first.id, "--prune", "--max-unused", "0"]);
    out.expect_code(0);
    let text = out.stdout_str();
    assert!(
        text.contains("pack(s) kept: locked until") && text.contains("(S3 Object Lock)"),
        "{text}"
    );
    assert!(
        text.contains("superseded index file(s) kept: locked until"),
        "{text}"
    );
    // Nothing retained was deleted or hidden behind a delete marker.
    assert!(
        server
            .versions("locked-bucket")
            .iter()
            .all(|(_, _, marker)| !marker),
        "delete markers: {:?}",
        server.versions("locked-bucket")
    );
    let packs_after_first_prune = b.list(FileType::Pack).expect("list").len();
    // The new index lists the retained shared pack, so it got the pack's retention: the index
    // a locked snapshot needs is as protected as its packs. The superseded ones were kept.
    let indexes = b.list(FileType::Index).expect("list");
    assert!(indexes.len() >= 2, "{indexes:?}");
    for (name, _) in &indexes {
        let until = retention(&b, FileType::Index, name)
            .expect("retained")
            .until;
        assert!(
            until + Duration::from_secs(1) >= locked_until,
            "index/{name} retained only until {until:?}"
        );
    }
    // A prune with nothing it may do writes nothing: no further index next to the retained
    // superseded ones.
    let idle = sg.run(["--json", "prune"]).expect_code(0).json();
    assert_eq!(
        idle["result"]["index_files_replaced"].as_u64(),
        Some(0),
        "{idle}"
    );
    assert_eq!(b.list(FileType::Index).expect("list").len(), indexes.len());
    // The repository is whole: check reads every blob, and snapshot 2 restores bit-exact.
    sg.run(["check", "--read-data"]).expect_code(0);
    let target = ws.path("restore-2");
    sg.restore(&second.id, &target, &[]).expect_code(0);
    assert_same(
        &built2.tree,
        &Tree::scan(&restored_path(&target, &src2)),
        &Opts::default(),
        "restore of snapshot 2",
    );

    // After the lock has ended, the next prune deletes what the first one had to keep.
    while SystemTime::now() <= locked_until + Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = sg
        .run(["--json", "prune", "--max-unused", "0"])
        .expect_code(0)
        .json();
    assert_eq!(out["plan"]["retained"], serde_json::json!([]), "{out}");
    assert_eq!(out["result"]["retained"], serde_json::json!([]), "{out}");
    assert_eq!(out["plan"]["packs_to_repack"].as_u64(), Some(1), "{out}");
    // The shared pack was repacked and deleted, the superseded index files are gone.
    assert_eq!(
        b.list(FileType::Pack).expect("list").len(),
        packs_after_first_prune
    );
    assert_eq!(b.list(FileType::Index).expect("list").len(), 1);
    sg.run(["check", "--read-data"]).expect_code(0);
    let snaps: Value = sg.run(["--json", "snapshots"]).expect_code(0).json();
    assert_eq!(snaps.as_array().map(Vec::len), Some(1), "{snaps}");
}
