//! `Database`: dynamic and static credentials, and `CredentialKeeper`, the core's keeper that
//! renews a credential (or replaces it before it expires); the JS layer turns its changes into
//! events so an application can refresh its connection pool.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use napi::bindgen_prelude::Either;
use napi_derive::napi;
use serde_json::Value;

use crate::client::seconds;
use crate::convert::{Result, Secret, call, data_arg, date, duration, err};

/// A database credential with its lease.
#[napi(object, object_from_js = false)]
pub struct DbCredential {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
    /// The lease.
    pub lease_id: String,
    /// Seconds the lease lives.
    pub lease_duration: f64,
    /// Whether the lease can be renewed.
    pub renewable: bool,
}

fn credential(c: &strongroom::DbCredential) -> DbCredential {
    DbCredential {
        username: c.username.clone(),
        password: Secret::of(&c.password),
        lease_id: c.lease_id.clone(),
        lease_duration: seconds(c.lease_duration),
        renewable: c.renewable,
    }
}

/// A static role's credential.
#[napi(object, object_from_js = false)]
pub struct StaticCredential {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
    /// When it was last rotated.
    pub last_vault_rotation: Option<DateTime<Utc>>,
    /// Seconds until the next rotation.
    pub ttl: f64,
}

/// The database secrets engine on a mount.
#[napi]
pub struct Database {
    inner: strongroom::Database,
}

impl Database {
    pub(crate) fn new(inner: strongroom::Database) -> Database {
        Database { inner }
    }
}

#[napi]
impl Database {
    /// Configure a connection (`plugin_name`, `connection_url`, `allowed_roles`, ...);
    /// resolves to the engine's warnings.
    #[napi]
    pub async fn configure(&self, name: String, config: Value) -> Result<Vec<String>> {
        let config = data_arg(Some(config))?;
        call(self.inner.configure(&name, config)).await
    }

    /// Write a dynamic role (`db_name`, `creation_statements`, `default_ttl`, `max_ttl`, ...).
    #[napi]
    pub async fn write_role(&self, name: String, role: Value) -> Result<()> {
        let role = data_arg(Some(role))?;
        call(self.inner.write_role(&name, role)).await
    }

    /// Write a static role (`db_name`, `username`, `rotation_period`, ...).
    #[napi]
    pub async fn write_static_role(&self, name: String, role: Value) -> Result<()> {
        let role = data_arg(Some(role))?;
        call(self.inner.write_static_role(&name, role)).await
    }

    /// New credentials from a dynamic role, with a lease.
    #[napi]
    pub async fn creds(&self, role: String) -> Result<DbCredential> {
        call(self.inner.creds(&role)).await.map(|c| credential(&c))
    }

    /// A static role's current credentials.
    #[napi]
    pub async fn static_creds(&self, name: String) -> Result<StaticCredential> {
        let c = call(self.inner.static_creds(&name)).await?;
        Ok(StaticCredential {
            username: c.username.clone(),
            password: Secret::of(&c.password),
            last_vault_rotation: date(&c.last_vault_rotation),
            ttl: seconds(c.ttl),
        })
    }

    /// Rotate a static role's password now.
    #[napi]
    pub async fn rotate_role(&self, name: String) -> Result<()> {
        call(self.inner.rotate_role(&name)).await
    }

    /// Rotate the connection's root password.
    #[napi]
    pub async fn rotate_root(&self, name: String) -> Result<()> {
        call(self.inner.rotate_root(&name)).await
    }

    /// Credentials for `role` kept fresh in the background (renewed while the lease allows,
    /// replaced before it runs out).
    #[napi(ts_return_type = "Promise<import('./index').CredentialKeeper>")]
    pub async fn keep_fresh(&self, role: String) -> Result<CredentialKeeper> {
        let keeper = call(self.inner.keep_fresh(&role)).await?;
        let rx = keeper.subscribe();
        let task = keeper.spawn().map_err(err)?;
        Ok(CredentialKeeper {
            rx,
            task: Arc::new(task),
        })
    }
}

/// A credential the engine keeps fresh; `stop()` ends it. The package exports it wrapped as
/// `CredentialKeeper` (an EventEmitter).
#[napi(js_name = "KeeperHandle")]
pub struct CredentialKeeper {
    rx: strongroom::KeeperUpdates,
    task: Arc<strongroom::KeeperTask>,
}

#[napi]
impl CredentialKeeper {
    /// The credential in use now.
    #[napi]
    pub fn current(&self) -> DbCredential {
        credential(&self.rx.current())
    }

    /// Wait until the credential is next replaced (at most `timeout`: seconds or `"1m"`);
    /// resolves to the new credential, or `null` on timeout or when the keeper stopped.
    #[napi]
    pub async fn next_change(
        &self,
        timeout: Option<Either<f64, String>>,
    ) -> Result<Option<DbCredential>> {
        let timeout = timeout.map(duration).transpose()?;
        let mut mine = self.rx.clone();
        mine.mark_seen();
        let wait = mine.changed();
        let changed = match timeout {
            Some(t) => tokio::time::timeout(t, wait).await.ok().flatten(),
            None => wait.await,
        };
        Ok(changed.map(|c| credential(&c)))
    }

    /// Stop renewing (the current lease stays until it expires or is revoked).
    #[napi]
    pub fn stop(&self) {
        self.task.stop();
    }

    /// Whether the keeper has stopped.
    #[napi(getter)]
    pub fn stopped(&self) -> bool {
        self.task.is_finished()
    }
}
