//! Kubernetes auth: workloads log in with their service-account JWT.
//!
//! OpenBao's API (`config`, `role/:name`, `login`) with two verifiers per role
//! (`verification`): `tokenreview` (OpenBao's: the API server's TokenReview, with the exact
//! request body OpenBao sends), `jwks` (offline: the JWT's signature checked against
//! `pem_keys` or the keys found by OIDC discovery on `issuer`, with strict `iss`, `aud`, `exp`
//! and `nbf`), or `both`. TokenReview calls are capped in concurrency. Positive reviews are
//! not reused unless the mount opts in (`token_review_cache_ttl`, at most 5 minutes): reuse
//! rides out a burst of logins or a short API-server outage, at the price of accepting, for
//! that long, a service-account token the cluster has just invalidated (a deleted pod's).
//! Off, as in OpenBao, every login asks the cluster. The reviewer JWT and CA are read from the pod's files on every call when not
//! configured, so a rotated token or CA is picked up without a config write.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::{
    AuthMethod, Grant, LoginContext, RenewTerms, TokenFields, cidr, get_json, list_response,
    to_json_bytes,
};
use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::secrets::{Engine, EngineContext};
use crate::storage::{Backend, Page};
use crate::token::TokenEntry;
use crate::token::roles::{glob_match, string_list};
use crate::util::names::NameRule;
use crate::util::params;

pub(crate) mod jwt;
use jwt::{Jwt, Key};

const LOCAL_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const LOCAL_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// How long a positive TokenReview answer is reused (never past the JWT's `exp`).
/// The longest a mount may reuse a positive TokenReview (`token_review_cache_ttl`).
const MAX_REVIEW_CACHE: Duration = Duration::from_secs(5 * 60);
/// TokenReview calls in flight at once per mount.
const REVIEW_CONCURRENCY: usize = 8;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY: i64 = 60;
/// An unknown `kid` refetches the JWKS at most this often.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(10);

#[derive(Clone, Serialize, Deserialize)]
struct Config {
    kubernetes_host: String,
    #[serde(default)]
    kubernetes_ca_cert: String,
    #[serde(default)]
    token_reviewer_jwt: String,
    #[serde(default)]
    pem_keys: Vec<String>,
    #[serde(default)]
    issuer: String,
    #[serde(default = "yes")]
    disable_iss_validation: bool,
    #[serde(default)]
    disable_local_ca_jwt: bool,
    /// Strongroom: where the pod's token and CA are read from (the standard paths by default).
    #[serde(default = "local_token")]
    local_token_path: String,
    #[serde(default = "local_ca")]
    local_ca_path: String,
    /// Strongroom: seconds a positive TokenReview is reused (0, the default: never).
    #[serde(default)]
    token_review_cache_secs: u64,
}

impl Default for Config {
    /// OpenBao's defaults for every field a config write does not give.
    fn default() -> Config {
        Config {
            kubernetes_host: String::new(),
            kubernetes_ca_cert: String::new(),
            token_reviewer_jwt: String::new(),
            pem_keys: Vec::new(),
            issuer: String::new(),
            disable_iss_validation: true,
            disable_local_ca_jwt: false,
            local_token_path: local_token(),
            local_ca_path: local_ca(),
            token_review_cache_secs: 0,
        }
    }
}

fn yes() -> bool {
    true
}
fn local_token() -> String {
    LOCAL_TOKEN.into()
}
fn local_ca() -> String {
    LOCAL_CA.into()
}

#[derive(Clone, Serialize, Deserialize)]
struct Role {
    bound_service_account_names: Vec<String>,
    #[serde(default)]
    bound_service_account_namespaces: Vec<String>,
    #[serde(default)]
    bound_service_account_namespace_selector: String,
    #[serde(default)]
    audience: String,
    #[serde(default = "uid_source")]
    alias_name_source: String,
    /// `tokenreview` (OpenBao's behaviour), `jwks` or `both`.
    #[serde(default = "tokenreview")]
    verification: String,
    /// Strongroom: a new login of the same pod (role, service-account uid, pod uid) replaces
    /// the token its previous login got, so logins do not pile up tokens and leases.
    #[serde(default)]
    login_reuse: bool,
    #[serde(flatten)]
    token: TokenFields,
}

fn uid_source() -> String {
    "serviceaccount_uid".into()
}
fn tokenreview() -> String {
    "tokenreview".into()
}

/// What a positive TokenReview said.
#[derive(Clone)]
struct Reviewed {
    username: String,
    uid: String,
}

/// Per-mount live state: HTTP clients per CA, the TokenReview cap and cache, the JWKS cache.
#[derive(Default)]
pub(crate) struct Kubernetes {
    state: State,
}

struct State {
    /// `(sha256 of the CA PEM, client)`: a rotated CA builds a new client.
    client: Mutex<Option<([u8; 32], reqwest::Client)>>,
    reviews: Semaphore,
    cache: Mutex<HashMap<[u8; 32], (OffsetDateTime, Reviewed)>>,
    /// `(issuer, fetched at, keys)`.
    jwks: Mutex<Option<(String, OffsetDateTime, Vec<Key>)>>,
}

impl Default for State {
    fn default() -> State {
        State {
            client: Mutex::new(None),
            reviews: Semaphore::new(REVIEW_CONCURRENCY),
            cache: Mutex::new(HashMap::new()),
            jwks: Mutex::new(None),
        }
    }
}

fn denied(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::PermissionDenied, msg)
}

fn role_key(name: &str) -> String {
    format!("role/{name}")
}

fn config_json(c: &Config) -> Data {
    let mut d = crate::data(json!({
        "disable_iss_validation": c.disable_iss_validation,
        "disable_local_ca_jwt": c.disable_local_ca_jwt,
        "issuer": c.issuer,
        "kubernetes_ca_cert": c.kubernetes_ca_cert,
        "kubernetes_host": c.kubernetes_host,
        "pem_keys": c.pem_keys,
        "token_reviewer_jwt_set": !c.token_reviewer_jwt.is_empty(),
    }));
    if c.token_review_cache_secs > 0 {
        d.insert(
            "token_review_cache_ttl".into(),
            json!(c.token_review_cache_secs),
        );
    }
    d
}

fn role_json(r: &Role) -> Data {
    let mut d = crate::data(json!({
        "alias_name_source": r.alias_name_source,
        "bound_service_account_names": r.bound_service_account_names,
        "bound_service_account_namespace_selector": r.bound_service_account_namespace_selector,
        "bound_service_account_namespaces": r.bound_service_account_namespaces,
    }));
    if !r.audience.is_empty() {
        d.insert("audience".into(), json!(r.audience));
    }
    if r.verification != "tokenreview" {
        d.insert("verification".into(), json!(r.verification));
    }
    if r.login_reuse {
        d.insert("login_reuse".into(), json!(true));
    }
    r.token.add_to(&mut d);
    d
}

fn apply_config(c: &mut Config, d: &Data) -> Result<()> {
    let s = |f: &str| params::string(d, f);
    if let Some(v) = s("kubernetes_host")? {
        c.kubernetes_host = v;
    }
    if let Some(v) = s("kubernetes_ca_cert")? {
        c.kubernetes_ca_cert = v;
    }
    if let Some(v) = s("token_reviewer_jwt")? {
        c.token_reviewer_jwt = v;
    }
    if let Some(v) = string_list(d, "pem_keys")? {
        jwt::parse_pem_keys(&v)?;
        c.pem_keys = v;
    }
    if let Some(v) = s("issuer")? {
        c.issuer = v;
    }
    if let Some(v) = params::bool(d, "disable_iss_validation")? {
        c.disable_iss_validation = v;
    }
    if let Some(v) = params::bool(d, "disable_local_ca_jwt")? {
        c.disable_local_ca_jwt = v;
    }
    if let Some(v) = s("local_token_path")? {
        c.local_token_path = v;
    }
    if let Some(v) = s("local_ca_path")? {
        c.local_ca_path = v;
    }
    if let Some(v) = params::duration(d, "token_review_cache_ttl")? {
        if v > MAX_REVIEW_CACHE {
            return Err(Error::invalid_input(
                "token_review_cache_ttl must be at most 5m: a longer reuse keeps accepting tokens the cluster has invalidated",
            ));
        }
        c.token_review_cache_secs = v.as_secs();
    }
    if c.kubernetes_host.trim().is_empty() {
        return Err(Error::invalid_input("no host provided"));
    }
    if c.disable_local_ca_jwt && c.kubernetes_ca_cert.is_empty() {
        return Err(Error::invalid_input(
            "kubernetes_ca_cert must be given when disable_local_ca_jwt is true",
        ));
    }
    // As OpenBao: without a CA, the pod's CA file must be readable when the config is written.
    if c.kubernetes_ca_cert.is_empty()
        && !c.disable_local_ca_jwt
        && !c.kubernetes_host.starts_with("http://")
        && std::fs::metadata(&c.local_ca_path).is_err()
    {
        return Err(Error::invalid_input(format!(
            "open {}: no such file or directory",
            c.local_ca_path
        )));
    }
    if !c.kubernetes_ca_cert.is_empty()
        && reqwest::Certificate::from_pem_bundle(c.kubernetes_ca_cert.as_bytes())
            .map_or(true, |v| v.is_empty())
    {
        return Err(Error::invalid_input(
            "kubernetes_ca_cert is not a valid PEM certificate",
        ));
    }
    Ok(())
}

fn apply_role(r: &mut Role, d: &Data) -> Result<()> {
    if let Some(v) = string_list(d, "bound_service_account_names")? {
        r.bound_service_account_names = v;
    }
    if let Some(v) = string_list(d, "bound_service_account_namespaces")? {
        r.bound_service_account_namespaces = v;
    }
    if let Some(v) = params::string(d, "bound_service_account_namespace_selector")? {
        if !v.trim().is_empty() {
            parse_selector(&v)?;
        }
        r.bound_service_account_namespace_selector = v;
    }
    if let Some(v) = params::string(d, "audience")? {
        r.audience = v;
    }
    if let Some(v) = params::string(d, "alias_name_source")? {
        if v != "serviceaccount_uid" && v != "serviceaccount_name" {
            return Err(Error::invalid_input(format!(
                "invalid alias_name_source: {v:?}"
            )));
        }
        r.alias_name_source = v;
    }
    if let Some(v) = params::string(d, "verification")? {
        if !matches!(v.as_str(), "tokenreview" | "jwks" | "both") {
            return Err(Error::invalid_input(format!(
                "invalid verification {v:?}: must be tokenreview, jwks or both"
            )));
        }
        r.verification = v;
    }
    if let Some(b) = params::bool(d, "login_reuse")? {
        r.login_reuse = b;
    }
    r.token.apply(d)?;
    if r.bound_service_account_names.is_empty() {
        return Err(Error::invalid_input(
            "\"bound_service_account_names\" can not be empty",
        ));
    }
    for list in [
        &r.bound_service_account_names,
        &r.bound_service_account_namespaces,
    ] {
        if list.len() > 1 && list.iter().any(|v| v == "*") {
            return Err(Error::invalid_input("can not mix \"*\" with values"));
        }
    }
    if r.bound_service_account_namespaces.is_empty()
        && r.bound_service_account_namespace_selector.trim().is_empty()
    {
        return Err(Error::invalid_input(
            "\"bound_service_account_namespaces\" can not be empty if \"bound_service_account_namespace_selector\" is not set",
        ));
    }
    if r.verification != "tokenreview" && r.audience.is_empty() {
        return Err(Error::invalid_input(
            "audience is required when verification includes jwks",
        ));
    }
    Ok(())
}

/// A namespace selector: `matchLabels` only (as OpenBao; `matchExpressions` is refused).
fn parse_selector(s: &str) -> Result<BTreeMap<String, String>> {
    let v: Value = serde_json::from_str(s).map_err(|_| {
        Error::invalid_input("invalid bound_service_account_namespace_selector: not JSON")
    })?;
    if v.get("matchExpressions").is_some_and(|m| !m.is_null()) {
        return Err(Error::invalid_input(
            "invalid bound_service_account_namespace_selector: matchExpressions are not supported",
        ));
    }
    let mut out = BTreeMap::new();
    if let Some(Value::Object(m)) = v.get("matchLabels") {
        for (k, v) in m {
            out.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    Ok(out)
}

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
        ctx.update(&[0]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn unavailable(what: &str, e: reqwest::Error) -> Error {
    let detail = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    Error::new(ErrorCode::Unavailable, format!("{what}: {detail}")).with_source(e)
}

impl Kubernetes {
    /// The CA to trust: the configured PEM, else the pod's file (re-read on every call, so a
    /// rotated CA is picked up). `None` for plain-HTTP hosts.
    fn ca_pem(&self, c: &Config) -> Result<Option<String>> {
        if !c.kubernetes_ca_cert.is_empty() {
            return Ok(Some(c.kubernetes_ca_cert.clone()));
        }
        if c.kubernetes_host.starts_with("http://") {
            return Ok(None);
        }
        std::fs::read_to_string(&c.local_ca_path)
            .map(Some)
            .map_err(|_| {
                Error::internal(format!(
                    "no kubernetes_ca_cert configured and the pod CA `{}` cannot be read",
                    c.local_ca_path
                ))
            })
    }

    /// The bearer for API calls: the configured reviewer JWT, else the pod's token file (read
    /// per call: projected tokens rotate), else `None` (the login JWT reviews itself).
    fn reviewer(c: &Config) -> Option<String> {
        if !c.token_reviewer_jwt.is_empty() {
            return Some(c.token_reviewer_jwt.clone());
        }
        if c.disable_local_ca_jwt {
            return None;
        }
        std::fs::read_to_string(&c.local_token_path)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    fn client(&self, c: &Config) -> Result<reqwest::Client> {
        let pem = self.ca_pem(c)?;
        let fingerprint = sha(&[pem.as_deref().unwrap_or("").as_bytes()]);
        let mut slot = self.state.client.lock().or_else(crate::util::unpoison)?;
        if let Some((fp, client)) = slot.as_ref() {
            if *fp == fingerprint {
                return Ok(client.clone());
            }
        }
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .min_tls_version(reqwest::tls::Version::TLS_1_2);
        if let Some(pem) = &pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                Error::invalid_input("kubernetes CA is not valid PEM").with_source(e)
            })?;
            b = b.tls_certs_only(certs);
        }
        let client = b.build().map_err(|e| {
            Error::internal("cannot build the kubernetes HTTP client").with_source(e)
        })?;
        *slot = Some((fingerprint, client.clone()));
        Ok(client)
    }

    fn host(c: &Config) -> String {
        let h = c.kubernetes_host.trim().trim_end_matches('/');
        if h.starts_with("http://") || h.starts_with("https://") {
            h.to_string()
        } else {
            format!("https://{h}")
        }
    }

    /// OpenBao's TokenReview call, with the concurrency cap and the short positive cache.
    async fn token_review(
        &self,
        ctx: &EngineContext,
        c: &Config,
        jwt_str: &str,
        audiences: &[String],
        exp: Option<i64>,
    ) -> Result<Reviewed> {
        let now = ctx.clock.now();
        let key = sha(&[jwt_str.as_bytes(), audiences.join("\n").as_bytes()]);
        let reuse = Duration::from_secs(c.token_review_cache_secs);
        // Not reusing (the default): nothing cached is looked at, or kept below.
        if !reuse.is_zero() {
            if let Some((until, r)) = self
                .state
                .cache
                .lock()
                .or_else(crate::util::unpoison)?
                .get(&key)
            {
                if *until > now {
                    return Ok(r.clone());
                }
            }
        }
        let _permit = self
            .state
            .reviews
            .acquire()
            .await
            .map_err(|_| Error::internal("tokenreview limiter closed"))?;
        let client = self.client(c)?;
        let bearer = Kubernetes::reviewer(c).unwrap_or_else(|| jwt_str.to_string());
        let mut spec = serde_json::Map::new();
        spec.insert("token".into(), json!(jwt_str));
        if !audiences.is_empty() {
            spec.insert("audiences".into(), json!(audiences));
        }
        let body = json!({"metadata": {}, "spec": spec, "status": {"user": {}}});
        let url = format!(
            "{}/apis/authentication.k8s.io/v1/tokenreviews",
            Kubernetes::host(c)
        );
        let resp = client
            .post(&url)
            .bearer_auth(bearer)
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| unavailable("kubernetes TokenReview request failed", e))?;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        let reject = |why: &str| {
            tracing::debug!(
                reason = why,
                "kubernetes login: TokenReview rejected the JWT"
            );
            Error::permission_denied()
        };
        if !(200..=206).contains(&status) {
            return Err(reject(if status == 401 {
                "lookup failed: service account unauthorized; this could mean it has been deleted or recreated with a new token"
            } else {
                "lookup failed: unexpected status"
            }));
        }
        if v.get("kind").and_then(Value::as_str) == Some("Status") {
            return Err(reject("lookup failed: status failure"));
        }
        let st = v.get("status").cloned().unwrap_or(Value::Null);
        if st
            .get("error")
            .and_then(Value::as_str)
            .is_some_and(|e| !e.is_empty())
        {
            return Err(reject("lookup failed: status error"));
        }
        if st.get("authenticated").and_then(Value::as_bool) != Some(true) {
            return Err(reject("lookup failed: service account jwt not valid"));
        }
        if !audiences.is_empty() {
            let got: Vec<&str> = st
                .get("audiences")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !audiences.iter().any(|a| got.contains(&a.as_str())) {
                return Err(reject("lookup failed: audience mismatch"));
            }
        }
        let user = st.get("user").cloned().unwrap_or(Value::Null);
        let r = Reviewed {
            username: user
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            uid: user
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        };
        if reuse.is_zero() {
            return Ok(r);
        }
        let mut until = now + reuse;
        if let Some(exp) = exp.and_then(|e| OffsetDateTime::from_unix_timestamp(e).ok()) {
            until = until.min(exp);
        }
        let mut cache = self.state.cache.lock().or_else(crate::util::unpoison)?;
        if cache.len() > 10_000 {
            cache.retain(|_, (u, _)| *u > now);
        }
        cache.insert(key, (until, r.clone()));
        Ok(r)
    }

    /// Keys for offline verification: `pem_keys`, else the issuer's JWKS (OIDC discovery),
    /// cached and refetched when a token names an unknown `kid`.
    async fn keys(&self, ctx: &EngineContext, c: &Config, kid: Option<&str>) -> Result<Vec<Key>> {
        if !c.pem_keys.is_empty() {
            return jwt::parse_pem_keys(&c.pem_keys);
        }
        if c.issuer.is_empty() {
            return Err(Error::invalid_input(
                "offline verification needs pem_keys or an issuer in the config",
            ));
        }
        let now = ctx.clock.now();
        let cached = self
            .state
            .jwks
            .lock()
            .or_else(crate::util::unpoison)?
            .clone();
        if let Some((iss, at, keys)) = &cached {
            let known = kid.is_none_or(|k| keys.iter().any(|key| key.kid.as_deref() == Some(k)));
            if *iss == c.issuer && (known || now - *at < JWKS_REFRESH_MIN) {
                return Ok(keys.clone());
            }
        }
        let client = self.client(c)?;
        let get = |url: String| {
            let mut req = client.get(url).header("Accept", "application/json");
            if let Some(b) = Kubernetes::reviewer(c) {
                req = req.bearer_auth(b);
            }
            req.send()
        };
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            c.issuer.trim_end_matches('/')
        );
        let doc: Value = get(discovery)
            .await
            .map_err(|e| unavailable("OIDC discovery request failed", e))?
            .json()
            .await
            .map_err(|e| {
                Error::new(ErrorCode::Upstream, "OIDC discovery answer is not JSON").with_source(e)
            })?;
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::new(ErrorCode::Upstream, "OIDC discovery answer has no jwks_uri")
            })?
            .to_string();
        let jwks: Value = get(jwks_uri)
            .await
            .map_err(|e| unavailable("JWKS request failed", e))?
            .json()
            .await
            .map_err(|e| {
                Error::new(ErrorCode::Upstream, "JWKS answer is not JSON").with_source(e)
            })?;
        let keys = jwt::parse_jwks(&jwks)?;
        *self.state.jwks.lock().or_else(crate::util::unpoison)? =
            Some((c.issuer.clone(), now, keys.clone()));
        Ok(keys)
    }

    async fn namespace_labels(&self, c: &Config, ns: &str) -> Result<BTreeMap<String, String>> {
        let bearer = Kubernetes::reviewer(c).ok_or_else(|| {
            denied("namespace lookup failed: TokenReviewer JWT needs to be configured to use namespace selectors")
        })?;
        let client = self.client(c)?;
        let url = format!("{}/api/v1/namespaces/{ns}", Kubernetes::host(c));
        let resp = client
            .get(url)
            .bearer_auth(bearer)
            .send()
            .await
            .map_err(|e| unavailable("namespace lookup failed", e))?;
        if !resp.status().is_success() {
            return Err(denied("namespace not authorized"));
        }
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        Ok(v.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// The service account named by the JWT's claims (projected claims win over legacy ones).
struct ServiceAccount {
    name: String,
    namespace: String,
    uid: String,
    secret_name: String,
    pod_uid: String,
}

fn service_account(t: &Jwt) -> ServiceAccount {
    let projected = t.str_claim(&["kubernetes.io", "namespace"]);
    match projected {
        Some(namespace) => ServiceAccount {
            namespace,
            name: t
                .str_claim(&["kubernetes.io", "serviceaccount", "name"])
                .unwrap_or_default(),
            uid: t
                .str_claim(&["kubernetes.io", "serviceaccount", "uid"])
                .unwrap_or_default(),
            secret_name: String::new(),
            pod_uid: t
                .str_claim(&["kubernetes.io", "pod", "uid"])
                .unwrap_or_default(),
        },
        None => ServiceAccount {
            namespace: t
                .str_claim(&["kubernetes.io/serviceaccount/namespace"])
                .unwrap_or_default(),
            name: t
                .str_claim(&["kubernetes.io/serviceaccount/service-account.name"])
                .unwrap_or_default(),
            uid: t
                .str_claim(&["kubernetes.io/serviceaccount/service-account.uid"])
                .unwrap_or_default(),
            secret_name: t
                .str_claim(&["kubernetes.io/serviceaccount/secret.name"])
                .unwrap_or_default(),
            pod_uid: String::new(),
        },
    }
}

fn bound(list: &[String], v: &str) -> bool {
    list.iter().any(|p| p == "*" || glob_match(p, v))
}

/// `exp`, `nbf`, `iat` (checked when present; `strict` requires `exp`).
fn check_times(t: &Jwt, now: i64, strict: bool) -> Result<()> {
    match t.time_claim("exp") {
        Some(exp) if now > exp + LEEWAY => {
            return Err(denied(
                "go-jose/go-jose/jwt: validation failed, token is expired (exp)",
            ));
        }
        None if strict => return Err(denied("offline verification needs an exp claim")),
        _ => {}
    }
    if t.time_claim("nbf").is_some_and(|nbf| now + LEEWAY < nbf) {
        return Err(denied(
            "go-jose/go-jose/jwt: validation failed, token not valid yet (nbf)",
        ));
    }
    if t.time_claim("iat").is_some_and(|iat| now + LEEWAY < iat) {
        return Err(denied(
            "go-jose/go-jose/jwt: validation field, token issued in the future (iat)",
        ));
    }
    Ok(())
}

#[async_trait]
impl Engine for Kubernetes {
    fn name_rules(&self) -> &'static [NameRule] {
        // Role names are `GenericNameRegex` names, stored lowercased (as OpenBao's).
        const RULES: &[NameRule] = &[NameRule::lower("role/")];
        RULES
    }

    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let op = req.operation;
        let write = matches!(op, Operation::Create | Operation::Update);
        match req.path.as_str() {
            "config" if op == Operation::Read => Ok(get_json::<Config>(&ctx.storage, "config")
                .await?
                .map(|c| Response::with_data(config_json(&c)))),
            "config" if write => {
                // A write replaces the whole configuration, as OpenBao's does: a field not
                // given goes back to its default.
                let mut c = Config::default();
                apply_config(&mut c, &req.data)?;
                ctx.storage.put("config", &to_json_bytes(&c)?).await?;
                *self.state.jwks.lock().or_else(crate::util::unpoison)? = None;
                self.state
                    .cache
                    .lock()
                    .or_else(crate::util::unpoison)?
                    .clear();
                Ok(None)
            }
            "config" => Err(Error::unsupported_operation()),
            "role" | "role/" if op == Operation::List => {
                list_response(ctx.storage.list("role/", &Page::all()).await?)
            }
            p => {
                let Some(name) = p
                    .strip_prefix("role/")
                    .filter(|n| !n.is_empty() && !n.contains('/'))
                else {
                    return Err(Error::unsupported_path(&req.path));
                };
                let name = name.to_lowercase();
                match op {
                    Operation::Read => Ok(get_json::<Role>(&ctx.storage, &role_key(&name))
                        .await?
                        .map(|r| Response::with_data(role_json(&r)))),
                    Operation::Delete => {
                        ctx.storage.delete(&role_key(&name)).await?;
                        Ok(None)
                    }
                    _ if write => {
                        let mut r = get_json::<Role>(&ctx.storage, &role_key(&name))
                            .await?
                            .unwrap_or(Role {
                                bound_service_account_names: Vec::new(),
                                bound_service_account_namespaces: Vec::new(),
                                bound_service_account_namespace_selector: String::new(),
                                audience: String::new(),
                                alias_name_source: uid_source(),
                                verification: tokenreview(),
                                login_reuse: false,
                                token: TokenFields::new(),
                            });
                        apply_role(&mut r, &req.data)?;
                        if r.token.token_period > crate::router::SYSTEM_MAX_TTL.as_secs() {
                            return Err(Error::invalid_input(
                                "'token_period' cannot be greater than the backend's max TTL",
                            ));
                        }
                        ctx.storage
                            .put(&role_key(&name), &to_json_bytes(&r)?)
                            .await?;
                        Ok(None)
                    }
                    _ => Err(Error::unsupported_operation()),
                }
            }
        }
    }

    async fn exists(&self, ctx: &EngineContext, req: &Request) -> Result<Option<bool>> {
        match req.path.strip_prefix("role/") {
            Some(n) if !n.is_empty() && !n.contains('/') => Ok(Some(
                ctx.storage
                    .get(&role_key(&n.to_lowercase()))
                    .await?
                    .is_some(),
            )),
            _ if req.path == "config" => Ok(Some(ctx.storage.get("config").await?.is_some())),
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl AuthMethod for Kubernetes {
    fn is_login(&self, rel: &str, op: Operation) -> bool {
        matches!(op, Operation::Update | Operation::Create) && rel == "login"
    }

    async fn login(&self, lc: &LoginContext<'_>, req: &Request) -> Result<Grant> {
        let ctx = lc.ctx;
        let role_name = params::string(&req.data, "role")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::invalid_input("missing role"))?;
        let jwt_str = zeroize::Zeroizing::new(
            params::string(&req.data, "jwt")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::invalid_input("missing jwt"))?,
        );
        let role: Role = get_json(&ctx.storage, &role_key(&role_name.to_lowercase()))
            .await?
            .ok_or_else(|| Error::invalid_input(format!("invalid role name {role_name:?}")))?;
        if !cidr::allows(&role.token.token_bound_cidrs, lc.remote_addr) {
            return Err(Error::permission_denied());
        }
        let config: Config = get_json(&ctx.storage, "config").await?.ok_or_else(|| {
            Error::new(ErrorCode::Internal, "could not load backend configuration")
        })?;
        let token = Jwt::parse(&jwt_str)?;
        let offline = role.verification != "tokenreview";
        let online = role.verification != "jwks";
        let now = ctx.clock.now().unix_timestamp();

        // Local checks: the signature (offline mode, or whenever pem_keys are configured, as
        // OpenBao), times, audience, issuer.
        if offline || !config.pem_keys.is_empty() {
            let keys = self.keys(ctx, &config, token.kid.as_deref()).await?;
            if !token.verify(&keys) {
                return Err(Error::permission_denied());
            }
        }
        check_times(&token, now, offline)?;
        let aud = token.audiences();
        if !role.audience.is_empty() && !aud.contains(&role.audience) {
            return Err(denied(
                "invalid audience (aud) claim: audience claim does not match any expected audience",
            ));
        }
        let check_iss = offline || (!config.disable_iss_validation && !config.issuer.is_empty());
        if check_iss && token.str_claim(&["iss"]).as_deref() != Some(config.issuer.as_str()) {
            return Err(denied("invalid issuer (iss) claim"));
        }

        let sa = service_account(&token);
        // `bound` treats `*` as any name.
        if !bound(&role.bound_service_account_names, &sa.name) {
            return Err(denied("service account name not authorized"));
        }
        if !bound(&role.bound_service_account_namespaces, &sa.namespace) {
            let selector = role.bound_service_account_namespace_selector.trim();
            if selector.is_empty() {
                return Err(denied("namespace not authorized"));
            }
            let want = parse_selector(selector)?;
            let labels = self.namespace_labels(&config, &sa.namespace).await?;
            if !want.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                return Err(denied("namespace not authorized"));
            }
        }
        if sa.uid.is_empty() && role.alias_name_source == "serviceaccount_uid" {
            return Err(denied("could not parse UID from claims"));
        }

        if online {
            let audiences = if role.audience.is_empty() {
                aud.clone()
            } else {
                vec![role.audience.clone()]
            };
            let r = self
                .token_review(ctx, &config, &jwt_str, &audiences, token.time_claim("exp"))
                .await?;
            let parts: Vec<&str> = r.username.split(':').collect();
            let reject = |why: &str| {
                tracing::debug!(
                    reason = why,
                    "kubernetes login: TokenReview answer does not match the JWT"
                );
                Error::permission_denied()
            };
            if parts.len() != 4 {
                return Err(reject("lookup failed: unexpected username format"));
            }
            if parts.first() != Some(&"system") || parts.get(1) != Some(&"serviceaccount") {
                return Err(reject(
                    "lookup failed: username returned is not a service account",
                ));
            }
            if parts.get(2) != Some(&sa.namespace.as_str()) {
                return Err(reject("JWT namepaces did not match"));
            }
            if parts.get(3) != Some(&sa.name.as_str()) {
                return Err(reject("JWT names did not match"));
            }
            if r.uid != sa.uid {
                return Err(reject("JWT UIDs did not match"));
            }
        }

        let metadata: BTreeMap<String, String> = [
            ("role".to_string(), role_name.to_lowercase()),
            ("service_account_name".into(), sa.name.clone()),
            ("service_account_namespace".into(), sa.namespace.clone()),
            ("service_account_secret_name".into(), sa.secret_name.clone()),
            ("service_account_uid".into(), sa.uid.clone()),
        ]
        .into();
        let reuse_key = role.login_reuse.then(|| {
            hex::encode(sha(&[
                role_name.to_lowercase().as_bytes(),
                sa.uid.as_bytes(),
                sa.pod_uid.as_bytes(),
            ]))
        });
        // The alias names the service account by uid, or as `namespace/name`
        // (`alias_name_source`); its metadata is the login's, without the role.
        let alias = super::GrantAlias {
            name: if role.alias_name_source == "serviceaccount_name" {
                format!("{}/{}", sa.namespace, sa.name)
            } else {
                sa.uid.clone()
            },
            metadata: metadata
                .iter()
                .filter(|(k, _)| k.as_str() != "role")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        Ok(Grant {
            reuse_key,
            alias: Some(alias),
            policies: role.token.token_policies.clone(),
            token: role.token,
            metadata,
            display_name: format!("{}-{}", sa.namespace, sa.name),
            ..Grant::default()
        })
    }

    async fn renew(&self, ctx: &EngineContext, token: &TokenEntry) -> Result<RenewTerms> {
        let name = token.meta.get("role").cloned().unwrap_or_default();
        let role: Role = get_json(&ctx.storage, &role_key(&name))
            .await?
            .ok_or_else(|| {
                Error::invalid_input(format!("role {name} does not exist during renewal"))
            })?;
        Ok(RenewTerms::of(&role.token))
    }
}
