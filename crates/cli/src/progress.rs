//! Rendering engine progress: a live bar on a terminal, a plain line every 10 seconds
//! otherwise, JSON progress events (on stderr, one object per line) with `--json`, and nothing
//! with `-q`. The renderer runs on its own thread and only reads the engine's counters.

use crate::args::GlobalArgs;
use crate::render::size;
use snapguard_engine::progress::{Progress, ProgressSnapshot};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bar,
    Lines,
    Json,
}

/// A running progress display; stops (and clears the bar) when dropped.
pub struct Display {
    pub progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Display {
    /// Start rendering for `operation` ("backup", "check" …); `unit` names what files_done counts.
    pub fn start(g: &GlobalArgs, operation: &'static str, unit: &'static str) -> Display {
        let progress = Arc::new(Progress::new());
        let stop = Arc::new(AtomicBool::new(false));
        let mode = if g.quiet {
            None
        } else if g.json {
            Some(Mode::Json)
        } else if std::io::stderr().is_terminal() {
            Some(Mode::Bar)
        } else {
            Some(Mode::Lines)
        };
        let handle = mode.and_then(|mode| {
            let (p, s) = (progress.clone(), stop.clone());
            std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || render_loop(mode, operation, unit, &p, &s))
                .ok()
        });
        Display {
            progress,
            stop,
            handle,
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

fn render_loop(mode: Mode, operation: &str, unit: &str, p: &Progress, stop: &AtomicBool) {
    let start = Instant::now();
    let period = match mode {
        Mode::Bar => Duration::from_millis(200),
        Mode::Lines => Duration::from_secs(10),
        Mode::Json => Duration::from_secs(1),
    };
    let mut drew = false;
    loop {
        std::thread::park_timeout(period);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let s = p.snapshot();
        let elapsed = start.elapsed().as_secs_f64();
        let line = text(operation, unit, &s, elapsed);
        let mut err = std::io::stderr().lock();
        let _ = match mode {
            Mode::Bar => {
                drew = true;
                write!(err, "\r\x1b[2K{line}")
            }
            Mode::Lines => writeln!(err, "{line}"),
            Mode::Json => {
                let ev = serde_json::json!({"type": "progress", "operation": operation, "elapsed_s": elapsed,
                    "rate_bytes_per_s": rate(&s, elapsed), "eta_s": eta(&s, elapsed), "progress": s});
                writeln!(err, "{ev}")
            }
        };
        let _ = err.flush();
    }
    if drew {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}

fn rate(s: &ProgressSnapshot, elapsed: f64) -> f64 {
    if elapsed > 0.0 {
        s.bytes_done as f64 / elapsed
    } else {
        0.0
    }
}

fn eta(s: &ProgressSnapshot, elapsed: f64) -> Option<f64> {
    let r = rate(s, elapsed);
    (s.totals_known && r > 0.0 && s.bytes_total >= s.bytes_done)
        .then(|| (s.bytes_total - s.bytes_done) as f64 / r)
}

fn text(operation: &str, unit: &str, s: &ProgressSnapshot, elapsed: f64) -> String {
    let r = rate(s, elapsed);
    let mut out = format!("{operation}: {} {unit}", s.files_done);
    if s.files_total > 0 {
        out.push_str(&format!(
            " of {}{}",
            s.files_total,
            if s.totals_known { "" } else { "+" }
        ));
    }
    out.push_str(&format!(", {}", size(s.bytes_done)));
    if s.bytes_total > 0 {
        let pct = (s.bytes_done as f64 * 100.0 / s.bytes_total as f64).min(100.0);
        let filled = (pct / 5.0) as usize;
        out = format!(
            "[{}{}] {pct:5.1}% {out} of {}",
            "#".repeat(filled),
            "-".repeat(20 - filled.min(20)),
            size(s.bytes_total)
        );
    }
    out.push_str(&format!(", {}/s", size(r as u64)));
    if let Some(e) = eta(s, elapsed) {
        out.push_str(&format!(", ETA {}", hms(e)));
    }
    out
}

fn hms(secs: f64) -> String {
    let s = secs.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_counts_rate_and_eta() {
        let s = ProgressSnapshot {
            files_done: 5,
            bytes_done: 50 << 20,
            files_total: 10,
            bytes_total: 100 << 20,
            totals_known: true,
            current: String::new(),
        };
        let t = text("backup", "files", &s, 10.0);
        assert!(t.contains("50.0%"), "{t}");
        assert!(t.contains("5 files of 10"), "{t}");
        assert!(t.contains("5.00 MiB/s"), "{t}");
        assert!(t.contains("ETA 0:00:10"), "{t}");
        let growing = ProgressSnapshot {
            totals_known: false,
            ..s
        };
        assert!(text("backup", "files", &growing, 10.0).contains("of 10+"));
    }
}
