//! The metadata cache through a real repository: hits need no backend reads, damaged entries
//! are replaced, and entries of forgotten snapshots and unindexed packs are dropped.

use super::*;
use crate::{BackupOptions, InitOptions, Secret};
use snapguard_backend::{Backend, BackendStats, CountingBackend, LocalBackend};
use snapguard_format::{SnapshotId, Timestamp, TreeId};
use std::sync::Arc;
use zeroize::Zeroizing;

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn secret() -> Secret {
    Secret::Password(Zeroizing::new(b"metacache tests".to_vec()))
}

struct Fixture {
    tmp: tempfile::TempDir,
    snapshot: SnapshotId,
}

impl Fixture {
    /// A repository with one snapshot of a small tree (three directory levels).
    fn new() -> TestResult<Fixture> {
        let tmp = tempfile::tempdir()?;
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("a/b"))?;
        std::fs::write(src.join("top"), b"top file")?;
        std::fs::write(src.join("a/b/deep"), vec![7u8; 100_000])?;
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(tmp.path().join("repo")));
        let mut repo = Repository::init(backend, &secret(), &InitOptions::for_tests(64 << 10))?;
        let opts = BackupOptions {
            paths: vec![src],
            hostname: "h".into(),
            username: "u".into(),
            time: Timestamp {
                secs: 1_700_000_001,
                nanos: 0,
            },
            program_version: "metacache-test".into(),
            ..BackupOptions::default()
        };
        let snapshot = crate::backup(&mut repo, &opts)?
            .snapshot_id
            .ok_or("no snapshot")?;
        Ok(Fixture { tmp, snapshot })
    }

    fn cache_dir(&self) -> PathBuf {
        self.tmp.path().join("meta")
    }

    /// A new session with the cache (trees included) and a counter of backend traffic.
    fn open(&self) -> TestResult<(Repository, Arc<BackendStats>)> {
        let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(self.tmp.path().join("repo")));
        let counting = CountingBackend::new(local);
        let stats = counting.stats();
        let mut repo = Repository::open(Arc::new(counting), &[secret()])?;
        repo.set_meta_cache(Some(MetaCache::new(self.cache_dir(), true)));
        repo.load_index()?;
        Ok((repo, stats))
    }
}

/// Every tree of the snapshot, depth first.
fn walk(repo: &Repository, id: TreeId, out: &mut Vec<TreeId>) -> Result<()> {
    out.push(id);
    for n in repo.read_tree(&id)?.nodes {
        if let Some(sub) = n.subtree {
            walk(repo, sub, out)?;
        }
    }
    Ok(())
}

fn all_trees(repo: &Repository) -> TestResult<Vec<TreeId>> {
    let mut out = Vec::new();
    for (_, s) in repo.list_snapshots()? {
        walk(repo, s.tree, &mut out)?;
    }
    Ok(out)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn second_session_reads_snapshots_and_trees_from_the_cache() -> TestResult {
    let fx = Fixture::new()?;
    let (repo, stats) = fx.open()?;
    let first = all_trees(&repo)?;
    assert!(first.len() >= 4, "expected nested trees, got {first:?}");
    assert_eq!(stats.get(FileType::Snapshot).reads, 1);
    assert_eq!(stats.get(FileType::Pack).reads as usize, first.len());

    let (repo, stats) = fx.open()?;
    assert_eq!(all_trees(&repo)?, first);
    assert_eq!(stats.get(FileType::Snapshot).reads, 0);
    assert_eq!(stats.get(FileType::Pack).reads, 0);
    // Nothing in the cache is plaintext: every file is the sealed object or blob.
    for f in files_under(&fx.cache_dir()) {
        let bytes = std::fs::read(&f)?;
        assert!(
            !bytes.windows(3).any(|w| w == b"top"),
            "{} holds a plaintext name",
            f.display()
        );
    }
    Ok(())
}

#[test]
fn damaged_or_truncated_entries_are_replaced_from_the_repository() -> TestResult {
    let fx = Fixture::new()?;
    let (repo, _) = fx.open()?;
    let trees = all_trees(&repo)?;
    let files = files_under(&fx.cache_dir());
    assert_eq!(files.len(), trees.len() + 1, "{files:?}");
    for (i, f) in files.iter().enumerate() {
        let mut bytes = std::fs::read(f)?;
        if i % 2 == 0 {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        } else {
            bytes.truncate(bytes.len() / 2);
        }
        std::fs::write(f, &bytes)?;
    }
    let (repo, stats) = fx.open()?;
    assert_eq!(all_trees(&repo)?, trees);
    assert_eq!(stats.get(FileType::Snapshot).reads, 1);
    assert_eq!(stats.get(FileType::Pack).reads as usize, trees.len());
    // The replacements verify: a third session reads nothing.
    let (repo, stats) = fx.open()?;
    assert_eq!(all_trees(&repo)?, trees);
    assert_eq!(
        stats.get(FileType::Snapshot).reads + stats.get(FileType::Pack).reads,
        0
    );
    Ok(())
}

#[test]
fn entries_of_forgotten_snapshots_and_unindexed_packs_are_dropped() -> TestResult {
    let fx = Fixture::new()?;
    let (repo, _) = fx.open()?;
    all_trees(&repo)?;
    let snap_entry = fx.cache_dir().join("snapshots").join(fx.snapshot.to_hex());
    assert!(snap_entry.is_file());
    let tree_packs: Vec<PathBuf> = std::fs::read_dir(fx.cache_dir().join("trees"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    assert!(!tree_packs.is_empty());
    // A pack directory for a pack the index does not list, and a stale temporary file.
    let ghost = fx.cache_dir().join("trees").join("ab".repeat(32));
    std::fs::create_dir_all(&ghost)?;
    std::fs::write(ghost.join("cd".repeat(32)), b"x")?;

    // Forget the snapshot (as `forget` does, by deleting its file): the next listing drops it.
    repo.backend()
        .remove(FileType::Snapshot, &fx.snapshot.to_hex())?;
    let (repo, _) = fx.open()?;
    assert!(
        !ghost.exists(),
        "tree entries of an unindexed pack survived"
    );
    for p in &tree_packs {
        assert!(p.is_dir(), "{} of an indexed pack was dropped", p.display());
    }
    assert!(repo.list_snapshots()?.is_empty());
    assert!(
        !snap_entry.exists(),
        "the forgotten snapshot is still cached"
    );
    Ok(())
}

#[test]
fn without_tree_caching_only_snapshots_are_cached() -> TestResult {
    let fx = Fixture::new()?;
    let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(fx.tmp.path().join("repo")));
    let mut repo = Repository::open(local, &[secret()])?;
    repo.set_meta_cache(Some(MetaCache::new(fx.cache_dir(), false)));
    repo.load_index()?;
    all_trees(&repo)?;
    assert!(fx.cache_dir().join("snapshots").is_dir());
    assert!(!fx.cache_dir().join("trees").exists());
    Ok(())
}

#[test]
fn an_unwritable_cache_is_not_an_error() -> TestResult {
    let fx = Fixture::new()?;
    // A file where the cache directory should be: every write fails.
    std::fs::write(fx.cache_dir(), b"not a directory")?;
    let (repo, stats) = fx.open()?;
    let trees = all_trees(&repo)?;
    let (repo, stats2) = fx.open()?;
    assert_eq!(all_trees(&repo)?, trees);
    assert_eq!(
        stats2.get(FileType::Pack).reads,
        stats.get(FileType::Pack).reads
    );
    Ok(())
}

#[test]
fn cache_files_are_private() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new()?;
    let (repo, _) = fx.open()?;
    all_trees(&repo)?;
    let files = files_under(&fx.cache_dir());
    assert!(!files.is_empty());
    for f in files {
        assert_eq!(
            std::fs::metadata(&f)?.permissions().mode() & 0o777,
            0o600,
            "{}",
            f.display()
        );
        let dir = f.parent().ok_or("no parent")?;
        assert_eq!(
            std::fs::metadata(dir)?.permissions().mode() & 0o777,
            0o700,
            "{}",
            dir.display()
        );
    }
    Ok(())
}

#[test]
fn stale_temporary_files_inside_pack_directories_are_swept() -> TestResult {
    let fx = Fixture::new()?;
    let (repo, _) = fx.open()?;
    all_trees(&repo)?;
    let pack_dir = std::fs::read_dir(fx.cache_dir().join("trees"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?
        .into_iter()
        .find(|p| p.is_dir())
        .ok_or("no pack directory in the tree cache")?;
    // A killed process left one temporary file two hours ago; another is being written now.
    let stale = pack_dir.join(".tmp-1-0011223344556677");
    let fresh = pack_dir.join(".tmp-2-8899aabbccddeeff");
    std::fs::write(&stale, b"half an entry")?;
    std::fs::write(&fresh, b"half an entry")?;
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)?
        .set_modified(two_hours_ago)?;
    // The last sweep inside the pack directories was long ago.
    let stamp = fx.cache_dir().join("trees").join(SWEPT_STAMP);
    if stamp.exists() {
        std::fs::File::options()
            .write(true)
            .open(&stamp)?
            .set_modified(two_hours_ago)?;
    }
    let (_repo, _) = fx.open()?;
    assert!(
        !stale.exists(),
        "a stale temporary file inside trees/<pack>/ survived"
    );
    assert!(fresh.exists(), "a temporary file being written was removed");
    assert!(pack_dir.is_dir(), "the pack's entries were dropped");
    assert!(
        is_younger_than(&stamp, STALE_TEMP),
        "the sweep was not recorded"
    );
    // Recorded: the next session does not read the packs' directories again within the hour.
    std::fs::write(&stale, b"half an entry")?;
    std::fs::File::options()
        .write(true)
        .open(&stale)?
        .set_modified(two_hours_ago)?;
    let (_repo, _) = fx.open()?;
    assert!(
        stale.exists(),
        "swept inside the packs' directories twice within the hour"
    );
    Ok(())
}
