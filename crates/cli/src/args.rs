//! Command-line arguments (clap). The names here are a public interface: other tools and the
//! daemon call them, so keep them stable.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "snapguard",
    version,
    about = "Encrypted, deduplicating snapshot and backup manager for Linux"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Repository location: a local path, s3:https://HOST[:PORT]/BUCKET[/PREFIX] or
    /// sftp:[USER@]HOST[:PORT]/PATH (see docs/remote.md). Default:
    /// $XDG_DATA_HOME/snapguard/repository.
    #[arg(
        short = 'r',
        long = "repo",
        env = "SNAPGUARD_REPOSITORY",
        global = true
    )]
    pub repo: Option<String>,
    /// Read the password from this file (first line).
    #[arg(long, env = "SNAPGUARD_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password.
    #[arg(long, env = "SNAPGUARD_PASSWORD_COMMAND", global = true)]
    pub password_command: Option<String>,
    /// Unlock with a key file (a key-file slot) instead of a password.
    #[arg(long, env = "SNAPGUARD_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Limit writes to the repository to this many MiB/s (overrides [limits] upload).
    #[arg(long, global = true, value_name = "MIB_PER_S", value_parser = crate::config::parse_rate)]
    pub limit_upload: Option<f64>,
    /// Remote repositories: at most this many requests in flight at once.
    #[arg(long, env = "SNAPGUARD_CONNECTIONS", global = true, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: u16,
    /// S3: address the bucket as https://BUCKET.HOST/ (virtual-host style) instead of
    /// https://HOST/BUCKET/ (path style, the default).
    /// The variable counts as set unless it is empty, 0, false, no, off or n.
    #[arg(long, env = "SNAPGUARD_S3_VIRTUAL_HOST", global = true,
          value_parser = clap::builder::FalseyValueParser::new())]
    pub s3_virtual_host: bool,
    /// SFTP: log in with this private key (ssh -i) instead of the agent and ~/.ssh.
    #[arg(long, env = "SNAPGUARD_SFTP_KEY", global = true, value_name = "FILE")]
    pub sftp_key: Option<PathBuf>,
    /// SFTP: how to treat the server's host key: strict (it must be in known_hosts, the
    /// default), add (accept and remember a new host, refuse a changed one) or accept (any).
    #[arg(long, env = "SNAPGUARD_SFTP_KNOWN_HOSTS", global = true, value_name = "POLICY",
          value_parser = ["strict", "add", "accept"])]
    pub sftp_known_hosts: Option<String>,
    /// Read settings from this TOML file instead of /etc/snapguard/config.toml (see docs/config.md).
    #[arg(long, env = "SNAPGUARD_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep the index in memory instead of the on-disk index cache (which lives under
    /// SNAPGUARD_CACHE_DIR, default $XDG_CACHE_HOME/snapguard). Uses memory in proportion to
    /// the repository's blob count.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Send the command to the running daemon instead of opening the repository (`restore`
    /// and `jobs`; see docs/daemon.md): users in [daemon] allow_users restore their own files.
    /// The variable counts as set unless it is empty, 0, false, no, off or n.
    #[arg(long = "daemon", env = "SNAPGUARD_USE_DAEMON", global = true,
          value_parser = clap::builder::FalseyValueParser::new())]
    pub use_daemon: bool,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors and the final result.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More log output (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The settings of the configuration file (not an option: `main` fills it in from the file
    /// that `config` names, after parsing), here so that every command can reach them.
    #[arg(skip)]
    pub settings: crate::config::Config,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository.
    Init(InitArgs),
    /// Back up files and directories into a new snapshot.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// List the contents of a snapshot.
    Ls(LsArgs),
    /// Restore a snapshot, a folder or one file.
    Restore(RestoreArgs),
    /// Write one file of a snapshot to standard output.
    Dump(DumpArgs),
    /// Compare a live directory with a snapshot (content and metadata).
    Verify(VerifyArgs),
    /// Show what changed between two snapshots.
    Diff(DiffArgs),
    /// Every distinct version of a file or directory across snapshots, each with the command
    /// that restores it.
    Versions(VersionsArgs),
    /// Which snapshots contain paths matching a glob, with sizes and times.
    Find(FindArgs),
    /// Browse every snapshot, tag, host and path history in a read-only FUSE filesystem.
    Mount(MountArgs),
    /// Write a snapshot, a folder or one file of it as a tar or zip archive.
    Export(ExportArgs),
    /// Create a snapshot from an archive.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Print a decrypted repository object as JSON (for debugging).
    Cat(CatArgs),
    /// Show sizes, deduplication and compression ratios.
    Stats(StatsArgs),
    /// Remove snapshots by id or by a retention policy.
    Forget(ForgetArgs),
    /// Add or remove tags of a snapshot (without rewriting it).
    Tag(TagArgs),
    /// Set a snapshot's comment.
    Annotate(AnnotateArgs),
    /// Make a snapshot immutable until a time.
    Lock(LockArgs),
    /// S3 Object Lock maintenance: 'object-lock refresh' keeps every object a restore needs
    /// retained (docs/remote.md, "Object lock").
    #[command(subcommand)]
    ObjectLock(crate::object_lock::ObjectLockCommand),
    /// Rebuild the index from the packs, or save what is left of damaged snapshots.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Switch the repository to append-only mode (refuse every deletion, for every client).
    AppendOnly,
    /// Verify the repository's structure and, optionally, its data.
    Check(CheckArgs),
    /// Copy snapshots into another repository (local, s3: or sftp:), skipping what it has.
    Copy(crate::copy::CopyArgs),
    /// Remove data no snapshot uses; repack mostly-unused packs.
    Prune(PruneArgs),
    /// Remove stale locks (left by crashed processes).
    Unlock(UnlockArgs),
    /// Manage key slots (passwords and key files).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Local btrfs snapshots of the subvolumes configured in [local.NAME] sections: create,
    /// list, delete, diff, undo, rollback, cleanup, backup, the apt hook.
    #[command(subcommand)]
    Local(crate::local::LocalCommand),
    /// OverlayFS live mode: try changes on top of a local snapshot, then discard them or
    /// commit them as a new snapshot (docs/live.md).
    Live(crate::live::LiveArgs),
    /// Accounts of the daemon's web UI and API (add, list, passwd, remove, disable, enable).
    User(crate::user::UserArgs),
    /// Run the [jobs.NAME] of the configuration file on their schedules (in the foreground).
    Daemon(crate::daemon::DaemonArgs),
    /// The daemon's job runs, newest first; `jobs log ID` prints one run's task log.
    Jobs(crate::daemon::JobsArgs),
}

#[derive(Args, Debug)]
pub struct KdfArgs {
    /// Argon2id memory in KiB for the new password slot (default 65536).
    #[arg(long)]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id iterations for the new password slot (default 3).
    #[arg(long)]
    pub kdf_iterations: Option<u32>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// AEAD cipher for everything in the repository.
    #[arg(long, default_value = "aes-256-gcm", value_parser = ["aes-256-gcm", "chacha20-poly1305"])]
    pub cipher: String,
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Create the repository append-only: no client may delete or rewrite anything.
    #[arg(long)]
    pub append_only: bool,
    #[command(flatten)]
    pub object_lock: crate::object_lock::ObjectLockArgs,
    /// Target size of pack files in MiB (1-1024; default 16, see BENCHMARKS.md).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pack_size: Option<u32>,
    /// Average chunk size in KiB, a power of two from 64 to 8192 (default 1024; chunks are
    /// between half and eight times this). Fixed for the repository's life.
    #[arg(long, value_name = "KIB", value_parser = parse_chunk_kib)]
    pub chunk_size: Option<u32>,
    /// Use the key material, cipher and chunk size of this existing repository (opened with
    /// --from-password-file, --from-password-command, --from-key-file or
    /// SNAPGUARD_FROM_PASSWORD), so that 'snapguard copy' between the two moves sealed data
    /// without re-encrypting it (docs/copy.md). The new repository gets its own password.
    #[arg(long, value_name = "REPO", conflicts_with_all = ["cipher", "chunk_size"])]
    pub copy_keys_from: Option<String>,
    /// With --copy-keys-from: read that repository's password from this file.
    #[arg(
        long,
        env = "SNAPGUARD_FROM_PASSWORD_FILE",
        value_name = "FILE",
        requires = "copy_keys_from"
    )]
    pub from_password_file: Option<PathBuf>,
    /// With --copy-keys-from: run this command to get that repository's password.
    #[arg(
        long,
        env = "SNAPGUARD_FROM_PASSWORD_COMMAND",
        value_name = "COMMAND",
        requires = "copy_keys_from"
    )]
    pub from_password_command: Option<String>,
    /// With --copy-keys-from: unlock that repository with this key file.
    #[arg(
        long,
        env = "SNAPGUARD_FROM_KEY_FILE",
        value_name = "FILE",
        requires = "copy_keys_from"
    )]
    pub from_key_file: Option<PathBuf>,
}

fn parse_chunk_kib(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(k) if k.is_power_of_two() && (64..=8192).contains(&k) => Ok(k),
        _ => Err(format!(
            "{s:?} is not a valid chunk size: give a power of two from 64 to 8192 (KiB)"
        )),
    }
}

#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    /// Files and directories to back up.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Hostname to record (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// Snapshot time to record, RFC 3339 (default: now).
    #[arg(long)]
    pub time: Option<String>,
    /// Exclude paths matching this glob (repeatable).
    #[arg(long = "exclude")]
    pub excludes: Vec<String>,
    /// Read exclude globs from this file, one per line (repeatable).
    #[arg(long = "exclude-file")]
    pub exclude_files: Vec<PathBuf>,
    /// Skip the contents of directories tagged with CACHEDIR.TAG.
    #[arg(long)]
    pub exclude_caches: bool,
    /// Do not cross filesystem boundaries.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Read everything but write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Re-read every file even if the parent snapshot says it is unchanged.
    #[arg(long)]
    pub force: bool,
    /// Compression threads (default: one per CPU core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Compare against this snapshot instead of the latest one of this host and these paths.
    #[arg(long)]
    pub parent: Option<String>,
    /// Limit reading of the files being backed up to this many MiB/s (overrides [limits] read).
    #[arg(long, value_name = "MIB_PER_S", value_parser = crate::config::parse_rate)]
    pub limit_read: Option<f64>,
    /// Compression of new data: off, fast (zstd 1), auto (zstd 3, the default), max (zstd 19),
    /// or a zstd level 1-22. Incompressible chunks are always stored as they are.
    #[arg(long)]
    pub compression: Option<String>,
    /// Paths on btrfs: read them from a read-only snapshot of their subvolume taken first, so
    /// the backup is one point in time (auto: when possible, else warn and read the live
    /// files; require: fail instead; off: read the live files).
    #[arg(long, value_enum, default_value_t = BtrfsSnapshot::Auto, value_name = "WHEN")]
    pub btrfs_snapshot: BtrfsSnapshot,
    /// Do not use btrfs generations to skip unchanged files: compare each one with the parent
    /// by stat (slower on large trees; for troubleshooting and benchmarks).
    #[arg(long)]
    pub no_btrfs_generations: bool,
}

/// `backup --btrfs-snapshot`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BtrfsSnapshot {
    Auto,
    Off,
    Require,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Only snapshots with this tag (repeatable: any of them).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots of this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots that include this path.
    #[arg(long)]
    pub path: Option<std::ffi::OsString>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot: 'latest', an id or a unique prefix of at least 4 hex digits.
    pub snapshot: String,
    /// Only this path and what is below it.
    pub path: Option<std::ffi::OsString>,
    /// Long listing: mode, owner, size, time.
    #[arg(short = 'l', long)]
    pub long: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// SNAPSHOT or SNAPSHOT:PATH (a folder's contents or one file).
    pub snapshot: std::ffi::OsString,
    /// Directory to restore into.
    #[arg(short, long)]
    pub target: PathBuf,
    /// Only restore paths matching this glob (repeatable).
    #[arg(long = "include")]
    pub includes: Vec<String>,
    /// Do not restore paths matching this glob (repeatable).
    #[arg(long = "exclude")]
    pub excludes: Vec<String>,
    /// Show what would be restored without writing anything.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// After restoring, re-read everything and prove it equals the snapshot.
    #[arg(long, conflicts_with = "dry_run")]
    pub verify: bool,
    /// What to do with entries that already exist in the target: keep those whose content
    /// already equals the snapshot's (if-changed), replace all (always), or touch none (never).
    #[arg(long, value_enum, default_value_t = OverwriteArg::IfChanged, value_name = "WHEN")]
    pub overwrite: OverwriteArg,
    /// Also delete what the restored directories hold and the snapshot does not (see
    /// docs/restore.md for what is never deleted).
    #[arg(long)]
    pub delete: bool,
    /// Do not ask before restoring into the original location (or into /).
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// With --daemon: the daemon's control socket.
    #[arg(long, env = "SNAPGUARD_DAEMON_SOCKET", default_value = crate::control::DEFAULT_SOCKET,
          value_name = "PATH")]
    pub socket: PathBuf,
}

/// `restore --overwrite`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverwriteArg {
    Never,
    IfChanged,
    Always,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    pub snapshot: String,
    /// Absolute path of the file in the snapshot.
    pub path: std::ffi::OsString,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    pub snapshot1: String,
    pub snapshot2: String,
}

/// Which snapshots `versions` and `find` look at (all of them by default).
#[derive(Args, Debug)]
pub struct HistoryFilterArgs {
    /// Only snapshots of this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots with this tag (repeatable: any of them).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots taken at or after this time: RFC 3339, or a local date and time
    /// (2026-01-31, 2026-01-31 14:00, 2026-01-31 14:00:05).
    #[arg(long, value_name = "TIME")]
    pub newer: Option<String>,
    /// Only snapshots taken before this time (same forms as --newer).
    #[arg(long, value_name = "TIME")]
    pub older: Option<String>,
}

#[derive(Args, Debug)]
pub struct VersionsArgs {
    /// The file or directory, as 'ls' shows it: absolute, as it was backed up (a relative
    /// path is taken from the current directory).
    pub path: std::ffi::OsString,
    /// Tell versions apart by metadata too: every change of mode, owner, mtime or extended
    /// attributes (ACLs) starts a new version. By default only content changes do.
    #[arg(long)]
    pub all: bool,
    /// The target directory written into the printed restore commands.
    #[arg(long, value_name = "DIR", default_value = "./restored")]
    pub target: PathBuf,
    #[command(flatten)]
    pub filter: HistoryFilterArgs,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    /// A glob as for --exclude: '*.pdf' matches a name anywhere, '/home/*/notes.txt' a whole
    /// absolute path, 'src/*.rs' or '**/Cargo.toml' the end of a path; '*' stays within one
    /// component, '**' crosses them.
    pub pattern: String,
    /// Only this snapshot (repeatable): 'latest', an id or a unique prefix.
    #[arg(long = "snapshot", value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: HistoryFilterArgs,
}

#[derive(Args, Debug)]
pub struct MountArgs {
    /// An empty directory to mount on. The command runs until the filesystem is unmounted
    /// (Ctrl-C, SIGTERM, or 'fusermount3 -u MOUNTPOINT').
    pub mountpoint: PathBuf,
    /// Let every user of this machine browse the mount; the kernel then enforces each file's
    /// mode, owner and ACLs. Without it only you (and root) can enter it. A normal user needs
    /// 'user_allow_other' in /etc/fuse.conf for this.
    #[arg(long)]
    pub allow_other: bool,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    /// config, snapshot, tree, index, key or pack.
    #[arg(value_parser = ["config", "snapshot", "tree", "index", "key", "pack"])]
    pub kind: String,
    /// Object id (snapshots also accept 'latest' and prefixes).
    pub id: Option<String>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Only this snapshot (default: all).
    pub snapshot: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// List key slots.
    List,
    /// Add a key slot: a new password (SNAPGUARD_NEW_PASSWORD, --new-password-file or a prompt) or a key file.
    Add(KeyAddArgs),
    /// Remove a key slot (never the last one).
    Remove {
        /// Slot id or unique prefix.
        id: String,
    },
    /// Change the password of the slot used to open the repository.
    Passwd(KeyNewSecretArgs),
}

#[derive(Args, Debug)]
pub struct KeyAddArgs {
    /// Create a key-file slot with this file (generated with 32 random bytes if it does not exist).
    #[arg(long)]
    pub new_key_file: Option<PathBuf>,
    /// A label for the slot.
    #[arg(long, default_value = "added")]
    pub label: String,
    #[command(flatten)]
    pub secret: KeyNewSecretArgs,
}

#[derive(Args, Debug)]
pub struct KeyNewSecretArgs {
    /// Read the new password from this file.
    #[arg(long)]
    pub new_password_file: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove all locks, also those of operations that may still be running.
    #[arg(long)]
    pub remove_all: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Print the plan (every pack to delete or repack, with the reason) and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub options: PruneOptionArgs,
}

/// Prune settings, shared by `prune` and `forget --prune`.
#[derive(Args, Debug)]
pub struct PruneOptionArgs {
    /// Repack until at most this percentage of stored bytes is unused.
    #[arg(long, default_value_t = 5.0)]
    pub max_unused: f64,
    /// Rewrite at most this much data by repacking (e.g. 500M, 2G).
    #[arg(long)]
    pub max_repack_size: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Also read and verify every blob of every pack.
    #[arg(long)]
    pub read_data: bool,
    /// Read only a subset: "N%" (random sample) or "n/m" (slice n of m; m runs cover everything).
    #[arg(long, conflicts_with_all = ["read_data", "read_data_since"])]
    pub read_data_subset: Option<String>,
    /// Read only packs not verified within this duration (e.g. 30d), per the local ledger.
    #[arg(long, conflicts_with = "read_data")]
    pub read_data_since: Option<String>,
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to forget (ids, prefixes or 'latest').
    pub snapshots: Vec<String>,
    #[arg(long)]
    pub keep_last: Option<u32>,
    #[arg(long)]
    pub keep_hourly: Option<u32>,
    #[arg(long)]
    pub keep_daily: Option<u32>,
    #[arg(long)]
    pub keep_weekly: Option<u32>,
    #[arg(long)]
    pub keep_monthly: Option<u32>,
    #[arg(long)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot newer than this (e.g. 30d, 1y6m).
    #[arg(long)]
    pub keep_within: Option<String>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long = "keep-tag")]
    pub keep_tags: Vec<String>,
    /// Apply the policy per group of snapshots: any of host, paths, tags ("" = one group).
    #[arg(long, default_value = "host,paths")]
    pub group_by: String,
    /// Run prune afterwards.
    #[arg(long)]
    pub prune: bool,
    /// Print every snapshot with keep/remove and the reasons; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Prune options (with --prune).
    #[command(flatten)]
    pub prune_options: PruneOptionArgs,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub snapshot: String,
    #[arg(long = "add")]
    pub add: Vec<String>,
    #[arg(long = "remove")]
    pub remove: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AnnotateArgs {
    pub snapshot: String,
    /// The comment (an empty string clears it).
    #[arg(long)]
    pub comment: String,
}

#[derive(Args, Debug)]
pub struct LockArgs {
    pub snapshot: String,
    /// Immutable until this time (RFC 3339).
    #[arg(long, conflicts_with = "for_")]
    pub until: Option<String>,
    /// Immutable for this long from now (e.g. 30d, 1y).
    #[arg(long = "for")]
    pub for_: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the headers of every pack.
    Index,
    /// Write repaired copies of snapshots that refer to lost data (originals are kept).
    Snapshots {
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Snapshot: 'latest', an id or a unique prefix.
    pub snapshot: String,
    /// The directory or file to compare; its absolute path names the same path in the snapshot.
    pub path: PathBuf,
    /// Read every file, even those whose size, times and inode match the snapshot.
    #[arg(long)]
    pub read_all: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// SNAPSHOT or SNAPSHOT:PATH (a folder's contents, or one file).
    pub snapshot: std::ffi::OsString,
    /// The archive to write, or '-' for standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// tar (POSIX pax with every attribute; the default) or zip (for other systems; see
    /// docs/export-import.md for what it cannot carry). Default: zip if FILE ends in .zip.
    #[arg(long, value_parser = ["tar", "zip"])]
    pub format: Option<String>,
    /// tar: also record inode numbers, devices and link counts (star's SCHILY.ino, SCHILY.dev,
    /// SCHILY.nlink, which GNU tar reports as unknown keywords), so that 'snapguard import tar'
    /// of the archive reproduces the snapshot's tree exactly.
    #[arg(long)]
    pub inode_numbers: bool,
}

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Create a snapshot from a tar archive (GNU tar, pax, star, 'borg export-tar',
    /// 'snapguard export'), keeping every attribute it carries.
    Tar(ImportTarArgs),
    /// Recreate the snapshots of a restic repository (times, hosts, paths, tags and every file
    /// attribute restic records), oldest first; snapshots imported before are skipped.
    Restic(ImportResticArgs),
}

#[derive(Args, Debug)]
pub struct ImportResticArgs {
    /// The restic repository: a local directory (see docs/import-restic.md).
    pub restic_repo: PathBuf,
    /// Read the restic repository's password from this file (first line).
    #[arg(long, env = "RESTIC_PASSWORD_FILE", value_name = "FILE")]
    pub restic_password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the restic repository's password.
    #[arg(
        long,
        env = "RESTIC_PASSWORD_COMMAND",
        value_name = "COMMAND",
        conflicts_with = "restic_password_file"
    )]
    pub restic_password_command: Option<String>,
    /// Import only this restic snapshot (an id, a unique prefix, or 'latest'; repeatable).
    /// Default: all.
    #[arg(long = "snapshot", value_name = "ID")]
    pub snapshots: Vec<String>,
    /// Add this tag to every imported snapshot (repeatable), besides restic's own tags.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Compression of new data, as for backup: off, fast, auto, max or a zstd level 1-22.
    #[arg(long)]
    pub compression: Option<String>,
    /// Compression threads (default: one per CPU core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Read and check everything that would be imported, but write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ImportTarArgs {
    /// The archive, or '-' for standard input (decompress compressed archives first, e.g.
    /// 'zstd -dc x.tar.zst | snapguard import tar -').
    pub file: PathBuf,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Snapshot time to record, RFC 3339 (default: now).
    #[arg(long)]
    pub time: Option<String>,
    /// Hostname to record (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// The absolute path in the snapshot under which the archive's entries go.
    #[arg(long, default_value = "/")]
    pub path: std::ffi::OsString,
    /// Compression of new data, as for backup: off, fast, auto, max or a zstd level 1-22.
    #[arg(long)]
    pub compression: Option<String>,
    /// Compression threads (default: one per CPU core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Read and check the whole archive but write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}
