//! The daemon's persistent state (issue 8's foundation): one SQLite database, `state.db`, in
//! the state directory (default `/var/lib/snapguard`), holding
//!
//! - accounts ([`users`]): name, role, Argon2id password hash, and a table for second factors
//!   so they can be added later without changing the accounts table;
//! - jobs and their runs ([`runs`]): when each configured job was first seen and last started
//!   (what the scheduler's catch-up needs after a restart), every run with its trigger, result
//!   and summary, and its task log line by line;
//! - web sessions ([`sessions`]): only a hash of each session token is stored.
//!
//! SQLite (compiled in) rather than an embedded key-value store because the CLI reads the same
//! history while the daemon writes it (`snapguard jobs`), and adds accounts while it runs:
//! WAL mode lets one writer and any number of readers share the file. Every write is one
//! transaction with `synchronous = FULL`, so a crash loses at most the write in progress.
//! Times are Unix seconds passed in by the caller; nothing here reads the clock.

pub mod runs;
pub mod scheduler;
pub mod sessions;
pub mod users;

use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// An error of the state database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("state directory {path}: {source}; create it (as root: mkdir -m 700 {path}) or choose another with --state-dir")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state database {path} was written by a newer SnapGuard (schema {found}, this one knows {known}); upgrade SnapGuard")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("user {0:?} already exists; choose another name, or remove it first")]
    UserExists(String),
    #[error("no user {0:?}")]
    NoUser(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("no job run {0}")]
    NoRun(i64),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The schema this version writes; older ones are migrated forward on open.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS user_factors (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_start INTEGER
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started INTEGER NOT NULL,
    ended INTEGER,
    status TEXT NOT NULL,
    summary TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, started);
CREATE TABLE IF NOT EXISTS run_log (
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    level TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (run, seq)
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    client TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user);
";

/// The state directory and its open database.
#[derive(Debug)]
pub struct State {
    dir: PathBuf,
    db_path: PathBuf,
    conn: Connection,
}

/// The default state directory of the daemon.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/snapguard";

impl State {
    /// Open (creating if needed, mode 0700) the state directory and its database.
    pub fn open(dir: &Path) -> Result<State> {
        let dir_err = |source| Error::StateDir {
            path: dir.to_path_buf(),
            source,
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(dir)
                .map_err(dir_err)?;
            rustix::fs::chmod(dir, rustix::fs::Mode::from_raw_mode(0o700))
                .map_err(|e| dir_err(e.into()))?;
        }
        let db_path = dir.join("state.db");
        let db = |source| Error::Db {
            path: db_path.clone(),
            source,
        };
        let conn = Connection::open(&db_path).map_err(db)?;
        // The file holds password hashes: owner only.
        rustix::fs::chmod(&db_path, rustix::fs::Mode::from_raw_mode(0o600))
            .map_err(|e| dir_err(e.into()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(db)?;
        let state = State {
            dir: dir.to_path_buf(),
            db_path: db_path.clone(),
            conn,
        };
        state.migrate()?;
        Ok(state)
    }

    fn migrate(&self) -> Result<()> {
        self.conn.execute_batch(SCHEMA).map_err(|e| self.db(e))?;
        let found: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(|e| self.db(e))?;
        match found.map(|v| v.parse::<i64>()) {
            None => {
                self.conn
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                        [SCHEMA_VERSION.to_string()],
                    )
                    .map_err(|e| self.db(e))?;
            }
            Some(Ok(v)) if v > SCHEMA_VERSION => {
                return Err(Error::TooNew {
                    path: self.db_path.clone(),
                    found: v,
                    known: SCHEMA_VERSION,
                })
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                return Err(Error::Invalid(format!(
                    "state database {}: the schema version is not a number; restore the file from a backup or move it away",
                    self.db_path.display()
                )))
            }
        }
        Ok(())
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn db(&self, source: rusqlite::Error) -> Error {
        Error::Db {
            path: self.db_path.clone(),
            source,
        }
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}
