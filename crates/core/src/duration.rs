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
}
