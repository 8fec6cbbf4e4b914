//! Whether a restore would write over the very place its data was backed up from.
//!
//! `restore SNAPSHOT:PATH --target DIR` shifts paths: a directory `PATH`'s contents go directly
//! into `DIR` (snapshot path `PATH/x` lands on `DIR/x`), anything else is created inside `DIR`
//! (`PATH` lands on `DIR/basename(PATH)`). A restored entry therefore lands on its own original
//! path exactly when `DIR` is `PATH` (a directory), or `DIR` is `PATH`'s parent (anything else);
//! then every entry of the restore does. `DIR` is compared with that directory by name (after
//! making it absolute, lexically) and, when both exist, by identity (device and inode, following
//! symlinks), so `--target /home/u/../u/doc` or a symlink to the original directory count too.
//! A restore into `/` counts as well, whatever it restores: it writes into the live system.
//!
//! Only the CLI acts on the answer (it asks for confirmation); the engine never refuses.

use super::find_node;
use crate::{Error, Repository, Result};
use snapguard_format::{NodeKind, SnapshotFile};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a restore writes into the original location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginalLocation {
    /// The target is the filesystem root.
    Root,
    /// Every restored entry lands on the path it was backed up from; this is the directory
    /// (on this machine) that the restore writes into.
    Same(PathBuf),
}

/// Whether restoring `subpath` of `snapshot` into `target` writes into the original location.
pub fn original_location(
    repo: &Repository,
    snapshot: &SnapshotFile,
    subpath: &[u8],
    target: &Path,
) -> Result<Option<OriginalLocation>> {
    let node = find_node(repo, snapshot.tree, subpath)?.ok_or_else(|| Error::PathNotFound {
        path: String::from_utf8_lossy(subpath).into_owned(),
        snapshot: "the snapshot".into(),
    })?;
    classify(subpath, node.kind == NodeKind::Dir, target)
}

/// [`original_location`] once the kind of the restored entry is known.
fn classify(subpath: &[u8], is_dir: bool, target: &Path) -> Result<Option<OriginalLocation>> {
    let target = crate::absolute_path(target)?;
    if target == Path::new("/") {
        return Ok(Some(OriginalLocation::Root));
    }
    let sub = crate::absolute_path(Path::new(OsStr::from_bytes(subpath)))?;
    let home = if is_dir {
        sub
    } else {
        sub.parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
    };
    let same = target == home
        || match (std::fs::metadata(&target), std::fs::metadata(&home)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        };
    Ok(same.then_some(OriginalLocation::Same(home)))
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn directory_file_and_root_targets() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let doc = tmp.path().join("doc");
        std::fs::create_dir(&doc)?;
        let doc_b = doc.as_os_str().as_bytes();
        let file = doc.join("a.txt");
        let file_b = file.as_os_str().as_bytes();
        let same = |p: &Path| Some(OriginalLocation::Same(p.to_path_buf()));
        // A directory restored into itself, also spelled differently or through a symlink.
        assert_eq!(classify(doc_b, true, &doc)?, same(&doc));
        assert_eq!(classify(doc_b, true, &doc.join("../doc/."))?, same(&doc));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&doc, &link)?;
        assert_eq!(classify(doc_b, true, &link)?, same(&doc));
        // Its contents into its parent, or into a subdirectory: elsewhere.
        assert_eq!(classify(doc_b, true, tmp.path())?, None);
        assert_eq!(classify(doc_b, true, &doc.join("sub"))?, None);
        // A file lands in the target: its own directory is the original location.
        assert_eq!(classify(file_b, false, &doc)?, same(&doc));
        assert_eq!(classify(file_b, false, tmp.path())?, None);
        // The whole snapshot into `/`, or anything into `/`.
        assert_eq!(
            classify(b"/", true, Path::new("/"))?,
            Some(OriginalLocation::Root)
        );
        assert_eq!(
            classify(doc_b, true, Path::new("//"))?,
            Some(OriginalLocation::Root)
        );
        // A target that does not exist yet is compared by name.
        let gone = tmp.path().join("gone");
        assert_eq!(
            classify(gone.as_os_str().as_bytes(), true, &gone)?,
            same(&gone)
        );
        Ok(())
    }
}
