//! PKI benchmarks through the typed API (`client.pki(..)`), root token, no audit device (issue
//! targets in brackets):
//! - `pki_issue_ec_p256`: issue an ec-p256 leaf (key generation, signing, storage) [≥ 5,000/s]
//! - `pki_crl_rebuild_100k`: rebuild and sign the CRL of an issuer with 100,000 revoked
//!   certificates (`crl/rotate`) [≤ 2 s]
//! - `pki_crl_cached_100k`: read that CRL from the cache
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmarks"
)]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use strongroom::{Config, Pki, Strongroom, data};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A dev engine with a PKI mount `pki`: an ec-p256 root and a role `web` issuing ec-p256.
fn setup(rt: &tokio::runtime::Runtime) -> (Strongroom, Pki) {
    rt.block_on(async {
        let sr = Strongroom::open(Config::dev()).await.unwrap();
        let root = sr.client(sr.dev_root_token().unwrap());
        root.sys().enable_mount("pki", "pki", &[]).await.unwrap();
        let pki = root.pki("pki");
        pki.generate_root(false, data(json!({"common_name": "Bench Root", "key_type": "ec"})))
            .await
            .unwrap();
        pki.write_role(
            "web",
            data(json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec", "key_bits": 256})),
        )
        .await
        .unwrap();
        (sr, pki)
    })
}

fn issue(c: &mut Criterion) {
    let rt = rt();
    let (_sr, pki) = setup(&rt);
    let mut g = c.benchmark_group("pki");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pki_issue_ec_p256", |b| {
        b.to_async(&rt).iter(|| async {
            pki.issue("web", "api.example.com", data(json!({"ttl": "1h"})))
                .await
                .unwrap()
        })
    });
    g.finish();
}

fn crl(c: &mut Criterion) {
    let rt = rt();
    let (sr, pki) = setup(&rt);
    rt.block_on(async {
        strongroom::bench_internals::pki_seed_revoked(&sr, "pki", 100_000)
            .await
            .unwrap();
        // The first CRL read loads the revoked entries once.
        let der = pki.crl_der().await.unwrap();
        assert!(der.len() > 100_000 * 20);
    });
    let mut g = c.benchmark_group("pki");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("pki_crl_rebuild_100k", |b| {
        b.to_async(&rt)
            .iter(|| async { pki.rotate_crl().await.unwrap() })
    });
    g.bench_function("pki_crl_cached_100k", |b| {
        b.to_async(&rt)
            .iter(|| async { pki.crl_der().await.unwrap().len() })
    });
    g.finish();
}

criterion_group!(benches, issue, crl);
criterion_main!(benches);
