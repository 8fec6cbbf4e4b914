//! `undo` on plain directories: `old` and `new` are two trees, `live` a copy of `new`; after
//! the undo, `live` must equal `old` (contents and every piece of metadata) where undone and
//! `new` elsewhere.

use crate::support::*;
use rustix::fs::{makedev, FileType};
use snapguard_local::diff::{diff, DiffOptions};
use snapguard_local::undo::undo;
use snapguard_local::Error;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

struct Trees {
    _t: tempfile::TempDir,
    old: PathBuf,
    new: PathBuf,
    live: PathBuf,
}

/// `old` built by `build`, `new` a copy of it changed by `edit`, `live` a copy of `new`.
fn trees(build: impl FnOnce(&Path), edit: impl FnOnce(&Path)) -> Trees {
    let t = tempfile::tempdir().expect("tempdir");
    let (old, new, live) = (
        t.path().join("old"),
        t.path().join("new"),
        t.path().join("live"),
    );
    mkdir(&old);
    build(&old);
    // `cp` moves the atimes of what it reads; they are put back.
    let pristine = capture(&old, false, &[]);
    copy_tree(&old, &new);
    reset_atimes(&old, &pristine);
    edit(&new);
    let pristine = capture(&new, false, &[]);
    copy_tree(&new, &live);
    reset_atimes(&new, &pristine);
    Trees {
        _t: t,
        old,
        new,
        live,
    }
}

fn paths(list: &[PathBuf]) -> Vec<String> {
    list.iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Changes of every kind to the rich tree.
fn edit_everything(n: &Path) {
    // Content, same size and different size; owner; mode; xattrs; ACL.
    write(&n.join("plain"), b"PLAIN contents");
    write(&n.join("docs/readme"), b"rewritten, longer than before\n");
    chown(&n.join("owned"), 1, 1);
    chmod(&n.join("setuid"), 0o755);
    chmod(&n.join("sticky"), 0o755);
    setxattr(&n.join("xattr"), "user.color", b"red");
    rustix::fs::lremovexattr(n.join("xattr"), "user.empty").expect("removexattr");
    setxattr(&n.join("plain"), "user.added", b"1");
    setfacl(&["-x", "u:1234"], &n.join("acl"));
    setfacl(&["-k"], &n.join("acldir"));
    // Symlink retargeted; FIFO, devices, hard links, sparse file and a non-UTF-8 name deleted.
    std::fs::remove_file(n.join("link")).expect("rm");
    symlink("elsewhere", &n.join("link"));
    for gone in [
        "fifo",
        "chardev",
        "blockdev",
        "hard1",
        "docs/hard2",
        "sparse",
    ] {
        std::fs::remove_file(n.join(gone)).expect("rm");
    }
    std::fs::remove_file(n.join(OsStr::from_bytes(b"caf\xe9 latin1"))).expect("rm");
    // A directory deleted, one created, a rename, and type changes both ways.
    std::fs::remove_dir_all(n.join("docs/deep")).expect("rm");
    write(&n.join("newdir/sub/file"), b"new");
    symlink("file", &n.join("newdir/sub/link"));
    std::fs::rename(n.join("dangling"), n.join("renamed")).expect("rename");
    std::fs::remove_dir_all(n.join("acldir")).expect("rm");
    write(&n.join("acldir"), b"was a directory");
    std::fs::remove_file(n.join("owned")).expect("rm");
    write(&n.join("owned/inside"), b"was a file");
}

#[test]
fn undo_everything_restores_the_old_tree_exactly() {
    if !root_or_skip() {
        return;
    }
    let t = trees(rich_tree, edit_everything);
    let before = capture(&t.old, false, &[]);
    let report = undo(&t.old, &t.new, &t.live, &[]).expect("undo");
    assert!(report.is_complete(), "{:#?}", report.failed);
    assert_same(&before, &capture(&t.live, false, &[]), "live after undo");
    assert!(diff(&t.old, &t.live, &DiffOptions::default())
        .expect("diff")
        .is_empty());
    // The old tree was only read.
    assert_same(&before, &capture(&t.old, false, &[]), "old after undo");

    assert_eq!(
        paths(&report.removed),
        [
            "newdir",
            "newdir/sub",
            "newdir/sub/file",
            "newdir/sub/link",
            "owned/inside",
            "renamed"
        ]
    );
    assert!(paths(&report.created).contains(&"docs/deep/deeper/leaf".to_string()));
    assert!(paths(&report.created).contains(&"caf\u{fffd} latin1".to_string()));
    assert!(paths(&report.modified).contains(&"acldir".to_string()));
    assert!(paths(&report.modified).contains(&"owned".to_string()));
    assert!(paths(&report.modified).contains(&"xattr".to_string()));
    // No temporary names left behind.
    for (p, _) in capture(&t.live, false, &[]) {
        assert!(
            !p.to_string_lossy().contains(".snapguard-undo"),
            "{}",
            p.display()
        );
    }
}

#[test]
fn sparse_files_stay_sparse() {
    if !root_or_skip() {
        return;
    }
    let t = trees(rich_tree, |n| {
        std::fs::remove_file(n.join("sparse")).expect("rm")
    });
    let report = undo(&t.old, &t.new, &t.live, &[]).expect("undo");
    assert_eq!(paths(&report.created), ["sparse"]);
    let md = std::fs::metadata(t.live.join("sparse")).expect("stat");
    assert_eq!(md.len(), 32 << 20);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "{} bytes allocated",
        md.blocks() * 512
    );
    assert!(
        std::fs::read(t.live.join("sparse")).expect("read")
            == std::fs::read(t.old.join("sparse")).expect("read")
    );
}

#[test]
fn hard_links_restored_together_stay_linked() {
    if !root_or_skip() {
        return;
    }
    let t = trees(
        |r| {
            write(&r.join("a"), b"shared");
            std::fs::hard_link(r.join("a"), r.join("b")).expect("link");
            mkdir(&r.join("d"));
            std::fs::hard_link(r.join("a"), r.join("d/c")).expect("link");
            write(&r.join("single"), b"one");
        },
        |n| {
            // `a` gets new contents in a new inode (as editors save), `b` and `d/c` go.
            std::fs::remove_file(n.join("a")).expect("rm");
            write(&n.join("a"), b"changed!");
            std::fs::remove_file(n.join("b")).expect("rm");
            std::fs::remove_file(n.join("d/c")).expect("rm");
        },
    );
    let report = undo(&t.old, &t.new, &t.live, &[]).expect("undo");
    assert!(report.is_complete(), "{:#?}", report.failed);
    let ino = |p: &str| std::fs::metadata(t.live.join(p)).expect("stat").ino();
    assert_eq!(ino("a"), ino("b"));
    assert_eq!(ino("a"), ino("d/c"));
    assert_ne!(ino("a"), ino("single"));
    assert_eq!(
        std::fs::metadata(t.live.join("a")).expect("stat").nlink(),
        3
    );
    assert_same(
        &capture(&t.old, false, &[]),
        &capture(&t.live, false, &[]),
        "live",
    );
}

#[test]
fn undo_of_some_paths_leaves_the_rest_alone() {
    if !root_or_skip() {
        return;
    }
    let t = trees(rich_tree, edit_everything);
    let old = capture(&t.old, false, &[]);
    let new = capture(&t.new, false, &[]);
    let report = undo(&t.old, &t.new, &t.live, &["docs".into(), "./plain".into()]).expect("undo");
    assert!(report.is_complete(), "{:#?}", report.failed);
    let live = capture(&t.live, false, &[]);
    for (p, e) in &live {
        if p.starts_with("docs") || p == Path::new("plain") {
            assert_eq!(Some(e), old.get(p), "{} not undone", p.display());
        } else if p.as_os_str().is_empty() {
        } else {
            assert_eq!(Some(e), new.get(p), "{} changed", p.display());
        }
    }
    for p in old.keys().filter(|p| p.starts_with("docs")) {
        assert!(live.contains_key(p), "{} not restored", p.display());
    }
    assert!(diff(
        &t.old,
        &t.live,
        &DiffOptions {
            paths: vec!["docs".into(), "plain".into()]
        }
    )
    .expect("diff")
    .is_empty());
    assert!(!diff(&t.old, &t.live, &DiffOptions::default())
        .expect("diff")
        .is_empty());
}

#[test]
fn missing_parents_are_recreated_from_old() {
    if !root_or_skip() {
        return;
    }
    let t = trees(
        |r| {
            write(&r.join("d/e/f"), b"deep");
            write(&r.join("d/other"), b"other");
            chmod(&r.join("d/e"), 0o750);
            chown(&r.join("d"), 1000, 1000);
            set_times(&r.join("d/e"), (1_500_000_000, 1), (1_500_000_000, 2));
        },
        |n| std::fs::remove_dir_all(n.join("d")).expect("rm"),
    );
    let report = undo(&t.old, &t.new, &t.live, &["d/e/f".into()]).expect("undo");
    assert!(report.is_complete(), "{:#?}", report.failed);
    assert_eq!(paths(&report.created), ["d", "d/e", "d/e/f"]);
    let old = capture(&t.old, false, &[]);
    let live = capture(&t.live, false, &[]);
    for p in ["d/e", "d/e/f"] {
        assert_eq!(live.get(Path::new(p)), old.get(Path::new(p)), "{p}");
    }
    // `d` got old's owner and mode; its mtime is that of the undo (`d/other` is still gone).
    let d = &live[Path::new("d")];
    assert_eq!(
        (d.uid, d.gid, d.mode),
        (1000, 1000, old[Path::new("d")].mode)
    );
    assert!(!live.contains_key(Path::new("d/other")));
}

#[test]
fn paths_outside_the_tree_are_refused_before_anything_changes() {
    if !root_or_skip() {
        return;
    }
    let t = trees(rich_tree, edit_everything);
    let live = capture(&t.live, false, &[]);
    for bad in ["../old", "/etc", "docs/../../x"] {
        let e = undo(&t.old, &t.new, &t.live, &[PathBuf::from(bad)]).expect_err("refused");
        assert!(matches!(e, Error::PathOutsideTree { .. }), "{bad}: {e}");
        assert!(e.to_string().contains(bad), "{e}");
    }
    let e = undo(&t.old, &t.new, &t.live.join("nonexistent"), &[]).expect_err("no live");
    assert!(matches!(e, Error::NotADirectory { .. }), "{e}");
    assert_same(&live, &capture(&t.live, false, &[]), "live");
}

#[test]
fn directories_with_later_entries_are_kept_and_reported() {
    if !root_or_skip() {
        return;
    }
    let t = trees(
        |r| write(&r.join("keep"), b"k"),
        |n| write(&n.join("made/x"), b"x"),
    );
    // Added to live after the `new` snapshot.
    write(&t.live.join("made/later"), b"user data");
    let report = undo(&t.old, &t.new, &t.live, &[]).expect("undo");
    assert_eq!(paths(&report.removed), ["made/x"]);
    assert_eq!(report.failed.len(), 1, "{:#?}", report.failed);
    assert_eq!(report.failed[0].path, Path::new("made"));
    assert!(
        report.failed[0].error.contains("not removed"),
        "{}",
        report.failed[0].error
    );
    assert_eq!(
        std::fs::read(t.live.join("made/later")).expect("kept"),
        b"user data"
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["failed"][0]["path"], "made");
}

#[test]
fn symlinks_in_live_are_never_followed() {
    if !root_or_skip() {
        return;
    }
    let outside = tempfile::tempdir().expect("tempdir");
    write(&outside.path().join("precious"), b"do not touch");
    let target = outside.path().to_string_lossy().into_owned();
    // In `new`, the directory `d` became a symlink to a directory outside the tree.
    let t = trees(
        |r| {
            write(&r.join("d/precious"), b"old contents");
            write(&r.join("e/f"), b"old f");
        },
        |n| {
            std::fs::remove_dir_all(n.join("d")).expect("rm");
            symlink(&target, &n.join("d"));
            write(&n.join("e/f"), b"new f");
        },
    );
    // And in live, after `new`, `e` was swapped for a symlink to the outside too.
    std::fs::remove_dir_all(t.live.join("e")).expect("rm");
    symlink(&target, &t.live.join("e"));
    let report = undo(&t.old, &t.new, &t.live, &[]).expect("undo");
    // `d` is a real directory again, with old's contents.
    assert!(std::fs::symlink_metadata(t.live.join("d"))
        .expect("d")
        .is_dir());
    assert_eq!(
        std::fs::read(t.live.join("d/precious")).expect("read"),
        b"old contents"
    );
    // `e/f` could not be restored through the symlink, and says why.
    assert_eq!(report.failed.len(), 1, "{:#?}", report.failed);
    assert_eq!(report.failed[0].path, Path::new("e/f"));
    assert!(
        report.failed[0].error.contains("not a directory"),
        "{}",
        report.failed[0].error
    );
    assert_eq!(
        std::fs::read(outside.path().join("precious")).expect("read"),
        b"do not touch"
    );
    assert_eq!(std::fs::read_dir(outside.path()).expect("ls").count(), 1);
}

#[test]
fn parent_directory_times_are_restored() {
    if !root_or_skip() {
        return;
    }
    let t = trees(
        |r| {
            write(&r.join("p/a"), b"a");
            write(&r.join("q/b"), b"b");
            set_times(&r.join("p"), (1_400_000_000, 5), (1_400_000_000, 6));
            set_times(&r.join("q"), (1_400_000_000, 7), (1_400_000_000, 8));
        },
        |n| {
            write(&n.join("p/new"), b"n");
            write(&n.join("q/new"), b"n");
        },
    );
    // `q` changed again in live after `new`: its time is left alone.
    write(&t.live.join("q/later"), b"l");
    let report = undo(&t.old, &t.new, &t.live, &[]).expect("undo");
    assert!(report.is_complete(), "{:#?}", report.failed);
    let m = |root: &Path, p: &str| {
        let md = std::fs::symlink_metadata(root.join(p)).expect("stat");
        (md.mtime(), md.mtime_nsec())
    };
    assert_eq!(m(&t.live, "p"), (1_400_000_000, 6));
    assert_ne!(m(&t.live, "q"), (1_400_000_000, 8));
    assert!(t.live.join("q/later").exists());
}

#[test]
fn special_files_and_devices_are_recreated() {
    if !root_or_skip() {
        return;
    }
    let t = trees(
        |r| {
            mknod(&r.join("pipe"), FileType::Fifo, 0);
            chmod(&r.join("pipe"), 0o604);
            mknod(&r.join("tty"), FileType::CharacterDevice, makedev(5, 0));
            mknod(&r.join("sock"), FileType::Socket, 0);
            chown(&r.join("tty"), 0, 5);
        },
        |n| {
            std::fs::remove_file(n.join("pipe")).expect("rm");
            write(&n.join("pipe"), b"a file now");
            std::fs::remove_file(n.join("tty")).expect("rm");
            mknod(&n.join("tty"), FileType::CharacterDevice, makedev(5, 1));
            std::fs::remove_file(n.join("sock")).expect("rm");
        },
    );
    let report = undo(&t.old, &t.new, &t.live, &[]).expect("undo");
    assert!(report.is_complete(), "{:#?}", report.failed);
    assert_same(
        &capture(&t.old, false, &[]),
        &capture(&t.live, false, &[]),
        "live",
    );
}
