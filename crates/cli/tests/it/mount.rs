//! `snapguard mount`: a real FUSE mount of a real repository, driven through the binary.
//!
//! Each test spawns `snapguard mount MOUNTPOINT` as a child, waits until the mountpoint shows
//! `snapshots`, and works on the mounted tree with ordinary file system calls. A [`Mount`]
//! guard always unmounts (`fusermount3 -u -z`) and kills the child if a test fails halfway, so
//! no mount outlives a test.
//!
//! What the mount is compared on: everything `support/compare.rs` checks that a FUSE
//! filesystem can report: file type, all 12 mode bits, numeric owner, size, nanosecond atime
//! and mtime (also before 1970 and after 2038), symlink targets, device numbers, link counts,
//! hard-link groups (equal inode numbers), every extended attribute including POSIX ACLs,
//! content, and the sparse layout (`SEEK_DATA`/`SEEK_HOLE`) with the allocated size. Not
//! compared: ctime (no file system lets it be set, so a restore cannot reproduce it either)
//! and `st_dev` (every entry of a mount has the mount's device).
//!
//! FUSE is required: the tests fail if /dev/fuse cannot be used, unless
//! `SNAPGUARD_TEST_NO_FUSE=1` says to skip them.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::cmd::{Sg, Ws};
use crate::support::compare::{assert_same, list_dir, Opts, Tree};
use crate::support::fixture::Fixture;
use crate::support::varied::{self, MIB};
use crate::support::{random_bytes, restored_path};

/// How long a mount may take to appear, or a process to exit after an unmount.
const PATIENCE: Duration = Duration::from_secs(60);

fn fuse_available() -> bool {
    if std::env::var_os("SNAPGUARD_TEST_NO_FUSE").is_some_and(|v| v == "1") {
        eprintln!("SNAPGUARD_TEST_NO_FUSE=1: skipping a FUSE test");
        return false;
    }
    if let Err(e) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        panic!("FUSE is needed for the mount tests but /dev/fuse cannot be opened ({e}); set SNAPGUARD_TEST_NO_FUSE=1 to skip them");
    }
    true
}

/// The FUSE mount helper: `fusermount3`, or libfuse 2's `fusermount` on a machine that only
/// has that (its `-u` does the same).
fn fusermount() -> &'static str {
    let found = |name: &str| {
        std::process::Command::new(name)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if found("fusermount3") || !found("fusermount") {
        "fusermount3"
    } else {
        "fusermount"
    }
}

fn have_helper() -> bool {
    ["fusermount3", "fusermount"].iter().any(|name| {
        std::process::Command::new(name)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

/// Whether `path` is a mount point according to /proc/self/mountinfo.
fn is_mounted(path: &Path) -> bool {
    fstype(path).is_some()
}

/// The file system type of the mount at `path` (from /proc/self/mountinfo), if mounted.
fn fstype(path: &Path) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    // Field 5 is the mount point, with space, tab, newline and backslash escaped as octal.
    let want = path
        .to_str()
        .expect("test paths are UTF-8")
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    // After the optional fields, " - " and then the file system type.
    info.lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|mp| mp == want))
        .find_map(|l| l.split(" - ").nth(1)?.split(' ').next().map(String::from))
}

/// A running `snapguard mount`.
struct Mount {
    child: Option<Child>,
    mountpoint: PathBuf,
    log: PathBuf,
}

impl Mount {
    /// Start `snapguard mount MOUNTPOINT EXTRA...` and wait until it serves the filesystem.
    fn start(sg: &Sg, ws: &Ws, extra: &[&str]) -> Mount {
        Mount::start_env(sg, ws, extra, &[])
    }

    /// [`Mount::start`] with extra environment variables.
    fn start_env(sg: &Sg, ws: &Ws, extra: &[&str], env: &[(&str, &str)]) -> Mount {
        let mountpoint = ws.path("mnt");
        fs::create_dir_all(&mountpoint).expect("mkdir mountpoint");
        let log = ws.path("mount.log");
        let child = sg
            .std_command()
            .envs(env.iter().copied())
            .arg("mount")
            .arg(&mountpoint)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("create log"))
            .spawn()
            .expect("spawn snapguard mount");
        let mut m = Mount {
            child: Some(child),
            mountpoint: mountpoint.canonicalize().expect("canonical mountpoint"),
            log,
        };
        let start = Instant::now();
        loop {
            if let Some(status) = m
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"))
            {
                m.child = None;
                panic!("snapguard mount exited early ({status}):\n{}", m.log_text());
            }
            if is_mounted(&m.mountpoint) && m.mountpoint.join("snapshots").is_dir() {
                return m;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the mount did not appear within {PATIENCE:?}:\n{}",
                m.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.mountpoint.join(rel)
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let child = self.child.as_ref().expect("the mount is running");
        let pid = rustix::process::Pid::from_child(child);
        rustix::process::kill_process(pid, sig).expect("send signal");
    }

    /// Wait for the process to exit; panics after [`PATIENCE`].
    fn wait(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("the mount is running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "snapguard mount did not exit within {PATIENCE:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.mountpoint) {
            let _ = std::process::Command::new(fusermount())
                .args(["-u", "-z", "--"])
                .arg(&self.mountpoint)
                .status();
        }
        if let Some(mut child) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The one entry of `dir` (panics unless there is exactly one).
fn only_entry(dir: &Path) -> String {
    let names = list_dir(dir).unwrap_or_else(|e| panic!("list {dir:?}: {e}"));
    assert_eq!(names.len(), 1, "{dir:?} holds {names:?}");
    names[0].to_str().expect("UTF-8 name").to_string()
}

/// `<time>-<short id>` as the mount names a snapshot taken at RFC 3339 `time`.
fn snapshot_name(time_z: &str, id: &str) -> String {
    format!("{time_z}-{}", &id[..8])
}

fn sorted_names(dir: &Path) -> Vec<String> {
    list_dir(dir)
        .unwrap_or_else(|e| panic!("list {dir:?}: {e}"))
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

/// The path of absolute source path `src` inside a snapshot directory of the mount.
fn inside(snapshot_dir: &Path, src: &Path) -> PathBuf {
    restored_path(snapshot_dir, src)
}

// ---------------------------------------------------------------------------

/// The varied tree (every kind of file and metadata) read through the mount equals the
/// source, and hard links share inode numbers that stay the same on every look.
#[test]
fn mounted_snapshot_equals_the_varied_source_tree() {
    if !fuse_available() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    varied::build(&mut fx);
    // A large sparse file and a multi-blob file exercise holes and read-ahead.
    fx.sparse_file(
        "big/sparse_64MiB",
        64 * MIB,
        &[(0, 4096), (17 * MIB, 3 * MIB as usize), (64 * MIB - 10, 10)],
        11,
    );
    fx.random_file("big/random_40MiB", 40 * MIB, 12);
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&src], &[]);
    b.out.expect_code(0);
    let m = Mount::start(&sg, &ws, &[]);
    let snapshots = m.path("snapshots");
    let name = only_entry(&snapshots);
    assert!(
        name.ends_with(&format!("-{}", &b.id[..8])),
        "{name} is named by the snapshot's short id {}",
        &b.id[..8]
    );
    let mounted = inside(&snapshots.join(&name), &src);
    let actual = Tree::scan(&mounted);
    assert_same(&built.tree, &actual, &Opts::default(), "mounted snapshot");

    // Inode numbers: equal for hard links (compare checked the groups), the same on a second
    // stat and in the directory listing (d_ino), different for different files.
    let h1 = mounted.join("hardlinks/a/h1");
    let ino = fs::symlink_metadata(&h1).expect("stat h1").ino();
    assert_eq!(fs::symlink_metadata(&h1).expect("stat h1").ino(), ino);
    assert_eq!(
        fs::symlink_metadata(mounted.join("hardlinks/b/h3"))
            .expect("stat h3")
            .ino(),
        ino
    );
    let listed: Vec<(std::ffi::OsString, u64)> = fs::read_dir(mounted.join("hardlinks/a"))
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name(), std::os::unix::fs::DirEntryExt::ino(&e))
        })
        .collect();
    for (n, i) in &listed {
        assert_eq!(*i, ino, "d_ino of hardlinks/a/{n:?}");
    }
    assert_ne!(
        fs::symlink_metadata(mounted.join("hardlinks/lonely"))
            .expect("stat")
            .ino(),
        ino
    );
    // access(2) answers as the owner-only mount's users (owner, root) are treated.
    use rustix::fs::{access, Access};
    assert_eq!(
        access(mounted.join("modes/file_0755"), Access::EXEC_OK),
        Ok(())
    );
    assert_eq!(
        access(mounted.join("modes/file_0644"), Access::EXEC_OK),
        Err(rustix::io::Errno::ACCESS)
    );
    assert_eq!(
        access(mounted.join("modes/file_0000"), Access::READ_OK),
        Ok(())
    );
    assert_eq!(
        access(mounted.join("files/text.txt"), Access::WRITE_OK),
        Err(rustix::io::Errno::ROFS)
    );
    // Read-only: nothing can be created or changed.
    let err = fs::write(mounted.join("files/new"), b"x").expect_err("write must fail");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );
    let err = fs::set_permissions(
        mounted.join("files/text.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .expect_err("chmod must fail");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );
}

/// Several readers at once (threads reading the same and different large files) all get
/// the right bytes.
#[test]
fn concurrent_readers_get_correct_content() {
    if !fuse_available() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    for i in 0..3 {
        fx.random_file(format!("f{i}"), 24 * MIB + i * 12_345, 100 + i);
    }
    fx.finish();
    let sg = Sg::init(&ws, None);
    sg.backup(&[&src], &[]).out.expect_code(0);
    let m = Mount::start(&sg, &ws, &[]);
    let dir = inside(&m.path("latest"), &src);
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let (mounted, original) = (
                dir.join(format!("f{}", t % 3)),
                src.join(format!("f{}", t % 3)),
            );
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut f = fs::File::open(&mounted).expect("open mounted file");
                // Odd read sizes, so reads straddle blob boundaries.
                let mut buf = vec![0u8; 100_003 + t as usize * 4096];
                loop {
                    let n = f.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(
                    got == fs::read(&original).expect("read source"),
                    "content of {mounted:?} differs"
                );
            })
        })
        .collect();
    for t in threads {
        t.join().expect("reader thread");
    }
}

/// `latest`, `tags/`, `hosts/` and `history/` for a file changed across backups.
#[test]
fn latest_tags_hosts_and_history() {
    if !fuse_available() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    let sg = Sg::init(&ws, None);
    let f = src.join("doc.txt");
    fs::create_dir_all(src.join("sub")).expect("mkdir");
    fs::write(src.join("sub/keep"), b"unchanged").expect("write");
    // Five backups: the content changes in the first three, the fourth only changes the mode
    // (no new version in history/), the fifth brings the first content back (the version it
    // was), and `gone` exists only in the second.
    let plan: [(&[u8], &str, &str, &str); 5] = [
        (b"version one\n", "2026-01-01T10:00:00Z", "alpha", "daily"),
        (
            b"version two, longer\n",
            "2026-01-02T10:00:00Z",
            "beta",
            "weekly",
        ),
        (b"v3\n", "2026-01-03T10:00:00Z", "alpha", "daily"),
        (b"v3\n", "2026-01-04T10:00:00Z", "alpha", "daily"),
        (b"version one\n", "2026-01-05T10:00:00Z", "alpha", "daily"),
    ];
    let mut names = Vec::new();
    for (i, (content, time, host, tag)) in plan.iter().enumerate() {
        fs::write(&f, content).expect("write doc");
        if i == 3 {
            fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        if i == 1 {
            fs::write(src.join("gone"), b"short-lived").expect("write gone");
        } else {
            let _ = fs::remove_file(src.join("gone"));
        }
        let b = sg.backup(&[&src], &["--time", time, "--host", host, "--tag", tag]);
        b.out.expect_code(0);
        names.push(snapshot_name(time, &b.id));
    }
    let m = Mount::start(&sg, &ws, &[]);

    assert_eq!(
        sorted_names(&m.mountpoint),
        ["history", "hosts", "latest", "snapshots", "tags"]
    );
    assert_eq!(sorted_names(&m.path("snapshots")), names);
    assert_eq!(
        fs::read_link(m.path("latest")).expect("readlink latest"),
        Path::new("snapshots").join(&names[4])
    );
    assert_eq!(
        fs::read(inside(&m.path("latest"), &f)).expect("read"),
        b"version one\n"
    );
    for (i, (content, ..)) in plan.iter().enumerate() {
        let p = inside(&m.path("snapshots").join(&names[i]), &f);
        assert_eq!(fs::read(&p).expect("read"), *content, "{p:?}");
    }

    // Tags and hosts: snapshot directories, oldest first, and a `latest` link.
    assert_eq!(sorted_names(&m.path("tags")), ["daily", "weekly"]);
    let daily = [&names[0], &names[2], &names[3], &names[4]];
    let mut expect: Vec<&str> = daily.iter().map(|s| s.as_str()).collect();
    expect.push("latest");
    assert_eq!(sorted_names(&m.path("tags/daily")), expect);
    assert_eq!(
        fs::read_link(m.path("tags/daily/latest")).expect("readlink"),
        Path::new(&names[4])
    );
    assert_eq!(
        fs::read(inside(&m.path("tags/weekly").join(&names[1]), &f)).expect("read"),
        plan[1].0
    );
    assert_eq!(sorted_names(&m.path("hosts")), ["alpha", "beta"]);
    assert_eq!(
        sorted_names(&m.path("hosts/beta")),
        [names[1].as_str(), "latest"]
    );
    assert_eq!(
        fs::read(inside(&m.path("hosts/alpha/latest"), &f)).expect("read"),
        b"version one\n"
    );

    // History: every directory on the way is a directory; the file's versions are named by
    // the snapshot they first appeared in; neither the mode-only change nor the return of the
    // first content is a new version.
    let hist_dir = inside(&m.path("history"), &src);
    assert_eq!(sorted_names(&hist_dir), ["doc.txt", "gone", "sub"]);
    let hist = hist_dir.join("doc.txt");
    assert_eq!(sorted_names(&hist), &names[..3]);
    for i in 0..3 {
        let v = hist.join(&names[i]);
        assert_eq!(fs::read(&v).expect("read version"), plan[i].0, "{v:?}");
        let meta = fs::symlink_metadata(&v).expect("stat version");
        assert!(meta.is_file());
        assert_eq!(meta.len(), plan[i].0.len() as u64);
    }
    assert_eq!(sorted_names(&hist_dir.join("gone")), [names[1].as_str()]);
    assert_eq!(sorted_names(&hist_dir.join("sub")), ["keep"]);
    assert_eq!(
        sorted_names(&hist_dir.join("sub/keep")),
        [names[0].as_str()],
        "an unchanged file is one version"
    );
    assert!(!hist_dir.join("missing").exists());
}

/// A snapshot made while the repository is mounted shows up, and its data reads (its blobs
/// are in index files written after the mount loaded the index).
#[test]
fn backup_made_while_mounted_appears() {
    if !fuse_available() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(&src).expect("mkdir");
    fs::write(src.join("a"), b"first").expect("write");
    let sg = Sg::init(&ws, None);
    let b1 = sg.backup(&[&src], &["--time", "2026-03-01T00:00:00Z"]);
    let m = Mount::start(&sg, &ws, &[]);
    assert_eq!(
        sorted_names(&m.path("snapshots")),
        [snapshot_name("2026-03-01T00:00:00Z", &b1.id)]
    );
    let fresh = random_bytes(77, 3 * MIB as usize);
    fs::write(src.join("b"), &fresh).expect("write");
    let b2 = sg.backup(&[&src], &["--time", "2026-03-02T00:00:00Z"]);
    let want = snapshot_name("2026-03-02T00:00:00Z", &b2.id);
    let start = Instant::now();
    while !sorted_names(&m.path("snapshots")).contains(&want) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{want} did not appear: {:?}",
            sorted_names(&m.path("snapshots"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        fs::read_link(m.path("latest")).expect("readlink"),
        Path::new("snapshots").join(&want)
    );
    let got =
        fs::read(inside(&m.path("snapshots").join(&want), &src.join("b"))).expect("read new file");
    assert!(got == fresh, "new snapshot's file content");
    assert_eq!(
        sorted_names(&inside(&m.path("history"), &src.join("b"))),
        [want.as_str()]
    );
}

/// How a test stops the mount.
enum Stop {
    Signal(rustix::process::Signal),
    Fusermount,
}

fn stop_and_check(stop: Stop) {
    if !fuse_available() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(&src).expect("mkdir");
    fs::write(src.join("a"), b"x").expect("write");
    let sg = Sg::init(&ws, None);
    sg.backup(&[&src], &[]).out.expect_code(0);
    let mut m = Mount::start(&sg, &ws, &[]);
    assert_eq!(
        fs::read(inside(&m.path("latest"), &src.join("a"))).expect("read"),
        b"x"
    );
    let locks = sg.repo.join("locks");
    assert_eq!(
        list_dir(&locks).expect("list locks").len(),
        1,
        "the mount holds a lock"
    );
    match stop {
        Stop::Signal(sig) => m.signal(sig),
        Stop::Fusermount => {
            let st = std::process::Command::new(fusermount())
                .arg("-u")
                .arg(&m.mountpoint)
                .status()
                .expect("run fusermount3");
            assert!(st.success(), "{} -u: {st}", fusermount());
        }
    }
    let status = m.wait();
    assert_eq!(status.code(), Some(0), "exit status\n{}", m.log_text());
    assert!(!is_mounted(&m.mountpoint), "still in /proc/self/mountinfo");
    assert!(
        list_dir(&m.mountpoint).expect("list").is_empty(),
        "the mountpoint is empty again"
    );
    assert!(
        list_dir(&locks).expect("list locks").is_empty(),
        "the lock is released"
    );
    assert!(m.log_text().contains("unmounted"), "{}", m.log_text());
}

#[test]
fn sigterm_unmounts_and_exits_0() {
    stop_and_check(Stop::Signal(rustix::process::Signal::TERM));
}

#[test]
fn sigint_unmounts_and_exits_0() {
    stop_and_check(Stop::Signal(rustix::process::Signal::INT));
}

#[test]
fn fusermount_u_ends_the_process_with_0() {
    stop_and_check(Stop::Fusermount);
}

/// A bad mountpoint is refused with exit code 2 before any password is needed.
#[test]
fn bad_mountpoints_are_usage_errors() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let missing = ws.path("missing");
    let out = sg.run([Path::new("mount"), &missing]);
    out.expect_code(2);
    assert!(out.stderr_str().contains("does not exist"), "{out}");
    let file = ws.path("file");
    fs::write(&file, b"x").expect("write");
    let out = sg.run([Path::new("mount"), &file]);
    out.expect_code(2);
    assert!(out.stderr_str().contains("not a directory"), "{out}");
    let full = ws.path("full");
    fs::create_dir_all(&full).expect("mkdir");
    fs::write(full.join("x"), b"x").expect("write");
    let out = sg.run([Path::new("mount"), &full]);
    out.expect_code(2);
    assert!(out.stderr_str().contains("not empty"), "{out}");
    // Nothing was mounted, and the repository holds no lock.
    assert!(!is_mounted(&full));
    assert!(list_dir(&sg.repo.join("locks")).expect("list").is_empty());
}

/// Run `cat PATH` as uid/gid 65534 (nobody); Ok(content) or Err(stderr).
fn cat_as_nobody(path: &Path) -> Result<Vec<u8>, String> {
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "cat",
        ])
        .arg(path)
        .output()
        .expect("run setpriv");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Without `--allow-other` only the mounting user gets in; with it, every user does and the
/// kernel enforces each file's mode, owner and POSIX ACL.
#[test]
fn allow_other_enforces_modes_and_acls() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    if !fuse_available() {
        return;
    }
    use crate::support::acl::*;
    let ws = Ws::new();
    // Let uid 65534 reach the mountpoint below the (0700) test directory.
    fs::set_permissions(&ws.root, fs::Permissions::from_mode(0o755)).expect("chmod ws");
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("public", b"for everyone");
    fx.file("private", b"root only");
    fx.mode("private", 0o600);
    fx.file("acl_grants", b"nobody may read this");
    fx.mode("acl_grants", 0o640);
    fx.xattr(
        "acl_grants",
        ACCESS,
        &crate::support::acl_xattr(&[
            (USER_OBJ, 6, UNDEFINED_ID),
            (USER, 4, 65534),
            (GROUP_OBJ, 4, UNDEFINED_ID),
            (MASK, 4, UNDEFINED_ID),
            (OTHER, 0, UNDEFINED_ID),
        ]),
    );
    fx.mode("", 0o755);
    fx.finish();
    let sg = Sg::init(&ws, None);
    sg.backup(&[&src], &[]).out.expect_code(0);

    let mut m = Mount::start(&sg, &ws, &[]);
    let dir = inside(&m.path("latest"), &src);
    let e = cat_as_nobody(&dir.join("public")).expect_err("others are kept out");
    assert!(e.contains("Permission denied"), "{e}");
    assert_eq!(
        fs::read(dir.join("private")).expect("owner reads"),
        b"root only"
    );
    m.signal(rustix::process::Signal::TERM);
    assert_eq!(m.wait().code(), Some(0));
    drop(m);

    let m = Mount::start(&sg, &ws, &["--allow-other"]);
    let dir = inside(&m.path("latest"), &src);
    assert_eq!(
        cat_as_nobody(&dir.join("public")).as_deref(),
        Ok(&b"for everyone"[..])
    );
    let e = cat_as_nobody(&dir.join("private")).expect_err("mode 0600 of root");
    assert!(e.contains("Permission denied"), "{e}");
    assert_eq!(
        cat_as_nobody(&dir.join("acl_grants")).as_deref(),
        Ok(&b"nobody may read this"[..]),
        "the ACL entry for uid 65534 grants what mode 0640 alone would not"
    );
}

/// Damaged data is an I/O error for the reader, the log names the blob, and the mount keeps
/// serving everything else.
#[test]
fn missing_data_is_an_io_error_and_the_mount_survives() {
    if !fuse_available() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(&src).expect("mkdir");
    let sg = Sg::init(&ws, None);
    fs::write(src.join("small"), b"still readable").expect("write");
    sg.backup(&[&src], &["--time", "2026-05-01T00:00:00Z"])
        .out
        .expect_code(0);
    let packs_before: Vec<PathBuf> = walk_files(&sg.repo.join("data"));
    fs::write(src.join("big"), random_bytes(9, 2 * MIB as usize)).expect("write");
    sg.backup(&[&src], &["--time", "2026-05-02T00:00:00Z"])
        .out
        .expect_code(0);
    // Remove the packs the second backup added: they hold only `big`'s data (its tree is
    // in them too, so read the listing first).
    let m = Mount::start(&sg, &ws, &[]);
    let dir = inside(&m.path("latest"), &src);
    assert_eq!(sorted_names(&dir), ["big", "small"]);
    for p in walk_files(&sg.repo.join("data")) {
        if !packs_before.contains(&p) {
            fs::remove_file(&p).expect("remove pack");
        }
    }
    let err = fs::read(dir.join("big")).expect_err("the data is gone");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::IO.raw_os_error()),
        "{err}"
    );
    assert_eq!(
        fs::read(dir.join("small")).expect("read"),
        b"still readable"
    );
    let log = m.log_text();
    assert!(
        log.contains("integrity error") && log.contains("blob"),
        "{log}"
    );
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd {
            let p = e.expect("entry").path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A mount with a file still open: SIGTERM detaches it from the directory tree at once, the
/// open file stays readable, and the process exits 0 when the file is closed. With the
/// fusermount helper (auto_unmount) and, as root, without it (a busy umount falls back to a
/// lazy one).
fn busy_unmount(env: &[(&str, &str)]) {
    if !fuse_available() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(&src).expect("mkdir");
    let data = random_bytes(3, 5 * MIB as usize);
    fs::write(src.join("held"), &data).expect("write");
    let sg = Sg::init(&ws, None);
    sg.backup(&[&src], &[]).out.expect_code(0);
    let mut m = Mount::start_env(&sg, &ws, &[], env);
    let kind = fstype(&m.mountpoint).expect("mounted");
    if env.is_empty() && have_helper() {
        assert_eq!(kind, "fuse.snapguard", "mounted through the helper");
    } else {
        assert_eq!(kind, "fuse", "mounted with mount(2) directly");
    }
    let mut held = fs::File::open(inside(&m.path("latest"), &src.join("held"))).expect("open");
    m.signal(rustix::process::Signal::TERM);
    let start = Instant::now();
    while is_mounted(&m.mountpoint) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still mounted:\n{}",
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        m.child
            .as_mut()
            .expect("child")
            .try_wait()
            .expect("try_wait")
            .is_none(),
        "the process serves the open file until it is closed:\n{}",
        m.log_text()
    );
    let mut got = Vec::new();
    held.read_to_end(&mut got)
        .expect("read the open file after the unmount");
    assert!(got == data, "content of the held file");
    drop(held);
    assert_eq!(m.wait().code(), Some(0), "{}", m.log_text());
}

#[test]
fn busy_mount_detaches_and_exits_0_when_the_file_is_closed() {
    busy_unmount(&[]);
}

#[test]
fn busy_mount_without_the_helper_detaches_too() {
    if !crate::support::is_root() {
        eprintln!("skipped: only root mounts without the fusermount helper");
        return;
    }
    // No helper in PATH: snapguard mounts with mount(2) itself and unmounts with umount(2),
    // which fails with EBUSY while the file is open.
    busy_unmount(&[("PATH", "/nonexistent")]);
}

/// `kill -9` gives no chance to unmount; the fusermount helper (auto_unmount) does it.
#[test]
fn killed_mount_is_unmounted_by_the_helper() {
    if !fuse_available() {
        return;
    }
    if !have_helper() {
        eprintln!("skipped: neither fusermount3 nor fusermount is installed");
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(&src).expect("mkdir");
    fs::write(src.join("a"), b"x").expect("write");
    let sg = Sg::init(&ws, None);
    sg.backup(&[&src], &[]).out.expect_code(0);
    let mut m = Mount::start(&sg, &ws, &[]);
    m.signal(rustix::process::Signal::KILL);
    m.wait();
    let start = Instant::now();
    while is_mounted(&m.mountpoint) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the helper did not unmount after kill -9"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(list_dir(&m.mountpoint).expect("list").is_empty());
}
