//! A small JSON writer for audit lines: compact output straight into a reused byte buffer,
//! keys in the order they are written, strings escaped exactly as Go's `encoding/json` escapes
//! them (`<`, `>`, `&`, U+2028 and U+2029 as `\u....`, control characters as `\n`, `\t`, ...).
//!
//! Building each entry as a `serde_json::Value` first and then encoding it cost most of an
//! audited call; writing the bytes directly keeps the same output for a fraction of it.

use std::io::Write as _;

use serde_json::{Number, Value};

/// Whether byte `b` needs more than itself inside a JSON string (Go's rules; 0xE2 starts
/// U+2028 and U+2029).
const fn needs_escape(b: u8) -> bool {
    matches!(b, 0..=0x1f | b'"' | b'\\' | b'<' | b'>' | b'&' | 0xE2)
}

/// [`needs_escape`] as a table: one load per byte in the scanning loop.
#[allow(
    clippy::indexing_slicing,
    reason = "const evaluation: an index past 255 fails the build, never at run time"
)]
static ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b: u8 = 0;
    loop {
        if needs_escape(b) {
            table[b as usize] = true;
        }
        if b == u8::MAX {
            break;
        }
        b += 1;
    }
    table
};

#[inline]
fn escaped(b: u8) -> bool {
    ESCAPE.get(usize::from(b)).copied().unwrap_or(true)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The lower-case hex digit of a nibble.
#[inline]
pub(crate) fn hex_digit(nibble: u8) -> u8 {
    HEX.get(usize::from(nibble & 0x0f)).copied().unwrap_or(b'0')
}

/// Write `s` as a quoted JSON string.
pub(crate) fn string(buf: &mut Vec<u8>, s: &str) {
    buf.reserve(s.len() + 2);
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    loop {
        // Scan to the next byte that needs escaping; most strings have none.
        let rest = bytes.get(i..).unwrap_or_default();
        let Some(offset) = rest.iter().position(|&b| escaped(b)) else {
            break;
        };
        i += offset;
        let Some(&b) = bytes.get(i) else { break };
        let (replacement, len): (&[u8], usize) = match b {
            b'"' => (b"\\\"", 1),
            b'\\' => (b"\\\\", 1),
            b'\n' => (b"\\n", 1),
            b'\r' => (b"\\r", 1),
            b'\t' => (b"\\t", 1),
            0x08 => (b"\\b", 1),
            0x0c => (b"\\f", 1),
            b'<' => (b"\\u003c", 1),
            b'>' => (b"\\u003e", 1),
            b'&' => (b"\\u0026", 1),
            0xE2 => match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(0x80), Some(0xA8)) => (b"\\u2028", 3),
                (Some(0x80), Some(0xA9)) => (b"\\u2029", 3),
                _ => {
                    // Another character starting with 0xE2: kept as is.
                    i += 1;
                    continue;
                }
            },
            _ => {
                // Other control characters: `\u00XX`.
                buf.extend_from_slice(bytes.get(start..i).unwrap_or_default());
                buf.extend_from_slice(b"\\u00");
                buf.push(hex_digit(b >> 4));
                buf.push(hex_digit(b & 0x0f));
                i += 1;
                start = i;
                continue;
            }
        };
        buf.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        buf.extend_from_slice(replacement);
        i += len;
        start = i;
    }
    buf.extend_from_slice(bytes.get(start..).unwrap_or_default());
    buf.push(b'"');
}

/// Write an unsigned integer.
pub(crate) fn uint(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            // `n % 10` is below 10.
            *d = b'0' + u8::try_from(n % 10).unwrap_or(0);
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    buf.extend_from_slice(digits.get(at..).unwrap_or_default());
}

/// Write a JSON number as serde_json prints it.
pub(crate) fn number(buf: &mut Vec<u8>, n: &Number) {
    if let Some(u) = n.as_u64() {
        uint(buf, u);
    } else if let Some(i) = n.as_i64() {
        let _ = write!(buf, "{i}");
    } else {
        let _ = serde_json::to_writer(&mut *buf, n);
    }
}

/// Write any value unchanged (no hashing).
pub(crate) fn value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => buf.extend_from_slice(b"null"),
        Value::Bool(true) => buf.extend_from_slice(b"true"),
        Value::Bool(false) => buf.extend_from_slice(b"false"),
        Value::Number(n) => number(buf, n),
        Value::String(s) => string(buf, s),
        Value::Array(items) => {
            buf.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                value(buf, item);
            }
            buf.push(b']');
        }
        Value::Object(m) => {
            let mut o = Fields::open(buf);
            for (k, item) in m {
                o.key(buf, k);
                value(buf, item);
            }
            o.close(buf);
        }
    }
}

/// A list of strings.
pub(crate) fn strings(buf: &mut Vec<u8>, items: &[String]) {
    buf.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        string(buf, item);
    }
    buf.push(b']');
}

/// The fields of one JSON object being written: tracks the commas. Empty values are left out
/// by the callers, as Go's `omitempty` leaves them out.
pub(crate) struct Fields {
    first: bool,
}

impl Fields {
    /// Write `{`.
    pub(crate) fn open(buf: &mut Vec<u8>) -> Fields {
        buf.push(b'{');
        Fields { first: true }
    }

    /// Write the separator and `"key":`.
    pub(crate) fn key(&mut self, buf: &mut Vec<u8>, key: &str) {
        if !self.first {
            buf.push(b',');
        }
        self.first = false;
        string(buf, key);
        buf.push(b':');
    }

    /// A string field, left out when empty.
    pub(crate) fn str(&mut self, buf: &mut Vec<u8>, key: &str, value: &str) {
        if !value.is_empty() {
            self.key(buf, key);
            string(buf, value);
        }
    }

    /// A number field, left out when zero.
    pub(crate) fn uint(&mut self, buf: &mut Vec<u8>, key: &str, value: u64) {
        if value != 0 {
            self.key(buf, key);
            uint(buf, value);
        }
    }

    /// A `true` field, left out when false.
    pub(crate) fn flag(&mut self, buf: &mut Vec<u8>, key: &str, value: bool) {
        if value {
            self.key(buf, key);
            buf.extend_from_slice(b"true");
        }
    }

    /// A list of strings, left out when empty.
    pub(crate) fn list(&mut self, buf: &mut Vec<u8>, key: &str, value: &[String]) {
        if !value.is_empty() {
            self.key(buf, key);
            strings(buf, value);
        }
    }

    /// Write `}`.
    pub(crate) fn close(self, buf: &mut Vec<u8>) {
        buf.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(s: &str) -> String {
        let mut buf = Vec::new();
        string(&mut buf, s);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn strings_escape_as_go_does() {
        assert_eq!(encoded("plain"), r#""plain""#);
        assert_eq!(encoded(""), r#""""#);
        assert_eq!(encoded("a<b>&c\"d\\e"), r#""a\u003cb\u003e\u0026c\"d\\e""#);
        assert_eq!(encoded("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(encoded("\u{0}\u{1f}x"), r#""\u0000\u001fx""#);
        assert_eq!(encoded("x\u{2028}y\u{2029}"), r#""x\u2028y\u2029""#);
        // Other characters, including ones that start with byte 0xE2, stay as they are.
        assert_eq!(encoded("€ → ü 日本"), "\"€ → ü 日本\"");
        assert_eq!(encoded("\u{2027}\u{202a}"), "\"\u{2027}\u{202a}\"");
    }

    #[test]
    fn escaped_strings_decode_to_the_input() {
        let samples = [
            "a<b>&c",
            "\u{0}\u{7f}\u{2028}\u{e2}",
            "line\nbreak \"quoted\" back\\slash",
            "€€\u{2029}",
        ];
        for s in samples {
            let text = encoded(s);
            let back: String = serde_json::from_str(&text).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn values_match_serde_json_output() {
        let v = json!({"n": 5, "neg": -3, "f": 1.5, "big": 1e300, "t": true, "f2": false,
                       "z": null, "list": ["a", 1, [], {}], "nested": {"b": "c"}});
        let mut buf = Vec::new();
        value(&mut buf, &v);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
    }

    #[test]
    fn integers() {
        for n in [0u64, 7, 10, 99, 1234567890, u64::MAX] {
            let mut buf = Vec::new();
            uint(&mut buf, n);
            assert_eq!(String::from_utf8(buf).unwrap(), n.to_string());
        }
    }

    #[test]
    fn fields_leave_out_empty_values() {
        let mut buf = Vec::new();
        let mut o = Fields::open(&mut buf);
        o.str(&mut buf, "a", "");
        o.str(&mut buf, "b", "x");
        o.uint(&mut buf, "c", 0);
        o.uint(&mut buf, "d", 7);
        o.flag(&mut buf, "e", false);
        o.flag(&mut buf, "f", true);
        o.list(&mut buf, "g", &[]);
        o.list(&mut buf, "h", &["p".into(), "q".into()]);
        o.close(&mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            r#"{"b":"x","d":7,"f":true,"h":["p","q"]}"#
        );
    }
}
