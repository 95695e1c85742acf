//! Hooks for Strongroom's own benchmarks, compiled only with the `bench-internals` feature
//! (enabled for this crate's benches). Not an API: it may change at any time.

use std::sync::Arc;

pub mod fuzz;

use crate::error::Result;
use crate::policy::{Acl, Policy};
use crate::request::{Data, Operation};

/// An ACL compiled from policy documents.
#[derive(Debug)]
pub struct CompiledAcl(Acl);

/// Parse `(name, text)` policy documents and compile them into one ACL.
pub fn compile_acl(policies: &[(String, String)]) -> Result<CompiledAcl> {
    let parsed = policies
        .iter()
        .map(|(name, text)| Policy::parse(name, text).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    Acl::new(&parsed).map(CompiledAcl)
}

impl CompiledAcl {
    /// Whether `op` on `path` with `data` is allowed (an unwrapped request).
    #[inline]
    pub fn allow(&self, op: Operation, path: &str, data: &Data) -> bool {
        self.0.allow(op, path, data, None).allowed
    }

    /// What `sys/capabilities` answers for `path`.
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        self.0.capabilities(path)
    }
}

/// Resolve a token id the way the pipeline's token step does (warm: from the token cache).
pub async fn resolve_token(sr: &crate::Strongroom, id: &str) -> Result<bool> {
    Ok(sr.token_site().token_lookup(id).await?.is_some())
}

/// Register `count` leases on the `test-leases` mount at `mount` directly with the lease
/// manager, `batch` per storage transaction (what a batched registration costs, without the
/// request pipeline in front). `noop` leases revoke without touching storage. Leases belong to
/// the token `token`.
pub async fn register_test_leases(
    sr: &crate::Strongroom,
    mount: &str,
    token: &str,
    count: usize,
    batch: usize,
    ttl: std::time::Duration,
    noop: bool,
) -> Result<()> {
    let entry = sr
        .token_site()
        .token_lookup(token)
        .await?
        .ok_or_else(crate::Error::permission_denied)?;
    let router = sr.router()?;
    let (mounted, _) = router
        .route(&format!("{}/issue/x", mount.trim_matches('/')))
        .ok_or_else(|| crate::Error::unsupported_path(mount))?;
    let limits = crate::util::ttl::TtlLimits {
        default_ttl: mounted.ctx.default_lease_ttl,
        max_ttl: mounted.entry.max_ttl(),
    };
    let mut done = 0;
    while done < count {
        let n = batch.min(count - done);
        let leases = (done..done + n)
            .map(|i| crate::leases::NewLease {
                path: format!("{}/issue/b{i}", mount.trim_matches('/')),
                client_token: entry.salted_id.clone(),
                info: crate::request::LeaseInfo {
                    ttl,
                    max_ttl: std::time::Duration::ZERO,
                    renewable: true,
                    internal: crate::data(
                        serde_json::json!({"name": format!("b{i}"), "noop": noop}),
                    ),
                    ..Default::default()
                },
                limits,
                cap: None,
                extra_ops: Vec::new(),
            })
            .collect();
        sr.inner.leases.store_leases(leases).await?;
        done += n;
    }
    Ok(())
}

/// Record `count` revocations (random serials) against the default issuer of the PKI mount
/// at `mount`, straight into its storage, as if that many certificates had been revoked: the
/// set-up of the CRL rebuild benchmark, without issuing 100,000 certificates first.
pub async fn pki_seed_revoked(sr: &crate::Strongroom, mount: &str, count: usize) -> Result<()> {
    use crate::secrets::pki::{crypto, store};
    let router = sr.router()?;
    let (mounted, _) = router
        .route(&format!("{}/crl", mount.trim_matches('/')))
        .ok_or_else(|| crate::Error::unsupported_path(mount))?;
    let ctx = &mounted.ctx;
    let cfg: store::DefaultConfig = store::get(ctx, store::ISSUERS_CONFIG)
        .await?
        .unwrap_or_default();
    let now = ctx.clock.now();
    for _ in 0..count {
        let serial = crypto::serial_colons(&crypto::new_serial());
        let entry = store::RevokedEntry {
            serial: serial.clone(),
            revocation_time: now.unix_timestamp(),
            revocation_time_rfc3339: crate::clock::rfc3339(now),
            issuer_id: cfg.default.clone(),
            der: String::new(),
            not_after: now.unix_timestamp() + 3600,
        };
        store::put(
            ctx,
            &format!("{}{}", store::REVOKED_PREFIX, store::serial_key(&serial)),
            &entry,
        )
        .await?;
    }
    Ok(())
}
