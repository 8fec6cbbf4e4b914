//! The "varied tree": one fixture with (a bit of) everything a restore must
//! reproduce. Root-only parts are skipped with a note when not root.

use std::path::{Path, PathBuf};

use super::acl::*;
use super::fixture::Fixture;
use super::{acl_xattr, bpath, is_root, lookup_user};

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;

/// Named paths the targeted tests refer to.
pub const DEVICE_CHAR: &str = "special/char_1_3";
pub const DEVICE_BLOCK: &str = "special/block_7_200";

pub fn build(fx: &mut Fixture) {
    files(fx);
    modes(fx);
    owners(fx);
    links(fx);
    hardlinks(fx);
    special(fx);
    xattrs(fx);
    acls(fx);
    names(fx);
    deep(fx, 100);
    empty_dirs(fx);
}

pub fn files(fx: &mut Fixture) {
    fx.file("files/empty", b"");
    fx.file("files/one_byte", b"x");
    fx.file("files/text.txt", b"hello\nworld\n");
    for (i, len) in [
        4095,
        4096,
        4097,
        100 * KIB,
        512 * KIB - 1,
        512 * KIB,
        512 * KIB + 1,
    ]
    .iter()
    .enumerate()
    {
        fx.random_file(format!("files/rand_{len}"), *len, 1000 + i as u64);
    }
    // Identical content under two names (deduplicated, still two files).
    fx.random_file("files/dup_a", 300 * KIB, 77);
    fx.random_file("files/dup_b", 300 * KIB, 77);
    // Sparse file inside the varied tree, too.
    fx.sparse_file(
        "files/sparse",
        9 * MIB,
        &[(2 * MIB, 4096), (9 * MIB - 100, 100)],
        5,
    );
}

pub fn modes(fx: &mut Fixture) {
    for mode in [
        0o000, 0o644, 0o755, 0o600, 0o111, 0o4755, 0o2755, 0o6755, 0o1644, 0o7777, 0o4000, 0o2070,
    ] {
        let rel = format!("modes/file_{mode:04o}");
        fx.file(&rel, format!("mode {mode:o}").as_bytes());
        fx.mode(&rel, mode);
    }
    for mode in [0o1777, 0o2775, 0o0700, 0o0555, 0o0000, 0o7755] {
        let rel = format!("modes/dir_{mode:04o}");
        fx.file(format!("{rel}/inner"), b"inside");
        fx.dir(format!("{rel}/sub"));
        fx.file(format!("{rel}/sub/deeper"), b"deeper");
        fx.mode(&rel, mode);
    }
    // A 000 directory inside a 000 directory.
    fx.file("modes/dir_0000/nested_000/file", b"x");
    fx.mode("modes/dir_0000/nested_000", 0o000);
}

pub fn owners(fx: &mut Fixture) {
    if !is_root() {
        fx.file("owners/not_root", b"owners need root");
        return;
    }
    fx.file("owners/u1234_g5678", b"owned by 1234:5678");
    fx.chown("owners/u1234_g5678", 1234, 5678);
    fx.file("owners/u0_g5678", b"root:5678");
    fx.chown("owners/u0_g5678", 0, 5678);
    let (uid, gid) = lookup_user("nobody").unwrap_or((65534, 65534));
    fx.file("owners/nobody", b"owned by nobody");
    fx.chown("owners/nobody", uid, gid);
    fx.file("owners/dir_1234/file", b"in a dir of 1234");
    fx.chown("owners/dir_1234", 1234, 5678);
    fx.symlink("owners/link_1234", "u1234_g5678");
    fx.chown("owners/link_1234", 1234, 5678);
    // chown clears setuid/setgid, so the mode is applied after it (in finish).
    fx.file("owners/setuid_1234", b"#!/bin/false\n");
    fx.chown("owners/setuid_1234", 1234, 5678);
    fx.mode("owners/setuid_1234", 0o6755);
    fx.file("owners/big_ids", b"large ids");
    fx.chown("owners/big_ids", 4_000_000_000, 3_000_000_000);
}

pub fn links(fx: &mut Fixture) {
    fx.file("links/target_file", b"target");
    fx.dir("links/target_dir");
    fx.file("links/target_dir/in_dir", b"in dir");
    fx.symlink("links/relative", "target_file");
    fx.symlink("links/relative_up", "../files/text.txt");
    fx.symlink("links/absolute", "/etc/hostname");
    fx.symlink("links/dangling", "does/not/exist");
    fx.symlink("links/to_dir", "target_dir");
    fx.symlink("links/self_loop", "self_loop");
    fx.symlink("links/non_utf8_target", bpath(b"caf\xe9/\xff"));
    fx.symlink("links/newline_target", "a\nb");
    let long: String = (0..)
        .map(|i| format!("seg{:05}/", i))
        .take(445)
        .collect::<String>();
    let long = &long[..4000];
    assert_eq!(long.len(), 4000);
    fx.symlink("links/long_4000", long);
}

pub fn hardlinks(fx: &mut Fixture) {
    fx.random_file("hardlinks/a/h1", 10 * KIB, 9);
    fx.hardlink("hardlinks/a/h2", "hardlinks/a/h1");
    fx.hardlink("hardlinks/b/h3", "hardlinks/a/h1"); // spans two directories
    fx.file("hardlinks/pair_x", b"pair");
    fx.hardlink("hardlinks/pair_y", "hardlinks/pair_x");
    fx.file("hardlinks/pair_same_content", b"pair"); // same content, NOT a link
    fx.file("hardlinks/empty_1", b"");
    fx.hardlink("hardlinks/empty_2", "hardlinks/empty_1");
    fx.file("hardlinks/lonely", b"lonely");
    fx.mode("hardlinks/pair_x", 0o4751);
    if is_root() {
        fx.chown("hardlinks/pair_x", 1234, 5678);
    }
}

pub fn special(fx: &mut Fixture) {
    fx.fifo("special/fifo");
    fx.fifo("special/fifo_0600");
    fx.mode("special/fifo_0600", 0o600);
    if is_root() {
        fx.device(DEVICE_CHAR, true, 1, 3);
        fx.device(DEVICE_BLOCK, false, 7, 200);
        fx.device("special/char_big", true, 4095, 1_048_575);
    } else {
        fx.file("special/no_devices", b"devices need root");
    }
}

pub fn xattrs(fx: &mut Fixture) {
    fx.file("xattrs/user_bin", b"xattr holder");
    fx.xattr(
        "xattrs/user_bin",
        "user.binary",
        &[0, 1, 2, 0xff, 0, b'\n', 0x80],
    );
    fx.xattr("xattrs/user_bin", "user.empty", b"");
    fx.xattr("xattrs/user_bin", "user.text", b"hello");
    fx.file("xattrs/user_large", b"large xattr");
    fx.xattr(
        "xattrs/user_large",
        "user.large",
        &super::random_bytes(3, 2000),
    );
    fx.dir("xattrs/dir_with_xattr");
    fx.xattr("xattrs/dir_with_xattr", "user.dir", b"on a directory");
    fx.file("xattrs/security", b"security xattr");
    fx.xattr_optional("xattrs/security", "security.sg_test", b"sec\0val");
    if is_root() {
        fx.file("xattrs/trusted", b"trusted xattr");
        fx.xattr_optional("xattrs/trusted", "trusted.sg_test", b"trusted value");
        fx.symlink("xattrs/symlink_trusted", "trusted");
        fx.xattr_optional("xattrs/symlink_trusted", "trusted.sg_link", b"on a symlink");
    }
}

pub fn acls(fx: &mut Fixture) {
    let access = acl_xattr(&[
        (USER_OBJ, 6, UNDEFINED_ID),
        (USER, 5, 1234),
        (GROUP_OBJ, 4, UNDEFINED_ID),
        (GROUP, 6, 5678),
        (MASK, 7, UNDEFINED_ID),
        (OTHER, 0, UNDEFINED_ID),
    ]);
    fx.file("acl/file_access", b"acl");
    fx.xattr("acl/file_access", ACCESS, &access);
    fx.dir("acl/dir");
    // Created before the default ACL exists: must NOT get an ACL on restore.
    fx.file("acl/dir/pre_existing", b"no acl");
    let default = acl_xattr(&[
        (USER_OBJ, 7, UNDEFINED_ID),
        (USER, 7, 1234),
        (GROUP_OBJ, 5, UNDEFINED_ID),
        (MASK, 7, UNDEFINED_ID),
        (OTHER, 1, UNDEFINED_ID),
    ]);
    fx.xattr("acl/dir", DEFAULT, &default);
    fx.xattr("acl/dir", ACCESS, &access);
    // Created after: inherits the default ACL as its access ACL.
    fx.file("acl/dir/inherited", b"inherited acl");
    fx.dir("acl/dir/inherited_dir");
    // Mask narrower than the named entries.
    let narrow = acl_xattr(&[
        (USER_OBJ, 7, UNDEFINED_ID),
        (USER, 7, 4321),
        (GROUP_OBJ, 7, UNDEFINED_ID),
        (MASK, 1, UNDEFINED_ID),
        (OTHER, 4, UNDEFINED_ID),
    ]);
    fx.file("acl/narrow_mask", b"narrow");
    fx.xattr("acl/narrow_mask", ACCESS, &narrow);
}

pub fn names(fx: &mut Fixture) {
    let names: &[&[u8]] = &[
        b"caf\xe9",
        b"\xff\xfe\x80",
        b"new\nline",
        b"\n",
        b"tab\there",
        b" leading space",
        b"trailing space ",
        b"-dash",
        b"*?[glob]{x}",
        b"back\\slash",
        b"colon:name",
        "ünïcödé-日本語-🦀".as_bytes(),
        b"\x01\x1b[31mcontrol",
        b"..dots",
        b".hidden",
    ];
    for (i, n) in names.iter().enumerate() {
        fx.file(
            Path::new("names").join(bpath(n)),
            format!("name {i}").as_bytes(),
        );
    }
    fx.file(
        Path::new("names/dir_caf\u{e9}").join(bpath(b"caf\xe9")),
        b"nested non-utf8",
    );
    fx.file(
        Path::new("names").join(bpath(b"dir\xe9")).join("inner"),
        b"in non-utf8 dir",
    );
    let n255 = "n".repeat(255);
    fx.file(format!("names/{n255}"), b"255 byte name");
    let d255 = format!("{}\u{e9}", "d".repeat(253)); // 'é' is 2 bytes
    assert_eq!(d255.len(), 255);
    fx.file(format!("names/{d255}/{n255}"), b"255 in 255");
}

/// `levels` nested directories with a file and an empty dir at the bottom.
pub fn deep(fx: &mut Fixture, levels: usize) -> PathBuf {
    let mut rel = PathBuf::from("deep");
    for i in 0..levels {
        rel.push(format!("level_{i:03}"));
    }
    fx.file(rel.join("bottom.txt"), b"bottom of the well");
    fx.dir(rel.join("empty_bottom"));
    rel
}

pub fn empty_dirs(fx: &mut Fixture) {
    fx.dir("empty/e1");
    fx.dir("empty/e2/e3/e4");
    fx.dir("empty/e_0700");
    fx.mode("empty/e_0700", 0o700);
    fx.dir("empty/e_xattr");
    fx.xattr("empty/e_xattr", "user.in_empty", b"1");
}
