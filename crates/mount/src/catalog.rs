//! The snapshots the mount shows, with their directory names, tags and hosts.
//!
//! The catalog is re-read when a top-level directory is listed or looked up and the last
//! reading is older than [`REFRESH_AFTER`], so snapshots made while the repository is mounted
//! appear within a second. Re-reading is incremental: only snapshot files not seen before are
//! opened, annotations are re-read only when their set of files changed, and the index is
//! reloaded only when new snapshots appeared (their data is in index files written after ours
//! was loaded).

use crate::store::Store;
use snapguard_backend::FileType;
use snapguard_engine::annotate;
use snapguard_format::{AnnotationFile, AnnotationId, SnapshotFile, SnapshotId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How old the catalog may be when a top-level directory is read.
pub(crate) const REFRESH_AFTER: Duration = Duration::from_secs(1);

/// One snapshot as the mount shows it.
#[derive(Debug)]
pub(crate) struct Snap {
    pub id: SnapshotId,
    pub file: SnapshotFile,
    /// Directory name: `<time>-<short id>`, e.g. `2026-11-24T10:15:00Z-1a2b3c4d`.
    pub name: String,
    /// Effective tags (annotations applied).
    pub tags: Vec<String>,
}

/// A consistent list of snapshots, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// Changes whenever the set of snapshots changes (history listings are cached per
    /// generation).
    pub generation: u64,
    pub snaps: Vec<Arc<Snap>>,
    pub by_name: HashMap<String, Arc<Snap>>,
    /// Directory name of a tag → its snapshots, oldest first.
    pub tags: BTreeMap<String, Vec<Arc<Snap>>>,
    /// Directory name of a host → its snapshots, oldest first.
    pub hosts: BTreeMap<String, Vec<Arc<Snap>>>,
}

impl Catalog {
    pub fn latest(&self) -> Option<&Arc<Snap>> {
        self.snaps.last()
    }
}

/// A snapshot's directory name. Times sort as text (UTC, fixed width for years 0-9999).
pub(crate) fn snapshot_name(id: &SnapshotId, file: &SnapshotFile) -> String {
    format!("{}-{}", time_name(file), id.short())
}

fn time_name(file: &SnapshotFile) -> String {
    chrono::DateTime::from_timestamp(file.time.secs, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{}s", file.time.secs))
}

/// A tag or host name as a directory name: `/`, `%` and NUL are percent-encoded, and so is
/// every character of a name that would otherwise be empty, `.` or `..`.
pub(crate) fn dir_name(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    let all = s == "." || s == "..";
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if all || matches!(c, '/' | '%' | '\0') {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

struct State {
    current: Arc<Catalog>,
    refreshed: Option<Instant>,
    files: HashMap<SnapshotId, SnapshotFile>,
    /// Snapshot files that could not be read (reported once).
    unreadable: HashSet<String>,
    annotation_names: BTreeSet<String>,
    annotations: HashMap<SnapshotId, Vec<(AnnotationId, AnnotationFile)>>,
}

pub(crate) struct Catalogs {
    state: Mutex<State>,
}

impl Catalogs {
    pub fn new() -> Catalogs {
        Catalogs {
            state: Mutex::new(State {
                current: Arc::new(Catalog::default()),
                refreshed: None,
                files: HashMap::new(),
                unreadable: HashSet::new(),
                annotation_names: BTreeSet::new(),
                annotations: HashMap::new(),
            }),
        }
    }

    /// The catalog, re-read first if it is older than `max_age`. A failed re-read is logged
    /// and the previous catalog kept.
    pub fn get(&self, store: &Store, max_age: Duration) -> Arc<Catalog> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.refreshed.is_some_and(|t| t.elapsed() < max_age) {
            return st.current.clone();
        }
        if let Err(e) = refresh(&mut st, store) {
            tracing::warn!("cannot re-read the snapshot list: {e}; showing the previous one");
        }
        st.refreshed = Some(Instant::now());
        st.current.clone()
    }

    /// The current catalog without re-reading.
    pub fn current(&self) -> Arc<Catalog> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .clone()
    }
}

fn refresh(st: &mut State, store: &Store) -> snapguard_engine::Result<()> {
    let (listing, annotation_listing) = {
        let repo = store.repo();
        let be = |e| snapguard_engine::Error::Backend {
            location: repo.location(),
            cause: e,
        };
        let snaps = repo.backend().list(FileType::Snapshot).map_err(be)?;
        let anns = repo.backend().list(FileType::Annotation).map_err(be)?;
        (snaps, anns)
    };
    let mut present = HashSet::new();
    let mut added = false;
    for (name, _) in &listing {
        let Ok(id) = SnapshotId::from_hex(name) else {
            if st.unreadable.insert(name.clone()) {
                tracing::warn!("snapshots/{name} is not named by a snapshot id; skipping it (run 'snapguard check')");
            }
            continue;
        };
        present.insert(id);
        if st.files.contains_key(&id) || st.unreadable.contains(name) {
            continue;
        }
        match store.repo().load_snapshot(&id) {
            Ok(f) => {
                st.files.insert(id, f);
                added = true;
            }
            Err(e @ snapguard_engine::Error::Corrupt { .. }) => {
                st.unreadable.insert(name.clone());
                tracing::warn!("{e}; skipping it (run 'snapguard check')");
            }
            Err(e) => return Err(e),
        }
    }
    let before = st.files.len();
    st.files.retain(|id, _| present.contains(id));
    let removed = st.files.len() != before;

    let names: BTreeSet<String> = annotation_listing.into_iter().map(|(n, _)| n).collect();
    let annotations_changed = names != st.annotation_names;
    if annotations_changed {
        st.annotations = annotate::load(&store.repo())?;
        st.annotation_names = names;
    }
    if added {
        // The new snapshots' blobs are in index files written after ours was loaded.
        store.reload_index()?;
    }
    if !(added || removed || annotations_changed) && st.refreshed.is_some() {
        return Ok(());
    }
    let generation = st.current.generation + u64::from(added || removed);
    st.current = Arc::new(build(generation, &st.files, &st.annotations));
    Ok(())
}

fn build(
    generation: u64,
    files: &HashMap<SnapshotId, SnapshotFile>,
    annotations: &HashMap<SnapshotId, Vec<(AnnotationId, AnnotationFile)>>,
) -> Catalog {
    let mut list: Vec<(&SnapshotId, &SnapshotFile)> = files.iter().collect();
    list.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(b.0)));
    let mut names: Vec<String> = list.iter().map(|(id, f)| snapshot_name(id, f)).collect();
    // Two snapshots in the same second whose ids share the first 8 hex digits: name both by
    // their full ids so that neither hides the other.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for n in &names {
        *seen.entry(n.clone()).or_default() += 1;
    }
    for (i, (id, f)) in list.iter().enumerate() {
        if seen[&names[i]] > 1 {
            names[i] = format!("{}-{}", time_name(f), id.to_hex());
        }
    }
    let empty = Vec::new();
    let mut cat = Catalog {
        generation,
        ..Catalog::default()
    };
    for ((id, file), name) in list.into_iter().zip(names) {
        let view = annotate::view(*id, file.clone(), annotations.get(id).unwrap_or(&empty));
        let snap = Arc::new(Snap {
            id: *id,
            file: view.snapshot,
            name: name.clone(),
            tags: view.tags,
        });
        for t in &snap.tags {
            if let Some(d) = dir_name(t) {
                let list = cat.tags.entry(d).or_default();
                if !list.iter().any(|s| s.id == snap.id) {
                    list.push(snap.clone());
                }
            }
        }
        if let Some(d) = dir_name(&snap.file.hostname) {
            cat.hosts.entry(d).or_default().push(snap.clone());
        }
        cat.by_name.insert(name, snap.clone());
        cat.snaps.push(snap);
    }
    cat
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use snapguard_format::{Timestamp, TreeId};

    fn snap(secs: i64, host: &str, tags: &[&str]) -> SnapshotFile {
        SnapshotFile {
            time: Timestamp { secs, nanos: 5 },
            tree: TreeId([0; 32]),
            paths: vec![],
            hostname: host.into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            parent: None,
            excludes: vec![],
            program_version: "t".into(),
            summary: None,
            source: None,
            copied_from: None,
        }
    }

    #[test]
    fn names_sort_by_time() {
        let id = SnapshotId([0xab; 32]);
        assert_eq!(
            snapshot_name(&id, &snap(1_795_515_300, "h", &[])),
            "2026-11-24T10:15:00Z-abababab"
        );
        assert!(
            snapshot_name(&id, &snap(999_999_999, "h", &[]))
                < snapshot_name(&id, &snap(1_000_000_000, "h", &[]))
        );
    }

    #[test]
    fn odd_tags_and_hosts_become_safe_names() {
        assert_eq!(dir_name("daily").as_deref(), Some("daily"));
        assert_eq!(dir_name("a/b").as_deref(), Some("a%2Fb"));
        assert_eq!(dir_name("50%").as_deref(), Some("50%25"));
        assert_eq!(dir_name("..").as_deref(), Some("%2E%2E"));
        assert_eq!(dir_name("."), Some("%2E".into()));
        assert_eq!(dir_name(""), None);
        assert_eq!(dir_name("naïve").as_deref(), Some("naïve"));
    }

    #[test]
    fn build_groups_by_tag_and_host_oldest_first() {
        let mut files = HashMap::new();
        files.insert(SnapshotId([1; 32]), snap(200, "b", &["x", "y"]));
        files.insert(SnapshotId([2; 32]), snap(100, "a", &["x"]));
        files.insert(SnapshotId([3; 32]), snap(300, "a/1", &[]));
        let c = build(7, &files, &HashMap::new());
        assert_eq!(c.generation, 7);
        let ids = |v: &Vec<Arc<Snap>>| v.iter().map(|s| s.id.0[0]).collect::<Vec<_>>();
        assert_eq!(ids(&c.snaps), [2, 1, 3]);
        assert_eq!(ids(&c.tags["x"]), [2, 1]);
        assert_eq!(ids(&c.tags["y"]), [1]);
        assert_eq!(ids(&c.hosts["a"]), [2]);
        assert_eq!(ids(&c.hosts["a%2F1"]), [3]);
        assert_eq!(c.latest().map(|s| s.id.0[0]), Some(3));
        assert_eq!(c.by_name.len(), 3);
    }

    #[test]
    fn colliding_names_fall_back_to_full_ids() {
        let mut a = [0u8; 32];
        a[31] = 1;
        let mut files = HashMap::new();
        files.insert(SnapshotId(a), snap(100, "h", &[]));
        files.insert(SnapshotId([0; 32]), snap(100, "h", &[]));
        let c = build(0, &files, &HashMap::new());
        let names: BTreeSet<&str> = c.by_name.keys().map(String::as_str).collect();
        assert_eq!(names.len(), 2);
        assert!(names.iter().all(|n| n.len() == 21 + 64), "{names:?}");
    }
}
