//! Error paths: each failure gives its documented exit code, an error message
//! that names the object concerned and says what to do, never a panic, and
//! leaves the repository (and its earlier snapshots) usable.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::cmd::{bin, run_cmd, spec, Out, Sg, Ws};
use crate::support::{chown_tree, is_root, random_bytes, restored_path};

const NOBODY: u32 = 65534;

// ---------------------------------------------------------------------------
// Helpers (also used by `commands`).

/// A tmpfs mounted for one test; unmounted when dropped.
pub(crate) struct Mount {
    dir: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs with `opts` on `dir` (created if needed); None (with a
    /// note) when that is impossible here (not root, no mount permission).
    pub(crate) fn tmpfs(dir: &Path, opts: &str) -> Option<Mount> {
        if !is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {dir:?}: {e}"));
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs on {dir:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Mount {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The whole of stdout parsed as JSON (nothing else may be printed there).
pub(crate) fn strict_json(out: &Out) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e})\n{out}"))
}

/// Panics if the binary panicked.
pub(crate) fn no_panic(out: &Out) {
    assert!(
        !out.stderr_str().contains("panicked"),
        "the binary panicked\n{out}"
    );
}

/// Exit code `code`, no panic, and every `must` (case-insensitive) in stderr.
pub(crate) fn expect_err(out: &Out, code: i32, musts: &[&str]) {
    no_panic(out);
    out.expect_code(code);
    let stderr = out.stderr_str().to_lowercase();
    for m in musts {
        assert!(
            stderr.contains(&m.to_lowercase()),
            "stderr does not mention {m:?}\n{out}"
        );
    }
    advice_names_real_commands(out);
}

/// Every `'snapguard WORD` the message suggests must be a real subcommand.
fn advice_names_real_commands(out: &Out) {
    let stderr = out.stderr_str();
    for (i, _) in stderr.match_indices("'snapguard ") {
        let word: String = stderr[i + 11..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let known = Command::new(bin())
            .args([word.as_str(), "--help"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            known,
            "the message suggests 'snapguard {word}', which is not a snapguard command\n{out}"
        );
    }
}

/// A repository with one snapshot of a small source tree.
pub(crate) struct Setup {
    pub ws: Ws,
    pub sg: Sg,
    pub src: PathBuf,
    pub id: String,
}

/// `src/a_first.bin` (64 KiB random, the first blob of the pack),
/// `src/b.txt`, `src/d/c.txt`.
pub(crate) fn setup() -> Setup {
    let ws = Ws::new();
    let src = ws.path("src");
    let first = random_bytes(11, 64 << 10);
    let files: [(&str, &[u8]); 3] = [
        ("a_first.bin", &first),
        ("b.txt", b"bravo\n"),
        ("d/c.txt", b"charlie\n"),
    ];
    tree(&src, &files);
    let sg = Sg::init(&ws, None);
    let id = sg.backup(&[&src], &[]).id;
    Setup { ws, sg, src, id }
}

impl Setup {
    /// Restores snapshot `id` into a fresh target and checks `b.txt` and `d/c.txt`.
    pub(crate) fn assert_restores(&self, id: &str, target: &str) {
        let target = self.ws.path(target);
        self.sg.restore(id, &target, &[]).expect_code(0);
        let r = restored_path(&target, &self.src);
        assert_eq!(fs::read(r.join("b.txt")).expect("read"), b"bravo\n");
        assert_eq!(fs::read(r.join("d/c.txt")).expect("read"), b"charlie\n");
    }

    fn only_file(&self, dir: &str) -> PathBuf {
        let files = files_in(&self.sg.repo.join(dir));
        assert_eq!(files.len(), 1, "expected one file in {dir}: {files:?}");
        files[0].clone()
    }
}

/// All files below `dir`, sorted.
pub(crate) fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {d:?}: {e}")) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn path_str(p: &Path) -> String {
    p.to_str().expect("UTF-8 temp path").to_string()
}

/// Creates `root/rel` with `data` for each pair (and the directories above).
pub(crate) fn tree(root: &Path, files: &[(&str, &[u8])]) {
    for (rel, data) in files {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {p:?}: {e}"));
    }
}

/// Sorted names in a directory.
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {dir:?}: {e}"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// Offset in the (only) data pack of the first chunk of file `name` at the top of the source:
/// blobs are packed in whatever order the compression workers finish, so look it up.
fn blob_offset(s: &Setup, name: &str) -> usize {
    let ls = strict_json(&s.sg.run(["--json", "ls", s.id.as_str()]));
    let entries = ls["entries"].as_array().expect("entries");
    let node = entries
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in ls output"));
    let blob = node["content"][0]["blob"]
        .as_str()
        .expect("blob id")
        .to_string();
    let pack = name_of(&s.only_file("data"));
    let header = strict_json(&s.sg.run(["cat", "pack", pack.as_str()]));
    let entry = header
        .as_array()
        .expect("pack header")
        .iter()
        .find(|b| b["id"].as_str() == Some(blob.as_str()))
        .unwrap_or_else(|| panic!("blob {blob} not in pack {pack}"));
    entry["offset"].as_u64().expect("offset") as usize
}

fn flip_byte(path: &Path, offset: usize) {
    let mut b = fs::read(path).expect("read");
    b[offset] ^= 0xff;
    fs::write(path, b).expect("write");
}

fn without_password(sg: &Sg, args: &[&OsStr]) -> Out {
    let mut cmd = sg.command();
    cmd.env_remove("SNAPGUARD_PASSWORD");
    run_cmd(&mut cmd, args)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

// ---------------------------------------------------------------------------
// Passwords and repositories.

#[test]
fn wrong_password_exits_12_from_env_file_and_command() {
    let s = setup();
    let repo = s.sg.repo.to_string_lossy().into_owned();
    let must = ["wrong password", &repo];

    let mut cmd = s.sg.command();
    cmd.env("SNAPGUARD_PASSWORD", "not-the-password");
    expect_err(&run_cmd(&mut cmd, ["snapshots"]), 12, &must);

    let pwfile = s.ws.path("wrong-pw");
    fs::write(&pwfile, "not-the-password\n").expect("write");
    let out = without_password(
        &s.sg,
        &[os("--password-file"), pwfile.as_os_str(), os("snapshots")],
    );
    expect_err(&out, 12, &must);

    let out = without_password(
        &s.sg,
        &[
            os("--password-command"),
            os("echo not-the-password"),
            os("ls"),
            os("latest"),
        ],
    );
    expect_err(&out, 12, &must);

    // A wrong password in the file wins over a right one in the environment.
    let mut cmd = s.sg.command();
    cmd.env("SNAPGUARD_PASSWORD_FILE", &pwfile);
    expect_err(&run_cmd(&mut cmd, ["snapshots"]), 12, &must);

    s.assert_restores(&s.id, "after");
}

#[test]
fn failing_password_command_gives_clear_error() {
    let s = setup();
    let out = without_password(
        &s.sg,
        &[os("--password-command"), os("exit 7"), os("snapshots")],
    );
    expect_err(&out, 1, &["password command", "failed"]);
    let missing = s.ws.path("no-such-password-file");
    let out = without_password(
        &s.sg,
        &[os("--password-file"), missing.as_os_str(), os("snapshots")],
    );
    expect_err(&out, 1, &["password file", &missing.to_string_lossy()]);
    s.assert_restores(&s.id, "after");
}

#[test]
fn missing_repository_exits_10_without_asking_for_a_password() {
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    sg.repo = ws.path("nothing-here");
    for args in [&["snapshots"][..], &["ls", "latest"], &["key", "list"]] {
        let args: Vec<&OsStr> = args.iter().map(|a| os(a)).collect();
        let out = without_password(&sg, &args);
        expect_err(
            &out,
            10,
            &[
                "snapguard init",
                &sg.repo.to_string_lossy(),
                "no snapguard repository",
            ],
        );
    }
    assert!(!sg.repo.exists(), "a failed open created {:?}", sg.repo);
}

#[test]
fn init_on_existing_repository_refuses_and_keeps_it() {
    let s = setup();
    let config = fs::read(s.sg.repo.join("config")).expect("read config");
    let keys = files_in(&s.sg.repo.join("keys"));
    let out =
        s.sg.run(["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"]);
    no_panic(&out);
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "init over a repository succeeded\n{out}"
    );
    let stderr = out.stderr_str();
    assert!(
        stderr.contains("already exists") && stderr.contains(&*s.sg.repo.to_string_lossy()),
        "{out}"
    );
    assert_eq!(fs::read(s.sg.repo.join("config")).expect("read"), config);
    assert_eq!(files_in(&s.sg.repo.join("keys")), keys);
    s.assert_restores(&s.id, "after");
}

#[test]
fn newer_format_version_exits_13_before_a_password_is_needed() {
    let s = setup();
    let config = s.sg.repo.join("config");
    let orig = fs::read(&config).expect("read config");
    assert_eq!(&orig[8..12], &1u32.to_le_bytes(), "format version field");
    let mut patched = orig.clone();
    patched[8..12].copy_from_slice(&2u32.to_le_bytes());
    fs::write(&config, &patched).expect("write config");

    let repo = s.sg.repo.to_string_lossy().into_owned();
    let out = without_password(&s.sg, &[os("snapshots")]);
    expect_err(&out, 13, &["version 2", "upgrade snapguard", &repo]);
    // With a password, too, and for a writing command.
    let out = s.sg.run([os("backup"), s.src.as_os_str()]);
    expect_err(&out, 13, &["upgrade snapguard"]);
    assert_eq!(files_in(&s.sg.repo.join("snapshots")).len(), 1);

    fs::write(&config, &orig).expect("restore config");
    s.assert_restores(&s.id, "after");
}

// ---------------------------------------------------------------------------
// Damaged repositories.

#[test]
fn corrupt_data_pack_restore_names_bad_file_and_restores_the_rest() {
    let s = setup();
    let pack = s.only_file("data");
    let pack_name = name_of(&pack);
    flip_byte(&pack, blob_offset(&s, "a_first.bin") + 10);

    let target = s.ws.path("restore");
    let out = s.sg.restore(&s.id, &target, &[]);
    expect_err(&out, 16, &["a_first.bin", "integrity", &pack_name[..8]]);
    let r = restored_path(&target, &s.src);
    assert!(!r.join("a_first.bin").exists(), "damaged file left behind");
    assert_eq!(fs::read(r.join("b.txt")).expect("read b.txt"), b"bravo\n");
    assert_eq!(
        fs::read(r.join("d/c.txt")).expect("read c.txt"),
        b"charlie\n"
    );

    let out = s.sg.dump(&s.id, &s.src.join("a_first.bin"));
    expect_err(&out, 14, &["integrity", &pack_name[..8]]);
    let out = s.sg.dump(&s.id, &s.src.join("b.txt"));
    out.expect_code(0);
    assert_eq!(out.stdout, b"bravo\n");
}

#[test]
fn restore_summary_does_not_count_files_it_could_not_restore() {
    let s = setup();
    let offset = blob_offset(&s, "a_first.bin") + 10;
    flip_byte(&s.only_file("data"), offset);
    let target = s.ws.path("restore");
    let out = s.sg.run([
        os("--json"),
        os("restore"),
        os(&s.id),
        os("--target"),
        target.as_os_str(),
    ]);
    out.expect_code(16);
    let files = strict_json(&out)["summary"]["files"].as_u64();
    // b.txt and d/c.txt were restored; a_first.bin was not.
    assert_eq!(
        files,
        Some(2),
        "restore reports a file it removed as restored\n{out}"
    );
}

#[test]
fn corrupt_index_file_exits_14_naming_it() {
    let s = setup();
    let index = s.only_file("index");
    let name = name_of(&index);
    flip_byte(&index, 60);
    // The snapshot's trees are listed only in the damaged index file: the
    // user must learn which file is damaged, not only that blobs are missing.
    expect_err(
        &s.sg.run(["ls", s.id.as_str()]),
        14,
        &["integrity", &name[..16]],
    );
    let out = s.sg.dump(&s.id, &s.src.join("b.txt"));
    expect_err(&out, 14, &["integrity", &name[..16]]);
}

#[test]
fn corrupt_snapshot_file_exits_14_and_other_snapshots_still_restore() {
    let s = setup();
    fs::write(s.src.join("later.txt"), b"later").expect("write");
    let second = s.sg.backup(&[&s.src], &[]).id;
    let file = s.sg.repo.join("snapshots").join(&second);
    assert!(file.is_file(), "snapshot file {file:?}");
    flip_byte(&file, 60);
    let out = s.sg.run(["snapshots"]);
    expect_err(&out, 14, &["integrity", &second]);
    assert!(
        out.stdout_str().contains(&s.id[..8]),
        "the intact snapshot is no longer listed\n{out}"
    );
    expect_err(&s.sg.run(["ls", &second[..8]]), 14, &["integrity", &second]);
    let out = s.sg.restore(&second[..8], &s.ws.path("t"), &[]);
    expect_err(&out, 14, &["integrity", &second]);
    s.assert_restores(&s.id, "first");
}

#[test]
fn truncated_pack_exits_14_naming_it() {
    let s = setup();
    let pack = s.only_file("data");
    let name = name_of(&pack);
    let len = fs::metadata(&pack).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .and_then(|f| f.set_len(len.min(64)))
        .expect("truncate");
    let out = s.sg.dump(&s.id, &s.src.join("d/c.txt"));
    expect_err(&out, 14, &["integrity", &name]);
    expect_err(&s.sg.run(["ls", s.id.as_str()]), 14, &["integrity", &name]);
}

#[test]
fn deleted_pack_exits_14_naming_it() {
    let s = setup();
    let pack = s.only_file("data");
    let name = name_of(&pack);
    fs::remove_file(&pack).expect("rm pack");
    expect_err(
        &s.sg.run(["ls", s.id.as_str()]),
        14,
        &["integrity", &name, "missing"],
    );
    let out = s.sg.dump(&s.id, &s.src.join("b.txt"));
    expect_err(&out, 14, &["integrity", &name]);
    // The snapshot list itself needs no pack.
    s.sg.run(["snapshots"]).expect_code(0);
}

#[test]
fn restore_of_unreadable_snapshot_tree_exits_14() {
    let s = setup();
    let pack = s.only_file("data");
    let name = name_of(&pack);
    fs::remove_file(&pack).expect("rm pack");
    // Not even the snapshot's root directory can be read: nothing is restored.
    let out = s.sg.restore(&s.id, &s.ws.path("t"), &[]);
    expect_err(&out, 14, &["integrity", &name]);
}

#[test]
fn deleted_index_file_exits_14_with_usable_advice() {
    let s = setup();
    fs::remove_file(s.only_file("index")).expect("rm index");
    let out = s.sg.run(["ls", s.id.as_str()]);
    // The root tree's blob is no longer in any index.
    expect_err(&out, 14, &["integrity", "index"]);
}

#[test]
fn unreadable_source_file_exits_3_and_snapshot_is_written() {
    if !is_root() {
        eprintln!("skipped: needs root to switch to uid {NOBODY}");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        panic!("setpriv is not installed; cannot run the backup as an unprivileged user");
    }
    let mut s = setup();
    let secret = s.src.join("secret.txt");
    fs::write(&secret, b"top secret").expect("write");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).expect("chmod");
    fs::set_permissions(&s.ws.root, fs::Permissions::from_mode(0o755)).expect("chmod ws");
    for p in [&s.sg.repo, &s.sg.cache, &s.src] {
        chown_tree(p, NOBODY, NOBODY);
    }
    s.sg.wrapper = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let home = s.sg.cache.clone().into_os_string();
    s.sg.extra_env.push(("HOME".into(), home));
    let b = s.sg.backup(&[&s.src], &[]);
    expect_err(&b.out, 3, &["secret.txt", "incomplete"]);
    let errors = b.errors();
    assert!(
        errors.len() == 1 && errors[0]["path"].as_str() == Some(&*secret.to_string_lossy()),
        "errors array should name only {secret:?}\n{}",
        b.out
    );

    s.sg.wrapper.clear();
    s.sg.extra_env.pop();
    let list = strict_json(&s.sg.run(["--json", "snapshots"]));
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|v| v["id"].as_str())
        .collect();
    assert!(ids.contains(&b.id.as_str()), "snapshot {} missing", b.id);
    s.assert_restores(&b.id, "restore");
    let r = restored_path(&s.ws.path("restore"), &s.src);
    assert!(!r.join("secret.txt").exists());
    assert_eq!(
        fs::read(r.join("a_first.bin")).expect("read").len(),
        64 << 10
    );
}

// ---------------------------------------------------------------------------
// Restore targets.

#[test]
fn restore_into_read_only_target_exits_18() {
    let s = setup();
    let dir = s.ws.path("ro");
    let Some(_mount) = Mount::tmpfs(&dir, "ro,size=1m") else {
        return;
    };
    let out = s.sg.restore(&s.id, &dir, &[]);
    expect_err(&out, 18, &[&dir.to_string_lossy(), "choose a target"]);
    let out = s.sg.restore(&s.id, &dir.join("sub"), &[]);
    expect_err(&out, 18, &["sub", "choose a target"]);
    s.assert_restores(&s.id, "after");
}

#[test]
fn restore_running_out_of_space_exits_17() {
    let s = setup();
    fs::write(s.src.join("big.bin"), random_bytes(5, 10 << 20)).expect("write");
    let id = s.sg.backup(&[&s.src], &[]).id;
    let dir = s.ws.path("small");
    let Some(_mount) = Mount::tmpfs(&dir, "size=2m") else {
        return;
    };
    let out = s.sg.restore(&id, &dir, &[]);
    expect_err(&out, 17, &["no space", "big.bin", "free some space"]);
    s.assert_restores(&id, "after");
    let big = restored_path(&s.ws.path("after"), &s.src).join("big.bin");
    assert_eq!(fs::metadata(big).expect("stat").len(), 10 << 20);
}

// ---------------------------------------------------------------------------
// Arguments.

#[test]
fn snapshot_prefix_too_short_unknown_and_ambiguous() {
    let s = setup();
    let out = s.sg.run(["ls", &s.id[..3]]);
    expect_err(&out, 2, &["4 hex digits"]);

    let unknown: String = s.id[..4]
        .chars()
        .map(|c| if c == 'f' { '0' } else { 'f' })
        .collect();
    let out = s.sg.run(["ls", &unknown]);
    expect_err(&out, 15, &[&unknown, "snapguard snapshots"]);

    // A second snapshot file sharing the first 6 digits (it fails integrity
    // checks, but the prefix is resolved first).
    let dir = s.sg.repo.join("snapshots");
    let twin = format!(
        "{}{}",
        &s.id[..6],
        if s.id[6..] == "0".repeat(58) {
            "1"
        } else {
            "0"
        }
        .repeat(58)
    );
    fs::copy(dir.join(&s.id), dir.join(&twin)).expect("copy snapshot");
    for args in [&["ls", &s.id[..6]][..], &["dump", &s.id[..6], "/x"]] {
        expect_err(
            &s.sg.run(args),
            15,
            &["ambiguous", &s.id[..6], &twin[..12], "more digits"],
        );
    }
    fs::remove_file(dir.join(&twin)).expect("rm twin");
    s.assert_restores(&s.id[..6], "after");
}

#[test]
fn malformed_arguments_exit_2() {
    let s = setup();
    let out =
        s.sg.run([os("backup"), os("--no-such-flag"), s.src.as_os_str()]);
    expect_err(&out, 2, &["--no-such-flag"]);
    let out = s.sg.run(["restore", s.id.as_str()]);
    expect_err(&out, 2, &["--target"]);
    let out = s.sg.run(["no-such-command"]);
    expect_err(&out, 2, &["no-such-command"]);
    assert_eq!(files_in(&s.sg.repo.join("snapshots")).len(), 1);
}

#[test]
fn path_not_in_snapshot_exits_15_naming_path_and_snapshot() {
    let s = setup();
    let missing = s.src.join("no-such-file");
    let shown = missing.to_string_lossy().into_owned();
    let short = &s.id[..8];
    let mut failures = Vec::new();
    let mut check = |what: &str, out: Out| {
        no_panic(&out);
        let stderr = out.stderr_str();
        if out.code != Some(15) || !stderr.contains(&shown) || !stderr.contains(short) {
            failures.push(format!(
                "{what}: want exit 15 naming {shown:?} and snapshot {short}\n{out}"
            ));
        }
    };
    check(
        "restore",
        s.sg.restore(spec(&s.id, &missing), &s.ws.path("t"), &[]),
    );
    check("dump", s.sg.dump(&s.id, &missing));
    check("ls", s.sg.run([os("ls"), os(&s.id), missing.as_os_str()]));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(!s.ws.path("t").join("no-such-file").exists());
}

#[test]
fn output_to_a_closed_pipe_does_not_panic() {
    let mut s = setup();
    let key = name_of(&s.only_file("keys"));
    // The reader (`true`) is gone before snapguard writes anything.
    s.sg.wrapper = ["sh", "-c", "(sleep 0.3; exec \"$@\") | true", "sh"]
        .iter()
        .map(OsString::from)
        .collect();
    let sg = &s.sg;
    let mut failures = Vec::new();
    for args in [
        &["snapshots"][..],
        &["--json", "snapshots"],
        &["ls", "latest"],
        &["key", "list"],
        &["cat", "key", key.as_str()],
        &["cat", "config"],
        &["stats"],
        &["diff", s.id.as_str(), s.id.as_str()],
    ] {
        let out = sg.run(args);
        if out.stderr_str().contains("panicked") {
            failures.push(format!("{out}"));
        }
    }
    assert!(
        failures.is_empty(),
        "panics on a closed stdout:\n{}",
        failures.join("\n\n")
    );
}
