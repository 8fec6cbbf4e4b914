//! The mount table as this process sees it (`/proc/self/mountinfo`): which btrfs subvolumes are
//! mounted where, and which directories are the lower layers of OverlayFS mounts. The snapshot
//! store uses it to refuse deleting (or swapping away) a subvolume that is in use.
//!
//! Only reading and parsing; it never mounts or unmounts anything. Filesystems are identified by
//! their btrfs fsid ([`snapguard_btrfs::fs_info`]), not by device names, because one filesystem
//! can be mounted from several devices and device names can be reused.

use crate::{Error, Result};
use snapguard_btrfs::Uuid;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of `/proc/self/mountinfo` (proc(5)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the filesystem (for btrfs: one anonymous device per filesystem).
    pub device: (u32, u32),
    /// The directory of the filesystem that is the root of this mount (for btrfs, relative to
    /// the top-level subvolume: `/@/.snapshots/3/snapshot`).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
    /// The per-superblock options (`rw,subvolid=256,subvol=/data`, `lowerdir=…`).
    pub super_options: String,
}

impl Mount {
    /// For btrfs: the id of the subvolume the mount's root lies in (`subvolid=`).
    pub fn btrfs_subvolid(&self) -> Option<u64> {
        if self.fstype != "btrfs" {
            return None;
        }
        self.option("subvolid").and_then(|v| v.parse().ok())
    }

    /// The value of the super option `key=` (the last one if repeated).
    pub fn option(&self, key: &str) -> Option<&str> {
        split_options(&self.super_options)
            .into_iter()
            .rev()
            .find_map(|o| o.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// For OverlayFS: the lower directories (`lowerdir=a:b`, with `\:` escapes, plus the
    /// newer `lowerdir+=` form).
    pub fn overlay_lower_dirs(&self) -> Vec<PathBuf> {
        if self.fstype != "overlay" {
            return Vec::new();
        }
        let mut out = Vec::new();
        for opt in split_options(&self.super_options) {
            let value = opt
                .strip_prefix("lowerdir+=")
                .or_else(|| opt.strip_prefix("lowerdir="));
            let Some(value) = value else { continue };
            let mut cur = Vec::new();
            let mut bytes = value.bytes();
            while let Some(b) = bytes.next() {
                match b {
                    b'\\' => {
                        if let Some(n) = bytes.next() {
                            cur.push(n);
                        }
                    }
                    b':' => out.push(PathBuf::from(OsString::from_vec(std::mem::take(&mut cur)))),
                    _ => cur.push(b),
                }
            }
            if !cur.is_empty() {
                out.push(PathBuf::from(OsString::from_vec(cur)));
            }
        }
        out
    }
}

/// Splits mount options at commas that are not escaped with a backslash (overlay escapes commas
/// in paths that way).
fn split_options(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => escaped = false,
        }
    }
    out.push(&s[start..]);
    out
}

/// Undoes the octal escapes (`\040` for a space, `\011`, `\012`, `\134`) of mountinfo paths.
fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Parses the text of a mountinfo file; lines that do not have the documented shape are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let _mount_id = l.next()?;
    let _parent_id = l.next()?;
    let (major, minor) = l.next()?.split_once(':')?;
    let root = unescape(l.next()?);
    let mount_point = unescape(l.next()?);
    let mut r = right.splitn(3, ' ');
    let fstype = r.next()?.to_string();
    let source = r.next()?.to_string();
    let super_options = r.next().unwrap_or("").to_string();
    Some(Mount {
        device: (major.parse().ok()?, minor.parse().ok()?),
        root,
        mount_point,
        fstype,
        source,
        super_options,
    })
}

/// The current mount table.
pub fn read_mounts() -> Result<Vec<Mount>> {
    let text = std::fs::read(MOUNTINFO).map_err(|e| Error::io("read", MOUNTINFO, e))?;
    Ok(parse_mountinfo(&String::from_utf8_lossy(&text)))
}

/// The mounts of one btrfs filesystem, and the overlay mounts of the system.
#[derive(Clone, Debug, Default)]
pub struct FsMounts {
    /// btrfs mounts of the filesystem, with their subvolume ids.
    pub btrfs: Vec<(u64, Mount)>,
    /// Every OverlayFS mount (their lower directories may be on any filesystem).
    pub overlays: Vec<Mount>,
}

impl FsMounts {
    /// The mounts of the btrfs filesystem whose fsid is `fsid`. Each btrfs device number is
    /// identified once, through the first of its mount points that can be opened.
    pub fn of_filesystem(fsid: Uuid) -> Result<FsMounts> {
        Ok(Self::select(read_mounts()?, fsid))
    }

    fn select(mounts: Vec<Mount>, fsid: Uuid) -> FsMounts {
        let mut ours: HashMap<(u32, u32), bool> = HashMap::new();
        for m in mounts.iter().filter(|m| m.fstype == "btrfs") {
            if ours.get(&m.device) == Some(&true) {
                continue;
            }
            // A mount point hidden by a later mount over it reports the upper filesystem, so
            // keep trying the device's other mount points until one answers with a btrfs fsid.
            if let Ok(info) = snapguard_btrfs::fs_info(&m.mount_point) {
                if info.fsid == fsid {
                    ours.insert(m.device, true);
                } else {
                    ours.entry(m.device).or_insert(false);
                }
            }
        }
        let mut out = FsMounts::default();
        for m in mounts {
            if m.fstype == "overlay" {
                out.overlays.push(m);
            } else if ours.get(&m.device) == Some(&true) {
                if let Some(id) = m.btrfs_subvolid() {
                    out.btrfs.push((id, m));
                }
            }
        }
        out
    }

    /// The mount points whose root lies in subvolume `id`.
    pub fn mount_points_of(&self, id: u64) -> Vec<&Path> {
        self.btrfs
            .iter()
            .filter(|(sid, _)| *sid == id)
            .map(|(_, m)| m.mount_point.as_path())
            .collect()
    }

    /// The overlay mounts one of whose lower directories is `dir` or lies inside it.
    pub fn overlays_on(&self, dir: &Path) -> Vec<&Path> {
        self.overlays
            .iter()
            .filter(|m| m.overlay_lower_dirs().iter().any(|l| l.starts_with(dir)))
            .map(|m| m.mount_point.as_path())
            .collect()
    }
}

/// `p` as text for messages (mount points are shown as the kernel reports them).
pub(crate) fn show(p: &Path) -> String {
    String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
101 27 0:45 / /mnt/pool rw,relatime - btrfs /dev/loop3 rw,space_cache=v2,subvolid=5,subvol=/
102 27 0:45 /data/.snapshots/3/snapshot /mnt/old\\040files rw,relatime - btrfs /dev/loop3 rw,subvolid=260,subvol=/data/.snapshots/3/snapshot
103 27 0:46 / /mnt/live rw,relatime - overlay overlay rw,lowerdir=/mnt/pool/data/.snapshots/4/snapshot:/other\\:dir,upperdir=/tmp/u,workdir=/tmp/w
bad line
";

    #[test]
    fn parses_btrfs_and_overlay_lines() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].btrfs_subvolid(), Some(5));
        assert_eq!(m[1].device, (0, 45));
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/old files"));
        assert_eq!(m[2].root, PathBuf::from("/data/.snapshots/3/snapshot"));
        assert_eq!(m[2].btrfs_subvolid(), Some(260));
        assert_eq!(m[0].btrfs_subvolid(), None);
        assert_eq!(
            m[3].overlay_lower_dirs(),
            vec![
                PathBuf::from("/mnt/pool/data/.snapshots/4/snapshot"),
                PathBuf::from("/other:dir")
            ]
        );
        let fs = FsMounts {
            btrfs: vec![(5, m[1].clone()), (260, m[2].clone())],
            overlays: vec![m[3].clone()],
        };
        assert_eq!(fs.mount_points_of(260), vec![Path::new("/mnt/old files")]);
        assert!(fs.mount_points_of(261).is_empty());
        assert_eq!(
            fs.overlays_on(Path::new("/mnt/pool/data/.snapshots/4/snapshot")),
            vec![Path::new("/mnt/live")]
        );
        assert!(fs
            .overlays_on(Path::new("/mnt/pool/data/.snapshots/5/snapshot"))
            .is_empty());
    }

    #[test]
    fn escapes_and_options() {
        assert_eq!(unescape("a\\040b\\134c"), PathBuf::from("a b\\c"));
        assert_eq!(unescape("trailing\\04"), PathBuf::from("trailing\\04"));
        assert_eq!(split_options("a,b\\,c,d"), vec!["a", "b\\,c", "d"]);
    }
}
