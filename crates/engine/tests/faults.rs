//! Fault injection: a crash, a lost connection, a torn write or a deletion that never happens,
//! at any point of a backup or a prune, must never cost an earlier snapshot; whatever it leaves
//! behind must be harmless (`check` finds no error) or, for a torn write that the backend's
//! contract forbids, found and named by `check --read-data`.
//!
//! Method: run the operation once through a [`FaultyBackend`] without faults to count its
//! backend operations N, then, for every k in 0..N, on a fresh copy of the same repository,
//! run it again with operation k and all later ones failing; afterwards reopen the copy with a
//! plain backend and verify it. Same for every write (torn) and every remove (failing).
//! Run with `--nocapture` to see how many injection points each scenario exercised.

use snapguard_backend::{Backend, FaultyBackend, FileType, LocalBackend, Op, OpRecord, TornFile};
use snapguard_crypto::{Argon2Params, Cipher};
use snapguard_engine::check::{self, CheckOptions, CheckReport, ReadData};
use snapguard_engine::forget::{self, ForgetOptions};
use snapguard_engine::lock::{self, LockKind, LockOwner};
use snapguard_engine::prune::{self, PruneOptions, PruneStats};
use snapguard_engine::{
    BackupOptions, BackupResult, Error, InitOptions, Repository, RestoreOptions, Secret,
};
use snapguard_format::{SnapshotFile, SnapshotId, Timestamp};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use zeroize::Zeroizing;

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const HOST: &str = "fault-host";
const PACK_TARGET: u32 = 64 << 10;
const KIB: usize = 1024;
const T0: i64 = 1_700_000_000;

// ---------------------------------------------------------------------------------------------
// Source trees and manifests

/// A deterministic pseudo-random byte source (xorshift64*).
struct Rng(u64);

impl Rng {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            out.extend_from_slice(&self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// Write a file with exact content, mtime (with nanoseconds) and mode.
fn put(path: &Path, data: &[u8], mode: u32, mtime_secs: i64) -> TestResult {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        // Make sure we may write it whatever its mode.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::write(path, data)?;
    let f = std::fs::File::options().write(true).open(path)?;
    f.set_modified(UNIX_EPOCH + Duration::new(mtime_secs as u64, 123_456_789))?;
    drop(f);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn mkdir(path: &Path, mode: u32) -> TestResult {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(PathBuf),
}

/// What a restore must reproduce: content, mode and mtime of every entry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    mode: u32,
    mtime: (i64, i64),
}

type Manifest = BTreeMap<PathBuf, Entry>;

fn manifest(root: &Path) -> TestResult<Manifest> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = if rel.as_os_str().is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let md = std::fs::symlink_metadata(&path)?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            for e in std::fs::read_dir(&path)? {
                stack.push(rel.join(e?.file_name()));
            }
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(std::fs::read_link(&path)?)
        } else if ft.is_file() {
            Kind::File(std::fs::read(&path)?)
        } else {
            return Err(format!("unexpected file type at {}", path.display()).into());
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode: md.mode() & 0o7777,
                mtime: (md.mtime(), md.mtime_nsec()),
            },
        );
    }
    Ok(out)
}

fn diff_manifests(want: &Manifest, got: &Manifest) -> Vec<String> {
    let mut d = Vec::new();
    for (p, w) in want {
        let Some(g) = got.get(p) else {
            d.push(format!("{}: missing", p.display()));
            continue;
        };
        if g.mode != w.mode {
            d.push(format!(
                "{}: mode {:04o}, want {:04o}",
                p.display(),
                g.mode,
                w.mode
            ));
        }
        if g.mtime != w.mtime {
            d.push(format!(
                "{}: mtime {:?}, want {:?}",
                p.display(),
                g.mtime,
                w.mtime
            ));
        }
        match (&w.kind, &g.kind) {
            (Kind::File(a), Kind::File(b)) if a != b => {
                let at = a.iter().zip(b).position(|(x, y)| x != y);
                d.push(format!(
                    "{}: content differs ({} bytes, want {}; first difference at {:?})",
                    p.display(),
                    b.len(),
                    a.len(),
                    at
                ));
            }
            (Kind::Symlink(a), Kind::Symlink(b)) if a != b => {
                d.push(format!("{}: link to {b:?}, want {a:?}", p.display()))
            }
            (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
                d.push(format!("{}: wrong kind of entry", p.display()))
            }
            _ => {}
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        d.push(format!("{}: not in the snapshot", p.display()));
    }
    d
}

fn copy_dir(from: &Path, to: &Path) -> TestResult {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}

/// A scratch directory with the source tree in `src`.
struct Fixture {
    tmp: tempfile::TempDir,
    src: PathBuf,
}

impl Fixture {
    fn new() -> TestResult<Fixture> {
        // Hundreds of repository copies, each write fsynced: use memory when there is some.
        let shm = Path::new("/dev/shm");
        let tmp = match tempfile::tempdir_in(shm) {
            Ok(t) if shm.is_dir() => t,
            _ => tempfile::tempdir()?,
        };
        let src = tmp.path().join("src");
        mkdir(&src, 0o755)?;
        Ok(Fixture { tmp, src })
    }

    /// A fresh, empty path in the scratch directory.
    fn path(&self, name: &str) -> TestResult<PathBuf> {
        let p = self.tmp.path().join(name);
        if p.exists() {
            std::fs::remove_dir_all(&p)?;
        }
        Ok(p)
    }
}

// ---------------------------------------------------------------------------------------------
// Repository sessions

fn secret() -> Secret {
    Secret::Password(Zeroizing::new(b"fault injection".to_vec()))
}

fn owner() -> LockOwner {
    LockOwner {
        hostname: HOST.into(),
        username: "tester".into(),
    }
}

fn local(dir: &Path) -> Arc<dyn Backend> {
    Arc::new(LocalBackend::new(dir))
}

fn faulty(dir: &Path) -> FaultyBackend {
    FaultyBackend::new(local(dir))
}

fn init_repo(dir: &Path) -> TestResult {
    let opts = InitOptions {
        cipher: Cipher::Aes256Gcm,
        kdf: Argon2Params {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        },
        now: Timestamp { secs: T0, nanos: 0 },
        hostname: HOST.into(),
        username: "tester".into(),
        compression_level: 3,
        pack_target_size: PACK_TARGET,
        chunk_avg: None,
        append_only: false,
    };
    Repository::init(local(dir), &secret(), &opts)?;
    Ok(())
}

/// What the CLI's `backup` does: open, lock (shared), load the index, back up.
fn backup_session(backend: Arc<dyn Backend>, src: &Path, secs: i64) -> Result<BackupResult, Error> {
    let mut repo = Repository::open(backend, &[secret()])?;
    let _guard = repo.lock(LockKind::Shared, "backup", &owner())?;
    repo.load_index()?;
    let opts = BackupOptions {
        paths: vec![src.to_path_buf()],
        hostname: HOST.into(),
        username: "tester".into(),
        time: Timestamp { secs, nanos: 0 },
        program_version: "fault-test".into(),
        ..BackupOptions::default()
    };
    snapguard_engine::backup(&mut repo, &opts)
}

fn prune_options() -> PruneOptions {
    // Repack every pack with any unused blob, so prune both deletes and repacks.
    PruneOptions {
        max_unused_percent: 0.0,
        max_repack_bytes: None,
    }
}

/// What the CLI's `prune` does: open, lock (exclusive), load the index, plan, execute.
fn prune_session(backend: Arc<dyn Backend>) -> Result<PruneStats, Error> {
    let mut repo = Repository::open(backend, &[secret()])?;
    let _guard = repo.lock(LockKind::Exclusive, "prune", &owner())?;
    repo.load_index()?;
    let plan = prune::plan(&repo, &prune_options())?;
    prune::execute(&mut repo, &plan)
}

/// Open with a plain backend after a failed run: clear the dead run's locks, load the index.
fn open_clean(dir: &Path) -> TestResult<Repository> {
    let mut repo = Repository::open(local(dir), &[secret()])?;
    lock::remove_locks(repo.backend(), repo.crypt(), HOST, true)?;
    repo.load_index()?;
    Ok(repo)
}

fn run_check(repo: &Repository) -> TestResult<CheckReport> {
    Ok(check::check(
        repo,
        &CheckOptions {
            read_data: ReadData::All,
            ledger: None,
            now: T0,
        },
    )?)
}

fn findings(r: &CheckReport) -> String {
    r.findings
        .iter()
        .map(|f| {
            format!(
                "  {} {}: {}\n",
                if f.error { "ERROR" } else { "note " },
                f.object,
                f.message
            )
        })
        .collect()
}

/// Restore all of `snap` and compare the backed-up directory with `want`.
fn assert_restores(
    repo: &Repository,
    snap: &SnapshotFile,
    src: &Path,
    want: &Manifest,
    label: &str,
) -> TestResult {
    let target = tempfile::tempdir_in(src.parent().ok_or("source at /")?)?;
    let summary = snapguard_engine::restore(
        repo,
        snap,
        b"/",
        &RestoreOptions {
            target: target.path().to_path_buf(),
            ..RestoreOptions::default()
        },
    )?;
    let root = target.path().join(src.strip_prefix("/")?);
    // Warnings about the synthetic directories above the source (owned by others when not run
    // as root) do not matter; inside it, none is acceptable.
    let warnings: Vec<_> = summary
        .warnings
        .iter()
        .filter(|w| Path::new(&w.path).starts_with(&root))
        .collect();
    assert!(
        warnings.is_empty(),
        "{label}: restore warnings {warnings:#?}"
    );
    let diff = diff_manifests(want, &manifest(&root)?);
    assert!(
        diff.is_empty(),
        "{label}: restore is not exact:\n  {}",
        diff.join("\n  ")
    );
    Ok(())
}

/// What a repository must hold after a failed run.
struct Expect<'a> {
    src: &'a Path,
    /// Snapshots that must exist and restore exactly.
    required: &'a [(SnapshotId, Manifest)],
    /// Any other snapshot must restore as this; `None`: no other snapshot may exist.
    optional: Option<&'a Manifest>,
}

/// Reopen with a plain backend and verify: no damaged index or snapshot, `check --read-data`
/// without errors, every required snapshot (and the optional one) restores exactly. Returns the
/// ids of snapshots beyond the required ones.
fn verify_consistent(dir: &Path, expect: &Expect, label: &str) -> TestResult<Vec<SnapshotId>> {
    let repo = open_clean(dir)?;
    assert!(
        repo.index_errors().is_empty(),
        "{label}: damaged index files: {:?}",
        repo.index_errors()
    );
    let report = run_check(&repo)?;
    assert_eq!(
        report.errors(),
        0,
        "{label}: check found errors:\n{}",
        findings(&report)
    );
    let (snaps, damaged) = repo.list_snapshots_report()?;
    assert!(damaged.is_empty(), "{label}: damaged snapshots {damaged:?}");
    verify_snapshots(&repo, &snaps, expect, label)
}

fn verify_snapshots(
    repo: &Repository,
    snaps: &[(SnapshotId, SnapshotFile)],
    expect: &Expect,
    label: &str,
) -> TestResult<Vec<SnapshotId>> {
    for (id, want) in expect.required {
        let Some((_, snap)) = snaps.iter().find(|(i, _)| i == id) else {
            panic!("{label}: snapshot {} is gone", id.short());
        };
        assert_restores(
            repo,
            snap,
            expect.src,
            want,
            &format!("{label}: snapshot {}", id.short()),
        )?;
    }
    let extra: Vec<&(SnapshotId, SnapshotFile)> = snaps
        .iter()
        .filter(|(i, _)| !expect.required.iter().any(|(r, _)| r == i))
        .collect();
    match expect.optional {
        None => assert!(extra.is_empty(), "{label}: unexpected snapshots {extra:?}"),
        Some(want) => {
            assert!(extra.len() <= 1, "{label}: unexpected snapshots {extra:?}");
            for (id, snap) in &extra {
                assert_restores(
                    repo,
                    snap,
                    expect.src,
                    want,
                    &format!("{label}: new snapshot {}", id.short()),
                )?;
            }
        }
    }
    Ok(extra.iter().map(|(i, _)| *i).collect())
}

/// `op k` as a readable string, for messages.
fn describe(journal: &[OpRecord], k: u64) -> String {
    match journal.iter().find(|r| r.index == k) {
        Some(r) => format!("op {k} = {:?} {}", r.op, r.path()),
        None => format!("op {k} (not reached)"),
    }
}

// ---------------------------------------------------------------------------------------------
// The backup scenario: snapshot A on a clean backend, then B (changes to the tree) with faults.

struct BackupScenario {
    fx: Fixture,
    /// The repository holding only snapshot A.
    base: PathBuf,
    a: (SnapshotId, Manifest),
    b: Manifest,
}

fn backup_scenario() -> TestResult<BackupScenario> {
    let fx = Fixture::new()?;
    let src = &fx.src;
    let mut rng = Rng(0x5eed_0001);
    // Tree A: a 3 MiB random file (several chunks, each its own pack), 16 small random files
    // (3 to a 64 KiB pack), compressible text, an empty file, a symlink, a deep directory.
    put(&src.join("big.bin"), &rng.bytes(3 << 20), 0o644, T0 - 1000)?;
    let notes: Vec<u8> = (0..2000)
        .flat_map(|i| format!("line {i} of the notes\n").into_bytes())
        .collect();
    put(&src.join("notes.txt"), &notes, 0o600, T0 - 999)?;
    put(&src.join("empty"), b"", 0o644, T0 - 998)?;
    std::os::unix::fs::symlink("notes.txt", src.join("link"))?;
    mkdir(&src.join("small"), 0o755)?;
    for i in 0..16 {
        put(
            &src.join(format!("small/s{i:02}")),
            &rng.bytes(24 * KIB),
            0o640,
            T0 - 900 + i,
        )?;
    }
    put(&src.join("deep/a/b/leaf.txt"), b"leaf\n", 0o444, T0 - 800)?;
    mkdir(&src.join("deep/a"), 0o700)?;
    std::fs::set_permissions(src.join("small"), std::fs::Permissions::from_mode(0o750))?;

    let base = fx.path("base")?;
    init_repo(&base)?;
    let man_a = manifest(src)?;
    let a = backup_session(local(&base), src, T0)?
        .snapshot_id
        .ok_or("snapshot A was not saved")?;

    // Tree B: part of the big file rewritten, some small files rewritten, one removed, a new
    // directory of new files, a mode change, a new symlink.
    let mut big = std::fs::read(src.join("big.bin"))?;
    big[3 << 19..(3 << 19) + 64 * KIB].copy_from_slice(&rng.bytes(64 * KIB));
    put(&src.join("big.bin"), &big, 0o644, T0 + 100)?;
    for i in 0..5 {
        put(
            &src.join(format!("small/s{i:02}")),
            &rng.bytes(24 * KIB),
            0o640,
            T0 + 200 + i,
        )?;
    }
    std::fs::remove_file(src.join("small/s15"))?;
    mkdir(&src.join("new"), 0o755)?;
    for i in 0..12 {
        put(
            &src.join(format!("new/n{i:02}")),
            &rng.bytes(24 * KIB),
            0o600,
            T0 + 300 + i,
        )?;
    }
    std::fs::set_permissions(src.join("new"), std::fs::Permissions::from_mode(0o700))?;
    std::fs::set_permissions(
        src.join("notes.txt"),
        std::fs::Permissions::from_mode(0o640),
    )?;
    std::os::unix::fs::symlink("big.bin", src.join("link2"))?;
    let man_b = manifest(src)?;
    Ok(BackupScenario {
        fx,
        base,
        a: (a, man_a),
        b: man_b,
    })
}

/// Run backup B on a copy of the base repository through a faulty backend set up by `arm`.
fn faulty_backup(
    s: &BackupScenario,
    work: &Path,
    arm: impl FnOnce(&FaultyBackend),
) -> TestResult<(FaultyBackend, Result<BackupResult, Error>)> {
    copy_dir(&s.base, work)?;
    let f = faulty(work);
    arm(&f);
    let r = backup_session(Arc::new(f.clone()), &s.fx.src, T0 + 3600);
    Ok((f, r))
}

#[test]
fn backup_interrupted_at_every_operation() -> TestResult {
    let s = backup_scenario()?;
    let expect = Expect {
        src: &s.fx.src,
        required: std::slice::from_ref(&s.a),
        optional: Some(&s.b),
    };
    // Dry run: count operations; the result must be right too.
    let work = s.fx.path("dry")?;
    let (f, r) = faulty_backup(&s, &work, |_| {})?;
    let b = r?.snapshot_id.ok_or("no snapshot B")?;
    let n = f.operations();
    let clean = f.counts();
    let extra = verify_consistent(&work, &expect, "clean backup B")?;
    assert_eq!(extra, vec![b]);
    assert!(
        clean.writes >= 8,
        "too few writes to be interesting: {clean:?}"
    );

    let mut committed = 0;
    for k in 0..n {
        let work = s.fx.path("attempt")?;
        let (f, r) = faulty_backup(&s, &work, |f| f.fail_after(k))?;
        let label = format!("backup, fail_after({k}) [{}]", describe(&f.journal(), k));
        if f.injected() == 0 {
            // Which small blobs share a pack depends on the order the compression threads
            // finish in, so a run may need fewer operations than the dry run: this one ended
            // before operation `k` and must simply have succeeded, exactly.
            assert!(
                f.operations() <= k,
                "{label}: the fault was never hit in {} operations",
                f.operations()
            );
            assert!(r.is_ok(), "{label}: no fault, yet the backup failed: {r:?}");
            let extra = verify_consistent(&work, &expect, &label)?;
            assert_eq!(extra.len(), 1, "{label}: snapshot B missing");
            std::fs::remove_dir_all(&work)?;
            continue;
        }
        let extra = verify_consistent(&work, &expect, &label)?;
        // The snapshot is the commit point: it exists exactly if its write was reached.
        let snapshot_written = f
            .journal()
            .iter()
            .any(|o| o.file_type == Some(FileType::Snapshot) && o.op == Op::Write && !o.injected);
        assert_eq!(
            !extra.is_empty(),
            snapshot_written,
            "{label}: snapshot B {} but its write {}",
            if extra.is_empty() {
                "is absent"
            } else {
                "exists"
            },
            if snapshot_written {
                "succeeded"
            } else {
                "did not"
            }
        );
        assert_eq!(
            r.is_ok(),
            snapshot_written,
            "{label}: backup returned {r:?}"
        );
        committed += usize::from(snapshot_written);
        // A later clean backup completes and is exact.
        let r = backup_session(local(&work), &s.fx.src, T0 + 7200)?;
        assert!(r.snapshot_id.is_some());
        let repo = open_clean(&work)?;
        let report = run_check(&repo)?;
        assert_eq!(
            report.errors(),
            0,
            "{label}, then a clean backup:\n{}",
            findings(&report)
        );
        let latest = repo.find_snapshot("latest")?;
        assert_restores(
            &repo,
            &latest.1,
            &s.fx.src,
            &s.b,
            &format!("{label}, then a clean backup"),
        )?;
        std::fs::remove_dir_all(&work)?;
    }
    eprintln!(
        "backup fail_after: {n} injection points ({} writes, {} reads, {} read_ranges, {} lists, {} removes in a clean run); snapshot B committed in {committed}",
        clean.writes, clean.reads, clean.read_ranges, clean.lists, clean.removes
    );
    Ok(())
}

/// After one torn write: the damage is named (and only the torn file is ever blamed), the
/// index of everything else loads, and every required snapshot restores exactly.
fn verify_torn(
    dir: &Path,
    torn: &TornFile,
    expect: &Expect,
    label: &str,
) -> TestResult<CheckReport> {
    let repo = open_clean(dir)?;
    let name = torn.name.as_str();
    for e in repo.index_errors() {
        assert!(
            e.to_string().contains(name),
            "{label}: index error does not name the torn file: {e}"
        );
    }
    let report = run_check(&repo)?;
    let names = |f: &check::Finding| f.object.contains(name) || f.message.contains(name);
    for f in report.findings.iter().filter(|f| f.error) {
        assert!(
            names(f),
            "{label}: check blames something other than the torn file {}:\n{}",
            torn.name,
            findings(&report)
        );
    }
    match torn.file_type {
        // Sealed objects that are read by everything: a torn one must be reported as an error.
        FileType::Index | FileType::Snapshot => assert!(
            report.findings.iter().any(|f| f.error && names(f)),
            "{label}: check does not report the torn file:\n{}",
            findings(&report)
        ),
        // A pack no index lists yet: at least mentioned as a leftover.
        FileType::Pack => assert!(
            report.findings.iter().any(names),
            "{label}: check does not mention the torn pack:\n{}",
            findings(&report)
        ),
        // remove_locks (what 'snapguard unlock --all' does) removed it.
        FileType::Lock => assert!(
            repo.backend().list(FileType::Lock)?.is_empty(),
            "{label}: torn lock file not removable"
        ),
        other => panic!("{label}: unexpected torn {other:?}"),
    }
    let (snaps, damaged) = repo.list_snapshots_report()?;
    for e in &damaged {
        assert!(
            e.to_string().contains(name),
            "{label}: damaged snapshot that is not the torn file: {e}"
        );
    }
    verify_snapshots(&repo, &snaps, expect, label)?;
    Ok(report)
}

#[test]
fn backup_with_a_torn_write_at_every_write() -> TestResult {
    let s = backup_scenario()?;
    let expect = Expect {
        src: &s.fx.src,
        required: std::slice::from_ref(&s.a),
        optional: Some(&s.b),
    };
    let work = s.fx.path("dry")?;
    let (f, r) = faulty_backup(&s, &work, |_| {})?;
    r?;
    let writes = f.writes();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for w in 0..writes {
        for keep_nothing in [false, true] {
            let work = s.fx.path("attempt")?;
            let (f, r) = faulty_backup(&s, &work, |f| {
                if keep_nothing {
                    f.torn_write_at_keeping(w, 0)
                } else {
                    f.torn_write_at(w)
                }
            })?;
            let torn = f.torn_files();
            if torn.is_empty() && f.writes() <= w {
                // Which small blobs share a pack depends on the order the compression threads
                // finish in, so a run may make fewer writes than the dry run: this one never
                // reached write `w` and must simply have succeeded.
                assert!(
                    r.is_ok(),
                    "write {w}: no torn write, yet the backup failed: {r:?}"
                );
                continue;
            }
            let [t] = torn.as_slice() else {
                panic!("write {w}: expected one torn file, got {torn:?}");
            };
            let label = format!(
                "backup, torn write {w} ({:?} {}, {} of {} bytes kept)",
                t.file_type,
                t.file_type.path(&t.name),
                t.kept,
                t.len
            );
            assert!(r.is_err(), "{label}: backup succeeded: {r:?}");
            *kinds.entry(format!("{:?}", t.file_type)).or_default() += 1;
            verify_torn(&work, t, &expect, &label)?;
            // A later clean backup completes and is exact; nothing but the torn file is blamed.
            let r = backup_session(local(&work), &s.fx.src, T0 + 7200)?;
            let b = r.snapshot_id.ok_or("no snapshot")?;
            let repo = open_clean(&work)?;
            let report = run_check(&repo)?;
            for f in report.findings.iter().filter(|f| f.error) {
                assert!(
                    f.object.contains(&t.name) || f.message.contains(&t.name),
                    "{label}, then a clean backup: check blames another file:\n{}",
                    findings(&report)
                );
            }
            let snap = repo.load_snapshot(&b)?;
            assert_restores(
                &repo,
                &snap,
                &s.fx.src,
                &s.b,
                &format!("{label}, then a clean backup"),
            )?;
            std::fs::remove_dir_all(&work)?;
        }
    }
    eprintln!("backup torn writes: {writes} writes x 2 (half kept, nothing kept) = {} injection points; torn files by type: {kinds:?}", 2 * writes);
    Ok(())
}

#[test]
fn backup_with_a_silently_torn_write_is_detected_by_check() -> TestResult {
    // A lost fsync: the write "succeeded", the backup went on and committed, and only later
    // is the file found short. Snapshot A must stay intact and check must name the damage.
    let s = backup_scenario()?;
    let work = s.fx.path("dry")?;
    let (f, r) = faulty_backup(&s, &work, |_| {})?;
    r?;
    let writes = f.writes();
    let mut detected = 0;
    for w in 0..writes {
        let work = s.fx.path("attempt")?;
        let (f, r) = faulty_backup(&s, &work, |f| f.torn_write_silently_at(w))?;
        let torn = f.torn_files();
        if torn.is_empty() && f.writes() <= w {
            // Which small blobs share a pack depends on the order the compression threads
            // finish in, so a run may make fewer writes than the dry run: this one never
            // reached write `w` and must simply have succeeded.
            assert!(
                r.is_ok(),
                "write {w}: no torn write, yet the backup failed: {r:?}"
            );
            std::fs::remove_dir_all(&work)?;
            continue;
        }
        let [t] = torn.as_slice() else {
            panic!("write {w}: expected one torn file, got {torn:?}");
        };
        let label = format!(
            "backup, silently torn write {w} ({:?} {})",
            t.file_type,
            t.file_type.path(&t.name)
        );
        let repo = open_clean(&work)?;
        let report = run_check(&repo)?;
        let named = report
            .findings
            .iter()
            .any(|f| f.error && (f.object.contains(&t.name) || f.message.contains(&t.name)));
        match t.file_type {
            FileType::Pack | FileType::Index | FileType::Snapshot => {
                assert!(r.is_ok(), "{label}: {r:?}");
                assert!(
                    named,
                    "{label}: check does not report the torn file:\n{}",
                    findings(&report)
                );
                detected += 1;
            }
            FileType::Lock => {}
            other => panic!("{label}: unexpected torn {other:?}"),
        }
        if std::env::var_os("FAULTS_DEBUG").is_some() {
            eprintln!("{label}:\n{}", findings(&report));
        }
        // Snapshot A does not share the damaged file and restores exactly.
        let a = repo.load_snapshot(&s.a.0)?;
        assert_restores(
            &repo,
            &a,
            &s.fx.src,
            &s.a.1,
            &format!("{label}: snapshot A"),
        )?;
        std::fs::remove_dir_all(&work)?;
    }
    eprintln!(
        "backup silently torn writes: {writes} injection points, {detected} detected by check"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The prune scenario: four snapshots, two forgotten, prune interrupted.

struct PruneScenario {
    fx: Fixture,
    /// Four snapshots, the first and third forgotten.
    base: PathBuf,
    kept: Vec<(SnapshotId, Manifest)>,
}

fn prune_scenario() -> TestResult<PruneScenario> {
    let fx = Fixture::new()?;
    let src = &fx.src;
    let base = fx.path("base")?;
    init_repo(&base)?;
    let mut rng = Rng(0x5eed_0002);
    let snap = |secs: i64| -> TestResult<(SnapshotId, Manifest)> {
        let man = manifest(src)?;
        let id = backup_session(local(&base), src, secs)?
            .snapshot_id
            .ok_or("no snapshot")?;
        Ok((id, man))
    };
    // S1: stable files, files that churn, a big file only S1 has.
    for i in 0..6 {
        put(
            &src.join(format!("keep/k{i:02}")),
            &rng.bytes(24 * KIB),
            0o644,
            T0 - 500 + i,
        )?;
        put(
            &src.join(format!("churn/c{i:02}")),
            &rng.bytes(24 * KIB),
            0o600,
            T0 - 400 + i,
        )?;
    }
    put(
        &src.join("big1.bin"),
        &rng.bytes(1200 * KIB),
        0o644,
        T0 - 300,
    )?;
    let s1 = snap(T0)?;
    // S2: big1 gone, three churn files rewritten.
    std::fs::remove_file(src.join("big1.bin"))?;
    for i in 0..3 {
        put(
            &src.join(format!("churn/c{i:02}")),
            &rng.bytes(24 * KIB),
            0o600,
            T0 + 100 + i,
        )?;
    }
    let s2 = snap(T0 + 1000)?;
    // S3: the other three rewritten, a big file only S3 has.
    for i in 3..6 {
        put(
            &src.join(format!("churn/c{i:02}")),
            &rng.bytes(24 * KIB),
            0o600,
            T0 + 1100 + i,
        )?;
    }
    put(
        &src.join("big3.bin"),
        &rng.bytes(700 * KIB),
        0o644,
        T0 + 1200,
    )?;
    let s3 = snap(T0 + 2000)?;
    // S4: big3 gone, two rewritten again, new files.
    std::fs::remove_file(src.join("big3.bin"))?;
    for i in 0..2 {
        put(
            &src.join(format!("churn/c{i:02}")),
            &rng.bytes(24 * KIB),
            0o600,
            T0 + 2100 + i,
        )?;
    }
    for i in 0..3 {
        put(
            &src.join(format!("new/n{i:02}")),
            &rng.bytes(24 * KIB),
            0o640,
            T0 + 2200 + i,
        )?;
    }
    let s4 = snap(T0 + 3000)?;
    // Forget S1 and S3.
    {
        let repo = open_clean(&base)?;
        let _guard = repo.lock(LockKind::Exclusive, "forget", &owner())?;
        let (views, errors) = snapguard_engine::annotate::views(&repo)?;
        assert!(errors.is_empty());
        let now = Timestamp {
            secs: T0 + 4000,
            nanos: 0,
        };
        let decisions = forget::plan(
            &views,
            &ForgetOptions {
                ids: vec![s1.0, s3.0],
                now,
                ..ForgetOptions::default()
            },
        )?;
        assert_eq!(forget::execute(&repo, &decisions, now)?, 2);
    }
    // Leftovers of a backup that died before writing its index: packs no index lists.
    for i in 0..4 {
        put(
            &src.join(format!("late/l{i:02}")),
            &rng.bytes(24 * KIB),
            0o644,
            T0 + 3100 + i,
        )?;
    }
    let probe = fx.path("probe")?;
    copy_dir(&base, &probe)?;
    let f = faulty(&probe);
    backup_session(Arc::new(f.clone()), src, T0 + 3500)?;
    let index_write = f
        .journal()
        .iter()
        .find(|o| o.op == Op::Write && o.file_type == Some(FileType::Index))
        .map(|o| o.index)
        .ok_or("the backup wrote no index")?;
    std::fs::remove_dir_all(&probe)?;
    let f = faulty(&base);
    f.fail_after(index_write);
    assert!(backup_session(Arc::new(f), src, T0 + 3500).is_err());
    lock::remove_locks(
        &LocalBackend::new(&base),
        open_clean(&base)?.crypt(),
        HOST,
        true,
    )?;
    // Sanity: prune has packs to delete, to repack and leftovers to delete.
    {
        let repo = open_clean(&base)?;
        let plan = prune::plan(&repo, &prune_options())?;
        assert!(!prune::planned(&plan, "delete").is_empty(), "{plan:#?}");
        assert!(!prune::planned(&plan, "repack").is_empty(), "{plan:#?}");
        assert!(
            !prune::planned(&plan, "delete-unreferenced").is_empty(),
            "{plan:#?}"
        );
    }
    Ok(PruneScenario {
        fx,
        base,
        kept: vec![s2, s4],
    })
}

/// After a clean prune: not even a note (no leftovers), every kept snapshot exact.
fn verify_pruned(dir: &Path, s: &PruneScenario, label: &str) -> TestResult {
    let repo = open_clean(dir)?;
    let report = run_check(&repo)?;
    assert!(
        report.findings.is_empty(),
        "{label}: check after a clean prune:\n{}",
        findings(&report)
    );
    let (snaps, damaged) = repo.list_snapshots_report()?;
    assert!(damaged.is_empty());
    let expect = Expect {
        src: &s.fx.src,
        required: &s.kept,
        optional: None,
    };
    verify_snapshots(&repo, &snaps, &expect, label)?;
    Ok(())
}

fn faulty_prune(
    s: &PruneScenario,
    work: &Path,
    arm: impl FnOnce(&FaultyBackend),
) -> TestResult<(FaultyBackend, Result<PruneStats, Error>)> {
    copy_dir(&s.base, work)?;
    let f = faulty(work);
    arm(&f);
    let r = prune_session(Arc::new(f.clone()));
    Ok((f, r))
}

#[test]
fn prune_interrupted_at_every_operation() -> TestResult {
    let s = prune_scenario()?;
    let expect = Expect {
        src: &s.fx.src,
        required: &s.kept,
        optional: None,
    };
    let work = s.fx.path("dry")?;
    let (f, r) = faulty_prune(&s, &work, |_| {})?;
    let stats = r?;
    assert!(
        stats.packs_deleted > 0 && stats.blobs_repacked > 0,
        "{stats:?}"
    );
    let n = f.operations();
    let clean = f.counts();
    verify_pruned(&work, &s, "clean prune")?;
    for k in 0..n {
        let work = s.fx.path("attempt")?;
        let (f, r) = faulty_prune(&s, &work, |f| f.fail_after(k))?;
        let label = format!("prune, fail_after({k}) [{}]", describe(&f.journal(), k));
        assert!(f.injected() > 0, "{label}: the fault was never hit");
        // Only the unlock (the last operation) may fail without failing the prune.
        assert_eq!(r.is_ok(), k + 1 == n, "{label}: prune returned {r:?}");
        verify_consistent(&work, &expect, &label)?;
        // A later clean prune completes and leaves a spotless repository.
        prune_session(local(&work)).map_err(|e| format!("{label}, then a clean prune: {e}"))?;
        verify_pruned(&work, &s, &format!("{label}, then a clean prune"))?;
        std::fs::remove_dir_all(&work)?;
    }
    eprintln!(
        "prune fail_after: {n} injection points ({} writes, {} removes, {} reads, {} read_ranges, {} lists in a clean run; {stats:?})",
        clean.writes, clean.removes, clean.reads, clean.read_ranges, clean.lists
    );
    Ok(())
}

#[test]
fn prune_with_failing_removes() -> TestResult {
    let s = prune_scenario()?;
    let expect = Expect {
        src: &s.fx.src,
        required: &s.kept,
        optional: None,
    };
    let work = s.fx.path("dry")?;
    let (f, r) = faulty_prune(&s, &work, |_| {})?;
    r?;
    let removes = f.counts().removes;
    for from in 0..removes {
        let work = s.fx.path("attempt")?;
        let (f, r) = faulty_prune(&s, &work, |f| f.fail_removes_from(from))?;
        let first = f
            .journal()
            .iter()
            .find(|o| o.op == Op::Remove && o.injected)
            .map(|o| describe(&f.journal(), o.index))
            .unwrap_or_default();
        let label = format!("prune, removes failing from remove {from} [{first}]");
        assert!(f.injected() > 0, "{label}: the fault was never hit");
        // Only the unlock (the last remove) may fail without failing the prune.
        assert_eq!(
            r.is_ok(),
            from + 1 == removes,
            "{label}: prune returned {r:?}"
        );
        verify_consistent(&work, &expect, &label)?;
        prune_session(local(&work)).map_err(|e| format!("{label}, then a clean prune: {e}"))?;
        verify_pruned(&work, &s, &format!("{label}, then a clean prune"))?;
        std::fs::remove_dir_all(&work)?;
    }
    eprintln!("prune failing removes: {removes} injection points");
    Ok(())
}

#[test]
fn prune_with_a_torn_write_at_every_write() -> TestResult {
    let s = prune_scenario()?;
    let expect = Expect {
        src: &s.fx.src,
        required: &s.kept,
        optional: None,
    };
    let work = s.fx.path("dry")?;
    let (f, r) = faulty_prune(&s, &work, |_| {})?;
    r?;
    let writes = f.writes();
    let mut repaired = 0;
    for w in 0..writes {
        let work = s.fx.path("attempt")?;
        let (f, r) = faulty_prune(&s, &work, |f| f.torn_write_at(w))?;
        let torn = f.torn_files();
        let [t] = torn.as_slice() else {
            panic!("write {w}: expected one torn file, got {torn:?}");
        };
        let label = format!(
            "prune, torn write {w} ({:?} {})",
            t.file_type,
            t.file_type.path(&t.name)
        );
        assert!(r.is_err(), "{label}: prune succeeded: {r:?}");
        verify_torn(&work, t, &expect, &label)?;
        // Recovery: a clean prune, after 'repair index' if prune refuses a damaged index.
        if let Err(e) = prune_session(local(&work)) {
            assert!(
                t.file_type == FileType::Index && e.to_string().contains(&t.name),
                "{label}: a clean prune fails: {e}"
            );
            let mut repo = open_clean(&work)?;
            let _guard = repo.lock(LockKind::Exclusive, "repair", &owner())?;
            snapguard_engine::repair::repair_index(&mut repo)?;
            drop(_guard);
            prune_session(local(&work))
                .map_err(|e| format!("{label}, then repair index and prune: {e}"))?;
            repaired += 1;
        }
        verify_pruned(&work, &s, &format!("{label}, then a clean prune"))?;
        std::fs::remove_dir_all(&work)?;
    }
    eprintln!("prune torn writes: {writes} injection points ({repaired} needed 'repair index')");
    Ok(())
}

#[test]
fn failed_config_replacement_changes_nothing() -> TestResult {
    let s = backup_scenario()?;
    let work = s.fx.path("work")?;
    copy_dir(&s.base, &work)?;
    let f = faulty(&work);
    f.fail_replace_config();
    let mut repo = Repository::open(Arc::new(f.clone()), &[secret()])?;
    assert!(repo.enable_append_only().is_err());
    assert!(
        !repo.is_append_only(),
        "the in-memory state claims the change happened"
    );
    assert_eq!(f.counts().replace_configs, 1);
    let repo = open_clean(&work)?;
    assert!(!repo.is_append_only());
    verify_consistent(
        &work,
        &Expect {
            src: &s.fx.src,
            required: std::slice::from_ref(&s.a),
            optional: None,
        },
        "failed replace_config",
    )?;
    // And once the fault is gone, the change works.
    f.clear_faults();
    let mut repo = Repository::open(Arc::new(f), &[secret()])?;
    repo.enable_append_only()?;
    assert!(open_clean(&work)?.is_append_only());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Product bugs found by the scenarios above. Each test states the expected behaviour and fails
// today; they are ignored so the suite stays green (run with `--ignored`).

/// The index of the first write of `kind` in a clean run of backup B.
fn first_write_of(s: &BackupScenario, kind: FileType) -> TestResult<u64> {
    let work = s.fx.path("dry")?;
    let (f, r) = faulty_backup(s, &work, |_| {})?;
    r?;
    let journal = f.journal();
    let pos = journal
        .iter()
        .filter(|o| o.op == Op::Write)
        .position(|o| o.file_type == Some(kind))
        .ok_or("no such write")?;
    std::fs::remove_dir_all(&work)?;
    Ok(pos as u64)
}

#[test]
fn regression_torn_snapshot_file_can_be_forgotten_so_prune_works_again() -> TestResult {
    let s = backup_scenario()?;
    let w = first_write_of(&s, FileType::Snapshot)?;
    let work = s.fx.path("attempt")?;
    let (f, r) = faulty_backup(&s, &work, |f| f.torn_write_at(w))?;
    assert!(r.is_err());
    let torn = f.torn_files();
    let name = torn.first().ok_or("nothing torn")?.name.clone();
    let mut repo = open_clean(&work)?;
    let _guard = repo.lock(LockKind::Exclusive, "recover", &owner())?;
    // check names it (tested above) and prune refuses, advising check or repair:
    let refusal = match prune::plan(&repo, &prune_options()) {
        Ok(_) => return Ok(()),
        Err(e) => e.to_string(),
    };
    let mut tried = vec![format!("prune: {refusal}")];
    // Route 1, what `snapguard forget <id>` does: resolve the id (by file name when the
    // snapshot cannot be read), plan, execute.
    let resolved = match repo.find_snapshot(&name) {
        Ok((id, _)) => Ok(id),
        Err(snapguard_engine::Error::Corrupt { .. }) => repo.resolve_snapshot_name(&name),
        Err(e) => Err(e),
    };
    match resolved {
        Ok(id) => {
            let (views, _) = snapguard_engine::annotate::views(&repo)?;
            let now = Timestamp {
                secs: T0 + 9000,
                nanos: 0,
            };
            let d = forget::plan(
                &views,
                &ForgetOptions {
                    ids: vec![id],
                    now,
                    ..Default::default()
                },
            )?;
            let removed = forget::execute(&repo, &d, now)?;
            tried.push(format!("forget {}: removed {removed}", &name[..8]));
        }
        Err(e) => tried.push(format!("forget {}: {e}", &name[..8])),
    }
    // Route 2, what the refusal advises: repair.
    if prune::plan(&repo, &prune_options()).is_err() {
        let fixed = snapguard_engine::repair::repair_snapshots(
            &mut repo,
            Timestamp {
                secs: T0 + 9000,
                nanos: 0,
            },
            false,
        )?;
        tried.push(format!("repair snapshots: {} repaired", fixed.len()));
    }
    let after = prune::plan(&repo, &prune_options());
    assert!(
        after.is_ok(),
        "after a torn write of snapshot file snapshots/{name}, no recovery path makes prune work again:\n  {}\n  prune again: {}",
        tried.join("\n  "),
        after.err().map(|e| e.to_string()).unwrap_or_default()
    );
    Ok(())
}

#[test]
fn regression_check_names_the_files_that_use_a_truncated_pack() -> TestResult {
    // A pack that was cut short after the backup committed (a lost fsync). The module docs of
    // check promise that every problem names the pack, blob, snapshot and path concerned; for a
    // pack whose size differs from the index only the pack is named, so the user cannot tell
    // which snapshot or file is affected (`read_pack` / `name_users` skip such packs).
    let s = backup_scenario()?;
    let w = first_write_of(&s, FileType::Pack)?; // B's first pack: file data, no trees
    let work = s.fx.path("attempt")?;
    let (f, r) = faulty_backup(&s, &work, |f| f.torn_write_silently_at(w))?;
    let b = r?.snapshot_id.ok_or("no snapshot B")?;
    let torn = f.torn_files();
    let t = torn.first().ok_or("nothing torn")?;
    let repo = open_clean(&work)?;
    // What restore loses: the files whose data is in the torn pack.
    let target = tempfile::tempdir_in(s.fx.tmp.path())?;
    let snap = repo.load_snapshot(&b)?;
    let summary = snapguard_engine::restore(
        &repo,
        &snap,
        b"/",
        &RestoreOptions {
            target: target.path().to_path_buf(),
            ..RestoreOptions::default()
        },
    )?;
    let lost: Vec<String> = summary
        .warnings
        .iter()
        .filter_map(|w| {
            Path::new(&w.path)
                .strip_prefix(target.path())
                .ok()
                .map(|p| format!("/{}", p.display()))
        })
        .collect();
    assert!(
        !lost.is_empty(),
        "the torn pack {} holds no file data",
        t.name
    );
    let report = run_check(&repo)?;
    assert!(report.errors() > 0);
    for path in &lost {
        assert!(
            report.findings.iter().any(|f| f.error
                && f.object.contains(&b.short())
                && f.object.contains(path.as_str())),
            "pack {} was truncated; restore loses {path} of snapshot {}, but check does not name it:\n{}",
            t.name,
            b.short(),
            findings(&report)
        );
    }
    Ok(())
}

#[test]
fn regression_torn_lock_file_does_not_block_the_repository_forever() -> TestResult {
    // A backup that died while writing its lock file (non-atomic store) leaves an unreadable lock.
    // list_locks treats it as an exclusive lock with heartbeat "now", so it is never stale: every
    // later backup fails with Locked, whose message advises 'snapguard unlock', and that (stale
    // locks only) does not remove it; only 'unlock --remove-all' does.
    let s = backup_scenario()?;
    let w = first_write_of(&s, FileType::Lock)?;
    let work = s.fx.path("attempt")?;
    let (f, r) = faulty_backup(&s, &work, |f| f.torn_write_at(w))?;
    assert!(r.is_err());
    assert_eq!(f.torn_files().len(), 1);
    let first = backup_session(local(&work), &s.fx.src, T0 + 7200);
    let advice = match &first {
        Err(e @ Error::Locked { .. }) => e.to_string(),
        _ => return Ok(()),
    };
    // What 'snapguard unlock' does.
    let repo = Repository::open(local(&work), &[secret()])?;
    let removed = lock::remove_locks(repo.backend(), repo.crypt(), HOST, false)?;
    let second = backup_session(local(&work), &s.fx.src, T0 + 7200);
    assert!(
        second.is_ok(),
        "a torn lock blocks backups: {advice}\n'unlock' removed {} lock(s); the next backup: {:?}",
        removed.len(),
        second.err()
    );
    Ok(())
}
