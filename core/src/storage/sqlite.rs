//! SQLite backend: the embedded default. One database file in WAL mode, safe to share between
//! several processes on one host.
//!
//! Reads run inline on a small pool of reader connections with cached prepared statements (a
//! `get` costs a few microseconds, no thread hop). Writes go to one writer thread per handle,
//! which groups the writes that arrive while it is busy into one `BEGIN IMMEDIATE` transaction
//! (one fsync for the group, each write in its own savepoint so one failing precondition does
//! not affect the others). Other processes are serialised by SQLite's write lock and the busy
//! timeout.

mod writer;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use self::writer::{Write, Writer};
use super::{Backend, Page, TxnOp, child_of, prefix_end};
use crate::error::{Error, Result};

/// `key` compares with the BINARY collation, i.e. by bytes, which is the order [`Backend::list`]
/// promises. WITHOUT ROWID keeps each entry in the primary-key B-tree itself.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS strongroom_kv (\
     key TEXT NOT NULL PRIMARY KEY COLLATE BINARY, \
     value BLOB NOT NULL\
     ) WITHOUT ROWID";
const GET: &str = "SELECT value FROM strongroom_kv WHERE key = ?1";
const PUT: &str = "INSERT INTO strongroom_kv (key, value) VALUES (?1, ?2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const DELETE: &str = "DELETE FROM strongroom_kv WHERE key = ?1";
const FIRST_AT_OR_AFTER: &str =
    "SELECT key FROM strongroom_kv WHERE key >= ?1 ORDER BY key LIMIT 1";
const FIRST_AFTER: &str = "SELECT key FROM strongroom_kv WHERE key > ?1 ORDER BY key LIMIT 1";
const KEYS_AT_OR_AFTER: &str = "SELECT key FROM strongroom_kv WHERE key >= ?1 ORDER BY key";
const KEYS_AFTER: &str = "SELECT key FROM strongroom_kv WHERE key > ?1 ORDER BY key";
const DATA_VERSION: &str = "PRAGMA data_version";
/// No memory mapping by default: every page of the file a mapping touches stays resident in
/// the process (it counts in its RSS, as much as the file is large: 100k token leases made a
/// 177 MB file and 190 MiB of RSS), where reads through system calls keep only each
/// connection's bounded page cache.
const DEFAULT_MMAP_SIZE: i64 = 0;
/// The writer connection's page cache, in KiB as a negative number (SQLite's convention).
/// SQLite keeps a connection's cache full between transactions, and every commit walks it
/// (`pcache1Truncate` was an eighth of the CPU of a mass revocation with 64 MiB): a group
/// commit that outgrows it spills pages to the WAL early, which costs far less. 2 MiB, not 8:
/// the cache is given back after a second without writes (see the writer), but SQLite's
/// pages come from the C allocator, which kept most of a freed 8 MiB cache resident (an
/// arena of 8.9 MiB after a mass revocation, 2.2 MiB with this bound; the revocation's CPU
/// per lease did not measurably change, 65–94 µs against 67–73 µs on a loaded machine).
const WRITER_CACHE_KIB: i64 = -2_048;

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `FULL`: a write is acknowledged only once it is fsynced; it survives `kill -9` and power
    /// loss. The default.
    #[default]
    Full,
    /// `NORMAL`: a write survives `kill -9` of the process, but the last writes before a power
    /// loss or OS crash may be lost. Writes are several times faster.
    Normal,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Options for [`SqliteBackend::open_with`].
///
/// ```
/// use std::time::Duration;
/// use strongroom::storage::sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::new()
///     .synchronous(Synchronous::Normal)
///     .busy_timeout(Duration::from_secs(10));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    synchronous: Synchronous,
    busy_timeout: Duration,
    readers: usize,
    mmap_size: i64,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            readers: cores.clamp(2, 8),
            mmap_size: DEFAULT_MMAP_SIZE,
        }
    }
}

#[cfg_attr(
    not(feature = "bench-internals"),
    allow(dead_code, reason = "tuning for the storage tests and benchmarks only")
)]
impl SqliteOptions {
    /// The defaults: [`Synchronous::Full`], a 5 s busy timeout, one reader connection per core
    /// (2 to 8), no memory mapping.
    pub fn new() -> SqliteOptions {
        SqliteOptions::default()
    }

    /// How durable an acknowledged write is.
    pub fn synchronous(mut self, synchronous: Synchronous) -> SqliteOptions {
        self.synchronous = synchronous;
        self
    }

    /// How long an operation waits for another process's lock before failing with
    /// [`crate::ErrorCode::Unavailable`].
    pub fn busy_timeout(mut self, busy_timeout: Duration) -> SqliteOptions {
        self.busy_timeout = busy_timeout;
        self
    }

    /// How many bytes of the database file each connection maps into memory (`PRAGMA
    /// mmap_size`; 0 by default = read through system calls only). Mapping makes a read
    /// cheaper, but every mapped page a read touches stays in the process's resident memory
    /// (as page cache the kernel may reclaim), up to the size of the file.
    pub fn mmap_size(mut self, bytes: u64) -> SqliteOptions {
        self.mmap_size = i64::try_from(bytes).unwrap_or(i64::MAX);
        self
    }

    /// How many reader connections to keep (at least 1).
    pub fn readers(mut self, readers: usize) -> SqliteOptions {
        self.readers = readers.max(1);
        self
    }
}

/// The SQLite backend: one database file in WAL mode (plus its `-wal` and `-shm` files).
///
/// Several handles, in one process or in several, may open the same file; each sees the
/// others' acknowledged writes immediately, and [`Backend::change_marker`] moves whenever any
/// of them commits.
///
/// ```no_run
/// # fn main() -> strongroom::Result<()> {
/// use strongroom::storage::{Backend, SqliteBackend};
///
/// let storage = SqliteBackend::open("/var/lib/strongroom/strongroom.db")?;
/// assert_eq!(storage.kind(), "sqlite");
/// # Ok(())
/// # }
/// ```
pub struct SqliteBackend {
    path: PathBuf,
    synchronous: Synchronous,
    /// Shared with the writer thread, which gives their page caches back when it goes idle.
    readers: Arc<[Mutex<Connection>]>,
    next_reader: AtomicUsize,
    /// A connection used only for `PRAGMA data_version`, which is per connection.
    marker: Mutex<Connection>,
    /// Commits made by this handle's writer (also bumped in `marker`'s data_version, but
    /// counting them here makes the marker move even if SQLite ever folded them together).
    local_commits: Arc<AtomicU64>,
    /// What the writer learnt about its own commits and other connections' commits.
    own: Arc<OwnCommits>,
    writer: Writer,
    /// The WAL-index (`-shm`) file, read to notice commits without taking a lock.
    shm: Mutex<ShmProbe>,
}

/// What the writer thread records so [`Backend::external_change_marker`] can leave this
/// handle's own commits out without a round trip to the writer.
///
/// After each commit the writer reads the WAL-index header its commit left, then checks with
/// `PRAGMA data_version` on its own connection (which moves only for *other* connections'
/// commits) that nobody committed in between; only then is the header known to be its own.
/// At the start of each write transaction the same check catches other connections' commits
/// since its previous one, which the probe may never have seen (they may be hidden behind
/// this handle's newer header).
#[derive(Default)]
pub(super) struct OwnCommits {
    /// Commits by other connections the writer noticed.
    pub(super) others: AtomicU64,
    /// The WAL-index header exactly as this handle's last commit left it; `None` when that is
    /// not known (another connection may have committed right after it).
    pub(super) header: Mutex<Option<[u8; WAL_HEADER]>>,
}

/// Bytes of the WAL-index header (`WalIndexHdr`) that every commit rewrites.
pub(super) const WAL_HEADER: usize = 48;

/// Read the WAL-index header from the `-shm` file, opening it on first use; `None` (and the
/// file forgotten) when it cannot be read.
#[cfg(unix)]
pub(super) fn read_wal_header(
    file: &mut Option<std::fs::File>,
    db: &Path,
) -> Option<[u8; WAL_HEADER]> {
    use std::os::unix::fs::FileExt;
    if file.is_none() {
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        *file = std::fs::File::open(shm).ok();
    }
    let mut header = [0u8; WAL_HEADER];
    match file.as_ref()?.read_at(&mut header, 0) {
        Ok(WAL_HEADER) => Some(header),
        _ => {
            *file = None;
            None
        }
    }
}

#[cfg(not(unix))]
pub(super) fn read_wal_header(
    _file: &mut Option<std::fs::File>,
    _db: &Path,
) -> Option<[u8; WAL_HEADER]> {
    None
}

/// Reads the WAL-index header: SQLite rewrites it on every commit (its `iChange` counter,
/// `mxFrame`, checksums; the format is documented in SQLite's file-format notes, §4.5). Reading
/// 48 bytes with `pread` costs one cheap syscall, where `PRAGMA data_version` costs a read
/// transaction and two `fcntl` locks per call.
struct ShmProbe {
    file: Option<std::fs::File>,
    last: [u8; WAL_HEADER],
    /// Header changes seen, own commits included.
    generation: u64,
    /// Header changes seen that were not this handle's own commit.
    external: u64,
}

impl Default for ShmProbe {
    fn default() -> Self {
        ShmProbe {
            file: None,
            last: [0; WAL_HEADER],
            generation: 0,
            external: 0,
        }
    }
}

impl ShmProbe {
    /// The header generations (all changes, changes other than `own`): bumped whenever the
    /// header differs from the last read. `None` when the file cannot be read (the caller
    /// falls back to `data_version`).
    fn generation(&mut self, db: &Path, own: Option<[u8; WAL_HEADER]>) -> Option<(u64, u64)> {
        let header = read_wal_header(&mut self.file, db)?;
        if header != self.last {
            self.last = header;
            self.generation = self.generation.wrapping_add(1);
            // Every commit bumps the header's change counter, so a header equal to the one
            // this handle's last commit produced is that commit and nobody else's.
            if own != Some(header) {
                self.external = self.external.wrapping_add(1);
            }
        }
        Some((self.generation, self.external))
    }
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .field("synchronous", &self.synchronous)
            .finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Open (creating it if needed) the database at `path` with the default
    /// [`SqliteOptions`]: every acknowledged write is fsynced.
    ///
    /// This is a blocking call but a short one: it opens a few connections and reads the
    /// schema; nothing proportional to the number of entries is loaded (opening a file holding
    /// 100k entries takes about a millisecond). Call it from `spawn_blocking` if even that
    /// matters.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteBackend> {
        SqliteBackend::open_with(path, SqliteOptions::default())
    }

    /// Open (creating it if needed) the database at `path` with `options`. Blocking, like
    /// [`SqliteBackend::open`].
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteBackend> {
        let path = path.as_ref().to_path_buf();
        let deadline = Instant::now() + options.busy_timeout;
        let rw = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;

        // A new file is created readable by its owner only (SQLite gives the -wal and -shm
        // files the same mode): the data is encrypted, its size and churn are still private.
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
        }
        let writer = connect(&path, rw | OpenFlags::SQLITE_OPEN_CREATE, &options)?;
        // Switching to WAL needs a moment of exclusive access; another process opening the
        // same new file at the same time may hold it.
        let mode: String = retry_busy(deadline, || {
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        })
        .map_err(|e| sqlite_error("switching to WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::storage(format!(
                "sqlite database `{}` could not be switched to WAL mode (it is in `{mode}` mode)",
                path.display()
            )));
        }
        writer
            .pragma_update(None, "synchronous", options.synchronous.pragma_value())
            .map_err(|e| sqlite_error("setting synchronous", e))?;
        writer
            .pragma_update(None, "mmap_size", options.mmap_size)
            .map_err(|e| sqlite_error("setting mmap_size", e))?;
        // Large transactions (batched lease registration, group commits) would otherwise spill
        // dirty pages to the WAL mid-transaction once the default 2 MiB page cache is full.
        // Bounded (see WRITER_CACHE_KIB): it stays as full as the largest transaction made it.
        writer
            .pragma_update(None, "cache_size", WRITER_CACHE_KIB)
            .map_err(|e| sqlite_error("setting cache_size", e))?;
        retry_busy(deadline, || writer.execute_batch(CREATE_TABLE))
            .map_err(|e| sqlite_error("creating the schema", e))?;

        let mut readers = Vec::with_capacity(options.readers);
        for _ in 0..options.readers.max(1) {
            let reader = connect(&path, rw, &options)?;
            reader
                .pragma_update(None, "query_only", true)
                .map_err(|e| sqlite_error("opening a reader", e))?;
            reader
                .pragma_update(None, "mmap_size", options.mmap_size)
                .map_err(|e| sqlite_error("opening a reader", e))?;
            readers.push(Mutex::new(reader));
        }
        let marker = connect(&path, rw, &options)?;
        marker
            .pragma_update(None, "query_only", true)
            .map_err(|e| sqlite_error("opening a reader", e))?;

        let local_commits = Arc::new(AtomicU64::new(0));
        let own = Arc::new(OwnCommits::default());
        let readers: Arc<[Mutex<Connection>]> = readers.into();
        let writer = Writer::start(
            writer,
            Arc::clone(&readers),
            options.synchronous,
            options.busy_timeout,
            local_commits.clone(),
            own.clone(),
            path.clone(),
        )?;
        Ok(SqliteBackend {
            path,
            synchronous: options.synchronous,
            readers,
            next_reader: AtomicUsize::new(0),
            marker: Mutex::new(marker),
            shm: Mutex::new(ShmProbe::default()),
            local_commits,
            own,
            writer,
        })
    }

    /// The database file.
    #[cfg_attr(
        not(feature = "bench-internals"),
        allow(dead_code, reason = "for the storage tests only")
    )]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A free reader connection, or (when all are busy) one in turn.
    fn reader(&self) -> Result<MutexGuard<'_, Connection>> {
        let guard = self
            .readers
            .iter()
            .find_map(|m| match m.try_lock() {
                Ok(guard) => Some(Ok(guard)),
                Err(TryLockError::WouldBlock) => None,
                Err(TryLockError::Poisoned(p)) => Some(Ok(p.into_inner())),
            })
            .unwrap_or_else(|| {
                let n = self.next_reader.fetch_add(1, Ordering::Relaxed);
                let i = n.checked_rem(self.readers.len()).unwrap_or(0);
                self.readers
                    .get(i)
                    .ok_or_else(|| Error::internal("sqlite backend has no reader connection"))?
                    .lock()
                    .or_else(crate::util::unpoison)
            })?;
        // A read transaction left open (an error while ending it) would pin an old snapshot:
        // never hand out a connection that is still inside one.
        if !guard.is_autocommit() {
            guard
                .execute_batch("ROLLBACK")
                .map_err(|e| sqlite_error("resetting a reader", e))?;
        }
        Ok(guard)
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare_cached(GET)
            .map_err(|e| sqlite_error("read", e))?;
        stmt.query_row([key], |row| row.get::<_, Vec<u8>>(0))
            .optional()
            .map_err(|e| sqlite_error("read", e))
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.writer
            .submit(Write::Put {
                key: key.to_string(),
                value: value.to_vec(),
            })
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.writer
            .submit(Write::Delete {
                key: key.to_string(),
            })
            .await
    }

    async fn list(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        let conn = self.reader()?;
        in_snapshot(&conn, |conn| list_children(conn, prefix, page))
            .map_err(|e| sqlite_error("list", e))
    }

    async fn scan(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        let conn = self.reader()?;
        in_snapshot(&conn, |conn| scan_keys(conn, prefix, page))
            .map_err(|e| sqlite_error("scan", e))
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.writer.submit(Write::Transaction(ops)).await
    }

    async fn transaction_unsynced(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.writer.submit(Write::Unsynced(ops)).await
    }

    async fn change_marker(&self) -> Result<Option<u64>> {
        if let Some((all, _)) = self.probe()? {
            // The high bit keeps the two sources from ever producing the same number by
            // accident when the probe comes and goes.
            return Ok(Some(
                (all | 1 << 63).wrapping_add(self.local_commits.load(Ordering::Acquire)),
            ));
        }
        self.data_version_marker()
    }

    async fn external_change_marker(&self) -> Result<Option<u64>> {
        if let Some((_, external)) = self.probe()? {
            return Ok(Some(
                (external | 1 << 63).wrapping_add(self.own.others.load(Ordering::Acquire)),
            ));
        }
        // Without the probe there is no telling own commits apart: every commit counts.
        self.data_version_marker()
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

impl SqliteBackend {
    /// The WAL-index probe's generations (all commits, commits other than this handle's).
    fn probe(&self) -> Result<Option<(u64, u64)>> {
        let own = *self.own.header.lock().or_else(crate::util::unpoison)?;
        Ok(self
            .shm
            .lock()
            .or_else(crate::util::unpoison)?
            .generation(&self.path, own))
    }

    /// The marker from `PRAGMA data_version` on a connection that never writes, when the
    /// WAL-index cannot be read.
    fn data_version_marker(&self) -> Result<Option<u64>> {
        let conn = self.marker.lock().or_else(crate::util::unpoison)?;
        let version: i64 = conn
            .prepare_cached(DATA_VERSION)
            .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
            .map_err(|e| sqlite_error("reading the data version", e))?;
        let version = u64::try_from(version).unwrap_or_default();
        Ok(Some(
            version.wrapping_add(self.local_commits.load(Ordering::Acquire)),
        ))
    }
}

/// Open one connection with the settings every connection needs.
fn connect(path: &Path, flags: OpenFlags, options: &SqliteOptions) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        Error::storage(format!(
            "could not open sqlite database `{}`: {}",
            path.display(),
            failure_text(&e)
        ))
        .with_source(e)
    })?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| sqlite_error("setting the busy timeout", e))?;
    Ok(conn)
}

/// Run `f` inside one read transaction so a multi-query list sees one snapshot; the
/// transaction is always ended, also when `f` fails.
fn in_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = f(conn);
    let end = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]));
    let value = result?;
    end?;
    Ok(value)
}

/// Vault's list shape without visiting descendants: one indexed range probe per returned
/// entry, jumping past every key under a folder once the folder is found.
fn list_children(conn: &Connection, prefix: &str, page: &Page) -> rusqlite::Result<Vec<String>> {
    let limit = page.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut at_or_after = conn.prepare_cached(FIRST_AT_OR_AFTER)?;
    let mut after = conn.prepare_cached(FIRST_AFTER)?;
    let mut cursor = match page.after.as_deref() {
        // `after` naming a folder skips everything under it too.
        Some(a) if a.ends_with('/') => match prefix_end(&format!("{prefix}{a}")) {
            Some(end) => Bound::Included(end),
            None => return Ok(out),
        },
        Some(a) => Bound::Excluded(format!("{prefix}{a}")),
        None => Bound::Included(prefix.to_string()),
    };
    while out.len() < limit {
        let next: Option<String> = match &cursor {
            Bound::Included(k) => at_or_after.query_row([k], |row| row.get(0)).optional()?,
            Bound::Excluded(k) => after.query_row([k], |row| row.get(0)).optional()?,
            Bound::Unbounded => None,
        };
        let Some(key) = next else { break };
        // Keys are in order, so the first key outside the prefix ends the walk.
        let Some(child) = child_of(prefix, &key) else {
            break;
        };
        if child.ends_with('/') {
            match prefix_end(&format!("{prefix}{child}")) {
                Some(end) => cursor = Bound::Included(end),
                None => cursor = Bound::Unbounded,
            }
        } else {
            cursor = Bound::Excluded(key);
        }
        out.push(child);
    }
    Ok(out)
}

/// Every key under `prefix`, relative to it, stepping the cursor lazily so a limit stops the
/// scan early.
fn scan_keys(conn: &Connection, prefix: &str, page: &Page) -> rusqlite::Result<Vec<String>> {
    let limit = page.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let (sql, start) = match page.after.as_deref() {
        Some(a) => (KEYS_AFTER, format!("{prefix}{a}")),
        None => (KEYS_AT_OR_AFTER, prefix.to_string()),
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([start])?;
    while out.len() < limit {
        let Some(row) = rows.next()? else { break };
        let key: String = row.get(0)?;
        let Some(rest) = key.strip_prefix(prefix) else {
            break;
        };
        out.push(rest.to_string());
    }
    Ok(out)
}

/// Retry `f` while SQLite reports the database busy, until `deadline` (SQLite's own busy
/// handler covers most waits; this covers the few it does not, like WAL recovery).
fn retry_busy<T>(
    deadline: Instant,
    mut f: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// SQLite's description of a failure (never a bound value: SQLite does not echo them).
fn failure_text(err: &rusqlite::Error) -> String {
    match err {
        rusqlite::Error::SqliteFailure(e, Some(msg)) => format!("{msg} ({e})"),
        rusqlite::Error::SqliteFailure(e, None) => e.to_string(),
        other => other.to_string(),
    }
}

/// Map a SQLite failure during `what` to [`crate::ErrorCode::Storage`], or
/// [`crate::ErrorCode::Unavailable`] when another connection held the lock past the busy
/// timeout.
fn sqlite_error(what: &str, err: rusqlite::Error) -> Error {
    if is_busy(&err) {
        Error::unavailable(format!(
            "sqlite {what} failed: the database stayed locked by another connection past the \
             busy timeout"
        ))
        .with_source(err)
    } else {
        Error::storage(format!("sqlite {what} failed: {}", failure_text(&err))).with_source(err)
    }
}
