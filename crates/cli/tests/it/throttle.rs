//! `--limit-read` and `--limit-upload`: a throttled backup moves data no faster than the limit
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
