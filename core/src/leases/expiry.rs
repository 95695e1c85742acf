//! Expiry and revocation: the runner that revokes due leases on a bounded pool of workers,
//! with retries and backoff, and revocation on request.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorCode, Result};
use crate::storage::{Page, TxnOp};
use crate::util::ttl::{self};

use super::index::*;
use super::record::*;
use super::*;

/// OpenBao truncates a stored revocation error to this many characters.
pub(super) const MAX_REVOKE_ERR: usize = 240;

/// How often an irrevocable lease is tried again (OpenBao: daily).
pub(super) const IRREVOCABLE_RETRY: Duration = Duration::from_secs(24 * 3600);

/// How many due entries one storage page fetches.
pub(super) const DUE_PAGE: usize = 512;

pub(super) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `base * 2^(attempt-1)`, capped, with ±50% jitter.
pub(super) fn backoff(cfg: &LeaseConfig, attempt: u32) -> Duration {
    use rand::Rng;
    let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    let base = cfg.backoff_base.saturating_mul(exp).min(cfg.backoff_max);
    let factor: f64 = rand::rng().random_range(0.5..1.5);
    base.mul_f64(factor).max(Duration::from_secs(1))
}

pub(super) enum Outcome {
    /// Revoked; the deletions still to commit, when the runner batches them.
    Revoked(String, Option<Vec<TxnOp>>),
    Retried,
    Irrevocable,
    Rescheduled,
}

/// Counts outcomes and commits the deletions of revoked leases in batches.
#[derive(Default)]
pub(super) struct Tally {
    ops: Vec<TxnOp>,
    ids: Vec<String>,
}

/// Revoked leases deleted per transaction.
pub(super) const DELETE_BATCH: usize = 256;

impl Tally {
    fn add(
        &mut self,
        sr: &Leases,
        report: &mut ExpiryReport,
        r: std::result::Result<Result<Outcome>, tokio::task::JoinError>,
    ) {
        match r {
            Ok(Ok(Outcome::Revoked(id, Some(ops)))) => {
                self.ops.extend(ops);
                self.ids.push(id);
            }
            Ok(Ok(Outcome::Revoked(id, None))) => {
                report.revoked += 1;
                sr.lease_revoked(id);
            }
            Ok(Ok(Outcome::Retried)) => report.retried += 1,
            Ok(Ok(Outcome::Irrevocable)) => report.irrevocable += 1,
            Ok(Ok(Outcome::Rescheduled)) => report.rescheduled += 1,
            Ok(Err(e)) => {
                tracing::warn!(error = %e.message(), "expiry runner: a job failed; it will be retried next tick")
            }
            Err(e) => tracing::error!(error = %e, "expiry runner: a job panicked"),
        }
    }

    async fn flush_if_full(&mut self, sr: &Leases, report: &mut ExpiryReport) {
        if self.ids.len() >= DELETE_BATCH {
            self.flush(sr, report).await;
        }
    }

    async fn flush(&mut self, sr: &Leases, report: &mut ExpiryReport) {
        if self.ids.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.ops);
        let ids = std::mem::take(&mut self.ids);
        match sr.storage.transaction(ops).await {
            Ok(()) => {
                report.revoked += ids.len();
                for id in ids {
                    sr.lease_revoked(id);
                }
            }
            Err(e) => {
                // Revoked but still recorded: the next run revokes them again (idempotent).
                tracing::warn!(error = %e.message(), count = ids.len(), "expiry runner: could not delete revoked leases; they will be retried");
            }
        }
    }
}

impl Leases {
    /// One run of the expiry runner (see [`crate::Strongroom::run_expiry`]).
    pub(crate) async fn run_expiry(self: &Arc<Self>) -> Result<ExpiryReport> {
        let mut report = ExpiryReport::default();
        if self.host.is_sealed() {
            return Ok(report);
        }
        let _running = self.leases_mgr().running.lock().await;
        self.host.sync_store().await?;
        if !self.hold_leadership().await? {
            return Ok(report);
        }
        report.leader = true;
        // Keep the lock while this run lasts (a run can outlast the lock's TTL); stop handing
        // out work if it is lost.
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let heartbeat = {
            let sr = Arc::clone(self);
            let lost = lost.clone();
            let every = (self.leases_mgr().config.leader_ttl / 3).max(Duration::from_millis(10));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if !matches!(sr.hold_leadership().await, Ok(true)) {
                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
            })
        };
        let result = self.revoke_due(&mut report, &lost).await;
        if !lost.load(std::sync::atomic::Ordering::SeqCst) {
            self.recover_engines().await;
        }
        heartbeat.abort();
        result.map(|()| report)
    }

    /// Each mount's crash recovery (a database credential created but never leased is
    /// dropped), on every run of the leader so a crash is repaired soon after a restart.
    pub(super) async fn recover_engines(&self) {
        let Ok(router) = self.host.router() else {
            return;
        };
        for m in router.mounted() {
            if let Err(e) = m.engine.recover(&m.ctx).await {
                tracing::warn!(mount = %m.entry.path, error = %e.message(), "crash recovery failed; retried on the next run");
            }
        }
    }

    pub(super) async fn revoke_due(
        self: &Arc<Self>,
        report: &mut ExpiryReport,
        lost: &std::sync::atomic::AtomicBool,
    ) -> Result<()> {
        let now = nanos(self.clock.now());
        let now_bucket = now.div_euclid(1_000_000_000);
        self.warn_expiring(now_bucket).await?;
        let workers = self.leases_mgr().config.workers.max(1);
        let sem = Arc::new(tokio::sync::Semaphore::new(workers));
        let mut jobs: tokio::task::JoinSet<Result<Outcome>> = tokio::task::JoinSet::new();
        let mut after: Option<String> = None;
        let mut tally = Tally::default();
        loop {
            let page = self
                .storage
                .scan(
                    DUE_PREFIX,
                    &Page {
                        after: after.clone(),
                        limit: Some(DUE_PAGE),
                    },
                )
                .await?;
            let done = page.len() < DUE_PAGE;
            after = page.last().cloned();
            let mut past_now = false;
            for rel in page {
                let Some((bucket, lease_id)) = rel.split_once('/') else {
                    continue;
                };
                let Ok(bucket) = bucket.parse::<i64>() else {
                    continue;
                };
                if bucket > now_bucket || lost.load(std::sync::atomic::Ordering::SeqCst) {
                    past_now = true;
                    break;
                }
                let key = format!("{DUE_PREFIX}{rel}");
                {
                    let mut inflight = self
                        .leases_mgr()
                        .in_flight
                        .lock()
                        .or_else(crate::util::unpoison)?;
                    if !inflight.insert(key.clone()) {
                        continue;
                    }
                }
                let permit = sem
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::internal("worker pool closed"))?;
                let sr = Arc::clone(self);
                let lease_id = lease_id.to_string();
                jobs.spawn(async move {
                    let r = sr.process_due(&key, &lease_id, now).await;
                    if let Ok(mut f) = sr.leases_mgr().in_flight.lock() {
                        f.remove(&key);
                    }
                    drop(permit);
                    r
                });
                while let Some(done) = jobs.try_join_next() {
                    tally.add(self, report, done);
                }
                tally.flush_if_full(self, report).await;
            }
            if done || past_now {
                break;
            }
        }
        while let Some(done) = jobs.join_next().await {
            tally.add(self, report, done);
            tally.flush_if_full(self, report).await;
        }
        tally.flush(self, report).await;
        Ok(())
    }

    /// Send `ExpiringSoon` for leases in buckets up to `now + window` not yet warned about
    /// (only when someone listens).
    pub(super) async fn warn_expiring(&self, now_bucket: i64) -> Result<()> {
        let mgr = self.leases_mgr();
        if mgr.events.receiver_count() == 0 {
            return Ok(());
        }
        let window = i64::try_from(mgr.config.expiring_soon.as_secs()).unwrap_or(0);
        let until = now_bucket.saturating_add(window);
        let from = (*mgr.warned_until.lock().or_else(crate::util::unpoison)?).max(now_bucket);
        if from >= until {
            return Ok(());
        }
        let mut after = Some(format!("{from:012}/\u{10FFFF}"));
        'pages: loop {
            let page = self
                .storage
                .scan(
                    DUE_PREFIX,
                    &Page {
                        after: after.clone(),
                        limit: Some(DUE_PAGE),
                    },
                )
                .await?;
            let done = page.len() < DUE_PAGE;
            after = page.last().cloned();
            for rel in page {
                let Some((bucket, lease_id)) = rel.split_once('/') else {
                    continue;
                };
                let Ok(b) = bucket.parse::<i64>() else {
                    continue;
                };
                if b > until {
                    break 'pages;
                }
                mgr.emit(LeaseEvent::ExpiringSoon {
                    lease_id: lease_id.to_string(),
                    expire_time: crate::clock::rfc3339(from_nanos(b.saturating_mul(1_000_000_000))),
                });
            }
            if done {
                break;
            }
        }
        *mgr.warned_until.lock().or_else(crate::util::unpoison)? = until;
        Ok(())
    }

    /// One due index entry: revoke its lease, reschedule it, or drop a stale entry.
    pub(super) async fn process_due(&self, due: &str, lease_id: &str, now: i64) -> Result<Outcome> {
        let storage = self.storage.as_ref();
        let Some(mut rec) = self.lease_record(lease_id).await? else {
            storage.delete(due).await?;
            return Ok(Outcome::Rescheduled);
        };
        if rec.irrevocable() {
            // As OpenBao: an irrevocable lease is tried again once a day; it goes when its
            // backend has recovered, and stays (with its error) when not.
            return match self.revoke_in_engine(&rec).await {
                Ok(()) => Ok(Outcome::Revoked(
                    rec.lease_id.clone(),
                    Some(deletion_ops(&rec, Some(due))),
                )),
                Err(e) => {
                    tracing::warn!(lease_id, error = %e.message(), "irrevocable lease: daily retry failed");
                    let next = bucket_of(now.saturating_add(dur_nanos(IRREVOCABLE_RETRY)));
                    storage
                        .transaction(vec![
                            TxnOp::Delete { key: due.into() },
                            TxnOp::Put {
                                key: due_key(next, lease_id),
                                value: Vec::new(),
                            },
                        ])
                        .await?;
                    Ok(Outcome::Rescheduled)
                }
            };
        }
        let expire = if rec.is_auth() {
            self.effective_expiry(&rec).await?
        } else {
            Some(rec.expire_time)
        };
        let token_gone =
            !rec.client_token.is_empty() && !self.token_alive(&rec.client_token).await?;
        let due_bucket = due
            .strip_prefix(DUE_PREFIX)
            .and_then(|r| r.split_once('/'))
            .and_then(|(b, _)| b.parse::<i64>().ok())
            .unwrap_or(0);
        // Not due after all (renewed): move the index entry. A due entry placed by a retry
        // (its bucket after the expiry) is honoured.
        if let Some(e) = expire {
            let retry_entry = due_bucket > 0 && due_bucket > bucket_of(rec.expire_time);
            if e > now && !token_gone && !retry_entry && rec.attempts == 0 {
                let to = due_key(bucket_of(e), lease_id);
                if to != due {
                    storage
                        .transaction(vec![
                            TxnOp::Delete { key: due.into() },
                            TxnOp::Put {
                                key: to,
                                value: Vec::new(),
                            },
                        ])
                        .await?;
                }
                return Ok(Outcome::Rescheduled);
            }
        } else if rec.is_auth() {
            // The token is gone: its lease record is a leftover.
            self.delete_lease(&rec, Some(due)).await?;
            return Ok(Outcome::Rescheduled);
        }
        match self.revoke_in_engine(&rec).await {
            Ok(()) if rec.quotas.is_empty() => {
                // The runner deletes revoked leases in batches (a crash before that commit
                // means the next run revokes them again, which engines allow).
                Ok(Outcome::Revoked(
                    rec.lease_id.clone(),
                    Some(deletion_ops(&rec, Some(due))),
                ))
            }
            Ok(()) => {
                self.delete_lease(&rec, Some(due)).await?;
                Ok(Outcome::Revoked(rec.lease_id.clone(), None))
            }
            Err(e) => {
                let cfg = &self.leases_mgr().config;
                rec.attempts = rec.attempts.saturating_add(1);
                rec.last_error = truncate(e.message(), MAX_REVOKE_ERR);
                let unrecoverable = matches!(
                    e.code(),
                    ErrorCode::InvalidInput
                        | ErrorCode::UnsupportedOperation
                        | ErrorCode::UnsupportedPath
                );
                tracing::warn!(lease_id, attempt = rec.attempts, error = %e.message(), "lease revocation failed");
                if unrecoverable || rec.attempts >= cfg.max_attempts {
                    rec.revoke_err = if unrecoverable {
                        truncate(e.message(), MAX_REVOKE_ERR)
                    } else {
                        truncate(&format!("out of retries: {}", e.message()), MAX_REVOKE_ERR)
                    };
                    storage
                        .transaction(vec![
                            TxnOp::Put {
                                key: format!("{ID_PREFIX}{lease_id}"),
                                value: encode(&rec)?,
                            },
                            TxnOp::Delete { key: due.into() },
                            TxnOp::Put {
                                key: due_key(
                                    bucket_of(now.saturating_add(dur_nanos(IRREVOCABLE_RETRY))),
                                    lease_id,
                                ),
                                value: Vec::new(),
                            },
                            TxnOp::Put {
                                key: format!("{IRREVOCABLE_PREFIX}{lease_id}"),
                                value: Vec::new(),
                            },
                        ])
                        .await?;
                    self.leases_mgr().emit(LeaseEvent::Irrevocable {
                        lease_id: rec.lease_id.clone(),
                        error: rec.revoke_err.clone(),
                    });
                    return Ok(Outcome::Irrevocable);
                }
                let wait = backoff(cfg, rec.attempts);
                let next = bucket_of(nanos(self.clock.now()).saturating_add(dur_nanos(wait)));
                storage
                    .transaction(vec![
                        TxnOp::Put {
                            key: format!("{ID_PREFIX}{lease_id}"),
                            value: encode(&rec)?,
                        },
                        TxnOp::Delete { key: due.into() },
                        TxnOp::Put {
                            key: due_key(next, lease_id),
                            value: Vec::new(),
                        },
                    ])
                    .await?;
                Ok(Outcome::Retried)
            }
        }
    }

    /// Whether a token (salted id) still exists and has not expired.
    pub(super) async fn token_alive(&self, salted: &str) -> Result<bool> {
        let now = self.clock.now();
        Ok(self
            .host
            .token(salted)
            .await?
            .is_some_and(|t| !t.expired(now)))
    }

    /// Call the engine (or the token store) to destroy what the lease stands for.
    pub(super) async fn revoke_in_engine(&self, rec: &LeaseRecord) -> Result<()> {
        if rec.is_auth() {
            return self.host.revoke_token_tree(&rec.token).await;
        }
        let router = self.host.router()?;
        let Some((mount, rel)) = router.route(&rec.path) else {
            return Err(Error::unsupported_path(&rec.path));
        };
        let leased = rec.leased(rel);
        let timeout = self.leases_mgr().config.revoke_timeout;
        match tokio::time::timeout(timeout, mount.engine.revoke(&mount.ctx, &leased)).await {
            Ok(r) => r,
            Err(_) => Err(Error::unavailable(format!(
                "revocation timed out after {}",
                ttl::human(timeout)
            ))),
        }
    }

    /// [`Leases::revoke_in_engine`] for a caller's revocation: with `force` an engine error is
    /// logged and ignored, else it fails the call with OpenBao's text.
    pub(super) async fn revoke_on_request(&self, rec: &LeaseRecord, force: bool) -> Result<()> {
        match self.revoke_in_engine(rec).await {
            Ok(()) => Ok(()),
            Err(e) if force => {
                tracing::warn!(lease_id = %rec.lease_id, error = %e.message(), "revoke-force: ignoring revocation error");
                Ok(())
            }
            Err(e) => Err(Error::invalid_input(format!(
                "failed to revoke entry: resp: (*logical.Response)(nil) err: {}",
                e.message()
            ))),
        }
    }

    /// Revoke a lease now (`sys/leases/revoke` with `sync`): the engine first, then the
    /// records. With `force`, engine errors are ignored and the records deleted anyway.
    /// Unknown ids succeed (OpenBao answers 204).
    pub(crate) async fn lease_revoke_now(&self, lease_id: &str, force: bool) -> Result<()> {
        let Some(rec) = self.lease_record(lease_id).await? else {
            return Ok(());
        };
        self.revoke_on_request(&rec, force).await?;
        self.delete_lease(&rec, None).await?;
        self.lease_revoked(rec.lease_id.clone());
        Ok(())
    }

    /// Queue a lease for revocation by the runner (`sync: false`): due now.
    pub(crate) async fn lease_expire_now(&self, lease_id: &str) -> Result<()> {
        let Some(mut rec) = self.lease_record(lease_id).await? else {
            return Ok(());
        };
        let now = nanos(self.clock.now());
        let old = bucket_of(rec.expire_time);
        rec.expire_time = rec.expire_time.min(now);
        let mut ops = vec![TxnOp::Put {
            key: format!("{ID_PREFIX}{}", rec.lease_id),
            value: encode(&rec)?,
        }];
        if !rec.irrevocable() {
            ops.push(TxnOp::Delete {
                key: due_key(old, &rec.lease_id),
            });
            ops.push(TxnOp::Put {
                key: due_key(0, &rec.lease_id),
                value: Vec::new(),
            });
        }
        self.storage.transaction(ops).await
    }

    /// `revoke-prefix` / `revoke-force`: revoke every lease under `prefix` now.
    pub(crate) async fn lease_revoke_prefix(
        self: &Arc<Self>,
        prefix: &str,
        force: bool,
    ) -> Result<()> {
        // As OpenBao: a prefix that is itself a lease id revokes that lease; otherwise it is a
        // path prefix ending in `/`.
        if !prefix.ends_with('/') && self.lease_record(prefix).await?.is_some() {
            return self.lease_revoke_now(prefix, force).await;
        }
        let prefix = if prefix.ends_with('/') || prefix.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        // Streamed, on the runner's pool, deletions batched: see `prefix`.
        self.revoke_leases_under(&prefix, force).await
    }
}
