//! Typed access to a database secrets engine mount: connection configs, roles, dynamic and
//! static credentials, rotation.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use super::Client;
use crate::error::{Error, Result};
use crate::request::{Data, Request, Response};

/// A dynamic database credential and its lease. The password is a [`SecretString`]: not shown
/// by `Debug`, wiped from memory on drop.
#[derive(Clone)]
pub struct DbCredential {
    /// The generated database username.
    pub username: String,
    /// The generated password.
    pub password: SecretString,
    /// The lease to renew or revoke (`database/creds/<role>/<id>`).
    pub lease_id: String,
    /// Time left on the lease.
    pub lease_duration: Duration,
    /// Whether the lease can be renewed.
    pub renewable: bool,
}

impl fmt::Debug for DbCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("lease_id", &self.lease_id)
            .field("lease_duration", &self.lease_duration)
            .finish()
    }
}

/// A static role's current credential (no lease: the engine rotates it).
#[derive(Clone)]
pub struct StaticCredential {
    /// The database username the role manages.
    pub username: String,
    /// Its current password.
    pub password: SecretString,
    /// When the engine last rotated it (RFC 3339).
    pub last_vault_rotation: String,
    /// Time until the next rotation.
    pub ttl: Duration,
}

impl fmt::Debug for StaticCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A database secrets engine mount.
///
/// ```no_run
/// # async fn demo(client: strongroom::Client) -> strongroom::Result<()> {
/// use secrecy::ExposeSecret;
/// use serde_json::json;
/// let db = client.database("database");
/// db.configure("pg", strongroom::data(json!({
///     "plugin_name": "postgresql-database-plugin",
///     "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/app",
///     "username": "vault_admin", "password": "admin-password",
///     "allowed_roles": "api-role",
/// }))).await?;
/// db.write_role("api-role", strongroom::data(json!({
///     "db_name": "pg",
///     "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
///     "default_ttl": "1h", "max_ttl": "24h",
/// }))).await?;
/// let cred = db.creds("api-role").await?;
/// connect(&cred.username, cred.password.expose_secret());
/// client.leases().revoke(&cred.lease_id).await?; // the role is dropped
/// # Ok(()) }
/// # fn connect(_: &str, _: &str) {}
/// ```
#[derive(Debug, Clone)]
pub struct Database {
    pub(super) client: Client,
    pub(super) mount: String,
}

fn text(resp: &Response, key: &str) -> Result<String> {
    resp.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::internal(format!("database response has no `{key}`")))
}

impl Database {
    fn path(&self, section: &str, name: &str) -> String {
        format!("{}/{section}/{name}", self.mount)
    }

    /// Write connection config `name` (`plugin_name`, `connection_url`, `allowed_roles`, ...).
    /// Returns the warnings (a password in the URL, say).
    pub async fn configure(&self, name: &str, config: Data) -> Result<Vec<String>> {
        Ok(self
            .client
            .write(&self.path("config", name), config)
            .await?
            .warnings)
    }

    /// Write role `name` (`db_name`, `creation_statements`, `default_ttl`, `max_ttl`, ...).
    pub async fn write_role(&self, name: &str, role: Data) -> Result<()> {
        self.client.write(&self.path("roles", name), role).await?;
        Ok(())
    }

    /// Write static role `name` (`db_name`, `username`, `rotation_period`); its password is
    /// rotated at once.
    pub async fn write_static_role(&self, name: &str, role: Data) -> Result<()> {
        self.client
            .write(&self.path("static-roles", name), role)
            .await?;
        Ok(())
    }

    /// A new credential for `role`, under a lease.
    pub async fn creds(&self, role: &str) -> Result<DbCredential> {
        let resp = self
            .client
            .handle(Request::read(self.path("creds", role)))
            .await?;
        Ok(DbCredential {
            username: text(&resp, "username")?,
            password: SecretString::from(text(&resp, "password")?),
            lease_id: resp.lease_id.clone(),
            lease_duration: Duration::from_secs(resp.lease_duration),
            renewable: resp.renewable,
        })
    }

    /// The current credential of static role `name`.
    pub async fn static_creds(&self, name: &str) -> Result<StaticCredential> {
        let resp = self
            .client
            .handle(Request::read(self.path("static-creds", name)))
            .await?;
        Ok(StaticCredential {
            username: text(&resp, "username")?,
            password: SecretString::from(text(&resp, "password")?),
            last_vault_rotation: text(&resp, "last_vault_rotation")?,
            ttl: Duration::from_secs(resp.get("ttl").and_then(Value::as_u64).unwrap_or(0)),
        })
    }

    /// Rotate static role `name` now.
    pub async fn rotate_role(&self, name: &str) -> Result<()> {
        self.client
            .write(&self.path("rotate-role", name), Data::new())
            .await?;
        Ok(())
    }

    /// Rotate the root (admin) password of connection `name`; only the engine knows the new one.
    pub async fn rotate_root(&self, name: &str) -> Result<()> {
        self.client
            .write(&self.path("rotate-root", name), Data::new())
            .await?;
        Ok(())
    }

    /// Users in connection `name` whose name starts with `username_prefix` (the plugin's
    /// prefix, `v-` or `V_`, when empty) but that no credential of this mount accounts for;
    /// with `apply`, drop them. Returns their names. On a database server shared with other
    /// engines, give a prefix only this mount's users carry.
    pub async fn reconcile(
        &self,
        name: &str,
        username_prefix: &str,
        apply: bool,
    ) -> Result<Vec<String>> {
        let mut body = Data::new();
        body.insert("apply".into(), Value::Bool(apply));
        body.insert(
            "username_prefix".into(),
            Value::String(username_prefix.into()),
        );
        let resp = self
            .client
            .write(&self.path("reconcile", name), body)
            .await?;
        Ok(resp
            .get("orphans")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}
