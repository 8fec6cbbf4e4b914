//! POSIX ACLs: the kernel's binary `system.posix_acl_access`/`system.posix_acl_default`
//! attribute value and the text form of `SCHILY.acl.access`/`SCHILY.acl.default` records.
//!
//! Binary form (little-endian): a `u32` version (2), then per entry a `u16` tag, a `u16`
//! permission set and a `u32` qualifier (`u32::MAX` for entries without one), sorted by tag
//! and qualifier. Text form, as GNU tar writes it: one entry per line,
//! `user::rw-`, `user:1234:r-x`, `group::r--`, `group:5678:rw-`, `mask::rwx`, `other::---`.
//! SnapGuard writes qualifiers as numbers, so the text means exactly what the binary form
//! means on any system; when reading, names (`user:alice:rw-`) are resolved by the caller's
//! callbacks, and star's fourth field (`user:alice:rw-:1001`) is used if present.

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const UNDEFINED_ID: u32 = u32::MAX;

/// The extended attribute holding the access ACL.
pub const ACCESS_XATTR: &[u8] = b"system.posix_acl_access";
/// The extended attribute holding a directory's default ACL.
pub const DEFAULT_XATTR: &[u8] = b"system.posix_acl_default";

/// The text form of a binary ACL, or `None` if the value is not a valid ACL.
pub fn to_text(binary: &[u8]) -> Option<Vec<u8>> {
    let (version, body) = binary.split_at_checked(4)?;
    if u32::from_le_bytes(version.try_into().ok()?) != VERSION || body.len() % 8 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for e in body.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        if perm & !7 != 0 {
            return None;
        }
        let (name, qualified) = match tag {
            USER_OBJ => ("user", false),
            USER => ("user", true),
            GROUP_OBJ => ("group", false),
            GROUP => ("group", true),
            MASK => ("mask", false),
            OTHER => ("other", false),
            _ => return None,
        };
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        if qualified {
            out.extend_from_slice(id.to_string().as_bytes());
        }
        out.push(b':');
        for (bit, c) in [(4, b'r'), (2, b'w'), (1, b'x')] {
            out.push(if perm & bit != 0 { c } else { b'-' });
        }
        out.push(b'\n');
    }
    Some(out)
}

/// Whether a binary ACL has only the owner, group and other entries: it says no more than the
/// mode bits, and the kernel keeps no attribute for it.
pub fn is_minimal(binary: &[u8]) -> bool {
    binary.len() > 4
        && binary[4..].chunks(8).all(|e| {
            e.len() == 8
                && matches!(
                    u16::from_le_bytes([e[0], e[1]]),
                    USER_OBJ | GROUP_OBJ | OTHER
                )
        })
}

/// The binary form of an ACL in text form. `user` and `group` resolve names to ids (for
/// entries that name a user or group instead of giving its number).
pub fn from_text(
    text: &[u8],
    user: &mut dyn FnMut(&str) -> Option<u32>,
    group: &mut dyn FnMut(&str) -> Option<u32>,
) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "ACL text is not UTF-8".to_string())?;
    let mut entries: Vec<(u16, u16, u32)> = Vec::new();
    for raw in text.split([',', '\n']) {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(':').map(str::trim).collect();
        let bad = || format!("invalid ACL entry {line:?}");
        let (tag_name, qualifier, perms, numeric) = match fields.as_slice() {
            [t, p] => (*t, "", *p, None),
            [t, q, p] => (*t, *q, *p, None),
            [t, q, p, n] => (*t, *q, *p, Some(*n)),
            _ => return Err(bad()),
        };
        let perm = parse_perms(perms).ok_or_else(bad)?;
        let (tag, id) = match (tag_name, qualifier.is_empty()) {
            ("user" | "u", true) => (USER_OBJ, UNDEFINED_ID),
            ("group" | "g", true) => (GROUP_OBJ, UNDEFINED_ID),
            ("mask" | "m", true) => (MASK, UNDEFINED_ID),
            ("other" | "o", true) => (OTHER, UNDEFINED_ID),
            ("user" | "u", false) => (USER, qualifier_id(qualifier, numeric, user)?),
            ("group" | "g", false) => (GROUP, qualifier_id(qualifier, numeric, group)?),
            _ => return Err(bad()),
        };
        if entries.iter().any(|&(t, _, i)| t == tag && i == id) {
            return Err(format!("ACL entry {line:?} appears twice"));
        }
        entries.push((tag, perm, id));
    }
    for (need, what) in [
        (USER_OBJ, "user::"),
        (GROUP_OBJ, "group::"),
        (OTHER, "other::"),
    ] {
        if !entries.iter().any(|&(t, _, _)| t == need) {
            return Err(format!("ACL has no {what} entry"));
        }
    }
    if entries.iter().any(|&(t, _, _)| t == USER || t == GROUP)
        && !entries.iter().any(|&(t, _, _)| t == MASK)
    {
        return Err("ACL has named entries but no mask:: entry".into());
    }
    entries.sort_by_key(|&(tag, _, id)| (tag, id));
    let mut out = VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(out)
}

fn parse_perms(p: &str) -> Option<u16> {
    let mut perm = 0u16;
    let mut seen = 0u8;
    for c in p.chars() {
        let (bit, mark) = match c {
            'r' => (4, 1),
            'w' => (2, 2),
            'x' => (1, 4),
            '-' => (0, 0),
            _ => return None,
        };
        if seen & mark != 0 {
            return None;
        }
        seen |= mark;
        perm |= bit;
    }
    (!p.is_empty() && p.len() <= 3).then_some(perm)
}

fn qualifier_id(
    q: &str,
    numeric: Option<&str>,
    resolve: &mut dyn FnMut(&str) -> Option<u32>,
) -> Result<u32, String> {
    if let Ok(id) = q.parse::<u32>() {
        if id != UNDEFINED_ID {
            return Ok(id);
        }
    }
    if let Some(id) = numeric.and_then(|n| n.parse::<u32>().ok()) {
        return Ok(id);
    }
    resolve(q)
        .ok_or_else(|| format!("ACL names {q:?}, which is not a user or group on this system"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn binary(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut out = VERSION.to_le_bytes().to_vec();
        for &(t, p, i) in entries {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&p.to_le_bytes());
            out.extend_from_slice(&i.to_le_bytes());
        }
        out
    }

    fn none(_: &str) -> Option<u32> {
        None
    }

    #[test]
    fn text_round_trip() {
        let b = binary(&[
            (USER_OBJ, 6, UNDEFINED_ID),
            (USER, 5, 1234),
            (GROUP_OBJ, 4, UNDEFINED_ID),
            (GROUP, 6, 5678),
            (MASK, 7, UNDEFINED_ID),
            (OTHER, 0, UNDEFINED_ID),
        ]);
        let text = to_text(&b).unwrap();
        assert_eq!(
            text,
            b"user::rw-\nuser:1234:r-x\ngroup::r--\ngroup:5678:rw-\nmask::rwx\nother::---\n"
        );
        assert_eq!(from_text(&text, &mut none, &mut none).unwrap(), b);
        assert!(!is_minimal(&b));
        let minimal =
            from_text(b"user::rwx\ngroup::r-x\nother::r-x\n", &mut none, &mut none).unwrap();
        assert!(is_minimal(&minimal));
    }

    #[test]
    fn names_star_fields_and_short_forms() {
        let mut users = |n: &str| (n == "alice").then_some(1001);
        let b = from_text(
            b"u::rwx,u:alice:r,g::r-x,m::rwx,o::-,g:staff:rw-:50",
            &mut users,
            &mut none,
        )
        .unwrap();
        assert_eq!(
            b,
            binary(&[
                (USER_OBJ, 7, UNDEFINED_ID),
                (USER, 4, 1001),
                (GROUP_OBJ, 5, UNDEFINED_ID),
                (GROUP, 6, 50),
                (MASK, 7, UNDEFINED_ID),
                (OTHER, 0, UNDEFINED_ID),
            ])
        );
        assert!(from_text(
            b"user:bob:r--,user::rw-,group::r--,mask::r--,other::---",
            &mut none,
            &mut none
        )
        .unwrap_err()
        .contains("bob"));
    }

    #[test]
    fn rejects_invalid() {
        for t in [
            &b"user::rw-"[..],
            b"user::rw-,group::r--,other::r--,user:5:rw-",
            b"user::rwq,group::r--,other::r--",
            b"user::rw-,user::rw-,group::r--,other::r--",
            b"bogus::rw-,group::r--,other::r--",
        ] {
            assert!(
                from_text(t, &mut none, &mut none).is_err(),
                "{:?}",
                String::from_utf8_lossy(t)
            );
        }
        assert_eq!(
            to_text(b"\x02\x00\x00\x00\x40\x00\x07\x00\xff\xff\xff\xff"),
            None
        );
        assert_eq!(to_text(b"\x01\x00\x00\x00"), None);
        assert_eq!(to_text(b"\x02\x00"), None);
    }
}
