//! The backend test matrix: one test body, [`exercise`], run against every backend
//! (the local directory, S3 through a real `s3s-fs` server and SFTP through a real sshd), so
//! they keep one contract:
//! layout, ranges, write-once, missing objects, `replace_config`, and a dropped connection.

#[path = "support/s3_server.rs"]
mod s3_server;
#[path = "../../cli/tests/it/support/sshd.rs"]
#[allow(dead_code)]
mod sshd;

use s3_server::S3Server;
use snapguard_backend::{
    Backend, BackendError, FileType, LocalBackend, OpendalBackend, RemoteOptions, S3Config,
    SftpConfig,
};
use std::time::Duration;

/// A way to cut a backend off its server and bring it back (remote backends only).
trait Outage {
    fn stop(&mut self);
    fn start(&mut self);
}

impl Outage for sshd::Sshd {
    fn stop(&mut self) {
        self.kill_all();
    }
    fn start(&mut self) {
        self.restart();
    }
}

impl Outage for S3Server {
    fn stop(&mut self) {
        self.kill();
    }
    fn start(&mut self) {
        self.restart();
    }
}

const PACK: &str = "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
const SNAP: &str = "5a0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

fn is_not_found(r: Result<impl std::fmt::Debug, BackendError>) -> bool {
    matches!(r, Err(BackendError::NotFound { .. }))
}

/// The one test body every backend must pass.
fn exercise(b: &dyn Backend, outage: Option<&mut dyn Outage>) {
    // A fresh location: nothing listed, nothing readable.
    for t in FileType::ALL {
        assert_eq!(b.list(t).expect("list of an empty repository"), vec![]);
    }
    assert!(is_not_found(b.read(FileType::Config, "config")));
    b.create().expect("create");

    // Write and read back every type, at LocalBackend's paths.
    let pack: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    b.write(FileType::Config, "config", b"config v1")
        .expect("write config");
    b.write(FileType::Pack, PACK, &pack).expect("write pack");
    b.write(FileType::Snapshot, SNAP, b"snapshot")
        .expect("write snapshot");
    for t in [
        FileType::Key,
        FileType::Index,
        FileType::Lock,
        FileType::Annotation,
    ] {
        b.write(t, "0011", t.dir().as_bytes()).expect("write");
        assert_eq!(b.read(t, "0011").expect("read"), t.dir().as_bytes());
    }
    assert_eq!(b.read(FileType::Pack, PACK).expect("read pack"), pack);
    assert_eq!(
        b.read(FileType::Config, "config").expect("read"),
        b"config v1"
    );

    // A second create refuses an existing repository.
    assert!(matches!(
        b.create(),
        Err(BackendError::AlreadyExists { .. })
    ));

    // Ranges: the middle, the end, empty, past the end.
    assert_eq!(
        b.read_range(FileType::Pack, PACK, 1000, 5000)
            .expect("range"),
        pack[1000..6000]
    );
    assert_eq!(
        b.read_range(FileType::Pack, PACK, 299_990, 10)
            .expect("range"),
        pack[299_990..]
    );
    assert_eq!(
        b.read_range(FileType::Pack, PACK, 10, 0)
            .expect("empty range"),
        b""
    );
    match b.read_range(FileType::Pack, PACK, 299_990, 20) {
        Err(BackendError::ShortRead {
            expected: 20,
            found: 10,
            path,
            ..
        }) => assert!(path.contains(PACK), "{path}"),
        other => panic!("range past the end: {other:?}"),
    }
    assert!(matches!(
        b.read_range(FileType::Pack, PACK, 400_000, 20),
        Err(BackendError::ShortRead { found: 0, .. })
    ));

    // Sizes and listings (packs live in data/XX/ but are listed by name).
    assert_eq!(b.size(FileType::Pack, PACK).expect("size"), 300_000);
    assert_eq!(
        b.list(FileType::Pack).expect("list"),
        vec![(PACK.to_string(), 300_000)]
    );
    assert_eq!(
        b.list(FileType::Snapshot).expect("list"),
        vec![(SNAP.to_string(), 8)]
    );
    assert_eq!(
        b.list(FileType::Config).expect("list"),
        vec![("config".to_string(), 9)]
    );
    b.write(FileType::Lock, "0022", b"x").expect("write");
    assert_eq!(
        b.list(FileType::Lock).expect("list"),
        vec![("0011".to_string(), 5), ("0022".to_string(), 1)]
    );

    // Write-once: a different content under an existing name is refused, the first stays.
    match b.write(FileType::Snapshot, SNAP, b"other") {
        Err(BackendError::AlreadyExists { path }) => assert!(path.contains(SNAP), "{path}"),
        other => panic!("second write: {other:?}"),
    }
    assert_eq!(b.read(FileType::Snapshot, SNAP).expect("read"), b"snapshot");
    // The identical bytes again (what a retried upload looks like): refused locally, accepted
    // by remote backends; either way the file is unchanged.
    match b.write(FileType::Snapshot, SNAP, b"snapshot") {
        Ok(()) | Err(BackendError::AlreadyExists { .. }) => {}
        Err(e) => panic!("identical second write: {e}"),
    }
    assert_eq!(b.read(FileType::Snapshot, SNAP).expect("read"), b"snapshot");
    assert!(matches!(
        b.write(FileType::Config, "config", b"config v2"),
        Err(BackendError::AlreadyExists { .. })
    ));

    // replace_config is the one overwrite.
    b.replace_config(b"config v2, longer").expect("replace");
    assert_eq!(
        b.read(FileType::Config, "config").expect("read"),
        b"config v2, longer"
    );
    assert_eq!(b.size(FileType::Config, "config").expect("size"), 17);

    // Missing objects are NotFound, naming the object, for every read.
    let missing = "ff00000000000000000000000000000000000000000000000000000000000000";
    match b.read(FileType::Pack, missing) {
        Err(BackendError::NotFound { path }) => assert!(path.contains(missing), "{path}"),
        other => panic!("missing pack: {other:?}"),
    }
    assert!(is_not_found(b.read_range(FileType::Pack, missing, 0, 1)));
    assert!(is_not_found(b.size(FileType::Index, missing)));

    // Remove; a missing file is either gone already or NotFound, never another error.
    b.remove(FileType::Lock, "0022").expect("remove");
    assert!(is_not_found(b.read(FileType::Lock, "0022")));
    assert_eq!(
        b.list(FileType::Lock).expect("list"),
        vec![("0011".to_string(), 5)]
    );
    match b.remove(FileType::Lock, "0022") {
        Ok(()) | Err(BackendError::NotFound { .. }) => {}
        Err(e) => panic!("removing a missing file: {e}"),
    }

    let Some(outage) = outage else { return };

    // A dropped connection: every call fails with an error naming the object, nothing panics.
    outage.stop();
    match b.read(FileType::Snapshot, SNAP) {
        Ok(_) => panic!("read with the server down succeeded"),
        Err(e @ BackendError::NotFound { .. }) => panic!("server down reported as {e}"),
        Err(e) => assert!(e.to_string().contains(SNAP), "{e}"),
    }
    let err = b
        .write(FileType::Snapshot, "5b00", b"during the outage")
        .expect_err("write with the server down");
    assert!(err.to_string().contains("snapshots/5b00"), "{err}");
    assert!(b.list(FileType::Snapshot).is_err());
    outage.start();
    assert_eq!(
        b.read(FileType::Snapshot, SNAP)
            .expect("read after restart"),
        b"snapshot"
    );
    b.write(FileType::Snapshot, "5b00", b"after the outage")
        .expect("write after restart");
}

#[test]
fn local_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(dir.path().join("repo"));
    exercise(&b, None);
}

fn s3_backend(server: &S3Server, prefix: &str, opts: &RemoteOptions) -> OpendalBackend {
    let mut cfg = S3Config::parse(&server.url(prefix)["s3:".len()..]).expect("URL");
    cfg.access_key_id = Some(s3_server::ACCESS_KEY.into());
    cfg.secret_access_key = Some(s3_server::SECRET_KEY.into());
    OpendalBackend::s3(&cfg, opts).expect("backend")
}

/// Few, quick retries so the outage is reported in seconds.
fn quick() -> RemoteOptions {
    RemoteOptions {
        connections: 4,
        retries: 1,
        io_timeout: Duration::from_secs(10),
    }
}

#[test]
fn s3_backend_keeps_the_contract() {
    let Some(mut server) = S3Server::start() else {
        return;
    };
    let b = s3_backend(&server, "repo/nested", &quick());
    exercise(&b, Some(&mut server));
    // The bucket holds LocalBackend's layout under the prefix, as plain files.
    let root = server.bucket_dir().join("repo/nested");
    assert!(root.join("config").is_file());
    assert!(root.join(FileType::Pack.path(PACK)).is_file());
    assert!(root.join(FileType::Snapshot.path(SNAP)).is_file());
}

/// A request that fails while the server restarts is retried with backoff and succeeds.
#[test]
fn s3_transient_failures_are_retried() {
    let Some(mut server) = S3Server::start() else {
        return;
    };
    let opts = RemoteOptions {
        retries: 6,
        ..quick()
    };
    let b = s3_backend(&server, "retry", &opts);
    b.create().expect("create");
    b.write(FileType::Index, "0a", b"index").expect("write");
    server.kill();
    let port = server.port;
    std::thread::scope(|s| {
        let reader = s.spawn(|| b.read(FileType::Index, "0a"));
        std::thread::sleep(Duration::from_millis(1500));
        // Nothing can listen on the port while the server is down: the reader is retrying.
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        server.restart();
        let got = reader.join().expect("reader thread");
        assert_eq!(got.expect("read across a restart"), b"index");
    });
}

#[test]
fn s3_missing_bucket_and_wrong_credentials_are_named() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let mut cfg = S3Config::parse(&format!("{}/no-such-bucket/r", server.endpoint())).expect("URL");
    cfg.access_key_id = Some(s3_server::ACCESS_KEY.into());
    cfg.secret_access_key = Some(s3_server::SECRET_KEY.into());
    let b = OpendalBackend::s3(&cfg, &quick()).expect("backend");
    let e = b.create().expect_err("create in a missing bucket");
    assert!(matches!(e, BackendError::BucketMissing { .. }), "{e:?}");
    assert!(e.to_string().contains("no-such-bucket"), "{e}");

    let mut cfg = S3Config::parse(&server.url("r")["s3:".len()..]).expect("URL");
    cfg.access_key_id = Some(s3_server::ACCESS_KEY.into());
    cfg.secret_access_key = Some("wrong".into());
    let b = OpendalBackend::s3(&cfg, &quick()).expect("backend");
    let e = b
        .read(FileType::Config, "config")
        .expect_err("wrong secret");
    assert!(matches!(e, BackendError::Remote { .. }), "{e:?}");
    assert!(e.to_string().contains("credentials"), "{e}");
    assert!(e.to_string().contains("/r/config"), "{e}");
}

#[test]
fn sftp_backend_keeps_the_contract() {
    let Some(mut server) = sshd::Sshd::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    let url = format!("root@127.0.0.1:{}{}", server.port, root.display());
    let mut cfg = SftpConfig::parse(&url).expect("URL");
    // The key the test sshd accepts (`ssh -i KEY`); its host key is new for every run.
    cfg.key = Some(server.ssh_args()[2].clone());
    cfg.known_hosts_strategy = Some("accept".into());
    let b = OpendalBackend::sftp(&cfg, &quick()).expect("backend");
    exercise(&b, Some(&mut server));
    // The server's directory holds LocalBackend's layout, without temporary files.
    assert!(root.join("config").is_file());
    assert!(root.join(FileType::Pack.path(PACK)).is_file());
    let local = LocalBackend::new(&root);
    assert_eq!(
        local.list(FileType::Snapshot).expect("list"),
        b.list(FileType::Snapshot).expect("list")
    );
    for t in FileType::ALL {
        let d = root.join(t.dir());
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            assert!(
                !e.file_name().to_string_lossy().starts_with(".tmp-"),
                "left over: {:?}",
                e.path()
            );
        }
    }
}
