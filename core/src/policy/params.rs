//! Matching request parameters against a rule's `allowed_parameters`, `denied_parameters`
//! and `required_parameters` (OpenBao's `valueInParameterList` and the checks around it).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::hcl::decode::Value;

/// Parameter name (lower-cased) → allowed or denied values; an empty list means any value.
pub(crate) type ParamMap = BTreeMap<String, Vec<Value>>;

/// Whether `v` is in `list`; an empty list holds every value.
pub(crate) fn value_in_list(v: &Json, list: &[Value]) -> bool {
    list.is_empty() || list.iter().any(|el| value_matches(el, v))
}

/// One element of a parameter list against a request value: strings glob, everything else
/// is Go's `reflect.DeepEqual` between the decoded policy value and the request's JSON.
fn value_matches(el: &Value, v: &Json) -> bool {
    match (el, v) {
        // A policy never holds nil, and nil only equals nil.
        (_, Json::Null) => false,
        (Value::Str(pattern), Json::String(s)) => globbed_strings_match(pattern, s),
        _ => deep_equal(el, v),
    }
}

/// Go's `reflect.DeepEqual(policyValue, requestValue)`. Request numbers are `json.Number` in
/// OpenBao, a type no policy value has, so they never compare equal.
fn deep_equal(el: &Value, v: &Json) -> bool {
    match (el, v) {
        (Value::Str(a), Json::String(b)) => a == b,
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::List(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| deep_equal(x, y))
        }
        (Value::Map(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| deep_equal(x, y)))
        }
        _ => false,
    }
}

/// `strutil.GlobbedStringsMatch`: a leading and/or trailing `*` in `item` is a wildcard;
/// items shorter than two characters compare literally.
pub(crate) fn globbed_strings_match(item: &str, val: &str) -> bool {
    if item.len() < 2 {
        return val == item;
    }
    let has_prefix = item.starts_with('*');
    let has_suffix = item.ends_with('*');
    match (has_prefix, has_suffix) {
        (true, true) => {
            let inner = item.get(1..item.len() - 1).unwrap_or_default();
            val.contains(inner)
        }
        (true, false) => val.ends_with(item.get(1..).unwrap_or_default()),
        (false, true) => val.starts_with(item.get(..item.len() - 1).unwrap_or_default()),
        (false, false) => val == item,
    }
}

/// Look `key` up lower-cased, as OpenBao does with request keys, without allocating for the
/// usual already-lower-case ASCII key.
pub(crate) fn get_lower<'m, V>(map: &'m BTreeMap<String, V>, key: &str) -> Option<&'m V> {
    if key.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        map.get(key)
    } else {
        map.get(&go_to_lower(key))
    }
}

/// Go's `strings.ToLower` (per character, no context-sensitive rules).
pub(crate) fn go_to_lower(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_follow_strutil() {
        assert!(globbed_strings_match("abc*", "abcdef"));
        assert!(globbed_strings_match("*def", "abcdef"));
        assert!(globbed_strings_match("*cd*", "abcdef"));
        assert!(!globbed_strings_match("a*c", "abc"));
        assert!(globbed_strings_match("a*c", "a*c"));
        // A lone `*` is literal.
        assert!(!globbed_strings_match("*", "x"));
        assert!(globbed_strings_match("*", "*"));
        assert!(globbed_strings_match("**", "anything"));
    }

    #[test]
    fn numbers_never_match() {
        let list = vec![Value::Int(1)];
        assert!(!value_in_list(&json!(1), &list));
        assert!(!value_in_list(&json!("1"), &list));
        assert!(value_in_list(&json!(1), &[]));
    }

    #[test]
    fn lists_and_bools_compare_deeply() {
        let list = vec![
            Value::List(vec![Value::Str("a".into()), Value::Str("b".into())]),
            Value::Bool(true),
        ];
        assert!(value_in_list(&json!(["a", "b"]), &list));
        assert!(!value_in_list(&json!(["a*"]), &list));
        assert!(value_in_list(&json!(true), &list));
        assert!(!value_in_list(&json!(null), &list));
    }
}
