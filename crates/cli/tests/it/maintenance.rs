//! Maintenance commands end to end: forget (ids and policies), prune (delete and repack), tags,
//! comments and immutability locks, append-only repositories, check (structure, data, subsets,
//! ledger), repair (index and snapshots) and repository locks.
//!
//! The helpers marked `pub(crate)` are shared with `crash`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::errors::{files_in, no_panic, path_str, strict_json};
use crate::support::cmd::{Out, Sg, Ws};
use crate::support::{random_bytes, restored_path};

// ---------------------------------------------------------------------------
// Helpers (also used by `crash`).

/// `len` pseudo-random bytes; distinct seeds give distinct data. (`random_bytes` maps seeds
/// 2k and 2k+1 to the same stream, which would silently deduplicate "different" files.)
pub(crate) fn rnd(seed: u64, len: usize) -> Vec<u8> {
    random_bytes(seed.wrapping_mul(2), len)
}

pub(crate) fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Initialises a repository at `ws/name` (cache `ws/name-cache`) with `extra` init flags.
pub(crate) fn init_at(ws: &Ws, name: &str, extra: &[&str]) -> Sg {
    let sg = sg_at(ws, name);
    let mut args = vec!["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"];
    args.extend_from_slice(extra);
    sg.run(args).expect_code(0);
    sg
}

/// An `Sg` for an existing repository directory `ws/name` (cache `ws/name-cache`).
pub(crate) fn sg_at(ws: &Ws, name: &str) -> Sg {
    let cache = ws.path(format!("{name}-cache"));
    fs::create_dir_all(&cache).expect("mkdir cache");
    Sg {
        bin: crate::support::cmd::bin(),
        repo: ws.path(name),
        cache,
        config: crate::support::cmd::empty_config(ws),
        wrapper: Vec::new(),
        extra_env: Vec::new(),
    }
}

/// Runs `--json ARGS`, expects exit 0 and one JSON document on stdout.
pub(crate) fn json_ok<I, S>(sg: &Sg, args: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut all: Vec<OsString> = vec!["--json".into()];
    all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
    let out = sg.run(&all);
    no_panic(&out);
    out.expect_code(0);
    strict_json(&out)
}

/// `snapshots --json` as a list.
pub(crate) fn snapshot_list(sg: &Sg) -> Vec<Value> {
    json_ok(sg, ["snapshots"])
        .as_array()
        .expect("snapshots --json is an array")
        .clone()
}

/// Full ids of every snapshot, oldest first.
pub(crate) fn snapshot_ids(sg: &Sg) -> Vec<String> {
    snapshot_list(sg)
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

/// One snapshot's `snapshots --json` entry.
fn snapshot_view(sg: &Sg, id: &str) -> Value {
    snapshot_list(sg)
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("snapshot {id} is not listed"))
}

/// Regular files below `dir` (relative path → contents).
pub(crate) type Files = BTreeMap<PathBuf, Vec<u8>>;

pub(crate) fn read_files(dir: &Path) -> Files {
    files_in(dir)
        .into_iter()
        .map(|p| {
            let data = fs::read(&p).unwrap_or_else(|e| panic!("read {p:?}: {e}"));
            let rel = p.strip_prefix(dir).expect("below dir").to_path_buf();
            (rel, data)
        })
        .collect()
}

/// Writes `files` below `root` (creating directories).
pub(crate) fn write_files<P: AsRef<Path>>(root: &Path, files: &[(P, Vec<u8>)]) {
    for (rel, data) in files {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {p:?}: {e}"));
    }
}

/// Panics unless `actual` holds exactly the files of `expected`, byte for byte.
pub(crate) fn assert_same_files(expected: &Files, actual: &Files, context: &str) {
    let want: BTreeSet<&PathBuf> = expected.keys().collect();
    let got: BTreeSet<&PathBuf> = actual.keys().collect();
    assert_eq!(
        want, got,
        "{context}: the restored files differ from the source"
    );
    for (p, data) in expected {
        let a = &actual[p];
        if a != data {
            let first = data.iter().zip(a.iter()).position(|(x, y)| x != y);
            panic!(
                "{context}: {p:?} differs (source {} bytes, restored {} bytes, first difference at {first:?})",
                data.len(),
                a.len()
            );
        }
    }
}

/// Restores snapshot `id` into a fresh `target` and checks that the copy of `src` in it equals
/// `expected`; the target is removed afterwards.
pub(crate) fn assert_restores(sg: &Sg, id: &str, src: &Path, expected: &Files, target: &Path) {
    if target.exists() {
        fs::remove_dir_all(target).expect("rm old target");
    }
    let out = sg.restore(id, target, &[]);
    no_panic(&out);
    out.expect_code(0);
    let got = read_files(&restored_path(target, src));
    assert_same_files(expected, &got, &format!("restore of snapshot {id}"));
    fs::remove_dir_all(target).expect("rm target");
}

/// Every file of the repository except lock files (relative path → contents).
pub(crate) fn repo_state(repo: &Path) -> Files {
    read_files(repo)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("locks"))
        .collect()
}

/// Total size of the pack files.
fn pack_bytes(repo: &Path) -> u64 {
    files_in(&repo.join("data"))
        .iter()
        .map(|p| fs::metadata(p).expect("stat").len())
        .sum()
}

/// Lock files currently in the repository.
pub(crate) fn lock_files(repo: &Path) -> Vec<String> {
    let dir = repo.join("locks");
    let mut v: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read_dir {dir:?}: {e}"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

pub(crate) fn flip_byte(path: &Path, offset: u64) {
    let mut b = fs::read(path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
    let i = usize::try_from(offset).expect("offset");
    assert!(i < b.len(), "offset {offset} beyond {path:?}");
    b[i] ^= 0x55;
    fs::write(path, b).expect("write");
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// An id printed by `cat` (64 hex digits).
fn hex_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a hex id: {v}"))
        .to_string()
}

/// The blobs of a pack: (id hex, kind, offset, length).
fn pack_blobs(sg: &Sg, pack: &Path) -> Vec<(String, String, u64, u64)> {
    let v = json_ok(sg, [os("cat"), os("pack"), os(&name_of(pack))]);
    v.as_array()
        .expect("array")
        .iter()
        .map(|b| {
            (
                hex_of(&b["id"]),
                b["type"].as_str().expect("type").to_string(),
                b["offset"].as_u64().expect("offset"),
                b["length"].as_u64().expect("length"),
            )
        })
        .collect()
}

/// The tree id of directory `dir` (absolute) in snapshot `id`.
fn subtree_of(sg: &Sg, id: &str, dir: &Path) -> String {
    let snap = json_ok(sg, ["cat", "snapshot", id]);
    let mut tree = snap["tree"].as_str().expect("tree").to_string();
    for comp in dir.strip_prefix("/").expect("absolute").components() {
        let name = comp.as_os_str().to_str().expect("UTF-8");
        let t = json_ok(sg, ["cat", "tree", tree.as_str()]);
        let node = t["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no {name:?} in tree {tree}: {t}"))
            .clone();
        tree = node["subtree"].as_str().expect("subtree").to_string();
    }
    tree
}

pub(crate) fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read hostname")
        .trim()
        .to_string()
}

/// The current time plus `secs`, as RFC 3339 (UTC), computed without a date library.
fn rfc3339_in(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let t = now + secs;
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A background `snapguard` process; killed (and reaped) if still running when dropped.
pub(crate) struct Bg {
    child: Option<Child>,
    what: String,
}

impl Bg {
    pub(crate) fn spawn(sg: &Sg, args: &[&OsStr]) -> Bg {
        let mut cmd = sg.std_command();
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("snapguard {args:?}");
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Bg {
            child: Some(child),
            what,
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child not yet reaped")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Whether it is still running (not exited; a stopped process is running).
    pub(crate) fn running(&mut self) -> bool {
        self.child().try_wait().expect("try_wait").is_none()
    }

    pub(crate) fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(self.child.as_ref().expect("child"));
        rustix::process::kill_process(pid, sig)
            .unwrap_or_else(|e| panic!("signal {sig:?} to {}: {e}", self.what));
    }

    /// SIGKILL unless it has already exited, then reap it (a zombie would still look alive to
    /// the stale-lock test). Returns the exit status if it ended by itself.
    pub(crate) fn kill_now(&mut self) -> Option<ExitStatus> {
        if let Some(st) = self.child().try_wait().expect("try_wait") {
            return Some(st);
        }
        self.signal(rustix::process::Signal::KILL);
        let st = self.child().wait().expect("wait");
        // It may have finished between try_wait and the signal.
        st.code().map(|_| st)
    }

    /// Waits for it to end and returns its output.
    pub(crate) fn finish(mut self) -> Out {
        let child = self.child.take().expect("child");
        let output = child.wait_with_output().expect("wait");
        Out {
            cmdline: self.what.clone(),
            code: output.status.code(),
            stdout: output.stdout,
            stderr: output.stderr,
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(None) = c.try_wait() {
                let pid = rustix::process::Pid::from_child(c);
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Polls (every half millisecond) until a lock file not in `except` appears; returns its name,
/// or None if `bg` ended or `limit` passed first.
pub(crate) fn wait_for_new_lock(
    repo: &Path,
    bg: &mut Bg,
    except: &[String],
    limit: Duration,
) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(l) = lock_files(repo).into_iter().find(|l| !except.contains(l)) {
            return Some(l);
        }
        if !bg.running() {
            return None;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    None
}

/// `len` bytes of random data per file, for `n` files named `f0.bin`… (seeded by `seed`).
pub(crate) fn random_tree(dir: &Path, seed: u64, n: usize, len: usize) {
    if dir.exists() {
        fs::remove_dir_all(dir).expect("rm old tree");
    }
    let files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("f{i}.bin"), rnd(seed * 1000 + i as u64, len)))
        .collect();
    write_files(dir, &files);
    write_files(
        dir,
        &[("sub/small.txt", format!("seed {seed}\n").into_bytes())],
    );
}

// ---------------------------------------------------------------------------
// forget

/// Backs up `src` at `time` (RFC 3339) with `tags`; returns the snapshot id.
fn backup_at(sg: &Sg, src: &Path, time: &str, tags: &[&str]) -> String {
    let mut extra = vec!["--time", time];
    for t in tags {
        extra.extend(["--tag", *t]);
    }
    sg.backup(&[src], &extra).id
}

#[test]
fn forget_policy_table_dry_run_then_execute() {
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    // Calendar buckets use the local offset: make it UTC for a fixed answer.
    sg.extra_env.push(("TZ".into(), "UTC".into()));
    let src = ws.path("src");
    write_files(&src, &[("f.txt", b"same every time\n".to_vec())]);
    let times: [(&str, &[&str]); 12] = [
        ("2026-01-10T08:00:00Z", &["important"]),
        ("2026-01-10T09:00:00Z", &[]),
        ("2026-01-10T10:00:00Z", &[]),
        ("2026-01-10T11:00:00Z", &[]),
        ("2026-01-11T09:00:00Z", &["other"]),
        ("2026-01-11T10:00:00Z", &[]),
        ("2026-01-11T11:00:00Z", &[]),
        ("2026-01-11T12:00:00Z", &[]),
        ("2026-01-12T08:00:00Z", &[]),
        ("2026-01-12T09:00:00Z", &[]),
        ("2026-01-12T10:00:00Z", &[]),
        ("2026-01-12T11:00:00Z", &[]),
    ];
    let mut ids = BTreeMap::new();
    for (time, tags) in times {
        ids.insert(time, backup_at(&sg, &src, time, tags));
    }
    assert_eq!(
        ids.values().collect::<BTreeSet<_>>().len(),
        12,
        "12 distinct snapshots"
    );
    let want_kept: BTreeMap<&str, Vec<&str>> = [
        ("2026-01-12T11:00:00Z", vec!["last", "daily"]),
        ("2026-01-11T12:00:00Z", vec!["daily"]),
        ("2026-01-10T08:00:00Z", vec!["tag \"important\""]),
    ]
    .into_iter()
    .collect();
    let policy = [
        "forget",
        "--keep-daily",
        "2",
        "--keep-last",
        "1",
        "--keep-tag",
        "important",
    ];
    let before = repo_state(&sg.repo);

    // Text dry run: every snapshot, keep/remove and a reason; nothing changes.
    let mut args = policy.to_vec();
    args.push("--dry-run");
    let out = sg.run(&args);
    no_panic(&out);
    out.expect_code(0);
    let text = out.stdout_str();
    for (time, id) in &ids {
        let line = text
            .lines()
            .find(|l| l.contains(&id[..8]))
            .unwrap_or_else(|| panic!("snapshot {id} ({time}) is not listed\n{out}"));
        if let Some(reasons) = want_kept.get(time) {
            assert!(
                line.trim_start().starts_with("keep"),
                "{time}: {line}\n{out}"
            );
            for r in reasons {
                assert!(line.contains(r), "{time}: reason {r:?} missing: {line}");
            }
        } else {
            assert!(
                line.trim_start().starts_with("remove") && line.contains("no rule keeps it"),
                "{time}: {line}\n{out}"
            );
        }
    }
    assert!(text.contains("3 snapshot(s) to keep, 9 to remove"), "{out}");
    assert!(text.contains("dry run"), "{out}");

    // JSON dry run: the exact decision table.
    let mut args = policy.to_vec();
    args.push("--dry-run");
    let plan = json_ok(&sg, &args);
    assert_eq!(plan["dry_run"], true);
    let decisions = plan["snapshots"].as_array().expect("snapshots");
    assert_eq!(decisions.len(), 12, "{plan:#}");
    for (time, id) in &ids {
        let d = decisions
            .iter()
            .find(|d| d["id"] == id.as_str())
            .unwrap_or_else(|| panic!("no decision for {time}\n{plan:#}"));
        let reasons: Vec<&str> = d["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .map(|r| r.as_str().expect("reason"))
            .collect();
        match want_kept.get(time) {
            Some(want) => {
                assert_eq!(d["keep"], true, "{time} should be kept: {d}");
                assert_eq!(&reasons, want, "{time}: {d}");
            }
            None => {
                assert_eq!(d["keep"], false, "{time} should be removed: {d}");
                assert_eq!(reasons, ["no rule keeps it"], "{time}: {d}");
            }
        }
    }
    assert_eq!(
        repo_state(&sg.repo),
        before,
        "a dry run changed the repository"
    );

    // Execute.
    let res = json_ok(&sg, policy);
    assert_eq!(res["removed"], 9, "{res:#}");
    let left: BTreeSet<String> = snapshot_ids(&sg).into_iter().collect();
    let want: BTreeSet<String> = want_kept.keys().map(|t| ids[t].clone()).collect();
    assert_eq!(left, want);
    // Forgetting changes only snapshot files: data stays until prune.
    let after = repo_state(&sg.repo);
    for (p, data) in &before {
        if !p.starts_with("snapshots") {
            assert_eq!(after.get(p), Some(data), "{p:?} changed by forget");
        }
    }
}

#[test]
fn forget_prune_then_check_read_data_and_remaining_snapshots_restore() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut versions = Vec::new();
    for v in 0..3u64 {
        write_files(
            &src,
            &[
                ("common.bin", rnd(7, 300 << 10)),
                ("changing.bin", rnd(100 + v, (200 << 10) + v as usize)),
                ("d/v.txt", format!("version {v}\n").into_bytes()),
            ],
        );
        let id = sg.backup(&[&src], &[]).id;
        versions.push((id, read_files(&src)));
    }
    let before = pack_bytes(&sg.repo);
    let res = json_ok(&sg, ["forget", "--keep-last", "2", "--prune"]);
    assert_eq!(res["removed"], 1, "{res:#}");
    assert!(
        res["prune"]["result"].is_object(),
        "forget --prune did not prune: {res:#}"
    );
    assert!(
        pack_bytes(&sg.repo) < before,
        "forget --prune freed nothing"
    );
    let ids = snapshot_ids(&sg);
    assert_eq!(ids, [versions[1].0.clone(), versions[2].0.clone()]);
    let out = sg.run(["check", "--read-data"]);
    no_panic(&out);
    out.expect_code(0);
    assert!(out.stdout_str().contains("no errors"), "{out}");
    for (i, (id, files)) in versions.iter().enumerate().skip(1) {
        assert_restores(&sg, id, &src, files, &ws.path(format!("r{i}")));
    }
}

// ---------------------------------------------------------------------------
// prune

#[test]
fn prune_after_forgetting_all_but_one_removes_packs() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut ids = Vec::new();
    for v in 0..3u64 {
        write_files(&src, &[("data.bin", rnd(200 + v, 2 << 20))]);
        ids.push(sg.backup(&[&src], &[]).id);
    }
    let last_files = read_files(&src);
    let packs_before = files_in(&sg.repo.join("data")).len();
    let bytes_before = pack_bytes(&sg.repo);
    sg.run(["forget", ids[0].as_str(), ids[1].as_str()])
        .expect_code(0);
    assert_eq!(
        pack_bytes(&sg.repo),
        bytes_before,
        "forget alone must not delete data"
    );
    let res = json_ok(&sg, ["prune"]);
    let deleted = res["result"]["packs_deleted"]
        .as_u64()
        .expect("packs_deleted");
    assert!(deleted >= 2, "prune deleted {deleted} pack(s)\n{res:#}");
    let packs_after = files_in(&sg.repo.join("data")).len();
    let bytes_after = pack_bytes(&sg.repo);
    assert!(
        packs_after < packs_before && bytes_after * 2 < bytes_before,
        "packs {packs_before} -> {packs_after}, bytes {bytes_before} -> {bytes_after}"
    );
    sg.run(["check", "--read-data"]).expect_code(0);
    assert_restores(&sg, &ids[2], &src, &last_files, &ws.path("r"));
    // A second prune has nothing left to do.
    let again = json_ok(&sg, ["prune", "--dry-run"]);
    assert_eq!(again["plan"]["packs_to_delete"], 0, "{again:#}");
}

#[test]
fn prune_dry_run_changes_nothing() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    write_files(&src, &[("a.bin", rnd(1, 1 << 20))]);
    let first = sg.backup(&[&src], &[]).id;
    write_files(&src, &[("a.bin", rnd(2, 1 << 20))]);
    sg.backup(&[&src], &[]);
    sg.run(["forget", first.as_str()]).expect_code(0);
    let before = repo_state(&sg.repo);

    let out = sg.run(["prune", "--dry-run", "--max-unused", "0"]);
    no_panic(&out);
    out.expect_code(0);
    assert!(out.stdout_str().contains("dry run"), "{out}");
    let plan = json_ok(&sg, ["prune", "--dry-run", "--max-unused", "0"]);
    assert_eq!(plan["dry_run"], true);
    assert!(
        plan["plan"]["packs_to_delete"].as_u64().expect("n") >= 1,
        "the plan should delete the forgotten snapshot's pack\n{plan:#}"
    );
    assert_eq!(
        repo_state(&sg.repo),
        before,
        "prune --dry-run changed the repository"
    );
    assert!(lock_files(&sg.repo).is_empty(), "a lock was left behind");
    // The real thing does change it.
    sg.run(["prune"]).expect_code(0);
    assert_ne!(repo_state(&sg.repo), before);
}

#[test]
fn prune_repacks_a_mostly_unused_pack() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    // One backup: 8 MiB that will become garbage plus small files that stay in use; all of
    // it lands in one pack (the pack target is 16 MiB).
    write_files(
        &src,
        &[
            ("big.bin", rnd(31, 8 << 20)),
            ("small1.bin", rnd(32, 100 << 10)),
            ("d/c.txt", b"charlie\n".to_vec()),
        ],
    );
    let first = sg.backup(&[&src], &[]).id;
    let old_packs = files_in(&sg.repo.join("data"));
    assert_eq!(old_packs.len(), 1, "expected one pack: {old_packs:?}");
    fs::remove_file(src.join("big.bin")).expect("rm big");
    let second = sg.backup(&[&src], &[]).id;
    let files = read_files(&src);
    sg.run(["forget", first.as_str()]).expect_code(0);

    let plan = json_ok(&sg, ["prune", "--dry-run", "--max-unused", "0"]);
    let p = &plan["plan"];
    assert!(
        p["packs_to_repack"].as_u64().expect("n") >= 1,
        "no repack planned\n{plan:#}"
    );
    let old = name_of(&old_packs[0]);
    let entry = p["packs"]
        .as_array()
        .expect("packs")
        .iter()
        .find(|x| x["pack"] == old.as_str())
        .unwrap_or_else(|| panic!("old pack not in plan\n{plan:#}"));
    assert_eq!(entry["action"], "repack", "{entry}");

    let res = json_ok(&sg, ["prune", "--max-unused", "0"]);
    let r = &res["result"];
    assert!(
        r["blobs_repacked"].as_u64().expect("n") > 0
            && r["packs_written"].as_u64().expect("n") >= 1,
        "no repack happened\n{res:#}"
    );
    assert!(!old_packs[0].exists(), "the repacked pack was not deleted");
    assert!(
        pack_bytes(&sg.repo) < 1 << 20,
        "8 MiB of garbage is still stored: {} bytes",
        pack_bytes(&sg.repo)
    );
    let out = sg.run(["check", "--read-data"]);
    out.expect_code(0);
    assert!(out.stdout_str().contains("no errors"), "{out}");
    assert_restores(&sg, &second, &src, &files, &ws.path("r"));
}

// ---------------------------------------------------------------------------
// tags, comments, immutability

#[test]
fn tags_comment_and_lock_show_and_snapshot_files_are_never_rewritten() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    write_files(&src, &[("f.txt", b"x".to_vec())]);
    let id = sg.backup(&[&src], &["--tag", "orig"]).id;
    let snaps_before = read_files(&sg.repo.join("snapshots"));

    sg.run(["tag", &id[..8], "--add", "a", "--add", "b"])
        .expect_code(0);
    sg.run(["tag", &id[..8], "--remove", "a", "--remove", "orig"])
        .expect_code(0);
    let v = snapshot_view(&sg, &id);
    assert_eq!(v["tags"], serde_json::json!(["b"]), "{v:#}");
    assert_eq!(v["original_tags"], serde_json::json!(["orig"]), "{v:#}");
    assert!(v["comment"].is_null(), "{v:#}");
    assert!(v["locked_until"].is_null(), "{v:#}");
    // The tag filter sees effective tags.
    let tagged = json_ok(&sg, ["snapshots", "--tag", "b"]);
    assert_eq!(tagged.as_array().map(Vec::len), Some(1), "{tagged:#}");
    let orig = json_ok(&sg, ["snapshots", "--tag", "orig"]);
    assert_eq!(orig.as_array().map(Vec::len), Some(0), "{orig:#}");

    sg.run(["annotate", &id[..8], "--comment", "before the upgrade"])
        .expect_code(0);
    assert_eq!(snapshot_view(&sg, &id)["comment"], "before the upgrade");
    let out = sg.run(["snapshots"]);
    assert!(out.stdout_str().contains("before the upgrade"), "{out}");

    sg.run(["lock", &id[..8], "--for", "1d"]).expect_code(0);
    let v = snapshot_view(&sg, &id);
    let until = v["locked_until"].as_str().expect("locked_until set");
    let want = rfc3339_in(86_400);
    // Same day and hour as now + 1 day (allowing for a minute boundary during the test).
    assert_eq!(
        &until[..13],
        &want[..13],
        "locked_until {until}, expected about {want}"
    );

    sg.run(["annotate", &id[..8], "--comment", ""])
        .expect_code(0);
    assert!(snapshot_view(&sg, &id)["comment"].is_null());

    assert_eq!(
        read_files(&sg.repo.join("snapshots")),
        snaps_before,
        "tag/annotate/lock rewrote a snapshot file"
    );
}

#[test]
fn locked_snapshot_cannot_be_forgotten_untagged_or_shortened() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    write_files(&src, &[("f.txt", b"1".to_vec())]);
    let s1 = sg.backup(&[&src], &["--tag", "keep-me"]).id;
    write_files(&src, &[("f.txt", b"2".to_vec())]);
    let s2 = sg.backup(&[&src], &[]).id;
    write_files(&src, &[("f.txt", b"3".to_vec())]);
    let s3 = sg.backup(&[&src], &[]).id;

    let until = "2099-01-01T00:00:00Z";
    sg.run(["lock", s1.as_str(), "--until", until])
        .expect_code(0);
    assert_eq!(snapshot_view(&sg, &s1)["locked_until"], until);

    let out = sg.run(["forget", s1.as_str()]);
    no_panic(&out);
    out.expect_code(19);
    let err = out.stderr_str();
    assert!(
        err.contains("immutable") && err.contains(&s1[..8]) && err.contains("2099"),
        "{out}"
    );
    assert_eq!(snapshot_ids(&sg).len(), 3);
    // Naming an unlocked snapshot too: nothing at all is forgotten.
    let out = sg.run(["forget", s2.as_str(), s1.as_str()]);
    no_panic(&out);
    out.expect_code(19);
    assert_eq!(
        snapshot_ids(&sg).len(),
        3,
        "forget removed part of what it was given"
    );

    let plan = json_ok(&sg, ["forget", "--keep-last", "1", "--dry-run"]);
    let d = plan["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .find(|d| d["id"] == s1.as_str())
        .expect("decision for s1")
        .clone();
    assert_eq!(d["keep"], true, "{d}");
    assert!(
        d["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r == "locked"),
        "{d}"
    );

    let out = sg.run(["tag", s1.as_str(), "--remove", "keep-me"]);
    no_panic(&out);
    out.expect_code(19);
    assert_eq!(
        snapshot_view(&sg, &s1)["tags"],
        serde_json::json!(["keep-me"])
    );
    // Adding a tag is not destructive.
    sg.run(["tag", s1.as_str(), "--add", "more"]).expect_code(0);

    // An earlier end does not shorten the lock; a later one extends it.
    let out = sg.run(["lock", s1.as_str(), "--until", "2098-01-01T00:00:00Z"]);
    no_panic(&out);
    assert!(matches!(out.code, Some(0) | Some(19)), "{out}");
    assert_eq!(snapshot_view(&sg, &s1)["locked_until"], until);
    sg.run(["lock", s1.as_str(), "--until", "2100-01-01T00:00:00Z"])
        .expect_code(0);
    assert_eq!(
        snapshot_view(&sg, &s1)["locked_until"],
        "2100-01-01T00:00:00Z"
    );

    // The policy removes s2 only.
    let res = json_ok(&sg, ["forget", "--keep-last", "1"]);
    assert_eq!(res["removed"], 1, "{res:#}");
    assert_eq!(snapshot_ids(&sg), [s1.clone(), s3.clone()]);
    assert!(!ids_contain(&sg, &s2));
}

fn ids_contain(sg: &Sg, id: &str) -> bool {
    snapshot_ids(sg).iter().any(|i| i == id)
}

#[test]
fn lock_for_one_day_keeps_snapshot_and_its_data_through_forget_prune() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    write_files(&src, &[("data.bin", rnd(41, 1 << 20))]);
    let s1 = sg.backup(&[&src], &[]).id;
    let s1_files = read_files(&src);
    write_files(&src, &[("data.bin", rnd(42, 1 << 20))]);
    let s2 = sg.backup(&[&src], &[]).id;
    sg.run(["lock", s1.as_str(), "--for", "1d"]).expect_code(0);

    let before = repo_state(&sg.repo);
    let out = sg.run(["forget", s1.as_str(), "--prune"]);
    no_panic(&out);
    out.expect_code(19);
    assert_eq!(
        repo_state(&sg.repo),
        before,
        "a refused forget changed something"
    );

    let res = json_ok(
        &sg,
        ["forget", "--keep-last", "1", "--prune", "--max-unused", "0"],
    );
    assert_eq!(res["removed"], 0, "{res:#}");
    sg.run(["prune", "--max-unused", "0"]).expect_code(0);
    assert_eq!(snapshot_ids(&sg), [s1.clone(), s2]);
    sg.run(["check", "--read-data"]).expect_code(0);
    assert_restores(&sg, &s1, &src, &s1_files, &ws.path("r"));
}

// ---------------------------------------------------------------------------
// append-only

/// Asserts that every file of `before` is still there, unchanged.
fn assert_nothing_deleted(before: &Files, repo: &Path, what: &str) {
    let after = repo_state(repo);
    for (p, data) in before {
        assert_eq!(
            after.get(p).map(Vec::len),
            Some(data.len()),
            "{what}: {p:?} was deleted or changed"
        );
        assert!(after[p] == *data, "{what}: {p:?} was rewritten");
    }
}

fn expect_refused(sg: &Sg, args: &[&str], before: &Files) {
    let out = sg.run(args);
    no_panic(&out);
    out.expect_code(19);
    assert!(out.stderr_str().contains("append-only"), "{out}");
    assert_nothing_deleted(before, &sg.repo, &out.cmdline);
}

fn add_second_password(sg: &Sg) -> String {
    let mut cmd = sg.command();
    cmd.env("SNAPGUARD_NEW_PASSWORD", "second-pw");
    let out = crate::support::cmd::run_cmd(
        &mut cmd,
        [
            "--json",
            "key",
            "add",
            "--kdf-memory-kib",
            "8192",
            "--kdf-iterations",
            "1",
        ],
    );
    out.expect_code(0);
    out.json()["id"].as_str().expect("slot id").to_string()
}

fn refuses_every_deletion(sg: &Sg, ws: &Ws, src: &Path) {
    let ids = snapshot_ids(sg);
    assert!(ids.len() >= 2);
    let before = repo_state(&sg.repo);
    let slot = add_second_password(sg);
    let before_keys = repo_state(&sg.repo);
    assert!(before_keys.len() > before.len(), "key add wrote nothing");
    let before = before_keys;
    expect_refused(sg, &["forget", ids[0].as_str()], &before);
    expect_refused(sg, &["forget", "--keep-last", "1"], &before);
    expect_refused(sg, &["forget", "--keep-last", "1", "--prune"], &before);
    expect_refused(sg, &["prune"], &before);
    expect_refused(sg, &["prune", "--max-unused", "0"], &before);
    expect_refused(sg, &["key", "remove", slot.as_str()], &before);
    // key passwd removes the old slot: refused before it adds the new one.
    let mut cmd = sg.command();
    cmd.env("SNAPGUARD_NEW_PASSWORD", "third-pw");
    let out = crate::support::cmd::run_cmd(
        &mut cmd,
        [
            "key",
            "passwd",
            "--kdf-memory-kib",
            "8192",
            "--kdf-iterations",
            "1",
        ],
    );
    no_panic(&out);
    out.expect_code(19);
    assert_eq!(
        repo_state(&sg.repo),
        before,
        "a refused key passwd changed the keys"
    );
    // Previewing is allowed.
    sg.run(["forget", "--keep-last", "1", "--dry-run"])
        .expect_code(0);
    assert_nothing_deleted(&before, &sg.repo, "forget --dry-run");
    assert_eq!(snapshot_ids(sg), ids);
    // Backups still work, and so does reading everything.
    write_files(src, &[("new.bin", rnd(77, 200 << 10))]);
    let files = read_files(src);
    let id = sg.backup(&[src], &[]).id;
    assert_nothing_deleted(&before, &sg.repo, "backup");
    assert_eq!(snapshot_ids(sg).len(), ids.len() + 1);
    sg.run(["check", "--read-data"]).expect_code(0);
    assert_restores(sg, &id, src, &files, &ws.path("r"));
}

#[test]
fn append_only_init_refuses_deletions_and_backups_still_work() {
    let ws = Ws::new();
    let sg = init_at(&ws, "repo", &["--append-only"]);
    let src = ws.path("src");
    write_files(&src, &[("a.bin", rnd(61, 300 << 10))]);
    sg.backup(&[&src], &[]);
    write_files(&src, &[("a.bin", rnd(62, 300 << 10))]);
    sg.backup(&[&src], &[]);
    refuses_every_deletion(&sg, &ws, &src);
}

#[test]
fn append_only_command_switches_an_existing_repository() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut ids = Vec::new();
    for seed in 0..3 {
        write_files(&src, &[("a.bin", rnd(70 + seed, 300 << 10))]);
        ids.push(sg.backup(&[&src], &[]).id);
    }
    // Deleting works before the switch.
    sg.run(["forget", ids[0].as_str(), "--prune"])
        .expect_code(0);
    let out = sg.run(["append-only"]);
    no_panic(&out);
    out.expect_code(0);
    assert!(out.stdout_str().contains("append-only"), "{out}");
    // Idempotent.
    sg.run(["append-only"]).expect_code(0);
    refuses_every_deletion(&sg, &ws, &src);
}

// ---------------------------------------------------------------------------
// check and repair

/// A repository with one snapshot of `src`: `a.bin` (200 KiB random), `b.txt`, `d/c.txt`.
struct Small {
    ws: Ws,
    sg: Sg,
    src: PathBuf,
    id: String,
    files: Files,
}

fn small() -> Small {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    write_files(
        &src,
        &[
            ("a.bin", rnd(81, 200 << 10)),
            ("b.txt", b"bravo\n".to_vec()),
            ("d/c.txt", b"charlie\n".to_vec()),
        ],
    );
    let id = sg.backup(&[&src], &[]).id;
    let files = read_files(&src);
    Small {
        ws,
        sg,
        src,
        id,
        files,
    }
}

fn check_json(sg: &Sg, args: &[&str]) -> (Out, Value) {
    let mut all = vec!["--json", "check"];
    all.extend_from_slice(args);
    let out = sg.run(&all);
    no_panic(&out);
    let v = strict_json(&out);
    (out, v)
}

#[test]
fn check_clean_repository_says_no_errors() {
    let s = small();
    let out = s.sg.run(["check"]);
    no_panic(&out);
    out.expect_code(0);
    assert!(out.stdout_str().contains("no errors"), "{out}");
    let out = s.sg.run(["check", "--read-data"]);
    out.expect_code(0);
    assert!(out.stdout_str().contains("no errors"), "{out}");
    let (out, v) = check_json(&s.sg, &["--read-data"]);
    out.expect_code(0);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["errors"], 0, "{v:#}");
    assert_eq!(v["report"]["packs_read"], v["report"]["packs"], "{v:#}");
}

#[test]
fn check_read_data_names_damaged_pack_snapshot_and_file() {
    let s = small();
    let packs = files_in(&s.sg.repo.join("data"));
    assert_eq!(packs.len(), 1);
    let pack = &packs[0];
    let pack_id = name_of(pack);
    // The largest data blob is a.bin's.
    let blob = pack_blobs(&s.sg, pack)
        .into_iter()
        .filter(|b| b.1 == "data")
        .max_by_key(|b| b.3)
        .expect("a data blob");
    flip_byte(pack, blob.2 + blob.3 / 2);

    let out = s.sg.run(["check"]);
    no_panic(&out);
    assert!(matches!(out.code, Some(0) | Some(14)), "{out}");

    let out = s.sg.run(["check", "--read-data"]);
    no_panic(&out);
    out.expect_code(14);
    let all = out.all_output();
    let file = path_str(&s.src.join("a.bin"));
    assert!(all.contains(&pack_id[..16]), "pack id not named\n{out}");
    assert!(all.contains(&blob.0[..16]), "blob id not named\n{out}");
    let user = all
        .lines()
        .find(|l| l.contains(&file))
        .unwrap_or_else(|| panic!("the file using the blob is not named\n{out}"));
    assert!(
        user.contains(&s.id[..8]),
        "snapshot not named with the file\n{out}"
    );
    assert!(
        !all.contains(&path_str(&s.src.join("b.txt"))),
        "an intact file is blamed\n{out}"
    );
    let (_, v) = check_json(&s.sg, &["--read-data"]);
    assert_eq!(v["ok"], false, "{v:#}");
    assert!(v["errors"].as_u64().expect("errors") >= 2, "{v:#}");
}

#[test]
fn check_read_data_subsets_cover_every_pack_and_since_uses_the_ledger() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    for seed in 0..6 {
        write_files(&src, &[("x.bin", rnd(90 + seed, 64 << 10))]);
        sg.backup(&[&src], &[]);
    }
    let packs = files_in(&sg.repo.join("data")).len() as u64;
    assert!(packs >= 6, "{packs} packs");

    // --read-data-since first, with an empty ledger.
    let (out, v) = check_json(&sg, &["--read-data-since", "1d"]);
    out.expect_code(0);
    assert_eq!(v["report"]["packs"], packs, "{v:#}");
    assert_eq!(
        v["report"]["packs_read"], packs,
        "first run reads all\n{v:#}"
    );
    let ledger: Vec<PathBuf> = files_in(&sg.cache)
        .into_iter()
        .filter(|p| name_of(p) == "verified-packs")
        .collect();
    assert_eq!(ledger.len(), 1, "no ledger in {:?}", sg.cache);
    let (out, v) = check_json(&sg, &["--read-data-since", "1d"]);
    out.expect_code(0);
    assert_eq!(
        v["report"]["packs_read"], 0,
        "second run re-read packs\n{v:#}"
    );
    // A new pack is read by the next run, the old ones are not.
    write_files(&src, &[("x.bin", rnd(99, 64 << 10))]);
    sg.backup(&[&src], &[]);
    let (out, v) = check_json(&sg, &["--read-data-since", "1d"]);
    out.expect_code(0);
    assert_eq!(v["report"]["packs_read"], 1, "{v:#}");
    let packs = packs + 1;

    for m in [2u64, 3] {
        let mut sum = 0;
        for n in 1..=m {
            let subset = format!("{n}/{m}");
            let (out, v) = check_json(&sg, &["--read-data-subset", &subset]);
            out.expect_code(0);
            assert_eq!(v["report"]["packs"], packs, "{v:#}");
            sum += v["report"]["packs_read"].as_u64().expect("packs_read");
        }
        assert_eq!(sum, packs, "slices 1..{m}/{m} do not read every pack once");
    }
    let (out, v) = check_json(&sg, &["--read-data-subset", "100%"]);
    out.expect_code(0);
    assert_eq!(v["report"]["packs_read"], packs, "{v:#}");
    let (out, v) = check_json(&sg, &["--read-data"]);
    out.expect_code(0);
    assert_eq!(v["report"]["packs_read"], packs, "{v:#}");
}

#[test]
fn damaged_index_file_is_named_and_repair_index_fixes_it() {
    let s = small();
    let index = files_in(&s.sg.repo.join("index"));
    assert_eq!(index.len(), 1);
    let name = name_of(&index[0]);
    flip_byte(&index[0], 60);
    let out = s.sg.run(["check"]);
    no_panic(&out);
    out.expect_code(14);
    assert!(
        out.all_output().contains(&name[..16]),
        "the damaged index file is not named\n{out}"
    );
    let out = s.sg.run(["repair", "index"]);
    no_panic(&out);
    out.expect_code(0);
    assert!(!index[0].exists(), "the damaged index file is still there");
    let out = s.sg.run(["check", "--read-data"]);
    out.expect_code(0);
    assert!(out.stdout_str().contains("no errors"), "{out}");
    assert_restores(&s.sg, &s.id, &s.src, &s.files, &s.ws.path("r"));
}

/// A repository whose largest pack holds only data of `a_big.bin`; returns it with that pack
/// deleted.
fn with_deleted_data_pack() -> (Small, String) {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    write_files(
        &src,
        &[
            ("a_big.bin", rnd(51, 20 << 20)),
            ("b.txt", b"bravo\n".to_vec()),
            ("d/c.txt", b"charlie\n".to_vec()),
        ],
    );
    let id = sg.backup(&[&src], &[]).id;
    let files = read_files(&src);
    let pack = files_in(&sg.repo.join("data"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).expect("stat").len())
        .expect("a pack");
    let blobs = pack_blobs(&sg, &pack);
    assert!(
        blobs.iter().all(|b| b.1 == "data"),
        "the largest pack should hold only file data: {blobs:?}"
    );
    let name = name_of(&pack);
    fs::remove_file(&pack).expect("rm pack");
    let out = sg.run(["check"]);
    no_panic(&out);
    out.expect_code(14);
    assert!(out.all_output().contains(&name[..16]), "{out}");
    (
        Small {
            ws,
            sg,
            src,
            id,
            files,
        },
        name,
    )
}

/// Checks the repaired snapshot written for `s.id` (tag, comment, restore without a_big.bin).
fn assert_repaired(s: &Small) {
    let list = snapshot_list(&s.sg);
    assert_eq!(list.len(), 2, "original and repaired snapshot: {list:#?}");
    assert!(
        list.iter().any(|v| v["id"] == s.id.as_str()),
        "original is gone"
    );
    let rep = list
        .iter()
        .find(|v| v["id"] != s.id.as_str())
        .expect("repaired snapshot");
    let big = path_str(&s.src.join("a_big.bin"));
    assert!(
        rep["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .any(|t| t == "repaired"),
        "{rep:#}"
    );
    let comment = rep["comment"].as_str().unwrap_or_default();
    assert!(
        comment.contains(&big),
        "comment does not list the lost file: {rep:#}"
    );
    let rid = rep["id"].as_str().expect("id");
    let mut want = s.files.clone();
    want.remove(Path::new("a_big.bin"));
    assert_restores(&s.sg, rid, &s.src, &want, &s.ws.path("r"));
    // The original cannot be restored completely (its data is gone).
    let out = s.sg.restore(&s.id, &s.ws.path("orig"), &[]);
    no_panic(&out);
    assert_ne!(out.code, Some(0), "{out}");
}

#[test]
fn deleted_pack_repair_index_then_repair_snapshots_saves_the_rest() {
    let (s, _) = with_deleted_data_pack();
    s.sg.run(["repair", "index"]).expect_code(0);
    let dry = json_ok(&s.sg, ["repair", "snapshots", "--dry-run"]);
    assert_eq!(
        dry["snapshots"].as_array().map(Vec::len),
        Some(1),
        "{dry:#}"
    );
    assert_eq!(
        snapshot_ids(&s.sg),
        std::slice::from_ref(&s.id),
        "dry run wrote a snapshot"
    );
    let out = s.sg.run(["repair", "snapshots"]);
    no_panic(&out);
    out.expect_code(0);
    assert!(out.stdout_str().contains("a_big.bin"), "{out}");
    assert_repaired(&s);
}

/// `repair snapshots` right after a pack went missing (no `repair index` first) must not claim
/// that nothing is missing: it should save what is left, or at least say to rebuild the index.
#[test]
fn repair_snapshots_notices_a_deleted_pack_without_repair_index() {
    let (s, pack) = with_deleted_data_pack();
    let out = s.sg.run(["repair", "snapshots"]);
    no_panic(&out);
    let ids = snapshot_ids(&s.sg);
    if ids.len() == 2 {
        assert_repaired(&s);
        return;
    }
    let all = out.all_output();
    assert!(
        all.contains("repair index") || all.contains(&pack[..16]),
        "pack {} is missing (check says so) but 'repair snapshots' neither repairs the snapshot \
         that uses it nor says to run 'snapguard repair index' first\n{out}",
        &pack[..16]
    );
}

#[test]
fn damaged_tree_blob_is_named_by_snapshot_and_path() {
    let s = small();
    let dir = s.src.join("d");
    let tree = subtree_of(&s.sg, &s.id, &dir);
    let (pack, blob) = files_in(&s.sg.repo.join("data"))
        .into_iter()
        .find_map(|p| {
            let b = pack_blobs(&s.sg, &p).into_iter().find(|b| b.0 == tree)?;
            Some((p, b))
        })
        .unwrap_or_else(|| panic!("tree {tree} is in no pack"));
    assert_eq!(blob.1, "tree");
    flip_byte(&pack, blob.2 + blob.3 / 2);
    let out = s.sg.run(["check"]);
    no_panic(&out);
    out.expect_code(14);
    let all = out.all_output();
    let want = path_str(&dir);
    let line = all
        .lines()
        .find(|l| l.contains(&s.id[..8]) && l.contains(&want))
        .unwrap_or_else(|| panic!("no finding names snapshot {} and {want}\n{out}", &s.id[..8]));
    assert!(line.starts_with("error"), "{line}");
    let out = s.sg.run(["check", "--read-data"]);
    out.expect_code(14);
    assert!(out.all_output().contains(&name_of(&pack)[..16]), "{out}");
}

#[test]
fn leftover_pack_note_says_prune_removes_it_and_prune_does() {
    let s = small();
    let pack = files_in(&s.sg.repo.join("data")).pop().expect("a pack");
    // A complete pack file that no index lists, as an interrupted backup leaves behind.
    let stray = "ff".repeat(32);
    let dir = s.sg.repo.join("data/ff");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::copy(&pack, dir.join(&stray)).expect("copy pack");
    let out = s.sg.run(["check"]);
    no_panic(&out);
    out.expect_code(0);
    let note = out
        .stderr_str()
        .lines()
        .find(|l| l.contains(&stray))
        .unwrap_or_else(|| panic!("the stray pack is not mentioned\n{out}"))
        .to_string();
    assert!(note.starts_with("note"), "{note}");
    // No other process holds a lock: check's own lock must not make it say "a running backup".
    assert!(
        note.contains("snapguard prune") && !note.contains("running backup"),
        "with no other lock held, the note should point to 'snapguard prune': {note}"
    );
    let plan = json_ok(&s.sg, ["prune", "--dry-run"]);
    assert!(
        plan["plan"]["packs"]
            .as_array()
            .expect("packs")
            .iter()
            .any(|p| p["pack"] == stray.as_str() && p["action"] == "delete-unreferenced"),
        "{plan:#}"
    );
    s.sg.run(["prune"]).expect_code(0);
    assert!(!dir.join(&stray).exists());
    let out = s.sg.run(["check", "--read-data"]);
    out.expect_code(0);
    assert!(!out.all_output().contains("note"), "{out}");
}

/// Bad values for maintenance options are usage errors (exit 2, like clap's own and like
/// `--read-data-subset 0/2`) that quote the value, and change nothing.
#[test]
fn invalid_maintenance_arguments_exit_2_and_change_nothing() {
    let s = small();
    let before = repo_state(&s.sg.repo);
    let cases: &[(&[&str], &str)] = &[
        (&["check", "--read-data-subset", "0/2"], "0/2"),
        (&["check", "--read-data-subset", "x"], "x"),
        (&["check", "--read-data-subset", "150%"], "150"),
        (&["check", "--read-data-since", "5min"], "5min"),
        (&["prune", "--max-unused", "150"], "max-unused"),
        (&["prune", "--max-repack-size", "5Q"], "5Q"),
        (&["forget", "--keep-within", "5min"], "5min"),
        (
            &["forget", "--keep-last", "1", "--group-by", "bogus"],
            "bogus",
        ),
        (&["lock", "latest", "--for", "5min"], "5min"),
        (&["lock", "latest", "--until", "yesterday"], "yesterday"),
    ];
    let mut failures = Vec::new();
    for (args, quoted) in cases {
        let out = s.sg.run(*args);
        no_panic(&out);
        if out.code != Some(2) || !out.stderr_str().contains(quoted) {
            failures.push(format!("want exit 2 quoting {quoted:?}\n{out}"));
        }
    }
    assert_eq!(repo_state(&s.sg.repo), before);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------
// repository locks

#[test]
fn live_lock_blocks_prune_and_unlock_removes_only_stale_locks() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    random_tree(&src, 5, 4, 16 << 20);
    let limit = Duration::from_secs(30);

    // A backup killed while it holds its lock leaves a stale lock.
    let mut dead = Bg::spawn(&sg, &[os("backup"), src.as_os_str()]);
    let stale = wait_for_new_lock(&sg.repo, &mut dead, &[], limit)
        .unwrap_or_else(|| panic!("backup ended before it was seen holding a lock"));
    let dead_pid = dead.pid();
    assert!(dead.kill_now().is_none(), "backup finished before the kill");
    assert_eq!(lock_files(&sg.repo), std::slice::from_ref(&stale));

    // A live backup, stopped while it holds its lock.
    random_tree(&src, 6, 4, 16 << 20);
    let mut live = Bg::spawn(&sg, &[os("backup"), src.as_os_str()]);
    let held = wait_for_new_lock(&sg.repo, &mut live, std::slice::from_ref(&stale), limit)
        .unwrap_or_else(|| panic!("backup ended before it was seen holding a lock"));
    live.signal(rustix::process::Signal::STOP);
    assert!(
        live.running() && lock_files(&sg.repo).contains(&held),
        "the live backup finished before it could be stopped"
    );

    let out = sg.run(["prune"]);
    no_panic(&out);
    out.expect_code(11);
    let err = out.stderr_str();
    assert!(
        err.contains(&hostname()) && err.contains(&format!("pid {}", live.pid())),
        "the message does not name the live holder's host and pid\n{out}"
    );
    assert!(err.contains("snapguard unlock"), "{out}");
    assert!(
        !err.contains(&format!("pid {dead_pid}")),
        "blames the stale lock\n{out}"
    );

    let res = json_ok(&sg, ["unlock"]);
    let removed = res.as_array().expect("array");
    assert_eq!(removed.len(), 1, "{res:#}");
    assert_eq!(removed[0]["pid"], dead_pid, "{res:#}");
    assert_eq!(removed[0]["stale"], true, "{res:#}");
    assert_eq!(lock_files(&sg.repo), [held], "the live lock was removed");

    live.signal(rustix::process::Signal::CONT);
    let out = live.finish();
    no_panic(&out);
    out.expect_code(0);
    assert!(lock_files(&sg.repo).is_empty(), "backup left its lock");
    sg.run(["prune"]).expect_code(0);
    sg.run(["check", "--read-data"]).expect_code(0);
    let ids = snapshot_ids(&sg);
    assert_eq!(ids.len(), 1);
    assert_restores(&sg, &ids[0], &src, &read_files(&src), &ws.path("r"));
}
