//! The state database on a real file: accounts, job times across reopenings (a daemon
//! restart), runs and their logs, a second connection reading while the first writes (the
//! CLI beside the daemon), and damage reported by name.

use snapguard_daemon::runs::{Status, Trigger};
use snapguard_daemon::users::{HashCost, Role};
use snapguard_daemon::{Error, State};
use std::os::unix::fs::PermissionsExt;

/// Cheap hashes for tests; production uses [`HashCost::default`].
const CHEAP: HashCost = HashCost {
    memory_kib: 256,
    iterations: 1,
    lanes: 1,
};

#[test]
fn accounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("state");
    let s = State::open(&root).expect("open");
    assert_eq!(
        std::fs::metadata(&root).expect("dir").permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(root.join("state.db"))
            .expect("db")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    s.add_user("alice", Role::Admin, "correct horse battery", 100, &CHEAP)
        .expect("add");
    s.add_user("bob", Role::Viewer, "another long one", 101, &CHEAP)
        .expect("add");
    assert!(matches!(
        s.add_user("alice", Role::Viewer, "correct horse battery", 102, &CHEAP),
        Err(Error::UserExists(_))
    ));
    for bad in ["", "-x", ".x", "a b", "é", &"x".repeat(65)] {
        let e = s
            .add_user(bad, Role::Viewer, "long enough password", 1, &CHEAP)
            .expect_err("bad name");
        assert!(
            e.to_string().contains("not a valid user name"),
            "{bad:?}: {e}"
        );
    }
    let e = s
        .add_user("carol", Role::Viewer, "short", 1, &CHEAP)
        .expect_err("short password");
    assert!(e.to_string().contains("at least 10"), "{e}");

    let a = s
        .authenticate("alice", "correct horse battery", &CHEAP)
        .expect("auth")
        .expect("alice logs in");
    assert_eq!((a.role, a.created), (Role::Admin, 100));
    assert_eq!(
        s.authenticate("alice", "wrong password!", &CHEAP)
            .expect("auth"),
        None
    );
    assert_eq!(
        s.authenticate("nobody", "correct horse battery", &CHEAP)
            .expect("auth"),
        None
    );
    // The hash is Argon2id with its own salt; the password is nowhere in the file.
    // (WAL mode: recent writes are in state.db-wal until a checkpoint.)
    let mut raw = std::fs::read(root.join("state.db")).expect("read db");
    raw.extend(std::fs::read(root.join("state.db-wal")).unwrap_or_default());
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("$argon2id$"), "no Argon2id hash stored");
    assert!(!text.contains("correct horse battery"));

    s.set_disabled("alice", true).expect("disable");
    assert_eq!(
        s.authenticate("alice", "correct horse battery", &CHEAP)
            .expect("auth"),
        None,
        "a disabled account logs in"
    );
    s.set_disabled("alice", false).expect("enable");
    s.set_password("alice", "a new long password", &CHEAP)
        .expect("passwd");
    assert!(s
        .authenticate("alice", "a new long password", &CHEAP)
        .expect("auth")
        .is_some());
    assert!(s
        .authenticate("alice", "correct horse battery", &CHEAP)
        .expect("auth")
        .is_none());
    // A hash made with another cost still verifies (the hash carries its parameters).
    assert!(s
        .authenticate("bob", "another long one", &HashCost::default())
        .expect("auth")
        .is_some());
    let names: Vec<String> = s
        .users()
        .expect("list")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    s.remove_user("bob").expect("remove");
    assert!(matches!(s.remove_user("bob"), Err(Error::NoUser(_))));
}

#[test]
fn job_times_survive_a_restart_and_runs_are_recorded_with_their_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = State::open(dir.path()).expect("open");
    let t = s.job_times("home", 1000).expect("times");
    assert_eq!((t.first_seen, t.last_start), (1000, None));
    // Seen again later: still first seen at 1000.
    assert_eq!(s.job_times("home", 5000).expect("times").first_seen, 1000);

    let r1 = s.start_run("home", Trigger::Schedule, 2000).expect("start");
    assert_eq!(s.log(r1, 2001, "info", "reading /home").expect("log"), 1);
    assert_eq!(
        s.log(r1, 2002, "warn", "skipped /home/x: permission denied")
            .expect("log"),
        2
    );
    let summary = serde_json::json!({"files_new": 12, "bytes_added": 4096});
    s.finish_run(r1, Status::Succeeded, 2100, Some(&summary), None)
        .expect("finish");
    assert!(matches!(
        s.finish_run(r1, Status::Failed, 2200, None, Some("again")),
        Err(Error::NoRun(_))
    ));
    let r2 = s.start_run("home", Trigger::Manual, 3000).expect("start");
    drop(s);

    // The daemon restarts: the running run was cut short, the times are remembered.
    let s = State::open(dir.path()).expect("reopen");
    assert_eq!(s.interrupt_stale_runs(4000).expect("interrupt"), 1);
    let t = s.job_times("home", 9999).expect("times");
    assert_eq!((t.first_seen, t.last_start), (1000, Some(3000)));
    let runs = s.runs(Some("home"), 10).expect("runs");
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [r2, r1]);
    assert_eq!(runs[0].status, Status::Interrupted);
    assert_eq!(runs[0].ended, Some(4000));
    assert_eq!(runs[1].status, Status::Succeeded);
    assert_eq!(runs[1].summary.as_ref(), Some(&summary));
    assert_eq!(runs[1].trigger, Trigger::Schedule);
    let lines = s.log_lines(r1, 0).expect("log");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1].level, "warn");
    // Following a log: only what came after the last line seen.
    assert_eq!(s.log_lines(r1, 1).expect("log").len(), 1);
    assert!(s.log_lines(r1, 2).expect("log").is_empty());
    assert!(matches!(s.log_lines(999, 0), Err(Error::NoRun(999))));
    assert!(matches!(s.log(999, 1, "info", "x"), Err(Error::NoRun(999))));
    assert_eq!(s.runs(None, 1).expect("runs").len(), 1);
    assert!(s.runs(Some("other"), 10).expect("runs").is_empty());
}

#[test]
fn a_second_connection_reads_while_the_first_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = State::open(dir.path()).expect("open");
    let cli = State::open(dir.path()).expect("open beside");
    let run = daemon.start_run("home", Trigger::Idle, 10).expect("start");
    for i in 0..50 {
        daemon
            .log(run, 10 + i, "info", &format!("line {i}"))
            .expect("log");
        if i % 10 == 0 {
            let seen = cli.log_lines(run, 0).expect("read");
            assert_eq!(seen.len() as i64, i + 1);
        }
    }
    // Accounts can be added from the CLI while the daemon holds the database open.
    cli.add_user("root", Role::Admin, "long enough password", 11, &CHEAP)
        .expect("add beside");
    assert_eq!(daemon.users().expect("list").len(), 1);
}

#[test]
fn damage_and_newer_schemas_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = State::open(dir.path()).expect("open");
        s.start_run("x", Trigger::Manual, 1).expect("start");
    }
    let db = dir.path().join("state.db");
    let conn = rusqlite::Connection::open(&db).expect("raw");
    conn.execute("UPDATE runs SET status = 'exploded'", [])
        .expect("damage");
    let s = State::open(dir.path()).expect("open");
    let e = s.runs(None, 10).expect_err("damaged status");
    assert!(e.to_string().contains("unknown status"), "{e}");
    drop(s);
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'", [])
        .expect("newer");
    let e = State::open(dir.path()).expect_err("newer schema");
    assert!(
        e.to_string().contains("newer SnapGuard") && e.to_string().contains("state.db"),
        "{e}"
    );
    // Not a database at all.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        other.path().join("state.db"),
        b"this is not sqlite, just text....",
    )
    .expect("write");
    let e = State::open(other.path()).expect_err("garbage");
    assert!(e.to_string().contains("state.db"), "{e}");
}
