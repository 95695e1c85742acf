//! In-memory backend: for tests and dev mode. Nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

use async_trait::async_trait;

use super::{Backend, Page, TxnOp, child_of};
use crate::error::{Error, Result};

/// Keeps everything in a sorted map in memory.
#[derive(Default)]
pub struct MemoryBackend {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").finish_non_exhaustive()
    }
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<String, Vec<u8>>>> {
        self.map.read().or_else(crate::util::unpoison)
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, BTreeMap<String, Vec<u8>>>> {
        self.map.write().or_else(crate::util::unpoison)
    }
}

fn start_bound(prefix: &str, after: Option<&str>) -> Bound<String> {
    match after {
        Some(a) => Bound::Excluded(format!("{prefix}{a}")),
        None => Bound::Included(prefix.to_string()),
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read()?.get(key).cloned())
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write()?.insert(key.to_string(), value.to_vec());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.write()?.remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        let map = self.read()?;
        let limit = page.limit.unwrap_or(usize::MAX);
        let mut out: Vec<String> = Vec::new();
        // Skip-scan: after finding a folder `d/`, jump past every key under it.
        let mut start = match page.after.as_deref() {
            // `after` may name a folder ("d/"): skip everything under it too.
            Some(a) if a.ends_with('/') => match super::prefix_end(&format!("{prefix}{a}")) {
                Some(end) => Bound::Included(end),
                None => return Ok(out),
            },
            a => start_bound(prefix, a),
        };
        while out.len() < limit {
            let Some((key, _)) = map.range((start.clone(), Bound::Unbounded)).next() else {
                break;
            };
            if !key.starts_with(prefix) {
                break;
            }
            let Some(child) = child_of(prefix, key) else {
                break;
            };
            if child.ends_with('/') {
                let Some(end) = super::prefix_end(&format!("{prefix}{child}")) else {
                    out.push(child);
                    break;
                };
                start = Bound::Included(end);
            } else {
                start = Bound::Excluded(key.clone());
            }
            out.push(child);
        }
        Ok(out)
    }

    async fn scan(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        let map = self.read()?;
        let limit = page.limit.unwrap_or(usize::MAX);
        Ok(map
            .range((start_bound(prefix, page.after.as_deref()), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .take(limit)
            .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
            .collect())
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        let mut map = self.write()?;
        for op in &ops {
            if let TxnOp::Check { key, expected } = op {
                if map.get(key) != expected.as_ref() {
                    return Err(Error::conflict(format!(
                        "transaction precondition failed on `{key}`"
                    )));
                }
            }
        }
        for op in ops {
            match op {
                TxnOp::Put { key, value } => {
                    map.insert(key, value);
                }
                TxnOp::Delete { key } => {
                    map.remove(&key);
                }
                TxnOp::Check { .. } => {}
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }
}
