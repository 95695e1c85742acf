//! Mount administration: the mount table behind the barrier, the router built from it, and
//! the changes `sys/mounts` makes (mount, tune, unmount).

use std::sync::{Arc, Weak};

use crate::error::{Error, Result};
use crate::leases::LeaseHost;
use crate::router::{self, IDENTITY_KIND, MountEntry, Router};
use crate::storage::TxnOp;
use crate::strongroom::{Inner, Strongroom};
use crate::token::TokenEntry;

impl Strongroom {
    /// Stores created before the cubbyhole engine and the `response-wrapping` policy existed
    /// get them on unseal, as OpenBao adds its required mounts and policies.
    pub(crate) async fn ensure_builtins(&self) -> Result<()> {
        let i = &self.inner;
        let mut entries = router::load_table(i.storage.as_ref()).await?;
        let mut ops = Vec::new();
        if !entries
            .iter()
            .any(|e| e.kind == crate::secrets::cubbyhole::KIND)
        {
            entries.insert(0, cubbyhole_entry());
        }
        // `identity/` is always mounted (OpenBao's required mount), served by the pipeline.
        if !entries.iter().any(|e| e.kind == IDENTITY_KIND) {
            let mut e = MountEntry::new("identity/", IDENTITY_KIND);
            e.description = "identity store".into();
            entries.push(e);
        }
        if entries.len() != router::load_table(i.storage.as_ref()).await?.len() {
            ops.push(TxnOp::Put {
                key: router::MOUNTS_PATH.into(),
                value: router::encode_table(&entries)?,
            });
        }
        if !crate::policies::stored(
            i.storage.as_ref(),
            crate::policy::RESPONSE_WRAPPING_POLICY_NAME,
        )
        .await?
        {
            ops.push(crate::policies::response_wrapping_policy_op(i.clock.now())?);
        }
        if !ops.is_empty() {
            i.storage.transaction(ops).await?;
        }
        Ok(())
    }

    pub(crate) fn set_router(&self, r: Router) -> Result<()> {
        *self.inner.router.write().or_else(crate::util::unpoison)? = Arc::new(r);
        self.inner
            .router_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    pub(crate) fn router(&self) -> Result<Arc<Router>> {
        Ok(self
            .inner
            .router
            .read()
            .or_else(crate::util::unpoison)?
            .clone())
    }

    fn mount_storage(&self) -> router::MountStorage {
        router::MountStorage::Barrier(self.inner.barrier.clone())
    }

    pub(crate) async fn reload_router(&self) -> Result<()> {
        let entries = router::load_table(self.inner.storage.as_ref()).await?;
        let previous = self.router()?;
        let r = Router::build(
            &entries,
            &self.mount_storage(),
            &self.inner.clock,
            Some(&previous),
        )?;
        self.inner.tokens.set_cubbyhole_prefix(
            entries
                .iter()
                .find(|e| e.kind == crate::secrets::cubbyhole::KIND)
                .map(|e| format!("logical/{}/", e.uuid)),
        )?;
        self.set_router(r)?;
        self.reload_auth().await
    }

    /// Add a mount (used by `sys/mounts/:path` and dev setup).
    pub(crate) async fn mount(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        options: Option<std::collections::BTreeMap<String, String>>,
    ) -> Result<()> {
        let mut e = MountEntry::new(&router::normalize_mount_path(path)?, kind);
        e.description = description.to_string();
        e.options = options;
        self.add_mount(e).await
    }

    pub(crate) async fn add_mount(&self, e: MountEntry) -> Result<()> {
        let _guard = self.inner.admin.lock().await;
        if e.kind == crate::secrets::cubbyhole::KIND {
            return Err(Error::invalid_input(format!(
                "mount type of {:?} is not mountable",
                e.kind
            )));
        }
        // OpenBao's `protectedMounts`, `audit/` included: a secrets engine there would shadow
        // the audit devices' namespace (`cannot mount "audit/"`, 400).
        for reserved in ["audit/", "auth/", "sys/", "cubbyhole/", "identity/"] {
            if e.path.starts_with(reserved) {
                return Err(Error::invalid_input(format!(
                    "cannot mount {}",
                    crate::policy::hcl::strconv::quote(&e.path)
                )));
            }
        }
        let mut entries = router::load_table(self.inner.storage.as_ref()).await?;
        if let Some(existing) = entries
            .iter()
            .find(|m| m.path.starts_with(&e.path) || e.path.starts_with(&m.path))
        {
            return Err(Error::invalid_input(format!(
                "path is already in use at {}",
                existing.path
            )));
        }
        // Fails on an unknown type before anything is written.
        Router::instantiate(&e, &self.mount_storage(), &self.inner.clock)?;
        entries.push(e);
        self.inner
            .storage
            .put(router::MOUNTS_PATH, &router::encode_table(&entries)?)
            .await?;
        self.reload_router().await
    }

    pub(crate) async fn remove_mount(&self, path: &str) -> Result<()> {
        let _guard = self.inner.admin.lock().await;
        let mut entries = router::load_table(self.inner.storage.as_ref()).await?;
        let Some(pos) = entries.iter().position(|m| m.path == path) else {
            return Ok(());
        };
        let removed = entries.remove(pos);
        if removed.kind == crate::secrets::cubbyhole::KIND {
            return Err(Error::invalid_input(format!("cannot unmount {path:?}")));
        }
        if removed.kind == "system" {
            return Err(Error::invalid_input(format!("cannot unmount '{path}'")));
        }
        if removed.kind == IDENTITY_KIND {
            return Err(Error::invalid_input(format!("cannot unmount {path:?}")));
        }
        // As OpenBao: the mount's leases are revoked first, and a failure stops the unmount,
        // so no credential outlives the engine that could revoke it.
        self.inner
            .leases
            .lease_revoke_prefix(path, false)
            .await
            .map_err(|e| {
                Error::invalid_input(format!(
                    "failed to revoke leases on unmount of '{path}': {}",
                    e.message()
                ))
            })?;
        // The table first, so a crash never leaves a mount pointing at deleted data; the
        // mount's entries are cleared after.
        self.inner
            .storage
            .put(router::MOUNTS_PATH, &router::encode_table(&entries)?)
            .await?;
        self.reload_router().await?;
        delete_all_under(
            self.inner.storage.as_ref(),
            &format!("logical/{}/", removed.uuid),
        )
        .await
    }

    pub(crate) async fn update_mount(&self, e: MountEntry) -> Result<()> {
        let _guard = self.inner.admin.lock().await;
        let mut entries = router::load_table(self.inner.storage.as_ref()).await?;
        let Some(slot) = entries.iter_mut().find(|m| m.path == e.path) else {
            return Err(Error::invalid_input(format!("no mount at {}", e.path)));
        };
        *slot = e;
        self.inner
            .storage
            .put(router::MOUNTS_PATH, &router::encode_table(&entries)?)
            .await?;
        self.reload_router().await
    }

    /// The mount path a request path (or lease id) belongs to, for metrics labels: the mount
    /// serving it, else its first segment (`sys/`; `auth/<name>/` for auth paths).
    ///
    /// ```
    /// # tokio_test_block_on(async {
    /// let sr = strongroom::Strongroom::open(strongroom::Config::dev()).await?;
    /// assert_eq!(sr.mount_label("secret/data/app"), "secret/");
    /// assert_eq!(sr.mount_label("sys/health"), "sys/");
    /// # Ok::<(), strongroom::Error>(()) });
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    /// # }
    /// ```
    pub fn mount_label(&self, path: &str) -> String {
        self.inner.leases.mount_label(path)
    }

    /// The path of the mount serving `path` (`secret/`, `auth/token/`, `sys/`), or `None` when
    /// no mount serves it or the engine is sealed. Unlike [`Strongroom::mount_label`] it never
    /// makes a name up from the request, so a caller can label metrics with it without letting
    /// clients invent label values.
    ///
    /// ```
    /// # tokio_test_block_on(async {
    /// let sr = strongroom::Strongroom::open(strongroom::Config::dev()).await?;
    /// assert_eq!(sr.mount_of("secret/data/app").as_deref(), Some("secret/"));
    /// assert_eq!(sr.mount_of("sys/health").as_deref(), Some("sys/"));
    /// assert_eq!(sr.mount_of("auth/token/create").as_deref(), Some("auth/token/"));
    /// assert_eq!(sr.mount_of("no-such-mount/x"), None);
    /// assert_eq!(sr.mount_of("auth/no-such-method/login"), None);
    /// # Ok::<(), strongroom::Error>(()) });
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    /// # }
    /// ```
    pub fn mount_of(&self, path: &str) -> Option<String> {
        // The built-in mounts are always there (the token store is not in the auth table's
        // router).
        for fixed in ["sys/", "auth/token/"] {
            if path.starts_with(fixed) || Some(path) == fixed.strip_suffix('/') {
                return Some(fixed.to_string());
            }
        }
        if path.starts_with("auth/") {
            return self
                .route_auth(path)
                .ok()
                .flatten()
                .map(|(m, _)| format!("auth/{}", m.entry.path));
        }
        let router = self.router().ok()?;
        router.route(path).map(|(m, _)| m.entry.path.clone())
    }

    /// Route an authenticated request under `auth/<mount>/` (not the token store) to its
    /// method's engine.
    pub(crate) fn route_auth(&self, path: &str) -> Result<Option<(Arc<router::Mounted>, String)>> {
        Ok(self
            .inner
            .auth
            .route(path)?
            .map(|(m, rel)| (m.mounted.clone(), rel.to_string())))
    }

    /// Rebuild the live auth mounts from `core/auth`.
    pub(crate) async fn reload_auth(&self) -> Result<()> {
        self.inner
            .auth
            .reload(&self.inner.storage, &self.inner.clock)
            .await
    }

    /// `POST sys/auth/:path`: enable a method (its type must be known).
    pub(crate) async fn enable_auth(&self, e: MountEntry) -> Result<()> {
        let _guard = self.inner.admin.lock().await;
        let storage = self.inner.storage.as_ref();
        let mut table = router::load_auth_table(storage).await?;
        if let Some(existing) = table
            .iter()
            .find(|m| m.path.starts_with(&e.path) || e.path.starts_with(&m.path))
        {
            return Err(Error::invalid_input(format!(
                "path is already in use at {}",
                existing.path
            )));
        }
        crate::auth::new_method(&e.kind).ok_or_else(|| {
            Error::invalid_input(format!("plugin not found in the catalog: {}", e.kind))
        })?;
        table.push(e);
        storage
            .put(router::AUTH_PATH, &router::encode_table(&table)?)
            .await?;
        self.reload_auth().await
    }

    /// `DELETE sys/auth/:path`: disable a method, revoke the tokens it issued and drop its
    /// storage. Unknown paths succeed, as in OpenBao.
    pub(crate) async fn disable_auth(&self, path: &str) -> Result<()> {
        let _guard = self.inner.admin.lock().await;
        let storage = self.inner.storage.as_ref();
        let mut table = router::load_auth_table(storage).await?;
        let Some(pos) = table.iter().position(|m| m.path == path) else {
            return Ok(());
        };
        if table.get(pos).is_some_and(|e| e.kind == "token") {
            return Err(Error::invalid_input(
                "token credential backend cannot be disabled",
            ));
        }
        let removed = table.remove(pos);
        storage
            .put(router::AUTH_PATH, &router::encode_table(&table)?)
            .await?;
        self.reload_auth().await?;
        // Tokens issued through the mount go with it: every login token is a lease under
        // `auth/<path>` (OpenBao revokes the mount's prefix the same way).
        self.inner
            .leases
            .lease_revoke_prefix(&format!("auth/{}", removed.path), false)
            .await?;
        delete_all_under(storage, &crate::auth::storage_prefix(&removed)).await
    }

    /// `POST sys/auth/:path/tune`: update a method's TTL settings and description.
    pub(crate) async fn tune_auth(&self, e: MountEntry) -> Result<()> {
        let _guard = self.inner.admin.lock().await;
        let storage = self.inner.storage.as_ref();
        let mut table = router::load_auth_table(storage).await?;
        let Some(slot) = table.iter_mut().find(|m| m.path == e.path) else {
            return Err(Error::invalid_input(format!(
                "cannot fetch sysview for path \"auth/{}\"",
                e.path
            )));
        };
        *slot = e;
        storage
            .put(router::AUTH_PATH, &router::encode_table(&table)?)
            .await?;
        self.reload_auth().await
    }
}

/// The engine as the lease manager sees it ([`LeaseHost`]): the mounted engines, the token
/// store and store sync. Weak, as the engine owns the lease manager; once the engine is gone
/// every call answers `Unavailable` (and `is_sealed` is true).
pub(crate) struct EngineHost(pub(crate) Weak<Inner>);

impl EngineHost {
    fn engine(&self) -> Result<Strongroom> {
        self.0
            .upgrade()
            .map(|inner| Strongroom { inner })
            .ok_or_else(crate::scheduler::shut_down)
    }
}

#[async_trait::async_trait]
impl LeaseHost for EngineHost {
    fn router(&self) -> Result<Arc<Router>> {
        self.engine()?.router()
    }

    fn is_sealed(&self) -> bool {
        match self.0.upgrade() {
            Some(inner) => inner.barrier.is_sealed(),
            None => true,
        }
    }

    async fn sync_store(&self) -> Result<()> {
        self.engine()?.sync_store().await
    }

    async fn token(&self, salted: &str) -> Result<Option<TokenEntry>> {
        let sr = self.engine()?;
        sr.inner
            .tokens
            .get_salted(sr.inner.storage.as_ref(), salted)
            .await
    }

    async fn revoke_token_tree(&self, salted: &str) -> Result<()> {
        self.engine()?.token_site().token_revoke_tree(salted).await
    }

    async fn leaf_token_ops(&self, salted: &str) -> Result<Option<Vec<crate::storage::TxnOp>>> {
        let sr = self.engine()?;
        sr.inner
            .tokens
            .leaf_revocation_ops(sr.inner.storage.as_ref(), salted)
            .await
    }

    fn forget_token(&self, salted: &str) -> Result<()> {
        self.engine()?.inner.tokens.forget(salted)
    }

    async fn token_has_children(&self, salted: &str) -> Result<bool> {
        let sr = self.engine()?;
        Ok(!sr
            .inner
            .tokens
            .children(sr.inner.storage.as_ref(), salted)
            .await?
            .is_empty())
    }
}

/// Delete every entry under `prefix` (a removed mount's data), a thousand per transaction.
async fn delete_all_under(storage: &dyn crate::storage::Backend, prefix: &str) -> Result<()> {
    loop {
        let keys = storage
            .scan(
                prefix,
                &crate::storage::Page {
                    after: None,
                    limit: Some(1000),
                },
            )
            .await?;
        if keys.is_empty() {
            return Ok(());
        }
        let ops = keys
            .into_iter()
            .map(|k| TxnOp::Delete {
                key: format!("{prefix}{k}"),
            })
            .collect();
        storage.transaction(ops).await?;
    }
}

/// The `cubbyhole/` mount every store has (local, as in OpenBao).
pub(crate) fn cubbyhole_entry() -> MountEntry {
    let mut e = MountEntry::new(
        crate::secrets::cubbyhole::PATH,
        crate::secrets::cubbyhole::KIND,
    );
    e.description = crate::secrets::cubbyhole::DESCRIPTION.into();
    e.local = true;
    e
}
