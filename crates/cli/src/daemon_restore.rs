//! Restoring through the daemon (`snapguard --daemon restore ...`, control request `restore`):
//! a user named in `[daemon] allow_users` gets back their own files without the repository's
//! key and without any power to write where they could not write themselves.
//!
//! The daemon (root) opens the repository on a thread of its own and finds the subtree. For a
//! caller other than root, every entry of it must be owned by the caller's uid in the snapshot,
//! or the restore is refused naming the first foreign entry. The subtree is then streamed as a
//! tar archive ([`snapguard_engine::export`], laid out like `snapguard restore` lays out its
//! target) into GNU tar running *as the caller* (their uid, primary group and supplementary
//! groups, set by `setpriv`; cwd `/`; an environment with nothing of the daemon's) which
//! creates the target if needed and extracts into it. So the kernel checks every write against
//! the caller's own permissions, and no symlink in the target can make root write anywhere.
//! Root callers get the in-process restore ([`snapguard_engine::restore`]) with its full
//! fidelity (owners, `--overwrite if-changed`).
//!
//! The archive goes through a socket pair rather than a pipe so that the daemon can write it
//! with `MSG_NOSIGNAL`: the binary restores SIGPIPE's default action (see `main`), and a tar
//! that ends early must not end the daemon with it.

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
use snapguard_engine::RestoreOptions;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};

/// At most this many restores run at once; more are refused (each holds a repository open).
const MAX_RESTORES: usize = 4;
static RUNNING: AtomicUsize = AtomicUsize::new(0);

const TAR: &str = "/usr/bin/tar";
const SETPRIV: &str = "/usr/bin/setpriv";

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
    if RUNNING.fetch_add(1, Ordering::SeqCst) >= MAX_RESTORES {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        let _ = inc.reply.send(json!({"ok": false, "exit": exit::FAILURE,
            "error": format!("{MAX_RESTORES} restores are running already; try again when one has ended")}));
        return;
    }
    let g = g.clone();
    let caller = inc.caller;
    let reply = inc.reply;
    let spawned = std::thread::Builder::new()
        .name("sg-restore".into())
        .spawn(move || {
            let who = format!("{} (uid {}, pid {})", caller.user, caller.uid, caller.pid);
            let answer = match restore(&g, &caller, &snapshot, &path, &target, &overwrite) {
                Ok(v) => {
                    tracing::info!("control: {who} restored {snapshot}:{path} to {target}");
                    v
                }
                Err(f) => {
                    tracing::warn!(
                        "control: restore of {snapshot}:{path} to {target} for {who} failed: {}",
                        f.error
                    );
                    json!({"ok": false, "error": f.error, "exit": f.code})
                }
            };
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            let _ = reply.send(answer);
        });
    if let Err(e) = spawned {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        tracing::error!("cannot start a restore thread: {e}");
    }
}

fn restore(
    g: &GlobalArgs,
    caller: &Caller,
    snapshot: &str,
    path: &str,
    target: &str,
    overwrite: &str,
) -> Result<Value, Failure> {
    if !path.starts_with('/') {
        return Err(fail(
            exit::USAGE,
            format!("the path in the snapshot must be absolute, not {path:?}"),
        ));
    }
    let target_path = PathBuf::from(target);
    if !target_path.is_absolute() || target.contains('\0') {
        return Err(fail(
            exit::USAGE,
            format!("the target must be an absolute path, not {target:?}"),
        ));
    }
    let overwrite = match overwrite {
        "never" => Overwrite::Never,
        "if-changed" => Overwrite::IfChanged,
        "always" => Overwrite::Always,
        o => {
            return Err(fail(
                exit::USAGE,
                format!("overwrite must be never, if-changed or always, not {o:?}"),
            ))
        }
    };
    let (repo, _lock) = open(g, LockKind::Shared, "restore")?;
    let (id, snap) = repo.find_snapshot(snapshot)?;
    let sub = path.as_bytes();
    if caller.uid == 0 {
        let opts = RestoreOptions {
            target: target_path,
            includes: Vec::new(),
            excludes: Vec::new(),
            dry_run: false,
            overwrite,
            delete: false,
            progress: None,
        };
        let r = snapguard_engine::restore(&repo, &snap, sub, &opts)
            .map_err(|e| name_snapshot(e, &id))?;
        return Ok(json!({
            "ok": true,
            "snapshot": id.to_hex(),
            "target": target,
            "files": r.files,
            "dirs": r.dirs,
            "other": r.other,
            "bytes": r.bytes,
            "as_user": caller.user,
            "warnings": r.warnings.iter().map(|w| format!("{}: {}", w.path, w.message)).collect::<Vec<_>>(),
        }));
    }

    // Every entry must be the caller's own.
    let mut foreign: Option<(String, u32)> = None;
    let walked = snapguard_engine::browse::walk(&repo, &snap, sub, &mut |p, node| {
        if node.uid != caller.uid {
            foreign = Some((String::from_utf8_lossy(p).into_owned(), node.uid));
            return Err(snapguard_engine::Error::InvalidArgument(
                "foreign entry".into(),
            ));
        }
        Ok(())
    });
    if let Some((p, uid)) = foreign {
        return Err(fail(
            exit::FAILURE,
            format!(
                "{p} in snapshot {} belongs to uid {uid}, not to {} (uid {}): the daemon restores only your own files; ask root",
                id.short(),
                caller.user,
                caller.uid
            ),
        ));
    }
    walked.map_err(|e| name_snapshot(e, &id))?;

    let (summary, tar_err) = extract_as(caller, &target_path, overwrite, |out| {
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
    let summary = summary?;
    let mut warnings: Vec<String> = summary
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.path, w.message))
        .collect();
    warnings.extend(tar_err.lines().map(str::to_string));
    Ok(json!({
        "ok": true,
        "snapshot": id.to_hex(),
        "target": target,
        "files": summary.files,
        "dirs": summary.dirs,
        "other": summary.other,
        "bytes": summary.bytes,
        "as_user": caller.user,
        "warnings": warnings,
    }))
}

/// A socket end written with `MSG_NOSIGNAL`: a reader that went away is an error, not SIGPIPE.
struct NoSigpipe(OwnedFd);

impl Write for NoSigpipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        rustix::net::send(&self.0, buf, rustix::net::SendFlags::NOSIGNAL).map_err(Into::into)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Run GNU tar as `caller`, extracting into `target` (created as the caller if missing) what
/// `produce` writes. Returns what `produce` returned and tar's standard error (warnings) if tar
/// succeeded; tar's failure otherwise.
fn extract_as<T>(
    caller: &Caller,
    target: &Path,
    overwrite: Overwrite,
    produce: impl FnOnce(&mut dyn Write) -> Result<T, snapguard_engine::Error>,
) -> Result<(Result<T, Failure>, String), Failure> {
    let (uid, gid, groups) = identity(caller);
    // The target is created (as the caller) like `snapguard restore` creates it; `$@` is the
    // overwrite option.
    let script = format!(
        "t=$1; shift; mkdir -p -- \"$t\" && exec {TAR} -x --xattrs --acls --same-permissions --warning=no-timestamp \
         --no-same-owner \"$@\" -C \"$t\" -f -"
    );
    let mut cmd = if Path::new(SETPRIV).exists() {
        let mut c = std::process::Command::new(SETPRIV);
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"));
        if groups.is_empty() {
            c.arg("--clear-groups");
        } else {
            c.arg(format!(
                "--groups={}",
                groups
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        c.args(["--no-new-privs", "--", "/bin/sh"]);
        c
    } else {
        // Without setpriv: std sets uid and gid and drops every supplementary group.
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new("/bin/sh");
        c.uid(uid).gid(gid);
        c
    };
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
    // The caller's end only reads.
    rustix::net::shutdown(&theirs, rustix::net::Shutdown::Write)
        .map_err(|e| fail(exit::FAILURE, format!("socket shutdown: {e}")))?;
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
    // The command holds the child's end of the socket: close it here, so that writes fail as
    // soon as tar has gone.
    drop(cmd);
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf);
        // Drain the rest so that tar never blocks on a full pipe.
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        String::from_utf8_lossy(&buf).into_owned()
    });
    let mut out = std::io::BufWriter::with_capacity(1 << 20, NoSigpipe(ours));
    let produced = produce(&mut out).map_err(Failure::from);
    let produced = match (produced, out.into_inner()) {
        (Ok(v), Ok(sock)) => {
            drop(sock);
            Ok(v)
        }
        (Ok(_), Err(e)) => Err(fail(
            exit::FAILURE,
            format!("cannot write the archive: {}", e.error()),
        )),
        (Err(f), _) => Err(f),
    };
    let status = child
        .wait()
        .map_err(|e| fail(exit::FAILURE, format!("tar: {e}")))?;
    let tar_err = reader.join().unwrap_or_default();
    if !status.success() {
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
        return Err(fail(
            code,
            format!(
                "extracting into {} as {} (uid {}) failed ({status}): {}",
                target.display(),
                caller.user,
                caller.uid,
                if text.is_empty() { "no message" } else { text }
            ),
        ));
    }
    Ok((produced, tar_err))
}

/// The caller's uid, primary group and supplementary groups, from the user database (the peer
/// credentials' group and no supplementary groups if the uid has no entry).
fn identity(caller: &Caller) -> (u32, u32, Vec<u32>) {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(caller.uid))
        .ok()
        .flatten();
    let Some(user) = user else {
        return (caller.uid, caller.gid, Vec::new());
    };
    let gid = user.gid.as_raw();
    let groups = std::ffi::CString::new(user.name.clone())
        .ok()
        .and_then(|name| nix::unistd::getgrouplist(&name, user.gid).ok())
        .map(|gs| gs.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|| vec![gid]);
    (caller.uid, gid, groups)
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
