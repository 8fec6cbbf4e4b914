//! The configuration file: a TOML file of settings that apply to every command, so that they need
//! not be repeated on each command line. Documented for users in `docs/config.md`.
//!
//! Which file: `--config FILE`, else `$SNAPGUARD_CONFIG`, else [`DEFAULT_PATH`]. A file named by
//! the flag or the variable must exist; the default file is read only if it exists (clap already
//! rejects an empty path, as for every path option). Errors are usage errors (exit code 2) that name the file and the line.
//!
//! Each section is a struct with `deny_unknown_fields`, so that a misspelt key or section is an
//! error instead of a setting silently ignored. A new section (`[repository]`, `[local.NAME]`) is
//! a new field of [`Config`] with `#[serde(default)]`, plus a paragraph in `docs/config.md`.
//! Command-line flags always override the file.

use crate::usage;
use anyhow::Result;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
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
/// position is known), names the problem, quotes the line and says what to do; the caller puts
/// the file name in front of it.
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str::<Config>(text).map_err(|e| {
        let message = e.message().trim();
        let advice = "correct it (the settings are described in docs/config.md), or choose \
                      another file with --config FILE (--config /dev/null uses none)";
        match e.span() {
            Some(span) => {
                let start = span.start.min(text.len());
                let line_no = text[..start].matches('\n').count() + 1;
                let line = text.lines().nth(line_no - 1).unwrap_or("").trim_end();
                format!(", line {line_no}: {message}\n  {line_no} | {line}\n{advice}")
            }
            None => format!(": {message}\n{advice}"),
        }
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
        assert!(e.starts_with(", line 3: "), "{e}");
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
