//! Shared test support: fixture builders, tree comparison and command helpers.
//!
//! Not every helper is used by every test module, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cmd;
pub mod compare;
pub mod fixture;
pub mod proxy;
mod selftest;
pub mod smtp;
pub mod sshd;
pub mod varied;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Deterministic xorshift64* generator, so that failures reproduce.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that neighbouring seeds give unrelated streams (a plain
        // `seed | 1` made seeds 2k and 2k+1 identical).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    XorShift::new(seed).fill(&mut v);
    v
}

/// A path component (or relative path) from raw bytes, e.g. `b"caf\xe9"`.
pub fn bpath(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// uid and primary gid of a user from /etc/passwd (no NSS needed).
pub fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// Where a full restore into `target` puts the absolute source path `src`.
pub fn restored_path(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").expect("source path must be absolute"))
}

/// Raw `system.posix_acl_*` xattr value. `entries` are (tag, perm, id);
/// they are sorted by tag then id as the kernel requires.
pub fn acl_xattr(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut e = entries.to_vec();
    e.sort_by_key(|&(tag, _, id)| (tag, id));
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in e {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

pub mod acl {
    pub const USER_OBJ: u16 = 0x01;
    pub const USER: u16 = 0x02;
    pub const GROUP_OBJ: u16 = 0x04;
    pub const GROUP: u16 = 0x08;
    pub const MASK: u16 = 0x10;
    pub const OTHER: u16 = 0x20;
    pub const UNDEFINED_ID: u32 = u32::MAX;
    pub const ACCESS: &str = "system.posix_acl_access";
    pub const DEFAULT: &str = "system.posix_acl_default";
}

/// Recursively chown a tree (without following symlinks).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("lchown {path:?}: {e}"));
    let meta = std::fs::symlink_metadata(path).expect("lstat");
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).expect("read_dir") {
            chown_tree(&entry.expect("dir entry").path(), uid, gid);
        }
    }
}
