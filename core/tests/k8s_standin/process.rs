//! The Kubernetes API stand-in as a runnable process, for the Python (hvac) and Node
//! (node-vault) client suites, which drive Kubernetes auth through a real `strongroom server`.
//!
//! It is a STAND-IN, not a cluster: the same code as the Rust Kubernetes auth tests use
//! (`mod.rs` beside this file, included, not copied; built as the core crate's `k8s_standin`
//! example so it never enters the shipped `strongroom` binary) serving the real wire format of the parts the auth method talks to —
//! HTTPS with its own CA, `POST /apis/authentication.k8s.io/v1/tokenreviews` (TokenReview
//! `authentication.k8s.io/v1`, with real RS256/ES256 signature, expiry and audience checks),
//! OIDC discovery and `/openid/v1/jwks`, and `GET /api/v1/namespaces/:ns`.
//!
//! ```text
//! cargo run -p strongroom --example k8s_standin
//! ```
//!
//! It binds a free loopback port and prints ONE JSON line on stdout:
//!
//! ```text
//! {"url": "https://127.0.0.1:PORT",       // kubernetes_host, also the token issuer
//!  "ca_pem": "-----BEGIN CERTIFICATE-----…", // kubernetes_ca_cert
//!  "issuer": "https://127.0.0.1:PORT",
//!  "audience": "https://kubernetes.default.svc",
//!  "reviewer_jwt": "eyJ…",                 // token_reviewer_jwt (the only bearer accepted)
//!  "rsa_public_pem": "-----BEGIN PUBLIC KEY-----…", // for pem_keys
//!  "namespaces": {"apps": {"team": "web"}, …},
//!  "service_accounts": [{"name": "web", "namespace": "apps", "uid": "…", "alg": "RS256",
//!                        "kind": "projected", "jwt": "eyJ…"}, …]}
//! ```
//!
//! Projected tokens expire an hour after start (real time). The process runs until its
//! standard input closes (the parent exited or closed the pipe) or it gets SIGTERM/SIGINT.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test support tool: a failure to start should stop it loudly"
)]

#[path = "mod.rs"]
mod k8s_standin;

use std::io::{BufRead, Write};

use k8s_standin::{Alg, StandIn};
use serde_json::{Value, json};

/// The audience projected tokens carry (the API server's default).
const AUD: &str = "https://kubernetes.default.svc";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let standin = StandIn::start("replaced-below").await;
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;

    // The reviewer is itself a service-account token (system:auth-delegator in a real cluster).
    let reviewer = standin.projected(
        Alg::Rs256,
        "kube-system",
        "strongroom-reviewer",
        "uid-reviewer",
        &[AUD],
        exp,
    );
    let mut accounts: Vec<Value> = Vec::new();
    let mut add = |name: &str, ns: &str, uid: &str, kind: &str, alg: Option<Alg>, jwt: String| {
        accounts.push(json!({
            "name": name, "namespace": ns, "uid": uid, "kind": kind,
            "alg": match alg { Some(Alg::Es256) => "ES256", _ => "RS256" },
            "jwt": jwt,
        }));
    };
    add(
        "web",
        "apps",
        "uid-web",
        "projected",
        Some(Alg::Rs256),
        standin.projected(Alg::Rs256, "apps", "web", "uid-web", &[AUD], exp),
    );
    add(
        "worker",
        "apps",
        "uid-worker",
        "projected",
        Some(Alg::Es256),
        standin.projected(Alg::Es256, "apps", "worker", "uid-worker", &[AUD], exp),
    );
    add(
        "legacy",
        "apps",
        "uid-legacy",
        "legacy",
        None,
        standin.legacy("apps", "legacy", "uid-legacy", "legacy-token-abcde"),
    );
    // The seed's application: `api-service-sa` in `production`.
    add(
        "api-service-sa",
        "production",
        "uid-api-service",
        "projected",
        Some(Alg::Rs256),
        standin.projected(
            Alg::Rs256,
            "production",
            "api-service-sa",
            "uid-api-service",
            &[AUD],
            exp,
        ),
    );
    add(
        "intruder",
        "other",
        "uid-intruder",
        "projected",
        Some(Alg::Rs256),
        standin.projected(Alg::Rs256, "other", "intruder", "uid-intruder", &[AUD], exp),
    );
    let namespaces =
        json!({"apps": {"team": "web"}, "other": {"team": "none"}, "production": {"team": "api"}});
    {
        let mut shared = standin.shared.lock().unwrap();
        shared.reviewer = reviewer.clone();
        for (ns, labels) in namespaces.as_object().unwrap() {
            let labels = labels
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            shared.namespaces.insert(ns.clone(), labels);
        }
    }

    let line = json!({
        "url": standin.url(),
        "ca_pem": standin.ca_pem,
        "issuer": standin.url(),
        "audience": AUD,
        "reviewer_jwt": reviewer,
        "rsa_public_pem": standin.rsa_public_pem(),
        "namespaces": namespaces,
        "service_accounts": accounts,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
    drop(out);

    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let mut stdin = std::io::stdin().lock();
        while stdin.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    tokio::select! {
        _ = stdin_closed => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    standin.stop().await;
}
