//! The mount table and routing: which engine serves a path. The table is persisted behind the
//! barrier at `core/mounts`; each mount's engine sees only `logical/<uuid>/`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::request::Data;
use crate::secrets::{self, Engine, EngineContext};
use crate::storage::Backend;
use crate::storage::view::View;

/// The mount type of `identity/` (served by the pipeline, never instantiated as an engine).
pub(crate) const IDENTITY_KIND: &str = "identity";

/// Where the secrets mount table is stored (behind the barrier).
pub(crate) const MOUNTS_PATH: &str = "core/mounts";
/// Where the auth mount table is stored (behind the barrier).
pub(crate) const AUTH_PATH: &str = "core/auth";
/// The system-wide default and maximum lease TTL (OpenBao: 768h = 32 days).
pub(crate) const SYSTEM_MAX_TTL: Duration = Duration::from_secs(768 * 3600);
/// OpenBao's version string, as reported by `running_plugin_version`.
pub(crate) const BAO_VERSION: &str = "2.7.2";

/// Tunable mount settings (`config` in `sys/mounts`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct MountConfig {
    /// Seconds; 0 = system default.
    #[serde(default)]
    pub default_lease_ttl: u64,
    /// Seconds; 0 = system default.
    #[serde(default)]
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
    /// `""`, `"unauth"` (listed by `sys/internal/ui/mounts` without a token) or `"hidden"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listing_visibility: String,
    /// An auth mount's `user_lockout_config` tune (login lockout), once tuned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_lockout_config: Option<crate::auth::lockout::MountLockout>,
}

/// One mount.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct MountEntry {
    /// With trailing `/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub accessor: String,
    pub uuid: String,
    #[serde(default)]
    pub config: MountConfig,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
    #[serde(default)]
    pub external_entropy_access: bool,
}

impl MountEntry {
    /// A new entry with a fresh uuid and accessor.
    pub(crate) fn new(path: &str, kind: &str) -> MountEntry {
        let uuid = uuid::Uuid::new_v4().to_string();
        let accessor = format!(
            "{}_{}",
            kind,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        MountEntry {
            path: path.to_string(),
            kind: kind.to_string(),
            description: String::new(),
            accessor,
            uuid,
            config: MountConfig::default(),
            options: None,
            local: false,
            seal_wrap: false,
            external_entropy_access: false,
        }
    }

    pub(crate) fn default_ttl(&self) -> Duration {
        match self.config.default_lease_ttl {
            0 => self.max_ttl().min(SYSTEM_MAX_TTL),
            n => Duration::from_secs(n),
        }
    }

    pub(crate) fn max_ttl(&self) -> Duration {
        match self.config.max_lease_ttl {
            0 => SYSTEM_MAX_TTL,
            n => Duration::from_secs(n),
        }
    }

    /// The `sys/mounts` JSON for this entry (OpenBao's fields).
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "accessor": self.accessor,
            "config": {
                "default_lease_ttl": self.config.default_lease_ttl,
                "force_no_cache": self.config.force_no_cache,
                "max_lease_ttl": self.config.max_lease_ttl,
            },
            "description": self.description,
            "external_entropy_access": self.external_entropy_access,
            "local": self.local,
            "options": self.options,
            "plugin_version": "",
            "running_plugin_version": format!("v{BAO_VERSION}+builtin.bao"),
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.kind,
            "uuid": self.uuid,
        });
        if let Some(m) = v.as_object_mut() {
            // OpenBao's plugin catalog marks its builtin secrets plugins (not database,
            // not the core mounts) as supported.
            if matches!(self.kind.as_str(), "kv" | "transit" | "pki") {
                m.insert("deprecation_status".into(), json!("supported"));
            }
            // The system mount as OpenBao describes it.
            if self.kind == "system" {
                m.insert("seal_wrap".into(), json!(true));
            }
            if let Some(cfg) = m.get_mut("config").and_then(Value::as_object_mut) {
                if self.kind == "system" {
                    cfg.insert("passthrough_request_headers".into(), json!(["Accept"]));
                }
                if self.kind == IDENTITY_KIND {
                    cfg.insert(
                        "passthrough_request_headers".into(),
                        json!(["Authorization"]),
                    );
                }
                if !self.config.listing_visibility.is_empty() {
                    cfg.insert(
                        "listing_visibility".into(),
                        json!(self.config.listing_visibility),
                    );
                }
            }
        }
        // OpenBao shows the lockout tune in the mount's config once it is set.
        if let (Some(l), Some(cfg)) = (
            &self.config.user_lockout_config,
            v.get_mut("config").and_then(Value::as_object_mut),
        ) {
            cfg.insert("user_lockout_config".into(), l.to_json());
        }
        v
    }
}

/// A mount with its live engine.
/// What mounts store their entries in: the barrier (engines then read through its decoded
/// cache), or any backend (tests).
#[derive(Clone)]
pub(crate) enum MountStorage {
    Barrier(Arc<crate::barrier::Barrier>),
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "router tests mount over plain storage")
    )]
    Plain(Arc<dyn Backend>),
}

impl MountStorage {
    /// A mount's view under `prefix`.
    fn view(&self, prefix: String) -> View {
        match self {
            MountStorage::Barrier(b) => View::of_barrier(b, prefix),
            MountStorage::Plain(b) => View::new(b.clone(), prefix),
        }
    }
}

pub(crate) struct Mounted {
    pub entry: MountEntry,
    pub engine: Arc<dyn Engine>,
    pub ctx: EngineContext,
}

/// The live routing table (rebuilt from the stored table on unseal and on every change).
#[derive(Default)]
pub(crate) struct Router {
    mounts: HashMap<String, Arc<Mounted>>,
    /// The longest mount path: longer prefixes of a request path cannot match.
    longest: usize,
}

/// Clean a mount path given by a caller: no leading `/`, exactly one trailing `/`.
pub(crate) fn normalize_mount_path(path: &str) -> Result<String> {
    let p = path.trim_start_matches('/');
    let p = p.trim_end_matches('/');
    if p.is_empty() {
        return Err(Error::invalid_input("path cannot be empty"));
    }
    if p.split('/').any(|s| s.is_empty() || s == "." || s == "..")
        || p.chars().any(|c| c.is_control())
    {
        return Err(Error::invalid_input(format!("invalid mount path `{p}`")));
    }
    Ok(format!("{p}/"))
}

impl Router {
    /// Build the router from stored entries. An engine of `previous` that serves the same
    /// mount (path, uuid, type and options unchanged) and says it may be reused carries on,
    /// with what it holds (the database engine's connection pools); the rest are new.
    pub(crate) fn build(
        entries: &[MountEntry],
        storage: &MountStorage,
        clock: &SharedClock,
        previous: Option<&Router>,
    ) -> Result<Router> {
        let mut mounts = HashMap::new();
        // `sys/` is listed in the table but served by the pipeline itself.
        // So is `identity/`.
        for e in entries
            .iter()
            .filter(|e| e.kind != "system" && e.kind != IDENTITY_KIND)
        {
            let reused = previous
                .and_then(|r| r.mounts.get(&e.path))
                .filter(|old| {
                    old.entry.uuid == e.uuid
                        && old.entry.kind == e.kind
                        && old.entry.options == e.options
                        && old.engine.reusable_across_reloads()
                })
                .map(|old| old.engine.clone());
            let m = Router::mount_with(e, storage, clock, reused)?;
            mounts.insert(e.path.clone(), Arc::new(m));
        }
        let longest = mounts.keys().map(String::len).max().unwrap_or(0);
        Ok(Router { mounts, longest })
    }

    pub(crate) fn instantiate(
        e: &MountEntry,
        storage: &MountStorage,
        clock: &SharedClock,
    ) -> Result<Mounted> {
        Router::mount_with(e, storage, clock, None)
    }

    /// Mount `e` with `engine`, or a new engine of its type when `None`.
    fn mount_with(
        e: &MountEntry,
        storage: &MountStorage,
        clock: &SharedClock,
        engine: Option<Arc<dyn secrets::Engine>>,
    ) -> Result<Mounted> {
        let engine = match engine {
            Some(engine) => engine,
            None => {
                let options = e.options.clone().unwrap_or_default();
                secrets::new_engine(&e.kind, &options).ok_or_else(|| {
                    Error::invalid_input(format!("plugin not found in the catalog: {}", e.kind))
                })?
            }
        };
        let ctx = EngineContext {
            storage: storage.view(format!("logical/{}/", e.uuid)),
            password_policies: storage.view(crate::password_policy::PREFIX.to_string()),
            clock: clock.clone(),
            default_lease_ttl: e.default_ttl(),
            max_lease_ttl: e.max_ttl(),
        };
        Ok(Mounted {
            entry: e.clone(),
            engine,
            ctx,
        })
    }

    /// The mount serving `path` (longest prefix at a segment boundary) and the path relative to
    /// it.
    pub(crate) fn route<'p>(&self, path: &'p str) -> Option<(Arc<Mounted>, &'p str)> {
        // `secret` alone addresses the mount `secret/`: the whole path, as a mount path.
        if !path.is_empty() && !path.ends_with('/') && path.len() < self.longest {
            if let Some(m) = self.mounts.get(&format!("{path}/")) {
                return Some((m.clone(), ""));
            }
        }
        // Then every prefix ending at a `/`, longest first, skipping those longer than any
        // mount path (no allocation, a few hash lookups at most).
        for (i, _) in path.rmatch_indices('/') {
            let end = i + 1;
            if end > self.longest {
                continue;
            }
            let Some(prefix) = path.get(..end) else {
                continue;
            };
            if let Some(m) = self.mounts.get(prefix) {
                return Some((m.clone(), path.get(end..).unwrap_or("")));
            }
        }
        None
    }

    /// Every mounted engine (for periodic work).
    pub(crate) fn mounted(&self) -> Vec<Arc<Mounted>> {
        self.mounts.values().cloned().collect()
    }
}

/// Read the stored table.
pub(crate) async fn load_table(storage: &dyn Backend) -> Result<Vec<MountEntry>> {
    match storage.get(MOUNTS_PATH).await? {
        None => Ok(Vec::new()),
        Some(raw) => {
            serde_json::from_slice(&raw).map_err(|_| Error::storage("mount table is corrupt"))
        }
    }
}

/// Decode the stored auth table (as stored: the `token/` entry may be missing).
pub(crate) fn decode_auth_table(raw: &[u8]) -> Result<Vec<MountEntry>> {
    serde_json::from_slice(raw).map_err(|_| Error::storage("auth table is corrupt"))
}

/// Read the stored auth table (the `token/` entry is always there).
pub(crate) async fn load_auth_table(storage: &dyn Backend) -> Result<Vec<MountEntry>> {
    let mut v: Vec<MountEntry> = match storage.get(AUTH_PATH).await? {
        None => Vec::new(),
        Some(raw) => decode_auth_table(&raw)?,
    };
    if !v.iter().any(|e| e.path == "token/") {
        v.push(token_auth_entry());
    }
    Ok(v)
}

/// The built-in token auth mount (`auth_token_<8 hex>` accessor).
pub(crate) fn token_auth_entry() -> MountEntry {
    let mut e = MountEntry::new("token/", "token");
    e.accessor = format!(
        "auth_token_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    e.description = "token based credentials".into();
    e
}

/// Encode the table for storage.
pub(crate) fn encode_table(entries: &[MountEntry]) -> Result<Vec<u8>> {
    serde_json::to_vec(entries)
        .map_err(|e| Error::internal("cannot encode mount table").with_source(e))
}

/// Whether mount settings come with a new mount or tune an existing one: OpenBao checks
/// them differently and answers with different texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigChange {
    Enable,
    Tune,
}

/// Read the `config` object of a mount request into a [`MountConfig`].
///
/// As OpenBao, a mount's maximum may exceed the system's 768h (every PKI guide tunes a root CA
/// mount to `87600h`); only Go's duration limit bounds it, through the parser. Leases on the
/// mount are then capped by its own maximum.
pub(crate) fn parse_config(
    cfg: &Data,
    base: &MountConfig,
    change: ConfigChange,
) -> Result<MountConfig> {
    let mut out = base.clone();
    if let Some(d) = crate::util::params::duration(cfg, "default_lease_ttl")? {
        out.default_lease_ttl = d.as_secs();
    }
    if let Some(d) = crate::util::params::duration(cfg, "max_lease_ttl")? {
        out.max_lease_ttl = d.as_secs();
    }
    if let Some(b) = crate::util::params::bool(cfg, "force_no_cache")? {
        out.force_no_cache = b;
    }
    if let Some(v) = crate::util::params::string(cfg, "listing_visibility")? {
        if !matches!(v.as_str(), "" | "unauth" | "hidden") {
            return Err(Error::invalid_input(format!(
                "invalid listing_visibility {v}"
            )));
        }
        out.listing_visibility = v;
    }
    let (default, max) = (out.default_lease_ttl, out.max_lease_ttl);
    match change {
        // OpenBao's `handleMount`/`handleEnableAuth`.
        ConfigChange::Enable if max == 0 && default > SYSTEM_MAX_TTL.as_secs() => {
            return Err(Error::invalid_input(format!(
                "given default lease TTL greater than system max lease TTL of {}",
                SYSTEM_MAX_TTL.as_secs()
            )));
        }
        ConfigChange::Enable if max != 0 && default > max => {
            return Err(Error::invalid_input(
                "given default lease TTL greater than given max lease TTL",
            ));
        }
        // OpenBao's `tuneMountTTLs`: only a mount maximum bounds the default (a default above
        // the system maximum is accepted and capped when a lease is issued).
        ConfigChange::Tune if max != 0 && default > max => {
            return Err(Error::invalid_input(format!(
                "backend max lease TTL of {max} would be less than backend default lease TTL of {default}"
            )));
        }
        _ => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use crate::storage::MemoryBackend;

    #[test]
    fn routes_by_longest_segment_prefix() {
        let storage = MountStorage::Plain(Arc::new(MemoryBackend::new()));
        let clock: SharedClock = Arc::new(VirtualClock::new());
        let mut a = MountEntry::new("secret/", "kv");
        a.options = Some(BTreeMap::from([("version".into(), "2".into())]));
        let b = MountEntry::new("secret/team/", "kv");
        let c = MountEntry::new("secretx/", "kv");
        let r = Router::build(&[a, b, c], &storage, &clock, None).unwrap();
        let (m, rest) = r.route("secret/data/app").unwrap();
        assert_eq!((m.entry.path.as_str(), rest), ("secret/", "data/app"));
        let (m, rest) = r.route("secret/team/x").unwrap();
        assert_eq!((m.entry.path.as_str(), rest), ("secret/team/", "x"));
        let (m, rest) = r.route("secret").unwrap();
        assert_eq!((m.entry.path.as_str(), rest), ("secret/", ""));
        assert!(r.route("secre/x").is_none());
    }

    #[test]
    fn mount_paths_are_normalized_and_validated() {
        assert_eq!(normalize_mount_path("/kv//").unwrap(), "kv/");
        assert_eq!(normalize_mount_path("a/b").unwrap(), "a/b/");
        assert!(normalize_mount_path("").is_err());
        assert!(normalize_mount_path("a/../b").is_err());
        assert!(normalize_mount_path("a\nb").is_err());
    }

    #[test]
    fn accessor_shape_and_ttls() {
        let mut e = MountEntry::new("kv/", "kv");
        assert!(e.accessor.starts_with("kv_") && e.accessor.len() == 11);
        assert_eq!(e.default_ttl(), SYSTEM_MAX_TTL);
        e.config.max_lease_ttl = 3600;
        assert_eq!(e.default_ttl(), Duration::from_secs(3600));
        let cfg = crate::data(json!({"default_lease_ttl": "2h", "max_lease_ttl": "1h"}));
        let base = MountConfig::default();
        assert_eq!(
            parse_config(&cfg, &base, ConfigChange::Enable)
                .unwrap_err()
                .message(),
            "given default lease TTL greater than given max lease TTL"
        );
        assert_eq!(
            parse_config(&cfg, &base, ConfigChange::Tune)
                .unwrap_err()
                .message(),
            "backend max lease TTL of 3600 would be less than backend default lease TTL of 7200"
        );
        let cfg = crate::data(json!({"default_lease_ttl": "30m", "max_lease_ttl": "1h"}));
        let c = parse_config(&cfg, &base, ConfigChange::Enable).unwrap();
        assert_eq!((c.default_lease_ttl, c.max_lease_ttl), (1800, 3600));
    }

    /// As OpenBao: a mount maximum above the system's 768h is accepted on enable and on tune
    /// (the PKI tutorial's `87600h`), and leases then default to the system's 768h under it.
    #[test]
    fn mount_max_may_exceed_the_system_max() {
        let base = MountConfig::default();
        let ten_years = crate::data(json!({"max_lease_ttl": "87600h"}));
        for change in [ConfigChange::Enable, ConfigChange::Tune] {
            let c = parse_config(&ten_years, &base, change).unwrap();
            assert_eq!(c.max_lease_ttl, 87600 * 3600);
        }
        let mut e = MountEntry::new("pki/", "pki");
        e.config = parse_config(&ten_years, &base, ConfigChange::Enable).unwrap();
        assert_eq!(e.max_ttl(), Duration::from_secs(87600 * 3600));
        assert_eq!(e.default_ttl(), SYSTEM_MAX_TTL);
        // Only Go's limit bounds it.
        let most = crate::data(json!({"max_lease_ttl": "9223372036"}));
        assert!(parse_config(&most, &base, ConfigChange::Tune).is_ok());
        let past = crate::data(json!({"max_lease_ttl": "2562048h"}));
        assert!(parse_config(&past, &base, ConfigChange::Tune).is_err());
        // A default above 768h needs a mount maximum when enabling, not when tuning.
        let year = crate::data(json!({"default_lease_ttl": "8760h"}));
        assert_eq!(
            parse_config(&year, &base, ConfigChange::Enable)
                .unwrap_err()
                .message(),
            "given default lease TTL greater than system max lease TTL of 2764800"
        );
        assert!(parse_config(&year, &base, ConfigChange::Tune).is_ok());
    }
}
