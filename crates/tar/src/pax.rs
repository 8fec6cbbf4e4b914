//! pax extended header records (`"%d %s=%s\n"`), times with nanoseconds, and the encodings of
//! extended attribute names in record keywords.
//!
//! Keywords and values are raw bytes: a value may hold anything, including NUL and newlines (the
//! length prefix delimits it), which is what makes `SCHILY.xattr.*` binary-safe.

/// The records of one extended header, in archive order (order matters for GNU sparse 0.0,
/// whose `GNU.sparse.offset`/`GNU.sparse.numbytes` pairs repeat).
pub(crate) type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Parse an extended header's data. `Err` describes the first malformed record.
pub(crate) fn parse(data: &[u8]) -> Result<Records, String> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // Some writers pad the data with NULs.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let Some(space) = rest.iter().take(21).position(|&b| b == b' ') else {
            return Err("extended header record without a length".into());
        };
        let len = parse_decimal(&rest[..space])
            .ok_or_else(|| "extended header record with an invalid length".to_string())?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len <= space + 1 || len > rest.len() {
            return Err(format!(
                "extended header record length {len} does not fit the header ({} bytes left)",
                rest.len()
            ));
        }
        let record = &rest[space + 1..len];
        let Some((&b'\n', body)) = record.split_last() else {
            return Err("extended header record does not end in a newline".into());
        };
        let Some(eq) = body.iter().position(|&b| b == b'=') else {
            return Err(format!(
                "extended header record {:?} has no '='",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            ));
        };
        if eq == 0 {
            return Err("extended header record with an empty keyword".into());
        }
        out.push((body[..eq].to_vec(), body[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

/// Append one record to `out`.
pub(crate) fn push(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // "LEN KEY=VALUE\n", where LEN counts its own digits too.
    let body = key.len() + value.len() + 3;
    let mut len = body + digits(body);
    if digits(len) != digits(body) {
        len = body + digits(len);
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

/// A non-negative decimal number (digits only, at most `u64::MAX`).
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A time record: `[-]SECONDS[.FRACTION]`, the exact real number (so `-1.25` is 1.25 s before
/// the epoch: `secs = -2, nanos = 750_000_000`). Digits beyond nanoseconds are dropped.
pub(crate) fn parse_time(s: &[u8]) -> Option<crate::Time> {
    let (negative, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &b""[..]),
    };
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let int = i128::from(parse_decimal(int)?);
    let mut nanos = 0u32;
    for i in 0..9 {
        nanos = nanos * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'));
    }
    let (secs, nanos) = if !negative {
        (int, nanos)
    } else if nanos == 0 {
        (-int, 0)
    } else {
        (-int - 1, 1_000_000_000 - nanos)
    };
    Some(crate::Time {
        secs: i64::try_from(secs).ok()?,
        nanos,
    })
}

/// Format a time as GNU tar does: the exact real number, nine fraction digits unless the
/// fraction is zero.
pub(crate) fn format_time(t: crate::Time) -> String {
    let nanos = t.nanos.min(999_999_999);
    if nanos == 0 {
        return t.secs.to_string();
    }
    if t.secs >= 0 {
        format!("{}.{:09}", t.secs, nanos)
    } else {
        // secs + nanos/1e9 = -((-secs - 1) + (1e9 - nanos)/1e9)
        let int = -(i128::from(t.secs) + 1);
        format!("-{}.{:09}", int, 1_000_000_000 - nanos)
    }
}

/// The `SCHILY.xattr.` keyword for an attribute name: `%` and `=` are written as `%25` and
/// `%3D` (as GNU tar does), since the keyword ends at the first `=`.
pub(crate) fn xattr_keyword(name: &[u8]) -> Vec<u8> {
    let mut k = b"SCHILY.xattr.".to_vec();
    for &b in name {
        match b {
            b'%' => k.extend_from_slice(b"%25"),
            b'=' => k.extend_from_slice(b"%3D"),
            _ => k.push(b),
        }
    }
    k
}

/// The attribute name in a `SCHILY.xattr.` keyword (after the prefix).
pub(crate) fn schily_xattr_name(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        let rest = &encoded[i..];
        if rest.starts_with(b"%25") {
            out.push(b'%');
            i += 3;
        } else if rest.starts_with(b"%3D") || rest.starts_with(b"%3d") {
            out.push(b'=');
            i += 3;
        } else {
            out.push(encoded[i]);
            i += 1;
        }
    }
    out
}

/// The attribute name in a `LIBARCHIVE.xattr.` keyword: URL-encoded (`%XX`).
pub(crate) fn url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Standard base64 (with or without padding), as libarchive writes attribute values.
pub(crate) fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Time;
    use proptest::prelude::*;

    #[test]
    fn record_lengths_count_themselves() {
        let mut out = Vec::new();
        push(&mut out, b"path", b"a");
        assert_eq!(out, b"9 path=a\n");
        // 99 bytes of body + 2 digits = 101, which has 3 digits: the length is 102.
        let mut out = Vec::new();
        let v = vec![b'x'; 95];
        push(&mut out, b"p", &v);
        let len: usize = std::str::from_utf8(&out[..out.iter().position(|&b| b == b' ').unwrap()])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!((len, out.len()), (102, 102));
        assert_eq!(parse(&out).unwrap(), vec![(b"p".to_vec(), v)]);
    }

    #[test]
    fn times() {
        let t = |secs, nanos| Time { secs, nanos };
        assert_eq!(
            parse_time(b"-1262303999.876543211"),
            Some(t(-1262304000, 123456789))
        );
        assert_eq!(
            format_time(t(-1262304000, 123456789)),
            "-1262303999.876543211"
        );
        assert_eq!(parse_time(b"12.5"), Some(t(12, 500_000_000)));
        assert_eq!(parse_time(b"-0.000000001"), Some(t(-1, 999_999_999)));
        assert_eq!(format_time(t(-1, 999_999_999)), "-0.000000001");
        assert_eq!(parse_time(b"1700000000"), Some(t(1700000000, 0)));
        assert_eq!(parse_time(b"1.1234567899"), Some(t(1, 123456789)));
        assert_eq!(parse_time(b"x"), None);
        assert_eq!(parse_time(b"1.-5"), None);
        assert_eq!(parse_time(b"99999999999999999999"), None);
    }

    #[test]
    fn xattr_names() {
        assert_eq!(xattr_keyword(b"user.a=b%c"), b"SCHILY.xattr.user.a%3Db%25c");
        assert_eq!(schily_xattr_name(b"user.a%3Db%25c"), b"user.a=b%c");
        assert_eq!(url_decode(b"user.a%3Db").unwrap(), b"user.a=b");
        assert_eq!(base64_decode(b"aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode(b"AAEC/w==").unwrap(), [0, 1, 2, 255]);
    }

    proptest! {
        #[test]
        fn time_round_trip(secs in any::<i64>(), nanos in 0u32..1_000_000_000) {
            let t = Time { secs, nanos };
            prop_assert_eq!(parse_time(format_time(t).as_bytes()), Some(t));
        }

        #[test]
        fn records_round_trip(recs in proptest::collection::vec(
            (proptest::collection::vec(1u8..=255, 1..30).prop_filter("no =", |k| !k.contains(&b'=')),
             proptest::collection::vec(any::<u8>(), 0..300)), 0..6)) {
            let mut out = Vec::new();
            for (k, v) in &recs {
                push(&mut out, k, v);
            }
            prop_assert_eq!(parse(&out).unwrap(), recs);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&data);
            let _ = parse_time(&data);
            let _ = url_decode(&data);
            let _ = base64_decode(&data);
        }

        #[test]
        fn xattr_keyword_round_trip(name in proptest::collection::vec(1u8..=255, 1..40)) {
            let k = xattr_keyword(&name);
            prop_assert_eq!(schily_xattr_name(&k[b"SCHILY.xattr.".len()..]), name);
        }
    }
}
