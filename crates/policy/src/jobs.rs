//! The daemon's jobs: one `[jobs.NAME]` section of the configuration file each, read into a
//! [`JobConfig`] that is checked while the file is read (the CLI's `config` module names the
//! file and line of an error). Which kinds exist, and the keys each takes:
//!
//! ```toml
//! [jobs.home]                 # back up on a schedule
//! kind = "backup"
//! paths = ["/home"]
//! exclude = ["*.tmp"]         # optional, as `backup --exclude`
//! tags = ["nightly"]          # optional
//! schedule = "0 3 * * *"      # cron, @daily/daily, or "every 6h"
//! when = "idle"               # optional: wait for an idle machine …
//! deadline = "6h"             # … but start at most this long after the scheduled time
//!
//! [jobs.thin]                 # forget by a retention policy, optionally prune
//! kind = "forget"
//! schedule = "daily"
//! keep_daily = 7
//! keep_weekly = 4
//! prune = true
//!
//! [jobs.prune]
//! kind = "prune"
//! schedule = "weekly"
//!
//! [jobs.verify]               # check, reading a share of the data
//! kind = "check"
//! schedule = "@weekly"
//! read_data_subset = "10%"    # optional: "N%" or "all"
//!
//! [jobs.data-timeline]        # local btrfs snapshots of [local.data] and their cleanup
//! kind = "local-snapshot"     # or "local-cleanup"
//! local = "data"
//! schedule = "hourly"
//! ```
//!
//! A key that does not belong to the job's kind is an error naming both, so a forget policy
//! written under a backup job is not silently ignored.

use crate::schedule::Schedule;
use crate::{parse_duration, RetentionPolicy};
use serde::Deserialize;
use std::path::PathBuf;

/// One `[jobs.NAME]` section.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawJob")]
pub struct JobConfig {
    pub schedule: Schedule,
    /// The schedule as written, for display.
    pub schedule_text: String,
    pub timing: Timing,
    pub action: JobAction,
    /// Notify on success as well as on failure (failures always notify where notification is
    /// configured).
    pub notify_success: bool,
}

/// When, relative to its scheduled time, a job starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// At the scheduled time.
    OnTime,
    /// After the scheduled time, once the machine is idle, and at the latest `deadline_secs`
    /// after the scheduled time.
    Idle { deadline_secs: i64 },
}

/// What a job does.
#[derive(Clone, Debug, PartialEq)]
pub enum JobAction {
    Backup {
        paths: Vec<PathBuf>,
        exclude: Vec<String>,
        tags: Vec<String>,
        host: Option<String>,
        one_file_system: bool,
    },
    Forget {
        policy: RetentionPolicy,
        group_by: Option<String>,
        prune: bool,
    },
    Prune,
    Check {
        /// Percent of the packs to read (1-100); `None` reads no data.
        read_data_percent: Option<u8>,
    },
    LocalSnapshot {
        local: String,
    },
    LocalCleanup {
        local: String,
    },
}

impl JobAction {
    /// The `kind` value of this action.
    pub fn kind(&self) -> &'static str {
        match self {
            JobAction::Backup { .. } => "backup",
            JobAction::Forget { .. } => "forget",
            JobAction::Prune => "prune",
            JobAction::Check { .. } => "check",
            JobAction::LocalSnapshot { .. } => "local-snapshot",
            JobAction::LocalCleanup { .. } => "local-cleanup",
        }
    }
}

/// Idle jobs without a `deadline` start at most this long after their scheduled time.
pub const DEFAULT_IDLE_DEADLINE_SECS: i64 = 6 * 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
struct RawJob {
    kind: String,
    schedule: String,
    when: Option<String>,
    deadline: Option<String>,
    notify_success: Option<bool>,
    // backup
    paths: Option<Vec<PathBuf>>,
    exclude: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    host: Option<String>,
    one_file_system: Option<bool>,
    // forget
    keep_last: Option<u32>,
    keep_hourly: Option<u32>,
    keep_daily: Option<u32>,
    keep_weekly: Option<u32>,
    keep_monthly: Option<u32>,
    keep_yearly: Option<u32>,
    keep_within: Option<String>,
    keep_tags: Option<Vec<String>>,
    group_by: Option<String>,
    prune: Option<bool>,
    // check
    read_data_subset: Option<String>,
    // local-snapshot, local-cleanup
    local: Option<String>,
}

const KINDS: &str = "backup, forget, prune, check, local-snapshot, local-cleanup";

impl RawJob {
    /// The keys given that belong to kinds other than `kind`.
    fn foreign_keys(&self, kind: &str) -> Vec<&'static str> {
        let given: [(&'static str, bool, &[&str]); 17] = [
            ("paths", self.paths.is_some(), &["backup"]),
            ("exclude", self.exclude.is_some(), &["backup"]),
            ("tags", self.tags.is_some(), &["backup"]),
            ("host", self.host.is_some(), &["backup"]),
            (
                "one_file_system",
                self.one_file_system.is_some(),
                &["backup"],
            ),
            ("keep_last", self.keep_last.is_some(), &["forget"]),
            ("keep_hourly", self.keep_hourly.is_some(), &["forget"]),
            ("keep_daily", self.keep_daily.is_some(), &["forget"]),
            ("keep_weekly", self.keep_weekly.is_some(), &["forget"]),
            ("keep_monthly", self.keep_monthly.is_some(), &["forget"]),
            ("keep_yearly", self.keep_yearly.is_some(), &["forget"]),
            ("keep_within", self.keep_within.is_some(), &["forget"]),
            ("keep_tags", self.keep_tags.is_some(), &["forget"]),
            ("group_by", self.group_by.is_some(), &["forget"]),
            ("prune", self.prune.is_some(), &["forget"]),
            (
                "read_data_subset",
                self.read_data_subset.is_some(),
                &["check"],
            ),
            (
                "local",
                self.local.is_some(),
                &["local-snapshot", "local-cleanup"],
            ),
        ];
        given
            .into_iter()
            .filter(|(_, set, kinds)| *set && !kinds.contains(&kind))
            .map(|(name, ..)| name)
            .collect()
    }
}

impl TryFrom<RawJob> for JobConfig {
    type Error = String;

    fn try_from(raw: RawJob) -> Result<Self, String> {
        let kind = raw.kind.as_str();
        if !KINDS.split(", ").any(|k| k == kind) {
            return Err(format!(
                "kind = {kind:?} is not a job kind; use one of {KINDS}"
            ));
        }
        let foreign = raw.foreign_keys(kind);
        if !foreign.is_empty() {
            return Err(format!(
                "{} {} not used by kind = {kind:?}; remove {} or change the kind",
                foreign.join(", "),
                if foreign.len() == 1 { "is" } else { "are" },
                if foreign.len() == 1 { "it" } else { "them" },
            ));
        }
        let schedule = Schedule::parse(&raw.schedule).map_err(|e| e.to_string())?;
        let timing = match (raw.when.as_deref(), &raw.deadline) {
            (None | Some("on-time"), None) => Timing::OnTime,
            (None | Some("on-time"), Some(_)) => {
                return Err("deadline is only used with when = \"idle\"".into())
            }
            (Some("idle"), d) => {
                let deadline_secs = match d {
                    None => DEFAULT_IDLE_DEADLINE_SECS,
                    Some(d) => parse_deadline(d)?,
                };
                Timing::Idle { deadline_secs }
            }
            (Some(w), _) => {
                return Err(format!(
                    "when = {w:?} is not known; use \"idle\" (wait for an idle machine) or \"on-time\" (the default)"
                ))
            }
        };
        let action = match kind {
            "backup" => {
                let paths = raw.paths.unwrap_or_default();
                if paths.is_empty() {
                    return Err("a backup job needs paths, such as paths = [\"/home\"]".to_string());
                }
                if let Some(p) = paths.iter().find(|p| !p.is_absolute()) {
                    return Err(format!(
                        "paths of a job must be absolute (the daemon has no working directory of yours): {}",
                        p.display()
                    ));
                }
                JobAction::Backup {
                    paths,
                    exclude: raw.exclude.unwrap_or_default(),
                    tags: raw.tags.unwrap_or_default(),
                    host: raw.host,
                    one_file_system: raw.one_file_system.unwrap_or(false),
                }
            }
            "forget" => {
                let policy = RetentionPolicy {
                    keep_last: raw.keep_last,
                    keep_hourly: raw.keep_hourly,
                    keep_daily: raw.keep_daily,
                    keep_weekly: raw.keep_weekly,
                    keep_monthly: raw.keep_monthly,
                    keep_yearly: raw.keep_yearly,
                    keep_within_secs: raw
                        .keep_within
                        .as_deref()
                        .map(parse_duration)
                        .transpose()
                        .map_err(|e| format!("keep_within: {e}"))?,
                    keep_tags: raw.keep_tags.unwrap_or_default(),
                };
                policy.validate().map_err(|e| {
                    format!(
                        "{e} (a forget job needs at least one keep_* rule, such as keep_daily = 7)"
                    )
                })?;
                JobAction::Forget {
                    policy,
                    group_by: raw.group_by,
                    prune: raw.prune.unwrap_or(false),
                }
            }
            "prune" => JobAction::Prune,
            "check" => JobAction::Check {
                read_data_percent: raw
                    .read_data_subset
                    .as_deref()
                    .map(parse_subset)
                    .transpose()?,
            },
            _ => {
                let Some(local) = raw.local else {
                    return Err(format!(
                        "a {kind} job needs local = \"NAME\", the [local.NAME] section it works on"
                    ));
                };
                if kind == "local-snapshot" {
                    JobAction::LocalSnapshot { local }
                } else {
                    JobAction::LocalCleanup { local }
                }
            }
        };
        Ok(JobConfig {
            schedule,
            schedule_text: raw.schedule,
            timing,
            action,
            notify_success: raw.notify_success.unwrap_or(false),
        })
    }
}

/// `6h`, `30m`, `1d` (hours, minutes, days; as schedule intervals).
fn parse_deadline(text: &str) -> Result<i64, String> {
    match Schedule::parse(&format!("every {text}")) {
        Ok(Schedule::Every(secs)) => Ok(secs),
        _ => Err(format!(
            "deadline = {text:?} is not a duration of at least a minute, such as \"6h\" or \"90m\""
        )),
    }
}

/// `10%` or `all`.
fn parse_subset(text: &str) -> Result<u8, String> {
    if text == "all" {
        return Ok(100);
    }
    text.strip_suffix('%')
        .and_then(|n| n.trim().parse::<u8>().ok())
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| {
            format!("read_data_subset = {text:?}: give a percentage from 1% to 100%, or \"all\"")
        })
}
