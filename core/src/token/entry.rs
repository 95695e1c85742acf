//! The stored token entry and its lookup JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::clock::rfc3339;

/// A token as stored under `sys/token/id/<salted id>`. It never holds the token id itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub(crate) struct TokenEntry {
    /// The salted id (the storage key), kept for tree walks.
    pub salted_id: String,
    /// "" for batch tokens.
    pub accessor: String,
    /// Salted id of the parent; `None` for orphans.
    #[serde(default)]
    pub parent: Option<String>,
    pub policies: Vec<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    /// Uses left; 0 = unlimited; -1 = the last use is in progress.
    #[serde(default)]
    pub num_uses: i64,
    /// Unix seconds.
    pub creation_time: i64,
    /// RFC 3339 with nanoseconds.
    pub issue_time: String,
    /// The TTL given at creation or last renewal, seconds (0 = never expires).
    pub ttl: u64,
    pub creation_ttl: u64,
    /// Unix nanoseconds; `None` = never expires.
    #[serde(default)]
    pub expire_at_ns: Option<i64>,
    #[serde(default)]
    pub explicit_max_ttl: u64,
    #[serde(default)]
    pub period: u64,
    pub renewable: bool,
    pub path: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub entity_id: String,
    /// `service` or `batch`.
    pub token_type: String,
    /// Unix seconds of the last renewal.
    #[serde(default)]
    pub last_renewal_time: Option<i64>,
    /// CIDRs the token may be used from.
    #[serde(default)]
    pub bound_cidrs: Vec<String>,
    /// In memory only, for a non-orphan batch token: when its parent expires, as resolved
    /// when the token was looked up (the batch token dies with its parent, as in OpenBao).
    #[serde(skip)]
    pub parent_expire_at_ns: Option<i64>,
}

impl TokenEntry {
    pub(crate) fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    pub(crate) fn is_batch(&self) -> bool {
        self.token_type == "batch"
    }

    pub(crate) fn expire_time(&self) -> Option<OffsetDateTime> {
        self.expire_at_ns
            .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).ok())
    }

    /// Whether the token can no longer be used at `now`: its own expiry, or, for a non-orphan
    /// batch token, its parent's.
    pub(crate) fn expired(&self, now: OffsetDateTime) -> bool {
        let parent = self
            .parent_expire_at_ns
            .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).ok());
        self.expire_time().is_some_and(|t| t <= now) || parent.is_some_and(|t| t <= now)
    }

    pub(crate) fn issued(&self) -> OffsetDateTime {
        crate::clock::parse_rfc3339(&self.issue_time).unwrap_or_else(|| {
            OffsetDateTime::from_unix_timestamp(self.creation_time)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        })
    }

    /// Seconds left (0 for tokens that never expire).
    pub(crate) fn ttl_left(&self, now: OffsetDateTime) -> u64 {
        match self.expire_time() {
            None => 0,
            Some(t) => u64::try_from((t - now).whole_seconds()).unwrap_or(0),
        }
    }

    /// The `auth/token/lookup*` JSON (OpenBao's field names; `id` is supplied by the caller,
    /// "" for lookup-accessor).
    pub(crate) fn lookup_json(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> serde_json::Map<String, Value> {
        let mut d = json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "expire_time": self.expire_time().map(rfc3339),
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": id,
            "issue_time": self.issue_time,
            "meta": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "num_uses": self.num_uses,
            "orphan": self.parent.is_none(),
            "path": self.path,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": self.ttl_left(now),
            "type": self.token_type,
        });
        if let Some(m) = d.as_object_mut() {
            if !self.role.is_empty() {
                m.insert("role".into(), json!(self.role));
            }
            if self.period > 0 {
                m.insert("period".into(), json!(self.period));
            }
            if !self.bound_cidrs.is_empty() {
                m.insert("bound_cidrs".into(), json!(self.bound_cidrs));
            }
            if let Some(t) = self.last_renewal_time {
                m.insert("last_renewal_time".into(), json!(t));
                if let Ok(tt) = OffsetDateTime::from_unix_timestamp(t) {
                    m.insert("last_renewal".into(), json!(rfc3339(tt)));
                }
            }
        }
        match d {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }
}

/// `display_name` as OpenBao builds it: `token` by default, else `token-<name>` with
/// `[^a-zA-Z0-9-]` replaced by `-` and one trailing `-` trimmed.
pub(crate) fn display_name(user: Option<&str>) -> String {
    match user.map(str::trim).filter(|s| !s.is_empty()) {
        None => "token".to_string(),
        Some(name) => {
            let cleaned: String = format!("token-{name}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            cleaned
                .strip_suffix('-')
                .map(str::to_string)
                .unwrap_or(cleaned)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_follow_openbao() {
        assert_eq!(display_name(None), "token");
        assert_eq!(display_name(Some("My App!")), "token-My-App");
        assert_eq!(display_name(Some("ci")), "token-ci");
        assert_eq!(display_name(Some("a b--")), "token-a-b-");
    }
}
