//! Copy through the engine: id remapping with different keys, sealed copying with shared keys,
//! skipping what the target has, and adopting packs of an interrupted copy.

use super::*;
use crate::{BackupOptions, InitOptions, Secret};
use snapguard_backend::{Backend, LocalBackend};
use snapguard_format::{NodeKind, Timestamp};
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn secret(s: &str) -> Secret {
    Secret::Password(Zeroizing::new(s.as_bytes().to_vec()))
}

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

fn init(dir: &Path) -> TestResult<Repository> {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir));
    Ok(Repository::init(
        backend,
        &secret("a"),
        &InitOptions::for_tests(64 << 10),
    )?)
}

fn backup(repo: &mut Repository, src: &Path, secs: i64) -> TestResult<SnapshotId> {
    repo.load_index()?;
    let opts = BackupOptions {
        paths: vec![src.to_path_buf()],
        hostname: "h".into(),
        username: "u".into(),
        time: Timestamp { secs, nanos: 0 },
        program_version: "copy-test".into(),
        tags: vec!["t1".into()],
        ..BackupOptions::default()
    };
    let res = crate::backup(repo, &opts)?;
    res.snapshot_id.ok_or_else(|| "no snapshot".into())
}

/// Every file below `tree` as (path, content), read through the repository.
fn files(repo: &Repository, tree: TreeId, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let t = repo.read_tree(&tree).expect("tree");
    for n in &t.nodes {
        let path = format!("{prefix}/{}", String::from_utf8_lossy(&n.name));
        match n.kind {
            NodeKind::Dir => files(repo, n.subtree.expect("subtree"), &path, out),
            NodeKind::File => {
                let mut data = Vec::new();
                for p in &n.content {
                    match p {
                        ContentPart::Data { id, .. } => {
                            data.extend(repo.read_blob(id).expect("blob"))
                        }
                        ContentPart::Hole { len } => {
                            data.extend(std::iter::repeat_n(0u8, *len as usize))
                        }
                    }
                }
                out.push((path, data));
            }
            _ => out.push((path, Vec::new())),
        }
    }
}

use snapguard_format::{BlobId, ContentPart, TreeId};

fn source_tree(dir: &Path) -> TestResult {
    std::fs::create_dir_all(dir.join("d/e"))?;
    std::fs::create_dir_all(dir.join("f/e"))?;
    std::fs::write(dir.join("big.bin"), bytes(1, 900 << 10))?;
    std::fs::write(dir.join("d/e/x"), bytes(2, 40 << 10))?;
    // The same subtree twice: one tree id, stored once.
    std::fs::write(dir.join("f/e/x"), bytes(2, 40 << 10))?;
    std::fs::write(dir.join("d/small"), b"small")?;
    Ok(())
}

#[test]
fn reencrypt_remaps_every_id_and_keeps_content() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    source_tree(&src_dir)?;
    let mut a = init(&tmp.path().join("a"))?;
    let sa = backup(&mut a, &src_dir, 1_700_000_100)?;
    let mut b = init(&tmp.path().join("b"))?;
    b.load_index()?;
    assert_eq!(mode(&a, &b), CopyMode::Reencrypt);
    let snap = a.load_snapshot(&sa)?;
    let report = copy(&a, &mut b, &[(sa, snap.clone())], &CopyOptions::default())?;
    assert_eq!(report.copied.len(), 1);
    let sb = report.copied[0].target;
    let copied = b.load_snapshot(&sb)?;
    // Different keys: the root tree id differs, the metadata does not.
    assert_ne!(copied.tree, snap.tree);
    assert_eq!(
        (copied.time, &copied.hostname, &copied.tags, &copied.paths),
        (snap.time, &snap.hostname, &snap.tags, &snap.paths)
    );
    let origin = copied.copied_from.clone().expect("origin recorded");
    assert_eq!(origin.snapshot, sa);
    assert_eq!(origin.repository, a.config().repo_id);
    // No blob id of the source appears in the target and every blob opens there.
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    files(&a, snap.tree, "", &mut fa);
    files(&b, copied.tree, "", &mut fb);
    assert_eq!(fa, fb);
    assert!(b.index().get(&BlobId::from(snap.tree))?.is_none());
    // The duplicate subtree and data were stored once (memoised old → new ids).
    let x = fa.iter().filter(|(p, _)| p.ends_with("/e/x")).count();
    assert_eq!(x, 2);
    assert_eq!(
        report.stats.trees_rewritten as usize,
        // root, the snapshot's synthetic parent dirs, d, d/e, f (f/e is d/e's twin)
        count_trees(&b, copied.tree)
    );

    // A rerun copies nothing.
    let again = copy(&a, &mut b, &[(sa, snap)], &CopyOptions::default())?;
    assert!(again.copied.is_empty());
    assert_eq!(again.skipped.len(), 1);
    assert_eq!(again.skipped[0].existing, sb);
    assert_eq!(again.stats, CopyStats::default());
    Ok(())
}

/// Distinct trees below `root`.
fn count_trees(repo: &Repository, root: TreeId) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root];
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        for n in repo.read_tree(&t).expect("tree").nodes {
            stack.extend(n.subtree);
        }
    }
    seen.len()
}

#[test]
fn same_keys_copies_sealed_and_skips_what_the_target_has() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    source_tree(&src_dir)?;
    let mut a = init(&tmp.path().join("a"))?;
    let s1 = backup(&mut a, &src_dir, 1_700_000_100)?;
    std::fs::write(src_dir.join("new.bin"), bytes(9, 300 << 10))?;
    let s2 = backup(&mut a, &src_dir, 1_700_000_200)?;
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(tmp.path().join("b")));
    let mut b = Repository::init_sharing_keys(
        backend,
        &secret("other password"),
        &InitOptions::for_tests(64 << 10),
        &a,
    )?;
    b.load_index()?;
    assert_eq!(mode(&a, &b), CopyMode::SameKeys);
    assert_ne!(a.config().repo_id, b.config().repo_id);
    let first = copy(
        &a,
        &mut b,
        &[(s1, a.load_snapshot(&s1)?)],
        &CopyOptions::default(),
    )?;
    assert!(first.stats.packs_verbatim > 0, "{:?}", first.stats);
    assert_eq!(first.stats.blobs_skipped, 0, "the target was empty");
    // Verbatim packs are byte-identical files under the same name.
    let verbatim: Vec<_> = std::fs::read_dir(tmp.path().join("b/data"))?
        .flat_map(|d| std::fs::read_dir(d.expect("dir").path()).expect("read"))
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let rel = p.strip_prefix(tmp.path().join("b")).expect("prefix");
            tmp.path().join("a").join(rel).exists()
        })
        .collect();
    assert_eq!(verbatim.len() as u64, first.stats.packs_verbatim);
    for p in &verbatim {
        let rel = p.strip_prefix(tmp.path().join("b"))?;
        assert_eq!(
            std::fs::read(p)?,
            std::fs::read(tmp.path().join("a").join(rel))?
        );
    }
    // The second snapshot shares most blobs with the first: only the new ones move.
    let second = copy(
        &a,
        &mut b,
        &[(s1, a.load_snapshot(&s1)?), (s2, a.load_snapshot(&s2)?)],
        &CopyOptions::default(),
    )?;
    assert_eq!(second.skipped.len(), 1);
    assert_eq!(second.copied.len(), 1);
    assert!(second.stats.blobs_skipped > 0);
    assert!(second.stats.bytes_copied < first.stats.bytes_copied);
    let copied = b.load_snapshot(&second.copied[0].target)?;
    assert_eq!(
        copied.tree,
        a.load_snapshot(&s2)?.tree,
        "same keys: same ids"
    );
    assert_eq!(copied.parent, Some(first.copied[0].target));
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    files(&a, copied.tree, "", &mut fa);
    files(&b, copied.tree, "", &mut fb);
    assert_eq!(fa, fb);
    Ok(())
}

#[test]
fn same_keys_adopts_a_pack_uploaded_but_not_indexed() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    source_tree(&src_dir)?;
    let mut a = init(&tmp.path().join("a"))?;
    let s1 = backup(&mut a, &src_dir, 1_700_000_100)?;
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(tmp.path().join("b")));
    let mut b = Repository::init_sharing_keys(
        backend.clone(),
        &secret("b"),
        &InitOptions::for_tests(64 << 10),
        &a,
    )?;
    // As if a copy died after uploading one pack: the file is there, no index names it.
    let pack = a.index().packs()[0];
    let bytes = a.backend().read(FileType::Pack, &pack.id.to_hex())?;
    backend.write(FileType::Pack, &pack.id.to_hex(), &bytes)?;
    b.load_index()?;
    let r = copy(
        &a,
        &mut b,
        &[(s1, a.load_snapshot(&s1)?)],
        &CopyOptions::default(),
    )?;
    assert_eq!(r.stats.packs_adopted, 1, "{:?}", r.stats);
    b.load_index()?;
    assert!(b.index().pack(&pack.id).is_some());
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    let tree = a.load_snapshot(&s1)?.tree;
    files(&a, tree, "", &mut fa);
    files(&b, tree, "", &mut fb);
    assert_eq!(fa, fb);
    Ok(())
}

#[test]
fn a_copy_of_a_copy_is_recognised_by_its_original() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    source_tree(&src_dir)?;
    let mut a = init(&tmp.path().join("a"))?;
    let sa = backup(&mut a, &src_dir, 1_700_000_100)?;
    let mut b = init(&tmp.path().join("b"))?;
    b.load_index()?;
    let r = copy(
        &a,
        &mut b,
        &[(sa, a.load_snapshot(&sa)?)],
        &CopyOptions::default(),
    )?;
    let sb = r.copied[0].target;
    let mut c = init(&tmp.path().join("c"))?;
    c.load_index()?;
    let r = copy(
        &b,
        &mut c,
        &[(sb, b.load_snapshot(&sb)?)],
        &CopyOptions::default(),
    )?;
    let sc = r.copied[0].target;
    let in_c = c.load_snapshot(&sc)?;
    let origin = in_c.copied_from.expect("origin");
    assert_eq!((origin.snapshot, origin.source), (sa, sb));
    assert_eq!(origin.repository, a.config().repo_id);
    assert_eq!(origin.source_repository, b.config().repo_id);
    // Copying the original (or B's copy) into C again finds C's copy.
    a.load_index()?;
    let r = copy(
        &a,
        &mut c,
        &[(sa, a.load_snapshot(&sa)?)],
        &CopyOptions::default(),
    )?;
    assert!(r.copied.is_empty());
    assert_eq!(r.skipped[0].existing, sc);
    // And copying C's copy back into A finds the original.
    let r = copy(
        &c,
        &mut a,
        &[(sc, c.load_snapshot(&sc)?)],
        &CopyOptions::default(),
    )?;
    assert!(r.copied.is_empty());
    assert_eq!(r.skipped[0].existing, sa);
    Ok(())
}

#[test]
fn same_keys_reseals_the_needed_blobs_of_a_mostly_unneeded_pack() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    std::fs::create_dir_all(&src_dir)?;
    for i in 0..4u64 {
        std::fs::write(src_dir.join(format!("f{i}")), bytes(50 + 2 * i, 300 << 10))?;
    }
    // Large packs: the four files share one.
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(tmp.path().join("a")));
    let mut a = Repository::init(backend, &secret("a"), &InitOptions::for_tests(8 << 20))?;
    backup(&mut a, &src_dir, 1_700_000_100)?;
    for i in 1..4 {
        std::fs::remove_file(src_dir.join(format!("f{i}")))?;
    }
    let s2 = backup(&mut a, &src_dir, 1_700_000_200)?;
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(tmp.path().join("b")));
    let mut b =
        Repository::init_sharing_keys(backend, &secret("b"), &InitOptions::for_tests(8 << 20), &a)?;
    b.load_index()?;
    let snap = a.load_snapshot(&s2)?;
    let r = copy(&a, &mut b, &[(s2, snap.clone())], &CopyOptions::default())?;
    // f0's data is a quarter of the first pack: resealed; the second backup's trees fill the
    // second pack: copied whole.
    assert!(r.stats.blobs_resealed > 0, "{:?}", r.stats);
    assert_eq!(r.stats.packs_verbatim, 1, "{:?}", r.stats);
    assert_eq!(r.stats.packs_written, 1, "{:?}", r.stats);
    let b_bytes: u64 = b.index().packs().iter().map(|p| p.size).sum();
    let a_bytes: u64 = a.index().packs().iter().map(|p| p.size).sum();
    assert!(b_bytes < a_bytes / 2, "{b_bytes} of {a_bytes}");
    // The resealed blobs open in the target (read_blob checks them against their ids).
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    files(&a, snap.tree, "", &mut fa);
    b.load_index()?;
    files(&b, snap.tree, "", &mut fb);
    assert_eq!(fa, fb);
    Ok(())
}
