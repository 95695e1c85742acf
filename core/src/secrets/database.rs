//! The database secrets engine (mount type `database`): connection configs, roles with
//! dynamic credentials under leases, static roles with rotated passwords, and root rotation,
//! over the PostgreSQL, MySQL/MariaDB and Redis plugins.
//!
//! Storage layout (under the mount's view): `config/<name>`, `role/<name>`,
//! `static-role/<name>`, `issued/<username>` (every dynamic user the engine created and has not
//! dropped yet, written before the user is created: the reconciler's ground truth),
//! `intent/<username>` (a user being created: written with `issued/` before the CREATE and
//! deleted in the very transaction that records its lease, so one left behind is a user no
//! lease will ever revoke, which [`Engine::recover`] drops) and `wal/root/<name>`,
//! `wal/static/<name>` (a new password kept before the database changes, so a crash or a
//! storage failure cannot lose it: vault#6042).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::request::{Data, LeaseInfo, Operation, Request, Response};
use crate::secrets::{Engine, EngineContext, LeasedSecret};
use crate::storage::{Backend, Page, TxnOp};
use crate::util::names::NameRule;
use crate::util::params;
use crate::util::ttl::{self, TtlLimits, TtlRequest};

#[cfg(feature = "mysql")]
mod mysql;
mod plugin;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod revoker;
mod template;

use plugin::{ConnectionSettings, NewUser, Plugin};
use template::check_name;

/// OpenBao adds this to `{{expiration}}` so the database never ends a user before its lease.
const EXPIRATION_BUFFER: Duration = Duration::from_secs(5);
/// How long past its max TTL a known user may linger (revocation retries) before the
/// reconciler calls it an orphan.
const ORPHAN_GRACE: time::Duration = time::Duration::hours(1);
/// How old a creation intent must be before recovery treats it as abandoned. Issuing takes
/// milliseconds; the margin covers a slow database, and another live process sharing the
/// store whose issue is still in flight (its intent must not be dropped under it).
const INTENT_GRACE: time::Duration = time::Duration::seconds(60);

/// `connection_details` keys that are not connection settings.
const CONFIG_FIELDS: [&str; 8] = [
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
struct DbConfig {
    plugin_name: String,
    #[serde(default)]
    plugin_version: String,
    #[serde(default)]
    verify_connection: bool,
    #[serde(default)]
    allowed_roles: Vec<String>,
    #[serde(default)]
    root_credentials_rotate_statements: Vec<String>,
    #[serde(default)]
    password_policy: String,
    #[serde(default)]
    connection_details: Data,
    /// Strongroom's scheduled root rotation (vault#7143): seconds, 0 = never.
    #[serde(default)]
    root_rotation_period: u64,
    /// When the root password was last rotated (RFC 3339; "" = never).
    #[serde(default)]
    last_root_rotation: String,
}

impl DbConfig {
    fn allows(&self, role: &str) -> bool {
        self.allowed_roles
            .iter()
            .any(|p| template::glob_match(p, role))
    }
}

/// A dynamic role as stored.
#[derive(Clone, Serialize, Deserialize)]
struct Role {
    db_name: String,
    #[serde(default)]
    creation_statements: Vec<String>,
    #[serde(default)]
    revocation_statements: Vec<String>,
    #[serde(default)]
    renew_statements: Vec<String>,
    #[serde(default)]
    rollback_statements: Vec<String>,
    #[serde(default)]
    default_ttl: u64,
    #[serde(default)]
    max_ttl: u64,
    #[serde(default = "password_type")]
    credential_type: String,
}

/// A static role as stored (with its current password, behind the barrier).
#[derive(Clone, Serialize, Deserialize)]
struct StaticRole {
    db_name: String,
    username: String,
    rotation_period: u64,
    #[serde(default)]
    rotation_statements: Vec<String>,
    #[serde(default = "password_type")]
    credential_type: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    last_vault_rotation: String,
}

/// A dynamic user being created (see the module docs).
#[derive(Serialize, Deserialize)]
struct Intent {
    db_name: String,
    role: String,
    #[serde(default)]
    revocation_statements: Vec<String>,
    /// When the intent was written (RFC 3339).
    created: String,
}

/// A new password written before the database is changed.
#[derive(Serialize, Deserialize)]
struct PasswordWal {
    username: String,
    new_password: String,
}

/// A dynamic user the engine created and has not dropped yet.
#[derive(Serialize, Deserialize)]
struct Issued {
    db_name: String,
    role: String,
    /// Issue time + max TTL (RFC 3339): no lease can outlive it, so a user still here after
    /// it was lost between creation and lease registration (a crash) and is an orphan.
    #[serde(default)]
    max_expiry: String,
}

/// OpenBao's 500 for errors its database backend wraps in a multierror.
fn multi(msg: impl std::fmt::Display) -> Error {
    Error::internal(format!("1 error occurred:\n\t* {msg}\n\n"))
}

/// A database error text may quote the failing statement, and with it a password or a piece
/// of one (PostgreSQL's `syntax error at or near "abc"` names one token). The whole password
/// is replaced, as OpenBao does; when a piece of it remains, the quoted part goes too.
fn scrub(e: Error, secret: &str) -> Error {
    if secret.is_empty() {
        return e;
    }
    let mut msg = e.message().replace(secret, "[password]");
    let chars: Vec<char> = secret.chars().collect();
    // A quoted token that is a piece of the password (`near "9"`), or any four characters of it.
    let quoted_piece = msg
        .split(['"', '\''])
        .skip(1)
        .step_by(2)
        .any(|q| !q.is_empty() && secret.contains(q));
    let leaks = quoted_piece
        || chars
            .windows(4)
            .any(|w| msg.contains(&w.iter().collect::<String>()));
    if leaks {
        msg = match msg.find(" near ") {
            Some(pos) => format!("{} near [redacted]", msg.get(..pos).unwrap_or("")),
            None => match msg.find(": ") {
                Some(pos) => format!("{}: [redacted]", msg.get(..pos).unwrap_or("")),
                None => "the database error quoted the password; [redacted]".to_string(),
            },
        };
    }
    if msg == e.message() {
        return e;
    }
    Error::new(e.code(), msg)
}

fn no_connection(name: &str) -> Error {
    multi(format!(
        "failed to find entry for connection with name: \"{name}\""
    ))
}

/// A new password: from the config's `password_policy` (`sys/policies/password`), else
/// OpenBao's default generator.
async fn new_password(ctx: &EngineContext, cfg: &DbConfig) -> Result<String> {
    if cfg.password_policy.is_empty() {
        return Ok(template::password());
    }
    crate::password_policy::generate(&ctx.password_policies, &cfg.password_policy).await
}

fn password_type() -> String {
    "password".into()
}

/// The engine for one `database` mount.
pub(crate) struct Database {
    /// One live plugin (and so one bounded pool) per connection config.
    conns: tokio::sync::Mutex<HashMap<String, Live>>,
    /// One lock per static role: rotations of a role (a read that finds it due, the
    /// scheduled run, `rotate-role`) take turns, so two can never set different passwords in
    /// the database and store them in the opposite order.
    rotations: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A connection config's live plugin, and what it was built from.
struct Live {
    /// [`fingerprint`] of the config the pool was opened with: the engine outlives reloads of
    /// the mount table, so a config changed by another process sharing the store (a new URL, a
    /// rotated root password) must be noticed here, not by rebuilding the engine.
    fingerprint: [u8; 32],
    plugin: Arc<dyn Plugin>,
    /// Revocations through this plugin, batched.
    revoker: Arc<revoker::Revoker>,
}

/// The plugin and connection details of `cfg`, hashed (the details hold the password).
fn fingerprint(cfg: &DbConfig) -> [u8; 32] {
    use aws_lc_rs::digest;
    let details = serde_json::to_vec(&cfg.connection_details).unwrap_or_default();
    let mut h = digest::Context::new(&digest::SHA256);
    h.update(cfg.plugin_name.as_bytes());
    h.update(&[0]);
    h.update(&details);
    h.finish().as_ref().try_into().unwrap_or([0; 32])
}

/// When [`Database::rotate_static`] rotates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rotate {
    /// Only if the role is still due (or a rotation is pending) once the lock is held: a
    /// rotation that finished while this one waited is the answer.
    IfDue,
    /// Always (creation, `rotate-role`).
    Now,
}

/// A new engine.
pub(crate) fn new() -> Arc<dyn Engine> {
    Arc::new(Database {
        conns: tokio::sync::Mutex::new(HashMap::new()),
        rotations: std::sync::Mutex::new(HashMap::new()),
    })
}

async fn load<T: for<'de> Deserialize<'de>>(ctx: &EngineContext, key: &str) -> Result<Option<T>> {
    match ctx.storage.get(key).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| Error::storage(format!("stored `{key}` is not valid")).with_source(e)),
    }
}

fn encode<T: Serialize>(key: &str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v)
        .map_err(|e| Error::internal(format!("cannot encode `{key}`")).with_source(e))
}

async fn save<T: Serialize>(ctx: &EngineContext, key: &str, v: &T) -> Result<()> {
    ctx.storage.put(key, &encode(key, v)?).await
}

/// A list of statements: a JSON list, or one string (a JSON list in a string is unpacked).
fn statements(data: &Data, field: &str) -> Result<Option<Vec<String>>> {
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

/// `allowed_roles`: a list or a comma-separated string.
fn string_list(data: &Data, field: &str) -> Result<Option<Vec<String>>> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(
            a.iter()
                .filter_map(|v| v.as_str().map(|s| s.trim().to_string()))
                .filter(|s| !s.is_empty())
                .collect(),
        )),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        )),
        Some(_) => Err(Error::invalid_input(format!(
            "{field} must be a list of strings"
        ))),
    }
}

/// Is static role `role` due for rotation at `now` (never rotated, or its period passed)?
fn static_due(role: &StaticRole, now: OffsetDateTime) -> bool {
    let period = Duration::from_secs(role.rotation_period);
    // A period too long for a time is never due (rather than a panic).
    crate::clock::parse_rfc3339(&role.last_vault_rotation)
        .is_none_or(|l| crate::clock::later(l, period).is_ok_and(|due| now >= due))
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

fn to_time(t: std::time::SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

fn split_path(path: &str) -> (&str, &str) {
    match path.split_once('/') {
        Some((a, b)) => (a, b),
        None => (path, ""),
    }
}

fn keys_response(keys: Vec<String>) -> Option<Response> {
    if keys.is_empty() {
        return None;
    }
    let mut d = Data::new();
    d.insert(
        "keys".into(),
        Value::Array(keys.into_iter().map(Value::String).collect()),
    );
    Some(Response::with_data(d))
}

/// The URL with a literal password replaced (templated URLs are shown as they are).
fn redact_url(url: &str) -> String {
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

fn url_has_password(url: &str) -> bool {
    redact_url(url) != url || {
        // Go DSN `user:pass@tcp(...)`.
        !url.contains("://")
            && url
                .split_once('@')
                .and_then(|(c, _)| c.split_once(':'))
                .is_some_and(|(_, p)| !p.is_empty() && p != "{{password}}")
    }
}

impl Database {
    /// The live plugin for config `name`, opened (and a pending root rotation recovered) on
    /// first use.
    /// The live plugin for config `name`; rotates the root password first when its
    /// `root_rotation_period` has passed (checked on use: engines have no timer of their own).
    async fn connection(
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
    async fn open_connection(
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
    async fn revoker(&self, ctx: &EngineContext, name: &str) -> Result<Arc<revoker::Revoker>> {
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
    async fn revocation_stats(&self, name: &str) -> (u64, u64) {
        self.conns
            .lock()
            .await
            .get(name)
            .map_or((0, 0), |live| live.revoker.stats())
    }

    /// A root rotation whose new password was not stored: if the database took it, store it;
    /// otherwise the old one is still in force. Either way the WAL goes.
    async fn recover_root(
        &self,
        ctx: &EngineContext,
        name: &str,
        mut cfg: DbConfig,
        wal: PasswordWal,
    ) -> Result<DbConfig> {
        let mut details = cfg.connection_details.clone();
        details.insert("password".into(), Value::String(wal.new_password.clone()));
        let settings = ConnectionSettings::from_details(&details)?;
        let candidate = plugin::open(&cfg.plugin_name, &settings)?;
        let works = candidate.verify().await.is_ok();
        candidate.close().await;
        if works {
            cfg.connection_details = details;
            save(ctx, &format!("config/{name}"), &cfg).await?;
            tracing::info!(
                config = name,
                "recovered a root rotation from its write-ahead record"
            );
        }
        ctx.storage.delete(&format!("wal/root/{name}")).await?;
        Ok(cfg)
    }

    async fn forget(&self, name: &str) {
        let old = self.conns.lock().await.remove(name);
        if let Some(live) = old {
            live.plugin.close().await;
        }
    }

    // ---- config ----

    async fn write_config(
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

    async fn read_config(&self, ctx: &EngineContext, name: &str) -> Result<Option<Response>> {
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

    async fn write_role(
        &self,
        ctx: &EngineContext,
        name: &str,
        data: &Data,
    ) -> Result<Option<Response>> {
        check_name("role", name).map_err(|_| Error::backend_unsupported_path())?;
        if ctx
            .storage
            .get(&format!("static-role/{name}"))
            .await?
            .is_some()
        {
            return Err(Error::invalid_input(
                "Role and Static Role names must be unique",
            ));
        }
        let existing: Option<Role> = load(ctx, &format!("role/{name}")).await?;
        let db_name = match params::string(data, "db_name")? {
            Some(d) if !d.is_empty() => d,
            _ => match &existing {
                Some(r) => r.db_name.clone(),
                None => return Err(Error::invalid_input("database name is required")),
            },
        };
        let credential_type = params::string(data, "credential_type")?
            .or_else(|| existing.as_ref().map(|r| r.credential_type.clone()))
            .unwrap_or_else(password_type);
        if credential_type != "password" {
            return Err(Error::invalid_input(format!(
                "credential_type `{credential_type}` is not supported yet (only `password`)"
            )));
        }
        let pick = |field: &str, old: Option<Vec<String>>| -> Result<Vec<String>> {
            Ok(statements(data, field)?.or(old).unwrap_or_default())
        };
        let role = Role {
            db_name,
            creation_statements: pick(
                "creation_statements",
                existing.as_ref().map(|r| r.creation_statements.clone()),
            )?,
            revocation_statements: pick(
                "revocation_statements",
                existing.as_ref().map(|r| r.revocation_statements.clone()),
            )?,
            renew_statements: pick(
                "renew_statements",
                existing.as_ref().map(|r| r.renew_statements.clone()),
            )?,
            rollback_statements: pick(
                "rollback_statements",
                existing.as_ref().map(|r| r.rollback_statements.clone()),
            )?,
            default_ttl: params::duration(data, "default_ttl")?
                .map(secs)
                .or_else(|| existing.as_ref().map(|r| r.default_ttl))
                .unwrap_or(0),
            max_ttl: params::duration(data, "max_ttl")?
                .map(secs)
                .or_else(|| existing.as_ref().map(|r| r.max_ttl))
                .unwrap_or(0),
            credential_type,
        };
        // A default_ttl above max_ttl is accepted, as OpenBao does; issuing caps it.
        save(ctx, &format!("role/{name}"), &role).await?;
        Ok(None)
    }

    async fn read_role(&self, ctx: &EngineContext, name: &str) -> Result<Option<Response>> {
        let Some(r) = load::<Role>(ctx, &format!("role/{name}")).await? else {
            return Ok(None);
        };
        Ok(Some(Response::with_data(crate::data(json!({
            "creation_statements": r.creation_statements,
            "credential_type": r.credential_type,
            "db_name": r.db_name,
            "default_ttl": r.default_ttl,
            "max_ttl": r.max_ttl,
            "renew_statements": r.renew_statements,
            "revocation_statements": r.revocation_statements,
            "rollback_statements": r.rollback_statements,
        })))))
    }

    // ---- dynamic credentials ----

    async fn creds(
        &self,
        ctx: &EngineContext,
        role_name: &str,
        display_name: &str,
    ) -> Result<Option<Response>> {
        let role: Role = load(ctx, &format!("role/{role_name}"))
            .await?
            .ok_or_else(|| Error::invalid_input(format!("unknown role: {role_name}")))?;
        let (cfg, plugin) = self.connection(ctx, &role.db_name).await?;
        if !cfg.allows(role_name) {
            return Err(Error::internal(format!(
                "1 error occurred:\n\t* \"{role_name}\" is not an allowed role\n\n"
            )));
        }
        if role.creation_statements.iter().all(|s| s.trim().is_empty()) {
            return Err(Error::internal(
                "1 error occurred:\n\t* empty creation statements\n\n",
            ));
        }
        let now = ctx.clock.now();
        let (ttl, max_ttl, warnings) = role_ttl(ctx, &role, Duration::ZERO, now, now)?;
        let expiration = template::expiration(crate::clock::later(
            now,
            ttl.saturating_add(EXPIRATION_BUFFER),
        )?);
        let username = template::username(
            plugin.username_style(),
            &template::display_name(display_name),
            role_name,
            now.unix_timestamp(),
        );
        let password = zeroize::Zeroizing::new(new_password(ctx, &cfg).await?);
        // Intent first: a user that exists in the database is always known here, whatever
        // happens after this line (crash included). The intent goes in the transaction that
        // records the lease; one left behind (a crash before that) is dropped by recovery.
        //
        // The intent is not fsynced: it survives `kill -9` of this process (the write is in
        // the OS before the CREATE is sent), and the lease's synced commit makes it durable
        // with everything before it. Only an OS crash or power loss of this host in the few
        // milliseconds between the two can lose it; the user is then one `issued/` does not
        // know, which the reconciler (`reconcile/:name`) finds and drops. That trade saves an
        // fsync (a fifth of the cost of issuing on SQLite).
        let issued_key = format!("issued/{username}");
        let intent_key = format!("intent/{username}");
        ctx.storage
            .transaction_unsynced(vec![
                TxnOp::Put {
                    key: intent_key.clone(),
                    value: encode(
                        &intent_key,
                        &Intent {
                            db_name: role.db_name.clone(),
                            role: role_name.to_string(),
                            revocation_statements: role.revocation_statements.clone(),
                            created: crate::clock::rfc3339(now),
                        },
                    )?,
                },
                TxnOp::Put {
                    key: issued_key.clone(),
                    value: encode(
                        &issued_key,
                        &Issued {
                            db_name: role.db_name.clone(),
                            role: role_name.to_string(),
                            max_expiry: crate::clock::rfc3339(crate::clock::later(now, max_ttl)?),
                        },
                    )?,
                },
            ])
            .await?;
        let created = plugin
            .create_user(
                &role.creation_statements,
                &NewUser {
                    username: &username,
                    password: &password,
                    expiration: &expiration,
                },
            )
            .await
            .map_err(|e| scrub(e, &password));
        if let Err(e) = created {
            // The plugin left nothing behind; forget the intent (if that fails, recovery drops
            // a user that does not exist, which counts as done).
            if let Err(de) = ctx
                .storage
                .transaction_unsynced(vec![
                    TxnOp::Delete { key: intent_key },
                    TxnOp::Delete { key: issued_key },
                ])
                .await
            {
                tracing::warn!(error = %de, "cannot delete a credential intent record");
            }
            return Err(e);
        }
        let mut internal = Data::new();
        internal.insert("username".into(), Value::String(username.clone()));
        internal.insert("role".into(), Value::String(role_name.to_string()));
        internal.insert("db_name".into(), Value::String(role.db_name.clone()));
        internal.insert(
            "revocation_statements".into(),
            Value::Array(
                role.revocation_statements
                    .iter()
                    .cloned()
                    .map(Value::String)
                    .collect(),
            ),
        );
        let mut resp = Response::with_data(crate::data(json!({
            "password": password.as_str(),
            "username": username,
        })));
        resp.lease_duration = ttl.as_secs();
        resp.renewable = true;
        resp.warnings = warnings;
        resp.lease = Some(LeaseInfo {
            ttl,
            max_ttl,
            renewable: true,
            internal,
            on_commit: vec![TxnOp::Delete { key: intent_key }],
        });
        Ok(Some(resp))
    }

    // ---- static roles ----

    async fn write_static_role(
        &self,
        ctx: &EngineContext,
        name: &str,
        data: &Data,
    ) -> Result<Option<Response>> {
        check_name("role", name).map_err(|_| Error::backend_unsupported_path())?;
        if ctx.storage.get(&format!("role/{name}")).await?.is_some() {
            return Err(Error::invalid_input(
                "Role and Static Role names must be unique",
            ));
        }
        let existing: Option<StaticRole> = load(ctx, &format!("static-role/{name}")).await?;
        let db_name = match params::string(data, "db_name")? {
            Some(d) if !d.is_empty() => d,
            _ => match &existing {
                Some(r) => r.db_name.clone(),
                None => return Err(Error::invalid_input("database name is required")),
            },
        };
        let username = match (params::string(data, "username")?, &existing) {
            (Some(u), Some(old)) if u != old.username => {
                return Err(Error::invalid_input(
                    "cannot update static account username",
                ));
            }
            (_, Some(old)) => old.username.clone(),
            (Some(u), None) if !u.is_empty() => u,
            _ => {
                return Err(Error::invalid_input(
                    "username is a required field to create a static account",
                ));
            }
        };
        let rotation_period = match params::duration(data, "rotation_period")? {
            Some(p) => p.as_secs(),
            None => match &existing {
                Some(r) => r.rotation_period,
                None => {
                    return Err(Error::invalid_input(
                        "rotation_period is required to create static accounts",
                    ));
                }
            },
        };
        if rotation_period < 5 {
            return Err(Error::invalid_input(
                "rotation_period must be 5 seconds or more",
            ));
        }
        let credential_type = params::string(data, "credential_type")?
            .or_else(|| existing.as_ref().map(|r| r.credential_type.clone()))
            .unwrap_or_else(password_type);
        if credential_type != "password" {
            return Err(Error::invalid_input(format!(
                "credential_type `{credential_type}` is not supported yet (only `password`)"
            )));
        }
        let rotation_statements = statements(data, "rotation_statements")?
            .or_else(|| existing.as_ref().map(|r| r.rotation_statements.clone()))
            .unwrap_or_default();
        let (cfg, _) = self.connection(ctx, &db_name).await?;
        if !cfg.allows(name) {
            return Err(multi(format!("\"{name}\" is not an allowed role")));
        }
        let role = StaticRole {
            db_name,
            username,
            rotation_period,
            rotation_statements,
            credential_type,
            password: existing
                .as_ref()
                .map(|r| r.password.clone())
                .unwrap_or_default(),
            last_vault_rotation: existing
                .as_ref()
                .map(|r| r.last_vault_rotation.clone())
                .unwrap_or_default(),
        };
        if existing.is_none() {
            // Created: rotate at once; the role is stored only when that succeeded.
            self.rotate_static(ctx, name, role, Rotate::Now).await?;
        } else {
            save(ctx, &format!("static-role/{name}"), &role).await?;
        }
        Ok(None)
    }

    /// Give a static role a new password: WAL, database, stored role, WAL removed. A WAL left
    /// by an earlier attempt is finished first, with its password.
    async fn rotate_static(
        &self,
        ctx: &EngineContext,
        name: &str,
        role: StaticRole,
        when: Rotate,
    ) -> Result<StaticRole> {
        let lock = self.rotation_lock(name);
        let _turn = lock.lock().await;
        let role_key = format!("static-role/{name}");
        let wal_key = format!("wal/static/{name}");
        // Another process sharing the store may rotate the same role: the WAL is created
        // only where none is (compare-and-set), a WAL found is finished with its password, and
        // the role is stored only while the WAL we acted on is still there. A lost race is
        // retried from the stored state.
        for _ in 0..4 {
            // Under the lock, the stored role is the truth (it may have just been rotated);
            // a role being created is not stored yet.
            let mut role = self
                .static_role(ctx, name)
                .await?
                .unwrap_or_else(|| role.clone());
            let pending_raw = ctx.storage.get(&wal_key).await?;
            let pending: Option<PasswordWal> = match &pending_raw {
                Some(raw) => serde_json::from_slice(raw).ok(),
                None => None,
            };
            let now = ctx.clock.now();
            if when == Rotate::IfDue && pending_raw.is_none() && !static_due(&role, now) {
                return Ok(role);
            }
            let (cfg, plugin) = self.connection(ctx, &role.db_name).await?;
            let (wal, wal_raw) = match pending {
                Some(w) if w.username == role.username => {
                    let raw = pending_raw.clone().unwrap_or_default();
                    (w, raw)
                }
                _ => {
                    let w = PasswordWal {
                        username: role.username.clone(),
                        new_password: new_password(ctx, &cfg).await?,
                    };
                    let raw = encode(&wal_key, &w)?;
                    let created = ctx
                        .storage
                        .transaction(vec![
                            TxnOp::Check {
                                key: wal_key.clone(),
                                expected: pending_raw.clone(),
                            },
                            TxnOp::Put {
                                key: wal_key.clone(),
                                value: raw.clone(),
                            },
                        ])
                        .await;
                    match created {
                        Ok(()) => (w, raw),
                        Err(e) if e.code() == crate::ErrorCode::Conflict => continue,
                        Err(e) => return Err(e),
                    }
                }
            };
            if let Err(e) = plugin
                .set_password(&role.rotation_statements, &role.username, &wal.new_password)
                .await
                .map_err(|e| scrub(e, &wal.new_password))
            {
                // The database kept the old password (a role being created has none to keep,
                // or the database refused the change outright): nothing to finish later, and
                // the next rotation makes a new password rather than retrying this one.
                let refused = e.code() == crate::ErrorCode::Upstream
                    && plugin.refused_change_applies_nothing(&role.rotation_statements);
                if role.password.is_empty() || refused {
                    ctx.storage
                        .transaction(vec![
                            TxnOp::Check {
                                key: wal_key.clone(),
                                expected: Some(wal_raw),
                            },
                            TxnOp::Delete { key: wal_key },
                        ])
                        .await
                        .or_else(|de| {
                            if de.code() == crate::ErrorCode::Conflict {
                                Ok(())
                            } else {
                                Err(de)
                            }
                        })?;
                }
                return Err(e);
            }
            role.password = wal.new_password.clone();
            role.last_vault_rotation = crate::clock::rfc3339(ctx.clock.now());
            let stored = ctx
                .storage
                .transaction(vec![
                    TxnOp::Check {
                        key: wal_key.clone(),
                        expected: Some(wal_raw),
                    },
                    TxnOp::Put {
                        key: role_key.clone(),
                        value: encode(&role_key, &role)?,
                    },
                    TxnOp::Delete {
                        key: wal_key.clone(),
                    },
                ])
                .await;
            match stored {
                Ok(()) => return Ok(role),
                // Someone else finished this WAL (same password) or started a newer one:
                // their commit is the stored truth; go round and read it.
                Err(e) if e.code() == crate::ErrorCode::Conflict => {
                    tracing::info!(role = name, "static role rotated concurrently elsewhere");
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::unavailable(format!(
            "static role `{name}` is being rotated concurrently; retry"
        )))
    }

    /// The lock that serialises rotations of static role `name` in this process.
    fn rotation_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .rotations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(name.to_string()).or_default().clone()
    }

    async fn static_role(&self, ctx: &EngineContext, name: &str) -> Result<Option<StaticRole>> {
        load(ctx, &format!("static-role/{name}")).await
    }

    async fn read_static_role(&self, ctx: &EngineContext, name: &str) -> Result<Option<Response>> {
        let Some(r) = self.static_role(ctx, name).await? else {
            return Ok(None);
        };
        Ok(Some(Response::with_data(crate::data(json!({
            "credential_type": r.credential_type,
            "db_name": r.db_name,
            "last_vault_rotation": r.last_vault_rotation,
            "rotation_period": r.rotation_period,
            "rotation_statements": r.rotation_statements,
            "username": r.username,
        })))))
    }

    async fn static_creds(&self, ctx: &EngineContext, name: &str) -> Result<Option<Response>> {
        let Some(mut r) = self.static_role(ctx, name).await? else {
            return Err(Error::invalid_input(format!("unknown role: {name}")));
        };
        let now = ctx.clock.now();
        // Rotation runs when due, checked on every read as well as by the scheduled run.
        let pending = ctx
            .storage
            .get(&format!("wal/static/{name}"))
            .await?
            .is_some();
        let mut warnings = Vec::new();
        if pending || static_due(&r, now) {
            match self.rotate_static(ctx, name, r, Rotate::IfDue).await {
                Ok(rotated) => r = rotated,
                Err(e) => {
                    // With no rotation left half-done (no WAL), the database still has the
                    // stored password: hand it out rather than fail every read while the
                    // database refuses or is away. A half-done one may have changed it.
                    let half_done = ctx
                        .storage
                        .get(&format!("wal/static/{name}"))
                        .await?
                        .is_some();
                    match self.static_role(ctx, name).await? {
                        Some(stored) if !half_done && !stored.password.is_empty() => {
                            tracing::warn!(role = name, error = %e.message(), "static role rotation failed; the current password stays in force");
                            warnings.push(format!(
                                "rotation failed, the current password stays in force: {}",
                                e.message()
                            ));
                            r = stored;
                        }
                        _ => return Err(e),
                    }
                }
            }
        }
        let last = crate::clock::parse_rfc3339(&r.last_vault_rotation).unwrap_or(now);
        let ttl = crate::clock::later(last, Duration::from_secs(r.rotation_period))
            .map_or(i64::MAX, |due| (due - now).whole_seconds().max(0));
        let mut resp = Response::with_data(crate::data(json!({
            "last_vault_rotation": r.last_vault_rotation,
            "password": r.password,
            "rotation_period": r.rotation_period,
            "ttl": ttl,
            "username": r.username,
        })));
        resp.warnings = warnings;
        Ok(Some(resp))
    }

    // ---- root rotation ----

    async fn rotate_root(&self, ctx: &EngineContext, name: &str) -> Result<Option<Response>> {
        let (mut cfg, plugin) = self.open_connection(ctx, name).await?;
        let username = params::string(&cfg.connection_details, "username")?.unwrap_or_default();
        if username.is_empty() {
            return Err(multi(
                "unable to rotate root credentials: no username in configuration",
            ));
        }
        let old = params::string(&cfg.connection_details, "password")?.unwrap_or_default();
        if old.is_empty() {
            return Err(multi(
                "unable to rotate root credentials: no password in configuration",
            ));
        }
        let wal_key = format!("wal/root/{name}");
        let wal = PasswordWal {
            username: username.clone(),
            new_password: new_password(ctx, &cfg).await?,
        };
        // No WAL stored, no change made.
        save(ctx, &wal_key, &wal).await?;
        if let Err(e) = plugin
            .set_password(
                &cfg.root_credentials_rotate_statements,
                &username,
                &wal.new_password,
            )
            .await
            .map_err(|e| scrub(e, &wal.new_password))
        {
            ctx.storage.delete(&wal_key).await?;
            return Err(e);
        }
        // From here the database has the new password; if storing it fails, the WAL keeps it
        // and the next use of the connection finishes the job.
        cfg.connection_details
            .insert("password".into(), Value::String(wal.new_password.clone()));
        cfg.last_root_rotation = crate::clock::rfc3339(ctx.clock.now());
        self.forget(name).await;
        save(ctx, &format!("config/{name}"), &cfg).await?;
        ctx.storage.delete(&wal_key).await?;
        Ok(None)
    }

    // ---- crash recovery and scheduled work ----

    /// Drop every user whose creation intent is older than [`INTENT_GRACE`]: its lease was
    /// never recorded (the intent goes in the lease's own transaction), so nothing else would
    /// ever revoke it. A user that does not exist counts as dropped. Returns the users
    /// resolved; one that fails is logged and retried on the next run.
    async fn resolve_intents(&self, ctx: &EngineContext) -> Result<Vec<String>> {
        let keys = ctx.storage.list("intent/", &Page::all()).await?;
        let mut resolved = Vec::new();
        if keys.is_empty() {
            return Ok(resolved);
        }
        let now = ctx.clock.now();
        for username in keys {
            let key = format!("intent/{username}");
            let Some(intent) = load::<Intent>(ctx, &key).await? else {
                continue;
            };
            let abandoned = crate::clock::parse_rfc3339(&intent.created)
                .is_none_or(|t| now >= t + INTENT_GRACE);
            if !abandoned {
                continue;
            }
            let dropped = async {
                let (_, plugin) = self.open_connection(ctx, &intent.db_name).await?;
                plugin
                    .drop_user(&intent.revocation_statements, &username)
                    .await
            }
            .await;
            if let Err(e) = dropped {
                tracing::warn!(user = %username, role = %intent.role, error = %e.message(), "cannot drop a user whose lease was never recorded; retried later");
                continue;
            }
            ctx.storage
                .transaction(vec![
                    TxnOp::Delete { key },
                    TxnOp::Delete {
                        key: format!("issued/{username}"),
                    },
                ])
                .await?;
            tracing::info!(user = %username, role = %intent.role, "dropped a database user created but never leased (crash recovery)");
            resolved.push(username);
        }
        Ok(resolved)
    }

    /// Static roles whose rotation period has passed (or with a rotation left half done) get
    /// a new password; configs with `root_rotation_period` get a new root password when due.
    /// A failure is logged and retried on the next run; it never stops the others.
    async fn rotate_due(&self, ctx: &EngineContext) -> Result<()> {
        for name in ctx.storage.list("config/", &Page::all()).await? {
            let Some(cfg) = load::<DbConfig>(ctx, &format!("config/{name}")).await? else {
                continue;
            };
            if cfg.root_rotation_period > 0 {
                // `connection` rotates the root password when it is due.
                if let Err(e) = self.connection(ctx, &name).await {
                    tracing::warn!(config = %name, error = %e.message(), "scheduled root rotation check failed");
                }
            }
        }
        let now = ctx.clock.now();
        for name in ctx.storage.list("static-role/", &Page::all()).await? {
            let Some(role) = self.static_role(ctx, &name).await? else {
                continue;
            };
            let due = static_due(&role, now);
            let pending = ctx
                .storage
                .get(&format!("wal/static/{name}"))
                .await?
                .is_some();
            if due || pending {
                if let Err(e) = self.rotate_static(ctx, &name, role, Rotate::IfDue).await {
                    tracing::warn!(role = %name, error = %e.message(), "scheduled static role rotation failed");
                }
            }
        }
        Ok(())
    }

    // ---- reconciler ----

    /// Users in the database that carry this engine's prefix but that the engine does not
    /// know (`issued/`): orphans from a restored backup, a lost lease or another engine.
    async fn reconcile(
        &self,
        ctx: &EngineContext,
        name: &str,
        data: &Data,
    ) -> Result<Option<Response>> {
        let apply = params::bool(data, "apply")?.unwrap_or(false);
        // Users whose creation was abandoned (no lease was recorded) go first, whatever the
        // prefix: they are this engine's own and nothing else would drop them.
        let unleased = if apply {
            self.resolve_intents(ctx).await?
        } else {
            Vec::new()
        };
        let (_, plugin) = self.connection(ctx, name).await?;
        let style = plugin.username_style();
        // A narrower prefix keeps other engines' users on a shared server out of reach.
        let prefix = params::string(data, "username_prefix")?
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| style.prefix().to_string());
        if !prefix.starts_with(style.prefix()) {
            return Err(Error::invalid_input(format!(
                "username_prefix must start with `{}`",
                style.prefix()
            )));
        }
        let now = ctx.clock.now();
        let mut orphans = Vec::new();
        for user in plugin.list_users(&prefix).await? {
            let known: Option<Issued> = load(ctx, &format!("issued/{user}")).await?;
            // Unknown, or known but past any lease's max TTL (a lease lost to a crash between
            // creation and registration; a live lease would have been revoked by now).
            let orphan = match known {
                None => true,
                Some(i) => crate::clock::parse_rfc3339(&i.max_expiry)
                    .is_some_and(|t| now > t + ORPHAN_GRACE),
            };
            if orphan {
                orphans.push(user);
            }
        }
        if apply {
            for u in &orphans {
                plugin.drop_user(&[], u).await?;
                ctx.storage.delete(&format!("issued/{u}")).await?;
            }
        }
        Ok(Some(Response::with_data(crate::data(json!({
            "orphans": orphans,
            "dropped": apply,
            "unleased_dropped": unleased,
        })))))
    }

    async fn list(&self, ctx: &EngineContext, prefix: &str) -> Result<Option<Response>> {
        Ok(keys_response(ctx.storage.list(prefix, &Page::all()).await?))
    }
}

fn internal_str<'a>(internal: &'a Data, key: &str) -> Result<&'a str> {
    internal
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid_input(format!("lease is missing `{key}`")))
}

#[async_trait]
impl Engine for Database {
    fn name_rules(&self) -> &'static [NameRule] {
        // Connection and role names are case-sensitive `GenericNameRegex` names in OpenBao.
        const RULES: &[NameRule] = &[
            NameRule::exact("config/"),
            NameRule::exact("roles/"),
            NameRule::exact("creds/"),
            NameRule::exact("static-roles/"),
            NameRule::exact("static-creds/"),
            NameRule::exact("rotate-role/"),
            NameRule::exact("rotate-root/"),
            NameRule::exact("reset/"),
            NameRule::exact("reconcile/"),
        ];
        RULES
    }

    fn reusable_across_reloads(&self) -> bool {
        // Every use re-reads the config and compares it with the pool's (`open_connection`).
        true
    }

    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let path = req.path.trim_end_matches('/');
        let (head, name) = split_path(path);
        let list = req.operation == Operation::List;
        let write = matches!(req.operation, Operation::Create | Operation::Update);
        match (head, req.operation) {
            ("config", _) if list || name.is_empty() => self.list(ctx, "config/").await,
            ("roles", _) if list || name.is_empty() => self.list(ctx, "role/").await,
            ("static-roles", _) if list || name.is_empty() => self.list(ctx, "static-role/").await,
            ("config", Operation::Read) => self.read_config(ctx, name).await,
            ("config", _) if write => self.write_config(ctx, name, &req.data).await,
            ("config", Operation::Delete) => {
                ctx.storage.delete(&format!("config/{name}")).await?;
                self.forget(name).await;
                Ok(None)
            }
            ("reset", _) if write => {
                // Drop the pool; the next use reconnects with the stored settings.
                if ctx.storage.get(&format!("config/{name}")).await?.is_none() {
                    return Err(no_connection(name));
                }
                self.forget(name).await;
                Ok(None)
            }
            ("roles", Operation::Read) => self.read_role(ctx, name).await,
            ("roles", _) if write => self.write_role(ctx, name, &req.data).await,
            ("roles", Operation::Delete) => {
                ctx.storage.delete(&format!("role/{name}")).await?;
                Ok(None)
            }
            ("creds", Operation::Read) if !name.is_empty() => {
                self.creds(ctx, name, &req.display_name).await
            }
            ("static-roles", Operation::Read) => self.read_static_role(ctx, name).await,
            ("static-roles", _) if write => self.write_static_role(ctx, name, &req.data).await,
            ("static-roles", Operation::Delete) => {
                ctx.storage.delete(&format!("static-role/{name}")).await?;
                ctx.storage.delete(&format!("wal/static/{name}")).await?;
                Ok(None)
            }
            ("static-creds", Operation::Read) if !name.is_empty() => {
                self.static_creds(ctx, name).await
            }
            ("rotate-role", _) if write && !name.is_empty() => {
                let Some(r) = self.static_role(ctx, name).await? else {
                    return Err(Error::invalid_input("no static role found for role name"));
                };
                self.rotate_static(ctx, name, r, Rotate::Now).await?;
                Ok(None)
            }
            ("rotate-root", _) if write && !name.is_empty() => self.rotate_root(ctx, name).await,
            ("reconcile", _) if write && !name.is_empty() => {
                self.reconcile(ctx, name, &req.data).await
            }
            (
                "config" | "roles" | "static-roles" | "creds" | "static-creds" | "rotate-role"
                | "rotate-root" | "reset" | "reconcile",
                _,
            ) => Err(Error::unsupported_operation()),
            _ => Err(Error::backend_unsupported_path()),
        }
    }

    async fn exists(&self, ctx: &EngineContext, req: &Request) -> Result<Option<bool>> {
        let (head, name) = split_path(req.path.trim_end_matches('/'));
        let key = match head {
            "config" => format!("config/{name}"),
            "roles" => format!("role/{name}"),
            "static-roles" => format!("static-role/{name}"),
            _ => return Ok(None),
        };
        if name.is_empty() {
            return Ok(None);
        }
        Ok(Some(ctx.storage.get(&key).await?.is_some()))
    }

    async fn recover(&self, ctx: &EngineContext) -> Result<()> {
        self.resolve_intents(ctx).await.map(drop)
    }

    async fn periodic(&self, ctx: &EngineContext) -> Result<()> {
        self.resolve_intents(ctx).await?;
        self.rotate_due(ctx).await
    }

    async fn revoke(&self, ctx: &EngineContext, lease: &LeasedSecret<'_>) -> Result<()> {
        let username = internal_str(lease.internal, "username")?;
        let role_name = internal_str(lease.internal, "role").unwrap_or("");
        let role: Option<Role> = if role_name.is_empty() {
            None
        } else {
            load(ctx, &format!("role/{role_name}")).await?
        };
        // The role as it is now, else what the lease kept when it was issued.
        let (db_name, stmts) = match &role {
            Some(r) => (r.db_name.clone(), r.revocation_statements.clone()),
            None => (
                internal_str(lease.internal, "db_name")?.to_string(),
                lease
                    .internal
                    .get("revocation_statements")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
        };
        // Batched with the other revocations of this config in flight; returns once this user
        // is dropped (or found gone).
        self.revoker(ctx, &db_name)
            .await?
            .drop_user(stmts, username.to_string())
            .await?;
        ctx.storage
            .transaction(vec![
                TxnOp::Delete {
                    key: format!("issued/{username}"),
                },
                TxnOp::Delete {
                    key: format!("intent/{username}"),
                },
            ])
            .await
    }

    async fn renew(
        &self,
        ctx: &EngineContext,
        lease: &LeasedSecret<'_>,
        increment: Duration,
    ) -> Result<LeaseInfo> {
        let username = internal_str(lease.internal, "username")?;
        let role_name = internal_str(lease.internal, "role")?;
        let role: Role = load(ctx, &format!("role/{role_name}"))
            .await?
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "error during renew: could not find role with name: \"{role_name}\""
                ))
            })?;
        let now = ctx.clock.now();
        let (ttl, max_ttl, _) = role_ttl(ctx, &role, increment, to_time(lease.issue_time), now)?;
        if !ttl.is_zero() {
            let (_, plugin) = self.connection(ctx, &role.db_name).await?;
            let expiration = template::expiration(crate::clock::later(
                now,
                ttl.saturating_add(EXPIRATION_BUFFER),
            )?);
            plugin
                .renew_user(&role.renew_statements, username, &expiration)
                .await?;
        }
        Ok(LeaseInfo {
            ttl,
            max_ttl,
            renewable: true,
            internal: lease.internal.clone(),
            ..LeaseInfo::default()
        })
    }
}

/// A role's lease TTL from `issued` (issue and renewal share OpenBao's rules): returns the TTL,
/// the role's max TTL (capped by the system's) and any capping warnings.
fn role_ttl(
    ctx: &EngineContext,
    role: &Role,
    increment: Duration,
    issued: time::OffsetDateTime,
    now: time::OffsetDateTime,
) -> Result<(Duration, Duration, Vec<String>)> {
    // The mount's maximum, not the system's: OpenBao's sysview reports the mount's tuning,
    // which may exceed 768h.
    let max_ttl = if role.max_ttl == 0 {
        ctx.max_lease_ttl
    } else {
        Duration::from_secs(role.max_ttl).min(ctx.max_lease_ttl)
    };
    let (ttl, warnings) = ttl::calculate(
        TtlLimits {
            default_ttl: ctx.default_lease_ttl,
            max_ttl: ctx.max_lease_ttl,
        },
        TtlRequest {
            increment,
            backend_ttl: Duration::from_secs(role.default_ttl),
            backend_max: max_ttl,
            ..TtlRequest::default()
        },
        issued,
        now,
    )?;
    Ok((ttl, max_ttl, warnings))
}

#[cfg(all(test, feature = "postgres", feature = "mysql", feature = "redis"))]
mod tests;

#[cfg(test)]
mod scrub_tests {
    use super::*;

    #[test]
    fn scrub_removes_whole_and_partial_passwords() {
        let e = Error::internal("bad: role x with password 'Abcd-1234efgh'");
        assert_eq!(
            scrub(e, "Abcd-1234efgh").message(),
            "bad: role x with password '[password]'"
        );
        let e = Error::internal("cannot create the user: syntax error at or near \"Abcd\"");
        assert_eq!(
            scrub(e, "Abcd-1234efgh").message(),
            "cannot create the user: syntax error at or near [redacted]"
        );
        let e = Error::internal("syntax error at or near \"9\"");
        assert_eq!(
            scrub(e, "9-bcd").message(),
            "syntax error at or near [redacted]"
        );
        let e = Error::internal("role \"v-token-x\" exists");
        assert_eq!(scrub(e, "9-bcd").message(), "role \"v-token-x\" exists");
        let e = Error::internal("cannot create: role exists");
        assert_eq!(
            scrub(e, "Abcd-1234efgh").message(),
            "cannot create: role exists"
        );
    }
}
