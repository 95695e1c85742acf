//! The HTTP mapping against a real listener (in-process dev engine on 127.0.0.1:0) with a real
//! client: envelope, status codes, methods, KV v2, sys/mounts, sys/health, limits.
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
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const ENVELOPE_KEYS: [&str; 8] = [
    "request_id",
    "lease_id",
    "renewable",
    "lease_duration",
    "data",
    "wrap_info",
    "warnings",
    "auth",
];

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_v2_round_trip() {
    let s = TestServer::dev().await;

    // Write (the CLI's shape: data + options).
    let a = send(
        s.root("PUT", "secret/data/app")
            .json(&json!({"data": {"user": "u1", "pass": "p1"}, "options": {}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["data"]["version"], 1);

    // Read.
    let a = send(s.root("GET", "secret/data/app")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.json()["data"]["data"],
        json!({"user": "u1", "pass": "p1"})
    );
    assert_eq!(a.json()["data"]["metadata"]["version"], 1);

    // PATCH needs the merge-patch content type.
    let a = send(
        s.root("PATCH", "secret/data/app")
            .json(&json!({"data": {"pass": null}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        a.json(),
        json!({"errors": ["PATCH requires Content-Type of application/merge-patch+json, provided application/json"]})
    );
    let a = send(s.root("PATCH", "secret/data/app").body(r#"{"data":{}}"#)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json(), json!({"errors": ["mime: no media type"]}));
    let a = send(
        s.root("PATCH", "secret/data/app")
            .header(
                "Content-Type",
                "application/merge-patch+json; charset=utf-8",
            )
            .body(r#"{"data":{"pass":null,"extra":"e"},"options":{}}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["data"]["version"], 2);
    let a = send(s.root("GET", "secret/data/app")).await;
    assert_eq!(
        a.json()["data"]["data"],
        json!({"user": "u1", "extra": "e"})
    );
    // A specific version through the query string.
    let a = send(s.root("GET", "secret/data/app?version=1")).await;
    assert_eq!(a.json()["data"]["data"]["pass"], "p1");

    // PATCH of a missing key: 404 with an empty body.
    let a = send(
        s.root("PATCH", "secret/data/missing")
            .header("Content-Type", "application/merge-patch+json")
            .body(r#"{"data":{"a":"b"}}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body, "");

    // LIST, and GET ?list=true (the server appends the `/`).
    send(
        s.root("PUT", "secret/data/dir/inner")
            .json(&json!({"data": {"x": "y"}})),
    )
    .await;
    for rb in [
        s.root("LIST", "secret/metadata"),
        s.root("GET", "secret/metadata?list=true"),
        s.root("LIST", "secret/metadata/"),
    ] {
        let a = send(rb).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.json()["data"]["keys"], json!(["app", "dir/"]));
    }
    let a = send(s.root("LIST", "secret/metadata/nothing-here")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body, "{\"errors\":[]}\n");
    let a = send(s.root("GET", "secret/metadata?list=maybe")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json(), json!({"errors": []}));

    // Metadata.
    let a = send(s.root("GET", "secret/metadata/app")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["data"]["current_version"], 2);
    assert_eq!(a.json()["data"]["versions"]["1"]["destroyed"], false);

    // DELETE soft-deletes the latest version: 204, then a read is 404 with the full envelope.
    let a = send(s.root("DELETE", "secret/data/app")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(a.body, "");
    let a = send(s.root("GET", "secret/data/app")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let body = a.json();
    assert_eq!(keys(&body), ENVELOPE_KEYS);
    assert_eq!(body["data"]["data"], Value::Null);
    assert_ne!(body["data"]["metadata"]["deletion_time"], "");

    // Unknown key: OpenBao's nil response.
    let a = send(s.root("GET", "secret/data/never-written")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body, "{\"errors\":[]}\n");

    // Metadata delete removes everything.
    let a = send(s.root("DELETE", "secret/metadata/app")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = send(s.root("GET", "secret/metadata/app")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_shape_and_headers() {
    let s = TestServer::dev().await;
    send(
        s.root("POST", "secret/data/e")
            .json(&json!({"data": {"k": "v"}})),
    )
    .await;
    let a = send(s.root("GET", "secret/data/e")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.headers["cache-control"], "no-store");
    // Key order is part of the contract: check the raw text, not a parsed map.
    let order: Vec<usize> = ENVELOPE_KEYS
        .iter()
        .map(|k| a.body.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", a.body);
    let body = a.json();
    assert_eq!(keys(&body), ENVELOPE_KEYS);
    assert_eq!(body["warnings"], Value::Null);
    assert_eq!(body["wrap_info"], Value::Null);
    assert_eq!(body["auth"], Value::Null);
    assert_eq!(body["lease_id"], "");
    assert_eq!(body["renewable"], false);
    assert_eq!(body["lease_duration"], 0);
    assert_eq!(body["request_id"].as_str().unwrap().len(), 36);

    // Errors carry Cache-Control too.
    let a = send(s.anon("GET", "secret/data/e")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.headers["cache-control"], "no-store");

    // An auth response: token creation.
    let a = send(
        s.root("POST", "auth/token/create")
            .json(&json!({"policies": ["root"], "meta": {"team": "a"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let body = a.json();
    assert_eq!(keys(&body), ENVELOPE_KEYS);
    let auth = &body["auth"];
    assert!(auth["client_token"].as_str().unwrap().starts_with("s."));
    assert_eq!(auth["mfa_requirement"], Value::Null);
    assert_eq!(auth["metadata"], json!({"team": "a"}));
    let auth_keys = keys(auth);
    assert_eq!(auth_keys.first().unwrap(), "client_token");
    assert_eq!(auth_keys.last().unwrap(), "num_uses");

    // The new token works, through `Authorization: Bearer` as well.
    let token = auth["client_token"].as_str().unwrap().to_string();
    let a = send(
        s.anon("GET", "auth/token/lookup-self")
            .header("Authorization", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["data"]["meta"], json!({"team": "a"}));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_permission_errors() {
    let s = TestServer::dev().await;
    for rb in [
        s.anon("GET", "secret/data/x"),
        s.anon("GET", "secret/data/x")
            .header("X-Vault-Token", "s.not-a-real-token"),
        s.anon("GET", "secret/data/x")
            .header("Authorization", "Bearer s.nope"),
        // X-Vault-Token wins over Authorization.
        s.anon("GET", "secret/data/x")
            .header("X-Vault-Token", "s.nope")
            .header("Authorization", "Bearer root"),
    ] {
        let a = send(rb).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(a.json(), json!({"errors": ["permission denied"]}));
    }
    let a = send(
        s.anon("GET", "auth/token/lookup-self")
            .header("Authorization", "Bearer root"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["data"]["policies"], json!(["root"]));

    // A valid token its policies do not allow: OpenBao 2.7 wraps this denial in
    // go-multierror's text (checked against `bao server -dev`), unlike the unknown tokens
    // above. The same for a sudo-only endpoint.
    let a = send(
        s.root("POST", "sys/policies/acl/ro")
            .json(&json!({"policy": "path \"secret/data/x\" { capabilities = [\"read\"] }"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(
        s.root("POST", "auth/token/create")
            .json(&json!({"policies": ["ro"]})),
    )
    .await;
    let limited = a.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let wrapped = json!({"errors": ["1 error occurred:\n\t* permission denied\n\n"]});
    for rb in [
        s.anon("POST", "secret/data/x")
            .json(&json!({"data": {"a": "b"}})),
        s.anon("GET", "secret/data/y"),
        s.anon("GET", "sys/mounts"),
        s.anon("POST", "auth/token/revoke-orphan")
            .json(&json!({"token": "x"})),
    ] {
        let a = send(rb.header("X-Vault-Token", &limited)).await;
        assert_eq!(
            (a.status, a.json()),
            (StatusCode::FORBIDDEN, wrapped.clone())
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_mounts_enable_list_and_top_level_data() {
    let s = TestServer::dev().await;
    let a = send(
        s.root("POST", "sys/mounts/kv2")
            .json(&json!({"type": "kv", "options": {"version": "2"}, "description": "d"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(a.body, "");
    // Form-encoded bodies are accepted when the content type says so.
    let a = send(
        s.root("POST", "sys/mounts/kv1")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("type=kv&description=form"),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(
        s.root("POST", "sys/mounts/kv2")
            .json(&json!({"type": "kv"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json(),
        json!({"errors": ["path is already in use at kv2/"]})
    );

    let a = send(s.root("GET", "sys/mounts")).await;
    assert_eq!(a.status, StatusCode::OK);
    let body = a.json();
    // Legacy route: data is also at the top level, before the envelope keys.
    assert_eq!(body["kv2/"]["options"]["version"], "2");
    assert_eq!(body["data"]["kv2/"]["type"], "kv");
    assert_eq!(body["data"]["kv1/"]["description"], "form");
    assert_eq!(body["secret/"], body["data"]["secret/"]);
    assert!(a.body.find("\"kv2/\"").unwrap() < a.body.find("\"request_id\"").unwrap());
    let a = send(s.root("GET", "sys/mounts/kv2/tune")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["description"], "d");

    // The new mount works, and a non-injected route has no top-level copy.
    let a = send(s.root("PUT", "kv1/a").json(&json!({"v": "1"}))).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(s.root("GET", "kv1/a")).await;
    assert_eq!(a.json()["data"], json!({"v": "1"}));
    assert!(a.json().get("v").is_none());

    let a = send(s.root("DELETE", "sys/mounts/kv1")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = send(s.root("GET", "kv1/a")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(
        a.json()["errors"][0]
            .as_str()
            .unwrap()
            .contains("no handler for route")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_follow_openbao() {
    let s = TestServer::with_limit(Some(1024)).await;

    let a = send(s.root("PUT", "secret/data/j").body("bad json")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json(),
        json!({"errors": ["failed to decode JSON input: invalid character 'b' looking for beginning of value"]})
    );

    let big = "x".repeat(4096);
    let a = send(
        s.root("PUT", "secret/data/big")
            .json(&json!({"data": {"v": big}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        a.json()["errors"][0]
            .as_str()
            .unwrap()
            .contains("too large")
    );

    // Outside /v1: 404 {"errors":[]}.
    for p in ["/", "/ui/", "/v2/secret", "/v1"] {
        let a = send(s.raw("GET", p)).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{p}");
        assert_eq!(a.body, "{\"errors\":[]}\n", "{p}");
    }
    // Non-printable characters in the path: 400.
    let a = send(s.raw("GET", "/v1/secret/data/a%00b")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Percent-encoded paths are decoded as Go does.
    send(
        s.root("PUT", "secret/data/with%20space")
            .json(&json!({"data": {"a": "b"}})),
    )
    .await;
    let a = send(s.root("LIST", "secret/metadata")).await;
    assert_eq!(a.json()["data"]["keys"], json!(["with space"]));

    // Unknown methods: 405 {"errors":[]}; HEAD and SCAN are unsupported operations.
    let a = send(s.root("FOO", "secret/data/x")).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.json(), json!({"errors": []}));
    let a = send(s.root("OPTIONS", "secret/data/x")).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    let a = send(s.root("SCAN", "secret/metadata")).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        a.json(),
        json!({"errors": ["1 error occurred:\n\t* unsupported operation\n\n"]})
    );
    let a = send(s.root("GET", "secret/metadata?list=true&scan=true")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // Writing to a path ending in `/`.
    let a = send(s.root("PUT", "secret/data/dir/").json(&json!({"data": {}}))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json(),
        json!({"errors": ["cannot write to a path ending in '/'"]})
    );

    // Namespaces do not exist yet: asking for one is refused, the root namespace is fine.
    let a = send(
        s.root("GET", "secret/metadata?list=true")
            .header("X-Vault-Namespace", "team-a"),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.json()["errors"][0]
            .as_str()
            .unwrap()
            .contains("namespaces are not supported")
    );
    let a = send(
        s.root("GET", "secret/metadata?list=true")
            .header("X-Vault-Namespace", "root"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);

    // X-Vault-Wrap-TTL is parsed (wrapping itself: tests/wrapping.rs).
    let a = send(
        s.root("GET", "secret/data/x")
            .header("X-Vault-Wrap-TTL", "-1m"),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json(),
        json!({"errors": ["error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative"]})
    );
    let a = send(
        s.root("GET", "secret/data/x")
            .header("X-Vault-Wrap-TTL", "abc"),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json(),
        json!({"errors": ["error parsing X-Vault-Wrap-TTL header: time: invalid duration \"abc\""]})
    );
    // Nothing to wrap: the 404 as usual.
    let a = send(
        s.root("GET", "secret/data/x")
            .header("X-Vault-Wrap-TTL", "5m"),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body, "{\"errors\":[]}\n");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_size_limits_are_per_listener() {
    // The same body is refused by a 1 KiB listener and accepted by one without a limit.
    let body = json!({"data": {"v": "x".repeat(64 * 1024)}});
    let small = TestServer::with_limit(Some(1024)).await;
    let a = send(small.root("PUT", "secret/data/big").json(&body)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    small.stop().await;
    let unlimited = TestServer::with_limit(None).await;
    let a = send(unlimited.root("PUT", "secret/data/big").json(&body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    unlimited.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_health_codes_and_overrides() {
    let s = TestServer::dev().await;
    let a = send(s.anon("GET", "sys/health")).await;
    assert_eq!(a.status, StatusCode::OK);
    let body = a.json();
    assert_eq!(body["initialized"], true);
    assert_eq!(body["sealed"], false);
    assert_eq!(body["standby"], false);
    assert!(body.get("request_id").is_none(), "health is not enveloped");
    assert_eq!(a.headers["cache-control"], "no-store");

    let a = send(s.anon("GET", "sys/health?activecode=299")).await;
    assert_eq!(a.status.as_u16(), 299);
    let a = send(s.anon("GET", "sys/health?standbyok=true&sealedcode=200")).await;
    assert_eq!(a.status, StatusCode::OK);
    for bad in [
        "activecode=abc",
        "standbyok=maybe",
        "uninitcode=",
        "sealedcode=2.5",
    ] {
        let a = send(s.anon("GET", &format!("sys/health?{bad}"))).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(a.json(), json!({"errors": []}));
    }
    let a = send(s.anon("HEAD", "sys/health")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, "");
    let a = send(s.anon("HEAD", "sys/health?activecode=204")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = send(s.anon("POST", "sys/health")).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.json(), json!({"errors": []}));

    // Sealed: 503 by default, the override otherwise; logical calls are 503 "Vault is sealed".
    let a = send(s.root("PUT", "sys/seal")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(s.anon("GET", "sys/health")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json()["sealed"], true);
    let a = send(s.anon("GET", "sys/health?sealedcode=200")).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(s.root("GET", "secret/data/x")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json(), json!({"errors": ["Vault is sealed"]}));

    // Unseal with the dev key over HTTP.
    let key = s.sr.dev_unseal_key().unwrap();
    let a = send(s.anon("GET", "sys/unseal")).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    let a = send(
        s.anon("PUT", "sys/unseal")
            .json(&json!({"key": key.expose_secret()})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["sealed"], false);
    let a = send(s.anon("GET", "sys/seal-status")).await;
    assert_eq!(a.json()["sealed"], false);
    assert_eq!(a.json()["type"], "shamir");
    let a = send(s.anon("GET", "sys/leader")).await;
    assert_eq!(a.json()["ha_enabled"], false);
    let a = send(s.anon("GET", "sys/init")).await;
    assert_eq!(a.json(), json!({"initialized": true}));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_leases_over_http() {
    let s = TestServer::dev().await;
    // A token with a TTL is a lease under its creation path.
    let a = send(
        s.root("POST", "auth/token/create")
            .json(&json!({"ttl": "1h"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(s.root("LIST", "sys/leases/lookup/auth/token/create/")).await;
    assert_eq!(a.status, StatusCode::OK);
    let ids = keys_of(&a.json()["data"]);
    assert_eq!(ids.len(), 1);
    let lease_id = format!("auth/token/create/{}", ids[0]);
    let a = send(
        s.root("PUT", "sys/leases/lookup")
            .json(&json!({"lease_id": lease_id})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["data"]["id"], lease_id.as_str());
    assert_eq!(a.json()["data"]["ttl"], 3600);
    // Tokens renew through the token store, not here.
    let a = send(
        s.root("PUT", "sys/leases/renew")
            .json(&json!({"lease_id": lease_id})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json(),
        json!({"errors": ["tokens cannot be renewed through this endpoint"]})
    );
    let a = send(
        s.root("PUT", "sys/leases/lookup")
            .json(&json!({"lease_id": "nope/x"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json(), json!({"errors": ["invalid lease"]}));
    let a = send(s.root("PUT", "sys/leases/tidy")).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(
        a.json()["warnings"],
        json!([
            "Tidy operation successfully started. Any information from the operation will be printed to OpenBao's server logs."
        ])
    );
    // Queued revocation of the token lease: 202, then the runner revokes the token.
    let a = send(
        s.root("PUT", "sys/leases/revoke")
            .json(&json!({"lease_id": lease_id, "sync": false})),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let a = send(
        s.root("PUT", "sys/leases/revoke")
            .json(&json!({"lease_id": lease_id})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = send(s.root("GET", "sys/leases/count?type=irrevocable")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["data"], json!({"counts": {}, "lease_count": 0}));
    let a = send(s.root("GET", "sys/leases?type=irrevocable")).await;
    assert_eq!(a.json()["data"], json!({"lease_count": 0, "leases": []}));
    s.stop().await;
}

fn keys_of(data: &Value) -> Vec<String> {
    data["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}
