//! The lease record (`sys/expire/id/<lease id>`, the truth about a lease), its lookup and renewal.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, ErrorCode, Result};
use crate::request::{Data, Response};
use crate::storage::TxnOp;
use crate::util::ttl::{self, TtlLimits, TtlRequest};

use super::index::*;
use super::*;

/// One stored lease.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    pub lease_id: String,
    /// The request path that created it (`database/creds/ro`, `auth/token/create`).
    pub path: String,
    /// `secret` or `auth`.
    pub kind: String,
    /// Salted id of the token that created a secret lease ("" when none is tracked).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_token: String,
    /// For an auth lease, the salted id of the token it is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Engine-private data for revocation.
    #[serde(default, skip_serializing_if = "Data::is_empty")]
    pub internal_data: Data,
    /// Unix nanoseconds.
    pub issue_time: i64,
    pub expire_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewal_time: Option<i64>,
    #[serde(default)]
    pub renewable: bool,
    /// The role it was issued for (per-role quotas).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// Quotas this lease counts against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    /// Set when the lease became irrevocable (OpenBao's `revokeErr`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revoke_err: String,
    #[serde(default)]
    pub version: u32,
}

pub(super) fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl std::fmt::Debug for LeaseRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseRecord")
            .field("lease_id", &self.lease_id)
            .field("expire_time", &self.expire_time)
            .finish_non_exhaustive()
    }
}

impl LeaseRecord {
    /// The lease as its engine sees it, `rel` being its path inside the mount.
    pub(super) fn leased<'a>(&'a self, rel: &'a str) -> crate::secrets::LeasedSecret<'a> {
        crate::secrets::LeasedSecret {
            lease_id: &self.lease_id,
            path: rel,
            internal: &self.internal_data,
            issue_time: from_nanos(self.issue_time).into(),
            expire_time: from_nanos(self.expire_time).into(),
        }
    }

    pub(super) fn is_auth(&self) -> bool {
        self.kind == "auth"
    }
    pub(super) fn irrevocable(&self) -> bool {
        !self.revoke_err.is_empty()
    }
}

pub(crate) fn decode_record(raw: &[u8]) -> Result<LeaseRecord> {
    crate::util::json::decode(raw, || Error::storage("corrupt lease record"))
}

/// 24 base62 characters, as OpenBao's lease id suffix.
pub(crate) fn lease_suffix() -> String {
    crate::token::base62(24)
}

impl Leases {
    pub(crate) async fn lease_record(&self, lease_id: &str) -> Result<Option<LeaseRecord>> {
        if lease_id.is_empty() || lease_id.ends_with('/') {
            return Ok(None);
        }
        match self.storage.get(&format!("{ID_PREFIX}{lease_id}")).await {
            Ok(Some(raw)) => decode_record(&raw).map(Some),
            Ok(None) => Ok(None),
            // A lease id that is not a valid storage key is simply not a lease.
            Err(e) if e.code() == ErrorCode::InvalidInput => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The current expiry of a lease: an auth lease follows its token (renewals of the token
    /// happen in the token store).
    pub(super) async fn effective_expiry(&self, rec: &LeaseRecord) -> Result<Option<i64>> {
        if rec.is_auth() {
            let t = self.host.token(&rec.token).await?;
            return Ok(t.and_then(|t| t.expire_at_ns));
        }
        Ok(Some(rec.expire_time))
    }

    /// `sys/leases/lookup`.
    pub(crate) async fn lease_lookup(&self, lease_id: &str) -> Result<Data> {
        let rec = self
            .lease_record(lease_id)
            .await?
            .ok_or_else(|| Error::invalid_input("invalid lease"))?;
        let now = nanos(self.clock.now());
        let expire = self.effective_expiry(&rec).await?;
        // Rounded to the nearest second, as OpenBao does.
        // Saturating: an expiry saturated at i64::MAX (Go's longest TTL) must not overflow here.
        let ttl = expire.map_or(0, |e| {
            e.saturating_sub(now).max(0).saturating_add(500_000_000) / 1_000_000_000
        });
        let mut d = crate::data(json!({
            "id": rec.lease_id,
            "issue_time": crate::clock::rfc3339(from_nanos(rec.issue_time)),
            "expire_time": expire.map(|e| crate::clock::rfc3339(from_nanos(e))),
            "last_renewal": rec.last_renewal_time.map(|t| crate::clock::rfc3339(from_nanos(t))),
            "ttl": ttl,
            "renewable": rec.renewable && !rec.irrevocable(),
            "path": rec.path,
        }));
        if rec.irrevocable() {
            d.insert("revoke_error".into(), Value::String(rec.revoke_err.clone()));
        }
        Ok(d)
    }

    /// `sys/leases/renew`: ask the engine, then apply OpenBao's TTL rules with the max counted
    /// from the original issue time.
    pub(crate) async fn lease_renew(
        &self,
        lease_id: &str,
        increment: Duration,
    ) -> Result<Response> {
        let Some(mut rec) = self.lease_record(lease_id).await? else {
            return Err(Error::invalid_input("lease not found"));
        };
        if rec.is_auth() {
            return Err(Error::invalid_input(
                "tokens cannot be renewed through this endpoint",
            ));
        }
        let now = self.clock.now();
        if rec.irrevocable() {
            return Err(Error::invalid_input(
                "lease is expired and has failed previous revocation attempts",
            ));
        }
        if rec.expire_time <= nanos(now) {
            return Err(Error::invalid_input("lease expired"));
        }
        if !rec.renewable {
            return Err(Error::invalid_input("lease is not renewable"));
        }
        let router = self.host.router()?;
        let (mount, rel) = router
            .route(&rec.path)
            .ok_or_else(|| Error::invalid_input("lease not found"))?;
        let leased = rec.leased(rel);
        let bounds = mount.engine.renew(&mount.ctx, &leased, increment).await?;
        let limits = TtlLimits {
            default_ttl: mount.ctx.default_lease_ttl,
            max_ttl: mount.entry.max_ttl(),
        };
        let (ttl, warnings) = ttl::calculate(
            limits,
            TtlRequest {
                increment,
                backend_ttl: bounds.ttl,
                backend_max: bounds.max_ttl,
                ..TtlRequest::default()
            },
            from_nanos(rec.issue_time),
            now,
        )?;
        let old_bucket = bucket_of(rec.expire_time);
        rec.expire_time = nanos(now).saturating_add(dur_nanos(ttl));
        rec.last_renewal_time = Some(nanos(now));
        if !bounds.internal.is_empty() {
            rec.internal_data = bounds.internal;
        }
        let mut ops = vec![TxnOp::Put {
            key: format!("{ID_PREFIX}{}", rec.lease_id),
            value: encode(&rec)?,
        }];
        let new_bucket = bucket_of(rec.expire_time);
        if new_bucket != old_bucket {
            ops.push(TxnOp::Delete {
                key: due_key(old_bucket, &rec.lease_id),
            });
            ops.push(TxnOp::Put {
                key: due_key(new_bucket, &rec.lease_id),
                value: Vec::new(),
            });
        }
        self.storage.transaction(ops).await?;
        self.leases_mgr().emit(LeaseEvent::Renewed {
            lease_id: rec.lease_id.clone(),
            ttl,
        });
        Ok(Response {
            lease_id: rec.lease_id,
            renewable: true,
            lease_duration: ttl.as_secs(),
            warnings,
            ..Response::default()
        })
    }
}
