//! Reading and applying Linux file metadata.
//!
//! Capture: `lstat` (never following symlinks), every extended attribute including the binary
//! `system.posix_acl_*` ACLs, owner and group names. Apply: owners by number, then extended
//! attributes, then mode (after chown, which clears setuid/setgid), then times last (with
//! `AT_SYMLINK_NOFOLLOW`, so symlinks get their own times). Failures to apply are returned as
//! warnings, never silently dropped.

use rustix::fs::{AtFlags, Mode, Timestamps, CWD};
use rustix::io::Errno;
use snapguard_format::{Node, NodeKind, Timestamp, Xattr};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The subset of `struct stat` we keep. `kind` is `None` for sockets (`is_socket`) and unknown
/// types; `mode` is the permission bits only (`st_mode & 0o7777`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatInfo {
    pub kind: Option<NodeKind>,
    pub is_socket: bool,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub blocks: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    pub rdev: u64,
}

/// Convert a `struct stat` (from `lstat`, `fstat` or `statat`).
pub fn stat_info(st: &rustix::fs::Stat) -> StatInfo {
    let fmt = st.st_mode & 0o170000;
    let kind = match fmt {
        0o100000 => Some(NodeKind::File),
        0o040000 => Some(NodeKind::Dir),
        0o120000 => Some(NodeKind::Symlink),
        0o010000 => Some(NodeKind::Fifo),
        0o020000 => Some(NodeKind::CharDevice),
        0o060000 => Some(NodeKind::BlockDevice),
        _ => None,
    };
    #[allow(clippy::unnecessary_cast)]
    StatInfo {
        kind,
        is_socket: fmt == 0o140000,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: Timestamp {
            secs: st.st_atime as i64,
            nanos: st.st_atime_nsec as u32,
        },
        mtime: Timestamp {
            secs: st.st_mtime as i64,
            nanos: st.st_mtime_nsec as u32,
        },
        ctime: Timestamp {
            secs: st.st_ctime as i64,
            nanos: st.st_ctime_nsec as u32,
        },
        ino: st.st_ino as u64,
        dev: st.st_dev as u64,
        nlink: st.st_nlink as u64,
        rdev: st.st_rdev as u64,
    }
}

/// `lstat(path)`: never follows a symlink in the last component.
pub fn lstat(path: &Path) -> std::io::Result<StatInfo> {
    Ok(stat_info(&rustix::fs::lstat(path)?))
}

/// Read all extended attributes of `path` (not following symlinks), sorted by name. A
/// filesystem without xattr support gives an empty list.
pub fn read_xattrs(path: &Path) -> std::io::Result<Vec<Xattr>> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => {
                let need = rustix::fs::llistxattr_query(path)?;
                names.resize(need.max(names.len() * 2), 0);
            }
            Err(Errno::NOTSUP) | Err(Errno::PERM) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_os = OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        let got = loop {
            match rustix::fs::lgetxattr(path, name_os, &mut value[..]) {
                Ok(n) => break Some(n),
                Err(Errno::RANGE) => {
                    let need = rustix::fs::lgetxattr_query(path, name_os)?;
                    value.resize(need.max(value.len() * 2), 0);
                }
                // Removed between list and get.
                Err(Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(n) = got {
            value.truncate(n);
            out.push(Xattr {
                name: name.to_vec(),
                value,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Caches uid/gid → name lookups.
#[derive(Default)]
pub(crate) struct NameCache {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl NameCache {
    pub(crate) fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }
    pub(crate) fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone()
    }
}

/// Fill a node's metadata from a stat.
pub(crate) fn fill_node(node: &mut Node, st: &StatInfo, names: &mut NameCache) {
    node.mode = st.mode;
    node.uid = st.uid;
    node.gid = st.gid;
    node.user = names.user(st.uid);
    node.group = names.group(st.gid);
    node.mtime = st.mtime;
    node.atime = st.atime;
    node.ctime = st.ctime;
    node.inode = st.ino;
    node.device = st.dev;
    node.nlink = st.nlink;
    if matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        node.rdev = st.rdev;
    }
    if node.kind == NodeKind::File {
        node.size = st.size;
    }
}

/// Apply owner, xattrs, mode and times of `node` to `path`. Returns human-readable warnings for
/// what could not be applied.
///
/// Uses `node.kind` (no chmod for symlinks), `uid`, `gid`, `mode`, `xattrs` (attributes of
/// `path` not in the list are removed), `atime` and `mtime`; the other fields are ignored.
pub fn apply_metadata(path: &Path, node: &Node) -> Vec<String> {
    let mut warnings = Vec::new();
    // Owners. Non-root users may only "chown" to their own groups; try whenever the ids differ
    // from what the new file has, and report a failure.
    if let Ok(cur) = lstat(path) {
        if cur.uid != node.uid || cur.gid != node.gid {
            let res = rustix::fs::chownat(
                CWD,
                path,
                Some(rustix::fs::Uid::from_raw(node.uid)),
                Some(rustix::fs::Gid::from_raw(node.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            if let Err(e) = res {
                warnings.push(format!(
                    "could not set owner {}:{}: {}",
                    node.uid, node.gid, e
                ));
            }
        }
    }
    // Extended attributes (ACLs among them). Attributes present on the new file but not in the
    // snapshot (for example a default ACL inherited from the target directory) are removed.
    if let Ok(existing) = read_xattrs(path) {
        for x in existing {
            if !node.xattrs.iter().any(|n| n.name == x.name) {
                let _ = rustix::fs::lremovexattr(path, OsStr::from_bytes(&x.name));
            }
        }
    }
    for x in &node.xattrs {
        if let Err(e) = rustix::fs::lsetxattr(
            path,
            OsStr::from_bytes(&x.name),
            &x.value,
            rustix::fs::XattrFlags::empty(),
        ) {
            warnings.push(format!(
                "could not set extended attribute {}: {}",
                String::from_utf8_lossy(&x.name),
                e
            ));
        }
    }
    // Mode (not for symlinks, whose mode Linux ignores).
    if node.kind != NodeKind::Symlink {
        if let Err(e) =
            rustix::fs::chmodat(CWD, path, Mode::from_raw_mode(node.mode), AtFlags::empty())
        {
            warnings.push(format!("could not set mode {:04o}: {}", node.mode, e));
        } else if let Ok(cur) = lstat(path) {
            // The kernel silently drops setgid when we are not in the group; say so.
            if cur.mode != node.mode {
                warnings.push(format!(
                    "mode is {:04o} instead of {:04o}",
                    cur.mode, node.mode
                ));
            }
        }
    }
    if let Err(e) = set_times(path, node) {
        warnings.push(format!("could not set times: {e}"));
    }
    warnings
}

/// Set atime and mtime with nanoseconds (not following symlinks).
pub fn set_times(path: &Path, node: &Node) -> std::io::Result<()> {
    let ts = |t: Timestamp| rustix::fs::Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos),
    };
    let times = Timestamps {
        last_access: ts(node.atime),
        last_modification: ts(node.mtime),
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Create a FIFO or device node (mode 0600; `node.kind` and `node.rdev` are used), for
/// [`apply_metadata`] to finish.
pub fn make_special(path: &Path, node: &Node) -> std::io::Result<()> {
    let ft = match node.kind {
        NodeKind::Fifo => rustix::fs::FileType::Fifo,
        NodeKind::CharDevice => rustix::fs::FileType::CharacterDevice,
        NodeKind::BlockDevice => rustix::fs::FileType::BlockDevice,
        _ => return Err(std::io::Error::other("not a special file")),
    };
    rustix::fs::mknodat(
        CWD,
        path,
        ft,
        Mode::from_raw_mode(0o600),
        node.rdev as rustix::fs::Dev,
    )?;
    Ok(())
}

/// The entries of a directory with their inode numbers (from `readdir`, without `stat`), except
/// `.` and `..`. Opened with `O_NOATIME` where allowed (else, if `allow_atime_update`, without).
pub(crate) fn read_dir_entries(
    path: &Path,
    allow_atime_update: bool,
) -> std::io::Result<Vec<(Vec<u8>, u64)>> {
    use rustix::fs::OFlags;
    let base = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = match rustix::fs::open(path, base | OFlags::NOATIME, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::PERM) if allow_atime_update => rustix::fs::open(path, base, Mode::empty())?,
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push((name.to_vec(), entry.ino()));
        }
    }
    Ok(out)
}

/// Names in a directory (without `.` and `..`), read without updating the directory's access
/// time where the kernel allows it (`O_NOATIME` needs ownership or CAP_FOWNER). With
/// `allow_atime_update` false, a directory that cannot be opened that way is an error instead.
pub fn read_dir_names(path: &Path, allow_atime_update: bool) -> std::io::Result<Vec<Vec<u8>>> {
    use rustix::fs::OFlags;
    let base = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = match rustix::fs::open(path, base | OFlags::NOATIME, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::PERM) if allow_atime_update => rustix::fs::open(path, base, Mode::empty())?,
        Err(e) => return Err(e.into()),
    };
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}
