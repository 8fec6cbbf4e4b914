//! One function per subcommand: parse → call the engine → render. Returns the exit code.

use crate::args::*;
use crate::exit;
use crate::render::{self, lossy};
use crate::secrets;
use anyhow::{bail, Context, Result};
use serde_json::json;
use snapguard_backend::{
    Backend, LocalBackend, OpendalBackend, RemoteOptions, S3Config, SftpConfig,
};
use snapguard_crypto::Cipher;
use snapguard_engine::browse::{self, Change};
use snapguard_engine::lock::{LockGuard, LockKind, LockOwner};
use snapguard_engine::metacache::MetaCache;
use snapguard_engine::verify::VerifyOptions;
use snapguard_engine::{filter, BackupOptions, InitOptions, Repository};
use snapguard_format::{SnapshotFile, SnapshotId};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

/// The repository location from -r / SNAPGUARD_REPOSITORY, or the default; writes limited by
/// --limit-upload or the config file's `[limits] upload`.
pub fn backend(g: &GlobalArgs) -> Result<Arc<dyn Backend>> {
    let loc = match &g.repo {
        Some(r) => r.clone(),
        None => default_repo()?.display().to_string(),
    };
    let local = loc.strip_prefix("local:").unwrap_or(&loc).to_string();
    for scheme in ["rest:", "http:", "https:"] {
        if loc.starts_with(scheme) {
            bail!("repository URL {loc:?}: the {scheme} backend is not available in this version; use a local path, s3: or sftp:");
        }
    }
    let backend: Arc<dyn Backend> = if let Some(rest) = loc.strip_prefix("s3:") {
        Arc::new(s3_backend(g, rest)?)
    } else if let Some(rest) = loc.strip_prefix("sftp:") {
        Arc::new(sftp_backend(g, rest)?)
    } else {
        Arc::new(LocalBackend::new(local))
    };
    let backend = crate::backend_stats::counted(backend);
    Ok(
        match crate::config::rate_limiter(g.limit_upload, g.settings.limits.upload) {
            Some(limit) => Arc::new(snapguard_backend::ThrottledBackend::new(backend, limit)),
            None => backend,
        },
    )
}

fn remote_options(g: &GlobalArgs) -> RemoteOptions {
    RemoteOptions {
        connections: usize::from(g.connections),
        ..RemoteOptions::default()
    }
}

/// An S3 repository: region from AWS_REGION or AWS_DEFAULT_REGION (default us-east-1);
/// credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else OpenDAL's chain (AWS_PROFILE
/// and the ~/.aws files).
fn s3_backend(g: &GlobalArgs, rest: &str) -> Result<OpendalBackend> {
    let mut cfg = S3Config::parse(rest).map_err(|e| crate::UsageError(e.to_string()))?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(region) = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")) {
        cfg.region = region;
    }
    cfg.virtual_host_style = g.s3_virtual_host;
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        cfg.access_key_id = Some(id);
        cfg.secret_access_key = Some(secret);
    }
    Ok(OpendalBackend::s3(&cfg, &remote_options(g))?)
}

/// An SFTP repository through the system's ssh (keys from the agent and ~/.ssh).
fn sftp_backend(g: &GlobalArgs, rest: &str) -> Result<OpendalBackend> {
    let mut cfg = SftpConfig::parse(rest).map_err(|e| crate::UsageError(e.to_string()))?;
    cfg.key = g.sftp_key.as_ref().map(|k| k.display().to_string());
    cfg.known_hosts_strategy = g.sftp_known_hosts.clone();
    Ok(OpendalBackend::sftp(&cfg, &remote_options(g))?)
}

fn default_repo() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(
            std::env::var_os("HOME").context("HOME is not set; give the repository with -r")?,
        )
        .join(".local/share"),
    };
    Ok(base.join("snapguard/repository"))
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

pub fn username() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Open the repository, asking for a password only once we know it exists and is readable;
/// take a lock for `operation`, then load the index (in that order: see lock.rs).
pub fn open(g: &GlobalArgs, kind: LockKind, operation: &str) -> Result<(Repository, LockGuard)> {
    let mut repo = unlock_repository(g, operation)?;
    let guard = repo.lock(kind, operation, &owner())?;
    repo.load_index()?;
    for e in repo.index_errors() {
        eprintln!("warning: {e}; the blobs it lists are unavailable until 'snapguard repair index' rebuilds it");
    }
    Ok((repo, guard))
}

/// Unlock the repository and set up its caches for `operation`, without a lock or the index
/// (the daemon's web API takes a session of it per request).
pub fn unlock_repository(g: &GlobalArgs, operation: &str) -> Result<Repository> {
    let b = backend(g)?;
    snapguard_engine::probe(&*b)?;
    let secrets = secrets::opening_secrets(g)?;
    let mut repo = Repository::open(b, &secrets)?;
    if !g.no_cache {
        repo.set_cache_dir(
            crate::maintenance::cache_dir()
                .map(|d| d.join(repo.config().repo_id.to_hex()).join("index")),
        );
    }
    if is_remote(g) {
        repo.set_read_parallelism(usize::from(g.connections));
    }
    if !g.no_cache && is_remote(g) && !FRESH_READS.contains(&operation) {
        repo.set_meta_cache(
            crate::maintenance::cache_dir()
                .map(|d| MetaCache::new(d.join(repo.config().repo_id.to_hex()).join("meta"), true)),
        );
    }
    Ok(repo)
}

/// Operations that must read snapshots and trees from the repository itself, not from the
/// metadata cache: they exist to find what is damaged or missing there.
const FRESH_READS: &[&str] = &["check", "repair"];

/// Whether the repository is remote (`s3:`, `sftp:`): only those get a metadata cache, since
/// reading a local repository is as fast as reading the cache (docs/remote.md).
fn is_remote(g: &GlobalArgs) -> bool {
    g.repo
        .as_deref()
        .is_some_and(|r| r.starts_with("s3:") || r.starts_with("sftp:"))
}

/// Print a backup's or import's warnings on stderr ("error: PATH: …" for entries that are
/// missing from the snapshot, "note: …" otherwise); returns how many were errors.
pub(crate) fn print_warnings(warnings: &[snapguard_engine::BackupWarning]) -> usize {
    for w in warnings {
        let label = if w.error { "error" } else { "note" };
        eprintln!("{label}: {}: {}", w.path, w.message);
    }
    warnings.iter().filter(|w| w.error).count()
}

pub fn owner() -> LockOwner {
    LockOwner {
        hostname: hostname(),
        username: username(),
    }
}

pub(crate) fn print_json(v: &serde_json::Value) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(0)
}

pub fn init(g: &GlobalArgs, a: &InitArgs) -> Result<i32> {
    let b = backend(g)?;
    let cipher = Cipher::from_name(&a.cipher).context("unknown cipher")?;
    crate::object_lock::prepare_init(&*b, &a.object_lock)?;
    let secret = secrets::init_secret(g)?;
    let opts = InitOptions {
        cipher,
        kdf: secrets::kdf_params(&a.kdf),
        now: render::now(),
        hostname: hostname(),
        username: username(),
        compression_level: 3,
        pack_target_size: a.pack_size.unwrap_or(16) << 20,
        chunk_avg: a.chunk_size.map(|k| k << 10),
        append_only: a.append_only,
    };
    let repo = match &a.copy_keys_from {
        Some(from) => crate::copy::init_sharing_keys(g, a, from, b, &secret, &opts)?,
        None => Repository::init(b, &secret, &opts)?,
    };
    if g.json {
        return print_json(&json!({
            "location": repo.location(),
            "repository_id": repo.config().repo_id.to_hex(),
            "cipher": repo.cipher().name(),
            "key_slot": repo.opened_slot().to_hex(),
            "object_lock": crate::object_lock::describe(&repo),
        }));
    }
    if !g.quiet {
        println!(
            "created repository {} at {} (cipher {})",
            repo.config().repo_id.short(),
            repo.location(),
            repo.cipher().name()
        );
        if let Some(d) = crate::object_lock::describe(&repo) {
            println!("{d}");
        }
        println!("keep the password safe: without it the data cannot be recovered");
    }
    Ok(0)
}

pub fn backup(g: &GlobalArgs, a: &BackupArgs) -> Result<i32> {
    if let Some((snap, name, number)) = crate::local::keep_for_backup(g, a)? {
        // The subvolume's `[local.NAME]` keeps backup snapshots: read a numbered one, tagged
        // like `local backup` tags them.
        let mut a = a.clone();
        a.tags.push(format!("local:{name}:{number}"));
        return backup_reading(g, &a, Some((snap, name, number)));
    }
    backup_reading(g, a, None)
}

/// `backup`; with `local` = (snapshot path, config, number), `local backup`: the one path of
/// `a` is read from that local-tier snapshot and recorded as it is.
pub(crate) fn backup_reading(
    g: &GlobalArgs,
    a: &BackupArgs,
    local: Option<(PathBuf, String, u32)>,
) -> Result<i32> {
    let (mut repo, _lock) = open(g, LockKind::Shared, "backup")?;
    let mut excludes = a.excludes.clone();
    for f in &a.exclude_files {
        excludes.extend(filter::read_pattern_file(f)?);
    }
    let parent = match &a.parent {
        Some(p) => Some(repo.find_snapshot(p)?.0),
        None => None,
    };
    let opts = BackupOptions {
        paths: a.paths.clone(),
        tags: a.tags.clone(),
        hostname: a.host.clone().unwrap_or_else(hostname),
        username: username(),
        time: match &a.time {
            Some(t) => render::parse_time(t)?,
            None => render::now(),
        },
        excludes,
        exclude_caches: a.exclude_caches,
        one_file_system: a.one_file_system,
        dry_run: a.dry_run,
        parent,
        force: a.force,
        compression: a
            .compression
            .as_deref()
            .map(parse_compression)
            .transpose()?,
        threads: a.threads.map(usize::from),
        progress: None,
        read_limit: crate::config::rate_limiter(a.limit_read, g.settings.limits.read),
        program_version: format!("snapguard {}", env!("CARGO_PKG_VERSION")),
        btrfs: match a.btrfs_snapshot {
            BtrfsSnapshot::Auto => snapguard_engine::BtrfsMode::Auto,
            BtrfsSnapshot::Off => snapguard_engine::BtrfsMode::Off,
            BtrfsSnapshot::Require => snapguard_engine::BtrfsMode::Require,
        },
        read_from: local.as_ref().map(|l| l.0.clone()),
        local_snapshot: local.map(|l| (l.1, l.2)),
        no_generations: a.no_btrfs_generations,
    };
    let display = crate::progress::Display::start(g, "backup", "files");
    let opts = BackupOptions {
        progress: Some(display.progress.clone()),
        ..opts
    };
    let r = snapguard_engine::backup(&mut repo, &opts);
    drop(display);
    let r = r?;
    let errors = print_warnings(&r.warnings);
    let s = &r.summary;
    if g.json {
        print_json(&json!({
            "snapshot_id": r.snapshot_id.map(|i| i.to_hex()),
            "parent": r.parent.map(|i| i.to_hex()),
            "dry_run": a.dry_run,
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_unchanged": s.files_unchanged,
            "dirs": s.dirs,
            "other_entries": s.other_entries,
            "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added,
            "bytes_stored": s.bytes_stored,
            "blobs_added": s.blobs_added,
            "btrfs_snapshots": r.btrfs_snapshots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "unchanged_by_generation": r.unchanged_by_generation,
            "duration_ms": s.duration_ms,
            "errors": r.warnings.iter().filter(|w| w.error).collect::<Vec<_>>(),
            "notes": r.warnings.iter().filter(|w| !w.error).collect::<Vec<_>>(),
        }))?;
    } else {
        if !g.quiet {
            println!(
                "Files:     {} new, {} changed, {} unchanged",
                s.files_new, s.files_changed, s.files_unchanged
            );
            println!("Dirs:      {}   other entries: {}", s.dirs, s.other_entries);
            for p in &r.btrfs_snapshots {
                println!("btrfs:     {} read from a read-only snapshot", p.display());
            }
            if r.unchanged_by_generation > 0 {
                println!(
                    "           {} entries unchanged by btrfs generation (not even stat'ed)",
                    r.unchanged_by_generation
                );
            }
            println!(
                "Data:      {} read, {} added ({} stored after compression and encryption)",
                render::size(s.bytes_read),
                render::size(s.bytes_added),
                render::size(s.bytes_stored)
            );
            println!("Duration:  {:.2} s", s.duration_ms as f64 / 1000.0);
        }
        match r.snapshot_id {
            Some(id) => println!("snapshot {} saved", id.short()),
            None => println!("dry run: nothing was written"),
        }
    }
    if errors > 0 {
        eprintln!(
            "warning: {errors} item(s) could not be read; the snapshot is incomplete (see above)"
        );
        return Ok(exit::INCOMPLETE_BACKUP);
    }
    Ok(0)
}

/// `--compression off|fast|auto|max|LEVEL`.
pub fn parse_compression(s: &str) -> Result<snapguard_engine::CompressionChoice> {
    use snapguard_engine::CompressionChoice::{Level, Off};
    Ok(match s {
        "off" | "none" => Off,
        "fast" => Level(1),
        "auto" => Level(3),
        "max" => Level(19),
        n => match n.parse::<i32>() {
            Ok(l) if (1..=22).contains(&l) => Level(l),
            _ => {
                return Err(crate::usage!(
                    "invalid compression {s:?}: use off, fast, auto, max or a zstd level 1-22"
                ))
            }
        },
    })
}

/// The snapshot filters of `snapshots` and `copy`: any of `tags` (none: all), the host, and a
/// path among the snapshot's paths (trailing slashes ignored).
pub(crate) fn view_matches(
    v: &snapguard_engine::annotate::SnapshotView,
    tags: &[String],
    host: Option<&str>,
    path: Option<&std::ffi::OsStr>,
) -> bool {
    let tag_ok = tags.is_empty() || v.tags.iter().any(|t| tags.contains(t));
    let host_ok = host.is_none_or(|h| v.snapshot.hostname == h);
    let path_ok = path.is_none_or(|p| {
        let mut want = p.as_bytes();
        while want.len() > 1 && want.ends_with(b"/") {
            want = &want[..want.len() - 1];
        }
        v.snapshot.paths.iter().any(|x| x.as_slice() == want)
    });
    tag_ok && host_ok && path_ok
}

pub fn snapshots(g: &GlobalArgs, a: &SnapshotsArgs) -> Result<i32> {
    let (repo, _lock) = open(g, LockKind::Shared, "snapshots")?;
    let (all, damaged) = snapguard_engine::annotate::views(&repo)?;
    let list: Vec<snapguard_engine::annotate::SnapshotView> = all
        .into_iter()
        .filter(|v| view_matches(v, &a.tags, a.host.as_deref(), a.path.as_deref()))
        .collect();
    if g.json {
        print_json(&json!(list
            .iter()
            .map(render::view_json)
            .collect::<Vec<_>>()))?;
        return damaged_snapshots(&damaged);
    }
    let now = render::now();
    println!(
        "{:<10} {:<20} {:<16} {:<20} Paths",
        "ID", "Time", "Host", "Tags"
    );
    for v in &list {
        let s = &v.snapshot;
        println!(
            "{:<10} {:<20} {:<16} {:<20} {}",
            v.id.short(),
            render::local(s.time),
            s.hostname,
            v.tags.join(","),
            s.display_paths().join(" ")
        );
        if let Some(c) = &v.comment {
            println!("{:<10} comment: {c}", "");
        }
        if v.locked_at(now) {
            println!(
                "{:<10} immutable until {}",
                "",
                v.lock_until.map(render::local).unwrap_or_default()
            );
        }
    }
    println!("{} snapshot(s)", list.len());
    damaged_snapshots(&damaged)
}

/// Report snapshots that could not be read; exit code 14 if there are any.
fn damaged_snapshots(damaged: &[snapguard_engine::Error]) -> Result<i32> {
    for e in damaged {
        eprintln!("error: {e}; run 'snapguard check'");
    }
    Ok(if damaged.is_empty() {
        0
    } else {
        exit::INTEGRITY
    })
}

pub fn ls(g: &GlobalArgs, a: &LsArgs) -> Result<i32> {
    let (repo, _lock) = open(g, LockKind::Shared, "ls")?;
    let (id, snap) = repo.find_snapshot(&a.snapshot)?;
    let path = a.path.clone().unwrap_or_else(|| "/".into());
    let mut entries = Vec::new();
    let mut out = std::io::stdout().lock();
    browse::walk(&repo, &snap, path.as_bytes(), &mut |p, n| {
        if g.json {
            entries.push(render::node_json(p, n));
        } else if a.long {
            let owner = n.user.clone().unwrap_or_else(|| n.uid.to_string());
            let group = n.group.clone().unwrap_or_else(|| n.gid.to_string());
            let target = if n.link_target.is_empty() {
                String::new()
            } else {
                format!(" -> {}", lossy(&n.link_target))
            };
            let _ = writeln!(
                out,
                "{} {:>8} {:>8} {:>12} {} {}{}",
                render::mode_string(n),
                owner,
                group,
                n.size,
                render::local(n.mtime),
                lossy(p),
                target
            );
        } else {
            let _ = writeln!(out, "{}", lossy(p));
        }
        Ok(())
    })
    .map_err(|e| name_snapshot(e, &id))?;
    if g.json {
        return print_json(&json!({"snapshot": id.to_hex(), "entries": entries}));
    }
    Ok(0)
}

/// Put the snapshot's id into "path not found" errors (the engine does not know it).
pub(crate) fn name_snapshot(
    e: snapguard_engine::Error,
    id: &SnapshotId,
) -> snapguard_engine::Error {
    match e {
        snapguard_engine::Error::PathNotFound { path, .. } => {
            snapguard_engine::Error::PathNotFound {
                path,
                snapshot: id.short(),
            }
        }
        other => other,
    }
}

/// Split `SNAPSHOT[:PATH]` (the path may be any bytes).
pub(crate) fn split_spec(spec: &std::ffi::OsStr) -> Result<(String, Vec<u8>)> {
    let bytes = spec.as_bytes();
    let (snap, path) = match bytes.iter().position(|&b| b == b':') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &b""[..]),
    };
    let snap = std::str::from_utf8(snap)
        .with_context(|| format!("invalid snapshot id {:?}", lossy(snap)))?;
    let path = if path.is_empty() {
        b"/".to_vec()
    } else {
        path.to_vec()
    };
    Ok((snap.to_string(), path))
}

pub fn verify(g: &GlobalArgs, a: &VerifyArgs) -> Result<i32> {
    let (repo, _lock) = open(g, LockKind::Shared, "verify")?;
    let (id, snap) = repo.find_snapshot(&a.snapshot)?;
    let abs = snapguard_engine::absolute_path(&a.path)?;
    let opts = VerifyOptions {
        read_all: a.read_all,
        ..Default::default()
    };
    let target = if fsmeta_is_dir(&abs) {
        abs.clone()
    } else {
        abs.parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| abs.clone())
    };
    let report =
        snapguard_engine::verify::verify(&repo, &snap, abs.as_os_str().as_bytes(), &target, &opts)
            .map_err(|e| name_snapshot(e, &id))?;
    if g.json {
        print_json(
            &json!({"snapshot": id.to_hex(), "path": abs, "identical": report.differences.is_empty(), "report": report}),
        )?;
    } else {
        for d in &report.differences {
            println!("differs: {}: {}", d.path, d.what);
        }
        if !g.quiet {
            println!(
                "compared {} entries with snapshot {}: {} file(s) read ({}), {} unchanged file(s) trusted by size, times and inode",
                report.entries,
                id.short(),
                report.files_read,
                render::size(report.bytes_read),
                report.files_trusted
            );
        }
        if report.differences.is_empty() {
            println!("{} is identical to the snapshot", abs.display());
        }
    }
    Ok(if report.differences.is_empty() {
        0
    } else {
        exit::DIFFERS
    })
}

fn fsmeta_is_dir(p: &std::path::Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.is_dir())
        .unwrap_or(false)
}

pub fn dump(g: &GlobalArgs, a: &DumpArgs) -> Result<i32> {
    let (repo, _lock) = open(g, LockKind::Shared, "dump")?;
    let (id, snap) = repo.find_snapshot(&a.snapshot)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    browse::dump(&repo, &snap, a.path.as_bytes(), &mut out).map_err(|e| name_snapshot(e, &id))?;
    Ok(0)
}

pub fn diff(g: &GlobalArgs, a: &DiffArgs) -> Result<i32> {
    let (repo, _lock) = open(g, LockKind::Shared, "diff")?;
    let (ida, sa) = repo.find_snapshot(&a.snapshot1)?;
    let (idb, sb) = repo.find_snapshot(&a.snapshot2)?;
    let mut changes = Vec::new();
    let mut counts = [0u64; 4];
    browse::diff(&repo, &sa, &sb, &mut |p, c, n| {
        counts[c as usize] += 1;
        changes.push((lossy(p), c, render::kind_name(n.kind)));
    })?;
    if g.json {
        return print_json(&json!({
            "from": ida.to_hex(), "to": idb.to_hex(),
            "changes": changes.iter().map(|(p, c, k)| json!({"path": p, "change": c, "type": k})).collect::<Vec<_>>(),
        }));
    }
    for (p, c, k) in &changes {
        let suffix = if *k == "dir" { "/" } else { "" };
        println!("{}    {p}{suffix}", c.symbol());
    }
    println!(
        "{} added, {} removed, {} modified, {} metadata only  (U = metadata-only change)",
        counts[Change::Added as usize],
        counts[Change::Removed as usize],
        counts[Change::Modified as usize],
        counts[Change::Metadata as usize]
    );
    Ok(0)
}

pub fn cat(g: &GlobalArgs, a: &CatArgs) -> Result<i32> {
    let (repo, _lock) = open(g, LockKind::Shared, "cat")?;
    let need_id = || {
        a.id.clone()
            .with_context(|| format!("'cat {}' needs an id", a.kind))
    };
    let v = match a.kind.as_str() {
        "config" => {
            let c = repo.config();
            json!({"repository_id": c.repo_id.to_hex(), "created": render::rfc3339(c.created), "cipher": repo.cipher().name(),
                   "chunker": {"min": c.chunker_min, "avg": c.chunker_avg, "max": c.chunker_max},
                   "pack_target_size": c.pack_target_size, "compression_level": c.compression_level,
                   "format_version": snapguard_format::FORMAT_VERSION})
        }
        "snapshot" => {
            let (id, s) = repo.find_snapshot(&need_id()?)?;
            render::snapshot_json(&id, &s)
        }
        "tree" => {
            let id = snapguard_format::TreeId::from_hex(&need_id()?)?;
            let t = repo.read_tree(&id)?;
            json!({"id": id.to_hex(), "nodes": t.nodes.iter().map(|n| render::node_json(&n.name, n)).collect::<Vec<_>>()})
        }
        "index" => {
            let name = need_id()?;
            let idx = repo.read_index(&name)?;
            json!({
                "packs": idx.packs.iter().map(|p| json!({
                    "id": p.id.to_hex(), "size": p.size, "epoch": p.epoch, "cipher_code": p.cipher_code,
                    "blobs": p.blobs.iter().map(render::pack_blob_json).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "supersedes": idx.supersedes.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
            })
        }
        "key" => return crate::keys::cat(&repo, &need_id()?),
        "pack" => {
            let id = snapguard_format::PackId::from_hex(&need_id()?)?;
            let blobs = repo.read_pack_header(&id)?;
            json!(blobs.iter().map(render::pack_blob_json).collect::<Vec<_>>())
        }
        other => bail!("unknown object kind {other}"),
    };
    print_json(&v)
}

pub fn stats(g: &GlobalArgs, a: &StatsArgs) -> Result<i32> {
    let (repo, _lock) = open(g, LockKind::Shared, "stats")?;
    let snaps: Vec<SnapshotFile> = match &a.snapshot {
        Some(s) => vec![repo.find_snapshot(s)?.1],
        None => repo.list_snapshots()?.into_iter().map(|(_, s)| s).collect(),
    };
    let s = browse::stats(&repo, &snaps)?;
    if g.json {
        return print_json(&serde_json::to_value(&s)?);
    }
    println!("Snapshots:          {}", s.snapshots);
    println!("Files, dirs:        {}, {}", s.files, s.dirs);
    println!("Logical size:       {}", render::size(s.logical_size));
    println!(
        "Unique data:        {} in {} blobs",
        render::size(s.unique_raw_size),
        s.unique_blobs
    );
    println!("Stored size:        {}", render::size(s.stored_size));
    println!("Dedup ratio:        {:.2}x", s.dedup_ratio);
    println!("Compression ratio:  {:.2}x", s.compression_ratio);
    Ok(0)
}

pub fn unlock(g: &GlobalArgs, a: &UnlockArgs) -> Result<i32> {
    let b = backend(g)?;
    snapguard_engine::probe(&*b)?;
    let secrets = secrets::opening_secrets(g)?;
    let repo = Repository::open(b, &secrets)?;
    let removed = snapguard_engine::lock::remove_locks(
        repo.backend(),
        repo.crypt(),
        &hostname(),
        a.remove_all,
    )?;
    if g.json {
        return print_json(&json!(removed
            .iter()
            .map(|l| json!({"id": l.id.to_hex(), "hostname": l.lock.hostname, "pid": l.lock.pid,
                            "operation": l.lock.operation, "exclusive": l.lock.exclusive, "stale": l.stale}))
            .collect::<Vec<_>>()));
    }
    for l in &removed {
        println!(
            "removed {} lock {} of {} on {} (pid {}, {})",
            if l.stale { "stale" } else { "active" },
            l.id.short(),
            l.lock.username,
            l.lock.hostname,
            l.lock.pid,
            l.lock.operation
        );
    }
    let left = snapguard_engine::lock::list_locks(repo.backend(), repo.crypt(), &hostname())?;
    if !left.is_empty() && !g.quiet {
        println!("{} lock(s) held by running operations were kept (use --remove-all only if you are sure they are gone)", left.len());
    }
    Ok(0)
}
