//! Where a restic snapshot's entries go in the SnapGuard snapshot.
//!
//! A SnapGuard snapshot's tree starts at `/`: a backup of `/home/me` holds `/home/me/...`, and
//! its `paths` name where in the tree the backed-up data is. restic does the same for absolute
//! targets, but stores a relative target (`restic backup docs` run in `/home/me`) under its
//! relative name (`/docs`), and `.` as the tree's root, while `paths` holds the absolute path
//! (`/home/me/docs`). Leading `..` components are dropped (`../x` is stored as `/x`).
//!
//! So each of restic's `paths` is matched with the longest of its tails that the tree holds:
//! the top-level entry where that tail starts is placed under the rest of the path. An absolute
//! backup matches whole and stays where it is. If the paths do not fit the tree consistently,
//! the tree stays as restic stored it and the snapshot records its top-level entries as paths.

use std::collections::BTreeMap;

/// Path components (no empty, `.` or `..` ones).
pub(crate) type Components = Vec<Vec<u8>>;

/// The outcome: a directory to put each top-level entry under, and the paths to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Top-level entry name → the directory it goes into (empty: the root).
    pub under: BTreeMap<Vec<u8>, Components>,
    /// For top-level entries `under` does not name.
    pub default_under: Components,
    /// The snapshot's paths (absolute).
    pub paths: Vec<Vec<u8>>,
    /// Why the tree was left as restic stored it, if it was.
    pub note: Option<String>,
}

/// The components of an absolute, clean path; None for anything else.
pub(crate) fn components(path: &str) -> Option<Components> {
    if !path.starts_with('/') {
        return None;
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c.as_bytes().to_vec()),
        }
    }
    Some(out)
}

/// Whether the tree holds a path (components from its root).
pub(crate) type Exists<'a, E> = dyn FnMut(&[Vec<u8>]) -> Result<bool, E> + 'a;

/// Work out the placement for restic `paths`, given the tree's `tops` (top-level names) and
/// `exists`, which says whether the tree holds a path (given as components from its root).
pub(crate) fn place<E>(
    paths: &[String],
    tops: &[Vec<u8>],
    exists: &mut Exists<'_, E>,
) -> Result<Placement, E> {
    let as_stored = |why: String| {
        let mut recorded: Vec<Vec<u8>> = tops
            .iter()
            .map(|t| {
                let mut p = b"/".to_vec();
                p.extend_from_slice(t);
                p
            })
            .collect();
        if recorded.is_empty() {
            recorded.push(b"/".to_vec());
        }
        Placement {
            under: BTreeMap::new(),
            default_under: Vec::new(),
            paths: recorded,
            note: Some(why),
        }
    };
    let mut under: BTreeMap<Vec<u8>, Components> = BTreeMap::new();
    let mut default_under: Option<Components> = None;
    let mut parsed = Vec::new();
    for p in paths {
        let Some(comps) = components(p) else {
            return Ok(as_stored(format!(
                "restic recorded the path {p:?}, which is not absolute and clean"
            )));
        };
        parsed.push(comps);
    }
    if parsed.is_empty() {
        return Ok(as_stored("restic recorded no paths".into()));
    }
    for comps in &parsed {
        // The longest tail the tree holds; the empty tail (the tree's root is the path itself,
        // as for 'restic backup .') if no other.
        let mut k = comps.len();
        for i in 0..comps.len() {
            if tops.contains(&comps[i]) && exists(&comps[i..])? {
                k = i;
                break;
            }
        }
        let dir = comps[..k].to_vec();
        if k < comps.len() {
            let top = comps[k].clone();
            if under.get(&top).is_some_and(|d| *d != dir) {
                return Ok(as_stored(format!(
                    "restic's paths put /{} in two places",
                    String::from_utf8_lossy(&top)
                )));
            }
            under.insert(top, dir);
        } else if default_under.as_ref().is_some_and(|d| *d != dir) {
            return Ok(as_stored(
                "restic's paths name two different directories as the tree's root".into(),
            ));
        } else {
            default_under = Some(dir);
        }
    }
    if let Some(d) = &default_under {
        // The root is one path's content; other paths must then have matched at the root too.
        if under.values().any(|u| u != d) {
            return Ok(as_stored(
                "restic's paths do not fit the tree it stored".into(),
            ));
        }
    }
    Ok(Placement {
        under,
        default_under: default_under.unwrap_or_default(),
        paths: paths.iter().map(|p| p.as_bytes().to_vec()).collect(),
        note: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn c(p: &str) -> Components {
        components(p).expect("absolute")
    }

    /// A tree given as the set of paths it holds.
    fn placed(paths: &[&str], tree: &[&str]) -> Placement {
        let set: BTreeSet<Components> = tree.iter().map(|p| c(p)).collect();
        let tops: Vec<Vec<u8>> = set
            .iter()
            .filter(|p| p.len() == 1)
            .map(|p| p[0].clone())
            .collect();
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        place::<()>(&paths, &tops, &mut |p: &[Vec<u8>]| Ok(set.contains(p)))
            .expect("no lookup errors")
    }

    #[test]
    fn absolute_backups_stay_where_they_are() {
        let p = placed(
            &["/home/me/docs", "/etc"],
            &["/home", "/home/me", "/home/me/docs", "/etc", "/etc/x"],
        );
        assert_eq!(p.note, None);
        assert_eq!(p.under.get(b"home".as_slice()), Some(&Vec::new()));
        assert_eq!(p.under.get(b"etc".as_slice()), Some(&Vec::new()));
        assert_eq!(p.paths, vec![b"/home/me/docs".to_vec(), b"/etc".to_vec()]);
    }

    #[test]
    fn a_relative_backup_goes_under_its_directory() {
        // 'restic backup docs' in /home/me.
        let p = placed(&["/home/me/docs"], &["/docs", "/docs/a"]);
        assert_eq!(p.note, None);
        assert_eq!(p.under.get(b"docs".as_slice()), Some(&c("/home/me")));
    }

    #[test]
    fn dot_makes_the_root_the_path() {
        // 'restic backup .' in /home/me.
        let p = placed(&["/home/me"], &["/docs", "/music"]);
        assert_eq!(p.note, None);
        assert!(p.under.is_empty());
        assert_eq!(p.default_under, c("/home/me"));
    }

    #[test]
    fn relative_targets_with_dot_dot_each_find_their_place() {
        // 'restic backup ../other/x d' in /tmp/rt/src.
        let p = placed(
            &["/tmp/rt/other/x", "/tmp/rt/src/d"],
            &["/d", "/d/a", "/other", "/other/x", "/other/x/y"],
        );
        assert_eq!(p.note, None);
        assert_eq!(p.under.get(b"other".as_slice()), Some(&c("/tmp/rt")));
        assert_eq!(p.under.get(b"d".as_slice()), Some(&c("/tmp/rt/src")));
    }

    #[test]
    fn inconsistent_paths_keep_the_tree_as_stored() {
        let p = placed(&["/a/x", "/b/x"], &["/x"]);
        assert!(p.note.is_some());
        assert!(p.under.is_empty());
        assert_eq!(p.default_under, Vec::<Vec<u8>>::new());
        assert_eq!(p.paths, vec![b"/x".to_vec()]);
        let p = placed(&["relative"], &["/x"]);
        assert!(p.note.is_some());
    }

    #[test]
    fn components_reject_what_is_not_absolute_and_clean() {
        assert_eq!(components("/"), Some(vec![]));
        assert_eq!(components("/a//b/./c/"), Some(c("/a/b/c")));
        assert_eq!(components("a/b"), None);
        assert_eq!(components("/a/../b"), None);
    }
}
