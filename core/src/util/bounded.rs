//! A map bounded both in entries and in bytes, for the engine's in-process caches (storage
//! ciphertext, decoded entries, tokens). Memory must stay flat in the amount of stored data, so
//! every cache counts what it holds by an estimate of its size, not only by its entries.
//!
//! Eviction drops an arbitrary eighth of the entries in one pass when either bound is reached:
//! bounded memory matters more than hit rate here, and evicting one entry per insert by taking
//! the map's first key degrades to a scan over emptied buckets under churn.

use std::collections::HashMap;

/// What a map slot costs beyond the key and value bytes: the hash table's slot, the key's
/// `String` header, the value's header (an `Arc` or a `Vec`), allocator rounding.
pub(crate) const SLOT_OVERHEAD: usize = 96;

/// A `String`-keyed map of at most `max_entries` entries and about `max_bytes` bytes, each
/// entry weighed by the caller when it is inserted.
pub(crate) struct BoundedMap<V> {
    map: HashMap<String, (V, usize)>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<V> BoundedMap<V> {
    /// An empty map with these bounds (a bound of 0 means the map keeps nothing).
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> BoundedMap<V> {
        BoundedMap {
            map: HashMap::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Whether it keeps anything at all.
    pub(crate) fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key).map(|(v, _)| v)
    }

    /// Keep `value` under `key`, weighing `weight` bytes (the key and [`SLOT_OVERHEAD`] are
    /// added here). An entry heavier than an eighth of the byte bound is not kept (and any
    /// older value under its key is dropped), so one large value cannot empty the cache.
    pub(crate) fn insert(&mut self, key: String, value: V, weight: usize) {
        let weight = weight
            .saturating_add(key.len())
            .saturating_add(SLOT_OVERHEAD);
        if !self.enabled() || weight > self.max_bytes / 8 {
            self.remove(&key);
            return;
        }
        if let Some((_, old)) = self.map.remove(&key) {
            self.bytes = self.bytes.saturating_sub(old);
        }
        if self.map.len() >= self.max_entries || self.bytes.saturating_add(weight) > self.max_bytes
        {
            self.evict();
        }
        self.bytes = self.bytes.saturating_add(weight);
        self.map.insert(key, (value, weight));
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        let (v, w) = self.map.remove(key)?;
        self.bytes = self.bytes.saturating_sub(w);
        Some(v)
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.map.shrink_to_fit();
        self.bytes = 0;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The estimated bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Drop an arbitrary eighth of the entries (at least one), and give the table's memory
    /// back when it has become mostly empty.
    fn evict(&mut self) {
        let mut drop = (self.map.len() / 8).max(1);
        let mut freed = 0usize;
        self.map.retain(|_, (_, w)| {
            if drop > 0 {
                drop -= 1;
                freed = freed.saturating_add(*w);
                false
            } else {
                true
            }
        });
        self.bytes = self.bytes.saturating_sub(freed);
        self.shrink();
    }

    /// A table that held many entries keeps its buckets after they are removed; give them back
    /// once it is less than a quarter full.
    pub(crate) fn shrink(&mut self) {
        if self.map.capacity() > 1024 && self.map.len() < self.map.capacity() / 4 {
            self.map.shrink_to_fit();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn stays_within_both_bounds() {
        let mut m = BoundedMap::new(100, 100 * (SLOT_OVERHEAD + 20));
        for i in 0..1000 {
            m.insert(format!("k{i:05}"), i, 14);
            assert!(m.len() <= 100);
            assert!(m.bytes() <= 100 * (SLOT_OVERHEAD + 20));
        }
        // Heavier entries: the byte bound bites before the entry bound.
        let mut m = BoundedMap::new(1000, 10 * 1024);
        for i in 0..1000 {
            m.insert(format!("k{i}"), (), 1000);
            assert!(m.bytes() <= 10 * 1024, "{} bytes", m.bytes());
        }
        assert!(m.len() < 10);
    }

    #[test]
    fn replacing_and_removing_keeps_the_count_exact() {
        let mut m = BoundedMap::new(10, 1 << 20);
        m.insert("a".into(), 1, 100);
        m.insert("a".into(), 2, 50);
        assert_eq!(m.bytes(), 50 + 1 + SLOT_OVERHEAD);
        assert_eq!(m.get("a"), Some(&2));
        assert_eq!(m.remove("a"), Some(2));
        assert_eq!(m.bytes(), 0);
    }

    #[test]
    fn a_value_too_heavy_is_not_kept_and_drops_the_old_one() {
        let mut m = BoundedMap::new(10, 8 * 1024);
        m.insert("a".into(), 1, 10);
        m.insert("a".into(), 2, 2048);
        assert_eq!(m.get("a"), None);
        assert_eq!(m.bytes(), 0);
        let mut off: BoundedMap<u8> = BoundedMap::new(0, 1 << 20);
        off.insert("a".into(), 1, 1);
        assert_eq!(off.len(), 0);
    }
}
