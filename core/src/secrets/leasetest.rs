//! `test-leases`: a small secrets engine that issues leased secrets, for testing and
//! benchmarking the lease manager itself. Built only for this crate's tests and with the
//! `bench-internals` feature; never in a release build.
//!
//! It keeps real state in its own storage so tests can see what revocation did:
//!
//! * `write issue/<name> {ttl, max_ttl, renewable, role, fail, noop}`: issues secret `<name>`
//!   (stored under `live/<name>`) with a lease. `fail: "retry"` makes every revocation of it
//!   fail with a retryable error, `fail: "fatal"` with an unrecoverable one; `noop: true` makes
//!   revocation do nothing at all (benchmarks); `delay_ms` makes each revocation take that long.
//! * revocation deletes `live/<name>` and records `revoked/<name>`; a second revocation of the
//!   same secret is counted under `duplicates/<name>` (idempotent in effect, but visible).
//! * `write config {fail_all}` makes every revocation fail (an outage) until cleared.
//! * `list live/`, `list revoked/`, `list duplicates/`, `read config`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Engine, EngineContext, LeasedSecret};
use crate::error::{Error, Result};
use crate::request::{LeaseInfo, Operation, Request, Response};
use crate::storage::{Backend, Page, TxnOp};
use crate::util::params;

pub(crate) struct LeaseTest;

fn name_of(lease: &LeasedSecret<'_>) -> String {
    lease
        .internal
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[async_trait]
impl Engine for LeaseTest {
    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        let s = &ctx.storage;
        match (req.operation, req.path.as_str()) {
            (Operation::Create | Operation::Update, p) if p.starts_with("issue/") => {
                let name = p.trim_start_matches("issue/");
                if name.is_empty() || name.contains('/') {
                    return Err(Error::invalid_input("a secret name is required"));
                }
                let ttl = params::duration(&req.data, "ttl")?.unwrap_or_default();
                let max_ttl = params::duration(&req.data, "max_ttl")?.unwrap_or_default();
                let renewable = params::bool(&req.data, "renewable")?.unwrap_or(true);
                let role = params::string(&req.data, "role")?.unwrap_or_default();
                let fail = params::string(&req.data, "fail")?.unwrap_or_default();
                let noop = params::bool(&req.data, "noop")?.unwrap_or(false);
                let delay_ms = params::int(&req.data, "delay_ms")?.unwrap_or(0);
                if !noop {
                    s.put(&format!("live/{name}"), b"1").await?;
                }
                let mut internal = crate::data(json!({
                    "name": name, "fail": fail, "noop": noop,
                    "ttl": ttl.as_secs(), "max_ttl": max_ttl.as_secs(), "delay_ms": delay_ms,
                }));
                if !role.is_empty() {
                    internal.insert("role".into(), Value::String(role));
                }
                Ok(Some(Response {
                    data: Some(crate::data(json!({ "name": name }))),
                    lease: Some(LeaseInfo {
                        ttl,
                        max_ttl,
                        renewable,
                        internal,
                        ..LeaseInfo::default()
                    }),
                    ..Response::default()
                }))
            }
            (Operation::Create | Operation::Update, "config") => {
                let fail_all = params::bool(&req.data, "fail_all")?.unwrap_or(false);
                if fail_all {
                    s.put("config/fail_all", b"1").await?;
                } else {
                    s.delete("config/fail_all").await?;
                }
                Ok(None)
            }
            (Operation::List, p) => {
                let keys = s.list(p, &Page::all()).await?;
                if keys.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Response::with_data(crate::data(
                    json!({ "keys": keys }),
                ))))
            }
            _ => Err(Error::unsupported_operation()),
        }
    }

    async fn revoke(&self, ctx: &EngineContext, lease: &LeasedSecret<'_>) -> Result<()> {
        if lease.internal.get("noop").and_then(Value::as_bool) == Some(true) {
            return Ok(());
        }
        match lease.internal.get("fail").and_then(Value::as_str) {
            Some("retry") => return Err(Error::unavailable("test backend: connection refused")),
            Some("fatal") => return Err(Error::invalid_input("test backend: role does not exist")),
            _ => {}
        }
        if let Some(ms) = lease.internal.get("delay_ms").and_then(Value::as_u64) {
            if ms > 0 {
                // A slow backend (a remote database): revocation takes a while.
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        let s = &ctx.storage;
        if s.get("config/fail_all").await?.is_some() {
            return Err(Error::unavailable("test backend: outage"));
        }
        let name = name_of(lease);
        if s.get(&format!("revoked/{name}")).await?.is_some() {
            let key = format!("duplicates/{name}");
            let n: u64 = s
                .get(&key)
                .await?
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            s.put(&key, (n + 1).to_string().as_bytes()).await?;
            return Ok(());
        }
        s.transaction(vec![
            TxnOp::Delete {
                key: format!("live/{name}"),
            },
            TxnOp::Put {
                key: format!("revoked/{name}"),
                value: b"1".to_vec(),
            },
        ])
        .await
    }

    async fn renew(
        &self,
        _ctx: &EngineContext,
        lease: &LeasedSecret<'_>,
        _increment: Duration,
    ) -> Result<LeaseInfo> {
        let secs = |k: &str| {
            Duration::from_secs(lease.internal.get(k).and_then(Value::as_u64).unwrap_or(0))
        };
        Ok(LeaseInfo {
            ttl: secs("ttl"),
            max_ttl: secs("max_ttl"),
            renewable: true,
            internal: crate::Data::new(),
            ..LeaseInfo::default()
        })
    }
}
