//! The engine's one background runner and `shutdown()`: an embedded application gets the
//! maintenance the server gets (transit auto-rotation here), shutdown stops it and refuses new
//! calls through every door, and a second process on the same store takes the leader lock at
//! once after a clean shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{Client, Config, ErrorCode, LeaseConfig, Strongroom, VirtualClock, data};

fn quick() -> LeaseConfig {
    LeaseConfig {
        tick: Duration::from_millis(10),
        ..LeaseConfig::default()
    }
}

async fn latest_version(root: &Client) -> u64 {
    root.read("transit/keys/auto")
        .await
        .unwrap()
        .unwrap()
        .get("latest_version")
        .unwrap()
        .as_u64()
        .unwrap()
}

/// A dev engine on a virtual clock (maintenance due every minute of it) with a transit key
/// that auto-rotates hourly.
async fn engine_with_auto_rotating_key(leases: LeaseConfig) -> (Strongroom, Client, VirtualClock) {
    let clock = VirtualClock::new();
    let sr = Strongroom::open(
        Config::dev()
            .clock(Arc::new(clock.clone()))
            .leases(leases)
            .maintenance_interval(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.sys()
        .enable_mount("transit", "transit", &[])
        .await
        .unwrap();
    root.write(
        "transit/keys/auto",
        data(json!({"auto_rotate_period": "1h"})),
    )
    .await
    .unwrap();
    (sr, root, clock)
}

/// Waits (bounded by `within`, in real time) for the background runner's next ticks to see
/// `version`.
async fn wait_for_version(root: &Client, version: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if latest_version(root).await == version {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn the_background_runner_does_maintenance_and_shutdown_stops_it() {
    let (sr, root, clock) = engine_with_auto_rotating_key(quick()).await;
    assert_eq!(latest_version(&root).await, 1);

    // Two hours later on the engine's clock, the runner's next maintenance rotates the key;
    // nothing but the engine itself calls run_maintenance here.
    clock.advance(Duration::from_secs(2 * 3600));
    assert!(
        wait_for_version(&root, 2, Duration::from_secs(10)).await,
        "not rotated in the background"
    );

    let t = root.transit("transit");
    t.encrypt("auto", b"x").await.unwrap();
    sr.shutdown().await.unwrap();

    // Every door refuses once the engine is shut down.
    let e = root.read("transit/keys/auto").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable);
    let e = t.encrypt("auto", b"x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable);
    let e = root.kv("secret").get("x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable);
    // A second shutdown is harmless.
    sr.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_background_work_nothing_rotates_until_asked() {
    let (sr, root, clock) = engine_with_auto_rotating_key(LeaseConfig {
        background: false,
        ..quick()
    })
    .await;
    clock.advance(Duration::from_secs(2 * 3600));
    assert!(!wait_for_version(&root, 2, Duration::from_millis(200)).await);
    sr.run_maintenance().await.unwrap();
    assert_eq!(latest_version(&root).await, 2);
}

/// Two engines on one SQLite file: the first runs the background work and holds the leader
/// lock; after its shutdown the second takes it on its next run, without waiting the lock's
/// 15 s out.
#[tokio::test]
async fn a_second_process_takes_over_at_once_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let key = dir.path().join("unseal.key");
    let manual = || LeaseConfig {
        background: false,
        ..quick()
    };
    let first = Strongroom::open(Config::sqlite(&db).leases(manual()))
        .await
        .unwrap();
    let root = first.init_with_key_file(&key).await.unwrap();
    drop(first);
    let a = Strongroom::open(Config::sqlite(&db).unseal_key_file(&key).leases(quick()))
        .await
        .unwrap();
    let b = Strongroom::open(Config::sqlite(&db).unseal_key_file(&key).leases(manual()))
        .await
        .unwrap();
    // `a` holds the lock (its runner keeps it); `b` cannot take it.
    assert!(a.run_expiry().await.unwrap().leader);
    assert!(!b.run_expiry().await.unwrap().leader);
    a.shutdown().await.unwrap();
    assert!(b.run_expiry().await.unwrap().leader);
    // The store is whole for the one left.
    let client = b.client(root.expose_secret());
    client.sys().enable_mount("kv", "kv", &[]).await.unwrap();
}
