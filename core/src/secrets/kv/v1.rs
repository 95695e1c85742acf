//! KV version 1: the request body is stored as-is; no versions, no check-and-set.

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::secrets::{Engine, EngineContext};
use crate::storage::{Backend, Page};
use crate::util::duration;

/// A KV v1 mount.
pub(crate) struct KvV1;

fn check_key(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(Error::unsupported_operation());
    }
    Ok(())
}

#[async_trait]
impl Engine for KvV1 {
    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let path = req.path.as_str();
        match req.operation {
            Operation::Read => {
                check_key(path)?;
                let Some(raw) = ctx.storage.get(path).await? else {
                    return Ok(None);
                };
                let data: Data = serde_json::from_slice(&raw).map_err(|e| {
                    Error::storage("stored kv entry is not valid json").with_source(e)
                })?;
                let mut resp = Response::with_data(data);
                // A `ttl` key sets lease_duration, but no lease is created (OpenBao §4.3).
                if let Some(ttl) = resp.get("ttl").cloned() {
                    if let Ok(d) = duration::parse_value(&ttl) {
                        resp.lease_duration = d.as_secs();
                    }
                } else {
                    resp.lease_duration = ctx.default_lease_ttl.as_secs();
                }
                Ok(Some(resp))
            }
            Operation::List => {
                let keys = ctx.storage.list(path, &Page::all()).await?;
                if keys.is_empty() {
                    return Ok(None);
                }
                let mut d = Data::new();
                d.insert(
                    "keys".into(),
                    Value::Array(keys.into_iter().map(Value::String).collect()),
                );
                Ok(Some(Response::with_data(d)))
            }
            Operation::Create | Operation::Update => {
                check_key(path)?;
                if req.data.is_empty() {
                    return Err(Error::invalid_input("missing data fields"));
                }
                if let Some(ttl) = req.data.get("ttl") {
                    duration::parse_value(ttl)?;
                }
                let raw = serde_json::to_vec(&req.data)
                    .map_err(|e| Error::internal("cannot encode kv entry").with_source(e))?;
                ctx.storage.put(path, &raw).await?;
                Ok(None)
            }
            Operation::Delete => {
                check_key(path)?;
                ctx.storage.delete(path).await?;
                Ok(None)
            }
            Operation::Patch => Err(Error::unsupported_operation()),
        }
    }

    async fn exists(&self, ctx: &EngineContext, req: &Request) -> Result<Option<bool>> {
        if req.path.is_empty() {
            return Ok(None);
        }
        Ok(Some(ctx.storage.get(&req.path).await?.is_some()))
    }
}
