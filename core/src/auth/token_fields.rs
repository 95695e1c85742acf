//! The `token_*` fields every auth method's roles and users share (OpenBao's `tokenutil`), with
//! the legacy aliases (`policies`, `ttl`, `max_ttl`, `period`, `num_uses`, `bound_cidrs`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::request::Data;
use crate::token::roles::string_list;
use crate::util::params;

/// Token settings of a role or user, in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TokenFields {
    #[serde(default)]
    pub token_policies: Vec<String>,
    #[serde(default)]
    pub token_ttl: u64,
    #[serde(default)]
    pub token_max_ttl: u64,
    #[serde(default)]
    pub token_period: u64,
    #[serde(default)]
    pub token_explicit_max_ttl: u64,
    #[serde(default)]
    pub token_num_uses: i64,
    #[serde(default)]
    pub token_bound_cidrs: Vec<String>,
    #[serde(default)]
    pub token_no_default_policy: bool,
    /// `default`, `service` or `batch`.
    #[serde(default = "default_type")]
    pub token_type: String,
    #[serde(default)]
    pub token_strictly_bind_ip: bool,
    /// Legacy field names the caller used, returned again on read as OpenBao does.
    #[serde(default)]
    pub legacy: Vec<String>,
}

fn default_type() -> String {
    "default".into()
}

/// The seconds of a duration field.
fn secs(d: &Data, field: &str) -> Result<Option<u64>> {
    Ok(params::duration(d, field)?.map(|x| x.as_secs()))
}

impl TokenFields {
    /// Fresh settings (`token_type` `default`).
    pub(crate) fn new() -> TokenFields {
        TokenFields {
            token_type: default_type(),
            ..TokenFields::default()
        }
    }

    /// Apply the fields present in a create/update body.
    pub(crate) fn apply(&mut self, d: &Data) -> Result<()> {
        let lower = |v: Vec<String>| v.into_iter().map(|p| p.to_lowercase()).collect::<Vec<_>>();
        let mut legacy = |name: &str, used: bool| {
            if used && !self.legacy.iter().any(|l| l == name) {
                self.legacy.push(name.to_string());
            }
        };
        // The legacy name counts only when the token_ name is absent.
        let pick = |new: &str, old: &str| -> (String, bool) {
            if d.get(new).is_some_and(|v| !v.is_null()) {
                (new.to_string(), false)
            } else {
                (old.to_string(), d.get(old).is_some_and(|v| !v.is_null()))
            }
        };
        let (f, l) = pick("token_policies", "policies");
        let policies = string_list(d, &f)?.map(lower);
        legacy("policies", l);
        let (f, l) = pick("token_ttl", "ttl");
        let ttl = secs(d, &f)?;
        legacy("ttl", l);
        let (f, l) = pick("token_max_ttl", "max_ttl");
        let max_ttl = secs(d, &f)?;
        legacy("max_ttl", l);
        let (f, l) = pick("token_period", "period");
        let period = secs(d, &f)?;
        legacy("period", l);
        let (f, l) = pick("token_num_uses", "num_uses");
        let num_uses = params::int(d, &f)?;
        legacy("num_uses", l);
        let (f, l) = pick("token_bound_cidrs", "bound_cidrs");
        let cidrs = string_list(d, &f)?;
        legacy("bound_cidrs", l);

        if let Some(p) = policies {
            self.token_policies = p;
        }
        if let Some(t) = ttl {
            self.token_ttl = t;
        }
        if let Some(t) = max_ttl {
            self.token_max_ttl = t;
        }
        if let Some(t) = period {
            self.token_period = t;
        }
        if let Some(t) = secs(d, "token_explicit_max_ttl")? {
            self.token_explicit_max_ttl = t;
        }
        if let Some(n) = num_uses {
            if n < 0 {
                return Err(Error::invalid_input("'token_num_uses' cannot be negative"));
            }
            self.token_num_uses = n;
        }
        if let Some(c) = cidrs {
            self.token_bound_cidrs = super::cidr::parse_list("token_bound_cidrs", &c)?;
        }
        if let Some(b) = params::bool(d, "token_no_default_policy")? {
            self.token_no_default_policy = b;
        }
        if let Some(b) = params::bool(d, "token_strictly_bind_ip")? {
            self.token_strictly_bind_ip = b;
        }
        if let Some(t) = params::string(d, "token_type")? {
            match t.as_str() {
                "" | "default" | "default-service" | "default-batch" => {
                    self.token_type = "default".into()
                }
                "service" | "batch" => self.token_type = t,
                other => {
                    return Err(Error::invalid_input(format!(
                        "invalid 'token_type' value {other:?}"
                    )));
                }
            }
        }
        if self.token_type == "batch" && self.token_period > 0 {
            return Err(Error::invalid_input(
                "'token_type' cannot be 'batch' when set to generate periodic tokens",
            ));
        }
        if self.token_type == "batch" && self.token_num_uses > 0 {
            return Err(Error::invalid_input(
                "'token_type' cannot be 'batch' when set to generate tokens with limited use count",
            ));
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(Error::invalid_input(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        Ok(())
    }

    /// Whether the token to issue is a batch token.
    pub(crate) fn is_batch(&self) -> bool {
        self.token_type == "batch"
    }

    /// Add the `token_*` keys (and the legacy ones the caller used) to a read answer.
    pub(crate) fn add_to(&self, d: &mut Data) {
        let fields = json!({
            "token_bound_cidrs": self.token_bound_cidrs,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_max_ttl": self.token_max_ttl,
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
            "token_period": self.token_period,
            "token_policies": self.token_policies,
            "token_strictly_bind_ip": self.token_strictly_bind_ip,
            "token_ttl": self.token_ttl,
            "token_type": self.token_type,
        });
        if let Value::Object(m) = fields {
            d.extend(m);
        }
        for l in &self.legacy {
            let v = match l.as_str() {
                "policies" => json!(self.token_policies),
                "ttl" => json!(self.token_ttl),
                "max_ttl" => json!(self.token_max_ttl),
                "period" => json!(self.token_period),
                "num_uses" => json!(self.token_num_uses),
                "bound_cidrs" => json!(self.token_bound_cidrs),
                _ => continue,
            };
            d.insert(l.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_fields_and_legacy_aliases() {
        let mut t = TokenFields::new();
        t.apply(&crate::data(
            json!({"policies": "A,b", "ttl": "1h", "token_max_ttl": 7200}),
        ))
        .unwrap();
        assert_eq!(t.token_policies, vec!["a", "b"]);
        assert_eq!((t.token_ttl, t.token_max_ttl), (3600, 7200));
        let mut d = Data::new();
        t.add_to(&mut d);
        assert_eq!(d["policies"], json!(["a", "b"]));
        assert_eq!(d["ttl"], json!(3600));
        assert!(d.get("max_ttl").is_none());
        let before = t.clone();
        let e = t
            .apply(&crate::data(json!({"token_ttl": "3h"})))
            .unwrap_err();
        assert_eq!(
            e.message(),
            "'token_ttl' cannot be greater than 'token_max_ttl'"
        );
        let mut t2 = before.clone();
        assert!(t2.apply(&crate::data(json!({"token_type": "x"}))).is_err());
        assert!(
            t2.apply(&crate::data(json!({"token_num_uses": -1})))
                .is_err()
        );
        assert!(
            t2.apply(&crate::data(json!({"token_bound_cidrs": ["nope"]})))
                .is_err()
        );
    }
}
