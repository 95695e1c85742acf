//! Hooks for Strongroom's own benchmarks, compiled only with the `bench-internals` feature
//! (enabled for this crate's benches). Not an API: it may change at any time.

use std::sync::Arc;

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
    Ok(sr.token_lookup(id).await?.is_some())
}
