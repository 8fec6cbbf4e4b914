//! `local create`, `local list`, `local delete` and `local cleanup`.

use super::{
    all_names, open_store, snapshot_json, CleanupArg, CleanupArgs, CreateArgs, DeleteArgs, ListArgs,
};
use crate::args::GlobalArgs;
use crate::commands::print_json;
use crate::{exit, render, usage};
use anyhow::Result;
use serde_json::{json, Value};
use snapguard_local::cleanup::{self, CleanupReport};
use snapguard_local::{check_pairs, parse_number, CreateOptions, DeleteOptions, Store};
use snapguard_policy::{CleanupAlgorithm, CleanupPlan, LocalKind};
use std::collections::BTreeSet;

pub fn create(g: &GlobalArgs, a: &CreateArgs) -> Result<i32> {
    let store = open_store(g, &a.config)?;
    let opts = CreateOptions {
        kind: match (a.pre, a.post) {
            (true, _) => LocalKind::Pre,
            (false, Some(_)) => LocalKind::Post,
            (false, None) => LocalKind::Single,
        },
        pre_number: a.post,
        description: a.description.clone(),
        tags: a.tags.clone(),
        cleanup: match a.cleanup {
            CleanupArg::None => CleanupAlgorithm::None,
            CleanupArg::Number => CleanupAlgorithm::Number,
            CleanupArg::Timeline => CleanupAlgorithm::Timeline,
        },
        userdata: a.userdata.iter().cloned().collect(),
    };
    let snap = match &a.time {
        Some(t) => {
            let t = render::parse_time(t)?;
            store.create_at(&opts, t.secs, t.nanos)?
        }
        None => store.create(&opts)?,
    };
    if g.json {
        return print_json(
            &json!({"config": store.name(), "snapshot": snapshot_json(&snap, None)}),
        );
    }
    // Only the number, so that scripts (the apt hook) can use it for --post.
    println!("{}", snap.number);
    Ok(0)
}

pub fn list(g: &GlobalArgs, a: &ListArgs) -> Result<i32> {
    each_config(g, a.config.as_deref(), |name| {
        Ok((list_one(g, name, a.config.is_none())?, 0))
    })
}

/// Runs `one` for configuration `config`, or for every configured one when it is `None`, then
/// prints the JSON (with `--json`): the one configuration's object, or an array of all. `one`
/// returns its JSON and its exit code. Without a CONFIG, one broken configuration does not
/// stop the others: its error is printed and the exit code is the first non-zero one.
fn each_config(
    g: &GlobalArgs,
    config: Option<&str>,
    mut one: impl FnMut(&str) -> Result<(Option<Value>, i32)>,
) -> Result<i32> {
    let names = match config {
        Some(n) => vec![n.to_string()],
        None => all_names(g)?,
    };
    let mut out = Vec::new();
    let mut code = 0;
    for name in &names {
        let c = match one(name) {
            Ok((v, c)) => {
                out.extend(v);
                c
            }
            Err(e) if config.is_none() => {
                eprintln!("snapguard: error: {e:#}");
                crate::exit_code(&e)
            }
            Err(e) => return Err(e),
        };
        if code == 0 {
            code = c;
        }
    }
    if g.json {
        print_json(&match (config.is_some(), out.pop()) {
            (true, Some(one)) => one,
            (_, last) => {
                out.extend(last);
                Value::Array(out)
            }
        })?;
    }
    Ok(code)
}

/// Lists one configuration: prints its table, or returns its JSON.
fn list_one(g: &GlobalArgs, name: &str, heading: bool) -> Result<Option<Value>> {
    let store = open_store(g, name)?;
    let snaps = store.list()?;
    let ctx = store.use_context()?;
    let mut rows = Vec::new();
    for s in &snaps {
        rows.push((s, store.status(s, &ctx)?));
    }
    if g.json {
        return Ok(Some(json!({
            "config": name,
            "subvolume": store.subvolume().display().to_string(),
            "snapshot_dir": store.snapshot_dir().display().to_string(),
            "snapshots": rows.iter().map(|(s, st)| snapshot_json(s, Some(st))).collect::<Vec<_>>(),
        })));
    }
    if heading {
        println!(
            "config {name}: {} (snapshots in {})",
            store.subvolume().display(),
            store.snapshot_dir().display()
        );
    }
    print_table(&rows);
    let incomplete = store.incomplete()?;
    if !incomplete.is_empty() {
        let nums: Vec<String> = incomplete.iter().map(|i| i.number.to_string()).collect();
        eprintln!(
            "note: config {name}: entries {} of {} are incomplete and not listed; \
             'snapguard local cleanup {name}' removes those left by an interrupted command",
            nums.join(", "),
            store.snapshot_dir().display()
        );
    }
    Ok(None)
}

fn print_table(
    rows: &[(
        &snapguard_local::LocalSnapshot,
        snapguard_local::SnapshotStatus,
    )],
) {
    let header = [
        "#",
        "Type",
        "Pre #",
        "Time",
        "Cleanup",
        "Size",
        "Use",
        "Description",
        "Tags",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for (s, st) in rows {
        let mut used = Vec::new();
        if !st.mounted_at.is_empty() {
            used.push("mounted".to_string());
        }
        if st.default == Some(true) {
            used.push("default".to_string());
        }
        if st.live {
            used.push("live".to_string());
        }
        if s.is_important() {
            used.push("important".to_string());
        }
        lines.push(vec![
            s.number.to_string(),
            s.kind.to_string(),
            s.pre_number.map(|n| n.to_string()).unwrap_or_default(),
            render::local(snapguard_format::Timestamp {
                secs: s.unix,
                nanos: 0,
            }),
            s.cleanup.to_string(),
            st.exclusive_bytes
                .map(render::size)
                .unwrap_or_else(|| "-".to_string()),
            used.join(","),
            s.description.clone(),
            s.tags.join(","),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", cells.join(" | ").trim_end());
    }
    println!("{} snapshot(s)", rows.len());
}

/// The numbers selected by `ids` ("3", "5-7"): a single number must exist; a range takes the
/// numbers in it that exist.
fn select(store: &Store, ids: &[String], existing: &BTreeSet<u32>) -> Result<Vec<u32>> {
    let mut out = BTreeSet::new();
    for id in ids {
        let bad = || {
            usage!("{id:?} is not a snapshot number or range: give numbers such as 3, or ranges such as 5-7")
        };
        match id.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (
                    parse_number(lo).ok_or_else(bad)?,
                    parse_number(hi).ok_or_else(bad)?,
                );
                if lo > hi {
                    return Err(usage!("range {id:?} is backwards: write it as {hi}-{lo}"));
                }
                out.extend(existing.range(lo..=hi));
            }
            None => {
                let n = parse_number(id).ok_or_else(bad)?;
                if !existing.contains(&n) {
                    return Err(snapguard_local::Error::NoSuchSnapshot {
                        config: store.name().to_string(),
                        number: n,
                        dir: store.snapshot_dir().to_path_buf(),
                    }
                    .into());
                }
                out.insert(n);
            }
        }
    }
    Ok(out.into_iter().collect())
}

pub fn delete(g: &GlobalArgs, a: &DeleteArgs) -> Result<i32> {
    let store = open_store(g, &a.config)?;
    let all = store.list()?;
    let existing: BTreeSet<u32> = all.iter().map(|s| s.number).collect();
    let selected = select(&store, &a.ids, &existing)?;
    check_pairs(&a.config, &all, &selected)?;
    // Check every protection first, so that nothing is deleted unless all can be.
    let ctx = store.use_context()?;
    for s in all.iter().filter(|s| selected.contains(&s.number)) {
        let refusals: Vec<_> = store
            .protections(s, &ctx)?
            .into_iter()
            .filter(|p| !(a.force && *p == snapguard_local::Protection::Important))
            .collect();
        if let Some(p) = refusals.first() {
            return Err(snapguard_local::Error::Protected {
                config: a.config.clone(),
                number: s.number,
                path: s.path.clone(),
                reason: p.to_string(),
            }
            .into());
        }
    }
    let opts = DeleteOptions {
        allow_important: a.force,
    };
    let mut deleted = Vec::new();
    for n in &selected {
        store.delete_with(*n, &opts)?;
        deleted.push(*n);
        if !g.json && !g.quiet {
            println!("deleted snapshot {n} of {}", a.config);
        }
    }
    if g.json {
        return print_json(&json!({"config": a.config, "deleted": deleted}));
    }
    if selected.is_empty() && !g.quiet {
        println!("no snapshot of {} is in the given ranges", a.config);
    }
    Ok(0)
}

pub fn cleanup(g: &GlobalArgs, a: &CleanupArgs) -> Result<i32> {
    let now = chrono::Utc::now().timestamp();
    each_config(g, a.config.as_deref(), |name| cleanup_one(g, a, name, now))
}

/// Cleans up (or plans) one configuration: its JSON (with `--json`) and exit code.
fn cleanup_one(
    g: &GlobalArgs,
    a: &CleanupArgs,
    name: &str,
    now: i64,
) -> Result<(Option<Value>, i32)> {
    let store = open_store(g, name)?;
    if a.dry_run {
        let plan = cleanup::plan(&store, now)?;
        let incomplete = store.incomplete()?;
        if g.json {
            return Ok((
                Some(json!({
                    "config": name,
                    "dry_run": true,
                    "plan": plan,
                    "incomplete": incomplete.iter().map(|i| json!({
                        "number": i.number,
                        "state": i.state.to_string(),
                        "removable": i.state.removable(),
                    })).collect::<Vec<_>>(),
                })),
                0,
            ));
        }
        println!("config {name}: cleanup plan (dry run, nothing is deleted)");
        for i in &incomplete {
            let what = if i.state.removable() {
                "would remove incomplete entry"
            } else {
                "would leave alone entry"
            };
            println!("  {what} {} ({})", i.number, i.state);
        }
        print_plan(&plan, true);
        return Ok((None, 0));
    }
    let report = cleanup::cleanup(&store, now)?;
    for (n, e) in &report.failed {
        eprintln!("error: config {name}: snapshot {n} was not deleted: {e}");
    }
    for (i, why) in &report.incomplete_left {
        eprintln!(
            "warning: config {name}: entry {} left in place: {why}",
            i.dir.display()
        );
    }
    let code = if report.failed.is_empty() {
        0
    } else {
        exit::FAILURE
    };
    if g.json {
        return Ok((Some(report_json(name, &report)), code));
    }
    if !g.quiet {
        print_report(name, &report);
    }
    Ok((None, code))
}

fn print_plan(plan: &CleanupPlan, dry_run: bool) {
    let verb = if dry_run { "would delete" } else { "delete" };
    for d in &plan.delete {
        println!("  {verb} {} ({})", d.number, d.reason);
    }
    for k in &plan.keep {
        let reasons: Vec<String> = k.reasons.iter().map(ToString::to_string).collect();
        println!("  keep {} ({})", k.number, reasons.join(", "));
    }
    if let Some(s) = &plan.space {
        println!(
            "  space: {} free of {}{}{}",
            render::size(s.fs_free),
            render::size(s.fs_size),
            s.snapshots_bytes
                .map(|b| format!(", snapshots use {}", render::size(b)))
                .unwrap_or_default(),
            if s.remeasure {
                "; space is short: after these deletions it is measured again"
            } else {
                ""
            }
        );
    }
}

fn print_report(name: &str, r: &CleanupReport) {
    for n in &r.incomplete_removed {
        println!("config {name}: removed incomplete entry {n}");
    }
    for d in &r.deleted {
        println!(
            "config {name}: deleted snapshot {} ({})",
            d.number, d.reason
        );
    }
    if r.deleted.is_empty() {
        println!("config {name}: nothing to delete");
    }
    if r.plans.len() > 1 {
        println!(
            "config {name}: {} rounds (free space was measured again after deleting)",
            r.plans.len()
        );
    }
}

fn report_json(name: &str, r: &CleanupReport) -> Value {
    json!({
        "config": name,
        "dry_run": false,
        "deleted": r.deleted,
        "failed": r.failed.iter().map(|(n, e)| json!({"number": n, "error": e})).collect::<Vec<_>>(),
        "incomplete_removed": r.incomplete_removed,
        "incomplete_left": r.incomplete_left.iter().map(|(i, why)| json!({
            "number": i.number, "path": i.dir.display().to_string(), "reason": why,
        })).collect::<Vec<_>>(),
        "plans": r.plans,
    })
}
