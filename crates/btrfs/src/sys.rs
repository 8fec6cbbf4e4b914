//! The btrfs ioctl ABI (`linux/btrfs.h`, `linux/btrfs_tree.h`): argument structures laid out
//! exactly as the kernel's, and thin wrappers that are the only `unsafe` code of this crate.
//!
//! Every wrapper passes a pointer to a live, properly sized and initialised structure that the
//! kernel reads and/or writes within its declared size (the size is part of the ioctl number, so
//! a layout mistake yields `ENOTTY`, never a wild write); the tree-search buffer is one
//! allocation whose size the kernel is told in `buf_size`.

use std::os::fd::{AsRawFd, BorrowedFd};

const MAGIC: u8 = 0x94;

pub const SUBVOL_NAME_MAX: usize = 4039;
pub const PATH_NAME_MAX: usize = 4087;
pub const INO_LOOKUP_PATH_MAX: usize = 4080;

/// `BTRFS_SUBVOL_RDONLY`.
pub const SUBVOL_RDONLY: u64 = 1 << 1;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
pub struct VolArgs {
    pub fd: i64,
    pub name: [u8; PATH_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_vol_args_v2` (the qgroup-inherit union left zero).
#[repr(C)]
pub struct VolArgsV2 {
    pub fd: i64,
    pub transid: u64,
    pub flags: u64,
    pub unused: [u64; 4],
    pub name: [u8; SUBVOL_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_timespec`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IoctlTimespec {
    pub sec: u64,
    pub nsec: u32,
}

/// `struct btrfs_ioctl_get_subvol_info_args`.
#[repr(C)]
pub struct GetSubvolInfoArgs {
    pub treeid: u64,
    pub name: [u8; 256],
    pub parent_id: u64,
    pub dirid: u64,
    pub generation: u64,
    pub flags: u64,
    pub uuid: [u8; 16],
    pub parent_uuid: [u8; 16],
    pub received_uuid: [u8; 16],
    pub ctransid: u64,
    pub otransid: u64,
    pub stransid: u64,
    pub rtransid: u64,
    pub ctime: IoctlTimespec,
    pub otime: IoctlTimespec,
    pub stime: IoctlTimespec,
    pub rtime: IoctlTimespec,
    pub reserved: [u64; 8],
}

/// `struct btrfs_ioctl_fs_info_args`.
#[repr(C)]
pub struct FsInfoArgs {
    pub max_id: u64,
    pub num_devices: u64,
    pub fsid: [u8; 16],
    pub nodesize: u32,
    pub sectorsize: u32,
    pub clone_alignment: u32,
    pub csum_type: u16,
    pub csum_size: u16,
    pub flags: u64,
    pub generation: u64,
    pub metadata_uuid: [u8; 16],
    pub reserved: [u8; 944],
}

/// `struct btrfs_ioctl_ino_lookup_args`.
#[repr(C)]
pub struct InoLookupArgs {
    pub treeid: u64,
    pub objectid: u64,
    pub name: [u8; INO_LOOKUP_PATH_MAX],
}

/// `struct btrfs_ioctl_search_key`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SearchKey {
    pub tree_id: u64,
    pub min_objectid: u64,
    pub max_objectid: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    pub min_transid: u64,
    pub max_transid: u64,
    pub min_type: u32,
    pub max_type: u32,
    pub nr_items: u32,
    pub unused: u32,
    pub unused1: u64,
    pub unused2: u64,
    pub unused3: u64,
    pub unused4: u64,
}

/// `struct btrfs_ioctl_search_args_v2` without its flexible buffer.
#[repr(C)]
pub struct SearchArgsV2 {
    pub key: SearchKey,
    pub buf_size: u64,
}

/// The bytes of results that one tree search returns at most.
pub const SEARCH_BUF: usize = 256 * 1024;

/// `btrfs_ioctl_search_args_v2` with its buffer.
#[repr(C)]
pub struct SearchBuf {
    pub args: SearchArgsV2,
    pub buf: [u8; SEARCH_BUF],
}

/// `struct btrfs_ioctl_search_header` size: transid, objectid, offset (u64), type, len (u32).
pub const SEARCH_HEADER_LEN: usize = 32;

mod raw {
    use super::*;
    nix::ioctl_write_ptr!(snap_create_v2, MAGIC, 23, VolArgsV2);
    nix::ioctl_write_ptr!(subvol_create_v2, MAGIC, 24, VolArgsV2);
    nix::ioctl_write_ptr!(snap_destroy, MAGIC, 15, VolArgs);
    nix::ioctl_write_ptr!(default_subvol, MAGIC, 19, u64);
    nix::ioctl_read!(subvol_getflags, MAGIC, 25, u64);
    nix::ioctl_write_ptr!(subvol_setflags, MAGIC, 26, u64);
    nix::ioctl_readwrite!(tree_search_v2, MAGIC, 17, SearchArgsV2);
    nix::ioctl_readwrite!(ino_lookup, MAGIC, 18, InoLookupArgs);
    nix::ioctl_read!(get_subvol_info, MAGIC, 60, GetSubvolInfoArgs);
    nix::ioctl_read!(fs_info, MAGIC, 31, FsInfoArgs);
    nix::ioctl_none!(sync, MAGIC, 8);
}

fn res(r: nix::Result<i32>) -> std::io::Result<()> {
    r.map(|_| ()).map_err(std::io::Error::from)
}

/// Zeroed plain-old-data: every structure above is integers and byte arrays, for which all-zero
/// is a valid value (and what the kernel expects in unused fields).
pub fn zeroed<T: Zeroable>() -> Box<T> {
    let layout = std::alloc::Layout::new::<T>();
    // SAFETY: T is one of the integer-only structures above (the sealed `Zeroable` trait), so
    // all-zero bytes are a valid T; the layout is T's and non-zero sized; a null pointer (out of
    // memory) goes to the allocation error handler; the box takes ownership of the allocation.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<T>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(p)
    }
}

/// Structures made only of integers and integer arrays.
pub trait Zeroable: private::Sealed {}
mod private {
    pub trait Sealed {}
}
macro_rules! zeroable {
    ($($t:ty),*) => {$( impl private::Sealed for $t {} impl Zeroable for $t {} )*};
}
zeroable!(
    VolArgs,
    VolArgsV2,
    GetSubvolInfoArgs,
    FsInfoArgs,
    InoLookupArgs,
    SearchBuf
);

// SAFETY (all wrappers below): `fd` is a valid open descriptor for the call's duration (a
// borrowed fd), and each argument pointer refers to a live structure of exactly the type the
// ioctl number declares (or, for the tree search, a larger allocation whose prefix is that type
// and whose remainder the kernel is told the size of).

pub fn snap_create_v2(fd: BorrowedFd<'_>, args: &VolArgsV2) -> std::io::Result<()> {
    res(unsafe { raw::snap_create_v2(fd.as_raw_fd(), args) })
}

pub fn subvol_create_v2(fd: BorrowedFd<'_>, args: &VolArgsV2) -> std::io::Result<()> {
    res(unsafe { raw::subvol_create_v2(fd.as_raw_fd(), args) })
}

pub fn snap_destroy(fd: BorrowedFd<'_>, args: &VolArgs) -> std::io::Result<()> {
    res(unsafe { raw::snap_destroy(fd.as_raw_fd(), args) })
}

pub fn default_subvol(fd: BorrowedFd<'_>, id: u64) -> std::io::Result<()> {
    res(unsafe { raw::default_subvol(fd.as_raw_fd(), &id) })
}

pub fn subvol_getflags(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    let mut flags = 0u64;
    res(unsafe { raw::subvol_getflags(fd.as_raw_fd(), &mut flags) })?;
    Ok(flags)
}

pub fn subvol_setflags(fd: BorrowedFd<'_>, flags: u64) -> std::io::Result<()> {
    res(unsafe { raw::subvol_setflags(fd.as_raw_fd(), &flags) })
}

pub fn tree_search_v2(fd: BorrowedFd<'_>, buf: &mut SearchBuf) -> std::io::Result<()> {
    buf.args.buf_size = SEARCH_BUF as u64;
    let p = (buf as *mut SearchBuf).cast::<SearchArgsV2>();
    res(unsafe { raw::tree_search_v2(fd.as_raw_fd(), p) })
}

pub fn ino_lookup(fd: BorrowedFd<'_>, args: &mut InoLookupArgs) -> std::io::Result<()> {
    res(unsafe { raw::ino_lookup(fd.as_raw_fd(), args) })
}

pub fn get_subvol_info(fd: BorrowedFd<'_>, args: &mut GetSubvolInfoArgs) -> std::io::Result<()> {
    res(unsafe { raw::get_subvol_info(fd.as_raw_fd(), args) })
}

pub fn fs_info(fd: BorrowedFd<'_>, args: &mut FsInfoArgs) -> std::io::Result<()> {
    res(unsafe { raw::fs_info(fd.as_raw_fd(), args) })
}

pub fn sync(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    res(unsafe { raw::sync(fd.as_raw_fd()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(std::mem::size_of::<GetSubvolInfoArgs>(), 504);
        assert_eq!(std::mem::size_of::<FsInfoArgs>(), 1024);
        assert_eq!(std::mem::size_of::<InoLookupArgs>(), 4096);
        assert_eq!(std::mem::size_of::<SearchKey>(), 104);
        assert_eq!(std::mem::size_of::<SearchArgsV2>(), 112);
    }
}
