//! Audit through the pipeline: every call is logged (request, then response, same id), secret
//! values are HMAC'd, `sys/audit-hash` matches the log, and a stalled device cannot hang calls.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strongroom::{AuditDevice, Config, ErrorCode, Request, Strongroom, data};

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn kv_write_is_logged_with_hmacd_values() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let sr =
        Strongroom::open(Config::dev().audit(AuditDevice::file("file", log.to_str().unwrap())))
            .await
            .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.kv("secret")
        .put(
            "app/db",
            &data(json!({"password": "hunter2-secret", "n": 5})),
        )
        .await
        .unwrap();
    assert!(sr.flush_audit(Duration::from_secs(5)).await);
    let entries = lines(&log);
    let (req, resp) = (&entries[entries.len() - 2], &entries[entries.len() - 1]);
    assert_eq!(req["type"], "request");
    assert_eq!(resp["type"], "response");
    assert_eq!(req["request"]["id"], resp["request"]["id"]);
    assert_eq!(req["request"]["path"], "secret/data/app/db");
    assert_eq!(req["request"]["operation"], "create");
    assert_eq!(req["request"]["mount_point"], "secret/");
    assert_eq!(req["request"]["mount_type"], "kv");
    let pw = req["request"]["data"]["data"]["password"].as_str().unwrap();
    assert!(pw.starts_with("hmac-sha256:"));
    assert_eq!(req["request"]["data"]["data"]["n"], 5);
    assert!(
        req["auth"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    // The created_time is an RFC 3339 time: left in clear.
    assert!(
        !resp["response"]["data"]["created_time"]
            .as_str()
            .unwrap()
            .starts_with("hmac")
    );
    let raw = std::fs::read_to_string(&log).unwrap();
    assert!(!raw.contains("hunter2-secret"));
    assert!(!raw.contains(&sr.dev_root_token().unwrap()));
    // sys/audit-hash gives the same HMAC.
    let h = root
        .write(
            "sys/audit-hash/file",
            data(json!({"input": "hunter2-secret"})),
        )
        .await
        .unwrap();
    assert_eq!(h.get("hash").unwrap(), pw);
    let listed = root.read("sys/audit").await.unwrap().unwrap();
    assert_eq!(listed.get("file/").unwrap()["type"], "file");
    let e = root
        .write("sys/audit/other", data(json!({"type": "file"})))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .starts_with("cannot enable audit device via API")
    );
}

#[tokio::test]
async fn a_denied_call_is_logged_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let sr =
        Strongroom::open(Config::dev().audit(AuditDevice::file("file", log.to_str().unwrap())))
            .await
            .unwrap();
    let e = sr
        .handle(Request::read("secret/data/x").with_token("s.bogusbogusbogusbogus000"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert!(sr.flush_audit(Duration::from_secs(5)).await);
    let entries = lines(&log);
    let last = entries.last().unwrap();
    assert_eq!(last["type"], "response");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("permission denied")
    );
    assert_eq!(last["auth"]["token_type"], "default");
}

/// A peer that accepts connections and never reads: writes block once the socket buffer fills.
#[cfg(unix)]
fn never_reading_peer(path: &std::path::Path) {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
}

#[cfg(unix)]
#[tokio::test]
async fn a_stalled_device_never_hangs_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stall.sock");
    never_reading_peer(&sock);
    let best_effort = AuditDevice::socket(
        "stall",
        sock.to_str().unwrap(),
        strongroom::SocketType::Unix,
    )
    .best_effort()
    .with_queue_capacity(8);
    let sr = Strongroom::open(Config::dev().audit(best_effort))
        .await
        .unwrap();
    let kv = sr.client(sr.dev_root_token().unwrap()).kv("secret");
    let big = "x".repeat(64 * 1024);
    let start = Instant::now();
    for i in 0..200 {
        kv.put(&format!("k{i}"), &data(json!({"v": big})))
            .await
            .unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "best-effort device slowed calls: {:?}",
        start.elapsed()
    );
    let stats = sr.audit_stats();
    assert!(
        stats[0].dropped > 0,
        "the full queue must drop and count: {stats:?}"
    );

    // The same stall on a required device: calls fail within the deadline instead of hanging.
    let sock2 = dir.path().join("stall2.sock");
    never_reading_peer(&sock2);
    let required = AuditDevice::socket(
        "stall2",
        sock2.to_str().unwrap(),
        strongroom::SocketType::Unix,
    )
    .required()
    .with_deadline(Duration::from_millis(50));
    let sr = Strongroom::open(Config::dev().audit(required))
        .await
        .unwrap();
    let kv = sr.client(sr.dev_root_token().unwrap()).kv("secret");
    let mut failed = 0;
    let start = Instant::now();
    for i in 0..60 {
        if kv
            .put(&format!("k{i}"), &data(json!({"v": big})))
            .await
            .is_err()
        {
            failed += 1;
        }
    }
    assert!(
        failed > 0,
        "a required device that cannot write must fail calls"
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "calls hung on a stalled device: {:?}",
        start.elapsed()
    );
}
