//! The `strongroom` binary as operators run it: `server -dev`, `server -config` with SQLite
//! storage (init and unseal over HTTP, 503 while sealed), the `seal "file"` stanza across a
//! restart, SIGTERM, TLS, `version` and `-h`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Answer, Process, client, send};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strongroom"))
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = http.request(m, format!("{url}/v1/{path}"));
    if let Some(t) = token {
        rb = rb.header("X-Vault-Token", t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    send(rb).await
}

fn write_config(dir: &Path, extra: &str) -> String {
    let db = dir.join("strongroom.db");
    let text = format!(
        r#"
        ui = true
        disable_mlock = true
        cluster_addr = "https://127.0.0.1:8201"
        log_level = "warn"
        storage "sqlite" {{
          path = "{}"
        }}
        listener "tcp" {{
          address     = "127.0.0.1:0"
          tls_disable = true
        }}
        {extra}
        "#,
        db.display()
    );
    let path = dir.join("server.hcl");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn version_and_help() {
    let out = bin().arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Strongroom v"));

    let out = bin().args(["server", "-h"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "-dev-root-token-id",
        "-dev-listen-address",
        "-dev-kv-v1",
        "-config",
        "seal \"file\"",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }

    let out = bin().args(["server", "-no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag provided but not defined"));

    let out = bin().arg("server").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-config"));

    let out = bin().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: strongroom"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.hcl");
    std::fs::write(&bad, "storage \"raft\" { path = \"x\" }").unwrap();
    let out = bin()
        .args(["server", "-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("storage type `raft`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_server_prints_its_keys_and_serves() {
    let p = Process::start(&[
        "server",
        "-dev",
        "-dev-root-token-id=root",
        "-dev-listen-address",
        "127.0.0.1:0",
    ]);
    assert_eq!(p.banner_value("Root Token").as_deref(), Some("root"));
    let key = p.banner_value("Unseal Key").unwrap();
    assert_eq!(key.len(), 44, "a base64 32-byte key: {key}");
    assert!(p.banner.contains("Storage: inmem"));
    assert!(p.banner.contains(&format!("export BAO_ADDR='{}'", p.url)));

    let http = client();
    let a = call(&http, &p.url, "GET", "sys/mounts", Some("root"), None).await;
    assert_eq!(a.json()["secret/"]["options"]["version"], "2");
    let a = call(
        &http,
        &p.url,
        "PUT",
        "secret/data/x",
        Some("root"),
        Some(json!({"data": {"a": "b"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);

    // The printed unseal key unseals it again after a seal.
    let a = call(&http, &p.url, "PUT", "sys/seal", Some("root"), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = call(
        &http,
        &p.url,
        "PUT",
        "sys/unseal",
        None,
        Some(json!({"key": key})),
    )
    .await;
    assert_eq!(a.json()["sealed"], false);
    let a = call(&http, &p.url, "GET", "secret/data/x", Some("root"), None).await;
    assert_eq!(a.json()["data"]["data"], json!({"a": "b"}));

    assert!(p.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_kv_v1_and_combined_config() {
    let dir = tempfile::tempdir().unwrap();
    // -dev with -config: the config's listener is added, its storage is ignored.
    let cfg = write_config(dir.path(), "");
    let p = Process::start(&[
        "server",
        "-dev-kv-v1",
        "-dev-listen-address=127.0.0.1:0",
        "-config",
        &cfg,
    ]);
    assert!(p.banner.contains("Listener 2: tcp"), "{}", p.banner);
    assert!(p.banner.contains("Storage: inmem"));
    let root = p.banner_value("Root Token").unwrap();
    assert!(root.starts_with("s."), "{root}");
    let http = client();
    let a = call(&http, &p.url, "GET", "sys/mounts", Some(&root), None).await;
    assert_eq!(a.json()["secret/"]["options"]["version"], "1");
    assert!(!dir.path().join("strongroom.db").exists());
    // SIGHUP (a config reload in Vault) must not stop the server.
    let pid = p.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let a = call(&http, &p.url, "GET", "sys/health", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(p.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_sqlite_init_unseal_and_503_while_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let p = Process::start(&["server", "-config", &cfg]);
    assert!(p.banner.contains("Storage: sqlite"));
    assert!(p.banner.contains("Seal: not initialised"));
    let (http, url) = (client(), p.url.clone());

    let a = call(&http, &url, "GET", "sys/health", None, None).await;
    assert_eq!(a.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(a.json()["initialized"], false);
    let a = call(&http, &url, "GET", "sys/health?uninitcode=200", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = call(&http, &url, "GET", "sys/init", None, None).await;
    assert_eq!(a.json(), json!({"initialized": false}));

    let a = call(
        &http,
        &url,
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 3, "secret_threshold": 2})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let init = a.json();
    let keys: Vec<String> = init["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_string();
    assert_eq!(keys.len(), 3);
    let a = call(
        &http,
        &url,
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // Sealed: health 503, logical calls 503 "Vault is sealed".
    let a = call(&http, &url, "GET", "sys/health", None, None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    let a = call(&http, &url, "GET", "sys/mounts", Some(&root), None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json(), json!({"errors": ["Vault is sealed"]}));
    let a = call(&http, &url, "GET", "sys/seal-status", None, None).await;
    assert_eq!(a.json()["sealed"], true);
    assert_eq!(a.json()["t"], 2);
    assert_eq!(a.json()["storage_type"], "sqlite");

    // Unseal with two of the three shares (hex and base64 both work).
    let a = call(
        &http,
        &url,
        "PUT",
        "sys/unseal",
        None,
        Some(json!({"key": keys[0]})),
    )
    .await;
    assert_eq!(a.json()["sealed"], true);
    assert_eq!(a.json()["progress"], 1);
    let b64 = init["keys_base64"][2].as_str().unwrap();
    let a = call(
        &http,
        &url,
        "PUT",
        "sys/unseal",
        None,
        Some(json!({"key": b64})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["sealed"], false);
    let a = call(&http, &url, "GET", "sys/health", None, None).await;
    assert_eq!(a.status, StatusCode::OK);

    // Use it: mount KV v2, write, read.
    let a = call(
        &http,
        &url,
        "POST",
        "sys/mounts/secret",
        Some(&root),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = call(
        &http,
        &url,
        "PUT",
        "secret/data/db",
        Some(&root),
        Some(json!({"data": {"password": "pw"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = call(&http, &url, "GET", "secret/data/db", Some(&root), None).await;
    assert_eq!(a.json()["data"]["data"]["password"], "pw");

    // Seal again: 503 until unsealed.
    let a = call(&http, &url, "PUT", "sys/seal", Some(&root), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = call(&http, &url, "GET", "secret/data/db", Some(&root), None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);

    assert!(p.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seal_file_stanza_unseals_a_restarted_server() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("unseal.key");
    let cfg = write_config(
        dir.path(),
        &format!("seal \"file\" {{ path = \"{}\" }}", key_file.display()),
    );

    // First start: nothing to unseal with yet; initialise over HTTP with one share.
    let p = Process::start(&["server", "-config", &cfg]);
    let (http, url) = (client(), p.url.clone());
    let a = call(
        &http,
        &url,
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await;
    let init = a.json();
    let root = init["root_token"].as_str().unwrap().to_string();
    std::fs::write(&key_file, init["keys"][0].as_str().unwrap()).unwrap();
    call(
        &http,
        &url,
        "PUT",
        "sys/unseal",
        None,
        Some(json!({"key": init["keys"][0]})),
    )
    .await;
    let a = call(
        &http,
        &url,
        "POST",
        "sys/mounts/kv",
        Some(&root),
        Some(json!({"type": "kv"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = call(
        &http,
        &url,
        "PUT",
        "kv/k",
        Some(&root),
        Some(json!({"v": "kept"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert!(p.terminate().success());

    // Restart: unsealed from the key file, data still there.
    let p = Process::start(&["server", "-config", &cfg]);
    assert!(p.banner.contains("Seal: unsealed"), "{}", p.banner);
    let a = call(&http, &p.url, "GET", "kv/k", Some(&root), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["data"]["v"], "kept");
    assert!(p.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_with_rustls() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let cfg_path = dir.path().join("tls.hcl");
    std::fs::write(
        &cfg_path,
        format!(
            r#"
            storage "inmem" {{}}
            listener "tcp" {{
              address       = "127.0.0.1:0"
              tls_cert_file = "{}"
              tls_key_file  = "{}"
            }}
            "#,
            cert_file.display(),
            key_file.display()
        ),
    )
    .unwrap();
    let p = Process::start(&["server", "-config", cfg_path.to_str().unwrap()]);
    assert!(p.url.starts_with("https://127.0.0.1:"), "{}", p.url);
    assert!(p.banner.contains("tls: \"enabled\""));

    let ca = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let https = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let a = call(&https, &p.url, "GET", "sys/health", None, None).await;
    assert_eq!(a.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(a.json()["initialized"], false);
    // Plain HTTP to the TLS port does not get an API answer.
    let plain = p.url.replace("https://", "http://");
    let r = client().get(format!("{plain}/v1/sys/health")).send().await;
    assert!(r.is_err() || r.unwrap().status() != StatusCode::NOT_IMPLEMENTED);

    // SIGHUP reloads the certificate: new connections get the renewed one, with no restart.
    let renewed =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    std::fs::write(&cert_file, renewed.cert.pem()).unwrap();
    std::fs::write(&key_file, renewed.signing_key.serialize_pem()).unwrap();
    let trusting = |pem: String| {
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
            .build()
            .unwrap()
    };
    let new_only = trusting(renewed.cert.pem());
    let old_only = trusting(cert.cert.pem());
    let health = |c: &reqwest::Client| c.get(format!("{}/v1/sys/health", p.url)).send();
    assert!(
        health(&new_only).await.is_err(),
        "served the new cert before SIGHUP"
    );
    hangup(&p);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while health(&new_only).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        health(&old_only).await.is_err(),
        "still serving the old cert"
    );
    // A broken file on the next SIGHUP keeps the current certificate in service.
    std::fs::write(&cert_file, "not a certificate").unwrap();
    hangup(&p);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = health(&new_only).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED);
    assert!(p.terminate().success());
}

fn hangup(p: &Process) {
    let pid = p.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// A required file audit device: every call the server answered has its request and response
/// lines in the file after a `kill -9`, whether the caller wrote its own lines (an idle
/// device) or the writer thread did (a busy one). Calls are in flight when the process dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_file_audit_keeps_every_answered_call_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let cfg = dir.path().join("audit.hcl");
    std::fs::write(
        &cfg,
        format!(
            "audit \"file\" \"cfgfile\" {{\n  options {{ file_path = \"{}\" }}\n}}\n",
            log.display()
        ),
    )
    .unwrap();
    let mut p = Process::start(&[
        "server",
        "-dev",
        "-dev-root-token-id=root",
        "-dev-listen-address=127.0.0.1:0",
        "-config",
        cfg.to_str().unwrap(),
    ]);
    let http = client();
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (http, url, answered) = (http.clone(), p.url.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("k{t}x{i}");
                let r = http
                    .post(format!("{url}/v1/secret/data/{key}"))
                    .header("X-Vault-Token", "root")
                    .json(&json!({"data": {"v": "x"}}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::OK => answered.lock().unwrap().push(key),
                    _ => return,
                }
            }
        }));
    }
    // Let a few hundred calls through, then kill the server in the middle of others.
    for _ in 0..500 {
        if answered.lock().unwrap().len() >= 300 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 300,
        "only {} calls answered",
        answered.len()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let mut logged = std::collections::HashMap::<String, (bool, bool)>::new();
    for line in text.lines() {
        // A line cut by the kill can only be one whose call was never answered.
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(key) = v["request"]["path"]
            .as_str()
            .and_then(|p| p.strip_prefix("secret/data/"))
        else {
            continue;
        };
        let seen = logged.entry(key.to_string()).or_default();
        match v["type"].as_str() {
            Some("request") => seen.0 = true,
            Some("response") => seen.1 = true,
            other => panic!("unexpected entry type {other:?}"),
        }
    }
    for key in &answered {
        assert_eq!(
            logged.get(key),
            Some(&(true, true)),
            "the answered call on {key} is not in the audit log"
        );
    }
}
