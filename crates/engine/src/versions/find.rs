//! Which paths of a snapshot match a glob, for `snapguard find`.
//!
//! Patterns are those of `--exclude`/`--include` ([`crate::filter`]): a pattern without `/`
//! matches an entry's name at any depth, one starting with `/` the whole absolute path, any other
//! a trailing part of the path; `*` does not cross `/`, `**` does. Matching is done by
//! [`PathFilter`] itself, so the two can never disagree.
//!
//! A [`Finder`] keeps, for every tree it has searched, the matches below it, and re-uses them
//! under the right path when the same tree turns up again (in a later snapshot, or at another
//! place). What the matches below a tree depend on is the tree and *part of its path*; the
//! pattern's [`Scope`] says which part, so the memo key is (tree id, that part):
//! - a name pattern (`*.pdf`) looks at names only: the tree id alone decides;
//! - a relative pattern with `n` plain components (`src/*.rs`, `**/Cargo.toml`) looks at the
//!   last `n` components of a path: the tree and the last `n - 1` components of its path decide;
//! - anything else (absolute patterns, `**` or `{…}` or `[…]` or `\` after the first component)
//!   may look at the whole path: the tree and its whole path decide. An absolute pattern also
//!   bounds the search: only directories on its literal leading components are entered, and,
//!   without `**`, none deeper than the pattern.

use crate::filter::PathFilter;
use crate::{Error, Repository, Result};
use snapguard_format::{Node, TreeId};
use std::collections::HashMap;
use std::sync::Arc;

/// What the matches below a tree depend on besides the tree (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Nothing: names only.
    Name,
    /// The last `n` components of the tree's path.
    Suffix(usize),
    /// The tree's whole path.
    Full,
}

/// A compiled `find` pattern.
#[derive(Clone, Debug)]
pub struct PathPattern {
    pattern: String,
    filter: PathFilter,
    scope: Scope,
    /// Absolute patterns: the leading components without glob syntax.
    literal: Vec<String>,
    /// Absolute patterns without `**` (and without `{`, `[` or `\`): their number of components,
    /// which is the depth of every match.
    max_depth: Option<usize>,
}

/// Characters that make a component more than a literal name.
const SYNTAX: &[char] = &['*', '?', '[', ']', '{', '}', '\\', '!'];

impl PathPattern {
    /// Compile `pattern`; an empty or invalid pattern is an [`Error::InvalidArgument`].
    pub fn new(pattern: &str) -> Result<PathPattern> {
        let p = pattern.trim_end_matches('/');
        if p.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "invalid pattern {pattern:?}: it is empty; give a name glob such as '*.pdf' or a path glob such as '/home/*/notes.txt'"
            )));
        }
        let filter = PathFilter::new(&[pattern.to_string()])?;
        let plain = |s: &str| !s.contains("**") && !s.contains(['{', '[', '\\']);
        let (scope, literal, max_depth) = if !p.contains('/') {
            (Scope::Name, Vec::new(), None)
        } else if let Some(rest) = p.strip_prefix('/') {
            let literal = rest
                .split('/')
                .take_while(|c| !c.contains(SYNTAX))
                .map(str::to_string)
                .collect();
            let depth = plain(rest).then(|| rest.split('/').count());
            (Scope::Full, literal, depth)
        } else {
            // The filter matches `/**/{p}`; leading `**/` add nothing to that.
            let mut rest = p;
            while let Some(r) = rest.strip_prefix("**/") {
                rest = r;
            }
            let scope = if plain(rest) {
                Scope::Suffix(rest.split('/').count() - 1)
            } else {
                Scope::Full
            };
            (scope, Vec::new(), None)
        };
        Ok(PathPattern {
            pattern: pattern.to_string(),
            filter,
            scope,
            literal,
            max_depth,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the entry at absolute `path`, whose name is `name`, matches.
    pub fn matches(&self, path: &[u8], name: &[u8]) -> bool {
        self.filter.matches(path, name)
    }

    /// The part of directory `dir` (absolute, `""` for the root) that the matches below it
    /// depend on.
    fn context(&self, dir: &[u8]) -> Vec<u8> {
        match self.scope {
            Scope::Name | Scope::Suffix(0) => Vec::new(),
            Scope::Suffix(n) => {
                // The last n components, with their leading '/'s; fewer if the path is shorter
                // (then it is the whole path, which no longer path has as its last n).
                let mut seen = 0;
                let mut start = dir.len();
                while start > 0 && seen < n {
                    start -= 1;
                    if dir[start] == b'/' {
                        seen += 1;
                    }
                }
                dir[start..].to_vec()
            }
            Scope::Full => dir.to_vec(),
        }
    }

    /// Whether anything at or below directory `dir`, which has `depth` components, can match.
    fn may_descend(&self, dir: &[u8], depth: usize) -> bool {
        if self.max_depth.is_some_and(|m| depth >= m) {
            return false;
        }
        // The filter sees names as lossy UTF-8, so compare them that way too.
        dir.split(|&b| b == b'/')
            .skip(1)
            .zip(&self.literal)
            .all(|(c, lit)| String::from_utf8_lossy(c) == lit.as_str())
    }
}

/// One matching entry of a snapshot.
#[derive(Clone, Debug)]
pub struct FoundEntry {
    /// Its absolute path.
    pub path: Vec<u8>,
    /// Its metadata, without the content list.
    pub node: Arc<Node>,
}

/// The matches in and below one tree.
#[derive(Debug)]
struct Matches {
    /// Only entries that match or have matches below them, in name order.
    entries: Vec<MatchEntry>,
}

#[derive(Debug)]
struct MatchEntry {
    name: Vec<u8>,
    /// The entry itself, if it matches.
    node: Option<Arc<Node>>,
    /// The matches below it, if it is a directory with any.
    below: Option<Arc<Matches>>,
}

/// Searches snapshots for one pattern, remembering the matches below every tree it reads.
pub struct Finder<'r> {
    repo: &'r Repository,
    pattern: PathPattern,
    /// (tree id, context) → the matches below that tree (`None`: there are none).
    memo: HashMap<(TreeId, Vec<u8>), Option<Arc<Matches>>>,
    trees_read: usize,
}

impl<'r> Finder<'r> {
    pub fn new(repo: &'r Repository, pattern: PathPattern) -> Finder<'r> {
        Finder {
            repo,
            pattern,
            memo: HashMap::new(),
            trees_read: 0,
        }
    }

    pub fn pattern(&self) -> &PathPattern {
        &self.pattern
    }

    /// Trees read from the repository so far (each (tree, context) at most once).
    pub fn trees_read(&self) -> usize {
        self.trees_read
    }

    /// Every matching entry of the snapshot with root tree `root`, depth-first in name order.
    pub fn search(&mut self, root: TreeId) -> Result<Vec<FoundEntry>> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        if let Some(m) = self.walk(root, &mut path, 0)? {
            flatten(&m, &mut path, &mut out);
        }
        Ok(out)
    }

    /// The matches below tree `id`, which is directory `dir` (with `depth` components).
    fn walk(
        &mut self,
        id: TreeId,
        dir: &mut Vec<u8>,
        depth: usize,
    ) -> Result<Option<Arc<Matches>>> {
        let key = (id, self.pattern.context(dir));
        if let Some(hit) = self.memo.get(&key) {
            return Ok(hit.clone());
        }
        let tree = self.repo.read_tree(&id)?;
        self.trees_read += 1;
        let mut entries = Vec::new();
        for mut node in tree.nodes {
            let len = dir.len();
            dir.push(b'/');
            dir.extend_from_slice(&node.name);
            let matched = self.pattern.matches(dir, &node.name);
            let below = match node.subtree {
                Some(sub) if self.pattern.may_descend(dir, depth + 1) => {
                    self.walk(sub, dir, depth + 1)?
                }
                _ => None,
            };
            dir.truncate(len);
            if matched || below.is_some() {
                let name = node.name.clone();
                node.content = Vec::new();
                entries.push(MatchEntry {
                    name,
                    node: matched.then(|| Arc::new(node)),
                    below,
                });
            }
        }
        let result = (!entries.is_empty()).then(|| Arc::new(Matches { entries }));
        self.memo.insert(key, result.clone());
        Ok(result)
    }
}

fn flatten(m: &Matches, path: &mut Vec<u8>, out: &mut Vec<FoundEntry>) {
    for e in &m.entries {
        let len = path.len();
        path.push(b'/');
        path.extend_from_slice(&e.name);
        if let Some(node) = &e.node {
            out.push(FoundEntry {
                path: path.clone(),
                node: node.clone(),
            });
        }
        if let Some(below) = &e.below {
            flatten(below, path, out);
        }
        path.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scopes() -> Result<()> {
        let cases: &[(&str, Scope, &[&str], Option<usize>)] = &[
            ("*.pdf", Scope::Name, &[], None),
            ("notes.txt/", Scope::Name, &[], None),
            ("**/Cargo.toml", Scope::Suffix(0), &[], None),
            ("src/*.rs", Scope::Suffix(1), &[], None),
            ("**/**/a/b/c", Scope::Suffix(2), &[], None),
            ("a/**/b", Scope::Full, &[], None),
            ("a/{b,c}", Scope::Full, &[], None),
            ("/home/*/notes.txt", Scope::Full, &["home"], Some(3)),
            ("/home/me/**", Scope::Full, &["home", "me"], None),
            ("/srv/[ab]/x", Scope::Full, &["srv"], None),
            ("/etc/hosts", Scope::Full, &["etc", "hosts"], Some(2)),
        ];
        for (pattern, scope, literal, depth) in cases {
            let p = PathPattern::new(pattern)?;
            assert_eq!(p.scope, *scope, "{pattern}");
            assert_eq!(p.literal, *literal, "{pattern}");
            assert_eq!(p.max_depth, *depth, "{pattern}");
        }
        assert!(matches!(
            PathPattern::new("/"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            PathPattern::new("a/[b"),
            Err(Error::InvalidArgument(_))
        ));
        Ok(())
    }

    #[test]
    fn suffix_context_is_the_last_components() -> Result<()> {
        let p = PathPattern::new("a/b/*.rs")?;
        assert_eq!(p.context(b"/x/y/a/b"), b"/a/b");
        assert_eq!(p.context(b"/b"), b"/b");
        assert_eq!(p.context(b""), b"");
        Ok(())
    }

    fn component() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "x.rs", "é"]).prop_map(str::to_string)
    }

    fn pattern_component() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "a", "b", "*", "?", "a*", "*.rs", "**", "{a,b}", "[!a]", "x.rs", "é",
        ])
        .prop_map(str::to_string)
    }

    fn join(c: &[String]) -> String {
        c.iter().map(|c| format!("/{c}")).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The memo's soundness: entries below two directories with the same context match
        /// alike, and nothing below a directory the search does not enter matches.
        #[test]
        fn context_and_pruning_decide_matches(
            absolute in any::<bool>(),
            pat in prop::collection::vec(pattern_component(), 1..4),
            dir1 in prop::collection::vec(component(), 0..4),
            dir2 in prop::collection::vec(component(), 0..4),
            rel in prop::collection::vec(component(), 1..4),
        ) {
            let text = if absolute { join(&pat) } else { pat.join("/") };
            let p = PathPattern::new(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (d1, d2) = (join(&dir1), join(&dir2));
            let full = |d: &str| format!("{d}{}", join(&rel));
            let name = rel.last().map(String::as_bytes).unwrap_or_default();
            if p.context(d1.as_bytes()) == p.context(d2.as_bytes()) {
                prop_assert_eq!(
                    p.matches(full(&d1).as_bytes(), name),
                    p.matches(full(&d2).as_bytes(), name),
                    "pattern {} under {} and {}", text, d1, d2
                );
            }
            // Pruning: a directory not entered has no match at or below it.
            let mut d = d1.clone();
            for (i, c) in rel.iter().enumerate() {
                if !p.may_descend(d.as_bytes(), dir1.len() + i) {
                    let below = format!("{d}{}", join(&rel[i..]));
                    prop_assert!(!p.matches(below.as_bytes(), name), "{} matches {} below {}", text, below, d);
                    break;
                }
                d.push('/');
                d.push_str(c);
            }
        }
    }
}
