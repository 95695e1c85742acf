//! Durations as OpenBao reads and prints them: go-secure-stdlib's `ParseDurationSecond`
//! (integer seconds, `<n>d` days, or Go duration strings such as `"1h30m"` and `"1.5h"`),
//! printed as Go does (`"1h0m0s"`).
//!
//! This is the one parser for every duration a caller sends (request fields, policies, the
//! `X-Vault-Wrap-TTL` header): it follows the Go sources, texts included, and refuses what
//! Go's `time.Duration` (signed 64-bit nanoseconds, about 292 years) cannot hold, as OpenBao
//! does. So no accepted duration can overflow the time arithmetic downstream.

use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::policy::hcl::strconv;

/// Go's longest `time.Duration` (`1<<63 - 1` ns): OpenBao refuses anything longer.
pub(crate) const MAX: Duration = Duration::new(9_223_372_036, 854_775_807);

/// Nanoseconds in a second.
pub(crate) const SECOND: i64 = 1_000_000_000;

/// go-secure-stdlib's text when seconds or days times their unit overflow a `time.Duration`.
const OVERFLOW: &str =
    "multiplication of durations resulted in overflow, one operand may be too large";

/// Parse a duration given as JSON: a number of seconds, or a string (seconds or Go syntax).
/// A negative duration is refused with the framework's text.
pub(crate) fn parse_value(v: &Value) -> Result<Duration> {
    let nanos = parse_signed_value(v)?;
    unsigned(nanos).ok_or_else(|| negative(nanos))
}

/// As [`parse_value`], signed nanoseconds (OpenBao's `TypeSignedDurationSecond`).
pub(crate) fn parse_signed_value(v: &Value) -> Result<i64> {
    // OpenBao decodes JSON numbers as `json.Number`, whose text goes through the string path:
    // `1.5` is "missing unit", a number past i64 is an invalid duration.
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => parse_duration_second_str(&n.to_string()).map_err(Error::invalid_input),
        Value::String(s) => parse_duration_second_str(s).map_err(Error::invalid_input),
        _ => Err(Error::invalid_input("could not parse duration from input")),
    }
}

/// Parse a duration string: `"300"` (seconds), `"1h30m"`, `"1.5h"`, `"250ms"`, `"2d"`.
pub(crate) fn parse(s: &str) -> Result<Duration> {
    let nanos = parse_duration_second_str(s).map_err(Error::invalid_input)?;
    unsigned(nanos).ok_or_else(|| negative(nanos))
}

/// The framework's refusal of a negative duration: it names the value in whole seconds
/// (truncated, as Go's integer division), whatever form it was given in.
fn negative(nanos: i64) -> Error {
    Error::invalid_input(format!(
        "cannot provide negative value '{}'",
        nanos / SECOND
    ))
}

/// Parse a duration as OpenBao does (go-secure-stdlib's `ParseDurationSecond`): integer
/// seconds, `<n>d` days, or a Go duration string (`"90s"`, `"1h30m"`, `"1.5h"`). Negative
/// durations and durations past Go's limit (about 292 years) are refused with Go's texts.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(strongroom::parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(strongroom::parse_duration("2d").unwrap(), Duration::from_secs(172_800));
/// assert!(strongroom::parse_duration("999999999h").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration> {
    parse(s)
}

fn unsigned(nanos: i64) -> Option<Duration> {
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// `parseutil.ParseDurationSecond` for a string, as signed nanoseconds, with its texts.
pub(crate) fn parse_duration_second_str(s: &str) -> std::result::Result<i64, String> {
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(v) = strconv::parse_int(s, false) {
        return v.checked_mul(SECOND).ok_or_else(|| OVERFLOW.to_string());
    }
    if let Some(days) = s.strip_suffix('d') {
        let v = strconv::parse_int(days, false)?;
        return v
            .checked_mul(24 * 3600 * SECOND)
            .ok_or_else(|| OVERFLOW.to_string());
    }
    parse_go_duration(s)
}

/// A whole number of seconds as a Go duration, refused past Go's limit with
/// go-secure-stdlib's text (HCL numbers in policies).
pub(crate) fn seconds_to_nanos(secs: i64) -> std::result::Result<i64, String> {
    secs.checked_mul(SECOND).ok_or_else(|| OVERFLOW.to_string())
}

fn unit_nanos(u: &str) -> Option<u64> {
    Some(match u {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Go's `time.ParseDuration`, with its error texts.
pub(crate) fn parse_go_duration(orig: &str) -> std::result::Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", strconv::quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut d: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes().first().copied().unwrap_or(0);
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        let mut v: u64 = 0;
        for b in int_digits.bytes() {
            if v > (LIMIT - 1) / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(b - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        s = rest;
        let pre = int_len > 0;
        // Fraction.
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (frac_digits, tail) = rest.split_at(frac_len);
            let mut overflow = false;
            for b in frac_digits.bytes() {
                if overflow {
                    continue;
                }
                if f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(b - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = frac_len > 0;
            s = tail;
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .bytes()
            .take_while(|b| !(*b == b'.' || b.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                strconv::quote(orig)
            ));
        }
        let (u, rest) = s.split_at(unit_len);
        s = rest;
        let Some(unit) = unit_nanos(u) else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                strconv::quote(u),
                strconv::quote(orig)
            ));
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        d += v;
        if d > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((d as i128).wrapping_neg() as i64);
    }
    if d > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(d as i64)
}

/// Print a duration as Go's `time.Duration.String()` does: `0s`, `1h0m0s`, `1m30s`, `1.5s`.
pub(crate) fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (div, unit) = if nanos < 1_000 {
            (1u128, "ns")
        } else if nanos < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", frac(nanos, div));
    }
    let total_secs = nanos / 1_000_000_000;
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let s_nanos = nanos % 60_000_000_000;
    let secs = frac(s_nanos, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

fn frac(n: u128, div: u128) -> String {
    let whole = n / div;
    let rem = n % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations_and_seconds() {
        assert_eq!(parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_value(&serde_json::json!(60)).unwrap(),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn rejects_garbage_with_go_text() {
        let e = parse("abc").unwrap_err();
        assert_eq!(e.message(), "time: invalid duration \"abc\"");
        assert_eq!(
            parse("-1s").unwrap_err().message(),
            "cannot provide negative value '-1'"
        );
        assert_eq!(
            parse("-5h").unwrap_err().message(),
            "cannot provide negative value '-18000'"
        );
        assert_eq!(
            parse_value(&serde_json::json!("-1.5s"))
                .unwrap_err()
                .message(),
            "cannot provide negative value '-1'"
        );
        assert_eq!(
            parse("10x").unwrap_err().message(),
            "time: unknown unit \"x\" in duration \"10x\""
        );
        assert!(parse("h").is_err());
        assert_eq!(
            parse_value(&serde_json::json!(1.5)).unwrap_err().message(),
            "time: missing unit in duration \"1.5\""
        );
    }

    /// OpenBao refuses what Go's `time.Duration` cannot hold, with go-secure-stdlib's and Go's
    /// texts (checked against `bao` 2.7.2): nothing past [`MAX`] reaches time arithmetic.
    #[test]
    fn refuses_durations_past_gos_limit() {
        let overflow =
            "multiplication of durations resulted in overflow, one operand may be too large";
        assert_eq!(
            parse("9223372036").unwrap(),
            Duration::from_secs(9_223_372_036)
        );
        assert_eq!(parse("9223372037").unwrap_err().message(), overflow);
        assert_eq!(
            parse("106751d").unwrap(),
            Duration::from_secs(106_751 * 86_400)
        );
        assert_eq!(parse("106752d").unwrap_err().message(), overflow);
        assert_eq!(
            parse("2562047h").unwrap(),
            Duration::from_secs(2_562_047 * 3600)
        );
        for s in ["2562048h", "999999999h", "18446744073709551615"] {
            let e = parse(s).unwrap_err();
            assert_eq!(e.message(), format!("time: invalid duration \"{s}\""));
            assert_eq!(e.code(), crate::ErrorCode::InvalidInput);
        }
        assert_eq!(
            parse("1e308s").unwrap_err().message(),
            "time: unknown unit \"e\" in duration \"1e308s\""
        );
        for v in [
            serde_json::json!(u64::MAX),
            serde_json::json!(1e308),
            serde_json::json!(i64::MIN),
            serde_json::json!(9_223_372_037_u64),
        ] {
            assert!(parse_value(&v).is_err(), "{v}");
        }
        assert!(parse("9223372036s").unwrap() <= MAX);
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(45)), "45s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_secs(768 * 3600)), "768h0m0s");
    }
}
