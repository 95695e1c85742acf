//! Operating the server over a real listener: `/v1/sys/metrics` (auth, JSON and Prometheus
//! formats, request, lease and audit figures), the request limits (size, JSON depth, duration,
//! concurrency) and JSON logs from the binary.
//!
//! The slow requests are real: a database role whose creation statement sleeps in the real
//! PostgreSQL (`STRONGROOM_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ROOT, TestServer, send};
use reqwest::StatusCode;
use serde_json::{Value, json};
use strongroom::{AuditDevice, Config, DevOptions, Strongroom};
use strongroom_server::config::ListenerConfig;

fn pg_url() -> String {
    std::env::var("STRONGROOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn dev_engine(audit_file: Option<&std::path::Path>) -> Strongroom {
    let mut cfg = Config::dev_with(DevOptions {
        root_token_id: Some(ROOT.into()),
        kv_v1: false,
    });
    if let Some(p) = audit_file {
        cfg = cfg.audit(AuditDevice::file("file", p.display().to_string()));
    }
    Strongroom::open(cfg).await.unwrap()
}

/// A `database/` mount on the real PostgreSQL with a role `slow` whose creation statement
/// sleeps `sleep_secs` and a role `quick` that creates a real login role.
async fn mount_database(s: &TestServer, sleep_secs: u32) {
    let a = send(
        s.root("POST", "sys/mounts/database")
            .json(&json!({"type": "database"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(s.root("POST", "database/config/pg").json(&json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg_url(),
        "allowed_roles": "slow,quick",
    })))
    .await;
    assert!(
        a.status.is_success(),
        "PostgreSQL at {} must be reachable: {} {}",
        pg_url(),
        a.status,
        a.body
    );
    let a = send(s.root("POST", "database/roles/slow").json(&json!({
        "db_name": "pg",
        "creation_statements": format!("SELECT pg_sleep({sleep_secs});"),
        "revocation_statements": "SELECT 1;",
        "default_ttl": "1h",
    })))
    .await;
    assert!(a.status.is_success(), "{}", a.body);
    let a = send(s.root("POST", "database/roles/quick").json(&json!({
        "db_name": "pg",
        "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        "default_ttl": "1h",
    })))
    .await;
    assert!(a.status.is_success(), "{}", a.body);
}

fn prometheus_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_read_on_sys_metrics_unless_the_listener_allows_anyone() {
    let s = TestServer::dev().await;
    // No token, a token without the capability: 403, as OpenBao.
    let a = send(s.anon("GET", "sys/metrics")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body.contains("permission denied"), "{}", a.body);
    for (name, rules) in [
        (
            "nometrics",
            r#"path "secret/*" { capabilities = ["read"] }"#,
        ),
        (
            "metrics",
            r#"path "sys/metrics" { capabilities = ["read"] }"#,
        ),
    ] {
        let a = send(
            s.root("PUT", &format!("sys/policy/{name}"))
                .json(&json!({ "policy": rules })),
        )
        .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    }
    let token = |policy: &'static str| {
        let s = &s;
        async move {
            let a = send(
                s.root("POST", "auth/token/create")
                    .json(&json!({"policies": [policy]})),
            )
            .await;
            a.json()["auth"]["client_token"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let without = token("nometrics").await;
    let with = token("metrics").await;
    let a = send(
        s.anon("GET", "sys/metrics")
            .header("X-Vault-Token", &without),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let a = send(s.anon("GET", "sys/metrics").header("X-Vault-Token", &with)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let j = a.json();
    for key in ["Timestamp", "Gauges", "Points", "Counters", "Samples"] {
        assert!(j.get(key).is_some(), "{key} missing in {j}");
    }
    assert!(j["Timestamp"].as_str().unwrap().ends_with(" +0000 UTC"));

    // Bad format, wrong method: OpenBao's answers.
    let a = send(s.root("GET", "sys/metrics?format=xml")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json(),
        json!({"errors": ["metric response format \"xml\" unknown"]})
    );
    let a = send(s.root("POST", "sys/metrics")).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.json(), json!({"errors": []}));
    s.stop().await;

    // `telemetry { unauthenticated_metrics_access = true }` (what -dev's listener has).
    let sr = dev_engine(None).await;
    let mut cfg = ListenerConfig::plain("127.0.0.1:0");
    cfg.unauthenticated_metrics_access = true;
    let s = TestServer::serve_with(sr, cfg).await;
    let a = send(s.anon("GET", "sys/metrics?format=prometheus")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("strongroom_core_sealed 0"), "{}", a.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_text_counts_requests_per_mount_and_shows_audit_and_seal() {
    let dir = tempfile::tempdir().unwrap();
    let sr = dev_engine(Some(&dir.path().join("audit.log"))).await;
    let s = TestServer::serve_with(sr, ListenerConfig::plain("127.0.0.1:0")).await;
    let a = send(
        s.root("POST", "secret/data/app")
            .json(&json!({"data": {"k": "v"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    for _ in 0..3 {
        assert_eq!(
            send(s.root("GET", "secret/data/app")).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(s.root("GET", "secret/data/missing")).await.status,
        StatusCode::NOT_FOUND
    );
    let a = send(s.root("GET", "sys/metrics?format=prometheus")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let t = &a.body;
    let reads = r#"{mount="secret/",method="GET",status="200"}"#;
    assert_eq!(
        prometheus_value(t, &format!("strongroom_http_requests_total{reads}")),
        Some(3.0),
        "{t}"
    );
    assert_eq!(
        prometheus_value(
            t,
            r#"strongroom_http_requests_total{mount="secret/",method="POST",status="200"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        prometheus_value(
            t,
            r#"strongroom_http_requests_total{mount="secret/",method="GET",status="404"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        prometheus_value(
            t,
            r#"strongroom_http_request_duration_seconds_bucket{mount="secret/",method="GET",status="200",le="+Inf"}"#
        ),
        Some(3.0)
    );
    assert!(t.contains("# TYPE strongroom_http_request_duration_seconds histogram"));
    assert_eq!(prometheus_value(t, "strongroom_core_sealed"), Some(0.0));
    assert!(prometheus_value(t, "strongroom_uptime_seconds").unwrap() > 0.0);
    // Every request so far was audited by the file device.
    let written = prometheus_value(t, r#"strongroom_audit_written_total{device="file/"}"#)
        .unwrap_or_else(|| panic!("no audit figures in\n{t}"));
    assert!(written >= 10.0, "{written}");
    assert_eq!(
        prometheus_value(t, r#"strongroom_audit_dropped_total{device="file/"}"#),
        Some(0.0)
    );
    assert_eq!(
        prometheus_value(t, "strongroom_lease_revocations_in_flight"),
        Some(0.0)
    );
    assert_eq!(
        prometheus_value(
            t,
            r#"strongroom_http_requests_rejected_total{reason="overload"}"#
        ),
        Some(0.0)
    );
    // Well-formed: every sample line is `name{labels} value` or `name value`.
    for line in t.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad line {line:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_figures_follow_created_and_revoked_credentials() {
    let s = TestServer::dev().await;
    mount_database(&s, 0).await;
    let a = send(s.root("GET", "database/creds/quick")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let lease = a.json()["lease_id"].as_str().unwrap().to_string();
    let metrics = || async {
        send(s.root("GET", "sys/metrics?format=prometheus"))
            .await
            .body
    };
    let t = metrics().await;
    assert_eq!(
        prometheus_value(&t, r#"strongroom_leases_created_total{mount="database/"}"#),
        Some(1.0),
        "{t}"
    );
    assert_eq!(
        prometheus_value(&t, r#"strongroom_leases_revoked_total{mount="database/"}"#),
        Some(0.0)
    );
    let a = send(
        s.root("PUT", "sys/leases/revoke")
            .json(&json!({ "lease_id": lease })),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let t = metrics().await;
    assert_eq!(
        prometheus_value(&t, r#"strongroom_leases_revoked_total{mount="database/"}"#),
        Some(1.0),
        "{t}"
    );
    let j = send(s.root("GET", "sys/metrics")).await.json();
    assert!(
        j["Counters"].as_array().unwrap().iter().any(|c| {
            c["Name"] == "strongroom.leases.created_total"
                && c["Labels"]["mount"] == "database/"
                && c["Count"] == 1
        }),
        "{j}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_size_and_json_depth_limits() {
    let s = TestServer::dev().await;
    // The default max_request_size, 32 MiB: one byte more is a 413.
    let big = vec![b' '; 32 * 1024 * 1024 + 1];
    let a = send(s.root("PUT", "secret/data/big").body(big)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"errors": ["failed to decode JSON input: http: request body too large"]})
    );

    let nested = |depth: usize| {
        // {"data":{"a":[[...1...]]}}: two objects plus depth-2 arrays (KV v1 keeps any shape;
        // KV v2 has a shallower limit of its own).
        format!(
            "{{\"data\":{{\"a\":{}1{}}}}}",
            "[".repeat(depth - 2),
            "]".repeat(depth - 2)
        )
    };
    let a = send(
        s.root("POST", "sys/mounts/kv1")
            .json(&json!({"type": "kv", "options": {"version": "1"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let max = strongroom_server::http::MAX_JSON_DEPTH;
    let a = send(s.root("PUT", "kv1/deep").body(nested(max))).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(s.root("PUT", "secret/data/deep").body(nested(max + 1))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json(),
        json!({"errors": ["failed to decode JSON input: exceeded max depth"]})
    );
    // A body far deeper than any stack would take is refused the same way.
    let a = send(s.root("PUT", "secret/data/deep").body(nested(200_000))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Nothing was written by the refused requests.
    let a = send(s.root("GET", "secret/metadata/big")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_max_request_duration_answers_500() {
    let sr = dev_engine(None).await;
    let mut cfg = ListenerConfig::plain("127.0.0.1:0");
    cfg.max_request_duration = Some(Duration::from_millis(500));
    let s = TestServer::serve_with(sr, cfg).await;
    mount_database(&s, 5).await;
    let started = Instant::now();
    let a = send(s.root("GET", "database/creds/slow")).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"errors": ["1 error occurred:\n\t* context canceled\n\n"]})
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let t = send(s.root("GET", "sys/metrics?format=prometheus"))
        .await
        .body;
    assert_eq!(
        prometheus_value(
            &t,
            r#"strongroom_http_requests_rejected_total{reason="timeout"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        prometheus_value(
            &t,
            r#"strongroom_http_requests_total{mount="database/",method="GET",status="500"}"#
        ),
        Some(1.0)
    );
    // The abandoned call registered no lease.
    let a = send(s.root("LIST", "sys/leases/lookup/database/creds/slow")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_max_concurrent_requests_answer_503() {
    let sr = dev_engine(None).await;
    let mut cfg = ListenerConfig::plain("127.0.0.1:0");
    cfg.max_concurrent_requests = Some(1);
    let s = TestServer::serve_with(sr, cfg).await;
    mount_database(&s, 3).await;
    // The slow request retries while a probe below holds the only slot (under load the first
    // probe can get there first).
    let slow = {
        let s_root = s.root("GET", "database/creds/slow");
        tokio::spawn(async move {
            loop {
                let a = send(s_root.try_clone().expect("a body-less request clones")).await;
                if a.status != StatusCode::SERVICE_UNAVAILABLE {
                    break a;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // Wait until the slow request holds the only slot (its connection is real, so poll).
    let mut refused = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let a = send(s.root("GET", "sys/health")).await;
        if a.status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("a second request was never refused");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(
        refused.json(),
        json!({"errors": ["server is overloaded: too many requests in flight; try again"]})
    );
    let done = slow.await.unwrap();
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    // The slot is free again.
    let a = send(s.root("GET", "sys/metrics?format=prometheus")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        prometheus_value(
            &a.body,
            r#"strongroom_http_requests_rejected_total{reason="overload"}"#
        )
        .unwrap()
            >= 1.0
    );
    let lease = done.json()["lease_id"].as_str().unwrap().to_string();
    let a = send(
        s.root("PUT", "sys/leases/revoke")
            .json(&json!({ "lease_id": lease })),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    s.stop().await;
}

/// `-log-format=json -log-level=debug`: every stderr line is a JSON object, and each request
/// is logged with its method, path, mount and status (never its body).
#[test]
fn the_binary_logs_json_lines_with_requests_at_debug() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            "-dev-listen-address=127.0.0.1:0",
            "-log-format=json",
            "-log-level=debug",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut url = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(u) = line.trim().strip_prefix("Api Address: ") {
            url = Some(u.to_string());
            break;
        }
    }
    let url = url.expect("no Api Address in the banner");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = common::client();
        let r = http
            .post(format!("{url}/v1/secret/data/logged"))
            .header("X-Vault-Token", "root")
            .json(&json!({"data": {"password": "hunter2-not-logged"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    });
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = child.wait();
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let request = lines
        .iter()
        .find(|l| l["message"] == "request" && l["path"] == "/v1/secret/data/logged")
        .unwrap_or_else(|| panic!("no request line in\n{stderr}"));
    assert_eq!(request["level"], "DEBUG");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["mount"], "secret/");
    assert_eq!(request["status"], 200);
    assert!(request["timestamp"].is_string());
    assert!(lines.iter().any(|l| l["message"] == "stopped"));
}
