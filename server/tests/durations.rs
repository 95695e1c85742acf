//! Extreme durations, mount lease limits and protected mount paths over HTTP (issue #23,
//! items 5, 7 and 8), with what `bao server -dev` (2.7.2) answers. A wrap TTL past Go's
//! limit used to panic the request's task: the client saw a dropped connection.
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
use serde_json::json;

const OVERFLOW: &str =
    "multiplication of durations resulted in overflow, one operand may be too large";

#[tokio::test]
async fn wrap_ttl_past_gos_limit_is_a_400_with_openbaos_text() {
    let s = TestServer::dev().await;
    for (raw, why) in [
        (
            "18446744073709551615",
            "time: invalid duration \"18446744073709551615\"".to_string(),
        ),
        (
            "999999999h",
            "time: invalid duration \"999999999h\"".to_string(),
        ),
        ("9223372037", OVERFLOW.to_string()),
        (
            "2562048h",
            "time: invalid duration \"2562048h\"".to_string(),
        ),
    ] {
        let a = send(
            s.root("POST", "sys/wrapping/wrap")
                .header("X-Vault-Wrap-TTL", raw)
                .json(&json!({"a": "b"})),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{raw}: {}", a.body);
        assert_eq!(
            a.json(),
            json!({"errors": [format!("error parsing X-Vault-Wrap-TTL header: {why}")]})
        );
    }
    // Go's longest duration is accepted, as by bao.
    let a = send(
        s.root("POST", "sys/wrapping/wrap")
            .header("X-Vault-Wrap-TTL", "9223372036")
            .json(&json!({"a": "b"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["wrap_info"]["ttl"], 9_223_372_036_u64);
    // The server still answers.
    let a = send(s.root("GET", "sys/mounts")).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn extreme_token_and_policy_durations_are_400s() {
    let s = TestServer::dev().await;
    for (path, body, want) in [
        (
            "auth/token/create",
            json!({"ttl": 18_446_744_073_709_551_615_u64}),
            "time: invalid duration \"18446744073709551615\"".to_string(),
        ),
        (
            "auth/token/create",
            json!({"explicit_max_ttl": "999999999h"}),
            "time: invalid duration \"999999999h\"".to_string(),
        ),
        (
            "sys/policies/acl/p",
            json!({"policy": "path \"x\" { capabilities = [\"read\"] }", "ttl": "9223372037"}),
            OVERFLOW.to_string(),
        ),
    ] {
        let a = send(s.root("POST", path).json(&body)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.body);
        assert!(
            a.json()["errors"][0].as_str().unwrap().ends_with(&want),
            "{}",
            a.body
        );
    }
}

/// The PKI tutorial: `sys/mounts/pki` with `max_lease_ttl=87600h`, then tuned further.
#[tokio::test]
async fn a_mount_maximum_above_768h_is_accepted() {
    let s = TestServer::dev().await;
    let a = send(
        s.root("POST", "sys/mounts/ten")
            .json(&json!({"type": "kv", "config": {"max_lease_ttl": "87600h"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(
        s.root("POST", "sys/mounts/ten/tune")
            .json(&json!({"max_lease_ttl": "876000h"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(s.root("GET", "sys/mounts/ten/tune")).await;
    assert_eq!(a.json()["max_lease_ttl"], 876_000_u64 * 3600);
    assert_eq!(a.json()["default_lease_ttl"], 768 * 3600);
}

#[tokio::test]
async fn protected_mount_paths_answer_openbaos_400() {
    let s = TestServer::dev().await;
    for path in ["audit", "audit/x", "sys", "auth", "cubbyhole", "identity"] {
        let a = send(
            s.root("POST", &format!("sys/mounts/{path}"))
                .json(&json!({"type": "kv"})),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            a.json(),
            json!({"errors": [format!("cannot mount \"{path}/\"")]})
        );
    }
}
