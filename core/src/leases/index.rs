//! The indexes beside the records: the time-bucketed due index
//! (`sys/expire/due/<unix second>/<lease id>`), the per-token index and the irrevocable list.

use crate::error::Result;
use crate::request::Data;
use crate::storage::{Backend, Page, TxnOp};
use crate::token::TokenEntry;

use super::record::*;
use super::*;

/// The bucket (unix second, rounded up so nothing is pulled early) of a time.
pub(super) fn bucket_of(t_nanos: i64) -> i64 {
    let s = t_nanos.div_euclid(1_000_000_000);
    if t_nanos.rem_euclid(1_000_000_000) == 0 {
        s.max(0)
    } else {
        (s + 1).max(0)
    }
}

pub(super) fn due_key(bucket: i64, lease_id: &str) -> String {
    format!("{DUE_PREFIX}{bucket:012}/{lease_id}")
}

/// The transaction operations that make a new service token a lease (so it is revoked when it
/// expires). Tokens without an expiry (root, periodic without TTL) and batch tokens get none.
pub(crate) fn token_lease_ops(entry: &TokenEntry) -> Result<Vec<TxnOp>> {
    let Some(expire) = entry.expire_at_ns else {
        return Ok(Vec::new());
    };
    if entry.is_batch() {
        return Ok(Vec::new());
    }
    let lease_id = format!("{}/{}", entry.path.trim_end_matches('/'), entry.salted_id);
    let rec = LeaseRecord {
        lease_id: lease_id.clone(),
        path: entry.path.clone(),
        kind: "auth".into(),
        client_token: String::new(),
        token: entry.salted_id.clone(),
        internal_data: Data::new(),
        issue_time: entry.creation_time.saturating_mul(1_000_000_000),
        expire_time: expire,
        last_renewal_time: None,
        renewable: entry.renewable,
        role: entry.role.clone(),
        quotas: Vec::new(),
        attempts: 0,
        last_error: String::new(),
        revoke_err: String::new(),
        version: 1,
    };
    Ok(vec![
        TxnOp::Put {
            key: format!("{ID_PREFIX}{lease_id}"),
            value: encode(&rec)?,
        },
        TxnOp::Put {
            key: due_key(bucket_of(expire), &lease_id),
            value: Vec::new(),
        },
    ])
}

/// The operations, added to a token's deletion, that queue its leases for revocation now (and
/// drop its own lease record). `storage` is read for the token's lease index.
pub(crate) async fn token_revocation_ops(
    storage: &dyn Backend,
    entry: &TokenEntry,
) -> Result<Vec<TxnOp>> {
    let mut ops = Vec::new();
    if entry.expire_at_ns.is_some() && !entry.is_batch() {
        ops.push(TxnOp::Delete {
            key: format!(
                "{ID_PREFIX}{}/{}",
                entry.path.trim_end_matches('/'),
                entry.salted_id
            ),
        });
    }
    let prefix = format!("{TOKEN_PREFIX}{}/", entry.salted_id);
    let mut page = Page {
        after: None,
        limit: Some(1000),
    };
    loop {
        let batch = storage.scan(&prefix, &page).await?;
        let done = batch.len() < 1000;
        page.after = batch.last().cloned();
        for lease_id in batch {
            // Bucket 0: due at once; the runner sees the token is gone and revokes.
            ops.push(TxnOp::Put {
                key: due_key(0, &lease_id),
                value: Vec::new(),
            });
            ops.push(TxnOp::Delete {
                key: format!("{prefix}{lease_id}"),
            });
        }
        if done {
            return Ok(ops);
        }
    }
}

/// The deletions that remove a revoked lease (record and index entries; counters aside).
pub(super) fn deletion_ops(rec: &LeaseRecord, due: Option<&str>) -> Vec<TxnOp> {
    let mut ops = vec![
        TxnOp::Delete {
            key: format!("{ID_PREFIX}{}", rec.lease_id),
        },
        TxnOp::Delete {
            key: due_key(bucket_of(rec.expire_time), &rec.lease_id),
        },
        TxnOp::Delete {
            key: due_key(0, &rec.lease_id),
        },
    ];
    if let Some(d) = due {
        ops.push(TxnOp::Delete { key: d.to_string() });
    }
    if !rec.client_token.is_empty() {
        ops.push(TxnOp::Delete {
            key: format!("{TOKEN_PREFIX}{}/{}", rec.client_token, rec.lease_id),
        });
    }
    if rec.irrevocable() {
        ops.push(TxnOp::Delete {
            key: format!("{IRREVOCABLE_PREFIX}{}", rec.lease_id),
        });
    }
    ops
}

impl Leases {
    /// Every lease id under `prefix` (a path prefix such as `database/creds/`), in order.
    pub(crate) async fn lease_ids_under(&self, prefix: &str) -> Result<Vec<String>> {
        let full = format!("{ID_PREFIX}{prefix}");
        let mut out = Vec::new();
        let mut page = Page {
            after: None,
            limit: Some(1000),
        };
        loop {
            let batch = self.storage.scan(&full, &page).await?;
            let done = batch.len() < 1000;
            page.after = batch.last().cloned();
            out.extend(batch.into_iter().map(|k| format!("{prefix}{k}")));
            if done {
                return Ok(out);
            }
        }
    }

    /// Irrevocable leases, for `sys/leases?type=irrevocable`.
    pub(crate) async fn irrevocable_leases(
        &self,
        limit: Option<usize>,
    ) -> Result<Vec<LeaseRecord>> {
        let mut out = Vec::new();
        let mut page = Page {
            after: None,
            limit: Some(1000),
        };
        loop {
            let batch = self.storage.scan(IRREVOCABLE_PREFIX, &page).await?;
            let done = batch.len() < 1000;
            page.after = batch.last().cloned();
            for id in batch {
                if let Some(r) = self.lease_record(&id).await? {
                    out.push(r);
                    if limit.is_some_and(|l| out.len() >= l) {
                        return Ok(out);
                    }
                }
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// Leases that are not irrevocable, cleaned of entries left by a crash: index entries whose
    /// record is gone and token-index entries of revoked leases. Returns what it removed.
    pub(crate) async fn lease_tidy(&self) -> Result<usize> {
        let storage = self.storage.as_ref();
        let mut removed = 0;
        let mut page = Page {
            after: None,
            limit: Some(1000),
        };
        loop {
            let batch = storage.scan(TOKEN_PREFIX, &page).await?;
            let done = batch.len() < 1000;
            page.after = batch.last().cloned();
            for rel in batch {
                let Some((_, lease_id)) = rel.split_once('/') else {
                    continue;
                };
                if self.lease_record(lease_id).await?.is_none() {
                    storage.delete(&format!("{TOKEN_PREFIX}{rel}")).await?;
                    removed += 1;
                }
            }
            if done {
                break;
            }
        }
        Ok(removed)
    }
}
