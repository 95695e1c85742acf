//! `revoke-prefix` / `revoke-force` over many leases, in memory that does not grow with their
//! number and in few transactions.
//!
//! The lease ids are read a page at a time (never all at once), revoked on the runner's bounded
//! pool of workers with each finished job collected at once (a join set that is only drained at
//! the end keeps every finished task's memory until then: 100k token leases held hundreds of
//! MiB), and the storage deletions of revoked leases are committed in batches, as the expiry
//! runner commits them; a batch's commit runs while the next batch's leases are revoked. A
//! token lease whose token has no children is revoked in the same batch: the token's deletion
//! and its lease's are one transaction, so a crash leaves both or neither.
//!
//! The saga is the runner's: the engine first, then the records. A crash before a batch's
//! commit leaves revoked leases recorded, and the next revocation (or the runner, when they
//! expire) revokes them again, which engines allow.

use std::sync::Arc;

use tokio::task::{JoinHandle, JoinSet};

use super::index::deletion_ops;
use super::{ID_PREFIX, Leases};
use crate::error::{Error, Result};
use crate::storage::{Page, TxnOp};

/// Lease ids read per storage page.
const ID_PAGE: usize = 512;
/// Revoked leases whose deletions share one transaction (and one fsync).
const BATCH: usize = 256;

/// A lease revoked by a job: its id, and the deletions still to commit (`None` when the job
/// committed them itself, e.g. for a lease counted in a quota).
type Revoked = Option<(String, Option<Pending>)>;

/// Deletions to commit for one revoked lease, and the token (salted id) to forget from the
/// token store's cache once they are committed.
struct Pending {
    ops: Vec<TxnOp>,
    token: Option<String>,
}

/// Deletions of revoked leases waiting for their transaction, and the previous batch's
/// commit, which runs while the next batch's leases are revoked (the commit waits for the
/// writer and its fsync: awaited in line, it left the workers idle for half the time).
#[derive(Default)]
struct Batch {
    ops: Vec<TxnOp>,
    ids: Vec<String>,
    tokens: Vec<String>,
    committing: Option<JoinHandle<Option<Error>>>,
}

/// One batch's deletions, taken out of [`Batch`] to be committed.
struct Taken {
    ops: Vec<TxnOp>,
    ids: Vec<String>,
    tokens: Vec<String>,
}

impl Batch {
    fn add(
        &mut self,
        sr: &Leases,
        first_err: &mut Option<Error>,
        joined: std::result::Result<Result<Revoked>, tokio::task::JoinError>,
    ) {
        match joined {
            Ok(Ok(None)) => {}
            Ok(Ok(Some((id, None)))) => sr.lease_revoked(id),
            Ok(Ok(Some((id, Some(p))))) => {
                self.ops.extend(p.ops);
                self.ids.push(id);
                self.tokens.extend(p.token);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(Error::internal(format!("revocation task: {e}")));
            }
        }
    }

    async fn flush_if_full(&mut self, sr: &Arc<Leases>, first_err: &mut Option<Error>) {
        if self.ids.len() >= BATCH {
            self.flush(sr, first_err).await;
        }
    }

    /// Start committing what the batch holds, once the previous commit has ended (one
    /// commit in flight at a time, so memory stays bounded by two batches).
    async fn flush(&mut self, sr: &Arc<Leases>, first_err: &mut Option<Error>) {
        if self.ids.is_empty() {
            return;
        }
        self.wait(first_err).await;
        let taken = Taken {
            ops: std::mem::take(&mut self.ops),
            ids: std::mem::take(&mut self.ids),
            tokens: std::mem::take(&mut self.tokens),
        };
        let sr = Arc::clone(sr);
        // Spawned, so a revocation abandoned by its caller still ends the commit it began.
        self.committing = Some(tokio::spawn(async move { commit(&sr, taken).await }));
    }

    /// Wait for the commit in flight, if any.
    async fn wait(&mut self, first_err: &mut Option<Error>) {
        let Some(handle) = self.committing.take() else {
            return;
        };
        match handle.await {
            Ok(None) => {}
            Ok(Some(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(Error::internal(format!("revocation commit: {e}")));
            }
        }
    }

    /// Commit what is left and wait for every commit.
    async fn finish(&mut self, sr: &Arc<Leases>, first_err: &mut Option<Error>) {
        self.flush(sr, first_err).await;
        self.wait(first_err).await;
    }
}

/// Commit one batch; the first error, if any.
async fn commit(sr: &Leases, taken: Taken) -> Option<Error> {
    let Taken { ops, ids, tokens } = taken;
    let mut first_err = None;
    // A token that was childless when its job ran may have created a child since (it
    // stayed valid until this commit): revoke that tree first, or the child would outlive
    // its parent. The batch's deletions of the token are idempotent.
    // If that fails, nothing is committed: the leases stay recorded and are revoked again
    // by the next revocation or the runner.
    for t in &tokens {
        let grown = sr.host.token_has_children(t).await;
        let revoked = match grown {
            Ok(false) => Ok(()),
            Ok(true) => sr.host.revoke_token_tree(t).await,
            Err(e) => Err(e),
        };
        if let Err(e) = revoked {
            return Some(e);
        }
    }
    let committed = sr.storage.transaction(ops).await;
    // Forgotten either way: a failed commit may still have reached the disk.
    for t in &tokens {
        if let Err(e) = sr.host.forget_token(t) {
            first_err.get_or_insert(e);
        }
    }
    match committed {
        Ok(()) => {
            for id in ids {
                sr.lease_revoked(id);
            }
        }
        Err(e) => {
            first_err.get_or_insert(e);
        }
    }
    first_err
}

impl Leases {
    /// Revoke every lease whose id starts with `prefix` (a path prefix ending in `/`, or
    /// empty). The first error is returned once every other lease has been tried.
    pub(crate) async fn revoke_leases_under(
        self: &Arc<Self>,
        prefix: &str,
        force: bool,
    ) -> Result<()> {
        let full = format!("{ID_PREFIX}{prefix}");
        let workers = self.leases_mgr().config.workers.max(1);
        let mut jobs: JoinSet<Result<Revoked>> = JoinSet::new();
        let mut batch = Batch::default();
        let mut first_err = None;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .storage
                .scan(
                    &full,
                    &Page {
                        after: after.take(),
                        limit: Some(ID_PAGE),
                    },
                )
                .await?;
            let done = page.len() < ID_PAGE;
            after = page.last().cloned();
            for rel in page {
                while jobs.len() >= workers {
                    if let Some(joined) = jobs.join_next().await {
                        batch.add(self, &mut first_err, joined);
                    }
                }
                batch.flush_if_full(self, &mut first_err).await;
                let sr = Arc::clone(self);
                let id = format!("{prefix}{rel}");
                jobs.spawn(async move { sr.revoke_one_for_batch(&id, force).await });
            }
            if done {
                break;
            }
        }
        while let Some(joined) = jobs.join_next().await {
            batch.add(self, &mut first_err, joined);
            batch.flush_if_full(self, &mut first_err).await;
        }
        batch.finish(self, &mut first_err).await;
        first_err.map_or(Ok(()), Err)
    }

    /// Revoke one lease in its engine and hand back the deletions to batch (see the module).
    async fn revoke_one_for_batch(&self, lease_id: &str, force: bool) -> Result<Revoked> {
        let Some(rec) = self.lease_record(lease_id).await? else {
            return Ok(None);
        };
        // A token without children: its deletion joins the lease's, in the batch.
        if rec.is_auth() && rec.quotas.is_empty() {
            if let Some(mut ops) = self.host.leaf_token_ops(&rec.token).await? {
                ops.extend(deletion_ops(&rec, None));
                return Ok(Some((
                    rec.lease_id.clone(),
                    Some(Pending {
                        ops,
                        token: Some(rec.token.clone()),
                    }),
                )));
            }
        }
        self.revoke_on_request(&rec, force).await?;
        if rec.quotas.is_empty() {
            return Ok(Some((
                rec.lease_id.clone(),
                Some(Pending {
                    ops: deletion_ops(&rec, None),
                    token: None,
                }),
            )));
        }
        // Counted in a quota: the counter is updated with the deletion, checked against
        // other processes, so it is committed here.
        self.delete_lease(&rec, None).await?;
        Ok(Some((rec.lease_id.clone(), None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Operation;
    use serde_json::json;

    /// Several batches, each committed while the next one's leases are revoked: every lease
    /// is revoked exactly once (one event each) and every token is gone with its lease.
    #[tokio::test]
    async fn every_lease_of_several_batches_is_revoked_once() -> Result<()> {
        let sr = crate::Strongroom::open(crate::Config::dev()).await?;
        let root_token = sr
            .dev_root_token()
            .ok_or_else(|| Error::internal("no dev root token"))?;
        let root = sr.client(root_token);
        let n = 2 * BATCH + 7;
        let mut tokens = Vec::with_capacity(n);
        for _ in 0..n {
            let auth = root
                .write("auth/token/create", crate::data(json!({"ttl": "1h"})))
                .await?
                .auth
                .ok_or_else(|| Error::internal("no auth"))?;
            tokens.push(auth.client_token);
        }
        let leases = Arc::clone(&sr.inner.leases);
        assert_eq!(leases.lease_ids_under("auth/token/create/").await?.len(), n);
        let mut events = leases.subscribe();

        leases
            .revoke_leases_under("auth/token/create/", false)
            .await?;

        assert!(
            leases
                .lease_ids_under("auth/token/create/")
                .await?
                .is_empty()
        );
        let mut revoked = std::collections::HashSet::new();
        while let Ok(e) = events.try_recv() {
            if let crate::leases::LeaseEvent::Revoked { lease_id } = e {
                assert!(revoked.insert(lease_id.clone()), "{lease_id} revoked twice");
            }
        }
        assert_eq!(revoked.len(), n);
        for token in tokens {
            assert_revoked(&sr, token).await;
        }
        Ok(())
    }

    /// `token` is refused: it was revoked.
    async fn assert_revoked(sr: &crate::Strongroom, token: secrecy::SecretString) {
        let r = sr
            .client(token)
            .handle(crate::Request::new(
                Operation::Read,
                "auth/token/lookup-self",
            ))
            .await;
        assert_eq!(
            r.err().map(|e| e.code()),
            Some(crate::ErrorCode::PermissionDenied)
        );
    }

    /// A token's job ran while it had no children, then it created one before the batch was
    /// committed: the child is revoked with it, not left valid under a deleted parent.
    #[tokio::test]
    async fn a_child_created_while_its_parent_waits_in_a_batch_is_revoked_with_it() -> Result<()> {
        let sr = crate::Strongroom::open(crate::Config::dev()).await?;
        let root_token = sr
            .dev_root_token()
            .ok_or_else(|| Error::internal("no dev root token"))?;
        let root = sr.client(root_token);
        let created = root
            .write("auth/token/create", crate::data(json!({"ttl": "1h"})))
            .await?;
        let parent = created
            .auth
            .ok_or_else(|| Error::internal("no auth"))?
            .client_token;
        let leases = Arc::clone(&sr.inner.leases);
        let ids = leases.lease_ids_under("auth/token/create/").await?;
        let [id] = ids.as_slice() else {
            return Err(Error::internal(format!(
                "expected one token lease: {ids:?}"
            )));
        };
        let revoked = leases.revoke_one_for_batch(id, false).await?;
        assert!(
            matches!(&revoked, Some((_, Some(p))) if p.token.is_some()),
            "a childless token's deletion is batched"
        );

        // The parent is still valid until the batch commits: it makes a child.
        let child = sr
            .client(parent.clone())
            .write("auth/token/create", crate::data(json!({"ttl": "10m"})))
            .await?
            .auth
            .ok_or_else(|| Error::internal("no auth"))?
            .client_token;

        let mut batch = Batch::default();
        let mut first_err = None;
        batch.add(&leases, &mut first_err, Ok(Ok(revoked)));
        batch.finish(&leases, &mut first_err).await;
        assert!(first_err.is_none(), "{first_err:?}");

        for token in [parent, child] {
            assert_revoked(&sr, token).await;
        }
        Ok(())
    }
}
