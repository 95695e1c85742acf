//! The cubbyhole engine (`cubbyhole/`): storage private to each token. Entries live under the
//! token's salted id (`<salted id>/<path>`), which the pipeline hands the engine in place of the
//! raw token, so neither the engine nor storage ever sees a token id. A token's cubbyhole is
//! destroyed with the token ([`crate::token::TokenStore::revoke_one`]).

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::secrets::{Engine, EngineContext};
use crate::storage::{Backend, Page};

/// The mount type.
pub(crate) const KIND: &str = "cubbyhole";
/// Where it is mounted, always.
pub(crate) const PATH: &str = "cubbyhole/";
/// Its description in `sys/mounts`.
pub(crate) const DESCRIPTION: &str = "per-token private secret storage";

/// A cubbyhole mount.
pub(crate) struct Cubbyhole;

/// OpenBao answers these with its go-multierror text and a 500 (the backend returns plain Go
/// errors); we keep the status and text so clients see the same answer.
fn backend_error(what: &str) -> Error {
    Error::new(
        ErrorCode::Internal,
        format!("1 error occurred:\n\t* {what}\n\n"),
    )
}

/// The salted token id the pipeline put in `req.token`.
fn owner(req: &Request) -> Result<&str> {
    let salted = req.token_str();
    if salted.is_empty() || salted.contains('/') {
        return Err(Error::permission_denied());
    }
    Ok(salted)
}

#[async_trait]
impl Engine for Cubbyhole {
    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let owner = owner(req)?;
        let path = req.path.as_str();
        let key = format!("{owner}/{path}");
        match req.operation {
            Operation::Read => {
                if path.is_empty() {
                    return Err(backend_error("missing path"));
                }
                let Some(raw) = ctx.storage.get(&key).await? else {
                    return Ok(None);
                };
                let data: Data = serde_json::from_slice(&raw).map_err(|e| {
                    Error::storage("stored cubbyhole entry is not valid json").with_source(e)
                })?;
                Ok(Some(Response::with_data(data)))
            }
            Operation::List => {
                let keys = ctx.storage.list(&key, &Page::all()).await?;
                let mut d = Data::new();
                d.insert(
                    "keys".into(),
                    Value::Array(keys.into_iter().map(Value::String).collect()),
                );
                Ok(Some(Response::with_data(d)))
            }
            Operation::Create | Operation::Update => {
                if path.is_empty() {
                    return Err(backend_error("missing path"));
                }
                if req.data.is_empty() {
                    return Err(backend_error("missing data fields"));
                }
                let raw = serde_json::to_vec(&req.data)
                    .map_err(|e| Error::internal("cannot encode cubbyhole entry").with_source(e))?;
                ctx.storage.put(&key, &raw).await?;
                Ok(None)
            }
            Operation::Delete => {
                if path.is_empty() {
                    return Err(backend_error("missing path"));
                }
                ctx.storage.delete(&key).await?;
                Ok(None)
            }
            Operation::Patch => Err(Error::unsupported_operation()),
        }
    }

    async fn exists(&self, ctx: &EngineContext, req: &Request) -> Result<Option<bool>> {
        let Ok(owner) = owner(req) else {
            return Ok(None);
        };
        if req.path.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            ctx.storage
                .get(&format!("{owner}/{}", req.path))
                .await?
                .is_some(),
        ))
    }
}
