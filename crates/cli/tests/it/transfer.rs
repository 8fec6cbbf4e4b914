//! `export` and `import tar` against the real tools: GNU tar extracts what `export` writes,
//! `unzip` and Python's `zipfile` read its zip archives, and `import tar` reads what GNU tar and
//! `borg export-tar` write. Every comparison is against the varied fixture tree as it was built.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::cmd::{spec, Out, Sg, Ws};
use crate::support::compare::{assert_same, compare_content, Kind, Opts, Tree};
use crate::support::fixture::{Built, Fixture};
use crate::support::{is_root, random_bytes, restored_path, varied};

fn varied_source(ws: &Ws) -> Built {
    let mut fx = Fixture::new(&ws.path("src"));
    varied::build(&mut fx);
    fx.finish()
}

/// Run an external tool; panics with its output unless it succeeds.
fn tool(program: &str, args: &[&OsStr], dir: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new(program);
    cmd.args(args).env("LC_ALL", "C");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

/// `snapguard export SPEC -o FILE EXTRA...`, expecting success.
fn export(sg: &Sg, spec: OsString, output: &Path, extra: &[&str]) -> Out {
    let mut args: Vec<OsString> = vec!["export".into(), spec, "-o".into(), output.into()];
    args.extend(extra.iter().map(OsString::from));
    let out = sg.run(&args);
    out.expect_code(0);
    out
}

/// `snapguard --json import tar FILE EXTRA...`; returns the output and its JSON.
fn import(sg: &Sg, file: &Path, extra: &[&str]) -> (Out, Value) {
    let mut args: Vec<OsString> = vec!["--json".into(), "import".into(), "tar".into(), file.into()];
    args.extend(extra.iter().map(OsString::from));
    let out = sg.run(&args);
    let json = if out.code == Some(0) || out.code == Some(3) {
        out.json()
    } else {
        Value::Null
    };
    (out, json)
}

fn snapshot_id(out: &Out, json: &Value) -> String {
    json.get("snapshot_id")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no snapshot_id\n{out}"))
        .to_string()
}

/// The root tree id of a snapshot.
fn tree_of(sg: &Sg, snapshot: &str) -> String {
    let out = sg.run(["cat", "snapshot", snapshot]);
    out.expect_code(0);
    out.json()["tree"]
        .as_str()
        .unwrap_or_else(|| panic!("no tree\n{out}"))
        .to_string()
}

fn snapshot_count(sg: &Sg) -> usize {
    let out = sg.run(["--json", "snapshots"]);
    out.expect_code(0);
    out.json().as_array().map_or(0, Vec::len)
}

/// GNU tar extracting everything it can: `--xattrs --xattrs-include='*' --acls -xpS`.
fn gnu_extract(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).expect("mkdir extraction target");
    tool(
        "tar",
        &[
            os("--xattrs"),
            os("--xattrs-include=*"),
            os("--acls"),
            os("-xpSf"),
            archive.as_os_str(),
            os("-C"),
            into.as_os_str(),
        ],
        None,
    );
}

fn opts() -> Opts {
    Opts {
        owner: is_root(),
        ..Opts::default()
    }
}

/// What GNU tar restores: everything but atimes (it sets them to the time of extraction; that
/// the archive carries them is shown by `export_then_import_reproduces_tree_ids`).
fn gnu_tar_opts() -> Opts {
    Opts {
        atime: false,
        ..opts()
    }
}

#[test]
fn export_tar_extracts_with_gnu_tar_to_the_original_tree() {
    let ws = Ws::new();
    let built = varied_source(&ws);
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&built.root], &[]);
    let archive = ws.path("export.tar");
    let out = export(&sg, spec(&b.id, &built.root), &archive, &[]);
    assert!(out.stdout_str().contains("exported"), "{out}");
    let x = ws.path("x");
    gnu_extract(&archive, &x);
    // Everything, including the folder's own metadata (the "./" entry), xattrs, ACLs,
    // hardlinks, devices, nanosecond times and holes.
    assert_same(
        &built.tree,
        &Tree::scan(&x),
        &gnu_tar_opts(),
        "export → GNU tar -x",
    );
}

#[test]
fn export_to_stdout_streams_a_folder_or_one_file() {
    let ws = Ws::new();
    let built = varied_source(&ws);
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&built.root], &[]);
    // A sub-folder, piped straight into tar.
    let files = built.root.join("files");
    let mut export = sg.std_command();
    export
        .args([
            os("export"),
            spec(&b.id, &files).as_os_str(),
            os("-o"),
            os("-"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = export.spawn().expect("spawn export");
    let y = ws.path("y");
    std::fs::create_dir_all(&y).expect("mkdir y");
    let status = Command::new("tar")
        .args([
            os("--xattrs"),
            os("--xattrs-include=*"),
            os("--warning=no-timestamp"),
            os("-xpSf"),
            os("-"),
            os("-C"),
            y.as_os_str(),
        ])
        .stdin(child.stdout.take().expect("stdout"))
        .status()
        .expect("run tar");
    let done = child.wait_with_output().expect("wait for export");
    assert!(
        status.success() && done.status.success(),
        "export -o - | tar -x failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    // The summary goes to stderr, never into the archive.
    assert!(String::from_utf8_lossy(&done.stderr).contains("exported"));
    assert_same(
        &built.tree.subtree("files"),
        &Tree::scan(&y),
        &gnu_tar_opts(),
        "export SNAP:/…/files -o - | tar -x",
    );

    // One file: a one-member archive named after it.
    let one = sg.run([
        os("export"),
        spec(&b.id, &files.join("text.txt")).as_os_str(),
        os("-o"),
        os("-"),
    ]);
    one.expect_code(0);
    let listing = ws.path("one.tar");
    std::fs::write(&listing, &one.stdout).expect("write one.tar");
    let names = tool("tar", &[os("-tf"), listing.as_os_str()], None);
    assert_eq!(String::from_utf8_lossy(&names.stdout), "text.txt\n");
}

#[test]
fn export_zip_is_read_by_unzip_and_python() {
    let ws = Ws::new();
    let built = varied_source(&ws);
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&built.root], &[]);
    let archive = ws.path("export.zip");
    // The format follows from the file name.
    let out = export(&sg, spec(&b.id, &built.root), &archive, &[]);
    let notes = out.stderr_str();
    for expected in ["extended attributes", "device", "hardlinks", "setuid"] {
        assert!(
            notes.contains(expected),
            "zip losses not reported ({expected})\n{out}"
        );
    }
    // Python's zipfile checks every CRC.
    let py = tool(
        "python3",
        &[
            os("-c"),
            os("import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(len(z.infolist()))"),
            archive.as_os_str(),
        ],
        None,
    );
    let members: usize = String::from_utf8_lossy(&py.stdout)
        .trim()
        .parse()
        .expect("count");
    // zipinfo shows symlinks as Unix symlink entries.
    let info = unzip(&[os("-Z"), archive.as_os_str()]);
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(
        info.lines()
            .any(|l| l.starts_with('l') && l.ends_with("links/relative")),
        "{info}"
    );
    // Every name is there, as UTF-8 (invalid bytes replaced).
    let listed = tool(
        "python3",
        &[
            os("-c"),
            os("import sys, zipfile; [print(repr(i.filename)) for i in zipfile.ZipFile(sys.argv[1]).infolist()]"),
            archive.as_os_str(),
        ],
        None,
    );
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    // The Unix mode in the external attributes (the permission bits: setuid, setgid and
    // sticky are among the reported losses).
    let modes = tool(
        "python3",
        &[
            os("-c"),
            os("import sys, zipfile; [print(oct(i.external_attr >> 16)) for i in zipfile.ZipFile(sys.argv[1]).infolist() if i.filename in ('hardlinks/pair_x', 'links/relative', 'modes/file_0644', 'modes/dir_0555/')]"),
            archive.as_os_str(),
        ],
        None,
    );
    let modes = String::from_utf8_lossy(&modes.stdout).into_owned();
    assert_eq!(
        modes, "0o100751\n0o120777\n0o40555\n0o100644\n",
        "modes in the zip's external attributes"
    );
    for name in [
        "'names/new\\nline'",
        "'names/caf\u{fffd}'",
        "'names/ünïcödé-日本語-🦀'",
        "'links/'",
    ] {
        assert!(
            listed.lines().any(|l| l == name),
            "{name} not in the zip listing:\n{listed}"
        );
    }
    // unzip restores contents, modes (-K: with setuid/setgid/sticky), owners (-X) and mtimes.
    // (It cannot create names with control characters, so names/ is left to the check above.)
    let z = ws.path("z");
    let mut args = vec![
        os("-q"),
        os("-K"),
        archive.as_os_str(),
        os("-d"),
        z.as_os_str(),
        os("-x"),
        os("names/*"),
    ];
    if is_root() {
        args.insert(1, os("-X"));
    }
    unzip(&args);
    let got = Tree::scan(&z);
    let mut checked = 0;
    for (rel, e) in &built.tree.entries {
        if rel.as_os_str().is_empty() {
            continue;
        }
        if matches!(e.kind, Kind::Fifo | Kind::Char | Kind::Block | Kind::Socket) {
            assert!(!got.entries.contains_key(rel), "{rel:?} should be left out");
            continue;
        }
        if rel.starts_with("names") {
            continue; // checked in the listing above
        }
        let a = got
            .entries
            .get(rel)
            .unwrap_or_else(|| panic!("{rel:?} missing from the unzipped tree"));
        assert_eq!(a.kind, e.kind, "{rel:?}");
        match e.kind {
            Kind::File => {
                assert_eq!(a.size, e.size, "{rel:?}");
                assert_eq!(
                    compare_content(&built.root.join(rel), &z.join(rel)),
                    None,
                    "{rel:?}"
                );
            }
            Kind::Symlink => {
                let t = e.target.as_deref().unwrap_or_default();
                let want = String::from_utf8_lossy(t).into_owned().into_bytes();
                assert_eq!(a.target, Some(want), "{rel:?}");
            }
            _ => {}
        }
        if e.kind != Kind::Symlink {
            assert_eq!(a.mode, e.mode & 0o777, "mode of {rel:?}");
        }
        if is_root() && e.kind != Kind::Symlink {
            assert_eq!((a.uid, a.gid), (e.uid, e.gid), "owner of {rel:?}");
        }
        // Whole seconds, where the zip timestamps can hold them (unzip ignores the extended
        // timestamp of times before 1980, where the DOS field cannot agree with it).
        let in_range = (315_532_800..=i64::from(i32::MAX)).contains(&e.mtime.0);
        if e.kind == Kind::File && in_range {
            assert_eq!(a.mtime.0, e.mtime.0, "mtime of {rel:?}");
        }
        checked += 1;
    }
    assert!(
        checked > 100 && members >= checked,
        "checked {checked} of {members}"
    );

    // Streamed to standard output (no seeking: data descriptors), it is still a valid zip.
    let streamed = sg.run([
        os("export"),
        os(&b.id),
        os("--format"),
        os("zip"),
        os("-o"),
        os("-"),
    ]);
    streamed.expect_code(0);
    let file = ws.path("streamed.zip");
    std::fs::write(&file, &streamed.stdout).expect("write streamed.zip");
    unzip(&[os("-tq"), file.as_os_str()]);
}

/// Info-ZIP's unzip, in a UTF-8 locale (in the C locale it escapes non-ASCII names).
fn unzip(args: &[&OsStr]) -> std::process::Output {
    let out = Command::new("unzip")
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("cannot run unzip (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "unzip {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `tar --xattrs --acls --format=pax -cpSf` of the fixture.
fn gnu_archive(ws: &Ws, built: &Built) -> PathBuf {
    let archive = ws.path("gnu.tar");
    tool(
        "tar",
        &[
            os("--xattrs"),
            os("--xattrs-include=*"),
            os("--acls"),
            os("--format=pax"),
            os("-cpSf"),
            archive.as_os_str(),
            os("-C"),
            built.root.as_os_str(),
            os("."),
        ],
        None,
    );
    archive
}

#[test]
fn import_of_a_gnu_tar_archive_restores_the_original_tree() {
    let ws = Ws::new();
    let built = varied_source(&ws);
    let archive = gnu_archive(&ws, &built);
    let sg = Sg::init(&ws, None);
    let (out, json) = import(
        &sg,
        &archive,
        &[
            "--path",
            "/imported/here",
            "--tag",
            "from-tar",
            "--host",
            "tarhost",
            "--time",
            "2024-05-06T07:08:09Z",
        ],
    );
    out.expect_code(0);
    let id = snapshot_id(&out, &json);
    // Restored whole, so that the folder itself gets the metadata of the archive's "./".
    let target = ws.path("restored");
    sg.restore(&id, &target, &[]).expect_code(0);
    let here = target.join("imported/here");
    assert_same(
        &built.tree,
        &Tree::scan(&here),
        &opts(),
        "GNU tar → import → restore",
    );
    // The snapshot records what it was told.
    let listed = sg.run(["--json", "snapshots", "--tag", "from-tar"]);
    let snaps = listed.json();
    let snap = &snaps[0];
    assert_eq!(snap["hostname"], "tarhost", "{listed}");
    assert_eq!(snap["paths"][0], "/imported/here", "{listed}");
    assert!(
        snap["time"]
            .as_str()
            .is_some_and(|t| t.starts_with("2024-05-06T07:08:09")),
        "{listed}"
    );
}

#[test]
fn import_of_acl_text_from_gnu_tar() {
    // `tar --acls` without `--xattrs` stores ACLs only as SCHILY.acl.* text.
    let ws = Ws::new();
    let mut fx = Fixture::new(&ws.path("src"));
    varied::acls(&mut fx);
    let built = fx.finish();
    let archive = ws.path("acls.tar");
    tool(
        "tar",
        &[
            os("--acls"),
            os("--format=pax"),
            os("-cpf"),
            archive.as_os_str(),
            os("-C"),
            built.root.as_os_str(),
            os("."),
        ],
        None,
    );
    let bytes = std::fs::read(&archive).expect("read the archive");
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"SCHILY.acl.access") && has(b"SCHILY.acl.default") && !has(b"SCHILY.xattr"));
    let sg = Sg::init(&ws, None);
    let (out, json) = import(&sg, &archive, &["--path", "/a"]);
    out.expect_code(0);
    let id = snapshot_id(&out, &json);
    let target = ws.path("restored");
    sg.restore(&id, &target, &[]).expect_code(0);
    assert_same(
        &built.tree,
        &Tree::scan(&target.join("a")),
        &opts(),
        "tar --acls → import → restore",
    );
}

#[test]
fn import_of_gnu_sparse_formats_keeps_holes() {
    let ws = Ws::new();
    let mut fx = Fixture::new(&ws.path("src"));
    fx.sparse_file(
        "a_sparse",
        64 << 20,
        &[(1 << 20, 4096), (40 << 20, 8192), ((64 << 20) - 4096, 4096)],
        3,
    );
    fx.sparse_file("only_hole", 32 << 20, &[], 4);
    fx.random_file("dense", 100_000, 5);
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    for (i, flags) in [
        &["--format=pax", "--sparse-version=1.0"][..],
        &["--format=pax", "--sparse-version=0.1"],
        &["--format=pax", "--sparse-version=0.0"],
        &["--format=gnu"],
    ]
    .iter()
    .enumerate()
    {
        let archive = ws.path(format!("sparse{i}.tar"));
        let mut args: Vec<&OsStr> = flags.iter().map(|f| os(*f)).collect();
        args.extend([
            os("-cpSf"),
            archive.as_os_str(),
            os("-C"),
            built.root.as_os_str(),
            os("."),
        ]);
        tool("tar", &args, None);
        let (out, json) = import(&sg, &archive, &["--path", "/s"]);
        out.expect_code(0);
        let id = snapshot_id(&out, &json);
        let target = ws.path(format!("r{i}"));
        sg.restore(&id, &target, &[]).expect_code(0);
        // Old GNU format has whole-second mtimes only. (Atimes are left out: GNU tar records
        // a sparse file's atime after reading it; that import keeps a pax atime is shown by
        // import_of_a_gnu_tar_archive_restores_the_original_tree.)
        let gnu = flags[0] == "--format=gnu";
        let o = Opts {
            atime: false,
            ..opts()
        };
        let mut want = Tree {
            root: built.tree.root.clone(),
            entries: built.tree.entries.clone(),
        };
        if gnu {
            for e in want.entries.values_mut() {
                e.mtime.1 = 0;
            }
        }
        assert_same(
            &want,
            &Tree::scan(&target.join("s")),
            &o,
            &format!("GNU tar {flags:?} → import"),
        );
    }
}

#[test]
fn import_of_borg_export_tar() {
    let ws = Ws::new();
    let built = varied_source(&ws);
    let borg_repo = ws.path("borg-repo");
    let borg = |args: &[&OsStr], dir: Option<&Path>| {
        let mut cmd = Command::new("borg");
        cmd.args(args)
            .env("BORG_BASE_DIR", ws.path("borg-base"))
            .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
            .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
            .env("LC_ALL", "C.UTF-8");
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run borg (is it installed?): {e}"));
        assert!(
            out.status.success(),
            "borg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    borg(
        &[os("init"), os("--encryption=none"), borg_repo.as_os_str()],
        None,
    );
    let mut archive_spec = borg_repo.clone().into_os_string();
    archive_spec.push("::tree");
    borg(
        &[os("create"), os("--numeric-ids"), &archive_spec, os(".")],
        Some(&built.root),
    );
    let tarball = ws.path("borg.tar");
    borg(
        &[os("export-tar"), &archive_spec, tarball.as_os_str()],
        None,
    );

    let sg = Sg::init(&ws, None);
    let (out, json) = import(&sg, &tarball, &["--path", "/borg"]);
    out.expect_code(0);
    let id = snapshot_id(&out, &json);
    let target = ws.path("restored");
    sg.restore(format!("{id}:/borg"), &target, &[])
        .expect_code(0);
    let got = Tree::scan(&target);
    // borg's GNU-format tar carries contents, types, modes, numeric owners, whole-second mtimes,
    // link targets, device numbers and hardlinks; no xattrs, atimes or holes.
    let mut checked = 0;
    for (rel, e) in &built.tree.entries {
        if rel.as_os_str().is_empty() {
            continue;
        }
        let a = got
            .entries
            .get(rel)
            .unwrap_or_else(|| panic!("{rel:?} missing after importing borg's tar"));
        assert_eq!(a.kind, e.kind, "{rel:?}");
        if e.kind != Kind::Symlink {
            assert_eq!(a.mode, e.mode, "mode of {rel:?}");
        }
        if is_root() {
            assert_eq!((a.uid, a.gid), (e.uid, e.gid), "owner of {rel:?}");
        }
        // borg 1.2 keeps times between 1970 and 2**31 - 1 - 48 h only (clamping the rest), and
        // Python's tarfile truncates the float seconds borg hands it.
        let borg_mtime = e.mtime.0.clamp(0, (1 << 31) - 1 - 48 * 3600);
        assert!(
            (a.mtime.0 - borg_mtime).abs() <= 1,
            "mtime of {rel:?}: {:?} vs {:?}",
            a.mtime,
            e.mtime
        );
        assert_eq!(a.target, e.target, "{rel:?}");
        match e.kind {
            Kind::File => {
                assert_eq!(a.size, e.size, "{rel:?}");
                assert_eq!(
                    compare_content(&built.root.join(rel), &target.join(rel)),
                    None,
                    "{rel:?}"
                );
                assert_eq!(a.nlink, e.nlink, "hardlinks of {rel:?}");
            }
            Kind::Char | Kind::Block => assert_eq!(a.rdev, e.rdev, "{rel:?}"),
            _ => {}
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} entries compared");
}

#[test]
fn export_then_import_reproduces_tree_ids() {
    let ws = Ws::new();
    let built = varied_source(&ws);
    let sg = Sg::init(&ws, None);
    // A backup, exported with inode numbers and imported at the root, is the same tree: the
    // archive carried every field of every node.
    let b = sg.backup(&[&built.root], &[]);
    let full = ws.path("full.tar");
    export(&sg, OsString::from(&b.id), &full, &["--inode-numbers"]);
    let (out, json) = import(&sg, &full, &[]);
    out.expect_code(0);
    assert_eq!(
        json["tree"].as_str(),
        Some(tree_of(&sg, &b.id).as_str()),
        "backup → export --inode-numbers → import changed the tree\n{out}"
    );
    // Nothing new had to be stored: every blob deduplicated.
    assert_eq!(json["bytes_added"].as_u64(), Some(0), "{out}");

    // A snapshot imported from GNU tar (whose metadata a tar fully carries), exported without
    // inode numbers and imported again, is the same tree too.
    let gnu = gnu_archive(&ws, &built);
    let (out, json) = import(&sg, &gnu, &["--path", "/imp"]);
    out.expect_code(0);
    let first = snapshot_id(&out, &json);
    let again = ws.path("again.tar");
    export(&sg, OsString::from(format!("{first}:/imp")), &again, &[]);
    let (out2, json2) = import(&sg, &again, &["--path", "/imp"]);
    out2.expect_code(0);
    assert_eq!(
        json2["tree"], json["tree"],
        "import → export → import changed the tree\n{out2}"
    );
}

/// A minimal ustar header (with checksum) for hand-made hostile archives.
fn ustar(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    if size < 1 << 33 {
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        // GNU base-256.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    h[136..148].copy_from_slice(b"14723545510\0");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn member(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = ustar(name, b'0', data.len() as u64, b"");
    m.extend_from_slice(data);
    m.resize(m.len().div_ceil(512) * 512, 0);
    m
}

fn end() -> Vec<u8> {
    vec![0u8; 1024]
}

#[test]
fn hostile_and_damaged_archives_are_refused() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let before = snapshot_count(&sg);
    let write = |name: &str, parts: &[Vec<u8>]| {
        let p = ws.path(name);
        std::fs::write(&p, parts.concat()).expect("write a test archive");
        p
    };
    let ok = member(b"ok.txt", b"fine");
    let cases: Vec<(PathBuf, &[&str])> = vec![
        // A name climbing out of the snapshot tree.
        (
            write(
                "dotdot.tar",
                &[ok.clone(), member(b"a/../../escape", b"x"), end()],
            ),
            &["../../escape", "'..'"],
        ),
        // A hardlink whose target climbs out.
        (
            write(
                "linkout.tar",
                &[ok.clone(), ustar(b"h", b'1', 0, b"../../etc/passwd"), end()],
            ),
            &["\"h\"", "'..'"],
        ),
        // Cut in the middle of a member's data.
        (
            write(
                "cut.tar",
                &[
                    ok.clone(),
                    member(b"big.bin", &random_bytes(1, 5000))[..3000].to_vec(),
                ],
            ),
            &["big.bin", "truncated"],
        ),
        // A size far beyond the stream.
        (
            write(
                "absurd.tar",
                &[
                    ok.clone(),
                    ustar(b"huge", b'0', 1 << 40, b""),
                    vec![7u8; 512],
                ],
            ),
            &["huge", "truncated"],
        ),
        // No end-of-archive marker at all.
        (
            write("noend.tar", std::slice::from_ref(&ok)),
            &["end-of-archive"],
        ),
        // A damaged header.
        (
            write(
                "damaged.tar",
                &[
                    ok.clone(),
                    {
                        let mut m = member(b"bad", b"y");
                        m[130] ^= 1;
                        m
                    },
                    end(),
                ],
            ),
            &["\"bad\"", "checksum"],
        ),
        // Not a tar archive: random bytes, and a gzip stream.
        (
            write("noise.tar", &[random_bytes(9, 4096)]),
            &["not a tar archive"],
        ),
        (
            write("gz.tar", &[vec![0x1f, 0x8b, 8, 0], random_bytes(2, 2000)]),
            &["compressed"],
        ),
        // A pax header whose record claims more bytes than it has.
        (
            write(
                "pax.tar",
                &[
                    {
                        let mut m = ustar(b"PaxHeaders/x", b'x', 12, b"");
                        m.extend_from_slice(b"99 path=abc\n");
                        m.resize(1024, 0);
                        m
                    },
                    ok.clone(),
                    end(),
                ],
            ),
            &["record length"],
        ),
    ];
    for (file, words) in &cases {
        let (out, _) = import(&sg, file, &["--path", "/hostile"]);
        assert_eq!(out.code, Some(1), "{file:?} was not refused\n{out}");
        let err = out.stderr_str();
        assert!(err.contains("cannot import"), "{out}");
        for w in *words {
            assert!(
                err.contains(w),
                "{file:?}: error does not mention {w:?}\n{out}"
            );
        }
    }
    assert_eq!(
        snapshot_count(&sg),
        before,
        "a refused archive left a snapshot"
    );
    assert!(
        !ws.path("escape").exists()
            && !ws
                .root
                .parent()
                .expect("temp dir parent")
                .join("escape")
                .exists()
    );

    // Absolute names are kept inside the snapshot, like GNU tar does; a hardlink to a missing
    // entry is reported and left out (exit code 3: incomplete).
    let abs = write(
        "abs.tar",
        &[
            member(b"/etc/evil", b"x"),
            ustar(b"dangling", b'1', 0, b"nowhere"),
            end(),
        ],
    );
    let (out, json) = import(&sg, &abs, &["--path", "/inside"]);
    out.expect_code(3);
    assert!(out.stderr_str().contains("leading '/' removed"), "{out}");
    assert!(out.stderr_str().contains("dangling"), "{out}");
    let id = snapshot_id(&out, &json);
    let ls = sg.run(["ls", &id]);
    assert_eq!(
        ls.stdout_str(),
        "/inside\n/inside/etc\n/inside/etc/evil\n",
        "{ls}"
    );

    // The classic symlink attack: a symlink to a directory outside, then a file "through" it.
    // The snapshot never follows symlinks: the later entry turns the path into a directory.
    let outside = ws.path("outside");
    std::fs::create_dir_all(&outside).expect("mkdir outside");
    let link_target = outside.as_os_str().as_encoded_bytes().to_vec();
    let attack = write(
        "symlink.tar",
        &[
            ustar(b"s", b'2', 0, &link_target),
            member(b"s/planted", b"x"),
            end(),
        ],
    );
    let (out, json) = import(&sg, &attack, &["--path", "/sym"]);
    out.expect_code(0);
    assert!(
        out.stderr_str().contains("replaced by a later entry"),
        "{out}"
    );
    let id = snapshot_id(&out, &json);
    let target = ws.path("sym-restored");
    sg.restore(&id, &target, &[]).expect_code(0);
    assert!(target.join("sym/s").is_dir() && target.join("sym/s/planted").is_file());
    assert_eq!(
        std::fs::read_dir(&outside).expect("list outside").count(),
        0
    );
}

#[test]
fn import_dry_run_and_stdin() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let archive = ws.path("a.tar");
    std::fs::write(&archive, [member(b"d/f.txt", b"content"), end()].concat())
        .expect("write a.tar");
    let (out, json) = import(&sg, &archive, &["--dry-run"]);
    out.expect_code(0);
    assert!(json["snapshot_id"].is_null(), "{out}");
    assert_eq!(snapshot_count(&sg), 0);
    let mut cmd = sg.command();
    cmd.write_stdin(std::fs::read(&archive).expect("read a.tar"));
    let out =
        crate::support::cmd::run_cmd(&mut cmd, ["import", "tar", "-", "--path", "/from-stdin"]);
    out.expect_code(0);
    let dump = sg.run(["dump", "latest", "/from-stdin/d/f.txt"]);
    dump.expect_code(0);
    assert_eq!(dump.stdout, b"content");
}

/// Peak resident memory (KiB) of `cmd`, sampled while it runs; its stdout is discarded.
fn peak_rss_kib(mut cmd: std::process::Command) -> (u64, std::process::ExitStatus) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let drain = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
            {
                peak = peak.max(kb);
            }
        }
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let copied = drain.join().expect("drain").expect("copy");
    assert!(copied > 0);
    (peak, status)
}

#[test]
fn export_of_a_large_file_keeps_memory_flat() {
    let ws = Ws::new();
    let mut fx = Fixture::new(&ws.path("src"));
    fx.random_file("big.bin", 300 << 20, 42);
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&built.root], &["--compression", "off"]);
    for format in ["tar", "zip"] {
        let mut cmd = sg.std_command();
        cmd.args(["export", &b.id, "--format", format, "-o", "-"]);
        let (peak, status) = peak_rss_kib(cmd);
        assert!(status.success(), "export {format} failed");
        // The file is 300 MiB; the export holds a blob or two at a time.
        assert!(
            peak < 120 * 1024,
            "export --format {format} peaked at {} MiB",
            peak / 1024
        );
    }
    let _ = restored_path;
}

#[test]
fn export_errors_leave_no_archive_behind() {
    let ws = Ws::new();
    let mut fx = Fixture::new(&ws.path("src"));
    fx.file("a.txt", b"a");
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&built.root], &[]);
    let out_dir = ws.path("out");
    std::fs::create_dir_all(&out_dir).expect("mkdir out");
    let target = out_dir.join("x.tar");
    // No such path in the snapshot: exit code 15, and nothing written.
    let missing = built.root.join("nope");
    let out = sg.run([
        os("export"),
        spec(&b.id, &missing).as_os_str(),
        os("-o"),
        target.as_os_str(),
    ]);
    out.expect_code(15);
    assert!(out.stderr_str().contains("does not exist"), "{out}");
    let left = std::fs::read_dir(&out_dir).expect("list out").count();
    assert_eq!(left, 0, "an export that failed left files in {out_dir:?}");
    // Inode numbers are a tar feature.
    let zip = out_dir.join("x.zip");
    let out = sg.run([
        os("export"),
        os(&b.id),
        os("--inode-numbers"),
        os("-o"),
        zip.as_os_str(),
    ]);
    out.expect_code(2);
    // A successful export is readable by its owner only.
    export(&sg, OsString::from(&b.id), &target, &[]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&target)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_dir(&out_dir).expect("list out").count(), 1);
}

#[test]
fn export_zip_of_a_file_over_4_gib_uses_zip64() {
    let ws = Ws::new();
    let mut fx = Fixture::new(&ws.path("src"));
    let size: u64 = 5 << 30;
    fx.sparse_file("huge", size, &[(size - 4096, 4096)], 8);
    let built = fx.finish();
    let sg = Sg::init(&ws, None);
    let b = sg.backup(&[&built.root], &[]);
    let archive = ws.path("huge.zip");
    export(&sg, spec(&b.id, &built.root), &archive, &[]);
    // unzip checks the CRC of all 5 GiB; zipfile reads the zip64 sizes.
    unzip(&[os("-tq"), archive.as_os_str()]);
    let info = tool(
        "python3",
        &[
            os("-c"),
            os("import sys, zipfile; i = zipfile.ZipFile(sys.argv[1]).getinfo('huge'); print(i.file_size)"),
            archive.as_os_str(),
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&info.stdout).trim(),
        size.to_string()
    );
}
