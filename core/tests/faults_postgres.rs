//! PostgreSQL goes away in the middle of a revocation storm: 10,000 database credentials
//! expire while the server is down for 30 s (storage on SQLite, credentials on PostgreSQL).
//! Every failed revocation is kept and retried; once PostgreSQL is back every lease is revoked,
//! none is lost, and none is revoked twice in the database.
//!
//! The PostgreSQL is a cluster of the test's own (see `private_pg`), since the test stops it.
//! `STRONGROOM_FAULT_LEASES` and `STRONGROOM_FAULT_OUTAGE_SECS` change the size and the
//! outage (defaults 10000 and 30).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod private_pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{Client, Config, LeaseConfig, Request, Strongroom, VirtualClock, data};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn leases_left(root: &Client) -> usize {
    match root
        .handle(Request::list("sys/leases/lookup/database/creds/ro/"))
        .await
    {
        Ok(r) => r.data.unwrap()["keys"].as_array().unwrap().len(),
        Err(e) if e.code() == strongroom::ErrorCode::NotFound => 0,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_storm_survives_postgres_going_away() {
    let n = env_num("STRONGROOM_FAULT_LEASES", 10_000) as usize;
    let outage = Duration::from_secs(env_num("STRONGROOM_FAULT_OUTAGE_SECS", 30));
    let pg = private_pg::PrivatePg::start();
    pg.connect("postgres")
        .await
        .batch_execute("CREATE TABLE revocations (name text NOT NULL)")
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let sr = Strongroom::open(
        Config::sqlite(dir.path().join("strongroom.db"))
            .clock(Arc::new(clock.clone()))
            .leases(LeaseConfig {
                background: false,
                revoke_timeout: Duration::from_secs(10),
                ..LeaseConfig::default()
            }),
    )
    .await
    .unwrap();
    let init = sr.init(1, 1).await.unwrap();
    sr.unseal(init.keys[0].expose_secret()).await.unwrap();
    let root = sr.client(init.root_token.expose_secret());
    root.sys()
        .enable_mount("database", "database", &[])
        .await
        .unwrap();
    let db = root.database("database");
    db.configure(
        "pg",
        data(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!(
                "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres",
                pg.port
            ),
            "username": "postgres",
            "password": "unused",
            "allowed_roles": "ro",
            "max_open_connections": 16,
            "verify_connection": true,
        })),
    )
    .await
    .unwrap();
    // The revocation leaves a row per run: two rows for one name = revoked twice.
    db.write_role(
        "ro",
        data(json!({
            "db_name": "pg",
            "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            "revocation_statements": "DROP ROLE IF EXISTS \"{{name}}\"; INSERT INTO revocations VALUES ('{{name}}');",
            "default_ttl": "1h",
        })),
    )
    .await
    .unwrap();

    let started = Instant::now();
    let mut names = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..n {
        if pending.len() >= 16 {
            names.push(pending.join_next().await.unwrap().unwrap());
        }
        let root = root.clone();
        pending.spawn(async move {
            root.database("database")
                .creds("ro")
                .await
                .unwrap()
                .username
        });
    }
    while let Some(done) = pending.join_next().await {
        names.push(done.unwrap());
    }
    eprintln!("{n} credentials issued in {:?}", started.elapsed());
    assert_eq!(leases_left(&root).await, n);

    // The storm: every credential expires while PostgreSQL is down.
    pg.kill();
    clock.advance(Duration::from_secs(3601));
    let started = Instant::now();
    let report = sr.run_expiry().await.unwrap();
    eprintln!(
        "expiry with PostgreSQL down: {report:?} in {:?}",
        started.elapsed()
    );
    assert_eq!(
        (report.revoked, report.retried, report.irrevocable),
        (0, n, 0)
    );
    assert_eq!(
        leases_left(&root).await,
        n,
        "a failed revocation keeps its lease"
    );
    let rest = outage.saturating_sub(started.elapsed());
    tokio::time::sleep(rest).await;

    // Back: the retries (due after the backoff) revoke everything, each once.
    pg.up();
    let started = Instant::now();
    let mut revoked = 0;
    for _ in 0..10 {
        clock.advance(Duration::from_secs(3600));
        let r = sr.run_expiry().await.unwrap();
        eprintln!("round: {r:?} at {:?}", started.elapsed());
        assert_eq!(r.irrevocable, 0, "{r:?}");
        revoked += r.revoked;
        if revoked >= n {
            break;
        }
    }
    eprintln!(
        "{revoked} revoked after PostgreSQL came back, in {:?}",
        started.elapsed()
    );
    assert_eq!(revoked, n);
    assert_eq!(leases_left(&root).await, 0, "every lease revoked");

    let admin = pg.connect("postgres").await;
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "no credential left in PostgreSQL");
    let row = admin
        .query_one(
            "SELECT count(*), count(DISTINCT name) FROM revocations",
            &[],
        )
        .await
        .unwrap();
    let (runs, distinct): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(distinct, n as i64, "every credential revoked");
    assert_eq!(runs, n as i64, "none revoked twice");
    let mut expected: Vec<String> = names;
    expected.sort();
    let mut logged: Vec<String> = admin
        .query("SELECT name FROM revocations ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    logged.sort();
    assert_eq!(logged, expected);
}

/// The PostgreSQL storage backend loses its server in the middle of writes: the calls in
/// flight fail with a typed error (no panic, no hang), nothing half-written is visible (every
/// version the metadata lists has its data), no acknowledged write is lost, and the same engine
/// takes writes again once the server is back, without reopening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_losing_postgres_mid_write_fails_cleanly_and_loses_nothing() {
    let pg = private_pg::PrivatePg::start();
    pg.connect("postgres")
        .await
        .batch_execute("CREATE DATABASE store")
        .await
        .unwrap();
    let sr = Strongroom::open(Config::postgres(pg.url("store")))
        .await
        .unwrap();
    let init = sr.init(1, 1).await.unwrap();
    let key = init.keys[0].expose_secret().to_string();
    sr.unseal(&key).await.unwrap();
    let token = init.root_token.expose_secret().to_string();
    let root = sr.client(&token);
    root.sys()
        .enable_mount("secret", "kv", &[("version", "2")])
        .await
        .unwrap();
    // Keep every version, so each acknowledged one can be read back.
    root.handle(Request::write(
        "secret/config",
        data(json!({ "max_versions": 1000 })),
    ))
    .await
    .unwrap();

    // Writers: each puts versions of its own key, one after another, and keeps what was
    // acknowledged and which write was in flight when the failures began.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let (kv, stop) = (root.kv("secret"), stop.clone());
        writers.spawn(async move {
            let mut acked: Vec<(u64, String)> = Vec::new();
            let mut errors = Vec::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let value = format!("w{w}-{i}");
                match kv.put(&format!("w{w}"), &data(json!({ "v": value }))).await {
                    Ok(v) => acked.push((v.version, value)),
                    Err(e) => {
                        errors.push(e.code());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (w, acked, errors)
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut results = Vec::new();
    while let Some(done) = writers.join_next().await {
        results.push(done.expect("a writer panicked"));
    }
    for (w, acked, errors) in &results {
        eprintln!(
            "writer {w}: {} acknowledged, {} refused",
            acked.len(),
            errors.len()
        );
        assert!(!acked.is_empty(), "writer {w} wrote nothing before the cut");
        assert!(
            !errors.is_empty(),
            "writer {w} saw no failure while the server was down"
        );
        for code in errors {
            assert!(
                matches!(
                    code,
                    strongroom::ErrorCode::Unavailable | strongroom::ErrorCode::Storage
                ),
                "writer {w}: a lost server is a storage or unavailable error, not {code:?}"
            );
        }
    }

    pg.up();
    // The same engine recovers on its own: a write gets through within a few seconds.
    let kv = root.kv("secret");
    let mut back = None;
    for _ in 0..100 {
        match kv.put("after", &data(json!({ "v": "back" }))).await {
            Ok(v) => {
                back = Some(v);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        back.is_some(),
        "no write got through after PostgreSQL came back"
    );

    // What is stored, seen by this engine and by a fresh one on the same database.
    let fresh = Strongroom::open(Config::postgres(pg.url("store")))
        .await
        .unwrap();
    fresh.unseal(&key).await.unwrap();
    for engine in [&sr, &fresh] {
        let kv = engine.client(&token).kv("secret");
        for (w, acked, _) in &results {
            let meta = kv.metadata(&format!("w{w}")).await.unwrap().unwrap();
            let (last_version, _) = acked.last().unwrap();
            // The write in flight at the cut may or may not have landed; nothing else may.
            assert!(
                meta.current_version == *last_version || meta.current_version == last_version + 1,
                "writer {w}: acknowledged up to v{last_version}, stored v{}",
                meta.current_version
            );
            for version in meta.versions.keys() {
                let n: u64 = version.parse().unwrap();
                let got = kv.get_version(&format!("w{w}"), n).await.unwrap();
                assert!(got.is_some(), "writer {w}: v{n} listed without its data");
            }
            for (version, value) in acked {
                let got = kv
                    .get_version(&format!("w{w}"), *version)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    got.data.get_str("v"),
                    Some(value.as_str()),
                    "writer {w} v{version}"
                );
            }
        }
    }
}
