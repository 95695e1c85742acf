//! `Leases` (lookup, renew, revoke) and `LeaseEvents`, the core's lease event subscription;
//! the JS layer offers it as an `EventEmitter` and an async iterator.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use napi::bindgen_prelude::Either;
use napi_derive::napi;

use crate::client::seconds;
use crate::convert::{Result, call, date, duration, opt_date, opt_duration};

/// One lease's details.
#[napi(object, object_from_js = false)]
pub struct LeaseDetails {
    /// The lease id.
    pub id: String,
    /// The path that made it.
    pub path: String,
    /// When it was issued.
    pub issue_time: Option<DateTime<Utc>>,
    /// When it expires.
    pub expire_time: Option<DateTime<Utc>>,
    /// When it was last renewed.
    pub last_renewal: Option<DateTime<Utc>>,
    /// Seconds left.
    pub ttl: f64,
    /// Whether it can be renewed.
    pub renewable: bool,
}

/// The result of a renewal.
#[napi(object, object_from_js = false)]
pub struct RenewedLease {
    /// The lease id.
    pub lease_id: String,
    /// Seconds it now lives.
    pub ttl: f64,
    /// Warnings (an increment capped by the max TTL, ...).
    pub warnings: Vec<String>,
}

/// Something that happened to a lease: `kind` is `renewed`, `expiring_soon`, `revoked`,
/// `irrevocable`, or `missed` (the reader fell behind and lost `count` events).
#[napi(object, object_from_js = false)]
pub struct LeaseEvent {
    /// What happened.
    pub kind: String,
    /// The lease ("" for `missed`).
    pub lease_id: String,
    /// Seconds it now lives (`renewed`).
    pub ttl: Option<f64>,
    /// When it expires (`expiring_soon`).
    pub expire_time: Option<DateTime<Utc>>,
    /// Why it could not be revoked (`irrevocable`), or how many were missed.
    pub error: Option<String>,
}

fn event(e: strongroom::LeaseEvent) -> LeaseEvent {
    use strongroom::LeaseEvent as E;
    let mut ev = LeaseEvent {
        kind: String::new(),
        lease_id: String::new(),
        ttl: None,
        expire_time: None,
        error: None,
    };
    match e {
        E::Renewed { lease_id, ttl } => {
            ev.kind = "renewed".into();
            ev.lease_id = lease_id;
            ev.ttl = Some(seconds(ttl));
        }
        E::ExpiringSoon {
            lease_id,
            expire_time,
        } => {
            ev.kind = "expiring_soon".into();
            ev.lease_id = lease_id;
            ev.expire_time = date(&expire_time);
        }
        E::Revoked { lease_id } => {
            ev.kind = "revoked".into();
            ev.lease_id = lease_id;
        }
        E::Irrevocable { lease_id, error } => {
            ev.kind = "irrevocable".into();
            ev.lease_id = lease_id;
            ev.error = Some(error);
        }
        E::Missed { count } => {
            ev.kind = "missed".into();
            ev.error = Some(format!("{count} lease events were missed"));
        }
    }
    ev
}

/// Lease events from the moment of subscribing.
#[napi]
pub struct LeaseEvents {
    rx: Arc<tokio::sync::Mutex<strongroom::Subscription>>,
}

#[napi]
impl LeaseEvents {
    /// The next event, waiting at most `timeout` (seconds or `"5s"`; forever when absent);
    /// `null` when none came or the engine is gone.
    #[napi]
    pub async fn next(&self, timeout: Option<Either<f64, String>>) -> Result<Option<LeaseEvent>> {
        let timeout: Option<Duration> = timeout.map(duration).transpose()?;
        let mut rx = self.rx.lock().await;
        let wait = rx.recv();
        let e = match timeout {
            Some(t) => tokio::time::timeout(t, wait).await.ok().flatten(),
            None => wait.await,
        };
        Ok(e.map(event))
    }
}

/// The lease manager: lookup, renew, revoke, events.
#[napi]
pub struct Leases {
    inner: strongroom::Leases,
}

impl Leases {
    pub(crate) fn new(inner: strongroom::Leases) -> Leases {
        Leases { inner }
    }
}

#[napi]
impl Leases {
    /// A lease's details.
    #[napi]
    pub async fn lookup(&self, lease_id: String) -> Result<LeaseDetails> {
        let d = call(self.inner.lookup(&lease_id)).await?;
        Ok(LeaseDetails {
            issue_time: date(&d.issue_time),
            expire_time: opt_date(d.expire_time.as_deref()),
            last_renewal: opt_date(d.last_renewal.as_deref()),
            ttl: d.ttl as f64,
            id: d.id,
            path: d.path,
            renewable: d.renewable,
        })
    }

    /// Renew a lease by `increment` (seconds or `"1h"`; 0 or absent = the default).
    #[napi]
    pub async fn renew(
        &self,
        lease_id: String,
        increment: Option<Either<f64, String>>,
    ) -> Result<RenewedLease> {
        let inc = opt_duration(increment)?;
        let r = call(self.inner.renew(&lease_id, inc)).await?;
        Ok(RenewedLease {
            ttl: seconds(r.ttl),
            lease_id: r.lease_id,
            warnings: r.warnings,
        })
    }

    /// Revoke a lease now.
    #[napi]
    pub async fn revoke(&self, lease_id: String) -> Result<()> {
        call(self.inner.revoke(&lease_id)).await
    }

    /// Revoke every lease under a path prefix.
    #[napi]
    pub async fn revoke_prefix(&self, prefix: String) -> Result<()> {
        call(self.inner.revoke_prefix(&prefix)).await
    }

    /// Forget every lease under a prefix even when revoking them fails.
    #[napi]
    pub async fn revoke_force(&self, prefix: String) -> Result<()> {
        call(self.inner.revoke_force(&prefix)).await
    }

    /// Subscribe to lease events in this process.
    #[napi(ts_return_type = "import('./index').LeaseEventStream")]
    pub fn events(&self) -> LeaseEvents {
        LeaseEvents {
            rx: Arc::new(tokio::sync::Mutex::new(self.inner.events())),
        }
    }
}
