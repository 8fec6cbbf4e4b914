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
    pub(crate) token: String,
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

/// Failed logins per key: an account from one address (`pair:`), an address (`addr:`, IPv6
/// by its /64), and an account from anywhere (`user:`), each with its own allowance.
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
    /// Blocks in the current window (each doubles the next).
    blocks: u32,
    /// Attempts being checked right now: they count as failures until they are decided, so a
    /// burst of parallel attempts cannot get past the allowance.
    in_flight: u32,
}

const WINDOW: i64 = 15 * 60;
const MAX_BLOCK: i64 = 15 * 60;

/// Failures allowed in a window before a key is blocked. An account is blocked for everyone
/// only after many more failures than from one address, so that a stranger cannot lock its
/// owner out with a handful of wrong passwords.
fn allowance(key: &str) -> u32 {
    if key.starts_with("pair:") {
        5
    } else if key.starts_with("addr:") {
        20
    } else {
        50
    }
}

/// The keys of a login attempt. IPv6 clients are counted by their /64, which one machine
/// usually holds whole.
pub(crate) fn limiter_keys(user: &str, addr: Option<std::net::IpAddr>) -> Vec<String> {
    let a = match addr {
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(ip) => ip.to_string(),
        None => "unknown".to_string(),
    };
    vec![
        format!("pair:{user}@{a}"),
        format!("addr:{a}"),
        format!("user:{user}"),
    ]
}

impl Limiter {
    /// Start an attempt: `Err(seconds to wait)` if any key is blocked or has no allowance left
    /// once the attempts in flight are counted; otherwise the attempt is reserved and must be
    /// ended with [`Limiter::failed`] or [`Limiter::succeeded`].
    pub fn begin(&self, keys: &[String], now: i64) -> Result<(), u64> {
        let Ok(mut map) = self.failures.lock() else {
            return Err(1);
        };
        // Old entries go, so the map cannot grow without bound.
        if map.len() > 10_000 {
            map.retain(|_, f| {
                f.in_flight > 0 || now - f.window_start.max(f.blocked_until) < WINDOW
            });
        }
        let mut wait = 0i64;
        for k in keys {
            if let Some(f) = map.get(k) {
                if f.blocked_until > now {
                    wait = wait.max(f.blocked_until - now);
                } else if f.count + f.in_flight >= allowance(k) && now - f.window_start < WINDOW {
                    // The allowance is taken by attempts still being checked.
                    wait = wait.max(1);
                }
            }
        }
        if wait > 0 {
            return Err(wait as u64);
        }
        for k in keys {
            let f = map.entry(k.clone()).or_default();
            // Quiet for a whole window after the last failure or block: start afresh.
            if f.blocked_until <= now && now - f.window_start.max(f.blocked_until) >= WINDOW {
                f.count = 0;
                f.blocks = 0;
                f.window_start = now;
            }
            f.in_flight += 1;
        }
        Ok(())
    }

    /// End a reserved attempt as failed.
    pub fn failed(&self, keys: &[String], now: i64) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        for k in keys {
            let f = map.entry(k.clone()).or_default();
            f.in_flight = f.in_flight.saturating_sub(1);
            f.count += 1;
            if f.count >= allowance(k) && f.blocked_until <= now {
                let block = (30i64 << f.blocks.min(5)).min(MAX_BLOCK);
                f.blocked_until = now + block;
                f.blocks += 1;
                // After the block, one more failure blocks again (for twice as long).
                f.count = allowance(k) - 1;
                f.window_start = now;
            }
        }
    }

    /// End a reserved attempt as successful: the account's failures from this address are
    /// forgotten (not the address's, nor the account's from elsewhere).
    pub fn succeeded(&self, keys: &[String]) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        for k in keys {
            if let Some(f) = map.get_mut(k) {
                f.in_flight = f.in_flight.saturating_sub(1);
            }
        }
        if let Some(pair) = keys.iter().find(|k| k.starts_with("pair:")) {
            if map.get(pair).is_some_and(|f| f.in_flight == 0) {
                map.remove(pair);
            }
        }
    }
}

fn too_many(wait: u64) -> ApiError {
    ApiError {
        retry_after: Some(wait),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed logins; try again in {wait} s"),
        )
    }
}

/// Check a password off the async threads and without holding the database during the
/// Argon2id work; at most two checks at once.
async fn check_password(
    app: &AppState,
    name: &str,
    password: &str,
) -> Result<Option<User>, ApiError> {
    let _permit = app
        .0
        .password_checks
        .acquire()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let app2 = app.clone();
    let (name, password) = (
        name.to_string(),
        zeroize::Zeroizing::new(password.to_string()),
    );
    tokio::task::spawn_blocking(move || {
        let record = app2.db(|db| db.login_record(&name))?;
        snapguard_daemon::users::verify_login(record, &name, &password, &app2.0.hash_cost)
            .map_err(ApiError::from)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
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
    // A name that cannot be an account is refused before it is counted or logged.
    if snapguard_daemon::users::check_user_name(&req.username).is_err() || req.password.len() > 1024
    {
        return Err(invalid_credentials());
    }
    let ip = client.map(|Extension(c)| c.0.ip());
    let addr = ip.map_or("unknown".to_string(), |i| i.to_string());
    let keys = limiter_keys(&req.username, ip);
    if let Err(wait) = app.0.limiter.begin(&keys, now()) {
        tracing::warn!(user = %req.username, %addr, "login refused: too many failed attempts");
        return Err(too_many(wait));
    }
    let user = match check_password(&app, &req.username, &req.password).await {
        Ok(u) => u,
        Err(e) => {
            app.0.limiter.failed(&keys, now());
            return Err(e);
        }
    };
    let Some(user) = user else {
        app.0.limiter.failed(&keys, now());
        tracing::warn!(user = %req.username, %addr, "failed login");
        return Err(invalid_credentials());
    };
    app.0.limiter.succeeded(&keys);
    let app2 = app.clone();
    let (name, addr2) = (user.name.clone(), addr.clone());
    let s = tokio::task::spawn_blocking(move || {
        app2.db(|db| db.create_session(&name, &addr2, now(), &app2.0.sessions))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
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

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong user name or password (or the account is disabled)",
    )
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
    if snapguard_daemon::users::check_user_name(name).is_err() {
        return Err(ApiError::unauthenticated());
    }
    let ip = client.map(|c| c.0.ip());
    let keys = limiter_keys(name, ip);
    app.0.limiter.begin(&keys, now()).map_err(too_many)?;
    match check_password(app, name, password).await {
        Ok(Some(u)) => {
            app.0.limiter.succeeded(&keys);
            Ok(Some(u))
        }
        Ok(None) => {
            app.0.limiter.failed(&keys, now());
            Err(ApiError::unauthenticated())
        }
        Err(e) => {
            app.0.limiter.failed(&keys, now());
            Err(e)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_blocks_after_the_allowance_and_doubles() {
        let l = Limiter::default();
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let k = limiter_keys("a", Some(ip));
        for i in 0..5 {
            assert_eq!(l.begin(&k, 100 + i), Ok(()));
            l.failed(&k, 100 + i);
        }
        assert_eq!(l.begin(&k, 104), Err(30), "the pair is blocked");
        assert_eq!(l.begin(&k, 134), Ok(()));
        l.failed(&k, 134);
        assert_eq!(l.begin(&k, 134), Err(60), "one more failure doubles");
        // Another address may still log into the account; the blocked pair is not cleared by
        // a success elsewhere.
        let other = limiter_keys("a", Some("10.0.0.2".parse().unwrap()));
        assert_eq!(l.begin(&other, 135), Ok(()));
        l.succeeded(&other);
        assert_eq!(l.begin(&k, 135), Err(59));
        // Failing again each time a block ends: 120 s, 240 s, ... capped at 15 minutes.
        let mut t = 200;
        let mut blocks = Vec::new();
        for _ in 0..8 {
            assert_eq!(l.begin(&k, t), Ok(()), "blocked at {t}");
            l.failed(&k, t);
            let Err(wait) = l.begin(&k, t) else {
                panic!("not blocked after a failure at {t}")
            };
            blocks.push(wait);
            t += wait as i64;
        }
        assert_eq!(blocks.last(), Some(&900), "{blocks:?}");
        assert!(blocks.windows(2).all(|w| w[1] >= w[0]), "{blocks:?}");
    }

    #[test]
    fn parallel_attempts_count_before_they_are_decided() {
        let l = Limiter::default();
        let k = limiter_keys("a", Some("10.0.0.1".parse().unwrap()));
        for _ in 0..5 {
            assert_eq!(l.begin(&k, 100), Ok(()));
        }
        assert_eq!(l.begin(&k, 100), Err(1), "five are being checked");
        for _ in 0..5 {
            l.failed(&k, 101);
        }
        assert_eq!(l.begin(&k, 101), Err(30), "one block, not five doublings");
    }

    #[test]
    fn an_address_and_an_account_have_their_own_allowances() {
        let l = Limiter::default();
        // Many accounts from one address: the address is blocked after 20.
        for i in 0..20 {
            let k = limiter_keys(&format!("u{i}"), Some("10.0.0.9".parse().unwrap()));
            assert_eq!(l.begin(&k, 100), Ok(()));
            l.failed(&k, 100);
        }
        let k = limiter_keys("fresh", Some("10.0.0.9".parse().unwrap()));
        assert_eq!(l.begin(&k, 100), Err(30));
        // IPv6 addresses of one /64 are one client.
        let a = limiter_keys("x", Some("2001:db8:1:2::1".parse().unwrap()));
        let b = limiter_keys("x", Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_eq!(a[1], b[1]);
        // One account from many addresses: blocked for everyone after 50.
        for i in 0..50 {
            let k = limiter_keys("victim", Some(std::net::IpAddr::from([10, 1, 0, i as u8])));
            assert_eq!(l.begin(&k, 200), Ok(()));
            l.failed(&k, 200);
        }
        let k = limiter_keys("victim", Some("10.2.0.1".parse().unwrap()));
        assert_eq!(l.begin(&k, 200), Err(30));
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
