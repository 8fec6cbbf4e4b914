//! `[jobs.NAME]` sections: every kind read from TOML, and the errors a user meets.

use rstest::rstest;
use snapguard_policy::jobs::{JobAction, JobConfig, Timing, DEFAULT_IDLE_DEADLINE_SECS};
use snapguard_policy::schedule::Schedule;
use std::collections::BTreeMap;

fn parse(text: &str) -> Result<BTreeMap<String, JobConfig>, String> {
    #[derive(serde::Deserialize)]
    struct File {
        jobs: BTreeMap<String, JobConfig>,
    }
    toml::from_str::<File>(text)
        .map(|f| f.jobs)
        .map_err(|e| e.to_string())
}

#[test]
fn every_kind_reads() {
    let jobs = parse(
        r#"
        [jobs.home]
        kind = "backup"
        paths = ["/home", "/etc"]
        exclude = ["*.tmp"]
        tags = ["nightly"]
        schedule = "0 3 * * *"
        when = "idle"
        deadline = "4h"

        [jobs.thin]
        kind = "forget"
        schedule = "daily"
        keep_daily = 7
        keep_within = "14d"
        prune = true

        [jobs.prune]
        kind = "prune"
        schedule = "every 7d"

        [jobs.verify]
        kind = "check"
        schedule = "@weekly"
        read_data_subset = "10%"
        notify_success = true

        [jobs.timeline]
        kind = "local-snapshot"
        local = "data"
        schedule = "hourly"
        when = "on-time"

        [jobs.tidy]
        kind = "local-cleanup"
        local = "data"
        schedule = "every 90m"
        when = "idle"
        "#,
    )
    .expect("parses");
    let home = &jobs["home"];
    assert_eq!(
        home.timing,
        Timing::Idle {
            deadline_secs: 4 * 3600
        }
    );
    assert_eq!(home.schedule_text, "0 3 * * *");
    assert!(
        matches!(&home.action, JobAction::Backup { paths, exclude, tags, .. }
        if paths.len() == 2 && exclude == &["*.tmp"] && tags == &["nightly"])
    );
    let JobAction::Forget { policy, prune, .. } = &jobs["thin"].action else {
        panic!("{:?}", jobs["thin"]);
    };
    assert_eq!(policy.keep_daily, Some(7));
    assert_eq!(policy.keep_within_secs, Some(14 * 86_400));
    assert!(prune);
    assert_eq!(jobs["prune"].schedule, Schedule::Every(7 * 86_400));
    assert_eq!(jobs["prune"].action.kind(), "prune");
    assert_eq!(
        jobs["verify"].action,
        JobAction::Check {
            read_data_percent: Some(10)
        }
    );
    assert!(jobs["verify"].notify_success);
    assert_eq!(jobs["timeline"].timing, Timing::OnTime);
    assert_eq!(
        jobs["tidy"].timing,
        Timing::Idle {
            deadline_secs: DEFAULT_IDLE_DEADLINE_SECS
        }
    );
    assert_eq!(jobs["tidy"].action.kind(), "local-cleanup");
}

#[rstest]
#[case(
    r#"kind = "backup"
schedule = "daily""#,
    "needs paths"
)]
#[case(
    r#"kind = "backup"
paths = ["relative/dir"]
schedule = "daily""#,
    "must be absolute"
)]
#[case(
    r#"kind = "backup"
paths = ["/home"]
keep_daily = 7
schedule = "daily""#,
    "keep_daily is not used by kind = \"backup\""
)]
#[case(
    r#"kind = "forget"
schedule = "daily""#,
    "at least one keep_* rule"
)]
#[case(
    r#"kind = "forget"
keep_within = "2 weeks"
schedule = "daily""#,
    "keep_within"
)]
#[case(
    r#"kind = "snapshot"
schedule = "daily""#,
    "not a job kind; use one of backup, forget"
)]
#[case(
    r#"kind = "prune"
schedule = "every 10s""#,
    "at least one minute"
)]
#[case(
    r#"kind = "prune"
schedule = "61 * * * *""#,
    "outside 0-59"
)]
#[case(
    r#"kind = "prune"
schedule = "daily"
when = "later""#,
    "use \"idle\""
)]
#[case(
    r#"kind = "prune"
schedule = "daily"
deadline = "1h""#,
    "only used with when = \"idle\""
)]
#[case(
    r#"kind = "prune"
schedule = "daily"
when = "idle"
deadline = "soon""#,
    "not a duration"
)]
#[case(
    r#"kind = "check"
schedule = "daily"
read_data_subset = "0%""#,
    "from 1% to 100%"
)]
#[case(
    r#"kind = "local-cleanup"
schedule = "daily""#,
    "needs local = \"NAME\""
)]
#[case(
    r#"kind = "prune"
schedule = "daily"
paths = ["/x"]
local = "data""#,
    "paths, local are not used by kind = \"prune\""
)]
#[case(
    r#"kind = "prune"
schedule = "daily"
shedule = "daily""#,
    "unknown field `shedule`"
)]
#[case(r#"kind = "prune""#, "missing field `schedule`")]
fn mistakes_are_named(#[case] body: &str, #[case] says: &str) {
    let e = parse(&format!("[jobs.x]\n{body}\n")).expect_err("must fail");
    assert!(e.contains(says), "{body}\n→ {e}");
}
