//! What an unauthenticated or hostile client can make the server hold: metrics series
//! (only existing mounts are labels, bounded, removed mounts dropped), JSON bodies
//! (`max_request_json_memory`, `max_request_json_strings`) and connections (a client that
//! sends half a request is disconnected after `http_read_header_timeout` /
//! `http_read_timeout`). The timeouts are shortened so each test takes about a second.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, send};
use reqwest::StatusCode;
use serde_json::{Value, json};
use strongroom::{Config, DevOptions, Strongroom};
use strongroom_server::config::ListenerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn dev_engine() -> Strongroom {
    Strongroom::open(Config::dev_with(DevOptions {
        root_token_id: Some(common::ROOT.into()),
        kv_v1: false,
    }))
    .await
    .unwrap()
}

async fn serve(edit: impl FnOnce(&mut ListenerConfig)) -> TestServer {
    let mut cfg = ListenerConfig::plain("127.0.0.1:0");
    edit(&mut cfg);
    TestServer::serve_with(dev_engine().await, cfg).await
}

async fn prometheus(s: &TestServer) -> String {
    let a = send(s.anon("GET", "sys/metrics?format=prometheus")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

/// The lines that name request series (the rest are figures whose digits change).
fn request_series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("strongroom_http_request"))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_random_paths_do_not_grow_the_metrics() {
    let s = serve(|c| c.unauthenticated_metrics_access = true).await;
    // One request of the kind the flood sends, so its series exists before the baseline.
    let a = send(s.anon("GET", "warmup/x")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    // Twice: the first read adds the series of reading the metrics.
    prometheus(&s).await;
    let before = prometheus(&s).await;

    let mut flood = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let rb = s.anon("GET", &format!("rnd-{i}-{}/x", i * 7919));
        flood.spawn(async move { rb.send().await.unwrap().status() });
        if flood.len() >= 32 {
            assert_eq!(
                flood.join_next().await.unwrap().unwrap(),
                StatusCode::FORBIDDEN
            );
        }
    }
    while let Some(st) = flood.join_next().await {
        assert_eq!(st.unwrap(), StatusCode::FORBIDDEN);
    }

    let after = prometheus(&s).await;
    // The same series, only their counts moved; no invented name shows.
    assert_eq!(request_series(&before), request_series(&after));
    assert!(
        after.len() < before.len() + 512,
        "{} -> {}",
        before.len(),
        after.len()
    );
    assert!(!after.contains("rnd-"), "{after}");
    assert!(!after.contains("warmup"), "{after}");
    assert!(
        after.contains(
            r#"strongroom_http_requests_total{mount="unknown",method="GET",status="403"} 1001"#
        ),
        "{after}"
    );
    let j = send(s.anon("GET", "sys/metrics")).await.json();
    assert!(!j.to_string().contains("rnd-"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_mount_stops_being_reported() {
    let s = serve(|c| c.unauthenticated_metrics_access = true).await;
    let a = send(
        s.root("POST", "sys/mounts/team-private")
            .json(&json!({"type": "kv", "options": {"version": "1"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = send(s.root("PUT", "team-private/k").json(&json!({"v": "1"}))).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let t = prometheus(&s).await;
    assert!(
        t.contains(
            r#"strongroom_http_requests_total{mount="team-private/",method="PUT",status="204"} 1"#
        ),
        "{t}"
    );
    let a = send(s.root("DELETE", "sys/mounts/team-private")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    // Requests to the old path now fall under no mount.
    let a = send(s.root("GET", "team-private/k")).await;
    assert_ne!(a.status, StatusCode::OK, "{}", a.body);
    let t = prometheus(&s).await;
    assert!(!t.contains("team-private"), "{t}");
    s.stop().await;
}

fn strings_body(keys: usize) -> Value {
    let data: serde_json::Map<String, Value> = (0..keys)
        .map(|i| (format!("k{i}"), Value::String("v".into())))
        .collect();
    json!({ "data": data })
}

const TOO_MANY_STRINGS: &str =
    "refused JSON input due to high complexity: exceeded maximum number of strings";
const TOO_MUCH_MEMORY: &str =
    "refused JSON input due to high complexity: exceeded maximum estimated memory limits";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_over_the_complexity_limits_answer_400() {
    // OpenBao's defaults: 1000 strings (keys and values), 32.5 MiB estimated.
    let s = serve(|_| {}).await;
    // "data" + 499 keys + 499 values = 999 strings, then 1001 with one key more.
    let a = send(s.root("POST", "secret/data/ok").json(&strings_body(499))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = send(s.root("POST", "secret/data/many").json(&strings_body(500))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.json(), json!({ "errors": [TOO_MANY_STRINGS] }));
    // Before any authentication: an anonymous login and sys/unseal are refused the same way.
    let a = send(
        s.anon("POST", "auth/userpass/login/bob")
            .json(&strings_body(2000)),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.json(), json!({ "errors": [TOO_MANY_STRINGS] }));
    let a = send(s.anon("PUT", "sys/unseal").json(&strings_body(2000))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.json(), json!({ "errors": [TOO_MANY_STRINGS] }));
    // Numbers cost 24 bytes each: 1.5 million of them estimate past 32.5 MiB in a 3 MB body.
    let numbers = format!("{{\"data\":{{\"a\":[{}1]}}}}", "1,".repeat(1_500_000));
    let a = send(s.root("POST", "secret/data/numbers").body(numbers)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.json(), json!({ "errors": [TOO_MUCH_MEMORY] }));
    // Nothing was written by the refused requests.
    for path in ["secret/data/many", "secret/data/numbers"] {
        assert_eq!(
            send(s.root("GET", path)).await.status,
            StatusCode::NOT_FOUND
        );
    }
    s.stop().await;

    // The listener's own limits.
    let s = serve(|c| {
        c.max_request_json_strings = Some(10);
        c.max_request_json_memory = Some(2000);
    })
    .await;
    let a = send(s.root("POST", "secret/data/x").json(&strings_body(10))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.json(), json!({ "errors": [TOO_MANY_STRINGS] }));
    let a = send(
        s.root("POST", "secret/data/x")
            .json(&json!({"data": {"a": vec![1; 200]}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.json(), json!({ "errors": [TOO_MUCH_MEMORY] }));
    // Deep nesting runs into the memory estimate first, as in OpenBao.
    let deep = format!(
        "{{\"data\":{{\"a\":{}1{}}}}}",
        "[".repeat(600),
        "]".repeat(600)
    );
    let a = send(s.root("POST", "secret/data/x").body(deep)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.json(), json!({ "errors": [TOO_MUCH_MEMORY] }));
    // PATCH bodies are held to the same limits.
    let a = send(
        s.root("PATCH", "secret/data/x")
            .header("Content-Type", "application/merge-patch+json")
            .body(strings_body(10).to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.json(), json!({ "errors": [TOO_MANY_STRINGS] }));
    // A small body is fine.
    let a = send(
        s.root("POST", "secret/data/x")
            .json(&json!({"data": {"a": "b"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    s.stop().await;
}

/// Read until the server closes the connection (or `limit` passes): what it sent and when it
/// closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server kept the connection open for {limit:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_cut_off_after_the_read_timeouts() {
    let s = serve(|c| {
        c.timeouts.read_header = Duration::from_millis(400);
        c.timeouts.read = Duration::from_millis(700);
    })
    .await;
    let addr = s.url.trim_start_matches("http://").to_string();
    let limit = Duration::from_secs(5);

    // Nothing at all, then half a header: closed without an answer, as Go does.
    for sent in [&b""[..], b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n"] {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(sent).await.unwrap();
        let (got, took) = read_until_closed(&mut c, limit).await;
        assert_eq!(got, "", "{sent:?}");
        assert!(
            took >= Duration::from_millis(300),
            "{sent:?} closed after {took:?}"
        );
    }

    // Headers, then half the body: OpenBao's 500 with Go's read error, and the connection is
    // closed.
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let local = c.local_addr().unwrap();
    c.write_all(
        b"PUT /v1/secret/data/slow HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"data\":",
    )
    .await
    .unwrap();
    let (got, took) = read_until_closed(&mut c, limit).await;
    assert!(got.starts_with("HTTP/1.1 500"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    let body: Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"errors": [format!("read tcp {addr}->{local}: i/o timeout")]})
    );
    assert!(
        took >= Duration::from_millis(600),
        "answered after {took:?}"
    );
    // Nothing was written.
    assert_eq!(
        send(s.root("GET", "secret/data/slow")).await.status,
        StatusCode::NOT_FOUND
    );

    // No cleartext HTTP/2 (OpenBao's Go listener serves none), whose connections the
    // HTTP/1 header and idle timeouts would not cover: the preface gets no SETTINGS frame.
    let mut c = TcpStream::connect(&addr).await.unwrap();
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut c, limit).await;
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 "), "{got:?}");

    // A complete request is answered; the connection then waits for the next one no longer
    // than the header timeout.
    let mut c = TcpStream::connect(&addr).await.unwrap();
    c.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut c, limit).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    let s = serve(|c| c.timeouts.write = Duration::from_millis(300)).await;
    // A response far larger than the socket buffers on both ends can hold.
    let value = "x".repeat(6 * 1024 * 1024);
    let a = send(
        s.root("POST", "secret/data/big")
            .json(&json!({"data": {"v": value}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let addr: std::net::SocketAddr = s.url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut c = socket.connect(addr).await.unwrap();
    c.write_all(b"GET /v1/secret/data/big HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root\r\n\r\n")
        .await
        .unwrap();
    // The answer starts (building it can take a while in a debug build)...
    let mut first = [0u8; 1];
    c.read_exact(&mut first).await.unwrap();
    // ... then the client stops reading: the server's write stalls, and it gives up after
    // 300 ms.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got = 1usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("connection still open after {got} bytes"),
        }
    }
    assert!(
        got < value.len(),
        "the whole response arrived ({got} bytes)"
    );
    // The server is fine and serves the next client.
    let a = send(s.root("GET", "secret/metadata/big")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    s.stop().await;
}
