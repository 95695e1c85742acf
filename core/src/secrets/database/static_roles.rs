//! Static roles (`static-roles/<name>`): existing database users whose passwords the engine
//! rotates on a schedule or on request, and the connection's root rotation.

use super::*;

/// A static role as stored (with its current password, behind the barrier).
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StaticRole {
    pub(super) db_name: String,
    pub(super) username: String,
    pub(super) rotation_period: u64,
    #[serde(default)]
    pub(super) rotation_statements: Vec<String>,
    #[serde(default = "password_type")]
    pub(super) credential_type: String,
    #[serde(default)]
    pub(super) password: String,
    #[serde(default)]
    pub(super) last_vault_rotation: String,
}

/// A new password written before the database is changed.
#[derive(Serialize, Deserialize)]
pub(super) struct PasswordWal {
    pub(super) username: String,
    pub(super) new_password: String,
}

/// Is static role `role` due for rotation at `now` (never rotated, or its period passed)?
pub(super) fn static_due(role: &StaticRole, now: OffsetDateTime) -> bool {
    let period = Duration::from_secs(role.rotation_period);
    // A period too long for a time is never due (rather than a panic).
    crate::clock::parse_rfc3339(&role.last_vault_rotation)
        .is_none_or(|l| crate::clock::later(l, period).is_ok_and(|due| now >= due))
}

/// When [`Database::rotate_static`] rotates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Rotate {
    /// Only if the role is still due (or a rotation is pending) once the lock is held: a
    /// rotation that finished while this one waited is the answer.
    IfDue,
    /// Always (creation, `rotate-role`).
    Now,
}

impl Database {
    pub(super) async fn write_static_role(
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
    pub(super) async fn rotate_static(
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
    pub(super) fn rotation_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .rotations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(name.to_string()).or_default().clone()
    }

    pub(super) async fn static_role(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<Option<StaticRole>> {
        load(ctx, &format!("static-role/{name}")).await
    }

    pub(super) async fn read_static_role(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<Option<Response>> {
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

    pub(super) async fn static_creds(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<Option<Response>> {
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

    pub(super) async fn rotate_root(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<Option<Response>> {
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

    /// Static roles whose rotation period has passed (or with a rotation left half done) get
    /// a new password; configs with `root_rotation_period` get a new root password when due.
    /// A failure is logged and retried on the next run; it never stops the others.
    pub(super) async fn rotate_due(&self, ctx: &EngineContext) -> Result<()> {
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
}
