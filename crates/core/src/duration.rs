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

/// A Kubernetes `metav1.Duration` as policies spell it: Go's `time.ParseDuration` syntax
/// (`5s`, `1h30m`, `1.5s`, `-1s`, `0`), kept as written so a stored policy reads back
/// unchanged. Parsing refuses what Go refuses, with Go's message naming the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoDuration {
    text: String,
    nanos: i64,
}

impl GoDuration {
    /// Parses Go's syntax: an optional sign, then one or more decimal numbers each with a unit
    /// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); `0` alone needs no unit.
    pub fn parse(text: &str) -> Result<GoDuration, String> {
        let invalid = || format!("time: invalid duration {text:?}");
        let (negative, mut rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if rest == "0" {
            return Ok(GoDuration {
                text: text.to_string(),
                nanos: 0,
            });
        }
        if rest.is_empty() {
            return Err(invalid());
        }
        let mut total: i128 = 0;
        while !rest.is_empty() {
            let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (int_part, after) = rest.split_at(int_len);
            let (frac_part, after) = match after.strip_prefix('.') {
                Some(f) => {
                    let n = f.bytes().take_while(u8::is_ascii_digit).count();
                    f.split_at(n)
                }
                None => ("", after),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
            let unit_len = after
                .char_indices()
                .find(|(_, c)| *c == '.' || c.is_ascii_digit())
                .map_or(after.len(), |(i, _)| i);
            let (unit, after) = after.split_at(unit_len);
            if unit.is_empty() {
                return Err(format!("time: missing unit in duration {text:?}"));
            }
            let per_unit: i128 = match unit {
                "ns" => 1,
                "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
            };
            // Digits beyond what an i64 of nanoseconds can hold make the value invalid; the
            // fraction is cut at nanosecond precision, as Go does.
            let whole: i128 = if int_part.is_empty() {
                0
            } else if int_part.len() > 20 {
                return Err(invalid());
            } else {
                int_part.parse().map_err(|_| invalid())?
            };
            let mut frac: i128 = 0;
            let mut scale: i128 = 1;
            for d in frac_part.bytes().take(18) {
                frac = frac * 10 + i128::from(d - b'0');
                scale *= 10;
            }
            total += whole * per_unit + frac * per_unit / scale;
            if total > i128::from(i64::MAX) {
                return Err(invalid());
            }
            rest = after;
        }
        let nanos = i64::try_from(if negative { -total } else { total }).map_err(|_| invalid())?;
        Ok(GoDuration {
            text: text.to_string(),
            nanos,
        })
    }

    /// A duration written the way Go's `Duration.String()` prints it (`5s`, `1h0m0s`, `0s`).
    pub fn from_std(d: Duration) -> GoDuration {
        let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        GoDuration {
            text: go_string(nanos),
            nanos,
        }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The value, for a non-negative duration.
    pub fn to_std(&self) -> Option<Duration> {
        u64::try_from(self.nanos).ok().map(Duration::from_nanos)
    }
}

/// Go's `Duration.String()` for a non-negative number of nanoseconds.
fn go_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (value, unit) = if nanos < 1_000 {
            (nanos as f64, "ns")
        } else if nanos < 1_000_000 {
            (nanos as f64 / 1e3, "\u{b5}s")
        } else {
            (nanos as f64 / 1e6, "ms")
        };
        return format!("{value}{unit}");
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let sub_minute = nanos % 60_000_000_000;
    let secs = if sub_minute % 1_000_000_000 == 0 {
        format!("{}s", sub_minute / 1_000_000_000)
    } else {
        format!("{}s", sub_minute as f64 / 1e9)
    };
    match (hours, minutes) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        GoDuration::parse(&text).map_err(serde::de::Error::custom)
    }
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
    fn k8s_durations_parse_as_go_does() {
        let ns = |s: &str| GoDuration::parse(s).map(|d| d.nanos);
        assert_eq!(ns("0"), Ok(0));
        assert_eq!(ns("-0"), Ok(0));
        assert_eq!(ns("5s"), Ok(5_000_000_000));
        assert_eq!(ns("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(ns("1.5s"), Ok(1_500_000_000));
        assert_eq!(ns(".5s"), Ok(500_000_000));
        assert_eq!(ns("-1s"), Ok(-1_000_000_000));
        assert_eq!(ns("+2ms"), Ok(2_000_000));
        assert_eq!(ns("3us"), Ok(3_000));
        assert_eq!(ns("3\u{b5}s"), Ok(3_000));
        assert_eq!(ns("1h0m0s"), Ok(3_600_000_000_000));
        assert_eq!(ns("abc"), Err("time: invalid duration \"abc\"".to_string()));
        assert_eq!(ns(""), Err("time: invalid duration \"\"".to_string()));
        assert_eq!(ns("-"), Err("time: invalid duration \"-\"".to_string()));
        assert_eq!(ns("."), Err("time: invalid duration \".\"".to_string()));
        assert_eq!(
            ns("1"),
            Err("time: missing unit in duration \"1\"".to_string())
        );
        assert_eq!(
            ns("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".to_string())
        );
        assert_eq!(
            ns("9999999999999999999h"),
            Err("time: invalid duration \"9999999999999999999h\"".to_string())
        );
        assert_eq!(
            ns("99999999999999999999999999s"),
            Err("time: invalid duration \"99999999999999999999999999s\"".to_string())
        );
        assert!(GoDuration::parse("-1s").is_ok_and(|d| d.is_negative() && d.to_std().is_none()));
    }

    #[test]
    fn durations_print_as_go_does() {
        let s = |secs: u64| {
            GoDuration::from_std(Duration::from_secs(secs))
                .as_str()
                .to_string()
        };
        assert_eq!(s(0), "0s");
        assert_eq!(s(5), "5s");
        assert_eq!(s(1800), "30m0s");
        assert_eq!(s(3600), "1h0m0s");
        assert_eq!(s(7200), "2h0m0s");
        assert_eq!(s(3661), "1h1m1s");
        assert_eq!(
            GoDuration::from_std(Duration::from_millis(500)).as_str(),
            "500ms"
        );
        assert_eq!(
            GoDuration::from_std(Duration::from_millis(1500)).as_str(),
            "1.5s"
        );
        for secs in [0, 5, 1800, 3600, 3661, 86_400] {
            let d = GoDuration::from_std(Duration::from_secs(secs));
            assert_eq!(GoDuration::parse(d.as_str()).map(|p| p.nanos), Ok(d.nanos));
        }
    }
}
