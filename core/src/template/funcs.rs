//! consul-template's helper functions (the ones that need no secret): `env`, `file`,
//! `toJSON`, `toJSONPretty`, `toYAML`, `parseJSON`, the base64 family, `split`, `join`,
//! `replaceAll`, `contains`, `trimSpace`, `toLower`, `toUpper`, `indent`. Argument order
//! follows consul-template so that pipelines read the same (`{{ .x | replaceAll "." "_" }}`:
//! the piped value comes last).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use gotmpl::{FuncMap, TemplateError, Value};

use super::value;

type FnResult = gotmpl::Result<Value>;

fn err(name: &str, message: impl std::fmt::Display) -> TemplateError {
    TemplateError::Exec(format!("{name}: {message}"))
}

fn arity(name: &str, args: &[Value], n: usize) -> gotmpl::Result<()> {
    if args.len() == n {
        Ok(())
    } else {
        Err(TemplateError::ArgCount {
            name: name.to_string(),
            expected: n,
            got: args.len(),
        })
    }
}

pub(crate) fn string_arg<'a>(name: &str, args: &'a [Value], i: usize) -> gotmpl::Result<&'a str> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(err(
            name,
            format_args!(
                "argument {} must be a string, not {}",
                i + 1,
                other.type_name()
            ),
        )),
        None => Err(err(name, format_args!("missing argument {}", i + 1))),
    }
}

fn string(s: impl Into<Arc<str>>) -> Value {
    Value::String(s.into())
}

fn list_of_strings(items: impl IntoIterator<Item = String>) -> Value {
    Value::List(items.into_iter().map(string).collect())
}

fn decode_utf8(name: &str, bytes: Vec<u8>) -> FnResult {
    String::from_utf8(bytes)
        .map(string)
        .map_err(|_| err(name, "the decoded bytes are not UTF-8 text"))
}

/// Every helper, keyed by its template name.
pub(crate) fn helpers() -> FuncMap {
    let mut m = FuncMap::new();
    let mut add = |name: &'static str, f: fn(&'static str, &[Value]) -> FnResult| {
        m.insert(
            name.to_string(),
            Arc::new(move |args: &[Value]| f(name, args)),
        );
    };
    add("env", |n, a| {
        arity(n, a, 1)?;
        Ok(string(
            std::env::var(string_arg(n, a, 0)?).unwrap_or_default(),
        ))
    });
    add("file", |n, a| {
        arity(n, a, 1)?;
        let path = string_arg(n, a, 0)?;
        // The path is template text, not a secret; the io error says why it failed. At most
        // one template value's worth is read (`/dev/zero` never ends).
        let limit = u64::try_from(super::budget::MAX_VALUE_BYTES).unwrap_or(u64::MAX);
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| {
                std::io::Read::read_to_string(&mut std::io::Read::take(f, limit + 1), &mut text)
            })
            .map_err(|e| err(n, format_args!("cannot read `{path}`: {e}")))?;
        if text.len() > super::budget::MAX_VALUE_BYTES {
            return Err(err(
                n,
                format_args!(
                    "`{path}` is larger than {} MiB, the most one template value may hold",
                    super::budget::MAX_VALUE_BYTES >> 20
                ),
            ));
        }
        Ok(string(text))
    });
    add("toJSON", |n, a| {
        arity(n, a, 1)?;
        Ok(string(value::to_json_string(first(a))))
    });
    add("toJSONPretty", |n, a| {
        arity(n, a, 1)?;
        Ok(string(value::to_json_pretty(first(a))))
    });
    add("toYAML", |n, a| {
        arity(n, a, 1)?;
        Ok(string(value::to_yaml(first(a))))
    });
    add("parseJSON", |n, a| {
        arity(n, a, 1)?;
        let text = string_arg(n, a, 0)?;
        // serde_json's message names the position, never the text.
        serde_json::from_str::<serde_json::Value>(text)
            .map(|j| value::from_json(&j))
            .map_err(|e| err(n, format_args!("not JSON: {e}")))
    });
    add("base64Encode", |n, a| {
        arity(n, a, 1)?;
        Ok(string(STANDARD.encode(string_arg(n, a, 0)?)))
    });
    add("base64Decode", |n, a| {
        arity(n, a, 1)?;
        let bytes = STANDARD
            .decode(string_arg(n, a, 0)?)
            .map_err(|_| err(n, "the argument is not standard base64"))?;
        decode_utf8(n, bytes)
    });
    add("base64URLEncode", |n, a| {
        arity(n, a, 1)?;
        Ok(string(URL_SAFE.encode(string_arg(n, a, 0)?)))
    });
    add("base64URLDecode", |n, a| {
        arity(n, a, 1)?;
        let bytes = URL_SAFE
            .decode(string_arg(n, a, 0)?)
            .map_err(|_| err(n, "the argument is not URL-safe base64"))?;
        decode_utf8(n, bytes)
    });
    add("split", |n, a| {
        // split SEP STRING: an empty (or blank) string gives an empty list, as consul-template.
        arity(n, a, 2)?;
        let (sep, s) = (string_arg(n, a, 0)?, string_arg(n, a, 1)?.trim());
        if s.is_empty() {
            return Ok(Value::List(Arc::from(Vec::new())));
        }
        Ok(list_of_strings(s.split(sep).map(str::to_string)))
    });
    add("join", |n, a| {
        // join SEP LIST
        arity(n, a, 2)?;
        let sep = string_arg(n, a, 0)?;
        match a.get(1) {
            Some(Value::List(items)) => Ok(string(
                items
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(sep),
            )),
            Some(other) => Err(err(
                n,
                format_args!("argument 2 must be a list, not {}", other.type_name()),
            )),
            None => Err(err(n, "missing argument 2")),
        }
    });
    add("replaceAll", |n, a| {
        // replaceAll OLD NEW STRING
        arity(n, a, 3)?;
        let (from, to, s) = (
            string_arg(n, a, 0)?,
            string_arg(n, a, 1)?,
            string_arg(n, a, 2)?,
        );
        Ok(string(s.replace(from, to)))
    });
    add("contains", |n, a| {
        // contains NEEDLE HAYSTACK: a list element, a map key, or a substring.
        arity(n, a, 2)?;
        let needle = first(a);
        let found = match a.get(1) {
            Some(Value::List(items)) => items.iter().any(|v| v == needle),
            Some(Value::Map(m)) => needle.as_str().is_some_and(|k| m.contains_key(k)),
            Some(Value::String(s)) => needle.as_str().is_some_and(|k| s.contains(k)),
            Some(Value::Nil) | None => false,
            Some(other) => {
                return Err(err(
                    n,
                    format_args!("cannot look into {}", other.type_name()),
                ));
            }
        };
        Ok(Value::Bool(found))
    });
    add("trimSpace", |n, a| {
        arity(n, a, 1)?;
        Ok(string(string_arg(n, a, 0)?.trim()))
    });
    add("toLower", |n, a| {
        arity(n, a, 1)?;
        Ok(string(string_arg(n, a, 0)?.to_lowercase()))
    });
    add("toUpper", |n, a| {
        arity(n, a, 1)?;
        Ok(string(string_arg(n, a, 0)?.to_uppercase()))
    });
    add("indent", |n, a| {
        // indent SPACES STRING: every line, the first included.
        arity(n, a, 2)?;
        let spaces = match first(a) {
            Value::Int(i) if *i >= 0 => usize::try_from(*i).unwrap_or(0),
            Value::Uint(u) => usize::try_from(*u).unwrap_or(0),
            _ => return Err(err(n, "argument 1 must be a non-negative number of spaces")),
        };
        if spaces > 4096 {
            return Err(err(n, "at most 4096 spaces"));
        }
        let pad = " ".repeat(spaces);
        let s = string_arg(n, a, 1)?;
        Ok(string(format!(
            "{pad}{}",
            s.replace('\n', &format!("\n{pad}"))
        )))
    });
    m
}

fn first(args: &[Value]) -> &Value {
    args.first().unwrap_or(&Value::Nil)
}
