//! The daemon's web UI and REST API (`snapguard_web`), wired to the daemon: the event loop
//! answers [`WebRequest`]s (job list, run now, cancel) the way it answers the control socket,
//! and the repository is opened with the daemon's own options.

use crate::args::GlobalArgs;
use crate::daemon::DaemonArgs;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use snapguard_web::{ApiError, Control, JobInfo};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Where the web server listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// What the web side asks of the event loop.
#[derive(Debug)]
pub enum WebRequest {
    Jobs,
    Run { job: String, who: String },
    Cancel { run: i64, who: String },
}

/// A request and where its answer goes.
pub struct WebIncoming {
    pub request: WebRequest,
    pub reply: mpsc::Sender<Result<Value, ApiError>>,
}

struct WebControl {
    tx: Mutex<mpsc::Sender<crate::daemon::Event>>,
    settings: Value,
}

impl WebControl {
    fn ask(&self, request: WebRequest) -> Result<Value, ApiError> {
        let (reply, rx) = mpsc::channel();
        self.tx
            .lock()
            .map_err(|_| ApiError::internal("the daemon's channel is poisoned"))?
            .send(crate::daemon::Event::Web(WebIncoming { request, reply }))
            .map_err(|_| ApiError::internal("the daemon is stopping"))?;
        rx.recv_timeout(Duration::from_secs(30))
            .map_err(|_| ApiError::internal("the daemon did not answer in 30 s"))?
    }
}

impl Control for WebControl {
    fn jobs(&self) -> Vec<JobInfo> {
        self.ask(WebRequest::Jobs)
            .ok()
            .and_then(|v| serde_json::from_value::<Vec<JobInfo>>(v).ok())
            .unwrap_or_default()
    }

    fn run_job(&self, job: &str, who: &str) -> Result<i64, ApiError> {
        let v = self.ask(WebRequest::Run {
            job: job.to_string(),
            who: who.to_string(),
        })?;
        v["run"]
            .as_i64()
            .ok_or_else(|| ApiError::internal("the daemon gave no run id"))
    }

    fn cancel_run(&self, run: i64, who: &str) -> Result<(), ApiError> {
        self.ask(WebRequest::Cancel {
            run,
            who: who.to_string(),
        })
        .map(|_| ())
    }

    fn settings(&self) -> Value {
        self.settings.clone()
    }
}

/// The configuration for the settings page: what is configured, never a secret (a password
/// command is shown only as set, since it may hold one).
fn settings_json(g: &GlobalArgs) -> Value {
    let c = &g.settings;
    let set = |b: bool| if b { json!("(set)") } else { Value::Null };
    json!({
        "config_file": c.source.as_ref().map(|p| p.display().to_string()),
        "repository": {
            "url": g.repo.clone().or_else(|| c.repository.url.clone()),
            "password_file": c.repository.password_file.as_ref().map(|p| p.display().to_string()),
            "password_command": set(c.repository.password_command.is_some()),
            "key_file": c.repository.key_file.as_ref().map(|p| p.display().to_string()),
        },
        "jobs": c.jobs.iter().map(|(name, j)| json!({
            "name": name,
            "kind": j.action.kind(),
            "schedule": j.schedule_text,
            "when": match j.timing {
                snapguard_policy::jobs::Timing::OnTime => "schedule".to_string(),
                snapguard_policy::jobs::Timing::Idle { deadline_secs } =>
                    format!("idle, deadline {deadline_secs} s"),
            },
            "runs": crate::daemon::job_command_line(j),
            "notify_success": j.notify_success,
        })).collect::<Vec<_>>(),
        "local": c.local.iter().map(|(name, l)| json!({
            "name": name,
            "subvolume": l.subvolume.display().to_string(),
            "snapshot_dir": l.snapshot_dir().display().to_string(),
        })).collect::<Vec<_>>(),
        "limits": { "read_mib_s": c.limits.read, "upload_mib_s": c.limits.upload },
        "notify": c.notify.as_ref().map(|n| json!({
            "email_to": n.email_to,
            "email_from": n.email_from,
            "smtp_host": n.smtp_host,
            "smtp_port": n.smtp_port,
            "smtp_security": format!("{:?}", n.smtp_security).to_lowercase(),
            "smtp_user": n.smtp_user,
            "smtp_password_file": n.smtp_password_file.as_ref().map(|p| p.display().to_string()),
            "desktop": n.desktop,
            "desktop_users": n.desktop_users,
        })),
        "daemon": {
            "allow_users": c.daemon.allow_users,
            "listen": c.daemon.listen,
            "tls_cert": c.daemon.tls_cert.as_ref().map(|p| p.display().to_string()),
        },
    })
}

/// Start the web server if it is not switched off; returns where it listens.
pub fn start(
    g: &GlobalArgs,
    a: &DaemonArgs,
    tx: mpsc::Sender<crate::daemon::Event>,
) -> Result<Option<SocketAddr>> {
    let listen = a
        .listen
        .clone()
        .or_else(|| g.settings.daemon.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if listen == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = listen.parse().map_err(|e| {
        crate::usage!("--listen {listen:?}: {e}; give ADDR:PORT (e.g. 127.0.0.1:8443) or off")
    })?;
    let d = &g.settings.daemon;
    let tls = match (&d.tls_cert, &d.tls_key) {
        (Some(cert), Some(key)) => snapguard_web::tls::TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (None, None) => snapguard_web::tls::TlsSource::SelfSigned {
            dir: a.state_dir.join("tls"),
            names: vec![crate::commands::hostname()],
        },
        _ => bail!("[daemon] needs both tls_cert and tls_key, or neither (a self-signed certificate is then made)"),
    };
    let opener_g = g.clone();
    let opener: snapguard_web::repo::Opener = Box::new(move || {
        crate::commands::unlock_repository(&opener_g, "web").map_err(|e| format!("{e:#}"))
    });
    let owner = crate::commands::owner();
    let control = Arc::new(WebControl {
        tx: Mutex::new(tx),
        settings: settings_json(g),
    });
    let app = snapguard_web::AppState::new(
        &a.state_dir,
        control,
        snapguard_web::repo::RepoAccess::new(opener, owner),
        true,
    )?;
    let bound = snapguard_web::spawn(&snapguard_web::ServeOptions { listen: addr, tls }, app)
        .context("cannot start the web UI and API")?;
    Ok(Some(bound))
}
