//! A real sshd on 127.0.0.1 for the replication tests: root may log in with a key generated
//! for the test; the daemon is killed on drop. Also compiled into the library's replication
//! tests (crates/local/tests/live_send), so it uses nothing but std and tempfile.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Sshd {
    /// `None` (after printing why) when openssh is not installed; in CI that is a failure.
    pub fn start() -> Option<Sshd> {
        let sshd = Path::new("/usr/sbin/sshd");
        let have_client = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("ssh").exists()));
        if !sshd.exists() || !have_client {
            if std::env::var_os("CI").is_some() && std::env::var_os("SG_ALLOW_SKIP").is_none() {
                panic!("ssh test cannot run in CI: openssh-server/openssh-client not installed");
            }
            eprintln!("skipped: openssh-server is not installed (apt-get install openssh-server)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for k in ["host", "user"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(k))
                .status()
                .expect("ssh-keygen");
            assert!(ok.success(), "ssh-keygen failed");
        }
        std::fs::copy(d.join("user.pub"), d.join("authorized")).expect("authorized_keys");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = spawn(d, port);
        let s = Sshd { child, dir, port };
        s.wait_listening();
        Some(s)
    }

    fn wait_listening(&self) {
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "sshd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Drop every connection: SIGKILL the daemon and the sessions it forked (found through
    /// /proc before the daemon dies, while they are still its children).
    pub fn kill_all(&mut self) {
        let mut pids = vec![self.child.id()];
        let mut i = 0;
        while i < pids.len() {
            pids.extend(children_of(pids[i]));
            i += 1;
        }
        for pid in pids.iter().rev() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.wait();
    }

    /// Start the daemon again on the same port with the same keys (after [`Sshd::kill_all`]).
    pub fn restart(&mut self) {
        self.child = spawn(self.dir.path(), self.port);
        self.wait_listening();
    }

    /// The ssh program and its options that log in with the generated key (for
    /// `SendOptions::ssh_command`).
    pub fn ssh_args(&self) -> Vec<String> {
        let key = self.dir.path().join("user").display().to_string();
        [
            "ssh",
            "-i",
            &key,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// The same as one command line (for `--ssh-command` / `SNAPGUARD_RSH`; the key's path
    /// has no spaces).
    pub fn ssh_command(&self) -> String {
        self.ssh_args().join(" ")
    }

    /// The known-hosts file that [`Sshd::client_path`]'s `ssh` uses.
    pub fn known_hosts(&self) -> std::path::PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// A `PATH` for programs that run plain `ssh` (the SFTP backend does, through OpenSSH):
    /// first a directory whose `ssh` is the real one with a known-hosts file of this test's
    /// own that holds exactly this server's host key, so host keys are checked strictly (the
    /// default) and nothing is written to the user's `~/.ssh/known_hosts`.
    pub fn client_path(&self) -> std::ffi::OsString {
        let d = self.dir.path();
        let bin = d.join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir bin");
        let real = std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("ssh"))
                    .find(|s| s.exists() && !s.starts_with(&bin))
            })
            .expect("ssh on PATH");
        let host_key = std::fs::read_to_string(d.join("host.pub")).expect("host.pub");
        let known = self.known_hosts();
        std::fs::write(&known, format!("[127.0.0.1]:{} {host_key}", self.port))
            .expect("known_hosts");
        let wrapper = bin.join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} -o UserKnownHostsFile={} \"$@\"\n",
                real.display(),
                known.display()
            ),
        )
        .expect("ssh wrapper");
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod ssh wrapper");
        let mut paths = vec![bin];
        if let Some(p) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&p));
        }
        std::env::join_paths(paths).expect("PATH")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // In-process SFTP tests (the backend matrix) cannot give `ssh` a known-hosts file of
        // their own and accept the key, which OpenSSH records in root's known_hosts: remove
        // this server's entry again.
        let mark = format!("[127.0.0.1]:{} ", self.port);
        let user_file = Path::new("/root/.ssh/known_hosts");
        if std::fs::read_to_string(user_file).is_ok_and(|s| s.contains(&mark)) {
            let _ = Command::new("ssh-keygen")
                .arg("-R")
                .arg(format!("[127.0.0.1]:{}", self.port))
                .arg("-f")
                .arg(user_file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_file("/root/.ssh/known_hosts.old");
        }
    }
}

/// The daemon in the foreground on `port` with the keys in `d`.
fn spawn(d: &Path, port: u16) -> Child {
    Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-p", &port.to_string(), "-h"])
        .arg(d.join("host"))
        .args(["-o", "ListenAddress=127.0.0.1"])
        .args(["-o", "PermitRootLogin=prohibit-password"])
        .arg("-o")
        .arg(format!(
            "AuthorizedKeysFile={}",
            d.join("authorized").display()
        ))
        .args([
            "-o",
            "UsePAM=no",
            "-o",
            "PidFile=none",
            "-o",
            "StrictModes=no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sshd")
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "PID (COMM) STATE PPID ...": COMM may contain spaces, so parse after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            if let Some(p) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
                out.push(p);
            }
        }
    }
    out
}
