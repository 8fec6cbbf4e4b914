//! Applying an OverlayFS upper layer onto a copy of its lower layer: the heart of live-mode
//! commit. The result is the tree the merged view showed.
//!
//! How the kernel records changes in the upper layer (Documentation/filesystems/overlayfs.rst),
//! and what is done with each:
//!
//! - A file, symlink or special file in the upper layer replaces whatever the lower layer had at
//!   that path (a modified lower file was copied up whole: sessions mount with `metacopy=off`).
//! - A **whiteout** (a character device 0:0; or, in layers built by tools, an empty file with
//!   `trusted.overlay.whiteout`) hides the lower entry: the path is deleted.
//! - An **opaque** directory (`trusted.overlay.opaque=y`) hides the lower directory's contents:
//!   the directory is emptied and refilled from the upper layer.
//! - A **redirected** directory (`trusted.overlay.redirect`, written when a directory that came
//!   from the lower layer is renamed; sessions mount with `redirect_dir=on`) shows the lower
//!   directory named by the redirect: an absolute path from the lower root, or a name relative
//!   to the lower directory behind its parent. That lower directory is copied (reflinked) from
//!   the unchanged lower snapshot to the new path, and the upper directory is applied on top.
//!   The old path has a whiteout (or a new entry) in the upper layer like any other change.
//!   Because copies come from the read-only lower snapshot, the order in which entries are
//!   applied does not matter, also for swaps and chains of renames.
//! - Any other directory is merged: its upper entries are applied to the lower directory of the
//!   same name, and the upper directory's metadata (copied up, then changed) is applied last.
//!
//! Metadata-only copy-ups (`trusted.overlay.metacopy`) are refused: live sessions never create
//! them, and an upper layer with them was made by something else.

use super::copy::{self, Links};
use crate::{Error, Result};
use rustix::fs::FileType;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// What applying an upper layer did, for the report of `live commit`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApplyStats {
    /// Files, symlinks and special files created where the lower layer had nothing.
    pub created: u64,
    /// Entries of the lower layer replaced by the upper layer's version.
    pub replaced: u64,
    /// Paths deleted because of a whiteout or an opaque directory.
    pub deleted: u64,
    /// Directories created (new, or re-created empty as opaque).
    pub dirs: u64,
    /// Renamed directories copied from the lower layer (`trusted.overlay.redirect`).
    pub renamed_dirs: u64,
}

/// Make `target` (a writable copy of the lower layer `lower`) equal to the merged view of
/// `lower` and the upper layer `upper`. The overlay must not be mounted while this runs, so
/// the upper layer does not change underneath. On error `target` is left half-changed: the
/// caller throws it away.
pub fn apply_upper(upper: &Path, lower: &Path, target: &Path) -> Result<ApplyStats> {
    let mut a = Apply {
        lower,
        links: Links::default(),
        stats: ApplyStats::default(),
    };
    a.dir(upper, target, Some(PathBuf::new()))?;
    // The merged view's root directory is the upper directory itself.
    let st = copy::lstat(upper)?;
    copy::copy_metadata(upper, &st, target)?;
    Ok(a.stats)
}

struct Apply<'a> {
    lower: &'a Path,
    links: Links,
    stats: ApplyStats,
}

impl Apply<'_> {
    /// Apply the entries of upper directory `up` to `tgt`. `lower_rel` is the lower directory
    /// merged under `up` (relative to the lower root), `None` below an opaque directory.
    fn dir(&mut self, up: &Path, tgt: &Path, lower_rel: Option<PathBuf>) -> Result<()> {
        for name in copy::read_dir_sorted(up)? {
            let u = up.join(&name);
            let t = tgt.join(&name);
            let st = copy::lstat(&u)?;
            let ft = copy::file_type(&st);
            if is_whiteout(&u, &st, ft)? {
                if copy::remove_path(&t)? {
                    self.stats.deleted += 1;
                }
                continue;
            }
            if ft != FileType::Directory {
                if ft == FileType::RegularFile
                    && copy::get_xattr(&u, "trusted.overlay.metacopy")?.is_some()
                {
                    return Err(upper_error(
                        &u,
                        "it is a metadata-only copy-up (trusted.overlay.metacopy); \
                         live sessions mount with metacopy=off, so this upper layer was not \
                         made by 'snapguard live start'",
                    ));
                }
                let existed = copy::remove_path(&t)?;
                copy::copy_entry(&u, &st, &t, &mut self.links)?;
                if existed {
                    self.stats.replaced += 1;
                } else {
                    self.stats.created += 1;
                }
                continue;
            }
            let opaque = copy::get_xattr(&u, "trusted.overlay.opaque")?.as_deref() == Some(b"y");
            let redirect = copy::get_xattr(&u, "trusted.overlay.redirect")?;
            let child_lower = if opaque {
                if copy::remove_path(&t)? {
                    self.stats.deleted += 1;
                }
                mkdir(&t)?;
                self.stats.dirs += 1;
                None
            } else if let Some(redirect) = redirect {
                let origin = redirect_origin(&u, &redirect, lower_rel.as_deref())?;
                let src = self.lower.join(&origin);
                match copy::lstat_opt(&src)? {
                    Some(s) if copy::file_type(&s) == FileType::Directory => {}
                    _ => {
                        return Err(upper_error(
                            &u,
                            &format!(
                                "it is a renamed directory whose original {} is not a \
                                 directory in the lower snapshot {}",
                                origin.display(),
                                self.lower.display()
                            ),
                        ))
                    }
                }
                copy::remove_path(&t)?;
                copy::copy_tree(&src, &t, &mut self.links)?;
                self.stats.renamed_dirs += 1;
                Some(origin)
            } else {
                match copy::lstat_opt(&t)? {
                    Some(s) if copy::file_type(&s) == FileType::Directory => {}
                    Some(_) => {
                        copy::remove_path(&t)?;
                        mkdir(&t)?;
                        self.stats.replaced += 1;
                    }
                    None => {
                        mkdir(&t)?;
                        self.stats.dirs += 1;
                    }
                }
                lower_rel.as_ref().map(|l| l.join(&name))
            };
            self.dir(&u, &t, child_lower)?;
            copy::copy_metadata(&u, &st, &t)?;
        }
        Ok(())
    }
}

fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir(path).map_err(|e| Error::io("create directory", path, e))
}

fn upper_error(path: &Path, detail: &str) -> Error {
    Error::UpperLayer {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// A whiteout: a character device with device number 0:0, or an empty regular file marked
/// with `trusted.overlay.whiteout` (the form tools use inside layers, kernel 6.7+).
fn is_whiteout(path: &Path, st: &rustix::fs::Stat, ft: FileType) -> Result<bool> {
    Ok(match ft {
        FileType::CharacterDevice => st.st_rdev == 0,
        FileType::RegularFile if st.st_size == 0 => {
            copy::get_xattr(path, "trusted.overlay.whiteout")?.is_some()
        }
        _ => false,
    })
}

/// The lower directory (relative to the lower root) that a redirected upper directory shows:
/// an absolute redirect is a path from the lower root, a relative one a name in the lower
/// directory behind the parent.
fn redirect_origin(up: &Path, redirect: &[u8], parent_lower: Option<&Path>) -> Result<PathBuf> {
    let path = Path::new(OsStr::from_bytes(redirect));
    let bad = |why: &str| {
        upper_error(
            up,
            &format!(
                "its rename record (trusted.overlay.redirect={:?}) {why}",
                String::from_utf8_lossy(redirect)
            ),
        )
    };
    let origin = if let Ok(abs) = path.strip_prefix("/") {
        abs.to_path_buf()
    } else {
        if path.components().count() != 1 {
            return Err(bad("is neither absolute nor a single name"));
        }
        match parent_lower {
            Some(p) => p.join(path),
            None => {
                return Err(bad(
                    "is relative, but the parent directory has no lower layer",
                ))
            }
        }
    };
    if origin.as_os_str().is_empty()
        || !origin
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(bad("does not name a directory inside the lower layer"));
    }
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_origins() {
        let up = Path::new("/u/b");
        assert_eq!(
            redirect_origin(up, b"/a/x", None).ok(),
            Some(PathBuf::from("a/x"))
        );
        assert_eq!(
            redirect_origin(up, b"x", Some(Path::new("a"))).ok(),
            Some(PathBuf::from("a/x"))
        );
        assert_eq!(
            redirect_origin(up, b"x", Some(Path::new(""))).ok(),
            Some(PathBuf::from("x"))
        );
        assert!(redirect_origin(up, b"x", None).is_err());
        assert!(redirect_origin(up, b"a/x", Some(Path::new(""))).is_err());
        assert!(redirect_origin(up, b"/a/../../etc", None).is_err());
        assert!(redirect_origin(up, b"..", Some(Path::new("a"))).is_err());
        assert!(redirect_origin(up, b"/", None).is_err());
    }
}
