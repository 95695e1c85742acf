//! Engine-level behaviour: lifecycle, the pipeline's error codes, mounts, rotation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::storage::{Backend, MemoryBackend, Page};
use strongroom::{
    Config, DevOptions, ErrorCode, Operation, Request, Strongroom, VirtualClock, data,
};

async fn dev() -> (Strongroom, String) {
    let sr = Strongroom::open(Config::dev()).await.unwrap();
    let root = sr.dev_root_token().unwrap().expose_secret().to_string();
    (sr, root)
}

#[tokio::test]
async fn init_unseal_seal_lifecycle() {
    let sr = Strongroom::open(Config::memory()).await.unwrap();
    assert!(!sr.is_initialized().await.unwrap());
    let st = sr.seal_status().await.unwrap();
    assert!(!st.initialized && st.sealed);
    assert_eq!(
        sr.handle(Request::read("secret/x"))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::Sealed
    );

    let init = sr.init(5, 3).await.unwrap();
    assert_eq!(init.keys.len(), 5);
    assert_eq!(init.keys_base64.len(), 5);
    assert!(init.root_token.expose_secret().starts_with("s."));
    assert_eq!(
        sr.init(1, 1).await.unwrap_err().code(),
        ErrorCode::AlreadyInitialized
    );
    assert!(sr.is_sealed());

    let st = sr.unseal(init.keys[0].expose_secret()).await.unwrap();
    assert_eq!(
        (st.sealed, st.progress, st.threshold, st.shares),
        (true, 1, 3, 5)
    );
    assert!(!st.nonce.is_empty());
    sr.unseal_reset().unwrap();
    assert_eq!(sr.seal_status().await.unwrap().progress, 0);
    sr.unseal(init.keys[1].expose_secret()).await.unwrap();
    sr.unseal(init.keys_base64[2].expose_secret())
        .await
        .unwrap();
    let st = sr.unseal(init.keys[4].expose_secret()).await.unwrap();
    assert!(!st.sealed);
    assert!(st.cluster_name.unwrap().starts_with("vault-cluster-"));

    let root = sr.client(init.root_token.expose_secret());
    root.sys()
        .enable_mount("kv", "kv", &[("version", "1")])
        .await
        .unwrap();
    root.write("kv/app", data(json!({"password": "pw"})))
        .await
        .unwrap();
    sr.seal().await.unwrap();
    assert_eq!(
        root.read("kv/app").await.unwrap_err().code(),
        ErrorCode::Sealed
    );
    sr.unseal(init.keys[0].expose_secret()).await.unwrap();
    sr.unseal(init.keys[1].expose_secret()).await.unwrap();
    sr.unseal(init.keys[2].expose_secret()).await.unwrap();
    let r = root.read("kv/app").await.unwrap().unwrap();
    assert_eq!(r.get("password").unwrap(), "pw");
}

#[tokio::test]
async fn unseal_errors_use_openbao_texts() {
    let sr = Strongroom::open(Config::memory()).await.unwrap();
    let init = sr.init(1, 1).await.unwrap();
    let e = sr
        .handle(Request::write("sys/unseal", data(json!({}))))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "'key' must be specified in request body as JSON, or 'reset' set to true"
    );
    let e = sr.unseal("zz!").await.unwrap_err();
    assert_eq!(e.message(), "'key' must be a valid hex or base64 string");
    let e = sr.unseal("abcd").await.unwrap_err();
    assert_eq!(
        e.message(),
        "invalid key: key is shorter than minimum 16 bytes"
    );
    let wrong = "00".repeat(32);
    assert_eq!(
        sr.unseal(&wrong).await.unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    assert!(sr.is_sealed());
    let r = sr
        .handle(Request::write(
            "sys/unseal",
            data(json!({"key": init.keys[0].expose_secret()})),
        ))
        .await
        .unwrap();
    assert_eq!(r.get("sealed").unwrap(), false);
    let e = sr
        .handle(Request::write(
            "sys/unseal",
            data(json!({"key": init.keys[0].expose_secret()})),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "vault is unsealed");
    let e = sr
        .handle(Request::write(
            "sys/init",
            data(json!({"secret_shares": 3, "secret_threshold": 1})),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "threshold must be greater than one for multiple shares"
    );
}

#[tokio::test]
async fn the_pipeline_refuses_bad_calls_with_typed_codes() {
    let (sr, root) = dev().await;
    // No token, a wrong token, a malformed token: all the same answer.
    for token in [None, Some("s.AAAAAAAAAAAAAAAAAAAAAAAA"), Some("garbage")] {
        let mut req = Request::read("secret/data/x");
        if let Some(t) = token {
            req = req.with_token(t);
        }
        let e = sr.handle(req).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied);
        assert_eq!(e.message(), "permission denied");
    }
    let c = sr.client(&root);
    let e = c.read("nomount/foo").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedPath);
    assert_eq!(
        e.message(),
        "no handler for route \"nomount/foo\". route entry not found."
    );
    let e = c
        .write("secret/data/dir/", data(json!({"data": {}})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "cannot write to a path ending in '/'");
    let e = c.read("secret/data/a\u{7}b").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let e = c.read("secret/../sys/mounts").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    // Any answer can be wrapped (see tests/wrapping.rs); a bad wrapping token is refused.
    let r = c
        .handle(Request {
            wrap_ttl: Some(Duration::from_secs(60)),
            ..Request::read("sys/mounts")
        })
        .await
        .unwrap();
    assert_eq!(r.wrap_info.unwrap().creation_path, "sys/mounts");
    let e = c
        .write("sys/wrapping/unwrap", data(json!({"token": "s.nope"})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
}

#[tokio::test]
async fn mounts_enable_tune_disable() {
    let (sr, root) = dev().await;
    let c = sr.client(&root);
    let sys = c.sys();
    sys.enable_mount("kv1", "kv", &[]).await.unwrap();
    let mounts = sys.mounts().await.unwrap();
    let kv1 = &mounts["kv1/"];
    assert_eq!(kv1["type"], "kv");
    // No version given: version 1, listed as OpenBao lists it, without one.
    assert_eq!(kv1["options"], serde_json::json!({}));
    let acc = kv1["accessor"].as_str().unwrap();
    assert!(acc.starts_with("kv_") && acc.len() == 11, "{acc}");
    assert_eq!(mounts["secret/"]["options"]["version"], "2");
    assert_eq!(mounts["sys/"]["type"], "system");
    assert_eq!(kv1["running_plugin_version"], "v2.7.2+builtin.bao");

    let e = sys.enable_mount("kv1/nested", "kv", &[]).await.unwrap_err();
    assert_eq!(e.message(), "path is already in use at kv1/");
    let e = sys
        .enable_mount("other", "nonexist", &[])
        .await
        .unwrap_err();
    assert_eq!(e.message(), "plugin not found in the catalog: nonexist");
    assert_eq!(
        sys.enable_mount("sys/x", "kv", &[])
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );

    // Tune: the effective TTLs are reported; KV v1 reports the mount default as lease_duration.
    let tune = c.read("sys/mounts/kv1/tune").await.unwrap().unwrap();
    assert_eq!(tune.get("default_lease_ttl").unwrap(), 768 * 3600);
    sys.tune_mount(
        "kv1",
        data(json!({"default_lease_ttl": "1h", "max_lease_ttl": "2h"})),
    )
    .await
    .unwrap();
    let tune = c.read("sys/mounts/kv1/tune").await.unwrap().unwrap();
    assert_eq!(tune.get("default_lease_ttl").unwrap(), 3600);
    assert_eq!(tune.get("max_lease_ttl").unwrap(), 7200);
    let e = sys
        .tune_mount("kv1", data(json!({"default_lease_ttl": "3h"})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    c.write("kv1/a", data(json!({"v": "1"}))).await.unwrap();
    assert_eq!(c.read("kv1/a").await.unwrap().unwrap().lease_duration, 3600);
    c.write("kv1/b", data(json!({"v": "1", "ttl": "30m"})))
        .await
        .unwrap();
    let b = c.read("kv1/b").await.unwrap().unwrap();
    assert_eq!((b.lease_duration, b.lease_id.as_str()), (1800, ""));

    // LIST, and the UI lookup the CLI does.
    assert_eq!(c.list("kv1").await.unwrap(), vec!["a", "b"]);
    let ui = c
        .read("sys/internal/ui/mounts/kv1/a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ui.get("path").unwrap(), "kv1/");

    // Disable removes the mount and its data; a new mount at the same path starts empty.
    sys.disable_mount("kv1").await.unwrap();
    assert_eq!(
        c.read("kv1/a").await.unwrap_err().code(),
        ErrorCode::UnsupportedPath
    );
    sys.disable_mount("never-mounted").await.unwrap();
    sys.enable_mount("kv1", "kv", &[]).await.unwrap();
    assert!(c.read("kv1/a").await.unwrap().is_none());
}

#[tokio::test]
async fn oversized_values_are_refused_and_change_nothing() {
    let sr = Strongroom::open(Config::dev().max_entry_size(1024))
        .await
        .unwrap();
    let c = sr.client(sr.dev_root_token().unwrap());
    c.sys().enable_mount("kv1", "kv", &[]).await.unwrap();
    c.write("kv1/a", data(json!({"v": "small"}))).await.unwrap();
    let e = c
        .write("kv1/a", data(json!({"v": "x".repeat(2048)})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooLarge);
    assert_eq!(
        c.read("kv1/a").await.unwrap().unwrap().get("v").unwrap(),
        "small"
    );
}

#[tokio::test]
async fn a_tampered_entry_is_a_storage_error_not_a_panic() {
    let mem = Arc::new(MemoryBackend::new());
    let sr = Strongroom::open(Config::backend(mem.clone()).cache_entries(0))
        .await
        .unwrap();
    let init = sr.init(1, 1).await.unwrap();
    sr.unseal_with_key(init.keys[0].expose_secret())
        .await
        .unwrap();
    let c = sr.client(init.root_token.expose_secret());
    c.sys().enable_mount("kv1", "kv", &[]).await.unwrap();
    c.write("kv1/a", data(json!({"v": "top-secret-value"})))
        .await
        .unwrap();
    let keys = mem.scan("logical/", &Page::all()).await.unwrap();
    assert_eq!(keys.len(), 1);
    let key = format!("logical/{}", keys[0]);
    let mut raw = mem.get(&key).await.unwrap().unwrap();
    raw[20] ^= 0x55;
    mem.put(&key, &raw).await.unwrap();
    let e = c.read("kv1/a").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Storage);
    assert!(!e.message().contains("top-secret-value"));
}

#[tokio::test]
async fn keyring_rotation_and_root_key_rotation() {
    let mem = Arc::new(MemoryBackend::new());
    let sr = Strongroom::open(Config::backend(mem.clone()))
        .await
        .unwrap();
    let init = sr.init(1, 1).await.unwrap();
    let key = init.keys[0].expose_secret().to_string();
    sr.unseal_with_key(&key).await.unwrap();
    let c = sr.client(init.root_token.expose_secret());
    c.sys().enable_mount("kv1", "kv", &[]).await.unwrap();
    c.write("kv1/before", data(json!({"v": "1"})))
        .await
        .unwrap();
    let st = c.sys().key_status().await.unwrap();
    assert_eq!(st["term"], 1);
    c.sys().rotate().await.unwrap();
    c.write("kv1/after", data(json!({"v": "2"}))).await.unwrap();
    let st = c.sys().key_status().await.unwrap();
    assert_eq!(st["term"], 2);
    assert_eq!(st["encryptions"], 1);
    c.write("sys/rotate/root", data(json!({}))).await.unwrap();
    // The same unseal key still works after a root-key rotation, and old terms still decrypt.
    sr.seal().await.unwrap();
    let sr2 = Strongroom::open(Config::backend(mem)).await.unwrap();
    sr2.unseal_with_key(&key).await.unwrap();
    let c2 = sr2.client(init.root_token.expose_secret());
    assert_eq!(
        c2.read("kv1/before")
            .await
            .unwrap()
            .unwrap()
            .get("v")
            .unwrap(),
        "1"
    );
    assert_eq!(
        c2.read("kv1/after")
            .await
            .unwrap()
            .unwrap()
            .get("v")
            .unwrap(),
        "2"
    );
}

#[tokio::test]
async fn keyring_auto_rotation_follows_the_virtual_clock() {
    let clock = VirtualClock::new();
    // Maintenance is driven by hand here: the background runner would race the calls below.
    let manual = strongroom::LeaseConfig {
        background: false,
        ..strongroom::LeaseConfig::default()
    };
    let sr = Strongroom::open(Config::dev().clock(Arc::new(clock.clone())).leases(manual))
        .await
        .unwrap();
    let c = sr.client(sr.dev_root_token().unwrap());
    c.write("sys/rotate/config", data(json!({"interval": "24h"})))
        .await
        .unwrap();
    let cfg = c.read("sys/rotate/config").await.unwrap().unwrap();
    assert_eq!(cfg.get("interval").unwrap(), "24h0m0s");
    assert!(!sr.run_maintenance().await.unwrap());
    clock.advance(Duration::from_secs(25 * 3600));
    assert!(sr.run_maintenance().await.unwrap());
    assert_eq!(c.sys().key_status().await.unwrap()["term"], 2);
    assert!(!sr.run_maintenance().await.unwrap());
}

#[tokio::test]
async fn embedded_unseal_from_a_key_file_or_env() {
    let dir = tempfile::tempdir().unwrap();
    let mem = Arc::new(MemoryBackend::new());
    let keyfile = dir.path().join("unseal.key");
    let sr = Strongroom::open(Config::backend(mem.clone()).unseal_key_file(&keyfile))
        .await
        .unwrap();
    let root = sr.init_with_key_file(&keyfile).await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keyfile).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Opening again unseals by itself.
    let sr = Strongroom::open(Config::backend(mem.clone()).unseal_key_file(&keyfile))
        .await
        .unwrap();
    assert!(!sr.is_sealed());
    let r = sr
        .client(root.expose_secret())
        .read("sys/mounts")
        .await
        .unwrap();
    assert!(r.is_some());
    // A missing key file is a clear error.
    let e = Strongroom::open(Config::backend(mem).unseal_key_file(dir.path().join("nope")))
        .await
        .unwrap_err();
    assert!(e.message().contains("cannot read unseal key file"));
}

#[tokio::test]
async fn dev_mode_honours_a_chosen_root_token() {
    let sr = Strongroom::open(Config::dev_with(DevOptions {
        root_token_id: Some("root".into()),
        kv_v1: true,
    }))
    .await
    .unwrap();
    let c = sr.client("root");
    let mounts = c.sys().mounts().await.unwrap();
    assert_eq!(mounts["secret/"]["options"]["version"], "1");
    c.write("secret/x", data(json!({"a": "b"}))).await.unwrap();
    let r = c
        .handle(Request::new(Operation::Read, "/secret/x"))
        .await
        .unwrap();
    assert_eq!(r.get("a").unwrap(), "b");
    assert!(!r.request_id.is_empty());
}

#[tokio::test]
async fn dev_mode_unseal_key_unseals_after_a_seal() {
    let (sr, root) = dev().await;
    let key = sr.dev_unseal_key().unwrap();
    sr.seal().await.unwrap();
    assert!(sr.is_sealed());
    let st = sr.unseal(key.expose_secret()).await.unwrap();
    assert!(!st.sealed);
    assert!(sr.client(root).sys().mounts().await.is_ok());
    let plain = Strongroom::open(Config::memory()).await.unwrap();
    assert!(plain.dev_unseal_key().is_none());
}

/// The key comes from an environment variable. Setting one needs `unsafe` in this edition, so
/// the test re-runs itself as a child process with the variable set.
#[tokio::test]
async fn embedded_unseal_from_an_env_var() {
    if let Ok(db) = std::env::var("STRONGROOM_TEST_ENV_CHILD_DB") {
        let sr = Strongroom::open(Config::sqlite(&db).unseal_key_env("STRONGROOM_TEST_UNSEAL_KEY"))
            .await
            .unwrap();
        assert!(!sr.is_sealed());
        let token = std::env::var("STRONGROOM_TEST_ROOT").unwrap();
        let r = sr.client(token).read("kv1/a").await.unwrap().unwrap();
        assert_eq!(r.get("v").unwrap(), "from-parent");
        println!("child-unsealed-from-env");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.db");
    let keyfile = dir.path().join("k");
    let sr = Strongroom::open(Config::sqlite(&db)).await.unwrap();
    let root = sr.init_with_key_file(&keyfile).await.unwrap();
    let c = sr.client(root.expose_secret());
    c.sys().enable_mount("kv1", "kv", &[]).await.unwrap();
    c.write("kv1/a", data(json!({"v": "from-parent"})))
        .await
        .unwrap();
    drop(sr);
    let run = |key: Option<String>| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "embedded_unseal_from_an_env_var",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STRONGROOM_TEST_ENV_CHILD_DB", &db)
        .env("STRONGROOM_TEST_ROOT", root.expose_secret());
        if let Some(k) = key {
            cmd.env("STRONGROOM_TEST_UNSEAL_KEY", k);
        }
        cmd.output().unwrap()
    };
    let ok = run(Some(std::fs::read_to_string(&keyfile).unwrap()));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("child-unsealed-from-env"));
    // Without the variable the open fails with a clear message.
    let missing = run(None);
    assert!(!missing.status.success());
    let out = String::from_utf8_lossy(&missing.stdout).to_string()
        + &String::from_utf8_lossy(&missing.stderr);
    assert!(
        out.contains("environment variable `STRONGROOM_TEST_UNSEAL_KEY` holds no unseal key"),
        "{out}"
    );
}

#[tokio::test]
async fn wrong_operations_on_sys_paths_are_405() {
    let (sr, root) = dev().await;
    let c = sr.client(&root);
    let e = c.read("sys/seal").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedOperation);
    let e = c.read("sys/rotate").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedOperation);
    let e = c.read("sys/no-such-thing").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedPath);
    // A reset while unsealed is refused as OpenBao does.
    let e = sr
        .handle(Request::write("sys/unseal", data(json!({"reset": true}))))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "vault is unsealed");
}

/// A SQLite engine serves its own writes at once from its caches (the decoded cache follows the
/// stored ciphertext; own commits no longer drop the caches), with the decoded cache on and off,
/// and a seal in between leaves nothing readable.
#[tokio::test]
async fn sqlite_reads_follow_own_writes_with_and_without_the_decoded_cache() {
    for decoded in [4096, 0] {
        let dir = tempfile::tempdir().unwrap();
        let sr = Strongroom::open(
            Config::sqlite(dir.path().join("s.db")).decoded_cache_entries(decoded),
        )
        .await
        .unwrap();
        let init = sr.init(1, 1).await.unwrap();
        let key = init.keys[0].expose_secret().to_string();
        sr.unseal_with_key(&key).await.unwrap();
        let root = sr.client(init.root_token.expose_secret());
        root.sys()
            .enable_mount("secret", "kv", &[("version", "2")])
            .await
            .unwrap();
        let kv = root.kv("secret");
        for v in ["1", "2", "3"] {
            kv.put("app", &data(json!({"v": v}))).await.unwrap();
            let got = kv.get("app").await.unwrap().unwrap();
            assert_eq!(got.data.get_str("v"), Some(v), "decoded cache {decoded}");
            // Read twice: the second read is the warm one.
            let got = kv.get("app").await.unwrap().unwrap();
            assert_eq!(got.data.get_str("v"), Some(v), "decoded cache {decoded}");
        }
        kv.delete("app").await.unwrap();
        let gone = sr
            .handle(Request::read("secret/data/app").with_token(init.root_token.expose_secret()))
            .await
            .unwrap();
        assert_eq!(gone.kind, strongroom::ResponseKind::NotFound);
        sr.seal().await.unwrap();
        let e = kv.get("app").await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Sealed);
        sr.unseal_with_key(&key).await.unwrap();
        let v2 = sr
            .handle(
                Request::read("secret/data/app")
                    .with_token(init.root_token.expose_secret())
                    .with_data(data(json!({"version": 2}))),
            )
            .await
            .unwrap();
        assert_eq!(v2.data.unwrap()["data"]["v"], "2");
    }
}
