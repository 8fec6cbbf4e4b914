//! An S3 server that enforces Object Lock, for tests: moto's server mode (`pip install
//! 'moto[server]'`, started as `python3 -m moto.server`) on a free 127.0.0.1 port; killed on
//! drop. s3s-fs has no Object Lock, moto refuses to delete a retained object version like AWS
//! does. moto does not check signatures, so [`MotoServer::raw`] can also send plain HTTP
//! requests around SnapGuard's client (to create buckets and to prove the enforcement).
//! Also compiled into the CLI's integration tests (crates/cli/tests/it/object_lock.rs), so it
//! uses nothing but std.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "snapguard-moto-key";
pub const SECRET_KEY: &str = "snapguard-moto-secret";

pub struct MotoServer {
    child: Child,
    pub port: u16,
}

/// One plain HTTP answer.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// Header lines, lower-cased names: `name: value`.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl MotoServer {
    /// `None` (after printing why) when moto is not installed; in CI that is a failure.
    pub fn start() -> Option<MotoServer> {
        let have = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            if std::env::var_os("CI").is_some() && std::env::var_os("SG_ALLOW_SKIP").is_none() {
                panic!("object lock test cannot run in CI: moto is not installed (.ci/run installs it)");
            }
            eprintln!("skipped: moto is not installed (pip install 'moto[server]')");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto server");
        let s = MotoServer { child, port };
        // Listening is not enough: wait until it answers HTTP.
        let t0 = Instant::now();
        loop {
            if s.try_raw("GET", "/", &[], "").is_ok() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "moto did not start answering on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(s)
    }

    /// The endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The repository URL of `prefix` in `bucket`.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!("s3:{}/{bucket}/{prefix}", self.endpoint())
    }

    /// Create `bucket`, with Object Lock enabled (which also enables versioning) or without.
    pub fn create_bucket(&self, bucket: &str, object_lock: bool) {
        let mut headers = vec![];
        if object_lock {
            headers.push(("x-amz-bucket-object-lock-enabled", "true"));
        }
        let r = self.raw("PUT", &format!("/{bucket}"), &headers);
        assert_eq!(r.status, 200, "create bucket {bucket}: {r:?}");
    }

    /// Send one unsigned request (`path` includes the bucket and any query).
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> RawReply {
        self.raw_with_body(method, path, headers, "")
    }

    /// [`MotoServer::raw`] with a body.
    pub fn raw_with_body(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> RawReply {
        self.try_raw(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Give `bucket` (created with Object Lock) a default retention rule of `days`.
    pub fn set_default_retention(&self, bucket: &str, days: u32) {
        let body = format!(
            "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>{days}</Days></DefaultRetention></Rule></ObjectLockConfiguration>"
        );
        let r = self.raw_with_body("PUT", &format!("/{bucket}?object-lock"), &[], &body);
        assert_eq!(r.status, 200, "{r:?}");
    }

    fn try_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<RawReply> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        // moto does not verify signatures, but it takes the caller's identity from the
        // credential scope: the same account as SnapGuard's signed requests, so objects they
        // wrote are visible.
        req.push_str(&format!(
            "Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n"
        ));
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {head:?}")))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(RawReply {
            status,
            headers,
            body: body.to_string(),
        })
    }

    /// All versions of all objects in `bucket` (ListObjectVersions), as (key, version id,
    /// is delete marker).
    pub fn versions(&self, bucket: &str) -> Vec<(String, String, bool)> {
        let r = self.raw("GET", &format!("/{bucket}?versions"), &[]);
        assert_eq!(r.status, 200, "{r:?}");
        let mut out = Vec::new();
        for (tag, marker) in [("Version", false), ("DeleteMarker", true)] {
            for chunk in r.body.split(&format!("<{tag}>")).skip(1) {
                let field = |name: &str| {
                    chunk
                        .split(&format!("<{name}>"))
                        .nth(1)
                        .and_then(|x| x.split(&format!("</{name}>")).next())
                        .unwrap_or_default()
                        .to_string()
                };
                out.push((field("Key"), field("VersionId"), marker));
            }
        }
        out
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
