//! `mysql-database-plugin` (and the legacy, RDS and Aurora names): MySQL / MariaDB users.

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use tokio::sync::Semaphore;

use super::plugin::{ConnectionSettings, DropUser, NewUser, Plugin, unavailable, upstream};
use super::template::{self, UsernameStyle, Vars};
use crate::error::{Error, Result};

const DEFAULT_ROTATE: &str = "ALTER USER '{{username}}'@'%' IDENTIFIED BY '{{password}}';";

/// A MySQL connection config: one bounded pool; creation leaves one connection to revocation.
pub(crate) struct Mysql {
    pool: Pool,
    creators: Semaphore,
    style: UsernameStyle,
}

/// Parse OpenBao's Go DSN (`user:pass@tcp(host:port)/db?params`) or a `mysql://` URL.
fn parse_url(s: &ConnectionSettings) -> Result<OptsBuilder> {
    let bad = || {
        Error::invalid_input(
            "error creating database object: invalid connection_url (expected `{{username}}:{{password}}@tcp(host:port)/` or `mysql://host:port`)",
        )
    };
    let raw = s.connection_url.as_str();
    let templated_user = raw.contains("{{username}}");
    let templated_pass = raw.contains("{{password}}");
    let builder = if raw.starts_with("mysql://") {
        let url = raw
            .replace("{{username}}", "strongroom_user")
            .replace("{{password}}", "strongroom_password");
        OptsBuilder::from_opts(Opts::from_url(&url).map_err(|_| bad())?)
    } else {
        // Go DSN: [user[:pass]@][tcp(addr)]/[db][?params]
        let (cred, rest) = match raw
            .rfind(")/")
            .and_then(|i| raw.get(..i))
            .and_then(|h| h.rfind('@'))
        {
            Some(at) => (raw.get(..at).unwrap_or(""), raw.get(at + 1..).unwrap_or("")),
            None => ("", raw),
        };
        let rest = rest.strip_prefix("tcp(").ok_or_else(bad)?;
        let close = rest.find(')').ok_or_else(bad)?;
        let addr = rest.get(..close).ok_or_else(bad)?;
        let after = rest.get(close + 1..).unwrap_or("");
        let db = after
            .strip_prefix('/')
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("");
        let (host, port) = match addr.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (addr, 3306),
        };
        let mut b = OptsBuilder::default().ip_or_hostname(host).tcp_port(port);
        if !db.is_empty() {
            b = b.db_name(Some(db));
        }
        if !templated_user {
            let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
            if !u.is_empty() {
                b = b.user(Some(u));
            }
            if !p.is_empty() && !templated_pass {
                b = b.pass(Some(p));
            }
        }
        b
    };
    let mut b = builder;
    let has_cred = raw.contains('@');
    if templated_user || (!has_cred && !s.username.is_empty()) {
        b = b.user(Some(s.username.clone()));
    }
    if templated_pass || (!has_cred && !s.password.is_empty()) {
        b = b.pass(Some(s.password.clone()));
    }
    Ok(b)
}

fn my_err(what: &str, e: mysql_async::Error) -> Error {
    match e {
        mysql_async::Error::Server(se) => {
            upstream(what, format!("Error {}: {}", se.code, se.message))
        }
        other => unavailable(what, other),
    }
}

/// MySQL has one user per (name, host); a statement may have created it for any host.
async fn hosts_of(c: &mut mysql_async::Conn, username: &str) -> Result<Vec<String>> {
    c.exec("SELECT Host FROM mysql.user WHERE User = ?", (username,))
        .await
        .map_err(|e| my_err("cannot look up the user", e))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

impl Mysql {
    pub(crate) fn open(s: &ConnectionSettings, style: UsernameStyle) -> Result<Mysql> {
        if s.connection_url.is_empty() {
            return Err(Error::invalid_input(
                "error creating database object: connection_url cannot be empty",
            ));
        }
        let max = s.max_open.max(1);
        // The lower bound is how many connections stay open when idle (mysql_async closes
        // the others as soon as they are returned).
        let constraints = PoolConstraints::new(s.max_idle.min(max), max)
            .ok_or_else(|| Error::invalid_input("invalid max_open_connections"))?;
        let mut pool_opts = PoolOpts::default().with_constraints(constraints);
        if !s.max_lifetime.is_zero() {
            pool_opts = pool_opts.with_abs_conn_ttl(Some(s.max_lifetime));
        }
        let opts = parse_url(s)?.pool_opts(pool_opts).prefer_socket(false);
        Ok(Mysql {
            pool: Pool::new(opts),
            creators: Semaphore::new(max.saturating_sub(1).max(1)),
            style,
        })
    }

    async fn conn(&self) -> Result<mysql_async::Conn> {
        match tokio::time::timeout(std::time::Duration::from_secs(30), self.pool.get_conn()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(my_err("cannot connect to mysql", e)),
            Err(_) => Err(Error::unavailable(
                "mysql did not give a connection in time",
            )),
        }
    }

    async fn run(
        &self,
        c: &mut mysql_async::Conn,
        stmts: &[String],
        vars: &Vars<'_>,
        what: &str,
    ) -> Result<()> {
        for stmt in stmts {
            for q in template::split(stmt) {
                c.query_drop(template::render(&q, vars))
                    .await
                    .map_err(|e| my_err(what, e))?;
            }
        }
        Ok(())
    }

    /// Kill the user's sessions and drop it for every host (OpenBao's default revocation,
    /// plus the KILL that vault#10681 asks for).
    async fn remove(&self, c: &mut mysql_async::Conn, username: &str) -> Result<()> {
        self.kill_sessions(c, username).await?;
        for host in hosts_of(c, username).await? {
            let who = format!("{}@{}", quote(username), quote(&host));
            // MariaDB refuses REVOKE ALL from a user holding no grant on some versions; the
            // DROP below is what counts.
            let _ = c
                .query_drop(format!("REVOKE ALL PRIVILEGES, GRANT OPTION FROM {who}"))
                .await;
            c.query_drop(format!("DROP USER IF EXISTS {who}"))
                .await
                .map_err(|e| my_err("cannot drop the user", e))?;
        }
        Ok(())
    }

    async fn kill_sessions(&self, c: &mut mysql_async::Conn, username: &str) -> Result<()> {
        let ids: Vec<u64> = c
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()",
                (username,),
            )
            .await
            .map_err(|e| my_err("cannot list the user's sessions", e))?;
        for id in ids {
            // The session may end on its own meanwhile: ER_NO_SUCH_THREAD (1094) is fine.
            match c.query_drop(format!("KILL CONNECTION {id}")).await {
                Ok(()) => {}
                Err(mysql_async::Error::Server(se)) if se.code == 1094 => {}
                Err(e) => return Err(my_err("cannot end the user's sessions", e)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Plugin for Mysql {
    fn username_style(&self) -> UsernameStyle {
        self.style
    }

    async fn verify(&self) -> Result<()> {
        let mut c = self.conn().await?;
        c.ping()
            .await
            .map_err(|e| my_err("error verifying connection", e))
    }

    async fn create_user(&self, statements: &[String], user: &NewUser<'_>) -> Result<()> {
        let _permit = self
            .creators
            .acquire()
            .await
            .map_err(|_| Error::unavailable("the connection pool is closed"))?;
        let mut c = self.conn().await?;
        let vars = Vars {
            name: user.username,
            password: user.password,
            expiration: user.expiration,
        };
        // MySQL commits DDL implicitly: on failure, undo by dropping whatever was created.
        if let Err(e) = self
            .run(&mut c, statements, &vars, "cannot create the user")
            .await
        {
            if let Err(cleanup) = self.remove(&mut c, user.username).await {
                tracing::error!(user = user.username, error = %cleanup, "cannot drop a half-created mysql user");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn drop_user(&self, statements: &[String], username: &str) -> Result<()> {
        let mut c = self.conn().await?;
        if hosts_of(&mut c, username).await?.is_empty() {
            return Ok(());
        }
        let given: Vec<String> = statements
            .iter()
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .collect();
        if given.is_empty() {
            return self.remove(&mut c, username).await;
        }
        self.kill_sessions(&mut c, username).await?;
        let vars = Vars {
            name: username,
            password: "",
            expiration: "",
        };
        self.run(&mut c, &given, &vars, "cannot revoke the user")
            .await
    }

    async fn drop_users(&self, users: &[DropUser<'_>]) -> Result<()> {
        let mut c = self.conn().await?;
        let names = users
            .iter()
            .map(|u| quote(u.username))
            .collect::<Vec<_>>()
            .join(", ");
        // Every account of every user in the batch, in one round trip.
        let accounts: Vec<(String, String)> = c
            .query(format!(
                "SELECT User, Host FROM mysql.user WHERE User IN ({names})"
            ))
            .await
            .map_err(|e| my_err("cannot look up the users", e))?;
        if accounts.is_empty() {
            return Ok(());
        }
        // One multi-statement query: one DROP USER naming every account of the users revoked
        // with the default statements (DROP USER takes their privileges with them), then the
        // given statements of the others. Account statements commit one by one, so a failure
        // may leave part done; the caller then revokes user by user, where a user already
        // gone counts as dropped.
        let mut sql = Vec::new();
        let mut defaults = Vec::new();
        for u in users {
            let given: Vec<&String> = u
                .statements
                .iter()
                .filter(|s| !s.trim().is_empty())
                .collect();
            let hosts = accounts.iter().filter(|(name, _)| name == u.username);
            if given.is_empty() {
                defaults.extend(hosts.map(|(_, h)| format!("{}@{}", quote(u.username), quote(h))));
            } else if hosts.count() > 0 {
                let vars = Vars {
                    name: u.username,
                    password: "",
                    expiration: "",
                };
                for stmt in given {
                    sql.extend(
                        template::split(stmt)
                            .iter()
                            .map(|q| template::render(q, &vars)),
                    );
                }
            }
        }
        if !defaults.is_empty() {
            sql.insert(0, format!("DROP USER IF EXISTS {}", defaults.join(", ")));
        }
        if !sql.is_empty() {
            c.query_drop(sql.join(";\n"))
                .await
                .map_err(|e| my_err("cannot revoke the users", e))?;
        }
        // Then end their sessions (vault#10681): after the drop, so none can start in between.
        let ids: Vec<u64> = c
            .query(format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER IN ({names}) AND ID <> CONNECTION_ID()"
            ))
            .await
            .map_err(|e| my_err("cannot list the users' sessions", e))?;
        for id in ids {
            match c.query_drop(format!("KILL CONNECTION {id}")).await {
                Ok(()) => {}
                Err(mysql_async::Error::Server(se)) if se.code == 1094 => {}
                Err(e) => return Err(my_err("cannot end the users' sessions", e)),
            }
        }
        Ok(())
    }

    async fn renew_user(
        &self,
        _statements: &[String],
        _username: &str,
        _expiration: &str,
    ) -> Result<()> {
        // MySQL has no VALID UNTIL: renewal is a no-op, as in OpenBao.
        Ok(())
    }

    fn refused_change_applies_nothing(&self, statements: &[String]) -> bool {
        // Account statements commit on their own: only a single one is all-or-nothing.
        statements
            .iter()
            .map(|s| super::template::split(s).len())
            .sum::<usize>()
            <= 1
    }

    async fn set_password(
        &self,
        statements: &[String],
        username: &str,
        password: &str,
    ) -> Result<()> {
        let mut c = self.conn().await?;
        let given: Vec<String> = statements
            .iter()
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .collect();
        let stmts = if given.is_empty() {
            vec![DEFAULT_ROTATE.to_string()]
        } else {
            given
        };
        let vars = Vars {
            name: username,
            password,
            expiration: "",
        };
        self.run(&mut c, &stmts, &vars, "cannot set the password")
            .await
    }

    async fn user_exists(&self, username: &str) -> Result<bool> {
        let mut c = self.conn().await?;
        Ok(!hosts_of(&mut c, username).await?.is_empty())
    }

    async fn list_users(&self, prefix: &str) -> Result<Vec<String>> {
        let mut c = self.conn().await?;
        let all: Vec<String> = c
            .query("SELECT DISTINCT User FROM mysql.user ORDER BY User")
            .await
            .map_err(|e| my_err("cannot list users", e))?;
        Ok(all.into_iter().filter(|u| u.starts_with(prefix)).collect())
    }

    async fn close(&self) {
        self.creators.close();
        let _ = self.pool.clone().disconnect().await;
    }
}
