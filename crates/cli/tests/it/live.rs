//! `snapguard live …` (docs/live.md) through the binary, on a real btrfs filesystem with real
//! OverlayFS mounts (skipped with a reason without root, never in CI).
//!
//! What is proven: `live start` mounts the snapshot with a writable layer and prints the mount
//! point; `live status` sees the session from another process; the lower snapshot is
//! protected while in use; `live commit` turns the merged view (the varied tree with files
//! created, modified, deleted, renamed, directories renamed, attributes changed) into a new
//! snapshot equal to a `cp -a` of the merged view; `live discard` leaves the snapshot and the
//! subvolume exactly as before and nothing mounted; a commit killed with `kill -9` never
//! leaves a snapshot listed as complete, and the next commit succeeds; without CONFIG,
//! `live discard` and `live commit` use the one active session, fail with none and name the
//! sessions (exit 2) with several.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use snapguard_btrfs::testing::try_new;

use crate::local;
use crate::support::cmd::bin;
use crate::support::compare::{assert_same, Opts, Tree};
use crate::support::fixture::Fixture;
use crate::support::varied;

/// Exit code of a refused operation (docs/exit-codes.md).
const REFUSED: i32 = 19;

struct Env {
    // Dropped first: unmount whatever a failing test left mounted.
    _guard: Unmount,
    base: local::Env,
    run_dir: PathBuf,
}

/// The `local` tests' environment, with the live-mode run directory on top.
impl std::ops::Deref for Env {
    type Target = local::Env;
    fn deref(&self) -> &local::Env {
        &self.base
    }
}

/// Unmounts everything below a directory on drop (deepest first).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let mut points = local::mounts_below(&self.0);
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
    }
}

impl Env {
    /// A subvolume holding the varied tree; sessions kept in `ws/run`.
    fn new() -> Option<Env> {
        // The run directory is in the environment's workspace.
        let mut base = local::Env::with(1024, "", Vec::new())?;
        let run_dir = base.ws.path("run");
        base.sg
            .extra_env
            .push(("SNAPGUARD_LIVE_DIR".into(), run_dir.clone().into()));
        let mut fx = Fixture::new(&base.data);
        varied::build(&mut fx);
        fx.finish();
        Some(Env {
            _guard: Unmount(base.ws.root.clone()),
            base,
            run_dir,
        })
    }
}

/// The tree of the subvolume without its snapshot directory (a subvolume of its own).
fn scan_subvolume(p: &Path) -> Tree {
    let mut t = Tree::scan(p);
    t.entries.retain(|k, _| !k.starts_with(".snapshots"));
    t
}

/// Compare two trees with everything but access times (reading through the overlay updates
/// them; the library tests check them exactly).
fn same(exp: &Tree, act: &Tree, what: &str) {
    let opts = Opts {
        atime: false,
        allow_missing: vec![PathBuf::from(".snapshots")],
        ..Opts::default()
    };
    assert_same(exp, act, &opts, what);
}

/// Changes of every kind in the merged view.
fn change(m: &Path) {
    fs::write(m.join("files/text.txt"), b"changed in live mode\n").expect("modify");
    fs::write(m.join("created.txt"), b"created in live mode\n").expect("create");
    fs::remove_file(m.join("files/one_byte")).expect("delete");
    fs::remove_dir_all(m.join("empty")).ok();
    fs::rename(m.join("files/dup_a"), m.join("dup_a-renamed")).expect("rename file");
    fs::rename(m.join("files"), m.join("files-renamed")).expect("rename dir");
    fs::write(m.join("files-renamed/inside"), b"in a renamed dir\n").expect("write");
    rustix::fs::lsetxattr(
        m.join("created.txt"),
        "user.live",
        b"yes",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
}

#[test]
fn commit_through_the_binary() {
    let Some(env) = Env::new() else { return };
    let out = env.ok(&["live", "start", "data", "--size", "512M"]);
    let mp = PathBuf::from(out.stdout_str().trim());
    assert_eq!(mp, env.run_dir.join("data/merged"));
    assert!(
        out.stderr_str().contains("snapguard live commit data"),
        "{out}"
    );
    assert_eq!(env.numbers(), vec![1]);
    same(
        &scan_subvolume(&env.snapshot_path(1)),
        &scan_subvolume(&mp),
        "fresh merged view",
    );

    // Another process sees the session.
    let st = env.ok(&["--json", "live", "status"]).json();
    assert_eq!(st[0]["config"], "data");
    assert_eq!(st[0]["lower"], 1);
    assert_eq!(st[0]["mounted"], true);
    let text = env.ok(&["live", "status", "data"]).stdout_str();
    assert!(
        text.contains("snapshot 1") && text.contains("mounted"),
        "{text}"
    );

    change(&mp);
    // An independent witness of the merged view: GNU cp, keeping everything.
    let witness = env.lfs.mnt().join("witness");
    let cp = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(&mp)
        .arg(&witness)
        .status()
        .expect("cp");
    assert!(cp.success());

    let out = env.ok(&["--json", "live", "commit", "data", "-d", "kept"]);
    let j = out.json();
    assert_eq!(j["snapshot"]["number"], 2);
    assert_eq!(j["snapshot"]["description"], "kept");
    assert!(j["changes"]["renamed_dirs"].as_u64().expect("renamed") >= 1);
    same(
        &scan_subvolume(&witness),
        &scan_subvolume(&env.snapshot_path(2)),
        "committed snapshot",
    );
    assert_eq!(env.numbers(), vec![1, 2]);
    assert!(local::mounts_below(&env.run_dir).is_empty());
    assert_eq!(
        env.ok(&["live", "status"]).stdout_str().trim(),
        "no live sessions"
    );
    // The lower snapshot is no longer protected.
    env.ok(&["local", "delete", "data", "1"]);
}

#[test]
fn discard_through_the_binary() {
    let Some(env) = Env::new() else { return };
    env.ok(&["local", "create", "data", "-d", "base"]);
    let before_snap = scan_subvolume(&env.snapshot_path(1));
    let before_sub = scan_subvolume(&env.data);
    let scratch = env.lfs.mnt().join("scratch");
    let mp = env.ws.path("view");
    let out = env.ok(&[
        "live",
        "start",
        "data",
        "1",
        "--upper",
        scratch.to_str().expect("utf-8"),
        "--mountpoint",
        mp.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.stdout_str().trim(), mp.to_str().expect("utf-8"));
    change(&mp);

    // Protected while in use; a second session is refused.
    let out = env.run(&["local", "delete", "data", "1"]);
    out.expect_code(REFUSED);
    assert!(out.stderr_str().contains("live"), "{out}");
    let out = env.run(&["live", "start", "data"]);
    assert_ne!(out.code, Some(0), "{out}");
    assert!(out.stderr_str().contains("already active"), "{out}");
    assert!(
        out.stderr_str().contains("snapguard live discard data"),
        "{out}"
    );

    let out = env.ok(&["live", "discard", "data"]);
    assert!(out.stdout_str().contains("discarded"), "{out}");
    same(
        &before_snap,
        &scan_subvolume(&env.snapshot_path(1)),
        "snapshot after discard",
    );
    same(
        &before_sub,
        &scan_subvolume(&env.data),
        "subvolume after discard",
    );
    assert!(local::mounts_below(&env.ws.root).is_empty());
    assert!(!scratch.exists() && !mp.exists());
    assert_eq!(env.numbers(), vec![1]);
    // Nothing left to discard: an error that says how to start.
    let out = env.run(&["live", "discard", "data"]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr_str().contains("snapguard live start data"),
        "{out}"
    );
    // Bad options are usage errors.
    env.run(&["live", "start", "data", "--size", "lots"])
        .expect_code(2);
    env.run(&["live", "start", "data", "--upper", "/tmp/x", "--size", "1G"])
        .expect_code(2);
}

#[test]
fn killed_commit_never_lists_a_half_snapshot() {
    let Some(env) = Env::new() else { return };
    let mp = PathBuf::from(
        env.ok(&["live", "start", "data", "--size", "1G"])
            .stdout_str()
            .trim(),
    );
    // Enough data that applying it takes a moment.
    let block: Vec<u8> = (0..1u32 << 20).map(|i| (i * 31 % 253) as u8).collect();
    for i in 0..4 {
        let mut f = fs::File::create(mp.join(format!("big{i}"))).expect("create");
        for _ in 0..96 {
            std::io::Write::write_all(&mut f, &block).expect("write");
        }
    }
    fs::write(mp.join("marker"), b"committed\n").expect("write");

    let mut cmd = Command::new(bin());
    cmd.args(["live", "commit", "data"])
        .env("SNAPGUARD_CONFIG", &env.sg.config)
        .env("SNAPGUARD_LIVE_DIR", &env.run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn commit");
    let temp = env.data.join(".snapshots/.live-commit-data");
    let t0 = Instant::now();
    let mut killed = false;
    while t0.elapsed() < Duration::from_secs(60) {
        if temp.join("big1").exists() {
            child.kill().expect("kill -9");
            killed = true;
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.wait();
    assert!(killed, "the commit finished before it could be killed");

    // Only the lower snapshot is listed; the half-built one is not.
    assert_eq!(env.numbers(), vec![1]);
    let st = env.ok(&["--json", "live", "status", "data"]).json();
    assert_eq!(st[0]["mounted"], false, "{st}");
    assert_eq!(st[0]["upper_present"], true, "{st}");
    assert!(env
        .ok(&["live", "status", "data"])
        .stdout_str()
        .contains("not mounted"));

    // The session's changes are still there: the next commit finishes the job.
    let j = env.ok(&["--json", "live", "commit", "data"]).json();
    assert_eq!(j["snapshot"]["number"], 2);
    assert_eq!(env.numbers(), vec![1, 2]);
    assert!(!temp.exists());
    let done = env.snapshot_path(2);
    assert_eq!(
        fs::read(done.join("marker")).expect("marker"),
        b"committed\n"
    );
    assert_eq!(
        fs::metadata(done.join("big3")).expect("big3").len(),
        96 << 20
    );
    assert!(local::mounts_below(&env.run_dir).is_empty());
}

/// The boot hook (contrib/initramfs) is valid POSIX sh, clean under shellcheck where it is
/// installed, and does what it says when run as initramfs-tools would run it: against a fake
/// kernel command line, with the "root" a snapshot mounted read-only, in a private mount
/// namespace (no reboot here; the real boot path is documented, not tested).
#[test]
fn initramfs_hook_overlays_a_read_only_snapshot_root() {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/initramfs");
    let script = contrib.join("scripts/local-bottom/snapguard-live");
    let hook = contrib.join("hooks/snapguard-live");
    for f in [&script, &hook] {
        let st = Command::new("sh").arg("-n").arg(f).status().expect("sh -n");
        assert!(st.success(), "sh -n {f:?}");
        if Command::new("shellcheck").arg("--version").output().is_ok() {
            let out = Command::new("shellcheck")
                .args(["-s", "sh"])
                .arg(f)
                .output()
                .expect("shellcheck");
            assert!(
                out.status.success(),
                "shellcheck {f:?}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    let Some(lfs) = try_new(256) else { return };
    let mnt = lfs.mnt();
    let data = mnt.join("data");
    snapguard_btrfs::create_subvolume(&data).expect("subvolume");
    fs::write(data.join("f"), b"from the snapshot\n").expect("write");
    fs::create_dir_all(data.join(".snapshots/1")).expect("mkdir");
    snapguard_btrfs::snapshot(&data, &data.join(".snapshots/1/snapshot"), true).expect("snapshot");
    let t = lfs.scratch().join("boot");
    fs::create_dir(&t).expect("mkdir");
    let case = |subvol: &str, cmdline: &str| -> String {
        fs::write(t.join("cmdline"), cmdline).expect("cmdline");
        let body = format!(
            r#"set -e
T='{t}'
mkdir -p "$T/root" "$T/run"
mount -o ro,subvol='{subvol}' '{dev}' "$T/root"
SNAPGUARD_CMDLINE="$T/cmdline" SNAPGUARD_LIVE_BASE="$T/run/live" rootmnt="$T/root" sh '{script}' 2>&1
echo "root-fstype=$(findmnt -n -o FSTYPE "$T/root")"
if echo changed > "$T/root/f" 2>/dev/null; then echo writable; else echo read-only; fi
echo "root-f=$(cat "$T/root/f")"
[ -e "$T/run/live/lower/f" ] && echo "lower-f=$(cat "$T/run/live/lower/f")"
findmnt -n -o OPTIONS "$T/run/live/rw" 2>/dev/null || true
"#,
            t = t.display(),
            dev = lfs.device(),
            script = script.display(),
        );
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &body])
            .output()
            .expect("unshare");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    };
    // Asked for, on a read-only snapshot: an overlay root that takes writes in RAM.
    let out = case(
        "data/.snapshots/1/snapshot",
        "BOOT_IMAGE=/vmlinuz ro quiet snapguard.live=1 snapguard.live.size=64M\n",
    );
    assert!(out.contains("root-fstype=overlay"), "{out}");
    assert!(
        out.contains("writable") && out.contains("root-f=changed"),
        "{out}"
    );
    assert!(out.contains("lower-f=from the snapshot"), "{out}");
    assert!(out.contains("size=65536k"), "{out}");
    assert!(out.contains("booted the read-only snapshot"), "{out}");
    // The snapshot itself is unchanged.
    assert_eq!(
        fs::read(data.join(".snapshots/1/snapshot/f")).expect("read"),
        b"from the snapshot\n"
    );
    // Not asked for: nothing happens.
    let out = case("data/.snapshots/1/snapshot", "ro quiet snapguard.live=0\n");
    assert!(
        out.contains("root-fstype=btrfs") && out.contains("read-only"),
        "{out}"
    );
    // Asked for on a writable subvolume: refused with a reason, normal boot.
    let out = case("data", "ro snapguard.live=1\n");
    assert!(out.contains("root-fstype=btrfs"), "{out}");
    assert!(out.contains("not a read-only btrfs snapshot"), "{out}");
    assert_eq!(
        fs::read(data.join("f")).expect("read"),
        b"from the snapshot\n"
    );
}

/// `live discard` and `live commit` without CONFIG work on the one active session; with none
/// they fail (1), with several they name them and ask for CONFIG (2) and change nothing. The
/// `--json` of `live start` and `live discard` describe the session.
#[test]
fn discard_and_commit_without_config() {
    let Some(env) = Env::new() else { return };
    let other = env.lfs.mnt().join("other");
    snapguard_btrfs::create_subvolume(&other).expect("subvolume");
    fs::write(other.join("g"), b"other\n").expect("write");
    env.write_config(&format!(
        "[local.other]\nsubvolume = \"{}\"\n",
        other.to_str().expect("utf-8")
    ));

    // Nothing active.
    for verb in ["discard", "commit"] {
        let out = env.run(&["live", verb]);
        out.expect_code(1);
        let err = out.stderr_str();
        assert!(
            err.contains(&format!("there is no live session to {verb}"))
                && err.contains("snapguard live start CONFIG"),
            "{out}"
        );
    }

    // --json of start: the session record.
    let out = env.ok(&["--json", "live", "start", "data", "--size", "64M"]);
    let j = out.json();
    assert_eq!(j["config"], "data", "{out}");
    assert_eq!(j["lower"], 1);
    assert_eq!(j["lower_created"], true);
    assert_eq!(
        j["lower_path"],
        env.snapshot_path(1).to_str().expect("utf-8")
    );
    let mp = PathBuf::from(j["mountpoint"].as_str().expect("mountpoint"));
    assert_eq!(mp, env.run_dir.join("data/merged"));
    assert_eq!(j["upper"]["kind"], "tmpfs");
    assert_eq!(j["upper"]["size"], "64M");
    assert_eq!(
        j["state_file"],
        env.run_dir.join("data.json").to_str().expect("utf-8")
    );
    assert!(local::mounts_below(&env.run_dir).contains(&mp.to_str().expect("utf-8").to_string()));
    assert_eq!(env.list()[0]["description"], "live mode");

    // The only session: commit without CONFIG is data's.
    fs::write(mp.join("made-live"), b"committed without a name\n").expect("write");
    let out = env.ok(&["live", "commit", "-d", "no config given"]);
    assert!(
        out.stdout_str()
            .contains("committed the live session of data on snapshot 1 as snapshot 2"),
        "{out}"
    );
    assert_eq!(env.numbers(), vec![1, 2]);
    assert_eq!(
        fs::read(env.snapshot_path(2).join("made-live")).expect("committed file"),
        b"committed without a name\n"
    );
    assert!(local::mounts_below(&env.run_dir).is_empty());

    // Two sessions: both commands refuse without CONFIG, naming them, and change nothing.
    let mp_data = PathBuf::from(env.ok(&["live", "start", "data", "2"]).stdout_str().trim());
    let mp_other = PathBuf::from(env.ok(&["live", "start", "other"]).stdout_str().trim());
    fs::write(mp_data.join("scratch"), b"x").expect("write");
    for verb in ["discard", "commit"] {
        let out = env.run(&["live", verb]);
        out.expect_code(2);
        let err = out.stderr_str();
        for want in [
            "2 live sessions are active",
            "data (snapshot 2)",
            "other (snapshot 1)",
            &format!("snapguard live {verb} CONFIG"),
        ] {
            assert!(err.contains(want), "{want:?} missing\n{out}");
        }
    }
    let st = env.ok(&["--json", "live", "status"]).json();
    assert_eq!(st.as_array().map(Vec::len), Some(2), "{st}");
    assert!(st
        .as_array()
        .expect("array")
        .iter()
        .all(|s| s["mounted"] == true));
    assert_eq!(env.numbers(), vec![1, 2]);

    // --json of discard with CONFIG, then the last one without.
    let out = env.ok(&["--json", "live", "discard", "other"]);
    let j = out.json();
    assert_eq!(j["config"], "other", "{out}");
    assert_eq!(j["session"]["config"], "other");
    assert_eq!(j["session"]["lower"], 1);
    assert_eq!(
        j["session"]["mountpoint"],
        mp_other.to_str().expect("utf-8")
    );
    assert_eq!(j["stale_locks_removed"], serde_json::json!([]));
    let out = env.ok(&["--json", "live", "discard"]);
    let j = out.json();
    assert_eq!(j["config"], "data", "{out}");
    assert_eq!(j["session"]["lower"], 2);
    assert_eq!(j["session"]["lower_created"], false);
    assert_eq!(j["session"]["mountpoint"], mp_data.to_str().expect("utf-8"));
    assert!(local::mounts_below(&env.ws.root).is_empty());
    assert!(!env.snapshot_path(2).join("scratch").exists());
    assert_eq!(env.numbers(), vec![1, 2]);
    env.run(&["live", "discard"]).expect_code(1);
}
