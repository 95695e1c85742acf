//! Go's reference-time layouts (`"2006-01-02T15:04:05Z07:00"`) for the `timestamp` function.
//!
//! consul-template's `timestamp "LAYOUT"` formats the current time with Go's `time.Format`;
//! templates written for it carry Go layouts, so we read the same tokens. Text that is not a
//! token is copied as is, as Go does.

use time::OffsetDateTime;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Go's `time.RFC3339`, consul-template's default for `timestamp` without a layout.
pub(crate) const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

fn short(name: &str) -> &str {
    name.get(..3).unwrap_or(name)
}

fn offset(t: &OffsetDateTime, colon: bool, seconds: bool, z: bool) -> String {
    let total = t.offset().whole_seconds();
    if z && total == 0 {
        return "Z".to_string();
    }
    let sign = if total < 0 { '-' } else { '+' };
    let abs = total.unsigned_abs();
    let (h, m, s) = (abs / 3600, (abs / 60) % 60, abs % 60);
    let sep = if colon { ":" } else { "" };
    if seconds {
        format!("{sign}{h:02}{sep}{m:02}{sep}{s:02}")
    } else {
        format!("{sign}{h:02}{sep}{m:02}")
    }
}

/// Formats `t` with the Go layout `layout`.
pub(crate) fn format(t: &OffsetDateTime, layout: &str) -> String {
    let mut out = String::with_capacity(layout.len() + 8);
    let mut rest = layout;
    let month = usize::from(u8::from(t.month())).saturating_sub(1);
    let month_name = MONTHS.get(month).copied().unwrap_or("");
    let day_name = DAYS
        .get(usize::from(t.weekday().number_days_from_monday()))
        .copied()
        .unwrap_or("");
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    while !rest.is_empty() {
        // Longest tokens first, as Go's `nextStdChunk` does.
        let tokens: [(&str, String); 32] = [
            ("January", month_name.to_string()),
            ("Jan", short(month_name).to_string()),
            ("Monday", day_name.to_string()),
            ("Mon", short(day_name).to_string()),
            (
                "MST",
                if t.offset().is_utc() {
                    "UTC".to_string()
                } else {
                    offset(t, false, false, false)
                },
            ),
            ("2006", format!("{:04}", t.year())),
            ("-07:00:00", offset(t, true, true, false)),
            ("-070000", offset(t, false, true, false)),
            ("-07:00", offset(t, true, false, false)),
            ("-0700", offset(t, false, false, false)),
            (
                "-07",
                offset(t, false, false, false)
                    .get(..3)
                    .unwrap_or("")
                    .to_string(),
            ),
            ("Z07:00:00", offset(t, true, true, true)),
            ("Z070000", offset(t, false, true, true)),
            ("Z07:00", offset(t, true, false, true)),
            ("Z0700", offset(t, false, false, true)),
            (
                "Z07",
                offset(t, false, false, true)
                    .get(..3)
                    .unwrap_or("Z")
                    .to_string(),
            ),
            (".000000000", format!(".{:09}", t.nanosecond())),
            (".000000", format!(".{:06}", t.nanosecond() / 1_000)),
            (".000", format!(".{:03}", t.nanosecond() / 1_000_000)),
            ("01", format!("{:02}", u8::from(t.month()))),
            ("02", format!("{:02}", t.day())),
            ("_2", format!("{:>2}", t.day())),
            ("002", format!("{:03}", t.ordinal())),
            ("06", format!("{:02}", t.year().rem_euclid(100))),
            ("15", format!("{:02}", t.hour())),
            ("03", format!("{hour12:02}")),
            ("04", format!("{:02}", t.minute())),
            ("05", format!("{:02}", t.second())),
            ("PM", if t.hour() >= 12 { "PM" } else { "AM" }.to_string()),
            ("pm", if t.hour() >= 12 { "pm" } else { "am" }.to_string()),
            ("1", u8::from(t.month()).to_string()),
            ("2", t.day().to_string()),
        ];
        let single: [(&str, String); 3] = [
            ("3", hour12.to_string()),
            ("4", t.minute().to_string()),
            ("5", t.second().to_string()),
        ];
        // "002" must win over "02"; check it before the others.
        let hit = std::iter::once(("002", format!("{:03}", t.ordinal())))
            .chain(tokens)
            .chain(single)
            .find(|(tok, _)| rest.starts_with(tok));
        match hit {
            Some((tok, value)) => {
                out.push_str(&value);
                rest = rest.get(tok.len()..).unwrap_or("");
            }
            None => {
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    out.push(c);
                }
                rest = chars.as_str();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn go_layouts() {
        let t = datetime!(2026-03-04 05:06:07.123456789 UTC);
        assert_eq!(format(&t, RFC3339), "2026-03-04T05:06:07Z");
        assert_eq!(format(&t, "2006-01-02"), "2026-03-04");
        assert_eq!(
            format(&t, "Mon Jan _2 15:04:05 MST 2006"),
            "Wed Mar  4 05:06:07 UTC 2026"
        );
        assert_eq!(format(&t, "3:04PM"), "5:06AM");
        assert_eq!(format(&t, "15:04:05.000"), "05:06:07.123");
        assert_eq!(
            format(&t, "January 2, 2006 (day 002)"),
            "March 4, 2026 (day 063)"
        );
        let east = datetime!(2026-03-04 17:06:07 +05:30);
        assert_eq!(format(&east, RFC3339), "2026-03-04T17:06:07+05:30");
        assert_eq!(format(&east, "-0700 03pm"), "+0530 05pm");
    }
}
