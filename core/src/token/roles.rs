//! Token roles (`auth/token/roles/:name`).

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::request::Data;
use crate::storage::{Backend, Page};
use crate::util::params;

const ROLES_PREFIX: &str = "sys/token/roles/";

/// A stored token role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Role {
    pub name: String,
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub allowed_policies_glob: Vec<String>,
    pub disallowed_policies_glob: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    pub token_period: u64,
    pub token_explicit_max_ttl: u64,
    pub token_type: String,
    pub token_no_default_policy: bool,
    pub token_num_uses: i64,
    pub token_bound_cidrs: Vec<String>,
}

pub(crate) use crate::util::params::string_list;
pub(crate) use crate::util::params::string_list as parse_string_list;

fn valid_suffix(s: &str) -> bool {
    let w = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let chars: Vec<char> = s.chars().collect();
    chars.len() >= 3
        && chars.first().is_some_and(|c| w(*c))
        && chars.last().is_some_and(|c| w(*c))
        && chars.iter().all(|c| w(*c) || *c == '-' || *c == '.')
}

impl Role {
    /// Apply a create/update body.
    pub(crate) fn apply(&mut self, data: &Data) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        let lower = |v: Vec<String>| v.into_iter().map(|p| p.to_lowercase()).collect::<Vec<_>>();
        if let Some(v) = string_list(data, "allowed_policies")? {
            self.allowed_policies = lower(v);
        }
        if let Some(v) = string_list(data, "disallowed_policies")? {
            self.disallowed_policies = lower(v);
        }
        if let Some(v) = string_list(data, "allowed_policies_glob")? {
            self.allowed_policies_glob = lower(v);
        }
        if let Some(v) = string_list(data, "disallowed_policies_glob")? {
            self.disallowed_policies_glob = lower(v);
        }
        if let Some(b) = params::bool(data, "orphan")? {
            self.orphan = b;
        }
        if let Some(b) = params::bool(data, "renewable")? {
            self.renewable = b;
        }
        if let Some(s) = params::string(data, "path_suffix")? {
            if !s.is_empty() && !valid_suffix(&s) {
                return Err(Error::invalid_input(
                    "given role path suffix contains invalid characters; must match \\w[\\w-.]+\\w",
                ));
            }
            self.path_suffix = s;
        }
        for (field, legacy) in [
            ("token_period", "period"),
            ("token_explicit_max_ttl", "explicit_max_ttl"),
        ] {
            let v = match params::duration(data, field)? {
                Some(d) => Some(d),
                None => params::duration(data, legacy)?,
            };
            if let Some(d) = v {
                if field == "token_period" {
                    self.token_period = d.as_secs();
                } else {
                    self.token_explicit_max_ttl = d.as_secs();
                }
            }
        }
        if let Some(t) = params::string(data, "token_type")? {
            match t.as_str() {
                "service" | "batch" | "default-service" | "default-batch" | "default" => {
                    self.token_type = if t == "default" {
                        "default-service".into()
                    } else {
                        t
                    }
                }
                _ => {
                    return Err(Error::invalid_input(format!(
                        "invalid 'token_type' value {t:?}"
                    )));
                }
            }
        }
        if let Some(b) = params::bool(data, "token_no_default_policy")? {
            self.token_no_default_policy = b;
        }
        if let Some(n) = params::int(data, "token_num_uses")? {
            if n < 0 {
                return Err(Error::invalid_input("token_num_uses cannot be negative"));
            }
            self.token_num_uses = n;
        }
        if let Some(v) = string_list(data, "token_bound_cidrs")? {
            self.token_bound_cidrs = v;
        }
        if self.token_type.is_empty() {
            self.token_type = "default-service".into();
        }
        if self.token_type == "batch"
            && (self.token_period > 0 || self.token_num_uses > 0 || self.token_explicit_max_ttl > 0)
        {
            warnings.push("batch tokens cannot be periodic, limited-use or have an explicit max TTL; these settings will be ignored".into());
        }
        Ok(warnings)
    }

    pub(crate) fn to_json(&self) -> Data {
        crate::data(json!({
            "allowed_entity_aliases": null,
            "allowed_policies": self.allowed_policies,
            "allowed_policies_glob": self.allowed_policies_glob,
            "disallowed_policies": self.disallowed_policies,
            "disallowed_policies_glob": self.disallowed_policies_glob,
            "explicit_max_ttl": self.token_explicit_max_ttl,
            "name": self.name,
            "orphan": self.orphan,
            "path_suffix": self.path_suffix,
            "period": self.token_period,
            "renewable": self.renewable,
            "token_bound_cidrs": self.token_bound_cidrs,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
            "token_period": self.token_period,
            "token_type": self.token_type,
        }))
    }
}

pub(crate) async fn get(storage: &dyn Backend, name: &str) -> Result<Option<Role>> {
    match storage.get(&format!("{ROLES_PREFIX}{name}")).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|_| Error::storage("token role is corrupt")),
    }
}

pub(crate) async fn put(storage: &dyn Backend, role: &Role) -> Result<()> {
    let raw = serde_json::to_vec(role)
        .map_err(|e| Error::internal("cannot encode role").with_source(e))?;
    storage
        .put(&format!("{ROLES_PREFIX}{}", role.name), &raw)
        .await
}

pub(crate) async fn delete(storage: &dyn Backend, name: &str) -> Result<()> {
    storage.delete(&format!("{ROLES_PREFIX}{name}")).await
}

pub(crate) async fn list(storage: &dyn Backend) -> Result<Vec<String>> {
    storage.list(ROLES_PREFIX, &Page::all()).await
}

/// A simple glob (`*` matches any run of characters).
pub(crate) fn glob_match(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            let Some(rest) = s.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len()).any(|i| rest.get(i..).is_some_and(|r| glob_match(tail, r)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_rule_and_globs() {
        assert!(valid_suffix("v1.2"));
        assert!(!valid_suffix("v1"));
        assert!(!valid_suffix("-ab"));
        assert!(glob_match("dev-*", "dev-team"));
        assert!(glob_match("*-ro", "db-ro"));
        assert!(!glob_match("dev-*", "prod-team"));
        let mut r = Role::default();
        let e = r
            .apply(&crate::data(json!({"path_suffix": "v1"})))
            .unwrap_err();
        assert_eq!(
            e.message(),
            "given role path suffix contains invalid characters; must match \\w[\\w-.]+\\w"
        );
    }
}
