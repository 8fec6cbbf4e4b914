//! Throttling and progress. `--limit-read` and `--limit-upload`: a throttled backup moves data no faster than the limit
//! (within 10%), measured through the real binary.

use crate::support::cmd::{Sg, Ws};
use crate::support::random_bytes;
use std::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;

fn setup(size: usize) -> (Ws, Sg, std::path::PathBuf) {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    // Incompressible, so the bytes uploaded are the bytes read.
    std::fs::write(src.join("data.bin"), random_bytes(0x7417, size)).expect("write");
    (ws, sg, src)
}

#[test]
fn limit_read_is_respected() {
    let (_ws, sg, src) = setup(12 << 20);
    let start = Instant::now();
    let b = sg.backup(&[&src], &["--limit-read", "8"]);
    let secs = start.elapsed().as_secs_f64();
    let read = b.json["bytes_read"].as_u64().expect("bytes_read") as f64;
    let rate = read / MIB / secs;
    assert!(
        rate <= 8.0 * 1.1,
        "read {rate:.2} MiB/s with --limit-read 8"
    );
    assert!(
        rate >= 3.0,
        "read only {rate:.2} MiB/s with --limit-read 8: the limiter is far too strict"
    );
}

#[test]
fn limit_upload_is_respected() {
    let (_ws, sg, src) = setup(12 << 20);
    let start = Instant::now();
    let b = sg.backup(&[&src], &["--limit-upload", "8"]);
    let secs = start.elapsed().as_secs_f64();
    let stored = b.json["bytes_stored"].as_u64().expect("bytes_stored") as f64;
    let rate = stored / MIB / secs;
    assert!(
        rate <= 8.0 * 1.1,
        "uploaded {rate:.2} MiB/s with --limit-upload 8"
    );
    assert!(
        rate >= 3.0,
        "uploaded only {rate:.2} MiB/s with --limit-upload 8"
    );
}

/// With `--json`, a running backup reports progress as JSON lines on stderr (stdout keeps the
/// single result document); with `-q`, it reports nothing.
#[test]
fn json_progress_events_on_stderr() {
    let (_ws, sg, src) = setup(6 << 20);
    // About 2 s at 3 MiB/s: at least one event per second is due.
    let out = sg.run([
        std::ffi::OsStr::new("--json"),
        "backup".as_ref(),
        "--limit-read".as_ref(),
        "3".as_ref(),
        src.as_os_str(),
    ]);
    out.expect_code(0);
    let events: Vec<serde_json::Value> = out
        .stderr_str()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["type"] == "progress")
        .collect();
    assert!(!events.is_empty(), "no progress events\n{out}");
    let last = &events[events.len() - 1];
    assert_eq!(last["operation"], "backup");
    assert!(
        last["progress"]["bytes_done"].as_u64().unwrap_or(0) > 0,
        "{last}"
    );
    assert!(
        last["progress"]["bytes_total"].as_u64().unwrap_or(0) >= 6 << 20,
        "{last}"
    );
    let _: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");

    let quiet = sg.run([
        std::ffi::OsStr::new("-q"),
        "backup".as_ref(),
        "--force".as_ref(),
        "--limit-read".as_ref(),
        "3".as_ref(),
        src.as_os_str(),
    ]);
    quiet.expect_code(0);
    assert!(
        quiet.stderr_str().trim().is_empty(),
        "-q printed progress\n{quiet}"
    );
}
