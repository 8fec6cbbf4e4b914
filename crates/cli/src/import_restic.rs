//! `import restic`: the restic repository's password, the plan, one line per snapshot.
//!
//! The restic repository is checked before any password is asked for (a wrong path is a wrong
//! path, whatever the password), then the SnapGuard repository is opened and locked, then the
//! restic repository is unlocked and its index read. Each imported snapshot is committed on its
//! own, so an interrupted run keeps what it finished and the next run continues from there.

use crate::args::{GlobalArgs, ImportResticArgs};
use crate::commands::{open, parse_compression};
use crate::{exit, render, usage};
use anyhow::{Context, Result};
use serde_json::json;
use snapguard_engine::import::IngestOptions;
use snapguard_engine::lock::LockKind;
use snapguard_restic::{plan, ImportOptions, Importer, ResticRepo, ResticSnapshot};
use std::io::IsTerminal;
use std::path::Path;
use zeroize::Zeroizing;

/// The exit code for an error of the restic side (see docs/exit-codes.md).
pub fn exit_code(e: &snapguard_restic::Error) -> i32 {
    use snapguard_restic::Error as E;
    match e {
        E::NotARepository { .. } | E::SnapGuardRepository { .. } => exit::NO_REPOSITORY,
        E::WrongPassword { .. } => exit::WRONG_PASSWORD,
        E::SnapshotNotFound { .. } | E::AmbiguousSnapshot { .. } => exit::NOT_FOUND,
        E::Unsupported { .. } => exit::NEWER_FORMAT,
        E::Corrupt { .. } => exit::INTEGRITY,
        _ => exit::FAILURE,
    }
}

/// Engine errors keep their own type (and so their exit codes); the rest stay restic errors.
fn lift(e: snapguard_restic::Error) -> anyhow::Error {
    match e {
        snapguard_restic::Error::Engine(e) => e.into(),
        other => other.into(),
    }
}

/// Remote locations restic knows; only local repositories can be imported.
const REMOTE_PREFIXES: &[&str] = &[
    "s3:", "sftp:", "rest:", "b2:", "azure:", "gs:", "swift:", "rclone:", "opendal:",
];

pub fn import_restic(g: &GlobalArgs, a: &ImportResticArgs) -> Result<i32> {
    let location = a.restic_repo.to_string_lossy();
    if let Some(p) = REMOTE_PREFIXES.iter().find(|p| location.starts_with(*p)) {
        return Err(usage!(
            "{location}: only local restic repositories can be imported, not '{p}' ones; copy the repository to a local directory first (for example with 'restic copy' or 'rclone sync')"
        ));
    }
    let compression = a
        .compression
        .as_deref()
        .map(parse_compression)
        .transpose()?;
    let path = a.restic_repo.as_path();
    snapguard_restic::check_layout(path).map_err(lift)?;
    let password = restic_password(a, path)?;

    let (mut repo, _lock) = open(g, LockKind::Shared, "import")?;
    let restic = ResticRepo::open(path, &password).map_err(lift)?;
    drop(password);
    if restic.locks() > 0 && !g.quiet {
        eprintln!(
            "warning: the restic repository at {} has {} lock file(s): a restic command may be running on it; if it is 'restic prune' or 'restic forget --prune', data may vanish while it is read (the import then fails and can be run again)",
            path.display(),
            restic.locks()
        );
    }
    if restic.snapshots().is_empty() && !g.quiet {
        eprintln!(
            "note: the restic repository at {} has no snapshots",
            path.display()
        );
    }
    let selected = restic.select(&a.snapshots).map_err(lift)?;
    let plan = plan(&repo, selected).map_err(lift)?;

    let mut skipped = Vec::new();
    for (s, id) in &plan.already {
        if !g.json && !g.quiet {
            println!(
                "restic snapshot {} ({}): already imported as snapshot {}",
                s.short_id(),
                describe(s),
                id.short()
            );
        }
        skipped.push(json!({"restic_id": s.id, "snapshot_id": id.to_hex()}));
    }

    let display = crate::progress::Display::start(g, "import", "files");
    let opts = ImportOptions {
        tags: a.tags.clone(),
        ingest: IngestOptions {
            compression,
            threads: a.threads.map(usize::from),
            dry_run: a.dry_run,
            progress: Some(display.progress.clone()),
            program_version: format!("snapguard {}", env!("CARGO_PKG_VERSION")),
            ..IngestOptions::default()
        },
    };
    let mut importer = Importer::new(&restic);
    let mut imported = Vec::new();
    let mut incomplete = 0usize;
    for (i, s) in plan.import.iter().enumerate() {
        let result = importer.import(&mut repo, s, &opts).map_err(lift);
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                drop(display);
                let done = match i {
                    _ if a.dry_run => String::new(),
                    0 => "; nothing was imported".to_string(),
                    _ => format!(
                        "; the {i} snapshot(s) imported before it are kept, and running the same command again continues with this one"
                    ),
                };
                return Err(e.context(format!(
                    "importing restic snapshot {} ({}){done}",
                    s.short_id(),
                    describe(s)
                )));
            }
        };
        let errors: Vec<_> = r.warnings.iter().filter(|w| w.error).collect();
        let notes: Vec<_> = r.warnings.iter().filter(|w| !w.error).collect();
        if !errors.is_empty() {
            incomplete += 1;
        }
        for w in &r.warnings {
            let label = if w.error { "error" } else { "note" };
            eprintln!(
                "{label}: restic snapshot {}: {}: {}",
                s.short_id(),
                w.path,
                w.message
            );
        }
        let sm = &r.summary;
        let files = sm.files_new + sm.files_unchanged;
        if !g.json && !g.quiet {
            let what = match r.snapshot_id {
                Some(id) => format!("imported as snapshot {}", id.short()),
                None => "read and checked (dry run, nothing written)".to_string(),
            };
            println!(
                "restic snapshot {} ({}): {what}: {files} file(s), {} dir(s), {} other; {} read, {} added",
                s.short_id(),
                describe(s),
                sm.dirs,
                sm.other_entries,
                render::size(sm.bytes_read),
                render::size(sm.bytes_added),
            );
        }
        imported.push(json!({
            "restic_id": s.id,
            "snapshot_id": r.snapshot_id.map(|i| i.to_hex()),
            "time": render::rfc3339(s.time),
            "hostname": s.hostname,
            "username": s.username,
            "paths": s.paths,
            "files": files,
            "files_reused": sm.files_unchanged,
            "dirs": sm.dirs,
            "other_entries": sm.other_entries,
            "bytes_read": sm.bytes_read,
            "bytes_added": sm.bytes_added,
            "bytes_stored": sm.bytes_stored,
            "duration_ms": sm.duration_ms,
            "errors": errors,
            "notes": notes,
        }));
    }
    drop(display);
    if g.json {
        crate::commands::print_json(&json!({
            "restic_repository": path,
            "restic_format_version": restic.version(),
            "dry_run": a.dry_run,
            "imported": imported,
            "skipped": skipped,
        }))?;
    } else {
        let verb = if a.dry_run {
            "would be imported (dry run)"
        } else {
            "imported"
        };
        println!(
            "{} restic snapshot(s) {verb}, {} imported earlier",
            imported.len(),
            skipped.len()
        );
    }
    if incomplete > 0 {
        eprintln!(
            "warning: {incomplete} imported snapshot(s) are incomplete (see the errors above)"
        );
        return Ok(exit::INCOMPLETE_BACKUP);
    }
    Ok(0)
}

/// "2024-01-31 12:00:00, host h, /home/me" for messages.
fn describe(s: &ResticSnapshot) -> String {
    format!(
        "{}, host {}, {}",
        render::local(s.time),
        if s.hostname.is_empty() {
            "?"
        } else {
            &s.hostname
        },
        s.paths.join(" ")
    )
}

/// The restic repository's password: --restic-password-file (RESTIC_PASSWORD_FILE),
/// --restic-password-command (RESTIC_PASSWORD_COMMAND), RESTIC_PASSWORD, or a prompt, in the
/// order restic itself uses. Like restic, the file's and the command's output are trimmed of
/// white space at both ends (and a file's byte-order mark); the variable is used as it is.
fn restic_password(a: &ImportResticArgs, repo: &Path) -> Result<Zeroizing<String>> {
    let bytes: Zeroizing<Vec<u8>> = if let Some(f) = &a.restic_password_file {
        let raw = Zeroizing::new(
            std::fs::read(f)
                .with_context(|| format!("cannot read restic password file {}", f.display()))?,
        );
        trimmed(&raw)
    } else if let Some(cmd) = &a.restic_password_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("cannot run the restic password command")?;
        let raw = Zeroizing::new(out.stdout);
        if !out.status.success() {
            anyhow::bail!(
                "the restic password command failed ({}); check --restic-password-command / RESTIC_PASSWORD_COMMAND",
                out.status
            );
        }
        trimmed(&raw)
    } else if let Some(p) = std::env::var_os("RESTIC_PASSWORD") {
        use std::os::unix::ffi::OsStringExt;
        Zeroizing::new(p.into_vec())
    } else if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!(
            "Password of the restic repository at {}: ",
            repo.display()
        ))
        .context("cannot read the password from the terminal")?;
        Zeroizing::new(p.into_bytes())
    } else {
        return Err(usage!(
            "no password for the restic repository at {}: give --restic-password-file or --restic-password-command, or set RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND or RESTIC_PASSWORD (the SnapGuard repository's own password options do not apply to it)",
            repo.display()
        ));
    };
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(Zeroizing::new(s.to_string())),
        Err(_) => Err(usage!(
            "the password for the restic repository at {} is not valid UTF-8, which the restic reader cannot use",
            repo.display()
        )),
    }
}

/// Without a byte-order mark and white space at both ends (restic's `strings.TrimSpace`);
/// bytes that are not UTF-8 are left for the caller to reject.
fn trimmed(raw: &[u8]) -> Zeroizing<Vec<u8>> {
    match std::str::from_utf8(raw) {
        Ok(s) => Zeroizing::new(s.trim_start_matches('\u{feff}').trim().as_bytes().to_vec()),
        Err(_) => Zeroizing::new(raw.to_vec()),
    }
}
