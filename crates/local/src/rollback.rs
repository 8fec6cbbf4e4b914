//! `local rollback`: make a snapshot the current state of a subvolume again, keeping the
//! current state as a read-only safety snapshot. Two ways, as the issue and Snapper have them:
//!
//! - **Default subvolume** (the root filesystem, config subvolume `/`, or `--set-default`): a
//!   writable numbered copy of the snapshot becomes the filesystem's default subvolume, which
//!   the next boot (or mount without `subvol=`) uses. Nothing that is running changes.
//! - **In place** (any other subvolume): a writable snapshot of the snapshot is made next to
//!   the subvolume and the two directories are swapped atomically with
//!   `renameat2(RENAME_EXCHANGE)`; the subvolumes nested in the old one (the snapshot directory
//!   `.snapshots` among them) are moved into the new one; then the old one is deleted.
//!
//! The in-place swap is crash safe through a journal beside the subvolume
//! (`<parent>/.<name>.snapguard-rollback.json`), written before the first change. Every step
//! is recognisable from the state of the filesystem (which subvolume is at the path, whether
//! the temporary one exists, which nested subvolumes are still in the old one), so
//! [`resume`] simply runs the remaining steps; while the journal exists [`Store::open`] refuses
//! the configuration.

use crate::files::{fsync_dir, to_json, write_atomic};
use crate::mounts::{read_mounts, show, FsMounts};
use crate::store::{CreateOptions, LocalSnapshot, Store};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use snapguard_btrfs::{Uuid, NESTED_PLACEHOLDER_INO};
use snapguard_policy::{CleanupAlgorithm, LocalConfig, LocalKind};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How to roll back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RollbackMode {
    /// The default-subvolume way for the root filesystem (subvolume `/`), in place otherwise.
    #[default]
    Auto,
    /// The default-subvolume way, for any subvolume.
    SetDefault,
}

/// What a rollback did.
#[derive(Clone, Debug)]
pub struct RollbackOutcome {
    /// The snapshot that was restored.
    pub restored: u32,
    /// The read-only snapshot of the state before the rollback.
    pub safety: LocalSnapshot,
    pub how: RollbackKind,
}

#[derive(Clone, Debug)]
pub enum RollbackKind {
    /// The subvolume was swapped; these nested subvolumes (relative paths) were moved into the
    /// new one, and these entries of the restored snapshot had to be moved aside for them.
    InPlace {
        moved: Vec<PathBuf>,
        set_aside: Vec<PathBuf>,
    },
    /// `copy` is the new default subvolume (id `subvolume_id`); a reboot (or a mount without
    /// `subvol=`) uses it. `warnings` say what the user must still change (fstab).
    Default {
        copy: Box<LocalSnapshot>,
        subvolume_id: u64,
        warnings: Vec<String>,
    },
}

/// The journal of an in-place rollback.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    config: String,
    subvolume: PathBuf,
    /// Where the new subvolume is made before the swap (and where the old one is after it).
    temp: PathBuf,
    /// The UUID of the subvolume being replaced.
    old_uuid: String,
    /// The snapshot being restored, its path and UUID (the new subvolume's parent UUID).
    target: u32,
    target_path: PathBuf,
    target_uuid: String,
    safety: u32,
}

/// The journal path of a rollback of `subvolume`.
fn journal_path(subvolume: &Path) -> Option<PathBuf> {
    let parent = subvolume.parent()?;
    let name = subvolume.file_name()?.to_string_lossy();
    Some(parent.join(format!(".{name}.snapguard-rollback.json")))
}

fn temp_path(subvolume: &Path) -> Option<PathBuf> {
    let parent = subvolume.parent()?;
    let name = subvolume.file_name()?.to_string_lossy();
    Some(parent.join(format!(".{name}.snapguard-rollback")))
}

/// The journal of an interrupted rollback of `subvolume`, if there is one.
pub fn pending_journal(subvolume: &Path) -> Option<PathBuf> {
    journal_path(subvolume).filter(|p| p.exists())
}

/// Rolls configuration `store` back to snapshot `number`.
pub fn rollback(store: &Store, number: u32, mode: RollbackMode) -> Result<RollbackOutcome> {
    let target = store.get(number)?;
    let root = store.subvolume() == Path::new("/");
    match mode {
        RollbackMode::SetDefault => by_default(store, &target),
        RollbackMode::Auto if root => by_default(store, &target),
        RollbackMode::Auto => in_place(store, &target),
    }
}

fn safety_options(number: u32) -> CreateOptions {
    CreateOptions {
        kind: LocalKind::Single,
        pre_number: None,
        description: format!("rollback safety before restoring {number}"),
        tags: vec!["rollback".into()],
        cleanup: CleanupAlgorithm::Number,
        userdata: BTreeMap::from([("important".to_string(), "yes".to_string())]),
    }
}

fn btrfs(config: &str, what: String) -> impl FnOnce(snapguard_btrfs::Error) -> Error {
    let context = format!("config {config}: {what}");
    move |cause| Error::Btrfs { context, cause }
}

fn by_default(store: &Store, target: &LocalSnapshot) -> Result<RollbackOutcome> {
    let name = store.name();
    // Fail before changing anything if we may not set the default subvolume.
    snapguard_btrfs::default_subvolume(store.subvolume()).map_err(|e| match e {
        snapguard_btrfs::Error::NeedsRoot { .. } => Error::NeedsRoot {
            config: name.to_string(),
            action: "set the default subvolume",
        },
        e => btrfs(name, "read the default subvolume".into())(e),
    })?;
    let safety = store.create(&safety_options(target.number))?;
    let copy = store.create_writable_copy(
        target,
        &CreateOptions {
            description: format!("writable copy of {} (rollback)", target.number),
            cleanup: CleanupAlgorithm::None,
            ..CreateOptions::default()
        },
    )?;
    let info = snapguard_btrfs::subvolume_info(&copy.path)
        .map_err(btrfs(name, format!("read snapshot {}", copy.number)))?;
    snapguard_btrfs::set_default_subvolume(store.subvolume(), info.id)
        .map_err(btrfs(name, "set the default subvolume".into()))?;
    snapguard_btrfs::sync(store.subvolume()).map_err(btrfs(name, "sync the filesystem".into()))?;
    tracing::info!(
        "config {name}: default subvolume is now snapshot {} (id {})",
        copy.number,
        info.id
    );
    let warnings = fstab_warnings(
        store,
        &std::fs::read_to_string("/etc/fstab").unwrap_or_default(),
    );
    Ok(RollbackOutcome {
        restored: target.number,
        safety,
        how: RollbackKind::Default {
            copy: Box::new(copy),
            subvolume_id: info.id,
            warnings,
        },
    })
}

/// What the administrator must still arrange for the new default subvolume to be used, from
/// the text of `/etc/fstab` (only for the root filesystem).
fn fstab_warnings(store: &Store, fstab: &str) -> Vec<String> {
    if store.subvolume() != Path::new("/") {
        return Vec::new();
    }
    let mut out = Vec::new();
    let entries: Vec<Vec<&str>> = fstab
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    if let Some(root) = entries.iter().find(|f| f[1] == "/") {
        if root[3]
            .split(',')
            .any(|o| o.starts_with("subvol=") || o.starts_with("subvolid="))
        {
            out.push(format!(
                "/etc/fstab mounts / with '{}': remove the subvol=/subvolid= option (and any \
                 rootflags=subvol= on the kernel command line), or the new default subvolume \
                 is not used at boot",
                root[3]
            ));
        }
    }
    let dir = store.snapshot_dir();
    if dir.starts_with(store.subvolume()) && !entries.iter().any(|f| Path::new(f[1]) == dir) {
        out.push(format!(
            "{} is inside the root subvolume, so after the reboot it is an empty directory \
             unless /etc/fstab mounts the snapshot subvolume there (a line such as 'UUID=<fs> \
             {} btrfs subvol=<path of .snapshots from the top level> 0 0'); SnapGuard needs it \
             to see its snapshots",
            show(dir),
            show(dir)
        ));
    }
    out
}

fn in_place(store: &Store, target: &LocalSnapshot) -> Result<RollbackOutcome> {
    let name = store.name().to_string();
    let sub = store.subvolume().to_path_buf();
    let info = snapguard_btrfs::subvolume_info(&sub)
        .map_err(btrfs(&name, format!("read subvolume {}", sub.display())))?;
    let invalid = |reason: String| Error::InvalidOptions {
        config: name.clone(),
        reason,
    };
    let refuse = |reason: String| Error::RollbackRefused {
        config: name.clone(),
        reason,
    };
    if info.id == snapguard_btrfs::TOP_LEVEL_ID {
        return Err(invalid(format!(
            "{} is the top-level subvolume of its filesystem, which cannot be replaced in \
             place; roll back with --set-default (the next mount without subvol= uses the \
             restored snapshot)",
            show(&sub)
        )));
    }
    let (journal, temp) = match (journal_path(&sub), temp_path(&sub)) {
        (Some(j), Some(t)) => (j, t),
        _ => return Err(invalid(format!("{} has no parent directory", show(&sub)))),
    };
    if std::fs::symlink_metadata(&temp).is_ok() {
        return Err(refuse(format!(
            "{} is in the way (left over from an earlier rollback?); remove it first",
            show(&temp)
        )));
    }
    // Mounted with subvol=, or with a bind mount of a directory inside it: the mount would
    // keep the old subvolume alive and visible.
    let fs = snapguard_btrfs::fs_info(&sub).map_err(btrfs(&name, "read the filesystem".into()))?;
    let mounts = FsMounts::of_filesystem(fs.fsid)?;
    let busy = mounts.mount_points_of(info.id);
    if !busy.is_empty() {
        return Err(Error::SubvolumeBusy {
            config: name,
            path: sub,
            mounts: busy.iter().map(|p| show(p)).collect::<Vec<_>>().join(", "),
        });
    }
    // Another filesystem mounted inside it cannot be moved with it.
    let inside: Vec<String> = read_mounts()?
        .iter()
        .filter(|m| m.mount_point != sub && m.mount_point.starts_with(&sub))
        .map(|m| show(&m.mount_point))
        .collect();
    if !inside.is_empty() {
        return Err(refuse(format!(
            "{} has filesystems mounted inside it ({}); unmount them first",
            show(&sub),
            inside.join(", ")
        )));
    }
    let dir = store.snapshot_dir();
    if dir.starts_with(&sub) && !snapguard_btrfs::is_subvolume(dir).unwrap_or(true) {
        return Err(refuse(format!(
            "the snapshot directory {} is a plain directory inside the subvolume, so it would \
             be replaced by the snapshot's old copy; make it a btrfs subvolume (move the \
             snapshots into a new subvolume) before rolling back",
            show(dir)
        )));
    }
    let nested = nested_subvolumes(&sub)?;
    let safety = store.create(&safety_options(target.number))?;
    let j = Journal {
        config: name.clone(),
        subvolume: sub.clone(),
        temp,
        old_uuid: info.uuid.to_string(),
        target: target.number,
        target_path: target.path.clone(),
        target_uuid: target.uuid.clone(),
        safety: safety.number,
    };
    let (jdir, jname) = split(&journal)?;
    write_atomic(jdir, &jname, &to_json(&j)?)?;
    tracing::info!(
        "config {name}: rolling {} back to snapshot {} ({} nested subvolume(s) to move)",
        sub.display(),
        target.number,
        nested.len()
    );
    let (moved, set_aside) = run(&j, &journal)?;
    Ok(RollbackOutcome {
        restored: target.number,
        safety,
        how: RollbackKind::InPlace { moved, set_aside },
    })
}

/// Finishes an interrupted in-place rollback of configuration `name` from its journal.
pub fn resume(name: &str, cfg: &LocalConfig) -> Result<Option<(u32, Vec<PathBuf>)>> {
    let Some(journal) = pending_journal(&cfg.subvolume) else {
        return Ok(None);
    };
    let bytes = std::fs::read(&journal).map_err(|e| Error::io("read", &journal, e))?;
    let j: Journal = serde_json::from_slice(&bytes).map_err(|e| Error::Damaged {
        config: name.to_string(),
        path: journal.clone(),
        detail: e.to_string(),
    })?;
    if j.subvolume != cfg.subvolume {
        return Err(Error::Damaged {
            config: name.to_string(),
            path: journal,
            detail: format!(
                "it is for subvolume {}, not {}",
                j.subvolume.display(),
                cfg.subvolume.display()
            ),
        });
    }
    let (moved, _) = run(&j, &journal)?;
    Ok(Some((j.target, moved)))
}

fn uuid_of(config: &str, path: &Path) -> Result<Option<snapguard_btrfs::Subvolume>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    if !snapguard_btrfs::is_subvolume(path)
        .map_err(btrfs(config, format!("check {}", path.display())))?
    {
        return Err(Error::RollbackFailed {
            config: config.to_string(),
            detail: format!(
                "{} is not a btrfs subvolume; the rollback cannot go on: move it away",
                show(path)
            ),
        });
    }
    snapguard_btrfs::subvolume_info(path)
        .map(Some)
        .map_err(btrfs(config, format!("read {}", path.display())))
}

fn parse_uuid(config: &str, journal: &Path, s: &str) -> Result<Uuid> {
    s.parse().map_err(|e: String| Error::Damaged {
        config: config.to_string(),
        path: journal.to_path_buf(),
        detail: e,
    })
}

/// Runs the remaining steps of the rollback described by `j`: each step is recognised from
/// the filesystem, so running it again after a crash continues where it stopped.
fn run(j: &Journal, journal: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let c = j.config.as_str();
    let old = parse_uuid(c, journal, &j.old_uuid)?;
    let target = parse_uuid(c, journal, &j.target_uuid)?;
    let parent = j.subvolume.parent().unwrap_or(Path::new("/")).to_path_buf();
    let stuck = |detail: String| Error::Damaged {
        config: c.to_string(),
        path: journal.to_path_buf(),
        detail,
    };
    let at_path = uuid_of(c, &j.subvolume)?;
    let swapped = match &at_path {
        Some(s) if s.uuid == old => false,
        Some(s) if s.parent_uuid == Some(target) => true,
        Some(s) => {
            return Err(stuck(format!(
                "{} is neither the subvolume being replaced nor the restored copy (UUID {})",
                show(&j.subvolume),
                s.uuid
            )))
        }
        None => return Err(stuck(format!("{} is missing", show(&j.subvolume)))),
    };
    if !swapped {
        match uuid_of(c, &j.temp)? {
            Some(t) if t.parent_uuid == Some(target) => {}
            Some(t) => {
                return Err(stuck(format!(
                    "{} is not a copy of snapshot {} (UUID {})",
                    show(&j.temp),
                    j.target,
                    t.uuid
                )))
            }
            None => {
                snapguard_btrfs::snapshot(&j.target_path, &j.temp, false).map_err(btrfs(
                    c,
                    format!("make a writable copy of snapshot {}", j.target),
                ))?;
            }
        }
        exchange(c, &j.temp, &j.subvolume)?;
        fsync_dir(&parent)?;
    }
    // Now the restored copy is at the subvolume's path and the old subvolume at `temp`.
    let mut moved = Vec::new();
    let mut set_aside = Vec::new();
    if let Some(o) = uuid_of(c, &j.temp)? {
        if o.uuid != old {
            return Err(stuck(format!(
                "{} should be the replaced subvolume but has UUID {}",
                show(&j.temp),
                o.uuid
            )));
        }
        for rel in nested_subvolumes(&j.temp)? {
            if let Some(aside) = move_nested(c, &j.temp, &j.subvolume, &rel, j.target)? {
                set_aside.push(aside);
            }
            moved.push(rel);
        }
        snapguard_btrfs::delete_subvolume(&j.temp).map_err(btrfs(
            c,
            format!(
                "delete the replaced subvolume (now at {})",
                j.temp.display()
            ),
        ))?;
        fsync_dir(&parent)?;
    }
    std::fs::remove_file(journal).map_err(|e| Error::io("remove", journal, e))?;
    fsync_dir(&parent)?;
    tracing::info!(
        "config {c}: {} now holds snapshot {}; the previous state is snapshot {}",
        j.subvolume.display(),
        j.target,
        j.safety
    );
    Ok((moved, set_aside))
}

fn exchange(config: &str, a: &Path, b: &Path) -> Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(|e| Error::RollbackFailed {
        config: config.to_string(),
        detail: format!(
            "cannot swap {} and {} (renameat2 RENAME_EXCHANGE): {e}",
            show(a),
            show(b)
        ),
    })
}

/// Moves the nested subvolume `rel` from `old` into `new`. Its place in `new` is usually the
/// empty placeholder that btrfs leaves in a snapshot for a nested subvolume, which is removed;
/// anything else there (the restored snapshot had a real directory or file at that path) is
/// renamed aside to `<rel>.snapguard-from-<N>` and returned.
fn move_nested(
    config: &str,
    old: &Path,
    new: &Path,
    rel: &Path,
    target: u32,
) -> Result<Option<PathBuf>> {
    let src = old.join(rel);
    let dst = new.join(rel);
    let mut aside = None;
    if let Ok(m) = std::fs::symlink_metadata(&dst) {
        if m.is_dir() && m.ino() == NESTED_PLACEHOLDER_INO {
            std::fs::remove_dir(&dst).map_err(|e| Error::io("remove the placeholder", &dst, e))?;
        } else {
            let mut name = dst.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".snapguard-from-{target}"));
            let to = dst.with_file_name(name);
            std::fs::rename(&dst, &to).map_err(|e| Error::io("move aside", &dst, e))?;
            aside = Some(to.strip_prefix(new).unwrap_or(&to).to_path_buf());
        }
    }
    // The restored snapshot may lack the directories above it: make them like the old ones.
    let mut missing = Vec::new();
    let mut p = rel.parent();
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
        if new.join(d).is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        p = d.parent();
    }
    for d in missing.into_iter().rev() {
        let from =
            std::fs::metadata(old.join(&d)).map_err(|e| Error::io("read", old.join(&d), e))?;
        let to = new.join(&d);
        std::fs::create_dir(&to).map_err(|e| Error::io("create", &to, e))?;
        std::fs::set_permissions(&to, from.permissions())
            .map_err(|e| Error::io("set the permissions of", &to, e))?;
        std::os::unix::fs::lchown(&to, Some(from.uid()), Some(from.gid()))
            .map_err(|e| Error::io("set the owner of", &to, e))?;
    }
    std::fs::rename(&src, &dst).map_err(|e| Error::RollbackFailed {
        config: config.to_string(),
        detail: format!(
            "cannot move nested subvolume {} into the restored subvolume: {e}",
            show(&src)
        ),
    })?;
    if let Some(p) = dst.parent() {
        fsync_dir(p)?;
    }
    tracing::info!(
        "moved nested subvolume {} into the restored subvolume",
        rel.display()
    );
    Ok(aside)
}

/// The subvolumes directly nested in subvolume `root` (not those nested in them, which move
/// with them), as paths relative to it, sorted. Asks btrfs (a root-tree search, as root);
/// without the privilege for that, walks the subvolume.
pub fn nested_subvolumes(root: &Path) -> Result<Vec<PathBuf>> {
    match snapguard_btrfs::nested_subvolumes(root) {
        Ok(v) => Ok(v),
        Err(snapguard_btrfs::Error::NeedsRoot { .. }) => nested_by_walk(root),
        Err(cause) => Err(Error::Btrfs {
            context: format!("list the subvolumes nested in {}", root.display()),
            cause,
        }),
    }
}

/// [`nested_subvolumes`] by walking the subvolume's directories without following symlinks; a
/// nested subvolume shows up as a directory with another device number and the subvolume
/// root's inode number.
fn nested_by_walk(root: &Path) -> Result<Vec<PathBuf>> {
    let dev = std::fs::symlink_metadata(root)
        .map_err(|e| Error::io("read", root, e))?
        .dev();
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("list", &dir, e))?;
            let ft = ent
                .file_type()
                .map_err(|e| Error::io("read", ent.path(), e))?;
            if !ft.is_dir() {
                continue;
            }
            let m = std::fs::symlink_metadata(ent.path())
                .map_err(|e| Error::io("read", ent.path(), e))?;
            let child = rel.join(ent.file_name());
            if m.dev() == dev {
                stack.push(child);
            } else if m.ino() == snapguard_btrfs::SUBVOLUME_ROOT_INO {
                out.push(child);
            }
            // Another device that is not a subvolume root is a mount point: not descended
            // into, and refused before a rollback starts.
        }
    }
    out.sort();
    Ok(out)
}

fn split(path: &Path) -> Result<(&Path, String)> {
    match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) => Ok((d, n.to_string_lossy().into_owned())),
        _ => Err(Error::Internal(format!("{} has no parent", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_warnings_only_for_root() {
        let cfg = LocalConfig::new("/");
        let store = Store::for_tests("root", &cfg);
        let w = fstab_warnings(
            &store,
            "# comment\nUUID=x / btrfs defaults,subvol=@ 0 0\nUUID=x /home btrfs subvol=@home 0 0\n",
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("subvol=@"), "{w:?}");
        assert!(w[1].contains("/.snapshots"), "{w:?}");
        let w = fstab_warnings(
            &store,
            "UUID=x / btrfs defaults 0 0\nUUID=x /.snapshots btrfs subvol=@/.snapshots 0 0\n",
        );
        assert!(w.is_empty(), "{w:?}");
        let data = LocalConfig::new("/srv/data");
        let store = Store::for_tests("data", &data);
        assert!(fstab_warnings(&store, "UUID=x / btrfs subvol=@ 0 0\n").is_empty());
    }

    #[test]
    fn journal_beside_the_subvolume() {
        assert_eq!(
            journal_path(Path::new("/mnt/pool/data")),
            Some(PathBuf::from("/mnt/pool/.data.snapguard-rollback.json"))
        );
        assert_eq!(
            temp_path(Path::new("/mnt/pool/data")),
            Some(PathBuf::from("/mnt/pool/.data.snapguard-rollback"))
        );
        assert_eq!(journal_path(Path::new("/")), None);
    }
}
