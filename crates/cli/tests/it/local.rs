//! `snapguard local …` (docs/local.md) through the binary, on a real btrfs filesystem (a loop
//! device per test, unmounted and detached even when a test fails; skipped with a reason
//! without root or btrfs-progs, never skipped in CI).
//!
//! What is proven: snapshots are numbered, listed, compared with Snapper's flags (also against
//! the live subvolume), undone and deleted; cleanup applies a retention table with timeline and
//! number snapshots and protects what it must; the apt hook, run by a stand-in `apt` exactly as
//! apt runs it, takes a described pre/post pair; rollback swaps a subvolume in place keeping
//! `.snapshots` and nested subvolumes, or makes a writable copy the default subvolume (seen by
//! a fresh mount); a mounted snapshot is never deleted; `kill -9` at any point of a create
//! never shows a half-made snapshot and never reuses a number; a local snapshot is backed up as
//! the subvolume's path; errors name the config, number and path with the right exit code;
//! with less free space than `free_limit`, cleanup deletes (reason free-space) one snapshot per
//! measurement until the limit holds or nothing deletable is left.

// Test code: a panic with the failing value is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use snapguard_btrfs::testing::{try_new, LoopFs};

use crate::errors::expect_err;
use crate::support::cmd::{bin, empty_config, Out, Sg, Ws};

/// A scratch btrfs filesystem with a subvolume `data`, and a binary runner whose config file
/// has `[local.data]` for it. Shared by the `local`, `live` and `send` tests.
pub(crate) struct Env {
    pub(crate) lfs: LoopFs,
    pub(crate) ws: Ws,
    pub(crate) sg: Sg,
    pub(crate) data: PathBuf,
}

impl Env {
    /// A 512 MiB filesystem whose subvolume holds the file `f`; `extra` TOML in the config.
    fn new(extra: &str) -> Option<Env> {
        let env = Env::with(512, extra, Vec::new())?;
        fs::write(env.data.join("f"), b"one").expect("write");
        Some(env)
    }

    /// A filesystem of `size_mib` MiB with an empty subvolume `data`, `extra` TOML in the
    /// config file, and `vars` in the environment of every run.
    pub(crate) fn with(size_mib: u64, extra: &str, vars: Vec<(OsString, OsString)>) -> Option<Env> {
        let lfs = try_new(size_mib)?;
        let ws = Ws::new();
        let data = lfs.mnt().join("data");
        snapguard_btrfs::create_subvolume(&data).expect("create subvolume");
        let sg = Sg {
            bin: bin(),
            repo: ws.path("repo"),
            cache: ws.path("cache"),
            config: empty_config(&ws),
            wrapper: Vec::new(),
            extra_env: vars,
        };
        let env = Env { lfs, ws, sg, data };
        env.write_config(extra);
        Some(env)
    }

    pub(crate) fn write_config(&self, extra: &str) {
        let text = format!("[local.data]\nsubvolume = \"{}\"\n{extra}", s(&self.data));
        fs::write(&self.sg.config, text).expect("write config");
    }

    pub(crate) fn run(&self, args: &[&str]) -> Out {
        self.sg.run(args)
    }

    /// `run`, expecting success.
    pub(crate) fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        out.expect_code(0);
        out
    }

    /// `local create data ARGS`, expecting success; the printed number.
    pub(crate) fn create(&self, args: &[&str]) -> u32 {
        let mut a = vec!["local", "create", "data"];
        a.extend(args);
        let out = self.ok(&a);
        out.stdout_str()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("create did not print a number\n{out}"))
    }

    /// `local list data --json`: the snapshots.
    pub(crate) fn list(&self) -> Vec<Value> {
        let out = self.ok(&["--json", "local", "list", "data"]);
        out.json()["snapshots"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no snapshots array\n{out}"))
    }

    pub(crate) fn numbers(&self) -> Vec<u64> {
        self.list()
            .iter()
            .map(|v| v["number"].as_u64().expect("number"))
            .collect()
    }

    pub(crate) fn snapshot_path(&self, n: u32) -> PathBuf {
        self.data.join(format!(".snapshots/{n}/snapshot"))
    }
}

/// The mount points at or below `dir`.
pub(crate) fn mounts_below(dir: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(str::to_string)
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub(crate) fn btrfs(args: &[&str]) -> String {
    let out = Command::new("btrfs")
        .args(args)
        .output()
        .expect("run btrfs");
    assert!(
        out.status.success(),
        "btrfs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mount(args: &[&str], at: &Path) {
    let ok = Command::new("mount")
        .args(args)
        .arg(at)
        .status()
        .expect("mount")
        .success();
    assert!(ok, "mount {args:?} {at:?}");
}

/// Unmounts on drop, so that a failing assertion never leaves a mount behind (which would keep
/// the loop device busy).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty()).expect("setxattr");
}

#[test]
fn create_list_diff_undo_delete() {
    let Some(env) = Env::new("") else { return };
    let d = &env.data;
    fs::write(d.join("gone"), b"bye").unwrap();
    fs::write(d.join("mode"), b"m").unwrap();
    fs::write(d.join("attr"), b"a").unwrap();
    fs::create_dir(d.join("dir")).unwrap();
    fs::write(d.join("dir/inner"), b"inner").unwrap();

    let n1 = env.create(&[
        "--description",
        "before the change",
        "--tag",
        "manual",
        "--userdata",
        "reason=test",
        "--cleanup",
        "number",
    ]);
    assert_eq!(n1, 1);
    fs::write(d.join("f"), b"two").unwrap();
    fs::remove_file(d.join("gone")).unwrap();
    fs::write(d.join("new"), b"new").unwrap();
    fs::set_permissions(d.join("mode"), fs::Permissions::from_mode(0o600)).unwrap();
    set_xattr(&d.join("attr"), "user.k", b"v");
    fs::write(d.join("dir/inner"), b"changed").unwrap();
    let n2 = env.create(&["-d", "after"]);
    assert_eq!(n2, 2);
    // A change after the last snapshot, only visible against the live subvolume (0).
    fs::write(d.join("later"), b"later").unwrap();

    let list = env.list();
    assert_eq!(list.len(), 2);
    let first = &list[0];
    assert_eq!(first["number"], 1);
    assert_eq!(first["type"], "single");
    assert_eq!(first["description"], "before the change");
    assert_eq!(first["tags"], serde_json::json!(["manual"]));
    assert_eq!(first["cleanup"], "number");
    assert_eq!(first["userdata"]["reason"], "test");
    assert_eq!(first["path"], s(&env.snapshot_path(1)));
    let time = first["time"].as_str().unwrap();
    assert!(
        time.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{time}"
    );
    assert_eq!(first["mounted_at"], serde_json::json!([]));
    assert_eq!(first["default"], false);
    assert_eq!(first["live"], false);
    assert_eq!(first["exclusive_bytes"], Value::Null, "no quotas");

    let text = env.run(&["local", "list", "data"]);
    text.expect_code(0);
    let t = text.stdout_str();
    assert!(
        t.contains("before the change") && t.contains("| single |"),
        "{t}"
    );
    assert!(t.contains("2 snapshot(s)"), "{t}");
    // Human times are local: the table shows no RFC 3339 'T'.
    assert!(!t.contains(&time[..19]), "{t}");

    let diff = env.run(&["local", "diff", "data", "1", "2"]);
    diff.expect_code(0);
    let lines: Vec<String> = diff.stdout_str().lines().map(str::to_string).collect();
    let at = |rel: &str| format!("{}", d.join(rel).display());
    let expected = vec![
        format!("....x. {}", at("attr")),
        format!("c..... {}", at("dir/inner")),
        format!("c..... {}", at("f")),
        format!("-..... {}", at("gone")),
        format!(".p.... {}", at("mode")),
        format!("+..... {}", at("new")),
    ];
    assert_eq!(lines, expected, "\n{diff}");

    // Against the live subvolume: the later file too, and never the snapshot directory.
    let live = env.run(&["local", "diff", "data", "2", "0"]);
    live.expect_code(0);
    assert_eq!(
        live.stdout_str().trim(),
        format!("+..... {}", at("later")),
        "{live}"
    );
    assert!(!env
        .run(&["local", "diff", "data", "1", "0"])
        .stdout_str()
        .contains(".snapshots"));

    // Paths: absolute in the live subvolume or relative to it.
    let only = env.run(&["local", "diff", "data", "1", "2", s(&d.join("dir"))]);
    assert_eq!(
        only.stdout_str().trim(),
        format!("c..... {}", at("dir/inner"))
    );
    let rel = env.run(&["--json", "local", "diff", "data", "1", "2", "gone"]);
    let j = rel.json();
    assert_eq!(j[0]["path"], "gone");
    assert_eq!(j[0]["status"], "-.....");
    assert_eq!(j[0]["live_path"], at("gone"));
    assert_eq!(j[0]["flags"]["deleted"], true);

    // Undo 1..0: the live subvolume as it was in snapshot 1, except the snapshot directory.
    let undo = env.run(&["local", "undo", "data", "1", "0"]);
    undo.expect_code(0);
    assert_eq!(fs::read(d.join("f")).unwrap(), b"one");
    assert_eq!(fs::read(d.join("gone")).unwrap(), b"bye");
    assert!(!d.join("new").exists() && !d.join("later").exists());
    assert_eq!(
        fs::metadata(d.join("mode")).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(fs::read(d.join("dir/inner")).unwrap(), b"inner");
    assert!(rustix::fs::lgetxattr(d.join("attr"), "user.k", &mut [0u8; 16]).is_err());
    assert_eq!(
        fs::metadata(d.join(".snapshots"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o750,
        "the snapshot directory is left alone"
    );
    assert_eq!(env.numbers(), vec![1, 2]);
    let none = env.run(&["local", "diff", "data", "1", "0"]);
    assert_eq!(none.stdout_str().trim(), "", "{none}");

    // Undo of selected paths only (2..0 would bring back 'new' and the changed f).
    let partial = env.run(&["--json", "local", "undo", "data", "2", "0", "new"]);
    partial.expect_code(0);
    assert_eq!(fs::read(d.join("new")).unwrap(), b"new");
    assert_eq!(fs::read(d.join("f")).unwrap(), b"one", "not selected");
    assert_eq!(partial.json()["created"][0]["path"], "new");

    // Delete by number and range.
    let n3 = env.create(&[]);
    let del = env.run(&["local", "delete", "data", "1", "2-3"]);
    del.expect_code(0);
    assert!(del
        .stdout_str()
        .contains(&format!("deleted snapshot {n3} of data")));
    assert!(env.numbers().is_empty());
    assert!(!d.join(".snapshots/1").exists());
    let gone = env.run(&["local", "delete", "data", "1"]);
    expect_err(&gone, 15, &["config data", "no snapshot 1", ".snapshots"]);
    // Numbers are never reused.
    assert_eq!(env.create(&[]), 4);

    // --json of create (single, pre, post) and delete.
    let create_json = |args: &[&str]| -> Value {
        let mut a = vec!["--json", "local", "create", "data"];
        a.extend(args);
        let out = env.run(&a);
        out.expect_code(0);
        let j = out.json();
        assert_eq!(j["config"], "data", "{out}");
        j["snapshot"].clone()
    };
    let data_uuid = snapguard_btrfs::subvolume_info(d).unwrap().uuid.to_string();
    let single = create_json(&["-d", "as json", "--tag", "t1", "--cleanup", "number"]);
    assert_eq!(single["number"], 5, "{single}");
    assert_eq!(single["type"], "single");
    assert_eq!(single["pre_number"], Value::Null);
    assert_eq!(single["description"], "as json");
    assert_eq!(single["tags"], serde_json::json!(["t1"]));
    assert_eq!(single["cleanup"], "number");
    assert_eq!(single["writable"], false);
    assert_eq!(single["source_uuid"], data_uuid.as_str());
    assert_eq!(single["path"], s(&env.snapshot_path(5)));
    assert_eq!(
        single["uuid"],
        snapguard_btrfs::subvolume_info(&env.snapshot_path(5))
            .unwrap()
            .uuid
            .to_string()
    );
    assert!(snapguard_btrfs::is_readonly(&env.snapshot_path(5)).unwrap());
    let listed = env.list();
    assert_eq!(listed.last().unwrap()["uuid"], single["uuid"]);
    assert_eq!(listed.last().unwrap()["time"], single["time"]);
    let pre = create_json(&["--pre", "-d", "change"]);
    assert_eq!(
        (pre["number"].clone(), pre["type"].clone()),
        (6.into(), "pre".into())
    );
    let post = create_json(&["--post", "6", "-d", "change"]);
    assert_eq!(post["number"], 7);
    assert_eq!(post["type"], "post");
    assert_eq!(post["pre_number"], 6);
    let del = env.run(&["--json", "local", "delete", "data", "4-5", "6", "7"]);
    del.expect_code(0);
    assert_eq!(
        del.json(),
        serde_json::json!({"config": "data", "deleted": [4, 5, 6, 7]}),
        "{del}"
    );
    assert!(env.numbers().is_empty());
    assert!(!d.join(".snapshots/5").exists());
}

/// Timeline and number snapshots with controlled times (the hidden `--time`), a retention
/// table, the dry run, and the snapshots kept by protection and pairing.
#[test]
fn cleanup_applies_a_retention_table() {
    let retention = "[local.data.retention]\nhourly = 2\ndaily = 2\nweekly = 0\nmonthly = 0\n\
                     quarterly = 0\nyearly = 0\nmin_age = 0\nnumber_limit = 2\nnumber_min_age = 0\n\
                     free_limit = 0\nspace_limit = 1\n";
    let Some(env) = Env::new(retention) else {
        return;
    };
    // (time, cleanup, extra args, kept?) in creation order; snapshot numbers are 1, 2, ...
    let table: &[(&str, &str, &[&str], bool)] = &[
        ("2024-03-07T08:00:00Z", "timeline", &[], false),
        ("2024-03-08T08:00:00Z", "timeline", &[], false),
        (
            "2024-03-08T09:00:00Z",
            "timeline",
            &["--userdata", "important=yes"],
            true,
        ),
        ("2024-03-09T08:00:00Z", "timeline", &[], true), // daily: first of 03-09
        ("2024-03-10T10:05:00Z", "timeline", &[], true), // daily: first of 03-10
        ("2024-03-10T10:40:00Z", "timeline", &[], false),
        ("2024-03-10T11:05:00Z", "timeline", &[], true), // hourly: first of 11h
        ("2024-03-10T12:05:00Z", "timeline", &[], true), // hourly: first of 12h
        ("2024-03-10T12:30:00Z", "timeline", &[], false),
        ("2024-03-01T00:00:00Z", "number", &[], false),
        ("2024-03-02T00:00:00Z", "number", &[], true), // one of the 2 newest number snapshots
        ("2024-03-03T00:00:00Z", "number", &[], true),
        ("2024-01-01T00:00:00Z", "none", &[], true), // cleanup none: never deleted
    ];
    for (time, cleanup, extra, _) in table {
        let mut args = vec!["--time", time, "--cleanup", cleanup];
        args.extend(extra.iter());
        env.create(&args);
    }
    let expected: Vec<u64> = (1..=table.len() as u64)
        .filter(|n| table[*n as usize - 1].3)
        .collect();

    let dry = env.run(&["--json", "local", "cleanup", "data", "--dry-run"]);
    dry.expect_code(0);
    let plan = &dry.json()["plan"];
    let mut planned: Vec<(u64, String)> = plan["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["number"].as_u64().unwrap(),
                d["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    planned.sort();
    assert_eq!(
        planned,
        vec![
            (1, "timeline".into()),
            (2, "timeline".into()),
            (6, "timeline".into()),
            (9, "timeline".into()),
            (10, "number".into()),
        ],
        "{dry}"
    );
    let kept3 = plan["keep"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["number"] == 3)
        .unwrap();
    assert_eq!(kept3["reasons"], serde_json::json!(["protected"]));
    assert_eq!(
        env.numbers().len(),
        table.len(),
        "a dry run deletes nothing"
    );
    let text = env.run(&["local", "cleanup", "data", "-n"]);
    assert!(
        text.stdout_str().contains("would delete 10 (number)"),
        "{text}"
    );
    assert!(text.stdout_str().contains("keep 7 (hourly)"), "{text}");

    let run = env.run(&["local", "cleanup", "data"]);
    run.expect_code(0);
    assert!(
        run.stdout_str().contains("deleted snapshot 9 (timeline)"),
        "{run}"
    );
    assert_eq!(env.numbers(), expected);
    // A second run finds nothing more to do.
    let again = env.run(&["--json", "local", "cleanup"]);
    again.expect_code(0);
    assert_eq!(again.json()[0]["deleted"], serde_json::json!([]));
    assert_eq!(env.numbers(), expected);
}

/// The installed 80snapguard commands, run by a stand-in for apt exactly as apt runs them
/// (`sh -c COMMAND` before and after dpkg), take a pre/post pair described by the command line.
#[test]
fn apt_hook_takes_pre_post_pairs() {
    let Some(env) = Env::new("") else { return };
    let dir = env.ws.path("apt.conf.d");
    let hook = env.ws.path("lib/snapguard-apt-hook");
    let none = env.run(&["local", "install-apt-hook", "--dir", s(&dir)]);
    expect_err(&none, 2, &["subvolume = \"/\"", "--config-name"]);
    let out = env.run(&[
        "--json",
        "local",
        "install-apt-hook",
        "--dir",
        s(&dir),
        "--hook-path",
        s(&hook),
        "--config-name",
        "data",
    ]);
    out.expect_code(0);
    // The JSON names the files written (used below as installed).
    assert_eq!(
        out.json(),
        serde_json::json!({
            "apt_conf": s(&dir.join("80snapguard")),
            "hook": s(&hook),
            "configs": ["data"],
        }),
        "{out}"
    );
    let conf = fs::read_to_string(dir.join("80snapguard")).unwrap();
    let command = |key: &str| -> String {
        let line = conf
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in\n{conf}"));
        let start = line.find('"').unwrap() + 1;
        let end = line.rfind('"').unwrap();
        line[start..end].to_string()
    };
    let (pre, post) = (command("DPkg::Pre-Invoke"), command("DPkg::Post-Invoke"));
    assert!(fs::metadata(&hook).unwrap().permissions().mode() & 0o111 != 0);

    // The stand-in: named apt, so the hook finds it among its ancestors.
    let apt = env.ws.path("bin/apt");
    fs::create_dir_all(apt.parent().unwrap()).unwrap();
    fs::write(
        &apt,
        "#!/bin/sh\nsh -c \"$SG_PRE\" || exit 1\necho installed > \"$SG_DATA/pkg\"\nsh -c \"$SG_POST\" || exit 1\n",
    )
    .unwrap();
    fs::set_permissions(&apt, fs::Permissions::from_mode(0o755)).unwrap();
    let state = env.ws.path("state");
    let run_apt = |pre: &str, post: &str| {
        let o = Command::new(&apt)
            .args(["install", "foo", "bar"])
            .env("SG_PRE", pre)
            .env("SG_POST", post)
            .env("SG_DATA", &env.data)
            .env("SNAPGUARD_APT_STATE_DIR", &state)
            .env_remove("SNAPGUARD_CONFIG")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, stderr) = run_apt(&pre, &post);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let list = env.list();
    assert_eq!(list.len(), 2, "{list:?}");
    let (p, q) = (&list[0], &list[1]);
    assert_eq!(p["type"], "pre");
    assert_eq!(q["type"], "post");
    assert_eq!(q["pre_number"], p["number"]);
    for s in [p, q] {
        assert_eq!(s["description"], "apt install foo bar");
        assert_eq!(s["cleanup"], "number");
        assert_eq!(s["tags"], serde_json::json!(["apt"]));
    }
    assert!(
        !state.join("apt-pre-data").exists(),
        "the post consumed the pre number"
    );
    let diff = env.run(&["local", "diff", "data", "1", "2"]);
    assert_eq!(
        diff.stdout_str().trim(),
        format!("+..... {}", env.data.join("pkg").display())
    );
    // The pair is deleted together or not at all.
    let split = env.run(&["local", "delete", "data", "1"]);
    expect_err(&split, 19, &["pair 1 (pre) and 2 (post)", "'1 2'"]);

    // A broken setup never stops apt: the hook warns and apt goes on.
    fs::write(
        &env.sg.config,
        format!(
            "[local.data]\nsubvolume = \"{}\"\n",
            s(&env.ws.path("nowhere"))
        ),
    )
    .unwrap();
    let (code, stderr) = run_apt(&pre, &post);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("snapguard-apt-hook: warning: config data: the pre snapshot failed"),
        "{stderr}"
    );
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(stderr.contains("no pre snapshot was recorded"), "{stderr}");
}

/// In-place rollback of a subvolume that holds its `.snapshots` and a nested subvolume.
#[test]
fn rollback_of_a_subvolume_in_place() {
    let Some(env) = Env::new("") else { return };
    let d = &env.data;
    fs::create_dir(d.join("etc")).unwrap();
    fs::write(d.join("etc/conf"), b"good").unwrap();
    let n1 = env.create(&["-d", "good state"]);
    fs::write(d.join("etc/conf"), b"broken").unwrap();
    fs::write(d.join("junk"), b"junk").unwrap();
    btrfs(&["subvolume", "create", s(&d.join("nested"))]);
    fs::write(d.join("nested/keep"), b"kept").unwrap();

    let out = env.run(&["--json", "local", "rollback", "data", &n1.to_string()]);
    out.expect_code(0);
    let j = out.json();
    assert_eq!(j["mode"], "in-place");
    assert_eq!(j["restored"], n1);
    let safety = j["safety"]["number"].as_u64().unwrap();
    assert_eq!(fs::read(d.join("etc/conf")).unwrap(), b"good");
    assert!(!d.join("junk").exists());
    assert_eq!(
        fs::read(d.join("nested/keep")).unwrap(),
        b"kept",
        "nested subvolume kept"
    );

    let list = env.list();
    assert_eq!(
        env.numbers(),
        vec![n1 as u64, safety],
        "every snapshot is still there"
    );
    let sv = &list[1];
    assert_eq!(
        sv["description"],
        format!("rollback safety before restoring {n1}")
    );
    assert_eq!(sv["userdata"]["important"], "yes");
    let safety_path = PathBuf::from(sv["path"].as_str().unwrap());
    assert_eq!(fs::read(safety_path.join("etc/conf")).unwrap(), b"broken");
    assert!(snapguard_btrfs::is_subvolume(&d.join(".snapshots")).unwrap());
    // The restored subvolume is writable and snapshots go on from there.
    fs::write(d.join("after"), b"x").unwrap();
    assert_eq!(env.create(&[]) as u64, safety + 1);
    // The safety snapshot is important: only deleted with --force.
    let e = env.run(&["local", "delete", "data", &safety.to_string()]);
    expect_err(&e, 19, &["important", "--force"]);
    env.run(&["local", "delete", "data", "--force", &safety.to_string()])
        .expect_code(0);

    // Mounted with subvol=: refused, nothing changed.
    let at = env.lfs.scratch().join("m");
    fs::create_dir(&at).unwrap();
    mount(&["-o", "subvol=/data", env.lfs.device()], &at);
    let guard = Mounted(at.clone());
    let busy = env.run(&["local", "rollback", "data", &n1.to_string()]);
    expect_err(
        &busy,
        19,
        &["config data", "mounted at", s(&at), "--set-default"],
    );
    drop(guard);
    assert!(d.join("after").exists());
}

/// The default-subvolume rollback of a filesystem's top level (as for a root filesystem, which
/// cannot be tested without rebooting): the next mount without subvol= sees the restored state.
#[test]
fn rollback_by_default_subvolume() {
    let Some(env) = Env::new("") else { return };
    let top = env.lfs.mnt();
    fs::write(
        &env.sg.config,
        format!("[local.top]\nsubvolume = \"{}\"\n", s(&top)),
    )
    .unwrap();
    fs::write(top.join("state"), b"old").unwrap();
    let one = env.run(&["local", "create", "top"]);
    one.expect_code(0);
    fs::write(top.join("state"), b"new").unwrap();

    let refused = env.run(&["local", "rollback", "top", "1"]);
    expect_err(&refused, 2, &["top-level subvolume", "--set-default"]);
    let out = env.run(&["--json", "local", "rollback", "top", "1", "--set-default"]);
    out.expect_code(0);
    let j = out.json();
    assert_eq!(j["mode"], "default-subvolume");
    let copy = j["default"]["number"].as_u64().unwrap();
    let id = j["default_subvolume_id"].as_u64().unwrap();
    assert_eq!(j["default"]["writable"], true);
    let got = btrfs(&["subvolume", "get-default", s(&top)]);
    assert!(got.starts_with(&format!("ID {id} ")), "{got}");
    assert_eq!(
        fs::read(top.join("state")).unwrap(),
        b"new",
        "the running system is untouched"
    );

    // "Reboot": mount the filesystem afresh without subvol=.
    let at = env.lfs.scratch().join("boot");
    fs::create_dir(&at).unwrap();
    mount(&[env.lfs.device()], &at);
    let guard = Mounted(at.clone());
    assert_eq!(fs::read(at.join("state")).unwrap(), b"old");

    let list = env.run(&["--json", "local", "list", "top"]).json();
    let row = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["number"] == copy)
        .unwrap()
        .clone();
    assert_eq!(row["default"], true);
    assert_eq!(row["mounted_at"], serde_json::json!([s(&at)]));
    let text = env.run(&["local", "list", "top"]).stdout_str();
    assert!(text.contains("mounted,default"), "{text}");
    let e = env.run(&["local", "delete", "top", &copy.to_string()]);
    expect_err(&e, 19, &["config top", "mounted at"]);
    drop(guard);
    let e = env.run(&["local", "delete", "top", &copy.to_string()]);
    expect_err(&e, 19, &["default subvolume"]);
}

#[test]
fn mounted_snapshot_is_not_deleted() {
    let Some(env) = Env::new("") else { return };
    let n = env.create(&[]);
    let at = env.lfs.scratch().join("old");
    fs::create_dir(&at).unwrap();
    mount(
        &[
            "-o",
            &format!("subvol=/data/.snapshots/{n}/snapshot"),
            env.lfs.device(),
        ],
        &at,
    );
    let guard = Mounted(at.clone());
    let list = env.run(&["local", "list", "data"]).stdout_str();
    assert!(list.contains("| mounted |"), "{list}");
    let e = env.run(&["local", "delete", "data", &n.to_string()]);
    expect_err(
        &e,
        19,
        &[
            "config data",
            &format!("snapshot {n}"),
            s(&env.snapshot_path(n)),
            &format!("mounted at {}", s(&at)),
            "unmount",
        ],
    );
    // Cleanup does not touch it either.
    assert!(env.snapshot_path(n).exists());
    drop(guard);
    env.run(&["local", "delete", "data", &n.to_string()])
        .expect_code(0);
}

/// `kill -9` of `local create` at random moments: no half-made snapshot is ever listed, cleanup
/// removes the leftovers, and no number is handed out twice.
#[test]
fn killed_creates_leave_nothing_half_made() {
    let Some(env) = Env::new("") else { return };
    env.create(&[]); // the snapshot directory exists from here on
    let mut seen = Vec::new();
    for i in 0..24u64 {
        let mut child = Command::new(&env.sg.bin)
            .args(["local", "create", "data"])
            .env("SNAPGUARD_CONFIG", &env.sg.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(500 + (i * 7919) % 9000));
        let _ = child.kill();
        let _ = child.wait();
        for v in env.list() {
            let n = v["number"].as_u64().unwrap();
            let p = PathBuf::from(v["path"].as_str().unwrap());
            assert!(
                snapguard_btrfs::is_subvolume(&p).unwrap()
                    && snapguard_btrfs::is_readonly(&p).unwrap(),
                "snapshot {n} is listed but not a read-only subvolume"
            );
            assert_eq!(
                v["uuid"],
                snapguard_btrfs::subvolume_info(&p)
                    .unwrap()
                    .uuid
                    .to_string()
            );
            seen.push(n);
        }
    }
    let out = env.run(&["--json", "local", "cleanup", "data"]);
    out.expect_code(0);
    let removed = out.json()["incomplete_removed"].clone();
    let dir = env.data.join(".snapshots");
    let listed = env.numbers();
    for e in fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(n) = name.parse::<u64>() {
            assert!(
                listed.contains(&n),
                "entry {n} left after cleanup (removed: {removed})"
            );
        }
    }
    let max = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u64>().ok())
        .chain(seen.iter().copied())
        .max()
        .unwrap_or(0);
    let next = env.create(&[]) as u64;
    assert!(
        next > max,
        "number {next} handed out again (max seen {max})"
    );
}

/// An interrupted create (the state a crash between the btrfs snapshot and info.json leaves) is
/// not listed, is reported, and cleanup removes it.
#[test]
fn incomplete_entry_is_hidden_and_cleaned_up() {
    let Some(env) = Env::new("") else { return };
    env.create(&[]);
    // What `local create` does before the crash: record the number, make the directory,
    // write creating.json, take the btrfs snapshot; info.json never comes.
    fs::write(env.data.join(".snapshots/.snapguard-last-number"), "2\n").unwrap();
    let dir = env.data.join(".snapshots/2");
    fs::create_dir(&dir).unwrap();
    let uuid = btrfs(&["subvolume", "show", s(&env.data)])
        .lines()
        .find_map(|l| l.trim().strip_prefix("UUID:").map(|u| u.trim().to_string()))
        .unwrap();
    fs::write(
        dir.join("creating.json"),
        format!(
            "{{\"number\":2,\"source_uuid\":\"{uuid}\",\"source\":\"{}\"}}",
            s(&env.data)
        ),
    )
    .unwrap();
    btrfs(&[
        "subvolume",
        "snapshot",
        "-r",
        s(&env.data),
        s(&dir.join("snapshot")),
    ]);
    assert_eq!(env.numbers(), vec![1]);
    let list = env.run(&["local", "list", "data"]);
    assert!(list.stderr_str().contains("entries 2 of"), "{list}");
    let get = env.run(&["local", "diff", "data", "1", "2"]);
    expect_err(&get, 15, &["snapshot 2", "incomplete", "local cleanup"]);
    let out = env.run(&["local", "cleanup", "data"]);
    out.expect_code(0);
    assert!(
        out.stdout_str().contains("removed incomplete entry 2"),
        "{out}"
    );
    assert!(!dir.exists());
    assert_eq!(env.create(&[]), 3);
}

#[test]
fn errors_name_the_config_and_say_what_to_do() {
    let Some(env) = Env::new("") else { return };
    let e = env.run(&["local", "list", "nope"]);
    expect_err(&e, 2, &["\"nope\"", "data"]);
    let e = env.run(&["local", "diff", "data", "1", "7"]);
    expect_err(
        &e,
        15,
        &["config data", "no snapshot 1", "snapguard local list data"],
    );
    env.create(&[]);
    let e = env.run(&["local", "delete", "data", "x-3"]);
    expect_err(&e, 2, &["\"x-3\"", "5-7"]);
    let e = env.run(&["local", "create", "data", "--post", "1"]);
    expect_err(&e, 2, &["config data", "snapshot 1 is a single snapshot"]);
    let e = env.run(&["local", "undo", "data", "0", "1"]);
    expect_err(&e, 2, &["local undo data n 0"]);
    let e = env.run(&["local", "diff", "data", "1", "0", "/etc"]);
    expect_err(&e, 2, &["/etc is not inside the subvolume"]);

    // Not btrfs, and not a subvolume.
    let plain = env.ws.path("plain");
    fs::create_dir(&plain).unwrap();
    fs::create_dir(env.data.join("sub")).unwrap();
    fs::write(
        &env.sg.config,
        format!(
            "[local.plain]\nsubvolume = \"{}\"\n[local.dir]\nsubvolume = \"{}\"\n",
            s(&plain),
            s(&env.data.join("sub"))
        ),
    )
    .unwrap();
    let e = env.run(&["local", "create", "plain"]);
    expect_err(
        &e,
        1,
        &["config plain", s(&plain), "not on a btrfs filesystem"],
    );
    let e = env.run(&["local", "list", "dir"]);
    expect_err(
        &e,
        1,
        &[
            "config dir",
            "not a btrfs subvolume",
            "btrfs subvolume create",
        ],
    );
}

/// `local backup`: the snapshot's contents, recorded as the subvolume's path, tagged.
#[test]
fn local_snapshot_is_backed_up_as_the_subvolume() {
    let Some(env) = Env::new("") else { return };
    let sg = Sg::init(&env.ws, None);
    let sg = Sg {
        config: env.sg.config.clone(),
        ..sg
    };
    fs::write(env.data.join("f"), b"snapshotted").unwrap();
    let n = env.create(&[]);
    fs::write(env.data.join("f"), b"changed later").unwrap();
    let out = sg.run(["--json", "local", "backup", "data", &n.to_string()]);
    out.expect_code(0);
    let id = out.json()["snapshot_id"].as_str().unwrap().to_string();
    let snaps = sg.run(["--json", "snapshots"]).json();
    let snap = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(snap["paths"], serde_json::json!([s(&env.data)]));
    assert_eq!(snap["tags"], serde_json::json!([format!("local:data:{n}")]));
    let dump = sg.dump(&id, &env.data.join("f"));
    dump.expect_code(0);
    assert_eq!(dump.stdout, b"snapshotted");
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    for o in snap["source"]["btrfs"].as_array().into_iter().flatten() {
        seen.insert(
            o["subvolume"].as_str().unwrap_or("").to_string(),
            o["local_snapshot"].clone(),
        );
    }
    assert_eq!(
        seen.get(s(&env.data)),
        Some(&serde_json::json!({"config": "data", "number": n})),
        "{snap}"
    );
    let missing = sg.run(["local", "backup", "data", "99"]);
    expect_err(&missing, 15, &["config data", "no snapshot 99"]);
}

/// With btrfs quotas on, `list` shows each snapshot's exclusive size, and cleanup deletes
/// number snapshots beyond the lower bound of `number_limit` while the snapshots use more than
/// `space_limit` of the filesystem (reason space-limit), oldest first.
#[test]
fn quotas_give_sizes_and_space_aware_cleanup() {
    let retention = "[local.data.retention]\nnumber_limit = \"1-10\"\nnumber_min_age = 0\n\
                     min_age = 0\nfree_limit = 0\nspace_limit = 0.06\n";
    let Some(env) = Env::new(retention) else {
        return;
    };
    btrfs(&["quota", "enable", s(&env.lfs.mnt())]);
    btrfs(&["quota", "rescan", "-w", s(&env.lfs.mnt())]);
    let big = env.data.join("big");
    // Each version of the file is 16 MiB that only one snapshot keeps once it is replaced.
    for seed in 0..4u64 {
        fs::write(&big, crate::support::random_bytes(seed, 16 << 20)).unwrap();
        env.create(&["--cleanup", "number"]);
    }
    fs::write(&big, b"small now").unwrap();
    btrfs(&["filesystem", "sync", s(&env.data)]);
    let list = env.list();
    for v in &list {
        let size = v["exclusive_bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("no size: {v}"));
        assert!(
            size >= 15 << 20,
            "snapshot {} exclusive {size}",
            v["number"]
        );
    }
    let text = env.run(&["local", "list", "data"]).stdout_str();
    assert!(text.contains(" MiB |"), "{text}");

    // 4 × 16 MiB of a 512 MiB filesystem is 12.5 %; the limit is 6 % (30.7 MiB): the plan
    // deletes the oldest until 16 MiB remain, and number_limit's lower bound keeps the newest.
    let dry = env
        .run(&["--json", "local", "cleanup", "data", "-n"])
        .json();
    let reasons: Vec<(u64, String)> = dry["plan"]["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["number"].as_u64().unwrap(),
                d["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (1, "space-limit".to_string()),
            (2, "space-limit".to_string()),
            (3, "space-limit".to_string())
        ],
        "{dry}"
    );
    assert_eq!(dry["plan"]["space"]["space_limit_met"], true);
    let out = env.run(&["local", "cleanup", "data"]);
    out.expect_code(0);
    assert_eq!(env.numbers(), vec![4], "{out}");
}

/// The filesystem's size and the bytes available to unprivileged users (what cleanup measures),
/// after committing it.
fn fs_space(p: &Path) -> (u64, u64) {
    btrfs(&["filesystem", "sync", s(p)]);
    let v = rustix::fs::statvfs(p).unwrap();
    (v.f_blocks * v.f_frsize, v.f_bavail * v.f_frsize)
}

/// The numbers and reasons of a cleanup report's deletions.
fn deletions(report: &Value) -> Vec<(u64, String)> {
    report["deleted"]
        .as_array()
        .unwrap_or_else(|| panic!("no deleted array: {report}"))
        .iter()
        .map(|d| {
            (
                d["number"].as_u64().unwrap(),
                d["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Space-aware cleanup by free space (`free_limit`) without quotas, so the size of each
/// snapshot is unknown: with less free space than the limit, cleanup deletes the number
/// snapshots that `number_limit`'s lower bound does not keep, lowest first, one per round (reason
/// free-space), measuring the free space again after each, and stops as soon as the limit
/// holds; with a limit no deletion can meet it deletes every deletable snapshot and keeps the
/// rest.
#[test]
fn free_limit_cleanup_deletes_until_enough_is_free() {
    let Some(env) = Env::with(256, "", Vec::new()) else {
        return;
    };
    const BIG: u64 = 16 << 20;
    // Snapshot 1 (cleanup none) is never deleted; 2 to 5 each hold a 16 MiB file of their own
    // that the subvolume no longer has.
    fs::write(env.data.join("small"), b"kept everywhere").unwrap();
    env.create(&["--cleanup", "none"]);
    let big = env.data.join("big");
    for seed in 0..4u64 {
        fs::write(&big, crate::support::random_bytes(seed, BIG as usize)).unwrap();
        env.create(&["--cleanup", "number"]);
        fs::remove_file(&big).unwrap();
    }
    let (size, free0) = fs_space(&env.data);
    // Free space is short by 1.5 files: deleting one snapshot is not enough, two are.
    let want = free0 + BIG * 3 / 2;
    let limit = want as f64 / size as f64;
    let retention = |free_limit: f64| {
        format!(
            "[local.data.retention]\nnumber_limit = \"0-10\"\nnumber_min_age = 0\nmin_age = 0\n\
             space_limit = 1\nfree_limit = {free_limit:.6}\n"
        )
    };
    env.write_config(&retention(limit));

    // The dry run plans one deletion of unknown size and says space is measured again after it.
    let dry = env
        .run(&["--json", "local", "cleanup", "data", "--dry-run"])
        .json();
    let plan = &dry["plan"];
    assert_eq!(
        plan["delete"],
        serde_json::json!([{"number": 2, "reason": "free-space"}]),
        "{dry}"
    );
    assert_eq!(plan["space"]["free_limit_met"], false, "{dry}");
    assert_eq!(plan["space"]["remeasure"], true, "{dry}");
    assert_eq!(env.numbers(), vec![1, 2, 3, 4, 5]);

    let out = env.run(&["--json", "local", "cleanup", "data"]);
    out.expect_code(0);
    let report = out.json();
    assert_eq!(
        deletions(&report),
        vec![(2, "free-space".to_string()), (3, "free-space".to_string())],
        "{out}"
    );
    assert_eq!(env.numbers(), vec![1, 4, 5]);
    // One round per deletion, and a last one that found the limit met.
    let plans = report["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 3, "{report}");
    assert_eq!(plans[1]["space"]["free_limit_met"], false, "{report}");
    assert_eq!(plans[2]["space"]["free_limit_met"], true, "{report}");
    assert_eq!(plans[2]["delete"], serde_json::json!([]), "{report}");
    let (_, free1) = fs_space(&env.data);
    assert!(
        free1 >= want,
        "free {free1} after cleanup, the limit asks for {want}"
    );
    assert!(
        free1 >= free0 + 2 * BIG - (2 << 20),
        "two 16 MiB snapshots deleted, but only {} bytes freed",
        free1 - free0
    );

    // A limit no deletion can meet: every deletable snapshot goes, the cleanup-none one stays,
    // and it is not an error.
    env.write_config(&retention(0.99));
    let out = env.run(&["local", "cleanup", "data"]);
    out.expect_code(0);
    let text = out.stdout_str();
    for n in [4, 5] {
        assert!(
            text.contains(&format!("deleted snapshot {n} (free-space)")),
            "{out}"
        );
    }
    assert_eq!(env.numbers(), vec![1]);
    let dry = env
        .run(&["--json", "local", "cleanup", "data", "-n"])
        .json();
    assert_eq!(dry["plan"]["delete"], serde_json::json!([]), "{dry}");
    assert_eq!(dry["plan"]["space"]["free_limit_met"], false, "{dry}");
    assert_eq!(dry["plan"]["space"]["remeasure"], false, "{dry}");
    assert_eq!(
        dry["plan"]["keep"],
        serde_json::json!([{"number": 1, "reasons": ["no-cleanup"]}]),
        "{dry}"
    );
}
