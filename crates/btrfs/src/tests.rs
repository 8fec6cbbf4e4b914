//! Tests on a real btrfs filesystem (a loop device; skipped with a reason without root).

use super::*;
use crate::testing::try_new;
use std::fs;
use std::os::unix::fs::MetadataExt;

#[test]
fn uuid_round_trips_through_text() {
    let u = Uuid([
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8,
    ]);
    let s = u.to_string();
    assert_eq!(s, "12345678-9abc-def0-0102-030405060708");
    assert_eq!(s.parse::<Uuid>().unwrap(), u);
    assert!("xyz".parse::<Uuid>().is_err());
}

#[test]
fn not_btrfs_is_reported() {
    let t = tempfile::tempdir().unwrap();
    if is_btrfs(t.path()).unwrap() {
        return; // /tmp on btrfs: nothing to check here
    }
    assert!(!is_subvolume(t.path()).unwrap());
    assert_eq!(subvolume_root(t.path()).unwrap(), None);
    assert!(matches!(
        subvolume_info(t.path()),
        Err(Error::NotSubvolume { .. })
    ));
}

#[test]
fn subvolumes_snapshots_flags_and_default() {
    let Some(fs) = try_new(256) else { return };
    let m = fs.mnt();
    assert!(is_subvolume(&m).unwrap());
    let top = subvolume_info(&m).unwrap();
    assert_eq!(top.id, TOP_LEVEL_ID);

    let data = m.join("data");
    create_subvolume(&data).unwrap();
    fs::create_dir_all(data.join("a/b")).unwrap();
    fs::write(data.join("a/b/f"), b"hello").unwrap();
    assert_eq!(
        subvolume_root(&data.join("a/b/f")).unwrap(),
        Some(data.clone())
    );
    assert_eq!(subvolume_root(&data.join("a")).unwrap(), Some(data.clone()));
    let info = subvolume_info(&data).unwrap();
    assert!(info.id > TOP_LEVEL_ID && !info.readonly && info.parent_uuid.is_none());
    assert_eq!(info.name, b"data");

    fs::create_dir(m.join("snaps")).unwrap();
    let s1 = m.join("snaps/s1");
    snapshot(&data, &s1, true).unwrap();
    let si = subvolume_info(&s1).unwrap();
    assert!(si.readonly && is_readonly(&s1).unwrap());
    assert_eq!(si.parent_uuid, Some(info.uuid));
    assert!(si.otransid >= info.generation);
    assert_eq!(fs::read(s1.join("a/b/f")).unwrap(), b"hello");
    // Snapshots keep inode numbers.
    assert_eq!(
        fs::metadata(s1.join("a/b/f")).unwrap().ino(),
        fs::metadata(data.join("a/b/f")).unwrap().ino()
    );
    assert!(
        fs::write(s1.join("x"), b"no").is_err(),
        "read-only snapshot"
    );

    // The flag can be flipped.
    set_readonly(&s1, false).unwrap();
    fs::write(s1.join("x"), b"now").unwrap();
    set_readonly(&s1, true).unwrap();

    // Default subvolume.
    assert_eq!(default_subvolume(&m).unwrap(), TOP_LEVEL_ID);
    set_default_subvolume(&m, info.id).unwrap();
    assert_eq!(default_subvolume(&m).unwrap(), info.id);
    set_default_subvolume(&m, TOP_LEVEL_ID).unwrap();

    // A nested subvolume shows as an empty placeholder in a snapshot of its parent.
    create_subvolume(&data.join("nested")).unwrap();
    fs::write(data.join("nested/inner"), b"x").unwrap();
    let s2 = m.join("snaps/s2");
    snapshot(&data, &s2, true).unwrap();
    let ph = fs::symlink_metadata(s2.join("nested")).unwrap();
    assert!(ph.is_dir());
    assert_eq!(ph.ino(), NESTED_PLACEHOLDER_INO);
    assert_eq!(fs::read_dir(s2.join("nested")).unwrap().count(), 0);

    fs::create_dir_all(data.join("x/y")).unwrap();
    create_subvolume(&data.join("x/y/deeper")).unwrap();
    create_subvolume(&data.join("x/y/deeper/inside")).unwrap();
    assert_eq!(
        nested_subvolumes(&data).unwrap(),
        [PathBuf::from("nested"), PathBuf::from("x/y/deeper")]
    );
    assert_eq!(
        nested_subvolumes(&data.join("x/y/deeper")).unwrap(),
        [PathBuf::from("inside")]
    );
    assert!(nested_subvolumes(&s1).unwrap().is_empty());

    // Deleting: a subvolume with a nested one cannot go; a snapshot can.
    delete_subvolume(&s1).unwrap();
    assert!(!s1.exists());
    assert!(delete_subvolume(&m.join("snaps")).is_err());
    assert!(matches!(
        snapshot(&m.join("snaps"), &m.join("x"), true),
        Err(Error::NotSubvolume { .. })
    ));

    let fi = fs_info(&m).unwrap();
    assert!(!fi.fsid.is_nil() && fi.generation >= si.otransid);
    sync(&m).unwrap();
}

#[test]
fn changed_dirs_finds_exactly_the_changed_paths() {
    let Some(fs) = try_new(256) else { return };
    let m = fs.mnt();
    let data = m.join("data");
    create_subvolume(&data).unwrap();
    for d in ["a/x", "a/y", "b/z", "c", "d/deep/er"] {
        fs::create_dir_all(data.join(d)).unwrap();
    }
    for f in ["a/x/1", "a/y/2", "b/z/3", "c/4", "d/deep/er/5"] {
        fs::write(data.join(f), f.as_bytes()).unwrap();
    }
    fs::hard_link(data.join("c/4"), data.join("b/link")).unwrap();
    // Commit the writes first: changes made in the snapshot's own transaction count as changed
    // (the conservative bound a backup uses).
    sync(&m).unwrap();
    let s1 = m.join("s1");
    snapshot(&data, &s1, true).unwrap();
    let gen = subvolume_info(&s1).unwrap().otransid;

    // Nothing changed: a new snapshot has no dirty directory.
    let s2 = m.join("s2");
    snapshot(&data, &s2, true).unwrap();
    let c = changed_dirs(&s2, gen).unwrap().unwrap();
    assert_eq!(c.dirty_dirs(), 0, "{c:?}");

    // Content change deep down, a deletion, a chmod, and a hard-linked file.
    fs::write(data.join("d/deep/er/5"), b"changed").unwrap();
    fs::remove_file(data.join("a/y/2")).unwrap();
    fs::set_permissions(
        data.join("a/x/1"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::write(data.join("c/4"), b"via one name").unwrap();
    let s3 = m.join("s3");
    snapshot(&data, &s3, true).unwrap();
    let c = changed_dirs(&s3, gen).unwrap().unwrap();
    for dirty in ["", "a", "a/x", "a/y", "b", "c", "d", "d/deep", "d/deep/er"] {
        assert!(
            c.is_dirty(dirty.as_bytes()),
            "{dirty:?} should be dirty: {c:?}"
        );
    }
    assert!(!c.is_dirty(b"b/z"), "{c:?}");
    let ino = |p: &str| fs::metadata(s3.join(p)).unwrap().ino();
    assert!(c.is_changed(ino("d/deep/er/5")) && c.is_changed(ino("a/x/1")));
    assert!(c.is_changed(ino("b/link")), "hard link to a changed file");
    assert!(!c.is_changed(ino("b/z/3")) && !c.is_changed(ino("b/z")));
    assert_eq!(c.dirty_dirs(), 9, "{c:?}");
}
