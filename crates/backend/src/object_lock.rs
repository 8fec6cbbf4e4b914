//! S3 Object Lock: write-once-read-many retention that the storage server enforces.
//!
//! OpenDAL's S3 service has no Object Lock operations, so this module signs and sends the few
//! requests SnapGuard needs itself, with the same crates OpenDAL uses (reqsign for SigV4 and
//! the credential chain, reqwest for HTTP), from the same [`S3Config`]:
//! - `GET /?object-lock` (GetObjectLockConfiguration): is Object Lock enabled on the bucket;
//! - `PUT /KEY` with `x-amz-object-lock-mode`, `x-amz-object-lock-retain-until-date`,
//!   `Content-MD5` and `If-None-Match: *` (PutObject): a write-once object that carries its
//!   retention from the first byte, so there is no window in which it exists unprotected;
//! - `HEAD /KEY` (HeadObject): the current version's id, mode and retain-until date;
//! - `PUT /KEY?retention` (PutObjectRetention): extend a retention (never shortened here);
//! - `DELETE /KEY?versionId=V` (DeleteObject of one version): a real deletion. Object Lock
//!   buckets are always versioned, and a `DELETE` without a version id only adds a delete
//!   marker: the data stays (and is billed) but disappears from listings, so no later prune
//!   could ever find it again. Deleting the version is refused by the server while it is
//!   retained, which is the enforcement the tests check.
//!
//! It does not decide what gets which retention (the engine does, from the repository's
//! config), and it does not do bucket administration: buckets are created with Object Lock
//! by their owner.

use crate::remote::{RemoteOptions, S3Config};
use crate::{BackendError, FileType, Result};
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use md5::Digest as _;
use reqsign_aws_v4::{Credential, DefaultCredentialProvider, StaticCredentialProvider};
use reqsign_core::{Context, OsEnv, ProvideCredentialChain, Signer};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;

/// The two Object Lock retention modes (S3's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionMode {
    /// Users with `s3:BypassGovernanceRetention` may shorten or remove the retention.
    Governance,
    /// Nobody, not even the account's root user, can shorten or remove it before it ends.
    Compliance,
}

impl RetentionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }

    fn parse(s: &str) -> Option<RetentionMode> {
        match s.trim().to_ascii_uppercase().as_str() {
            "GOVERNANCE" => Some(RetentionMode::Governance),
            "COMPLIANCE" => Some(RetentionMode::Compliance),
            _ => None,
        }
    }
}

/// The retention of one stored object version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub mode: RetentionMode,
    pub until: SystemTime,
}

impl Retention {
    /// Whether the server refuses to delete the object at `now`.
    pub fn active_at(&self, now: SystemTime) -> bool {
        self.until > now
    }
}

/// The retention every new object gets: `mode`, until the time of the write plus `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteRetention {
    pub mode: RetentionMode,
    pub period: Duration,
}

/// A bucket's Object Lock configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketLock {
    /// Object Lock is enabled (which also means the bucket is versioned).
    pub enabled: bool,
    /// The bucket's default retention rule, as `MODE Nd`/`MODE Ny`, if it has one. It would
    /// apply to every new object, lock files included.
    pub default_retention: Option<String>,
}

/// What [`ObjectLock::extend_retention`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtendReport {
    /// Objects whose retention was raised to the requested date.
    pub extended: u64,
    /// Objects already retained at least that long (nothing sent).
    pub unchanged: u64,
}

/// Object Lock operations of a backend that has them (S3 buckets).
///
/// Contract once [`ObjectLock::set_write_retention`] was given a retention: every
/// [`crate::Backend::write`] and [`crate::Backend::replace_config`] except lock files stores the
/// object with that retention, and [`crate::Backend::remove`] never sends a deletion for an
/// object whose retention lies in the future: it fails with [`BackendError::RetentionLocked`]
/// instead, leaving the object in place and listed.
pub trait ObjectLock: Send + Sync {
    /// The bucket's Object Lock configuration (GetObjectLockConfiguration).
    fn bucket_lock(&self) -> Result<BucketLock>;
    /// Apply `r` to every object written from now on (None: plain writes).
    fn set_write_retention(&self, r: Option<WriteRetention>);
    /// The retention set by [`ObjectLock::set_write_retention`].
    fn write_retention(&self) -> Option<WriteRetention>;
    /// The retention of the object's current version; None if it has none. NotFound if the
    /// object does not exist.
    fn retention(&self, t: FileType, name: &str) -> Result<Option<Retention>>;
    /// The retentions of many objects (None: none, or the object does not exist), in the order
    /// given, with as many requests in flight as the connection limit allows.
    fn retentions(&self, objects: &[(FileType, String)]) -> Result<Vec<Option<Retention>>>;
    /// Raise the retention of every object in `objects` to at least `until` (never shortens),
    /// with as many requests in flight as the backend's connection limit allows. An object
    /// without a retention gets the write retention's mode (COMPLIANCE if none is set).
    fn extend_retention(
        &self,
        objects: &[(FileType, String)],
        until: SystemTime,
    ) -> Result<ExtendReport>;
}

/// A `DateTime` for S3's retain-until headers and XML: whole seconds, UTC, rounded up so a
/// requested date is never shortened by formatting.
pub(crate) fn s3_date(t: SystemTime) -> String {
    let mut dt: DateTime<Utc> = t.into();
    if dt.timestamp_subsec_nanos() != 0 {
        dt = DateTime::<Utc>::from_timestamp(dt.timestamp() + 1, 0).unwrap_or(dt);
    }
    dt.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parse an S3 date (`2030-01-02T03:04:05Z`, `…05.123Z`, `…05+00:00`).
pub(crate) fn parse_s3_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc).into());
    }
    chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc().into())
}

/// Format a time for messages (UTC, RFC 3339).
pub fn fmt_system_time(t: SystemTime) -> String {
    let dt: DateTime<Utc> = t.into();
    dt.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The current version of an object as HeadObject reports it.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    pub version_id: Option<String>,
    pub retention: Option<Retention>,
}

/// A response the caller interprets: status, headers and the whole body.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    /// The S3 error code in the XML body (`<Code>AccessDenied</Code>`), if any.
    fn code(&self) -> String {
        xml_field(&self.body, "Code").unwrap_or_default()
    }

    fn error(&self, path: &str, operation: &'static str) -> BackendError {
        let code = self.code();
        if code == "NoSuchBucket" {
            return BackendError::BucketMissing {
                location: path.to_string(),
            };
        }
        BackendError::S3 {
            path: path.to_string(),
            operation,
            status: self.status.as_u16(),
            code,
            message: xml_field(&self.body, "Message").unwrap_or_default(),
        }
    }
}

/// The text of the first `<name>…</name>` element (S3's small XML documents have no nesting
/// of equal names and no CDATA in the fields read here).
fn xml_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].trim().to_string())
}

/// reqsign's credential providers (instance metadata, STS, SSO) send their own requests
/// through this.
#[derive(Debug, Clone)]
struct ReqwestSend(reqwest::Client);

impl reqsign_core::HttpSend for ReqwestSend {
    async fn http_send(
        &self,
        req: http::Request<Bytes>,
    ) -> reqsign_core::Result<http::Response<Bytes>> {
        let fail = |e: reqwest::Error| {
            reqsign_core::Error::unexpected("credential request failed").with_source(e)
        };
        let req = reqwest::Request::try_from(req).map_err(fail)?;
        let resp = self.0.execute(req).await.map_err(fail)?;
        let mut out = http::Response::builder().status(resp.status());
        for (k, v) in resp.headers() {
            out = out.header(k, v);
        }
        let body = resp.bytes().await.map_err(fail)?;
        out.body(body).map_err(|e| {
            reqsign_core::Error::unexpected("credential response malformed").with_source(e)
        })
    }
}

/// The signed-request client for one bucket and prefix.
pub(crate) struct S3Lock {
    client: reqwest::Client,
    signer: Signer<Credential>,
    /// `http(s)://HOST[:PORT]` of the endpoint.
    scheme: String,
    host: String,
    bucket: String,
    prefix: String,
    virtual_host_style: bool,
    retries: usize,
    io_timeout: Duration,
    permits: Arc<Semaphore>,
    retention: RwLock<Option<WriteRetention>>,
    location: String,
}

impl std::fmt::Debug for S3Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Lock")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// Percent-encode one path segment (RFC 3986 unreserved characters stay).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3Lock {
    /// Credentials come from the same chain OpenDAL's S3 service builds from an [`S3Config`]:
    /// the explicit keys if given, then the standard environment variables, profile files and
    /// instance metadata.
    pub(crate) fn new(cfg: &S3Config, opts: &RemoteOptions) -> Result<S3Lock> {
        let location = cfg.url();
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| BackendError::S3 {
                path: location.clone(),
                operation: "connect",
                status: 0,
                code: String::new(),
                message: e.to_string(),
            })?;
        let ctx = Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_env(OsEnv)
            .with_http_send(ReqwestSend(client.clone()));
        let mut chain =
            ProvideCredentialChain::new().push(DefaultCredentialProvider::builder().build());
        if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
            chain = chain.push_front(StaticCredentialProvider::new(id, secret));
        }
        let signer = Signer::new(
            ctx,
            chain,
            reqsign_aws_v4::RequestSigner::new("s3", &cfg.region),
        );
        let (scheme, host) = cfg
            .endpoint
            .split_once("://")
            .unwrap_or(("https", cfg.endpoint.as_str()));
        Ok(S3Lock {
            client,
            signer,
            scheme: scheme.to_string(),
            host: host.trim_end_matches('/').to_string(),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            virtual_host_style: cfg.virtual_host_style,
            retries: opts.retries,
            io_timeout: opts.io_timeout,
            permits: Arc::new(Semaphore::new(opts.connections.max(1))),
            retention: RwLock::new(None),
            location,
        })
    }

    pub(crate) fn write_retention(&self) -> Option<WriteRetention> {
        self.retention.read().map(|r| *r).unwrap_or(None)
    }

    pub(crate) fn set_write_retention(&self, r: Option<WriteRetention>) {
        if let Ok(mut w) = self.retention.write() {
            *w = r;
        }
    }

    /// The object key of a repository path, under the prefix.
    fn object_key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    /// The full location of a repository path, for messages.
    pub(crate) fn display(&self, path: &str) -> String {
        format!("{}/{path}", self.location.trim_end_matches('/'))
    }

    /// The URL of `key` (None: the bucket itself) with an optional query.
    fn url(&self, key: Option<&str>, query: &str) -> String {
        let path = key
            .map(|k| {
                k.split('/')
                    .map(encode_segment)
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default();
        let mut url = if self.virtual_host_style {
            format!("{}://{}.{}/{path}", self.scheme, self.bucket, self.host)
        } else {
            format!("{}://{}/{}/{path}", self.scheme, self.host, self.bucket)
        };
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// Sign and send one request, retrying transient failures (connection errors, timeouts,
    /// 5xx, throttling) with exponential backoff, holding one connection slot per attempt.
    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &str,
        headers: &HeaderMap,
        body: Bytes,
        what: &str,
    ) -> Result<Reply> {
        let url = self.url(key, query);
        let mut attempt = 0usize;
        loop {
            let outcome = {
                let _permit = self.permits.acquire().await.map_err(|_| BackendError::S3 {
                    path: what.to_string(),
                    operation: "send",
                    status: 0,
                    code: String::new(),
                    message: "the connection pool was closed".into(),
                })?;
                self.send_once(&method, &url, headers, body.clone(), what)
                    .await
            };
            let transient = match &outcome {
                Ok(r) => r.status.is_server_error() || r.status == StatusCode::TOO_MANY_REQUESTS,
                Err(BackendError::S3 { status: 0, .. }) => true,
                Err(_) => false,
            };
            if !transient || attempt >= self.retries {
                return outcome;
            }
            let delay = Duration::from_millis(500)
                .saturating_mul(1 << attempt.min(6))
                .min(Duration::from_secs(30));
            tracing::debug!(object = %what, attempt, ?delay, "retrying S3 request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        body: Bytes,
        what: &str,
    ) -> Result<Reply> {
        let transport = |e: String| BackendError::S3 {
            path: what.to_string(),
            operation: "send",
            status: 0,
            code: String::new(),
            message: e,
        };
        let mut req = http::Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req
            .body(())
            .map_err(|e| transport(format!("cannot build the request: {e}")))?;
        let (mut parts, ()) = req.into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| BackendError::S3 {
                path: what.to_string(),
                operation: "sign",
                status: 0,
                code: String::new(),
                message: format!("cannot sign the request (credentials?): {e}"),
            })?;
        // reqwest sets Host from the URL itself.
        parts.headers.remove(http::header::HOST);
        let body_len = body.len() as u64;
        let req = reqwest::Request::try_from(http::Request::from_parts(parts, body))
            .map_err(|e| transport(e.to_string()))?;
        let fut = async {
            let resp = self.client.execute(req).await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>(Reply {
                status,
                headers,
                body,
            })
        };
        let limit = request_timeout(self.io_timeout, body_len);
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(transport(e.to_string())),
            Err(_) => Err(transport(format!(
                "no complete answer within {}s ({} bytes sent at no less than {} KiB/s plus the I/O timeout of {}s)",
                limit.as_secs(),
                body_len,
                MIN_UPLOAD_RATE / 1024,
                self.io_timeout.as_secs()
            ))),
        }
    }

    /// GetObjectLockConfiguration.
    pub(crate) async fn bucket_lock(&self) -> Result<BucketLock> {
        let r = self
            .send(
                Method::GET,
                None,
                "object-lock=",
                &HeaderMap::new(),
                Bytes::new(),
                &self.location,
            )
            .await?;
        if r.status.is_success() {
            let default_retention = xml_field(&r.body, "DefaultRetention").map(|rule| {
                let rule = rule.as_bytes();
                let mode = xml_field(rule, "Mode").unwrap_or_default();
                match (xml_field(rule, "Days"), xml_field(rule, "Years")) {
                    (Some(d), _) => format!("{mode} {d}d"),
                    (None, Some(y)) => format!("{mode} {y}y"),
                    (None, None) => mode,
                }
            });
            return Ok(BucketLock {
                enabled: xml_field(&r.body, "ObjectLockEnabled").as_deref() == Some("Enabled"),
                default_retention,
            });
        }
        match r.code().as_str() {
            "ObjectLockConfigurationNotFoundError" => Ok(BucketLock::default()),
            _ => Err(r.error(&self.location, "GetObjectLockConfiguration")),
        }
    }

    /// HeadObject of a repository path; None if it does not exist.
    pub(crate) async fn head(&self, path: &str) -> Result<Option<Head>> {
        let what = self.display(path);
        let key = self.object_key(path);
        let r = self
            .send(
                Method::HEAD,
                Some(&key),
                "",
                &HeaderMap::new(),
                Bytes::new(),
                &what,
            )
            .await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status.is_success() {
            return Err(r.error(&what, "HeadObject"));
        }
        let header = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mode = header("x-amz-object-lock-mode").and_then(|m| RetentionMode::parse(&m));
        let until = header("x-amz-object-lock-retain-until-date");
        let retention = match (mode, until) {
            (Some(mode), Some(u)) => {
                let until = parse_s3_date(&u).ok_or_else(|| BackendError::S3 {
                    path: what.clone(),
                    operation: "HeadObject",
                    status: r.status.as_u16(),
                    code: String::new(),
                    message: format!("unreadable x-amz-object-lock-retain-until-date {u:?}"),
                })?;
                Some(Retention { mode, until })
            }
            _ => None,
        };
        // Without s3:GetObjectRetention, S3 answers HeadObject without the lock headers: an
        // object of an object-lock repository that must be retained then looks unlocked, and
        // prune would only fail later on a 403. Say what is missing instead.
        if retention.is_none() && self.write_retention().is_some() {
            if let Some(kind) = retained_kind(path) {
                return Err(BackendError::RetentionMissing {
                    path: what,
                    kind: kind.to_string(),
                });
            }
        }
        Ok(Some(Head {
            // "null" is the version id of an object written while versioning was off (or
            // suspended): it is sent as such, since a DELETE without a version id would only
            // add a delete marker.
            version_id: header("x-amz-version-id").filter(|v| !v.is_empty()),
            retention,
        }))
    }

    /// PutObject with the write retention (if any) and Content-MD5; `create_only` adds
    /// `If-None-Match: *`. Returns false if the server refused because the key exists.
    pub(crate) async fn put(&self, path: &str, data: &[u8], create_only: bool) -> Result<bool> {
        let what = self.display(path);
        let key = self.object_key(path);
        let mut headers = HeaderMap::new();
        headers.insert("content-md5", md5_header(data));
        if create_only {
            headers.insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        }
        if let Some(r) = self.write_retention() {
            let until = s3_date(SystemTime::now() + r.period);
            headers.insert(
                "x-amz-object-lock-mode",
                HeaderValue::from_static(r.mode.as_str()),
            );
            headers.insert(
                "x-amz-object-lock-retain-until-date",
                HeaderValue::from_str(&until).map_err(|_| BackendError::S3 {
                    path: what.clone(),
                    operation: "PutObject",
                    status: 0,
                    code: String::new(),
                    message: format!("bad retention date {until}"),
                })?,
            );
        }
        let r = self
            .send(
                Method::PUT,
                Some(&key),
                "",
                &headers,
                Bytes::copy_from_slice(data),
                &what,
            )
            .await?;
        if r.status == StatusCode::PRECONDITION_FAILED {
            return Ok(false);
        }
        if !r.status.is_success() {
            return Err(r.error(&what, "PutObject"));
        }
        Ok(true)
    }

    /// PutObjectRetention on the current version.
    async fn put_retention(&self, path: &str, retention: Retention) -> Result<()> {
        let what = self.display(path);
        let key = self.object_key(path);
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            retention.mode.as_str(),
            s3_date(retention.until)
        );
        let mut headers = HeaderMap::new();
        headers.insert("content-md5", md5_header(body.as_bytes()));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        let r = self
            .send(
                Method::PUT,
                Some(&key),
                "retention=",
                &headers,
                Bytes::from(body),
                &what,
            )
            .await?;
        if !r.status.is_success() {
            return Err(r.error(&what, "PutObjectRetention"));
        }
        Ok(())
    }

    /// Raise one object's retention to at least `until`; true if a request was sent.
    async fn extend_one(&self, path: &str, until: SystemTime) -> Result<bool> {
        let head = self
            .head(path)
            .await?
            .ok_or_else(|| BackendError::NotFound {
                path: self.display(path),
            })?;
        let mode = match head.retention {
            Some(r) if r.until >= until => return Ok(false),
            Some(r) => r.mode,
            None => self
                .write_retention()
                .map(|w| w.mode)
                .unwrap_or(RetentionMode::Compliance),
        };
        self.put_retention(path, Retention { mode, until }).await?;
        Ok(true)
    }

    pub(crate) async fn retentions(
        self: &Arc<Self>,
        paths: Vec<String>,
    ) -> Result<Vec<Option<Retention>>> {
        let mut set = tokio::task::JoinSet::new();
        for (i, p) in paths.into_iter().enumerate() {
            let me = self.clone();
            set.spawn(async move { (i, me.head(&p).await) });
        }
        let mut out = Vec::new();
        while let Some(res) = set.join_next().await {
            match res {
                Ok((i, Ok(head))) => out.push((i, head.and_then(|h| h.retention))),
                Ok((_, Err(e))) => return Err(e),
                Err(e) => {
                    return Err(BackendError::S3 {
                        path: self.location.clone(),
                        operation: "HeadObject",
                        status: 0,
                        code: String::new(),
                        message: format!("worker failed: {e}"),
                    })
                }
            }
        }
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    pub(crate) async fn extend_many(
        self: &Arc<Self>,
        paths: Vec<String>,
        until: SystemTime,
    ) -> Result<ExtendReport> {
        let mut set = tokio::task::JoinSet::new();
        for p in paths {
            let me = self.clone();
            set.spawn(async move { me.extend_one(&p, until).await });
        }
        let mut report = ExtendReport::default();
        let mut first_err = None;
        while let Some(res) = set.join_next().await {
            match res {
                Ok(Ok(true)) => report.extended += 1,
                Ok(Ok(false)) => report.unchanged += 1,
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(BackendError::S3 {
                        path: self.location.clone(),
                        operation: "PutObjectRetention",
                        status: 0,
                        code: String::new(),
                        message: format!("worker failed: {e}"),
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Delete the current version of `path` for good, unless it is retained. NotFound-free:
    /// a missing object counts as deleted.
    pub(crate) async fn remove(&self, path: &str) -> Result<()> {
        let what = self.display(path);
        let Some(head) = self.head(path).await? else {
            return Ok(());
        };
        if let Some(r) = head.retention.filter(|r| r.active_at(SystemTime::now())) {
            return Err(BackendError::RetentionLocked {
                path: what,
                until: fmt_system_time(r.until),
            });
        }
        let key = self.object_key(path);
        // Always with a version id: without one, a versioned bucket (every Object Lock bucket)
        // only adds a delete marker. An object written before versioning was turned on is the
        // version "null", which some servers report by leaving the header out.
        let query = format!(
            "versionId={}",
            encode_segment(head.version_id.as_deref().unwrap_or("null"))
        );
        let r = self
            .send(
                Method::DELETE,
                Some(&key),
                &query,
                &HeaderMap::new(),
                Bytes::new(),
                &what,
            )
            .await?;
        if r.status.is_success() || r.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        // Our clock said the retention was over, the server's says it is not (clock skew):
        // the object stays, exactly as if it had been seen retained.
        if r.status == StatusCode::FORBIDDEN && r.code() == "AccessDenied" {
            if let Some(ret) = head.retention {
                return Err(BackendError::RetentionLocked {
                    path: what,
                    until: fmt_system_time(ret.until),
                });
            }
        }
        Err(r.error(&what, "DeleteObject"))
    }
}

/// The slowest upload rate a request body may take (bytes per second) before it counts as
/// stalled, like OpenDAL's timeout layer: a 16 MiB pack may take 256 s on top of the I/O
/// timeout, so slow links work and a dead connection is still noticed.
const MIN_UPLOAD_RATE: u64 = 64 * 1024;

/// How long one request with a body of `body_len` bytes may take in all: the I/O timeout
/// (time to first answer) plus the time the body needs at [`MIN_UPLOAD_RATE`].
fn request_timeout(io_timeout: Duration, body_len: u64) -> Duration {
    io_timeout.saturating_add(Duration::from_secs_f64(
        body_len as f64 / MIN_UPLOAD_RATE as f64,
    ))
}

/// What a repository path is, for the objects an Object Lock repository retains (None for
/// lock files and anything else).
fn retained_kind(path: &str) -> Option<&'static str> {
    if path == "config" {
        return Some("config file");
    }
    let (dir, _) = path.split_once('/')?;
    [
        (FileType::Key, "key slot"),
        (FileType::Snapshot, "snapshot file"),
        (FileType::Index, "index file"),
        (FileType::Pack, "pack"),
        (FileType::Annotation, "annotation"),
    ]
    .into_iter()
    .find(|(t, _)| t.dir() == dir && retained(*t))
    .map(|(_, k)| k)
}

fn md5_header(data: &[u8]) -> HeaderValue {
    let digest = md5::Md5::digest(data);
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    HeaderValue::from_str(&b64).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a repository file type gets a retention on write: everything a restore needs
/// (config, key slots, packs, index files, snapshots, annotations), never the short-lived
/// lock files, which must be deletable when the command ends.
pub(crate) fn retained(t: FileType) -> bool {
    t != FileType::Lock
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_round_up() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        assert_eq!(s3_date(t), "2030-03-17T17:46:40Z");
        assert_eq!(parse_s3_date(&s3_date(t)), Some(t));
        let later = t + Duration::from_millis(1);
        assert_eq!(s3_date(later), "2030-03-17T17:46:41Z");
        assert_eq!(
            parse_s3_date("2030-03-17T17:46:40.500000Z"),
            Some(t + Duration::from_millis(500))
        );
        assert_eq!(parse_s3_date("2030-03-17T17:46:40.000Z"), Some(t));
        assert_eq!(parse_s3_date("2030-03-17T17:46:40"), Some(t));
        assert_eq!(parse_s3_date("yesterday"), None);
    }

    #[test]
    fn xml_fields() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        assert_eq!(xml_field(body, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(xml_field(body, "Message").as_deref(), Some("Access Denied"));
        assert_eq!(xml_field(body, "Missing"), None);
    }

    #[test]
    fn md5_is_base64_of_the_digest() {
        // RFC 1321's test vector for "abc": 900150983cd24fb0d6963f7d28e17f72.
        assert_eq!(md5_header(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
    }

    #[test]
    fn request_timeout_grows_with_the_body() {
        let io = Duration::from_secs(60);
        assert_eq!(request_timeout(io, 0), io);
        // A 16 MiB pack gets 256 s on top, so it still uploads at 1 Mbit/s (~134 s).
        assert_eq!(request_timeout(io, 16 << 20), Duration::from_secs(60 + 256));
        let at_1_mbit = Duration::from_secs_f64((16u64 << 20) as f64 * 8.0 / 1e6);
        assert!(request_timeout(io, 16 << 20) > at_1_mbit);
    }

    #[test]
    fn retained_kinds() {
        assert_eq!(retained_kind("config"), Some("config file"));
        assert_eq!(retained_kind("keys/abc"), Some("key slot"));
        assert_eq!(retained_kind("data/ab/abcd"), Some("pack"));
        assert_eq!(retained_kind("index/ab"), Some("index file"));
        assert_eq!(retained_kind("snapshots/ab"), Some("snapshot file"));
        assert_eq!(retained_kind("annotations/ab"), Some("annotation"));
        assert_eq!(retained_kind("locks/ab"), None);
        assert_eq!(retained_kind("other"), None);
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("data"), "data");
        assert_eq!(encode_segment("a b+c"), "a%20b%2Bc");
        assert_eq!(encode_segment("ä"), "%C3%A4");
    }
}
