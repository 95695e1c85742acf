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
use strongroom::{Config, HaSettings, LeaseConfig, Request, Strongroom, data};

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

/// An engine opened before another one initialised the store notices it: its seal status
/// says initialised and its unseal works, without a restart (it used to answer "not
/// initialized" from what it had cached while sealed).
async fn late_engine_notices_initialisation(a: Strongroom, b: Strongroom) {
    assert!(!b.is_initialized().await.unwrap());
    assert!(!b.seal_status().await.unwrap().initialized);
    let init = a.init(1, 1).await.unwrap();
    let key = init.keys[0].expose_secret().to_string();
    assert!(b.is_initialized().await.unwrap());
    let st = b.seal_status().await.unwrap();
    assert!(st.initialized && st.sealed, "{st:?}");
    // The share path (sys/unseal) as a standby's operator would use it.
    let st = b.unseal(&key).await.unwrap();
    assert!(!st.sealed, "{st:?}");
    // A second init anywhere is refused.
    assert!(b.init(1, 1).await.is_err());
}

#[tokio::test]
async fn a_sealed_engine_notices_another_initialise_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.db");
    let a = Strongroom::open(Config::sqlite(&path)).await.unwrap();
    let b = Strongroom::open(Config::sqlite(&path)).await.unwrap();
    late_engine_notices_initialisation(a, b).await;
}

#[tokio::test]
async fn a_sealed_engine_notices_another_initialise_the_postgres_database() {
    let db = common::FreshDb::create("late").await;
    let a = Strongroom::open(Config::postgres(&db.url)).await.unwrap();
    let b = Strongroom::open(Config::postgres(&db.url)).await.unwrap();
    late_engine_notices_initialisation(a, b).await;
}

fn no_runner() -> LeaseConfig {
    LeaseConfig {
        background: false,
        ..LeaseConfig::default()
    }
}

async fn init_unseal(sr: &Strongroom) -> String {
    let init = sr.init(1, 1).await.unwrap();
    sr.unseal_with_key(init.keys[0].expose_secret())
        .await
        .unwrap();
    init.root_token.expose_secret().to_string()
}

/// Two stores in one database, each in its own table: separate data, and each has its own
/// leader (advisory locks are database-wide, so the lock is scoped to the table).
#[tokio::test]
async fn two_stores_share_one_database_in_their_own_tables() {
    let db = common::FreshDb::create("tables").await;
    let a = Strongroom::open(Config::postgres(&db.url).leases(no_runner()))
        .await
        .unwrap();
    let b = Strongroom::open(
        Config::postgres(&db.url)
            .postgres_table("store_b")
            .postgres_max_connections(4)
            .leases(no_runner()),
    )
    .await
    .unwrap();
    // Initialising one leaves the other uninitialised.
    let root_a = init_unseal(&a).await;
    assert!(!b.is_initialized().await.unwrap());
    let root_b = init_unseal(&b).await;
    for (sr, root, v) in [(&a, &root_a, "a"), (&b, &root_b, "b")] {
        let c = sr.client(root.as_str());
        c.sys()
            .enable_mount("secret", "kv", &[("version", "2")])
            .await
            .unwrap();
        c.kv("secret")
            .put("x", &data(json!({"v": v})))
            .await
            .unwrap();
    }
    for (sr, root, v) in [(&a, &root_a, "a"), (&b, &root_b, "b")] {
        let got = sr
            .client(root.as_str())
            .kv("secret")
            .get("x")
            .await
            .unwrap();
        assert_eq!(got.unwrap().data.get_str("v"), Some(v));
    }
    // Both lead at once: one store's leader does not keep the other's runner idle.
    assert!(a.run_expiry().await.unwrap().leader);
    assert!(b.run_expiry().await.unwrap().leader);
    // A second engine on store B is not its leader while B leads.
    let b2 = Strongroom::open(
        Config::postgres(&db.url)
            .postgres_table("store_b")
            .leases(no_runner()),
    )
    .await
    .unwrap();
    let st = b2.seal_status().await.unwrap();
    assert!(st.initialized);
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["store_b", "strongroom_kv"]);
}

#[tokio::test]
async fn a_bad_table_name_or_a_foreign_table_is_refused_at_open() {
    let db = common::FreshDb::create("badtable").await;
    let long = "t".repeat(64);
    for bad in [
        "kv\"; DROP TABLE strongroom_kv; --",
        "1kv",
        "",
        "a-b",
        long.as_str(),
    ] {
        let e = Strongroom::open(Config::postgres(&db.url).postgres_table(bad))
            .await
            .unwrap_err();
        assert_eq!(e.code(), strongroom::ErrorCode::InvalidInput, "{bad}");
        assert!(e.message().contains("is not valid"), "{}", e.message());
    }
    let e = Strongroom::open(Config::postgres(&db.url).postgres_max_connections(0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), strongroom::ErrorCode::InvalidInput);
    // A table of another shape (another program's, OpenBao's) is not taken over.
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE TABLE openbao_kv_store (parent_path TEXT, path TEXT, key TEXT, value BYTEA)",
        )
        .await
        .unwrap();
    let e = Strongroom::open(Config::postgres(&db.url).postgres_table("openbao_kv_store"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), strongroom::ErrorCode::InvalidInput);
    assert!(
        e.message()
            .contains("table `openbao_kv_store` exists but is not a strongroom store"),
        "{}",
        e.message()
    );
}

async fn sys(sr: &Strongroom, path: &str) -> serde_json::Value {
    let resp = sr.handle(Request::read(path)).await.unwrap();
    serde_json::Value::Object(resp.data.unwrap())
}

/// `sys/leader` and `sys/health` with high availability on: the process holding the leader
/// lock is the active node, the other a standby naming it; when the leader seals (gives the
/// lock up), the other takes over and says so. Without HA, OpenBao's single-node answers.
#[tokio::test]
async fn leader_and_health_follow_the_leader_lock() {
    let db = common::FreshDb::create("haleader").await;
    let open = |addr: &str| {
        Strongroom::open(
            Config::postgres(&db.url)
                .leases(no_runner())
                .high_availability(HaSettings {
                    api_addr: addr.to_string(),
                    cluster_addr: String::new(),
                }),
        )
    };
    let a = open("http://a:8200").await.unwrap();
    let b = open("http://b:8200").await.unwrap();
    // Sealed: 503 for sys/leader, as OpenBao with HA.
    let e = a.handle(Request::read("sys/leader")).await.unwrap_err();
    assert_eq!(e.code(), strongroom::ErrorCode::Sealed);
    let init = a.init(1, 1).await.unwrap();
    let key = init.keys[0].expose_secret().to_string();
    a.unseal_with_key(&key).await.unwrap();
    b.unseal_with_key(&key).await.unwrap();
    // Nobody has taken the lock yet: both are standbys, no leader known.
    assert_eq!(
        sys(&a, "sys/leader").await,
        json!({"ha_enabled": true, "is_self": false, "leader_address": "", "leader_cluster_address": ""})
    );
    assert!(a.run_expiry().await.unwrap().leader);
    assert!(!b.run_expiry().await.unwrap().leader);
    let la = sys(&a, "sys/leader").await;
    assert_eq!(la["is_self"], true);
    assert_eq!(la["leader_address"], "http://a:8200");
    let since = la["active_time"].as_str().unwrap().to_string();
    assert!(since.ends_with('Z') && since.contains('T'), "{since}");
    let keys: Vec<&str> = la.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "ha_enabled",
            "is_self",
            "active_time",
            "leader_address",
            "leader_cluster_address"
        ]
    );
    assert_eq!(
        sys(&b, "sys/leader").await,
        json!({"ha_enabled": true, "is_self": false, "leader_address": "http://a:8200", "leader_cluster_address": ""})
    );
    let (ha, hb) = (sys(&a, "sys/health").await, sys(&b, "sys/health").await);
    assert_eq!(
        (&ha["standby"], &hb["standby"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(ha["replication_performance_mode"], "primary");
    assert_eq!(hb["replication_performance_mode"], "primary");
    // The leader seals: it gives the lock up, and the other takes over at its next run.
    a.seal().await.unwrap();
    assert!(b.run_expiry().await.unwrap().leader);
    let lb = sys(&b, "sys/leader").await;
    assert_eq!(lb["is_self"], true);
    assert_eq!(lb["leader_address"], "http://b:8200");
    assert_eq!(sys(&b, "sys/health").await["standby"], false);
    let ha = sys(&a, "sys/health").await;
    assert_eq!(
        (&ha["sealed"], &ha["standby"]),
        (&json!(true), &json!(true))
    );
    // A single node (HA off) on the same store: OpenBao's answers, sealed or not.
    let single = Strongroom::open(Config::postgres(&db.url).leases(no_runner()))
        .await
        .unwrap();
    assert_eq!(
        sys(&single, "sys/leader").await,
        json!({"ha_enabled": false})
    );
    single.unseal_with_key(&key).await.unwrap();
    assert_eq!(
        sys(&single, "sys/leader").await,
        json!({"ha_enabled": false})
    );
    let h = sys(&single, "sys/health").await;
    assert_eq!(h["standby"], false);
    assert_eq!(h["replication_performance_mode"], "disabled");
}
