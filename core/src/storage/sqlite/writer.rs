//! The writer thread of a [`super::SqliteBackend`]: owns the one read-write connection and
//! commits writes in groups (group commit), so concurrent writers share an fsync.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::{
    DATA_VERSION, DELETE, GET, OwnCommits, PUT, Synchronous, WAL_HEADER, read_wal_header,
    retry_busy, sqlite_error,
};
use crate::error::{Error, Result};
use crate::storage::TxnOp;

/// At most this many writes, and about this many value bytes, share one transaction, so one
/// group never holds the write lock (or memory) for long.
const MAX_GROUP: usize = 256;
const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// One write, as submitted by the async side.
pub(super) enum Write {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    Transaction(Vec<TxnOp>),
    /// A transaction acknowledged before it is fsynced ([`crate::storage::Backend::transaction_unsynced`]).
    Unsynced(Vec<TxnOp>),
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<()>>,
}

impl Job {
    /// Must the commit that holds this job reach the disk before anyone hears of it?
    fn synced(&self) -> bool {
        !matches!(self.write, Write::Unsynced(_))
    }
}

impl Write {
    fn bytes(&self) -> usize {
        match self {
            Write::Put { key, value } => key.len() + value.len(),
            Write::Delete { key } => key.len(),
            Write::Transaction(ops) | Write::Unsynced(ops) => ops
                .iter()
                .map(|op| match op {
                    TxnOp::Put { key, value } => key.len() + value.len(),
                    TxnOp::Delete { key } | TxnOp::Check { key, .. } => key.len(),
                })
                .sum(),
        }
    }
}

/// The async side's handle on the writer thread. The thread stops (and closes its connection)
/// when this is dropped.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Move `conn` to a new writer thread.
    pub(super) fn start(
        conn: Connection,
        readers: Arc<[Mutex<Connection>]>,
        synchronous: Synchronous,
        busy_timeout: Duration,
        local_commits: Arc<AtomicU64>,
        own: Arc<OwnCommits>,
        path: PathBuf,
    ) -> Result<Writer> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("strongroom-sqlite-writer".to_string())
            .spawn(move || {
                let mut watch = Watch {
                    own: &own,
                    path: &path,
                    shm: None,
                    seen: data_version(&conn).ok(),
                };
                let mut sync = SyncLevel {
                    configured: synchronous,
                    current: synchronous,
                };
                run(
                    &conn,
                    &readers,
                    &queue,
                    busy_timeout,
                    &local_commits,
                    &mut watch,
                    &mut sync,
                );
            })
            .map_err(|e| {
                Error::storage("could not start the sqlite writer thread").with_source(e)
            })?;
        Ok(Writer { jobs })
    }

    /// Apply `write` and wait until it is committed (or refused).
    pub(super) async fn submit(&self, write: Write) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { write, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::internal("the sqlite writer thread stopped")
}

/// The writer's side of [`OwnCommits`].
struct Watch<'a> {
    own: &'a OwnCommits,
    path: &'a Path,
    shm: Option<std::fs::File>,
    /// This connection's `data_version` after its last commit (`None` = unknown).
    seen: Option<i64>,
}

impl Watch<'_> {
    /// Another connection committed (or may have): the external marker must move.
    fn other_commit(&self) {
        self.own.others.fetch_add(1, Ordering::AcqRel);
    }

    fn set_own_header(&self, header: Option<[u8; WAL_HEADER]>) {
        if let Ok(mut h) = self.own.header.lock() {
            *h = header;
        }
    }

    /// Inside a fresh write transaction: did anyone else commit since our last commit?
    fn transaction_started(&mut self, conn: &Connection) -> Result<i64> {
        let now = data_version(conn).map_err(|e| sqlite_error("write", e))?;
        if self.seen != Some(now) {
            self.other_commit();
        }
        Ok(now)
    }

    /// Right after our commit: record the header it left, unless someone else committed
    /// after it before we could read it.
    fn committed(&mut self, conn: &Connection, before: i64) {
        let header = read_wal_header(&mut self.shm, self.path);
        let after = data_version(conn).ok();
        if after == Some(before) && header.is_some() {
            self.set_own_header(header);
        } else {
            self.other_commit();
            self.set_own_header(None);
        }
        self.seen = after;
    }

    /// Our transaction was rolled back: nothing of ours was committed, and any other
    /// connection's commit before it was counted when it started.
    fn rolled_back(&mut self, before: i64) {
        self.seen = Some(before);
    }

    /// The group failed: assume the worst.
    fn failed(&mut self) {
        self.other_commit();
        self.set_own_header(None);
        self.seen = None;
    }
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(DATA_VERSION)
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
}

/// The writer connection's `PRAGMA synchronous`: as configured, except for a group made only
/// of unsynced writes, which commits with `NORMAL` (in WAL mode: no fsync at commit; the next
/// synced commit's fsync of the WAL covers it too, so order is kept).
struct SyncLevel {
    configured: Synchronous,
    current: Synchronous,
}

impl SyncLevel {
    fn set(&mut self, conn: &Connection, want: Synchronous) {
        if self.current == want {
            return;
        }
        match conn.pragma_update(None, "synchronous", want.pragma_value()) {
            Ok(()) => self.current = want,
            // Stay as we are: syncing more than asked is always safe, and if a relaxed
            // setting cannot be undone the next group tries again.
            Err(e) => tracing::warn!(error = %e, "cannot change sqlite's synchronous setting"),
        }
    }

    fn for_group(&mut self, conn: &Connection, group: &[Job]) {
        let want = if group.iter().any(Job::synced) {
            self.configured
        } else {
            Synchronous::Normal
        };
        self.set(conn, want);
    }
}

/// The writer gives its page cache back after this long without a write: the cache speeds a
/// busy writer up, and an idle one would otherwise keep it (up to `WRITER_CACHE_KIB`) for good,
/// e.g. after a mass revocation.
const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// Free what the connection's page cache holds (`sqlite3_db_release_memory`); the next
/// transaction reads the pages it needs again, from the OS page cache.
fn release_page_cache(conn: &Connection) {
    if let Err(e) = conn.release_memory() {
        tracing::debug!(error = %e, "sqlite writer: could not release its page cache");
    }
}

/// Free the page caches of the reader connections not in use. Each fills up to its bound
/// (SQLite's default, 2 MiB) as reads touch pages, and keeps them: after a mass revocation,
/// whose reads went through every page of the leases, they stayed full for good. Done when
/// writes stop, as a burst of reads mostly comes with writes (and a reader's cache refills
/// from the OS page cache).
fn release_readers(readers: &[Mutex<Connection>]) {
    for reader in readers {
        // A reader in use is skipped: it is released next time.
        if let Ok(conn) = reader.try_lock() {
            release_page_cache(&conn);
        }
    }
}

fn run(
    conn: &Connection,
    readers: &[Mutex<Connection>],
    queue: &mpsc::Receiver<Job>,
    busy_timeout: Duration,
    local_commits: &AtomicU64,
    watch: &mut Watch<'_>,
    sync: &mut SyncLevel,
) {
    // Whether the page cache was given back since the last commit.
    let mut released = true;
    loop {
        let first = match queue.recv_timeout(IDLE_RELEASE) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !released {
                    release_page_cache(conn);
                    release_readers(readers);
                    released = true;
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        released = false;
        let mut bytes = first.write.bytes();
        let mut group = vec![first];
        while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            match queue.try_recv() {
                Ok(job) => {
                    bytes += job.write.bytes();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        sync.for_group(conn, &group);
        let results = commit_group(conn, &group, Instant::now() + busy_timeout, watch);
        if results.iter().any(Result::is_ok) {
            local_commits.fetch_add(1, Ordering::Release);
        }
        for (job, result) in group.into_iter().zip(results) {
            // The caller may have given up waiting; the write stands either way.
            let _ = job.reply.send(result);
        }
    }
}

/// Commit every job of `group` that can be applied, in order, in one transaction. A job that
/// fails (a precondition, a constraint) is rolled back to its savepoint alone; a failure of the
/// transaction itself fails them all.
fn commit_group(
    conn: &Connection,
    group: &[Job],
    deadline: Instant,
    watch: &mut Watch<'_>,
) -> Vec<Result<()>> {
    match try_commit_group(conn, group, deadline, watch) {
        Ok(results) => results,
        Err(failure) => {
            watch.failed();
            if !conn.is_autocommit() {
                // Best effort: if even this fails the next BEGIN reports the problem.
                let _ = conn.execute_batch("ROLLBACK");
            }
            group
                .iter()
                .map(|_| Err(Error::new(failure.code(), failure.message())))
                .collect()
        }
    }
}

fn try_commit_group(
    conn: &Connection,
    group: &[Job],
    deadline: Instant,
    watch: &mut Watch<'_>,
) -> Result<Vec<Result<()>>> {
    let exec = |sql: &str, what: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute([]))
            .map_err(|e| sqlite_error(what, e))
    };
    // IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
    // upgrades later can fail with SQLITE_BUSY without waiting.
    retry_busy(deadline, || {
        conn.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut stmt| stmt.execute([]))
    })
    .map_err(|e| sqlite_error("write", e))?;
    let before = watch.transaction_started(conn)?;
    // A group of one needs no savepoint: if its job fails the whole transaction is rolled
    // back. A savepoint makes SQLite copy every page the job changes to a sub-journal first,
    // a tenth of the CPU of a mass revocation, whose batches commit one at a time.
    if let [job] = group {
        if let Err(e) = apply(conn, &job.write) {
            exec("ROLLBACK", "write")?;
            watch.rolled_back(before);
            return Ok(vec![Err(e)]);
        }
        exec("COMMIT", "commit")?;
        watch.committed(conn, before);
        return Ok(vec![Ok(())]);
    }
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        exec("SAVEPOINT job", "write")?;
        let outcome = apply(conn, &job.write);
        if outcome.is_err() {
            exec("ROLLBACK TO job", "write")?;
        }
        exec("RELEASE job", "write")?;
        results.push(outcome);
    }
    exec("COMMIT", "commit")?;
    watch.committed(conn, before);
    Ok(results)
}

fn apply(conn: &Connection, write: &Write) -> Result<()> {
    match write {
        Write::Put { key, value } => put(conn, key, value),
        Write::Delete { key } => delete(conn, key),
        Write::Transaction(ops) | Write::Unsynced(ops) => {
            // Every check sees the state before the transaction's own writes.
            for op in ops {
                if let TxnOp::Check { key, expected } = op {
                    let current: Option<Vec<u8>> = conn
                        .prepare_cached(GET)
                        .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
                        .map_err(|e| sqlite_error("transaction", e))?;
                    if current != *expected {
                        return Err(Error::conflict(format!(
                            "transaction precondition failed on `{key}`"
                        )));
                    }
                }
            }
            for op in ops {
                match op {
                    TxnOp::Put { key, value } => put(conn, key, value)?,
                    TxnOp::Delete { key } => delete(conn, key)?,
                    TxnOp::Check { .. } => {}
                }
            }
            Ok(())
        }
    }
}

fn put(conn: &Connection, key: &str, value: &[u8]) -> Result<()> {
    conn.prepare_cached(PUT)
        .and_then(|mut stmt| stmt.execute(rusqlite::params![key, value]))
        .map(|_| ())
        .map_err(|e| sqlite_error("write", e))
}

fn delete(conn: &Connection, key: &str) -> Result<()> {
    conn.prepare_cached(DELETE)
        .and_then(|mut stmt| stmt.execute([key]))
        .map(|_| ())
        .map_err(|e| sqlite_error("delete", e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn synchronous(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap()
    }

    fn job(write: Write) -> Job {
        Job {
            write,
            reply: oneshot::channel().0,
        }
    }

    fn unsynced() -> Job {
        job(Write::Unsynced(Vec::new()))
    }

    fn synced() -> Job {
        job(Write::Transaction(Vec::new()))
    }

    /// A table whose inserts of the key `bad` fail, so a job can fail after it wrote.
    fn refusing_store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::CREATE_TABLE).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON strongroom_kv WHEN NEW.key = 'bad' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .unwrap();
        conn
    }

    fn put(key: &str) -> TxnOp {
        TxnOp::Put {
            key: key.to_string(),
            value: b"v".to_vec(),
        }
    }

    fn keys(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT key FROM strongroom_kv ORDER BY key")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// A job that fails after some of its writes leaves none of them, alone in its group (no
    /// savepoint: the transaction is rolled back) or beside others (rolled back to its
    /// savepoint, the others committed); the writer goes on committing afterwards.
    #[test]
    fn a_failing_job_leaves_nothing_with_or_without_a_savepoint() {
        let conn = refusing_store();
        let own = OwnCommits::default();
        let path = std::env::temp_dir().join("strongroom-writer-test-none.db");
        let mut watch = Watch {
            own: &own,
            path: &path,
            shm: None,
            seen: None,
        };
        let deadline = Instant::now() + Duration::from_secs(5);

        let alone = [job(Write::Transaction(vec![
            put("a"),
            put("bad"),
            put("c"),
        ]))];
        let results = commit_group(&conn, &alone, deadline, &mut watch);
        assert!(matches!(results.as_slice(), [Err(_)]), "{results:?}");
        assert!(conn.is_autocommit(), "the transaction was ended");
        assert!(keys(&conn).is_empty(), "{:?}", keys(&conn));

        let beside = [
            job(Write::Transaction(vec![put("x"), put("bad")])),
            job(Write::Transaction(vec![put("y")])),
        ];
        let results = commit_group(&conn, &beside, deadline, &mut watch);
        assert!(
            matches!(results.as_slice(), [Err(_), Ok(())]),
            "{results:?}"
        );
        assert_eq!(keys(&conn), ["y"]);

        let results = commit_group(
            &conn,
            &[job(Write::Transaction(vec![put("z")]))],
            deadline,
            &mut watch,
        );
        assert!(matches!(results.as_slice(), [Ok(())]), "{results:?}");
        assert_eq!(keys(&conn), ["y", "z"]);
    }

    /// A group of unsynced writes alone commits with `NORMAL`; any synced write in the group,
    /// and every group after, gets the configured level back (FULL = 2, NORMAL = 1).
    #[test]
    fn only_all_unsynced_groups_skip_the_fsync() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        let mut sync = SyncLevel {
            configured: Synchronous::Full,
            current: Synchronous::Full,
        };
        sync.for_group(&conn, &[unsynced(), unsynced()]);
        assert_eq!(synchronous(&conn), 1);
        sync.for_group(&conn, &[unsynced(), synced()]);
        assert_eq!(synchronous(&conn), 2);
        sync.for_group(&conn, &[unsynced()]);
        assert_eq!(synchronous(&conn), 1);
        sync.for_group(&conn, &[synced()]);
        assert_eq!(synchronous(&conn), 2);
        // A store configured NORMAL stays NORMAL either way.
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        let mut relaxed = SyncLevel {
            configured: Synchronous::Normal,
            current: Synchronous::Normal,
        };
        relaxed.for_group(&conn, &[synced()]);
        assert_eq!(synchronous(&conn), 1);
        relaxed.for_group(&conn, &[unsynced()]);
        assert_eq!(synchronous(&conn), 1);
    }
}
