//! `snapguard local send`: btrbk-style replication of a configuration's snapshots to another
//! btrfs filesystem, local or over ssh (docs/local-send.md). Parses, calls
//! `snapguard_local::send` and renders.

use crate::args::GlobalArgs;
use crate::commands::print_json;
use crate::local::{numbers_text, open_store};
use crate::{render, usage};
use anyhow::Result;
use clap::Args;
use snapguard_local::send::{send, SendOptions, Target, TargetRetention};
use snapguard_policy::LocalRetention;

/// `local send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// The configuration ([local.NAME] in the config file).
    #[arg(id = "config_name", value_name = "CONFIG")]
    pub config: String,
    /// Where to: a directory on another btrfs filesystem (/mnt/backup), or
    /// ssh://[user@]host[:port]/path (runs 'btrfs receive' there). Snapshots go to
    /// TARGET/CONFIG/N.
    #[arg(long, value_name = "TARGET", value_parser = Target::parse)]
    pub to: Target,
    /// Keep only the newest N snapshots on the target (older ones sent earlier are deleted
    /// there; the source is not touched).
    #[arg(long, value_name = "N", conflicts_with = "target_retention")]
    pub keep: Option<u32>,
    /// Thin the target with Snapper-style rules, KEY=VALUE pairs separated by commas, with the
    /// keys of [local.NAME.retention] (e.g. "daily=7,weekly=4,number_limit=10"); keys left out
    /// have their defaults.
    #[arg(long, value_name = "RULES", value_parser = parse_retention)]
    pub target_retention: Option<LocalRetention>,
    /// The ssh command for ssh:// targets, with options (e.g. "ssh -i /root/.ssh/backup").
    #[arg(
        long,
        env = "SNAPGUARD_RSH",
        value_name = "COMMAND",
        default_value = "ssh"
    )]
    pub ssh_command: String,
    /// Show what would be sent and deleted; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// `daily=7,number_limit=2-10` → the retention, read with the config file's own rules.
fn parse_retention(s: &str) -> Result<LocalRetention, String> {
    let mut toml_text = String::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!(
                "{pair:?} is not KEY=VALUE; write e.g. \"daily=7,number_limit=10\""
            ));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(format!("{k:?} is not a retention key"));
        }
        let value = if v.parse::<i64>().is_ok() || v.parse::<f64>().is_ok() {
            v.to_string()
        } else {
            format!("{v:?}")
        };
        toml_text.push_str(&format!("{k} = {value}\n"));
    }
    if toml_text.is_empty() {
        return Err("give at least one KEY=VALUE rule".into());
    }
    toml::from_str::<LocalRetention>(&toml_text).map_err(|e| e.message().to_string())
}

/// Split a command line at spaces, honouring single and double quotes and backslashes.
fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unbalanced ' in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err(format!("trailing \\ in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unbalanced \" in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err(format!("trailing \\ in {s:?}")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

pub fn run(g: &GlobalArgs, a: &SendArgs) -> Result<i32> {
    let ssh = split_command(&a.ssh_command).map_err(|e| usage!("--ssh-command: {e}"))?;
    if ssh.is_empty() {
        return Err(usage!("--ssh-command is empty"));
    }
    let store = open_store(g, &a.config)?;
    let retention = match (a.keep, &a.target_retention) {
        (Some(n), _) => TargetRetention::Newest(n),
        (None, Some(r)) => TargetRetention::Policy(Box::new(r.clone())),
        (None, None) => TargetRetention::KeepAll,
    };
    let report = send(
        &store,
        &a.to,
        &SendOptions {
            retention,
            ssh_command: ssh,
            dry_run: a.dry_run,
            now: chrono::Utc::now().timestamp(),
        },
    )?;
    if g.json {
        return print_json(&serde_json::to_value(&report)?);
    }
    let would = if a.dry_run { "would " } else { "" };
    for p in &report.removed_partial {
        println!("{would}remove the incomplete receive {p} from the target");
    }
    if report.sent.is_empty() && report.already_present.is_empty() {
        println!(
            "nothing to send: {} has no read-only snapshots (take one with 'snapguard local \
             create {}')",
            a.config, a.config
        );
    } else if report.sent.is_empty() {
        println!(
            "nothing to send: the target is up to date (newest common snapshot: {})",
            report
                .common_parent
                .map_or_else(|| "none".to_string(), |n| n.to_string())
        );
    }
    for s in &report.sent {
        let how = match s.parent {
            Some(p) => format!("incremental from {p}"),
            None => "full".to_string(),
        };
        if a.dry_run {
            println!("would send snapshot {} ({how})", s.number);
        } else {
            println!(
                "sent snapshot {} ({how}, {} in {:.1} s)",
                s.number,
                render::size(s.bytes),
                s.seconds
            );
        }
    }
    if !report.deleted.is_empty() {
        println!(
            "{would}delete on the target (retention): {}",
            numbers_text(&report.deleted)
        );
    }
    for e in &report.left_alone {
        eprintln!(
            "warning: {}/{}/{e} is not a snapshot received by 'snapguard local send' (no \
             read-only received subvolume in it); it was left alone",
            a.to, a.config
        );
    }
    if !report.skipped_writable.is_empty() {
        eprintln!(
            "warning: writable snapshots cannot be sent and were skipped: {}",
            numbers_text(&report.skipped_writable)
        );
    }
    Ok(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retention_rules() {
        let r = parse_retention("daily=3, number_limit=2-10,min_age=1h,free_limit=0.1").unwrap();
        assert_eq!(r.daily.max(), 3);
        assert_eq!((r.number_limit.min(), r.number_limit.max()), (2, 10));
        assert_eq!(r.min_age, 3600);
        assert_eq!(r.free_limit, 0.1);
        assert_eq!(r.hourly, LocalRetention::default().hourly);
        assert!(parse_retention("dayly=3").is_err());
        assert!(parse_retention("daily").is_err());
        assert!(parse_retention("").is_err());
        assert!(parse_retention("daily=x").is_err());
    }

    #[test]
    fn command_splitting() {
        assert_eq!(
            split_command(r#"ssh -i '/my key' -o "A=b c" x\ y"#).unwrap(),
            vec!["ssh", "-i", "/my key", "-o", "A=b c", "x y"]
        );
        assert!(split_command("ssh 'x").is_err());
        assert_eq!(split_command("  ").unwrap(), Vec::<String>::new());
    }
}
