//! Template values: JSON in (Vault responses, `parseJSON`), JSON and YAML out (`toJSON`,
//! `toJSONPretty`, `toYAML`), with Go's output conventions so that rendered files match what
//! consul-template writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;

/// A JSON value as a template value: objects become maps (Go ranges over them in key order),
/// integers stay integers, other numbers floats.
pub(crate) fn from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::Uint(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::String(Arc::from(s.as_str())),
        serde_json::Value::Array(items) => Value::List(items.iter().map(from_json).collect()),
        serde_json::Value::Object(map) => Value::Map(Arc::new(
            map.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), from_json(v)))
                .collect::<BTreeMap<_, _>>(),
        )),
    }
}

/// A template value as JSON (`Function` values have no JSON form and become null, as Go's
/// encoder would refuse them; templates never hold one unless they build it with `call`).
pub(crate) fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Uint(u) => serde_json::Value::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Map(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        ),
        _ => serde_json::Value::Null,
    }
}

/// Go's `json.Marshal` escapes `<`, `>` and `&` (and U+2028/U+2029) inside strings; these
/// characters never occur in JSON outside strings, so replacing them everywhere is exact.
fn go_html_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// `toJSON`: compact, keys sorted, Go's escaping.
pub(crate) fn to_json_string(value: &Value) -> String {
    go_html_escape(to_json(value).to_string())
}

/// `toJSONPretty`: two-space indentation, as `json.MarshalIndent(v, "", "  ")`.
pub(crate) fn to_json_pretty(value: &Value) -> String {
    let json = to_json(value);
    go_html_escape(serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string()))
}

/// `toYAML`: block style like go-yaml (maps in key order, sequences under a key not indented),
/// strings plain when that reads back as the same string, double-quoted otherwise; the final
/// newline trimmed as consul-template does.
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Map(m) if !m.is_empty() => yaml_map(&mut out, m, 0),
        Value::List(l) if !l.is_empty() => yaml_list(&mut out, l, 0),
        other => {
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
    out.trim_end().to_string()
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn yaml_map(out: &mut String, map: &BTreeMap<Arc<str>, Value>, indent: usize) {
    yaml_map_from(out, map, indent, true);
}

/// `first_pad = false` continues a `- ` line: go-yaml writes a map in a sequence as `- a: 1`.
fn yaml_map_from(
    out: &mut String,
    map: &BTreeMap<Arc<str>, Value>,
    indent: usize,
    first_pad: bool,
) {
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 || first_pad {
            pad(out, indent);
        }
        out.push_str(&yaml_string(k));
        out.push(':');
        yaml_child(out, v, indent, true);
    }
}

fn yaml_list(out: &mut String, list: &[Value], indent: usize) {
    for v in list {
        pad(out, indent);
        match v {
            Value::Map(m) if !m.is_empty() => {
                out.push_str("- ");
                yaml_map_from(out, m, indent + 2, false);
            }
            _ => {
                out.push('-');
                yaml_child(out, v, indent, false);
            }
        }
    }
}

/// The value after `key:` or `-`: nested collections on the following lines.
fn yaml_child(out: &mut String, v: &Value, indent: usize, under_key: bool) {
    match v {
        Value::Map(m) if !m.is_empty() => {
            out.push('\n');
            yaml_map(out, m, indent + 2);
        }
        Value::List(l) if !l.is_empty() => {
            out.push('\n');
            // go-yaml writes a sequence under a key at the key's own indentation.
            yaml_list(out, l, if under_key { indent } else { indent + 2 });
        }
        other => {
            out.push(' ');
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Nil => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::String(s) => yaml_string(s),
        Value::Map(_) => "{}".to_string(),
        Value::List(_) => "[]".to_string(),
        _ => "null".to_string(),
    }
}

/// Words YAML 1.1 (go-yaml) reads as something other than a string.
const YAML_RESERVED: [&str; 22] = [
    "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "True", "False", "Yes", "No",
    "On", "Off", "Y", "N", "Null", "NULL", "TRUE", "FALSE",
];

fn yaml_string(s: &str) -> String {
    let plain = !s.is_empty()
        && !YAML_RESERVED.contains(&s)
        && s.parse::<f64>().is_err()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '_' | '-'
                        | '.'
                        | '/'
                        | '@'
                        | ':'
                        | '('
                        | ')'
                        | '+'
                        | '='
                        | ' '
                        | ','
                        | ';'
                        | '$'
                        | '^'
                        | '~'
                )
        })
        && !s.contains(": ")
        && !s.ends_with(':')
        && !s.starts_with([' ', '-', '~', ':'])
        && !s.ends_with(' ');
    if plain {
        s.to_string()
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        serde_json::Value::String(s.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_and_go_escaping() {
        let v = from_json(&json!({"b": [1, 2.5, "x<y&z>"], "a": {"t": true, "n": null}}));
        assert_eq!(
            to_json_string(&v),
            r#"{"a":{"n":null,"t":true},"b":[1,2.5,"x\u003cy\u0026z\u003e"]}"#
        );
        assert_eq!(
            to_json_pretty(&from_json(&json!({"k": "v", "l": [1]}))),
            "{\n  \"k\": \"v\",\n  \"l\": [\n    1\n  ]\n}"
        );
    }

    #[test]
    fn yaml_like_go_yaml() {
        let v = from_json(&json!({
            "name": "api",
            "port": 5432,
            "ports": ["80", 443],
            "db": {"url": "postgresql://u:p@db:5432/app", "on": "yes"},
            "empty": "",
            "multi": "a\nb"
        }));
        assert_eq!(
            to_yaml(&v),
            "db:\n  \"on\": \"yes\"\n  url: postgresql://u:p@db:5432/app\nempty: \"\"\nmulti: \"a\\nb\"\nname: api\nport: 5432\nports:\n- \"80\"\n- 443"
        );
        assert_eq!(to_yaml(&from_json(&json!("plain"))), "plain");
        assert_eq!(to_yaml(&from_json(&json!([{"a": 1}]))), "- a: 1");
        assert_eq!(
            to_yaml(&from_json(&json!([{"a": 1, "b": [true]}]))),
            "- a: 1\n  b:\n  - true"
        );
    }
}
