//! Several engines on one store (two handles = two connections, as two processes would have):
//! each sees the other's writes, mounts and keyring rotations.
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

async fn two_engines_agree(a: Strongroom, open_b: impl std::future::Future<Output = Strongroom>) {
    let init = a.init(1, 1).await.unwrap();
    let key = init.keys[0].expose_secret().to_string();
    let root = init.root_token.expose_secret().to_string();
    a.unseal_with_key(&key).await.unwrap();
    let b = open_b.await;
    b.unseal_with_key(&key).await.unwrap();
    let (ca, cb) = (a.client(&root), b.client(&root));

    ca.sys()
        .enable_mount("secret", "kv", &[("version", "2")])
        .await
        .unwrap();
    // B picks up the mount A created without restarting.
    let kb = cb.kv("secret");
    assert!(kb.get("x").await.unwrap().is_none());
    ca.kv("secret")
        .put("x", &data(json!({"v": "1"})))
        .await
        .unwrap();
    assert_eq!(
        kb.get("x").await.unwrap().unwrap().data.get_str("v"),
        Some("1")
    );
    // Cached on B, then changed by A: B must not serve the stale value.
    ca.kv("secret")
        .put("x", &data(json!({"v": "2"})))
        .await
        .unwrap();
    assert_eq!(
        kb.get("x").await.unwrap().unwrap().data.get_str("v"),
        Some("2")
    );
    // B rotates the keyring and writes with the new term; A reads it.
    cb.sys().rotate().await.unwrap();
    kb.put("y", &data(json!({"v": "3"}))).await.unwrap();
    assert_eq!(
        ca.kv("secret")
            .get("y")
            .await
            .unwrap()
            .unwrap()
            .data
            .get_str("v"),
        Some("3")
    );
    // Check-and-set across engines: only one of two writers with the same cas wins.
    let ra = ca
        .kv("secret")
        .put_cas("x", &data(json!({"v": "a"})), 2)
        .await;
    let rb = kb.put_cas("x", &data(json!({"v": "b"})), 2).await;
    assert!(
        ra.is_ok() != rb.is_ok(),
        "exactly one cas write must win: {ra:?} {rb:?}"
    );
}

#[tokio::test]
async fn two_engines_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = Strongroom::open(Config::sqlite(&path)).await.unwrap();
    let p = path.clone();
    two_engines_agree(a, async move {
        Strongroom::open(Config::sqlite(&p)).await.unwrap()
    })
    .await;
}

#[tokio::test]
async fn two_engines_on_one_postgres_database() {
    let db = common::FreshDb::create("shared").await;
    let a = Strongroom::open(Config::postgres(&db.url)).await.unwrap();
    let url = db.url.clone();
    two_engines_agree(a, async move {
        Strongroom::open(Config::postgres(&url)).await.unwrap()
    })
    .await;
}
