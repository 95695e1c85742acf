//! The plugin seam: what the engine asks of a database (PostgreSQL, MySQL/MariaDB, Redis).

// Built without any database plugin (`--no-default-features`), the helpers the plugins share have no caller.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "redis")),
    allow(
        dead_code,
        unused_variables,
        reason = "no database plugin in this build"
    )
)]

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::template::UsernameStyle;
use crate::error::{Error, ErrorCode, Result};
use crate::request::Data;
use crate::util::params;

/// A user to create.
pub(crate) struct NewUser<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// `{{expiration}}`, formatted.
    pub expiration: &'a str,
}

/// A user to drop in a batch ([`Plugin::drop_users`]).
pub(crate) struct DropUser<'a> {
    pub statements: &'a [String],
    pub username: &'a str,
}

/// One connection config's live database handle, with its bounded pool.
#[async_trait]
pub(crate) trait Plugin: Send + Sync {
    /// How this plugin names generated users.
    fn username_style(&self) -> UsernameStyle;

    /// Connect and ping.
    async fn verify(&self) -> Result<()>;

    /// Create a user with `statements`. On any error nothing is left behind.
    async fn create_user(&self, statements: &[String], user: &NewUser<'_>) -> Result<()>;

    /// Drop a user: end its sessions, then `statements` (or the plugin's default). A user that
    /// does not exist counts as dropped.
    async fn drop_user(&self, statements: &[String], username: &str) -> Result<()>;

    /// Drop several users with as few round trips as the database allows. An error says only
    /// that the batch failed: some users may be dropped and some not, and the caller sorts it
    /// out with [`Plugin::drop_user`] one by one (a user already gone counts as dropped, so
    /// running a user's revocation again is safe). The default drops them one by one.
    async fn drop_users(&self, users: &[DropUser<'_>]) -> Result<()> {
        for u in users {
            self.drop_user(u.statements, u.username).await?;
        }
        Ok(())
    }

    /// Move a user's expiration (`statements` or the plugin's default; a no-op where the
    /// database has no expiry).
    async fn renew_user(
        &self,
        statements: &[String],
        username: &str,
        expiration: &str,
    ) -> Result<()>;

    /// Set a user's password (static roles, root rotation).
    async fn set_password(
        &self,
        statements: &[String],
        username: &str,
        password: &str,
    ) -> Result<()>;

    /// Does a password change that the database refused (an [`crate::ErrorCode::Upstream`]
    /// error from [`Plugin::set_password`]) leave the old password for sure? Then a static
    /// role's WAL can go, and the next rotation tries a new password instead of the refused
    /// one forever (vault PR #28989). Not when some statements may have run before one
    /// failed.
    fn refused_change_applies_nothing(&self, statements: &[String]) -> bool {
        let _ = statements;
        false
    }

    /// Whether a user exists.
    async fn user_exists(&self, username: &str) -> Result<bool>;

    /// Users whose name starts with `prefix` (the reconciler's input).
    async fn list_users(&self, prefix: &str) -> Result<Vec<String>>;

    /// Close the pool.
    async fn close(&self);
}

/// The plugin names this engine serves.
pub(crate) const PLUGINS: [&str; 6] = [
    "postgresql-database-plugin",
    "mysql-database-plugin",
    "mysql-legacy-database-plugin",
    "mysql-rds-database-plugin",
    "mysql-aurora-database-plugin",
    "redis-database-plugin",
];

/// The connection settings from `connection_details`.
#[derive(Clone)]
pub(crate) struct ConnectionSettings {
    pub connection_url: String,
    pub username: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub max_open: usize,
    /// Idle connections a pool keeps (Vault's `max_idle_connections`: 0 = `max_open`, a
    /// negative number = none, never more than `max_open`).
    pub max_idle: usize,
    /// A connection older than this is closed instead of reused (`max_connection_lifetime`;
    /// zero = no limit).
    pub max_lifetime: Duration,
}

impl ConnectionSettings {
    /// Read and check `connection_details`.
    pub(crate) fn from_details(d: &Data) -> Result<ConnectionSettings> {
        let s = |k: &str| -> Result<String> { Ok(params::string(d, k)?.unwrap_or_default()) };
        let max_open = match params::int(d, "max_open_connections")? {
            None | Some(0) => 4,
            Some(n) if n < 0 => {
                return Err(Error::invalid_input(
                    "max_open_connections cannot be negative",
                ));
            }
            Some(n) => usize::try_from(n).unwrap_or(4),
        };
        let max_idle = match params::int(d, "max_idle_connections")? {
            None | Some(0) => max_open,
            Some(n) if n < 0 => 0,
            Some(n) => usize::try_from(n).unwrap_or(max_open).min(max_open),
        };
        let max_lifetime = match d.get("max_connection_lifetime") {
            None | Some(Value::Null) => Duration::ZERO,
            Some(v) => crate::util::duration::parse_value(v)?,
        };
        let port = match params::int(d, "port")? {
            None => 0,
            Some(p) => {
                u16::try_from(p).map_err(|_| Error::invalid_input(format!("invalid port `{p}`")))?
            }
        };
        let out = ConnectionSettings {
            connection_url: s("connection_url")?,
            username: s("username")?,
            password: s("password")?,
            host: s("host")?,
            port,
            max_open,
            max_idle,
            max_lifetime,
        };
        for (field, v) in [("username", &out.username), ("password", &out.password)] {
            if v.contains("{{username}}") || v.contains("{{password}}") {
                return Err(Error::invalid_input(format!(
                    "{field} cannot contain the template variables"
                )));
            }
        }
        Ok(out)
    }
}

/// Open the plugin `name` with these settings (no I/O until first use).
pub(crate) fn open(name: &str, settings: &ConnectionSettings) -> Result<Box<dyn Plugin>> {
    match name {
        #[cfg(feature = "postgres")]
        "postgresql-database-plugin" => Ok(Box::new(super::postgres::Postgres::open(settings)?)),
        #[cfg(feature = "mysql")]
        "mysql-database-plugin" => Ok(Box::new(super::mysql::Mysql::open(
            settings,
            UsernameStyle::Mysql,
        )?)),
        #[cfg(feature = "mysql")]
        "mysql-legacy-database-plugin"
        | "mysql-rds-database-plugin"
        | "mysql-aurora-database-plugin" => Ok(Box::new(super::mysql::Mysql::open(
            settings,
            UsernameStyle::MysqlLegacy,
        )?)),
        #[cfg(feature = "redis")]
        "redis-database-plugin" => Ok(Box::new(super::redis::Redis::open(settings)?)),
        #[cfg(not(feature = "postgres"))]
        "postgresql-database-plugin" => Err(Error::feature_missing(
            "postgres",
            "the PostgreSQL database plugin",
        )),
        #[cfg(not(feature = "mysql"))]
        "mysql-database-plugin"
        | "mysql-legacy-database-plugin"
        | "mysql-rds-database-plugin"
        | "mysql-aurora-database-plugin" => {
            Err(Error::feature_missing("mysql", "the MySQL database plugin"))
        }
        #[cfg(not(feature = "redis"))]
        "redis-database-plugin" => {
            Err(Error::feature_missing("redis", "the Redis database plugin"))
        }
        other => Err(Error::invalid_input(format!(
            "error creating database object: unknown plugin `{other}`"
        ))),
    }
}

/// A database error, with the server's text (which never holds a password we sent: statements
/// are not echoed back) but classed by what the engine can do about it.
pub(crate) fn upstream(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::Upstream,
        format!("{what}: {}", redact(&e.to_string())),
    )
}

/// Connection failures are retryable.
pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::Unavailable,
        format!("{what}: {}", redact(&e.to_string())),
    )
}

/// Strip anything after `PASSWORD`/`IDENTIFIED BY` in a server message, in case a server
/// echoes the failing statement.
fn redact(msg: &str) -> String {
    let lower = msg.to_ascii_lowercase();
    for marker in ["password", "identified by"] {
        if let Some(pos) = lower.find(marker) {
            // Keep the error class, drop a quoted value that may follow the marker.
            if lower.get(pos..).is_some_and(|r| r.contains('\'')) {
                return format!("{} <redacted>", msg.get(..pos + marker.len()).unwrap_or(""));
            }
        }
    }
    msg.to_string()
}

/// Quote an identifier for PostgreSQL (`"a""b"`).
pub(crate) fn pg_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_quoted_values_after_password() {
        let m = redact("syntax error near PASSWORD 'hunter2'");
        assert!(!m.contains("hunter2"));
        assert_eq!(
            redact("role \"x\" does not exist"),
            "role \"x\" does not exist"
        );
    }

    #[test]
    fn settings_defaults_and_caps() {
        let d = crate::data(serde_json::json!({"connection_url": "x", "max_idle_connections": 9}));
        let s = ConnectionSettings::from_details(&d).unwrap();
        assert_eq!(s.max_open, 4);
        let bad = crate::data(serde_json::json!({"password": "{{password}}"}));
        assert!(ConnectionSettings::from_details(&bad).is_err());
    }
}
