//! Throttling and progress. `--limit-read` and `--limit-upload`: a throttled backup moves data no
//! faster than the limit (within 10%), measured through the real binary. The same limits set in
//! the config file are tested with these helpers in `config.rs`.

use crate::support::cmd::{Backup, Sg, Ws};
use crate::support::random_bytes;
use std::path::{Path, PathBuf};
use std::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;

/// A repository and a source directory holding one incompressible file of `size` bytes.
pub(crate) fn setup(size: usize) -> (Ws, Sg, PathBuf) {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    // Incompressible, so the bytes uploaded are the bytes read.
    std::fs::write(src.join("data.bin"), random_bytes(0x7417, size)).expect("write");
    (ws, sg, src)
}

/// A backup of `src` with the `extra` flags, timed from start to exit.
pub(crate) struct Measured {
    pub backup: Backup,
    /// MiB/s of source data read (`bytes_read`).
    pub read_rate: f64,
    /// MiB/s of data written to the repository (`bytes_stored`).
    pub stored_rate: f64,
}

pub(crate) fn measure(sg: &Sg, src: &Path, extra: &[&str]) -> Measured {
    let start = Instant::now();
    let backup = sg.backup(&[src], extra);
    let secs = start.elapsed().as_secs_f64();
    let rate = |field: &str| {
        let bytes = backup.json[field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {field}\n{}", backup.out));
        bytes as f64 / MIB / secs
    };
    let (read_rate, stored_rate) = (rate("bytes_read"), rate("bytes_stored"));
    Measured {
        backup,
        read_rate,
        stored_rate,
    }
}

/// `rate` obeys a limit of `limit` MiB/s: at most 10% above it, and not far below it (which
/// would mean that the limiter is far too strict). `what` says how the limit was set.
pub(crate) fn assert_within_limit(rate: f64, limit: f64, what: &str) {
    assert!(
        rate <= limit * 1.1,
        "moved {rate:.2} MiB/s with {what}: more than 10% above the limit"
    );
    assert!(
        rate >= limit * 0.375,
        "moved only {rate:.2} MiB/s with {what}: the limiter is far too strict"
    );
}

#[test]
fn limit_read_is_respected() {
    let (_ws, sg, src) = setup(12 << 20);
    let m = measure(&sg, &src, &["--limit-read", "8"]);
    assert_within_limit(m.read_rate, 8.0, "--limit-read 8");
}

#[test]
fn limit_upload_is_respected() {
    let (_ws, sg, src) = setup(12 << 20);
    let m = measure(&sg, &src, &["--limit-upload", "8"]);
    assert_within_limit(m.stored_rate, 8.0, "--limit-upload 8");
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
