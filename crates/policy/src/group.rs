//! Grouping of snapshots before the policy is applied: [`GroupBy`] says which snapshot fields
//! split the groups (parsed from restic-style `--group-by host,paths,tags`), and [`GroupKey`]
//! is the value of those fields for one group. Paths and tags are sorted and de-duplicated in
//! the key, so their order in a snapshot never changes its group; keys order totally, so groups
//! are always reported in the same order.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::{PolicyError, SnapshotInfo};

/// Which fields of a snapshot split it into groups. All false means one group for everything.
///
/// The default is `host,paths`, as in restic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct GroupBy {
    /// Group by hostname.
    pub host: bool,
    /// Group by the (sorted) set of source paths.
    pub paths: bool,
    /// Group by the (sorted) set of tags.
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// No grouping: the policy is applied to all snapshots together.
    pub const NONE: GroupBy = GroupBy {
        host: false,
        paths: false,
        tags: false,
    };

    /// Parse a comma-separated list of `host`, `paths` and `tags`, e.g. `"host,paths"`.
    ///
    /// The empty string (or only whitespace) means no grouping. Spaces around items are ignored;
    /// unknown, empty or repeated items are errors that quote the whole input.
    pub fn parse(s: &str) -> Result<GroupBy, PolicyError> {
        let err = |reason: String| PolicyError::InvalidGroupBy {
            input: s.to_owned(),
            reason,
        };
        let mut out = GroupBy::NONE;
        if s.trim().is_empty() {
            return Ok(out);
        }
        for item in s.split(',').map(str::trim) {
            let field = match item {
                "host" => &mut out.host,
                "paths" => &mut out.paths,
                "tags" => &mut out.tags,
                "" => return Err(err("empty item between commas".to_owned())),
                other => {
                    return Err(err(format!(
                        "unknown field {other:?}; use host, paths and/or tags, comma-separated, \
                         or an empty string for no grouping"
                    )))
                }
            };
            if *field {
                return Err(err(format!("{item:?} is given more than once")));
            }
            *field = true;
        }
        Ok(out)
    }

    /// The key of the group `snapshot` belongs to under this grouping.
    pub fn key_for(self, snapshot: &SnapshotInfo) -> GroupKey {
        GroupKey {
            hostname: self.host.then(|| snapshot.hostname.clone()),
            paths: self.paths.then(|| sorted_unique(&snapshot.paths)),
            tags: self.tags.then(|| sorted_unique(&snapshot.tags)),
        }
    }
}

impl FromStr for GroupBy {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GroupBy::parse(s)
    }
}

/// The canonical specification, accepted by [`GroupBy::parse`]: e.g. `host,paths`, or the
/// empty string for no grouping.
impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.host, "host"),
            (self.paths, "paths"),
            (self.tags, "tags"),
        ];
        let on: Vec<&str> = names.iter().filter(|(b, _)| *b).map(|(_, n)| *n).collect();
        f.write_str(&on.join(","))
    }
}

fn sorted_unique(items: &[String]) -> Vec<String> {
    let mut v = items.to_vec();
    v.sort();
    v.dedup();
    v
}

/// The grouping fields' values for one group; a field is `None` when not grouped by.
///
/// Ordered field by field (hostname, then paths, then tags), so a list of groups sorts stably.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    /// The hostname, when grouping by host.
    pub hostname: Option<String>,
    /// The sorted, de-duplicated paths, when grouping by paths.
    pub paths: Option<Vec<String>>,
    /// The sorted, de-duplicated tags, when grouping by tags.
    pub tags: Option<Vec<String>>,
}

/// E.g. `host "box", paths ["/etc", "/home"]`; `all snapshots` when nothing is grouped by.
impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.hostname {
            parts.push(format!("host {h:?}"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths {p:?}"));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags {t:?}"));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rstest::rstest;

    const fn gb(host: bool, paths: bool, tags: bool) -> GroupBy {
        GroupBy { host, paths, tags }
    }

    #[rstest]
    #[case("", gb(false, false, false))]
    #[case("  ", gb(false, false, false))]
    #[case("host", gb(true, false, false))]
    #[case("paths", gb(false, true, false))]
    #[case("tags", gb(false, false, true))]
    #[case("host,paths", gb(true, true, false))]
    #[case("paths,host", gb(true, true, false))]
    #[case("host, tags", gb(true, false, true))]
    #[case("host,paths,tags", gb(true, true, true))]
    fn parses(#[case] input: &str, #[case] want: GroupBy) {
        assert_eq!(GroupBy::parse(input), Ok(want));
        assert_eq!(input.parse::<GroupBy>(), Ok(want));
    }

    #[rstest]
    #[case::unknown("hosts", "unknown field \"hosts\"")]
    #[case::case_sensitive("Host", "unknown field \"Host\"")]
    #[case::trailing_comma("host,", "empty item")]
    #[case::double_comma("host,,paths", "empty item")]
    #[case::repeated("host,host", "more than once")]
    #[case::other_separator("host paths", "unknown field")]
    fn rejects(#[case] input: &str, #[case] reason_part: &str) {
        match GroupBy::parse(input) {
            Err(PolicyError::InvalidGroupBy { input: got, reason }) => {
                assert_eq!(got, input);
                assert!(reason.contains(reason_part), "{input:?}: {reason}");
            }
            other => panic!("{input:?} gave {other:?}"),
        }
    }

    #[rstest]
    #[case(GroupBy::default(), "host,paths")]
    #[case(GroupBy::NONE, "")]
    #[case(gb(true, true, true), "host,paths,tags")]
    #[case(gb(false, false, true), "tags")]
    fn display_round_trips(#[case] group_by: GroupBy, #[case] want: &str) {
        assert_eq!(group_by.to_string(), want);
        assert_eq!(GroupBy::parse(want), Ok(group_by));
    }

    fn snap(host: &str, paths: &[&str], tags: &[&str]) -> SnapshotInfo {
        SnapshotInfo {
            id: "x".into(),
            time_secs: 0,
            time_nanos: 0,
            hostname: host.into(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            locked_until: None,
        }
    }

    #[test]
    fn key_sorts_and_dedups_paths_and_tags() {
        let s = snap("box", &["/b", "/a", "/b"], &["z", "a"]);
        let key = gb(true, true, true).key_for(&s);
        assert_eq!(key.hostname.as_deref(), Some("box"));
        assert_eq!(key.paths.unwrap(), ["/a", "/b"]);
        assert_eq!(key.tags.unwrap(), ["a", "z"]);
    }

    #[test]
    fn key_leaves_ungrouped_fields_out() {
        let s = snap("box", &["/a"], &["t"]);
        assert_eq!(GroupBy::NONE.key_for(&s), GroupKey::default());
        let key = GroupBy::default().key_for(&s);
        assert_eq!(key.tags, None);
        assert_eq!(key.paths, Some(vec!["/a".to_owned()]));
    }

    #[test]
    fn keys_order_by_host_then_paths_then_tags() {
        let k = |h: &str, p: &[&str]| gb(true, true, false).key_for(&snap(h, p, &[]));
        let mut keys = [
            k("b", &["/a"]),
            k("a", &["/z"]),
            k("a", &["/a", "/b"]),
            k("a", &["/a"]),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"host "a", paths ["/a"]"#,
                r#"host "a", paths ["/a", "/b"]"#,
                r#"host "a", paths ["/z"]"#,
                r#"host "b", paths ["/a"]"#,
            ]
        );
        assert_eq!(GroupKey::default().to_string(), "all snapshots");
    }
}
