//! `local install-apt-hook`: installs `contrib/apt/snapguard-apt-hook` (embedded in the binary)
//! and an apt configuration snippet, `80snapguard`, whose `DPkg::Pre-Invoke` and
//! `DPkg::Post-Invoke` commands run it. The hook script does the work (docs/local.md).

use super::InstallAptHookArgs;
use crate::args::GlobalArgs;
use crate::commands::print_json;
use crate::usage;
use anyhow::{Context, Result};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The hook script, shipped in the repository.
pub const HOOK_SCRIPT: &str = include_str!("../../../../contrib/apt/snapguard-apt-hook");
/// The name of the apt configuration snippet (after Snapper's 80snapper).
pub const APT_CONF_NAME: &str = "80snapguard";

/// `'…'` for sh, refusing what apt.conf strings cannot hold (double quotes, newlines).
fn sh_quote(what: &str, s: &str) -> Result<String> {
    if s.contains(['"', '\n', '\'']) || s.is_empty() {
        return Err(usage!(
            "{what} {s:?} cannot be written into an apt configuration line (it is empty or \
             contains a quote or a newline); choose another"
        ));
    }
    Ok(format!("'{s}'"))
}

/// The text of `80snapguard`.
fn apt_conf(hook: &str, env: &str) -> String {
    format!(
        "// SnapGuard: a pre/post pair of local btrfs snapshots around every dpkg run.\n\
         // Written by 'snapguard local install-apt-hook'; delete this file to turn it off, or\n\
         // set SNAPGUARD_APT_DISABLE=1 for one apt run. The hook always exits 0, so a snapshot\n\
         // problem never stops apt (it prints a warning instead); see docs/local.md.\n\
         DPkg::Pre-Invoke {{ \"if [ -x {hook} ]; then {env} {hook} pre; fi || true\"; }};\n\
         DPkg::Post-Invoke {{ \"if [ -x {hook} ]; then {env} {hook} post; fi || true\"; }};\n"
    )
}

/// Writes `path` through a temporary file renamed into place, with `mode`.
fn install_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the permissions of {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot install {}", path.display()))?;
    Ok(())
}

pub fn install(g: &GlobalArgs, a: &InstallAptHookArgs) -> Result<i32> {
    let names: Vec<String> = if a.config_names.is_empty() {
        let roots: Vec<String> = g
            .settings
            .local
            .iter()
            .filter(|(_, c)| c.subvolume == Path::new("/"))
            .map(|(n, _)| n.clone())
            .collect();
        if roots.is_empty() {
            return Err(usage!(
                "no [local.NAME] section of the config file has subvolume = \"/\", so there is \
                 no root filesystem configuration to snapshot around apt runs; name the \
                 configurations with --config-name NAME"
            ));
        }
        roots
    } else {
        for n in &a.config_names {
            g.settings.local(n)?;
        }
        a.config_names.clone()
    };
    if !a.hook_path.is_absolute() {
        return Err(usage!(
            "--hook-path {} must be absolute: apt runs the hook from any directory",
            a.hook_path.display()
        ));
    }
    let exe = std::env::current_exe().context("cannot find the snapguard binary's path")?;
    let mut env = vec![
        format!(
            "SNAPGUARD={}",
            sh_quote("the snapguard binary's path", &exe.to_string_lossy())?
        ),
        format!(
            "SNAPGUARD_APT_CONFIGS={}",
            sh_quote("config names", &names.join(" "))?
        ),
    ];
    // A config file named explicitly (--config, SNAPGUARD_CONFIG) must be the one apt uses too.
    if let Some(cfg) = &g.config {
        let abs = std::path::absolute(cfg).unwrap_or_else(|_| cfg.clone());
        env.push(format!(
            "SNAPGUARD_CONFIG={}",
            sh_quote("the config file's path", &abs.to_string_lossy())?
        ));
    }
    let hook = sh_quote("--hook-path", &a.hook_path.to_string_lossy())?;
    install_file(&a.hook_path, HOOK_SCRIPT, 0o755)?;
    let conf = a.dir.join(APT_CONF_NAME);
    install_file(&conf, &apt_conf(&hook, &env.join(" ")), 0o644)?;
    if g.json {
        return print_json(&json!({
            "apt_conf": conf.display().to_string(),
            "hook": a.hook_path.display().to_string(),
            "configs": names,
        }));
    }
    if !g.quiet {
        println!("installed {}", a.hook_path.display());
        println!(
            "installed {}: every apt run now takes pre/post snapshots of {}",
            conf.display(),
            names.join(", ")
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_lines_quote_and_guard_the_hook() {
        let c = apt_conf(
            "'/usr/lib/h'",
            "SNAPGUARD='/bin/sg' SNAPGUARD_APT_CONFIGS='root'",
        );
        assert!(c.contains(
            "DPkg::Pre-Invoke { \"if [ -x '/usr/lib/h' ]; then SNAPGUARD='/bin/sg' \
             SNAPGUARD_APT_CONFIGS='root' '/usr/lib/h' pre; fi || true\"; };"
        ));
        assert!(c.contains("DPkg::Post-Invoke"));
        assert!(sh_quote("x", "a'b").is_err());
        assert!(sh_quote("x", "a\"b").is_err());
        assert_eq!(sh_quote("x", "/a b").expect("quotable"), "'/a b'");
        assert!(HOOK_SCRIPT.starts_with("#!/bin/sh"));
    }
}
