//! Storage benchmarks: durable writes, reads and open time of the SQLite backend.
//!
//! `cargo bench -p strongroom --bench storage -- --warm-up-time 1 --measurement-time 3`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    reason = "benchmarks"
)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strongroom::storage::sqlite::{SqliteOptions, Synchronous};
use strongroom::storage::{Backend, SqliteBackend, TxnOp};

const ENTRIES: usize = 100_000;
const VALUE: &[u8] = &[0x5a; 200];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn entry_key(i: usize) -> String {
    format!("logical/0f6a3c1e/secret/app-{:03}/key-{i:06}", i % 500)
}

/// A file holding `ENTRIES` entries, written once in large transactions.
fn build_file(rt: &tokio::runtime::Runtime, path: &Path) {
    rt.block_on(async {
        let b = SqliteBackend::open(path).unwrap();
        let keys: Vec<usize> = (0..ENTRIES).collect();
        for chunk in keys.chunks(5_000) {
            let ops = chunk
                .iter()
                .map(|&i| TxnOp::Put {
                    key: entry_key(i),
                    value: VALUE.to_vec(),
                })
                .collect();
            b.transaction(ops).await.unwrap();
        }
    });
}

fn sqlite(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("sqlite");

    // Durable (synchronous=FULL) puts, one after the other: each waits for its fsync.
    {
        let b = SqliteBackend::open(dir.path().join("put-full.db")).unwrap();
        let mut i = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function("put_durable", |bench| {
            bench.to_async(&rt).iter(|| {
                i += 1;
                let key = entry_key(i % ENTRIES);
                let b = &b;
                async move { b.put(&key, VALUE).await.unwrap() }
            });
        });
    }

    // Durable puts from many tasks at once: the writer thread commits them in groups, so
    // they share fsyncs.
    for tasks in [16usize, 64] {
        let b: Arc<dyn Backend> =
            Arc::new(SqliteBackend::open(dir.path().join(format!("put-full-{tasks}.db"))).unwrap());
        let mut i = 0usize;
        group.throughput(Throughput::Elements(tasks as u64));
        group.bench_function(format!("put_durable_{tasks}_concurrent"), |bench| {
            bench.to_async(&rt).iter(|| {
                i += 1;
                let base = i * tasks;
                let b = b.clone();
                async move {
                    let mut set = tokio::task::JoinSet::new();
                    for k in 0..tasks {
                        let b = b.clone();
                        set.spawn(async move {
                            b.put(&entry_key((base + k) % ENTRIES), VALUE)
                                .await
                                .unwrap();
                        });
                    }
                    while let Some(done) = set.join_next().await {
                        done.unwrap();
                    }
                }
            });
        });
    }

    // synchronous=NORMAL: survives a process crash, not a power loss.
    {
        let b = SqliteBackend::open_with(
            dir.path().join("put-normal.db"),
            SqliteOptions::new().synchronous(Synchronous::Normal),
        )
        .unwrap();
        let mut i = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function("put_normal", |bench| {
            bench.to_async(&rt).iter(|| {
                i += 1;
                let key = entry_key(i % ENTRIES);
                let b = &b;
                async move { b.put(&key, VALUE).await.unwrap() }
            });
        });
    }

    let big = dir.path().join("100k.db");
    build_file(&rt, &big);

    // Point reads of 200-byte values in a 100k-entry table.
    {
        let b = SqliteBackend::open(&big).unwrap();
        let mut i = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function("get_100k", |bench| {
            bench.to_async(&rt).iter(|| {
                i = (i + 7919) % ENTRIES;
                let key = entry_key(i);
                let b = &b;
                async move { black_box(b.get(&key).await.unwrap().unwrap()) }
            });
        });
        group.bench_function("list_500_folders_in_100k", |bench| {
            bench.to_async(&rt).iter(|| {
                let b = &b;
                async move {
                    let page = strongroom::storage::Page::all();
                    black_box(b.list("logical/0f6a3c1e/secret/", &page).await.unwrap())
                }
            });
        });
    }

    // Opening a file holding 100k entries (nothing is loaded at open).
    group.bench_function("open_100k", |bench| {
        bench.iter_with_large_drop(|| SqliteBackend::open(&big).unwrap());
    });
    group.bench_function("open_100k_and_first_get", |bench| {
        bench.to_async(&rt).iter_with_large_drop(|| {
            let big = big.clone();
            async move {
                let b = SqliteBackend::open(&big).unwrap();
                black_box(b.get(&entry_key(4242)).await.unwrap().unwrap());
                b
            }
        });
    });
    group.finish();
}

criterion_group!(benches, sqlite);
criterion_main!(benches);
