//! Turning stored node metadata into the attributes FUSE reports.
//!
//! Everything a snapshot recorded is reported as recorded: mode bits including setuid, setgid
//! and sticky, numeric owner, size, nanosecond atime/mtime/ctime (also before 1970), link
//! count and device numbers. Only what the kernel cannot take from us differs: `st_dev` is the
//! mount's, and `st_ino` is this mount's inode number (see `inode`).

use fuser::{FileAttr, FileType, INodeNo};
use snapguard_format::{ContentPart, Node, NodeKind, Timestamp};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Block size reported in `st_blksize` (and the unit `st_blocks` is rounded to). A larger
/// `st_blksize` makes `cp` issue larger reads, which measured slower through FUSE
/// (bench/mount-read.sh: 1 MiB took about twice the 4 KiB time).
pub(crate) const BLOCK_SIZE: u32 = 4096;

/// A stored timestamp as `SystemTime`; out-of-range values (beyond what `SystemTime` holds)
/// saturate at the epoch rather than panic.
pub(crate) fn system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos.min(999_999_999)));
    let base = if t.secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(t.secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(t.secs.unsigned_abs()))
    };
    base.and_then(|b| b.checked_add(nanos))
        .unwrap_or(UNIX_EPOCH)
}

pub(crate) fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::BlockDevice => FileType::BlockDevice,
    }
}

/// A user-space `dev_t` (glibc's `makedev` layout, as `stat` returns it) in the kernel's
/// 32-bit encoding that FUSE carries (`new_encode_dev`: 12-bit major, 20-bit minor).
pub(crate) fn encode_rdev(rdev: u64) -> u32 {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xf_ff00) << 12)) as u32
}

/// Bytes of a file that hold data (its holes excluded).
pub(crate) fn data_bytes(node: &Node) -> u64 {
    node.content
        .iter()
        .map(|p| match p {
            ContentPart::Data { len, .. } => u64::from(*len),
            ContentPart::Hole { .. } => 0,
        })
        .sum()
}

/// The attributes of a stored node.
pub(crate) fn node_attr(ino: u64, node: &Node) -> FileAttr {
    // st_blocks counts allocated 512-byte units; a sparse file's holes take none, which is how
    // `du` and `cp --sparse=auto` recognise it.
    let blocks = if node.kind == NodeKind::File {
        data_bytes(node).div_ceil(u64::from(BLOCK_SIZE)) * u64::from(BLOCK_SIZE / 512)
    } else {
        0
    };
    // A symlink's size is its target's length (the tree records 0 for it).
    let size = if node.kind == NodeKind::Symlink {
        node.link_target.len() as u64
    } else {
        node.size
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks,
        atime: system_time(node.atime),
        mtime: system_time(node.mtime),
        ctime: system_time(node.ctime),
        crtime: UNIX_EPOCH,
        kind: file_type(node.kind),
        perm: (node.mode & 0o7777) as u16,
        nlink: u32::try_from(node.nlink.max(1)).unwrap_or(u32::MAX),
        uid: node.uid,
        gid: node.gid,
        rdev: if matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
            encode_rdev(node.rdev)
        } else {
            0
        },
        flags: 0,
        blksize: BLOCK_SIZE,
    }
}

/// A directory this mount makes up (the root, `snapshots`, a tag, a history path...).
pub(crate) fn virtual_dir(ino: u64, perm: u16, owner: (u32, u32), time: SystemTime) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: time,
        mtime: time,
        ctime: time,
        crtime: UNIX_EPOCH,
        kind: FileType::Directory,
        perm,
        nlink: 2,
        uid: owner.0,
        gid: owner.1,
        rdev: 0,
        flags: 0,
        blksize: BLOCK_SIZE,
    }
}

/// A symbolic link this mount makes up (`latest`).
pub(crate) fn virtual_symlink(
    ino: u64,
    target_len: usize,
    owner: (u32, u32),
    time: SystemTime,
) -> FileAttr {
    FileAttr {
        kind: FileType::Symlink,
        perm: 0o777,
        nlink: 1,
        size: target_len as u64,
        ..virtual_dir(ino, 0o777, owner, time)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_before_and_after_the_epoch_keep_nanoseconds() {
        let t = |secs, nanos| system_time(Timestamp { secs, nanos });
        assert_eq!(t(0, 1), UNIX_EPOCH + Duration::from_nanos(1));
        // -1 s + 999999999 ns = one nanosecond before the epoch.
        assert_eq!(t(-1, 999_999_999), UNIX_EPOCH - Duration::from_nanos(1));
        assert_eq!(
            t(-1_234_567_891, 876_543_211),
            UNIX_EPOCH - Duration::new(1_234_567_890, 123_456_789)
        );
        assert_eq!(
            t(4_102_444_800, 999_999_999),
            UNIX_EPOCH + Duration::new(4_102_444_800, 999_999_999)
        );
        // Unrepresentable: no panic.
        let _ = t(i64::MIN, 5);
        let _ = t(i64::MAX, 5);
    }

    #[test]
    fn device_numbers_use_the_kernel_encoding() {
        // glibc makedev(major, minor).
        let makedev = |major: u64, minor: u64| {
            ((major & 0xffff_f000) << 32)
                | ((major & 0xfff) << 8)
                | ((minor & 0xffff_ff00) << 12)
                | (minor & 0xff)
        };
        // new_decode_dev as the kernel applies it to what we send.
        let decode = |dev: u32| {
            let dev = u64::from(dev);
            ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00))
        };
        for (major, minor) in [(1, 3), (7, 200), (259, 65_537), (4095, 1_048_575), (0, 0)] {
            assert_eq!(
                decode(encode_rdev(makedev(major, minor))),
                (major, minor),
                "{major}:{minor}"
            );
        }
    }

    #[test]
    fn a_symlinks_size_is_its_target_length() {
        let mut n = Node::new(b"l".to_vec(), NodeKind::Symlink);
        n.link_target = b"../some/where".to_vec();
        n.mode = 0o777;
        let a = node_attr(7, &n);
        assert_eq!(a.size, 13);
        assert_eq!(a.kind, FileType::Symlink);
    }

    #[test]
    fn sparse_files_report_only_their_data_blocks() {
        let mut n = Node::new(b"f".to_vec(), NodeKind::File);
        n.content = vec![
            ContentPart::Hole { len: 1 << 20 },
            ContentPart::Data {
                id: snapguard_format::BlobId([1; 32]),
                len: 100,
            },
        ];
        n.size = (1 << 20) + 100;
        let a = node_attr(42, &n);
        assert_eq!(a.size, (1 << 20) + 100);
        assert_eq!(a.blocks, 8, "one 4 KiB block of data");
    }
}
