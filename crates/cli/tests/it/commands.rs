//! The subcommands and their options, driven through the binary.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use serde_json::Value;

use crate::errors::{files_in, names_in, no_panic, path_str, setup, strict_json, tree, Mount};
use crate::support::cmd::{run_cmd, spec, Out, Sg, Ws, PASSWORD};
use crate::support::{random_bytes, restored_path};

const CACHEDIR_TAG: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n";
const KDF: [&str; 4] = ["--kdf-memory-kib", "8192", "--kdf-iterations", "1"];

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Runs with `--json` prepended; exit 0 and the whole stdout parsed.
fn json_run<I, S>(sg: &Sg, args: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut all: Vec<std::ffi::OsString> = vec!["--json".into()];
    all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
    let out = sg.run(&all);
    no_panic(&out);
    out.expect_code(0);
    strict_json(&out)
}

/// `ls --json` entries of a snapshot (below `path` if given): (path, type, size).
fn ls_entries(sg: &Sg, id: &str, path: Option<&Path>) -> Vec<(String, String, u64)> {
    let mut args = vec![os("ls"), os(id)];
    if let Some(p) = path {
        args.push(p.as_os_str());
    }
    let v = json_run(sg, args);
    v["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("ls --json has no entries array: {v}"))
        .iter()
        .map(|e| {
            (
                e["path"].as_str().expect("path").to_string(),
                e["type"].as_str().expect("type").to_string(),
                e["size"].as_u64().expect("size"),
            )
        })
        .collect()
}

fn ls_paths(sg: &Sg, id: &str) -> Vec<String> {
    ls_entries(sg, id, None).into_iter().map(|e| e.0).collect()
}

fn assert_has(paths: &[String], p: &Path, want: bool) {
    let p = path_str(p);
    assert_eq!(
        paths.contains(&p),
        want,
        "{p} {} in the snapshot; it has {paths:#?}",
        if want { "missing" } else { "present" }
    );
}

fn env_run(sg: &Sg, env: &[(&str, &str)], remove: &[&str], args: &[&OsStr]) -> Out {
    let mut cmd = sg.command();
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in remove {
        cmd.env_remove(k);
    }
    let out = run_cmd(&mut cmd, args);
    no_panic(&out);
    out
}

/// `PREFIX... --kdf-memory-kib 8192 --kdf-iterations 1`.
fn with_kdf<'a>(prefix: &[&'a OsStr]) -> Vec<&'a OsStr> {
    let mut v = prefix.to_vec();
    v.extend(KDF.iter().map(|a| os(a)));
    v
}

/// Runs with `SNAPGUARD_PASSWORD=pw`.
fn pw_run(sg: &Sg, pw: &str, args: &[&str]) -> Out {
    let args: Vec<&OsStr> = args.iter().map(|a| os(a)).collect();
    env_run(sg, &[("SNAPGUARD_PASSWORD", pw)], &[], &args)
}

fn snapshot_ids(sg: &Sg) -> Vec<String> {
    json_run(sg, ["snapshots"])
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// backup and snapshots

#[test]
fn snapshots_json_fields_order_and_filters() {
    let ws = Ws::new();
    let (a, b) = (ws.path("a"), ws.path("b"));
    tree(&ws.root, &[("a/f", b"a"), ("b/f", b"b")]);
    let sg = Sg::init(&ws, None);
    let t = |time: &str, host: &str, tags: &[&str], path: &Path| {
        let mut extra = vec!["--time", time, "--host", host];
        for tag in tags {
            extra.extend(["--tag", *tag]);
        }
        sg.backup(&[path], &extra).id
    };
    let s2022 = t("2022-03-04T05:06:07Z", "h1", &["b"], &a);
    let s2020 = t("2020-01-02T03:04:05Z", "h2", &["a"], &a);
    let s2021 = t("2021-06-01T12:00:00+02:00", "h1", &["a", "c"], &b);
    let (s2020, s2021, s2022) = (s2020.as_str(), s2021.as_str(), s2022.as_str());

    let all = json_run(&sg, ["snapshots"]);
    let all = all.as_array().expect("array");
    let ids: Vec<&str> = all.iter().map(|s| s["id"].as_str().expect("id")).collect();
    assert_eq!(ids, [s2020, s2021, s2022], "not oldest first: {all:#?}");
    let first = &all[0];
    assert_eq!(first["time"], "2020-01-02T03:04:05Z");
    assert_eq!(first["hostname"], "h2");
    assert_eq!(first["paths"], serde_json::json!([path_str(&a)]));
    assert_eq!(first["tags"], serde_json::json!(["a"]));
    assert_eq!(all[1]["time"], "2021-06-01T10:00:00Z");
    assert_eq!(all[1]["tags"], serde_json::json!(["a", "c"]));
    assert!(ids
        .iter()
        .all(|i| i.len() == 64 && i.bytes().all(|c| c.is_ascii_hexdigit())));

    let filtered = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["snapshots"];
        all.extend(args);
        json_run(&sg, all)
            .as_array()
            .expect("array")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(filtered(&["--tag", "a"]), [s2020, s2021]);
    assert_eq!(filtered(&["--tag", "c"]), [s2021]);
    assert_eq!(filtered(&["--tag", "b", "--tag", "c"]), [s2021, s2022]);
    assert_eq!(filtered(&["--tag", "zzz"]), Vec::<String>::new());
    assert_eq!(filtered(&["--host", "h1"]), [s2021, s2022]);
    assert_eq!(filtered(&["--path", &path_str(&b)]), [s2021]);
    let a_slash = format!("{}/", path_str(&a));
    assert_eq!(filtered(&["--path", &a_slash]), [s2020, s2022]);
    assert_eq!(
        filtered(&["--host", "h1", "--path", &path_str(&a)]),
        [s2022]
    );
    // The text table lists them too.
    let out = sg.run(["snapshots", "--host", "h1"]);
    out.expect_code(0);
    let text = out.stdout_str();
    assert!(
        text.contains(&s2021[..8]) && text.contains(&s2022[..8]) && !text.contains(&s2020[..8])
    );
}

#[test]
fn backup_excludes_patterns_files_and_caches() {
    let ws = Ws::new();
    let src = ws.path("src");
    // (file, kept with the options below); each file holds its own name.
    let files = [
        ("keep.txt", true),
        ("debug.log", false),
        ("sub/x.log", false),
        ("sub/keep.c", true),
        ("build/out.o", false),
        ("build/readme", true),
        ("secret.key", false),
        ("sub/secret.pem", false),
        ("cache/junk.bin", false),
        ("notcache/kept.bin", true),
    ];
    let mut content: Vec<(&str, &[u8])> = files.iter().map(|(f, _)| (*f, f.as_bytes())).collect();
    content.push(("cache/CACHEDIR.TAG", CACHEDIR_TAG));
    content.push(("notcache/CACHEDIR.TAG", b"Signature: wrong\n"));
    tree(&src, &content);
    let exclude_file = ws.path("excludes");
    fs::write(&exclude_file, "# comment\n\nsecret.*\n").expect("write");
    let sg = Sg::init(&ws, None);
    let abs_glob = format!("{}/build/*.o", path_str(&src));
    let exclude_file = path_str(&exclude_file);
    let mut opts = vec!["--exclude", "*.log", "--exclude", &abs_glob];
    opts.extend(["--exclude-file", &exclude_file, "--exclude-caches"]);
    let b = sg.backup(&[&src], &opts);
    b.out.expect_code(0);
    let paths = ls_paths(&sg, &b.id);
    for (rel, want) in files {
        assert_has(&paths, &src.join(rel), want);
    }
    assert_has(&paths, &src.join("cache"), true);
    assert_has(&paths, &src.join("cache/CACHEDIR.TAG"), true);
    // Without the options everything is there.
    let all = ls_paths(&sg, &sg.backup(&[&src], &[]).id);
    for (rel, _) in files {
        assert_has(&all, &src.join(rel), true);
    }
}

#[test]
fn backup_one_file_system_keeps_mount_point_only() {
    let ws = Ws::new();
    let src = ws.path("src");
    tree(&src, &[("outside.txt", b"outside")]);
    let mnt = src.join("mnt");
    let Some(_mount) = Mount::tmpfs(&mnt, "size=1m") else {
        return;
    };
    fs::write(mnt.join("inside.txt"), b"inside").expect("write");
    let sg = Sg::init(&ws, None);
    let full = ls_paths(&sg, &sg.backup(&[&src], &[]).id);
    assert_has(&full, &mnt.join("inside.txt"), true);
    for flag in ["-x", "--one-file-system"] {
        let b = sg.backup(&[&src], &[flag]);
        b.out.expect_code(0);
        let entries = ls_entries(&sg, &b.id, None);
        let paths: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
        assert_has(&paths, &src.join("outside.txt"), true);
        assert_has(&paths, &mnt.join("inside.txt"), false);
        assert!(
            entries
                .iter()
                .any(|e| e.0 == path_str(&mnt) && e.1 == "dir"),
            "mount point missing with {flag}: {paths:#?}"
        );
    }
}

#[test]
fn backup_dry_run_writes_nothing() {
    let s = setup();
    fs::write(s.src.join("new.bin"), random_bytes(3, 100_000)).expect("write");
    let before = files_in(&s.sg.repo);
    let out = s.sg.run([
        os("--json"),
        os("backup"),
        os("--dry-run"),
        s.src.as_os_str(),
    ]);
    out.expect_code(0);
    let v = strict_json(&out);
    assert_eq!(v["snapshot_id"], Value::Null, "{out}");
    assert_eq!(v["dry_run"], true);
    assert!(v["bytes_added"].as_u64() >= Some(100_000), "{out}");
    let out = s.sg.run([os("backup"), os("-n"), s.src.as_os_str()]);
    out.expect_code(0);
    assert!(out.stdout_str().contains("dry run"), "{out}");
    assert_eq!(
        files_in(&s.sg.repo),
        before,
        "dry run changed the repository"
    );
    assert_eq!(snapshot_ids(&s.sg), [s.id.as_str()]);
}

#[test]
fn unchanged_files_are_not_read_again_and_changes_are_counted() {
    let ws = Ws::new();
    let src = ws.path("src");
    let data = random_bytes(1, 50_000);
    let names = ["one", "two", "d/three", "d/four", "five"];
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (*n, &data[..])).collect();
    tree(&src, &files);
    let sg = Sg::init(&ws, None);
    let count = |b: &crate::support::cmd::Backup, k: &str| {
        b.json[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k}\n{}", b.out))
    };
    let first = sg.backup(&[&src], &[]);
    assert_eq!(count(&first, "files_new"), 5);
    let second = sg.backup(&[&src], &[]);
    assert_eq!(second.json["parent"].as_str(), Some(first.id.as_str()));
    for (k, want) in [
        ("files_unchanged", 5),
        ("files_new", 0),
        ("files_changed", 0),
        ("bytes_read", 0),
    ] {
        assert_eq!(count(&second, k), want, "{k}\n{}", second.out);
    }
    fs::write(src.join("d/three"), b"different now").expect("write");
    let third = sg.backup(&[&src], &[]);
    for (k, want) in [
        ("files_unchanged", 4),
        ("files_changed", 1),
        ("files_new", 0),
        ("bytes_read", 13),
    ] {
        assert_eq!(count(&third, k), want, "{k}\n{}", third.out);
    }
    let out = sg.dump(&third.id, &src.join("d/three"));
    assert_eq!(out.stdout, b"different now");
}

#[test]
fn same_data_under_another_name_is_stored_once() {
    let ws = Ws::new();
    let data = random_bytes(99, 20 << 20);
    tree(
        &ws.root,
        &[("one/original.bin", &data), ("two/renamed copy.bin", &data)],
    );
    let sg = Sg::init(&ws, None);
    let first = sg.backup(&[&ws.path("one")], &[]);
    let added1 = first.json["bytes_added"].as_u64().expect("bytes_added");
    assert!(added1 >= 20 << 20, "{}", first.out);
    let packed = |sg: &Sg| -> u64 {
        files_in(&sg.repo.join("data"))
            .iter()
            .map(|p| fs::metadata(p).expect("stat").len())
            .sum()
    };
    let size1 = packed(&sg);
    let second = sg.backup(&[&ws.path("two")], &[]);
    let added2 = second.json["bytes_added"].as_u64().expect("bytes_added");
    assert_eq!(second.json["files_new"].as_u64(), Some(1));
    assert!(
        added2 < 64 << 10,
        "second copy added {added2} bytes\n{}",
        second.out
    );
    assert!(packed(&sg) - size1 < 64 << 10, "packs grew too much");
    let out = sg.dump(&second.id, &ws.path("two/renamed copy.bin"));
    assert!(out.stdout == data, "dumped copy differs");
}

// ---------------------------------------------------------------------------
// ls, dump, diff, cat, stats

#[test]
fn ls_plain_path_long_and_json() {
    let s = setup();
    let out = s.sg.run(["ls", s.id.as_str()]);
    out.expect_code(0);
    let lines: Vec<String> = out.stdout_str().lines().map(String::from).collect();
    for rel in [".", "a_first.bin", "b.txt", "d", "d/c.txt"] {
        let p = path_str(&s.src.join(rel)).replace("/.", "");
        assert!(lines.contains(&p), "{p:?} not listed\n{out}");
    }
    let d = s.src.join("d");
    let out = s.sg.run([os("ls"), os(&s.id), d.as_os_str()]);
    out.expect_code(0);
    assert_eq!(
        out.stdout_str().lines().collect::<Vec<_>>(),
        [path_str(&d), path_str(&d.join("c.txt"))],
        "{out}"
    );
    let out = s.sg.run([
        os("ls"),
        os("-l"),
        os(&s.id),
        s.src.join("b.txt").as_os_str(),
    ]);
    out.expect_code(0);
    let line = out.stdout_str();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert!(fields[0].starts_with("-rw"), "{out}");
    assert!(fields.contains(&"6"), "size missing: {out}");
    assert!(
        line.trim_end().ends_with(&path_str(&s.src.join("b.txt"))),
        "{out}"
    );
    let out = s.sg.run([os("ls"), os("--long"), os(&s.id), d.as_os_str()]);
    assert!(out.stdout_str().starts_with('d'), "{out}");

    let entries = ls_entries(&s.sg, &s.id, Some(&s.src));
    let find = |rel: &str| {
        entries
            .iter()
            .find(|e| e.0 == path_str(&s.src.join(rel)))
            .unwrap_or_else(|| panic!("{rel} missing: {entries:?}"))
            .clone()
    };
    assert_eq!(find("b.txt").1, "file");
    assert_eq!(find("b.txt").2, 6);
    assert_eq!(find("a_first.bin").2, 64 << 10);
    assert_eq!(find("d").1, "dir");
    assert_eq!(entries.len(), 5, "{entries:?}");
}

#[test]
fn dump_prints_exact_bytes_of_sparse_empty_and_large_files() {
    let ws = Ws::new();
    let src = ws.path("src");
    tree(
        &src,
        &[("empty", b""), ("large", &random_bytes(7, 3 << 20))],
    );
    let f = fs::File::create(src.join("sparse")).expect("create");
    f.set_len(6 << 20).expect("set_len");
    f.write_all_at(&random_bytes(8, 5000), 1 << 20)
        .expect("pwrite");
    f.write_all_at(b"tail", (6 << 20) - 4).expect("pwrite");
    drop(f);
    let sg = Sg::init(&ws, None);
    let id = sg.backup(&[&src], &[]).id;
    for name in ["empty", "large", "sparse"] {
        let out = sg.dump(&id, &src.join(name));
        out.expect_code(0);
        let want = fs::read(src.join(name)).expect("read");
        assert!(
            out.stdout == want,
            "dump of {name}: {} bytes, want {}",
            out.stdout.len(),
            want.len()
        );
        assert!(out.stderr.is_empty(), "{out}");
    }
    let out = sg.dump("latest", &src.join("sparse"));
    assert_eq!(out.stdout.len(), 6 << 20);
}

#[test]
fn diff_reports_added_removed_modified_and_metadata() {
    let ws = Ws::new();
    let src = ws.path("src");
    tree(
        &src,
        &[
            ("mod.txt", b"one"),
            ("meta.txt", b"meta"),
            ("gone/x", b"x"),
            ("same/s", b"s"),
        ],
    );
    let sg = Sg::init(&ws, None);
    let a = sg.backup(&[&src], &[]).id;
    fs::write(src.join("mod.txt"), b"two").expect("write");
    fs::set_permissions(src.join("meta.txt"), fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::remove_dir_all(src.join("gone")).expect("rm");
    fs::write(src.join("new.txt"), b"new").expect("write");
    let b = sg.backup(&[&src], &[]).id;

    let out = sg.run(["diff", a.as_str(), b.as_str()]);
    out.expect_code(0);
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    let has = |sym: &str, rel: &str| {
        let p = path_str(&src.join(rel));
        lines.iter().any(|l| {
            l.starts_with(sym) && {
                let rest = l[sym.len()..].trim_start();
                rest == p || rest == format!("{p}/")
            }
        })
    };
    for (sym, rel) in [
        ("+", "new.txt"),
        ("-", "gone"),
        ("-", "gone/x"),
        ("M", "mod.txt"),
        ("U", "meta.txt"),
    ] {
        assert!(has(sym, rel), "no '{sym} {rel}' line\n{out}");
    }
    assert!(!text.contains("same"), "unchanged dir reported\n{out}");

    let v = json_run(&sg, ["diff", a.as_str(), b.as_str()]);
    let changes = v["changes"].as_array().expect("changes array");
    let kind = |rel: &str| {
        let p = path_str(&src.join(rel));
        changes
            .iter()
            .find(|c| c["path"] == p.as_str())
            .and_then(|c| c["change"].as_str())
            .map(String::from)
    };
    for (rel, want) in [
        ("new.txt", Some("added")),
        ("gone/x", Some("removed")),
        ("mod.txt", Some("modified")),
        ("meta.txt", Some("metadata")),
        ("same/s", None),
    ] {
        assert_eq!(kind(rel).as_deref(), want, "{rel}: {v:#}");
    }
    let v = json_run(&sg, ["diff", a.as_str(), a.as_str()]);
    assert_eq!(v["changes"], serde_json::json!([]));
}

#[test]
fn cat_prints_every_object_kind_as_json() {
    let s = setup();
    let name = |dir: &str| {
        files_in(&s.sg.repo.join(dir))[0]
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned()
    };
    let config = json_run(&s.sg, ["cat", "config"]);
    assert_eq!(config["cipher"], "aes-256-gcm");
    let snap = json_run(&s.sg, ["cat", "snapshot", "latest"]);
    assert_eq!(snap["id"].as_str(), Some(s.id.as_str()));
    let tree_id = snap["tree"].as_str().expect("tree id").to_string();
    let tree = json_run(&s.sg, ["cat", "tree", tree_id.as_str()]);
    assert!(tree["nodes"].is_array(), "{tree}");
    let index = json_run(&s.sg, ["cat", "index", name("index").as_str()]);
    assert!(index.is_object(), "{index}");
    let key = json_run(&s.sg, ["cat", "key", name("keys").as_str()]);
    assert_eq!(key["kind"]["type"], "passphrase");
    let pack = json_run(&s.sg, ["cat", "pack", name("data").as_str()]);
    assert!(pack.as_array().is_some_and(|a| !a.is_empty()), "{pack}");
}

#[test]
fn stats_text_and_json_ratios() {
    let ws = Ws::new();
    let src = ws.path("src");
    let text = "All work and no play makes Jack a dull boy.\n".repeat(50_000);
    let text = text.as_bytes();
    tree(&src, &[("text.txt", text), ("copy.txt", text)]);
    let sg = Sg::init(&ws, None);
    let id = sg.backup(&[&src], &[]).id;
    let out = sg.run(["stats"]);
    out.expect_code(0);
    for word in ["Dedup ratio", "Compression ratio"] {
        assert!(out.stdout_str().contains(word), "{out}");
    }
    for args in [
        &["stats"][..],
        &["stats", "latest"],
        &["stats", id.as_str()],
    ] {
        let v = json_run(&sg, args);
        let c = v["compression_ratio"].as_f64().expect("compression_ratio");
        let d = v["dedup_ratio"].as_f64().expect("dedup_ratio");
        assert!(c > 1.5, "compression_ratio {c}: {v}");
        assert!(d > 1.5, "two equal files, dedup_ratio {d}: {v}");
    }
}

// ---------------------------------------------------------------------------
// keys, ciphers, passwords

#[test]
fn key_add_list_remove_and_last_slot_is_kept() {
    let s = setup();
    let add = with_kdf(&[os("key"), os("add")]);
    env_run(&s.sg, &[("SNAPGUARD_NEW_PASSWORD", "second-pw")], &[], &add).expect_code(0);
    for pw in [PASSWORD, "second-pw"] {
        pw_run(&s.sg, pw, &["snapshots"]).expect_code(0);
    }
    let list = json_run(&s.sg, ["key", "list"]);
    let slots = list.as_array().expect("array");
    assert_eq!(slots.len(), 2, "{list}");
    let current: Vec<&Value> = slots.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list}");
    let cur = current[0]["id"].as_str().expect("id").to_string();
    let other = slots
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_string())
        .find(|i| *i != cur)
        .expect("other slot");

    s.sg.run(["key", "remove", &other[..8]]).expect_code(0);
    pw_run(&s.sg, "second-pw", &["snapshots"]).expect_code(12);
    let out = s.sg.run(["key", "remove", cur.as_str()]);
    no_panic(&out);
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "last slot removed\n{out}"
    );
    assert!(out.stderr_str().contains("last"), "{out}");
    let list = json_run(&s.sg, ["key", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    s.assert_restores(&s.id, "after");
}

#[test]
fn key_passwd_replaces_the_password() {
    let s = setup();
    let args = with_kdf(&[os("key"), os("passwd")]);
    env_run(&s.sg, &[("SNAPGUARD_NEW_PASSWORD", "new-pw")], &[], &args).expect_code(0);
    pw_run(&s.sg, PASSWORD, &["snapshots"]).expect_code(12);
    pw_run(&s.sg, "new-pw", &["snapshots"]).expect_code(0);
    let list = pw_run(&s.sg, "new-pw", &["--json", "key", "list"]);
    assert_eq!(strict_json(&list).as_array().map(Vec::len), Some(1));
}

#[test]
fn key_files_add_a_slot_and_can_be_the_only_key() {
    let mut s = setup();
    let kf = s.ws.path("the.key");
    let out =
        s.sg.run([os("key"), os("add"), os("--new-key-file"), kf.as_os_str()]);
    out.expect_code(0);
    let mode = fs::metadata(&kf)
        .expect("key file created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    let args = [os("--key-file"), kf.as_os_str(), os("snapshots")];
    env_run(&s.sg, &[], &["SNAPGUARD_PASSWORD"], &args).expect_code(0);

    // A repository created with a key file only.
    s.sg.repo = s.ws.path("repo-kf");
    let sg2 = &s.sg;
    let kf2 = s.ws.path("only.key");
    let init = with_kdf(&[os("--key-file"), kf2.as_os_str(), os("init")]);
    env_run(sg2, &[], &["SNAPGUARD_PASSWORD"], &init).expect_code(0);
    assert!(kf2.is_file(), "init did not create the key file");
    let mut args = vec![os("--key-file"), kf2.as_os_str()];
    args.extend(["--json", "key", "list"].map(os));
    let out = env_run(sg2, &[], &["SNAPGUARD_PASSWORD"], &args);
    out.expect_code(0);
    let list = strict_json(&out);
    let slots = list.as_array().expect("array");
    assert_eq!(slots.len(), 1, "{list}");
    assert_eq!(slots[0]["kind"]["type"], "key-file");
    sg2.run(["snapshots"]).expect_code(12);
}

#[test]
fn both_ciphers_round_trip() {
    for cipher in ["chacha20-poly1305", "aes-256-gcm"] {
        let ws = Ws::new();
        let src = ws.path("src");
        let data = random_bytes(4, 1 << 20);
        tree(&src, &[("data.bin", &data)]);
        let sg = Sg::init(&ws, Some(cipher));
        let id = sg.backup(&[&src], &[]).id;
        let target = ws.path("t");
        sg.restore(&id, &target, &[]).expect_code(0);
        let got = fs::read(restored_path(&target, &src).join("data.bin")).expect("read");
        assert!(got == data, "{cipher}: restored data differs");
        assert_eq!(json_run(&sg, ["cat", "config"])["cipher"], cipher);
        let out = sg.run(["cat", "config"]);
        assert!(out.stdout_str().contains(cipher), "{out}");
    }
}

#[test]
fn password_from_command_and_file() {
    let s = setup();
    let cmd = format!("echo {PASSWORD}");
    let args = [os("--password-command"), os(&cmd), os("snapshots")];
    env_run(&s.sg, &[], &["SNAPGUARD_PASSWORD"], &args).expect_code(0);
    let pwfile = s.ws.path("pw");
    fs::write(&pwfile, format!("{PASSWORD}\nignored second line\n")).expect("write");
    let args = [os("--password-file"), pwfile.as_os_str(), os("snapshots")];
    env_run(&s.sg, &[], &["SNAPGUARD_PASSWORD"], &args).expect_code(0);
    let pwfile = path_str(&pwfile);
    let env = [("SNAPGUARD_PASSWORD_FILE", pwfile.as_str())];
    env_run(&s.sg, &env, &["SNAPGUARD_PASSWORD"], &[os("snapshots")]).expect_code(0);
    let env = [("SNAPGUARD_PASSWORD_COMMAND", cmd.as_str())];
    env_run(&s.sg, &env, &["SNAPGUARD_PASSWORD"], &[os("snapshots")]).expect_code(0);
}

// ---------------------------------------------------------------------------
// output modes, restore variants

#[test]
fn quiet_backup_prints_only_the_saved_line() {
    let s = setup();
    fs::write(s.src.join("more"), b"more").expect("write");
    let out = s.sg.run([os("-q"), os("backup"), s.src.as_os_str()]);
    out.expect_code(0);
    let text = out.stdout_str();
    let newest = snapshot_ids(&s.sg)
        .into_iter()
        .find(|i| *i != s.id)
        .expect("new snapshot");
    assert_eq!(text, format!("snapshot {} saved\n", &newest[..8]), "{out}");
}

#[test]
fn json_output_parses_for_every_command() {
    let s = setup();
    fs::write(s.src.join("b.txt"), b"changed").expect("write");
    let b = json_run(&s.sg, [os("backup"), s.src.as_os_str()]);
    let id2 = b["snapshot_id"].as_str().expect("snapshot_id").to_string();
    let target = s.ws.path("t");
    let r = json_run(
        &s.sg,
        [os("restore"), os(&id2), os("--target"), target.as_os_str()],
    );
    assert!(r["summary"]["files"].as_u64() == Some(3), "{r}");
    assert!(json_run(&s.sg, ["snapshots"]).is_array());
    assert!(json_run(&s.sg, ["ls", "latest"])["entries"].is_array());
    let d = json_run(&s.sg, ["diff", s.id.as_str(), id2.as_str()]);
    assert!(
        d["changes"].as_array().is_some_and(|c| !c.is_empty()),
        "{d}"
    );
    assert!(json_run(&s.sg, ["stats"]).is_object());
    assert!(json_run(&s.sg, ["key", "list"]).is_array());
}

#[test]
fn restore_directory_file_and_dry_run() {
    let s = setup();
    let dir_target = s.ws.path("dir-target");
    let out =
        s.sg.restore(spec(&s.id, &s.src.join("d")), &dir_target, &[]);
    out.expect_code(0);
    assert_eq!(names_in(&dir_target), ["c.txt"], "{out}");
    assert_eq!(
        fs::read(dir_target.join("c.txt")).ok(),
        Some(b"charlie\n".to_vec())
    );

    let file_target = s.ws.path("file-target");
    let out =
        s.sg.restore(spec(&s.id, &s.src.join("b.txt")), &file_target, &[]);
    out.expect_code(0);
    assert_eq!(names_in(&file_target), ["b.txt"], "{out}");
    assert_eq!(
        fs::read(file_target.join("b.txt")).ok(),
        Some(b"bravo\n".to_vec())
    );

    let dry = s.ws.path("dry-target");
    let out = s.sg.restore(&s.id, &dry, &["--dry-run"]);
    out.expect_code(0);
    assert!(out.stdout_str().contains("would restore"), "{out}");
    assert!(!dry.exists(), "dry run created the target");
    let existing = s.ws.path("existing");
    fs::create_dir(&existing).expect("mkdir");
    s.sg.restore(&s.id, &existing, &["-n"]).expect_code(0);
    assert!(files_in(&existing).is_empty(), "dry run wrote files");
}

#[test]
fn init_takes_pack_and_chunk_sizes_and_backup_takes_threads() {
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    sg.repo = ws.path("repo-tuned");
    let mut args: Vec<&str> = vec!["init", "--pack-size", "4", "--chunk-size", "256"];
    args.extend(KDF);
    sg.run(&args).expect_code(0);
    let config = json_run(&sg, ["cat", "config"]);
    assert_eq!(config["pack_target_size"], 4 << 20, "{config}");
    assert_eq!(config["chunker"]["avg"], 256 << 10, "{config}");
    assert_eq!(config["chunker"]["min"], 128 << 10, "{config}");
    assert_eq!(config["chunker"]["max"], 2 << 20, "{config}");
    // Data goes through the smaller chunks and packs and comes back.
    let src = ws.path("src");
    fs::create_dir_all(&src).expect("mkdir");
    fs::write(src.join("big"), random_bytes(7, 9 << 20)).expect("write");
    let b = sg.backup(&[&src], &["--threads", "1"]);
    let target = ws.path("restored");
    sg.restore(&b.id, &target, &[]).expect_code(0);
    assert!(
        fs::read(restored_path(&target, &src.join("big"))).expect("read")
            == random_bytes(7, 9 << 20),
        "restored file differs"
    );
    // Out-of-range values are usage errors naming the option.
    for bad in [
        vec!["init", "--pack-size", "0"],
        vec!["init", "--pack-size", "2048"],
        vec!["init", "--chunk-size", "1000"],
        vec!["init", "--chunk-size", "32"],
        vec!["backup", "--threads", "0", "/nonexistent"],
    ] {
        sg.repo = ws.path("repo-bad");
        let out = sg.run(&bad);
        out.expect_code(2);
        assert!(out.stderr_str().contains(bad[1]), "{out}");
        assert!(
            !ws.path("repo-bad").exists(),
            "a repository was created by {bad:?}"
        );
    }
}
