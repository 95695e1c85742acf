//! KV benchmarks on the SQLite backend (issue targets in brackets):
//! - `kv_get_1k_sqlite`: KV v2 get of a 1 KiB secret through `handle`, root token, warm cache
//!   [≥ 300k ops/s on one thread]
//! - `kv_put_sqlite`: durable KV v2 put, one writer after another (one fsync each)
//! - `kv_put_sqlite_concurrent32`: durable KV v2 puts from 32 concurrent callers, which the
//!   SQLite writer commits in groups [≥ 5k ops/s]
//! - `open_sqlite_100k`: open + unseal a store holding 100k KV entries, then one read [≤ 50 ms]
//! - `token_resolve_warm`: the pipeline's token step, warm cache [≤ 1 µs]
//! - `kv_get_nonroot_file_audit`: the whole `handle` path for a KV read with a non-root token
//!   and one file audit device [≥ 100k ops/s on one thread]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmarks"
)]

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{Config, Request, Strongroom, data};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn fresh(dir: &Path) -> (Strongroom, String) {
    let sr = Strongroom::open(Config::sqlite(dir.join("b.db")).unseal_key_file(dir.join("k")))
        .await
        .unwrap();
    let root = sr
        .init_with_key_file(dir.join("k"))
        .await
        .unwrap()
        .expose_secret()
        .to_string();
    (sr, root)
}

fn kv_get(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let (sr, root) = rt.block_on(async {
        let (sr, root) = fresh(dir.path()).await;
        let cl = sr.client(&root);
        cl.sys()
            .enable_mount("secret", "kv", &[("version", "2")])
            .await
            .unwrap();
        cl.kv("secret")
            .put("app/db", &data(json!({"blob": "x".repeat(1024)})))
            .await
            .unwrap();
        (sr, root)
    });
    let mut g = c.benchmark_group("kv");
    g.throughput(Throughput::Elements(1));
    g.bench_function("kv_get_1k_sqlite", |b| {
        b.iter(|| {
            rt.block_on(sr.handle(Request::read("secret/data/app/db").with_token(root.as_str())))
                .unwrap()
        })
    });
    let kv = sr.client(&root).kv("secret");
    let payload = data(json!({"password": "x".repeat(64)}));
    let mut i = 0u64;
    g.bench_function("kv_put_sqlite", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(kv.put(&format!("p/{}", i % 1000), &payload))
                .unwrap()
        })
    });
    g.finish();

    // Durable throughput under concurrency: 32 callers, each acknowledged only once on disk.
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("kv");
    g.throughput(Throughput::Elements(32));
    g.sample_size(20);
    g.bench_function("kv_put_sqlite_concurrent32", |b| {
        b.iter(|| {
            mt.block_on(async {
                let mut tasks = Vec::new();
                for t in 0..32 {
                    let kv = sr.client(&root).kv("secret");
                    tasks.push(tokio::spawn(async move {
                        kv.put(&format!("c/{t}"), &data(json!({"password": "x"})))
                            .await
                            .unwrap()
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    g.finish();
}

fn open_100k(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    // Filled on first use, so filtering this benchmark out skips writing 100k entries.
    let mut root: Option<String> = None;
    let mut g = c.benchmark_group("open");
    g.sample_size(20);
    g.bench_function("open_sqlite_100k", |b| {
        let root = root
            .get_or_insert_with(|| {
                rt.block_on(async {
                    let (sr, root) = fresh(dir.path()).await;
                    let cl = sr.client(&root);
                    cl.sys()
                        .enable_mount("secret", "kv", &[("version", "2")])
                        .await
                        .unwrap();
                    let kv = cl.kv("secret");
                    for i in 0..100_000u32 {
                        kv.put(&format!("bulk/{i}"), &data(json!({"v": i})))
                            .await
                            .unwrap();
                    }
                    root
                })
            })
            .clone();
        b.iter(|| {
            rt.block_on(async {
                let sr = Strongroom::open(
                    Config::sqlite(dir.path().join("b.db")).unseal_key_file(dir.path().join("k")),
                )
                .await
                .unwrap();
                sr.client(&root)
                    .kv("secret")
                    .get("bulk/99999")
                    .await
                    .unwrap()
                    .unwrap()
            })
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let (sr, token) = rt.block_on(async {
        let sr = Strongroom::open(
            Config::dev().audit(strongroom::AuditDevice::file("file", log.to_str().unwrap())),
        )
        .await
        .unwrap();
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
        let t = root
            .write("auth/token/create", data(json!({"policies": ["app"]})))
            .await
            .unwrap()
            .auth
            .unwrap()
            .client_token;
        (sr, t)
    });
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    g.bench_function("token_resolve_warm", |b| {
        b.iter(|| {
            rt.block_on(strongroom::bench_internals::resolve_token(
                &sr,
                token.expose_secret(),
            ))
            .unwrap()
        })
    });
    g.bench_function("kv_get_nonroot_file_audit", |b| {
        b.iter(|| {
            rt.block_on(
                sr.handle(Request::read("secret/data/app/db").with_token(token.expose_secret())),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, kv_get, pipeline, open_100k);
criterion_main!(benches);
