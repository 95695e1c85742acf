//! The agent's side of the Vault HTTP API: reads, writes, lists, lease renewal and logins,
//! with the token kept in memory (and in the configured sinks), never in a log line.

use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use strongroom::template::{Dependency, Fetched, SecretSource, VaultSecret};
use strongroom::{Error, ErrorCode, Result};

use super::config::{AuthMethod, VaultStanza};

/// A Vault-compatible server reached over HTTP(S).
pub struct VaultHttp {
    base: String,
    http: reqwest::Client,
    token: RwLock<Option<SecretString>>,
}

impl std::fmt::Debug for VaultHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultHttp")
            .field("base", &self.base)
            .finish()
    }
}

/// A login's result: the token and how long it lives.
pub struct Login {
    /// The client token.
    pub token: SecretString,
    /// `lease_duration` in seconds (0: no expiry).
    pub ttl: u64,
    /// Whether it can be renewed.
    pub renewable: bool,
}

fn code_for(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 => ErrorCode::InvalidInput,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::NotFound,
        429 => ErrorCode::QuotaExceeded,
        503 => ErrorCode::Sealed,
        500..=599 => ErrorCode::Unavailable,
        _ => ErrorCode::Upstream,
    }
}

impl VaultHttp {
    /// A client for `vault { address, ca_cert, tls_skip_verify }`.
    pub fn new(vault: &VaultStanza) -> Result<VaultHttp> {
        let base = vault
            .address
            .clone()
            .or_else(|| std::env::var("VAULT_ADDR").ok())
            .or_else(|| std::env::var("BAO_ADDR").ok())
            .unwrap_or_else(|| "https://127.0.0.1:8200".to_string());
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60));
        if let Some(ca) = &vault.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::invalid_input(format!("cannot read ca_cert `{}`: {e}", ca.display()))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|_| {
                Error::invalid_input(format!(
                    "ca_cert `{}` is not a PEM certificate",
                    ca.display()
                ))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        if vault.tls_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| Error::internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(VaultHttp {
            base: base.trim_end_matches('/').to_string(),
            http,
            token: RwLock::new(None),
        })
    }

    /// The server address.
    pub fn address(&self) -> &str {
        &self.base
    }

    /// Uses `token` for the following requests.
    pub fn set_token(&self, token: SecretString) {
        if let Ok(mut t) = self.token.write() {
            *t = Some(token);
        }
    }

    fn token(&self) -> Option<SecretString> {
        self.token.read().ok().and_then(|t| t.clone())
    }

    /// One API call; answers the JSON body (`Null` for 204). `path` may carry a query.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/v1/{}", self.base, path.trim_start_matches('/'));
        let mut rb = self.http.request(method, &url);
        if let Some(t) = self.token() {
            rb = rb.header("X-Vault-Token", t.expose_secret());
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.map_err(|e| {
            // reqwest's message names the URL and the cause, never a header.
            Error::unavailable(format!("cannot reach {}: {e}", self.base))
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Error::unavailable(format!("reading the answer of {}: {e}", self.base)))?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|_| {
                Error::new(
                    ErrorCode::Upstream,
                    format!("{url}: the answer is not JSON"),
                )
            });
        }
        // Vault's error envelope carries messages, not secrets.
        let errors = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .and_then(|e| e.as_array().cloned())
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let path_only = path.split('?').next().unwrap_or(path);
        let message = if status == StatusCode::NOT_FOUND && errors.is_empty() {
            format!("no secret exists at `{path_only}`")
        } else {
            format!("`{path_only}`: {} {errors}", status.as_u16())
                .trim_end()
                .to_string()
        };
        Err(Error::new(code_for(status), message))
    }

    /// Logs in with `method`; the token is used from then on.
    pub async fn login(&self, method: &AuthMethod) -> Result<Login> {
        let read = |p: &std::path::Path, what: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .map_err(|e| {
                    Error::invalid_input(format!("cannot read the {what} `{}`: {e}", p.display()))
                })
        };
        let (mount, body) = match method {
            AuthMethod::TokenFile { path } => {
                let token = SecretString::from(read(path, "token file")?);
                self.set_token(token.clone());
                let me = self
                    .call(Method::GET, "auth/token/lookup-self", None)
                    .await?;
                let ttl = me.pointer("/data/ttl").and_then(Value::as_u64).unwrap_or(0);
                let renewable = me
                    .pointer("/data/renewable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                return Ok(Login {
                    token,
                    ttl,
                    renewable,
                });
            }
            AuthMethod::Kubernetes {
                mount_path,
                role,
                token_path,
            } => {
                // Re-read at every login: the kubelet rotates projected tokens.
                let jwt = read(token_path, "service account token")?;
                (mount_path, json!({ "role": role, "jwt": jwt }))
            }
            AuthMethod::AppRole {
                mount_path,
                role_id_file,
                secret_id_file,
                remove_secret_id_file,
            } => {
                let role_id = read(role_id_file, "role id file")?;
                let mut body = serde_json::Map::new();
                body.insert("role_id".into(), Value::String(role_id));
                if let Some(f) = secret_id_file {
                    // A secret id is read once: after a removal, the next login has none.
                    if f.exists() {
                        let secret_id = read(f, "secret id file")?;
                        if *remove_secret_id_file {
                            let _ = std::fs::remove_file(f);
                        }
                        body.insert("secret_id".into(), Value::String(secret_id));
                    }
                }
                (mount_path, Value::Object(body))
            }
        };
        // No token on a login request.
        if let Ok(mut t) = self.token.write() {
            *t = None;
        }
        let answer = self
            .call(Method::POST, &format!("{mount}/login"), Some(body))
            .await?;
        let auth = answer.get("auth").ok_or_else(|| {
            Error::new(
                ErrorCode::Upstream,
                format!("`{mount}/login` answered no auth"),
            )
        })?;
        let token = auth
            .get("client_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::Upstream,
                    format!("`{mount}/login` answered no token"),
                )
            })?;
        let token = SecretString::from(token.to_string());
        self.set_token(token.clone());
        Ok(Login {
            token,
            ttl: auth
                .get("lease_duration")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            renewable: auth
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// `auth/token/renew-self`: the new TTL.
    pub async fn renew_self(&self) -> Result<u64> {
        let a = self
            .call(Method::POST, "auth/token/renew-self", Some(json!({})))
            .await?;
        Ok(a.pointer("/auth/lease_duration")
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }
}

#[async_trait]
impl SecretSource for VaultHttp {
    async fn fetch(&self, dep: &Dependency) -> Result<Fetched> {
        let path = dep.path();
        let answer = match dep {
            Dependency::Secrets { .. } => {
                let sep = if path.contains('?') { '&' } else { '?' };
                let a = match self
                    .call(Method::GET, &format!("{path}{sep}list=true"), None)
                    .await
                {
                    // An empty directory lists as 404: no keys.
                    Err(e) if e.code() == ErrorCode::NotFound => {
                        return Ok(Fetched::List(Vec::new()));
                    }
                    other => other?,
                };
                let keys = a
                    .pointer("/data/keys")
                    .and_then(Value::as_array)
                    .map(|k| {
                        k.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(Fetched::List(keys));
            }
            _ if dep.is_write() => {
                let body: serde_json::Map<String, Value> = dep
                    .params()
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                self.call(Method::PUT, path, Some(Value::Object(body)))
                    .await?
            }
            _ => self.call(Method::GET, path, None).await?,
        };
        if answer.is_null() {
            return Err(Error::not_found(format!("no secret exists at `{path}`")));
        }
        Ok(Fetched::Secret(VaultSecret::from_response(&answer)?))
    }

    async fn renew(&self, lease_id: &str) -> Result<u64> {
        let a = self
            .call(
                Method::PUT,
                "sys/leases/renew",
                Some(json!({ "lease_id": lease_id })),
            )
            .await?;
        Ok(a.get("lease_duration").and_then(Value::as_u64).unwrap_or(0))
    }
}
