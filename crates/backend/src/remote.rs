//! Remote repositories through OpenDAL: S3-compatible object storage and SFTP.
//!
//! [`OpendalBackend`] keeps the object layout of [`crate::LocalBackend`] (`config`, `keys/ID`,
//! `data/AB/ID`, …, see [`FileType::path`]) under a prefix, so a repository can be copied file
//! for file between a directory, a bucket and an SFTP server and opened from any of them. It
//! owns a small tokio runtime and blocks on OpenDAL's async operator, so the engine's threads
//! call it like any other [`Backend`]. Transient failures are retried with exponential backoff
//! (OpenDAL's `RetryLayer`), every request has a timeout, and the number of requests in flight
//! is bounded (`ConcurrentLimitLayer`, [`RemoteOptions::connections`]).
//!
//! It does not read environment variables or configuration files itself beyond what OpenDAL's
//! S3 credential chain does (the standard `AWS_*` variables and `~/.aws` profile files); the
//! CLI turns a repository URL and its options into an [`S3Config`] or [`SftpConfig`].

use crate::object_lock::{retained, S3Lock};
use crate::{Backend, BackendError, FileType, Result};
use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions, WriteOptions};
use opendal::{EntryMode, ErrorKind, Operator};
use std::time::Duration;

/// Tuning shared by all remote services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Requests in flight at once (uploads, downloads, listings together).
    pub connections: usize,
    /// How often a request that failed with a transient error is retried.
    pub retries: usize,
    /// Longest wait for a request to make progress before it counts as failed (and is retried).
    pub io_timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            connections: 8,
            retries: 4,
            io_timeout: Duration::from_secs(60),
        }
    }
}

/// Where an S3-compatible repository lives and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http(s)://HOST[:PORT]`.
    pub endpoint: String,
    pub bucket: String,
    /// The repository's prefix inside the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// The signing region.
    pub region: String,
    /// `https://BUCKET.HOST/KEY` instead of `https://HOST/BUCKET/KEY`.
    pub virtual_host_style: bool,
    /// Explicit credentials; `None` leaves them to OpenDAL's chain (environment, profile files).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret key never appears in logs or messages.
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("virtual_host_style", &self.virtual_host_style)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A repository URL that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("repository URL {url:?}: {reason}")]
pub struct UrlError {
    pub url: String,
    pub reason: String,
}

impl S3Config {
    /// Parse the part after `s3:`: `https://HOST[:PORT]/BUCKET[/PREFIX]` (or `http://` for a
    /// server without TLS; without a scheme, `https` is assumed). Region and credentials are
    /// left for the caller to fill in.
    pub fn parse(rest: &str) -> std::result::Result<S3Config, UrlError> {
        let err = |reason: &str| UrlError {
            url: format!("s3:{rest}"),
            reason: reason.to_string(),
        };
        let (scheme, after) = match rest.split_once("://") {
            Some((s @ ("http" | "https"), a)) => (s, a),
            Some(_) => return Err(err("the scheme must be http:// or https://")),
            None => ("https", rest),
        };
        let (host, path) = after.split_once('/').unwrap_or((after, ""));
        if host.is_empty() || host.contains('@') {
            return Err(err(
                "expected s3:https://HOST[:PORT]/BUCKET[/PREFIX] (credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not in the URL)",
            ));
        }
        let path = path.trim_matches('/');
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(err(
                "no bucket; expected s3:https://HOST[:PORT]/BUCKET[/PREFIX]",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
            && !prefix.is_empty()
        {
            return Err(err("the prefix must not contain empty, '.' or '..' parts"));
        }
        Ok(S3Config {
            endpoint: format!("{scheme}://{host}"),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            region: "us-east-1".to_string(),
            virtual_host_style: false,
            access_key_id: None,
            secret_access_key: None,
        })
    }

    /// The URL this configuration was parsed from, for messages.
    pub fn url(&self) -> String {
        let mut u = format!("s3:{}/{}", self.endpoint, self.bucket);
        if !self.prefix.is_empty() {
            u.push('/');
            u.push_str(&self.prefix);
        }
        u
    }
}

/// Where an SFTP repository lives: `sftp:[USER@]HOST[:PORT]/PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftpConfig {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The repository directory on the server: absolute, or relative to the login directory.
    pub path: String,
    /// A private key file; without one, ssh uses the agent and `~/.ssh` as OpenSSH does.
    pub key: Option<String>,
    /// `strict`, `add` or `accept` (OpenSSH's StrictHostKeyChecking yes / accept-new / no);
    /// default strict.
    pub known_hosts_strategy: Option<String>,
}

impl SftpConfig {
    /// Parse the part after `sftp:`: `[USER@]HOST[:PORT]/PATH`.
    pub fn parse(rest: &str) -> std::result::Result<SftpConfig, UrlError> {
        let err = |reason: &str| UrlError {
            url: format!("sftp:{rest}"),
            reason: reason.to_string(),
        };
        let rest_no_scheme = rest.strip_prefix("//").unwrap_or(rest);
        let Some((authority, path)) = rest_no_scheme.split_once('/') else {
            return Err(err("no path; expected sftp:[USER@]HOST[:PORT]/PATH"));
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
            Some(_) => return Err(err("empty user name before '@'")),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(p) => (h, Some(p)),
                Err(_) => return Err(err("the port must be a number from 1 to 65535")),
            },
            None => (hostport, None),
        };
        if host.is_empty() {
            return Err(err("no host; expected sftp:[USER@]HOST[:PORT]/PATH"));
        }
        // `HOST/srv/repo` is the absolute path /srv/repo; `HOST/~/repo` is relative to the
        // login directory.
        let path = path.trim_end_matches('/');
        let path = match path.strip_prefix('~') {
            Some(rel) => rel.trim_start_matches('/').to_string(),
            None => format!("/{path}"),
        };
        if path.is_empty() || path == "/" {
            return Err(err("no path; expected sftp:[USER@]HOST[:PORT]/PATH"));
        }
        Ok(SftpConfig {
            user,
            host: host.to_string(),
            port,
            path,
            key: None,
            known_hosts_strategy: None,
        })
    }

    /// The URL this configuration was parsed from, for messages.
    pub fn url(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        if self.path.starts_with('/') {
            format!("sftp:{user}{}{port}{}", self.host, self.path)
        } else {
            format!("sftp:{user}{}{port}/~/{}", self.host, self.path)
        }
    }
}

/// Which service an [`OpendalBackend`] talks to: they differ in directories and conditional
/// writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    /// Flat keys, no directories; `If-None-Match: *` makes writes write-once.
    S3,
    /// A real file system: directories must exist, writes go to a temporary name first.
    Sftp,
}

/// A repository on a remote service reached through OpenDAL.
#[derive(Debug)]
pub struct OpendalBackend {
    op: Operator,
    rt: tokio::runtime::Runtime,
    service: Service,
    location: String,
    /// S3 only: Object Lock requests (see `object_lock.rs`), and once a retention is set, the
    /// path every retained write and every removal takes.
    lock: Option<std::sync::Arc<S3Lock>>,
}

impl OpendalBackend {
    /// A backend for an S3-compatible bucket. Nothing is contacted until the first operation.
    pub fn s3(cfg: &S3Config, opts: &RemoteOptions) -> Result<OpendalBackend> {
        let mut b = opendal::services::S3::default()
            .endpoint(&cfg.endpoint)
            .bucket(&cfg.bucket)
            .root(&format!("/{}", cfg.prefix))
            .region(&cfg.region);
        if cfg.virtual_host_style {
            b = b.enable_virtual_host_style();
        }
        if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
            b = b.access_key_id(id).secret_access_key(secret);
        }
        let location = cfg.url();
        let op = Operator::new(b).map_err(|e| remote_err(&location, e))?;
        let mut backend = OpendalBackend::with_operator(op, Service::S3, location, opts)?;
        backend.lock = Some(std::sync::Arc::new(S3Lock::new(cfg, opts)?));
        Ok(backend)
    }

    /// A backend for a directory on an SFTP server, through the system's `ssh` (OpenSSH with a
    /// control master). Nothing is contacted until the first operation.
    pub fn sftp(cfg: &SftpConfig, opts: &RemoteOptions) -> Result<OpendalBackend> {
        let mut endpoint = String::from("ssh://");
        if let Some(u) = &cfg.user {
            endpoint.push_str(u);
            endpoint.push('@');
        }
        endpoint.push_str(&cfg.host);
        if let Some(p) = cfg.port {
            endpoint.push_str(&format!(":{p}"));
        }
        let mut b = opendal::services::Sftp::default()
            .endpoint(&endpoint)
            .root(&cfg.path);
        if let Some(user) = &cfg.user {
            b = b.user(user);
        }
        if let Some(key) = &cfg.key {
            b = b.key(key);
        }
        if let Some(s) = &cfg.known_hosts_strategy {
            b = b.known_hosts_strategy(s);
        }
        let location = cfg.url();
        let op = Operator::new(b).map_err(|e| remote_err(&location, e))?;
        OpendalBackend::with_operator(op, Service::Sftp, location, opts)
    }

    fn with_operator(
        op: Operator,
        service: Service,
        location: String,
        opts: &RemoteOptions,
    ) -> Result<OpendalBackend> {
        // Registers the reqwest HTTP transport as the process default (idempotent).
        opendal::install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("snapguard-remote")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Io {
                path: location.clone(),
                source: e,
            })?;
        // Innermost first: each retry is a request of its own with its own timeout, and a
        // request waiting for its backoff does not hold a connection slot.
        let op = op
            .layer(TimeoutLayer::new().with_io_timeout(opts.io_timeout))
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_min_delay(Duration::from_millis(500))
                    .with_max_delay(Duration::from_secs(30))
                    .with_max_times(opts.retries),
            )
            // The HTTP limit counts requests on the wire (a multipart upload's parts, a
            // write-once check's read): no more than `connections` are ever in flight.
            .layer(
                ConcurrentLimitLayer::new(opts.connections.max(1))
                    .with_http_concurrent_limit(opts.connections.max(1)),
            );
        Ok(OpendalBackend {
            op,
            rt,
            service,
            location,
            lock: None,
        })
    }

    /// The full location of an object, for messages.
    fn display(&self, key: &str) -> String {
        format!("{}/{key}", self.location.trim_end_matches('/'))
    }

    fn err(&self, key: &str, e: opendal::Error) -> BackendError {
        remote_err(&self.display(key), e)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        match self.rt.block_on(self.op.stat(key)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// S3: a conditional `PUT` with `If-None-Match: *`, which the server refuses if the key
    /// exists.
    fn write_s3(&self, key: &str, data: &[u8]) -> Result<()> {
        let opts = WriteOptions {
            if_not_exists: true,
            ..WriteOptions::default()
        };
        let res = self
            .rt
            .block_on(self.op.write_options(key, data.to_vec(), opts));
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => {
                // A retried request whose first attempt did reach the server finds its own
                // object: names are content or random ids, so the same bytes mean it is ours.
                match self.rt.block_on(self.op.read(key)) {
                    Ok(existing) if existing.to_vec() == data => Ok(()),
                    _ => Err(BackendError::AlreadyExists {
                        path: self.display(key),
                    }),
                }
            }
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// SFTP: upload to a temporary name in the same directory, then rename. The rename makes
    /// the file appear complete or not at all; write-once is a check before the rename, which
    /// could race with another writer of the same name, but names are content hashes or random
    /// ids, so two writers of one name write the same bytes.
    fn write_sftp(&self, key: &str, data: &[u8]) -> Result<()> {
        if self.exists(key)? {
            return Err(BackendError::AlreadyExists {
                path: self.display(key),
            });
        }
        let tmp = temp_key(key);
        self.rt
            .block_on(self.op.write(&tmp, data.to_vec()))
            .map_err(|e| self.err(&tmp, e))?;
        let res = self.rt.block_on(self.op.rename(&tmp, key));
        if let Err(e) = res {
            let _ = self.rt.block_on(self.op.delete(&tmp));
            return Err(self.err(key, e));
        }
        Ok(())
    }
}

/// A temporary name next to `key` (`dir/.tmp-RANDOM`), which `list` skips.
fn temp_key(key: &str) -> String {
    let mut suffix = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut suffix);
    let name = format!(".tmp-{}", hex::encode(suffix));
    match key.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name,
    }
}

fn remote_err(path: &str, e: opendal::Error) -> BackendError {
    let path = path.to_string();
    // OpenDAL reports S3's NoSuchBucket as an invalid configuration; only the code tells.
    if e.to_string().contains("NoSuchBucket") {
        return BackendError::BucketMissing { location: path };
    }
    match e.kind() {
        ErrorKind::NotFound => BackendError::NotFound { path },
        ErrorKind::AlreadyExists | ErrorKind::ConditionNotMatch => {
            BackendError::AlreadyExists { path }
        }
        // Kept with the server's reason (SignatureDoesNotMatch, AccessDenied, InvalidAccessKeyId):
        // for a remote store it is usually the credentials, which the message says to check.
        _ => BackendError::Remote {
            path,
            source: Box::new(e),
        },
    }
}

impl OpendalBackend {
    /// The Object Lock client if a write retention is set (an object-lock repository).
    fn retaining(&self) -> Option<&S3Lock> {
        self.lock
            .as_deref()
            .filter(|l| l.write_retention().is_some())
    }

    /// A write-once PUT carrying the retention; a refusal because the key exists is handled
    /// like [`OpendalBackend::write_s3`] (a retried upload finds its own bytes).
    fn write_retained(&self, lock: &S3Lock, key: &str, data: &[u8]) -> Result<()> {
        if self.rt.block_on(lock.put(key, data, true))? {
            tracing::trace!(key = %key, len = data.len(), "wrote with retention");
            return Ok(());
        }
        match self.rt.block_on(self.op.read(key)) {
            Ok(existing) if existing.to_vec() == data => Ok(()),
            _ => Err(BackendError::AlreadyExists {
                path: self.display(key),
            }),
        }
    }
}

impl crate::ObjectLock for OpendalBackend {
    fn bucket_lock(&self) -> Result<crate::BucketLock> {
        match &self.lock {
            Some(l) => self.rt.block_on(l.bucket_lock()),
            None => Ok(crate::BucketLock::default()),
        }
    }

    fn set_write_retention(&self, r: Option<crate::WriteRetention>) {
        if let Some(l) = &self.lock {
            l.set_write_retention(r);
        }
    }

    fn write_retention(&self) -> Option<crate::WriteRetention> {
        self.lock.as_ref().and_then(|l| l.write_retention())
    }

    fn retention(&self, t: FileType, name: &str) -> Result<Option<crate::Retention>> {
        let key = t.path(name);
        let Some(l) = &self.lock else {
            return Ok(None);
        };
        match self.rt.block_on(l.head(&key))? {
            Some(h) => Ok(h.retention),
            None => Err(BackendError::NotFound {
                path: self.display(&key),
            }),
        }
    }

    fn retentions(&self, objects: &[(FileType, String)]) -> Result<Vec<Option<crate::Retention>>> {
        let Some(l) = &self.lock else {
            return Ok(vec![None; objects.len()]);
        };
        let paths = objects.iter().map(|(t, n)| t.path(n)).collect();
        self.rt.block_on(l.retentions(paths))
    }

    fn extend_retention(
        &self,
        objects: &[(FileType, String)],
        until: std::time::SystemTime,
    ) -> Result<crate::ExtendReport> {
        let Some(l) = &self.lock else {
            return Ok(crate::ExtendReport::default());
        };
        let paths = objects.iter().map(|(t, n)| t.path(n)).collect();
        self.rt.block_on(l.extend_many(paths, until))
    }
}

impl Backend for OpendalBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
        // Listing the root first gives a clear error for a missing bucket or wrong
        // credentials before anything is written.
        let probe = self.rt.block_on(self.op.list_options(
            "/",
            ListOptions {
                limit: Some(1),
                ..ListOptions::default()
            },
        ));
        match probe {
            Ok(_) => {}
            // An SFTP repository directory is created below; a missing bucket is an error.
            Err(e) if e.kind() == ErrorKind::NotFound && self.service == Service::Sftp => {}
            Err(e) => return Err(remote_err(&self.location, e)),
        }
        if self.exists("config")? {
            return Err(BackendError::AlreadyExists {
                path: self.display("config"),
            });
        }
        // Object stores have no directories; on a file system they are made like locally.
        if self.service == Service::Sftp {
            for t in FileType::ALL {
                if t != FileType::Config {
                    let dir = format!("{}/", t.dir());
                    self.rt
                        .block_on(self.op.create_dir(&dir))
                        .map_err(|e| self.err(&dir, e))?;
                }
            }
        }
        Ok(())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let key = t.path(name);
        let buf = self
            .rt
            .block_on(self.op.read(&key))
            .map_err(|e| self.err(&key, e))?;
        Ok(buf.to_vec())
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let key = t.path(name);
        let short = |found: u64| BackendError::ShortRead {
            path: self.display(&key),
            offset,
            expected: len,
            found,
        };
        if len == 0 {
            return Ok(Vec::new());
        }
        let end = offset.checked_add(len).ok_or_else(|| short(0))?;
        let opts = ReadOptions {
            range: (offset..end).into(),
            ..ReadOptions::default()
        };
        match self.rt.block_on(self.op.read_options(&key, opts)) {
            Ok(buf) if buf.len() as u64 == len => Ok(buf.to_vec()),
            Ok(buf) => Err(short(buf.len() as u64)),
            // OpenDAL refuses a range past the end of the object ("range not satisfied", or
            // too little data); its size says how much there was.
            Err(e) if e.kind() != ErrorKind::NotFound => {
                match self.rt.block_on(self.op.stat(&key)) {
                    Ok(m) if m.content_length() < end => {
                        Err(short(m.content_length().saturating_sub(offset)))
                    }
                    _ => Err(self.err(&key, e)),
                }
            }
            Err(e) => Err(self.err(&key, e)),
        }
    }

    fn size(&self, t: FileType, name: &str) -> Result<u64> {
        let key = t.path(name);
        let meta = self
            .rt
            .block_on(self.op.stat(&key))
            .map_err(|e| self.err(&key, e))?;
        Ok(meta.content_length())
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        let key = t.path(name);
        if let Some(lock) = self.retaining().filter(|_| retained(t)) {
            return self.write_retained(lock, &key, data);
        }
        match self.service {
            Service::S3 => self.write_s3(&key, data)?,
            Service::Sftp => self.write_sftp(&key, data)?,
        }
        tracing::trace!(key = %key, len = data.len(), "wrote");
        Ok(())
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        if t == FileType::Config {
            return match self.rt.block_on(self.op.stat("config")) {
                Ok(m) => Ok(vec![("config".to_string(), m.content_length())]),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(self.err("config", e)),
            };
        }
        let dir = format!("{}/", t.dir());
        let entries = match self.rt.block_on(self.op.list_options(
            &dir,
            ListOptions {
                recursive: true,
                ..ListOptions::default()
            },
        )) {
            Ok(entries) => entries,
            // A directory that does not exist (nothing written yet) holds no files.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(&dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            if entry.metadata().mode() != EntryMode::FILE {
                continue;
            }
            let name = entry.name().to_string();
            if name.starts_with('.') || name.is_empty() {
                continue;
            }
            let len = entry.metadata().content_length();
            out.push((name, len));
        }
        out.sort();
        Ok(out)
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        let key = t.path(name);
        if let Some(lock) = self.retaining() {
            return self.rt.block_on(lock.remove(&key));
        }
        self.rt
            .block_on(self.op.delete(&key))
            .map_err(|e| self.err(&key, e))
    }

    fn object_lock(&self) -> Option<&dyn crate::ObjectLock> {
        self.lock.as_ref().map(|_| self as &dyn crate::ObjectLock)
    }

    fn replace_config(&self, data: &[u8]) -> Result<()> {
        if let Some(lock) = self.retaining() {
            // A new version of `config` with its own retention; the old version stays
            // retained (and hidden) until its date, which is harmless.
            return self
                .rt
                .block_on(lock.put("config", data, false))
                .map(|_| ());
        }
        match self.service {
            // A PUT replaces an object atomically: readers get the old or the new one.
            Service::S3 => self
                .rt
                .block_on(self.op.write("config", data.to_vec()))
                .map(|_| ())
                .map_err(|e| self.err("config", e)),
            // A temporary file renamed over the old one (SFTP's posix-rename extension).
            Service::Sftp => {
                let tmp = temp_key("config");
                self.rt
                    .block_on(self.op.write(&tmp, data.to_vec()))
                    .map_err(|e| self.err(&tmp, e))?;
                let res = self.rt.block_on(self.op.rename(&tmp, "config"));
                if let Err(e) = res {
                    let _ = self.rt.block_on(self.op.delete(&tmp));
                    return Err(self.err("config", e));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        let c =
            S3Config::parse("https://s3.example.com:9000/bucket/some/prefix/").expect("valid URL");
        assert_eq!(c.endpoint, "https://s3.example.com:9000");
        assert_eq!(c.bucket, "bucket");
        assert_eq!(c.prefix, "some/prefix");
        assert_eq!(c.url(), "s3:https://s3.example.com:9000/bucket/some/prefix");
        let c = S3Config::parse("http://127.0.0.1:8014/b").expect("valid URL");
        assert_eq!(
            (c.endpoint.as_str(), c.bucket.as_str(), c.prefix.as_str()),
            ("http://127.0.0.1:8014", "b", "")
        );
        let c = S3Config::parse("s3.amazonaws.com/b/p").expect("valid URL");
        assert_eq!(c.endpoint, "https://s3.amazonaws.com");
        for bad in [
            "https://host",
            "https://host/",
            "ftp://host/b",
            "https://key:secret@host/b",
            "https://host/b/../x",
            "https://host/b/x//y",
        ] {
            let e = S3Config::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("s3:{bad}")), "{e}");
        }
    }

    #[test]
    fn sftp_urls() {
        let c = SftpConfig::parse("alice@backup.example:2222/srv/repo/").expect("valid URL");
        assert_eq!(c.user.as_deref(), Some("alice"));
        assert_eq!(c.host, "backup.example");
        assert_eq!(c.port, Some(2222));
        assert_eq!(c.path, "/srv/repo");
        assert_eq!(c.url(), "sftp:alice@backup.example:2222/srv/repo");
        let c = SftpConfig::parse("host/~/repo").expect("valid URL");
        assert_eq!(
            (c.user.as_deref(), c.port, c.path.as_str()),
            (None, None, "repo")
        );
        assert_eq!(c.url(), "sftp:host/~/repo");
        for bad in ["host", "host/", "host/~", "@host/x", "host:port/x", ":22/x"] {
            assert!(SftpConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn temporary_names_stay_in_the_directory() {
        let t = temp_key("data/ab/abcdef");
        assert!(t.starts_with("data/ab/.tmp-"), "{t}");
        assert!(temp_key("config").starts_with(".tmp-"));
    }
}
