//! S3 Object Lock through the binary, against a server that enforces it (moto on 127.0.0.1):
//! init on a bucket without Object Lock, retention on every object a backup writes, `lock`
//! extending it over everything a snapshot needs (config and key slots included), `forget`
//! refusing a retained snapshot named on the command line and keeping retained ones a policy
//! would forget, prune keeping retained packs and index files while the repository stays
//! whole, then deleting them once the retention has ended; `object-lock refresh` and `check`
//! keeping every needed object retained; objects without lock headers (missing
//! s3:GetObjectRetention); `repair index` covering its new index.

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
use std::time::{Duration, SystemTime};

fn sg_at(ws: &Ws, server: &MotoServer, bucket: &str, prefix: &str) -> Sg {
    crate::support::cmd::s3_sg(
        ws,
        server.url(bucket, prefix),
        &format!("cache-{bucket}"),
        moto_server::ACCESS_KEY,
        moto_server::SECRET_KEY,
    )
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
    // Its annotation, and config and every key slot: without them nothing opens.
    assert_eq!(ol["key_slots"].as_u64(), Some(1), "{lock}");
    for (t, name) in b
        .list(FileType::Annotation)
        .expect("list")
        .into_iter()
        .map(|(n, _)| (FileType::Annotation, n))
        .chain(
            b.list(FileType::Key)
                .expect("list")
                .into_iter()
                .map(|(n, _)| (FileType::Key, n)),
        )
        .chain([(FileType::Config, "config".to_string())])
    {
        assert_eq!(
            retention(&b, t, &name).map(|r| r.until),
            Some(locked_until),
            "{}",
            t.path(&name)
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
        !sg.run(["check"])
            .stderr_str()
            .contains("retained by S3 Object Lock only until"),
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
    assert!(!sg
        .run(["check"])
        .stderr_str()
        .contains("retained by S3 Object Lock only until"));

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

/// The retain-until dates of every object of the types a restore needs.
fn retentions_of(b: &OpendalBackend, types: &[FileType]) -> Vec<(String, Option<Retention>)> {
    let mut out = Vec::new();
    for t in types {
        for (name, _) in b.list(*t).expect("list") {
            out.push((t.path(&name), retention(b, *t, &name)));
        }
    }
    out
}

const NEEDED: [FileType; 6] = [
    FileType::Config,
    FileType::Key,
    FileType::Index,
    FileType::Pack,
    FileType::Snapshot,
    FileType::Annotation,
];

#[test]
fn object_lock_refresh_forget_policy_and_missing_retention() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    let ws = Ws::new();
    server.create_bucket("refresh-bucket", true);
    let sg = sg_at(&ws, &server, "refresh-bucket", "repo");
    let b = backend(&server, "refresh-bucket", "repo");
    let period = 16u64;
    sg.run(INIT.iter().copied().chain([
        "--object-lock",
        "--object-lock-retention",
        "16s",
        "--pack-size",
        "1",
    ]))
    .expect_code(0);
    let written = SystemTime::now();
    let src1 = ws.path("src1");
    let mut fx = Fixture::new(&src1);
    fx.random_file("a.bin", 300 << 10, 1);
    fx.finish();
    let first = sg.backup(&[&src1], &[]);
    let src2 = ws.path("src2");
    let mut fx = Fixture::new(&src2);
    varied::build(&mut fx);
    fx.random_file("a.bin", 300 << 10, 1);
    let built2 = fx.finish();
    let second = sg.backup(&[&src2], &[]);

    // A daily forget job: the policy would forget snapshot 1, which is still retained, so it
    // is kept with the reason (text and JSON) and the run succeeds; nothing is deleted.
    let dry = sg
        .run([
            "forget",
            "--keep-last",
            "1",
            "--group-by",
            "host",
            "--dry-run",
        ])
        .expect_code(0)
        .stdout_str();
    assert!(
        dry.contains(&first.id[..8]) && dry.contains("retained by object lock until"),
        "{dry}"
    );
    assert!(dry.contains("2 snapshot(s) to keep, 0 to remove"), "{dry}");
    let out = sg
        .run(["--json", "forget", "--keep-last", "1", "--group-by", "host"])
        .expect_code(0)
        .json();
    assert_eq!(out["removed"].as_u64(), Some(0), "{out}");
    let kept = out["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .find(|d| d["id"] == first.id.as_str())
        .expect("snapshot 1 in the plan")
        .clone();
    assert_eq!(kept["keep"], true, "{out}");
    assert!(
        kept["reasons"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("retained by object lock until ")),
        "{out}"
    );
    assert_eq!(b.list(FileType::Snapshot).expect("list").len(), 2);
    // Named explicitly it is still refused (exit 19), naming it.
    let out = sg.run(["forget", &first.id]);
    out.expect_code(19);
    assert!(
        out.stderr_str().contains(&first.id[..8]),
        "{}",
        out.stderr_str()
    );

    // A pack without lock headers (what HeadObject shows without s3:GetObjectRetention; here
    // written behind SnapGuard's back): prune fails up front, naming it and the permissions.
    let stray = format!("ee{}", "0".repeat(62));
    let r = server.raw_with_body(
        "PUT",
        &format!("/refresh-bucket/repo/data/ee/{stray}"),
        &[],
        "not a pack",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let out = sg.run(["prune"]);
    let err = out.stderr_str();
    assert!(out.code.is_some_and(|c| c != 0), "{err}");
    assert!(
        err.contains(&format!("data/ee/{stray}"))
            && err.contains("shows no S3 Object Lock retention")
            && err.contains("s3:GetObjectRetention")
            && err.contains("s3:PutObjectRetention")
            && err.contains("s3:DeleteObjectVersion")
            && err.contains("s3:GetBucketObjectLockConfiguration")
            && err.contains("s3:GetBucketVersioning"),
        "{err}"
    );

    // Half the period has passed: check reports (does not fail on) the needed objects whose
    // retention ends within half a period, with the command that fixes it.
    while SystemTime::now() < written + Duration::from_secs(period / 2 + 1) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = sg.run(["check"]);
    out.expect_code(0);
    let err = out.stderr_str();
    assert!(
        err.contains("S3 Object Lock (packs)")
            && err.contains("less than half the repository's retention period")
            && err.contains("run 'snapguard object-lock refresh'"),
        "{err}"
    );

    // The refresh extends everything a restore needs to now + period; the stray pack, which
    // no index lists, is not needed and is left alone.
    let before = SystemTime::now();
    let s = sg
        .run(["--json", "object-lock", "refresh"])
        .expect_code(0)
        .json();
    let after = SystemTime::now();
    let needed = retentions_of(&b, &NEEDED).len() as u64 - 1;
    assert_eq!(s["extended"].as_u64(), Some(needed), "{s}");
    assert_eq!(s["already_retained"].as_u64(), Some(0), "{s}");
    assert_eq!(s["not_needed"].as_u64(), Some(1), "{s}");
    assert_eq!(s["by_kind"]["config"]["extended"].as_u64(), Some(1), "{s}");
    assert_eq!(
        s["by_kind"]["key slots"]["extended"].as_u64(),
        Some(1),
        "{s}"
    );
    assert_eq!(
        s["by_kind"]["snapshot files"]["extended"].as_u64(),
        Some(2),
        "{s}"
    );
    assert!(s["by_kind"]["packs"]["extended"].as_u64() >= Some(2), "{s}");
    for (path, r) in retentions_of(&b, &NEEDED) {
        if path.ends_with(&stray) {
            assert_eq!(r, None, "{path}");
            continue;
        }
        let r = r.unwrap_or_else(|| panic!("{path} has no retention"));
        assert_eq!(r.mode, RetentionMode::Compliance, "{path}");
        assert!(
            r.until + Duration::from_secs(1) >= before + Duration::from_secs(period)
                && r.until <= after + Duration::from_secs(period + 1),
            "{path}: {:?}",
            r.until
        );
    }
    assert!(!sg
        .run(["check"])
        .stderr_str()
        .contains("snapguard object-lock refresh"));
    // Run again right away: everything is retained for more than half a period, nothing is
    // sent (idempotent and cheap).
    let again = sg
        .run(["object-lock", "refresh"])
        .expect_code(0)
        .stdout_str();
    assert!(
        again.contains("0 object(s) extended to")
            && again.contains(&format!("{needed} already retained until at least"))
            && again.contains("1 not retained because no restore needs them"),
        "{again}"
    );
    // Remove the stray pack (its only version; it has no retention).
    let (_, version, _) = server
        .versions("refresh-bucket")
        .into_iter()
        .find(|(k, _, _)| k.ends_with(&stray))
        .expect("stray version");
    let r = server.raw(
        "DELETE",
        &format!("/refresh-bucket/repo/data/ee/{stray}?versionId={version}"),
        &[],
    );
    assert!(r.status == 204 || r.status == 200, "{r:?}");

    // repair index: the rebuilt index gets the retention of the locked packs it lists.
    let until = (chrono::Utc::now() + chrono::Duration::seconds(60))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    sg.run(["lock", &second.id, "--until", &until])
        .expect_code(0);
    let locked_until = retention(&b, FileType::Snapshot, &second.id)
        .expect("retained")
        .until;
    let old: Vec<String> = b
        .list(FileType::Index)
        .expect("list")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    sg.run(["repair", "index"]).expect_code(0);
    let new: Vec<String> = b
        .list(FileType::Index)
        .expect("list")
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !old.contains(n))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let r = retention(&b, FileType::Index, &new[0]).expect("retained");
    assert!(
        r.until + Duration::from_secs(1) >= locked_until,
        "index/{} retained only until {:?}, its packs until {locked_until:?}",
        new[0],
        r.until
    );
    sg.run(["check", "--read-data"]).expect_code(0);
    let target = ws.path("restore-2");
    sg.restore(&second.id, &target, &[]).expect_code(0);
    assert_same(
        &built2.tree,
        &Tree::scan(&restored_path(&target, &src2)),
        &Opts::default(),
        "restore of snapshot 2",
    );
    // A plain-disk copy of the repository (every object byte for byte): `lock` there fails
    // with a clear error before writing anything, since nothing on it can be retained.
    let copy_dir = ws.path("disk-copy");
    let disk = snapguard_backend::LocalBackend::new(&copy_dir);
    disk.create().expect("create");
    for t in NEEDED {
        for (name, _) in b.list(t).expect("list") {
            let data = b.read(t, &name).expect("read");
            if t == FileType::Config {
                disk.replace_config(&data).expect("config");
            } else {
                disk.write(t, &name, &data).expect("write");
            }
        }
    }
    let on_disk = Sg {
        repo: copy_dir.clone(),
        ..sg_at(&ws, &server, "refresh-bucket", "repo")
    };
    let annotations = disk.list(FileType::Annotation).expect("list").len();
    let out = on_disk.run(["lock", &second.id, "--for", "2d"]);
    out.expect_code(2);
    let err = out.stderr_str();
    assert!(
        err.contains("without S3 Object Lock")
            && err.contains(&second.id[..8])
            && err.contains("lock it in the S3 repository"),
        "{err}"
    );
    assert_eq!(
        disk.list(FileType::Annotation).expect("list").len(),
        annotations,
        "nothing written"
    );
    let out = on_disk.run(["object-lock", "refresh"]);
    out.expect_code(2);

    // No delete markers anywhere: nothing retained was hidden.
    assert!(server
        .versions("refresh-bucket")
        .iter()
        .all(|(_, _, marker)| !marker));
}

#[test]
fn object_lock_refresh_needs_an_object_lock_repository() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    let ws = Ws::new();
    server.create_bucket("plain-refresh", false);
    let sg = sg_at(&ws, &server, "plain-refresh", "repo");
    sg.run(INIT).expect_code(0);
    let out = sg.run(["object-lock", "refresh"]);
    out.expect_code(2);
    assert!(
        out.stderr_str().contains("not created with --object-lock"),
        "{}",
        out.stderr_str()
    );
}

#[test]
fn object_lock_init_resumes_after_an_interrupted_init() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    let ws = Ws::new();
    server.create_bucket("resume-bucket", true);
    // A complete repository, to take a key slot from.
    let donor = sg_at(&ws, &server, "resume-bucket", "donor");
    donor
        .run(INIT.iter().copied().chain(["--object-lock"]))
        .expect_code(0);
    let d = backend(&server, "resume-bucket", "donor");
    let keys = d.list(FileType::Key).expect("list");
    assert_eq!(keys.len(), 1);
    let (slot, _) = &keys[0];
    let slot_bytes = d.read(FileType::Key, slot).expect("read slot");
    // What an init interrupted after its key slot leaves: a retained key slot, no config.
    let b = backend(&server, "resume-bucket", "repo");
    b.object_lock()
        .expect("S3")
        .set_write_retention(Some(snapguard_backend::WriteRetention {
            mode: RetentionMode::Compliance,
            period: Duration::from_secs(3600),
        }));
    b.write(FileType::Key, slot, &slot_bytes)
        .expect("write slot");
    assert!(b.remove(FileType::Key, slot).is_err(), "retained");

    // Another password does not open it: refused, saying why and what to do.
    let mut other = sg_at(&ws, &server, "resume-bucket", "repo");
    other
        .extra_env
        .push(("SNAPGUARD_PASSWORD".into(), "another-password".into()));
    let out = other.run(INIT.iter().copied().chain(["--object-lock"]));
    out.expect_code(2);
    let err = out.stderr_str();
    assert!(
        err.contains("has no config but already holds 1 key slot(s)")
            && err.contains("this password does not open")
            && err.contains("run 'init' again with the password"),
        "{err}"
    );
    assert!(b.list(FileType::Config).expect("list").is_empty());

    // The same password finishes the init with that slot: no second slot, and the
    // repository works.
    let sg = sg_at(&ws, &server, "resume-bucket", "repo");
    sg.run(INIT.iter().copied().chain(["--object-lock"]))
        .expect_code(0);
    assert_eq!(
        b.list(FileType::Key).expect("list"),
        keys,
        "the interrupted init's slot was reused"
    );
    assert!(retention(&b, FileType::Config, "config").is_some());
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.random_file("a.bin", 100 << 10, 7);
    let built = fx.finish();
    let snap = sg.backup(&[&src], &[]);
    sg.run(["check", "--read-data"]).expect_code(0);
    let target = ws.path("restore");
    sg.restore(&snap.id, &target, &[]).expect_code(0);
    assert_same(
        &built.tree,
        &Tree::scan(&restored_path(&target, &src)),
        &Opts::default(),
        "restore after a resumed init",
    );
}
