//! Consistent backups of btrfs subvolumes: read a read-only snapshot, record the live path.
//!
//! Before the walk, every backed-up path that lies in a btrfs subvolume is mapped to the same
//! path inside a read-only snapshot of that subvolume, taken for this backup (one per
//! subvolume, named `.snapguard-backup.PID.N` inside it, deleted afterwards) or given by the
//! caller (`read_from`: a local-tier snapshot). The snapshots are made in the filesystem's
//! top-level subvolume, mounted privately for the backup (root only), so that the backed-up
//! subvolume itself is not touched at all; where that is not possible (not root, or the
//! subvolume is the top level) they are made inside the subvolume, whose root directory times
//! are put back afterwards. The walk reads the snapshot and records the
//! live paths, so the snapshot in the repository is one point in time. Nested subvolumes show
//! up in a snapshot as empty placeholder directories; the walk snapshots each one when it meets
//! it ([`Sources::nested`]), except read-only ones (snapshots themselves, such as a Snapper-style
//! `.snapshots` tier), which stay empty directories.
//!
//! Device numbers: every snapshot has its own anonymous device number, and a live subvolume's
//! may change at each mount. Nodes read through a snapshot record a stable device number
//! derived from the subvolume's UUID instead, so change detection and hard-link grouping work
//! across backups and reboots.
//!
//! Change detection by generation: when the parent snapshot read the same subvolume (same
//! UUID) through a snapshot taken in transaction G, with the same excludes, and without errors,
//! the inodes changed since G are found with a tree search ([`snapguard_btrfs::changed_dirs`]);
//! the walk then reuses the parent's node for every entry whose inode did not change, and the
//! parent's whole subtree for every directory with nothing changed below it, without `stat`.

use super::BtrfsMode;
use crate::{Error, Result};
use snapguard_btrfs as btrfs;
use snapguard_format::{BtrfsOrigin, SnapshotFile};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The name prefix of the snapshots a backup takes (inside the subvolume it snapshots).
pub(crate) const TEMP_PREFIX: &[u8] = b".snapguard-backup.";

/// The sources of one backup: where each path is read from, and the snapshots to delete.
pub(crate) struct Sources {
    /// (live path, path read) for each backed-up path; equal when read live.
    targets: Vec<(PathBuf, PathBuf)>,
    /// One per subvolume read through a snapshot.
    pub origins: Vec<Origin>,
    /// Snapshots taken by this backup, deleted when it ends (nested ones last-in first-out).
    temp: Vec<PathBuf>,
    /// Device numbers of the snapshots read → stable device numbers to record.
    dev_map: HashMap<u64, u64>,
    /// Notes and warnings for the user: (path, message, is_error).
    pub notes: Vec<(PathBuf, String, bool)>,
    counter: u32,
    /// Top-level subvolumes mounted for this backup, by filesystem.
    tops: Vec<TopLevel>,
    /// Subvolume roots that got a snapshot inside them: their times before, to put back.
    touched: Vec<(PathBuf, rustix::fs::Timestamps)>,
    /// (snapshot root, live root) of every snapshot read, for the roots' access times.
    roots: Vec<(PathBuf, PathBuf)>,
    /// Mount points (live paths): a snapshot shows the directory below them, not what is
    /// mounted there.
    mounts: std::collections::HashSet<PathBuf>,
}

/// A filesystem's top-level subvolume, mounted where the backup's snapshots are made.
struct TopLevel {
    fsid: btrfs::Uuid,
    /// None where it could not be mounted.
    mnt: Option<PathBuf>,
}

/// A subvolume read through a read-only snapshot.
pub(crate) struct Origin {
    /// The live subvolume root (as recorded).
    pub live_root: PathBuf,
    /// The snapshot's root.
    pub snap_root: PathBuf,
    pub record: BtrfsOrigin,
    /// Set when the parent allows change detection by generation.
    pub changed: Option<btrfs::ChangedDirs>,
}

/// A stable, non-zero device number for nodes read from subvolume `uuid`: the high bit set (no
/// real `dev_t` of this machine has it) and 63 bits of the UUID.
fn stable_dev(uuid: &btrfs::Uuid) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&uuid.0[..8]);
    u64::from_le_bytes(b) | (1 << 63)
}

fn dev_of(path: &Path) -> Result<u64> {
    std::fs::symlink_metadata(path)
        .map(|m| m.dev())
        .map_err(|e| Error::io(path, e))
}

fn btrfs_err(e: btrfs::Error) -> Error {
    Error::InvalidArgument(e.to_string())
}

impl Sources {
    /// Map `paths` (absolute, sorted) to what will be read, taking snapshots as `mode` says.
    pub(crate) fn prepare(
        paths: &[PathBuf],
        mode: BtrfsMode,
        read_from: Option<&Path>,
        local: Option<(String, u32)>,
        walk_key: [u8; 32],
    ) -> Result<Sources> {
        let mut s = Sources {
            targets: Vec::new(),
            origins: Vec::new(),
            temp: Vec::new(),
            dev_map: HashMap::new(),
            notes: Vec::new(),
            counter: 0,
            tops: Vec::new(),
            touched: Vec::new(),
            roots: Vec::new(),
            mounts: mount_points(),
        };
        if let Some(from) = read_from {
            let [path] = paths else {
                return Err(Error::InvalidArgument(
                    "reading from a snapshot needs exactly one backup path".into(),
                ));
            };
            s.targets.push((path.clone(), from.to_path_buf()));
            if btrfs::is_subvolume(from).map_err(btrfs_err)? {
                let info = btrfs::subvolume_info(from).map_err(btrfs_err)?;
                let fsid = btrfs::fs_info(from).map_err(btrfs_err)?.fsid;
                // A snapshot records the subvolume it was taken of; a received or free-standing
                // subvolume is its own origin.
                let live_uuid = info.parent_uuid.unwrap_or(info.uuid);
                s.add_origin(path, from, &info, live_uuid, fsid, local, walk_key)?;
            }
            return Ok(s);
        }
        for path in paths {
            let read = match mode {
                BtrfsMode::Off => None,
                BtrfsMode::Auto | BtrfsMode::Require => match s.snapshot_for(path, walk_key) {
                    Ok(r) => r,
                    Err(e) if mode == BtrfsMode::Auto => {
                        s.notes.push((
                            path.clone(),
                            format!("no btrfs snapshot taken, backing up the live files (the backup is not point-in-time): {e}"),
                            false,
                        ));
                        None
                    }
                    Err(e) => return Err(e),
                },
            };
            if read.is_none() && mode == BtrfsMode::Require {
                return Err(Error::InvalidArgument(format!(
                    "{}: not on btrfs, so no snapshot can be taken (drop --btrfs-snapshot=require)",
                    path.display()
                )));
            }
            s.targets
                .push((path.clone(), read.unwrap_or_else(|| path.clone())));
        }
        Ok(s)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_origin(
        &mut self,
        live_root: &Path,
        snap_root: &Path,
        info: &btrfs::Subvolume,
        live_uuid: btrfs::Uuid,
        fsid: btrfs::Uuid,
        local: Option<(String, u32)>,
        walk_key: [u8; 32],
    ) -> Result<()> {
        self.dev_map
            .insert(dev_of(snap_root)?, stable_dev(&live_uuid));
        self.roots
            .push((snap_root.to_path_buf(), live_root.to_path_buf()));
        self.origins.push(Origin {
            live_root: live_root.to_path_buf(),
            snap_root: snap_root.to_path_buf(),
            record: BtrfsOrigin {
                subvolume: serde_bytes::ByteBuf::from(live_root.as_os_str().as_bytes().to_vec()),
                subvolume_uuid: live_uuid.0,
                fsid: fsid.0,
                snapshot_uuid: info.uuid.0,
                generation: info.otransid,
                nested: Vec::new(),
                local,
                walk_key,
            },
            changed: None,
        });
        Ok(())
    }

    /// The path to read instead of `path` (in a snapshot of its subvolume), or None if it is not
    /// on btrfs.
    fn snapshot_for(&mut self, path: &Path, walk_key: [u8; 32]) -> Result<Option<PathBuf>> {
        let Some(root) = btrfs::subvolume_root(path).map_err(btrfs_err)? else {
            return Ok(None);
        };
        let rel = path.strip_prefix(&root).unwrap_or(Path::new(""));
        if let Some(o) = self.origins.iter().find(|o| o.live_root == root) {
            return Ok(Some(o.snap_root.join(rel)));
        }
        let snap = self.take_snapshot(&root)?;
        let info = btrfs::subvolume_info(&snap).map_err(btrfs_err)?;
        let live = btrfs::subvolume_info(&root).map_err(btrfs_err)?;
        let fsid = btrfs::fs_info(&root).map_err(btrfs_err)?.fsid;
        self.add_origin(&root, &snap, &info, live.uuid, fsid, None, walk_key)?;
        tracing::info!(subvolume = %root.display(), snapshot = %snap.display(), generation = info.otransid, "reading a read-only btrfs snapshot");
        Ok(Some(snap.join(rel)))
    }

    /// Take a read-only snapshot of subvolume `root`: in the top-level subvolume if it can be
    /// mounted, else inside `root`. Snapshots left there by backups that died are removed first.
    fn take_snapshot(&mut self, root: &Path) -> Result<PathBuf> {
        let dir = match self.top_level(root) {
            Some(top) => top,
            None => {
                if !self.touched.iter().any(|(p, _)| p == root) {
                    if let Ok(m) = std::fs::symlink_metadata(root) {
                        self.touched.push((root.to_path_buf(), times_of(&m)));
                    }
                }
                root.to_path_buf()
            }
        };
        remove_stale(&dir, &mut self.notes);
        self.counter += 1;
        let mut name = TEMP_PREFIX.to_vec();
        name.extend_from_slice(format!("{}.{}", std::process::id(), self.counter).as_bytes());
        let snap = dir.join(std::ffi::OsStr::from_bytes(&name));
        // Commit what was written so far first: changes made in the snapshot's own transaction
        // count as changed for the next backup's change detection (the conservative bound), so
        // that transaction should hold as little as possible.
        if let Err(e) = btrfs::sync(root) {
            tracing::debug!("{e}");
        }
        btrfs::snapshot(root, &snap, true).map_err(btrfs_err)?;
        self.temp.push(snap.clone());
        Ok(snap)
    }

    /// Where the top-level subvolume of `root`'s filesystem is mounted for this backup, if it
    /// can be (and `root` is not the top level itself).
    fn top_level(&mut self, root: &Path) -> Option<PathBuf> {
        let fsid = btrfs::fs_info(root).ok()?.fsid;
        if let Some(t) = self.tops.iter().find(|t| t.fsid == fsid) {
            return t.mnt.clone();
        }
        let mnt = mount_top_level(root);
        if let Err(e) = &mnt {
            tracing::debug!(
                "top-level subvolume not mounted, snapshots go inside the subvolume: {e}"
            );
        }
        let mnt = mnt.ok().flatten();
        self.tops.push(TopLevel {
            fsid,
            mnt: mnt.clone(),
        });
        mnt
    }

    /// The (live, read) pair for each backed-up path.
    pub(crate) fn read_path(&self, live: &Path) -> PathBuf {
        self.targets
            .iter()
            .find(|(l, _)| l == live)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| live.to_path_buf())
    }

    /// The access time to record for the root of a snapshot read at `read` (btrfs gives a
    /// snapshot's root directory a new one; the live directory's is the right one), if `read`
    /// is such a root.
    pub(crate) fn root_atime(&self, read: &Path) -> Option<(i64, u32)> {
        let (_, live) = self.roots.iter().find(|(snap, _)| snap == read)?;
        let m = std::fs::symlink_metadata(live).ok()?;
        Some((m.atime(), m.atime_nsec() as u32))
    }

    /// The device number to record for an entry on device `dev`.
    pub(crate) fn record_dev(&self, dev: u64) -> u64 {
        self.dev_map.get(&dev).copied().unwrap_or(dev)
    }

    /// Whether the live path `live` is a mount point (what a snapshot shows there is the
    /// directory below the mount).
    pub(crate) fn is_mount_point(&self, live: &Path) -> bool {
        self.mounts.contains(live)
    }

    /// Record a note for the user.
    pub(crate) fn note(&mut self, path: &Path, message: String) {
        self.notes.push((path.to_path_buf(), message, false));
    }

    /// A nested subvolume met as a placeholder at `live` (read at `placeholder`): the path of a
    /// new read-only snapshot of it to read instead, or None if it must stay an empty directory
    /// (it is read-only itself, or was deleted since).
    pub(crate) fn nested(&mut self, live: &Path) -> Result<Option<PathBuf>> {
        match btrfs::is_subvolume(live) {
            Ok(true) => {}
            _ => return Ok(None),
        }
        let info = btrfs::subvolume_info(live).map_err(btrfs_err)?;
        if info.readonly {
            self.notes.push((
                live.to_path_buf(),
                "read-only nested subvolume (a snapshot) not descended into".into(),
                false,
            ));
            return Ok(None);
        }
        let snap = self.take_snapshot(live)?;
        let sinfo = btrfs::subvolume_info(&snap).map_err(btrfs_err)?;
        self.dev_map.insert(dev_of(&snap)?, stable_dev(&info.uuid));
        self.roots.push((snap.clone(), live.to_path_buf()));
        // Recorded under the outermost origin holding it.
        if let Some(o) = self
            .origins
            .iter_mut()
            .filter(|o| live.starts_with(&o.live_root))
            .max_by_key(|o| o.live_root.as_os_str().len())
        {
            if let Ok(rel) = live.strip_prefix(&o.live_root) {
                o.record.nested.push(serde_bytes::ByteBuf::from(
                    rel.as_os_str().as_bytes().to_vec(),
                ));
            }
        }
        tracing::info!(subvolume = %live.display(), generation = sinfo.otransid, "reading a nested subvolume through its own snapshot");
        Ok(Some(snap))
    }

    /// Turn on change detection by generation for each origin whose subvolume the parent
    /// snapshot read the same way. Needs root (tree searches); silently skipped otherwise.
    pub(crate) fn enable_generations(&mut self, parent: &SnapshotFile) {
        let Some(src) = &parent.source else { return };
        if parent.summary.as_ref().is_some_and(|s| s.errors > 0) {
            return;
        }
        for o in &mut self.origins {
            let Some(prev) = src.btrfs.iter().find(|p| {
                p.subvolume == o.record.subvolume
                    && p.subvolume_uuid == o.record.subvolume_uuid
                    && p.fsid == o.record.fsid
                    && p.walk_key == o.record.walk_key
                    && p.generation <= o.record.generation
            }) else {
                continue;
            };
            match btrfs::changed_dirs(&o.snap_root, prev.generation) {
                Ok(Some(mut c)) => {
                    // Nested subvolumes change in trees of their own: always walk down to them.
                    for n in &prev.nested {
                        c.mark_dirty(n);
                    }
                    tracing::info!(
                        subvolume = %o.live_root.display(),
                        since = prev.generation,
                        changed_inodes = c.changed_inodes,
                        dirty_dirs = c.dirty_dirs(),
                        "change detection by btrfs generation"
                    );
                    o.changed = Some(c);
                }
                Ok(None) => {}
                Err(e) => tracing::debug!("no change detection by generation: {e}"),
            }
        }
    }

    /// The generation data for the directory `live` (and its path relative to the subvolume
    /// root), if change detection by generation applies there.
    pub(crate) fn generations_for<'a>(
        &'a self,
        live: &'a Path,
    ) -> Option<(&'a btrfs::ChangedDirs, &'a [u8])> {
        self.origins.iter().find_map(|o| {
            let c = o.changed.as_ref()?;
            let rel = live.strip_prefix(&o.live_root).ok()?;
            Some((c, rel.as_os_str().as_bytes()))
        })
    }

    /// The origins to record in the snapshot.
    pub(crate) fn records(&self) -> Vec<BtrfsOrigin> {
        self.origins.iter().map(|o| o.record.clone()).collect()
    }
}

impl Drop for Sources {
    fn drop(&mut self) {
        for snap in self.temp.iter().rev() {
            if let Err(e) = btrfs::delete_subvolume(snap) {
                tracing::warn!(
                    "{e}; delete it with `btrfs subvolume delete {}`",
                    snap.display()
                );
            }
        }
        for t in &self.tops {
            if let Some(m) = &t.mnt {
                unmount(m);
            }
        }
        // Making and deleting an entry changed these directories' times: put them back.
        for (root, times) in &self.touched {
            let _ = rustix::fs::utimensat(
                rustix::fs::CWD,
                root,
                times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            );
        }
    }
}

fn times_of(m: &std::fs::Metadata) -> rustix::fs::Timestamps {
    rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec() as _,
        },
    }
}

/// Where the backup mounts top-level subvolumes: `/run/snapguard/backup-top.PID.N`.
const TOP_MOUNT_PREFIX: &str = "backup-top.";

fn top_mount_base() -> PathBuf {
    PathBuf::from("/run/snapguard")
}

/// Mount the top-level subvolume of the filesystem holding `root` (root only). None if `root`
/// is the top level already (snapshots then go inside it).
fn mount_top_level(root: &Path) -> std::io::Result<Option<PathBuf>> {
    let info = btrfs::subvolume_info(root).map_err(std::io::Error::other)?;
    if info.id == btrfs::TOP_LEVEL_ID {
        return Ok(None);
    }
    let source = mount_source(root)?;
    let base = top_mount_base();
    std::fs::create_dir_all(&base)?;
    remove_stale_mounts(&base);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mnt = base.join(format!("{TOP_MOUNT_PREFIX}{}.{n}", std::process::id()));
    std::fs::create_dir_all(&mnt)?;
    if let Err(e) = rustix::mount::mount(
        &source,
        &mnt,
        "btrfs",
        rustix::mount::MountFlags::NOSUID
            | rustix::mount::MountFlags::NODEV
            | rustix::mount::MountFlags::NOEXEC,
        c"subvolid=5",
    ) {
        let _ = std::fs::remove_dir(&mnt);
        return Err(e.into());
    }
    Ok(Some(mnt))
}

fn unmount(mnt: &Path) {
    if let Err(e) = rustix::mount::unmount(mnt, rustix::mount::UnmountFlags::DETACH) {
        tracing::warn!("cannot unmount {}: {e}", mnt.display());
    }
    let _ = std::fs::remove_dir(mnt);
}

/// Unmount top-level mounts of backups whose process is gone.
fn remove_stale_mounts(base: &Path) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TOP_MOUNT_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            // Its snapshots are removed by the next backup that mounts the top level.
            let _ = rustix::mount::unmount(e.path(), rustix::mount::UnmountFlags::DETACH);
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// Every mount point of this process's mount namespace (from /proc/self/mountinfo).
fn mount_points() -> std::collections::HashSet<PathBuf> {
    let Ok(info) = std::fs::read("/proc/self/mountinfo") else {
        return Default::default();
    };
    info.split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4).map(unescape))
        .collect()
}

/// The device mounted at the mount point that holds `path` (from /proc/self/mountinfo).
fn mount_source(path: &Path) -> std::io::Result<PathBuf> {
    let info = std::fs::read("/proc/self/mountinfo")?;
    let mut best: Option<(usize, PathBuf)> = None;
    for line in info.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        let (Some(mp), Some(fstype), Some(source)) =
            (fields.get(4), fields.get(sep + 1), fields.get(sep + 2))
        else {
            continue;
        };
        let mp = unescape(mp);
        if path.starts_with(&mp) && best.as_ref().is_none_or(|(l, _)| mp.as_os_str().len() > *l) {
            if *fstype != b"btrfs" {
                best = Some((mp.as_os_str().len(), PathBuf::new()));
            } else {
                best = Some((mp.as_os_str().len(), unescape(source)));
            }
        }
    }
    match best {
        Some((_, dev)) if !dev.as_os_str().is_empty() => Ok(dev),
        _ => Err(std::io::Error::other(format!(
            "no btrfs mount found for {}",
            path.display()
        ))),
    }
}

/// Undo mountinfo's octal escapes (`\040` for a space).
fn unescape(b: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from(std::ffi::OsStr::from_bytes(&out)))
}

/// Delete `.snapguard-backup.PID.N` snapshots in `root` whose process is gone.
fn remove_stale(root: &Path, notes: &mut Vec<(PathBuf, String, bool)>) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.as_bytes().strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let pid = std::str::from_utf8(rest)
            .ok()
            .and_then(|r| r.split('.').next())
            .and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = e.path();
        match btrfs::delete_subvolume(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a snapshot left by an interrupted backup")
            }
            Err(err) => notes.push((
                path,
                format!("left by an interrupted backup and cannot be removed: {err}"),
                false,
            )),
        }
    }
}

/// Whether a directory entry is a placeholder for a nested subvolume inside a snapshot.
pub(crate) fn is_placeholder(ino: u64) -> bool {
    ino == btrfs::NESTED_PLACEHOLDER_INO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(br"/mnt/a\040b"), PathBuf::from("/mnt/a b"));
        assert_eq!(unescape(br"/x\134y"), PathBuf::from(r"/x\y"));
        assert_eq!(unescape(br"/short\04"), PathBuf::from(r"/short\04"));
        assert_eq!(unescape(br"\"), PathBuf::from(r"\"));
    }

    #[test]
    fn stable_devices_differ_by_subvolume_and_have_the_high_bit() {
        let a = stable_dev(&btrfs::Uuid([1; 16]));
        let b = stable_dev(&btrfs::Uuid([2; 16]));
        assert_ne!(a, b);
        assert!(a >> 63 == 1 && b >> 63 == 1);
        assert_eq!(a, stable_dev(&btrfs::Uuid([1; 16])));
    }

    #[test]
    fn mount_source_finds_the_longest_prefix() {
        // `/` is always mounted; whatever it is, a path under it resolves to some mount, and a
        // non-btrfs one is refused with a message.
        match mount_source(Path::new("/proc/self")) {
            Ok(dev) => panic!("/proc is not btrfs, got {dev:?}"),
            Err(e) => assert!(e.to_string().contains("no btrfs mount"), "{e}"),
        }
    }
}
