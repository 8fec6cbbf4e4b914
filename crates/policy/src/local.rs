//! The local snapshot tier's configuration, one [`LocalConfig`] per `[local.NAME]` section of
//! the configuration file, and its cleanup policy: [`plan_cleanup`] decides which numbered
//! btrfs snapshots `snapguard local cleanup` deletes, and why (see the `cleanup` module).
//!
//! Like the rest of this crate it is pure: no file is read, no path is checked against the
//! filesystem, the clock is a parameter. Whether `subvolume` exists and is a btrfs subvolume is
//! for the snapshot store to find out; here a configuration is checked on its own (absolute
//! paths, counts, fractions, durations), every key with a message saying what is accepted.
//!
//! The retention keys and their defaults follow Snapper's `snapper-configs(5)`; the table in
//! `docs/config.md` gives each key's Snapper equivalent. Two deliberate differences:
//!
//! - Ages (`min_age`, `number_min_age`) are whole seconds as in Snapper (`1800`) or a duration
//!   string read by [`parse_duration`] (`"1h"`, `"2d"`). In those strings `m` means months, as
//!   for `forget --keep-within`, so an age with an `m` unit (`"30m"`) is refused rather than
//!   silently read as 30 months; 30 minutes is `1800`.
//! - `free_limit` and `space_limit` are fractions only; Snapper's absolute sizes are not
//!   accepted.

mod calendar;
mod cleanup;

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::{parse_duration, PolicyError};

pub use cleanup::{
    plan_cleanup, CleanupAlgorithm, CleanupPlan, DeleteReason, KeptSnapshot, LocalKeepReason,
    LocalKind, LocalSnapshotInfo, PlannedDeletion, SpaceInfo, SpaceReport,
};

/// The directory, relative to the subvolume, that holds its snapshots unless `snapshot_dir`
/// says otherwise (Snapper's layout).
pub const DEFAULT_SNAPSHOT_DIR: &str = ".snapshots";

/// One `[local.NAME]` section: a btrfs subvolume whose numbered snapshots SnapGuard manages.
///
/// Deserializing checks every key (see [`LocalConfig::validate`]); a misspelt key is an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLocalConfig")]
pub struct LocalConfig {
    /// The subvolume to snapshot: an absolute path, without `..` components (Snapper
    /// `SUBVOLUME`). Required. Stored without trailing or repeated slashes.
    pub subvolume: PathBuf,
    /// Where the snapshots live; `None` means `<subvolume>/.snapshots`, see
    /// [`LocalConfig::snapshot_dir`]. Absolute, like `subvolume`, and not the subvolume itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_dir: Option<PathBuf>,
    /// How `local cleanup` thins the snapshots; every key has a Snapper-like default.
    pub retention: LocalRetention,
    /// Reserved for the daemon: users other than root who may operate this configuration
    /// (Snapper `ALLOW_USERS`). Read and checked, not yet used by any command.
    pub allow_users: Vec<String>,
    /// `snapguard backup` of exactly this subvolume takes a numbered local snapshot (description
    /// "backup", timeline cleanup) and backs it up, instead of a temporary snapshot it deletes
    /// afterwards (no Snapper equivalent). Default false.
    pub keep_backup_snapshots: bool,
}

/// The file form of [`LocalConfig`]; per-field checks run while deserializing (so a bad value is
/// reported at its own line), the cross-field ones in `TryFrom`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocalConfig {
    #[serde(deserialize_with = "de_path")]
    subvolume: PathBuf,
    #[serde(default, deserialize_with = "de_opt_path")]
    snapshot_dir: Option<PathBuf>,
    #[serde(default)]
    retention: LocalRetention,
    #[serde(default)]
    allow_users: Vec<String>,
    #[serde(default)]
    keep_backup_snapshots: bool,
}

impl TryFrom<RawLocalConfig> for LocalConfig {
    type Error = PolicyError;

    fn try_from(raw: RawLocalConfig) -> Result<Self, PolicyError> {
        let config = LocalConfig {
            subvolume: raw.subvolume,
            snapshot_dir: raw.snapshot_dir,
            retention: raw.retention,
            allow_users: raw.allow_users,
            keep_backup_snapshots: raw.keep_backup_snapshots,
        };
        config.validate()?;
        Ok(config)
    }
}

impl LocalConfig {
    /// A configuration for `subvolume` with the default snapshot directory and retention.
    pub fn new(subvolume: impl Into<PathBuf>) -> Self {
        LocalConfig {
            subvolume: subvolume.into(),
            snapshot_dir: None,
            retention: LocalRetention::default(),
            allow_users: Vec::new(),
            keep_backup_snapshots: false,
        }
    }

    /// The directory holding the snapshots: `snapshot_dir` if set, else
    /// `<subvolume>/.snapshots`.
    pub fn snapshot_dir(&self) -> PathBuf {
        match &self.snapshot_dir {
            Some(dir) => dir.clone(),
            None => self.subvolume.join(DEFAULT_SNAPSHOT_DIR),
        }
    }

    /// Checks the configuration on its own: both paths absolute without `..`, the snapshot
    /// directory not the subvolume itself, no empty user name, and [`LocalRetention::validate`].
    /// The error names the key.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |key: &str, reason: String| PolicyError::InvalidSetting {
            key: key.to_owned(),
            reason,
        };
        check_path(&self.subvolume).map_err(|r| invalid("subvolume", r))?;
        if let Some(dir) = &self.snapshot_dir {
            check_path(dir).map_err(|r| invalid("snapshot_dir", r))?;
            if normalize(dir) == normalize(&self.subvolume) {
                return Err(invalid(
                    "snapshot_dir",
                    format!(
                        "{} is the subvolume itself; snapshots need a directory of their own, \
                         such as {}/{DEFAULT_SNAPSHOT_DIR} (the default when snapshot_dir is \
                         left out)",
                        dir.display(),
                        self.subvolume.display()
                    ),
                ));
            }
        }
        if self.allow_users.iter().any(|u| u.trim().is_empty()) {
            return Err(invalid(
                "allow_users",
                "a user name is empty; list user names such as [\"alice\", \"bob\"]".to_owned(),
            ));
        }
        self.retention.validate()
    }
}

/// How `snapguard local cleanup` thins the snapshots of one configuration (Snapper's
/// `TIMELINE_*`, `NUMBER_*`, `FREE_LIMIT` and `SPACE_LIMIT`). Every key is optional; the
/// defaults are Snapper's. The exact rules are on [`plan_cleanup`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalRetention {
    /// Timeline snapshots: keep the first snapshot of each of the youngest `hourly` hours that
    /// have one (Snapper `TIMELINE_LIMIT_HOURLY`, default 10).
    pub hourly: CountRange,
    /// … of each of the youngest days (`TIMELINE_LIMIT_DAILY`, default 10).
    pub daily: CountRange,
    /// … of each of the youngest weeks, Monday to Sunday (`TIMELINE_LIMIT_WEEKLY`, default 0).
    pub weekly: CountRange,
    /// … of each of the youngest months (`TIMELINE_LIMIT_MONTHLY`, default 10).
    pub monthly: CountRange,
    /// … of each of the youngest quarters (`TIMELINE_LIMIT_QUARTERLY`, default 0).
    pub quarterly: CountRange,
    /// … of each of the youngest years (`TIMELINE_LIMIT_YEARLY`, default 10).
    pub yearly: CountRange,
    /// Seconds: no snapshot younger than this is ever deleted by cleanup (Snapper
    /// `TIMELINE_MIN_AGE`, default 1800). In the file: seconds, or a duration such as `"1h"`.
    #[serde(deserialize_with = "de_age")]
    pub min_age: u64,
    /// Number snapshots: keep the newest `number_limit` (Snapper `NUMBER_LIMIT`, default 50). A
    /// range `"2-10"` keeps 10, and lets space-aware cleanup go down to 2.
    pub number_limit: CountRange,
    /// Seconds: number snapshots younger than this are never deleted (Snapper
    /// `NUMBER_MIN_AGE`, default 1800); `min_age` applies to them as well.
    #[serde(deserialize_with = "de_age")]
    pub number_min_age: u64,
    /// The fraction of the filesystem that must stay free (Snapper `FREE_LIMIT`, default 0.2);
    /// 0 turns the free-space cleanup off.
    #[serde(deserialize_with = "de_free_limit")]
    pub free_limit: f64,
    /// The fraction of the filesystem the snapshots may use, measured by their exclusive sizes
    /// when btrfs quotas give them (Snapper `SPACE_LIMIT`, default 0.5); 1 turns it off.
    #[serde(deserialize_with = "de_space_limit")]
    pub space_limit: f64,
}

/// Snapper's `TIMELINE_MIN_AGE` and `NUMBER_MIN_AGE` default: 30 minutes.
pub const DEFAULT_MIN_AGE_SECS: u64 = 1800;

impl Default for LocalRetention {
    /// Snapper's defaults (snapper-configs(5)).
    fn default() -> Self {
        LocalRetention {
            hourly: CountRange::exactly(10),
            daily: CountRange::exactly(10),
            weekly: CountRange::exactly(0),
            monthly: CountRange::exactly(10),
            quarterly: CountRange::exactly(0),
            yearly: CountRange::exactly(10),
            min_age: DEFAULT_MIN_AGE_SECS,
            number_limit: CountRange::exactly(50),
            number_min_age: DEFAULT_MIN_AGE_SECS,
            free_limit: 0.2,
            space_limit: 0.5,
        }
    }
}

impl LocalRetention {
    /// Checks the values a program may have set directly (deserializing checks them already):
    /// fractions between 0 and 1, ages that fit a signed 64-bit number of seconds. The error
    /// names the key.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |key: &str, reason: String| PolicyError::InvalidSetting {
            key: key.to_owned(),
            reason,
        };
        check_fraction(self.free_limit, FREE_LIMIT_HELP).map_err(|r| invalid("free_limit", r))?;
        check_fraction(self.space_limit, SPACE_LIMIT_HELP)
            .map_err(|r| invalid("space_limit", r))?;
        for (key, age) in [
            ("min_age", self.min_age),
            ("number_min_age", self.number_min_age),
        ] {
            check_age(age).map_err(|r| invalid(key, r))?;
        }
        Ok(())
    }

    /// The timeline counts in the order hourly, daily, weekly, monthly, quarterly, yearly.
    pub(crate) fn timeline(&self) -> [CountRange; 6] {
        [
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.quarterly,
            self.yearly,
        ]
    }
}

/// A count of snapshots to keep, or a range `min-max` as in Snapper: ordinary cleanup keeps
/// `max`; space-aware cleanup (free space or the space limit) may go down to `min`. A single
/// number `n` is the range `n-n`. Written in the file as `10`, `"10"` or `"2-10"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CountRange {
    min: u32,
    max: u32,
}

impl CountRange {
    /// The range `n-n`: keep `n`, also under space pressure.
    pub const fn exactly(n: u32) -> Self {
        CountRange { min: n, max: n }
    }

    /// The range `min-max`, or `None` if `min > max`.
    pub const fn new(min: u32, max: u32) -> Option<Self> {
        if min <= max {
            Some(CountRange { min, max })
        } else {
            None
        }
    }

    /// What space-aware cleanup may go down to.
    pub const fn min(self) -> u32 {
        self.min
    }

    /// What ordinary cleanup keeps.
    pub const fn max(self) -> u32 {
        self.max
    }

    /// Parses `10` or `2-10` (no spaces, no signs).
    pub fn parse(s: &str) -> Result<Self, String> {
        let number = |part: &str| -> Result<u32, String> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{s:?} is not a count: {COUNT_HELP}"));
            }
            part.parse()
                .map_err(|_| format!("{s:?} is too large: a count is at most {}", u32::MAX))
        };
        match s.split_once('-') {
            None => Ok(CountRange::exactly(number(s)?)),
            Some((lo, hi)) => {
                let (lo, hi) = (number(lo)?, number(hi)?);
                CountRange::new(lo, hi).ok_or_else(|| {
                    format!("the range {s:?} is backwards: write the smaller number first, as in \"{hi}-{lo}\"")
                })
            }
        }
    }
}

impl fmt::Display for CountRange {
    /// `10` for `10-10`, else `2-10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.max)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

const COUNT_HELP: &str =
    "give a number of snapshots such as 10, or a range such as \"2-10\" (keep 10, and down to 2 \
     when space runs short)";

impl Serialize for CountRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.min == self.max {
            s.serialize_u32(self.max)
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for CountRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CountRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(COUNT_HELP)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CountRange, E> {
                u32::try_from(v).map(CountRange::exactly).map_err(|_| {
                    E::custom(format!("{v} is too large: a count is at most {}", u32::MAX))
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CountRange, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "{v} is negative; {COUNT_HELP}, or 0 to keep none"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CountRange, E> {
                CountRange::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

const FREE_LIMIT_HELP: &str = "give the fraction of the filesystem that must stay free, between \
                               0 and 1, such as 0.2 for 20 % (0 turns the check off)";
const SPACE_LIMIT_HELP: &str = "give the fraction of the filesystem that snapshots may use, \
                                between 0 and 1, such as 0.5 for 50 % (1 turns the check off)";
const AGE_HELP: &str = "give whole seconds as a number (1800 is 30 minutes, as Snapper's \
                        MIN_AGE) or a duration with the units w, d and h, such as \"1h\", \"2d\" \
                        or \"1d12h\"";

fn check_fraction(v: f64, help: &str) -> Result<f64, String> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is out of range; {help}"))
    }
}

/// Ages are compared with differences of `i64` times, so they must fit an `i64`.
fn check_age(secs: u64) -> Result<u64, String> {
    if i64::try_from(secs).is_ok() {
        Ok(secs)
    } else {
        Err(format!("{secs} seconds is too large; {AGE_HELP}"))
    }
}

/// Reads an age string: [`parse_duration`], with the `m` (months) unit refused because in an
/// age it would almost always be meant as minutes.
fn parse_age(s: &str) -> Result<u64, String> {
    let secs = parse_duration(s).map_err(|_| format!("{s:?} is not a duration; {AGE_HELP}"))?;
    if s.contains('m') {
        return Err(format!(
            "{s:?} would be read as months: in SnapGuard durations m means 30 days (as for \
             forget --keep-within) and there is no minutes unit; {AGE_HELP}"
        ));
    }
    // parse_duration never returns a negative number.
    check_age(secs.unsigned_abs())
}

/// An absolute path without `..` components.
fn check_path(p: &Path) -> Result<(), String> {
    if !p.is_absolute() {
        return Err(format!(
            "{:?} is not an absolute path; give the full path, starting with /",
            p.display().to_string()
        ));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "{} contains \"..\"; give the path without .. components",
            p.display()
        ));
    }
    Ok(())
}

/// The path without repeated or trailing slashes and without `.` components.
fn normalize(p: &Path) -> PathBuf {
    p.components().collect()
}

fn de_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let p = PathBuf::deserialize(d)?;
    check_path(&p).map_err(de::Error::custom)?;
    Ok(normalize(&p))
}

fn de_opt_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let Some(p) = Option::<PathBuf>::deserialize(d)? else {
        return Ok(None);
    };
    check_path(&p).map_err(de::Error::custom)?;
    Ok(Some(normalize(&p)))
}

fn de_fraction<'de, D: Deserializer<'de>>(d: D, help: &'static str) -> Result<f64, D::Error> {
    struct V(&'static str);
    impl Visitor<'_> for V {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            check_fraction(v, self.0).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            self.visit_f64(v as f64)
        }
    }
    d.deserialize_f64(V(help))
}

fn de_free_limit<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    de_fraction(d, FREE_LIMIT_HELP)
}

fn de_space_limit<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    de_fraction(d, SPACE_LIMIT_HELP)
}

fn de_age<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(AGE_HELP)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            check_age(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format!("{v} is negative; {AGE_HELP}"))),
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_age(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
