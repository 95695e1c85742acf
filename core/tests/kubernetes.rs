//! Kubernetes auth against a stand-in API server (`k8s_standin`: HTTPS with its own CA,
//! TokenReview, OIDC discovery, JWKS, real RS256/ES256 service-account tokens): OpenBao's
//! TokenReview flow, the offline JWKS / pem_keys verifier, and the failure cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod k8s_standin;

use secrecy::ExposeSecret;
use std::sync::Arc;

use k8s_standin::{Alg, StandIn};
use serde_json::{Value, json};
use strongroom::{Client, Config, ErrorCode, Strongroom, VirtualClock, data};

const AUD: &str = "https://kubernetes.default.svc";

async fn setup() -> (Strongroom, Client) {
    let sr = Strongroom::open(Config::dev().clock(Arc::new(VirtualClock::new())))
        .await
        .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.auth()
        .enable("kubernetes", "kubernetes")
        .await
        .unwrap();
    (sr, root)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn configure(root: &Client, k8s: &StandIn, extra: Value) {
    let mut cfg = json!({
        "kubernetes_host": k8s.url(),
        "kubernetes_ca_cert": k8s.ca_pem,
        "token_reviewer_jwt": "reviewer-jwt",
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    root.auth()
        .kubernetes("kubernetes")
        .configure(data(cfg))
        .await
        .unwrap();
}

async fn api_role(root: &Client, extra: Value) {
    let mut r = json!({
        "bound_service_account_names": "api-service-sa",
        "bound_service_account_namespaces": "production",
        "policies": "api-secrets",
        "ttl": "1h",
    });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    root.auth()
        .kubernetes("kubernetes")
        .write_role("api-service", data(r))
        .await
        .unwrap();
}

#[tokio::test]
async fn tokenreview_login_matches_openbao() {
    let k8s = StandIn::start("reviewer-jwt").await;
    let (sr, root) = setup().await;
    configure(&root, &k8s, json!({})).await;
    let cfg = root.read("auth/kubernetes/config").await.unwrap().unwrap();
    assert_eq!(cfg.get("token_reviewer_jwt_set").unwrap(), true);
    assert!(
        cfg.get("token_reviewer_jwt").is_none(),
        "the reviewer JWT is never returned"
    );
    assert_eq!(cfg.get("disable_iss_validation").unwrap(), true);
    assert!(
        cfg.get("token_review_cache_ttl").is_none(),
        "no reuse unless asked"
    );
    // A write replaces the whole configuration, as OpenBao's: what it does not give goes back
    // to its default.
    root.auth()
        .kubernetes("kubernetes")
        .configure(data(
            json!({"kubernetes_host": k8s.url(), "kubernetes_ca_cert": k8s.ca_pem}),
        ))
        .await
        .unwrap();
    let cfg = root.read("auth/kubernetes/config").await.unwrap().unwrap();
    assert_eq!(cfg.get("token_reviewer_jwt_set").unwrap(), false);
    let e = root
        .auth()
        .kubernetes("kubernetes")
        .configure(data(
            json!({"kubernetes_host": k8s.url(), "token_review_cache_ttl": "6m"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(e.message().contains("at most 5m"), "{}", e.message());
    configure(&root, &k8s, json!({})).await;
    api_role(&root, json!({})).await;
    let role = root
        .auth()
        .kubernetes("kubernetes")
        .read_role("api-service")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(role["token_policies"], json!(["api-secrets"]));
    assert_eq!(
        role["policies"],
        json!(["api-secrets"]),
        "legacy names come back when used"
    );
    assert_eq!(role["token_ttl"], 3600);
    assert_eq!(role["alias_name_source"], "serviceaccount_uid");

    let jwt = k8s.projected(
        Alg::Rs256,
        "production",
        "api-service-sa",
        "uid-1",
        &[AUD],
        now() + 3600,
    );
    let auth = root
        .auth()
        .kubernetes("kubernetes")
        .login_auth("api-service", &jwt)
        .await
        .unwrap();
    assert_eq!(auth.policies, vec!["api-secrets", "default"]);
    assert_eq!(auth.lease_duration, 3600);
    assert!(auth.orphan && auth.renewable);
    assert_eq!(
        serde_json::to_value(&auth.metadata).unwrap(),
        json!({"role": "api-service", "service_account_name": "api-service-sa",
               "service_account_namespace": "production", "service_account_secret_name": "",
               "service_account_uid": "uid-1"})
    );
    // Exactly the TokenReview OpenBao sends.
    {
        let s = k8s.shared.lock().unwrap();
        assert_eq!(
            s.last_review.as_ref().unwrap(),
            &json!({"metadata": {}, "spec": {"token": jwt, "audiences": [AUD]}, "status": {"user": {}}})
        );
        assert_eq!(s.last_review_auth.as_deref(), Some("Bearer reviewer-jwt"));
    }
    let c = sr
        .login_kubernetes("kubernetes", "api-service", &jwt)
        .await
        .unwrap();
    let me = c.token().lookup_self().await.unwrap();
    assert_eq!(me.display_name, "kubernetes-production-api-service-sa");
    assert_eq!(me.path, "auth/kubernetes/login");
    // Renewal re-reads the role.
    assert_eq!(
        c.token()
            .renew_self(std::time::Duration::ZERO)
            .await
            .unwrap()
            .lease_duration,
        3600
    );
    root.auth()
        .kubernetes("kubernetes")
        .write_role("api-service", data(json!({"ttl": "30m"})))
        .await
        .unwrap();
    assert_eq!(
        c.token()
            .renew_self(std::time::Duration::ZERO)
            .await
            .unwrap()
            .lease_duration,
        1800
    );
    root.delete("auth/kubernetes/role/api-service")
        .await
        .unwrap();
    let e = c
        .token()
        .renew_self(std::time::Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "role api-service does not exist during renewal"
    );

    // A legacy secret-based token: no aud, so no audiences key in the review.
    api_role(&root, json!({})).await;
    let legacy = k8s.legacy(
        "production",
        "api-service-sa",
        "uid-2",
        "api-service-sa-token-abc",
    );
    let a = root
        .auth()
        .kubernetes("kubernetes")
        .login_auth("api-service", &legacy)
        .await
        .unwrap();
    assert_eq!(
        a.metadata["service_account_secret_name"],
        "api-service-sa-token-abc"
    );
    assert_eq!(
        k8s.shared.lock().unwrap().last_review.as_ref().unwrap(),
        &json!({"metadata": {}, "spec": {"token": legacy}, "status": {"user": {}}})
    );
}

#[tokio::test]
async fn tokenreview_login_failures() {
    let k8s = StandIn::start("reviewer-jwt").await;
    let (_sr, root) = setup().await;
    configure(&root, &k8s, json!({})).await;
    api_role(&root, json!({})).await;
    let kube = root.auth().kubernetes("kubernetes");
    let exp = now() + 3600;
    let deny = |e: strongroom::Error| (e.code(), e.message().to_string());

    let e = kube.login("api-service", "").await.unwrap_err();
    assert_eq!(e.message(), "missing jwt");
    let e = kube.login("", "x").await.unwrap_err();
    assert_eq!(e.message(), "missing role");
    let e = kube.login("nope", "x.y.z").await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (ErrorCode::InvalidInput, "invalid role name \"nope\"")
    );
    assert_eq!(
        deny(kube.login("api-service", "not-a-jwt").await.unwrap_err()).0,
        ErrorCode::PermissionDenied
    );

    let wrong_ns = k8s.projected(Alg::Rs256, "staging", "api-service-sa", "u1", &[AUD], exp);
    assert_eq!(
        deny(kube.login("api-service", &wrong_ns).await.unwrap_err()),
        (
            ErrorCode::PermissionDenied,
            "namespace not authorized".into()
        )
    );
    let wrong_name = k8s.projected(Alg::Rs256, "production", "other-sa", "u1", &[AUD], exp);
    assert_eq!(
        deny(kube.login("api-service", &wrong_name).await.unwrap_err()),
        (
            ErrorCode::PermissionDenied,
            "service account name not authorized".into()
        )
    );
    let expired = k8s.projected(
        Alg::Rs256,
        "production",
        "api-service-sa",
        "u1",
        &[AUD],
        now() - 600,
    );
    let e = kube.login("api-service", &expired).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert!(
        e.message().contains("token is expired (exp)"),
        "{}",
        e.message()
    );

    api_role(&root, json!({"audience": "vault"})).await;
    let e = kube
        .login(
            "api-service",
            &k8s.projected(
                Alg::Rs256,
                "production",
                "api-service-sa",
                "u1",
                &["other"],
                exp,
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "invalid audience (aud) claim: audience claim does not match any expected audience"
    );
    let reviews = k8s.reviews();
    assert_eq!(reviews, 0, "local checks fail before any TokenReview");

    // TokenReview says no (the service account was deleted): 403 permission denied.
    k8s.shared
        .lock()
        .unwrap()
        .invalidated
        .insert("u-gone".into());
    let gone = k8s.projected(
        Alg::Rs256,
        "production",
        "api-service-sa",
        "u-gone",
        &["vault"],
        exp,
    );
    assert_eq!(
        deny(kube.login("api-service", &gone).await.unwrap_err()),
        (ErrorCode::PermissionDenied, "permission denied".into())
    );
    assert_eq!(k8s.reviews(), 1);
    // A reviewer JWT the API server refuses: 403 too.
    k8s.shared.lock().unwrap().reviewer = "rotated".into();
    let ok_token = k8s.projected(
        Alg::Rs256,
        "production",
        "api-service-sa",
        "u-ok",
        &["vault"],
        exp,
    );
    assert_eq!(
        deny(kube.login("api-service", &ok_token).await.unwrap_err()).0,
        ErrorCode::PermissionDenied
    );
    k8s.shared.lock().unwrap().reviewer = "reviewer-jwt".into();
    kube.login("api-service", &ok_token).await.unwrap();
    // No reuse by default, as OpenBao: the same JWT again is reviewed again, so once the
    // cluster invalidates it (its pod deleted) the very next login is refused.
    let n = k8s.reviews();
    kube.login("api-service", &ok_token).await.unwrap();
    assert_eq!(k8s.reviews(), n + 1);
    k8s.shared.lock().unwrap().invalidated.insert("u-ok".into());
    assert_eq!(
        deny(kube.login("api-service", &ok_token).await.unwrap_err()).0,
        ErrorCode::PermissionDenied
    );
    k8s.shared.lock().unwrap().invalidated.remove("u-ok");
    // Opted in: a positive answer is reused for `token_review_cache_ttl` ...
    configure(&root, &k8s, json!({"token_review_cache_ttl": "30s"})).await;
    let cfg = root.read("auth/kubernetes/config").await.unwrap().unwrap();
    assert_eq!(cfg.get("token_review_cache_ttl").unwrap(), 30);
    kube.login("api-service", &ok_token).await.unwrap();
    let n = k8s.reviews();
    kube.login("api-service", &ok_token).await.unwrap();
    assert_eq!(k8s.reviews(), n);
    // ... so it even survives a short API-server outage; a new JWT then fails clearly.
    k8s.stop().await;
    kube.login("api-service", &ok_token).await.unwrap();
    let fresh = k8s.projected(
        Alg::Rs256,
        "production",
        "api-service-sa",
        "u-new",
        &["vault"],
        exp,
    );
    let e = kube.login("api-service", &fresh).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable);
    assert_eq!(
        e.message(),
        "kubernetes TokenReview request failed: connection failed"
    );
}

#[tokio::test]
async fn offline_jwks_and_pem_keys() {
    let k8s = StandIn::start("reviewer-jwt").await;
    let forger = StandIn::start("x").await;
    let (_sr, root) = setup().await;
    configure(&root, &k8s, json!({"issuer": k8s.url()})).await;
    let kube = root.auth().kubernetes("kubernetes");
    let e = kube
        .write_role("off", data(json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "prod-*", "verification": "jwks"})))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "audience is required when verification includes jwks"
    );
    kube.write_role(
        "off",
        data(
            json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "prod-*",
                    "verification": "jwks", "audience": "vault", "token_policies": "p"}),
        ),
    )
    .await
    .unwrap();
    let exp = now() + 600;
    for alg in [Alg::Rs256, Alg::Es256] {
        let t = k8s.projected(alg, "prod-eu", "any-sa", "u1", &["vault"], exp);
        let a = kube.login_auth("off", &t).await.unwrap();
        assert_eq!(a.policies, vec!["default", "p"]);
    }
    assert_eq!(k8s.reviews(), 0, "offline: no TokenReview");
    assert_eq!(
        k8s.shared.lock().unwrap().jwks_fetches,
        1,
        "the JWKS is cached"
    );

    let forged = forger.projected(Alg::Rs256, "prod-eu", "any-sa", "u1", &["vault"], exp);
    assert_eq!(
        kube.login("off", &forged).await.unwrap_err().message(),
        "permission denied"
    );
    let legacy = k8s.legacy("prod-eu", "any-sa", "u1", "s");
    assert_eq!(
        kube.login("off", &legacy).await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    let wrong_aud = k8s.projected(Alg::Es256, "prod-eu", "any-sa", "u1", &[AUD], exp);
    assert!(
        kube.login("off", &wrong_aud)
            .await
            .unwrap_err()
            .message()
            .starts_with("invalid audience")
    );
    let wrong_ns = k8s.projected(Alg::Es256, "dev", "any-sa", "u1", &["vault"], exp);
    assert_eq!(
        kube.login("off", &wrong_ns).await.unwrap_err().message(),
        "namespace not authorized"
    );

    // The API server going away does not matter offline.
    k8s.stop().await;
    let t = k8s.projected(Alg::Es256, "prod-us", "any-sa", "u2", &["vault"], exp);
    kube.login("off", &t).await.unwrap();

    // pem_keys: the signature is checked locally (a forged token never reaches TokenReview).
    let k2 = StandIn::start("reviewer-jwt").await;
    configure(&root, &k2, json!({"pem_keys": [k2.rsa_public_pem()]})).await;
    api_role(&root, json!({})).await;
    let forged = forger.projected(
        Alg::Rs256,
        "production",
        "api-service-sa",
        "u1",
        &[AUD],
        exp,
    );
    assert_eq!(
        kube.login("api-service", &forged).await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    assert_eq!(k2.reviews(), 0);
    let good = k2.projected(
        Alg::Rs256,
        "production",
        "api-service-sa",
        "u1",
        &[AUD],
        exp,
    );
    kube.login("api-service", &good).await.unwrap();
    assert_eq!(k2.reviews(), 1);
    let e = kube
        .configure(data(
            json!({"pem_keys": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
}

#[tokio::test]
async fn pod_files_are_reread_when_the_ca_and_token_rotate() {
    let mut k8s = StandIn::start("reviewer-v1").await;
    let (_sr, root) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    let tok = dir.path().join("token");
    std::fs::write(&ca, &k8s.ca_pem).unwrap();
    std::fs::write(&tok, "reviewer-v1\n").unwrap();
    root.auth()
        .kubernetes("kubernetes")
        .configure(data(json!({"kubernetes_host": k8s.url(),
            "local_ca_path": ca.to_str().unwrap(), "local_token_path": tok.to_str().unwrap()})))
        .await
        .unwrap();
    api_role(&root, json!({})).await;
    let kube = root.auth().kubernetes("kubernetes");
    let exp = now() + 600;
    let login = |k8s: &StandIn, uid: &str| {
        k8s.projected(Alg::Rs256, "production", "api-service-sa", uid, &[AUD], exp)
    };
    kube.login("api-service", &login(&k8s, "a")).await.unwrap();
    assert_eq!(
        k8s.shared.lock().unwrap().last_review_auth.as_deref(),
        Some("Bearer reviewer-v1"),
        "the pod's token is the reviewer"
    );

    // The projected reviewer token rotates: the file is re-read.
    k8s.shared.lock().unwrap().reviewer = "reviewer-v2".into();
    std::fs::write(&tok, "reviewer-v2\n").unwrap();
    kube.login("api-service", &login(&k8s, "b")).await.unwrap();

    // The API server's CA rotates: until the file changes TLS fails; then it works, with no
    // config write.
    let new_ca = k8s.restart_with_new_ca().await;
    let t = login(&k8s, "c");
    let e = kube.login("api-service", &t).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{}", e.message());
    std::fs::write(&ca, new_ca).unwrap();
    kube.login("api-service", &t).await.unwrap();

    // Without the pod CA file the login fails with a clear error.
    std::fs::remove_file(&ca).unwrap();
    let e = kube
        .login("api-service", &login(&k8s, "d"))
        .await
        .unwrap_err();
    assert!(e.message().contains("cannot be read"), "{}", e.message());
}

#[tokio::test]
async fn namespace_selector_uses_the_api_server() {
    let k8s = StandIn::start("reviewer-jwt").await;
    let (_sr, root) = setup().await;
    configure(&root, &k8s, json!({})).await;
    k8s.shared.lock().unwrap().namespaces.insert(
        "team-a".into(),
        [("team".to_string(), "a".to_string())].into(),
    );
    k8s.shared.lock().unwrap().namespaces.insert(
        "team-b".into(),
        [("team".to_string(), "b".to_string())].into(),
    );
    let kube = root.auth().kubernetes("kubernetes");
    kube.write_role(
        "sel",
        data(json!({"bound_service_account_names": "*",
            "bound_service_account_namespace_selector": "{\"matchLabels\":{\"team\":\"a\"}}"})),
    )
    .await
    .unwrap();
    let exp = now() + 600;
    kube.login(
        "sel",
        &k8s.projected(Alg::Rs256, "team-a", "sa", "u1", &[AUD], exp),
    )
    .await
    .unwrap();
    let e = kube
        .login(
            "sel",
            &k8s.projected(Alg::Rs256, "team-b", "sa", "u2", &[AUD], exp),
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), "namespace not authorized");
    let e = kube
        .write_role("bad", data(json!({"bound_service_account_names": "*"})))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "\"bound_service_account_namespaces\" can not be empty if \"bound_service_account_namespace_selector\" is not set"
    );
    let e = kube
        .write_role("bad", data(json!({"bound_service_account_names": ["*", "x"], "bound_service_account_namespaces": "a"})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "can not mix \"*\" with values");
}

#[tokio::test]
async fn login_reuse_keeps_one_token_per_pod() {
    let k8s = StandIn::start("reviewer-jwt").await;
    let (sr, root) = setup().await;
    configure(&root, &k8s, json!({})).await;
    api_role(&root, json!({"login_reuse": true})).await;
    let kube = root.auth().kubernetes("kubernetes");
    assert_eq!(
        kube.read_role("api-service").await.unwrap().unwrap()["login_reuse"],
        true
    );
    let exp = now() + 600;
    // A pod logging in again (a restarted agent, a retry loop) replaces its token.
    let pod_a = k8s.projected(
        Alg::Rs256,
        "production",
        "api-service-sa",
        "sa-1",
        &[AUD],
        exp,
    );
    let first = kube.login_auth("api-service", &pod_a).await.unwrap();
    let second = kube.login_auth("api-service", &pod_a).await.unwrap();
    assert_ne!(
        first.client_token.expose_secret(),
        second.client_token.expose_secret()
    );
    let gone = sr
        .client(first.client_token)
        .token()
        .lookup_self()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), ErrorCode::PermissionDenied);
    sr.client(second.client_token.clone())
        .token()
        .lookup_self()
        .await
        .unwrap();
    let leases = root
        .list("sys/leases/lookup/auth/kubernetes/login")
        .await
        .unwrap();
    assert_eq!(
        leases.len(),
        1,
        "one lease per pod, not per login: {leases:?}"
    );
    // Another service account (another pod) keeps its own.
    let pod_b = k8s.projected(
        Alg::Rs256,
        "production",
        "api-service-sa",
        "sa-2",
        &[AUD],
        exp,
    );
    let b = kube.login_auth("api-service", &pod_b).await.unwrap();
    sr.client(b.client_token)
        .token()
        .lookup_self()
        .await
        .unwrap();
    sr.client(second.client_token)
        .token()
        .lookup_self()
        .await
        .unwrap();
    assert_eq!(
        root.list("sys/leases/lookup/auth/kubernetes/login")
            .await
            .unwrap()
            .len(),
        2
    );
}
