//! `history` and `Finder` against real backups of a changing tree.

use super::*;
use crate::{BackupOptions, InitOptions, Secret};
use snapguard_backend::{Backend, LocalBackend};
use snapguard_format::Timestamp;
use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn secret() -> Secret {
    Secret::Password(zeroize::Zeroizing::new(b"versions tests".to_vec()))
}

/// A repository and a source directory that tests change between backups.
struct Fx {
    _tmp: tempfile::TempDir,
    repo_dir: PathBuf,
    src: PathBuf,
    roots: Vec<TreeId>,
}

impl Fx {
    fn new() -> TestResult<Fx> {
        let tmp = tempfile::tempdir()?;
        let repo_dir = tmp.path().join("repo");
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src)?;
        let init = InitOptions::for_tests(1 << 20);
        Repository::init(Arc::new(LocalBackend::new(&repo_dir)), &secret(), &init)?;
        Ok(Fx {
            _tmp: tmp,
            repo_dir,
            src,
            roots: Vec::new(),
        })
    }

    fn open(&self) -> TestResult<Repository> {
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&self.repo_dir));
        let mut repo = Repository::open(backend, &[secret()])?;
        repo.load_index()?;
        Ok(repo)
    }

    /// Back the source up (a new session each time, as the CLI does); remember the root tree.
    fn backup(&mut self) -> TestResult<TreeId> {
        let mut repo = self.open()?;
        let opts = BackupOptions {
            paths: vec![self.src.clone()],
            hostname: "h".into(),
            username: "u".into(),
            time: Timestamp {
                secs: 1_700_000_100 + self.roots.len() as i64,
                nanos: 0,
            },
            program_version: "versions-test".into(),
            ..BackupOptions::default()
        };
        let r = crate::backup(&mut repo, &opts)?;
        let id = r.snapshot_id.ok_or("no snapshot written")?;
        let tree = repo.load_snapshot(&id)?.tree;
        self.roots.push(tree);
        Ok(tree)
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.src.join(rel)
    }

    fn key(&self, rel: &str) -> Vec<u8> {
        self.p(rel).as_os_str().as_bytes().to_vec()
    }
}

fn components(p: &Path) -> usize {
    p.components().count() - 1
}

#[test]
fn file_versions_with_gaps_metadata_changes_and_recreation() -> TestResult {
    let mut fx = Fx::new()?;
    std::fs::create_dir(fx.p("d"))?;
    let f = fx.p("d/notes.txt");
    std::fs::write(&f, b"one")?;
    fx.backup()?; // 0: one
    fx.backup()?; // 1: unchanged
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))?;
    fx.backup()?; // 2: metadata only
    std::fs::write(&f, b"two, longer")?;
    fx.backup()?; // 3: new content
    std::fs::remove_file(&f)?;
    fx.backup()?; // 4: deleted
    std::fs::write(&f, b"one")?;
    fx.backup()?; // 5: re-created with the first content
    std::fs::write(&f, b"three")?;
    fx.backup()?; // 6: new content again

    let repo = fx.open()?;
    let h = history(
        &repo,
        &fx.roots,
        &fx.key("d/notes.txt"),
        Granularity::Content,
    )?;
    assert_eq!(
        h.timeline,
        vec![Some(0), Some(0), Some(0), Some(1), None, Some(0), Some(2)]
    );
    assert_eq!(h.versions.len(), 3);
    assert_eq!(h.versions[0].snapshots, vec![0, 1, 2, 5]);
    assert_eq!(h.versions[0].runs(), vec![(0, 2), (5, 5)]);
    assert_eq!((h.versions[0].first(), h.versions[0].last()), (0, 5));
    // Three metadata states: the original, chmod 600, and the re-created file's new mtime.
    assert_eq!(h.versions[0].metadata_variants, 3);
    // The node is the newest occurrence's: the re-created file, without its content list.
    assert_eq!(h.versions[0].node.size, 3);
    assert!(h.versions[0].node.content.is_empty());
    assert_eq!(h.versions[1].node.size, 11);
    assert_eq!(h.versions[1].snapshots, vec![3]);
    assert_eq!(h.versions[2].snapshots, vec![6]);
    assert_eq!(h.absent_runs(), vec![(4, 4)]);
    assert_eq!(h.snapshots_with_path(), 6);
    assert!(h.errors.is_empty());

    let all = history(
        &repo,
        &fx.roots,
        &fx.key("d/notes.txt"),
        Granularity::Metadata,
    )?;
    assert_eq!(
        all.timeline,
        vec![Some(0), Some(0), Some(1), Some(2), None, Some(3), Some(4)]
    );
    assert_eq!(all.versions[1].node.mode, 0o600);
    assert!(all.versions.iter().all(|v| v.metadata_variants == 1));

    // A path that never existed: an empty history, not an error.
    let none = history(&repo, &fx.roots, &fx.key("d/nope"), Granularity::Content)?;
    assert!(none.is_empty());
    assert_eq!(none.absent_runs(), vec![(0, 6)]);
    // Below a file: not found either.
    let below = history(
        &repo,
        &fx.roots,
        &fx.key("d/notes.txt/x"),
        Granularity::Content,
    )?;
    assert!(below.is_empty());
    Ok(())
}

#[test]
fn directories_symlinks_and_type_changes() -> TestResult {
    let mut fx = Fx::new()?;
    std::fs::create_dir(fx.p("d"))?;
    std::fs::write(fx.p("d/a"), b"a")?;
    std::os::unix::fs::symlink("target-1", fx.p("link"))?;
    fx.backup()?; // 0
    std::fs::write(fx.p("d/b"), b"b")?;
    std::os::unix::fs::symlink("target-2", fx.p("link2"))?;
    std::fs::rename(fx.p("link2"), fx.p("link"))?;
    fx.backup()?; // 1: directory and link changed
    std::fs::remove_file(fx.p("d/b"))?;
    std::fs::remove_file(fx.p("link"))?;
    std::os::unix::fs::symlink("target-1", fx.p("link"))?;
    fx.backup()?; // 2: both back to what they were (the link is a new inode)
    std::fs::remove_file(fx.p("link"))?;
    std::fs::write(fx.p("link"), b"target-1")?;
    fx.backup()?; // 3: the link is now a file with the target's bytes

    let repo = fx.open()?;
    let d = history(&repo, &fx.roots, &fx.key("d"), Granularity::Content)?;
    // The directory's own mtime differs in snapshot 2, but its subtree (entries) is the first
    // one again: subtree ids include the entries' metadata, which did not change.
    assert_eq!(d.timeline, vec![Some(0), Some(1), Some(0), Some(0)]);
    assert_eq!(d.versions[0].entries, Some(1));
    assert_eq!(d.versions[1].entries, Some(2));
    assert_eq!(d.versions[0].node.kind, NodeKind::Dir);

    let l = history(&repo, &fx.roots, &fx.key("link"), Granularity::Content)?;
    assert_eq!(l.timeline, vec![Some(0), Some(1), Some(0), Some(2)]);
    assert_eq!(l.versions[0].node.link_target, b"target-1");
    assert_eq!(l.versions[2].node.kind, NodeKind::File);

    // The root itself is a path too.
    let root = history(&repo, &fx.roots, b"/", Granularity::Content)?;
    assert_eq!(root.snapshots_with_path(), 4);
    Ok(())
}

/// The (depth, tree id) pairs a plain walk along `path` visits in each snapshot: the
/// distinct ones (what a memoizing walk must read, no more, no less) and those per depth.
fn levels(repo: &Repository, roots: &[TreeId], path: &Path) -> TestResult<Vec<HashSet<TreeId>>> {
    let comps: Vec<Vec<u8>> = path
        .components()
        .skip(1)
        .map(|c| c.as_os_str().as_bytes().to_vec())
        .collect();
    let mut per_depth = vec![HashSet::new(); comps.len()];
    for root in roots {
        let mut tree = *root;
        for (depth, comp) in comps.iter().enumerate() {
            per_depth[depth].insert(tree);
            let listing = repo.read_tree(&tree)?;
            match listing.find(comp).and_then(|n| n.subtree) {
                Some(sub) => tree = sub,
                None => break,
            }
        }
    }
    Ok(per_depth)
}

#[test]
fn each_tree_on_the_path_is_read_once() -> TestResult {
    let mut fx = Fx::new()?;
    std::fs::create_dir(fx.p("d"))?;
    std::fs::write(fx.p("d/f"), b"f")?;
    std::fs::write(fx.p("other"), b"0")?;
    let path = fx.p("d/f");
    let depth = components(&path);
    for _ in 0..3 {
        fx.backup()?;
    }
    // A sibling of `d` changes: the trees above `d` are new in each snapshot, `d`'s is not.
    for i in 1..=3 {
        std::fs::write(fx.p("other"), format!("{i}"))?;
        fx.backup()?;
    }
    let repo = fx.open()?;
    let h = history(&repo, &fx.roots, &fx.key("d/f"), Granularity::Content)?;
    assert_eq!(h.versions.len(), 1);
    assert_eq!(h.versions[0].snapshots, (0..6).collect::<Vec<_>>());
    let per_depth = levels(&repo, &fx.roots, &path)?;
    let distinct: usize = per_depth.iter().map(HashSet::len).sum();
    assert_eq!(h.trees_read, distinct);
    // `d`'s tree is one tree in all six snapshots, the source directory's changed three times
    // (the directories above the source may change too: other tests write to /tmp).
    assert_eq!(per_depth[depth - 1].len(), 1);
    assert!(per_depth[depth - 2].len() >= 4);
    assert!(
        h.trees_read < 6 * depth,
        "{} reads for {depth} levels",
        h.trees_read
    );
    Ok(())
}

/// Every entry of a snapshot whose path matches, found the slow way.
fn brute_force(repo: &Repository, root: TreeId, p: &PathPattern) -> Result<Vec<Vec<u8>>> {
    let mut snap = snapguard_format::SnapshotFile {
        time: Timestamp::default(),
        tree: root,
        paths: Vec::new(),
        hostname: String::new(),
        username: String::new(),
        uid: 0,
        gid: 0,
        tags: Vec::new(),
        parent: None,
        excludes: Vec::new(),
        program_version: String::new(),
        summary: None,
        source: None,
        copied_from: None,
    };
    snap.tree = root;
    let mut out = Vec::new();
    crate::browse::walk(repo, &snap, b"/", &mut |path, node| {
        if p.matches(path, &node.name) {
            out.push(path.to_vec());
        }
        Ok(())
    })?;
    Ok(out)
}

#[test]
fn find_agrees_with_a_full_walk_and_reuses_subtrees() -> TestResult {
    let mut fx = Fx::new()?;
    for dir in ["a/src", "b/src", "deep/a/b", "c"] {
        std::fs::create_dir_all(fx.p(dir))?;
    }
    // `a/src` and `b/src` hold the same hard-linked files: one tree id at two places.
    std::fs::write(fx.p("a/src/x.rs"), b"fn main() {}")?;
    std::fs::write(fx.p("a/src/y.txt"), b"y")?;
    for f in ["x.rs", "y.txt"] {
        std::fs::hard_link(fx.p(&format!("a/src/{f}")), fx.p(&format!("b/src/{f}")))?;
    }
    std::fs::write(fx.p("deep/a/b/c.rs"), b"c")?;
    std::fs::write(fx.p("c/notes.txt"), b"n")?;
    std::fs::write(fx.p("notes.txt"), b"n")?;
    std::fs::write(
        fx.p("c").join(std::ffi::OsStr::from_bytes(b"caf\xe9.rs")),
        b"latin-1 name",
    )?;
    fx.backup()?;
    fx.backup()?; // identical
    std::fs::write(fx.p("c/new.rs"), b"new")?;
    fx.backup()?;

    let src = fx.src.display().to_string();
    let patterns = [
        "*.rs".to_string(),
        "src/*.rs".into(),
        "a/src/*.rs".into(),
        "b/src".into(),
        "**/notes.txt".into(),
        "{a,b}/src/*".into(),
        "[ab]".into(),
        "a/**/*.rs".into(),
        format!("{src}/*/src/x.rs"),
        format!("{src}/deep/**"),
        format!("{src}/notes.txt"),
        format!("{src}/c/*"),
        "caf?.rs".into(),
    ];
    let repo = fx.open()?;
    for text in &patterns {
        let pattern = PathPattern::new(text)?;
        let mut finder = Finder::new(&repo, pattern.clone());
        let mut reads = Vec::new();
        for root in &fx.roots {
            let found: Vec<Vec<u8>> = finder.search(*root)?.into_iter().map(|e| e.path).collect();
            let expected = brute_force(&repo, *root, &pattern)?;
            assert_eq!(
                found,
                expected,
                "pattern {text}: found {:?}, expected {:?}",
                found
                    .iter()
                    .map(|p| String::from_utf8_lossy(p))
                    .collect::<Vec<_>>(),
                expected
                    .iter()
                    .map(|p| String::from_utf8_lossy(p))
                    .collect::<Vec<_>>()
            );
            assert!(
                !expected.is_empty() || text == "caf?.rs",
                "pattern {text} matches nothing"
            );
            reads.push(finder.trees_read());
        }
        // The second snapshot is the first one again: at most the directories above the
        // source (other tests write to /tmp) are read again, nothing below it.
        assert!(
            reads[1] - reads[0] <= components(&fx.src),
            "pattern {text} read trees again: {reads:?}"
        );
    }

    // Name patterns match the identical `a/src` and `b/src` once.
    let mut finder = Finder::new(&repo, PathPattern::new("*.rs")?);
    let found = finder.search(fx.roots[0])?;
    let names: Vec<String> = found
        .iter()
        .map(|e| String::from_utf8_lossy(&e.path).into_owned())
        .collect();
    assert!(names.contains(&format!("{src}/a/src/x.rs")), "{names:?}");
    assert!(names.contains(&format!("{src}/b/src/x.rs")), "{names:?}");
    let mut walk_all = Finder::new(&repo, PathPattern::new(&format!("{src}/**"))?);
    walk_all.search(fx.roots[0])?;
    assert_eq!(
        walk_all.trees_read() - finder.trees_read(),
        1,
        "a name pattern reads the shared src tree once, a path pattern once per place"
    );

    // An absolute pattern enters only the directories on its way.
    let mut narrow = Finder::new(&repo, PathPattern::new(&format!("{src}/notes.txt"))?);
    let hits = narrow.search(fx.roots[0])?;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].node.size, 1);
    assert_eq!(narrow.trees_read(), components(&fx.src) + 1);
    Ok(())
}
