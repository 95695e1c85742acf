//! The change listener of a [`super::PostgresBackend`]: one connection outside the pool that
//! `LISTEN`s on the table's channel and counts notifications. When it loses its connection it
//! bumps the counter (whatever happened meanwhile was not seen, so caches must drop what they
//! hold), reconnects with backoff, and bumps it again once listening.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::pg_error;
use crate::error::{Error, Result};

type PgConnection =
    tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// The application name of listening connections (visible in `pg_stat_activity`).
pub(super) const APPLICATION_NAME: &str = "strongroom-listener";
/// A silent connection may be dead without TCP noticing for hours: ping it this often.
const HEARTBEAT: Duration = Duration::from_secs(15);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(5);

/// A request for a sync point: answered once every notification committed before it was
/// counted.
type SyncRequest = tokio::sync::oneshot::Sender<()>;

/// How long a sync point may take before the caller gives up and treats the store as changed.
const SYNC_TIMEOUT: Duration = Duration::from_secs(2);

/// Owns the listening task; dropping it stops the task and closes its connection.
pub(super) struct Listener {
    task: tokio::task::AbortHandle,
    sync: tokio::sync::mpsc::Sender<SyncRequest>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Connect and `LISTEN` (so changes are counted from the moment this returns), then keep
    /// listening in a background task.
    pub(super) async fn start(
        mut config: Config,
        tls: MakeRustlsConnect,
        endpoint: String,
        changes: Arc<AtomicU64>,
        listen: String,
    ) -> Result<Listener> {
        config.application_name(APPLICATION_NAME);
        config.keepalives_idle(Duration::from_secs(30));
        let (client, conn) = establish(&config, &tls, &endpoint, &changes, &listen).await?;
        let (sync, rx) = tokio::sync::mpsc::channel(1024);
        let task = tokio::spawn(supervise(
            config, tls, endpoint, changes, listen, client, conn, rx,
        ));
        Ok(Listener {
            task: task.abort_handle(),
            sync,
        })
    }

    /// Wait until every notification committed before this call has been counted: the listener
    /// makes a round trip on its connection, and PostgreSQL delivers pending notifications
    /// before the answer. Returns `false` when that could not be done in time (the caller must
    /// then assume the store changed).
    pub(super) async fn sync_point(&self) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.sync.send(tx).await.is_err() {
            return false;
        }
        matches!(tokio::time::timeout(SYNC_TIMEOUT, rx).await, Ok(Ok(())))
    }
}

async fn establish(
    config: &Config,
    tls: &MakeRustlsConnect,
    endpoint: &str,
    changes: &AtomicU64,
    listen: &str,
) -> Result<(Client, PgConnection)> {
    let (client, mut conn) = config
        .connect(tls.clone())
        .await
        .map_err(|e| pg_error(endpoint, "connection", &e))?;
    match drive_until(&mut conn, changes, client.batch_execute(listen)).await {
        Some(Ok(())) => Ok((client, conn)),
        Some(Err(e)) => Err(pg_error(endpoint, "listen", &e)),
        None => Err(Error::unavailable(format!(
            "postgresql at {endpoint} closed the connection during listen"
        ))),
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one task's whole state, moved in once"
)]
async fn supervise(
    config: Config,
    tls: MakeRustlsConnect,
    endpoint: String,
    changes: Arc<AtomicU64>,
    listen: String,
    mut client: Client,
    mut conn: PgConnection,
    mut sync: tokio::sync::mpsc::Receiver<SyncRequest>,
) {
    loop {
        watch(&client, &mut conn, &changes, &mut sync).await;
        changes.fetch_add(1, Ordering::SeqCst);
        tracing::warn!(%endpoint, "postgresql change listener lost its connection; reconnecting");
        let mut pause = Duration::from_millis(50);
        loop {
            tokio::time::sleep(pause).await;
            match establish(&config, &tls, &endpoint, &changes, &listen).await {
                Ok((new_client, new_conn)) => {
                    client = new_client;
                    conn = new_conn;
                    changes.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(%endpoint, "postgresql change listener reconnected");
                    break;
                }
                Err(e) => {
                    tracing::debug!(%endpoint, error = %e, "postgresql change listener reconnect failed");
                    pause = (pause * 2).min(MAX_RECONNECT_PAUSE);
                }
            }
        }
    }
}

/// Count notifications until the connection ends or stops answering pings; answer sync
/// points (one round trip serves every request queued before it was sent).
async fn watch(
    client: &Client,
    conn: &mut PgConnection,
    changes: &AtomicU64,
    sync: &mut tokio::sync::mpsc::Receiver<SyncRequest>,
) {
    loop {
        let woke = drive_until(conn, changes, async {
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => None,
                req = sync.recv() => req,
            }
        })
        .await;
        let mut waiting = match woke {
            None => return,
            Some(None) => Vec::new(),
            Some(Some(first)) => vec![first],
        };
        while let Ok(more) = sync.try_recv() {
            waiting.push(more);
        }
        let ping = tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("SELECT 1"));
        match drive_until(conn, changes, ping).await {
            Some(Ok(Ok(_))) => {
                for w in waiting {
                    let _ = w.send(());
                }
            }
            _ => return,
        }
    }
}

/// Poll `conn` (counting notifications) while waiting for `fut`; `None` when the connection
/// ends first.
async fn drive_until<F: Future>(
    conn: &mut PgConnection,
    changes: &AtomicU64,
    fut: F,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        loop {
            match conn.poll_message(cx) {
                Poll::Ready(Some(Ok(AsyncMessage::Notification(_)))) => {
                    changes.fetch_add(1, Ordering::SeqCst);
                }
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(None),
                Poll::Pending => break,
            }
        }
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}
