//! Typed access to a transit mount: `client.transit("transit")`.

use std::fmt;
use std::sync::Arc;

use secrecy::ExposeSecret;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Client, Gates};
use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Operation, Request};
use crate::secrets::transit::asym::SignOptions;
use crate::secrets::transit::hmac::HmacAlgorithm;
use crate::secrets::transit::key::TransitKey;

/// A `vault:v<N>:...` ciphertext (not secret: safe to store and log).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ciphertext(String);

impl Ciphertext {
    /// Wrap a ciphertext string as returned by `encrypt`.
    pub fn new(text: impl Into<String>) -> Ciphertext {
        Ciphertext(text.into())
    }

    /// The `vault:v<N>:...` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key version named in the prefix (`None` when the text has no `vault:v<N>:` prefix).
    pub fn key_version(&self) -> Option<u32> {
        self.0
            .strip_prefix("vault:v")
            .and_then(|r| r.split_once(':'))
            .and_then(|(v, _)| v.parse().ok())
    }
}

impl fmt::Display for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Ciphertext {
    fn from(s: String) -> Ciphertext {
        Ciphertext(s)
    }
}

/// Decrypted bytes: wiped from memory on drop, not shown by `Debug`. Read them with
/// [`Plaintext::expose`] or [`secrecy::ExposeSecret::expose_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    /// The bytes (look, don't log).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl ExposeSecret<[u8]> for Plaintext {
    fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext({} bytes, <redacted>)", self.0.len())
    }
}

/// A data key: the plaintext key to use locally and its ciphertext to store.
#[derive(Debug, Clone)]
pub struct DataKey {
    /// The key itself (wiped on drop).
    pub plaintext: Plaintext,
    /// The key encrypted under the transit key.
    pub ciphertext: Ciphertext,
    /// The transit key version that encrypted it.
    pub key_version: u32,
}

/// Per-call options for encrypt and decrypt, built with its methods.
///
/// ```
/// use strongroom::EncryptOptions;
/// let opts = EncryptOptions::new()
///     .context(b"tenant-42".to_vec())
///     .associated_data("order 17")
///     .key_version(2);
/// assert_eq!(opts.get_context(), Some(b"tenant-42".as_slice()));
/// assert_eq!(opts.get_key_version(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptOptions {
    context: Option<Vec<u8>>,
    associated_data: Option<Vec<u8>>,
    key_version: u32,
}

impl EncryptOptions {
    /// No context, no associated data, the latest key version.
    pub fn new() -> EncryptOptions {
        EncryptOptions::default()
    }

    /// The derivation context (required for derived keys).
    pub fn context(mut self, context: impl Into<Vec<u8>>) -> EncryptOptions {
        self.context = Some(context.into());
        self
    }

    /// AEAD associated data, bound to the ciphertext (give the same on decrypt).
    pub fn associated_data(mut self, associated_data: impl Into<Vec<u8>>) -> EncryptOptions {
        self.associated_data = Some(associated_data.into());
        self
    }

    /// The key version to encrypt with (`0`, the default, = the latest). Ignored by decrypt,
    /// which reads the version from the ciphertext.
    pub fn key_version(mut self, version: u32) -> EncryptOptions {
        self.key_version = version;
        self
    }

    /// The derivation context, if set.
    pub fn get_context(&self) -> Option<&[u8]> {
        self.context.as_deref()
    }

    /// The associated data, if set.
    pub fn get_associated_data(&self) -> Option<&[u8]> {
        self.associated_data.as_deref()
    }

    /// The key version (`0` = the latest).
    pub fn get_key_version(&self) -> u32 {
        self.key_version
    }
}

/// Options fixed when a key is created.
#[derive(Debug, Clone, Default)]
pub struct KeyConfig {
    /// OpenBao's type name (`aes256-gcm96` when empty).
    pub key_type: String,
    /// Per-request keys derived from a context.
    pub derived: bool,
    /// Deterministic encryption (needs `derived`).
    pub convergent_encryption: bool,
    /// The key may be exported.
    pub exportable: bool,
    /// The key may be backed up in plaintext.
    pub allow_plaintext_backup: bool,
    /// Rotate automatically after this many seconds (`0` = never, else at least 3600).
    pub auto_rotate_period: u64,
    /// `hmac` keys: key length in bytes (32..=512).
    pub key_size: Option<u32>,
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

fn str_field(d: &Data, k: &str) -> Result<String> {
    d.get(k)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::internal(format!("transit response has no `{k}`")))
}

fn plaintext_of(d: &Data) -> Result<Plaintext> {
    let text = Zeroizing::new(str_field(d, "plaintext")?);
    STANDARD
        .decode(text.as_bytes())
        .map(|v| Plaintext(Zeroizing::new(v)))
        .map_err(|_| Error::internal("transit returned invalid base64"))
}

/// A batch item's error as a typed error: tag failures are `Crypto`, the rest bad input.
fn item_error(msg: &str) -> Error {
    let code = if msg.ends_with("message authentication failed") || msg.contains("decryption error")
    {
        ErrorCode::Crypto
    } else {
        ErrorCode::InvalidInput
    };
    Error::new(code, msg)
}

fn results(d: &mut Data) -> Result<Vec<Value>> {
    match d.remove("batch_results") {
        Some(Value::Array(v)) => Ok(v),
        _ => Err(Error::internal("transit response has no `batch_results`")),
    }
}

/// Typed access to a transit mount. Every call runs through the pipeline (token, policy,
/// audit) like an HTTP request; the key itself stays decrypted in the engine's memory, so a
/// call does no storage read.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use strongroom::{Config, Strongroom};
/// let sr = Strongroom::open(Config::dev()).await?;
/// let client = sr.client(sr.dev_root_token().unwrap_or_default());
/// client.sys().enable_mount("transit", "transit", &[]).await?;
/// let transit = client.transit("transit");
/// let ct = transit.encrypt("orders", b"card 4111").await?; // creates the key on first use
/// assert_eq!(ct.key_version(), Some(1));
/// assert_eq!(transit.decrypt("orders", &ct).await?.expose(), b"card 4111");
/// let items = transit.encrypt_batch("orders", &[b"a".as_slice(), b"b"]).await?;
/// assert!(items.iter().all(|r| r.is_ok()));
/// # Ok::<(), strongroom::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Transit {
    client: Client,
    mount: String,
    /// Fast-path decisions already made with this handle (see [`Transit::fast_key`]).
    gates: Arc<Gates>,
}

impl fmt::Debug for Transit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transit")
            .field("client", &self.client)
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

impl Transit {
    pub(crate) fn new(client: Client, mount: &str) -> Transit {
        Transit {
            client,
            mount: mount.trim_matches('/').to_string(),
            gates: Arc::default(),
        }
    }

    fn path(&self, op: &str, key: &str) -> String {
        format!("{}/{op}/{key}", self.mount)
    }

    /// The fast path: the pipeline's seal, token and policy checks for `op/key`, then the key
    /// straight from the engine's memory, with no JSON or base64 in between. `None` when the
    /// call must take the full pipeline (audit devices, limited-use tokens, policies that
    /// inspect parameters, a key that does not exist yet).
    ///
    /// The decision is remembered on this handle and reused while nothing it rests on has
    /// changed (no token, policy or mount change: [`crate::Strongroom::gate_epoch`]) and the token
    /// has not expired, so a repeated call skips the token HMAC, the routing and the ACL walk.
    async fn fast_key(&self, op: &'static str, key: &str) -> Result<Option<Arc<TransitKey>>> {
        let Some(gate) = self
            .gates
            .decide(&self.client, &self.mount, Operation::Update, op, key)
            .await?
        else {
            return Ok(None);
        };
        // Gone since the decision (sealed, unmounted): the full pipeline answers.
        let Some(mount) = gate.mount.upgrade() else {
            return Ok(None);
        };
        let Some(engine) = mount.engine.as_transit() else {
            return Ok(None);
        };
        engine.fast_key(&mount.ctx, key).await
    }

    async fn write(&self, path: String, body: Data) -> Result<Data> {
        // Boxed: the pipeline's future is large, and the fast paths that fall back to this
        // would otherwise carry it on every call (a binding moves it once per call).
        let resp = Box::pin(
            self.client
                .handle(Request::new(Operation::Update, path).with_data(body)),
        )
        .await?;
        Ok(resp.data.unwrap_or_default())
    }

    /// Create key `name` (a no-op when it exists).
    pub async fn create_key(&self, name: &str, config: &KeyConfig) -> Result<()> {
        let mut body = Data::new();
        if !config.key_type.is_empty() {
            body.insert("type".into(), json!(config.key_type));
        }
        body.insert("derived".into(), json!(config.derived));
        body.insert(
            "convergent_encryption".into(),
            json!(config.convergent_encryption),
        );
        body.insert("exportable".into(), json!(config.exportable));
        body.insert(
            "allow_plaintext_backup".into(),
            json!(config.allow_plaintext_backup),
        );
        body.insert(
            "auto_rotate_period".into(),
            json!(config.auto_rotate_period),
        );
        if let Some(size) = config.key_size {
            body.insert("key_size".into(), json!(size));
        }
        self.write(self.path("keys", name), body).await.map(|_| ())
    }

    /// Add a version to key `name`; returns the new latest version.
    pub async fn rotate(&self, name: &str) -> Result<u32> {
        let d = self
            .write(format!("{}/keys/{name}/rotate", self.mount), Data::new())
            .await?;
        d.get("latest_version")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| Error::internal("transit response has no `latest_version`"))
    }

    /// Encrypt with the latest version of `key` (created as aes256-gcm96 on first use when
    /// the policy allows `create`).
    pub async fn encrypt(&self, key: &str, plaintext: &[u8]) -> Result<Ciphertext> {
        self.encrypt_with(key, plaintext, &EncryptOptions::default())
            .await
    }

    /// Encrypt with a context, associated data or a given version.
    pub async fn encrypt_with(
        &self,
        key: &str,
        plaintext: &[u8],
        opts: &EncryptOptions,
    ) -> Result<Ciphertext> {
        if let Some(k) = self.fast_key("encrypt", key).await? {
            let enc = k.encrypt(
                plaintext,
                opts.context.as_deref().unwrap_or_default(),
                opts.associated_data.as_deref().unwrap_or_default(),
                i64::from(opts.key_version),
            )?;
            return Ok(Ciphertext(enc.ciphertext));
        }
        let mut body = Data::new();
        body.insert("plaintext".into(), b64(plaintext));
        add_options(&mut body, opts);
        let d = self.write(self.path("encrypt", key), body).await?;
        str_field(&d, "ciphertext").map(Ciphertext)
    }

    /// Decrypt a ciphertext of `key`.
    pub async fn decrypt(&self, key: &str, ciphertext: &Ciphertext) -> Result<Plaintext> {
        self.decrypt_with(key, ciphertext, &EncryptOptions::default())
            .await
    }

    /// Decrypt with a context or associated data.
    pub async fn decrypt_with(
        &self,
        key: &str,
        ciphertext: &Ciphertext,
        opts: &EncryptOptions,
    ) -> Result<Plaintext> {
        if let Some(k) = self.fast_key("decrypt", key).await? {
            return k
                .decrypt(
                    ciphertext.as_str(),
                    opts.context.as_deref().unwrap_or_default(),
                    opts.associated_data.as_deref().unwrap_or_default(),
                )
                .map(Plaintext);
        }
        let mut body = Data::new();
        body.insert("ciphertext".into(), json!(ciphertext.as_str()));
        add_options(&mut body, opts);
        let d = self.write(self.path("decrypt", key), body).await?;
        plaintext_of(&d)
    }

    /// Re-encrypt a ciphertext with the latest version of `key`, never exposing the plaintext.
    pub async fn rewrap(&self, key: &str, ciphertext: &Ciphertext) -> Result<Ciphertext> {
        let mut body = Data::new();
        body.insert("ciphertext".into(), json!(ciphertext.as_str()));
        let d = self.write(self.path("rewrap", key), body).await?;
        str_field(&d, "ciphertext").map(Ciphertext)
    }

    /// Encrypt many plaintexts in one call: one result per item, in order.
    pub async fn encrypt_batch(
        &self,
        key: &str,
        plaintexts: &[&[u8]],
    ) -> Result<Vec<Result<Ciphertext>>> {
        if let Some(k) = self.fast_key("encrypt", key).await? {
            return Ok(plaintexts
                .iter()
                .map(|p| k.encrypt(p, &[], &[], 0).map(|e| Ciphertext(e.ciphertext)))
                .collect());
        }
        let items: Vec<Value> = plaintexts
            .iter()
            .map(|p| json!({"plaintext": b64(p)}))
            .collect();
        let mut body = Data::new();
        body.insert("batch_input".into(), Value::Array(items));
        let mut d = self.write(self.path("encrypt", key), body).await?;
        Ok(results(&mut d)?
            .into_iter()
            .map(|r| match r.get("error").and_then(Value::as_str) {
                Some(e) if !e.is_empty() => Err(item_error(e)),
                _ => r
                    .get("ciphertext")
                    .and_then(Value::as_str)
                    .map(|c| Ciphertext(c.to_string()))
                    .ok_or_else(|| Error::internal("batch item has no ciphertext")),
            })
            .collect())
    }

    /// Decrypt many ciphertexts in one call: one result per item, in order.
    pub async fn decrypt_batch(
        &self,
        key: &str,
        ciphertexts: &[Ciphertext],
    ) -> Result<Vec<Result<Plaintext>>> {
        if let Some(k) = self.fast_key("decrypt", key).await? {
            return Ok(ciphertexts
                .iter()
                .map(|c| k.decrypt(c.as_str(), &[], &[]).map(Plaintext))
                .collect());
        }
        let items: Vec<Value> = ciphertexts
            .iter()
            .map(|c| json!({"ciphertext": c.as_str()}))
            .collect();
        let mut body = Data::new();
        body.insert("batch_input".into(), Value::Array(items));
        let mut d = self.write(self.path("decrypt", key), body).await?;
        Ok(results(&mut d)?
            .into_iter()
            .map(|r| match r.get("error").and_then(Value::as_str) {
                Some(e) if !e.is_empty() => Err(item_error(e)),
                _ => match r {
                    Value::Object(m) => plaintext_of(&m),
                    _ => Err(Error::internal("batch item is not an object")),
                },
            })
            .collect())
    }

    /// A new data key of `bits` (128, 256 or 512) and its ciphertext under `key`.
    pub async fn datakey(&self, key: &str, bits: u32) -> Result<DataKey> {
        let mut body = Data::new();
        body.insert("bits".into(), json!(bits));
        let d = self
            .write(format!("{}/datakey/plaintext/{key}", self.mount), body)
            .await?;
        Ok(DataKey {
            plaintext: plaintext_of(&d)?,
            ciphertext: Ciphertext(str_field(&d, "ciphertext")?),
            key_version: d
                .get("key_version")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
        })
    }

    /// Sign `input` with the latest version of `key` (default options: SHA2-256, PSS, ASN.1).
    pub async fn sign(&self, key: &str, input: &[u8]) -> Result<String> {
        if let Some(k) = self.fast_key("sign", key).await? {
            return k
                .sign(input, &[], &SignOptions::default(), 0)
                .map(|(s, _)| s);
        }
        let mut body = Data::new();
        body.insert("input".into(), b64(input));
        let d = self.write(self.path("sign", key), body).await?;
        str_field(&d, "signature")
    }

    /// Whether `signature` signs `input` (a mismatch is `Ok(false)`).
    pub async fn verify(&self, key: &str, input: &[u8], signature: &str) -> Result<bool> {
        if let Some(k) = self.fast_key("verify", key).await? {
            return k.verify_signature(input, signature, &[], &SignOptions::default());
        }
        let mut body = Data::new();
        body.insert("input".into(), b64(input));
        body.insert("signature".into(), json!(signature));
        let d = self.write(self.path("verify", key), body).await?;
        Ok(d.get("valid").and_then(Value::as_bool).unwrap_or(false))
    }

    /// `vault:v<N>:` HMAC-SHA256 of `input` with the latest version of `key`.
    pub async fn hmac(&self, key: &str, input: &[u8]) -> Result<String> {
        if let Some(k) = self.fast_key("hmac", key).await? {
            return k.hmac(input, HmacAlgorithm::Sha2_256, 0);
        }
        let mut body = Data::new();
        body.insert("input".into(), b64(input));
        let d = self.write(self.path("hmac", key), body).await?;
        str_field(&d, "hmac")
    }

    /// Sign many inputs with the latest version of `key` (default options, as [`sign`]):
    /// one result per item, in order; a failed item does not fail the others.
    ///
    /// [`sign`]: Transit::sign
    pub async fn sign_batch(&self, key: &str, inputs: &[&[u8]]) -> Result<Vec<Result<String>>> {
        if let Some(k) = self.fast_key("sign", key).await? {
            return Ok(inputs
                .iter()
                .map(|i| k.sign(i, &[], &SignOptions::default(), 0).map(|(s, _)| s))
                .collect());
        }
        let items = inputs.iter().map(|i| json!({"input": b64(i)})).collect();
        self.batch("sign", key, items, |r| str_item(r, "signature"))
            .await
    }

    /// Verify many `(input, signature)` pairs: one result per item, in order (a mismatch
    /// is `Ok(false)`; a malformed signature is that item's error).
    pub async fn verify_batch(
        &self,
        key: &str,
        items: &[(&[u8], &str)],
    ) -> Result<Vec<Result<bool>>> {
        if let Some(k) = self.fast_key("verify", key).await? {
            return Ok(items
                .iter()
                .map(|(i, s)| k.verify_signature(i, s, &[], &SignOptions::default()))
                .collect());
        }
        let items = items
            .iter()
            .map(|(i, s)| json!({"input": b64(i), "signature": s}))
            .collect();
        self.batch("verify", key, items, bool_item).await
    }

    /// HMAC-SHA256 many inputs with the latest version of `key`: one result per item, in
    /// order.
    pub async fn hmac_batch(&self, key: &str, inputs: &[&[u8]]) -> Result<Vec<Result<String>>> {
        if let Some(k) = self.fast_key("hmac", key).await? {
            return Ok(inputs
                .iter()
                .map(|i| k.hmac(i, HmacAlgorithm::Sha2_256, 0))
                .collect());
        }
        let items = inputs.iter().map(|i| json!({"input": b64(i)})).collect();
        self.batch("hmac", key, items, |r| str_item(r, "hmac"))
            .await
    }

    /// Verify many `(input, hmac)` pairs: one result per item, in order.
    pub async fn verify_hmac_batch(
        &self,
        key: &str,
        items: &[(&[u8], &str)],
    ) -> Result<Vec<Result<bool>>> {
        let items = items
            .iter()
            .map(|(i, h)| json!({"input": b64(i), "hmac": h}))
            .collect();
        self.batch("verify", key, items, bool_item).await
    }

    /// One `batch_input` request through the full pipeline; each item's `error` becomes
    /// that item's error, the rest goes through `item`.
    async fn batch<T>(
        &self,
        op: &str,
        key: &str,
        items: Vec<Value>,
        item: impl Fn(&Value) -> Result<T>,
    ) -> Result<Vec<Result<T>>> {
        let mut body = Data::new();
        body.insert("batch_input".into(), Value::Array(items));
        let mut d = self.write(self.path(op, key), body).await?;
        Ok(results(&mut d)?
            .iter()
            .map(|r| match r.get("error").and_then(Value::as_str) {
                Some(e) if !e.is_empty() => Err(item_error(e)),
                _ => item(r),
            })
            .collect())
    }

    /// Whether `hmac` is the HMAC-SHA256 of `input`.
    pub async fn verify_hmac(&self, key: &str, input: &[u8], hmac: &str) -> Result<bool> {
        let mut body = Data::new();
        body.insert("input".into(), b64(input));
        body.insert("hmac".into(), json!(hmac));
        let d = self.write(self.path("verify", key), body).await?;
        Ok(d.get("valid").and_then(Value::as_bool).unwrap_or(false))
    }
}

fn str_item(r: &Value, field: &str) -> Result<String> {
    r.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::internal(format!("batch item has no {field}")))
}

fn bool_item(r: &Value) -> Result<bool> {
    Ok(r.get("valid").and_then(Value::as_bool).unwrap_or(false))
}

fn add_options(body: &mut Data, opts: &EncryptOptions) {
    if let Some(c) = &opts.context {
        body.insert("context".into(), b64(c));
    }
    if let Some(a) = &opts.associated_data {
        body.insert("associated_data".into(), b64(a));
    }
    if opts.key_version != 0 {
        body.insert("key_version".into(), json!(opts.key_version));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Strongroom};

    /// A handle remembers its fast-path decisions, but not the mount behind them: once the
    /// store is sealed the mount, and the decrypted keys it holds, are freed even while the
    /// handle lives on.
    #[tokio::test]
    async fn a_remembered_decision_does_not_keep_keys_alive_after_seal() {
        let sr = Strongroom::open(Config::dev()).await.unwrap();
        let root = sr.client(sr.dev_root_token().unwrap());
        root.sys()
            .enable_mount("transit", "transit", &[])
            .await
            .unwrap();
        let t = root.transit("transit");
        t.create_key("k", &KeyConfig::default()).await.unwrap();
        t.encrypt("k", b"hello").await.unwrap();
        let remembered = t.gates.mounts()[0].clone();
        assert!(
            remembered.upgrade().is_some(),
            "the decision was remembered"
        );
        sr.seal().await.unwrap();
        assert!(
            remembered.upgrade().is_none(),
            "the sealed mount is still alive through the handle"
        );
        assert!(t.encrypt("k", b"hello").await.is_err());
    }
}
