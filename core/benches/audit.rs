//! Audit benchmarks (issue 3; targets in brackets):
//! - `kv_get_nonroot_file_audit`: the whole `handle` path for a KV v2 read with a non-root
//!   token and one file audit device (`required`, the default) [≥ 100k ops/s on one thread]
//! - `kv_get_nonroot_no_audit`: the same call without any audit device, to show what auditing
//!   adds
//! - `kv_get_nonroot_file_audit_best_effort`: the same with a best-effort file device
//!
//! On a shared machine wall-clock figures swing with other people's load, so after criterion
//! the bench also prints, per call, the CPU time the calling thread and the whole process used
//! (from `/proc/.../schedstat`, Linux only): those do not depend on what else runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmarks"
)]

use criterion::{Criterion, Throughput, criterion_group};
use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{AuditDevice, Config, Request, Strongroom, data};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A dev engine with `config`'s devices, a `app` policy reading `secret/data/app/*`, one
/// secret, and a token holding only that policy.
async fn engine(config: Config) -> (Strongroom, String) {
    let sr = Strongroom::open(config).await.unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.write(
        "sys/policies/acl/app",
        data(json!({"policy": r#"path "secret/data/app/*" { capabilities = ["read"] }"#})),
    )
    .await
    .unwrap();
    root.kv("secret")
        .put("app/db", &data(json!({"password": "x".repeat(64)})))
        .await
        .unwrap();
    let token = root
        .write("auth/token/create", data(json!({"policies": ["app"]})))
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token
        .expose_secret()
        .to_string();
    (sr, token)
}

fn audit(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "kv_get_nonroot_file_audit",
            Config::dev().audit(AuditDevice::file(
                "file",
                dir.path().join("required.log").to_str().unwrap(),
            )),
        ),
        ("kv_get_nonroot_no_audit", Config::dev()),
        (
            "kv_get_nonroot_file_audit_best_effort",
            Config::dev().audit(
                AuditDevice::file("file", dir.path().join("best.log").to_str().unwrap())
                    .best_effort(),
            ),
        ),
    ];
    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(1));
    for (name, config) in cases {
        let (sr, token) = rt.block_on(engine(config));
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(
                    sr.handle(Request::read("secret/data/app/db").with_token(token.as_str())),
                )
                .unwrap()
            })
        });
        assert!(rt.block_on(sr.flush_audit(std::time::Duration::from_secs(30))));
    }
    g.finish();
}

/// Nanoseconds this thread, and every thread of the process, has run on a CPU (Linux).
fn cpu_nanos() -> Option<(u64, u64)> {
    let read = |p: &std::path::Path| -> Option<u64> {
        std::fs::read_to_string(p)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let this = read(std::path::Path::new("/proc/thread-self/schedstat"))?;
    let mut all = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        all += read(&task.ok()?.path().join("schedstat")).unwrap_or(0);
    }
    Some((this, all))
}

/// Per-call wall time and CPU time (calling thread, whole process) over `n` calls.
fn cpu_report() {
    const N: u32 = 20_000;
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "kv_get_nonroot_file_audit",
            Config::dev().audit(AuditDevice::file(
                "file",
                dir.path().join("required.log").to_str().unwrap(),
            )),
        ),
        ("kv_get_nonroot_no_audit", Config::dev()),
        (
            "kv_get_nonroot_file_audit_best_effort",
            Config::dev().audit(
                AuditDevice::file("file", dir.path().join("best.log").to_str().unwrap())
                    .best_effort(),
            ),
        ),
    ];
    for (name, config) in cases {
        let (sr, token) = rt.block_on(engine(config));
        let call = || {
            rt.block_on(sr.handle(Request::read("secret/data/app/db").with_token(token.as_str())))
                .unwrap()
        };
        for _ in 0..N / 10 {
            call();
        }
        let (Some((t0, a0)), start) = (cpu_nanos(), std::time::Instant::now()) else {
            return;
        };
        for _ in 0..N {
            call();
        }
        assert!(rt.block_on(sr.flush_audit(std::time::Duration::from_secs(30))));
        let wall = start.elapsed().as_nanos() as f64 / f64::from(N) / 1000.0;
        let Some((t1, a1)) = cpu_nanos() else { return };
        let per = |d: u64| d as f64 / f64::from(N) / 1000.0;
        println!(
            "cpu/{name}: wall {wall:.2} us/call, calling thread {:.2} us/call, all threads {:.2} us/call",
            per(t1 - t0),
            per(a1 - a0)
        );
    }
}

criterion_group!(benches, audit);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Not when listing or profiling (`--profile-time`): only the chosen benchmark runs then.
    if std::env::args().all(|a| a != "--list" && a != "--profile-time") {
        cpu_report();
    }
}
