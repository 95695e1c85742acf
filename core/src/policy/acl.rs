//! The ACL compiled from a token's policies, and the per-request decision (OpenBao's
//! `NewACL`, `AllowOperation` and `Capabilities`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use time::OffsetDateTime;

use super::capability::{Capabilities, Capability};
use super::hcl::strconv::quote;
use super::index::{IndexEntry, PathIndex, RuleId};
use super::params::{ParamMap, get_lower, go_to_lower, value_in_list};
use super::parse::{ControlGroup, PathRules, Policy, RuleKind};
use super::template::TemplateIdentity;
use crate::error::{Error, Result};
use crate::request::{Data, Operation};

/// The request parameter that pagination limits apply to.
const LIMIT_PARAMETER: &str = "limit";

/// The permissions of one path after merging every policy that names it.
#[derive(Debug, Clone)]
struct Rule {
    kind: RuleKind,
    path: String,
    capabilities: Capabilities,
    min_wrapping_ttl: i64,
    max_wrapping_ttl: i64,
    allowed_parameters: Option<ParamMap>,
    denied_parameters: Option<ParamMap>,
    /// As written (merge compares them this way).
    required_parameters: Vec<String>,
    /// Lower-cased copies, which is how they are checked.
    required_lower: Vec<String>,
    mfa_methods: Vec<String>,
    pagination_limit: i64,
    response_keys_filter_path: String,
    control_group: Option<ControlGroup>,
    /// Policies granting each capability, indexed by [`Capability::index`].
    granting: [Vec<Arc<str>>; 9],
}

impl Rule {
    fn new(pc: &PathRules, policy: &Arc<str>) -> Rule {
        let mut rule = Rule {
            kind: pc.kind,
            path: pc.path.clone(),
            capabilities: pc.capabilities,
            min_wrapping_ttl: pc.min_wrapping_ttl,
            max_wrapping_ttl: pc.max_wrapping_ttl,
            allowed_parameters: pc.allowed_parameters.clone(),
            denied_parameters: pc.denied_parameters.clone(),
            required_parameters: pc.required_parameters.clone(),
            required_lower: Vec::new(),
            mfa_methods: pc.mfa_methods.clone(),
            pagination_limit: pc.pagination_limit,
            response_keys_filter_path: pc.response_keys_filter_path.clone(),
            control_group: pc.control_group.clone(),
            granting: Default::default(),
        };
        rule.add_granting(policy, pc.capabilities);
        rule
    }

    fn add_granting(&mut self, policy: &Arc<str>, caps: Capabilities) {
        for cap in caps.iter() {
            if let Some(list) = self.granting.get_mut(cap.index()) {
                list.push(Arc::clone(policy));
            }
        }
    }

    /// Merge another policy's rule for the same path (OpenBao's `NewACL` merge).
    fn merge(&mut self, pc: &PathRules, policy: &Arc<str>) {
        if self.capabilities.is_deny() {
            return;
        }
        if pc.capabilities.is_deny() {
            self.capabilities = Capabilities::DENY;
            self.allowed_parameters = None;
            self.denied_parameters = None;
            return;
        }
        self.capabilities = self.capabilities.union(pc.capabilities);
        self.add_granting(policy, pc.capabilities);
        // The smallest non-zero TTL of each kind wins.
        if pc.max_wrapping_ttl > 0
            && (self.max_wrapping_ttl == 0 || pc.max_wrapping_ttl < self.max_wrapping_ttl)
        {
            self.max_wrapping_ttl = pc.max_wrapping_ttl;
        }
        if pc.min_wrapping_ttl > 0
            && (self.min_wrapping_ttl == 0 || pc.min_wrapping_ttl < self.min_wrapping_ttl)
        {
            self.min_wrapping_ttl = pc.min_wrapping_ttl;
        }
        merge_params(&mut self.allowed_parameters, pc.allowed_parameters.as_ref());
        merge_params(&mut self.denied_parameters, pc.denied_parameters.as_ref());
        if !pc.required_parameters.is_empty() {
            for p in &pc.required_parameters {
                if !self.required_parameters.contains(p) {
                    self.required_parameters.push(p.clone());
                }
            }
        }
        if !pc.mfa_methods.is_empty() {
            self.mfa_methods.extend(pc.mfa_methods.iter().cloned());
            self.mfa_methods = remove_duplicates(&self.mfa_methods);
        }
        if pc.pagination_limit > 0
            && (self.pagination_limit <= 0 || pc.pagination_limit < self.pagination_limit)
        {
            self.pagination_limit = pc.pagination_limit;
        }
        if !pc.response_keys_filter_path.is_empty() && self.response_keys_filter_path.is_empty() {
            self.response_keys_filter_path = pc.response_keys_filter_path.clone();
        }
    }
}

/// Key-wise union of parameter maps; an empty value list on either side means any value.
fn merge_params(existing: &mut Option<ParamMap>, new: Option<&ParamMap>) {
    let Some(new) = new.filter(|m| !m.is_empty()) else {
        return;
    };
    let Some(existing) = existing else {
        *existing = Some(new.clone());
        return;
    };
    for (key, values) in new {
        let merged = match existing.get(key) {
            Some(old) if old.is_empty() => Vec::new(),
            _ if values.is_empty() => Vec::new(),
            Some(old) => values.iter().chain(old).cloned().collect(),
            None => values.clone(),
        };
        existing.insert(key.clone(), merged);
    }
}

/// `strutil.RemoveDuplicates(items, false)`: trimmed, without empties, sorted.
fn remove_duplicates(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = items
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Why a request was refused. Callers answer every denial with OpenBao's uniform
/// "permission denied" ([`Decision::check`]); the reason is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial<'a> {
    /// No rule matches the path.
    NoMatchingRule,
    /// The winning rule lacks the capability the operation needs (or is `deny`).
    MissingCapability(Capability),
    /// The rule has `min_wrapping_ttl` or `max_wrapping_ttl` and the request is not wrapped.
    WrappingRequired,
    /// The requested wrapping TTL is above the rule's `max_wrapping_ttl`.
    WrappingTtlTooLong,
    /// The requested wrapping TTL is below the rule's `min_wrapping_ttl`.
    WrappingTtlTooShort,
    /// Merged policies left `max_wrapping_ttl` below `min_wrapping_ttl`.
    ConflictingWrappingTtls,
    /// A `required_parameters` entry is missing.
    MissingRequiredParameter(&'a str),
    /// `denied_parameters` holds `*` and the request carries data.
    AllParametersDenied,
    /// The request sets a denied parameter (to a denied value).
    DeniedParameter(&'a str),
    /// The request sets a parameter `allowed_parameters` does not list.
    ParameterNotAllowed(&'a str),
    /// The request sets a parameter to a value `allowed_parameters` does not list.
    ParameterValueNotAllowed(&'a str),
    /// `limit` is required and missing.
    LimitRequired,
    /// `limit` is not an integer, is negative, or is above `pagination_limit`.
    LimitNotAllowed,
}

impl fmt::Display for Denial<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::NoMatchingRule => f.write_str("no policy rule matches the path"),
            Denial::MissingCapability(c) => write!(f, "the matching rule does not grant `{c}`"),
            Denial::WrappingRequired => f.write_str("the path requires a response-wrapped request"),
            Denial::WrappingTtlTooLong => {
                f.write_str("the wrapping ttl is above the path's max_wrapping_ttl")
            }
            Denial::WrappingTtlTooShort => {
                f.write_str("the wrapping ttl is below the path's min_wrapping_ttl")
            }
            Denial::ConflictingWrappingTtls => {
                f.write_str("the merged max_wrapping_ttl is below the merged min_wrapping_ttl")
            }
            Denial::MissingRequiredParameter(p) => write!(f, "required parameter `{p}` is missing"),
            Denial::AllParametersDenied => f.write_str("all parameters are denied on the path"),
            Denial::DeniedParameter(p) => write!(f, "parameter `{p}` is denied"),
            Denial::ParameterNotAllowed(p) => write!(f, "parameter `{p}` is not allowed"),
            Denial::ParameterValueNotAllowed(p) => {
                write!(f, "the value of parameter `{p}` is not allowed")
            }
            Denial::LimitRequired => f.write_str("parameter `limit` is required"),
            Denial::LimitNotAllowed => f.write_str("the value of parameter `limit` is not allowed"),
        }
    }
}

/// The outcome of [`Acl::allow`].
#[derive(Debug, Clone)]
pub(crate) struct Decision<'a> {
    /// Whether the request may proceed.
    pub(crate) allowed: bool,
    /// The ACL is the `root` policy.
    pub(crate) is_root: bool,
    /// Root privileges: the `root` policy, or `sudo` on the matching rule (checked even when
    /// the operation itself is refused, as OpenBao does).
    pub(crate) root_privs: bool,
    /// Capabilities of the rule that matched (empty when none did).
    pub(crate) capabilities: Capabilities,
    /// Why the request was refused.
    pub(crate) denial: Option<Denial<'a>>,
    /// Policies granting the capability the operation used (for audit).
    pub(crate) granting_policies: &'a [Arc<str>],
    /// MFA methods attached to the matching rule.
    pub(crate) mfa_methods: &'a [String],
    /// The matching rule's control group (parsed, not enforced).
    pub(crate) control_group: Option<&'a ControlGroup>,
    /// For LIST: set the request's `limit` parameter to this value before handling it
    /// (`pagination_limit`, or 0 for `limit=max` without one).
    pub(crate) set_limit: Option<i64>,
    /// For LIST: the rule's `list_scan_response_keys_filter_path` ("" when unset).
    pub(crate) response_keys_filter_path: &'a str,
}

impl<'a> Decision<'a> {
    fn denied(capabilities: Capabilities, root_privs: bool, why: Denial<'a>) -> Decision<'a> {
        Decision {
            allowed: false,
            is_root: false,
            root_privs,
            capabilities,
            denial: Some(why),
            granting_policies: &[],
            mfa_methods: &[],
            control_group: None,
            set_limit: None,
            response_keys_filter_path: "",
        }
    }

    /// `Ok(())` when allowed, OpenBao's "permission denied" otherwise.
    pub(crate) fn check(&self) -> Result<()> {
        if self.allowed {
            Ok(())
        } else {
            Err(Error::policy_denied())
        }
    }
}

/// An ACL compiled from a set of policies.
#[derive(Debug)]
pub(crate) struct Acl {
    root: Option<Arc<str>>,
    rules: Vec<Rule>,
    index: PathIndex,
    /// The first moment this ACL stops being right: the earliest `expiration` among its
    /// rules, or of a policy it was built from (see [`Acl::expiring_at`]). OpenBao builds the
    /// ACL per request, so an expired rule or policy never grants; a cached ACL must be
    /// rebuilt from then on.
    expires: Option<OffsetDateTime>,
}

impl Acl {
    /// Compile `policies` for a token without an identity, at the current time.
    pub(crate) fn new(policies: &[Arc<Policy>]) -> Result<Acl> {
        Acl::build(policies, None, OffsetDateTime::now_utc())
    }

    /// Compile `policies`: templated policies are rendered for `identity` (their templated
    /// rules are dropped when there is none), rules past their `expiration` at `now` are
    /// skipped, and rules on the same path of the same kind are merged in policy order.
    pub(crate) fn build(
        policies: &[Arc<Policy>],
        identity: Option<&TemplateIdentity>,
        now: OffsetDateTime,
    ) -> Result<Acl> {
        if let Some(root) = policies.iter().find(|p| p.is_root()) {
            if policies.len() != 1 {
                return Err(Error::internal("other policies present along with root"));
            }
            return Ok(Acl {
                root: Some(Arc::from(root.name())),
                rules: Vec::new(),
                index: PathIndex::build(&[]),
                expires: None,
            });
        }
        let no_identity = TemplateIdentity::default();
        let identity = identity.unwrap_or(&no_identity);
        let mut rules: Vec<Rule> = Vec::new();
        let mut by_path: HashMap<(RuleKind, String), usize> = HashMap::new();
        let mut expires: Option<OffsetDateTime> = None;
        for policy in policies {
            let rendered;
            let policy: &Policy = if policy.is_templated() {
                rendered = policy.render(identity, now).map_err(|e| {
                    let out = Error::new(
                        e.code(),
                        format!(
                            "error parsing templated policy {}: {}",
                            quote(policy.name()),
                            e.message()
                        ),
                    );
                    match e.wire_text() {
                        Some(t) => out.with_wire_text(t),
                        None => out,
                    }
                })?;
                &rendered
            } else {
                policy
            };
            let name: Arc<str> = Arc::from(policy.name());
            for pc in policy.paths() {
                if let Some(e) = pc.expiration {
                    if now > e {
                        continue;
                    }
                    expires = Some(expires.map_or(e, |x| x.min(e)));
                }
                match by_path.get(&(pc.kind, pc.path.clone())) {
                    Some(&i) => {
                        if let Some(rule) = rules.get_mut(i) {
                            rule.merge(pc, &name);
                        }
                    }
                    None => {
                        by_path.insert((pc.kind, pc.path.clone()), rules.len());
                        rules.push(Rule::new(pc, &name));
                    }
                }
            }
        }
        for rule in &mut rules {
            rule.required_lower = rule
                .required_parameters
                .iter()
                .map(|p| go_to_lower(p))
                .collect();
        }
        let entries: Vec<IndexEntry<'_>> = rules
            .iter()
            .map(|r| match r.kind {
                RuleKind::Exact => IndexEntry::Exact(&r.path),
                RuleKind::Prefix => IndexEntry::Prefix(&r.path),
                RuleKind::Segment => IndexEntry::Segment(&r.path),
            })
            .collect();
        let index = PathIndex::build(&entries);
        Ok(Acl {
            root: None,
            rules,
            index,
            expires,
        })
    }

    /// The same ACL, valid no later than `at` (a policy it holds expires then).
    #[must_use]
    pub(crate) fn expiring_at(mut self, at: Option<OffsetDateTime>) -> Acl {
        if let Some(t) = at {
            self.expires = Some(self.expires.map_or(t, |x| x.min(t)));
        }
        self
    }

    /// When this ACL stops being valid (`None`: never, unless a policy changes).
    pub(crate) fn expires(&self) -> Option<OffsetDateTime> {
        self.expires
    }

    /// Whether a rule or policy it was built from may have expired at `now` (build it again;
    /// at the very instant a rebuild keeps a rule, which OpenBao skips once `now > expiration`).
    pub(crate) fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }

    /// Whether this is the `root` ACL.
    pub(crate) fn is_root(&self) -> bool {
        self.root.is_some()
    }

    /// The rule a request selects, with OpenBao's LIST fallbacks.
    fn find(&self, path: &str, list: bool) -> Option<&Rule> {
        let (exact, prefix) = self.index.exact_and_prefix(path);
        let id: Option<RuleId> = exact
            .or_else(|| {
                if list {
                    path.strip_suffix('/').and_then(|p| self.index.exact(p))
                } else {
                    None
                }
            })
            .or_else(|| self.index.non_exact(path, prefix))
            .or_else(|| {
                let trimmed = path.strip_suffix('/').filter(|_| list)?;
                let (_, prefix) = self.index.exact_and_prefix(trimmed);
                self.index.non_exact(trimmed, prefix)
            });
        id.and_then(|i| self.rules.get(i as usize))
    }

    /// What `sys/capabilities` reports for `path`: `["root"]` for the root ACL, otherwise the
    /// matching rule's capabilities sorted alphabetically, or `["deny"]`.
    pub(crate) fn capabilities(&self, path: &str) -> Vec<String> {
        if self.is_root() {
            return vec!["root".to_string()];
        }
        let path = path.trim_start_matches('/');
        let caps = self
            .find(path, true)
            .map_or(Capabilities::EMPTY, |r| r.capabilities);
        caps.sorted_names()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// OpenBao's `hasMountAccess`, the check of `sys/internal/ui/mounts/:path`: does this ACL
    /// grant anything at all inside the mount at `mount_path` (`secret/`)? True for root, for a
    /// rule covering the mount path itself, and for any rule (exact, prefix or `+` segments)
    /// reaching below it with a capability other than `deny`.
    pub(crate) fn has_mount_access(&self, mount_path: &str) -> bool {
        if self.is_root() {
            return true;
        }
        let grants = |caps: Capabilities| {
            !caps.is_deny()
                && [
                    Capability::Create,
                    Capability::Delete,
                    Capability::List,
                    Capability::Read,
                    Capability::Sudo,
                    Capability::Update,
                    Capability::Patch,
                ]
                .into_iter()
                .any(|c| caps.contains(c))
        };
        if self
            .find(mount_path, false)
            .is_some_and(|r| !r.capabilities.is_deny() && !r.capabilities.is_empty())
        {
            return true;
        }
        let mount_segments: Vec<&str> = mount_path.trim_end_matches('/').split('/').collect();
        self.rules.iter().any(|rule| {
            grants(rule.capabilities)
                && match rule.kind {
                    RuleKind::Exact | RuleKind::Prefix => rule.path.starts_with(mount_path),
                    RuleKind::Segment => {
                        let pattern: Vec<&str> = rule.path.split('/').collect();
                        pattern.len() >= mount_segments.len()
                            && mount_segments.iter().zip(&pattern).all(|(seg, pat)| {
                                *pat == "+"
                                    || pat == seg
                                    || pat.strip_suffix('*').is_some_and(|p| seg.starts_with(p))
                            })
                    }
                }
        })
    }

    /// Whether the rule matching `path` looks at request parameters (required, denied or
    /// allowed ones) or wrapping TTLs, so that a decision depends on the request body. Typed
    /// fast paths, which carry no JSON body, may call [`Acl::allow`] with an empty body only
    /// when this is false.
    pub(crate) fn inspects_body(&self, path: &str) -> bool {
        if self.root.is_some() {
            return false;
        }
        self.find(path.trim_start_matches('/'), false)
            .is_some_and(|rule| {
                !rule.required_parameters.is_empty()
                    || rule
                        .allowed_parameters
                        .as_ref()
                        .is_some_and(|m| !m.is_empty())
                    || rule
                        .denied_parameters
                        .as_ref()
                        .is_some_and(|m| !m.is_empty())
                    || rule.min_wrapping_ttl != 0
                    || rule.max_wrapping_ttl != 0
            })
    }

    /// Decide whether `op` on `path` with `data` (the body, or the query for reads and
    /// lists) may proceed; `wrap_ttl` is the requested response-wrapping TTL.
    pub(crate) fn allow<'a>(
        &'a self,
        op: Operation,
        path: &str,
        data: &'a Data,
        wrap_ttl: Option<Duration>,
    ) -> Decision<'a> {
        if let Some(root) = &self.root {
            return Decision {
                allowed: true,
                is_root: true,
                root_privs: true,
                capabilities: Capabilities::EMPTY,
                denial: None,
                granting_policies: std::slice::from_ref(root),
                mfa_methods: &[],
                control_group: None,
                set_limit: None,
                response_keys_filter_path: "",
            };
        }
        let path = path.trim_start_matches('/');
        // LIST (and SCAN, once the pipeline has it) get the trailing-slash fallbacks.
        let list = op == Operation::List;
        let Some(rule) = self.find(path, list) else {
            return Decision::denied(Capabilities::EMPTY, false, Denial::NoMatchingRule);
        };
        let caps = rule.capabilities;
        let root_privs = caps.contains(Capability::Sudo);
        let needed = match op {
            Operation::Read => Capability::Read,
            Operation::List => Capability::List,
            Operation::Update => Capability::Update,
            Operation::Delete => Capability::Delete,
            Operation::Create => Capability::Create,
            Operation::Patch => Capability::Patch,
        };
        if !caps.contains(needed) {
            return Decision::denied(caps, root_privs, Denial::MissingCapability(needed));
        }
        let deny = |why| Decision::denied(caps, root_privs, why);

        let ttl = wrap_ttl.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        if rule.max_wrapping_ttl > 0 {
            match ttl {
                None => return deny(Denial::WrappingRequired),
                Some(t) if t > rule.max_wrapping_ttl => return deny(Denial::WrappingTtlTooLong),
                Some(_) => {}
            }
        }
        if rule.min_wrapping_ttl > 0 {
            match ttl {
                None => return deny(Denial::WrappingRequired),
                Some(t) if t < rule.min_wrapping_ttl => return deny(Denial::WrappingTtlTooShort),
                Some(_) => {}
            }
        }
        if rule.min_wrapping_ttl != 0
            && rule.max_wrapping_ttl != 0
            && rule.max_wrapping_ttl < rule.min_wrapping_ttl
        {
            return deny(Denial::ConflictingWrappingTtls);
        }

        let mut set_limit = None;
        match op {
            Operation::Read | Operation::Update | Operation::Create | Operation::Patch => {
                if let Err(why) = check_parameters(rule, data) {
                    return deny(why);
                }
            }
            Operation::List => match check_pagination(rule, data) {
                Ok(limit) => set_limit = limit,
                Err(why) => return deny(why),
            },
            Operation::Delete => {}
        }

        Decision {
            allowed: true,
            is_root: false,
            root_privs,
            capabilities: caps,
            denial: None,
            granting_policies: rule
                .granting
                .get(needed.index())
                .map_or(&[][..], Vec::as_slice),
            mfa_methods: &rule.mfa_methods,
            control_group: rule.control_group.as_ref(),
            set_limit,
            response_keys_filter_path: if list {
                &rule.response_keys_filter_path
            } else {
                ""
            },
        }
    }
}

/// Required, denied and allowed parameters (read, create, update, patch).
fn check_parameters<'a>(rule: &'a Rule, data: &'a Data) -> std::result::Result<(), Denial<'a>> {
    for (lower, written) in rule.required_lower.iter().zip(&rule.required_parameters) {
        // Request keys are not lower-cased here, only the policy's.
        if !data.contains_key(lower) {
            return Err(Denial::MissingRequiredParameter(written));
        }
    }
    if data.is_empty() {
        return Ok(());
    }
    if let Some(denied) = rule.denied_parameters.as_ref().filter(|m| !m.is_empty()) {
        if denied.contains_key("*") {
            return Err(Denial::AllParametersDenied);
        }
        for (key, value) in data {
            if let Some(list) = get_lower(denied, key)
                && value_in_list(value, list)
            {
                return Err(Denial::DeniedParameter(key));
            }
        }
    }
    let Some(allowed) = rule.allowed_parameters.as_ref().filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    let allowed_all = allowed.contains_key("*");
    if allowed.len() == 1 && allowed_all {
        return Ok(());
    }
    for (key, value) in data {
        match get_lower(allowed, key) {
            None if !allowed_all => return Err(Denial::ParameterNotAllowed(key)),
            Some(list) if !value_in_list(value, list) => {
                return Err(Denial::ParameterValueNotAllowed(key));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `pagination_limit` on LIST: returns the value `limit` must be set to, if any.
fn check_pagination<'a>(
    rule: &'a Rule,
    data: &'a Data,
) -> std::result::Result<Option<i64>, Denial<'a>> {
    let raw = data.get(LIMIT_PARAMETER);
    if rule.pagination_limit <= 0 {
        // Without a limit, `limit=max` means "no limit".
        return Ok(match raw {
            Some(Json::String(s)) if s == "max" => Some(0),
            _ => None,
        });
    }
    let Some(raw) = raw else {
        if rule.required_lower.iter().any(|p| p == LIMIT_PARAMETER) {
            return Err(Denial::LimitRequired);
        }
        return Ok(Some(rule.pagination_limit));
    };
    match parse_limit(raw) {
        Some(v) if v > rule.pagination_limit || v < 0 => Err(Denial::LimitNotAllowed),
        Some(0) => Ok(Some(rule.pagination_limit)),
        Some(_) => Ok(None),
        None => match raw {
            Json::String(s) if s == "max" => Ok(Some(rule.pagination_limit)),
            _ => Err(Denial::LimitNotAllowed),
        },
    }
}

/// `parseutil.SafeParseInt` on a request value (numbers arrive as `json.Number` text).
fn parse_limit(v: &Json) -> Option<i64> {
    match v {
        Json::String(s) if s.is_empty() => Some(0),
        Json::String(s) => super::hcl::strconv::parse_int(s, false).ok(),
        Json::Number(n) => super::hcl::strconv::parse_int(&n.to_string(), false).ok(),
        _ => None,
    }
}
