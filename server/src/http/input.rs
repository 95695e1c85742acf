//! From an HTTP request to the parts of a [`strongroom::Request`]: the path, the token, the wrap
//! TTL, query parameters and the body (JSON, or a form when the content type says so).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use secrecy::SecretString;
use serde_json::{Map, Value};
use strongroom::Data;

/// `X-Vault-Token`.
pub(crate) const TOKEN_HEADER: &str = "x-vault-token";
/// `X-Vault-Wrap-TTL`.
pub(crate) const WRAP_TTL_HEADER: &str = "x-vault-wrap-ttl";
/// `X-Vault-Namespace`.
pub(crate) const NAMESPACE_HEADER: &str = "x-vault-namespace";
/// The content type PATCH requires.
pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";

/// The deepest JSON nesting a body may have (objects and arrays): serde_json's recursion limit, which keeps
/// parsing off the end of the stack. Deeper bodies answer 400 `failed to decode JSON input:
/// exceeded max depth` (Go's wording; OpenBao's decoder stops at 10000).
pub const MAX_JSON_DEPTH: usize = 127;

/// The listener's limits on a JSON body's complexity (`max_request_json_memory`,
/// `max_request_json_strings`); `None` = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonLimits {
    /// Estimated bytes the body may decode to, with OpenBao's per-token costs.
    pub memory: Option<u64>,
    /// Keys and string values the body may hold.
    pub strings: Option<u64>,
}

/// Why a request could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputError {
    /// The body is larger than the listener's `max_request_size` (413).
    TooLarge,
    /// Anything else the client got wrong (400), with OpenBao's message.
    Bad(String),
    /// The body did not arrive within the listener's `http_read_timeout` (500 and the
    /// connection closed, as Go's read deadline does).
    TimedOut,
}

/// The URL path, percent-decoded as Go's `r.URL.Path` is (invalid UTF-8 becomes U+FFFD).
pub(crate) fn decode_path(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// Go's `unicode.IsPrint` as OpenBao's printable-path check uses it: no control characters and
/// no whitespace other than the ASCII space.
pub(crate) fn is_printable(path: &str) -> bool {
    path.chars()
        .all(|c| c == ' ' || !(c.is_control() || c.is_whitespace() || is_format_char(c)))
}

/// Unicode "format" characters (category Cf) that commonly smuggle invisible text.
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// The client token: `X-Vault-Token`, else the first `Authorization: Bearer <token>`.
pub(crate) fn token(headers: &HeaderMap) -> Option<SecretString> {
    if let Some(t) = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
    {
        return Some(SecretString::from(t.to_string()));
    }
    headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| SecretString::from(t.to_string()))
}

/// `X-Vault-Wrap-TTL`: integer seconds or a Go duration (`5m`, `1h30m`, `1d`).
pub(crate) fn wrap_ttl(headers: &HeaderMap) -> Result<Option<Duration>, InputError> {
    let Some(raw) = headers.get(WRAP_TTL_HEADER) else {
        return Ok(None);
    };
    let bad = |why: &str| InputError::Bad(format!("error parsing X-Vault-Wrap-TTL header: {why}"));
    let s = raw.to_str().map_err(|_| bad("not valid text"))?.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.starts_with('-') {
        return Err(bad("requested wrap ttl cannot be negative"));
    }
    parse_duration(s).map(Some).map_err(|e| bad(&e))
}

/// Parse a duration the way OpenBao's `parseutil.ParseDurationSecond` does, through the
/// engine's one parser: plain integers are seconds; otherwise Go's units plus `d` for days,
/// refusing what Go's `time.Duration` cannot hold (`999999999h`) with Go's texts.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    strongroom::parse_duration(s).map_err(|e| e.message().to_string())
}

/// Query parameters as request data, as OpenBao's `parseQuery`: one value → a string, several
/// → an array of strings; `help` is reserved and dropped.
pub(crate) fn query_data(query: Option<&str>) -> Data {
    let mut data = Data::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "help" {
            continue;
        }
        let v = Value::String(v.into_owned());
        match data.get_mut(k.as_ref()) {
            Some(Value::Array(values)) => values.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
            }
            None => {
                data.insert(k.into_owned(), v);
            }
        }
    }
    data
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The media type of `Content-Type`, lowercased, without parameters ("" when absent).
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Read the whole body, refusing more than `limit` bytes or reading past `deadline`.
pub(crate) async fn read_body(
    body: Body,
    limit: Option<usize>,
    deadline: Option<tokio::time::Instant>,
) -> Result<Bytes, InputError> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, read_all(body, limit))
            .await
            .unwrap_or(Err(InputError::TimedOut)),
        None => read_all(body, limit).await,
    }
}

async fn read_all(body: Body, limit: Option<usize>) -> Result<Bytes, InputError> {
    let read_error = || InputError::Bad("error reading data".into());
    match limit {
        Some(n) => match Limited::new(body, n).collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(InputError::TooLarge),
            Err(_) => Err(read_error()),
        },
        None => body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|_| read_error()),
    }
}

/// The body as request data: a form when the content type is
/// `application/x-www-form-urlencoded` and the body does not look like JSON, JSON otherwise.
pub(crate) fn body_data(
    bytes: &[u8],
    media_type: &str,
    limits: JsonLimits,
) -> Result<Data, InputError> {
    if media_type == "application/x-www-form-urlencoded" && !looks_like_json(bytes) {
        return Ok(form_data(bytes));
    }
    json_data(bytes, limits)
}

fn looks_like_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| matches!(b, b'{' | b'['))
}

/// A form body: repeated keys are joined with `,` as OpenBao does.
fn form_data(bytes: &[u8]) -> Data {
    let mut data = Data::new();
    for (k, v) in form_urlencoded::parse(bytes) {
        match data.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                data.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    data
}

/// A JSON body: empty or `null` is no data; anything but an object is an error. A body over
/// the complexity `limits` is refused before it is built (OpenBao's `parseJSONRequest`).
pub(crate) fn json_data(bytes: &[u8], limits: JsonLimits) -> Result<Data, InputError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Data::new());
    }
    if let Some(over) = complexity::exceeded(bytes, limits) {
        return Err(InputError::Bad(format!(
            "refused JSON input due to high complexity: {over}"
        )));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(InputError::Bad(format!(
            "failed to decode JSON input: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        ))),
        Err(e) => Err(InputError::Bad(format!(
            "failed to decode JSON input: {}",
            go_json_message(&e, bytes)
        ))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null | Value::Object(_) => "object",
    }
}

/// Go's wording for the common JSON errors clients match on; serde's otherwise. Only the
/// offending character is quoted, never the surrounding (possibly secret) input.
fn go_json_message(e: &serde_json::Error, bytes: &[u8]) -> String {
    if e.to_string().starts_with("recursion limit exceeded") {
        return "exceeded max depth".into();
    }
    if e.is_eof() {
        return "unexpected EOF".into();
    }
    if e.to_string().starts_with("expected value") {
        let text = String::from_utf8_lossy(bytes);
        let offending = text
            .lines()
            .nth(e.line().saturating_sub(1))
            .and_then(|l| l.chars().nth(e.column().saturating_sub(1)));
        if let Some(c) = offending {
            return format!("invalid character '{c}' looking for beginning of value");
        }
    }
    format!("invalid JSON at line {} column {}", e.line(), e.column())
}

/// OpenBao's JSON complexity pre-pass (`EnforceJSONComplexityLimits`): every token of the body
/// is costed as Go would hold it in memory, and strings (keys and values) are counted, without
/// building anything; the first token over a limit stops the pass.
mod complexity {
    use std::cell::Cell;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::JsonLimits;

    // OpenBao's estimates (http/util_json.go): every value costs a pointer and its type, plus
    // its own size.
    const BASE: u64 = 8 + 8;
    const NULL: u64 = BASE + 1;
    const BOOL: u64 = BASE + 1;
    const NUMBER: u64 = BASE + 8;
    const STRING: u64 = BASE + 16;
    const ARRAY: u64 = BASE + 8 + 8 + 8;
    const OBJECT: u64 = BASE + 8 + 64;

    /// OpenBao's texts for the two limits.
    const MEMORY: &str = "exceeded maximum estimated memory limits";
    const STRINGS: &str = "exceeded maximum number of strings";

    struct Tally {
        limits: JsonLimits,
        memory: Cell<u64>,
        strings: Cell<u64>,
        over: Cell<Option<&'static str>>,
    }

    impl Tally {
        fn add<E: de::Error>(&self, cost: u64, string: bool) -> Result<(), E> {
            let memory = self.memory.get().saturating_add(cost);
            self.memory.set(memory);
            if self.limits.memory.is_some_and(|max| memory > max) {
                return Err(self.stop(MEMORY));
            }
            if string {
                let strings = self.strings.get().saturating_add(1);
                self.strings.set(strings);
                if self.limits.strings.is_some_and(|max| strings > max) {
                    return Err(self.stop(STRINGS));
                }
            }
            Ok(())
        }

        fn stop<E: de::Error>(&self, why: &'static str) -> E {
            self.over.set(Some(why));
            E::custom(why)
        }
    }

    /// Which limit the body goes over, if any. A body that is not valid JSON before reaching a
    /// limit passes here, and the parse that follows reports its error.
    pub(super) fn exceeded(bytes: &[u8], limits: JsonLimits) -> Option<&'static str> {
        // No token costs more than OBJECT per byte of input, and every string takes two
        // quotes: a body under both bounds cannot reach a limit, and is not parsed twice.
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let quotes =
            u64::try_from(bytes.iter().filter(|&&b| b == b'"').count()).unwrap_or(u64::MAX);
        let may_exceed_memory = limits
            .memory
            .is_some_and(|max| len.saturating_mul(OBJECT) > max);
        let may_exceed_strings = limits.strings.is_some_and(|max| quotes / 2 > max);
        if !may_exceed_memory && !may_exceed_strings {
            return None;
        }
        let tally = Tally {
            limits,
            memory: Cell::new(0),
            strings: Cell::new(0),
            over: Cell::new(None),
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let _ = Token(&tally).deserialize(&mut de);
        tally.over.get()
    }

    #[derive(Clone, Copy)]
    struct Token<'t>(&'t Tally);

    impl<'de> DeserializeSeed<'de> for Token<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Token<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            self.0.add(NULL, false)
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            self.0.add(BOOL, false)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            self.0.add(NUMBER, false)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            self.0.add(NUMBER, false)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            self.0.add(NUMBER, false)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
            let len = u64::try_from(s.len()).unwrap_or(u64::MAX);
            self.0.add(STRING.saturating_add(len), true)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            self.0.add(ARRAY, false)?;
            while seq.next_element_seed(self)?.is_some() {}
            Ok(())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            self.0.add(OBJECT, false)?;
            // Keys are string tokens too, as Go's decoder returns them.
            while map.next_key_seed(self)?.is_some() {
                map.next_value_seed(self)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use axum::http::HeaderValue;
    use secrecy::ExposeSecret;

    #[test]
    fn token_prefers_the_vault_header_then_bearer() {
        let mut h = HeaderMap::new();
        assert!(token(&h).is_none());
        h.append(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(token(&h).is_none());
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer s.bearer"));
        assert_eq!(token(&h).unwrap().expose_secret(), "s.bearer");
        h.insert(TOKEN_HEADER, HeaderValue::from_static("s.header"));
        assert_eq!(token(&h).unwrap().expose_secret(), "s.header");
    }

    #[test]
    fn durations_follow_go() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(
            parse_duration("abc")
                .unwrap_err()
                .contains("invalid duration")
        );
        assert!(parse_duration("10").is_ok());
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        // OpenBao's answers to durations past Go's limit (bao 2.7.2).
        for (raw, why) in [
            (
                "18446744073709551615",
                "time: invalid duration \"18446744073709551615\"",
            ),
            ("999999999h", "time: invalid duration \"999999999h\""),
            (
                "9223372037",
                "multiplication of durations resulted in overflow, one operand may be too large",
            ),
        ] {
            let mut h = HeaderMap::new();
            h.insert(WRAP_TTL_HEADER, HeaderValue::from_static(raw));
            assert_eq!(
                wrap_ttl(&h).unwrap_err(),
                InputError::Bad(format!("error parsing X-Vault-Wrap-TTL header: {why}"))
            );
        }
        let mut h = HeaderMap::new();
        h.insert(WRAP_TTL_HEADER, HeaderValue::from_static("-5m"));
        assert_eq!(
            wrap_ttl(&h).unwrap_err(),
            InputError::Bad(
                "error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative"
                    .into()
            )
        );
    }

    #[test]
    fn query_and_form_values() {
        let d = query_data(Some("a=1&b=x&b=y&help=1&c=a+b%21"));
        assert_eq!(
            Value::Object(d),
            serde_json::json!({"a": "1", "b": ["x", "y"], "c": "a b!"})
        );
        let d = body_data(
            b"a=1&a=2&b=%7B",
            "application/x-www-form-urlencoded",
            JsonLimits::default(),
        )
        .unwrap();
        assert_eq!(Value::Object(d), serde_json::json!({"a": "1,2", "b": "{"}));
        // A JSON-looking body stays JSON even with the form content type.
        let d = body_data(
            b" {\"a\":1}",
            "application/x-www-form-urlencoded",
            JsonLimits::default(),
        )
        .unwrap();
        assert_eq!(Value::Object(d), serde_json::json!({"a": 1}));
    }

    const NONE: JsonLimits = JsonLimits {
        memory: None,
        strings: None,
    };

    #[test]
    fn json_complexity_is_costed_as_openbao_does() {
        let limits = |memory, strings| JsonLimits { memory, strings };
        let strings =
            "refused JSON input due to high complexity: exceeded maximum number of strings";
        let memory =
            "refused JSON input due to high complexity: exceeded maximum estimated memory limits";
        // {"a":"b","c":"d"}: four strings (keys count).
        let body = br#"{"a":"b","c":"d"}"#;
        assert!(json_data(body, limits(None, Some(4))).is_ok());
        assert_eq!(
            json_data(body, limits(None, Some(3))).unwrap_err(),
            InputError::Bad(strings.into())
        );
        // Object 88 + four strings of one byte (33 each) = 220 bytes.
        assert!(json_data(body, limits(Some(220), None)).is_ok());
        assert_eq!(
            json_data(body, limits(Some(219), None)).unwrap_err(),
            InputError::Bad(memory.into())
        );
        // {"a":[1,true,null]}: 88 + 33 + 40 + 24 + 17 + 17 = 219; an escape counts decoded.
        let body = br#"{"a":[1,true,null]}"#;
        assert!(json_data(body, limits(Some(219), None)).is_ok());
        assert!(json_data(body, limits(Some(218), None)).is_err());
        // The limit stops the pass before a later syntax error; a syntax error before the
        // limit is reported as such.
        assert_eq!(
            json_data(br#"{"a":"b","c":"d" x"#, limits(None, Some(3))).unwrap_err(),
            InputError::Bad(strings.into())
        );
        assert_eq!(
            json_data(br#"{"a" x "b","c":"d"}"#, limits(None, Some(3))).unwrap_err(),
            InputError::Bad("failed to decode JSON input: invalid JSON at line 1 column 6".into())
        );
        // Small bodies are under the limits without being costed token by token.
        assert_eq!(
            complexity::exceeded(body, limits(Some(88 * 25), Some(3))),
            None
        );
        // Form bodies are not JSON and are not costed.
        assert!(
            body_data(
                b"a=1&b=2",
                "application/x-www-form-urlencoded",
                limits(Some(1), Some(0))
            )
            .is_ok()
        );
    }

    #[test]
    fn json_errors_use_openbao_wording() {
        assert_eq!(
            json_data(b"bad", NONE).unwrap_err(),
            InputError::Bad(
                "failed to decode JSON input: invalid character 'b' looking for beginning of value"
                    .into()
            )
        );
        assert_eq!(
            json_data(b"{\"a\":", NONE).unwrap_err(),
            InputError::Bad("failed to decode JSON input: unexpected EOF".into())
        );
        assert!(
            matches!(json_data(b"[1]", NONE), Err(InputError::Bad(m)) if m.contains("cannot unmarshal array"))
        );
        assert!(json_data(b"", NONE).unwrap().is_empty());
        let nested = |depth: usize| {
            format!(
                "{{\"a\":{}1{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        assert!(json_data(nested(MAX_JSON_DEPTH).as_bytes(), NONE).is_ok());
        assert_eq!(
            json_data(nested(MAX_JSON_DEPTH + 1).as_bytes(), NONE).unwrap_err(),
            InputError::Bad("failed to decode JSON input: exceeded max depth".into())
        );
        assert!(json_data(b"null", NONE).unwrap().is_empty());
    }

    #[test]
    fn printable_paths() {
        assert!(is_printable("/v1/secret/data/a b-ü"));
        assert!(!is_printable("/v1/secret/\u{0}"));
        assert!(!is_printable("/v1/secret/\t"));
        assert!(!is_printable("/v1/secret/\u{200B}"));
        assert_eq!(decode_path("/v1/a%20b%00"), "/v1/a b\u{0}");
    }
}
