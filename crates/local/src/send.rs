//! Replication of a configuration's read-only snapshots to another btrfs filesystem with
//! `btrfs send` and `btrfs receive`, the way btrbk does it: incrementally from the newest
//! snapshot both sides have, with its own retention on the target. Documented for users in
//! `docs/local-send.md`.
//!
//! # Target layout
//!
//! ```text
//! <target>/<CONFIG>/<N>/snapshot      the received subvolume (read-only, received_uuid set)
//! <target>/<CONFIG>/<N>/info.json     the source's description of snapshot N
//! <target>/<CONFIG>/.incoming-<N>/    a receive in progress (or interrupted)
//! ```
//!
//! # Matching snapshots
//!
//! A received subvolume's `received_uuid` is the UUID the sender put into the stream: the source
//! snapshot's own UUID (or its `received_uuid`, if it was itself received). A source snapshot
//! is on the target when some complete entry there has that `received_uuid`; the newest such
//! snapshot is the common parent, and `btrfs send -p` uses it. Every newer source snapshot is
//! then sent in ascending order, each with the previous one as parent. Older source snapshots
//! missing on the target are not sent again (the target's retention may have deleted them).
//!
//! # Concurrency
//!
//! A send holds an exclusive `flock` on `<snapshot_dir>/.snapguard-send.lock`; a second send of
//! the same configuration fails at once instead of mistaking the first one's `.incoming-<N>`
//! for an interrupted receive.
//!
//! # Interrupted transfers
//!
//! Every stream is received into `.incoming-<N>` and renamed to `<N>` only after `btrfs
//! receive` succeeded and the subvolume is read-only with the expected `received_uuid`, so a
//! half-received snapshot never looks complete. `btrfs receive` leaves a partial subvolume
//! (writable, no `received_uuid`) when the stream breaks off; every `.incoming-*` entry is
//! deleted before anything is sent. A numbered entry that is not a complete received snapshot
//! cannot have been made by a send, so it is someone else's: it is reported and never touched
//! (nor sent over: a snapshot with its number is refused).

mod side;

pub use side::Target;

use crate::files::{to_json, FileLock};
use crate::store::{LocalSnapshot, Store};
use crate::{Error, Result};
use serde::Serialize;
use side::{entry_number, Side, INCOMING_PREFIX};
use snapguard_btrfs::Uuid;
use snapguard_policy::{LocalRetention, LocalSnapshotInfo};
use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The lock file in the snapshot directory held while a send of the configuration runs.
pub const SEND_LOCK_FILE: &str = ".snapguard-send.lock";

/// How the target is thinned after sending.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum TargetRetention {
    /// Keep everything.
    #[default]
    KeepAll,
    /// Keep the newest `n` (at least 1) snapshots on the target.
    Newest(u32),
    /// Apply the Snapper-style cleanup rules ([`snapguard_policy::plan_cleanup`]) to the
    /// target's snapshots, each with the kind and cleanup algorithm it has on the source.
    Policy(Box<LocalRetention>),
}

/// Options of [`send`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SendOptions {
    pub retention: TargetRetention,
    /// The ssh program and its options for `ssh://` targets (default `ssh`), e.g.
    /// `["ssh", "-i", "/root/.ssh/backup"]`.
    pub ssh_command: Vec<String>,
    /// Only plan: report what would be sent and deleted.
    pub dry_run: bool,
    /// The current time in Unix seconds (for [`TargetRetention::Policy`]).
    pub now: i64,
}

/// One snapshot sent.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SentSnapshot {
    pub number: u32,
    /// The parent of the incremental stream (`btrfs send -p`), `None` for a full stream.
    pub parent: Option<u32>,
    /// Bytes of the send stream (0 in a dry run).
    pub bytes: u64,
    pub seconds: f64,
}

/// What [`send`] did (or, in a dry run, would do).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SendReport {
    pub config: String,
    pub target: String,
    pub dry_run: bool,
    /// The newest snapshot both sides had before sending.
    pub common_parent: Option<u32>,
    pub sent: Vec<SentSnapshot>,
    /// Snapshots already on the target.
    pub already_present: Vec<u32>,
    /// Writable source snapshots, which cannot be sent.
    pub skipped_writable: Vec<u32>,
    /// Partial receives removed from the target (`.incoming-N` of an interrupted send).
    pub removed_partial: Vec<String>,
    /// Numbered entries of the target that are not complete received snapshots (a directory
    /// someone else made there, a received snapshot made writable): never touched, never
    /// counted by the target's retention.
    pub left_alone: Vec<String>,
    /// Snapshots deleted on the target by its retention.
    pub deleted: Vec<u32>,
}

/// Replicate `store`'s snapshots to `target`; see the module documentation.
pub fn send(store: &Store, target: &Target, opts: &SendOptions) -> Result<SendReport> {
    let config = store.name();
    let side = Side::new(target, config, &opts.ssh_command);
    let err = |detail: String| Error::Send {
        config: config.to_string(),
        target: target.to_string(),
        detail,
    };
    if let TargetRetention::Newest(0) = opts.retention {
        return Err(err(
            "--keep must be at least 1: the newest snapshot is the parent of the next \
             incremental send"
                .into(),
        ));
    }
    // One send of a configuration at a time (an overlapping cron run would take the other's
    // receive in progress for an interrupted one and delete it). Not the store's own lock:
    // a long transfer must not hold up `local create` (the apt hook).
    let _lock = match (opts.dry_run, store.snapshot_dir().is_dir()) {
        (false, true) => {
            let path = store.snapshot_dir().join(SEND_LOCK_FILE);
            Some(FileLock::try_acquire(&path)?.ok_or_else(|| {
                err(format!(
                    "another 'snapguard local send' of this configuration is running (it holds \
                     {}); wait for it to finish",
                    path.display()
                ))
            })?)
        }
        _ => None,
    };
    let mut report = SendReport {
        config: config.to_string(),
        target: target.to_string(),
        dry_run: opts.dry_run,
        common_parent: None,
        sent: Vec::new(),
        already_present: Vec::new(),
        skipped_writable: Vec::new(),
        removed_partial: Vec::new(),
        left_alone: Vec::new(),
        deleted: Vec::new(),
    };

    // The source: read-only snapshots and the UUID each one's stream carries.
    let mut source: Vec<(LocalSnapshot, Uuid)> = Vec::new();
    for s in store.list()? {
        let info = snapguard_btrfs::subvolume_info(&s.path).map_err(|e| Error::Btrfs {
            context: format!("config {config}: read snapshot {}", s.number),
            cause: e,
        })?;
        if !info.readonly {
            report.skipped_writable.push(s.number);
            continue;
        }
        let stream_uuid = info.received_uuid.unwrap_or(info.uuid);
        source.push((s, stream_uuid));
    }

    if !opts.dry_run {
        side.prepare()?;
    }
    // A dry run does not create the target directory: one that does not exist yet lists as
    // empty, but an unreachable or unreadable target is still an error.
    let entries = side.list()?;

    // Partial receives go first; complete entries are indexed by received UUID. A numbered
    // entry that is not complete was not made by a send (which renames only a verified
    // receive to its number), so it is someone else's and stays as it is.
    let mut on_target: HashMap<Uuid, u32> = HashMap::new();
    let mut target_numbers: Vec<(u32, Option<Vec<u8>>)> = Vec::new();
    let mut foreign: Vec<u32> = Vec::new();
    for e in entries {
        let Some(number) = entry_number(&e.name) else {
            continue;
        };
        if e.name.starts_with(INCOMING_PREFIX) {
            tracing::warn!(
                "config {config}: {}/{}: removing an incomplete receive",
                side.dir().display(),
                e.name
            );
            if !opts.dry_run {
                side.remove(&e.name)?;
            }
            report.removed_partial.push(e.name);
            continue;
        }
        match e.subvolume.as_ref() {
            Some(sub) if sub.readonly && sub.received_uuid.is_some() => {
                if let Some(r) = sub.received_uuid {
                    on_target.insert(r, number);
                }
                target_numbers.push((number, e.info));
            }
            _ => {
                tracing::warn!(
                    "config {config}: {}/{}: not a complete received snapshot; left alone",
                    side.dir().display(),
                    e.name
                );
                foreign.push(number);
                report.left_alone.push(e.name);
            }
        }
    }

    // The newest common snapshot, and what to send after it.
    let common = source
        .iter()
        .rev()
        .find(|(_, u)| on_target.contains_key(u))
        .map(|(s, _)| s.number);
    report.common_parent = common;
    let mut to_send: Vec<&(LocalSnapshot, Uuid)> = Vec::new();
    for pair in &source {
        let (s, u) = pair;
        if on_target.contains_key(u) {
            report.already_present.push(s.number);
        } else if common.is_none_or(|c| s.number > c) {
            to_send.push(pair);
        }
    }
    // Snapshots that the target's count limit would delete right away are not sent.
    if let TargetRetention::Newest(k) = opts.retention {
        let k = k as usize;
        if to_send.len() > k {
            to_send.drain(..to_send.len() - k);
        }
    }
    for (s, _) in &to_send {
        let n = s.number;
        if target_numbers.iter().any(|(t, _)| *t == n) || foreign.contains(&n) {
            return Err(err(format!(
                "the target already has an entry {n} that was not received from this source's \
                 snapshot {n}; move {}/{n} away or send to another directory",
                side.dir().display()
            )));
        }
    }

    let mut parent = common;
    for (s, stream_uuid) in to_send {
        let parent_path = parent.map(|p| store.snapshot_path(p));
        if opts.dry_run {
            report.sent.push(SentSnapshot {
                number: s.number,
                parent,
                bytes: 0,
                seconds: 0.0,
            });
        } else {
            let t0 = Instant::now();
            let bytes =
                transfer(&side, s, *stream_uuid, parent_path.as_deref()).map_err(|e| match e {
                    Error::Send { .. } => e,
                    other => err(other.to_string()),
                })?;
            report.sent.push(SentSnapshot {
                number: s.number,
                parent,
                bytes,
                seconds: t0.elapsed().as_secs_f64(),
            });
            tracing::info!(
                "config {config}: sent snapshot {} to {target} ({bytes} bytes{})",
                s.number,
                parent
                    .map(|p| format!(", incremental from {p}"))
                    .unwrap_or_default()
            );
        }
        target_numbers.push((s.number, Some(to_json(s)?)));
        parent = Some(s.number);
    }

    // Retention on the target, never touching the newest snapshot (the next parent).
    target_numbers.sort_by_key(|(n, _)| *n);
    let doomed = plan_target_retention(&opts.retention, &target_numbers, opts.now);
    for n in doomed {
        if !opts.dry_run {
            side.remove(&n.to_string())?;
        }
        report.deleted.push(n);
    }
    Ok(report)
}

/// Which target snapshots the retention deletes. `snaps` is sorted by number, with each
/// one's `info.json`.
fn plan_target_retention(
    retention: &TargetRetention,
    snaps: &[(u32, Option<Vec<u8>>)],
    now: i64,
) -> Vec<u32> {
    let newest = snaps.last().map(|(n, _)| *n);
    match retention {
        TargetRetention::KeepAll => Vec::new(),
        TargetRetention::Newest(k) => {
            let keep = (*k as usize).max(1);
            snaps
                .iter()
                .take(snaps.len().saturating_sub(keep))
                .map(|(n, _)| *n)
                .collect()
        }
        TargetRetention::Policy(policy) => {
            let infos: Vec<LocalSnapshotInfo> = snaps
                .iter()
                .filter_map(|(n, info)| {
                    // An entry whose description cannot be read is kept.
                    let s: LocalSnapshot = serde_json::from_slice(info.as_deref()?).ok()?;
                    Some(LocalSnapshotInfo {
                        number: *n,
                        time: s.unix,
                        kind: s.kind,
                        pre_number: s.pre_number,
                        cleanup: s.cleanup,
                        exclusive_bytes: None,
                        protected: Some(*n) == newest,
                    })
                })
                .collect();
            snapguard_policy::plan_cleanup(&infos, policy, now, None).numbers()
        }
    }
}

/// Send one snapshot into `.incoming-<N>`, check it, describe it and rename it to `<N>`.
/// Returns the stream's size.
fn transfer(
    side: &Side,
    snap: &LocalSnapshot,
    stream_uuid: Uuid,
    parent: Option<&std::path::Path>,
) -> Result<u64> {
    let n = snap.number;
    let incoming = format!("{INCOMING_PREFIX}{n}");
    let fail = |detail: String| {
        // Best effort: the next send removes whatever is left.
        if let Err(e) = side.remove(&incoming) {
            tracing::warn!("removing the partial {incoming}: {e}");
        }
        side.err(detail)
    };

    let mut send_cmd = Command::new("btrfs");
    send_cmd.arg("send").arg("-q");
    if let Some(p) = parent {
        send_cmd.arg("-p").arg(p);
    }
    send_cmd
        .arg(&snap.path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut sender = send_cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start btrfs send: {e}")))?;
    let mut receiver = match side.spawn_receive(&incoming) {
        Ok(r) => r,
        Err(e) => {
            let _ = sender.kill();
            let _ = sender.wait();
            return Err(e);
        }
    };
    let send_err = stderr_reader(sender.stderr.take());
    let recv_err = stderr_reader(receiver.stderr.take());
    let copied = match (sender.stdout.take(), receiver.stdin.take()) {
        (Some(mut from), Some(mut to)) => std::io::copy(&mut from, &mut to),
        _ => Err(std::io::Error::other("no pipe")),
    };
    // Closing our ends lets the other process see end of stream or a broken pipe.
    let send_status = sender.wait();
    let recv_status = receiver.wait();
    let send_msg = send_err.join().unwrap_or_default();
    let recv_msg = recv_err.join().unwrap_or_default();
    let ok = |s: &std::io::Result<std::process::ExitStatus>| s.as_ref().is_ok_and(|s| s.success());
    if !ok(&send_status) || !ok(&recv_status) || copied.is_err() {
        let mut why = Vec::new();
        if !ok(&send_status) {
            why.push(format!(
                "btrfs send of snapshot {n} failed ({}): {}",
                status_text(&send_status),
                send_msg.trim()
            ));
        }
        if !ok(&recv_status) {
            why.push(format!(
                "btrfs receive failed ({}): {}",
                status_text(&recv_status),
                recv_msg.trim()
            ));
        }
        if let Err(e) = &copied {
            if why.is_empty() {
                why.push(format!("copying the stream: {e}"));
            }
        }
        return Err(fail(format!(
            "{}; the partial snapshot was removed, run the send again",
            why.join("; ")
        )));
    }
    let bytes = copied.unwrap_or(0);

    match side.facts(&incoming)? {
        Some(f) if f.readonly && f.received_uuid == Some(stream_uuid) => {
            let mut info = snap.clone();
            if let Some(u) = f.uuid {
                info.uuid = u.to_string();
            }
            side.finish(&incoming, &n.to_string(), &to_json(&info)?)?;
            Ok(bytes)
        }
        other => Err(fail(format!(
            "btrfs receive reported success, but {incoming}/snapshot is not a complete \
             received snapshot ({})",
            match other {
                None => "no subvolume".to_string(),
                Some(f) => format!(
                    "read-only: {}, received UUID: {}",
                    f.readonly,
                    f.received_uuid
                        .map_or_else(|| "none".to_string(), |u| u.to_string())
                ),
            }
        ))),
    }
}

fn status_text(s: &std::io::Result<std::process::ExitStatus>) -> String {
    match s {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

fn stderr_reader<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(n: u32, unix: i64, cleanup: snapguard_policy::CleanupAlgorithm) -> Vec<u8> {
        let s = LocalSnapshot {
            version: 1,
            number: n,
            time: String::new(),
            unix,
            kind: snapguard_policy::LocalKind::Single,
            pre_number: None,
            description: String::new(),
            tags: Vec::new(),
            cleanup,
            userdata: Default::default(),
            uuid: String::new(),
            generation: 0,
            source_uuid: String::new(),
            created_from: None,
            writable: false,
            path: Default::default(),
        };
        to_json(&s).expect("json")
    }

    #[test]
    fn newest_n_never_drops_the_newest() {
        let snaps: Vec<(u32, Option<Vec<u8>>)> = (1..=5).map(|n| (n, None)).collect();
        assert_eq!(
            plan_target_retention(&TargetRetention::Newest(2), &snaps, 0),
            vec![1, 2, 3]
        );
        assert_eq!(
            plan_target_retention(&TargetRetention::Newest(9), &snaps, 0),
            Vec::<u32>::new()
        );
        assert!(plan_target_retention(&TargetRetention::KeepAll, &snaps, 0).is_empty());
    }

    #[test]
    fn policy_retention_uses_the_source_descriptions() {
        use snapguard_policy::{CleanupAlgorithm, CountRange};
        let now = 1_000_000;
        let snaps: Vec<(u32, Option<Vec<u8>>)> = (1..=6)
            .map(|n| {
                let algo = if n == 2 {
                    CleanupAlgorithm::None
                } else {
                    CleanupAlgorithm::Number
                };
                (n, Some(info(n, now - 100_000 + i64::from(n), algo)))
            })
            .chain(std::iter::once((7, None)))
            .collect();
        let policy = LocalRetention {
            number_limit: CountRange::exactly(2),
            ..LocalRetention::default()
        };
        let doomed = plan_target_retention(&TargetRetention::Policy(Box::new(policy)), &snaps, now);
        // 5 and 6 are the two newest number snapshots, 2 has cleanup "none", 7 has no readable
        // description.
        assert_eq!(doomed, vec![1, 3, 4]);
    }
}
