//! restic nodes → SnapGuard nodes (metadata only; file contents are `import`'s job).
//!
//! restic keeps, per entry: type, Go `os.FileMode` (permission bits plus Go's own flag bits for
//! setuid, setgid and sticky), uid, gid, user and group names, mtime, atime and ctime with
//! nanoseconds, inode, device id (`st_dev`), link count, size, the device number of device
//! nodes, symlink targets and extended attributes (ACLs among them, as `system.posix_acl_*`
//! attributes in the kernel's binary form). All of it is carried over.

use crate::source::timestamp;
use rustic_core::repofile::{Metadata, Node as ResticNode, NodeType};
use snapguard_format::{Node, NodeKind, Timestamp, Xattr};

// Go's os.FileMode bits (https://pkg.go.dev/io/fs#FileMode) that restic stores in `mode`.
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;

/// The 12 POSIX permission bits of a Go file mode.
pub(crate) fn posix_mode(go_mode: u32) -> u32 {
    let mut mode = go_mode & 0o777;
    if go_mode & GO_SETUID != 0 {
        mode |= 0o4000;
    }
    if go_mode & GO_SETGID != 0 {
        mode |= 0o2000;
    }
    if go_mode & GO_STICKY != 0 {
        mode |= 0o1000;
    }
    mode
}

/// The SnapGuard kind of a restic node, or None for sockets (which restic records but neither
/// restic nor SnapGuard restores).
pub(crate) fn kind(t: &NodeType) -> Option<NodeKind> {
    Some(match t {
        NodeType::File => NodeKind::File,
        NodeType::Dir => NodeKind::Dir,
        NodeType::Symlink { .. } => NodeKind::Symlink,
        NodeType::Dev { .. } => NodeKind::BlockDevice,
        NodeType::Chardev { .. } => NodeKind::CharDevice,
        NodeType::Fifo => NodeKind::Fifo,
        NodeType::Socket => return None,
    })
}

/// The entry's name as bytes. restic stores names quoted as Go's `strconv.Quote` does, without
/// the quotes (`back\\slash`, `tab\there`, `caf\xe9` for bytes that are not UTF-8), and
/// rustic the same way; `Node::name` undoes it.
pub(crate) fn name(node: &ResticNode) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    node.name().as_bytes().to_vec()
}

/// The node of a restic entry with every attribute but file content; `fallback_time` stands in
/// for a missing mtime (restic always writes one).
pub(crate) fn node(kind: NodeKind, r: &ResticNode, fallback_time: Timestamp) -> Node {
    let m: &Metadata = &r.meta;
    let mut n = Node::new(Vec::new(), kind);
    // restic leaves zero fields out ("omitempty"): a missing mode is mode 0000.
    n.mode = m.mode.map_or(0, posix_mode);
    n.uid = m.uid.unwrap_or(0);
    n.gid = m.gid.unwrap_or(0);
    n.user = m.user.clone().filter(|u| !u.is_empty());
    n.group = m.group.clone().filter(|g| !g.is_empty());
    n.mtime = m
        .mtime
        .map(|t| timestamp(t.as_nanosecond()))
        .unwrap_or(fallback_time);
    n.atime = m
        .atime
        .map(|t| timestamp(t.as_nanosecond()))
        .unwrap_or(n.mtime);
    n.ctime = m
        .ctime
        .map(|t| timestamp(t.as_nanosecond()))
        .unwrap_or(n.mtime);
    n.inode = m.inode;
    n.device = m.device_id;
    n.nlink = m.links.max(1);
    match &r.node_type {
        NodeType::File => n.size = m.size,
        NodeType::Symlink { .. } => {
            use std::os::unix::ffi::OsStrExt;
            n.link_target = r.node_type.to_link().as_os_str().as_bytes().to_vec();
        }
        NodeType::Dev { device } | NodeType::Chardev { device } => n.rdev = *device,
        _ => {}
    }
    let mut xattrs: Vec<Xattr> = m
        .extended_attributes
        .iter()
        .map(|x| Xattr {
            name: x.name.as_bytes().to_vec(),
            value: x.value.clone().unwrap_or_default(),
        })
        .collect();
    xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    xattrs.dedup_by(|a, b| a.name == b.name);
    n.xattrs = xattrs;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_mode_bits_become_posix_bits() {
        assert_eq!(posix_mode(0o644), 0o644);
        // Go's ModeDir | 0755.
        assert_eq!(posix_mode((1 << 31) | 0o755), 0o755);
        assert_eq!(posix_mode(GO_SETUID | 0o755), 0o4755);
        assert_eq!(posix_mode(GO_SETGID | 0o070), 0o2070);
        assert_eq!(posix_mode((1 << 31) | GO_STICKY | 0o777), 0o1777);
        assert_eq!(
            posix_mode(GO_SETUID | GO_SETGID | GO_STICKY | 0o777),
            0o7777
        );
        assert_eq!(posix_mode(GO_SETUID), 0o4000);
    }
}
