//! Tests of the snapshot store, cleanup and rollback on a real btrfs filesystem (a loop device;
//! skipped with a visible reason without root).

#![allow(clippy::unwrap_used)]

use super::*;
use crate::rollback::{nested_subvolumes, rollback, RollbackKind, RollbackMode};
use snapguard_btrfs::testing::{try_new, LoopFs};
use std::fs;
use std::process::Command;

/// A filesystem with a subvolume `data` holding one file, and its config.
fn setup() -> Option<(LoopFs, LocalConfig)> {
    let lfs = try_new(256)?;
    let data = lfs.mnt().join("data");
    snapguard_btrfs::create_subvolume(&data).unwrap();
    fs::write(data.join("f"), b"one").unwrap();
    Some((lfs, LocalConfig::new(&data)))
}

fn single(desc: &str) -> CreateOptions {
    CreateOptions {
        description: desc.into(),
        ..CreateOptions::default()
    }
}

#[test]
fn create_list_get_and_numbering() {
    let Some((lfs, cfg)) = setup() else { return };
    let store = Store::open("data", &cfg).unwrap();
    assert!(
        store.list().unwrap().is_empty(),
        "read-only use creates nothing"
    );
    assert!(!store.snapshot_dir().exists());

    let s1 = store.create(&single("first")).unwrap();
    assert_eq!(s1.number, 1);
    assert!(snapguard_btrfs::is_subvolume(store.snapshot_dir()).unwrap());
    assert_eq!(
        fs::metadata(store.snapshot_dir())
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    assert!(snapguard_btrfs::is_readonly(&s1.path).unwrap());
    assert_eq!(fs::read(s1.path.join("f")).unwrap(), b"one");
    let info = snapguard_btrfs::subvolume_info(&s1.path).unwrap();
    assert_eq!(s1.uuid, info.uuid.to_string());
    let src = snapguard_btrfs::subvolume_info(&cfg.subvolume).unwrap();
    assert_eq!(s1.source_uuid, src.uuid.to_string());
    assert!(
        s1.time.ends_with('Z') && s1.time.contains('.'),
        "{}",
        s1.time
    );

    fs::write(cfg.subvolume.join("f"), b"two").unwrap();
    let s2 = store.create(&single("second")).unwrap();
    assert_eq!(s2.number, 2);
    assert_eq!(fs::read(s2.path.join("f")).unwrap(), b"two");
    assert_eq!(store.get(1).unwrap(), s1);
    let listed: Vec<u32> = store.list().unwrap().iter().map(|s| s.number).collect();
    assert_eq!(listed, vec![1, 2]);

    // Deleting the highest number never lets it be handed out again.
    store.delete(2).unwrap();
    assert!(!store.snapshot_dir().join("2").exists());
    assert!(matches!(
        store.get(2),
        Err(Error::NoSuchSnapshot { number: 2, .. })
    ));
    let s3 = store.create(&single("third")).unwrap();
    assert_eq!(s3.number, 3);

    // A reopened store (another process) agrees.
    let again = Store::open("data", &cfg).unwrap();
    assert_eq!(again.list().unwrap().len(), 2);
    drop(lfs);
}

#[test]
fn pre_post_rules() {
    let Some((_lfs, cfg)) = setup() else { return };
    let store = Store::open("data", &cfg).unwrap();
    let pre = store
        .create(&CreateOptions {
            kind: LocalKind::Pre,
            cleanup: CleanupAlgorithm::Number,
            ..CreateOptions::default()
        })
        .unwrap();
    let post_of = |n| CreateOptions {
        kind: LocalKind::Post,
        pre_number: Some(n),
        ..CreateOptions::default()
    };
    let single = store.create(&single("x")).unwrap();
    let e = store.create(&post_of(single.number)).unwrap_err();
    assert!(e.to_string().contains("not a pre snapshot"), "{e}");
    let e = store.create(&post_of(99)).unwrap_err();
    assert!(matches!(e, Error::NoSuchSnapshot { number: 99, .. }), "{e}");
    let post = store.create(&post_of(pre.number)).unwrap();
    assert_eq!(post.pre_number, Some(pre.number));
    let e = store.create(&post_of(pre.number)).unwrap_err();
    assert!(e.to_string().contains("already has its post"), "{e}");
    let e = store
        .create(&CreateOptions {
            kind: LocalKind::Post,
            ..CreateOptions::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("--post N"), "{e}");

    let all = store.list().unwrap();
    let e = check_pairs("data", &all, &[pre.number]).unwrap_err();
    assert!(matches!(e, Error::PairSplit { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("'{} {}'", pre.number, post.number)),
        "{e}"
    );
    check_pairs("data", &all, &[post.number]).unwrap_err();
    check_pairs("data", &all, &[pre.number, post.number]).unwrap();
    check_pairs("data", &all, &[single.number]).unwrap();
}

#[test]
fn protected_snapshots_are_not_deleted() {
    let Some((lfs, cfg)) = setup() else { return };
    let store = Store::open("data", &cfg).unwrap();
    let s1 = store.create(&single("mounted")).unwrap();
    let s2 = store
        .create(&CreateOptions {
            userdata: BTreeMap::from([("important".into(), "yes".into())]),
            ..CreateOptions::default()
        })
        .unwrap();
    let s3 = store.create(&single("live")).unwrap();

    // Mounted with subvol= elsewhere.
    let at = lfs.scratch().join("m1");
    fs::create_dir(&at).unwrap();
    let rel = format!("subvol=/data/.snapshots/{}/snapshot", s1.number);
    let ok = Command::new("mount")
        .args(["-o", &rel, lfs.device()])
        .arg(&at)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let r = store.delete(s1.number);
    let _ = Command::new("umount").arg(&at).status();
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Protected { number: 1, .. }), "{e}");
    assert!(e.to_string().contains(&at.display().to_string()), "{e}");
    assert!(store.get(1).is_ok(), "still listed");

    let e = store.delete(s2.number).unwrap_err();
    assert!(e.to_string().contains("important"), "{e}");
    store
        .delete_with(
            s2.number,
            &DeleteOptions {
                allow_important: true,
            },
        )
        .unwrap();

    fs::write(store.live_lock_path(s3.number), b"").unwrap();
    let e = store.delete(s3.number).unwrap_err();
    assert!(e.to_string().contains("live"), "{e}");
    fs::remove_file(store.live_lock_path(s3.number)).unwrap();
    store.delete(s3.number).unwrap();

    // Unmounted now: deletable.
    store.delete(s1.number).unwrap();
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn default_subvolume_is_protected() {
    let Some((lfs, cfg)) = setup() else { return };
    let store = Store::open("data", &cfg).unwrap();
    let s = store.create(&single("x")).unwrap();
    let id = snapguard_btrfs::subvolume_info(&s.path).unwrap().id;
    snapguard_btrfs::set_default_subvolume(&lfs.mnt(), id).unwrap();
    let ctx = store.use_context().unwrap();
    assert_eq!(store.status(&s, &ctx).unwrap().default, Some(true));
    let e = store.delete(s.number).unwrap_err();
    assert!(e.to_string().contains("default subvolume"), "{e}");
    snapguard_btrfs::set_default_subvolume(&lfs.mnt(), snapguard_btrfs::TOP_LEVEL_ID).unwrap();
    store.delete(s.number).unwrap();
}

/// Leaves entry `n` as a crash at each step would.
#[test]
fn interrupted_creates_and_deletes_are_hidden_then_removed() {
    let Some((_lfs, cfg)) = setup() else { return };
    let store = Store::open("data", &cfg).unwrap();
    let keep = store.create(&single("keep")).unwrap();
    let dir = store.snapshot_dir().to_path_buf();
    let src_uuid = snapguard_btrfs::subvolume_info(&cfg.subvolume)
        .unwrap()
        .uuid;

    // 2: crash after mkdir (only a temporary file).
    fs::create_dir(dir.join("2")).unwrap();
    fs::write(dir.join("2/.creating.json.tmp"), b"{").unwrap();
    // 3: crash after the btrfs snapshot, before info.json.
    fs::create_dir(dir.join("3")).unwrap();
    let rec = format!(
        "{{\"number\":3,\"source_uuid\":\"{src_uuid}\",\"source\":\"{}\"}}",
        cfg.subvolume.display()
    );
    fs::write(dir.join("3/creating.json"), rec).unwrap();
    snapguard_btrfs::snapshot(&cfg.subvolume, &dir.join("3/snapshot"), true).unwrap();
    // 4: crash in the middle of a delete.
    let s4 = store.create(&single("being deleted")).unwrap();
    assert_eq!(s4.number, 4);
    fs::rename(dir.join("4/info.json"), dir.join("4/deleting.json")).unwrap();
    // 5: not SnapGuard's: a snapshot with no record (Snapper's layout).
    fs::create_dir(dir.join("5")).unwrap();
    fs::write(dir.join("5/info.xml"), b"<snapshot/>").unwrap();
    snapguard_btrfs::snapshot(&cfg.subvolume, &dir.join("5/snapshot"), true).unwrap();
    // 6: a snapshot of another subvolume pretending to be ours.
    let other = cfg.subvolume.parent().unwrap().join("other");
    snapguard_btrfs::create_subvolume(&other).unwrap();
    fs::create_dir(dir.join("6")).unwrap();
    fs::write(
        dir.join("6/creating.json"),
        format!(
            "{{\"number\":6,\"source_uuid\":\"{src_uuid}\",\"source\":\"{}\"}}",
            cfg.subvolume.display()
        ),
    )
    .unwrap();
    snapguard_btrfs::snapshot(&other, &dir.join("6/snapshot"), true).unwrap();

    let listed: Vec<u32> = store.list().unwrap().iter().map(|s| s.number).collect();
    assert_eq!(listed, vec![keep.number]);
    let inc = store.incomplete().unwrap();
    let states: Vec<(u32, IncompleteState)> =
        inc.iter().map(|i| (i.number, i.state.clone())).collect();
    assert_eq!(
        states,
        vec![
            (2, IncompleteState::Empty),
            (3, IncompleteState::Creating),
            (4, IncompleteState::Deleting),
            (5, IncompleteState::Foreign),
            (6, IncompleteState::Creating),
        ]
    );
    assert!(matches!(
        store.get(3),
        Err(Error::IncompleteSnapshot { number: 3, .. })
    ));

    let report = crate::cleanup::cleanup(&store, 0).unwrap();
    assert_eq!(report.incomplete_removed, vec![2, 3, 4]);
    let left: Vec<u32> = report
        .incomplete_left
        .iter()
        .map(|(i, _)| i.number)
        .collect();
    assert_eq!(left, vec![5, 6]);
    let why6 = &report.incomplete_left[1].1;
    assert!(
        why6.contains("not a snapshot of the subvolume recorded"),
        "{why6}"
    );
    for n in [2, 3, 4] {
        assert!(!dir.join(n.to_string()).exists(), "{n} removed");
    }
    assert!(dir.join("5/snapshot").exists() && dir.join("6/snapshot").exists());
    // Numbers of removed entries are not reused.
    assert_eq!(store.create(&single("next")).unwrap().number, 7);
}

#[test]
fn delete_refuses_a_swapped_subvolume() {
    let Some((_lfs, cfg)) = setup() else { return };
    let store = Store::open("data", &cfg).unwrap();
    let s = store.create(&single("x")).unwrap();
    // Someone replaced the snapshot with another snapshot of the same subvolume.
    let dir = store.snapshot_dir().join("1");
    snapguard_btrfs::delete_subvolume(&s.path).unwrap();
    snapguard_btrfs::snapshot(&cfg.subvolume, &s.path, true).unwrap();
    let e = store.delete(1).unwrap_err();
    assert!(matches!(e, Error::NotOurs { number: 1, .. }), "{e}");
    assert!(e.to_string().contains("UUID"), "{e}");
    assert!(dir.join("info.json").exists(), "nothing changed");
}

#[test]
fn open_errors_name_the_config() {
    let Some((lfs, _)) = setup() else { return };
    let e = Store::open("x", &LocalConfig::new(lfs.mnt().join("missing"))).unwrap_err();
    assert!(matches!(e, Error::SubvolumeMissing { .. }), "{e}");
    assert!(e.to_string().starts_with("config x: subvolume "), "{e}");
    fs::create_dir(lfs.mnt().join("plain")).unwrap();
    let e = Store::open("x", &LocalConfig::new(lfs.mnt().join("plain"))).unwrap_err();
    assert!(matches!(e, Error::NotSubvolume { .. }), "{e}");
    let e = Store::open("x", &LocalConfig::new(lfs.scratch())).unwrap_err();
    assert!(matches!(e, Error::NotBtrfs { .. }), "{e}");
}

fn nested_layout(cfg: &LocalConfig) {
    let data = &cfg.subvolume;
    fs::create_dir_all(data.join("deep/er")).unwrap();
    snapguard_btrfs::create_subvolume(&data.join("deep/er/nested")).unwrap();
    fs::write(data.join("deep/er/nested/n"), b"nested").unwrap();
    snapguard_btrfs::create_subvolume(&data.join("deep/er/nested/inner")).unwrap();
}

#[test]
fn in_place_rollback_keeps_snapshots_and_nested_subvolumes() {
    let Some((_lfs, cfg)) = setup() else { return };
    let store = Store::open("data", &cfg).unwrap();
    let data = cfg.subvolume.clone();
    fs::write(data.join("g"), b"g1").unwrap();
    let s1 = store.create(&single("before")).unwrap();
    fs::write(data.join("f"), b"changed").unwrap();
    fs::remove_file(data.join("g")).unwrap();
    fs::write(data.join("new"), b"new").unwrap();
    nested_layout(&cfg);
    assert_eq!(
        nested_subvolumes(&data).unwrap(),
        vec![PathBuf::from(".snapshots"), PathBuf::from("deep/er/nested")]
    );
    let old_uuid = snapguard_btrfs::subvolume_info(&data).unwrap().uuid;

    let out = rollback(&store, s1.number, RollbackMode::Auto).unwrap();
    let RollbackKind::InPlace { moved, set_aside } = &out.how else {
        panic!("in place expected")
    };
    assert_eq!(moved.len(), 2);
    assert!(set_aside.is_empty());
    assert_eq!(fs::read(data.join("f")).unwrap(), b"one");
    assert_eq!(fs::read(data.join("g")).unwrap(), b"g1");
    assert!(!data.join("new").exists());
    assert_eq!(fs::read(data.join("deep/er/nested/n")).unwrap(), b"nested");
    assert!(snapguard_btrfs::is_subvolume(&data.join("deep/er/nested/inner")).unwrap());
    let info = snapguard_btrfs::subvolume_info(&data).unwrap();
    assert_ne!(info.uuid, old_uuid);
    assert!(!info.readonly, "the restored subvolume is writable");
    assert!(!data
        .parent()
        .unwrap()
        .join(".data.snapguard-rollback")
        .exists());
    assert!(crate::rollback::pending_journal(&data).is_none());

    let store = Store::open("data", &cfg).unwrap();
    let snaps = store.list().unwrap();
    assert_eq!(snaps.len(), 2);
    let safety = &snaps[1];
    assert_eq!(safety.number, out.safety.number);
    assert_eq!(safety.description, "rollback safety before restoring 1");
    assert!(safety.is_important());
    assert_eq!(fs::read(safety.path.join("f")).unwrap(), b"changed");
    assert_eq!(fs::read(safety.path.join("new")).unwrap(), b"new");
    // Old snapshots stay deletable: they are checked against the UUID recorded for them.
    store.delete(s1.number).unwrap();
    // And new ones are taken of the restored subvolume.
    let s3 = store.create(&single("after")).unwrap();
    assert_eq!(fs::read(s3.path.join("f")).unwrap(), b"one");
}

#[test]
fn interrupted_rollback_resumes_from_every_step() {
    let Some((_lfs, cfg)) = setup() else { return };
    let data = cfg.subvolume.clone();
    let parent = data.parent().unwrap().to_path_buf();
    for step in 0..3 {
        let store = Store::open("data", &cfg).unwrap();
        fs::write(data.join("f"), format!("state {step}")).unwrap();
        let target = store.create(&single("target")).unwrap();
        fs::write(data.join("f"), b"later").unwrap();
        // Run the rollback, then undo its last steps to recreate the state of a crash.
        let out = rollback(&store, target.number, RollbackMode::Auto).unwrap();
        let restored = snapguard_btrfs::subvolume_info(&data).unwrap();
        let journal = parent.join(".data.snapguard-rollback.json");
        let temp = parent.join(".data.snapguard-rollback");
        let j = serde_json::json!({
            "config": "data",
            "subvolume": data,
            "temp": temp,
            "old_uuid": restored.uuid.to_string(),
            "target": target.number,
            "target_path": store.snapshot_path(target.number),
            "target_uuid": target.uuid,
            "safety": out.safety.number,
        });
        fs::write(&journal, serde_json::to_vec(&j).unwrap()).unwrap();
        // The journal now says "replace the current subvolume by a copy of the target".
        match step {
            0 => {}
            1 => {
                snapguard_btrfs::snapshot(&target.path, &temp, false).unwrap();
            }
            _ => {
                snapguard_btrfs::snapshot(&target.path, &temp, false).unwrap();
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &temp,
                    rustix::fs::CWD,
                    &data,
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
            }
        }
        let e = Store::open("data", &cfg).unwrap_err();
        assert!(matches!(e, Error::RollbackInterrupted { .. }), "{e}");
        assert!(e.to_string().contains("--resume"), "{e}");
        let (n, moved) = crate::rollback::resume("data", &cfg).unwrap().unwrap();
        assert_eq!(n, target.number);
        assert_eq!(moved, vec![PathBuf::from(".snapshots")], "step {step}");
        assert!(!temp.exists() && !journal.exists());
        assert_eq!(
            fs::read_to_string(data.join("f")).unwrap(),
            format!("state {step}")
        );
        let store = Store::open("data", &cfg).unwrap();
        assert!(
            store.get(target.number).is_ok(),
            "step {step}: snapshots kept"
        );
        assert!(crate::rollback::resume("data", &cfg).unwrap().is_none());
    }
}

#[test]
fn rollback_refuses_a_mounted_subvolume_and_sets_aside_conflicts() {
    let Some((lfs, cfg)) = setup() else { return };
    let store = Store::open("data", &cfg).unwrap();
    let data = cfg.subvolume.clone();
    fs::create_dir(data.join("cache")).unwrap();
    fs::write(data.join("cache/old"), b"old").unwrap();
    let s1 = store.create(&single("before")).unwrap();
    fs::remove_dir_all(data.join("cache")).unwrap();
    snapguard_btrfs::create_subvolume(&data.join("cache")).unwrap();
    fs::write(data.join("cache/x"), b"x").unwrap();

    let at = lfs.scratch().join("m");
    fs::create_dir(&at).unwrap();
    assert!(Command::new("mount")
        .args(["-o", "subvol=/data", lfs.device()])
        .arg(&at)
        .status()
        .unwrap()
        .success());
    let r = rollback(&store, s1.number, RollbackMode::Auto);
    let _ = Command::new("umount").arg(&at).status();
    let e = r.unwrap_err();
    assert!(matches!(e, Error::SubvolumeBusy { .. }), "{e}");
    assert!(e.to_string().contains("--set-default"), "{e}");
    assert_eq!(store.list().unwrap().len(), 1, "nothing was created");

    let out = rollback(&store, s1.number, RollbackMode::Auto).unwrap();
    let RollbackKind::InPlace { set_aside, .. } = &out.how else {
        panic!()
    };
    assert_eq!(set_aside, &vec![PathBuf::from("cache.snapguard-from-1")]);
    assert_eq!(fs::read(data.join("cache/x")).unwrap(), b"x");
    assert_eq!(
        fs::read(data.join("cache.snapguard-from-1/old")).unwrap(),
        b"old"
    );
}

#[test]
fn set_default_rollback_of_the_top_level() {
    let Some(lfs) = try_new(256) else { return };
    let cfg = LocalConfig::new(lfs.mnt());
    let store = Store::open("top", &cfg).unwrap();
    fs::write(lfs.mnt().join("f"), b"one").unwrap();
    let s1 = store.create(&single("one")).unwrap();
    fs::write(lfs.mnt().join("f"), b"two").unwrap();
    let e = rollback(&store, s1.number, RollbackMode::Auto).unwrap_err();
    assert!(e.to_string().contains("--set-default"), "{e}");
    let out = rollback(&store, s1.number, RollbackMode::SetDefault).unwrap();
    let RollbackKind::Default {
        copy, subvolume_id, ..
    } = &out.how
    else {
        panic!()
    };
    assert!(copy.writable && !snapguard_btrfs::is_readonly(&copy.path).unwrap());
    assert_eq!(
        snapguard_btrfs::default_subvolume(&lfs.mnt()).unwrap(),
        *subvolume_id
    );
    assert_eq!(fs::read(out.safety.path.join("f")).unwrap(), b"two");
    // What a reboot would see: a mount without subvol=.
    let at = lfs.scratch().join("boot");
    fs::create_dir(&at).unwrap();
    assert!(Command::new("mount")
        .arg(lfs.device())
        .arg(&at)
        .status()
        .unwrap()
        .success());
    let seen = fs::read(at.join("f"));
    let e = store.delete(copy.number);
    let _ = Command::new("umount").arg(&at).status();
    assert_eq!(seen.unwrap(), b"one");
    let e = e.unwrap_err();
    assert!(matches!(e, Error::Protected { .. }), "{e}");
}

/// After a root rollback the new root is a snapshot, in which the snapshot directory is only
/// btrfs's empty placeholder until the real one is mounted there: say so instead of failing
/// obscurely or creating snapshots in the wrong place.
#[test]
fn placeholder_snapshot_dir_is_explained() {
    let Some((lfs, cfg)) = setup() else { return };
    let store = Store::open("data", &cfg).unwrap();
    store.create(&single("x")).unwrap();
    let copy = lfs.mnt().join("copy");
    snapguard_btrfs::snapshot(&cfg.subvolume, &copy, false).unwrap();
    let e = Store::open("copy", &LocalConfig::new(&copy)).unwrap_err();
    assert!(matches!(e, Error::SnapshotDirUnusable { .. }), "{e}");
    assert!(e.to_string().contains("placeholder"), "{e}");
}

/// A configuration name becomes a path component (`<target>/<CONFIG>` of replication): one
/// that is a path is refused before anything is touched.
#[test]
fn configuration_names_that_are_paths_are_refused() {
    let cfg = LocalConfig::new("/nonexistent/subvolume");
    for bad in ["", ".", "..", "../etc", "a/b"] {
        let err = Store::open(bad, &cfg).expect_err(bad);
        assert!(
            matches!(err, Error::InvalidOptions { .. }),
            "{bad:?}: {err}"
        );
    }
    let err = Store::open("data", &cfg).expect_err("missing subvolume");
    assert!(matches!(err, Error::SubvolumeMissing { .. }), "{err}");
}
