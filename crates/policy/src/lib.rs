//! The retention policy of `snapguard forget`: given a list of snapshots and a policy, decide
//! which snapshots to keep and record every rule that kept each one. Also the local snapshot
//! tier's configuration ([`LocalConfig`], `[local.NAME]` in the configuration file) and its
//! Snapper-style cleanup ([`plan_cleanup`]); the rest of this page is about `forget`.
//!
//! This crate is pure. It does no I/O, never reads the clock (the caller passes `now_secs` and
//! the local UTC offset) and uses no randomness, so the same input always yields the same
//! [`Decision`]s, whatever order the snapshots are given in. [`chrono`] is used only for
//! calendar arithmetic on the timestamps it is handed.
//!
//! # Semantics
//!
//! The rules follow restic's `forget` policies, with the differences called out below.
//!
//! **Groups.** Snapshots are first divided into groups by [`GroupBy`] (by default host and
//! paths; `GroupBy::parse("")` puts every snapshot into one group). The policy is applied to
//! each group on its own: `keep_last: Some(3)` keeps three snapshots *per group*. A group's
//! [`GroupKey`] holds the sorted, de-duplicated paths and tags, so `["/b", "/a"]` and
//! `["/a", "/b"]` share a group.
//!
//! **Order.** Inside a group, snapshots are sorted newest first by `(time_secs, time_nanos)`;
//! snapshots with equal times are ordered by ascending `id`, so "newest" is always well defined.
//! [`apply`] returns one [`Decision`] per input snapshot, groups in [`GroupKey`] order, each
//! group newest first.
//!
//! **Rules.** Each rule is evaluated independently over the whole sorted group, and a snapshot is
//! kept if *any* rule keeps it. [`Decision::reasons`] lists every rule that kept it, in the order
//! `Last, Hourly, Daily, Weekly, Monthly, Yearly, Within, Tag(..), Locked`. Because the rules do
//! not interact, adding a rule or raising a count can only keep more snapshots, never fewer.
//!
//! - `keep_last: Some(n)` keeps the `n` newest snapshots.
//! - `keep_hourly`, `keep_daily`, `keep_weekly`, `keep_monthly`, `keep_yearly` with `Some(n)`
//!   keep the newest snapshot of each of the `n` most recent distinct calendar buckets *that
//!   contain a snapshot* (empty buckets are skipped, not counted). Buckets are computed on local
//!   wall time, `time_secs + utc_offset_secs`: an hour of a day; a calendar day; an ISO 8601 week
//!   (ISO week-year and week number, so 2024-12-30 falls in week 1 of 2025); a year and month;
//!   a year. A single fixed offset is used for every snapshot, so there are no DST jumps.
//! - `keep_within_secs: Some(d)` keeps every snapshot whose `time_secs >= reference - d`, where
//!   `reference = min(newest time_secs in the group, now_secs)`. See below.
//! - `keep_tags` keeps every snapshot carrying at least one of the listed tags (exact,
//!   case-sensitive match). Each matching tag is recorded as its own [`KeepReason::Tag`].
//! - Independently of the policy, a snapshot whose `locked_until` is later than `now_secs` is
//!   always kept with [`KeepReason::Locked`]: an immutability lock cannot be overridden by a
//!   retention policy.
//!
//! A count of `Some(0)` is the same as `None`.
//!
//! **Why keep-within is measured from `min(newest, now)`.** restic measures `--keep-within`
//! from the newest snapshot of the group; measuring from `now` is the other obvious choice.
//! Forgetting is destructive, so the reference is chosen so that the window keeps the *union*
//! of what both would keep:
//!
//! - Measured from `now`, a host whose backups silently stopped loses its keep-within
//!   snapshots one by one on every scheduled `forget`, exactly when they are most needed, and
//!   a clock that jumped forward on the machine running `forget` empties the window. Measured
//!   from the newest snapshot, the window depends only on the repository's data, and the most
//!   recent `d` of history always survives.
//! - Measured from the newest snapshot alone, a single snapshot with a future timestamp (a
//!   client with a wrong clock) drags the window forward and can leave every genuine snapshot
//!   outside it. Clamping the reference to `now` keeps everything within `d` of the present.
//!
//! In the normal case (newest snapshot not in the future) this is exactly restic's rule. The
//! comparison uses whole seconds (`time_nanos` is ignored), so the boundary is inclusive.
//!
//! **Refusing to delete everything.** A policy for which [`RetentionPolicy::is_empty`] is true
//! (every count `None` or `Some(0)`, no keep-within, no keep-tags) is rejected with
//! [`PolicyError::EmptyPolicy`] instead of marking every snapshot for removal. A negative
//! keep-within, two snapshots with the same id, a timestamp that has no calendar date, or a UTC
//! offset of a day or more are also errors; nothing is decided unless the whole input is valid.
//!
//! **Differences from restic**, all deliberate:
//!
//! - keep-within is clamped to `now` (above); restic measures from the newest snapshot only.
//! - keep-tag keeps a snapshot carrying *any* listed tag; restic's `--keep-tag a,b` needs both.
//! - There is no "unlimited" count; use a count larger than the number of snapshots.
//! - restic 0.17+ additionally keeps the oldest snapshot of a group when a calendar rule runs
//!   out of snapshots before its count; here a rule keeps exactly what the definition above
//!   says, so `keep_monthly: Some(12)` on two months of history keeps two snapshots.
//! - There are no `keep-within-hourly`-style rules; immutability locks have no restic
//!   counterpart.
//! - Calendar buckets use one fixed UTC offset chosen by the caller, not a time zone with DST.
//!
//! **Using the result.** A front end such as `snapguard forget` should call
//! [`RetentionPolicy::validate`] (and [`GroupBy::parse`], [`parse_duration`]) before loading
//! any snapshot, so a bad command line fails fast; then call [`apply`] once with all snapshots,
//! print the decisions group by group (each [`GroupKey`] and [`KeepReason`] has a `Display`
//! form), and delete only ids whose [`Decision::keep`] is false. Nothing in a decision depends
//! on anything but the arguments, so a dry run shows exactly what the real run will do when
//! given the same `now`.
//!
//! **Durations.** [`parse_duration`] reads keep-within values such as `30d` or `2y5m7d3h` into
//! seconds, with fixed-length units: `y` = 365 days, `m` = 30 days, `w` = 7 days, `d` = 24 hours,
//! `h` = 3600 seconds. Note that `m` means *months*, as in restic; there is no minutes unit.
//!
//! # Example
//!
//! ```
//! use snapguard_policy::{apply, GroupBy, KeepReason, RetentionPolicy, SnapshotInfo};
//!
//! let snap = |id: &str, time_secs: i64| SnapshotInfo {
//!     id: id.into(),
//!     time_secs,
//!     time_nanos: 0,
//!     hostname: "box".into(),
//!     paths: vec!["/home".into()],
//!     tags: vec![],
//!     locked_until: None,
//! };
//! // Three snapshots on 2024-01-01 and one on 2024-01-02 (UTC).
//! let day = 86_400;
//! let base = 1_704_067_200;
//! let snaps = [
//!     snap("a", base + 3600),
//!     snap("b", base + 7200),
//!     snap("c", base + day),
//!     snap("d", base),
//! ];
//! let policy = RetentionPolicy { keep_daily: Some(7), ..Default::default() };
//! let decisions = apply(&snaps, &policy, GroupBy::default(), base + 2 * day, 0)?;
//!
//! let kept: Vec<&str> = decisions.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect();
//! assert_eq!(kept, ["c", "b"]); // the newest of each day
//! assert_eq!(decisions[0].reasons, [KeepReason::Daily]);
//! # Ok::<(), snapguard_policy::PolicyError>(())
//! ```

mod apply;
mod duration;
mod group;
pub mod jobs;
mod local;
pub mod schedule;
mod types;

pub use apply::apply;
pub use duration::{format_duration, parse_duration};
pub use group::{GroupBy, GroupKey};
pub use local::{
    plan_cleanup, CleanupAlgorithm, CleanupPlan, CountRange, DeleteReason, KeptSnapshot,
    LocalConfig, LocalKeepReason, LocalKind, LocalRetention, LocalSnapshotInfo, PlannedDeletion,
    SpaceInfo, SpaceReport, DEFAULT_MIN_AGE_SECS, DEFAULT_SNAPSHOT_DIR,
};
pub use types::{Decision, KeepReason, RetentionPolicy, SnapshotInfo};

/// Why a policy, a group-by specification, a duration or an input could not be used.
///
/// Every variant is a refusal to decide: [`apply`] never returns a partial result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy keeps nothing by rule, so applying it would remove every unlocked snapshot.
    #[error(
        "the retention policy is empty: it would remove every snapshot; \
         give at least one keep rule with a count above zero, a keep-within or a keep-tag"
    )]
    EmptyPolicy,
    /// `keep_within_secs` was negative.
    #[error("keep-within must not be negative, got {0} seconds")]
    NegativeWithin(i64),
    /// A `--group-by` specification could not be parsed.
    #[error("invalid group-by {input:?}: {reason}")]
    InvalidGroupBy {
        /// The specification as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A duration such as `2y5m7d3h` could not be parsed.
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration {
        /// The duration as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two input snapshots share an id, so decisions by id would be ambiguous.
    #[error("snapshot id {0:?} appears more than once")]
    DuplicateId(String),
    /// A snapshot's time has no calendar date (or its nanoseconds are 1e9 or more).
    #[error("snapshot {id:?} has an out-of-range time ({secs} s, {nanos} ns)")]
    InvalidTime {
        /// The snapshot's id.
        id: String,
        /// Its `time_secs`.
        secs: i64,
        /// Its `time_nanos`.
        nanos: u32,
    },
    /// The UTC offset is a day or more away from UTC.
    #[error("UTC offset {0} s is out of range (must be strictly between -86400 and 86400)")]
    InvalidUtcOffset(i32),
    /// A setting of a `[local.NAME]` configuration is out of range or malformed.
    #[error("invalid {key}: {reason}")]
    InvalidSetting {
        /// The key, as written in the configuration file (`free_limit`, `subvolume`, …).
        key: String,
        /// What is wrong with it and what is accepted.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Every refusal reads as a sentence a user can act on, quoting what was wrong.
    #[rstest]
    #[case(PolicyError::EmptyPolicy, "would remove every snapshot")]
    #[case(PolicyError::NegativeWithin(-3), "got -3 seconds")]
    #[case(PolicyError::DuplicateId("ab12".into()), "\"ab12\" appears more than once")]
    #[case(
        PolicyError::InvalidUtcOffset(90_000),
        "UTC offset 90000 s is out of range"
    )]
    #[case(
        PolicyError::InvalidTime { id: "ab12".into(), secs: 5, nanos: 1_000_000_000 },
        "snapshot \"ab12\" has an out-of-range time (5 s, 1000000000 ns)"
    )]
    #[case(
        PolicyError::InvalidGroupBy { input: "hosts".into(), reason: "unknown".into() },
        "invalid group-by \"hosts\": unknown"
    )]
    #[case(
        PolicyError::InvalidDuration { input: "7x".into(), reason: "bad unit".into() },
        "invalid duration \"7x\": bad unit"
    )]
    #[case(
        PolicyError::InvalidSetting { key: "free_limit".into(), reason: "2 is out of range".into() },
        "invalid free_limit: 2 is out of range"
    )]
    fn error_messages(#[case] err: PolicyError, #[case] part: &str) {
        let msg = err.to_string();
        assert!(msg.contains(part), "{msg}");
    }
}
