//! Turning engine values into text and JSON.

use chrono::{DateTime, Local, TimeZone, Utc};
use snapguard_format::Timestamp;

// The JSON forms are shared with the daemon's web API.
pub use snapguard_engine::json::{
    kind_name, lossy, mode_string, node_json, pack_blob_json, rfc3339, snapshot_json, view_json,
};

/// Bytes as a human size (1024-based).
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Local time for tables.
pub fn local(t: Timestamp) -> String {
    match Local.timestamp_opt(t.secs, t.nanos).single() {
        Some(d) => d.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => rfc3339(t),
    }
}

pub fn now() -> Timestamp {
    let n = Utc::now();
    Timestamp {
        secs: n.timestamp(),
        nanos: n.timestamp_subsec_nanos(),
    }
}

pub fn parse_time(s: &str) -> anyhow::Result<Timestamp> {
    let d: DateTime<chrono::FixedOffset> = DateTime::parse_from_rfc3339(s).map_err(|e| {
        crate::usage!("invalid time {s:?}: {e}; use RFC 3339, e.g. 2026-01-31T12:00:00Z")
    })?;
    Ok(Timestamp {
        secs: d.timestamp(),
        nanos: d.timestamp_subsec_nanos(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapguard_format::{Node, NodeKind};

    #[test]
    fn modes_render_like_ls() {
        let mut n = Node::new(b"x".to_vec(), NodeKind::File);
        for (mode, want) in [
            (0o4755, "-rwsr-xr-x"),
            (0o2644, "-rw-r-Sr--"),
            (0o1777, "-rwxrwxrwt"),
            (0, "----------"),
        ] {
            n.mode = mode;
            assert_eq!(mode_string(&n), want);
        }
    }

    #[test]
    fn times_keep_nanoseconds_and_old_dates() {
        assert_eq!(
            rfc3339(Timestamp { secs: -1, nanos: 5 }),
            "1969-12-31T23:59:59.000000005Z"
        );
        assert_eq!(size(1536), "1.50 KiB");
    }
}
