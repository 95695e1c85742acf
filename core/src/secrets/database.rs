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

mod connection;
mod dynamic;
mod recovery;
mod static_roles;

use connection::*;
use dynamic::*;
use recovery::*;
use static_roles::*;

use plugin::{ConnectionSettings, NewUser, Plugin};
use template::check_name;

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
        Some(raw) => crate::util::json::decode(&raw, || {
            Error::storage(format!("stored `{key}` is not valid"))
        })
        .map(Some),
    }
}

fn encode<T: Serialize>(key: &str, v: &T) -> Result<Vec<u8>> {
    crate::util::json::encode(v, || Error::internal(format!("cannot encode `{key}`")))
}

async fn save<T: Serialize>(ctx: &EngineContext, key: &str, v: &T) -> Result<()> {
    ctx.storage.put(key, &encode(key, v)?).await
}

/// `allowed_roles`: a list or a comma-separated string (the shared parser, with this engine's
/// error text).
fn string_list(data: &Data, field: &str) -> Result<Option<Vec<String>>> {
    params::string_list(data, field)
        .map_err(|_| Error::invalid_input(format!("{field} must be a list of strings")))
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
