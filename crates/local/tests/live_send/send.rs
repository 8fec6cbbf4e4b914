//! Replication between two real btrfs filesystems, locally and through a real sshd.

use crate::sshd::Sshd;
use crate::support::*;
use snapguard_btrfs::testing::{try_new, LoopFs};
use snapguard_local::send::{send, SendOptions, SendReport, Target, TargetRetention};
use snapguard_local::{CreateOptions, Store};
use snapguard_policy::LocalConfig;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Env {
    store: Store,
    data: PathBuf,
    /// `<dst>/backup`: the target directory.
    target: PathBuf,
    dst: LoopFs,
    _src: LoopFs,
}

fn setup() -> Option<Env> {
    let src = try_new(1024)?;
    let dst = try_new(1024)?;
    let data = src.mnt().join("data");
    snapguard_btrfs::create_subvolume(&data).unwrap();
    populate(&data);
    let store = Store::open("data", &LocalConfig::new(&data)).unwrap();
    let target = dst.mnt().join("backup");
    fs::create_dir(&target).unwrap();
    Some(Env {
        store,
        data,
        target,
        dst,
        _src: src,
    })
}

fn snap(env: &Env, desc: &str) -> u32 {
    env.store
        .create(&CreateOptions {
            description: desc.into(),
            ..CreateOptions::default()
        })
        .unwrap()
        .number
}

fn opts(retention: TargetRetention) -> SendOptions {
    SendOptions {
        retention,
        ..SendOptions::default()
    }
}

fn sent(r: &SendReport) -> Vec<(u32, Option<u32>)> {
    r.sent.iter().map(|s| (s.number, s.parent)).collect()
}

/// Manifest of a snapshot without the placeholder of the nested snapshot directory.
fn content(p: &Path) -> Manifest {
    let mut m = manifest(p);
    m.remove(".snapshots");
    m
}

/// The target's numbered entries.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort_by_key(|n| n.parse::<u32>().unwrap_or(u32::MAX));
    v
}

/// Check that target entry N is a complete copy of source snapshot N.
fn check_copy(env: &Env, n: u32) -> snapguard_btrfs::Subvolume {
    let src = env.store.get(n).unwrap();
    let t = env.target.join("data").join(n.to_string());
    let info = snapguard_btrfs::subvolume_info(&t.join("snapshot")).unwrap();
    assert!(info.readonly, "target {n} is writable");
    assert_eq!(info.received_uuid.unwrap().to_string(), src.uuid);
    let desc: snapguard_local::LocalSnapshot =
        serde_json::from_slice(&fs::read(t.join("info.json")).unwrap()).unwrap();
    assert_eq!(desc.number, n);
    assert_eq!(desc.description, src.description);
    assert_eq!(desc.uuid, info.uuid.to_string());
    assert_same(
        &format!("target copy of snapshot {n}"),
        &content(&src.path),
        &content(&t.join("snapshot")),
    );
    info
}

/// Write `mib` MiB of incompressible-looking data.
fn write_big(p: &Path, mib: usize, seed: u8) {
    use std::io::Write;
    let mut f = fs::File::create(p).unwrap();
    let mut block: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for i in 0..mib {
        block[0] = i as u8;
        block[1] = seed;
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
fn incremental_send_between_two_filesystems() {
    let Some(env) = setup() else { return };
    write_big(&env.data.join("large.bin"), 24, 1);
    assert_eq!(snap(&env, "one"), 1);
    fs::write(env.data.join("a.txt"), b"changed\n").unwrap();
    fs::remove_file(env.data.join("big.bin")).unwrap();
    assert_eq!(snap(&env, "two"), 2);
    let target = Target::Local(env.target.clone());

    let r = send(&env.store, &target, &opts(TargetRetention::KeepAll)).unwrap();
    assert_eq!(r.common_parent, None);
    assert_eq!(sent(&r), vec![(1, None), (2, Some(1))]);
    let t1 = check_copy(&env, 1);
    let t2 = check_copy(&env, 2);
    // The second was received as a snapshot of the first: an incremental stream.
    assert_eq!(t1.parent_uuid, None);
    assert_eq!(t2.parent_uuid, Some(t1.uuid));
    assert!(r.sent[0].bytes > 24 << 20);
    assert!(r.sent[1].bytes < 1 << 20, "{} bytes", r.sent[1].bytes);

    // Nothing new: nothing sent.
    let r = send(&env.store, &target, &opts(TargetRetention::KeepAll)).unwrap();
    assert_eq!(r.common_parent, Some(2));
    assert!(r.sent.is_empty());
    assert_eq!(r.already_present, vec![1, 2]);

    // A small change is a small stream from the newest common parent.
    fs::write(env.data.join("new.txt"), b"new\n").unwrap();
    assert_eq!(snap(&env, "three"), 3);
    let r = send(&env.store, &target, &opts(TargetRetention::KeepAll)).unwrap();
    assert_eq!(sent(&r), vec![(3, Some(2))]);
    assert!(r.sent[0].bytes < 1 << 20);
    let t3 = check_copy(&env, 3);
    assert_eq!(t3.parent_uuid, Some(t2.uuid));

    // Source snapshots deleted meanwhile do not matter; the newest common one is the parent.
    env.store.delete(2).unwrap();
    env.store.delete(3).unwrap();
    fs::write(env.data.join("new.txt"), b"newer\n").unwrap();
    assert_eq!(snap(&env, "four"), 4);
    let r = send(&env.store, &target, &opts(TargetRetention::KeepAll)).unwrap();
    assert_eq!(r.common_parent, Some(1));
    assert_eq!(sent(&r), vec![(4, Some(1))]);
    check_copy(&env, 4);
    assert_eq!(entries(&env.target.join("data")), vec!["1", "2", "3", "4"]);
}

#[test]
fn target_retention_is_independent() {
    let Some(env) = setup() else { return };
    for i in 1..=4 {
        fs::write(env.data.join("counter"), format!("{i}\n")).unwrap();
        snap(&env, &format!("s{i}"));
    }
    let target = Target::Local(env.target.clone());
    // Keeping 2: snapshots 1 and 2 would be deleted at once, so they are not even sent.
    let r = send(&env.store, &target, &opts(TargetRetention::Newest(2))).unwrap();
    assert_eq!(sent(&r), vec![(3, None), (4, Some(3))]);
    assert!(r.deleted.is_empty());
    assert_eq!(entries(&env.target.join("data")), vec!["3", "4"]);
    fs::write(env.data.join("counter"), b"5\n").unwrap();
    snap(&env, "s5");
    let r = send(&env.store, &target, &opts(TargetRetention::Newest(2))).unwrap();
    assert_eq!(sent(&r), vec![(5, Some(4))]);
    assert_eq!(r.deleted, vec![3]);
    assert_eq!(entries(&env.target.join("data")), vec!["4", "5"]);
    check_copy(&env, 5);
    // The source keeps everything.
    assert_eq!(env.store.list().unwrap().len(), 5);
    // --keep 0 would lose the next parent.
    let err = send(&env.store, &target, &opts(TargetRetention::Newest(0))).unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    // A dry run plans without touching the target.
    snap(&env, "s6");
    let r = send(
        &env.store,
        &target,
        &SendOptions {
            dry_run: true,
            ..opts(TargetRetention::Newest(1))
        },
    )
    .unwrap();
    assert_eq!(sent(&r), vec![(6, Some(5))]);
    assert_eq!(r.deleted, vec![4, 5]);
    assert_eq!(entries(&env.target.join("data")), vec!["4", "5"]);
}

/// Numbered entries of the target that a send did not make (a user's directory called 2024, a
/// received snapshot someone made writable) are never deleted, neither as "partial receives"
/// nor by the target's retention, and a snapshot with such a number is not sent over them.
#[test]
fn foreign_numbered_entries_are_left_alone() {
    let Some(env) = setup() else { return };
    let dir = env.target.join("data");
    fs::create_dir_all(dir.join("2024")).unwrap();
    fs::write(dir.join("2024/taxes.pdf"), b"keep me\n").unwrap();
    fs::create_dir(dir.join("7")).unwrap();
    snapguard_btrfs::create_subvolume(&dir.join("7/snapshot")).unwrap();
    fs::write(dir.join("7/snapshot/work"), b"edited on the target\n").unwrap();
    // Without a description: a dry run plans around them too.
    snap(&env, "one");
    let target = Target::Local(env.target.clone());
    let dry = SendOptions {
        dry_run: true,
        ..opts(TargetRetention::Newest(1))
    };
    let r = send(&env.store, &target, &dry).unwrap();
    assert_eq!(r.left_alone, vec!["7".to_string(), "2024".to_string()]);
    assert!(r.removed_partial.is_empty());

    snap(&env, "two");
    let r = send(&env.store, &target, &opts(TargetRetention::Newest(1))).unwrap();
    assert_eq!(sent(&r), vec![(2, None)]);
    assert_eq!(r.left_alone, vec!["7".to_string(), "2024".to_string()]);
    assert!(r.deleted.is_empty());
    assert_eq!(entries(&dir), vec!["2", "7", "2024"]);
    assert_eq!(fs::read(dir.join("2024/taxes.pdf")).unwrap(), b"keep me\n");
    assert_eq!(
        fs::read(dir.join("7/snapshot/work")).unwrap(),
        b"edited on the target\n"
    );

    // Snapshot 7 of the source would land on the foreign entry 7: refused, nothing touched.
    for i in 3..=7 {
        fs::write(env.data.join("counter"), format!("{i}\n")).unwrap();
        snap(&env, &format!("s{i}"));
    }
    let err = send(&env.store, &target, &opts(TargetRetention::KeepAll))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already has an entry 7"), "{err}");
    assert_eq!(
        fs::read(dir.join("7/snapshot/work")).unwrap(),
        b"edited on the target\n"
    );
    assert!(dir.join("2024/taxes.pdf").exists());
}

/// A second send of the same configuration while one runs (an overlapping cron job) is refused
/// at once; it would otherwise delete the first one's receive in progress as "interrupted".
#[test]
fn concurrent_send_is_refused() {
    let Some(env) = setup() else { return };
    snap(&env, "one");
    let target = Target::Local(env.target.clone());
    let lock_path = env
        .store
        .snapshot_dir()
        .join(snapguard_local::send::SEND_LOCK_FILE);
    // What a running send holds.
    let held = fs::File::create(&lock_path).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let err = send(&env.store, &target, &opts(TargetRetention::KeepAll))
        .unwrap_err()
        .to_string();
    assert!(err.contains("another 'snapguard local send'"), "{err}");
    assert!(!env.target.join("data").exists(), "nothing was touched");
    // A dry run only reads, so it may run meanwhile.
    let dry = SendOptions {
        dry_run: true,
        ..opts(TargetRetention::KeepAll)
    };
    assert_eq!(
        sent(&send(&env.store, &target, &dry).unwrap()),
        vec![(1, None)]
    );
    drop(held);
    let r = send(&env.store, &target, &opts(TargetRetention::KeepAll)).unwrap();
    assert_eq!(sent(&r), vec![(1, None)]);
}

/// Pids of `btrfs receive` processes whose command line mentions `dir`.
fn receivers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.len() >= 3
            && args[0].ends_with("btrfs")
            && args[1] == "receive"
            && args[2].starts_with(&*dir.to_string_lossy())
        {
            out.push(name);
        }
    }
    out
}

#[test]
fn interrupted_receive_leaves_no_half_snapshot() {
    let Some(env) = setup() else { return };
    write_big(&env.data.join("huge.bin"), 400, 7);
    snap(&env, "huge");
    let dir = env.target.join("data");
    let target = Target::Local(env.target.clone());

    // Kill `btrfs receive` once data is arriving.
    let store = env.store.clone();
    let t = target.clone();
    let sender = std::thread::spawn(move || send(&store, &t, &opts(TargetRetention::KeepAll)));
    let partial = dir.join(".incoming-1/snapshot/huge.bin");
    let t0 = Instant::now();
    let mut killed = false;
    while t0.elapsed() < Duration::from_secs(60) && !sender.is_finished() {
        let size = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if size > 8 << 20 {
            for pid in receivers(&dir) {
                run(Command::new("kill").args(["-9", &pid]));
                killed = true;
            }
            if killed {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        killed,
        "the transfer finished before it could be interrupted"
    );
    let err = sender.join().unwrap().unwrap_err().to_string();
    assert!(err.contains("btrfs receive failed"), "{err}");
    // Nothing on the target looks like a snapshot; the partial receive was removed.
    assert_eq!(entries(&dir), Vec::<String>::new());

    // What a killed sender leaves (no chance to clean up): a partial subvolume, writable and
    // without received UUID, made here with the real tools.
    let src = env.store.get(1).unwrap();
    fs::create_dir(dir.join(".incoming-1")).unwrap();
    let mut recv = Command::new("btrfs")
        .arg("receive")
        .arg(dir.join(".incoming-1"))
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sendp = Command::new("btrfs")
        .args(["send", "-q"])
        .arg(&src.path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::{Read, Write};
        let mut buf = vec![0u8; 16 << 20];
        sendp.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
        recv.stdin.as_mut().unwrap().write_all(&buf).unwrap();
    }
    drop(recv.stdin.take());
    assert!(!recv.wait().unwrap().success());
    let _ = sendp.kill();
    let _ = sendp.wait();
    let half = snapguard_btrfs::subvolume_info(&dir.join(".incoming-1/snapshot")).unwrap();
    assert!(!half.readonly && half.received_uuid.is_none());

    let r = send(&env.store, &target, &opts(TargetRetention::KeepAll)).unwrap();
    assert_eq!(r.removed_partial, vec![".incoming-1".to_string()]);
    assert_eq!(sent(&r), vec![(1, None)]);
    assert_eq!(entries(&dir), vec!["1"]);
    check_copy(&env, 1);
}

#[test]
fn conflicting_target_entry_is_refused() {
    let Some(env) = setup() else { return };
    snap(&env, "one");
    let dir = env.target.join("data");
    // A snapshot 1 on the target that came from somewhere else.
    let other = env.dst.mnt().join("other");
    snapguard_btrfs::create_subvolume(&other).unwrap();
    let ro = env.dst.mnt().join("other-ro");
    snapguard_btrfs::snapshot(&other, &ro, true).unwrap();
    fs::create_dir_all(dir.join("1")).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "btrfs send -q '{}' | btrfs receive '{}'",
            ro.display(),
            dir.join("1").display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::rename(dir.join("1/other-ro"), dir.join("1/snapshot")).unwrap();
    let err = send(
        &env.store,
        &Target::Local(env.target.clone()),
        &opts(TargetRetention::KeepAll),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("already has an entry 1"), "{err}");
    // A target that is not on btrfs.
    let err = send(
        &env.store,
        &Target::Local(env.dst.scratch().to_path_buf()),
        &opts(TargetRetention::KeepAll),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("not on a btrfs filesystem"), "{err}");
}

#[test]
fn send_through_ssh() {
    let Some(env) = setup() else { return };
    let Some(sshd) = Sshd::start() else { return };
    snap(&env, "one");
    fs::write(env.data.join("a.txt"), b"over ssh\n").unwrap();
    snap(&env, "two");
    let target = Target::parse(&format!(
        "ssh://root@127.0.0.1:{}{}",
        sshd.port,
        env.target.display()
    ))
    .unwrap();
    let o = |keep| SendOptions {
        ssh_command: sshd.ssh_args(),
        ..opts(keep)
    };
    let r = send(&env.store, &target, &o(TargetRetention::KeepAll)).unwrap();
    assert_eq!(sent(&r), vec![(1, None), (2, Some(1))]);
    let t1 = check_copy(&env, 1);
    let t2 = check_copy(&env, 2);
    assert_eq!(t2.parent_uuid, Some(t1.uuid));

    // A partial receive on the far side is found through the ssh listing and removed.
    let dir = env.target.join("data");
    fs::write(env.data.join("a.txt"), b"three\n").unwrap();
    snap(&env, "three");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "set -e; mkdir '{d}/.incoming-3'; btrfs send -q -p '{p}' '{s}' > '{d}/../stream'; \
             n=$(( $(stat -c %s '{d}/../stream') / 2 )); \
             head -c $n '{d}/../stream' | btrfs receive '{d}/.incoming-3'",
            d = dir.display(),
            p = env.store.snapshot_path(2).display(),
            s = env.store.snapshot_path(3).display()
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(dir.join(".incoming-3").exists());
    let r = send(&env.store, &target, &o(TargetRetention::Newest(2))).unwrap();
    assert_eq!(r.removed_partial, vec![".incoming-3".to_string()]);
    assert_eq!(sent(&r), vec![(3, Some(2))]);
    assert_eq!(r.deleted, vec![1]);
    assert_eq!(entries(&dir), vec!["2", "3"]);
    check_copy(&env, 3);

    // Errors of the far side are reported with its message.
    let bad = Target::parse(&format!(
        "ssh://root@127.0.0.1:{}/nonexistent/dir",
        sshd.port
    ))
    .unwrap();
    let err = send(&env.store, &bad, &o(TargetRetention::KeepAll))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/dir does not exist"), "{err}");
}
