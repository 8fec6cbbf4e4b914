//! The configuration file: a TOML file of settings that apply to every command, so that they need
//! not be repeated on each command line. Documented for users in `docs/config.md`.
//!
//! Which file: `--config FILE`, else `$SNAPGUARD_CONFIG`, else [`DEFAULT_PATH`]. A file named by
//! the flag or the variable must exist; the default file is read only if it exists (clap already
//! rejects an empty path, as for every path option). Errors are usage errors (exit code 2) that name the file and the line.
//!
//! Each section is a struct with `deny_unknown_fields`, so that a misspelt key or section is an
//! error instead of a setting silently ignored. A new section (`[repository]`) is a new field of
//! [`Config`] with `#[serde(default)]`, plus a paragraph in `docs/config.md`. Values are checked
//! while the file is read, so that an error names the line, the section and the key.
//! Command-line flags always override the file.
//!
//! `[local.NAME]` sections configure the local snapshot tier; their keys are
//! [`snapguard_policy::LocalConfig`], which checks them, and [`Config::local`] finds one by name.

use crate::usage;
use anyhow::Result;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use snapguard_policy::jobs::JobConfig;
use snapguard_policy::LocalConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The configuration file used when neither `--config` nor `SNAPGUARD_CONFIG` names one.
pub const DEFAULT_PATH: &str = "/etc/snapguard/config.toml";

const MIB: f64 = 1024.0 * 1024.0;

/// The whole configuration file. Every section is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file these settings were read from; `None` if no file was read.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// `[limits]`: I/O throttling.
    #[serde(default)]
    pub limits: Limits,
    /// `[local.NAME]`: the subvolumes whose local snapshots SnapGuard manages, by name (names
    /// checked by [`check_local_name`]).
    #[serde(default, deserialize_with = "de_local")]
    pub local: BTreeMap<String, LocalConfig>,
    /// `[jobs.NAME]`: what the daemon runs on a schedule (see [`snapguard_policy::jobs`]); read
    /// and checked by every command, so a mistake is reported before the daemon starts.
    #[serde(default, deserialize_with = "de_jobs")]
    pub jobs: BTreeMap<String, JobConfig>,
    /// `[notify]`: how the daemon reports job results (e-mail through SMTP, desktop
    /// notifications over D-Bus).
    #[serde(default)]
    pub notify: Option<Notify>,
    /// `[repository]`: the repository and its secret when neither options nor variables give
    /// them (see [`Config::apply_repository`]).
    #[serde(default)]
    pub repository: RepositorySection,
    /// `[daemon]`: who besides root may use the daemon's control socket.
    #[serde(default)]
    pub daemon: DaemonSection,
}

/// `[daemon]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    /// Local users who may see the daemon's status and run jobs that create snapshots
    /// (backup, local-snapshot) through its control socket.
    #[serde(default)]
    pub allow_users: Vec<String>,
    /// Where the web UI and API listen (`ADDR:PORT`, or `off`); default 127.0.0.1:8443.
    pub listen: Option<String>,
    /// The HTTPS certificate and key (PEM); without them a self-signed pair is made in the
    /// state directory on first start.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// `[repository]`: defaults for `-r`, `--password-file`, `--password-command`, `--key-file`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositorySection {
    /// A path, `s3:…` or `sftp:…`, as `-r` takes it.
    pub url: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub key_file: Option<PathBuf>,
}

impl Config {
    /// Fill in what the command line and the environment left open from `[repository]`:
    /// the location if no `-r`/`SNAPGUARD_REPOSITORY`; the secret if none of `--password-file`,
    /// `--password-command`, `--key-file` and their variables, nor `SNAPGUARD_PASSWORD`, is
    /// given (a secret from the environment always wins over the file's).
    pub fn apply_repository(&self, g: &mut crate::args::GlobalArgs) {
        let r = &self.repository;
        if g.repo.is_none() {
            g.repo.clone_from(&r.url);
        }
        let secret_given = g.password_file.is_some()
            || g.password_command.is_some()
            || g.key_file.is_some()
            || std::env::var_os("SNAPGUARD_PASSWORD").is_some();
        if !secret_given {
            g.password_file.clone_from(&r.password_file);
            g.password_command.clone_from(&r.password_command);
            g.key_file.clone_from(&r.key_file);
        }
    }
}

/// `[notify]`: e-mail (`email_to` and `smtp_host`) and/or desktop notifications
/// (`desktop = true`) on job failure, and on success for jobs with `notify_success`. Read
/// through [`NotifyKeys`], which checks that the section asks for at least one of them and that
/// e-mail keys come with both `email_to` and `smtp_host`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "NotifyKeys")]
pub struct Notify {
    /// Recipients; empty when the section sends no e-mail.
    pub email_to: Vec<String>,
    /// The sender address (default `snapguard@HOSTNAME`).
    pub email_from: Option<String>,
    /// Set whenever `email_to` is not empty.
    pub smtp_host: Option<String>,
    /// Default: 587 for starttls, 465 for tls, 25 for none.
    pub smtp_port: Option<u16>,
    /// `starttls` (default), `tls` or `none` (only for a relay on this machine).
    pub smtp_security: SmtpSecurity,
    pub smtp_user: Option<String>,
    /// A file holding the SMTP password (first line); never the password itself in this file.
    pub smtp_password_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for the SMTP server, besides the system's.
    pub smtp_ca_file: Option<PathBuf>,
    /// Desktop notifications over the freedesktop D-Bus interface, on users' session buses.
    pub desktop: bool,
    /// The users whose sessions get desktop notifications (required with `desktop = true`).
    pub desktop_users: Option<Vec<String>>,
}

impl Notify {
    /// Whether results are mailed.
    pub fn email(&self) -> bool {
        !self.email_to.is_empty()
    }
}

/// The keys of `[notify]` as written, before [`Notify`]'s checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyKeys {
    email_to: Option<Vec<String>>,
    email_from: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_security: Option<SmtpSecurity>,
    smtp_user: Option<String>,
    smtp_password_file: Option<PathBuf>,
    smtp_ca_file: Option<PathBuf>,
    #[serde(default)]
    desktop: bool,
    desktop_users: Option<Vec<String>>,
}

impl TryFrom<NotifyKeys> for Notify {
    type Error = String;

    fn try_from(k: NotifyKeys) -> Result<Notify, String> {
        let email_keys = k.email_to.is_some()
            || k.email_from.is_some()
            || k.smtp_host.is_some()
            || k.smtp_port.is_some()
            || k.smtp_security.is_some()
            || k.smtp_user.is_some()
            || k.smtp_password_file.is_some()
            || k.smtp_ca_file.is_some();
        if email_keys {
            // The messages serde gave when both keys were required.
            match &k.email_to {
                None => return Err("missing field `email_to`".into()),
                Some(to) if to.is_empty() => {
                    return Err(
                        "email_to is empty: give at least one address, or leave out \
                                the e-mail keys"
                            .into(),
                    )
                }
                Some(_) => {}
            }
            if k.smtp_host.is_none() {
                return Err("missing field `smtp_host`".into());
            }
        } else if !k.desktop {
            return Err(
                "nothing to notify with: give email_to and smtp_host for e-mail, or \
                        desktop = true for desktop notifications"
                    .into(),
            );
        }
        match &k.desktop_users {
            Some(_) if !k.desktop => {
                return Err("desktop_users is set but desktop is not: add desktop = true".into())
            }
            Some(users) if users.is_empty() => {
                return Err(
                    "desktop_users is empty: name the users whose desktops get job \
                            results, or leave out desktop = true"
                        .into(),
                )
            }
            Some(users) => {
                if let Some(bad) = users.iter().find(|u| {
                    u.is_empty() || u.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
                }) {
                    return Err(format!("desktop_users: {bad:?} is not a user name"));
                }
            }
            None if k.desktop => {
                return Err(
                    "desktop = true needs desktop_users = [\"name\", ...]: the users whose \
                            desktops get job results (nobody else is notified)"
                        .into(),
                )
            }
            None => {}
        }
        Ok(Notify {
            email_to: k.email_to.unwrap_or_default(),
            email_from: k.email_from,
            smtp_host: k.smtp_host,
            smtp_port: k.smtp_port,
            smtp_security: k.smtp_security.unwrap_or_else(default_security),
            smtp_user: k.smtp_user,
            smtp_password_file: k.smtp_password_file,
            smtp_ca_file: k.smtp_ca_file,
            desktop: k.desktop,
            desktop_users: k.desktop_users,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    Starttls,
    Tls,
    None,
}

fn default_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

impl Config {
    /// The `[local.NAME]` section called `name`. The usage error for an unknown name lists the
    /// configured names and says which file was read.
    pub fn local(&self, name: &str) -> Result<&LocalConfig> {
        if let Some(config) = self.local.get(name) {
            return Ok(config);
        }
        if let Err(why) = check_local_name(name) {
            return Err(usage!("{why}"));
        }
        let example = format!(
            "add a section such as\n  [local.{name}]\n  subvolume = \"/path/to/subvolume\"\n\
             (the keys are described in docs/config.md)"
        );
        let Some(file) = &self.source else {
            return Err(usage!(
                "no local configuration {name:?}: no config file was read ({DEFAULT_PATH} does \
                 not exist); create it, or name one with --config FILE, and {example}"
            ));
        };
        if self.local.is_empty() {
            return Err(usage!(
                "no local configuration {name:?}: config file {} has no [local.NAME] section; \
                 {example}",
                file.display()
            ));
        }
        let names: Vec<&str> = self.local.keys().map(String::as_str).collect();
        Err(usage!(
            "no local configuration {name:?} in config file {}; it configures {}; use one of \
             those, or {example}",
            file.display(),
            names.join(", ")
        ))
    }
}

/// The longest `[local.NAME]` name; names end up in file names and command lines.
const MAX_LOCAL_NAME: usize = 64;

/// The rule for `[local.NAME]` names: 1 to 64 ASCII letters, digits, `_` and `-`.
pub fn check_local_name(name: &str) -> Result<(), String> {
    check_section_name("local configuration", name)
}

/// The rule for every `[SECTION.NAME]` name (`what` says which kind, for the message).
fn check_section_name(what: &str, name: &str) -> Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name.is_empty() && name.len() <= MAX_LOCAL_NAME && valid_chars {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid {what} name: use 1 to {MAX_LOCAL_NAME} letters \
             (A-Z, a-z), digits, _ and -, such as \"data\" or \"home-alice\""
        ))
    }
}

/// A `[jobs.NAME]` name, checked while the file is read.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct JobName(String);

impl<'de> Deserialize<'de> for JobName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        check_section_name("job", &name).map_err(de::Error::custom)?;
        Ok(JobName(name))
    }
}

fn de_jobs<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, JobConfig>, D::Error> {
    let sections = BTreeMap::<JobName, JobConfig>::deserialize(d)?;
    Ok(sections.into_iter().map(|(k, v)| (k.0, v)).collect())
}

/// A `[local.NAME]` name, checked while the file is read so that the error points at it.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct LocalName(String);

impl<'de> Deserialize<'de> for LocalName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        check_local_name(&name).map_err(de::Error::custom)?;
        Ok(LocalName(name))
    }
}

fn de_local<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, LocalConfig>, D::Error> {
    let sections = BTreeMap::<LocalName, LocalConfig>::deserialize(d)?;
    Ok(sections.into_iter().map(|(k, v)| (k.0, v)).collect())
}

/// `[limits]`: the defaults of `--limit-read` and `--limit-upload`, in MiB/s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Reading the files being backed up (`backup --limit-read`).
    #[serde(default, deserialize_with = "de_rate")]
    pub read: Option<f64>,
    /// Writing to the repository (`--limit-upload`).
    #[serde(default, deserialize_with = "de_rate")]
    pub upload: Option<f64>,
}

/// The slowest rate accepted (1 KiB/s); anything slower is a mistake, and vanishing rates
/// would overflow the limiter's waits.
const MIN_RATE: f64 = 1.0 / 1024.0;

/// The rule for every rate, on the command line and in the file: a finite number of MiB/s,
/// at least 1 KiB/s.
pub fn check_rate(mib_per_s: f64) -> Result<f64, String> {
    if mib_per_s.is_finite() && mib_per_s >= MIN_RATE {
        Ok(mib_per_s)
    } else {
        Err(format!(
            "{mib_per_s} is not a valid rate: give a positive number of MiB/s of at least 0.001 (1 KiB/s), such as 20 or 2.5"
        ))
    }
}

/// clap value parser of `--limit-read` and `--limit-upload`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| {
        format!("{s:?} is not a number: give a positive number of MiB/s, such as 20 or 2.5")
    })?;
    check_rate(v)
}

/// The rate in effect: the command-line flag if given, else the configuration file's value.
pub fn effective_rate(flag: Option<f64>, file: Option<f64>) -> Option<f64> {
    flag.or(file)
}

/// A token bucket for the rate in effect (see [`effective_rate`]), if there is one.
pub fn rate_limiter(
    flag: Option<f64>,
    file: Option<f64>,
) -> Option<Arc<snapguard_backend::RateLimiter>> {
    effective_rate(flag, file).and_then(|m| snapguard_backend::RateLimiter::new(m * MIB))
}

fn de_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct Rate;
    impl Visitor<'_> for Rate {
        type Value = f64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a positive number of MiB/s, such as 20 or 2.5")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            check_rate(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            self.visit_f64(v as f64)
        }
    }
    d.deserialize_f64(Rate).map(Some)
}

/// Reads the configuration file named by `--config`/`SNAPGUARD_CONFIG` (`explicit`), or the
/// default file if it exists. With neither, the result is the empty configuration.
pub fn load(explicit: Option<&Path>) -> Result<Config> {
    load_from(explicit, Path::new(DEFAULT_PATH))
}

fn load_from(explicit: Option<&Path>, default: &Path) -> Result<Config> {
    let (path, named) = match explicit {
        Some(p) => (p, true),
        None => (default, false),
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => {
            return Ok(Config::default())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(usage!(
                "config file {} does not exist (named by --config or SNAPGUARD_CONFIG): \
                 create it, or name an existing file",
                path.display()
            ))
        }
        Err(e) => {
            return Err(usage!(
                "cannot read config file {}: {e}; make it readable, or choose another file \
                 with --config FILE (--config /dev/null uses none)",
                path.display()
            ))
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        usage!(
            "config file {}: not UTF-8 text (invalid byte at offset {}); a config file is TOML, \
             see docs/config.md",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let mut config = parse(&text).map_err(|e| usage!("config file {}{e}", path.display()))?;
    config.source = Some(path.to_path_buf());
    tracing::debug!("read config file {}", path.display());
    Ok(config)
}

/// Parses the text of a configuration file. The error message starts with ", line N" (when the
/// position is known), names the section and key of a value that is not accepted, names the
/// problem, quotes the line and says what to do; the caller puts the file name in front of it.
pub fn parse(text: &str) -> Result<Config, String> {
    // TOML syntax first, so that only errors in well-formed files are given a section and key
    // (in a malformed file the lines around the error cannot be trusted to be what they seem).
    let well_formed = toml::from_str::<toml::Table>(text).is_ok();
    toml::from_str::<Config>(text).map_err(|e| {
        let message = e.message().trim();
        let advice = "correct it (the settings are described in docs/config.md), or choose \
                      another file with --config FILE (--config /dev/null uses none)";
        match e.span() {
            Some(span) => {
                let start = span.start.min(text.len());
                let line_no = text[..start].matches('\n').count() + 1;
                let line = text.lines().nth(line_no - 1).unwrap_or("").trim_end();
                let place = if well_formed {
                    location(text, line_no - 1)
                } else {
                    String::new()
                };
                let place = if place.is_empty() {
                    place
                } else {
                    format!("{place}: ")
                };
                format!(", line {line_no}: {place}{message}\n  {line_no} | {line}\n{advice}")
            }
            None => format!(": {message}\n{advice}"),
        }
    })
}

/// Where the line with index `line` of a well-formed TOML file is: `[section] key`, `[section]`
/// for a table header, or a dotted key outside any table (`local.data.subvolume`). The key of
/// a line inside a multi-line array is the key that opened the array.
fn location(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(here) = lines.get(line) else {
        return String::new();
    };
    if let Some(header) = table_header(here) {
        return header;
    }
    let mut key = None;
    for earlier in lines[..=line].iter().rev() {
        if let Some(header) = table_header(earlier) {
            return match key {
                Some(key) => format!("{header} {key}"),
                None => header,
            };
        }
        if key.is_none() {
            key = key_of(earlier);
        }
    }
    key.unwrap_or_default()
}

/// `[a.b]` or `[[a.b]]` (comment removed) if the line is a table header.
fn table_header(line: &str) -> Option<String> {
    let code = strip_comment(line).trim();
    (code.starts_with('[') && code.ends_with(']')).then(|| code.to_owned())
}

/// The key of a `key = value` line: the text before the first `=` outside quotes.
fn key_of(line: &str) -> Option<String> {
    let code = strip_comment(line);
    let eq = unquoted(code).find(|&(_, c)| c == '=')?.0;
    let key = code[..eq].trim();
    (!key.is_empty()).then(|| key.to_owned())
}

/// The line without a `#` comment (a `#` inside a string is not one).
fn strip_comment(line: &str) -> &str {
    match unquoted(line).find(|&(_, c)| c == '#') {
        Some((at, _)) => &line[..at],
        None => line,
    }
}

/// The characters of a line of TOML that are outside basic ("…", with `\` escapes) and literal
/// ('…') strings, with their byte offsets.
fn unquoted(line: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    line.char_indices().filter(move |&(_, c)| match quote {
        Some('"') if escaped => {
            escaped = false;
            false
        }
        Some('"') if c == '\\' => {
            escaped = true;
            false
        }
        Some(q) => {
            if c == q {
                quote = None;
            }
            false
        }
        None if c == '"' || c == '\'' => {
            quote = Some(c);
            false
        }
        None => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("{text:?} parsed as {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_limits() {
        let c = parse("# I/O limits\n[limits]\nread = 50\nupload = 2.5\n").expect("valid");
        assert_eq!(c.limits.read, Some(50.0));
        assert_eq!(c.limits.upload, Some(2.5));
        assert_eq!(c.source, None);
    }

    #[test]
    fn everything_is_optional() {
        assert_eq!(parse("").expect("empty"), Config::default());
        let c = parse("[limits]\nupload = 20\n").expect("upload only");
        assert_eq!(c.limits.read, None);
        assert_eq!(c.limits.upload, Some(20.0));
    }

    #[test]
    fn unknown_key_is_rejected_with_its_line() {
        let e = err("[limits]\nread = 5\nuplaod = 20\n");
        assert!(
            e.starts_with(", line 3: [limits] uplaod: unknown field"),
            "{e}"
        );
        assert!(e.contains("uplaod"), "{e}");
        assert!(e.contains("upload"), "names the known keys: {e}");
        assert!(e.contains("3 | uplaod = 20"), "quotes the line: {e}");
        assert!(e.contains("docs/config.md"), "{e}");
    }

    #[test]
    fn unknown_section_is_rejected() {
        let e = err("[limit]\nread = 5\n");
        assert!(e.contains("line 1") && e.contains("limit"), "{e}");
        let e = err("read = 5\n");
        assert!(e.contains("line 1") && e.contains("read"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected() {
        for (value, says) in [
            ("0", "positive"),
            ("-3", "positive"),
            ("0.0", "positive"),
            ("inf", "positive"),
            ("nan", "positive"),
            ("\"20M\"", "positive number of MiB/s"),
            ("true", "positive number of MiB/s"),
        ] {
            let e = err(&format!("[limits]\n\nread = {value}\n"));
            assert!(e.contains(says), "read = {value}: {e}");
            assert!(e.starts_with(", line 3"), "read = {value}: {e}");
        }
        let e = err("[limits]\nread = 5 MiB\n");
        assert!(e.starts_with(", line 2"), "{e}");
    }

    #[test]
    fn cli_rates_follow_the_same_rule() {
        assert_eq!(parse_rate("8"), Ok(8.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "nan", "inf", "", "fast", "8M"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn flag_overrides_file() {
        let c = parse("[limits]\nread = 50\nupload = 20\n").expect("valid");
        assert_eq!(effective_rate(Some(100.0), c.limits.read), Some(100.0));
        assert_eq!(effective_rate(Some(1.0), c.limits.upload), Some(1.0));
        assert_eq!(effective_rate(None, c.limits.read), Some(50.0));
        assert_eq!(effective_rate(None, None), None);
        assert!(rate_limiter(None, None).is_none());
        assert!(rate_limiter(Some(1.0), c.limits.upload).is_some());
    }

    /// The minimal form from issue 6.
    #[test]
    fn jobs_are_read_and_their_mistakes_name_the_line() {
        let c = parse(
            "[jobs.home]\nkind = \"backup\"\npaths = [\"/home\"]\nschedule = \"0 3 * * *\"\n",
        )
        .expect("valid");
        assert_eq!(c.jobs["home"].action.kind(), "backup");
        let e =
            err("[jobs.home]\nkind = \"backup\"\npaths = [\"/home\"]\nschedule = \"0 25 * * *\"\n");
        assert!(e.contains("line 1") && e.contains("outside 0-23"), "{e}");
        let e = err("[jobs.\"a b\"]\nkind = \"prune\"\nschedule = \"daily\"\n");
        assert!(e.contains("not a valid job name"), "{e}");
    }

    #[test]
    fn notify_section() {
        let c =
            parse("[notify]\nemail_to = [\"ops@example.com\"]\nsmtp_host = \"mail.example.com\"\n")
                .expect("valid");
        let n = c.notify.expect("notify");
        assert_eq!(n.smtp_security, SmtpSecurity::Starttls);
        let e = err("[notify]\nemail_to = [\"a@b\"]\nsmtp_host = \"h\"\nsmtp_password = \"x\"\n");
        assert!(e.contains("smtp_password"), "{e}");
        let e = err("[notify]\nemail_to = [\"a@b\"]\nsmtp_host = \"h\"\nsmtp_security = \"ssl\"\n");
        assert!(e.contains("ssl"), "{e}");

        assert!(!n.desktop && n.email());

        // Desktop notifications alone: no e-mail keys needed, but the users to notify.
        let e = err("[notify]\ndesktop = true\n");
        assert!(e.contains("desktop = true needs desktop_users"), "{e}");
        let n = parse("[notify]\ndesktop = true\ndesktop_users = [\"alice\", \"bob\"]\n")
            .expect("valid")
            .notify
            .expect("notify");
        assert_eq!(
            n.desktop_users,
            Some(vec!["alice".to_string(), "bob".to_string()])
        );

        // E-mail keys given in part: the same messages as when both keys were required, with
        // the line of the section and the pointer to docs/config.md.
        let e = err("[limits]\nread = 5\n\n[notify]\ndesktop = true\nsmtp_host = \"h\"\n");
        assert!(
            e.starts_with(", line 4: [notify]: missing field `email_to`"),
            "{e}"
        );
        assert!(e.contains("docs/config.md"), "{e}");
        let e = err("[notify]\nemail_to = [\"a@b\"]\n");
        assert!(
            e.starts_with(", line 1: [notify]: missing field `smtp_host`"),
            "{e}"
        );
        let e = err("[notify]\nemail_to = []\nsmtp_host = \"h\"\n");
        assert!(e.contains("email_to is empty"), "{e}");
        // Nothing to notify with, or desktop keys that make no sense.
        let e = err("[notify]\ndesktop = false\n");
        assert!(
            e.starts_with(", line 1: [notify]: nothing to notify with"),
            "{e}"
        );
        let e = err("[notify]\nemail_to = [\"a@b\"]\nsmtp_host = \"h\"\ndesktop_users = [\"a\"]\n");
        assert!(e.contains("add desktop = true"), "{e}");
        let e = err("[notify]\ndesktop = true\ndesktop_users = []\n");
        assert!(e.contains("desktop_users is empty"), "{e}");
        let e = err("[notify]\ndesktop = true\ndesktop_users = [\"a b\"]\n");
        assert!(e.contains("is not a user name"), "{e}");
        let e = err("[notify]\ndesktop = \"yes\"\n");
        assert!(e.starts_with(", line 2: [notify] desktop:"), "{e}");
    }

    #[test]
    fn parses_the_minimal_local_section() {
        let c = parse(
            r#"
[local.data]                      # CONFIG name "data"
subvolume = "/mnt/pool/data"      # snapshots default to <subvolume>/.snapshots
[local.data.retention]
hourly = 10
daily = 7
"#,
        )
        .expect("the issue's example");
        let data = c.local("data").expect("configured");
        assert_eq!(data.subvolume, Path::new("/mnt/pool/data"));
        assert_eq!(data.snapshot_dir(), Path::new("/mnt/pool/data/.snapshots"));
        assert_eq!(data.retention.hourly.max(), 10);
        assert_eq!(data.retention.daily.max(), 7);
        // The rest are Snapper's defaults.
        assert_eq!(data.retention.monthly.max(), 10);
        assert_eq!(data.retention.number_limit.max(), 50);
        assert_eq!(data.retention.min_age, 1800);
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn several_local_sections_and_limits() {
        let c = parse(
            "[limits]\nread = 5\n\n[local.root]\nsubvolume = \"/\"\n\
             snapshot_dir = \"/.snapshots\"\n\n[local.home-alice_2]\nsubvolume = \"/home/alice\"\n\
             allow_users = [\"alice\"]\n[local.home-alice_2.retention]\nnumber_limit = \"2-10\"\n\
             min_age = \"1h\"\nfree_limit = 0.1\n",
        )
        .expect("valid");
        assert_eq!(c.limits.read, Some(5.0));
        let names: Vec<&String> = c.local.keys().collect();
        assert_eq!(names, ["home-alice_2", "root"]);
        assert_eq!(c.local["root"].snapshot_dir(), Path::new("/.snapshots"));
        let home = &c.local["home-alice_2"];
        assert_eq!(home.allow_users, ["alice"]);
        assert_eq!(
            (
                home.retention.number_limit.min(),
                home.retention.number_limit.max()
            ),
            (2, 10)
        );
        assert_eq!(home.retention.min_age, 3600);
        assert_eq!(home.retention.free_limit, 0.1);
    }

    /// Every error in a `[local.NAME]` section gives the line, the section and the key.
    #[test]
    fn local_errors_name_line_section_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[local.data]\nsubvolume = \"mnt/data\"\n",
                ", line 2: [local.data] subvolume: \"mnt/data\" is not an absolute path",
            ),
            (
                "[local.data]\nsubvolume = \"/d\"\nsnapshot_dir = \"/d/../e\" # moved\n",
                ", line 3: [local.data] snapshot_dir: /d/../e contains \"..\"",
            ),
            (
                "[local.data]\nsubvolume = \"/d\"\n[local.data.retention]\nhourly = 10\ndaily = -7\n",
                ", line 5: [local.data.retention] daily: -7 is negative",
            ),
            (
                "[local.data]\nsubvolume = \"/d\"\n\n[local.data.retention]\nnumber_limit = \"10-2\"\n",
                ", line 5: [local.data.retention] number_limit: the range \"10-2\" is backwards",
            ),
            (
                "[local.data]\nsubvolume = \"/d\"\n[local.data.retention]\nmin_age = \"30m\"\n",
                ", line 4: [local.data.retention] min_age: \"30m\" would be read as months",
            ),
            (
                "[local.data]\nsubvolume = \"/d\"\n[local.data.retention]\nfree_limit = 20\n",
                ", line 4: [local.data.retention] free_limit: 20 is out of range; give the \
                 fraction of the filesystem that must stay free",
            ),
            (
                "[local.data]\nsubvolume = \"/d\"\n[local.data.retention]\nhourli = 3\n",
                ", line 4: [local.data.retention] hourli: unknown field `hourli`, expected one of",
            ),
            (
                "[local.data]\nsubvolume = \"/d\"\nretention = 5\n",
                ", line 3: [local.data] retention: invalid type: integer `5`",
            ),
            (
                "[local.\"my data\"]\nsubvolume = \"/d\"\n",
                ", line 1: [local.\"my data\"]: \"my data\" is not a valid local configuration name",
            ),
            (
                "[limits]\nread = 1\n[local.data]\n",
                ", line 3: [local.data]: missing field `subvolume`",
            ),
            (
                "local.data.subvolume = \"x\"\n",
                ", line 1: local.data.subvolume: \"x\" is not an absolute path",
            ),
            (
                "[local.data]\nsubvolume = \"/d\"\nallow_users = [\n  \"alice\",\n  5,\n]\n",
                ", line 5: [local.data] allow_users: invalid type: integer `5`",
            ),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.starts_with(want), "{text:?}:\n{e}\nwanted: {want}");
            assert!(e.contains("docs/config.md"), "{e}");
        }
        // Checks across keys point at the section.
        let e = err("[local.data]\nsubvolume = \"/d\"\nsnapshot_dir = \"/d/\"\n");
        assert!(e.contains("[local.data]"), "{e}");
        assert!(
            e.contains("invalid snapshot_dir: /d is the subvolume itself"),
            "{e}"
        );
        let e = err("[local.data]\nsubvolume = \"/d\"\nallow_users = [\"\"]\n");
        assert!(
            e.contains("invalid allow_users: a user name is empty"),
            "{e}"
        );
    }

    #[test]
    fn local_names() {
        for good in ["data", "home-alice", "a_b", "X9", &"n".repeat(64)] {
            assert_eq!(check_local_name(good), Ok(()), "{good}");
        }
        for bad in ["", "my data", "a.b", "ünï", "a/b", &"n".repeat(65)] {
            let e = check_local_name(bad).expect_err(bad);
            assert!(e.contains("letters (A-Z, a-z), digits, _ and -"), "{e}");
        }
    }

    #[test]
    fn unknown_local_name_lists_the_configured_ones() {
        let mut c =
            parse("[local.data]\nsubvolume = \"/d\"\n[local.home]\nsubvolume = \"/home\"\n")
                .expect("valid");
        c.source = Some(PathBuf::from("/etc/sg.toml"));
        assert_eq!(
            c.local("home").expect("known").subvolume,
            Path::new("/home")
        );
        let e = c.local("root").expect_err("unknown");
        assert_eq!(crate::exit_code(&e), crate::exit::USAGE);
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "no local configuration \"root\" in config file /etc/sg.toml; it configures \
                 data, home; "
            ),
            "{msg}"
        );
        assert!(msg.contains("[local.root]\n  subvolume = "), "{msg}");

        let e = c.local("no way").expect_err("invalid name").to_string();
        assert!(
            e.contains("\"no way\" is not a valid local configuration name"),
            "{e}"
        );

        let mut empty = Config {
            source: Some(PathBuf::from("/dev/null")),
            ..Config::default()
        };
        let e = empty
            .local("data")
            .expect_err("none configured")
            .to_string();
        assert!(
            e.contains("config file /dev/null has no [local.NAME] section"),
            "{e}"
        );
        empty.source = None;
        let e = empty.local("data").expect_err("no file").to_string();
        assert!(e.contains("no config file was read"), "{e}");
        assert!(e.contains(DEFAULT_PATH), "{e}");
    }

    #[test]
    fn locations_in_the_file() {
        let text = "# top\nx.y = 1\n[a] # c\n\"k=v\" = 'p#q' # x\n[[b.c]]\nz = [\n 1,\n]\n";
        assert_eq!(location(text, 1), "x.y");
        assert_eq!(location(text, 2), "[a]");
        assert_eq!(location(text, 3), "[a] \"k=v\"");
        assert_eq!(location(text, 4), "[[b.c]]");
        assert_eq!(location(text, 6), "[[b.c]] z");
        assert_eq!(location(text, 99), "");
        assert_eq!(strip_comment("a = \"x\\\"#\" # c"), "a = \"x\\\"#\" ");
    }

    #[test]
    fn local_file_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sg.toml");
        std::fs::write(
            &file,
            "[local.data]\nsubvolume = \"/d\"\n[local.data.retention]\nspace_limit = 1.5\n",
        )
        .expect("write");
        let e = load_from(Some(&file), Path::new("/nonexistent")).expect_err("invalid");
        assert_eq!(crate::exit_code(&e), crate::exit::USAGE);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "config file {}, line 4: [local.data.retention] space_limit: 1.5 is out of range",
                file.display()
            )),
            "{msg}"
        );
        assert!(msg.contains("4 | space_limit = 1.5"), "{msg}");
    }

    #[test]
    fn missing_default_file_is_no_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let absent = dir.path().join("config.toml");
        let c = load_from(None, &absent).expect("a missing default file is not an error");
        assert_eq!(c, Config::default());
    }

    #[test]
    fn missing_named_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let absent = dir.path().join("missing.toml");
        let e = load_from(Some(&absent), &dir.path().join("default.toml"))
            .expect_err("a missing named file is an error");
        assert_eq!(crate::exit_code(&e), crate::exit::USAGE);
        assert!(e.to_string().contains(&absent.display().to_string()), "{e}");
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sg.toml");
        std::fs::write(&file, "[limits]\nread = -1\n").expect("write");
        let e = load_from(None, &file).expect_err("invalid default file");
        assert_eq!(crate::exit_code(&e), crate::exit::USAGE);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("config file {}, line 2: ", file.display())),
            "{msg}"
        );

        std::fs::write(&file, "[limits]\nupload = 4\n").expect("write");
        let c = load_from(Some(&file), Path::new("/nonexistent")).expect("valid file");
        assert_eq!(c.limits.upload, Some(4.0));
        assert_eq!(c.source.as_deref(), Some(file.as_path()));
    }
}
