//! Request fields as OpenBao's framework reads them for the PKI paths, with its texts.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::request::Data;
use crate::util::params;

fn field_error(k: &str, msg: &str) -> Error {
    Error::invalid_input(format!(
        "Field validation failed: error converting input for field \"{k}\": {msg}"
    ))
}

/// A boolean field, if present.
pub(crate) fn boolean(d: &Data, k: &str) -> Result<Option<bool>> {
    params::bool(d, k)
}

/// An integer field, if present.
pub(crate) fn int(d: &Data, k: &str) -> Result<Option<i64>> {
    params::int(d, k)
}

/// A string field, if present.
pub(crate) fn string(d: &Data, k: &str) -> Result<Option<String>> {
    params::string(d, k)
}

/// A string field, "" when absent.
pub(crate) fn str_or_empty(d: &Data, k: &str) -> Result<String> {
    Ok(params::string(d, k)?.unwrap_or_default())
}

/// A duration in seconds (`"72h"`, `3600`, `"3600"`), if present; errors carry Go's text
/// (`time: invalid duration "bogus"`) behind the framework's prefix, as OpenBao answers.
pub(crate) fn duration_secs(d: &Data, k: &str) -> Result<Option<u64>> {
    match d.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(Some(0)),
        Some(v) => crate::util::duration::parse_value(v)
            .map(|d| Some(d.as_secs()))
            .map_err(|e| field_error(k, e.message())),
    }
}

/// A list of strings: a JSON array, or a comma-separated string (OpenBao's
/// `TypeCommaStringSlice`); empty items are dropped.
pub(crate) fn string_list(d: &Data, k: &str) -> Result<Option<Vec<String>>> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    match d.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(split(s))),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.extend(split(s)),
                    Value::Number(n) => out.push(n.to_string()),
                    Value::Bool(b) => out.push(b.to_string()),
                    _ => return Err(field_error(k, "expected a list of strings")),
                }
            }
            Ok(Some(out))
        }
        Some(_) => Err(field_error(k, "expected a list of strings")),
    }
}
