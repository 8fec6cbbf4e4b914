//! Backup-side edge cases: sockets, files changing while read, and that the
//! repository leaks no names or metadata.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::support::cmd::{Sg, Ws};
use crate::support::compare::{assert_same, list_dir, Opts, Tree};
use crate::support::fixture::Fixture;
use crate::support::restored_path;
use crate::support::varied::MIB;

use super::assert_backup_clean;

#[test]
fn sockets_are_skipped_and_mentioned() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("regular", b"regular");
    fx.socket("sg-top.sock");
    fx.socket("sub/sg-inner.sock");
    fx.file("sub/after", b"after");
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&src], &[]);
    b.out.expect_code(0);
    for name in ["sg-top.sock", "sg-inner.sock"] {
        assert!(
            b.out.all_output().contains(name),
            "backup output does not mention socket {name}\n{}",
            b.out
        );
    }
    let target = ws.path("restore");
    sg.restore(&b.id, &target, &[]).expect_code(0);
    let restored = restored_path(&target, &src);
    for rel in ["sg-top.sock", "sub/sg-inner.sock"] {
        assert!(
            fs::symlink_metadata(restored.join(rel)).is_err(),
            "socket {rel} exists after restore"
        );
    }
    let opts = Opts {
        allow_missing: vec!["sg-top.sock".into(), "sub/sg-inner.sock".into()],
        ..Opts::default()
    };
    assert_same(
        &built.tree,
        &Tree::scan(&restored),
        &opts,
        "tree with sockets",
    );
}

const CHANGING_SIZE: u64 = 64 * MIB;
const PIECE: u64 = MIB;

/// Rewrites the whole file in place, version after version; every 8-byte word
/// of version k is k.
fn rewrite_forever(path: &Path, stop: &AtomicBool, started: &AtomicU64) {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for rewrite");
    let mut buf = vec![0u8; PIECE as usize];
    let mut k = started.load(Ordering::SeqCst);
    while !stop.load(Ordering::SeqCst) {
        k += 1;
        started.store(k, Ordering::SeqCst);
        for w in buf.chunks_mut(8) {
            w.copy_from_slice(&k.to_le_bytes());
        }
        for i in 0..CHANGING_SIZE / PIECE {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            f.write_all_at(&buf, i * PIECE).expect("rewrite");
        }
    }
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn file_changing_during_backup_is_reported_or_consistent() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("stable", b"stable content");
    let v1: Vec<u8> = std::iter::repeat_n(1u64.to_le_bytes(), (CHANGING_SIZE / 8) as usize)
        .flatten()
        .collect();
    let changing = fx.file("changing.bin", &v1);
    drop(v1);
    fx.finish();
    let sg = Sg::init(&ws, None);
    let stop = AtomicBool::new(false);
    let started = AtomicU64::new(1);
    let b = std::thread::scope(|s| {
        s.spawn(|| rewrite_forever(&changing, &stop, &started));
        let _stop = StopOnDrop(&stop);
        // Let the writer get going before the backup starts reading.
        while started.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        sg.backup(&[&src], &[])
    });
    let max_version = started.load(Ordering::SeqCst);
    let reported = b.out.all_output().contains("changing.bin");
    let target = ws.path("restore");
    let r = sg.restore(&b.id, &target, &[]);
    assert!(matches!(r.code, Some(0) | Some(16)), "restore failed\n{r}");
    let restored = restored_path(&target, &src);
    assert_eq!(
        fs::read(restored.join("stable")).expect("read stable"),
        b"stable content"
    );
    let verdict = match fs::read(restored.join("changing.bin")) {
        Err(e) => Err(format!("not restored ({e})")),
        Ok(data) => check_uniform(&data, max_version),
    };
    match verdict {
        Ok(k) => {
            eprintln!("changing file stored consistently as version {k} (reported: {reported})")
        }
        Err(why) if reported => {
            eprintln!(
                "changing file reported by backup; restored copy: {why}\n{}",
                b.out
            )
        }
        Err(why) => panic!(
            "file rewritten during backup was silently stored torn or lost: {why}; \
             the backup output does not mention changing.bin\n{}",
            b.out
        ),
    }
}

/// Ok(version) if all words are the same version, else a description.
fn check_uniform(data: &[u8], max_version: u64) -> Result<u64, String> {
    if data.len() as u64 != CHANGING_SIZE {
        return Err(format!("size {} instead of {CHANGING_SIZE}", data.len()));
    }
    let word = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let first = word(0);
    if let Some(i) = (0..data.len() / 8).find(|&i| word(i) != first) {
        return Err(format!(
            "torn: version {first} at offset 0 but version {} at offset {}",
            word(i),
            i * 8
        ));
    }
    if first == 0 || first > max_version {
        return Err(format!(
            "version {first} was never written (max {max_version})"
        ));
    }
    Ok(first)
}

const SECRETS: &[&str] = &[
    "sg-distinctive-name-7f3a9c",
    "sg-distinctive-host",
    "sg-distinctive-tag-e51d",
];

fn walk_repo(dir: &Path, found: &mut Vec<String>, files: &mut usize) {
    for name in list_dir(dir).expect("list repo dir") {
        let p = dir.join(&name);
        let lossy = name.to_string_lossy();
        for s in SECRETS.iter().filter(|s| lossy.contains(*s)) {
            found.push(format!("{p:?}: file name contains {s}"));
        }
        let m = fs::symlink_metadata(&p).expect("lstat");
        if m.is_dir() {
            walk_repo(&p, found, files);
        } else if m.is_file() {
            *files += 1;
            let data = fs::read(&p).expect("read repo file");
            for s in SECRETS {
                if data.windows(s.len()).any(|w| w == s.as_bytes()) {
                    found.push(format!("{p:?}: contains {s:?}"));
                }
            }
        }
    }
}

#[test]
fn repository_does_not_leak_names_content_host_or_tags() {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    let body = "the file sg-distinctive-name-7f3a9c says sg-distinctive-name-7f3a9c\n".repeat(50);
    fx.file("sg-distinctive-name-7f3a9c", body.as_bytes());
    fx.file(
        "sg-distinctive-name-7f3a9c-dir/inner",
        b"sg-distinctive-name-7f3a9c",
    );
    fx.symlink("link", "sg-distinctive-name-7f3a9c");
    fx.xattr(
        "sg-distinctive-name-7f3a9c",
        "user.sg",
        b"sg-distinctive-name-7f3a9c",
    );
    fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(
        &[&src],
        &[
            "--tag",
            "sg-distinctive-tag-e51d",
            "--host",
            "sg-distinctive-host",
        ],
    );
    assert_backup_clean(&b);
    // The metadata really was recorded (else the test would prove nothing).
    let snaps = sg.run(["--json", "snapshots"]);
    snaps.expect_code(0);
    let listed = snaps.json().to_string();
    assert!(
        listed.contains("sg-distinctive-host") && listed.contains("sg-distinctive-tag-e51d"),
        "snapshots --json does not show the host and tag\n{snaps}"
    );
    let mut found = Vec::new();
    let mut files = 0;
    walk_repo(&sg.repo, &mut found, &mut files);
    assert!(files > 0, "no files in repository {:?}", sg.repo);
    assert!(
        found.is_empty(),
        "repository leaks plaintext:\n  {}",
        found.join("\n  ")
    );
}
