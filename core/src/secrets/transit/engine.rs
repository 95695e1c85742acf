//! The transit engine mounted as type `transit`: OpenBao's paths, request fields, response
//! shapes, error texts and batch rules (`openbao-behaviour.md` §5) over the crypto core.
//!
//! Keys live in the mount's storage view (`policy/<name>`, behind the barrier) and, once read,
//! decrypted in memory, so an encrypt or sign does no storage read. Writes are serialised by
//! one lock per mount. Another process's writes reach this cache because the pipeline rebuilds
//! the mount's engine when the store's change marker moves.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::asym::{HashAlgorithm, SaltLength, SignOptions};
use super::base64;
use super::fields;
use super::hmac::HmacAlgorithm;
use super::key::{KeyOptions, TransitKey};
use super::key_type::KeyType;
use super::store;
use super::tools::{self, OutputFormat};
use crate::clock::rfc3339;
use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::secrets::{Engine, EngineContext};
use crate::storage::{Backend, Page};
use crate::util::names::NameRule;

const POLICY_PREFIX: &str = "policy/";
const CONFIG_KEYS: &str = "config/keys";
const CACHE_CONFIG: &str = "config/cache";
const ERR_NOT_FOUND: &str = "encryption key not found";
const ERR_SOFT_DELETED: &str = "refusing to use soft-deleted key";

/// One transit mount.
#[derive(Default)]
pub(crate) struct Transit {
    keys: RwLock<HashMap<String, Arc<TransitKey>>>,
    write: tokio::sync::Mutex<()>,
}

/// A new transit engine.
pub(crate) fn new() -> Arc<dyn Engine> {
    Arc::new(Transit::default())
}

/// OpenBao's `1 error occurred:` wrapping for errors its framework returns as 500s.
fn multierror(msg: &str) -> Error {
    Error::internal(format!("1 error occurred:\n\t* {msg}\n\n"))
}

/// The error of a single (non-batch) request: OpenBao's framework answers an internal error
/// with a 500 and its `1 error occurred:` wrapping; batch items carry the bare text.
fn single(e: Error) -> Error {
    if e.code() == ErrorCode::Internal {
        multierror(e.message())
    } else {
        e
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!("invalid key name `{name}`")));
    }
    Ok(())
}

fn sorted(map: BTreeMap<&str, Value>) -> Data {
    map.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

impl Transit {
    /// The key `name`, from memory or storage.
    pub(crate) async fn load(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<Option<Arc<TransitKey>>> {
        if let Some(k) = self.keys.read().or_else(crate::util::unpoison)?.get(name) {
            return Ok(Some(k.clone()));
        }
        check_name(name)?;
        let Some(raw) = ctx.storage.get(&format!("{POLICY_PREFIX}{name}")).await? else {
            return Ok(None);
        };
        let mut key = store::decode(&raw)?;
        key.name = name.to_string();
        let key = Arc::new(key);
        self.keys
            .write()
            .or_else(crate::util::unpoison)?
            .insert(name.to_string(), key.clone());
        Ok(Some(key))
    }

    /// A key for the typed API's fast path: `None` when it does not exist (the caller then
    /// takes the full pipeline, which may create it); soft-deleted keys are refused.
    pub(crate) async fn fast_key(
        &self,
        ctx: &EngineContext,
        name: &str,
    ) -> Result<Option<Arc<TransitKey>>> {
        check_name(name)?;
        match self.load(ctx, name).await? {
            Some(k) if k.policy.soft_deleted => Err(Error::invalid_input(ERR_SOFT_DELETED)),
            other => Ok(other),
        }
    }

    /// A key for use: missing is `encryption key not found`, soft-deleted is refused.
    async fn usable(&self, ctx: &EngineContext, name: &str) -> Result<Arc<TransitKey>> {
        let key = self
            .load(ctx, name)
            .await?
            .ok_or_else(|| Error::invalid_input(ERR_NOT_FOUND))?;
        if key.policy.soft_deleted {
            return Err(Error::invalid_input(ERR_SOFT_DELETED));
        }
        Ok(key)
    }

    async fn save(&self, ctx: &EngineContext, key: TransitKey) -> Result<Arc<TransitKey>> {
        let raw = Zeroizing::new(store::encode(&key)?);
        ctx.storage
            .put(&format!("{POLICY_PREFIX}{}", key.name), &raw)
            .await?;
        let key = Arc::new(key);
        self.keys
            .write()
            .or_else(crate::util::unpoison)?
            .insert(key.name.clone(), key.clone());
        Ok(key)
    }

    async fn forget(&self, ctx: &EngineContext, name: &str) -> Result<()> {
        ctx.storage
            .delete(&format!("{POLICY_PREFIX}{name}"))
            .await?;
        self.keys
            .write()
            .or_else(crate::util::unpoison)?
            .remove(name);
        Ok(())
    }

    async fn disable_upsert(&self, ctx: &EngineContext) -> Result<bool> {
        Ok(match ctx.storage.get(CONFIG_KEYS).await? {
            Some(raw) => serde_json::from_slice::<Value>(&raw)
                .ok()
                .and_then(|v| v.get("disable_upsert").and_then(Value::as_bool))
                .unwrap_or(false),
            None => false,
        })
    }

    /// Run the auto-rotation of every key whose period has passed (the leader's periodic
    /// work); returns the names rotated.
    pub(crate) async fn rotate_due(&self, ctx: &EngineContext) -> Result<Vec<String>> {
        let names = ctx.storage.list(POLICY_PREFIX, &Page::all()).await?;
        let now = ctx.clock.now();
        let mut rotated = Vec::new();
        for name in names {
            let _w = self.write.lock().await;
            let Some(key) = self.load(ctx, &name).await? else {
                continue;
            };
            let period = key.policy.auto_rotate_period;
            if period == 0 || key.policy.soft_deleted {
                continue;
            }
            let Some(latest) = key.versions.get(&key.latest_version) else {
                continue;
            };
            let age = (now - latest.creation_time).whole_seconds();
            if age >= i64::try_from(period).unwrap_or(i64::MAX) {
                let mut k = (*key).clone();
                k.rotate(now)?;
                self.save(ctx, k).await?;
                rotated.push(name);
            }
        }
        Ok(rotated)
    }
}

/// The `keys/:name` read response.
pub(crate) fn key_info(key: &TransitKey) -> Result<Data> {
    let t = key.key_type;
    let p = &key.policy;
    let mut m: BTreeMap<&str, Value> = BTreeMap::new();
    m.insert("allow_plaintext_backup", json!(p.allow_plaintext_backup));
    m.insert("auto_rotate_period", json!(p.auto_rotate_period));
    m.insert("deletion_allowed", json!(p.deletion_allowed));
    m.insert("derived", json!(key.derived));
    m.insert("exportable", json!(p.exportable));
    m.insert("imported_key", json!(p.imported));
    m.insert("latest_version", json!(key.latest_version));
    m.insert("min_available_version", json!(p.min_available_version));
    m.insert("min_decryption_version", json!(key.min_decryption_version));
    m.insert("min_encryption_version", json!(key.min_encryption_version));
    m.insert("name", json!(key.name));
    m.insert("soft_deleted", json!(p.soft_deleted));
    m.insert("supports_decryption", json!(t.supports_encryption()));
    m.insert("supports_derivation", json!(t.supports_derivation()));
    m.insert("supports_encryption", json!(t.supports_encryption()));
    m.insert("supports_signing", json!(t.supports_signing()));
    m.insert("type", json!(t.name()));
    if key.derived {
        m.insert("kdf", json!(key.kdf.name()));
        m.insert("convergent_encryption", json!(key.convergent_encryption));
        if key.convergent_encryption {
            m.insert(
                "convergent_encryption_version",
                json!(key.convergent_version),
            );
        }
    }
    for (field, info) in [
        ("backup_info", &p.backup_info),
        ("restore_info", &p.restore_info),
    ] {
        if let Some((time, version)) = info {
            m.insert(field, json!({"time": time, "version": version}));
        }
    }
    if t == KeyType::Hmac {
        m.insert("key_size", json!(p.key_size));
        return Ok(sorted(m));
    }
    let mut keys = serde_json::Map::new();
    if !t.is_asymmetric() {
        for (v, time) in key.version_times() {
            keys.insert(v.to_string(), json!(time));
        }
    }
    for (v, kv) in key
        .versions
        .range(key.min_decryption_version..)
        .filter(|_| t.is_asymmetric())
    {
        let value = {
            let name = match t {
                KeyType::EcdsaP256 => "P-256",
                KeyType::EcdsaP384 => "P-384",
                KeyType::EcdsaP521 => "P-521",
                other => other.name(),
            };
            json!({
                "certificate_chain": "",
                "creation_time": rfc3339(kv.creation_time),
                "name": name,
                "public_key": if key.derived { String::new() } else { kv.parsed(t)?.public_key_text()? },
            })
        };
        keys.insert(v.to_string(), value);
    }
    m.insert("keys", Value::Object(keys));
    Ok(sorted(m))
}

fn data_response(d: Data) -> Option<Response> {
    Some(Response::with_data(d))
}

/// Split `rest` into the key name and an optional trailing segment.
fn name_and_suffix(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    }
}

/// One batch item's input: the request itself when there is no `batch_input`.
/// The items of an encrypt, decrypt or rewrap call: the `batch_input` entries (at least one, with
/// consistent contexts), or the request itself. Returns whether it was a batch.
fn cipher_items(d: &Data) -> Result<(bool, Vec<Data>)> {
    let (batch, items) = match batch_items(d)? {
        Some(items) => (true, items),
        None => (false, vec![d.clone()]),
    };
    if batch && items.is_empty() {
        return Err(Error::invalid_input("missing batch input to process"));
    }
    check_contexts(&items)?;
    Ok((batch, items))
}

fn batch_items(d: &Data) -> Result<Option<Vec<Data>>> {
    match d.get("batch_input") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::Object(m) => Ok(m.clone()),
                _ => Err(Error::invalid_input(
                    "failed to parse batch input: expected a map",
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(Value::String(s)) => {
            let v: Value = serde_json::from_str(s)
                .map_err(|_| Error::invalid_input("failed to parse batch input: invalid json"))?;
            let mut d = Data::new();
            d.insert("batch_input".into(), v);
            batch_items(&d)
        }
        Some(_) => Err(Error::invalid_input(
            "failed to parse batch input: expected a list",
        )),
    }
}

/// `context should be set either in all the request blocks or in none`.
fn check_contexts(items: &[Data]) -> Result<()> {
    let set = |d: &Data| {
        d.get("context")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if let Some(first) = items.first() {
        let want = set(first);
        if items.iter().any(|d| set(d) != want) {
            return Err(Error::invalid_input(
                "context should be set either in all the request blocks or in none",
            ));
        }
    }
    Ok(())
}

/// Shape a batch answer with OpenBao's status rules: any failed item makes the response 400
/// (500 when only internal errors failed), unless `partial_failure_response_code` applies.
fn batch_response(
    req_data: &Data,
    results: Vec<Value>,
    failures: &[ErrorCode],
    ok_count: usize,
) -> Result<Option<Response>> {
    let mut d = Data::new();
    d.insert("batch_results".into(), Value::Array(results));
    let mut resp = Response::with_data(d);
    if !failures.is_empty() {
        let partial = fields::int(req_data, "partial_failure_response_code")?;
        let code = if failures.iter().all(|c| c.http_status() >= 500) {
            ErrorCode::Internal
        } else {
            ErrorCode::InvalidInput
        };
        let partial_status = partial
            .filter(|c| ok_count > 0 && (200..600).contains(c))
            .and_then(|c| u16::try_from(c).ok());
        resp.kind = crate::request::ResponseKind::BatchFailed {
            code,
            partial_status,
        };
    }
    Ok(Some(resp))
}

fn item_error(e: &Error) -> String {
    e.message().to_string()
}

fn reference(item: &Data) -> Value {
    item.get("reference").cloned().unwrap_or_else(|| json!(""))
}

#[async_trait]
impl Engine for Transit {
    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let path = req.path.as_str();
        let op = req.operation;
        let (head, rest) = path.split_once('/').unwrap_or((path, ""));
        let write = matches!(op, Operation::Create | Operation::Update);
        match (head, op) {
            ("keys", Operation::List) if rest.is_empty() => self.list_keys(ctx).await,
            ("keys", _) if !rest.is_empty() => self.keys_path(ctx, req, rest).await,
            ("encrypt", _) if write => self.encrypt(ctx, req, rest).await,
            ("decrypt", _) if write => self.decrypt(ctx, req, rest).await,
            ("rewrap", _) if write => self.rewrap(ctx, req, rest).await,
            ("datakey", _) if write => self.datakey(ctx, req, rest).await,
            ("hmac", _) if write => self.hmac(ctx, req, rest).await,
            ("sign", _) if write => self.sign(ctx, req, rest).await,
            ("verify", _) if write => self.verify(ctx, req, rest).await,
            ("export", Operation::Read) => self.export(ctx, rest).await,
            ("backup", Operation::Read) => self.backup(ctx, rest).await,
            ("restore", _) if write => self.restore(ctx, req, rest).await,
            ("hash", _) if write => hash(req, rest),
            ("random", _) if write => random(req, rest),
            ("config", _) if rest == "keys" => self.config_keys(ctx, req).await,
            ("cache-config", _) => cache_config(ctx, req).await,
            _ if !write && !matches!(op, Operation::Read | Operation::List | Operation::Delete) => {
                Err(Error::unsupported_operation())
            }
            _ => Err(Error::unsupported_path(path)),
        }
    }

    fn as_transit(&self) -> Option<&Transit> {
        Some(self)
    }

    fn name_rules(&self) -> &'static [NameRule] {
        // Key names are case-sensitive and match OpenBao's `GenericNameRegex`.
        const RULES: &[NameRule] = &[
            NameRule::exact("keys/"),
            NameRule::exact("encrypt/"),
            NameRule::exact("decrypt/"),
            NameRule::exact("rewrap/"),
            NameRule::exact("hmac/"),
            NameRule::exact("sign/"),
            NameRule::exact("verify/"),
            NameRule::exact("backup/"),
            NameRule::exact("restore/"),
            NameRule::exact("datakey/plaintext/"),
            NameRule::exact("datakey/wrapped/"),
            NameRule::exact("export/encryption-key/"),
            NameRule::exact("export/signing-key/"),
            NameRule::exact("export/hmac-key/"),
            NameRule::exact("export/public-key/"),
            NameRule::exact("export/certificate-chain/"),
        ];
        RULES
    }

    async fn periodic(&self, ctx: &EngineContext) -> Result<()> {
        self.rotate_due(ctx).await.map(|_| ())
    }

    async fn exists(&self, ctx: &EngineContext, req: &Request) -> Result<Option<bool>> {
        let path = req.path.as_str();
        let name = if let Some(n) = path.strip_prefix("keys/") {
            n
        } else if let Some(n) = path.strip_prefix("encrypt/") {
            n
        } else {
            return Ok(None);
        };
        if name.is_empty() || name.contains('/') || check_name(name).is_err() {
            return Ok(None);
        }
        Ok(Some(self.load(ctx, name).await?.is_some()))
    }
}

impl Transit {
    async fn list_keys(&self, ctx: &EngineContext) -> Result<Option<Response>> {
        let keys = ctx.storage.list(POLICY_PREFIX, &Page::all()).await?;
        if keys.is_empty() {
            return Ok(None);
        }
        let mut d = Data::new();
        d.insert(
            "keys".into(),
            Value::Array(keys.into_iter().map(Value::String).collect()),
        );
        Ok(data_response(d))
    }

    async fn keys_path(
        &self,
        ctx: &EngineContext,
        req: &Request,
        rest: &str,
    ) -> Result<Option<Response>> {
        let (name, suffix) = name_and_suffix(rest);
        check_name(name)?;
        let write = matches!(req.operation, Operation::Create | Operation::Update);
        match (suffix, req.operation) {
            (None, Operation::Read) => match self.load(ctx, name).await? {
                Some(k) => Ok(data_response(key_info(&k)?)),
                None => Ok(None),
            },
            (None, _) if write => self.create_key(ctx, req, name).await,
            (None, Operation::Delete) => self.delete_key(ctx, name).await,
            (Some("config"), _) if write => self.config_key(ctx, req, name).await,
            (Some("rotate"), _) if write => {
                let _w = self.write.lock().await;
                let key = self.usable(ctx, name).await?;
                let mut k = (*key).clone();
                k.rotate(ctx.clock.now())?;
                let k = self.save(ctx, k).await?;
                Ok(data_response(key_info(&k)?))
            }
            (Some("trim"), _) if write => self.trim(ctx, req, name).await,
            (Some("soft-delete"), Operation::Delete) | (Some("soft-delete"), _)
                if write || req.operation == Operation::Delete =>
            {
                self.set_soft_deleted(ctx, name, true).await
            }
            (Some("soft-delete-restore"), _) if write => {
                self.set_soft_deleted(ctx, name, false).await
            }
            (Some(_), Operation::Read | Operation::List | Operation::Delete) | (Some(_), _) => {
                Err(Error::unsupported_path(&format!("keys/{rest}")))
            }
            _ => Err(Error::unsupported_operation()),
        }
    }

    async fn create_key(
        &self,
        ctx: &EngineContext,
        req: &Request,
        name: &str,
    ) -> Result<Option<Response>> {
        let d = &req.data;
        let type_name = fields::string(d, "type")?;
        let key_type = if type_name.is_empty() {
            KeyType::Aes256Gcm96
        } else {
            KeyType::parse(&type_name)?
        };
        let derived = fields::boolean(d, "derived")?.unwrap_or(false);
        let convergent = fields::boolean(d, "convergent_encryption")?.unwrap_or(false);
        let key_size = fields::int(d, "key_size")?.unwrap_or(0);
        let period = fields::duration_secs(d, "auto_rotate_period")?.unwrap_or(0);
        if period != 0 && period < 3600 {
            return Err(Error::invalid_input(
                "auto rotate period must be 0 to disable or at least an hour",
            ));
        }
        if key_type == KeyType::Hmac && !(32..=512).contains(&key_size) {
            return Err(multierror(
                "invalid key size for HMAC key, must be between 32 and 512 bytes",
            ));
        }
        if key_type != KeyType::Hmac && key_size != 0 {
            return Err(Error::invalid_input(format!(
                "key_size is not valid for algorithm {key_type}"
            )));
        }
        let _w = self.write.lock().await;
        if let Some(existing) = self.load(ctx, name).await? {
            let mut resp = Response::with_data(key_info(&existing)?);
            resp.warn(format!("key {name} already existed"));
            return Ok(Some(resp));
        }
        let opts = KeyOptions {
            derived,
            convergent_encryption: convergent,
            key_size: (key_type == KeyType::Hmac).then_some(key_size as usize),
        };
        let mut key = TransitKey::new(name, key_type, opts, ctx.clock.now())?;
        key.policy.exportable = fields::boolean(d, "exportable")?.unwrap_or(false);
        key.policy.allow_plaintext_backup =
            fields::boolean(d, "allow_plaintext_backup")?.unwrap_or(false);
        key.policy.auto_rotate_period = period;
        let key = self.save(ctx, key).await?;
        Ok(data_response(key_info(&key)?))
    }

    async fn delete_key(&self, ctx: &EngineContext, name: &str) -> Result<Option<Response>> {
        let _w = self.write.lock().await;
        let Some(key) = self.load(ctx, name).await? else {
            return Err(Error::invalid_input(format!(
                "error deleting policy {name}: could not delete key; not found"
            )));
        };
        if !key.policy.deletion_allowed {
            return Err(Error::invalid_input(format!(
                "error deleting policy {name}: deletion is not allowed for this key"
            )));
        }
        self.forget(ctx, name).await?;
        Ok(None)
    }

    async fn config_key(
        &self,
        ctx: &EngineContext,
        req: &Request,
        name: &str,
    ) -> Result<Option<Response>> {
        let d = &req.data;
        let _w = self.write.lock().await;
        let key = self.usable(ctx, name).await?;
        let mut k = (*key).clone();
        let limits = k.check_version_limits(
            fields::int(d, "min_decryption_version")?,
            fields::int(d, "min_encryption_version")?,
        )?;
        if let Some(period) = fields::duration_secs(d, "auto_rotate_period")? {
            if period != 0 && period < 3600 {
                return Err(Error::invalid_input(
                    "auto rotate period must be 0 to disable or at least an hour",
                ));
            }
            k.policy.auto_rotate_period = period;
        }
        if let Some(v) = fields::boolean(d, "deletion_allowed")? {
            k.policy.deletion_allowed = v;
        }
        // Once on, exportable and allow_plaintext_backup stay on; a `false` is ignored.
        if fields::boolean(d, "exportable")? == Some(true) {
            k.policy.exportable = true;
        }
        if fields::boolean(d, "allow_plaintext_backup")? == Some(true) {
            k.policy.allow_plaintext_backup = true;
        }
        k.apply_version_limits(&limits);
        let k = self.save(ctx, k).await?;
        let mut resp = Response::with_data(key_info(&k)?);
        for w in limits.warnings {
            resp.warn(w);
        }
        Ok(Some(resp))
    }

    async fn trim(
        &self,
        ctx: &EngineContext,
        req: &Request,
        name: &str,
    ) -> Result<Option<Response>> {
        let _w = self.write.lock().await;
        let key = self.usable(ctx, name).await?;
        let min = fields::int(&req.data, "min_available_version")?.unwrap_or(0);
        if min <= 0 {
            return Err(Error::invalid_input(
                "minimum available version should be positive",
            ));
        }
        if key.min_encryption_version == 0 {
            return Err(Error::invalid_input(
                "minimum available version cannot be set when minimum encryption version is not set",
            ));
        }
        if key.min_decryption_version == 0 {
            return Err(Error::invalid_input(
                "minimum available version cannot be set when minimum decryption version is not set",
            ));
        }
        if min > i64::from(key.min_encryption_version) {
            return Err(Error::invalid_input(
                "minimum available version cannot be greater than minimmum encryption version",
            ));
        }
        if min > i64::from(key.min_decryption_version) {
            return Err(Error::invalid_input(
                "minimum available version cannot be greater than minimum decryption version",
            ));
        }
        let min = u32::try_from(min).map_err(|_| Error::invalid_input("invalid version"))?;
        if min < key.policy.min_available_version {
            return Err(Error::invalid_input(
                "minimum available version cannot be decremented",
            ));
        }
        let mut k = (*key).clone();
        k.versions.retain(|v, _| *v >= min);
        k.policy.min_available_version = min;
        let k = self.save(ctx, k).await?;
        Ok(data_response(key_info(&k)?))
    }

    async fn set_soft_deleted(
        &self,
        ctx: &EngineContext,
        name: &str,
        deleted: bool,
    ) -> Result<Option<Response>> {
        let _w = self.write.lock().await;
        let key = self
            .load(ctx, name)
            .await?
            .ok_or_else(|| Error::invalid_input(ERR_NOT_FOUND))?;
        let mut k = (*key).clone();
        k.policy.soft_deleted = deleted;
        self.save(ctx, k).await?;
        Ok(None)
    }

    /// The key for `encrypt/:name`, created on first use unless upsert is disabled.
    async fn key_for_encrypt(
        &self,
        ctx: &EngineContext,
        req: &Request,
        name: &str,
        items: &[Data],
    ) -> Result<Arc<TransitKey>> {
        if let Some(k) = self.load(ctx, name).await? {
            if k.policy.soft_deleted {
                return Err(Error::invalid_input(ERR_SOFT_DELETED));
            }
            return Ok(k);
        }
        if self.disable_upsert(ctx).await? {
            return Err(Error::invalid_input(ERR_NOT_FOUND));
        }
        if req.operation != Operation::Create {
            // The pipeline's existence check said the key existed; it vanished since.
            return Err(Error::invalid_input(ERR_NOT_FOUND));
        }
        let d = &req.data;
        let type_name = fields::string(d, "type")?;
        let key_type = if type_name.is_empty() {
            KeyType::Aes256Gcm96
        } else {
            KeyType::parse(&type_name)?
        };
        let derived = items
            .first()
            .and_then(|i| i.get("context"))
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty());
        let convergent = fields::boolean(d, "convergent_encryption")?.unwrap_or(false);
        let _w = self.write.lock().await;
        if let Some(k) = self.load(ctx, name).await? {
            return Ok(k);
        }
        let key = TransitKey::new(
            name,
            key_type,
            KeyOptions {
                derived,
                convergent_encryption: convergent,
                key_size: None,
            },
            ctx.clock.now(),
        )?;
        self.save(ctx, key).await
    }

    async fn encrypt(
        &self,
        ctx: &EngineContext,
        req: &Request,
        name: &str,
    ) -> Result<Option<Response>> {
        check_name(name)?;
        let (batch, items) = cipher_items(&req.data)?;
        let key = self.key_for_encrypt(ctx, req, name, &items).await?;
        let mut results = Vec::with_capacity(items.len());
        let mut failures = Vec::new();
        for item in &items {
            let r = encrypt_item(&key, item);
            match r {
                Ok((ct, v)) => {
                    if !batch {
                        let mut d = Data::new();
                        d.insert("ciphertext".into(), json!(ct));
                        d.insert("key_version".into(), json!(v));
                        return Ok(data_response(d));
                    }
                    results.push(
                        json!({"ciphertext": ct, "key_version": v, "reference": reference(item)}),
                    );
                }
                Err(e) if !batch => return Err(e),
                Err(e) => {
                    failures.push(e.code());
                    results.push(json!({"error": item_error(&e), "reference": reference(item)}));
                }
            }
        }
        let ok = results.len() - failures.len();
        batch_response(&req.data, results, &failures, ok)
    }

    async fn decrypt(
        &self,
        ctx: &EngineContext,
        req: &Request,
        name: &str,
    ) -> Result<Option<Response>> {
        check_name(name)?;
        let (batch, items) = cipher_items(&req.data)?;
        let key = self.usable(ctx, name).await?;
        let mut results = Vec::with_capacity(items.len());
        let mut failures = Vec::new();
        for item in &items {
            match decrypt_item(&key, item) {
                Ok(pt) => {
                    let text = base64::encode(&pt);
                    if !batch {
                        let mut d = Data::new();
                        d.insert("plaintext".into(), json!(text));
                        return Ok(data_response(d));
                    }
                    results.push(json!({"plaintext": text, "reference": reference(item)}));
                }
                Err(e) if !batch => return Err(single(e)),
                Err(e) => {
                    failures.push(e.code());
                    results.push(json!({"plaintext": "", "error": item_error(&e), "reference": reference(item)}));
                }
            }
        }
        let ok = results.len() - failures.len();
        batch_response(&req.data, results, &failures, ok)
    }

    async fn rewrap(
        &self,
        ctx: &EngineContext,
        req: &Request,
        name: &str,
    ) -> Result<Option<Response>> {
        check_name(name)?;
        let (batch, items) = cipher_items(&req.data)?;
        let key = self.usable(ctx, name).await?;
        let mut results = Vec::with_capacity(items.len());
        let mut failures = Vec::new();
        for item in &items {
            let r = (|| {
                let ct = fields::str_ref(item, "ciphertext")?;
                if ct.is_empty() {
                    return Err(Error::invalid_input("missing ciphertext to decrypt"));
                }
                let context = fields::b64(item, "context").map_err(|e| {
                    Error::invalid_input(format!(
                        "failed to base64-decode context: {}",
                        e.message()
                    ))
                })?;
                let version = fields::int(item, "key_version")?.unwrap_or(0);
                key.rewrap(&ct, &context, version)
            })();
            match r {
                Ok(enc) => {
                    if !batch {
                        let mut d = Data::new();
                        d.insert("ciphertext".into(), json!(enc.ciphertext));
                        d.insert("key_version".into(), json!(enc.key_version));
                        return Ok(data_response(d));
                    }
                    results.push(json!({"ciphertext": enc.ciphertext, "key_version": enc.key_version, "reference": reference(item)}));
                }
                Err(e) if !batch => return Err(e),
                Err(e) => {
                    failures.push(e.code());
                    results.push(json!({"error": item_error(&e), "reference": reference(item)}));
                }
            }
        }
        let ok = results.len() - failures.len();
        batch_response(&req.data, results, &failures, ok)
    }

    async fn datakey(
        &self,
        ctx: &EngineContext,
        req: &Request,
        rest: &str,
    ) -> Result<Option<Response>> {
        let (kind, name) = rest
            .split_once('/')
            .ok_or_else(|| Error::unsupported_path(&format!("datakey/{rest}")))?;
        check_name(name)?;
        let with_plaintext = match kind {
            "plaintext" => true,
            "wrapped" => false,
            _ => {
                return Err(Error::invalid_input(
                    "Invalid path, must be 'plaintext' or 'wrapped'",
                ));
            }
        };
        let key = self.usable(ctx, name).await?;
        let d = &req.data;
        let context = fields::b64(d, "context").map_err(|e| {
            Error::invalid_input(format!("failed to base64-decode context: {}", e.message()))
        })?;
        let bits = fields::int(d, "bits")?.unwrap_or(256);
        let bits = u32::try_from(bits).map_err(|_| Error::invalid_input("invalid bit length"))?;
        let version = fields::int(d, "key_version")?.unwrap_or(0);
        let (plaintext, wrapped) = key.data_key(bits, &context, version)?;
        let mut out = Data::new();
        out.insert("ciphertext".into(), json!(wrapped.ciphertext));
        out.insert("key_version".into(), json!(wrapped.key_version));
        if with_plaintext {
            out.insert("plaintext".into(), json!(base64::encode(&plaintext)));
        }
        Ok(data_response(out))
    }

    async fn hmac(
        &self,
        ctx: &EngineContext,
        req: &Request,
        rest: &str,
    ) -> Result<Option<Response>> {
        let (name, algo) = name_and_suffix(rest);
        check_name(name)?;
        let d = &req.data;
        let algo_name = match algo {
            Some(a) => a.to_string(),
            None => {
                let a = fields::string(d, "algorithm")?;
                if a.is_empty() {
                    "sha2-256".to_string()
                } else {
                    a
                }
            }
        };
        let algorithm = HmacAlgorithm::parse(&algo_name)?;
        let key = self.usable(ctx, name).await?;
        let version = fields::int(d, "key_version")?.unwrap_or(0);
        let (batch, items) = match batch_items(d)? {
            Some(items) => (true, items),
            None => (false, vec![d.clone()]),
        };
        let mut results = Vec::with_capacity(items.len());
        for item in &items {
            let r = (|| {
                let input = fields::b64(item, "input").map_err(|e| {
                    Error::invalid_input(format!(
                        "unable to decode input as base64: {}",
                        e.message()
                    ))
                })?;
                key.hmac(&input, algorithm, version)
            })();
            match r {
                Ok(mac) if !batch => {
                    let mut out = Data::new();
                    out.insert("hmac".into(), json!(mac));
                    return Ok(data_response(out));
                }
                Ok(mac) => results.push(json!({"hmac": mac, "reference": reference(item)})),
                Err(e) if !batch => return Err(e),
                Err(e) => {
                    results.push(json!({"error": item_error(&e), "reference": reference(item)}))
                }
            }
        }
        let mut out = Data::new();
        out.insert("batch_results".into(), Value::Array(results));
        Ok(data_response(out))
    }

    async fn sign(
        &self,
        ctx: &EngineContext,
        req: &Request,
        rest: &str,
    ) -> Result<Option<Response>> {
        let (name, algo) = name_and_suffix(rest);
        check_name(name)?;
        let d = &req.data;
        let key = self.usable(ctx, name).await?;
        // OpenBao refuses a key that does not sign before it reads the options.
        if !key.key_type.supports_signing() {
            return Err(Error::invalid_input(format!(
                "key type {} does not support signing",
                key.key_type
            )));
        }
        let opts = sign_options(d, algo, key.key_type).map_err(single)?;
        let version = fields::int(d, "key_version")?.unwrap_or(0);
        let (batch, items) = match batch_items(d)? {
            Some(items) => (true, items),
            None => (false, vec![d.clone()]),
        };
        let mut results = Vec::with_capacity(items.len());
        for item in &items {
            let r = (|| {
                let input = fields::b64(item, "input").map_err(|e| {
                    Error::invalid_input(format!(
                        "unable to decode input as base64: {}",
                        e.message()
                    ))
                })?;
                let context = fields::b64(item, "context").map_err(|e| {
                    Error::invalid_input(format!(
                        "failed to base64-decode context: {}",
                        e.message()
                    ))
                })?;
                key.sign(&input, &context, &opts, version)
            })();
            match r {
                Ok((sig, v)) if !batch => {
                    let mut out = Data::new();
                    out.insert("key_version".into(), json!(v));
                    out.insert("signature".into(), json!(sig));
                    return Ok(data_response(out));
                }
                Ok((sig, v)) => results.push(json!({"signature": sig, "key_version": v, "reference": reference(item)})),
                Err(e) if !batch => return Err(single(e)),
                Err(e) => results.push(json!({"key_version": 0, "error": item_error(&e), "reference": reference(item)})),
            }
        }
        let mut out = Data::new();
        out.insert("batch_results".into(), Value::Array(results));
        Ok(data_response(out))
    }

    async fn verify(
        &self,
        ctx: &EngineContext,
        req: &Request,
        rest: &str,
    ) -> Result<Option<Response>> {
        let (name, algo) = name_and_suffix(rest);
        check_name(name)?;
        let d = &req.data;
        let key = self.usable(ctx, name).await?;
        let (batch, items) = match batch_items(d)? {
            Some(items) => (true, items),
            None => (false, vec![d.clone()]),
        };
        let mut results = Vec::with_capacity(items.len());
        for item in &items {
            let r = (|| {
                let input = fields::b64(item, "input").map_err(|e| {
                    Error::invalid_input(format!(
                        "unable to decode input as base64: {}",
                        e.message()
                    ))
                })?;
                let sig = fields::str_ref(item, "signature")?;
                let mac = fields::str_ref(item, "hmac")?;
                match (sig.is_empty(), mac.is_empty()) {
                    (false, false) => Err(Error::invalid_input(
                        "provide one of 'signature' or 'hmac', not both",
                    )),
                    (true, true) => Err(Error::invalid_input(
                        "neither a 'signature' nor an 'hmac' were given to verify",
                    )),
                    (true, false) => {
                        let algo_name = match algo {
                            Some(a) => a.to_string(),
                            None => {
                                let a = fields::string(d, "hash_algorithm")?;
                                let a = if a.is_empty() {
                                    fields::string(d, "algorithm")?
                                } else {
                                    a
                                };
                                if a.is_empty() {
                                    "sha2-256".to_string()
                                } else {
                                    a
                                }
                            }
                        };
                        key.verify_hmac(&input, &mac, HmacAlgorithm::parse_for_verify(&algo_name)?)
                    }
                    (false, true) => {
                        // As on sign, the key type is checked before the options.
                        if !key.key_type.supports_signing() {
                            return Err(Error::invalid_input(format!(
                                "key type {} does not support verification",
                                key.key_type
                            )));
                        }
                        let opts = sign_options(d, algo, key.key_type)?;
                        let context = fields::b64(item, "context").map_err(|e| {
                            Error::invalid_input(format!(
                                "failed to base64-decode context: {}",
                                e.message()
                            ))
                        })?;
                        key.verify_signature(&input, &sig, &context, &opts)
                    }
                }
            })();
            match r {
                Ok(valid) if !batch => {
                    let mut out = Data::new();
                    out.insert("valid".into(), json!(valid));
                    return Ok(data_response(out));
                }
                Ok(valid) => results.push(json!({"valid": valid, "reference": reference(item)})),
                Err(e) if !batch => return Err(single(e)),
                Err(e) => results.push(
                    json!({"valid": false, "error": item_error(&e), "reference": reference(item)}),
                ),
            }
        }
        let mut out = Data::new();
        out.insert("batch_results".into(), Value::Array(results));
        Ok(data_response(out))
    }

    async fn export(&self, ctx: &EngineContext, rest: &str) -> Result<Option<Response>> {
        let mut parts = rest.splitn(3, '/');
        let kind = parts.next().unwrap_or_default();
        let name = parts.next().unwrap_or_default();
        let version = parts.next();
        if !matches!(
            kind,
            "encryption-key" | "signing-key" | "hmac-key" | "public-key"
        ) {
            return Err(Error::invalid_input(format!("invalid export type: {kind}")));
        }
        check_name(name)?;
        let Some(key) = self.load(ctx, name).await? else {
            return Ok(None);
        };
        let t = key.key_type;
        if kind != "public-key" && !key.policy.exportable {
            return Err(Error::invalid_input(
                "private key material is not exportable",
            ));
        }
        match kind {
            "encryption-key" if !t.supports_encryption() => {
                return Err(Error::invalid_input("encryption not supported for the key"));
            }
            "signing-key" if !t.supports_signing() => {
                return Err(Error::invalid_input("signing not supported for the key"));
            }
            "public-key" if !t.is_asymmetric() => {
                return Err(multierror(&format!(
                    "unknown key type {t} for export type public-key"
                )));
            }
            _ => {}
        }
        let export_one = |kv: &super::key::KeyVersion| -> Result<String> {
            let text = match kind {
                "hmac-key" => base64::encode(&kv.hmac_key),
                "public-key" => kv.parsed(t)?.public_key_text()?,
                _ if t.is_asymmetric() => kv.parsed(t)?.private_key_text(&kv.key)?,
                _ => base64::encode(&kv.key),
            };
            // OpenBao trims the final newline of ECDSA PEM exports (and only those).
            Ok(if t.is_ecdsa() {
                text.trim_end_matches('\n').to_string()
            } else {
                text
            })
        };
        let mut keys = serde_json::Map::new();
        match version {
            None | Some("") => {
                for (v, kv) in key.versions.range(key.min_decryption_version..) {
                    keys.insert(v.to_string(), json!(export_one(kv)?));
                }
            }
            Some(v) => {
                let n: u32 = if v == "latest" {
                    key.latest_version
                } else {
                    v.parse()
                        .map_err(|_| Error::invalid_input("version could not be parsed"))?
                };
                if n < key.min_decryption_version {
                    return Err(Error::invalid_input(
                        "version for export is below minimum decryption version",
                    ));
                }
                let kv = key.versions.get(&n).ok_or_else(|| {
                    Error::invalid_input("version does not exist or cannot be found")
                })?;
                keys.insert(n.to_string(), json!(export_one(kv)?));
            }
        }
        let mut out = Data::new();
        out.insert("keys".into(), Value::Object(keys));
        out.insert("name".into(), json!(key.name));
        out.insert("type".into(), json!(t.name()));
        Ok(data_response(out))
    }

    async fn backup(&self, ctx: &EngineContext, name: &str) -> Result<Option<Response>> {
        check_name(name)?;
        let _w = self.write.lock().await;
        let key = self
            .load(ctx, name)
            .await?
            .ok_or_else(|| multierror(&format!("key {name:?} not found")))?;
        if !key.policy.exportable || !key.policy.allow_plaintext_backup {
            return Err(multierror("exporting is disallowed on the policy"));
        }
        let mut k = (*key).clone();
        k.policy.backup_info = Some((rfc3339(ctx.clock.now()), k.latest_version));
        let text = Zeroizing::new(store::backup(&k)?);
        self.save(ctx, k).await?;
        let mut out = Data::new();
        out.insert("backup".into(), json!(text.as_str()));
        Ok(data_response(out))
    }

    async fn restore(
        &self,
        ctx: &EngineContext,
        req: &Request,
        name: &str,
    ) -> Result<Option<Response>> {
        let d = &req.data;
        let backup = fields::string(d, "backup")?;
        if backup.is_empty() {
            return Err(Error::invalid_input("'backup' must be supplied"));
        }
        let force = fields::boolean(d, "force")?.unwrap_or(false);
        let name = (!name.is_empty()).then_some(name);
        if let Some(n) = name {
            check_name(n)?;
        }
        let mut key = store::restore(&backup, name)?;
        check_name(&key.name)?;
        let _w = self.write.lock().await;
        if !force && self.load(ctx, &key.name).await?.is_some() {
            return Err(multierror(&format!("key {:?} already exists", key.name)));
        }
        key.policy.restore_info = Some((rfc3339(ctx.clock.now()), key.latest_version));
        self.save(ctx, key).await?;
        Ok(None)
    }

    async fn config_keys(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let mut current = self.disable_upsert(ctx).await?;
        if matches!(req.operation, Operation::Create | Operation::Update) {
            if let Some(v) = fields::boolean(&req.data, "disable_upsert")? {
                current = v;
            }
            let raw = serde_json::to_vec(&json!({"disable_upsert": current}))
                .map_err(|e| Error::internal("cannot encode config").with_source(e))?;
            ctx.storage.put(CONFIG_KEYS, &raw).await?;
        } else if req.operation != Operation::Read {
            return Err(Error::unsupported_operation());
        }
        let mut out = Data::new();
        out.insert("disable_upsert".into(), json!(current));
        Ok(data_response(out))
    }
}

/// `cache-config`: OpenBao's key-cache size. Keys here are always cached, so the size is
/// recorded and reported but bounds nothing.
async fn cache_config(ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
    let stored = ctx
        .storage
        .get(CACHE_CONFIG)
        .await?
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
        .and_then(|v| v.get("size").and_then(Value::as_i64))
        .unwrap_or(0);
    match req.operation {
        Operation::Read => {
            let mut out = Data::new();
            out.insert("size".into(), json!(stored));
            Ok(data_response(out))
        }
        Operation::Create | Operation::Update => {
            let size = fields::int(&req.data, "size")?.unwrap_or(0);
            if size != 0 && size < 10 {
                return Err(Error::invalid_input(
                    "size must be 0 or a value greater or equal to 10",
                ));
            }
            let raw = serde_json::to_vec(&json!({"size": size}))
                .map_err(|e| Error::internal("cannot encode config").with_source(e))?;
            ctx.storage.put(CACHE_CONFIG, &raw).await?;
            let mut resp = Response::default();
            resp.warn("cache configurations will be applied when this backend is restarted");
            Ok(Some(resp))
        }
        _ => Err(Error::unsupported_operation()),
    }
}

fn encrypt_item(key: &TransitKey, item: &Data) -> Result<(String, u32)> {
    let plaintext = fields::b64(item, "plaintext")?;
    let context = fields::b64(item, "context").map_err(|e| {
        Error::invalid_input(format!("failed to base64-decode context: {}", e.message()))
    })?;
    let aad = fields::b64(item, "associated_data").map_err(|e| {
        Error::invalid_input(format!(
            "failed to base64-decode associated_data: {}",
            e.message()
        ))
    })?;
    let version = fields::int(item, "key_version")?.unwrap_or(0);
    let enc = key.encrypt(&plaintext, &context, &aad, version)?;
    Ok((enc.ciphertext, enc.key_version))
}

fn decrypt_item(key: &TransitKey, item: &Data) -> Result<Zeroizing<Vec<u8>>> {
    let ct = fields::str_ref(item, "ciphertext")?;
    if ct.is_empty() {
        return Err(Error::invalid_input("missing ciphertext to decrypt"));
    }
    let context = fields::b64(item, "context").map_err(|e| {
        Error::invalid_input(format!("failed to base64-decode context: {}", e.message()))
    })?;
    let aad = fields::b64(item, "associated_data").map_err(|e| {
        Error::invalid_input(format!(
            "failed to base64-decode associated_data: {}",
            e.message()
        ))
    })?;
    key.decrypt(&ct, &context, &aad)
}

/// A string field with the schema's default when absent. An explicit `""` (or `null`) stays
/// `""`, which OpenBao refuses for `marshaling_algorithm` and `salt_length`.
fn string_or(d: &Data, k: &str, default: &str) -> Result<String> {
    if d.contains_key(k) {
        fields::string(d, k)
    } else {
        Ok(default.to_string())
    }
}

/// The signature options of a `sign`/`verify` request, checked in OpenBao's order. The
/// caller has checked that the key signs.
fn sign_options(d: &Data, algo: Option<&str>, t: KeyType) -> Result<SignOptions> {
    let hash_name = match algo {
        Some(a) => a.to_string(),
        None => {
            let h = fields::string(d, "hash_algorithm")?;
            let h = if h.is_empty() {
                fields::string(d, "algorithm")?
            } else {
                h
            };
            if h.is_empty() {
                "sha2-256".to_string()
            } else {
                h
            }
        }
    };
    let hash = HashAlgorithm::parse(&hash_name)?;
    let prehashed = fields::boolean(d, "prehashed")?.unwrap_or(false);
    let sig_alg = string_or(d, "signature_algorithm", "pss")?;
    let pkcs1v15 = match sig_alg.as_str() {
        "" | "pss" => false,
        "pkcs1v15" => true,
        // OpenBao refuses it from the key's signing code, hence a 500.
        other if t.is_rsa() => {
            return Err(Error::internal(format!(
                "unsupported rsa signature algorithm {other}"
            )));
        }
        _ => false,
    };
    // ed25519 signs the input itself: OpenBao ignores the hash options for it.
    if hash == HashAlgorithm::None && t != KeyType::Ed25519 && !(prehashed && pkcs1v15) {
        return Err(Error::invalid_input(
            "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
        ));
    }
    let marshaling = string_or(d, "marshaling_algorithm", "asn1")?;
    // `jws` is base64url of the raw signature for every key type; only ECDSA's raw form
    // (r ‖ s instead of ASN.1) differs.
    let jws = match marshaling.as_str() {
        "asn1" => false,
        "jws" => true,
        other => {
            return Err(Error::invalid_input(format!(
                "invalid marshaling type {other:?}"
            )));
        }
    };
    let salt = SaltLength::parse(&string_or(d, "salt_length", "auto")?)?;
    Ok(SignOptions {
        hash,
        prehashed,
        pkcs1v15,
        jws,
        salt,
    })
}

fn output_format(d: &Data, default: OutputFormat) -> Result<OutputFormat> {
    let f = fields::string(d, "format")?;
    if f.is_empty() {
        Ok(default)
    } else {
        OutputFormat::parse(&f)
    }
}

/// `hash[/:algorithm]`.
pub(crate) fn hash(req: &Request, rest: &str) -> Result<Option<Response>> {
    let d = &req.data;
    let algo = if rest.is_empty() {
        let a = fields::string(d, "algorithm")?;
        if a.is_empty() {
            "sha2-256".to_string()
        } else {
            a
        }
    } else {
        rest.to_string()
    };
    let input = fields::b64(d, "input").map_err(|e| {
        Error::invalid_input(format!("unable to decode input as base64: {}", e.message()))
    })?;
    let sum = tools::hash(&algo, &input, output_format(d, OutputFormat::Hex)?)?;
    let mut out = Data::new();
    out.insert("sum".into(), json!(sum));
    Ok(data_response(out))
}

/// `random[/:source][/:bytes]`.
pub(crate) fn random(req: &Request, rest: &str) -> Result<Option<Response>> {
    let d = &req.data;
    let mut bytes = fields::int(d, "bytes")?.unwrap_or(32);
    for seg in rest.split('/').filter(|s| !s.is_empty()) {
        match seg {
            "platform" | "all" | "seal" => {}
            n => {
                bytes = n.parse().map_err(|_| {
                    Error::invalid_input(format!("error parsing url-set byte count: {n}"))
                })?;
            }
        }
    }
    if bytes < 1 {
        return Err(Error::invalid_input("'bytes' cannot be less than 1"));
    }
    let bytes = usize::try_from(bytes).map_err(|_| Error::invalid_input("invalid byte count"))?;
    let value = tools::random(bytes, output_format(d, OutputFormat::Base64)?)?;
    let mut out = Data::new();
    out.insert("random_bytes".into(), json!(value));
    Ok(data_response(out))
}
