//! `snapguard restore`: ask before writing into the original location, call the engine, render
//! the summary (see docs/restore.md).

use crate::args::{GlobalArgs, OverwriteArg, RestoreArgs};
use crate::commands::{name_snapshot, open, print_json, split_spec};
use crate::exit;
use crate::render::{self, lossy};
use anyhow::{bail, Context, Result};
use serde_json::json;
use snapguard_engine::lock::LockKind;
use snapguard_engine::restore::{original_location, OriginalLocation, Overwrite};
use snapguard_engine::verify::VerifyOptions;
use snapguard_engine::RestoreOptions;
use snapguard_format::SnapshotId;
use std::io::{BufRead, IsTerminal, Write};

pub fn restore(g: &GlobalArgs, a: &RestoreArgs) -> Result<i32> {
    let (repo, _lock) = open(g, LockKind::Shared, "restore")?;
    let (snap_spec, sub) = split_spec(&a.snapshot)?;
    let (id, snap) = repo.find_snapshot(&snap_spec)?;
    let overwrite = match a.overwrite {
        OverwriteArg::Never => Overwrite::Never,
        OverwriteArg::IfChanged => Overwrite::IfChanged,
        OverwriteArg::Always => Overwrite::Always,
    };
    if !a.dry_run && !a.yes {
        let place =
            original_location(&repo, &snap, &sub, &a.target).map_err(|e| name_snapshot(e, &id))?;
        if let Some(place) = place {
            confirm(a, overwrite, &id, &sub, &place)?;
        }
    }
    let display = (!a.dry_run).then(|| crate::progress::Display::start(g, "restore", "files"));
    let opts = RestoreOptions {
        target: a.target.clone(),
        includes: a.includes.clone(),
        excludes: a.excludes.clone(),
        dry_run: a.dry_run,
        overwrite,
        delete: a.delete,
        progress: display.as_ref().map(|d| d.progress.clone()),
    };
    let r = snapguard_engine::restore(&repo, &snap, &sub, &opts);
    drop(display);
    let r = r.map_err(|e| name_snapshot(e, &id))?;
    for w in &r.warnings {
        eprintln!("warning: {}: {}", w.path, w.message);
    }
    for n in &r.notes {
        eprintln!("note: {}: {}", n.path, n.message);
    }
    if !g.json && (a.dry_run || g.verbose > 0) {
        let verb = if a.dry_run { "would delete" } else { "deleted" };
        for p in &r.deleted_paths {
            println!("{verb}: {p}");
        }
    }
    let verified = if a.verify {
        let vopts = VerifyOptions {
            read_all: true,
            includes: a.includes.clone(),
            excludes: a.excludes.clone(),
        };
        let report = snapguard_engine::verify::verify(&repo, &snap, &sub, &a.target, &vopts)?;
        for d in &report.differences {
            eprintln!("differs: {}: {}", d.path, d.what);
        }
        Some(report)
    } else {
        None
    };
    if g.json {
        print_json(&json!({
            "snapshot": id.to_hex(),
            "target": a.target,
            "dry_run": a.dry_run,
            "overwrite": overwrite.as_str(),
            "delete": a.delete,
            "summary": r,
            "bytes_downloaded": crate::backend_stats::bytes_downloaded(),
        }))?;
    } else if !g.quiet {
        let verb = if a.dry_run {
            "would restore"
        } else {
            "restored"
        };
        println!(
            "{verb} {} file(s), {} dir(s), {} other, {} from snapshot {} to {}",
            r.files,
            r.dirs,
            r.other,
            render::size(r.bytes),
            id.short(),
            a.target.display()
        );
        let mut parts = Vec::new();
        if r.skipped_unchanged > 0 {
            parts.push(format!("{} already identical (kept)", r.skipped_unchanged));
        }
        if r.overwritten > 0 {
            parts.push(format!("{} overwritten", r.overwritten));
        }
        if r.skipped_existing > 0 {
            parts.push(format!(
                "{} existing left untouched (--overwrite never)",
                r.skipped_existing
            ));
        }
        if a.delete {
            parts.push(format!("{} deleted", r.deleted));
        }
        if !parts.is_empty() {
            let written = if a.dry_run {
                String::new()
            } else {
                format!("; {} written", render::size(r.bytes_written))
            };
            println!("  {}{written}", parts.join(", "));
        }
    }
    if let Some(v) = &verified {
        if !g.json && !g.quiet {
            println!(
                "verified {} entries ({} files, {} read): {}",
                v.entries,
                v.files_read,
                render::size(v.bytes_read),
                if v.differences.is_empty() {
                    "identical to the snapshot".to_string()
                } else {
                    format!("{} difference(s)", v.differences.len())
                }
            );
        }
    }
    let differs = verified.as_ref().is_some_and(|v| !v.differences.is_empty());
    if !r.warnings.is_empty() || differs {
        eprintln!(
            "warning: {} item(s) could not be restored exactly (see above)",
            r.warnings
                .len()
                .max(verified.map(|v| v.differences.len()).unwrap_or(0))
        );
        return Ok(exit::PARTIAL_RESTORE);
    }
    Ok(0)
}

/// Restoring into the original location: ask on a terminal, refuse (usage error) elsewhere.
fn confirm(
    a: &RestoreArgs,
    overwrite: Overwrite,
    id: &SnapshotId,
    sub: &[u8],
    place: &OriginalLocation,
) -> Result<()> {
    let what = match place {
        OriginalLocation::Root => format!(
            "restoring {} of snapshot {} into / writes into the running system",
            lossy(sub),
            id.short()
        ),
        OriginalLocation::Same(dir) => format!(
            "restoring {} of snapshot {} into {} writes over the original location it was backed up from",
            lossy(sub),
            id.short(),
            dir.display()
        ),
    };
    let mut effect = match overwrite {
        Overwrite::Always => "every existing file there will be replaced".to_string(),
        Overwrite::IfChanged => {
            "existing files that differ from the snapshot will be replaced".to_string()
        }
        Overwrite::Never => "existing files stay as they are, missing ones are added".to_string(),
    };
    if a.delete {
        effect.push_str(", and what the snapshot does not have will be deleted (--delete)");
    }
    if !std::io::stdin().is_terminal() {
        return Err(crate::usage!(
            "{what} ({effect}); standard input is not a terminal, so no one can confirm: add --yes to go ahead, or choose another --target"
        ));
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{what}:\n{effect}.\nContinue? [y/N] ")?;
    err.flush()?;
    drop(err);
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer from the terminal")?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => bail!("restore cancelled; nothing was written"),
    }
}
