//! `GET /metrics`: Prometheus text format. Job results come from the state database; the
//! repository's size and snapshot counts from the repository (a session like any request).
//! Authentication: a session cookie, or HTTP Basic with an account (what scrapers send).

use crate::auth::Auth;
use crate::tls::ClientAddr;
use crate::{ApiError, AppState};
use axum::extract::{FromRequestParts, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A label value, escaped as the text format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn help(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        if l.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {v}", l.join(","));
        }
    }
}

pub(crate) async fn metrics(
    State(app): State<AppState>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (mut parts, _) = req.into_parts();
    let client = parts.extensions.get::<ClientAddr>().copied();
    let user = match Auth::from_request_parts(&mut parts, &app).await {
        Ok(a) => a.user,
        Err(_) => match crate::auth::basic_auth(&app, &parts.headers, client).await {
            Ok(Some(u)) => u,
            Err(e) if e.status != StatusCode::UNAUTHORIZED => return Err(e),
            // No credentials or wrong ones: a 401 must say how to authenticate.
            Ok(None) | Err(_) => {
                let mut r = ApiError::unauthenticated().into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"snapguard\""),
                );
                return Ok(r);
            }
        },
    };
    tracing::debug!(user = %user.name, "metrics scraped");
    let body = crate::api::blocking(move || Ok(render(&app))).await?;
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

fn render(app: &AppState) -> String {
    let mut o = Out(String::new());
    let jobs = app.0.control.jobs();
    let stats = app.db(|s| s.job_stats()).unwrap_or_default();
    o.help(
        "snapguard_job_runs_total",
        "counter",
        "Finished and running runs of each job by status.",
    );
    for s in &stats {
        for (status, n) in &s.counts {
            o.sample(
                "snapguard_job_runs_total",
                &[("job", &s.job), ("status", status)],
                n,
            );
        }
    }
    o.help(
        "snapguard_job_last_success_timestamp_seconds",
        "gauge",
        "When the job's last successful run ended.",
    );
    for s in &stats {
        if let Some((end, _)) = s.last_success {
            o.sample(
                "snapguard_job_last_success_timestamp_seconds",
                &[("job", &s.job)],
                end,
            );
        }
    }
    o.help(
        "snapguard_job_last_success_duration_seconds",
        "gauge",
        "How long the job's last successful run took.",
    );
    for s in &stats {
        if let Some((_, d)) = s.last_success {
            o.sample(
                "snapguard_job_last_success_duration_seconds",
                &[("job", &s.job)],
                d,
            );
        }
    }
    o.help("snapguard_job_running", "gauge", "1 while the job runs.");
    for j in &jobs {
        o.sample(
            "snapguard_job_running",
            &[("job", &j.name)],
            u8::from(j.running.is_some()),
        );
    }
    let repo = app.0.repo.session("web: metrics", false).and_then(|s| {
        let views = snapguard_engine::annotate::views(&s.repo)?.0;
        Ok((views, crate::api::pack_totals(&s.repo)?))
    });
    o.help(
        "snapguard_repository_up",
        "gauge",
        "1 if the repository could be read for this scrape.",
    );
    match repo {
        Err(e) => {
            tracing::warn!("metrics: {e}");
            o.sample("snapguard_repository_up", &[], 0);
        }
        Ok((views, (packs, stored))) => {
            o.sample("snapguard_repository_up", &[], 1);
            o.help(
                "snapguard_repository_snapshots",
                "gauge",
                "Snapshots in the repository.",
            );
            o.sample("snapguard_repository_snapshots", &[], views.len());
            o.help(
                "snapguard_repository_stored_bytes",
                "gauge",
                "Size of all packs.",
            );
            o.sample("snapguard_repository_stored_bytes", &[], stored);
            o.help(
                "snapguard_repository_packs",
                "gauge",
                "Pack files in the repository.",
            );
            o.sample("snapguard_repository_packs", &[], packs);
            let sum = |f: fn(&snapguard_format::SnapshotSummary) -> u64| -> u64 {
                views
                    .iter()
                    .filter_map(|v| v.snapshot.summary.as_ref())
                    .map(f)
                    .sum()
            };
            // Sums over the snapshots in the repository: they drop when snapshots are
            // forgotten, so they are gauges.
            o.help(
                "snapguard_snapshots_bytes_added",
                "gauge",
                "Plaintext bytes each snapshot added to the repository, summed over its snapshots.",
            );
            o.sample(
                "snapguard_snapshots_bytes_added",
                &[],
                sum(|s| s.bytes_added),
            );
            o.help(
                "snapguard_snapshots_bytes_stored",
                "gauge",
                "Bytes stored for each snapshot's new data, summed over the snapshots.",
            );
            o.sample(
                "snapguard_snapshots_bytes_stored",
                &[],
                sum(|s| s.bytes_stored),
            );
            o.help(
                "snapguard_snapshots_errors",
                "gauge",
                "Entries that could not be read, summed over the snapshots.",
            );
            o.sample("snapguard_snapshots_errors", &[], sum(|s| s.errors));
            // The newest snapshot of each source.
            let mut latest: BTreeMap<(String, String), i64> = BTreeMap::new();
            for v in &views {
                let k = (
                    v.snapshot.hostname.clone(),
                    v.snapshot.display_paths().join(" "),
                );
                let t = latest.entry(k).or_insert(i64::MIN);
                *t = (*t).max(v.snapshot.time.secs);
            }
            o.help(
                "snapguard_last_snapshot_timestamp_seconds",
                "gauge",
                "Time of the newest snapshot of each host and source.",
            );
            for ((host, paths), t) in &latest {
                o.sample(
                    "snapguard_last_snapshot_timestamp_seconds",
                    &[("host", host), ("paths", paths)],
                    t,
                );
            }
        }
    }
    o.0
}
