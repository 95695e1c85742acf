//! A bounded cache of decoded entries above the barrier, so a warm read skips both the
//! AES-GCM decryption and the decoding (JSON parsing) of what it reads.
//!
//! Each entry remembers the ciphertext it was decoded from, and is used only while storage (or
//! the ciphertext cache below the barrier) still hands out exactly those bytes for that path.
//! So it needs no invalidation for correctness: a write by this process or another one changes
//! the ciphertext (every encryption has a fresh nonce), and the next read decodes again. Bytes
//! that match were authenticated with the path as associated data when the entry was made.
//! This process's own writes and deletes drop the entry at once all the same, so a deleted
//! secret's plaintext is wiped then (and mass revocations leave no dead entries behind).
//!
//! The trade-off: decoded secrets stay in this process's memory after the request that read
//! them, up to the configured number of entries ([`crate::Config::decoded_cache_entries`]; 0
//! turns the cache off). Secret strings are wiped ([`SecretData`]) when their entry is evicted
//! or replaced, and the whole cache is dropped when the barrier seals. Without the cache, the
//! plaintext lives only for the duration of a request, at the price of a decryption and a
//! parse per read.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use zeroize::Zeroize;

use crate::request::Data;
use crate::util::bounded::BoundedMap;

/// A decoded value, shared with the readers that use it.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

struct Entry {
    /// The ciphertext the value was decoded from. Holding it keeps its allocation alive, so
    /// a pointer match can never be a reused address.
    ciphertext: Arc<[u8]>,
    value: Shared,
}

/// Decoded entries by storage path.
pub(crate) struct DecodedCache {
    map: Mutex<BoundedMap<Entry>>,
    enabled: bool,
}

impl DecodedCache {
    /// A cache of at most `capacity` entries and about `max_bytes` bytes (0 = disabled).
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> DecodedCache {
        let map = BoundedMap::new(capacity, max_bytes);
        DecodedCache {
            enabled: map.enabled(),
            map: Mutex::new(map),
        }
    }

    fn map(&self) -> MutexGuard<'_, BoundedMap<Entry>> {
        // A panic while holding the lock leaves a consistent map (every operation is one
        // insert or remove); keep using it rather than keeping plaintext we cannot drop.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value decoded from `ciphertext` at `key`, if that is what the cache holds.
    pub(crate) fn get(&self, key: &str, ciphertext: &Arc<[u8]>) -> Option<Shared> {
        if !self.enabled {
            return None;
        }
        let map = self.map();
        let e = map.get(key)?;
        (Arc::ptr_eq(&e.ciphertext, ciphertext) || *e.ciphertext == **ciphertext)
            .then(|| e.value.clone())
    }

    /// Remember `value`, decoded from `ciphertext` at `key`, weighing about `weight` bytes
    /// (the ciphertext is counted here).
    pub(crate) fn insert(&self, key: &str, ciphertext: Arc<[u8]>, value: Shared, weight: usize) {
        if !self.enabled {
            return;
        }
        let weight = weight.saturating_add(ciphertext.len());
        self.map()
            .insert(key.to_string(), Entry { ciphertext, value }, weight);
    }

    /// Drop the entry at `key`, if any: this process wrote or deleted it, so its plaintext
    /// need not wait for eviction to be wiped (the ciphertext check alone would keep reads
    /// right, not memory small).
    pub(crate) fn forget(&self, key: &str) {
        if self.enabled {
            self.map().remove(key);
        }
    }

    /// Drop everything (on seal).
    pub(crate) fn clear(&self) {
        self.map().clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

/// Decoded secret data whose strings (keys and values) are wiped when the last holder lets
/// go of it. Numbers and booleans are overwritten on a best-effort basis only.
pub(crate) struct SecretData(pub(crate) Data);

impl Drop for SecretData {
    fn drop(&mut self) {
        wipe_map(&mut self.0);
    }
}

fn wipe_map(m: &mut Data) {
    for (_, v) in m.iter_mut() {
        wipe_value(v);
    }
    for (mut k, _) in std::mem::take(m) {
        k.zeroize();
    }
}

fn wipe_value(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => {
            for item in items.iter_mut() {
                wipe_value(item);
            }
        }
        Value::Object(m) => wipe_map(m),
        Value::Number(_) => *v = Value::from(0u8),
        Value::Bool(b) => *b = false,
        Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_the_ciphertext_it_was_decoded_from_and_stays_bounded() {
        let c = DecodedCache::new(2, 1 << 20);
        let ct: Arc<[u8]> = Arc::from(&b"ciphertext-1"[..]);
        c.insert("a", ct.clone(), Arc::new(1u32), 4);
        let hit = c.get("a", &ct).unwrap();
        assert_eq!(hit.downcast_ref::<u32>(), Some(&1));
        // Equal bytes in another buffer (a re-read from storage) still match...
        let same: Arc<[u8]> = Arc::from(&b"ciphertext-1"[..]);
        assert!(c.get("a", &same).is_some());
        // ...different bytes (a newer write) do not, nor does another path.
        let newer: Arc<[u8]> = Arc::from(&b"ciphertext-2"[..]);
        assert!(c.get("a", &newer).is_none());
        assert!(c.get("b", &ct).is_none());
        for k in ["b", "c", "d"] {
            c.insert(k, ct.clone(), Arc::new(0u32), 4);
        }
        assert!(c.len() <= 2);
        // And in bytes: entries decoded from large values push each other out.
        let small = DecodedCache::new(1000, 64 * 1024);
        let big: Arc<[u8]> = Arc::from(vec![0u8; 2048]);
        for i in 0..100 {
            small.insert(&format!("k{i}"), big.clone(), Arc::new(0u32), 3 * 2048);
        }
        assert!(small.map().bytes() <= 64 * 1024);
        assert!(small.len() < 10, "{}", small.len());
        c.clear();
        assert_eq!(c.len(), 0);
        let off = DecodedCache::new(0, 1 << 20);
        off.insert("a", ct.clone(), Arc::new(1u32), 4);
        assert!(off.get("a", &ct).is_none());
    }

    #[test]
    fn secret_data_wipes_every_string() {
        let mut d = Data::new();
        d.insert("password".into(), Value::String("hunter2".into()));
        d.insert(
            "nested".into(),
            serde_json::json!({"k": ["s3cr3t", 7, true]}),
        );
        let mut s = SecretData(d);
        wipe_map(&mut s.0);
        assert!(s.0.is_empty());
        // Wiping a value in place leaves no trace of it.
        let mut v = serde_json::json!({"a": "xyz", "b": [1, "q"]});
        wipe_value(&mut v);
        assert_eq!(v, serde_json::json!({}));
        let mut st = Value::String("abc".into());
        wipe_value(&mut st);
        assert_eq!(st, Value::String(String::new()));
    }
}
