//! Go's `time.ParseDuration` and go-secure-stdlib's `parseutil.ParseDurationSecond`, which
//! policies use for `min_wrapping_ttl`, `max_wrapping_ttl` and control-group TTLs.
//!
//! `crate::util::duration` accepts a friendlier superset with its own messages; policy errors
//! must carry Go's texts (`time: unknown unit "x" in duration "5x"`) and Go's treatment of
//! signs, so this module follows the Go sources instead. Durations are Go's signed
//! nanosecond counts.

use super::hcl::decode::Value;
use super::hcl::strconv;

/// Nanoseconds in a second.
pub(crate) const SECOND: i64 = 1_000_000_000;

/// `parseutil.ParseDurationSecond` for a decoded HCL value: numbers are seconds; strings are
/// seconds, `<n>d` days, or Go durations.
pub(crate) fn parse_duration_second(v: &Value) -> Result<i64, String> {
    match v {
        Value::Str(s) => parse_duration_second_str(s),
        Value::Int(i) => Ok(i.wrapping_mul(SECOND)),
        // Go converts the float to a Duration (truncating) before multiplying.
        Value::Float(f) => Ok((*f as i64).wrapping_mul(SECOND)),
        _ => Err("could not parse duration from input".into()),
    }
}

/// `parseutil.ParseDurationSecond` for a string.
pub(crate) fn parse_duration_second_str(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(v) = strconv::parse_int(s, false) {
        return Ok(v.wrapping_mul(SECOND));
    }
    if let Some(days) = s.strip_suffix('d') {
        let v = strconv::parse_int(days, false)?;
        return Ok(v.wrapping_mul(24 * 3600 * SECOND));
    }
    parse_go_duration(s)
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

fn go_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Go's `time.ParseDuration`, with its error texts.
pub(crate) fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
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
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let (u, rest) = s.split_at(unit_len);
        s = rest;
        let Some(unit) = unit_nanos(u) else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                go_quote(u),
                go_quote(orig)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_parseutil() {
        assert_eq!(parse_duration_second_str("60").unwrap(), 60 * SECOND);
        assert_eq!(parse_duration_second_str("1m").unwrap(), 60 * SECOND);
        assert_eq!(parse_duration_second_str("1h30m").unwrap(), 5400 * SECOND);
        assert_eq!(parse_duration_second_str("2d").unwrap(), 2 * 86400 * SECOND);
        assert_eq!(parse_duration_second_str("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration_second_str("-1m").unwrap(), -60 * SECOND);
        assert_eq!(parse_duration_second(&Value::Int(30)).unwrap(), 30 * SECOND);
        assert_eq!(parse_duration_second(&Value::Float(1.9)).unwrap(), SECOND);
    }

    #[test]
    fn errors_match_go() {
        assert_eq!(
            parse_duration_second_str("abc").unwrap_err(),
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            parse_duration_second_str("5x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"5x\""
        );
        assert_eq!(
            parse_duration_second_str("1.5").unwrap_err(),
            "time: missing unit in duration \"1.5\""
        );
        assert_eq!(
            parse_duration_second_str("xd").unwrap_err(),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse_duration_second(&Value::Bool(true)).unwrap_err(),
            "could not parse duration from input"
        );
    }
}
