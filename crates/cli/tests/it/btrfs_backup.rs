//! Backups of btrfs subvolumes through read-only snapshots, on a real btrfs filesystem (a loop
//! device per test, unmounted and detached even when a test fails; skipped with a reason
//! without root or btrfs-progs, never skipped in CI).
//!
//! What is proven: the backup reads a snapshot and records the live paths (bit-exact restore of
//! the varied tree), it is point-in-time while a writer keeps changing the tree (and the same
//! check catches the live walk's inconsistency, so it can fail), nested subvolumes are read
//! through snapshots of their own while read-only ones (snapshots) are not descended into, the
//! temporary snapshots disappear (also those of a killed backup), and change detection by btrfs
//! generation reuses unchanged entries without missing any kind of change; a directory inside
//! a subvolume is read from a snapshot of that subvolume too.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;
use snapguard_btrfs::testing::{try_new, LoopFs};

use crate::local::btrfs;
use crate::support::cmd::{Sg, Ws};
use crate::support::compare::{assert_same, Opts, Tree};
use crate::support::fixture::Fixture;
use crate::support::{restored_path, varied};

fn subvolume(fs: &LoopFs, name: &str) -> PathBuf {
    let p = fs.mnt().join(name);
    btrfs(&["subvolume", "create", p.to_str().expect("utf-8 path")]);
    p
}

/// Subvolumes of the filesystem, as `btrfs subvolume list` paths.
fn subvolumes(fs: &LoopFs) -> Vec<String> {
    let out = Command::new("btrfs")
        .args(["subvolume", "list"])
        .arg(fs.mnt())
        .output()
        .expect("btrfs subvolume list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(" path ").nth(1).map(str::to_string))
        .collect()
}

fn restore_scan(sg: &Sg, ws: &Ws, id: &str, src: &Path, name: &str) -> Tree {
    let target = ws.path(name);
    sg.restore(id, &target, &[]).expect_code(0);
    Tree::scan(&restored_path(&target, src))
}

/// Compare without atimes: reading a snapshot leaves the live atimes alone, but the checks here
/// scan the live tree themselves.
fn opts() -> Opts {
    Opts {
        atime: false,
        ..Opts::default()
    }
}

#[test]
fn backup_reads_a_snapshot_and_restores_the_varied_tree_exactly() {
    let Some(fs) = try_new(512) else { return };
    let ws = Ws::new();
    let data = subvolume(&fs, "data");
    let mut fx = Fixture::new(&data);
    varied::build(&mut fx);
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&data], &[]);
    assert_eq!(
        b.json["btrfs_snapshots"],
        serde_json::json!([data.display().to_string()])
    );
    assert_eq!(b.json["errors"], serde_json::json!([]), "{}", b.out);
    // The snapshot read is gone again.
    assert_eq!(subvolumes(&fs), vec!["data".to_string()]);

    let cat = sg
        .run(["--json", "cat", "snapshot", &b.id])
        .expect_code(0)
        .json();
    let origin = &cat["source"]["btrfs"][0];
    assert_eq!(origin["subvolume"], data.display().to_string());
    let info = snapguard_btrfs::subvolume_info(&data).expect("subvolume info");
    assert_eq!(origin["subvolume_uuid"], info.uuid.to_string());
    assert!(origin["generation"].as_u64().unwrap_or(0) > 0, "{cat}");

    let restored = restore_scan(&sg, &ws, &b.id, &data, "r1");
    assert_same(
        &built.tree,
        &restored,
        &Opts::default(),
        "btrfs snapshot backup",
    );

    // Turned off, the live files are read: same result, no snapshot recorded.
    let b = sg.backup(&[&data], &["--btrfs-snapshot", "off"]);
    assert_eq!(b.json["btrfs_snapshots"], serde_json::json!([]));
    let cat = sg
        .run(["--json", "cat", "snapshot", &b.id])
        .expect_code(0)
        .json();
    assert!(cat["source"].is_null(), "{cat}");
}

/// A writer replaces files f00..f19 in order, each with the generation number repeated, over
/// and over, the way careful programs replace files (write a temporary file, fsync, rename).
/// Any point-in-time view has values that never increase along the files and differ by at
/// most one.
///
/// A btrfs snapshot is crash-consistent: it holds what the disk would after a power cut at that
/// instant, so data still in the page cache (written without fsync) may be missing from it,
/// exactly as after a crash. Hence the fsync here, and the note in docs/btrfs.md.
fn writer(dir: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut generation = 1u64;
        while !stop.load(Ordering::Relaxed) {
            for i in 0..20 {
                let tmp = dir.join(format!(".tmp{i:02}"));
                let body = format!("{generation:016}\n").repeat(4096);
                let write = || -> std::io::Result<()> {
                    let mut f = fs::File::create(&tmp)?;
                    std::io::Write::write_all(&mut f, body.as_bytes())?;
                    f.sync_all()?;
                    fs::rename(&tmp, dir.join(format!("f{i:02}")))
                };
                if write().is_err() {
                    // The test failed and its filesystem is going away.
                    return generation;
                }
            }
            generation += 1;
        }
        generation
    })
}

/// Stops the writer when the test ends, also when it fails.
struct Stop(Arc<AtomicBool>);
impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn values(dir: &Path) -> Vec<u64> {
    (0..20)
        .map(|i| {
            let b = fs::read(dir.join(format!("f{i:02}"))).expect("read restored file");
            assert!(b.len() == 17 * 4096, "f{i:02} has {} bytes", b.len());
            let s = String::from_utf8_lossy(&b[..16]).to_string();
            let v: u64 = s.parse().expect("generation number");
            assert!(
                b.chunks(17).all(|c| c == format!("{v:016}\n").as_bytes()),
                "f{i:02} mixes generations"
            );
            v
        })
        .collect()
}

fn point_in_time(v: &[u64]) -> bool {
    v.windows(2).all(|w| w[0] >= w[1]) && v[0] - v[v.len() - 1] <= 1
}

#[test]
fn backup_is_point_in_time_while_a_writer_runs() {
    let Some(fs) = try_new(512) else { return };
    let ws = Ws::new();
    let data = subvolume(&fs, "data");
    let dir = data.join("w");
    fs::create_dir(&dir).expect("mkdir");
    for i in 0..20 {
        fs::write(
            dir.join(format!("f{i:02}")),
            format!("{:016}\n", 0).repeat(4096),
        )
        .expect("seed");
    }
    let sg = Sg::init(&ws, None);
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    let w = writer(dir.clone(), stop.0.clone());
    // Slow reads (1 MiB/s for 1.3 MiB) so that the writer moves on during every backup.
    let slow = ["--limit-read", "1", "--exclude", "*/.tmp*"];
    let mut live_inconsistent = 0;
    let mut results = Vec::new();
    for round in 0..3 {
        let b = sg.backup(&[&data], &slow);
        let target = ws.path(format!("snap{round}"));
        sg.restore(&b.id, &target, &[]).expect_code(0);
        results.push(values(&restored_path(&target, &dir)));

        let b = sg.backup(
            &[&data],
            &[&slow[..], &["--btrfs-snapshot", "off"]].concat(),
        );
        let target = ws.path(format!("live{round}"));
        sg.restore(&b.id, &target, &[]).expect_code(0);
        if !point_in_time(&values(&restored_path(&target, &dir))) {
            live_inconsistent += 1;
        }
    }
    drop(stop);
    let generations = w.join().expect("writer");
    assert!(
        generations > 10,
        "the writer hardly ran ({generations} generations)"
    );
    for v in &results {
        assert!(
            point_in_time(v),
            "snapshot backup is not point-in-time: {v:?}"
        );
    }
    // The same check on the live walk fails (which shows it can fail).
    assert!(
        live_inconsistent > 0,
        "the live walk looked consistent in all rounds: the check proves nothing"
    );
}

#[test]
fn nested_subvolumes_and_leftover_snapshots() {
    let Some(fs) = try_new(512) else { return };
    let ws = Ws::new();
    let data = subvolume(&fs, "data");
    fs::write(data.join("top"), b"top").expect("write");
    let inner = data.join("inner");
    btrfs(&["subvolume", "create", inner.to_str().expect("utf-8")]);
    fs::write(inner.join("deep"), b"inside the nested subvolume").expect("write");
    // A Snapper-style tier: a writable `.snapshots` holding a read-only snapshot.
    let snaps = data.join(".snapshots");
    btrfs(&["subvolume", "create", snaps.to_str().expect("utf-8")]);
    fs::create_dir(snaps.join("1")).expect("mkdir");
    btrfs(&[
        "subvolume",
        "snapshot",
        "-r",
        data.to_str().expect("utf-8"),
        snaps.join("1/snapshot").to_str().expect("utf-8"),
    ]);
    // A snapshot left by a backup that was killed (no such process), in the top-level
    // subvolume where backups make them.
    let pid = 4_000_000u32;
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    let stale = fs.mnt().join(format!(".snapguard-backup.{pid}.1"));
    btrfs(&[
        "subvolume",
        "snapshot",
        "-r",
        data.to_str().expect("utf-8"),
        stale.to_str().expect("utf-8"),
    ]);

    let sg = Sg::init(&ws, None);
    let data_times = fs::metadata(&data).expect("stat");
    let b = sg.backup(&[&data], &[]);
    assert!(!stale.exists(), "the leftover snapshot was not removed");
    // The backed-up subvolume itself was not touched.
    let after = fs::metadata(&data).expect("stat");
    assert_eq!(
        (
            after.mtime(),
            after.mtime_nsec(),
            after.ctime(),
            after.ctime_nsec()
        ),
        (
            data_times.mtime(),
            data_times.mtime_nsec(),
            data_times.ctime(),
            data_times.ctime_nsec()
        )
    );
    // (Other tests' backups may have their own mounts right now: look at this filesystem's.)
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts
            .lines()
            .any(|l| l.contains("backup-top.") && l.contains(&format!(" {} ", fs.device()))),
        "a top-level mount was left:\n{mounts}"
    );
    let mut left = subvolumes(&fs);
    left.sort();
    assert_eq!(
        left,
        [
            "data",
            "data/.snapshots",
            "data/.snapshots/1/snapshot",
            "data/inner"
        ]
    );
    let ls = sg.run(["ls", &b.id]).expect_code(0).stdout_str();
    let inner_file = inner.join("deep").display().to_string();
    assert!(
        ls.lines().any(|l| l == inner_file),
        "nested subvolume not backed up:\n{ls}"
    );
    let frozen = snaps.join("1/snapshot").display().to_string();
    assert!(ls.lines().any(|l| l == frozen), "{ls}");
    assert!(
        !ls.lines().any(|l| l.starts_with(&format!("{frozen}/"))),
        "a read-only snapshot inside was descended into:\n{ls}"
    );
    assert!(!ls.contains(".snapguard-backup."), "{ls}");
    let cat = sg
        .run(["--json", "cat", "snapshot", &b.id])
        .expect_code(0)
        .json();
    let nested: Vec<&str> = cat["source"]["btrfs"][0]["nested"]
        .as_array()
        .expect("nested list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(nested, [".snapshots", "inner"]);

    // Change only inside the nested subvolume: the next backup must see it even though the
    // outer subvolume's generations show nothing changed there.
    fs::write(inner.join("deep"), b"changed inside the nested one").expect("write");
    let b2 = sg.backup(&[&data], &[]);
    let out = sg
        .dump(&b2.id, &inner.join("deep"))
        .expect_code(0)
        .stdout
        .clone();
    assert_eq!(out, b"changed inside the nested one");
}

#[test]
fn require_fails_off_btrfs_and_auto_reads_live_files() {
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("f"), b"x").expect("write");
    if snapguard_btrfs::is_btrfs(&src).unwrap_or(false) {
        eprintln!("skipped: the temp directory is on btrfs");
        return;
    }
    let sg = Sg::init(&ws, None);
    let out = sg.run([
        "backup".as_ref(),
        "--btrfs-snapshot".as_ref(),
        "require".as_ref(),
        src.as_os_str(),
    ]);
    out.expect_code(2);
    assert!(out.stderr_str().contains("not on btrfs"), "{out}");
    let b = sg.backup(&[&src], &[]);
    assert_eq!(b.json["btrfs_snapshots"], serde_json::json!([]));
}

/// Apply one kind of change; each must show up in the next backup.
fn change(step: usize, d: &Path) -> &'static str {
    match step {
        0 => {
            fs::write(d.join("d03/f05"), b"new content, different length").expect("write");
            "content"
        }
        1 => {
            // Same size, mtime put back: only the inode's generation (and ctime) tell.
            let p = d.join("d04/f01");
            let m = fs::metadata(&p).expect("stat");
            let len = m.len() as usize;
            fs::write(&p, vec![b'Z'; len]).expect("write");
            let t = rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: m.atime(),
                    tv_nsec: m.atime_nsec() as _,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: m.mtime(),
                    tv_nsec: m.mtime_nsec() as _,
                },
            };
            rustix::fs::utimensat(rustix::fs::CWD, &p, &t, rustix::fs::AtFlags::empty())
                .expect("utimensat");
            "same size, old mtime"
        }
        2 => {
            fs::write(d.join("d05/new"), b"created").expect("write");
            fs::create_dir(d.join("d05/newdir")).expect("mkdir");
            "created"
        }
        3 => {
            fs::remove_file(d.join("d06/f02")).expect("rm");
            "deleted"
        }
        4 => {
            fs::rename(d.join("d07/f03"), d.join("d08/moved")).expect("mv");
            "file moved between directories"
        }
        5 => {
            fs::rename(d.join("d09"), d.join("d00/d09-renamed")).expect("mv dir");
            "directory moved"
        }
        6 => {
            fs::set_permissions(d.join("d10/f00"), fs::Permissions::from_mode(0o4750))
                .expect("chmod");
            "permissions"
        }
        7 => {
            rustix::fs::chown(
                d.join("d11/f01"),
                Some(rustix::fs::Uid::from_raw(1234)),
                Some(rustix::fs::Gid::from_raw(5678)),
            )
            .expect("chown");
            "owner"
        }
        8 => {
            rustix::fs::setxattr(
                d.join("d12/f02"),
                "user.note",
                b"hello",
                rustix::fs::XattrFlags::empty(),
            )
            .expect("setxattr");
            "xattr"
        }
        9 => {
            fs::hard_link(d.join("d13/f00"), d.join("d14/link-to-d13-f00")).expect("ln");
            "hard link added"
        }
        10 => {
            std::os::unix::fs::symlink("somewhere/else", d.join("d15/link")).expect("ln -s");
            "symlink"
        }
        _ => {
            // Directory metadata only.
            fs::set_permissions(d.join("d16"), fs::Permissions::from_mode(0o700)).expect("chmod");
            "directory mode"
        }
    }
}

#[test]
fn generations_reuse_unchanged_entries_and_miss_no_change() {
    let Some(fs) = try_new(512) else { return };
    let ws = Ws::new();
    let data = subvolume(&fs, "data");
    for d in 0..20 {
        for f in 0..8 {
            let dir = data.join(format!("d{d:02}"));
            fs::create_dir_all(&dir).expect("mkdir");
            fs::write(
                dir.join(format!("f{f:02}")),
                format!("{d} {f}\n").repeat(50 + f),
            )
            .expect("write");
        }
    }
    let sg = Sg::init(&ws, None);
    let first = sg.backup(&[&data], &[]);
    assert_eq!(first.json["unchanged_by_generation"], 0);
    for step in 0..12 {
        let what = change(step, &data);
        let expected = Tree::scan(&data);
        let b = sg.backup(&[&data], &[]);
        let reused = b.json["unchanged_by_generation"].as_u64().unwrap_or(0);
        // Most of the 20 directories were untouched: taken whole from the parent.
        assert!(
            reused >= 10,
            "step {step} ({what}): only {reused} entries reused\n{}",
            b.out
        );
        let restored = restore_scan(&sg, &ws, &b.id, &data, &format!("r{step}"));
        assert_same(
            &expected,
            &restored,
            &opts(),
            &format!("after change {step}: {what}"),
        );
    }
    // `--force` reads everything again.
    let b = sg.backup(&[&data], &["--force"]);
    assert_eq!(b.json["unchanged_by_generation"], 0);
}

#[test]
fn keep_backup_snapshots_makes_the_read_snapshot_a_local_one() {
    let Some(fs) = try_new(512) else { return };
    let ws = Ws::new();
    let data = subvolume(&fs, "data");
    for d in 0..10 {
        fs::create_dir_all(data.join(format!("d{d}"))).expect("mkdir");
        fs::write(data.join(format!("d{d}/f")), format!("{d}")).expect("write");
    }
    let sg = Sg::init(&ws, None);
    fs::write(
        &sg.config,
        format!(
            "[local.data]\nsubvolume = \"{}\"\nkeep_backup_snapshots = true\n",
            data.display()
        ),
    )
    .expect("write config");
    let b1 = sg.backup(&[&data], &[]);
    fs::write(data.join("d3/f"), b"changed").expect("write");
    let b2 = sg.backup(&[&data], &[]);
    let list = sg
        .run(["--json", "local", "list", "data"])
        .expect_code(0)
        .json();
    let snaps = list["snapshots"].as_array().expect("snapshots");
    assert_eq!(snaps.len(), 2, "{list}");
    for (i, s) in snaps.iter().enumerate() {
        assert_eq!(s["number"], i + 1);
        assert_eq!(s["description"], "backup");
        assert_eq!(s["cleanup"], "timeline");
    }
    for (b, n) in [(&b1, 1), (&b2, 2)] {
        let cat = sg
            .run(["--json", "cat", "snapshot", &b.id])
            .expect_code(0)
            .json();
        assert_eq!(
            cat["paths"],
            serde_json::json!([data.display().to_string()])
        );
        assert!(
            cat["tags"]
                .as_array()
                .expect("tags")
                .contains(&format!("local:data:{n}").into()),
            "{cat}"
        );
        let local = &cat["source"]["btrfs"][0]["local_snapshot"];
        assert_eq!(local, &serde_json::json!({"config": "data", "number": n}));
    }
    // Local snapshots of the same subvolume feed change detection by generation too.
    assert!(
        b2.json["unchanged_by_generation"].as_u64().unwrap_or(0) >= 9,
        "{}",
        b2.out
    );
    let out = sg
        .dump(&b2.id, &data.join("d3/f"))
        .expect_code(0)
        .stdout
        .clone();
    assert_eq!(out, b"changed");
    // Only the local tier's snapshots are left.
    let mut left = subvolumes(&fs);
    left.sort();
    assert_eq!(
        left,
        [
            "data",
            "data/.snapshots",
            "data/.snapshots/1/snapshot",
            "data/.snapshots/2/snapshot"
        ]
    );
}

/// Unmounts a tmpfs on drop.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn mount_points_inside_a_subvolume_are_read_live() {
    let Some(fs) = try_new(256) else { return };
    let ws = Ws::new();
    let data = subvolume(&fs, "data");
    let mp = data.join("mnt");
    fs::create_dir(&mp).expect("mkdir");
    // Hidden by the mount in the live tree, visible in a snapshot.
    fs::write(mp.join("under"), b"below the mount").expect("write");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&mp)
        .status()
        .expect("mount");
    assert!(ok.success(), "mount tmpfs");
    let _guard = Tmpfs(mp.clone());
    fs::write(mp.join("on-tmpfs"), b"mounted content").expect("write");
    let sg = Sg::init(&ws, None);

    let b = sg.backup(&[&data], &[]);
    let notes = b.json["notes"].to_string();
    assert!(notes.contains("a mount point: read live"), "{}", b.out);
    let ls = sg.run(["ls", &b.id]).expect_code(0).stdout_str();
    let has = |p: &Path| ls.lines().any(|l| l == p.display().to_string());
    assert!(has(&mp.join("on-tmpfs")), "{ls}");
    assert!(!has(&mp.join("under")), "{ls}");

    // With --one-file-system the mount point stays an empty directory, as in a live walk.
    let b = sg.backup(&[&data], &["--one-file-system"]);
    let ls = sg.run(["ls", &b.id]).expect_code(0).stdout_str();
    assert!(ls.lines().any(|l| l == mp.display().to_string()), "{ls}");
    assert!(!ls.contains(&format!("{}/", mp.display())), "{ls}");
}

/// A backup path that is a directory inside a subvolume, not its root: the backup still reads a
/// read-only snapshot of the subvolume holding it (recorded in `source.btrfs`, removed
/// afterwards), records and restores only that directory, bit-exact, under its live path, and
/// the next backup takes unchanged directories whole by btrfs generation.
#[test]
fn a_directory_inside_a_subvolume_is_read_from_a_snapshot() {
    let Some(fs) = try_new(512) else { return };
    let ws = Ws::new();
    let data = subvolume(&fs, "data");
    fs::write(data.join("outside"), b"beside the backed-up directory").expect("write");
    let dir = data.join("srv/app");
    let mut fx = Fixture::new(&dir);
    varied::build(&mut fx);
    for d in 0..12 {
        fx.file(
            format!("plain/d{d:02}/f"),
            format!("plain {d}\n").as_bytes(),
        );
    }
    let built = fx.finish();
    let data_uuid = snapguard_btrfs::subvolume_info(&data)
        .expect("subvolume info")
        .uuid
        .to_string();

    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&dir], &[]);
    assert_eq!(b.json["errors"], serde_json::json!([]), "{}", b.out);
    // The subvolume holding the directory was snapshotted and read.
    assert_eq!(
        b.json["btrfs_snapshots"],
        serde_json::json!([data.display().to_string()]),
        "{}",
        b.out
    );
    // The temporary snapshot is gone, and so is the top-level mount it was made in.
    assert_eq!(subvolumes(&fs), vec!["data".to_string()]);
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts
            .lines()
            .any(|l| l.contains("backup-top.") && l.contains(&format!(" {} ", fs.device()))),
        "a top-level mount was left:\n{mounts}"
    );

    let snaps = sg.run(["--json", "snapshots"]).expect_code(0).json();
    let snap = snaps
        .as_array()
        .expect("snapshot list")
        .iter()
        .find(|v| v["id"] == b.id.as_str())
        .unwrap_or_else(|| panic!("{} not listed: {snaps}", b.id))
        .clone();
    assert_eq!(
        snap["paths"],
        serde_json::json!([dir.display().to_string()]),
        "{snap}"
    );
    let origins = snap["source"]["btrfs"].as_array().expect("source.btrfs");
    assert_eq!(origins.len(), 1, "{snap}");
    let origin = &origins[0];
    assert_eq!(origin["subvolume"], data.display().to_string(), "{snap}");
    assert_eq!(origin["subvolume_uuid"], data_uuid.as_str(), "{snap}");
    let read_uuid = origin["snapshot_uuid"].as_str().expect("snapshot_uuid");
    assert_ne!(
        read_uuid, data_uuid,
        "the live subvolume was read, not a snapshot"
    );
    assert!(origin["generation"].as_u64().unwrap_or(0) > 0, "{snap}");
    assert_eq!(origin["local_snapshot"], Value::Null, "{snap}");
    let fsid = Command::new("btrfs")
        .args(["filesystem", "show"])
        .arg(fs.mnt())
        .output()
        .expect("btrfs filesystem show");
    let fsid = String::from_utf8_lossy(&fsid.stdout);
    assert!(
        fsid.contains(origin["filesystem_uuid"].as_str().unwrap_or("?")),
        "{snap}\n{fsid}"
    );

    // Only the directory, under its live path; nothing beside it, no snapshot path.
    let ls = sg.run(["ls", &b.id]).expect_code(0).stdout_str();
    assert!(
        ls.lines()
            .any(|l| l == dir.join("plain/d00/f").display().to_string()),
        "{ls}"
    );
    assert!(!ls.contains("outside"), "{ls}");
    assert!(!ls.contains(".snapguard-backup"), "{ls}");
    let restored = restore_scan(&sg, &ws, &b.id, &dir, "r1");
    assert_same(
        &built.tree,
        &restored,
        &Opts::default(),
        "directory inside a subvolume, read from a snapshot",
    );

    // A change, then the next backup: unchanged directories are taken by generation, which
    // needs the parent's snapshot generation; the change is in.
    fs::write(dir.join("plain/d03/f"), b"changed after the first backup").expect("write");
    let expected = Tree::scan(&dir);
    let b2 = sg.backup(&[&dir], &[]);
    assert_eq!(
        b2.json["btrfs_snapshots"],
        serde_json::json!([data.display().to_string()])
    );
    let reused = b2.json["unchanged_by_generation"].as_u64().unwrap_or(0);
    assert!(reused >= 10, "only {reused} entries reused\n{}", b2.out);
    let restored = restore_scan(&sg, &ws, &b2.id, &dir, "r2");
    assert_same(
        &expected,
        &restored,
        &opts(),
        "second backup of the directory",
    );
    assert_eq!(subvolumes(&fs), vec!["data".to_string()]);
}
