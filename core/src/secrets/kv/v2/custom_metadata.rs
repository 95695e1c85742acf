//! `custom_metadata`: parsing (non-string values coerced as Go's weak decoding does) and
//! OpenBao's validation with its exact error texts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::request::Data;

const MAX_KEYS: usize = 64;
const MAX_KEY_LEN: usize = 128;
const MAX_VALUE_LEN: usize = 512;
const PREFIX: &str = "custom_metadata validation failed";

/// The custom metadata carried by `raw`, as strings. With `drop_nulls` (PATCH), `null` values
/// are left out so the caller can treat them as removals.
pub(super) fn parse(raw: &Data, drop_nulls: bool) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let s = match v {
            Value::Null if drop_nulls => continue,
            // Go decodes a missing value as the empty string; validation then rejects it.
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            // mapstructure's weak decoding turns booleans into "1" and "0".
            Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
            Value::Array(_) => return Err(unconvertible("[]interface {}")),
            Value::Object(_) => return Err(unconvertible("map[string]interface {}")),
        };
        out.insert(k.clone(), s);
    }
    Ok(out)
}

fn unconvertible(go_type: &str) -> Error {
    Error::invalid_input(format!(
        "{PREFIX}: '' expected type 'string', got unconvertible type '{go_type}'"
    ))
}

/// OpenBao's checks: at most 64 keys (checked alone first), then for every pair a key of 1 to
/// 128 bytes, a value of 1 to 512 bytes, and printable characters only. All failures are
/// reported together in go-multierror's format.
pub(super) fn validate(custom: &BTreeMap<String, String>) -> Result<()> {
    let mut errs = Vec::new();
    if custom.len() > MAX_KEYS {
        errs.push(format!(
            "{PREFIX}: payload must contain at most {MAX_KEYS} keys, provided {}",
            custom.len()
        ));
        return Err(Error::invalid_input(multierror(&errs)));
    }
    for (key, value) in custom {
        let qkey = go_quote(key);
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            errs.push(format!(
                "{PREFIX}: length of key {qkey} is {} but must be 0 < len(key) <= {MAX_KEY_LEN}",
                key.len()
            ));
        }
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            errs.push(format!(
                "{PREFIX}: length of value for key {qkey} is {} but must be 0 < len(value) <= {MAX_VALUE_LEN}",
                value.len()
            ));
        }
        if !printable(key) {
            errs.push(format!(
                "{PREFIX}: key {qkey} ({key}) contains unprintable characters"
            ));
        }
        if !printable(value) {
            errs.push(format!(
                "{PREFIX}: value for key {qkey} contains unprintable characters"
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_input(multierror(&errs)))
    }
}

/// go-multierror's default format.
fn multierror(errs: &[String]) -> String {
    if let [only] = errs {
        return format!("1 error occurred:\n\t* {only}\n\n");
    }
    let points: Vec<String> = errs.iter().map(|e| format!("* {e}")).collect();
    format!(
        "{} errors occurred:\n\t{}\n\n",
        errs.len(),
        points.join("\n\t")
    )
}

/// Go's `unicode.IsPrint`, closely: graphic characters and the ASCII space. Beyond Latin-1 it
/// treats controls, non-ASCII spaces, private-use code points and the common format characters
/// as unprintable.
fn is_print(c: char) -> bool {
    let u = u32::from(c);
    if u <= 0xFF {
        return (0x20..0x7F).contains(&u) || ((0xA1..=0xFF).contains(&u) && u != 0xAD);
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(u, 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F)
        || matches!(
            u,
            0x061C | 0x180E | 0xFEFF | 0xFFF9..=0xFFFB | 0xFFFE | 0xFFFF
        )
        || matches!(u, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF))
}

/// go-secure-stdlib's `strutil.Printable`.
fn printable(s: &str) -> bool {
    s.chars().all(is_print)
}

/// Go's `%q` (`strconv.Quote`).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            c if u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b"), r#""a\"b""#);
        assert_eq!(go_quote("a\u{1}b"), r#""a\x01b""#);
        assert_eq!(go_quote("tab\t"), r#""tab\t""#);
        assert_eq!(go_quote("\u{200b}"), r#""\u200b""#);
        assert_eq!(go_quote("é"), "\"é\"");
    }

    #[test]
    fn multierror_formats_like_go() {
        assert_eq!(multierror(&["x".into()]), "1 error occurred:\n\t* x\n\n");
        assert_eq!(
            multierror(&["x".into(), "y".into()]),
            "2 errors occurred:\n\t* x\n\t* y\n\n"
        );
    }

    #[test]
    fn printable_matches_go_for_latin1() {
        assert!(printable("hello world ~"));
        assert!(!printable("a\u{7f}"));
        assert!(!printable("a\u{a0}b"));
        assert!(!printable("soft\u{ad}hyphen"));
        assert!(printable("ÿ日本"));
    }
}
