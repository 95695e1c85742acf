//! Secrets engines. Each mount owns one [`Engine`] instance that sees only its own storage view.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::error::Result;
use crate::request::{Data, LeaseInfo, Request, Response};
use crate::storage::view::View;
use crate::util::names::NameRule;

pub(crate) mod cubbyhole;
pub(crate) mod database;
pub(crate) mod kv;
#[cfg(any(test, feature = "bench-internals"))]
pub(crate) mod leasetest;
pub(crate) mod pki;
pub(crate) mod transit;

/// What an engine knows about the mount it serves.
#[derive(Clone)]
pub(crate) struct EngineContext {
    /// The mount's private storage (already behind the barrier and the mount's prefix).
    pub storage: View,
    /// The engine's clock.
    pub clock: SharedClock,
    /// Effective default lease TTL (mount tuning, else the system default).
    pub default_lease_ttl: Duration,
    /// Effective maximum lease TTL (mount tuning, else the system maximum); may exceed the
    /// system's 768h, as OpenBao allows (`max_lease_ttl=87600h` for a CA).
    pub max_lease_ttl: Duration,
    /// Read access to `sys/policies/password` (keys are policy names), for engines that
    /// generate passwords from a named policy.
    pub password_policies: View,
}

/// A secrets engine serving one mount.
#[async_trait]
pub(crate) trait Engine: Send + Sync + 'static {
    /// Handle `req`, whose `path` is relative to the mount (`data/app` for `secret/data/app`).
    /// `Ok(None)` means "nothing here": a read or list answers 404, a write answers 204.
    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>>;

    /// For a write (`Update`), whether the target already exists, so the pipeline can tell
    /// `create` from `update` for the ACL. `None` = this path has no existence check and the
    /// write is an update.
    async fn exists(&self, ctx: &EngineContext, req: &Request) -> Result<Option<bool>> {
        let _ = (ctx, req);
        Ok(None)
    }

    /// Where this engine's paths carry names and how it treats them (case, allowed
    /// characters): the pipeline puts a request's path in that form before the ACL judges it,
    /// so a rule on `keys/prot` also governs `keys/PROT` when the engine would act on `prot`.
    /// See [`crate::util::names`]. The default: no names (KV paths are free-form).
    fn name_rules(&self) -> &'static [NameRule] {
        &[]
    }

    /// May this engine instance serve on after the mount table is reloaded (a mount added
    /// elsewhere, or another process's write), for the same mount entry? Only an engine that
    /// re-checks whatever it caches against storage can say yes; the others are rebuilt, which
    /// drops their caches. The default is no.
    fn reusable_across_reloads(&self) -> bool {
        false
    }

    /// Whether `path` (relative to the mount) answers `op` without a token, as OpenBao's
    /// `PathsSpecial.Unauthenticated` (a PKI mount's CA and CRL reads). The default: none.
    fn unauthenticated(&self, path: &str, op: crate::request::Operation) -> bool {
        let _ = (path, op);
        false
    }

    /// This engine as a transit engine, for the typed API's fast path.
    fn as_transit(&self) -> Option<&transit::engine::Transit> {
        None
    }

    /// This engine as a KV version 2 engine, for the typed API's fast path.
    fn as_kv_v2(&self) -> Option<&kv::v2::KvV2> {
        None
    }

    /// Periodic work (transit auto-rotation, ...), run from
    /// [`crate::Strongroom::run_maintenance`] by the process that does housekeeping. Time comes
    /// from `ctx.clock`, so tests drive it with the virtual clock. The default does nothing.
    async fn periodic(&self, ctx: &EngineContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Crash recovery that must not wait for the next maintenance run (a database user
    /// created but never leased is dropped). Called on every run of the expiry runner by the
    /// process holding the leader lock, so it must be cheap when there is nothing to do.
    async fn recover(&self, ctx: &EngineContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Revoke the secret behind a lease this engine issued (drop the database user, ...).
    ///
    /// Called by the lease manager on expiry, explicit revoke, or token revocation, possibly
    /// more than once for one lease (a retry after a crash or a lost answer): it must be
    /// idempotent, and a secret that is already gone counts as revoked. An error is retried
    /// with backoff; [`crate::ErrorCode::InvalidInput`] / `Unsupported` errors are not retried.
    async fn revoke(&self, ctx: &EngineContext, lease: &LeasedSecret<'_>) -> Result<()> {
        let _ = (ctx, lease);
        Ok(())
    }

    /// Extend the secret behind a lease by `increment` (zero = the engine's default TTL).
    ///
    /// Returns the engine's bounds for the renewed lease (`ttl`, `max_ttl`, counted from the
    /// lease's original issue time); the lease manager caps the result and records it. The
    /// default refuses: a lease is renewable only when its engine says how.
    async fn renew(
        &self,
        ctx: &EngineContext,
        lease: &LeasedSecret<'_>,
        increment: Duration,
    ) -> Result<LeaseInfo> {
        let _ = (ctx, increment);
        Err(crate::error::Error::invalid_input(format!(
            "lease is not renewable: `{}`",
            lease.lease_id
        )))
    }
}

/// A lease as its engine sees it on revoke and renew.
#[allow(dead_code, reason = "engines read what they need")]
pub(crate) struct LeasedSecret<'a> {
    /// The lease id (`database/creds/ro/<id>`).
    pub lease_id: &'a str,
    /// The request path that created it, relative to the mount (`creds/ro`).
    pub path: &'a str,
    /// The engine-private data the engine put in [`LeaseInfo::internal`] when issuing.
    pub internal: &'a Data,
    /// When the lease was issued (max TTL counts from here).
    pub issue_time: std::time::SystemTime,
    /// When it currently expires.
    pub expire_time: std::time::SystemTime,
}

/// Build the engine for a mount of type `kind`, or `None` when the type is unknown.
pub(crate) fn new_engine(
    kind: &str,
    options: &BTreeMap<String, String>,
) -> Option<Arc<dyn Engine>> {
    match kind {
        "kv" | "generic" => Some(kv::new(options)),
        "database" => Some(database::new()),
        cubbyhole::KIND => Some(Arc::new(cubbyhole::Cubbyhole)),
        #[cfg(any(test, feature = "bench-internals"))]
        "test-leases" => Some(Arc::new(leasetest::LeaseTest)),
        "transit" => Some(transit::engine::new()),
        "pki" => Some(pki::engine::new()),
        _ => None,
    }
}
