//! Auth benchmarks (issue 7): Kubernetes logins verified offline against the JWKS
//! [target: ≥ 10k logins/s], and the TokenReview login's overhead on top of the HTTP round
//! trip to the API server [target: ≤ 200 µs]. Both run against the test stand-in API server
//! (`tests/k8s_standin`), in process, on memory storage; every login creates a real token and
//! its lease. `tokenreview_login_cached_review` is the same login answered from the positive
//! TokenReview cache (the mount opts in with `token_review_cache_ttl`; reviews are not reused
//! by default): Strongroom's own work without the HTTP call.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmarks"
)]

#[path = "../tests/k8s_standin/mod.rs"]
mod k8s_standin;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_standin::{Alg, StandIn};
use serde_json::json;
use strongroom::{Config, Request, Strongroom, data};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn engine(k8s: &StandIn) -> Strongroom {
    let sr = Strongroom::open(Config::dev()).await.unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.auth()
        .enable("kubernetes", "kubernetes")
        .await
        .unwrap();
    root.auth()
        .kubernetes("kubernetes")
        .configure(data(
            json!({"kubernetes_host": k8s.url(), "kubernetes_ca_cert": k8s.ca_pem,
            "token_reviewer_jwt": "reviewer-jwt", "issuer": k8s.url(),
            "token_review_cache_ttl": "5m"}),
        ))
        .await
        .unwrap();
    let kube = root.auth().kubernetes("kubernetes");
    kube.write_role(
        "offline",
        data(
            json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "*",
            "verification": "jwks", "audience": "vault", "token_policies": "p"}),
        ),
    )
    .await
    .unwrap();
    kube.write_role(
        "online",
        data(
            json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "*",
            "token_policies": "p"}),
        ),
    )
    .await
    .unwrap();
    sr
}

fn login(role: &str, jwt: &str) -> Request {
    Request::write(
        "auth/kubernetes/login",
        data(json!({"role": role, "jwt": jwt})),
    )
}

fn logins(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let k8s = rt.block_on(StandIn::start("reviewer-jwt"));
    let sr = rt.block_on(engine(&k8s));
    let mut g = c.benchmark_group("kubernetes_login");
    g.measurement_time(Duration::from_secs(5));

    for (name, alg) in [
        ("offline_jwks_es256", Alg::Es256),
        ("offline_jwks_rs256", Alg::Rs256),
    ] {
        let jwt = k8s.projected(alg, "prod", "app", "uid-1", &["vault"], now() + 3600);
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { sr.handle(login("offline", &jwt)).await.unwrap() })
        });
    }

    // Throughput with 8 logins in flight (the runtime has 2 worker threads, the machine 2
    // cores): elements/s is logins/s.
    let jwt = k8s.projected(Alg::Rs256, "prod", "app", "uid-1", &["vault"], now() + 3600);
    g.throughput(criterion::Throughput::Elements(64));
    g.bench_function("offline_jwks_rs256_64_logins_8_in_flight", |b| {
        b.to_async(&rt).iter(|| {
            let sr = sr.clone();
            let jwt = jwt.clone();
            async move {
                let mut set = tokio::task::JoinSet::new();
                for w in 0..8 {
                    let sr = sr.clone();
                    let jwt = jwt.clone();
                    set.spawn(async move {
                        for _ in 0..8 {
                            sr.handle(login("offline", &jwt)).await.unwrap();
                        }
                        w
                    });
                }
                while set.join_next().await.is_some() {}
            }
        })
    });
    g.throughput(criterion::Throughput::Elements(1));

    // TokenReview: a fresh JWT per login, minted outside the timed region, so no login hits
    // the positive cache; compared with the bare HTTPS round trip of the same request.
    let mut serial = 0u64;
    let mut fresh = |n: u64| -> Vec<String> {
        (0..n)
            .map(|_| {
                serial += 1;
                k8s.projected(
                    Alg::Es256,
                    "prod",
                    "app",
                    &format!("uid-{serial}"),
                    &["https://kubernetes.default.svc"],
                    now() + 3600,
                )
            })
            .collect()
    };
    g.bench_function("tokenreview_login", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let batch = fresh(iters);
            let sr = sr.clone();
            async move {
                let start = Instant::now();
                for t in &batch {
                    sr.handle(login("online", t)).await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    // The same login answered from the positive TokenReview cache: Strongroom's own work
    // (role, claims, token, lease) without the HTTP call.
    let cached = fresh(1).remove(0);
    rt.block_on(sr.handle(login("online", &cached))).unwrap();
    g.bench_function("tokenreview_login_cached_review", |b| {
        b.to_async(&rt)
            .iter(|| async { sr.handle(login("online", &cached)).await.unwrap() })
    });
    let tokens = fresh(4000);
    let client = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(k8s.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("{}/apis/authentication.k8s.io/v1/tokenreviews", k8s.url());
    let mut next = 0usize;
    g.bench_function("tokenreview_http_round_trip_only", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let batch: Vec<String> = (0..iters)
                .map(|_| {
                    next = (next + 1) % tokens.len();
                    tokens[next].clone()
                })
                .collect();
            let client = client.clone();
            let url = url.clone();
            async move {
                let start = Instant::now();
                for t in &batch {
                    let body = json!({"metadata": {}, "spec": {"token": t, "audiences": ["https://kubernetes.default.svc"]}, "status": {"user": {}}});
                    let r = client.post(&url).bearer_auth("reviewer-jwt").json(&body).send().await.unwrap();
                    let _: serde_json::Value = r.json().await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    g.finish();
}

criterion_group!(benches, logins);
criterion_main!(benches);
