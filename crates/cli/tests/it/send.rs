//! `snapguard local send` (docs/local-send.md) through the binary, between two real btrfs
//! filesystems on loop devices, and through a real sshd on 127.0.0.1.
//!
//! What is proven: the first send is full and later ones are incremental from the newest
//! common snapshot (the received snapshot is a snapshot of the previous one on the target, and
//! the stream is small); `--keep` thins the target only; `--dry-run` changes nothing; a send
//! killed with `kill -9` (sender, `btrfs send` and `btrfs receive` together) leaves only an
//! `.incoming-N` entry that the next send removes before it succeeds; an ssh target works with
//! `--ssh-command`; errors name the target.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use snapguard_btrfs::testing::{try_new, LoopFs};

use crate::local;
use crate::support::cmd::bin;
use crate::support::compare::{assert_same, Opts, Tree};
use crate::support::sshd::Sshd;

struct Env {
    base: local::Env,
    /// The target directory on the second filesystem.
    target: PathBuf,
    _dst: LoopFs,
}

/// The `local` tests' environment (the source), with a second filesystem as the target.
impl std::ops::Deref for Env {
    type Target = local::Env;
    fn deref(&self) -> &local::Env {
        &self.base
    }
}

impl Env {
    fn new() -> Option<Env> {
        let base = local::Env::with(1024, "", Vec::new())?;
        let dst = try_new(1024)?;
        fs::write(base.data.join("a"), b"first\n").expect("write");
        let target = dst.mnt().join("replica");
        fs::create_dir(&target).expect("mkdir");
        Some(Env {
            base,
            target,
            _dst: dst,
        })
    }

    fn create(&self) -> u32 {
        self.base.create(&[])
    }

    fn send(&self, extra: &[&str]) -> Value {
        let to = self.target.to_str().expect("utf-8").to_string();
        let mut args = vec!["--json", "local", "send", "data", "--to", &to];
        args.extend(extra);
        self.ok(&args).json()
    }

    fn on_target(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.target.join("data"))
            .expect("target dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort_by_key(|n| n.parse::<u64>().unwrap_or(u64::MAX));
        v
    }

    /// Target entry N is a complete, identical copy of snapshot N.
    fn check(&self, n: u64) -> snapguard_btrfs::Subvolume {
        let src = self.data.join(format!(".snapshots/{n}/snapshot"));
        let dst = self.target.join(format!("data/{n}/snapshot"));
        let si = snapguard_btrfs::subvolume_info(&src).expect("source info");
        let di = snapguard_btrfs::subvolume_info(&dst).expect("target info");
        assert!(di.readonly);
        assert_eq!(di.received_uuid, Some(si.uuid));
        let opts = Opts {
            allow_missing: vec![PathBuf::from(".snapshots")],
            ..Opts::default()
        };
        let mut a = Tree::scan(&src);
        a.entries.retain(|k, _| !k.starts_with(".snapshots"));
        let mut b = Tree::scan(&dst);
        b.entries.retain(|k, _| !k.starts_with(".snapshots"));
        assert_same(&a, &b, &opts, &format!("target copy of snapshot {n}"));
        di
    }
}

fn sent(j: &Value) -> Vec<(u64, Option<u64>)> {
    j["sent"]
        .as_array()
        .expect("sent")
        .iter()
        .map(|s| (s["number"].as_u64().expect("n"), s["parent"].as_u64()))
        .collect()
}

#[test]
fn incremental_send_keep_and_dry_run() {
    let Some(env) = Env::new() else { return };
    let big: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    fs::write(env.data.join("big"), &big).expect("write");
    env.create();
    fs::write(env.data.join("a"), b"second\n").expect("write");
    env.create();

    let j = env.send(&[]);
    assert_eq!(sent(&j), vec![(1, None), (2, Some(1))]);
    let t1 = env.check(1);
    let t2 = env.check(2);
    assert_eq!(
        t2.parent_uuid,
        Some(t1.uuid),
        "the second stream was not incremental"
    );
    assert!(j["sent"][1]["bytes"].as_u64().expect("bytes") < 1 << 20);

    // Text output of a send with nothing to do.
    let to = env.target.to_str().expect("utf-8");
    let out = env.ok(&["local", "send", "data", "--to", to]);
    assert!(out.stdout_str().contains("nothing to send"), "{out}");

    fs::write(env.data.join("a"), b"third\n").expect("write");
    env.create();
    // A dry run reports and changes nothing.
    let out = env.ok(&[
        "local",
        "send",
        "data",
        "--to",
        to,
        "--keep",
        "2",
        "--dry-run",
    ]);
    let text = out.stdout_str();
    assert!(
        text.contains("would send snapshot 3 (incremental from 2)"),
        "{out}"
    );
    assert!(
        text.contains("would delete on the target (retention): 1"),
        "{out}"
    );
    assert_eq!(env.on_target(), vec!["1", "2"]);

    let j = env.send(&["--keep", "2"]);
    assert_eq!(sent(&j), vec![(3, Some(2))]);
    assert_eq!(j["deleted"], serde_json::json!([1]));
    assert_eq!(env.on_target(), vec!["2", "3"]);
    env.check(3);
    // The source keeps all three.
    let list = env.ok(&["--json", "local", "list", "data"]).json();
    assert_eq!(list["snapshots"].as_array().expect("list").len(), 3);

    // Target retention by rules: number snapshots beyond the limit go.
    for _ in 0..2 {
        env.ok(&["local", "create", "data", "--cleanup", "number"]);
    }
    let j = env.send(&[
        "--target-retention",
        "number_limit=1,number_min_age=0,min_age=0",
    ]);
    assert_eq!(sent(&j), vec![(4, Some(3)), (5, Some(4))]);
    assert_eq!(j["deleted"], serde_json::json!([4]));
    assert_eq!(env.on_target(), vec!["2", "3", "5"]);

    // Errors name the target and say what to do.
    let out = env
        .sg
        .run(["local", "send", "data", "--to", "relative/dir"]);
    out.expect_code(2);
    let out = env
        .sg
        .run(["local", "send", "data", "--to", "/nonexistent/replica"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr_str()
            .contains("/nonexistent/replica does not exist"),
        "{out}"
    );
}

/// Pids of `btrfs receive` processes receiving below `dir`.
fn receivers(dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.len() >= 3 && args[1] == "receive" && Path::new(&args[2]).starts_with(dir) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn killed_send_is_resumed_without_a_half_snapshot() {
    let Some(env) = Env::new() else { return };
    let block: Vec<u8> = (0..1u32 << 20).map(|i| (i * 131 % 251) as u8).collect();
    {
        let mut f = fs::File::create(env.data.join("huge")).expect("create");
        for _ in 0..400 {
            std::io::Write::write_all(&mut f, &block).expect("write");
        }
    }
    env.create();

    // Kill the sender with its `btrfs send` and `btrfs receive` (one process group) once data
    // is arriving.
    let mut child = Command::new(bin())
        .args(["local", "send", "data", "--to"])
        .arg(&env.target)
        .env("SNAPGUARD_CONFIG", &env.sg.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let pgid = child.id() as i32;
    let partial = env.target.join("data/.incoming-1/snapshot/huge");
    let t0 = Instant::now();
    let mut killed = false;
    while t0.elapsed() < Duration::from_secs(60) {
        if fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) > 8 << 20 {
            rustix::process::kill_process_group(
                rustix::process::Pid::from_raw(pgid).expect("pid"),
                rustix::process::Signal::KILL,
            )
            .expect("kill");
            killed = true;
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    let _ = child.wait();
    assert!(killed, "the send finished before it could be killed");
    // Wait until the killed receiver is really gone.
    let t0 = Instant::now();
    while !receivers(&env.target).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "btrfs receive survived kill -9"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Only the incoming entry, holding a partial subvolume that does not look received.
    assert_eq!(env.on_target(), vec![".incoming-1"]);
    let half = snapguard_btrfs::subvolume_info(&env.target.join("data/.incoming-1/snapshot"))
        .expect("partial subvolume");
    assert!(!half.readonly && half.received_uuid.is_none());

    let j = env.send(&[]);
    assert_eq!(j["removed_partial"], serde_json::json!([".incoming-1"]));
    assert_eq!(sent(&j), vec![(1, None)]);
    assert_eq!(env.on_target(), vec!["1"]);
    env.check(1);
}

#[test]
fn send_over_ssh() {
    let Some(env) = Env::new() else { return };
    let Some(sshd) = Sshd::start() else { return };
    env.create();
    fs::write(env.data.join("a"), b"over ssh\n").expect("write");
    env.create();
    let to = format!("ssh://root@127.0.0.1:{}{}", sshd.port, env.target.display());
    let rsh = sshd.ssh_command();
    let out = env.ok(&["local", "send", "data", "--to", &to, "--ssh-command", &rsh]);
    let text = out.stdout_str();
    assert!(text.contains("sent snapshot 1 (full"), "{out}");
    assert!(
        text.contains("sent snapshot 2 (incremental from 1"),
        "{out}"
    );
    let t1 = env.check(1);
    let t2 = env.check(2);
    assert_eq!(t2.parent_uuid, Some(t1.uuid));

    // SNAPGUARD_RSH works as well as --ssh-command.
    let out = env
        .sg
        .command()
        .env("SNAPGUARD_RSH", &rsh)
        .args(["local", "send", "data", "--to", &to])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to send"));
    // A user the far side refuses: the error names the target and carries ssh's message.
    let bad = env.sg.run([
        "local",
        "send",
        "data",
        "--to",
        &format!(
            "ssh://nobody@127.0.0.1:{}{}",
            sshd.port,
            env.target.display()
        ),
        "--ssh-command",
        &rsh,
    ]);
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(bad.stderr_str().contains("ssh://nobody@127.0.0.1"), "{bad}");
}
