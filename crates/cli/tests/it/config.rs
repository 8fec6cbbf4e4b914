//! The configuration file (docs/config.md): `[limits]` throttles like the flags, the flags
//! override it, and a broken, misspelt or missing file stops every command with exit code 2 and a
//! message naming the file.
//!
//! The harness passes an empty `SNAPGUARD_CONFIG` file (`support::cmd::empty_config`) to every
//! run; these tests write into that file or pass `--config`.

use crate::errors::expect_err;
use crate::support::cmd::{run_cmd, Out, Sg, Ws};
use crate::throttle::{assert_within_limit, measure, setup};
use std::ffi::OsStr;
use std::fs;
use std::path::Path;

fn write_config(sg: &Sg, text: &str) {
    fs::write(&sg.config, text).expect("write config file");
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn config_read_limit_is_respected() {
    let (_ws, sg, src) = setup(12 << 20);
    write_config(&sg, "[limits]\nread = 8\n");
    let m = measure(&sg, &src, &[]);
    assert_within_limit(m.read_rate, 8.0, "[limits] read = 8 in the config file");
}

#[test]
fn config_upload_limit_is_respected() {
    let (_ws, sg, src) = setup(12 << 20);
    write_config(&sg, "[limits]\nupload = 8\n");
    let m = measure(&sg, &src, &[]);
    assert_within_limit(m.stored_rate, 8.0, "[limits] upload = 8 in the config file");
}

/// The file's limits would make this backup take 16 s; the flags lift them.
#[test]
fn flags_override_config_limits() {
    let (_ws, sg, src) = setup(4 << 20);
    write_config(&sg, "[limits]\nread = 0.25\nupload = 0.25\n");
    let m = measure(
        &sg,
        &src,
        &["--limit-read", "1000", "--limit-upload", "1000"],
    );
    assert!(
        m.read_rate > 1.0 && m.stored_rate > 1.0,
        "read {:.2} MiB/s, stored {:.2} MiB/s: the [limits] of 0.25 MiB/s were applied \
         although --limit-read and --limit-upload 1000 override them\n{}",
        m.read_rate,
        m.stored_rate,
        m.backup.out
    );
}

/// `--config` wins over `SNAPGUARD_CONFIG` (here a broken file that must not be read).
#[test]
fn config_flag_overrides_environment() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    write_config(&sg, "this is not TOML\n");
    let good = ws.path("good.toml");
    fs::write(&good, "[limits]\nupload = 1000\n").expect("write");
    sg.run([
        OsStr::new("--config"),
        good.as_os_str(),
        OsStr::new("snapshots"),
    ])
    .expect_code(0);
    let out = sg.run(["snapshots"]);
    expect_err(&out, 2, &[&path_str(&sg.config), "line 1"]);
}

/// A config problem is reported before anything else: here the repository does not exist and
/// no password is available, yet the error is the config file's.
fn config_error(ws: &Ws, config: &Path) -> Out {
    let mut cmd = Sg {
        bin: crate::support::cmd::bin(),
        repo: ws.path("no-repository-here"),
        cache: ws.path("cache"),
        config: config.to_path_buf(),
        wrapper: Vec::new(),
        extra_env: Vec::new(),
    }
    .command();
    cmd.env_remove("SNAPGUARD_PASSWORD");
    run_cmd(&mut cmd, ["backup", "/nonexistent"])
}

#[test]
fn invalid_config_files_exit_2_naming_file_and_line() {
    let ws = Ws::new();
    let file = ws.path("snapguard.toml");
    let name = path_str(&file);
    for (text, musts) in [
        // TOML syntax error.
        ("[limits\nread = 8\n", vec!["line 1"]),
        ("[limits]\nread = = 8\n", vec!["line 2"]),
        // Misspelt key, unknown section, key outside its section.
        (
            "[limits]\nread = 8\nuplaod = 20\n",
            vec!["line 3", "uplaod", "expected `read` or `upload`"],
        ),
        ("[limit]\nread = 8\n", vec!["line 1", "limit"]),
        ("read = 8\n", vec!["line 1", "read"]),
        // Values: the same rule as the flags.
        ("[limits]\nread = 0\n", vec!["line 2", "positive number"]),
        ("[limits]\nupload = -5\n", vec!["line 2", "positive number"]),
        ("[limits]\nread = nan\n", vec!["line 2", "positive number"]),
        (
            "[limits]\n\nupload = \"20M\"\n",
            vec!["line 3", "positive number"],
        ),
    ] {
        fs::write(&file, text).expect("write");
        let out = config_error(&ws, &file);
        let mut all = vec![name.as_str(), "docs/config.md"];
        all.extend(musts);
        expect_err(&out, 2, &all);
    }
}

/// `[local.NAME]` sections (issue 6) are read by every command: the issue's minimal form is
/// accepted, and a bad value in one stops even a backup, with the file, line, section and key.
#[test]
fn local_sections_are_checked_by_every_command() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    write_config(
        &sg,
        "[local.data]                      # CONFIG name \"data\"\n\
         subvolume = \"/mnt/pool/data\"      # snapshots default to <subvolume>/.snapshots\n\
         [local.data.retention]\nhourly = 10\ndaily = 7\n",
    );
    sg.run(["snapshots"]).expect_code(0);

    let file = ws.path("local.toml");
    for (text, musts) in [
        (
            "[local.data]\nsubvolume = \"/d\"\n[local.data.retention]\nhourly = 10\nmin_age = \"30m\"\n",
            vec!["line 5: [local.data.retention] min_age: \"30m\" would be read as months"],
        ),
        (
            "[limits]\nread = 8\n\n[local.\"my data\"]\nsubvolume = \"/d\"\n",
            vec!["line 4: [local.\"my data\"]: \"my data\" is not a valid local configuration name"],
        ),
        (
            "[local.data]\nsubvolume = \"data\"\n",
            vec!["line 2: [local.data] subvolume: \"data\" is not an absolute path"],
        ),
    ] {
        fs::write(&file, text).expect("write");
        let out = config_error(&ws, &file);
        let mut all = vec![path_str(&file), "docs/config.md".to_owned()];
        all.extend(musts.into_iter().map(str::to_owned));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        expect_err(&out, 2, &all);
    }
}

#[test]
fn missing_named_config_file_exits_2() {
    let ws = Ws::new();
    let missing = ws.path("no-such-config.toml");
    let name = path_str(&missing);

    // Named by SNAPGUARD_CONFIG.
    let out = config_error(&ws, &missing);
    expect_err(&out, 2, &[&name, "does not exist"]);

    // Named by --config (which wins over a valid SNAPGUARD_CONFIG).
    let sg = Sg::init(&ws, None);
    let out = sg.run([
        OsStr::new("--config"),
        missing.as_os_str(),
        OsStr::new("snapshots"),
    ]);
    expect_err(&out, 2, &[&name, "does not exist"]);
}

#[test]
fn invalid_limit_flags_exit_2() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    for (flag, value) in [
        ("--limit-read", "0"),
        ("--limit-read", "-1"),
        ("--limit-read", "1e-300"),
        ("--limit-upload", "inf"),
        ("--limit-upload", "fast"),
    ] {
        let out = sg.run(["backup", &format!("{flag}={value}"), "/nonexistent"]);
        expect_err(&out, 2, &[flag, "positive number of MiB/s"]);
    }
}

/// `[repository]` names the repository and its password file when neither options nor
/// variables do; `-r` and `SNAPGUARD_PASSWORD` override it.
#[test]
fn repository_section_gives_the_location_and_the_password() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let backup = sg.backup(&[&sg.config.clone()], &[]);
    backup.out.expect_code(0);
    let pw_file = ws.path("pw");
    fs::write(&pw_file, format!("{}\n", crate::support::cmd::PASSWORD)).expect("pw");
    write_config(
        &sg,
        &format!(
            "[repository]\nurl = \"{}\"\npassword_file = \"{}\"\n",
            path_str(&sg.repo),
            path_str(&pw_file)
        ),
    );
    let bare = || {
        let mut cmd = assert_cmd::Command::new(crate::support::cmd::bin());
        cmd.env("SNAPGUARD_CONFIG", &sg.config)
            .env("SNAPGUARD_CACHE_DIR", &sg.cache)
            .env_remove("SNAPGUARD_REPOSITORY")
            .env_remove("SNAPGUARD_PASSWORD")
            .env_remove("SNAPGUARD_PASSWORD_FILE")
            .env_remove("SNAPGUARD_PASSWORD_COMMAND")
            .env_remove("SNAPGUARD_KEY_FILE");
        cmd
    };
    let out: Out = run_cmd(&mut bare(), ["--json", "snapshots"]);
    out.expect_code(0);
    assert!(out.stdout_str().contains(&backup.id), "{out}");
    // -r wins over the file: an empty directory is "no repository".
    let other = ws.path("elsewhere");
    fs::create_dir_all(&other).expect("mkdir");
    run_cmd(
        &mut bare(),
        [OsStr::new("-r"), other.as_os_str(), OsStr::new("snapshots")],
    )
    .expect_code(10);
    // A password in the environment wins over the file's password file.
    let out = run_cmd(
        bare().env("SNAPGUARD_PASSWORD", "not the password"),
        ["snapshots"],
    );
    out.expect_code(12);
    // Unknown keys are refused like everywhere in the file.
    write_config(&sg, "[repository]\npassword = \"x\"\n");
    expect_err(&sg.run(["snapshots"]), 2, &["password"]);
}
