//! The on-disk index cache through the binary: it is used and reused, rebuilt when lost,
//! damaged or unusable, and never needed for correct results.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::cmd::{Sg, Ws};
use crate::support::compare::compare_content;
use crate::support::{random_bytes, restored_path};

/// Segment files of every repository in the cache directory.
fn segments(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for repo in fs::read_dir(cache).into_iter().flatten().flatten() {
        for f in fs::read_dir(repo.path().join("index"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "sgx") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// `n` files of distinct random content under `root/name`.
fn add_files(root: &Path, name: &str, n: u64, seed: u64) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..n {
        fs::write(
            dir.join(format!("f{i}")),
            random_bytes(seed * 1000 + i, 20_000),
        )
        .expect("write");
    }
    dir
}

/// Restore `snapshot` and require every file in `src`'s subdirectories `dirs` to come back
/// identical.
fn assert_restores(sg: &Sg, ws: &Ws, snapshot: &str, src: &Path, dirs: &[&str], label: &str) {
    let target = ws.path(format!("restore-{label}"));
    sg.restore(snapshot, &target, &[]).expect_code(0);
    for d in dirs {
        for file in fs::read_dir(src.join(d)).expect("read dir") {
            let p = file.expect("entry").path();
            if let Some(diff) = compare_content(&p, &restored_path(&target, &p)) {
                panic!("{label}: {} differs after restore: {diff}", p.display());
            }
        }
    }
}

/// Bytes the backup stored, from `backup --json`.
fn added(b: &crate::support::cmd::Backup) -> u64 {
    b.json["bytes_added"]
        .as_u64()
        .unwrap_or_else(|| panic!("no bytes_added: {}", b.json))
}

/// Whether a backup stored no file data again: only directory metadata (the workspace's own
/// mtime changes as the test adds and removes things), far less than one 20 kB file.
fn deduplicated(b: &crate::support::cmd::Backup) -> bool {
    added(b) < 4096
}

#[test]
fn the_cache_is_built_reused_and_rebuilt_when_lost_or_damaged() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    add_files(&src, "a", 20, 1);
    let first = sg.backup(&[&src], &[]);
    // The second run finds the first run's index file and caches it.
    add_files(&src, "b", 20, 2);
    let second = sg.backup(&[&src], &[]);
    assert!(added(&second) > 0);
    let segs = segments(&sg.cache);
    assert!(
        !segs.is_empty(),
        "no index segment in {}",
        sg.cache.display()
    );
    for s in &segs {
        let mode = fs::metadata(s).expect("stat").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
            0,
            "{} is readable by others",
            s.display()
        );
    }

    // Deduplication works through the cache: backing up the same data adds nothing.
    let again = sg.backup(&[&src], &["--force"]);
    assert!(
        deduplicated(&again),
        "re-reading unchanged files stored data again: {}",
        again.json
    );

    // Lost cache: rebuilt from the repository, same results.
    fs::remove_dir_all(&sg.cache).expect("rm cache");
    let rebuilt = sg.backup(&[&src], &["--force"]);
    assert!(
        deduplicated(&rebuilt),
        "after losing the cache, data was stored again: {}",
        rebuilt.json
    );
    assert!(!segments(&sg.cache).is_empty(), "cache not rebuilt");

    // Damaged cache: every segment gets garbage in the middle; it is detected and rebuilt.
    for s in segments(&sg.cache) {
        let mut bytes = fs::read(&s).expect("read");
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 8] {
            *b ^= 0x5a;
        }
        fs::write(&s, bytes).expect("write");
    }
    let damaged = sg.backup(&[&src], &["--force"]);
    assert!(
        deduplicated(&damaged),
        "a damaged cache changed deduplication: {}",
        damaged.json
    );
    assert_restores(&sg, &ws, &first.id, &src, &["a"], "first");
    assert_restores(&sg, &ws, &damaged.id, &src, &["a", "b"], "after-damage");
    sg.run(["check"]).expect_code(0);
}

#[test]
fn without_a_usable_cache_directory_everything_still_works_in_memory() {
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    let src = ws.path("src");
    add_files(&src, "a", 10, 3);
    sg.backup(&[&src], &[]);
    // The cache "directory" is a regular file: the index falls back to memory, with a warning.
    let blocker = ws.path("not-a-dir");
    fs::write(&blocker, b"x").expect("write");
    sg.cache = blocker.clone();
    add_files(&src, "b", 10, 4);
    let b = sg.backup(&[&src], &[]);
    assert!(
        b.out.stderr_str().contains("index cache"),
        "no warning about the unusable cache:\n{}",
        b.out
    );
    assert_restores(&sg, &ws, &b.id, &src, &["a", "b"], "fallback");
    // --no-cache never touches the cache directory.
    sg.cache = ws.path("unused-cache");
    let c = sg.backup(&[&src], &["--force"]);
    let c2 = sg.run(["--no-cache", "check"]);
    c2.expect_code(0);
    assert!(deduplicated(&c), "{}", c.json);
    let before = segments(&sg.cache);
    sg.run(["--no-cache", "backup", "-q", src.to_str().expect("utf-8")])
        .expect_code(0);
    assert_eq!(segments(&sg.cache), before, "--no-cache wrote to the cache");
}
