//! The daemon's HTTPS side: the REST API under `/api/v1` (described by the OpenAPI document
//! at `/api/v1/openapi.json`, generated from the same annotations the router is built from),
//! `/metrics` for Prometheus, and the web UI (static files compiled into the binary).
//!
//! The daemon (crates/cli) owns the event loop and the jobs; it hands this crate
//!
//! - a [`Control`]: the configured jobs, starting and cancelling runs, the settings;
//! - an opener for the repository ([`repo::Opener`]): the repository is unlocked once, and each
//!   request works on a session of it that takes a shared lock and loads the index like any
//!   command, so a prune between two requests is never missed;
//! - the state directory, whose database holds accounts, sessions and job runs.
//!
//! Requests run on a tokio runtime of their own (a thread of the daemon); repository work runs
//! on its blocking pool. Security: sessions ([`auth`]) are random tokens in an HttpOnly,
//! SameSite=Strict cookie, stored hashed; changes need a per-session CSRF token; failed logins
//! are rate limited per account and per address; every answer carries a strict
//! Content-Security-Policy. See docs/api.md.

mod api;
mod assets;
pub mod auth;
mod error;
mod jobs;
mod metrics;
pub mod repo;
pub mod tls;

pub use error::ApiError;

use axum::http::{header, HeaderValue};
use snapguard_daemon::sessions::SessionLimits;
use snapguard_daemon::users::HashCost;
use snapguard_daemon::State;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// A configured job as the API shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct JobInfo {
    pub name: String,
    /// backup, forget, prune, check, local-snapshot, local-cleanup.
    pub kind: String,
    /// The schedule as configured (cron, macro or interval).
    pub schedule: String,
    /// "schedule" or "idle".
    pub when: String,
    /// The run in progress, if any.
    pub running: Option<i64>,
    /// The next scheduled start (RFC 3339), if known.
    pub next_run: Option<String>,
}

/// What the daemon's event loop does for the API.
pub trait Control: Send + Sync + 'static {
    /// The configured jobs.
    fn jobs(&self) -> Vec<JobInfo>;
    /// Start a job now; `who` is recorded in the run's log. Returns the run id.
    fn run_job(&self, job: &str, who: &str) -> Result<i64, ApiError>;
    /// Stop a running run.
    fn cancel_run(&self, run: i64, who: &str) -> Result<(), ApiError>;
    /// The configuration for the settings page, without secrets.
    fn settings(&self) -> serde_json::Value;
}

/// Long repository requests at once (see [`Inner::heavy`]).
pub(crate) const HEAVY_REQUESTS: usize = 4;

/// Everything a request may need.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    /// One connection for the API's requests (SQLite; WAL lets the event loop write beside it).
    pub(crate) db: Mutex<State>,
    pub(crate) sessions: SessionLimits,
    pub(crate) hash_cost: HashCost,
    pub(crate) control: Arc<dyn Control>,
    pub(crate) repo: repo::RepoAccess,
    pub(crate) limiter: auth::Limiter,
    /// At most this many password checks (19 MiB of Argon2id each) at once.
    pub(crate) password_checks: tokio::sync::Semaphore,
    /// Repository work that may take long (downloads, archives, versions, diffs, restores,
    /// statistics) runs at most this many at once.
    pub(crate) heavy: Arc<tokio::sync::Semaphore>,
    /// Whether cookies get the Secure attribute (always over HTTPS).
    pub(crate) secure_cookies: bool,
    /// The sizes of the last set of snapshots (`/stats` reads every tree to compute them).
    pub(crate) stats_cache: Mutex<Option<(Vec<String>, serde_json::Value)>>,
}

impl AppState {
    /// The state for a daemon whose state directory is `state_dir`.
    pub fn new(
        state_dir: &Path,
        control: Arc<dyn Control>,
        repo: repo::RepoAccess,
        secure_cookies: bool,
    ) -> Result<AppState, snapguard_daemon::Error> {
        Ok(AppState(Arc::new(Inner {
            db: Mutex::new(State::open(state_dir)?),
            sessions: SessionLimits::default(),
            hash_cost: HashCost::default(),
            control,
            repo,
            limiter: auth::Limiter::default(),
            password_checks: tokio::sync::Semaphore::new(2),
            heavy: Arc::new(tokio::sync::Semaphore::new(HEAVY_REQUESTS)),
            secure_cookies,
            stats_cache: Mutex::new(None),
        })))
    }

    /// Run `f` on the state database (blocking: call from a blocking context or briefly).
    pub(crate) fn db<T>(
        &self,
        f: impl FnOnce(&State) -> Result<T, snapguard_daemon::Error>,
    ) -> Result<T, ApiError> {
        let db = self
            .0
            .db
            .lock()
            .map_err(|_| ApiError::internal("the state database handle is poisoned"))?;
        f(&db).map_err(ApiError::from)
    }
}

/// The OpenAPI document's frame; the paths come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SnapGuard API",
        description = "The SnapGuard daemon's REST API. Log in with POST /api/v1/session; send the session's csrf_token as X-CSRF-Token on every POST, PUT and DELETE. Errors are {\"code\", \"message\"}."
    ),
    components(schemas(error::ErrorBody, JobInfo))
)]
struct ApiDoc;

/// The API routes with their OpenAPI document.
pub fn api() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::routes())
        .merge(api::routes())
        .merge(jobs::routes())
        .routes(utoipa_axum::routes!(openapi_json))
        .split_for_parts();
    doc.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    (router, doc)
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "api",
    responses((status = 200, description = "The OpenAPI 3.1 document of /api/v1")))]
async fn openapi_json(_auth: auth::Auth) -> axum::Json<utoipa::openapi::OpenApi> {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    axum::Json(DOC.get_or_init(|| api().1).clone())
}

/// The largest request body the API takes (its bodies are small JSON objects).
const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send a request body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The whole application: `/api/v1/...`, `/metrics` and the web UI.
pub fn router(app: AppState) -> axum::Router {
    let (api_routes, _) = api();
    axum::Router::new()
        .nest(
            "/api/v1",
            api_routes
                .fallback(api_not_found)
                .layer(axum::middleware::map_response(json_rejections))
                .layer(axum::middleware::from_fn(read_body)),
        )
        .route("/metrics", axum::routing::get(metrics::metrics))
        .merge(assets::routes())
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// Read a request's body whole, within [`MAX_BODY`] and [`BODY_TIMEOUT`], before any handler
/// runs: a client that sends a body slowly or endlessly holds nothing else.
async fn read_body(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return axum::response::IntoResponse::into_response(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "bad_request",
                format!("the request body is larger than {MAX_BODY} bytes, or broken"),
            ))
        }
        Err(_) => {
            return axum::response::IntoResponse::into_response(ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "bad_request",
                "the request body did not arrive in time",
            ))
        }
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// Unknown API paths: 401 without a session, like every route, so that paths cannot be
/// probed without logging in.
async fn api_not_found(_auth: auth::Auth, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no API route {}", uri.path()))
}

/// Extractor rejections (a missing query parameter, a body that is not the JSON expected, a
/// malformed path) come from axum as plain text; answer them as `{"code", "message"}` like
/// every other API error.
async fn json_rejections(r: axum::response::Response) -> axum::response::Response {
    let plain = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    // A wrong method on an existing route comes with an empty body.
    let method = r.status() == axum::http::StatusCode::METHOD_NOT_ALLOWED;
    if !r.status().is_client_error() || !(plain || method) {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let code = if parts.status == axum::http::StatusCode::NOT_FOUND {
        "not_found"
    } else {
        "bad_request"
    };
    let message = if text.is_empty() && method {
        "this route does not take that method; see /api/v1/openapi.json".to_string()
    } else {
        String::from_utf8_lossy(&text).into_owned()
    };
    let mut out =
        axum::response::IntoResponse::into_response(ApiError::new(parts.status, code, message));
    // Keep `Allow` (405) and the like.
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().entry(k.clone()).or_insert(v.clone());
        }
    }
    out
}

/// Headers on every answer: no framing, no sniffing, no referrer, only our own scripts.
async fn security_headers(mut r: axum::response::Response) -> axum::response::Response {
    let h = r.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        if !h.contains_key(&k) {
            h.insert(k, HeaderValue::from_static(v));
        }
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    r
}

/// Where and how to listen.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub tls: tls::TlsSource,
}

/// An error starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}; is another program using the port? Choose another with --listen or [daemon] listen")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot start the web server's runtime: {0}")]
    Runtime(std::io::Error),
}

/// Bind `options.listen` now (so errors reach the caller) and serve on a thread of its own.
/// Returns the address actually bound (port 0 picks a free port).
pub fn spawn(options: &ServeOptions, app: AppState) -> Result<SocketAddr, ServeError> {
    let tls = tls::server_config(&options.tls)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Session checks and database reads need a blocking thread each; downloads and other
        // long repository work are bounded separately (`AppState::heavy`), so they never take
        // every thread.
        .max_blocking_threads(64)
        .thread_name("sg-web")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let std_listener =
        std::net::TcpListener::bind(options.listen).map_err(|source| ServeError::Bind {
            addr: options.listen,
            source,
        })?;
    let addr = std_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: options.listen,
            source,
        })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Bind { addr, source })?;
    let router = router(app);
    std::thread::Builder::new()
        .name("sg-web".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("web server: {e}");
                        return;
                    }
                };
                tls::serve(listener, tls, router).await;
            })
        })
        .map_err(ServeError::Runtime)?;
    Ok(addr)
}
