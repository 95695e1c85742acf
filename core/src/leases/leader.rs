//! The leader lock: one expiry runner among all processes sharing a store (a lock row with
//! a heartbeat, or PostgreSQL's session advisory lock).

use serde_json::{Value, json};

use crate::error::{ErrorCode, Result};
use crate::storage::TxnOp;

use super::*;

/// The expiry runner's leader lock.
pub(super) const LEADER_KEY: &str = "core/leader/expiry";

impl Leases {
    /// Take or keep the expiry runner's leader lock. The in-memory store has one process.
    /// Taking it makes this process the active node ([`crate::ha`]).
    pub(crate) async fn hold_leadership(&self) -> Result<bool> {
        let held = match self.check_leader_lock().await {
            Ok(held) => held,
            Err(e) => {
                // Unknown is not held: another process may take it meanwhile.
                self.leadership.lost();
                return Err(e);
            }
        };
        self.leadership
            .observe(
                held,
                self.storage.as_ref(),
                &self.leases_mgr().holder,
                self.ha.as_ref(),
                self.clock.now(),
            )
            .await?;
        Ok(held)
    }

    /// Ask the store whether this process holds (or can take) the leader lock.
    pub(super) async fn check_leader_lock(&self) -> Result<bool> {
        let storage = self.storage.as_ref();
        if storage.kind() == "inmem" {
            return Ok(true);
        }
        // PostgreSQL: a session advisory lock, released by the server when we die.
        if let Some(held) = storage.hold_lock("expiry").await? {
            return Ok(held);
        }
        let mgr = self.leases_mgr();
        let now_ms = nanos(self.clock.now()) / 1_000_000;
        let current = storage.get(LEADER_KEY).await?;
        let (holder, until) = match current.as_deref().map(serde_json::from_slice::<Value>) {
            Some(Ok(v)) => (
                v.get("holder")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                v.get("until_ms").and_then(Value::as_i64).unwrap_or(0),
            ),
            _ => (String::new(), 0),
        };
        if holder != mgr.holder && until > now_ms {
            return Ok(false);
        }
        let ttl_ms = i64::try_from(mgr.config.leader_ttl.as_millis()).unwrap_or(i64::MAX);
        let mine =
            encode(&json!({"holder": mgr.holder, "until_ms": now_ms.saturating_add(ttl_ms)}))?;
        match storage
            .transaction(vec![
                TxnOp::Check {
                    key: LEADER_KEY.into(),
                    expected: current,
                },
                TxnOp::Put {
                    key: LEADER_KEY.into(),
                    value: mine,
                },
            ])
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.code() == ErrorCode::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Give up the leader lock (on seal and when the engine is dropped cleanly), so another
    /// process need not wait for it to lapse.
    pub(crate) async fn release_leadership(&self) -> Result<()> {
        self.leadership.lost();
        let storage = self.storage.as_ref();
        if storage.kind() == "inmem" || self.host.is_sealed() {
            return Ok(());
        }
        if self.ha.is_some() {
            // Leaving: out of `sys/ha-status` at once, not after the record expires.
            let holder = &self.leases_mgr().holder;
            if let Err(e) = self.leadership.leave(storage, holder).await {
                tracing::warn!(error = %e.message(), "could not remove this node's standby record");
            }
        }
        storage.release_lock("expiry").await?;
        let Some(current) = storage.get(LEADER_KEY).await? else {
            return Ok(());
        };
        let ours = serde_json::from_slice::<Value>(&current)
            .ok()
            .and_then(|v| v.get("holder").and_then(Value::as_str).map(str::to_string))
            .is_some_and(|h| h == self.leases_mgr().holder);
        if !ours {
            return Ok(());
        }
        let _ = storage
            .transaction(vec![
                TxnOp::Check {
                    key: LEADER_KEY.into(),
                    expected: Some(current),
                },
                TxnOp::Delete {
                    key: LEADER_KEY.into(),
                },
            ])
            .await;
        Ok(())
    }
}
