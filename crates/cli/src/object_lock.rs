//! S3 Object Lock in the CLI: the `init` options, the retention part of `lock`, what `prune`
//! reports about objects it had to leave in place, and `object-lock refresh`. The work is in
//! `snapguard_engine::object_lock`; this module parses and renders.

use crate::args::GlobalArgs;
use crate::render;
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use snapguard_backend::Backend;
use snapguard_engine::lock::LockKind;
use snapguard_engine::object_lock::{ExtendSummary, RefreshSummary, RetainedObject};
use snapguard_engine::Repository;
use snapguard_format::{ObjectLockMode, ObjectLockSettings, SnapshotId, Timestamp};

/// `init` options for S3 Object Lock (docs/remote.md, "Object lock").
#[derive(Args, Debug, Clone)]
pub struct ObjectLockArgs {
    /// Store every object with an S3 Object Lock retention (the bucket must have been created
    /// with Object Lock enabled). Recorded in the repository: every client applies it.
    #[arg(long)]
    pub object_lock: bool,
    /// Retention mode: compliance (nobody can shorten it, not even the account owner) or
    /// governance (users with s3:BypassGovernanceRetention can).
    #[arg(long, value_name = "MODE", default_value = "compliance", value_parser = ["compliance", "governance"], requires = "object_lock")]
    pub object_lock_mode: String,
    /// How long every new object is retained after it is written (e.g. 30d, 12h, 1y; 90s for
    /// seconds). Objects cannot be deleted (not even by prune) before their retention ends.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30d",
        requires = "object_lock"
    )]
    pub object_lock_retention: String,
}

impl ObjectLockArgs {
    fn settings(&self) -> Result<Option<ObjectLockSettings>> {
        if !self.object_lock {
            return Ok(None);
        }
        let secs = parse_retention(&self.object_lock_retention)?;
        if secs <= 0 {
            return Err(crate::usage!(
                "--object-lock-retention must be longer than zero"
            ));
        }
        let mode = match self.object_lock_mode.as_str() {
            "governance" => ObjectLockMode::Governance,
            _ => ObjectLockMode::Compliance,
        };
        Ok(Some(ObjectLockSettings {
            mode,
            retention_secs: secs as u64,
        }))
    }
}

/// A retention period: the usual durations (`30d`, `1y`, `12h`), or whole seconds (`90s`),
/// which only short-lived test repositories need.
fn parse_retention(s: &str) -> Result<i64> {
    if let Some(n) = s.strip_suffix('s').and_then(|n| n.parse::<i64>().ok()) {
        return Ok(n);
    }
    Ok(snapguard_policy::parse_duration(s)?)
}

/// Before `init` writes anything: check the bucket and arm the backend (no-op without
/// `--object-lock`).
pub fn prepare_init(backend: &dyn Backend, a: &ObjectLockArgs) -> Result<()> {
    if let Some(s) = a.settings()? {
        snapguard_engine::object_lock::prepare_init(backend, s)?;
    }
    Ok(())
}

/// How `init` describes the repository's Object Lock settings.
pub fn describe(repo: &Repository) -> Option<String> {
    let s = repo.config().object_lock?;
    let mode = match s.mode {
        ObjectLockMode::Compliance => "compliance",
        ObjectLockMode::Governance => "governance",
    };
    Some(format!(
        "S3 Object Lock: {mode} mode, every object retained for {} after it is written",
        snapguard_policy::format_duration(s.retention_secs as i64)
    ))
}

/// `lock`: raise the storage retention of everything the snapshot needs to `until` (nothing
/// on a repository without Object Lock), and say so unless `--json`/`--quiet`.
pub fn extend(
    g: &GlobalArgs,
    repo: &Repository,
    id: SnapshotId,
    until: Timestamp,
) -> Result<Option<ExtendSummary>> {
    let summary = snapguard_engine::object_lock::extend_for_snapshot(repo, id, until)?;
    if let Some(s) = &summary {
        if !g.json && !g.quiet {
            println!(
                "S3 Object Lock: retention of {} object(s) extended to {} ({} already retained that long): config, {} key slot(s), snapshot file, annotations, {} pack(s), {} index file(s)",
                s.extended,
                render::rfc3339(until),
                s.unchanged,
                s.key_slots,
                s.packs,
                s.index_files
            );
        }
    }
    Ok(summary)
}

/// The JSON form of an [`ExtendSummary`], added to `lock --json`'s output.
pub fn summary_json(s: &ExtendSummary, until: Timestamp) -> serde_json::Value {
    json!({
        "retain_until": render::rfc3339(until),
        "objects": s.objects,
        "packs": s.packs,
        "index_files": s.index_files,
        "key_slots": s.key_slots,
        "extended": s.extended,
        "unchanged": s.unchanged,
    })
}

/// `prune`: one line per kind of object left in place, with the latest date it is retained.
pub fn print_retained(retained: &[RetainedObject]) {
    for kind in ["pack", "index"] {
        let of_kind: Vec<&RetainedObject> = retained.iter().filter(|r| r.kind == kind).collect();
        let Some(latest) = of_kind.iter().map(|r| r.until.as_str()).max() else {
            continue;
        };
        let what = if kind == "pack" {
            "pack(s)"
        } else {
            "superseded index file(s)"
        };
        println!(
            "{} {what} kept: locked until {latest} at the latest (S3 Object Lock); a prune after that deletes them",
            of_kind.len()
        );
    }
}

/// `snapguard object-lock …`: maintenance of an S3 Object Lock repository.
#[derive(Subcommand, Debug)]
pub enum ObjectLockCommand {
    /// Extend the S3 Object Lock retention of everything a restore needs (config, key slots,
    /// index files, the packs they list, snapshot files, annotations) to now + the
    /// repository's retention period, skipping objects already retained for at least half of
    /// it. Run it at least once per half period (cron, systemd timer): objects new snapshots
    /// deduplicate against are otherwise only retained until their first period ends.
    Refresh,
}

pub fn run(g: &GlobalArgs, c: &ObjectLockCommand) -> Result<i32> {
    match c {
        ObjectLockCommand::Refresh => refresh(g),
    }
}

fn refresh(g: &GlobalArgs) -> Result<i32> {
    // Shared: backups may run meanwhile (what they write carries a full retention already);
    // prune, which deletes, waits.
    let (repo, _lock) = crate::commands::open(g, LockKind::Shared, "object-lock refresh")?;
    let s = snapguard_engine::object_lock::refresh(&repo)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else if !g.quiet {
        print_refresh(&s);
    }
    Ok(0)
}

fn print_refresh(s: &RefreshSummary) {
    println!(
        "S3 Object Lock: {} object(s) extended to {}, {} already retained until at least {}, {} not retained because no restore needs them (left to prune)",
        s.extended, s.retain_until, s.already_retained, s.skip_if_retained_until, s.not_needed
    );
    for (kind, c) in &s.by_kind {
        println!(
            "  {kind:<15} {:>8} extended {:>8} already retained",
            c.extended, c.already_retained
        );
    }
}
