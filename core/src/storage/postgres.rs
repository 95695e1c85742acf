//! PostgreSQL backend: one table shared by any number of processes and hosts.
//!
//! The store is one table (`strongroom_kv` unless configured; several stores can share a
//! database in tables of their own). Each write commits a `NOTIFY` on the table's channel
//! (`strongroom_changes` for the default table); every handle keeps one extra connection
//! that `LISTEN`s and turns notifications into [`Backend::change_marker`] moves. Transactions
//! run at `SERIALIZABLE` and are retried on serialization failures, so concurrent
//! compare-and-set through `Check` is exact.

mod listener;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::IsolationLevel;
use tokio_postgres::error::SqlState;

use super::{Backend, Page, TxnOp, child_of, prefix_end};
use crate::error::{Error, Result};

/// Serialises concurrent first opens: `CREATE TABLE IF NOT EXISTS` is not safe against itself.
const SCHEMA_LOCK: i64 = 0x5354_524f_4e47_524d; // "STRONGRM"
/// The table used when none is configured.
pub const DEFAULT_TABLE: &str = "strongroom_kv";
/// The notification channel of the default table (other tables get one of their own).
const DEFAULT_CHANNEL: &str = "strongroom_changes";

/// Options of a [`PostgresBackend`] beyond its connection URL (the `postgresql` storage
/// stanza's `table` and `max_parallel`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The table holding the store (created when missing; checked by [`crate::config::check_postgres_table_name`]);
    /// [`DEFAULT_TABLE`] when `None`.
    /// Several stores can share one database, each in its own table: their change
    /// notifications and leader locks are kept apart too.
    pub table: Option<String>,
    /// The most connections the pool opens (16 when `None`), besides the change listener's.
    pub max_connections: Option<usize>,
}

/// The SQL of one table (its name is checked by [`crate::config::check_postgres_table_name`] and quoted).
struct Sql {
    table: String,
    create_table: String,
    get: String,
    put: String,
    delete: String,
    check: String,
    put_many: String,
    delete_many: String,
    notify: String,
    /// Keys from `$1` (inclusive) below the bound `$2`, at most `$3`.
    scan_bounded: String,
    scan_unbounded: String,
    /// The skip-scan in one round trip: each step finds the first key at or after the
    /// previous step's successor, which is the key plus `\x01` for a leaf (text cannot hold
    /// NUL) or the folder with its `/` bumped to `0` for a deeper key. PostgreSQL evaluates
    /// the recursion lazily, so the outer LIMIT stops it.
    list: String,
    /// `LISTEN <channel>`.
    listen: String,
}

impl Sql {
    fn new(table: &str) -> Sql {
        let t = format!("\"{table}\"");
        let channel = channel(table);
        Sql {
            table: table.to_string(),
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 key TEXT COLLATE \"C\" PRIMARY KEY, \
                 value BYTEA NOT NULL)"
            ),
            get: format!("SELECT value FROM {t} WHERE key = $1::text"),
            put: format!(
                "WITH w AS (\
                 INSERT INTO {t} (key, value) VALUES ($1::text, $2::bytea) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value) \
                 SELECT pg_notify('{channel}', '')"
            ),
            delete: format!(
                "WITH d AS (DELETE FROM {t} WHERE key = $1::text) \
                 SELECT pg_notify('{channel}', '')"
            ),
            check: format!("SELECT key, value FROM {t} WHERE key = ANY($1::text[])"),
            put_many: format!(
                "INSERT INTO {t} (key, value) \
                 SELECT * FROM unnest($1::text[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            delete_many: format!("DELETE FROM {t} WHERE key = ANY($1::text[])"),
            notify: format!("SELECT pg_notify('{channel}', '')"),
            scan_bounded: format!(
                "SELECT key FROM {t} \
                 WHERE key >= $1::text AND key < $2::text ORDER BY key LIMIT $3::bigint"
            ),
            scan_unbounded: format!(
                "SELECT key FROM {t} WHERE key >= $1::text ORDER BY key LIMIT $2::bigint"
            ),
            list: format!(
                "WITH RECURSIVE walk(key) AS (\
                   (SELECT key FROM {t} WHERE key >= $1::text ORDER BY key LIMIT 1) \
                 UNION ALL \
                   SELECT (SELECT k.key FROM {t} k \
                           WHERE k.key >= (CASE \
                             WHEN strpos(substr(w.key, length($2::text) + 1), '/') > 0 \
                             THEN left(w.key, length($2::text) \
                                  + strpos(substr(w.key, length($2::text) + 1), '/') - 1) || '0' \
                             ELSE w.key || chr(1) END) \
                           ORDER BY k.key LIMIT 1) \
                   FROM walk w WHERE w.key IS NOT NULL AND starts_with(w.key, $2::text)\
                 ) \
                 SELECT key FROM walk WHERE key IS NOT NULL AND starts_with(key, $2::text) LIMIT $3::bigint"
            ),
            listen: format!("LISTEN {channel}"),
        }
    }
}

/// The notification channel of `table`: the historical one for the default table (so
/// processes of different versions on one store still hear each other), a name derived from
/// the table otherwise (a channel is at most 63 bytes; the table name may already be that).
fn channel(table: &str) -> String {
    if table == DEFAULT_TABLE {
        DEFAULT_CHANNEL.to_string()
    } else {
        format!("{DEFAULT_CHANNEL}_{:016x}", fnv1a(table.as_bytes()))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// How often a transaction is retried after a serialization failure before giving up.
const MAX_TXN_ATTEMPTS: u32 = 40;

/// The PostgreSQL backend: a pool of connections to one database, plus a listening
/// connection for change notifications.
///
/// [`Backend::change_marker`] moves at once for this handle's own writes, and for other
/// handles' writes as soon as their notification arrives (normally within milliseconds of the
/// commit); it also moves whenever the listening connection is lost or re-established.
///
/// ```no_run
/// # async fn demo() -> strongroom::Result<()> {
/// use strongroom::storage::{Backend, PostgresBackend};
///
/// let storage = PostgresBackend::connect("postgres://strongroom@db.internal:5432/strongroom").await?;
/// assert_eq!(storage.kind(), "postgresql");
/// # Ok(())
/// # }
/// ```
pub struct PostgresBackend {
    pool: Pool,
    /// `host:port` for messages (never the password).
    endpoint: String,
    changes: Arc<AtomicU64>,
    /// Stops the listening task when the backend is dropped.
    listener: listener::Listener,
    /// The session holding advisory locks ([`Backend::hold_lock`]): one pooled connection kept
    /// out of the pool while locks are held. PostgreSQL releases them when it closes.
    locks: tokio::sync::Mutex<Option<LockSession>>,
    sql: Sql,
}

struct LockSession {
    client: deadpool_postgres::Client,
    held: std::collections::HashSet<i64>,
}

/// A stable 64-bit advisory lock key for a lock name of the store in `table` (FNV-1a), the
/// same in every process. Advisory locks are database-wide: the default table keeps its
/// historical key, any other table's name is part of the key, so two stores in one database
/// each have their own leader.
fn lock_key(table: &str, name: &str) -> i64 {
    let scope = if table == DEFAULT_TABLE {
        "strongroom/lock/".to_string()
    } else {
        format!("strongroom/lock/{table}/")
    };
    let h = fnv1a(format!("{scope}{name}").as_bytes());
    i64::from_ne_bytes(h.to_ne_bytes())
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connect to the database at `url` (`postgres://user:password@host:port/db` or libpq's
    /// `key=value` form), creating the `strongroom_kv` table if it does not exist yet.
    ///
    /// Must be called inside a Tokio runtime: the pool and the change listener run on it.
    /// TLS follows libpq's `sslmode` / `sslrootcert` / `sslcert` / `sslkey` parameters in the
    /// url (`prefer` by default; see `util/pgtls.rs`). Fails with [`crate::ErrorCode::Unavailable`] when the server
    /// cannot be reached.
    #[cfg_attr(
        not(feature = "bench-internals"),
        allow(
            dead_code,
            reason = "the engine opens with options; its tests use this"
        )
    )]
    pub async fn connect(url: &str) -> Result<PostgresBackend> {
        PostgresBackend::connect_with(url, &PostgresOptions::default()).await
    }

    /// [`PostgresBackend::connect`] with [`PostgresOptions`]: another table, another pool
    /// size. A table name that [`crate::config::check_postgres_table_name`] refuses fails with
    /// [`crate::ErrorCode::InvalidInput`] before anything is connected.
    pub async fn connect_with(url: &str, options: &PostgresOptions) -> Result<PostgresBackend> {
        let table = options.table.as_deref().unwrap_or(DEFAULT_TABLE);
        crate::config::check_postgres_table_name(table)?;
        let max_connections = options.max_connections.unwrap_or(16);
        if max_connections == 0 {
            return Err(Error::invalid_input(
                "postgresql max connections must be at least 1",
            ));
        }
        let sql = Sql::new(table);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::internal(
                "the postgresql backend must be opened inside a tokio runtime",
            ));
        }
        let (url, tls) = crate::util::pgtls::split(url);
        let (ssl_mode, connector) = crate::util::pgtls::connector(&tls)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            Error::invalid_input(
                "invalid postgresql connection url (expected \
                 `postgres://user@host:port/database` or `key=value` pairs)",
            )
        })?;
        config.ssl_mode(ssl_mode);
        if config.get_application_name().is_none() {
            config.application_name("strongroom");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let endpoint = endpoint(&config);
        if endpoint.is_empty() {
            return Err(Error::invalid_input(
                "postgresql connection url names no host",
            ));
        }

        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(15)))
            .build()
            .map_err(|e| Error::internal("could not build the postgresql pool").with_source(e))?;
        let changes = Arc::new(AtomicU64::new(0));
        let backend_endpoint = endpoint.clone();
        let listener = listener::Listener::start(
            config,
            connector,
            endpoint,
            changes.clone(),
            sql.listen.clone(),
        )
        .await?;
        let backend = PostgresBackend {
            pool,
            endpoint: backend_endpoint,
            changes,
            listener,
            locks: tokio::sync::Mutex::new(None),
            sql,
        };
        backend.create_schema().await?;
        Ok(backend)
    }

    async fn create_schema(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| self.pg_error("schema creation", &e))?;
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {}",
            self.sql.create_table
        ))
        .await
        .map_err(|e| self.pg_error("schema creation", &e))?;
        tx.commit()
            .await
            .map_err(|e| self.pg_error("schema creation", &e))?;
        // `CREATE TABLE IF NOT EXISTS` leaves an existing table alone: one of another shape
        // (another program's, OpenBao's `openbao_kv_store`, which has `key` and `value` among
        // others) is refused here rather than written into.
        let rows = client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1::text \
                 ORDER BY ordinal_position",
                &[&self.sql.table],
            )
            .await
            .map_err(|e| self.pg_error("schema creation", &e))?;
        let columns: Vec<(String, String)> = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<std::result::Result<_, tokio_postgres::Error>>()
            .map_err(|e| self.pg_error("schema creation", &e))?;
        let expected = [("key", "text"), ("value", "bytea")];
        if columns.len() == expected.len()
            && columns
                .iter()
                .zip(expected)
                .all(|((c, t), (ec, et))| c == ec && t == et)
        {
            return Ok(());
        }
        Err(Error::invalid_input(format!(
            "postgresql table `{}` exists but is not a strongroom store (it must have \
             exactly the columns `key text` and `value bytea`); name another `table`",
            self.sql.table
        )))
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.pg_error("connection", &e),
            PoolError::Timeout(_) => Error::unavailable(format!(
                "postgresql at {} did not give a connection in time",
                self.endpoint
            )),
            PoolError::Closed => Error::unavailable("the postgresql connection pool is closed"),
            other => Error::storage(format!("postgresql connection failed: {other}")),
        })
    }

    fn pg_error(&self, what: &str, err: &tokio_postgres::Error) -> Error {
        pg_error(&self.endpoint, what, err)
    }

    /// Note a committed write of ours: the listener also sees its notification, but only
    /// after a round trip, and a cache above must not miss it meanwhile.
    fn wrote(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// [`Backend::transaction`], retried on serialization failures; `synced = false` for
    /// [`Backend::transaction_unsynced`].
    async fn run_transaction(&self, ops: &[TxnOp], synced: bool) -> Result<()> {
        let plan = Plan::new(ops)?;
        let mut pause = Duration::from_millis(1);
        for _ in 0..MAX_TXN_ATTEMPTS {
            match self.try_transaction(&plan, synced).await {
                Ok(()) => {
                    if !plan.writes.is_empty() {
                        self.wrote();
                    }
                    return Ok(());
                }
                Err(TxnFailure::Fail(e)) => return Err(e),
                Err(TxnFailure::Retry) => {
                    // Jitter so the losers of one round do not collide again in lockstep.
                    let jitter = rand::random_range(0..=pause.as_micros().min(50_000));
                    let jitter = u64::try_from(jitter).unwrap_or_default();
                    tokio::time::sleep(pause + Duration::from_micros(jitter)).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
        Err(Error::unavailable(
            "postgresql transaction kept failing on concurrent updates; retry later",
        ))
    }

    async fn try_transaction(
        &self,
        plan: &Plan<'_>,
        synced: bool,
    ) -> std::result::Result<(), TxnFailure> {
        let fail = |e: &tokio_postgres::Error| {
            if matches!(
                e.code(),
                Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
            ) {
                TxnFailure::Retry
            } else {
                TxnFailure::Fail(self.pg_error("transaction", e))
            }
        };
        let mut client = self.client().await.map_err(TxnFailure::Fail)?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()
            .await
            .map_err(|e| fail(&e))?;
        if !synced {
            // Acknowledged once the server has it; the server's next synced commit flushes it.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await
                .map_err(|e| fail(&e))?;
        }
        if !plan.checks.is_empty() {
            let keys: Vec<&str> = plan.checks.iter().map(|(k, _)| *k).collect();
            let stmt = tx
                .prepare_cached(&self.sql.check)
                .await
                .map_err(|e| fail(&e))?;
            let rows = tx.query(&stmt, &[&keys]).await.map_err(|e| fail(&e))?;
            let mut current: HashMap<String, Vec<u8>> = HashMap::with_capacity(rows.len());
            for row in rows {
                let key: String = row.try_get(0).map_err(|e| fail(&e))?;
                let value: Vec<u8> = row.try_get(1).map_err(|e| fail(&e))?;
                current.insert(key, value);
            }
            for (key, expected) in &plan.checks {
                if current.get(*key).map(Vec::as_slice) != *expected {
                    // Dropping the transaction rolls it back.
                    return Err(TxnFailure::Fail(Error::conflict(format!(
                        "transaction precondition failed on `{key}`"
                    ))));
                }
            }
        }
        let (put_keys, put_values): (Vec<&str>, Vec<&[u8]>) = plan
            .writes
            .iter()
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .unzip();
        let delete_keys: Vec<&str> = plan
            .writes
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| *k)
            .collect();
        if !put_keys.is_empty() {
            let stmt = tx
                .prepare_cached(&self.sql.put_many)
                .await
                .map_err(|e| fail(&e))?;
            tx.execute(&stmt, &[&put_keys, &put_values])
                .await
                .map_err(|e| fail(&e))?;
        }
        if !delete_keys.is_empty() {
            let stmt = tx
                .prepare_cached(&self.sql.delete_many)
                .await
                .map_err(|e| fail(&e))?;
            tx.execute(&stmt, &[&delete_keys])
                .await
                .map_err(|e| fail(&e))?;
        }
        if !plan.writes.is_empty() {
            let stmt = tx
                .prepare_cached(&self.sql.notify)
                .await
                .map_err(|e| fail(&e))?;
            tx.execute(&stmt, &[]).await.map_err(|e| fail(&e))?;
        }
        tx.commit().await.map_err(|e| fail(&e))
    }
}

/// A transaction reduced to what the database must do: the checks, and the final state of
/// each written key (`None` = deleted).
struct Plan<'a> {
    checks: Vec<(&'a str, Option<&'a [u8]>)>,
    writes: BTreeMap<&'a str, Option<&'a [u8]>>,
}

impl<'a> Plan<'a> {
    fn new(ops: &'a [TxnOp]) -> Result<Plan<'a>> {
        let mut checks = Vec::new();
        let mut writes = BTreeMap::new();
        for op in ops {
            match op {
                TxnOp::Put { key, value } => {
                    check_key(key)?;
                    writes.insert(key.as_str(), Some(value.as_slice()));
                }
                TxnOp::Delete { key } => {
                    check_key(key)?;
                    writes.insert(key.as_str(), None);
                }
                TxnOp::Check { key, expected } => {
                    check_key(key)?;
                    checks.push((key.as_str(), expected.as_deref()));
                }
            }
        }
        Ok(Plan { checks, writes })
    }
}

enum TxnFailure {
    /// A serialization failure or deadlock: run the whole transaction again.
    Retry,
    Fail(Error),
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.get)
            .await
            .map_err(|e| self.pg_error("read", &e))?;
        let row = client
            .query_opt(&stmt, &[&key])
            .await
            .map_err(|e| self.pg_error("read", &e))?;
        row.map(|r| r.try_get::<_, Vec<u8>>(0))
            .transpose()
            .map_err(|e| self.pg_error("read", &e))
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        check_key(key)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.put)
            .await
            .map_err(|e| self.pg_error("write", &e))?;
        client
            .execute(&stmt, &[&key, &value])
            .await
            .map_err(|e| self.pg_error("write", &e))?;
        self.wrote();
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.delete)
            .await
            .map_err(|e| self.pg_error("delete", &e))?;
        client
            .execute(&stmt, &[&key])
            .await
            .map_err(|e| self.pg_error("delete", &e))?;
        self.wrote();
        Ok(())
    }

    async fn list(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        check_key(prefix)?;
        let start = match page.after.as_deref() {
            Some(a) => {
                check_key(a)?;
                if a.ends_with('/') {
                    // `after` naming a folder skips everything under it too.
                    match prefix_end(&format!("{prefix}{a}")) {
                        Some(end) => end,
                        None => return Ok(Vec::new()),
                    }
                } else {
                    // The smallest text after `prefix + a` (text cannot hold NUL).
                    format!("{prefix}{a}\u{1}")
                }
            }
            None => prefix.to_string(),
        };
        let limit = limit_param(page);
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.list)
            .await
            .map_err(|e| self.pg_error("list", &e))?;
        let rows = client
            .query(&stmt, &[&start, &prefix, &limit])
            .await
            .map_err(|e| self.pg_error("list", &e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get(0).map_err(|e| self.pg_error("list", &e))?;
            if let Some(child) = child_of(prefix, &key) {
                out.push(child);
            }
        }
        Ok(out)
    }

    async fn scan(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        check_key(prefix)?;
        let start = match page.after.as_deref() {
            Some(a) => {
                check_key(a)?;
                format!("{prefix}{a}\u{1}")
            }
            None => prefix.to_string(),
        };
        let limit = limit_param(page);
        let client = self.client().await?;
        let rows = match upper_bound(prefix) {
            Some(end) => {
                let stmt = client
                    .prepare_cached(&self.sql.scan_bounded)
                    .await
                    .map_err(|e| self.pg_error("scan", &e))?;
                client.query(&stmt, &[&start, &end, &limit]).await
            }
            None => {
                let stmt = client
                    .prepare_cached(&self.sql.scan_unbounded)
                    .await
                    .map_err(|e| self.pg_error("scan", &e))?;
                client.query(&stmt, &[&start, &limit]).await
            }
        }
        .map_err(|e| self.pg_error("scan", &e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get(0).map_err(|e| self.pg_error("scan", &e))?;
            if let Some(rest) = key.strip_prefix(prefix) {
                out.push(rest.to_string());
            }
        }
        Ok(out)
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.run_transaction(&ops, true).await
    }

    async fn transaction_unsynced(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.run_transaction(&ops, false).await
    }

    async fn change_marker(&self) -> Result<Option<u64>> {
        // The listener bumps the counter on every notification and on every reconnect. A sync
        // point first makes sure notifications of writes committed before this call are
        // counted, so a cache above never serves a value another process already replaced.
        if !self.listener.sync_point().await {
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
        Ok(Some(self.changes.load(Ordering::SeqCst)))
    }

    async fn hold_lock(&self, name: &str) -> Result<Option<bool>> {
        let key = lock_key(&self.sql.table, name);
        let mut slot = self.locks.lock().await;
        if slot.as_ref().is_some_and(|s| s.client.is_closed()) {
            // The session died, and the server released its locks with it.
            *slot = None;
        }
        if let Some(session) = slot.as_mut() {
            if session.held.contains(&key) {
                return match session.client.simple_query("SELECT 1").await {
                    Ok(_) => Ok(Some(true)),
                    Err(e) => {
                        tracing::warn!(error = %e, "advisory lock session lost");
                        *slot = None;
                        Ok(Some(false))
                    }
                };
            }
        }
        if slot.is_none() {
            *slot = Some(LockSession {
                client: self.client().await?,
                held: std::collections::HashSet::new(),
            });
        }
        let Some(session) = slot.as_mut() else {
            return Ok(Some(false));
        };
        match session
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
        {
            Ok(row) => {
                let got: bool = row.get(0);
                if got {
                    session.held.insert(key);
                }
                Ok(Some(got))
            }
            Err(e) => {
                *slot = None;
                Err(self.pg_error("advisory lock", &e))
            }
        }
    }

    async fn release_lock(&self, name: &str) -> Result<()> {
        let key = lock_key(&self.sql.table, name);
        let mut slot = self.locks.lock().await;
        let Some(session) = slot.as_mut() else {
            return Ok(());
        };
        if session.held.remove(&key) {
            session
                .client
                .query_one("SELECT pg_advisory_unlock($1)", &[&key])
                .await
                .map_err(|e| self.pg_error("advisory unlock", &e))?;
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }
}

fn limit_param(page: &Page) -> Option<i64> {
    page.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX))
}

/// PostgreSQL text cannot hold NUL: refuse such keys clearly instead of failing in the driver.
fn check_key(key: &str) -> Result<()> {
    if key.contains('\0') {
        return Err(Error::invalid_input(
            "postgresql storage keys cannot contain NUL characters",
        ));
    }
    Ok(())
}

/// The smallest string greater than every string starting with `prefix`, computed on
/// characters so it is always valid UTF-8 (UTF-8 byte order is code point order), or `None`
/// when no such bound exists (an empty prefix).
fn upper_bound(prefix: &str) -> Option<String> {
    prefix_end(prefix)
}

/// `host:port[,host:port...]` from `config`, for messages.
fn endpoint(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => format!("{}:{port}", p.display()),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Map a driver error during `what`: unreachable server → [`crate::ErrorCode::Unavailable`]
/// naming `endpoint`; anything the server reports → [`crate::ErrorCode::Storage`] with its
/// message and SQLSTATE (never a value: those are bound parameters, which PostgreSQL does not
/// echo in messages).
fn pg_error(endpoint: &str, what: &str, err: &tokio_postgres::Error) -> Error {
    if let Some(db) = err.as_db_error() {
        let code = db.code().code();
        let unavailable = code.starts_with("08")
            || code.starts_with("57P")
            || code == SqlState::TOO_MANY_CONNECTIONS.code();
        let message = format!(
            "postgresql {what} failed at {endpoint}: {} (sqlstate {code})",
            db.message()
        );
        return if unavailable {
            Error::unavailable(message)
        } else {
            Error::storage(message)
        };
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            // A TLS refusal (rustls) is an io error carrying why: say it, it is what to fix.
            if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                return Error::unavailable(format!(
                    "postgresql at {endpoint}: the TLS handshake failed: {tls}"
                ));
            }
            return Error::unavailable(format!(
                "postgresql at {endpoint} is unreachable: {}",
                io.kind()
            ));
        }
        source = cause.source();
    }
    if err.is_closed() {
        return Error::unavailable(format!(
            "postgresql at {endpoint} closed the connection during {what}"
        ));
    }
    let text = err.to_string();
    if text.starts_with("timeout") {
        return Error::unavailable(format!(
            "postgresql at {endpoint} did not answer in time during {what}"
        ));
    }
    Error::storage(format!("postgresql {what} failed at {endpoint}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound_is_tight_and_valid() {
        assert_eq!(upper_bound(""), None);
        assert_eq!(upper_bound("a/").as_deref(), Some("a0"));
        assert_eq!(upper_bound("a\u{7f}").as_deref(), Some("a\u{80}"));
        assert_eq!(upper_bound("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(upper_bound("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(upper_bound("\u{10ffff}"), None);
        // Every key starting with the prefix sorts (by bytes) below the bound.
        let end = upper_bound("x\u{7f}").unwrap();
        for key in ["x\u{7f}", "x\u{7f}\u{10ffff}", "x\u{7f}zzz"] {
            assert!(key.as_bytes() < end.as_bytes(), "{key:?}");
        }
        assert!("x\u{80}".as_bytes() >= end.as_bytes());
    }

    #[test]
    fn endpoint_never_shows_the_password() {
        let config: tokio_postgres::Config =
            "postgres://user:hunter2@db.example:6543/x".parse().unwrap();
        assert_eq!(endpoint(&config), "db.example:6543");
    }
}
