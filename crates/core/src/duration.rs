//! Kuma's duration syntax for mesh settings: an integer and one unit (`10y`, `24h`, `500ms`),
//! or `"0"`. Deliberately narrower than Go's `time.ParseDuration`, as Kuma's validator is.

use std::time::Duration;

/// Parses `^(\d+)(y|w|d|h|m|s|ms)$` or `0`. A year is 365 days.
pub fn parse_kuma_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let secs = |mult: u64| n.checked_mul(mult).map(Duration::from_secs);
    match unit {
        "y" => secs(365 * 24 * 3600),
        "w" => secs(7 * 24 * 3600),
        "d" => secs(24 * 3600),
        "h" => secs(3600),
        "m" => secs(60),
        "s" => secs(1),
        "ms" => Some(Duration::from_millis(n)),
        _ => None,
    }
}

/// Parses the durations `kumactl --valid-for` and the API's `validFor` take: Go-style
/// compounds like `1h30m`, `24h`, `10m0s`, plus Kuma's `d`/`w`/`y` units.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ns" => Duration::from_nanos(n),
            "us" | "µs" => Duration::from_micros(n),
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            "w" => Duration::from_secs(n.checked_mul(7 * 86_400)?),
            "y" => Duration::from_secs(n.checked_mul(365 * 86_400)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
    }
    Some(total)
}

/// Go's `time.ParseDuration`, exactly: what Kubernetes' `metav1.Duration` (every duration
/// field of Kuma's new policies, e.g. MeshRetry's `perTryTimeout`) accepts. Signed, with
/// fractions and compounds (`-1.5h`, `1h30m`, `.5s`, `300ms`, `2us`), units `ns`, `us`/`µs`/`μs`,
/// `ms`, `s`, `m`, `h` only (no `d`, unlike [`parse_go_duration`]); `0` alone needs no unit.
/// Returns nanoseconds; `None` where Go reports `time: invalid duration` (or an overflow of
/// its `int64` nanoseconds).
pub fn parse_go_time_duration(s: &str) -> Option<i64> {
    const LIMIT: u64 = 1 << 63;
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return None;
        }
        // Whole part: overflow is an error.
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for b in rest[..digits].bytes() {
            if whole > LIMIT / 10 {
                return None;
            }
            whole = whole * 10 + u64::from(b - b'0');
            if whole > LIMIT {
                return None;
            }
        }
        let had_whole = digits > 0;
        rest = &rest[digits..];
        // Fraction: digits beyond what fits are dropped, as Go does.
        let (mut fraction, mut scale, mut had_fraction) = (0u64, 1f64, false);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflowed = false;
            for b in after_dot[..digits].bytes() {
                if overflowed || fraction > (LIMIT - 1) / 10 {
                    overflowed = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(b - b'0');
                if next > LIMIT {
                    overflowed = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            had_fraction = digits > 0;
            rest = &after_dot[digits..];
        }
        if !had_whole && !had_fraction {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u64 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        if whole > LIMIT / unit {
            return None;
        }
        let mut value = whole * unit;
        if fraction > 0 {
            // Go computes this part in float64 too (exact to the nanosecond up to hours).
            let part = (fraction as f64 * (unit as f64 / scale)) as u64;
            value = value.checked_add(part)?;
            if value > LIMIT {
                return None;
            }
        }
        total = total.checked_add(value)?;
        if total > LIMIT {
            return None;
        }
    }
    if negative {
        // -(1 << 63) is the one value whose magnitude does not fit a positive i64.
        Some(0i64.wrapping_sub_unsigned(total))
    } else {
        i64::try_from(total).ok()
    }
}

/// Go's `time.Duration.String()`: how Kuma writes a duration it built itself (`16s`, `250ms`,
/// `1h30m0s`, `1.5µs`, `0s`, `-2m0s`).
pub fn format_go_duration(nanos: i64) -> String {
    let negative = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0 => return "0s".to_string(),
            1..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        let fraction = take_fraction(&mut u, prec);
        out.push_str(&u.to_string());
        out.push_str(&fraction);
        out.push_str(unit);
    } else {
        let fraction = take_fraction(&mut u, 9);
        let seconds = u % 60;
        u /= 60;
        if u > 0 {
            let minutes = u % 60;
            u /= 60;
            if u > 0 {
                out.push_str(&format!("{u}h"));
            }
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&format!("{seconds}{fraction}s"));
    }
    if negative {
        out.insert(0, '-');
    }
    out
}

/// Splits off the last `prec` decimal digits of `v` as `.ddd` without trailing zeros (empty
/// when they are all zero), leaving the integer part in `v`.
fn take_fraction(v: &mut u64, prec: u32) -> String {
    let divisor = 10u64.pow(prec);
    let fraction = *v % divisor;
    *v /= divisor;
    if fraction == 0 {
        return String::new();
    }
    let digits = format!("{fraction:0width$}", width = prec as usize);
    format!(".{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kuma_durations() {
        assert_eq!(
            parse_kuma_duration("10y"),
            Some(Duration::from_secs(10 * 365 * 86400))
        );
        assert_eq!(parse_kuma_duration("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(
            parse_kuma_duration("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_kuma_duration("0"), Some(Duration::ZERO));
        for bad in [
            "",
            "y",
            "1",
            "1h30m",
            "-1h",
            "1.5h",
            "1x",
            "99999999999999999999y",
        ] {
            assert_eq!(parse_kuma_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("24h"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_go_duration("10m0s"), Some(Duration::from_secs(600)));
        assert_eq!(
            parse_go_duration("30d"),
            Some(Duration::from_secs(30 * 86400))
        );
        for bad in ["", "h", "1", "1x", "1h-", "abc"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_time_durations_match_time_parse_duration() {
        let ok = [
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-0s", 0),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.00s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("-2m3.4s", -123_400_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 1_200_000_000_000),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("0.100000000000000000000h", 360_000_000_000),
            ("0.830103483285477580700h", 2_988_372_539_827),
        ];
        for (text, nanos) in ok {
            assert_eq!(parse_go_time_duration(text), Some(nanos), "{text}");
        }
        for bad in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "1w",
            "1y",
            "1 s",
            "1.2.3s",
            "\u{1}ns",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "-9223372036854775809ns",
            "3000000h",
        ] {
            assert_eq!(parse_go_time_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn go_duration_strings_match_time_duration_string() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1\u{b5}s"),
            (2_200_000, "2.2ms"),
            (25_000_000, "25ms"),
            (250_000_000, "250ms"),
            (3_300_000_000, "3.3s"),
            (16_000_000_000, "16s"),
            (240_000_000_000, "4m0s"),
            (245_000_000_000, "4m5s"),
            (245_001_000_000, "4m5.001s"),
            (18_245_001_000_000, "5h4m5.001s"),
            (18_000_000_000_001, "5h0m0.000000001s"),
            (-1, "-1ns"),
            (-1_100, "-1.1\u{b5}s"),
            (-120_000_000_000, "-2m0s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(format_go_duration(nanos), text, "{nanos}");
            assert_eq!(parse_go_time_duration(text), Some(nanos), "{text}");
        }
    }
}
