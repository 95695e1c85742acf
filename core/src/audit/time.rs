//! Entry times (`"time"`), formatted by hand: RFC 3339 in UTC with nanoseconds, trailing zeros
//! trimmed, exactly as [`crate::clock::rfc3339`] prints them but without its general-purpose
//! formatter, which showed up in every audited call.

use time::{OffsetDateTime, UtcOffset};

/// Append `t` as `2026-11-27T21:38:09.90673781Z`.
pub(crate) fn write_rfc3339_nanos(out: &mut String, t: OffsetDateTime) {
    if t.offset() != UtcOffset::UTC || !(0..=9999).contains(&t.year()) {
        out.push_str(&crate::clock::rfc3339(t));
        return;
    }
    let (h, m, s, nanos) = t.to_hms_nano();
    let year = u32::try_from(t.year()).unwrap_or(0);
    let mut text = *b"0000-00-00T00:00:00";
    let fields: [(usize, u32, usize); 6] = [
        (0, year, 4),
        (5, u32::from(u8::from(t.month())), 2),
        (8, u32::from(t.day()), 2),
        (11, u32::from(h), 2),
        (14, u32::from(m), 2),
        (17, u32::from(s), 2),
    ];
    for (at, value, width) in fields {
        put_digits(&mut text, at, value, width);
    }
    out.extend(text.iter().map(|b| char::from(*b)));
    if nanos != 0 {
        let mut digits = 9;
        let mut n = nanos;
        while n % 10 == 0 {
            n /= 10;
            digits -= 1;
        }
        let mut frac = *b".000000000";
        put_digits(&mut frac, 1, n, digits);
        out.extend(frac.iter().take(digits + 1).map(|b| char::from(*b)));
    }
    out.push('Z');
}

/// Write `value` as `width` zero-padded decimal digits at `at`.
fn put_digits(buf: &mut [u8], at: usize, mut value: u32, width: usize) {
    for i in (at..at + width).rev() {
        if let Some(slot) = buf.get_mut(i) {
            // `value % 10` is below 10.
            *slot = b'0' + u8::try_from(value % 10).unwrap_or(0);
        }
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(t: OffsetDateTime) -> String {
        let mut s = String::new();
        write_rfc3339_nanos(&mut s, t);
        s
    }

    #[test]
    fn matches_the_general_formatter() {
        let base = 1_795_815_443_123_456_789i128;
        for delta in [
            0i128,
            -123_456_789,
            -123_456_000,
            -123_000_000,
            -100_000_000,
            1,
            876_543_211,
            -1_795_815_443_123_456_789,
            86_400_000_000_000 * 366 * 5 + 7,
            10,
            90_000,
        ] {
            let t = OffsetDateTime::from_unix_timestamp_nanos(base + delta).unwrap();
            assert_eq!(fast(t), crate::clock::rfc3339(t), "{delta}");
        }
        assert_eq!(
            fast(OffsetDateTime::from_unix_timestamp_nanos(1_795_815_489_906_737_810).unwrap()),
            "2026-11-27T21:38:09.90673781Z"
        );
        // Another offset or a year past 9999: the general formatter's answer.
        let t = OffsetDateTime::UNIX_EPOCH.to_offset(UtcOffset::from_hms(1, 0, 0).unwrap());
        assert_eq!(fast(t), crate::clock::rfc3339(t));
    }
}
