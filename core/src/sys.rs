//! The `sys/` endpoints of the foundation: init, seal and unseal, health, mounts and tuning,
//! keyring rotation and key status, and the UI mount lookup the CLI uses.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::barrier::RotationConfig;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::router::{self, MountEntry};
use crate::strongroom::Strongroom;
use crate::util::params;

/// Endpoints that need no token (and work while sealed).
pub(crate) async fn unauthenticated(sr: &Strongroom, req: &Request) -> Result<Option<Response>> {
    let op = req.operation;
    let resp = match (req.path.as_str(), op) {
        ("sys/seal-status", Operation::Read) => {
            Response::with_data(sr.seal_status().await?.to_json())
        }
        ("sys/init", Operation::Read) => Response::with_data(crate::data(json!({
            "initialized": sr.is_initialized().await?
        }))),
        ("sys/init", Operation::Update | Operation::Create) => {
            let shares = params::int(&req.data, "secret_shares")?.unwrap_or(0);
            let threshold = params::int(&req.data, "secret_threshold")?.unwrap_or(0);
            if req.data.get("pgp_keys").is_some_and(|v| !v.is_null()) {
                return Err(Error::invalid_input("pgp_keys are not supported"));
            }
            let init = sr
                .init(
                    u64::try_from(shares).unwrap_or(0),
                    u64::try_from(threshold).unwrap_or(0),
                )
                .await?;
            use secrecy::ExposeSecret;
            Response::with_data(crate::data(json!({
                "keys": init.keys.iter().map(|k| k.expose_secret().to_string()).collect::<Vec<_>>(),
                "keys_base64": init.keys_base64.iter().map(|k| k.expose_secret().to_string()).collect::<Vec<_>>(),
                "root_token": init.root_token.expose_secret(),
            })))
        }
        ("sys/unseal", Operation::Update | Operation::Create) => {
            if params::bool(&req.data, "reset")?.unwrap_or(false) {
                if sr.is_initialized().await? && !sr.is_sealed() {
                    return Err(Error::invalid_input("vault is unsealed"));
                }
                sr.unseal_reset()?;
                return Ok(Some(Response::with_data(sr.seal_status().await?.to_json())));
            }
            let Some(key) = params::string(&req.data, "key")? else {
                return Err(Error::invalid_input(
                    "'key' must be specified in request body as JSON, or 'reset' set to true",
                ));
            };
            if !sr.is_initialized().await? {
                return Err(Error::invalid_input("Vault is not initialized"));
            }
            if !sr.is_sealed() {
                return Err(Error::invalid_input("vault is unsealed"));
            }
            Response::with_data(sr.unseal(&key).await?.to_json())
        }
        ("sys/health", Operation::Read) => health(sr).await?,
        // Without a token: only what is tuned `listing_visibility=unauth` (with one, the
        // pipeline checks it and the listing follows its policies).
        ("sys/internal/ui/mounts", Operation::Read) if req.token.is_none() => {
            if sr.is_sealed() {
                return Err(Error::sealed());
            }
            ui_mounts_listing(sr, None).await?
        }
        ("sys/leader", Operation::Read) => Response::with_data(leader(sr).await?),
        _ => return Ok(None),
    };
    Ok(Some(resp))
}

/// `sys/leader`: OpenBao's `{"ha_enabled":false}` for a single node (sealed or not); with
/// high availability, 503 while sealed, else who the active node is ([`crate::ha`]).
async fn leader(sr: &Strongroom) -> Result<Data> {
    if sr.inner.ha.is_none() {
        return Ok(crate::data(json!({"ha_enabled": false})));
    }
    if sr.is_sealed() {
        return Err(Error::sealed());
    }
    // Another process may have taken over since this one last looked.
    sr.sync_store().await?;
    sr.inner
        .leases
        .leadership
        .leader(sr.inner.storage.as_ref(), sr.inner.leases.holder())
        .await
}

async fn health(sr: &Strongroom) -> Result<Response> {
    let st = sr.seal_status().await?;
    let now = sr.inner.clock.now().unix_timestamp();
    let ha = sr.inner.ha.is_some();
    // OpenBao: a sealed node counts as a standby; with HA, so does every node but the one
    // holding the lock, and the performance replication mode reads `primary`.
    let standby = st.sealed || (ha && !sr.inner.leases.leadership.is_leading());
    let replication = match (st.sealed, ha) {
        (true, _) => "unknown",
        (false, true) => "primary",
        (false, false) => "disabled",
    };
    let mut d = crate::data(json!({
        "initialized": st.initialized,
        "sealed": st.sealed,
        "standby": standby,
        "replication_performance_mode": replication,
        "replication_dr_mode": if st.sealed { "unknown" } else { "disabled" },
        "server_time_utc": now,
        "version": router::BAO_VERSION,
    }));
    if let (Some(n), Some(i)) = (st.cluster_name, st.cluster_id) {
        d.insert("cluster_name".into(), Value::String(n));
        d.insert("cluster_id".into(), Value::String(i));
    }
    // The HTTP status (200, 429, 501, 503 and the query overrides) is the server's business:
    // it reads `initialized` and `sealed` from here.
    Ok(Response::with_data(d))
}

/// Authenticated `sys/` endpoints.
/// Where `sys/` paths carry names and how they are treated (see [`crate::util::names`]): ACL
/// policy names are trimmed and lowercased, so the ACL judges the policy that is written.
/// Password policy names are taken as sent, as OpenBao takes them (`PROT` and `prot` are two
/// policies).
pub(crate) const NAME_RULES: &[crate::util::names::NameRule] = &[
    crate::util::names::NameRule::trim_lower("policies/acl/"),
    crate::util::names::NameRule::trim_lower("policy/"),
];

pub(crate) async fn handle(sr: &Strongroom, req: &Request) -> Result<Response> {
    let path = req.path.strip_prefix("sys/").unwrap_or("");
    let op = req.operation;
    let is_write = matches!(op, Operation::Update | Operation::Create);
    match path {
        "mounts" | "mounts/" if matches!(op, Operation::Read | Operation::List) => {
            let mut d = Data::new();
            for e in router::load_table(sr.inner.storage.as_ref()).await? {
                d.insert(e.path.clone(), e.to_json());
            }
            Ok(Response::with_data(d))
        }
        "rotate" | "rotate/keyring" if is_write => {
            sr.inner.barrier.rotate().await?;
            Ok(Response::default())
        }
        // The engine's share of OpenBao's `sys/metrics` (the HTTP server adds its own and
        // formats them); here so that reading it takes a token with `read` on `sys/metrics`.
        "metrics" if op == Operation::Read => {
            Ok(Response::with_data(sr.metrics().await?.to_data()))
        }
        "key-status" | "rotate/keyring" if op == Operation::Read => {
            let st = sr.inner.barrier.key_status()?;
            Ok(Response::with_data(crate::data(json!({
                "term": st.term,
                "install_time": rfc3339(st.install_time),
                "encryptions": st.encryptions,
            }))))
        }
        "rotate/config" | "rotate/keyring/config" if op == Operation::Read => {
            let c = sr.inner.barrier.rotation_config()?;
            Ok(Response::with_data(crate::data(json!({
                "enabled": !c.disabled,
                "max_operations": c.max_operations,
                "interval": crate::util::duration::format(std::time::Duration::from_secs(c.interval)),
            }))))
        }
        "rotate/config" | "rotate/keyring/config" if is_write => {
            let mut c: RotationConfig = sr.inner.barrier.rotation_config()?;
            if let Some(e) = params::bool(&req.data, "enabled")? {
                c.disabled = !e;
            }
            if let Some(n) = params::int(&req.data, "max_operations")? {
                c.max_operations = u64::try_from(n)
                    .map_err(|_| Error::invalid_input("max_operations must be positive"))?;
            }
            if let Some(d) = params::duration(&req.data, "interval")? {
                c.interval = d.as_secs();
            }
            sr.inner.barrier.set_rotation_config(c).await?;
            Ok(Response::default())
        }
        "ha-status" if op == Operation::Read => {
            if sr.inner.ha.is_some() {
                // Another process may have taken over or joined since this one last looked.
                sr.sync_store().await?;
            }
            let now = sr.inner.clock.now();
            let d = sr
                .inner
                .leases
                .leadership
                .ha_status(sr.inner.storage.as_ref(), sr.inner.ha.as_ref(), now)
                .await?;
            Ok(Response::with_data(d))
        }
        "audit" | "audit/" if matches!(op, Operation::Read | Operation::List) => {
            Ok(Response::with_data(sr.inner.audit.list()))
        }
        "rotate/root" if is_write => {
            sr.rotate_root_key().await?;
            Ok(Response::default())
        }
        "seal" if is_write => {
            sr.seal().await?;
            Ok(Response::default())
        }
        _ => {
            if let Some(resp) = crate::policies::handle(sr, req, path).await? {
                return Ok(resp);
            }
            if let Some(resp) = crate::password_policy::handle(sr, req, path).await? {
                return Ok(resp);
            }
            if let Some(resp) =
                crate::leases::endpoints::handle(&sr.inner.leases, req, path).await?
            {
                return Ok(resp);
            }
            if let Some(resp) = crate::auth::lockout::handle(
                &crate::auth::lockout::Site {
                    storage: sr.inner.storage.as_ref(),
                    lockouts: &sr.inner.user_lockouts,
                    clock: &sr.inner.clock,
                },
                req,
                path,
            )
            .await?
            {
                return Ok(resp);
            }
            if let Some(rest) = path.strip_prefix("mounts/") {
                return mounts(sr, req, rest).await;
            }
            if let Some(device) = path.strip_prefix("audit-hash/") {
                if !is_write {
                    return Err(Error::unsupported_operation());
                }
                let input = params::string(&req.data, "input")?.unwrap_or_default();
                let device = router::normalize_mount_path(device)?;
                let hash = sr.inner.audit.hash(&device, &input)?;
                return Ok(Response::with_data(crate::data(json!({ "hash": hash }))));
            }
            if let Some(device) = path.strip_prefix("audit/") {
                return match op {
                    Operation::Update | Operation::Create => {
                        crate::audit::table::enable(sr, device, &req.data).await?;
                        Ok(Response::default())
                    }
                    Operation::Delete => {
                        crate::audit::table::disable(sr, device).await?;
                        Ok(Response::default())
                    }
                    _ => Err(Error::unsupported_operation()),
                };
            }
            if path == "auth" || path == "auth/" {
                return auth_list(sr, req).await;
            }
            if let Some(rest) = path.strip_prefix("auth/") {
                return auth_mount(sr, req, rest).await;
            }
            if path == "internal/ui/mounts" && op == Operation::Read {
                let entry = sr
                    .token_site()
                    .token_lookup(req.token_str())
                    .await?
                    .ok_or_else(Error::permission_denied)?;
                let acl = sr.acl_for_token(&entry).await?;
                return ui_mounts_listing(sr, Some(&acl)).await;
            }
            if let Some(rest) = path.strip_prefix("internal/ui/mounts/") {
                return ui_mount(sr, rest);
            }
            if KNOWN.contains(&path) {
                return Err(Error::unsupported_operation());
            }
            // A path inside the mount its patterns do not match: OpenBao's backend answer.
            Err(Error::backend_unsupported_path())
        }
    }
}

/// `sys/` paths that exist: the wrong operation on them is 405, as in OpenBao, not 404.
const KNOWN: &[&str] = &[
    "mounts",
    "rotate",
    "rotate/keyring",
    "key-status",
    "ha-status",
    "metrics",
    "rotate/config",
    "rotate/keyring/config",
    "rotate/root",
    "seal",
    "audit",
    "auth",
    "locked-users",
    "policy",
    "policies/acl",
    "policies/password",
    "capabilities",
    "capabilities-self",
    "capabilities-accessor",
    "leases",
    "leases/lookup",
    "leases/renew",
    "leases/revoke",
    "leases/tidy",
    "leases/count",
    "renew",
];

fn options_from(data: &Data) -> Result<Option<BTreeMap<String, String>>> {
    params::string_map(data, "options")
}

async fn mounts(sr: &Strongroom, req: &Request, rest: &str) -> Result<Response> {
    let (mount_path, tune) = match rest.trim_end_matches('/').strip_suffix("/tune") {
        Some(p) => (p, true),
        None => (rest, false),
    };
    let path = router::normalize_mount_path(mount_path)?;
    let entries = router::load_table(sr.inner.storage.as_ref()).await?;
    let existing = entries.iter().find(|e| e.path == path).cloned();
    match (req.operation, tune) {
        (Operation::Read, false) => {
            let e = existing.ok_or_else(|| {
                Error::invalid_input(format!("no matching mount for path: {path}"))
            })?;
            Ok(Response::with_data(crate::data(e.to_json())))
        }
        (Operation::Read, true) => {
            let e = existing.ok_or_else(|| {
                Error::invalid_input(format!("cannot fetch sysview for path \"{path}\""))
            })?;
            Ok(Response::with_data(tune_json(&e)))
        }
        (Operation::Update | Operation::Create, false) => {
            let kind = params::string(&req.data, "type")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Error::invalid_input("backend type must be specified as a string")
                })?;
            // OpenBao's alias: `kv-v2` is `kv` with version 2.
            let (kind, forced_version) = match kind.as_str() {
                "kv-v2" => ("kv".to_string(), Some("2")),
                _ => (kind, None),
            };
            let mut e = MountEntry::new(&path, &kind);
            e.description = params::string(&req.data, "description")?.unwrap_or_default();
            if let Some(Value::Object(cfg)) = req.data.get("config") {
                e.config = router::parse_config(cfg, &e.config, router::ConfigChange::Enable)?;
            }
            // Shown as `{}` when none are given, as OpenBao does.
            let mut options = options_from(&req.data)?.unwrap_or_default();
            if let Some(v) = forced_version {
                options.insert("version".into(), v.into());
            }
            if kind == "kv" {
                // No version is version 1 (the engine's default), listed without one.
                if let Some(v) = options.get("version") {
                    if v != "1" && v != "2" {
                        return Err(Error::invalid_input(format!(
                            "invalid kv version `{v}`: must be 1 or 2"
                        )));
                    }
                }
            }
            e.options = Some(options);
            e.local = params::bool(&req.data, "local")?.unwrap_or(false);
            e.seal_wrap = params::bool(&req.data, "seal_wrap")?.unwrap_or(false);
            e.external_entropy_access =
                params::bool(&req.data, "external_entropy_access")?.unwrap_or(false);
            sr.add_mount(e).await?;
            Ok(Response::default())
        }
        (Operation::Update | Operation::Create, true) => {
            let mut e = existing.ok_or_else(|| {
                Error::invalid_input(format!("cannot tune '{path}': no such mount"))
            })?;
            e.config = router::parse_config(&req.data, &e.config, router::ConfigChange::Tune)?;
            // A secrets mount has no logins: OpenBao refuses a lockout tune for its type.
            if let Some(raw) = req.data.get("user_lockout_config") {
                e.config.user_lockout_config = crate::auth::lockout::parse_tune(
                    raw,
                    &e,
                    e.config.user_lockout_config.as_ref(),
                )?;
            }
            if let Some(d) = params::string(&req.data, "description")? {
                e.description = d;
            }
            if let Some(opts) = options_from(&req.data)? {
                let current = e.options.clone().unwrap_or_default();
                if let Some(v) = opts.get("version") {
                    if current.get("version") != Some(v) && !v.is_empty() {
                        return Err(Error::invalid_input(
                            "changing the kv version of a mount is not supported yet; mount a new kv v2 engine and copy the data",
                        ));
                    }
                }
                let mut merged = current;
                merged.extend(opts.into_iter().filter(|(k, _)| k != "version"));
                e.options = Some(merged);
            }
            sr.update_mount(e).await?;
            Ok(Response::default())
        }
        (Operation::Delete, false) => {
            if path == "sys/" {
                return Err(Error::invalid_input("cannot unmount 'sys/'"));
            }
            sr.remove_mount(&path).await?;
            Ok(Response::default())
        }
        _ => Err(Error::unsupported_operation()),
    }
}

/// `sys/internal/ui/mounts`: the secrets and auth mounts the caller's token has access to
/// (OpenBao's `hasMountAccess`) and those listed for everyone; without a token, only those tuned `listing_visibility=unauth`
/// with only their type, description and options.
pub(crate) async fn ui_mounts_listing(
    sr: &Strongroom,
    acl: Option<&crate::policy::Acl>,
) -> Result<Response> {
    let storage = sr.inner.storage.as_ref();
    let mut out = Data::new();
    for (section, prefix, entries) in [
        ("secret", "", router::load_table(storage).await?),
        ("auth", "auth/", router::load_auth_table(storage).await?),
    ] {
        let mut listed = Data::new();
        for e in entries {
            let shown = match acl {
                // Mounts listed for everyone are listed to every token too.
                Some(acl) => (e.config.listing_visibility == "unauth"
                    || acl.has_mount_access(&format!("{prefix}{}", e.path)))
                .then(|| {
                    if prefix.is_empty() {
                        e.to_json()
                    } else {
                        auth_json(&e)
                    }
                }),
                None => (e.config.listing_visibility == "unauth").then(|| {
                    json!({
                        "description": e.description,
                        "options": e.options,
                        "type": e.kind,
                    })
                }),
            };
            if let Some(v) = shown {
                listed.insert(e.path.clone(), v);
            }
        }
        out.insert(section.into(), Value::Object(listed));
    }
    Ok(Response::with_data(out))
}

fn ui_mount(sr: &Strongroom, path: &str) -> Result<Response> {
    let router = sr.router()?;
    let (m, _) = router.route(path).ok_or_else(Error::permission_denied)?;
    let mut d = crate::data(m.entry.to_json());
    d.insert("path".into(), Value::String(m.entry.path.clone()));
    Ok(Response::with_data(d))
}

/// `sys/mounts/:path/tune` and `sys/auth/:path/tune` as OpenBao reads them: `options` and
/// `listing_visibility` only when set.
fn tune_json(e: &MountEntry) -> Data {
    let mut d = crate::data(json!({
        "default_lease_ttl": e.default_ttl().as_secs(),
        "max_lease_ttl": e.max_ttl().as_secs(),
        "description": e.description,
        "force_no_cache": e.config.force_no_cache,
    }));
    if let Some(o) = e.options.as_ref().filter(|o| !o.is_empty()) {
        d.insert("options".into(), json!(o));
    }
    if !e.config.listing_visibility.is_empty() {
        d.insert(
            "listing_visibility".into(),
            json!(e.config.listing_visibility),
        );
    }
    d
}

fn auth_json(e: &MountEntry) -> Value {
    let mut v = e.to_json();
    if e.kind != "token" {
        if let Some(m) = v.as_object_mut() {
            m.insert("deprecation_status".into(), json!("supported"));
        }
    }
    // Every auth mount's config carries the token type it issues (vaultrs fails to parse a
    // listing without it).
    if let Some(cfg) = v.get_mut("config").and_then(Value::as_object_mut) {
        cfg.insert("token_type".into(), json!("default-service"));
    }
    v
}

async fn auth_list(sr: &Strongroom, req: &Request) -> Result<Response> {
    if !matches!(req.operation, Operation::Read | Operation::List) {
        return Err(Error::unsupported_operation());
    }
    let mut d = Data::new();
    for e in router::load_auth_table(sr.inner.storage.as_ref()).await? {
        d.insert(e.path.clone(), auth_json(&e));
    }
    Ok(Response::with_data(d))
}

async fn auth_mount(sr: &Strongroom, req: &Request, rest: &str) -> Result<Response> {
    let (mount_path, tune) = match rest.trim_end_matches('/').strip_suffix("/tune") {
        Some(p) => (p, true),
        None => (rest, false),
    };
    let path = router::normalize_mount_path(mount_path)?;
    let storage = sr.inner.storage.as_ref();
    let table = router::load_auth_table(storage).await?;
    let pos = table.iter().position(|e| e.path == path);
    match (req.operation, tune, pos) {
        (Operation::Read, true, Some(i)) => {
            let e = table
                .get(i)
                .ok_or_else(|| Error::internal("auth table changed"))?;
            let mut d = tune_json(e);
            d.insert("token_type".into(), json!("default-service"));
            if let Some(Value::Object(l)) =
                e.config.user_lockout_config.as_ref().map(|l| l.to_json())
            {
                d.extend(l);
            }
            Ok(Response::with_data(d))
        }
        (Operation::Update | Operation::Create, true, Some(i)) => {
            let mut e = table
                .get(i)
                .cloned()
                .ok_or_else(|| Error::internal("auth table changed"))?;
            e.config = router::parse_config(&req.data, &e.config, router::ConfigChange::Tune)?;
            if let Some(raw) = req.data.get("user_lockout_config") {
                e.config.user_lockout_config = crate::auth::lockout::parse_tune(
                    raw,
                    &e,
                    e.config.user_lockout_config.as_ref(),
                )?;
            }
            if let Some(d) = params::string(&req.data, "description")? {
                e.description = d;
            }
            sr.tune_auth(e).await?;
            Ok(Response::default())
        }
        (Operation::Read | Operation::Update | Operation::Create, true, None) => Err(
            Error::invalid_input(format!("cannot fetch sysview for path \"auth/{path}\"")),
        ),
        (Operation::Read, false, Some(i)) => {
            let e = table
                .get(i)
                .ok_or_else(|| Error::internal("auth table changed"))?;
            Ok(Response::with_data(crate::data(auth_json(e))))
        }
        (Operation::Update | Operation::Create, false, _) => {
            let kind = params::string(&req.data, "type")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Error::invalid_input("backend type must be specified as a string")
                })?;
            if kind == "token" {
                return Err(Error::invalid_input(
                    "token credential backend cannot be instantiated",
                ));
            }
            let mut e = MountEntry::new(&path, &kind);
            e.accessor = format!(
                "auth_{kind}_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            );
            e.description = params::string(&req.data, "description")?.unwrap_or_default();
            if let Some(Value::Object(cfg)) = req.data.get("config") {
                e.config = router::parse_config(cfg, &e.config, router::ConfigChange::Enable)?;
            }
            e.options = Some(options_from(&req.data)?.unwrap_or_default());
            e.local = params::bool(&req.data, "local")?.unwrap_or(false);
            e.seal_wrap = params::bool(&req.data, "seal_wrap")?.unwrap_or(false);
            sr.enable_auth(e).await?;
            Ok(Response::default())
        }
        (Operation::Delete, false, _) => {
            sr.disable_auth(&path).await?;
            Ok(Response::default())
        }
        _ => Err(Error::unsupported_operation()),
    }
}
