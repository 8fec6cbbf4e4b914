//! Validates the harness itself (no snapguard involved): the varied fixture
//! copied with `cp -a --sparse=always` compares equal, and every kind of
//! mutation of the copy is reported by the comparator.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{AtFlags, FileType, Mode, Timestamps, XattrFlags, CWD};

use super::acl::*;
use super::cmd::Ws;
use super::compare::{compare, Diff, Opts, Tree};
use super::fixture::{overwrite_at, ts, Fixture};
use super::{acl_xattr, bpath, is_root, varied};

fn cp_a(src: &Path, dst: &Path) {
    let out = Command::new("cp")
        .args(["-a", "--sparse=always"])
        .arg(src)
        .arg(dst)
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "cp -a failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn has(diffs: &[Diff], path: &Path, keyword: &str) -> bool {
    diffs
        .iter()
        .any(|d| d.path == path && d.what.contains(keyword))
}

fn set_times(p: &Path, at: (i64, i64), mt: (i64, i64)) {
    let stamps = Timestamps {
        last_access: ts(at),
        last_modification: ts(mt),
    };
    rustix::fs::utimensat(CWD, p, &stamps, AtFlags::SYMLINK_NOFOLLOW).expect("utimensat");
}

#[test]
fn harness_comparator_against_cp_a() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    varied::build(&mut fx);
    let built = fx.finish();
    let copy = ws.path("copy");
    cp_a(&src, &copy);

    // 0. The fixture has what it claims (xattrs, ACLs, links, holes).
    let xnames = |rel: &str| -> Vec<String> {
        built
            .tree
            .get(rel)
            .xattrs
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    };
    assert!(xnames("acl/dir").contains(&DEFAULT.to_string()));
    assert!(xnames("acl/dir/inherited").contains(&ACCESS.to_string()));
    assert!(xnames("acl/dir/pre_existing").is_empty());
    assert!(xnames("xattrs/user_bin").contains(&"user.empty".to_string()));
    if is_root() {
        assert!(xnames("xattrs/trusted").contains(&"trusted.sg_test".to_string()));
        assert!(xnames("xattrs/symlink_trusted").contains(&"trusted.sg_link".to_string()));
        assert_eq!(built.tree.get("owners/setuid_1234").mode, 0o6755);
    }
    assert_eq!(built.tree.get("hardlinks/a/h1").nlink, 3);
    assert!(built.tree.get("files/sparse").is_sparse());
    assert!(!built.tree.get("files/rand_4096").is_sparse());

    // 1. A faithful copy compares equal.
    let diffs = compare(&built.tree, &Tree::scan(&copy), &Opts::default());
    let list: Vec<String> = diffs.iter().map(|d| format!("  {d}")).collect();
    assert!(diffs.is_empty(), "cp -a copy differs:\n{}", list.join("\n"));

    // 2. Mutations of the copy are all reported.
    let c = |rel: &str| copy.join(rel);
    let mut expect: Vec<(PathBuf, &str)> = Vec::new();
    let mut want = |rel: &Path, kw: &'static str| expect.push((rel.to_path_buf(), kw));

    fs::set_permissions(c("files/text.txt"), fs::Permissions::from_mode(0o600)).expect("chmod");
    want(Path::new("files/text.txt"), "mode: expected 0644, got 0600");
    fs::set_permissions(c("modes/file_4755"), fs::Permissions::from_mode(0o755)).expect("chmod");
    want(
        Path::new("modes/file_4755"),
        "mode: expected 4755, got 0755",
    );

    let t = built.times[Path::new("files/rand_4096")];
    let orig = fs::read(src.join("files/rand_4096")).expect("read")[100];
    overwrite_at(&c("files/rand_4096"), 100, &[!orig]).expect("write");
    set_times(&c("files/rand_4096"), t.0, t.1);
    want(
        Path::new("files/rand_4096"),
        "content differs at byte offset 100",
    );

    fs::write(c("files/one_byte"), b"xy").expect("write");
    want(Path::new("files/one_byte"), "size: expected 1, got 2");

    let t = built.times[Path::new("files/rand_4095")];
    set_times(
        &c("files/rand_4095"),
        t.0,
        (t.1 .0, (t.1 .1 + 1) % 1_000_000_000),
    );
    want(Path::new("files/rand_4095"), "mtime");
    let t = built.times[Path::new("files/empty")];
    set_times(&c("files/empty"), (t.0 .0 - 1, t.0 .1), t.1);
    want(Path::new("files/empty"), "atime");
    let t = built.times[Path::new("empty/e1")];
    set_times(&c("empty/e1"), t.0, (t.1 .0 + 1, t.1 .1));
    want(Path::new("empty/e1"), "mtime");
    let t = built.times[Path::new("links/dangling")];
    set_times(&c("links/dangling"), t.0, (t.1 .0 + 1, t.1 .1));
    want(Path::new("links/dangling"), "mtime");

    let set = |rel: &str, name: &str, v: &[u8]| {
        rustix::fs::lsetxattr(c(rel), name, v, XattrFlags::empty()).expect("setxattr")
    };
    set("xattrs/user_bin", "user.text", b"hellO");
    want(Path::new("xattrs/user_bin"), "xattr b\"user.text\"");
    rustix::fs::lremovexattr(c("xattrs/user_bin"), "user.empty").expect("removexattr");
    want(
        Path::new("xattrs/user_bin"),
        "xattr b\"user.empty\" missing",
    );
    set("files/empty", "user.new", b"1");
    want(Path::new("files/empty"), "unexpected xattr b\"user.new\"");
    let acl = acl_xattr(&[
        (USER_OBJ, 6, UNDEFINED_ID),
        (USER, 4, 1234),
        (GROUP_OBJ, 4, UNDEFINED_ID),
        (GROUP, 6, 5678),
        (MASK, 7, UNDEFINED_ID),
        (OTHER, 0, UNDEFINED_ID),
    ]);
    set("acl/file_access", ACCESS, &acl);
    want(
        Path::new("acl/file_access"),
        "xattr b\"system.posix_acl_access\"",
    );
    rustix::fs::lremovexattr(c("acl/dir"), DEFAULT).expect("removexattr");
    want(
        Path::new("acl/dir"),
        "xattr b\"system.posix_acl_default\" missing",
    );

    fs::remove_file(c("links/relative")).expect("rm");
    std::os::unix::fs::symlink("target_filE", c("links/relative")).expect("symlink");
    want(Path::new("links/relative"), "symlink target");

    fs::remove_file(c("hardlinks/b/h3")).expect("rm");
    fs::copy(c("hardlinks/a/h1"), c("hardlinks/b/h3")).expect("copy");
    want(Path::new("hardlinks/b/h3"), "hardlink group");
    want(Path::new("hardlinks/a/h1"), "nlink: expected 3, got 2");
    fs::hard_link(c("hardlinks/pair_same_content"), c("hardlinks/extra_link")).expect("link");
    want(Path::new("hardlinks/pair_same_content"), "hardlink group");
    want(Path::new("hardlinks/extra_link"), "unexpected extra entry");

    let dense = fs::read(c("files/sparse")).expect("read");
    fs::remove_file(c("files/sparse")).expect("rm");
    fs::write(c("files/sparse"), &dense).expect("write");
    want(Path::new("files/sparse"), "sparse layout");
    want(Path::new("files/sparse"), "not sparse");

    let nl = Path::new("names").join(bpath(b"new\nline"));
    fs::remove_file(copy.join(&nl)).expect("rm");
    want(&nl, "missing from restored tree");

    fs::remove_file(c("special/fifo")).expect("rm");
    fs::write(c("special/fifo"), b"").expect("write");
    want(
        Path::new("special/fifo"),
        "file type: expected Fifo, got File",
    );

    if is_root() {
        std::os::unix::fs::lchown(c("owners/nobody"), Some(1), Some(1)).expect("chown");
        want(Path::new("owners/nobody"), "owner");
        fs::remove_file(c(varied::DEVICE_CHAR)).expect("rm");
        rustix::fs::mknodat(
            CWD,
            c(varied::DEVICE_CHAR),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o640),
            rustix::fs::makedev(1, 5),
        )
        .expect("mknod");
        want(
            Path::new(varied::DEVICE_CHAR),
            "rdev: expected 1:3, got 1:5",
        );
    }

    let diffs = compare(&built.tree, &Tree::scan(&copy), &Opts::default());
    let list: Vec<String> = diffs.iter().map(|d| format!("  {d}")).collect();
    let missed: Vec<String> = expect
        .iter()
        .filter(|(p, kw)| !has(&diffs, p, kw))
        .map(|(p, kw)| format!("  {p:?}: {kw}"))
        .collect();
    assert!(
        missed.is_empty(),
        "comparator missed mutations:\n{}\nit reported:\n{}",
        missed.join("\n"),
        list.join("\n")
    );
}
