//! `snapguard live …`: OverlayFS live mode on a local snapshot (docs/live.md). Parses, calls
//! `snapguard_local::live` and renders; the work is in the library.

use crate::args::GlobalArgs;
use crate::commands::print_json;
use crate::local::{numbers_text, open_store, snapshot_json};
use crate::{render, usage};
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use snapguard_local::live::{self, LiveSession, StartOptions, UpperLayer, UpperSpec};
use std::path::PathBuf;

/// `snapguard live`.
#[derive(Args, Debug)]
pub struct LiveArgs {
    #[command(subcommand)]
    pub command: LiveCommand,
    /// Where session records and default mounts live (for tests).
    #[arg(
        long,
        env = "SNAPGUARD_LIVE_DIR",
        default_value = live::DEFAULT_RUN_DIR,
        hide = true,
        global = true
    )]
    pub run_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum LiveCommand {
    /// Mount a read-only snapshot with a throwaway writable layer on top; prints the mount
    /// point.
    Start(StartArgs),
    /// Show the live sessions (of one configuration, or all).
    Status(StatusArgs),
    /// End a session and drop every change made in it; the snapshot stays.
    Discard(DiscardArgs),
    /// Turn a session's merged view into a new snapshot, then end the session.
    Commit(CommitArgs),
}

/// `live start`.
#[derive(Args, Debug)]
pub struct StartArgs {
    /// The configuration ([local.NAME] in the config file).
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: String,
    /// The snapshot to start from; default: a new snapshot of the subvolume ("live mode").
    #[arg(value_name = "ID")]
    pub id: Option<u32>,
    /// Where to mount the merged view (default /run/snapguard/live/CONFIG/merged); created if
    /// missing, must be empty.
    #[arg(long, value_name = "DIR")]
    pub mountpoint: Option<PathBuf>,
    /// Where changes go: "tmpfs" (default, in memory), or a scratch directory on a filesystem
    /// that supports overlay upper layers (ext4, xfs, btrfs), for changes larger than memory.
    #[arg(long, value_name = "tmpfs|DIR", default_value = "tmpfs")]
    pub upper: String,
    /// Size limit of the tmpfs (tmpfs syntax: 2G, 512M, 25%); default: half of the RAM.
    #[arg(long, value_name = "SIZE", value_parser = live::parse_tmpfs_size)]
    pub size: Option<String>,
}

/// `live status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Only this configuration's session.
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: Option<String>,
}

/// `live discard`.
#[derive(Args, Debug)]
pub struct DiscardArgs {
    /// The configuration ([local.NAME] in the config file); default: the one whose live
    /// session is active, when there is exactly one.
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: Option<String>,
}

/// `live commit`.
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// The configuration ([local.NAME] in the config file); default: the one whose live
    /// session is active, when there is exactly one.
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: Option<String>,
    /// The new snapshot's description (default "live mode: commit of snapshot N").
    #[arg(short, long)]
    pub description: Option<String>,
}

pub fn run(g: &GlobalArgs, a: &LiveArgs) -> Result<i32> {
    match &a.command {
        LiveCommand::Start(s) => start(g, a, s),
        LiveCommand::Status(s) => status(g, a, s),
        LiveCommand::Discard(c) => discard(g, a, c),
        LiveCommand::Commit(c) => commit(g, a, c),
    }
}

fn session_json(s: &LiveSession) -> serde_json::Value {
    serde_json::to_value(s).unwrap_or_default()
}

fn start(g: &GlobalArgs, a: &LiveArgs, s: &StartArgs) -> Result<i32> {
    let upper = if s.upper == "tmpfs" {
        UpperSpec::Tmpfs {
            size: s.size.clone(),
        }
    } else {
        if s.size.is_some() {
            return Err(usage!(
                "--size limits the tmpfs; it cannot be used with --upper {}",
                s.upper
            ));
        }
        UpperSpec::Dir(PathBuf::from(&s.upper))
    };
    let store = open_store(g, &s.config)?;
    let session = live::start(
        &store,
        s.id,
        &StartOptions {
            run_dir: a.run_dir.clone(),
            mountpoint: s.mountpoint.clone(),
            upper,
        },
    )?;
    if g.json {
        return print_json(&session_json(&session));
    }
    if !g.quiet {
        eprintln!(
            "live session of {} on snapshot {}{}; changes go to {}. End it with 'snapguard live \
             commit {}' (keep the changes as a new snapshot) or 'snapguard live discard {}'.",
            session.config,
            session.lower,
            if session.lower_created {
                " (just taken)"
            } else {
                ""
            },
            upper_text(&session),
            session.config,
            session.config
        );
    }
    // Only the mount point on standard output, for scripts: cd "$(snapguard live start data)".
    println!("{}", session.mountpoint.display());
    Ok(0)
}

fn upper_text(s: &LiveSession) -> String {
    match &s.upper {
        UpperLayer::Tmpfs { size, .. } => format!(
            "a tmpfs{}",
            size.as_deref()
                .map(|z| format!(" of {z}"))
                .unwrap_or_default()
        ),
        UpperLayer::Dir { dir, .. } => format!("{}", dir.display()),
    }
}

fn status(g: &GlobalArgs, a: &LiveArgs, s: &StatusArgs) -> Result<i32> {
    let sessions = live::status(&a.run_dir, s.config.as_deref())?;
    if g.json {
        return print_json(&serde_json::to_value(&sessions)?);
    }
    if sessions.is_empty() {
        match &s.config {
            Some(c) => println!("no live session of {c}"),
            None => println!("no live sessions"),
        }
        return Ok(0);
    }
    for st in &sessions {
        let s = &st.session;
        let state = match (st.mounted, st.upper_present) {
            (true, _) => "mounted".to_string(),
            (false, true) => "not mounted (the changes are kept; commit or discard)".to_string(),
            (false, false) => "gone (after a reboot or unmount); discard it".to_string(),
        };
        println!(
            "{}: snapshot {} at {} since {}, changes in {}{}: {state}",
            s.config,
            s.lower,
            s.mountpoint.display(),
            s.time,
            upper_text(s),
            st.upper_used_bytes
                .map(|b| format!(" ({} used)", render::size(b)))
                .unwrap_or_default(),
        );
    }
    Ok(0)
}

/// The configuration `live discard` or `live commit` (`verb`) works on: the one named, or
/// else the only one with a recorded session. No session is a failure (1); several are a
/// usage error (2) that names them.
fn session_config(a: &LiveArgs, config: Option<&str>, verb: &str) -> Result<String> {
    if let Some(c) = config {
        return Ok(c.to_string());
    }
    let sessions = live::status(&a.run_dir, None)?;
    match sessions.as_slice() {
        [] => Err(anyhow::anyhow!(
            "there is no live session to {verb} (none is recorded in {}); start one with \
             'snapguard live start CONFIG'{}",
            a.run_dir.display(),
            if verb == "discard" {
                ", or name the configuration ('snapguard live discard CONFIG') to remove its \
                 stale live-mode locks"
            } else {
                ""
            }
        )),
        [one] => Ok(one.session.config.clone()),
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|s| format!("{} (snapshot {})", s.session.config, s.session.lower))
                .collect();
            Err(usage!(
                "{} live sessions are active: {}; say which one to {verb}: 'snapguard live \
                 {verb} CONFIG'",
                many.len(),
                names.join(", ")
            ))
        }
    }
}

fn discard(g: &GlobalArgs, a: &LiveArgs, c: &DiscardArgs) -> Result<i32> {
    let config = session_config(a, c.config.as_deref(), "discard")?;
    let store = open_store(g, &config)?;
    let r = live::discard(&store, &a.run_dir)?;
    if g.json {
        return print_json(&json!({
            "config": config,
            "session": r.session.as_ref().map(session_json),
            "stale_locks_removed": r.stale_locks_removed,
        }));
    }
    if let Some(s) = &r.session {
        println!(
            "discarded the live session of {} on snapshot {}; snapshot {} is unchanged",
            s.config, s.lower, s.lower
        );
    }
    if !r.stale_locks_removed.is_empty() {
        println!(
            "removed stale live-mode locks of snapshots {}",
            numbers_text(&r.stale_locks_removed)
        );
    }
    Ok(0)
}

fn commit(g: &GlobalArgs, a: &LiveArgs, c: &CommitArgs) -> Result<i32> {
    let config = session_config(a, c.config.as_deref(), "commit")?;
    let store = open_store(g, &config)?;
    let r = live::commit(&store, &a.run_dir, c.description.as_deref())?;
    if g.json {
        return print_json(&json!({
            "config": config,
            "session": session_json(&r.session),
            "snapshot": snapshot_json(&r.snapshot, None),
            "changes": r.changes,
        }));
    }
    let ch = &r.changes;
    println!(
        "committed the live session of {} on snapshot {} as snapshot {} ({} created, {} \
         replaced, {} deleted, {} directories created, {} renamed directories)",
        config,
        r.session.lower,
        r.snapshot.number,
        ch.created,
        ch.replaced,
        ch.deleted,
        ch.dirs,
        ch.renamed_dirs
    );
    Ok(0)
}
