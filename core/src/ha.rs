//! High availability as OpenBao reports it: which process sharing a store is the *active* node
//! (the one holding the leader lock, see [`crate::leases`]) and which are *standbys*.
//!
//! Every process serves reads and writes against the shared store (OpenBao's standbys forward
//! or redirect them instead); only background work needs the leader lock. What differs between
//! the active node and a standby is therefore only what `sys/leader` and `sys/health` say:
//!
//! * The process that takes the lock writes who it is (its `api_addr`, and when it took over)
//!   at [`ACTIVE_PATH`], through the barrier, once per takeover. Every process reads it there
//!   for `sys/leader`'s `leader_address`, so a standby names the active node, and a takeover
//!   after the leader died shows as soon as the new leader has taken the lock (within one tick
//!   of the expiry runner: PostgreSQL releases a dead session's advisory lock at once).
//! * Whether this process is the active node is what its last check of the lock said.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::config::HaSettings;
use crate::error::{Error, Result};
use crate::request::Data;
use crate::storage::Backend;

/// Who the active node is (barrier-encrypted, like everything under `core/`).
pub(crate) const ACTIVE_PATH: &str = "core/leader/active";

/// The record at [`ACTIVE_PATH`].
#[derive(Debug, Serialize, Deserialize)]
struct ActiveNode {
    /// The lease manager's holder id of the process (unique per open).
    holder: String,
    api_addr: String,
    #[serde(default)]
    cluster_addr: String,
    /// RFC 3339, when it took the lock.
    active_time: String,
}

/// This process's view of the leader lock.
#[derive(Default)]
pub(crate) struct Leadership {
    /// This process held the lock at its last check.
    leading: AtomicBool,
    /// When it took the lock (RFC 3339), while it holds it.
    since: Mutex<Option<String>>,
}

impl Leadership {
    /// Whether this process held the leader lock at its last check.
    pub(crate) fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// After a check of the leader lock: on taking it, record this process as the active node
    /// (`holder` = the lease manager's holder id). Until that record is written this process
    /// does not count as the active node, and the next check writes it again.
    pub(crate) async fn observe(
        &self,
        held: bool,
        storage: &dyn Backend,
        holder: &str,
        settings: Option<&HaSettings>,
        now: OffsetDateTime,
    ) -> Result<()> {
        if !held {
            self.lost();
            return Ok(());
        }
        if self.is_leading() {
            return Ok(());
        }
        let active_time = crate::clock::rfc3339(now);
        let record = ActiveNode {
            holder: holder.to_string(),
            api_addr: settings.map(|s| s.api_addr.clone()).unwrap_or_default(),
            cluster_addr: settings.map(|s| s.cluster_addr.clone()).unwrap_or_default(),
            active_time: active_time.clone(),
        };
        let raw = serde_json::to_vec(&record)
            .map_err(|e| Error::internal("cannot encode the active node record").with_source(e))?;
        storage.put(ACTIVE_PATH, &raw).await?;
        *self.since.lock().or_else(crate::util::unpoison)? = Some(active_time);
        self.leading.store(true, Ordering::SeqCst);
        tracing::info!("this process holds the leader lock: it is the active node");
        Ok(())
    }

    /// The lock was given up or lost.
    pub(crate) fn lost(&self) {
        if self.leading.swap(false, Ordering::SeqCst) {
            tracing::info!("this process no longer holds the leader lock: it is a standby");
        }
        if let Ok(mut since) = self.since.lock() {
            *since = None;
        }
    }

    /// `sys/leader` of an unsealed process with high availability on, in OpenBao's shape:
    /// `{ha_enabled, is_self, active_time (the active node only), leader_address,
    /// leader_cluster_address}`. `storage` must be fresh (the caller syncs it).
    pub(crate) async fn leader(&self, storage: &dyn Backend, holder: &str) -> Result<Data> {
        let record = match storage.get(ACTIVE_PATH).await? {
            Some(raw) => serde_json::from_slice::<ActiveNode>(&raw).ok(),
            None => None,
        };
        let is_self = self.is_leading() && record.as_ref().is_some_and(|r| r.holder == holder);
        let mut d = crate::data(json!({"ha_enabled": true, "is_self": is_self}));
        if is_self {
            let since = self.since.lock().or_else(crate::util::unpoison)?.clone();
            let since = since.or_else(|| record.as_ref().map(|r| r.active_time.clone()));
            d.insert(
                "active_time".into(),
                Value::String(since.unwrap_or_default()),
            );
        }
        let (addr, cluster) = record
            .map(|r| (r.api_addr, r.cluster_addr))
            .unwrap_or_default();
        d.insert("leader_address".into(), Value::String(addr));
        d.insert("leader_cluster_address".into(), Value::String(cluster));
        Ok(d)
    }
}
