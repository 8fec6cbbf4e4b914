//! The repository as the API uses it: unlocked once (the daemon's password or key file), then a
//! fresh session per request ([`snapguard_engine::Repository::session`]) that takes a shared
//! lock and, when blobs are read, loads the index, exactly as a CLI command does. A prune
//! (exclusive lock) therefore never runs under a request, and a request after a prune sees the
//! repository as it is now.

use crate::ApiError;
use snapguard_engine::lock::{LockGuard, LockKind, LockOwner};
use snapguard_engine::Repository;
use std::sync::Mutex;

/// Unlocks the repository (blocking; may take a second of Argon2id). The daemon configures the
/// caches on the repository it returns.
pub type Opener = Box<dyn Fn() -> Result<Repository, String> + Send + Sync>;

/// How requests reach the repository.
pub struct RepoAccess {
    opener: Opener,
    owner: LockOwner,
    /// The unlocked repository and the bytes of its config file when it was opened.
    base: Mutex<Option<(Repository, Vec<u8>)>>,
    /// The last failure to open, and when: requests within [`RETRY_OPEN`] get it again
    /// instead of each unlocking (Argon2id) in turn.
    failed: Mutex<Option<(std::time::Instant, String)>>,
}

const RETRY_OPEN: std::time::Duration = std::time::Duration::from_secs(10);

/// A request's session: the repository and the lock that keeps it from being pruned.
pub struct Session {
    pub repo: Repository,
    _lock: LockGuard,
}

impl RepoAccess {
    pub fn new(opener: Opener, owner: LockOwner) -> RepoAccess {
        RepoAccess {
            opener,
            owner,
            base: Mutex::new(None),
            failed: Mutex::new(None),
        }
    }

    /// A locked session for `operation`; with `index`, its index is loaded. Blocking.
    pub fn session(&self, operation: &str, index: bool) -> Result<Session, ApiError> {
        let mut repo = {
            let mut base = self
                .base
                .lock()
                .map_err(|_| ApiError::internal("the repository handle is poisoned"))?;
            // The config can change under a running daemon (`append-only`, a new key slot
            // scheme, object lock): read it each time (one small read) and unlock again when
            // it has, so that no request acts on an old one.
            if let Some((r, bytes)) = base.as_ref() {
                match snapguard_engine::probe(r.backend()) {
                    Ok((_, now)) if &now == bytes => {}
                    Ok(_) => {
                        tracing::info!("the repository's config changed; unlocking it again");
                        *base = None;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if base.is_none() {
                let unavailable = |e: &str| {
                    ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "repository",
                        format!("cannot open the repository: {e}"),
                    )
                };
                if let Some((at, e)) = self.failed.lock().ok().and_then(|f| f.clone()) {
                    if at.elapsed() < RETRY_OPEN {
                        return Err(unavailable(&e));
                    }
                }
                match (self.opener)().and_then(|r| {
                    snapguard_engine::probe(r.backend())
                        .map(|(_, bytes)| (r, bytes))
                        .map_err(|e| e.to_string())
                }) {
                    Ok(pair) => *base = Some(pair),
                    Err(e) => {
                        if let Ok(mut f) = self.failed.lock() {
                            *f = Some((std::time::Instant::now(), e.clone()));
                        }
                        return Err(unavailable(&e));
                    }
                }
            }
            match base.as_ref() {
                Some((b, _)) => b.session(),
                None => return Err(ApiError::internal("the repository did not open")),
            }
        };
        let lock = repo.lock(LockKind::Shared, operation, &self.owner)?;
        if index {
            repo.load_index()?;
            for e in repo.index_errors() {
                tracing::warn!("{e}; the blobs it lists are unavailable until 'snapguard repair index' rebuilds it");
            }
        }
        Ok(Session { repo, _lock: lock })
    }
}
