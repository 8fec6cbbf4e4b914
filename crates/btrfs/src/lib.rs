//! btrfs subvolumes and snapshots through the kernel's ioctls (no `btrfs` tool, no C library).
//!
//! What SnapGuard needs from btrfs: to know whether a path is on btrfs and which subvolume
//! holds it ([`subvolume_root`]), a subvolume's identity and generations ([`subvolume_info`]),
//! to create and delete (read-only) snapshots, to flip the read-only flag, to read and set the
//! default subvolume (root rollback), qgroup sizes when quotas are on, and which directories
//! hold inodes changed since a generation ([`changed_dirs`]), which lets a backup skip
//! untouched subtrees without even `stat`ing them. Send/receive streams are left to the
//! `btrfs` tool, whose receive side has no kernel equivalent.
//!
//! Privileges: creating snapshots needs write access to the destination directory; deleting
//! them, setting the default subvolume, tree searches and inode lookups need `CAP_SYS_ADMIN`
//! (root). Errors say which.

mod search;
#[allow(unsafe_code)]
mod sys;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use search::{changed_dirs, ChangedDirs};

use rustix::fs::{Mode, OFlags};
use std::ffi::OsStr;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `BTRFS_SUPER_MAGIC`, the `f_type` of a btrfs filesystem.
const SUPER_MAGIC: i64 = 0x9123_683e;
/// The inode number of every subvolume's root directory (`BTRFS_FIRST_FREE_OBJECTID`).
pub const SUBVOLUME_ROOT_INO: u64 = 256;
/// The inode number of the empty directory that stands for a nested subvolume inside a snapshot
/// (`BTRFS_EMPTY_SUBVOL_DIR_OBJECTID`): snapshots do not include nested subvolumes.
pub const NESTED_PLACEHOLDER_INO: u64 = 2;
/// The id of the top-level subvolume (`BTRFS_FS_TREE_OBJECTID`).
pub const TOP_LEVEL_ID: u64 = 5;

/// Errors of btrfs operations. Each names the path and says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: not on a btrfs filesystem")]
    NotBtrfs { path: PathBuf },
    #[error("{path}: not a btrfs subvolume (a subvolume's root directory has inode number 256)")]
    NotSubvolume { path: PathBuf },
    #[error("{path}: cannot {op}: permission denied (this needs root: CAP_SYS_ADMIN)")]
    NeedsRoot { path: PathBuf, op: &'static str },
    #[error("{path}: cannot {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn io(path: &Path, op: &'static str, source: std::io::Error) -> Error {
        if source.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) {
            return Error::NeedsRoot {
                path: path.to_path_buf(),
                op,
            };
        }
        Error::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    /// The underlying OS error, if any (for callers that distinguish e.g. `ENOENT`).
    pub fn os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::NeedsRoot { .. } => Some(rustix::io::Errno::PERM.raw_os_error()),
            _ => None,
        }
    }
}

/// A btrfs UUID (of a subvolume or a filesystem).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
    fn non_nil(bytes: [u8; 16]) -> Option<Uuid> {
        let u = Uuid(bytes);
        (!u.is_nil()).then_some(u)
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Uuid {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Uuid, String> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("{s:?} is not a UUID"));
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Uuid(out))
    }
}

/// A subvolume's identity, lineage and generations (`btrfs subvolume show`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subvolume {
    /// The subvolume (tree) id.
    pub id: u64,
    /// Its name in its parent directory.
    pub name: Vec<u8>,
    /// The id of the subvolume containing it.
    pub parent_id: u64,
    /// The inode of the directory in the parent that contains it.
    pub dir_id: u64,
    /// The last transaction that changed this subvolume.
    pub generation: u64,
    pub readonly: bool,
    pub uuid: Uuid,
    /// For a snapshot: the UUID of the subvolume it was taken of.
    pub parent_uuid: Option<Uuid>,
    /// For a received subvolume: the UUID of the snapshot that was sent.
    pub received_uuid: Option<Uuid>,
    /// The transaction that last changed the subvolume's contents (`ctransid`).
    pub ctransid: u64,
    /// The transaction in which it was created (`otransid`): for a snapshot, every change to
    /// its source made in a later transaction is not in the snapshot.
    pub otransid: u64,
    /// Creation time, seconds and nanoseconds since the epoch.
    pub otime: (i64, u32),
}

/// Which filesystem a path is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsInfo {
    pub fsid: Uuid,
    /// The current transaction id of the filesystem.
    pub generation: u64,
}

/// Usage of one subvolume from its level-0 qgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct QgroupUsage {
    /// Bytes referenced (shared or not).
    pub referenced: u64,
    /// Bytes only this subvolume references: what deleting it frees.
    pub exclusive: u64,
}

fn open_dir(path: &Path, op: &'static str) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| Error::io(path, op, e.into()))
}

/// Whether `path` (which must exist) is on btrfs.
pub fn is_btrfs(path: &Path) -> Result<bool> {
    let st = rustix::fs::statfs(path).map_err(|e| Error::io(path, "statfs", e.into()))?;
    Ok(st.f_type as i64 == SUPER_MAGIC)
}

/// Whether `path` is the root directory of a btrfs subvolume.
pub fn is_subvolume(path: &Path) -> Result<bool> {
    if !is_btrfs(path)? {
        return Ok(false);
    }
    let st = rustix::fs::lstat(path).map_err(|e| Error::io(path, "stat", e.into()))?;
    Ok(st.st_ino == SUBVOLUME_ROOT_INO && (st.st_mode & 0o170000) == 0o040000)
}

/// The root of the subvolume that contains `path` (itself if it is one), or `None` if `path`
/// is not on btrfs. `path` should be absolute and normalized; symlinks in it are followed.
pub fn subvolume_root(path: &Path) -> Result<Option<PathBuf>> {
    let mut cur = path.to_path_buf();
    let meta = std::fs::metadata(&cur).map_err(|e| Error::io(path, "stat", e))?;
    if !meta.is_dir() && !cur.pop() {
        return Ok(None);
    }
    if !is_btrfs(&cur)? {
        return Ok(None);
    }
    loop {
        if is_subvolume(&cur)? {
            return Ok(Some(cur));
        }
        if !cur.pop() || !is_btrfs(&cur)? {
            // A btrfs mount always has a subvolume root at its mount point.
            return Err(Error::Invalid {
                path: path.to_path_buf(),
                detail: "on btrfs, but no subvolume root found above it".into(),
            });
        }
    }
}

/// Identity and generations of the subvolume whose root is `path`.
pub fn subvolume_info(path: &Path) -> Result<Subvolume> {
    if !is_subvolume(path)? {
        return Err(Error::NotSubvolume {
            path: path.to_path_buf(),
        });
    }
    let fd = open_dir(path, "open the subvolume")?;
    let mut a = sys::zeroed::<sys::GetSubvolInfoArgs>();
    sys::get_subvol_info(fd.as_fd(), &mut a)
        .map_err(|e| Error::io(path, "read the subvolume's information", e))?;
    let name_len = a.name.iter().position(|&b| b == 0).unwrap_or(a.name.len());
    Ok(Subvolume {
        id: a.treeid,
        name: a.name[..name_len].to_vec(),
        parent_id: a.parent_id,
        dir_id: a.dirid,
        generation: a.generation,
        // The root item's flags: BTRFS_ROOT_SUBVOL_RDONLY is bit 0 there.
        readonly: a.flags & 1 != 0,
        uuid: Uuid(a.uuid),
        parent_uuid: Uuid::non_nil(a.parent_uuid),
        received_uuid: Uuid::non_nil(a.received_uuid),
        ctransid: a.ctransid,
        otransid: a.otransid,
        otime: (a.otime.sec as i64, a.otime.nsec),
    })
}

/// Identity and current generation of the filesystem holding `path`.
pub fn fs_info(path: &Path) -> Result<FsInfo> {
    if !is_btrfs(path)? {
        return Err(Error::NotBtrfs {
            path: path.to_path_buf(),
        });
    }
    let fd = open_dir(path, "open")?;
    let mut a = sys::zeroed::<sys::FsInfoArgs>();
    // Ask for the generation (BTRFS_FS_INFO_FLAG_GENERATION).
    a.flags = 1 << 1;
    sys::fs_info(fd.as_fd(), &mut a)
        .map_err(|e| Error::io(path, "read the filesystem's information", e))?;
    Ok(FsInfo {
        fsid: Uuid(a.fsid),
        generation: a.generation,
    })
}

fn split_parent<'a>(path: &'a Path, op: &'static str) -> Result<(&'a Path, &'a OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => Ok((
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            },
            n,
        )),
        _ => Err(Error::Invalid {
            path: path.to_path_buf(),
            detail: format!("cannot {op}: the path has no parent directory or no name"),
        }),
    }
}

fn fill_name(dst: &mut [u8], name: &OsStr, path: &Path) -> Result<()> {
    let b = name.as_bytes();
    if b.len() >= dst.len() || b.contains(&0) || b.contains(&b'/') {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            detail: "invalid subvolume name".into(),
        });
    }
    dst[..b.len()].copy_from_slice(b);
    Ok(())
}

/// Create a new, empty subvolume at `path` (whose parent directory must exist).
pub fn create_subvolume(path: &Path) -> Result<()> {
    let (parent, name) = split_parent(path, "create a subvolume")?;
    let dir = open_dir(parent, "create a subvolume in")?;
    let mut a = sys::zeroed::<sys::VolArgsV2>();
    fill_name(&mut a.name, name, path)?;
    sys::subvol_create_v2(dir.as_fd(), &a).map_err(|e| Error::io(path, "create a subvolume", e))
}

/// Snapshot the subvolume `source` as a new subvolume at `dest` (whose parent directory must
/// exist and be on the same filesystem), read-only if `readonly`. The snapshot is committed to
/// disk before this returns.
pub fn snapshot(source: &Path, dest: &Path, readonly: bool) -> Result<()> {
    if !is_subvolume(source)? {
        return Err(Error::NotSubvolume {
            path: source.to_path_buf(),
        });
    }
    let src = open_dir(source, "open the subvolume to snapshot")?;
    let (parent, name) = split_parent(dest, "create a snapshot")?;
    let dir = open_dir(parent, "create a snapshot in")?;
    let mut a = sys::zeroed::<sys::VolArgsV2>();
    a.fd = i64::from(std::os::fd::AsRawFd::as_raw_fd(&src));
    a.flags = if readonly { sys::SUBVOL_RDONLY } else { 0 };
    fill_name(&mut a.name, name, dest)?;
    sys::snap_create_v2(dir.as_fd(), &a).map_err(|e| Error::io(dest, "create a snapshot", e))
}

/// Delete the subvolume (or snapshot) at `path`. It must not contain other subvolumes. Its
/// space is freed in the background.
pub fn delete_subvolume(path: &Path) -> Result<()> {
    if !is_subvolume(path)? {
        return Err(Error::NotSubvolume {
            path: path.to_path_buf(),
        });
    }
    let (parent, name) = split_parent(path, "delete a subvolume")?;
    let dir = open_dir(parent, "delete a subvolume in")?;
    let mut a = sys::zeroed::<sys::VolArgs>();
    fill_name(&mut a.name, name, path)?;
    sys::snap_destroy(dir.as_fd(), &a).map_err(|e| Error::io(path, "delete the subvolume", e))
}

/// Whether the subvolume at `path` is read-only.
pub fn is_readonly(path: &Path) -> Result<bool> {
    let fd = open_dir(path, "open the subvolume")?;
    let flags =
        sys::subvol_getflags(fd.as_fd()).map_err(|e| Error::io(path, "read the flags of", e))?;
    Ok(flags & sys::SUBVOL_RDONLY != 0)
}

/// Make the subvolume at `path` read-only or writable.
pub fn set_readonly(path: &Path, readonly: bool) -> Result<()> {
    let fd = open_dir(path, "open the subvolume")?;
    let flags =
        sys::subvol_getflags(fd.as_fd()).map_err(|e| Error::io(path, "read the flags of", e))?;
    let new = if readonly {
        flags | sys::SUBVOL_RDONLY
    } else {
        flags & !sys::SUBVOL_RDONLY
    };
    sys::subvol_setflags(fd.as_fd(), new)
        .map_err(|e| Error::io(path, "change the read-only flag of", e))
}

/// Make the subvolume with id `id` the default one of the filesystem holding `fs_path` (what a
/// mount without `subvol=` mounts: how a root filesystem is rolled back).
pub fn set_default_subvolume(fs_path: &Path, id: u64) -> Result<()> {
    let fd = open_dir(fs_path, "open")?;
    sys::default_subvol(fd.as_fd(), id)
        .map_err(|e| Error::io(fs_path, "set the default subvolume", e))
}

/// Commit the filesystem's current transaction (`btrfs filesystem sync`).
pub fn sync(path: &Path) -> Result<()> {
    let fd = open_dir(path, "open")?;
    sys::sync(fd.as_fd()).map_err(|e| Error::io(path, "sync the filesystem", e))
}

/// The subvolumes nested directly in the subvolume whose root is `subvol` (not those nested
/// in them), as paths relative to it, sorted. Root only (a search of the root tree).
pub fn nested_subvolumes(subvol: &Path) -> Result<Vec<PathBuf>> {
    let id = subvolume_info(subvol)?.id;
    search::nested_subvolumes(subvol, id)
}

/// The id of the default subvolume of the filesystem holding `fs_path` (root only).
pub fn default_subvolume(fs_path: &Path) -> Result<u64> {
    search::default_subvolume(fs_path)
}

/// Per-subvolume usage from the quota tree, or `None` when quotas are not enabled (root only).
pub fn qgroup_usage(fs_path: &Path) -> Result<Option<std::collections::HashMap<u64, QgroupUsage>>> {
    search::qgroup_usage(fs_path)
}

/// The path of directory inode `ino` relative to the root of the subvolume holding `fs_path`
/// (root only); empty for the subvolume's root.
pub fn dir_path(subvol: &Path, ino: u64) -> Result<Vec<u8>> {
    let fd = open_dir(subvol, "open")?;
    search::ino_path(fd.as_fd(), subvol, ino)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
