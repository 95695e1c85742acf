//! Behaviour tests for the policy engine against the OpenBao reference (§1 of
//! `openbao-behaviour.md`): precedence, merging, parse errors, parameters, wrapping, the
//! built-in policies, and a property test against a brute-force model of §1.2–§1.3.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use super::*;
use crate::error::ErrorCode;
use crate::request::{Data, Operation};

fn policy(name: &str, text: &str) -> Arc<Policy> {
    Arc::new(Policy::parse(name, text).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<Arc<Policy>> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| policy(&format!("p{i}"), t))
        .collect();
    Acl::new(&policies).unwrap()
}

fn data(v: serde_json::Value) -> Data {
    crate::request::data(v)
}

fn allowed(acl: &Acl, op: Operation, path: &str, d: &Data) -> bool {
    acl.allow(op, path, d, None).allowed
}

fn parse_err(text: &str) -> String {
    let e = Policy::parse("t", text).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput, "{e:?}");
    e.message().to_string()
}

// ---------------------------------------------------------------------------------------
// §1.2 precedence

const PRECEDENCE_RULES: &str = r#"
path "secret/data/foo/*" { capabilities = ["read", "list"] }
path "secret/data/foo/bar" { capabilities = ["deny"] }
path "secret/data/+/baz" { capabilities = ["update"] }
path "secret/data/foo/ba*" { capabilities = ["create"] }
path "secret/data/+/+/x" { capabilities = ["sudo", "read"] }
path "secret/data/a/+/x" { capabilities = ["patch"] }
"#;

#[test]
fn precedence_table_from_the_reference() {
    let acl = acl(&[PRECEDENCE_RULES]);
    let rows: [(&str, &[&str]); 6] = [
        ("secret/data/foo/bar", &["deny"]),
        ("secret/data/foo/baz", &["create"]),
        ("secret/data/x/baz", &["update"]),
        ("secret/data/a/b/x", &["patch"]),
        // The reference table prints `list,read,update` here but names `foo/*` (read, list)
        // as the winner; no rule that matches grants `update`. We follow the stated winner.
        ("secret/data/foo/y/x", &["list", "read"]),
        ("secret/data/nothing", &["deny"]),
    ];
    for (path, want) in rows {
        assert_eq!(acl.capabilities(path), want.to_vec(), "{path}");
    }
    let none = Data::new();
    assert!(!allowed(
        &acl,
        Operation::Read,
        "secret/data/foo/bar",
        &none
    ));
    assert!(allowed(
        &acl,
        Operation::Create,
        "secret/data/foo/baz",
        &none
    ));
    assert!(!allowed(
        &acl,
        Operation::Read,
        "secret/data/foo/baz",
        &none
    ));
    assert!(allowed(&acl, Operation::Update, "secret/data/x/baz", &none));
    assert!(allowed(&acl, Operation::Patch, "secret/data/a/b/x", &none));
    assert!(!allowed(&acl, Operation::Read, "secret/data/a/b/x", &none));
    assert!(allowed(&acl, Operation::Read, "secret/data/foo/y/x", &none));
    // `+/+/x` loses, so no sudo either.
    assert!(
        !acl.allow(Operation::Read, "secret/data/foo/y/x", &none, None)
            .root_privs
    );
    assert_eq!(
        acl.allow(Operation::Read, "secret/data/nothing", &none, None)
            .denial,
        Some(Denial::NoMatchingRule)
    );
}

#[test]
fn only_the_winning_rule_applies() {
    // A deny on a less specific rule does not override a more specific allow.
    let acl = acl(&[r#"
        path "secret/*" { capabilities = ["deny"] }
        path "secret/app/*" { capabilities = ["read"] }
    "#]);
    let none = Data::new();
    assert!(allowed(&acl, Operation::Read, "secret/app/x", &none));
    assert!(!allowed(&acl, Operation::Read, "secret/other", &none));
}

#[test]
fn prefix_rules_match_strings_not_segments() {
    let acl = acl(&[r#"path "secret/data/foo/ba*" { capabilities = ["read"] }
                      path "a*b" { capabilities = ["read"] }"#]);
    let none = Data::new();
    assert!(allowed(&acl, Operation::Read, "secret/data/foo/bax", &none));
    assert!(allowed(
        &acl,
        Operation::Read,
        "secret/data/foo/baz/deep",
        &none
    ));
    assert!(!allowed(&acl, Operation::Read, "secret/data/foo/b", &none));
    // `*` is only special at the end.
    assert!(allowed(&acl, Operation::Read, "a*b", &none));
    assert!(!allowed(&acl, Operation::Read, "axb", &none));
}

#[test]
fn plus_matches_exactly_one_segment_even_empty() {
    let acl = acl(&[r#"path "a/+/c" { capabilities = ["read"] }
                      path "+" { capabilities = ["list"] }
                      path "x/+/y*" { capabilities = ["update"] }"#]);
    let none = Data::new();
    assert!(allowed(&acl, Operation::Read, "a/b/c", &none));
    assert!(allowed(&acl, Operation::Read, "a//c", &none));
    assert!(!allowed(&acl, Operation::Read, "a/b/b/c", &none));
    assert!(!allowed(&acl, Operation::Read, "a/c", &none));
    assert!(allowed(&acl, Operation::List, "anything", &none));
    assert!(allowed(&acl, Operation::List, "", &none));
    assert!(!allowed(&acl, Operation::List, "two/segments", &none));
    // A trailing `*` on a segment rule is a prefix on the last segment.
    assert!(allowed(&acl, Operation::Update, "x/1/yes", &none));
    assert!(allowed(
        &acl,
        Operation::Update,
        "x/1/y/more/segments",
        &none
    ));
    assert!(!allowed(&acl, Operation::Update, "x/1/no", &none));
}

#[test]
fn exact_wins_outright_and_kinds_do_not_merge() {
    let acl = acl(&[r#"path "a/b" { capabilities = ["read"] }
                      path "a/b*" { capabilities = ["update"] }
                      path "+/b" { capabilities = ["delete"] }"#]);
    assert_eq!(acl.capabilities("a/b"), vec!["read"]);
    assert_eq!(acl.capabilities("a/bc"), vec!["update"]);
    assert_eq!(acl.capabilities("z/b"), vec!["delete"]);
}

#[test]
fn list_falls_back_to_the_path_without_its_slash() {
    let acl = acl(&[r#"path "secret/metadata" { capabilities = ["list"] }
                      path "kv/+/x" { capabilities = ["list"] }"#]);
    let none = Data::new();
    assert!(allowed(&acl, Operation::List, "secret/metadata/", &none));
    assert!(allowed(&acl, Operation::List, "secret/metadata", &none));
    // Only LIST falls back.
    assert!(!allowed(&acl, Operation::Read, "secret/metadata/", &none));
    assert!(allowed(&acl, Operation::List, "kv/a/x/", &none));
    assert_eq!(acl.capabilities("secret/metadata/"), vec!["list"]);
    assert_eq!(acl.capabilities("kv/a/x/"), vec!["list"]);
}

#[test]
fn leading_slashes_are_ignored() {
    let acl = acl(&[r#"path "/secret/a" { capabilities = ["read"] }"#]);
    let none = Data::new();
    assert!(allowed(&acl, Operation::Read, "secret/a", &none));
    assert!(allowed(&acl, Operation::Read, "//secret/a", &none));
}

// ---------------------------------------------------------------------------------------
// §1.3 merging, root, sudo

#[test]
fn deny_wins_on_the_same_path_across_policies() {
    let conly = r#"path "secret/data/c/d" { capabilities = ["create"] }"#;
    let denyit = r#"path "secret/data/c/d" { capabilities = ["deny"] }"#;
    let none = Data::new();
    for order in [[conly, denyit], [denyit, conly]] {
        let acl = acl(&order);
        assert!(!allowed(&acl, Operation::Create, "secret/data/c/d", &none));
        assert_eq!(acl.capabilities("secret/data/c/d"), vec!["deny"]);
    }
}

#[test]
fn capabilities_union_across_policies() {
    let acl = acl(&[
        r#"path "s/x" { capabilities = ["read"] }"#,
        r#"path "s/x" { capabilities = ["list", "sudo"] }"#,
    ]);
    assert_eq!(acl.capabilities("s/x"), vec!["list", "read", "sudo"]);
    let none = Data::new();
    let d = acl.allow(Operation::Read, "s/x", &none, None);
    assert!(d.allowed && d.root_privs);
    assert_eq!(
        d.granting_policies.iter().map(|p| &**p).collect::<Vec<_>>(),
        vec!["p0"]
    );
    let d = acl.allow(Operation::List, "s/x", &none, None);
    assert_eq!(d.granting_policies.len(), 1);
    assert_eq!(&*d.granting_policies[0], "p1");
}

#[test]
fn root_allows_everything_and_must_be_alone() {
    let root = Arc::new(Policy::root());
    let acl = Acl::new(std::slice::from_ref(&root)).unwrap();
    let none = Data::new();
    let d = acl.allow(Operation::Delete, "sys/raw/anything", &none, None);
    assert!(d.allowed && d.root_privs && d.is_root);
    assert!(d.check().is_ok());
    assert_eq!(&*d.granting_policies[0], ROOT_POLICY_NAME);
    assert_eq!(acl.capabilities("any/path"), vec!["root"]);
    let other = policy("dev", r#"path "a" { capabilities = ["read"] }"#);
    let err = Acl::new(&[root, other]).unwrap_err();
    assert_eq!(err.message(), "other policies present along with root");
}

#[test]
fn sudo_is_reported_even_when_the_operation_is_refused() {
    let acl = acl(&[r#"path "sys/audit" { capabilities = ["sudo"] }"#]);
    let none = Data::new();
    let d = acl.allow(Operation::Read, "sys/audit", &none, None);
    assert!(!d.allowed && d.root_privs);
    assert_eq!(d.denial, Some(Denial::MissingCapability(Capability::Read)));
    let err = d.check().unwrap_err();
    assert_eq!(err.code(), ErrorCode::PermissionDenied);
    assert_eq!(err.message(), "permission denied");
}

#[test]
fn parameters_merge_key_wise_and_empty_lists_mean_any() {
    let acl = acl(&[
        r#"path "t" { capabilities = ["update"] allowed_parameters = { "a" = ["x"], "b" = [] } }"#,
        r#"path "t" { capabilities = ["update"] allowed_parameters = { "a" = ["y"], "b" = ["z"], "c" = ["w"] } }"#,
    ]);
    let ok = |v| allowed(&acl, Operation::Update, "t", &data(v));
    assert!(ok(json!({"a": "x"})));
    assert!(ok(json!({"a": "y"})));
    assert!(!ok(json!({"a": "q"})));
    assert!(ok(json!({"b": "anything"})));
    assert!(ok(json!({"c": "w"})));
    assert!(!ok(json!({"d": "w"})));
}

#[test]
fn required_parameters_union() {
    let acl = acl(&[
        r#"path "t" { capabilities = ["update"] required_parameters = ["a"] }"#,
        r#"path "t" { capabilities = ["update"] required_parameters = ["b", "a"] }"#,
    ]);
    let ok = |v| allowed(&acl, Operation::Update, "t", &data(v));
    assert!(!ok(json!({"a": 1})));
    assert!(ok(json!({"a": 1, "b": 2})));
}

#[test]
fn mfa_methods_union_and_filter_path_first_wins() {
    let acl = acl(&[
        r#"path "m/" { capabilities = ["read", "list"] mfa_methods = ["totp", "duo"] list_scan_response_keys_filter_path = "a/{{ .key }}" }"#,
        r#"path "m/" { capabilities = ["read", "list"] mfa_methods = [" duo", "okta"] list_scan_response_keys_filter_path = "b/{{ .key }}" }"#,
    ]);
    let none = Data::new();
    let d = acl.allow(Operation::List, "m/", &none, None);
    assert_eq!(d.mfa_methods, ["duo", "okta", "totp"]);
    assert_eq!(d.response_keys_filter_path, "a/{{ .key }}");
}

#[test]
fn deny_clears_parameters_and_stops_later_merges() {
    let acl = acl(&[
        r#"path "t" { capabilities = ["update"] allowed_parameters = { "a" = [] } }"#,
        r#"path "t" { capabilities = ["deny"] }"#,
        r#"path "t" { capabilities = ["read"] }"#,
    ]);
    assert_eq!(acl.capabilities("t"), vec!["deny"]);
}

// ---------------------------------------------------------------------------------------
// §1.1 parsing and error texts

#[test]
fn parse_errors_match_openbao_texts() {
    assert_eq!(
        parse_err(r#"pth "a/*" { capabilities = ["read"] }"#),
        "failed to parse policy: 1 error occurred:\n\t* invalid key \"pth\" on line 0\n\n"
    );
    assert_eq!(
        parse_err(r#"path "a/*" { foo = 1 }"#),
        "failed to parse policy: path \"a/*\": 1 error occurred:\n\t* invalid key \"foo\" on line 1\n\n"
    );
    assert_eq!(
        parse_err(r#"path "a/*" { capabilities = ["reed"] }"#),
        "failed to parse policy: path \"a/*\": path \"a/*\": invalid capability \"reed\""
    );
    assert_eq!(
        parse_err(r#"path "a" { policy = "x" }"#),
        "failed to parse policy: path \"a\": path \"a\": invalid policy \"x\""
    );
    let e = parse_err(r#"path "a/+*" { capabilities = ["read"] }"#);
    assert!(
        e.contains("path \"a/+*\": invalid use of wildcards ('+*' is forbidden)"),
        "{e}"
    );
    assert_eq!(
        e,
        "failed to parse policy: path \"a/+*\": path \"a/+*\": invalid use of wildcards ('+*' is forbidden)"
    );
    assert_eq!(
        parse_err(
            r#"path "a" { capabilities = ["read"] min_wrapping_ttl = "1h" max_wrapping_ttl = "1m" }"#
        ),
        "failed to parse policy: path \"a\": max_wrapping_ttl cannot be less than min_wrapping_ttl"
    );
    assert_eq!(
        parse_err(r#"path "a" { capabilities = ["read"] min_wrapping_ttl = "5x" }"#),
        "failed to parse policy: path \"a\": error parsing min_wrapping_ttl: time: unknown unit \"x\" in duration \"5x\""
    );
    assert_eq!(
        parse_err(r#"path "a" { capabilities = "read" }"#),
        "failed to parse policy: path \"a\": path \"a\": At 1:27: unknown slice type: *ast.LiteralType"
    );
    assert_eq!(
        parse_err(r#"path "a/{{x" { capabilities = ["read"] }"#),
        "failed to parse policy: path \"a/{{x\": failed to validate policy templating: unbalanced templating characters"
    );
    assert_eq!(
        parse_err(
            r#"path "a" { capabilities = ["read"] list_scan_response_keys_filter_path = "{{ .key }}" }"#
        ),
        "failed to parse policy: path \"a\": list_scan_response_keys_filter_path needs to be used on a path with the list capability"
    );
    assert_eq!(
        parse_err(r#"path "a" { capabilities = ["read"] expiration = "soon" }"#),
        "failed to parse policy: path \"a\": path \"a\": invalid expiration time: could not parse string as date and time"
    );
    assert_eq!(
        parse_err("path = \"a\""),
        "failed to parse policy: path \"path\": cannot check HCL keys of type *ast.LiteralType"
    );
}

#[test]
fn syntax_errors_match_hcl_v1_texts() {
    assert_eq!(
        parse_err("path \"a\" {"),
        "failed to parse policy: At 1:12: object expected closing RBRACE got: EOF"
    );
    assert_eq!(
        parse_err("path \"a\" { capabilities = [read] }"),
        "failed to parse policy: At 1:28: unexpected token while parsing list: IDENT"
    );
    assert_eq!(
        parse_err("path \"a\" { capabilities = [\"read\"] }\n}"),
        "failed to parse policy: At 2:1: expected: IDENT | STRING | ASSIGN | LBRACE got: RBRACE"
    );
    assert_eq!(
        parse_err("a = [\"read\" }"),
        "failed to parse policy: At 1:13: error parsing list, expected comma or list end, got: RBRACE"
    );
    // Inside a block, an error raised on `}` is swallowed and the block then lacks its `}`.
    assert_eq!(
        parse_err("path \"a\" { capabilities = [\"read\" }"),
        "failed to parse policy: At 1:36: object expected closing RBRACE got: EOF"
    );
    assert_eq!(
        parse_err("path \"a\" { capabilities = [\"read\"] } %"),
        "failed to parse policy: At 1:38: illegal char"
    );
    assert_eq!(
        parse_err(r#"{"path": x}"#),
        "failed to parse policy: 1:10: illegal char"
    );
    assert_eq!(
        parse_err(r#"{"path": {"a": {"capabilities": [null]}}}"#),
        "failed to parse policy: unexpected token while parsing list: NULL"
    );
}

#[test]
fn deny_drops_other_capabilities_and_settings() {
    let p = Policy::parse(
        "t",
        r#"path "a" { capabilities = ["read", "deny", "reed"] allowed_parameters = { "x" = [] } }"#,
    )
    .unwrap();
    let rule = &p.paths()[0];
    assert_eq!(rule.capabilities, Capabilities::DENY);
    assert!(rule.allowed_parameters.is_none());
    // An unknown capability before `deny` is still an error.
    assert!(Policy::parse("t", r#"path "a" { capabilities = ["reed", "deny"] }"#).is_err());
}

#[test]
fn legacy_policy_values_map_to_capabilities() {
    let cases: [(&str, &[&str]); 4] = [
        ("deny", &["deny"]),
        ("read", &["list", "read"]),
        ("write", &["create", "delete", "list", "read", "update"]),
        (
            "sudo",
            &["create", "delete", "list", "read", "sudo", "update"],
        ),
    ];
    for (legacy, want) in cases {
        let acl = acl(&[&format!("path \"a\" {{ policy = \"{legacy}\" }}")]);
        assert_eq!(acl.capabilities("a"), want.to_vec(), "{legacy}");
    }
}

#[test]
fn rules_are_classified_like_openbao() {
    let p = Policy::parse(
        "t",
        r#"
        path "/lead" { capabilities = ["read"] }
        path "pre/*" { capabilities = ["read"] }
        path "seg/+/x*" { capabilities = ["read"] }
        path "+" { capabilities = ["read"] }
        path "+/a" { capabilities = ["read"] }
        path "a+/b" { capabilities = ["read"] }
        "#,
    )
    .unwrap();
    let got: Vec<(RuleKind, &str)> = p
        .paths()
        .iter()
        .map(|r| (r.kind, r.path.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (RuleKind::Exact, "lead"),
            (RuleKind::Prefix, "pre/"),
            (RuleKind::Segment, "seg/+/x*"),
            (RuleKind::Segment, "+"),
            (RuleKind::Segment, "+/a"),
            (RuleKind::Exact, "a+/b"),
        ]
    );
}

#[test]
fn json_policies_are_accepted() {
    let acl = acl(&[
        r#"{"path":{"secret/data/j/*":{"capabilities":["read","list"],"allowed_parameters":{"*":[]}}}}"#,
    ]);
    assert_eq!(acl.capabilities("secret/data/j/x"), vec!["list", "read"]);
    assert!(allowed(
        &acl,
        Operation::Read,
        "secret/data/j/x",
        &data(json!({"anything": 1}))
    ));
}

#[test]
fn parameter_names_are_lower_cased_and_values_decoded() {
    let p = Policy::parse(
        "t",
        r#"path "a" {
            capabilities = ["update"]
            allowed_parameters = { "PlainText" = [], "n" = [1, "x*", true] }
            required_parameters = ["PlainText"]
            min_wrapping_ttl = 60
            max_wrapping_ttl = "1h"
            pagination_limit = 0x10
            mfa_methods = ["m"]
        }"#,
    )
    .unwrap();
    let rule = &p.paths()[0];
    let allowed = rule.allowed_parameters.as_ref().unwrap();
    assert!(allowed.contains_key("plaintext"));
    assert_eq!(rule.required_parameters, vec!["PlainText"]);
    assert_eq!(rule.min_wrapping_ttl, 60_000_000_000);
    assert_eq!(rule.max_wrapping_ttl, 3_600_000_000_000);
    assert_eq!(rule.pagination_limit, 16);
    assert_eq!(rule.mfa_methods, vec!["m"]);
}

#[test]
fn expired_rules_are_dropped() {
    let text = r#"path "a" { capabilities = ["read"] expiration = "2030-01-01T00:00:00Z" }
                  path "b" { capabilities = ["read"] }"#;
    let before = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let after = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    assert_eq!(Policy::parse_at("t", text, after).unwrap().paths().len(), 1);
    let p = Arc::new(Policy::parse_at("t", text, before).unwrap());
    assert_eq!(p.paths().len(), 2);
    let live = Acl::build(std::slice::from_ref(&p), None, before).unwrap();
    assert_eq!(live.capabilities("a"), vec!["read"]);
    let expired = Acl::build(&[p], None, after).unwrap();
    assert_eq!(expired.capabilities("a"), vec!["deny"]);
    assert_eq!(expired.capabilities("b"), vec!["read"]);
}

#[test]
fn control_groups_are_validated() {
    let ok = r#"path "a" {
        capabilities = ["read"]
        control_group = {
            ttl = "4h"
            factor "ops" {
                controlled_capabilities = ["read"]
                identity { group_names = ["ops"] approvals = 2 }
            }
        }
    }"#;
    let p = Arc::new(Policy::parse("t", ok).unwrap());
    let cg = p.paths()[0].control_group.as_ref().unwrap();
    let compiled = Acl::new(std::slice::from_ref(&p)).unwrap();
    let none = Data::new();
    assert_eq!(
        compiled
            .allow(Operation::Read, "a", &none, None)
            .control_group,
        Some(cg)
    );
    assert_eq!(cg.ttl, 4 * 3600 * 1_000_000_000);
    assert_eq!(cg.factors[0].name, "ops");
    assert_eq!(cg.factors[0].approvals, 2);
    assert_eq!(
        parse_err(r#"path "a" { capabilities = ["read"] control_group = { ttl = "1h" } }"#),
        "failed to parse policy: path \"a\": error handling control_group: requires at least one factor but had none"
    );
}

// ---------------------------------------------------------------------------------------
// §1.5 parameter constraints

const TRANSIT: &str = r#"path "transit/encrypt/k" {
    capabilities = ["update", "read", "delete", "list"]
    allowed_parameters = { "plaintext" = [], "context" = ["abc*", "*xyz", "*mid*", "exact"], "Flag" = [true] }
    denied_parameters = { "key_version" = [], "nonce" = ["bad*"] }
}"#;

#[test]
fn allowed_and_denied_parameters() {
    let acl = acl(&[TRANSIT]);
    // Denials borrow the request; render them to compare.
    let check = |v| {
        let d = data(v);
        acl.allow(Operation::Update, "transit/encrypt/k", &d, None)
            .denial
            .map(|why| why.to_string())
    };
    let denied = |why: Denial<'_>| Some(why.to_string());
    assert_eq!(check(json!({"plaintext": "aGk="})), None);
    assert_eq!(check(json!({"context": "abcdef"})), None);
    assert_eq!(check(json!({"context": "0xyz"})), None);
    assert_eq!(check(json!({"context": "amidb"})), None);
    assert_eq!(check(json!({"context": "exact"})), None);
    assert_eq!(check(json!({"flag": true})), None);
    assert_eq!(check(json!({"FLAG": true})), None);
    assert_eq!(
        check(json!({"context": "nope"})),
        denied(Denial::ParameterValueNotAllowed("context"))
    );
    assert_eq!(
        check(json!({"other": "x"})),
        denied(Denial::ParameterNotAllowed("other"))
    );
    assert_eq!(
        check(json!({"key_version": 1})),
        denied(Denial::DeniedParameter("key_version"))
    );
    assert_eq!(
        check(json!({"Key_Version": "x"})),
        denied(Denial::DeniedParameter("Key_Version"))
    );
    assert_eq!(
        check(json!({"nonce": "bad1"})),
        denied(Denial::DeniedParameter("nonce"))
    );
    // `nonce` is not denied for this value, but not allowed either.
    assert_eq!(
        check(json!({"nonce": "good"})),
        denied(Denial::ParameterNotAllowed("nonce"))
    );
    // No data: allowed.
    assert_eq!(check(json!({})), None);
    // Constraints apply to read (query) but not to delete or list.
    let q = data(json!({"other": "x"}));
    assert!(!allowed(&acl, Operation::Read, "transit/encrypt/k", &q));
    assert!(allowed(&acl, Operation::Delete, "transit/encrypt/k", &q));
    assert!(allowed(&acl, Operation::List, "transit/encrypt/k", &q));
}

#[test]
fn star_in_allowed_or_denied_parameters() {
    let only_star =
        acl(&[r#"path "a" { capabilities = ["update"] allowed_parameters = { "*" = [] } }"#]);
    assert!(allowed(
        &only_star,
        Operation::Update,
        "a",
        &data(json!({"x": 1, "y": [1]}))
    ));
    let star_and_more = acl(&[
        r#"path "a" { capabilities = ["update"] allowed_parameters = { "*" = [], "x" = ["ok"] } }"#,
    ]);
    assert!(allowed(
        &star_and_more,
        Operation::Update,
        "a",
        &data(json!({"y": 1}))
    ));
    assert!(allowed(
        &star_and_more,
        Operation::Update,
        "a",
        &data(json!({"x": "ok"}))
    ));
    assert!(!allowed(
        &star_and_more,
        Operation::Update,
        "a",
        &data(json!({"x": "no"}))
    ));
    let deny_all =
        acl(&[r#"path "a" { capabilities = ["update"] denied_parameters = { "*" = ["v"] } }"#]);
    assert_eq!(
        deny_all
            .allow(Operation::Update, "a", &data(json!({"x": 1})), None)
            .denial,
        Some(Denial::AllParametersDenied)
    );
    assert!(allowed(&deny_all, Operation::Update, "a", &Data::new()));
}

#[test]
fn required_parameters_are_case_sensitive_in_the_request() {
    let acl = acl(&[
        r#"path "a" { capabilities = ["create", "update"] required_parameters = ["PlainText"] }"#,
    ]);
    assert!(allowed(
        &acl,
        Operation::Update,
        "a",
        &data(json!({"plaintext": "x"}))
    ));
    assert_eq!(
        acl.allow(
            Operation::Create,
            "a",
            &data(json!({"PlainText": "x"})),
            None
        )
        .denial,
        Some(Denial::MissingRequiredParameter("PlainText"))
    );
    assert!(!allowed(&acl, Operation::Update, "a", &Data::new()));
}

#[test]
fn numbers_never_match_numeric_policy_values() {
    let acl =
        acl(&[r#"path "a" { capabilities = ["update"] allowed_parameters = { "n" = [1] } }"#]);
    assert!(!allowed(
        &acl,
        Operation::Update,
        "a",
        &data(json!({"n": 1}))
    ));
    assert!(!allowed(
        &acl,
        Operation::Update,
        "a",
        &data(json!({"n": "1"}))
    ));
}

#[test]
fn list_values_compare_as_whole_values() {
    let acl = acl(&[
        r#"path "a" { capabilities = ["update"] allowed_parameters = { "l" = [["x", "y"]], "s" = ["x*"] } }"#,
    ]);
    assert!(allowed(
        &acl,
        Operation::Update,
        "a",
        &data(json!({"l": ["x", "y"]}))
    ));
    assert!(!allowed(
        &acl,
        Operation::Update,
        "a",
        &data(json!({"l": ["x"]}))
    ));
    assert!(!allowed(
        &acl,
        Operation::Update,
        "a",
        &data(json!({"s": ["xa"]}))
    ));
}

// ---------------------------------------------------------------------------------------
// §1.6 wrapping TTLs, pagination

#[test]
fn wrapping_ttl_bounds() {
    let acl = acl(&[
        r#"path "w" { capabilities = ["read"] min_wrapping_ttl = "1m" max_wrapping_ttl = "1h" }"#,
    ]);
    let none = Data::new();
    let with = |ttl: Option<u64>| {
        acl.allow(Operation::Read, "w", &none, ttl.map(Duration::from_secs))
            .denial
    };
    assert_eq!(with(None), Some(Denial::WrappingRequired));
    assert_eq!(with(Some(30)), Some(Denial::WrappingTtlTooShort));
    assert_eq!(with(Some(7200)), Some(Denial::WrappingTtlTooLong));
    assert_eq!(with(Some(60)), None);
    assert_eq!(with(Some(3600)), None);
}

#[test]
fn merged_wrapping_ttls_take_the_smallest_and_can_conflict() {
    let merged = acl(&[
        r#"path "w" { capabilities = ["read"] min_wrapping_ttl = "10m" max_wrapping_ttl = "1h" }"#,
        r#"path "w" { capabilities = ["read"] max_wrapping_ttl = "5m" min_wrapping_ttl = "30s" }"#,
    ]);
    let none = Data::new();
    let at = |acl: &Acl, secs| {
        acl.allow(Operation::Read, "w", &none, Some(Duration::from_secs(secs)))
            .allowed
    };
    // Merged: min 30s and max 5m, the smallest of each.
    assert!(at(&merged, 30) && at(&merged, 300));
    assert!(!at(&merged, 20) && !at(&merged, 301));
    // Merged min 10m and max 5m: every request is refused.
    let conflicting = acl(&[
        r#"path "w" { capabilities = ["read"] min_wrapping_ttl = "10m" }"#,
        r#"path "w" { capabilities = ["read"] max_wrapping_ttl = "5m" }"#,
    ]);
    for secs in [60, 300, 600, 3600] {
        assert!(!at(&conflicting, secs));
    }
}

#[test]
fn pagination_limits() {
    let acl = acl(&[
        r#"path "p/" { capabilities = ["list"] pagination_limit = 100 }
           path "r/" { capabilities = ["list"] pagination_limit = 100 required_parameters = ["limit"] }
           path "n/" { capabilities = ["list"] }"#,
    ]);
    let list = |path, v| {
        let d = data(v);
        let dec = acl.allow(Operation::List, path, &d, None);
        (dec.allowed, dec.set_limit)
    };
    assert_eq!(list("p/", json!({})), (true, Some(100)));
    assert_eq!(list("p/", json!({"limit": "50"})), (true, None));
    assert_eq!(list("p/", json!({"limit": 50})), (true, None));
    assert_eq!(list("p/", json!({"limit": "0"})), (true, Some(100)));
    assert_eq!(list("p/", json!({"limit": "max"})), (true, Some(100)));
    assert_eq!(list("p/", json!({"limit": "200"})), (false, None));
    assert_eq!(list("p/", json!({"limit": "-1"})), (false, None));
    assert_eq!(list("p/", json!({"limit": "abc"})), (false, None));
    assert_eq!(list("r/", json!({})), (false, None));
    assert_eq!(list("r/", json!({"limit": "10"})), (true, None));
    assert_eq!(list("n/", json!({"limit": "max"})), (true, Some(0)));
    assert_eq!(list("n/", json!({"limit": "7"})), (true, None));
}

#[test]
fn response_keys_filter_path_is_returned_for_list() {
    let acl = acl(&[
        r#"path "kv/metadata/" { capabilities = ["list", "read"] list_scan_response_keys_filter_path = "kv/data/{{ .key }}" }"#,
    ]);
    let none = Data::new();
    let d = acl.allow(Operation::List, "kv/metadata/", &none, None);
    assert_eq!(d.response_keys_filter_path, "kv/data/{{ .key }}");
    assert_eq!(
        acl.allow(Operation::Read, "kv/metadata/", &none, None)
            .response_keys_filter_path,
        ""
    );
}

// ---------------------------------------------------------------------------------------
// §1.7 built-in policies, templating

/// SHA-256 of the default policy text in the reference (`openbao-behaviour.md` §1.7).
const DEFAULT_POLICY_SHA256: &str =
    "1b6ea8e97975b572c64fcc41c30e1aa0560fb2c680687b5dbdc874bdbef823a9";

#[test]
fn default_policy_text_is_openbaos() {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, DEFAULT_POLICY.as_bytes());
    assert_eq!(hex::encode(digest.as_ref()), DEFAULT_POLICY_SHA256);
    assert!(DEFAULT_POLICY.starts_with("\n# Allow tokens to look up their own properties\n"));
    assert!(DEFAULT_POLICY.ends_with("capabilities = [\"read\", \"update\"]\n}\n"));
    assert_eq!(DEFAULT_POLICY.len(), 2270);
}

#[test]
fn default_policy_compiles() {
    let default = policy(DEFAULT_POLICY_NAME, DEFAULT_POLICY);
    assert!(default.is_templated());
    let acl = Acl::new(std::slice::from_ref(&default)).unwrap();
    assert_eq!(acl.capabilities("auth/token/lookup-self"), vec!["read"]);
    assert_eq!(
        acl.capabilities("cubbyhole/my/secret"),
        vec!["create", "delete", "list", "read", "update"]
    );
    assert_eq!(acl.capabilities("sys/tools/hash/sha2-256"), vec!["update"]);
    assert_eq!(
        acl.capabilities("identity/oidc/provider/p1/authorize"),
        vec!["read", "update"]
    );
    // Without an entity the templated rules are dropped.
    assert_eq!(acl.capabilities("identity/entity/id/e-1"), vec!["deny"]);
    let identity = TemplateIdentity {
        entity: Some(TemplateEntity {
            id: "e-1".into(),
            name: "alice".into(),
            ..TemplateEntity::default()
        }),
        ..TemplateIdentity::default()
    };
    let acl = Acl::build(&[default], Some(&identity), OffsetDateTime::now_utc()).unwrap();
    assert_eq!(acl.capabilities("identity/entity/id/e-1"), vec!["read"]);
    assert_eq!(acl.capabilities("identity/entity/name/alice"), vec!["read"]);
    assert_eq!(acl.capabilities("identity/entity/id/e-2"), vec!["deny"]);
}

#[test]
fn response_wrapping_policy_compiles() {
    let p = policy(RESPONSE_WRAPPING_POLICY_NAME, RESPONSE_WRAPPING_POLICY);
    assert_eq!(p.raw(), RESPONSE_WRAPPING_POLICY);
    let acl = Acl::new(&[p]).unwrap();
    assert_eq!(
        acl.capabilities("cubbyhole/response"),
        vec!["create", "read"]
    );
    assert_eq!(acl.capabilities("sys/wrapping/unwrap"), vec!["update"]);
}

#[test]
fn templated_wildcards_and_slashes_are_blocked() {
    let text =
        r#"path "secret/data/{{identity.entity.metadata.team}}/*" { capabilities = ["read"] }"#;
    let identity = |team: &str| TemplateIdentity {
        entity: Some(TemplateEntity {
            id: "e".into(),
            metadata: [("team".to_string(), team.to_string())].into(),
            ..TemplateEntity::default()
        }),
        ..TemplateIdentity::default()
    };
    let now = OffsetDateTime::now_utc();
    let p = policy("t", text);
    let acl = Acl::build(std::slice::from_ref(&p), Some(&identity("ops")), now).unwrap();
    assert_eq!(acl.capabilities("secret/data/ops/x"), vec!["read"]);
    // A slash or a wildcard in the value fails the request (OpenBao 2.7.2: HTTP 400
    // `Forbidden`, and this text in its log).
    for (team, c) in [("a/b", "/"), ("*", "*"), ("a+", "+")] {
        let err = Acl::build(std::slice::from_ref(&p), Some(&identity(team)), now).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        assert_eq!(
            err.message(),
            format!(
                "error parsing templated policy \"t\": failed to parse policy: path \"secret/data/{{{{identity.entity.metadata.team}}}}/*\": template substitution contains forbidden value: \"{c}\""
            )
        );
        assert_eq!(err.wire_message(), "Forbidden");
    }
    // Both are allowed when the policy says so.
    let open = Arc::new(
        Policy::parse("t", text)
            .unwrap()
            .with_template_options(true, true),
    );
    let acl = Acl::build(&[open], Some(&identity("a/b")), now).unwrap();
    assert_eq!(acl.capabilities("secret/data/a/b/x"), vec!["read"]);
}

// ---------------------------------------------------------------------------------------
// Property test: the compiled ACL against a brute-force model written from §1.2–§1.3.

mod model {
    use std::collections::BTreeSet;

    /// A merged rule: kind, stored pattern, capabilities (`deny` alone when denying).
    #[derive(Debug, Clone)]
    pub(super) struct Rule {
        pub(super) kind: Kind,
        pub(super) pattern: String,
        pub(super) caps: BTreeSet<String>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Kind {
        Exact,
        Prefix,
        Segment,
    }

    /// §1.1/§1.2: classify a written path.
    fn classify(written: &str) -> (Kind, String) {
        let p = written.strip_prefix('/').unwrap_or(written);
        if p == "+" || p.contains("/+") || p.starts_with("+/") {
            (Kind::Segment, p.to_string())
        } else if let Some(prefix) = p.strip_suffix('*') {
            (Kind::Prefix, prefix.to_string())
        } else {
            (Kind::Exact, p.to_string())
        }
    }

    /// §1.3: merge per identical path string within the same kind, in policy order.
    pub(super) fn merge(policies: &[Vec<(String, Vec<String>)>]) -> Vec<Rule> {
        let mut rules: Vec<Rule> = Vec::new();
        for policy in policies {
            for (written, caps) in policy {
                let (kind, pattern) = classify(written);
                let new: BTreeSet<String> = if caps.iter().any(|c| c == "deny") {
                    ["deny".to_string()].into()
                } else {
                    caps.iter().cloned().collect()
                };
                match rules
                    .iter_mut()
                    .find(|r| r.kind == kind && r.pattern == pattern)
                {
                    None => rules.push(Rule {
                        kind,
                        pattern,
                        caps: new,
                    }),
                    Some(r) if r.caps.contains("deny") => {}
                    Some(r) if new.contains("deny") => r.caps = new,
                    Some(r) => r.caps.extend(new),
                }
            }
        }
        rules
    }

    fn segment_matches(pattern: &str, path: &str) -> bool {
        let is_prefix = pattern.ends_with('*');
        let pat = pattern.strip_suffix('*').unwrap_or(pattern);
        let pp: Vec<&str> = pat.split('/').collect();
        let xs: Vec<&str> = path.split('/').collect();
        if xs.len() < pp.len() || (!is_prefix && xs.len() != pp.len()) {
            return false;
        }
        pp.iter().enumerate().all(|(i, p)| {
            *p == "+" || *p == xs[i] || (is_prefix && i == pp.len() - 1 && xs[i].starts_with(p))
        })
    }

    /// Candidate key in §1.2's order; the maximum wins.
    fn key(r: &Rule) -> (usize, bool, std::cmp::Reverse<usize>, usize, String) {
        match r.kind {
            Kind::Prefix => (
                r.pattern.len(),
                false,
                std::cmp::Reverse(0),
                r.pattern.len(),
                r.pattern.clone(),
            ),
            _ => {
                let is_prefix = r.pattern.ends_with('*');
                let pat = r
                    .pattern
                    .strip_suffix('*')
                    .unwrap_or(&r.pattern)
                    .to_string();
                (
                    r.pattern.find('+').unwrap_or(0),
                    !is_prefix,
                    std::cmp::Reverse(pat.split('/').filter(|s| *s == "+").count()),
                    pat.len(),
                    pat,
                )
            }
        }
    }

    fn non_exact<'r>(rules: &'r [Rule], path: &str) -> Option<&'r Rule> {
        let longest_prefix = rules
            .iter()
            .filter(|r| r.kind == Kind::Prefix && path.starts_with(&r.pattern))
            .max_by_key(|r| r.pattern.len());
        if !rules.iter().any(|r| r.kind == Kind::Segment) {
            return longest_prefix;
        }
        longest_prefix
            .into_iter()
            .chain(
                rules
                    .iter()
                    .filter(|r| r.kind == Kind::Segment && segment_matches(&r.pattern, path)),
            )
            .max_by_key(|r| key(r))
    }

    /// §1.2 `AllowOperation`: the capabilities of the winning rule, if any.
    pub(super) fn decide(rules: &[Rule], path: &str, list: bool) -> Option<BTreeSet<String>> {
        // Request paths never carry a leading `/`.
        let path = path.trim_start_matches('/');
        let exact = |p: &str| {
            rules
                .iter()
                .find(|r| r.kind == Kind::Exact && r.pattern == p)
        };
        let trimmed = path.strip_suffix('/');
        exact(path)
            .or_else(|| if list { trimmed.and_then(exact) } else { None })
            .or_else(|| non_exact(rules, path))
            .or_else(|| {
                if list {
                    trimmed.and_then(|t| non_exact(rules, t))
                } else {
                    None
                }
            })
            .map(|r| r.caps.clone())
    }
}

mod property {
    use proptest::prelude::*;

    use super::*;

    const SEGMENTS: [&str; 5] = ["a", "b", "ba", "c", "+"];
    const PATH_SEGMENTS: [&str; 6] = ["a", "b", "ba", "bab", "c", ""];
    const CAPS: [&str; 6] = ["read", "list", "update", "create", "sudo", "deny"];

    fn rule_path() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop::sample::select(&SEGMENTS[..]), 1..5),
            0..4u8,
            prop::bool::weighted(0.1),
        )
            .prop_map(|(segs, star, lead)| {
                let mut p = segs.join("/");
                match star {
                    1 => p.push('*'),
                    2 => p.push_str("/*"),
                    _ => {}
                }
                if lead {
                    p.insert(0, '/');
                }
                p
            })
            .prop_filter("`+*` is a parse error", |p| !p.contains("+*"))
    }

    fn rule() -> impl Strategy<Value = (String, Vec<String>)> {
        (
            rule_path(),
            prop::collection::vec(prop::sample::select(&CAPS[..]), 1..4),
        )
            .prop_map(|(p, caps)| (p, caps.into_iter().map(str::to_string).collect()))
    }

    fn request_path() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop::sample::select(&PATH_SEGMENTS[..]), 1..6),
            prop::bool::ANY,
        )
            .prop_map(|(segs, slash)| {
                let mut p = segs.join("/");
                if slash {
                    p.push('/');
                }
                p
            })
    }

    fn render(rules: &[(String, Vec<String>)]) -> String {
        rules
            .iter()
            .map(|(p, caps)| {
                let caps: Vec<String> = caps.iter().map(|c| format!("{c:?}")).collect();
                format!(
                    "path {p:?} {{\n  capabilities = [{}]\n}}\n",
                    caps.join(", ")
                )
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn acl_matches_the_reference_model(
            policies in prop::collection::vec(prop::collection::vec(rule(), 1..7), 1..5),
            paths in prop::collection::vec(request_path(), 1..12),
        ) {
            let parsed: Vec<Arc<Policy>> = policies
                .iter()
                .enumerate()
                .map(|(i, rules)| policy(&format!("p{i}"), &render(rules)))
                .collect();
            let acl = Acl::new(&parsed).unwrap();
            let merged = model::merge(&policies);
            let none = Data::new();
            for path in &paths {
                for (op, cap, list) in [
                    (Operation::Read, "read", false),
                    (Operation::List, "list", true),
                    (Operation::Update, "update", false),
                ] {
                    let want = model::decide(&merged, path, list);
                    let got = acl.allow(op, path, &none, None);
                    let want_caps: Vec<&str> = want
                        .as_ref()
                        .map(|c| c.iter().map(String::as_str).collect())
                        .unwrap_or_default();
                    let mut got_caps: Vec<&str> = got.capabilities.iter().map(Capability::as_str).collect();
                    got_caps.sort_unstable();
                    prop_assert_eq!(&got_caps, &want_caps, "{} {:?}", op, path);
                    let want_allowed = want.as_ref().is_some_and(|c| c.contains(cap));
                    prop_assert_eq!(got.allowed, want_allowed, "{} {:?}", op, path);
                    prop_assert_eq!(
                        got.root_privs,
                        want.as_ref().is_some_and(|c| c.contains("sudo")),
                        "{} {:?}", op, path
                    );
                }
                let want = model::decide(&merged, path, true)
                    .filter(|c| !c.is_empty() && !c.contains("deny"))
                    .map(|c| c.into_iter().collect::<Vec<_>>())
                    .unwrap_or_else(|| vec!["deny".to_string()]);
                prop_assert_eq!(acl.capabilities(path), want, "capabilities {:?}", path);
            }
        }
    }
}
