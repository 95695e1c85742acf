//! Crash recovery: creation intents left behind by a crash, root and static passwords kept in
//! the write-ahead log, and the reconciler that finds users no lease will revoke.

use super::*;

/// How long past its max TTL a known user may linger (revocation retries) before the
/// reconciler calls it an orphan.
pub(super) const ORPHAN_GRACE: time::Duration = time::Duration::hours(1);

/// How old a creation intent must be before recovery treats it as abandoned. Issuing takes
/// milliseconds; the margin covers a slow database, and another live process sharing the
/// store whose issue is still in flight (its intent must not be dropped under it).
pub(super) const INTENT_GRACE: time::Duration = time::Duration::seconds(60);

/// A dynamic user being created (see the module docs).
#[derive(Serialize, Deserialize)]
pub(super) struct Intent {
    pub(super) db_name: String,
    pub(super) role: String,
    #[serde(default)]
    pub(super) revocation_statements: Vec<String>,
    /// When the intent was written (RFC 3339).
    pub(super) created: String,
}

impl Database {
    /// A root rotation whose new password was not stored: if the database took it, store it;
    /// otherwise the old one is still in force. Either way the WAL goes.
    pub(super) async fn recover_root(
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

    /// Drop every user whose creation intent is older than [`INTENT_GRACE`]: its lease was
    /// never recorded (the intent goes in the lease's own transaction), so nothing else would
    /// ever revoke it. A user that does not exist counts as dropped. Returns the users
    /// resolved; one that fails is logged and retried on the next run.
    pub(super) async fn resolve_intents(&self, ctx: &EngineContext) -> Result<Vec<String>> {
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

    /// Users in the database that carry this engine's prefix but that the engine does not
    /// know (`issued/`): orphans from a restored backup, a lost lease or another engine.
    pub(super) async fn reconcile(
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
}
