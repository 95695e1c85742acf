//! Revocations of one connection config, coalesced: while one batch is in the database, the
//! revocations that arrive meanwhile queue up, and the next batch takes them all (group commit).
//! A revoke-prefix or an expiry run of many leases then costs one round trip (and, on
//! PostgreSQL, one commit) per batch instead of per user.
//!
//! Every caller still gets its own answer, and only once its user is really dropped: a batch
//! that succeeds answers all of its callers; one the database refused is retried user by user
//! (so one bad user fails alone, and its lease is retried by the lease manager); one that could
//! not reach the database fails every caller in it. A caller that gives up (the lease
//! manager's revocation timeout) leaves its user in the queue; dropping it later is harmless,
//! as its lease is still recorded and its next revocation finds the user gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use super::plugin::{DropUser, Plugin};
use crate::error::{Error, ErrorCode, Result};

/// The most users one batch drops.
const MAX_BATCH: usize = 256;

struct Job {
    statements: Vec<String>,
    username: String,
    done: oneshot::Sender<Result<()>>,
}

/// One connection config's revocation queue.
pub(crate) struct Revoker {
    plugin: Arc<dyn Plugin>,
    pending: std::sync::Mutex<Vec<Job>>,
    /// Held by the caller running a batch.
    turn: tokio::sync::Mutex<()>,
    /// Batches sent, and the users they held (for tests and debugging).
    batches: AtomicU64,
    users: AtomicU64,
}

impl Revoker {
    pub(crate) fn new(plugin: Arc<dyn Plugin>) -> Revoker {
        Revoker {
            plugin,
            pending: std::sync::Mutex::new(Vec::new()),
            turn: tokio::sync::Mutex::new(()),
            batches: AtomicU64::new(0),
            users: AtomicU64::new(0),
        }
    }

    /// Batches run so far, and the users they held.
    // Only the plugins' tests read them.
    #[cfg(all(test, any(feature = "postgres", feature = "mysql", feature = "redis")))]
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.users.load(Ordering::Relaxed),
        )
    }

    /// Drop `username` with `statements` (see [`Plugin::drop_user`]), in a batch with whatever
    /// other revocations of this config are waiting.
    pub(crate) async fn drop_user(&self, statements: Vec<String>, username: String) -> Result<()> {
        let (done, mut answer) = oneshot::channel();
        self.pending
            .lock()
            .or_else(crate::util::unpoison)?
            .push(Job {
                statements,
                username,
                done,
            });
        loop {
            let turn = self.turn.lock().await;
            // A batch run while we waited for the turn may have been ours.
            match answer.try_recv() {
                Ok(r) => return r,
                Err(oneshot::error::TryRecvError::Closed) => {
                    // The caller running our batch gave up half-way.
                    return Err(Error::unavailable(
                        "the revocation batch was interrupted; the revocation is retried",
                    ));
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let jobs: Vec<Job> = {
                let mut pending = self.pending.lock().or_else(crate::util::unpoison)?;
                let n = pending.len().min(MAX_BATCH);
                pending.drain(..n).collect()
            };
            if jobs.is_empty() {
                // Unreachable while our job is unanswered (whoever took it answers it before
                // giving the turn back, or drops it, which closes our channel); never spin.
                return Err(Error::internal("revocation queue lost a job"));
            }
            self.run(jobs).await;
            drop(turn);
        }
    }

    async fn run(&self, mut jobs: Vec<Job>) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.users.fetch_add(
            u64::try_from(jobs.len()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if jobs.len() == 1 {
            if let Some(job) = jobs.pop() {
                let r = self.plugin.drop_user(&job.statements, &job.username).await;
                let _ = job.done.send(r);
            }
            return;
        }
        let users: Vec<DropUser<'_>> = jobs
            .iter()
            .map(|j| DropUser {
                statements: &j.statements,
                username: &j.username,
            })
            .collect();
        let batch = self.plugin.drop_users(&users).await;
        drop(users);
        match batch {
            Ok(()) => answer_all(jobs, |_| Ok(())),
            // Unreachable, timed out: the same for every user in the batch.
            Err(e) if e.code() == ErrorCode::Unavailable => {
                answer_all(jobs, |_| Err(Error::new(e.code(), e.message())));
            }
            // The database (or the plugin) refused something: find out which user, one by one.
            Err(e) => {
                tracing::debug!(users = jobs.len(), error = %e.message(), "revocation batch refused; revoking one by one");
                for job in jobs {
                    let r = self.plugin.drop_user(&job.statements, &job.username).await;
                    let _ = job.done.send(r);
                }
            }
        }
    }
}

fn answer_all(jobs: Vec<Job>, r: impl Fn(&Job) -> Result<()>) {
    for job in jobs {
        let out = r(&job);
        // A caller that gave up no longer listens.
        let _ = job.done.send(out);
    }
}
