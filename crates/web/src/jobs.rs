//! Jobs and their runs: the configured jobs, starting one now, the run history, a run's task
//! log and its live progress as server-sent events, cancelling, and the settings.

use crate::auth::{rfc3339, Auth};
use crate::{ApiError, AppState, JobInfo};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use snapguard_daemon::runs::{LogLine, Run, Status};
use snapguard_daemon::users::Role;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(run_job))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(run_log))
        .routes(routes!(run_events))
        .routes(routes!(cancel_run))
        .routes(routes!(settings))
}

pub(crate) fn run_json(r: &Run) -> Value {
    json!({
        "id": r.id,
        "job": r.job,
        "trigger": r.trigger,
        "status": r.status.as_str(),
        "started": rfc3339(r.started),
        "ended": r.ended.map(rfc3339),
        "duration_s": r.ended.map(|e| e - r.started),
        "summary": r.summary,
        "error": r.error,
    })
}

fn line_json(l: &LogLine) -> Value {
    json!({"seq": l.seq, "at": rfc3339(l.at), "level": l.level, "line": l.line})
}

async fn db<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&snapguard_daemon::State) -> Result<T, snapguard_daemon::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    crate::api::blocking(move || app.db(f)).await
}

/// The configured jobs, with their last run.
#[utoipa::path(get, path = "/jobs", tag = "jobs",
    responses((status = 200, description = "Jobs with kind, schedule, running run and last run")))]
async fn list_jobs(State(app): State<AppState>, _auth: Auth) -> Result<Json<Vec<Value>>, ApiError> {
    // The event loop answers; never wait for it on an async thread.
    let control = app.0.control.clone();
    let jobs = crate::api::blocking(move || Ok(control.jobs())).await?;
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    let last = db(&app, move |s| {
        names
            .iter()
            .map(|n| s.runs(Some(n), 1).map(|r| r.into_iter().next()))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(Json(
        jobs.iter()
            .zip(last)
            .map(|(j, l): (&JobInfo, Option<Run>)| {
                let mut v = serde_json::to_value(j).unwrap_or_default();
                v["last_run"] = l.as_ref().map(run_json).unwrap_or(Value::Null);
                v
            })
            .collect(),
    ))
}

/// Start a job now.
#[utoipa::path(post, path = "/jobs/{name}/run", tag = "jobs",
    params(("name" = String, Path, description = "The job's name ([jobs.NAME])")),
    responses((status = 200, description = "{run: ID}"),
              (status = 404, description = "No such job", body = crate::error::ErrorBody),
              (status = 409, description = "It runs already", body = crate::error::ErrorBody)))]
async fn run_job(
    State(app): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Operator)?;
    let control = app.0.control.clone();
    let who = auth.who();
    let run = crate::api::blocking(move || control.run_job(&name, &who)).await?;
    Ok(Json(json!({ "run": run })))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct RunsQuery {
    /// Only runs of this job.
    job: Option<String>,
    /// At most this many (default 50, at most 1000).
    limit: Option<u32>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/runs", tag = "jobs", params(RunsQuery),
    responses((status = 200, description = "Runs")))]
async fn list_runs(
    State(app): State<AppState>,
    _auth: Auth,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let limit = q.limit.unwrap_or(50).min(1000);
    let runs = db(&app, move |s| s.runs(q.job.as_deref(), limit)).await?;
    Ok(Json(runs.iter().map(run_json).collect()))
}

/// One run.
#[utoipa::path(get, path = "/runs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "The run"),
              (status = 404, description = "No such run", body = crate::error::ErrorBody)))]
async fn get_run(
    State(app): State<AppState>,
    _auth: Auth,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let r = db(&app, move |s| s.run(id)).await?;
    Ok(Json(run_json(&r)))
}

/// A run's task log.
#[utoipa::path(get, path = "/runs/{id}/log", tag = "jobs",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "[{seq, at, level, line}]")))]
async fn run_log(
    State(app): State<AppState>,
    _auth: Auth,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let lines = db(&app, move |s| {
        s.run(id)?;
        s.log_lines(id, 0)
    })
    .await?;
    Ok(Json(lines.iter().map(line_json).collect()))
}

/// A run's progress as server-sent events: `log` for each line (from the first), `status`
/// with the run whenever it changes; the stream ends after the run has ended.
#[utoipa::path(get, path = "/runs/{id}/events", tag = "jobs",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream")))]
async fn run_events(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError>
{
    let first = db(&app, move |s| s.run(id)).await?;
    struct Cursor {
        app: AppState,
        /// The session is checked again at every poll: a stream ends with its session.
        token: String,
        id: i64,
        after: i64,
        last_status: Option<Status>,
        done: bool,
        pending: std::collections::VecDeque<Event>,
    }
    let cursor = Cursor {
        app,
        token: auth.token.clone(),
        id,
        // A reconnecting EventSource says what it has seen.
        after: headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        last_status: None,
        done: false,
        pending: Default::default(),
    };
    let _ = first;
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.pending.pop_front() {
                return Some((Ok(e), c));
            }
            if c.done {
                return None;
            }
            let (id, after) = (c.id, c.after);
            let (token, limits) = (c.token.clone(), c.app.0.sessions);
            let polled = db(&c.app, move |s| {
                let alive = s.session(&token, crate::auth::now(), &limits)?.is_some();
                Ok((alive, s.log_lines(id, after)?, s.run(id)?))
            })
            .await;
            let Ok((true, lines, run)) = polled else {
                return None;
            };
            for l in &lines {
                c.after = c.after.max(l.seq);
                c.pending.push_back(
                    Event::default()
                        .event("log")
                        .id(l.seq.to_string())
                        .data(line_json(l).to_string()),
                );
            }
            if c.last_status != Some(run.status) {
                c.last_status = Some(run.status);
                c.pending.push_back(
                    Event::default()
                        .event("status")
                        .data(run_json(&run).to_string()),
                );
            }
            if run.status != Status::Running && lines.is_empty() {
                c.done = true;
                c.pending.push_back(
                    Event::default()
                        .event("end")
                        .data(run_json(&run).to_string()),
                );
                continue;
            }
            if c.pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Stop a running run (its job's processes get SIGTERM, then SIGKILL).
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "jobs",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "The run (still running until its processes end)"),
              (status = 409, description = "The run is not running", body = crate::error::ErrorBody)))]
async fn cancel_run(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Admin)?;
    let r = db(&app, move |s| s.run(id)).await?;
    if r.status != Status::Running {
        return Err(ApiError::conflict(format!(
            "run {id} is not running (it {})",
            r.status.as_str()
        )));
    }
    let control = app.0.control.clone();
    let who = auth.who();
    crate::api::blocking(move || control.cancel_run(id, &who)).await?;
    let r = db(&app, move |s| s.run(id)).await?;
    Ok(Json(run_json(&r)))
}

/// The daemon's configuration, without secrets.
#[utoipa::path(get, path = "/settings", tag = "settings",
    responses((status = 200, description = "The configuration as JSON")))]
async fn settings(State(app): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json(app.0.control.settings()))
}
