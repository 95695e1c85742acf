//! How to open a [`crate::Strongroom`]: storage, clock, unseal key source, limits.

use std::path::PathBuf;
#[cfg(feature = "bench-internals")]
use std::sync::Arc;

use crate::clock::SharedClock;
#[cfg(feature = "bench-internals")]
use crate::storage::Backend;

/// Default limit on one stored value and one request body (OpenBao's `max_request_size`).
pub const DEFAULT_MAX_ENTRY_SIZE: usize = 32 * 1024 * 1024;

/// Where data lives.
#[derive(Clone)]
pub enum StorageConfig {
    /// In memory: nothing survives the process (tests, dev).
    Memory,
    /// One SQLite file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by many processes or hosts (a `postgres://` URL).
    Postgres(String),
    /// A backend built by hand (the engine's own tests; not part of the API).
    #[cfg(feature = "bench-internals")]
    #[doc(hidden)]
    Backend(Arc<dyn Backend>),
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageConfig::Memory => f.write_str("Memory"),
            StorageConfig::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            // The URL may carry a password.
            StorageConfig::Postgres(_) => f.write_str("Postgres(<url>)"),
            #[cfg(feature = "bench-internals")]
            StorageConfig::Backend(b) => write!(f, "Backend({})", b.kind()),
        }
    }
}

/// Where the unseal key comes from when the engine unseals itself at open (embedded use). The
/// key is the single unseal key of an engine initialised with one share, hex or base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsealKeySource {
    /// A file holding the key (created with mode 0600 by [`crate::Strongroom::init_with_key_file`]).
    File(PathBuf),
    /// An environment variable holding the key.
    Env(String),
}

/// Options for [`crate::Strongroom::open`].
///
/// ```
/// use strongroom::Config;
/// let cfg = Config::sqlite("./strongroom-data/strongroom.db")
///     .unseal_key_file("./strongroom-data/unseal.key");
/// # let _ = cfg;
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) storage: StorageConfig,
    pub(crate) clock: Option<SharedClock>,
    pub(crate) unseal_key: Option<UnsealKeySource>,
    pub(crate) max_entry_size: usize,
    pub(crate) cache_entries: usize,
    pub(crate) cache_bytes: usize,
    pub(crate) decoded_cache_entries: usize,
    pub(crate) decoded_cache_bytes: usize,
    pub(crate) token_cache_bytes: usize,
    pub(crate) dev: Option<DevOptions>,
    pub(crate) audit: Vec<crate::audit::AuditDevice>,
    pub(crate) unsafe_allow_api_audit_creation: bool,
    pub(crate) allow_audit_log_prefixing: bool,
    pub(crate) leases: crate::leases::LeaseConfig,
    pub(crate) maintenance_interval: std::time::Duration,
    pub(crate) user_lockouts: crate::auth::lockout::ConfiguredLockouts,
    pub(crate) postgres_table: Option<String>,
    pub(crate) postgres_max_connections: Option<usize>,
    pub(crate) ha: Option<HaSettings>,
}

/// Check a table name for PostgreSQL storage ([`Config::postgres_table`]): 1 to 63 ASCII
/// letters, digits and underscores, not starting with a digit. The name is also quoted
/// wherever it is used; taking only plain identifiers keeps what an operator typed and what
/// PostgreSQL stores the same thing (no case folding, no silent truncation at 63 bytes,
/// nothing to inject).
///
/// ```
/// assert!(strongroom::check_postgres_table_name("vault_kv_2").is_ok());
/// let e = strongroom::check_postgres_table_name("kv\"; DROP TABLE x; --").unwrap_err();
/// assert_eq!(e.code(), strongroom::ErrorCode::InvalidInput);
/// ```
pub fn check_postgres_table_name(table: &str) -> crate::Result<()> {
    let mut chars = table.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && rest_ok && table.len() <= 63 {
        return Ok(());
    }
    Err(crate::Error::invalid_input(format!(
        "postgresql table name `{}` is not valid: use 1 to 63 letters, digits and \
         underscores, not starting with a digit",
        table.escape_debug()
    )))
}

/// High availability as OpenBao reports it (the `postgresql` storage stanza's `ha_enabled`):
/// several processes on one shared store, one of which holds the leader lock and is the
/// *active* node; the others are *standbys*. With it, `sys/leader` names the active node's
/// `api_addr` and `sys/health` answers a standby with OpenBao's standby status (429 unless
/// `standbyok`). Unlike OpenBao's standbys, every process serves reads and writes itself;
/// only background work (lease expiry, rotations, tidy) runs on the active one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaSettings {
    /// The address clients use to reach this process (`api_addr`), shown by `sys/leader`
    /// while it is the active node.
    pub api_addr: String,
    /// `cluster_addr`, shown as `leader_cluster_address` (Strongroom has no cluster port;
    /// empty unless configured).
    pub cluster_addr: String,
}

/// Dev mode: in memory, initialised and unsealed at open, `secret/` mounted as KV v2.
#[derive(Debug, Clone, Default)]
pub struct DevOptions {
    /// Use this root token id instead of a generated one (`-dev-root-token-id`); redacted by
    /// `Debug`.
    pub root_token_id: Option<secrecy::SecretString>,
    /// Mount `secret/` as KV v1 instead of v2 (`-dev-kv-v1`).
    pub kv_v1: bool,
}

impl Config {
    fn with_storage(storage: StorageConfig) -> Config {
        Config {
            storage,
            clock: None,
            unseal_key: None,
            max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
            cache_entries: 65_536,
            cache_bytes: 16 << 20,
            decoded_cache_entries: 4_096,
            decoded_cache_bytes: 16 << 20,
            token_cache_bytes: 16 << 20,
            dev: None,
            audit: Vec::new(),
            unsafe_allow_api_audit_creation: false,
            allow_audit_log_prefixing: false,
            leases: crate::leases::LeaseConfig::default(),
            maintenance_interval: crate::scheduler::DEFAULT_MAINTENANCE_INTERVAL,
            user_lockouts: Default::default(),
            postgres_table: None,
            postgres_max_connections: None,
            ha: None,
        }
    }

    /// In-memory storage (initialise and unseal it yourself).
    pub fn memory() -> Config {
        Config::with_storage(StorageConfig::Memory)
    }

    /// A SQLite file, created if missing (the embedded default).
    pub fn sqlite(path: impl Into<PathBuf>) -> Config {
        Config::with_storage(StorageConfig::Sqlite(path.into()))
    }

    /// A PostgreSQL database (`postgres://user@host:5432/db`, or libpq's `key=value` pairs).
    /// TLS as libpq: `?sslmode=verify-full&sslrootcert=/etc/ca.pem` checks the server's
    /// certificate and name; `require` encrypts without checking; the default is `prefer`.
    pub fn postgres(url: impl Into<String>) -> Config {
        Config::with_storage(StorageConfig::Postgres(url.into()))
    }

    /// Keep the PostgreSQL store in `table` instead of `strongroom_kv` (the `postgresql`
    /// stanza's `table`): several stores can share one database, each in its own table, with
    /// their own change notifications and leader lock. The name must be 1 to 63 letters,
    /// digits and underscores, not starting with a digit; another one fails the open with
    /// [`crate::ErrorCode::InvalidInput`]. Ignored by other storage.
    pub fn postgres_table(mut self, table: impl Into<String>) -> Config {
        self.postgres_table = Some(table.into());
        self
    }

    /// Open at most `n` pooled PostgreSQL connections (default 16; the `postgresql` stanza's
    /// `max_parallel`). Ignored by other storage.
    pub fn postgres_max_connections(mut self, n: usize) -> Config {
        self.postgres_max_connections = Some(n);
        self
    }

    /// Report high availability ([`HaSettings`]): `sys/leader` and `sys/health` tell the
    /// process holding the leader lock (the active node) from the others (standbys).
    pub fn high_availability(mut self, ha: HaSettings) -> Config {
        self.ha = Some(ha);
        self
    }

    /// A backend built by hand (the engine's own tests; not part of the API).
    #[cfg(feature = "bench-internals")]
    #[doc(hidden)]
    pub fn backend(backend: Arc<dyn Backend>) -> Config {
        Config::with_storage(StorageConfig::Backend(backend))
    }

    /// Dev mode: in memory, unsealed at open, root token available from
    /// [`crate::Strongroom::dev_root_token`], `secret/` as KV v2.
    pub fn dev() -> Config {
        Config {
            dev: Some(DevOptions::default()),
            ..Config::memory()
        }
    }

    /// Dev mode with options.
    pub fn dev_with(options: DevOptions) -> Config {
        Config {
            dev: Some(options),
            ..Config::memory()
        }
    }

    /// Use this clock (a [`crate::VirtualClock`] in tests).
    pub fn clock(mut self, clock: SharedClock) -> Config {
        self.clock = Some(clock);
        self
    }

    /// Unseal at open with the key in this file.
    pub fn unseal_key_file(mut self, path: impl Into<PathBuf>) -> Config {
        self.unseal_key = Some(UnsealKeySource::File(path.into()));
        self
    }

    /// Unseal at open with the key in this environment variable.
    pub fn unseal_key_env(mut self, var: impl Into<String>) -> Config {
        self.unseal_key = Some(UnsealKeySource::Env(var.into()));
        self
    }

    /// Largest value a caller can store through an engine, in bytes (OpenBao's default
    /// `max_request_size`, 32 MiB).
    pub fn max_entry_size(mut self, bytes: usize) -> Config {
        self.max_entry_size = bytes;
        self
    }

    /// Add an audit device. Devices come from configuration (here, or the server's config
    /// file); each has a failure policy: `required` (a call fails when no required device
    /// could log it) or `best_effort` (never blocks; a bounded queue; drops are counted).
    ///
    /// ```
    /// use strongroom::{AuditDevice, Config};
    /// let cfg = Config::dev()
    ///     .audit(AuditDevice::file("file/", "/var/log/strongroom/audit.log"))
    ///     .audit(AuditDevice::stdout("stdout/").best_effort());
    /// # let _ = cfg;
    /// ```
    pub fn audit(mut self, device: crate::audit::AuditDevice) -> Config {
        self.audit.push(device);
        self
    }

    /// Let callers with access to `sys/audit/:path` enable and disable audit devices at run
    /// time (OpenBao's `unsafe_allow_api_audit_creation`; default off). Devices enabled this
    /// way are stored behind the barrier and come back after a restart. Off, `POST
    /// sys/audit/:path` is refused, because an audit device writes files where its creator
    /// says (CVE-2025-6000).
    ///
    /// ```
    /// use strongroom::Config;
    /// let cfg = Config::dev().unsafe_allow_api_audit_creation(true);
    /// # let _ = cfg;
    /// ```
    pub fn unsafe_allow_api_audit_creation(mut self, allow: bool) -> Config {
        self.unsafe_allow_api_audit_creation = allow;
        self
    }

    /// Allow the `prefix` option on devices enabled over the API (OpenBao's
    /// `allow_audit_log_prefixing`; default off: `audit log prefixing is not allowed`).
    pub fn allow_audit_log_prefixing(mut self, allow: bool) -> Config {
        self.allow_audit_log_prefixing = allow;
        self
    }

    /// How many storage entries the read cache keeps (65,536 by default; 0 disables it).
    pub fn cache_entries(mut self, n: usize) -> Config {
        self.cache_entries = n;
        self
    }

    /// About how many bytes the storage read cache holds (keys, ciphertext and bookkeeping;
    /// 16 MiB by default, 0 disables it). Whichever of this and
    /// [`Config::cache_entries`] is reached first bounds the cache, so memory stays flat
    /// however much is stored.
    ///
    /// ```
    /// use strongroom::Config;
    /// let cfg = Config::sqlite("strongroom.db").cache_bytes(8 << 20);
    /// # let _ = cfg;
    /// ```
    pub fn cache_bytes(mut self, n: usize) -> Config {
        self.cache_bytes = n;
        self
    }

    /// About how many bytes the decoded-entry cache holds (16 MiB by default; see
    /// [`Config::decoded_cache_entries`]; 0 disables it).
    pub fn decoded_cache_bytes(mut self, n: usize) -> Config {
        self.decoded_cache_bytes = n;
        self
    }

    /// About how many bytes the token store's cache of token entries holds (16 MiB by
    /// default, roughly 30,000 tokens; 0 disables it: every call then reads its token from
    /// storage).
    pub fn token_cache_bytes(mut self, n: usize) -> Config {
        self.token_cache_bytes = n;
        self
    }

    /// How many decoded entries (decrypted and parsed, such as a KV secret's metadata and
    /// version data) are kept so a warm read skips AES-GCM and JSON decoding; 4096 by
    /// default, 0 disables it.
    ///
    /// The trade-off: the secrets most recently read stay in this process's memory between
    /// requests, not only while a request runs. They are wiped when evicted and when the engine
    /// seals, and an entry is only served while the stored ciphertext is the one it was decoded
    /// from, so a write from this or another process is seen at once.
    ///
    /// ```
    /// use strongroom::Config;
    /// // Keep no plaintext between requests (reads decrypt and parse every time).
    /// let cfg = Config::sqlite("strongroom.db").decoded_cache_entries(0);
    /// # let _ = cfg;
    /// ```
    pub fn decoded_cache_entries(mut self, n: usize) -> Config {
        self.decoded_cache_entries = n;
        self
    }

    /// How the lease manager runs (background expiry runner, workers, retries, leader lock).
    ///
    /// ```
    /// use strongroom::{Config, LeaseConfig};
    /// let cfg = Config::memory().leases(LeaseConfig { workers: 8, ..LeaseConfig::default() });
    /// # let _ = cfg;
    /// ```
    pub fn leases(mut self, leases: crate::leases::LeaseConfig) -> Config {
        self.leases = leases;
        self
    }

    /// How often the background runner does maintenance (keyring rotation by its policy,
    /// transit auto-rotation, scheduled static-role and root rotation), measured on the
    /// engine's clock; 5 minutes by default. The runner runs when
    /// [`crate::LeaseConfig::background`] is on (the default).
    pub fn maintenance_interval(mut self, every: std::time::Duration) -> Config {
        self.maintenance_interval = every;
        self
    }

    /// Login lockout settings for `auth_type` (`all`, `userpass`, `approle` or `ldap`), as the
    /// server config's `user_lockout "<type>" { ... }` stanza; a later call for the same type
    /// replaces the earlier one.
    pub fn user_lockout(
        mut self,
        auth_type: &str,
        settings: crate::auth::lockout::UserLockout,
    ) -> Config {
        self.user_lockouts
            .0
            .insert(auth_type.to_ascii_lowercase(), settings);
        self
    }
}
