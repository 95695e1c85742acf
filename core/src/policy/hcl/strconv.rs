//! The bits of Go's `strconv` that policy parsing depends on, with Go's error texts:
//! unquoting (HCL's variant keeps `${...}` verbatim), `%q` quoting and integer parsing.

/// Go's `strconv.ErrSyntax` text.
const SYNTAX: &str = "invalid syntax";

/// Unquote an HCL string token (`hcl/strconv.Unquote`): like Go's, but `${...}` is copied
/// verbatim and newlines are only allowed inside it.
pub(crate) fn unquote_hcl(s: &str) -> Result<String, String> {
    let inner = strip_quotes(s)?;
    if !inner.contains('$') && !inner.contains('{') && inner.contains('\n') {
        return Err(SYNTAX.into());
    }
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut rest = inner;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("${") {
            out.extend_from_slice(b"${");
            let mut braces = 1usize;
            let mut consumed = 0;
            for (i, c) in after.char_indices() {
                consumed = i + c.len_utf8();
                match c {
                    '{' => braces += 1,
                    '}' => braces -= 1,
                    _ => {}
                }
                if braces == 0 {
                    break;
                }
            }
            if braces != 0 {
                return Err(SYNTAX.into());
            }
            let (taken, tail) = after.split_at(consumed);
            out.extend_from_slice(taken.as_bytes());
            rest = tail;
            continue;
        }
        if rest.starts_with('\n') {
            return Err(SYNTAX.into());
        }
        rest = unquote_char(rest, &mut out)?;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Unquote a double-quoted Go string literal (`strconv.Unquote`), used for JSON strings.
pub(crate) fn unquote_go(s: &str) -> Result<String, String> {
    let inner = strip_quotes(s)?;
    if inner.contains('\n') {
        return Err(SYNTAX.into());
    }
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut rest = inner;
    while !rest.is_empty() {
        rest = unquote_char(rest, &mut out)?;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn strip_quotes(s: &str) -> Result<&str, String> {
    if s.len() < 2 {
        return Err(SYNTAX.into());
    }
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| SYNTAX.to_string())
}

/// Decode one (possibly escaped) character of a double-quoted literal into `out`; returns the
/// rest. `\x` and octal escapes yield raw bytes, as in Go.
fn unquote_char<'a>(s: &'a str, out: &mut Vec<u8>) -> Result<&'a str, String> {
    let mut chars = s.chars();
    let Some(c) = chars.next() else {
        return Err(SYNTAX.into());
    };
    if c == '"' {
        return Err(SYNTAX.into());
    }
    if c != '\\' {
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        return Ok(chars.as_str());
    }
    let Some(e) = chars.next() else {
        return Err(SYNTAX.into());
    };
    let rest = chars.as_str();
    let simple = match e {
        'a' => Some(0x07),
        'b' => Some(0x08),
        'f' => Some(0x0c),
        'n' => Some(b'\n'),
        'r' => Some(b'\r'),
        't' => Some(b'\t'),
        'v' => Some(0x0b),
        '\\' => Some(b'\\'),
        '"' => Some(b'"'),
        _ => None,
    };
    if let Some(b) = simple {
        out.push(b);
        return Ok(rest);
    }
    match e {
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let digits = rest.get(..n).ok_or_else(|| SYNTAX.to_string())?;
            let v = u32::from_str_radix(digits, 16).map_err(|_| SYNTAX.to_string())?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(SYNTAX.into());
            }
            if e == 'x' {
                out.push(u8::try_from(v).map_err(|_| SYNTAX.to_string())?);
            } else {
                if v > 0x10FFFF {
                    return Err(SYNTAX.into());
                }
                // Surrogates become U+FFFD, as Go's utf8.EncodeRune does.
                let c = char::from_u32(v).unwrap_or('\u{FFFD}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            Ok(rest.get(n..).unwrap_or_default())
        }
        '0'..='7' => {
            let digits = rest.get(..2).ok_or_else(|| SYNTAX.to_string())?;
            let mut v = u32::from(e) - u32::from('0');
            for d in digits.bytes() {
                if !(b'0'..=b'7').contains(&d) {
                    return Err(SYNTAX.into());
                }
                v = (v << 3) | u32::from(d - b'0');
            }
            out.push(u8::try_from(v).map_err(|_| SYNTAX.to_string())?);
            Ok(rest.get(2..).unwrap_or_default())
        }
        _ => Err(SYNTAX.into()),
    }
}

/// Go's `%q` for a string (`strconv.Quote`), close enough for messages: quotes and
/// backslashes are escaped, control characters are written as escapes.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.ParseInt(s, base, 64)` for base 10 or base 0 (prefixes `0x`, `0o`, `0b`,
/// `0` and underscores), with Go's error texts.
pub(crate) fn parse_int(s: &str, base0: bool) -> Result<i64, String> {
    let syntax = || format!("strconv.ParseInt: parsing {}: invalid syntax", quote(s));
    let range = || format!("strconv.ParseInt: parsing {}: value out of range", quote(s));
    if s.is_empty() {
        return Err(syntax());
    }
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..).unwrap_or_default()),
        Some(b'+') => (false, s.get(1..).unwrap_or_default()),
        _ => (false, s),
    };
    let (radix, digits, prefixed) = if base0 {
        let lower = body.to_ascii_lowercase();
        if lower.starts_with("0x") {
            (16, body.get(2..).unwrap_or_default(), true)
        } else if lower.starts_with("0o") {
            (8, body.get(2..).unwrap_or_default(), true)
        } else if lower.starts_with("0b") {
            (2, body.get(2..).unwrap_or_default(), true)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, body.get(1..).unwrap_or_default(), true)
        } else {
            (10, body, false)
        }
    } else {
        (10, body, false)
    };
    if digits.contains('_') && !(base0 && underscore_ok(body, prefixed)) {
        return Err(syntax());
    }
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_digit(radix)) {
        return Err(syntax());
    }
    let magnitude = u128::from_str_radix(&cleaned, radix).map_err(|_| range())?;
    let limit: u128 = if neg { 1u128 << 63 } else { (1u128 << 63) - 1 };
    if magnitude > limit {
        return Err(range());
    }
    let v = i128::try_from(magnitude).map_err(|_| range())?;
    let v = if neg { -v } else { v };
    i64::try_from(v).map_err(|_| range())
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str, prefixed: bool) -> bool {
    // 'x' = the previous character was a digit or a base prefix, '_' = an underscore, '!' = other.
    let mut saw = '^';
    let bytes = s.as_bytes();
    let mut i = 0;
    if prefixed {
        i = if bytes.len() >= 2 && bytes.get(1).is_some_and(|b| b.is_ascii_alphabetic()) {
            2
        } else {
            1
        };
        saw = '0';
    }
    while let Some(&b) = bytes.get(i) {
        if b.is_ascii_hexdigit() {
            saw = '0';
        } else if b == b'_' {
            if saw != '0' {
                return false;
            }
            saw = '_';
        } else {
            if saw == '_' {
                return false;
            }
            saw = '!';
        }
        i += 1;
    }
    saw != '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquotes_like_go() {
        assert_eq!(unquote_go(r#""a\tb\u00e9""#).unwrap(), "a\tbé");
        assert_eq!(
            unquote_hcl(r#""${var.a "b"} x""#).unwrap(),
            r#"${var.a "b"} x"#
        );
        assert!(unquote_go(r#""\q""#).is_err());
    }

    #[test]
    fn parses_ints_like_go() {
        assert_eq!(parse_int("0x10", true).unwrap(), 16);
        assert_eq!(parse_int("010", true).unwrap(), 8);
        assert_eq!(parse_int("1_000", true).unwrap(), 1000);
        assert_eq!(parse_int("-5", false).unwrap(), -5);
        assert_eq!(
            parse_int("abc", false).unwrap_err(),
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            parse_int("99999999999999999999", false).unwrap_err(),
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }
}
