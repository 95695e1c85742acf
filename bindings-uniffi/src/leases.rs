//! Leases: look up, renew, revoke, and their events through a callback interface.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Result, run, runtime};

/// A lease's details.
#[derive(uniffi::Record)]
pub struct LeaseDetails {
    /// The lease id.
    pub id: String,
    /// The request path that created it.
    pub path: String,
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
}

/// The result of a renewal.
#[derive(uniffi::Record)]
pub struct RenewedLease {
    /// The lease id.
    pub lease_id: String,
    /// The new TTL in seconds (capped by the lease's max TTL).
    pub ttl: u64,
    /// Warnings, e.g. that the requested increment was capped.
    pub warnings: Vec<String>,
}

/// What happened to a lease.
#[derive(uniffi::Enum)]
pub enum LeaseEvent {
    /// Renewed; it now expires in `ttl` seconds.
    Renewed {
        /// The lease.
        lease_id: String,
        /// Its new TTL in seconds.
        ttl: u64,
    },
    /// It expires within the warning window.
    ExpiringSoon {
        /// The lease.
        lease_id: String,
        /// When it expires (RFC 3339).
        expire_time: String,
    },
    /// Revoked: its secret is gone.
    Revoked {
        /// The lease.
        lease_id: String,
    },
    /// Revocation kept failing; the lease is irrevocable.
    Irrevocable {
        /// The lease.
        lease_id: String,
        /// The last revocation error.
        error: String,
    },
    /// This subscriber fell behind and lost `count` events.
    Missed {
        /// How many events were lost.
        count: u64,
    },
}

impl From<strongroom::LeaseEvent> for LeaseEvent {
    fn from(e: strongroom::LeaseEvent) -> LeaseEvent {
        match e {
            strongroom::LeaseEvent::Renewed { lease_id, ttl } => LeaseEvent::Renewed {
                lease_id,
                ttl: ttl.as_secs(),
            },
            strongroom::LeaseEvent::ExpiringSoon {
                lease_id,
                expire_time,
            } => LeaseEvent::ExpiringSoon {
                lease_id,
                expire_time,
            },
            strongroom::LeaseEvent::Revoked { lease_id } => LeaseEvent::Revoked { lease_id },
            strongroom::LeaseEvent::Irrevocable { lease_id, error } => {
                LeaseEvent::Irrevocable { lease_id, error }
            }
            strongroom::LeaseEvent::Missed { count } => LeaseEvent::Missed { count },
        }
    }
}

/// Implemented on the foreign side: receives lease events, in order, on a thread of the
/// library's (one per subscription). It may call back into the library (with blocking or
/// its own async calls).
#[uniffi::export(callback_interface)]
pub trait LeaseListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: LeaseEvent);
}

/// The lease manager.
#[derive(uniffi::Object)]
pub struct Leases(strongroom::Leases);

impl Leases {
    pub(crate) fn new(l: strongroom::Leases) -> Leases {
        Leases(l)
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Leases {
    /// A lease's details (an unknown lease is `invalid_input`, as in OpenBao).
    pub async fn lookup(&self, lease_id: String) -> Result<LeaseDetails> {
        let l = self.0.clone();
        let d = run(async move { l.lookup(&lease_id).await }).await?;
        Ok(LeaseDetails {
            id: d.id,
            path: d.path,
            issue_time: d.issue_time,
            expire_time: d.expire_time,
            last_renewal: d.last_renewal,
            ttl: d.ttl,
            renewable: d.renewable,
        })
    }

    /// Renew by `increment_seconds` (0: the default).
    pub async fn renew(&self, lease_id: String, increment_seconds: u64) -> Result<RenewedLease> {
        let l = self.0.clone();
        let r = run(async move {
            l.renew(&lease_id, Duration::from_secs(increment_seconds))
                .await
        })
        .await?;
        Ok(RenewedLease {
            lease_id: r.lease_id,
            ttl: r.ttl.as_secs(),
            warnings: r.warnings,
        })
    }

    /// Revoke a lease now (its secret is gone: a database user is dropped).
    pub async fn revoke(&self, lease_id: String) -> Result<()> {
        let l = self.0.clone();
        run(async move { l.revoke(&lease_id).await }).await
    }

    /// Revoke every lease under a path prefix.
    pub async fn revoke_prefix(&self, prefix: String) -> Result<()> {
        let l = self.0.clone();
        run(async move { l.revoke_prefix(&prefix).await }).await
    }

    /// Subscribe to lease events from now on: `listener.on_event` runs for each, until
    /// `Subscription.stop` (or the subscription is dropped).
    pub fn subscribe(&self, listener: Box<dyn LeaseListener>) -> Result<Arc<Subscription>> {
        let mut sub = {
            let _entered = runtime()?.enter();
            self.0.events()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("strongroom-lease-events".into())
            .spawn(move || {
                while !stopping.load(Ordering::Acquire) {
                    match sub.recv_blocking_timeout(Duration::from_millis(50)) {
                        Ok(Some(e)) => listener.on_event(e.into()),
                        // A timeout, or the engine is gone: wait for the stop flag.
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            })
            .map_err(|e| {
                crate::StrongroomError::from(strongroom::Error::internal(format!(
                    "could not start the event thread: {e}"
                )))
            })?;
        Ok(Arc::new(Subscription {
            stop,
            thread: Mutex::new(Some(thread)),
        }))
    }
}

/// A lease event subscription.
#[derive(uniffi::Object)]
pub struct Subscription {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Subscription {
    fn halt(&self) {
        self.stop.store(true, Ordering::Release);
        let t = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = t {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

#[uniffi::export]
impl Subscription {
    /// Stop: returns after the listener has run for the last time (unless called from the
    /// listener itself, which is allowed). Stopping twice does nothing.
    pub fn stop(&self) {
        self.halt();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.halt();
    }
}
