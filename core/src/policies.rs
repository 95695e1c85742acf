//! The ACL policy store (`sys/policies/acl`, legacy `sys/policy`), the compiled-ACL cache the
//! pipeline consults, and `sys/capabilities*`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::clock::{parse_rfc3339, rfc3339};
use crate::error::{Error, Result};
use crate::policy::{
    Acl, DEFAULT_POLICY, DEFAULT_POLICY_NAME, Policy, RESPONSE_WRAPPING_POLICY,
    RESPONSE_WRAPPING_POLICY_NAME,
};
use crate::request::{Data, Operation, Request, Response};
use crate::storage::{Backend, Page, TxnOp};
use crate::strongroom::Strongroom;
use crate::util::params;

const PREFIX: &str = "sys/policy/";

/// Paths that need `sudo` on top of the operation's capability (OpenBao's root paths).
const SUDO_PATHS: &[&str] = &[
    "sys/auth/*",
    "sys/remount",
    "sys/audit",
    "sys/audit/*",
    "sys/raw",
    "sys/raw/*",
    "sys/rotate",
    "sys/rotate/*",
    "sys/seal",
    "sys/step-down",
    "sys/config/cors",
    "sys/config/auditing/*",
    "sys/plugins/catalog/*",
    "sys/leases",
    "sys/leases/lookup/*",
    "sys/leases/revoke-prefix/*",
    "sys/leases/revoke-force/*",
    "auth/token/revoke-orphan*",
    "auth/token/accessors*",
];

/// Whether `path` is sudo-protected.
pub(crate) fn needs_sudo(path: &str) -> bool {
    SUDO_PATHS.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == *p,
    })
}

/// A stored policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    policy: String,
    version: i64,
    #[serde(default)]
    cas_required: bool,
    modified: String,
    #[serde(default)]
    expiration: Option<String>,
    #[serde(default)]
    allow_wildcards_in_identity_templates: bool,
    #[serde(default)]
    allow_slashes_in_identity_templates: bool,
}

impl StoredPolicy {
    fn expired(&self, now: OffsetDateTime) -> bool {
        self.expiration
            .as_deref()
            .and_then(parse_rfc3339)
            .is_some_and(|t| t <= now)
    }
}

/// A cached parse of a stored policy, with the policy-level `expiration` it carries.
#[derive(Clone)]
struct CachedPolicy {
    policy: Arc<Policy>,
    expires: Option<OffsetDateTime>,
}

/// Parsed policies and compiled ACLs, keyed by the sorted policy names of a token. Expiry is
/// judged on every use against the engine's clock: OpenBao looks policies up (and builds the
/// ACL) per request, so an expired policy or rule stops granting at once, cached or not.
#[derive(Default)]
pub(crate) struct PolicyCache {
    policies: RwLock<HashMap<String, Option<CachedPolicy>>>,
    acls: RwLock<HashMap<Vec<String>, Arc<Acl>>>,
    /// ACLs of tokens with an entity: by entity id, then by the token's own policies, with
    /// the identity generation they were built at (an identity change rebuilds them).
    entity_acls: RwLock<HashMap<String, Vec<EntityAcl>>>,
    /// Bumped after every clear (see `TokenStore::generation`).
    generation: std::sync::atomic::AtomicU64,
}

impl PolicyCache {
    /// Drop everything (a policy changed, here or in another process).
    pub(crate) fn clear(&self) -> Result<()> {
        self.policies
            .write()
            .or_else(crate::util::unpoison)?
            .clear();
        self.acls.write().or_else(crate::util::unpoison)?.clear();
        self.entity_acls
            .write()
            .or_else(crate::util::unpoison)?
            .clear();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    /// Changes whenever a policy changes (read it before deciding).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    async fn policy(
        &self,
        storage: &dyn Backend,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<CachedPolicy>> {
        if name == "root" {
            return Ok(Some(CachedPolicy {
                policy: Arc::new(Policy::root()),
                expires: None,
            }));
        }
        if name == RESPONSE_WRAPPING_POLICY_NAME {
            return Ok(Some(CachedPolicy {
                policy: Arc::new(Policy::parse_at(name, RESPONSE_WRAPPING_POLICY, now)?),
                expires: None,
            }));
        }
        let cached = self
            .policies
            .read()
            .or_else(crate::util::unpoison)?
            .get(name)
            .cloned();
        let parsed = match cached {
            Some(p) => p,
            None => {
                let parsed = match load(storage, name).await? {
                    Some(sp) if !sp.expired(now) => Some(CachedPolicy {
                        // Rule-level `expiration` is judged on the engine's clock too.
                        policy: Arc::new(
                            Policy::parse_at(name, &sp.policy, now)?.with_template_options(
                                sp.allow_slashes_in_identity_templates,
                                sp.allow_wildcards_in_identity_templates,
                            ),
                        ),
                        expires: sp.expiration.as_deref().and_then(parse_rfc3339),
                    }),
                    _ => None,
                };
                self.policies
                    .write()
                    .or_else(crate::util::unpoison)?
                    .insert(name.to_string(), parsed.clone());
                parsed
            }
        };
        Ok(parsed.filter(|p| p.expires.is_none_or(|t| t > now)))
    }

    /// The compiled ACL for a token's (sorted) policies. Missing and expired policies are
    /// ignored, as in OpenBao; a cached ACL past an expiry it rests on is built again.
    pub(crate) async fn acl(
        &self,
        storage: &dyn Backend,
        names: &[String],
        now: OffsetDateTime,
    ) -> Result<Arc<Acl>> {
        if let Some(a) = self.acls.read().or_else(crate::util::unpoison)?.get(names) {
            if !a.expired(now) {
                return Ok(a.clone());
            }
        }
        let mut policies = Vec::with_capacity(names.len());
        let mut expires: Option<OffsetDateTime> = None;
        for n in names {
            if let Some(p) = self.policy(storage, n, now).await? {
                if let Some(t) = p.expires {
                    expires = Some(expires.map_or(t, |x| x.min(t)));
                }
                policies.push(p.policy);
            }
        }
        let acl = Arc::new(Acl::build(&policies, None, now)?.expiring_at(expires));
        self.acls
            .write()
            .or_else(crate::util::unpoison)?
            .insert(names.to_vec(), acl.clone());
        Ok(acl)
    }
}

/// A cached ACL of an entity's token (see [`PolicyCache::acl_for_entity`]).
struct EntityAcl {
    token_policies: Vec<String>,
    identity_generation: u64,
    acl: Arc<Acl>,
}

/// Entities whose ACLs are kept at most (the cache is dropped whole when full).
const ENTITY_ACL_CAP: usize = 4096;

impl PolicyCache {
    /// The ACL of a token with policies `names` whose entity resolved to `identity` at
    /// identity generation `generation`: its own policies, then the identity policies, with
    /// templated policies rendered for the entity (OpenBao builds it per request; we keep it
    /// until a policy or the identity changes).
    pub(crate) async fn acl_for_entity(
        &self,
        storage: &dyn Backend,
        names: &[String],
        entity_id: &str,
        identity: &crate::identity::Resolved,
        generation: u64,
        now: OffsetDateTime,
    ) -> Result<Arc<Acl>> {
        if let Some(list) = self
            .entity_acls
            .read()
            .or_else(crate::util::unpoison)?
            .get(entity_id)
        {
            if let Some(hit) = list.iter().find(|c| {
                c.identity_generation == generation
                    && c.token_policies == names
                    && !c.acl.expired(now)
            }) {
                return Ok(hit.acl.clone());
            }
        }
        let mut all: Vec<&String> = names.iter().collect();
        for p in &identity.identity_policies {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        let mut policies = Vec::with_capacity(all.len());
        let mut expires: Option<OffsetDateTime> = None;
        for n in all {
            if let Some(p) = self.policy(storage, n, now).await? {
                if let Some(t) = p.expires {
                    expires = Some(expires.map_or(t, |x| x.min(t)));
                }
                policies.push(p.policy);
            }
        }
        let acl =
            Arc::new(Acl::build(&policies, Some(&identity.template), now)?.expiring_at(expires));
        let mut cache = self.entity_acls.write().or_else(crate::util::unpoison)?;
        if cache.len() >= ENTITY_ACL_CAP {
            cache.clear();
        }
        let list = cache.entry(entity_id.to_string()).or_default();
        list.retain(|c| c.identity_generation == generation && c.token_policies != names);
        list.push(EntityAcl {
            token_policies: names.to_vec(),
            identity_generation: generation,
            acl: acl.clone(),
        });
        Ok(acl)
    }
}

async fn load(storage: &dyn Backend, name: &str) -> Result<Option<StoredPolicy>> {
    match storage.get(&format!("{PREFIX}{name}")).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|_| Error::storage("stored policy is corrupt")),
    }
}

/// Write the built-in `default` policy (at init).
pub(crate) fn default_policy_op(now: OffsetDateTime) -> Result<TxnOp> {
    builtin_policy_op(DEFAULT_POLICY_NAME, DEFAULT_POLICY, now)
}

/// Write the immutable `response-wrapping` policy (at init, or on unseal when missing). It is
/// stored so reads show its `modified` time, but ACLs always use the built-in text.
pub(crate) fn response_wrapping_policy_op(now: OffsetDateTime) -> Result<TxnOp> {
    builtin_policy_op(RESPONSE_WRAPPING_POLICY_NAME, RESPONSE_WRAPPING_POLICY, now)
}

/// Whether a policy entry is stored under `name` (expired or not).
pub(crate) async fn stored(storage: &dyn Backend, name: &str) -> Result<bool> {
    Ok(load(storage, name).await?.is_some())
}

fn builtin_policy_op(name: &str, text: &str, now: OffsetDateTime) -> Result<TxnOp> {
    let sp = StoredPolicy {
        name: name.into(),
        policy: text.to_string(),
        version: 1,
        cas_required: false,
        modified: rfc3339(now),
        expiration: None,
        allow_wildcards_in_identity_templates: false,
        allow_slashes_in_identity_templates: false,
    };
    Ok(TxnOp::Put {
        key: format!("{PREFIX}{name}"),
        value: serde_json::to_vec(&sp)
            .map_err(|e| Error::internal("cannot encode policy").with_source(e))?,
    })
}

/// Whether a policy exists (and has not expired).
pub(crate) async fn exists(storage: &dyn Backend, name: &str, now: OffsetDateTime) -> Result<bool> {
    Ok(name == "root" || load(storage, name).await?.is_some_and(|p| !p.expired(now)))
}

async fn names(storage: &dyn Backend) -> Result<Vec<String>> {
    let mut keys: Vec<String> = storage
        .list(PREFIX, &Page::all())
        .await?
        .into_iter()
        .filter(|k| !k.ends_with('/') && k != RESPONSE_WRAPPING_POLICY_NAME)
        .collect();
    keys.sort();
    keys.push("root".into());
    Ok(keys)
}

/// `sys/policies/acl*`, `sys/policy*` and `sys/capabilities*`; `None` when `path` is none of
/// them.
pub(crate) async fn handle(sr: &Strongroom, req: &Request, path: &str) -> Result<Option<Response>> {
    let op = req.operation;
    let storage = sr.inner.storage.as_ref();
    let resp = match path {
        "policies/acl" | "policies/acl/" if op == Operation::List => {
            Response::with_data(crate::data(json!({ "keys": names(storage).await? })))
        }
        // OpenBao serves only LIST here, so a GET is 405 and listing needs the `list`
        // capability (`read` alone must not list every policy). Legacy `sys/policy` does
        // answer a GET (OpenBao's `handlePoliciesList` on read).
        "policies/acl" | "policies/acl/" if op == Operation::Read => {
            return Err(Error::unsupported_operation());
        }
        "policy" | "policy/" if matches!(op, Operation::Read | Operation::List) => {
            let n = names(storage).await?;
            Response::with_data(crate::data(json!({ "keys": n, "policies": n })))
        }
        "capabilities-self" | "capabilities" | "capabilities-accessor" if is_write(op) => {
            capabilities(sr, req, path).await?
        }
        _ => {
            if let Some(name) = path.strip_prefix("policies/acl/") {
                one(sr, req, name, false).await?
            } else if let Some(name) = path.strip_prefix("policy/") {
                one(sr, req, name, true).await?
            } else {
                return Ok(None);
            }
        }
    };
    Ok(Some(resp))
}

fn is_write(op: Operation) -> bool {
    matches!(op, Operation::Update | Operation::Create)
}

async fn one(sr: &Strongroom, req: &Request, raw_name: &str, legacy: bool) -> Result<Response> {
    let storage = sr.inner.storage.as_ref();
    let now = sr.inner.clock.now();
    let name = raw_name.trim().to_lowercase();
    if name.is_empty() {
        return Err(Error::invalid_input("policy name must be provided"));
    }
    let mut warnings = Vec::new();
    if name != raw_name {
        warnings.push(format!("policy name was converted to {name}"));
    }
    match req.operation {
        Operation::Read => {
            if name == "root" {
                return Err(Error::not_found("the root policy has no document"));
            }
            let sp = match load(storage, &name).await? {
                Some(sp) if sp.expired(now) => {
                    // Expired policies are deleted lazily, when read.
                    storage.delete(&format!("{PREFIX}{name}")).await?;
                    sr.inner.policies.clear()?;
                    None
                }
                other => other,
            };
            let sp = sp.ok_or_else(|| Error::not_found(format!("no policy named `{name}`")))?;
            let mut d = crate::data(json!({
                "name": sp.name,
                "version": sp.version,
                "cas_required": sp.cas_required,
                "allow_wildcards_in_identity_templates": sp.allow_wildcards_in_identity_templates,
                "allow_slashes_in_identity_templates": sp.allow_slashes_in_identity_templates,
                "modified": sp.modified,
            }));
            d.insert(
                if legacy { "rules" } else { "policy" }.into(),
                Value::String(sp.policy),
            );
            if let Some(e) = sp.expiration {
                d.insert("expiration".into(), Value::String(e));
            }
            Ok(Response {
                data: Some(d),
                warnings,
                ..Response::default()
            })
        }
        Operation::Create | Operation::Update | Operation::Patch => {
            if name == "root" || name == RESPONSE_WRAPPING_POLICY_NAME {
                return Err(Error::invalid_input(format!(
                    "cannot update {name:?} policy"
                )));
            }
            let existing = load(storage, &name).await?.filter(|p| !p.expired(now));
            if req.operation == Operation::Patch && existing.is_none() {
                return Err(Error::not_found("policy not found"));
            }
            let mut text = params::string(&req.data, "policy")?;
            if legacy && text.is_none() {
                if let Some(rules) = params::string(&req.data, "rules")? {
                    warnings.push("'rules' is deprecated, please use 'policy' instead".into());
                    text = Some(rules);
                }
            }
            let text = match (text, &existing) {
                (Some(t), _) if !t.trim().is_empty() => decode_maybe_base64(t),
                (None, Some(e)) if req.operation == Operation::Patch => e.policy.clone(),
                _ => {
                    return Err(Error::invalid_input(
                        "'policy' parameter not supplied or empty",
                    ));
                }
            };
            let current = existing.as_ref().map_or(0, |e| e.version);
            let cas_required = params::bool(&req.data, "cas_required")?
                .unwrap_or_else(|| existing.as_ref().is_some_and(|e| e.cas_required));
            let cas = match params::int(&req.data, "cas")? {
                Some(c) => Some(c),
                None if req.operation == Operation::Patch => Some(current),
                None => None,
            };
            match cas {
                None if cas_required || existing.as_ref().is_some_and(|e| e.cas_required) => {
                    return Err(Error::invalid_input(
                        "check-and-set parameter required for this call",
                    ));
                }
                Some(-1) if existing.is_some() => {
                    return Err(Error::conflict(
                        "check-and-set parameter set to -1 on existing entry",
                    ));
                }
                Some(c) if c != -1 && c != current => {
                    return Err(Error::conflict(format!(
                        "check-and-set parameter {c} did not match the current version {current}"
                    )));
                }
                _ => {}
            }
            let expiration = match (
                params::string(&req.data, "expiration")?,
                params::duration(&req.data, "ttl")?,
            ) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid_input(
                        "cannot supply both 'expiration' and 'ttl' for policies",
                    ));
                }
                (Some(e), None) if !e.is_empty() => {
                    let t = parse_rfc3339(&e)
                        .ok_or_else(|| Error::invalid_input(format!("invalid expiration `{e}`")))?;
                    Some(t)
                }
                (None, Some(d)) if !d.is_zero() => Some(crate::clock::later(now, d)?),
                _ => None,
            };
            if expiration.is_some_and(|t| t <= now) {
                return Err(Error::invalid_input(
                    "refusing to update policy as expiration time has already elapsed",
                ));
            }
            let allow_w = params::bool(&req.data, "allow_wildcards_in_identity_templates")?
                .unwrap_or_else(|| {
                    existing
                        .as_ref()
                        .is_some_and(|e| e.allow_wildcards_in_identity_templates)
                });
            let allow_s = params::bool(&req.data, "allow_slashes_in_identity_templates")?
                .unwrap_or_else(|| {
                    existing
                        .as_ref()
                        .is_some_and(|e| e.allow_slashes_in_identity_templates)
                });
            // Parse before storing: a bad policy changes nothing.
            Policy::parse_at(&name, &text, now)?;
            let sp = StoredPolicy {
                name: name.clone(),
                policy: text,
                version: current + 1,
                cas_required,
                modified: rfc3339(now),
                expiration: expiration.map(rfc3339),
                allow_wildcards_in_identity_templates: allow_w,
                allow_slashes_in_identity_templates: allow_s,
            };
            let key = format!("{PREFIX}{name}");
            let before = storage.get(&key).await?;
            let raw = serde_json::to_vec(&sp)
                .map_err(|e| Error::internal("cannot encode policy").with_source(e))?;
            storage
                .transaction(vec![
                    TxnOp::Check {
                        key: key.clone(),
                        expected: before,
                    },
                    TxnOp::Put { key, value: raw },
                ])
                .await?;
            sr.inner.policies.clear()?;
            if legacy && !warnings.is_empty() {
                return Ok(Response {
                    data: Some(Data::new()),
                    warnings,
                    ..Response::default()
                });
            }
            Ok(Response {
                warnings,
                ..Response::default()
            })
        }
        Operation::Delete => {
            if name == "root" || name == RESPONSE_WRAPPING_POLICY_NAME {
                return Err(Error::invalid_input(format!(
                    "cannot delete {name:?} policy"
                )));
            }
            if name == "default" {
                return Err(Error::invalid_input("cannot delete default policy"));
            }
            storage.delete(&format!("{PREFIX}{name}")).await?;
            sr.inner.policies.clear()?;
            Ok(Response::default())
        }
        Operation::List => Err(Error::unsupported_operation()),
    }
}

fn decode_maybe_base64(t: String) -> String {
    match base64::engine::general_purpose::STANDARD.decode(t.trim()) {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or(t),
        Err(_) => t,
    }
}

fn paths_of(data: &Data) -> Result<Vec<String>> {
    let mut paths = crate::token::roles::parse_string_list(data, "paths")?.unwrap_or_default();
    if paths.is_empty() {
        if let Some(p) = params::string(data, "path")? {
            paths.push(p);
        }
    }
    if paths.is_empty() {
        return Err(Error::invalid_input("paths must be supplied"));
    }
    Ok(paths)
}

async fn capabilities(sr: &Strongroom, req: &Request, path: &str) -> Result<Response> {
    let paths = paths_of(&req.data)?;
    // OpenBao's texts, wrapped in go-multierror's form.
    let invalid =
        |what: &str| Error::invalid_input(format!("1 error occurred:\n\t* invalid {what}\n\n"));
    let entry = match path {
        "capabilities-self" => sr.token_site().token_lookup(req.token_str()).await?,
        "capabilities" => {
            let t = params::string(&req.data, "token")?.unwrap_or_default();
            sr.token_site().token_lookup(&t).await?
        }
        _ => {
            let a = params::string(&req.data, "accessor")?.unwrap_or_default();
            Some(
                sr.token_site()
                    .token_by_accessor(&a)
                    .await?
                    .ok_or_else(|| invalid("accessor"))?,
            )
        }
    }
    .ok_or_else(|| invalid("token"))?;
    let acl = sr.acl_for_token(&entry).await?;
    let mut d = Data::new();
    let mut last = Vec::new();
    for p in &paths {
        last = acl.capabilities(p);
        d.insert(p.clone(), json!(last));
    }
    if paths.len() == 1 {
        d.insert("capabilities".into(), json!(last));
    }
    Ok(Response::with_data(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_paths() {
        assert!(needs_sudo("sys/seal"));
        assert!(needs_sudo("sys/auth/kubernetes"));
        assert!(!needs_sudo("sys/auth"));
        assert!(needs_sudo("auth/token/accessors/"));
        assert!(needs_sudo("auth/token/revoke-orphan"));
        assert!(!needs_sudo("auth/token/revoke"));
        assert!(needs_sudo("sys/rotate"));
        assert!(!needs_sudo("sys/mounts/kv"));
    }
}
