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
    /// The host it runs on (`sys/ha-status`).
    #[serde(default)]
    hostname: String,
}

/// Where each standby records that it is alive (`sys/ha-status`), one record per process
/// (holder id), through the barrier like everything under `core/`.
pub(crate) const NODES_PREFIX: &str = "core/leader/nodes/";

/// How often a standby refreshes its record. OpenBao's standbys echo to the active node on
/// the same cadence.
pub(crate) const ECHO_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A standby whose record is older than this is gone: left out of `sys/ha-status` and
/// removed by the active node.
pub(crate) const NODE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(30);

/// The record of one standby at [`NODES_PREFIX`]`<holder>`.
#[derive(Debug, Serialize, Deserialize)]
struct NodeRecord {
    hostname: String,
    api_addr: String,
    #[serde(default)]
    cluster_addr: String,
    /// RFC 3339 (nanoseconds), when it last wrote this record.
    last_echo: String,
}

/// The name of the host this process runs on, as `hostname` prints it ("" when unknown).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// This process's view of the leader lock.
#[derive(Default)]
pub(crate) struct Leadership {
    /// This process held the lock at its last check.
    leading: AtomicBool,
    /// When it took the lock (RFC 3339), while it holds it.
    since: Mutex<Option<String>>,
    /// When this process last wrote its standby record (or pruned others' as the active node).
    echoed: Mutex<Option<OffsetDateTime>>,
    /// The addresses this process announces when high availability is off (the server's
    /// `api_addr` or first listener): [`Strongroom::advertise`](crate::Strongroom::advertise).
    advertised: Mutex<(String, String)>,
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
            if let Some(settings) = settings {
                self.echo(storage, holder, settings, now).await?;
            }
            return Ok(());
        }
        if self.is_leading() {
            if settings.is_some() {
                self.prune(storage, now).await?;
            }
            return Ok(());
        }
        let active_time = crate::clock::rfc3339(now);
        let record = ActiveNode {
            holder: holder.to_string(),
            api_addr: settings.map(|s| s.api_addr.clone()).unwrap_or_default(),
            cluster_addr: settings.map(|s| s.cluster_addr.clone()).unwrap_or_default(),
            active_time: active_time.clone(),
            hostname: hostname(),
        };
        let raw = serde_json::to_vec(&record)
            .map_err(|e| Error::internal("cannot encode the active node record").with_source(e))?;
        storage.put(ACTIVE_PATH, &raw).await?;
        // No longer a standby: its standby record goes (a failure only leaves it to expire).
        let _ = storage.delete(&format!("{NODES_PREFIX}{holder}")).await;
        *self.echoed.lock().or_else(crate::util::unpoison)? = None;
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

    /// A standby: write this process's record (at most every [`ECHO_INTERVAL`]), so that
    /// `sys/ha-status` lists it.
    async fn echo(
        &self,
        storage: &dyn Backend,
        holder: &str,
        settings: &HaSettings,
        now: OffsetDateTime,
    ) -> Result<()> {
        if !self.due(now)? {
            return Ok(());
        }
        let record = NodeRecord {
            hostname: hostname(),
            api_addr: settings.api_addr.clone(),
            cluster_addr: settings.cluster_addr.clone(),
            last_echo: crate::clock::rfc3339(now),
        };
        let raw = serde_json::to_vec(&record)
            .map_err(|e| Error::internal("cannot encode the standby record").with_source(e))?;
        storage.put(&format!("{NODES_PREFIX}{holder}"), &raw).await
    }

    /// The active node: remove the records of standbys gone for longer than [`NODE_EXPIRY`]
    /// (at most every [`ECHO_INTERVAL`]).
    async fn prune(&self, storage: &dyn Backend, now: OffsetDateTime) -> Result<()> {
        if !self.due(now)? {
            return Ok(());
        }
        for (key, record) in standbys(storage).await? {
            if !alive(&record, now) {
                storage.delete(&format!("{NODES_PREFIX}{key}")).await?;
            }
        }
        Ok(())
    }

    /// Whether [`ECHO_INTERVAL`] has passed since the last echo or prune (and note `now`).
    fn due(&self, now: OffsetDateTime) -> Result<bool> {
        let mut last = self.echoed.lock().or_else(crate::util::unpoison)?;
        if last.is_some_and(|t| now - t < ECHO_INTERVAL && now >= t) {
            return Ok(false);
        }
        *last = Some(now);
        Ok(true)
    }

    /// Sealed or shut down: this process's standby record goes at once.
    pub(crate) async fn leave(&self, storage: &dyn Backend, holder: &str) -> Result<()> {
        *self.echoed.lock().or_else(crate::util::unpoison)? = None;
        storage.delete(&format!("{NODES_PREFIX}{holder}")).await
    }

    /// Announce these addresses in `sys/ha-status` when high availability is off.
    pub(crate) fn advertise(&self, api_addr: &str, cluster_addr: &str) -> Result<()> {
        *self.advertised.lock().or_else(crate::util::unpoison)? =
            (api_addr.to_string(), cluster_addr.to_string());
        Ok(())
    }

    /// `sys/ha-status` in OpenBao's shape: `{"nodes": [{hostname, api_address,
    /// cluster_address, active_node, last_echo, version}]}`, the active node first (its
    /// `last_echo` null), then the standbys heard from within [`NODE_EXPIRY`] by api address.
    /// Without high availability (`settings` None) the one node is this process. `storage`
    /// must be fresh (the caller syncs it).
    pub(crate) async fn ha_status(
        &self,
        storage: &dyn Backend,
        settings: Option<&HaSettings>,
        now: OffsetDateTime,
    ) -> Result<Data> {
        let node = |hostname: String, api: String, cluster: String, active: bool, echo: Value| {
            json!({
                "hostname": hostname,
                "api_address": api,
                "cluster_address": cluster,
                "active_node": active,
                "last_echo": echo,
                "version": crate::router::BAO_VERSION,
            })
        };
        let mut nodes = Vec::new();
        if settings.is_none() {
            let (api, cluster) = self
                .advertised
                .lock()
                .or_else(crate::util::unpoison)?
                .clone();
            nodes.push(node(hostname(), api, cluster, true, Value::Null));
            return Ok(crate::data(json!({ "nodes": nodes })));
        }
        let active = match storage.get(ACTIVE_PATH).await? {
            Some(raw) => serde_json::from_slice::<ActiveNode>(&raw).ok(),
            None => None,
        };
        let active_holder = active.as_ref().map(|a| a.holder.clone());
        if let Some(a) = active {
            nodes.push(node(
                a.hostname,
                a.api_addr,
                a.cluster_addr,
                true,
                Value::Null,
            ));
        }
        let mut standbys: Vec<NodeRecord> = standbys(storage)
            .await?
            .into_iter()
            .filter(|(holder, r)| Some(holder) != active_holder.as_ref() && alive(r, now))
            .map(|(_, r)| r)
            .collect();
        standbys.sort_by(|a, b| a.api_addr.cmp(&b.api_addr));
        for r in standbys {
            let echo = Value::String(r.last_echo.clone());
            nodes.push(node(r.hostname, r.api_addr, r.cluster_addr, false, echo));
        }
        Ok(crate::data(json!({ "nodes": nodes })))
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

/// Every standby record in the store, by holder id (unreadable records are skipped).
async fn standbys(storage: &dyn Backend) -> Result<Vec<(String, NodeRecord)>> {
    let mut out = Vec::new();
    for key in storage
        .list(NODES_PREFIX, &crate::storage::Page::all())
        .await?
    {
        if key.ends_with('/') {
            continue;
        }
        if let Some(raw) = storage.get(&format!("{NODES_PREFIX}{key}")).await? {
            if let Ok(r) = serde_json::from_slice::<NodeRecord>(&raw) {
                out.push((key, r));
            }
        }
    }
    Ok(out)
}

/// Whether a standby's record is recent enough to count it as alive.
fn alive(record: &NodeRecord, now: OffsetDateTime) -> bool {
    crate::clock::parse_rfc3339(&record.last_echo).is_some_and(|t| now - t <= NODE_EXPIRY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryBackend;

    fn settings(port: u16) -> HaSettings {
        HaSettings {
            api_addr: format!("http://10.0.0.1:{port}"),
            cluster_addr: String::new(),
        }
    }

    fn listed(d: &Data) -> Vec<(String, bool, bool)> {
        d["nodes"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|n| {
                        (
                            n["api_address"].as_str().unwrap_or("").to_string(),
                            n["active_node"] == true,
                            n["last_echo"].is_null(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn standbys_echo_expire_and_leave() -> Result<()> {
        let store = MemoryBackend::new();
        let t0 = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20000);
        let (active, s1, s2) = (
            Leadership::default(),
            Leadership::default(),
            Leadership::default(),
        );
        active
            .observe(true, &store, "h-a", Some(&settings(1)), t0)
            .await?;
        s1.observe(false, &store, "h-1", Some(&settings(3)), t0)
            .await?;
        s2.observe(false, &store, "h-2", Some(&settings(2)), t0)
            .await?;
        let want = vec![
            ("http://10.0.0.1:1".to_string(), true, true),
            ("http://10.0.0.1:2".to_string(), false, false),
            ("http://10.0.0.1:3".to_string(), false, false),
        ];
        // Any node answers alike: the active node first, the standbys by address.
        for who in [&active, &s1, &s2] {
            assert_eq!(
                listed(&who.ha_status(&store, Some(&settings(9)), t0).await?),
                want
            );
        }

        // s2 keeps echoing, s1 stops (killed): after the expiry only s2 is listed, and the
        // active node's next prune removes s1's record.
        let mut now = t0;
        while now - t0 <= NODE_EXPIRY {
            now += time::Duration::seconds(1);
            s2.observe(false, &store, "h-2", Some(&settings(2)), now)
                .await?;
            active
                .observe(true, &store, "h-a", Some(&settings(1)), now)
                .await?;
        }
        let got = listed(&active.ha_status(&store, Some(&settings(1)), now).await?);
        assert_eq!(got, vec![want[0].clone(), want[1].clone()]);
        assert!(store.get(&format!("{NODES_PREFIX}h-1")).await?.is_none());
        assert!(store.get(&format!("{NODES_PREFIX}h-2")).await?.is_some());

        // An echo is written at most every ECHO_INTERVAL.
        let before = store.get(&format!("{NODES_PREFIX}h-2")).await?;
        s2.observe(false, &store, "h-2", Some(&settings(2)), now)
            .await?;
        assert_eq!(store.get(&format!("{NODES_PREFIX}h-2")).await?, before);

        // s2 takes over when the active node is gone: its standby record goes with it.
        s2.observe(true, &store, "h-2", Some(&settings(2)), now)
            .await?;
        let got = listed(&s2.ha_status(&store, Some(&settings(2)), now).await?);
        assert_eq!(got, vec![("http://10.0.0.1:2".to_string(), true, true)]);
        assert!(store.get(&format!("{NODES_PREFIX}h-2")).await?.is_none());

        // A standby that leaves (seal, shutdown) is gone at once.
        s1.observe(false, &store, "h-1", Some(&settings(3)), now)
            .await?;
        assert_eq!(
            listed(&s2.ha_status(&store, Some(&settings(2)), now).await?).len(),
            2
        );
        s1.leave(&store, "h-1").await?;
        assert_eq!(
            listed(&s2.ha_status(&store, Some(&settings(2)), now).await?).len(),
            1
        );
        Ok(())
    }

    #[tokio::test]
    async fn without_ha_the_one_node_is_this_process() -> Result<()> {
        let store = MemoryBackend::new();
        let l = Leadership::default();
        l.advertise("http://127.0.0.1:8200", "")?;
        let d = l
            .ha_status(&store, None, OffsetDateTime::UNIX_EPOCH)
            .await?;
        assert_eq!(
            serde_json::Value::Object(d),
            json!({"nodes": [{
                "hostname": hostname(),
                "api_address": "http://127.0.0.1:8200",
                "cluster_address": "",
                "active_node": true,
                "last_echo": null,
                "version": "2.7.2",
            }]})
        );
        Ok(())
    }
}
