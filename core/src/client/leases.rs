//! Typed access to the lease manager (`sys/leases/*`) and its event stream.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use super::{Client, decode};
use crate::error::Result;
use crate::leases::LeaseEvent;
use crate::request::Request;

/// What `sys/leases/lookup` says about a lease.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LeaseDetails {
    /// The lease id.
    pub id: String,
    /// When it was issued (RFC 3339).
    pub issue_time: String,
    /// When it expires (RFC 3339), if it does.
    pub expire_time: Option<String>,
    /// When it was last renewed (RFC 3339).
    pub last_renewal: Option<String>,
    /// Seconds left.
    pub ttl: u64,
    /// Whether it can be renewed.
    pub renewable: bool,
    /// The request path that created it.
    pub path: String,
    /// Why revocation failed, for an irrevocable lease.
    #[serde(default)]
    pub revoke_error: Option<String>,
}

/// The result of a renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewedLease {
    /// The lease id.
    pub lease_id: String,
    /// The new TTL (capped by the lease's max TTL, counted from issue).
    pub ttl: Duration,
    /// Warnings, e.g. that the requested increment was capped.
    pub warnings: Vec<String>,
}

/// The lease manager: look up, renew and revoke leases, and subscribe to their events.
///
/// ```
/// # tokio_test_block_on(async {
/// use strongroom::{Config, Strongroom};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let client = sr.client(sr.dev_root_token().unwrap_or_default());
/// // Revoking an unknown lease succeeds, as in OpenBao.
/// client.leases().revoke("database/creds/ro/unknown").await?;
/// assert!(client.leases().lookup("database/creds/ro/unknown").await.is_err());
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) }
/// ```
#[derive(Debug, Clone)]
pub struct Leases {
    pub(crate) client: Client,
}

impl Leases {
    /// `sys/leases/lookup`.
    pub async fn lookup(&self, lease_id: &str) -> Result<LeaseDetails> {
        let resp = self
            .client
            .handle(Request::write(
                "sys/leases/lookup",
                crate::data(json!({ "lease_id": lease_id })),
            ))
            .await?;
        decode(
            serde_json::Value::Object(resp.data.unwrap_or_default()),
            "lease lookup",
        )
    }

    /// `sys/leases/renew`: extend by `increment` from now (zero = the engine's default TTL).
    pub async fn renew(&self, lease_id: &str, increment: Duration) -> Result<RenewedLease> {
        let resp = self
            .client
            .handle(Request::write(
                "sys/leases/renew",
                crate::data(json!({ "lease_id": lease_id, "increment": increment.as_secs() })),
            ))
            .await?;
        Ok(RenewedLease {
            lease_id: resp.lease_id,
            ttl: Duration::from_secs(resp.lease_duration),
            warnings: resp.warnings,
        })
    }

    /// `sys/leases/revoke` (synchronous: the secret is gone when this returns).
    pub async fn revoke(&self, lease_id: &str) -> Result<()> {
        self.client
            .handle(Request::write(
                "sys/leases/revoke",
                crate::data(json!({ "lease_id": lease_id })),
            ))
            .await
            .map(|_| ())
    }

    /// `sys/leases/revoke-prefix/<prefix>` (needs sudo).
    pub async fn revoke_prefix(&self, prefix: &str) -> Result<()> {
        self.client
            .handle(Request::write(
                format!("sys/leases/revoke-prefix/{}", prefix.trim_matches('/')),
                crate::Data::new(),
            ))
            .await
            .map(|_| ())
    }

    /// `sys/leases/revoke-force/<prefix>` (needs sudo): drop the records even when the engine
    /// cannot revoke (the secret may be left behind; use only when it is known to be gone).
    pub async fn revoke_force(&self, prefix: &str) -> Result<()> {
        self.client
            .handle(Request::write(
                format!("sys/leases/revoke-force/{}", prefix.trim_matches('/')),
                crate::Data::new(),
            ))
            .await
            .map(|_| ())
    }

    /// Lease events in this process: renewed, expiring soon, revoked, irrevocable. A slow
    /// receiver that falls more than 4096 events behind sees `RecvError::Lagged`.
    pub fn events(&self) -> broadcast::Receiver<LeaseEvent> {
        self.client.engine().inner.leases.subscribe()
    }
}
