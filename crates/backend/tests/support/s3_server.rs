//! A real S3 server for tests: `s3s-fs` (crates.io, `cargo install --locked s3s-fs@0.14.1
//! --features binary`) on a free 127.0.0.1 port over a temporary directory, with one bucket;
//! killed on drop. It checks SigV4 signatures, so the credentials below must be sent. Also
//! compiled into the CLI's integration tests (crates/cli/tests/it/s3.rs), so it uses nothing
//! but std and tempfile.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "snapguard-test-key";
pub const SECRET_KEY: &str = "snapguard-test-secret";
pub const BUCKET: &str = "snapguard-test";
/// The server's domain for virtual-hosted-style requests (`BUCKET.DOMAIN`); tests make it
/// resolve to 127.0.0.1 themselves.
pub const DOMAIN: &str = "s3.snapguard.test";

pub struct S3Server {
    child: Option<Child>,
    binary: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// `s3s-fs` on PATH or in ~/.cargo/bin.
fn find_binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
}

impl S3Server {
    /// `None` (after printing why) when s3s-fs is not installed; in CI that is a failure.
    pub fn start() -> Option<S3Server> {
        let Some(binary) = find_binary() else {
            if std::env::var_os("CI").is_some() && std::env::var_os("SG_ALLOW_SKIP").is_none() {
                panic!("S3 test cannot run in CI: s3s-fs is not installed (.ci/run installs it)");
            }
            eprintln!(
                "skipped: s3s-fs is not installed (cargo install --locked s3s-fs@0.14.1 --features binary)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        // s3s-fs maps each bucket to a directory under its root.
        std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut s = S3Server {
            child: None,
            binary,
            dir,
            port,
        };
        s.restart();
        Some(s)
    }

    /// The endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The repository URL of `prefix` in the test bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3:{}/{BUCKET}/{prefix}", self.endpoint())
    }

    /// The directory holding the bucket's objects as files.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join(BUCKET)
    }

    /// Stop the server (as a crash would: SIGKILL), keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start the server again on the same port and data (after [`S3Server::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            // Requests to BUCKET.DOMAIN are virtual-hosted style; to 127.0.0.1, path style.
            // (s3s compares the whole Host header, port included).
            .arg("--domain")
            .arg(format!("{DOMAIN}:{}", self.port))
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "s3s-fs did not start listening on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}
