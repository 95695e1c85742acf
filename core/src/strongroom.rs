//! [`Strongroom`]: the engine. Open, initialise, unseal, seal and shut it down; every call
//! goes through [`Strongroom::handle`].
//!
//! This file is the lifecycle only. The request pipeline is `pipeline.rs`, mount
//! administration `mounts.rs`; the subsystems below them (leases, auth, wrapping, the token
//! endpoints) get narrow handles and never reach back here (docs/architecture.md,
//! `core/tests/layering.rs`).

use std::sync::{Arc, RwLock};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex as AsyncMutex;
use zeroize::Zeroizing;

use crate::audit::AuditBroker;
use crate::barrier::Barrier;
use crate::barrier::seal::{self, Seal};
use crate::client::Client;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, StorageConfig, UnsealKeySource};
use crate::error::{Error, ErrorCode, Result};
use crate::request::Data;
use crate::router::{self, MountEntry, Router};
#[cfg(feature = "postgres")]
use crate::storage::PostgresBackend;
#[cfg(feature = "sqlite")]
use crate::storage::SqliteBackend;
use crate::storage::cache::CachedBackend;
use crate::storage::{Backend, MemoryBackend, TxnOp};
use crate::token::TokenStore;

/// Where the KEK is kept behind the barrier (for root-key rotation), as OpenBao does.
const KEK_PATH: &str = "core/shamir-kek";
/// Cluster name and id, shown by seal-status when unsealed.
const CLUSTER_PATH: &str = "core/cluster/local/info";

/// The result of [`Strongroom::init`]: shown once, never stored.
pub struct InitResponse {
    /// The unseal key shares, hex.
    pub keys: Vec<SecretString>,
    /// The same shares, base64.
    pub keys_base64: Vec<SecretString>,
    /// The initial root token.
    pub root_token: SecretString,
}

impl std::fmt::Debug for InitResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitResponse")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// What `sys/seal-status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealStatus {
    /// Whether the engine has been initialised.
    pub initialized: bool,
    /// Whether it is sealed.
    pub sealed: bool,
    /// Shares needed to unseal.
    pub threshold: u8,
    /// Shares handed out.
    pub shares: u8,
    /// Shares received so far.
    pub progress: usize,
    /// Nonce of the current unseal attempt ("" when none).
    pub nonce: String,
    /// `inmem`, `sqlite` or `postgresql`.
    pub storage_type: String,
    /// Cluster name (only when unsealed).
    pub cluster_name: Option<String>,
    /// Cluster id (only when unsealed).
    pub cluster_id: Option<String>,
}

impl SealStatus {
    /// OpenBao's JSON for `sys/seal-status` and `sys/unseal`.
    pub fn to_json(&self) -> Data {
        let mut d = crate::data(json!({
            "type": "shamir",
            "initialized": self.initialized,
            "sealed": self.sealed,
            "t": self.threshold,
            "n": self.shares,
            "progress": self.progress,
            "nonce": self.nonce,
            "recovery_seal": false,
            "version": router::BAO_VERSION,
            "build_date": "",
            "migration": false,
        }));
        if let (Some(name), Some(id)) = (&self.cluster_name, &self.cluster_id) {
            d.insert("cluster_name".into(), Value::String(name.clone()));
            d.insert("cluster_id".into(), Value::String(id.clone()));
        }
        d.insert(
            "storage_type".into(),
            Value::String(self.storage_type.clone()),
        );
        d
    }
}

pub(crate) struct Inner {
    pub(crate) clock: SharedClock,
    pub(crate) cache: Option<Arc<CachedBackend>>,
    pub(crate) barrier: Arc<Barrier>,
    /// The barrier as a backend (what everything above storage uses).
    pub(crate) storage: Arc<dyn Backend>,
    pub(crate) seal: Seal,
    pub(crate) router: RwLock<Arc<Router>>,
    /// Bumped after every router swap (see [`Strongroom::gate_epoch`]).
    pub(crate) router_generation: std::sync::atomic::AtomicU64,
    pub(crate) tokens: TokenStore,
    /// The mounted auth methods (userpass, AppRole, Kubernetes).
    pub(crate) auth: crate::auth::AuthMethods,
    /// The server config's `user_lockout` stanzas (login lockout).
    pub(crate) user_lockouts: crate::auth::lockout::ConfiguredLockouts,
    /// Credential checks in flight per user (login lockout under concurrent guesses).
    pub(crate) login_checks: crate::auth::lockout::InFlight,
    pub(crate) audit: AuditBroker,
    /// What the configuration allows for audit devices over the API.
    pub(crate) audit_api: crate::audit::table::ApiPolicy,
    pub(crate) policies: crate::policies::PolicyCache,
    /// Entities and groups (`identity/`).
    pub(crate) identity: crate::identity::IdentityStore,
    pub(crate) leases: Arc<crate::leases::Leases>,
    /// Serialises mount-table changes and unseal setup.
    pub(crate) admin: AsyncMutex<()>,
    storage_type: &'static str,
    dev_root_token: std::sync::OnceLock<SecretString>,
    /// Dev mode's single unseal key (base64), kept so `server -dev` can print it as OpenBao does.
    dev_unseal_key: std::sync::OnceLock<SecretString>,
    /// The background runner (expiry, maintenance).
    pub(crate) scheduler: crate::scheduler::Scheduler,
    maintenance_interval: std::time::Duration,
    /// Calls in flight, and whether new ones are still taken (see [`Strongroom::shutdown`]).
    pub(crate) calls: crate::scheduler::CallGate,
    /// High availability reporting (`None`: OpenBao's single node answers).
    pub(crate) ha: Option<crate::config::HaSettings>,
}

/// The engine. Cheap to clone; clones share everything.
///
/// ```
/// # tokio_test_block_on(async {
/// use strongroom::{Config, Strongroom};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let client = sr.client(sr.dev_root_token().unwrap_or_default());
/// let kv = client.kv("secret");
/// kv.put("app/db", &strongroom::data(serde_json::json!({"password": "s3cr3t"}))).await?;
/// let secret = kv.get("app/db").await?.expect("just written");
/// assert_eq!(secret.data.expose()["password"], "s3cr3t");
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) }
/// ```
#[derive(Clone)]
pub struct Strongroom {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Strongroom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strongroom")
            .field("storage", &self.inner.storage_type)
            .field("sealed", &self.inner.barrier.is_sealed())
            .finish()
    }
}

impl Strongroom {
    /// Open an engine on the configured storage. It starts sealed unless the config names an
    /// unseal key source (then it unseals itself when initialised) or dev mode.
    pub async fn open(config: Config) -> Result<Strongroom> {
        let clock: SharedClock = config
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock));
        let physical: Arc<dyn Backend> = match &config.storage {
            StorageConfig::Memory => Arc::new(MemoryBackend::new()),
            #[cfg(feature = "sqlite")]
            StorageConfig::Sqlite(path) => Arc::new(SqliteBackend::open(path)?),
            #[cfg(not(feature = "sqlite"))]
            StorageConfig::Sqlite(_) => {
                return Err(crate::error::Error::feature_missing(
                    "sqlite",
                    "SQLite storage",
                ));
            }
            #[cfg(feature = "postgres")]
            StorageConfig::Postgres(url) => {
                let options = crate::storage::postgres::PostgresOptions {
                    table: config.postgres_table.clone(),
                    max_connections: config.postgres_max_connections,
                };
                Arc::new(PostgresBackend::connect_with(url, &options).await?)
            }
            #[cfg(not(feature = "postgres"))]
            StorageConfig::Postgres(_) => {
                return Err(crate::error::Error::feature_missing(
                    "postgres",
                    "PostgreSQL storage",
                ));
            }
            #[cfg(feature = "bench-internals")]
            StorageConfig::Backend(b) => b.clone(),
        };
        let storage_type = physical.kind();
        // A backend handed in may be shared with other engines in this process: then its own
        // commits may be theirs, and only the marker that counts every commit is safe.
        #[cfg(feature = "bench-internals")]
        let sole_user = !matches!(config.storage, StorageConfig::Backend(_));
        #[cfg(not(feature = "bench-internals"))]
        let sole_user = true;
        let (below_barrier, cache): (Arc<dyn Backend>, _) =
            if config.cache_entries > 0 && config.cache_bytes > 0 {
                let c = Arc::new(CachedBackend::new(
                    physical,
                    config.cache_entries,
                    config.cache_bytes,
                    sole_user,
                ));
                (c.clone(), Some(c))
            } else {
                (physical, None)
            };
        let barrier = Arc::new(
            Barrier::new(below_barrier, clock.clone(), config.max_entry_size)
                .with_decoded_cache(config.decoded_cache_entries, config.decoded_cache_bytes),
        );
        let audit = AuditBroker::new(&config.audit, clock.clone())?;
        // The lease manager reaches the engine through a weak handle (`EngineHost`), so the
        // engine is built knowing its own address.
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| Inner {
            leases: Arc::new(crate::leases::Leases::new(
                config.leases.clone(),
                barrier.clone(),
                clock.clone(),
                Arc::new(crate::mounts::EngineHost(weak.clone())),
                config.ha.clone(),
            )),
            clock,
            cache,
            storage: barrier.clone(),
            barrier,
            seal: Seal::default(),
            router: RwLock::new(Arc::new(Router::default())),
            router_generation: Default::default(),
            tokens: TokenStore::with_cache_bytes(config.token_cache_bytes),
            auth: crate::auth::AuthMethods::default(),
            user_lockouts: config.user_lockouts.clone(),
            login_checks: Default::default(),
            audit,
            audit_api: crate::audit::table::ApiPolicy {
                allow_creation: config.unsafe_allow_api_audit_creation,
                allow_prefixing: config.allow_audit_log_prefixing,
                config_paths: config.audit.iter().map(|d| d.path().to_string()).collect(),
            },
            policies: crate::policies::PolicyCache::default(),
            identity: crate::identity::IdentityStore::default(),
            admin: AsyncMutex::new(()),
            storage_type,
            dev_root_token: std::sync::OnceLock::new(),
            dev_unseal_key: std::sync::OnceLock::new(),
            scheduler: crate::scheduler::Scheduler::default(),
            maintenance_interval: config.maintenance_interval,
            calls: crate::scheduler::CallGate::default(),
            ha: config.ha.clone(),
        });
        if let Some(dev) = &config.dev {
            let sr = Strongroom { inner };
            sr.start_background();
            let init = sr.init(1, 1).await?;
            let key = init
                .keys
                .first()
                .ok_or_else(|| Error::internal("no unseal key"))?;
            sr.unseal(key.expose_secret()).await?;
            let unseal_key = init.keys_base64.first().cloned();
            let root = match &dev.root_token_id {
                Some(id) => {
                    // As OpenBao: the generated root token is revoked, the chosen one created.
                    let generated = sr
                        .token_site()
                        .token_lookup(init.root_token.expose_secret())
                        .await?;
                    if let Some(e) = generated {
                        sr.token_site().token_revoke_tree(&e.salted_id).await?;
                    }
                    sr.create_root_token(Some(id.expose_secret().to_string()))
                        .await?;
                    id.clone()
                }
                None => init.root_token,
            };
            let mut options = std::collections::BTreeMap::new();
            options.insert(
                "version".to_string(),
                if dev.kv_v1 { "1" } else { "2" }.to_string(),
            );
            sr.mount("secret/", "kv", "key/value secret storage", Some(options))
                .await?;
            let _ = sr.inner.dev_root_token.set(root);
            if let Some(k) = unseal_key {
                let _ = sr.inner.dev_unseal_key.set(k);
            }
            return Ok(sr);
        }
        let sr = Strongroom { inner };
        sr.start_background();
        if let Some(src) = &config.unseal_key {
            if sr.is_initialized().await? {
                let key = read_key_source(src)?;
                sr.unseal_with_key(&key).await?;
            }
        }
        Ok(sr)
    }

    /// The root token of a dev-mode engine (a [`SecretString`]: redacted by `Debug`; pass it
    /// to [`Strongroom::client`] as it is).
    pub fn dev_root_token(&self) -> Option<SecretString> {
        self.inner.dev_root_token.get().cloned()
    }

    /// The addresses this process announces as itself in `sys/ha-status` when high
    /// availability is off (OpenBao shows its `api_addr`, or its first listener's address):
    /// a server calls this once its listeners are bound. With high availability the
    /// [`HaSettings`](crate::HaSettings) addresses are used instead.
    ///
    /// ```
    /// # async fn demo() -> strongroom::Result<()> {
    /// let sr = strongroom::Strongroom::open(strongroom::Config::dev()).await?;
    /// sr.advertise("http://127.0.0.1:8200", "");
    /// # Ok(()) }
    /// ```
    pub fn advertise(&self, api_addr: &str, cluster_addr: &str) {
        if let Err(e) = self
            .inner
            .leases
            .leadership
            .advertise(api_addr, cluster_addr)
        {
            tracing::warn!(error = %e.message(), "could not record the advertised addresses");
        }
    }

    /// The unseal key of a dev-mode engine, base64 (what `bao server -dev` prints). Dev mode
    /// keeps everything in memory, so the key can only re-unseal this process after a seal.
    pub fn dev_unseal_key(&self) -> Option<SecretString> {
        self.inner.dev_unseal_key.get().cloned()
    }

    /// A handle that makes calls with `token`: a `&str`, a `String` or a [`SecretString`]
    /// (such as [`crate::Auth::client_token`]), or a reference to one
    /// ([`crate::IntoSecretString`]).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let sr = strongroom::Strongroom::open(strongroom::Config::dev()).await?;
    /// let root = sr.client(sr.dev_root_token().unwrap_or_default());
    /// let anonymous = sr.client("");
    /// # let _ = (root, anonymous);
    /// # Ok::<(), strongroom::Error>(()) }).unwrap();
    /// ```
    pub fn client(&self, token: impl crate::client::IntoSecretString) -> Client {
        Client::new(self.clone(), token.into_secret_string())
    }

    /// Whether the store has been initialised.
    pub async fn is_initialized(&self) -> Result<bool> {
        self.refresh_while_sealed().await?;
        Ok(self.inner.barrier.initialized().await?
            || self.inner.seal.config(&self.inner.barrier).await?.is_some())
    }

    /// Whether the engine is sealed.
    pub fn is_sealed(&self) -> bool {
        self.inner.barrier.is_sealed()
    }

    /// Initialise a new store: `shares` unseal key shares, `threshold` of which unseal it. The
    /// engine stays sealed afterwards, as OpenBao does.
    pub async fn init(&self, shares: u64, threshold: u64) -> Result<InitResponse> {
        let _guard = self.inner.admin.lock().await;
        self.refresh_while_sealed().await?;
        let i = &self.inner;
        let keys = i.seal.init(&i.barrier, shares, threshold).await?;
        // Unseal internally to create the root token and the system tables, then seal again.
        let kek = if keys.shares.len() == 1 {
            keys.shares
                .first()
                .cloned()
                .ok_or_else(|| Error::internal("no share"))?
        } else {
            let refs: Vec<&[u8]> = keys.shares.iter().map(|s| s.as_slice()).collect();
            crate::barrier::shamir::combine(&refs)?
        };
        i.seal.unseal_with_kek(&i.barrier, &kek).await?;
        let setup = async {
            let mut sys = MountEntry::new("sys/", "system");
            sys.description = "system endpoints used for control, policy and debugging".into();
            let cluster = json!({
                "name": format!("vault-cluster-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
                "id": uuid::Uuid::new_v4().to_string(),
            });
            i.storage
                .transaction(vec![
                    TxnOp::Put {
                        key: router::MOUNTS_PATH.into(),
                        value: router::encode_table(&[crate::mounts::cubbyhole_entry(), sys])?,
                    },
                    TxnOp::Put {
                        key: router::AUTH_PATH.into(),
                        value: router::encode_table(&[router::token_auth_entry()])?,
                    },
                    TxnOp::Put {
                        key: KEK_PATH.into(),
                        value: kek.to_vec(),
                    },
                    crate::policies::default_policy_op(i.clock.now())?,
                    crate::policies::response_wrapping_policy_op(i.clock.now())?,
                    TxnOp::Put {
                        key: CLUSTER_PATH.into(),
                        value: serde_json::to_vec(&cluster)
                            .map_err(|e| Error::internal("encode").with_source(e))?,
                    },
                ])
                .await?;
            i.tokens.setup(i.storage.as_ref()).await?;
            self.create_root_token(None).await
        };
        let root = setup.await;
        i.barrier.seal()?;
        i.tokens.clear()?;
        let root = root?;
        Ok(InitResponse {
            keys: keys
                .shares
                .iter()
                .map(|k| SecretString::from(hex::encode(k.as_slice())))
                .collect(),
            keys_base64: keys
                .shares
                .iter()
                .map(|k| {
                    use base64::Engine as _;
                    SecretString::from(
                        base64::engine::general_purpose::STANDARD.encode(k.as_slice()),
                    )
                })
                .collect(),
            root_token: SecretString::from(root),
        })
    }

    /// Initialise with one share, write that key to `path` (mode 0600, which must not exist
    /// yet) and unseal, for embedded use with [`Config::unseal_key_file`]. Returns the root token.
    pub async fn init_with_key_file(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<SecretString> {
        let path = path.as_ref();
        if path.exists() {
            return Err(Error::invalid_input(format!(
                "key file `{}` already exists; refusing to overwrite an unseal key",
                path.display()
            )));
        }
        // The file is made, and its room taken, before the store is initialised: a key file
        // that cannot be written (missing directory, permissions, full disk) must fail the call
        // while the store can still be initialised again, not lose the only unseal key.
        let mut file = KeyFile::reserve(path)?;
        let init = match self.init(1, 1).await {
            Ok(init) => init,
            Err(e) => {
                file.abandon();
                return Err(e);
            }
        };
        let key = init
            .keys
            .first()
            .ok_or_else(|| Error::internal("no unseal key"))?;
        file.fill(key.expose_secret().as_bytes())?;
        self.unseal_with_key(key.expose_secret()).await?;
        Ok(init.root_token)
    }

    /// Submit one unseal key share (hex or base64). Returns the seal status afterwards.
    pub async fn unseal(&self, key: &str) -> Result<SealStatus> {
        let key = seal::parse_key(key)?;
        let _guard = self.inner.admin.lock().await;
        self.refresh_while_sealed().await?;
        if self.inner.seal.submit(&self.inner.barrier, key).await? {
            self.after_unseal().await?;
        }
        self.seal_status().await
    }

    /// Unseal with the whole unseal key (an engine initialised with one share).
    pub async fn unseal_with_key(&self, key: &str) -> Result<()> {
        let key = seal::parse_key(key)?;
        let _guard = self.inner.admin.lock().await;
        if !self.inner.barrier.is_sealed() {
            return Ok(());
        }
        self.refresh_while_sealed().await?;
        self.inner
            .seal
            .unseal_with_kek(&self.inner.barrier, &key)
            .await?;
        self.after_unseal().await
    }

    /// Forget the shares submitted so far.
    pub fn unseal_reset(&self) -> Result<()> {
        self.inner.seal.reset()
    }

    /// Seal: drop every key from memory. Calls fail with [`ErrorCode::Sealed`] until unsealed.
    pub async fn seal(&self) -> Result<()> {
        let _guard = self.inner.admin.lock().await;
        if let Err(e) = self.inner.leases.release_leadership().await {
            tracing::warn!(error = %e.message(), "could not release the expiry runner's leader lock");
        }
        self.inner.barrier.seal()?;
        self.inner.tokens.clear()?;
        self.inner.identity.clear()?;
        self.inner.audit.clear();
        if let Some(c) = &self.inner.cache {
            c.clear()?;
        }
        self.set_router(Router::default())?;
        self.inner.auth.clear()?;
        Ok(())
    }

    /// Counters of each audit device: lines written, failed, dropped (best-effort queue full),
    /// timed out, and whether it is stalled now.
    pub fn audit_stats(&self) -> Vec<crate::audit::AuditDeviceStats> {
        self.inner.audit.stats()
    }

    /// The engine's figures for monitoring: whether it is sealed, the lease figures of
    /// [`Strongroom::lease_stats`] (absent while sealed) and the audit devices' counters of
    /// [`Strongroom::audit_stats`]. No token is needed: this is the embedding application's
    /// own view (over HTTP, `sys/metrics` takes a token unless the listener says otherwise).
    pub async fn metrics(&self) -> Result<crate::metrics::EngineMetrics> {
        let sealed = self.is_sealed();
        let leases = if sealed {
            None
        } else {
            Some(self.inner.leases.lease_stats().await?)
        };
        Ok(crate::metrics::EngineMetrics {
            sealed,
            leases,
            audit: self.audit_stats(),
        })
    }

    /// Reopen audit files (after log rotation; the server calls this on SIGHUP).
    pub fn reopen_audit(&self) {
        self.inner.audit.reopen();
    }

    /// Wait up to `timeout` for queued audit lines to be written (at shutdown). Returns whether
    /// everything was written.
    pub async fn flush_audit(&self, timeout: std::time::Duration) -> bool {
        self.inner.audit.flush(timeout).await
    }

    /// The seal status.
    pub async fn seal_status(&self) -> Result<SealStatus> {
        self.refresh_while_sealed().await?;
        let i = &self.inner;
        let cfg = i.seal.config(&i.barrier).await?;
        let (progress, nonce) = i.seal.progress()?;
        let sealed = i.barrier.is_sealed();
        let (mut name, mut id) = (None, None);
        if !sealed {
            if let Some(raw) = i.storage.get(CLUSTER_PATH).await? {
                let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                name = v.get("name").and_then(Value::as_str).map(str::to_string);
                id = v.get("id").and_then(Value::as_str).map(str::to_string);
            }
        }
        Ok(SealStatus {
            initialized: cfg.is_some(),
            sealed,
            threshold: cfg.as_ref().map(|c| c.secret_threshold).unwrap_or(0),
            shares: cfg.as_ref().map(|c| c.secret_shares).unwrap_or(0),
            progress,
            nonce,
            storage_type: i.storage_type.to_string(),
            cluster_name: name,
            cluster_id: id,
        })
    }

    async fn after_unseal(&self) -> Result<()> {
        let i = &self.inner;
        i.tokens.setup(i.storage.as_ref()).await?;
        self.ensure_builtins().await?;
        i.identity.load(i.storage.as_ref()).await?;
        i.audit.setup(i.storage.as_ref()).await?;
        crate::audit::table::restore(self).await?;
        self.reload_router().await
    }

    pub(crate) async fn rotate_root_key(&self) -> Result<()> {
        let i = &self.inner;
        let kek = Zeroizing::new(
            i.storage
                .get(KEK_PATH)
                .await?
                .ok_or_else(|| Error::internal("unseal key is not stored"))?,
        );
        i.seal.rotate_root(&i.barrier, &kek).await
    }

    /// Start the background runner (see [`crate::scheduler`]).
    fn start_background(&self) {
        self.inner
            .scheduler
            .start(&self.inner, self.inner.maintenance_interval);
    }

    /// Stop this engine: refuse new calls (they answer [`crate::ErrorCode::Unavailable`]),
    /// stop the background runner after the run in progress, wait for the calls in flight,
    /// flush best-effort audit lines (up to 5 s) and give up the leader lock, so another
    /// process on the same SQLite file or PostgreSQL database takes over the background work at
    /// once rather than when the lock lapses. Clones share the engine, so they are stopped
    /// too. Calling it again does nothing more.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.calls.close();
        self.inner.scheduler.stop().await;
        self.inner.calls.drained().await;
        if !self.flush_audit(std::time::Duration::from_secs(5)).await {
            tracing::warn!("some audit lines could not be written before shutdown");
        }
        self.inner.leases.release_leadership().await
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
    pub async fn run_expiry(&self) -> Result<crate::leases::ExpiryReport> {
        self.inner.leases.run_expiry().await
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
    pub async fn lease_stats(&self) -> Result<crate::leases::LeaseStats> {
        self.inner.leases.lease_stats().await
    }

    /// Periodic housekeeping, which the background runner does every
    /// [`Config::maintenance_interval`] (call it yourself when [`crate::LeaseConfig::background`]
    /// is off): rotates the keyring when `sys/rotate/config` says it is due, then runs
    /// each mount's periodic work (transit auto-rotation, database static-role and scheduled
    /// root rotation, in the process holding the lease leader lock). Returns whether the
    /// keyring rotated.
    pub async fn run_maintenance(&self) -> Result<bool> {
        if self.inner.barrier.is_sealed() {
            return Ok(false);
        }
        let rotated = if self.inner.barrier.rotation_due()? {
            self.inner.barrier.rotate().await?;
            true
        } else {
            false
        };
        // Scheduled rotations run in one process only (two rotating one password at once
        // could leave the database and the store disagreeing): the lease runner's leader.
        if self.inner.leases.hold_leadership().await? {
            for m in self.router()?.mounted() {
                m.engine.periodic(&m.ctx).await?;
            }
        }
        Ok(rotated)
    }

    /// Another process may have written: drop caches and pick up a changed mount table.
    /// While sealed nothing else syncs the cache (calls stop at the seal check), yet another
    /// process sharing the store may initialise it or change its seal meanwhile: the seal's
    /// entries are read through the cache, so drop it when the store moved.
    async fn refresh_while_sealed(&self) -> Result<()> {
        if !self.inner.barrier.is_sealed() {
            return Ok(());
        }
        if let Some(cache) = &self.inner.cache {
            cache.sync().await?;
        }
        Ok(())
    }

    /// Create a root token (init, or a dev root token with a chosen id).
    pub(crate) async fn create_root_token(&self, id: Option<String>) -> Result<String> {
        let now = self.inner.clock.now();
        // A chosen id (`-dev-root-token-id`) is, in OpenBao, a token made through the token
        // store's create path: display name `token`, path `auth/token/create`.
        let (path, display) = match id {
            Some(_) => ("auth/token/create", "token"),
            None => ("auth/token/root", "root"),
        };
        let mut e = crate::token::new_entry(now, path, vec!["root".into()]);
        e.display_name = display.into();
        self.inner
            .tokens
            .store_new(self.inner.storage.as_ref(), e, id)
            .await
            .map(|(id, _)| id)
    }
}

/// An unseal key file others can read is worth a warning (not a refusal: Kubernetes mounts
/// secrets 0644 unless told otherwise).
fn warn_if_readable_by_others(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the unseal key file can be read by other users; make it 0600"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn read_key_source(src: &UnsealKeySource) -> Result<Zeroizing<String>> {
    match src {
        UnsealKeySource::File(p) => {
            warn_if_readable_by_others(p);
            std::fs::read_to_string(p)
                .map(|s| Zeroizing::new(s.trim().to_string()))
                .map_err(|e| {
                    Error::new(
                        ErrorCode::InvalidInput,
                        format!("cannot read unseal key file `{}`", p.display()),
                    )
                    .with_source(e)
                })
        }
        UnsealKeySource::Env(var) => std::env::var(var)
            .map(|s| Zeroizing::new(s.trim().to_string()))
            .map_err(|_| {
                Error::invalid_input(format!("environment variable `{var}` holds no unseal key"))
            }),
    }
}

/// A new key file (mode 0600) holding a placeholder as long as any key, so that writing the
/// key later needs no new room on the disk. Whitespace: reading trims it.
struct KeyFile {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
}

/// Bytes reserved in a key file: an unseal key is 44 characters of base64 (or 64 of hex).
const KEY_FILE_ROOM: usize = 128;

impl KeyFile {
    fn reserve(path: &std::path::Path) -> Result<KeyFile> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| {
            Error::invalid_input(format!("cannot create key file `{}`", path.display()))
                .with_source(e)
        })?;
        let mut reserved = KeyFile {
            path: path.to_path_buf(),
            file: None,
        };
        if let Err(e) = f
            .write_all(&[b'\n'; KEY_FILE_ROOM])
            .and_then(|_| f.sync_all())
        {
            reserved.abandon();
            return Err(
                Error::storage(format!("cannot write key file `{}`", path.display()))
                    .with_source(e),
            );
        }
        reserved.file = Some(f);
        Ok(reserved)
    }

    /// Write the key over the placeholder and flush it to the disk.
    fn fill(&mut self, key: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        let failed = |e: std::io::Error| {
            Error::storage(format!(
                "the store is initialised but its unseal key could not be written to `{}`",
                self.path.display()
            ))
            .with_source(e)
        };
        if key.len() > KEY_FILE_ROOM {
            return Err(Error::internal(
                "unseal key longer than the key file's room",
            ));
        }
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| Error::internal("key file already closed"))?;
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(key))
            .and_then(|_| f.sync_all())
            .map_err(failed)
    }

    /// Remove the file (initialisation failed: nothing to keep).
    fn abandon(&mut self) {
        self.file = None;
        let _ = std::fs::remove_file(&self.path);
    }
}
