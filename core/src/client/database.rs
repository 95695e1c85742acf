//! Typed access to a database secrets engine mount: connection configs, roles, dynamic and
//! static credentials, rotation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::watch;

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

/// What one [`CredentialKeeper::tick`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperAction {
    /// The lease had enough time left.
    Nothing,
    /// The lease was renewed; this much time is left now.
    Renewed(Duration),
    /// The lease could not be extended further (max TTL near, or the lease gone): a new
    /// credential was fetched and published. The old one is left to expire.
    Replaced {
        /// The username given up.
        old_username: String,
        /// The username now in use.
        new_username: String,
    },
}

/// Keeps one role's credential fresh: renews its lease when a third of its duration is left,
/// and fetches a new credential when renewal can no longer extend it (max TTL reached, lease
/// revoked), publishing each new one to subscribers. The in-process replacement for a Vault
/// Agent sidecar.
///
/// [`CredentialKeeper::tick`] does one check (drive it yourself, e.g. with a virtual clock);
/// [`CredentialKeeper::spawn`] runs it on a timer until [`KeeperTask::stop`]. New credentials
/// reach the application through [`KeeperUpdates`] ([`CredentialKeeper::subscribe`]).
///
/// ```no_run
/// # async fn demo(client: strongroom::Client) -> strongroom::Result<()> {
/// let keeper = client.database("database").keep_fresh("api-role").await?;
/// let mut changes = keeper.subscribe();
/// let task = keeper.spawn()?;
/// while let Some(cred) = changes.changed().await {
///     reconnect_pool(&cred); // the application swaps its connection pool
/// #   break;
/// }
/// task.stop();
/// task.join().await?;
/// # Ok(()) }
/// # fn reconnect_pool(_: &strongroom::DbCredential) {}
/// ```
#[derive(Debug)]
pub struct CredentialKeeper {
    db: Database,
    role: String,
    current: watch::Sender<Arc<DbCredential>>,
}

/// The credentials a [`CredentialKeeper`] publishes, for one subscriber
/// ([`CredentialKeeper::subscribe`]).
///
/// [`KeeperUpdates::changed`] (async) and [`KeeperUpdates::recv_blocking`] wait for a
/// credential this subscriber has not seen yet and answer `None` once the keeper is gone
/// (dropped, or its [`KeeperTask`] stopped). A subscriber that was slow sees only the latest
/// credential, never a stale one.
#[derive(Debug, Clone)]
pub struct KeeperUpdates {
    rx: watch::Receiver<Arc<DbCredential>>,
}

impl KeeperUpdates {
    /// The credential in use now.
    pub fn current(&self) -> Arc<DbCredential> {
        self.rx.borrow().clone()
    }

    /// Whether a credential this subscriber has not seen yet is waiting (`false` once the
    /// keeper is gone).
    pub fn has_changed(&self) -> bool {
        self.rx.has_changed().unwrap_or(false)
    }

    /// Mark the current credential seen: only a replacement after this call counts as a change
    /// (for a subscriber that starts waiting later than it subscribed).
    pub fn mark_seen(&mut self) {
        self.rx.mark_unchanged();
    }

    /// Wait for a new credential and mark it seen; `None` when the keeper is gone.
    pub async fn changed(&mut self) -> Option<Arc<DbCredential>> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }

    /// Block this thread until a new credential, for callers that are not async; `Ok(None)`
    /// when the keeper is gone. Runtime rules as [`crate::Subscription::recv_blocking`]: an
    /// [`crate::ErrorCode::UnsupportedOperation`] error on a current-thread Tokio runtime.
    pub fn recv_blocking(&mut self) -> Result<Option<Arc<DbCredential>>> {
        self.recv_until(None)
    }

    /// [`KeeperUpdates::recv_blocking`] that gives up after `timeout` (`Ok(None)` then too).
    pub fn recv_blocking_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Arc<DbCredential>>> {
        self.recv_until(std::time::Instant::now().checked_add(timeout))
    }

    fn recv_until(
        &mut self,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<Arc<DbCredential>>> {
        let changed = crate::util::blocking::wait(self.rx.changed(), deadline)?;
        Ok(match changed {
            Some(Ok(())) => Some(self.rx.borrow_and_update().clone()),
            Some(Err(_)) | None => None,
        })
    }
}

/// A [`CredentialKeeper`] running on a timer ([`CredentialKeeper::spawn`]).
///
/// [`KeeperTask::stop`] asks it to stop (a check under way finishes first, so a credential is
/// never fetched and then lost); [`KeeperTask::join`] waits until it has. Dropping the task
/// stops it too.
#[derive(Debug)]
#[must_use = "the keeper stops when its task is dropped"]
pub struct KeeperTask {
    stop: watch::Sender<bool>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl KeeperTask {
    /// Ask the keeper to stop; returns at once.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Whether the keeper has stopped.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Wait until the keeper has stopped (call [`KeeperTask::stop`] first, or this waits for
    /// as long as the keeper runs). An `internal` error if its task panicked.
    pub async fn join(mut self) -> Result<()> {
        match self.handle.take() {
            Some(h) => h
                .await
                .map_err(|e| Error::internal("the credential keeper's task failed").with_source(e)),
            None => Ok(()),
        }
    }
}

impl Drop for KeeperTask {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl Database {
    /// Fetch a credential for `role` and keep it fresh (see [`CredentialKeeper`]).
    pub async fn keep_fresh(&self, role: &str) -> Result<CredentialKeeper> {
        let cred = self.creds(role).await?;
        Ok(CredentialKeeper {
            db: self.clone(),
            role: role.to_string(),
            current: watch::Sender::new(Arc::new(cred)),
        })
    }
}

impl CredentialKeeper {
    /// The credential in use now.
    pub fn current(&self) -> Arc<DbCredential> {
        self.current.borrow().clone()
    }

    /// The credentials this keeper publishes from now on (see [`KeeperUpdates`]).
    pub fn subscribe(&self) -> KeeperUpdates {
        KeeperUpdates {
            rx: self.current.subscribe(),
        }
    }

    /// One check: renew when a third of the lease's duration is left, replace when renewing
    /// no longer helps.
    pub async fn tick(&self) -> Result<KeeperAction> {
        let cred = self.current();
        let threshold = cred.lease_duration / 3;
        let leases = self.db.client.leases();
        let left = match leases.lookup(&cred.lease_id).await {
            Ok(l) => Some(Duration::from_secs(l.ttl)),
            // Revoked or expired under us: replace.
            Err(e) if e.code() == crate::ErrorCode::InvalidInput => None,
            Err(e) => return Err(e),
        };
        if let Some(left) = left {
            if left > threshold {
                return Ok(KeeperAction::Nothing);
            }
            if cred.renewable {
                match leases.renew(&cred.lease_id, cred.lease_duration).await {
                    Ok(r) if r.ttl > threshold => return Ok(KeeperAction::Renewed(r.ttl)),
                    // Capped near the max TTL, or refused: time for a new credential.
                    Ok(_) => {}
                    Err(e) if e.code() == crate::ErrorCode::InvalidInput => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let fresh = self.db.creds(&self.role).await?;
        let action = KeeperAction::Replaced {
            old_username: cred.username.clone(),
            new_username: fresh.username.clone(),
        };
        self.current.send_replace(Arc::new(fresh));
        Ok(action)
    }

    /// Run [`CredentialKeeper::tick`] on a timer (every sixth of the lease duration, between
    /// one second and five minutes) until [`KeeperTask::stop`]. Errors are logged and retried.
    /// Needs a Tokio runtime: an [`crate::ErrorCode::Unavailable`] error outside one.
    pub fn spawn(self) -> Result<KeeperTask> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                crate::ErrorCode::Unavailable,
                "the credential keeper needs a Tokio runtime to run on",
            )
        })?;
        let (stop, mut stopped) = watch::channel(false);
        let handle = runtime.spawn(async move {
            loop {
                let every = (self.current().lease_duration / 6)
                    .clamp(Duration::from_secs(1), Duration::from_secs(300));
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    // A stop request, or the task handle gone.
                    _ = stopped.wait_for(|s| *s) => break,
                }
                if let Err(e) = self.tick().await {
                    tracing::warn!(role = %self.role, error = %e.message(), "credential keeper: check failed");
                }
            }
        });
        Ok(KeeperTask {
            stop,
            handle: Some(handle),
        })
    }
}
