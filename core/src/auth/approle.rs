//! AppRole: roles with a `role_id`, secret ids (generated or custom) with use counts, TTLs and
//! CIDR bindings, login, tidy. Secret ids are stored only as HMAC-SHA256 under a per-role key;
//! the accessor (a UUID, not a secret) indexes them.
//!
//! Paths (relative to the mount): `role/` (LIST), `role/:name`, `role/:name/role-id`,
//! `role/:name/secret-id` (POST generates, LIST lists accessors), `role/:name/custom-secret-id`,
//! `role/:name/secret-id/{lookup,destroy}`, `role/:name/secret-id-accessor/{lookup,destroy}`,
//! `login` (unauthenticated), `tidy/secret-id`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{
    AuthMethod, Grant, LoginContext, RenewTerms, TokenFields, cidr, get_json, list_response,
    to_json_bytes,
};
use crate::clock::rfc3339;
use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::secrets::{Engine, EngineContext};
use crate::storage::{Backend, Page, TxnOp};
use crate::token::TokenEntry;
use crate::token::roles::string_list;
use crate::util::names::NameRule;
use crate::util::params;

/// The AppRole method (stateless: everything lives in the mount's storage).
pub(crate) struct AppRole;

#[derive(Clone, Serialize, Deserialize)]
struct Role {
    name: String,
    role_id: String,
    bind_secret_id: bool,
    #[serde(default)]
    secret_id_bound_cidrs: Vec<String>,
    #[serde(default)]
    secret_id_num_uses: i64,
    #[serde(default)]
    secret_id_ttl: u64,
    #[serde(flatten)]
    token: TokenFields,
    /// Key for the secret-id HMACs (hex).
    hmac_key: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct SecretIdEntry {
    accessor: String,
    /// Unix nanoseconds.
    creation_ns: i64,
    /// Unix nanoseconds; `None` = never expires.
    expiration_ns: Option<i64>,
    last_updated_ns: i64,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    /// Logins left; 0 = unlimited.
    num_uses: i64,
    ttl: u64,
    #[serde(default)]
    cidr_list: Vec<String>,
    #[serde(default)]
    token_bound_cidrs: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct AccessorEntry {
    role: String,
    hmac: String,
}

fn role_key(name: &str) -> String {
    format!("role/{name}")
}
fn role_id_key(role_id: &str) -> String {
    // The role id is a credential half: index it by its SHA-256, not in clear.
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, role_id.as_bytes());
    format!("role_id/{}", hex::encode(d.as_ref()))
}
fn secret_key(role: &str, hmac: &str) -> String {
    format!("secret_id/{role}/{hmac}")
}
fn accessor_key(acc: &str) -> String {
    format!("accessor/{acc}")
}

fn secret_hmac(role: &Role, secret_id: &str) -> Result<String> {
    let key =
        hex::decode(&role.hmac_key).map_err(|_| Error::storage("role HMAC key is corrupt"))?;
    let k = hmac::Key::new(hmac::HMAC_SHA256, &key);
    Ok(hex::encode(hmac::sign(&k, secret_id.as_bytes()).as_ref()))
}

fn invalid_credentials() -> Error {
    Error::new(ErrorCode::InvalidInput, "invalid role or secret ID")
}

fn ns(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}
fn time_of(n: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn role_json(r: &Role) -> Data {
    let mut d = crate::data(json!({
        "bind_secret_id": r.bind_secret_id,
        "local_secret_ids": false,
        "secret_id_bound_cidrs": (!r.secret_id_bound_cidrs.is_empty()).then_some(&r.secret_id_bound_cidrs),
        "secret_id_num_uses": r.secret_id_num_uses,
        "secret_id_ttl": r.secret_id_ttl,
    }));
    r.token.add_to(&mut d);
    d
}

fn secret_json(s: &SecretIdEntry) -> Data {
    let zero = "0001-01-01T00:00:00Z".to_string();
    crate::data(json!({
        "cidr_list": s.cidr_list,
        "creation_time": rfc3339(time_of(s.creation_ns)),
        "expiration_time": s.expiration_ns.map(|n| rfc3339(time_of(n))).unwrap_or(zero),
        "last_updated_time": rfc3339(time_of(s.last_updated_ns)),
        "metadata": s.metadata,
        "secret_id_accessor": s.accessor,
        "secret_id_num_uses": s.num_uses,
        "secret_id_ttl": s.ttl,
        "token_bound_cidrs": s.token_bound_cidrs,
    }))
}

async fn load_role(ctx: &EngineContext, name: &str) -> Result<Option<Role>> {
    get_json(&ctx.storage, &role_key(name)).await
}

async fn must_role(ctx: &EngineContext, name: &str) -> Result<Role> {
    load_role(ctx, name)
        .await?
        .ok_or_else(|| Error::invalid_input(format!("role \"{name}\" does not exist")))
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::Rng::fill(&mut rand::rng(), b.as_mut_slice());
    hex::encode(b)
}

fn secret_expired(s: &SecretIdEntry, now: OffsetDateTime) -> bool {
    s.expiration_ns.is_some_and(|e| e <= ns(now))
}

/// `metadata` on secret-id creation: a JSON string (or object) of string values.
fn parse_metadata(d: &Data) -> Result<BTreeMap<String, String>> {
    let bad =
        || Error::invalid_input("failed to parse metadata: expected a JSON object of strings");
    let obj = match d.get("metadata") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| bad())?,
        Some(v) => v.clone(),
    };
    let Value::Object(m) = obj else {
        return Err(bad());
    };
    m.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(bad()),
        })
        .collect()
}

fn subset(child: &[String], parent: &[String]) -> bool {
    let nets =
        |v: &[String]| -> Vec<ipnet::IpNet> { v.iter().filter_map(|c| c.parse().ok()).collect() };
    let parents = nets(parent);
    parent.is_empty()
        || nets(child)
            .iter()
            .all(|c| parents.iter().any(|p| p.contains(c)))
}

/// Create a secret id entry for `role` (generated when `custom` is `None`).
async fn create_secret_id(
    ctx: &EngineContext,
    role: &Role,
    d: &Data,
    custom: Option<Zeroizing<String>>,
) -> Result<Response> {
    let now = ctx.clock.now();
    let cidr_list = match string_list(d, "cidr_list")? {
        Some(v) => cidr::parse_list("cidr_list", &v)?,
        None => Vec::new(),
    };
    if !subset(&cidr_list, &role.secret_id_bound_cidrs) {
        return Err(Error::invalid_input(
            "failed to verify the CIDR restrictions set on the secret ID: the CIDR blocks on the secret ID must be a subset of those on the role",
        ));
    }
    let token_bound_cidrs = match string_list(d, "token_bound_cidrs")? {
        Some(v) => cidr::parse_list("token_bound_cidrs", &v)?,
        None => Vec::new(),
    };
    if !subset(&token_bound_cidrs, &role.token.token_bound_cidrs) {
        return Err(Error::invalid_input(
            "failed to verify the token bound CIDR restrictions set on the secret ID: they must be a subset of those on the role",
        ));
    }
    let num_uses = match params::int(d, "num_uses")? {
        None => role.secret_id_num_uses,
        Some(n) if n < 0 => return Err(Error::invalid_input("num_uses cannot be negative")),
        Some(n) if role.secret_id_num_uses > 0 && (n == 0 || n > role.secret_id_num_uses) => {
            return Err(Error::invalid_input(
                "num_uses cannot be higher than the role's secret_id_num_uses",
            ));
        }
        Some(n) => n,
    };
    let ttl = match params::duration(d, "ttl")?.map(|t| t.as_secs()) {
        None | Some(0) => role.secret_id_ttl,
        Some(t) if role.secret_id_ttl > 0 && t > role.secret_id_ttl => {
            return Err(Error::invalid_input(
                "ttl cannot be longer than the role's secret_id_ttl",
            ));
        }
        Some(t) => t,
    };
    let metadata = parse_metadata(d)?;
    let secret_id = match custom {
        Some(s) => s,
        None => Zeroizing::new(uuid::Uuid::new_v4().to_string()),
    };
    let hmac = secret_hmac(role, &secret_id)?;
    let accessor = uuid::Uuid::new_v4().to_string();
    let entry = SecretIdEntry {
        accessor: accessor.clone(),
        creation_ns: ns(now),
        expiration_ns: (ttl > 0)
            .then(|| crate::clock::expiry_ns(now, std::time::Duration::from_secs(ttl)))
            .transpose()?,
        last_updated_ns: ns(now),
        metadata,
        num_uses,
        ttl,
        cidr_list,
        token_bound_cidrs,
    };
    let key = secret_key(&role.name, &hmac);
    ctx.storage
        .transaction(vec![
            TxnOp::Check {
                key: key.clone(),
                expected: None,
            },
            TxnOp::Put {
                key,
                value: to_json_bytes(&entry)?,
            },
            TxnOp::Put {
                key: accessor_key(&accessor),
                value: to_json_bytes(&AccessorEntry {
                    role: role.name.clone(),
                    hmac,
                })?,
            },
        ])
        .await
        .map_err(|e| {
            if e.code() == ErrorCode::Conflict {
                Error::invalid_input("SecretID is already registered")
            } else {
                e
            }
        })?;
    Ok(Response::with_data(crate::data(json!({
        "secret_id": secret_id.as_str(),
        "secret_id_accessor": accessor,
        "secret_id_num_uses": num_uses,
        "secret_id_ttl": ttl,
    }))))
}

async fn delete_secret(ctx: &EngineContext, role: &str, hmac: &str, accessor: &str) -> Result<()> {
    ctx.storage
        .transaction(vec![
            TxnOp::Delete {
                key: secret_key(role, hmac),
            },
            TxnOp::Delete {
                key: accessor_key(accessor),
            },
        ])
        .await
}

async fn by_accessor(
    ctx: &EngineContext,
    role: &Role,
    d: &Data,
) -> Result<(AccessorEntry, SecretIdEntry)> {
    let acc = params::string(d, "secret_id_accessor")?
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| Error::invalid_input("missing secret_id_accessor"))?;
    let not_found = || {
        Error::invalid_input(format!(
            "failed to find accessor entry for secret_id_accessor: {acc:?}"
        ))
    };
    let a: AccessorEntry = get_json(&ctx.storage, &accessor_key(&acc))
        .await?
        .filter(|a: &AccessorEntry| a.role == role.name)
        .ok_or_else(not_found)?;
    let s: SecretIdEntry = get_json(&ctx.storage, &secret_key(&role.name, &a.hmac))
        .await?
        .ok_or_else(not_found)?;
    Ok((a, s))
}

async fn role_endpoint(
    ctx: &EngineContext,
    req: &Request,
    name: &str,
    sub: Option<&str>,
) -> Result<Option<Response>> {
    let op = req.operation;
    let write = matches!(op, Operation::Create | Operation::Update);
    let d = &req.data;
    match (sub, op) {
        (None, Operation::Read) => Ok(load_role(ctx, name)
            .await?
            .map(|r| Response::with_data(role_json(&r)))),
        (None, Operation::Delete) => {
            let Some(role) = load_role(ctx, name).await? else {
                return Ok(None);
            };
            let prefix = format!("secret_id/{name}/");
            for h in ctx.storage.list(&prefix, &Page::all()).await? {
                if let Some(s) =
                    get_json::<SecretIdEntry>(&ctx.storage, &format!("{prefix}{h}")).await?
                {
                    delete_secret(ctx, name, &h, &s.accessor).await?;
                }
            }
            ctx.storage
                .transaction(vec![
                    TxnOp::Delete {
                        key: role_key(name),
                    },
                    TxnOp::Delete {
                        key: role_id_key(&role.role_id),
                    },
                ])
                .await?;
            Ok(None)
        }
        (None, _) if write => {
            let existing = load_role(ctx, name).await?;
            let mut role = existing.clone().unwrap_or_else(|| Role {
                name: name.to_string(),
                role_id: uuid::Uuid::new_v4().to_string(),
                bind_secret_id: true,
                secret_id_bound_cidrs: Vec::new(),
                secret_id_num_uses: 0,
                secret_id_ttl: 0,
                token: TokenFields::new(),
                hmac_key: random_hex(32),
            });
            if let Some(b) = params::bool(d, "bind_secret_id")? {
                role.bind_secret_id = b;
            }
            let cidrs = match string_list(d, "secret_id_bound_cidrs")? {
                Some(v) => Some(v),
                None => string_list(d, "bound_cidr_list")?,
            };
            if let Some(v) = cidrs {
                role.secret_id_bound_cidrs = cidr::parse_list("secret_id_bound_cidrs", &v)?;
            }
            if let Some(n) = params::int(d, "secret_id_num_uses")? {
                if n < 0 {
                    return Err(Error::invalid_input(
                        "secret_id_num_uses cannot be negative",
                    ));
                }
                role.secret_id_num_uses = n;
            }
            if let Some(t) = params::duration(d, "secret_id_ttl")? {
                role.secret_id_ttl = t.as_secs();
            }
            role.token.apply(d)?;
            if !role.bind_secret_id
                && role.secret_id_bound_cidrs.is_empty()
                && role.token.token_bound_cidrs.is_empty()
            {
                return Err(Error::new(
                    ErrorCode::Internal,
                    "1 error occurred:\n\t* at least one constraint should be enabled on the role\n\n",
                ));
            }
            let mut ops = Vec::new();
            if let Some(custom) = params::string(d, "role_id")?.filter(|s| !s.is_empty()) {
                if custom != role.role_id {
                    ops.push(TxnOp::Check {
                        key: role_id_key(&custom),
                        expected: None,
                    });
                    ops.push(TxnOp::Delete {
                        key: role_id_key(&role.role_id),
                    });
                    role.role_id = custom;
                }
            }
            ops.push(TxnOp::Put {
                key: role_key(name),
                value: to_json_bytes(&role)?,
            });
            ops.push(TxnOp::Put {
                key: role_id_key(&role.role_id),
                value: name.as_bytes().to_vec(),
            });
            if existing.is_none() {
                ops.insert(
                    0,
                    TxnOp::Check {
                        key: role_id_key(&role.role_id),
                        expected: None,
                    },
                );
            }
            ctx.storage.transaction(ops).await.map_err(|e| {
                if e.code() == ErrorCode::Conflict {
                    Error::new(
                        ErrorCode::Internal,
                        "1 error occurred:\n\t* role_id already in use\n\n",
                    )
                } else {
                    e
                }
            })?;
            Ok(None)
        }
        (Some("role-id"), Operation::Read) => {
            let r = must_role(ctx, name).await?;
            Ok(Some(Response::with_data(crate::data(
                json!({"role_id": r.role_id}),
            ))))
        }
        (Some("role-id"), _) if write => {
            let mut role = must_role(ctx, name).await?;
            let id = params::string(d, "role_id")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::invalid_input("missing role_id"))?;
            if id == role.role_id {
                return Ok(None);
            }
            let old = std::mem::replace(&mut role.role_id, id);
            ctx.storage
                .transaction(vec![
                    TxnOp::Check {
                        key: role_id_key(&role.role_id),
                        expected: None,
                    },
                    TxnOp::Delete {
                        key: role_id_key(&old),
                    },
                    TxnOp::Put {
                        key: role_id_key(&role.role_id),
                        value: name.as_bytes().to_vec(),
                    },
                    TxnOp::Put {
                        key: role_key(name),
                        value: to_json_bytes(&role)?,
                    },
                ])
                .await
                .map_err(|e| {
                    if e.code() == ErrorCode::Conflict {
                        Error::new(
                            ErrorCode::Internal,
                            "1 error occurred:\n\t* role_id already in use\n\n",
                        )
                    } else {
                        e
                    }
                })?;
            Ok(None)
        }
        (Some("secret-id"), Operation::List) | (Some("secret-id/"), Operation::List) => {
            must_role(ctx, name).await?;
            let prefix = format!("secret_id/{name}/");
            let mut keys = Vec::new();
            for h in ctx.storage.list(&prefix, &Page::all()).await? {
                if let Some(s) =
                    get_json::<SecretIdEntry>(&ctx.storage, &format!("{prefix}{h}")).await?
                {
                    keys.push(s.accessor);
                }
            }
            keys.sort();
            list_response(keys)
        }
        (Some("secret-id"), _) if write => {
            let role = must_role(ctx, name).await?;
            if !role.bind_secret_id {
                return Err(Error::invalid_input(
                    "bind_secret_id is not set on the role",
                ));
            }
            create_secret_id(ctx, &role, d, None).await.map(Some)
        }
        (Some("custom-secret-id"), _) if write => {
            let role = must_role(ctx, name).await?;
            let s = params::string(d, "secret_id")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::invalid_input("missing secret_id"))?;
            create_secret_id(ctx, &role, d, Some(Zeroizing::new(s)))
                .await
                .map(Some)
        }
        (Some(sub @ ("secret-id/lookup" | "secret-id/destroy")), _)
            if write || (op == Operation::Delete && sub.ends_with("destroy")) =>
        {
            let role = must_role(ctx, name).await?;
            let s = Zeroizing::new(
                params::string(d, "secret_id")?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| Error::invalid_input("missing secret_id"))?,
            );
            let hmac = secret_hmac(&role, &s)?;
            let entry: Option<SecretIdEntry> =
                get_json(&ctx.storage, &secret_key(name, &hmac)).await?;
            match (sub, entry) {
                ("secret-id/lookup", Some(e)) => Ok(Some(Response::with_data(secret_json(&e)))),
                ("secret-id/destroy", Some(e)) => {
                    delete_secret(ctx, name, &hmac, &e.accessor).await?;
                    Ok(None)
                }
                _ => Ok(None),
            }
        }
        (Some("secret-id-accessor/lookup"), _) if write => {
            let role = must_role(ctx, name).await?;
            match by_accessor(ctx, &role, d).await {
                Ok((_, s)) => Ok(Some(Response::with_data(secret_json(&s)))),
                // OpenBao answers 404 with the message in `data.error`.
                Err(e) if e.message().starts_with("failed to find accessor entry") => {
                    let mut r = Response::with_data(crate::data(json!({"error": e.message()})));
                    r.kind = crate::request::ResponseKind::NotFound;
                    Ok(Some(r))
                }
                Err(e) => Err(e),
            }
        }
        (Some("secret-id-accessor/destroy"), _) if write || op == Operation::Delete => {
            let role = must_role(ctx, name).await?;
            let (a, s) = by_accessor(ctx, &role, d).await?;
            delete_secret(ctx, name, &a.hmac, &s.accessor).await?;
            Ok(None)
        }
        (Some(_), _) | (None, _) => Err(Error::unsupported_operation()),
    }
}

/// Remove expired secret ids and accessors whose secret id is gone. Returns how many.
async fn tidy(ctx: &EngineContext) -> Result<usize> {
    let now = ctx.clock.now();
    let mut removed = 0;
    for k in ctx.storage.scan("secret_id/", &Page::all()).await? {
        let Some((role, hmac)) = k.split_once('/') else {
            continue;
        };
        if let Some(s) = get_json::<SecretIdEntry>(&ctx.storage, &format!("secret_id/{k}")).await? {
            if secret_expired(&s, now) {
                delete_secret(ctx, role, hmac, &s.accessor).await?;
                removed += 1;
            }
        }
    }
    for acc in ctx.storage.list("accessor/", &Page::all()).await? {
        if let Some(a) = get_json::<AccessorEntry>(&ctx.storage, &accessor_key(&acc)).await? {
            if ctx
                .storage
                .get(&secret_key(&a.role, &a.hmac))
                .await?
                .is_none()
            {
                ctx.storage.delete(&accessor_key(&acc)).await?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[async_trait]
impl Engine for AppRole {
    fn name_rules(&self) -> &'static [NameRule] {
        // Role names are `GenericNameRegex` names, stored lowercased: `role/ST-ADMIN/secret-id`
        // acts on `st-admin`, so the ACL judges `role/st-admin/secret-id` (as OpenBao's).
        const RULES: &[NameRule] = &[NameRule::lower("role/")];
        RULES
    }

    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let op = req.operation;
        if req.path == "role/" || req.path == "role" {
            if op != Operation::List {
                return Err(Error::unsupported_operation());
            }
            return list_response(ctx.storage.list("role/", &Page::all()).await?);
        }
        if req.path == "tidy/secret-id" {
            if !matches!(op, Operation::Update | Operation::Create) {
                return Err(Error::unsupported_operation());
            }
            let n = tidy(ctx).await?;
            let mut r = Response::default();
            tracing::info!(removed = n, "approle tidy/secret-id finished");
            r.warn("Tidy operation successfully started. Any information from the operation will be printed to OpenBao's server logs.");
            r.kind = crate::request::ResponseKind::Accepted;
            return Ok(Some(r));
        }
        let Some(rest) = req.path.strip_prefix("role/") else {
            return Err(Error::unsupported_path(&req.path));
        };
        let (name, sub) = match rest.split_once('/') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        let name = name.trim().to_lowercase();
        if name.is_empty() {
            return Err(Error::invalid_input("missing role_name"));
        }
        role_endpoint(ctx, req, &name, sub).await
    }

    async fn exists(&self, ctx: &EngineContext, req: &Request) -> Result<Option<bool>> {
        match req.path.strip_prefix("role/") {
            Some(name) if !name.contains('/') && !name.is_empty() => {
                Ok(Some(load_role(ctx, &name.to_lowercase()).await?.is_some()))
            }
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl AuthMethod for AppRole {
    fn is_login(&self, rel: &str, op: Operation) -> bool {
        matches!(op, Operation::Update | Operation::Create) && rel == "login"
    }

    /// The role id, trimmed, as OpenBao's alias lookahead.
    fn lockout_alias(&self, _rel: &str, req: &Request) -> Option<String> {
        params::string(&req.data, "role_id")
            .ok()
            .flatten()
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
    }

    async fn login(&self, lc: &LoginContext<'_>, req: &Request) -> Result<Grant> {
        let ctx = lc.ctx;
        let role_id = params::string(&req.data, "role_id")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::new(ErrorCode::Internal, "missing role_id"))?;
        let name = ctx
            .storage
            .get(&role_id_key(&role_id))
            .await?
            .and_then(|n| String::from_utf8(n).ok())
            .ok_or_else(invalid_credentials)?;
        let role = load_role(ctx, &name)
            .await?
            .ok_or_else(invalid_credentials)?;
        let mut metadata = BTreeMap::new();
        let mut token_cidrs = role.token.token_bound_cidrs.clone();
        if !cidr::allows(&role.secret_id_bound_cidrs, lc.remote_addr) {
            return Err(Error::invalid_input(format!(
                "source address {:?} unauthorized by CIDR restrictions on the role",
                lc.remote_addr.map(|a| a.to_string()).unwrap_or_default()
            )));
        }
        if role.bind_secret_id {
            let secret_id = Zeroizing::new(
                params::string(&req.data, "secret_id")?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| Error::invalid_input("missing secret_id"))?,
            );
            let hmac = secret_hmac(&role, &secret_id)?;
            let key = secret_key(&name, &hmac);
            // A wrong secret id for a valid role id: the one AppRole failure OpenBao's lockout
            // counts (`ErrInvalidCredentials`).
            let raw = ctx
                .storage
                .get(&key)
                .await?
                .ok_or_else(|| Error::invalid_credentials("invalid role or secret ID"))?;
            let entry: SecretIdEntry = serde_json::from_slice(&raw)
                .map_err(|_| Error::storage("secret id entry is corrupt"))?;
            let now = ctx.clock.now();
            if secret_expired(&entry, now) {
                delete_secret(ctx, &name, &hmac, &entry.accessor).await?;
                return Err(invalid_credentials());
            }
            if !cidr::allows(&entry.cidr_list, lc.remote_addr) {
                return Err(Error::invalid_input(format!(
                    "source address {:?} unauthorized through CIDR restrictions on the secret ID",
                    lc.remote_addr.map(|a| a.to_string()).unwrap_or_default()
                )));
            }
            if entry.num_uses > 0 {
                // The check makes two logins racing for the last use impossible.
                let mut ops = vec![TxnOp::Check {
                    key: key.clone(),
                    expected: Some(raw),
                }];
                if entry.num_uses == 1 {
                    ops.push(TxnOp::Delete { key });
                    ops.push(TxnOp::Delete {
                        key: accessor_key(&entry.accessor),
                    });
                } else {
                    let mut left = entry.clone();
                    left.num_uses -= 1;
                    left.last_updated_ns = ns(now);
                    ops.push(TxnOp::Put {
                        key,
                        value: to_json_bytes(&left)?,
                    });
                }
                ctx.storage.transaction(ops).await.map_err(|e| {
                    if e.code() == ErrorCode::Conflict {
                        invalid_credentials()
                    } else {
                        e
                    }
                })?;
            }
            if !entry.token_bound_cidrs.is_empty() {
                token_cidrs = entry.token_bound_cidrs.clone();
            }
            metadata.extend(entry.metadata.clone());
        }
        metadata.insert("role_name".to_string(), name.clone());
        let mut token = role.token.clone();
        token.token_bound_cidrs = token_cidrs;
        if !cidr::allows(&token.token_bound_cidrs, lc.remote_addr) {
            return Err(Error::permission_denied());
        }
        Ok(Grant {
            policies: token.token_policies.clone(),
            token,
            // OpenBao: the alias is the role id, with the login's metadata.
            alias: Some(super::GrantAlias {
                name: role_id.trim().to_string(),
                metadata: metadata.clone(),
            }),
            metadata,
            display_name: String::new(),
            ..Grant::default()
        })
    }

    async fn renew(&self, ctx: &EngineContext, token: &TokenEntry) -> Result<RenewTerms> {
        let name = token.meta.get("role_name").cloned().unwrap_or_default();
        let role = load_role(ctx, &name).await?.ok_or_else(|| {
            Error::invalid_input(format!("role {name:?} does not exist during renewal"))
        })?;
        Ok(RenewTerms::of(&role.token))
    }
}
