//! `local diff`, `local undo`, `local rollback` and `local backup`: the commands that compare
//! or bring back the contents of snapshots.

use super::{open_store, snapshot_json, DiffArgs, LocalBackupArgs, RollbackArgs, UndoArgs};
use crate::args::GlobalArgs;
use crate::commands::print_json;
use crate::{exit, usage};
use anyhow::Result;
use serde_json::json;
use snapguard_local::diff::{self, DiffOptions};
use snapguard_local::rollback::{self, RollbackKind, RollbackMode};
use snapguard_local::Store;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// The tree of snapshot `id` (0: the live subvolume, as in Snapper).
fn tree(store: &Store, id: u32) -> Result<PathBuf> {
    if id == 0 {
        return Ok(store.subvolume().to_path_buf());
    }
    Ok(store.get(id)?.path)
}

/// The snapshot directory relative to the subvolume, when it lies inside it.
fn snapshot_dir_rel(store: &Store) -> Option<PathBuf> {
    store
        .snapshot_dir()
        .strip_prefix(store.subvolume())
        .ok()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
}

/// The user's paths relative to the subvolume: absolute ones must lie in it (the live path),
/// relative ones are taken as they are. The subvolume itself (or `.`) is the empty path.
fn relative_paths(store: &Store, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let rel = if p.is_absolute() {
            p.strip_prefix(store.subvolume())
                .map_err(|_| {
                    usage!(
                        "{} is not inside the subvolume {} of config {}; give paths in it, or \
                         relative to it",
                        p.display(),
                        store.subvolume().display(),
                        store.name()
                    )
                })?
                .to_path_buf()
        } else {
            p.clone()
        };
        if rel.components().any(|c| c == Component::ParentDir) {
            return Err(usage!("{}: paths with '..' are not accepted", p.display()));
        }
        out.push(
            rel.components()
                .filter(|c| *c != Component::CurDir)
                .collect(),
        );
    }
    Ok(out)
}

/// The part of the trees to compare: the user's paths, with the snapshot directory left out
/// (a path above it is replaced by its other entries), because the live subvolume holds the
/// snapshot subvolume where a snapshot holds an empty placeholder: comparing, let alone
/// undoing, that would change the snapshot directory. `None`: nothing to compare.
fn scope(store: &Store, paths: &[PathBuf], trees: &[&Path]) -> Result<Option<Vec<PathBuf>>> {
    let mut user = relative_paths(store, paths)?;
    // The subvolume itself stands for everything.
    if user.iter().any(|p| p.as_os_str().is_empty()) {
        user.clear();
    }
    let Some(snapdir) = snapshot_dir_rel(store) else {
        return Ok(Some(user));
    };
    let wanted = if user.is_empty() {
        vec![PathBuf::new()]
    } else {
        user
    };
    let mut out = Vec::new();
    let mut touched = false;
    for p in wanted {
        if p.starts_with(&snapdir) {
            return Err(usage!(
                "{} is in the snapshot directory {}, which diff and undo leave alone",
                store.subvolume().join(&p).display(),
                store.snapshot_dir().display()
            ));
        }
        if !snapdir.starts_with(&p) {
            out.push(p);
            continue;
        }
        touched = true;
        // Every entry beside the snapshot directory's path, from `p` down to it.
        let mut prefix = p.clone();
        for c in snapdir.strip_prefix(&p).unwrap_or(&snapdir).components() {
            let mut names = BTreeSet::new();
            for t in trees {
                if let Ok(rd) = std::fs::read_dir(t.join(&prefix)) {
                    names.extend(rd.flatten().map(|e| e.file_name()));
                }
            }
            names.remove(c.as_os_str());
            out.extend(names.into_iter().map(|n| prefix.join(n)));
            prefix.push(c);
        }
    }
    Ok(if touched && out.is_empty() {
        None
    } else {
        Some(out)
    })
}

pub fn diff(g: &GlobalArgs, a: &DiffArgs) -> Result<i32> {
    let store = open_store(g, &a.config)?;
    let (old, new) = (tree(&store, a.id1)?, tree(&store, a.id2)?);
    let changes = match scope(&store, &a.paths, &[&old, &new])? {
        None => Vec::new(),
        Some(paths) => diff::diff(&old, &new, &DiffOptions { paths })?,
    };
    let live = |rel: &Path| store.subvolume().join(rel);
    if g.json {
        let list: Vec<serde_json::Value> = changes
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                v["live_path"] = json!(live(&c.path).display().to_string());
                v
            })
            .collect();
        return print_json(&json!(list));
    }
    for c in &changes {
        println!("{} {}", c.status, live(&c.path).display());
    }
    Ok(0)
}

pub fn undo(g: &GlobalArgs, a: &UndoArgs) -> Result<i32> {
    let store = open_store(g, &a.config)?;
    if a.id1 == 0 {
        return Err(usage!(
            "the first snapshot of undo is the state to go back to; 0 (the live subvolume) \
             makes no sense there: give 'local undo {} N 0' to revert what changed since N",
            a.config
        ));
    }
    let (old, new) = (tree(&store, a.id1)?, tree(&store, a.id2)?);
    let report = match scope(&store, &a.paths, &[&old, &new])? {
        None => snapguard_local::undo::UndoReport::default(),
        Some(paths) => snapguard_local::undo::undo(&old, &new, store.subvolume(), &paths)?,
    };
    let live = |rel: &Path| store.subvolume().join(rel).display().to_string();
    if g.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        for p in &report.removed {
            println!("removed  {}", live(p));
        }
        for p in &report.created {
            println!("restored {}", live(p));
        }
        for p in &report.modified {
            println!("reverted {}", live(p));
        }
        if !g.quiet {
            println!(
                "undo {}..{} of {}: {} removed, {} restored, {} reverted, {} failed",
                a.id1,
                a.id2,
                a.config,
                report.removed.len(),
                report.created.len(),
                report.modified.len(),
                report.failed.len()
            );
        }
    }
    for f in &report.failed {
        eprintln!("error: {}: {}", live(&f.path), f.error);
    }
    if !report.is_complete() {
        eprintln!(
            "warning: {} entries were not reverted exactly (see above)",
            report.failed.len()
        );
        return Ok(exit::PARTIAL_RESTORE);
    }
    Ok(0)
}

pub fn rollback(g: &GlobalArgs, a: &RollbackArgs) -> Result<i32> {
    if a.resume {
        let cfg = g.settings.local(&a.config)?;
        return match rollback::resume(&a.config, cfg)? {
            None => {
                if g.json {
                    return print_json(&json!({"config": a.config, "resumed": false}));
                }
                println!("config {}: no interrupted rollback to finish", a.config);
                Ok(0)
            }
            Some((n, moved)) => {
                if g.json {
                    return print_json(&json!({
                        "config": a.config,
                        "resumed": true,
                        "restored": n,
                        "moved": moved.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    }));
                }
                println!(
                    "config {}: finished the interrupted rollback: {} holds snapshot {n}",
                    a.config,
                    cfg.subvolume.display()
                );
                Ok(0)
            }
        };
    }
    let id =
        a.id.ok_or_else(|| usage!("give the snapshot number to roll back to"))?;
    let store = open_store(g, &a.config)?;
    let mode = if a.set_default {
        RollbackMode::SetDefault
    } else {
        RollbackMode::Auto
    };
    let out = rollback::rollback(&store, id, mode)?;
    match &out.how {
        RollbackKind::InPlace { moved, set_aside } => {
            if g.json {
                return print_json(&json!({
                    "config": a.config,
                    "mode": "in-place",
                    "restored": id,
                    "safety": snapshot_json(&out.safety, None),
                    "moved": moved.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    "set_aside": set_aside.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                }));
            }
            println!(
                "rolled {} back to snapshot {id}; the state before is kept as snapshot {} \
                 (read-only, marked important)",
                store.subvolume().display(),
                out.safety.number
            );
            for p in moved {
                println!(
                    "kept nested subvolume {}",
                    store.subvolume().join(p).display()
                );
            }
            for p in set_aside {
                eprintln!(
                    "note: snapshot {id} had {0} where a nested subvolume is now; its copy is at {0}",
                    store.subvolume().join(p).display()
                );
            }
            println!(
                "processes that had files of {} open still see the old files; restart them",
                store.subvolume().display()
            );
        }
        RollbackKind::Default {
            copy,
            subvolume_id,
            warnings,
        } => {
            if g.json {
                return print_json(&json!({
                    "config": a.config,
                    "mode": "default-subvolume",
                    "restored": id,
                    "safety": snapshot_json(&out.safety, None),
                    "default": snapshot_json(copy, None),
                    "default_subvolume_id": subvolume_id,
                    "warnings": warnings,
                }));
            }
            println!(
                "snapshot {} is a writable copy of snapshot {id} and now the default subvolume \
                 (id {subvolume_id}) of the filesystem of {}; the state before is kept as \
                 snapshot {} (read-only, marked important)",
                copy.number,
                store.subvolume().display(),
                out.safety.number
            );
            if store.subvolume() == Path::new("/") {
                println!("reboot to use it");
            } else {
                println!(
                    "{} itself is unchanged: mount the filesystem without subvol= (or reboot, \
                     if the system boots from it) to use the restored state",
                    store.subvolume().display()
                );
            }
            for w in warnings {
                eprintln!("warning: {w}");
            }
        }
    }
    Ok(0)
}

pub fn backup(g: &GlobalArgs, a: &LocalBackupArgs) -> Result<i32> {
    let store = open_store(g, &a.config)?;
    let snap = store.get(a.id)?;
    let mut tags = vec![format!("local:{}:{}", a.config, a.id)];
    tags.extend(a.tags.iter().cloned());
    let args = crate::args::BackupArgs {
        paths: vec![store.subvolume().to_path_buf()],
        tags,
        host: a.host.clone(),
        time: Some(snap.time.clone()),
        excludes: a.excludes.clone(),
        exclude_files: Vec::new(),
        exclude_caches: false,
        one_file_system: false,
        dry_run: a.dry_run,
        force: false,
        threads: None,
        parent: a.parent.clone(),
        limit_read: None,
        compression: a.compression.clone(),
        btrfs_snapshot: crate::args::BtrfsSnapshot::Off,
        no_btrfs_generations: false,
    };
    crate::commands::backup_reading(g, &args, Some((snap.path.clone(), a.config.clone(), a.id)))
}
