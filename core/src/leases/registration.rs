//! Registration: new secret leases stored with their index entries and quota counters in
//! one transaction, and the per-mount tallies behind the lease metrics.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, LeaseInfo, Request, Response};
use crate::storage::{Page, TxnOp};
use crate::token::TokenEntry;
use crate::util::ttl::{self, TtlLimits, TtlRequest};

use super::index::*;
use super::quotas::*;
use super::record::*;
use super::*;

/// The role a lease was issued for: what the engine put under `role` in its internal data.
pub(super) fn role_of(internal: &Data) -> String {
    internal
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A new secret lease, ready to be stored.
pub(crate) struct NewLease {
    pub path: String,
    pub client_token: String,
    pub info: LeaseInfo,
    pub limits: TtlLimits,
    /// Cap the expiry here (a batch token's leases die with it).
    pub cap: Option<i64>,
    /// Further operations (full storage keys) committed with the lease.
    pub extra_ops: Vec<TxnOp>,
}

impl Leases {
    /// The mount label of `path` (see [`crate::Strongroom::mount_label`]).
    pub(crate) fn mount_label(&self, path: &str) -> String {
        if let Some(m) = self
            .host
            .router()
            .ok()
            .and_then(|r| r.route(path).map(|(m, _)| m))
        {
            return m.entry.path.clone();
        }
        let segments = if path.starts_with("auth/") { 2 } else { 1 };
        let mut end = 0;
        for _ in 0..segments {
            match path.get(end..).and_then(|rest| rest.find('/')) {
                Some(i) => end += i + 1,
                None => return path.to_string(),
            }
        }
        path.get(..end).unwrap_or(path).to_string()
    }

    pub(super) fn tally_leases(&self, path: &str, created: u64, revoked: u64) {
        let mount = self.mount_label(path);
        if let Ok(mut t) = self.leases_mgr().tallies.lock() {
            let e = t.entry(mount).or_default();
            e.created = e.created.saturating_add(created);
            e.revoked = e.revoked.saturating_add(revoked);
        }
    }

    pub(super) fn tally_created(&self, stored: &[(String, u64, Vec<String>)]) {
        for (id, _, _) in stored {
            self.tally_leases(id, 1, 0);
        }
    }

    /// A lease was revoked: count it and tell subscribers.
    pub(super) fn lease_revoked(&self, lease_id: String) {
        self.tally_leases(&lease_id, 0, 1);
        self.leases_mgr().emit(LeaseEvent::Revoked { lease_id });
    }

    /// Lease figures for metrics (see [`crate::Strongroom::lease_stats`]).
    pub(crate) async fn lease_stats(&self) -> Result<LeaseStats> {
        let mgr = self.leases_mgr();
        let by_mount = mgr
            .tallies
            .lock()
            .or_else(crate::util::unpoison)?
            .iter()
            .map(|(mount, t)| MountLeaseStats {
                mount: mount.clone(),
                created: t.created,
                revoked: t.revoked,
            })
            .collect();
        let revocations_in_flight = mgr.in_flight.lock().or_else(crate::util::unpoison)?.len();
        // Keys only (a lease id starts with its request path): no record is read, so a
        // scrape stays cheap however many leases gave up.
        let mut irrevocable: BTreeMap<String, u64> = BTreeMap::new();
        let mut page = Page {
            after: None,
            limit: Some(1000),
        };
        loop {
            let batch = self.storage.scan(IRREVOCABLE_PREFIX, &page).await?;
            let done = batch.len() < 1000;
            for id in &batch {
                *irrevocable.entry(self.mount_label(id)).or_default() += 1;
            }
            page.after = batch.into_iter().last();
            if done {
                break;
            }
        }
        Ok(LeaseStats {
            by_mount,
            revocations_in_flight,
            irrevocable_by_mount: irrevocable.into_iter().collect(),
        })
    }

    /// The pipeline's lease step: record the lease an engine returned and fill in the
    /// response's lease fields. If the lease cannot be recorded, the secret is revoked at once
    /// so no credential outlives the failed call.
    pub(crate) async fn register_secret_lease(
        &self,
        req: &Request,
        caller: &TokenEntry,
        mount: &crate::router::Mounted,
        rel_path: &str,
        mut resp: Response,
    ) -> Result<Response> {
        let Some(info) = resp.lease.take() else {
            return Ok(resp);
        };
        let limits = TtlLimits {
            default_ttl: mount.ctx.default_lease_ttl,
            max_ttl: mount.entry.max_ttl(),
        };
        let (client_token, cap) = if caller.is_batch() {
            (
                caller.parent.clone().unwrap_or_default(),
                caller.expire_at_ns,
            )
        } else {
            (caller.salted_id.clone(), None)
        };
        let extra_ops = mount.ctx.storage.map_ops(info.on_commit.clone())?;
        let new = NewLease {
            path: req.path.clone(),
            client_token,
            info: info.clone(),
            limits,
            cap,
            extra_ops,
        };
        match self.store_leases(vec![new]).await {
            Ok(mut stored) => {
                let Some((id, ttl_secs, warnings)) = stored.pop() else {
                    return Err(Error::internal("lease not stored"));
                };
                resp.lease_id = id;
                resp.lease_duration = ttl_secs;
                resp.renewable = info.renewable;
                resp.warnings.extend(warnings);
                Ok(resp)
            }
            Err(e) => {
                // Never an orphan: undo what the engine created.
                let now = self.clock.now();
                let leased = crate::secrets::LeasedSecret {
                    lease_id: "",
                    path: rel_path,
                    internal: &info.internal,
                    issue_time: now.into(),
                    expire_time: now.into(),
                };
                if let Err(undo) = mount.engine.revoke(&mount.ctx, &leased).await {
                    tracing::error!(
                        path = %req.path,
                        error = %undo.message(),
                        "could not revoke a secret whose lease failed to register"
                    );
                }
                Err(e)
            }
        }
    }

    /// Store new secret leases in one transaction (counters included). Returns, per lease,
    /// its id, TTL in seconds and warnings.
    pub(crate) async fn store_leases(
        &self,
        leases: Vec<NewLease>,
    ) -> Result<Vec<(String, u64, Vec<String>)>> {
        let storage = self.storage.as_ref();
        let now = self.clock.now();
        let quotas = self.leases_mgr().quotas(storage).await?;
        let mut ops = Vec::with_capacity(leases.len() * 3 + 4);
        let mut out = Vec::with_capacity(leases.len());
        let mut increments: BTreeMap<String, u64> = BTreeMap::new();
        for l in leases {
            let (ttl, warnings) = ttl::calculate(
                l.limits,
                TtlRequest {
                    backend_ttl: l.info.ttl,
                    backend_max: l.info.max_ttl,
                    ..TtlRequest::default()
                },
                now,
                now,
            )?;
            let mut expire = nanos(now).saturating_add(dur_nanos(ttl));
            if let Some(cap) = l.cap {
                expire = expire.min(cap);
            }
            let lease_id = format!("{}/{}", l.path.trim_end_matches('/'), lease_suffix());
            let role = role_of(&l.info.internal);
            let counted: Vec<String> = quotas
                .iter()
                .filter(|q| q.applies(&l.path, &role))
                .map(|q| q.name.clone())
                .collect();
            for q in &counted {
                *increments.entry(q.clone()).or_default() += 1;
            }
            let rec = LeaseRecord {
                lease_id: lease_id.clone(),
                path: l.path,
                kind: "secret".into(),
                client_token: l.client_token,
                token: String::new(),
                internal_data: l.info.internal,
                issue_time: nanos(now),
                expire_time: expire,
                last_renewal_time: None,
                renewable: l.info.renewable,
                role,
                quotas: counted,
                attempts: 0,
                last_error: String::new(),
                revoke_err: String::new(),
                version: 1,
            };
            // No existence check: 24 random base62 characters (143 bits) do not collide, and
            // a check would cost a read per lease.
            ops.push(TxnOp::Put {
                key: format!("{ID_PREFIX}{lease_id}"),
                value: encode(&rec)?,
            });
            ops.push(TxnOp::Put {
                key: due_key(bucket_of(expire), &lease_id),
                value: Vec::new(),
            });
            if !rec.client_token.is_empty() {
                ops.push(TxnOp::Put {
                    key: format!("{TOKEN_PREFIX}{}/{lease_id}", rec.client_token),
                    value: Vec::new(),
                });
            }
            ops.extend(l.extra_ops);
            let secs = u64::try_from((expire - nanos(now)).max(0) / 1_000_000_000).unwrap_or(0);
            out.push((lease_id, secs, warnings));
        }
        if increments.is_empty() {
            storage.transaction(ops).await?;
            self.tally_created(&out);
            return Ok(out);
        }
        // Quota counters: compare-and-set, retried when another writer got there first.
        for _ in 0..16 {
            let mut all = ops.clone();
            for (name, add) in &increments {
                let (raw, n) = read_count(storage, name).await?;
                if let Some(q) = quotas.iter().find(|q| &q.name == name) {
                    if n.saturating_add(*add) > q.max_leases {
                        return Err(quota_exceeded(q));
                    }
                }
                all.push(TxnOp::Check {
                    key: format!("{COUNT_PREFIX}{name}"),
                    expected: raw,
                });
                all.push(TxnOp::Put {
                    key: format!("{COUNT_PREFIX}{name}"),
                    value: (n + add).to_string().into_bytes(),
                });
            }
            match storage.transaction(all).await {
                Ok(()) => {
                    self.tally_created(&out);
                    return Ok(out);
                }
                Err(e) if e.code() == ErrorCode::Conflict => {
                    // Our counter read may be stale (another process): re-read from storage.
                    self.host.sync_store().await?;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            "too many concurrent lease registrations; try again",
        ))
    }
}
