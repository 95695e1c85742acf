//! The token store through the pipeline (§2 of the reference): formats, create rules, TTLs,
//! renew, revoke trees, roles, batch tokens, num_uses. Time moves with a virtual clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use strongroom::{Client, Config, ErrorCode, Request, Response, Strongroom, VirtualClock, data};

async fn setup() -> (Strongroom, Client, VirtualClock) {
    let clock = VirtualClock::new();
    let sr = Strongroom::open(Config::dev().clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    (sr, root, clock)
}

async fn create(c: &Client, body: Value) -> Response {
    c.write("auth/token/create", data(body)).await.unwrap()
}

fn token_of(r: &Response) -> String {
    r.auth
        .as_ref()
        .unwrap()
        .client_token
        .expose_secret()
        .to_string()
}

#[tokio::test]
async fn create_and_lookup_have_openbao_shapes() {
    let (sr, root, _) = setup().await;
    let r = create(
        &root,
        json!({"policies": ["p1"], "meta": {"a": "b"}, "display_name": "My App!"}),
    )
    .await;
    let auth = r.auth.clone().unwrap();
    let id = auth.client_token.expose_secret();
    assert!(id.starts_with("s.") && id.len() == 26);
    assert_eq!(auth.accessor.len(), 24);
    assert_eq!(auth.policies, vec!["default", "p1"]);
    assert_eq!(auth.lease_duration, 2_764_800);
    assert!(auth.renewable && !auth.orphan);
    assert_eq!(auth.token_type, "service");
    assert_eq!(r.warnings, vec!["Policy \"p1\" does not exist"]);

    let me = sr.client(&auth.client_token);
    let l = me.read("auth/token/lookup-self").await.unwrap().unwrap();
    assert_eq!(l.get("display_name").unwrap(), "token-My-App");
    assert_eq!(l.get("id").unwrap(), auth.client_token.expose_secret());
    assert_eq!(l.get("meta").unwrap(), &json!({"a": "b"}));
    assert_eq!(l.get("path").unwrap(), "auth/token/create");
    assert_eq!(l.get("ttl").unwrap(), 2_764_800);
    assert_eq!(l.get("type").unwrap(), "service");
    assert!(l.get("expire_time").unwrap().is_string());

    let la = root
        .write(
            "auth/token/lookup-accessor",
            data(json!({"accessor": auth.accessor})),
        )
        .await
        .unwrap();
    assert_eq!(la.get("id").unwrap(), "");
    let e = root
        .write(
            "auth/token/lookup-accessor",
            data(json!({"accessor": "nope"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), "1 error occurred:\n\t* invalid accessor\n\n");
    let e = root
        .write(
            "auth/token/lookup",
            data(json!({"token": "s.unknownunknownunknown00"})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (ErrorCode::PermissionDenied, "bad token")
    );

    // The root token never expires and cannot be renewed.
    let rl = root.read("auth/token/lookup-self").await.unwrap().unwrap();
    assert_eq!(rl.get("expire_time").unwrap(), &Value::Null);
    assert_eq!(rl.get("ttl").unwrap(), 0);
    let e = root
        .write("auth/token/renew-self", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "lease is not renewable");
}

#[tokio::test]
async fn child_policy_rules_and_sudo_only_options() {
    let (sr, root, _) = setup().await;
    let parent = token_of(&create(&root, json!({"policies": ["p1", "p2"]})).await);
    let p = sr.client(&parent);
    // The non-root parent's token can create tokens only until the ACL lands... it has no
    // policy granting auth/token/create, so it is denied like any other path.
    let e = p
        .write("auth/token/create", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    let e = root
        .write("auth/token/create", data(json!({"id": "s.custom"})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "custom token ID cannot have the 's.' prefix");
    let r = create(&root, json!({"id": "mytoken"})).await;
    assert_eq!(token_of(&r), "mytoken");
    assert!(
        r.warnings[0]
            .starts_with("Supplying a custom ID for the token uses the weaker SHA1 hashing")
    );
    let e = root
        .write("auth/token/create", data(json!({"id": "mytoken"})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    // No policies given: inherit the parent's.
    let r = create(&root, json!({})).await;
    assert_eq!(r.auth.unwrap().policies, vec!["root"]);
    let r = create(&root, json!({"policies": ["a"], "no_default_policy": true})).await;
    assert_eq!(r.auth.unwrap().policies, vec!["a"]);
}

#[tokio::test]
async fn ttl_defaults_from_token_mount_tuning_and_caps_with_warning() {
    let (_, root, _) = setup().await;
    root.write(
        "sys/auth/token/tune",
        data(json!({"default_lease_ttl": "2h", "max_lease_ttl": "4h"})),
    )
    .await
    .unwrap();
    let r = create(&root, json!({"policies": ["p"]})).await;
    assert_eq!(r.auth.unwrap().lease_duration, 7200);
    let r = create(&root, json!({"policies": ["p"], "ttl": "10h"})).await;
    assert_eq!(r.auth.as_ref().unwrap().lease_duration, 14400);
    assert!(r.warnings.contains(
        &"TTL of \"10h\" exceeded the effective max_ttl of \"4h\"; TTL value is capped accordingly".to_string()
    ));
    let tune = root.read("sys/auth/token/tune").await.unwrap().unwrap();
    assert_eq!(tune.get("max_lease_ttl").unwrap(), 14400);
}

#[tokio::test]
async fn renew_counts_the_max_from_issue_time() {
    let (sr, root, clock) = setup().await;
    let t = token_of(
        &create(
            &root,
            json!({"ttl": "5m", "explicit_max_ttl": "15m", "policies": ["p"]}),
        )
        .await,
    );
    let me = sr.client(&t);
    clock.advance(Duration::from_secs(60));
    // {} renews with the original TTL.
    let r = root
        .write("auth/token/renew", data(json!({"token": t})))
        .await
        .unwrap();
    assert_eq!(r.auth.unwrap().lease_duration, 300);
    // The explicit max is measured from issue time: 15m - 1m left.
    let r = root
        .write(
            "auth/token/renew",
            data(json!({"token": t, "increment": "1h"})),
        )
        .await
        .unwrap();
    assert_eq!(r.auth.unwrap().lease_duration, 840);
    assert_eq!(
        r.warnings[0],
        "TTL of \"1h\" exceeded the effective max_ttl of \"14m\"; TTL value is capped accordingly"
    );
    let l = root
        .write("auth/token/lookup", data(json!({"token": t})))
        .await
        .unwrap();
    assert!(l.get("last_renewal_time").is_some());
    // Past the explicit max the token is gone.
    clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        me.read("auth/token/lookup-self").await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    let e = root
        .write("auth/token/renew", data(json!({"token": t})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "token not found");
}

#[tokio::test]
async fn a_child_outlives_its_parents_ttl_but_dies_with_tree_revocation() {
    let (sr, root, clock) = setup().await;
    let parent = token_of(&create(&root, json!({"ttl": "5m"})).await);
    // Root-policy parent so it may create children in this pre-ACL world.
    let child = token_of(
        &sr.client(&parent)
            .write("auth/token/create", data(json!({"ttl": "20m"})))
            .await
            .unwrap(),
    );
    let l = root
        .write("auth/token/lookup", data(json!({"token": child})))
        .await
        .unwrap();
    assert_eq!(
        l.get("ttl").unwrap(),
        1200,
        "a child's TTL is not capped by its parent's"
    );
    let grandchild = token_of(
        &sr.client(&child)
            .write("auth/token/create", data(json!({"ttl": "20m"})))
            .await
            .unwrap(),
    );
    // revoke-orphan on the child: the grandchild survives, now an orphan.
    root.write("auth/token/revoke-orphan", data(json!({"token": child})))
        .await
        .unwrap();
    let l = root
        .write("auth/token/lookup", data(json!({"token": grandchild})))
        .await
        .unwrap();
    assert_eq!(l.get("orphan").unwrap(), true);
    let e = root
        .write("auth/token/revoke-orphan", data(json!({"token": child})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "token to revoke not found");
    // A new tree, revoked from the top.
    // An expiring root token cannot mint a non-expiring one.
    let e = sr
        .client(&parent)
        .write("auth/token/create", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "expiring root tokens cannot create non-expiring root tokens"
    );
    let c2 = token_of(
        &sr.client(&parent)
            .write("auth/token/create", data(json!({"ttl": "1h"})))
            .await
            .unwrap(),
    );
    let c3 = token_of(
        &sr.client(&c2)
            .write("auth/token/create", data(json!({"ttl": "1h"})))
            .await
            .unwrap(),
    );
    root.write("auth/token/revoke", data(json!({"token": parent})))
        .await
        .unwrap();
    for t in [&parent, &c2, &c3] {
        let e = sr
            .client(t)
            .read("auth/token/lookup-self")
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied);
    }
    // Revoking an unknown token is fine; revoke-accessor of an unknown accessor warns.
    root.write(
        "auth/token/revoke",
        data(json!({"token": "s.AAAAAAAAAAAAAAAAAAAAAAAA"})),
    )
    .await
    .unwrap();
    let r = root
        .write(
            "auth/token/revoke-accessor",
            data(json!({"accessor": "nope"})),
        )
        .await
        .unwrap();
    assert_eq!(r.warnings, vec!["No token found with this accessor"]);
    let _ = clock;
}

#[tokio::test]
async fn num_uses_counts_down_and_the_last_use_revokes() {
    let (sr, root, _) = setup().await;
    let t = token_of(&create(&root, json!({"num_uses": 2})).await);
    let me = sr.client(&t);
    let l = me.read("auth/token/lookup-self").await.unwrap().unwrap();
    assert_eq!(l.get("num_uses").unwrap(), 1);
    let l = me.read("auth/token/lookup-self").await.unwrap().unwrap();
    assert_eq!(
        l.get("num_uses").unwrap(),
        -1,
        "-1 while the last use is in progress"
    );
    assert_eq!(
        me.read("auth/token/lookup-self").await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    let e = me
        .write("auth/token/create", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn batch_tokens_are_encrypted_and_never_stored() {
    let (sr, root, clock) = setup().await;
    let r = create(
        &root,
        json!({"type": "batch", "policies": ["p"], "ttl": "10m"}),
    )
    .await;
    let auth = r.auth.unwrap();
    assert!(auth.client_token.expose_secret().starts_with("b."));
    assert_eq!((auth.accessor.as_str(), auth.renewable), ("", false));
    let me = sr.client(&auth.client_token);
    let l = me.read("auth/token/lookup-self").await.unwrap().unwrap();
    assert_eq!(l.get("type").unwrap(), "batch");
    let e = root
        .write(
            "auth/token/renew",
            data(json!({"token": auth.client_token.expose_secret()})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), "batch tokens cannot be renewed");
    let e = root
        .write(
            "auth/token/revoke",
            data(json!({"token": auth.client_token.expose_secret()})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), "batch tokens cannot be revoked");
    // As OpenBao: an unknown token is a no-op, a missing one an error.
    root.write("auth/token/revoke", data(json!({"token": "b.garbage"})))
        .await
        .unwrap();
    let e = root
        .write("auth/token/revoke", data(json!({"token": ""})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "missing token ID");
    let e = create_err(&root, json!({"type": "batch", "num_uses": 3})).await;
    assert_eq!(e.message(), "batch tokens cannot have \"num_uses\" set");
    // A tampered batch token is just an invalid token.
    let mut bad = auth.client_token.expose_secret().to_string();
    bad.push('A');
    assert_eq!(
        sr.client(&bad)
            .read("auth/token/lookup-self")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::PermissionDenied
    );
    clock.advance(Duration::from_secs(601));
    assert_eq!(
        me.read("auth/token/lookup-self").await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
}

async fn create_err(c: &Client, body: Value) -> strongroom::Error {
    c.write("auth/token/create", data(body)).await.unwrap_err()
}

#[tokio::test]
async fn roles_shape_paths_and_policies() {
    let (_, root, _) = setup().await;
    root.write(
        "auth/token/roles/r1",
        data(json!({"allowed_policies": ["p1"], "orphan": true, "path_suffix": "v1.0"})),
    )
    .await
    .unwrap();
    let role = root.read("auth/token/roles/r1").await.unwrap().unwrap();
    assert_eq!(role.get("allowed_policies").unwrap(), &json!(["p1"]));
    assert_eq!(root.list("auth/token/roles").await.unwrap(), vec!["r1"]);
    let r = root
        .write("auth/token/create/r1", data(json!({})))
        .await
        .unwrap();
    let auth = r.auth.unwrap();
    assert_eq!(auth.policies, vec!["default", "p1"]);
    assert!(auth.orphan);
    let l = root
        .write(
            "auth/token/lookup",
            data(json!({"token": auth.client_token.expose_secret()})),
        )
        .await
        .unwrap();
    assert_eq!(l.get("path").unwrap(), "auth/token/create/r1/v1.0");
    assert_eq!(l.get("role").unwrap(), "r1");
    let e = root
        .write("auth/token/create/r1", data(json!({"policies": ["other"]})))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "token policies ([\"default\" \"other\"]) must be subset of the role's allowed policies ([\"p1\"]) or glob policies ([])"
    );
    let e = root
        .write("auth/token/create/nope", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "unknown role nope");
    let e = root
        .write("auth/token/roles/r2", data(json!({"path_suffix": "v1"})))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .starts_with("given role path suffix contains invalid characters")
    );
    root.delete("auth/token/roles/r1").await.unwrap();
    assert!(root.read("auth/token/roles/r1").await.unwrap().is_none());
}

#[tokio::test]
async fn accessors_list_and_tidy() {
    let (_, root, _) = setup().await;
    let a = create(&root, json!({})).await.auth.unwrap().accessor;
    let keys = root.list("auth/token/accessors").await.unwrap();
    assert!(keys.contains(&a));
    assert_eq!(keys.len(), 2, "the root token and the new one");
    let r = root
        .handle(Request::write("auth/token/tidy", data(json!({}))))
        .await
        .unwrap();
    assert_eq!(r.kind, strongroom::ResponseKind::Accepted);
}

#[tokio::test]
async fn root_stands_alone_in_a_policy_list() {
    let (sr, root, _) = setup().await;
    let r = create(&root, json!({"policies": ["root", "p1"]})).await;
    let auth = r.auth.unwrap();
    assert_eq!(auth.policies, vec!["root"]);
    // And the token works (an ACL over "root" plus others would refuse to compile).
    assert!(
        sr.client(&auth.client_token)
            .read("sys/mounts")
            .await
            .unwrap()
            .is_some()
    );
}

/// A service parent with `ttl`, a transit key `k`, a policy `use` granting kv and transit
/// encrypt, and a non-orphan batch token created by the parent (issue #23 item 2).
async fn batch_under_parent(sr: &Strongroom, root: &Client, ttl: &str) -> (String, String) {
    root.write("sys/mounts/transit", data(json!({"type": "transit"})))
        .await
        .unwrap();
    root.transit("transit")
        .create_key("k", &strongroom::KeyConfig::default())
        .await
        .unwrap();
    root.kv("secret")
        .put("app", &data(json!({"v": "1"})))
        .await
        .unwrap();
    root.sys()
        .write_policy(
            "use",
            r#"path "secret/data/*" { capabilities = ["read"] }
               path "transit/encrypt/k" { capabilities = ["update"] }
               path "auth/token/create" { capabilities = ["update"] }"#,
        )
        .await
        .unwrap();
    let parent = token_of(&create(root, json!({"policies": ["use"], "ttl": ttl})).await);
    let batch = token_of(
        &sr.client(&parent)
            .write(
                "auth/token/create",
                data(json!({"type": "batch", "policies": ["use"]})),
            )
            .await
            .unwrap(),
    );
    assert!(batch.starts_with("b."));
    (parent, batch)
}

/// Every way the batch token is used is refused: the pipeline, typed kv and typed transit.
async fn assert_batch_refused(sr: &Strongroom, root: &Client, batch: &str) {
    let me = sr.client(batch);
    let e = me.read("auth/token/lookup-self").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert_eq!(e.message(), "permission denied");
    let e = me.kv("secret").get("app").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    let e = me.transit("transit").encrypt("k", b"x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    // Root's lookup answers as for any invalid token (OpenBao: 403 `bad token`), and so
    // does revoke: a no-op, not `batch tokens cannot be revoked`.
    let e = root
        .write("auth/token/lookup", data(json!({"token": batch})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "bad token");
    let r = root
        .write("auth/token/revoke", data(json!({"token": batch})))
        .await
        .unwrap();
    assert!(r.is_empty());
}

#[tokio::test]
async fn a_batch_token_dies_when_its_parent_is_revoked() {
    let (sr, root, _) = setup().await;
    let (parent, batch) = batch_under_parent(&sr, &root, "1h").await;
    let me = sr.client(&batch);
    let l = me.read("auth/token/lookup-self").await.unwrap().unwrap();
    assert_eq!(l.get("orphan").unwrap(), false);
    assert!(me.kv("secret").get("app").await.unwrap().is_some());
    // The typed transit path remembers its decision: revocation must still end it.
    let t = me.transit("transit");
    t.encrypt("k", b"x").await.unwrap();
    root.write("auth/token/revoke", data(json!({"token": parent})))
        .await
        .unwrap();
    let e = t.encrypt("k", b"x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert_batch_refused(&sr, &root, &batch).await;
}

#[tokio::test]
async fn a_batch_token_dies_when_its_parent_expires_or_is_tidied() {
    let (sr, root, clock) = setup().await;
    let (_parent, batch) = batch_under_parent(&sr, &root, "10m").await;
    // An orphan batch token is on its own: the parent's expiry does not concern it.
    let orphan = token_of(
        &create(
            &root,
            json!({"type": "batch", "policies": ["use"], "no_parent": true}),
        )
        .await,
    );
    let me = sr.client(&batch);
    let t = me.transit("transit");
    t.encrypt("k", b"x").await.unwrap();
    // The batch token's own TTL (the 32-day default) is untouched; only the parent's ends it.
    let l = me.read("auth/token/lookup-self").await.unwrap().unwrap();
    assert_eq!(l.get("ttl").unwrap(), 2_764_800);
    clock.advance(Duration::from_secs(601));
    // No token changed, so the remembered fast-path decision is still current: it must
    // still see the parent's expiry.
    let e = t.encrypt("k", b"x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert_batch_refused(&sr, &root, &batch).await;
    let o = sr.client(&orphan);
    o.read("auth/token/lookup-self").await.unwrap().unwrap();
    o.transit("transit").encrypt("k", b"x").await.unwrap();
    // Tidy removes the expired parent: the batch token stays refused.
    root.handle(Request::write("auth/token/tidy", data(json!({}))))
        .await
        .unwrap();
    assert_batch_refused(&sr, &root, &batch).await;
    o.kv("secret").get("app").await.unwrap().unwrap();
}

/// Issue #23 item 7a: as in OpenBao, every call a valid limited-use token makes spends a use,
/// whatever its answer: denied (403), on a path no mount serves (403 for this token), not
/// found (404) or refused by the engine (400). The last use revokes it, even when denied.
#[tokio::test]
async fn every_answered_call_spends_a_use() {
    let (sr, root, _) = setup().await;
    root.sys()
        .write_policy(
            "kvr",
            r#"path "secret/*" { capabilities = ["read", "create"] }"#,
        )
        .await
        .unwrap();
    let t = token_of(&create(&root, json!({"policies": ["kvr"], "num_uses": 6})).await);
    let me = sr.client(&t);
    let uses = || async {
        root.write("auth/token/lookup", data(json!({"token": t})))
            .await
            .unwrap()
            .get("num_uses")
            .unwrap()
            .clone()
    };
    let e = me.read("sys/mounts").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert_eq!(uses().await, 5, "a policy denial spends a use");
    let e = me.read("nomount/x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert_eq!(uses().await, 4, "an unrouted path spends a use");
    assert!(me.read("secret/data/missing").await.unwrap().is_none());
    assert_eq!(uses().await, 3, "not found spends a use");
    let e = me
        .write("secret/data/bad", data(json!({"data": "not a map"})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert_eq!(uses().await, 2, "bad input spends a use");
    // A bad token spends nothing (there is no token to count against).
    let e = sr
        .client("s.unknownunknownunknown00")
        .read("sys/mounts")
        .await;
    assert_eq!(e.unwrap_err().code(), ErrorCode::PermissionDenied);
    assert_eq!(uses().await, 2);
    // The last use, denied, still revokes the token.
    let one = token_of(&create(&root, json!({"policies": ["kvr"], "num_uses": 1})).await);
    let me = sr.client(&one);
    let e = me.read("sys/mounts").await.unwrap_err();
    assert_eq!(
        e.wire_message(),
        "1 error occurred:\n\t* permission denied\n\n"
    );
    let e = me.read("secret/data/missing").await.unwrap_err();
    assert_eq!(e.wire_message(), "permission denied", "the token is gone");
    let e = root
        .write("auth/token/lookup", data(json!({"token": one})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "bad token");
}
