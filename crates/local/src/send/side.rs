//! The far side of a replication: a directory on another btrfs filesystem of this machine, or
//! one reached through `ssh`. Both offer the same few operations on `<base>/<CONFIG>`: list
//! the entries with their subvolume identities, receive a stream into a temporary entry,
//! verify and finish it, and remove an entry.
//!
//! Over ssh every operation is one `ssh HOST sh -c '…'` with every path single-quoted; the far
//! side needs a POSIX `sh`, `btrfs` (btrfs-progs) and the right to run `btrfs receive` and
//! `btrfs subvolume delete` (root, as for btrbk). Subvolume identities come from
//! `btrfs subvolume show`, whose `Key: value` lines have been stable since btrfs-progs 4.

use crate::{Error, Result};
use snapguard_btrfs::Uuid;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The name of the subvolume inside an entry (as in the snapshot store).
pub(crate) const SNAPSHOT: &str = "snapshot";
/// The description next to it.
pub(crate) const INFO: &str = "info.json";
/// Entries being received: `.incoming-<N>`, renamed to `<N>` only when complete.
pub(crate) const INCOMING_PREFIX: &str = ".incoming-";

/// Where snapshots are replicated to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A directory on a btrfs filesystem of this machine.
    Local(PathBuf),
    /// `ssh://[user@]host[:port]/path`.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        path: PathBuf,
    },
}

impl Target {
    /// Parse a target: an absolute local path, or `ssh://[user@]host[:port]/path` (an IPv6
    /// host in brackets).
    pub fn parse(s: &str) -> std::result::Result<Target, String> {
        if let Some(rest) = s.strip_prefix("ssh://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            if path.len() <= 1 {
                return Err(format!(
                    "{s:?} has no path: write ssh://[user@]host[:port]/absolute/path"
                ));
            }
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
                Some(_) => return Err(format!("{s:?} has an empty user name")),
                None => (None, authority),
            };
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let Some((h, after)) = v6.split_once(']') else {
                    return Err(format!("{s:?}: an IPv6 address needs a closing ']'"));
                };
                match after.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None if after.is_empty() => (h, None),
                    None => return Err(format!("{s:?}: unexpected {after:?} after the host")),
                }
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (hostport, None),
                }
            };
            // ssh hands the host and user to ssh_config tokens (%h, %r) that a ProxyCommand or
            // Match exec runs through a shell: only hostname, IP address and user-name
            // characters are accepted, so none of them can be shell syntax.
            let host_ok = !host.is_empty()
                && !host.starts_with('-')
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'%')
                });
            if !host_ok {
                return Err(format!(
                    "{s:?} has no valid host name: give a host name or an IP address (an IPv6 \
                     address in brackets)"
                ));
            }
            if let Some(u) = &user {
                let user_ok = !u.starts_with('-')
                    && u.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
                if !user_ok {
                    return Err(format!(
                        "{s:?}: {u:?} is not a valid user name (letters, digits, '-', '.', '_')"
                    ));
                }
            }
            let port = match port {
                Some(p) => Some(
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| format!("{s:?}: {p:?} is not a port number"))?,
                ),
                None => None,
            };
            Ok(Target::Ssh {
                user,
                host: host.to_string(),
                port,
                path: PathBuf::from(path),
            })
        } else if s.contains("://") {
            Err(format!(
                "{s:?}: only local paths and ssh://[user@]host[:port]/path targets are supported"
            ))
        } else if s.starts_with('/') {
            Ok(Target::Local(PathBuf::from(s)))
        } else {
            Err(format!(
                "{s:?} is not an absolute path; give the target directory as /path or \
                 ssh://host/path"
            ))
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Local(p) => write!(f, "{}", p.display()),
            Target::Ssh {
                user,
                host,
                port,
                path,
            } => {
                f.write_str("ssh://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                if host.contains(':') {
                    write!(f, "[{host}]")?;
                } else {
                    f.write_str(host)?;
                }
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                write!(f, "{}", path.display())
            }
        }
    }
}

/// The identity of a subvolume on the far side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SubvolFacts {
    pub uuid: Option<Uuid>,
    pub parent_uuid: Option<Uuid>,
    pub received_uuid: Option<Uuid>,
    pub readonly: bool,
}

/// One entry of `<base>/<CONFIG>` on the far side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TargetEntry {
    /// `N` or `.incoming-N`.
    pub name: String,
    /// The subvolume `<entry>/snapshot`, if there is one.
    pub subvolume: Option<SubvolFacts>,
    /// The contents of `<entry>/info.json`, if present.
    pub info: Option<Vec<u8>>,
}

/// A connection to the far side, for one configuration's directory.
pub(crate) struct Side {
    target: Target,
    /// `<base>/<CONFIG>`.
    dir: PathBuf,
    /// The ssh program and its options.
    ssh: Vec<String>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn qpath(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

impl Side {
    pub(crate) fn new(target: &Target, config: &str, ssh: &[String]) -> Side {
        let base = match target {
            Target::Local(p) => p,
            Target::Ssh { path, .. } => path,
        };
        Side {
            target: target.clone(),
            dir: base.join(config),
            ssh: if ssh.is_empty() {
                vec!["ssh".to_string()]
            } else {
                ssh.to_vec()
            },
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn err(&self, detail: impl Into<String>) -> Error {
        Error::Send {
            config: self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            target: self.target.to_string(),
            detail: detail.into(),
        }
    }

    /// The `ssh` command line that runs `script` with `sh` on the far side.
    pub(crate) fn ssh_command(&self, script: &str) -> Option<Command> {
        let Target::Ssh {
            user, host, port, ..
        } = &self.target
        else {
            return None;
        };
        let mut cmd = Command::new(&self.ssh[0]);
        cmd.args(&self.ssh[1..]);
        if let Some(p) = port {
            cmd.arg("-p").arg(p.to_string());
        }
        let dest = match user {
            Some(u) => format!("{u}@{host}"),
            None => host.clone(),
        };
        cmd.arg("--")
            .arg(dest)
            .arg(format!("sh -c {}", quote(script)));
        Some(cmd)
    }

    /// Run `script` on the far side (with `input` on its standard input); its output.
    fn remote(&self, what: &str, script: &str, input: Option<&[u8]>) -> Result<Vec<u8>> {
        let Some(mut cmd) = self.ssh_command(script) else {
            return Err(Error::Internal("remote command for a local target".into()));
        };
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| self.err(format!("cannot run {:?} to {what}: {e}", self.ssh[0])))?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(data)
                .map_err(|e| self.err(format!("{what}: writing to ssh: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| self.err(format!("{what}: {e}")))?;
        if !out.status.success() {
            return Err(self.err(format!(
                "{what} failed on the far side ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(out.stdout)
    }

    /// Create `<base>/<CONFIG>` and check that it is on btrfs.
    pub(crate) fn prepare(&self) -> Result<()> {
        match &self.target {
            Target::Local(base) => {
                if !base.is_dir() {
                    return Err(self.err(format!(
                        "{} does not exist or is not a directory; create it on the target \
                         btrfs filesystem first",
                        base.display()
                    )));
                }
                let is = snapguard_btrfs::is_btrfs(base).map_err(|e| self.err(e.to_string()))?;
                if !is {
                    return Err(self.err(format!(
                        "{} is not on a btrfs filesystem; 'btrfs receive' needs one",
                        base.display()
                    )));
                }
                // 0750 like a snapshot directory: old snapshots may hold files whose
                // permissions were tightened since.
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o750)
                    .create(&self.dir)
                    .map_err(|e| Error::io("create", &self.dir, e))?;
                Ok(())
            }
            Target::Ssh { path, .. } => {
                let script =
                    format!(
                    "set -e; [ -d {base} ] || {{ echo \"{base_show} does not exist or is not a \
                     directory\" >&2; exit 1; }}; \
                     [ \"$(stat -f -c %T {base})\" = btrfs ] || {{ echo \"{base_show} is not on \
                     btrfs\" >&2; exit 1; }}; command -v btrfs >/dev/null || {{ echo \"btrfs \
                     (btrfs-progs) is not installed\" >&2; exit 1; }}; mkdir -p -m 750 {dir}",
                    base = qpath(path),
                    base_show = path.display().to_string().replace(['"', '$', '`', '\\'], "?"),
                    dir = qpath(&self.dir),
                );
                self.remote("prepare the target directory", &script, None)
                    .map(|_| ())
            }
        }
    }

    /// Every entry `N` or `.incoming-N` of `<base>/<CONFIG>` (directories, not symlinks); none
    /// while that directory does not exist.
    pub(crate) fn list(&self) -> Result<Vec<TargetEntry>> {
        match &self.target {
            Target::Local(_) => self.list_local(),
            Target::Ssh { .. } => {
                let script = format!(
                    "[ -e {dir} ] || exit 0; cd {dir} || exit 1; for e in [1-9]* {inc}*; do \
                     [ -d \"$e\" ] && [ ! -L \"$e\" ] || continue; echo \"@@entry $e\"; \
                     if [ -f \"$e/{info}\" ]; then echo '@@info'; cat \"$e/{info}\"; echo; \
                     echo '@@end'; fi; \
                     if [ -d \"$e/{snap}\" ]; then echo '@@show'; \
                     btrfs subvolume show \"$e/{snap}\" 2>&1 || echo '@@notsubvol'; \
                     echo '@@end'; fi; done",
                    dir = qpath(&self.dir),
                    inc = INCOMING_PREFIX,
                    info = INFO,
                    snap = SNAPSHOT,
                );
                let out = self.remote("list the target directory", &script, None)?;
                Ok(parse_listing(&String::from_utf8_lossy(&out)))
            }
        }
    }

    fn list_local(&self) -> Result<Vec<TargetEntry>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            // Not made yet (a dry run before the first send).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list", &self.dir, e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("list", &self.dir, e))?;
            let Some(name) = ent.file_name().to_str().map(str::to_string) else {
                continue;
            };
            // Never through a symlink: removing an entry must not reach outside the directory.
            let is_dir = ent.file_type().is_ok_and(|t| t.is_dir());
            if entry_number(&name).is_none() || !is_dir {
                continue;
            }
            let sub = ent.path().join(SNAPSHOT);
            let subvolume = match snapguard_btrfs::is_subvolume(&sub) {
                Ok(true) => {
                    let i = snapguard_btrfs::subvolume_info(&sub)
                        .map_err(|e| self.err(e.to_string()))?;
                    Some(SubvolFacts {
                        uuid: Some(i.uuid),
                        parent_uuid: i.parent_uuid,
                        received_uuid: i.received_uuid,
                        readonly: i.readonly,
                    })
                }
                // Not a subvolume (or missing): what a very early interruption leaves.
                _ => None,
            };
            let info = std::fs::read(ent.path().join(INFO)).ok();
            out.push(TargetEntry {
                name,
                subvolume,
                info,
            });
        }
        out.sort_by_key(|e| entry_number(&e.name));
        Ok(out)
    }

    /// Remove entry `name` completely: its subvolume (if any), then the directory.
    pub(crate) fn remove(&self, name: &str) -> Result<()> {
        if entry_number(name).is_none() {
            return Err(Error::Internal(format!("refusing to remove {name:?}")));
        }
        let entry = self.dir.join(name);
        match &self.target {
            Target::Local(_) => {
                let sub = entry.join(SNAPSHOT);
                if snapguard_btrfs::is_subvolume(&sub).unwrap_or(false) {
                    snapguard_btrfs::delete_subvolume(&sub).map_err(|e| self.err(e.to_string()))?;
                }
                match std::fs::remove_dir_all(&entry) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(Error::io("remove", &entry, e)),
                }
            }
            Target::Ssh { .. } => {
                let script = format!(
                    "set -e; cd {dir}; if [ -d {sub} ] && [ \"$(stat -c %i {sub})\" = 256 ]; \
                     then btrfs subvolume delete {sub} >/dev/null; fi; rm -rf {e}",
                    dir = qpath(&self.dir),
                    sub = quote(&format!("{name}/{SNAPSHOT}")),
                    e = quote(name),
                );
                self.remote(&format!("remove {name}"), &script, None)
                    .map(|_| ())
            }
        }
    }

    /// Start `btrfs receive` into the entry `name` (created first); the caller writes the
    /// stream to its standard input.
    pub(crate) fn spawn_receive(&self, name: &str) -> Result<Child> {
        let entry = self.dir.join(name);
        let mut cmd = match &self.target {
            Target::Local(_) => {
                std::fs::create_dir(&entry).map_err(|e| Error::io("create", &entry, e))?;
                let mut c = Command::new("btrfs");
                c.arg("receive").arg(&entry);
                c
            }
            Target::Ssh { .. } => {
                let script = format!("mkdir {e} && exec btrfs receive {e}", e = qpath(&entry));
                match self.ssh_command(&script) {
                    Some(c) => c,
                    None => return Err(Error::Internal("ssh command".into())),
                }
            }
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.spawn()
            .map_err(|e| self.err(format!("cannot start btrfs receive: {e}")))
    }

    /// The identity of the subvolume received into entry `name`.
    pub(crate) fn facts(&self, name: &str) -> Result<Option<SubvolFacts>> {
        Ok(self
            .list()?
            .into_iter()
            .find(|e| e.name == name)
            .and_then(|e| e.subvolume))
    }

    /// Write `info` into entry `from` and rename it to `to`, durably.
    pub(crate) fn finish(&self, from: &str, to: &str, info: &[u8]) -> Result<()> {
        let (src, dst) = (self.dir.join(from), self.dir.join(to));
        match &self.target {
            Target::Local(_) => {
                crate::files::write_atomic(&src, INFO, info)?;
                if dst.exists() {
                    return Err(self.err(format!("{} appeared meanwhile", dst.display())));
                }
                std::fs::rename(&src, &dst).map_err(|e| Error::io("rename into place", &dst, e))?;
                crate::files::fsync_dir(&self.dir)
            }
            Target::Ssh { .. } => {
                let script = format!(
                    "set -e; cd {dir}; cat > {tmp}; sync; mv {tmp} {info}; \
                     if [ -e {to} ]; then echo '{to_show} appeared meanwhile' >&2; exit 1; fi; \
                     mv {from} {to}; sync",
                    dir = qpath(&self.dir),
                    tmp = quote(&format!("{from}/.{INFO}.tmp")),
                    info = quote(&format!("{from}/{INFO}")),
                    from = quote(from),
                    to = quote(to),
                    to_show = to,
                );
                self.remote(&format!("finish {to}"), &script, Some(info))
                    .map(|_| ())
            }
        }
    }
}

/// `N` → `Some(N)`, `.incoming-N` → `Some(N)`, anything else `None`.
pub(crate) fn entry_number(name: &str) -> Option<u32> {
    crate::store::parse_number(name.strip_prefix(INCOMING_PREFIX).unwrap_or(name))
}

/// Parse the output of the listing script.
fn parse_listing(text: &str) -> Vec<TargetEntry> {
    let mut out: Vec<TargetEntry> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("@@entry ") {
            if entry_number(name).is_some() {
                out.push(TargetEntry {
                    name: name.to_string(),
                    subvolume: None,
                    info: None,
                });
            }
            continue;
        }
        let section = match line {
            "@@info" | "@@show" => line,
            _ => continue,
        };
        let mut body = Vec::new();
        for l in lines.by_ref() {
            if l == "@@end" {
                break;
            }
            body.push(l);
        }
        let Some(entry) = out.last_mut() else {
            continue;
        };
        if section == "@@info" {
            entry.info = Some(body.join("\n").into_bytes());
        } else if !body.contains(&"@@notsubvol") {
            entry.subvolume = parse_show(&body);
        }
    }
    out.sort_by_key(|e| entry_number(&e.name));
    out
}

/// The identity in the output of `btrfs subvolume show`; `None` if it has no UUID line.
pub(crate) fn parse_show(lines: &[&str]) -> Option<SubvolFacts> {
    let mut f = SubvolFacts::default();
    let uuid = |v: &str| v.parse::<Uuid>().ok().filter(|u| !u.is_nil());
    for line in lines {
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "UUID" => f.uuid = uuid(value),
            "Parent UUID" => f.parent_uuid = uuid(value),
            "Received UUID" => f.received_uuid = uuid(value),
            "Flags" => {
                f.readonly = value
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .any(|w| w == "readonly")
            }
            _ => {}
        }
    }
    f.uuid.is_some().then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("/mnt/backup"),
            Ok(Target::Local("/mnt/backup".into()))
        );
        assert_eq!(
            Target::parse("ssh://root@nas:2222/srv/snaps"),
            Ok(Target::Ssh {
                user: Some("root".into()),
                host: "nas".into(),
                port: Some(2222),
                path: "/srv/snaps".into()
            })
        );
        assert_eq!(
            Target::parse("ssh://[::1]:22/x"),
            Ok(Target::Ssh {
                user: None,
                host: "::1".into(),
                port: Some(22),
                path: "/x".into()
            })
        );
        let t = Target::parse("ssh://backup@host/p").expect("parse");
        assert_eq!(t.to_string(), "ssh://backup@host/p");
        for bad in [
            "relative/path",
            "ssh://host",
            "ssh://host/",
            "ssh://host:0/x",
            "ssh://host:x/x",
            "ssh://-oProxyCommand=x/p",
            "ssh://@host/p",
            "s3://bucket/x",
            "ssh://[::1/x",
            // Shell syntax in the host or user never reaches ssh (ProxyCommand %h, %r).
            "ssh://h;touch${IFS}x/p",
            "ssh://$(id)/p",
            "ssh://`id`@h/p",
            "ssh://a'b@h/p",
            "ssh://-u@h/p",
            "ssh://h|id/p",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ssh_command_quotes_everything() {
        let t = Target::parse("ssh://u@h:2200/b a'se").expect("parse");
        let side = Side::new(&t, "data", &["ssh".into(), "-i".into(), "/k".into()]);
        let cmd = side.ssh_command("echo 'hi'").expect("ssh");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.get_program(), "ssh");
        assert_eq!(
            args,
            vec![
                "-i",
                "/k",
                "-p",
                "2200",
                "--",
                "u@h",
                "sh -c 'echo '\\''hi'\\'''"
            ]
        );
        assert_eq!(qpath(side.dir()), "'/b a'\\''se/data'");
    }

    #[test]
    fn parses_listing_and_show() {
        let text = "\
@@entry 3
@@info
{\"number\": 3,
 \"description\": \"@@end in text is fine\"}
@@end
@@show
snapshot
\tName: \t\t\tsnapshot
\tUUID: \t\t\t0b5a2f4e-6f3c-4d4e-9a41-3c1e2b6f7a80
\tParent UUID: \t\t-
\tReceived UUID: \t\t5f4e3d2c-1b0a-4f9e-8d7c-6b5a49382716
\tCreation time: \t\t2024-05-01 10:00:00 +0000
\tFlags: \t\t\treadonly
@@end
@@entry .incoming-4
@@show
ERROR: not a subvolume: .incoming-4/snapshot
@@notsubvol
@@end
@@entry lost+found
";
        let l = parse_listing(text);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].name, "3");
        assert!(l[0]
            .info
            .as_ref()
            .is_some_and(|i| i.starts_with(b"{\"number\": 3")));
        let s = l[0].subvolume.clone().expect("subvolume");
        assert!(s.readonly);
        assert_eq!(s.parent_uuid, None);
        assert_eq!(
            s.received_uuid.map(|u| u.to_string()).as_deref(),
            Some("5f4e3d2c-1b0a-4f9e-8d7c-6b5a49382716")
        );
        assert_eq!(l[1].name, ".incoming-4");
        assert_eq!(l[1].subvolume, None);
        assert!(parse_show(&["\tFlags: \t-", "\tUUID: \t-"]).is_none());
        let rw =
            parse_show(&["UUID: 0b5a2f4e-6f3c-4d4e-9a41-3c1e2b6f7a80", "Flags: -"]).expect("facts");
        assert!(!rw.readonly);
    }
}
