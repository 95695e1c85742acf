//! Transit benchmarks through the typed API (`client.transit(..)`), a non-root token whose
//! policy is checked on every call, no audit device (issue targets in brackets):
//! - `transit_encrypt_64b`: aes256-gcm96 encrypt of 64 B [≥ 1M ops/s on one core]
//! - `transit_decrypt_64b`: decrypt of the same [within 10% of encrypt]
//! - `transit_encrypt_4k`: 4 KiB payloads [≥ 1 GB/s]
//! - `transit_encrypt_batch_1000x64`: one batch of 1,000 × 64 B [≥ 2M items/s]
//! - `transit_sign_ed25519`: ed25519 sign of 64 B [≥ 50k ops/s]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmarks"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strongroom::{Config, KeyConfig, Strongroom, TokenRequest, Transit};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const POLICY: &str = r#"
path "transit/encrypt/*" { capabilities = ["update"] }
path "transit/decrypt/*" { capabilities = ["update"] }
path "transit/sign/*" { capabilities = ["update"] }
"#;

/// A dev engine with a transit mount, keys `k` (aes256-gcm96) and `ed` (ed25519), and the
/// typed handle of a non-root token limited by [`POLICY`].
fn setup(rt: &tokio::runtime::Runtime) -> (Strongroom, Transit) {
    rt.block_on(async {
        let sr = Strongroom::open(Config::dev()).await.unwrap();
        let root = sr.client(sr.dev_root_token().unwrap());
        root.sys()
            .enable_mount("transit", "transit", &[])
            .await
            .unwrap();
        root.sys()
            .write_policy("transit-user", POLICY)
            .await
            .unwrap();
        let t = root.transit("transit");
        t.create_key("k", &KeyConfig::default()).await.unwrap();
        t.create_key(
            "ed",
            &KeyConfig {
                key_type: "ed25519".into(),
                ..KeyConfig::default()
            },
        )
        .await
        .unwrap();
        let tok = root
            .token()
            .create(&TokenRequest {
                policies: vec!["transit-user".into()],
                ..TokenRequest::default()
            })
            .await
            .unwrap();
        let user = sr.client(tok.client_token);
        (sr, user.transit("transit"))
    })
}

fn encrypt_decrypt(c: &mut Criterion) {
    let rt = rt();
    let (_sr, t) = setup(&rt);
    let pt = [7u8; 64];
    let ct = rt.block_on(t.encrypt("k", &pt)).unwrap();
    let mut g = c.benchmark_group("transit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("transit_encrypt_64b", |b| {
        b.iter(|| rt.block_on(t.encrypt("k", &pt)).unwrap())
    });
    g.bench_function("transit_decrypt_64b", |b| {
        b.iter(|| rt.block_on(t.decrypt("k", &ct)).unwrap())
    });
    g.bench_function("transit_sign_ed25519", |b| {
        b.iter(|| rt.block_on(t.sign("ed", &pt)).unwrap())
    });
    let big = vec![7u8; 4096];
    g.throughput(Throughput::Bytes(4096));
    g.bench_function("transit_encrypt_4k", |b| {
        b.iter(|| rt.block_on(t.encrypt("k", &big)).unwrap())
    });
    let items: Vec<&[u8]> = (0..1000).map(|_| pt.as_slice()).collect();
    g.throughput(Throughput::Elements(1000));
    g.bench_function("transit_encrypt_batch_1000x64", |b| {
        b.iter(|| rt.block_on(t.encrypt_batch("k", &items)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, encrypt_decrypt);
criterion_main!(benches);
