//! The lease manager: every secret with a lifetime (dynamic credentials, tokens) is a lease that
//! is renewed, revoked, or expires.
//!
//! What differs from OpenBao underneath (the API is the same):
//!
//! * **Nothing proportional to the lease count is loaded at open.** A lease is a record at
//!   `sys/expire/id/<lease id>` plus one entry in a time-bucketed expiry index
//!   (`sys/expire/due/<unix second>/<lease id>`). The runner lists the oldest buckets and pulls
//!   only what is due; there is no in-memory timer per lease and no restore scan.
//! * **Revocation is an idempotent saga on a bounded pool.** A due lease is revoked by its engine
//!   (which must be idempotent), then its record and index entries are deleted in one
//!   transaction. A failure reschedules only that lease with jittered exponential backoff, so a
//!   lease that keeps failing never delays another; after `max_attempts` it is marked
//!   irrevocable with its last error (listable, retryable, force-revocable), never dropped.
//! * **One runner among all processes sharing a store**: a leader lock row with a heartbeat
//!   (compare-and-set through the storage transaction), taken over when the holder stops
//!   renewing it. A lease being revoked when its leader dies is revoked again by the next
//!   leader; engines' revocation is idempotent, so it is revoked once in effect.
//! * **Lease-count quotas** per mount and per role (Enterprise-only in Vault), kept as counters
//!   updated in the same transaction as the lease.
//!
//! The index is a hint, the record is the truth: a due entry whose record is gone is dropped,
//! one whose record was renewed is moved to the new bucket, and a secret lease whose token is
//! gone (revoked or expired) is revoked whatever its own expiry says.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::router::Router;
use crate::storage::{Backend, Page};
use crate::token::TokenEntry;

pub(crate) mod endpoints;
mod expiry;
mod index;
mod leader;
mod prefix;
mod quotas;
mod record;
mod registration;

pub(crate) use index::{token_lease_ops, token_revocation_ops};
pub(crate) use quotas::Quota;
// Reached from outside only by the benches and fuzz targets.
#[cfg(feature = "bench-internals")]
pub(crate) use record::decode_record;
#[cfg(feature = "bench-internals")]
pub(crate) use registration::NewLease;

/// Lease records, keyed by lease id.
pub(crate) const ID_PREFIX: &str = "sys/expire/id/";
/// The expiry index: `<bucket>/<lease id>`, the bucket being a zero-padded unix second.
const DUE_PREFIX: &str = "sys/expire/due/";
/// Secret leases by the token that created them: `<salted token>/<lease id>`.
const TOKEN_PREFIX: &str = "sys/expire/token/";
/// Irrevocable leases: `<lease id>`.
const IRREVOCABLE_PREFIX: &str = "sys/expire/irrevocable/";
/// Quota definitions: `<name>`.
pub(crate) const QUOTA_PREFIX: &str = "sys/quotas/lease-count/";
/// Quota counters: `<name>`.
const COUNT_PREFIX: &str = "sys/expire/count/";

/// How the lease manager behaves. The defaults suit a server; tests shorten them and drive the
/// runner by hand with a virtual clock.
///
/// ```
/// use std::time::Duration;
/// use strongroom::{Config, LeaseConfig};
/// let cfg = Config::memory().leases(LeaseConfig {
///     background: false, // call `Strongroom::run_expiry` yourself
///     max_attempts: 3,
///     ..LeaseConfig::default()
/// });
/// # let _ = cfg;
/// ```
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Run the engine's background runner (needs a Tokio runtime at open): lease expiry every
    /// `tick`, and maintenance every [`crate::Config::maintenance_interval`]. When false, call
    /// [`Strongroom::run_expiry`](crate::Strongroom::run_expiry) and [`Strongroom::run_maintenance`](crate::Strongroom::run_maintenance) yourself.
    pub background: bool,
    /// How often the background runner looks for due leases.
    pub tick: Duration,
    /// Revocations in flight at once (OpenBao: 200 workers).
    pub workers: usize,
    /// Failed revocation attempts before a lease is marked irrevocable (OpenBao: 6).
    pub max_attempts: u32,
    /// First retry delay; attempt `n` waits `base * 2^(n-1)`, ±50% jitter (OpenBao: 10s).
    pub backoff_base: Duration,
    /// The longest a retry waits.
    pub backoff_max: Duration,
    /// One revocation call may take this long before it counts as failed (OpenBao: 90s).
    pub revoke_timeout: Duration,
    /// The leader lock lapses when not renewed for this long; another process then takes over.
    pub leader_ttl: Duration,
    /// [`LeaseEvent::ExpiringSoon`] is sent this long before a lease expires.
    pub expiring_soon: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            background: true,
            tick: Duration::from_secs(1),
            workers: 64,
            max_attempts: 6,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(3600),
            revoke_timeout: Duration::from_secs(90),
            leader_ttl: Duration::from_secs(15),
            expiring_soon: Duration::from_secs(60),
        }
    }
}

/// Something that happened to a lease, for applications that rotate their connection pools
/// before credentials expire. Delivered to [`crate::Leases::events`] subscribers in the process
/// where it happened (revocations and expiry warnings come from the process running the
/// expiry runner).
///
/// [`LeaseEvent::Missed`] is the one event the lease manager never sends: a
/// [`crate::Subscription`] that fell too far behind reports with it how many events it lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The lease was renewed; it now expires in `ttl`.
    Renewed {
        /// The lease.
        lease_id: String,
        /// Its new TTL.
        ttl: Duration,
    },
    /// The lease expires within the configured warning window.
    ExpiringSoon {
        /// The lease.
        lease_id: String,
        /// When it expires (RFC 3339).
        expire_time: String,
    },
    /// The lease was revoked and its secret is gone.
    Revoked {
        /// The lease.
        lease_id: String,
    },
    /// Revocation kept failing; the lease is now irrevocable (see `sys/leases?type=irrevocable`).
    Irrevocable {
        /// The lease.
        lease_id: String,
        /// The last revocation error.
        error: String,
    },
    /// This subscriber fell more than 4096 events behind and lost the oldest `count` of them;
    /// look the leases it cares about up again. Delivery goes on with the oldest event kept.
    Missed {
        /// How many events were lost.
        count: u64,
    },
}

/// What one run of the expiry runner did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Whether this process held the runner's leader lock (only the leader revokes).
    pub leader: bool,
    /// Leases revoked.
    pub revoked: usize,
    /// Leases whose revocation failed and was rescheduled.
    pub retried: usize,
    /// Leases that became irrevocable.
    pub irrevocable: usize,
    /// Index entries moved because their lease was renewed, or dropped because it was gone.
    pub rescheduled: usize,
}

fn nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn from_nanos(n: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn dur_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    crate::util::json::encode(v, || Error::internal("encode lease"))
}

/// The lease manager of one engine.
struct LeaseManager {
    pub(crate) config: LeaseConfig,
    /// This process's id in the leader lock.
    pub(crate) holder: String,
    events: broadcast::Sender<LeaseEvent>,
    /// Quota definitions, loaded on first use and dropped when they change.
    quotas: Mutex<Option<Arc<Vec<Quota>>>>,
    /// Due index entries being revoked right now (so a slow revocation is not dispatched twice).
    in_flight: Mutex<std::collections::HashSet<String>>,
    /// `ExpiringSoon` has been sent for buckets up to this one.
    warned_until: Mutex<i64>,
    /// Serialises runs of the expiry runner in this process.
    running: tokio::sync::Mutex<()>,
    /// Leases created and revoked by this process, by mount path (for metrics).
    tallies: Mutex<BTreeMap<String, MountLeaseTally>>,
}

/// Leases created and revoked by one process under one mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MountLeaseTally {
    created: u64,
    revoked: u64,
}

/// Lease figures for metrics, from [`Strongroom::lease_stats`](crate::Strongroom::lease_stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseStats {
    /// Per mount: secret leases this process created, and leases it revoked, since it opened
    /// (counters; the difference is this process's share of the live leases).
    pub by_mount: Vec<MountLeaseStats>,
    /// Revocations this process is running now (the expiry runner's queue being worked on).
    pub revocations_in_flight: usize,
    /// Irrevocable leases in storage, by mount path (all processes).
    pub irrevocable_by_mount: Vec<(String, u64)>,
}

/// One mount's lease counters in [`LeaseStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MountLeaseStats {
    /// The mount path (`database/`).
    pub mount: String,
    /// Secret leases created by this process.
    pub created: u64,
    /// Leases revoked by this process.
    pub revoked: u64,
}

impl LeaseManager {
    fn new(config: LeaseConfig) -> LeaseManager {
        let (events, _) = broadcast::channel(4096);
        LeaseManager {
            config,
            holder: uuid::Uuid::new_v4().to_string(),
            events,
            quotas: Mutex::new(None),
            in_flight: Mutex::new(std::collections::HashSet::new()),
            warned_until: Mutex::new(0),
            running: tokio::sync::Mutex::new(()),
            tallies: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        self.events.subscribe()
    }

    fn emit(&self, e: LeaseEvent) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(e);
        }
    }

    /// Forget cached quota definitions (another process may have changed them).
    pub(crate) fn clear(&self) -> Result<()> {
        *self.quotas.lock().or_else(crate::util::unpoison)? = None;
        Ok(())
    }

    pub(crate) async fn quotas(&self, storage: &dyn Backend) -> Result<Arc<Vec<Quota>>> {
        if let Some(q) = self.quotas.lock().or_else(crate::util::unpoison)?.clone() {
            return Ok(q);
        }
        let mut out = Vec::new();
        for name in storage.list(QUOTA_PREFIX, &Page::all()).await? {
            if name.ends_with('/') {
                continue;
            }
            if let Some(raw) = storage.get(&format!("{QUOTA_PREFIX}{name}")).await? {
                let q: Quota = serde_json::from_slice(&raw)
                    .map_err(|e| Error::storage("corrupt quota").with_source(e))?;
                out.push(q);
            }
        }
        let out = Arc::new(out);
        *self.quotas.lock().or_else(crate::util::unpoison)? = Some(out.clone());
        Ok(out)
    }
}

/// What the lease manager needs from the rest of the engine, and nothing more. The engine
/// implements it (`crate::mounts::EngineHost`); the lease manager never sees the facade, so
/// this module does not depend on `crate::strongroom` (a test keeps it so).
#[async_trait::async_trait]
pub(crate) trait LeaseHost: Send + Sync {
    /// The mounted secrets engines as routed now: a lease is renewed, revoked and recovered
    /// by the engine that issued it.
    fn router(&self) -> Result<Arc<Router>>;
    /// Whether the engine is sealed (the runner does nothing then).
    fn is_sealed(&self) -> bool;
    /// Pick up what another process sharing the store wrote (caches, the mount table).
    async fn sync_store(&self) -> Result<()>;
    /// A token by its salted id, expired or not (an auth lease follows its token; a secret
    /// lease dies with the token that created it).
    async fn token(&self, salted: &str) -> Result<Option<TokenEntry>>;
    /// Revoke a token and every token below it (what revoking an auth lease means).
    async fn revoke_token_tree(&self, salted: &str) -> Result<()>;
    /// The deletions that revoke a token with no children (to commit with its lease's, in one
    /// transaction); `None` when it has children or needs more than deletions.
    async fn leaf_token_ops(&self, salted: &str) -> Result<Option<Vec<crate::storage::TxnOp>>>;
    /// Drop a token from the token store's cache once its deletion is committed.
    fn forget_token(&self, salted: &str) -> Result<()>;
    /// Whether a token has children now (one created since [`LeaseHost::leaf_token_ops`]
    /// looked must be revoked with it).
    async fn token_has_children(&self, salted: &str) -> Result<bool>;
}

/// The lease subsystem as the engine holds it: the manager's state, the storage view and
/// clock it works on, the leader lock, and the [`LeaseHost`] it revokes through.
pub(crate) struct Leases {
    mgr: LeaseManager,
    /// The barrier (everything the lease manager reads and writes is behind it).
    storage: Arc<dyn Backend>,
    clock: SharedClock,
    host: Arc<dyn LeaseHost>,
    /// Whether this process is the active node (holds the leader lock).
    pub(crate) leadership: crate::ha::Leadership,
    /// High availability reporting (`None`: OpenBao's single node answers).
    ha: Option<crate::config::HaSettings>,
}

impl Leases {
    pub(crate) fn new(
        config: LeaseConfig,
        storage: Arc<dyn Backend>,
        clock: SharedClock,
        host: Arc<dyn LeaseHost>,
        ha: Option<crate::config::HaSettings>,
    ) -> Leases {
        Leases {
            mgr: LeaseManager::new(config),
            storage,
            clock,
            host,
            leadership: crate::ha::Leadership::default(),
            ha,
        }
    }

    fn leases_mgr(&self) -> &LeaseManager {
        &self.mgr
    }

    /// How the lease manager was configured.
    pub(crate) fn config(&self) -> &LeaseConfig {
        &self.mgr.config
    }

    /// This process's id in the leader lock.
    pub(crate) fn holder(&self) -> &str {
        &self.mgr.holder
    }

    /// Lease events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        self.mgr.subscribe()
    }

    /// Forget cached quota definitions (another process may have changed them).
    pub(crate) fn clear(&self) -> Result<()> {
        self.mgr.clear()
    }
}

#[cfg(test)]
mod tests {
    use super::expiry::{backoff, truncate};
    use super::index::{bucket_of, due_key};
    use super::*;

    #[test]
    fn buckets_round_up() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(1_000_000_000), 1);
        assert_eq!(bucket_of(1_000_000_001), 2);
        assert_eq!(due_key(5, "a/b"), "sys/expire/due/000000000005/a/b");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = LeaseConfig::default();
        for attempt in 1..=10 {
            let d = backoff(&cfg, attempt);
            let base = cfg
                .backoff_base
                .saturating_mul(2u32.pow(attempt - 1))
                .min(cfg.backoff_max);
            assert!(
                d >= base.mul_f64(0.5) && d <= base.mul_f64(1.5),
                "{attempt}: {d:?}"
            );
        }
    }

    #[test]
    fn truncation_is_by_characters() {
        assert_eq!(truncate("ééé", 2), "éé");
    }
}
