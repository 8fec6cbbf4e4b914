//! Repository locks: shared for operations that add or read data, exclusive for operations that
//! delete it.
//!
//! Protocol: write our own lock file, then list the others; if one conflicts and is not stale,
//! delete ours and fail with [`Error::Locked`]. Two processes racing both see each other's file
//! (both wrote before listing), so at worst both back off; never both proceed. A held lock is
//! refreshed every [`REFRESH_INTERVAL`] by writing a new file with a newer heartbeat and
//! deleting the old one. A lock is stale when its heartbeat is older than [`STALE_AFTER`], or
//! when it was taken on this host by a process that no longer exists. Stale locks are ignored
//! when acquiring and removed by `snapguard unlock`. See docs/design/locking.md.

use crate::crypt::Crypt;
use crate::{Error, Result};
use snapguard_backend::{Backend, BackendError, FileType};
use snapguard_format::{LockFile, LockId, ObjectKind, Timestamp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a held lock's heartbeat is renewed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// A lock whose heartbeat is older than this is stale (a crashed process on another host).
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// Shared or exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    Shared,
    Exclusive,
}

/// Who is running this process (recorded in our lock files).
#[derive(Clone, Debug)]
pub struct LockOwner {
    pub hostname: String,
    pub username: String,
}

/// A lock found in the repository.
#[derive(Clone, Debug)]
pub struct LockInfo {
    pub id: LockId,
    pub lock: LockFile,
    pub stale: bool,
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        secs: d.as_secs() as i64,
        nanos: d.subsec_nanos(),
    }
}

fn process_alive(pid: u32) -> bool {
    match rustix::process::Pid::from_raw(pid as i32) {
        Some(p) => !matches!(
            rustix::process::test_kill_process(p),
            Err(rustix::io::Errno::SRCH)
        ),
        None => false,
    }
}

/// Whether `lock` is stale, seen from `hostname` at `now`.
pub fn is_stale(lock: &LockFile, hostname: &str, now: Timestamp) -> bool {
    if now.secs.saturating_sub(lock.heartbeat.secs) > STALE_AFTER.as_secs() as i64 {
        return true;
    }
    lock.hostname == hostname && !process_alive(lock.pid)
}

fn write_lock(backend: &dyn Backend, crypt: &Crypt, lock: &LockFile) -> Result<LockId> {
    let (id, bytes) = crypt.seal_object(ObjectKind::Lock, &lock.encode())?;
    let id = LockId(id);
    backend
        .write(FileType::Lock, &id.to_hex(), &bytes)
        .map_err(|source| Error::Backend {
            location: backend.location(),
            cause: source,
        })?;
    Ok(id)
}

/// All locks in the repository. Lock files that vanish while we read them are skipped;
/// unreadable ones are reported as exclusive locks of an unknown holder.
pub fn list_locks(backend: &dyn Backend, crypt: &Crypt, hostname: &str) -> Result<Vec<LockInfo>> {
    let mut out = Vec::new();
    let names = backend
        .list(FileType::Lock)
        .map_err(|source| Error::Backend {
            location: backend.location(),
            cause: source,
        })?;
    let now = now();
    for (name, _) in names {
        let bytes = match backend.read(FileType::Lock, &name) {
            Ok(b) => b,
            Err(BackendError::NotFound { .. }) => continue,
            Err(source) => {
                return Err(Error::Backend {
                    location: backend.location(),
                    cause: source,
                })
            }
        };
        let Ok(id) = LockId::from_hex(&name) else {
            continue;
        };
        let object = format!("lock {name} (locks/{name})");
        let lock = crypt
            .open_object(ObjectKind::Lock, &id.0, &bytes, &object)
            .and_then(|p| LockFile::decode(&p).map_err(|e| Error::corrupt(&object, e)));
        match lock {
            Ok(lock) => {
                let stale = is_stale(&lock, hostname, now);
                out.push(LockInfo { id, lock, stale });
            }
            Err(e) => {
                // Lock files are written atomically (temporary name, then link), so a live
                // process's lock is never seen half-written: an unreadable lock is damage left
                // by a crash or tampering, never a running operation. Treat it as stale.
                tracing::warn!("{e}; treating it as stale");
                out.push(LockInfo {
                    id,
                    lock: LockFile {
                        hostname: "?".into(),
                        username: "?".into(),
                        pid: 0,
                        exclusive: true,
                        operation: "unreadable lock file".into(),
                        created: Timestamp::default(),
                        heartbeat: Timestamp::default(),
                    },
                    stale: true,
                });
            }
        }
    }
    Ok(out)
}

/// A held lock. Dropping it stops the refresher and deletes the lock file.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    current: Arc<Mutex<LockId>>,
    /// When the lock file was last (re)written successfully.
    pub(crate) refreshed: Arc<Mutex<std::time::Instant>>,
    stop: Arc<AtomicBool>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockGuard")
    }
}

fn describe(l: &LockFile) -> String {
    let kind = if l.exclusive {
        "locked exclusively"
    } else {
        "locked"
    };
    format!(
        "{kind} by {} on host {} (pid {}, {}, since {}, last heartbeat {})",
        l.username,
        l.hostname,
        l.pid,
        l.operation,
        crate::fmt_time(l.created),
        crate::fmt_time(l.heartbeat)
    )
}

/// Take a lock for `operation`.
pub fn acquire(
    backend: Arc<dyn Backend>,
    crypt: &Crypt,
    kind: LockKind,
    operation: &str,
    owner: &LockOwner,
) -> Result<LockGuard> {
    let t = now();
    let mut lock = LockFile {
        hostname: owner.hostname.clone(),
        username: owner.username.clone(),
        pid: std::process::id(),
        exclusive: kind == LockKind::Exclusive,
        operation: operation.to_string(),
        created: t,
        heartbeat: t,
    };
    let mine = write_lock(&*backend, crypt, &lock)?;
    let others = match list_locks(&*backend, crypt, &owner.hostname) {
        Ok(l) => l,
        Err(e) => {
            let _ = backend.remove(FileType::Lock, &mine.to_hex());
            return Err(e);
        }
    };
    if let Some(conflict) = others
        .iter()
        .find(|o| o.id != mine && !o.stale && (o.lock.exclusive || kind == LockKind::Exclusive))
    {
        let _ = backend.remove(FileType::Lock, &mine.to_hex());
        return Err(Error::Locked {
            location: backend.location(),
            holder: describe(&conflict.lock),
        });
    }
    let current = Arc::new(Mutex::new(mine));
    let refreshed = Arc::new(Mutex::new(std::time::Instant::now()));
    let stop = Arc::new(AtomicBool::new(false));
    let refresher = {
        let backend = backend.clone();
        let current = current.clone();
        let refreshed = refreshed.clone();
        let stop = stop.clone();
        let crypt = Crypt::new(crypt.bundle.clone(), crypt.cipher);
        std::thread::Builder::new()
            .name("lock-refresh".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(REFRESH_INTERVAL);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    lock.heartbeat = now();
                    match write_lock(&*backend, &crypt, &lock) {
                        Ok(new) => {
                            if let Ok(mut r) = refreshed.lock() {
                                *r = std::time::Instant::now();
                            }
                            if let Ok(mut cur) = current.lock() {
                                let old = std::mem::replace(&mut *cur, new);
                                let _ = backend.remove(FileType::Lock, &old.to_hex());
                            }
                        }
                        Err(e) => tracing::warn!("cannot refresh the repository lock: {e}"),
                    }
                }
            })
            .ok()
    };
    Ok(LockGuard {
        backend,
        current,
        refreshed,
        stop,
        refresher,
    })
}

/// Fail if a held lock has gone unrefreshed for long enough that another process may have
/// judged it stale (e.g. the machine was suspended): a prune may have run meanwhile, so data
/// written before that point cannot be trusted to still be there.
pub(crate) fn ensure_fresh(refreshed: &Mutex<std::time::Instant>, location: &str) -> Result<()> {
    let age = refreshed.lock().map(|r| r.elapsed()).unwrap_or_default();
    if age > STALE_AFTER / 2 {
        return Err(Error::Locked {
            location: location.to_string(),
            holder: format!(
                "no longer safely locked by this process: its lock was last refreshed {} minutes ago (was the machine suspended?), so another process may have treated it as stale and pruned; nothing was committed, run the command again",
                age.as_secs() / 60
            ),
        });
    }
    Ok(())
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.refresher.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let Ok(cur) = self.current.lock() {
            if let Err(e) = self.backend.remove(FileType::Lock, &cur.to_hex()) {
                tracing::warn!("cannot remove our lock file: {e}");
            }
        }
    }
}

/// Remove stale locks (or, with `all`, every lock). Returns the removed locks.
pub fn remove_locks(
    backend: &dyn Backend,
    crypt: &Crypt,
    hostname: &str,
    all: bool,
) -> Result<Vec<LockInfo>> {
    let mut removed = Vec::new();
    for l in list_locks(backend, crypt, hostname)? {
        if all || l.stale {
            match backend.remove(FileType::Lock, &l.id.to_hex()) {
                Ok(()) | Err(BackendError::NotFound { .. }) => removed.push(l),
                Err(source) => {
                    return Err(Error::Backend {
                        location: backend.location(),
                        cause: source,
                    })
                }
            }
        }
    }
    Ok(removed)
}
