//! `diff` on plain directories: every flag on its own, type changes, descendants of created
//! and deleted directories, order, non-UTF-8 names, restriction to paths, and the rule that an
//! unchanged inode is never read.

use crate::support::*;
use rustix::fs::{makedev, FileType};
use snapguard_local::diff::{diff, DiffOptions};
use snapguard_local::Error;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Two directories `old` and `new` built by the same function, then `edit` applied to `new`.
fn pair(build: impl Fn(&Path), edit: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().expect("tempdir");
    let (old, new) = (t.path().join("old"), t.path().join("new"));
    mkdir(&old);
    mkdir(&new);
    build(&old);
    build(&new);
    edit(&new);
    (t, old, new)
}

fn all(old: &Path, new: &Path) -> Vec<(String, String)> {
    flags(&diff(old, new, &DiffOptions::default()).expect("diff"))
}

fn base(root: &Path) {
    write(&root.join("file"), b"0123456789");
    mkdir(&root.join("dir"));
    write(&root.join("dir/inner"), b"inner");
    symlink("file", &root.join("link"));
    mknod(&root.join("fifo"), FileType::Fifo, 0);
    mknod(&root.join("dev"), FileType::CharacterDevice, makedev(1, 5));
    setxattr(&root.join("file"), "user.keep", b"1");
}

#[test]
fn identical_copies_have_no_differences() {
    if !root_or_skip() {
        return;
    }
    let (_t, old, new) = pair(base, |_| {});
    assert_eq!(all(&old, &new), expect(&[]));
    assert_eq!(all(&old, &old), expect(&[]));
}

#[test]
fn each_flag_on_its_own() {
    if !root_or_skip() {
        return;
    }
    type Edit = fn(&Path);
    type Case = (&'static str, Edit, Vec<(&'static str, &'static str)>);
    let cases: Vec<Case> = vec![
        (
            "content, same size",
            |n| write(&n.join("file"), b"0123456780"),
            vec![("file", "c.....")],
        ),
        (
            "content, other size",
            |n| write(&n.join("file"), b"0123"),
            vec![("file", "c.....")],
        ),
        (
            "permissions",
            |n| chmod(&n.join("file"), 0o600),
            vec![("file", ".p....")],
        ),
        (
            "setuid bit only",
            |n| chmod(&n.join("file"), 0o4644),
            vec![("file", ".p....")],
        ),
        (
            "sticky bit on a directory",
            |n| chmod(&n.join("dir"), 0o1755),
            vec![("dir", ".p....")],
        ),
        (
            "user",
            |n| chown(&n.join("file"), 1000, 0),
            vec![("file", "..u...")],
        ),
        (
            "group",
            |n| chown(&n.join("file"), 0, 1000),
            vec![("file", "...g..")],
        ),
        (
            "symlink owner",
            |n| chown(&n.join("link"), 7, 0),
            vec![("link", "..u...")],
        ),
        (
            "xattr added",
            |n| setxattr(&n.join("dir"), "user.new", b"v"),
            vec![("dir", "....x.")],
        ),
        (
            "xattr value",
            |n| setxattr(&n.join("file"), "user.keep", b"2"),
            vec![("file", "....x.")],
        ),
        (
            "xattr removed",
            |n| rustix::fs::lremovexattr(n.join("file"), "user.keep").expect("remove"),
            vec![("file", "....x.")],
        ),
        (
            "access ACL",
            |n| setfacl(&["-m", "u:1234:r"], &n.join("file")),
            vec![("file", ".....a")],
        ),
        (
            "default ACL",
            |n| setfacl(&["-d", "-m", "u:1234:r"], &n.join("dir")),
            vec![("dir", ".....a")],
        ),
        (
            "symlink target",
            |n| {
                std::fs::remove_file(n.join("link")).expect("rm");
                symlink("dir", &n.join("link"));
            },
            vec![("link", "c.....")],
        ),
        (
            "device number",
            |n| {
                std::fs::remove_file(n.join("dev")).expect("rm");
                mknod(&n.join("dev"), FileType::CharacterDevice, makedev(1, 7));
            },
            vec![("dev", "c.....")],
        ),
        (
            "char device becomes block device",
            |n| {
                std::fs::remove_file(n.join("dev")).expect("rm");
                mknod(&n.join("dev"), FileType::BlockDevice, makedev(1, 5));
            },
            vec![("dev", "t.....")],
        ),
        (
            "fifo becomes file, with other permissions",
            |n| {
                std::fs::remove_file(n.join("fifo")).expect("rm");
                write(&n.join("fifo"), b"");
                chmod(&n.join("fifo"), 0o644);
            },
            vec![("fifo", "tp....")],
        ),
        (
            "mtime only is no difference",
            |n| set_times(&n.join("file"), (1, 0), (2, 0)),
            vec![],
        ),
        (
            "file created",
            |n| write(&n.join("dir/new"), b""),
            vec![("dir/new", "+.....")],
        ),
        (
            "file deleted",
            |n| std::fs::remove_file(n.join("dir/inner")).expect("rm"),
            vec![("dir/inner", "-.....")],
        ),
        (
            "all metadata flags with content",
            |n| {
                let f = n.join("file");
                write(&f, b"other");
                chown(&f, 5, 6);
                chmod(&f, 0o640);
                setxattr(&f, "user.more", b"x");
                setfacl(&["-m", "u:99:r"], &f);
            },
            vec![("file", "cpugxa")],
        ),
    ];
    for (what, edit, expected) in cases {
        let (_t, old, new) = pair(base, edit);
        assert_eq!(all(&old, &new), expect(&expected), "{what}");
    }
}

#[test]
fn created_and_deleted_directories_list_everything_below() {
    if !root_or_skip() {
        return;
    }
    let (_t, old, new) = pair(
        |r| {
            write(&r.join("gone/a/b"), b"1");
            write(&r.join("gone/c"), b"2");
        },
        |n| {
            std::fs::remove_dir_all(n.join("gone")).expect("rm");
            write(&n.join("fresh/x/y"), b"3");
            symlink("y", &n.join("fresh/x/z"));
        },
    );
    assert_eq!(
        all(&old, &new),
        expect(&[
            ("fresh", "+....."),
            ("fresh/x", "+....."),
            ("fresh/x/y", "+....."),
            ("fresh/x/z", "+....."),
            ("gone", "-....."),
            ("gone/a", "-....."),
            ("gone/a/b", "-....."),
            ("gone/c", "-....."),
        ])
    );
    // The other way round, created and deleted swap.
    let back = flags(&diff(&new, &old, &DiffOptions::default()).expect("diff"));
    assert_eq!(back[0], ("fresh".to_string(), "-.....".to_string()));
    assert_eq!(back[4], ("gone".to_string(), "+.....".to_string()));
}

#[test]
fn type_change_file_to_directory_and_back() {
    if !root_or_skip() {
        return;
    }
    let (_t, old, new) = pair(
        |r| {
            write(&r.join("t"), b"file");
            chmod(&r.join("t"), 0o644);
            write(&r.join("u/child"), b"c");
            chmod(&r.join("u"), 0o755);
        },
        |n| {
            std::fs::remove_file(n.join("t")).expect("rm");
            write(&n.join("t/sub"), b"now a dir");
            chmod(&n.join("t"), 0o755);
            std::fs::remove_dir_all(n.join("u")).expect("rm");
            write(&n.join("u"), b"now a file");
            chmod(&n.join("u"), 0o755);
        },
    );
    assert_eq!(
        all(&old, &new),
        expect(&[
            ("t", "tp...."),
            ("t/sub", "+....."),
            ("u", "t....."),
            ("u/child", "-....."),
        ])
    );
}

#[test]
fn order_is_by_path_components_and_names_may_be_any_bytes() {
    if !root_or_skip() {
        return;
    }
    let latin1 = OsStr::from_bytes(b"caf\xe9");
    let (_t, old, new) = pair(
        |r| mkdir(&r.join("a")),
        |n| {
            write(&n.join("a-b"), b"");
            write(&n.join("a/x"), b"");
            write(&n.join("a0"), b"");
            write(&n.join("B"), b"");
            write(&n.join(latin1).join("inside"), b"");
        },
    );
    let changes = diff(&old, &new, &DiffOptions::default()).expect("diff");
    let paths: Vec<&[u8]> = changes
        .iter()
        .map(|c| c.path.as_os_str().as_bytes())
        .collect();
    let expected: Vec<&[u8]> = vec![b"B", b"a/x", b"a-b", b"a0", b"caf\xe9", b"caf\xe9/inside"];
    assert_eq!(paths, expected);
    let json = serde_json::to_value(&changes).expect("json");
    assert_eq!(json[4]["path_hex"], "636166e9");
    assert_eq!(json[4]["status"], "+.....");
}

#[test]
fn restriction_to_paths() {
    if !root_or_skip() {
        return;
    }
    let (_t, old, new) = pair(
        |r| {
            write(&r.join("a/x"), b"1");
            write(&r.join("a/y"), b"1");
            write(&r.join("ab"), b"1");
        },
        |n| {
            write(&n.join("a/x"), b"2");
            write(&n.join("a/y"), b"2");
            write(&n.join("ab"), b"2");
            write(&n.join("a/z/new"), b"");
        },
    );
    let only = |paths: &[&str]| {
        let opts = DiffOptions {
            paths: paths.iter().map(PathBuf::from).collect(),
        };
        flags(&diff(&old, &new, &opts).expect("diff"))
    };
    assert_eq!(only(&["a/x"]), expect(&[("a/x", "c.....")]));
    assert_eq!(
        only(&["./a/z/"]),
        expect(&[("a/z", "+....."), ("a/z/new", "+.....")])
    );
    assert_eq!(
        only(&["ab", "a/y"]),
        expect(&[("a/y", "c....."), ("ab", "c.....")])
    );
    assert_eq!(only(&["nonexistent"]), expect(&[]));
    assert_eq!(only(&["."]).len(), 5);
    for bad in ["../a", "/a", "a/../../b"] {
        let opts = DiffOptions {
            paths: vec![PathBuf::from(bad)],
        };
        assert!(
            matches!(diff(&old, &new, &opts), Err(Error::PathOutsideTree { .. })),
            "{bad} accepted"
        );
    }
}

#[test]
fn roots_must_be_directories() {
    let t = tempfile::tempdir().expect("tempdir");
    write(&t.path().join("f"), b"");
    for bad in [t.path().join("f"), t.path().join("missing")] {
        let e = diff(&bad, t.path(), &DiffOptions::default()).expect_err("not a dir");
        assert!(matches!(e, Error::NotADirectory { .. }), "{e}");
        assert!(e.to_string().contains(&*bad.to_string_lossy()), "{e}");
    }
}

/// An inode seen unchanged on both sides (same inode number, size, mtime and ctime, as in two
/// btrfs snapshots) is not read; two copies with equal contents are read to the end.
#[test]
fn unchanged_inodes_are_not_read() {
    let t = tempfile::tempdir().expect("tempdir");
    let a = t.path().join("a");
    let big = vec![0x5au8; 8 << 20];
    write(&a.join("big"), &big);
    write(&a.join("sub/big2"), &big);

    let before = thread_read_bytes();
    assert!(diff(&a, &a, &DiffOptions::default())
        .expect("diff")
        .is_empty());
    let read = thread_read_bytes() - before;
    assert!(
        read < 1 << 20,
        "{read} bytes read comparing a tree with itself"
    );

    let b = t.path().join("b");
    write(&b.join("big"), &big);
    write(&b.join("sub/big2"), &big);
    let before = thread_read_bytes();
    assert!(diff(&a, &b, &DiffOptions::default())
        .expect("diff")
        .is_empty());
    let read = thread_read_bytes() - before;
    assert!(
        read >= 4 * (8 << 20),
        "only {read} bytes read comparing two copies"
    );

    // A difference at the start stops the comparison there.
    write_at(&b.join("big"), 0, b"!");
    let before = thread_read_bytes();
    let changes = diff(
        &a,
        &b,
        &DiffOptions {
            paths: vec!["big".into()],
        },
    )
    .expect("diff");
    let read = thread_read_bytes() - before;
    assert_eq!(flags(&changes), expect(&[("big", "c.....")]));
    assert!(
        read <= 2 * (1 << 20) + 65536,
        "{read} bytes read for a first-block difference"
    );
}
