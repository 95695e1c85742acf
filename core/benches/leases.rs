//! The lease manager at scale (issue 4's figures). A bench binary rather than criterion: each
//! figure is one large run. `cargo bench -p strongroom --bench leases`; `LEASES_N` scales the
//! big store down (default 1,000,000).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "bench"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::bench_internals::register_test_leases;
use strongroom::{Config, LeaseConfig, Strongroom, VirtualClock, data};

const CHILD: &str = "STRONGROOM_LEASE_BENCH_OPEN";

fn manual() -> LeaseConfig {
    LeaseConfig {
        background: false,
        workers: 64,
        ..LeaseConfig::default()
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A store in `dir` with `test-leases` mounted at `tl/`; returns the engine and root token.
async fn store(dir: &Path, clock: Option<VirtualClock>) -> (Strongroom, String) {
    let db = dir.join("store.db");
    let key = dir.join("unseal.key");
    let cfg = || {
        let c = Config::sqlite(&db).leases(manual());
        match &clock {
            Some(c2) => c.clock(Arc::new(c2.clone())),
            None => c,
        }
    };
    let sr = Strongroom::open(cfg()).await.unwrap();
    let root = sr.init_with_key_file(&key).await.unwrap();
    drop(sr);
    let sr = Strongroom::open(cfg().unseal_key_file(&key)).await.unwrap();
    let token = root.expose_secret().to_string();
    sr.client(&token)
        .sys()
        .enable_mount("tl", "test-leases", &[])
        .await
        .unwrap();
    (sr, token)
}

/// In a child process: open the store, unseal, read one lease; print the time and RSS.
fn open_child(dir: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = Path::new(dir);
        let before = rss_kb();
        let t = Instant::now();
        let sr = Strongroom::open(
            Config::sqlite(dir.join("store.db"))
                .unseal_key_file(dir.join("unseal.key"))
                .leases(manual()),
        )
        .await
        .unwrap();
        assert!(!sr.is_sealed());
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        println!("OPEN {ms:.1} RSS {} BEFORE {before}", rss_kb());
    });
}

fn measure_open(dir: &Path) -> (f64, u64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, dir)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let line = s
        .lines()
        .find(|l| l.starts_with("OPEN "))
        .unwrap_or_else(|| panic!("child said: {s} {}", String::from_utf8_lossy(&out.stderr)));
    let parts: Vec<&str> = line.split_whitespace().collect();
    (parts[1].parse().unwrap(), parts[3].parse().unwrap())
}

/// Leases as clients get them: one `write tl/issue/<i>` per lease through `handle` (token,
/// ACL, engine, lease registration with its own synced commit), 64 in flight, on SQLite.
async fn request_path(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (sr, token) = store(dir.path(), None).await;
    let client = sr.client(&token);
    let t = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (client, next) = (client.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                client
                    .write(
                        &format!("tl/issue/s{i}"),
                        data(json!({"ttl": "24h", "noop": true})),
                    )
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "issue {n} leases through the request path on SQLite, 64 in flight: {secs:.2} s = {:.0} leases/s",
        n as f64 / secs
    );
}

async fn register_and_open(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (sr, token) = store(dir.path(), None).await;
    let t = Instant::now();
    register_test_leases(
        &sr,
        "tl",
        &token,
        n,
        10_000,
        Duration::from_secs(86_400),
        true,
    )
    .await
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "register {n} no-op lease records on SQLite through the internal hook, 10k per transaction (not the request path): {secs:.2} s = {:.0} records/s (target >= 50k/s)",
        n as f64 / secs
    );
    drop(sr);
    let empty = tempfile::tempdir().unwrap();
    let (sr, _) = store(empty.path(), None).await;
    drop(sr);
    let (empty_ms, empty_rss) = measure_open(empty.path());
    let (full_ms, full_rss) = measure_open(dir.path());
    println!(
        "open + unseal: empty store {empty_ms:.1} ms, RSS {} MB; store with {n} leases {full_ms:.1} ms, RSS {} MB (target <= 1 s, within 100 MB)",
        empty_rss / 1024,
        full_rss / 1024
    );
}

async fn mass_expiry(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let (sr, token) = store(dir.path(), Some(clock.clone())).await;
    register_test_leases(&sr, "tl", &token, n, 10_000, Duration::from_secs(60), true)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));
    let t = Instant::now();
    let mut revoked = 0;
    let mut runs = 0;
    while revoked < n {
        revoked += sr.run_expiry().await.unwrap().revoked;
        runs += 1;
        assert!(runs < 1000, "expiry stalled at {revoked}");
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{n} leases due in the same second, no-op revocation, SQLite: all revoked in {secs:.2} s ({:.0}/s, {runs} runs; target <= 10 s)",
        n as f64 / secs
    );
}

async fn poison(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let (sr, token) = store(dir.path(), Some(clock.clone())).await;
    let root = sr.client(&token);
    root.write(
        "tl/issue/poison",
        data(json!({"ttl": "60s", "fail": "retry"})),
    )
    .await
    .unwrap();
    register_test_leases(&sr, "tl", &token, n, 10_000, Duration::from_secs(60), false)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));
    let t = Instant::now();
    let r = sr.run_expiry().await.unwrap();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        r.revoked, n,
        "every healthy lease revoked in the first tick"
    );
    assert_eq!(r.retried, 1);
    println!(
        "one poison lease + {n} others due together: all {n} revoked in the first tick ({ms:.0} ms), poison rescheduled with backoff (target: none delayed more than one tick)"
    );
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD) {
        open_child(&dir);
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run small then.
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("LEASES_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 20_000 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // LEASES_ONLY=request|register|expiry|poison runs one part (for profiling).
    let only = std::env::var("LEASES_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    rt.block_on(async {
        if run("register") {
            register_and_open(n).await;
        }
        if run("request") {
            request_path(if full { 100_000 } else { 5_000 }).await;
        }
        if run("expiry") {
            mass_expiry(if full { 100_000 } else { 5_000 }).await;
        }
        if run("poison") {
            poison(if full { 10_000 } else { 1_000 }).await;
        }
    });
}
