//! Reading `[local.NAME]` sections: the issue's minimal form, every key, Snapper's defaults,
//! and every rejected value with a message that says what is accepted.

use super::*;
use rstest::rstest;
use std::collections::BTreeMap;

/// What the CLI does: a map of named sections.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    local: BTreeMap<String, LocalConfig>,
}

fn parse(text: &str) -> Result<LocalConfig, String> {
    toml::from_str::<File>(text)
        .map(|f| f.local.into_values().next().unwrap())
        .map_err(|e| e.message().to_owned())
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("{text:?} was accepted as {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn minimal_form_from_the_issue() {
    let c = parse(
        r#"
        [local.data]                      # CONFIG name "data"
        subvolume = "/mnt/pool/data"      # snapshots default to <subvolume>/.snapshots
        [local.data.retention]
        hourly = 10
        daily = 7
        "#,
    )
    .unwrap();
    assert_eq!(c.subvolume, Path::new("/mnt/pool/data"));
    assert_eq!(c.snapshot_dir, None);
    assert_eq!(c.snapshot_dir(), Path::new("/mnt/pool/data/.snapshots"));
    assert!(c.allow_users.is_empty());
    let want = LocalRetention {
        hourly: CountRange::exactly(10),
        daily: CountRange::exactly(7),
        ..LocalRetention::default()
    };
    assert_eq!(c.retention, want);
}

#[test]
fn defaults_are_snappers() {
    let r = LocalRetention::default();
    let counts: Vec<u32> = r.timeline().iter().map(|c| c.max()).collect();
    assert_eq!(counts, [10, 10, 0, 10, 0, 10]);
    assert_eq!(r.number_limit, CountRange::exactly(50));
    assert_eq!((r.min_age, r.number_min_age), (1800, 1800));
    assert_eq!((r.free_limit, r.space_limit), (0.2, 0.5));
    let c = parse("[local.x]\nsubvolume = \"/x\"\n").unwrap();
    assert_eq!(c.retention, r);
    assert_eq!(c, LocalConfig::new("/x"));
}

#[test]
fn every_key() {
    let c = parse(
        r#"
        [local.home]
        subvolume = "/home/"
        snapshot_dir = "//srv/snaps//home/"
        allow_users = ["alice", "bob"]
        [local.home.retention]
        hourly = "24"
        daily = "3-7"
        weekly = 4
        monthly = 0
        quarterly = 2
        yearly = "0-1"
        min_age = "1h"
        number_limit = "2-10"
        number_min_age = 600
        free_limit = 0
        space_limit = 1
        "#,
    )
    .unwrap();
    assert_eq!(c.subvolume, Path::new("/home"));
    assert_eq!(c.snapshot_dir(), Path::new("/srv/snaps/home"));
    assert_eq!(c.allow_users, ["alice", "bob"]);
    let r = &c.retention;
    assert_eq!(r.hourly, CountRange::exactly(24));
    assert_eq!(r.daily, CountRange::new(3, 7).unwrap());
    assert_eq!(
        (r.weekly.max(), r.monthly.max(), r.quarterly.max()),
        (4, 0, 2)
    );
    assert_eq!((r.yearly.min(), r.yearly.max()), (0, 1));
    assert_eq!((r.min_age, r.number_min_age), (3600, 600));
    assert_eq!((r.number_limit.min(), r.number_limit.max()), (2, 10));
    assert_eq!((r.free_limit, r.space_limit), (0.0, 1.0));
}

#[rstest]
#[case("1800", 1800)]
#[case("0", 0)]
#[case("\"12h\"", 12 * 3600)]
#[case("\"2d\"", 2 * 86_400)]
#[case("\"1w2d3h\"", 9 * 86_400 + 3 * 3600)]
#[case("\"1y\"", 365 * 86_400)]
fn ages(#[case] value: &str, #[case] secs: u64) {
    let c = parse(&format!(
        "[local.x]\nsubvolume = \"/x\"\n[local.x.retention]\nmin_age = {value}\nnumber_min_age = {value}\n"
    ))
    .unwrap();
    assert_eq!(
        (c.retention.min_age, c.retention.number_min_age),
        (secs, secs)
    );
}

#[rstest]
#[case::relative("subvolume = \"mnt/data\"", "\"mnt/data\" is not an absolute path")]
#[case::empty("subvolume = \"\"", "is not an absolute path")]
#[case::dotdot("subvolume = \"/mnt/../data\"", "contains \"..\"")]
#[case::dir_relative(
    "subvolume = \"/d\"\nsnapshot_dir = \"snaps\"",
    "\"snaps\" is not an absolute path"
)]
#[case::dir_is_subvolume(
    "subvolume = \"/mnt/d\"\nsnapshot_dir = \"/mnt/d/\"",
    "invalid snapshot_dir: /mnt/d is the subvolume itself"
)]
#[case::missing("snapshot_dir = \"/s\"", "missing field `subvolume`")]
#[case::unknown_key("subvolume = \"/d\"\nsubvol = \"/d\"", "unknown field `subvol`")]
#[case::empty_user(
    "subvolume = \"/d\"\nallow_users = [\"\"]",
    "invalid allow_users: a user name is empty"
)]
#[case::not_a_path("subvolume = 5", "invalid type: integer `5`")]
fn bad_section(#[case] body: &str, #[case] says: &str) {
    let e = err(&format!("[local.x]\n{body}\n"));
    assert!(e.contains(says), "{body}: {e}");
}

#[rstest]
#[case::negative_count("hourly = -1", "-1 is negative; give a number of snapshots")]
#[case::huge_count("daily = 4294967296", "4294967296 is too large")]
#[case::float_count("weekly = 1.5", "give a number of snapshots such as 10")]
#[case::bad_range("number_limit = \"10-2\"", "the range \"10-2\" is backwards")]
#[case::range_sign("number_limit = \"-5\"", "\"-5\" is not a count")]
#[case::range_spaces("number_limit = \"2 - 10\"", "\"2 - 10\" is not a count")]
#[case::range_three("number_limit = \"1-2-3\"", "\"1-2-3\" is not a count")]
#[case::range_huge("number_limit = \"1-99999999999\"", "is too large")]
#[case::minutes("min_age = \"30m\"", "\"30m\" would be read as months")]
#[case::months_inside("number_min_age = \"1d2m\"", "is not a duration")]
#[case::min_unit("min_age = \"5min\"", "\"5min\" is not a duration; give whole seconds")]
#[case::seconds_unit("min_age = \"30s\"", "\"30s\" is not a duration")]
#[case::negative_age("min_age = -1", "-1 is negative; give whole seconds")]
#[case::huge_age("min_age = \"999999999999y\"", "is not a duration")]
#[case::float_age("min_age = 1.5", "give whole seconds as a number")]
#[case::free_high(
    "free_limit = 1.5",
    "1.5 is out of range; give the fraction of the filesystem that must stay free"
)]
#[case::free_negative("free_limit = -0.1", "-0.1 is out of range")]
#[case::free_nan("free_limit = nan", "NaN is out of range")]
#[case::free_percent("free_limit = \"20%\"", "between 0 and 1, such as 0.2")]
#[case::space_high(
    "space_limit = 2",
    "2 is out of range; give the fraction of the filesystem that snapshots may use"
)]
#[case::space_inf("space_limit = inf", "inf is out of range")]
#[case::unknown("hourli = 3", "unknown field `hourli`")]
#[case::snapper_name("TIMELINE_LIMIT_HOURLY = 3", "unknown field `TIMELINE_LIMIT_HOURLY`")]
fn bad_retention(#[case] line: &str, #[case] says: &str) {
    let e = err(&format!(
        "[local.x]\nsubvolume = \"/x\"\n[local.x.retention]\n{line}\n"
    ));
    assert!(e.contains(says), "{line}: {e}");
}

#[test]
fn validate_names_the_key() {
    let mut c = LocalConfig::new("/data");
    assert_eq!(c.validate(), Ok(()));
    c.retention.space_limit = 1.01;
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.starts_with("invalid space_limit: 1.01 is out of range"),
        "{e}"
    );
    c.retention.space_limit = 0.5;
    c.retention.number_min_age = u64::MAX;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("invalid number_min_age: "), "{e}");
    c.retention.number_min_age = 0;
    c.snapshot_dir = Some("rel".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.starts_with("invalid snapshot_dir: \"rel\" is not an absolute path"),
        "{e}"
    );
    let e = LocalConfig::new("data").validate().unwrap_err().to_string();
    assert!(e.starts_with("invalid subvolume: "), "{e}");
}

#[rstest]
#[case("10", CountRange::exactly(10), "10")]
#[case("0", CountRange::exactly(0), "0")]
#[case("2-10", CountRange { min: 2, max: 10 }, "2-10")]
#[case("5-5", CountRange::exactly(5), "5")]
#[case("0-4294967295", CountRange { min: 0, max: u32::MAX }, "0-4294967295")]
fn count_ranges(#[case] input: &str, #[case] want: CountRange, #[case] shown: &str) {
    assert_eq!(CountRange::parse(input), Ok(want));
    assert_eq!(want.to_string(), shown);
    assert_eq!(CountRange::parse(shown), Ok(want));
}

#[test]
fn count_range_bounds() {
    assert_eq!(CountRange::new(3, 2), None);
    assert_eq!(
        CountRange::new(2, 3).map(|r| (r.min(), r.max())),
        Some((2, 3))
    );
    for bad in ["", "-", "1-", "-1", "a", "+1", "1 ", "0x10", "10-2"] {
        assert!(CountRange::parse(bad).is_err(), "{bad:?} accepted");
    }
}

/// A configuration written back (as the CLI's `--json` would) reads back the same.
#[test]
fn serialize_round_trip() {
    let mut c = LocalConfig::new("/data");
    c.snapshot_dir = Some("/snaps".into());
    c.retention.number_limit = CountRange::new(2, 10).unwrap();
    c.retention.min_age = 3600;
    let file = File {
        local: BTreeMap::from([("data".to_owned(), c.clone())]),
    };
    let text = toml::to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("number_limit = \"2-10\""), "{text}");
    assert!(text.contains("hourly = 10"), "{text}");
    assert_eq!(parse(&text), Ok(c));
}
