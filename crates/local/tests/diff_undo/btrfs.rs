//! `diff` and `undo` on real btrfs: a subvolume, read-only snapshots of it laid out as Snapper
//! does (`<subvolume>/.snapshots/N/snapshot`, `.snapshots` a subvolume of its own), changes of
//! every kind in between, exact status flags, and an undo that reflinks.

use crate::support::*;
use snapguard_btrfs::testing::{try_new, LoopFs};
use snapguard_local::diff::{diff, DiffOptions};
use snapguard_local::undo::undo;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A subvolume `data` with a `.snapshots` subvolume.
fn subvolume(fs: &LoopFs) -> PathBuf {
    let data = fs.mnt().join("data");
    run(Command::new("btrfs")
        .args(["-q", "subvolume", "create"])
        .arg(&data));
    run(Command::new("btrfs")
        .args(["-q", "subvolume", "create"])
        .arg(data.join(".snapshots")));
    // As Snapper makes it; a snapshot's placeholder for it has mode 0755.
    chmod(&data.join(".snapshots"), 0o750);
    data
}

/// Read-only snapshot number `n` of `data`; its path.
fn snapshot(data: &Path, n: u32) -> PathBuf {
    let dir = data.join(".snapshots").join(n.to_string());
    mkdir(&dir);
    let snap = dir.join("snapshot");
    run(Command::new("btrfs")
        .args(["-q", "subvolume", "snapshot", "-r"])
        .arg(data)
        .arg(&snap));
    snap
}

/// (Total, exclusive) bytes of a file as `btrfs filesystem du` counts them.
fn du(path: &Path) -> (u64, u64) {
    let out = Command::new("btrfs")
        .args(["filesystem", "du", "--raw", "-s"])
        .arg(path)
        .output()
        .expect("btrfs filesystem du");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).expect("du line");
    let cols: Vec<u64> = line
        .split_whitespace()
        .take(2)
        .map(|c| c.parse().expect("number"))
        .collect();
    (cols[0], cols[1])
}

/// The state before: files, directories, links, a FIFO, hard links, xattrs, ACLs, a 64 MiB
/// file, and a nested subvolume with contents.
fn populate(data: &Path) {
    rich_tree(data);
    let big: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    write(&data.join("big"), &big);
    write(&data.join("to-rename"), b"moved later");
    write(&data.join("dir1/a"), b"a");
    write(&data.join("dir1/b"), b"b");
    write(&data.join("dir2/keep"), b"keep");
    run(Command::new("btrfs")
        .args(["-q", "subvolume", "create"])
        .arg(data.join("nested")));
    write(&data.join("nested/inside"), b"nested contents");
}

/// One change of each kind.
fn change(data: &Path) {
    write(&data.join("created"), b"new file");
    std::fs::remove_file(data.join("plain")).expect("rm");
    write_at(&data.join("big"), 50 << 20, b"a few changed bytes");
    chmod(&data.join("setuid"), 0o755);
    chown(&data.join("owned"), 1000, 4321);
    chown(&data.join("xattr"), 1234, 1000);
    setxattr(&data.join("xattr"), "user.color", b"green");
    setfacl(&["-m", "u:777:r"], &data.join("acl"));
    std::fs::rename(data.join("to-rename"), data.join("dir2/renamed")).expect("rename");
    std::fs::remove_dir_all(data.join("dir1")).expect("rm");
    std::fs::remove_file(data.join("link")).expect("rm");
    symlink("plain", &data.join("link"));
    // Inside the nested subvolume: not part of this subvolume's snapshots.
    write(
        &data.join("nested/inside"),
        b"changed in the nested subvolume",
    );
    write(&data.join("nested/more"), b"more");
}

/// A filesystem of `size_mib` MiB with the subvolume `data` ([`populate`]d), snapshot 1 of it,
/// [`change`]s, and snapshot 2: (the filesystem, `data`, snapshot 1, snapshot 2).
fn before_and_after(size_mib: u64) -> Option<(LoopFs, PathBuf, PathBuf, PathBuf)> {
    let fs = try_new(size_mib)?;
    let data = subvolume(&fs);
    populate(&data);
    let s1 = snapshot(&data, 1);
    change(&data);
    let s2 = snapshot(&data, 2);
    Some((fs, data, s1, s2))
}

#[test]
fn diff_and_undo_on_btrfs_snapshots() {
    let Some((_fs, data, s1, s2)) = before_and_after(1024) else {
        return;
    };

    let changes = diff(&s1, &s2, &DiffOptions::default()).expect("diff");
    assert_eq!(
        flags(&changes),
        expect(&[
            ("acl", ".....a"),
            ("big", "c....."),
            ("created", "+....."),
            ("dir1", "-....."),
            ("dir1/a", "-....."),
            ("dir1/b", "-....."),
            ("dir2/renamed", "+....."),
            ("link", "c....."),
            ("owned", "..u..."),
            ("plain", "-....."),
            ("setuid", ".p...."),
            ("to-rename", "-....."),
            ("xattr", "..ugx."),
        ])
    );
    assert!(diff(&s1, &s1, &DiffOptions::default())
        .expect("diff")
        .is_empty());
    assert!(diff(&s2, &s2, &DiffOptions::default())
        .expect("diff")
        .is_empty());

    // Undo everything between 1 and 2 in the live subvolume.
    let skip = [".snapshots", "nested"];
    let before_undo_nested = capture(&data.join("nested"), true, &[]);
    let report = undo(&s1, &s2, &data, &[]).expect("undo");
    assert!(report.is_complete(), "{:#?}", report.failed);
    assert_eq!(
        report.removed,
        ["created", "dir2/renamed"].map(PathBuf::from).to_vec()
    );
    assert_eq!(
        report.created,
        ["dir1", "dir1/a", "dir1/b", "plain", "to-rename"]
            .map(PathBuf::from)
            .to_vec()
    );
    assert_eq!(
        report.modified,
        ["acl", "big", "link", "owned", "setuid", "xattr"]
            .map(PathBuf::from)
            .to_vec()
    );
    // Snapshots are read-only, so atimes of everything (directories and links too) compare.
    assert_same(
        &capture(&s1, true, &skip),
        &capture(&data, true, &skip),
        "live after undo",
    );
    assert!(diff(&s1, &data, &DiffOptions::default())
        .expect("diff")
        .iter()
        .all(|c| c.path == Path::new("nested") || c.path == Path::new(".snapshots")));
    // The nested subvolume was left alone.
    assert_same(
        &before_undo_nested,
        &capture(&data.join("nested"), true, &[]),
        "nested",
    );

    // The restored big file shares all its extents with snapshot 1: a reflink, no new data.
    run(&mut Command::new("sync"));
    let (total, exclusive) = du(&data.join("big"));
    assert_eq!(total, 64 << 20);
    assert_eq!(
        exclusive, 0,
        "the restored file is not a reflink of the snapshot's"
    );

    // Against the live subvolume (last: listing live directories moves their atimes), the
    // nested subvolume is compared as an entry only, and the snapshots directory (a
    // subvolume too) is not entered.
    let live_changes = diff(&s2, &data, &DiffOptions::default()).expect("diff");
    assert!(!live_changes.is_empty());
    for c in &live_changes {
        assert!(
            !c.path.starts_with("nested/") && !c.path.starts_with(".snapshots/"),
            "entered {}",
            c.path.display()
        );
    }
}

#[test]
fn undo_of_chosen_paths_on_btrfs() {
    let Some((_fs, data, s1, s2)) = before_and_after(512) else {
        return;
    };

    let report = undo(
        &s1,
        &s2,
        &data,
        &["dir1".into(), "xattr".into(), "created".into()],
    )
    .expect("undo");
    assert!(report.is_complete(), "{:#?}", report.failed);
    assert_eq!(report.removed, vec![PathBuf::from("created")]);
    assert_eq!(
        report.created,
        ["dir1", "dir1/a", "dir1/b"].map(PathBuf::from).to_vec()
    );
    assert_eq!(report.modified, vec![PathBuf::from("xattr")]);

    let skip = [".snapshots", "nested"];
    let (c1, c2, live) = (
        capture(&s1, true, &skip),
        capture(&s2, true, &skip),
        capture(&data, true, &skip),
    );
    for (p, e) in &live {
        let undone = p.starts_with("dir1") || p == Path::new("xattr");
        let reference = if undone { &c1 } else { &c2 };
        assert_eq!(Some(e), reference.get(p), "{}", p.display());
    }
    assert!(!live.contains_key(Path::new("created")));
    // What was not undone is still the change of snapshot 2.
    let rest = flags(&diff(&s1, &data, &DiffOptions::default()).expect("diff"));
    assert!(
        rest.contains(&("big".to_string(), "c.....".to_string())),
        "{rest:?}"
    );
    assert!(
        rest.contains(&("plain".to_string(), "-.....".to_string())),
        "{rest:?}"
    );
    assert!(!rest
        .iter()
        .any(|(p, _)| p.starts_with("dir1") || p == "xattr" || p == "created"));
}

/// Snapper's `undochange N..0`: the newer side is the live subvolume itself, which holds the
/// snapshot directory and a nested subvolume as real subvolumes where the snapshot has
/// placeholders. Neither is reported or touched.
#[test]
fn undo_against_the_live_subvolume() {
    let Some((_fs, data, s1, s2)) = before_and_after(512) else {
        return;
    };

    let against_live = diff(&s1, &data, &DiffOptions::default()).expect("diff");
    assert_eq!(
        against_live,
        diff(&s1, &s2, &DiffOptions::default()).expect("diff")
    );
    let report = undo(&s1, &data, &data, &[]).expect("undo");
    assert!(report.is_complete(), "{:#?}", report.failed);
    assert!(diff(&s1, &data, &DiffOptions::default())
        .expect("diff")
        .is_empty());
    // Listing the live directories moved their atimes, so those are not compared here.
    let skip = [".snapshots", "nested"];
    assert_same(
        &capture(&s1, false, &skip),
        &capture(&data, false, &skip),
        "live after undo",
    );
    assert!(data.join(".snapshots/2/snapshot/created").exists());
    assert_eq!(
        std::fs::read(data.join("nested/more")).expect("nested untouched"),
        b"more"
    );
}
