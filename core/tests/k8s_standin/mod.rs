//! A stand-in for the Kubernetes API server, for the Kubernetes auth tests (there is no real
//! cluster here). It is faithful where the auth method looks:
//! - HTTPS on loopback with its own CA (rcgen), so the client's CA handling is exercised;
//! - `POST /apis/authentication.k8s.io/v1/tokenreviews` answering as the API server does
//!   (`authentication.k8s.io/v1` TokenReview JSON; 401 `Status` for a bad bearer; an
//!   unauthenticated review carries `status.error`), after really verifying the token's
//!   RS256/ES256 signature, expiry and audiences;
//! - OIDC discovery (`/.well-known/openid-configuration`) and `/openid/v1/jwks`;
//! - `GET /api/v1/namespaces/:ns` with labels;
//! - service-account JWTs signed with real RSA-2048 and P-256 keys, legacy (secret-based)
//!   and projected (bound, with pod claims) shapes.
#![allow(dead_code, reason = "each test uses a part")]

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaKeyPair,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// Which key signs a token.
#[derive(Clone, Copy, Debug)]
pub enum Alg {
    Rs256,
    Es256,
}

struct Keys {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
}

#[derive(Default)]
pub struct Shared {
    /// The bearer the TokenReview endpoint accepts.
    pub reviewer: String,
    /// Service-account uids whose tokens are no longer valid (deleted / recreated).
    pub invalidated: HashSet<String>,
    pub reviews: usize,
    pub jwks_fetches: usize,
    pub last_review: Option<Value>,
    pub last_review_auth: Option<String>,
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub issuer: String,
}

pub struct StandIn {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub shared: Arc<Mutex<Shared>>,
    keys: Arc<Keys>,
    handle: axum_server::Handle<SocketAddr>,
}

fn tls_material() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair as RcKey, SanType};
    let ca_key = RcKey::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "kubernetes-standin-ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = RcKey::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = p.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

fn b64json(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

impl Keys {
    fn sign(&self, alg: Alg, header_claims: &str) -> Vec<u8> {
        let rng = SystemRandom::new();
        match alg {
            Alg::Rs256 => {
                let mut sig = vec![0u8; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(
                        &signature::RSA_PKCS1_SHA256,
                        &rng,
                        header_claims.as_bytes(),
                        &mut sig,
                    )
                    .unwrap();
                sig
            }
            Alg::Es256 => self
                .ec
                .sign(&rng, header_claims.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        }
    }

    fn jwt(&self, alg: Alg, claims: &Value) -> String {
        let (name, kid) = match alg {
            Alg::Rs256 => ("RS256", "rsa-1"),
            Alg::Es256 => ("ES256", "ec-1"),
        };
        let h = b64json(&json!({"alg": name, "kid": kid}));
        let c = b64json(claims);
        let msg = format!("{h}.{c}");
        let sig = self.sign(alg, &msg);
        format!("{msg}.{}", B64.encode(sig))
    }

    /// Check a token as the API server's authenticator does: signature, then expiry.
    fn verify(&self, token: &str, now: i64) -> Option<Value> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        let header: Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
        let claims: Value = serde_json::from_slice(&B64.decode(c).ok()?).ok()?;
        let sig = B64.decode(s).ok()?;
        let msg = format!("{h}.{c}");
        let ok = match header["alg"].as_str()? {
            "RS256" => signature::UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                self.rsa.public_key().as_ref(),
            )
            .verify(msg.as_bytes(), &sig)
            .is_ok(),
            "ES256" => signature::UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_FIXED,
                self.ec.public_key().as_ref(),
            )
            .verify(msg.as_bytes(), &sig)
            .is_ok(),
            _ => false,
        };
        if !ok {
            return None;
        }
        if claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|e| e < now)
        {
            return None;
        }
        Some(claims)
    }
}

fn status_401() -> axum::response::Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        ),
    )
        .into_response()
}

type St = (Arc<Mutex<Shared>>, Arc<Keys>);

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn token_review(
    State((shared, keys)): State<St>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut s = shared.lock().unwrap();
    s.reviews += 1;
    s.last_review = Some(body.clone());
    s.last_review_auth = Some(auth.clone());
    if auth != format!("Bearer {}", s.reviewer) {
        return status_401();
    }
    let token = body["spec"]["token"].as_str().unwrap_or_default();
    let wanted: Vec<String> = body["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut spec = json!({"token": token});
    if !wanted.is_empty() {
        spec["audiences"] = json!(wanted);
    }
    let unauthenticated = |err: &str| {
        Json(
            json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null}, "spec": spec,
            "status": {"user": {}, "error": err}}),
        )
        .into_response()
    };
    let Some(claims) = keys.verify(token, now()) else {
        return unauthenticated(
            "[invalid bearer token, square/go-jose: error in cryptographic primitive, token lookup failed]",
        );
    };
    let aud: Vec<String> = match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![s.issuer.clone()],
    };
    let granted: Vec<String> = if wanted.is_empty() {
        aud.clone()
    } else {
        wanted.iter().filter(|w| aud.contains(w)).cloned().collect()
    };
    if granted.is_empty() {
        return unauthenticated(
            "[invalid bearer token, token audiences [\"x\"] is invalid for the target audiences]",
        );
    }
    let (ns, name, uid) = match claims.get("kubernetes.io") {
        Some(k) => (
            k["namespace"].as_str().unwrap_or_default().to_string(),
            k["serviceaccount"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            k["serviceaccount"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        None => (
            claims["kubernetes.io/serviceaccount/namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            claims["kubernetes.io/serviceaccount/service-account.name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            claims["kubernetes.io/serviceaccount/service-account.uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
    };
    if s.invalidated.contains(&uid) {
        return unauthenticated(
            "[invalid bearer token, service account token has been invalidated]",
        );
    }
    let mut user = json!({
        "username": format!("system:serviceaccount:{ns}:{name}"),
        "uid": uid,
        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
    });
    if let Some(pod) = claims.get("kubernetes.io").and_then(|k| k.get("pod")) {
        user["extra"] = json!({
            "authentication.kubernetes.io/pod-name": [pod["name"]],
            "authentication.kubernetes.io/pod-uid": [pod["uid"]],
        });
    }
    Json(
        json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null}, "spec": spec,
        "status": {"authenticated": true, "user": user, "audiences": granted}}),
    )
    .into_response()
}

async fn discovery(State((shared, _)): State<St>) -> Json<Value> {
    let iss = shared.lock().unwrap().issuer.clone();
    Json(
        json!({"issuer": iss, "jwks_uri": format!("{iss}/openid/v1/jwks"),
        "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"]}),
    )
}

async fn jwks(State((shared, keys)): State<St>) -> Json<Value> {
    shared.lock().unwrap().jwks_fetches += 1;
    let rsa = keys.rsa.public_key();
    let n = rsa.modulus().big_endian_without_leading_zero().to_vec();
    let e = rsa.exponent().big_endian_without_leading_zero().to_vec();
    let point = keys.ec.public_key().as_ref();
    Json(json!({"keys": [
        {"use": "sig", "kty": "RSA", "kid": "rsa-1", "alg": "RS256", "n": B64.encode(n), "e": B64.encode(e)},
        {"use": "sig", "kty": "EC", "kid": "ec-1", "alg": "ES256", "crv": "P-256",
         "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])},
    ]}))
}

async fn namespace(
    State((shared, _)): State<St>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> axum::response::Response {
    let s = shared.lock().unwrap();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {}", s.reviewer) {
        return status_401();
    }
    match s.namespaces.get(&ns) {
        Some(labels) => Json(json!({"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": ns, "labels": labels}}))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"kind": "Status", "code": 404})),
        )
            .into_response(),
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Mutex<Shared>>,
    keys: Arc<Keys>,
) -> (String, axum_server::Handle<SocketAddr>) {
    let (ca, cert, key) = tls_material();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        format!("{cert}{ca}").into_bytes(),
        key.into_bytes(),
    )
    .await
    .unwrap();
    let app = axum::Router::new()
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(token_review),
        )
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/openid/v1/jwks", get(jwks))
        .route("/api/v1/namespaces/{ns}", get(namespace))
        .with_state((shared, keys));
    let handle = axum_server::Handle::new();
    listener.set_nonblocking(true).unwrap();
    let server = axum_server::from_tcp_rustls(listener, config)
        .unwrap()
        .handle(handle.clone());
    tokio::spawn(async move {
        let _ = server.serve(app.into_make_service()).await;
    });
    handle.listening().await;
    (ca, handle)
}

impl StandIn {
    /// Start on a free loopback port with a fresh CA and fresh signing keys; `reviewer` is the
    /// bearer its TokenReview endpoint accepts.
    pub async fn start(reviewer: &str) -> StandIn {
        let rng = SystemRandom::new();
        let keys = Arc::new(Keys {
            rsa: RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap(),
            ec: {
                let pkcs8 =
                    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap()
            },
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            reviewer: reviewer.to_string(),
            issuer: format!("https://127.0.0.1:{}", addr.port()),
            ..Shared::default()
        }));
        let (ca_pem, handle) = serve(listener, shared.clone(), keys.clone()).await;
        StandIn {
            addr,
            ca_pem,
            shared,
            keys,
            handle,
        }
    }

    /// `https://127.0.0.1:<port>`, also the issuer.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// Take the API server down (connections refused).
    pub async fn stop(&self) {
        self.handle.shutdown();
        for _ in 0..200 {
            if std::net::TcpStream::connect(self.addr).is_err() {
                return;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Restart on the same port with a NEW serving CA (CA rotation); returns the new CA PEM.
    pub async fn restart_with_new_ca(&mut self) -> String {
        self.stop().await;
        let listener = std::net::TcpListener::bind(self.addr).unwrap();
        let (ca, handle) = serve(listener, self.shared.clone(), self.keys.clone()).await;
        self.ca_pem = ca.clone();
        self.handle = handle;
        ca
    }

    /// A projected (bound) service-account token.
    pub fn projected(
        &self,
        alg: Alg,
        ns: &str,
        sa: &str,
        sa_uid: &str,
        aud: &[&str],
        exp: i64,
    ) -> String {
        let iat = exp - 3600;
        let claims = json!({
            "aud": aud, "exp": exp, "iat": iat, "nbf": iat, "iss": self.url(),
            "sub": format!("system:serviceaccount:{ns}:{sa}"),
            "kubernetes.io": {
                "namespace": ns,
                "pod": {"name": format!("{sa}-pod"), "uid": format!("pod-{sa_uid}")},
                "serviceaccount": {"name": sa, "uid": sa_uid},
            },
        });
        self.keys.jwt(alg, &claims)
    }

    /// A legacy secret-based token (no exp, no aud), as Kubernetes < 1.24 minted.
    pub fn legacy(&self, ns: &str, sa: &str, sa_uid: &str, secret: &str) -> String {
        let claims = json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": ns,
            "kubernetes.io/serviceaccount/secret.name": secret,
            "kubernetes.io/serviceaccount/service-account.name": sa,
            "kubernetes.io/serviceaccount/service-account.uid": sa_uid,
            "sub": format!("system:serviceaccount:{ns}:{sa}"),
        });
        self.keys.jwt(Alg::Rs256, &claims)
    }

    /// The RSA signing key's public half as a `PUBLIC KEY` PEM (for `pem_keys`).
    pub fn rsa_public_pem(&self) -> String {
        use aws_lc_rs::encoding::AsDer;
        let der = self.keys.rsa.public_key().as_der().unwrap();
        let b = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    pub fn reviews(&self) -> usize {
        self.shared.lock().unwrap().reviews
    }
}
