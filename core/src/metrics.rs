//! [`EngineMetrics`]: the engine's figures for monitoring, typed. The HTTP server renders them
//! as OpenBao's `sys/metrics` JSON and as Prometheus text; in-process callers read the fields.

use serde_json::{Value, json};

use crate::audit::AuditDeviceStats;
use crate::leases::LeaseStats;
use crate::request::Data;

/// The engine's figures at one moment, from [`crate::Strongroom::metrics`] (or, with a
/// token allowed to read `sys/metrics`, [`crate::Sys::metrics`]).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let sr = strongroom::Strongroom::open(strongroom::Config::dev()).await?;
/// let m = sr.metrics().await?;
/// assert!(!m.sealed);
/// assert_eq!(m.leases.map(|l| l.revocations_in_flight), Some(0));
/// assert!(m.audit.is_empty());
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineMetrics {
    /// Whether the engine is sealed.
    pub sealed: bool,
    /// Lease figures ([`crate::Strongroom::lease_stats`]); `None` while sealed (they are read
    /// from storage).
    pub leases: Option<LeaseStats>,
    /// Each audit device's counters ([`crate::Strongroom::audit_stats`]), in the order the
    /// devices were enabled.
    pub audit: Vec<AuditDeviceStats>,
}

impl EngineMetrics {
    /// The JSON `sys/metrics` answers with in-process (`sealed`, `leases`, `audit`).
    pub(crate) fn to_data(&self) -> Data {
        let mut d = Data::new();
        d.insert("sealed".into(), Value::Bool(self.sealed));
        if let Some(l) = &self.leases {
            let by_mount: serde_json::Map<String, Value> = l
                .by_mount
                .iter()
                .map(|m| {
                    (
                        m.mount.clone(),
                        json!({"created": m.created, "revoked": m.revoked}),
                    )
                })
                .collect();
            let irrevocable: serde_json::Map<String, Value> = l
                .irrevocable_by_mount
                .iter()
                .map(|(m, n)| (m.clone(), Value::from(*n)))
                .collect();
            d.insert(
                "leases".into(),
                json!({
                    "by_mount": by_mount,
                    "revocations_in_flight": l.revocations_in_flight,
                    "irrevocable_by_mount": irrevocable,
                }),
            );
        }
        let audit: Vec<Value> = self
            .audit
            .iter()
            .map(|a| {
                json!({
                    "path": a.path,
                    "written": a.written,
                    "failed": a.failed,
                    "dropped": a.dropped,
                    "timed_out": a.timed_out,
                    "queued": a.queued,
                    "stalled": a.stalled,
                })
            })
            .collect();
        d.insert("audit".into(), Value::Array(audit));
        d
    }
}
