//! Secrets engines. Each mount owns one [`Engine`] instance that sees only its own storage view.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::error::Result;
use crate::request::{Request, Response};
use crate::storage::view::View;

pub(crate) mod kv;
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "the transit engine's HTTP paths use it next")
)]
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
}

/// Build the engine for a mount of type `kind`, or `None` when the type is unknown.
pub(crate) fn new_engine(
    kind: &str,
    options: &BTreeMap<String, String>,
) -> Option<Arc<dyn Engine>> {
    match kind {
        "kv" | "generic" => Some(kv::new(options)),
        _ => None,
    }
}
