//! Repository traffic of this run: every backend the command opens is wrapped in a
//! [`CountingBackend`]; the counters give `bytes_downloaded` in summaries and, with
//! `SNAPGUARD_BACKEND_STATS=FILE`, a JSON file written at exit (a diagnostic, see
//! docs/remote.md: how many requests and bytes went to each repository directory).

use serde_json::{json, Map, Value};
use snapguard_backend::{Backend, BackendStats, CountingBackend, FileType};
use std::sync::{Arc, Mutex};

/// The counters of every backend opened by this process, with its location.
static OPENED: Mutex<Vec<(String, Arc<BackendStats>)>> = Mutex::new(Vec::new());

/// Wrap `backend` so that its traffic is counted for this run.
pub fn counted(backend: Arc<dyn Backend>) -> Arc<dyn Backend> {
    let location = backend.location();
    let counting = CountingBackend::new(backend);
    if let Ok(mut all) = OPENED.lock() {
        all.push((location, counting.stats()));
    }
    Arc::new(counting)
}

/// Bytes read from the repositories this run opened, so far: file data, trees, snapshots,
/// index files, locks and keys together.
pub fn bytes_downloaded() -> u64 {
    OPENED
        .lock()
        .map(|all| all.iter().map(|(_, s)| s.bytes_read()).sum())
        .unwrap_or(0)
}

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::Config => "config",
        FileType::Key => "keys",
        FileType::Snapshot => "snapshots",
        FileType::Index => "index",
        FileType::Pack => "data",
        FileType::Lock => "locks",
        FileType::Annotation => "annotations",
    }
}

/// The counters as JSON: `{"backends": [{"location", "bytes_read", "bytes_written",
/// "types": {"data": {"reads", "bytes_read", ...}, ...}}]}`.
fn report() -> Value {
    let all = OPENED.lock().map(|a| a.clone()).unwrap_or_default();
    let backends: Vec<Value> = all
        .iter()
        .map(|(location, stats)| {
            let mut types = Map::new();
            for t in FileType::ALL {
                let s = stats.get(t);
                types.insert(
                    type_name(t).to_string(),
                    json!({
                        "reads": s.reads,
                        "bytes_read": s.bytes_read,
                        "writes": s.writes,
                        "bytes_written": s.bytes_written,
                        "lists": s.lists,
                        "removes": s.removes,
                    }),
                );
            }
            json!({
                "location": location,
                "bytes_read": stats.bytes_read(),
                "bytes_written": stats.bytes_written(),
                "types": types,
            })
        })
        .collect();
    json!({ "backends": backends })
}

/// At exit: write the counters to the file named by `SNAPGUARD_BACKEND_STATS`, if set. A
/// failure is reported on stderr but does not change the exit code.
pub fn write_if_requested() {
    let Some(path) = std::env::var_os("SNAPGUARD_BACKEND_STATS").filter(|p| !p.is_empty()) else {
        return;
    };
    let text = match serde_json::to_string_pretty(&report()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("warning: cannot encode the backend statistics: {e}");
            return;
        }
    };
    if let Err(e) = std::fs::write(&path, text + "\n") {
        eprintln!(
            "warning: cannot write the backend statistics to {} (SNAPGUARD_BACKEND_STATS): {e}",
            std::path::Path::new(&path).display()
        );
    }
}
