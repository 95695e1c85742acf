//! Reading request fields the way OpenBao's framework does: strings, numbers and booleans
//! arrive as JSON values or as strings (query parameters, the CLI's `k=v`).

use serde_json::Value;
use zeroize::Zeroizing;

use super::base64;
use crate::error::{Error, Result};
use crate::request::Data;

fn present<'a>(d: &'a Data, k: &str) -> Option<&'a Value> {
    d.get(k).filter(|v| !v.is_null())
}

fn bad(k: &str, v: &Value) -> Error {
    let kind = match v {
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    };
    Error::invalid_input(format!(
        "error converting input for field \"{k}\": unexpected {kind}"
    ))
}

/// A string field ("" when absent); numbers and booleans are accepted as their text.
pub(crate) fn string(d: &Data, k: &str) -> Result<String> {
    match present(d, k) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
        Some(v) => Err(bad(k, v)),
    }
}

/// A string field borrowed when it is a JSON string ("" when absent).
pub(crate) fn str_ref<'a>(d: &'a Data, k: &str) -> Result<std::borrow::Cow<'a, str>> {
    match present(d, k) {
        Some(Value::String(s)) => Ok(std::borrow::Cow::Borrowed(s.as_str())),
        _ => string(d, k).map(std::borrow::Cow::Owned),
    }
}

/// A boolean field.
pub(crate) fn boolean(d: &Data, k: &str) -> Result<Option<bool>> {
    match present(d, k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(Some(false)),
            _ => Err(bad(k, &Value::String(s.clone()))),
        },
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
        Some(v) => Err(bad(k, v)),
    }
}

/// An integer field.
pub(crate) fn int(d: &Data, k: &str) -> Result<Option<i64>> {
    match present(d, k) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| bad(k, &Value::Number(n.clone()))),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| bad(k, &Value::String(s.clone()))),
        Some(v) => Err(bad(k, v)),
    }
}

/// A base64 field decoded (empty when absent), with Go's decoder message on failure.
pub(crate) fn b64(d: &Data, k: &str) -> Result<Zeroizing<Vec<u8>>> {
    let s = str_ref(d, k)?;
    base64::decode(&s).map_err(Error::invalid_input)
}

/// A duration field in seconds: a number, or Go-style text (`1h`, `30m`, `90s`, `3600`).
pub(crate) fn duration_secs(d: &Data, k: &str) -> Result<Option<u64>> {
    match present(d, k) {
        None => Ok(None),
        Some(v) => crate::util::duration::parse_value(v)
            .map(|d| Some(d.as_secs()))
            .map_err(|_| bad(k, v)),
    }
}
