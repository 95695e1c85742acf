//! Parsed ACL policies: [`Policy::parse`] turns an HCL or JSON document into path rules,
//! following OpenBao's `ParseACLPolicyWithTemplating` step by step (same checks, same order,
//! same error texts).

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::builtin::ROOT_POLICY_NAME;
use super::capability::{Capabilities, Capability};
use super::duration::parse_duration_second;
use super::hcl::decode;
use super::hcl::strconv::{self, quote};
use super::hcl::{self, Keyed, Node, ObjectItem, ObjectList};
use super::params::{ParamMap, go_to_lower};
use super::template::{self, Render, TemplateError, TemplateIdentity};
use crate::error::{Error, ErrorCode, Result};

/// How a path rule matches request paths (OpenBao keeps each kind in its own store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum RuleKind {
    /// The path as written, matched exactly.
    Exact,
    /// Written with a trailing `*`: the rest is a plain string prefix.
    Prefix,
    /// Contains `+` segments (`+`, `/+`, `+/`); a trailing `*` is kept in the pattern.
    Segment,
}

/// One `path "..." { ... }` block.
#[derive(Debug, Clone)]
pub(crate) struct PathRules {
    /// The path: without its leading `/`; for [`RuleKind::Prefix`] without the trailing `*`.
    pub(crate) path: String,
    /// How the path matches.
    pub(crate) kind: RuleKind,
    /// The capabilities; `deny` alone when the rule denies.
    pub(crate) capabilities: Capabilities,
    /// `min_wrapping_ttl` in nanoseconds (0 = unset).
    pub(crate) min_wrapping_ttl: i64,
    /// `max_wrapping_ttl` in nanoseconds (0 = unset).
    pub(crate) max_wrapping_ttl: i64,
    /// `allowed_parameters`, keys lower-cased; `None` when absent.
    pub(crate) allowed_parameters: Option<ParamMap>,
    /// `denied_parameters`, keys lower-cased; `None` when absent.
    pub(crate) denied_parameters: Option<ParamMap>,
    /// `required_parameters`, as written.
    pub(crate) required_parameters: Vec<String>,
    /// `mfa_methods`.
    pub(crate) mfa_methods: Vec<String>,
    /// `pagination_limit` (0 = unset).
    pub(crate) pagination_limit: i64,
    /// `list_scan_response_keys_filter_path` ("" = unset).
    pub(crate) response_keys_filter_path: String,
    /// `expiration`: the rule is ignored after this time.
    pub(crate) expiration: Option<OffsetDateTime>,
    /// `control_group`, parsed and validated but not enforced (Strongroom has no
    /// control-group workflow).
    pub(crate) control_group: Option<ControlGroup>,
}

impl PathRules {
    fn new(path: String) -> PathRules {
        PathRules {
            path,
            kind: RuleKind::Exact,
            capabilities: Capabilities::EMPTY,
            min_wrapping_ttl: 0,
            max_wrapping_ttl: 0,
            allowed_parameters: None,
            denied_parameters: None,
            required_parameters: Vec::new(),
            mfa_methods: Vec::new(),
            pagination_limit: 0,
            response_keys_filter_path: String::new(),
            expiration: None,
            control_group: None,
        }
    }
}

/// A `control_group` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ControlGroup {
    /// `ttl` in nanoseconds.
    pub(crate) ttl: i64,
    /// `self_auth_allowed`.
    pub(crate) self_auth_allowed: bool,
    /// The `factor "name" { ... }` blocks.
    pub(crate) factors: Vec<ControlGroupFactor>,
}

/// A control-group `factor` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ControlGroupFactor {
    /// The factor's label.
    pub(crate) name: String,
    /// `controlled_capabilities`.
    pub(crate) controlled_capabilities: Vec<String>,
    /// `identity { group_names }`.
    pub(crate) group_names: Vec<String>,
    /// `identity { approvals }`.
    pub(crate) approvals: i64,
}

/// A parsed ACL policy.
///
/// ```ignore
/// let p = Policy::parse("dev", r#"path "secret/data/dev/*" { capabilities = ["read"] }"#)?;
/// assert_eq!(p.paths().len(), 1);
/// ```
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    name: String,
    raw: String,
    templated: bool,
    allow_slashes_in_identity_templates: bool,
    allow_wildcards_in_identity_templates: bool,
    paths: Vec<PathRules>,
}

/// Rendering instructions for [`parse_document`].
struct Templating<'a> {
    render: Render<'a>,
}

impl Policy {
    /// Parse an HCL or JSON policy document, judging `expiration` against the system clock.
    pub(crate) fn parse(name: &str, text: &str) -> Result<Policy> {
        Policy::parse_at(name, text, OffsetDateTime::now_utc())
    }

    /// Parse an HCL or JSON policy document; rules whose `expiration` is before `now` are
    /// dropped, as OpenBao does. Errors carry OpenBao's texts and [`ErrorCode::InvalidInput`].
    pub(crate) fn parse_at(name: &str, text: &str, now: OffsetDateTime) -> Result<Policy> {
        let mut policy = Policy {
            name: name.to_string(),
            raw: text.to_string(),
            templated: false,
            allow_slashes_in_identity_templates: false,
            allow_wildcards_in_identity_templates: false,
            paths: Vec::new(),
        };
        parse_document(&mut policy, text, now, None)?;
        Ok(policy)
    }

    /// The built-in `root` policy: no rules, and an ACL holding it allows everything.
    pub(crate) fn root() -> Policy {
        Policy {
            name: ROOT_POLICY_NAME.into(),
            raw: String::new(),
            templated: false,
            allow_slashes_in_identity_templates: false,
            allow_wildcards_in_identity_templates: false,
            paths: Vec::new(),
        }
    }

    /// The same policy with the identity-template options of `sys/policies/acl` set.
    #[must_use]
    pub(crate) fn with_template_options(
        mut self,
        allow_slashes: bool,
        allow_wildcards: bool,
    ) -> Policy {
        self.allow_slashes_in_identity_templates = allow_slashes;
        self.allow_wildcards_in_identity_templates = allow_wildcards;
        self
    }

    /// The policy's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The document the policy was parsed from.
    pub(crate) fn raw(&self) -> &str {
        &self.raw
    }

    /// Whether some path holds identity templates (the policy is rendered per token).
    pub(crate) fn is_templated(&self) -> bool {
        self.templated
    }

    /// Whether this is the built-in `root` policy (OpenBao goes by the name).
    pub(crate) fn is_root(&self) -> bool {
        self.name == ROOT_POLICY_NAME
    }

    /// The path rules, in document order.
    pub(crate) fn paths(&self) -> &[PathRules] {
        &self.paths
    }

    /// This policy with its identity templates substituted for `identity` (OpenBao re-parses
    /// templated policies per token). Rules whose templates cannot be filled are dropped; a
    /// substituted `*`, `+` or `/` the policy does not allow fails with
    /// [`ErrorCode::InvalidInput`], shown over HTTP as OpenBao's `Forbidden`.
    pub(crate) fn render(
        &self,
        identity: &TemplateIdentity,
        now: OffsetDateTime,
    ) -> Result<Policy> {
        if !self.templated {
            return Ok(self.clone());
        }
        let mut policy = Policy {
            paths: Vec::new(),
            ..self.clone()
        };
        let templating = Templating {
            render: Render {
                identity,
                now,
                allow_slashes: self.allow_slashes_in_identity_templates,
                allow_wildcards: self.allow_wildcards_in_identity_templates,
            },
        };
        parse_document(&mut policy, &self.raw, now, Some(&templating))?;
        Ok(policy)
    }
}

/// Errors while parsing a path block: Go's message, or a templating wildcard failure.
enum PathError {
    Invalid(String),
    Forbidden(String),
}

impl From<String> for PathError {
    fn from(s: String) -> Self {
        PathError::Invalid(s)
    }
}

fn invalid(msg: String) -> Error {
    Error::invalid_input(msg)
}

fn parse_document(
    policy: &mut Policy,
    text: &str,
    now: OffsetDateTime,
    templating: Option<&Templating<'_>>,
) -> Result<()> {
    let fail = |e: String| invalid(format!("failed to parse policy: {e}"));
    let list = hcl::parse_config(text).map_err(fail)?;
    hcl::check_keys(Keyed::List(&list), &["name", "path"]).map_err(fail)?;
    // `name` is decoded (and must be a string) but the store's name is what counts.
    for node in decode::field_nodes(&list, "name") {
        decode::decode_string("root.name", &node).map_err(fail)?;
    }
    let paths = list.filter("path");
    for item in &paths.items {
        let key = match item.keys.first() {
            Some(k) => k.string_value().map_err(fail)?,
            None => "path".to_string(),
        };
        match parse_path(policy, &key, item, now, templating) {
            Ok(Some(rule)) => policy.paths.push(rule),
            Ok(None) => {}
            Err(PathError::Invalid(e)) => {
                return Err(fail(format!("path {}: {e}", quote(&key))));
            }
            // OpenBao cannot build the token's ACL then: HTTP 400 `Forbidden`.
            Err(PathError::Forbidden(e)) => {
                return Err(Error::new(
                    ErrorCode::InvalidInput,
                    format!("failed to parse policy: path {}: {e}", quote(&key)),
                )
                .with_wire_text("Forbidden"));
            }
        }
    }
    Ok(())
}

/// Keys allowed inside a path block.
const PATH_KEYS: [&str; 13] = [
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "pagination_limit",
    "expiration",
    "list_scan_response_keys_filter_path",
    "control_group",
];

/// The fields decoded from a path block, before validation.
#[derive(Default)]
struct RawPath {
    policy: String,
    capabilities: Vec<String>,
    expiration: String,
    min_wrapping_ttl: Option<decode::Value>,
    max_wrapping_ttl: Option<decode::Value>,
    allowed_parameters: Option<BTreeMap<String, Vec<decode::Value>>>,
    denied_parameters: Option<BTreeMap<String, Vec<decode::Value>>>,
    required_parameters: Vec<String>,
    mfa_methods: Option<Vec<String>>,
    pagination_limit: i64,
    response_keys_filter_path: String,
}

/// Decode the struct fields of a path block (Go's `hcl.DecodeObject(&pc, item.Val)`), in
/// the struct's field order.
fn decode_path_fields(body: &ObjectList) -> std::result::Result<RawPath, String> {
    let mut raw = RawPath::default();
    for node in decode::field_nodes(body, "Policy") {
        raw.policy = decode::decode_string("root.Policy", &node)?;
    }
    for node in decode::field_nodes(body, "Capabilities") {
        decode::decode_string_slice("root.Capabilities", &node, &mut raw.capabilities)?;
    }
    for node in decode::field_nodes(body, "expiration") {
        raw.expiration = decode::decode_string("root.expiration", &node)?;
    }
    for node in decode::field_nodes(body, "min_wrapping_ttl") {
        raw.min_wrapping_ttl = Some(decode::decode_any("root.min_wrapping_ttl", &node, false)?);
    }
    for node in decode::field_nodes(body, "max_wrapping_ttl") {
        raw.max_wrapping_ttl = Some(decode::decode_any("root.max_wrapping_ttl", &node, false)?);
    }
    for node in decode::field_nodes(body, "allowed_parameters") {
        let map = raw.allowed_parameters.get_or_insert_with(BTreeMap::new);
        decode::decode_map_of_lists("root.allowed_parameters", &node, map)?;
    }
    for node in decode::field_nodes(body, "denied_parameters") {
        let map = raw.denied_parameters.get_or_insert_with(BTreeMap::new);
        decode::decode_map_of_lists("root.denied_parameters", &node, map)?;
    }
    for node in decode::field_nodes(body, "required_parameters") {
        decode::decode_string_slice(
            "root.required_parameters",
            &node,
            &mut raw.required_parameters,
        )?;
    }
    for node in decode::field_nodes(body, "mfa_methods") {
        let list = raw.mfa_methods.get_or_insert_with(Vec::new);
        decode::decode_string_slice("root.mfa_methods", &node, list)?;
    }
    for node in decode::field_nodes(body, "pagination_limit") {
        raw.pagination_limit = decode::decode_int("root.pagination_limit", &node)?;
    }
    for node in decode::field_nodes(body, "list_scan_response_keys_filter_path") {
        raw.response_keys_filter_path =
            decode::decode_string("root.list_scan_response_keys_filter_path", &node)?;
    }
    Ok(raw)
}

/// OpenBao's `parsePath`. `Ok(None)` means the rule is skipped (expired, or its template
/// could not be filled for this identity).
fn parse_path(
    policy: &mut Policy,
    key: &str,
    item: &ObjectItem,
    now: OffsetDateTime,
    templating: Option<&Templating<'_>>,
) -> std::result::Result<Option<PathRules>, PathError> {
    let mut key = key.to_string();
    match templating {
        Some(t) => match template::populate(&key, &t.render) {
            Ok(rendered) => key = rendered,
            Err(TemplateError::Wildcard(e)) => return Err(PathError::Forbidden(e)),
            Err(_) => return Ok(None),
        },
        None => match template::has_templating(&key) {
            Ok(true) => policy.templated = true,
            Ok(false) => {}
            Err(e) => {
                return Err(PathError::Invalid(format!(
                    "failed to validate policy templating: {}",
                    e.message()
                )));
            }
        },
    }

    hcl::check_keys(Keyed::Node(&item.val), &PATH_KEYS)?;
    let Node::Object(body) = &item.val else {
        // check_keys rejects every other node kind.
        return Err(PathError::Invalid(format!(
            "cannot check HCL keys of type {}",
            item.val.go_type()
        )));
    };

    let control_group = parse_control_group(&body.list)
        .map_err(|e| PathError::Invalid(format!("error handling control_group: {e}")))?;

    let raw = decode_path_fields(&body.list).map_err(|e| format!("path {}: {e}", quote(&key)))?;

    let mut pc = PathRules::new(key.clone());
    pc.control_group = control_group;

    if !raw.expiration.is_empty() {
        let expiration = parse_absolute_time(&raw.expiration)
            .map_err(|e| format!("path {}: invalid expiration time: {e}", quote(&pc.path)))?;
        if now > expiration {
            return Ok(None);
        }
        pc.expiration = Some(expiration);
    }

    if let Some(stripped) = pc.path.strip_prefix('/') {
        pc.path = stripped.to_string();
    }
    if pc.path.contains("+*") {
        return Err(PathError::Invalid(format!(
            "path {}: invalid use of wildcards ('+*' is forbidden)",
            quote(&pc.path)
        )));
    }
    let segment = pc.path == "+" || pc.path.contains("/+") || pc.path.starts_with("+/");
    if segment {
        pc.kind = RuleKind::Segment;
    } else if let Some(prefix) = pc.path.strip_suffix('*') {
        pc.path = prefix.to_string();
        pc.kind = RuleKind::Prefix;
    }

    let mut capabilities = raw.capabilities;
    if !raw.policy.is_empty() {
        let legacy: &[&str] = match raw.policy.as_str() {
            "deny" => {
                capabilities = vec!["deny".into()];
                &[]
            }
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            other => {
                return Err(PathError::Invalid(format!(
                    "path {}: invalid policy {}",
                    quote(&key),
                    quote(other)
                )));
            }
        };
        capabilities.extend(legacy.iter().map(|s| (*s).to_string()));
    }

    for cap in &capabilities {
        match Capability::parse(cap) {
            // `deny` drops everything else on the rule, parameters and TTLs included.
            Some(Capability::Deny) => {
                pc.capabilities = Capabilities::DENY;
                return Ok(Some(pc));
            }
            Some(c) => pc.capabilities = pc.capabilities.with(c),
            None => {
                return Err(PathError::Invalid(format!(
                    "path {}: invalid capability {}",
                    quote(&key),
                    quote(cap)
                )));
            }
        }
    }

    pc.allowed_parameters = raw.allowed_parameters.map(lower_keys);
    pc.denied_parameters = raw.denied_parameters.map(lower_keys);
    if let Some(v) = &raw.min_wrapping_ttl {
        pc.min_wrapping_ttl =
            parse_duration_second(v).map_err(|e| format!("error parsing min_wrapping_ttl: {e}"))?;
    }
    if let Some(v) = &raw.max_wrapping_ttl {
        pc.max_wrapping_ttl =
            parse_duration_second(v).map_err(|e| format!("error parsing max_wrapping_ttl: {e}"))?;
    }
    if let Some(m) = raw.mfa_methods {
        pc.mfa_methods = m;
    }
    if pc.min_wrapping_ttl != 0
        && pc.max_wrapping_ttl != 0
        && pc.max_wrapping_ttl < pc.min_wrapping_ttl
    {
        return Err(PathError::Invalid(
            "max_wrapping_ttl cannot be less than min_wrapping_ttl".into(),
        ));
    }
    pc.required_parameters = raw.required_parameters;
    if !raw.response_keys_filter_path.is_empty() {
        if !pc.capabilities.contains(Capability::List) {
            return Err(PathError::Invalid(
                "list_scan_response_keys_filter_path needs to be used on a path with the list capability"
                    .into(),
            ));
        }
        check_filter_template(&raw.response_keys_filter_path)?;
        pc.response_keys_filter_path = raw.response_keys_filter_path;
    }
    pc.pagination_limit = raw.pagination_limit;
    Ok(Some(pc))
}

/// Lower-case parameter names (OpenBao does this when parsing; request keys are lower-cased
/// when checking).
fn lower_keys(map: BTreeMap<String, Vec<decode::Value>>) -> ParamMap {
    map.into_iter().map(|(k, v)| (go_to_lower(&k), v)).collect()
}

/// OpenBao compiles the filter path as a Go template and renders it for two random keys,
/// rejecting templates that give the same path for both. Strongroom does not run Go
/// templates; it accepts a template that refers to `.key`, which is what that check proves.
fn check_filter_template(tmpl: &str) -> std::result::Result<(), String> {
    let uses_key = tmpl.split("{{").skip(1).any(|action| {
        action
            .split("}}")
            .next()
            .is_some_and(|inner| inner.contains(".key"))
    });
    if uses_key {
        Ok(())
    } else {
        Err(
            "list_scan_response_keys_filter_path resulted in same path for two different keys"
                .into(),
        )
    }
}

/// `parseutil.ParseAbsoluteTime` for strings: RFC 3339 (with or without fractional
/// seconds) or Unix seconds.
fn parse_absolute_time(s: &str) -> std::result::Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    if let Ok(secs) = strconv::parse_int(s, false)
        && let Ok(t) = OffsetDateTime::from_unix_timestamp(secs)
    {
        return Ok(t);
    }
    Err("could not parse string as date and time".into())
}

/// Operations a control-group factor may name (`logical.ValidateOperation`).
const CONTROL_GROUP_OPERATIONS: [&str; 14] = [
    "create",
    "read",
    "update",
    "patch",
    "delete",
    "list",
    "scan",
    "help",
    "alias-lookahead",
    "resolve-role",
    "header",
    "revoke",
    "renew",
    "rollback",
];

/// Prefix every point of a multierror text (Go's `multierror.Prefix` on a multierror).
fn prefix_points(multi: &str, prefix: &str) -> String {
    multi.replace("\n\t* ", &format!("\n\t* {prefix} "))
}

/// Parse and validate a `control_group` block, if present.
fn parse_control_group(body: &ObjectList) -> std::result::Result<Option<ControlGroup>, String> {
    let found = body.filter("control_group");
    let Some(item) = found.items.first() else {
        return Ok(None);
    };
    hcl::check_keys(
        Keyed::Node(&item.val),
        &["ttl", "self_auth_allowed", "factor"],
    )?;
    let cg_list = match &item.val {
        Node::Object(o) => o.list.clone(),
        other => {
            return Err(format!(
                "path control_group: cannot check HCL keys of type {}",
                other.go_type()
            ));
        }
    };
    let prefixed = |e: String| format!("path control_group: {e}");
    let mut cg = ControlGroup::default();
    let mut ttl_raw = None;
    for node in decode::field_nodes(&cg_list, "ttl") {
        ttl_raw = Some(decode::decode_any("root.ttl", &node, false).map_err(prefixed)?);
    }
    for node in decode::field_nodes(&cg_list, "self_auth_allowed") {
        cg.self_auth_allowed =
            decode::decode_bool("root.self_auth_allowed", &node).map_err(prefixed)?;
    }
    let factor_err = |e: String| format!("error handling control_group factor: {e}");
    for factor_item in cg_list.filter("factor").items {
        hcl::check_keys(
            Keyed::Node(&factor_item.val),
            &["controlled_capabilities", "identity"],
        )
        .map_err(|e| factor_err(prefix_points(&e, "path control_group factor:")))?;
        let Node::Object(fbody) = &factor_item.val else {
            continue;
        };
        let fprefixed = |e: String| factor_err(format!("path control_group factor: {e}"));
        let mut factor = ControlGroupFactor::default();
        for node in decode::field_nodes(&fbody.list, "controlled_capabilities") {
            decode::decode_string_slice(
                "root.controlled_capabilities",
                &node,
                &mut factor.controlled_capabilities,
            )
            .map_err(fprefixed)?;
        }
        for node in decode::field_nodes(&fbody.list, "Identity") {
            let list = decode::struct_items("root.Identity", &node).map_err(fprefixed)?;
            for n in decode::field_nodes(&list, "group_names") {
                decode::decode_string_slice(
                    "root.Identity.group_names",
                    &n,
                    &mut factor.group_names,
                )
                .map_err(fprefixed)?;
            }
            for n in decode::field_nodes(&list, "Approvals") {
                factor.approvals =
                    decode::decode_int("root.Identity.Approvals", &n).map_err(fprefixed)?;
            }
        }
        let Some(label) = factor_item.keys.first() else {
            return Err(factor_err(
                "path control_group factor: require name key".into(),
            ));
        };
        factor.name = label.string_value().map_err(factor_err)?;
        cg.factors.push(factor);
    }
    if let Some(v) = &ttl_raw {
        cg.ttl = parse_duration_second(v)
            .map_err(|e| format!("path control_group: invalid ttl: {e}"))?;
    }
    if cg.factors.is_empty() {
        return Err("requires at least one factor but had none".into());
    }
    for (i, factor) in cg.factors.iter().enumerate() {
        if let Some(bad) = factor
            .controlled_capabilities
            .iter()
            .find(|c| !CONTROL_GROUP_OPERATIONS.contains(&c.as_str()))
        {
            return Err(format!(
                "path control_group unknown operation {}",
                quote(bad)
            ));
        }
        if factor.controlled_capabilities.is_empty() {
            return Err(format!("factor {i}: missing controlled capabilities"));
        }
        if factor.approvals <= 0 {
            return Err(format!("factor {i}: missing required approvals"));
        }
        if factor.group_names.is_empty() {
            return Err(format!("factor {i}: missing approving groups"));
        }
    }
    Ok(Some(cg))
}
