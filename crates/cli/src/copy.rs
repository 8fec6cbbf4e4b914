//! `snapguard copy`: copy snapshots into another repository, and `init --copy-keys-from`.

use crate::args::{GlobalArgs, InitArgs};
use crate::commands::{self, print_json};
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use snapguard_engine::copy::{self, CopyMode, CopyOptions, CopyReport};
use snapguard_engine::lock::{LockGuard, LockKind};
use snapguard_engine::{Repository, Secret};
use snapguard_format::{SnapshotFile, SnapshotId};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use zeroize::Zeroizing;

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Snapshots to copy: 'latest', ids or unique prefixes of at least 4 hex digits (default:
    /// every snapshot that passes the filters).
    pub snapshots: Vec<String>,
    /// The repository to copy into: a local path, s3:… or sftp:… (see docs/copy.md).
    #[arg(long, env = "SNAPGUARD_TO_REPOSITORY", value_name = "REPO")]
    pub to: String,
    /// Read the target repository's password from this file (first line).
    #[arg(long, env = "SNAPGUARD_TO_PASSWORD_FILE", value_name = "FILE")]
    pub to_password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the target repository's password.
    #[arg(long, env = "SNAPGUARD_TO_PASSWORD_COMMAND", value_name = "COMMAND")]
    pub to_password_command: Option<String>,
    /// Unlock the target repository with a key file.
    #[arg(long, env = "SNAPGUARD_TO_KEY_FILE", value_name = "FILE")]
    pub to_key_file: Option<PathBuf>,
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

/// Where the secrets of a second repository come from (`--to-…` for copy, `--from-…` for
/// `init --copy-keys-from`), mirroring the source repository's options.
pub struct OtherSecrets<'a> {
    pub key_file: Option<&'a PathBuf>,
    pub password_file: Option<&'a PathBuf>,
    pub password_command: Option<&'a str>,
    /// The environment variable holding the password (SNAPGUARD_TO_PASSWORD, …).
    pub env: &'static str,
    /// How to call the repository in messages and the prompt ("target", "source").
    pub role: &'static str,
    /// The option prefix, for messages ("--to", "--from").
    pub option: &'static str,
}

fn first_line(mut v: Vec<u8>) -> Zeroizing<Vec<u8>> {
    if let Some(pos) = v.iter().position(|&b| b == b'\n') {
        v.truncate(pos);
        if v.last() == Some(&b'\r') {
            v.pop();
        }
    }
    Zeroizing::new(v)
}

impl OtherSecrets<'_> {
    fn secrets(&self) -> Result<Vec<Secret>> {
        let mut out = Vec::new();
        if let Some(kf) = self.key_file {
            let bytes = std::fs::read(kf).with_context(|| {
                format!("cannot read the {} key file {}", self.role, kf.display())
            })?;
            out.push(Secret::KeyFile(Zeroizing::new(bytes)));
        }
        if let Some(f) = self.password_file {
            let bytes = std::fs::read(f).with_context(|| {
                format!(
                    "cannot read the {} password file {}",
                    self.role,
                    f.display()
                )
            })?;
            out.push(Secret::Password(first_line(bytes)));
        } else if let Some(c) = self.password_command {
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(c)
                .stderr(std::process::Stdio::inherit())
                .output()
                .with_context(|| format!("cannot run the {} password command", self.role))?;
            if !o.status.success() {
                bail!(
                    "the {} password command failed ({}); check {}-password-command",
                    self.role,
                    o.status,
                    self.option
                );
            }
            out.push(Secret::Password(first_line(o.stdout)));
        } else if let Ok(p) = std::env::var(self.env) {
            out.push(Secret::Password(Zeroizing::new(p.into_bytes())));
        }
        if out.is_empty() {
            if std::io::stdin().is_terminal() {
                let p = rpassword::prompt_password(format!(
                    "Password of the {} repository: ",
                    self.role
                ))
                .context("cannot read the password from the terminal")?;
                out.push(Secret::Password(Zeroizing::new(p.into_bytes())));
            } else {
                bail!(
                    "no password given for the {} repository: set {}, or use {o}-password-file, {o}-password-command or {o}-key-file, or run on a terminal to be asked",
                    self.role,
                    self.env,
                    o = self.option
                );
            }
        }
        Ok(out)
    }
}

/// Open a second repository at `location` with the remote options of `g`, lock it, and load
/// its index (the same steps, in the same order, as `commands::open`).
fn open_other(
    g: &GlobalArgs,
    location: &str,
    secrets: &OtherSecrets,
    kind: LockKind,
    operation: &str,
) -> Result<(Repository, LockGuard)> {
    let mut g2 = g.clone();
    g2.repo = Some(location.to_string());
    let backend = commands::backend(&g2)?;
    snapguard_engine::probe(&*backend)
        .with_context(|| format!("the {} repository {location}", secrets.role))?;
    let secrets_list = secrets.secrets()?;
    let mut repo = Repository::open(backend, &secrets_list)
        .with_context(|| format!("cannot open the {} repository {location}", secrets.role))?;
    let guard = repo
        .lock(kind, operation, &commands::owner())
        .with_context(|| format!("cannot lock the {} repository {location}", secrets.role))?;
    if !g.no_cache {
        repo.set_cache_dir(
            crate::maintenance::cache_dir()
                .map(|d| d.join(repo.config().repo_id.to_hex()).join("index")),
        );
    }
    repo.load_index()?;
    for e in repo.index_errors() {
        eprintln!("warning: {} repository: {e}; the blobs it lists are unavailable until 'snapguard repair index' rebuilds it", secrets.role);
    }
    Ok((repo, guard))
}

/// The snapshots to copy, oldest first. `--host`, `--tag` and `--path` are applied first;
/// `latest` is then the newest snapshot that passes them (as restic's `latest` with filters),
/// and every explicit argument must select a snapshot that passes them (exit 15 otherwise).
fn select(repo: &Repository, a: &CopyArgs) -> Result<Vec<(SnapshotId, SnapshotFile)>> {
    let (views, damaged) = snapguard_engine::annotate::views(repo)?;
    for e in &damaged {
        eprintln!("warning: {e}; it cannot be copied (run 'snapguard check')");
    }
    // Oldest first (as listed), filtered.
    let matching: Vec<_> = views
        .into_iter()
        .filter(|v| crate::commands::view_matches(v, &a.tags, a.host.as_deref(), a.path.as_deref()))
        .collect();
    if a.snapshots.is_empty() {
        return Ok(matching.into_iter().map(|v| (v.id, v.snapshot)).collect());
    }
    let not_found = |spec: &str| snapguard_engine::Error::SnapshotNotFound {
        spec: format!("{spec}{}", filters_text(a)),
    };
    let mut wanted = HashSet::new();
    for spec in &a.snapshots {
        let id = if spec == "latest" {
            matching
                .last()
                .map(|v| v.id)
                .ok_or_else(|| not_found(spec))?
        } else {
            let id = repo.find_snapshot(spec)?.0;
            if !matching.iter().any(|v| v.id == id) {
                return Err(not_found(spec).into());
            }
            id
        };
        wanted.insert(id);
    }
    Ok(matching
        .into_iter()
        .filter(|v| wanted.contains(&v.id))
        .map(|v| (v.id, v.snapshot))
        .collect())
}

/// The filters given, as options (" --host web-1 --tag daily"), for messages.
fn filters_text(a: &CopyArgs) -> String {
    let mut out = String::new();
    if let Some(h) = &a.host {
        out.push_str(&format!(" --host {h}"));
    }
    for t in &a.tags {
        out.push_str(&format!(" --tag {t}"));
    }
    if let Some(p) = &a.path {
        out.push_str(&format!(" --path {}", p.to_string_lossy()));
    }
    out
}

pub fn copy(g: &GlobalArgs, a: &CopyArgs) -> Result<i32> {
    let (src, _src_lock) = commands::open(g, LockKind::Shared, "copy")?;
    let selected = select(&src, a)?;
    let to = OtherSecrets {
        key_file: a.to_key_file.as_ref(),
        password_file: a.to_password_file.as_ref(),
        password_command: a.to_password_command.as_deref(),
        env: "SNAPGUARD_TO_PASSWORD",
        role: "target",
        option: "--to",
    };
    let (mut dst, _dst_lock) = open_other(g, &a.to, &to, LockKind::Shared, "copy")?;
    if src.config().repo_id == dst.config().repo_id {
        return Err(crate::usage!(
            "{} and {} are the same repository (id {}), or one is a file-for-file copy of the other; give another repository with --to (a replica made with 'init --copy-keys-from' has its own id)",
            src.location(),
            dst.location(),
            src.config().repo_id.short()
        ));
    }
    let display = crate::progress::Display::start(g, "copy", "snapshots");
    let opts = CopyOptions {
        progress: Some(display.progress.clone()),
        ..CopyOptions::default()
    };
    let report = copy::copy(&src, &mut dst, &selected, &opts);
    drop(display);
    render(g, &src, &dst, &selected, &report?)
}

fn render(
    g: &GlobalArgs,
    src: &Repository,
    dst: &Repository,
    selected: &[(SnapshotId, SnapshotFile)],
    r: &CopyReport,
) -> Result<i32> {
    let s = &r.stats;
    if g.json {
        return print_json(&json!({
            "source": src.location(),
            "target": dst.location(),
            "mode": r.mode.name(),
            "selected": selected.len(),
            "copied": r.copied.iter().map(|c| json!({
                "source": c.source.to_hex(),
                "target": c.target.to_hex(),
                "annotations": c.annotations,
            })).collect::<Vec<_>>(),
            "skipped": r.skipped.iter().map(|c| json!({
                "source": c.source.to_hex(),
                "existing": c.existing.to_hex(),
                "annotations": c.annotations,
            })).collect::<Vec<_>>(),
            "blobs_copied": s.blobs_copied,
            "bytes_copied": s.bytes_copied,
            "blobs_skipped": s.blobs_skipped,
            "packs_verbatim": s.packs_verbatim,
            "blobs_resealed": s.blobs_resealed,
            "packs_adopted": s.packs_adopted,
            "packs_written": s.packs_written,
            "bytes_uploaded": s.bytes_uploaded,
            "trees_rewritten": s.trees_rewritten,
            "index_files": s.index_files,
        }));
    }
    if g.quiet {
        return Ok(0);
    }
    let (a, b) = (src.config(), dst.config());
    if r.mode == CopyMode::Reencrypt
        && !r.copied.is_empty()
        && (a.chunker_min, a.chunker_avg, a.chunker_max)
            != (b.chunker_min, b.chunker_avg, b.chunker_max)
    {
        eprintln!(
            "note: the repositories use different chunk sizes ({} KiB and {} KiB on average): chunks were copied as they are, so new backups into {} deduplicate against the copies only where chunks happen to be equal",
            a.chunker_avg >> 10,
            b.chunker_avg >> 10,
            dst.location()
        );
    }
    for c in &r.skipped {
        let extra = if c.annotations > 0 {
            format!(" ({} new annotations copied)", c.annotations)
        } else {
            String::new()
        };
        println!(
            "skipped snapshot {}: {} already has it as {}{extra}",
            c.source.short(),
            dst.location(),
            c.existing.short()
        );
    }
    for c in &r.copied {
        println!(
            "copied snapshot {} to {} as {}",
            c.source.short(),
            dst.location(),
            c.target.short()
        );
    }
    let how = match r.mode {
        CopyMode::SameKeys => format!(
            "same keys, nothing re-encrypted: {} pack(s) copied whole, {} blob(s) resealed into {} new pack(s)",
            s.packs_verbatim, s.blobs_resealed, s.packs_written
        ),
        CopyMode::Reencrypt => format!(
            "different keys, re-encrypted: {} tree(s) rewritten, {} new pack(s)",
            s.trees_rewritten, s.packs_written
        ),
    };
    println!(
        "{} of {} snapshot(s) copied, {} skipped; {} blob(s) ({}) copied, {} already present; {} uploaded ({how})",
        r.copied.len(),
        selected.len(),
        r.skipped.len(),
        s.blobs_copied,
        crate::render::size(s.bytes_copied),
        s.blobs_skipped,
        crate::render::size(s.bytes_uploaded),
    );
    if s.packs_adopted > 0 {
        println!(
            "{} pack(s) uploaded by an interrupted copy were indexed instead of uploaded again",
            s.packs_adopted
        );
    }
    Ok(0)
}

/// `init --copy-keys-from REPO`: a new repository with the same key material as REPO.
pub fn init_sharing_keys(
    g: &GlobalArgs,
    a: &InitArgs,
    from: &str,
    target: std::sync::Arc<dyn snapguard_backend::Backend>,
    secret: &Secret,
    opts: &snapguard_engine::InitOptions,
) -> Result<Repository> {
    let secrets = OtherSecrets {
        key_file: a.from_key_file.as_ref(),
        password_file: a.from_password_file.as_ref(),
        password_command: a.from_password_command.as_deref(),
        env: "SNAPGUARD_FROM_PASSWORD",
        role: "source",
        option: "--from",
    };
    let mut g2 = g.clone();
    g2.repo = Some(from.to_string());
    let backend = commands::backend(&g2)?;
    snapguard_engine::probe(&*backend)
        .with_context(|| format!("the repository to copy keys from, {from}"))?;
    let from_repo = Repository::open(backend, &secrets.secrets()?)
        .with_context(|| format!("cannot open {from} to copy its keys"))?;
    Ok(Repository::init_sharing_keys(
        target, secret, opts, &from_repo,
    )?)
}
