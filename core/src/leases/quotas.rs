//! Lease-count quotas per mount and per role, kept as counters updated in the same
//! transaction as the leases they count.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::storage::{Backend, TxnOp};

use super::index::*;
use super::record::*;
use super::*;

/// A lease-count quota (`sys/quotas/lease-count/:name`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Quota {
    pub name: String,
    /// A mount path (`database/`) or a path below it; "" = every lease.
    pub path: String,
    /// Only leases issued for this role ("" = any).
    #[serde(default)]
    pub role: String,
    pub max_leases: u64,
}

impl Quota {
    pub(super) fn applies(&self, lease_path: &str, role: &str) -> bool {
        lease_path.starts_with(&self.path) && (self.role.is_empty() || self.role == role)
    }
}

pub(super) async fn read_count(
    storage: &dyn Backend,
    name: &str,
) -> Result<(Option<Vec<u8>>, u64)> {
    let raw = storage.get(&format!("{COUNT_PREFIX}{name}")).await?;
    let n = raw
        .as_deref()
        .and_then(|r| std::str::from_utf8(r).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((raw, n))
}

pub(super) fn quota_exceeded(q: &Quota) -> Error {
    Error::new(
        ErrorCode::QuotaExceeded,
        format!(
            "lease count quota exceeded: quota `{}` allows {} leases",
            q.name, q.max_leases
        ),
    )
}

impl Leases {
    /// The current count of a quota.
    pub(crate) async fn quota_count(&self, name: &str) -> Result<u64> {
        Ok(read_count(self.storage.as_ref(), name).await?.1)
    }

    /// Create or replace a quota; its counter starts at the number of existing leases it covers.
    pub(crate) async fn quota_put(&self, q: Quota) -> Result<()> {
        let mut n = 0u64;
        let mut ops = Vec::new();
        for id in self.lease_ids_under(&q.path).await? {
            let Some(mut rec) = self.lease_record(&id).await? else {
                continue;
            };
            // Count what the quota covers now; a changed quota may also stop covering a lease.
            let applies = !rec.is_auth() && q.applies(&rec.path, &rec.role);
            let counted = rec.quotas.contains(&q.name);
            if applies {
                n += 1;
            }
            if applies == counted {
                continue;
            }
            if applies {
                rec.quotas.push(q.name.clone());
            } else {
                rec.quotas.retain(|name| name != &q.name);
            }
            ops.push(TxnOp::Put {
                key: format!("{ID_PREFIX}{id}"),
                value: encode(&rec)?,
            });
        }
        ops.push(TxnOp::Put {
            key: format!("{QUOTA_PREFIX}{}", q.name),
            value: encode(&q)?,
        });
        ops.push(TxnOp::Put {
            key: format!("{COUNT_PREFIX}{}", q.name),
            value: n.to_string().into_bytes(),
        });
        self.storage.transaction(ops).await?;
        self.leases_mgr().clear()
    }

    /// Delete a quota (leases stop counting against it).
    pub(crate) async fn quota_delete(&self, name: &str) -> Result<()> {
        self.storage
            .transaction(vec![
                TxnOp::Delete {
                    key: format!("{QUOTA_PREFIX}{name}"),
                },
                TxnOp::Delete {
                    key: format!("{COUNT_PREFIX}{name}"),
                },
            ])
            .await?;
        self.leases_mgr().clear()
    }

    /// Delete a revoked lease: record, index entries, counters (one transaction).
    pub(super) async fn delete_lease(&self, rec: &LeaseRecord, due: Option<&str>) -> Result<()> {
        let storage = self.storage.as_ref();
        let ops = deletion_ops(rec, due);
        // Only quotas that still exist are counted down (a deleted quota's name may linger in
        // older records).
        let live = self.leases_mgr().quotas(storage).await?;
        let counted: Vec<&String> = rec
            .quotas
            .iter()
            .filter(|q| live.iter().any(|l| &&l.name == q))
            .collect();
        if counted.is_empty() {
            return storage.transaction(ops).await;
        }
        for _ in 0..16 {
            let mut all = ops.clone();
            for q in &counted {
                let (raw, n) = read_count(storage, q).await?;
                all.push(TxnOp::Check {
                    key: format!("{COUNT_PREFIX}{q}"),
                    expected: raw,
                });
                all.push(TxnOp::Put {
                    key: format!("{COUNT_PREFIX}{q}"),
                    value: n.saturating_sub(1).to_string().into_bytes(),
                });
            }
            // The record must still be there, or another process already counted it down.
            all.push(TxnOp::Check {
                key: format!("{ID_PREFIX}{}", rec.lease_id),
                expected: Some(encode(rec)?),
            });
            match storage.transaction(all).await {
                Ok(()) => return Ok(()),
                Err(e) if e.code() == ErrorCode::Conflict => {
                    self.host.sync_store().await?;
                    match self.lease_record(&rec.lease_id).await? {
                        None => return Ok(()),
                        Some(fresh) if fresh.expire_time != rec.expire_time => {
                            // Changed under us: count it down as it now stands.
                            return Box::pin(self.delete_lease(&fresh, due)).await;
                        }
                        Some(_) => continue,
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict("lease counter kept changing; try again"))
    }
}
