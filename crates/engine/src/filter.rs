//! Glob filters for `--exclude`/`--include`, shared by backup and restore.
//!
//! A pattern without `/` matches an entry's name at any depth (`*.o`, `node_modules`); a pattern
//! starting with `/` is matched against the whole absolute path; any other pattern matches a
//! trailing part of the path (`build/*.o` = `**/build/*.o`). `*` does not cross `/`, `**` does.

use crate::{Error, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A set of compiled patterns.
#[derive(Debug, Clone)]
pub struct PathFilter {
    names: GlobSet,
    paths: GlobSet,
    empty: bool,
}

impl PathFilter {
    pub fn new(patterns: &[String]) -> Result<PathFilter> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let p = p.trim_end_matches('/');
            if p.is_empty() {
                continue;
            }
            let build = |pat: &str| {
                GlobBuilder::new(pat)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| Error::InvalidArgument(format!("invalid pattern {p:?}: {e}")))
            };
            if !p.contains('/') {
                names.add(build(p)?);
            } else if p.starts_with('/') {
                paths.add(build(p)?);
            } else {
                paths.add(build(&format!("/**/{p}"))?);
            }
        }
        let build_err = |e: globset::Error| Error::InvalidArgument(e.to_string());
        Ok(PathFilter {
            names: names.build().map_err(build_err)?,
            paths: paths.build().map_err(build_err)?,
            empty: patterns.iter().all(|p| p.trim_end_matches('/').is_empty()),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether the entry at absolute path `path` (with last component `name`) matches.
    pub fn matches(&self, path: &[u8], name: &[u8]) -> bool {
        if self.empty {
            return false;
        }
        let name = String::from_utf8_lossy(name);
        let path = String::from_utf8_lossy(path);
        self.names.is_match(name.as_ref()) || self.paths.is_match(path.as_ref())
    }
}

/// Read patterns from an exclude file: one per line, `#` comments and blank lines ignored.
pub fn read_pattern_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_kinds() -> Result<()> {
        let f = PathFilter::new(&[
            "*.o".into(),
            "/tmp/x/cache".into(),
            "build/out".into(),
            "deep/**/z".into(),
        ])?;
        let cases: &[(&str, bool)] = &[
            ("/src/a.o", true),
            ("/src/a.c", false),
            ("/tmp/x/cache", true),
            ("/tmp/x/cache2", false),
            ("/home/p/build/out", true),
            ("/home/p/build/out2", false),
            ("/a/deep/b/c/z", true),
        ];
        for (path, want) in cases {
            let name = path.rsplit('/').next().unwrap_or("");
            assert_eq!(f.matches(path.as_bytes(), name.as_bytes()), *want, "{path}");
        }
        assert!(PathFilter::new(&[])?.is_empty());
        assert!(PathFilter::new(&["[".into()]).is_err());
        Ok(())
    }
}
