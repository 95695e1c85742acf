//! PKI roles (`roles/:name`): OpenBao's fields, defaults and checks.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::crypto::KeyKind;
use super::fields;
use crate::error::{Error, Result};
use crate::request::Data;

/// One role, with every field OpenBao's `roles/:name` read shows.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct Role {
    pub ttl: u64,
    pub max_ttl: u64,
    pub allow_localhost: bool,
    pub allowed_domains: Vec<String>,
    pub allowed_domains_template: bool,
    pub allow_bare_domains: bool,
    pub allow_subdomains: bool,
    pub allow_glob_domains: bool,
    pub allow_wildcard_certificates: bool,
    pub allow_any_name: bool,
    pub enforce_hostnames: bool,
    pub allow_ip_sans: bool,
    pub allowed_uri_sans: Vec<String>,
    pub allowed_other_sans: Vec<String>,
    pub allowed_serial_numbers: Vec<String>,
    pub server_flag: bool,
    pub client_flag: bool,
    pub code_signing_flag: bool,
    pub email_protection_flag: bool,
    pub key_type: String,
    pub key_bits: u32,
    pub signature_bits: u32,
    pub use_pss: bool,
    pub key_usage: Vec<String>,
    pub ext_key_usage: Vec<String>,
    pub ext_key_usage_oids: Vec<String>,
    pub use_csr_common_name: bool,
    pub use_csr_sans: bool,
    pub ou: Vec<String>,
    pub organization: Vec<String>,
    pub country: Vec<String>,
    pub locality: Vec<String>,
    pub province: Vec<String>,
    pub street_address: Vec<String>,
    pub postal_code: Vec<String>,
    pub generate_lease: bool,
    pub no_store: bool,
    pub require_cn: bool,
    pub policy_identifiers: Vec<String>,
    pub basic_constraints_valid_for_non_ca: bool,
    pub not_before_duration: u64,
    pub not_after: String,
    pub issuer_ref: String,
    pub cn_validations: Vec<String>,
    pub allowed_user_ids: Vec<String>,
}

impl Default for Role {
    fn default() -> Role {
        Role {
            ttl: 0,
            max_ttl: 0,
            allow_localhost: true,
            allowed_domains: Vec::new(),
            allowed_domains_template: false,
            allow_bare_domains: false,
            allow_subdomains: false,
            allow_glob_domains: false,
            allow_wildcard_certificates: true,
            allow_any_name: false,
            enforce_hostnames: true,
            allow_ip_sans: true,
            allowed_uri_sans: Vec::new(),
            allowed_other_sans: Vec::new(),
            allowed_serial_numbers: Vec::new(),
            server_flag: true,
            client_flag: true,
            code_signing_flag: false,
            email_protection_flag: false,
            key_type: "rsa".into(),
            key_bits: 2048,
            signature_bits: 0,
            use_pss: false,
            key_usage: vec![
                "DigitalSignature".into(),
                "KeyAgreement".into(),
                "KeyEncipherment".into(),
            ],
            ext_key_usage: Vec::new(),
            ext_key_usage_oids: Vec::new(),
            use_csr_common_name: true,
            use_csr_sans: true,
            ou: Vec::new(),
            organization: Vec::new(),
            country: Vec::new(),
            locality: Vec::new(),
            province: Vec::new(),
            street_address: Vec::new(),
            postal_code: Vec::new(),
            generate_lease: false,
            no_store: false,
            require_cn: true,
            policy_identifiers: Vec::new(),
            basic_constraints_valid_for_non_ca: false,
            not_before_duration: 30,
            not_after: String::new(),
            issuer_ref: "default".into(),
            cn_validations: vec!["email".into(), "hostname".into()],
            allowed_user_ids: Vec::new(),
        }
    }
}

const KEY_USAGES: &[&str] = &[
    "DigitalSignature",
    "ContentCommitment",
    "KeyEncipherment",
    "DataEncipherment",
    "KeyAgreement",
    "CertSign",
    "CRLSign",
    "EncipherOnly",
    "DecipherOnly",
];

const EXT_KEY_USAGES: &[&str] = &[
    "Any",
    "ServerAuth",
    "ClientAuth",
    "CodeSigning",
    "EmailProtection",
    "IPSECEndSystem",
    "IPSECTunnel",
    "IPSECUser",
    "TimeStamping",
    "OCSPSigning",
    "MicrosoftServerGatedCrypto",
    "NetscapeServerGatedCrypto",
    "MicrosoftCommercialCodeSigning",
    "MicrosoftKernelCodeSigning",
];

/// The canonical (OpenBao) spelling of a key usage name, matched case-insensitively.
pub(crate) fn key_usage_name(s: &str) -> Option<&'static str> {
    KEY_USAGES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(s.trim()))
        .copied()
}

fn ext_key_usage_name(s: &str) -> Option<&'static str> {
    EXT_KEY_USAGES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(s.trim()))
        .copied()
}

impl Role {
    /// A role from a `roles/:name` write: every absent field takes its default (a write
    /// replaces the role, as OpenBao's does).
    pub(crate) fn from_request(d: &Data) -> Result<Role> {
        let mut r = Role::default();
        macro_rules! b {
            ($f:ident) => {
                if let Some(v) = fields::boolean(d, stringify!($f))? {
                    r.$f = v;
                }
            };
        }
        macro_rules! l {
            ($f:ident) => {
                if let Some(v) = fields::string_list(d, stringify!($f))? {
                    r.$f = v;
                }
            };
        }
        b!(allow_localhost);
        b!(allowed_domains_template);
        b!(allow_bare_domains);
        b!(allow_subdomains);
        b!(allow_glob_domains);
        b!(allow_wildcard_certificates);
        b!(allow_any_name);
        b!(enforce_hostnames);
        b!(allow_ip_sans);
        b!(server_flag);
        b!(client_flag);
        b!(code_signing_flag);
        b!(email_protection_flag);
        b!(use_pss);
        b!(use_csr_common_name);
        b!(use_csr_sans);
        b!(generate_lease);
        b!(no_store);
        b!(require_cn);
        b!(basic_constraints_valid_for_non_ca);
        l!(allowed_domains);
        l!(allowed_uri_sans);
        l!(allowed_other_sans);
        l!(allowed_serial_numbers);
        l!(ext_key_usage_oids);
        l!(ou);
        l!(organization);
        l!(country);
        l!(locality);
        l!(province);
        l!(street_address);
        l!(postal_code);
        l!(policy_identifiers);
        l!(allowed_user_ids);
        l!(cn_validations);
        if let Some(v) = fields::duration_secs(d, "ttl")? {
            r.ttl = v;
        }
        if let Some(v) = fields::duration_secs(d, "max_ttl")? {
            r.max_ttl = v;
        }
        if let Some(v) = fields::duration_secs(d, "not_before_duration")? {
            r.not_before_duration = v;
        }
        if let Some(v) = fields::string(d, "not_after")? {
            r.not_after = v;
        }
        if let Some(v) = fields::string(d, "issuer_ref")? {
            if !v.is_empty() {
                r.issuer_ref = v;
            }
        }
        if let Some(v) = fields::int(d, "signature_bits")? {
            r.signature_bits = match v {
                0 | 256 | 384 | 512 => u32::try_from(v).unwrap_or(0),
                _ => {
                    return Err(Error::invalid_input(format!(
                        "unsupported signature_bits: {v}"
                    )));
                }
            };
        }
        if let Some(v) = fields::string_list(d, "key_usage")? {
            r.key_usage = v
                .iter()
                .filter_map(|k| key_usage_name(k).map(str::to_string))
                .collect();
        }
        if let Some(v) = fields::string_list(d, "ext_key_usage")? {
            let mut out = Vec::new();
            for k in v {
                match ext_key_usage_name(&k) {
                    Some(n) => out.push(n.to_string()),
                    None => {
                        return Err(Error::invalid_input(format!("unknown ext_key_usage: {k}")));
                    }
                }
            }
            r.ext_key_usage = out;
        }
        let key_type = fields::string(d, "key_type")?.unwrap_or_else(|| "rsa".into());
        let key_bits = fields::int(d, "key_bits")?.unwrap_or(0);
        if key_type == "any" {
            r.key_type = key_type;
            r.key_bits = 0;
        } else {
            let kind = KeyKind::from_request(&key_type, key_bits)?;
            r.key_type = kind.type_name().into();
            r.key_bits = kind.bits();
        }
        if r.max_ttl > 0 && r.ttl > r.max_ttl {
            return Err(Error::invalid_input(
                "\"ttl\" value must be less than \"max_ttl\" value",
            ));
        }
        Ok(r)
    }

    /// The `roles/:name` read answer.
    pub(crate) fn to_data(&self) -> Data {
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut d = match v {
            Value::Object(m) => m,
            _ => Data::new(),
        };
        d.insert("allow_token_displayname".into(), json!(false));
        d.insert("allowed_ip_sans_cidr".into(), json!([]));
        d.insert("allowed_uri_sans_template".into(), json!(false));
        d.insert("allow_globs_in_identity_templates".into(), json!(false));
        d.insert("not_after_bound".into(), json!("permit"));
        d.insert("not_before".into(), json!(""));
        d.insert("not_before_bound".into(), json!("permit"));
        let mut sorted: Vec<(String, Value)> = d.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted.into_iter().collect()
    }

    /// The key kind a role generates for `issue` (`any` means the default RSA 2048).
    pub(crate) fn key_kind(&self) -> Result<KeyKind> {
        if self.key_type == "any" {
            return Ok(KeyKind::Rsa(2048));
        }
        KeyKind::from_request(&self.key_type, i64::from(self.key_bits))
    }
}

/// Whether a `*`-glob matches `name` (`*` matches any run of characters), case-insensitive.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let n: Vec<char> = name.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some(pi);
                mark = ni;
                pi += 1;
            }
            Some(c) if Some(c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some(s) => {
                    pi = s + 1;
                    mark += 1;
                    ni = mark;
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

/// Whether `name` is a valid hostname as OpenBao's `enforce_hostnames` checks it (a leading
/// `*.` wildcard allowed).
pub(crate) fn valid_hostname(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// Whether the role allows the DNS name (or email domain) `name`, as OpenBao's
/// `validateNames`: any name, localhost, bare domains, subdomains, globs, wildcards.
pub(crate) fn name_allowed(role: &Role, name: &str) -> bool {
    if role.allow_any_name {
        return !role.enforce_hostnames || valid_hostname(name) || name.contains('@');
    }
    // An email address is judged by its domain.
    let host = match name.rsplit_once('@') {
        Some((_, domain)) => domain,
        None => name,
    };
    if role.enforce_hostnames && !valid_hostname(host) {
        return false;
    }
    let lower = host.to_ascii_lowercase();
    if role.allow_localhost && (lower == "localhost" || lower == "localdomain") {
        return true;
    }
    // A wildcard name `*.x` is judged as its base with the wildcard allowed.
    let (is_wild, base) = match lower.strip_prefix("*.") {
        Some(b) => (true, b),
        None => (false, lower.as_str()),
    };
    if is_wild && !role.allow_wildcard_certificates {
        return false;
    }
    for allowed in &role.allowed_domains {
        let a = allowed.to_ascii_lowercase();
        if a.contains('*') {
            if role.allow_glob_domains && glob_match(&a, &lower) {
                return true;
            }
            continue;
        }
        if role.allow_bare_domains && lower == a {
            return true;
        }
        if role.allow_subdomains {
            let suffix = format!(".{a}");
            // `x.example.com` and `*.example.com` under `example.com`.
            if (lower.ends_with(&suffix) && lower.len() > suffix.len()) || (is_wild && base == a) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.example.com", "a.example.com"));
        assert!(glob_match("*.example.com", "a.b.example.com"));
        assert!(!glob_match("*.example.com", "example.com"));
        assert!(glob_match("foo-*-bar", "foo-1-bar"));
        assert!(!glob_match("foo", "foobar"));
    }

    #[test]
    fn names_follow_the_role() {
        let mut r = Role {
            allowed_domains: vec!["example.com".into()],
            allow_subdomains: true,
            ..Role::default()
        };
        assert!(name_allowed(&r, "a.example.com"));
        assert!(name_allowed(&r, "*.example.com"));
        assert!(!name_allowed(&r, "example.com"));
        assert!(!name_allowed(&r, "a.other.com"));
        assert!(!name_allowed(&r, "bad_.example..com"));
        r.allow_bare_domains = true;
        assert!(name_allowed(&r, "example.com"));
        assert!(name_allowed(&r, "localhost"));
    }
}
