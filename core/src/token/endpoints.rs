//! `auth/token/*`: create, lookup, renew, revoke, roles, accessors, tidy.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::roles::{self, Role, glob_match, parse_string_list};
use super::{TokenEntry, TokenStore, new_entry};
use crate::auth::AuthMethods;
use crate::barrier::Barrier;
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::identity::IdentityStore;
use crate::request::{Auth, Data, Operation, Request, Response};
use crate::router;
use crate::storage::Backend;
use crate::util::params;
use crate::util::ttl::TtlLimits;
use crate::util::ttl::{self, TtlRequest};

/// Who is calling: their token entry, the raw id (for lookup-self) and whether the ACL gave
/// them sudo on this path.
pub(crate) struct Caller {
    pub id: Zeroizing<String>,
    pub entry: Arc<TokenEntry>,
    pub sudo: bool,
}

/// What the token endpoints work on, and nothing more: the token store, the storage behind
/// the barrier, the clock, the identity store (a login's entity) and the auth methods (a
/// login token's renewal terms). The pipeline builds one per call
/// (`Strongroom::token_site`); nothing here reaches the engine facade.
pub(crate) struct TokenSite<'a> {
    pub(crate) tokens: &'a TokenStore,
    pub(crate) storage: &'a dyn Backend,
    /// The barrier `storage` is, for reads through its decoded-entry cache.
    pub(crate) barrier: &'a Barrier,
    pub(crate) clock: &'a SharedClock,
    pub(crate) identity: &'a IdentityStore,
    pub(crate) auth: &'a AuthMethods,
}

impl TokenSite<'_> {
    /// Resolve a token id (unknown, expired and malformed are all `None`).
    pub(crate) async fn token_lookup(&self, id: &str) -> Result<Option<Arc<TokenEntry>>> {
        self.tokens.lookup(self.storage, id, self.clock.now()).await
    }

    pub(crate) async fn token_by_accessor(
        &self,
        accessor: &str,
    ) -> Result<Option<Arc<TokenEntry>>> {
        let now = self.clock.now();
        Ok(self
            .tokens
            .by_accessor(self.storage, accessor)
            .await?
            .filter(|e| !e.expired(now))
            .map(Arc::new))
    }

    /// Revoke a token and every token below it.
    pub(crate) async fn token_revoke_tree(&self, salted: &str) -> Result<()> {
        self.tokens.revoke_tree(self.storage, salted).await
    }

    /// Revoke one token; its children become orphans.
    pub(crate) async fn token_revoke_one(&self, salted: &str) -> Result<()> {
        self.tokens.revoke_one(self.storage, salted).await
    }

    pub(crate) async fn token_accessors(&self) -> Result<Vec<String>> {
        self.tokens.accessors(self.storage).await
    }

    pub(crate) async fn token_tidy(&self) -> Result<usize> {
        self.tokens.tidy(self.storage, self.clock.now()).await
    }

    /// TTL defaults for tokens: the `token/` auth mount's tuning, else the system's 768h.
    /// The stored table is decoded once per change (the barrier's decoded-entry cache), not
    /// once per token created.
    pub(crate) async fn token_limits(&self) -> Result<TtlLimits> {
        let table = self
            .barrier
            .get_decoded(router::AUTH_PATH, router::decode_auth_table)
            .await?;
        let limits = |e: &router::MountEntry| TtlLimits {
            default_ttl: e.default_ttl(),
            max_ttl: e.max_ttl(),
        };
        Ok(
            match table
                .as_deref()
                .and_then(|t| t.iter().find(|e| e.path == "token/"))
            {
                Some(e) => limits(e),
                None => limits(&router::token_auth_entry()),
            },
        )
    }

    /// Whether an ACL policy with this name exists.
    pub(crate) async fn policy_exists(&self, name: &str) -> Result<bool> {
        crate::policies::exists(self.storage, name, self.clock.now()).await
    }

    /// The renew hook of the token store: for a token issued by a login, the auth mount's TTL
    /// limits and the method's current terms (the method may refuse). `None` for tokens the
    /// token store issued itself.
    pub(crate) async fn login_renew_bounds(
        &self,
        token: &TokenEntry,
    ) -> Result<Option<(TtlLimits, crate::auth::RenewTerms)>> {
        let Some((m, _)) = self.auth.route(&token.path)? else {
            return Ok(None);
        };
        let terms = m.method.renew(&m.mounted.ctx, token).await?;
        let e = &m.mounted.entry;
        Ok(Some((
            TtlLimits {
                default_ttl: e.default_ttl(),
                max_ttl: e.max_ttl(),
            },
            terms,
        )))
    }
}

/// OpenBao's warning for custom ids.
const CUSTOM_ID_WARNING: &str = "Supplying a custom ID for the token uses the weaker SHA1 hashing instead of the more secure SHA2-256 HMAC for token obfuscation. SHA1 hashed tokens on the wire leads to less secure lookups.";

pub(crate) async fn handle(
    sr: &TokenSite<'_>,
    caller: &Caller,
    req: &Request,
    rel: &str,
) -> Result<Response> {
    let op = req.operation;
    let write = matches!(op, Operation::Update | Operation::Create);
    match rel {
        "create" if write => create(sr, caller, req, None, false).await,
        "create-orphan" if write => create(sr, caller, req, None, true).await,
        "lookup-self" if op == Operation::Read || write => {
            lookup_response(sr, &caller.entry, caller.id.as_str())
        }
        "lookup" if write || op == Operation::Read => {
            let token = params::string(&req.data, "token")?.unwrap_or_default();
            let e = sr.token_lookup(&token).await?.ok_or_else(bad_token)?;
            lookup_response(sr, &e, &token)
        }
        "lookup-accessor" if write => {
            let acc = params::string(&req.data, "accessor")?.unwrap_or_default();
            let e = sr.token_by_accessor(&acc).await?.ok_or_else(|| {
                Error::invalid_input("1 error occurred:\n\t* invalid accessor\n\n")
            })?;
            lookup_response(sr, &e, "")
        }
        "renew-self" if write => renew(sr, &caller.entry, req, req.token_str()).await,
        "renew" if write => {
            let token = params::string(&req.data, "token")?.unwrap_or_default();
            let e = sr
                .token_lookup(&token)
                .await?
                .ok_or_else(|| Error::invalid_input("token not found"))?;
            renew(sr, &e, req, &token).await
        }
        "renew-accessor" if write => {
            let acc = params::string(&req.data, "accessor")?.unwrap_or_default();
            let e = sr
                .token_by_accessor(&acc)
                .await?
                .ok_or_else(|| Error::invalid_input("token not found"))?;
            // Renewing by accessor must not reveal the token.
            renew(sr, &e, req, "").await
        }
        "revoke-self" if write => {
            revoke_batch_check(&caller.entry)?;
            sr.token_revoke_tree(&caller.entry.salted_id).await?;
            Ok(Response::default())
        }
        "revoke" if write => {
            let token = params::string(&req.data, "token")?.unwrap_or_default();
            if token.is_empty() {
                return Err(Error::invalid_input("missing token ID"));
            }
            // As OpenBao: the token is looked up first, so an unknown or dead one (a batch
            // token whose parent is gone included) is a no-op; only a live batch token is
            // refused.
            if let Some(e) = sr.token_lookup(&token).await? {
                revoke_batch_check(&e)?;
                sr.token_revoke_tree(&e.salted_id).await?;
            }
            Ok(Response::default())
        }
        "revoke-accessor" if write => {
            let acc = params::string(&req.data, "accessor")?.unwrap_or_default();
            match sr.token_by_accessor(&acc).await? {
                Some(e) => {
                    sr.token_revoke_tree(&e.salted_id).await?;
                    Ok(Response::default())
                }
                None => {
                    let mut r = Response::default();
                    r.warn("No token found with this accessor");
                    Ok(r)
                }
            }
        }
        "revoke-orphan" if write => {
            if !caller.sudo {
                return Err(Error::policy_denied());
            }
            let token = params::string(&req.data, "token")?.unwrap_or_default();
            let e = sr
                .token_lookup(&token)
                .await?
                .ok_or_else(|| Error::invalid_input("token to revoke not found"))?;
            revoke_batch_check(&e)?;
            sr.token_revoke_one(&e.salted_id).await?;
            Ok(Response::default())
        }
        "accessors/" if op == Operation::List => {
            if !caller.sudo {
                return Err(Error::policy_denied());
            }
            let keys = sr.token_accessors().await?;
            if keys.is_empty() {
                return Err(Error::not_found("no accessors"));
            }
            Ok(Response::with_data(crate::data(json!({ "keys": keys }))))
        }
        "tidy" if write => {
            let removed = sr.token_tidy().await?;
            let mut r = Response::default();
            r.warn(format!("Tidy operation successfully started. Any information from the operation will be printed to OpenBao's server logs. ({removed} entries removed)"));
            r.kind = crate::request::ResponseKind::Accepted;
            Ok(r)
        }
        "roles/" if op == Operation::List => {
            let keys = roles::list(sr.storage).await?;
            if keys.is_empty() {
                return Err(Error::not_found("no roles"));
            }
            Ok(Response::with_data(crate::data(json!({ "keys": keys }))))
        }
        _ => {
            if let Some(name) = rel.strip_prefix("roles/") {
                return role_endpoint(sr, req, name).await;
            }
            if let Some(rest) = rel.strip_prefix("create/") {
                if write {
                    let name = rest.split('/').next().unwrap_or("");
                    let role = roles::get(sr.storage, name)
                        .await?
                        .ok_or_else(|| Error::invalid_input(format!("unknown role {name}")))?;
                    return create(sr, caller, req, Some(role), false).await;
                }
            }
            // A path inside the mount its patterns do not match: OpenBao's backend answer.
            Err(Error::backend_unsupported_path())
        }
    }
}

fn bad_token() -> Error {
    Error::new(crate::ErrorCode::PermissionDenied, "bad token")
}

fn revoke_batch_check(e: &TokenEntry) -> Result<()> {
    if e.is_batch() {
        return Err(Error::invalid_input("batch tokens cannot be revoked"));
    }
    Ok(())
}

fn lookup_response(sr: &TokenSite<'_>, e: &TokenEntry, id: &str) -> Result<Response> {
    let mut d = e.lookup_json(id, sr.clock.now());
    // The entity's and its groups' policies as they are now (entity's first), shown with
    // the (empty) external namespace policies only when there are some, as OpenBao does.
    if !e.entity_id.is_empty() {
        if let Some(r) = sr.identity.resolve(&e.entity_id)? {
            if !r.identity_policies.is_empty() {
                d.insert(
                    "identity_policies".into(),
                    serde_json::json!(r.identity_policies),
                );
                d.insert("external_namespace_policies".into(), serde_json::json!({}));
            }
        }
    }
    Ok(Response::with_data(d))
}

/// Where the token store's paths carry role names: case-sensitive `GenericNameRegex` names,
/// as OpenBao's (`ST-ADMIN-ROLE` and `st-admin-role` are two roles; `st-admin-role%20` is no
/// role at all, 404).
pub(crate) const NAME_RULES: &[crate::util::names::NameRule] = &[
    crate::util::names::NameRule::exact("roles/"),
    crate::util::names::NameRule::exact("create/"),
];

async fn role_endpoint(sr: &TokenSite<'_>, req: &Request, name: &str) -> Result<Response> {
    let storage = sr.storage;
    if name.is_empty() || name.contains('/') {
        return Err(Error::invalid_input("role name is invalid"));
    }
    match req.operation {
        Operation::Read => match roles::get(storage, name).await? {
            Some(r) => Ok(Response::with_data(r.to_json())),
            None => Err(Error::not_found(format!("no role `{name}`"))),
        },
        Operation::Create | Operation::Update => {
            let mut role = roles::get(storage, name).await?.unwrap_or_else(|| Role {
                name: name.to_string(),
                renewable: true,
                token_type: "default-service".into(),
                ..Role::default()
            });
            let warnings = role.apply(&req.data)?;
            roles::put(storage, &role).await?;
            Ok(Response {
                warnings,
                ..Response::default()
            })
        }
        Operation::Delete => {
            roles::delete(storage, name).await?;
            Ok(Response::default())
        }
        _ => Err(Error::unsupported_operation()),
    }
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

async fn create(
    sr: &TokenSite<'_>,
    caller: &Caller,
    req: &Request,
    role: Option<Role>,
    orphan_endpoint: bool,
) -> Result<Response> {
    let parent = &caller.entry;
    let d = &req.data;
    if parent.is_batch() {
        return Err(Error::invalid_input(
            "batch tokens cannot create more tokens",
        ));
    }
    if parent.num_uses > 0 {
        return Err(Error::invalid_input(
            "restricted use token cannot generate child tokens",
        ));
    }
    let mut warnings = Vec::new();
    let role_type = role
        .as_ref()
        .map(|r| r.token_type.clone())
        .unwrap_or_else(|| "default-service".into());
    let token_type = match params::string(d, "type")?.as_deref() {
        None | Some("") => if role_type.ends_with("batch") {
            "batch"
        } else {
            "service"
        }
        .to_string(),
        Some("service") if role_type != "batch" => "service".into(),
        Some("batch") if role_type != "service" => "batch".into(),
        Some(t @ ("service" | "batch")) => {
            return Err(Error::invalid_input(format!(
                "{t} token requested but role only allows {role_type} tokens"
            )));
        }
        Some(t) => return Err(Error::invalid_input(format!("invalid 'type' value {t:?}"))),
    };
    let batch = token_type == "batch";
    let id = params::string(d, "id")?.filter(|s| !s.is_empty());
    let no_parent = params::bool(d, "no_parent")?.unwrap_or(false);
    let no_default = params::bool(d, "no_default_policy")?.unwrap_or(false)
        || role.as_ref().is_some_and(|r| r.token_no_default_policy);
    let mut renewable = params::bool(d, "renewable")?.unwrap_or(true);
    let ttl_param = match positive_duration(d, "ttl", "ttl")? {
        Some(t) => t,
        None => positive_duration(d, "lease", "ttl")?.unwrap_or(Duration::ZERO),
    };
    let mut explicit_max =
        positive_duration(d, "explicit_max_ttl", "explicit_max_ttl")?.unwrap_or(Duration::ZERO);
    let mut period = positive_duration(d, "period", "period")?.unwrap_or(Duration::ZERO);
    let num_uses = params::int(d, "num_uses")?.unwrap_or(0);
    if num_uses < 0 {
        return Err(Error::invalid_input("number of uses cannot be negative"));
    }
    let meta = params::string_map(d, "meta")?.unwrap_or_default();

    if let Some(id) = &id {
        if !caller.sudo {
            return Err(Error::invalid_input(
                "root or sudo privileges required to specify token id",
            ));
        }
        if id.starts_with("s.") || id.starts_with("hvs.") {
            return Err(Error::invalid_input(
                "custom token ID cannot have the 's.' prefix",
            ));
        }
        if id.contains('.') {
            return Err(Error::invalid_input(
                "custom token ID cannot have a '.' in the value",
            ));
        }
        warnings.push(CUSTOM_ID_WARNING.to_string());
    }
    if no_parent && !orphan_endpoint && !caller.sudo && role.as_ref().is_none_or(|r| !r.orphan) {
        return Err(Error::invalid_input(
            "root or sudo privileges required to create orphan token",
        ));
    }
    if !period.is_zero() && !caller.sudo && role.is_none() {
        return Err(Error::invalid_input(
            "root or sudo privileges required to create periodic token",
        ));
    }
    if let Some(r) = &role {
        let rp = Duration::from_secs(r.token_period);
        if !rp.is_zero() && (period.is_zero() || rp < period) {
            period = rp;
        }
        let rm = Duration::from_secs(r.token_explicit_max_ttl);
        if !rm.is_zero() && (explicit_max.is_zero() || rm < explicit_max) {
            explicit_max = rm;
        }
        if !r.renewable {
            renewable = false;
        }
    }
    if batch {
        if num_uses > 0 {
            return Err(Error::invalid_input(
                "batch tokens cannot have \"num_uses\" set",
            ));
        }
        if !explicit_max.is_zero() {
            return Err(Error::invalid_input(
                "batch tokens cannot have \"explicit_max_ttl\" set",
            ));
        }
        if !period.is_zero() {
            return Err(Error::invalid_input(
                "batch tokens cannot have \"period\" set",
            ));
        }
        if id.is_some() {
            return Err(Error::invalid_input("batch tokens cannot have a custom ID"));
        }
        renewable = false;
    }

    // Policies.
    let requested: Option<Vec<String>> = parse_string_list(d, "policies")?
        .map(|v| v.into_iter().map(|p| p.to_lowercase()).collect());
    let parent_has_default = parent.policies.iter().any(|p| p == "default");
    let mut policies: Vec<String> = match (&role, requested) {
        (Some(r), req_pols) => {
            let mut pols = req_pols.unwrap_or_else(|| r.allowed_policies.clone());
            pols.retain(|p| p != "default");
            let allowed = |p: &String| {
                (r.allowed_policies.is_empty() && r.allowed_policies_glob.is_empty())
                    || r.allowed_policies.contains(p)
                    || r.allowed_policies_glob.iter().any(|g| glob_match(g, p))
            };
            let disallowed = |p: &String| {
                r.disallowed_policies.contains(p)
                    || r.disallowed_policies_glob.iter().any(|g| glob_match(g, p))
            };
            if pols.iter().any(|p| !allowed(p) || disallowed(p)) {
                let mut shown = pols.clone();
                if !no_default {
                    shown.push("default".into());
                }
                let shown = sorted_unique(shown);
                return Err(Error::invalid_input(format!(
                    "token policies ({}) must be subset of the role's allowed policies ({}) or glob policies ({})",
                    go_list(&shown),
                    go_list(&r.allowed_policies),
                    go_list(&r.allowed_policies_glob)
                )));
            }
            if !no_default {
                pols.push("default".into());
            }
            pols
        }
        (None, None) => {
            let mut p = parent.policies.clone();
            if no_default {
                p.retain(|x| x != "default");
            }
            p
        }
        (None, Some(mut pols)) => {
            if !caller.sudo && !parent.is_root() {
                let parent_set: Vec<&String> =
                    parent.policies.iter().filter(|p| *p != "default").collect();
                if pols
                    .iter()
                    .any(|p| p != "default" && !parent_set.contains(&p))
                {
                    return Err(Error::invalid_input(
                        "child policies must be subset of parent",
                    ));
                }
                if parent_has_default && !no_default {
                    pols.push("default".into());
                }
            } else if !no_default {
                pols.push("default".into());
            }
            pols
        }
    };
    if no_default {
        policies.retain(|p| p != "default");
    }
    let mut policies = sorted_unique(policies);
    if policies
        .iter()
        .any(|p| p == crate::policy::RESPONSE_WRAPPING_POLICY_NAME)
    {
        return Err(Error::invalid_input(format!(
            "cannot assign policy {:?}",
            crate::policy::RESPONSE_WRAPPING_POLICY_NAME
        )));
    }
    // OpenBao's SanitizePolicies: `root` stands alone.
    if policies.iter().any(|p| p == "root") {
        policies = vec!["root".to_string()];
    }
    if policies.iter().any(|p| p == "root") && !parent.is_root() {
        return Err(Error::invalid_input(
            "root tokens may not be created without parent token being root",
        ));
    }
    if batch && policies.iter().any(|p| p == "root") {
        return Err(Error::invalid_input("batch tokens cannot be root tokens"));
    }
    for p in &policies {
        if p != "root" && p != "default" && !sr.policy_exists(p).await? {
            warnings.push(format!("Policy {p:?} does not exist"));
        }
    }

    // TTL.
    let now = sr.clock.now();
    let limits = sr.token_limits().await?;
    let is_root = policies.iter().any(|p| p == "root");
    let (ttl, ttl_warnings) =
        if is_root && ttl_param.is_zero() && period.is_zero() && explicit_max.is_zero() {
            if parent.expire_time().is_some() {
                return Err(Error::invalid_input(
                    "expiring root tokens cannot create non-expiring root tokens",
                ));
            }
            renewable = false;
            (Duration::ZERO, Vec::new())
        } else {
            ttl::calculate(
                limits,
                TtlRequest {
                    increment: ttl_param,
                    period,
                    explicit_max,
                    ..TtlRequest::default()
                },
                now,
                now,
            )?
        };
    warnings.extend(ttl_warnings);

    let path = match &role {
        Some(r) if r.path_suffix.is_empty() => format!("auth/token/create/{}", r.name),
        Some(r) => format!("auth/token/create/{}/{}", r.name, r.path_suffix),
        None if orphan_endpoint => "auth/token/create-orphan".to_string(),
        None => "auth/token/create".to_string(),
    };
    let orphan = no_parent || orphan_endpoint || role.as_ref().is_some_and(|r| r.orphan);
    let mut entry = new_entry(now, &path, policies.clone());
    entry.display_name = super::entry::display_name(params::string(d, "display_name")?.as_deref());
    entry.meta = meta.clone();
    entry.num_uses = num_uses;
    entry.ttl = ttl.as_secs();
    entry.creation_ttl = ttl.as_secs();
    entry.expire_at_ns = (!ttl.is_zero())
        .then(|| crate::clock::expiry_ns(now, ttl))
        .transpose()?;
    entry.explicit_max_ttl = explicit_max.as_secs();
    entry.period = period.as_secs();
    entry.renewable = renewable;
    entry.role = role.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    entry.parent = (!orphan).then(|| parent.salted_id.clone());
    // A child keeps its creator's entity (and so its identity policies), as in OpenBao.
    entry.entity_id.clone_from(&parent.entity_id);
    entry.token_type = token_type.clone();
    entry.bound_cidrs = role
        .as_ref()
        .map(|r| r.token_bound_cidrs.clone())
        .unwrap_or_default();

    let entity_id = entry.entity_id.clone();
    let identity_policies = match entity_id.as_str() {
        "" => Vec::new(),
        id => sorted_unique(
            sr.identity
                .resolve(id)?
                .map(|r| r.identity_policies.clone())
                .unwrap_or_default(),
        ),
    };
    let (client_token, accessor) = issue(sr, entry, id).await?;
    Ok(Response {
        auth: Some(Auth {
            client_token: SecretString::from(client_token),
            accessor,
            policies: sorted_unique(policies.iter().chain(&identity_policies).cloned().collect()),
            token_policies: policies,
            identity_policies,
            metadata: meta,
            lease_duration: ttl.as_secs(),
            renewable,
            entity_id,
            token_type,
            orphan,
            num_uses: u64::try_from(num_uses).unwrap_or(0),
        }),
        warnings,
        ..Response::default()
    })
}

/// Create the token described by `entry`: a batch token is sealed, a service token stored.
/// The one function every token goes through (`auth/token/create*` and every login), so the
/// lease manager sees them all. Returns the client token and its accessor.
pub(crate) async fn issue(
    sr: &TokenSite<'_>,
    mut entry: TokenEntry,
    id: Option<String>,
) -> Result<(String, String)> {
    if entry.is_batch() {
        entry.accessor.clear();
        Ok((sr.tokens.seal_batch(&entry)?, String::new()))
    } else {
        sr.tokens.store_new(sr.storage, entry, id).await
    }
}

/// Create the token a login grants: an orphan, on the login path, with the method's
/// policies, TTLs (capped by the auth mount's tuning), use count, CIDR binding and metadata.
pub(crate) async fn create_login_token(
    sr: &TokenSite<'_>,
    mount: &crate::router::MountEntry,
    path: &str,
    grant: crate::auth::Grant,
) -> Result<Response> {
    let t = &grant.token;
    let mut policies: Vec<String> = grant.policies.iter().map(|p| p.to_lowercase()).collect();
    if !t.token_no_default_policy {
        policies.push("default".into());
    }
    let mut policies = sorted_unique(policies);
    if policies.iter().any(|p| p == "root") {
        policies = vec!["root".to_string()];
    }
    let now = sr.clock.now();
    let limits = crate::util::ttl::TtlLimits {
        default_ttl: mount.default_ttl(),
        max_ttl: mount.max_ttl(),
    };
    let (ttl, mut warnings) = ttl::calculate(
        limits,
        TtlRequest {
            backend_ttl: Duration::from_secs(t.token_ttl),
            backend_max: Duration::from_secs(t.token_max_ttl),
            period: Duration::from_secs(t.token_period),
            explicit_max: Duration::from_secs(t.token_explicit_max_ttl),
            ..TtlRequest::default()
        },
        now,
        now,
    )?;
    warnings.extend(grant.warnings.iter().cloned());
    let batch = t.is_batch();
    // The login's identity: the entity holding the method's alias in this mount (created on
    // first login); its policies and its groups' join the token's at request time.
    let (entity_id, identity_policies) = match &grant.alias {
        Some(alias) => {
            let id = sr
                .identity
                .login_entity(
                    sr.storage,
                    &crate::clock::rfc3339(now),
                    &mount.accessor,
                    &alias.name,
                    &alias.metadata,
                )
                .await?;
            let resolved = sr.identity.resolve(&id)?;
            // A disabled entity cannot log in (OpenBao: 403 `permission denied`).
            if resolved.as_ref().is_some_and(|r| r.disabled) {
                return Err(Error::permission_denied());
            }
            let extra = resolved
                .map(|r| r.identity_policies.clone())
                .unwrap_or_default();
            (id, extra)
        }
        None => (String::new(), Vec::new()),
    };
    let mut entry = new_entry(now, path, policies.clone());
    entry.entity_id.clone_from(&entity_id);
    entry.display_name = crate::auth::login_display_name(&mount.path, &grant.display_name);
    entry.meta = grant.metadata.clone();
    entry.num_uses = if batch { 0 } else { t.token_num_uses };
    entry.ttl = ttl.as_secs();
    entry.creation_ttl = ttl.as_secs();
    entry.expire_at_ns = (!ttl.is_zero())
        .then(|| crate::clock::expiry_ns(now, ttl))
        .transpose()?;
    entry.explicit_max_ttl = t.token_explicit_max_ttl;
    entry.period = t.token_period;
    entry.renewable = !batch;
    entry.token_type = if batch { "batch" } else { "service" }.into();
    entry.bound_cidrs = t.token_bound_cidrs.clone();
    let num_uses = entry.num_uses;
    let token_type = entry.token_type.clone();
    let (client_token, accessor) = issue(sr, entry, None).await?;
    let identity_policies = sorted_unique(identity_policies);
    let all = sorted_unique(policies.iter().chain(&identity_policies).cloned().collect());
    Ok(Response {
        auth: Some(Auth {
            client_token: SecretString::from(client_token),
            accessor,
            policies: all,
            token_policies: policies,
            identity_policies,
            metadata: grant.metadata,
            lease_duration: ttl.as_secs(),
            renewable: !batch,
            entity_id,
            token_type,
            orphan: true,
            num_uses: u64::try_from(num_uses).unwrap_or(0),
        }),
        warnings,
        ..Response::default()
    })
}

fn go_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// A token-create duration: OpenBao's `handleCreateCommon` parses these itself and refuses a
/// negative one as "<name> must be positive".
fn positive_duration(d: &Data, field: &str, name: &str) -> Result<Option<Duration>> {
    match d.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let nanos = crate::util::duration::parse_signed_value(v)?;
            let nanos = u64::try_from(nanos)
                .map_err(|_| Error::invalid_input(format!("{name} must be positive")))?;
            Ok(Some(Duration::from_nanos(nanos)))
        }
    }
}

/// Renew `e`; the answer carries `token_id` (the token as the caller gave it) in
/// `auth.client_token`, as OpenBao's does, so a client that stores the renewed token keeps it.
async fn renew(
    sr: &TokenSite<'_>,
    e: &TokenEntry,
    req: &Request,
    token_id: &str,
) -> Result<Response> {
    if e.is_batch() {
        return Err(Error::invalid_input("batch tokens cannot be renewed"));
    }
    let now = sr.clock.now();
    if e.expired(now) {
        return Err(Error::invalid_input("lease expired"));
    }
    if !e.renewable {
        return Err(Error::invalid_input("lease is not renewable"));
    }
    let increment = params::duration(&req.data, "increment")?.unwrap_or(Duration::ZERO);
    let mut terms = TtlRequest {
        increment,
        backend_ttl: Duration::from_secs(e.ttl),
        period: Duration::from_secs(e.period),
        explicit_max: Duration::from_secs(e.explicit_max_ttl),
        ..TtlRequest::default()
    };
    // A login token renews on its auth method's terms (which may refuse, e.g. a deleted user).
    let limits = match sr.login_renew_bounds(e).await? {
        Some((limits, t)) => {
            if t.ttl > 0 {
                terms.backend_ttl = Duration::from_secs(t.ttl);
            }
            terms.backend_max = Duration::from_secs(t.max_ttl);
            terms.period = Duration::from_secs(t.period);
            limits
        }
        None => sr.token_limits().await?,
    };
    let (ttl, warnings) = ttl::calculate(limits, terms, e.issued(), now)?;
    let mut updated = e.clone();
    updated.expire_at_ns = Some(crate::clock::expiry_ns(now, ttl)?);
    updated.last_renewal_time = Some(now.unix_timestamp());
    sr.tokens.update(sr.storage, &updated).await?;
    Ok(Response {
        auth: Some(Auth {
            client_token: SecretString::from(token_id),
            accessor: e.accessor.clone(),
            policies: e.policies.clone(),
            token_policies: e.policies.clone(),
            identity_policies: Vec::new(),
            metadata: e.meta.clone(),
            lease_duration: ttl.as_secs(),
            renewable: true,
            entity_id: e.entity_id.clone(),
            token_type: e.token_type.clone(),
            orphan: e.parent.is_none(),
            num_uses: u64::try_from(e.num_uses).unwrap_or(0),
        }),
        warnings,
        ..Response::default()
    })
}
