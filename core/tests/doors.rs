//! Authorisation does not depend on the door a call comes in by: the typed fast paths
//! (`client.transit(..)`, `client.kv(..)`) refuse exactly what `handle` refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use serde_json::json;
use strongroom::{Config, ErrorCode, Strongroom, data};

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
