//! `snapguard user …` through the binary: accounts in a state directory of the test's own.

use crate::support::cmd::{bin, run_cmd, Out, Ws};
use std::path::Path;

fn user(state: &Path, password: Option<&str>, args: &[&str]) -> Out {
    let mut cmd = assert_cmd::Command::new(bin());
    cmd.env("SNAPGUARD_STATE_DIR", state)
        .env("SNAPGUARD_CONFIG", "/dev/null")
        .env_remove("SNAPGUARD_NEW_PASSWORD");
    if let Some(p) = password {
        cmd.env("SNAPGUARD_NEW_PASSWORD", p);
    }
    let mut all = vec!["user"];
    all.extend_from_slice(args);
    run_cmd(&mut cmd, all)
}

#[test]
fn accounts_are_added_listed_changed_and_removed() {
    let ws = Ws::new();
    let state = ws.path("state");
    user(
        &state,
        Some("correct horse battery"),
        &["add", "alice", "--role", "admin"],
    )
    .expect_code(0);
    user(
        &state,
        Some("viewer password"),
        &["add", "bob", "--role", "viewer"],
    )
    .expect_code(0);
    let list = user(&state, None, &["--json", "list"])
        .expect_code(0)
        .json();
    let names: Vec<(&str, &str)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|u| {
            (
                u["name"].as_str().expect("name"),
                u["role"].as_str().expect("role"),
            )
        })
        .collect();
    assert_eq!(names, [("alice", "admin"), ("bob", "viewer")]);

    // Mistakes are usage errors that say what to do.
    let out = user(
        &state,
        Some("another password"),
        &["add", "alice", "--role", "viewer"],
    );
    out.expect_code(2);
    assert!(out.stderr_str().contains("already exists"), "{out}");
    let out = user(&state, Some("short"), &["add", "carol", "--role", "viewer"]);
    out.expect_code(2);
    assert!(out.stderr_str().contains("at least 10"), "{out}");
    user(
        &state,
        Some("long enough pw"),
        &["add", "carol", "--role", "root"],
    )
    .expect_code(2);
    let out = user(
        &state,
        Some("long enough pw"),
        &["add", "-x", "--role", "admin"],
    );
    assert_ne!(out.code, Some(0), "{out}");
    let out = user(&state, None, &["add", "dave", "--role", "admin"]);
    assert_ne!(out.code, Some(0), "no password source, no terminal: {out}");
    assert!(out.stderr_str().contains("SNAPGUARD_NEW_PASSWORD"), "{out}");
    let out = user(&state, Some("long enough pw"), &["passwd", "nobody"]);
    out.expect_code(2);
    assert!(out.stderr_str().contains("no user \"nobody\""), "{out}");

    user(&state, Some("a brand new password"), &["passwd", "alice"]).expect_code(0);
    user(&state, None, &["disable", "bob"]).expect_code(0);
    let list = user(&state, None, &["list"]).expect_code(0).stdout_str();
    assert!(
        list.contains("bob") && list.contains("(disabled)"),
        "{list}"
    );
    user(&state, None, &["remove", "bob"]).expect_code(0);
    user(&state, None, &["remove", "bob"]).expect_code(2);

    // Only Argon2id hashes are stored; no password appears in the state directory.
    let mut bytes = Vec::new();
    for e in std::fs::read_dir(&state).expect("state dir").flatten() {
        bytes.extend(std::fs::read(e.path()).expect("read"));
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("$argon2id$"));
    for pw in [
        "correct horse battery",
        "a brand new password",
        "viewer password",
    ] {
        assert!(!text.contains(pw), "{pw:?} stored in plaintext");
    }
}
