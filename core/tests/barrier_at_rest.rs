//! Nothing readable below the barrier: after writing known secrets through the engine, the
//! SQLite file (and its WAL) and the PostgreSQL table hold none of them in clear.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;

use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{Config, Strongroom, data};

const CANARIES: [&str; 3] = [
    "CANARY-password-5f1d2a",
    "CANARY-apikey-9b7c44",
    "CANARY-meta-77aa01",
];

async fn write_canaries(sr: &Strongroom) -> Vec<String> {
    let init = sr.init(3, 2).await.unwrap();
    sr.unseal(init.keys[0].expose_secret()).await.unwrap();
    sr.unseal(init.keys[1].expose_secret()).await.unwrap();
    let root = init.root_token.expose_secret().to_string();
    let c = sr.client(&root);
    c.sys()
        .enable_mount("secret", "kv", &[("version", "2")])
        .await
        .unwrap();
    c.sys()
        .enable_mount("kv1", "kv", &[("version", "1")])
        .await
        .unwrap();
    let kv = c.kv("secret");
    kv.put("app/db", &data(json!({"password": CANARIES[0]})))
        .await
        .unwrap();
    kv.put(
        "app/db",
        &data(json!({"password": CANARIES[0], "api": CANARIES[1]})),
    )
    .await
    .unwrap();
    kv.write_metadata(
        "app/db",
        data(json!({"custom_metadata": {"note": CANARIES[2]}})),
    )
    .await
    .unwrap();
    c.write("kv1/plain", data(json!({"value": CANARIES[1]})))
        .await
        .unwrap();
    sr.client(&root).sys().rotate().await.unwrap();
    kv.put("after-rotation", &data(json!({"v": CANARIES[0]})))
        .await
        .unwrap();
    // Everything that must never be stored in clear: the values, the root token, the shares.
    let mut needles: Vec<String> = CANARIES.iter().map(|s| s.to_string()).collect();
    needles.push(root[2..].to_string());
    for k in init.keys.iter().chain(init.keys_base64.iter()) {
        needles.push(k.expose_secret().to_string());
    }
    needles
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn sqlite_file_holds_no_secret_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let sr = Strongroom::open(Config::sqlite(dir.path().join("s.db")))
        .await
        .unwrap();
    let needles = write_canaries(&sr).await;
    // The values are really there (through the barrier)...
    let mut scanned = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        scanned += bytes.len();
        for n in &needles {
            assert!(
                !contains(&bytes, n),
                "{} holds a secret in clear",
                path.display()
            );
        }
    }
    assert!(
        scanned > 4096,
        "nothing was written to disk ({scanned} bytes)"
    );
    drop(sr);
}

#[tokio::test]
async fn postgres_table_holds_no_secret_in_clear() {
    let db = common::FreshDb::create("atrest").await;
    let sr = Strongroom::open(Config::postgres(&db.url)).await.unwrap();
    let needles = write_canaries(&sr).await;
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query("SELECT key, value FROM strongroom_kv", &[])
        .await
        .unwrap();
    assert!(
        rows.len() > 5,
        "expected the engine's entries, found {}",
        rows.len()
    );
    for row in rows {
        let key: String = row.get(0);
        let value: Vec<u8> = row.get(1);
        for n in &needles {
            assert!(
                !contains(&value, n) && !key.contains(n.as_str()),
                "row `{key}` holds a secret in clear"
            );
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_store_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sr = Strongroom::open(Config::sqlite(dir.path().join("p.db")))
        .await
        .unwrap();
    sr.init(1, 1).await.unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
    }
}
