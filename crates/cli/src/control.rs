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
//! check happens in the daemon, after the connection, where the caller cannot skip it. Users
//! who may do nothing are told so as soon as the connection is accepted, before any request is
//! read and without a thread of their own. Others get a thread per connection, within limits:
//! 64 connections at once (the last 8 kept for root), 8 per non-root uid; beyond them a
//! connection is answered with an error line and closed. The whole request line must arrive
//! within 10 s. The daemon refuses a socket directory (or parent) that users other than root
//! could change entries in, so the socket cannot be swapped for a symlink.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

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

/// At most this many connections are served at once; beyond it a connection is answered with
/// an error line and closed. The last [`ROOT_RESERVE`] of them are kept for root.
const MAX_CONNECTIONS: usize = 64;
/// Connections kept for root: other users together never hold more than
/// `MAX_CONNECTIONS - ROOT_RESERVE`.
const ROOT_RESERVE: usize = 8;
/// At most this many connections of one (non-root) uid are served at once.
const MAX_PER_UID: usize = 8;
/// The whole request line must arrive within this time (not per read).
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Longest request line.
const MAX_REQUEST: usize = 64 * 1024;

/// Connections whose request has been handed on and whose answer is not written yet.
static ANSWERING: AtomicUsize = AtomicUsize::new(0);

/// Counts a connection in [`ANSWERING`] while alive.
struct Answering;

impl Answering {
    fn new() -> Answering {
        ANSWERING.fetch_add(1, Ordering::SeqCst);
        Answering
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        ANSWERING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// For a stopping daemon, before it ends: waits (at most `limit`) until every request handed
/// on has had its answer written (or its sender dropped), so that answers already given,
/// such as a cut-off restore's, reach their clients instead of dying with the process.
pub fn finish_answers(limit: Duration) {
    let t0 = Instant::now();
    while ANSWERING.load(Ordering::SeqCst) > 0 && t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Connections being served: overall and per uid.
#[derive(Default)]
struct Slots {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// One connection's place in [`Slots`], given back when dropped (also on a panic).
struct Slot {
    slots: Arc<Mutex<Slots>>,
    uid: u32,
}

impl Slot {
    /// A place for a connection of `uid`, or why there is none.
    fn take(slots: &Arc<Mutex<Slots>>, uid: u32, user: &str) -> Result<Slot, String> {
        let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
        let cap = if uid == 0 {
            MAX_CONNECTIONS
        } else {
            MAX_CONNECTIONS - ROOT_RESERVE
        };
        if s.total >= cap {
            return Err(format!(
                "the daemon is busy ({} connections open); try again later",
                s.total
            ));
        }
        let mine = s.per_uid.get(&uid).copied().unwrap_or(0);
        if uid != 0 && mine >= MAX_PER_UID {
            return Err(format!(
                "user {user} has {mine} connections to the daemon open already; close some and try again"
            ));
        }
        s.total += 1;
        *s.per_uid.entry(uid).or_insert(0) += 1;
        Ok(Slot {
            slots: slots.clone(),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                s.per_uid.remove(&self.uid);
            }
        }
    }
}

/// Refuse `dir` (and its ancestors) if someone other than root or the daemon's own user could
/// replace entries in it: writable by group or others without the sticky bit, or owned by
/// another user. Otherwise the socket (and its chmod) could be redirected through a symlink.
fn check_socket_dir(socket: &Path, dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let real = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let me = rustix::process::geteuid().as_raw();
    for d in real.ancestors() {
        let m = std::fs::metadata(d).with_context(|| format!("cannot stat {}", d.display()))?;
        let mode = m.mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            bail!(
                "refusing to listen at {}: its directory {} (mode {:o}) is writable by other users \
                 without the sticky bit, so they could swap the socket for a symlink; use a \
                 directory only root can write to (the default /run/snapguard), or run \
                 'chmod go-w {}'",
                socket.display(),
                d.display(),
                mode & 0o7777,
                d.display()
            );
        }
        if m.uid() != 0 && m.uid() != me {
            bail!(
                "refusing to listen at {}: its directory {} belongs to uid {}, who could swap \
                 the socket for a symlink; use a directory owned by root (the default \
                 /run/snapguard)",
                socket.display(),
                d.display(),
                m.uid()
            );
        }
    }
    Ok(())
}

/// Bind the socket (replacing a stale one: the daemon lock already guarantees no other daemon
/// uses this state directory) and hand each request to `wrap` on a thread per connection.
/// Users neither root nor in `allow_users` are refused at once, without a thread; connections
/// are capped overall and per uid.
pub fn serve(
    path: &Path,
    allow_users: Vec<String>,
    wrap: impl Fn(Incoming) -> Option<()> + Send + Sync + 'static,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        rustix::fs::chmod(&dir, rustix::fs::Mode::from_raw_mode(0o755))
            .with_context(|| format!("cannot chmod {}", dir.display()))?;
    }
    check_socket_dir(path, &dir)?;
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
    // Only root (or the daemon's user) can change entries of `dir` (checked above), so this is
    // the socket just bound; still, never chmod through a symlink.
    let st = rustix::fs::lstat(path).with_context(|| format!("cannot stat {}", path.display()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket {
        bail!("{} is not the socket just bound", path.display());
    }
    rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(0o666))
        .with_context(|| format!("cannot chmod {}", path.display()))?;
    let wrap: Arc<dyn Fn(Incoming) -> Option<()> + Send + Sync> = Arc::new(wrap);
    std::thread::Builder::new()
        .name("sg-control".into())
        .spawn(move || accept_loop(listener, allow_users, wrap))
        .context("cannot start the control thread")?;
    Ok(())
}

type Wrap = Arc<dyn Fn(Incoming) -> Option<()> + Send + Sync>;

fn accept_loop(listener: UnixListener, allow_users: Vec<String>, wrap: Wrap) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    let mut last_warning: Option<Instant> = None;
    loop {
        let conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of file descriptors (EMFILE, ENFILE), memory (ENOBUFS)...: wait for
                // connections to end rather than spin.
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!("control socket: cannot accept a connection: {e}");
                    last_warning = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let caller = match caller_of(&conn) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("control connection: {e:#}");
                continue;
            }
        };
        // Users who may do nothing are told so at once: they get no thread and no slot.
        if caller.uid != 0 && !allow_users.iter().any(|u| u == &caller.user) {
            let reason = allowed(&caller, &allow_users, &Request::Status, None)
                .err()
                .unwrap_or_else(|| format!("user {} may not control the daemon", caller.user));
            refuse(&conn, &reason);
            continue;
        }
        let slot = match Slot::take(&slots, caller.uid, &caller.user) {
            Ok(s) => s,
            Err(reason) => {
                refuse(&conn, &reason);
                continue;
            }
        };
        let conn = Arc::new(conn);
        let (c, wrap) = (conn.clone(), wrap.clone());
        let spawned = std::thread::Builder::new()
            .name("sg-control-conn".into())
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = handle(&c, caller, &*wrap) {
                    tracing::debug!("control connection: {e:#}");
                }
            });
        if let Err(e) = spawned {
            // The closure (with its slot) is dropped: only `conn` is left to answer on.
            tracing::warn!("control socket: cannot start a thread for a connection: {e}");
            refuse(
                &conn,
                "the daemon cannot serve this request now; try again later",
            );
        }
    }
}

/// Answer `conn` with an error line and close it, never blocking.
fn refuse(conn: &UnixStream, reason: &str) {
    let _ = conn.set_nonblocking(true);
    let mut w = conn;
    let _ = writeln!(w, "{}", serde_json::json!({"ok": false, "error": reason}));
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

fn caller_of(conn: &UnixStream) -> Result<Caller> {
    let cred = rustix::net::sockopt::socket_peercred(conn).context("SO_PEERCRED")?;
    let uid = cred.uid.as_raw();
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    Ok(Caller {
        uid,
        gid: cred.gid.as_raw(),
        pid: cred.pid.as_raw_nonzero().get(),
        user,
    })
}

/// Read one request line: all of it within [`REQUEST_DEADLINE`], however it trickles in.
fn read_request(conn: &UnixStream) -> Result<String> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "no complete request within {} s",
                REQUEST_DEADLINE.as_secs()
            );
        }
        conn.set_read_timeout(Some(left))?;
        let mut r = conn;
        let n = match r.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!(
                    "no complete request within {} s",
                    REQUEST_DEADLINE.as_secs()
                )
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        let room = MAX_REQUEST - line.len();
        let got = &buf[..n.min(room)];
        if let Some(i) = got.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&got[..i]);
            break;
        }
        line.extend_from_slice(got);
        if line.len() >= MAX_REQUEST {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn handle(conn: &UnixStream, caller: Caller, wrap: &dyn Fn(Incoming) -> Option<()>) -> Result<()> {
    conn.set_write_timeout(Some(REQUEST_DEADLINE))?;
    // Dropped when the function ends: after the answer is written (or could not be).
    let mut answering = None;
    let answer = match read_request(conn) {
        Err(e) => serde_json::json!({"ok": false, "error": format!("{e:#}")}),
        Ok(line) => match serde_json::from_str::<Request>(line.trim()) {
            Ok(request) => {
                answering = Some(Answering::new());
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
        },
    };
    let mut w = conn;
    let written = writeln!(w, "{answer}");
    drop(answering);
    Ok(written?)
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
    // The daemon may answer (a refusal) and close before reading the request: then the write
    // fails, but the answer is there to read.
    if let Err(e) = writeln!(conn, "{}", serde_json::to_string(req)?) {
        if !matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ) {
            return Err(e.into());
        }
    }
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    serde_json::from_str(line.trim()).context("the daemon's answer is not JSON")
}
