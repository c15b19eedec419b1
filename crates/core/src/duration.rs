//! Kuma's duration syntax for mesh settings: an integer and one unit (`10y`, `24h`, `500ms`),
//! or `"0"`. Deliberately narrower than Go's `time.ParseDuration`, as Kuma's validator is.

use std::time::Duration;

/// Parses `^(\d+)(y|w|d|h|m|s|ms)$` or `0`. A year is 365 days.
///
/// Kuma converts the value to a Go `time.Duration` (`int64` nanoseconds); a value beyond
/// Go's maximum (2562047h47m16.854775807s, about 292 years) is refused here rather than
/// wrapped around as Go's multiplication would.
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
    let unit_nanos: u64 = match unit {
        "y" => 365 * 86_400 * 1_000_000_000,
        "w" => 7 * 86_400 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        _ => return None,
    };
    let nanos = n.checked_mul(unit_nanos)?;
    (nanos <= GO_MAX_DURATION_NANOS).then(|| Duration::from_nanos(nanos))
}

/// Go's largest `time.Duration`, in nanoseconds (`math.MaxInt64`).
const GO_MAX_DURATION_NANOS: u64 = i64::MAX as u64;

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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GoDuration {
    text: String,
    nanos: i64,
}

impl GoDuration {
    /// Parses Go's syntax ([`parse_go_time_duration`]); the error is Go's message.
    pub fn parse(text: &str) -> Result<GoDuration, String> {
        match parse_go_time_duration(text) {
            Some(nanos) => Ok(GoDuration {
                text: text.to_string(),
                nanos,
            }),
            None => Err(go_parse_error(text)),
        }
    }

    /// A duration written the way Go prints it (`16s`, `250ms`, `1m30s`), as Kuma stores
    /// durations it sets itself.
    pub fn from_nanos(nanos: i64) -> GoDuration {
        GoDuration {
            text: format_go_duration(nanos),
            nanos,
        }
    }

    /// [`GoDuration::from_nanos`] in milliseconds (saturating at Go's limit).
    pub fn from_millis(millis: i64) -> GoDuration {
        GoDuration::from_nanos(millis.saturating_mul(1_000_000))
    }

    /// The value in nanoseconds (negative when written with `-`).
    pub fn nanos(&self) -> i64 {
        self.nanos
    }

    /// A duration written the way Go's `Duration.String()` prints it (`5s`, `1h0m0s`, `0s`).
    pub fn from_std(d: Duration) -> GoDuration {
        let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        GoDuration::from_nanos(nanos)
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

/// Go's message for a duration it cannot parse: a number without a unit, a unit it does
/// not know, or anything else (`time: invalid duration "x"`).
fn go_parse_error(text: &str) -> String {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let mut rest = body;
    while !rest.is_empty() {
        let number = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if !rest[..number].bytes().any(|b| b.is_ascii_digit()) {
            break;
        }
        let after = &rest[number..];
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let unit = &after[..unit_len];
        if unit.is_empty() {
            return format!("time: missing unit in duration {text:?}");
        }
        if !matches!(
            unit,
            "ns" | "us" | "\u{b5}s" | "\u{3bc}s" | "ms" | "s" | "m" | "h"
        ) {
            return format!("time: unknown unit {unit:?} in duration {text:?}");
        }
        rest = &after[unit_len..];
    }
    format!("time: invalid duration {text:?}")
}

impl std::fmt::Display for GoDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if GO_FORM.with(std::cell::Cell::get) {
            serializer.serialize_str(&format_go_duration(self.nanos))
        } else {
            serializer.serialize_str(&self.text)
        }
    }
}

thread_local! {
    /// Set while [`in_go_form`] runs.
    static GO_FORM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (a serialisation) with every [`GoDuration`] written the way Go's
/// `Duration.String()` prints it (`60s` -> `1m0s`), as Kuma writes a conf it decoded into its
/// Go types (the policy inspection answers). Outside `f` durations are written as they were
/// given.
pub fn in_go_form<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous setting, also when `f` unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GO_FORM.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(GO_FORM.with(|c| c.replace(true)));
    f()
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        GoDuration::parse(&text).map_err(serde::de::Error::custom)
    }
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
    fn go_form_only_inside_in_go_form() {
        let d: Vec<GoDuration> = ["60s", "1h", "0", "1.5s", "90m"]
            .iter()
            .map(|t| GoDuration::parse(t).unwrap())
            .collect();
        let as_written = serde_json::to_value(&d).unwrap();
        assert_eq!(
            as_written,
            serde_json::json!(["60s", "1h", "0", "1.5s", "90m"])
        );
        let go = in_go_form(|| serde_json::to_value(&d).unwrap());
        assert_eq!(
            go,
            serde_json::json!(["1m0s", "1h0m0s", "0s", "1.5s", "1h30m0s"])
        );
        // Nested calls keep the outer setting; afterwards durations read as written again.
        let nested = in_go_form(|| {
            let inner = in_go_form(|| serde_json::to_value(&d[0]).unwrap());
            (inner, serde_json::to_value(&d[1]).unwrap())
        });
        assert_eq!(
            nested,
            (serde_json::json!("1m0s"), serde_json::json!("1h0m0s"))
        );
        assert_eq!(
            serde_json::to_value(&d[0]).unwrap(),
            serde_json::json!("60s")
        );
        // Also after `f` panics.
        let _ = std::panic::catch_unwind(|| in_go_form(|| panic!("boom")));
        assert_eq!(
            serde_json::to_value(&d[0]).unwrap(),
            serde_json::json!("60s")
        );
    }

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

    /// Found by fuzzing (`aerie-fuzz`, target `resources`): a Mesh duration beyond Go's
    /// `time.Duration` was accepted, then overflowed the time arithmetic of whoever used it.
    #[test]
    fn kuma_durations_stop_at_go_max_duration() {
        // 2562047h47m16.854775807s is Go's maximum: 2562047 hours fit, 2562048 do not.
        assert_eq!(
            parse_kuma_duration("2562047h"),
            Some(Duration::from_secs(2_562_047 * 3600))
        );
        assert_eq!(
            parse_kuma_duration("292y"),
            Some(Duration::from_secs(292 * 365 * 86400))
        );
        assert_eq!(
            parse_kuma_duration("9223372036854ms"),
            Some(Duration::from_millis(9_223_372_036_854))
        );
        for bad in [
            "2562048h",
            "293y",
            "15251w",
            "106752d",
            "153722868m",
            "9223372037s",
            "9223372036855ms",
            "18446744073709551615s",
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
