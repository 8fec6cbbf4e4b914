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

use snapguard_format::{BlobId, BlobType, Compression, ContentPart, IndexPack, TreeId};

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

/// A copy of `a` sharing its keys, in `dir`.
fn replica(a: &Repository, dir: &Path) -> TestResult<Repository> {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir));
    let mut b =
        Repository::init_sharing_keys(backend, &secret("b"), &InitOptions::for_tests(64 << 10), a)?;
    b.load_index()?;
    Ok(b)
}

/// Every pack of `repo` as its header describes it.
fn entries(repo: &Repository) -> TestResult<Vec<IndexPack>> {
    let mut out = Vec::new();
    for p in repo.index().packs() {
        let bytes = repo.backend().read(FileType::Pack, &p.id.to_hex())?;
        out.push(IndexPack {
            id: p.id,
            size: p.size,
            epoch: p.epoch,
            cipher_code: p.cipher_code,
            blobs: crate::pack::read_header(repo.crypt(), &p.id, &bytes)?,
        });
    }
    Ok(out)
}

/// Replace the index of the repository in `dir` by one file listing `packs`.
fn replace_index(repo: &mut Repository, dir: &Path, packs: Vec<IndexPack>) -> TestResult {
    for e in std::fs::read_dir(dir.join("index"))? {
        std::fs::remove_file(e?.path())?;
    }
    repo.write_index(packs)?;
    repo.load_index()?;
    Ok(())
}

/// The first data blob of a file below `tree` (depth first).
fn first_data_blob(repo: &Repository, tree: TreeId) -> Option<BlobId> {
    for n in &repo.read_tree(&tree).ok()?.nodes {
        for p in &n.content {
            if let ContentPart::Data { id, .. } = p {
                return Some(*id);
            }
        }
        if let Some(sub) = n.subtree {
            if let Some(id) = first_data_blob(repo, sub) {
                return Some(id);
            }
        }
    }
    None
}

fn corrupt_naming(e: &Error, what: &str) -> bool {
    matches!(e, Error::Corrupt { .. }) && e.to_string().contains(what)
}

#[test]
fn same_keys_rejects_a_blob_sealed_under_a_wrong_id() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    source_tree(&src_dir)?;
    let a_dir = tmp.path().join("a");
    let mut a = init(&a_dir)?;
    let s1 = backup(&mut a, &src_dir, 1_700_000_100)?;
    let snap = a.load_snapshot(&s1)?;
    let victim = first_data_blob(&a, snap.tree).ok_or("no data blob")?;
    // A faulty writer sealed other content under the victim's id (the AEAD tag is valid: it
    // was sealed with the repository's keys), and the index points there.
    let mut w = crate::pack::PackWriter::new(a.crypt())?;
    let forged = b"not the content this id names".to_vec();
    w.add_compressed(
        victim,
        BlobType::Data,
        Compression::None,
        &forged,
        forged.len(),
    )?;
    let done = w.finish();
    a.backend()
        .write(FileType::Pack, &done.id.to_hex(), &done.bytes)?;
    let mut packs = entries(&a)?;
    for p in &mut packs {
        p.blobs.retain(|b| b.id != victim);
    }
    packs.push(IndexPack {
        id: done.id,
        size: done.bytes.len() as u64,
        epoch: done.epoch,
        cipher_code: done.cipher_code,
        blobs: done.blobs.clone(),
    });
    replace_index(&mut a, &a_dir, packs)?;
    let mut b = replica(&a, &tmp.path().join("b"))?;
    let err = copy(&a, &mut b, &[(s1, snap)], &CopyOptions::default())
        .expect_err("a blob that does not match its id was copied");
    assert!(
        corrupt_naming(&err, &victim.to_string()) && err.to_string().contains(&done.id.to_string()),
        "{err}"
    );
    assert!(b.list_snapshots()?.is_empty());
    Ok(())
}

#[test]
fn same_keys_refuses_a_whole_pack_whose_header_disagrees_with_the_index() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    source_tree(&src_dir)?;
    let a_dir = tmp.path().join("a");
    let mut a = init(&a_dir)?;
    let s1 = backup(&mut a, &src_dir, 1_700_000_100)?;
    let snap = a.load_snapshot(&s1)?;
    let victim = first_data_blob(&a, snap.tree).ok_or("no data blob")?;
    let pack = a.index().get(&victim)?.ok_or("victim not indexed")?.pack;
    // The source index places the blob elsewhere in its pack than the pack's header does.
    let mut packs = entries(&a)?;
    for p in &mut packs {
        for b in &mut p.blobs {
            if b.id == victim {
                b.offset += 16;
            }
        }
    }
    replace_index(&mut a, &a_dir, packs)?;
    let mut b = replica(&a, &tmp.path().join("b"))?;
    let err = copy(&a, &mut b, &[(s1, snap)], &CopyOptions::default())
        .expect_err("a pack that lacks a needed blob was copied whole");
    assert!(corrupt_naming(&err, &pack.to_string()), "{err}");
    assert!(err.to_string().contains(&victim.to_string()), "{err}");
    assert!(b.list_snapshots()?.is_empty());
    Ok(())
}

#[test]
fn same_keys_does_not_adopt_a_damaged_pack_left_in_the_target() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    source_tree(&src_dir)?;
    let mut a = init(&tmp.path().join("a"))?;
    let s1 = backup(&mut a, &src_dir, 1_700_000_100)?;
    let b_dir = tmp.path().join("b");
    let mut b = replica(&a, &b_dir)?;
    // As if an interrupted copy uploaded a pack that was damaged on the way: same name and
    // size, an intact header, one flipped byte in its first blob.
    let pack = entries(&a)?.into_iter().next().ok_or("no pack")?;
    let mut bytes = a.backend().read(FileType::Pack, &pack.id.to_hex())?;
    let first = pack.blobs.iter().min_by_key(|b| b.offset).ok_or("empty")?;
    bytes[first.offset as usize + 1] ^= 0x40;
    b.backend()
        .write(FileType::Pack, &pack.id.to_hex(), &bytes)?;
    let snap = a.load_snapshot(&s1)?;
    let r = copy(&a, &mut b, &[(s1, snap.clone())], &CopyOptions::default())?;
    assert_eq!(r.stats.packs_adopted, 0, "{:?}", r.stats);
    assert!(r.stats.blobs_resealed > 0, "{:?}", r.stats);
    assert!(
        b.index().pack(&pack.id).is_none(),
        "the damaged pack was indexed"
    );
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    files(&a, snap.tree, "", &mut fa);
    files(&b, snap.tree, "", &mut fb);
    assert_eq!(fa, fb);
    Ok(())
}

/// A backend on which another process (a second copy into the same target) writes every pack,
/// index and snapshot file just before this one does, with the same bytes.
#[derive(Debug)]
struct Overtaken {
    inner: LocalBackend,
}

impl Backend for Overtaken {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> snapguard_backend::Result<()> {
        self.inner.create()
    }
    fn read(&self, t: FileType, name: &str) -> snapguard_backend::Result<Vec<u8>> {
        self.inner.read(t, name)
    }
    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> snapguard_backend::Result<Vec<u8>> {
        self.inner.read_range(t, name, offset, len)
    }
    fn size(&self, t: FileType, name: &str) -> snapguard_backend::Result<u64> {
        self.inner.size(t, name)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> snapguard_backend::Result<()> {
        if matches!(t, FileType::Pack | FileType::Index | FileType::Snapshot) {
            // The other copy wins the race (it may have won it already).
            match self.inner.write(t, name, data) {
                Ok(()) | Err(snapguard_backend::BackendError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.inner.write(t, name, data)
    }
    fn list(&self, t: FileType) -> snapguard_backend::Result<Vec<(String, u64)>> {
        self.inner.list(t)
    }
    fn remove(&self, t: FileType, name: &str) -> snapguard_backend::Result<()> {
        self.inner.remove(t, name)
    }
    fn replace_config(&self, data: &[u8]) -> snapguard_backend::Result<()> {
        self.inner.replace_config(data)
    }
}

#[test]
fn same_keys_copy_overtaken_by_a_concurrent_copy_succeeds() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    source_tree(&src_dir)?;
    let mut a = init(&tmp.path().join("a"))?;
    let s1 = backup(&mut a, &src_dir, 1_700_000_100)?;
    let b_dir = tmp.path().join("b");
    replica(&a, &b_dir)?;
    let backend: Arc<dyn Backend> = Arc::new(Overtaken {
        inner: LocalBackend::new(&b_dir),
    });
    let mut b = Repository::open(backend, &[secret("b")])?;
    b.load_index()?;
    let snap = a.load_snapshot(&s1)?;
    let r = copy(&a, &mut b, &[(s1, snap.clone())], &CopyOptions::default())?;
    // Every whole pack was found written by the other copy, and so was the snapshot.
    assert!(r.stats.packs_adopted > 0, "{:?}", r.stats);
    assert_eq!(r.stats.packs_verbatim, 0, "{:?}", r.stats);
    assert!(r.copied.is_empty(), "{:?}", r.copied);
    assert_eq!(r.skipped.len(), 1);
    let existing = r.skipped[0].existing;
    assert_eq!(b.load_snapshot(&existing)?.tree, snap.tree);
    b.load_index()?;
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    files(&a, snap.tree, "", &mut fa);
    files(&b, snap.tree, "", &mut fb);
    assert_eq!(fa, fb);
    Ok(())
}

#[test]
fn the_parent_link_follows_a_parent_that_is_itself_a_copy() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    source_tree(&src_dir)?;
    let mut a = init(&tmp.path().join("a"))?;
    let s1 = backup(&mut a, &src_dir, 1_700_000_100)?;
    // B gets a copy of s1, then a backup of its own whose parent is that copy.
    let mut b = init(&tmp.path().join("b"))?;
    b.load_index()?;
    let r = copy(
        &a,
        &mut b,
        &[(s1, a.load_snapshot(&s1)?)],
        &CopyOptions::default(),
    )?;
    let s1_b = r.copied[0].target;
    std::fs::write(src_dir.join("new.bin"), bytes(7, 100 << 10))?;
    let s2_b = backup(&mut b, &src_dir, 1_700_000_200)?;
    assert_eq!(b.load_snapshot(&s2_b)?.parent, Some(s1_b));
    // C has s1 straight from A; copying only B's second snapshot links it to that copy.
    let mut c = init(&tmp.path().join("c"))?;
    c.load_index()?;
    let r = copy(
        &a,
        &mut c,
        &[(s1, a.load_snapshot(&s1)?)],
        &CopyOptions::default(),
    )?;
    let s1_c = r.copied[0].target;
    let r = copy(
        &b,
        &mut c,
        &[(s2_b, b.load_snapshot(&s2_b)?)],
        &CopyOptions::default(),
    )?;
    let s2_c = c.load_snapshot(&r.copied[0].target)?;
    assert_eq!(s2_c.parent, Some(s1_c));
    Ok(())
}

#[test]
fn one_repository_reached_by_two_paths_is_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src_dir = tmp.path().join("src");
    source_tree(&src_dir)?;
    let a_dir = tmp.path().join("a");
    let mut a = init(&a_dir)?;
    let s1 = backup(&mut a, &src_dir, 1_700_000_100)?;
    let link = tmp.path().join("also-a");
    std::os::unix::fs::symlink(&a_dir, &link)?;
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&link));
    let mut same = Repository::open(backend, &[secret("a")])?;
    same.load_index()?;
    assert_ne!(a.location(), same.location());
    let err = copy(
        &a,
        &mut same,
        &[(s1, a.load_snapshot(&s1)?)],
        &CopyOptions::default(),
    )
    .expect_err("copied a repository into itself");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(a.list_snapshots()?.len(), 1);
    Ok(())
}
