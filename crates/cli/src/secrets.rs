//! Getting passwords and key files from the user, without ever logging them.

use crate::args::{GlobalArgs, KdfArgs, KeyNewSecretArgs};
use anyhow::{bail, Context, Result};
use snapguard_crypto::Argon2Params;
use snapguard_engine::Secret;
use std::io::IsTerminal;
use std::path::Path;
use zeroize::Zeroizing;

fn strip_newline(mut v: Vec<u8>) -> Zeroizing<Vec<u8>> {
    if let Some(pos) = v.iter().position(|&b| b == b'\n') {
        // First line only, like restic; a trailing "\r" from Windows editors goes too.
        v.truncate(pos);
        if v.last() == Some(&b'\r') {
            v.pop();
        }
    }
    Zeroizing::new(v)
}

fn read_password_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read password file {}", path.display()))?;
    Ok(strip_newline(bytes))
}

fn run_password_command(cmd: &str) -> Result<Zeroizing<Vec<u8>>> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| "cannot run the password command".to_string())?;
    if !out.status.success() {
        bail!("the password command failed ({}); check SNAPGUARD_PASSWORD_COMMAND / --password-command", out.status);
    }
    Ok(strip_newline(out.stdout))
}

fn prompt(text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let p =
        rpassword::prompt_password(text).context("cannot read the password from the terminal")?;
    Ok(Zeroizing::new(p.into_bytes()))
}

/// The secrets to try when opening a repository, in order.
pub fn opening_secrets(g: &GlobalArgs) -> Result<Vec<Secret>> {
    let mut out = Vec::new();
    if let Some(kf) = &g.key_file {
        let bytes =
            std::fs::read(kf).with_context(|| format!("cannot read key file {}", kf.display()))?;
        out.push(Secret::KeyFile(Zeroizing::new(bytes)));
    }
    if let Some(pw) = explicit_password(g)? {
        out.push(Secret::Password(pw));
    }
    if out.is_empty() {
        if std::io::stdin().is_terminal() {
            out.push(Secret::Password(prompt("Repository password: ")?));
        } else {
            bail!(no_password_message());
        }
    }
    Ok(out)
}

fn no_password_message() -> &'static str {
    "no password given: set SNAPGUARD_PASSWORD, SNAPGUARD_PASSWORD_FILE or SNAPGUARD_PASSWORD_COMMAND (or the matching options), or run on a terminal to be asked"
}

fn explicit_password(g: &GlobalArgs) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if let Some(f) = &g.password_file {
        return Ok(Some(read_password_file(f)?));
    }
    if let Some(c) = &g.password_command {
        return Ok(Some(run_password_command(c)?));
    }
    if let Ok(p) = std::env::var("SNAPGUARD_PASSWORD") {
        return Ok(Some(Zeroizing::new(p.into_bytes())));
    }
    Ok(None)
}

/// The secret for a new repository's first slot.
pub fn init_secret(g: &GlobalArgs) -> Result<Secret> {
    if let Some(kf) = &g.key_file {
        let bytes = load_or_create_key_file(kf)?;
        return Ok(Secret::KeyFile(bytes));
    }
    if let Some(pw) = explicit_password(g)? {
        check_new_password(&pw)?;
        return Ok(Secret::Password(pw));
    }
    if std::io::stdin().is_terminal() {
        return Ok(Secret::Password(prompt_new(
            "Password for the new repository: ",
        )?));
    }
    bail!(no_password_message())
}

fn check_new_password(pw: &[u8]) -> Result<()> {
    if pw.is_empty() {
        bail!("the password is empty; choose a non-empty password");
    }
    Ok(())
}

fn prompt_new(text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let a = prompt(text)?;
    let b = prompt("Enter it again: ")?;
    if a != b {
        bail!("the two passwords differ; nothing was changed");
    }
    check_new_password(&a)?;
    Ok(a)
}

/// A new password for `key add` / `key passwd`.
pub fn new_password(args: &KeyNewSecretArgs) -> Result<Zeroizing<Vec<u8>>> {
    new_secret(args.new_password_file.as_deref())
}

/// A new password from `file`, else SNAPGUARD_NEW_PASSWORD, else a prompt (asked twice).
pub fn new_secret(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>> {
    let pw = if let Some(f) = file {
        read_password_file(f)?
    } else if let Ok(p) = std::env::var("SNAPGUARD_NEW_PASSWORD") {
        Zeroizing::new(p.into_bytes())
    } else if std::io::stdin().is_terminal() {
        prompt_new("New password: ")?
    } else {
        bail!("no new password given: set SNAPGUARD_NEW_PASSWORD or use --new-password-file");
    };
    check_new_password(&pw)?;
    Ok(pw)
}

/// Read a key file, or create it (0600, 32 random bytes as hex) if it does not exist.
pub fn load_or_create_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) if b.is_empty() => bail!("key file {} is empty", path.display()),
        Ok(b) => Ok(Zeroizing::new(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let key: [u8; 32] = snapguard_crypto::random_bytes(&mut snapguard_crypto::OsRng);
            let text = Zeroizing::new(format!("{}\n", hex::encode(key)).into_bytes());
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create key file {}", path.display()))?;
            f.write_all(&text)
                .and_then(|_| f.sync_all())
                .with_context(|| format!("cannot write key file {}", path.display()))?;
            eprintln!("created key file {}; keep it safe: without it (or another key slot) the repository cannot be opened", path.display());
            Ok(text)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read key file {}", path.display())),
    }
}

/// Argon2id parameters from the command line.
pub fn kdf_params(k: &KdfArgs) -> Argon2Params {
    let d = Argon2Params::DEFAULT;
    Argon2Params {
        memory_kib: k.kdf_memory_kib.unwrap_or(d.memory_kib),
        iterations: k.kdf_iterations.unwrap_or(d.iterations),
        parallelism: d.parallelism,
    }
}
