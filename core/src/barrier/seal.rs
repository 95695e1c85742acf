//! The Shamir seal: the unseal key (KEK) protects the root key; the KEK is split into shares.
//! `core/seal-config` is the only entry stored in clear.

use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::aead::{self, GcmKey};
use super::{Barrier, shamir};
use crate::error::{Error, ErrorCode, Result};
use crate::storage::TxnOp;

/// The seal configuration, in clear (OpenBao's field names).
pub(crate) const SEAL_CONFIG_PATH: &str = "core/seal-config";
/// The root key, encrypted by the KEK.
pub(crate) const ROOT_KEY_PATH: &str = "core/hsm/barrier-unseal-keys";

/// `core/seal-config`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SealConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: u8,
    pub secret_threshold: u8,
    #[serde(default)]
    pub pgp_keys: Option<Vec<String>>,
    #[serde(default)]
    pub nonce: String,
    #[serde(default)]
    pub backup: bool,
    #[serde(default)]
    pub stored_shares: u8,
}

/// What initialisation hands back once: the unseal key shares (and the root key for the
/// barrier, which the caller installs).
pub(crate) struct InitKeys {
    pub shares: Vec<Zeroizing<Vec<u8>>>,
}

/// Validate `secret_shares`/`secret_threshold` with OpenBao's texts.
pub(crate) fn validate_shares(shares: u64, threshold: u64) -> Result<(u8, u8)> {
    if shares < 1 {
        return Err(Error::invalid_input("shares must be at least one"));
    }
    if threshold < 1 {
        return Err(Error::invalid_input("threshold must be at least one"));
    }
    if shares > 1 && threshold == 1 {
        return Err(Error::invalid_input(
            "threshold must be greater than one for multiple shares",
        ));
    }
    if shares > 255 {
        return Err(Error::invalid_input("shares must be less than 256"));
    }
    if threshold > 255 {
        return Err(Error::invalid_input("threshold must be less than 256"));
    }
    if threshold > shares {
        return Err(Error::invalid_input(
            "threshold cannot be larger than shares",
        ));
    }
    Ok((shares as u8, threshold as u8))
}

/// Parse an unseal key given as hex or base64, with OpenBao's texts.
pub(crate) fn parse_key(input: &str) -> Result<Zeroizing<Vec<u8>>> {
    let input = input.trim();
    let bytes = match hex::decode(input) {
        Ok(b) => Zeroizing::new(b),
        Err(_) => Zeroizing::new(
            B64.decode(input)
                .map_err(|_| Error::invalid_input("'key' must be a valid hex or base64 string"))?,
        ),
    };
    if bytes.len() < 16 {
        return Err(Error::invalid_input(
            "invalid key: key is shorter than minimum 16 bytes",
        ));
    }
    Ok(bytes)
}

#[derive(Default)]
struct Progress {
    parts: Vec<Zeroizing<Vec<u8>>>,
    nonce: String,
}

/// The seal of one engine: init, unseal progress, root-key wrapping.
#[derive(Default)]
pub(crate) struct Seal {
    progress: Mutex<Progress>,
}

impl Seal {
    /// The stored seal configuration, if initialised.
    pub(crate) async fn config(&self, barrier: &Barrier) -> Result<Option<SealConfig>> {
        match barrier.physical().get(SEAL_CONFIG_PATH).await? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|_| Error::storage("seal configuration is corrupt")),
        }
    }

    /// Initialise: new KEK and root key, the keyring, and the shares to hand out.
    pub(crate) async fn init(
        &self,
        barrier: &Barrier,
        shares: u64,
        threshold: u64,
    ) -> Result<InitKeys> {
        let (shares, threshold) = validate_shares(shares, threshold)?;
        if barrier.initialized().await? || self.config(barrier).await?.is_some() {
            return Err(Error::new(
                ErrorCode::AlreadyInitialized,
                "Vault is already initialized",
            ));
        }
        let kek = aead::random_key(32)?;
        let root = aead::random_key(32)?;
        let config = SealConfig {
            kind: "shamir".into(),
            secret_shares: shares,
            secret_threshold: threshold,
            pgp_keys: None,
            nonce: String::new(),
            backup: false,
            stored_shares: 0,
        };
        let config_json = serde_json::to_vec(&config)
            .map_err(|e| Error::internal("cannot encode seal config").with_source(e))?;
        let ops = vec![
            TxnOp::Put {
                key: SEAL_CONFIG_PATH.into(),
                value: config_json,
            },
            wrap_root_op(&kek, &root)?,
        ];
        barrier.initialize(&root, ops).await?;
        let out = if shares == 1 {
            vec![kek]
        } else {
            shamir::split(&kek, usize::from(shares), usize::from(threshold))?
        };
        Ok(InitKeys { shares: out })
    }

    /// Submit one share. Returns `Ok(true)` once the threshold is met and the barrier is
    /// unsealed; `Ok(false)` while more shares are needed.
    pub(crate) async fn submit(&self, barrier: &Barrier, key: Zeroizing<Vec<u8>>) -> Result<bool> {
        let config = self
            .config(barrier)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::NotInitialized, "Vault is not initialized"))?;
        if !barrier.is_sealed() {
            return Err(Error::invalid_input("vault is unsealed"));
        }
        let threshold = usize::from(config.secret_threshold);
        let kek = {
            let mut p = self.lock()?;
            if p.parts.iter().any(|k| k.as_slice() == key.as_slice()) {
                // OpenBao ignores a share it already has.
                return Ok(false);
            }
            p.parts.push(key);
            if p.nonce.is_empty() {
                p.nonce = uuid::Uuid::new_v4().to_string();
            }
            if p.parts.len() < threshold {
                return Ok(false);
            }
            let parts = std::mem::take(&mut p.parts);
            p.nonce.clear();
            if threshold == 1 {
                parts
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::internal("no share"))?
            } else {
                let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
                shamir::combine(&refs)?
            }
        };
        self.unseal_with_kek(barrier, &kek).await?;
        Ok(true)
    }

    /// Unseal directly with the whole unseal key (key file, env var, dev mode).
    pub(crate) async fn unseal_with_kek(&self, barrier: &Barrier, kek: &[u8]) -> Result<()> {
        let blob = barrier
            .physical()
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::NotInitialized, "Vault is not initialized"))?;
        let root = GcmKey::new(kek)
            .map_err(|_| Error::invalid_input("unseal key must be 16 or 32 bytes"))?
            .open(ROOT_KEY_PATH, &blob)
            .map_err(|_| {
                Error::invalid_input(
                    "failed to decrypt keys from storage: cipher: message authentication failed",
                )
            })?;
        let list: Vec<String> = serde_json::from_slice(&root)
            .map_err(|_| Error::storage("stored root key is corrupt"))?;
        let root = Zeroizing::new(
            B64.decode(
                list.first()
                    .ok_or_else(|| Error::storage("stored root key is corrupt"))?,
            )
            .map_err(|_| Error::storage("stored root key is corrupt"))?,
        );
        barrier.unseal(&root).await
    }

    /// Replace the root key; the KEK (and so the shares) stay the same.
    pub(crate) async fn rotate_root(&self, barrier: &Barrier, kek: &[u8]) -> Result<()> {
        let new_root = aead::random_key(32)?;
        let op = wrap_root_op(kek, &new_root)?;
        barrier.rotate_root_key(&new_root, vec![op]).await
    }

    /// Drop the shares received so far.
    pub(crate) fn reset(&self) -> Result<()> {
        let mut p = self.lock()?;
        p.parts.clear();
        p.nonce.clear();
        Ok(())
    }

    /// Shares received so far and the progress nonce.
    pub(crate) fn progress(&self) -> Result<(usize, String)> {
        let p = self.lock()?;
        Ok((p.parts.len(), p.nonce.clone()))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Progress>> {
        self.progress.lock().or_else(crate::util::unpoison)
    }
}

fn wrap_root_op(kek: &[u8], root: &[u8]) -> Result<TxnOp> {
    let json = Zeroizing::new(
        serde_json::to_vec(&[B64.encode(root)])
            .map_err(|e| Error::internal("cannot encode root key").with_source(e))?,
    );
    Ok(TxnOp::Put {
        key: ROOT_KEY_PATH.into(),
        value: GcmKey::new(kek)?.seal(1, ROOT_KEY_PATH, &json)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use crate::storage::{Backend, MemoryBackend};
    use std::sync::Arc;

    fn barrier() -> Barrier {
        Barrier::new(
            Arc::new(MemoryBackend::new()),
            Arc::new(VirtualClock::new()),
            1 << 20,
        )
    }

    #[test]
    fn share_validation_texts() {
        let msg = |s, t| validate_shares(s, t).unwrap_err().message().to_string();
        assert_eq!(msg(0, 1), "shares must be at least one");
        assert_eq!(
            msg(3, 1),
            "threshold must be greater than one for multiple shares"
        );
        assert_eq!(msg(256, 3), "shares must be less than 256");
        assert_eq!(msg(3, 4), "threshold cannot be larger than shares");
        assert_eq!(validate_shares(5, 3).unwrap(), (5, 3));
    }

    #[test]
    fn key_parsing() {
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap().len(), 32);
        assert_eq!(parse_key(&B64.encode([1u8; 33])).unwrap().len(), 33);
        assert_eq!(
            parse_key("!!!").unwrap_err().message(),
            "'key' must be a valid hex or base64 string"
        );
        assert_eq!(
            parse_key("abcd").unwrap_err().message(),
            "invalid key: key is shorter than minimum 16 bytes"
        );
    }

    #[tokio::test]
    async fn init_then_unseal_with_threshold_shares() {
        let b = barrier();
        let seal = Seal::default();
        let keys = seal.init(&b, 5, 3).await.unwrap();
        assert_eq!(keys.shares.len(), 5);
        assert!(b.is_sealed());
        assert_eq!(
            seal.init(&b, 1, 1).await.err().unwrap().code(),
            ErrorCode::AlreadyInitialized
        );
        assert!(!seal.submit(&b, keys.shares[4].clone()).await.unwrap());
        // The same share twice does not count.
        assert!(!seal.submit(&b, keys.shares[4].clone()).await.unwrap());
        assert_eq!(seal.progress().unwrap().0, 1);
        assert!(!seal.submit(&b, keys.shares[0].clone()).await.unwrap());
        seal.reset().unwrap();
        assert_eq!(seal.progress().unwrap().0, 0);
        for s in &keys.shares[1..4] {
            seal.submit(&b, s.clone()).await.unwrap();
        }
        assert!(!b.is_sealed());
        assert_eq!(
            seal.submit(&b, keys.shares[0].clone())
                .await
                .unwrap_err()
                .message(),
            "vault is unsealed"
        );
    }

    #[tokio::test]
    async fn wrong_shares_keep_it_sealed() {
        let b = barrier();
        let seal = Seal::default();
        let _keys = seal.init(&b, 3, 2).await.unwrap();
        let other = shamir::split(&[3u8; 32], 3, 2).unwrap();
        seal.submit(&b, other[0].clone()).await.unwrap();
        let e = seal.submit(&b, other[1].clone()).await.unwrap_err();
        assert!(e.message().contains("message authentication failed"));
        assert!(b.is_sealed());
        assert_eq!(seal.progress().unwrap().0, 0);
    }

    #[tokio::test]
    async fn root_rotation_keeps_the_unseal_key() {
        let b = barrier();
        let seal = Seal::default();
        let keys = seal.init(&b, 1, 1).await.unwrap();
        seal.unseal_with_kek(&b, &keys.shares[0]).await.unwrap();
        b.put("x", b"y").await.unwrap();
        seal.rotate_root(&b, &keys.shares[0]).await.unwrap();
        b.seal().unwrap();
        seal.unseal_with_kek(&b, &keys.shares[0]).await.unwrap();
        assert_eq!(b.get("x").await.unwrap().unwrap(), b"y");
    }
}
