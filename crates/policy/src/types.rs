//! The data the policy works on and produces: the caller's view of a snapshot
//! ([`SnapshotInfo`]), the policy itself ([`RetentionPolicy`]), and the per-snapshot outcome
//! ([`Decision`] with its [`KeepReason`]s). Validation of a policy lives here too, so a caller
//! can reject a bad policy before it loads any snapshot.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{duration::format_duration, GroupKey, PolicyError};

/// What the policy needs to know about one snapshot.
///
/// The caller builds these from the repository's snapshot files; nothing here is read from disk.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The snapshot's id (typically hex); unique within one call to [`crate::apply`].
    pub id: String,
    /// Seconds since the Unix epoch (UTC) at which the snapshot was taken.
    pub time_secs: i64,
    /// Sub-second part of the time; must be below 1_000_000_000. Used only for ordering.
    pub time_nanos: u32,
    /// The host the snapshot was taken on.
    pub hostname: String,
    /// The source paths of the snapshot, in any order.
    pub paths: Vec<String>,
    /// The snapshot's tags, in any order.
    pub tags: Vec<String>,
    /// Immutability lock: while `now < locked_until` the snapshot is always kept.
    pub locked_until: Option<i64>,
}

/// Which snapshots to keep, per group. All rules are optional; see the crate docs for the exact
/// meaning of each. At least one rule must be able to keep something (see [`Self::is_empty`]).
///
/// Unknown fields are rejected when deserializing, so a misspelt rule in a configuration file is
/// an error rather than a silently missing rule; missing fields take their default (no rule).
#[derive(Default, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep the `n` newest snapshots.
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the `n` most recent hours that have one.
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the `n` most recent days that have one.
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the `n` most recent ISO weeks that have one.
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the `n` most recent months that have one.
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the `n` most recent years that have one.
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot taken at most this many seconds before the group's reference time.
    pub keep_within_secs: Option<i64>,
    /// Keep every snapshot that carries at least one of these tags.
    pub keep_tags: Vec<String>,
}

impl RetentionPolicy {
    /// True if no rule of this policy can keep anything: every count is `None` or `Some(0)`,
    /// there is no keep-within and no keep-tag. Such a policy is refused by [`crate::apply`].
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        counts.iter().all(|c| c.unwrap_or(0) == 0)
            && self.keep_within_secs.is_none()
            && self.keep_tags.is_empty()
    }

    /// Check the policy on its own: not empty, and keep-within not negative.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.is_empty() {
            return Err(PolicyError::EmptyPolicy);
        }
        match self.keep_within_secs {
            Some(d) if d < 0 => Err(PolicyError::NegativeWithin(d)),
            _ => Ok(()),
        }
    }
}

/// Human-readable summary, e.g. `keep-last 3, keep-daily 7, keep-within 30d, keep-tag "x"`.
/// Rules that keep nothing (`None` or `Some(0)`) are left out; an empty policy prints `nothing`.
impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let counts = [
            ("keep-last", self.keep_last),
            ("keep-hourly", self.keep_hourly),
            ("keep-daily", self.keep_daily),
            ("keep-weekly", self.keep_weekly),
            ("keep-monthly", self.keep_monthly),
            ("keep-yearly", self.keep_yearly),
        ];
        for (name, count) in counts {
            if let Some(n) = count.filter(|&n| n > 0) {
                parts.push(format!("{name} {n}"));
            }
        }
        if let Some(d) = self.keep_within_secs {
            parts.push(format!("keep-within {}", format_duration(d)));
        }
        for tag in &self.keep_tags {
            parts.push(format!("keep-tag {tag:?}"));
        }
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// One rule that kept a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepReason {
    /// Among the `keep_last` newest of its group.
    Last,
    /// Newest of one of the `keep_hourly` most recent hours.
    Hourly,
    /// Newest of one of the `keep_daily` most recent days.
    Daily,
    /// Newest of one of the `keep_weekly` most recent ISO weeks.
    Weekly,
    /// Newest of one of the `keep_monthly` most recent months.
    Monthly,
    /// Newest of one of the `keep_yearly` most recent years.
    Yearly,
    /// Inside the keep-within window.
    Within,
    /// Carries this keep-tag.
    Tag(String),
    /// Under an immutability lock that has not yet expired.
    Locked,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Last => f.write_str("last"),
            KeepReason::Hourly => f.write_str("hourly"),
            KeepReason::Daily => f.write_str("daily"),
            KeepReason::Weekly => f.write_str("weekly"),
            KeepReason::Monthly => f.write_str("monthly"),
            KeepReason::Yearly => f.write_str("yearly"),
            KeepReason::Within => f.write_str("within"),
            KeepReason::Tag(tag) => write!(f, "tag {tag:?}"),
            KeepReason::Locked => f.write_str("locked"),
        }
    }
}

/// The outcome for one input snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The snapshot's id.
    pub id: String,
    /// True if at least one rule keeps it; false means `forget` may remove it.
    pub keep: bool,
    /// Every rule that kept it, in the fixed order documented on the crate; empty iff `!keep`.
    pub reasons: Vec<KeepReason>,
    /// The group it was judged in.
    pub group: GroupKey,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::default(RetentionPolicy::default(), true)]
    #[case::all_zero(RetentionPolicy {
        keep_last: Some(0), keep_hourly: Some(0), keep_daily: Some(0), keep_weekly: Some(0),
        keep_monthly: Some(0), keep_yearly: Some(0), ..Default::default()
    }, true)]
    #[case::last(RetentionPolicy { keep_last: Some(1), ..Default::default() }, false)]
    #[case::yearly(RetentionPolicy { keep_yearly: Some(2), ..Default::default() }, false)]
    #[case::within_zero(RetentionPolicy { keep_within_secs: Some(0), ..Default::default() }, false)]
    #[case::tag(RetentionPolicy { keep_tags: vec!["x".into()], ..Default::default() }, false)]
    fn is_empty_cases(#[case] policy: RetentionPolicy, #[case] empty: bool) {
        assert_eq!(policy.is_empty(), empty);
        assert_eq!(
            policy.validate() == Err(PolicyError::EmptyPolicy),
            empty,
            "{policy:?}"
        );
    }

    #[test]
    fn negative_within_is_refused() {
        let policy = RetentionPolicy {
            keep_within_secs: Some(-1),
            ..Default::default()
        };
        assert_eq!(policy.validate(), Err(PolicyError::NegativeWithin(-1)));
    }

    #[rstest]
    #[case(RetentionPolicy::default(), "nothing")]
    #[case(RetentionPolicy { keep_last: Some(3), keep_daily: Some(0), ..Default::default() },
           "keep-last 3")]
    #[case(RetentionPolicy {
        keep_daily: Some(7), keep_within_secs: Some(30 * 86_400),
        keep_tags: vec!["keep me".into()], ..Default::default()
    }, "keep-daily 7, keep-within 30d, keep-tag \"keep me\"")]
    fn policy_display(#[case] policy: RetentionPolicy, #[case] want: &str) {
        assert_eq!(policy.to_string(), want);
    }

    #[rstest]
    #[case(KeepReason::Last, "last")]
    #[case(KeepReason::Weekly, "weekly")]
    #[case(KeepReason::Tag("a".into()), "tag \"a\"")]
    #[case(KeepReason::Locked, "locked")]
    fn reason_display(#[case] reason: KeepReason, #[case] want: &str) {
        assert_eq!(reason.to_string(), want);
    }
}
