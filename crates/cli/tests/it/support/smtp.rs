//! A real SMTP server for the notification tests: aiosmtpd (PyPI; `.ci/run` installs it) on a
//! free 127.0.0.1 port, storing every message in a Maildir; killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    maildir: PathBuf,
}

impl SmtpSink {
    /// `None` (after printing why) when aiosmtpd is not installed; in CI that is a failure.
    pub fn start(dir: &Path) -> Option<SmtpSink> {
        SmtpSink::start_with(dir, None)
    }

    /// With STARTTLS offered under `cert`/`key` (PEM) when given.
    pub fn start_with(dir: &Path, tls: Option<(&Path, &Path)>) -> Option<SmtpSink> {
        let have = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            if std::env::var_os("CI").is_some() && std::env::var_os("SG_ALLOW_SKIP").is_none() {
                panic!(
                    "SMTP test cannot run in CI: aiosmtpd is not installed (.ci/run installs it)"
                );
            }
            eprintln!("skipped: aiosmtpd is not installed (pip install aiosmtpd)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let maildir = dir.join("maildir");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(
                tls.map(|(c, k)| {
                    vec![
                        "--tlscert".into(),
                        c.as_os_str().to_owned(),
                        "--tlskey".into(),
                        k.as_os_str().to_owned(),
                    ]
                })
                .unwrap_or_default(),
            )
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(SmtpSink {
            child,
            port,
            maildir,
        })
    }

    /// The messages received so far, as text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(d) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for e in d.flatten() {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    out.push(t);
                }
            }
        }
        out
    }

    /// Waits until at least `n` messages arrived (at most 30 s).
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        let t0 = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "only {} of {n} messages arrived",
                m.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
