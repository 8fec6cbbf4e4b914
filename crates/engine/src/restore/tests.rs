//! Restore through the engine: content spread over many packs, shared blobs, holes, and
//! damaged or missing packs.

use super::*;
use crate::{BackupOptions, InitOptions, Secret};
use snapguard_backend::{Backend, LocalBackend};
use snapguard_format::{PackId, Timestamp};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use zeroize::Zeroizing;

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const KIB: usize = 1024;

fn secret() -> Secret {
    Secret::Password(Zeroizing::new(b"restore tests".to_vec()))
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

struct Fixture {
    _tmp: tempfile::TempDir,
    repo_dir: PathBuf,
    src: PathBuf,
    target: PathBuf,
    snapshot: SnapshotFile,
}

/// A repository with small packs (so one file spans several) holding one snapshot of:
/// `big.bin` (several chunks), `dup1`/`dup2` (same content), `h1`/`h2` (one inode),
/// `sparse` (data between holes), `all_hole`, `empty`, `d/one.bin`, `d/e/two.bin`.
/// With `second`, a file is then added to every directory and the snapshot is that of a second
/// backup: its trees are all in new packs, its old files' data in the first backup's packs.
fn fixture(second: bool) -> TestResult<Fixture> {
    let tmp = tempfile::tempdir()?;
    let repo_dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    let target = tmp.path().join("target");
    std::fs::create_dir_all(src.join("d/e"))?;
    std::fs::write(src.join("big.bin"), bytes(1, 2600 * KIB))?;
    std::fs::write(src.join("dup1"), bytes(2, 100 * KIB))?;
    std::fs::write(src.join("dup2"), bytes(2, 100 * KIB))?;
    std::fs::write(src.join("h1"), bytes(3, 70 * KIB))?;
    std::fs::hard_link(src.join("h1"), src.join("h2"))?;
    let sparse = std::fs::File::create(src.join("sparse"))?;
    sparse.set_len(8 << 20)?;
    std::os::unix::fs::FileExt::write_all_at(&sparse, &bytes(4, 64 * KIB), 3 << 20)?;
    drop(sparse);
    std::fs::File::create(src.join("all_hole"))?.set_len(4 << 20)?;
    std::fs::write(src.join("empty"), b"")?;
    std::fs::write(src.join("d/one.bin"), bytes(5, 30 * KIB))?;
    std::fs::write(src.join("d/e/two.bin"), bytes(6, 30 * KIB))?;

    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&repo_dir));
    let init = InitOptions::for_tests(64 << 10);
    let mut repo = Repository::init(backend, &secret(), &init)?;
    let opts = BackupOptions {
        paths: vec![src.clone()],
        hostname: "h".into(),
        username: "u".into(),
        time: Timestamp {
            secs: 1_700_000_001,
            nanos: 0,
        },
        program_version: "restore-test".into(),
        ..BackupOptions::default()
    };
    let mut res = crate::backup(&mut repo, &opts)?;
    if second {
        for dir in ["", "d", "d/e"] {
            std::fs::write(src.join(dir).join("added"), b"added")?;
        }
        // As the CLI does: a new session that loads the index.
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&repo_dir));
        repo = Repository::open(backend, &[secret()])?;
        repo.load_index()?;
        res = crate::backup(&mut repo, &opts)?;
    }
    let id = res.snapshot_id.ok_or("no snapshot")?;
    let snapshot = repo.load_snapshot(&id)?;
    Ok(Fixture {
        _tmp: tmp,
        repo_dir,
        src,
        target,
        snapshot,
    })
}

impl Fixture {
    fn open(&self) -> TestResult<Repository> {
        let mut repo = Repository::open(Arc::new(LocalBackend::new(&self.repo_dir)), &[secret()])?;
        repo.load_index()?;
        Ok(repo)
    }

    fn snap_path(&self, rel: &str) -> Vec<u8> {
        self.src.join(rel).as_os_str().as_bytes().to_vec()
    }

    /// Restore everything (or only `includes`).
    fn restore(&self, includes: &[&str]) -> Result<RestoreSummary> {
        let repo = Repository::open(Arc::new(LocalBackend::new(&self.repo_dir)), &[secret()])
            .and_then(|mut r| r.load_index().map(|()| r))?;
        let opts = RestoreOptions {
            target: self.target.clone(),
            includes: includes.iter().map(|s| s.to_string()).collect(),
            ..RestoreOptions::default()
        };
        restore(&repo, &self.snapshot, b"/", &opts)
    }

    /// Where `rel` (relative to the source) is restored.
    fn restored(&self, rel: &str) -> PathBuf {
        let src = self.src.strip_prefix("/").unwrap_or(&self.src);
        self.target.join(src).join(rel)
    }

    /// The packs holding the data blobs of `rel`, and the first blob's location.
    fn blobs_of(&self, rel: &str) -> TestResult<Vec<crate::index::BlobLocation>> {
        let repo = self.open()?;
        let node =
            find_node(&repo, self.snapshot.tree, &self.snap_path(rel))?.ok_or("no such node")?;
        let mut out = Vec::new();
        for part in &node.content {
            if let ContentPart::Data { id, .. } = part {
                out.push(repo.index().get(id)?.ok_or("blob not indexed")?);
            }
        }
        Ok(out)
    }

    fn pack_file(&self, pack: &PackId) -> PathBuf {
        let hex = pack.to_hex();
        self.repo_dir.join("data").join(&hex[..2]).join(&hex)
    }

    fn flip(&self, loc: &crate::index::BlobLocation) -> TestResult {
        let path = self.pack_file(&loc.pack);
        let mut data = std::fs::read(&path)?;
        data[loc.blob.offset as usize + 10] ^= 0xff;
        let mut perms = std::fs::metadata(&path)?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        std::fs::set_permissions(&path, perms)?;
        std::fs::write(&path, data)?;
        Ok(())
    }
}

/// Regular files at or below `dir`.
fn count_files(dir: &Path) -> TestResult<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            n += count_files(&e.path())?;
        } else if t.is_file() {
            n += 1;
        }
    }
    Ok(n)
}

fn warned(summary: &RestoreSummary, path: &Path) -> usize {
    let p = path.display().to_string();
    summary.warnings.iter().filter(|w| w.path == p).count()
}

#[test]
fn restores_content_across_packs_shared_blobs_and_holes() -> TestResult {
    let f = fixture(false)?;
    let big = f.blobs_of("big.bin")?;
    let packs: std::collections::HashSet<_> = big.iter().map(|l| l.pack).collect();
    assert!(
        packs.len() > 1,
        "fixture: big.bin should span several packs"
    );
    let s = f.restore(&[])?;
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    for rel in [
        "big.bin",
        "dup1",
        "dup2",
        "h1",
        "h2",
        "sparse",
        "all_hole",
        "empty",
        "d/one.bin",
        "d/e/two.bin",
    ] {
        let want = std::fs::read(f.src.join(rel))?;
        let got = std::fs::read(f.restored(rel))?;
        assert!(want == got, "{rel}: content differs");
    }
    let h1 = std::fs::metadata(f.restored("h1"))?;
    let h2 = std::fs::metadata(f.restored("h2"))?;
    assert_eq!(h1.ino(), h2.ino(), "hardlinks restored as copies");
    for (rel, max_alloc) in [("sparse", 1 << 20), ("all_hole", 0)] {
        let m = std::fs::metadata(f.restored(rel))?;
        assert!(
            m.blocks() * 512 <= max_alloc,
            "{rel}: {} bytes allocated",
            m.blocks() * 512
        );
    }
    assert_eq!(s.files, 10);
    Ok(())
}

#[test]
fn corrupt_shared_blob_removes_every_file_using_it_once_each() -> TestResult {
    let f = fixture(false)?;
    let dup = f.blobs_of("dup1")?;
    assert_eq!(dup.len(), 1);
    f.flip(&dup[0])?;
    let h = f.blobs_of("h1")?;
    f.flip(&h[0])?;
    let s = f.restore(&[])?;
    let pack = dup[0].pack.to_string();
    for rel in ["dup1", "dup2", "h1", "h2"] {
        let p = f.restored(rel);
        assert!(!p.exists(), "{rel} left behind");
        assert_eq!(warned(&s, &p), 1, "{rel}: {:?}", s.warnings);
    }
    let w = s
        .warnings
        .iter()
        .find(|w| w.path.ends_with("dup2"))
        .ok_or("no warning")?;
    assert!(
        w.message.contains(&pack[..8]) && w.message.contains("integrity"),
        "{w:?}"
    );
    assert_eq!(s.warnings.len(), 4, "{:?}", s.warnings);
    assert_eq!(s.files, 6);
    assert_eq!(
        std::fs::read(f.restored("big.bin"))?,
        std::fs::read(f.src.join("big.bin"))?
    );
    Ok(())
}

#[test]
fn missing_pack_fails_only_the_files_in_it() -> TestResult {
    let f = fixture(false)?;
    let big = f.blobs_of("big.bin")?;
    let last = big.last().ok_or("no blobs")?;
    std::fs::remove_file(f.pack_file(&last.pack))?;
    let s = f.restore(&[])?;
    let p = f.restored("big.bin");
    assert!(!p.exists());
    assert_eq!(warned(&s, &p), 1, "{:?}", s.warnings);
    let w = &s.warnings[0];
    assert!(w.message.contains("missing or truncated"), "{w:?}");
    // Whatever else shared that pack failed too, and nothing else did. The pack may also hold
    // a directory's tree (which blobs share a pack depends on timing): then every file below
    // that directory is lost with it.
    let mut failed = 0u64;
    for w in &s.warnings {
        if w.message
            .starts_with("directory contents cannot be restored")
        {
            let rel = Path::new(&w.path).strip_prefix(f.restored(""))?;
            failed += count_files(&f.src.join(rel))?;
        } else {
            failed += 1;
        }
    }
    assert_eq!(s.files + failed, 10, "{s:?}");
    Ok(())
}

#[test]
fn truncated_pack_keeps_the_blobs_before_the_cut() -> TestResult {
    let f = fixture(true)?;
    let mut small = Vec::new();
    for rel in ["dup1", "h1", "d/one.bin", "d/e/two.bin"] {
        small.push((f.blobs_of(rel)?[0], rel));
    }
    small.sort_by_key(|(l, _)| (l.pack, l.blob.offset));
    let Some(pair) = small.windows(2).find(|w| w[0].0.pack == w[1].0.pack) else {
        return Err("fixture: no two small files share a pack".into());
    };
    let ((_, kept), (cut, lost)) = (pair[0], pair[1]);
    let path = f.pack_file(&cut.pack);
    let data = std::fs::read(&path)?;
    std::fs::write(&path, &data[..cut.blob.offset as usize + 5])?;
    let s = f.restore(&[])?;
    assert!(f.restored(kept).exists(), "{kept}: {:?}", s.warnings);
    assert!(!f.restored(lost).exists(), "{lost} left behind");
    assert_eq!(warned(&s, &f.restored(lost)), 1, "{:?}", s.warnings);
    Ok(())
}

#[test]
fn directory_kept_only_for_a_file_that_fails_is_removed_and_not_counted() -> TestResult {
    let f = fixture(false)?;
    let two = f.blobs_of("d/e/two.bin")?;
    f.flip(&two[0])?;
    let s = f.restore(&["two.bin"])?;
    assert_eq!((s.files, s.dirs), (0, 0), "{s:?}");
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    let left: Vec<_> = std::fs::read_dir(&f.target)?.collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

impl Fixture {
    /// Restore everything with `overwrite` and `delete`.
    fn restore_mode(&self, overwrite: Overwrite, delete: bool) -> Result<RestoreSummary> {
        let repo = Repository::open(Arc::new(LocalBackend::new(&self.repo_dir)), &[secret()])
            .and_then(|mut r| r.load_index().map(|()| r))?;
        let opts = RestoreOptions {
            target: self.target.clone(),
            overwrite,
            delete,
            ..RestoreOptions::default()
        };
        restore(&repo, &self.snapshot, b"/", &opts)
    }
}

const ALL: [&str; 10] = [
    "big.bin",
    "dup1",
    "dup2",
    "h1",
    "h2",
    "sparse",
    "all_hole",
    "empty",
    "d/one.bin",
    "d/e/two.bin",
];

fn ino(p: &Path) -> TestResult<u64> {
    Ok(std::fs::symlink_metadata(p)?.ino())
}

/// Open handles on files: while they are open, their inode numbers cannot be reused, so a path
/// whose inode still equals its handle's was not replaced.
fn hold(paths: &[PathBuf]) -> TestResult<Vec<(PathBuf, std::fs::File)>> {
    paths
        .iter()
        .map(|p| Ok((p.clone(), std::fs::File::open(p)?)))
        .collect()
}

fn replaced(held: &[(PathBuf, std::fs::File)]) -> TestResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (p, f) in held {
        if ino(p)? != f.metadata()?.ino() {
            out.push(p.clone());
        }
    }
    Ok(out)
}

#[test]
fn if_changed_rewrites_only_files_whose_content_differs() -> TestResult {
    let f = fixture(false)?;
    let first = f.restore(&[])?;
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    assert_eq!((first.skipped_unchanged, first.overwritten), (0, 0));
    let all: Vec<PathBuf> = ALL.iter().map(|r| f.restored(r)).collect();
    let held = hold(&all)?;

    // Nothing changed: everything is kept, no pack data is read, nothing is written, and the
    // files (holes and hardlinks included) are the same inodes.
    let again = f.restore_mode(Overwrite::IfChanged, false)?;
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(again.skipped_unchanged, 10, "{again:?}");
    assert_eq!(
        (again.overwritten, again.bytes_written, again.bytes_fetched),
        (0, 0, 0),
        "{again:?}"
    );
    assert_eq!(again.files, 10);
    assert_eq!(replaced(&held)?, Vec::<PathBuf>::new());

    // One byte flipped in the middle of big.bin, one.bin cut short, a hole of sparse filled
    // with zeros (same bytes, but not the snapshot's sparse layout), a stray xattr and mode on
    // dup1 (metadata only: the file is kept and its metadata set).
    let big = f.restored("big.bin");
    let mut data = std::fs::read(&big)?;
    data[1_300_000] ^= 1;
    std::fs::write(&big, &data)?;
    let one = f.restored("d/one.bin");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&one)?
        .set_len(10)?;
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new()
            .write(true)
            .open(f.restored("sparse"))?,
        &[0u8; 4096],
        0,
    )?;
    let dup1 = f.restored("dup1");
    std::fs::set_permissions(&dup1, std::fs::Permissions::from_mode(0o777))?;
    rustix::fs::setxattr(&dup1, "user.stray", b"x", rustix::fs::XattrFlags::empty())?;
    let s = f.restore_mode(Overwrite::IfChanged, false)?;
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(s.overwritten, 3, "{s:?}");
    assert_eq!(s.skipped_unchanged, 7, "{s:?}");
    assert_eq!(s.bytes_written, (2600 + 30 + 64) * KIB as u64, "{s:?}");
    assert!(s.bytes_fetched > 0);
    for rel in ALL {
        assert!(
            std::fs::read(f.src.join(rel))? == std::fs::read(f.restored(rel))?,
            "{rel}: content differs"
        );
    }
    let m = std::fs::metadata(&dup1)?;
    assert_eq!(
        m.mode() & 0o7777,
        std::fs::metadata(f.src.join("dup1"))?.mode() & 0o7777
    );
    assert!(
        fsmeta::read_xattrs(&dup1)?.is_empty(),
        "stray xattr left on a kept file"
    );
    assert_eq!(
        replaced(&held)?,
        vec![
            f.restored("big.bin"),
            f.restored("sparse"),
            f.restored("d/one.bin")
        ]
    );
    let sparse = std::fs::metadata(f.restored("sparse"))?;
    assert!(
        sparse.blocks() * 512 <= 1 << 20,
        "sparse file not sparse again"
    );
    Ok(())
}

#[test]
fn always_replaces_and_never_keeps_every_existing_file() -> TestResult {
    let f = fixture(false)?;
    f.restore(&[])?;
    let one = f.restored("d/one.bin");
    std::fs::write(&one, b"mine")?;
    let held = hold(&[f.restored("dup2")])?;

    let s = f.restore_mode(Overwrite::Never, false)?;
    assert_eq!(s.skipped_existing, 10, "{s:?}");
    assert_eq!(
        (s.files, s.bytes_written, s.bytes_fetched),
        (0, 0, 0),
        "{s:?}"
    );
    assert_eq!(std::fs::read(&one)?, b"mine");

    let s = f.restore_mode(Overwrite::Always, false)?;
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(
        (s.files, s.overwritten, s.skipped_unchanged),
        (10, 10, 0),
        "{s:?}"
    );
    assert_eq!(replaced(&held)?.len(), 1, "always kept an inode");
    assert_eq!(
        std::fs::read(&one)?,
        std::fs::read(f.src.join("d/one.bin"))?
    );
    let h1 = ino(&f.restored("h1"))?;
    assert_eq!(h1, ino(&f.restored("h2"))?, "hardlink group split");
    Ok(())
}

#[test]
fn delete_removes_extras_without_following_symlinks() -> TestResult {
    let f = fixture(false)?;
    f.restore(&[])?;
    let outside = f._tmp.path().join("outside");
    std::fs::create_dir(&outside)?;
    std::fs::write(outside.join("precious"), b"keep me")?;
    let d = f.restored("d");
    std::fs::create_dir_all(d.join("extra/deeper"))?;
    std::fs::write(d.join("extra/deeper/x"), b"x")?;
    std::os::unix::fs::symlink(&outside, d.join("extra/link"))?;
    std::os::unix::fs::symlink(&outside, d.join("e/link"))?;
    std::fs::write(f.restored("stray"), b"s")?;
    // The directories above the backed-up path are not the snapshot's to clean.
    let above = f.target.join("above");
    std::fs::write(&above, b"not in scope")?;

    let dry = RestoreOptions {
        target: f.target.clone(),
        delete: true,
        dry_run: true,
        ..RestoreOptions::default()
    };
    let repo = f.open()?;
    let s = restore(&repo, &f.snapshot, b"/", &dry)?;
    // extra, extra/deeper, extra/deeper/x, extra/link, e/link, stray.
    assert_eq!(s.deleted, 6, "{s:?}");
    assert!(d.join("extra/deeper/x").exists(), "dry run deleted");

    let s = f.restore_mode(Overwrite::IfChanged, true)?;
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(s.deleted, 6, "{s:?}");
    let mut paths = s.deleted_paths.clone();
    paths.sort();
    let want = |p: PathBuf| p.display().to_string();
    let mut expected = vec![
        want(d.join("e/link")),
        want(d.join("extra")),
        want(f.restored("stray")),
    ];
    expected.sort();
    assert_eq!(paths, expected);
    assert!(!d.join("extra").exists() && !d.join("e/link").exists());
    assert_eq!(std::fs::read(outside.join("precious"))?, b"keep me");
    assert!(above.exists(), "deleted above the backed-up path");
    assert_eq!(s.skipped_unchanged, 10, "{s:?}");
    Ok(())
}
