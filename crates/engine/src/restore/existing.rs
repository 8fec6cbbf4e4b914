//! Entries that already exist in the target: the `--overwrite` policy, and the comparison that
//! lets `if-changed` keep what is already right.
//!
//! A regular file is compared with the snapshot by content: over the byte ranges of the
//! snapshot's own chunks, every range on disk must hash (keyed BLAKE3 with the repository's id
//! key, [`snapguard_crypto::KeyBundle::id_hasher`]) to that chunk's id, and every hole must be
//! a hole on disk too (`SEEK_DATA` finds no data in it: a filled hole would not give the
//! snapshot's sparse layout). For identical content these are exactly the ids a backup of the file would compute
//! (the content-defined chunker cuts identical bytes at identical places), so running the
//! chunker again would only cost time; hashing over the snapshot's boundaries also stops at the
//! first chunk that differs. Symlinks compare by target, devices by number, FIFOs by kind.
//!
//! This module decides and compares; it never writes. Removing what is in the way is the
//! caller's (`Restorer::make_way`), and only after the policy allowed it.

use super::{LinkFirst, Restorer};
use crate::fsmeta::{self, StatInfo};
use crate::Result;
use snapguard_crypto::KeyBundle;
use snapguard_format::{ContentPart, Node, NodeKind};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a restore does with an entry that already exists where it restores one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Leave every existing entry as it is (content and metadata); only missing entries are
    /// created. Existing directories are still entered, to add what is missing in them.
    Never,
    /// Keep existing entries that already equal the snapshot's (regular files compared by
    /// content hash), setting their metadata to the snapshot's; replace the others. The default:
    /// the result is the same as with `Always`, but only what differs is read from the
    /// repository and written, so an interrupted restore resumes cheaply.
    #[default]
    IfChanged,
    /// Replace every existing non-directory entry with a newly created one, reading all of its
    /// data from the repository.
    Always,
}

impl Overwrite {
    pub fn as_str(self) -> &'static str {
        match self {
            Overwrite::Never => "never",
            Overwrite::IfChanged => "if-changed",
            Overwrite::Always => "always",
        }
    }
}

impl std::fmt::Display for Overwrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Overwrite {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Overwrite> {
        match s {
            "never" => Ok(Overwrite::Never),
            "if-changed" => Ok(Overwrite::IfChanged),
            "always" => Ok(Overwrite::Always),
            other => Err(crate::Error::InvalidArgument(format!(
                "unknown overwrite mode {other:?}; use never, if-changed or always"
            ))),
        }
    }
}

/// Reads existing files and hashes them against the snapshot.
pub(super) struct Comparer<'a> {
    bundle: &'a KeyBundle,
    buf: Vec<u8>,
    /// Bytes read from existing files so far.
    pub(super) bytes_read: u64,
}

impl<'a> Comparer<'a> {
    pub(super) fn new(bundle: &'a KeyBundle) -> Comparer<'a> {
        Comparer {
            bundle,
            buf: Vec::new(),
            bytes_read: 0,
        }
    }

    /// Whether the non-directory `path` (whose `lstat` is `st`) already is what restoring `node`
    /// would create there, apart from metadata that a restore sets anyway (owner, mode, times,
    /// extended attributes). Hardlinks are the caller's concern. Anything that cannot be read
    /// counts as different: it is then replaced, which is what a restore without the comparison
    /// would have done.
    pub(super) fn unchanged(&mut self, node: &Node, st: &StatInfo, path: &Path) -> bool {
        if st.kind != Some(node.kind) {
            return false;
        }
        match node.kind {
            // A file linked to other names would be changed through them when its metadata is
            // set, and is not what the snapshot has (unless the snapshot links it too).
            NodeKind::File => {
                st.size == node.size
                    && (st.nlink == 1 || node.nlink > 1)
                    && self.same_content(node, st, path)
            }
            NodeKind::Symlink => std::fs::read_link(path)
                .is_ok_and(|t| t.as_os_str().as_bytes() == node.link_target.as_slice()),
            NodeKind::CharDevice | NodeKind::BlockDevice => st.rdev == node.rdev,
            NodeKind::Fifo => true,
            NodeKind::Dir => false,
        }
    }

    fn same_content(&mut self, node: &Node, st: &StatInfo, path: &Path) -> bool {
        // Parts that reach past the recorded size belong to a file that shrank while it was
        // read; the restore cuts such a file, so its last chunk cannot be checked by id.
        let parts_len: u64 = node.content.iter().map(ContentPart::len).sum();
        if parts_len > node.size {
            return false;
        }
        let Ok(file) = open_for_compare(path) else {
            return false;
        };
        // The path may have been replaced since it was examined.
        match rustix::fs::fstat(&file).map(|s| crate::fsmeta::stat_info(&s)) {
            Ok(now) if (now.dev, now.ino) == (st.dev, st.ino) => {}
            _ => return false,
        }
        if self.buf.is_empty() {
            self.buf = vec![0u8; 1 << 20];
        }
        let mut offset = 0u64;
        for part in &node.content {
            let same = match part {
                ContentPart::Data { id, len } => {
                    let mut h = self.bundle.id_hasher();
                    self.read_range(&file, offset, u64::from(*len), &mut |b| {
                        h.update(b);
                        true
                    }) && h.finalize().as_bytes() == &id.0
                }
                ContentPart::Hole { len } => is_hole(&file, offset, *len),
            };
            if !same {
                return false;
            }
            offset += part.len();
        }
        // A trailing hole the content list does not record (the file's size is set after the
        // last data part).
        offset >= node.size || is_hole(&file, offset, node.size - offset)
    }

    /// Feed bytes `[offset, offset + len)` of `file` to `f`; false if the file is shorter, a
    /// read fails, or `f` says so.
    fn read_range(
        &mut self,
        file: &File,
        offset: u64,
        len: u64,
        f: &mut dyn FnMut(&[u8]) -> bool,
    ) -> bool {
        let mut done = 0u64;
        while done < len {
            let want = usize::try_from(len - done)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let n = match file.read_at(&mut self.buf[..want], offset + done) {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            self.bytes_read += n as u64;
            if !f(&self.buf[..n]) {
                return false;
            }
            done += n as u64;
        }
        true
    }
}

/// Whether bytes `[offset, offset + len)` of `file` are a hole: no data allocated there. A
/// restore leaves holes unwritten, so a hole that was filled (even with zeros) is a difference:
/// keeping that file would not restore the snapshot's sparse layout.
fn is_hole(file: &File, offset: u64, len: u64) -> bool {
    match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(offset)) {
        Ok(next) => next >= offset.saturating_add(len),
        Err(rustix::io::Errno::NXIO) => true,
        Err(_) => false,
    }
}

/// Open without following a symlink and, where the kernel allows it (our own files, or as
/// root), without updating the access time: comparing must not change the files it leaves alone.
fn open_for_compare(path: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let base = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path, base | OFlags::NOATIME, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::PERM) => rustix::fs::open(path, base, Mode::empty())?,
        Err(e) => return Err(e.into()),
    };
    Ok(File::from(fd))
}

impl Restorer<'_> {
    /// [`Overwrite::IfChanged`]: whether the existing entry `st` at `dest` already is `node`.
    pub(super) fn unchanged(
        &mut self,
        node: &Node,
        st: &fsmeta::StatInfo,
        dest: &Path,
        link_key: Option<(u64, u64)>,
    ) -> bool {
        if let Some(first) = link_key.and_then(|k| self.hardlinks.get(&k)) {
            // A further name of a hardlinked file: right if it already is the inode of the
            // first name, and that one was kept as it was.
            return first.kept
                && fsmeta::lstat(&first.path).is_ok_and(|f| (f.dev, f.ino) == (st.dev, st.ino));
        }
        if let Some(p) = &self.opts.progress {
            p.set_current(&dest.display().to_string());
        }
        self.comparer.unchanged(node, st, dest)
    }

    /// Keep an existing entry that equals the snapshot's: count it and set its metadata.
    pub(super) fn keep(&mut self, node: &Node, dest: PathBuf, link_key: Option<(u64, u64)>) {
        self.summary.skipped_unchanged += 1;
        self.count(node);
        if node.kind == NodeKind::File {
            self.note_changed_while_read(node, &dest);
        }
        let further_link = link_key.is_some_and(|k| self.hardlinks.contains_key(&k));
        if !self.opts.dry_run && !further_link {
            for w in fsmeta::apply_metadata(&dest, node) {
                self.warn(&dest, w);
            }
        }
        if let Some(k) = link_key {
            self.hardlinks.entry(k).or_insert(LinkFirst {
                path: dest,
                pending: None,
                kept: true,
            });
        }
    }

    /// Clear the way for an entry at `dest`, where `st` is (in a dry run: decide whether it
    /// would be cleared). False if the entry is not to be restored: `Never`, a directory in the
    /// way without `delete`, or removal failed (reported).
    pub(super) fn make_way(
        &mut self,
        dest: &Path,
        st: &fsmeta::StatInfo,
        snap_path: &[u8],
    ) -> Result<bool> {
        if self.opts.overwrite == Overwrite::Never {
            self.summary.skipped_existing += 1;
            return Ok(false);
        }
        if st.kind == Some(NodeKind::Dir) {
            if !self.opts.delete {
                self.warn(
                    dest,
                    "a directory is in the way; not replaced (--delete replaces it)",
                );
                return Ok(false);
            }
            let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
                return Ok(false);
            };
            if !self.delete_entry(dir, name.as_bytes(), snap_path, true) {
                self.warn(
                    dest,
                    "a directory is in the way and could not be removed completely; not replaced",
                );
                return Ok(false);
            }
            return Ok(true);
        }
        if !self.opts.dry_run {
            if let Err(e) = std::fs::remove_file(dest) {
                self.warn(dest, format!("cannot replace the existing entry: {e}"));
                return Ok(false);
            }
        }
        Ok(true)
    }
}
