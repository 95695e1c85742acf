//! Auth methods mounted under `auth/<path>/` through `sys/auth`: userpass, AppRole and
//! Kubernetes. A method's admin paths (users, roles, config) run through the pipeline like any
//! engine; its login paths are unauthenticated. A login returns a [`Grant`] (what the token
//! should be); the core creates the token through the token store's own creation function, so
//! login tokens get exactly what `auth/token/create` tokens get.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::request::{Operation, Request, Response};
use crate::router::{self, MountEntry, Mounted};
use crate::secrets::{Engine, EngineContext};
use crate::storage::Backend;
use crate::storage::view::View;
use crate::token::TokenEntry;

pub(crate) mod approle;
pub(crate) mod cidr;
pub(crate) mod kubernetes;
pub(crate) mod lockout;
pub(crate) mod token_fields;
pub(crate) mod userpass;

pub(crate) use token_fields::TokenFields;

/// What a successful login asks the core to issue.
#[derive(Clone, Default)]
pub(crate) struct Grant {
    /// Policies from the method (the core adds `default` unless `token_no_default_policy`).
    pub policies: Vec<String>,
    /// The token settings (ttl, max_ttl, period, num_uses, bound CIDRs, type).
    pub token: TokenFields,
    /// Returned in `auth.metadata` and stored as the token's `meta`.
    pub metadata: BTreeMap<String, String>,
    /// The method's display name; the core prefixes the mount path (`userpass-bob`).
    pub display_name: String,
    /// Warnings for the caller.
    pub warnings: Vec<String>,
    /// Login reuse: the token issued for the previous login with the same key (Kubernetes:
    /// role, service-account uid and pod uid) is revoked when this one is issued, so repeated
    /// logins of one pod hold one token and one lease, not one per login (vault#14531).
    pub reuse_key: Option<String>,
    /// Who the login is in identity: the alias name in this mount and its metadata. The core
    /// finds (or creates) the entity holding that alias, and the token carries its id.
    pub alias: Option<GrantAlias>,
}

/// A login's identity alias (OpenBao's `logical.Alias`).
#[derive(Clone, Default)]
pub(crate) struct GrantAlias {
    pub name: String,
    pub metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("policies", &self.policies)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// What a login sees besides the request.
pub(crate) struct LoginContext<'a> {
    /// The mount's storage and clock.
    pub ctx: &'a EngineContext,
    /// The caller's address (`None` in-process): CIDR bindings fail closed without one.
    pub remote_addr: Option<IpAddr>,
}

/// An auth method. Its admin paths are served through [`Engine`]; logins through
/// [`AuthMethod::login`].
#[async_trait]
pub(crate) trait AuthMethod: Send + Sync + 'static {
    /// Whether `rel` (relative to the mount) is a login path for `op`: such requests carry no
    /// token and skip the ACL.
    fn is_login(&self, rel: &str, op: Operation) -> bool;

    /// Who a login request is for, for the login lockout (OpenBao's alias lookahead: the
    /// lowercased username, the role id). `None`: the method has no lockout or the request
    /// names nobody (the login itself then refuses it).
    fn lockout_alias(&self, _rel: &str, _req: &Request) -> Option<String> {
        None
    }

    /// Check the credential in `req` and say what the token should be. A wrong credential of
    /// an existing user or role is [`Error::invalid_credentials`]: the lockout counts it.
    async fn login(&self, ctx: &LoginContext<'_>, req: &Request) -> Result<Grant>;

    /// The renew-time check for a token this method issued: re-read the user or role (an
    /// error refuses the renewal, e.g. the user was deleted) and give its current TTL terms.
    async fn renew(&self, ctx: &EngineContext, token: &TokenEntry) -> Result<RenewTerms>;
}

/// The TTL terms a method applies when one of its tokens is renewed (seconds; 0 = none).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RenewTerms {
    pub ttl: u64,
    pub max_ttl: u64,
    pub period: u64,
}

impl RenewTerms {
    pub(crate) fn of(t: &TokenFields) -> RenewTerms {
        RenewTerms {
            ttl: t.token_ttl,
            max_ttl: t.token_max_ttl,
            period: t.token_period,
        }
    }
}

/// Whether two policy lists grant the same (ignoring `default` and order), as OpenBao's
/// `EquivalentPolicies`.
pub(crate) fn equivalent_policies(a: &[String], b: &[String]) -> bool {
    let set = |v: &[String]| {
        v.iter()
            .filter(|p| p.as_str() != "default")
            .map(|p| p.to_lowercase())
            .collect::<std::collections::BTreeSet<_>>()
    };
    set(a) == set(b)
}

/// A mounted auth method: its entry, the engine serving its admin paths and the login side.
pub(crate) struct MountedAuth {
    pub mounted: Arc<Mounted>,
    pub method: Arc<dyn AuthMethod>,
}

/// The live auth mounts (rebuilt from `core/auth` on unseal and on every change; method
/// instances, with their caches, survive a rebuild when their mount did not change).
#[derive(Default)]
pub(crate) struct AuthMethods {
    mounts: RwLock<Arc<HashMap<String, Arc<MountedAuth>>>>,
}

/// Build the method for an auth mount of type `kind`, or `None` for an unknown type.
pub(crate) fn new_method(kind: &str) -> Option<(Arc<dyn Engine>, Arc<dyn AuthMethod>)> {
    match kind {
        "userpass" => {
            let m = Arc::new(userpass::Userpass);
            Some((m.clone(), m))
        }
        "approle" => {
            let m = Arc::new(approle::AppRole);
            Some((m.clone(), m))
        }
        "kubernetes" => {
            let m = Arc::new(kubernetes::Kubernetes::default());
            Some((m.clone(), m))
        }
        _ => None,
    }
}

/// Storage prefix of an auth mount (OpenBao's `auth/<uuid>/`).
pub(crate) fn storage_prefix(e: &MountEntry) -> String {
    format!("auth/{}/", e.uuid)
}

fn instantiate(
    e: &MountEntry,
    storage: &Arc<dyn Backend>,
    clock: &SharedClock,
) -> Result<MountedAuth> {
    let (engine, method) = new_method(&e.kind).ok_or_else(|| {
        Error::invalid_input(format!("plugin not found in the catalog: {}", e.kind))
    })?;
    let ctx = EngineContext {
        storage: View::new(storage.clone(), storage_prefix(e)),
        clock: clock.clone(),
        default_lease_ttl: e.default_ttl(),
        max_lease_ttl: e.max_ttl(),
        password_policies: View::new(storage.clone(), crate::password_policy::PREFIX),
    };
    Ok(MountedAuth {
        mounted: Arc::new(Mounted {
            entry: e.clone(),
            engine,
            ctx,
        }),
        method,
    })
}

impl AuthMethods {
    /// Rebuild from the stored table.
    pub(crate) async fn reload(
        &self,
        storage: &Arc<dyn Backend>,
        clock: &SharedClock,
    ) -> Result<()> {
        let table = router::load_auth_table(storage.as_ref()).await?;
        let current = self.mounts.read().or_else(crate::util::unpoison)?.clone();
        let mut next = HashMap::new();
        for e in table.iter().filter(|e| e.kind != "token") {
            let m = match current.get(&e.path) {
                Some(m) if m.mounted.entry.uuid == e.uuid && m.mounted.entry.kind == e.kind => {
                    if m.mounted.entry == *e {
                        m.clone()
                    } else {
                        // Tuned: same method instance, new settings.
                        let mut ctx = m.mounted.ctx.clone();
                        ctx.default_lease_ttl = e.default_ttl();
                        Arc::new(MountedAuth {
                            mounted: Arc::new(Mounted {
                                entry: e.clone(),
                                engine: m.mounted.engine.clone(),
                                ctx,
                            }),
                            method: m.method.clone(),
                        })
                    }
                }
                _ => Arc::new(instantiate(e, storage, clock)?),
            };
            next.insert(format!("auth/{}", e.path), m);
        }
        *self.mounts.write().or_else(crate::util::unpoison)? = Arc::new(next);
        Ok(())
    }

    /// Forget every mount (on seal).
    pub(crate) fn clear(&self) -> Result<()> {
        *self.mounts.write().or_else(crate::util::unpoison)? = Arc::new(HashMap::new());
        Ok(())
    }

    /// The auth mount serving `path` (`auth/userpass/login/bob`) and the path relative to it.
    pub(crate) fn route<'p>(&self, path: &'p str) -> Result<Option<(Arc<MountedAuth>, &'p str)>> {
        if !path.starts_with("auth/") || path.starts_with("auth/token/") {
            return Ok(None);
        }
        let mounts = self.mounts.read().or_else(crate::util::unpoison)?.clone();
        let mut ends: Vec<usize> = path.match_indices('/').map(|(i, _)| i + 1).collect();
        ends.push(path.len());
        for end in ends.into_iter().rev() {
            let Some(prefix) = path.get(..end) else {
                continue;
            };
            let key = if prefix.ends_with('/') {
                prefix.to_string()
            } else {
                format!("{prefix}/")
            };
            if let Some(m) = mounts.get(&key) {
                return Ok(Some((m.clone(), path.get(end..).unwrap_or(""))));
            }
        }
        Ok(None)
    }
}

/// The display name OpenBao gives a login token: the mount path with `/` as `-`, then the
/// method's name (`userpass-bob`, `kubernetes-default-app-sa`, `approle`).
pub(crate) fn login_display_name(mount_path: &str, method_name: &str) -> String {
    let source = mount_path.trim_end_matches('/').replace('/', "-");
    let name = format!("{source}-{method_name}");
    name.trim_end_matches('-').to_string()
}

/// Read a JSON entry from a method's storage.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    storage: &View,
    key: &str,
) -> Result<Option<T>> {
    match storage.get(key).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|_| Error::storage(format!("auth entry `{key}` is corrupt"))),
    }
}

/// Encode an entry for a method's storage.
pub(crate) fn to_json_bytes<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    crate::util::json::encode(v, || Error::internal("cannot encode auth entry"))
}

/// A `LIST` answer (404 when empty, as OpenBao).
pub(crate) fn list_response(keys: Vec<String>) -> Result<Option<Response>> {
    Ok(crate::util::list_response(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_carry_the_mount() {
        assert_eq!(login_display_name("userpass/", "bob"), "userpass-bob");
        assert_eq!(login_display_name("approle/", ""), "approle");
        assert_eq!(
            login_display_name("k8s/prod/", "default-app-sa"),
            "k8s-prod-default-app-sa"
        );
    }
}
