//! Restoring through the daemon (`snapguard --daemon restore ...`, control request `restore`):
//! a user named in `[daemon] allow_users` gets back their own files without the repository's
//! key and without any power to write where they could not write themselves.
//!
//! The daemon (root) opens the repository on a thread of its own and finds the subtree. For a
//! caller other than root, only snapshots of this host count (uid numbers mean nothing across
//! machines), every directory above the subtree must be searchable by the caller and every
//! entry of it owned by the caller's uid in the snapshot; otherwise the restore is refused
//! with the message a missing path gets, so that nobody learns what exists where they could
//! not look. The subtree is then streamed as a tar archive ([`snapguard_engine::export`], laid
//! out like `snapguard restore` lays out its target) into GNU tar running *as the caller*
//! (their uid, primary group and the supplementary groups their connecting process had, set
//! by `setpriv`; in a session of its own with no controlling terminal; cwd `/`; an environment
//! with nothing of the daemon's) which creates the target if needed and extracts into it. So
//! the kernel checks every write against the caller's own permissions, and no symlink in the
//! target can make root write anywhere. Root callers get the in-process restore
//! ([`snapguard_engine::restore`]) with its full fidelity (owners, `--overwrite if-changed`).
//!
//! The archive goes through a socket pair rather than a pipe so that the daemon can write it
//! with `MSG_NOSIGNAL`: the binary restores SIGPIPE's default action (see `main`), and a tar
//! that ends early must not end the daemon with it. The socket has a short send timeout, so
//! that a tar that stops reading (stopped by its owner, say) is noticed and killed after
//! [`STALL_LIMIT`], and so is a restore whose client went away or whose daemon is stopping.
//! Each uid has at most one restore at a time, and a guard gives its slot back however the
//! restore ends.

use crate::args::{Command, GlobalArgs, OverwriteArg, RestoreArgs};
use crate::commands::{name_snapshot, open, print_json, split_spec};
use crate::control::{Caller, Incoming, Request};
use crate::exit;
use crate::render;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use snapguard_engine::export::{export, ExportFormat, ExportOptions, ExportOutput};
use snapguard_engine::lock::LockKind;
use snapguard_engine::restore::Overwrite;
use snapguard_engine::{Repository, RestoreOptions};
use snapguard_format::{Node, NodeKind, SnapshotFile, SnapshotId};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// At most this many restores run at once; more are refused (each holds a repository open).
const MAX_RESTORES: usize = 4;
/// How long tar may go without reading the archive (or, once it has all of it, without
/// ending) before it is killed and the restore fails: a stopped tar must not hold a restore
/// slot and the repository's lock for ever.
const STALL_LIMIT: Duration = Duration::from_secs(60);
/// How often a blocked write wakes up to see whether the client is still there, the daemon
/// is stopping or the stall limit has passed.
const POLL: Duration = Duration::from_millis(500);
/// How long tar's standard error may stay open after tar has ended (a process tar left
/// behind can hold it): then its reader is left to itself.
const STDERR_GRACE: Duration = Duration::from_secs(5);

const TAR: &str = "/usr/bin/tar";
const SETPRIV: &str = "/usr/bin/setpriv";
/// util-linux setsid: tar gets a session of its own, so it has no controlling terminal (the
/// daemon's may be root's) to push keystrokes into with TIOCSTI. The workspace has no unsafe
/// code, so no `pre_exec(setsid)`.
const SETSID: &str = "/usr/bin/setsid";

/// The restores running, by the caller's uid (one each): where to answer and tar's pid, so
/// that a stopping daemon can answer and end them.
static ACTIVE: Mutex<BTreeMap<u32, Active>> = Mutex::new(BTreeMap::new());
/// Set when the daemon got SIGTERM or SIGINT: running restores end, new ones are refused.
static STOPPING: AtomicBool = AtomicBool::new(false);

struct Active {
    reply: mpsc::Sender<Value>,
    tar: Option<i32>,
}

/// A restore slot; dropping it (also while unwinding from a panic) gives it back.
struct Slot {
    uid: u32,
}

impl Slot {
    fn take(uid: u32, reply: &mpsc::Sender<Value>) -> Result<Slot, String> {
        let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        if STOPPING.load(Ordering::SeqCst) {
            return Err("the daemon is stopping".into());
        }
        if active.contains_key(&uid) {
            return Err(
                "a restore of yours is running already; try again when it has ended".into(),
            );
        }
        if active.len() >= MAX_RESTORES {
            return Err(format!(
                "{MAX_RESTORES} restores are running already; try again when one has ended"
            ));
        }
        active.insert(
            uid,
            Active {
                reply: reply.clone(),
                tar: None,
            },
        );
        Ok(Slot { uid })
    }

    fn set_tar(&self, pid: Option<i32>) {
        if let Some(a) = ACTIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&self.uid)
        {
            a.tar = pid;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        ACTIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.uid);
    }
}

/// Watch for SIGTERM and SIGINT (next to the daemon's own handler): when the daemon stops,
/// every client of a running restore is told so at once and its tar is killed (the event
/// loop does not wait for restores, so the answer has to go out before it ends).
fn watch_stop() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ]);
        let mut signals = match signals {
            Ok(s) => s,
            Err(e) => return tracing::error!("restores: cannot watch for SIGTERM: {e}"),
        };
        let watcher = std::thread::Builder::new()
            .name("sg-restore-stop".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    let _ = stop_all(if sig == signal_hook::consts::SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    });
                }
            });
        if let Err(e) = watcher {
            tracing::error!("restores: cannot watch for SIGTERM: {e}");
        }
    });
}

/// Answer every running restore with an error naming the stop, and kill its tar; how many
/// there were. The daemon's event loop calls it before it ends.
pub(crate) fn stop_all(why: &str) -> usize {
    STOPPING.store(true, Ordering::SeqCst);
    let active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
    for a in active.values() {
        let _ = a.reply.send(json!({"ok": false, "exit": exit::FAILURE, "error": format!(
            "the daemon is stopping ({why}): the restore was cut off and the target may be incomplete"
        )}));
        if let Some(pid) = a.tar {
            kill_group(pid);
        }
    }
    active.len()
}

/// A failed restore: the message and the exit code the client should end with.
struct Failure {
    error: String,
    code: i32,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure {
            code: crate::exit_code(&e),
            error: format!("{e:#}"),
        }
    }
}

impl From<snapguard_engine::Error> for Failure {
    fn from(e: snapguard_engine::Error) -> Self {
        anyhow::Error::new(e).into()
    }
}

fn fail(code: i32, error: String) -> Failure {
    Failure { error, code }
}

/// Answer a `restore` request (already allowed for its caller by `control::allowed`) on a
/// thread of its own: the daemon's event loop goes on at once.
pub fn start(g: &GlobalArgs, inc: Incoming) {
    let Request::Restore {
        snapshot,
        path,
        target,
        overwrite,
    } = inc.request
    else {
        let _ = inc
            .reply
            .send(json!({"ok": false, "error": "not a restore request"}));
        return;
    };
    watch_stop();
    let slot = match Slot::take(inc.caller.uid, &inc.reply) {
        Ok(s) => s,
        Err(e) => {
            let _ = inc
                .reply
                .send(json!({"ok": false, "exit": exit::FAILURE, "error": e}));
            return;
        }
    };
    let g = g.clone();
    let caller = inc.caller;
    let reply = inc.reply;
    let reply_on_error = reply.clone();
    let job = RestoreJob {
        snapshot,
        path,
        target,
        overwrite,
    };
    let spawned = std::thread::Builder::new()
        .name("sg-restore".into())
        .spawn(move || {
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                answer(&g, &caller, &job, &slot)
            }))
            .unwrap_or_else(|_| {
                json!({"ok": false, "exit": exit::FAILURE, "error": "the restore failed (internal error; see the daemon's log)"})
            });
            // The slot goes back before the answer, so that the client may start its next
            // restore as soon as it has this one's.
            drop(slot);
            let _ = reply.send(answer);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start a restore thread: {e}");
        let _ = reply_on_error.send(json!({"ok": false, "exit": exit::FAILURE,
            "error": format!("the daemon cannot start a restore now: {e}")}));
    }
}

/// What the client asked for.
struct RestoreJob {
    snapshot: String,
    path: String,
    target: String,
    overwrite: String,
}

/// Run the restore and log its outcome (every text that came from the client with `{:?}`, so
/// that it cannot forge log lines).
fn answer(g: &GlobalArgs, caller: &Caller, job: &RestoreJob, slot: &Slot) -> Value {
    let who = format!("{:?} (uid {}, pid {})", caller.user, caller.uid, caller.pid);
    let (snapshot, path, target) = (&job.snapshot, &job.path, &job.target);
    match restore(g, caller, job, slot) {
        Ok(v) => {
            tracing::info!("control: {who} restored {snapshot:?}:{path:?} to {target:?}");
            v
        }
        Err(f) => {
            tracing::warn!(
                "control: restore of {snapshot:?}:{path:?} to {target:?} for {who} failed: {:?}",
                f.error
            );
            json!({"ok": false, "error": f.error, "exit": f.code})
        }
    }
}

/// Refuse texts with control characters (a newline would end a log line, and no real
/// snapshot name, path or target needs one through the daemon).
fn check_text(what: &str, text: &str) -> Result<(), Failure> {
    if text.chars().any(char::is_control) {
        return Err(fail(
            exit::USAGE,
            format!(
                "the {what} must not contain control characters (newlines, tabs, ...): {text:?}"
            ),
        ));
    }
    Ok(())
}

fn parse_overwrite(o: &str) -> Result<Overwrite, Failure> {
    match o {
        "never" => Ok(Overwrite::Never),
        "if-changed" => Ok(Overwrite::IfChanged),
        "always" => Ok(Overwrite::Always),
        o => Err(fail(
            exit::USAGE,
            format!("overwrite must be never, if-changed or always, not {o:?}"),
        )),
    }
}

fn restore(
    g: &GlobalArgs,
    caller: &Caller,
    job: &RestoreJob,
    slot: &Slot,
) -> Result<Value, Failure> {
    check_text("snapshot", &job.snapshot)?;
    check_text("path in the snapshot", &job.path)?;
    check_text("target", &job.target)?;
    let path = job.path.as_str();
    if !path.starts_with('/') {
        return Err(fail(
            exit::USAGE,
            format!("the path in the snapshot must be absolute, not {path:?}"),
        ));
    }
    let target_path = PathBuf::from(&job.target);
    if !target_path.is_absolute() {
        return Err(fail(
            exit::USAGE,
            format!("the target must be an absolute path, not {:?}", job.target),
        ));
    }
    let overwrite = parse_overwrite(&job.overwrite)?;
    // The caller's identity is taken now, while their process waits for the answer.
    let peer = if caller.uid == 0 {
        None
    } else {
        Some(Peer::of(caller)?)
    };
    let (repo, _lock) = open(g, LockKind::Shared, "restore")?;
    let (id, snap) = find_snapshot(&repo, &job.snapshot, caller.uid == 0)?;
    let sub = path.as_bytes();
    let Some(peer) = peer else {
        return restore_as_root(
            &repo,
            &id,
            &snap,
            sub,
            target_path,
            overwrite,
            caller,
            &job.target,
        );
    };
    check_own(&repo, &id, &snap, path, caller, &peer)?;

    let (summary, tar_err) = extract_as(caller, &peer, slot, &target_path, overwrite, |out| {
        export(
            &repo,
            &snap,
            sub,
            ExportOutput::Stream(out),
            &ExportOptions {
                format: ExportFormat::Tar,
                inode_numbers: false,
                progress: None,
            },
        )
        .map_err(|e| name_snapshot(e, &id))
    })?;
    let mut warnings: Vec<String> = summary
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.path, w.message))
        .collect();
    warnings.extend(tar_err.lines().map(str::to_string));
    Ok(json!({
        "ok": true,
        "snapshot": id.to_hex(),
        "target": job.target,
        "files": summary.files,
        "dirs": summary.dirs,
        "other": summary.other,
        "bytes": summary.bytes,
        "as_user": caller.user,
        "warnings": warnings,
    }))
}

/// The snapshot `spec` names. `latest` is the newest snapshot of this host; other hosts'
/// snapshots are not found for callers other than root, since the same uid number can be
/// someone else there.
fn find_snapshot(
    repo: &Repository,
    spec: &str,
    any_host: bool,
) -> Result<(SnapshotId, SnapshotFile), Failure> {
    let host = crate::commands::hostname();
    let not_found = || snapguard_engine::Error::SnapshotNotFound {
        spec: spec.to_string(),
    };
    if spec == "latest" {
        let newest = repo
            .list_snapshots()?
            .into_iter()
            .rfind(|(_, s)| s.hostname == host);
        return newest.ok_or_else(|| not_found().into());
    }
    let (id, snap) = repo.find_snapshot(spec)?;
    if !any_host && snap.hostname != host {
        return Err(not_found().into());
    }
    Ok((id, snap))
}

#[allow(clippy::too_many_arguments)]
fn restore_as_root(
    repo: &Repository,
    id: &SnapshotId,
    snap: &SnapshotFile,
    sub: &[u8],
    target: PathBuf,
    overwrite: Overwrite,
    caller: &Caller,
    target_text: &str,
) -> Result<Value, Failure> {
    let opts = RestoreOptions {
        target,
        overwrite,
        ..Default::default()
    };
    let r = snapguard_engine::restore(repo, snap, sub, &opts).map_err(|e| name_snapshot(e, id))?;
    Ok(json!({
        "ok": true,
        "snapshot": id.to_hex(),
        "target": target_text,
        "files": r.files,
        "dirs": r.dirs,
        "other": r.other,
        "bytes": r.bytes,
        "as_user": caller.user,
        "warnings": r.warnings.iter().map(|w| format!("{}: {}", w.path, w.message)).collect::<Vec<_>>(),
    }))
}

/// Refuse unless the caller could reach `path` in the snapshot (search permission on every
/// directory above it) and owns every entry of it. A path that is missing, out of reach or not
/// all the caller's gets one message, so that the answer tells nothing about other people's
/// files.
fn check_own(
    repo: &Repository,
    id: &SnapshotId,
    snap: &SnapshotFile,
    path: &str,
    caller: &Caller,
    peer: &Peer,
) -> Result<(), Failure> {
    let refused = || {
        fail(
            exit::NOT_FOUND,
            format!(
                "{path:?} is not in snapshot {}, or not all of it is yours: the daemon restores only files you own, below directories you may enter; ask root",
                id.short()
            ),
        )
    };
    // The kernel counts the primary group as one of the caller's groups.
    let mut groups = peer.groups.clone();
    groups.push(caller.gid);
    if !parents_searchable(repo, snap, path, caller.uid, &groups)? {
        return Err(refused());
    }
    let mut foreign = false;
    let walked = snapguard_engine::browse::walk(repo, snap, path.as_bytes(), &mut |_, node| {
        if node.uid != caller.uid {
            foreign = true;
            return Err(snapguard_engine::Error::InvalidArgument(
                "foreign entry".into(),
            ));
        }
        Ok(())
    });
    match walked {
        _ if foreign => Err(refused()),
        Err(snapguard_engine::Error::PathNotFound { .. }) => Err(refused()),
        Err(e) => Err(name_snapshot(e, id).into()),
        Ok(()) => Ok(()),
    }
}

/// Whether every directory above `path` in the snapshot is one `uid` with `groups` may search
/// (false also if one is missing or not a directory).
fn parents_searchable(
    repo: &Repository,
    snap: &SnapshotFile,
    path: &str,
    uid: u32,
    groups: &[u32],
) -> Result<bool, Failure> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let Some((_, parents)) = comps.split_last() else {
        return Ok(true);
    };
    let mut tree = snap.tree;
    for comp in parents {
        let nodes = repo.read_tree(&tree)?;
        let Some(node) = nodes.find(comp.as_bytes()) else {
            return Ok(false);
        };
        match (node.kind == NodeKind::Dir, node.subtree) {
            (true, Some(sub)) if may_search(node, uid, groups) => tree = sub,
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// The kernel's check for search permission on a directory, from its mode bits. A directory
/// with an access ACL counts as searchable only by its owner: its mode bits alone do not say
/// who else may enter.
fn may_search(dir: &Node, uid: u32, groups: &[u32]) -> bool {
    if dir.uid == uid {
        return dir.mode & 0o100 != 0;
    }
    if dir
        .xattrs
        .iter()
        .any(|x| x.name == b"system.posix_acl_access")
    {
        return false;
    }
    if groups.contains(&dir.gid) {
        dir.mode & 0o010 != 0
    } else {
        dir.mode & 0o001 != 0
    }
}

/// The connecting process as /proc shows it: its groups (the ones tar gets, not those the user
/// database lists, which a process that dropped some would regain) and its start time (to
/// tell whether it is still there).
struct Peer {
    pid: i32,
    start: u64,
    groups: Vec<u32>,
}

impl Peer {
    fn of(caller: &Caller) -> Result<Peer, Failure> {
        let gone = || {
            fail(
                exit::FAILURE,
                format!(
                    "cannot read the groups of process {} (uid {}): it is gone or not the one that asked",
                    caller.pid, caller.uid
                ),
            )
        };
        let start = start_time(caller.pid).ok_or_else(gone)?;
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", caller.pid)).map_err(|_| gone())?;
        let field = |name: &str| -> Option<Vec<u32>> {
            let line = status.lines().find_map(|l| l.strip_prefix(name))?;
            line.split_whitespace().map(|n| n.parse().ok()).collect()
        };
        let (uids, gids, groups) = (field("Uid:"), field("Gid:"), field("Groups:"));
        let (Some(uids), Some(gids), Some(mut groups)) = (uids, gids, groups) else {
            return Err(gone());
        };
        // SO_PEERCRED gave the effective ids when it connected; the process must still have
        // them, and must still be the same process (not a new one with its pid).
        if uids.get(1) != Some(&caller.uid)
            || gids.get(1) != Some(&caller.gid)
            || start_time(caller.pid) != Some(start)
        {
            return Err(gone());
        }
        groups.sort_unstable();
        groups.dedup();
        Ok(Peer {
            pid: caller.pid,
            start,
            groups,
        })
    }

    fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Fields of /proc/PID/stat after the command name (which may contain anything): index 0 is
/// field 3 (state).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// A process's start time (field 22 of /proc/PID/stat).
fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Why writing the archive stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// tar closed its end (it ended, probably failing: its message says why).
    TarGone,
    /// tar read nothing for STALL_LIMIT.
    Stalled,
    /// The client's process has gone: nobody waits for the restore.
    ClientGone,
    /// The daemon is stopping.
    Stopping,
}

impl Stop {
    fn failure(self, caller: &Caller) -> Failure {
        let error = match self {
            Stop::TarGone => "tar stopped reading the archive".to_string(),
            Stop::Stalled => format!(
                "tar (running as {}) read nothing for {} s: it was killed and the target may be incomplete",
                caller.user,
                STALL_LIMIT.as_secs()
            ),
            Stop::ClientGone => "the client went away: the restore was cut off".into(),
            Stop::Stopping => {
                "the daemon is stopping: the restore was cut off and the target may be incomplete"
                    .into()
            }
        };
        fail(exit::FAILURE, error)
    }
}

/// A socket end written with `MSG_NOSIGNAL` (a reader that went away is an error, not
/// SIGPIPE) and a send timeout of [`POLL`], so that a blocked write notices a stalled tar, a
/// vanished client or a stopping daemon. Records why it gave up.
struct ArchiveSink<'a> {
    sock: OwnedFd,
    peer: &'a Peer,
    stop: Option<Stop>,
    checked: Instant,
}

impl ArchiveSink<'_> {
    fn check(&mut self, stalled_since: Option<Instant>) -> Option<Stop> {
        if STOPPING.load(Ordering::SeqCst) {
            return Some(Stop::Stopping);
        }
        if stalled_since.is_some_and(|t| t.elapsed() >= STALL_LIMIT) {
            return Some(Stop::Stalled);
        }
        if self.checked.elapsed() >= POLL {
            self.checked = Instant::now();
            if !self.peer.alive() {
                return Some(Stop::ClientGone);
            }
        }
        None
    }

    fn give_up(&mut self, stop: Stop) -> std::io::Error {
        self.stop = Some(stop);
        std::io::Error::other(format!("writing the archive: {stop:?}"))
    }
}

impl Write for ArchiveSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut stalled_since = None;
        loop {
            if let Some(stop) = self.check(stalled_since) {
                return Err(self.give_up(stop));
            }
            match rustix::net::send(&self.sock, buf, rustix::net::SendFlags::NOSIGNAL) {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {
                    stalled_since.get_or_insert_with(Instant::now);
                }
                Err(rustix::io::Errno::PIPE | rustix::io::Errno::CONNRESET) => {
                    return Err(self.give_up(Stop::TarGone))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The command that runs `/bin/sh -c SCRIPT` as the caller (uid, primary group, the peer's
/// supplementary groups, no new privileges) in a new session.
fn as_caller(caller: &Caller, peer: &Peer) -> Result<std::process::Command, Failure> {
    if !Path::new(SETSID).exists() {
        return Err(fail(
            exit::FAILURE,
            format!("{SETSID} (util-linux) is missing: the daemon cannot restore as a user"),
        ));
    }
    let mut c = std::process::Command::new(SETSID);
    if Path::new(SETPRIV).exists() {
        c.arg(SETPRIV)
            .arg(format!("--reuid={}", caller.uid))
            .arg(format!("--regid={}", caller.gid));
        if peer.groups.is_empty() {
            c.arg("--clear-groups");
        } else {
            let list: Vec<String> = peer.groups.iter().map(u32::to_string).collect();
            c.arg(format!("--groups={}", list.join(",")));
        }
        c.args(["--no-new-privs", "--"]);
    } else {
        // Without setpriv: std sets uid and gid and drops every supplementary group.
        use std::os::unix::process::CommandExt;
        c.uid(caller.uid).gid(caller.gid);
    }
    c.arg("/bin/sh");
    Ok(c)
}

/// Kill a process group (tar's: setsid made tar's pid its group), with whatever tar left in it.
fn kill_group(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Read tar's standard error (the first 64 KiB of it) on a thread of its own; the answer
/// comes through the channel.
fn read_stderr(mut stderr: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("sg-restore-tar".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf);
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
            // Drain the rest so that tar never blocks on a full pipe.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot read tar's messages: {e}");
    }
    rx
}

/// Wait for tar to end, as long as it is not stalled (at most [`STALL_LIMIT`]), the client is
/// there and the daemon not stopping; kill its group otherwise. None if it was killed.
fn wait_tar(child: &mut Child, peer: &Peer) -> Option<std::process::ExitStatus> {
    let since = Instant::now();
    let mut status = None;
    while since.elapsed() < STALL_LIMIT && !STOPPING.load(Ordering::SeqCst) && peer.alive() {
        match child.try_wait() {
            Ok(Some(s)) => {
                status = Some(s);
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break,
        }
    }
    kill_group(child.id() as i32);
    let _ = child.wait();
    status
}

/// Run GNU tar as `caller`, extracting into `target` (created as the caller if missing) what
/// `produce` writes. Returns what `produce` returned and tar's standard error (warnings) if
/// both succeeded; if writing failed because tar ended, tar's error; otherwise `produce`'s.
fn extract_as<T>(
    caller: &Caller,
    peer: &Peer,
    slot: &Slot,
    target: &Path,
    overwrite: Overwrite,
    produce: impl FnOnce(&mut dyn Write) -> Result<T, snapguard_engine::Error>,
) -> Result<(T, String), Failure> {
    // The target is created (as the caller) like `snapguard restore` creates it; `$@` is the
    // overwrite option.
    let script = format!(
        "t=$1; shift; mkdir -p -- \"$t\" && exec {TAR} -x --xattrs --acls --same-permissions --warning=no-timestamp \
         --no-same-owner \"$@\" -C \"$t\" -f -"
    );
    let mut cmd = as_caller(caller, peer)?;
    cmd.arg("-c").arg(script).arg("sh").arg(target);
    if overwrite == Overwrite::Never {
        cmd.arg("--skip-old-files");
    }
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| fail(exit::FAILURE, format!("cannot create a socket pair: {e}")))?;
    // The caller's end only reads; ours wakes up every POLL when tar does not read.
    rustix::net::shutdown(&theirs, rustix::net::Shutdown::Write)
        .and_then(|()| {
            rustix::net::sockopt::set_socket_timeout(
                &ours,
                rustix::net::sockopt::Timeout::Send,
                Some(POLL),
            )
        })
        .map_err(|e| {
            fail(
                exit::FAILURE,
                format!("cannot set up the archive socket: {e}"),
            )
        })?;
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir("/")
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        fail(
            exit::FAILURE,
            format!("cannot start tar as {}: {e}", caller.user),
        )
    })?;
    slot.set_tar(Some(child.id() as i32));
    // The command holds the child's end of the socket: close it here, so that writes fail as
    // soon as tar has gone.
    drop(cmd);
    let messages = read_stderr(child.stderr.take().expect("piped"));
    let mut sink = ArchiveSink {
        sock: ours,
        peer,
        stop: None,
        checked: Instant::now(),
    };
    let produced = {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut sink);
        produce(&mut out).map_err(Failure::from).and_then(|v| {
            out.flush()
                .map(|()| v)
                .map_err(|e| fail(exit::FAILURE, format!("cannot write the archive: {e}")))
        })
    };
    let stop = sink.stop;
    // End of the archive for tar.
    drop(sink);
    let produced = match (produced, stop) {
        (Ok(v), _) => Ok(v),
        // tar ended early: its own message says why (below).
        (Err(f), Some(Stop::TarGone)) => Err(f),
        (Err(_), Some(stop)) => {
            kill_group(child.id() as i32);
            Err(stop.failure(caller))
        }
        // The export failed (not the writing): that is the error, not tar's "Unexpected EOF".
        (Err(f), None) => {
            kill_group(child.id() as i32);
            Err(f)
        }
    };
    let status = wait_tar(&mut child, peer);
    slot.set_tar(None);
    let tar_err = messages.recv_timeout(STDERR_GRACE).unwrap_or_default();
    match (produced, status) {
        (Ok(v), Some(s)) if s.success() => Ok((v, tar_err)),
        (Ok(_), None) => Err(if STOPPING.load(Ordering::SeqCst) {
            Stop::Stopping.failure(caller)
        } else if peer.alive() {
            Stop::Stalled.failure(caller)
        } else {
            Stop::ClientGone.failure(caller)
        }),
        (Err(f), _) if stop != Some(Stop::TarGone) => Err(f),
        (_, status) => Err(tar_failed(caller, target, status, &tar_err)),
    }
}

/// The failure for a tar that ended unsuccessfully, with an exit code from its message.
fn tar_failed(
    caller: &Caller,
    target: &Path,
    status: Option<std::process::ExitStatus>,
    tar_err: &str,
) -> Failure {
    let text = tar_err.trim();
    let code = if text.contains("No space left") {
        exit::NO_SPACE
    } else if text.contains("Permission denied")
        || text.contains("Operation not permitted")
        || text.contains("Read-only file system")
        || text.contains("mkdir:")
    {
        exit::TARGET_NOT_WRITABLE
    } else {
        exit::FAILURE
    };
    let status = status.map_or_else(|| "killed".to_string(), |s| s.to_string());
    fail(
        code,
        format!(
            "extracting into {} as {} (uid {}) failed ({status}): {}",
            target.display(),
            caller.user,
            caller.uid,
            if text.is_empty() { "no message" } else { text }
        ),
    )
}

/// `snapguard --daemon COMMAND`: the commands that go to the daemon.
pub fn through_daemon(g: &GlobalArgs, command: &Command) -> Result<i32> {
    match command {
        Command::Restore(a) => client_restore(g, a),
        Command::Jobs(a) => crate::daemon::jobs(g, a),
        _ => Err(crate::usage!(
            "--daemon (SNAPGUARD_USE_DAEMON) works with 'restore' and 'jobs' (run, status, cancel); run other commands without it"
        )),
    }
}

fn client_restore(g: &GlobalArgs, a: &RestoreArgs) -> Result<i32> {
    let mut unsupported = Vec::new();
    for (set, name) in [
        (!a.includes.is_empty(), "--include"),
        (!a.excludes.is_empty(), "--exclude"),
        (a.dry_run, "--dry-run"),
        (a.verify, "--verify"),
        (a.delete, "--delete"),
    ] {
        if set {
            unsupported.push(name);
        }
    }
    if !unsupported.is_empty() {
        return Err(crate::usage!(
            "{} cannot be used with --daemon (the daemon restores whole subtrees)",
            unsupported.join(", ")
        ));
    }
    let (snapshot, path) = split_spec(&a.snapshot)?;
    let path = String::from_utf8(path)
        .map_err(|_| crate::usage!("with --daemon, the path in the snapshot must be UTF-8"))?;
    if !path.starts_with('/') {
        return Err(crate::usage!(
            "the path in the snapshot must be absolute, not {path:?}"
        ));
    }
    let target = std::path::absolute(&a.target)
        .with_context(|| format!("cannot resolve {}", a.target.display()))?;
    let Some(target) = target.to_str().map(str::to_string) else {
        return Err(crate::usage!("with --daemon, the target must be UTF-8"));
    };
    let overwrite = match a.overwrite {
        OverwriteArg::Never => "never",
        OverwriteArg::IfChanged => "if-changed",
        OverwriteArg::Always => "always",
    };
    let answer = crate::control::request(
        &a.socket,
        &Request::Restore {
            snapshot,
            path,
            target: target.clone(),
            overwrite: overwrite.into(),
        },
    )?;
    if answer["ok"] != true {
        let code = answer["exit"]
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .filter(|&c| c != 0)
            .unwrap_or(exit::FAILURE);
        if g.json {
            print_json(&answer)?;
        }
        eprintln!(
            "snapguard: error: the daemon did not restore: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        );
        return Ok(code);
    }
    let warnings: Vec<&str> = answer["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if g.json {
        print_json(&answer)?;
    } else {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        if !g.quiet {
            println!(
                "restored {} file(s), {} dir(s), {} other, {} from snapshot {} to {} (by the daemon, as {})",
                answer["files"],
                answer["dirs"],
                answer["other"],
                render::size(answer["bytes"].as_u64().unwrap_or(0)),
                answer["snapshot"]
                    .as_str()
                    .map_or("?", |s| s.get(..8).unwrap_or(s)),
                target,
                answer["as_user"].as_str().unwrap_or("?")
            );
        }
    }
    if !warnings.is_empty() {
        return Ok(exit::PARTIAL_RESTORE);
    }
    Ok(0)
}
