//! [`Client`]: a token-scoped handle with typed accessors. Every method builds a [`Request`] and
//! runs it through [`Strongroom::handle`], so policy, audit and leases apply exactly as over HTTP.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroize;

use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response, ResponseKind, WrapInfo};
use crate::strongroom::Strongroom;

mod auth;
mod database;
mod gates;
mod leases;
mod pki;
mod pki_keeper;
mod tokens;
mod transit;
pub use auth::{AppRole, AuthMethods, Kubernetes, SecretId, Userpass};
pub use database::{
    CredentialKeeper, Database, DbCredential, KeeperAction, KeeperTask, KeeperUpdates,
    StaticCredential,
};
pub use leases::{LeaseDetails, Leases, RenewedLease, Subscription};
pub use pki::{CertificateRecord, IssuedCertificate, Pki};
pub use pki_keeper::{CertEvent, CertKeeper, CertKeeperAction, KeeperOptions, KeeperResolver};
pub use tokens::{TokenInfo, TokenRequest, Tokens};
pub use transit::{Ciphertext, DataKey, EncryptOptions, KeyConfig, Plaintext, Transit};

use gates::Gates;

/// A handle that makes calls with one token.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use strongroom::{Config, Strongroom, data};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let client = sr.client(sr.dev_root_token().unwrap_or_default());
/// client.sys().enable_mount("kv1", "kv", &[("version", "1")]).await?;
/// client.write("kv1/app", data(serde_json::json!({"user": "app"}))).await?;
/// let read = client.read("kv1/app").await?.expect("just written");
/// assert_eq!(read.get("user").and_then(|v| v.as_str()), Some("app"));
/// assert_eq!(client.list("kv1").await?, vec!["app"]);
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Client {
    sr: Strongroom,
    token: SecretString,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A token handed to [`Strongroom::client`] or [`Request::with_token`]: a `&str`, a `String`
/// (or a reference to one), or a [`SecretString`] (or a reference to one, such as
/// `&auth.client_token`). Implemented for those types only.
pub trait IntoSecretString: sealed::Sealed {
    /// The value as a [`SecretString`].
    fn into_secret_string(self) -> SecretString;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
    impl Sealed for secrecy::SecretString {}
    impl Sealed for &secrecy::SecretString {}
}

impl IntoSecretString for &str {
    fn into_secret_string(self) -> SecretString {
        SecretString::from(self)
    }
}

impl IntoSecretString for String {
    fn into_secret_string(self) -> SecretString {
        SecretString::from(self)
    }
}

impl IntoSecretString for &String {
    fn into_secret_string(self) -> SecretString {
        SecretString::from(self.as_str())
    }
}

impl IntoSecretString for SecretString {
    fn into_secret_string(self) -> SecretString {
        self
    }
}

impl IntoSecretString for &SecretString {
    fn into_secret_string(self) -> SecretString {
        self.clone()
    }
}

impl Client {
    pub(crate) fn new(sr: Strongroom, token: SecretString) -> Client {
        Client { sr, token }
    }

    /// Run `req` with this client's token.
    pub async fn handle(&self, mut req: Request) -> Result<Response> {
        req.token = Some(self.token.clone());
        self.sr.handle(req).await
    }

    /// Read `path`; `None` when nothing is there.
    pub async fn read(&self, path: &str) -> Result<Option<Response>> {
        none_if_missing(self.handle(Request::read(path)).await)
    }

    /// Write `data` to `path`.
    pub async fn write(&self, path: &str, data: Data) -> Result<Response> {
        self.handle(Request::write(path, data)).await
    }

    /// List the children of `path`; empty when there are none.
    pub async fn list(&self, path: &str) -> Result<Vec<String>> {
        match none_if_missing(self.handle(Request::list(path)).await)? {
            None => Ok(Vec::new()),
            Some(r) => Ok(keys_of(&r)),
        }
    }

    /// Delete `path`.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.handle(Request::delete(path)).await.map(|_| ())
    }

    /// The KV version 2 engine mounted at `mount` (`"secret"`).
    pub fn kv(&self, mount: &str) -> Kv {
        Kv {
            client: self.clone(),
            mount: mount.trim_matches('/').to_string(),
            gates: Arc::default(),
        }
    }

    /// The transit engine mounted at `mount` (`"transit"`).
    pub fn transit(&self, mount: &str) -> Transit {
        Transit::new(self.clone(), mount)
    }

    /// The PKI engine mounted at `mount` (`"pki"`).
    pub fn pki(&self, mount: &str) -> Pki {
        Pki::new(self.clone(), mount)
    }

    /// System operations: mounts, tuning, keyring rotation.
    pub fn sys(&self) -> Sys {
        Sys {
            client: self.clone(),
        }
    }

    /// Auth methods: enable / disable, and typed userpass, AppRole and Kubernetes handles.
    pub fn auth(&self) -> AuthMethods {
        AuthMethods {
            client: self.clone(),
        }
    }

    /// The token store: create, lookup, renew, revoke, roles.
    pub fn token(&self) -> Tokens {
        Tokens {
            client: self.clone(),
        }
    }

    /// The database secrets engine mounted at `mount` (`"database"`).
    pub fn database(&self, mount: &str) -> Database {
        Database {
            client: self.clone(),
            mount: mount.trim_matches('/').to_string(),
        }
    }

    /// The lease manager: lookup, renew, revoke, events.
    pub fn leases(&self) -> Leases {
        Leases {
            client: self.clone(),
        }
    }

    pub(crate) fn engine(&self) -> &Strongroom {
        &self.sr
    }
}

fn none_if_missing(r: Result<Response>) -> Result<Option<Response>> {
    match r {
        Ok(resp) if resp.kind == ResponseKind::NotFound => Ok(None),
        Ok(resp) => Ok(Some(resp)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A KV v2 read's response as the secret and its version metadata; `None` when the version
/// is deleted or destroyed (the data is `null` then).
fn secret_of(resp: Option<Response>) -> Result<Option<KvSecret>> {
    let Some(resp) = resp else {
        return Ok(None);
    };
    let mut d = resp.data.unwrap_or_default();
    let data = match d.remove("data") {
        Some(Value::Object(m)) => SecretData::new(m),
        _ => return Ok(None),
    };
    let metadata = decode(d.remove("metadata").unwrap_or(Value::Null), "kv metadata")?;
    Ok(Some(KvSecret { data, metadata }))
}

/// A version's `metadata` answer as a [`KvVersion`] (what `decode` makes of it, field by field).
fn kv_version_of(d: &Data) -> Result<KvVersion> {
    let bad = || Error::internal("unexpected kv metadata shape");
    let text = |k: &str| match d.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Ok(String::new()),
        Some(_) => Err(bad()),
    };
    let custom_metadata = match d.get("custom_metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(
            m.iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(bad)
                })
                .collect::<Result<BTreeMap<_, _>>>()?,
        ),
        Some(_) => return Err(bad()),
    };
    Ok(KvVersion {
        version: d.get("version").and_then(Value::as_u64).ok_or_else(bad)?,
        created_time: match d.get("created_time") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(bad()),
        },
        deletion_time: text("deletion_time")?,
        destroyed: match d.get("destroyed") {
            None => false,
            Some(v) => v.as_bool().ok_or_else(bad)?,
        },
        custom_metadata,
    })
}

fn keys_of(r: &Response) -> Vec<String> {
    r.get("keys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(v: Value, what: &str) -> Result<T> {
    serde_json::from_value(v)
        .map_err(|e| Error::internal(format!("unexpected {what} shape")).with_source(e))
}

/// Secret values: not shown by `Debug`, wiped from memory on drop.
#[derive(Clone, Default, PartialEq)]
pub struct SecretData(Data);

impl SecretData {
    /// Wrap values.
    pub fn new(data: Data) -> SecretData {
        SecretData(data)
    }
    /// The values (look, don't log).
    pub fn expose(&self) -> &Data {
        &self.0
    }
    /// A string value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretData({} keys, <redacted>)", self.0.len())
    }
}

fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        Value::Object(m) => m.values_mut().for_each(wipe),
        _ => {}
    }
}

impl Drop for SecretData {
    fn drop(&mut self) {
        self.0.values_mut().for_each(wipe);
    }
}

/// Metadata of one KV version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KvVersion {
    /// Version number.
    pub version: u64,
    /// When it was written (RFC 3339).
    pub created_time: String,
    /// When it was (or will be) deleted; "" when not.
    #[serde(default)]
    pub deletion_time: String,
    /// Whether its data was destroyed.
    #[serde(default)]
    pub destroyed: bool,
    /// The key's custom metadata.
    #[serde(default)]
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

/// A KV v2 secret: the data and its version metadata.
#[derive(Debug, Clone)]
pub struct KvSecret {
    /// The secret values.
    pub data: SecretData,
    /// The version.
    pub metadata: KvVersion,
}

/// One entry of [`KvMetadata::versions`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KvVersionState {
    /// When it was written.
    pub created_time: String,
    /// When it was (or will be) deleted; "" when not.
    pub deletion_time: String,
    /// Whether its data was destroyed.
    pub destroyed: bool,
}

/// A KV v2 key's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KvMetadata {
    /// Latest version.
    pub current_version: u64,
    /// Oldest version still kept.
    pub oldest_version: u64,
    /// Key-level max_versions (0 = mount setting).
    pub max_versions: u64,
    /// Whether writes need `cas`.
    pub cas_required: bool,
    /// Go duration string (`"0s"` = never).
    pub delete_version_after: String,
    /// User metadata.
    #[serde(default)]
    pub custom_metadata: Option<BTreeMap<String, String>>,
    /// Creation time.
    pub created_time: String,
    /// Last update time.
    pub updated_time: String,
    /// Versions by number.
    pub versions: BTreeMap<String, KvVersionState>,
}

/// Typed access to a KV version 2 mount.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use strongroom::{Config, ErrorCode, Strongroom, data};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let kv = sr.client(sr.dev_root_token().unwrap_or_default()).kv("secret");
/// let v1 = kv.put("app/db", &data(serde_json::json!({"user": "app", "password": "pw1"}))).await?;
/// assert_eq!(v1.version, 1);
/// // Check-and-set: only succeeds when the current version is 1.
/// kv.put_cas("app/db", &data(serde_json::json!({"user": "app", "password": "pw2"})), 1).await?;
/// let stale = kv.put_cas("app/db", &data(serde_json::json!({})), 1).await.unwrap_err();
/// assert_eq!(stale.code(), ErrorCode::Conflict); // HTTP 400, as OpenBao
/// // Merge patch: `null` removes a field.
/// kv.patch("app/db", &data(serde_json::json!({"user": null}))).await?;
/// let latest = kv.get("app/db").await?.expect("exists");
/// assert_eq!(latest.metadata.version, 3);
/// assert_eq!(latest.data.get_str("user"), None);
/// let first = kv.get_version("app/db", 1).await?.expect("kept");
/// assert_eq!(first.data.get_str("password"), Some("pw1"));
/// kv.delete("app/db").await?; // soft-deletes version 3
/// assert!(kv.get("app/db").await?.is_none());
/// kv.undelete("app/db", &[3]).await?;
/// assert_eq!(kv.metadata("app/db").await?.expect("exists").current_version, 3);
/// assert_eq!(kv.list("app").await?, vec!["db"]);
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Kv {
    client: Client,
    mount: String,
    /// Fast-path decisions already made with this handle (see [`Kv::get`]).
    gates: Arc<Gates>,
}

impl Kv {
    fn path(&self, section: &str, key: &str) -> String {
        format!("{}/{section}/{}", self.mount, key.trim_start_matches('/'))
    }

    async fn write_data(
        &self,
        key: &str,
        data: &Data,
        cas: Option<u64>,
        op: Operation,
    ) -> Result<KvVersion> {
        let mut body = json!({ "data": data });
        if let (Some(c), Some(o)) = (cas, body.as_object_mut()) {
            o.insert("options".into(), json!({ "cas": c }));
        }
        let req = Request::new(op, self.path("data", key)).with_data(crate::data(body));
        let resp = self.client.handle(req).await?;
        decode(
            Value::Object(resp.data.unwrap_or_default()),
            "kv write response",
        )
    }

    /// Write a new version of `key`.
    pub async fn put(&self, key: &str, data: &Data) -> Result<KvVersion> {
        self.write_data(key, data, None, Operation::Update).await
    }

    /// Write a new version only if the current version is `cas` (0 = the key must not exist).
    pub async fn put_cas(&self, key: &str, data: &Data, cas: u64) -> Result<KvVersion> {
        self.write_data(key, data, Some(cas), Operation::Update)
            .await
    }

    /// Merge `patch` (RFC 7386: `null` removes a field) into the latest version, as a new version.
    pub async fn patch(&self, key: &str, patch: &Data) -> Result<KvVersion> {
        self.write_data(key, patch, None, Operation::Patch).await
    }

    /// The latest version; `None` when missing, deleted or destroyed.
    pub async fn get(&self, key: &str) -> Result<Option<KvSecret>> {
        if let Some(found) = self.fast_get(key).await? {
            return Ok(found);
        }
        self.get_req(Request::read(self.path("data", key))).await
    }

    /// The fast path of [`Kv::get`]: the pipeline's seal, token and policy checks for a read of
    /// `data/<key>` (remembered on this handle, see [`Gates`]), then the KV v2 engine itself,
    /// with no request id, routing or audit step in between, and the secret built from what
    /// the engine decoded (no answer maps to build and take apart). `None` when the call must
    /// take the full pipeline (audit devices, a limited-use token, a policy that inspects
    /// parameters, a mount that is not KV version 2); `Some(None)` when nothing is there.
    async fn fast_get(&self, key: &str) -> Result<Option<Option<KvSecret>>> {
        let key = key.trim_start_matches('/');
        let Some(gate) = self
            .gates
            .decide(&self.client, &self.mount, Operation::Read, "data", key)
            .await?
        else {
            return Ok(None);
        };
        // Gone since the decision (sealed, unmounted): the full pipeline answers.
        let Some(mount) = gate.mount.upgrade() else {
            return Ok(None);
        };
        let Some(engine) = mount.engine.as_kv_v2() else {
            return Ok(None);
        };
        let path = self.path("data", key);
        // The key as the engine sees it: the path relative to the mount the decision routed
        // to, as the pipeline hands it on.
        let Some(key) = path
            .strip_prefix(mount.entry.path.as_str())
            .and_then(|rel| rel.strip_prefix("data/"))
        else {
            return Ok(None);
        };
        // Counted as a call in flight, as `handle` counts it, so shutdown waits for the read.
        let _in_flight = self.client.sr.inner.calls.enter()?;
        let read = match engine.read_version(&mount.ctx, key, None).await {
            Ok(r) => r,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Some(None)),
            Err(e) => return Err(e),
        };
        let crate::secrets::kv::v2::VersionRead::Found { data, .. } = &read else {
            return Ok(Some(None));
        };
        let Some(metadata) = read.metadata() else {
            return Ok(Some(None));
        };
        Ok(Some(Some(KvSecret {
            data: SecretData::new(data.0.clone()),
            metadata: kv_version_of(metadata)?,
        })))
    }

    /// A given version; `None` when missing, deleted or destroyed.
    pub async fn get_version(&self, key: &str, version: u64) -> Result<Option<KvSecret>> {
        let mut req = Request::read(self.path("data", key));
        req.data
            .insert("version".into(), Value::String(version.to_string()));
        self.get_req(req).await
    }

    async fn get_req(&self, req: Request) -> Result<Option<KvSecret>> {
        // Boxed: the pipeline's future is large; inlined, `get` would carry it on the fast
        // path too, and a binding moves it once per call.
        secret_of(none_if_missing(Box::pin(self.client.handle(req)).await)?)
    }

    /// Soft-delete the latest version.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .handle(Request::delete(self.path("data", key)))
            .await
            .map(|_| ())
    }

    async fn versions_op(&self, section: &str, key: &str, versions: &[u64]) -> Result<()> {
        let body = crate::data(json!({ "versions": versions }));
        self.client
            .handle(Request::write(self.path(section, key), body))
            .await
            .map(|_| ())
    }

    /// Soft-delete these versions.
    pub async fn delete_versions(&self, key: &str, versions: &[u64]) -> Result<()> {
        self.versions_op("delete", key, versions).await
    }

    /// Restore soft-deleted versions.
    pub async fn undelete(&self, key: &str, versions: &[u64]) -> Result<()> {
        self.versions_op("undelete", key, versions).await
    }

    /// Permanently destroy the data of these versions.
    pub async fn destroy(&self, key: &str, versions: &[u64]) -> Result<()> {
        self.versions_op("destroy", key, versions).await
    }

    /// The key's metadata; `None` when the key does not exist.
    pub async fn metadata(&self, key: &str) -> Result<Option<KvMetadata>> {
        match none_if_missing(
            self.client
                .handle(Request::read(self.path("metadata", key)))
                .await,
        )? {
            None => Ok(None),
            Some(r) => decode(Value::Object(r.data.unwrap_or_default()), "kv metadata").map(Some),
        }
    }

    /// Update the key's metadata (`max_versions`, `cas_required`, `delete_version_after`,
    /// `custom_metadata`).
    pub async fn write_metadata(&self, key: &str, metadata: Data) -> Result<()> {
        self.client
            .handle(Request::write(self.path("metadata", key), metadata))
            .await
            .map(|_| ())
    }

    /// Delete the key: every version and its metadata.
    pub async fn delete_metadata(&self, key: &str) -> Result<()> {
        self.client
            .handle(Request::delete(self.path("metadata", key)))
            .await
            .map(|_| ())
    }

    /// Keys under `prefix` (folders end in `/`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.client.list(&self.path("metadata", prefix)).await
    }

    /// The mount's configuration (`max_versions`, `cas_required`, `delete_version_after`).
    pub async fn config(&self) -> Result<Data> {
        let r = self
            .client
            .handle(Request::read(format!("{}/config", self.mount)))
            .await?;
        Ok(r.data.unwrap_or_default())
    }

    /// Change the mount's configuration.
    pub async fn set_config(&self, config: Data) -> Result<()> {
        self.client
            .handle(Request::write(format!("{}/config", self.mount), config))
            .await
            .map(|_| ())
    }
}

/// System operations.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use strongroom::{Config, Strongroom, data};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let sys = sr.client(sr.dev_root_token().unwrap_or_default()).sys();
/// sys.enable_mount("team-a", "kv", &[("version", "2")]).await?;
/// sys.tune_mount("team-a", data(serde_json::json!({"max_lease_ttl": "24h"}))).await?;
/// assert!(sys.mounts().await?.contains_key("team-a/"));
/// sys.rotate().await?;
/// assert_eq!(sys.key_status().await?["term"], 2);
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Sys {
    client: Client,
}

impl Sys {
    /// Enable a secrets engine: `enable_mount("kv", "kv", &[("version", "2")])`.
    pub async fn enable_mount(
        &self,
        path: &str,
        kind: &str,
        options: &[(&str, &str)],
    ) -> Result<()> {
        let opts: serde_json::Map<String, Value> = options
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let body = crate::data(json!({ "type": kind, "options": opts }));
        self.client
            .handle(Request::write(
                format!("sys/mounts/{}", path.trim_matches('/')),
                body,
            ))
            .await
            .map(|_| ())
    }

    /// Disable a mount and delete its data.
    pub async fn disable_mount(&self, path: &str) -> Result<()> {
        self.client
            .delete(&format!("sys/mounts/{}", path.trim_matches('/')))
            .await
    }

    /// Every mount, keyed by path (`sys/mounts`).
    pub async fn mounts(&self) -> Result<Data> {
        Ok(self
            .client
            .handle(Request::read("sys/mounts"))
            .await?
            .data
            .unwrap_or_default())
    }

    /// Tune a mount (`default_lease_ttl`, `max_lease_ttl`, `description`, `options`).
    pub async fn tune_mount(&self, path: &str, config: Data) -> Result<()> {
        self.client
            .handle(Request::write(
                format!("sys/mounts/{}/tune", path.trim_matches('/')),
                config,
            ))
            .await
            .map(|_| ())
    }

    /// Wrap arbitrary `data` in a single-use wrapping token that lives `ttl`
    /// (`sys/wrapping/wrap`).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use secrecy::ExposeSecret;
    /// use strongroom::{Config, Strongroom};
    /// let sr = Strongroom::open(Config::dev()).await?;
    /// let sys = sr.client(sr.dev_root_token().unwrap_or_default()).sys();
    /// let wrap = sys.wrap(strongroom::data(serde_json::json!({"k": "v"})), Duration::from_secs(300)).await?;
    /// assert_eq!(sys.wrap_lookup(wrap.token.expose_secret()).await?["creation_ttl"], 300);
    /// // The old token is gone, a new one holds the data.
    /// let wrap = sys.rewrap(wrap.token.expose_secret()).await?;
    /// assert_eq!(sys.unwrap(wrap.token.expose_secret()).await?.get("k").unwrap(), "v");
    /// # Ok::<(), strongroom::Error>(()) }).unwrap();
    /// ```
    pub async fn wrap(&self, data: Data, ttl: Duration) -> Result<WrapInfo> {
        self.client
            .handle_wrapped(Request::write("sys/wrapping/wrap", data), ttl)
            .await
    }

    /// Open a wrapping token (`sys/wrapping/unwrap`): the wrapped response, once. The token may
    /// be this client's own token or another one.
    pub async fn unwrap(&self, token: &str) -> Result<Response> {
        self.client
            .handle(Request::write(
                "sys/wrapping/unwrap",
                self.token_body(token),
            ))
            .await
    }

    /// What a wrapping token holds, without using it (`sys/wrapping/lookup`):
    /// `creation_path`, `creation_time`, `creation_ttl`.
    pub async fn wrap_lookup(&self, token: &str) -> Result<Data> {
        Ok(self
            .client
            .handle(Request::write(
                "sys/wrapping/lookup",
                self.token_body(token),
            ))
            .await?
            .data
            .unwrap_or_default())
    }

    /// Move a wrapped response to a new wrapping token with the same TTL
    /// (`sys/wrapping/rewrap`); the old token stops working.
    pub async fn rewrap(&self, token: &str) -> Result<WrapInfo> {
        self.client
            .handle(Request::write(
                "sys/wrapping/rewrap",
                self.token_body(token),
            ))
            .await?
            .wrap_info
            .ok_or_else(|| Error::internal("rewrap returned no wrapping token"))
    }

    /// `{"token": ...}`, or nothing when the token is the client's own.
    fn token_body(&self, token: &str) -> Data {
        if token == self.client.token_id() {
            Data::new()
        } else {
            crate::data(json!({ "token": token }))
        }
    }

    /// Add a new keyring term (`sys/rotate`).
    pub async fn rotate(&self) -> Result<()> {
        self.client
            .handle(Request::write("sys/rotate", Data::new()))
            .await
            .map(|_| ())
    }

    /// The engine's figures (see [`crate::EngineMetrics`]), for a token allowed to read
    /// `sys/metrics`: the read is authorised and audited like any other.
    pub async fn metrics(&self) -> Result<crate::EngineMetrics> {
        self.client.handle(Request::read("sys/metrics")).await?;
        self.client.engine().metrics().await
    }

    /// The active term, its install time and encryption count (`sys/key-status`).
    pub async fn key_status(&self) -> Result<Data> {
        Ok(self
            .client
            .handle(Request::read("sys/key-status"))
            .await?
            .data
            .unwrap_or_default())
    }
}

impl Client {
    /// Run `req` with its response wrapped in a single-use token that lives `ttl` (HTTP's
    /// `X-Vault-Wrap-TTL`): only the wrapping token comes back; whoever holds it gets the
    /// response once with [`Sys::unwrap`].
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use secrecy::ExposeSecret;
    /// use strongroom::{Config, Request, Strongroom};
    /// let sr = Strongroom::open(Config::dev()).await?;
    /// let root = sr.client(sr.dev_root_token().unwrap_or_default());
    /// root.kv("secret").put("app", &strongroom::data(serde_json::json!({"pw": "s3cr3t"}))).await?;
    /// let wrap = root.handle_wrapped(Request::read("secret/data/app"), Duration::from_secs(60)).await?;
    /// assert_eq!(wrap.creation_path, "secret/data/app");
    /// let resp = root.sys().unwrap(wrap.token.expose_secret()).await?;
    /// assert_eq!(resp.get("data").unwrap()["pw"], "s3cr3t");
    /// assert!(root.sys().unwrap(wrap.token.expose_secret()).await.is_err(), "single use");
    /// # Ok::<(), strongroom::Error>(()) }).unwrap();
    /// ```
    pub async fn handle_wrapped(&self, req: Request, ttl: Duration) -> Result<WrapInfo> {
        if ttl.is_zero() {
            return Err(Error::invalid_input("a wrap ttl must be above zero"));
        }
        self.handle(req.with_wrap_ttl(ttl))
            .await?
            .wrap_info
            .ok_or_else(|| Error::invalid_input("the response was empty, so nothing was wrapped"))
    }

    /// The token id this client uses (for handing to another process).
    pub fn token_id(&self) -> &str {
        self.token.expose_secret()
    }
}
