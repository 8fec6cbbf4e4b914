//! Live mode: start, discard and commit on a real overlay over a real btrfs snapshot.

use crate::support::*;
use snapguard_btrfs::testing::{try_new, LoopFs};
use snapguard_local::live::{self, StartOptions, UpperLayer, UpperSpec};
use snapguard_local::{CreateOptions, Error, Store};
use snapguard_policy::LocalConfig;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Env {
    // Field order is drop order: unmount the overlays before the filesystem goes.
    _mounts: MountGuard,
    store: Store,
    run_dir: PathBuf,
    lfs: LoopFs,
}

/// A filesystem with subvolume `data` holding the varied tree, its store, and a run directory
/// beside the filesystem.
fn setup() -> Option<Env> {
    let lfs = try_new(512)?;
    let data = lfs.mnt().join("data");
    snapguard_btrfs::create_subvolume(&data).unwrap();
    populate(&data);
    let store = Store::open("data", &LocalConfig::new(&data)).unwrap();
    let run_dir = lfs.scratch().join("run");
    Some(Env {
        _mounts: MountGuard(lfs.scratch().to_path_buf(), vec![lfs.mnt()]),
        store,
        run_dir,
        lfs,
    })
}

fn tmpfs_opts(env: &Env) -> StartOptions {
    StartOptions {
        run_dir: env.run_dir.clone(),
        mountpoint: None,
        upper: UpperSpec::Tmpfs {
            size: Some("256M".into()),
        },
    }
}

/// Every kind of change: created, modified, deleted (files and trees: whiteouts), renamed
/// files, renamed directories (also inside a renamed directory, and a swap), a file replaced
/// by a directory and back, a directory removed and re-created (opaque), owner, mode and
/// extended attributes of lower entries, new hard links, special files, exact times.
fn mutate(m: &Path) {
    use std::os::unix::fs::symlink;
    fs::write(m.join("new.txt"), b"brand new\n").unwrap();
    fs::create_dir_all(m.join("newdir/inner")).unwrap();
    fs::write(m.join("newdir/inner/file"), b"inner\n").unwrap();
    // Modify part of a lower file.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.join("big.bin"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"CHANGED", 100_000).unwrap();
    drop(f);
    // Renames of lower directories (redirects): relative, then absolute into the root, a
    // deletion inside the renamed one, and a swap.
    fs::rename(m.join("docs"), m.join("documents")).unwrap();
    fs::remove_file(m.join("documents/readme")).unwrap();
    fs::write(m.join("documents/sub/deep.txt"), b"deeper\n").unwrap();
    fs::write(m.join("documents/added"), b"added\n").unwrap();
    fs::rename(m.join("documents/sub"), m.join("sub-out")).unwrap();
    fs::rename(m.join("tree/x"), m.join("moved-x")).unwrap();
    fs::rename(m.join("swap1"), m.join("swap-tmp")).unwrap();
    fs::rename(m.join("swap2"), m.join("swap1")).unwrap();
    fs::rename(m.join("swap-tmp"), m.join("swap2")).unwrap();
    // Renamed file (the other hard link stays with the old content).
    fs::rename(m.join("h1"), m.join("h1-renamed")).unwrap();
    fs::write(m.join("h1-renamed"), b"relinked\n").unwrap();
    // Deletions of a file and a whole tree, then a directory replaced by a file.
    fs::remove_dir_all(m.join("tree/y")).unwrap();
    fs::remove_dir_all(m.join("tree")).unwrap();
    fs::write(m.join("tree"), b"now a file\n").unwrap();
    // A file replaced by a directory.
    fs::remove_file(m.join("pipe")).unwrap();
    fs::create_dir(m.join("pipe")).unwrap();
    fs::write(m.join("pipe/contents"), b"was a fifo\n").unwrap();
    // A directory removed and re-created: opaque.
    fs::remove_dir_all(m.join("olddir")).unwrap();
    fs::create_dir(m.join("olddir")).unwrap();
    fs::write(m.join("olddir/fresh"), b"fresh\n").unwrap();
    // Metadata of lower entries.
    std::os::unix::fs::lchown(m.join("owned"), Some(2000), Some(3000)).unwrap();
    rustix::fs::chmod(m.join("suid"), rustix::fs::Mode::from_raw_mode(0o2750)).unwrap();
    rustix::fs::lremovexattr(m.join("a.txt"), "user.color").unwrap();
    set_xattr(&m.join("a.txt"), "user.flavour", b"lemon");
    set_xattr(&m.join("big.bin"), "user.size", b"big");
    rustix::fs::lremovexattr(m.join("documents"), "user.gone").unwrap();
    run(std::process::Command::new("setfacl")
        .args(["-m", "u:1001:r"])
        .arg(m.join("acl.txt")));
    // The root directory itself.
    rustix::fs::chmod(m, rustix::fs::Mode::from_raw_mode(0o750)).unwrap();
    set_xattr(m, "user.root", b"yes");
    // New hard links, symlink, FIFO, device, sparse file, exact times.
    fs::write(m.join("n1"), b"pair\n").unwrap();
    fs::hard_link(m.join("n1"), m.join("n2")).unwrap();
    symlink("../somewhere/else", m.join("newdir/dangling")).unwrap();
    run(std::process::Command::new("mkfifo").arg(m.join("newdir/fifo")));
    run(std::process::Command::new("mknod")
        .arg(m.join("newdir/zero"))
        .args(["c", "1", "5"]));
    let s = fs::File::create(m.join("newdir/holes")).unwrap();
    s.set_len(16 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&s, b"x", 9 << 20).unwrap();
    drop(s);
    set_times(
        &m.join("new.txt"),
        (1_700_000_000, 111),
        (1_650_000_000, 222_333_444),
    );
    set_times(
        &m.join("newdir/dangling"),
        (1_700_000_001, 5),
        (1_650_000_001, 6),
    );
    // A lower file moved into a new directory.
    fs::rename(m.join("null"), m.join("newdir/null")).unwrap();
}

#[test]
fn commit_reproduces_the_merged_view() {
    let Some(env) = setup() else { return };
    let sub = env.store.subvolume().to_path_buf();
    let session = live::start(&env.store, None, &tmpfs_opts(&env)).unwrap();
    assert_eq!(session.lower, 1);
    assert!(session.lower_created);
    let lower = env.store.get(1).unwrap();
    assert_eq!(lower.description, live::START_DESCRIPTION);
    let before_lower = manifest(&lower.path);
    let before_sub = manifest(&sub);
    let m = session.mountpoint.clone();
    assert_eq!(m, env.run_dir.join("data/merged"));
    // The merged view starts out identical to the snapshot, root directory included.
    assert_same("fresh merged view", &before_lower, &manifest(&m));

    mutate(&m);
    let merged = manifest(&m);
    assert!(merged.contains_key("documents/added") && !merged.contains_key("docs"));

    let report = live::commit(&env.store, &env.run_dir, Some("tried it")).unwrap();
    assert_eq!(report.snapshot.number, 2);
    assert_eq!(report.snapshot.description, "tried it");
    assert!(report.changes.renamed_dirs >= 4, "{:?}", report.changes);
    assert!(report.changes.deleted >= 3, "{:?}", report.changes);
    let committed = env.store.get(2).unwrap();
    assert!(snapguard_btrfs::is_readonly(&committed.path).unwrap());
    assert_same("committed snapshot", &merged, &manifest(&committed.path));
    // Holes stay holes.
    let holes = fs::metadata(committed.path.join("newdir/holes")).unwrap();
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&holes) * 512 < 1 << 20,
        "sparse file was filled in"
    );
    // No overlay bookkeeping was copied.
    for path in merged.keys() {
        let p = committed.path.join(path.trim_start_matches('/'));
        assert!(
            xattrs(&p)
                .iter()
                .all(|(n, _)| !n.starts_with("trusted.overlay.")),
            "{path} got overlay attributes"
        );
    }
    // The lower snapshot and the subvolume are untouched; the session is gone completely.
    assert_same(
        "lower snapshot after commit",
        &before_lower,
        &manifest(&lower.path),
    );
    assert_same("subvolume after commit", &before_sub, &manifest(&sub));
    assert_eq!(mounted_below(&env.run_dir), Vec::<String>::new());
    assert!(!env.run_dir.join("data.json").exists());
    assert!(!env.run_dir.join("data").exists());
    assert!(!env.store.live_lock_path(1).exists());
    assert!(!env.store.snapshot_dir().join(".live-commit-data").exists());
    assert_eq!(
        env.store
            .list()
            .unwrap()
            .iter()
            .map(|s| s.number)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    // Snapshot 1 is no longer protected.
    env.store.delete(1).unwrap();
}

#[test]
fn discard_leaves_nothing() {
    let Some(env) = setup() else { return };
    let sub = env.store.subvolume().to_path_buf();
    let base = env
        .store
        .create(&CreateOptions {
            description: "base".into(),
            ..CreateOptions::default()
        })
        .unwrap();
    let before_lower = manifest(&base.path);
    let before_sub = manifest(&sub);
    let session = live::start(&env.store, Some(base.number), &tmpfs_opts(&env)).unwrap();
    assert!(!session.lower_created);
    mutate(&session.mountpoint);

    // While the session runs the lower snapshot cannot be deleted, and a second start is refused.
    let err = env.store.delete(base.number).unwrap_err();
    assert!(matches!(err, Error::Protected { .. }), "{err}");
    let err = live::start(&env.store, None, &tmpfs_opts(&env)).unwrap_err();
    assert!(err.to_string().contains("already active"), "{err}");
    let st = live::status(&env.run_dir, None).unwrap();
    assert_eq!(st.len(), 1);
    assert!(st[0].mounted && st[0].upper_present);
    assert!(st[0].upper_used_bytes.unwrap() > 0);

    let report = live::discard(&env.store, &env.run_dir).unwrap();
    assert_eq!(report.session.unwrap().lower, base.number);
    assert_same(
        "lower snapshot after discard",
        &before_lower,
        &manifest(&base.path),
    );
    assert_same("subvolume after discard", &before_sub, &manifest(&sub));
    assert_eq!(mounted_below(&env.run_dir), Vec::<String>::new());
    assert_eq!(
        fs::read_dir(&env.run_dir).unwrap().count(),
        1,
        "only data.lock stays"
    );
    assert!(env.run_dir.join("data.lock").exists());
    assert!(!env.store.live_lock_path(base.number).exists());
    assert_eq!(env.store.list().unwrap().len(), 1);
    assert!(live::status(&env.run_dir, None).unwrap().is_empty());
    // Nothing left to discard or commit.
    let err = live::discard(&env.store, &env.run_dir).unwrap_err();
    assert!(err.to_string().contains("no live session"), "{err}");
    let err = live::commit(&env.store, &env.run_dir, None).unwrap_err();
    assert!(err.to_string().contains("no live session"), "{err}");
    env.store.delete(base.number).unwrap();
}

#[test]
fn scratch_directory_upper_and_a_busy_commit() {
    let Some(env) = setup() else { return };
    // A scratch directory on the btrfs filesystem itself (outside the snapshots), and a mount
    // point of the user's choosing.
    let scratch = env.lfs.mnt().join("scratch");
    let mp = env.lfs.scratch().join("view");
    let opts = StartOptions {
        run_dir: env.run_dir.clone(),
        mountpoint: Some(mp.clone()),
        upper: UpperSpec::Dir(scratch.clone()),
    };
    let s = live::start(&env.store, None, &opts).unwrap();
    assert_eq!(
        s.upper,
        UpperLayer::Dir {
            dir: scratch.clone(),
            created: true
        }
    );
    assert_eq!(s.mountpoint, mp);
    fs::write(mp.join("a.txt"), b"changed\n").unwrap();
    fs::remove_file(mp.join("big.bin")).unwrap();
    fs::rename(mp.join("docs"), mp.join("d2")).unwrap();
    let expected = manifest(&mp);

    // A process inside the merged view makes the commit fail; nothing is committed and the
    // session goes on.
    let busy = fs::File::open(mp.join("h2")).unwrap();
    let err = live::commit(&env.store, &env.run_dir, None).unwrap_err();
    assert!(err.to_string().contains("busy"), "{err}");
    assert_eq!(env.store.list().unwrap().len(), 1);
    assert_same(
        "merged view after the failed commit",
        &expected,
        &manifest(&mp),
    );
    drop(busy);

    // A commit that crashed before registering leaves its temporary subvolume; it is never
    // listed and the next commit replaces it.
    let leftover = env.store.snapshot_dir().join(".live-commit-data");
    snapguard_btrfs::snapshot(env.store.subvolume(), &leftover, false).unwrap();
    assert_eq!(env.store.list().unwrap().len(), 1);

    let r = live::commit(&env.store, &env.run_dir, None).unwrap();
    assert_eq!(r.snapshot.description, "live mode: commit of snapshot 1");
    assert_same("committed", &expected, &manifest(&r.snapshot.path));
    assert!(!leftover.exists());
    assert!(
        !scratch.exists(),
        "the scratch directory the session created is removed"
    );
    assert!(!mp.exists());
    assert_eq!(mounted_below(&mp), Vec::<String>::new());
}

#[test]
fn bad_options_are_refused_before_anything_is_mounted() {
    let Some(env) = setup() else { return };
    let snap = env.store.create(&CreateOptions::default()).unwrap();
    // An upper directory inside the snapshots.
    let opts = StartOptions {
        upper: UpperSpec::Dir(snap.path.join("x")),
        ..tmpfs_opts(&env)
    };
    let err = live::start(&env.store, Some(snap.number), &opts).unwrap_err();
    assert!(err.to_string().contains("inside the snapshots"), "{err}");
    // A mount point that is not empty.
    let busy = env.lfs.scratch().join("full");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("x"), b"x").unwrap();
    let opts = StartOptions {
        mountpoint: Some(busy.clone()),
        ..tmpfs_opts(&env)
    };
    let err = live::start(&env.store, Some(snap.number), &opts).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(busy.join("x").exists());
    // A tmpfs size that would smuggle in other mount options.
    let opts = StartOptions {
        upper: UpperSpec::Tmpfs {
            size: Some("1G,uid=1000".into()),
        },
        ..tmpfs_opts(&env)
    };
    let err = live::start(&env.store, Some(snap.number), &opts).unwrap_err();
    assert!(err.to_string().contains("not a tmpfs size"), "{err}");
    // A snapshot that does not exist.
    let err = live::start(&env.store, Some(42), &tmpfs_opts(&env)).unwrap_err();
    assert!(matches!(err, Error::NoSuchSnapshot { .. }), "{err}");
    // Nothing was left behind, and no snapshot was added.
    assert_eq!(mounted_below(&env.run_dir), Vec::<String>::new());
    assert!(!env.run_dir.join("data.json").exists());
    assert!(!env.store.live_lock_path(snap.number).exists());
    assert_eq!(env.store.list().unwrap().len(), 1);
}

/// A start refused because something is in the way must not remove or unmount that thing when
/// it cleans up after itself: the user's `upper/` directory stays with its files, and a mount
/// already at the chosen mount point (another session's, a user's) stays mounted.
#[test]
fn refused_start_leaves_what_was_in_the_way_alone() {
    let Some(env) = setup() else { return };
    let snap = env.store.create(&CreateOptions::default()).unwrap();
    // A scratch directory whose upper/ holds someone's files.
    let scratch = env.lfs.scratch().join("scratch");
    fs::create_dir_all(scratch.join("upper")).unwrap();
    fs::write(scratch.join("upper/keep.txt"), b"not yours\n").unwrap();
    let opts = StartOptions {
        upper: UpperSpec::Dir(scratch.clone()),
        ..tmpfs_opts(&env)
    };
    let err = live::start(&env.store, Some(snap.number), &opts).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(
        fs::read(scratch.join("upper/keep.txt")).unwrap(),
        b"not yours\n"
    );
    // A mount point that already has an overlay mounted on it.
    let other = env.lfs.mnt().join("other");
    for d in ["upper", "work"] {
        fs::create_dir_all(other.join(d)).unwrap();
    }
    let view = env.lfs.scratch().join("view");
    fs::create_dir(&view).unwrap();
    run(Command::new("mount")
        .args(["-t", "overlay", "other-overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            snap.path.display(),
            other.join("upper").display(),
            other.join("work").display()
        ))
        .arg(&view));
    let opts = StartOptions {
        mountpoint: Some(view.clone()),
        ..tmpfs_opts(&env)
    };
    let err = live::start(&env.store, Some(snap.number), &opts).unwrap_err();
    assert!(err.to_string().contains("already a mount point"), "{err}");
    assert_eq!(mounted_below(&view), vec![view.display().to_string()]);
    run(Command::new("umount").arg(&view));
    // Nothing of the refused sessions is left.
    assert_eq!(mounted_below(&env.run_dir), Vec::<String>::new());
    assert!(!env.run_dir.join("data.json").exists());
    assert!(!env.store.live_lock_path(snap.number).exists());
}

#[test]
fn stale_lock_from_an_earlier_boot_is_removed() {
    let Some(env) = setup() else { return };
    let s = live::start(&env.store, None, &tmpfs_opts(&env)).unwrap();
    live::discard(&env.store, &env.run_dir).unwrap();
    // What a reboot leaves: live.lock with another boot id, no session record.
    let mut old = s.clone();
    old.boot_id = "00000000-0000-0000-0000-000000000000".into();
    let lock = env.store.live_lock_path(s.lower);
    fs::write(&lock, serde_json::to_vec(&old).unwrap()).unwrap();
    assert!(!live::lock_is_active(&lock));
    let r = live::discard(&env.store, &env.run_dir).unwrap();
    assert!(r.session.is_none());
    assert_eq!(r.stale_locks_removed, vec![s.lower]);
    assert!(!lock.exists());
    env.store.delete(s.lower).unwrap();
}
