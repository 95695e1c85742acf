//! `redis-database-plugin`: users are Redis ACL users (`ACL SETUSER`).

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::sync::Mutex;

use super::plugin::{ConnectionSettings, DropUser, NewUser, Plugin, unavailable, upstream};
use super::template::UsernameStyle;
use crate::error::{Error, Result};

/// A Redis connection config: one multiplexed connection, re-opened when it breaks.
pub(crate) struct Redis {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
}

/// ACL rules from the statements: each is a JSON list (`["~*", "+@read"]`, OpenBao's form) or
/// rules separated by spaces. Rules that set passwords or switch the user off are refused: the
/// engine owns those.
fn rules(statements: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for stmt in statements {
        let t = stmt.trim();
        if t.is_empty() {
            continue;
        }
        let parsed: Vec<String> = if t.starts_with('[') {
            serde_json::from_str(t).map_err(|_| {
                Error::invalid_input("redis statements must be a JSON list of ACL rules, like `[\"~*\", \"+@read\"]`")
            })?
        } else {
            t.split_whitespace().map(str::to_string).collect()
        };
        out.extend(parsed);
    }
    for r in &out {
        let l = r.to_ascii_lowercase();
        if r.starts_with('>')
            || r.starts_with('<')
            || r.starts_with('#')
            || r.starts_with('!')
            || ["nopass", "resetpass", "off", "on", "reset"].contains(&l.as_str())
        {
            return Err(Error::invalid_input(format!(
                "redis ACL rule `{}` is managed by the engine and cannot be given in statements",
                if r.starts_with('>') || r.starts_with('#') {
                    "<password rule>"
                } else {
                    r
                }
            )));
        }
    }
    Ok(out)
}

fn check_username(u: &str) -> Result<()> {
    if u.is_empty() || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid_input(format!(
            "invalid redis username `{u}`"
        )));
    }
    Ok(())
}

fn redis_err(what: &str, e: &redis::RedisError) -> Error {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        unavailable(what, e)
    } else {
        upstream(what, e)
    }
}

impl Redis {
    pub(crate) fn open(s: &ConnectionSettings) -> Result<Redis> {
        let bad = || Error::invalid_input("error creating database object: invalid redis address");
        let info = if !s.connection_url.is_empty() {
            s.connection_url
                .as_str()
                .into_connection_info()
                .map_err(|_| bad())?
        } else {
            if s.host.is_empty() {
                return Err(Error::invalid_input(
                    "error creating database object: host cannot be empty",
                ));
            }
            let port = if s.port == 0 { 6379 } else { s.port };
            ConnectionAddr::Tcp(s.host.clone(), port)
                .into_connection_info()
                .map_err(|_| bad())?
        };
        let mut settings: RedisConnectionInfo = info.redis_settings().clone();
        if !s.username.is_empty() {
            settings = settings.set_username(&s.username);
        }
        if !s.password.is_empty() {
            settings = settings.set_password(&s.password);
        }
        let info = info.set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|_| bad())?;
        Ok(Redis {
            client,
            conn: Mutex::new(None),
        })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, what: &str) -> Result<T> {
        let mut guard = self.conn.lock().await;
        let mut conn = match guard.as_ref() {
            Some(c) => c.clone(),
            None => {
                let c = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    self.client.get_multiplexed_async_connection(),
                )
                .await
                .map_err(|_| Error::unavailable("redis did not answer in time"))?
                .map_err(|e| redis_err("cannot connect to redis", &e))?;
                *guard = Some(c.clone());
                c
            }
        };
        drop(guard);
        match cmd.query_async::<T>(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() {
                    *self.conn.lock().await = None;
                }
                Err(redis_err(what, &e))
            }
        }
    }
}

#[async_trait]
impl Plugin for Redis {
    fn username_style(&self) -> UsernameStyle {
        UsernameStyle::Redis
    }

    async fn verify(&self) -> Result<()> {
        let _: String = self
            .query(&redis::cmd("PING"), "error verifying connection")
            .await?;
        Ok(())
    }

    async fn create_user(&self, statements: &[String], user: &NewUser<'_>) -> Result<()> {
        check_username(user.username)?;
        let rules = rules(statements)?;
        if rules.is_empty() {
            return Err(Error::internal(
                "1 error occurred:\n\t* empty creation statements\n\n",
            ));
        }
        // One command: the user exists with all its rules, or not at all.
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER")
            .arg(user.username)
            .arg("reset")
            .arg("on")
            .arg(format!(">{}", user.password));
        for r in &rules {
            cmd.arg(r);
        }
        let _: String = self.query(&cmd, "cannot create the user").await?;
        Ok(())
    }

    async fn drop_user(&self, _statements: &[String], username: &str) -> Result<()> {
        check_username(username)?;
        // ACL DELUSER also disconnects the user's clients; an unknown user answers 0.
        let _: i64 = self
            .query(
                redis::cmd("ACL").arg("DELUSER").arg(username),
                "cannot drop the user",
            )
            .await?;
        Ok(())
    }

    async fn drop_users(&self, users: &[DropUser<'_>]) -> Result<()> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("DELUSER");
        for u in users {
            check_username(u.username)?;
            cmd.arg(u.username);
        }
        // One command for the whole batch; unknown users are skipped.
        let _: i64 = self.query(&cmd, "cannot drop the users").await?;
        Ok(())
    }

    async fn renew_user(
        &self,
        _statements: &[String],
        _username: &str,
        _expiration: &str,
    ) -> Result<()> {
        // Redis users have no expiry: renewal is a no-op.
        Ok(())
    }

    fn refused_change_applies_nothing(&self, _statements: &[String]) -> bool {
        // One ACL SETUSER command.
        true
    }

    async fn set_password(
        &self,
        _statements: &[String],
        username: &str,
        password: &str,
    ) -> Result<()> {
        check_username(username)?;
        if !self.user_exists(username).await? {
            return Err(Error::invalid_input(format!(
                "redis user `{username}` does not exist"
            )));
        }
        let _: String = self
            .query(
                redis::cmd("ACL")
                    .arg("SETUSER")
                    .arg(username)
                    .arg("resetpass")
                    .arg(format!(">{password}")),
                "cannot set the password",
            )
            .await?;
        Ok(())
    }

    async fn user_exists(&self, username: &str) -> Result<bool> {
        let users: Vec<String> = self
            .query(redis::cmd("ACL").arg("USERS"), "cannot list users")
            .await?;
        Ok(users.iter().any(|u| u == username))
    }

    async fn list_users(&self, prefix: &str) -> Result<Vec<String>> {
        let users: Vec<String> = self
            .query(redis::cmd("ACL").arg("USERS"), "cannot list users")
            .await?;
        Ok(users
            .into_iter()
            .filter(|u| u.starts_with(prefix))
            .collect())
    }

    async fn close(&self) {
        *self.conn.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_json_and_refuse_password_rules() {
        assert_eq!(
            rules(&["[\"~*\", \"+@read\"]".to_string()]).unwrap(),
            vec!["~*", "+@read"]
        );
        assert_eq!(
            rules(&["~app:* +get".to_string()]).unwrap(),
            vec!["~app:*", "+get"]
        );
        for bad in ["[\">x\"]", "nopass", "[\"on\"]", "[1"] {
            assert!(rules(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
