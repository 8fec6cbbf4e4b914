//! The `snapguard` command: parses arguments, gets secrets, calls the engine, renders results.
//! All real work happens in `snapguard-engine`; this crate only knows clap and the terminal.

mod args;
mod backend_stats;
mod commands;
mod config;
mod control;
mod copy;
mod daemon;
mod daemon_restore;
mod desktop;
mod history;
mod import_restic;
mod keys;
mod live;
mod local;
mod maintenance;
mod mount;
mod notify;
mod object_lock;
mod progress;
mod render;
mod restore;
mod retention;
mod secrets;
mod send;
mod transfer;
mod user;
mod web;

use args::{Cli, Command};
use clap::Parser;
use snapguard_engine::Error as EngineError;

/// Exit codes (documented in README.md and docs/exit-codes.md).
pub mod exit {
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const INCOMPLETE_BACKUP: i32 = 3;
    pub const NO_REPOSITORY: i32 = 10;
    pub const LOCKED: i32 = 11;
    pub const WRONG_PASSWORD: i32 = 12;
    pub const NEWER_FORMAT: i32 = 13;
    pub const INTEGRITY: i32 = 14;
    pub const NOT_FOUND: i32 = 15;
    pub const PARTIAL_RESTORE: i32 = 16;
    pub const NO_SPACE: i32 = 17;
    pub const TARGET_NOT_WRITABLE: i32 = 18;
    pub const REFUSED: i32 = 19;
    pub const DIFFERS: i32 = 20;
}

/// A bad option value (exit code 2, like clap's own usage errors).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `Err(usage!("..."))`: a usage error with a formatted message.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => { anyhow::Error::new($crate::UsageError(format!($($arg)*))) };
}

fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some()
            || cause
                .downcast_ref::<snapguard_policy::PolicyError>()
                .is_some()
        {
            return exit::USAGE;
        }
        if let Some(e) = cause.downcast_ref::<snapguard_local::Error>() {
            return local::exit_code(e);
        }
        if let Some(e) = cause.downcast_ref::<snapguard_restic::Error>() {
            return import_restic::exit_code(e);
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            return match e {
                EngineError::RepositoryNotFound { .. } => exit::NO_REPOSITORY,
                EngineError::WrongPassword { .. } => exit::WRONG_PASSWORD,
                EngineError::Locked { .. } => exit::LOCKED,
                EngineError::NewerFormat { .. } => exit::NEWER_FORMAT,
                EngineError::Corrupt { .. } => exit::INTEGRITY,
                EngineError::SnapshotNotFound { .. }
                | EngineError::AmbiguousSnapshot { .. }
                | EngineError::PathNotFound { .. }
                | EngineError::PathInNoSnapshot { .. } => exit::NOT_FOUND,
                EngineError::NoSpace { .. } => exit::NO_SPACE,
                EngineError::TargetNotWritable { .. } => exit::TARGET_NOT_WRITABLE,
                EngineError::InvalidArgument(_) => exit::USAGE,
                EngineError::Immutable { .. }
                | EngineError::AppendOnly { .. }
                | EngineError::ObjectLocked { .. } => exit::REFUSED,
                EngineError::ObjectLockUnavailable { .. } => exit::USAGE,
                EngineError::Backend {
                    cause: snapguard_backend::BackendError::RetentionLocked { .. },
                    ..
                } => exit::REFUSED,
                EngineError::Backend {
                    cause: snapguard_backend::BackendError::NoSpace { .. },
                    ..
                } => exit::NO_SPACE,
                _ => exit::FAILURE,
            };
        }
    }
    exit::FAILURE
}

fn init_logging(g: &args::GlobalArgs) {
    let level = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SNAPGUARD_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "snapguard={level},snapguard_engine={level}"
            ))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Die quietly on a closed pipe (`snapguard ls latest | head`), like every Unix tool, instead of
/// panicking in `println!`. Rust ignores SIGPIPE by default; restoring the default disposition
/// needs `signal(2)`, which is the one unsafe call in SnapGuard (no memory is involved).
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: SIG_DFL installs no handler, so no Rust code runs in signal context.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
}

fn main() {
    default_sigpipe();
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    init_logging(&cli.global);
    // The config file is read before any command runs, so a broken file is reported at once
    // (exit code 2), whatever the command. Not for `--daemon`: the client needs nothing from
    // it, and the system's file may be readable by root only while any listed user may ask.
    let result = if cli.global.use_daemon {
        run(&cli)
    } else {
        config::load(cli.global.config.as_deref()).and_then(|settings| {
            settings.apply_repository(&mut cli.global);
            cli.global.settings = settings;
            run(&cli)
        })
    };
    backend_stats::write_if_requested();
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let code = exit_code(&e);
            eprintln!("snapguard: error: {e:#}");
            std::process::exit(code);
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<i32> {
    let g = &cli.global;
    if g.use_daemon {
        return daemon_restore::through_daemon(g, &cli.command);
    }
    match &cli.command {
        Command::Init(a) => commands::init(g, a),
        Command::Backup(a) => commands::backup(g, a),
        Command::Snapshots(a) => commands::snapshots(g, a),
        Command::Ls(a) => commands::ls(g, a),
        Command::Restore(a) => restore::restore(g, a),
        Command::Dump(a) => commands::dump(g, a),
        Command::Diff(a) => commands::diff(g, a),
        Command::Versions(a) => history::versions(g, a),
        Command::Find(a) => history::find(g, a),
        Command::Mount(a) => mount::mount(g, a),
        Command::Export(a) => transfer::export(g, a),
        Command::Import(c) => transfer::import(g, c),
        Command::Verify(a) => commands::verify(g, a),
        Command::Cat(a) => commands::cat(g, a),
        Command::Stats(a) => commands::stats(g, a),
        Command::Check(a) => maintenance::check(g, a),
        Command::Forget(a) => retention::forget(g, a),
        Command::Tag(a) => retention::tag(g, a),
        Command::Annotate(a) => retention::annotate(g, a),
        Command::Lock(a) => retention::lock(g, a),
        Command::ObjectLock(c) => object_lock::run(g, c),
        Command::Repair(r) => maintenance::repair(g, r),
        Command::AppendOnly => maintenance::append_only(g),
        Command::Copy(a) => copy::copy(g, a),
        Command::Prune(a) => maintenance::prune(g, a),
        Command::Unlock(a) => commands::unlock(g, a),
        Command::Key(k) => keys::run(g, k),
        Command::Local(c) => local::run(g, c),
        Command::Live(a) => live::run(g, a),
        Command::User(a) => user::run(g, a),
        Command::Daemon(a) => daemon::daemon(g, a),
        Command::Jobs(a) => daemon::jobs(g, a),
    }
}
