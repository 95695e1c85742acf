//! `postgresql-database-plugin`: users are PostgreSQL roles.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::sync::Semaphore;

use super::plugin::{
    ConnectionSettings, DropUser, NewUser, Plugin, pg_ident, unavailable, upstream,
};
use super::template::{self, UsernameStyle, Vars};
use crate::error::{Error, Result};

const DEFAULT_RENEW: &str = "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';";
const DEFAULT_ROTATE: &str = "ALTER ROLE \"{{username}}\" WITH PASSWORD '{{password}}';";
/// Concurrent GRANTs or REVOKEs on one object fail with `tuple concurrently updated` (they all
/// rewrite its ACL row), so statements that change privileges take this advisory lock: one at
/// a time per database server, across every process. Statements that change none (a lone
/// `CREATE ROLE`, `DROP ROLE IF EXISTS`) go without it, so they commit side by side.
const PRIVILEGE_LOCK: &str = "SELECT pg_advisory_xact_lock(7305820313154562418)";

/// A PostgreSQL connection config: one bounded pool. Creation may use all connections but
/// one, so revocation always finds a free connection.
pub(crate) struct Postgres {
    pool: Pool,
    creators: Semaphore,
    /// `max_idle_connections`, when below the pool's size.
    max_idle: Option<usize>,
}

impl Postgres {
    pub(crate) fn open(s: &ConnectionSettings) -> Result<Postgres> {
        if s.connection_url.is_empty() {
            return Err(Error::invalid_input(
                "error creating database object: connection_url cannot be empty",
            ));
        }
        // Parse with placeholders, then set the real credentials: no escaping questions, and
        // the password never passes through a URL string.
        let url = s
            .connection_url
            .replace("{{username}}", "strongroom_user")
            .replace("{{password}}", "strongroom_password");
        let (url, tls) = crate::util::pgtls::split(&url);
        let (ssl_mode, connector) = crate::util::pgtls::connector(&tls)
            .map_err(|e| Error::invalid_input(format!("error creating database object: {e}")))?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            Error::invalid_input(
                "error creating database object: invalid connection_url (expected `postgresql://...` or `key=value` pairs)",
            )
        })?;
        if s.connection_url.contains("{{username}}") {
            config.user(&s.username);
        }
        if s.connection_url.contains("{{password}}") {
            config.password(&s.password);
        }
        if config.get_application_name().is_none() {
            config.application_name("vault");
        }
        config.ssl_mode(ssl_mode);
        config.options("-c timezone=UTC");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            config,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let mut builder = Pool::builder(manager);
        if !s.max_lifetime.is_zero() {
            let lifetime = s.max_lifetime;
            // An old connection is closed when it would be reused; the pool opens a new one.
            builder = builder.pre_recycle(Hook::sync_fn(move |_, metrics| {
                if metrics.age() >= lifetime {
                    Err(HookError::message("past max_connection_lifetime"))
                } else {
                    Ok(())
                }
            }));
        }
        let pool = builder
            .max_size(s.max_open.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the connection pool: {e}")))?;
        Ok(Postgres {
            pool,
            creators: Semaphore::new(s.max_open.saturating_sub(1).max(1)),
            max_idle: (s.max_idle < s.max_open.max(1)).then_some(s.max_idle),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        if let Some(max_idle) = self.max_idle {
            // Idle connections beyond `max_idle_connections` close before each use.
            let mut keep = max_idle;
            self.pool.retain(|_, _| {
                let kept = keep > 0;
                keep = keep.saturating_sub(1);
                kept
            });
        }
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => pg_err("cannot connect to postgresql", &e),
            PoolError::Timeout(_) => {
                Error::unavailable("postgresql did not give a connection in time")
            }
            other => unavailable("cannot connect to postgresql", other),
        })
    }

    /// Run the statements as one implicit transaction in a single round trip (a simple query
    /// holding several statements is atomic), under the privilege lock.
    async fn run_in_txn(&self, stmts: &[String], vars: &Vars<'_>, what: &str) -> Result<()> {
        let c = self.client().await?;
        c.batch_execute(&batch(stmts, vars))
            .await
            .map_err(|e| pg_err(what, &e))
    }
}

/// A PostgreSQL error with the server's message (tokio-postgres alone says only `db error`).
pub(crate) fn pg_err(what: &str, e: &tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        return upstream(what, db.message());
    }
    // The cause (`Connection refused`, a timeout) is in the source chain.
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        source = cause.source();
    }
    unavailable(what, msg)
}

/// The statements, templated and split, as one simple query; behind the privilege lock when
/// they change privileges.
fn batch(stmts: &[String], vars: &Vars<'_>) -> String {
    let mut out = String::new();
    if changes_privileges(stmts) {
        out.push_str(PRIVILEGE_LOCK);
    }
    append(&mut out, stmts, vars);
    out
}

/// Whether statements (as written, before templating, so no username can count) may rewrite
/// an object's ACL: GRANT, REVOKE, and REASSIGN/DROP OWNED (which revoke). Anything naming
/// one of these words counts, a conservative reading.
fn changes_privileges(stmts: &[String]) -> bool {
    stmts.iter().any(|s| {
        let s = s.to_ascii_uppercase();
        ["GRANT", "REVOKE", "OWNED"].iter().any(|k| s.contains(k))
    })
}

/// Append the statements, templated and split, to a simple query.
fn append(out: &mut String, stmts: &[String], vars: &Vars<'_>) {
    for stmt in stmts {
        for q in template::split(stmt) {
            if !out.is_empty() {
                out.push_str(";\n");
            }
            out.push_str(&template::render(&q, vars));
        }
    }
}

/// A PostgreSQL string literal (`standard_conforming_strings` is on by default).
fn pg_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn default_if_empty<'a>(stmts: &'a [String], default: &'a str) -> Vec<&'a str> {
    let given: Vec<&str> = stmts
        .iter()
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty())
        .collect();
    if given.is_empty() {
        vec![default]
    } else {
        given
    }
}

/// Non-empty revocation statements as given (none: the defaults).
fn given(statements: &[String]) -> Vec<String> {
    statements
        .iter()
        .filter(|s| !s.trim().is_empty())
        .cloned()
        .collect()
}

fn user_vars(username: &str) -> Vars<'_> {
    Vars {
        name: username,
        password: "",
        expiration: "",
    }
}

/// A user that exists, with what its default revocation needs.
struct Found {
    username: String,
    /// The current database (for the default statements' REVOKE CONNECT).
    db: String,
    /// Schemas where the user holds column grants (default statements only).
    schemas: Vec<String>,
}

/// Which of `users` exist, in one round trip (`query_typed` sends no separate prepare). The
/// grants lookup (a slow information_schema view) runs only for users revoked with the
/// default statements (`true`); given statements need just whether the user still exists.
async fn lookup(c: &tokio_postgres::Client, users: &[(&str, bool)]) -> Result<Vec<Found>> {
    use tokio_postgres::types::Type;
    let look = |e: tokio_postgres::Error| pg_err("cannot look up the user", &e);
    let names: Vec<&str> = users.iter().map(|(u, _)| *u).collect();
    let defaults: Vec<&str> = users.iter().filter(|(_, d)| *d).map(|(u, _)| *u).collect();
    let rows = c
        .query_typed(
            "SELECT u, current_database()::text, \
             CASE WHEN u = ANY($2) THEN ARRAY(SELECT DISTINCT table_schema::text FROM information_schema.role_column_grants WHERE grantee = u) \
             ELSE ARRAY[]::text[] END \
             FROM unnest($1::text[]) AS u WHERE exists(SELECT 1 FROM pg_roles WHERE rolname = u)",
            &[(&names, Type::TEXT_ARRAY), (&defaults, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(look)?;
    rows.iter()
        .map(|r| {
            Ok(Found {
                username: r.try_get(0).map_err(look)?,
                db: r.try_get(1).map_err(look)?,
                schemas: r.try_get(2).map_err(look)?,
            })
        })
        .collect()
}

/// A user's revocation: first forbid new logins and end the open sessions, so a dropped
/// user's connection cannot go on working (vault#10681, vault PR #8668); then the given
/// statements, or OpenBao's defaults.
fn drop_statements(username: &str, given: &[String], found: &Found) -> Vec<String> {
    let u = pg_ident(username);
    let mut stmts = vec![
        format!("ALTER ROLE {u} NOLOGIN"),
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {} AND pid <> pg_backend_pid()",
            pg_literal(username)
        ),
    ];
    if !given.is_empty() {
        stmts.extend(given.iter().cloned());
        return stmts;
    }
    for schema in &found.schemas {
        let s = pg_ident(schema);
        stmts.push(format!(
            "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA {s} FROM {u}"
        ));
        stmts.push(format!("REVOKE USAGE ON SCHEMA {s} FROM {u}"));
    }
    stmts.push(format!(
        "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM {u}"
    ));
    stmts.push(format!(
        "REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM {u}"
    ));
    stmts.push(format!("REVOKE USAGE ON SCHEMA public FROM {u}"));
    stmts.push(format!(
        "REVOKE CONNECT ON DATABASE {} FROM {u}",
        pg_ident(&found.db)
    ));
    stmts.push(format!("DROP ROLE IF EXISTS {u}"));
    stmts
}

#[async_trait]
impl Plugin for Postgres {
    fn username_style(&self) -> UsernameStyle {
        UsernameStyle::Postgres
    }

    fn refused_change_applies_nothing(&self, _statements: &[String]) -> bool {
        // The statements run as one implicit transaction.
        true
    }

    async fn verify(&self) -> Result<()> {
        let c = self.client().await?;
        c.simple_query("SELECT 1")
            .await
            .map_err(|e| pg_err("error verifying connection", &e))?;
        Ok(())
    }

    async fn create_user(&self, statements: &[String], user: &NewUser<'_>) -> Result<()> {
        let _permit = self
            .creators
            .acquire()
            .await
            .map_err(|_| Error::unavailable("the connection pool is closed"))?;
        let vars = Vars {
            name: user.username,
            password: user.password,
            expiration: user.expiration,
        };
        // One transaction: a failing GRANT leaves no role behind.
        self.run_in_txn(statements, &vars, "cannot create the user")
            .await
    }

    async fn drop_user(&self, statements: &[String], username: &str) -> Result<()> {
        let c = self.client().await?;
        let given = given(statements);
        let Some(found) = lookup(&c, &[(username, given.is_empty())])
            .await?
            .into_iter()
            .next()
        else {
            return Ok(());
        };
        let stmts = drop_statements(username, &given, &found);
        let vars = user_vars(username);
        // All or nothing, in one round trip: a failure leaves the role to the next attempt.
        match c.batch_execute(&batch(&stmts, &vars)).await {
            Ok(()) => Ok(()),
            // Objects or grants elsewhere still depend on the role (vault#699, #1535): hand
            // them to the admin and drop the rest. Needs membership in the role (a superuser,
            // or PostgreSQL 16's CREATEROLE).
            Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "2BP01") => {
                let u = pg_ident(username);
                let retry = vec![
                    format!("REASSIGN OWNED BY {u} TO CURRENT_USER"),
                    format!("DROP OWNED BY {u}"),
                    format!("DROP ROLE IF EXISTS {u}"),
                ];
                c.batch_execute(&batch(&retry, &vars))
                    .await
                    .map_err(|e| pg_err("cannot drop the user", &e))
            }
            Err(e) => Err(pg_err("cannot revoke the user", &e)),
        }
    }

    async fn drop_users(&self, users: &[DropUser<'_>]) -> Result<()> {
        let c = self.client().await?;
        let given: Vec<Vec<String>> = users.iter().map(|u| given(u.statements)).collect();
        let asked: Vec<(&str, bool)> = users
            .iter()
            .zip(&given)
            .map(|(u, g)| (u.username, g.is_empty()))
            .collect();
        let found = lookup(&c, &asked).await?;
        if found.is_empty() {
            return Ok(());
        }
        // One simple query, so one round trip and one transaction (one commit for the whole
        // batch): every user's revocation after the privilege lock. Any failure rolls the
        // whole batch back, and the caller then revokes one by one.
        let mut each = Vec::new();
        for (u, g) in users.iter().zip(&given) {
            if let Some(f) = found.iter().find(|f| f.username == u.username) {
                each.push((u.username, drop_statements(u.username, g, f)));
            }
        }
        let mut sql = String::new();
        if each.iter().any(|(_, stmts)| changes_privileges(stmts)) {
            sql.push_str(PRIVILEGE_LOCK);
        }
        for (username, stmts) in &each {
            append(&mut sql, stmts, &user_vars(username));
        }
        c.batch_execute(&sql)
            .await
            .map_err(|e| pg_err("cannot revoke the users", &e))
    }

    async fn renew_user(
        &self,
        statements: &[String],
        username: &str,
        expiration: &str,
    ) -> Result<()> {
        let stmts: Vec<String> = default_if_empty(statements, DEFAULT_RENEW)
            .into_iter()
            .map(str::to_string)
            .collect();
        let vars = Vars {
            name: username,
            password: "",
            expiration,
        };
        self.run_in_txn(&stmts, &vars, "cannot renew the user")
            .await
    }

    async fn set_password(
        &self,
        statements: &[String],
        username: &str,
        password: &str,
    ) -> Result<()> {
        let stmts: Vec<String> = default_if_empty(statements, DEFAULT_ROTATE)
            .into_iter()
            .map(str::to_string)
            .collect();
        let vars = Vars {
            name: username,
            password,
            expiration: "",
        };
        self.run_in_txn(&stmts, &vars, "cannot set the password")
            .await
    }

    async fn user_exists(&self, username: &str) -> Result<bool> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT exists(SELECT 1 FROM pg_roles WHERE rolname = $1)",
                &[&username],
            )
            .await
            .map_err(|e| pg_err("cannot look up the user", &e))?;
        row.try_get(0)
            .map_err(|e| pg_err("cannot look up the user", &e))
    }

    async fn list_users(&self, prefix: &str) -> Result<Vec<String>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname",
                &[&prefix],
            )
            .await
            .map_err(|e| pg_err("cannot list users", &e))?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(|e| pg_err("cannot list users", &e)))
            .collect()
    }

    async fn close(&self) {
        self.creators.close();
        self.pool.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_statements_that_change_privileges_take_the_lock() {
        let vars = Vars {
            name: "v-grant-revoke-owned",
            password: "pw",
            expiration: "",
        };
        let create =
            vec!["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';".to_string()];
        let sql = batch(&create, &vars);
        assert!(!sql.contains("pg_advisory_xact_lock"), "{sql}");
        assert!(
            sql.starts_with("CREATE ROLE \"v-grant-revoke-owned\""),
            "{sql}"
        );
        for stmts in [
            "CREATE ROLE \"{{name}}\"; grant select on items to \"{{name}}\";",
            "REVOKE ALL ON items FROM \"{{name}}\"; DROP ROLE \"{{name}}\";",
            "DROP OWNED BY \"{{name}}\"",
        ] {
            let sql = batch(&[stmts.to_string()], &vars);
            assert!(sql.starts_with(PRIVILEGE_LOCK), "{sql}");
        }
        // The default revocation revokes, so it takes the lock.
        let found = Found {
            username: "u".into(),
            db: "d".into(),
            schemas: vec![],
        };
        assert!(changes_privileges(&drop_statements("u", &[], &found)));
        assert!(!changes_privileges(&drop_statements(
            "u",
            &["DROP ROLE IF EXISTS \"{{name}}\"".to_string()],
            &found
        )));
    }
}
