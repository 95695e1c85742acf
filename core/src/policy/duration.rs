//! go-secure-stdlib's `parseutil.ParseDurationSecond` for decoded HCL values, which policies
//! use for `min_wrapping_ttl`, `max_wrapping_ttl` and control-group TTLs. The string rules
//! (and Go's texts) live once in `crate::util::duration`; durations are Go's signed
//! nanosecond counts.

use super::hcl::decode::Value;
pub(crate) use crate::util::duration::{SECOND, parse_duration_second_str};

/// `parseutil.ParseDurationSecond` for a decoded HCL value: numbers are seconds; strings are
/// seconds, `<n>d` days, or Go durations. A value past Go's limit is refused, as OpenBao does
/// (`max_wrapping_ttl = 9223372037` answers its overflow text).
pub(crate) fn parse_duration_second(v: &Value) -> Result<i64, String> {
    match v {
        Value::Str(s) => parse_duration_second_str(s),
        Value::Int(i) => crate::util::duration::seconds_to_nanos(*i),
        // Go converts the float to a Duration (truncating) before multiplying.
        Value::Float(f) => crate::util::duration::seconds_to_nanos(*f as i64),
        _ => Err("could not parse duration from input".into()),
    }
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
