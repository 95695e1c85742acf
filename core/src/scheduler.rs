//! The engine's one background runner, and what [`crate::Strongroom::shutdown`] waits for.
//!
//! The runner does all background work, so an embedded application gets what the server gets:
//! lease expiry every [`crate::LeaseConfig::tick`], and maintenance (keyring rotation by its
//! policy, then each mount's periodic work: transit auto-rotation, scheduled static-role and
//! root rotation) whenever [`crate::Config::maintenance_interval`] has passed on the engine's
//! clock, so a virtual clock drives it in tests. Work that must run in one process only runs
//! under the leader lock ([`crate::Strongroom::run_expiry`] and
//! [`crate::Strongroom::run_maintenance`] take it). It starts at open when
//! [`crate::LeaseConfig::background`] is on and a Tokio runtime is there, and stops at
//! shutdown, after the run in progress, or when the engine is dropped.
//!
//! [`CallGate`] counts the calls in flight, so shutdown can refuse new ones and wait for the
//! rest.

use std::sync::Mutex;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorCode, Result};
use crate::strongroom::{Inner, Strongroom};

/// The default time between maintenance runs.
pub(crate) const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The background runner's handle.
pub(crate) struct Scheduler {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            stop: watch::channel(false).0,
            task: Mutex::new(None),
        }
    }
}

impl Scheduler {
    /// Start the runner for `inner` (once; a second call does nothing).
    pub(crate) fn start(&self, inner: &std::sync::Arc<Inner>, maintenance_every: Duration) {
        if !inner.leases.config().background {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::info!(
                "no Tokio runtime at open: background work is not started; call run_expiry() and run_maintenance()"
            );
            return;
        };
        let mut slot = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return;
        }
        let weak: Weak<Inner> = std::sync::Arc::downgrade(inner);
        let tick = inner.leases.config().tick.max(Duration::from_millis(10));
        let mut stop = self.stop.subscribe();
        *slot = Some(handle.spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_maintenance = None;
            loop {
                // Stop between runs, never inside one: a run holds the leader lock and its
                // heartbeat, which it gives back when it ends.
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stop.changed() => return,
                }
                if *stop.borrow() {
                    return;
                }
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let sr = Strongroom { inner };
                if let Err(e) = sr.run_expiry().await {
                    if e.code() != ErrorCode::Sealed {
                        tracing::warn!(error = %e.message(), "lease expiry run failed");
                    }
                }
                let now = sr.inner.clock.now();
                let due = last_maintenance
                    .is_none_or(|at: time::OffsetDateTime| now - at >= maintenance_every);
                if due && !sr.is_sealed() {
                    last_maintenance = Some(now);
                    match sr.run_maintenance().await {
                        Ok(true) => tracing::info!("keyring rotated by the rotation policy"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e.message(), "maintenance failed"),
                    }
                }
            }
        }));
    }

    /// Stop the runner, after the run in progress; returns when it has stopped.
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // The runner holds only a weak reference; it ends on its next tick anyway.
        self.stop.send_replace(true);
    }
}

/// Counts the calls in flight; closed by shutdown.
#[derive(Default)]
pub(crate) struct CallGate {
    closed: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// One call in flight (dropped when the call ends).
pub(crate) struct InFlight<'a>(&'a CallGate);

impl CallGate {
    /// Admit a call, or refuse it once the engine is shutting down.
    pub(crate) fn enter(&self) -> Result<InFlight<'_>> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let call = InFlight(self);
        if self.closed.load(Ordering::SeqCst) {
            return Err(shut_down());
        }
        Ok(call)
    }

    /// Whether new calls are refused.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Refuse new calls from now on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Wait until no call is in flight.
    pub(crate) async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The answer to a call made after shutdown.
pub(crate) fn shut_down() -> Error {
    Error::unavailable("the engine is shut down")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_calls_in_flight_and_refuses_new_ones() {
        let gate = std::sync::Arc::new(CallGate::default());
        let call = gate.enter().ok();
        gate.close();
        assert!(gate.enter().is_err());
        let drained = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.drained().await })
        };
        tokio::task::yield_now().await;
        assert!(!drained.is_finished(), "drained with a call in flight");
        drop(call);
        tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| unreachable!("drain never finished"));
    }
}
