//! `Client` and the typed engine handles `Kv`, `Transit`, `Sys`, `Tokens`: each wraps one core
//! handle; a method converts its arguments, makes one core call and converts the result.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use napi::Env;
use napi::bindgen_prelude::{Buffer, Either, Uint8Array};
use napi_derive::napi;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use strongroom::{Ciphertext, EncryptOptions, Operation, Request};

use crate::convert::{
    Result, Secret, Settled, call, data_arg, date, err, invalid, opt_date, opt_duration, secs,
    settle, str_map,
};
use crate::database::Database;
use crate::leases::Leases;

/// The auth block of a login or a token creation.
#[napi(object, object_from_js = false)]
pub struct AuthInfo {
    /// The token.
    pub client_token: Secret,
    /// Its accessor.
    pub accessor: String,
    /// Every policy it carries.
    pub policies: Vec<String>,
    /// The policies attached to the token itself.
    pub token_policies: Vec<String>,
    /// Metadata.
    pub metadata: Value,
    /// Seconds it lives.
    pub lease_duration: f64,
    /// Whether it can be renewed.
    pub renewable: bool,
    /// The entity, "" when none.
    pub entity_id: String,
    /// `service` or `batch`.
    pub token_type: String,
    /// Whether it has no parent.
    pub orphan: bool,
    /// Uses left (0 = unlimited).
    pub num_uses: f64,
}

pub(crate) fn auth_info(a: &strongroom::Auth) -> AuthInfo {
    AuthInfo {
        client_token: Secret::of(&a.client_token),
        accessor: a.accessor.clone(),
        policies: a.policies.clone(),
        token_policies: a.token_policies.clone(),
        metadata: json!(a.metadata),
        lease_duration: a.lease_duration as f64,
        renewable: a.renewable,
        entity_id: a.entity_id.clone(),
        token_type: a.token_type.clone(),
        orphan: a.orphan,
        num_uses: a.num_uses as f64,
    }
}

/// A response wrapped in a single-use token.
#[napi(object, object_from_js = false)]
pub struct WrapInfo {
    /// The wrapping token.
    pub token: Secret,
    /// Its accessor.
    pub accessor: String,
    /// Seconds it lives.
    pub ttl: f64,
    /// When it was made.
    pub creation_time: Option<DateTime<Utc>>,
    /// The path whose response it wraps.
    pub creation_path: String,
}

/// A response of `request()`.
#[napi(object, object_from_js = false)]
pub struct Response {
    /// The response data (`null` when none).
    pub data: Option<Value>,
    /// The auth block of a login or token creation.
    pub auth: Option<AuthInfo>,
    /// The lease, "" when none.
    pub lease_id: String,
    /// Seconds the lease lives.
    pub lease_duration: f64,
    /// Whether the lease can be renewed.
    pub renewable: bool,
    /// Warnings.
    pub warnings: Vec<String>,
    /// The wrapping token when the response was wrapped.
    pub wrap_info: Option<WrapInfo>,
}

fn response(r: strongroom::Response) -> Response {
    Response {
        data: r.data.map(Value::Object),
        auth: r.auth.as_ref().map(auth_info),
        lease_id: r.lease_id,
        lease_duration: r.lease_duration as f64,
        renewable: r.renewable,
        warnings: r.warnings,
        wrap_info: r.wrap_info.map(|w| WrapInfo {
            token: Secret::of(&w.token),
            accessor: w.accessor,
            ttl: w.ttl as f64,
            creation_time: date(&w.creation_time),
            creation_path: w.creation_path,
        }),
    }
}

/// The result of `request()` for a list.
#[napi(object, object_from_js = false)]
pub struct ListResult {
    /// The children.
    pub keys: Vec<String>,
}

/// A handle that makes calls with one token.
#[napi]
pub struct Client {
    inner: strongroom::Client,
}

impl Client {
    pub(crate) fn new(inner: strongroom::Client) -> Client {
        Client { inner }
    }
}

#[napi]
impl Client {
    /// The token this client uses.
    #[napi]
    pub fn token_id(&self) -> Secret {
        Secret::from_string(self.inner.token_id().to_string())
    }

    /// Any call by path: `method` is `read`, `write`, `list`, `delete`, `patch` (or the HTTP
    /// verbs). Resolves to the response, `null` for a read of nothing or a delete, `{keys}` for
    /// a list.
    #[napi(ts_return_type = "Promise<Response | ListResult | null>")]
    pub async fn request(
        &self,
        method: String,
        path: String,
        data: Option<Value>,
    ) -> Result<Option<Either<Response, ListResult>>> {
        let data = data_arg(data)?;
        let c = &self.inner;
        let op = match method.to_ascii_lowercase().as_str() {
            "read" | "get" => Operation::Read,
            "write" | "post" | "put" | "update" => Operation::Update,
            "create" => Operation::Create,
            "list" => Operation::List,
            "delete" => Operation::Delete,
            "patch" => Operation::Patch,
            other => return Err(invalid(format!("unknown method `{other}`"))),
        };
        match op {
            Operation::Read => Ok(call(c.read(&path)).await?.map(|r| Either::A(response(r)))),
            Operation::List => Ok(Some(Either::B(ListResult {
                keys: call(c.list(&path)).await?,
            }))),
            Operation::Delete => call(c.delete(&path)).await.map(|()| None),
            op => call(c.handle(Request::new(op, path).with_data(data)))
                .await
                .map(|r| Some(Either::A(response(r)))),
        }
    }

    /// The KV version 2 engine at `mount` (default `secret`).
    #[napi]
    pub fn kv(&self, mount: Option<String>) -> Kv {
        Kv {
            inner: Arc::new(self.inner.kv(mount.as_deref().unwrap_or("secret"))),
        }
    }

    /// The transit engine at `mount` (default `transit`).
    #[napi]
    pub fn transit(&self, mount: Option<String>) -> Transit {
        Transit {
            inner: Arc::new(self.inner.transit(mount.as_deref().unwrap_or("transit"))),
        }
    }

    /// The database secrets engine at `mount` (default `database`).
    #[napi]
    pub fn database(&self, mount: Option<String>) -> Database {
        Database::new(self.inner.database(mount.as_deref().unwrap_or("database")))
    }

    /// The lease manager.
    #[napi]
    pub fn leases(&self) -> Leases {
        Leases::new(self.inner.leases())
    }

    /// Mounts, auth methods, policies, audit devices.
    #[napi]
    pub fn sys(&self) -> Sys {
        Sys {
            sys: self.inner.sys(),
            auth: self.inner.auth(),
            client: self.inner.clone(),
        }
    }

    /// The token store.
    #[napi]
    pub fn token(&self) -> Tokens {
        Tokens {
            inner: self.inner.token(),
        }
    }
}

/// One KV version's metadata.
#[napi(object, object_from_js = false)]
pub struct KvVersion {
    /// The version number.
    pub version: f64,
    /// When it was written.
    pub created_time: Option<DateTime<Utc>>,
    /// When it was (or will be) deleted; `null` when not.
    pub deletion_time: Option<DateTime<Utc>>,
    /// Whether its data was destroyed.
    pub destroyed: bool,
    /// The key's custom metadata.
    pub custom_metadata: Option<Value>,
}

fn kv_version(v: &strongroom::KvVersion) -> KvVersion {
    KvVersion {
        version: v.version as f64,
        created_time: date(&v.created_time),
        deletion_time: date(&v.deletion_time),
        destroyed: v.destroyed,
        custom_metadata: v.custom_metadata.as_ref().map(|m| json!(m)),
    }
}

/// A KV secret: `data` and its version's metadata.
#[napi(object, object_from_js = false)]
pub struct KvSecret {
    /// The values.
    pub data: Value,
    /// The version number.
    pub version: f64,
    /// The version's metadata.
    pub metadata: KvVersion,
}

/// One entry of `KvMetadata.versions`.
#[napi(object, object_from_js = false)]
pub struct KvVersionState {
    /// When it was written.
    pub created_time: Option<DateTime<Utc>>,
    /// When it was (or will be) deleted; `null` when not.
    pub deletion_time: Option<DateTime<Utc>>,
    /// Whether its data was destroyed.
    pub destroyed: bool,
}

/// A KV key's metadata.
#[napi(object, object_from_js = false)]
pub struct KvMetadata {
    /// Latest version.
    pub current_version: f64,
    /// Oldest version still kept.
    pub oldest_version: f64,
    /// Key-level max versions (0 = the mount's setting).
    pub max_versions: f64,
    /// Whether writes need `cas`.
    pub cas_required: bool,
    /// Go duration text (`"0s"` = never).
    pub delete_version_after: String,
    /// User metadata.
    pub custom_metadata: Option<Value>,
    /// Creation time.
    pub created_time: Option<DateTime<Utc>>,
    /// Last update time.
    pub updated_time: Option<DateTime<Utc>>,
    /// Versions by number.
    pub versions: std::collections::HashMap<String, KvVersionState>,
}

fn versions(m: &strongroom::KvMetadata) -> std::collections::HashMap<String, KvVersionState> {
    m.versions
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                KvVersionState {
                    created_time: date(&v.created_time),
                    deletion_time: date(&v.deletion_time),
                    destroyed: v.destroyed,
                },
            )
        })
        .collect()
}

/// Options of `kv.get`.
#[napi(object)]
pub struct KvGetOptions {
    /// A given version instead of the latest.
    pub version: Option<f64>,
}

/// Options of `kv.put`.
#[napi(object)]
pub struct KvPutOptions {
    /// Write only if the current version is this one (0: the key must not exist).
    pub cas: Option<f64>,
}

/// Options of `kv.delete`.
#[napi(object)]
pub struct KvDeleteOptions {
    /// Soft-delete these versions instead of the latest.
    pub versions: Option<Vec<f64>>,
}

fn version_numbers(v: &[f64]) -> Result<Vec<u64>> {
    v.iter()
        .map(|&n| {
            if n.is_finite() && n >= 0.0 && n.fract() == 0.0 {
                Ok(n as u64)
            } else {
                Err(invalid("a version must be a whole number, zero or more"))
            }
        })
        .collect()
}

fn version_number(n: f64) -> Result<u64> {
    version_numbers(&[n])?
        .first()
        .copied()
        .ok_or_else(|| invalid("a version is needed"))
}

/// Typed access to a KV version 2 mount.
#[napi]
pub struct Kv {
    /// Shared with the calls in flight (a hot call's future owns a reference).
    inner: Arc<strongroom::Kv>,
}

#[napi]
impl Kv {
    /// The latest version of `key` (or `options.version`); `null` when missing or deleted.
    /// Settled at once when the read needs no I/O (see `settle`).
    #[napi(ts_return_type = "Promise<KvSecret | null>")]
    pub fn get(
        &self,
        env: Env,
        key: String,
        options: Option<KvGetOptions>,
    ) -> Result<Settled<Option<KvSecret>>> {
        let version = options
            .and_then(|o| o.version)
            .map(version_number)
            .transpose()?;
        let kv = self.inner.clone();
        settle(&env, async move {
            let s = match version {
                Some(v) => call(kv.get_version(&key, v)).await?,
                None => call(kv.get(&key)).await?,
            };
            Ok(s.map(|s| KvSecret {
                data: Value::Object(s.data.expose().clone()),
                version: s.metadata.version as f64,
                metadata: kv_version(&s.metadata),
            }))
        })
    }

    /// Write `data` as a new version; with `options.cas`, only if the current version is `cas`.
    #[napi]
    pub async fn put(
        &self,
        key: String,
        data: Value,
        options: Option<KvPutOptions>,
    ) -> Result<KvVersion> {
        let data = data_arg(Some(data))?;
        let cas = options
            .and_then(|o| o.cas)
            .map(version_number)
            .transpose()?;
        let v = match cas {
            Some(c) => call(self.inner.put_cas(&key, &data, c)).await?,
            None => call(self.inner.put(&key, &data)).await?,
        };
        Ok(kv_version(&v))
    }

    /// Merge `data` into the latest version (`null` removes a field), as a new version.
    #[napi]
    pub async fn patch(&self, key: String, data: Value) -> Result<KvVersion> {
        let data = data_arg(Some(data))?;
        call(self.inner.patch(&key, &data))
            .await
            .map(|v| kv_version(&v))
    }

    /// Soft-delete the latest version, or `options.versions`.
    #[napi]
    pub async fn delete(&self, key: String, options: Option<KvDeleteOptions>) -> Result<()> {
        match options.and_then(|o| o.versions) {
            Some(v) => {
                let v = version_numbers(&v)?;
                call(self.inner.delete_versions(&key, &v)).await
            }
            None => call(self.inner.delete(&key)).await,
        }
    }

    /// Restore soft-deleted versions.
    #[napi]
    pub async fn undelete(&self, key: String, versions: Vec<f64>) -> Result<()> {
        let v = version_numbers(&versions)?;
        call(self.inner.undelete(&key, &v)).await
    }

    /// Destroy the data of these versions for good.
    #[napi]
    pub async fn destroy(&self, key: String, versions: Vec<f64>) -> Result<()> {
        let v = version_numbers(&versions)?;
        call(self.inner.destroy(&key, &v)).await
    }

    /// The key's metadata; `null` when the key does not exist.
    #[napi]
    pub async fn metadata(&self, key: String) -> Result<Option<KvMetadata>> {
        Ok(call(self.inner.metadata(&key)).await?.map(|m| KvMetadata {
            current_version: m.current_version as f64,
            oldest_version: m.oldest_version as f64,
            max_versions: m.max_versions as f64,
            cas_required: m.cas_required,
            delete_version_after: m.delete_version_after.clone(),
            custom_metadata: m.custom_metadata.as_ref().map(|c| json!(c)),
            created_time: date(&m.created_time),
            updated_time: date(&m.updated_time),
            versions: versions(&m),
        }))
    }

    /// The key's versions by number (empty when the key does not exist).
    #[napi]
    pub async fn versions(
        &self,
        key: String,
    ) -> Result<std::collections::HashMap<String, KvVersionState>> {
        Ok(call(self.inner.metadata(&key))
            .await?
            .map(|m| versions(&m))
            .unwrap_or_default())
    }

    /// Update the key's metadata (`max_versions`, `cas_required`, `delete_version_after`,
    /// `custom_metadata`).
    #[napi]
    pub async fn write_metadata(&self, key: String, metadata: Value) -> Result<()> {
        let m = data_arg(Some(metadata))?;
        call(self.inner.write_metadata(&key, m)).await
    }

    /// Keys under `prefix` (folders end in `/`).
    #[napi]
    pub async fn list(&self, prefix: Option<String>) -> Result<Vec<String>> {
        call(self.inner.list(prefix.as_deref().unwrap_or_default())).await
    }

    /// Delete the key with every version and its metadata.
    #[napi]
    pub async fn delete_metadata(&self, key: String) -> Result<()> {
        call(self.inner.delete_metadata(&key)).await
    }
}

/// Options of `transit.createKey`.
#[napi(object)]
pub struct CreateKeyOptions {
    /// `aes256-gcm96` (default), `chacha20-poly1305`, `ed25519`, `ecdsa-p256`, `rsa-2048`, ...
    #[napi(js_name = "type")]
    pub key_type: Option<String>,
    /// Derive a key per context.
    pub derived: Option<bool>,
    /// Same plaintext and context give the same ciphertext (needs `derived`).
    pub convergent_encryption: Option<bool>,
    /// Whether the key may be exported.
    pub exportable: Option<bool>,
    /// Rotate automatically this often (seconds or `"24h"`).
    pub auto_rotate_period: Option<Either<f64, String>>,
}

/// Options of an encrypt or decrypt.
#[napi(object)]
pub struct EncryptOptionsJs {
    /// Key derivation context (derived keys).
    pub context: Option<Uint8Array>,
    /// Associated data authenticated with the ciphertext (AEAD key types).
    pub associated_data: Option<Uint8Array>,
    /// Encrypt with this key version (0 = the latest).
    pub key_version: Option<u32>,
}

fn encrypt_options(o: Option<EncryptOptionsJs>) -> EncryptOptions {
    let mut opts = EncryptOptions::new();
    if let Some(o) = o {
        opts = opts.key_version(o.key_version.unwrap_or(0));
        if let Some(c) = o.context {
            opts = opts.context(c.to_vec());
        }
        if let Some(a) = o.associated_data {
            opts = opts.associated_data(a.to_vec());
        }
    }
    opts
}

/// A data key: `plaintext` (hide it), `ciphertext`, `keyVersion`.
#[napi(object, object_from_js = false)]
pub struct DataKey {
    /// The key itself.
    pub plaintext: Buffer,
    /// The key encrypted under the named key.
    pub ciphertext: String,
    /// The named key's version that encrypted it.
    pub key_version: u32,
}

/// One item of a batch: the value, or the error for that item.
#[napi(object, object_from_js = false)]
pub struct BatchItem {
    /// The ciphertext (encrypt) or plaintext (decrypt), when the item succeeded.
    pub value: Option<Either<String, Buffer>>,
    /// The error code of a failed item (`ErrorCode` name, snake_case).
    pub error_code: Option<String>,
    /// The error message of a failed item.
    pub error: Option<String>,
}

fn batch_item<T>(r: strongroom::Result<T>, one: impl Fn(T) -> Either<String, Buffer>) -> BatchItem {
    match r {
        Ok(v) => BatchItem {
            value: Some(one(v)),
            error_code: None,
            error: None,
        },
        Err(e) => BatchItem {
            value: None,
            error_code: Some(e.code().name().to_string()),
            error: Some(e.message().to_string()),
        },
    }
}

/// Encryption as a service on a transit mount.
#[napi]
pub struct Transit {
    /// Shared with the calls in flight (a hot call's future owns a reference).
    inner: Arc<strongroom::Transit>,
}

#[napi]
impl Transit {
    /// Create a named key.
    #[napi]
    pub async fn create_key(&self, name: String, options: Option<CreateKeyOptions>) -> Result<()> {
        let mut config = strongroom::KeyConfig::default();
        if let Some(o) = options {
            config.key_type = o.key_type.unwrap_or_default();
            config.derived = o.derived.unwrap_or(false);
            config.convergent_encryption = o.convergent_encryption.unwrap_or(false);
            config.exportable = o.exportable.unwrap_or(false);
            config.auto_rotate_period = opt_duration(o.auto_rotate_period)?.as_secs();
        }
        call(self.inner.create_key(&name, &config)).await
    }

    /// Add a key version; resolves to the latest version number.
    #[napi]
    pub async fn rotate(&self, name: String) -> Result<u32> {
        call(self.inner.rotate(&name)).await
    }

    /// Encrypt `plaintext`; resolves to the `vault:v<n>:...` ciphertext. Settled at once when
    /// the key is in memory (see `settle`).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn encrypt(
        &self,
        env: Env,
        key: String,
        plaintext: Uint8Array,
        options: Option<EncryptOptionsJs>,
    ) -> Result<Settled<String>> {
        let opts = encrypt_options(options);
        let t = self.inner.clone();
        settle(&env, async move {
            call(t.encrypt_with(&key, &plaintext, &opts))
                .await
                .map(|c| c.as_str().to_string())
        })
    }

    /// `encrypt`, synchronously (for small inputs: it holds the JavaScript thread meanwhile).
    #[napi]
    pub fn encrypt_sync(
        &self,
        key: String,
        plaintext: Uint8Array,
        options: Option<EncryptOptionsJs>,
    ) -> Result<String> {
        let opts = encrypt_options(options);
        napi::bindgen_prelude::block_on(self.inner.encrypt_with(&key, &plaintext, &opts))
            .map(|c| c.as_str().to_string())
            .map_err(err)
    }

    /// Decrypt a ciphertext; resolves to the plaintext. Settled at once when the key is in
    /// memory (see `settle`).
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn decrypt(
        &self,
        env: Env,
        key: String,
        ciphertext: String,
        options: Option<EncryptOptionsJs>,
    ) -> Result<Settled<Buffer>> {
        let opts = encrypt_options(options);
        let t = self.inner.clone();
        settle(&env, async move {
            call(t.decrypt_with(&key, &Ciphertext::new(ciphertext), &opts))
                .await
                .map(|p| Buffer::from(p.expose().to_vec()))
        })
    }

    /// `decrypt`, synchronously (for small inputs).
    #[napi]
    pub fn decrypt_sync(
        &self,
        key: String,
        ciphertext: String,
        options: Option<EncryptOptionsJs>,
    ) -> Result<Buffer> {
        let opts = encrypt_options(options);
        napi::bindgen_prelude::block_on(self.inner.decrypt_with(
            &key,
            &Ciphertext::new(ciphertext),
            &opts,
        ))
        .map(|p| Buffer::from(p.expose().to_vec()))
        .map_err(err)
    }

    /// Re-encrypt a ciphertext with the latest key version.
    #[napi]
    pub async fn rewrap(&self, key: String, ciphertext: String) -> Result<String> {
        call(self.inner.rewrap(&key, &Ciphertext::new(ciphertext)))
            .await
            .map(|c| c.as_str().to_string())
    }

    /// Encrypt many plaintexts; one item per input (a bad item does not fail the batch).
    #[napi]
    pub async fn encrypt_batch(
        &self,
        key: String,
        plaintexts: Vec<Uint8Array>,
    ) -> Result<Vec<BatchItem>> {
        let refs: Vec<&[u8]> = plaintexts.iter().map(|p| &p[..]).collect();
        let items = call(self.inner.encrypt_batch(&key, &refs)).await?;
        Ok(items
            .into_iter()
            .map(|r| batch_item(r, |c: Ciphertext| Either::A(c.as_str().to_string())))
            .collect())
    }

    /// Decrypt many ciphertexts; one item per input.
    #[napi]
    pub async fn decrypt_batch(
        &self,
        key: String,
        ciphertexts: Vec<String>,
    ) -> Result<Vec<BatchItem>> {
        let cts: Vec<Ciphertext> = ciphertexts.into_iter().map(Ciphertext::new).collect();
        let items = call(self.inner.decrypt_batch(&key, &cts)).await?;
        Ok(items
            .into_iter()
            .map(|r| {
                batch_item(r, |p: strongroom::Plaintext| {
                    Either::B(Buffer::from(p.expose().to_vec()))
                })
            })
            .collect())
    }

    /// A new data key of `bits` (128, 256, 512; default 256).
    #[napi]
    pub async fn datakey(&self, key: String, bits: Option<u32>) -> Result<DataKey> {
        let k = call(self.inner.datakey(&key, bits.unwrap_or(256))).await?;
        Ok(DataKey {
            plaintext: Buffer::from(k.plaintext.expose().to_vec()),
            ciphertext: k.ciphertext.as_str().to_string(),
            key_version: k.key_version,
        })
    }

    /// Sign `input` with an asymmetric key; resolves to `vault:v<n>:<signature>`.
    #[napi]
    pub async fn sign(&self, key: String, input: Uint8Array) -> Result<String> {
        call(self.inner.sign(&key, &input)).await
    }

    /// Whether `signature` is valid for `input`.
    #[napi]
    pub async fn verify(&self, key: String, input: Uint8Array, signature: String) -> Result<bool> {
        call(self.inner.verify(&key, &input, &signature)).await
    }

    /// The HMAC-SHA256 of `input`: `vault:v<n>:<base64>`. Settled at once when the key is in
    /// memory (see `settle`).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn hmac(&self, env: Env, key: String, input: Uint8Array) -> Result<Settled<String>> {
        let t = self.inner.clone();
        settle(&env, async move { call(t.hmac(&key, &input)).await })
    }

    /// `hmac`, synchronously (for small inputs).
    #[napi]
    pub fn hmac_sync(&self, key: String, input: Uint8Array) -> Result<String> {
        napi::bindgen_prelude::block_on(self.inner.hmac(&key, &input)).map_err(err)
    }

    /// Whether `hmac` is the HMAC of `input`.
    #[napi]
    pub async fn verify_hmac(&self, key: String, input: Uint8Array, hmac: String) -> Result<bool> {
        call(self.inner.verify_hmac(&key, &input, &hmac)).await
    }
}

/// Options of `sys.enableMount` and `sys.enableAuth`.
#[napi(object)]
pub struct MountOptions {
    /// Engine options (`{version: "2"}`).
    pub options: Option<Value>,
    /// Auth method settings.
    pub config: Option<Value>,
}

/// Options of `sys.enableAudit`.
#[napi(object)]
pub struct AuditOptions {
    /// Device options (`{file_path: ...}`).
    pub options: Option<Value>,
    /// A description.
    pub description: Option<String>,
}

/// System operations: mounts, auth methods, policies, audit devices.
#[napi]
pub struct Sys {
    sys: strongroom::Sys,
    auth: strongroom::AuthMethods,
    client: strongroom::Client,
}

#[napi]
impl Sys {
    /// Mount a secrets engine: `enableMount("kv2", "kv", {options: {version: "2"}})`.
    #[napi]
    pub async fn enable_mount(
        &self,
        path: String,
        kind: String,
        options: Option<MountOptions>,
    ) -> Result<()> {
        let options = str_map(options.and_then(|o| o.options))?;
        let opts: Vec<(&str, &str)> = options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        call(self.sys.enable_mount(&path, &kind, &opts)).await
    }

    /// Unmount a secrets engine and delete its data.
    #[napi]
    pub async fn disable_mount(&self, path: String) -> Result<()> {
        call(self.sys.disable_mount(&path)).await
    }

    /// Every secrets mount, keyed by path.
    #[napi]
    pub async fn mounts(&self) -> Result<Value> {
        call(self.sys.mounts()).await.map(Value::Object)
    }

    /// Tune a mount (`default_lease_ttl`, `max_lease_ttl`, `description`, ...).
    #[napi]
    pub async fn tune_mount(&self, path: String, config: Value) -> Result<()> {
        let config = data_arg(Some(config))?;
        call(self.sys.tune_mount(&path, config)).await
    }

    /// Enable an auth method (`userpass`, `approle`, `kubernetes`) at `path`.
    #[napi]
    pub async fn enable_auth(
        &self,
        path: String,
        kind: String,
        options: Option<MountOptions>,
    ) -> Result<()> {
        let config = data_arg(options.and_then(|o| o.config))?;
        call(self.auth.enable_with(&path, &kind, config)).await
    }

    /// Disable the auth method at `path`.
    #[napi]
    pub async fn disable_auth(&self, path: String) -> Result<()> {
        call(self.auth.disable(&path)).await
    }

    /// The enabled auth methods, keyed by path.
    #[napi]
    pub async fn auth_methods(&self) -> Result<Value> {
        call(self.auth.list()).await.map(Value::Object)
    }

    /// Write an ACL policy (HCL or JSON).
    #[napi]
    pub async fn write_policy(&self, name: String, policy: String) -> Result<()> {
        call(self.sys.write_policy(&name, &policy)).await
    }

    /// An ACL policy's text; `null` when there is none.
    #[napi]
    pub async fn read_policy(&self, name: String) -> Result<Option<String>> {
        call(self.sys.read_policy(&name)).await
    }

    /// The ACL policy names.
    #[napi]
    pub async fn list_policies(&self) -> Result<Vec<String>> {
        call(self.sys.list_policies()).await
    }

    /// Delete an ACL policy.
    #[napi]
    pub async fn delete_policy(&self, name: String) -> Result<()> {
        call(self.sys.delete_policy(&name)).await
    }

    /// Add a keyring term.
    #[napi]
    pub async fn rotate(&self) -> Result<()> {
        call(self.sys.rotate()).await
    }

    /// The active keyring term, its install time and encryption count.
    #[napi]
    pub async fn key_status(&self) -> Result<Value> {
        call(self.sys.key_status()).await.map(Value::Object)
    }

    /// The audit devices, keyed by path.
    #[napi]
    pub async fn audit_devices(&self) -> Result<Value> {
        Ok(Value::Object(
            call(self.client.read("sys/audit"))
                .await?
                .and_then(|r| r.data)
                .unwrap_or_default(),
        ))
    }

    /// Enable an audit device at `path` (`file`, `socket`, `stdout`); the engine must allow
    /// API audit creation.
    #[napi]
    pub async fn enable_audit(
        &self,
        path: String,
        kind: String,
        options: Option<AuditOptions>,
    ) -> Result<()> {
        let (opts, description) = match options {
            Some(o) => (data_arg(o.options)?, o.description.unwrap_or_default()),
            None => (serde_json::Map::new(), String::new()),
        };
        let body = strongroom::data(json!({
            "type": kind,
            "options": opts,
            "description": description,
        }));
        call(
            self.client
                .write(&format!("sys/audit/{}", path.trim_matches('/')), body),
        )
        .await
        .map(|_| ())
    }

    /// Disable the audit device at `path`.
    #[napi]
    pub async fn disable_audit(&self, path: String) -> Result<()> {
        call(
            self.client
                .delete(&format!("sys/audit/{}", path.trim_matches('/'))),
        )
        .await
    }
}

/// Options of `token().create()`.
#[napi(object)]
pub struct TokenCreateOptions {
    /// Policies of the new token.
    pub policies: Option<Vec<String>>,
    /// Its TTL (seconds or `"1h"`).
    pub ttl: Option<Either<f64, String>>,
    /// Uses before it is revoked (0 = unlimited).
    pub num_uses: Option<u32>,
    /// `service` or `batch`.
    #[napi(js_name = "type")]
    pub token_type: Option<String>,
    /// A display name.
    pub display_name: Option<String>,
    /// Whether it can be renewed.
    pub renewable: Option<bool>,
    /// Make an orphan token.
    pub no_parent: Option<bool>,
    /// A token role.
    pub role: Option<String>,
    /// Metadata.
    pub meta: Option<std::collections::HashMap<String, String>>,
}

/// A token's details.
#[napi(object, object_from_js = false)]
pub struct TokenInfo {
    /// Its accessor.
    pub accessor: String,
    /// Its policies.
    pub policies: Vec<String>,
    /// Seconds left.
    pub ttl: f64,
    /// Seconds it was created with.
    pub creation_ttl: f64,
    /// When it expires; `null` for never.
    pub expire_time: Option<DateTime<Utc>>,
    /// Display name.
    pub display_name: String,
    /// Uses left (0 = unlimited).
    pub num_uses: f64,
    /// Whether it has no parent.
    pub orphan: bool,
    /// Whether it can be renewed.
    pub renewable: bool,
    /// The path that created it.
    pub path: String,
    /// `service` or `batch`.
    #[napi(js_name = "type")]
    pub token_type: String,
    /// Metadata.
    pub meta: Option<Value>,
}

fn token_info(t: strongroom::TokenInfo) -> TokenInfo {
    TokenInfo {
        accessor: t.accessor,
        policies: t.policies,
        ttl: t.ttl as f64,
        creation_ttl: t.creation_ttl as f64,
        expire_time: opt_date(t.expire_time.as_deref()),
        display_name: t.display_name,
        num_uses: t.num_uses as f64,
        orphan: t.orphan,
        renewable: t.renewable,
        path: t.path,
        token_type: t.token_type,
        meta: t.meta.map(|m| json!(m)),
    }
}

/// The token store: create, look up, renew, revoke.
#[napi]
pub struct Tokens {
    inner: strongroom::Tokens,
}

#[napi]
impl Tokens {
    /// Create a child token; resolves to the auth block.
    #[napi]
    pub async fn create(&self, options: Option<TokenCreateOptions>) -> Result<AuthInfo> {
        let mut req = strongroom::TokenRequest::default();
        if let Some(o) = options {
            req.policies = o.policies.unwrap_or_default();
            req.ttl = opt_duration(o.ttl)?;
            req.num_uses = u64::from(o.num_uses.unwrap_or(0));
            req.token_type = o.token_type;
            req.display_name = o.display_name;
            req.renewable = o.renewable;
            req.no_parent = o.no_parent.unwrap_or(false);
            req.role = o.role;
            req.meta = o.meta.unwrap_or_default().into_iter().collect();
        }
        call(self.inner.create(&req)).await.map(|a| auth_info(&a))
    }

    /// This client's token.
    #[napi]
    pub async fn lookup_self(&self) -> Result<TokenInfo> {
        call(self.inner.lookup_self()).await.map(token_info)
    }

    /// Another token's details.
    #[napi(ts_args_type = "token: string | Secret")]
    pub async fn lookup(&self, token: String) -> Result<TokenInfo> {
        let token = secrecy::SecretString::from(token);
        call(self.inner.lookup(token.expose_secret()))
            .await
            .map(token_info)
    }

    /// Renew this client's token by `increment` (seconds or `"1h"`; default: its own TTL).
    #[napi]
    pub async fn renew_self(&self, increment: Option<Either<f64, String>>) -> Result<AuthInfo> {
        let inc = opt_duration(increment)?;
        call(self.inner.renew_self(inc))
            .await
            .map(|a| auth_info(&a))
    }

    /// Revoke this client's token and its children.
    #[napi]
    pub async fn revoke_self(&self) -> Result<()> {
        call(self.inner.revoke_self()).await
    }

    /// Revoke another token and its children.
    #[napi(ts_args_type = "token: string | Secret")]
    pub async fn revoke(&self, token: String) -> Result<()> {
        let token = secrecy::SecretString::from(token);
        call(self.inner.revoke(token.expose_secret())).await
    }
}

/// Seconds of a duration as a number (re-exported for the other modules).
pub(crate) fn seconds(d: std::time::Duration) -> f64 {
    secs(d)
}
