//! Connections and their pools: `config/<name>`, the live plugin per connection (reopened
//! when its config changes) and the revoker beside it.

use super::*;

/// `connection_details` keys that are not connection settings.
pub(super) const CONFIG_FIELDS: [&str; 8] = [
    "name",
    "plugin_name",
    "plugin_version",
    "verify_connection",
    "allowed_roles",
    "root_rotation_statements",
    "root_rotation_period",
    "password_policy",
];

/// A connection config as stored.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct DbConfig {
    pub(super) plugin_name: String,
    #[serde(default)]
    pub(super) plugin_version: String,
    #[serde(default)]
    pub(super) verify_connection: bool,
    #[serde(default)]
    pub(super) allowed_roles: Vec<String>,
    #[serde(default)]
    pub(super) root_credentials_rotate_statements: Vec<String>,
    #[serde(default)]
    pub(super) password_policy: String,
    #[serde(default)]
    pub(super) connection_details: Data,
    /// Strongroom's scheduled root rotation (vault#7143): seconds, 0 = never.
    #[serde(default)]
    pub(super) root_rotation_period: u64,
    /// When the root password was last rotated (RFC 3339; "" = never).
    #[serde(default)]
    pub(super) last_root_rotation: String,
}

impl DbConfig {
    pub(super) fn allows(&self, role: &str) -> bool {
        self.allowed_roles
            .iter()
            .any(|p| template::glob_match(p, role))
    }
}

pub(super) fn no_connection(name: &str) -> Error {
    multi(format!(
        "failed to find entry for connection with name: \"{name}\""
    ))
}

/// The plugin and connection details of `cfg`, hashed (the details hold the password).
pub(super) fn fingerprint(cfg: &DbConfig) -> [u8; 32] {
    use aws_lc_rs::digest;
    let details = serde_json::to_vec(&cfg.connection_details).unwrap_or_default();
    let mut h = digest::Context::new(&digest::SHA256);
    h.update(cfg.plugin_name.as_bytes());
    h.update(&[0]);
    h.update(&details);
    h.finish().as_ref().try_into().unwrap_or([0; 32])
}

/// The URL with a literal password replaced (templated URLs are shown as they are).
pub(super) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = url.get(scheme_end + 3..).unwrap_or("");
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    let cred = rest.get(..at).unwrap_or("");
    match cred.split_once(':') {
        Some((_, pass)) if pass != "{{password}}" => format!(
            "{}{}:xxxxx{}",
            url.get(..scheme_end + 3).unwrap_or(""),
            cred.split(':').next().unwrap_or(""),
            rest.get(at..).unwrap_or("")
        ),
        _ => url.to_string(),
    }
}

pub(super) fn url_has_password(url: &str) -> bool {
    redact_url(url) != url || {
        // Go DSN `user:pass@tcp(...)`.
        !url.contains("://")
            && url
                .split_once('@')
                .and_then(|(c, _)| c.split_once(':'))
                .is_some_and(|(_, p)| !p.is_empty() && p != "{{password}}")
    }
}

/// A list of statements: a JSON list, or one string (a JSON list in a string is unpacked).
pub(super) fn statements(data: &Data, field: &str) -> Result<Option<Vec<String>>> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(Error::invalid_input(format!(
                    "{field} must be a list of strings"
                ))),
            })
            .collect::<Result<Vec<_>>>()
            .map(|v| Some(v.into_iter().filter(|s| !s.trim().is_empty()).collect())),
        Some(Value::String(s)) => {
            if s.trim_start().starts_with('[') {
                if let Ok(list) = serde_json::from_str::<Vec<String>>(s) {
                    return Ok(Some(list));
                }
            }
            Ok(Some(if s.trim().is_empty() {
                Vec::new()
            } else {
                vec![s.clone()]
            }))
        }
        Some(_) => Err(Error::invalid_input(format!(
            "{field} must be a list of strings"
        ))),
    }
}

impl Database {
    /// The live plugin for config `name`, opened (and a pending root rotation recovered) on
    /// first use.
    /// The live plugin for config `name`; rotates the root password first when its
    /// `root_rotation_period` has passed (checked on use: engines have no timer of their own).
    pub(super) async fn connection(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<(DbConfig, Arc<dyn Plugin>)> {
        let (cfg, plugin) = self.open_connection(ctx, name).await?;
        if cfg.root_rotation_period == 0 {
            return Ok((cfg, plugin));
        }
        let period = Duration::from_secs(cfg.root_rotation_period);
        let due = crate::clock::parse_rfc3339(&cfg.last_root_rotation).is_none_or(|last| {
            crate::clock::later(last, period).is_ok_and(|due| ctx.clock.now() >= due)
        });
        if !due {
            return Ok((cfg, plugin));
        }
        // A failed rotation must not stop credentials: the old root password still works (the
        // WAL makes sure of that), and the next use tries again.
        if let Err(e) = self.rotate_root(ctx, name).await {
            tracing::warn!(config = name, error = %e.message(), "scheduled root rotation failed");
            return Ok((cfg, plugin));
        }
        self.open_connection(ctx, name).await
    }

    /// The live plugin for config `name`, opened (and a pending root rotation recovered) on
    /// first use.
    pub(super) async fn open_connection(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<(DbConfig, Arc<dyn Plugin>)> {
        let mut cfg: DbConfig = load(ctx, &format!("config/{name}"))
            .await?
            .ok_or_else(|| no_connection(name))?;
        let mut conns = self.conns.lock().await;
        if let Some(live) = conns.get(name) {
            if live.fingerprint == fingerprint(&cfg) {
                return Ok((cfg, live.plugin.clone()));
            }
            // Changed under us (another process): a new pool. The old one closes when the
            // calls still using it finish.
            conns.remove(name);
        }
        if let Some(wal) = load::<PasswordWal>(ctx, &format!("wal/root/{name}")).await? {
            cfg = self.recover_root(ctx, name, cfg, wal).await?;
        }
        let settings = ConnectionSettings::from_details(&cfg.connection_details)?;
        let p: Arc<dyn Plugin> = Arc::from(plugin::open(&cfg.plugin_name, &settings)?);
        conns.insert(
            name.to_string(),
            Live {
                fingerprint: fingerprint(&cfg),
                plugin: p.clone(),
                revoker: Arc::new(revoker::Revoker::new(p.clone())),
            },
        );
        Ok((cfg, p))
    }

    /// The revocation queue of config `name` (see [`revoker`]).
    pub(super) async fn revoker(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<Arc<revoker::Revoker>> {
        let (_, plugin) = self.connection(ctx, name).await?;
        let conns = self.conns.lock().await;
        match conns.get(name) {
            Some(live) if Arc::ptr_eq(&live.plugin, &plugin) => Ok(live.revoker.clone()),
            // Replaced meanwhile (a config change): this call alone on the plugin it got.
            _ => Ok(Arc::new(revoker::Revoker::new(plugin))),
        }
    }

    /// Config `name`'s revocation batches so far, and the users they held.
    // Only the plugins' tests read them.
    #[cfg(all(test, any(feature = "postgres", feature = "mysql", feature = "redis")))]
    pub(super) async fn revocation_stats(&self, name: &str) -> (u64, u64) {
        self.conns
            .lock()
            .await
            .get(name)
            .map_or((0, 0), |live| live.revoker.stats())
    }

    pub(super) async fn forget(&self, name: &str) {
        let old = self.conns.lock().await.remove(name);
        if let Some(live) = old {
            live.plugin.close().await;
        }
    }

    // ---- config ----

    pub(super) async fn write_config(
        &self,
        ctx: &EngineContext,
        name: &str,
        data: &Data,
    ) -> Result<Option<Response>> {
        check_name("connection", name).map_err(|_| Error::backend_unsupported_path())?;
        let existing: Option<DbConfig> = load(ctx, &format!("config/{name}")).await?;
        let plugin_name = match params::string(data, "plugin_name")? {
            Some(p) if !p.is_empty() => p,
            _ => match &existing {
                Some(c) => c.plugin_name.clone(),
                None => return Err(Error::invalid_input("empty plugin name")),
            },
        };
        if !plugin::PLUGINS.contains(&plugin_name.as_str()) {
            return Err(Error::invalid_input(format!(
                "error creating database object: invalid database version: 2 errors occurred:\n\t* plugin not found in the catalog: {plugin_name}\n\t* plugin not found in the catalog: {plugin_name}\n\n"
            )));
        }
        let mut details = existing
            .as_ref()
            .map(|c| c.connection_details.clone())
            .unwrap_or_default();
        for (k, v) in data {
            if !CONFIG_FIELDS.contains(&k.as_str()) {
                details.insert(k.clone(), v.clone());
            }
        }
        let cfg = DbConfig {
            plugin_name,
            plugin_version: params::string(data, "plugin_version")?
                .or_else(|| existing.as_ref().map(|c| c.plugin_version.clone()))
                .unwrap_or_default(),
            verify_connection: params::bool(data, "verify_connection")?.unwrap_or(true),
            allowed_roles: match string_list(data, "allowed_roles")? {
                Some(r) => r,
                None => existing
                    .as_ref()
                    .map(|c| c.allowed_roles.clone())
                    .unwrap_or_default(),
            },
            root_credentials_rotate_statements: match statements(data, "root_rotation_statements")?
            {
                Some(s) => s,
                None => existing
                    .as_ref()
                    .map(|c| c.root_credentials_rotate_statements.clone())
                    .unwrap_or_default(),
            },
            password_policy: params::string(data, "password_policy")?
                .or_else(|| existing.as_ref().map(|c| c.password_policy.clone()))
                .unwrap_or_default(),
            connection_details: details,
            root_rotation_period: match params::duration(data, "root_rotation_period")? {
                Some(d) => d.as_secs(),
                None => existing
                    .as_ref()
                    .map(|c| c.root_rotation_period)
                    .unwrap_or(0),
            },
            last_root_rotation: existing
                .as_ref()
                .map(|c| c.last_root_rotation.clone())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| crate::clock::rfc3339(ctx.clock.now())),
        };
        if cfg.root_rotation_period > 0 {
            if cfg.root_rotation_period < 5 {
                return Err(Error::invalid_input(
                    "root_rotation_period must be 5 seconds or more",
                ));
            }
            let has = |k: &str| {
                params::string(&cfg.connection_details, k)
                    .ok()
                    .flatten()
                    .is_some_and(|v| !v.is_empty())
            };
            if !has("username") || !has("password") {
                return Err(Error::invalid_input(
                    "root_rotation_period needs username and password in the configuration",
                ));
            }
        }
        let settings = ConnectionSettings::from_details(&cfg.connection_details)?;
        let p: Arc<dyn Plugin> = Arc::from(plugin::open(&cfg.plugin_name, &settings)?);
        if cfg.verify_connection {
            if let Err(e) = p.verify().await {
                p.close().await;
                return Err(Error::invalid_input(format!(
                    "error creating database object: error verifying connection: {}",
                    e.message()
                )));
            }
        }
        save(ctx, &format!("config/{name}"), &cfg).await?;
        let live = Live {
            fingerprint: fingerprint(&cfg),
            revoker: Arc::new(revoker::Revoker::new(p.clone())),
            plugin: p,
        };
        let old = self.conns.lock().await.insert(name.to_string(), live);
        if let Some(old) = old {
            old.plugin.close().await;
        }
        let url = params::string(&cfg.connection_details, "connection_url")?.unwrap_or_default();
        if url_has_password(&url) {
            let mut r = Response::default();
            r.warn("Password found in connection_url, use a templated url to enable root rotation and prevent read access to password information.");
            return Ok(Some(r));
        }
        Ok(None)
    }

    pub(super) async fn read_config(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<Option<Response>> {
        let Some(cfg) = load::<DbConfig>(ctx, &format!("config/{name}")).await? else {
            return Ok(None);
        };
        let mut details = cfg.connection_details.clone();
        details.remove("password");
        if let Some(Value::String(u)) = details.get("connection_url").cloned() {
            details.insert("connection_url".into(), Value::String(redact_url(&u)));
        }
        let mut resp = Response::with_data(crate::data(json!({
            "allowed_roles": cfg.allowed_roles,
            "connection_details": details,
            "password_policy": cfg.password_policy,
            "plugin_name": cfg.plugin_name,
            "plugin_version": cfg.plugin_version,
            "root_credentials_rotate_statements": cfg.root_credentials_rotate_statements,
        })));
        if cfg.root_rotation_period > 0 {
            if let Some(d) = resp.data.as_mut() {
                d.insert(
                    "root_rotation_period".into(),
                    json!(cfg.root_rotation_period),
                );
                d.insert("last_root_rotation".into(), json!(cfg.last_root_rotation));
            }
        }
        Ok(Some(resp))
    }

    // ---- roles ----

    pub(super) async fn list(&self, ctx: &EngineContext, prefix: &str) -> Result<Option<Response>> {
        Ok(crate::util::list_response(
            ctx.storage.list(prefix, &Page::all()).await?,
        ))
    }
}
