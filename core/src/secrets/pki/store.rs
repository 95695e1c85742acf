//! What a PKI mount keeps in its storage view (behind the barrier), in OpenBao's layout:
//! `config/key/<id>`, `config/issuer/<id>`, `config/keys`, `config/issuers`, `config/urls`,
//! `role/<name>`, `certs/<serial>`, `revoked/<serial>`, `crl/<issuer id>`.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secrets::EngineContext;
use crate::storage::Backend;

pub(crate) const KEY_PREFIX: &str = "config/key/";
pub(crate) const ISSUER_PREFIX: &str = "config/issuer/";
pub(crate) const KEYS_CONFIG: &str = "config/keys";
pub(crate) const ISSUERS_CONFIG: &str = "config/issuers";
pub(crate) const URLS_CONFIG: &str = "config/urls";
pub(crate) const ROLE_PREFIX: &str = "role/";
pub(crate) const CERT_PREFIX: &str = "certs/";
pub(crate) const REVOKED_PREFIX: &str = "revoked/";
pub(crate) const CRL_PREFIX: &str = "crl/";
pub(crate) const TIDY_STATUS: &str = "tidy-status";

/// A stored key (`config/key/<id>`); its PEM is wiped when the entry is dropped.
#[derive(Serialize, Deserialize, Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub(crate) struct KeyEntry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub key_type: String,
    #[serde(default)]
    pub key_bits: u32,
    /// PKCS#8 PEM.
    pub private_key: String,
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

/// A stored issuer (`config/issuer/<id>`).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct IssuerEntry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// `""` when this mount does not hold the issuer's key.
    #[serde(default)]
    pub key_id: String,
    pub certificate: String,
    /// The chain above this issuer (PEM, nearest first), not including itself.
    #[serde(default)]
    pub chain: Vec<String>,
    #[serde(default = "default_leaf_behavior")]
    pub leaf_not_after_behavior: String,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub revocation_time: i64,
    /// RFC 3339 with nanoseconds, as OpenBao shows it (only when revoked).
    #[serde(default)]
    pub revocation_time_rfc3339: String,
    /// Set by an update (`""` after a POST that does not name it); the key's own
    /// algorithm when absent.
    #[serde(default)]
    pub revocation_signature_algorithm: Option<String>,
    pub serial: String,
    pub not_after: i64,
    #[serde(default)]
    pub usage: Option<String>,
    #[serde(default)]
    pub manual_chain: Option<Vec<String>>,
}

fn default_leaf_behavior() -> String {
    "err".into()
}

/// `config/issuers` and `config/keys`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub(crate) struct DefaultConfig {
    #[serde(default)]
    pub default: String,
    #[serde(default)]
    pub default_follows_latest_issuer: bool,
}

/// `config/urls`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub(crate) struct UrlsConfig {
    #[serde(default)]
    pub issuing_certificates: Vec<String>,
    #[serde(default)]
    pub crl_distribution_points: Vec<String>,
    #[serde(default)]
    pub ocsp_servers: Vec<String>,
    #[serde(default)]
    pub delta_crl_distribution_points: Vec<String>,
    #[serde(default)]
    pub enable_templating: bool,
}

/// A stored certificate (`certs/<serial>`).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct CertEntry {
    /// DER, base64.
    pub der: String,
    #[serde(default)]
    pub issuer_id: String,
    #[serde(default)]
    pub not_after: i64,
}

/// A revocation (`revoked/<serial>`).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct RevokedEntry {
    pub serial: String,
    pub revocation_time: i64,
    /// RFC 3339 with nanoseconds, as OpenBao shows it.
    pub revocation_time_rfc3339: String,
    #[serde(default)]
    pub issuer_id: String,
    /// DER, base64.
    pub der: String,
    #[serde(default)]
    pub not_after: i64,
}

/// Read and decode a JSON entry.
pub(crate) async fn get<T: DeserializeOwned>(ctx: &EngineContext, path: &str) -> Result<Option<T>> {
    match ctx.storage.get(path).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|_| Error::storage(format!("pki entry `{path}` is corrupt"))),
    }
}

/// Encode and write a JSON entry.
pub(crate) async fn put<T: Serialize>(ctx: &EngineContext, path: &str, v: &T) -> Result<()> {
    let raw = Zeroizing::new(
        serde_json::to_vec(v).map_err(|_| Error::internal("unable to encode pki entry"))?,
    );
    ctx.storage.put(path, &raw).await
}

/// The storage form of a serial (`certs/` keys use dashes, as OpenBao's).
pub(crate) fn serial_key(colons: &str) -> String {
    colons.replace(':', "-")
}
