//! `import restic` against repositories written by the real `restic` binary: several backups
//! of the varied tree with changes in between, `--tag`, `--host` and `--time`, absolute and
//! relative targets; the imported snapshots' times, hosts, paths and tags against `restic
//! snapshots --json`; every imported snapshot restored and compared with `restic restore` of
//! the same snapshot (contents and all metadata restic keeps) and, for the first, with the
//! source as it was built; partial imports, re-runs and resuming; format 1 and 2
//! repositories; and the errors (wrong password, no password, not a restic repository, an
//! unknown snapshot, damaged data).
//!
//! restic is installed by `.ci/run`; where it is missing, the tests say so and pass, except on
//! CI, where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::errors::{expect_err, no_panic, strict_json};
use crate::support::cmd::{Sg, Ws};
use crate::support::compare::{assert_same, Kind, Opts, Tree};
use crate::support::fixture::{Built, Fixture};
use crate::support::varied::{self, KIB};
use crate::support::{is_root, random_bytes};

const RESTIC_PASSWORD: &str = "restic-test-password";

/// The restic binary, or None (with a note) where it is not installed; on CI its absence fails.
fn restic_bin() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("restic"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "restic is not installed; .ci/run installs it (apt-get install restic)"
        );
        eprintln!("note: restic is not installed; skipping the restic import test");
    }
    found
}

/// A restic repository in the workspace, used through the real binary.
struct Restic {
    bin: PathBuf,
    repo: PathBuf,
    password_file: PathBuf,
    cache: PathBuf,
}

impl Restic {
    /// `restic init` of `ws/<name>` in repository format `version`.
    fn init(ws: &Ws, name: &str, version: u32) -> Option<Restic> {
        let bin = restic_bin()?;
        let password_file = ws.path(format!("{name}.password"));
        fs::write(&password_file, format!("{RESTIC_PASSWORD}\n")).expect("password file");
        let r = Restic {
            bin,
            repo: ws.path(name),
            password_file,
            cache: ws.path(format!("{name}.cache")),
        };
        r.run(
            &["init", "--repository-version", &version.to_string()],
            None,
        );
        Some(r)
    }

    fn command(&self, cwd: Option<&Path>) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("RESTIC_REPOSITORY", &self.repo)
            .env("RESTIC_PASSWORD_FILE", &self.password_file)
            .env("RESTIC_CACHE_DIR", &self.cache)
            .env("TZ", "UTC")
            .env_remove("RESTIC_PASSWORD")
            .env_remove("RESTIC_PASSWORD_COMMAND");
        if let Some(d) = cwd {
            c.current_dir(d);
        }
        c
    }

    /// Runs restic; panics (showing its output) unless it succeeds.
    fn run(&self, args: &[&str], cwd: Option<&Path>) -> Output {
        let out = self.command(cwd).args(args).output().expect("run restic");
        assert!(
            out.status.success(),
            "restic {args:?} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `restic backup TARGET EXTRA...` (run in `cwd`); the new snapshot's full id.
    fn backup(&self, target: &str, cwd: &Path, extra: &[&str]) -> String {
        let mut args = vec!["backup", "--json"];
        args.extend(extra);
        args.push(target);
        let out = self.run(&args, Some(cwd));
        // restic 0.14 reports a short id.
        let short = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message_type"] == "summary")
            .and_then(|v| v["snapshot_id"].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                panic!(
                    "restic backup printed no summary\n{}",
                    String::from_utf8_lossy(&out.stdout)
                )
            });
        let full: Vec<String> = self
            .snapshots()
            .into_keys()
            .filter(|id| id.starts_with(&short))
            .collect();
        assert_eq!(full.len(), 1, "snapshot {short} in restic snapshots");
        full[0].clone()
    }

    /// `restic snapshots --json`, by full id.
    fn snapshots(&self) -> BTreeMap<String, Value> {
        let out = self.run(&["snapshots", "--json"], None);
        let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("restic snapshots json");
        list.into_iter()
            .map(|s| (s["id"].as_str().expect("id").to_string(), s))
            .collect()
    }

    fn restore(&self, id: &str, target: &Path) {
        self.run(
            &[
                "restore",
                id,
                "--target",
                target.to_str().expect("utf-8 target"),
            ],
            None,
        );
    }

    /// `snapguard import restic REPO --restic-password-file F ARGS...`.
    fn import(&self, sg: &Sg, args: &[&str]) -> crate::support::cmd::Out {
        let mut all: Vec<&OsStr> = Vec::new();
        let json = args.first() == Some(&"--json");
        if json {
            all.push(OsStr::new("--json"));
        }
        all.extend([OsStr::new("import"), OsStr::new("restic")]);
        all.push(self.repo.as_os_str());
        all.push(OsStr::new("--restic-password-file"));
        all.push(self.password_file.as_os_str());
        all.extend(args.iter().skip(usize::from(json)).map(OsStr::new));
        let out = sg.run(&all);
        no_panic(&out);
        out
    }
}

/// The SnapGuard snapshots (`snapshots --json`) by the restic id their marker tag names.
fn imported(sg: &Sg) -> BTreeMap<String, Value> {
    let out = sg.run(["--json", "snapshots"]);
    out.expect_code(0);
    let list = strict_json(&out);
    let mut map = BTreeMap::new();
    for s in list.as_array().expect("array") {
        let tags = s["tags"].as_array().expect("tags");
        let markers: Vec<&str> = tags
            .iter()
            .filter_map(|t| t.as_str()?.strip_prefix("restic:"))
            .collect();
        assert_eq!(markers.len(), 1, "one restic marker per snapshot: {s}");
        let dup = map.insert(markers[0].to_string(), s.clone());
        assert!(
            dup.is_none(),
            "restic snapshot {} imported twice",
            markers[0]
        );
    }
    map
}

/// (seconds, nanoseconds) of an RFC 3339 time.
fn instant(t: &Value) -> (i64, u32) {
    let d = chrono::DateTime::parse_from_rfc3339(t.as_str().expect("time string"))
        .unwrap_or_else(|e| panic!("time {t}: {e}"));
    (d.timestamp(), d.timestamp_subsec_nanos())
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The imported snapshots carry restic's time (to the nanosecond), host, user (name and ids),
/// paths and tags (plus `extra_tags` and the marker).
fn assert_snapshot_fields(
    restic: &BTreeMap<String, Value>,
    sg: &BTreeMap<String, Value>,
    extra_tags: &[&str],
) {
    assert_eq!(
        restic.keys().collect::<Vec<_>>(),
        sg.keys().collect::<Vec<_>>(),
        "every restic snapshot is imported once"
    );
    for (id, r) in restic {
        let s = &sg[id];
        assert_eq!(instant(&s["time"]), instant(&r["time"]), "time of {id}");
        assert_eq!(s["hostname"], r["hostname"], "hostname of {id}");
        assert_eq!(s["username"], r["username"], "username of {id}");
        // restic leaves zero ids out.
        for f in ["uid", "gid"] {
            assert_eq!(
                s[f].as_u64(),
                Some(r[f].as_u64().unwrap_or(0)),
                "{f} of {id}"
            );
        }
        assert_eq!(strings(&s["paths"]), strings(&r["paths"]), "paths of {id}");
        let mut want = strings(&r["tags"]);
        want.extend(extra_tags.iter().map(|t| t.to_string()));
        want.insert(format!("restic:{id}"));
        assert_eq!(strings(&s["tags"]), want, "tags of {id}");
    }
}

/// The source tree as restic 0.14 records it, which is all an import can carry: access times
/// are stored as the modification time, symlink targets that are not UTF-8 get U+FFFD for
/// their bad bytes, symlinks' extended attributes are not stored, and nothing marks sparse
/// files (a restored file is written whole).
fn as_restic_records(mut t: Tree) -> Tree {
    for e in t.entries.values_mut() {
        e.atime = e.mtime;
        e.data = None;
        if e.kind == Kind::Symlink {
            e.xattrs.clear();
            if let Some(target) = &mut e.target {
                *target = String::from_utf8_lossy(target).into_owned().into_bytes();
                e.size = target.len() as u64;
            }
        }
    }
    t
}

/// Restore `sg_id` with SnapGuard and `restic_id` with restic, and compare the two trees at
/// `sg_rel` and `restic_rel` (paths inside the respective targets).
fn assert_restores_match(
    ws: &Ws,
    sg: &Sg,
    restic: &Restic,
    (sg_id, restic_id): (&str, &str),
    (sg_rel, restic_rel): (&Path, &Path),
) {
    let sg_target = ws.path(format!("sg-restore-{}", &restic_id[..8]));
    let restic_target = ws.path(format!("restic-restore-{}", &restic_id[..8]));
    sg.restore(sg_id, &sg_target, &[]).expect_code(0);
    restic.restore(restic_id, &restic_target);
    let expected = Tree::scan(&restic_target.join(restic_rel));
    let actual = Tree::scan(&sg_target.join(sg_rel));
    assert_same(
        &expected,
        &actual,
        &Opts::default(),
        &format!("restic snapshot {restic_id}: snapguard restore vs restic restore"),
    );
}

fn rel(p: &Path) -> &Path {
    p.strip_prefix("/").expect("absolute")
}

/// Changes between the backups: new content, a deleted file, a new file, a changed mode, owner
/// and xattr, a file turned into a directory.
fn change(src: &Path) {
    fs::write(src.join("files/text.txt"), b"changed text\n").expect("write");
    fs::remove_file(src.join("files/rand_4097")).expect("rm");
    fs::write(
        src.join("files/new_in_second"),
        random_bytes(42, 700 * KIB as usize),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        src.join("modes/file_0644"),
        fs::Permissions::from_mode(0o4711),
    )
    .expect("chmod");
    rustix::fs::lsetxattr(
        src.join("xattrs/user_bin"),
        "user.text",
        b"changed",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    fs::remove_file(src.join("hardlinks/lonely")).expect("rm");
    fs::create_dir(src.join("hardlinks/lonely")).expect("mkdir");
    fs::write(src.join("hardlinks/lonely/inside"), b"now a directory").expect("write");
    if is_root() {
        std::os::unix::fs::lchown(src.join("files/one_byte"), Some(4321), Some(8765))
            .expect("chown");
    }
}

fn build_varied(ws: &Ws) -> Built {
    let mut fx = Fixture::new(&ws.path("src"));
    varied::build(&mut fx);
    fx.finish()
}

#[test]
fn import_restic_repository_v2_varied_tree() {
    let ws = Ws::new();
    let Some(restic) = Restic::init(&ws, "restic-repo", 2) else {
        return;
    };
    let built = build_varied(&ws);
    let src = built.root.clone();
    let src_str = src.to_str().expect("utf-8 workspace");
    let first = restic.backup(
        src_str,
        &ws.root,
        &[
            "--tag",
            "first",
            "--tag",
            "both",
            "--host",
            "host-a",
            "--time",
            "2021-02-03 04:05:06",
        ],
    );
    let sg = Sg::init(&ws, None);
    let id = |sg: &Sg, r: &str| imported(sg)[r]["id"].as_str().expect("id").to_string();

    // The first snapshot alone; it restores equal to the source as it was built, as far as
    // restic records it.
    let out = restic.import(&sg, &["--json", "--tag", "from-restic"]);
    out.expect_code(0);
    let j = strict_json(&out);
    assert_eq!(j["imported"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(j["imported"][0]["restic_id"], first.as_str());
    assert_eq!(j["restic_format_version"], 2);
    let target = ws.path("sg-first-vs-source");
    sg.restore(id(&sg, &first), &target, &[]).expect_code(0);
    assert_same(
        &as_restic_records(built.tree.subtree("")),
        &Tree::scan(&target.join(rel(&src))),
        &Opts::default(),
        "first imported snapshot vs the source",
    );

    change(&src);
    let second = restic.backup(
        src_str,
        &ws.root,
        &[
            "--tag",
            "second,both",
            "--host",
            "host-b",
            "--time",
            "2022-03-04 05:06:07",
        ],
    );
    // A relative target: restic stores it under its relative name.
    let third = restic.backup("src/files", &ws.root, &["--tag", "relative"]);
    let restic_snaps = restic.snapshots();
    assert_eq!(restic_snaps.len(), 3);

    // Two selected snapshots (named newest first), imported oldest first.
    let out = restic.import(
        &sg,
        &[
            "--json",
            "--snapshot",
            &third,
            "--snapshot",
            &second[..8],
            "--tag",
            "from-restic",
        ],
    );
    out.expect_code(0);
    let j = strict_json(&out);
    let order: Vec<&str> = j["imported"]
        .as_array()
        .expect("imported")
        .iter()
        .map(|s| s["restic_id"].as_str().expect("id"))
        .collect();
    assert_eq!(order, vec![second.as_str(), third.as_str()], "{out}");
    assert_eq!(j["skipped"].as_array().map(Vec::len), Some(0), "{out}");
    // The third snapshot's files are the second's: imported once, not read again.
    assert!(
        j["imported"][1]["files_reused"].as_u64().unwrap_or(0) > 10,
        "files already imported are reused: {out}"
    );
    assert_eq!(j["imported"][1]["bytes_read"], 0, "{out}");

    // Everything again: nothing is imported twice.
    let out = restic.import(&sg, &["--tag", "from-restic"]);
    out.expect_code(0);
    assert!(
        out.stdout_str()
            .contains("0 restic snapshot(s) imported, 3 imported earlier"),
        "{out}"
    );
    let sg_snaps = imported(&sg);
    assert_snapshot_fields(&restic_snaps, &sg_snaps, &["from-restic"]);

    // Every snapshot restores like restic restores it.
    for r in [&first, &second] {
        assert_restores_match(&ws, &sg, &restic, (&id(&sg, r), r), (rel(&src), rel(&src)));
    }
    // The relative backup is placed where it was backed up from.
    assert_restores_match(
        &ws,
        &sg,
        &restic,
        (&id(&sg, &third), &third),
        (&rel(&src).join("files"), Path::new("src/files")),
    );
    sg.run(["check", "--read-data"]).expect_code(0);
}

#[test]
fn import_restic_repository_v1() {
    let ws = Ws::new();
    let Some(restic) = Restic::init(&ws, "restic-v1", 1) else {
        return;
    };
    let mut fx = Fixture::new(&ws.path("src"));
    varied::files(&mut fx);
    varied::hardlinks(&mut fx);
    varied::xattrs(&mut fx);
    varied::acls(&mut fx);
    let built = fx.finish();
    let src = built.root.clone();
    let src_str = src.to_str().expect("utf-8");
    let a = restic.backup(
        src_str,
        &ws.root,
        &["--host", "old-host", "--time", "1999-12-31 23:59:59"],
    );
    fs::write(src.join("files/text.txt"), b"second version\n").expect("write");
    let b = restic.backup(src_str, &ws.root, &["--tag", "later"]);
    let sg = Sg::init(&ws, None);

    // A dry run reads everything and writes nothing.
    let out = restic.import(&sg, &["--dry-run"]);
    out.expect_code(0);
    assert!(out.stdout_str().contains("dry run"), "{out}");
    assert!(imported(&sg).is_empty());

    restic.import(&sg, &["--snapshot", "latest"]).expect_code(0);
    assert_eq!(
        imported(&sg).into_keys().collect::<Vec<_>>(),
        vec![b.clone()]
    );
    restic.import(&sg, &[]).expect_code(0);
    let sg_snaps = imported(&sg);
    assert_snapshot_fields(&restic.snapshots(), &sg_snaps, &[]);
    for r in [&a, &b] {
        let id = sg_snaps[r.as_str()]["id"].as_str().expect("id").to_string();
        assert_restores_match(&ws, &sg, &restic, (&id, r), (rel(&src), rel(&src)));
    }
    // Switching over: a SnapGuard backup of the same, unchanged source takes the imported
    // snapshot as its parent (same host and paths) and reads no file again, because size,
    // times, inode and device were carried over exactly.
    let backup = sg.backup(&[&src], &[]);
    backup.out.expect_code(0);
    assert_eq!(backup.json["files_new"], 0, "{}", backup.out);
    assert_eq!(backup.json["files_changed"], 0, "{}", backup.out);
    assert!(
        backup.json["files_unchanged"].as_u64().unwrap_or(0) > 10,
        "{}",
        backup.out
    );
}

#[test]
fn import_restic_errors() {
    let ws = Ws::new();
    let Some(restic) = Restic::init(&ws, "restic-err", 2) else {
        return;
    };
    let src = ws.path("src");
    fs::create_dir_all(&src).expect("mkdir");
    fs::write(src.join("data"), random_bytes(7, 300 * KIB as usize)).expect("write");
    restic.backup(src.to_str().expect("utf-8"), &ws.root, &[]);
    let sg = Sg::init(&ws, None);
    let repo = restic.repo.to_str().expect("utf-8");

    // Wrong password.
    let wrong = ws.path("wrong.password");
    fs::write(&wrong, "not the password\n").expect("write");
    let out = sg.run([
        "import",
        "restic",
        repo,
        "--restic-password-file",
        wrong.to_str().expect("utf-8"),
    ]);
    expect_err(
        &out,
        12,
        &["wrong password for the restic repository", repo],
    );
    // The same through RESTIC_PASSWORD.
    let mut cmd = sg.command();
    cmd.env("RESTIC_PASSWORD", "also wrong")
        .env_remove("RESTIC_PASSWORD_FILE")
        .env_remove("RESTIC_PASSWORD_COMMAND");
    let out = crate::support::cmd::run_cmd(&mut cmd, ["import", "restic", repo]);
    expect_err(&out, 12, &["wrong password for the restic repository"]);
    // No password at all (standard input is not a terminal).
    let mut cmd = sg.command();
    cmd.env_remove("RESTIC_PASSWORD")
        .env_remove("RESTIC_PASSWORD_FILE")
        .env_remove("RESTIC_PASSWORD_COMMAND");
    let out = crate::support::cmd::run_cmd(&mut cmd, ["import", "restic", repo]);
    expect_err(
        &out,
        2,
        &["no password for the restic repository", "RESTIC_PASSWORD"],
    );
    // The right one through RESTIC_PASSWORD_COMMAND.
    let mut cmd = sg.command();
    cmd.env("RESTIC_PASSWORD_COMMAND", format!("echo {RESTIC_PASSWORD}"))
        .env_remove("RESTIC_PASSWORD")
        .env_remove("RESTIC_PASSWORD_FILE");
    let out = crate::support::cmd::run_cmd(&mut cmd, ["import", "restic", repo, "-n"]);
    out.expect_code(0);

    // Not a restic repository: an empty directory, a missing one, a SnapGuard repository.
    let empty = ws.path("empty");
    fs::create_dir(&empty).expect("mkdir");
    let out = restic_import_at(&restic, &sg, &empty);
    expect_err(
        &out,
        10,
        &["is not a restic repository", "no 'config' file"],
    );
    let out = restic_import_at(&restic, &sg, &ws.path("missing"));
    expect_err(&out, 10, &["is not a restic repository", "does not exist"]);
    let out = restic_import_at(&restic, &sg, &sg.repo);
    expect_err(&out, 10, &["is a SnapGuard repository, not a restic one"]);
    let out = sg.run(["import", "restic", "s3:s3.example.com/bucket"]);
    expect_err(&out, 2, &["only local restic repositories"]);

    // An unknown snapshot.
    let out = restic.import(&sg, &["--snapshot", "deadbeef"]);
    expect_err(&out, 15, &["has no snapshot \"deadbeef\"", "restic -r"]);
    assert!(imported(&sg).is_empty(), "nothing imported after errors");

    // Damaged data: one byte of every pack flipped, which fails the MAC of the first blob read.
    let mut packs = Vec::new();
    for d in fs::read_dir(restic.repo.join("data")).expect("data") {
        for f in fs::read_dir(d.expect("entry").path()).expect("subdir") {
            packs.push(f.expect("entry").path());
        }
    }
    assert!(!packs.is_empty());
    for p in &packs {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(0o600)).expect("chmod pack");
        let mut bytes = fs::read(p).expect("read pack");
        bytes[10] ^= 0x40;
        fs::write(p, bytes).expect("write pack");
    }
    let out = restic.import(&sg, &[]);
    expect_err(
        &out,
        14,
        &[
            "integrity error in the restic repository",
            repo,
            "importing restic snapshot",
            "nothing was imported",
            "check --read-data",
        ],
    );
    assert!(
        imported(&sg).is_empty(),
        "nothing committed from damaged data"
    );
}

fn restic_import_at(restic: &Restic, sg: &Sg, path: &Path) -> crate::support::cmd::Out {
    let out = sg.run([
        OsStr::new("import"),
        OsStr::new("restic"),
        path.as_os_str(),
        OsStr::new("--restic-password-file"),
        restic.password_file.as_os_str(),
    ]);
    no_panic(&out);
    out
}
