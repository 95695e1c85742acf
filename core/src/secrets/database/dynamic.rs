//! Dynamic roles (`roles/<name>`) and the credentials issued under leases (`creds/<name>`).

use super::*;

/// OpenBao adds this to `{{expiration}}` so the database never ends a user before its lease.
pub(super) const EXPIRATION_BUFFER: Duration = Duration::from_secs(5);

/// A dynamic role as stored.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Role {
    pub(super) db_name: String,
    #[serde(default)]
    pub(super) creation_statements: Vec<String>,
    #[serde(default)]
    pub(super) revocation_statements: Vec<String>,
    #[serde(default)]
    pub(super) renew_statements: Vec<String>,
    #[serde(default)]
    pub(super) rollback_statements: Vec<String>,
    #[serde(default)]
    pub(super) default_ttl: u64,
    #[serde(default)]
    pub(super) max_ttl: u64,
    #[serde(default = "password_type")]
    pub(super) credential_type: String,
}

/// A dynamic user the engine created and has not dropped yet.
#[derive(Serialize, Deserialize)]
pub(super) struct Issued {
    pub(super) db_name: String,
    pub(super) role: String,
    /// Issue time + max TTL (RFC 3339): no lease can outlive it, so a user still here after
    /// it was lost between creation and lease registration (a crash) and is an orphan.
    #[serde(default)]
    pub(super) max_expiry: String,
}

/// A new password: from the config's `password_policy` (`sys/policies/password`), else
/// OpenBao's default generator.
pub(super) async fn new_password(ctx: &EngineContext, cfg: &DbConfig) -> Result<String> {
    if cfg.password_policy.is_empty() {
        return Ok(template::password());
    }
    crate::password_policy::generate(&ctx.password_policies, &cfg.password_policy).await
}

pub(super) fn password_type() -> String {
    "password".into()
}

/// A role's lease TTL from `issued` (issue and renewal share OpenBao's rules): returns the TTL,
/// the role's max TTL (capped by the system's) and any capping warnings.
pub(super) fn role_ttl(
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

impl Database {
    pub(super) async fn write_role(
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

    pub(super) async fn read_role(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<Option<Response>> {
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

    pub(super) async fn creds(
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
}
