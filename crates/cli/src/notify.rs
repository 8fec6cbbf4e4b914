//! The daemon's notifications (`[notify]` in the configuration file): a message when a job
//! fails, and when it succeeds if the job says `notify_success = true`. E-mail is sent through
//! SMTP with lettre, STARTTLS by default (rustls, the system's CA certificates plus
//! `smtp_ca_file`); desktop notifications go over D-Bus ([`crate::desktop`]). Each way has a
//! thread of its own so a slow mail server or bus never holds up the scheduler; each outcome is
//! a line in the run's task log.

use crate::config::{Notify, SmtpSecurity};
use anyhow::{bail, Context, Result};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};
use snapguard_daemon::runs::{LogLine, Run};
use std::time::Duration;

/// How long one attempt to deliver may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a finished run should be reported.
pub fn wanted(run: &Run, notify_success: bool) -> bool {
    use snapguard_daemon::runs::Status;
    match run.status {
        Status::Succeeded => notify_success,
        Status::Running => false,
        Status::Failed | Status::Cancelled | Status::Interrupted => true,
    }
}

/// Reports a finished run in every way `n` asks for, each on a thread of its own; `report` is
/// called (from those threads) with each outcome: Ok(to whom) or Err(why not).
pub fn deliver<F>(n: &Notify, run: &Run, host: &str, log_tail: &[LogLine], report: F)
where
    F: Fn(Result<String, String>) + Send + Clone + 'static,
{
    if n.email() {
        let (subject, body) = compose(run, host, log_tail);
        let (n, host, r) = (n.clone(), host.to_string(), report.clone());
        let spawned = std::thread::Builder::new()
            .name("sg-notify-mail".into())
            .spawn(move || {
                r(send(&n, &host, &subject, &body)
                    .map(|()| n.email_to.join(", "))
                    .map_err(|e| format!("{e:#}")))
            });
        // No thread (out of memory or threads): the run's log says so; never panic.
        if let Err(e) = spawned {
            report(Err(format!("cannot start a thread to send the mail: {e}")));
        }
    }
    if n.desktop {
        let note = crate::desktop::Note::for_run(run, host, log_tail);
        let users = n.desktop_users.clone();
        let r = report.clone();
        let spawned = std::thread::Builder::new()
            .name("sg-notify-desktop".into())
            .spawn(move || {
                for outcome in crate::desktop::notify_all(users.as_deref(), &note) {
                    r(outcome);
                }
            });
        if let Err(e) = spawned {
            report(Err(format!(
                "cannot start a thread for desktop notifications: {e}"
            )));
        }
    }
}

/// The message for a finished run: subject and plain-text body.
pub fn compose(run: &Run, host: &str, log_tail: &[LogLine]) -> (String, String) {
    let subject = format!("[snapguard] {} {} on {host}", run.job, run.status.as_str());
    let mut body = format!(
        "Job:      {}\nHost:     {host}\nStatus:   {}\nTrigger:  {}\nStarted:  {}\n",
        run.job,
        run.status.as_str(),
        run.trigger.as_str(),
        crate::render::rfc3339(snapguard_format::Timestamp {
            secs: run.started,
            nanos: 0
        }),
    );
    if let Some(e) = run.ended {
        body.push_str(&format!(
            "Ended:    {} ({} s)\n",
            crate::render::rfc3339(snapguard_format::Timestamp { secs: e, nanos: 0 }),
            e - run.started
        ));
    }
    if let Some(err) = &run.error {
        body.push_str(&format!("Error:    {err}\n"));
    }
    body.push_str(&format!("\nThe whole log: snapguard jobs log {}\n", run.id));
    if !log_tail.is_empty() {
        body.push_str("\nLast lines of the log:\n");
        for l in log_tail {
            body.push_str(&format!("  {:<5} {}\n", l.level, l.line));
        }
    }
    if let Some(s) = &run.summary {
        body.push_str("\nSummary:\n");
        body.push_str(&serde_json::to_string_pretty(s).unwrap_or_default());
        body.push('\n');
    }
    (subject, body)
}

/// Send one message to every recipient of `n`.
pub fn send(n: &Notify, host: &str, subject: &str, body: &str) -> Result<()> {
    if n.email_to.is_empty() {
        bail!("[notify] email_to is empty; give at least one address");
    }
    let from = n
        .email_from
        .clone()
        .unwrap_or_else(|| format!("snapguard@{host}"));
    let from: Mailbox = from
        .parse()
        .with_context(|| format!("[notify] email_from {from:?} is not an e-mail address"))?;
    let mut msg = Message::builder().from(from).subject(subject);
    for to in &n.email_to {
        let mb: Mailbox = to
            .parse()
            .with_context(|| format!("[notify] email_to {to:?} is not an e-mail address"))?;
        msg = msg.to(mb);
    }
    let msg = msg
        .body(body.to_string())
        .context("cannot build the notification message")?;

    let Some(smtp_host) = &n.smtp_host else {
        bail!("[notify] smtp_host is not set");
    };
    let tls = || -> Result<TlsParameters> {
        let mut b = TlsParameters::builder(smtp_host.clone());
        if let Some(ca) = &n.smtp_ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("[notify] cannot read smtp_ca_file {}", ca.display()))?;
            let cert = Certificate::from_pem(&pem).with_context(|| {
                format!(
                    "[notify] smtp_ca_file {} is not a PEM certificate",
                    ca.display()
                )
            })?;
            b = b.add_root_certificate(cert);
        }
        b.build().context("cannot set up TLS for SMTP")
    };
    let (tls, port) = match n.smtp_security {
        SmtpSecurity::Starttls => (Tls::Required(tls()?), 587),
        SmtpSecurity::Tls => (Tls::Wrapper(tls()?), 465),
        SmtpSecurity::None => (Tls::None, 25),
    };
    let mut t = SmtpTransport::builder_dangerous(smtp_host)
        .port(n.smtp_port.unwrap_or(port))
        .tls(tls)
        .timeout(Some(TIMEOUT));
    if n.smtp_user.is_some() && n.smtp_security == SmtpSecurity::None {
        bail!(
            "[notify] smtp_user with smtp_security = \"none\" would send the SMTP password in clear text; use starttls or tls"
        );
    }
    if let Some(user) = &n.smtp_user {
        let Some(file) = &n.smtp_password_file else {
            bail!("[notify] smtp_user is set but smtp_password_file is not");
        };
        let pw = zeroize::Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("[notify] cannot read {}", file.display()))?,
        );
        let pw = pw.lines().next().unwrap_or_default().to_string();
        t = t.credentials(Credentials::new(user.clone(), pw));
    }
    let to = n.email_to.join(", ");
    t.build().send(&msg).with_context(|| {
        format!(
            "cannot send the notification to {to} through {}:{}",
            smtp_host,
            n.smtp_port.unwrap_or(port)
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_sent_without_tls() {
        let n = Notify {
            email_to: vec!["ops@example.com".into()],
            email_from: None,
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: Some(1),
            smtp_security: SmtpSecurity::None,
            smtp_user: Some("me".into()),
            smtp_password_file: Some("/nonexistent".into()),
            smtp_ca_file: None,
            desktop: false,
            desktop_users: None,
        };
        let e = send(&n, "host", "s", "b").expect_err("refused").to_string();
        assert!(e.contains("clear text"), "{e}");
    }
}
