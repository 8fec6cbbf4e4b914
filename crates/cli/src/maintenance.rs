//! Commands that change or verify what is already stored: prune, forget, check, repair.

use crate::args::*;
use crate::commands::open;
use crate::render;
use anyhow::Result;
use serde_json::json;
use snapguard_engine::check::{CheckOptions, ReadData};
use snapguard_engine::lock::LockKind;
use snapguard_engine::prune::{self, PruneOptions};
use std::path::PathBuf;

/// Parse sizes like `500M`, `2G`, `1024` (bytes; K/M/G/T are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_uppercase();
            let m = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1u64,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => {
                    return Err(crate::usage!(
                        "invalid size {s:?}: use a number with an optional K, M, G or T suffix"
                    ))
                }
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| {
        crate::usage!("invalid size {s:?}: use a number with an optional K, M, G or T suffix")
    })?;
    if n < 0.0 {
        return Err(crate::usage!("invalid size {s:?}: must not be negative"));
    }
    Ok((n * mult as f64) as u64)
}

/// Prune settings from `--max-unused` and `--max-repack-size` (of `prune` or `forget --prune`).
pub fn prune_options(a: &PruneOptionArgs) -> Result<PruneOptions> {
    if !(0.0..=100.0).contains(&a.max_unused) {
        return Err(crate::usage!("--max-unused must be between 0 and 100"));
    }
    Ok(PruneOptions {
        max_unused_percent: a.max_unused,
        max_repack_bytes: a.max_repack_size.as_deref().map(parse_size).transpose()?,
    })
}

pub fn prune(g: &GlobalArgs, a: &PruneArgs) -> Result<i32> {
    let opts = prune_options(&a.options)?;
    let (mut repo, _lock) = open(g, LockKind::Exclusive, "prune")?;
    let plan = prune::plan(&repo, &opts)?;
    if !g.json && !g.quiet {
        println!(
            "{} snapshot(s); used: {} blobs, {}; unused: {} blobs, {}",
            plan.snapshots,
            plan.used_blobs,
            render::size(plan.used_bytes),
            plan.unused_blobs,
            render::size(plan.unused_bytes)
        );
        for p in plan.packs.iter().filter(|p| p.action != "keep") {
            let why = match p.action {
                "delete" => "no blob in it is used".to_string(),
                "repack" => format!("{} of {} bytes unused", p.unused_bytes, p.size),
                _ => "not listed in any index (left by an interrupted backup)".to_string(),
            };
            println!(
                "  {:<20} pack {}  {}: {}",
                p.action,
                &p.pack[..16],
                render::size(p.size),
                why
            );
        }
        crate::object_lock::print_retained(&plan.retained);
        println!(
            "plan: delete {} pack(s), repack {} pack(s) ({}), free {}; unused afterwards {:.1}%",
            plan.packs_to_delete,
            plan.packs_to_repack,
            render::size(plan.bytes_to_repack),
            render::size(plan.bytes_freed),
            plan.unused_after_percent
        );
    }
    if a.dry_run {
        if g.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"dry_run": true, "plan": plan}))?
            );
        } else {
            println!("dry run: nothing was changed");
        }
        return Ok(0);
    }
    let display = crate::progress::Display::start(g, "prune", "packs");
    let stats = prune::execute_with_progress(&mut repo, &plan, Some(&display.progress));
    drop(display);
    let stats = stats?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"dry_run": false, "plan": plan, "result": stats})
            )?
        );
    } else if !g.quiet {
        println!(
            "deleted {} pack(s), wrote {} new pack(s) ({} blobs repacked), replaced {} index file(s)",
            stats.packs_deleted, stats.packs_written, stats.blobs_repacked, stats.index_files_replaced
        );
        crate::object_lock::print_retained(&stats.retained);
    }
    Ok(0)
}

/// The local cache directory: SNAPGUARD_CACHE_DIR, else $XDG_CACHE_HOME/snapguard, else ~/.cache/snapguard.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SNAPGUARD_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("snapguard"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/snapguard"))
}

fn parse_read_data(a: &CheckArgs) -> Result<ReadData> {
    if a.read_data {
        return Ok(ReadData::All);
    }
    if let Some(s) = &a.read_data_subset {
        if let Some(p) = s.strip_suffix('%') {
            let pct: f64 = p
                .trim()
                .parse()
                .map_err(|_| crate::usage!("invalid subset {s:?}: use N% or n/m"))?;
            return Ok(ReadData::Percent(pct));
        }
        if let Some((n, m)) = s.split_once('/') {
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| crate::usage!("invalid subset {s:?}: use N% or n/m"))?;
            let m: u32 = m
                .trim()
                .parse()
                .map_err(|_| crate::usage!("invalid subset {s:?}: use N% or n/m"))?;
            return Ok(ReadData::Subset { n, m });
        }
        return Err(crate::usage!(
            "invalid subset {s:?}: use N% (e.g. 10%) or n/m (e.g. 1/7)"
        ));
    }
    if let Some(d) = &a.read_data_since {
        let secs = snapguard_policy::parse_duration(d)?;
        return Ok(ReadData::Since(secs.max(0) as u64));
    }
    Ok(ReadData::None)
}

pub fn check(g: &GlobalArgs, a: &CheckArgs) -> Result<i32> {
    let read_data = parse_read_data(a)?;
    let (repo, _lock) = open(g, LockKind::Shared, "check")?;
    let ledger = cache_dir().map(|d| {
        d.join(repo.config().repo_id.to_hex())
            .join("verified-packs")
    });
    let opts = CheckOptions {
        read_data,
        ledger,
        now: render::now().secs,
    };
    let display = crate::progress::Display::start(g, "check", "packs");
    let report =
        snapguard_engine::check::check_with_progress(&repo, &opts, Some(&display.progress));
    drop(display);
    let report = report?;
    let errors = report.errors();
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"ok": errors == 0, "errors": errors, "report": report})
            )?
        );
    } else {
        for f in &report.findings {
            let label = if f.error { "error" } else { "note" };
            eprintln!("{label}: {}: {}", f.object, f.message);
        }
        if !g.quiet {
            println!(
                "checked {} index file(s), {} pack(s), {} snapshot(s), {} tree(s); read {} pack(s), {} blob(s), {}",
                report.index_files,
                report.packs,
                report.snapshots,
                report.trees,
                report.packs_read,
                report.blobs_read,
                render::size(report.bytes_read)
            );
        }
        if errors == 0 {
            println!("no errors were found");
        } else {
            println!("{errors} error(s) found; see above ('snapguard repair' can rebuild the index and save what is left)");
        }
    }
    Ok(if errors == 0 {
        0
    } else {
        crate::exit::INTEGRITY
    })
}

pub fn repair(g: &GlobalArgs, r: &RepairCommand) -> Result<i32> {
    let (mut repo, _lock) = open(g, LockKind::Exclusive, "repair")?;
    match r {
        RepairCommand::Index => {
            let rep = snapguard_engine::repair::repair_index(&mut repo)?;
            for (pack, err) in &rep.packs_unreadable {
                eprintln!(
                    "error: pack {pack}: {err}; its blobs are lost unless another pack has them"
                );
            }
            if g.json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else if !g.quiet {
                println!(
                    "indexed {} blob(s) in {} pack(s); replaced {} index file(s); {} pack(s) unreadable",
                    rep.blobs_indexed,
                    rep.packs_indexed,
                    rep.index_files_replaced,
                    rep.packs_unreadable.len()
                );
            }
            Ok(if rep.packs_unreadable.is_empty() {
                0
            } else {
                crate::exit::INTEGRITY
            })
        }
        RepairCommand::Snapshots { dry_run } => {
            let fixed =
                snapguard_engine::repair::repair_snapshots(&mut repo, render::now(), *dry_run)?;
            if g.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"dry_run": dry_run, "snapshots": fixed}))?
                );
                return Ok(0);
            }
            for f in &fixed {
                let new = f
                    .repaired
                    .as_deref()
                    .map(|n| format!("saved as {}", &n[..8]))
                    .unwrap_or_else(|| "would be repaired".into());
                println!(
                    "snapshot {}: {} item(s) lost, {new}",
                    &f.original[..8],
                    f.lost.len()
                );
                for l in &f.lost {
                    println!("    lost: {l}");
                }
            }
            if fixed.is_empty() {
                println!("no snapshot refers to missing data");
            } else if !dry_run {
                println!("original snapshots were kept; forget them once you have checked the repaired ones");
            }
            Ok(0)
        }
    }
}

pub fn append_only(g: &GlobalArgs) -> Result<i32> {
    let (mut repo, _lock) = open(g, LockKind::Exclusive, "append-only")?;
    repo.enable_append_only()?;
    if !g.quiet {
        println!(
            "repository {} is now append-only: forget, prune and key removal are refused for every SnapGuard client",
            repo.location()
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        for (s, want) in [
            ("1024", 1024),
            ("1K", 1024),
            ("500M", 500 << 20),
            ("2G", 2 << 30),
            ("1.5KiB", 1536),
            ("3MB", 3 << 20),
        ] {
            assert_eq!(parse_size(s).ok(), Some(want), "{s}");
        }
        assert!(parse_size("x").is_err());
        assert!(parse_size("5Q").is_err());
    }
}
