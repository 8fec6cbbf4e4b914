//! `versions` and `find`: one path's history across snapshots, and a glob search over them.
//!
//! The engine (`snapguard_engine::versions`) walks the trees. This module chooses the snapshots
//! (`--host`, `--tag`, `--newer`, `--older`, `--snapshot`), renders text and JSON, and writes for
//! every version the `snapguard restore` command that brings it back, quoted for a POSIX shell.

use crate::args::{FindArgs, GlobalArgs, HistoryFilterArgs, VersionsArgs};
use crate::commands::open;
use crate::exit;
use crate::render::{self, lossy};
use anyhow::{Context, Result};
use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone};
use serde_json::{json, Value};
use snapguard_backend::FileType;
use snapguard_engine::annotate::{self, SnapshotView};
use snapguard_engine::lock::LockKind;
use snapguard_engine::versions::{self, Finder, Granularity, PathPattern, PathVersion};
use snapguard_engine::{Error as EngineError, Repository};
use snapguard_format::{Node, NodeKind, SnapshotId, Timestamp, TreeId};
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn versions(g: &GlobalArgs, a: &VersionsArgs) -> Result<i32> {
    let bounds = TimeBounds::parse(&a.filter)?;
    let path = snapguard_engine::absolute_path(Path::new(&a.path))?;
    let path = path.as_os_str().as_bytes().to_vec();
    let (repo, _lock) = open(g, LockKind::Shared, "versions")?;
    let Some(sel) = select(&repo, &a.filter, &bounds, &[])? else {
        return Ok(exit::NOT_FOUND);
    };
    let granularity = if a.all {
        Granularity::Metadata
    } else {
        Granularity::Content
    };
    let roots: Vec<TreeId> = sel.views.iter().map(|v| v.snapshot.tree).collect();
    let h = versions::history(&repo, &roots, &path, granularity)?;
    let damaged = sel.report_damaged(&h.errors);
    if h.is_empty() {
        if damaged > 0 {
            eprintln!(
                "snapguard: error: path {:?} is in none of the readable snapshots, and {damaged} could not be read (see above); run 'snapguard check'",
                lossy(&path)
            );
            return Ok(exit::INTEGRITY);
        }
        return Err(EngineError::PathInNoSnapshot {
            path: lossy(&path),
            snapshots: sel.describe(),
        }
        .into());
    }
    let restore = RestoreCommand::new(g, &a.target);
    if g.json {
        let versions: Vec<Value> = h
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| version_json(&sel, &restore, &path, i, v))
            .collect();
        let mut doc = json!({
            "path": lossy(&path),
            "granularity": if a.all { "metadata" } else { "content" },
            "snapshots_searched": sel.views.len(),
            "snapshots_with_path": h.snapshots_with_path(),
            "versions": versions,
            "absent": h.absent_runs().iter().map(|r| sel.run_json(*r)).collect::<Vec<_>>(),
            "errors": h.errors.iter().map(|(i, e)| json!({"snapshot": sel.ref_json(*i), "error": e.to_string()})).collect::<Vec<_>>(),
        });
        if std::str::from_utf8(&path).is_err() {
            doc["path_hex"] = json!(hex::encode(&path));
        }
        print_json(&doc)?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}: {} version(s) in {} of {} snapshot(s), oldest first{}",
            lossy(&path),
            h.versions.len(),
            h.snapshots_with_path(),
            sel.views.len(),
            if a.all {
                " (told apart by content and metadata)"
            } else {
                ""
            }
        )?;
        for (i, v) in h.versions.iter().enumerate() {
            writeln!(out)?;
            writeln!(out, "version {}  {}", i + 1, describe(v))?;
            let runs = v.runs();
            writeln!(
                out,
                "  in {} snapshot(s): {}",
                v.snapshots.len(),
                sel.range((v.first(), v.last()))
            )?;
            if runs.len() > 1 {
                for r in &runs {
                    writeln!(
                        out,
                        "    {}  ({} snapshot(s))",
                        sel.range(*r),
                        r.1 - r.0 + 1
                    )?;
                }
            }
            if v.metadata_variants > 1 {
                writeln!(
                    out,
                    "  {} metadata states (mode, owner, mtime or xattrs) within this version; --all lists each as a version",
                    v.metadata_variants
                )?;
            }
            writeln!(
                out,
                "  restore: {}",
                restore.command(sel.short(v.last()), &path)
            )?;
        }
        let absent = h.absent_runs();
        if !absent.is_empty() {
            writeln!(out)?;
            writeln!(
                out,
                "not in {} snapshot(s):",
                absent.iter().map(|r| r.1 - r.0 + 1).sum::<usize>()
            )?;
            for r in &absent {
                writeln!(out, "    {}", sel.range(*r))?;
            }
        }
        writeln!(out)?;
        writeln!(
            out,
            "Each command restores the version from the newest snapshot holding it: a file as {}/NAME, a directory's contents into {}.",
            restore.target_shown(),
            restore.target_shown()
        )?;
    }
    Ok(if damaged > 0 { exit::INTEGRITY } else { 0 })
}

/// One line describing a version: type, size or entries, mtime, permissions, owner.
fn describe(v: &PathVersion) -> String {
    let n = &v.node;
    let what = match n.kind {
        NodeKind::File => format!("file  {}", render::size(n.size)),
        NodeKind::Dir => format!("dir  {} entries", v.entries.unwrap_or(0)),
        NodeKind::Symlink => format!("symlink -> {}", lossy(&n.link_target)),
        NodeKind::CharDevice | NodeKind::BlockDevice => format!(
            "{} {}:{}",
            render::kind_name(n.kind),
            nix::sys::stat::major(n.rdev),
            nix::sys::stat::minor(n.rdev)
        ),
        NodeKind::Fifo => "fifo".to_string(),
    };
    format!(
        "{what}  modified {}  {}  {}:{}",
        render::local(n.mtime),
        render::mode_string(n),
        n.user.clone().unwrap_or_else(|| n.uid.to_string()),
        n.group.clone().unwrap_or_else(|| n.gid.to_string())
    )
}

fn version_json(
    sel: &Selection,
    restore: &RestoreCommand,
    path: &[u8],
    i: usize,
    v: &PathVersion,
) -> Value {
    let mut j = entry_json(path, &v.node);
    let last = v.last();
    j["version"] = json!(i + 1);
    if let Some(n) = v.entries {
        j["entries"] = json!(n);
    }
    j["snapshot_count"] = json!(v.snapshots.len());
    j["first_snapshot"] = sel.ref_json(v.first());
    j["last_snapshot"] = sel.ref_json(last);
    j["runs"] = json!(v
        .runs()
        .iter()
        .map(|r| sel.run_json(*r))
        .collect::<Vec<_>>());
    j["snapshots"] = json!(v
        .snapshots
        .iter()
        .map(|i| sel.ref_json(*i))
        .collect::<Vec<_>>());
    j["metadata_variants"] = json!(v.metadata_variants);
    j["restore"] = json!({
        "snapshot": sel.views[last].id.to_hex(),
        "path": lossy(path),
        "target": restore.target_shown(),
        "restores_to": restore.restores_to(&v.node, path),
        "command": restore.command(sel.short(last), path),
    });
    j
}

/// A node as in `ls --json`, without the content list (`versions` and `find` do not load it).
fn entry_json(path: &[u8], n: &Node) -> Value {
    let mut j = render::node_json(path, n);
    if let Some(o) = j.as_object_mut() {
        o.remove("content");
    }
    j
}

pub fn find(g: &GlobalArgs, a: &FindArgs) -> Result<i32> {
    let pattern = PathPattern::new(&a.pattern)?;
    let bounds = TimeBounds::parse(&a.filter)?;
    let (repo, _lock) = open(g, LockKind::Shared, "find")?;
    let Some(sel) = select(&repo, &a.filter, &bounds, &a.snapshots)? else {
        return Ok(exit::NOT_FOUND);
    };
    let mut finder = Finder::new(&repo, pattern);
    let mut errors = Vec::new();
    let mut groups: Vec<Value> = Vec::new();
    let (mut matches, mut with_matches) = (0usize, 0usize);
    let mut out = std::io::stdout().lock();
    for (i, v) in sel.views.iter().enumerate() {
        let found = match finder.search(v.snapshot.tree) {
            Ok(f) => f,
            Err(e @ EngineError::Corrupt { .. }) => {
                errors.push((i, e));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if found.is_empty() {
            continue;
        }
        matches += found.len();
        with_matches += 1;
        if g.json {
            let mut group = sel.ref_json(i);
            group["tags"] = json!(v.tags);
            group["matches"] = json!(found
                .iter()
                .map(|f| entry_json(&f.path, &f.node))
                .collect::<Vec<_>>());
            groups.push(group);
            continue;
        }
        if with_matches == 1 {
            let host = if sel.many_hosts {
                "Host             "
            } else {
                ""
            };
            writeln!(
                out,
                "{:<20} {:<10} {host}{:<8} {:>10}  {:<20} Path",
                "Snapshot time", "ID", "Type", "Size", "Modified"
            )?;
        }
        for f in &found {
            let n = &f.node;
            let host = if sel.many_hosts {
                format!("{:<16} ", v.snapshot.hostname)
            } else {
                String::new()
            };
            let target = if n.kind == NodeKind::Symlink {
                format!(" -> {}", lossy(&n.link_target))
            } else {
                String::new()
            };
            writeln!(
                out,
                "{:<20} {:<10} {host}{:<8} {:>10}  {:<20} {}{target}",
                render::local(v.snapshot.time),
                sel.short(i),
                render::kind_name(n.kind),
                render::size(n.size),
                render::local(n.mtime),
                lossy(&f.path),
            )?;
        }
    }
    let damaged = sel.report_damaged(&errors);
    if g.json {
        drop(out);
        print_json(&json!({
            "pattern": a.pattern,
            "snapshots_searched": sel.views.len(),
            "snapshots_with_matches": with_matches,
            "matches": matches,
            "snapshots": groups,
            "errors": errors.iter().map(|(i, e)| json!({"snapshot": sel.ref_json(*i), "error": e.to_string()})).collect::<Vec<_>>(),
        }))?;
    } else if matches == 0 {
        writeln!(out, "no path matches {:?} in {}", a.pattern, sel.describe())?;
    } else {
        writeln!(
            out,
            "{matches} match(es) in {with_matches} of {} snapshot(s)",
            sel.views.len()
        )?;
    }
    Ok(if damaged > 0 { exit::INTEGRITY } else { 0 })
}

fn print_json(v: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// `--newer` and `--older`, parsed before the repository is opened.
struct TimeBounds {
    newer: Option<Timestamp>,
    older: Option<Timestamp>,
}

impl TimeBounds {
    fn parse(f: &HistoryFilterArgs) -> Result<TimeBounds> {
        Ok(TimeBounds {
            newer: f.newer.as_deref().map(parse_time_bound).transpose()?,
            older: f.older.as_deref().map(parse_time_bound).transpose()?,
        })
    }

    fn admits(&self, t: Timestamp) -> bool {
        self.newer.is_none_or(|n| t >= n) && self.older.is_none_or(|o| t < o)
    }
}

/// RFC 3339 (as `backup --time` takes it), or a local date with an optional time:
/// `2026-01-31`, `2026-01-31 14:00`, `2026-01-31T14:00:05` (the form the tables print).
pub fn parse_time_bound(s: &str) -> Result<Timestamp> {
    if let Ok(t) = render::parse_time(s) {
        return Ok(t);
    }
    let s = s.trim();
    let naive = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    let local = naive.and_then(|n| Local.from_local_datetime(&n).earliest());
    match local {
        Some(d) => Ok(Timestamp {
            secs: d.timestamp(),
            nanos: d.timestamp_subsec_nanos(),
        }),
        None => Err(crate::usage!(
            "invalid time {s:?}: use RFC 3339 (2026-01-31T12:00:00Z) or a local date and time (2026-01-31, 2026-01-31 12:00, 2026-01-31 12:00:00)"
        )),
    }
}

/// The snapshots a command looks at, oldest first, and how to name them.
struct Selection {
    views: Vec<SnapshotView>,
    /// Per selected snapshot, the shortest prefix of its id (at least 8 hex digits) that no
    /// other snapshot of the repository shares, so a printed command names exactly it.
    short: Vec<String>,
    /// More than one host among them: name the host next to each snapshot.
    many_hosts: bool,
    /// Snapshot files that could not be read.
    damaged: Vec<EngineError>,
    /// The filters, for messages ("" if none).
    filters: String,
}

/// Choose the snapshots; `None` (after printing why) if there are none to look at.
fn select(
    repo: &Repository,
    f: &HistoryFilterArgs,
    bounds: &TimeBounds,
    only: &[String],
) -> Result<Option<Selection>> {
    let (all, damaged) = annotate::views(repo)?;
    let total = all.len();
    let only: Option<HashSet<SnapshotId>> = if only.is_empty() {
        None
    } else {
        let mut ids = HashSet::new();
        for spec in only {
            ids.insert(repo.find_snapshot(spec)?.0);
        }
        Some(ids)
    };
    let views: Vec<SnapshotView> = all
        .into_iter()
        .filter(|v| only.as_ref().is_none_or(|o| o.contains(&v.id)))
        .filter(|v| f.host.as_ref().is_none_or(|h| &v.snapshot.hostname == h))
        .filter(|v| f.tags.is_empty() || v.tags.iter().any(|t| f.tags.contains(t)))
        .filter(|v| bounds.admits(v.snapshot.time))
        .collect();
    let mut filters = Vec::new();
    if only.is_some() {
        filters.push("the --snapshot list".to_string());
    }
    if let Some(h) = &f.host {
        filters.push(format!("--host {h}"));
    }
    for t in &f.tags {
        filters.push(format!("--tag {t}"));
    }
    if let Some(t) = &f.newer {
        filters.push(format!("--newer {t}"));
    }
    if let Some(t) = &f.older {
        filters.push(format!("--older {t}"));
    }
    let filters = filters.join(", ");
    if views.is_empty() {
        for e in &damaged {
            eprintln!("error: {e}; run 'snapguard check'");
        }
        if total == 0 && damaged.is_empty() {
            eprintln!(
                "snapguard: error: repository {} has no snapshots yet; create one with 'snapguard backup'",
                repo.location()
            );
        } else {
            eprintln!(
                "snapguard: error: none of the {total} snapshot(s) matches {filters}; list them with 'snapguard snapshots'"
            );
        }
        return Ok(None);
    }
    let mut names: Vec<String> = repo
        .backend()
        .list(FileType::Snapshot)
        .with_context(|| format!("listing the snapshots of {}", repo.location()))?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    let short = views
        .iter()
        .map(|v| unique_prefix(&v.id.to_hex(), &names))
        .collect();
    let many_hosts = views
        .iter()
        .any(|v| v.snapshot.hostname != views[0].snapshot.hostname);
    Ok(Some(Selection {
        views,
        short,
        many_hosts,
        damaged,
        filters,
    }))
}

/// The shortest prefix of `hex` (at least 8 digits) that no other name in sorted `names` has.
fn unique_prefix(hex: &str, names: &[String]) -> String {
    let common = |other: &str| {
        hex.bytes()
            .zip(other.bytes())
            .take_while(|(a, b)| a == b)
            .count()
    };
    let pos = names.partition_point(|n| n.as_str() < hex);
    let mut len = 8;
    let neighbours = [
        pos.checked_sub(1).and_then(|i| names.get(i)),
        names.get(pos).filter(|n| n.as_str() != hex),
        names.get(pos + 1),
    ];
    for n in neighbours.into_iter().flatten() {
        if n != hex {
            len = len.max(common(n) + 1);
        }
    }
    hex[..len.min(hex.len())].to_string()
}

impl Selection {
    fn short(&self, i: usize) -> &str {
        &self.short[i]
    }

    /// "the 5 snapshot(s) searched (--host a)", for messages.
    fn describe(&self) -> String {
        let n = self.views.len();
        if self.filters.is_empty() {
            format!("the {n} snapshot(s) searched")
        } else {
            format!("the {n} snapshot(s) searched ({})", self.filters)
        }
    }

    /// A snapshot for text: local time, short id and (if several hosts) host.
    fn text_ref(&self, i: usize) -> String {
        let v = &self.views[i];
        let mut s = format!("{} {}", render::local(v.snapshot.time), self.short[i]);
        if self.many_hosts {
            s.push_str(&format!(" ({})", v.snapshot.hostname));
        }
        s
    }

    fn range(&self, (first, last): (usize, usize)) -> String {
        if first == last {
            self.text_ref(first)
        } else {
            format!("{} to {}", self.text_ref(first), self.text_ref(last))
        }
    }

    fn ref_json(&self, i: usize) -> Value {
        let v = &self.views[i];
        json!({
            "id": v.id.to_hex(),
            "short_id": self.short[i],
            "time": render::rfc3339(v.snapshot.time),
            "hostname": v.snapshot.hostname,
        })
    }

    fn run_json(&self, (first, last): (usize, usize)) -> Value {
        json!({"first": self.ref_json(first), "last": self.ref_json(last), "snapshots": last - first + 1})
    }

    /// Print the snapshots that could not be read or searched; return how many.
    fn report_damaged(&self, searched: &[(usize, EngineError)]) -> usize {
        for e in &self.damaged {
            eprintln!("error: {e}; run 'snapguard check'");
        }
        for (i, e) in searched {
            eprintln!(
                "error: snapshot {} could not be searched: {e}; run 'snapguard check'",
                self.short[*i]
            );
        }
        self.damaged.len() + searched.len()
    }
}

/// The `snapguard restore` command line printed for each version.
struct RestoreCommand {
    /// `-r LOCATION ` when the repository was named on the command line (not by the
    /// environment, which the printed command inherits).
    repo: String,
    target: Vec<u8>,
}

impl RestoreCommand {
    fn new(g: &GlobalArgs, target: &Path) -> RestoreCommand {
        let from_env = std::env::var("SNAPGUARD_REPOSITORY").ok();
        let repo = match &g.repo {
            Some(r) if from_env.as_ref() != Some(r) => format!("-r {} ", shell_quote(r.as_bytes())),
            _ => String::new(),
        };
        RestoreCommand {
            repo,
            target: target.as_os_str().as_bytes().to_vec(),
        }
    }

    fn command(&self, snapshot: &str, path: &[u8]) -> String {
        let mut spec = snapshot.as_bytes().to_vec();
        spec.push(b':');
        spec.extend_from_slice(path);
        format!(
            "snapguard {}restore {} --target {}",
            self.repo,
            shell_quote(&spec),
            shell_quote(&self.target)
        )
    }

    fn target_shown(&self) -> String {
        lossy(&self.target)
    }

    /// Where the restore puts the entry: a directory's contents go into the target, anything
    /// else is created in it under its own name.
    fn restores_to(&self, node: &Node, path: &[u8]) -> String {
        if node.kind == NodeKind::Dir {
            return self.target_shown();
        }
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        let mut p = self.target.clone();
        if !p.ends_with(b"/") {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        lossy(&p)
    }
}

/// Quote bytes as one word for a POSIX shell: as they are if they need no quoting, in single
/// quotes if they are printable UTF-8, else as `$'...'` with `\xHH` escapes (bash, zsh, ksh and
/// POSIX.1-2024 shells), so that a copied command names exactly these bytes.
pub fn shell_quote(b: &[u8]) -> String {
    let safe = |c: u8| c.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&c);
    if !b.is_empty() && b.iter().all(|&c| safe(c)) {
        return String::from_utf8_lossy(b).into_owned();
    }
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(char::is_control) => format!("'{}'", s.replace('\'', r"'\''")),
        _ => {
            let mut out = String::from("$'");
            for &c in b {
                match c {
                    b'\\' => out.push_str(r"\\"),
                    b'\'' => out.push_str(r"\'"),
                    0x20..=0x7e => out.push(c as char),
                    _ => out.push_str(&format!("\\x{c:02x}")),
                }
            }
            out.push('\'');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            shell_quote(b"1a2b3c4d:/home/me/notes.txt"),
            "1a2b3c4d:/home/me/notes.txt"
        );
        assert_eq!(shell_quote(b"/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(shell_quote(b"/caf\xc3\xa9 $x"), "'/caf\u{e9} $x'");
        assert_eq!(shell_quote(b"/caf\xe9\n'\\"), r"$'/caf\xe9\x0a\'\\'");
        assert_eq!(shell_quote(b""), "''");
        assert_eq!(shell_quote(b"~x"), "'~x'");
    }

    #[test]
    fn prefixes_are_unique() {
        let mut names = vec![
            "aaaaaaaa11".to_string(),
            "aaaaaaaa12".into(),
            "bbbbbbbbbb".into(),
            "aaaaaaab00".into(),
        ];
        names.sort();
        assert_eq!(unique_prefix("aaaaaaaa11", &names), "aaaaaaaa11");
        assert_eq!(unique_prefix("aaaaaaaa12", &names), "aaaaaaaa12");
        assert_eq!(unique_prefix("bbbbbbbbbb", &names), "bbbbbbbb");
        assert_eq!(unique_prefix("aaaaaaab00", &names), "aaaaaaab");
    }

    #[test]
    fn time_bounds() -> Result<()> {
        assert_eq!(
            parse_time_bound("2026-01-31T12:00:00Z")?,
            Timestamp {
                secs: 1_769_860_800,
                nanos: 0
            }
        );
        let day = parse_time_bound("2026-01-31")?;
        let noon = parse_time_bound("2026-01-31 12:00")?;
        let with_secs = parse_time_bound("2026-01-31T12:00:30")?;
        assert_eq!(noon.secs - day.secs, 12 * 3600);
        assert_eq!(with_secs.secs - noon.secs, 30);
        assert!(parse_time_bound("yesterday").is_err());
        assert!(parse_time_bound("2026-02-30").is_err());
        Ok(())
    }
}
