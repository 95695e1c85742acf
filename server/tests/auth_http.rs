//! Auth methods over HTTP: `sys/auth` as OpenBao serves it, an unauthenticated userpass and
//! AppRole login with OpenBao's `auth` block, and the login errors' status codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;

use common::{TestServer, send};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userpass_and_approle_login_over_http() {
    let s = TestServer::dev().await;
    let a = send(
        s.root("POST", "sys/auth/userpass")
            .json(&json!({"type": "userpass"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(s.root("GET", "sys/auth")).await;
    let body = a.json();
    assert_eq!(body["data"]["userpass/"]["type"], "userpass");
    assert_eq!(
        body["userpass/"]["type"], "userpass",
        "sys/auth injects data at the top level"
    );

    let a = send(
        s.root("POST", "auth/userpass/users/bob")
            .json(&json!({"password": "pw", "token_policies": "dev"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);

    let a = send(
        s.anon("POST", "auth/userpass/login/bob")
            .json(&json!({"password": "pw"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let body = a.json();
    let auth = &body["auth"];
    let token = auth["client_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("s."));
    assert_eq!(auth["policies"], json!(["default", "dev"]));
    assert_eq!(auth["token_policies"], json!(["default", "dev"]));
    assert_eq!(auth["metadata"], json!({"username": "bob"}));
    assert_eq!(auth["token_type"], "service");
    assert_eq!(auth["orphan"], true);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["lease_duration"], 2764800);
    assert_eq!(body["data"], Value::Null);

    let a = send(
        s.anon("GET", "auth/token/lookup-self")
            .header("X-Vault-Token", &token),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["data"]["display_name"], "userpass-bob");

    let a = send(
        s.anon("POST", "auth/userpass/login/bob")
            .json(&json!({"password": "no"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json(),
        json!({"errors": ["invalid username or password"]})
    );
    // Admin paths are not login paths.
    let a = send(s.anon("GET", "auth/userpass/users/bob")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // AppRole.
    send(
        s.root("POST", "sys/auth/approle")
            .json(&json!({"type": "approle"})),
    )
    .await;
    send(
        s.root("POST", "auth/approle/role/web")
            .json(&json!({"token_policies": "web"})),
    )
    .await;
    let rid = send(s.root("GET", "auth/approle/role/web/role-id"))
        .await
        .json()["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sid = send(s.root("POST", "auth/approle/role/web/secret-id"))
        .await
        .json();
    let secret = sid["data"]["secret_id"].as_str().unwrap().to_string();
    assert!(sid["data"]["secret_id_accessor"].is_string());
    let a = send(
        s.anon("POST", "auth/approle/login")
            .json(&json!({"role_id": rid, "secret_id": secret})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["auth"]["metadata"], json!({"role_name": "web"}));
    s.stop().await;
}

/// Login lockout over HTTP (issue #23): five wrong passwords, then the right one answers 403
/// `permission denied`; `GET sys/locked-users` lists the user in OpenBao's shape and `POST
/// sys/locked-users/:accessor/unlock/:alias` lets it back in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_users_list_and_unlock_over_http() {
    let s = TestServer::dev().await;
    let a = send(
        s.root("POST", "sys/auth/userpass")
            .json(&json!({"type": "userpass"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(
        s.root("POST", "auth/userpass/users/bob")
            .json(&json!({"password": "pw"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let acc = send(s.root("GET", "sys/auth")).await.json()["data"]["userpass/"]["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let login = |pw: &'static str| {
        send(
            s.anon("POST", "auth/userpass/login/bob")
                .json(&json!({ "password": pw })),
        )
    };
    for _ in 0..5 {
        let a = login("bad").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
        assert_eq!(a.json()["errors"], json!(["invalid username or password"]));
    }
    let a = login("pw").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(a.json()["errors"], json!(["permission denied"]));

    let a = send(s.root("GET", &format!("sys/locked-users?mount_accessor={acc}"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.json()["data"],
        json!({
            "by_namespace": [{
                "namespace_id": "root", "namespace_path": "", "counts": 1,
                "mount_accessors": [{"mount_accessor": acc, "counts": 1, "alias_identifiers": ["bob"]}],
            }],
            "total": 1,
        })
    );
    // OpenBao: LIST is `sys/locked-users/`, a path it does not have (404).
    let a = send(s.root("LIST", "sys/locked-users")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    let a = send(s.anon("GET", "sys/locked-users")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);

    let a = send(s.root("POST", &format!("sys/locked-users/{acc}/unlock/bob"))).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = login("pw").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = send(s.root("GET", "sys/locked-users")).await;
    assert_eq!(a.json()["data"]["total"], 0);
}
