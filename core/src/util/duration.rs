//! Durations as OpenBao reads and prints them: integer seconds or Go duration strings
//! (`"1h30m"`, `"10s"`, `"1.5h"`), plus a `d` suffix for days; printed as Go does (`"1h0m0s"`).

use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};

/// Parse a duration given as JSON: a number of seconds, or a string (seconds or Go syntax).
pub(crate) fn parse_value(v: &Value) -> Result<Duration> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(Duration::from_secs(u))
            } else if let Some(f) = n.as_f64().filter(|f| *f >= 0.0 && f.is_finite()) {
                Ok(Duration::from_secs(f as u64))
            } else {
                Err(Error::invalid_input(format!("invalid duration `{n}`")))
            }
        }
        Value::String(s) => parse(s),
        Value::Null => Ok(Duration::ZERO),
        other => Err(Error::invalid_input(format!(
            "time: invalid duration {other}"
        ))),
    }
}

/// Parse a duration string: `"300"` (seconds), `"1h30m"`, `"1.5h"`, `"250ms"`, `"2d"`.
pub(crate) fn parse(s: &str) -> Result<Duration> {
    let bad = || Error::invalid_input(format!("time: invalid duration \"{s}\""));
    let t = s.trim();
    if t.is_empty() {
        return Ok(Duration::ZERO);
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if t.starts_with('-') {
        return Err(bad());
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            _ => return Err(bad()),
        };
        total += value * nanos_per;
        rest = tail;
    }
    if !total.is_finite() || total > (u64::MAX as f64) {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total as u64))
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
        assert!(parse("-1s").is_err());
        assert!(parse("10x").is_err());
        assert!(parse("h").is_err());
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
