//! `snapguard user …`: the daemon's local accounts (web UI and API logins), kept in the state
//! database (`snapguard_daemon`). Works whether or not the daemon runs: the database allows a
//! writer beside it.

use crate::args::GlobalArgs;
use crate::commands::print_json;
use crate::{render, secrets, usage};
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use snapguard_daemon::users::{HashCost, Role};
use snapguard_daemon::{Error, State, DEFAULT_STATE_DIR};
use std::path::PathBuf;

/// `snapguard user`.
#[derive(Args, Debug)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    /// The daemon's state directory (accounts, job history).
    #[arg(long, env = "SNAPGUARD_STATE_DIR", default_value = DEFAULT_STATE_DIR, global = true,
          value_name = "DIR")]
    pub state_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account; the password comes from SNAPGUARD_NEW_PASSWORD,
    /// --new-password-file or a prompt (at least 10 characters).
    Add(AddArgs),
    /// List the accounts.
    List,
    /// Set an account's password (from the same sources as `add`).
    Passwd(NameArgs),
    /// Remove an account.
    Remove(NameArgs),
    /// Refuse an account's logins without removing it.
    Disable(NameArgs),
    /// Allow a disabled account's logins again.
    Enable(NameArgs),
}

#[derive(Args, Debug)]
pub struct AddArgs {
    pub name: String,
    /// admin (everything), operator (run jobs, restore, edit tags) or viewer (browse).
    #[arg(long, value_parser = ["admin", "operator", "viewer"])]
    pub role: String,
    /// Read the password from this file.
    #[arg(long)]
    pub new_password_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    pub name: String,
    /// Read the password from this file (passwd only).
    #[arg(long)]
    pub new_password_file: Option<PathBuf>,
}

fn now() -> i64 {
    render::now().secs
}

/// Invalid input is a usage error (exit code 2); the rest keeps its message.
fn convert(e: Error) -> anyhow::Error {
    match e {
        Error::Invalid(m) => usage!("{m}"),
        Error::UserExists(_) | Error::NoUser(_) => usage!("{e}"),
        e => anyhow::Error::new(e),
    }
}

fn password(file: Option<&std::path::Path>) -> Result<String> {
    let pw = secrets::new_secret(file)?;
    String::from_utf8(pw.to_vec()).map_err(|_| usage!("the password is not UTF-8 text"))
}

pub fn run(g: &GlobalArgs, a: &UserArgs) -> Result<i32> {
    let state = State::open(&a.state_dir).map_err(convert)?;
    let cost = HashCost::default();
    match &a.command {
        UserCommand::Add(x) => {
            let role = Role::parse(&x.role).map_err(convert)?;
            snapguard_daemon::users::check_user_name(&x.name).map_err(convert)?;
            let pw = zeroize::Zeroizing::new(password(x.new_password_file.as_deref())?);
            let u = state
                .add_user(&x.name, role, &pw, now(), &cost)
                .map_err(convert)?;
            if g.json {
                print_json(&json!({"name": u.name, "role": u.role, "created": u.created}))?;
            } else {
                println!("created user {} ({})", u.name, u.role.as_str());
            }
        }
        UserCommand::List => {
            let users = state.users().map_err(convert)?;
            if g.json {
                print_json(&json!(users))?;
            } else if users.is_empty() {
                println!(
                    "no accounts in {}; create one with 'snapguard user add NAME --role admin'",
                    a.state_dir.display()
                );
            } else {
                for u in users {
                    println!(
                        "{:<24} {:<9} created {}{}",
                        u.name,
                        u.role.as_str(),
                        render::local(snapguard_format::Timestamp {
                            secs: u.created,
                            nanos: 0
                        }),
                        if u.disabled { "  (disabled)" } else { "" }
                    );
                }
            }
        }
        UserCommand::Passwd(x) => {
            if !state
                .users()
                .map_err(convert)?
                .iter()
                .any(|u| u.name == x.name)
            {
                return Err(convert(Error::NoUser(x.name.clone())));
            }
            let pw = zeroize::Zeroizing::new(password(x.new_password_file.as_deref())?);
            state.set_password(&x.name, &pw, &cost).map_err(convert)?;
            println!("password of {} changed", x.name);
        }
        UserCommand::Remove(x) => {
            state.remove_user(&x.name).map_err(convert)?;
            println!("removed user {}", x.name);
        }
        UserCommand::Disable(x) | UserCommand::Enable(x) => {
            let off = matches!(a.command, UserCommand::Disable(_));
            state.set_disabled(&x.name, off).map_err(convert)?;
            println!("{} {}", if off { "disabled" } else { "enabled" }, x.name);
        }
    }
    Ok(0)
}
