//! AppRole (placeholder until the next commit).
use async_trait::async_trait;

use super::{AuthMethod, Grant, LoginContext};
use crate::error::{Error, Result};
use crate::request::{Operation, Request, Response};
use crate::secrets::{Engine, EngineContext};

/// The AppRole method.
pub(crate) struct AppRole;

#[async_trait]
impl Engine for AppRole {
    async fn handle(&self, _ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        Err(Error::unsupported_path(&req.path))
    }
}

#[async_trait]
impl AuthMethod for AppRole {
    fn is_login(&self, rel: &str, op: Operation) -> bool {
        op == Operation::Update && rel == "login"
    }
    async fn login(&self, _lc: &LoginContext<'_>, _req: &Request) -> Result<Grant> {
        Err(Error::permission_denied())
    }
    async fn renew(
        &self,
        _ctx: &EngineContext,
        _t: &crate::token::TokenEntry,
    ) -> Result<super::RenewTerms> {
        Err(Error::permission_denied())
    }
}
