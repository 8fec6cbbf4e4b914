//! `restore` into a target that already has content: `--overwrite never|if-changed|always`,
//! resuming an interrupted restore, `--delete` (with `--dry-run`, excludes and symlinks that
//! point out of the target), and the confirmation before restoring into the original location.
//! See docs/restore.md.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fidelity::assert_backup_clean;
use crate::support::cmd::{spec, Out, Sg, Ws};
use crate::support::compare::{assert_same, compare, compare_content, Kind, Opts, Tree};
use crate::support::fixture::{Built, Fixture};
use crate::support::varied::{self, KIB};

/// A backed-up fixture.
struct Setup {
    ws: Ws,
    sg: Sg,
    built: Built,
    id: String,
    src: PathBuf,
}

fn setup(build: impl FnOnce(&mut Fixture)) -> Setup {
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    build(&mut fx);
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&src], &[]);
    assert_backup_clean(&b);
    Setup {
        ws,
        sg,
        built,
        id: b.id,
        src,
    }
}

impl Setup {
    /// `restore ID:SRC --target TARGET --json EXTRA...`, expecting exit code `code`; returns the
    /// summary.
    fn restore(&self, target: &Path, extra: &[&str], code: i32) -> (Out, Value) {
        let mut args = vec!["--json"];
        args.extend(extra);
        let out = self.sg.restore(spec(&self.id, &self.src), target, &args);
        out.expect_code(code);
        let summary = out.json()["summary"].clone();
        assert!(summary.is_object(), "no summary\n{out}");
        (out, summary)
    }
}

fn n(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary has no number {key:?}: {summary}"))
}

/// Restored trees are compared without the target directory's own metadata.
fn opts() -> Opts {
    Opts {
        root_meta: false,
        ..Opts::default()
    }
}

/// Open handles on the regular files of a tree: while they are open their inode numbers cannot
/// be reused, so a path whose inode differs from its handle's was replaced.
fn hold(tree: &Tree) -> Vec<(PathBuf, fs::File)> {
    tree.entries
        .iter()
        .filter(|(_, e)| e.kind == Kind::File)
        .map(|(rel, _)| {
            let p = tree.abs(rel);
            let f = fs::File::open(&p).unwrap_or_else(|e| panic!("open {p:?}: {e}"));
            (rel.clone(), f)
        })
        .collect()
}

fn replaced(root: &Path, held: &[(PathBuf, fs::File)]) -> BTreeSet<PathBuf> {
    held.iter()
        .filter(|(rel, f)| {
            let now = fs::symlink_metadata(root.join(rel)).map(|m| m.ino()).ok();
            now != Some(f.metadata().expect("fstat").ino())
        })
        .map(|(rel, _)| rel.clone())
        .collect()
}

fn set(paths: &[&str]) -> BTreeSet<PathBuf> {
    paths.iter().map(PathBuf::from).collect()
}

fn read(p: impl AsRef<Path>) -> Vec<u8> {
    let p = p.as_ref();
    fs::read(p).unwrap_or_else(|e| panic!("read {p:?}: {e}"))
}

fn write(p: impl AsRef<Path>, data: &[u8]) {
    let p = p.as_ref();
    fs::write(p, data).unwrap_or_else(|e| panic!("write {p:?}: {e}"));
}

fn size(p: impl AsRef<Path>) -> u64 {
    let p = p.as_ref();
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {p:?}: {e}"))
        .len()
}

fn mkdir_p(p: impl AsRef<Path>) {
    let p = p.as_ref();
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir -p {p:?}: {e}"));
}

/// Remove a file, symlink or directory tree.
fn rm(p: impl AsRef<Path>) {
    let p = p.as_ref();
    let res = if fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    };
    res.unwrap_or_else(|e| panic!("rm {p:?}: {e}"));
}

fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    let link = link.as_ref();
    std::os::unix::fs::symlink(target, link).unwrap_or_else(|e| panic!("symlink {link:?}: {e}"));
}

// ---------------------------------------------------------------------------
// --overwrite

/// Mutations made to a restored copy before restoring over it again.
const CHANGED_CONTENT: &str = "files/rand_4096";
const CHANGED_META: &str = "files/text.txt";
const RETARGETED: &str = "links/relative";
const UNLINKED: &str = "hardlinks/a/h2";
const FILLED_HOLE: &str = "files/sparse";
const REMOVED: &str = "files/dup_b";
const EXTRA: &str = "files/extra.new";

fn varied_tree(fx: &mut Fixture) {
    varied::files(fx);
    varied::modes(fx);
    varied::links(fx);
    varied::hardlinks(fx);
    varied::special(fx);
    varied::xattrs(fx);
    varied::acls(fx);
}

/// Restore into a fresh `target`, check it, then change it: one file's content (same size),
/// one file's metadata only, a symlink's target, one name of a hardlink group made a separate
/// copy with the same content, a hole filled with zeros, one file removed and one added.
fn prepare_target(s: &Setup, target: &Path) {
    s.restore(target, &[], 0);
    assert_same(&s.built.tree, &Tree::scan(target), &opts(), "first restore");
    let mut data = fs::read(target.join(CHANGED_CONTENT)).expect("read");
    data[100] ^= 0xff;
    fs::write(target.join(CHANGED_CONTENT), &data).expect("write");
    let meta = target.join(CHANGED_META);
    fs::set_permissions(&meta, fs::Permissions::from_mode(0o777)).expect("chmod");
    rustix::fs::lsetxattr(&meta, "user.stray", b"1", rustix::fs::XattrFlags::empty())
        .expect("setxattr");
    let link = target.join(RETARGETED);
    fs::remove_file(&link).expect("rm link");
    std::os::unix::fs::symlink("elsewhere", &link).expect("symlink");
    let h2 = target.join(UNLINKED);
    let content = fs::read(&h2).expect("read h2");
    fs::remove_file(&h2).expect("rm h2");
    fs::write(&h2, content).expect("write h2");
    let sparse = fs::OpenOptions::new()
        .write(true)
        .open(target.join(FILLED_HOLE))
        .expect("open sparse");
    std::os::unix::fs::FileExt::write_all_at(&sparse, &[0u8; 8192], 0).expect("fill hole");
    fs::remove_file(target.join(REMOVED)).expect("rm");
    fs::write(target.join(EXTRA), b"not in the snapshot").expect("extra");
}

/// Bytes of a source file outside its holes (as the backup found them with SEEK_DATA).
fn data_bytes(built: &Built, rel: &str) -> u64 {
    let segments = built.tree.get(rel).data.clone().expect("a regular file");
    segments.iter().map(|(a, b)| b - a).sum()
}

/// Non-directories in the source.
fn non_dirs(built: &Built) -> u64 {
    built
        .tree
        .entries
        .values()
        .filter(|e| e.kind != Kind::Dir)
        .count() as u64
}

/// A scan of `target` without the extra file, which no mode without --delete removes.
fn scan_without_extra(target: &Path) -> Tree {
    assert_eq!(
        fs::read(target.join(EXTRA)).expect("the extra file is gone"),
        b"not in the snapshot"
    );
    let mut t = Tree::scan(target);
    t.entries.remove(Path::new(EXTRA));
    t
}

#[test]
fn if_changed_keeps_identical_entries_and_replaces_the_others() {
    let s = setup(varied_tree);
    let target = s.ws.path("t");
    prepare_target(&s, &target);
    let held = hold(&Tree::scan(&target));
    let (out, sum) = s.restore(&target, &[], 0);
    assert_eq!(out.json()["overwrite"], "if-changed", "the default\n{out}");
    // Content, symlink target, hardlink group, sparse layout: four entries differ.
    assert_eq!(n(&sum, "overwritten"), 4, "{out}");
    assert_eq!(
        n(&sum, "skipped_unchanged"),
        non_dirs(&s.built) - 5,
        "{out}"
    );
    assert_eq!(n(&sum, "files") + n(&sum, "other"), non_dirs(&s.built));
    assert_eq!(n(&sum, "skipped_existing"), 0);
    // Only what differs was rewritten; the file whose metadata alone changed was kept, and
    // its metadata (mode, xattrs, times) was set back to the snapshot's.
    assert_eq!(
        replaced(&target, &held),
        set(&[CHANGED_CONTENT, FILLED_HOLE, UNLINKED])
    );
    let written = size(s.src.join(CHANGED_CONTENT))
        + size(s.src.join(REMOVED))
        + data_bytes(&s.built, FILLED_HOLE);
    assert_eq!(n(&sum, "bytes_written"), written, "{out}");
    assert_same(
        &s.built.tree,
        &scan_without_extra(&target),
        &opts(),
        "--overwrite if-changed",
    );

    // Again: nothing differs, so no file content is read from the repository at all.
    let held = hold(&Tree::scan(&target));
    let (out, sum) = s.restore(&target, &["--overwrite", "if-changed"], 0);
    assert_eq!(n(&sum, "skipped_unchanged"), non_dirs(&s.built), "{out}");
    for key in ["overwritten", "bytes_written", "bytes_fetched"] {
        assert_eq!(n(&sum, key), 0, "{key}\n{out}");
    }
    assert!(n(&sum, "bytes_compared") > 0, "{out}");
    assert!(replaced(&target, &held).is_empty());
    let text = s.sg.restore(spec(&s.id, &s.src), &target, &[]);
    text.expect_code(0);
    assert!(
        text.stdout_str().contains("already identical (kept)"),
        "{text}"
    );
}

#[test]
fn always_replaces_every_existing_entry() {
    let s = setup(varied_tree);
    let target = s.ws.path("t");
    prepare_target(&s, &target);
    let held = hold(&Tree::scan(&target));
    let (out, sum) = s.restore(&target, &["--overwrite", "always"], 0);
    assert_eq!(n(&sum, "overwritten"), non_dirs(&s.built) - 1, "{out}");
    assert_eq!(n(&sum, "skipped_unchanged"), 0, "{out}");
    // Each inode's data once (hardlinks are linked, not written), holes not at all.
    let mut inodes = BTreeSet::new();
    let total: u64 = s
        .built
        .tree
        .entries
        .iter()
        .filter(|(_, e)| e.kind == Kind::File && inodes.insert((e.dev, e.ino)))
        .map(|(rel, e)| {
            if rel == Path::new(FILLED_HOLE) {
                data_bytes(&s.built, FILLED_HOLE)
            } else {
                e.size
            }
        })
        .sum();
    assert_eq!(
        n(&sum, "bytes_written"),
        total,
        "every byte rewritten\n{out}"
    );
    let not_replaced: Vec<_> = held
        .iter()
        .map(|(rel, _)| rel.clone())
        .filter(|rel| rel != Path::new(EXTRA) && !replaced(&target, &held).contains(rel))
        .collect();
    assert!(not_replaced.is_empty(), "kept: {not_replaced:?}");
    assert_same(
        &s.built.tree,
        &scan_without_extra(&target),
        &opts(),
        "--overwrite always",
    );
}

#[test]
fn never_leaves_every_existing_entry_untouched() {
    let s = setup(varied_tree);
    let target = s.ws.path("t");
    prepare_target(&s, &target);
    let before = Tree::scan(&target);
    let held = hold(&before);
    let (out, sum) = s.restore(&target, &["--overwrite", "never"], 0);
    assert_eq!(n(&sum, "skipped_existing"), non_dirs(&s.built) - 1, "{out}");
    assert_eq!((n(&sum, "files"), n(&sum, "other")), (1, 0), "{out}");
    assert_eq!(n(&sum, "overwritten") + n(&sum, "skipped_unchanged"), 0);
    let text =
        s.sg.restore(spec(&s.id, &s.src), &target, &["--overwrite", "never"]);
    text.expect_code(0);
    assert!(
        text.stdout_str()
            .contains(&format!("{} existing left untouched", non_dirs(&s.built))),
        "{text}"
    );
    // Every entry that was there is exactly as it was (content, metadata, inode); the one
    // missing file was restored.
    assert!(replaced(&target, &held).is_empty());
    let after = Tree::scan(&target);
    let mut was = before.subtree("");
    was.entries
        .insert(REMOVED.into(), after.entries[Path::new(REMOVED)].clone());
    let lax = Opts {
        atime: false,
        ..opts()
    };
    let diffs: Vec<_> = compare(&was, &after, &lax)
        .into_iter()
        // Adding the missing file changed its directory's mtime; nothing else may differ.
        .filter(|d| !(d.path == Path::new("files") && d.what.starts_with("mtime")))
        .collect();
    assert!(diffs.is_empty(), "--overwrite never changed: {diffs:?}");
    let dup = after.get(REMOVED);
    let src = s.built.tree.get(REMOVED);
    assert_eq!((dup.mode, dup.mtime), (src.mode, src.mtime));
    assert_eq!(
        compare_content(&s.src.join(REMOVED), &target.join(REMOVED)),
        None
    );
}

// ---------------------------------------------------------------------------
// Resuming an interrupted restore

const RESUME_DIRS: usize = 4;
const RESUME_FILES: usize = 60;
const RESUME_SIZE: u64 = 256 * KIB;

fn resume_tree(fx: &mut Fixture) {
    for d in 0..RESUME_DIRS {
        for f in 0..RESUME_FILES {
            fx.random_file(format!("d{d}/f{f:03}"), RESUME_SIZE, (d * 1000 + f) as u64);
        }
    }
}

/// Start a restore of everything into `target` and kill it (SIGKILL) as soon as `complete`
/// files are (a file's mtime is set last). Returns false if it finished first.
fn restore_and_kill(s: &Setup, target: &Path, complete: usize) -> bool {
    let mut child =
        s.sg.std_command()
            .arg("restore")
            .arg(spec(&s.id, &s.src))
            .arg("--target")
            .arg(target)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn restore");
    let files: Vec<(PathBuf, (i64, i64))> = s
        .built
        .times
        .iter()
        .filter(|(rel, _)| rel.components().count() == 2)
        .map(|(rel, (_, mtime))| (target.join(rel), *mtime))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
        let done = files
            .iter()
            .filter(|(p, mtime)| {
                fs::symlink_metadata(p).is_ok_and(|m| (m.mtime(), m.mtime_nsec()) == *mtime)
            })
            .count()
            >= complete;
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed = child.kill().is_ok();
    let status = child.wait().expect("wait");
    killed && status.code().is_none()
}

#[test]
fn interrupted_restore_resumes_writing_only_missing_and_partial_files() {
    let s = setup(resume_tree);
    // Aim for a kill about a third of the way in; settle for less on a fast machine.
    let total = RESUME_DIRS * RESUME_FILES;
    let mut thresholds = [total / 3, total / 6, total / 20, 1, 1].into_iter();
    let mut attempt = 0;
    let (target, complete, partial, missing) = loop {
        let threshold = thresholds
            .next()
            .expect("every restore finished before it could be killed");
        attempt += 1;
        let target = s.ws.path(format!("t{attempt}"));
        if !restore_and_kill(&s, &target, threshold) {
            continue;
        }
        let (mut complete, mut partial, mut missing) = (Vec::new(), Vec::new(), Vec::new());
        for d in 0..RESUME_DIRS {
            for f in 0..RESUME_FILES {
                let rel = PathBuf::from(format!("d{d}/f{f:03}"));
                let p = target.join(&rel);
                if !p.exists() {
                    missing.push(rel);
                } else if compare_content(&s.src.join(&rel), &p).is_none() {
                    complete.push(rel);
                } else {
                    partial.push(rel);
                }
            }
        }
        // Killed mid-way: some files written, some not.
        if !complete.is_empty() && partial.len() + missing.len() > 0 {
            break (target, complete, partial, missing);
        }
    };
    eprintln!(
        "killed restore left {} complete, {} partial, {} missing files",
        complete.len(),
        partial.len(),
        missing.len()
    );
    let (out, sum) = s.restore(&target, &[], 0);
    let total = total as u64;
    assert_eq!(n(&sum, "files"), total, "{out}");
    assert_eq!(n(&sum, "skipped_unchanged"), complete.len() as u64, "{out}");
    assert_eq!(n(&sum, "overwritten"), partial.len() as u64, "{out}");
    assert_eq!(
        n(&sum, "bytes_written"),
        (partial.len() + missing.len()) as u64 * RESUME_SIZE,
        "only the partial and missing files are written\n{out}"
    );
    assert_same(
        &s.built.tree,
        &Tree::scan(&target),
        &opts(),
        "resumed restore",
    );

    // Resuming a finished restore costs no pack data at all.
    let (out, sum) = s.restore(&target, &[], 0);
    assert_eq!(n(&sum, "skipped_unchanged"), total, "{out}");
    assert_eq!(n(&sum, "bytes_fetched"), 0, "{out}");
    assert_eq!(n(&sum, "bytes_written"), 0, "{out}");
    assert_same(
        &s.built.tree,
        &Tree::scan(&target),
        &opts(),
        "second resume",
    );
}

// ---------------------------------------------------------------------------
// --delete

fn delete_tree(fx: &mut Fixture) {
    fx.file("a.txt", b"a");
    fx.file("sub/b.txt", b"b");
    fx.random_file("sub/nested/c.bin", 70 * KIB, 3);
    fx.file("sub/nested/deep/d.txt", b"d");
    fx.symlink("link", "a.txt");
    fx.file("file_or_dir", b"a file in the snapshot");
    fx.file("dir_or_file/x", b"x");
    fx.xattr("sub/b.txt", "user.k", b"v");
    fx.mode("sub/nested", 0o750);
}

/// What `mutate_for_delete` adds that --delete must remove: (top-level paths, entries).
const DELETED_PATHS: &[&str] = &[
    "extra.txt",
    "file_or_dir",
    "sub/escape",
    "sub/extra_dir",
    "sub/nested/deep/escape_dir",
    "sub/nested/extra2",
];
const DELETED_ENTRIES: u64 = 11;

/// Extras in nested directories, symlinks out of the target, a directory where the snapshot
/// has a file and a file where it has a directory, and extras that `--exclude` protects.
fn mutate_for_delete(target: &Path, outside: &Path) {
    write(target.join("extra.txt"), b"e");
    mkdir_p(target.join("sub/extra_dir/inner"));
    write(target.join("sub/extra_dir/inner/f"), b"f");
    write(target.join("sub/extra_dir/g"), b"g");
    write(target.join("sub/nested/extra2"), b"2");
    symlink(outside, target.join("sub/escape"));
    // A real directory holding a symlink out: the link goes, what it points to stays.
    mkdir_p(target.join("sub/nested/deep/escape_dir"));
    symlink(outside, target.join("sub/nested/deep/escape_dir/out"));
    rm(target.join("file_or_dir"));
    mkdir_p(target.join("file_or_dir"));
    write(target.join("file_or_dir/y"), b"y");
    rm(target.join("dir_or_file"));
    write(target.join("dir_or_file"), b"now a file");
    // Excluded from the restore, so not deleted.
    write(target.join("notes.keep"), b"k");
    mkdir_p(target.join("sub/cache/x"));
    write(target.join("sub/cache/x/y.keep"), b"k");
}

fn outside_dir(ws: &Ws) -> PathBuf {
    let outside = ws.path("outside");
    mkdir_p(outside.join("inner"));
    write(outside.join("precious"), b"must survive");
    write(outside.join("inner/also"), b"must survive too");
    outside
}

fn assert_outside_intact(outside: &Path) {
    assert_eq!(read(outside.join("precious")), b"must survive");
    assert_eq!(read(outside.join("inner/also")), b"must survive too");
}

#[test]
fn delete_makes_the_target_identical_except_for_excluded_entries() {
    let s = setup(delete_tree);
    let outside = outside_dir(&s.ws);
    let target = s.ws.path("t");
    s.restore(&target, &[], 0);
    mutate_for_delete(&target, &outside);
    let excl = ["--exclude", "*.keep", "--exclude", "cache"];

    // --dry-run: lists what would go, removes nothing.
    let before = Tree::scan(&target);
    let mut args = vec!["--delete", "--dry-run"];
    args.extend(excl);
    let dry = s.sg.restore(spec(&s.id, &s.src), &target, &args);
    dry.expect_code(0);
    let listed: BTreeSet<PathBuf> = dry
        .stdout_str()
        .lines()
        .filter_map(|l| l.strip_prefix("would delete: "))
        .map(|p| {
            Path::new(p)
                .strip_prefix(&target)
                .expect("listed path in target")
                .to_path_buf()
        })
        .collect();
    assert_eq!(listed, set(DELETED_PATHS), "{dry}");
    let lax = Opts {
        atime: false,
        ..opts()
    };
    let changed = compare(&before, &Tree::scan(&target), &lax);
    assert!(
        changed.is_empty(),
        "--dry-run changed the target: {changed:?}"
    );
    let (out, sum) = s.restore(&target, &args, 0);
    assert_eq!(n(&sum, "deleted"), DELETED_ENTRIES, "{out}");
    assert!(out.json()["dry_run"].as_bool() == Some(true));

    // The real thing.
    let mut args = vec!["--delete"];
    args.extend(excl);
    let (out, sum) = s.restore(&target, &args, 0);
    assert_eq!(n(&sum, "deleted"), DELETED_ENTRIES, "{out}");
    let got: BTreeSet<PathBuf> = sum["deleted_paths"]
        .as_array()
        .expect("deleted_paths")
        .iter()
        .map(|p| {
            Path::new(p.as_str().expect("a path"))
                .strip_prefix(&target)
                .expect("deleted path in the target")
                .to_path_buf()
        })
        .collect();
    assert_eq!(got, set(DELETED_PATHS), "{out}");
    // The file and the directory that were in the way are the snapshot's again.
    assert_eq!(n(&sum, "overwritten"), 2, "{out}");
    assert_outside_intact(&outside);
    let mut actual = Tree::scan(&target);
    for kept in [
        "notes.keep",
        "sub/cache",
        "sub/cache/x",
        "sub/cache/x/y.keep",
    ] {
        assert!(
            actual.entries.remove(Path::new(kept)).is_some(),
            "excluded {kept} was deleted"
        );
    }
    // Directory metadata is applied after deleting, so `sub` has the snapshot's mtime even
    // though it still holds the excluded `cache`.
    assert_same(&s.built.tree, &actual, &opts(), "--delete");
    let text = s.sg.restore(spec(&s.id, &s.src), &target, &["--delete"]);
    text.expect_code(0);
    // Without the excludes, what they protected goes too.
    assert!(text.stdout_str().contains("4 deleted"), "{text}");
    assert_same(&s.built.tree, &Tree::scan(&target), &opts(), "--delete");
}

#[test]
fn delete_with_include_only_removes_what_the_include_selects() {
    let s = setup(delete_tree);
    let target = s.ws.path("t");
    s.restore(&target, &[], 0);
    write(target.join("sub/stale.txt"), b"s");
    write(target.join("sub/stale.bin"), b"s");
    mkdir_p(target.join("sub/olddir"));
    write(target.join("sub/olddir/old.txt"), b"o");
    write(target.join("sub/olddir/old.bin"), b"o");
    let (out, sum) = s.restore(&target, &["--delete", "--include", "*.txt"], 0);
    assert_eq!(n(&sum, "deleted"), 2, "{out}");
    assert!(!target.join("sub/stale.txt").exists());
    assert!(!target.join("sub/olddir/old.txt").exists());
    for kept in ["sub/stale.bin", "sub/olddir/old.bin"] {
        assert!(target.join(kept).exists(), "{kept} deleted\n{out}");
    }
}

#[test]
fn directory_in_the_way_is_only_replaced_with_delete() {
    let s = setup(delete_tree);
    let target = s.ws.path("t");
    s.restore(&target, &[], 0);
    rm(target.join("a.txt"));
    mkdir_p(target.join("a.txt"));
    write(target.join("a.txt/inside"), b"i");
    let out = s.sg.restore(spec(&s.id, &s.src), &target, &[]);
    out.expect_code(16);
    assert!(
        out.stderr_str().contains("a directory is in the way")
            && out.stderr_str().contains("--delete"),
        "{out}"
    );
    assert!(target.join("a.txt/inside").exists());
    s.restore(&target, &["--delete"], 0);
    assert_eq!(read(target.join("a.txt")), b"a");
}

// ---------------------------------------------------------------------------
// The original location

fn orig_tree(fx: &mut Fixture) {
    fx.file("a.txt", b"original a");
    fx.file("sub/b.txt", b"original b");
    fx.mode("sub/b.txt", 0o600);
}

/// Change the original after the backup.
fn damage(src: &Path) {
    write(src.join("a.txt"), b"damaged");
    write(src.join("junk"), b"junk");
}

fn assert_refused(out: &Out) {
    out.expect_code(2);
    let err = out.stderr_str();
    assert!(
        err.contains("original location") && err.contains("--yes"),
        "refusal does not explain --yes\n{out}"
    );
}

#[test]
fn original_location_is_refused_without_a_terminal_and_restored_with_yes() {
    let s = setup(orig_tree);
    damage(&s.src);
    let full = spec(&s.id, &s.src);
    assert_refused(&s.sg.restore(&full, &s.src, &[]));
    // Spelled differently, or through a symlink: still the original location.
    let alias = s.ws.path("alias");
    symlink(&s.src, &alias);
    assert_refused(&s.sg.restore(&full, &alias, &[]));
    let dotted = s.src.join("sub/..");
    assert_refused(&s.sg.restore(&full, &dotted, &[]));
    // One file restored into its own directory.
    assert_refused(&s.sg.restore(spec(&s.id, &s.src.join("a.txt")), &s.src, &[]));
    assert_refused(
        &s.sg
            .restore(spec(&s.id, &s.src.join("sub")), &s.src.join("sub"), &[]),
    );
    assert_eq!(read(s.src.join("a.txt")), b"damaged");

    // Not the original location: no question.
    s.sg.restore(spec(&s.id, &s.src.join("sub")), &s.src, &[])
        .expect_code(0);
    rm(s.src.join("b.txt"));
    s.sg.restore(&full, &s.ws.path("elsewhere"), &[])
        .expect_code(0);
    // A dry run writes nothing, so it does not ask either.
    s.sg.restore(&full, &s.src, &["--dry-run"]).expect_code(0);
    assert_eq!(read(s.src.join("a.txt")), b"damaged");

    let out = s.sg.restore(&full, &s.src, &["--yes", "--delete"]);
    out.expect_code(0);
    assert_same(&s.built.tree, &Tree::scan(&s.src), &opts(), "--yes");
}

#[test]
fn restoring_into_root_is_refused_without_yes() {
    let s = setup(|fx| {
        fx.file(
            format!("sg-restore-modes-{}.txt", std::process::id()),
            b"must not land in /",
        );
    });
    let name = format!("sg-restore-modes-{}.txt", std::process::id());
    let out =
        s.sg.restore(spec(&s.id, &s.src.join(&name)), Path::new("/"), &[]);
    let landed = Path::new("/").join(&name);
    let leaked = landed.exists();
    if leaked {
        let _ = fs::remove_file(&landed);
    }
    assert!(!leaked, "restore wrote into / without --yes\n{out}");
    out.expect_code(2);
    assert!(
        out.stderr_str().contains("into /") && out.stderr_str().contains("--yes"),
        "{out}"
    );
}

/// Run `snapguard restore SPEC --target TARGET` on a pseudo-terminal (util-linux `script`),
/// typing `answer`.
fn restore_on_tty(s: &Setup, target: &Path, answer: &str) -> Option<(i32, String)> {
    let have_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_script {
        return None;
    }
    let quote = |p: &std::ffi::OsStr| format!("'{}'", p.to_str().expect("utf-8 test path"));
    let cmdline = format!(
        "{} restore {} --target {}",
        quote(s.sg.bin.as_os_str()),
        quote(&spec(&s.id, &s.src)),
        quote(target.as_os_str())
    );
    let template = s.sg.std_command();
    let mut cmd = std::process::Command::new("script");
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd
        .args([OsString::from("-qec"), cmdline.into(), "/dev/null".into()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn script");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(answer.as_bytes()).expect("type answer");
    }
    let out = child.wait_with_output().expect("script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.code().unwrap_or(-1), text))
}

#[test]
fn original_location_asks_on_a_terminal() {
    let s = setup(orig_tree);
    damage(&s.src);
    let Some((code, text)) = restore_on_tty(&s, &s.src, "n\n") else {
        eprintln!("skipped: needs util-linux `script` for a pseudo-terminal");
        return;
    };
    assert!(
        text.contains("Continue? [y/N]"),
        "no question asked:\n{text}"
    );
    assert_eq!(code, 1, "declined:\n{text}");
    assert!(text.contains("cancelled"), "{text}");
    assert_eq!(read(s.src.join("a.txt")), b"damaged");
    let (code, text) = restore_on_tty(&s, &s.src, "y\n").expect("script");
    assert_eq!(code, 0, "confirmed:\n{text}");
    assert_eq!(read(s.src.join("a.txt")), b"original a");
    assert_eq!(read(s.src.join("junk")), b"junk");
}
