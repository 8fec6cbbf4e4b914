//! Commands that change which snapshots exist and how they are labelled: forget (by id or
//! policy), tag, annotate, lock (immutability).

use crate::args::*;
use crate::commands::open;
use crate::maintenance::prune_options;
use crate::render;
use anyhow::Result;
use serde_json::json;
use snapguard_engine::lock::LockKind;
use snapguard_engine::prune;

fn policy_of(a: &ForgetArgs) -> Result<Option<snapguard_policy::RetentionPolicy>> {
    let p = snapguard_policy::RetentionPolicy {
        keep_last: a.keep_last,
        keep_hourly: a.keep_hourly,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_yearly: a.keep_yearly,
        keep_within_secs: a
            .keep_within
            .as_deref()
            .map(snapguard_policy::parse_duration)
            .transpose()?,
        keep_tags: a.keep_tags.clone(),
    };
    let any = a.keep_last.is_some()
        || a.keep_hourly.is_some()
        || a.keep_daily.is_some()
        || a.keep_weekly.is_some()
        || a.keep_monthly.is_some()
        || a.keep_yearly.is_some()
        || a.keep_within.is_some()
        || !a.keep_tags.is_empty();
    Ok(any.then_some(p))
}

fn local_offset() -> i32 {
    chrono::Local::now().offset().local_minus_utc()
}

pub fn forget(g: &GlobalArgs, a: &ForgetArgs) -> Result<i32> {
    let policy = policy_of(a)?;
    if policy.is_some() && !a.snapshots.is_empty() {
        return Err(crate::usage!(
            "give either snapshot ids or a policy, not both"
        ));
    }
    if policy.is_none() && a.snapshots.is_empty() {
        return Err(crate::usage!("nothing to forget: name snapshots or give a policy (--keep-last, --keep-daily, --keep-within, …)"));
    }
    let group_by = snapguard_policy::GroupBy::parse(&a.group_by)?;
    let prune_opts = prune_options(&a.prune_options)?;
    let (mut repo, _lock) = open(g, LockKind::Exclusive, "forget")?;
    if !a.dry_run {
        repo.ensure_deletable("forget")?;
    }
    let mut ids = Vec::new();
    for s in &a.snapshots {
        match repo.find_snapshot(s) {
            Ok((id, _)) => ids.push(id),
            // A damaged snapshot file can still be forgotten by its id.
            Err(snapguard_engine::Error::Corrupt { .. }) if s != "latest" => {
                ids.push(repo.resolve_snapshot_name(s)?)
            }
            Err(e) => return Err(e.into()),
        }
    }
    let now = render::now();
    let (views, damaged) = snapguard_engine::annotate::views(&repo)?;
    for e in &damaged {
        eprintln!("warning: {e}; it is neither kept nor removed");
    }
    let opts = snapguard_engine::forget::ForgetOptions {
        ids,
        policy,
        group_by: Some(group_by),
        now,
        utc_offset_secs: local_offset(),
    };
    let mut decisions = snapguard_engine::forget::plan(&views, &opts)?;
    snapguard_engine::forget::keep_retained(&repo, &mut decisions, &opts)?;
    let remove = decisions.iter().filter(|d| !d.keep).count();
    if g.json && a.dry_run {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"dry_run": true, "snapshots": decisions}))?
        );
        return Ok(0);
    }
    if !g.json && !g.quiet {
        let mut group = None;
        for d in &decisions {
            if group.as_ref() != Some(&d.group) && !d.group.is_empty() {
                println!("group: {}", d.group);
                group = Some(d.group.clone());
            }
            println!(
                "  {} {}  {:<20} {:<16} {}",
                if d.keep { "keep  " } else { "remove" },
                d.short_id,
                render::local(snapguard_format::Timestamp {
                    secs: d.time_secs,
                    nanos: 0
                }),
                d.hostname,
                d.reasons.join(", ")
            );
        }
        println!(
            "{} snapshot(s) to keep, {} to remove",
            decisions.len() - remove,
            remove
        );
    }
    if a.dry_run {
        if !g.json {
            println!("dry run: nothing was changed");
        }
        return Ok(0);
    }
    let removed = snapguard_engine::forget::execute(&repo, &decisions, now)?;
    if !g.json && !g.quiet {
        println!("removed {removed} snapshot(s)");
    }
    let mut out = json!({"dry_run": false, "snapshots": decisions, "removed": removed});
    if a.prune {
        let plan = prune::plan(&repo, &prune_opts)?;
        let stats = prune::execute(&mut repo, &plan)?;
        if !g.json && !g.quiet {
            println!(
                "prune: deleted {} pack(s), wrote {} new pack(s), freed about {}",
                stats.packs_deleted,
                stats.packs_written,
                render::size(plan.bytes_freed)
            );
            crate::object_lock::print_retained(&plan.retained);
            crate::object_lock::print_retained(&stats.retained);
        }
        out["prune"] = json!({"plan": plan, "result": stats});
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(0)
}

fn current_view(
    repo: &snapguard_engine::Repository,
    spec: &str,
) -> Result<snapguard_engine::annotate::SnapshotView> {
    let (id, snap) = repo.find_snapshot(spec)?;
    Ok(snapguard_engine::annotate::view_of(repo, id, snap)?)
}

fn print_view(g: &GlobalArgs, v: &snapguard_engine::annotate::SnapshotView) -> Result<i32> {
    if g.json {
        println!("{}", serde_json::to_string_pretty(&render::view_json(v))?);
    } else if !g.quiet {
        println!(
            "snapshot {}: tags [{}]{}{}",
            v.id.short(),
            v.tags.join(", "),
            v.comment
                .as_ref()
                .map(|c| format!(", comment {c:?}"))
                .unwrap_or_default(),
            v.lock_until
                .map(|u| format!(", immutable until {}", render::rfc3339(u)))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

pub fn tag(g: &GlobalArgs, a: &TagArgs) -> Result<i32> {
    if a.add.is_empty() && a.remove.is_empty() {
        return Err(crate::usage!(
            "nothing to change: give --add TAG and/or --remove TAG"
        ));
    }
    let (repo, _lock) = open(g, LockKind::Shared, "tag")?;
    let v = current_view(&repo, &a.snapshot)?;
    let change = snapguard_engine::annotate::AnnotationChange {
        add_tags: a.add.clone(),
        remove_tags: a.remove.clone(),
        ..Default::default()
    };
    snapguard_engine::annotate::annotate(&repo, &v, &change, render::now())?;
    print_view(g, &current_view(&repo, &v.id.to_hex())?)
}

pub fn annotate(g: &GlobalArgs, a: &AnnotateArgs) -> Result<i32> {
    let (repo, _lock) = open(g, LockKind::Shared, "annotate")?;
    let v = current_view(&repo, &a.snapshot)?;
    let change = snapguard_engine::annotate::AnnotationChange {
        comment: Some(a.comment.clone()),
        ..Default::default()
    };
    snapguard_engine::annotate::annotate(&repo, &v, &change, render::now())?;
    print_view(g, &current_view(&repo, &v.id.to_hex())?)
}

pub fn lock(g: &GlobalArgs, a: &LockArgs) -> Result<i32> {
    let now = render::now();
    let until = match (&a.until, &a.for_) {
        (Some(u), _) => render::parse_time(u)?,
        (None, Some(f)) => snapguard_format::Timestamp {
            secs: now.secs + snapguard_policy::parse_duration(f)?,
            nanos: 0,
        },
        (None, None) => return Err(crate::usage!("give --until TIME or --for DURATION")),
    };
    if until <= now {
        return Err(crate::usage!("the lock must end in the future"));
    }
    let (repo, _lock) = open(g, LockKind::Shared, "lock")?;
    let v = current_view(&repo, &a.snapshot)?;
    // Before the annotation is written: on a copy without S3 Object Lock, fail unchanged.
    snapguard_engine::object_lock::ensure_retainable(&repo, v.id)?;
    if v.lock_until.is_some_and(|cur| cur >= until) {
        // The storage retention is (re)applied anyway: an earlier run may have stopped
        // half-way, and extending is idempotent.
        crate::object_lock::extend(g, &repo, v.id, v.lock_until.unwrap_or(until))?;
        println!(
            "snapshot {} is already immutable until {}",
            v.id.short(),
            render::rfc3339(v.lock_until.unwrap_or(until))
        );
        return Ok(0);
    }
    let change = snapguard_engine::annotate::AnnotationChange {
        lock_until: Some(until),
        ..Default::default()
    };
    snapguard_engine::annotate::annotate(&repo, &v, &change, now)?;
    // After the annotation, so the new annotation file is retained too.
    let extended = crate::object_lock::extend(g, &repo, v.id, until)?;
    let view = current_view(&repo, &v.id.to_hex())?;
    if let (true, Some(s)) = (g.json, &extended) {
        let mut out = render::view_json(&view);
        out["object_lock"] = crate::object_lock::summary_json(s, until);
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    print_view(g, &view)
}
