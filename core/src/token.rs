//! The token store: service tokens (`s.` + 24 base62), batch tokens (`b.`, encrypted, never
//! stored), accessors, the parent/child tree, roles. Token ids are stored only salted:
//! `"h" + hex(HMAC-SHA256(salt, id))` (ids without a `.` use OpenBao's legacy SHA1 form).

use std::sync::{Arc, RwLock};

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rand::Rng;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::barrier::aead::{self, GcmKey};
use crate::clock::rfc3339;
use crate::error::{Error, ErrorCode, Result};
use crate::storage::{Backend, Page, TxnOp};
use crate::util::bounded::BoundedMap;

pub(crate) mod endpoints;
pub(crate) mod entry;
pub(crate) mod roles;

pub(crate) use entry::TokenEntry;

const SALT_PATH: &str = "sys/token/salt";
const BATCH_KEY_PATH: &str = "sys/token/batch-key";
pub(crate) const ID_PREFIX: &str = "sys/token/id/";
pub(crate) const ACCESSOR_PREFIX: &str = "sys/token/accessor/";
pub(crate) const PARENT_PREFIX: &str = "sys/token/parent/";

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub(crate) fn base62(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            char::from(
                BASE62
                    .get(rng.random_range(0..BASE62.len()))
                    .copied()
                    .unwrap_or(b'0'),
            )
        })
        .collect()
}

/// `s.` + 24 base62 characters (OpenBao's service token format).
pub(crate) fn new_service_token_id() -> String {
    format!("s.{}", base62(24))
}

struct Keys {
    salt: String,
    hmac: hmac::Key,
    batch: GcmKey,
}

/// Resolves, creates and revokes tokens.
pub(crate) struct TokenStore {
    keys: RwLock<Option<Arc<Keys>>>,
    /// Entries by salted id, bounded in bytes ([`crate::Config::token_cache_bytes`]).
    cache: RwLock<BoundedMap<Arc<TokenEntry>>>,
    /// Bumped after every change to a cached entry, so decisions cached above the store
    /// (the typed API's fast path) know they must be made again.
    generation: std::sync::atomic::AtomicU64,
    /// The cubbyhole mount's storage prefix (`logical/<uuid>/`), set when the router is
    /// built: revoking a token destroys its cubbyhole under `<prefix><salted id>/`.
    cubbyhole_prefix: RwLock<Option<String>>,
}

fn encode(entry: &TokenEntry) -> Result<Vec<u8>> {
    serde_json::to_vec(entry)
        .map_err(|e| Error::internal("cannot encode token entry").with_source(e))
}

pub(crate) fn decode(raw: &[u8]) -> Result<TokenEntry> {
    serde_json::from_slice(raw).map_err(|_| Error::storage("token entry is corrupt"))
}

impl Default for TokenStore {
    fn default() -> TokenStore {
        TokenStore::with_cache_bytes(16 << 20)
    }
}

/// What a cached token entry weighs: its strings, and the fixed part of the struct.
fn entry_weight(e: &TokenEntry) -> usize {
    let strings = [
        &e.salted_id,
        &e.accessor,
        &e.display_name,
        &e.issue_time,
        &e.path,
        &e.role,
        &e.entity_id,
        &e.token_type,
    ]
    .iter()
    .map(|s| s.len())
    .sum::<usize>();
    let lists = e
        .policies
        .iter()
        .chain(e.bound_cidrs.iter())
        .chain(e.parent.iter())
        .map(|s| s.len() + 24)
        .sum::<usize>();
    let meta = e
        .meta
        .iter()
        .map(|(k, v)| k.len() + v.len() + 64)
        .sum::<usize>();
    std::mem::size_of::<TokenEntry>() + strings + lists + meta
}

impl TokenStore {
    /// A store whose cache of entries holds about `max_bytes` (0: no cache).
    pub(crate) fn with_cache_bytes(max_bytes: usize) -> TokenStore {
        TokenStore {
            keys: RwLock::new(None),
            cache: RwLock::new(BoundedMap::new(usize::MAX, max_bytes)),
            generation: std::sync::atomic::AtomicU64::new(0),
            cubbyhole_prefix: RwLock::new(None),
        }
    }

    /// Load (or create) the salt and the batch-token key; called on unseal.
    pub(crate) async fn setup(&self, storage: &dyn Backend) -> Result<()> {
        let salt = match storage.get(SALT_PATH).await? {
            Some(s) => String::from_utf8(s).map_err(|_| Error::storage("token salt is corrupt"))?,
            None => {
                let s = uuid::Uuid::new_v4().to_string();
                storage.put(SALT_PATH, s.as_bytes()).await?;
                s
            }
        };
        let batch = match storage.get(BATCH_KEY_PATH).await? {
            Some(k) => Zeroizing::new(k),
            None => {
                let k = aead::random_key(32)?;
                storage.put(BATCH_KEY_PATH, &k).await?;
                k
            }
        };
        let keys = Keys {
            hmac: hmac::Key::new(hmac::HMAC_SHA256, salt.as_bytes()),
            salt,
            batch: GcmKey::new(&batch)?,
        };
        *self.keys.write().or_else(crate::util::unpoison)? = Some(Arc::new(keys));
        self.clear()
    }

    /// Forget cached entries (on seal, or when another process may have changed tokens).
    pub(crate) fn clear(&self) -> Result<()> {
        self.cache.write().or_else(crate::util::unpoison)?.clear();
        self.bump();
        Ok(())
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Changes whenever a token entry changes or is revoked (read it before deciding).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Where token cubbyholes live (see the field); `None` when there is no cubbyhole mount.
    pub(crate) fn set_cubbyhole_prefix(&self, prefix: Option<String>) -> Result<()> {
        *self
            .cubbyhole_prefix
            .write()
            .or_else(crate::util::unpoison)? = prefix;
        Ok(())
    }

    /// The storage prefix of this token's cubbyhole, when there is a cubbyhole mount.
    pub(crate) fn cubbyhole_of(&self, salted: &str) -> Result<Option<String>> {
        Ok(self
            .cubbyhole_prefix
            .read()
            .or_else(crate::util::unpoison)?
            .as_ref()
            .map(|p| format!("{p}{salted}/")))
    }

    fn keys(&self) -> Result<Arc<Keys>> {
        self.keys
            .read()
            .or_else(crate::util::unpoison)?
            .clone()
            .ok_or_else(Error::sealed)
    }

    /// The salted form of a token id (or accessor): OpenBao's `SaltID`.
    pub(crate) fn salt_id(&self, id: &str) -> Result<String> {
        let k = self.keys()?;
        if id.contains('.') {
            Ok(format!(
                "h{}",
                crate::util::hex_lower(hmac::sign(&k.hmac, id.as_bytes()).as_ref())
            ))
        } else {
            let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
            ctx.update(k.salt.as_bytes());
            ctx.update(id.as_bytes());
            Ok(crate::util::hex_lower(ctx.finish().as_ref()))
        }
    }

    fn uncache(&self, salted: &str) -> Result<()> {
        self.cache
            .write()
            .or_else(crate::util::unpoison)?
            .remove(salted);
        self.bump();
        Ok(())
    }

    /// Resolve a token id to its entry. Unknown, expired, malformed: all `None`, so callers
    /// answer "permission denied" without saying which.
    pub(crate) async fn lookup(
        &self,
        storage: &dyn Backend,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Arc<TokenEntry>>> {
        if id.is_empty() || id.len() > 4096 {
            return Ok(None);
        }
        if let Some(body) = id.strip_prefix("b.") {
            let Some(mut entry) = self.open_batch(body)?.filter(|e| !e.expired(now)) else {
                return Ok(None);
            };
            // As OpenBao's token store (`lookupInternal`): a non-orphan batch token is valid
            // only while its parent is, so revoking, expiring or tidying the parent ends it.
            if let Some(parent) = &entry.parent {
                let Some(p) = self.resolve_salted(storage, parent, now).await? else {
                    return Ok(None);
                };
                // Remembered so a decision cached on this entry ends when the parent expires.
                entry.parent_expire_at_ns = p.expire_at_ns;
            }
            return Ok(Some(Arc::new(entry)));
        }
        let salted = self.salt_id(id)?;
        self.resolve_salted(storage, &salted, now).await
    }

    /// A stored token by its salted id, through the cache; expired or revocation-pending
    /// entries are `None`.
    async fn resolve_salted(
        &self,
        storage: &dyn Backend,
        salted: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Arc<TokenEntry>>> {
        // The map is keyed by the salted id, so no raw token id is ever compared.
        let cached = self
            .cache
            .read()
            .or_else(crate::util::unpoison)?
            .get(salted)
            .cloned();
        let entry = match cached {
            Some(e) => e,
            None => match self.get_salted(storage, salted).await? {
                None => return Ok(None),
                Some(e) => {
                    let e = Arc::new(e);
                    let w = entry_weight(&e);
                    self.cache.write().or_else(crate::util::unpoison)?.insert(
                        salted.to_string(),
                        e.clone(),
                        w,
                    );
                    e
                }
            },
        };
        if entry.expired(now) || entry.num_uses < 0 {
            return Ok(None);
        }
        Ok(Some(entry))
    }

    pub(crate) async fn get_salted(
        &self,
        storage: &dyn Backend,
        salted: &str,
    ) -> Result<Option<TokenEntry>> {
        match storage.get(&format!("{ID_PREFIX}{salted}")).await? {
            None => Ok(None),
            Some(raw) => decode(&raw).map(Some),
        }
    }

    /// The entry behind an accessor.
    pub(crate) async fn by_accessor(
        &self,
        storage: &dyn Backend,
        accessor: &str,
    ) -> Result<Option<TokenEntry>> {
        if accessor.is_empty() || accessor.contains('/') {
            return Ok(None);
        }
        let Some(salted) = storage
            .get(&format!("{ACCESSOR_PREFIX}{}", self.salt_id(accessor)?))
            .await?
        else {
            return Ok(None);
        };
        let salted =
            String::from_utf8(salted).map_err(|_| Error::storage("accessor entry is corrupt"))?;
        self.get_salted(storage, &salted).await
    }

    /// Store a new service token; returns its id.
    pub(crate) async fn store_new(
        &self,
        storage: &dyn Backend,
        mut entry: TokenEntry,
        id: Option<String>,
    ) -> Result<(String, String)> {
        let id = id.unwrap_or_else(new_service_token_id);
        let salted = self.salt_id(&id)?;
        entry.salted_id = salted.clone();
        entry.accessor = base62(24);
        let mut ops = vec![
            TxnOp::Check {
                key: format!("{ID_PREFIX}{salted}"),
                expected: None,
            },
            TxnOp::Put {
                key: format!("{ID_PREFIX}{salted}"),
                value: encode(&entry)?,
            },
            TxnOp::Put {
                key: format!("{ACCESSOR_PREFIX}{}", self.salt_id(&entry.accessor)?),
                value: salted.clone().into_bytes(),
            },
        ];
        ops.extend(crate::leases::token_lease_ops(&entry)?);
        if let Some(parent) = &entry.parent {
            ops.push(TxnOp::Put {
                key: format!("{PARENT_PREFIX}{parent}/{salted}"),
                value: Vec::new(),
            });
        }
        // The Check makes a duplicate id fail atomically, also against another process.
        storage.transaction(ops).await.map_err(|e| {
            if e.code() == ErrorCode::Conflict {
                Error::invalid_input("cannot create a token with a duplicate ID")
            } else {
                e
            }
        })?;
        Ok((id, entry.accessor))
    }

    /// Encrypt a batch token (`b.` + base64url(AEAD(entry))); never stored.
    pub(crate) fn seal_batch(&self, entry: &TokenEntry) -> Result<String> {
        let k = self.keys()?;
        let blob = k.batch.seal(0, "batch-token", &encode(entry)?)?;
        Ok(format!("b.{}", B64URL.encode(blob)))
    }

    fn open_batch(&self, body: &str) -> Result<Option<TokenEntry>> {
        let Ok(blob) = B64URL.decode(body) else {
            return Ok(None);
        };
        let k = self.keys()?;
        let Ok(json) = k.batch.open("batch-token", &blob) else {
            return Ok(None);
        };
        Ok(decode(&json).ok())
    }

    /// Write an updated entry (renewal, use count).
    pub(crate) async fn update(&self, storage: &dyn Backend, entry: &TokenEntry) -> Result<()> {
        storage
            .put(&format!("{ID_PREFIX}{}", entry.salted_id), &encode(entry)?)
            .await?;
        self.uncache(&entry.salted_id)
    }

    /// Count one use of a limited-use token. Returns the entry as it now stands (`num_uses`
    /// is -1 during the last use, after which the caller revokes it), or `None` for tokens
    /// without a use limit.
    pub(crate) async fn use_once(
        &self,
        storage: &dyn Backend,
        entry: &TokenEntry,
    ) -> Result<Option<TokenEntry>> {
        if entry.num_uses <= 0 || entry.is_batch() {
            return Ok(None);
        }
        let key = format!("{ID_PREFIX}{}", entry.salted_id);
        let before = storage
            .get(&key)
            .await?
            .ok_or_else(Error::permission_denied)?;
        let mut fresh = decode(&before)?;
        if fresh.num_uses <= 0 {
            return Err(Error::permission_denied());
        }
        let last = fresh.num_uses == 1;
        fresh.num_uses = if last { -1 } else { fresh.num_uses - 1 };
        // The check makes two concurrent uses of the last use impossible.
        storage
            .transaction(vec![
                TxnOp::Check {
                    key: key.clone(),
                    expected: Some(before),
                },
                TxnOp::Put {
                    key,
                    value: encode(&fresh)?,
                },
            ])
            .await
            .map_err(|e| {
                if e.code() == ErrorCode::Conflict {
                    Error::permission_denied()
                } else {
                    e
                }
            })?;
        self.uncache(&entry.salted_id)?;
        Ok(Some(fresh))
    }

    /// Revoke a token and its whole subtree (children before parents). Unknown: no-op.
    pub(crate) async fn revoke_tree(&self, storage: &dyn Backend, salted: &str) -> Result<()> {
        // Iterative DFS: collect the tree, then delete leaves first.
        let mut order = Vec::new();
        let mut stack = vec![salted.to_string()];
        while let Some(s) = stack.pop() {
            let children = self.children(storage, &s).await?;
            order.push(s);
            stack.extend(children);
        }
        for s in order.into_iter().rev() {
            self.revoke_one(storage, &s).await?;
        }
        Ok(())
    }

    pub(crate) async fn children(
        &self,
        storage: &dyn Backend,
        salted: &str,
    ) -> Result<Vec<String>> {
        let prefix = format!("{PARENT_PREFIX}{salted}/");
        let mut out = Vec::new();
        let mut page = Page {
            after: None,
            limit: Some(1000),
        };
        loop {
            let batch = storage.list(&prefix, &page).await?;
            let done = batch.len() < 1000;
            page.after = batch.last().cloned();
            out.extend(batch.into_iter().filter(|c| !c.ends_with('/')));
            if done {
                return Ok(out);
            }
        }
    }

    /// Delete one token: entry, accessor, its parent index entry, and its own child index
    /// (children become orphans).
    pub(crate) async fn revoke_one(&self, storage: &dyn Backend, salted: &str) -> Result<()> {
        let Some(ops) = self.revoke_one_ops(storage, salted).await? else {
            self.uncache(salted)?;
            return Ok(());
        };
        storage.transaction(ops).await?;
        self.uncache(salted)
    }

    /// The deletions that revoke a token without children, for a caller that commits them
    /// with others (then calls [`TokenStore::forget`]); `None` when the token has children
    /// (revoke its tree instead). A token already gone needs no deletion.
    pub(crate) async fn leaf_revocation_ops(
        &self,
        storage: &dyn Backend,
        salted: &str,
    ) -> Result<Option<Vec<TxnOp>>> {
        let children = self.children(storage, salted).await?;
        if !children.is_empty() {
            return Ok(None);
        }
        // Listed once: a mass revocation spends most of its reads here.
        Ok(Some(
            self.revoke_one_ops_with(storage, salted, children)
                .await?
                .unwrap_or_default(),
        ))
    }

    /// Drop a token from the cache after its revocation was committed elsewhere.
    pub(crate) fn forget(&self, salted: &str) -> Result<()> {
        self.uncache(salted)
    }

    /// What [`TokenStore::revoke_one`] commits; `None` when the token is gone.
    async fn revoke_one_ops(
        &self,
        storage: &dyn Backend,
        salted: &str,
    ) -> Result<Option<Vec<TxnOp>>> {
        let children = self.children(storage, salted).await?;
        self.revoke_one_ops_with(storage, salted, children).await
    }

    /// [`TokenStore::revoke_one_ops`] with the token's `children` already listed.
    async fn revoke_one_ops_with(
        &self,
        storage: &dyn Backend,
        salted: &str,
        children: Vec<String>,
    ) -> Result<Option<Vec<TxnOp>>> {
        let Some(entry) = self.get_salted(storage, salted).await? else {
            return Ok(None);
        };
        let mut ops = vec![TxnOp::Delete {
            key: format!("{ID_PREFIX}{salted}"),
        }];
        if !entry.accessor.is_empty() {
            ops.push(TxnOp::Delete {
                key: format!("{ACCESSOR_PREFIX}{}", self.salt_id(&entry.accessor)?),
            });
        }
        if let Some(p) = &entry.parent {
            ops.push(TxnOp::Delete {
                key: format!("{PARENT_PREFIX}{p}/{salted}"),
            });
        }
        // Its own lease record goes; the leases it created are queued for revocation.
        ops.extend(crate::leases::token_revocation_ops(storage, &entry).await?);
        // Its cubbyhole goes with it, in the same transaction.
        if let Some(cubby) = self.cubbyhole_of(salted)? {
            for k in storage.scan(&cubby, &Page::all()).await? {
                ops.push(TxnOp::Delete {
                    key: format!("{cubby}{k}"),
                });
            }
        }
        for child in children {
            ops.push(TxnOp::Delete {
                key: format!("{PARENT_PREFIX}{salted}/{child}"),
            });
            // The child becomes an orphan.
            if let Some(mut c) = self.get_salted(storage, &child).await? {
                c.parent = None;
                ops.push(TxnOp::Put {
                    key: format!("{ID_PREFIX}{child}"),
                    value: encode(&c)?,
                });
                self.uncache(&child)?;
            }
        }
        Ok(Some(ops))
    }

    /// Every accessor (for `LIST auth/token/accessors`): the accessor itself is not stored in
    /// clear as a key, so read it from each entry.
    pub(crate) async fn accessors(&self, storage: &dyn Backend) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut page = Page {
            after: None,
            limit: Some(1000),
        };
        loop {
            let keys = storage.list(ACCESSOR_PREFIX, &page).await?;
            let done = keys.len() < 1000;
            page.after = keys.last().cloned();
            for k in keys {
                if let Some(raw) = storage.get(&format!("{ACCESSOR_PREFIX}{k}")).await? {
                    let salted = String::from_utf8_lossy(&raw).to_string();
                    if let Some(e) = self.get_salted(storage, &salted).await? {
                        out.push(e.accessor);
                    }
                }
            }
            if done {
                out.sort();
                return Ok(out);
            }
        }
    }

    /// Remove dangling accessor and parent index entries, and expired tokens. Returns how many
    /// entries were removed.
    pub(crate) async fn tidy(&self, storage: &dyn Backend, now: OffsetDateTime) -> Result<usize> {
        let mut removed = 0;
        for k in storage.scan(ACCESSOR_PREFIX, &Page::all()).await? {
            let key = format!("{ACCESSOR_PREFIX}{k}");
            let dangling = match storage.get(&key).await? {
                Some(raw) => self
                    .get_salted(storage, &String::from_utf8_lossy(&raw))
                    .await?
                    .is_none(),
                None => false,
            };
            if dangling {
                storage.delete(&key).await?;
                removed += 1;
            }
        }
        for k in storage.scan(PARENT_PREFIX, &Page::all()).await? {
            let Some((parent, child)) = k.split_once('/') else {
                continue;
            };
            if self.get_salted(storage, parent).await?.is_none()
                || self.get_salted(storage, child).await?.is_none()
            {
                storage.delete(&format!("{PARENT_PREFIX}{k}")).await?;
                removed += 1;
            }
        }
        for k in storage.scan(ID_PREFIX, &Page::all()).await? {
            if let Some(e) = self.get_salted(storage, &k).await? {
                if e.expired(now) {
                    self.revoke_tree(storage, &k).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// A fresh entry with the common fields filled.
pub(crate) fn new_entry(now: OffsetDateTime, path: &str, policies: Vec<String>) -> TokenEntry {
    TokenEntry {
        policies,
        display_name: "token".into(),
        creation_time: now.unix_timestamp(),
        issue_time: rfc3339(now),
        path: path.to_string(),
        token_type: "service".into(),
        ..TokenEntry::default()
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
    async fn ids_are_stored_salted_only() {
        let mem = MemoryBackend::new();
        let ts = TokenStore::default();
        ts.setup(&mem).await.unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let id = ts
            .store_new(
                &mem,
                new_entry(now, "auth/token/root", vec!["root".into()]),
                None,
            )
            .await
            .unwrap()
            .0;
        let salted = ts.salt_id(&id).unwrap();
        assert!(salted.starts_with('h') && salted.len() == 65);
        assert_eq!(
            ts.salt_id("root").unwrap().len(),
            40,
            "legacy SHA1 form for ids without a dot"
        );
        for k in mem.scan("", &Page::all()).await.unwrap() {
            assert!(!k.contains(&id[2..]));
            let v = mem.get(&k).await.unwrap().unwrap();
            assert!(
                !v.windows(24).any(|w| w == &id.as_bytes()[2..]),
                "{k} holds the token id"
            );
        }
        assert!(ts.lookup(&mem, &id, now).await.unwrap().unwrap().is_root());
        assert!(ts.lookup(&mem, "s.nope", now).await.unwrap().is_none());
        assert!(ts.lookup(&mem, "", now).await.unwrap().is_none());
        assert!(ts.lookup(&mem, "b.garbage", now).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn tree_revocation_and_orphaning() {
        let mem = MemoryBackend::new();
        let ts = TokenStore::default();
        ts.setup(&mem).await.unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let root = ts
            .store_new(&mem, new_entry(now, "p", vec!["root".into()]), None)
            .await
            .unwrap()
            .0;
        let rs = ts.salt_id(&root).unwrap();
        let mut child = new_entry(now, "p", vec!["default".into()]);
        child.parent = Some(rs.clone());
        let c = ts.store_new(&mem, child.clone(), None).await.unwrap().0;
        let cs = ts.salt_id(&c).unwrap();
        let mut grand = child.clone();
        grand.parent = Some(cs.clone());
        let g = ts.store_new(&mem, grand, None).await.unwrap().0;
        // revoke-orphan on the child: the grandchild survives as an orphan.
        ts.revoke_one(&mem, &cs).await.unwrap();
        assert!(ts.lookup(&mem, &c, now).await.unwrap().is_none());
        let ge = ts.lookup(&mem, &g, now).await.unwrap().unwrap();
        assert!(ge.parent.is_none());
        // A new child under root, then revoke root's tree.
        let mut child2 = new_entry(now, "p", vec!["default".into()]);
        child2.parent = Some(rs.clone());
        let c2 = ts.store_new(&mem, child2, None).await.unwrap().0;
        ts.revoke_tree(&mem, &rs).await.unwrap();
        assert!(ts.lookup(&mem, &root, now).await.unwrap().is_none());
        assert!(ts.lookup(&mem, &c2, now).await.unwrap().is_none());
        assert!(ts.lookup(&mem, &g, now).await.unwrap().is_some());
        assert_eq!(ts.tidy(&mem, now).await.unwrap(), 0);
        assert!(
            mem.scan(PARENT_PREFIX, &Page::all())
                .await
                .unwrap()
                .is_empty()
        );
    }
}
