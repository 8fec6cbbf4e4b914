//! Logging in and out, the session extractor every route uses, CSRF and the login rate limit.
//!
//! - `POST /api/v1/session` checks the password (Argon2id, at most two at once, the same work
//!   for unknown names) and sets `sg_session`: 256 random bits, HttpOnly, SameSite=Strict,
//!   Secure over HTTPS. The database keeps only a hash of it.
//! - [`Auth`] is taken by every other handler: no valid session, 401. For POST, PUT and DELETE
//!   the `X-CSRF-Token` header must equal the session's token (compared in constant time), and
//!   an `Origin` header, when sent, must be this server's.
//! - [`Limiter`]: five failed logins within 15 minutes for an account, or from an address,
//!   block further attempts for 30 s, doubling with each further failure up to 15 minutes. A
//!   blocked attempt is refused before any password is checked.

use crate::tls::ClientAddr;
use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use snapguard_daemon::users::{Role, User};
use std::collections::HashMap;
use std::sync::Mutex;
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const COOKIE: &str = "sg_session";
const CSRF_HEADER: &str = "x-csrf-token";

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login, current, logout))
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A request with a valid session.
#[derive(Clone, Debug)]
pub struct Auth {
    pub user: User,
    pub csrf: String,
    pub expires: i64,
    token: String,
}

impl Auth {
    /// Refuse unless the account's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.user.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} ({}) may not do this; it needs the {} role",
                self.user.name,
                self.user.role.as_str(),
                role.as_str()
            )))
        }
    }

    /// Who did it, for logs: "web user alice".
    pub fn who(&self) -> String {
        format!("web user {}", self.user.name)
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `Origin` (if sent) names the host the request was sent to.
fn origin_ok(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    !host.is_empty() && origin_host == host
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let token = cookie_token(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        let app2 = app.clone();
        let t = token.clone();
        let session = tokio::task::spawn_blocking(move || {
            app2.db(|db| db.session(&t, now(), &app2.0.sessions))
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??
        .ok_or_else(ApiError::unauthenticated)?;
        let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if unsafe_method {
            if !origin_ok(&parts.headers) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "the request comes from another site (Origin does not match)",
                ));
            }
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or(b"");
            if !bool::from(sent.ct_eq(session.csrf.as_bytes())) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "missing or wrong X-CSRF-Token header; send the csrf_token of the session",
                ));
            }
        }
        Ok(Auth {
            user: session.user,
            csrf: session.csrf,
            expires: session.expires,
            token,
        })
    }
}

/// Failed logins per key ("user:NAME", "addr:IP").
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Failures {
    /// Failures in the current window.
    count: u32,
    window_start: i64,
    blocked_until: i64,
}

const WINDOW: i64 = 15 * 60;
const FREE_FAILURES: u32 = 5;
const MAX_BLOCK: i64 = 15 * 60;

impl Limiter {
    /// Seconds to wait if any of `keys` is blocked at `now`.
    pub fn blocked(&self, keys: &[String], now: i64) -> Option<u64> {
        let map = self.failures.lock().ok()?;
        keys.iter()
            .filter_map(|k| map.get(k))
            .map(|f| f.blocked_until - now)
            .filter(|s| *s > 0)
            .max()
            .map(|s| s as u64)
    }

    /// Record a failed attempt for each of `keys`.
    pub fn failed(&self, keys: &[String], now: i64) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        // Old entries go, so the map cannot grow without bound.
        if map.len() > 10_000 {
            map.retain(|_, f| f.blocked_until > now || now - f.window_start < WINDOW);
        }
        for k in keys {
            let f = map.entry(k.clone()).or_default();
            if now - f.window_start >= WINDOW && f.blocked_until <= now {
                *f = Failures {
                    count: 0,
                    window_start: now,
                    blocked_until: 0,
                };
            }
            f.count += 1;
            if f.count >= FREE_FAILURES {
                let doublings = (f.count - FREE_FAILURES).min(5);
                let block = (30i64 << doublings).min(MAX_BLOCK);
                f.blocked_until = now + block;
                // Blocked attempts keep counting within a window that lasts as long.
                f.window_start = now;
            }
        }
    }

    /// A successful login clears the account's failures.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }
}

/// A login request.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The current session.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub username: String,
    /// admin, operator or viewer.
    pub role: String,
    /// Send as X-CSRF-Token with every POST, PUT and DELETE.
    pub csrf_token: String,
    /// When the session ends at the latest (RFC 3339).
    pub expires: String,
}

fn session_cookie(app: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if app.0.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("sg_session=; Max-Age=0"))
}

/// Log in.
#[utoipa::path(post, path = "/session", tag = "session", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; the sg_session cookie is set", body = SessionInfo),
        (status = 401, description = "Unknown user, wrong password or disabled account (one answer for all)", body = crate::error::ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = crate::error::ErrorBody)))]
async fn login(
    axum::extract::State(app): axum::extract::State<AppState>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // JSON only: a cross-site HTML form cannot send it without a CORS preflight.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::bad_request(
            "send the login as JSON (Content-Type: application/json)",
        ));
    }
    if !origin_ok(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "the login comes from another site (Origin does not match)",
        ));
    }
    let req: LoginRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the login body is not valid: {e}")))?;
    let addr = client.map_or("unknown".to_string(), |Extension(c)| c.0.ip().to_string());
    let keys = vec![format!("user:{}", req.username), format!("addr:{addr}")];
    let t = now();
    if let Some(wait) = app.0.limiter.blocked(&keys, t) {
        tracing::warn!(user = %req.username, %addr, "login refused: too many failed attempts");
        return Err(ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many failed logins; try again in {wait} s"),
            )
        });
    }
    let _permit = app
        .0
        .password_checks
        .acquire()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let app2 = app.clone();
    let addr2 = addr.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let user =
            app2.db(|db| db.authenticate(&req.username, &req.password, &app2.0.hash_cost))?;
        match user {
            Some(u) => {
                let s =
                    app2.db(|db| db.create_session(&u.name, &addr2, now(), &app2.0.sessions))?;
                Ok::<_, ApiError>(Ok((u, s)))
            }
            None => Ok(Err(req.username)),
        }
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    match outcome {
        Ok((user, s)) => {
            app.0.limiter.succeeded(&keys[0]);
            tracing::info!(user = %user.name, %addr, "logged in");
            let body = SessionInfo {
                username: user.name.clone(),
                role: user.role.as_str().into(),
                csrf_token: s.csrf.clone(),
                expires: rfc3339(s.expires),
            };
            let mut r = Json(body).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&app, &s.token, s.expires - now()),
            );
            Ok(r)
        }
        Err(name) => {
            app.0.limiter.failed(&keys, now());
            tracing::warn!(user = %name, %addr, "failed login");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong user name or password (or the account is disabled)",
            ))
        }
    }
}

/// The current session.
#[utoipa::path(get, path = "/session", tag = "session",
    responses((status = 200, description = "The session", body = SessionInfo),
              (status = 401, description = "No session", body = crate::error::ErrorBody)))]
async fn current(auth: Auth) -> Json<SessionInfo> {
    Json(SessionInfo {
        username: auth.user.name.clone(),
        role: auth.user.role.as_str().into(),
        csrf_token: auth.csrf.clone(),
        expires: rfc3339(auth.expires),
    })
}

/// Log out.
#[utoipa::path(delete, path = "/session", tag = "session",
    responses((status = 204, description = "Logged out; the cookie is cleared"),
              (status = 401, description = "No session", body = crate::error::ErrorBody)))]
async fn logout(
    axum::extract::State(app): axum::extract::State<AppState>,
    auth: Auth,
) -> Result<Response, ApiError> {
    let app2 = app.clone();
    let token = auth.token.clone();
    tokio::task::spawn_blocking(move || app2.db(|db| db.end_session(&token)))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&app, "", 0));
    Ok(r)
}

/// HTTP Basic credentials (for `/metrics` scrapers): the account, if the password is right.
pub(crate) async fn basic_auth(
    app: &AppState,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
) -> Result<Option<User>, ApiError> {
    use base64ct::Encoding;
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return Ok(None);
    };
    let decoded =
        base64ct::Base64::decode_vec(v.trim()).map_err(|_| ApiError::unauthenticated())?;
    let text = String::from_utf8(decoded).map_err(|_| ApiError::unauthenticated())?;
    let Some((name, password)) = text.split_once(':') else {
        return Err(ApiError::unauthenticated());
    };
    let addr = client.map_or("unknown".to_string(), |c| c.0.ip().to_string());
    let keys = vec![format!("user:{name}"), format!("addr:{addr}")];
    if let Some(wait) = app.0.limiter.blocked(&keys, now()) {
        return Err(ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many failed logins; try again in {wait} s"),
            )
        });
    }
    let _permit = app
        .0
        .password_checks
        .acquire()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let app2 = app.clone();
    let (name, password) = (name.to_string(), password.to_string());
    let user = tokio::task::spawn_blocking(move || {
        app2.db(|db| db.authenticate(&name, &password, &app2.0.hash_cost))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    match user {
        Some(u) => Ok(Some(u)),
        None => {
            app.0.limiter.failed(&keys, now());
            Err(ApiError::unauthenticated())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_blocks_after_five_failures_and_doubles() {
        let l = Limiter::default();
        let k = vec!["user:a".to_string()];
        for i in 0..4 {
            l.failed(&k, 100 + i);
            assert_eq!(l.blocked(&k, 100 + i), None);
        }
        l.failed(&k, 104);
        assert_eq!(l.blocked(&k, 104), Some(30));
        assert_eq!(l.blocked(&k, 134), None);
        l.failed(&k, 134);
        assert_eq!(l.blocked(&k, 134), Some(60));
        for _ in 0..20 {
            l.failed(&k, 200);
        }
        assert_eq!(l.blocked(&k, 200), Some(900), "capped at 15 minutes");
        l.succeeded("user:a");
        assert_eq!(l.blocked(&k, 200), None);
        // Failures spread beyond the window never block.
        let k2 = vec!["addr:x".to_string()];
        for i in 0..20 {
            l.failed(&k2, i * WINDOW);
            assert_eq!(l.blocked(&k2, i * WINDOW), None);
        }
    }

    #[test]
    fn cookies_and_origins_are_read_strictly() {
        let mut h = HeaderMap::new();
        let tok = "ab".repeat(32);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE}={tok}; y=2")).unwrap(),
        );
        assert_eq!(cookie_token(&h), Some(tok));
        h.insert(header::COOKIE, HeaderValue::from_static("sg_session=short"));
        assert_eq!(cookie_token(&h), None);
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8443"));
        assert!(origin_ok(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8443"),
        );
        assert!(origin_ok(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!origin_ok(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!origin_ok(&h));
    }
}
