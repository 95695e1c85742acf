//! Password policies (`sys/policies/password/:name`, `.../generate`), as OpenBao has them: an
//! HCL (or JSON, or base64 of either) document with a `length` and `rule "charset"` blocks
//! (`charset`, `min-chars`). The database engine generates passwords from the policy its
//! connection config names (`password_policy`).
//!
//! Stored in the barrier at `sys/password_policy/<name>` as `{"policy": "<text>"}`.

use base64::Engine as _;
use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, ErrorCode, Result};
use crate::policy::hcl::{self, Node, ObjectList};
use crate::request::{Operation, Request, Response};
use crate::storage::{Backend, Page};
use crate::strongroom::Strongroom;
use crate::util::params;

/// Where policies live, in the barrier.
pub(crate) const PREFIX: &str = "sys/password_policy/";

/// OpenBao's bounds on a policy's length.
const MIN_LENGTH: i64 = 4;
const MAX_LENGTH: i64 = 100;

#[derive(Serialize, Deserialize)]
struct Stored {
    policy: String,
}

/// One `rule "charset"` block.
#[derive(Debug, Clone, PartialEq)]
struct Charset {
    chars: Vec<char>,
    min: usize,
}

/// A parsed, valid policy.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PasswordPolicy {
    length: usize,
    rules: Vec<Charset>,
    /// Every rule's characters, without duplicates, sorted (OpenBao's generator charset).
    chars: Vec<char>,
}

/// OpenBao's `1 error occurred:` list.
fn multi(msg: impl std::fmt::Display) -> String {
    hcl::multierror(&[msg.to_string()])
}

fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::invalid_input(multi(msg))
}

/// OpenBao answers 404 with this text (kept, unlike a bare not-found).
fn missing() -> Error {
    Error::new(ErrorCode::UnsupportedPath, multi("policy does not exist"))
}

/// The Go type mapstructure names in a decode error.
fn go_type(n: &Node) -> &'static str {
    match n {
        Node::Literal(t) => match t.kind {
            hcl::TokenType::Bool => "bool",
            hcl::TokenType::Float => "float64",
            _ => "string",
        },
        Node::List(_) => "[]interface {}",
        Node::Object(_) => "[]map[string]interface {}",
    }
}

fn literal_int(n: &Node) -> Option<i64> {
    match n {
        Node::Literal(t) if t.kind == hcl::TokenType::Number => {
            hcl::strconv::parse_int(&t.text, true).ok()
        }
        _ => None,
    }
}

/// A charset rule's body.
fn charset_rule(body: &ObjectList) -> std::result::Result<Charset, String> {
    let mut chars = Vec::new();
    let mut min = 0i64;
    for item in &body.items {
        let key = item.first_key()?;
        match key.as_str() {
            "charset" => match &item.val {
                Node::Literal(t) => chars = t.string_value()?.chars().collect(),
                other => {
                    return Err(format!(
                        "unable to parse rules: unable to parse rule charset: 'charset' expected type 'string', got unconvertible type '{}'",
                        go_type(other)
                    ));
                }
            },
            "min-chars" => {
                min = literal_int(&item.val).ok_or_else(|| {
                    format!(
                        "unable to parse rules: unable to parse rule charset: 'min-chars' expected type 'int', got unconvertible type '{}'",
                        go_type(&item.val)
                    )
                })?;
            }
            _ => {}
        }
    }
    Ok(Charset {
        chars,
        // A negative minimum asks for nothing (OpenBao accepts it).
        min: usize::try_from(min).unwrap_or(0),
    })
}

/// The rules under `rule`: HCL blocks (`rule "charset" { ... }`) or JSON
/// (`"rule": [{"charset": {...}}]`).
fn rules(list: &ObjectList) -> std::result::Result<Vec<Charset>, String> {
    let mut out = Vec::new();
    let mut typed = |kind: &str, val: &Node| -> std::result::Result<(), String> {
        if kind != "charset" {
            return Err(format!(
                "unable to parse rules: unable to parse rule {kind}: unrecognized rule type {kind}"
            ));
        }
        match val {
            Node::Object(o) => out.push(charset_rule(&o.list)?),
            Node::List(l) => {
                for v in &l.list {
                    if let Node::Object(o) = v {
                        out.push(charset_rule(&o.list)?);
                    }
                }
            }
            Node::Literal(_) => {
                return Err("unable to parse rules: rule is not a map".into());
            }
        }
        Ok(())
    };
    for item in list.filter("rule").items {
        match item.keys.first() {
            Some(k) => typed(&k.string_value()?, &item.val)?,
            None => {
                let objects: Vec<&ObjectList> = match &item.val {
                    Node::Object(o) => vec![&o.list],
                    Node::List(l) => l
                        .list
                        .iter()
                        .filter_map(|v| match v {
                            Node::Object(o) => Some(&o.list),
                            _ => None,
                        })
                        .collect(),
                    Node::Literal(_) => {
                        return Err("unable to parse rules: rule is not a list".into());
                    }
                };
                for o in objects {
                    for inner in &o.items {
                        typed(&inner.first_key()?, &inner.val)?;
                    }
                }
            }
        }
    }
    Ok(out)
}

impl PasswordPolicy {
    /// Parse and validate a policy document; the error is OpenBao's text after
    /// `invalid password policy: ` (or the length bounds message, which has no prefix).
    fn parse(text: &str) -> std::result::Result<PasswordPolicy, (bool, String)> {
        let list = hcl::parse_config(text).map_err(|e| (true, format!("unable to decode: {e}")))?;
        let mut length = 0i64;
        for item in list.filter("length").elem().items {
            length = literal_int(&item.val).ok_or_else(|| {
                (
                    true,
                    format!(
                        "failed to decode configuration: decoding failed due to the following error(s):\n\n'length' expected type 'int', got unconvertible type '{}'",
                        go_type(&item.val)
                    ),
                )
            })?;
        }
        let rules = rules(&list).map_err(|e| (true, e))?;
        let mut chars: Vec<char> = rules.iter().flat_map(|r| r.chars.clone()).collect();
        chars.sort_unstable();
        chars.dedup();
        let mut errors = Vec::new();
        if length <= 0 {
            errors.push("length must be > 0".to_string());
        }
        if chars.is_empty() {
            errors.push("no charset specified".to_string());
        }
        if chars.iter().any(|c| c.is_control()) {
            errors.push("non-printable character in charset".to_string());
        }
        let min: usize = rules.iter().map(|r| r.min).sum();
        if usize::try_from(length).unwrap_or(0) < min && length > 0 {
            errors.push(format!(
                "specified rules require at least {min} characters but {length} is specified"
            ));
        }
        if !errors.is_empty() {
            return Err((true, hcl::multierror(&errors)));
        }
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
            return Err((
                false,
                format!("passwords must be between {MIN_LENGTH} and {MAX_LENGTH} characters"),
            ));
        }
        Ok(PasswordPolicy {
            length: usize::try_from(length).unwrap_or(0),
            rules,
            chars,
        })
    }

    /// A fresh password: each rule's minimum from its own charset, the rest from all of them,
    /// shuffled (the thread's CSPRNG).
    pub(crate) fn generate(&self) -> String {
        let mut rng = rand::rng();
        let mut out: Vec<char> = Vec::with_capacity(self.length);
        for r in &self.rules {
            for _ in 0..r.min {
                if let Some(c) = r.chars.get(rng.random_range(0..r.chars.len().max(1))) {
                    out.push(*c);
                }
            }
        }
        while out.len() < self.length {
            match self.chars.get(rng.random_range(0..self.chars.len().max(1))) {
                Some(c) => out.push(*c),
                None => break,
            }
        }
        out.shuffle(&mut rng);
        out.into_iter().collect()
    }
}

/// A policy's text as given: base64 of the document is accepted, as OpenBao does.
fn decode_text(raw: &str) -> String {
    match base64::engine::general_purpose::STANDARD.decode(raw.trim()) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(_) => raw.to_string(),
        },
        Err(_) => raw.to_string(),
    }
}

async fn load(storage: &dyn Backend, name: &str) -> Result<Option<String>> {
    load_key(storage, &format!("{PREFIX}{name}")).await
}

async fn load_key(storage: &dyn Backend, key: &str) -> Result<Option<String>> {
    match storage.get(key).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice::<Stored>(&raw)
            .map(|s| Some(s.policy))
            .map_err(|e| Error::storage("stored password policy is not valid").with_source(e)),
    }
}

/// A password from the stored policy `name`, for engines: `policies` is their view of
/// [`PREFIX`] (see [`crate::secrets::EngineContext::password_policies`]).
pub(crate) async fn generate(policies: &dyn Backend, name: &str) -> Result<String> {
    // OpenBao's answer (a 500) when the named policy is missing.
    let text = load_key(policies, name).await?.ok_or_else(|| {
        Error::internal(multi(
            "failed to generate password: no password policy found",
        ))
    })?;
    let p = PasswordPolicy::parse(&text).map_err(|(_, e)| {
        Error::internal(format!("stored password policy `{name}` is not valid: {e}"))
    })?;
    Ok(p.generate())
}

/// `sys/policies/password[/...]`; `None` when `path` is not one of them.
pub(crate) async fn handle(sr: &Strongroom, req: &Request, path: &str) -> Result<Option<Response>> {
    let Some(rest) = path
        .strip_prefix("policies/password")
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return Ok(None);
    };
    let rest = rest.trim_start_matches('/');
    let storage = sr.inner.storage.as_ref();
    let op = req.operation;
    if rest.is_empty() || (op == Operation::List && rest.trim_end_matches('/').is_empty()) {
        // OpenBao serves only LIST here: a GET is 405, so `read` alone cannot list.
        if op != Operation::List {
            return Err(Error::unsupported_operation());
        }
        let keys = storage.list(PREFIX, &Page::all()).await?;
        if keys.is_empty() {
            return Err(Error::not_found("no password policies"));
        }
        return Ok(Some(Response::with_data(crate::data(
            json!({ "keys": keys }),
        ))));
    }
    if let Some(name) = rest.strip_suffix("/generate") {
        if op != Operation::Read {
            return Err(Error::unsupported_operation());
        }
        let text = load(storage, name).await?.ok_or_else(missing)?;
        let p = PasswordPolicy::parse(&text).map_err(|(_, e)| {
            Error::internal(multi(format!("stored password policy is invalid: {e}")))
        })?;
        return Ok(Some(Response::with_data(crate::data(
            json!({ "password": p.generate() }),
        ))));
    }
    let name = rest;
    match op {
        Operation::Read => {
            let text = load(storage, name).await?.ok_or_else(missing)?;
            Ok(Some(Response::with_data(crate::data(
                json!({ "policy": text }),
            ))))
        }
        Operation::Create | Operation::Update => {
            let raw = params::string(&req.data, "policy")?.unwrap_or_default();
            if raw.is_empty() {
                return Err(invalid("missing policy"));
            }
            let text = decode_text(&raw);
            PasswordPolicy::parse(&text).map_err(|(prefixed, e)| {
                if prefixed {
                    invalid(format!("invalid password policy: {e}"))
                } else {
                    invalid(e)
                }
            })?;
            let value = serde_json::to_vec(&Stored { policy: text })
                .map_err(|e| Error::internal("cannot encode a password policy").with_source(e))?;
            storage.put(&format!("{PREFIX}{name}"), &value).await?;
            Ok(Some(Response::default()))
        }
        Operation::Delete => {
            storage.delete(&format!("{PREFIX}{name}")).await?;
            Ok(Some(Response::default()))
        }
        _ => Err(Error::unsupported_operation()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    const DOC: &str = "length = 20\nrule \"charset\" {\n  charset = \"abcdefghij0123456789\"\n  min-chars = 2\n}\nrule \"charset\" {\n charset=\"0123456789\"\n min-chars=3\n}";

    #[test]
    fn parses_hcl_and_json_and_generates_within_the_rules() {
        let p = PasswordPolicy::parse(DOC).unwrap();
        assert_eq!(p.length, 20);
        assert_eq!(p.rules.len(), 2);
        for _ in 0..200 {
            let pw = p.generate();
            assert_eq!(pw.chars().count(), 20);
            assert!(pw.chars().all(|c| "abcdefghij0123456789".contains(c)));
            assert!(pw.chars().filter(char::is_ascii_digit).count() >= 3, "{pw}");
        }
        let j = PasswordPolicy::parse(
            "{\"length\": 8, \"rule\": [{\"charset\": {\"charset\": \"ab\", \"min-chars\": 1}}]}",
        )
        .unwrap();
        assert_eq!(j.length, 8);
        assert_eq!(j.chars, vec!['a', 'b']);
        let u =
            PasswordPolicy::parse("length = 8\nrule \"charset\" {\n charset=\"ééab\"\n}").unwrap();
        assert_eq!(u.chars, vec!['a', 'b', 'é']);
        assert_eq!(u.generate().chars().count(), 8);
    }

    #[test]
    fn errors_are_openbaos() {
        let err = |doc: &str| PasswordPolicy::parse(doc).unwrap_err();
        assert_eq!(
            err("length = 3\nrule \"charset\" {\n charset=\"abc\"\n min-chars=5\n}"),
            (
                true,
                "1 error occurred:\n\t* specified rules require at least 5 characters but 3 is specified\n\n".into()
            )
        );
        assert_eq!(
            err("length = 20"),
            (
                true,
                "1 error occurred:\n\t* no charset specified\n\n".into()
            )
        );
        assert_eq!(
            err("rule \"charset\" {\n charset=\"abc\"\n}"),
            (true, "1 error occurred:\n\t* length must be > 0\n\n".into())
        );
        assert_eq!(
            err("length = 3\nrule \"charset\" {\n charset=\"abc\"\n}"),
            (
                false,
                "passwords must be between 4 and 100 characters".into()
            )
        );
        assert_eq!(
            err("length = 8\nrule \"other\" {\n charset=\"ab\"\n}"),
            (
                true,
                "unable to parse rules: unable to parse rule other: unrecognized rule type other"
                    .into()
            )
        );
        assert_eq!(
            err("nonsense {{"),
            (
                true,
                "unable to decode: At 1:11: expected: IDENT | STRING got: LBRACE".into()
            )
        );
        assert_eq!(
            err("length = \"x\"\nrule \"charset\" {\n charset=\"ab\"\n}"),
            (
                true,
                "failed to decode configuration: decoding failed due to the following error(s):\n\n'length' expected type 'int', got unconvertible type 'string'".into()
            )
        );
    }

    #[test]
    fn base64_documents_are_decoded() {
        let b = base64::engine::general_purpose::STANDARD.encode(DOC);
        assert_eq!(decode_text(&b), DOC);
        assert_eq!(decode_text(DOC), DOC);
    }
}
