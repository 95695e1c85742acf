//! Typed access to the token store (`auth/token/*`) and to ACL policies and capabilities.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Client, decode, none_if_missing};
use crate::error::{Error, Result};
use crate::request::{Auth, Data, Request};

/// Options for [`Tokens::create`]; `Default` gives a child token with the caller's policies.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// Policies (a subset of the caller's unless the caller has sudo).
    pub policies: Vec<String>,
    /// Metadata kept with the token.
    pub meta: BTreeMap<String, String>,
    /// TTL; zero = the token mount's default.
    pub ttl: Duration,
    /// Absolute cap on the lifetime, from creation.
    pub explicit_max_ttl: Duration,
    /// Periodic token: each renewal resets the TTL to this.
    pub period: Duration,
    /// Uses allowed; 0 = unlimited.
    pub num_uses: u64,
    /// Display name (`token-<name>`).
    pub display_name: Option<String>,
    /// Leave the `default` policy out.
    pub no_default_policy: bool,
    /// Create an orphan (needs sudo unless through a role that allows it).
    pub no_parent: bool,
    /// `false` makes it non-renewable.
    pub renewable: Option<bool>,
    /// `batch` for a batch token; `None` = service.
    pub token_type: Option<String>,
    /// Create through this token role.
    pub role: Option<String>,
}

impl TokenRequest {
    fn to_data(&self) -> Data {
        let mut d = crate::data(json!({
            "policies": self.policies,
            "meta": self.meta,
            "no_default_policy": self.no_default_policy,
            "no_parent": self.no_parent,
            "num_uses": self.num_uses,
        }));
        let secs = |d: Duration| Value::from(d.as_secs());
        if !self.ttl.is_zero() {
            d.insert("ttl".into(), secs(self.ttl));
        }
        if !self.explicit_max_ttl.is_zero() {
            d.insert("explicit_max_ttl".into(), secs(self.explicit_max_ttl));
        }
        if !self.period.is_zero() {
            d.insert("period".into(), secs(self.period));
        }
        if let Some(n) = &self.display_name {
            d.insert("display_name".into(), json!(n));
        }
        if let Some(r) = self.renewable {
            d.insert("renewable".into(), json!(r));
        }
        if let Some(t) = &self.token_type {
            d.insert("type".into(), json!(t));
        }
        d
    }
}

/// What `auth/token/lookup*` reports about a token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenInfo {
    /// The accessor.
    pub accessor: String,
    /// Policies.
    pub policies: Vec<String>,
    /// Seconds left (0 = never expires).
    pub ttl: u64,
    /// TTL at creation.
    pub creation_ttl: u64,
    /// Expiry time (RFC 3339), `None` for tokens that never expire.
    pub expire_time: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Uses left (0 = unlimited).
    pub num_uses: i64,
    /// Whether it has no parent.
    pub orphan: bool,
    /// Whether it can be renewed.
    pub renewable: bool,
    /// The creation path (`auth/token/create`, `auth/token/create/<role>`).
    pub path: String,
    /// `service` or `batch`.
    #[serde(rename = "type")]
    pub token_type: String,
    /// Metadata.
    #[serde(default)]
    pub meta: Option<BTreeMap<String, String>>,
}

/// Typed access to the token store.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use secrecy::ExposeSecret;
/// use strongroom::{Config, Strongroom, TokenRequest};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let tokens = sr.client(sr.dev_root_token().unwrap_or_default()).token();
/// let auth = tokens
///     .create(&TokenRequest { policies: vec!["app".into()], ttl: Duration::from_secs(3600), ..Default::default() })
///     .await?;
/// let token = auth.client_token.expose_secret();
/// let info = tokens.lookup(token).await?;
/// assert_eq!(info.policies, vec!["app", "default"]);
/// let renewed = tokens.renew(token, Duration::from_secs(600)).await?;
/// assert_eq!(renewed.lease_duration, 600);
/// tokens.revoke(token).await?;
/// assert!(tokens.lookup(token).await.is_err());
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Tokens {
    pub(super) client: Client,
}

fn auth_of(resp: crate::Response) -> Result<Auth> {
    resp.auth
        .ok_or_else(|| Error::internal("the token store returned no auth"))
}

impl Tokens {
    /// Create a token (`auth/token/create`, or `create/<role>` when `role` is set).
    pub async fn create(&self, req: &TokenRequest) -> Result<Auth> {
        let path = match &req.role {
            Some(r) => format!("auth/token/create/{r}"),
            None => "auth/token/create".to_string(),
        };
        auth_of(self.client.write(&path, req.to_data()).await?)
    }

    /// Look a token up (`bad token` when it is unknown or expired).
    pub async fn lookup(&self, token: &str) -> Result<TokenInfo> {
        let r = self
            .client
            .write("auth/token/lookup", crate::data(json!({ "token": token })))
            .await?;
        decode(Value::Object(r.data.unwrap_or_default()), "token lookup")
    }

    /// Look up the calling token.
    pub async fn lookup_self(&self) -> Result<TokenInfo> {
        let r = self
            .client
            .handle(Request::read("auth/token/lookup-self"))
            .await?;
        decode(Value::Object(r.data.unwrap_or_default()), "token lookup")
    }

    /// Look a token up by accessor.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<TokenInfo> {
        let r = self
            .client
            .write(
                "auth/token/lookup-accessor",
                crate::data(json!({ "accessor": accessor })),
            )
            .await?;
        decode(Value::Object(r.data.unwrap_or_default()), "token lookup")
    }

    /// Renew: the TTL becomes `increment` from now (zero = the token's own TTL), capped by its
    /// max TTL counted from issue time.
    pub async fn renew(&self, token: &str, increment: Duration) -> Result<Auth> {
        let body = crate::data(json!({ "token": token, "increment": increment.as_secs() }));
        auth_of(self.client.write("auth/token/renew", body).await?)
    }

    /// Renew the calling token.
    pub async fn renew_self(&self, increment: Duration) -> Result<Auth> {
        let body = crate::data(json!({ "increment": increment.as_secs() }));
        auth_of(self.client.write("auth/token/renew-self", body).await?)
    }

    /// Revoke a token and every token under it.
    pub async fn revoke(&self, token: &str) -> Result<()> {
        self.client
            .write("auth/token/revoke", crate::data(json!({ "token": token })))
            .await
            .map(|_| ())
    }

    /// Revoke the calling token (and its children).
    pub async fn revoke_self(&self) -> Result<()> {
        self.client
            .write("auth/token/revoke-self", Data::new())
            .await
            .map(|_| ())
    }

    /// Revoke by accessor.
    pub async fn revoke_accessor(&self, accessor: &str) -> Result<()> {
        self.client
            .write(
                "auth/token/revoke-accessor",
                crate::data(json!({ "accessor": accessor })),
            )
            .await
            .map(|_| ())
    }

    /// Create or update a token role (`allowed_policies`, `orphan`, `token_period`, ...).
    pub async fn write_role(&self, name: &str, settings: Data) -> Result<()> {
        self.client
            .write(&format!("auth/token/roles/{name}"), settings)
            .await
            .map(|_| ())
    }

    /// A role's settings, if it exists.
    pub async fn read_role(&self, name: &str) -> Result<Option<Data>> {
        Ok(self
            .client
            .read(&format!("auth/token/roles/{name}"))
            .await?
            .and_then(|r| r.data))
    }

    /// Role names.
    pub async fn list_roles(&self) -> Result<Vec<String>> {
        self.client.list("auth/token/roles").await
    }

    /// Delete a role.
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        self.client
            .delete(&format!("auth/token/roles/{name}"))
            .await
    }
}

impl super::Sys {
    /// Create or replace an ACL policy (HCL or JSON). A syntax error changes nothing.
    pub async fn write_policy(&self, name: &str, policy: &str) -> Result<()> {
        self.client
            .write(
                &format!("sys/policies/acl/{name}"),
                crate::data(json!({ "policy": policy })),
            )
            .await
            .map(|_| ())
    }

    /// A policy's text, if it exists.
    pub async fn read_policy(&self, name: &str) -> Result<Option<String>> {
        let r = none_if_missing(
            self.client
                .handle(Request::read(format!("sys/policies/acl/{name}")))
                .await,
        )?;
        Ok(r.and_then(|r| r.get("policy").and_then(Value::as_str).map(str::to_string)))
    }

    /// Policy names (`root` included, as OpenBao lists it).
    pub async fn list_policies(&self) -> Result<Vec<String>> {
        self.client.list("sys/policies/acl").await
    }

    /// Delete a policy (`default` and `root` cannot be deleted).
    pub async fn delete_policy(&self, name: &str) -> Result<()> {
        self.client
            .delete(&format!("sys/policies/acl/{name}"))
            .await
    }

    /// The calling token's capabilities on `path` (sorted; `["root"]` for root, `["deny"]`
    /// when nothing matches).
    pub async fn capabilities_self(&self, path: &str) -> Result<Vec<String>> {
        let r = self
            .client
            .write(
                "sys/capabilities-self",
                crate::data(json!({ "paths": [path] })),
            )
            .await?;
        Ok(caps(&r))
    }

    /// Another token's capabilities on `path`.
    pub async fn capabilities(&self, token: &str, path: &str) -> Result<Vec<String>> {
        let r = self
            .client
            .write(
                "sys/capabilities",
                crate::data(json!({ "token": token, "paths": [path] })),
            )
            .await?;
        Ok(caps(&r))
    }
}

fn caps(r: &crate::Response) -> Vec<String> {
    r.get("capabilities")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
