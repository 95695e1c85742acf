//! The typed API's remembered fast-path decisions: a handle (`Transit`, `Kv`) keeps the
//! [`FastGate`] of each `(operation, section, key)` it was asked about, so a repeated call with
//! the same token on the same path skips the token lookup (the salted-id HMAC), the routing and
//! the ACL walk while nothing the decision rests on has changed: no token, policy, identity or
//! mount change ([`crate::Strongroom::gate_epoch`]), the token and the ACL not expired. A
//! revoked token changes the epoch, so the next call decides again and is refused.

use std::fmt;
use std::sync::Mutex;

use secrecy::ExposeSecret;

use super::Client;
use crate::error::Result;
use crate::pipeline::FastGate;
use crate::request::Operation;

/// How many decisions one handle remembers.
const GATE_CACHE: usize = 16;

struct Cached {
    op: Operation,
    section: &'static str,
    key: String,
    gate: FastGate,
}

/// The decisions one handle has made (shared by its clones).
#[derive(Default)]
pub(crate) struct Gates(Mutex<Vec<Cached>>);

impl fmt::Debug for Gates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gates").finish_non_exhaustive()
    }
}

impl Gates {
    /// The fast-path decision for `op` on `{mount}/{section}/{key}` with `client`'s token,
    /// remembered or made now. `Ok(None)`: the call must take the full pipeline (audit
    /// devices, a limited-use token, a policy that inspects parameters, ...); an error is the
    /// pipeline's refusal (sealed, permission denied).
    pub(crate) async fn decide(
        &self,
        client: &Client,
        mount: &str,
        op: Operation,
        section: &'static str,
        key: &str,
    ) -> Result<Option<FastGate>> {
        let sr = &client.sr;
        let Some(epoch) = sr.fast_gate_epoch().await? else {
            return Ok(None);
        };
        if let Some(g) = self.cached(op, section, key)? {
            if sr.fast_gate_holds(&g, epoch)? {
                return Ok(Some(g));
            }
        }
        // Boxed: deciding (token lookup, ACL build) makes a large future that a repeated call
        // never runs; inlined, every call would carry it, and the bindings move it.
        let path = format!("{mount}/{section}/{key}");
        let decided =
            Box::pin(sr.fast_gate(epoch, client.token.expose_secret(), op, &path)).await?;
        let Some(g) = decided else {
            return Ok(None);
        };
        self.remember(op, section, key, g.clone())?;
        Ok(Some(g))
    }

    fn cached(&self, op: Operation, section: &str, key: &str) -> Result<Option<FastGate>> {
        let gates = self.0.lock().or_else(crate::util::unpoison)?;
        Ok(gates
            .iter()
            .find(|g| g.op == op && g.section == section && g.key == key)
            .map(|g| g.gate.clone()))
    }

    fn remember(
        &self,
        op: Operation,
        section: &'static str,
        key: &str,
        gate: FastGate,
    ) -> Result<()> {
        let mut gates = self.0.lock().or_else(crate::util::unpoison)?;
        gates.retain(|g| !(g.op == op && g.section == section && g.key == key));
        if gates.len() >= GATE_CACHE {
            gates.remove(0);
        }
        gates.push(Cached {
            op,
            section,
            key: key.to_string(),
            gate,
        });
        Ok(())
    }

    /// The mounts of the remembered decisions (tests: a decision must not keep one alive).
    #[cfg(test)]
    pub(crate) fn mounts(&self) -> Vec<std::sync::Weak<crate::router::Mounted>> {
        self.0
            .lock()
            .map(|g| g.iter().map(|c| c.gate.mount.clone()).collect())
            .unwrap_or_default()
    }
}
