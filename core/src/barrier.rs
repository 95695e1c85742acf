//! The storage barrier: everything above storage is encrypted here. A keyring of AES-256-GCM
//! terms encrypts entries (`term ‖ 0x02 ‖ nonce ‖ ct ‖ tag`, path as AAD); the root key encrypts
//! the keyring; the seal ([`seal`]) protects the root key with the unseal key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::clock::{SharedClock, parse_rfc3339, rfc3339};
use crate::error::{Error, Result};
use crate::storage::{Backend, Page, TxnOp};

pub(crate) mod aead;
pub(crate) mod decoded;
pub(crate) mod seal;
pub(crate) mod shamir;

use aead::GcmKey;
use decoded::DecodedCache;

/// Where the keyring lives (encrypted by the root key).
pub(crate) const KEYRING_PATH: &str = "core/keyring";
/// OpenBao's default `max_operations` before automatic rotation (≈ 0.9·2³²).
pub(crate) const DEFAULT_MAX_OPERATIONS: u64 = 3_865_470_566;

/// One keyring term.
struct TermKey {
    term: u32,
    value: Zeroizing<Vec<u8>>,
    key: GcmKey,
    install_time: OffsetDateTime,
    encryptions: AtomicU64,
}

/// Automatic-rotation settings (`sys/rotate/config`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RotationConfig {
    #[serde(rename = "Disabled")]
    pub disabled: bool,
    #[serde(rename = "MaxOperations")]
    pub max_operations: u64,
    /// Seconds; 0 = no time-based rotation.
    #[serde(rename = "Interval")]
    pub interval: u64,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            disabled: false,
            max_operations: DEFAULT_MAX_OPERATIONS,
            interval: 0,
        }
    }
}

struct Keyring {
    root_key: Zeroizing<Vec<u8>>,
    terms: BTreeMap<u32, Arc<TermKey>>,
    active: Arc<TermKey>,
    rotation: RotationConfig,
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    #[serde(rename = "Term")]
    term: u32,
    #[serde(rename = "Version")]
    version: u32,
    #[serde(rename = "Value")]
    value: String,
    #[serde(rename = "InstallTime")]
    install_time: String,
    #[serde(rename = "encryptions", default)]
    encryptions: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    #[serde(rename = "MasterKey")]
    master_key: String,
    #[serde(rename = "Keys")]
    keys: Vec<StoredTerm>,
    #[serde(rename = "RotationConfig", default)]
    rotation: RotationConfig,
}

impl Keyring {
    fn to_json(&self) -> Result<Zeroizing<Vec<u8>>> {
        let stored = StoredKeyring {
            master_key: B64.encode(self.root_key.as_slice()),
            keys: self
                .terms
                .values()
                .map(|t| StoredTerm {
                    term: t.term,
                    version: 1,
                    value: B64.encode(t.value.as_slice()),
                    install_time: rfc3339(t.install_time),
                    encryptions: t.encryptions.load(Ordering::Relaxed),
                })
                .collect(),
            rotation: self.rotation.clone(),
        };
        let json = serde_json::to_vec(&stored)
            .map_err(|e| Error::internal("cannot encode keyring").with_source(e))?;
        let out = Zeroizing::new(json);
        // `stored` holds base64 key copies: wipe them.
        let mut stored = stored;
        zeroize::Zeroize::zeroize(&mut stored.master_key);
        for k in &mut stored.keys {
            zeroize::Zeroize::zeroize(&mut k.value);
        }
        Ok(out)
    }

    fn from_json(json: &[u8]) -> Result<Keyring> {
        let bad = || Error::storage("keyring is corrupt");
        let mut stored: StoredKeyring = serde_json::from_slice(json).map_err(|_| bad())?;
        let root_key = Zeroizing::new(B64.decode(&stored.master_key).map_err(|_| bad())?);
        let mut terms = BTreeMap::new();
        for t in &stored.keys {
            let value = Zeroizing::new(B64.decode(&t.value).map_err(|_| bad())?);
            let key = GcmKey::new(&value)?;
            terms.insert(
                t.term,
                Arc::new(TermKey {
                    term: t.term,
                    value,
                    key,
                    install_time: parse_rfc3339(&t.install_time)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    encryptions: AtomicU64::new(t.encryptions),
                }),
            );
        }
        zeroize::Zeroize::zeroize(&mut stored.master_key);
        for k in &mut stored.keys {
            zeroize::Zeroize::zeroize(&mut k.value);
        }
        let active = terms.values().next_back().cloned().ok_or_else(bad)?;
        Ok(Keyring {
            root_key,
            terms,
            active,
            rotation: stored.rotation,
        })
    }

    fn seal_with_root(&self) -> Result<Vec<u8>> {
        GcmKey::new(&self.root_key)?.seal(1, KEYRING_PATH, &self.to_json()?)
    }
}

/// What `sys/key-status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyStatus {
    pub term: u32,
    pub install_time: OffsetDateTime,
    pub encryptions: u64,
}

/// The encrypting layer over a physical [`Backend`]. Sealed until [`Barrier::unseal`].
pub(crate) struct Barrier {
    backend: Arc<dyn Backend>,
    keyring: RwLock<Option<Arc<Keyring>>>,
    clock: SharedClock,
    max_entry_size: usize,
    decoded: DecodedCache,
}

impl Barrier {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        clock: SharedClock,
        max_entry_size: usize,
    ) -> Barrier {
        Barrier {
            backend,
            keyring: RwLock::new(None),
            clock,
            max_entry_size,
            decoded: DecodedCache::new(0, 0),
        }
    }

    /// Keep up to `capacity` decoded entries, about `max_bytes` in all, for
    /// [`Barrier::get_decoded`] (see [`decoded`] for what that trades).
    pub(crate) fn with_decoded_cache(mut self, capacity: usize, max_bytes: usize) -> Barrier {
        self.decoded = DecodedCache::new(capacity, max_bytes);
        self
    }

    /// The entry at `key`, decrypted and decoded by `decode`, from the decoded cache while the
    /// stored ciphertext is the one it was decoded from. An entry last decoded as another
    /// type is decoded again.
    pub(crate) async fn get_decoded<T: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        decode: impl FnOnce(&[u8]) -> Result<T> + Send,
    ) -> Result<Option<Arc<T>>> {
        self.current()?;
        let Some(blob) = self.backend.get_shared(key).await? else {
            return Ok(None);
        };
        if let Some(hit) = self.decoded.get(key, &blob) {
            if let Ok(value) = hit.downcast::<T>() {
                return Ok(Some(value));
            }
        }
        let plain = self.decrypt(key, &blob).await?;
        let value = Arc::new(decode(&plain)?);
        // A decoded JSON entry holds about three times its encoded size (maps, strings).
        let weight = plain.len().saturating_mul(3);
        self.decoded.insert(key, blob, value.clone(), weight);
        // A seal that ran meanwhile cleared the cache before this insert: clear it again.
        if self.is_sealed() {
            self.decoded.clear();
        }
        Ok(Some(value))
    }

    /// The physical backend below the barrier (for the seal's clear-text entries).
    pub(crate) fn physical(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    fn current(&self) -> Result<Arc<Keyring>> {
        self.keyring
            .read()
            .or_else(crate::util::unpoison)?
            .clone()
            .ok_or_else(Error::sealed)
    }

    fn install(&self, keyring: Option<Keyring>) -> Result<()> {
        *self.keyring.write().or_else(crate::util::unpoison)? = keyring.map(Arc::new);
        Ok(())
    }

    /// Whether a keyring exists in storage.
    pub(crate) async fn initialized(&self) -> Result<bool> {
        Ok(self.backend.get(KEYRING_PATH).await?.is_some())
    }

    /// Whether the barrier is sealed.
    pub(crate) fn is_sealed(&self) -> bool {
        self.keyring.read().map(|k| k.is_none()).unwrap_or(true)
    }

    fn new_term(&self, term: u32) -> Result<Arc<TermKey>> {
        let value = aead::random_key(32)?;
        let key = GcmKey::new(&value)?;
        Ok(Arc::new(TermKey {
            term,
            value,
            key,
            install_time: self.clock.now(),
            encryptions: AtomicU64::new(0),
        }))
    }

    /// Create the keyring (term 1) under `root_key`, as part of initialisation. `extra` ops are
    /// written in the same transaction (the seal's entries).
    pub(crate) async fn initialize(&self, root_key: &[u8], extra: Vec<TxnOp>) -> Result<()> {
        if self.initialized().await? {
            return Err(Error::new(
                crate::ErrorCode::AlreadyInitialized,
                "Vault is already initialized",
            ));
        }
        let active = self.new_term(1)?;
        let keyring = Keyring {
            root_key: Zeroizing::new(root_key.to_vec()),
            terms: BTreeMap::from([(1, active.clone())]),
            active,
            rotation: RotationConfig::default(),
        };
        let mut ops = extra;
        ops.push(TxnOp::Check {
            key: KEYRING_PATH.into(),
            expected: None,
        });
        ops.push(TxnOp::Put {
            key: KEYRING_PATH.into(),
            value: keyring.seal_with_root()?,
        });
        self.backend.transaction(ops).await
    }

    /// Load the keyring with the root key; wrong key → an error and still sealed.
    pub(crate) async fn unseal(&self, root_key: &[u8]) -> Result<()> {
        let keyring = self.load(root_key).await?;
        self.install(Some(keyring))
    }

    async fn load(&self, root_key: &[u8]) -> Result<Keyring> {
        let blob = self.backend.get(KEYRING_PATH).await?.ok_or_else(|| {
            Error::new(crate::ErrorCode::NotInitialized, "Vault is not initialized")
        })?;
        let json = GcmKey::new(root_key)?
            .open(KEYRING_PATH, &blob)
            .map_err(|_| {
                Error::storage("failed to decrypt keyring: the root key does not match")
            })?;
        Keyring::from_json(&json)
    }

    /// Forget every key, and every decoded entry.
    pub(crate) fn seal(&self) -> Result<()> {
        let r = self.install(None);
        self.decoded.clear();
        r
    }

    /// Re-read the keyring (another process rotated it).
    async fn reload(&self) -> Result<Arc<Keyring>> {
        let root = Zeroizing::new(self.current()?.root_key.to_vec());
        let keyring = self.load(&root).await?;
        self.install(Some(keyring))?;
        self.current()
    }

    /// Add a new term and make it active (`sys/rotate`). Returns the new term.
    pub(crate) async fn rotate(&self) -> Result<u32> {
        // Start from storage so two processes rotating never lose a term.
        let current = self.reload().await?;
        let next = current
            .active
            .term
            .checked_add(1)
            .ok_or_else(|| Error::internal("term overflow"))?;
        let active = self.new_term(next)?;
        let mut terms = current.terms.clone();
        terms.insert(next, active.clone());
        let keyring = Keyring {
            root_key: Zeroizing::new(current.root_key.to_vec()),
            terms,
            active,
            rotation: current.rotation.clone(),
        };
        self.persist(&keyring).await?;
        self.install(Some(keyring))?;
        Ok(next)
    }

    async fn persist(&self, after: &Keyring) -> Result<()> {
        let old = self.backend.get(KEYRING_PATH).await?;
        // The check makes a concurrent rotation in another process fail instead of being lost.
        self.backend
            .transaction(vec![
                TxnOp::Check {
                    key: KEYRING_PATH.into(),
                    expected: old,
                },
                TxnOp::Put {
                    key: KEYRING_PATH.into(),
                    value: after.seal_with_root()?,
                },
            ])
            .await
    }

    /// Replace the root key: the keyring is re-encrypted under `new_root`, and `extra` (the
    /// seal's re-wrapped root key) lands in the same transaction.
    pub(crate) async fn rotate_root_key(&self, new_root: &[u8], extra: Vec<TxnOp>) -> Result<()> {
        let current = self.reload().await?;
        let keyring = Keyring {
            root_key: Zeroizing::new(new_root.to_vec()),
            terms: current.terms.clone(),
            active: current.active.clone(),
            rotation: current.rotation.clone(),
        };
        let old = self.backend.get(KEYRING_PATH).await?;
        let mut ops = extra;
        ops.push(TxnOp::Check {
            key: KEYRING_PATH.into(),
            expected: old,
        });
        ops.push(TxnOp::Put {
            key: KEYRING_PATH.into(),
            value: keyring.seal_with_root()?,
        });
        self.backend.transaction(ops).await?;
        self.install(Some(keyring))
    }

    /// The active term, its install time and how many encryptions it did.
    pub(crate) fn key_status(&self) -> Result<KeyStatus> {
        let k = self.current()?;
        Ok(KeyStatus {
            term: k.active.term,
            install_time: k.active.install_time,
            encryptions: k.active.encryptions.load(Ordering::Relaxed),
        })
    }

    /// The automatic-rotation settings.
    pub(crate) fn rotation_config(&self) -> Result<RotationConfig> {
        Ok(self.current()?.rotation.clone())
    }

    /// Change the automatic-rotation settings.
    pub(crate) async fn set_rotation_config(&self, cfg: RotationConfig) -> Result<()> {
        let current = self.reload().await?;
        let keyring = Keyring {
            root_key: Zeroizing::new(current.root_key.to_vec()),
            terms: current.terms.clone(),
            active: current.active.clone(),
            rotation: cfg,
        };
        self.persist(&keyring).await?;
        self.install(Some(keyring))
    }

    /// Whether the active term is due for rotation under the rotation config.
    pub(crate) fn rotation_due(&self) -> Result<bool> {
        let k = self.current()?;
        if k.rotation.disabled {
            return Ok(false);
        }
        let ops = k.active.encryptions.load(Ordering::Relaxed);
        let by_ops = k.rotation.max_operations > 0 && ops >= k.rotation.max_operations;
        let age = self.clock.now() - k.active.install_time;
        let by_time = k.rotation.interval > 0 && age.whole_seconds() >= k.rotation.interval as i64;
        Ok(by_ops || by_time)
    }

    /// `ops` as the backend stores them: values encrypted, checks turned into checks of the
    /// ciphertexts that hold the expected plaintexts.
    async fn seal_ops(&self, ops: Vec<TxnOp>) -> Result<Vec<TxnOp>> {
        self.current()?;
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            if let TxnOp::Put { key, .. } | TxnOp::Delete { key } = &op {
                self.decoded.forget(key);
            }
            out.push(match op {
                TxnOp::Put { key, value } => {
                    let value = self.encrypt(&key, &value)?;
                    TxnOp::Put { key, value }
                }
                TxnOp::Delete { key } => TxnOp::Delete { key },
                TxnOp::Check { key, expected } => {
                    // Ciphertexts differ per write: compare plaintexts here, then let the
                    // backend check atomically that the ciphertext we compared is still there.
                    let raw = self.backend.get(&key).await?;
                    let plain = match &raw {
                        Some(b) => Some(self.decrypt(&key, b).await?),
                        None => None,
                    };
                    if plain.as_ref().map(|p| p.as_slice()) != expected.as_deref() {
                        return Err(Error::conflict(format!(
                            "transaction precondition failed on `{key}`"
                        )));
                    }
                    TxnOp::Check { key, expected: raw }
                }
            });
        }
        Ok(out)
    }

    fn encrypt(&self, path: &str, value: &[u8]) -> Result<Vec<u8>> {
        let k = self.current()?;
        // The limit is for what callers store through engines (`logical/`); the engine's own
        // tables (policies, tokens, mounts) are not the caller's values.
        if value.len() > self.max_entry_size && path.starts_with("logical/") {
            return Err(Error::too_large(format!(
                "value of {} bytes is over the limit of {} bytes",
                value.len(),
                self.max_entry_size
            )));
        }
        k.active.encryptions.fetch_add(1, Ordering::Relaxed);
        k.active.key.seal(k.active.term, path, value)
    }

    async fn decrypt(&self, path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let term = aead::term_of(blob)
            .ok_or_else(|| Error::storage(format!("stored entry at `{path}` is corrupt")))?;
        let mut k = self.current()?;
        if !k.terms.contains_key(&term) {
            k = self.reload().await?;
        }
        let t = k
            .terms
            .get(&term)
            .ok_or_else(|| Error::storage(format!("no key for term {term} (entry at `{path}`)")))?;
        t.key.open(path, blob)
    }
}

/// The fuzz target's view of the keyring decoder.
#[cfg(feature = "bench-internals")]
pub(crate) fn fuzz_decode_keyring(json: &[u8]) -> Result<()> {
    Keyring::from_json(json).map(|_| ())
}

/// Store `blob` as a barrier entry under a fresh barrier and read it back through it (the
/// fuzz target's view of how stored entries are decoded).
#[cfg(feature = "bench-internals")]
pub(crate) async fn fuzz_read_blob(blob: &[u8]) -> Result<()> {
    let mem = Arc::new(crate::storage::MemoryBackend::new());
    let barrier = Barrier::new(
        mem.clone(),
        Arc::new(crate::clock::VirtualClock::new()),
        1 << 20,
    );
    barrier.initialize(&[7u8; 32], Vec::new()).await?;
    mem.put("logical/fuzz", blob).await?;
    barrier.get("logical/fuzz").await.map(|_| ())
}

#[async_trait]
impl Backend for Barrier {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.current()?;
        // Decrypt straight from the cache's buffer: one copy (the plaintext) per read.
        match self.backend.get_shared(key).await? {
            None => Ok(None),
            Some(blob) => {
                let mut pt = self.decrypt(key, &blob).await?;
                Ok(Some(std::mem::take(&mut *pt)))
            }
        }
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        let blob = self.encrypt(key, value)?;
        self.decoded.forget(key);
        self.backend.put(key, &blob).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.current()?;
        self.decoded.forget(key);
        self.backend.delete(key).await
    }

    async fn list(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        self.current()?;
        self.backend.list(prefix, page).await
    }

    async fn scan(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        self.current()?;
        self.backend.scan(prefix, page).await
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        let ops = self.seal_ops(ops).await?;
        self.backend.transaction(ops).await
    }

    async fn transaction_unsynced(&self, ops: Vec<TxnOp>) -> Result<()> {
        let ops = self.seal_ops(ops).await?;
        self.backend.transaction_unsynced(ops).await
    }

    async fn change_marker(&self) -> Result<Option<u64>> {
        self.backend.change_marker().await
    }
    async fn external_change_marker(&self) -> Result<Option<u64>> {
        self.backend.external_change_marker().await
    }

    async fn hold_lock(&self, name: &str) -> Result<Option<bool>> {
        self.backend.hold_lock(name).await
    }

    async fn release_lock(&self, name: &str) -> Result<()> {
        self.backend.release_lock(name).await
    }

    fn kind(&self) -> &'static str {
        self.backend.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use crate::storage::MemoryBackend;

    fn barrier() -> (Arc<MemoryBackend>, Barrier) {
        let mem = Arc::new(MemoryBackend::new());
        let b = Barrier::new(mem.clone(), Arc::new(VirtualClock::new()), 1 << 20);
        (mem, b)
    }

    #[tokio::test]
    async fn sealed_until_unsealed_and_values_encrypted() {
        let (mem, b) = barrier();
        let root = aead::random_key(32).unwrap();
        assert!(!b.initialized().await.unwrap());
        b.initialize(&root, vec![]).await.unwrap();
        assert_eq!(
            b.get("x").await.unwrap_err().code(),
            crate::ErrorCode::Sealed
        );
        b.unseal(&root).await.unwrap();
        b.put("logical/a", b"top secret").await.unwrap();
        let raw = mem.get("logical/a").await.unwrap().unwrap();
        assert_eq!(&raw[..5], &[0, 0, 0, 1, 2]);
        assert!(!raw.windows(10).any(|w| w == b"top secret"));
        assert_eq!(b.get("logical/a").await.unwrap().unwrap(), b"top secret");
        b.seal().unwrap();
        assert!(b.is_sealed());
        assert_eq!(
            b.put("x", b"y").await.unwrap_err().code(),
            crate::ErrorCode::Sealed
        );
        let wrong = aead::random_key(32).unwrap();
        assert!(b.unseal(&wrong).await.is_err());
        assert!(b.is_sealed());
    }

    #[tokio::test]
    async fn decoded_reads_follow_the_stored_ciphertext_and_seal_drops_them() {
        let (mem, b) = barrier();
        let b = b.with_decoded_cache(8, 1 << 20);
        let root = aead::random_key(32).unwrap();
        b.initialize(&root, vec![]).await.unwrap();
        b.unseal(&root).await.unwrap();
        let decode = |raw: &[u8]| Ok(String::from_utf8_lossy(raw).into_owned());
        b.put("logical/a", b"one").await.unwrap();
        let first = b.get_decoded("logical/a", decode).await.unwrap().unwrap();
        assert_eq!(first.as_str(), "one");
        // Served from the cache: the same decoded value, no second decode.
        let again = b
            .get_decoded("logical/a", |_: &[u8]| -> Result<String> {
                Err(Error::internal("decoded twice"))
            })
            .await
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // A write below this barrier's back (another process) is seen at once.
        let other = Barrier::new(mem.clone(), Arc::new(VirtualClock::new()), 1 << 20);
        other.unseal(&root).await.unwrap();
        other.put("logical/a", b"two").await.unwrap();
        let fresh = b.get_decoded("logical/a", decode).await.unwrap().unwrap();
        assert_eq!(fresh.as_str(), "two");
        // A tampered entry is an error, never the cached value.
        let mut raw = mem.get("logical/a").await.unwrap().unwrap();
        raw[10] ^= 0xff;
        mem.put("logical/a", &raw).await.unwrap();
        let e = b.get_decoded("logical/a", decode).await.unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::Storage);
        // This process's own delete, write or transaction drops the entry at once.
        b.put("logical/a", b"three").await.unwrap();
        b.get_decoded("logical/a", decode).await.unwrap().unwrap();
        assert_eq!(b.decoded.len(), 1);
        b.delete("logical/a").await.unwrap();
        assert_eq!(b.decoded.len(), 0);
        b.put("logical/a", b"four").await.unwrap();
        b.get_decoded("logical/a", decode).await.unwrap().unwrap();
        b.put("logical/a", b"five").await.unwrap();
        assert_eq!(b.decoded.len(), 0);
        b.get_decoded("logical/a", decode).await.unwrap().unwrap();
        b.transaction(vec![TxnOp::Delete {
            key: "logical/a".into(),
        }])
        .await
        .unwrap();
        assert_eq!(b.decoded.len(), 0);
        b.put("logical/a", b"six").await.unwrap();
        assert_eq!(
            b.get_decoded("logical/a", decode)
                .await
                .unwrap()
                .unwrap()
                .as_str(),
            "six"
        );
        // Sealing drops every decoded entry.
        assert!(b.decoded.len() > 0);
        b.seal().unwrap();
        assert_eq!(b.decoded.len(), 0);
        assert_eq!(
            b.get_decoded("logical/a", decode).await.unwrap_err().code(),
            crate::ErrorCode::Sealed
        );
    }

    #[tokio::test]
    async fn rotation_keeps_old_terms_readable() {
        let (mem, b) = barrier();
        let root = aead::random_key(32).unwrap();
        b.initialize(&root, vec![]).await.unwrap();
        b.unseal(&root).await.unwrap();
        b.put("a", b"one").await.unwrap();
        assert_eq!(b.rotate().await.unwrap(), 2);
        b.put("b", b"two").await.unwrap();
        assert_eq!(
            aead::term_of(&mem.get("b").await.unwrap().unwrap()),
            Some(2)
        );
        assert_eq!(b.get("a").await.unwrap().unwrap(), b"one");
        let st = b.key_status().unwrap();
        assert_eq!((st.term, st.encryptions), (2, 1));
        // Root-key rotation: old root no longer opens the keyring, new one does.
        let new_root = aead::random_key(32).unwrap();
        b.rotate_root_key(&new_root, vec![]).await.unwrap();
        b.seal().unwrap();
        assert!(b.unseal(&root).await.is_err());
        b.unseal(&new_root).await.unwrap();
        assert_eq!(b.get("b").await.unwrap().unwrap(), b"two");
    }

    #[tokio::test]
    async fn a_second_handle_follows_rotation_by_another() {
        let mem = Arc::new(MemoryBackend::new());
        let clock: SharedClock = Arc::new(VirtualClock::new());
        let b1 = Barrier::new(mem.clone(), clock.clone(), 1 << 20);
        let b2 = Barrier::new(mem.clone(), clock, 1 << 20);
        let root = aead::random_key(32).unwrap();
        b1.initialize(&root, vec![]).await.unwrap();
        b1.unseal(&root).await.unwrap();
        b2.unseal(&root).await.unwrap();
        b1.rotate().await.unwrap();
        b1.put("k", b"v").await.unwrap();
        assert_eq!(b2.get("k").await.unwrap().unwrap(), b"v");
    }

    #[tokio::test]
    async fn tampered_entry_is_a_storage_error_and_moved_entry_fails() {
        let (mem, b) = barrier();
        let root = aead::random_key(32).unwrap();
        b.initialize(&root, vec![]).await.unwrap();
        b.unseal(&root).await.unwrap();
        b.put("a", b"value").await.unwrap();
        let mut raw = mem.get("a").await.unwrap().unwrap();
        mem.put("moved", &raw).await.unwrap();
        assert_eq!(
            b.get("moved").await.unwrap_err().code(),
            crate::ErrorCode::Storage
        );
        raw[10] ^= 0xff;
        mem.put("a", &raw).await.unwrap();
        let e = b.get("a").await.unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::Storage);
        assert!(!e.message().contains("value"));
    }

    #[tokio::test]
    async fn transaction_checks_compare_plaintext() {
        let (_mem, b) = barrier();
        let root = aead::random_key(32).unwrap();
        b.initialize(&root, vec![]).await.unwrap();
        b.unseal(&root).await.unwrap();
        b.put("c", b"1").await.unwrap();
        let ok = vec![
            TxnOp::Check {
                key: "c".into(),
                expected: Some(b"1".to_vec()),
            },
            TxnOp::Put {
                key: "c".into(),
                value: b"2".to_vec(),
            },
        ];
        b.transaction(ok).await.unwrap();
        let stale = vec![
            TxnOp::Check {
                key: "c".into(),
                expected: Some(b"1".to_vec()),
            },
            TxnOp::Put {
                key: "c".into(),
                value: b"3".to_vec(),
            },
        ];
        assert_eq!(
            b.transaction(stale).await.unwrap_err().code(),
            crate::ErrorCode::Conflict
        );
        assert_eq!(b.get("c").await.unwrap().unwrap(), b"2");
    }
}
