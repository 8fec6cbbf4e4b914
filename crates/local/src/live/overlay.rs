//! Mounting and unmounting what a live session consists of: the tmpfs that holds the upper and
//! work directories, and the OverlayFS mount itself.
//!
//! The overlay is mounted with `redirect_dir=on` (renaming a directory that came from the
//! snapshot works as a plain `rename(2)`; the kernel records it in `trusted.overlay.redirect`,
//! which commit honours), `metacopy=off` (a changed file is always copied up whole, so the
//! upper layer alone holds its data) and `index=off` (no inode index, which would tie the upper
//! layer to this exact lower directory).

use crate::{Error, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The options of the overlay mount. Paths are escaped the way the kernel's option parser
/// expects (`\` before `,`, `:` and `\`).
pub(crate) fn overlay_options(lower: &Path, upper: &Path, work: &Path) -> Result<CString> {
    let mut s = Vec::new();
    for (key, path) in [("lowerdir", lower), ("upperdir", upper), ("workdir", work)] {
        if !s.is_empty() {
            s.push(b',');
        }
        s.extend_from_slice(key.as_bytes());
        s.push(b'=');
        s.extend_from_slice(&escape(path)?);
    }
    s.extend_from_slice(b",redirect_dir=on,metacopy=off,index=off");
    CString::new(s).map_err(|_| bad_path(lower, "contains a NUL byte"))
}

fn bad_path(path: &Path, why: &str) -> Error {
    Error::io(
        "use as an overlay layer",
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string()),
    )
}

fn escape(path: &Path) -> Result<Vec<u8>> {
    let b = path.as_os_str().as_bytes();
    if b.contains(&b'\n') || b.contains(&0) {
        return Err(bad_path(path, "the path contains a newline or NUL byte"));
    }
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        if matches!(c, b',' | b':' | b'\\') {
            out.push(b'\\');
        }
        out.push(c);
    }
    Ok(out)
}

/// Mount the overlay of `lower` (read-only) and `upper`/`work` at `merged`.
pub(crate) fn mount_overlay(lower: &Path, upper: &Path, work: &Path, merged: &Path) -> Result<()> {
    let opts = overlay_options(lower, upper, work)?;
    rustix::mount::mount(
        "snapguard-live",
        merged,
        "overlay",
        rustix::mount::MountFlags::empty(),
        opts.as_c_str(),
    )
    .map_err(|e| {
        let hint = if e == rustix::io::Errno::PERM {
            " (mounting needs root: run it as root)"
        } else if e == rustix::io::Errno::INVAL {
            " (the upper directory must be on a local filesystem with trusted extended \
             attributes and d_type support such as tmpfs, ext4, xfs or btrfs, not NFS, FAT or \
             another overlay, and must not lie inside the snapshot; `dmesg | grep overlayfs` \
             shows the kernel's reason)"
        } else {
            ""
        };
        Error::io(
            "mount the overlay at",
            merged,
            std::io::Error::other(format!("{}{hint}", std::io::Error::from(e))),
        )
    })
}

/// Mount a tmpfs at `target`, private to root (mode 0700), limited to `size` (tmpfs syntax:
/// `512M`, `2G`, `20%`) when given.
pub(crate) fn mount_tmpfs(target: &Path, size: Option<&str>) -> Result<()> {
    let mut data = String::from("mode=0700");
    if let Some(size) = size {
        data.push_str(",size=");
        data.push_str(size);
    }
    let data = CString::new(data).map_err(|_| bad_path(target, "bad tmpfs size"))?;
    rustix::mount::mount(
        "snapguard-live",
        target,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        data.as_c_str(),
    )
    .map_err(|e| {
        let hint = if e == rustix::io::Errno::PERM {
            " (mounting needs root: run it as root)"
        } else {
            ""
        };
        Error::io(
            "mount a tmpfs at",
            target,
            std::io::Error::other(format!("{}{hint}", std::io::Error::from(e))),
        )
    })
}

/// Check a tmpfs size given by the user: digits with an optional k/m/g/t suffix, or a percent
/// of RAM.
pub fn parse_tmpfs_size(s: &str) -> std::result::Result<String, String> {
    let t = s.trim();
    let digits = t.trim_end_matches(|c: char| "kKmMgGtT%".contains(c));
    let suffix = &t[digits.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || suffix.len() > 1 {
        return Err(format!(
            "{s:?} is not a tmpfs size: give bytes with an optional k, m, g or t suffix \
             (e.g. 2G) or a percentage of RAM (e.g. 25%)"
        ));
    }
    Ok(t.to_string())
}

/// Unmount `target` (not lazily: a busy mount is an error, so nothing stays mounted behind the
/// user's back). Busy is tried again for half a second first: a process that has just been
/// forked (by any thread of this process, or by a process with files open there) holds
/// copies of open descriptors until it calls `exec`, which is not a use of the mount.
pub(crate) fn unmount(target: &Path) -> Result<()> {
    let mut tries = 0;
    let result = loop {
        match rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty()) {
            Err(rustix::io::Errno::BUSY) if tries < 10 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other,
        }
    };
    result.map_err(|e| {
        if e == rustix::io::Errno::BUSY {
            Error::io(
                "unmount",
                target,
                std::io::Error::other(format!(
                    "it is busy: a process has a file open or its working directory there; \
                     find it with `fuser -vm {}` and close it, then try again",
                    target.display()
                )),
            )
        } else {
            Error::io("unmount", target, e.into())
        }
    })
}

/// Whether `path` is a mount point, and of which filesystem type.
pub(crate) fn mount_type(path: &Path) -> Result<Option<String>> {
    let mounts = crate::mounts::read_mounts()?;
    // The last mount at a path is the visible one.
    Ok(mounts
        .into_iter()
        .rev()
        .find(|m| m.mount_point == path)
        .map(|m| m.fstype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_escape_separators() {
        let o = overlay_options(Path::new("/s/a,b:c\\d"), Path::new("/u"), Path::new("/w"))
            .expect("options");
        assert_eq!(
            o.to_str().expect("utf-8"),
            "lowerdir=/s/a\\,b\\:c\\\\d,upperdir=/u,workdir=/w,redirect_dir=on,metacopy=off,index=off"
        );
        assert!(overlay_options(Path::new("/a\nb"), Path::new("/u"), Path::new("/w")).is_err());
    }

    #[test]
    fn tmpfs_sizes() {
        for ok in ["2G", "512m", "100000", "25%", " 1t "] {
            assert!(parse_tmpfs_size(ok).is_ok(), "{ok}");
        }
        for bad in ["", "G", "2GB", "-1", "1,size=9", "2 G"] {
            assert!(parse_tmpfs_size(bad).is_err(), "{bad}");
        }
    }
}
