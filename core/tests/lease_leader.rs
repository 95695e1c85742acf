//! Exactly one expiry runner among processes sharing a store, and a clean handover when the
//! leader is killed mid-run (SIGKILL): two child processes (this test binary re-executed) run
//! the expiry runner on one SQLite file, then on one PostgreSQL database. The parent issues
//! leases that all fall due together and revoke slowly, kills whichever child starts revoking,
//! and checks that the other takes over and finishes: every secret revoked, no lease record
//! left, and no secret revoked twice except the few the dead leader had in flight (revocation
//! is idempotent, so even those are revoked once in effect).
//!
//! Processes cannot share a virtual clock, so this test runs on real time: leases of a few
//! seconds and a leader lock that lapses after one second.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{Config, LeaseConfig, LeaseEvent, Strongroom, data};

const ROLE: &str = "STRONGROOM_LEASE_CHILD";
const KIND: &str = "STRONGROOM_LEASE_CHILD_KIND";
const TARGET: &str = "STRONGROOM_LEASE_CHILD_TARGET";
const KEY: &str = "STRONGROOM_LEASE_CHILD_KEY";
const LEASES: usize = 400;
const WORKERS: usize = 4;

fn config(kind: &str, target: &str, key: &Path, runner: bool) -> Config {
    let base = match kind {
        "sqlite" => Config::sqlite(target),
        "postgres" => Config::postgres(target),
        other => panic!("unknown kind {other}"),
    };
    base.unseal_key_file(key).leases(LeaseConfig {
        background: runner,
        tick: Duration::from_millis(50),
        workers: WORKERS,
        leader_ttl: Duration::from_secs(1),
        ..LeaseConfig::default()
    })
}

/// The child: run the expiry runner in the background and report revocations it makes.
#[test]
fn child_process_entry() {
    if std::env::var(ROLE).is_err() {
        return;
    }
    let kind = std::env::var(KIND).unwrap();
    let target = std::env::var(TARGET).unwrap();
    let key = std::env::var(KEY).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sr = Strongroom::open(config(&kind, &target, Path::new(&key), true))
            .await
            .unwrap();
        assert!(!sr.is_sealed());
        let root = sr.client("unused");
        let mut events = root.leases().events();
        println!("READY");
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(LeaseEvent::Revoked { .. })) =
                tokio::time::timeout(Duration::from_millis(200), events.recv()).await
            {
                println!("REVOKED");
            }
        }
    });
}

fn spawn_child(
    kind: &str,
    target: &str,
    key: &Path,
    id: usize,
    tx: mpsc::Sender<(usize, String)>,
) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "runner")
        .env(KIND, kind)
        .env(TARGET, target)
        .env(KEY, key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            if tx.send((id, line)).is_err() {
                return;
            }
        }
    });
    child
}

fn kill(child: &mut Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

async fn leader_handover(kind: &str, target: &str, dir: &Path) {
    let key = dir.join("unseal.key");
    let sr = Strongroom::open(config(kind, target, &key, false))
        .await
        .unwrap();
    let root_token = sr.init_with_key_file(&key).await.unwrap();
    drop(sr);
    let sr = Strongroom::open(config(kind, target, &key, false))
        .await
        .unwrap();
    let root = sr.client(root_token.expose_secret());
    root.sys()
        .enable_mount("tl", "test-leases", &[])
        .await
        .unwrap();
    let mut issuing = tokio::task::JoinSet::new();
    for chunk in 0..8 {
        let root = root.clone();
        issuing.spawn(async move {
            for i in (chunk..LEASES).step_by(8) {
                root.write(
                    &format!("tl/issue/s{i}"),
                    data(json!({"ttl": "2s", "delay_ms": 10})),
                )
                .await
                .unwrap();
            }
        });
    }
    while let Some(r) = issuing.join_next().await {
        r.unwrap();
    }

    let (tx, rx) = mpsc::channel();
    let mut children = vec![
        spawn_child(kind, target, &key, 0, tx.clone()),
        spawn_child(kind, target, &key, 1, tx),
    ];
    // Kill whichever child revokes first, mid-run.
    let deadline = Instant::now() + Duration::from_secs(60);
    let leader = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((id, line)) if line == "REVOKED" => break id,
            Ok(_) => {}
            Err(e) => {
                for c in &mut children {
                    kill(c);
                }
                panic!("no child started revoking within 60s ({kind}): {e}");
            }
        }
    };
    kill(&mut children[leader]);
    let other = 1 - leader;
    // The survivor takes over once the lock lapses and finishes the job.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut survivor_revoked = 0;
    loop {
        while let Ok((id, line)) = rx.try_recv() {
            if id == other && line == "REVOKED" {
                survivor_revoked += 1;
            }
        }
        let live = root.list("tl/live/").await.unwrap();
        if live.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            kill(&mut children[other]);
            panic!(
                "{} secrets still live 60s after the leader died ({kind})",
                live.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the survivor finish deleting the records of what it revoked last.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !root
        .list("sys/leases/lookup/tl/issue/")
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "lease records left behind ({kind})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill(&mut children[other]);
    while let Ok((id, line)) = rx.try_recv() {
        if id == other && line == "REVOKED" {
            survivor_revoked += 1;
        }
    }
    assert!(survivor_revoked > 0, "the survivor took over ({kind})");
    assert_eq!(root.list("tl/revoked/").await.unwrap().len(), LEASES);
    let twice = root.list("tl/duplicates/").await.unwrap();
    assert!(
        twice.len() <= WORKERS,
        "only what the dead leader had in flight may be revoked again ({kind}): {twice:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_leader_killed_mid_run_hands_over() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    leader_handover("sqlite", db.to_str().unwrap(), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leader_killed_mid_run_hands_over() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::FreshDb::create("leases").await;
    leader_handover("postgres", &db.url, dir.path()).await;
}
