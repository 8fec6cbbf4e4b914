//! Keep-within durations: [`parse_duration`] reads the restic-style compact form (`30d`,
//! `2y5m7d3h`) into seconds, and [`format_duration`] writes seconds back in an unambiguous form.
//!
//! A duration is one or more `<number><unit>` terms with no spaces or signs. The units are fixed
//! lengths, not calendar arithmetic: `y` = 365 days, `m` = 30 days (a month, as in restic: there
//! is no minutes unit), `w` = 7 days, `d` = 86 400 seconds, `h` = 3600 seconds. Each unit may
//! appear at most once and units must be written largest first (`1d12h`, not `12h1d`), which
//! catches typos such as `1d1d`. Anything else is an error that quotes the whole input.

use crate::PolicyError;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// The accepted units, largest first, with their length in seconds.
const UNITS: [(char, i64); 5] = [
    ('y', 365 * DAY),
    ('m', 30 * DAY),
    ('w', 7 * DAY),
    ('d', DAY),
    ('h', HOUR),
];

const UNIT_HELP: &str = "use y (365 days), m (30 days), w, d or h, e.g. 30d or 2y5m7d3h";

/// Parse a keep-within duration such as `30d`, `12h` or `2y5m7d3h` into seconds.
///
/// ```
/// use snapguard_policy::parse_duration;
/// assert_eq!(parse_duration("1d12h")?, 36 * 3600);
/// assert_eq!(parse_duration("1m")?, 30 * 86_400); // months, not minutes
/// assert!(parse_duration("5min").is_err());
/// # Ok::<(), snapguard_policy::PolicyError>(())
/// ```
pub fn parse_duration(s: &str) -> Result<i64, PolicyError> {
    let err = |reason: String| PolicyError::InvalidDuration {
        input: s.to_owned(),
        reason,
    };
    if s.is_empty() {
        return Err(err(format!("empty duration; {UNIT_HELP}")));
    }
    let mut chars = s.chars().peekable();
    let mut total: i64 = 0;
    // Index into UNITS of the next unit still allowed (units must be strictly decreasing).
    let mut next_allowed = 0usize;
    while chars.peek().is_some() {
        let mut digits = String::new();
        while let Some(&c) = chars.peek() {
            if !c.is_ascii_digit() {
                break;
            }
            digits.push(c);
            chars.next();
        }
        let mut unit = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() {
                break;
            }
            unit.push(c);
            chars.next();
        }
        if digits.is_empty() {
            return Err(err(format!(
                "expected a number before {unit:?}; {UNIT_HELP}"
            )));
        }
        if unit.is_empty() {
            return Err(err(format!("the number {digits} has no unit; {UNIT_HELP}")));
        }
        let Some(pos) = UNITS
            .iter()
            .position(|(u, _)| unit.len() == 1 && unit.starts_with(*u))
        else {
            return Err(err(format!(
                "unknown unit {unit:?} (there is no minutes or seconds unit); {UNIT_HELP}"
            )));
        };
        if pos < next_allowed {
            return Err(err(format!(
                "unit {unit:?} is repeated or out of order; write each unit once, largest first \
                 (y, m, w, d, h)"
            )));
        }
        next_allowed = pos + 1;
        let too_large = || err("the duration is too large".to_owned());
        let count: i64 = digits.parse().map_err(|_| too_large())?;
        let secs = count.checked_mul(UNITS[pos].1).ok_or_else(too_large)?;
        total = total.checked_add(secs).ok_or_else(too_large)?;
    }
    Ok(total)
}

/// Write a number of seconds as days, hours and (if any remain) seconds: `30d`, `1d12h`, `0h`,
/// `90s`. Days are never folded into `y`, `m` or `w`, so `30d` does not come out as the easily
/// misread `1m`. The output is accepted by [`parse_duration`] whenever `secs` is a non-negative
/// whole number of hours; a negative value is prefixed with `-`.
///
/// ```
/// use snapguard_policy::format_duration;
/// assert_eq!(format_duration(36 * 3600), "1d12h");
/// assert_eq!(format_duration(400 * 86_400), "400d");
/// ```
pub fn format_duration(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let abs = secs.unsigned_abs();
    let (day, hour) = (DAY.unsigned_abs(), HOUR.unsigned_abs());
    let (days, hours, rest) = (abs / day, abs % day / hour, abs % hour);
    let mut out = String::from(sign);
    if days > 0 {
        out.push_str(&format!("{days}d"));
    }
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if rest > 0 {
        out.push_str(&format!("{rest}s"));
    }
    if abs == 0 {
        out.push_str("0h");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case("0d", 0)]
    #[case("30d", 30 * DAY)]
    #[case("12h", 12 * HOUR)]
    #[case("1w", 7 * DAY)]
    #[case("1m", 30 * DAY)]
    #[case("1y", 365 * DAY)]
    #[case("2y5m7d3h", 2 * 365 * DAY + 5 * 30 * DAY + 7 * DAY + 3 * HOUR)]
    #[case("1y2m3w4d5h", 365 * DAY + 60 * DAY + 21 * DAY + 4 * DAY + 5 * HOUR)]
    #[case("1d12h", 36 * HOUR)]
    #[case("0001d", DAY)]
    #[case("48h", 2 * DAY)]
    #[case::largest("292471208677y4695h", 9_223_372_036_854_774_000)]
    fn parses(#[case] input: &str, #[case] secs: i64) {
        assert_eq!(parse_duration(input), Ok(secs));
    }

    #[rstest]
    #[case::empty("", "empty duration")]
    #[case::bare_number("30", "has no unit")]
    #[case::trailing_number("1d5", "has no unit")]
    #[case::no_number("d", "expected a number")]
    #[case::negative("-1d", "expected a number")]
    #[case::plus("+1d", "expected a number")]
    #[case::space("1d 2h", "unknown unit")]
    #[case::minutes("5min", "unknown unit \"min\"")]
    #[case::seconds("30s", "unknown unit \"s\"")]
    #[case::uppercase("1D", "unknown unit \"D\"")]
    #[case::word("forever", "expected a number")]
    #[case::repeated("1d1d", "repeated or out of order")]
    #[case::out_of_order("12h1d", "repeated or out of order")]
    #[case::fraction("1.5d", "unknown unit \".\"")]
    #[case::non_ascii("1\u{0663}d", "unknown unit")]
    #[case::huge_number("99999999999999999999d", "too large")]
    #[case::huge_product("999999999999999y", "too large")]
    #[case::huge_sum("292471208677y4696h", "too large")]
    fn rejects(#[case] input: &str, #[case] reason_part: &str) {
        match parse_duration(input) {
            Err(PolicyError::InvalidDuration { input: got, reason }) => {
                assert_eq!(got, input);
                assert!(reason.contains(reason_part), "{input:?}: {reason}");
            }
            other => panic!("{input:?} gave {other:?}"),
        }
    }

    #[test]
    fn error_message_names_the_input() {
        let msg = parse_duration("7 days")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\"7 days\""), "{msg}");
    }

    #[rstest]
    #[case(0, "0h")]
    #[case(HOUR, "1h")]
    #[case(30 * DAY, "30d")]
    #[case(DAY + 12 * HOUR, "1d12h")]
    #[case(90, "90s")]
    #[case(-2 * DAY, "-2d")]
    #[case(i64::MIN, "-106751991167300d15h1808s")]
    #[case(i64::MAX, "106751991167300d15h1807s")]
    fn formats(#[case] secs: i64, #[case] want: &str) {
        assert_eq!(format_duration(secs), want);
    }

    proptest! {
        #[test]
        fn whole_hours_round_trip(hours in 0i64..(i64::MAX / HOUR)) {
            let secs = hours * HOUR;
            prop_assert_eq!(parse_duration(&format_duration(secs)), Ok(secs));
        }

        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn terms_add_up(y in 0i64..50, m in 0i64..50, w in 0i64..50, d in 0i64..500, h in 0i64..500) {
            let s = format!("{y}y{m}m{w}w{d}d{h}h");
            let want = y * 365 * DAY + m * 30 * DAY + w * 7 * DAY + d * DAY + h * HOUR;
            prop_assert_eq!(parse_duration(&s), Ok(want));
        }
    }
}
