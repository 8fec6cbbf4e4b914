//! `versions` and `find` through the binary: several backups of a changing tree (new content,
//! metadata-only changes, deletions and re-creations of the same path, directories, symlinks,
//! odd names), every printed restore command run in a real shell and its result compared
//! byte for byte, the pattern styles and time filters of `find`, the JSON shapes, and the
//! not-found errors.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::errors::{expect_err, no_panic, path_str, strict_json};
use crate::support::cmd::{bin, run_cmd, Out, Sg, Ws, PASSWORD};

/// A repository whose commands run in UTC (so local times in text output and date-only time
/// filters are predictable) and a source directory.
fn setup() -> (Ws, Sg, PathBuf) {
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    sg.extra_env.push(("TZ".into(), "UTC".into()));
    let src = ws.path("src");
    fs::create_dir_all(&src).expect("mkdir src");
    (ws, sg, src)
}

/// Back `src` up as a snapshot taken at `time` (RFC 3339); its full id.
fn backup_at(sg: &Sg, src: &Path, time: &str, extra: &[&str]) -> String {
    let mut args = vec!["--time", time];
    args.extend(extra);
    sg.backup(&[src], &args).id
}

fn run(sg: &Sg, args: &[&OsStr]) -> Out {
    let out = sg.run(args);
    no_panic(&out);
    out
}

/// `snapguard --json ARGS`: exit 0, one JSON document.
fn json(sg: &Sg, args: &[&OsStr]) -> Value {
    let mut all = vec![OsStr::new("--json")];
    all.extend(args);
    let out = run(sg, &all);
    out.expect_code(0);
    strict_json(&out)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// The `restore:` commands of `versions` text output, in order.
fn restore_lines(out: &Out) -> Vec<String> {
    out.stdout_str()
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("restore: "))
        .map(str::to_string)
        .collect()
}

/// Run a printed command line in bash, in a fresh directory `ws/run-N` with `snapguard` on the
/// PATH; returns that directory. `with_repo_env`: the repository's variables are set as for
/// every other run (else only the password: the command must name the repository itself).
fn run_printed(ws: &Ws, sg: &Sg, line: &str, n: usize, with_repo_env: bool) -> PathBuf {
    let dir = ws.path(format!("run-{n}"));
    fs::create_dir_all(&dir).expect("mkdir run dir");
    let bin_dir = bin().parent().expect("binary dir").to_path_buf();
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut v = bin_dir.into_os_string();
            v.push(":");
            v.push(p);
            v
        }
        None => bin_dir.into_os_string(),
    };
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(line)
        .current_dir(&dir)
        .env("PATH", path)
        .env("SNAPGUARD_PASSWORD", PASSWORD)
        .env("SNAPGUARD_CONFIG", &sg.config)
        .env("SNAPGUARD_CACHE_DIR", &sg.cache)
        .env_remove("SNAPGUARD_REPOSITORY")
        .env_remove("SNAPGUARD_PASSWORD_FILE");
    if with_repo_env {
        cmd.env("SNAPGUARD_REPOSITORY", &sg.repo);
    }
    let out = cmd.output().expect("run bash");
    assert!(
        out.status.success(),
        "printed command failed: {line}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn short(id: &str) -> &str {
    &id[..8]
}

/// The ids of a JSON list of snapshot references.
fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn versions_of_a_file_with_changes_gaps_and_recreation() {
    let (ws, sg, src) = setup();
    let f = src.join("notes.txt");
    fs::write(&f, b"one").expect("write");
    let s0 = backup_at(&sg, &src, "2024-01-01T10:00:00Z", &[]);
    let s1 = backup_at(&sg, &src, "2024-01-02T10:00:00Z", &[]);
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).expect("chmod");
    let s2 = backup_at(&sg, &src, "2024-01-03T10:00:00Z", &[]);
    fs::write(&f, b"two, and longer").expect("write");
    let s3 = backup_at(&sg, &src, "2024-01-04T10:00:00Z", &[]);
    fs::remove_file(&f).expect("rm");
    let s4 = backup_at(&sg, &src, "2024-01-05T10:00:00Z", &[]);
    fs::write(&f, b"one").expect("write");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).expect("chmod");
    let s5 = backup_at(&sg, &src, "2024-01-06T10:00:00Z", &[]);
    fs::write(&f, b"three").expect("write");
    let s6 = backup_at(&sg, &src, "2024-01-07T10:00:00Z", &[]);

    // Content versions: "one" (s0-s2 and again s5), "two" (s3), "three" (s6).
    let v = json(&sg, &[os("versions"), f.as_os_str()]);
    assert_eq!(v["path"], path_str(&f));
    assert_eq!(v["granularity"], "content");
    assert_eq!(v["snapshots_searched"], 7);
    assert_eq!(v["snapshots_with_path"], 6);
    let versions = v["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 3, "{v:#}");
    let one = &versions[0];
    assert_eq!(one["version"], 1);
    assert_eq!(one["type"], "file");
    assert_eq!(one["size"], 3);
    assert_eq!(
        ids(&one["snapshots"]),
        [s0.as_str(), s1.as_str(), s2.as_str(), s5.as_str()]
    );
    assert_eq!(one["snapshot_count"], 4);
    assert_eq!(one["first_snapshot"]["id"], s0.as_str());
    assert_eq!(one["last_snapshot"]["id"], s5.as_str());
    let runs = one["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "the gap splits the runs: {one:#}");
    assert_eq!(runs[0]["first"]["id"], s0.as_str());
    assert_eq!(runs[0]["last"]["id"], s2.as_str());
    assert_eq!(runs[0]["snapshots"], 3);
    assert_eq!(runs[1]["first"]["id"], s5.as_str());
    assert_eq!(runs[1]["snapshots"], 1);
    // Three metadata states (644, 600, then the re-created 640), one version.
    assert_eq!(one["metadata_variants"], 3);
    // It shows (and restores) the newest occurrence.
    assert_eq!(one["mode"], 0o640);
    assert_eq!(one["restore"]["snapshot"], s5.as_str());
    assert_eq!(ids(&versions[1]["snapshots"]), [s3.as_str()]);
    assert_eq!(versions[1]["size"], 15);
    assert_eq!(ids(&versions[2]["snapshots"]), [s6.as_str()]);
    let absent = v["absent"].as_array().expect("absent");
    assert_eq!(absent.len(), 1);
    assert_eq!(absent[0]["first"]["id"], s4.as_str());
    assert_eq!(absent[0]["snapshots"], 1);
    assert_eq!(v["errors"], serde_json::json!([]));

    // The text shows the same, with a restore command per version that brings exactly it back.
    let out = run(&sg, &[os("versions"), f.as_os_str()]);
    out.expect_code(0);
    let text = out.stdout_str();
    assert!(
        text.contains(&format!(
            "{}: 3 version(s) in 6 of 7 snapshot(s)",
            path_str(&f)
        )),
        "{out}"
    );
    assert!(
        text.contains(&format!(
            "2024-01-01 10:00:00 {} to 2024-01-03 10:00:00 {}  (3 snapshot(s))",
            short(&s0),
            short(&s2)
        )),
        "{out}"
    );
    assert!(
        text.contains(&format!(
            "not in 1 snapshot(s):\n    2024-01-05 10:00:00 {}",
            short(&s4)
        )),
        "{out}"
    );
    assert!(text.contains("3 metadata states"), "{out}");
    let lines = restore_lines(&out);
    assert_eq!(
        lines,
        [s5.as_str(), s3.as_str(), s6.as_str()]
            .iter()
            .map(|id| format!(
                "snapguard restore {}:{} --target ./restored",
                short(id),
                path_str(&f)
            ))
            .collect::<Vec<_>>()
    );
    let want: [&[u8]; 3] = [b"one", b"two, and longer", b"three"];
    for (i, line) in lines.iter().enumerate() {
        let dir = run_printed(&ws, &sg, line, i, true);
        let got = fs::read(dir.join("restored/notes.txt")).expect("restored file");
        assert_eq!(got, want[i], "version {} restored by {line}", i + 1);
    }

    // With --all every metadata change is a version of its own.
    let all = json(&sg, &[os("versions"), os("--all"), f.as_os_str()]);
    assert_eq!(all["granularity"], "metadata");
    let av = all["versions"].as_array().expect("versions");
    let runs: Vec<Vec<String>> = av.iter().map(|v| ids(&v["snapshots"])).collect();
    assert_eq!(
        runs,
        vec![
            vec![s0.clone(), s1.clone()],
            vec![s2.clone()],
            vec![s3.clone()],
            vec![s5.clone()],
            vec![s6.clone()]
        ]
    );
    assert!(av.iter().all(|v| v["metadata_variants"] == 1));
    // The chmod-600 version restores with mode 600 and the first content.
    let out = run(&sg, &[os("versions"), os("--all"), f.as_os_str()]);
    out.expect_code(0);
    let lines = restore_lines(&out);
    assert_eq!(lines.len(), 5, "{out}");
    let dir = run_printed(&ws, &sg, &lines[1], 10, true);
    let restored = dir.join("restored/notes.txt");
    assert_eq!(fs::read(&restored).expect("read"), b"one");
    let mode = fs::metadata(&restored).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
}

#[test]
fn versions_of_directories_and_symlinks() {
    let (ws, sg, src) = setup();
    let proj = src.join("proj");
    fs::create_dir_all(proj.join("sub")).expect("mkdir");
    fs::write(proj.join("a.txt"), b"a1").expect("write");
    fs::write(proj.join("sub/b.txt"), b"b1").expect("write");
    let link = src.join("current");
    std::os::unix::fs::symlink("proj/a.txt", &link).expect("symlink");
    let s0 = backup_at(&sg, &src, "2024-02-01T08:00:00Z", &[]);
    // The directory's content changes, the link points elsewhere.
    fs::write(proj.join("sub/b.txt"), b"b2, changed").expect("write");
    fs::remove_file(&link).expect("rm");
    std::os::unix::fs::symlink("proj/sub/b.txt", &link).expect("symlink");
    let s1 = backup_at(&sg, &src, "2024-02-02T08:00:00Z", &[]);
    // Nothing changes.
    let s2 = backup_at(&sg, &src, "2024-02-03T08:00:00Z", &[]);
    // The link goes away, then comes back with its first target (a new inode: same version).
    fs::remove_file(&link).expect("rm");
    let s3 = backup_at(&sg, &src, "2024-02-04T08:00:00Z", &[]);
    std::os::unix::fs::symlink("proj/a.txt", &link).expect("symlink");
    let s4 = backup_at(&sg, &src, "2024-02-05T08:00:00Z", &[]);

    let d = json(&sg, &[os("versions"), proj.as_os_str()]);
    let dv = d["versions"].as_array().expect("versions");
    assert_eq!(dv.len(), 2, "{d:#}");
    assert_eq!(dv[0]["type"], "dir");
    assert_eq!(dv[0]["entries"], 2);
    assert_eq!(ids(&dv[0]["snapshots"]), [s0.as_str()]);
    assert_eq!(
        ids(&dv[1]["snapshots"]),
        [s1.as_str(), s2.as_str(), s3.as_str(), s4.as_str()]
    );
    assert_eq!(dv[1]["restore"]["restores_to"], "./restored");

    // Each printed command restores that version of the whole directory.
    let out = run(&sg, &[os("versions"), proj.as_os_str()]);
    out.expect_code(0);
    assert!(out.stdout_str().contains("dir  2 entries"), "{out}");
    let lines = restore_lines(&out);
    assert_eq!(lines.len(), 2);
    for (i, want_b) in [&b"b1"[..], b"b2, changed"].iter().enumerate() {
        let dir = run_printed(&ws, &sg, &lines[i], i, true).join("restored");
        assert_eq!(fs::read(dir.join("a.txt")).expect("a.txt"), b"a1");
        assert_eq!(fs::read(dir.join("sub/b.txt")).expect("b.txt"), *want_b);
    }

    let l = json(&sg, &[os("versions"), link.as_os_str()]);
    let lv = l["versions"].as_array().expect("versions");
    assert_eq!(lv.len(), 2, "{l:#}");
    assert_eq!(lv[0]["type"], "symlink");
    assert_eq!(lv[0]["link_target"], "proj/a.txt");
    assert_eq!(ids(&lv[0]["snapshots"]), [s0.as_str(), s4.as_str()]);
    assert_eq!(ids(&lv[1]["snapshots"]), [s1.as_str(), s2.as_str()]);
    assert_eq!(l["absent"][0]["first"]["id"], s3.as_str());
    let out = run(&sg, &[os("versions"), link.as_os_str()]);
    out.expect_code(0);
    assert!(
        out.stdout_str().contains("symlink -> proj/sub/b.txt"),
        "{out}"
    );
    let lines = restore_lines(&out);
    for (i, want) in ["proj/a.txt", "proj/sub/b.txt"].iter().enumerate() {
        let dir = run_printed(&ws, &sg, &lines[i], 10 + i, true);
        let target = fs::read_link(dir.join("restored/current")).expect("readlink");
        assert_eq!(target, Path::new(want));
    }
}

#[test]
fn printed_commands_quote_odd_names_and_name_the_repository() {
    let (ws, sg, src) = setup();
    let odd = src.join("it's a $HOME file");
    let latin1 = src.join(OsStr::from_bytes(b"caf\xe9 \\ x"));
    fs::write(&odd, b"odd 1").expect("write");
    fs::write(&latin1, b"latin 1").expect("write");
    backup_at(&sg, &src, "2024-03-01T00:00:00Z", &[]);
    fs::write(&odd, b"odd 2").expect("write");
    fs::write(&latin1, b"latin 2").expect("write");
    backup_at(&sg, &src, "2024-03-02T00:00:00Z", &[]);

    for (n, (path, name)) in [(&odd, odd.file_name()), (&latin1, latin1.file_name())]
        .into_iter()
        .enumerate()
    {
        let name = name.expect("file name");
        let out = run(&sg, &[os("versions"), path.as_os_str()]);
        out.expect_code(0);
        let lines = restore_lines(&out);
        assert_eq!(lines.len(), 2, "{out}");
        for (i, line) in lines.iter().enumerate() {
            let dir = run_printed(&ws, &sg, line, n * 10 + i, true);
            let got = fs::read(dir.join("restored").join(name)).expect("restored file");
            let want = fs::read(path).expect("source");
            if i == 1 {
                assert_eq!(got, want, "{line}");
            } else {
                assert_ne!(got, want, "{line} restored the newest version");
                assert!(got.ends_with(b" 1"), "{line}");
            }
        }
    }

    // Named with -r (not the environment), the repository is part of the printed command.
    let mut cmd = sg.command();
    cmd.env_remove("SNAPGUARD_REPOSITORY");
    let out = run_cmd(
        &mut cmd,
        [
            os("-r"),
            sg.repo.as_os_str(),
            os("versions"),
            odd.as_os_str(),
            os("--target"),
            os("out dir"),
        ],
    );
    no_panic(&out);
    out.expect_code(0);
    let lines = restore_lines(&out);
    assert!(
        lines[1].starts_with(&format!("snapguard -r {} restore ", path_str(&sg.repo))),
        "{out}"
    );
    assert!(lines[1].ends_with(" --target 'out dir'"), "{out}");
    let dir = run_printed(&ws, &sg, &lines[1], 99, false);
    assert_eq!(
        fs::read(dir.join("out dir").join(odd.file_name().expect("name"))).expect("restored"),
        b"odd 2"
    );
}

#[test]
fn versions_filters_relative_paths_and_not_found() {
    let (ws, sg, src) = setup();
    let f = src.join("notes.txt");
    fs::write(&f, b"laptop").expect("write");
    let a = backup_at(
        &sg,
        &src,
        "2024-04-01T12:00:00Z",
        &["--host", "laptop", "--tag", "daily"],
    );
    fs::write(&f, b"server").expect("write");
    let b = backup_at(&sg, &src, "2024-04-02T12:00:00Z", &["--host", "server"]);

    let both = json(&sg, &[os("versions"), f.as_os_str()]);
    assert_eq!(both["versions"].as_array().expect("versions").len(), 2);
    let host = json(
        &sg,
        &[os("versions"), f.as_os_str(), os("--host"), os("server")],
    );
    assert_eq!(host["snapshots_searched"], 1);
    assert_eq!(ids(&host["versions"][0]["snapshots"]), [b.as_str()]);
    let tag = json(
        &sg,
        &[os("versions"), f.as_os_str(), os("--tag"), os("daily")],
    );
    assert_eq!(ids(&tag["versions"][0]["snapshots"]), [a.as_str()]);
    let newer = json(
        &sg,
        &[
            os("versions"),
            f.as_os_str(),
            os("--newer"),
            os("2024-04-02"),
        ],
    );
    assert_eq!(ids(&newer["versions"][0]["snapshots"]), [b.as_str()]);
    // With two hosts, the text names the host next to each snapshot.
    let out = run(&sg, &[os("versions"), f.as_os_str()]);
    assert!(
        out.stdout_str()
            .contains(&format!("{} (laptop)", short(&a))),
        "{out}"
    );

    // A relative path is taken from the current directory.
    let mut cmd = sg.command();
    cmd.current_dir(&src);
    let out = run_cmd(&mut cmd, ["--json", "versions", "notes.txt"]);
    no_panic(&out);
    out.expect_code(0);
    assert_eq!(strict_json(&out)["path"], path_str(&f));

    // A path in no snapshot: exit 15, naming the path and what was searched.
    let missing = src.join("nope.txt");
    let out = run(&sg, &[os("versions"), missing.as_os_str()]);
    expect_err(
        &out,
        15,
        &[
            &path_str(&missing),
            "is in none of the 2 snapshot(s)",
            "snapguard find",
        ],
    );
    assert!(out.stdout.is_empty(), "{out}");
    let out = run(
        &sg,
        &[
            os("versions"),
            missing.as_os_str(),
            os("--host"),
            os("laptop"),
        ],
    );
    expect_err(&out, 15, &["(--host laptop)"]);
    // Filters that leave no snapshot.
    let out = run(
        &sg,
        &[os("versions"), f.as_os_str(), os("--host"), os("nas")],
    );
    expect_err(
        &out,
        15,
        &[
            "none of the 2 snapshot(s) matches --host nas",
            "snapguard snapshots",
        ],
    );
    let out = run(
        &sg,
        &[
            os("versions"),
            f.as_os_str(),
            os("--newer"),
            os("next week"),
        ],
    );
    expect_err(&out, 2, &["invalid time \"next week\"", "RFC 3339"]);
    // A repository without snapshots.
    let empty_ws = Ws::new();
    let empty = Sg::init(&empty_ws, None);
    let out = run(&empty, &[os("versions"), f.as_os_str()]);
    expect_err(&out, 15, &["has no snapshots yet", "snapguard backup"]);
    drop(ws);
}

/// `find --json ARGS`: per snapshot id, the matching paths relative to `src`.
fn find(sg: &Sg, src: &Path, args: &[&OsStr]) -> Vec<(String, Vec<String>)> {
    let mut all = vec![os("find")];
    all.extend(args);
    let v = json(sg, &all);
    let prefix = format!("{}/", path_str(src));
    v["snapshots"]
        .as_array()
        .unwrap_or_else(|| panic!("no snapshots array: {v:#}"))
        .iter()
        .map(|s| {
            let paths = s["matches"]
                .as_array()
                .expect("matches")
                .iter()
                .map(|m| {
                    let p = m["path"].as_str().expect("path");
                    p.strip_prefix(&prefix).unwrap_or(p).to_string()
                })
                .collect();
            (s["id"].as_str().expect("id").to_string(), paths)
        })
        .collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn find_pattern_styles_and_time_filters() {
    let (_ws, sg, src) = setup();
    for (rel, data) in [
        ("docs/a.pdf", &b"%PDF a"[..]),
        ("docs/b.txt", b"b"),
        ("home/alice/notes.txt", b"alice"),
        ("home/bob/notes.txt", b"bob"),
        ("home/bob/deep/notes.txt", b"deeper"),
        ("proj/Cargo.toml", b"[package]"),
        ("proj/sub/Cargo.toml", b"[package] sub"),
    ] {
        let p = src.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, data).expect("write");
    }
    let s0 = backup_at(&sg, &src, "2024-03-01T09:00:00Z", &[]);
    fs::write(src.join("docs/c.pdf"), b"%PDF c").expect("write");
    fs::remove_file(src.join("home/bob/notes.txt")).expect("rm");
    let s1 = backup_at(&sg, &src, "2024-03-05T09:00:00Z", &[]);
    let s2 = backup_at(&sg, &src, "2024-03-10T09:00:00Z", &[]);
    let base = path_str(&src);

    // A name pattern matches at any depth.
    assert_eq!(
        find(&sg, &src, &[os("*.pdf")]),
        vec![
            (s0.clone(), strs(&["docs/a.pdf"])),
            (s1.clone(), strs(&["docs/a.pdf", "docs/c.pdf"])),
            (s2.clone(), strs(&["docs/a.pdf", "docs/c.pdf"])),
        ]
    );
    // An absolute pattern: `*` stays within one component.
    let abs = format!("{base}/home/*/notes.txt");
    assert_eq!(
        find(&sg, &src, &[os(&abs)]),
        vec![
            (
                s0.clone(),
                strs(&["home/alice/notes.txt", "home/bob/notes.txt"])
            ),
            (s1.clone(), strs(&["home/alice/notes.txt"])),
            (s2.clone(), strs(&["home/alice/notes.txt"])),
        ]
    );
    let deep = format!("{base}/home/**/notes.txt");
    assert_eq!(
        find(&sg, &src, &[os(&deep), os("--snapshot"), os(&s0)]),
        vec![(
            s0.clone(),
            strs(&[
                "home/alice/notes.txt",
                "home/bob/deep/notes.txt",
                "home/bob/notes.txt"
            ])
        )]
    );
    // `**/NAME` and a relative path pattern match the end of a path.
    let cargo = strs(&["proj/Cargo.toml", "proj/sub/Cargo.toml"]);
    assert_eq!(
        find(&sg, &src, &[os("**/Cargo.toml"), os("--snapshot"), os(&s2)]),
        vec![(s2.clone(), cargo)]
    );
    assert_eq!(
        find(
            &sg,
            &src,
            &[os("sub/Cargo.toml"), os("--snapshot"), os(&s2)]
        ),
        vec![(s2.clone(), strs(&["proj/sub/Cargo.toml"]))]
    );
    // Directories match too.
    assert_eq!(
        find(&sg, &src, &[os("bob"), os("--snapshot"), os("latest")]),
        vec![(s2.clone(), strs(&["home/bob"]))]
    );

    // Time filters: --newer is inclusive, --older exclusive; dates are local (UTC here).
    let pdf_ids = |args: &[&OsStr]| -> Vec<String> {
        let mut a = vec![os("*.pdf")];
        a.extend(args);
        find(&sg, &src, &a).into_iter().map(|(id, _)| id).collect()
    };
    assert_eq!(
        pdf_ids(&[os("--newer"), os("2024-03-05")]),
        [s1.as_str(), s2.as_str()]
    );
    assert_eq!(pdf_ids(&[os("--older"), os("2024-03-05")]), [s0.as_str()]);
    assert_eq!(
        pdf_ids(&[
            os("--newer"),
            os("2024-03-02"),
            os("--older"),
            os("2024-03-05T09:00:01Z")
        ]),
        [s1.as_str()]
    );
    assert_eq!(
        pdf_ids(&[os("--newer"), os("2024-03-10 09:00")]),
        [s2.as_str()]
    );
    assert_eq!(
        pdf_ids(&[os("--snapshot"), os(short(&s0)), os("--snapshot"), os(&s2)]),
        [s0.as_str(), s2.as_str()]
    );

    // Text: one line per match with snapshot time, id, type, size, modification time, path.
    let out = run(
        &sg,
        &[os("find"), os("*.pdf"), os("--newer"), os("2024-03-05")],
    );
    out.expect_code(0);
    let text = out.stdout_str();
    let c_pdf = format!("{base}/docs/c.pdf");
    let line = text
        .lines()
        .find(|l| l.contains(short(&s1)) && l.ends_with(&c_pdf))
        .unwrap_or_else(|| panic!("no line for c.pdf in {}\n{out}", short(&s1)));
    assert!(line.starts_with("2024-03-05 09:00:00"), "{line}");
    assert!(line.contains(" file "), "{line}");
    assert!(line.contains(" 6 B "), "{line}");
    assert!(text.contains("4 match(es) in 2 of 2 snapshot(s)"), "{out}");

    // No match is an answer, not an error.
    let out = run(&sg, &[os("find"), os("*.docx")]);
    out.expect_code(0);
    assert!(
        out.stdout_str()
            .contains("no path matches \"*.docx\" in the 3 snapshot(s) searched"),
        "{out}"
    );
    // Bad patterns and times are usage errors; unknown snapshots are not found.
    expect_err(&run(&sg, &[os("find"), os("[")]), 2, &["invalid pattern"]);
    expect_err(&run(&sg, &[os("find"), os("/")]), 2, &["empty"]);
    expect_err(
        &run(&sg, &[os("find"), os("*"), os("--older"), os("2024-13-01")]),
        2,
        &["invalid time"],
    );
    expect_err(
        &run(
            &sg,
            &[os("find"), os("*"), os("--snapshot"), os("ffffffff")],
        ),
        15,
        &["ffffffff"],
    );
    expect_err(
        &run(&sg, &[os("find"), os("*"), os("--host"), os("nas")]),
        15,
        &["matches --host nas"],
    );
}

#[test]
fn json_shapes() {
    let (_ws, sg, src) = setup();
    let f = src.join("f.txt");
    fs::write(&f, b"x").expect("write");
    let id = backup_at(&sg, &src, "2024-05-01T00:00:00Z", &["--tag", "t1"]);

    let v = json(&sg, &[os("versions"), f.as_os_str()]);
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {v}"))
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&v),
        strs(&[
            "absent",
            "errors",
            "granularity",
            "path",
            "snapshots_searched",
            "snapshots_with_path",
            "versions"
        ])
    );
    let ver = &v["versions"][0];
    for k in [
        "version",
        "path",
        "name",
        "type",
        "size",
        "mtime",
        "mode",
        "permissions",
        "uid",
        "gid",
        "snapshot_count",
        "first_snapshot",
        "last_snapshot",
        "runs",
        "snapshots",
        "metadata_variants",
        "restore",
    ] {
        assert!(ver.get(k).is_some(), "version has no {k:?}: {ver:#}");
    }
    assert!(ver.get("content").is_none(), "{ver:#}");
    assert_eq!(
        keys(&ver["first_snapshot"]),
        strs(&["hostname", "id", "short_id", "time"])
    );
    assert_eq!(ver["first_snapshot"]["time"], "2024-05-01T00:00:00Z");
    assert_eq!(ver["first_snapshot"]["short_id"], short(&id));
    assert_eq!(keys(&ver["runs"][0]), strs(&["first", "last", "snapshots"]));
    assert_eq!(
        keys(&ver["restore"]),
        strs(&["command", "path", "restores_to", "snapshot", "target"])
    );
    assert_eq!(
        ver["restore"]["command"],
        format!(
            "snapguard restore {}:{} --target ./restored",
            short(&id),
            path_str(&f)
        )
    );
    assert_eq!(ver["restore"]["restores_to"], "./restored/f.txt");

    let v = json(&sg, &[os("find"), os("*.txt")]);
    assert_eq!(
        keys(&v),
        strs(&[
            "errors",
            "matches",
            "pattern",
            "snapshots",
            "snapshots_searched",
            "snapshots_with_matches"
        ])
    );
    assert_eq!(v["matches"], 1);
    let s = &v["snapshots"][0];
    assert_eq!(
        keys(s),
        strs(&["hostname", "id", "matches", "short_id", "tags", "time"])
    );
    assert_eq!(s["tags"], serde_json::json!(["t1"]));
    let m = &s["matches"][0];
    assert_eq!(m["path"], path_str(&f));
    assert_eq!(m["type"], "file");
    assert_eq!(m["size"], 1);
    assert!(
        m["mtime"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{m:#}"
    );
}
