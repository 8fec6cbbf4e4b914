//! The 512-byte header block: field layout, numbers (octal and GNU base-256), checksum.
//!
//! Layout (POSIX.1-2001 `ustar`; old GNU headers reuse the `prefix` area for times and the
//! sparse map):
//!
//! | offset | size | ustar field | old GNU field |
//! |---|---|---|---|
//! | 0 | 100 | name | name |
//! | 100 | 8 | mode | mode |
//! | 108 | 8 | uid | uid |
//! | 116 | 8 | gid | gid |
//! | 124 | 12 | size | size |
//! | 136 | 12 | mtime | mtime |
//! | 148 | 8 | chksum | chksum |
//! | 156 | 1 | typeflag | typeflag |
//! | 157 | 100 | linkname | linkname |
//! | 257 | 6 | magic `ustar\0` | magic `ustar ` |
//! | 263 | 2 | version `00` | version ` \0` |
//! | 265 | 32 | uname | uname |
//! | 297 | 32 | gname | gname |
//! | 329 | 8 | devmajor | devmajor |
//! | 337 | 8 | devminor | devminor |
//! | 345 | 155 | prefix | atime (12), ctime (12), offset (12), longnames (4), pad (1), sparse map 4 × (12 + 12) at 386, isextended at 482, realsize (12) at 483 |

use crate::BLOCK;

pub(crate) const NAME: (usize, usize) = (0, 100);
pub(crate) const MODE: (usize, usize) = (100, 8);
pub(crate) const UID: (usize, usize) = (108, 8);
pub(crate) const GID: (usize, usize) = (116, 8);
pub(crate) const SIZE: (usize, usize) = (124, 12);
pub(crate) const MTIME: (usize, usize) = (136, 12);
pub(crate) const CHKSUM: (usize, usize) = (148, 8);
pub(crate) const TYPEFLAG: usize = 156;
pub(crate) const LINKNAME: (usize, usize) = (157, 100);
pub(crate) const MAGIC: (usize, usize) = (257, 6);
pub(crate) const VERSION: (usize, usize) = (263, 2);
pub(crate) const UNAME: (usize, usize) = (265, 32);
pub(crate) const GNAME: (usize, usize) = (297, 32);
pub(crate) const DEVMAJOR: (usize, usize) = (329, 8);
pub(crate) const DEVMINOR: (usize, usize) = (337, 8);
pub(crate) const PREFIX: (usize, usize) = (345, 155);
pub(crate) const GNU_ATIME: (usize, usize) = (345, 12);
pub(crate) const GNU_CTIME: (usize, usize) = (357, 12);
/// Old GNU sparse map in the main header: 4 entries of (offset, numbytes), 12 bytes each.
pub(crate) const GNU_SPARSE: usize = 386;
pub(crate) const GNU_SPARSE_ENTRIES: usize = 4;
pub(crate) const GNU_ISEXTENDED: usize = 482;
pub(crate) const GNU_REALSIZE: (usize, usize) = (483, 12);
/// An old GNU sparse extension block: 21 entries, then `isextended` at byte 504.
pub(crate) const GNU_EXT_ENTRIES: usize = 21;
pub(crate) const GNU_EXT_ISEXTENDED: usize = 504;

pub(crate) type Block = [u8; BLOCK];

/// The bytes of a field.
pub(crate) fn field(block: &Block, (off, len): (usize, usize)) -> &[u8] {
    &block[off..off + len]
}

/// A NUL-terminated string field (all of it if there is no NUL).
pub(crate) fn cstr(block: &Block, f: (usize, usize)) -> &[u8] {
    let b = field(block, f);
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// Which flavour of header this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// POSIX `ustar\0` + `00`: the prefix field extends the name.
    Ustar,
    /// Old GNU `ustar  \0`: the prefix area holds atime, ctime and the sparse map.
    Gnu,
    /// Pre-POSIX (v7): no magic; no owner names or device numbers.
    V7,
}

pub(crate) fn flavor(block: &Block) -> Flavor {
    let magic = field(block, MAGIC);
    let version = field(block, VERSION);
    if magic == b"ustar " && version == b" \0" {
        Flavor::Gnu
    } else if magic == b"ustar\0" || magic == b"ustar " {
        Flavor::Ustar
    } else {
        Flavor::V7
    }
}

/// Whether every byte of the block is zero (an end-of-archive block).
pub(crate) fn is_zero(block: &Block) -> bool {
    block.iter().all(|&b| b == 0)
}

/// The checksum over the block with the checksum field taken as spaces: (unsigned, signed),
/// since some old writers summed signed chars.
pub(crate) fn checksums(block: &Block) -> (i64, i64) {
    let mut unsigned = 0i64;
    let mut signed = 0i64;
    for (i, &b) in block.iter().enumerate() {
        let b = if (CHKSUM.0..CHKSUM.0 + CHKSUM.1).contains(&i) {
            b' '
        } else {
            b
        };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    (unsigned, signed)
}

/// Whether the stored checksum matches the block.
pub(crate) fn checksum_ok(block: &Block) -> Result<bool, String> {
    let stored = parse_number(field(block, CHKSUM))?;
    let (u, s) = checksums(block);
    Ok(stored == i128::from(u) || stored == i128::from(s))
}

/// Fill in the checksum field of a block whose other fields are final: six octal digits, NUL,
/// space (what GNU tar and POSIX write).
pub(crate) fn set_checksum(block: &mut Block) {
    let (sum, _) = checksums(block);
    let digits = format!("{:06o}\0 ", sum);
    block[CHKSUM.0..CHKSUM.0 + CHKSUM.1].copy_from_slice(digits.as_bytes());
}

/// Parse a numeric field: octal digits (leading spaces and NULs skipped, ended by a space or
/// NUL), or GNU base-256 (first byte `0x80` for a positive, `0xff` for a negative number, the
/// rest big-endian two's complement). An empty field is zero.
pub(crate) fn parse_number(f: &[u8]) -> Result<i128, String> {
    let Some(&first) = f.first() else {
        return Ok(0);
    };
    if first & 0x80 != 0 {
        // Base-256: at most 12 bytes, so it fits an i128 with room to spare.
        let negative = first == 0xff;
        if first != 0x80 && !negative {
            return Err(format!("invalid base-256 number (first byte {first:#04x})"));
        }
        let mut v: i128 = if negative { -1 } else { 0 };
        for (i, &b) in f.iter().enumerate() {
            let b = if i == 0 && !negative { 0 } else { b };
            v = (v << 8) | i128::from(b);
        }
        return Ok(v);
    }
    let mut i = 0;
    while i < f.len() && (f[i] == b' ' || f[i] == 0) {
        i += 1;
    }
    let mut v: i128 = 0;
    let mut digits = 0;
    while i < f.len() && (b'0'..=b'7').contains(&f[i]) {
        v = v * 8 + i128::from(f[i] - b'0');
        digits += 1;
        i += 1;
        if digits > 40 {
            return Err("octal number too long".into());
        }
    }
    // The rest must be terminators.
    if f[i..].iter().any(|&c| c != b' ' && c != 0) {
        return Err(format!(
            "invalid octal number {:?}",
            String::from_utf8_lossy(f)
        ));
    }
    Ok(v)
}

/// Write `value` as zero-padded octal followed by a NUL, filling the field. Returns false (and
/// leaves the field unchanged) if it does not fit.
pub(crate) fn put_octal(block: &mut Block, (off, len): (usize, usize), value: u64) -> bool {
    let s = format!("{:0width$o}", value, width = len - 1);
    if s.len() > len - 1 {
        return false;
    }
    block[off..off + len - 1].copy_from_slice(s.as_bytes());
    block[off + len - 1] = 0;
    true
}

/// The largest value an octal field of `len` bytes holds.
pub(crate) fn octal_max((_, len): (usize, usize)) -> u64 {
    (1u64 << (3 * (len as u32 - 1))) - 1
}

/// Write `value` in GNU base-256 form (for numbers that do not fit in octal).
pub(crate) fn put_base256(block: &mut Block, (off, len): (usize, usize), value: u64) {
    let bytes = value.to_be_bytes();
    let field = &mut block[off..off + len];
    field.fill(0);
    field[len - 8..].copy_from_slice(&bytes);
    field[0] |= 0x80;
}

/// Copy `bytes` into a string field (NUL-padded). Returns false if it does not fit.
pub(crate) fn put_bytes(block: &mut Block, (off, len): (usize, usize), bytes: &[u8]) -> bool {
    if bytes.len() > len {
        return false;
    }
    block[off..off + bytes.len()].copy_from_slice(bytes);
    block[off + bytes.len()..off + len].fill(0);
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_base256() {
        assert_eq!(parse_number(b"0000644\0"), Ok(0o644));
        assert_eq!(parse_number(b"  644 \0"), Ok(0o644));
        assert_eq!(parse_number(b"\0\0\0\0"), Ok(0));
        assert!(parse_number(b"0009\0").is_err());
        let mut b = [0u8; BLOCK];
        put_base256(&mut b, UID, 4_000_000_000);
        assert_eq!(parse_number(field(&b, UID)), Ok(4_000_000_000));
        // -1 in base-256.
        assert_eq!(parse_number(&[0xff; 12]), Ok(-1));
        let mut neg = [0xffu8; 12];
        neg[11] = 0xfe;
        assert_eq!(parse_number(&neg), Ok(-2));
        assert!(put_octal(&mut b, MODE, 0o7777));
        assert_eq!(field(&b, MODE), b"0007777\0");
        assert!(!put_octal(&mut b, UID, 0o10000000));
        assert_eq!(octal_max(SIZE), 0o77777777777);
    }

    #[test]
    fn checksum_round_trip() {
        let mut b = [0u8; BLOCK];
        put_bytes(&mut b, NAME, b"hello");
        set_checksum(&mut b);
        assert_eq!(checksum_ok(&b), Ok(true));
        b[0] = b'j';
        assert_eq!(checksum_ok(&b), Ok(false));
    }
}
