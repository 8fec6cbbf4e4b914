//! The daemon's local control socket (default `/run/snapguard/daemon.sock`, `--socket`,
//! `SNAPGUARD_DAEMON_SOCKET`; its directory is world-searchable): one JSON request line, one
//! JSON answer line. No password: the kernel says who is asking (SO_PEERCRED), and that
//! decides what they may do:
//!
//! - root: everything (`status`, `run` of any job, `cancel`, `restore` anywhere);
//! - a user named in `[daemon] allow_users`: `status`, `run` of jobs that create snapshots
//!   (backup and local-snapshot jobs), and `restore` of subtrees whose every entry they own,
//!   written by a process running as them (crate::daemon_restore);
//! - anyone else: nothing.
//!
//! The socket file is mode 0666 so every local user can connect and be told no by name; the
//! check happens in the daemon, after the connection, where the caller cannot skip it.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/snapguard/daemon.sock";

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// The configured jobs and whether each runs.
    Status,
    /// Start a job now.
    Run { job: String },
    /// Cancel a running run (root only).
    Cancel { run: i64 },
    /// Restore `path` (absolute, in the snapshot) of `snapshot` (id, prefix or `latest`) into
    /// `target` (absolute, on this machine); `overwrite` is `never`, `if-changed` or `always`.
    /// Answered when the restore has ended (crate::daemon_restore).
    Restore {
        snapshot: String,
        path: String,
        target: String,
        #[serde(default = "default_overwrite")]
        overwrite: String,
    },
}

fn default_overwrite() -> String {
    "if-changed".into()
}

impl Request {
    /// Requests answered only when long work has ended: no answer timeout.
    fn waits_long(&self) -> bool {
        matches!(self, Request::Restore { .. })
    }
}

/// Who is asking, as the kernel says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    /// The caller's primary group (a restore's files get it).
    pub gid: u32,
    pub pid: i32,
    pub user: String,
}

/// A request with its caller and where to send the answer (a JSON value).
pub struct Incoming {
    pub caller: Caller,
    pub request: Request,
    pub reply: mpsc::Sender<serde_json::Value>,
}

/// Bind the socket (replacing a stale one: the daemon lock already guarantees no other daemon
/// uses this state directory) and hand each request to `tx` on a thread per connection.
pub fn serve(
    path: &Path,
    wrap: impl Fn(Incoming) -> Option<()> + Send + Sync + 'static,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            rustix::fs::chmod(dir, rustix::fs::Mode::from_raw_mode(0o755))
                .with_context(|| format!("cannot chmod {}", dir.display()))?;
        }
    }
    if UnixStream::connect(path).is_ok() {
        bail!(
            "another snapguard daemon listens at {}; stop it first, or give this one another --socket",
            path.display()
        );
    }
    // A socket file nobody listens on is left over from a daemon that ended: replace it.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(0o666))
        .with_context(|| format!("cannot chmod {}", path.display()))?;
    let wrap = std::sync::Arc::new(wrap);
    std::thread::Builder::new()
        .name("sg-control".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let wrap = wrap.clone();
                std::thread::spawn(move || {
                    if let Err(e) = handle(conn, &*wrap) {
                        tracing::debug!("control connection: {e:#}");
                    }
                });
            }
        })
        .context("cannot start the control thread")?;
    Ok(())
}

fn handle(conn: UnixStream, wrap: &dyn Fn(Incoming) -> Option<()>) -> Result<()> {
    let cred = rustix::net::sockopt::socket_peercred(&conn).context("SO_PEERCRED")?;
    let uid = cred.uid.as_raw();
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let caller = Caller {
        uid,
        gid: cred.gid.as_raw(),
        pid: cred.pid.as_raw_nonzero().get(),
        user,
    };
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new(conn.try_clone()?)
        .take(64 * 1024)
        .read_line(&mut line)?;
    let answer = match serde_json::from_str::<Request>(line.trim()) {
        Ok(request) => {
            let (reply, rx) = mpsc::channel();
            let long = request.waits_long();
            if wrap(Incoming {
                caller,
                request,
                reply,
            })
            .is_none()
            {
                serde_json::json!({"ok": false, "error": "the daemon is stopping"})
            } else {
                let answer = if long {
                    rx.recv().ok()
                } else {
                    rx.recv_timeout(Duration::from_secs(30)).ok()
                };
                answer.unwrap_or_else(
                    || serde_json::json!({"ok": false, "error": "the daemon did not answer"}),
                )
            }
        }
        Err(e) => serde_json::json!({"ok": false, "error": format!("bad request: {e}")}),
    };
    let mut conn = conn;
    writeln!(conn, "{answer}")?;
    Ok(())
}

/// What `caller` may do with `request` for a job of kind `kind` (None for `status`):
/// `Err(reason)` if nothing.
pub fn allowed(
    caller: &Caller,
    allow_users: &[String],
    request: &Request,
    kind: Option<&str>,
) -> Result<(), String> {
    if caller.uid == 0 {
        return Ok(());
    }
    if !allow_users.iter().any(|u| u == &caller.user) {
        return Err(format!(
            "user {} may not control the daemon; root may add it to [daemon] allow_users",
            caller.user
        ));
    }
    match (request, kind) {
        (Request::Status, _) => Ok(()),
        // Which files: checked by the restore itself (crate::daemon_restore).
        (Request::Restore { .. }, _) => Ok(()),
        (Request::Cancel { run }, _) => Err(format!(
            "user {} may not cancel run {run}; only root may",
            caller.user
        )),
        (Request::Run { .. }, Some("backup" | "local-snapshot")) => Ok(()),
        (Request::Run { job }, Some(k)) => Err(format!(
            "user {} may run jobs that create snapshots, not {job} (kind {k}); ask root",
            caller.user
        )),
        (Request::Run { job }, None) => Err(format!("no job {job}")),
    }
}

/// Send a request to the daemon listening at `path` and return its answer.
pub fn request(path: &Path, req: &Request) -> Result<serde_json::Value> {
    let mut conn = match UnixStream::connect(path) {
        Ok(c) => c,
        Err(e) => bail!(
            "no daemon answers at {} ({e}); start it with 'snapguard daemon' (or systemctl start snapguard)",
            path.display()
        ),
    };
    // A restore is answered when it has ended, however long that takes.
    let timeout = (!req.waits_long()).then(|| Duration::from_secs(40));
    conn.set_read_timeout(timeout)?;
    writeln!(conn, "{}", serde_json::to_string(req)?)?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    serde_json::from_str(line.trim()).context("the daemon's answer is not JSON")
}
