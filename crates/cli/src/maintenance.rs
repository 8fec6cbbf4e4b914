//! Commands that change or verify what is already stored: prune, forget, check, repair.

use crate::args::*;
use crate::commands::open;
use crate::render;
use anyhow::{bail, Result};
use serde_json::json;
use snapguard_engine::lock::LockKind;
use snapguard_engine::prune::{self, PruneOptions};

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
                _ => bail!("invalid size {s:?}: use a number with an optional K, M, G or T suffix"),
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| {
        anyhow::anyhow!("invalid size {s:?}: use a number with an optional K, M, G or T suffix")
    })?;
    if n < 0.0 {
        bail!("invalid size {s:?}: must not be negative");
    }
    Ok((n * mult as f64) as u64)
}

pub fn prune(g: &GlobalArgs, a: &PruneArgs) -> Result<i32> {
    if !(0.0..=100.0).contains(&a.max_unused) {
        bail!("--max-unused must be between 0 and 100");
    }
    let opts = PruneOptions {
        max_unused_percent: a.max_unused,
        max_repack_bytes: a.max_repack_size.as_deref().map(parse_size).transpose()?,
    };
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
    let stats = prune::execute(&mut repo, &plan)?;
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
