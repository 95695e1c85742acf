//! KV version 2 (being written).

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::request::{Request, Response};
use crate::secrets::{Engine, EngineContext};

/// A KV v2 mount.
#[derive(Default)]
pub(crate) struct KvV2;

#[async_trait]
impl Engine for KvV2 {
    async fn handle(&self, _ctx: &EngineContext, _req: &Request) -> Result<Option<Response>> {
        Err(Error::unsupported_operation())
    }
}
