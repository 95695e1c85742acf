//! A read cache in front of a physical backend. It holds ciphertext (it sits below the barrier,
//! as Vault's physical cache does), is bounded, and drops everything when the backend's change
//! marker says another process wrote.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Backend, Page, TxnOp};
use crate::error::Result;
use crate::util::bounded::BoundedMap;

type Entry = Option<Arc<[u8]>>;

/// Caches `get` results (including misses) of an inner backend.
pub(crate) struct CachedBackend {
    inner: Arc<dyn Backend>,
    map: Mutex<BoundedMap<Entry>>,
    /// Bumped on every write, so a read that raced a write never caches the old value.
    generation: AtomicU64,
    marker: Mutex<Option<u64>>,
    /// Every write to `inner` goes through this cache (nobody else holds the handle), so the
    /// handle's own commits are ours, already invalidated key by key: only other handles'
    /// commits ([`Backend::external_change_marker`]) need a full drop.
    sole_user: bool,
}

impl CachedBackend {
    /// A cache of at most `capacity` entries and about `max_bytes` bytes (keys, ciphertext
    /// and bookkeeping) over `inner`. `sole_user`: nothing else writes through the `inner`
    /// handle (then this cache's own writes do not drop the whole cache).
    pub(crate) fn new(
        inner: Arc<dyn Backend>,
        capacity: usize,
        max_bytes: usize,
        sole_user: bool,
    ) -> CachedBackend {
        CachedBackend {
            inner,
            map: Mutex::new(BoundedMap::new(capacity.max(1), max_bytes)),
            generation: AtomicU64::new(0),
            marker: Mutex::new(None),
            sole_user,
        }
    }

    fn map(&self) -> Result<std::sync::MutexGuard<'_, BoundedMap<Entry>>> {
        self.map.lock().or_else(crate::util::unpoison)
    }

    /// Drop everything cached.
    pub(crate) fn clear(&self) -> Result<()> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map()?.clear();
        Ok(())
    }

    /// Check the backend's change marker and drop the cache when another writer was active.
    /// Returns whether it did.
    pub(crate) async fn sync(&self) -> Result<bool> {
        let now = if self.sole_user {
            self.inner.external_change_marker().await?
        } else {
            self.inner.change_marker().await?
        };
        if now.is_none() {
            return Ok(false);
        }
        let changed = {
            let mut m = self.marker.lock().or_else(crate::util::unpoison)?;
            let changed = *m != now;
            *m = now;
            changed
        };
        if changed {
            self.clear()?;
        }
        Ok(changed)
    }

    /// Drop `keys` and return the generation that this change started (see [`Self::written`]).
    fn invalidate(&self, keys: &[&str]) -> Result<u64> {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let mut map = self.map()?;
        for k in keys {
            map.remove(k);
        }
        map.shrink();
        Ok(generation)
    }

    /// After a write that started generation `generation` committed: keep what it wrote (the
    /// next read of a key just written, such as the metadata of a KV secret, is then a hit),
    /// unless anything else was invalidated meanwhile (another write, a drop after another
    /// process's write), when the write's own value might already be stale.
    fn written(&self, generation: u64, entries: Vec<(String, Entry)>) -> Result<()> {
        let mut map = self.map()?;
        if self.generation.load(Ordering::SeqCst) != generation {
            for (k, _) in &entries {
                map.remove(k);
            }
            return Ok(());
        }
        // A large transaction (batched lease registration) would only push out what readers
        // use: keep small writes, drop large ones from the cache.
        if entries.len() > KEEP_WRITTEN_MAX {
            for (k, _) in &entries {
                map.remove(k);
            }
            map.shrink();
            return Ok(());
        }
        for (k, v) in entries {
            let w = weight(&v);
            map.insert(k, v, w);
        }
        Ok(())
    }

    fn store(&self, key: &str, value: Entry, generation: u64) -> Result<()> {
        let mut map = self.map()?;
        if self.generation.load(Ordering::SeqCst) != generation {
            return Ok(());
        }
        let w = weight(&value);
        map.insert(key.to_string(), value, w);
        Ok(())
    }
}

/// Writes of more keys than this are not kept in the cache.
const KEEP_WRITTEN_MAX: usize = 32;

/// What an entry's value weighs (a cached miss weighs only its key and slot).
fn weight(v: &Entry) -> usize {
    v.as_ref().map_or(0, |b| b.len())
}

#[async_trait]
impl Backend for CachedBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_shared(key).await?.map(|v| v.to_vec()))
    }

    async fn get_shared(&self, key: &str) -> Result<Option<Arc<[u8]>>> {
        if let Some(hit) = self.map()?.get(key) {
            return Ok(hit.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let value: Entry = self.inner.get(key).await?.map(Arc::from);
        self.store(key, value.clone(), generation)?;
        Ok(value)
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        let generation = self.invalidate(&[key])?;
        match self.inner.put(key, value).await {
            Ok(()) => self.written(generation, vec![(key.to_string(), Some(Arc::from(value)))]),
            Err(e) => {
                self.invalidate(&[key])?;
                Err(e)
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let generation = self.invalidate(&[key])?;
        match self.inner.delete(key).await {
            Ok(()) => self.written(generation, vec![(key.to_string(), None)]),
            Err(e) => {
                self.invalidate(&[key])?;
                Err(e)
            }
        }
    }

    async fn list(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        self.inner.list(prefix, page).await
    }

    async fn scan(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        self.inner.scan(prefix, page).await
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.write_through(ops, true).await
    }

    async fn transaction_unsynced(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.write_through(ops, false).await
    }

    async fn change_marker(&self) -> Result<Option<u64>> {
        self.inner.change_marker().await
    }
    async fn external_change_marker(&self) -> Result<Option<u64>> {
        self.inner.external_change_marker().await
    }

    async fn hold_lock(&self, name: &str) -> Result<Option<bool>> {
        self.inner.hold_lock(name).await
    }

    async fn release_lock(&self, name: &str) -> Result<()> {
        self.inner.release_lock(name).await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

impl CachedBackend {
    /// A transaction through to the backend (synced or not), keeping the cache coherent.
    async fn write_through(&self, ops: Vec<TxnOp>, synced: bool) -> Result<()> {
        // What the transaction leaves at each key it writes (the last op on a key wins).
        let entries: Vec<(String, Entry)> = ops
            .iter()
            .filter_map(|op| match op {
                TxnOp::Put { key, value } => Some((key.clone(), Some(Arc::from(value.as_slice())))),
                TxnOp::Delete { key } => Some((key.clone(), None)),
                TxnOp::Check { .. } => None,
            })
            .collect();
        let refs: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let generation = self.invalidate(&refs)?;
        let done = if synced {
            self.inner.transaction(ops).await
        } else {
            self.inner.transaction_unsynced(ops).await
        };
        match done {
            Ok(()) => self.written(generation, entries),
            Err(e) => {
                self.invalidate(&refs)?;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;

    #[tokio::test]
    async fn caches_hits_and_misses_and_sees_own_writes() {
        let mem = Arc::new(MemoryBackend::new());
        let c = CachedBackend::new(mem.clone(), 2, 1 << 20, true);
        assert_eq!(c.get("a").await.unwrap(), None);
        // A write behind the cache's back is not seen until the cache is cleared...
        mem.put("a", b"1").await.unwrap();
        assert_eq!(c.get("a").await.unwrap(), None);
        c.clear().unwrap();
        assert_eq!(c.get("a").await.unwrap().unwrap(), b"1");
        // ...but writes through it are, and are kept: the next read is served from memory.
        c.put("a", b"2").await.unwrap();
        mem.put("a", b"behind").await.unwrap();
        assert_eq!(c.get("a").await.unwrap().unwrap(), b"2");
        c.clear().unwrap();
        assert_eq!(c.get("a").await.unwrap().unwrap(), b"behind");
        // A failed transaction keeps nothing it meant to write.
        let failed = c
            .transaction(vec![
                TxnOp::Check {
                    key: "a".into(),
                    expected: None,
                },
                TxnOp::Put {
                    key: "a".into(),
                    value: b"3".to_vec(),
                },
            ])
            .await;
        assert!(failed.is_err());
        assert_eq!(c.get("a").await.unwrap().unwrap(), b"behind");
        c.transaction(vec![TxnOp::Delete { key: "a".into() }])
            .await
            .unwrap();
        assert_eq!(c.get("a").await.unwrap(), None);
        // Bounded.
        for k in ["x", "y", "z"] {
            c.get(k).await.unwrap();
        }
        assert!(c.map().unwrap().len() <= 2);
    }

    #[tokio::test]
    async fn bounded_in_bytes_as_well_as_entries() {
        let mem = Arc::new(MemoryBackend::new());
        let c = CachedBackend::new(mem.clone(), 1_000_000, 256 * 1024, true);
        let value = vec![7u8; 4096];
        for i in 0..1000 {
            c.put(&format!("big/{i}"), &value).await.unwrap();
            c.get(&format!("big/{i}")).await.unwrap();
        }
        let map = c.map().unwrap();
        assert!(map.bytes() <= 256 * 1024, "{} bytes cached", map.bytes());
        assert!(map.len() < 64, "{} entries cached", map.len());
    }
}
