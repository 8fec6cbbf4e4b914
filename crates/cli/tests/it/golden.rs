//! Golden repositories: a repository written by format version 1 (tests/fixtures/repo-v1,
//! password "golden") must stay readable by every later SnapGuard.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

fn snapguard(repo: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("snapguard").expect("binary");
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SNAPGUARD_REPOSITORY", repo)
        .env("SNAPGUARD_PASSWORD", "golden")
        // An empty config file, so that /etc/snapguard/config.toml cannot interfere.
        .env("SNAPGUARD_CONFIG", "/dev/null");
    c
}

#[test]
fn repository_format_v1_stays_readable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v1"),
        &repo,
    );

    let out = snapguard(&repo)
        .args(["snapshots", "--json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(snaps.as_array().map(Vec::len), Some(1));
    assert_eq!(snaps[0]["hostname"], "golden-host");
    assert_eq!(snaps[0]["tags"][0], "golden");
    assert_eq!(snaps[0]["time"], "2026-11-24T00:00:00Z");
    assert_eq!(snaps[0]["paths"][0], "/tmp/golden/src");

    let target = tmp.path().join("out");
    let out = snapguard(&repo)
        .args(["restore", "latest:/tmp/golden/src", "--target"])
        .arg(&target)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(target.join("docs/readme.txt")).expect("readme"),
        b"SnapGuard golden fixture v1\n"
    );
    let binary: Vec<u8> = (0..4096).flat_map(|_| 0..=255u8).collect();
    assert_eq!(
        std::fs::read(target.join("docs/binary.bin")).expect("binary"),
        binary
    );
    assert_eq!(
        std::fs::read_link(target.join("link"))
            .expect("link")
            .as_os_str()
            .as_bytes(),
        b"docs/readme.txt"
    );
    let cafe = target.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    assert_eq!(std::fs::read(&cafe).expect("non-UTF-8 name"), b"x");
    let meta = std::fs::metadata(target.join("docs/readme.txt")).expect("stat");
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1577934245, 123456789));
    let xattr = rustix::fs::getxattr(
        target.join("docs/readme.txt"),
        "user.sg",
        &mut [0u8; 64][..],
    );
    assert_eq!(xattr.ok(), Some(6));
}
