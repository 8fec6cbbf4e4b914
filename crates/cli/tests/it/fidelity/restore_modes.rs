//! Restore variants: as a non-root user, a single file, a subtree, with
//! --include/--exclude, --dry-run, and `dump`.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::cmd::{run_cmd, spec, Sg, Ws};
use crate::support::compare::{assert_same, compare_content, Opts, Tree};
use crate::support::fixture::Fixture;
use crate::support::varied::{self, KIB, MIB};
use crate::support::{bpath, chown_tree, is_root, restored_path};

use super::assert_backup_clean;

const NOBODY: u32 = 65534;

#[test]
fn restore_as_non_root_restores_what_it_can_and_exits_16() {
    let have_setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !is_root() || !have_setpriv {
        eprintln!("skipped: needs root and setpriv (util-linux) to switch to uid {NOBODY}");
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    varied::modes(&mut fx);
    varied::owners(&mut fx);
    varied::links(&mut fx);
    varied::hardlinks(&mut fx);
    varied::special(&mut fx);
    varied::xattrs(&mut fx);
    varied::acls(&mut fx);
    fx.random_file("plain", 200 * KIB, 8);
    let built = fx.finish();
    let mut sg = Sg::init(&ws, None);
    let b = sg.backup(&[&src], &[]);
    assert_backup_clean(&b);

    // The unprivileged user can read the repository and the binary (a copy,
    // in case the build directory is not reachable), and owns the cache and
    // the target.
    fs::set_permissions(&ws.root, fs::Permissions::from_mode(0o755)).expect("chmod ws");
    let bin_copy = ws.path("snapguard");
    fs::copy(&sg.bin, &bin_copy).expect("copy binary");
    fs::set_permissions(&bin_copy, fs::Permissions::from_mode(0o755)).expect("chmod binary");
    sg.bin = bin_copy;
    chown_tree(&sg.repo, NOBODY, NOBODY);
    chown_tree(&sg.cache, NOBODY, NOBODY);
    let target = ws.path("restore");
    fs::create_dir(&target).expect("mkdir target");
    chown_tree(&target, NOBODY, NOBODY);
    sg.wrapper = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    sg.extra_env
        .push(("HOME".into(), sg.cache.clone().into_os_string()));

    let out = sg.restore(&b.id, &target, &[]);
    out.expect_code(16);
    eprintln!("unprivileged restore output:\n{out}");
    let stderr = out.stderr_str();
    for must in ["char_1_3", "block_7_200", "xattrs/trusted", "u1234_g5678"] {
        assert!(
            stderr.contains(must),
            "stderr of unprivileged restore does not mention {must:?}\n{out}"
        );
    }
    let restored = restored_path(&target, &src);
    let opts = Opts {
        owner: false,
        ignore_xattrs: vec!["trusted.".into(), "security.".into()],
        allow_missing: vec![
            varied::DEVICE_CHAR.into(),
            varied::DEVICE_BLOCK.into(),
            "special/char_big".into(),
        ],
        ..Opts::default()
    };
    let actual = Tree::scan(&restored);
    assert_same(&built.tree, &actual, &opts, "restore as uid 65534");
    let wrong_owner: Vec<_> = actual
        .entries
        .iter()
        .filter(|(_, e)| (e.uid, e.gid) != (NOBODY, NOBODY))
        .map(|(p, e)| format!("{p:?} {}:{}", e.uid, e.gid))
        .collect();
    assert!(
        wrong_owner.is_empty(),
        "not owned by the restoring user: {wrong_owner:?}"
    );
}

#[test]
fn restore_single_file_and_subtree_by_path() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.random_file("dir/file.bin", 200 * KIB, 31);
    fx.mode("dir/file.bin", 0o640);
    fx.times(
        "dir/file.bin",
        (-1_234_567_891, 876_543_211),
        (4_102_444_800, 999_999_999),
    );
    fx.xattr("dir/file.bin", "user.k", b"v");
    fx.file("sub/a.txt", b"a");
    fx.random_file("sub/nested/b.bin", 3 * MIB, 32);
    fx.symlink("sub/link", "a.txt");
    fx.file("sub/hl1", b"hardlinked");
    fx.hardlink("sub/hl2", "sub/hl1");
    fx.dir("sub/empty");
    fx.file("other/c", b"c");
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&src], &[]);
    assert_backup_clean(&b);

    // A single file, by unique id prefix: DIR/file.bin.
    let t1 = ws.path("t1");
    sg.restore(spec(&b.id[..8], &src.join("dir/file.bin")), &t1, &[])
        .expect_code(0);
    let opts = Opts {
        root_meta: false,
        ..Opts::default()
    };
    assert_same(
        &built.tree.subtree("dir"),
        &Tree::scan(&t1),
        &opts,
        "single file restore",
    );

    // A subtree, by `latest`: its contents directly in DIR.
    let t2 = ws.path("t2");
    sg.restore(spec("latest", &src.join("sub")), &t2, &[])
        .expect_code(0);
    assert_same(
        &built.tree.subtree("sub"),
        &Tree::scan(&t2),
        &opts,
        "subtree restore",
    );

    // The full id works too.
    let t3 = ws.path("t3");
    sg.restore(spec(&b.id, &src.join("other/c")), &t3, &[])
        .expect_code(0);
    assert_eq!(fs::read(t3.join("c")).expect("read c"), b"c");
}

#[test]
fn restore_single_file_with_non_utf8_name() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file(Path::new("d").join(bpath(b"caf\xe9")), b"non-utf8 name");
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&src], &[]);
    assert_backup_clean(&b);
    let t = ws.path("t");
    sg.restore(spec(&b.id, &src.join("d").join(bpath(b"caf\xe9"))), &t, &[])
        .expect_code(0);
    let opts = Opts {
        root_meta: false,
        ..Opts::default()
    };
    assert_same(
        &built.tree.subtree("d"),
        &Tree::scan(&t),
        &opts,
        "single non-UTF-8 file",
    );
}

/// Restoring part of a hardlink group: the members that are restored still
/// get the content (and share an inode among themselves).
#[test]
fn restore_partial_hardlink_groups() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    varied::hardlinks(&mut fx);
    fx.hardlink("hardlinks/b/h4", "hardlinks/a/h1");
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&src], &[]);
    assert_backup_clean(&b);
    let opts = Opts {
        root_meta: false,
        nlink: false,
        ..Opts::default()
    };
    // Only directory b (h3 and h4 link to a/h1, a/h2 which are not restored).
    let t = ws.path("only_b");
    sg.restore(spec(&b.id, &src.join("hardlinks/b")), &t, &[])
        .expect_code(0);
    assert_same(
        &built.tree.subtree("hardlinks/b"),
        &Tree::scan(&t),
        &opts,
        "subtree b of a link group",
    );
    // Everything but directory a.
    let t = ws.path("without_a");
    sg.restore(&b.id, &t, &["--exclude", "**/hardlinks/a"])
        .expect_code(0);
    let root = restored_path(&t, &src);
    let mut expected = built.tree.subtree("");
    expected
        .entries
        .retain(|p, _| !p.starts_with("hardlinks/a"));
    let opts = Opts {
        nlink: false,
        ..Opts::default()
    };
    let mut actual = Tree::scan(&root);
    // Directory mtimes/atimes of the tree root are not at stake here.
    actual.entries.remove(Path::new(""));
    expected.entries.remove(Path::new(""));
    assert_same(
        &expected,
        &actual,
        &opts,
        "--exclude the first members of a link group",
    );
}

fn names_under(root: &Path) -> Vec<PathBuf> {
    let tree = Tree::scan(root);
    tree.entries
        .iter()
        .filter(|(_, e)| e.kind != crate::support::compare::Kind::Dir)
        .map(|(p, _)| p.clone())
        .collect()
}

#[test]
fn restore_include_exclude_and_dry_run() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    for (rel, body) in [
        ("a.txt", "a"),
        ("b.log", "b"),
        ("sub/c.txt", "c"),
        ("sub/d.log", "d"),
        ("skipdir/e.txt", "e"),
        ("skipdir/deeper/f.txt", "f"),
        ("other/g.bin", "g"),
    ] {
        fx.file(rel, body.as_bytes());
    }
    fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&src], &[]);
    assert_backup_clean(&b);
    let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();

    let t = ws.path("include");
    sg.restore(&b.id, &t, &["--include", "*.txt"])
        .expect_code(0);
    let got = names_under(&restored_path(&t, &src));
    assert_eq!(
        got,
        p(&[
            "a.txt",
            "skipdir/deeper/f.txt",
            "skipdir/e.txt",
            "sub/c.txt"
        ]),
        "--include '*.txt'"
    );

    let t = ws.path("exclude");
    sg.restore(
        &b.id,
        &t,
        &["--exclude", "*.log", "--exclude", "**/skipdir"],
    )
    .expect_code(0);
    let root = restored_path(&t, &src);
    let got = names_under(&root);
    assert_eq!(
        got,
        p(&["a.txt", "other/g.bin", "sub/c.txt"]),
        "--exclude '*.log' --exclude '**/skipdir'"
    );
    assert!(
        !root.join("skipdir").exists(),
        "excluded directory skipdir was created"
    );
    for rel in &got {
        assert_eq!(
            compare_content(&src.join(rel), &root.join(rel)),
            None,
            "{rel:?}"
        );
    }

    let t = ws.path("dry");
    sg.restore(&b.id, &t, &["--dry-run"]).expect_code(0);
    let leftovers = if t.exists() {
        names_under(&t)
    } else {
        Vec::new()
    };
    assert!(leftovers.is_empty(), "--dry-run wrote files: {leftovers:?}");
}

#[test]
fn dump_writes_exact_bytes() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("empty", b"");
    fx.random_file("random_3MiB", 3 * MIB, 55);
    fx.file(bpath(b"caf\xe9"), b"non-utf8 name");
    fx.file("new\nline", b"newline name\n");
    fx.sparse_file("sparse", 5 * MIB, &[(MIB, 1000)], 56);
    fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&src], &[]);
    assert_backup_clean(&b);
    for rel in [
        bpath(b"empty"),
        bpath(b"random_3MiB"),
        bpath(b"caf\xe9"),
        bpath(b"new\nline"),
        bpath(b"sparse"),
    ] {
        let path = src.join(rel);
        let out = sg.dump(&b.id, &path);
        out.expect_code(0);
        let want = fs::read(&path).expect("read source");
        assert!(
            out.stdout == want,
            "dump {rel:?}: {} bytes on stdout, file has {} (or content differs)",
            out.stdout.len(),
            want.len()
        );
    }
    // Same through -r instead of the environment, with `latest`.
    let mut cmd = sg.command();
    cmd.env_remove("SNAPGUARD_REPOSITORY");
    let path = src.join("random_3MiB");
    let out = run_cmd(
        &mut cmd,
        [
            OsString::from("-r"),
            sg.repo.clone().into(),
            "dump".into(),
            "latest".into(),
            path.clone().into(),
        ],
    );
    out.expect_code(0);
    assert!(
        out.stdout == fs::read(&path).expect("read"),
        "dump via -r differs"
    );
}
