//! ACL policies through the pipeline: the policy store endpoints, the default policy, create
//! versus update, parameter constraints, sudo paths, capabilities, cache invalidation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{Client, Config, ErrorCode, Operation, Request, Strongroom, data};

async fn setup() -> (Strongroom, Client) {
    let sr = Strongroom::open(Config::dev()).await.unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    (sr, root)
}

async fn token_with(sr: &Strongroom, root: &Client, policies: &[&str]) -> Client {
    let r = root
        .write("auth/token/create", data(json!({"policies": policies})))
        .await
        .unwrap();
    sr.client(r.auth.unwrap().client_token)
}

async fn put_policy(root: &Client, name: &str, text: &str) {
    root.write(
        &format!("sys/policies/acl/{name}"),
        data(json!({"policy": text})),
    )
    .await
    .unwrap();
}

fn denied(r: strongroom::Result<impl std::fmt::Debug>) {
    let e = r.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e:?}");
    assert_eq!(e.message(), "permission denied");
}

#[tokio::test]
async fn policy_store_endpoints() {
    let (_, root) = setup().await;
    assert_eq!(
        root.list("sys/policies/acl").await.unwrap(),
        ["default", "root"]
    );
    put_policy(
        &root,
        "Dev",
        r#"path "secret/*" { capabilities = ["read"] }"#,
    )
    .await;
    let p = root.read("sys/policies/acl/dev").await.unwrap().unwrap();
    assert_eq!(p.get("name").unwrap(), "dev");
    assert_eq!(p.get("version").unwrap(), 1);
    assert!(
        p.get("policy")
            .unwrap()
            .as_str()
            .unwrap()
            .contains("secret/*")
    );
    let legacy = root.read("sys/policy/dev").await.unwrap().unwrap();
    assert!(legacy.get("rules").is_some());
    // The default policy's text is OpenBao's.
    let d = root
        .read("sys/policies/acl/default")
        .await
        .unwrap()
        .unwrap();
    assert!(
        d.get("policy")
            .unwrap()
            .as_str()
            .unwrap()
            .contains("auth/token/lookup-self")
    );

    // cas.
    let e = root
        .write(
            "sys/policies/acl/dev",
            data(json!({"policy": "path \"a\" {capabilities=[\"read\"]}", "cas": 5})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "check-and-set parameter 5 did not match the current version 1"
    );
    let e = root
        .write(
            "sys/policies/acl/dev",
            data(json!({"policy": "path \"a\" {capabilities=[\"read\"]}", "cas": -1})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "check-and-set parameter set to -1 on existing entry"
    );
    let e = root
        .write("sys/policies/acl/x", data(json!({"policy": ""})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "'policy' parameter not supplied or empty");
    // A syntax error changes nothing.
    let e = root
        .write(
            "sys/policies/acl/dev",
            data(json!({"policy": "path \"a\" {"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert_eq!(
        root.read("sys/policies/acl/dev")
            .await
            .unwrap()
            .unwrap()
            .get("version")
            .unwrap(),
        1
    );
    let e = root.delete("sys/policies/acl/default").await.unwrap_err();
    assert_eq!(e.message(), "cannot delete default policy");
    root.delete("sys/policies/acl/dev").await.unwrap();
    assert!(root.read("sys/policies/acl/dev").await.unwrap().is_none());
    root.delete("sys/policies/acl/dev").await.unwrap();
}

#[tokio::test]
async fn default_policy_lets_a_token_look_itself_up_and_nothing_more() {
    let (sr, root) = setup().await;
    let t = token_with(&sr, &root, &["nonexistent"]).await;
    assert!(t.read("auth/token/lookup-self").await.unwrap().is_some());
    denied(t.read("secret/data/x").await);
    denied(t.read("sys/mounts").await);
    denied(t.write("auth/token/create", data(json!({}))).await);
}

#[tokio::test]
async fn create_versus_update_on_kv_v2() {
    let (sr, root) = setup().await;
    put_policy(
        &root,
        "creator",
        r#"path "secret/data/*" { capabilities = ["create", "read"] }"#,
    )
    .await;
    let t = token_with(&sr, &root, &["creator"]).await;
    let kv = t.kv("secret");
    kv.put("new", &data(json!({"a": "1"}))).await.unwrap();
    // The key exists now: a second write is an update, which the policy does not grant.
    denied(kv.put("new", &data(json!({"a": "2"}))).await);
    assert_eq!(
        kv.get("new").await.unwrap().unwrap().data.get_str("a"),
        Some("1")
    );
}

#[tokio::test]
async fn parameter_constraints_apply() {
    let (sr, root) = setup().await;
    root.sys().enable_mount("kv1", "kv", &[]).await.unwrap();
    put_policy(
        &root,
        "params",
        r#"path "kv1/*" {
  capabilities = ["create", "update", "read"]
  allowed_parameters = { "color" = ["red", "blue"], "size" = [] }
  denied_parameters = { "secret" = [] }
}"#,
    )
    .await;
    let t = token_with(&sr, &root, &["params"]).await;
    t.write("kv1/a", data(json!({"color": "red", "size": "9"})))
        .await
        .unwrap();
    denied(t.write("kv1/a", data(json!({"color": "green"}))).await);
    denied(t.write("kv1/a", data(json!({"secret": "x"}))).await);
    denied(t.write("kv1/a", data(json!({"other": "x"}))).await);
    assert_eq!(
        t.read("kv1/a")
            .await
            .unwrap()
            .unwrap()
            .get("color")
            .unwrap(),
        "red"
    );
}

#[tokio::test]
async fn sudo_paths_need_sudo() {
    let (sr, root) = setup().await;
    put_policy(
        &root,
        "ops",
        r#"path "sys/rotate" { capabilities = ["update"] }
path "auth/token/accessors/" { capabilities = ["list"] }"#,
    )
    .await;
    put_policy(
        &root,
        "opsudo",
        r#"path "sys/rotate" { capabilities = ["update", "sudo"] }
path "auth/token/accessors/" { capabilities = ["list", "sudo"] }"#,
    )
    .await;
    let ops = token_with(&sr, &root, &["ops"]).await;
    denied(ops.write("sys/rotate", data(json!({}))).await);
    denied(
        ops.handle(Request::new(Operation::List, "auth/token/accessors"))
            .await,
    );
    let sudo = token_with(&sr, &root, &["opsudo"]).await;
    sudo.write("sys/rotate", data(json!({}))).await.unwrap();
    assert!(!sudo.list("auth/token/accessors").await.unwrap().is_empty());
}

#[tokio::test]
async fn capabilities_endpoints() {
    let (sr, root) = setup().await;
    put_policy(
        &root,
        "p",
        r#"path "secret/data/app/*" { capabilities = ["update", "read", "create"] }"#,
    )
    .await;
    let t = token_with(&sr, &root, &["p"]).await;
    let r = t
        .write(
            "sys/capabilities-self",
            data(json!({"paths": ["secret/data/app/db"]})),
        )
        .await
        .unwrap();
    assert_eq!(
        r.get("capabilities").unwrap(),
        &json!(["create", "read", "update"])
    );
    assert_eq!(
        r.get("secret/data/app/db").unwrap(),
        &json!(["create", "read", "update"])
    );
    let r = t
        .write(
            "sys/capabilities-self",
            data(json!({"paths": ["secret/data/app/db", "other"]})),
        )
        .await
        .unwrap();
    assert!(r.get("capabilities").is_none());
    assert_eq!(r.get("other").unwrap(), &json!(["deny"]));
    let me = t.read("auth/token/lookup-self").await.unwrap().unwrap();
    let acc = me.get("accessor").unwrap().as_str().unwrap().to_string();
    let r = root
        .write(
            "sys/capabilities-accessor",
            data(json!({"accessor": acc, "paths": ["secret/data/app/x"]})),
        )
        .await
        .unwrap();
    assert_eq!(
        r.get("capabilities").unwrap(),
        &json!(["create", "read", "update"])
    );
    let r = root
        .write(
            "sys/capabilities-self",
            data(json!({"paths": ["anything"]})),
        )
        .await
        .unwrap();
    assert_eq!(r.get("capabilities").unwrap(), &json!(["root"]));
    let e = root
        .write(
            "sys/capabilities",
            data(json!({"token": "s.nope", "paths": ["a"]})),
        )
        .await
        .unwrap_err();
    // OpenBao's texts are go-multierror-wrapped.
    assert_eq!(e.message(), "1 error occurred:\n\t* invalid token\n\n");
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let e = root
        .write(
            "sys/capabilities-accessor",
            data(json!({"accessor": "nope", "paths": ["a"]})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), "1 error occurred:\n\t* invalid accessor\n\n");
    let e = root
        .write("sys/capabilities-self", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "paths must be supplied");
}

#[tokio::test]
async fn a_policy_change_takes_effect_at_once() {
    let (sr, root) = setup().await;
    put_policy(
        &root,
        "p",
        r#"path "secret/data/*" { capabilities = ["read"] }"#,
    )
    .await;
    let t = token_with(&sr, &root, &["p"]).await;
    root.kv("secret")
        .put("x", &data(json!({"v": "1"})))
        .await
        .unwrap();
    assert!(t.kv("secret").get("x").await.unwrap().is_some());
    put_policy(
        &root,
        "p",
        r#"path "secret/data/*" { capabilities = ["deny"] }"#,
    )
    .await;
    denied(t.kv("secret").get("x").await);
    root.delete("sys/policies/acl/p").await.unwrap();
    denied(t.kv("secret").get("x").await);
}

#[tokio::test]
async fn typed_policy_and_capability_api() {
    let (sr, root) = setup().await;
    let sys = root.sys();
    sys.write_policy(
        "app",
        r#"path "secret/data/app/*" { capabilities = ["read", "list"] }"#,
    )
    .await
    .unwrap();
    assert!(
        sys.read_policy("app")
            .await
            .unwrap()
            .unwrap()
            .contains("secret/data/app/*")
    );
    assert_eq!(
        sys.list_policies().await.unwrap(),
        vec!["app", "default", "root"]
    );
    let e = sys.write_policy("bad", "path {").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(sys.read_policy("bad").await.unwrap().is_none());
    let auth = root
        .token()
        .create(&strongroom::TokenRequest {
            policies: vec!["app".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let t = sr.client(&auth.client_token);
    assert_eq!(
        t.sys()
            .capabilities_self("secret/data/app/x")
            .await
            .unwrap(),
        vec!["list", "read"]
    );
    assert_eq!(
        sys.capabilities(auth.client_token.expose_secret(), "secret/data/other")
            .await
            .unwrap(),
        vec!["deny"]
    );
    assert_eq!(
        t.token().lookup_self().await.unwrap().policies,
        vec!["app", "default"]
    );
    sys.delete_policy("app").await.unwrap();
    assert_eq!(
        t.sys()
            .capabilities_self("secret/data/app/x")
            .await
            .unwrap(),
        vec!["deny"]
    );
}

/// `sys/internal/ui/mounts/:path` (read by the CLI before every `kv` command) answers any
/// token with some access inside the mount, as OpenBao's `hasMountAccess` does; others get
/// OpenBao's preflight text.
#[tokio::test]
async fn ui_mounts_answers_tokens_with_access_inside_the_mount() {
    let (sr, root) = setup().await;
    root.write(
        "sys/mounts/team-kv",
        data(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await
    .unwrap();
    put_policy(
        &root,
        "deep",
        r#"path "team-kv/data/app/*" { capabilities = ["read"] }"#,
    )
    .await;
    put_policy(
        &root,
        "seg",
        r#"path "team-kv/+/cfg" { capabilities = ["list"] }"#,
    )
    .await;
    put_policy(
        &root,
        "denied",
        r#"path "team-kv/*" { capabilities = ["deny"] }"#,
    )
    .await;
    for (policies, ok) in [
        (&["deep"][..], true),
        (&["seg"][..], true),
        (&["denied"][..], false),
        (&["default"][..], false),
    ] {
        let t = token_with(&sr, &root, policies).await;
        for path in ["team-kv/app/x", "team-kv"] {
            let r = t.read(&format!("sys/internal/ui/mounts/{path}")).await;
            if ok {
                let r = r.unwrap().unwrap().data.unwrap();
                assert_eq!(r["path"], "team-kv/", "{policies:?}");
                assert_eq!(r["options"]["version"], "2");
            } else {
                let e = r.unwrap_err();
                assert_eq!(e.code(), ErrorCode::PermissionDenied, "{policies:?}");
                let want = format!("{}/", path.trim_end_matches('/'));
                assert_eq!(
                    e.message(),
                    format!(
                        "preflight capability check returned 403, please ensure client's policies grant access to path \"{want}\""
                    )
                );
            }
        }
        // An unknown mount is refused the same way, so mounts cannot be probed.
        let e = t.read("sys/internal/ui/mounts/nope/x").await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied);
    }
    assert_eq!(
        root.read("sys/internal/ui/mounts/team-kv/a")
            .await
            .unwrap()
            .unwrap()
            .data
            .unwrap()["type"],
        "kv"
    );
}

/// Issue #23 item 6: policy- and rule-level expiry are judged on the engine's clock at every
/// use, as OpenBao builds the ACL per request, even after the ACL has been cached. The clock
/// starts in 2001, so the wall clock would call the rule expired from the start and
/// never-expired once the engine's clock passes it.
#[tokio::test]
async fn policy_and_rule_expiry_end_grants_on_the_engine_clock() {
    let t0 = time::OffsetDateTime::from_unix_timestamp(978_307_200).unwrap();
    let clock = strongroom::VirtualClock::at(t0);
    let sr = Strongroom::open(Config::dev().clock(std::sync::Arc::new(clock.clone())))
        .await
        .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.write("sys/mounts/transit", data(json!({"type": "transit"})))
        .await
        .unwrap();
    root.transit("transit")
        .create_key("k", &strongroom::KeyConfig::default())
        .await
        .unwrap();
    root.kv("secret")
        .put("a", &data(json!({"v": "1"})))
        .await
        .unwrap();
    // Policy-level: a 5-minute TTL.
    root.write(
        "sys/policies/acl/short",
        data(json!({
            "policy": r#"path "secret/data/*" { capabilities = ["read"] }
                         path "transit/encrypt/k" { capabilities = ["update"] }"#,
            "ttl": "5m",
        })),
    )
    .await
    .unwrap();
    // Rule-level: the rules end at t0 + 10 minutes; the policy itself does not expire.
    put_policy(
        &root,
        "rule",
        r#"path "secret/data/*" {
             capabilities = ["read"]
             expiration = "2001-01-01T00:10:00Z"
           }
           path "transit/encrypt/k" {
             capabilities = ["update"]
             expiration = "2001-01-01T00:10:00Z"
           }"#,
    )
    .await;
    let short = token_with(&sr, &root, &["short"]).await;
    let rule = token_with(&sr, &root, &["rule"]).await;
    let (short_t, rule_t) = (short.transit("transit"), rule.transit("transit"));
    for (c, t) in [(&short, &short_t), (&rule, &rule_t)] {
        // Used once, so the ACL is cached and the transit decision remembered.
        assert!(c.kv("secret").get("a").await.unwrap().is_some());
        t.encrypt("k", b"x").await.unwrap();
        assert!(c.read("secret/data/a").await.unwrap().is_some());
    }
    clock.advance(std::time::Duration::from_secs(301));
    denied(short.read("secret/data/a").await);
    denied(short.kv("secret").get("a").await);
    denied(short_t.encrypt("k", b"x").await);
    // The rule-level grant still holds until its own expiration.
    assert!(rule.read("secret/data/a").await.unwrap().is_some());
    rule_t.encrypt("k", b"x").await.unwrap();
    clock.advance(std::time::Duration::from_secs(300));
    denied(rule.read("secret/data/a").await);
    denied(rule.kv("secret").get("a").await);
    denied(rule_t.encrypt("k", b"x").await);
    // The token itself is still fine (its default policy still grants lookup-self).
    rule.read("auth/token/lookup-self").await.unwrap().unwrap();
}

/// Issue #23 item 7b: OpenBao checks the ACL before routing, so a limited token asking for a
/// path no mount serves gets 403 like any path it may not use (no mount enumeration); root,
/// or a token whose policy covers the path, learns "no handler for route".
#[tokio::test]
async fn unrouted_paths_are_denied_before_they_are_not_found() {
    let (sr, root) = setup().await;
    put_policy(
        &root,
        "nm",
        r#"path "granted/*" { capabilities = ["read"] }"#,
    )
    .await;
    let t = token_with(&sr, &root, &["nm"]).await;
    for path in ["nomount/x", "auth/nosuch/login", "transit/keys/k"] {
        denied(t.read(path).await);
        denied(t.write(path, data(json!({"a": 1}))).await);
        denied(t.list(path).await);
        let e = root.read(path).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnsupportedPath, "{path}");
        assert_eq!(
            e.message(),
            format!("no handler for route \"{path}\". route entry not found.")
        );
    }
    let e = t.read("granted/x").await.unwrap_err();
    assert_eq!(
        e.message(),
        "no handler for route \"granted/x\". route entry not found."
    );
    // Inside `sys/` and the token store, an unknown path is the backend's answer.
    for path in ["sys/nosuchthing", "auth/token/nosuch"] {
        denied(t.read(path).await);
        let e = root.read(path).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnsupportedPath, "{path}");
        assert_eq!(e.message(), "1 error occurred:\n\t* unsupported path\n\n");
    }
}

/// Issue #23 item 7c: `sys/policies/acl` and `sys/policies/password` serve only LIST, as in
/// OpenBao: a GET is 405 (for root too), and `read` alone does not list; the legacy
/// `sys/policy` lists on a GET with `read`, as OpenBao's does.
#[tokio::test]
async fn policy_lists_need_list() {
    let (sr, root) = setup().await;
    root.write(
        "sys/policies/password/pw",
        data(json!({"policy": "length = 20\nrule \"charset\" { charset = \"abc\" }"})),
    )
    .await
    .unwrap();
    let lists = ["sys/policies/acl", "sys/policies/password", "sys/policy"];
    let grant = |cap: &str| {
        lists
            .iter()
            .map(|p| format!("path \"{p}\" {{ capabilities = [\"{cap}\"] }}\npath \"{p}/\" {{ capabilities = [\"{cap}\"] }}\n"))
            .collect::<String>()
    };
    put_policy(&root, "r", &grant("read")).await;
    put_policy(&root, "l", &grant("list")).await;
    let r = token_with(&sr, &root, &["r"]).await;
    let l = token_with(&sr, &root, &["l"]).await;
    for p in ["sys/policies/acl", "sys/policies/password"] {
        for c in [&root, &r] {
            let e = c.read(p).await.unwrap_err();
            assert_eq!(e.code(), ErrorCode::UnsupportedOperation, "{p}");
            assert_eq!(
                e.message(),
                "1 error occurred:\n\t* unsupported operation\n\n"
            );
        }
        denied(r.list(p).await);
        denied(l.read(p).await);
        assert!(!l.list(p).await.unwrap().is_empty(), "{p}");
        assert!(!root.list(p).await.unwrap().is_empty(), "{p}");
    }
    let keys = r.read("sys/policy").await.unwrap().unwrap();
    assert!(keys.get("policies").unwrap().as_array().unwrap().len() >= 3);
    denied(r.list("sys/policy").await);
    assert!(
        l.list("sys/policy")
            .await
            .unwrap()
            .contains(&"l".to_string())
    );
    denied(l.read("sys/policy").await);
}

/// `sys/ha-status` (`bao operator members`) as OpenBao judges it: `read` on the path is
/// enough (no sudo), the default policy does not grant it, other operations are refused.
#[tokio::test]
async fn ha_status_needs_read_on_its_path() {
    let (sr, root) = setup().await;
    sr.advertise("http://127.0.0.1:8200", "");
    put_policy(
        &root,
        "members",
        r#"path "sys/ha-status" { capabilities = ["read"] }"#,
    )
    .await;
    let reader = token_with(&sr, &root, &["members"]).await;
    let other = token_with(&sr, &root, &["default"]).await;

    let r = reader.read("sys/ha-status").await.unwrap().unwrap();
    let d = r.data.unwrap();
    let nodes = d["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{d:?}");
    assert_eq!(nodes[0]["api_address"], "http://127.0.0.1:8200");
    assert_eq!(nodes[0]["active_node"], true);
    assert_eq!(nodes[0]["last_echo"], serde_json::Value::Null);
    assert_eq!(nodes[0]["version"], "2.7.2");
    denied(other.read("sys/ha-status").await);
    let e = root
        .write("sys/ha-status", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedOperation, "{e:?}");
}
