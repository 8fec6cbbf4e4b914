//! S3 Object Lock against a server that enforces it (moto): retention on write, reading and
//! extending it, removals that leave retained objects in place, and proof that the server
//! itself refuses to delete a retained version.

#[path = "support/moto_server.rs"]
mod moto_server;

use moto_server::MotoServer;
use snapguard_backend::{
    Backend, BackendError, BucketLock, FileType, ObjectLock, OpendalBackend, RemoteOptions,
    RetentionMode, S3Config, WriteRetention,
};
use std::time::{Duration, SystemTime};

fn backend(server: &MotoServer, bucket: &str, prefix: &str) -> OpendalBackend {
    let mut cfg = S3Config::parse(&server.url(bucket, prefix)["s3:".len()..]).expect("URL");
    cfg.access_key_id = Some(moto_server::ACCESS_KEY.into());
    cfg.secret_access_key = Some(moto_server::SECRET_KEY.into());
    let opts = RemoteOptions {
        connections: 4,
        retries: 1,
        io_timeout: Duration::from_secs(20),
    };
    OpendalBackend::s3(&cfg, &opts).expect("backend")
}

fn lock(b: &OpendalBackend) -> &dyn ObjectLock {
    b.object_lock().expect("S3 backends have object lock")
}

#[test]
fn bucket_without_object_lock_is_detected() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    server.create_bucket("plain-bucket", false);
    server.create_bucket("locked-bucket", true);
    assert_eq!(
        lock(&backend(&server, "plain-bucket", "r"))
            .bucket_lock()
            .expect("GetObjectLockConfiguration"),
        BucketLock::default()
    );
    assert_eq!(
        lock(&backend(&server, "locked-bucket", "r"))
            .bucket_lock()
            .expect("GetObjectLockConfiguration"),
        BucketLock {
            enabled: true,
            default_retention: None
        }
    );
    server.create_bucket("rule-bucket", true);
    server.set_default_retention("rule-bucket", 3);
    assert_eq!(
        lock(&backend(&server, "rule-bucket", "r"))
            .bucket_lock()
            .expect("GetObjectLockConfiguration")
            .default_retention
            .as_deref(),
        Some("GOVERNANCE 3d")
    );
    let e = lock(&backend(&server, "no-such-bucket", "r"))
        .bucket_lock()
        .expect_err("missing bucket");
    assert!(matches!(e, BackendError::BucketMissing { .. }), "{e}");
}

#[test]
fn retained_objects_are_written_extended_and_never_deleted() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    server.create_bucket("lock-test", true);
    let b = backend(&server, "lock-test", "repo/one");
    b.create().expect("create");
    // Before a retention is armed, writes are plain.
    b.write(FileType::Lock, "l1", b"lock file").expect("write");
    assert_eq!(
        lock(&b).retention(FileType::Lock, "l1").expect("head"),
        None
    );

    let t0 = SystemTime::now();
    lock(&b).set_write_retention(Some(WriteRetention {
        mode: RetentionMode::Compliance,
        period: Duration::from_secs(3600),
    }));
    let pack = "ab".repeat(32);
    b.write(FileType::Pack, &pack, b"pack bytes")
        .expect("write pack");
    b.write(FileType::Snapshot, "s1", b"snapshot")
        .expect("write snapshot");
    b.write(FileType::Lock, "l2", b"lock").expect("write lock");
    b.replace_config(b"config v1").expect("config");
    for (t, name) in [
        (FileType::Pack, pack.as_str()),
        (FileType::Snapshot, "s1"),
        (FileType::Config, "config"),
    ] {
        let r = lock(&b)
            .retention(t, name)
            .expect("head")
            .unwrap_or_else(|| panic!("{name} has no retention"));
        assert_eq!(r.mode, RetentionMode::Compliance);
        let left = r.until.duration_since(t0).expect("in the future");
        assert!(
            left >= Duration::from_secs(3590) && left <= Duration::from_secs(3700),
            "{name}: {left:?}"
        );
    }
    // Lock files must stay deletable: never retained.
    assert_eq!(
        lock(&b).retention(FileType::Lock, "l2").expect("head"),
        None
    );
    b.remove(FileType::Lock, "l2")
        .expect("lock files are deletable");
    assert!(matches!(
        lock(&b).retention(FileType::Lock, "l2"),
        Err(BackendError::NotFound { .. })
    ));

    // Write-once holds with retention: a different body under the same name is refused, the
    // same body (a retried upload) is accepted.
    assert!(matches!(
        b.write(FileType::Pack, &pack, b"other bytes"),
        Err(BackendError::AlreadyExists { .. })
    ));
    b.write(FileType::Pack, &pack, b"pack bytes")
        .expect("a retried identical upload succeeds");
    assert_eq!(b.read(FileType::Pack, &pack).expect("read"), b"pack bytes");

    // A removal of a retained object is refused by SnapGuard before any DELETE is sent, and
    // the object stays listed and readable (no delete marker).
    let e = b.remove(FileType::Pack, &pack).expect_err("retained");
    match &e {
        BackendError::RetentionLocked { path, until } => {
            assert!(path.ends_with(&format!("data/ab/{pack}")), "{path}");
            assert!(until.starts_with("20"), "{until}");
        }
        other => panic!("expected RetentionLocked, got {other}"),
    }
    assert!(
        e.to_string().contains("protected by S3 Object Lock until"),
        "{e}"
    );
    assert_eq!(b.list(FileType::Pack).expect("list").len(), 1);
    assert!(
        server
            .versions("lock-test")
            .iter()
            .all(|(_, _, marker)| !marker),
        "no delete marker was created"
    );

    // The server itself refuses deleting the retained version: the protection does not
    // depend on SnapGuard's own check.
    let key = format!("/lock-test/repo/one/data/ab/{pack}");
    let head = server.raw("HEAD", &key, &[]);
    let version = head
        .header("x-amz-version-id")
        .unwrap_or_else(|| panic!("versioned: {head:?}"))
        .to_string();
    let del = server.raw("DELETE", &format!("{key}?versionId={version}"), &[]);
    assert_eq!(del.status, 403, "the server must refuse: {del:?}");
    // The same request for a version without retention succeeds: the refusal above is the
    // lock, not the request.
    let plain = "/lock-test/repo/one/locks/l1";
    let head = server.raw("HEAD", plain, &[]);
    let version = head
        .header("x-amz-version-id")
        .expect("versioned")
        .to_string();
    let del = server.raw("DELETE", &format!("{plain}?versionId={version}"), &[]);
    assert_eq!(del.status, 204, "{del:?}");
    assert_eq!(
        b.read(FileType::Pack, &pack).expect("still there"),
        b"pack bytes"
    );

    // Extending raises the date, never lowers it, and is idempotent.
    let objects = vec![
        (FileType::Pack, pack.clone()),
        (FileType::Snapshot, "s1".to_string()),
    ];
    let later = SystemTime::now() + Duration::from_secs(7 * 86_400);
    let r = lock(&b).extend_retention(&objects, later).expect("extend");
    assert_eq!((r.extended, r.unchanged), (2, 0));
    let r = lock(&b).extend_retention(&objects, later).expect("again");
    assert_eq!((r.extended, r.unchanged), (0, 2));
    let earlier = SystemTime::now() + Duration::from_secs(86_400);
    let r = lock(&b)
        .extend_retention(&objects, earlier)
        .expect("shorter");
    assert_eq!((r.extended, r.unchanged), (0, 2), "never shortened");
    let until = lock(&b)
        .retention(FileType::Pack, &pack)
        .expect("head")
        .expect("retained")
        .until;
    assert!(until + Duration::from_secs(1) >= later, "{until:?}");
    // Many objects at once go through the bounded pool.
    let mut many = Vec::new();
    for i in 0..40 {
        let name = format!("{i:02x}{}", "0".repeat(62));
        b.write(FileType::Pack, &name, format!("pack {i}").as_bytes())
            .expect("write");
        many.push((FileType::Pack, name));
    }
    let r = lock(&b)
        .extend_retention(&many, later)
        .expect("extend many");
    assert_eq!((r.extended, r.unchanged), (40, 0));
    let missing = vec![(FileType::Pack, "ff".repeat(32))];
    assert!(matches!(
        lock(&b).extend_retention(&missing, later),
        Err(BackendError::NotFound { .. })
    ));
}

#[test]
fn expired_retention_is_deleted_for_good() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    server.create_bucket("expiry-test", true);
    let b = backend(&server, "expiry-test", "");
    b.create().expect("create");
    lock(&b).set_write_retention(Some(WriteRetention {
        mode: RetentionMode::Governance,
        period: Duration::from_secs(2),
    }));
    b.write(FileType::Index, "i1", b"index").expect("write");
    assert!(matches!(
        b.remove(FileType::Index, "i1"),
        Err(BackendError::RetentionLocked { .. })
    ));
    std::thread::sleep(Duration::from_secs(4));
    b.remove(FileType::Index, "i1")
        .expect("deletable once the retention ended");
    assert!(b.list(FileType::Index).expect("list").is_empty());
    // The version itself is gone, not hidden behind a delete marker.
    assert!(
        server.versions("expiry-test").is_empty(),
        "{:?}",
        server.versions("expiry-test")
    );
    // Removing what is not there is not an error (like the other backends).
    b.remove(FileType::Index, "i1").expect("gone is gone");
}

#[test]
fn null_version_is_deleted_by_its_version_id() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    // An object written while the bucket was not versioned has the version id "null"; once
    // versioning is on, a DELETE without a version id only hides it behind a delete marker.
    server.create_bucket("null-test", false);
    let b = backend(&server, "null-test", "repo");
    b.create().expect("create");
    b.write(FileType::Lock, "l1", b"lock").expect("write");
    let r = server.raw_with_body(
        "PUT",
        "/null-test?versioning",
        &[],
        "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>",
    );
    assert_eq!(r.status, 200, "{r:?}");
    // (moto leaves the x-amz-version-id header out for it; AWS sends "null".)
    let head = server.raw("HEAD", "/null-test/repo/locks/l1", &[]);
    assert!(
        matches!(head.header("x-amz-version-id"), None | Some("null")),
        "{head:?}"
    );
    lock(&b).set_write_retention(Some(WriteRetention {
        mode: RetentionMode::Governance,
        period: Duration::from_secs(60),
    }));
    b.remove(FileType::Lock, "l1").expect("remove");
    // Deleted for good: no version and no delete marker left.
    assert!(
        server.versions("null-test").is_empty(),
        "{:?}",
        server.versions("null-test")
    );
}

#[test]
fn retained_types_without_lock_headers_are_an_error() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    server.create_bucket("headers-test", true);
    let b = backend(&server, "headers-test", "repo");
    b.create().expect("create");
    // Written without a retention (as HeadObject shows every object to credentials without
    // s3:GetObjectRetention).
    b.write(FileType::Index, "i1", b"index")
        .expect("plain write");
    b.write(FileType::Lock, "l1", b"lock").expect("plain write");
    lock(&b).set_write_retention(Some(WriteRetention {
        mode: RetentionMode::Compliance,
        period: Duration::from_secs(60),
    }));
    for e in [
        lock(&b)
            .retention(FileType::Index, "i1")
            .expect_err("no headers"),
        b.remove(FileType::Index, "i1")
            .expect_err("not deleted blindly"),
    ] {
        match &e {
            BackendError::RetentionMissing { path, kind } => {
                assert!(path.ends_with("repo/index/i1"), "{path}");
                assert_eq!(kind, "index file");
            }
            other => panic!("expected RetentionMissing, got {other}"),
        }
        let msg = e.to_string();
        for perm in [
            "s3:GetObjectRetention",
            "s3:PutObjectRetention",
            "s3:DeleteObjectVersion",
            "s3:GetBucketObjectLockConfiguration",
            "s3:GetBucketVersioning",
        ] {
            assert!(msg.contains(perm), "{msg}");
        }
    }
    assert_eq!(b.list(FileType::Index).expect("list").len(), 1);
    // Lock files are never retained: no error, and they are deleted.
    assert_eq!(
        lock(&b).retention(FileType::Lock, "l1").expect("head"),
        None
    );
    b.remove(FileType::Lock, "l1").expect("remove lock file");
}

#[test]
fn large_retained_uploads_get_time_for_their_body() {
    let Some(server) = MotoServer::start() else {
        return;
    };
    server.create_bucket("big-test", true);
    let mut cfg = S3Config::parse(&server.url("big-test", "repo")["s3:".len()..]).expect("URL");
    cfg.access_key_id = Some(moto_server::ACCESS_KEY.into());
    cfg.secret_access_key = Some(moto_server::SECRET_KEY.into());
    // An I/O timeout far shorter than the upload of a big pack to this (Python) server takes:
    // the whole request may take the timeout plus the body at 64 KiB/s.
    let opts = RemoteOptions {
        connections: 2,
        retries: 0,
        io_timeout: Duration::from_millis(100),
    };
    let b = OpendalBackend::s3(&cfg, &opts).expect("backend");
    b.create().expect("create");
    lock(&b).set_write_retention(Some(WriteRetention {
        mode: RetentionMode::Governance,
        period: Duration::from_secs(60),
    }));
    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let name = "cd".repeat(32);
    let t0 = std::time::Instant::now();
    b.write(FileType::Pack, &name, &data)
        .expect("a big pack uploads although it takes longer than the I/O timeout");
    eprintln!("64 MiB retained upload took {:?}", t0.elapsed());
    assert_eq!(
        b.size(FileType::Pack, &name).expect("size"),
        data.len() as u64
    );
}
