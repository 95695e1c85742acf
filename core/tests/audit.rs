//! Audit through the pipeline: every call is logged (request, then response, same id), secret
//! values are HMAC'd, `sys/audit-hash` matches the log, and a stalled device cannot hang calls.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use secrecy::ExposeSecret;
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

/// A dev engine with one file audit device; the directory (kept alive by the caller) holds
/// the log.
async fn dev_with_file_audit() -> (tempfile::TempDir, std::path::PathBuf, Strongroom) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let sr =
        Strongroom::open(Config::dev().audit(AuditDevice::file("file", log.to_str().unwrap())))
            .await
            .unwrap();
    (dir, log, sr)
}

#[tokio::test]
async fn kv_write_is_logged_with_hmacd_values() {
    let (_dir, log, sr) = dev_with_file_audit().await;
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
    assert!(!raw.contains(sr.dev_root_token().unwrap().expose_secret()));
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
    let (_dir, log, sr) = dev_with_file_audit().await;
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

/// An engine on a SQLite store in `dir` that unseals itself from a key file, with one audit
/// device from the configuration (`cfg/`) and the API switch as given.
async fn open_store(dir: &std::path::Path, allow_api: bool) -> Strongroom {
    Strongroom::open(
        Config::sqlite(dir.join("sr.db"))
            .unseal_key_file(dir.join("unseal.key"))
            .audit(AuditDevice::file(
                "cfg",
                dir.join("cfg.log").to_str().unwrap(),
            ))
            .unsafe_allow_api_audit_creation(allow_api),
    )
    .await
    .unwrap()
}

fn device_paths(listed: &strongroom::Response) -> Vec<String> {
    let mut paths: Vec<String> = listed.data.as_ref().unwrap().keys().cloned().collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn api_audit_devices_need_the_config_switch_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let api_log = dir.path().join("api.log");
    let enable_body = json!({
        "type": "file",
        "description": "from the API",
        "options": {"file_path": api_log.to_str().unwrap(), "hmac_accessor": false},
    });

    // Without the switch (OpenBao's default): refused, and nothing changes.
    let sr = open_store(dir.path(), false).await;
    let root_token = secrecy::ExposeSecret::expose_secret(
        &sr.init_with_key_file(dir.path().join("unseal.key"))
            .await
            .unwrap(),
    )
    .to_string();
    let root = sr.client(root_token.as_str());
    root.sys()
        .enable_mount("secret", "kv", &[("version", "2")])
        .await
        .unwrap();
    let e = root
        .write("sys/audit/api", data(enable_body.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert_eq!(
        e.message(),
        "cannot enable audit device via API; use declarative, config-based audit device management instead"
    );
    assert!(!api_log.exists());
    let listed = root.read("sys/audit").await.unwrap().unwrap();
    assert_eq!(device_paths(&listed), ["cfg/"]);
    drop(root);
    drop(sr);

    // With the switch: bad requests are refused with OpenBao's texts and change nothing.
    let sr = open_store(dir.path(), true).await;
    let root = sr.client(root_token.as_str());
    for (body, expected) in [
        (
            json!({"type": "file", "options": {"file_path": api_log.to_str().unwrap(), "prefix": "x"}}),
            "audit log prefixing is not allowed",
        ),
        (
            json!({"type": "file", "options": {"file_path": api_log.to_str().unwrap(), "mode": "rw"}}),
            "strconv.ParseUint: parsing \"rw\": invalid syntax",
        ),
        (json!({"type": "file"}), "file_path is required"),
        (
            json!({"type": "syslog"}),
            "unknown backend type: \"syslog\"",
        ),
    ] {
        let e = root.write("sys/audit/api", data(body)).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (ErrorCode::InvalidInput, expected));
    }
    let e = root
        .write("sys/audit/cfg/nested", data(enable_body.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "path already in use");
    assert!(!api_log.exists());
    assert_eq!(
        device_paths(&root.read("sys/audit").await.unwrap().unwrap()),
        ["cfg/"]
    );

    // Enabled: listed, and every call is logged to it too.
    root.write("sys/audit/api", data(enable_body.clone()))
        .await
        .unwrap();
    let listed = root.read("sys/audit").await.unwrap().unwrap();
    assert_eq!(device_paths(&listed), ["api/", "cfg/"]);
    assert_eq!(
        listed.get("api/").unwrap(),
        &json!({"description": "from the API", "local": false,
                "options": {"file_path": api_log.to_str().unwrap(), "hmac_accessor": "0"},
                "path": "api/", "type": "file"})
    );
    root.kv("secret")
        .put("app", &data(json!({"password": "api-secret"})))
        .await
        .unwrap();
    // A call returns once one required device logged it: wait for the other one too.
    assert!(sr.flush_audit(Duration::from_secs(5)).await);
    let entries = lines(&api_log);
    let last = entries.last().unwrap();
    assert_eq!(last["type"], "response");
    assert_eq!(last["request"]["path"], "secret/data/app");
    let hash = root
        .write("sys/audit-hash/api", data(json!({"input": "api-secret"})))
        .await
        .unwrap();
    let hash = hash.get("hash").unwrap().as_str().unwrap().to_string();
    let logged = entries
        .iter()
        .rev()
        .find(|e| e["type"] == "request")
        .unwrap();
    assert_eq!(logged["request"]["data"]["data"]["password"], hash);
    // The configuration's device stays whatever the API says.
    let e = root.delete("sys/audit/cfg").await.unwrap_err();
    assert_eq!(
        e.message(),
        "cannot disable configuration-managed audit device"
    );
    // The refused delete is logged by writer threads that outlive a dropped engine: let them
    // finish before the next engine's lines are counted.
    assert!(sr.flush_audit(Duration::from_secs(5)).await);
    drop(root);
    drop(sr);

    // After a restart (switch off now) the stored device is back, with the same salt.
    let sr = open_store(dir.path(), false).await;
    let root = sr.client(root_token.as_str());
    assert_eq!(
        device_paths(&root.read("sys/audit").await.unwrap().unwrap()),
        ["api/", "cfg/"]
    );
    // Earlier calls returned once one device had them: let both finish before counting.
    assert!(sr.flush_audit(Duration::from_secs(5)).await);
    let before = lines(&api_log).len();
    root.kv("secret").get("app").await.unwrap().unwrap();
    assert!(sr.flush_audit(Duration::from_secs(5)).await);
    assert_eq!(lines(&api_log).len(), before + 2);
    let again = root
        .write("sys/audit-hash/api", data(json!({"input": "api-secret"})))
        .await
        .unwrap();
    assert_eq!(again.get("hash").unwrap().as_str().unwrap(), hash);

    // Disabled: gone at once and after the next restart; an unknown path is a no-op.
    root.delete("sys/audit/api").await.unwrap();
    root.delete("sys/audit/never-there").await.unwrap();
    assert_eq!(
        device_paths(&root.read("sys/audit").await.unwrap().unwrap()),
        ["cfg/"]
    );
    // Earlier calls returned once one device had them: let both finish before counting.
    assert!(sr.flush_audit(Duration::from_secs(5)).await);
    let before = lines(&api_log).len();
    root.kv("secret").get("app").await.unwrap().unwrap();
    assert!(sr.flush_audit(Duration::from_secs(5)).await);
    assert_eq!(lines(&api_log).len(), before);
    drop(root);
    drop(sr);
    let sr = open_store(dir.path(), true).await;
    let root = sr.client(root_token.as_str());
    assert_eq!(
        device_paths(&root.read("sys/audit").await.unwrap().unwrap()),
        ["cfg/"]
    );
}

/// `sys/wrapping/lookup` is checked before the token step, and was answered (or refused)
/// without a line in the audit log. Both now leave a request and a response entry; the
/// wrapping token itself appears only HMAC'd.
#[tokio::test]
async fn wrapping_lookups_and_refused_wrapping_tokens_are_audited() {
    let (_dir, log, sr) = dev_with_file_audit().await;
    let root = sr.client(sr.dev_root_token().unwrap());
    root.kv("secret")
        .put("app", &data(json!({"password": "wrapped-secret"})))
        .await
        .unwrap();
    let wrapped = root
        .handle(Request::read("secret/data/app").with_wrap_ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    let token = wrapped.wrap_info.unwrap().token;
    let info = root.sys().wrap_lookup(token.expose_secret()).await.unwrap();
    assert_eq!(info["creation_path"], "secret/data/app");
    let bogus = "s.NotAWrappingTokenAtAll1";
    let err = root.sys().wrap_lookup(bogus).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(sr.flush_audit(Duration::from_secs(5)).await);

    let raw = std::fs::read_to_string(&log).unwrap();
    assert!(
        !raw.contains(token.expose_secret()),
        "the wrapping token only HMAC'd"
    );
    assert!(!raw.contains(bogus), "the refused token only HMAC'd");
    let entries = lines(&log);
    let lookups: Vec<&Value> = entries
        .iter()
        .filter(|e| e["request"]["path"] == "sys/wrapping/lookup")
        .collect();
    assert_eq!(
        lookups.len(),
        4,
        "request + response for each lookup: {lookups:?}"
    );
    let types: Vec<&str> = lookups
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["request", "response", "request", "response"]);
    // Response values are HMAC'd like any other.
    assert!(
        lookups[1]["response"]["data"]["creation_path"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    assert!(lookups[1]["error"].is_null() || lookups[1]["error"] == "");
    assert!(
        lookups[3]["error"]
            .as_str()
            .unwrap()
            .contains("wrapping token is not valid or does not exist"),
        "{}",
        lookups[3]["error"]
    );
}
