//! API errors: an HTTP status, a stable machine-readable code and a message for people.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer: `{"code": ..., "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait before trying again (429).
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable: bad_request, unauthenticated, invalid_credentials, forbidden, csrf, not_found,
    /// conflict, repository_locked, too_many_attempts, repository, internal.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", m)
    }
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "log in first: POST /api/v1/session",
        )
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: self.message,
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

impl From<snapguard_engine::Error> for ApiError {
    fn from(e: snapguard_engine::Error) -> Self {
        use snapguard_engine::Error as E;
        let message = e.to_string();
        match e {
            E::SnapshotNotFound { .. } | E::PathNotFound { .. } | E::PathInNoSnapshot { .. } => {
                ApiError::not_found(message)
            }
            E::AmbiguousSnapshot { .. } | E::InvalidArgument(_) => ApiError::bad_request(message),
            E::Locked { .. } => ApiError::new(StatusCode::LOCKED, "repository_locked", message),
            E::Immutable { .. } | E::AppendOnly { .. } | E::ObjectLocked { .. } => {
                ApiError::conflict(message)
            }
            _ => ApiError::new(StatusCode::BAD_GATEWAY, "repository", message),
        }
    }
}

impl From<snapguard_daemon::Error> for ApiError {
    fn from(e: snapguard_daemon::Error) -> Self {
        match e {
            snapguard_daemon::Error::NoRun(_) => ApiError::not_found(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}
