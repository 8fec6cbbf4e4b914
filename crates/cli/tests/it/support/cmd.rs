//! Running the `snapguard` binary against a throw-away repository.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

pub const PASSWORD: &str = "sg-test-password-1";
/// Generous per-command limit so that a hanging binary fails the test.
pub const TIMEOUT: Duration = Duration::from_secs(180);

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_snapguard"))
}

/// A scratch directory for one test (source, repository, cache, targets).
pub struct Ws {
    _tmp: TempDir,
    pub root: PathBuf,
}

impl Ws {
    pub fn new() -> Ws {
        let tmp = tempfile::Builder::new()
            .prefix("sg-it-")
            .tempdir()
            .expect("create temp dir");
        let root = tmp.path().to_path_buf();
        Ws { _tmp: tmp, root }
    }

    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }
}

/// Output of one run.
pub struct Out {
    pub cmdline: String,
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Out {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// stdout and stderr together (for "the output mentions X" checks).
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout_str(), self.stderr_str())
    }

    /// Panics (showing everything) unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Out {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        self
    }

    /// stdout parsed as JSON: the whole of it, else its last line that parses.
    pub fn json(&self) -> Value {
        let text = self.stdout_str();
        if let Ok(v) = serde_json::from_str::<Value>(text.trim()) {
            return v;
        }
        text.lines()
            .rev()
            .find_map(|l| {
                serde_json::from_str::<Value>(l.trim())
                    .ok()
                    .filter(|v| v.is_object() || v.is_array())
            })
            .unwrap_or_else(|| panic!("stdout is not JSON\n{self}"))
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clip = |s: String| {
            if s.len() > 6000 {
                let mut cut = 6000;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!("{}... ({} bytes)", &s[..cut], s.len())
            } else {
                s
            }
        };
        write!(
            f,
            "command: {}\nexit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.code,
            clip(self.stdout_str()),
            clip(self.stderr_str())
        )
    }
}

/// A backup's parsed `--json` result.
pub struct Backup {
    pub out: Out,
    pub json: Value,
    pub id: String,
}

impl Backup {
    /// The `errors` array (empty if absent).
    pub fn errors(&self) -> Vec<Value> {
        self.json
            .get("errors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

/// An empty configuration file `ws/snapguard.toml` (created if missing, kept if it exists), for
/// `SNAPGUARD_CONFIG`: every run names its config file, so a machine-wide
/// `/etc/snapguard/config.toml` never influences a test. Tests of the config file write to it or
/// pass `--config`.
pub fn empty_config(ws: &Ws) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = ws.path("snapguard.toml");
    if !path.exists() {
        std::fs::write(&path, b"").expect("create empty config file");
        // Readable by the unprivileged users some tests switch to.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .expect("chmod config file");
    }
    path
}

/// A repository plus the environment to use it.
pub struct Sg {
    /// The binary to run (normally [`bin()`]).
    pub bin: PathBuf,
    pub repo: PathBuf,
    pub cache: PathBuf,
    /// The configuration file, passed as `SNAPGUARD_CONFIG` (normally [`empty_config`]).
    pub config: PathBuf,
    /// Run the binary through this wrapper (e.g. setpriv) if set.
    pub wrapper: Vec<OsString>,
    pub extra_env: Vec<(OsString, OsString)>,
}

impl Sg {
    /// Initialises a repository `ws/repo` (cache in `ws/cache`).
    pub fn init(ws: &Ws, cipher: Option<&str>) -> Sg {
        let sg = Sg {
            bin: bin(),
            repo: ws.path("repo"),
            cache: ws.path("cache"),
            config: empty_config(ws),
            wrapper: Vec::new(),
            extra_env: Vec::new(),
        };
        std::fs::create_dir_all(&sg.cache).expect("mkdir cache");
        let mut args = vec!["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"];
        if let Some(c) = cipher {
            args.extend(["--cipher", c]);
        }
        sg.run(args).expect_code(0);
        sg
    }

    pub fn command(&self) -> assert_cmd::Command {
        let mut cmd = match self.wrapper.split_first() {
            None => assert_cmd::Command::new(&self.bin),
            Some((w, rest)) => {
                let mut c = assert_cmd::Command::new(w);
                c.args(rest).arg(&self.bin);
                c
            }
        };
        cmd.env("SNAPGUARD_REPOSITORY", &self.repo)
            .env("SNAPGUARD_PASSWORD", PASSWORD)
            .env("SNAPGUARD_CACHE_DIR", &self.cache)
            .env("SNAPGUARD_CONFIG", &self.config)
            // Daemons of parallel tests must not share the web server's default port.
            .env("SNAPGUARD_LISTEN", "127.0.0.1:0")
            .env_remove("SNAPGUARD_PASSWORD_FILE")
            .timeout(TIMEOUT);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command();
        run_cmd(&mut cmd, args)
    }

    /// `snapguard --json backup PATHS... EXTRA...`; panics unless it exits 0 or 3
    /// and prints a snapshot id.
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> Backup {
        let mut args: Vec<OsString> = vec!["--json".into(), "backup".into()];
        args.extend(extra.iter().map(OsString::from));
        args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
        let out = self.run(&args);
        assert!(
            matches!(out.code, Some(0) | Some(3)),
            "backup failed\n{out}"
        );
        let json = out.json();
        let id = json
            .get("snapshot_id")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("backup --json has no snapshot_id\n{out}"))
            .to_string();
        assert!(
            id.len() >= 8 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "snapshot_id {id:?} is not a hex id\n{out}"
        );
        Backup { out, json, id }
    }

    /// `snapguard restore SPEC --target TARGET EXTRA...`.
    pub fn restore(&self, spec: impl AsRef<OsStr>, target: &Path, extra: &[&str]) -> Out {
        let mut args: Vec<OsString> = vec![
            "restore".into(),
            spec.as_ref().to_owned(),
            "--target".into(),
        ];
        args.push(target.as_os_str().to_owned());
        args.extend(extra.iter().map(OsString::from));
        self.run(&args)
    }

    /// `snapguard dump SNAPSHOT PATH`.
    pub fn dump(&self, snapshot: &str, path: &Path) -> Out {
        self.run([OsStr::new("dump"), OsStr::new(snapshot), path.as_os_str()])
    }
}

pub fn run_cmd<I, S>(cmd: &mut assert_cmd::Command, args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    cmd.args(&args);
    let cmdline = format!(
        "snapguard {}",
        args.iter()
            .map(|a| format!("{:?}", a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running `{cmdline}` failed (timeout {TIMEOUT:?}?): {e}"));
    Out {
        cmdline,
        code: output.status.code(),
        stdout: output.stdout,
        stderr: output.stderr,
    }
}

/// Spec `SNAPSHOT:/abs/path` for restore.
pub fn spec(snapshot: &str, path: &Path) -> OsString {
    let mut s = OsString::from(snapshot);
    s.push(":");
    s.push(path.as_os_str());
    s
}

impl Sg {
    /// A `std::process::Command` for the binary with this repository's environment (for
    /// commands that must run in the background: to be stopped, killed or raced).
    pub fn std_command(&self) -> std::process::Command {
        let mut cmd = match self.wrapper.split_first() {
            None => std::process::Command::new(&self.bin),
            Some((w, rest)) => {
                let mut c = std::process::Command::new(w);
                c.args(rest).arg(&self.bin);
                c
            }
        };
        cmd.env("SNAPGUARD_REPOSITORY", &self.repo)
            .env("SNAPGUARD_PASSWORD", PASSWORD)
            .env("SNAPGUARD_CACHE_DIR", &self.cache)
            .env("SNAPGUARD_CONFIG", &self.config)
            .env("SNAPGUARD_LISTEN", "127.0.0.1:0")
            .env_remove("SNAPGUARD_PASSWORD_FILE");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// An `Sg` for the S3 repository at `url` (`s3:http://…`) with these credentials in the
/// standard AWS variables, region us-east-1 and no AWS profile files that could interfere;
/// the cache in `ws/<cache>`.
pub fn s3_sg(ws: &Ws, url: String, cache: &str, access_key: &str, secret_key: &str) -> Sg {
    let cache = ws.path(cache);
    std::fs::create_dir_all(&cache).expect("mkdir cache");
    let none = ws.path("no-aws-files");
    Sg {
        bin: bin(),
        repo: PathBuf::from(url),
        cache,
        config: empty_config(ws),
        wrapper: Vec::new(),
        extra_env: [
            ("AWS_ACCESS_KEY_ID", access_key.to_string()),
            ("AWS_SECRET_ACCESS_KEY", secret_key.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_CONFIG_FILE", none.display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", none.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect(),
    }
}

/// `snapguard` run as root (`uid` None) or as another user through setpriv (uid and gid
/// `uid`, no supplementary groups), with no configuration file.
pub fn as_user(uid: Option<&str>) -> assert_cmd::Command {
    let mut cmd = match uid {
        None => assert_cmd::Command::new(bin()),
        Some(u) => {
            let mut c = assert_cmd::Command::new("setpriv");
            c.args([
                &format!("--reuid={u}"),
                &format!("--regid={u}"),
                "--clear-groups",
                "--",
            ])
            .arg(bin());
            c
        }
    };
    cmd.env("SNAPGUARD_CONFIG", "/dev/null");
    cmd
}
