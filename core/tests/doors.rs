//! Authorisation does not depend on the door a call comes in by: the typed fast paths
//! (`client.transit(..)`, `client.kv(..)`) refuse exactly what `handle` refuses.
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

use serde_json::json;
use strongroom::{Client, Config, ErrorCode, Strongroom, VirtualClock, data};

/// A CIDR-bound token (from a role with `token_bound_cidrs`) has no remote address to match
/// in-process: `handle` refuses it, and so does the typed transit path, which used to skip the
/// check.
#[tokio::test]
async fn a_cidr_bound_token_is_refused_by_every_door() {
    let sr = Strongroom::open(Config::dev()).await.unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.sys()
        .enable_mount("transit", "transit", &[])
        .await
        .unwrap();
    root.write("transit/keys/k", data(json!({}))).await.unwrap();
    root.write(
        "sys/policies/acl/enc",
        data(json!({"policy": r#"path "transit/*" { capabilities = ["update"] }"#})),
    )
    .await
    .unwrap();
    for (role, cidrs) in [("bound", "10.0.0.0/8"), ("free", "")] {
        root.write(
            &format!("auth/token/roles/{role}"),
            data(json!({"allowed_policies": "enc", "token_bound_cidrs": cidrs})),
        )
        .await
        .unwrap();
    }
    let token = |role: &'static str| {
        let root = root.clone();
        async move {
            root.write(
                &format!("auth/token/create/{role}"),
                data(json!({"policies": ["enc"]})),
            )
            .await
            .unwrap()
            .auth
            .unwrap()
            .client_token
        }
    };
    let bound = sr.client(token("bound").await);
    let e = bound
        .write("transit/encrypt/k", data(json!({"plaintext": "aGk="})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    let e = bound
        .transit("transit")
        .encrypt("k", b"hi")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    let e = bound.transit("transit").hmac("k", b"hi").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);

    // The same role without the binding works through both doors.
    let free = sr.client(token("free").await);
    free.write("transit/encrypt/k", data(json!({"plaintext": "aGk="})))
        .await
        .unwrap();
    free.transit("transit").encrypt("k", b"hi").await.unwrap();
}

/// The token kinds every door must judge alike.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Root,
    Allowed,
    OtherPolicy,
    CidrBound,
    Expired,
    /// `num_uses = 1`, on its second call.
    UsedUp,
    Revoked,
    /// A batch token whose parent was revoked.
    Orphaned,
    NoToken,
}

const KINDS: [Kind; 9] = [
    Kind::Root,
    Kind::Allowed,
    Kind::OtherPolicy,
    Kind::CidrBound,
    Kind::Expired,
    Kind::UsedUp,
    Kind::Revoked,
    Kind::Orphaned,
    Kind::NoToken,
];

/// The calls with a typed door: (name, typed call, the same through `handle`).
const CALLS: [&str; 7] = [
    "transit.encrypt",
    "transit.decrypt",
    "transit.hmac",
    "transit.sign",
    "transit.verify",
    "kv.get",
    "kv.put",
];

struct Fixture {
    sr: Strongroom,
    root: Client,
    clock: VirtualClock,
    ciphertext: String,
    signature: String,
}

async fn fixture() -> Fixture {
    let clock = VirtualClock::new();
    let sr = Strongroom::open(Config::dev().clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.sys()
        .enable_mount("transit", "transit", &[])
        .await
        .unwrap();
    root.write("transit/keys/k", data(json!({}))).await.unwrap();
    root.write("transit/keys/s", data(json!({"type": "ed25519"})))
        .await
        .unwrap();
    root.kv("secret")
        .put("a", &data(json!({"v": 1})))
        .await
        .unwrap();
    let grant = r#"
path "transit/*" { capabilities = ["update"] }
path "secret/data/*" { capabilities = ["create", "read", "update"] }
path "auth/token/create" { capabilities = ["update"] }
"#;
    root.write("sys/policies/acl/use", data(json!({ "policy": grant })))
        .await
        .unwrap();
    root.write(
        "sys/policies/acl/other",
        data(json!({"policy": r#"path "secret/data/b" { capabilities = ["read"] }"#})),
    )
    .await
    .unwrap();
    root.write(
        "auth/token/roles/bound",
        data(json!({"allowed_policies": "use", "token_bound_cidrs": "10.0.0.0/8"})),
    )
    .await
    .unwrap();
    let ciphertext = root
        .transit("transit")
        .encrypt("k", b"x")
        .await
        .unwrap()
        .as_str()
        .to_string();
    let signature = root.transit("transit").sign("s", b"x").await.unwrap();
    Fixture {
        sr,
        root,
        clock,
        ciphertext,
        signature,
    }
}

async fn create(root: &Client, body: serde_json::Value) -> String {
    root.write("auth/token/create", data(body))
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token
        .expose_secret()
        .to_string()
}

/// A fresh token of `kind`, in the state the kind names.
async fn token(f: &Fixture, kind: Kind) -> String {
    match kind {
        Kind::Root => f.sr.dev_root_token().unwrap().expose_secret().to_string(),
        Kind::Allowed => create(&f.root, json!({"policies": ["use"]})).await,
        Kind::OtherPolicy => create(&f.root, json!({"policies": ["other"]})).await,
        Kind::CidrBound => f
            .root
            .write("auth/token/create/bound", data(json!({})))
            .await
            .unwrap()
            .auth
            .unwrap()
            .client_token
            .expose_secret()
            .to_string(),
        Kind::Expired => {
            let t = create(&f.root, json!({"policies": ["use"], "ttl": "1m"})).await;
            f.clock.advance(Duration::from_secs(61));
            t
        }
        Kind::UsedUp => {
            let t = create(&f.root, json!({"policies": ["use"], "num_uses": 1})).await;
            f.sr.client(&t).kv("secret").get("a").await.unwrap();
            t
        }
        Kind::Revoked => {
            let t = create(&f.root, json!({"policies": ["use"]})).await;
            f.sr.client(&t).token().revoke_self().await.unwrap();
            t
        }
        Kind::Orphaned => {
            let parent = create(&f.root, json!({"policies": ["use"]})).await;
            let batch = create(
                &f.sr.client(&parent),
                json!({"policies": ["use"], "type": "batch"}),
            )
            .await;
            f.root.token().revoke(&parent).await.unwrap();
            batch
        }
        Kind::NoToken => String::new(),
    }
}

/// `call` through its typed door: `Ok(())` or the error code.
async fn typed(f: &Fixture, c: &Client, call: &str) -> Result<(), ErrorCode> {
    let t = c.transit("transit");
    let r = match call {
        "transit.encrypt" => t.encrypt("k", b"x").await.map(drop),
        "transit.decrypt" => t
            .decrypt("k", &strongroom::Ciphertext::new(f.ciphertext.clone()))
            .await
            .map(drop),
        "transit.hmac" => t.hmac("k", b"x").await.map(drop),
        "transit.sign" => t.sign("s", b"x").await.map(drop),
        "transit.verify" => t.verify("s", b"x", &f.signature).await.map(drop),
        "kv.get" => c.kv("secret").get("a").await.map(drop),
        "kv.put" => c
            .kv("secret")
            .put("a", &data(json!({"v": 2})))
            .await
            .map(drop),
        other => panic!("{other}"),
    };
    r.map_err(|e| e.code())
}

/// The same call as a `Request` through `handle`.
async fn through_handle(f: &Fixture, c: &Client, call: &str) -> Result<(), ErrorCode> {
    let x = "eA=="; // base64 of "x"
    let r = match call {
        "transit.encrypt" => c
            .write("transit/encrypt/k", data(json!({"plaintext": x})))
            .await
            .map(drop),
        "transit.decrypt" => c
            .write(
                "transit/decrypt/k",
                data(json!({"ciphertext": f.ciphertext})),
            )
            .await
            .map(drop),
        "transit.hmac" => c
            .write("transit/hmac/k", data(json!({"input": x})))
            .await
            .map(drop),
        "transit.sign" => c
            .write("transit/sign/s", data(json!({"input": x})))
            .await
            .map(drop),
        "transit.verify" => c
            .write(
                "transit/verify/s",
                data(json!({"input": x, "signature": f.signature})),
            )
            .await
            .map(drop),
        "kv.get" => c.read("secret/data/a").await.map(drop),
        "kv.put" => c
            .write("secret/data/a", data(json!({"data": {"v": 2}})))
            .await
            .map(drop),
        other => panic!("{other}"),
    };
    r.map_err(|e| e.code())
}

/// Every typed call answers exactly as its `handle` equivalent for every kind of token, and
/// for a sealed store.
#[tokio::test]
async fn typed_calls_and_handle_agree_for_every_token() {
    let f = fixture().await;
    let mut compared = 0;
    for kind in KINDS {
        for call in CALLS {
            // A fresh token for each door: a limited-use token's state is per call.
            let a = f.sr.client(token(&f, kind).await);
            let b = f.sr.client(token(&f, kind).await);
            let (t, h) = (
                typed(&f, &a, call).await,
                through_handle(&f, &b, call).await,
            );
            assert_eq!(t, h, "{kind:?} {call}: typed {t:?}, handle {h:?}");
            let allowed = matches!(kind, Kind::Root | Kind::Allowed);
            assert_eq!(t.is_ok(), allowed, "{kind:?} {call}: {t:?}");
            // Asked again, the typed door (which remembers decisions) still agrees.
            let again = typed(&f, &a, call).await;
            assert_eq!(again.is_ok(), allowed, "{kind:?} {call} again: {again:?}");
            compared += 1;
        }
    }
    assert_eq!(compared, KINDS.len() * CALLS.len());

    f.sr.seal().await.unwrap();
    for call in CALLS {
        let t = typed(&f, &f.root, call).await;
        let h = through_handle(&f, &f.root, call).await;
        assert_eq!(t, Err(ErrorCode::Sealed), "{call}");
        assert_eq!(h, Err(ErrorCode::Sealed), "{call}");
    }
}

/// A KV handle remembers its fast-path decisions, as the transit handle does; every change
/// they rest on ends them: the token revoked or expired, the policy narrowed, the mount gone,
/// the store sealed. Reads through a remembered decision answer as `handle` answers: a
/// deleted version and a missing key are `None`.
#[tokio::test]
async fn a_reused_kv_handle_follows_every_change() {
    let f = fixture().await;
    let denied = |r: strongroom::Result<Option<strongroom::KvSecret>>| {
        assert_eq!(r.unwrap_err().code(), ErrorCode::PermissionDenied);
    };

    // Revocation.
    let t = token(&f, Kind::Allowed).await;
    let kv = f.sr.client(&t).kv("secret");
    assert!(kv.get("a").await.unwrap().is_some());
    assert!(kv.get("a").await.unwrap().is_some());
    f.root.token().revoke(&t).await.unwrap();
    denied(kv.get("a").await);

    // Expiry on the virtual clock, with nothing else changing.
    let t = create(&f.root, json!({"policies": ["use"], "ttl": "1m"})).await;
    let kv = f.sr.client(&t).kv("secret");
    assert!(kv.get("a").await.unwrap().is_some());
    f.clock.advance(Duration::from_secs(61));
    denied(kv.get("a").await);

    // A deleted version and a missing key, as `handle` answers them.
    let t = token(&f, Kind::Allowed).await;
    let c = f.sr.client(&t);
    let kv = c.kv("secret");
    f.root
        .kv("secret")
        .put("gone", &data(json!({"v": 1})))
        .await
        .unwrap();
    assert_eq!(
        kv.get("gone").await.unwrap().unwrap().data.expose()["v"],
        json!(1)
    );
    f.root.kv("secret").delete("gone").await.unwrap();
    assert!(kv.get("gone").await.unwrap().is_none());
    assert!(kv.get("never").await.unwrap().is_none());
    assert!(c.read("secret/data/never").await.unwrap().is_none());

    // The policy narrowed to another path.
    let narrowed = r#"path "secret/data/b" { capabilities = ["read"] }"#;
    f.root
        .write("sys/policies/acl/use", data(json!({ "policy": narrowed })))
        .await
        .unwrap();
    denied(kv.get("a").await);

    // The mount gone: the same answer as through `handle`.
    let kv = f.root.kv("secret");
    assert!(kv.get("a").await.unwrap().is_some());
    f.root.sys().disable_mount("secret").await.unwrap();
    let typed = kv.get("a").await.unwrap_err().code();
    let through = f.root.read("secret/data/a").await.unwrap_err().code();
    assert_eq!(typed, through);

    // Sealed.
    f.root
        .sys()
        .enable_mount("secret", "kv", &[("version", "2")])
        .await
        .unwrap();
    kv.put("a", &data(json!({"v": 1}))).await.unwrap();
    assert!(kv.get("a").await.unwrap().is_some());
    f.sr.seal().await.unwrap();
    assert_eq!(kv.get("a").await.unwrap_err().code(), ErrorCode::Sealed);
}

/// The typed KV read builds its secret from what the engine decoded, the pipeline from the
/// read's answer: both give the same data and version metadata (custom metadata, a scheduled
/// deletion time, the latest of several versions), and the same `None` once it is destroyed.
#[tokio::test]
async fn the_typed_kv_read_and_the_pipeline_give_the_same_secret() {
    let f = fixture().await;
    let kv = f.root.kv("secret");
    kv.put("m", &data(json!({"user": "app", "n": 1})))
        .await
        .unwrap();
    kv.put(
        "m",
        &data(json!({"user": "app", "n": 2, "nested": {"a": [1, "x"]}})),
    )
    .await
    .unwrap();
    f.root
        .write(
            "secret/metadata/m",
            data(json!({
                "custom_metadata": {"owner": "team-a", "tier": "gold"},
                "delete_version_after": "1h",
            })),
        )
        .await
        .unwrap();
    kv.put("m", &data(json!({"user": "app", "n": 3})))
        .await
        .unwrap();

    let fast = kv.get("m").await.unwrap().unwrap();
    let fast_again = kv.get("m").await.unwrap().unwrap(); // from the remembered decision
    let through = kv.get_version("m", 3).await.unwrap().unwrap(); // the pipeline
    for got in [&fast, &fast_again] {
        assert_eq!(got.data, through.data);
        assert_eq!(got.metadata, through.metadata);
    }
    assert_eq!(fast.metadata.version, 3);
    assert_eq!(fast.data.expose()["n"], json!(3));
    assert!(
        !fast.metadata.deletion_time.is_empty(),
        "{:?}",
        fast.metadata
    );
    assert_eq!(
        fast.metadata
            .custom_metadata
            .as_ref()
            .and_then(|m| m.get("tier"))
            .map(String::as_str),
        Some("gold")
    );

    f.root
        .write("secret/destroy/m", data(json!({"versions": [3]})))
        .await
        .unwrap();
    assert!(kv.get("m").await.unwrap().is_none());
    assert!(kv.get_version("m", 3).await.unwrap().is_none());
}
