//! A read cache in front of a physical backend. It holds ciphertext (it sits below the barrier,
//! as Vault's physical cache does), is bounded, and drops everything when the backend's change
//! marker says another process wrote.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Backend, Page, TxnOp};
use crate::error::{Error, Result};

type Entry = Option<Arc<[u8]>>;

/// Caches `get` results (including misses) of an inner backend.
pub(crate) struct CachedBackend {
    inner: Arc<dyn Backend>,
    map: Mutex<HashMap<String, Entry>>,
    capacity: usize,
    /// Bumped on every write, so a read that raced a write never caches the old value.
    generation: AtomicU64,
    marker: Mutex<Option<u64>>,
}

impl CachedBackend {
    pub(crate) fn new(inner: Arc<dyn Backend>, capacity: usize) -> CachedBackend {
        CachedBackend {
            inner,
            map: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            generation: AtomicU64::new(0),
            marker: Mutex::new(None),
        }
    }

    fn map(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry>>> {
        self.map
            .lock()
            .map_err(|_| Error::internal("cache lock poisoned"))
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
        let now = self.inner.change_marker().await?;
        if now.is_none() {
            return Ok(false);
        }
        let changed = {
            let mut m = self
                .marker
                .lock()
                .map_err(|_| Error::internal("cache lock poisoned"))?;
            let changed = *m != now;
            *m = now;
            changed
        };
        if changed {
            self.clear()?;
        }
        Ok(changed)
    }

    fn invalidate(&self, keys: &[&str]) -> Result<()> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut map = self.map()?;
        for k in keys {
            map.remove(*k);
        }
        Ok(())
    }

    fn store(&self, key: &str, value: Entry, generation: u64) -> Result<()> {
        let mut map = self.map()?;
        if self.generation.load(Ordering::SeqCst) != generation {
            return Ok(());
        }
        if map.len() >= self.capacity {
            // Evict an arbitrary entry: bounded memory matters more than hit rate here.
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
        map.insert(key.to_string(), value);
        Ok(())
    }
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
        self.invalidate(&[key])?;
        let r = self.inner.put(key, value).await;
        self.invalidate(&[key])?;
        r
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.invalidate(&[key])?;
        let r = self.inner.delete(key).await;
        self.invalidate(&[key])?;
        r
    }

    async fn list(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        self.inner.list(prefix, page).await
    }

    async fn scan(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        self.inner.scan(prefix, page).await
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        let keys: Vec<String> = ops
            .iter()
            .filter_map(|op| match op {
                TxnOp::Put { key, .. } | TxnOp::Delete { key } => Some(key.clone()),
                TxnOp::Check { .. } => None,
            })
            .collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.invalidate(&refs)?;
        let r = self.inner.transaction(ops).await;
        self.invalidate(&refs)?;
        r
    }

    async fn change_marker(&self) -> Result<Option<u64>> {
        self.inner.change_marker().await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;

    #[tokio::test]
    async fn caches_hits_and_misses_and_sees_own_writes() {
        let mem = Arc::new(MemoryBackend::new());
        let c = CachedBackend::new(mem.clone(), 2);
        assert_eq!(c.get("a").await.unwrap(), None);
        // A write behind the cache's back is not seen until the cache is cleared...
        mem.put("a", b"1").await.unwrap();
        assert_eq!(c.get("a").await.unwrap(), None);
        c.clear().unwrap();
        assert_eq!(c.get("a").await.unwrap().unwrap(), b"1");
        // ...but writes through it are.
        c.put("a", b"2").await.unwrap();
        assert_eq!(c.get("a").await.unwrap().unwrap(), b"2");
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
}
