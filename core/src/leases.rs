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

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, LeaseInfo, Request, Response};
use crate::storage::{Backend, Page, TxnOp};
use crate::strongroom::Strongroom;
use crate::token::TokenEntry;
use crate::util::ttl::{self, TtlLimits, TtlRequest};

pub(crate) mod endpoints;
mod prefix;

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
/// The expiry runner's leader lock.
const LEADER_KEY: &str = "core/leader/expiry";
/// OpenBao truncates a stored revocation error to this many characters.
const MAX_REVOKE_ERR: usize = 240;
/// How often an irrevocable lease is tried again (OpenBao: daily).
const IRREVOCABLE_RETRY: Duration = Duration::from_secs(24 * 3600);
/// How many due entries one storage page fetches.
const DUE_PAGE: usize = 512;

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
    /// [`Strongroom::run_expiry`] and [`Strongroom::run_maintenance`] yourself.
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

/// One stored lease.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    pub lease_id: String,
    /// The request path that created it (`database/creds/ro`, `auth/token/create`).
    pub path: String,
    /// `secret` or `auth`.
    pub kind: String,
    /// Salted id of the token that created a secret lease ("" when none is tracked).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_token: String,
    /// For an auth lease, the salted id of the token it is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Engine-private data for revocation.
    #[serde(default, skip_serializing_if = "Data::is_empty")]
    pub internal_data: Data,
    /// Unix nanoseconds.
    pub issue_time: i64,
    pub expire_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewal_time: Option<i64>,
    #[serde(default)]
    pub renewable: bool,
    /// The role it was issued for (per-role quotas).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// Quotas this lease counts against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    /// Set when the lease became irrevocable (OpenBao's `revokeErr`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revoke_err: String,
    #[serde(default)]
    pub version: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl std::fmt::Debug for LeaseRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseRecord")
            .field("lease_id", &self.lease_id)
            .field("expire_time", &self.expire_time)
            .finish_non_exhaustive()
    }
}

impl LeaseRecord {
    fn is_auth(&self) -> bool {
        self.kind == "auth"
    }
    fn irrevocable(&self) -> bool {
        !self.revoke_err.is_empty()
    }
}

/// A lease-count quota (`sys/quotas/lease-count/:name`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Quota {
    pub name: String,
    /// A mount path (`database/`) or a path below it; "" = every lease.
    pub path: String,
    /// Only leases issued for this role ("" = any).
    #[serde(default)]
    pub role: String,
    pub max_leases: u64,
}

impl Quota {
    fn applies(&self, lease_path: &str, role: &str) -> bool {
        lease_path.starts_with(&self.path) && (self.role.is_empty() || self.role == role)
    }
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

/// The bucket (unix second, rounded up so nothing is pulled early) of a time.
fn bucket_of(t_nanos: i64) -> i64 {
    let s = t_nanos.div_euclid(1_000_000_000);
    if t_nanos.rem_euclid(1_000_000_000) == 0 {
        s.max(0)
    } else {
        (s + 1).max(0)
    }
}

fn due_key(bucket: i64, lease_id: &str) -> String {
    format!("{DUE_PREFIX}{bucket:012}/{lease_id}")
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::internal("encode lease").with_source(e))
}

pub(crate) fn decode_record(raw: &[u8]) -> Result<LeaseRecord> {
    serde_json::from_slice(raw).map_err(|e| Error::storage("corrupt lease record").with_source(e))
}

/// 24 base62 characters, as OpenBao's lease id suffix.
pub(crate) fn lease_suffix() -> String {
    crate::token::base62(24)
}

/// The transaction operations that make a new service token a lease (so it is revoked when it
/// expires). Tokens without an expiry (root, periodic without TTL) and batch tokens get none.
pub(crate) fn token_lease_ops(entry: &TokenEntry) -> Result<Vec<TxnOp>> {
    let Some(expire) = entry.expire_at_ns else {
        return Ok(Vec::new());
    };
    if entry.is_batch() {
        return Ok(Vec::new());
    }
    let lease_id = format!("{}/{}", entry.path.trim_end_matches('/'), entry.salted_id);
    let rec = LeaseRecord {
        lease_id: lease_id.clone(),
        path: entry.path.clone(),
        kind: "auth".into(),
        client_token: String::new(),
        token: entry.salted_id.clone(),
        internal_data: Data::new(),
        issue_time: entry.creation_time.saturating_mul(1_000_000_000),
        expire_time: expire,
        last_renewal_time: None,
        renewable: entry.renewable,
        role: entry.role.clone(),
        quotas: Vec::new(),
        attempts: 0,
        last_error: String::new(),
        revoke_err: String::new(),
        version: 1,
    };
    Ok(vec![
        TxnOp::Put {
            key: format!("{ID_PREFIX}{lease_id}"),
            value: encode(&rec)?,
        },
        TxnOp::Put {
            key: due_key(bucket_of(expire), &lease_id),
            value: Vec::new(),
        },
    ])
}

/// The operations, added to a token's deletion, that queue its leases for revocation now (and
/// drop its own lease record). `storage` is read for the token's lease index.
pub(crate) async fn token_revocation_ops(
    storage: &dyn Backend,
    entry: &TokenEntry,
) -> Result<Vec<TxnOp>> {
    let mut ops = Vec::new();
    if entry.expire_at_ns.is_some() && !entry.is_batch() {
        ops.push(TxnOp::Delete {
            key: format!(
                "{ID_PREFIX}{}/{}",
                entry.path.trim_end_matches('/'),
                entry.salted_id
            ),
        });
    }
    let prefix = format!("{TOKEN_PREFIX}{}/", entry.salted_id);
    let mut page = Page {
        after: None,
        limit: Some(1000),
    };
    loop {
        let batch = storage.scan(&prefix, &page).await?;
        let done = batch.len() < 1000;
        page.after = batch.last().cloned();
        for lease_id in batch {
            // Bucket 0: due at once; the runner sees the token is gone and revokes.
            ops.push(TxnOp::Put {
                key: due_key(0, &lease_id),
                value: Vec::new(),
            });
            ops.push(TxnOp::Delete {
                key: format!("{prefix}{lease_id}"),
            });
        }
        if done {
            return Ok(ops);
        }
    }
}

/// The lease manager of one engine.
pub(crate) struct LeaseManager {
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

/// Lease figures for metrics, from [`Strongroom::lease_stats`].
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
    pub(crate) fn new(config: LeaseConfig) -> LeaseManager {
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

async fn read_count(storage: &dyn Backend, name: &str) -> Result<(Option<Vec<u8>>, u64)> {
    let raw = storage.get(&format!("{COUNT_PREFIX}{name}")).await?;
    let n = raw
        .as_deref()
        .and_then(|r| std::str::from_utf8(r).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((raw, n))
}

fn quota_exceeded(q: &Quota) -> Error {
    Error::new(
        ErrorCode::QuotaExceeded,
        format!(
            "lease count quota exceeded: quota `{}` allows {} leases",
            q.name, q.max_leases
        ),
    )
}

/// The role a lease was issued for: what the engine put under `role` in its internal data.
fn role_of(internal: &Data) -> String {
    internal
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A new secret lease, ready to be stored.
pub(crate) struct NewLease {
    pub path: String,
    pub client_token: String,
    pub info: LeaseInfo,
    pub limits: TtlLimits,
    /// Cap the expiry here (a batch token's leases die with it).
    pub cap: Option<i64>,
    /// Further operations (full storage keys) committed with the lease.
    pub extra_ops: Vec<TxnOp>,
}

impl Strongroom {
    fn leases_mgr(&self) -> &LeaseManager {
        &self.inner.leases
    }

    /// The mount path a request path (or lease id) belongs to, for metrics labels: the mount
    /// serving it, else its first segment (`sys/`; `auth/<name>/` for auth paths).
    ///
    /// ```
    /// # tokio_test_block_on(async {
    /// let sr = strongroom::Strongroom::open(strongroom::Config::dev()).await?;
    /// assert_eq!(sr.mount_label("secret/data/app"), "secret/");
    /// assert_eq!(sr.mount_label("sys/health"), "sys/");
    /// # Ok::<(), strongroom::Error>(()) });
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    /// # }
    /// ```
    pub fn mount_label(&self, path: &str) -> String {
        if let Some(m) = self
            .router()
            .ok()
            .and_then(|r| r.route(path).map(|(m, _)| m))
        {
            return m.entry.path.clone();
        }
        let segments = if path.starts_with("auth/") { 2 } else { 1 };
        let mut end = 0;
        for _ in 0..segments {
            match path.get(end..).and_then(|rest| rest.find('/')) {
                Some(i) => end += i + 1,
                None => return path.to_string(),
            }
        }
        path.get(..end).unwrap_or(path).to_string()
    }

    /// The path of the mount serving `path` (`secret/`, `auth/token/`, `sys/`), or `None` when
    /// no mount serves it or the engine is sealed. Unlike [`Strongroom::mount_label`] it never
    /// makes a name up from the request, so a caller can label metrics with it without letting
    /// clients invent label values.
    ///
    /// ```
    /// # tokio_test_block_on(async {
    /// let sr = strongroom::Strongroom::open(strongroom::Config::dev()).await?;
    /// assert_eq!(sr.mount_of("secret/data/app").as_deref(), Some("secret/"));
    /// assert_eq!(sr.mount_of("sys/health").as_deref(), Some("sys/"));
    /// assert_eq!(sr.mount_of("auth/token/create").as_deref(), Some("auth/token/"));
    /// assert_eq!(sr.mount_of("no-such-mount/x"), None);
    /// assert_eq!(sr.mount_of("auth/no-such-method/login"), None);
    /// # Ok::<(), strongroom::Error>(()) });
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    /// # }
    /// ```
    pub fn mount_of(&self, path: &str) -> Option<String> {
        // The built-in mounts are always there (the token store is not in the auth table's
        // router).
        for fixed in ["sys/", "auth/token/"] {
            if path.starts_with(fixed) || Some(path) == fixed.strip_suffix('/') {
                return Some(fixed.to_string());
            }
        }
        if path.starts_with("auth/") {
            return self
                .route_auth(path)
                .ok()
                .flatten()
                .map(|(m, _)| format!("auth/{}", m.entry.path));
        }
        let router = self.router().ok()?;
        router.route(path).map(|(m, _)| m.entry.path.clone())
    }

    fn tally_leases(&self, path: &str, created: u64, revoked: u64) {
        let mount = self.mount_label(path);
        if let Ok(mut t) = self.leases_mgr().tallies.lock() {
            let e = t.entry(mount).or_default();
            e.created = e.created.saturating_add(created);
            e.revoked = e.revoked.saturating_add(revoked);
        }
    }

    fn tally_created(&self, stored: &[(String, u64, Vec<String>)]) {
        for (id, _, _) in stored {
            self.tally_leases(id, 1, 0);
        }
    }

    /// A lease was revoked: count it and tell subscribers.
    fn lease_revoked(&self, lease_id: String) {
        self.tally_leases(&lease_id, 0, 1);
        self.leases_mgr().emit(LeaseEvent::Revoked { lease_id });
    }

    /// Lease figures for metrics: leases created and revoked by this process per mount,
    /// revocations running now, and irrevocable leases in storage per mount (read from
    /// storage, so this fails while sealed).
    ///
    /// ```
    /// # tokio_test_block_on(async {
    /// let sr = strongroom::Strongroom::open(strongroom::Config::dev()).await?;
    /// let stats = sr.lease_stats().await?;
    /// assert_eq!(stats.revocations_in_flight, 0);
    /// # Ok::<(), strongroom::Error>(()) });
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    /// # }
    /// ```
    pub async fn lease_stats(&self) -> Result<LeaseStats> {
        let mgr = self.leases_mgr();
        let by_mount = mgr
            .tallies
            .lock()
            .or_else(crate::util::unpoison)?
            .iter()
            .map(|(mount, t)| MountLeaseStats {
                mount: mount.clone(),
                created: t.created,
                revoked: t.revoked,
            })
            .collect();
        let revocations_in_flight = mgr.in_flight.lock().or_else(crate::util::unpoison)?.len();
        // Keys only (a lease id starts with its request path): no record is read, so a
        // scrape stays cheap however many leases gave up.
        let mut irrevocable: BTreeMap<String, u64> = BTreeMap::new();
        let mut page = Page {
            after: None,
            limit: Some(1000),
        };
        loop {
            let batch = self.inner.storage.scan(IRREVOCABLE_PREFIX, &page).await?;
            let done = batch.len() < 1000;
            for id in &batch {
                *irrevocable.entry(self.mount_label(id)).or_default() += 1;
            }
            page.after = batch.into_iter().last();
            if done {
                break;
            }
        }
        Ok(LeaseStats {
            by_mount,
            revocations_in_flight,
            irrevocable_by_mount: irrevocable.into_iter().collect(),
        })
    }

    /// The pipeline's lease step: record the lease an engine returned and fill in the
    /// response's lease fields. If the lease cannot be recorded, the secret is revoked at once
    /// so no credential outlives the failed call.
    pub(crate) async fn register_secret_lease(
        &self,
        req: &Request,
        caller: &TokenEntry,
        mount: &crate::router::Mounted,
        rel_path: &str,
        mut resp: Response,
    ) -> Result<Response> {
        let Some(info) = resp.lease.take() else {
            return Ok(resp);
        };
        let limits = TtlLimits {
            default_ttl: mount.ctx.default_lease_ttl,
            max_ttl: mount.entry.max_ttl(),
        };
        let (client_token, cap) = if caller.is_batch() {
            (
                caller.parent.clone().unwrap_or_default(),
                caller.expire_at_ns,
            )
        } else {
            (caller.salted_id.clone(), None)
        };
        let extra_ops = mount.ctx.storage.map_ops(info.on_commit.clone())?;
        let new = NewLease {
            path: req.path.clone(),
            client_token,
            info: info.clone(),
            limits,
            cap,
            extra_ops,
        };
        match self.store_leases(vec![new]).await {
            Ok(mut stored) => {
                let Some((id, ttl_secs, warnings)) = stored.pop() else {
                    return Err(Error::internal("lease not stored"));
                };
                resp.lease_id = id;
                resp.lease_duration = ttl_secs;
                resp.renewable = info.renewable;
                resp.warnings.extend(warnings);
                Ok(resp)
            }
            Err(e) => {
                // Never an orphan: undo what the engine created.
                let now = self.inner.clock.now();
                let leased = crate::secrets::LeasedSecret {
                    lease_id: "",
                    path: rel_path,
                    internal: &info.internal,
                    issue_time: now.into(),
                    expire_time: now.into(),
                };
                if let Err(undo) = mount.engine.revoke(&mount.ctx, &leased).await {
                    tracing::error!(
                        path = %req.path,
                        error = %undo.message(),
                        "could not revoke a secret whose lease failed to register"
                    );
                }
                Err(e)
            }
        }
    }

    /// Store new secret leases in one transaction (counters included). Returns, per lease,
    /// its id, TTL in seconds and warnings.
    pub(crate) async fn store_leases(
        &self,
        leases: Vec<NewLease>,
    ) -> Result<Vec<(String, u64, Vec<String>)>> {
        let storage = self.inner.storage.as_ref();
        let now = self.inner.clock.now();
        let quotas = self.leases_mgr().quotas(storage).await?;
        let mut ops = Vec::with_capacity(leases.len() * 3 + 4);
        let mut out = Vec::with_capacity(leases.len());
        let mut increments: BTreeMap<String, u64> = BTreeMap::new();
        for l in leases {
            let (ttl, warnings) = ttl::calculate(
                l.limits,
                TtlRequest {
                    backend_ttl: l.info.ttl,
                    backend_max: l.info.max_ttl,
                    ..TtlRequest::default()
                },
                now,
                now,
            )?;
            let mut expire = nanos(now).saturating_add(dur_nanos(ttl));
            if let Some(cap) = l.cap {
                expire = expire.min(cap);
            }
            let lease_id = format!("{}/{}", l.path.trim_end_matches('/'), lease_suffix());
            let role = role_of(&l.info.internal);
            let counted: Vec<String> = quotas
                .iter()
                .filter(|q| q.applies(&l.path, &role))
                .map(|q| q.name.clone())
                .collect();
            for q in &counted {
                *increments.entry(q.clone()).or_default() += 1;
            }
            let rec = LeaseRecord {
                lease_id: lease_id.clone(),
                path: l.path,
                kind: "secret".into(),
                client_token: l.client_token,
                token: String::new(),
                internal_data: l.info.internal,
                issue_time: nanos(now),
                expire_time: expire,
                last_renewal_time: None,
                renewable: l.info.renewable,
                role,
                quotas: counted,
                attempts: 0,
                last_error: String::new(),
                revoke_err: String::new(),
                version: 1,
            };
            // No existence check: 24 random base62 characters (143 bits) do not collide, and
            // a check would cost a read per lease.
            ops.push(TxnOp::Put {
                key: format!("{ID_PREFIX}{lease_id}"),
                value: encode(&rec)?,
            });
            ops.push(TxnOp::Put {
                key: due_key(bucket_of(expire), &lease_id),
                value: Vec::new(),
            });
            if !rec.client_token.is_empty() {
                ops.push(TxnOp::Put {
                    key: format!("{TOKEN_PREFIX}{}/{lease_id}", rec.client_token),
                    value: Vec::new(),
                });
            }
            ops.extend(l.extra_ops);
            let secs = u64::try_from((expire - nanos(now)).max(0) / 1_000_000_000).unwrap_or(0);
            out.push((lease_id, secs, warnings));
        }
        if increments.is_empty() {
            storage.transaction(ops).await?;
            self.tally_created(&out);
            return Ok(out);
        }
        // Quota counters: compare-and-set, retried when another writer got there first.
        for _ in 0..16 {
            let mut all = ops.clone();
            for (name, add) in &increments {
                let (raw, n) = read_count(storage, name).await?;
                if let Some(q) = quotas.iter().find(|q| &q.name == name) {
                    if n.saturating_add(*add) > q.max_leases {
                        return Err(quota_exceeded(q));
                    }
                }
                all.push(TxnOp::Check {
                    key: format!("{COUNT_PREFIX}{name}"),
                    expected: raw,
                });
                all.push(TxnOp::Put {
                    key: format!("{COUNT_PREFIX}{name}"),
                    value: (n + add).to_string().into_bytes(),
                });
            }
            match storage.transaction(all).await {
                Ok(()) => {
                    self.tally_created(&out);
                    return Ok(out);
                }
                Err(e) if e.code() == ErrorCode::Conflict => {
                    // Our counter read may be stale (another process): re-read from storage.
                    self.sync_store().await?;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            "too many concurrent lease registrations; try again",
        ))
    }

    pub(crate) async fn lease_record(&self, lease_id: &str) -> Result<Option<LeaseRecord>> {
        if lease_id.is_empty() || lease_id.ends_with('/') {
            return Ok(None);
        }
        match self
            .inner
            .storage
            .get(&format!("{ID_PREFIX}{lease_id}"))
            .await
        {
            Ok(Some(raw)) => decode_record(&raw).map(Some),
            Ok(None) => Ok(None),
            // A lease id that is not a valid storage key is simply not a lease.
            Err(e) if e.code() == ErrorCode::InvalidInput => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The current expiry of a lease: an auth lease follows its token (renewals of the token
    /// happen in the token store).
    async fn effective_expiry(&self, rec: &LeaseRecord) -> Result<Option<i64>> {
        if rec.is_auth() {
            let t = self
                .inner
                .tokens
                .get_salted(self.inner.storage.as_ref(), &rec.token)
                .await?;
            return Ok(t.and_then(|t| t.expire_at_ns));
        }
        Ok(Some(rec.expire_time))
    }

    /// `sys/leases/lookup`.
    pub(crate) async fn lease_lookup(&self, lease_id: &str) -> Result<Data> {
        let rec = self
            .lease_record(lease_id)
            .await?
            .ok_or_else(|| Error::invalid_input("invalid lease"))?;
        let now = nanos(self.inner.clock.now());
        let expire = self.effective_expiry(&rec).await?;
        // Rounded to the nearest second, as OpenBao does.
        // Saturating: an expiry saturated at i64::MAX (Go's longest TTL) must not overflow here.
        let ttl = expire.map_or(0, |e| {
            e.saturating_sub(now).max(0).saturating_add(500_000_000) / 1_000_000_000
        });
        let mut d = crate::data(json!({
            "id": rec.lease_id,
            "issue_time": crate::clock::rfc3339(from_nanos(rec.issue_time)),
            "expire_time": expire.map(|e| crate::clock::rfc3339(from_nanos(e))),
            "last_renewal": rec.last_renewal_time.map(|t| crate::clock::rfc3339(from_nanos(t))),
            "ttl": ttl,
            "renewable": rec.renewable && !rec.irrevocable(),
            "path": rec.path,
        }));
        if rec.irrevocable() {
            d.insert("revoke_error".into(), Value::String(rec.revoke_err.clone()));
        }
        Ok(d)
    }

    /// `sys/leases/renew`: ask the engine, then apply OpenBao's TTL rules with the max counted
    /// from the original issue time.
    pub(crate) async fn lease_renew(
        &self,
        lease_id: &str,
        increment: Duration,
    ) -> Result<Response> {
        let Some(mut rec) = self.lease_record(lease_id).await? else {
            return Err(Error::invalid_input("lease not found"));
        };
        if rec.is_auth() {
            return Err(Error::invalid_input(
                "tokens cannot be renewed through this endpoint",
            ));
        }
        let now = self.inner.clock.now();
        if rec.irrevocable() {
            return Err(Error::invalid_input(
                "lease is expired and has failed previous revocation attempts",
            ));
        }
        if rec.expire_time <= nanos(now) {
            return Err(Error::invalid_input("lease expired"));
        }
        if !rec.renewable {
            return Err(Error::invalid_input("lease is not renewable"));
        }
        let router = self.router()?;
        let (mount, rel) = router
            .route(&rec.path)
            .ok_or_else(|| Error::invalid_input("lease not found"))?;
        let leased = crate::secrets::LeasedSecret {
            lease_id: &rec.lease_id,
            path: rel,
            internal: &rec.internal_data,
            issue_time: from_nanos(rec.issue_time).into(),
            expire_time: from_nanos(rec.expire_time).into(),
        };
        let bounds = mount.engine.renew(&mount.ctx, &leased, increment).await?;
        let limits = TtlLimits {
            default_ttl: mount.ctx.default_lease_ttl,
            max_ttl: mount.entry.max_ttl(),
        };
        let (ttl, warnings) = ttl::calculate(
            limits,
            TtlRequest {
                increment,
                backend_ttl: bounds.ttl,
                backend_max: bounds.max_ttl,
                ..TtlRequest::default()
            },
            from_nanos(rec.issue_time),
            now,
        )?;
        let old_bucket = bucket_of(rec.expire_time);
        rec.expire_time = nanos(now).saturating_add(dur_nanos(ttl));
        rec.last_renewal_time = Some(nanos(now));
        if !bounds.internal.is_empty() {
            rec.internal_data = bounds.internal;
        }
        let mut ops = vec![TxnOp::Put {
            key: format!("{ID_PREFIX}{}", rec.lease_id),
            value: encode(&rec)?,
        }];
        let new_bucket = bucket_of(rec.expire_time);
        if new_bucket != old_bucket {
            ops.push(TxnOp::Delete {
                key: due_key(old_bucket, &rec.lease_id),
            });
            ops.push(TxnOp::Put {
                key: due_key(new_bucket, &rec.lease_id),
                value: Vec::new(),
            });
        }
        self.inner.storage.transaction(ops).await?;
        self.leases_mgr().emit(LeaseEvent::Renewed {
            lease_id: rec.lease_id.clone(),
            ttl,
        });
        Ok(Response {
            lease_id: rec.lease_id,
            renewable: true,
            lease_duration: ttl.as_secs(),
            warnings,
            ..Response::default()
        })
    }

    /// Revoke a lease now (`sys/leases/revoke` with `sync`): the engine first, then the
    /// records. With `force`, engine errors are ignored and the records deleted anyway.
    /// Unknown ids succeed (OpenBao answers 204).
    pub(crate) async fn lease_revoke_now(&self, lease_id: &str, force: bool) -> Result<()> {
        let Some(rec) = self.lease_record(lease_id).await? else {
            return Ok(());
        };
        match self.revoke_in_engine(&rec).await {
            Ok(()) => {}
            Err(e) if force => {
                tracing::warn!(lease_id, error = %e.message(), "revoke-force: ignoring revocation error");
            }
            Err(e) => {
                return Err(Error::invalid_input(format!(
                    "failed to revoke entry: resp: (*logical.Response)(nil) err: {}",
                    e.message()
                )));
            }
        }
        self.delete_lease(&rec, None).await?;
        self.lease_revoked(rec.lease_id.clone());
        Ok(())
    }

    /// Queue a lease for revocation by the runner (`sync: false`): due now.
    pub(crate) async fn lease_expire_now(&self, lease_id: &str) -> Result<()> {
        let Some(mut rec) = self.lease_record(lease_id).await? else {
            return Ok(());
        };
        let now = nanos(self.inner.clock.now());
        let old = bucket_of(rec.expire_time);
        rec.expire_time = rec.expire_time.min(now);
        let mut ops = vec![TxnOp::Put {
            key: format!("{ID_PREFIX}{}", rec.lease_id),
            value: encode(&rec)?,
        }];
        if !rec.irrevocable() {
            ops.push(TxnOp::Delete {
                key: due_key(old, &rec.lease_id),
            });
            ops.push(TxnOp::Put {
                key: due_key(0, &rec.lease_id),
                value: Vec::new(),
            });
        }
        self.inner.storage.transaction(ops).await
    }

    /// Every lease id under `prefix` (a path prefix such as `database/creds/`), in order.
    pub(crate) async fn lease_ids_under(&self, prefix: &str) -> Result<Vec<String>> {
        let full = format!("{ID_PREFIX}{prefix}");
        let mut out = Vec::new();
        let mut page = Page {
            after: None,
            limit: Some(1000),
        };
        loop {
            let batch = self.inner.storage.scan(&full, &page).await?;
            let done = batch.len() < 1000;
            page.after = batch.last().cloned();
            out.extend(batch.into_iter().map(|k| format!("{prefix}{k}")));
            if done {
                return Ok(out);
            }
        }
    }

    /// `revoke-prefix` / `revoke-force`: revoke every lease under `prefix` now.
    pub(crate) async fn lease_revoke_prefix(&self, prefix: &str, force: bool) -> Result<()> {
        // As OpenBao: a prefix that is itself a lease id revokes that lease; otherwise it is a
        // path prefix ending in `/`.
        if !prefix.ends_with('/') && self.lease_record(prefix).await?.is_some() {
            return self.lease_revoke_now(prefix, force).await;
        }
        let prefix = if prefix.ends_with('/') || prefix.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        // Streamed, on the runner's pool, deletions batched: see `prefix`.
        self.revoke_leases_under(&prefix, force).await
    }

    /// Call the engine (or the token store) to destroy what the lease stands for.
    async fn revoke_in_engine(&self, rec: &LeaseRecord) -> Result<()> {
        if rec.is_auth() {
            return self.token_revoke_tree(&rec.token).await;
        }
        let router = self.router()?;
        let Some((mount, rel)) = router.route(&rec.path) else {
            return Err(Error::unsupported_path(&rec.path));
        };
        let leased = crate::secrets::LeasedSecret {
            lease_id: &rec.lease_id,
            path: rel,
            internal: &rec.internal_data,
            issue_time: from_nanos(rec.issue_time).into(),
            expire_time: from_nanos(rec.expire_time).into(),
        };
        let timeout = self.leases_mgr().config.revoke_timeout;
        match tokio::time::timeout(timeout, mount.engine.revoke(&mount.ctx, &leased)).await {
            Ok(r) => r,
            Err(_) => Err(Error::unavailable(format!(
                "revocation timed out after {}",
                ttl::human(timeout)
            ))),
        }
    }

    /// Delete a revoked lease: record, index entries, counters (one transaction).
    async fn delete_lease(&self, rec: &LeaseRecord, due: Option<&str>) -> Result<()> {
        let storage = self.inner.storage.as_ref();
        let ops = deletion_ops(rec, due);
        // Only quotas that still exist are counted down (a deleted quota's name may linger in
        // older records).
        let live = self.leases_mgr().quotas(storage).await?;
        let counted: Vec<&String> = rec
            .quotas
            .iter()
            .filter(|q| live.iter().any(|l| &&l.name == q))
            .collect();
        if counted.is_empty() {
            return storage.transaction(ops).await;
        }
        for _ in 0..16 {
            let mut all = ops.clone();
            for q in &counted {
                let (raw, n) = read_count(storage, q).await?;
                all.push(TxnOp::Check {
                    key: format!("{COUNT_PREFIX}{q}"),
                    expected: raw,
                });
                all.push(TxnOp::Put {
                    key: format!("{COUNT_PREFIX}{q}"),
                    value: n.saturating_sub(1).to_string().into_bytes(),
                });
            }
            // The record must still be there, or another process already counted it down.
            all.push(TxnOp::Check {
                key: format!("{ID_PREFIX}{}", rec.lease_id),
                expected: Some(encode(rec)?),
            });
            match storage.transaction(all).await {
                Ok(()) => return Ok(()),
                Err(e) if e.code() == ErrorCode::Conflict => {
                    self.sync_store().await?;
                    match self.lease_record(&rec.lease_id).await? {
                        None => return Ok(()),
                        Some(fresh) if fresh.expire_time != rec.expire_time => {
                            // Changed under us: count it down as it now stands.
                            return Box::pin(self.delete_lease(&fresh, due)).await;
                        }
                        Some(_) => continue,
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict("lease counter kept changing; try again"))
    }

    /// Irrevocable leases, for `sys/leases?type=irrevocable`.
    pub(crate) async fn irrevocable_leases(
        &self,
        limit: Option<usize>,
    ) -> Result<Vec<LeaseRecord>> {
        let mut out = Vec::new();
        let mut page = Page {
            after: None,
            limit: Some(1000),
        };
        loop {
            let batch = self.inner.storage.scan(IRREVOCABLE_PREFIX, &page).await?;
            let done = batch.len() < 1000;
            page.after = batch.last().cloned();
            for id in batch {
                if let Some(r) = self.lease_record(&id).await? {
                    out.push(r);
                    if limit.is_some_and(|l| out.len() >= l) {
                        return Ok(out);
                    }
                }
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// The current count of a quota.
    pub(crate) async fn quota_count(&self, name: &str) -> Result<u64> {
        Ok(read_count(self.inner.storage.as_ref(), name).await?.1)
    }

    /// Create or replace a quota; its counter starts at the number of existing leases it covers.
    pub(crate) async fn quota_put(&self, q: Quota) -> Result<()> {
        let mut n = 0u64;
        let mut ops = Vec::new();
        for id in self.lease_ids_under(&q.path).await? {
            let Some(mut rec) = self.lease_record(&id).await? else {
                continue;
            };
            // Count what the quota covers now; a changed quota may also stop covering a lease.
            let applies = !rec.is_auth() && q.applies(&rec.path, &rec.role);
            let counted = rec.quotas.contains(&q.name);
            if applies {
                n += 1;
            }
            if applies == counted {
                continue;
            }
            if applies {
                rec.quotas.push(q.name.clone());
            } else {
                rec.quotas.retain(|name| name != &q.name);
            }
            ops.push(TxnOp::Put {
                key: format!("{ID_PREFIX}{id}"),
                value: encode(&rec)?,
            });
        }
        ops.push(TxnOp::Put {
            key: format!("{QUOTA_PREFIX}{}", q.name),
            value: encode(&q)?,
        });
        ops.push(TxnOp::Put {
            key: format!("{COUNT_PREFIX}{}", q.name),
            value: n.to_string().into_bytes(),
        });
        self.inner.storage.transaction(ops).await?;
        self.leases_mgr().clear()
    }

    /// Delete a quota (leases stop counting against it).
    pub(crate) async fn quota_delete(&self, name: &str) -> Result<()> {
        self.inner
            .storage
            .transaction(vec![
                TxnOp::Delete {
                    key: format!("{QUOTA_PREFIX}{name}"),
                },
                TxnOp::Delete {
                    key: format!("{COUNT_PREFIX}{name}"),
                },
            ])
            .await?;
        self.leases_mgr().clear()
    }

    /// Take or keep the expiry runner's leader lock. The in-memory store has one process.
    /// Taking it makes this process the active node ([`crate::ha`]).
    pub(crate) async fn hold_leadership(&self) -> Result<bool> {
        let held = match self.check_leader_lock().await {
            Ok(held) => held,
            Err(e) => {
                // Unknown is not held: another process may take it meanwhile.
                self.inner.leadership.lost();
                return Err(e);
            }
        };
        self.inner
            .leadership
            .observe(
                held,
                self.inner.storage.as_ref(),
                &self.leases_mgr().holder,
                self.inner.ha.as_ref(),
                self.inner.clock.now(),
            )
            .await?;
        Ok(held)
    }

    /// Ask the store whether this process holds (or can take) the leader lock.
    async fn check_leader_lock(&self) -> Result<bool> {
        let storage = self.inner.storage.as_ref();
        if storage.kind() == "inmem" {
            return Ok(true);
        }
        // PostgreSQL: a session advisory lock, released by the server when we die.
        if let Some(held) = storage.hold_lock("expiry").await? {
            return Ok(held);
        }
        let mgr = self.leases_mgr();
        let now_ms = nanos(self.inner.clock.now()) / 1_000_000;
        let current = storage.get(LEADER_KEY).await?;
        let (holder, until) = match current.as_deref().map(serde_json::from_slice::<Value>) {
            Some(Ok(v)) => (
                v.get("holder")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                v.get("until_ms").and_then(Value::as_i64).unwrap_or(0),
            ),
            _ => (String::new(), 0),
        };
        if holder != mgr.holder && until > now_ms {
            return Ok(false);
        }
        let ttl_ms = i64::try_from(mgr.config.leader_ttl.as_millis()).unwrap_or(i64::MAX);
        let mine =
            encode(&json!({"holder": mgr.holder, "until_ms": now_ms.saturating_add(ttl_ms)}))?;
        match storage
            .transaction(vec![
                TxnOp::Check {
                    key: LEADER_KEY.into(),
                    expected: current,
                },
                TxnOp::Put {
                    key: LEADER_KEY.into(),
                    value: mine,
                },
            ])
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.code() == ErrorCode::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Give up the leader lock (on seal and when the engine is dropped cleanly), so another
    /// process need not wait for it to lapse.
    pub(crate) async fn release_leadership(&self) -> Result<()> {
        self.inner.leadership.lost();
        let storage = self.inner.storage.as_ref();
        if storage.kind() == "inmem" || self.inner.barrier.is_sealed() {
            return Ok(());
        }
        storage.release_lock("expiry").await?;
        let Some(current) = storage.get(LEADER_KEY).await? else {
            return Ok(());
        };
        let ours = serde_json::from_slice::<Value>(&current)
            .ok()
            .and_then(|v| v.get("holder").and_then(Value::as_str).map(str::to_string))
            .is_some_and(|h| h == self.leases_mgr().holder);
        if !ours {
            return Ok(());
        }
        let _ = storage
            .transaction(vec![
                TxnOp::Check {
                    key: LEADER_KEY.into(),
                    expected: Some(current),
                },
                TxnOp::Delete {
                    key: LEADER_KEY.into(),
                },
            ])
            .await;
        Ok(())
    }

    /// Run the expiry runner once: if this process holds (or can take) the leader lock,
    /// revoke every lease that is due now, on a bounded pool of workers. The background task
    /// calls this every tick; with [`LeaseConfig::background`] off (tests with a virtual
    /// clock), call it yourself.
    ///
    /// ```
    /// # tokio_test_block_on(async {
    /// use strongroom::{Config, Strongroom};
    /// let sr = Strongroom::open(Config::dev()).await?;
    /// let report = sr.run_expiry().await?;
    /// assert!(report.leader);
    /// assert_eq!(report.revoked, 0);
    /// # Ok::<(), strongroom::Error>(()) }).unwrap();
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) }
    /// ```
    pub async fn run_expiry(&self) -> Result<ExpiryReport> {
        let mut report = ExpiryReport::default();
        if self.inner.barrier.is_sealed() {
            return Ok(report);
        }
        let _running = self.leases_mgr().running.lock().await;
        self.sync_store().await?;
        if !self.hold_leadership().await? {
            return Ok(report);
        }
        report.leader = true;
        // Keep the lock while this run lasts (a run can outlast the lock's TTL); stop handing
        // out work if it is lost.
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let heartbeat = {
            let sr = self.clone();
            let lost = lost.clone();
            let every = (self.leases_mgr().config.leader_ttl / 3).max(Duration::from_millis(10));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if !matches!(sr.hold_leadership().await, Ok(true)) {
                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
            })
        };
        let result = self.revoke_due(&mut report, &lost).await;
        if !lost.load(std::sync::atomic::Ordering::SeqCst) {
            self.recover_engines().await;
        }
        heartbeat.abort();
        result.map(|()| report)
    }

    /// Each mount's crash recovery (a database credential created but never leased is
    /// dropped), on every run of the leader so a crash is repaired soon after a restart.
    async fn recover_engines(&self) {
        let Ok(router) = self.router() else {
            return;
        };
        for m in router.mounted() {
            if let Err(e) = m.engine.recover(&m.ctx).await {
                tracing::warn!(mount = %m.entry.path, error = %e.message(), "crash recovery failed; retried on the next run");
            }
        }
    }

    async fn revoke_due(
        &self,
        report: &mut ExpiryReport,
        lost: &std::sync::atomic::AtomicBool,
    ) -> Result<()> {
        let now = nanos(self.inner.clock.now());
        let now_bucket = now.div_euclid(1_000_000_000);
        self.warn_expiring(now_bucket).await?;
        let workers = self.leases_mgr().config.workers.max(1);
        let sem = Arc::new(tokio::sync::Semaphore::new(workers));
        let mut jobs: tokio::task::JoinSet<Result<Outcome>> = tokio::task::JoinSet::new();
        let mut after: Option<String> = None;
        let mut tally = Tally::default();
        loop {
            let page = self
                .inner
                .storage
                .scan(
                    DUE_PREFIX,
                    &Page {
                        after: after.clone(),
                        limit: Some(DUE_PAGE),
                    },
                )
                .await?;
            let done = page.len() < DUE_PAGE;
            after = page.last().cloned();
            let mut past_now = false;
            for rel in page {
                let Some((bucket, lease_id)) = rel.split_once('/') else {
                    continue;
                };
                let Ok(bucket) = bucket.parse::<i64>() else {
                    continue;
                };
                if bucket > now_bucket || lost.load(std::sync::atomic::Ordering::SeqCst) {
                    past_now = true;
                    break;
                }
                let key = format!("{DUE_PREFIX}{rel}");
                {
                    let mut inflight = self
                        .leases_mgr()
                        .in_flight
                        .lock()
                        .or_else(crate::util::unpoison)?;
                    if !inflight.insert(key.clone()) {
                        continue;
                    }
                }
                let permit = sem
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::internal("worker pool closed"))?;
                let sr = self.clone();
                let lease_id = lease_id.to_string();
                jobs.spawn(async move {
                    let r = sr.process_due(&key, &lease_id, now).await;
                    if let Ok(mut f) = sr.leases_mgr().in_flight.lock() {
                        f.remove(&key);
                    }
                    drop(permit);
                    r
                });
                while let Some(done) = jobs.try_join_next() {
                    tally.add(self, report, done);
                }
                tally.flush_if_full(self, report).await;
            }
            if done || past_now {
                break;
            }
        }
        while let Some(done) = jobs.join_next().await {
            tally.add(self, report, done);
            tally.flush_if_full(self, report).await;
        }
        tally.flush(self, report).await;
        Ok(())
    }

    /// Send `ExpiringSoon` for leases in buckets up to `now + window` not yet warned about
    /// (only when someone listens).
    async fn warn_expiring(&self, now_bucket: i64) -> Result<()> {
        let mgr = self.leases_mgr();
        if mgr.events.receiver_count() == 0 {
            return Ok(());
        }
        let window = i64::try_from(mgr.config.expiring_soon.as_secs()).unwrap_or(0);
        let until = now_bucket.saturating_add(window);
        let from = (*mgr.warned_until.lock().or_else(crate::util::unpoison)?).max(now_bucket);
        if from >= until {
            return Ok(());
        }
        let mut after = Some(format!("{from:012}/\u{10FFFF}"));
        'pages: loop {
            let page = self
                .inner
                .storage
                .scan(
                    DUE_PREFIX,
                    &Page {
                        after: after.clone(),
                        limit: Some(DUE_PAGE),
                    },
                )
                .await?;
            let done = page.len() < DUE_PAGE;
            after = page.last().cloned();
            for rel in page {
                let Some((bucket, lease_id)) = rel.split_once('/') else {
                    continue;
                };
                let Ok(b) = bucket.parse::<i64>() else {
                    continue;
                };
                if b > until {
                    break 'pages;
                }
                mgr.emit(LeaseEvent::ExpiringSoon {
                    lease_id: lease_id.to_string(),
                    expire_time: crate::clock::rfc3339(from_nanos(b.saturating_mul(1_000_000_000))),
                });
            }
            if done {
                break;
            }
        }
        *mgr.warned_until.lock().or_else(crate::util::unpoison)? = until;
        Ok(())
    }

    /// One due index entry: revoke its lease, reschedule it, or drop a stale entry.
    async fn process_due(&self, due: &str, lease_id: &str, now: i64) -> Result<Outcome> {
        let storage = self.inner.storage.as_ref();
        let Some(mut rec) = self.lease_record(lease_id).await? else {
            storage.delete(due).await?;
            return Ok(Outcome::Rescheduled);
        };
        if rec.irrevocable() {
            // As OpenBao: an irrevocable lease is tried again once a day; it goes when its
            // backend has recovered, and stays (with its error) when not.
            return match self.revoke_in_engine(&rec).await {
                Ok(()) => Ok(Outcome::Revoked(
                    rec.lease_id.clone(),
                    Some(deletion_ops(&rec, Some(due))),
                )),
                Err(e) => {
                    tracing::warn!(lease_id, error = %e.message(), "irrevocable lease: daily retry failed");
                    let next = bucket_of(now.saturating_add(dur_nanos(IRREVOCABLE_RETRY)));
                    storage
                        .transaction(vec![
                            TxnOp::Delete { key: due.into() },
                            TxnOp::Put {
                                key: due_key(next, lease_id),
                                value: Vec::new(),
                            },
                        ])
                        .await?;
                    Ok(Outcome::Rescheduled)
                }
            };
        }
        let expire = if rec.is_auth() {
            self.effective_expiry(&rec).await?
        } else {
            Some(rec.expire_time)
        };
        let token_gone =
            !rec.client_token.is_empty() && !self.token_alive(&rec.client_token).await?;
        let due_bucket = due
            .strip_prefix(DUE_PREFIX)
            .and_then(|r| r.split_once('/'))
            .and_then(|(b, _)| b.parse::<i64>().ok())
            .unwrap_or(0);
        // Not due after all (renewed): move the index entry. A due entry placed by a retry
        // (its bucket after the expiry) is honoured.
        if let Some(e) = expire {
            let retry_entry = due_bucket > 0 && due_bucket > bucket_of(rec.expire_time);
            if e > now && !token_gone && !retry_entry && rec.attempts == 0 {
                let to = due_key(bucket_of(e), lease_id);
                if to != due {
                    storage
                        .transaction(vec![
                            TxnOp::Delete { key: due.into() },
                            TxnOp::Put {
                                key: to,
                                value: Vec::new(),
                            },
                        ])
                        .await?;
                }
                return Ok(Outcome::Rescheduled);
            }
        } else if rec.is_auth() {
            // The token is gone: its lease record is a leftover.
            self.delete_lease(&rec, Some(due)).await?;
            return Ok(Outcome::Rescheduled);
        }
        match self.revoke_in_engine(&rec).await {
            Ok(()) if rec.quotas.is_empty() => {
                // The runner deletes revoked leases in batches (a crash before that commit
                // means the next run revokes them again, which engines allow).
                Ok(Outcome::Revoked(
                    rec.lease_id.clone(),
                    Some(deletion_ops(&rec, Some(due))),
                ))
            }
            Ok(()) => {
                self.delete_lease(&rec, Some(due)).await?;
                Ok(Outcome::Revoked(rec.lease_id.clone(), None))
            }
            Err(e) => {
                let cfg = &self.leases_mgr().config;
                rec.attempts = rec.attempts.saturating_add(1);
                rec.last_error = truncate(e.message(), MAX_REVOKE_ERR);
                let unrecoverable = matches!(
                    e.code(),
                    ErrorCode::InvalidInput
                        | ErrorCode::UnsupportedOperation
                        | ErrorCode::UnsupportedPath
                );
                tracing::warn!(lease_id, attempt = rec.attempts, error = %e.message(), "lease revocation failed");
                if unrecoverable || rec.attempts >= cfg.max_attempts {
                    rec.revoke_err = if unrecoverable {
                        truncate(e.message(), MAX_REVOKE_ERR)
                    } else {
                        truncate(&format!("out of retries: {}", e.message()), MAX_REVOKE_ERR)
                    };
                    storage
                        .transaction(vec![
                            TxnOp::Put {
                                key: format!("{ID_PREFIX}{lease_id}"),
                                value: encode(&rec)?,
                            },
                            TxnOp::Delete { key: due.into() },
                            TxnOp::Put {
                                key: due_key(
                                    bucket_of(now.saturating_add(dur_nanos(IRREVOCABLE_RETRY))),
                                    lease_id,
                                ),
                                value: Vec::new(),
                            },
                            TxnOp::Put {
                                key: format!("{IRREVOCABLE_PREFIX}{lease_id}"),
                                value: Vec::new(),
                            },
                        ])
                        .await?;
                    self.leases_mgr().emit(LeaseEvent::Irrevocable {
                        lease_id: rec.lease_id.clone(),
                        error: rec.revoke_err.clone(),
                    });
                    return Ok(Outcome::Irrevocable);
                }
                let wait = backoff(cfg, rec.attempts);
                let next = bucket_of(nanos(self.inner.clock.now()).saturating_add(dur_nanos(wait)));
                storage
                    .transaction(vec![
                        TxnOp::Put {
                            key: format!("{ID_PREFIX}{lease_id}"),
                            value: encode(&rec)?,
                        },
                        TxnOp::Delete { key: due.into() },
                        TxnOp::Put {
                            key: due_key(next, lease_id),
                            value: Vec::new(),
                        },
                    ])
                    .await?;
                Ok(Outcome::Retried)
            }
        }
    }

    /// Whether a token (salted id) still exists and has not expired.
    async fn token_alive(&self, salted: &str) -> Result<bool> {
        let now = self.inner.clock.now();
        Ok(self
            .inner
            .tokens
            .get_salted(self.inner.storage.as_ref(), salted)
            .await?
            .is_some_and(|t| !t.expired(now)))
    }

    /// Leases that are not irrevocable, cleaned of entries left by a crash: index entries whose
    /// record is gone and token-index entries of revoked leases. Returns what it removed.
    pub(crate) async fn lease_tidy(&self) -> Result<usize> {
        let storage = self.inner.storage.as_ref();
        let mut removed = 0;
        let mut page = Page {
            after: None,
            limit: Some(1000),
        };
        loop {
            let batch = storage.scan(TOKEN_PREFIX, &page).await?;
            let done = batch.len() < 1000;
            page.after = batch.last().cloned();
            for rel in batch {
                let Some((_, lease_id)) = rel.split_once('/') else {
                    continue;
                };
                if self.lease_record(lease_id).await?.is_none() {
                    storage.delete(&format!("{TOKEN_PREFIX}{rel}")).await?;
                    removed += 1;
                }
            }
            if done {
                break;
            }
        }
        Ok(removed)
    }
}

/// The deletions that remove a revoked lease (record and index entries; counters aside).
fn deletion_ops(rec: &LeaseRecord, due: Option<&str>) -> Vec<TxnOp> {
    let mut ops = vec![
        TxnOp::Delete {
            key: format!("{ID_PREFIX}{}", rec.lease_id),
        },
        TxnOp::Delete {
            key: due_key(bucket_of(rec.expire_time), &rec.lease_id),
        },
        TxnOp::Delete {
            key: due_key(0, &rec.lease_id),
        },
    ];
    if let Some(d) = due {
        ops.push(TxnOp::Delete { key: d.to_string() });
    }
    if !rec.client_token.is_empty() {
        ops.push(TxnOp::Delete {
            key: format!("{TOKEN_PREFIX}{}/{}", rec.client_token, rec.lease_id),
        });
    }
    if rec.irrevocable() {
        ops.push(TxnOp::Delete {
            key: format!("{IRREVOCABLE_PREFIX}{}", rec.lease_id),
        });
    }
    ops
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `base * 2^(attempt-1)`, capped, with ±50% jitter.
fn backoff(cfg: &LeaseConfig, attempt: u32) -> Duration {
    use rand::Rng;
    let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    let base = cfg.backoff_base.saturating_mul(exp).min(cfg.backoff_max);
    let factor: f64 = rand::rng().random_range(0.5..1.5);
    base.mul_f64(factor).max(Duration::from_secs(1))
}

enum Outcome {
    /// Revoked; the deletions still to commit, when the runner batches them.
    Revoked(String, Option<Vec<TxnOp>>),
    Retried,
    Irrevocable,
    Rescheduled,
}

/// Counts outcomes and commits the deletions of revoked leases in batches.
#[derive(Default)]
struct Tally {
    ops: Vec<TxnOp>,
    ids: Vec<String>,
}

/// Revoked leases deleted per transaction.
const DELETE_BATCH: usize = 256;

impl Tally {
    fn add(
        &mut self,
        sr: &Strongroom,
        report: &mut ExpiryReport,
        r: std::result::Result<Result<Outcome>, tokio::task::JoinError>,
    ) {
        match r {
            Ok(Ok(Outcome::Revoked(id, Some(ops)))) => {
                self.ops.extend(ops);
                self.ids.push(id);
            }
            Ok(Ok(Outcome::Revoked(id, None))) => {
                report.revoked += 1;
                sr.lease_revoked(id);
            }
            Ok(Ok(Outcome::Retried)) => report.retried += 1,
            Ok(Ok(Outcome::Irrevocable)) => report.irrevocable += 1,
            Ok(Ok(Outcome::Rescheduled)) => report.rescheduled += 1,
            Ok(Err(e)) => {
                tracing::warn!(error = %e.message(), "expiry runner: a job failed; it will be retried next tick")
            }
            Err(e) => tracing::error!(error = %e, "expiry runner: a job panicked"),
        }
    }

    async fn flush_if_full(&mut self, sr: &Strongroom, report: &mut ExpiryReport) {
        if self.ids.len() >= DELETE_BATCH {
            self.flush(sr, report).await;
        }
    }

    async fn flush(&mut self, sr: &Strongroom, report: &mut ExpiryReport) {
        if self.ids.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.ops);
        let ids = std::mem::take(&mut self.ids);
        match sr.inner.storage.transaction(ops).await {
            Ok(()) => {
                report.revoked += ids.len();
                for id in ids {
                    sr.lease_revoked(id);
                }
            }
            Err(e) => {
                // Revoked but still recorded: the next run revokes them again (idempotent).
                tracing::warn!(error = %e.message(), count = ids.len(), "expiry runner: could not delete revoked leases; they will be retried");
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
