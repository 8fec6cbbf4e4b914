//! Tar streams → snapshot entries.
//!
//! Every attribute the stream carries is kept: owners by number and name, mode with
//! setuid/setgid/sticky, nanosecond times (`atime` is the `mtime` and `ctime` the `mtime` when
//! the archive has none), extended attributes, ACLs (the binary `system.posix_acl_*` attribute
//! if the archive has it, else converted from the `SCHILY.acl.*` text), device numbers,
//! hardlinks, inode numbers (`SCHILY.ino`/`SCHILY.dev`/`SCHILY.nlink`, as `export
//! --inode-numbers` writes them), and sparse files' holes (GNU sparse old, 0.0, 0.1 and 1.0).

use super::ingest::{FileData, Ingest, IngestOptions, IngestResult};
use crate::{Error, Repository, Result};
use snapguard_format::{Node, NodeKind, Timestamp, Xattr};
use snapguard_tar::{acl, name, Entry, EntryKind, ErrorKind, Reader, Time};
use std::io::Read;

/// Import the tar stream `input` (called `input_name` in messages) into a new snapshot.
pub fn import_tar(
    repo: &mut Repository,
    input: &mut dyn Read,
    input_name: &str,
    opts: IngestOptions,
) -> Result<IngestResult> {
    let mut reader = Reader::new(std::io::BufReader::with_capacity(1 << 20, input));
    let mut ingest = Ingest::start(repo, opts)?;
    let fail = |detail: String| Error::Import {
        input: input_name.to_string(),
        detail,
    };
    let mut stripped_root = false;
    loop {
        let entry = match reader.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) if matches!(e.kind, ErrorKind::Unsupported(_)) => {
                let path = e.entry.clone().unwrap_or_default();
                ingest.warn(&path, e.to_string(), true);
                continue;
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let at = reader.entry_offset();
        let bad = |detail: String| {
            fail(format!(
                "entry {:?} (at byte {at}): {detail}",
                entry.display_path()
            ))
        };
        let path = name::components(&entry.path).map_err(bad)?;
        if path.was_absolute && !stripped_root {
            stripped_root = true;
            ingest.warn(
                &entry.display_path(),
                "leading '/' removed from member names (they are placed under the snapshot path)",
                false,
            );
        }
        if entry.kind == EntryKind::HardLink {
            let target = name::components(&entry.link)
                .map_err(|d| bad(format!("hardlink target {:?}: {d}", lossy(&entry.link))))?;
            if !ingest.add_hardlink(&path.parts, &target.parts) {
                ingest.warn(
                    &entry.display_path(),
                    format!(
                        "hardlink to {:?}, which is not an earlier non-directory entry of the archive; left out",
                        lossy(&entry.link)
                    ),
                    true,
                );
            }
            continue;
        }
        let (node, warnings) = to_node(&entry).map_err(bad)?;
        for w in warnings {
            ingest.warn(&entry.display_path(), w, true);
        }
        if node.kind == NodeKind::File {
            let runs: Vec<(u64, u64)> = match &entry.sparse {
                Some(segs) => segs.iter().map(|s| (s.offset, s.len)).collect(),
                None => vec![(0, entry.size)],
            };
            let mut read = |buf: &mut [u8]| reader.read_data(buf).map_err(|e| fail(e.to_string()));
            ingest.add(
                &path.parts,
                node,
                Some(FileData {
                    runs: &runs,
                    read: &mut read,
                }),
            )?;
        } else {
            ingest.add(&path.parts, node, None)?;
        }
    }
    ingest.finish()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn timestamp(t: Time) -> Timestamp {
    Timestamp {
        secs: t.secs,
        nanos: t.nanos,
    }
}

/// The node for an entry (not a hardlink), and problems worth a warning.
fn to_node(e: &Entry) -> std::result::Result<(Node, Vec<String>), String> {
    let kind = match e.kind {
        EntryKind::File => NodeKind::File,
        EntryKind::Dir => NodeKind::Dir,
        EntryKind::Symlink => NodeKind::Symlink,
        EntryKind::CharDevice => NodeKind::CharDevice,
        EntryKind::BlockDevice => NodeKind::BlockDevice,
        EntryKind::Fifo => NodeKind::Fifo,
        EntryKind::HardLink => return Err("a hardlink is not a node".into()),
    };
    let mut warnings = Vec::new();
    let mut node = Node::new(Vec::new(), kind);
    node.mode = e.mode & 0o7777;
    let id = |v: u64, what: &str| {
        u32::try_from(v).map_err(|_| format!("{what} {v} is larger than Linux allows"))
    };
    node.uid = id(e.uid, "uid")?;
    node.gid = id(e.gid, "gid")?;
    let name = |b: &[u8]| (!b.is_empty()).then(|| String::from_utf8_lossy(b).into_owned());
    node.user = name(&e.uname);
    node.group = name(&e.gname);
    node.mtime = timestamp(e.mtime);
    node.atime = e.atime.map_or(node.mtime, timestamp);
    node.ctime = e.ctime.map_or(node.mtime, timestamp);
    node.inode = e.inode.unwrap_or(0);
    node.device = e.device.unwrap_or(0);
    node.nlink = e.nlink.unwrap_or(1);
    match kind {
        NodeKind::File => node.size = e.size,
        NodeKind::Symlink => node.link_target.clone_from(&e.link),
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            let (Ok(major), Ok(minor)) = (u32::try_from(e.dev_major), u32::try_from(e.dev_minor))
            else {
                return Err(format!(
                    "device number {}:{} is larger than Linux allows",
                    e.dev_major, e.dev_minor
                ));
            };
            node.rdev = rustix::fs::makedev(major, minor);
        }
        _ => {}
    }
    node.xattrs = e
        .xattrs
        .iter()
        .map(|(n, v)| Xattr {
            name: n.clone(),
            value: v.clone(),
        })
        .collect();
    for (text, attr, what) in [
        (&e.acl_access, acl::ACCESS_XATTR, "access"),
        (&e.acl_default, acl::DEFAULT_XATTR, "default"),
    ] {
        let Some(text) = text else { continue };
        if node.xattrs.iter().any(|x| x.name == attr) {
            // The binary attribute is exact; the text says the same.
            continue;
        }
        match acl::from_text(text, &mut lookup_user, &mut lookup_group) {
            // GNU tar writes the access ACL of every file with a default ACL, even when it
            // only restates the mode bits; the file had no attribute for it.
            Ok(value) if attr == acl::ACCESS_XATTR && acl::is_minimal(&value) => {}
            Ok(value) => node.xattrs.push(Xattr {
                name: attr.to_vec(),
                value,
            }),
            Err(err) => warnings.push(format!("{what} ACL left out: {err}")),
        }
    }
    node.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((node, warnings))
}

fn lookup_user(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

fn lookup_group(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}
