//! Physical storage: the [`Backend`] trait and its implementations. A backend is dumb: bytes in,
//! bytes out, keyed by `/`-separated paths. Everything above it is encrypted by the barrier.

use async_trait::async_trait;

use crate::error::Result;

pub(crate) mod cache;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub(crate) mod view;

pub use memory::MemoryBackend;
#[cfg(feature = "postgres")]
pub use postgres::PostgresBackend;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteBackend;

/// One operation inside a [`Backend::transaction`].
#[derive(Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Write `value` at `key`.
    Put {
        /// The key.
        key: String,
        /// The bytes to store.
        value: Vec<u8>,
    },
    /// Remove `key` (no error when it does not exist).
    Delete {
        /// The key.
        key: String,
    },
    /// Precondition: the transaction fails with [`crate::ErrorCode::Conflict`] and writes nothing
    /// unless `key` currently holds exactly `expected` (`None` = the key must not exist).
    Check {
        /// The key.
        key: String,
        /// The value the key must hold.
        expected: Option<Vec<u8>>,
    },
}

impl std::fmt::Debug for TxnOp {
    // Values may be secrets (below the barrier they are ciphertext, above it they are not).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxnOp::Put { key, value } => write!(f, "Put({key}, {} bytes)", value.len()),
            TxnOp::Delete { key } => write!(f, "Delete({key})"),
            TxnOp::Check { key, .. } => write!(f, "Check({key})"),
        }
    }
}

/// Pagination for [`Backend::list`] and [`Backend::scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Only return entries that sort strictly after this one (an entry as returned, relative to
    /// the prefix).
    pub after: Option<String>,
    /// Return at most this many entries.
    pub limit: Option<usize>,
}

impl Page {
    /// Everything.
    pub fn all() -> Page {
        Page::default()
    }
}

/// A storage backend. Keys are UTF-8 paths without a leading `/`; values are opaque bytes.
/// Implementations must be safe to share between threads and, for the persistent ones,
/// between processes: an acknowledged `put` or `transaction` survives `kill -9`.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The value at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// The value at `key` as a shared buffer: a cache can hand out what it holds without
    /// copying. The default copies from [`Backend::get`].
    async fn get_shared(&self, key: &str) -> Result<Option<std::sync::Arc<[u8]>>> {
        Ok(self.get(key).await?.map(std::sync::Arc::from))
    }

    /// Write `value` at `key`, replacing what was there.
    async fn put(&self, key: &str, value: &[u8]) -> Result<()>;

    /// Remove `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// The immediate children of `prefix` in byte order, as Vault lists them: a key directly
    /// under the prefix is returned as its last segment (`"a"`), a deeper one as its first
    /// segment with a trailing `/` (`"dir/"`), once. `prefix` is usually empty or ends in `/`.
    async fn list(&self, prefix: &str, page: &Page) -> Result<Vec<String>>;

    /// Every key under `prefix` at any depth, in byte order, relative to `prefix`.
    async fn scan(&self, prefix: &str, page: &Page) -> Result<Vec<String>>;

    /// Apply every operation atomically: all or nothing. `Check` operations are evaluated
    /// against the state before the transaction.
    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()>;

    /// [`Backend::transaction`] without waiting for the disk. Once acknowledged the write
    /// survives the process being killed (`kill -9`), but an OS crash or a power loss before
    /// the next synced write may lose it. Writes stay in order: once a later
    /// [`Backend::transaction`] (or `put`, `delete`) is acknowledged, this one is as durable as
    /// it. For records that only guide crash recovery and have a backstop of their own (the
    /// database engine's creation intents, whose loss the reconciler covers). The default
    /// syncs like [`Backend::transaction`].
    async fn transaction_unsynced(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.transaction(ops).await
    }

    /// A number that changes whenever another process (or connection) may have changed the
    /// store, so caches above know when to drop what they hold. `None` means this backend is
    /// only ever changed through this handle.
    async fn change_marker(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Like [`Backend::change_marker`], but it moves only when a *different* handle (another
    /// connection or process) changed the store: this handle's own writes leave it alone. A
    /// cache that is the only user of a handle, and drops what it writes itself, can keep
    /// everything else across its own writes. The default is [`Backend::change_marker`],
    /// which is always safe (it also moves for own writes).
    async fn external_change_marker(&self) -> Result<Option<u64>> {
        self.change_marker().await
    }

    /// Take, or confirm this handle still holds, the store-wide exclusive lock `name` (the
    /// lease expiry runner's leadership), released by the server when this process dies.
    /// `Ok(None)` = this backend has no such lock: callers fall back to a lock row with a
    /// heartbeat, stored through [`Backend::transaction`].
    async fn hold_lock(&self, name: &str) -> Result<Option<bool>> {
        let _ = name;
        Ok(None)
    }

    /// Give up the lock `name` if this handle holds it.
    async fn release_lock(&self, name: &str) -> Result<()> {
        let _ = name;
        Ok(())
    }

    /// A short name for diagnostics: `inmem`, `sqlite`, `postgresql`.
    fn kind(&self) -> &'static str;
}

/// The smallest string greater than every string that starts with `prefix` (for range scans),
/// or `None` when there is none.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    // On characters, so the bound is always valid UTF-8 (UTF-8 byte order is code point
    // order); surrogates are skipped.
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Fold the full keys under `prefix` (in order) into Vault's list shape: children, folders
/// once with a trailing `/`. Used by backends that can only range-scan.
pub(crate) fn child_of(prefix: &str, key: &str) -> Option<String> {
    let rest = key.strip_prefix(prefix)?;
    match rest.find('/') {
        Some(i) => Some(format!("{}/", rest.get(..i)?)),
        None => Some(rest.to_string()),
    }
}
