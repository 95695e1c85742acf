//! The server configuration: Vault's HCL config file (`-config`), the `-dev` flags, and how
//! they combine into one [`ServerConfig`].
//!
//! Supported stanzas (everything else is logged and ignored, as Vault warns about unknown keys):
//!
//! ```hcl
//! listener "tcp" {
//!   address          = "127.0.0.1:8200"    # default
//!   tls_disable      = true                # default false: then tls_cert_file/tls_key_file are required
//!   tls_cert_file    = "/etc/strongroom/cert.pem"
//!   tls_key_file     = "/etc/strongroom/key.pem"
//!   max_request_size = 33554432            # bytes; 0 = the 32 MiB default, negative = no limit
//!   max_request_duration = "90s"           # a handler running longer answers 500; 0 = default, negative = none
//!   max_concurrent_requests = 1024         # more in flight at once answer 503; 0 = no limit (Strongroom's own)
//!   max_request_json_memory  = 34078720    # estimated bytes a JSON body may decode to (400 above); 0 = default, < 0 = none
//!   max_request_json_strings = 1000        # keys + string values in a JSON body (400 above); 0 = default, < 0 = none
//!   http_read_header_timeout = "10s"       # a client that has not sent its headers by then is disconnected
//!   http_read_timeout        = "30s"       # the whole request, body included (500 after it)
//!   http_write_timeout       = "0"         # a client not taking the answer for this long is cut off; 0 = never
//!   http_idle_timeout        = "5m"        # keep-alive connections waiting for their next request
//!   telemetry { unauthenticated_metrics_access = false }   # true: /v1/sys/metrics needs no token
//! }
//! storage "sqlite"     { path = "/var/lib/strongroom/strongroom.db" }
//! storage "postgresql" {
//!   connection_url = "postgres://strongroom@db:5432/strongroom"
//!   table          = "strongroom_kv"   # default; several stores can share a database
//!   ha_enabled     = "true"            # report active/standby in sys/leader and sys/health
//!   max_parallel   = "16"              # pooled connections (default 16)
//! }
//! storage "inmem"      {}
//! seal "file" { path = "/etc/strongroom/unseal.key" }   # unseal at start from a key file
//! seal "env"  { variable = "STRONGROOM_UNSEAL_KEY" }    # ... or from an environment variable
//! api_addr  = "https://strongroom.example:8200"        # sys/leader's leader_address (HA)
//! cluster_addr = "https://strongroom.example:8201"     # shown as leader_cluster_address only
//! log_level = "info"
//! log_format = "standard"                               # or "json": one JSON object per log line
//! audit "file" "cfgfile" {                              # OpenBao's declarative audit devices
//!   description = "main log"
//!   options { file_path = "/var/log/strongroom/audit.log" }   # or options = { ... }
//! }
//! audit "socket" "siem" {
//!   options = { address = "10.0.0.5:9090", socket_type = "tcp" }
//! }
//! unsafe_allow_api_audit_creation = false  # true: sys/audit/:path may enable devices (stored)
//! allow_audit_log_prefixing       = false  # true: such devices may use the `prefix` option
//! user_lockout "all" {                     # login lockout (OpenBao's stanza): "all",
//!   lockout_threshold     = "5"            # "userpass", "approle" or "ldap"; unset keys of a
//!   lockout_duration      = "15m"          # type take the "all" stanza's, then the defaults
//!   lockout_counter_reset = "15m"
//!   disable_lockout       = false
//! }
//! ```
//!
//! `BAO_DISABLE_USER_LOCKOUT=true` in the environment turns login lockout off everywhere, as in
//! OpenBao.
//!
//! The `seal` stanza is Strongroom's own: it names where the single unseal key of a store
//! initialised with one share lives, and the server unseals itself with it at start when the
//! store is initialised. It never creates or writes the key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hcl::{Block, Body, Expression};

/// Vault's default `max_request_size`: 32 MiB.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;

/// Vault's default `max_request_duration`: 90 s.
pub const DEFAULT_MAX_REQUEST_DURATION: Duration = Duration::from_secs(90);

/// Requests one listener handles at once by default before answering 503.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1024;

/// OpenBao's default `max_request_json_memory`: 32 MiB + 512 KiB.
pub const DEFAULT_MAX_REQUEST_JSON_MEMORY: u64 = 32 * 1024 * 1024 + 512 * 1024;

/// OpenBao's default `max_request_json_strings`.
pub const DEFAULT_MAX_REQUEST_JSON_STRINGS: u64 = 1000;

/// OpenBao's default `http_read_header_timeout`.
pub const DEFAULT_HTTP_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// OpenBao's default `http_read_timeout`.
pub const DEFAULT_HTTP_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// OpenBao's default `http_idle_timeout`.
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Vault's default listener address (and `-dev-listen-address`).
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8200";

/// A configuration that cannot be used; the message says which file and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError(message.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// One `listener "tcp"` stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `host:port` to bind.
    pub address: String,
    /// Certificate and key files; `None` when `tls_disable` is set.
    pub tls: Option<TlsFiles>,
    /// Largest accepted request body; `None` = no limit.
    pub max_request_size: Option<usize>,
    /// Longest a request may run before it is answered with a 500; `None` = no limit.
    pub max_request_duration: Option<Duration>,
    /// Requests handled at once before more are refused with a 503; `None` = no limit.
    pub max_concurrent_requests: Option<usize>,
    /// `telemetry { unauthenticated_metrics_access = true }`: `/v1/sys/metrics` without a token.
    pub unauthenticated_metrics_access: bool,
    /// `max_request_json_memory`: the estimated memory a JSON body may decode to; `None` = no limit.
    pub max_request_json_memory: Option<u64>,
    /// `max_request_json_strings`: keys and string values a JSON body may hold; `None` = no limit.
    pub max_request_json_strings: Option<u64>,
    /// `http_read_header_timeout`, `http_read_timeout`, `http_write_timeout`, `http_idle_timeout`.
    pub timeouts: HttpTimeouts,
}

/// The listener's connection timeouts, as Go's `http.Server` fields OpenBao sets from them; a
/// zero duration is Go's zero (no limit, or the fallback Go documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// Time to read a request's headers (Go's `ReadHeaderTimeout`; zero: `read` is used).
    pub read_header: Duration,
    /// Time to read the whole request, body included (Go's `ReadTimeout`).
    pub read: Duration,
    /// Time a response write may stall on a client that does not read (Go's `WriteTimeout`
    /// bounds the whole response; see the listener); zero = no limit.
    pub write: Duration,
    /// Time a keep-alive connection may wait for its next request (Go's `IdleTimeout`; zero:
    /// `read`, then `read_header` is used).
    pub idle: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            read_header: DEFAULT_HTTP_READ_HEADER_TIMEOUT,
            read: DEFAULT_HTTP_READ_TIMEOUT,
            write: Duration::ZERO,
            idle: DEFAULT_HTTP_IDLE_TIMEOUT,
        }
    }
}

impl HttpTimeouts {
    fn nonzero(d: Duration) -> Option<Duration> {
        (!d.is_zero()).then_some(d)
    }

    /// The limit on reading a request's headers, with Go's fallback to `read`.
    pub fn effective_read_header(&self) -> Option<Duration> {
        Self::nonzero(self.read_header).or_else(|| Self::nonzero(self.read))
    }

    /// The limit on an idle keep-alive connection, with Go's fallbacks (`read`, `read_header`).
    pub fn effective_idle(&self) -> Option<Duration> {
        Self::nonzero(self.idle)
            .or_else(|| Self::nonzero(self.read))
            .or_else(|| Self::nonzero(self.read_header))
    }

    /// The limit on reading a whole request (body included).
    pub fn effective_read(&self) -> Option<Duration> {
        Self::nonzero(self.read)
    }

    /// The limit on writing a response.
    pub fn effective_write(&self) -> Option<Duration> {
        Self::nonzero(self.write)
    }
}

impl ListenerConfig {
    /// A plain-HTTP listener on `address` with the default request size limit (what `-dev` uses).
    pub fn plain(address: impl Into<String>) -> ListenerConfig {
        ListenerConfig {
            address: address.into(),
            tls: None,
            max_request_size: Some(DEFAULT_MAX_REQUEST_SIZE),
            max_request_duration: Some(DEFAULT_MAX_REQUEST_DURATION),
            max_concurrent_requests: Some(DEFAULT_MAX_CONCURRENT_REQUESTS),
            unauthenticated_metrics_access: false,
            max_request_json_memory: Some(DEFAULT_MAX_REQUEST_JSON_MEMORY),
            max_request_json_strings: Some(DEFAULT_MAX_REQUEST_JSON_STRINGS),
            timeouts: HttpTimeouts::default(),
        }
    }
}

/// PEM files for a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Private key (PEM).
    pub key_file: PathBuf,
}

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageChoice {
    /// `storage "inmem"`: lost on exit.
    Memory,
    /// `storage "sqlite" { path }`.
    Sqlite(PathBuf),
    /// `storage "postgresql" { connection_url, table, ha_enabled, max_parallel }`.
    Postgres(PostgresStorage),
}

/// The `postgresql` storage stanza.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresStorage {
    /// `connection_url` (or `BAO_PG_CONNECTION_URL`); may carry a password.
    pub connection_url: String,
    /// `table` (the engine's default, `strongroom_kv`, when unset).
    pub table: Option<String>,
    /// `ha_enabled`: report high availability (active node and standbys).
    pub ha_enabled: bool,
    /// `max_parallel`: pooled connections.
    pub max_parallel: Option<usize>,
}

impl PostgresStorage {
    /// A stanza with only a connection URL.
    pub fn url(connection_url: impl Into<String>) -> PostgresStorage {
        PostgresStorage {
            connection_url: connection_url.into(),
            table: None,
            ha_enabled: false,
            max_parallel: None,
        }
    }
}

impl fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PostgresStorage")
            .field("connection_url", &"<url>")
            .field("table", &self.table)
            .field("ha_enabled", &self.ha_enabled)
            .field("max_parallel", &self.max_parallel)
            .finish()
    }
}

impl StorageChoice {
    /// The storage type as Vault names it (`inmem`, `sqlite`, `postgresql`).
    pub fn kind(&self) -> &'static str {
        match self {
            StorageChoice::Memory => "inmem",
            StorageChoice::Sqlite(_) => "sqlite",
            StorageChoice::Postgres(_) => "postgresql",
        }
    }
}

impl fmt::Debug for StorageChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageChoice::Memory => f.write_str("Memory"),
            StorageChoice::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            StorageChoice::Postgres(p) => write!(f, "Postgres({p:?})"),
        }
    }
}

/// Where the unseal key comes from at start (`seal` stanza).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealChoice {
    /// `seal "file" { path }`.
    File(PathBuf),
    /// `seal "env" { variable }`.
    Env(String),
}

/// `-dev` and its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevSettings {
    /// `-dev-root-token-id`.
    pub root_token_id: Option<String>,
    /// `-dev-listen-address`.
    pub listen_address: String,
    /// `-dev-kv-v1`.
    pub kv_v1: bool,
}

/// Everything the server needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Listeners to serve on (at least one).
    pub listeners: Vec<ListenerConfig>,
    /// Storage (dev mode is always in memory).
    pub storage: StorageChoice,
    /// Unseal key source, if any.
    pub seal: Option<SealChoice>,
    /// The address clients should use (`api_addr`), shown in the banner and, with high
    /// availability, by `sys/leader`.
    pub api_addr: Option<String>,
    /// `cluster_addr` (shown as `sys/leader`'s `leader_cluster_address`; no cluster port).
    pub cluster_addr: Option<String>,
    /// `log_level` (`trace`, `debug`, `info`, `warn`, `error`).
    pub log_level: Option<String>,
    /// `log_format`: `standard` (text) or `json`.
    pub log_format: LogFormat,
    /// Dev mode settings when `-dev` is given.
    pub dev: Option<DevSettings>,
    /// `audit` stanzas, in order.
    pub audit: Vec<strongroom::AuditDevice>,
    /// `unsafe_allow_api_audit_creation`.
    pub unsafe_allow_api_audit_creation: bool,
    /// `allow_audit_log_prefixing`.
    pub allow_audit_log_prefixing: bool,
    /// `user_lockout "<type>"` stanzas by type.
    pub user_lockouts: std::collections::BTreeMap<String, strongroom::UserLockout>,
    /// Things that were accepted but ignored, to be logged once logging is up.
    pub notes: Vec<String>,
}

/// What one config file says (before it is merged with others and with `-dev`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileConfig {
    /// `listener` stanzas, in order.
    pub listeners: Vec<ListenerConfig>,
    /// The `storage` (or legacy `backend`) stanza.
    pub storage: Option<StorageChoice>,
    /// The `seal` stanza.
    pub seal: Option<SealChoice>,
    /// `api_addr`.
    pub api_addr: Option<String>,
    /// `cluster_addr`.
    pub cluster_addr: Option<String>,
    /// `log_level`.
    pub log_level: Option<String>,
    /// `log_format`.
    pub log_format: Option<LogFormat>,
    /// `audit "<type>" "<path>" { ... }` stanzas, in order.
    pub audit: Vec<strongroom::AuditDevice>,
    /// `unsafe_allow_api_audit_creation`.
    pub unsafe_allow_api_audit_creation: Option<bool>,
    /// `allow_audit_log_prefixing`.
    pub allow_audit_log_prefixing: Option<bool>,
    /// `user_lockout "<type>" { ... }` stanzas by type (a later one for a type wins).
    pub user_lockouts: std::collections::BTreeMap<String, strongroom::UserLockout>,
    /// Accepted-but-ignored keys and stanzas.
    pub notes: Vec<String>,
}

/// Top-level keys Vault accepts that Strongroom takes without acting on them.
const IGNORED_TOP_LEVEL: &[&str] = &[
    "ui",
    "cluster_name",
    "disable_mlock",
    "disable_cache",
    "default_lease_ttl",
    "max_lease_ttl",
    "plugin_directory",
    "telemetry",
    "disable_clustering",
    "raw_storage_endpoint",
    "introspection_endpoint",
    "enable_response_header_hostname",
    "enable_response_header_raft_node_id",
    "log_file",
    "pid_file",
    "ha_storage",
];

impl FileConfig {
    /// Read and parse one HCL file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!("cannot read config file `{}`: {e}", path.display()))
        })?;
        FileConfig::parse(&text)
            .map_err(|e| ConfigError::new(format!("config file `{}`: {e}", path.display())))
    }

    /// Parse HCL text.
    pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        let body: Body =
            hcl::parse(text).map_err(|e| ConfigError::new(format!("invalid HCL: {e}")))?;
        let mut cfg = FileConfig::default();
        for attr in body.attributes() {
            let key = attr.key();
            match key {
                "api_addr" => cfg.api_addr = Some(string(attr.expr(), key)?),
                "cluster_addr" => cfg.cluster_addr = Some(string(attr.expr(), key)?),
                "log_level" => cfg.log_level = Some(log_level(&string(attr.expr(), key)?)?),
                "log_format" => {
                    cfg.log_format = Some(LogFormat::parse(&string(attr.expr(), key)?)?)
                }
                "unsafe_allow_api_audit_creation" => {
                    cfg.unsafe_allow_api_audit_creation = Some(boolean(attr.expr(), key)?);
                }
                "allow_audit_log_prefixing" => {
                    cfg.allow_audit_log_prefixing = Some(boolean(attr.expr(), key)?);
                }
                k if IGNORED_TOP_LEVEL.contains(&k) => {
                    cfg.notes
                        .push(format!("config key `{k}` is accepted and ignored"));
                }
                k => cfg
                    .notes
                    .push(format!("unknown config key `{k}` is ignored")),
            }
        }
        for block in body.blocks() {
            match block.identifier() {
                "listener" => cfg.listeners.push(listener(block)?),
                "storage" | "backend" => {
                    if cfg.storage.is_some() {
                        return Err(ConfigError::new("only one storage stanza is allowed"));
                    }
                    cfg.storage = Some(storage(block, &mut cfg.notes)?);
                }
                "audit" => cfg.audit.push(audit(block)?),
                "user_lockout" => {
                    let (kind, settings) = user_lockout(block)?;
                    cfg.user_lockouts.insert(kind, settings);
                }
                "seal" => {
                    if cfg.seal.is_some() {
                        return Err(ConfigError::new("only one seal stanza is allowed"));
                    }
                    cfg.seal = Some(seal(block)?);
                }
                other => cfg.notes.push(format!(
                    "config stanza `{other}` is not supported and is ignored"
                )),
            }
        }
        Ok(cfg)
    }

    /// Merge `later` into `self` as Vault merges several `-config` files: listeners add up,
    /// single values from the later file win.
    pub fn merge(mut self, later: FileConfig) -> Result<FileConfig, ConfigError> {
        self.listeners.extend(later.listeners);
        if later.storage.is_some() {
            if self.storage.is_some() {
                return Err(ConfigError::new(
                    "storage is configured in more than one config file",
                ));
            }
            self.storage = later.storage;
        }
        if later.seal.is_some() {
            self.seal = later.seal;
        }
        if later.api_addr.is_some() {
            self.api_addr = later.api_addr;
        }
        if later.cluster_addr.is_some() {
            self.cluster_addr = later.cluster_addr;
        }
        if later.log_level.is_some() {
            self.log_level = later.log_level;
        }
        if later.log_format.is_some() {
            self.log_format = later.log_format;
        }
        self.audit.extend(later.audit);
        self.user_lockouts.extend(later.user_lockouts);
        if later.unsafe_allow_api_audit_creation.is_some() {
            self.unsafe_allow_api_audit_creation = later.unsafe_allow_api_audit_creation;
        }
        if later.allow_audit_log_prefixing.is_some() {
            self.allow_audit_log_prefixing = later.allow_audit_log_prefixing;
        }
        self.notes.extend(later.notes);
        Ok(self)
    }
}

impl ServerConfig {
    /// Combine the config files with `-dev`. Without `-dev` a storage stanza and at least one
    /// listener are required. With `-dev` the dev listener comes first, before the file's
    /// listeners (unless one of those binds the same address), and storage is always in memory.
    pub fn build(file: FileConfig, dev: Option<DevSettings>) -> Result<ServerConfig, ConfigError> {
        let mut notes = file.notes;
        let mut listeners = file.listeners;
        let storage = match (&dev, file.storage) {
            (Some(_), Some(s)) => {
                notes.push(format!(
                    "-dev keeps data in memory; the `{}` storage stanza is ignored",
                    s.kind()
                ));
                StorageChoice::Memory
            }
            (Some(_), None) => StorageChoice::Memory,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(ConfigError::new(
                    "a storage stanza is required (storage \"sqlite\", \"postgresql\" or \"inmem\"), or use -dev",
                ));
            }
        };
        let mut seal = file.seal;
        if let Some(d) = &dev {
            // A config listener on the very same address replaces the dev one (port 0 always
            // means a listener of its own).
            let same = |l: &ListenerConfig| {
                l.address == d.listen_address && !d.listen_address.ends_with(":0")
            };
            if !listeners.iter().any(same) {
                // OpenBao's dev listener serves sys/metrics without a token.
                let mut dev_listener = ListenerConfig::plain(d.listen_address.clone());
                dev_listener.unauthenticated_metrics_access = true;
                listeners.insert(0, dev_listener);
            }
            if seal.take().is_some() {
                notes.push("-dev unseals itself; the seal stanza is ignored".into());
            }
        }
        if listeners.is_empty() {
            return Err(ConfigError::new(
                "at least one listener stanza is required (listener \"tcp\" { ... })",
            ));
        }
        // OpenBao refuses a prefixed device from the config file too (at unseal; here at
        // start, before anything is opened).
        let allow_prefixing = file.allow_audit_log_prefixing.unwrap_or(false);
        if !allow_prefixing
            && file
                .audit
                .iter()
                .any(|d| d.options().contains_key("prefix"))
        {
            return Err(ConfigError::new("audit log prefixing is not allowed"));
        }
        Ok(ServerConfig {
            listeners,
            storage,
            seal,
            api_addr: file.api_addr,
            cluster_addr: file.cluster_addr,
            log_level: file.log_level,
            log_format: file.log_format.unwrap_or_default(),
            dev,
            audit: file.audit,
            unsafe_allow_api_audit_creation: file.unsafe_allow_api_audit_creation.unwrap_or(false),
            allow_audit_log_prefixing: allow_prefixing,
            user_lockouts: file.user_lockouts,
            notes,
        })
    }

    /// The engine configuration this server opens.
    pub fn engine_config(&self) -> strongroom::Config {
        let cfg = if let Some(d) = &self.dev {
            strongroom::Config::dev_with(strongroom::DevOptions {
                root_token_id: d.root_token_id.clone().map(Into::into),
                kv_v1: d.kv_v1,
            })
        } else {
            let cfg = match &self.storage {
                StorageChoice::Memory => strongroom::Config::memory(),
                StorageChoice::Sqlite(p) => strongroom::Config::sqlite(p),
                StorageChoice::Postgres(pg) => {
                    let mut cfg = strongroom::Config::postgres(pg.connection_url.clone());
                    if let Some(t) = &pg.table {
                        cfg = cfg.postgres_table(t.clone());
                    }
                    if let Some(n) = pg.max_parallel {
                        cfg = cfg.postgres_max_connections(n);
                    }
                    if pg.ha_enabled {
                        cfg = cfg.high_availability(strongroom::HaSettings {
                            api_addr: self.api_addr.clone().unwrap_or_default(),
                            cluster_addr: self.cluster_addr.clone().unwrap_or_default(),
                        });
                    }
                    cfg
                }
            };
            match &self.seal {
                Some(SealChoice::File(p)) => cfg.unseal_key_file(p),
                Some(SealChoice::Env(v)) => cfg.unseal_key_env(v.clone()),
                None => cfg,
            }
        };
        let cfg = self
            .audit
            .iter()
            .cloned()
            .fold(cfg, strongroom::Config::audit);
        let mut lockouts = self.user_lockouts.clone();
        if lockout_disabled_by(|v| std::env::var(v).ok()) {
            // OpenBao's `BAO_DISABLE_USER_LOCKOUT` wins over the file (and the tune, which can
            // only turn lockout off).
            for kind in ["all", "userpass", "approle", "ldap"] {
                lockouts
                    .entry(kind.to_string())
                    .or_default()
                    .disable_lockout = Some(true);
            }
        }
        let cfg = lockouts
            .into_iter()
            .fold(cfg, |cfg, (kind, l)| cfg.user_lockout(&kind, l));
        cfg.unsafe_allow_api_audit_creation(self.unsafe_allow_api_audit_creation)
            .allow_audit_log_prefixing(self.allow_audit_log_prefixing)
    }
}

/// How log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text (Vault's `standard`).
    #[default]
    Standard,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `standard` or `json`, as Vault names them.
    pub fn parse(s: &str) -> Result<LogFormat, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "standard" => Ok(LogFormat::Standard),
            "json" => Ok(LogFormat::Json),
            _ => Err(ConfigError::new(format!(
                "unknown log format `{s}`: use standard or json"
            ))),
        }
    }
}

/// Check a log level name (Vault's: `trace`, `debug`, `info`, `warn`, `error`; `warning` and
/// `err` are accepted too) and return its canonical form.
pub fn log_level(s: &str) -> Result<String, ConfigError> {
    let canonical = match s.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" | "notice" => "info",
        "warn" | "warning" => "warn",
        "err" | "error" => "error",
        _ => {
            return Err(ConfigError::new(format!(
                "unknown log level `{s}`: use trace, debug, info, warn or error"
            )));
        }
    };
    Ok(canonical.to_string())
}

fn label(block: &Block) -> Result<&str, ConfigError> {
    match block.labels() {
        [one] => Ok(one.as_str()),
        _ => Err(ConfigError::new(format!(
            "`{}` stanza needs exactly one label, like {} \"type\" {{ ... }}",
            block.identifier(),
            block.identifier()
        ))),
    }
}

fn listener(block: &Block) -> Result<ListenerConfig, ConfigError> {
    let kind = label(block)?;
    if kind != "tcp" {
        return Err(ConfigError::new(format!(
            "listener type `{kind}` is not supported; use listener \"tcp\""
        )));
    }
    let mut address = DEFAULT_ADDRESS.to_string();
    let mut tls_disable = false;
    let mut cert_file = None;
    let mut key_file = None;
    let mut max_request_size = Some(DEFAULT_MAX_REQUEST_SIZE);
    let mut max_request_duration = Some(DEFAULT_MAX_REQUEST_DURATION);
    let mut max_concurrent_requests = Some(DEFAULT_MAX_CONCURRENT_REQUESTS);
    let mut unauthenticated_metrics_access = false;
    let mut max_request_json_memory = Some(DEFAULT_MAX_REQUEST_JSON_MEMORY);
    let mut max_request_json_strings = Some(DEFAULT_MAX_REQUEST_JSON_STRINGS);
    let mut timeouts = HttpTimeouts::default();
    for inner in block.body().blocks() {
        if inner.identifier() != "telemetry" {
            return Err(ConfigError::new(format!(
                "listener block `{}` is not supported (supported: telemetry)",
                inner.identifier()
            )));
        }
        for attr in inner.body().attributes() {
            match attr.key() {
                "unauthenticated_metrics_access" => {
                    unauthenticated_metrics_access =
                        boolean(attr.expr(), "unauthenticated_metrics_access")?;
                }
                other => {
                    return Err(ConfigError::new(format!(
                        "listener telemetry option `{other}` is not supported (supported: unauthenticated_metrics_access)"
                    )));
                }
            }
        }
    }
    for attr in block.body().attributes() {
        let key = attr.key();
        let e = attr.expr();
        match key {
            "address" => address = string(e, key)?,
            "tls_disable" => tls_disable = boolean(e, key)?,
            "tls_cert_file" => cert_file = Some(PathBuf::from(string(e, key)?)),
            "tls_key_file" => key_file = Some(PathBuf::from(string(e, key)?)),
            "max_request_size" => {
                let n = integer(e, key)?;
                max_request_size = match n {
                    0 => Some(DEFAULT_MAX_REQUEST_SIZE),
                    n if n < 0 => None,
                    n => Some(usize::try_from(n).map_err(|_| {
                        ConfigError::new(format!("max_request_size `{n}` is too large"))
                    })?),
                };
            }
            "max_request_duration" => {
                max_request_duration = listener_duration(e, key)?;
            }
            "max_concurrent_requests" => {
                let n = integer(e, key)?;
                max_concurrent_requests = match n {
                    n if n <= 0 => None,
                    n => Some(usize::try_from(n).map_err(|_| {
                        ConfigError::new(format!("max_concurrent_requests `{n}` is too large"))
                    })?),
                };
            }
            // OpenBao: 0 means the default, a negative value no limit.
            "max_request_json_memory" => {
                max_request_json_memory =
                    json_limit(integer(e, key)?, DEFAULT_MAX_REQUEST_JSON_MEMORY);
            }
            "max_request_json_strings" => {
                max_request_json_strings =
                    json_limit(integer(e, key)?, DEFAULT_MAX_REQUEST_JSON_STRINGS);
            }
            "http_read_header_timeout" => timeouts.read_header = http_timeout(e, key)?,
            "http_read_timeout" => timeouts.read = http_timeout(e, key)?,
            "http_write_timeout" => timeouts.write = http_timeout(e, key)?,
            "http_idle_timeout" => timeouts.idle = http_timeout(e, key)?,
            // Set by the Vault/OpenBao Helm chart's HA config; Strongroom's replicas talk
            // through the shared store, not a cluster port, so it is checked and unused.
            "cluster_address" => {
                string(e, key)?;
            }
            other => {
                return Err(ConfigError::new(format!(
                    "listener option `{other}` is not supported (supported: address, tls_disable, tls_cert_file, tls_key_file, max_request_size, max_request_duration, max_concurrent_requests, max_request_json_memory, max_request_json_strings, http_read_header_timeout, http_read_timeout, http_write_timeout, http_idle_timeout)"
                )));
            }
        }
    }
    let tls = if tls_disable {
        None
    } else {
        match (cert_file, key_file) {
            (Some(cert_file), Some(key_file)) => Some(TlsFiles {
                cert_file,
                key_file,
            }),
            _ => {
                return Err(ConfigError::new(format!(
                    "listener `{address}`: tls_cert_file and tls_key_file are required unless tls_disable = true"
                )));
            }
        }
    };
    Ok(ListenerConfig {
        address,
        tls,
        max_request_size,
        max_request_duration,
        max_concurrent_requests,
        unauthenticated_metrics_access,
        max_request_json_memory,
        max_request_json_strings,
        timeouts,
    })
}

/// `max_request_json_*`: zero is OpenBao's default, a negative value no limit.
fn json_limit(n: i64, default: u64) -> Option<u64> {
    match u64::try_from(n) {
        Ok(0) => Some(default),
        Ok(n) => Some(n),
        Err(_) => None,
    }
}

/// `http_*_timeout`: a Go duration (`"10s"`) or integer seconds, as OpenBao's
/// `parseutil.ParseDurationSecond`; zero is Go's zero (see [`HttpTimeouts`]).
fn http_timeout(e: &Expression, key: &str) -> Result<Duration, ConfigError> {
    let text = string(e, key)?;
    let text = text.trim();
    if text.starts_with('-') {
        // Go would make every read fail at once; refuse it instead of serving nothing.
        return Err(ConfigError::new(format!("{key}: must not be negative")));
    }
    crate::http::input::parse_duration(text).map_err(|m| ConfigError::new(format!("{key}: {m}")))
}

/// `max_request_duration`: a Go duration (`"90s"`) or integer seconds; zero means the 90 s
/// default and a negative value no limit.
fn listener_duration(e: &Expression, key: &str) -> Result<Option<Duration>, ConfigError> {
    let text = string(e, key)?;
    let text = text.trim();
    if text.starts_with('-') {
        return Ok(None);
    }
    let d = crate::http::input::parse_duration(text)
        .map_err(|m| ConfigError::new(format!("{key}: {m}")))?;
    Ok(Some(if d.is_zero() {
        DEFAULT_MAX_REQUEST_DURATION
    } else {
        d
    }))
}

fn storage(block: &Block, notes: &mut Vec<String>) -> Result<StorageChoice, ConfigError> {
    let kind = label(block)?;
    let mut path = None;
    let mut url = None;
    let mut table = None;
    let mut ha_enabled = false;
    let mut max_parallel = None;
    for attr in block.body().attributes() {
        let key = attr.key();
        match (kind, key) {
            ("sqlite", "path") => path = Some(PathBuf::from(string(attr.expr(), key)?)),
            ("postgresql", "connection_url") => url = Some(string(attr.expr(), key)?),
            ("postgresql", "table") => {
                let t = string(attr.expr(), key)?;
                check_table(&t)?;
                table = Some(t);
            }
            ("postgresql", "ha_enabled") => ha_enabled = boolean(attr.expr(), key)?,
            ("postgresql", "max_parallel") => {
                let n = integer(attr.expr(), key)?;
                max_parallel = Some(
                    usize::try_from(n)
                        .ok()
                        .filter(|n| (1..=10_000).contains(n))
                        .ok_or_else(|| {
                            ConfigError::new(
                                "storage \"postgresql\" option `max_parallel` must be between 1 and 10000",
                            )
                        })?,
                );
            }
            ("postgresql", "ha_table") => {
                check_table(&string(attr.expr(), key)?)?;
                notes.push(
                    "storage \"postgresql\" option `ha_table` is accepted and not needed: the \
                     leader lock is a PostgreSQL advisory lock scoped to the store's `table`"
                        .into(),
                );
            }
            (_, other) => notes.push(format!(
                "storage \"{kind}\" option `{other}` is accepted and ignored"
            )),
        }
    }
    match kind {
        "inmem" => Ok(StorageChoice::Memory),
        "sqlite" => path
            .map(StorageChoice::Sqlite)
            .ok_or_else(|| ConfigError::new("storage \"sqlite\" needs a `path`")),
        "postgresql" => {
            // Vault reads the URL from the environment when the stanza has none.
            let url = url
                .or_else(|| std::env::var("BAO_PG_CONNECTION_URL").ok())
                .or_else(|| std::env::var("VAULT_PG_CONNECTION_URL").ok())
                .ok_or_else(|| {
                    ConfigError::new(
                        "storage \"postgresql\" needs a `connection_url` (or BAO_PG_CONNECTION_URL)",
                    )
                })?;
            Ok(StorageChoice::Postgres(PostgresStorage {
                connection_url: url,
                table,
                ha_enabled,
                max_parallel,
            }))
        }
        other => Err(ConfigError::new(format!(
            "storage type `{other}` is not supported; use \"sqlite\", \"postgresql\" or \"inmem\""
        ))),
    }
}

/// A `table` or `ha_table` name, refused here already (the engine checks again at open) so a
/// typo stops the server before anything is connected.
fn check_table(name: &str) -> Result<(), ConfigError> {
    strongroom::check_postgres_table_name(name)
        .map_err(|e| ConfigError::new(format!("storage \"postgresql\": {}", e.message())))
}

fn seal(block: &Block) -> Result<SealChoice, ConfigError> {
    let kind = label(block)?;
    let mut value = None;
    for attr in block.body().attributes() {
        let key = attr.key();
        match (kind, key) {
            ("file", "path") | ("env", "variable") => value = Some(string(attr.expr(), key)?),
            (_, other) => {
                return Err(ConfigError::new(format!(
                    "seal \"{kind}\" option `{other}` is not supported"
                )));
            }
        }
    }
    match kind {
        "file" => value
            .map(|p| SealChoice::File(PathBuf::from(p)))
            .ok_or_else(|| ConfigError::new("seal \"file\" needs a `path`")),
        "env" => value
            .map(SealChoice::Env)
            .ok_or_else(|| ConfigError::new("seal \"env\" needs a `variable`")),
        other => Err(ConfigError::new(format!(
            "seal type `{other}` is not supported; use seal \"file\" or seal \"env\""
        ))),
    }
}

/// `audit "<type>" "<path>" { description = "", local = false, options { k = "v" } }` (the
/// options as a block or as `options = { ... }`), checked with OpenBao's texts.
fn audit(block: &Block) -> Result<strongroom::AuditDevice, ConfigError> {
    let (kind, path) = match block.labels() {
        [kind, path] => (kind.as_str(), path.as_str()),
        _ => {
            return Err(ConfigError::new(
                "`audit` stanza needs a type and a path, like audit \"file\" \"path\" { ... }",
            ));
        }
    };
    let context =
        |e: &dyn fmt::Display| ConfigError::new(format!("audit \"{kind}\" \"{path}\": {e}"));
    let mut options: Vec<(String, String)> = Vec::new();
    let mut description = String::new();
    let mut add_options = |attrs: Vec<(String, &Expression)>| -> Result<(), ConfigError> {
        for (k, v) in attrs {
            options.push((k.clone(), string(v, &k)?));
        }
        Ok(())
    };
    for attr in block.body().attributes() {
        match attr.key() {
            "description" => description = string(attr.expr(), "description")?,
            "local" => {
                boolean(attr.expr(), "local")?;
            }
            "options" => match attr.expr() {
                Expression::Object(o) => {
                    add_options(o.iter().map(|(k, v)| (object_key(k), v)).collect())?
                }
                _ => return Err(context(&"`options` must be a map")),
            },
            other => return Err(context(&format!("option `{other}` is not supported"))),
        }
    }
    for inner in block.body().blocks() {
        if inner.identifier() != "options" {
            return Err(context(&format!(
                "block `{}` is not supported",
                inner.identifier()
            )));
        }
        add_options(
            inner
                .body()
                .attributes()
                .map(|a| (a.key().to_string(), a.expr()))
                .collect(),
        )?;
    }
    strongroom::AuditDevice::from_config(kind, path, options)
        .map(|d| d.with_description(description))
        .map_err(|e| context(&e))
}

/// `BAO_DISABLE_USER_LOCKOUT` (or Vault's `VAULT_DISABLE_USER_LOCKOUT`) set to a true value
/// in the environment `env`.
fn lockout_disabled_by(env: impl Fn(&str) -> Option<String>) -> bool {
    ["BAO_DISABLE_USER_LOCKOUT", "VAULT_DISABLE_USER_LOCKOUT"]
        .iter()
        .find_map(|v| env(v).filter(|s| !s.is_empty()))
        .is_some_and(|s| matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "t" | "true"))
}

/// `user_lockout "<type>" { lockout_threshold, lockout_duration, lockout_counter_reset,
/// disable_lockout }`, checked as OpenBao's `ParseUserLockouts`.
fn user_lockout(block: &Block) -> Result<(String, strongroom::UserLockout), ConfigError> {
    let mut kind = block.labels().first().map(|l| l.as_str().to_string());
    let mut out = strongroom::UserLockout::default();
    for attr in block.body().attributes() {
        let key = attr.key();
        let e = attr.expr();
        match key {
            "type" => kind = Some(string(e, key)?),
            "lockout_threshold" => {
                let text = string(e, key)?;
                let n = text.trim().parse::<u64>().map_err(|_| {
                    ConfigError::new(format!(
                        "user_lockout: error parsing lockout_threshold: `{text}` is not a non-negative integer"
                    ))
                })?;
                out.lockout_threshold = Some(n);
            }
            "lockout_duration" | "lockout_counter_reset" => {
                let text = string(e, key)?;
                let d = crate::http::input::parse_duration(text.trim()).map_err(|m| {
                    ConfigError::new(format!("user_lockout: error parsing {key}: {m}"))
                })?;
                if key == "lockout_duration" {
                    out.lockout_duration = Some(d);
                } else {
                    out.lockout_counter_reset = Some(d);
                }
            }
            "disable_lockout" => out.disable_lockout = Some(boolean(e, key)?),
            other => {
                return Err(ConfigError::new(format!(
                    "user_lockout: option `{other}` is not supported (supported: lockout_threshold, lockout_duration, lockout_counter_reset, disable_lockout)"
                )));
            }
        }
    }
    let kind = kind.map(|k| k.to_lowercase()).ok_or_else(|| {
        ConfigError::new(
            "auth type for user lockout must be specified, if it applies to all auth methods specify \"all\" ",
        )
    })?;
    if !matches!(kind.as_str(), "all" | "ldap" | "approle" | "userpass") {
        return Err(ConfigError::new(format!(
            "user_lockout: unsupported auth type \"{kind}\""
        )));
    }
    Ok((kind, out))
}

/// An HCL object key as text.
fn object_key(k: &hcl::ObjectKey) -> String {
    match k {
        hcl::ObjectKey::Identifier(id) => id.to_string(),
        hcl::ObjectKey::Expression(Expression::String(s)) => s.clone(),
        other => other.to_string(),
    }
}

fn string(e: &Expression, key: &str) -> Result<String, ConfigError> {
    match e {
        Expression::String(s) => Ok(s.clone()),
        Expression::Number(n) => Ok(n.to_string()),
        Expression::Bool(b) => Ok(b.to_string()),
        _ => Err(ConfigError::new(format!("`{key}` must be a string"))),
    }
}

/// Vault takes `true`, `"true"`, `1` and `"1"` for booleans.
fn boolean(e: &Expression, key: &str) -> Result<bool, ConfigError> {
    let bad = || ConfigError::new(format!("`{key}` must be a boolean"));
    match e {
        Expression::Bool(b) => Ok(*b),
        Expression::Number(n) => match n.as_i64() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(bad()),
        },
        Expression::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "t" => Ok(true),
            "false" | "0" | "f" | "" => Ok(false),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn integer(e: &Expression, key: &str) -> Result<i64, ConfigError> {
    let bad = || ConfigError::new(format!("`{key}` must be an integer"));
    match e {
        Expression::Number(n) => n.as_i64().ok_or_else(bad),
        Expression::String(s) => s.trim().parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn listener_json_limits_and_http_timeouts_take_openbaos_keys_and_defaults() {
        let cfg = FileConfig::parse(
            r#"
            listener "tcp" {
              address = "127.0.0.1:8300"
              tls_disable = true
            }
            listener "tcp" {
              address = "127.0.0.1:8301"
              tls_disable = true
              max_request_json_memory = 2000
              max_request_json_strings = 10
              http_read_header_timeout = "1s"
              http_read_timeout = 2
              http_write_timeout = "1m"
              http_idle_timeout = "0"
            }
            listener "tcp" {
              address = "127.0.0.1:8302"
              tls_disable = true
              max_request_json_memory = 0
              max_request_json_strings = -1
              http_read_header_timeout = 0
              http_read_timeout = "0s"
            }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.listeners.len(), 3);
        let (default, set, zero) = (&cfg.listeners[0], &cfg.listeners[1], &cfg.listeners[2]);
        assert_eq!(default.max_request_json_memory, Some(34_078_720));
        assert_eq!(default.max_request_json_strings, Some(1000));
        assert_eq!(default.timeouts, HttpTimeouts::default());
        assert_eq!(
            default.timeouts.effective_read_header(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            default.timeouts.effective_read(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(default.timeouts.effective_write(), None);
        assert_eq!(
            default.timeouts.effective_idle(),
            Some(Duration::from_secs(300))
        );
        assert_eq!(set.max_request_json_memory, Some(2000));
        assert_eq!(set.max_request_json_strings, Some(10));
        assert_eq!(set.timeouts.read_header, Duration::from_secs(1));
        assert_eq!(set.timeouts.read, Duration::from_secs(2));
        assert_eq!(
            set.timeouts.effective_write(),
            Some(Duration::from_secs(60))
        );
        // Go's fallbacks: no idle timeout means the read timeout.
        assert_eq!(set.timeouts.effective_idle(), Some(Duration::from_secs(2)));
        // 0 is the default for the JSON limits, a negative value none.
        assert_eq!(zero.max_request_json_memory, Some(34_078_720));
        assert_eq!(zero.max_request_json_strings, None);
        // Without header and read timeouts nothing bounds reading a request.
        assert_eq!(zero.timeouts.effective_read_header(), None);
        assert_eq!(zero.timeouts.effective_read(), None);
        for (bad, why) in [
            (
                "http_read_timeout = \"-1s\"",
                "http_read_timeout: must not be negative",
            ),
            (
                "http_idle_timeout = \"soon\"",
                "http_idle_timeout: time: invalid duration",
            ),
            (
                "max_request_json_strings = \"many\"",
                "max_request_json_strings",
            ),
        ] {
            let e = FileConfig::parse(&format!(
                "listener \"tcp\" {{\n tls_disable = true\n {bad}\n}}"
            ))
            .unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn listener_limits_telemetry_and_log_format() {
        let cfg = FileConfig::parse(
            r#"
            log_format = "json"
            listener "tcp" {
              address = "127.0.0.1:8300"
              tls_disable = true
              max_request_duration = "2m"
              max_concurrent_requests = 64
              telemetry { unauthenticated_metrics_access = true }
            }
            listener "tcp" {
              address = "127.0.0.1:8301"
              tls_disable = true
              max_request_duration = -1
              max_concurrent_requests = 0
            }
            listener "tcp" {
              address = "127.0.0.1:8302"
              tls_disable = true
              max_request_duration = 0
            }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.log_format, Some(LogFormat::Json));
        assert_eq!(cfg.listeners.len(), 3);
        let (a, b, c) = (&cfg.listeners[0], &cfg.listeners[1], &cfg.listeners[2]);
        assert_eq!(a.max_request_duration, Some(Duration::from_secs(120)));
        assert_eq!(a.max_concurrent_requests, Some(64));
        assert!(a.unauthenticated_metrics_access);
        assert_eq!(b.max_request_duration, None);
        assert_eq!(b.max_concurrent_requests, None);
        assert!(!b.unauthenticated_metrics_access);
        assert_eq!(c.max_request_duration, Some(DEFAULT_MAX_REQUEST_DURATION));
        assert_eq!(
            c.max_concurrent_requests,
            Some(DEFAULT_MAX_CONCURRENT_REQUESTS)
        );
        for (bad, why) in [
            (
                "listener \"tcp\" {\ntls_disable = true\nmax_request_duration = \"soon\"\n}",
                "invalid duration",
            ),
            (
                "listener \"tcp\" {\ntls_disable = true\ntelemetry {\nprometheus_retention_time = \"1h\"\n}\n}",
                "prometheus_retention_time",
            ),
            (r#"log_format = "xml""#, "unknown log format"),
        ] {
            let e = FileConfig::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        // -dev's own listener serves metrics without a token, as OpenBao's does.
        let dev = ServerConfig::build(
            FileConfig::default(),
            Some(DevSettings {
                root_token_id: None,
                listen_address: "127.0.0.1:0".into(),
                kv_v1: false,
            }),
        )
        .unwrap();
        assert!(dev.listeners[0].unauthenticated_metrics_access);
    }

    #[test]
    fn parses_a_vault_style_config() {
        let cfg = FileConfig::parse(
            r#"
            ui = true
            disable_mlock = true
            api_addr = "http://127.0.0.1:8200"
            cluster_addr = "https://127.0.0.1:8201"
            log_level = "Debug"
            storage "sqlite" { path = "/tmp/x.db" }
            listener "tcp" {
              address = "0.0.0.0:8200"
              tls_disable = "true"
              max_request_size = 1024
            }
            listener "tcp" {
              address = "0.0.0.0:8443"
              tls_cert_file = "c.pem"
              tls_key_file = "k.pem"
              max_request_size = -1
            }
            seal "file" { path = "/etc/unseal.key" }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.storage, Some(StorageChoice::Sqlite("/tmp/x.db".into())));
        assert_eq!(cfg.log_level.as_deref(), Some("debug"));
        assert_eq!(cfg.listeners.len(), 2);
        assert_eq!(cfg.listeners[0].tls, None);
        assert_eq!(cfg.listeners[0].max_request_size, Some(1024));
        assert_eq!(cfg.listeners[1].max_request_size, None);
        assert!(cfg.listeners[1].tls.is_some());
        assert_eq!(cfg.seal, Some(SealChoice::File("/etc/unseal.key".into())));
        // `ui` and `disable_mlock`; `cluster_addr` is taken (sys/leader shows it with HA).
        assert_eq!(cfg.notes.len(), 2, "{:?}", cfg.notes);
        assert_eq!(cfg.cluster_addr.as_deref(), Some("https://127.0.0.1:8201"));
    }

    #[test]
    fn rejects_what_it_cannot_honour() {
        for (text, needle) in [
            (r#"storage "raft" { path = "x" }"#, "storage type `raft`"),
            (r#"storage "sqlite" {}"#, "needs a `path`"),
            (r#"listener "unix" {}"#, "listener type `unix`"),
            (r#"listener "tcp" { address = "x" }"#, "tls_cert_file"),
            (
                r#"listener "tcp" { tls_disable = "maybe" }"#,
                "must be a boolean",
            ),
            (r#"listener "tcp" { proxy_protocol = 1 }"#, "not supported"),
            (r#"seal "awskms" {}"#, "seal type `awskms`"),
            (r#"log_level = "loud""#, "unknown log level"),
            ("listener {", "invalid HCL"),
        ] {
            let e = FileConfig::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn dev_combines_with_a_config_file() {
        let file = FileConfig::parse(
            r#"
            storage "sqlite" { path = "/tmp/x.db" }
            listener "tcp" {
              address = "127.0.0.1:9200"
              tls_disable = true
            }
            "#,
        )
        .unwrap();
        let dev = DevSettings {
            root_token_id: Some("root".into()),
            listen_address: DEFAULT_ADDRESS.into(),
            kv_v1: false,
        };
        let cfg = ServerConfig::build(file, Some(dev)).unwrap();
        assert_eq!(cfg.storage, StorageChoice::Memory);
        let addrs: Vec<_> = cfg.listeners.iter().map(|l| l.address.as_str()).collect();
        assert_eq!(addrs, ["127.0.0.1:8200", "127.0.0.1:9200"]);
        assert!(
            cfg.notes
                .iter()
                .any(|n| n.contains("storage stanza is ignored"))
        );
    }

    #[test]
    fn without_dev_storage_and_a_listener_are_required() {
        let e = ServerConfig::build(FileConfig::default(), None).unwrap_err();
        assert!(e.to_string().contains("storage stanza is required"));
        let file = FileConfig::parse(r#"storage "inmem" {}"#).unwrap();
        let e = ServerConfig::build(file, None).unwrap_err();
        assert!(e.to_string().contains("listener"));
    }

    #[test]
    fn user_lockout_stanzas() {
        let f = FileConfig::parse(
            r#"
            user_lockout "all" {
              lockout_duration = "10m"
              lockout_counter_reset = "10m"
            }
            user_lockout "userpass" {
              lockout_threshold = "25"
              lockout_duration = 300
            }
            user_lockout "LDAP" { disable_lockout = "true" }
            "#,
        )
        .unwrap();
        assert_eq!(
            f.user_lockouts["all"],
            strongroom::UserLockout {
                lockout_duration: Some(Duration::from_secs(600)),
                lockout_counter_reset: Some(Duration::from_secs(600)),
                ..Default::default()
            }
        );
        assert_eq!(f.user_lockouts["userpass"].lockout_threshold, Some(25));
        assert_eq!(
            f.user_lockouts["userpass"].lockout_duration,
            Some(Duration::from_secs(300))
        );
        assert_eq!(f.user_lockouts["ldap"].disable_lockout, Some(true));
        let env = |set: &'static str| {
            move |v: &str| (v == "BAO_DISABLE_USER_LOCKOUT").then(|| set.to_string())
        };
        assert!(lockout_disabled_by(env("true")));
        assert!(lockout_disabled_by(env("1")));
        assert!(!lockout_disabled_by(env("false")));
        assert!(!lockout_disabled_by(|_| None));
        for bad in [
            r#"user_lockout "kubernetes" {}"#,
            r#"user_lockout {}"#,
            r#"user_lockout "all" { lockout_threshold = "-1" }"#,
            r#"user_lockout "all" { lockout_duration = "soon" }"#,
            r#"user_lockout "all" { lockout_forever = true }"#,
        ] {
            assert!(FileConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn audit_stanzas_and_switches() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let text = format!(
            r#"
            storage "inmem" {{}}
            listener "tcp" {{ tls_disable = true }}
            unsafe_allow_api_audit_creation = true
            allow_audit_log_prefixing = "true"
            audit "file" "cfgfile" {{
              description = "main log"
              local = false
              options {{
                file_path = "{}"
                mode = "0640"
                hmac_accessor = false
              }}
            }}
            audit "socket" "siem" {{
              options = {{ address = "127.0.0.1:9", socket_type = "udp" }}
            }}
            "#,
            log.display()
        );
        let file = FileConfig::parse(&text).unwrap();
        assert!(file.notes.is_empty(), "{:?}", file.notes);
        let cfg = ServerConfig::build(file, None).unwrap();
        assert!(cfg.unsafe_allow_api_audit_creation && cfg.allow_audit_log_prefixing);
        assert_eq!(cfg.audit.len(), 2);
        let main = &cfg.audit[0];
        assert_eq!((main.path(), main.description()), ("cfgfile/", "main log"));
        assert_eq!(main.options()["mode"], "0640");
        assert_eq!(main.options()["hmac_accessor"], "false");
        assert_eq!(cfg.audit[1].options()["socket_type"], "udp");

        // A prefix needs allow_audit_log_prefixing, as in OpenBao.
        let prefixed = |allow: &str| {
            FileConfig::parse(&format!(
                "storage \"inmem\" {{}}\nlistener \"tcp\" {{ tls_disable = true }}\n{allow}\naudit \"file\" \"p\" {{\n  options {{\n    file_path = \"stdout\"\n    prefix = \"P:\"\n  }}\n}}\n"
            ))
            .unwrap()
        };
        let e = ServerConfig::build(prefixed(""), None).unwrap_err();
        assert_eq!(e.to_string(), "audit log prefixing is not allowed");
        let cfg = ServerConfig::build(prefixed("allow_audit_log_prefixing = true"), None).unwrap();
        assert_eq!(cfg.audit[0].options()["prefix"], "P:");

        // Off unless set; OpenBao's texts for bad devices.
        let plain = FileConfig::parse(r#"storage "inmem" {}"#).unwrap();
        assert_eq!(plain.unsafe_allow_api_audit_creation, None);
        for (text, needle) in [
            (
                "audit \"file\" \"x\" {\n options {\n mode = \"0600\"\n }\n}",
                "file_path is required",
            ),
            (
                r#"audit "syslog" "x" {}"#,
                "unknown backend type: \"syslog\"",
            ),
            (r#"audit "file" { }"#, "needs a type and a path"),
            (
                r#"audit "file" "x" { bogus = 1 }"#,
                "option `bogus` is not supported",
            ),
            (
                r#"unsafe_allow_api_audit_creation = "maybe""#,
                "must be a boolean",
            ),
        ] {
            let e = FileConfig::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[tokio::test]
    async fn configured_audit_device_logs_calls() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let text = format!(
            "audit \"file\" \"cfgfile\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}",
            log.display()
        );
        let file = FileConfig::parse(&text).unwrap();
        let dev = DevSettings {
            root_token_id: Some("root".into()),
            listen_address: "127.0.0.1:0".into(),
            kv_v1: false,
        };
        let cfg = ServerConfig::build(file, Some(dev)).unwrap();
        let sr = strongroom::Strongroom::open(cfg.engine_config())
            .await
            .unwrap();
        let listed = sr.client("root").read("sys/audit").await.unwrap().unwrap();
        assert_eq!(listed.get("cfgfile/").unwrap()["type"], "file");
        // Not set in the file: the API may not add devices.
        let e = sr
            .client("root")
            .write(
                "sys/audit/more",
                strongroom::data(serde_json::json!({"type": "file"})),
            )
            .await
            .unwrap_err();
        assert!(
            e.message()
                .starts_with("cannot enable audit device via API")
        );
        assert!(sr.flush_audit(std::time::Duration::from_secs(5)).await);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.lines().count() >= 4, "{text}");
        assert!(text.contains("\"path\":\"sys/audit\""));
    }

    #[test]
    fn postgres_url_is_not_in_debug_output() {
        let s = StorageChoice::Postgres(PostgresStorage::url("postgres://u:hunter2@h/db"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn postgresql_stanza_takes_table_ha_enabled_and_max_parallel() {
        let cfg = FileConfig::parse(
            r#"
            storage "postgresql" {
              connection_url = "postgres://u@h/db"
              table          = "store_b"
              ha_enabled     = "true"
              ha_table       = "store_b_locks"
              max_parallel   = "8"
              max_idle_connections = 2
            }
            api_addr     = "http://10.0.0.2:8200"
            cluster_addr = "https://10.0.0.2:8201"
            listener "tcp" {
              address         = "[::]:8200"
              cluster_address = "[::]:8201"
              tls_disable     = 1
            }
            "#,
        )
        .unwrap();
        let Some(StorageChoice::Postgres(pg)) = &cfg.storage else {
            unreachable!("{:?}", cfg.storage)
        };
        assert_eq!(pg.connection_url, "postgres://u@h/db");
        assert_eq!(pg.table.as_deref(), Some("store_b"));
        assert!(pg.ha_enabled);
        assert_eq!(pg.max_parallel, Some(8));
        assert_eq!(cfg.cluster_addr.as_deref(), Some("https://10.0.0.2:8201"));
        assert!(
            cfg.notes
                .iter()
                .any(|n| n.contains("`ha_table` is accepted and not needed"))
        );
        assert!(
            cfg.notes
                .iter()
                .any(|n| n.contains("`max_idle_connections` is accepted and ignored"))
        );
        // OpenBao's default: HA off.
        let plain =
            FileConfig::parse(r#"storage "postgresql" { connection_url = "postgres://u@h/db" }"#)
                .unwrap();
        let Some(StorageChoice::Postgres(pg)) = &plain.storage else {
            unreachable!()
        };
        assert!(!pg.ha_enabled);
        assert_eq!(pg.table, None);
    }

    #[test]
    fn postgresql_stanza_refuses_bad_table_names_and_values() {
        for (body, want) in [
            (
                r#"table = "kv\"; DROP TABLE x; --""#,
                "table name `kv\\\"; DROP TABLE x; --` is not valid",
            ),
            (r#"table = "1kv""#, "table name `1kv` is not valid"),
            (r#"table = """#, "table name `` is not valid"),
            (
                r#"table = "Kv-Store""#,
                "table name `Kv-Store` is not valid",
            ),
            (r#"ha_table = "a b""#, "table name `a b` is not valid"),
            (r#"ha_enabled = "maybe""#, "`ha_enabled` must be a boolean"),
            (
                r#"max_parallel = "0""#,
                "`max_parallel` must be between 1 and 10000",
            ),
            (
                r#"max_parallel = "many""#,
                "`max_parallel` must be an integer",
            ),
        ] {
            let text = format!(
                "storage \"postgresql\" {{\n connection_url = \"postgres://u@h/db\"\n {body}\n}}"
            );
            let e = FileConfig::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        let long = "t".repeat(64);
        let e = FileConfig::parse(&format!(
            "storage \"postgresql\" {{\n connection_url = \"x\"\n table = \"{long}\"\n}}"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("is not valid"), "{e}");
        assert!(
            FileConfig::parse(&format!(
                "storage \"postgresql\" {{\n connection_url = \"x\"\n table = \"{}\"\n}}",
                "t".repeat(63)
            ))
            .is_ok()
        );
    }
}
