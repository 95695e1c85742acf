//! [`Strongroom`]: the engine. Open, initialise, unseal and seal it; every call goes through
//! [`Strongroom::handle`].

use std::sync::{Arc, RwLock};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex as AsyncMutex;
use zeroize::Zeroizing;

use crate::audit::{AuditAuth, AuditBroker, AuditInput, GrantingPolicy, PolicyResults};
use crate::barrier::Barrier;
use crate::barrier::seal::{self, Seal};
use crate::client::Client;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, StorageConfig, UnsealKeySource};
use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::router::{self, MountEntry, Router};
#[cfg(feature = "postgres")]
use crate::storage::PostgresBackend;
#[cfg(feature = "sqlite")]
use crate::storage::SqliteBackend;
use crate::storage::cache::CachedBackend;
use crate::storage::{Backend, MemoryBackend, TxnOp};
use crate::token::endpoints::Caller;
use crate::token::{TokenEntry, TokenStore};
use crate::util::ttl::TtlLimits;

/// The mount type of `identity/`.
pub(crate) const IDENTITY_KIND: &str = "identity";
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
    cache: Option<Arc<CachedBackend>>,
    pub(crate) barrier: Arc<Barrier>,
    /// The barrier as a backend (what everything above storage uses).
    pub(crate) storage: Arc<dyn Backend>,
    pub(crate) seal: Seal,
    pub(crate) router: RwLock<Arc<Router>>,
    /// Bumped after every router swap (see [`Strongroom::gate_epoch`]).
    router_generation: std::sync::atomic::AtomicU64,
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
    pub(crate) leases: crate::leases::LeaseManager,
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
    /// Whether this process is the active node (holds the leader lock).
    pub(crate) leadership: crate::ha::Leadership,
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
        let inner = Inner {
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
            leases: crate::leases::LeaseManager::new(config.leases.clone()),
            admin: AsyncMutex::new(()),
            storage_type,
            dev_root_token: std::sync::OnceLock::new(),
            dev_unseal_key: std::sync::OnceLock::new(),
            scheduler: crate::scheduler::Scheduler::default(),
            maintenance_interval: config.maintenance_interval,
            calls: crate::scheduler::CallGate::default(),
            ha: config.ha.clone(),
            leadership: crate::ha::Leadership::default(),
        };
        if let Some(dev) = &config.dev {
            let sr = Strongroom {
                inner: Arc::new(inner),
            };
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
                    let generated = sr.token_lookup(init.root_token.expose_secret()).await?;
                    if let Some(e) = generated {
                        sr.token_revoke_tree(&e.salted_id).await?;
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
        let sr = Strongroom {
            inner: Arc::new(inner),
        };
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
        if let Err(e) = self.inner.leadership.advertise(api_addr, cluster_addr) {
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
                        value: router::encode_table(&[cubbyhole_entry(), sys])?,
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
        if let Err(e) = self.release_leadership().await {
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
            Some(self.lease_stats().await?)
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

    /// Stores created before the cubbyhole engine and the `response-wrapping` policy existed
    /// get them on unseal, as OpenBao adds its required mounts and policies.
    async fn ensure_builtins(&self) -> Result<()> {
        let i = &self.inner;
        let mut entries = router::load_table(i.storage.as_ref()).await?;
        let mut ops = Vec::new();
        if !entries
            .iter()
            .any(|e| e.kind == crate::secrets::cubbyhole::KIND)
        {
            entries.insert(0, cubbyhole_entry());
        }
        // `identity/` is always mounted (OpenBao's required mount), served by the pipeline.
        if !entries.iter().any(|e| e.kind == IDENTITY_KIND) {
            let mut e = MountEntry::new("identity/", IDENTITY_KIND);
            e.description = "identity store".into();
            entries.push(e);
        }
        if entries.len() != router::load_table(i.storage.as_ref()).await?.len() {
            ops.push(TxnOp::Put {
                key: router::MOUNTS_PATH.into(),
                value: router::encode_table(&entries)?,
            });
        }
        if !crate::policies::stored(
            i.storage.as_ref(),
            crate::policy::RESPONSE_WRAPPING_POLICY_NAME,
        )
        .await?
        {
            ops.push(crate::policies::response_wrapping_policy_op(i.clock.now())?);
        }
        if !ops.is_empty() {
            i.storage.transaction(ops).await?;
        }
        Ok(())
    }

    fn set_router(&self, r: Router) -> Result<()> {
        *self.inner.router.write().or_else(crate::util::unpoison)? = Arc::new(r);
        self.inner
            .router_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    /// A number that changes whenever anything an authorisation decision rests on changes
    /// here: a token entry, a policy, the mount table. A decision made after reading epoch
    /// `e` stays valid while the epoch is still `e` (writers bump after they change state).
    /// Token expiry is time-based and must still be checked per call.
    pub(crate) fn gate_epoch(&self) -> u64 {
        use std::sync::atomic::Ordering;
        self.inner
            .tokens
            .generation()
            .wrapping_add(self.inner.policies.generation())
            .wrapping_add(self.inner.identity.generation())
            .wrapping_add(self.inner.router_generation.load(Ordering::Acquire))
    }

    pub(crate) fn router(&self) -> Result<Arc<Router>> {
        Ok(self
            .inner
            .router
            .read()
            .or_else(crate::util::unpoison)?
            .clone())
    }

    fn mount_storage(&self) -> router::MountStorage {
        router::MountStorage::Barrier(self.inner.barrier.clone())
    }

    pub(crate) async fn reload_router(&self) -> Result<()> {
        let entries = router::load_table(self.inner.storage.as_ref()).await?;
        let previous = self.router()?;
        let r = Router::build(
            &entries,
            &self.mount_storage(),
            &self.inner.clock,
            Some(&previous),
        )?;
        self.inner.tokens.set_cubbyhole_prefix(
            entries
                .iter()
                .find(|e| e.kind == crate::secrets::cubbyhole::KIND)
                .map(|e| format!("logical/{}/", e.uuid)),
        )?;
        self.set_router(r)?;
        self.reload_auth().await
    }

    /// Add a mount (used by `sys/mounts/:path` and dev setup).
    pub(crate) async fn mount(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        options: Option<std::collections::BTreeMap<String, String>>,
    ) -> Result<()> {
        let mut e = MountEntry::new(&router::normalize_mount_path(path)?, kind);
        e.description = description.to_string();
        e.options = options;
        self.add_mount(e).await
    }

    pub(crate) async fn add_mount(&self, e: MountEntry) -> Result<()> {
        let _guard = self.inner.admin.lock().await;
        if e.kind == crate::secrets::cubbyhole::KIND {
            return Err(Error::invalid_input(format!(
                "mount type of {:?} is not mountable",
                e.kind
            )));
        }
        // OpenBao's `protectedMounts`, `audit/` included: a secrets engine there would shadow
        // the audit devices' namespace (`cannot mount "audit/"`, 400).
        for reserved in ["audit/", "auth/", "sys/", "cubbyhole/", "identity/"] {
            if e.path.starts_with(reserved) {
                return Err(Error::invalid_input(format!(
                    "cannot mount {}",
                    crate::policy::hcl::strconv::quote(&e.path)
                )));
            }
        }
        let mut entries = router::load_table(self.inner.storage.as_ref()).await?;
        if let Some(existing) = entries
            .iter()
            .find(|m| m.path.starts_with(&e.path) || e.path.starts_with(&m.path))
        {
            return Err(Error::invalid_input(format!(
                "path is already in use at {}",
                existing.path
            )));
        }
        // Fails on an unknown type before anything is written.
        Router::instantiate(&e, &self.mount_storage(), &self.inner.clock)?;
        entries.push(e);
        self.inner
            .storage
            .put(router::MOUNTS_PATH, &router::encode_table(&entries)?)
            .await?;
        self.reload_router().await
    }

    pub(crate) async fn remove_mount(&self, path: &str) -> Result<()> {
        let _guard = self.inner.admin.lock().await;
        let mut entries = router::load_table(self.inner.storage.as_ref()).await?;
        let Some(pos) = entries.iter().position(|m| m.path == path) else {
            return Ok(());
        };
        let removed = entries.remove(pos);
        if removed.kind == crate::secrets::cubbyhole::KIND {
            return Err(Error::invalid_input(format!("cannot unmount {path:?}")));
        }
        if removed.kind == "system" {
            return Err(Error::invalid_input(format!("cannot unmount '{path}'")));
        }
        if removed.kind == IDENTITY_KIND {
            return Err(Error::invalid_input(format!("cannot unmount {path:?}")));
        }
        // As OpenBao: the mount's leases are revoked first, and a failure stops the unmount,
        // so no credential outlives the engine that could revoke it.
        self.lease_revoke_prefix(path, false).await.map_err(|e| {
            Error::invalid_input(format!(
                "failed to revoke leases on unmount of '{path}': {}",
                e.message()
            ))
        })?;
        // The table first, so a crash never leaves a mount pointing at deleted data; the
        // mount's entries are cleared after.
        self.inner
            .storage
            .put(router::MOUNTS_PATH, &router::encode_table(&entries)?)
            .await?;
        self.reload_router().await?;
        let prefix = format!("logical/{}/", removed.uuid);
        loop {
            let keys = self
                .inner
                .storage
                .scan(
                    &prefix,
                    &crate::storage::Page {
                        after: None,
                        limit: Some(1000),
                    },
                )
                .await?;
            if keys.is_empty() {
                break;
            }
            let ops = keys
                .into_iter()
                .map(|k| TxnOp::Delete {
                    key: format!("{prefix}{k}"),
                })
                .collect();
            self.inner.storage.transaction(ops).await?;
        }
        Ok(())
    }

    pub(crate) async fn update_mount(&self, e: MountEntry) -> Result<()> {
        let _guard = self.inner.admin.lock().await;
        let mut entries = router::load_table(self.inner.storage.as_ref()).await?;
        let Some(slot) = entries.iter_mut().find(|m| m.path == e.path) else {
            return Err(Error::invalid_input(format!("no mount at {}", e.path)));
        };
        *slot = e;
        self.inner
            .storage
            .put(router::MOUNTS_PATH, &router::encode_table(&entries)?)
            .await?;
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
        self.release_leadership().await
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
        if self.hold_leadership().await? {
            for m in self.router()?.mounted() {
                m.engine.periodic(&m.ctx).await?;
            }
        }
        Ok(rotated)
    }

    /// Run one request through the pipeline: seal check, token, ACL, audit, engine, lease,
    /// audit. This is the only door: the typed API, the bindings and the HTTP server use it.
    pub async fn handle(&self, mut req: Request) -> Result<Response> {
        // Counted until the call ends, so shutdown can wait for it.
        let _in_flight = self.inner.calls.enter()?;
        if req.id.is_empty() {
            req.id = crate::util::fast_uuid();
        }
        // A zero wrap TTL means "do not wrap", as in OpenBao.
        if req.wrap_ttl.is_some_and(|t| t.is_zero()) {
            req.wrap_ttl = None;
        }
        // Refused before anything runs, as OpenBao refuses the header: a wrap TTL past Go's
        // longest duration could not be wrapped after the request had already acted.
        if let Some(t) = req.wrap_ttl.filter(|t| *t > crate::util::duration::MAX) {
            return Err(Error::invalid_input(format!(
                "wrap ttl of {}s is out of range",
                t.as_secs()
            )));
        }
        req.path = normalize_request_path(&req.path)?;
        if req.operation == Operation::List && !req.path.ends_with('/') && !req.path.is_empty() {
            req.path.push('/');
        }
        if matches!(
            req.operation,
            Operation::Create | Operation::Update | Operation::Patch
        ) && req.path.ends_with('/')
        {
            return Err(Error::invalid_input("cannot write to a path ending in '/'"));
        }
        // The rare branches are boxed: inlined, their futures would make this one several
        // kilobytes, carried (and moved) by every call.
        if req.path.starts_with("sys/") {
            if let Some(resp) = Box::pin(crate::sys::unauthenticated(self, &req)).await? {
                return Ok(with_id(resp, &req));
            }
        }
        if self.inner.barrier.is_sealed() {
            return Err(Error::sealed());
        }
        self.sync_store().await?;
        // `sys/wrapping/{lookup,unwrap,rewrap}` check their wrapping token first; `lookup`
        // needs nothing else.
        if req.path.starts_with("sys/wrapping/") {
            // Audited like any call: a wrong or spent wrapping token is worth a line.
            match Box::pin(self.wrapping_precheck(&req)).await {
                Ok(Some((resp, wrapping))) => {
                    let resp = with_id(resp, &req);
                    if let Some(a) = self.audit_auth(&wrapping) {
                        let memo = crate::audit::AuditMemo::default();
                        let input = AuditInput::new(&req).with_auth(&a).with_memo(&memo);
                        self.inner.audit.log_request(&input).await?;
                        self.inner
                            .audit
                            .log_response(&input.with_response(&resp))
                            .await?;
                    }
                    return Ok(resp);
                }
                Ok(None) => {}
                Err(e) => return Err(Box::pin(self.audit_failure(&req, None, None, e)).await),
            }
        }
        // Logins live under `auth/` (`AuthMethods::route` answers nothing else).
        if req.path.starts_with("auth/") {
            if let Some(resp) = Box::pin(self.try_login(&req)).await? {
                return match req.wrap_ttl {
                    Some(ttl) => Box::pin(self.wrap_response(&req, &resp, ttl)).await,
                    None => Ok(resp),
                };
            }
        }
        // Paths an engine serves without a token (a PKI mount's CA and CRL reads).
        if let Some(resp) = Box::pin(self.try_unauthenticated(&req)).await? {
            return Ok(with_id(resp, &req));
        }
        let mut caller = match self.resolve_token(&req).await {
            Ok(c) => c,
            Err(e) => return Err(Box::pin(self.audit_failure(&req, None, None, e)).await),
        };
        let mut auth = self.audit_auth(&caller.entry);
        let memo = crate::audit::AuditMemo::default();
        // OpenBao counts a use right after the token check, before the ACL or routing answer
        // (request_handling.go: UseToken precedes the CheckToken error): a denied, unrouted
        // or failing call spends a use too, and the last one revokes the token whatever the
        // outcome. Every early return below goes through `finish_use`.
        let last_use = self.use_token(&mut caller).await?;
        // Route first: the existence check (create vs update) must precede the ACL.
        let target = match self.route(&mut req, &caller.entry).await {
            Ok(t) => t,
            Err(e) => {
                // OpenBao checks the ACL before routing: a path the token may not use is 403
                // whether or not a mount serves it, so a limited token cannot probe for mounts
                // (only a token allowed the path, root included, learns "no handler").
                let e = match self.authorize(&caller.entry, &req, auth.as_mut()).await {
                    Err(denied) if e.code() == ErrorCode::UnsupportedPath => denied,
                    _ => e,
                };
                self.finish_use(&caller.entry, last_use).await?;
                return Err(Box::pin(self.audit_failure(&req, auth.as_ref(), None, e)).await);
            }
        };
        let mount = match &target {
            Target::Mount(m, _) => Some(&m.entry),
            _ => None,
        };
        match self.authorize(&caller.entry, &req, auth.as_mut()).await {
            Ok(sudo) => caller.sudo = sudo,
            Err(e) => {
                self.finish_use(&caller.entry, last_use).await?;
                return Err(Box::pin(self.audit_failure(&req, auth.as_ref(), mount, e)).await);
            }
        }
        if let Some(a) = &auth {
            let mut input = AuditInput::new(&req).with_auth(a).with_memo(&memo);
            if let Some(m) = mount {
                input = input.with_mount(m);
            }
            // A required device that cannot log fails the call before it runs.
            if let Err(e) = self.inner.audit.log_request(&input).await {
                self.finish_use(&caller.entry, last_use).await?;
                return Err(e);
            }
        }
        let result = match &target {
            Target::Sys if req.path.starts_with("sys/wrapping/") => {
                Box::pin(self.wrapping_endpoint(&caller, &req))
                    .await
                    .map(Some)
            }
            Target::NotCanonical => Err(Error::backend_unsupported_path()),
            Target::Sys => Box::pin(crate::sys::handle(self, &req)).await.map(Some),
            Target::Token(rel) => {
                Box::pin(crate::token::endpoints::handle(self, &caller, &req, rel))
                    .await
                    .map(Some)
            }
            Target::Identity(rel) => {
                Box::pin(crate::identity::endpoints::handle(self, &req, rel)).await
            }
            Target::Mount(mount, rel) => {
                req.display_name.clone_from(&caller.entry.display_name);
                let full = std::mem::replace(&mut req.path, rel.clone());
                let r = match as_owner(mount, &mut req, &caller.entry) {
                    Ok(token) => {
                        let r = mount.engine.handle(&mount.ctx, &req).await;
                        if let Some(t) = token {
                            req.token = t;
                        }
                        r
                    }
                    Err(e) => Err(e),
                };
                req.path = full;
                r.map(|resp| resp.map(|r| cubbyhole_response_warning(&req, &caller.entry, r)))
            }
        };
        self.finish_use(&caller.entry, last_use).await?;
        let resp = match result {
            Ok(Some(r)) if r.lease.is_some() => match &target {
                Target::Mount(m, rel) => {
                    Box::pin(self.register_secret_lease(&req, &caller.entry, m, rel, r)).await
                }
                _ => Err(Error::internal(format!(
                    "`{}` returned a lease outside a secrets engine",
                    req.path
                ))),
            },
            Ok(Some(r)) => Ok(r),
            Ok(None) if matches!(req.operation, Operation::Read | Operation::List) => Err(
                Error::not_found(format!("no value found at `{}`", req.path)),
            ),
            Ok(None) => Ok(Response::default()),
            Err(e) => Err(e),
        };
        let resp = match (resp, req.wrap_ttl) {
            (Ok(r), Some(ttl)) if !r.is_empty() && r.kind == crate::request::ResponseKind::Done => {
                Box::pin(self.wrap_response(&req, &with_id(r, &req), ttl)).await
            }
            (r, _) => r.map(|r| with_id(r, &req)),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                if let Some(a) = &auth {
                    let mut input = AuditInput::new(&req)
                        .with_auth(a)
                        .with_error(&e)
                        .with_memo(&memo);
                    if let Some(m) = mount {
                        input = input.with_mount(m);
                    }
                    self.inner.audit.log_response(&input).await?;
                }
                return Err(e);
            }
        };
        if let Some(a) = &auth {
            let mut input = AuditInput::new(&req)
                .with_auth(a)
                .with_response(&resp)
                .with_memo(&memo);
            if let Some(m) = mount {
                input = input.with_mount(m);
            }
            self.inner.audit.log_response(&input).await?;
        }
        Ok(resp)
    }

    /// Serve `req` without a token when its mount's engine lists the path as unauthenticated
    /// (OpenBao's `PathsSpecial.Unauthenticated`): no token check, no ACL, audited like a
    /// login. `None` = the path needs a token.
    async fn try_unauthenticated(&self, req: &Request) -> Result<Option<Response>> {
        if req.path.starts_with("sys/") || req.path.starts_with("auth/") {
            return Ok(None);
        }
        let router = self.router()?;
        let Some((mount, rel)) = router.route(&req.path) else {
            return Ok(None);
        };
        if !mount.engine.unauthenticated(rel, req.operation) {
            return Ok(None);
        }
        let mut inner = req.clone();
        inner.path = rel.to_string();
        inner.token = None;
        let input = AuditInput::new(req).with_mount(&mount.entry);
        if !self.inner.audit.is_empty() {
            self.inner.audit.log_request(&input).await?;
        }
        let resp = match mount.engine.handle(&mount.ctx, &inner).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(Error::not_found(format!(
                "no value found at `{}`",
                req.path
            ))),
            Err(e) => Err(e),
        };
        if !self.inner.audit.is_empty() {
            match &resp {
                Ok(r) => {
                    self.inner
                        .audit
                        .log_response(&input.with_response(r))
                        .await?
                }
                Err(e) => self.inner.audit.log_response(&input.with_error(e)).await?,
            }
        }
        resp.map(Some)
    }

    /// The typed fast path's decision, under `epoch` from [`Strongroom::fast_gate_epoch`]
    /// (which made the seal, audit and sync checks): the pipeline's token and ACL steps for
    /// `op` on `path`, without building a JSON request. `Ok(None)` sends the caller through
    /// [`Strongroom::handle`] instead: the token has limited uses, the path is not on a mount
    /// (or is a cubbyhole), or the matching ACL rule inspects request parameters.
    pub(crate) async fn fast_gate(
        &self,
        epoch: u64,
        token: &str,
        op: Operation,
        path: &str,
    ) -> Result<Option<FastGate>> {
        let path = normalize_request_path(path)?;
        let entry = self
            .token_lookup(token)
            .await?
            .ok_or_else(Error::permission_denied)?;
        if entry.num_uses != 0 {
            return Ok(None);
        }
        // The same CIDR check as `resolve_token`: a typed call has no remote address, so a
        // CIDR-bound token is refused here exactly as `handle` refuses it.
        if !crate::auth::cidr::allows(&entry.bound_cidrs, None) {
            return Err(Error::permission_denied());
        }
        let router = self.router()?;
        let Some((mount, rel)) = router.route(&path) else {
            return Ok(None);
        };
        // A name not in the engine's form (`Prot ` for a lowercasing engine) takes the full
        // pipeline, which judges the path the engine would act on, or refuses it.
        if !matches!(
            crate::util::names::canonical_path(rel, mount.engine.name_rules()),
            crate::util::names::CanonicalPath::Same(_)
        ) {
            return Ok(None);
        }
        // Cubbyhole keys on the caller's salted id, which only the full pipeline hands it.
        if mount.entry.kind == crate::secrets::cubbyhole::KIND {
            return Ok(None);
        }
        let acl = self.acl_for_token(&entry).await?;
        if acl.inspects_body(&path) {
            return Ok(None);
        }
        let empty = Data::new();
        let d = acl.allow(op, &path, &empty, None);
        if !(d.allowed && (d.root_privs || !crate::policies::needs_sudo(&path))) {
            return Err(Error::policy_denied());
        }
        Ok(Some(FastGate {
            epoch,
            mount: Arc::downgrade(&mount),
            entry,
            acl_expires: acl.expires(),
        }))
    }

    /// The checks every typed fast-path call makes, decided or not: the seal, audit devices
    /// (which need the full pipeline: `None`) and other processes' changes. Returns the gate
    /// epoch to decide under, or to compare a remembered [`FastGate`] with; it is read before
    /// any decision, so a change made while deciding shows as a new epoch.
    pub(crate) async fn fast_gate_epoch(&self) -> Result<Option<u64>> {
        if self.inner.calls.is_closed() {
            return Err(crate::scheduler::shut_down());
        }
        if self.inner.barrier.is_sealed() {
            return Err(Error::sealed());
        }
        if !self.inner.audit.is_empty() {
            return Ok(None);
        }
        self.sync_store().await?;
        Ok(Some(self.gate_epoch()))
    }

    /// Whether a remembered decision still holds at `epoch` (`Ok(false)`: decide again); a
    /// token that expired since is refused, as a fresh decision would refuse it.
    pub(crate) fn fast_gate_holds(&self, gate: &FastGate, epoch: u64) -> Result<bool> {
        if gate.epoch != epoch {
            return Ok(false);
        }
        let now = self.inner.clock.now();
        if gate.entry.expired(now) {
            return Err(Error::permission_denied());
        }
        // A policy or rule the decision rested on expired: decide again, on the new ACL.
        Ok(gate.acl_expires.is_none_or(|t| now < t))
    }

    /// Route a request: `sys/`, the token store, or a mount (running the engine's existence
    /// check, which turns an update of a missing entry into a create).
    ///
    /// The path is put in the form the engine acts on first (its declared name rules, see
    /// [`crate::util::names`]), so the ACL that follows judges exactly what the engine will
    /// act on: `sys/policies/acl/ST-PROTECTED` is judged, and served, as
    /// `sys/policies/acl/st-protected`.
    async fn route(&self, req: &mut Request, caller: &TokenEntry) -> Result<Target> {
        if req.path == "sys" || req.path.starts_with("sys/") {
            return Ok(
                match canonicalize(req, "sys/".len(), crate::sys::NAME_RULES) {
                    Some(_) => Target::Sys,
                    None => Target::NotCanonical,
                },
            );
        }
        if req.path.starts_with("auth/token/") {
            return Ok(
                match canonicalize(
                    req,
                    "auth/token/".len(),
                    crate::token::endpoints::NAME_RULES,
                ) {
                    Some(rel) => Target::Token(rel),
                    None => Target::NotCanonical,
                },
            );
        }
        if req.path.starts_with("identity/") {
            return Ok(
                match canonicalize(
                    req,
                    "identity/".len(),
                    crate::identity::endpoints::NAME_RULES,
                ) {
                    Some(rel) => Target::Identity(rel),
                    None => Target::NotCanonical,
                },
            );
        }
        let (mount, rel) = match self.route_auth(&req.path)? {
            Some(found) => found,
            None => {
                let router = self.router()?;
                let (mount, rel) = router
                    .route(&req.path)
                    .ok_or_else(|| Error::unsupported_path(&req.path))?;
                (mount, rel.to_string())
            }
        };
        let Some(prefix) = req.path.strip_suffix(rel.as_str()).map(str::len) else {
            return Err(Error::internal(format!(
                "`{}` routed to a path that is not its suffix",
                req.path
            )));
        };
        let Some(rel) = canonicalize(req, prefix, mount.engine.name_rules()) else {
            return Ok(Target::NotCanonical);
        };
        if req.operation == Operation::Update {
            // Engines see the path relative to their mount.
            let full = std::mem::replace(&mut req.path, rel.clone());
            let exists = match as_owner(&mount, req, caller) {
                Ok(token) => {
                    let exists = mount.engine.exists(&mount.ctx, req).await;
                    if let Some(t) = token {
                        req.token = t;
                    }
                    exists
                }
                // The batch-token refusal comes after the ACL; a write stays an update.
                Err(_) => Ok(None),
            };
            req.path = full;
            if let Some(false) = exists? {
                req.operation = Operation::Create;
            }
        }
        Ok(Target::Mount(mount, rel))
    }

    /// What the audit entries say about the caller (`None` when no device is configured, so
    /// the common case costs nothing).
    fn audit_auth(&self, e: &TokenEntry) -> Option<AuditAuth> {
        if self.inner.audit.is_empty() {
            return None;
        }
        // OpenBao's auth block: `policies` is the sorted union with the identity policies.
        let identity_policies = match e.entity_id.as_str() {
            "" => Vec::new(),
            id => self
                .inner
                .identity
                .resolve(id)
                .ok()
                .flatten()
                .map(|r| r.identity_policies.clone())
                .unwrap_or_default(),
        };
        let mut policies = e.policies.clone();
        if !identity_policies.is_empty() {
            policies.extend(identity_policies.iter().cloned());
            policies.sort();
            policies.dedup();
        }
        Some(AuditAuth {
            accessor: e.accessor.clone(),
            display_name: e.display_name.clone(),
            policies,
            identity_policies,
            token_policies: e.policies.clone(),
            metadata: e.meta.clone(),
            remaining_uses: u64::try_from(e.num_uses).unwrap_or(0),
            entity_id: e.entity_id.clone(),
            token_type: e.token_type.clone(),
            token_ttl: e.ttl,
            token_issue_time: crate::clock::parse_rfc3339(&e.issue_time),
            ..AuditAuth::default()
        })
    }

    /// Log a call that failed before it ran (bad token, unknown path, denied) and hand back
    /// the error to return; a required device that cannot log turns it into its own error.
    async fn audit_failure(
        &self,
        req: &Request,
        auth: Option<&AuditAuth>,
        mount: Option<&MountEntry>,
        e: Error,
    ) -> Error {
        if self.inner.audit.is_empty() {
            return e;
        }
        let memo = crate::audit::AuditMemo::default();
        let mut input = AuditInput::new(req).with_error(&e).with_memo(&memo);
        if let Some(a) = auth {
            input = input.with_auth(a);
        }
        if let Some(m) = mount {
            input = input.with_mount(m);
        }
        if let Err(audit_err) = self.inner.audit.log_request(&input).await {
            return audit_err;
        }
        if let Err(audit_err) = self.inner.audit.log_response(&input).await {
            return audit_err;
        }
        e
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

    pub(crate) async fn sync_store(&self) -> Result<()> {
        let Some(cache) = &self.inner.cache else {
            return Ok(());
        };
        if cache.sync().await? {
            self.inner.tokens.clear()?;
            self.inner.policies.clear()?;
            self.inner.leases.clear()?;
            self.reload_router().await?;
            self.inner
                .identity
                .reload_if_changed(self.inner.storage.as_ref())
                .await?;
        }
        Ok(())
    }

    async fn resolve_token(&self, req: &Request) -> Result<Caller> {
        let entry = self
            .token_lookup(req.token_str())
            .await?
            .ok_or_else(Error::permission_denied)?;
        // A CIDR-bound token (from a login) is usable only from its networks.
        if !crate::auth::cidr::allows(&entry.bound_cidrs, req.remote_addr) {
            return Err(Error::permission_denied());
        }
        Ok(Caller {
            id: Zeroizing::new(req.token_str().to_string()),
            entry,
            sudo: false,
        })
    }

    /// Count a use of a limited-use token; returns whether this is its last use.
    async fn use_token(&self, caller: &mut Caller) -> Result<bool> {
        match self
            .inner
            .tokens
            .use_once(self.inner.storage.as_ref(), &caller.entry)
            .await?
        {
            None => Ok(false),
            Some(updated) => {
                let last = updated.num_uses < 0;
                caller.entry = Arc::new(updated);
                Ok(last)
            }
        }
    }

    /// After the last allowed use of a limited-use token, revoke it.
    async fn finish_use(&self, token: &TokenEntry, last_use: bool) -> Result<()> {
        if last_use {
            self.token_revoke_tree(&token.salted_id).await?;
        }
        Ok(())
    }

    /// Resolve a token id (unknown, expired and malformed are all `None`).
    pub(crate) async fn token_lookup(&self, id: &str) -> Result<Option<Arc<TokenEntry>>> {
        self.inner
            .tokens
            .lookup(self.inner.storage.as_ref(), id, self.inner.clock.now())
            .await
    }

    pub(crate) async fn token_by_accessor(
        &self,
        accessor: &str,
    ) -> Result<Option<Arc<TokenEntry>>> {
        let now = self.inner.clock.now();
        Ok(self
            .inner
            .tokens
            .by_accessor(self.inner.storage.as_ref(), accessor)
            .await?
            .filter(|e| !e.expired(now))
            .map(Arc::new))
    }

    /// Revoke a token and every token below it.
    pub(crate) async fn token_revoke_tree(&self, salted: &str) -> Result<()> {
        self.inner
            .tokens
            .revoke_tree(self.inner.storage.as_ref(), salted)
            .await
    }

    /// Revoke one token; its children become orphans.
    pub(crate) async fn token_revoke_one(&self, salted: &str) -> Result<()> {
        self.inner
            .tokens
            .revoke_one(self.inner.storage.as_ref(), salted)
            .await
    }

    pub(crate) async fn token_accessors(&self) -> Result<Vec<String>> {
        self.inner
            .tokens
            .accessors(self.inner.storage.as_ref())
            .await
    }

    pub(crate) async fn token_tidy(&self) -> Result<usize> {
        self.inner
            .tokens
            .tidy(self.inner.storage.as_ref(), self.inner.clock.now())
            .await
    }

    /// TTL defaults for tokens: the `token/` auth mount's tuning, else the system's 768h.
    pub(crate) async fn token_limits(&self) -> Result<TtlLimits> {
        let table = router::load_auth_table(self.inner.storage.as_ref()).await?;
        let e = table
            .iter()
            .find(|e| e.path == "token/")
            .cloned()
            .unwrap_or_else(router::token_auth_entry);
        Ok(TtlLimits {
            default_ttl: e.default_ttl(),
            max_ttl: e.max_ttl(),
        })
    }

    /// Whether an ACL policy with this name exists.
    pub(crate) async fn policy_exists(&self, name: &str) -> Result<bool> {
        crate::policies::exists(self.inner.storage.as_ref(), name, self.inner.clock.now()).await
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

    /// The ACL step: may `token` do `req`? Returns whether it holds sudo (root privileges) on
    /// the path. Sudo-protected paths need it on top of the operation's capability.
    /// When `auth` is given (an audit device is configured), the granting policies are
    /// recorded in it for the audit entry.
    async fn authorize(
        &self,
        token: &TokenEntry,
        req: &Request,
        auth: Option<&mut AuditAuth>,
    ) -> Result<bool> {
        let acl = self.acl_for_token(token).await?;
        // The mount listing answers every valid token, listing what its policies reach.
        if req.path == "sys/internal/ui/mounts" && req.operation == Operation::Read {
            return Ok(acl.is_root());
        }
        if let Some(path) = req
            .path
            .strip_prefix("sys/internal/ui/mounts/")
            .filter(|p| !p.is_empty() && req.operation == Operation::Read)
        {
            return self.ui_mount_access(&acl, path, auth);
        }
        let decision = acl.allow(req.operation, &req.path, &req.data, req.wrap_ttl);
        let allowed =
            decision.allowed && (decision.root_privs || !crate::policies::needs_sudo(&req.path));
        if let Some(a) = auth {
            a.policy_results = Some(PolicyResults {
                allowed,
                granting_policies: decision
                    .granting_policies
                    .iter()
                    .map(|p| GrantingPolicy {
                        name: p.to_string(),
                        namespace_id: "root".into(),
                        policy_type: "acl".into(),
                        ..GrantingPolicy::default()
                    })
                    .collect(),
            });
        }
        if !allowed {
            return Err(Error::policy_denied());
        }
        Ok(decision.root_privs)
    }

    /// `sys/internal/ui/mounts/:path`, which the CLI reads before every `kv` command: OpenBao
    /// serves it to any valid token that has some access inside the mount holding `path`, not
    /// only to tokens with a capability on the sys path itself.
    fn ui_mount_access(
        &self,
        acl: &crate::policy::Acl,
        path: &str,
        auth: Option<&mut AuditAuth>,
    ) -> Result<bool> {
        let path = format!("{}/", path.trim_matches('/'));
        let router = self.router()?;
        let allowed = router
            .route(&path)
            .is_some_and(|(m, _)| acl.has_mount_access(&m.entry.path));
        if let Some(a) = auth {
            a.policy_results = Some(PolicyResults {
                allowed,
                granting_policies: Vec::new(),
            });
        }
        if !allowed {
            return Err(Error::new(
                ErrorCode::PermissionDenied,
                format!(
                    "preflight capability check returned 403, please ensure client's policies grant access to path \"{path}\""
                ),
            ));
        }
        Ok(acl.is_root())
    }

    /// The ACL a token's requests are judged by: its policies, plus those its entity and the
    /// entity's groups carry, resolved now (a change to the entity or a group applies to
    /// tokens already issued, as in OpenBao). A token without an entity costs nothing more.
    pub(crate) async fn acl_for_token(
        &self,
        token: &TokenEntry,
    ) -> Result<Arc<crate::policy::Acl>> {
        if token.entity_id.is_empty() || token.policies.iter().any(|p| p == "root") {
            return self.acl_for(&token.policies).await;
        }
        // Read the generation first: a change racing with the build makes the cached ACL
        // look stale, never the reverse.
        let generation = self.inner.identity.generation();
        // As OpenBao: the token of an entity that was deleted or disabled is refused as an
        // invalid token (plain `permission denied`).
        let identity = self
            .inner
            .identity
            .resolve(&token.entity_id)?
            .filter(|r| !r.disabled)
            .ok_or_else(Error::permission_denied)?;
        self.inner
            .policies
            .acl_for_entity(
                self.inner.storage.as_ref(),
                &token.policies,
                &token.entity_id,
                &identity,
                generation,
                self.inner.clock.now(),
            )
            .await
    }

    /// The compiled ACL for a set of policy names (cached until a policy changes).
    pub(crate) async fn acl_for(&self, policies: &[String]) -> Result<Arc<crate::policy::Acl>> {
        self.inner
            .policies
            .acl(
                self.inner.storage.as_ref(),
                policies,
                self.inner.clock.now(),
            )
            .await
    }
}

/// A fast-path authorisation decision of the typed API: the token may do this operation on
/// this path of `mount`, as long as [`Strongroom::gate_epoch`] is still `epoch`, the token
/// has not expired and neither has the ACL (a policy or rule with an `expiration`).
#[derive(Clone)]
pub(crate) struct FastGate {
    pub(crate) epoch: u64,
    /// Weak: a handle's remembered decision must not keep a mount, and the keys in its
    /// memory, alive after the mount is gone (sealed, unmounted).
    pub(crate) mount: std::sync::Weak<router::Mounted>,
    pub(crate) entry: Arc<TokenEntry>,
    pub(crate) acl_expires: Option<time::OffsetDateTime>,
}

/// Where a request goes after routing.
enum Target {
    Sys,
    Token(String),
    /// The identity store, with the path after `identity/`.
    Identity(String),
    /// The mount and the path relative to it.
    Mount(Arc<crate::router::Mounted>, String),
    /// A path whose name no object can have (`transit/keys/a%20b`): judged by the ACL as
    /// sent, then answered 404 `unsupported path`, as OpenBao's framework answers it.
    NotCanonical,
}

/// Put `req.path` (whose first `prefix` bytes are the mount) in the form the engine acts on
/// under `rules`, returning the path relative to the mount; `None` when the path names
/// nothing the engine can have (the path is left as sent, for the ACL to judge).
fn canonicalize(
    req: &mut Request,
    prefix: usize,
    rules: &[crate::util::names::NameRule],
) -> Option<String> {
    use crate::util::names::{CanonicalPath, canonical_path};
    let rel = req.path.get(prefix..).unwrap_or("");
    match canonical_path(rel, rules) {
        CanonicalPath::Same(rel) => Some(rel.to_string()),
        CanonicalPath::Rewritten(rel) => {
            req.path.truncate(prefix);
            req.path.push_str(&rel);
            Some(rel)
        }
        CanonicalPath::NotCanonical => None,
    }
}

/// Cubbyhole mounts see the caller's salted token id in place of the token (as OpenBao's
/// router does): swap it in, returning the token to put back. Batch tokens have no cubbyhole.
fn as_owner(
    mount: &router::Mounted,
    req: &mut Request,
    caller: &TokenEntry,
) -> Result<Option<Option<SecretString>>> {
    if mount.entry.kind != crate::secrets::cubbyhole::KIND {
        return Ok(None);
    }
    if caller.is_batch() || caller.salted_id.is_empty() {
        return Err(Error::invalid_input(
            "cubbyhole operations are only supported by 'service' type tokens",
        ));
    }
    Ok(Some(
        req.token
            .replace(SecretString::from(caller.salted_id.clone())),
    ))
}

/// OpenBao's warning when a wrapping token reads its response directly.
fn cubbyhole_response_warning(req: &Request, caller: &TokenEntry, mut resp: Response) -> Response {
    if req.operation == Operation::Read
        && req.path == "cubbyhole/response"
        && caller
            .policies
            .iter()
            .any(|p| p == crate::policy::RESPONSE_WRAPPING_POLICY_NAME)
    {
        resp.warn("Reading from 'cubbyhole/response' is deprecated. Please use sys/wrapping/unwrap to unwrap responses, as it provides additional security checks and other benefits.");
    }
    resp
}

/// The `cubbyhole/` mount every store has (local, as in OpenBao).
fn cubbyhole_entry() -> MountEntry {
    let mut e = MountEntry::new(
        crate::secrets::cubbyhole::PATH,
        crate::secrets::cubbyhole::KIND,
    );
    e.description = crate::secrets::cubbyhole::DESCRIPTION.into();
    e.local = true;
    e
}

fn with_id(mut resp: Response, req: &Request) -> Response {
    resp.request_id = req.id.clone();
    resp
}

/// Strip the leading `/`, refuse non-printable characters and relative segments.
fn normalize_request_path(path: &str) -> Result<String> {
    let p = path.trim_start_matches('/');
    if p.chars().any(|c| c.is_control()) {
        return Err(Error::invalid_input(
            "path contains non-printable characters",
        ));
    }
    if p.contains('.') && p.split('/').any(|s| s == ".." || s == ".") {
        return Err(Error::invalid_input(format!("invalid path `{p}`")));
    }
    if p.len() > 4096 {
        return Err(Error::invalid_input("path is too long"));
    }
    Ok(p.to_string())
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
