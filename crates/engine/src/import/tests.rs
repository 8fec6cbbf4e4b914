//! Ingest and tar import through the engine: order independence, replacement, hardlinks,
//! holes, and export → import identity.

use super::ingest::{FileData, Ingest, IngestOptions};
use crate::export::{export, ExportFormat, ExportOptions, ExportOutput};
use crate::{InitOptions, Repository, Secret};
use snapguard_backend::{Backend, LocalBackend};
use snapguard_format::{ContentPart, Node, NodeKind, Timestamp, TreeId};
use std::sync::Arc;
use zeroize::Zeroizing;

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn repo(dir: &std::path::Path) -> TestResult<Repository> {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir));
    let init = InitOptions::for_tests(64 << 10);
    Ok(Repository::init(
        backend,
        &Secret::Password(Zeroizing::new(b"import tests".to_vec())),
        &init,
    )?)
}

fn opts(base: &[u8]) -> IngestOptions {
    IngestOptions {
        base: base.to_vec(),
        hostname: "h".into(),
        time: Timestamp {
            secs: 1_700_000_100,
            nanos: 0,
        },
        threads: Some(1),
        program_version: "import-test".into(),
        ..IngestOptions::default()
    }
}

fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// One test entry: path, node, data runs and their bytes, or a hardlink target.
#[derive(Clone)]
enum Item {
    Node(&'static str, Box<Node>, Vec<(u64, u64)>, Vec<u8>),
    Link(&'static str, &'static str),
}

fn node(kind: NodeKind, mode: u32, secs: i64) -> Node {
    let mut n = Node::new(Vec::new(), kind);
    n.mode = mode;
    n.mtime = Timestamp { secs, nanos: 7 };
    n.atime = n.mtime;
    n
}

fn items() -> Vec<Item> {
    let mut f1 = node(NodeKind::File, 0o644, 10);
    f1.size = 300_000;
    let mut sparse = node(NodeKind::File, 0o600, 11);
    sparse.size = 10 << 20;
    let mut link = node(NodeKind::Symlink, 0o777, 12);
    link.link_target = b"../a/f1".to_vec();
    vec![
        Item::Node("a", Box::new(node(NodeKind::Dir, 0o750, 1)), vec![], vec![]),
        Item::Node(
            "a/b",
            Box::new(node(NodeKind::Dir, 0o755, 2)),
            vec![],
            vec![],
        ),
        Item::Node("a/f1", Box::new(f1), vec![(0, 300_000)], bytes(1, 300_000)),
        Item::Node(
            "a/b/sparse",
            Box::new(sparse),
            vec![(4096, 5000), (3 << 20, 70_000)],
            bytes(2, 75_000),
        ),
        Item::Node("c/link", Box::new(link), vec![], vec![]),
        Item::Node(
            "c/fifo",
            Box::new(node(NodeKind::Fifo, 0o640, 13)),
            vec![],
            vec![],
        ),
        Item::Link("a/h1", "a/f1"),
        Item::Link("c/h2", "a/f1"),
    ]
}

fn ingest(repo: &mut Repository, items: &[Item], dry_run: bool) -> TestResult<TreeId> {
    let mut o = opts(b"/base");
    o.dry_run = dry_run;
    let mut ing = Ingest::start(repo, o)?;
    for item in items {
        match item {
            Item::Node(path, node, runs, data) => {
                let parts: Vec<Vec<u8>> = path.split('/').map(|c| c.as_bytes().to_vec()).collect();
                if node.kind == NodeKind::File {
                    let mut pos = 0;
                    let mut read = |buf: &mut [u8]| {
                        let n = buf.len().min(data.len() - pos).min(4000);
                        buf[..n].copy_from_slice(&data[pos..pos + n]);
                        pos += n;
                        Ok(n)
                    };
                    ing.add(
                        &parts,
                        (**node).clone(),
                        Some(FileData {
                            runs,
                            read: &mut read,
                        }),
                    )?;
                } else {
                    ing.add(&parts, (**node).clone(), None)?;
                }
            }
            Item::Link(path, target) => {
                let p: Vec<Vec<u8>> = path.split('/').map(|c| c.as_bytes().to_vec()).collect();
                let t: Vec<Vec<u8>> = target.split('/').map(|c| c.as_bytes().to_vec()).collect();
                assert!(ing.add_hardlink(&p, &t), "{path} -> {target}");
            }
        }
    }
    Ok(ing.finish()?.tree)
}

#[test]
fn tree_ids_do_not_depend_on_entry_order() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut repo = repo(&tmp.path().join("repo"))?;
    let base = items();
    let first = ingest(&mut repo, &base, true)?;
    // Directories after their contents, files in another order, hardlinks still after their
    // target (an archive cannot link to what comes later).
    let mut reordered = vec![
        base[3].clone(),
        base[5].clone(),
        base[2].clone(),
        base[7].clone(),
        base[4].clone(),
        base[1].clone(),
        base[6].clone(),
        base[0].clone(),
    ];
    assert_eq!(ingest(&mut repo, &reordered, true)?, first);
    reordered.swap(0, 1);
    assert_eq!(ingest(&mut repo, &reordered, false)?, first);
    Ok(())
}

#[test]
fn nodes_holes_hardlinks_and_implied_dirs() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut repo = repo(&tmp.path().join("repo"))?;
    let root = ingest(&mut repo, &items(), false)?;
    let top = repo.read_tree(&root)?;
    assert_eq!(top.nodes.len(), 1);
    // The base path's directory was implied: 0755, owner 0, the snapshot's time.
    let base = &top.nodes[0];
    assert_eq!(
        (base.name.as_slice(), base.mode, base.uid),
        (&b"base"[..], 0o755, 0)
    );
    assert_eq!(base.mtime.secs, 1_700_000_100);
    let t = repo.read_tree(&base.subtree.ok_or("no subtree")?)?;
    let names: Vec<&[u8]> = t.nodes.iter().map(|n| n.name.as_slice()).collect();
    assert_eq!(names, [&b"a"[..], b"c"]);
    let a = repo.read_tree(&t.nodes[0].subtree.ok_or("a")?)?;
    assert_eq!(t.nodes[0].mode, 0o750);
    let (f1, h1) = (a.find(b"f1").ok_or("f1")?, a.find(b"h1").ok_or("h1")?);
    // A hardlink group numbered canonically, with its size as link count.
    assert_eq!((f1.inode, f1.device, f1.nlink), (1, 0, 3));
    assert_eq!((h1.inode, h1.nlink, &h1.content), (1, 3, &f1.content));
    let b = repo.read_tree(&a.find(b"b").ok_or("b")?.subtree.ok_or("b")?)?;
    let sparse = b.find(b"sparse").ok_or("sparse")?;
    let holes: Vec<u64> = sparse
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Hole { len } => Some(*len),
            _ => None,
        })
        .collect();
    assert_eq!(
        holes,
        [
            4096,
            (3 << 20) - 4096 - 5000,
            (10 << 20) - (3 << 20) - 70_000
        ]
    );
    assert_eq!(
        sparse.content.iter().map(ContentPart::len).sum::<u64>(),
        10 << 20
    );
    let c = repo.read_tree(&t.nodes[1].subtree.ok_or("c")?)?;
    assert_eq!(c.find(b"h2").ok_or("h2")?.inode, 1);
    assert_eq!(c.find(b"link").ok_or("link")?.link_target, b"../a/f1");
    Ok(())
}

#[test]
fn later_entries_replace_earlier_ones() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut repo = repo(&tmp.path().join("repo"))?;
    let mut ing = Ingest::start(&mut repo, opts(b"/"))?;
    let p = |s: &str| -> Vec<Vec<u8>> { s.split('/').map(|c| c.as_bytes().to_vec()).collect() };
    ing.add(&p("x"), node(NodeKind::Fifo, 0o600, 1), None)?;
    // "x" becomes a directory because something is inside it.
    ing.add(&p("x/y"), node(NodeKind::Fifo, 0o600, 2), None)?;
    // A directory entry for "d" after its contents keeps them.
    ing.add(&p("d/z"), node(NodeKind::Fifo, 0o600, 3), None)?;
    ing.add(&p("d"), node(NodeKind::Dir, 0o700, 4), None)?;
    // A file replaces a directory and what was in it.
    ing.add(&p("e/gone"), node(NodeKind::Fifo, 0o600, 5), None)?;
    ing.add(&p("e"), node(NodeKind::Fifo, 0o644, 6), None)?;
    let r = ing.finish()?;
    assert_eq!(
        r.warnings.iter().filter(|w| !w.error).count(),
        2,
        "{:?}",
        r.warnings
    );
    let t = repo.read_tree(&r.tree)?;
    let kinds: Vec<(&[u8], NodeKind)> = t
        .nodes
        .iter()
        .map(|n| (n.name.as_slice(), n.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (&b"d"[..], NodeKind::Dir),
            (b"e", NodeKind::Fifo),
            (b"x", NodeKind::Dir)
        ]
    );
    let d = repo.read_tree(&t.nodes[0].subtree.ok_or("d")?)?;
    assert_eq!((t.nodes[0].mode, d.nodes.len()), (0o700, 1));
    Ok(())
}

#[test]
fn export_with_inode_numbers_then_import_is_the_same_tree() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut repo = repo(&tmp.path().join("repo"))?;
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d"))?;
    std::fs::write(src.join("d/f"), bytes(3, 200_000))?;
    std::fs::hard_link(src.join("d/f"), src.join("g"))?;
    let sparse = std::fs::File::create(src.join("s"))?;
    sparse.set_len(6 << 20)?;
    std::os::unix::fs::FileExt::write_all_at(&sparse, &bytes(4, 9000), 2 << 20)?;
    drop(sparse);
    std::os::unix::fs::symlink("d/f", src.join("l"))?;
    let b = crate::backup(
        &mut repo,
        &crate::BackupOptions {
            paths: vec![src.clone()],
            hostname: "h".into(),
            program_version: "t".into(),
            ..Default::default()
        },
    )?;
    let snap = repo.load_snapshot(&b.snapshot_id.ok_or("no snapshot")?)?;
    let mut archive = Vec::new();
    let summary = export(
        &repo,
        &snap,
        b"/",
        ExportOutput::Stream(&mut archive),
        &ExportOptions {
            format: ExportFormat::Tar,
            inode_numbers: true,
            progress: None,
        },
    )?;
    assert_eq!(summary.hardlinks, 1);
    let r = super::import_tar(&mut repo, &mut archive.as_slice(), "test", opts(b"/"))?;
    assert_eq!(r.tree, snap.tree);
    assert_eq!(r.summary.bytes_added, 0, "every blob deduplicated");
    // A truncated copy fails, naming the entry, and writes no snapshot.
    let before = repo.list_snapshots()?.len();
    let cut = &archive[..archive.len() / 2];
    let Err(err) = super::import_tar(&mut repo, &mut &cut[..], "cut.tar", opts(b"/")) else {
        return Err("a truncated archive was imported".into());
    };
    assert!(
        err.to_string().starts_with("cannot import cut.tar:"),
        "{err}"
    );
    assert_eq!(repo.list_snapshots()?.len(), before);
    Ok(())
}
