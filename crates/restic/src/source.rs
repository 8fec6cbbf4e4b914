//! Opening a restic repository and listing its snapshots.
//!
//! [`check_layout`] looks at the directory before any password is asked for, so that a wrong
//! path (or a SnapGuard repository given by mistake) is reported as such. [`ResticRepo::open`]
//! unlocks the repository with `rustic_core`, reads its snapshots and its whole index (data
//! blobs included, which the import needs to read file contents), and keeps no cache on disk.

use crate::backend::LocalRepo;
use crate::error::{Error, Result};
use rustic_core::repofile::{SnapshotFile, Tree};
use rustic_core::{
    Credentials, IndexedFullStatus, Repository, RepositoryBackends, RepositoryOptions, RusticError,
    TreeId,
};
use snapguard_format::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One restic snapshot, as the import needs it.
#[derive(Clone, Debug)]
pub struct ResticSnapshot {
    /// The full id (64 hex digits).
    pub id: String,
    pub time: Timestamp,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    /// What wrote it, e.g. "restic 0.14.0" or "rustic v0.9.0".
    pub program_version: String,
    pub(crate) tree: TreeId,
}

impl ResticSnapshot {
    /// The first 8 hex digits, as restic shows ids.
    pub fn short_id(&self) -> &str {
        &self.id[..8.min(self.id.len())]
    }
}

/// An unlocked restic repository with its index loaded.
pub struct ResticRepo {
    path: PathBuf,
    pub(crate) repo: Repository<IndexedFullStatus>,
    snapshots: Vec<ResticSnapshot>,
    version: u32,
    locks: usize,
}

impl std::fmt::Debug for ResticRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResticRepo")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("snapshots", &self.snapshots.len())
            .finish_non_exhaustive()
    }
}

/// Check that `path` looks like a restic repository (before asking for its password).
pub fn check_layout(path: &Path) -> Result<()> {
    let not_repo = |detail: String| Error::NotARepository {
        path: path.to_path_buf(),
        detail,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_repo("it is not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_repo("it does not exist".into()))
        }
        Err(e) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
        }
    }
    let config = match std::fs::read(path.join("config")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_repo("it has no 'config' file".into()))
        }
        Err(e) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                detail: format!("cannot read {}: {e}", path.join("config").display()),
            })
        }
    };
    if config.starts_with(snapguard_format::CONFIG_MAGIC) {
        return Err(Error::SnapGuardRepository {
            path: path.to_path_buf(),
        });
    }
    // restic's config is sealed: a 16-byte IV, the ciphertext of a small JSON object and a
    // 16-byte MAC. Plain text (a JSON or TOML file that happens to be called config) is not.
    if config.len() < 32 + 2 || config.first() == Some(&b'{') {
        return Err(not_repo(format!(
            "its 'config' ({} bytes) is not an encrypted restic config",
            config.len()
        )));
    }
    if !path.join("keys").is_dir() {
        return Err(not_repo("it has no 'keys' directory".into()));
    }
    Ok(())
}

impl ResticRepo {
    /// Unlock the restic repository at `path` with `password` and load its snapshots and index.
    pub fn open(path: &Path, password: &str) -> Result<ResticRepo> {
        check_layout(path)?;
        let read_err = |e: Box<RusticError>| Error::Read {
            path: path.to_path_buf(),
            detail: describe(&e),
        };
        let keys = std::fs::read_dir(path.join("keys"))
            .map_err(|e| Error::Read {
                path: path.to_path_buf(),
                detail: format!("cannot list {}: {e}", path.join("keys").display()),
            })?
            .count();
        if keys == 0 {
            return Err(Error::NotARepository {
                path: path.to_path_buf(),
                detail: "its 'keys' directory is empty".into(),
            });
        }
        let backend: Arc<dyn rustic_core::WriteBackend> = Arc::new(LocalRepo::new(path));
        let backends = RepositoryBackends::new(backend, None);
        // No cache: the import reads everything once, and must not write to ~/.cache.
        let opts = RepositoryOptions::default().no_cache(true);
        let repo = Repository::new(&opts, &backends).map_err(read_err)?;
        let repo = repo.open(&Credentials::password(password)).map_err(|e| {
            if e.is_incorrect_password() {
                Error::WrongPassword {
                    path: path.to_path_buf(),
                    keys,
                }
            } else {
                read_err(e)
            }
        })?;
        let version = repo.config().version;
        if !(1..=2).contains(&version) {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                detail: format!(
                    "repository format version {version} is not supported (only 1 and 2 are)"
                ),
            });
        }
        let mut snapshots = Vec::new();
        for s in repo.get_all_snapshots().map_err(read_err)? {
            snapshots.push(convert_snapshot(path, s)?);
        }
        // Oldest first; equal times in id order, so the order is the same on every run.
        snapshots.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
        let repo = repo.to_indexed().map_err(read_err)?;
        let locks = std::fs::read_dir(path.join("locks"))
            .map(|d| {
                d.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file()))
                    .count()
            })
            .unwrap_or(0);
        Ok(ResticRepo {
            path: path.to_path_buf(),
            repo,
            snapshots,
            version,
            locks,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The repository format version (1, or 2 with compression).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// How many lock files restic processes hold on the repository right now.
    pub fn locks(&self) -> usize {
        self.locks
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> &[ResticSnapshot] {
        &self.snapshots
    }

    /// The snapshots that `specs` name (full ids, unique prefixes, or `latest` for the newest),
    /// oldest first; every snapshot if `specs` is empty.
    pub fn select(&self, specs: &[String]) -> Result<Vec<ResticSnapshot>> {
        if specs.is_empty() {
            return Ok(self.snapshots.clone());
        }
        let mut chosen: Vec<&ResticSnapshot> = Vec::new();
        for spec in specs {
            let want = spec.to_ascii_lowercase();
            let matches: Vec<&ResticSnapshot> = if want == "latest" {
                self.snapshots.last().into_iter().collect()
            } else if want.is_empty() || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
                Vec::new()
            } else {
                self.snapshots
                    .iter()
                    .filter(|s| s.id.starts_with(&want))
                    .collect()
            };
            match matches.as_slice() {
                [] => {
                    return Err(Error::SnapshotNotFound {
                        path: self.path.clone(),
                        spec: spec.clone(),
                    })
                }
                [one] => {
                    if !chosen.iter().any(|c| c.id == one.id) {
                        chosen.push(one);
                    }
                }
                many => {
                    return Err(Error::AmbiguousSnapshot {
                        path: self.path.clone(),
                        spec: spec.clone(),
                        candidates: many.iter().map(|s| s.short_id().to_string()).collect(),
                    })
                }
            }
        }
        chosen.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
        Ok(chosen.into_iter().cloned().collect())
    }
}

impl ResticRepo {
    /// Tree `id` of snapshot `snap`.
    pub(crate) fn tree(&self, snap: &ResticSnapshot, id: TreeId) -> Result<Tree> {
        self.repo
            .get_tree(&id)
            .map_err(|e| read_failure(&self.path, snap, format!("tree {id}"), &e))
    }

    /// Whether the tree `root` of `snap` holds `path` (components from the root).
    pub(crate) fn holds(
        &self,
        snap: &ResticSnapshot,
        root: TreeId,
        path: &[Vec<u8>],
    ) -> Result<bool> {
        let mut tree = root;
        for (i, comp) in path.iter().enumerate() {
            let t = self.tree(snap, tree)?;
            let Some(node) = t.nodes.iter().find(|n| crate::convert::name(n) == *comp) else {
                return Ok(false);
            };
            if i + 1 == path.len() {
                return Ok(true);
            }
            match node.subtree {
                Some(sub) if node.is_dir() => tree = sub,
                _ => return Ok(false),
            }
        }
        Ok(true)
    }
}

fn convert_snapshot(path: &Path, s: SnapshotFile) -> Result<ResticSnapshot> {
    let list = |what: &str, l: &rustic_core::StringList| -> Result<Vec<String>> {
        match serde_json::to_value(l) {
            Ok(serde_json::Value::Array(items)) => Ok(items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()),
            Ok(serde_json::Value::Null) => Ok(Vec::new()),
            _ => Err(Error::Read {
                path: path.to_path_buf(),
                detail: format!("snapshot {}: cannot read its {what}", s.id),
            }),
        }
    };
    Ok(ResticSnapshot {
        id: s.id.to_hex().as_str().to_string(),
        time: timestamp(s.time.timestamp().as_nanosecond()),
        hostname: s.hostname.clone(),
        username: s.username.clone(),
        uid: s.uid,
        gid: s.gid,
        paths: list("paths", &s.paths)?,
        tags: list("tags", &s.tags)?,
        program_version: s.program_version.clone(),
        tree: s.tree,
    })
}

/// Nanoseconds since the epoch (negative before 1970) as a SnapGuard timestamp.
pub(crate) fn timestamp(nanos: i128) -> Timestamp {
    const NS: i128 = 1_000_000_000;
    let secs = nanos.div_euclid(NS);
    Timestamp {
        secs: i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX }),
        nanos: nanos.rem_euclid(NS) as u32,
    }
}

/// A rustic error in one line (its `Display` is a multi-paragraph report with a backtrace):
/// each message of the chain with its context filled in.
pub(crate) fn describe(e: &RusticError) -> String {
    let mut parts = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        match as_rustic(err) {
            Some(r) => {
                let log = r.display_log();
                let msg = log.strip_prefix("Error: ").unwrap_or(&log);
                let msg = msg.split(" (kind: related to").next().unwrap_or(msg);
                parts.push(msg.trim().to_string());
            }
            None => parts.push(err.to_string()),
        }
        next = err.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// Whether `e` (or a cause of it) is a failed authentication of encrypted data: damaged or
/// tampered with, since the key itself was right.
pub(crate) fn is_mac_failure(e: &RusticError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if as_rustic(err).is_some_and(|r| r.is_code("C001")) {
            return true;
        }
        next = err.source();
    }
    false
}

fn as_rustic<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a RusticError> {
    e.downcast_ref::<RusticError>()
        .or_else(|| e.downcast_ref::<Box<RusticError>>().map(|b| &**b))
}

/// The error for a failed read of `what` in `snap`: integrity or I/O.
pub(crate) fn read_failure(
    path: &Path,
    snap: &ResticSnapshot,
    what: String,
    e: &RusticError,
) -> Error {
    let detail = format!("snapshot {}, {what}: {}", snap.short_id(), describe(e));
    if is_mac_failure(e) {
        Error::Corrupt {
            path: path.to_path_buf(),
            detail,
        }
    } else {
        Error::Read {
            path: path.to_path_buf(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_before_and_after_1970() {
        assert_eq!(timestamp(0), Timestamp { secs: 0, nanos: 0 });
        assert_eq!(
            timestamp(1_234_567_890_123_456_789),
            Timestamp {
                secs: 1_234_567_890,
                nanos: 123_456_789
            }
        );
        // -0.000000001 s is one nanosecond before the epoch.
        assert_eq!(
            timestamp(-1),
            Timestamp {
                secs: -1,
                nanos: 999_999_999
            }
        );
        assert_eq!(
            timestamp(-1_234_567_890_123_456_789),
            Timestamp {
                secs: -1_234_567_891,
                nanos: 876_543_211
            }
        );
    }

    #[test]
    fn layout_check_names_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = check_layout(&dir.path().join("missing")).expect_err("missing dir");
        assert!(err.to_string().contains("does not exist"), "{err}");
        let err = check_layout(dir.path()).expect_err("empty dir");
        assert!(err.to_string().contains("no 'config' file"), "{err}");
        std::fs::write(dir.path().join("config"), b"SGCONFIG\x01\0\0\0rest").expect("write");
        let err = check_layout(dir.path()).expect_err("snapguard repo");
        assert!(matches!(err, Error::SnapGuardRepository { .. }), "{err}");
        std::fs::write(dir.path().join("config"), b"{\"version\": 2}").expect("write");
        let err = check_layout(dir.path()).expect_err("plain config");
        assert!(
            err.to_string().contains("not an encrypted restic config"),
            "{err}"
        );
    }
}
