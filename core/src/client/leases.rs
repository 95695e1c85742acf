//! Typed access to the lease manager (`sys/leases/*`) and its event stream.

use std::time::{Duration, Instant};

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

    /// Lease events in this process from now on: renewed, expiring soon, revoked,
    /// irrevocable (see [`Subscription`]).
    pub fn events(&self) -> Subscription {
        Subscription {
            rx: self.client.engine().inner.leases.subscribe(),
        }
    }
}

/// A stream of [`LeaseEvent`]s from [`Leases::events`], for async and for blocking callers.
///
/// - [`Subscription::recv`] (async) and [`Subscription::recv_blocking`] wait for the next
///   event; [`Subscription::try_recv`] takes one only if it is already there.
/// - All answer `None` once the engine is gone (every [`crate::Strongroom`] handle dropped):
///   the stream has ended.
/// - Nothing is dropped silently: a subscriber that falls more than 4096 events behind gets
///   one [`LeaseEvent::Missed`] with the number lost, then the events kept.
///
/// Each subscription sees every event once; several subscriptions each see all of them.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use strongroom::{Config, LeaseEvent, Strongroom};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let root = sr.client(sr.dev_root_token().unwrap_or_default());
/// let mut events = root.leases().events();
/// assert_eq!(events.try_recv(), None); // nothing happened yet
/// // From a thread that is not async (a binding's sync API): block until an event or a timeout.
/// let waited = std::thread::spawn(move || events.recv_blocking_timeout(Duration::from_millis(10)))
///     .join()
///     .unwrap()?;
/// assert_eq!(waited, None);
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<LeaseEvent>,
}

impl Subscription {
    fn event(
        r: std::result::Result<LeaseEvent, broadcast::error::RecvError>,
    ) -> Option<LeaseEvent> {
        match r {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(count)) => Some(LeaseEvent::Missed { count }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event; `None` when the engine is gone.
    pub async fn recv(&mut self) -> Option<LeaseEvent> {
        Self::event(self.rx.recv().await)
    }

    /// The next event if one is waiting, without blocking; `None` when there is none (or the
    /// engine is gone).
    pub fn try_recv(&mut self) -> Option<LeaseEvent> {
        match self.rx.try_recv() {
            Ok(e) => Some(e),
            Err(broadcast::error::TryRecvError::Lagged(count)) => {
                Some(LeaseEvent::Missed { count })
            }
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => {
                None
            }
        }
    }

    /// Block this thread until the next event; `Ok(None)` when the engine is gone.
    ///
    /// For callers that are not async. It works on any thread that is not driving a Tokio
    /// runtime, and on a multi-thread runtime's worker (the worker is handed off while it
    /// waits). On a current-thread runtime it cannot wait (it would stop the one thread that
    /// delivers events) and answers an [`crate::ErrorCode::UnsupportedOperation`] error:
    /// use [`Subscription::recv`] there.
    pub fn recv_blocking(&mut self) -> Result<Option<LeaseEvent>> {
        crate::util::blocking::wait(self.rx.recv(), None).map(|r| r.and_then(Self::event))
    }

    /// [`Subscription::recv_blocking`] that gives up after `timeout` (`Ok(None)` then too), so
    /// that a binding can check for signals between waits.
    pub fn recv_blocking_timeout(&mut self, timeout: Duration) -> Result<Option<LeaseEvent>> {
        let deadline = Instant::now().checked_add(timeout);
        crate::util::blocking::wait(self.rx.recv(), deadline).map(|r| r.and_then(Self::event))
    }
}
