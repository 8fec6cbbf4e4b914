//! Property tests on random trees and random edits, checked against a model: `diff(old, new)`
//! is exactly the model's difference (so it is empty iff the trees are equal), and after
//! `undo(old, new, live)` with `live` a copy of `new`, `live` equals `old` (metadata and times
//! included) where undone and `new` elsewhere.

use crate::support::*;
use proptest::prelude::*;
use proptest::sample::Index;
use rustix::fs::FileType;
use snapguard_local::diff::{diff, DiffOptions, Status};
use snapguard_local::undo::undo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Link(String),
    Fifo,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Meta {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    xattr: Option<Vec<u8>>,
    /// mtime seconds; atime is mtime + 1.
    time: i64,
}

type Model = BTreeMap<PathBuf, Meta>;

enum Gen {
    Leaf(Meta),
    Dir(Meta, BTreeMap<String, Gen>),
}

impl std::fmt::Debug for Gen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gen::Leaf(m) => write!(f, "{m:?}"),
            Gen::Dir(m, kids) => f.debug_tuple("Dir").field(m).field(kids).finish(),
        }
    }
}

impl Clone for Gen {
    fn clone(&self) -> Gen {
        match self {
            Gen::Leaf(m) => Gen::Leaf(m.clone()),
            Gen::Dir(m, k) => Gen::Dir(m.clone(), k.clone()),
        }
    }
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d-x", "é"]).prop_map(str::to_string)
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 1..40),
        // Same length, differing late: the comparison must read to the end.
        (0u8..3).prop_map(|b| {
            let mut v = vec![7u8; 70_000];
            v[69_999] = b;
            v
        }),
    ]
}

fn meta(kind: impl Strategy<Value = Kind>) -> impl Strategy<Value = Meta> {
    (
        kind,
        prop::sample::select(vec![0o644, 0o600, 0o755, 0o4755, 0o2750, 0o1777]),
        prop::sample::select(vec![0u32, 1000, 1001]),
        prop::sample::select(vec![0u32, 1000, 1002]),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
        1_500_000_000i64..1_500_000_100,
    )
        .prop_map(|(kind, mode, uid, gid, xattr, time)| {
            let mut m = Meta {
                kind,
                mode,
                uid,
                gid,
                xattr,
                time,
            };
            normalize(&mut m);
            m
        })
}

/// What Linux allows: symlinks have mode 0777; `user.*` xattrs exist on files and
/// directories only.
fn normalize(m: &mut Meta) {
    if matches!(m.kind, Kind::Link(_)) {
        m.mode = 0o777;
    }
    if !matches!(m.kind, Kind::File(_) | Kind::Dir) {
        m.xattr = None;
    }
}

fn leaf_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => content().prop_map(Kind::File),
        1 => name().prop_map(Kind::Link),
        1 => Just(Kind::Fifo),
    ]
}

fn tree() -> impl Strategy<Value = Model> {
    let leaf = meta(leaf_kind()).prop_map(Gen::Leaf);
    let node = leaf.prop_recursive(3, 30, 4, |inner| {
        (
            meta(Just(Kind::Dir)),
            prop::collection::btree_map(name(), inner, 0..4),
        )
            .prop_map(|(m, kids)| Gen::Dir(m, kids))
    });
    prop::collection::btree_map(name(), node, 0..5).prop_map(|top| {
        let mut model = Model::new();
        fn add(model: &mut Model, at: PathBuf, g: Gen) {
            match g {
                Gen::Leaf(m) => {
                    model.insert(at, m);
                }
                Gen::Dir(m, kids) => {
                    model.insert(at.clone(), m);
                    for (n, k) in kids {
                        add(model, at.join(n), k);
                    }
                }
            }
        }
        for (n, g) in top {
            add(&mut model, PathBuf::from(n), g);
        }
        model
    })
}

#[derive(Clone, Debug)]
enum Op {
    Delete,
    Rewrite(Vec<u8>),
    Chmod(u32),
    Chown(u32),
    Chgrp(u32),
    Xattr(Option<Vec<u8>>),
    Retime(i64),
    Replace(Meta),
    Create(String, Meta),
    Rename(String),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Delete),
        content().prop_map(Op::Rewrite),
        prop::sample::select(vec![0o640, 0o700, 0o4711]).prop_map(Op::Chmod),
        prop::sample::select(vec![0u32, 1000, 1003]).prop_map(Op::Chown),
        prop::sample::select(vec![0u32, 1002, 1004]).prop_map(Op::Chgrp),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..4)).prop_map(Op::Xattr),
        (1_600_000_000i64..1_600_000_010).prop_map(Op::Retime),
        meta(prop_oneof![leaf_kind(), Just(Kind::Dir)]).prop_map(Op::Replace),
        (name(), meta(prop_oneof![leaf_kind(), Just(Kind::Dir)]))
            .prop_map(|(n, m)| Op::Create(n, m)),
        name().prop_map(Op::Rename),
    ]
}

/// Remove `p` and everything below it.
fn remove_subtree(m: &mut Model, p: &Path) {
    m.retain(|k, _| !k.starts_with(p));
}

fn apply(model: &mut Model, target: &Index, op: &Op) {
    if model.is_empty() {
        if let Op::Create(n, meta) = op {
            model.insert(PathBuf::from(n), meta.clone());
        }
        return;
    }
    let keys: Vec<PathBuf> = model.keys().cloned().collect();
    let p = target.get(&keys).clone();
    let parent = p.parent().unwrap_or(Path::new("")).to_path_buf();
    let is_dir = model[&p].kind == Kind::Dir;
    match op {
        Op::Delete => remove_subtree(model, &p),
        Op::Rewrite(data) => {
            let e = model.get_mut(&p).expect("present");
            if let Kind::File(_) = e.kind {
                e.kind = Kind::File(data.clone());
            }
        }
        Op::Chmod(mode) if !matches!(model[&p].kind, Kind::Link(_)) => {
            model.get_mut(&p).expect("present").mode = *mode
        }
        Op::Chown(uid) => model.get_mut(&p).expect("present").uid = *uid,
        Op::Chgrp(gid) => model.get_mut(&p).expect("present").gid = *gid,
        Op::Xattr(x) if matches!(model[&p].kind, Kind::File(_) | Kind::Dir) => {
            model.get_mut(&p).expect("present").xattr = x.clone()
        }
        Op::Retime(t) => model.get_mut(&p).expect("present").time = *t,
        Op::Replace(meta) => {
            remove_subtree(model, &p);
            model.insert(p, meta.clone());
        }
        Op::Create(n, meta) => {
            let at = if is_dir { p.join(n) } else { parent.join(n) };
            remove_subtree(model, &at);
            model.insert(at, meta.clone());
        }
        Op::Rename(n) => {
            let to = parent.join(n);
            if to.starts_with(&p) {
                return;
            }
            remove_subtree(model, &to);
            let moved: Vec<(PathBuf, Meta)> = model
                .iter()
                .filter(|(k, _)| k.starts_with(&p))
                .map(|(k, v)| {
                    let below = k.strip_prefix(&p).expect("below");
                    let at = if below.as_os_str().is_empty() {
                        to.clone()
                    } else {
                        to.join(below)
                    };
                    (at, v.clone())
                })
                .collect();
            remove_subtree(model, &p);
            model.extend(moved);
        }
        _ => {}
    }
}

/// Create the model's tree under `root` (which exists): entries parents first, then metadata,
/// then times with directories deepest first.
fn materialize(model: &Model, root: &Path) {
    for (rel, m) in model {
        let p = root.join(rel);
        match &m.kind {
            Kind::File(data) => write(&p, data),
            Kind::Dir => mkdir(&p),
            Kind::Link(t) => symlink(t, &p),
            Kind::Fifo => mknod(&p, FileType::Fifo, 0),
        }
        chown(&p, m.uid, m.gid);
        if !matches!(m.kind, Kind::Link(_)) {
            chmod(&p, m.mode);
        }
        if let Some(x) = &m.xattr {
            setxattr(&p, "user.x", x);
        }
    }
    for (rel, m) in model.iter().rev() {
        set_times(&root.join(rel), (m.time + 1, 5), (m.time, 7));
    }
}

/// The status `diff` must report for every path, from the models alone.
fn expected(old: &Model, new: &Model) -> Vec<(PathBuf, Status)> {
    let mut paths: Vec<&PathBuf> = old.keys().chain(new.keys()).collect();
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    for p in paths {
        let s = match (old.get(p), new.get(p)) {
            (Some(_), None) => Status {
                deleted: true,
                ..Status::default()
            },
            (None, Some(_)) => Status {
                created: true,
                ..Status::default()
            },
            (Some(o), Some(n)) => {
                let same_kind = std::mem::discriminant(&o.kind) == std::mem::discriminant(&n.kind);
                Status {
                    type_changed: !same_kind,
                    content: same_kind && o.kind != n.kind,
                    permissions: o.mode != n.mode,
                    user: o.uid != n.uid,
                    group: o.gid != n.gid,
                    xattrs: o.xattr != n.xattr,
                    ..Status::default()
                }
            }
            (None, None) => continue,
        };
        if !s.is_unchanged() {
            out.push((p.clone(), s));
        }
    }
    out
}

/// The model without times, which `diff` does not compare.
fn timeless(m: &Model) -> Vec<(PathBuf, Meta)> {
    m.iter()
        .map(|(p, e)| {
            (
                p.clone(),
                Meta {
                    time: 0,
                    ..e.clone()
                },
            )
        })
        .collect()
}

fn edits() -> impl Strategy<Value = Vec<(Index, Op)>> {
    prop::collection::vec((any::<Index>(), op()), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn diff_matches_the_model_and_undo_restores_old(
        old_model in tree(),
        edits in edits(),
        scope in prop::option::of(any::<Index>()),
    ) {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (chown)");
            return Ok(());
        }
        let mut new_model = old_model.clone();
        for (target, op) in &edits {
            apply(&mut new_model, target, op);
        }
        for m in [&old_model, &new_model] {
            for p in m.keys() {
                if let Some(q) = p.parent().filter(|q| !q.as_os_str().is_empty()) {
                    assert!(m.get(q).is_some_and(|e| e.kind == Kind::Dir), "model without parent: {m:?}");
                }
            }
        }
        let t = tempfile::tempdir().expect("tempdir");
        let (old, new, live) = (t.path().join("old"), t.path().join("new"), t.path().join("live"));
        for (dir, model) in [(&old, &old_model), (&new, &new_model), (&live, &new_model)] {
            mkdir(dir);
            materialize(model, dir);
        }

        let changes = diff(&old, &new, &DiffOptions::default()).expect("diff");
        let got: Vec<(PathBuf, Status)> = changes.into_iter().map(|c| (c.path, c.status)).collect();
        prop_assert_eq!(&got, &expected(&old_model, &new_model));
        prop_assert_eq!(got.is_empty(), timeless(&old_model) == timeless(&new_model));

        // Undo everything, or everything below one path.
        let paths: Vec<PathBuf> = match (&scope, got.is_empty()) {
            (Some(i), false) => vec![i.get(&got).0.clone()],
            _ => Vec::new(),
        };
        let planned: BTreeMap<PathBuf, Status> = diff(&old, &new, &DiffOptions { paths: paths.clone() })
            .expect("diff")
            .into_iter()
            .map(|c| (c.path, c.status))
            .collect();
        // Entries are added, removed or replaced (a rename in their directory) for these;
        // metadata alone is restored in place.
        let parents: Vec<&Path> = planned
            .iter()
            .filter(|(_, s)| s.created || s.deleted || s.type_changed || s.content)
            .filter_map(|(p, _)| p.parent())
            .collect();
        let before = capture(&new, false, &[]);
        let report = undo(&old, &new, &live, &paths).expect("undo");
        // A path below a directory that is something else now cannot be restored unless that
        // directory is undone too: reported, not forced.
        let blocked = paths.iter().any(|s| {
            s.ancestors().skip(1).any(|a| {
                old_model.get(a).is_some_and(|e| e.kind == Kind::Dir)
                    && new_model.get(a).is_some_and(|e| e.kind != Kind::Dir)
            })
        });
        if blocked {
            prop_assert!(!report.is_complete());
            for f in &report.failed {
                prop_assert!(
                    f.error.contains("is not a directory in the live tree")
                        || f.error.contains("could not be restored"),
                    "{:?}",
                    f
                );
            }
            return Ok(());
        }
        prop_assert!(report.is_complete(), "{:#?}", report.failed);
        let left = diff(&old, &live, &DiffOptions { paths: paths.clone() }).expect("diff");
        prop_assert!(left.is_empty(), "left after undo: {:?}", left);

        let (c_old, c_live) = (capture(&old, false, &[]), capture(&live, false, &[]));
        // Directories the undo added entries to or removed entries from: parents of the
        // changes and of the directories it recreated.
        let mut parents = parents;
        parents.extend(c_live.keys().filter(|p| !before.contains_key(*p)).filter_map(|p| p.parent()));
        let mut all: Vec<&PathBuf> = c_old.keys().chain(before.keys()).chain(c_live.keys()).collect();
        all.sort();
        all.dedup();
        for p in all {
            let live_e = c_live.get(p);
            if let Some(s) = planned.get(p) {
                // Reverted: as in old (times included), or gone if it was created.
                let want = if s.created { None } else { c_old.get(p) };
                prop_assert_eq!(live_e, want, "{} not reverted", p.display());
            } else if let Some(new_e) = before.get(p) {
                // Not a change: as in new, except that a directory whose entries were
                // reverted gets old's times back, or, if old does not have it (it lies
                // outside the paths undone), the time of the undo.
                let mut want = new_e.clone();
                if parents.contains(&p.as_path()) && new_e.kind == 'd' {
                    match c_old.get(p).filter(|o| o.kind == 'd') {
                        Some(o) => want.mtime = o.mtime,
                        None => want.mtime = live_e.map_or(want.mtime, |l| l.mtime),
                    }
                }
                prop_assert_eq!(live_e, Some(&want), "{} changed", p.display());
            } else if let Some(e) = live_e {
                // A missing parent of a reverted path, recreated from old.
                prop_assert!(paths.iter().any(|s| s.starts_with(p)), "{} appeared", p.display());
                prop_assert_eq!(Some(e), c_old.get(p), "{} not as in old", p.display());
            }
        }
    }
}
