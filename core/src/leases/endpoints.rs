//! `sys/leases/*` and `sys/quotas/lease-count/*`, with OpenBao's shapes and texts. Vault's
//! legacy `sys/renew`, `sys/revoke`, `sys/revoke-prefix` and `sys/revoke-force` are gone in
//! OpenBao (404 `unsupported path`), and so they are here.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::request::{Operation, Request, Response};
use crate::storage::Page;
use crate::util::params;

use super::{ID_PREFIX, Leases, QUOTA_PREFIX, Quota};

/// Handle `path` (relative to `sys/`) if it is a lease or quota endpoint.
pub(crate) async fn handle(
    leases: &Arc<Leases>,
    req: &Request,
    path: &str,
) -> Result<Option<Response>> {
    let op = req.operation;
    let is_write = matches!(op, Operation::Update | Operation::Create);
    let resp = match path {
        "renew" | "revoke" => return Err(Error::backend_unsupported_path()),
        p if ["renew/", "revoke/", "revoke-prefix/", "revoke-force/"]
            .iter()
            .any(|legacy| p.starts_with(legacy)) =>
        {
            return Err(Error::backend_unsupported_path());
        }
        "leases/lookup" if is_write => {
            let id = lease_id_param(req, "")?;
            Response::with_data(leases.lease_lookup(&id).await?)
        }
        p if p.starts_with("leases/lookup/") && op == Operation::List => {
            let prefix = p.trim_start_matches("leases/lookup/");
            let keys = leases
                .storage
                .list(&format!("{ID_PREFIX}{prefix}"), &Page::all())
                .await?;
            if keys.is_empty() {
                return Ok(Some(not_found(req)?));
            }
            Response::with_data(crate::data(json!({ "keys": keys })))
        }
        p if is_write && (p == "leases/renew" || sub(p, "leases/renew/").is_some()) => {
            let url = sub(p, "leases/renew/").unwrap_or("");
            let id = lease_id_param(req, url)?;
            let increment = params::duration(&req.data, "increment")?.unwrap_or_default();
            leases.lease_renew(&id, increment).await?
        }
        p if is_write && (p == "leases/revoke" || sub(p, "leases/revoke/").is_some()) => {
            let url = sub(p, "leases/revoke/").unwrap_or("");
            let id = lease_id_param(req, url)?;
            if params::bool(&req.data, "sync")?.unwrap_or(true) {
                leases.lease_revoke_now(&id, false).await?;
                Response::default()
            } else {
                leases.lease_expire_now(&id).await?;
                accepted()
            }
        }
        p if is_write && sub(p, "leases/revoke-prefix/").is_some() => {
            let prefix = sub(p, "leases/revoke-prefix/").unwrap_or("");
            if params::bool(&req.data, "sync")?.unwrap_or(true) {
                leases.lease_revoke_prefix(prefix, false).await?;
                Response::default()
            } else {
                let prefix = format!("{}/", prefix.trim_end_matches('/'));
                for id in leases.lease_ids_under(&prefix).await? {
                    leases.lease_expire_now(&id).await?;
                }
                accepted()
            }
        }
        p if is_write && sub(p, "leases/revoke-force/").is_some() => {
            let prefix = sub(p, "leases/revoke-force/").unwrap_or("");
            leases.lease_revoke_prefix(prefix, true).await?;
            Response::default()
        }
        "leases/tidy" if is_write => {
            let removed = leases.lease_tidy().await?;
            tracing::info!(removed, "lease tidy finished");
            let mut r = accepted();
            r.warn("Tidy operation successfully started. Any information from the operation will be printed to OpenBao's server logs.");
            r
        }
        "leases/count" if op == Operation::Read => {
            irrevocable_type(req)?;
            let found = leases.irrevocable_leases(None).await?;
            let mut counts = serde_json::Map::new();
            for l in &found {
                let mount = mount_of(leases, &l.path);
                let n = counts.get(&mount).and_then(Value::as_u64).unwrap_or(0);
                counts.insert(mount, json!(n + 1));
            }
            Response::with_data(crate::data(json!({
                "counts": counts,
                "lease_count": found.len(),
            })))
        }
        "leases" if op == Operation::Read => {
            irrevocable_type(req)?;
            let limit = match req.data.get("limit") {
                None => Some(10_000),
                Some(Value::String(s)) if s == "none" => None,
                Some(_) => Some(
                    usize::try_from(params::int(&req.data, "limit")?.unwrap_or(10_000))
                        .map_err(|_| Error::invalid_input("invalid limit"))?,
                ),
            };
            let found = leases
                .irrevocable_leases(limit.map(|l| l.saturating_add(1)))
                .await?;
            let mut r = Response::default();
            let shown: Vec<Value> = found
                .iter()
                .take(limit.unwrap_or(usize::MAX))
                .map(|l| {
                    json!({
                        "lease_id": l.lease_id,
                        "mount_id": mount_of(leases, &l.path),
                        "error": l.revoke_err,
                        "expire_time": crate::clock::rfc3339(super::from_nanos(l.expire_time)),
                    })
                })
                .collect();
            if limit.is_some_and(|l| found.len() > l) {
                r.warn(
                    "There are more irrevocable leases than shown; use limit=none to see them all",
                );
            }
            r.data = Some(crate::data(json!({
                "lease_count": shown.len(),
                "leases": shown,
            })));
            r
        }
        "quotas/lease-count" | "quotas/lease-count/" if op == Operation::List => {
            let keys: Vec<String> = leases
                .storage
                .list(QUOTA_PREFIX, &Page::all())
                .await?
                .into_iter()
                .filter(|k| !k.ends_with('/'))
                .collect();
            if keys.is_empty() {
                return Ok(Some(not_found(req)?));
            }
            Response::with_data(crate::data(json!({ "keys": keys })))
        }
        p if p.starts_with("quotas/lease-count/") => {
            let name = p.trim_start_matches("quotas/lease-count/");
            if name.is_empty() || name.contains('/') {
                return Err(Error::invalid_input("quota name is invalid"));
            }
            quota(leases, req, name).await?
        }
        _ => return Ok(None),
    };
    Ok(Some(resp))
}

async fn quota(leases: &Arc<Leases>, req: &Request, name: &str) -> Result<Response> {
    let storage = leases.storage.as_ref();
    let key = format!("{QUOTA_PREFIX}{name}");
    match req.operation {
        Operation::Read => {
            let Some(raw) = storage.get(&key).await? else {
                return not_found(req);
            };
            let q: Quota = serde_json::from_slice(&raw)
                .map_err(|e| Error::storage("corrupt quota").with_source(e))?;
            let counter = leases.quota_count(name).await?;
            Ok(Response::with_data(crate::data(json!({
                "name": q.name,
                "path": q.path,
                "role": q.role,
                "max_leases": q.max_leases,
                "counter": counter,
                "type": "lease-count",
                "inheritable": false,
            }))))
        }
        Operation::Create | Operation::Update => {
            let existing: Option<Quota> = storage
                .get(&key)
                .await?
                .and_then(|raw| serde_json::from_slice(&raw).ok());
            let path = match params::string(&req.data, "path")? {
                Some(p) => p.trim_start_matches('/').to_string(),
                None => existing
                    .as_ref()
                    .map(|q| q.path.clone())
                    .unwrap_or_default(),
            };
            let role = match params::string(&req.data, "role")? {
                Some(r) => r,
                None => existing
                    .as_ref()
                    .map(|q| q.role.clone())
                    .unwrap_or_default(),
            };
            let max = match params::int(&req.data, "max_leases")? {
                Some(n) => u64::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Error::invalid_input("max_leases must be positive"))?,
                None => match &existing {
                    Some(q) => q.max_leases,
                    None => return Err(Error::invalid_input("max_leases must be positive")),
                },
            };
            if !role.is_empty() && path.is_empty() {
                return Err(Error::invalid_input(
                    "role can only be set on a quota with a path",
                ));
            }
            if !path.is_empty() {
                let mount_path = if path.ends_with('/') {
                    path.clone()
                } else {
                    format!("{path}/")
                };
                let router = leases.host.router()?;
                if router.route(&mount_path).is_none() && router.route(&path).is_none() {
                    return Err(Error::invalid_input(format!(
                        "invalid mount path \"{path}\""
                    )));
                }
            }
            leases
                .quota_put(Quota {
                    name: name.to_string(),
                    path,
                    role,
                    max_leases: max,
                })
                .await?;
            Ok(Response::default())
        }
        Operation::Delete => {
            leases.quota_delete(name).await?;
            Ok(Response::default())
        }
        _ => Err(Error::unsupported_operation()),
    }
}

fn sub<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix).filter(|r| !r.is_empty())
}

fn accepted() -> Response {
    Response {
        kind: crate::request::ResponseKind::Accepted,
        ..Response::default()
    }
}

fn not_found(req: &Request) -> Result<Response> {
    Err(Error::not_found(format!(
        "no value found at `{}`",
        req.path
    )))
}

fn lease_id_param(req: &Request, url: &str) -> Result<String> {
    let body = params::string(&req.data, "lease_id")?.unwrap_or_default();
    let id = if url.is_empty() {
        body
    } else {
        url.to_string()
    };
    if id.is_empty() {
        return Err(Error::invalid_input("lease_id must be specified"));
    }
    Ok(id)
}

fn irrevocable_type(req: &Request) -> Result<()> {
    match params::string(&req.data, "type")?.as_deref() {
        Some("irrevocable") => Ok(()),
        Some(t) => Err(Error::invalid_input(format!(
            "invalid type {t:?}; only \"irrevocable\" is supported"
        ))),
        None => Err(Error::invalid_input("type must be specified")),
    }
}

/// The accessor of the mount a lease path belongs to ("" when the mount is gone).
fn mount_of(leases: &Arc<Leases>, path: &str) -> String {
    leases
        .host
        .router()
        .ok()
        .and_then(|r| r.route(path).map(|(m, _)| m.entry.accessor.clone()))
        .unwrap_or_default()
}
