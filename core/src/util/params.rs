//! Reading typed fields from a request body with OpenBao's error texts.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::request::Data;

fn field_err(field: &str, v: &Value, ty: &str) -> Error {
    let shown = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Error::invalid_input(format!(
        "Field validation failed: error converting input for field \"{field}\": '{shown}' cannot parse value as '{ty}'"
    ))
}

/// An integer field (numbers or numeric strings), if present.
pub(crate) fn int(data: &Data, field: &str) -> Result<Option<i64>> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| field_err(field, &Value::Number(n.clone()), "int")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| field_err(field, &Value::String(s.clone()), "int")),
        Some(v) => Err(field_err(field, v, "int")),
    }
}

/// A boolean field (booleans or `"true"`/`"false"`/`"1"`/`"0"`), if present.
pub(crate) fn bool(data: &Data, field: &str) -> Result<Option<bool>> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.as_str() {
            "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(Some(true)),
            "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(Some(false)),
            _ => Err(field_err(field, &Value::String(s.clone()), "bool")),
        },
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
        Some(v) => Err(field_err(field, v, "bool")),
    }
}

/// A string field, if present (numbers and booleans are converted, as OpenBao does).
pub(crate) fn string(data: &Data, field: &str) -> Result<Option<String>> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(v) => Err(field_err(field, v, "string")),
    }
}

/// A duration field, if present.
pub(crate) fn duration(data: &Data, field: &str) -> Result<Option<std::time::Duration>> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => super::duration::parse_value(v).map(Some),
    }
}

/// A map of strings (values coerced to strings), if present.
pub(crate) fn string_map(
    data: &Data,
    field: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect(),
        )),
        Some(v) => Err(field_err(field, v, "map")),
    }
}

/// A JSON object field, if present (`null` counts as absent). Another type gives OpenBao's
/// mapstructure text, which names the type but never echoes the value (it may be a secret).
pub(crate) fn object<'a>(data: &'a Data, field: &str) -> Result<Option<&'a Data>> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(v) => Err(Error::invalid_input(format!(
            "Field validation failed: error converting input for field \"{field}\": '' expected a map, got '{}'",
            go_kind(v)
        ))),
    }
}

/// The Go `reflect.Kind` OpenBao reports for a decoded JSON value (numbers are `json.Number`,
/// a string kind).
fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "invalid",
        Value::Bool(_) => "bool",
        Value::Number(_) | Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// A list of integers (numbers or numeric strings, or a comma-separated string).
pub(crate) fn int_list(data: &Data, field: &str) -> Result<Vec<i64>> {
    let parse_one = |v: &Value| -> Result<i64> {
        match v {
            Value::Number(n) => n.as_i64().ok_or_else(|| field_err(field, v, "int")),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| field_err(field, v, "int")),
            _ => Err(field_err(field, v, "int")),
        }
    };
    match data.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(parse_one).collect(),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| parse_one(&Value::String(p.trim().to_string())))
            .collect(),
        Some(v) => Ok(vec![parse_one(v)?]),
    }
}

/// A list of strings: a JSON array, or a comma-separated string (OpenBao's
/// `TypeCommaStringSlice`); items are trimmed and empty ones dropped.
pub(crate) fn string_list(data: &Data, field: &str) -> Result<Option<Vec<String>>> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(
            a.iter()
                .filter_map(|v| v.as_str().map(|s| s.trim().to_string()))
                .filter(|s| !s.is_empty())
                .collect(),
        )),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        )),
        Some(_) => Err(Error::invalid_input(format!(
            "Field validation failed: error converting input for field \"{field}\": expected a list of strings"
        ))),
    }
}
