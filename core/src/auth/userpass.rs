//! userpass: users with a password (stored only as a bcrypt hash, cost 10, as OpenBao does).
//!
//! Paths (relative to the mount): `users/` (LIST), `users/:name` (CRUD), `users/:name/password`,
//! `users/:name/policies`, `login/:name` (unauthenticated).

use std::sync::OnceLock;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    AuthMethod, Grant, LoginContext, RenewTerms, TokenFields, equivalent_policies, get_json,
    list_response, to_json_bytes,
};
use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::secrets::{Engine, EngineContext};
use crate::storage::{Backend, Page};
use crate::token::TokenEntry;
use crate::util::names::NameRule;
use crate::util::params;

/// bcrypt's cost, as OpenBao (`bcrypt.DefaultCost`).
const BCRYPT_COST: u32 = 10;

/// The userpass method (stateless: everything lives in the mount's storage).
pub(crate) struct Userpass;

#[derive(Serialize, Deserialize)]
struct User {
    /// bcrypt hash; never the password.
    password_hash: String,
    #[serde(flatten)]
    token: TokenFields,
}

fn user_key(name: &str) -> String {
    format!("user/{name}")
}

fn invalid_credentials() -> Error {
    Error::new(ErrorCode::InvalidInput, "invalid username or password")
}

/// The user a `login/:name` request is for (also the lockout's alias, so that both agree on
/// one canonical name).
fn login_name(path: &str) -> Option<String> {
    path.rsplit_once("/login/")
        .map(|(_, n)| n.trim().to_lowercase())
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

/// Hash a password off the async runtime (bcrypt takes tens of milliseconds on purpose).
async fn hash(password: Zeroizing<String>) -> Result<String> {
    if password.len() > 72 {
        return Err(Error::invalid_input("password is longer than 72 bytes"));
    }
    tokio::task::spawn_blocking(move || bcrypt::hash(password.as_bytes(), BCRYPT_COST))
        .await
        .map_err(|e| Error::internal("password hashing task failed").with_source(e))?
        .map_err(|e| Error::internal("cannot hash password").with_source(e))
}

/// A hash to check against when the user does not exist, so an unknown user costs the same
/// time as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let pw = uuid::Uuid::new_v4().to_string();
        bcrypt::hash(pw, BCRYPT_COST).unwrap_or_default()
    })
}

async fn verify(password: Zeroizing<String>, hash: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let hash = if hash.is_empty() {
            dummy_hash().to_string()
        } else {
            hash
        };
        bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
    })
    .await
    .map_err(|e| Error::internal("password check task failed").with_source(e))
}

fn password_param(d: &Data) -> Result<Option<Zeroizing<String>>> {
    Ok(params::string(d, "password")?
        .filter(|p| !p.is_empty())
        .map(Zeroizing::new))
}

fn user_json(u: &User) -> Data {
    let mut d = Data::new();
    u.token.add_to(&mut d);
    d
}

async fn load(ctx: &EngineContext, name: &str) -> Result<Option<User>> {
    get_json(&ctx.storage, &user_key(name)).await
}

async fn store(ctx: &EngineContext, name: &str, u: &User) -> Result<()> {
    ctx.storage.put(&user_key(name), &to_json_bytes(u)?).await
}

/// Split `users/:name[/password|/policies]`.
fn user_path(rel: &str) -> Option<(String, Option<&str>)> {
    let rest = rel.strip_prefix("users/")?;
    let (name, sub) = match rest.split_once('/') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    if name.trim().is_empty() {
        return None;
    }
    Some((name.trim().to_lowercase(), sub))
}

#[async_trait]
impl Engine for Userpass {
    fn name_rules(&self) -> &'static [NameRule] {
        // Usernames are `GenericNameRegex` names, stored lowercased: `users/ADMIN` acts on
        // `admin`, so the ACL judges `users/admin`, as OpenBao's does. OpenBao leaves
        // `users/ADMIN/password` as sent (a write there creates an `ADMIN` entry no login can
        // reach); here it is judged as `users/admin/password` too, the path it changes.
        const RULES: &[NameRule] = &[NameRule::lower("users/")];
        RULES
    }

    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let op = req.operation;
        let write = matches!(op, Operation::Create | Operation::Update);
        if req.path == "users/" || req.path == "users" {
            if op != Operation::List {
                return Err(Error::unsupported_operation());
            }
            return list_response(ctx.storage.list("user/", &Page::all()).await?);
        }
        let Some((name, sub)) = user_path(&req.path) else {
            return Err(Error::unsupported_path(&req.path));
        };
        match (sub, op) {
            (None, Operation::Read) => Ok(load(ctx, &name)
                .await?
                .map(|u| Response::with_data(user_json(&u)))),
            (None, Operation::Delete) => {
                ctx.storage.delete(&user_key(&name)).await?;
                Ok(None)
            }
            (None, _) if write => {
                let existing = load(ctx, &name).await?;
                let password = password_param(&req.data)?;
                let mut token = existing
                    .as_ref()
                    .map(|u| u.token.clone())
                    .unwrap_or_else(TokenFields::new);
                token.apply(&req.data)?;
                let given_hash =
                    params::string(&req.data, "password_hash")?.filter(|h| !h.is_empty());
                if password.is_some() && given_hash.is_some() {
                    return Err(Error::invalid_input(
                        "only one of password or password_hash can be provided",
                    ));
                }
                let password_hash = match (password, given_hash, existing) {
                    (Some(p), _, _) => hash(p).await?,
                    (None, Some(h), _) => {
                        // A bcrypt hash made elsewhere (OpenBao's `password_hash`).
                        if h.parse::<bcrypt::HashParts>().is_err() {
                            return Err(Error::invalid_input(
                                "password_hash is not a valid bcrypt hash",
                            ));
                        }
                        h
                    }
                    (None, None, Some(u)) => u.password_hash,
                    (None, None, None) => {
                        return Err(Error::invalid_input(
                            "must provide either password or password_hash",
                        ));
                    }
                };
                store(
                    ctx,
                    &name,
                    &User {
                        password_hash,
                        token,
                    },
                )
                .await?;
                Ok(None)
            }
            (Some("password"), _) if write => {
                let mut u = load(ctx, &name)
                    .await?
                    .ok_or_else(|| Error::invalid_input("username does not exist"))?;
                let p = password_param(&req.data)?
                    .ok_or_else(|| Error::invalid_input("missing password"))?;
                u.password_hash = hash(p).await?;
                store(ctx, &name, &u).await?;
                Ok(None)
            }
            (Some("policies"), _) if write => {
                let mut u = load(ctx, &name)
                    .await?
                    .ok_or_else(|| Error::invalid_input("username does not exist"))?;
                let mut d = Data::new();
                for k in ["token_policies", "policies"] {
                    if let Some(v) = req.data.get(k) {
                        d.insert(k.to_string(), v.clone());
                    }
                }
                u.token.apply(&d)?;
                store(ctx, &name, &u).await?;
                Ok(None)
            }
            (Some("password" | "policies"), _) | (None, _) => Err(Error::unsupported_operation()),
            _ => Err(Error::unsupported_path(&req.path)),
        }
    }

    async fn exists(&self, ctx: &EngineContext, req: &Request) -> Result<Option<bool>> {
        match user_path(&req.path) {
            Some((name, None)) => Ok(Some(load(ctx, &name).await?.is_some())),
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl AuthMethod for Userpass {
    fn is_login(&self, rel: &str, op: Operation) -> bool {
        matches!(op, Operation::Update | Operation::Create) && rel.starts_with("login/")
    }

    fn lockout_alias(&self, _rel: &str, req: &Request) -> Option<String> {
        login_name(&req.path)
    }

    async fn login(&self, lc: &LoginContext<'_>, req: &Request) -> Result<Grant> {
        let name = login_name(&req.path).ok_or_else(|| Error::invalid_input("missing username"))?;
        let password = password_param(&req.data)?
            .ok_or_else(|| Error::new(ErrorCode::Internal, "missing password"))?;
        let user = load(lc.ctx, &name).await?;
        // Always run bcrypt, also for an unknown user, so timing does not tell users apart.
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_default();
        let ok = verify(password, hash).await?;
        let Some(user) = user else {
            // OpenBao counts only existing users' failures (an unknown name never locks).
            return Err(invalid_credentials());
        };
        if !ok {
            return Err(Error::invalid_credentials("invalid username or password"));
        }
        if !super::cidr::allows(&user.token.token_bound_cidrs, lc.remote_addr) {
            return Err(Error::permission_denied());
        }
        Ok(Grant {
            policies: user.token.token_policies.clone(),
            metadata: [("username".to_string(), name.clone())].into(),
            alias: Some(super::GrantAlias {
                name: name.clone(),
                metadata: Default::default(),
            }),
            display_name: name,
            token: user.token,
            ..Grant::default()
        })
    }

    async fn renew(&self, ctx: &EngineContext, token: &TokenEntry) -> Result<RenewTerms> {
        let name = token.meta.get("username").cloned().unwrap_or_default();
        let user = load(ctx, &name)
            .await?
            .ok_or_else(|| Error::invalid_input("user no longer exists, not renewing"))?;
        if !equivalent_policies(&user.token.token_policies, &token.policies) {
            return Err(Error::invalid_input("policies have changed, not renewing"));
        }
        Ok(RenewTerms::of(&user.token))
    }
}
