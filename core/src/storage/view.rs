//! A prefix-scoped view of a [`Backend`]: each mount sees only its own subtree
//! (`logical/<mount uuid>/`), and cannot address anything outside it.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Backend, Page, TxnOp};
use crate::barrier::Barrier;
use crate::error::{Error, Result};

/// A [`Backend`] restricted to the keys under `prefix`.
#[derive(Clone)]
pub(crate) struct View {
    inner: Arc<dyn Backend>,
    prefix: String,
    /// The barrier `inner` is, for [`View::get_decoded`]'s cache.
    barrier: Option<Arc<Barrier>>,
}

impl View {
    /// A view of `inner` under `prefix` (which should end in `/`).
    pub(crate) fn new(inner: Arc<dyn Backend>, prefix: impl Into<String>) -> View {
        View {
            inner,
            prefix: prefix.into(),
            barrier: None,
        }
    }

    /// A view of the barrier under `prefix`, whose [`View::get_decoded`] uses the barrier's
    /// decoded cache.
    pub(crate) fn of_barrier(barrier: &Arc<Barrier>, prefix: impl Into<String>) -> View {
        View {
            inner: barrier.clone(),
            prefix: prefix.into(),
            barrier: Some(barrier.clone()),
        }
    }

    /// The entry at `key` decoded by `decode`: from the barrier's decoded cache when this is a
    /// view of the barrier and the stored entry has not changed since it was decoded.
    pub(crate) async fn get_decoded<T: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        decode: impl FnOnce(&[u8]) -> Result<T> + Send,
    ) -> Result<Option<Arc<T>>> {
        let full = self.full(key)?;
        match &self.barrier {
            Some(b) => b.get_decoded(&full, decode).await,
            None => match self.inner.get(&full).await? {
                Some(raw) => Ok(Some(Arc::new(decode(&raw)?))),
                None => Ok(None),
            },
        }
    }

    fn full(&self, key: &str) -> Result<String> {
        // Refuse relative segments so a crafted key cannot escape the view in a backend that
        // normalises paths.
        if key.contains('.') && key.split('/').any(|s| s == ".." || s == ".") {
            return Err(Error::invalid_input(format!("invalid path `{key}`")));
        }
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        Ok(full)
    }

    /// `ops` with their keys moved under this view's prefix (for a transaction that also
    /// touches keys outside the view).
    pub(crate) fn map_ops(&self, ops: Vec<TxnOp>) -> Result<Vec<TxnOp>> {
        ops.into_iter()
            .map(|op| {
                Ok(match op {
                    TxnOp::Put { key, value } => TxnOp::Put {
                        key: self.full(&key)?,
                        value,
                    },
                    TxnOp::Delete { key } => TxnOp::Delete {
                        key: self.full(&key)?,
                    },
                    TxnOp::Check { key, expected } => TxnOp::Check {
                        key: self.full(&key)?,
                        expected,
                    },
                })
            })
            .collect()
    }
}

#[async_trait]
impl Backend for View {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(&self.full(key)?).await
    }
    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.inner.put(&self.full(key)?, value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(&self.full(key)?).await
    }
    async fn list(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        self.inner.list(&self.full(prefix)?, page).await
    }
    async fn scan(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        self.inner.scan(&self.full(prefix)?, page).await
    }
    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        let ops = self.map_ops(ops)?;
        self.inner.transaction(ops).await
    }
    async fn transaction_unsynced(&self, ops: Vec<TxnOp>) -> Result<()> {
        let ops = self.map_ops(ops)?;
        self.inner.transaction_unsynced(ops).await
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
