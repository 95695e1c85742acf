//! Response wrapping and cubbyhole over HTTP, compared with what `bao server -dev` (2.7.2)
//! answers: the wrapped envelope byte for byte (token, accessor and time aside), lookup,
//! single-use unwrap with OpenBao's raw body, the error texts and statuses, and the cubbyhole
//! mount as `sys/mounts` shows it.
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

const INVALID: &str = "{\"errors\":[\"wrapping token is not valid or does not exist\"]}\n";

/// The wrapped envelope as bao sends it, with this answer's token, accessor and time.
fn expected_wrapped(w: &Value, ttl: u64, path: &str, wrapped_accessor: Option<&str>) -> String {
    let extra = wrapped_accessor
        .map(|a| format!(",\"wrapped_accessor\":\"{a}\""))
        .unwrap_or_default();
    format!(
        "{{\"request_id\":\"\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,\"data\":null,\"wrap_info\":{{\"token\":\"{}\",\"accessor\":\"{}\",\"ttl\":{ttl},\"creation_time\":\"{}\",\"creation_path\":\"{path}\"{extra}}},\"warnings\":null,\"auth\":null}}\n",
        w["token"].as_str().unwrap(),
        w["accessor"].as_str().unwrap(),
        w["creation_time"].as_str().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_kv_read_over_http() {
    let s = TestServer::dev().await;
    let a = send(
        s.root("POST", "secret/data/app")
            .json(&json!({"data": {"a": "b"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let a = send(
        s.root("GET", "secret/data/app")
            .header("X-Vault-Wrap-TTL", "90"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let w = a.json()["wrap_info"].clone();
    assert_eq!(a.body, expected_wrapped(&w, 90, "secret/data/app", None));
    let token = w["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("s.") && token.len() == 26);
    let ct = w["creation_time"].as_str().unwrap();
    assert!(
        ct.ends_with('Z') && ct.contains('.'),
        "RFC 3339 with fractional seconds: {ct}"
    );

    // The wrapping token, as auth/token/lookup shows it.
    let a = send(
        s.root("POST", "auth/token/lookup")
            .json(&json!({"token": token})),
    )
    .await;
    let d = &a.json()["data"];
    assert_eq!(d["policies"], json!(["response-wrapping"]));
    assert_eq!(
        (d["num_uses"].clone(), d["creation_ttl"].clone()),
        (json!(1), json!(90))
    );
    assert_eq!(d["explicit_max_ttl"], 90);
    assert_eq!(d["orphan"], true);
    assert_eq!(d["path"], "secret/data/app");

    // Lookup needs no token and does not use the wrapping token; POST or GET with ?token=.
    let expected = format!(
        "\"data\":{{\"creation_path\":\"secret/data/app\",\"creation_time\":\"{ct}\",\"creation_ttl\":90}},\"wrap_info\":null,\"warnings\":null,\"auth\":null}}\n"
    );
    let a = send(
        s.anon("POST", "sys/wrapping/lookup")
            .json(&json!({"token": token})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.ends_with(&expected), "{}", a.body);
    let a = send(s.anon("GET", &format!("sys/wrapping/lookup?token={token}"))).await;
    assert!(a.body.ends_with(&expected), "{}", a.body);

    // Unwrap with the wrapping token as X-Vault-Token: OpenBao's raw body (no newline).
    let a = send(
        s.anon("POST", "sys/wrapping/unwrap")
            .header("X-Vault-Token", &token),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(!a.body.ends_with('\n'));
    let v = a.json();
    assert_eq!(v["data"]["data"], json!({"a": "b"}));
    assert_eq!(v["data"]["metadata"]["version"], 1);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "request_id",
            "lease_id",
            "renewable",
            "lease_duration",
            "data",
            "wrap_info",
            "warnings",
            "auth"
        ]
    );
    // Second use, by the token or by a third party: 400.
    let a = send(
        s.anon("POST", "sys/wrapping/unwrap")
            .header("X-Vault-Token", &token),
    )
    .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::BAD_REQUEST, INVALID)
    );
    let a = send(
        s.root("POST", "sys/wrapping/unwrap")
            .json(&json!({"token": token})),
    )
    .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::BAD_REQUEST, INVALID)
    );
    let a = send(
        s.anon("POST", "sys/wrapping/lookup")
            .json(&json!({"token": token})),
    )
    .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::BAD_REQUEST, INVALID)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_token_create_over_http() {
    let s = TestServer::dev().await;
    let a = send(
        s.root("POST", "auth/token/create")
            .header("X-Vault-Wrap-TTL", "5m")
            .json(&json!({"policies": ["default"], "ttl": "1h"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let w = a.json()["wrap_info"].clone();
    let wrapped = w["wrapped_accessor"].as_str().unwrap().to_string();
    assert_eq!(
        a.body,
        expected_wrapped(&w, 300, "auth/token/create", Some(&wrapped))
    );
    // A third party (root) unwraps with the token in the body.
    let a = send(
        s.root("POST", "sys/wrapping/unwrap")
            .json(&json!({"token": w["token"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let auth = &a.json()["auth"];
    assert_eq!(auth["accessor"], wrapped.as_str());
    assert_eq!(auth["policies"], json!(["default"]));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["mfa_requirement"], Value::Null);
    let t = auth["client_token"].as_str().unwrap();
    let a = send(
        s.anon("GET", "auth/token/lookup-self")
            .header("X-Vault-Token", t),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrap_rewrap_and_errors_over_http() {
    let s = TestServer::dev().await;
    let a = send(s.root("POST", "sys/wrapping/wrap").json(&json!({"x": "y"}))).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "{\"errors\":[\"endpoint requires response wrapping to be used\"]}\n"
        )
    );
    let a = send(
        s.root("POST", "sys/wrapping/wrap")
            .header("X-Vault-Wrap-TTL", "1m")
            .json(&json!({"z": 1, "a": {"y": 2, "b": 3}})),
    )
    .await;
    let w = a.json()["wrap_info"].clone();
    assert_eq!(a.body, expected_wrapped(&w, 60, "sys/wrapping/wrap", None));
    let a = send(
        s.root("POST", "sys/wrapping/rewrap")
            .json(&json!({"token": w["token"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let n = a.json()["wrap_info"].clone();
    assert_eq!(a.body, expected_wrapped(&n, 60, "sys/wrapping/wrap", None));
    let a = send(
        s.anon("POST", "sys/wrapping/lookup")
            .json(&json!({"token": w["token"]})),
    )
    .await;
    assert_eq!(a.body, INVALID);
    // Go's sorted map keys in the unwrapped data, as bao stores it.
    let a = send(
        s.root("POST", "sys/wrapping/unwrap")
            .json(&json!({"token": n["token"]})),
    )
    .await;
    assert!(
        a.body
            .contains("\"data\":{\"a\":{\"b\":3,\"y\":2},\"z\":1}"),
        "{}",
        a.body
    );

    // Validation errors: 403 with OpenBao's texts.
    for (body, why) in [
        (json!({}), "token is empty"),
        (json!({"token": ""}), "empty token in request body"),
        (
            json!({"token": 5}),
            "could not decode token in request body",
        ),
    ] {
        let a = send(s.anon("POST", "sys/wrapping/lookup").json(&body)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(
            a.json(),
            json!({"errors": [format!("error validating wrapping token: {why}")]})
        );
    }
    // The root token is not a wrapping token; no token at all is a plain 403.
    let a = send(s.root("POST", "sys/wrapping/unwrap")).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::BAD_REQUEST, INVALID)
    );
    let w = send(
        s.root("POST", "sys/wrapping/wrap")
            .header("X-Vault-Wrap-TTL", "60"),
    )
    .await
    .json()["wrap_info"]["token"]
        .clone();
    let a = send(
        s.anon("POST", "sys/wrapping/unwrap")
            .json(&json!({"token": w})),
    )
    .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            StatusCode::FORBIDDEN,
            "{\"errors\":[\"permission denied\"]}\n"
        )
    );
    // An empty wrap unwraps to empty data.
    let a = send(
        s.root("POST", "sys/wrapping/unwrap")
            .json(&json!({"token": w})),
    )
    .await;
    assert!(a.body.contains("\"data\":{},"), "{}", a.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_wrapping_ttls_over_http() {
    let s = TestServer::dev().await;
    send(
        s.root("POST", "secret/data/app")
            .json(&json!({"data": {"a": "b"}})),
    )
    .await;
    let policy = r#"path "secret/data/*" { capabilities = ["read"] min_wrapping_ttl = "1m" max_wrapping_ttl = "1h" }"#;
    let a = send(
        s.root("PUT", "sys/policies/acl/w")
            .json(&json!({"policy": policy})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(
        s.root("POST", "auth/token/create")
            .json(&json!({"policies": ["w"]})),
    )
    .await;
    let t = a.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    // OpenBao wraps an ACL denial as `1 error occurred:\n\t* permission denied\n\n`.
    let denied = "{\"errors\":[\"1 error occurred:\\n\\t* permission denied\\n\\n\"]}\n";
    for ttl in [None, Some("30"), Some("2h")] {
        let mut rb = s.anon("GET", "secret/data/app").header("X-Vault-Token", &t);
        if let Some(ttl) = ttl {
            rb = rb.header("X-Vault-Wrap-TTL", ttl);
        }
        let a = send(rb).await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (StatusCode::FORBIDDEN, denied),
            "{ttl:?}"
        );
    }
    let a = send(
        s.anon("GET", "secret/data/app")
            .header("X-Vault-Token", &t)
            .header("X-Vault-Wrap-TTL", "5m"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["wrap_info"]["ttl"], 300);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cubbyhole_over_http() {
    let s = TestServer::dev().await;
    let a = send(s.root("GET", "sys/mounts")).await;
    let m = &a.json()["data"]["cubbyhole/"];
    assert_eq!(m["type"], "cubbyhole");
    assert_eq!(m["description"], "per-token private secret storage");
    assert_eq!(m["local"], true);
    assert_eq!(m["options"], Value::Null);
    assert!(m["accessor"].as_str().unwrap().starts_with("cubbyhole_"));

    let a = send(
        s.root("POST", "cubbyhole/foo/bar")
            .json(&json!({"k": "v", "n": 2})),
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::NO_CONTENT, ""));
    let a = send(s.root("GET", "cubbyhole/foo/bar")).await;
    assert_eq!(a.json()["data"], json!({"k": "v", "n": 2}));
    let a = send(s.root("LIST", "cubbyhole/")).await;
    assert_eq!(a.json()["data"]["keys"], json!(["foo/"]));
    // Another token sees an empty cubbyhole.
    let t = send(s.root("POST", "auth/token/create").json(&json!({})))
        .await
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let a = send(s.anon("LIST", "cubbyhole/").header("X-Vault-Token", &t)).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::NOT_FOUND, "{\"errors\":[]}\n")
    );
    let a = send(
        s.anon("GET", "cubbyhole/foo/bar")
            .header("X-Vault-Token", &t),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // OpenBao's 500s for a missing path or body.
    let a = send(s.root("POST", "cubbyhole/e")).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "{\"errors\":[\"1 error occurred:\\n\\t* missing data fields\\n\\n\"]}\n"
        )
    );
    let a = send(s.root("GET", "cubbyhole/")).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    // Batch tokens have none; the mount cannot go.
    let bt = send(
        s.root("POST", "auth/token/create")
            .json(&json!({"type": "batch", "policies": ["default"]})),
    )
    .await
    .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let a = send(s.anon("GET", "cubbyhole/x").header("X-Vault-Token", &bt)).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "{\"errors\":[\"cubbyhole operations are only supported by 'service' type tokens\"]}\n"
        )
    );
    let a = send(s.root("DELETE", "sys/mounts/cubbyhole")).await;
    assert_eq!(
        a.json(),
        json!({"errors": ["cannot unmount \"cubbyhole/\""]})
    );
    let a = send(
        s.root("POST", "sys/mounts/cub2")
            .json(&json!({"type": "cubbyhole"})),
    )
    .await;
    assert_eq!(
        a.json(),
        json!({"errors": ["mount type of \"cubbyhole\" is not mountable"]})
    );
    s.stop().await;
}
