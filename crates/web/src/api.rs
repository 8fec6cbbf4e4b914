//! The repository's routes: snapshots (list, detail, tags, comment, lock), trees, files and
//! archives, diffs, versions of a path, restore to a path on the server, statistics. JSON forms
//! are `snapguard_engine::json`'s, the same as the CLI's `--json`.

use crate::auth::Auth;
use crate::{ApiError, AppState};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use snapguard_backend::FileType;
use snapguard_daemon::users::Role;
use snapguard_engine::annotate::{self, AnnotationChange, SnapshotView};
use snapguard_engine::json::{node_json, rfc3339, view_json};
use snapguard_engine::Repository;
use snapguard_format::{NodeKind, Timestamp};
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(repository))
        .routes(routes!(list_snapshots))
        .routes(routes!(snapshot))
        .routes(routes!(set_tags))
        .routes(routes!(set_comment))
        .routes(routes!(lock_snapshot))
        .routes(routes!(tree))
        .routes(routes!(file))
        .routes(routes!(archive))
        .routes(routes!(diff))
        .routes(routes!(versions))
        .routes(routes!(restore))
        .routes(routes!(stats))
}

/// Run repository work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a request's worker failed: {e}")))?
}

fn now_ts() -> Timestamp {
    let n = chrono::Utc::now();
    Timestamp {
        secs: n.timestamp(),
        nanos: n.timestamp_subsec_nanos(),
    }
}

/// An absolute path from a query (`/` when missing); `..` is meaningless in a snapshot and
/// refused so that nobody is misled.
/// A place among the long repository requests ([`crate::HEAVY_REQUESTS`] at once); 503
/// `busy` if none frees up within 20 s.
async fn heavy(app: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(
        std::time::Duration::from_secs(20),
        app.0.heavy.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => Ok(p),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "{} long requests (downloads, histories, diffs, restores) are running; try again shortly",
                crate::HEAVY_REQUESTS
            ),
        )),
    }
}

/// The path of a request: `path_hex` (the exact bytes, for names that are not UTF-8, as
/// entries give it) wins over `path`.
fn snapshot_path_exact(p: Option<&str>, hex_path: Option<&str>) -> Result<Vec<u8>, ApiError> {
    if let Some(h) = hex_path {
        let bytes = hex::decode(h)
            .map_err(|e| ApiError::bad_request(format!("path_hex {h:?} is not hex: {e}")))?;
        if !bytes.starts_with(b"/") {
            return Err(ApiError::bad_request("path_hex must be an absolute path"));
        }
        if bytes.split(|&b| b == b'/').any(|c| c == b"..") {
            return Err(ApiError::bad_request("path_hex must not contain .."));
        }
        return Ok(bytes);
    }
    let p = p.unwrap_or("/");
    if !p.starts_with('/') {
        return Err(ApiError::bad_request(format!(
            "path {p:?} must be absolute (start with /)"
        )));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(ApiError::bad_request(format!(
            "path {p:?} must not contain .."
        )));
    }
    Ok(p.as_bytes().to_vec())
}

/// How many pack files the repository has and their total size (one listing).
pub(crate) fn pack_totals(repo: &Repository) -> Result<(usize, u64), ApiError> {
    let packs = repo
        .backend()
        .list(FileType::Pack)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "repository", e.to_string()))?;
    Ok((packs.len(), packs.iter().map(|(_, n)| n).sum()))
}

fn view(repo: &Repository, spec: &str) -> Result<SnapshotView, ApiError> {
    let (id, snap) = repo.find_snapshot(spec)?;
    Ok(annotate::view_of(repo, id, snap)?)
}

/// The repository.
#[utoipa::path(get, path = "/repository", tag = "repository",
    responses((status = 200, description = "Location, id, snapshot count, stored size and pack count")))]
async fn repository(State(app): State<AppState>, _auth: Auth) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let s = app.0.repo.session("web: repository", false)?;
        let snapshots = s.repo.list_snapshots()?.len();
        let (packs, stored) = pack_totals(&s.repo)?;
        Ok(Json(json!({
            "location": s.repo.location(),
            "id": s.repo.config().repo_id.to_hex(),
            "snapshots": snapshots,
            "packs": packs,
            "stored_size": stored,
            "append_only": s.repo.is_append_only(),
        })))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct SnapshotFilter {
    /// Only snapshots of this host.
    host: Option<String>,
    /// Only snapshots with this tag.
    tag: Option<String>,
    /// Only snapshots with this source path.
    path: Option<String>,
}

/// Snapshots, newest first.
#[utoipa::path(get, path = "/snapshots", tag = "snapshots", params(SnapshotFilter),
    responses((status = 200, description = "Snapshots as `snapguard snapshots --json` prints them")))]
async fn list_snapshots(
    State(app): State<AppState>,
    _auth: Auth,
    Query(f): Query<SnapshotFilter>,
) -> Result<Json<Vec<Value>>, ApiError> {
    blocking(move || {
        let s = app.0.repo.session("web: snapshots", false)?;
        let (mut views, errors) = annotate::views(&s.repo)?;
        for e in errors {
            tracing::warn!("web: {e}");
        }
        views.retain(|v| {
            f.host.as_ref().is_none_or(|h| &v.snapshot.hostname == h)
                && f.tag.as_ref().is_none_or(|t| v.tags.contains(t))
                && f.path
                    .as_ref()
                    .is_none_or(|p| v.snapshot.display_paths().iter().any(|x| x == p))
        });
        views.sort_by_key(|v| std::cmp::Reverse(v.snapshot.time));
        Ok(Json(views.iter().map(view_json).collect()))
    })
    .await
}

/// One snapshot (an id, an id prefix or `latest`).
#[utoipa::path(get, path = "/snapshots/{id}", tag = "snapshots",
    params(("id" = String, Path, description = "Snapshot id, prefix or latest")),
    responses((status = 200, description = "The snapshot"),
              (status = 404, description = "No such snapshot", body = crate::error::ErrorBody)))]
async fn snapshot(
    State(app): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let s = app.0.repo.session("web: snapshot", false)?;
        Ok(Json(view_json(&view(&s.repo, &id)?)))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct TagsBody {
    tags: Vec<String>,
}

/// Replace a snapshot's tags.
#[utoipa::path(put, path = "/snapshots/{id}/tags", tag = "snapshots", request_body = TagsBody,
    params(("id" = String, Path, description = "Snapshot id")),
    responses((status = 200, description = "The snapshot with its new tags"),
              (status = 409, description = "The snapshot is locked and a tag would be removed", body = crate::error::ErrorBody)))]
async fn set_tags(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<TagsBody>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Operator)?;
    for t in &body.tags {
        if t.is_empty() || t.len() > 200 || t.chars().any(|c| c.is_control() || c == ',') {
            return Err(ApiError::bad_request(format!(
                "tag {t:?} is not valid: 1 to 200 characters, no commas or control characters"
            )));
        }
    }
    blocking(move || {
        let s = app.0.repo.session("web: tag", false)?;
        let v = view(&s.repo, &id)?;
        let change = AnnotationChange {
            add_tags: body
                .tags
                .iter()
                .filter(|t| !v.tags.contains(t))
                .cloned()
                .collect(),
            remove_tags: v
                .tags
                .iter()
                .filter(|t| !body.tags.contains(t))
                .cloned()
                .collect(),
            ..Default::default()
        };
        if !change.add_tags.is_empty() || !change.remove_tags.is_empty() {
            annotate::annotate(&s.repo, &v, &change, now_ts())?;
            tracing::info!(user = %auth.user.name, snapshot = %v.id.short(), "tags set");
        }
        Ok(Json(view_json(&view(&s.repo, &v.id.to_hex())?)))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct CommentBody {
    comment: String,
}

/// Set a snapshot's comment (empty removes it).
#[utoipa::path(put, path = "/snapshots/{id}/comment", tag = "snapshots", request_body = CommentBody,
    params(("id" = String, Path, description = "Snapshot id")),
    responses((status = 200, description = "The snapshot with its comment")))]
async fn set_comment(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<CommentBody>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Operator)?;
    if body.comment.len() > 4096 {
        return Err(ApiError::bad_request(
            "the comment is longer than 4096 bytes",
        ));
    }
    // Control characters would reach terminals through `snapguard snapshots`.
    if body
        .comment
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::bad_request(
            "the comment holds control characters; only text, newlines and tabs are kept",
        ));
    }
    blocking(move || {
        let s = app.0.repo.session("web: annotate", false)?;
        let v = view(&s.repo, &id)?;
        let change = AnnotationChange {
            comment: Some(body.comment),
            ..Default::default()
        };
        annotate::annotate(&s.repo, &v, &change, now_ts())?;
        tracing::info!(user = %auth.user.name, snapshot = %v.id.short(), "comment set");
        Ok(Json(view_json(&view(&s.repo, &v.id.to_hex())?)))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LockBody {
    /// How long, e.g. "30d", "1y".
    duration: Option<String>,
    /// Until when (RFC 3339).
    until: Option<String>,
}

/// Make a snapshot immutable until a time (never shortened).
#[utoipa::path(post, path = "/snapshots/{id}/lock", tag = "snapshots", request_body = LockBody,
    params(("id" = String, Path, description = "Snapshot id")),
    responses((status = 200, description = "The snapshot with its lock"),
              (status = 409, description = "Already locked longer, or the repository uses S3 Object Lock", body = crate::error::ErrorBody)))]
async fn lock_snapshot(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<LockBody>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Admin)?;
    let now = now_ts();
    let until = match (&body.until, &body.duration) {
        (Some(u), _) => {
            let d = chrono::DateTime::parse_from_rfc3339(u).map_err(|e| {
                ApiError::bad_request(format!("until {u:?} is not an RFC 3339 time: {e}"))
            })?;
            Timestamp {
                secs: d.timestamp(),
                nanos: d.timestamp_subsec_nanos(),
            }
        }
        (None, Some(d)) => Timestamp {
            secs: snapguard_policy::parse_duration(d)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
                .checked_add(now.secs)
                .ok_or_else(|| ApiError::bad_request(format!("duration {d:?} is too long")))?,
            nanos: 0,
        },
        (None, None) => return Err(ApiError::bad_request("give duration or until")),
    };
    if until <= now {
        return Err(ApiError::bad_request("the lock must end in the future"));
    }
    // A lock cannot be shortened: a typo must not make a snapshot immutable for ever.
    const MAX_LOCK_SECS: i64 = 100 * 366 * 86400;
    if until.secs - now.secs > MAX_LOCK_SECS {
        return Err(ApiError::bad_request(
            "a lock may last at most 100 years (it can never be shortened)",
        ));
    }
    blocking(move || {
        let s = app.0.repo.session("web: lock", false)?;
        if s.repo.config().object_lock.is_some() {
            return Err(ApiError::conflict(
                "this repository keeps locks in S3 Object Lock as well; lock snapshots with 'snapguard lock' on a machine with the repository's credentials",
            ));
        }
        let v = view(&s.repo, &id)?;
        if v.lock_until.is_some_and(|cur| cur >= until) {
            return Ok(Json(view_json(&v)));
        }
        let change = AnnotationChange {
            lock_until: Some(until),
            ..Default::default()
        };
        annotate::annotate(&s.repo, &v, &change, now)?;
        tracing::info!(user = %auth.user.name, snapshot = %v.id.short(), until = %rfc3339(until), "snapshot locked");
        Ok(Json(view_json(&view(&s.repo, &v.id.to_hex())?)))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct PathQuery {
    /// An absolute path in the snapshot; default `/`.
    path: Option<String>,
    /// The path's exact bytes in hex (wins over `path`; for names that are not UTF-8).
    path_hex: Option<String>,
}

/// The entries of a directory in a snapshot (or the entry itself if it is not a directory).
#[utoipa::path(get, path = "/snapshots/{id}/tree", tag = "trees", params(("id" = String, Path, description = "Snapshot id"), PathQuery),
    responses((status = 200, description = "{path, node, entries: [node]}"),
              (status = 404, description = "No such path", body = crate::error::ErrorBody)))]
async fn tree(
    State(app): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Json<Value>, ApiError> {
    let path = snapshot_path_exact(q.path.as_deref(), q.path_hex.as_deref())?;
    blocking(move || {
        let s = app.0.repo.session("web: ls", true)?;
        let v = view(&s.repo, &id)?;
        let node = snapguard_engine::restore::find_node(&s.repo, v.snapshot.tree, &path)?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "{} is not in snapshot {}",
                    String::from_utf8_lossy(&path),
                    v.id.short()
                ))
            })?;
        let mut base = path.clone();
        while base.len() > 1 && base.ends_with(b"/") {
            base.pop();
        }
        let mut entries = Vec::new();
        if let Some(sub) = node.subtree {
            for n in s.repo.read_tree(&sub)?.nodes {
                let mut p = base.clone();
                if !p.ends_with(b"/") {
                    p.push(b'/');
                }
                p.extend_from_slice(&n.name);
                let mut j = node_json(&p, &n);
                if let Some(o) = j.as_object_mut() {
                    o.remove("content");
                }
                entries.push(j);
            }
        }
        let mut nj = node_json(&base, &node);
        if let Some(o) = nj.as_object_mut() {
            o.remove("content");
        }
        Ok(Json(json!({
            "snapshot": v.id.to_hex(),
            "path": String::from_utf8_lossy(&base),
            "path_hex": std::str::from_utf8(&base).is_err().then(|| hex::encode(&base)),
            "node": nj,
            "entries": entries,
        })))
    })
    .await
}

/// How long a download waits for a client that does not read.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A writer that sends what is written to an HTTP body, chunk by chunk.
struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut chunk = Ok(Bytes::from(std::mem::take(&mut self.buf)));
        // A client that stops reading is dropped after SEND_TIMEOUT, so that it cannot hold a
        // worker thread and the repository lock for ever.
        let deadline = std::time::Instant::now() + SEND_TIMEOUT;
        loop {
            match self.tx.try_send(chunk) {
                Ok(()) => return Ok(()),
                Err(tokio::sync::mpsc::error::TrySendError::Full(c)) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the client stopped reading",
                        ));
                    }
                    chunk = c;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "the client went away",
                    ))
                }
            }
        }
    }
}

/// Stream what `produce` writes as a response body. The first error before any byte is sent
/// becomes an error answer; a later one cuts the body short (the client sees a broken
/// transfer, never a silently short file).
async fn stream(
    headers: Vec<(header::HeaderName, HeaderValue)>,
    produce: impl FnOnce(&mut BodyWriter) -> Result<(), ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    let err_tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = BodyWriter {
            tx,
            buf: Vec::new(),
        };
        let mut first = Some(first_tx);
        let r = produce(&mut w).and_then(|()| {
            std::io::Write::flush(&mut w).map_err(|e| ApiError::internal(e.to_string()))
        });
        match r {
            Ok(()) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::warn!("web: a download failed: {e}");
                if let Some(f) = first.take() {
                    let _ = f.send(Err(e.clone()));
                }
                let _ = err_tx.blocking_send(Err(std::io::Error::other(e.message)));
            }
        }
    });
    // Wait for the first chunk or the end, so that errors before any byte are answered as such.
    let first_chunk = rx.recv().await;
    let body = match first_chunk {
        Some(Ok(chunk)) => {
            let rest = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|x| (x, rx))
            });
            Body::from_stream(futures_util::StreamExt::chain(
                futures_util::stream::iter([Ok::<_, std::io::Error>(chunk)]),
                rest,
            ))
        }
        Some(Err(_)) | None => match first_rx.await {
            Ok(Err(e)) => return Err(e),
            _ => Body::empty(),
        },
    };
    let mut r = Response::new(body);
    for (k, v) in headers {
        r.headers_mut().insert(k, v);
    }
    Ok(r)
}

fn attachment(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// The type a preview may be shown as; anything else is only downloaded.
fn preview_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" | "md" | "log" | "conf" | "cfg" | "ini" | "toml" | "yaml" | "yml" | "json"
        | "csv" | "rs" | "c" | "h" | "py" | "sh" | "js" | "css" | "html" | "xml" | "svg" => {
            "text/plain; charset=utf-8"
        }
        _ => return None,
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct FileQuery {
    /// The file's absolute path in the snapshot.
    path: Option<String>,
    /// The path's exact bytes in hex (wins over `path`).
    path_hex: Option<String>,
    /// 1: for showing in the page (images and text only; as text/plain for text).
    inline: Option<u8>,
}

/// One file's content.
#[utoipa::path(get, path = "/snapshots/{id}/file", tag = "trees", params(("id" = String, Path, description = "Snapshot id"), FileQuery),
    responses((status = 200, description = "The bytes of the file", content_type = "application/octet-stream"),
              (status = 404, description = "No such file", body = crate::error::ErrorBody)))]
async fn file(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
) -> Result<Response, ApiError> {
    auth.require(Role::Operator)?;
    if q.path.is_none() && q.path_hex.is_none() {
        return Err(ApiError::bad_request("give path or path_hex"));
    }
    let path = snapshot_path_exact(q.path.as_deref(), q.path_hex.as_deref())?;
    let shown = String::from_utf8_lossy(&path).into_owned();
    let name =
        String::from_utf8_lossy(path.rsplit(|&b| b == b'/').next().unwrap_or(b"file")).into_owned();
    // Look the file up first, so that a missing path is a 404 and the length is known.
    let app2 = app.clone();
    let (id2, path2) = (id.clone(), path.clone());
    let (size, kind) = blocking(move || {
        let s = app2.0.repo.session("web: dump", true)?;
        let v = view(&s.repo, &id2)?;
        let n = snapguard_engine::restore::find_node(&s.repo, v.snapshot.tree, &path2)?
            .ok_or_else(|| {
                ApiError::not_found(format!("{shown} is not in snapshot {}", v.id.short()))
            })?;
        Ok((n.size, n.kind))
    })
    .await?;
    if kind != NodeKind::File {
        return Err(ApiError::bad_request(format!(
            "{} is not a regular file; download folders with /archive",
            String::from_utf8_lossy(&path)
        )));
    }
    let mut headers = vec![(header::CONTENT_LENGTH, HeaderValue::from(size))];
    match (q.inline == Some(1), preview_type(&name)) {
        (true, Some(t)) => {
            headers.push((header::CONTENT_TYPE, HeaderValue::from_static(t)));
            headers.push((
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ));
        }
        _ => {
            headers.push((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ));
            headers.push((header::CONTENT_DISPOSITION, attachment(&name)));
        }
    }
    let who = auth.user.name.clone();
    let permit = heavy(&app).await?;
    stream(headers, move |w| {
        let _permit = permit;
        let s = app.0.repo.session("web: dump", true)?;
        let v = view(&s.repo, &id)?;
        snapguard_engine::browse::dump(&s.repo, &v.snapshot, &path, w)?;
        tracing::info!(user = %who, snapshot = %v.id.short(), path = %String::from_utf8_lossy(&path), "file downloaded");
        Ok(())
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ArchiveQuery {
    /// The folder's absolute path in the snapshot; default `/`.
    path: Option<String>,
    /// The path's exact bytes in hex (wins over `path`).
    path_hex: Option<String>,
    /// tar (default) or zip.
    format: Option<String>,
}

/// A folder as a tar or zip archive (streamed).
#[utoipa::path(get, path = "/snapshots/{id}/archive", tag = "trees", params(("id" = String, Path, description = "Snapshot id"), ArchiveQuery),
    responses((status = 200, description = "The archive", content_type = "application/octet-stream")))]
async fn archive(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    auth.require(Role::Operator)?;
    let path = snapshot_path_exact(q.path.as_deref(), q.path_hex.as_deref())?;
    let (format, ext, mime) = match q.format.as_deref().unwrap_or("tar") {
        "tar" => (
            snapguard_engine::export::ExportFormat::Tar,
            "tar",
            "application/x-tar",
        ),
        "zip" => (
            snapguard_engine::export::ExportFormat::Zip,
            "zip",
            "application/zip",
        ),
        f => {
            return Err(ApiError::bad_request(format!(
                "format {f:?}: use tar or zip"
            )))
        }
    };
    let base = String::from_utf8_lossy(
        path.split(|&b| b == b'/')
            .rfind(|c| !c.is_empty())
            .unwrap_or(b"snapshot"),
    )
    .into_owned();
    let headers = vec![
        (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
        (
            header::CONTENT_DISPOSITION,
            attachment(&format!("{base}.{ext}")),
        ),
    ];
    let who = auth.user.name.clone();
    let permit = heavy(&app).await?;
    stream(headers, move |w| {
        let _permit = permit;
        let s = app.0.repo.session("web: export", true)?;
        let v = view(&s.repo, &id)?;
        let opts = snapguard_engine::export::ExportOptions {
            format,
            inode_numbers: false,
            progress: None,
        };
        let summary = snapguard_engine::export::export(
            &s.repo,
            &v.snapshot,
            &path,
            snapguard_engine::export::ExportOutput::Stream(w),
            &opts,
        )?;
        tracing::info!(user = %who, snapshot = %v.id.short(), path = %String::from_utf8_lossy(&path), files = summary.files, "archive downloaded");
        Ok(())
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct DiffQuery {
    /// The older snapshot; default: the snapshot's parent.
    against: Option<String>,
}

/// What changed between two snapshots, with bytes per top-level directory (for a treemap).
#[utoipa::path(get, path = "/snapshots/{id}/diff", tag = "snapshots", params(("id" = String, Path, description = "Snapshot id (the newer one)"), DiffQuery),
    responses((status = 200, description = "{from, to, changes, totals, groups, truncated}")))]
async fn diff(
    State(app): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<Value>, ApiError> {
    const MAX_CHANGES: usize = 10_000;
    let _permit = heavy(&app).await?;
    blocking(move || {
        let s = app.0.repo.session("web: diff", true)?;
        let to = view(&s.repo, &id)?;
        let from = match &q.against {
            Some(a) => view(&s.repo, a)?,
            None => match to.snapshot.parent {
                Some(p) => view(&s.repo, &p.to_hex())?,
                None => {
                    return Err(ApiError::bad_request(format!(
                        "snapshot {} has no parent; give ?against=ID",
                        to.id.short()
                    )))
                }
            },
        };
        let mut changes = Vec::new();
        let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut groups: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        let mut count = 0usize;
        let sources: Vec<String> = to.snapshot.display_paths();
        snapguard_engine::browse::diff(&s.repo, &from.snapshot, &to.snapshot, &mut |p, c, n| {
            let key = match c {
                snapguard_engine::browse::Change::Added => "added",
                snapguard_engine::browse::Change::Removed => "removed",
                snapguard_engine::browse::Change::Modified => "modified",
                snapguard_engine::browse::Change::Metadata => "metadata",
            };
            count += 1;
            let bytes = if n.kind == NodeKind::File { n.size } else { 0 };
            *totals.entry(key).or_default() += bytes;
            // Group by the first component below the backed-up path it lies in
            // ("/home" backed up: "/home/alice"), else by the path itself.
            let text = String::from_utf8_lossy(p).into_owned();
            let group = group_of(&text, &sources);
            *groups.entry(group).or_default().entry(key).or_default() += bytes;
            if changes.len() < MAX_CHANGES {
                changes.push(json!({
                    "path": text,
                    "change": key,
                    "type": snapguard_engine::json::kind_name(n.kind),
                    "size": n.size,
                }));
            }
        })?;
        Ok(Json(json!({
            "from": view_json(&from),
            "to": view_json(&to),
            "changes": changes,
            "changed": count,
            "truncated": count > MAX_CHANGES,
            "totals": totals,
            "groups": groups.into_iter().map(|(path, b)| json!({
                "path": path,
                "added": b.get("added").copied().unwrap_or(0),
                "removed": b.get("removed").copied().unwrap_or(0),
                "modified": b.get("modified").copied().unwrap_or(0),
                "metadata": b.get("metadata").copied().unwrap_or(0),
            })).collect::<Vec<_>>(),
        })))
    })
    .await
}

/// The treemap group of a changed path: the backed-up path it lies in plus the next
/// component, or the path itself when it lies in none (a parent of the backed-up paths).
fn group_of(path: &str, sources: &[String]) -> String {
    let source = sources
        .iter()
        .filter(|s| {
            let s = s.trim_end_matches('/');
            path == s || path.starts_with(&format!("{s}/")) || s.is_empty()
        })
        .max_by_key(|s| s.len());
    match source {
        Some(s) => {
            let s = s.trim_end_matches('/');
            match path[s.len()..].trim_start_matches('/').split('/').next() {
                Some(c) if !c.is_empty() => format!("{s}/{c}"),
                _ => {
                    if s.is_empty() {
                        "/".into()
                    } else {
                        s.to_string()
                    }
                }
            }
        }
        None => path.to_string(),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct VersionsQuery {
    /// The absolute path.
    path: Option<String>,
    /// The path's exact bytes in hex (wins over `path`).
    path_hex: Option<String>,
    /// Only snapshots of this host.
    host: Option<String>,
}

/// Every version of a path across the snapshots, oldest first.
#[utoipa::path(get, path = "/versions", tag = "versions", params(VersionsQuery),
    responses((status = 200, description = "{path, versions: [...]}")))]
async fn versions(
    State(app): State<AppState>,
    _auth: Auth,
    Query(q): Query<VersionsQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.path.is_none() && q.path_hex.is_none() {
        return Err(ApiError::bad_request("give path or path_hex"));
    }
    let path = snapshot_path_exact(q.path.as_deref(), q.path_hex.as_deref())?;
    let _permit = heavy(&app).await?;
    blocking(move || {
        let s = app.0.repo.session("web: versions", true)?;
        let (mut views, _) = annotate::views(&s.repo)?;
        views.retain(|v| q.host.as_ref().is_none_or(|h| &v.snapshot.hostname == h));
        views.sort_by_key(|v| v.snapshot.time);
        let roots: Vec<_> = views.iter().map(|v| v.snapshot.tree).collect();
        let h = snapguard_engine::versions::history(
            &s.repo,
            &roots,
            &path,
            snapguard_engine::versions::Granularity::Content,
        )?;
        let brief = |i: usize| {
            let v = &views[i];
            json!({"id": v.id.to_hex(), "short_id": v.id.short(), "time": rfc3339(v.snapshot.time)})
        };
        let versions: Vec<Value> = h
            .versions
            .iter()
            .enumerate()
            .map(|(n, ver)| {
                let mut j = node_json(&path, &ver.node);
                if let Some(o) = j.as_object_mut() {
                    o.remove("content");
                    o.insert("version".into(), json!(n + 1));
                    o.insert("first".into(), brief(ver.first()));
                    o.insert("last".into(), brief(ver.last()));
                    o.insert(
                        "snapshots".into(),
                        json!(ver.snapshots.iter().map(|&i| views[i].id.to_hex()).collect::<Vec<_>>()),
                    );
                    o.insert("entries".into(), json!(ver.entries));
                }
                j
            })
            .collect();
        Ok(Json(json!({
            "path": String::from_utf8_lossy(&path),
            "path_hex": std::str::from_utf8(&path).is_err().then(|| hex::encode(&path)),
            "snapshots_searched": views.len(),
            "snapshots_with_path": h.snapshots_with_path(),
            "versions": versions,
            "errors": h.errors.iter().map(|(i, e)| json!({"snapshot": views[*i].id.to_hex(), "error": e.to_string()})).collect::<Vec<_>>(),
        })))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct RestoreBody {
    snapshot: String,
    /// The path in the snapshot; default `/`.
    path: Option<String>,
    /// The path's exact bytes in hex (wins over `path`).
    path_hex: Option<String>,
    /// An absolute path on the server.
    target: String,
    /// never, if-changed (default) or always.
    overwrite: Option<String>,
}

/// Restore a path of a snapshot to a directory on the server.
#[utoipa::path(post, path = "/restore", tag = "restore", request_body = RestoreBody,
    responses((status = 200, description = "What was restored (as restore --json)"),
              (status = 403, description = "Only admins restore to the server", body = crate::error::ErrorBody)))]
async fn restore(
    State(app): State<AppState>,
    auth: Auth,
    Json(body): Json<RestoreBody>,
) -> Result<Json<Value>, ApiError> {
    // Writing anywhere on the server as the daemon's user is an admin's right only.
    auth.require(Role::Admin)?;
    let path = snapshot_path_exact(body.path.as_deref(), body.path_hex.as_deref())?;
    let target = std::path::PathBuf::from(&body.target);
    if !target.is_absolute() || body.target.split('/').any(|c| c == "..") {
        return Err(ApiError::bad_request(format!(
            "target {:?} must be an absolute path without ..",
            body.target
        )));
    }
    use snapguard_engine::restore::Overwrite;
    let overwrite = match body.overwrite.as_deref().unwrap_or("if-changed") {
        "never" => Overwrite::Never,
        "if-changed" => Overwrite::IfChanged,
        "always" => Overwrite::Always,
        o => {
            return Err(ApiError::bad_request(format!(
                "overwrite {o:?}: use never, if-changed or always"
            )))
        }
    };
    let _permit = heavy(&app).await?;
    blocking(move || {
        let s = app.0.repo.session("web: restore", true)?;
        let v = view(&s.repo, &body.snapshot)?;
        let opts = snapguard_engine::RestoreOptions {
            target: target.clone(),
            overwrite,
            ..Default::default()
        };
        let summary = snapguard_engine::restore(&s.repo, &v.snapshot, &path, &opts)?;
        tracing::info!(user = %auth.user.name, snapshot = %v.id.short(), path = %String::from_utf8_lossy(&path), target = %target.display(), "restored");
        let mut j = serde_json::to_value(&summary).map_err(|e| ApiError::internal(e.to_string()))?;
        if let Some(o) = j.as_object_mut() {
            o.insert("snapshot".into(), json!(v.id.to_hex()));
            o.insert("target".into(), json!(target));
        }
        Ok(Json(j))
    })
    .await
}

/// Growth and sizes for the dashboard: every snapshot's backup summary (oldest first) and
/// the repository's totals.
#[utoipa::path(get, path = "/stats", tag = "repository",
    responses((status = 200, description = "{snapshots: [...], stored_size, logical_size, dedup_ratio, compression_ratio}")))]
async fn stats(State(app): State<AppState>, _auth: Auth) -> Result<Json<Value>, ApiError> {
    let _permit = heavy(&app).await?;
    blocking(move || {
        let s = app.0.repo.session("web: stats", true)?;
        let (mut views, _) = annotate::views(&s.repo)?;
        views.sort_by_key(|v| v.snapshot.time);
        let ids: Vec<String> = views.iter().map(|v| v.id.to_hex()).collect();
        // Sizing reads every tree: computed once per set of snapshots.
        let totals = {
            let cached = app.0.stats_cache.lock().ok().and_then(|c| {
                c.as_ref()
                    .filter(|(k, _)| *k == ids)
                    .map(|(_, v)| v.clone())
            });
            match cached {
                Some(t) => t,
                None => {
                    let snaps: Vec<_> = views.iter().map(|v| v.snapshot.clone()).collect();
                    let t = serde_json::to_value(snapguard_engine::browse::stats(&s.repo, &snaps)?)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    if let Ok(mut c) = app.0.stats_cache.lock() {
                        *c = Some((ids.clone(), t.clone()));
                    }
                    t
                }
            }
        };
        let series: Vec<Value> = views
            .iter()
            .map(|v| {
                let sm = v.snapshot.summary.clone().unwrap_or_default();
                json!({
                    "id": v.id.to_hex(),
                    "short_id": v.id.short(),
                    "time": rfc3339(v.snapshot.time),
                    "hostname": v.snapshot.hostname,
                    "paths": v.snapshot.display_paths(),
                    "tags": v.tags,
                    "bytes_read": sm.bytes_read,
                    "bytes_added": sm.bytes_added,
                    "bytes_stored": sm.bytes_stored,
                    "files_new": sm.files_new,
                    "files_changed": sm.files_changed,
                    "duration_ms": sm.duration_ms,
                    "errors": sm.errors,
                })
            })
            .collect();
        let mut out = json!({ "snapshots": series });
        if let (Some(o), Some(t)) = (out.as_object_mut(), totals.as_object()) {
            for (k, v) in t {
                if k != "snapshots" {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(Json(out))
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn changes_are_grouped_below_the_backed_up_paths() {
        let sources = vec!["/home".to_string(), "/srv/data".to_string()];
        let g = |p: &str| super::group_of(p, &sources);
        assert_eq!(g("/home/alice/docs/a.txt"), "/home/alice");
        assert_eq!(g("/home/alice"), "/home/alice");
        assert_eq!(g("/home"), "/home");
        assert_eq!(g("/srv/data/db/x"), "/srv/data/db");
        assert_eq!(g("/srv"), "/srv", "a parent of a backed-up path");
        assert_eq!(g("/homework/x"), "/homework/x", "not below /home");
        let root = vec!["/".to_string()];
        assert_eq!(super::group_of("/etc/passwd", &root), "/etc");
    }
}
