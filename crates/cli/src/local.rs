//! `snapguard local …`: the local snapshot tier, numbered read-only btrfs snapshots of the
//! subvolumes named by `[local.NAME]` sections of the config file (docs/local.md). The clap
//! types of the subcommands live here; the work is `snapguard_local` (crates/local), and the
//! submodules only parse, call and render: `manage` (create, list, delete, cleanup),
//! `changes` (diff, undo, rollback, backup), `apt` (install-apt-hook).

mod apt;
mod changes;
mod manage;

use crate::args::GlobalArgs;
use crate::exit;
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use snapguard_local::{Error as LocalError, LocalSnapshot, SnapshotStatus, Store};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum LocalCommand {
    /// Take a read-only btrfs snapshot of a configuration's subvolume; prints its number.
    Create(CreateArgs),
    /// List the snapshots of one configuration, or of all.
    List(ListArgs),
    /// Delete snapshots by number or range (3 5-7).
    Delete(DeleteArgs),
    /// Show what changed between two snapshots (0 is the live subvolume), with Snapper's
    /// status flags.
    Diff(DiffArgs),
    /// Revert, in the live subvolume, the changes made between two snapshots.
    Undo(UndoArgs),
    /// Make a snapshot the current state again (a safety snapshot of the current state is
    /// kept).
    Rollback(RollbackArgs),
    /// Delete snapshots that the configuration's retention no longer keeps.
    Cleanup(CleanupArgs),
    /// Back a local snapshot up into the repository (recorded as the subvolume's path).
    Backup(LocalBackupArgs),
    /// Install the apt hook that takes pre/post snapshot pairs around every dpkg run.
    InstallAptHook(InstallAptHookArgs),
    /// Replicate snapshots to another btrfs filesystem (a path or ssh://host/path) with btrfs
    /// send/receive, incrementally (docs/local-send.md).
    Send(crate::send::SendArgs),
}

/// `local create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The configuration ([local.NAME] in the config file).
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: String,
    /// A description shown by 'local list'.
    #[arg(short, long, default_value = "")]
    pub description: String,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// A pre snapshot, taken before a change; prints the number to give to --post.
    #[arg(long, conflicts_with = "post")]
    pub pre: bool,
    /// A post snapshot, taken after the change that pre snapshot N was taken before.
    #[arg(long, value_name = "N")]
    pub post: Option<u32>,
    /// Which cleanup rule may delete it later.
    #[arg(long, value_enum, default_value_t = CleanupArg::None)]
    pub cleanup: CleanupArg,
    /// Free-form KEY=VALUE data (repeatable); important=yes protects the snapshot from cleanup
    /// and from delete without --force.
    #[arg(long = "userdata", value_name = "KEY=VALUE", value_parser = parse_userdata)]
    pub userdata: Vec<(String, String)>,
    /// For tests only: record this time (RFC 3339) instead of the snapshot's creation time.
    #[arg(long, hide = true)]
    pub time: Option<String>,
}

/// `--cleanup` of `local create`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupArg {
    None,
    Number,
    Timeline,
}

fn parse_userdata(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains(',') => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "{s:?} is not KEY=VALUE: give a non-empty key, '=', and a value (important=yes)"
        )),
    }
}

/// `local list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// The configuration; all of them if left out.
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: Option<String>,
}

/// `local delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The configuration ([local.NAME] in the config file).
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: String,
    /// Snapshot numbers and ranges (3 5-7); a range skips numbers that do not exist.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    /// Also delete snapshots marked important (userdata important=yes). Mounted, default and
    /// live-mode snapshots are never deleted.
    #[arg(long)]
    pub force: bool,
}

/// `local diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The configuration ([local.NAME] in the config file).
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: String,
    /// The older snapshot (0: the live subvolume).
    pub id1: u32,
    /// The newer snapshot (0: the live subvolume).
    pub id2: u32,
    /// Only these paths and what is below them: absolute paths in the live subvolume, or
    /// relative to it.
    pub paths: Vec<PathBuf>,
}

/// `local undo`.
#[derive(Args, Debug)]
pub struct UndoArgs {
    /// The configuration ([local.NAME] in the config file).
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: String,
    /// The snapshot whose state is brought back.
    pub id1: u32,
    /// The later snapshot (0: the live subvolume); the changes between the two are reverted.
    pub id2: u32,
    /// Only these paths and what is below them (absolute in the live subvolume, or relative
    /// to it); everything if none.
    pub paths: Vec<PathBuf>,
}

/// `local rollback`.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The configuration ([local.NAME] in the config file).
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: String,
    /// The snapshot to restore.
    #[arg(required_unless_present = "resume")]
    pub id: Option<u32>,
    /// Make a writable copy of the snapshot the filesystem's default subvolume instead of
    /// swapping the subvolume in place (automatic for the root filesystem, subvolume /).
    #[arg(long, conflicts_with = "resume")]
    pub set_default: bool,
    /// Finish a rollback that was interrupted (a crash or power loss in the middle).
    #[arg(long)]
    pub resume: bool,
}

/// `local cleanup`.
#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// The configuration; all of them if left out.
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: Option<String>,
    /// Print the plan with its reasons; delete nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// `local backup`.
#[derive(Args, Debug)]
pub struct LocalBackupArgs {
    /// The configuration ([local.NAME] in the config file).
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: String,
    /// The snapshot to back up.
    pub id: u32,
    /// Further tags (local:CONFIG:ID is always added).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Hostname to record (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// Exclude paths matching this glob (repeatable).
    #[arg(long = "exclude")]
    pub excludes: Vec<String>,
    /// Compare against this repository snapshot instead of the latest one of this host and
    /// path.
    #[arg(long)]
    pub parent: Option<String>,
    /// Compression of new data: off, fast, auto, max or a zstd level 1-22.
    #[arg(long)]
    pub compression: Option<String>,
    /// Read everything but write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// `local install-apt-hook`.
#[derive(Args, Debug)]
pub struct InstallAptHookArgs {
    /// Where apt reads its configuration snippets.
    #[arg(long, default_value = "/etc/apt/apt.conf.d")]
    pub dir: PathBuf,
    /// Where to install the hook script.
    #[arg(long, default_value = "/usr/local/lib/snapguard/snapguard-apt-hook")]
    pub hook_path: PathBuf,
    /// The configurations to snapshot (repeatable); default: the one whose subvolume is /.
    #[arg(long = "config-name", value_name = "NAME")]
    pub config_names: Vec<String>,
}

pub fn run(g: &GlobalArgs, c: &LocalCommand) -> Result<i32> {
    match c {
        LocalCommand::Create(a) => manage::create(g, a),
        LocalCommand::List(a) => manage::list(g, a),
        LocalCommand::Delete(a) => manage::delete(g, a),
        LocalCommand::Cleanup(a) => manage::cleanup(g, a),
        LocalCommand::Diff(a) => changes::diff(g, a),
        LocalCommand::Undo(a) => changes::undo(g, a),
        LocalCommand::Rollback(a) => changes::rollback(g, a),
        LocalCommand::Backup(a) => changes::backup(g, a),
        LocalCommand::InstallAptHook(a) => apt::install(g, a),
        LocalCommand::Send(a) => crate::send::run(g, a),
    }
}

/// The exit code of a local-tier error (docs/exit-codes.md).
pub fn exit_code(e: &LocalError) -> i32 {
    use LocalError as E;
    match e {
        E::NoSuchSnapshot { .. }
        | E::IncompleteSnapshot { .. }
        | E::SubvolumeMissing { .. }
        | E::NotADirectory { .. } => exit::NOT_FOUND,
        E::Protected { .. }
        | E::NotOurs { .. }
        | E::PairSplit { .. }
        | E::SubvolumeBusy { .. }
        | E::RollbackRefused { .. } => exit::REFUSED,
        E::InvalidOptions { .. } | E::PathOutsideTree { .. } => exit::USAGE,
        E::Damaged { .. } => exit::INTEGRITY,
        E::Io { cause, .. } if cause.kind() == std::io::ErrorKind::StorageFull => exit::NO_SPACE,
        E::Btrfs { cause, .. } if cause.os_error() == Some(nix::errno::Errno::ENOSPC as i32) => {
            exit::NO_SPACE
        }
        _ => exit::FAILURE,
    }
}

/// The store of configuration `name` of the config file.
pub(crate) fn open_store(g: &GlobalArgs, name: &str) -> Result<Store> {
    let cfg = g.settings.local(name)?;
    Ok(Store::open(name, cfg)?)
}

/// For `backup` of exactly a subvolume whose `[local.NAME]` has `keep_backup_snapshots`: a new
/// numbered local snapshot (description "backup", timeline cleanup) to read instead of a
/// temporary one, as (its path, NAME, number). None otherwise, and for dry runs.
pub(crate) fn keep_for_backup(
    g: &GlobalArgs,
    a: &crate::args::BackupArgs,
) -> Result<Option<(PathBuf, String, u32)>> {
    if a.paths.len() != 1 || a.dry_run || a.btrfs_snapshot == crate::args::BtrfsSnapshot::Off {
        return Ok(None);
    }
    let path = snapguard_engine::absolute_path(&a.paths[0])?;
    let Some((name, cfg)) = g
        .settings
        .local
        .iter()
        .find(|(_, c)| c.keep_backup_snapshots && c.subvolume == path)
    else {
        return Ok(None);
    };
    let store = Store::open(name, cfg)?;
    let snap = store.create(&snapguard_local::CreateOptions {
        description: "backup".into(),
        cleanup: snapguard_policy::CleanupAlgorithm::Timeline,
        ..Default::default()
    })?;
    if !g.json && !g.quiet {
        println!(
            "local snapshot {name} {} taken and kept (keep_backup_snapshots)",
            snap.number
        );
    }
    Ok(Some((snap.path.clone(), name.clone(), snap.number)))
}

/// Every configured name, or a usage error saying how to add one.
pub(crate) fn all_names(g: &GlobalArgs) -> Result<Vec<String>> {
    if g.settings.local.is_empty() {
        let file = g.settings.source.as_ref().map_or_else(
            || crate::config::DEFAULT_PATH.to_string(),
            |p| p.display().to_string(),
        );
        return Err(crate::usage!(
            "no local configuration in {file}: add a section such as\n  [local.data]\n  \
             subvolume = \"/path/to/subvolume\"\n(see docs/local.md)"
        ));
    }
    Ok(g.settings.local.keys().cloned().collect())
}

/// Snapshot numbers for a message: `3 5 7`.
pub(crate) fn numbers_text(numbers: &[u32]) -> String {
    numbers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A snapshot as JSON, with its use and size when known.
pub(crate) fn snapshot_json(s: &LocalSnapshot, st: Option<&SnapshotStatus>) -> Value {
    let mut v = json!({
        "number": s.number,
        "type": s.kind.to_string(),
        "pre_number": s.pre_number,
        "time": s.time,
        "unix": s.unix,
        "description": s.description,
        "tags": s.tags,
        "cleanup": s.cleanup.to_string(),
        "userdata": s.userdata,
        "uuid": s.uuid,
        "generation": s.generation,
        "source_uuid": s.source_uuid,
        "writable": s.writable,
        "path": s.path.display().to_string(),
    });
    if let Some(from) = &s.created_from {
        v["created_from"] = json!(from.display().to_string());
    }
    if let Some(st) = st {
        v["subvolume_id"] = json!(st.subvolume_id);
        v["mounted_at"] = json!(st
            .mounted_at
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>());
        v["default"] = json!(st.default);
        v["live"] = json!(st.live);
        v["exclusive_bytes"] = json!(st.exclusive_bytes);
    }
    v
}
