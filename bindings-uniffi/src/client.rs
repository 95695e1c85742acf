//! Calls made with a client: the generic `request`, KV version 2, transit (with batches),
//! database credentials, `sys` and auth mounts. Each wraps one core call.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use strongroom::{Operation, Request};

use crate::leases::Leases;
use crate::{Result, Secret, StrongroomError, invalid_input, json_text, parse_data, run};

/// A handle that makes calls with one token. Safe to use from many threads at once.
#[derive(uniffi::Object)]
pub struct Client(strongroom::Client);

impl Client {
    pub(crate) fn new(c: strongroom::Client) -> Arc<Client> {
        Arc::new(Client(c))
    }
}

/// A response as `{data, auth, lease_id, lease_duration, renewable, warnings, wrap_info}`.
fn response_json(r: &strongroom::Response) -> Value {
    json!({
        "data": r.data,
        "auth": r.auth.as_ref().map(strongroom::Auth::to_json),
        "lease_id": r.lease_id,
        "lease_duration": r.lease_duration,
        "renewable": r.renewable,
        "warnings": r.warnings,
        "wrap_info": r.wrap_info.as_ref().map(strongroom::WrapInfo::to_json),
    })
}

#[uniffi::export(async_runtime = "tokio")]
impl Client {
    /// The token this client uses.
    pub fn token(&self) -> Arc<Secret> {
        Secret::text(self.0.token_id())
    }

    /// Any call by path. `method`: `read`, `write`, `list`, `delete`, `patch`, `create` (or
    /// the HTTP verbs `GET`, `POST`, `PUT`, `LIST`, `DELETE`, `PATCH`), any case. `data_json`:
    /// a JSON object or `None`. The result is JSON text: `{"data", "auth", "lease_id",
    /// "lease_duration", "renewable", "warnings", "wrap_info"}`, `{"keys": [...]}` for a list,
    /// `None` for a read of nothing or a delete. It may hold secrets (it is the response).
    pub async fn request(
        &self,
        method: String,
        path: String,
        data_json: Option<String>,
    ) -> Result<Option<String>> {
        let op = match method.to_ascii_lowercase().as_str() {
            "read" | "get" => Operation::Read,
            "write" | "post" | "put" | "update" => Operation::Update,
            "create" => Operation::Create,
            "list" => Operation::List,
            "delete" => Operation::Delete,
            "patch" => Operation::Patch,
            other => return Err(invalid_input(format!("unknown method `{other}`"))),
        };
        let body = parse_data(data_json, "data_json")?;
        let c = self.0.clone();
        let v = run(async move {
            Ok(match op {
                Operation::Read => c.read(&path).await?.map(|r| response_json(&r)),
                Operation::List => Some(json!({ "keys": c.list(&path).await? })),
                Operation::Delete => {
                    c.delete(&path).await?;
                    None
                }
                op => Some(response_json(
                    &c.handle(Request::new(op, path).with_data(body)).await?,
                )),
            })
        })
        .await?;
        Ok(v.as_ref().map(json_text))
    }

    /// KV version 2 at `mount`.
    pub fn kv(&self, mount: String) -> Arc<Kv> {
        Arc::new(Kv(self.0.kv(&mount)))
    }

    /// Transit at `mount`.
    pub fn transit(&self, mount: String) -> Arc<Transit> {
        Arc::new(Transit(Arc::new(self.0.transit(&mount))))
    }

    /// The database secrets engine at `mount`.
    pub fn database(&self, mount: String) -> Arc<Database> {
        Arc::new(Database(self.0.database(&mount)))
    }

    /// Leases: look up, renew, revoke, subscribe to events.
    pub fn leases(&self) -> Arc<Leases> {
        Arc::new(Leases::new(self.0.leases()))
    }

    /// `sys/`: mounts and policies.
    pub fn sys(&self) -> Arc<Sys> {
        Arc::new(Sys(self.0.sys()))
    }

    /// Auth methods: enable and disable them.
    pub fn auth(&self) -> Arc<Auth> {
        Arc::new(Auth(self.0.auth()))
    }
}

// ---- KV version 2 ----

/// One version's state in `KvMetadata.versions`.
#[derive(uniffi::Record)]
pub struct KvVersionState {
    /// When it was written (RFC 3339).
    pub created_time: String,
    /// When it was deleted ("" when it is not).
    pub deletion_time: String,
    /// Whether it was destroyed.
    pub destroyed: bool,
}

/// A KV secret at one version.
#[derive(uniffi::Record)]
pub struct KvSecret {
    /// The data, as JSON object text (secret).
    pub data: Arc<Secret>,
    /// Its version number.
    pub version: u64,
    /// When it was written (RFC 3339).
    pub created_time: String,
    /// Custom metadata of the key.
    pub custom_metadata: HashMap<String, String>,
}

/// A KV key's metadata.
#[derive(uniffi::Record)]
pub struct KvMetadata {
    /// The latest version.
    pub current_version: u64,
    /// The oldest version kept.
    pub oldest_version: u64,
    /// How many versions are kept (0: the mount's setting).
    pub max_versions: u64,
    /// Whether writes must give `cas`.
    pub cas_required: bool,
    /// When versions are deleted after writing (Go duration, "0s": never).
    pub delete_version_after: String,
    /// Custom metadata.
    pub custom_metadata: HashMap<String, String>,
    /// When the key was created (RFC 3339).
    pub created_time: String,
    /// When it was last written (RFC 3339).
    pub updated_time: String,
    /// The versions kept, by number.
    pub versions: HashMap<u64, KvVersionState>,
}

/// Typed KV version 2 access at one mount.
#[derive(uniffi::Object)]
pub struct Kv(strongroom::Kv);

#[uniffi::export(async_runtime = "tokio")]
impl Kv {
    /// Write `data_json` (a JSON object) as a new version of `key`; its version number.
    pub async fn put(&self, key: String, data_json: String) -> Result<u64> {
        let (kv, data) = (self.0.clone(), parse_data(Some(data_json), "data_json")?);
        run(async move { kv.put(&key, &data).await.map(|v| v.version) }).await
    }

    /// Write a new version only if the current version is `cas` (0: the key must not exist).
    pub async fn put_cas(&self, key: String, data_json: String, cas: u64) -> Result<u64> {
        let (kv, data) = (self.0.clone(), parse_data(Some(data_json), "data_json")?);
        run(async move { kv.put_cas(&key, &data, cas).await.map(|v| v.version) }).await
    }

    /// Merge `data_json` (RFC 7386: `null` removes a field) into the latest version.
    pub async fn patch(&self, key: String, data_json: String) -> Result<u64> {
        let (kv, data) = (self.0.clone(), parse_data(Some(data_json), "data_json")?);
        run(async move { kv.patch(&key, &data).await.map(|v| v.version) }).await
    }

    /// The latest version of `key` (or `version`), `None` when missing, deleted or destroyed.
    pub async fn get(&self, key: String, version: Option<u64>) -> Result<Option<KvSecret>> {
        let kv = self.0.clone();
        let got = run(async move {
            match version {
                Some(v) => kv.get_version(&key, v).await,
                None => kv.get(&key).await,
            }
        })
        .await?;
        Ok(got.map(|s| KvSecret {
            data: Secret::text(&json_text(&Value::Object(s.data.expose().clone()))),
            version: s.metadata.version,
            created_time: s.metadata.created_time,
            custom_metadata: s
                .metadata
                .custom_metadata
                .unwrap_or_default()
                .into_iter()
                .collect(),
        }))
    }

    /// Soft-delete the latest version of `key`.
    pub async fn delete(&self, key: String) -> Result<()> {
        let kv = self.0.clone();
        run(async move { kv.delete(&key).await }).await
    }

    /// Keys under `prefix` (folders end in `/`).
    pub async fn list(&self, prefix: String) -> Result<Vec<String>> {
        let kv = self.0.clone();
        run(async move { kv.list(&prefix).await }).await
    }

    /// The metadata of `key`, `None` when it does not exist.
    pub async fn metadata(&self, key: String) -> Result<Option<KvMetadata>> {
        let kv = self.0.clone();
        let m = run(async move { kv.metadata(&key).await }).await?;
        m.map(|m| {
            let mut versions = HashMap::new();
            for (n, v) in m.versions {
                let n = n
                    .parse::<u64>()
                    .map_err(|_| invalid_input(format!("version `{n}` is not a number")))?;
                versions.insert(
                    n,
                    KvVersionState {
                        created_time: v.created_time,
                        deletion_time: v.deletion_time,
                        destroyed: v.destroyed,
                    },
                );
            }
            Ok(KvMetadata {
                current_version: m.current_version,
                oldest_version: m.oldest_version,
                max_versions: m.max_versions,
                cas_required: m.cas_required,
                delete_version_after: m.delete_version_after,
                custom_metadata: m.custom_metadata.unwrap_or_default().into_iter().collect(),
                created_time: m.created_time,
                updated_time: m.updated_time,
                versions,
            })
        })
        .transpose()
    }
}

// ---- transit ----

/// Why one batch item failed (the rest of the batch is unaffected).
#[derive(uniffi::Record)]
pub struct ItemError {
    /// The core's code name (`crypto`, `invalid_input`, ...).
    pub code: String,
    /// What went wrong.
    pub detail: String,
}

impl From<strongroom::Error> for ItemError {
    fn from(e: strongroom::Error) -> ItemError {
        let e = StrongroomError::from(e);
        let (code, detail) = e.parts();
        ItemError {
            code: code.to_string(),
            detail: detail.to_string(),
        }
    }
}

/// One item of `encrypt_batch`: the ciphertext or the error.
#[derive(uniffi::Record)]
pub struct CiphertextItem {
    /// The ciphertext (`vault:v1:...`), when it worked.
    pub ciphertext: Option<String>,
    /// The error, when it did not.
    pub error: Option<ItemError>,
}

/// One item of `decrypt_batch`: the plaintext or the error.
#[derive(uniffi::Record)]
pub struct PlaintextItem {
    /// The plaintext, when it worked.
    pub plaintext: Option<Arc<Secret>>,
    /// The error, when it did not.
    pub error: Option<ItemError>,
}

/// Typed transit access at one mount (a handle remembers its policy decisions: keep it).
#[derive(uniffi::Object)]
pub struct Transit(Arc<strongroom::Transit>);

#[uniffi::export(async_runtime = "tokio")]
impl Transit {
    /// Create a named key of `key_type` (OpenBao's names; "" for `aes256-gcm96`).
    pub async fn create_key(&self, name: String, key_type: String) -> Result<()> {
        let t = self.0.clone();
        let config = strongroom::KeyConfig {
            key_type,
            ..Default::default()
        };
        run(async move { t.create_key(&name, &config).await }).await
    }

    /// Rotate a key; its new latest version.
    pub async fn rotate(&self, name: String) -> Result<u32> {
        let t = self.0.clone();
        run(async move { t.rotate(&name).await }).await
    }

    /// Encrypt (creates an `aes256-gcm96` key on first use); the ciphertext.
    pub async fn encrypt(&self, key: String, plaintext: Vec<u8>) -> Result<String> {
        let t = self.0.clone();
        let pt = zeroize::Zeroizing::new(plaintext);
        run(async move { t.encrypt(&key, &pt).await.map(|c| c.as_str().to_string()) }).await
    }

    /// Decrypt; the plaintext.
    pub async fn decrypt(&self, key: String, ciphertext: String) -> Result<Arc<Secret>> {
        let t = self.0.clone();
        let ct = strongroom::Ciphertext::new(ciphertext);
        let pt = run(async move { t.decrypt(&key, &ct).await }).await?;
        Ok(Secret::new(pt.expose().to_vec()))
    }

    /// Sign `input`; the signature (`vault:v1:...`).
    pub async fn sign(&self, key: String, input: Vec<u8>) -> Result<String> {
        let t = self.0.clone();
        run(async move { t.sign(&key, &input).await }).await
    }

    /// Whether `signature` is a valid signature of `input`.
    pub async fn verify(&self, key: String, input: Vec<u8>, signature: String) -> Result<bool> {
        let t = self.0.clone();
        run(async move { t.verify(&key, &input, &signature).await }).await
    }

    /// The HMAC of `input` (`vault:v1:...`).
    pub async fn hmac(&self, key: String, input: Vec<u8>) -> Result<String> {
        let t = self.0.clone();
        run(async move { t.hmac(&key, &input).await }).await
    }

    /// Whether `hmac` is the HMAC of `input`.
    pub async fn verify_hmac(&self, key: String, input: Vec<u8>, hmac: String) -> Result<bool> {
        let t = self.0.clone();
        run(async move { t.verify_hmac(&key, &input, &hmac).await }).await
    }

    /// Encrypt many plaintexts in one call: one item per input, in order.
    pub async fn encrypt_batch(
        &self,
        key: String,
        plaintexts: Vec<Vec<u8>>,
    ) -> Result<Vec<CiphertextItem>> {
        let t = self.0.clone();
        let pts = zeroize::Zeroizing::new(plaintexts);
        let items = run(async move {
            let slices: Vec<&[u8]> = pts.iter().map(Vec::as_slice).collect();
            t.encrypt_batch(&key, &slices).await
        })
        .await?;
        Ok(items
            .into_iter()
            .map(|r| match r {
                Ok(c) => CiphertextItem {
                    ciphertext: Some(c.as_str().to_string()),
                    error: None,
                },
                Err(e) => CiphertextItem {
                    ciphertext: None,
                    error: Some(e.into()),
                },
            })
            .collect())
    }

    /// Decrypt many ciphertexts in one call: one item per input, in order.
    pub async fn decrypt_batch(
        &self,
        key: String,
        ciphertexts: Vec<String>,
    ) -> Result<Vec<PlaintextItem>> {
        let t = self.0.clone();
        let cts: Vec<strongroom::Ciphertext> = ciphertexts
            .into_iter()
            .map(strongroom::Ciphertext::new)
            .collect();
        let items = run(async move { t.decrypt_batch(&key, &cts).await }).await?;
        Ok(items
            .into_iter()
            .map(|r| match r {
                Ok(p) => PlaintextItem {
                    plaintext: Some(Secret::new(p.expose().to_vec())),
                    error: None,
                },
                Err(e) => PlaintextItem {
                    plaintext: None,
                    error: Some(e.into()),
                },
            })
            .collect())
    }
}

// ---- database ----

/// A dynamic database credential and its lease.
#[derive(uniffi::Record)]
pub struct DbCredential {
    /// The generated database username.
    pub username: String,
    /// The generated password.
    pub password: Arc<Secret>,
    /// The lease to renew or revoke (`database/creds/<role>/<id>`).
    pub lease_id: String,
    /// Seconds left on the lease.
    pub lease_duration: u64,
    /// Whether the lease can be renewed.
    pub renewable: bool,
}

/// The database secrets engine at one mount.
#[derive(uniffi::Object)]
pub struct Database(strongroom::Database);

#[uniffi::export(async_runtime = "tokio")]
impl Database {
    /// Configure a connection (`config_json`: OpenBao's fields: `plugin_name`,
    /// `connection_url`, `allowed_roles`, ...); the warnings.
    pub async fn configure(&self, name: String, config_json: String) -> Result<Vec<String>> {
        let (db, cfg) = (
            self.0.clone(),
            parse_data(Some(config_json), "config_json")?,
        );
        run(async move { db.configure(&name, cfg).await }).await
    }

    /// Write a dynamic role (`role_json`: `db_name`, `creation_statements`, ...).
    pub async fn write_role(&self, name: String, role_json: String) -> Result<()> {
        let (db, role) = (self.0.clone(), parse_data(Some(role_json), "role_json")?);
        run(async move { db.write_role(&name, role).await }).await
    }

    /// A new credential for `role`, under a lease.
    pub async fn creds(&self, role: String) -> Result<DbCredential> {
        let db = self.0.clone();
        let c = run(async move { db.creds(&role).await }).await?;
        Ok(DbCredential {
            username: c.username.clone(),
            password: Secret::text(c.password.expose_secret()),
            lease_id: c.lease_id.clone(),
            lease_duration: c.lease_duration.as_secs(),
            renewable: c.renewable,
        })
    }
}

// ---- sys and auth ----

/// `sys/`: mounts and policies.
#[derive(uniffi::Object)]
pub struct Sys(strongroom::Sys);

#[uniffi::export(async_runtime = "tokio")]
impl Sys {
    /// Enable a secrets engine of `kind` at `path` with string `options` (`{"version": "2"}`).
    pub async fn enable_mount(
        &self,
        path: String,
        kind: String,
        options: HashMap<String, String>,
    ) -> Result<()> {
        let sys = self.0.clone();
        run(async move {
            let opts: Vec<(&str, &str)> = options
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            sys.enable_mount(&path, &kind, &opts).await
        })
        .await
    }

    /// Disable a mount and delete its data.
    pub async fn disable_mount(&self, path: String) -> Result<()> {
        let sys = self.0.clone();
        run(async move { sys.disable_mount(&path).await }).await
    }

    /// Every mount, keyed by path, as JSON object text.
    pub async fn mounts(&self) -> Result<String> {
        let sys = self.0.clone();
        let m = run(async move { sys.mounts().await }).await?;
        Ok(json_text(&Value::Object(m)))
    }

    /// Write an ACL policy (HCL or JSON text).
    pub async fn write_policy(&self, name: String, policy: String) -> Result<()> {
        let sys = self.0.clone();
        run(async move { sys.write_policy(&name, &policy).await }).await
    }

    /// A policy's text, `None` when it does not exist.
    pub async fn read_policy(&self, name: String) -> Result<Option<String>> {
        let sys = self.0.clone();
        run(async move { sys.read_policy(&name).await }).await
    }

    /// The names of every ACL policy.
    pub async fn list_policies(&self) -> Result<Vec<String>> {
        let sys = self.0.clone();
        run(async move { sys.list_policies().await }).await
    }

    /// Delete a policy.
    pub async fn delete_policy(&self, name: String) -> Result<()> {
        let sys = self.0.clone();
        run(async move { sys.delete_policy(&name).await }).await
    }
}

/// Auth methods: enable and disable them.
#[derive(uniffi::Object)]
pub struct Auth(strongroom::AuthMethods);

#[uniffi::export(async_runtime = "tokio")]
impl Auth {
    /// Enable an auth method of `kind` (`userpass`, `approle`, `kubernetes`) at `path`.
    pub async fn enable(&self, path: String, kind: String) -> Result<()> {
        let a = self.0.clone();
        run(async move { a.enable(&path, &kind).await }).await
    }

    /// Disable the auth method at `path` (its tokens are revoked).
    pub async fn disable(&self, path: String) -> Result<()> {
        let a = self.0.clone();
        run(async move { a.disable(&path).await }).await
    }

    /// The enabled auth methods, keyed by path, as JSON object text.
    pub async fn list(&self) -> Result<String> {
        let a = self.0.clone();
        let m = run(async move { a.list().await }).await?;
        Ok(json_text(&Value::Object(m)))
    }
}
