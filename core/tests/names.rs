//! The ACL judges the name the engine acts on (issue: a deny rule bypassed by the case or
//! spacing of a name). For every endpoint that takes a name, a limited token allowed on
//! `<prefix>*` but denied `<prefix><name>` and `<prefix><name>/*` sends the name in other
//! case and with leading or trailing spaces. Whatever the answer, the protected object must
//! be unchanged; and the answer is OpenBao 2.7's (checked side by side with `bao server -dev`,
//! and replayed over HTTP against both by tests/python/test_security_names.py):
//! - lowercased names (ACL policies, userpass users, AppRole and Kubernetes roles) are judged
//!   lowercased: permission denied;
//! - a name with spaces where the engine takes only `GenericNameRegex` names is no path:
//!   404 `unsupported path`; ACL policy names are trimmed, so they are denied too;
//! - case-sensitive names (transit keys, database connections and roles, token roles) and
//!   password policy names (taken as sent) name another object, which the caller may create.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use serde_json::{Value, json};
use strongroom::{Client, Config, ErrorCode, Strongroom, data};

/// How an endpoint treats its names.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Trimmed and lowercased (ACL policies).
    TrimLower,
    /// `GenericNameRegex`, lowercased (userpass, AppRole, Kubernetes).
    Lower,
    /// `GenericNameRegex`, case-sensitive (transit, database, token roles).
    Exact,
    /// Taken as sent (password policies).
    Raw,
}

struct Case {
    /// The path up to the name (`transit/keys/`).
    prefix: &'static str,
    /// The protected object's canonical name.
    name: &'static str,
    /// What follows the name in the probe (`/password`), or "".
    suffix: &'static str,
    kind: Kind,
    /// The probe's write body.
    body: Value,
    /// The code a case variant gets when the engine takes it as another object (`None`:
    /// success).
    other_object: Option<ErrorCode>,
}

const PASSWORD_POLICY: &str = "length = 20\nrule \"charset\" { charset = \"abcdefghij\" }";
const GRANT_ALL: &str =
    r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;

fn cases() -> Vec<Case> {
    let case = |prefix, name, suffix, kind, body: Value| Case {
        prefix,
        name,
        suffix,
        kind,
        body,
        other_object: None,
    };
    vec![
        case(
            "sys/policies/acl/",
            "st-protected",
            "",
            Kind::TrimLower,
            json!({"policy": GRANT_ALL}),
        ),
        case(
            "sys/policy/",
            "st-protected",
            "",
            Kind::TrimLower,
            json!({"policy": GRANT_ALL}),
        ),
        case(
            "sys/policies/password/",
            "prot",
            "",
            Kind::Raw,
            json!({"policy": PASSWORD_POLICY}),
        ),
        case(
            "auth/token/roles/",
            "st-admin-role",
            "",
            Kind::Exact,
            json!({"allowed_policies": "root"}),
        ),
        Case {
            other_object: Some(ErrorCode::InvalidInput), // unknown role ST-ADMIN-ROLE
            ..case(
                "auth/token/create/",
                "st-admin-role",
                "",
                Kind::Exact,
                json!({}),
            )
        },
        case(
            "auth/userpass/users/",
            "admin",
            "",
            Kind::Lower,
            json!({"password": "hijacked", "token_policies": "root"}),
        ),
        case(
            "auth/userpass/users/",
            "admin",
            "/password",
            Kind::Lower,
            json!({"password": "hijacked"}),
        ),
        case(
            "auth/userpass/users/",
            "admin",
            "/policies",
            Kind::Lower,
            json!({"token_policies": "root"}),
        ),
        case(
            "auth/approle/role/",
            "st-admin",
            "",
            Kind::Lower,
            json!({"token_policies": "root"}),
        ),
        case(
            "auth/approle/role/",
            "st-admin",
            "/secret-id",
            Kind::Lower,
            json!({}),
        ),
        case(
            "auth/kubernetes/role/",
            "prot",
            "",
            Kind::Lower,
            json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "*", "token_policies": "root"}),
        ),
        case(
            "transit/keys/",
            "prot",
            "",
            Kind::Exact,
            json!({"exportable": true}),
        ),
        case(
            "database/config/",
            "prot",
            "",
            Kind::Exact,
            json!({"plugin_name": "postgresql-database-plugin", "connection_url": "postgresql://attacker@127.0.0.1:1/x", "verify_connection": false, "allowed_roles": "*"}),
        ),
        case(
            "database/roles/",
            "prot",
            "",
            Kind::Exact,
            json!({"db_name": "prot", "creation_statements": "CREATE ROLE \"{{name}}\" SUPERUSER"}),
        ),
    ]
}

/// Everything the probes could change, read by root: the protected objects, and whether
/// `admin` still logs in with its password.
async fn snapshot(sr: &Strongroom, root: &Client) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "sys/policies/acl/st-protected",
        "sys/policies/password/prot",
        "auth/token/roles/st-admin-role",
        "auth/userpass/users/admin",
        "auth/approle/role/st-admin",
        "auth/kubernetes/role/prot",
        "transit/keys/prot",
        "database/config/prot",
        "database/roles/prot",
    ] {
        let r = root.read(path).await.unwrap().unwrap();
        let mut d = serde_json::to_value(&r.data).unwrap();
        // Reading a transit key reports its age, which is no change.
        if let Some(o) = d.as_object_mut() {
            o.remove("modified");
        }
        out.insert(path.into(), d);
    }
    let ids = root
        .list("auth/approle/role/st-admin/secret-id")
        .await
        .unwrap_or_default();
    out.insert("secret-ids".into(), json!(ids));
    let login = sr
        .client("")
        .write(
            "auth/userpass/login/admin",
            data(json!({"password": "right"})),
        )
        .await;
    out.insert("admin-login".into(), json!(login.is_ok()));
    Value::Object(out)
}

async fn setup() -> (Strongroom, Client) {
    let sr = Strongroom::open(Config::dev()).await.unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    for (kind, path) in [("transit", "transit"), ("database", "database")] {
        root.sys().enable_mount(path, kind, &[]).await.unwrap();
    }
    for method in ["userpass", "approle", "kubernetes"] {
        root.write(&format!("sys/auth/{method}"), data(json!({"type": method})))
            .await
            .unwrap();
    }
    let objects = [
        (
            "sys/policies/acl/st-protected",
            json!({"policy": r#"path "x" { capabilities = ["read"] }"#}),
        ),
        (
            "sys/policies/password/prot",
            json!({"policy": PASSWORD_POLICY}),
        ),
        (
            "auth/token/roles/st-admin-role",
            json!({"allowed_policies": "st-protected"}),
        ),
        ("auth/userpass/users/admin", json!({"password": "right"})),
        (
            "auth/approle/role/st-admin",
            json!({"token_policies": "st-protected"}),
        ),
        (
            "auth/kubernetes/role/prot",
            json!({"bound_service_account_names": "x", "bound_service_account_namespaces": "y"}),
        ),
        ("transit/keys/prot", json!({})),
        (
            "database/config/prot",
            json!({"plugin_name": "postgresql-database-plugin", "connection_url": "postgresql://owner@127.0.0.1:1/x", "verify_connection": false, "allowed_roles": "prot"}),
        ),
        (
            "database/roles/prot",
            json!({"db_name": "prot", "creation_statements": "CREATE ROLE \"{{name}}\""}),
        ),
    ];
    for (path, body) in objects {
        root.write(path, data(body)).await.unwrap();
    }
    (sr, root)
}

/// The variants of `name` an attacker sends, and whether each differs only in case.
fn variants(name: &str) -> Vec<(String, bool)> {
    let mut first_upper = name.to_string();
    first_upper[..1].make_ascii_uppercase();
    vec![
        (name.to_uppercase(), true),
        (first_upper, true),
        (format!(" {name}"), false),
        (format!("{name} "), false),
        (format!(" {} ", name.to_uppercase()), false),
    ]
}

#[tokio::test]
async fn deny_rules_hold_for_every_spelling_of_a_name() {
    let (sr, root) = setup().await;
    let before = snapshot(&sr, &root).await;
    let mut checked = 0;
    for (i, c) in cases().iter().enumerate() {
        let policy = format!(
            r#"
path "{p}*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}
path "{p}{n}" {{ capabilities = ["deny"] }}
path "{p}{n}/*" {{ capabilities = ["deny"] }}
"#,
            p = c.prefix,
            n = c.name
        );
        root.write(
            &format!("sys/policies/acl/limited-{i}"),
            data(json!({ "policy": policy })),
        )
        .await
        .unwrap();
        let token = root
            .write(
                "auth/token/create",
                data(json!({"policies": [format!("limited-{i}")]})),
            )
            .await
            .unwrap()
            .auth
            .unwrap()
            .client_token;
        let limited = sr.client(token);

        // The canonical name itself is denied: the rule works.
        let path = format!("{}{}{}", c.prefix, c.name, c.suffix);
        let e = limited
            .write(&path, data(c.body.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{path}: {e:?}");

        for (name, case_only) in variants(c.name) {
            let path = format!("{}{name}{}", c.prefix, c.suffix);
            let got = limited.write(&path, data(c.body.clone())).await;
            let want = match (c.kind, case_only) {
                (Kind::TrimLower, _) | (Kind::Lower, true) => Some(ErrorCode::PermissionDenied),
                (Kind::Lower | Kind::Exact, false) => Some(ErrorCode::UnsupportedPath),
                (Kind::Exact, true) | (Kind::Raw, _) => c.other_object,
            };
            match (&got, want) {
                (Ok(_), None) => {}
                (Err(e), Some(code)) if e.code() == code => {}
                _ => panic!("{path:?}: wanted {want:?}, got {got:?}"),
            }
            assert_eq!(
                snapshot(&sr, &root).await,
                before,
                "{path:?} changed the protected object"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, cases().len() * 5);
}

/// Token roles are case-sensitive, as OpenBao's: `ST-ADMIN-ROLE` is not `st-admin-role`, so
/// minting a token "through" it needs a role of that exact name.
#[tokio::test]
async fn token_roles_are_case_sensitive() {
    let (_sr, root) = setup().await;
    let e = root
        .write("auth/token/create/ST-ADMIN-ROLE", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert_eq!(e.message(), "unknown role ST-ADMIN-ROLE");
    root.write(
        "auth/token/roles/ST-ADMIN-ROLE",
        data(json!({"allowed_policies": "default"})),
    )
    .await
    .unwrap();
    let mut roles = root.list("auth/token/roles").await.unwrap();
    roles.sort();
    assert_eq!(roles, ["ST-ADMIN-ROLE", "st-admin-role"]);
    let r = root
        .read("auth/token/roles/ST-ADMIN-ROLE")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.get("name").unwrap(), "ST-ADMIN-ROLE");
    assert_eq!(r.get("allowed_policies").unwrap(), &json!(["default"]));
}

/// Names outside `GenericNameRegex` name nothing: a typed call and `handle` agree (the typed
/// transit path would otherwise create and use a key called `prot `).
#[tokio::test]
async fn names_outside_the_engine_pattern_are_no_path() {
    let (_sr, root) = setup().await;
    for name in ["prot ", " prot", "a@b", "-ab", "aéb", "a$b"] {
        let e = root
            .transit("transit")
            .encrypt(name, b"x")
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnsupportedPath, "{name:?}: {e:?}");
        let e = root
            .write(&format!("transit/keys/{name}"), data(json!({})))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnsupportedPath, "{name:?}: {e:?}");
    }
    let keys = root.list("transit/keys").await.unwrap();
    assert_eq!(keys, ["prot"]);
    // Case-sensitive names and the framework's other characters are names.
    for name in ["PROT", "a.b", "A_b-c"] {
        root.transit("transit").encrypt(name, b"x").await.unwrap();
    }
}

/// A titlecase letter is not uppercase, yet lowercases: `ǅ` (U+01C5) becomes `ǆ` (U+01C6).
/// The policy store lowercases names, so the ACL must judge `ǆx` when `ǅx` is sent.
#[tokio::test]
async fn titlecase_letters_do_not_slip_past_a_deny_rule() {
    let (sr, root) = setup().await;
    root.write(
        "sys/policies/acl/\u{1C6}x",
        data(json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"})),
    )
    .await
    .unwrap();
    root.write(
        "sys/policies/acl/limited-title",
        data(json!({"policy": r#"
path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "sys/policies/acl/ǆx" { capabilities = ["deny"] }
"#})),
    )
    .await
    .unwrap();
    let token = root
        .write(
            "auth/token/create",
            data(json!({"policies": ["limited-title"]})),
        )
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    let limited = sr.client(token);
    for sent in ["\u{1C5}x", "\u{1C4}x", " \u{1C5}x"] {
        let e = limited
            .write(
                &format!("sys/policies/acl/{sent}"),
                data(json!({"policy": GRANT_ALL})),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{sent:?}: {e:?}");
    }
    let kept = root
        .handle(strongroom::Request::read("sys/policies/acl/\u{1C6}x"))
        .await
        .unwrap();
    assert!(
        kept.data.unwrap()["policy"]
            .as_str()
            .unwrap()
            .contains("secret/*"),
        "the protected policy is unchanged"
    );
}
