//! The token store (the part the foundation needs: the root token made at init, and token
//! resolution in the pipeline). Token ids are stored only as salted HMAC-SHA256 hashes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::hmac;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::storage::Backend;

const SALT_PATH: &str = "sys/token/salt";
const ID_PREFIX: &str = "sys/token/id/";
const ACCESSOR_PREFIX: &str = "sys/token/accessor/";

/// A stored token (never holds the token id itself).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TokenEntry {
    pub accessor: String,
    pub policies: Vec<String>,
    pub path: String,
    pub display_name: String,
    pub creation_time: String,
    /// Seconds; 0 = never expires (root).
    pub ttl: u64,
}

impl TokenEntry {
    pub(crate) fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
}

/// `s.` + 24 base62 characters (OpenBao's service token format).
pub(crate) fn new_service_token_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let body: String = (0..24)
        .map(|_| {
            let i = rng.random_range(0..ALPHABET.len());
            char::from(ALPHABET.get(i).copied().unwrap_or(b'0'))
        })
        .collect();
    format!("s.{body}")
}

fn new_accessor() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| {
            char::from(
                ALPHABET
                    .get(rng.random_range(0..ALPHABET.len()))
                    .copied()
                    .unwrap_or(b'0'),
            )
        })
        .collect()
}

/// Resolves and creates tokens.
#[derive(Default)]
pub(crate) struct TokenStore {
    salt: RwLock<Option<hmac::Key>>,
    cache: RwLock<HashMap<String, Arc<TokenEntry>>>,
}

impl TokenStore {
    /// Load (or create) the salt; called on unseal.
    pub(crate) async fn setup(&self, storage: &dyn Backend) -> Result<()> {
        let salt = match storage.get(SALT_PATH).await? {
            Some(s) => s,
            None => {
                let s = crate::barrier::aead::random_key(32)?.to_vec();
                storage.put(SALT_PATH, &s).await?;
                s
            }
        };
        *self
            .salt
            .write()
            .map_err(|_| Error::internal("token lock poisoned"))? =
            Some(hmac::Key::new(hmac::HMAC_SHA256, &salt));
        self.clear()
    }

    /// Forget cached state (on seal, or when another process may have changed tokens).
    pub(crate) fn clear(&self) -> Result<()> {
        self.cache
            .write()
            .map_err(|_| Error::internal("token lock poisoned"))?
            .clear();
        Ok(())
    }

    fn hash(&self, id: &str) -> Result<String> {
        let guard = self
            .salt
            .read()
            .map_err(|_| Error::internal("token lock poisoned"))?;
        let key = guard.as_ref().ok_or_else(Error::sealed)?;
        Ok(hex::encode(hmac::sign(key, id.as_bytes())))
    }

    /// Create a root token (at init, or a dev root token with a chosen id).
    pub(crate) async fn create_root(
        &self,
        storage: &dyn Backend,
        now: time::OffsetDateTime,
        id: Option<&str>,
    ) -> Result<String> {
        let id = id.map(str::to_string).unwrap_or_else(new_service_token_id);
        let entry = TokenEntry {
            accessor: new_accessor(),
            policies: vec!["root".into()],
            path: "auth/token/root".into(),
            display_name: "root".into(),
            creation_time: rfc3339(now),
            ttl: 0,
        };
        let hash = self.hash(&id)?;
        let raw = serde_json::to_vec(&entry)
            .map_err(|e| Error::internal("cannot encode token").with_source(e))?;
        storage
            .transaction(vec![
                crate::storage::TxnOp::Put {
                    key: format!("{ID_PREFIX}{hash}"),
                    value: raw,
                },
                crate::storage::TxnOp::Put {
                    key: format!("{ACCESSOR_PREFIX}{}", entry.accessor),
                    value: hash.into_bytes(),
                },
            ])
            .await?;
        Ok(id)
    }

    /// Resolve a token id. Unknown, empty and malformed tokens are all `None` (the caller
    /// answers "permission denied" without saying which).
    pub(crate) async fn lookup(
        &self,
        storage: &dyn Backend,
        id: &str,
    ) -> Result<Option<Arc<TokenEntry>>> {
        if id.is_empty() || id.len() > 512 {
            return Ok(None);
        }
        // The map is keyed by the HMAC, so lookups never compare raw token ids.
        let hash = self.hash(id)?;
        if let Some(e) = self
            .cache
            .read()
            .map_err(|_| Error::internal("token lock poisoned"))?
            .get(&hash)
        {
            return Ok(Some(e.clone()));
        }
        let Some(raw) = storage.get(&format!("{ID_PREFIX}{hash}")).await? else {
            return Ok(None);
        };
        let entry: TokenEntry =
            serde_json::from_slice(&raw).map_err(|_| Error::storage("token entry is corrupt"))?;
        let entry = Arc::new(entry);
        self.cache
            .write()
            .map_err(|_| Error::internal("token lock poisoned"))?
            .insert(hash, entry.clone());
        Ok(Some(entry))
    }

    /// Revoke a token by id (used when dev mode replaces the generated root token).
    pub(crate) async fn revoke(&self, storage: &dyn Backend, id: &str) -> Result<()> {
        let hash = self.hash(id)?;
        if let Some(e) = self.lookup(storage, id).await? {
            storage
                .transaction(vec![
                    crate::storage::TxnOp::Delete {
                        key: format!("{ID_PREFIX}{hash}"),
                    },
                    crate::storage::TxnOp::Delete {
                        key: format!("{ACCESSOR_PREFIX}{}", e.accessor),
                    },
                ])
                .await?;
        }
        self.cache
            .write()
            .map_err(|_| Error::internal("token lock poisoned"))?
            .remove(&hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;

    #[test]
    fn service_token_format() {
        let t = new_service_token_id();
        assert!(t.starts_with("s."));
        assert_eq!(t.len(), 26);
        assert!(t[2..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(t, new_service_token_id());
    }

    #[tokio::test]
    async fn root_token_is_stored_hashed() {
        let mem = MemoryBackend::new();
        let ts = TokenStore::default();
        ts.setup(&mem).await.unwrap();
        let id = ts
            .create_root(&mem, time::OffsetDateTime::UNIX_EPOCH, None)
            .await
            .unwrap();
        let keys = mem.scan("", &crate::storage::Page::all()).await.unwrap();
        assert!(keys.iter().all(|k| !k.contains(&id[2..])));
        for k in &keys {
            let v = mem.get(k).await.unwrap().unwrap();
            assert!(!v.windows(24).any(|w| w == id[2..].as_bytes()));
        }
        let e = ts.lookup(&mem, &id).await.unwrap().unwrap();
        assert!(e.is_root());
        assert!(ts.lookup(&mem, "s.nope").await.unwrap().is_none());
        assert!(ts.lookup(&mem, "").await.unwrap().is_none());
        ts.revoke(&mem, &id).await.unwrap();
        assert!(ts.lookup(&mem, &id).await.unwrap().is_none());
    }
}
