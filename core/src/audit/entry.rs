//! Audit entries in OpenBao's JSON shape (`internal/audit/format.go`): what goes in
//! ([`AuditInput`], [`AuditAuth`]), and the request and response lines each device writes,
//! with secrets replaced by their HMAC (`hashstructure.go`).
//!
//! Keys come out in OpenBao's order (its structs' field order; maps sorted, as Go sorts them),
//! empty values are omitted as Go's `omitempty` omits them, and `<`, `>`, `&`, U+2028 and U+2029
//! are escaped as Go's JSON encoder escapes them, so lines compare byte for byte.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::config::FormatOptions;
use super::salt::Salt;
use crate::error::{Error, Result};
use crate::request::{Auth, Data, Operation, Request, Response, WrapInfo};
use crate::router::{BAO_VERSION, MountEntry};

/// The token behind a request, as audit entries show it (OpenBao's `AuditAuth`). The token
/// store fills it from the token entry; the client token itself is taken from the request.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct AuditAuth {
    /// The token's accessor (HMAC'd unless `hmac_accessor = false`).
    pub accessor: String,
    /// `token`, or the login method's display name.
    pub display_name: String,
    /// Every policy that applies.
    pub policies: Vec<String>,
    /// The policies attached to the token itself.
    pub token_policies: Vec<String>,
    /// Policies from the identity entity and its groups.
    pub identity_policies: Vec<String>,
    /// Identity policies from other namespaces, by namespace id.
    pub external_namespace_policies: BTreeMap<String, Vec<String>>,
    /// Whether the `default` policy was left out.
    pub no_default_policy: bool,
    /// What the ACL check decided, when it ran.
    pub policy_results: Option<PolicyResults>,
    /// Token metadata (logged in clear, as OpenBao does).
    pub metadata: BTreeMap<String, String>,
    /// Uses left on a limited-use token (0 = unlimited).
    pub remaining_uses: u64,
    /// The identity entity id.
    pub entity_id: String,
    /// Whether this request created the entity.
    pub entity_created: bool,
    /// `service` or `batch` (`default` when empty).
    pub token_type: String,
    /// The token's TTL in seconds (0 = none, as for root).
    pub token_ttl: u64,
    /// When the token was issued.
    pub token_issue_time: Option<OffsetDateTime>,
}

impl fmt::Debug for AuditAuth {
    // The accessor is as sensitive as the token for some uses: never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditAuth")
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .field("token_type", &self.token_type)
            .finish_non_exhaustive()
    }
}

/// The result of the ACL check (`policy_results`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PolicyResults {
    /// Whether the request was allowed.
    pub allowed: bool,
    /// The policies that granted it.
    pub granting_policies: Vec<GrantingPolicy>,
}

/// One policy in `policy_results.granting_policies`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GrantingPolicy {
    /// The policy name.
    pub name: String,
    /// Its namespace id (`root`).
    pub namespace_id: String,
    /// Its namespace path ("" for root).
    pub namespace_path: String,
    /// `acl`.
    pub policy_type: String,
}

/// Everything an audit entry is built from; the pipeline fills what it knows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuditInput<'a> {
    /// The request (path, operation, data, client token, remote address, wrap TTL, id).
    pub request: &'a Request,
    /// The token that made it, once resolved (`None` gives `"auth":{"token_type":"default"}`).
    pub auth: Option<&'a AuditAuth>,
    /// The mount serving the path (`mount_point`, `mount_type`, `mount_accessor`).
    pub mount: Option<&'a MountEntry>,
    /// The response (response entries only).
    pub response: Option<&'a Response>,
    /// The error the call failed with, if it did.
    pub error: Option<&'a Error>,
    /// The caller's port, when known.
    pub remote_port: Option<u16>,
    /// The client id (activity counting), when known.
    pub client_id: Option<&'a str>,
    /// Request data keys logged in clear (the mount's `audit_non_hmac_request_keys`).
    pub non_hmac_request_keys: &'a [String],
    /// Response data keys logged in clear (the mount's `audit_non_hmac_response_keys`).
    pub non_hmac_response_keys: &'a [String],
}

impl<'a> AuditInput<'a> {
    /// An input with only the request.
    pub(crate) fn new(request: &'a Request) -> AuditInput<'a> {
        AuditInput {
            request,
            auth: None,
            mount: None,
            response: None,
            error: None,
            remote_port: None,
            client_id: None,
            non_hmac_request_keys: &[],
            non_hmac_response_keys: &[],
        }
    }

    /// Set the resolved token.
    pub(crate) fn with_auth(mut self, auth: &'a AuditAuth) -> AuditInput<'a> {
        self.auth = Some(auth);
        self
    }

    /// Set the mount.
    pub(crate) fn with_mount(mut self, mount: &'a MountEntry) -> AuditInput<'a> {
        self.mount = Some(mount);
        self
    }

    /// Set the response.
    pub(crate) fn with_response(mut self, response: &'a Response) -> AuditInput<'a> {
        self.response = Some(response);
        self
    }

    /// Set the error.
    pub(crate) fn with_error(mut self, error: &'a Error) -> AuditInput<'a> {
        self.error = Some(error);
        self
    }
}

/// Which line to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// Before the request runs.
    Request,
    /// After it ran (or failed).
    Response,
}

impl EntryKind {
    /// `request` or `response` (the entry's `type`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EntryKind::Request => "request",
            EntryKind::Response => "response",
        }
    }
}

/// Turns secret strings into HMACs, or leaves them in clear for `log_raw`.
#[derive(Clone, Copy)]
struct Hasher<'a> {
    salt: Option<&'a Salt>,
    hmac_accessor: bool,
}

impl Hasher<'_> {
    /// A token or other secret.
    fn secret(&self, value: &str) -> String {
        match self.salt {
            Some(salt) => salt.hmac(value),
            None => value.to_string(),
        }
    }

    /// An accessor: HMAC'd only with `hmac_accessor`.
    fn accessor(&self, value: &str) -> String {
        if self.hmac_accessor {
            self.secret(value)
        } else {
            value.to_string()
        }
    }

    /// A string inside request or response data.
    fn data_string(&self, value: &str, key: Option<&str>, clear_keys: &[String]) -> String {
        let Some(salt) = self.salt else {
            return value.to_string();
        };
        // OpenBao leaves anything that parses as a time in clear (`created_time`), and keys
        // the mount lists in `audit_non_hmac_*_keys`.
        if is_rfc3339(value) || key.is_some_and(|k| clear_keys.iter().any(|c| c == k)) {
            return value.to_string();
        }
        salt.hmac(value)
    }

    /// A copy of `data` with every string value hashed and map keys sorted as Go sorts them.
    fn data(&self, data: &Data, clear_keys: &[String]) -> Map<String, Value> {
        let mut keys: Vec<&String> = data.keys().collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|k| {
                let v = data.get(k)?;
                Some((k.clone(), self.value(v, Some(k), clear_keys)))
            })
            .collect()
    }

    fn value(&self, v: &Value, key: Option<&str>, clear_keys: &[String]) -> Value {
        match v {
            Value::String(s) => Value::String(self.data_string(s, key, clear_keys)),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.value(i, key, clear_keys))
                    .collect(),
            ),
            Value::Object(m) => Value::Object(self.data(m, clear_keys)),
            other => other.clone(),
        }
    }
}

/// Whether `s` is a timestamp Go's `time.Time.UnmarshalText` accepts (RFC 3339 with an upper-case
/// `T` and `Z`, which the `time` crate's parser does not insist on).
fn is_rfc3339(s: &str) -> bool {
    s.as_bytes().get(10) == Some(&b'T')
        && !s.ends_with('z')
        && crate::clock::parse_rfc3339(s).is_some()
}

/// A JSON object that leaves out empty values, like Go's `omitempty`.
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Obj {
        Obj(Map::new())
    }

    fn str(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.0.insert(key.into(), Value::String(value.to_string()));
        }
    }

    fn string(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.insert(key.into(), Value::String(value));
        }
    }

    fn uint(&mut self, key: &str, value: u64) {
        if value != 0 {
            self.0.insert(key.into(), Value::from(value));
        }
    }

    fn flag(&mut self, key: &str, value: bool) {
        if value {
            self.0.insert(key.into(), Value::Bool(true));
        }
    }

    fn list(&mut self, key: &str, value: &[String]) {
        if !value.is_empty() {
            self.0.insert(key.into(), Value::from(value.to_vec()));
        }
    }

    fn map(&mut self, key: &str, value: Map<String, Value>) {
        if !value.is_empty() {
            self.0.insert(key.into(), Value::Object(value));
        }
    }

    fn value(&mut self, key: &str, value: Value) {
        self.0.insert(key.into(), value);
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// Build one line (prefix, JSON, newline) for a device. `salt` is required unless the device
/// logs raw; `time` is the entry time (RFC 3339, nanoseconds).
pub(crate) fn format_entry(
    kind: EntryKind,
    input: &AuditInput<'_>,
    opts: &FormatOptions,
    salt: Option<&Salt>,
    time: &str,
) -> Result<Vec<u8>> {
    let salt = if opts.log_raw {
        None
    } else {
        Some(salt.ok_or_else(|| Error::internal("the audit salt is not loaded"))?)
    };
    let h = Hasher {
        salt,
        hmac_accessor: opts.hmac_accessor,
    };
    let mut entry = Obj::new();
    entry.str("time", time);
    entry.str("type", kind.as_str());
    entry.value("auth", entry_auth(input, kind, &h));
    entry.value("request", request_object(input, &h));
    if kind == EntryKind::Response {
        entry.value("response", response_object(input, opts, &h));
    }
    if let Some(err) = input.error {
        entry.string("error", error_text(kind, err));
    }
    let json = serde_json::to_string(&entry.done())
        .map_err(|e| Error::internal("cannot encode an audit entry").with_source(e))?;
    let json = go_escape(json);
    let mut line = Vec::with_capacity(opts.prefix.len() + json.len() + 1);
    line.extend_from_slice(opts.prefix.as_bytes());
    line.extend_from_slice(json.as_bytes());
    line.push(b'\n');
    Ok(line)
}

/// The top-level `error`. OpenBao's pipeline reports a failed call's response entry with
/// go-multierror's text (`1 error occurred:\n\t* permission denied\n\n`); the request entry
/// carries the plain message.
fn error_text(kind: EntryKind, err: &Error) -> String {
    let msg = err.message();
    match kind {
        EntryKind::Request => msg.to_string(),
        EntryKind::Response if msg.starts_with("1 error occurred:") => msg.to_string(),
        EntryKind::Response => format!("1 error occurred:\n\t* {msg}\n\n"),
    }
}

/// The entry-level `auth`: the token that made the request.
fn entry_auth(input: &AuditInput<'_>, kind: EntryKind, h: &Hasher<'_>) -> Value {
    let mut o = Obj::new();
    let Some(a) = input.auth else {
        o.str("token_type", "default");
        return o.done();
    };
    let token = input.request.token_str();
    if !token.is_empty() {
        o.string("client_token", h.secret(token));
    }
    if !a.accessor.is_empty() {
        o.string("accessor", h.accessor(&a.accessor));
    }
    o.str("display_name", &a.display_name);
    o.list("policies", &a.policies);
    o.list("token_policies", &a.token_policies);
    o.list("identity_policies", &a.identity_policies);
    o.map(
        "external_namespace_policies",
        a.external_namespace_policies
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect(),
    );
    o.flag("no_default_policy", a.no_default_policy);
    if let Some(results) = &a.policy_results {
        o.value("policy_results", policy_results(results));
    }
    o.map("metadata", string_map(&a.metadata));
    o.uint("remaining_uses", a.remaining_uses);
    o.str("entity_id", &a.entity_id);
    if kind == EntryKind::Response {
        o.flag("entity_created", a.entity_created);
    }
    o.str("token_type", token_type(&a.token_type));
    o.uint("token_ttl", a.token_ttl);
    if let Some(t) = a.token_issue_time {
        o.string("token_issue_time", rfc3339_seconds(t));
    }
    o.done()
}

fn policy_results(r: &PolicyResults) -> Value {
    let mut o = Obj::new();
    o.value("allowed", Value::Bool(r.allowed));
    if !r.granting_policies.is_empty() {
        let list = r
            .granting_policies
            .iter()
            .map(|p| {
                let mut g = Obj::new();
                g.str("name", &p.name);
                g.str("namespace_id", &p.namespace_id);
                g.str("namespace_path", &p.namespace_path);
                g.value("type", Value::String(p.policy_type.clone()));
                g.done()
            })
            .collect();
        o.value("granting_policies", Value::Array(list));
    }
    o.done()
}

fn string_map(m: &BTreeMap<String, String>) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// Go prints an unset token type as `default`.
fn token_type(t: &str) -> &str {
    if t.is_empty() { "default" } else { t }
}

/// Go's `time.RFC3339`: whole seconds.
fn rfc3339_seconds(t: OffsetDateTime) -> String {
    crate::clock::rfc3339(t.replace_nanosecond(0).unwrap_or(t))
}

/// `secret/` → `secret`, `auth/userpass/` → `auth`.
fn mount_class(mount: &MountEntry) -> &'static str {
    if mount.path.starts_with("auth/") {
        "auth"
    } else {
        "secret"
    }
}

fn running_version() -> String {
    format!("v{BAO_VERSION}+builtin.bao")
}

fn request_object(input: &AuditInput<'_>, h: &Hasher<'_>) -> Value {
    let req = input.request;
    let mut o = Obj::new();
    o.str("id", &req.id);
    o.str("client_id", input.client_id.unwrap_or(""));
    o.str("operation", req.operation.as_str());
    if let Some(m) = input.mount {
        o.str("mount_point", &m.path);
        o.str("mount_type", &m.kind);
        o.str("mount_accessor", &m.accessor);
        o.string("mount_running_version", running_version());
        o.str("mount_class", mount_class(m));
    }
    let token = req.token_str();
    if !token.is_empty() {
        o.string("client_token", h.secret(token));
    }
    if let Some(accessor) = input.auth.map(|a| a.accessor.as_str()) {
        if !accessor.is_empty() {
            o.string("client_token_accessor", h.accessor(accessor));
        }
    }
    let mut ns = Obj::new();
    ns.str("id", "root");
    o.value("namespace", ns.done());
    o.str("path", &req.path);
    o.map("data", h.data(&req.data, input.non_hmac_request_keys));
    if let Some(addr) = req.remote_addr {
        o.string("remote_address", addr.to_string());
    }
    o.uint("remote_port", input.remote_port.map(u64::from).unwrap_or(0));
    o.uint("wrap_ttl", req.wrap_ttl.map(|d| d.as_secs()).unwrap_or(0));
    o.done()
}

fn response_object(input: &AuditInput<'_>, opts: &FormatOptions, h: &Hasher<'_>) -> Value {
    let mut o = Obj::new();
    let resp = input.response;
    if let Some(auth) = resp.and_then(|r| r.auth.as_ref()) {
        o.value("auth", response_auth(auth, h));
    }
    if let Some(m) = input.mount {
        o.str("mount_point", &m.path);
        o.str("mount_type", &m.kind);
        o.str("mount_accessor", &m.accessor);
        o.string("mount_running_plugin_version", running_version());
        o.str("mount_class", mount_class(m));
    }
    if let Some(r) = resp.filter(|r| !r.lease_id.is_empty()) {
        let mut secret = Obj::new();
        secret.str("lease_id", &r.lease_id);
        o.value("secret", secret.done());
    }
    let error_data;
    let data = match (resp.and_then(|r| r.data.as_ref()), input.error) {
        (Some(d), _) => Some(d),
        // A failed call's response is OpenBao's error response: `{"error": "<message>"}`.
        (None, Some(err)) => {
            error_data = crate::data(serde_json::json!({ "error": err.message() }));
            Some(&error_data)
        }
        (None, None) => None,
    };
    if let Some(data) = data {
        let elide = opts.elide_list_responses && input.request.operation == Operation::List;
        let mut data = h.data(data, input.non_hmac_response_keys);
        if elide {
            elide_list_data(&mut data);
        }
        o.map("data", data);
    }
    if let Some(r) = resp {
        o.list("warnings", &r.warnings);
        if let Some(w) = &r.wrap_info {
            o.value("wrap_info", wrap_info(w, h));
        }
    }
    o.done()
}

/// `keys` → their count, `key_info` → its size (`elide_list_responses`). Counts are numbers, so
/// eliding after hashing gives the same line as OpenBao's elide-then-hash.
fn elide_list_data(data: &mut Map<String, Value>) {
    for (k, v) in data.iter_mut() {
        match (k.as_str(), &*v) {
            ("keys", Value::Array(items)) => *v = Value::from(items.len()),
            ("key_info", Value::Object(m)) => *v = Value::from(m.len()),
            _ => {}
        }
    }
}

/// `response.auth`: the token a login or token creation produced.
fn response_auth(a: &Auth, h: &Hasher<'_>) -> Value {
    let mut o = Obj::new();
    if !a.client_token.is_empty() {
        o.string("client_token", h.secret(&a.client_token));
    }
    if !a.accessor.is_empty() {
        o.string("accessor", h.accessor(&a.accessor));
    }
    o.list("policies", &a.policies);
    o.list("token_policies", &a.token_policies);
    o.map("metadata", string_map(&a.metadata));
    o.uint("num_uses", a.num_uses);
    o.str("entity_id", &a.entity_id);
    o.str("token_type", token_type(&a.token_type));
    o.uint("token_ttl", a.lease_duration);
    o.done()
}

/// `response.wrap_info`. As in OpenBao, the token is always HMAC'd (even when empty), the
/// accessor too with `hmac_accessor`, the wrapped accessor only when set.
fn wrap_info(w: &WrapInfo, h: &Hasher<'_>) -> Value {
    let mut o = Obj::new();
    o.uint("ttl", w.ttl);
    o.string("token", h.secret(&w.token));
    o.string("accessor", h.accessor(&w.accessor));
    o.str("creation_time", &w.creation_time);
    o.str("creation_path", &w.creation_path);
    if !w.wrapped_accessor.is_empty() {
        o.string("wrapped_accessor", h.accessor(&w.wrapped_accessor));
    }
    o.done()
}

/// Escape what Go's `json.Encoder` escapes and serde_json does not. These characters can only
/// occur inside JSON strings, so replacing them in the encoded text is safe.
fn go_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::WrapInfo;
    use serde_json::json;

    const TIME: &str = "2026-11-27T21:38:09.90673781Z";

    fn salt() -> Salt {
        Salt::new(b"0d4a6a4e-9a4c-4c59-a3c5-3c0a3f3e1e11")
    }

    fn line(kind: EntryKind, input: &AuditInput<'_>, opts: &FormatOptions) -> String {
        let s = salt();
        let bytes = format_entry(kind, input, opts, Some(&s), TIME).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    fn kv_mount() -> MountEntry {
        let mut m = MountEntry::new("secret/", "kv");
        m.accessor = "kv_07fa259c".into();
        m
    }

    fn root_auth() -> AuditAuth {
        AuditAuth {
            accessor: "Qm9vbXNDb3VudGVyMTIzNDU2".into(),
            display_name: "token".into(),
            policies: vec!["root".into()],
            token_policies: vec!["root".into()],
            policy_results: Some(PolicyResults {
                allowed: true,
                granting_policies: vec![GrantingPolicy {
                    name: "root".into(),
                    namespace_id: "root".into(),
                    namespace_path: String::new(),
                    policy_type: "acl".into(),
                }],
            }),
            token_type: "service".into(),
            token_issue_time: crate::clock::parse_rfc3339("2026-11-27T21:38:02.5Z"),
            ..AuditAuth::default()
        }
    }

    fn kv_write() -> Request {
        let mut req = Request::new(Operation::Create, "secret/data/audtest")
            .with_token("s.XbRt2bqKuWbM6wS0qLkRrFDN")
            .with_data(crate::data(json!({
                "data": {"password": "s3cret", "b": true, "n": 5}
            })));
        req.id = "88c5c9b8-1f9e-2c5e-7a1b-4b0e7f0f7c3e".into();
        req.remote_addr = Some("127.0.0.1".parse().unwrap());
        req
    }

    /// The request and response entries of §8's example: same keys, same order, same nesting,
    /// hashed where OpenBao hashes.
    #[test]
    fn golden_request_and_response_entries() {
        let s = salt();
        let req = kv_write();
        let auth = root_auth();
        let mount = kv_mount();
        let resp = Response::with_data(crate::data(json!({
            "version": 1,
            "created_time": "2026-11-27T21:38:09.906927794Z",
            "deletion_time": "",
            "destroyed": false,
            "custom_metadata": null,
        })));
        let mut input = AuditInput::new(&req).with_auth(&auth).with_mount(&mount);
        input.remote_port = Some(38592);
        input.client_id = Some("0DHqvq1o5yJbhhBpMmvtDhYB7Rqh3hGr1L3/5kCGRCo=");
        let opts = FormatOptions::default();

        let token_h = s.hmac("s.XbRt2bqKuWbM6wS0qLkRrFDN");
        let accessor_h = s.hmac("Qm9vbXNDb3VudGVyMTIzNDU2");
        let auth_json = json!({
            "client_token": token_h, "accessor": accessor_h, "display_name": "token",
            "policies": ["root"], "token_policies": ["root"],
            "policy_results": {"allowed": true, "granting_policies": [
                {"name": "root", "namespace_id": "root", "type": "acl"}]},
            "token_type": "service", "token_issue_time": "2026-11-27T21:38:02Z"
        });
        let request_json = json!({
            "id": "88c5c9b8-1f9e-2c5e-7a1b-4b0e7f0f7c3e",
            "client_id": "0DHqvq1o5yJbhhBpMmvtDhYB7Rqh3hGr1L3/5kCGRCo=",
            "operation": "create", "mount_point": "secret/", "mount_type": "kv",
            "mount_accessor": "kv_07fa259c", "mount_running_version": "v2.7.2+builtin.bao",
            "mount_class": "secret", "client_token": token_h, "client_token_accessor": accessor_h,
            "namespace": {"id": "root"}, "path": "secret/data/audtest",
            "data": {"data": {"b": true, "n": 5, "password": s.hmac("s3cret")}},
            "remote_address": "127.0.0.1", "remote_port": 38592
        });
        let expected_request = json!({
            "time": TIME, "type": "request", "auth": auth_json, "request": request_json
        });
        assert_eq!(
            line(EntryKind::Request, &input, &opts),
            format!("{}\n", serde_json::to_string(&expected_request).unwrap())
        );

        let input = input.with_response(&resp);
        let expected_response = json!({
            "time": TIME, "type": "response", "auth": auth_json, "request": request_json,
            "response": {
                "mount_point": "secret/", "mount_type": "kv", "mount_accessor": "kv_07fa259c",
                "mount_running_plugin_version": "v2.7.2+builtin.bao", "mount_class": "secret",
                "data": {
                    "created_time": "2026-11-27T21:38:09.906927794Z", "custom_metadata": null,
                    "deletion_time": s.hmac(""), "destroyed": false, "version": 1
                }
            }
        });
        assert_eq!(
            line(EntryKind::Response, &input, &opts),
            format!("{}\n", serde_json::to_string(&expected_response).unwrap())
        );
    }

    #[test]
    fn failed_request_logs_default_auth_and_errors_in_clear() {
        let s = salt();
        let mut req = Request::read("secret/data/x").with_token("s.bad");
        req.id = "id-1".into();
        let err = Error::permission_denied();
        let input = AuditInput::new(&req).with_error(&err);
        let opts = FormatOptions::default();
        let request_line: Value =
            serde_json::from_str(&line(EntryKind::Request, &input, &opts)).unwrap();
        assert_eq!(request_line["auth"], json!({"token_type": "default"}));
        assert_eq!(request_line["error"], "permission denied");
        assert_eq!(request_line["request"]["client_token"], s.hmac("s.bad"));
        let response_line: Value =
            serde_json::from_str(&line(EntryKind::Response, &input, &opts)).unwrap();
        assert_eq!(
            response_line["response"],
            json!({"data": {"error": s.hmac("permission denied")}})
        );
        assert_eq!(
            response_line["error"],
            "1 error occurred:\n\t* permission denied\n\n"
        );
        // Already in multierror form: not wrapped twice.
        let err = Error::unsupported_operation();
        let input = AuditInput::new(&req).with_error(&err);
        let v: Value = serde_json::from_str(&line(EntryKind::Response, &input, &opts)).unwrap();
        assert_eq!(
            v["error"],
            "1 error occurred:\n\t* unsupported operation\n\n"
        );
    }

    #[test]
    fn every_data_string_is_hashed_except_times_and_keys() {
        let s = salt();
        let req = Request::write(
            "kv/x",
            crate::data(json!({
                "list": ["a", 1, ["b", {"c": "d"}], null],
                "when": "2024-01-02T03:04:05Z",
                "offset": "2024-01-02T03:04:05.123+01:00",
                "lower": "2024-01-02t03:04:05z",
                "date_only": "2024-01-02",
                "empty": "",
                "nested": {"z": "y", "a": {"deep": "secret"}},
            })),
        );
        let input = AuditInput::new(&req);
        let v: Value =
            serde_json::from_str(&line(EntryKind::Request, &input, &FormatOptions::default()))
                .unwrap();
        assert_eq!(
            v["request"]["data"],
            json!({
                "date_only": s.hmac("2024-01-02"),
                "empty": s.hmac(""),
                "list": [s.hmac("a"), 1, [s.hmac("b"), {"c": s.hmac("d")}], null],
                "lower": s.hmac("2024-01-02t03:04:05z"),
                "nested": {"a": {"deep": s.hmac("secret")}, "z": s.hmac("y")},
                "offset": "2024-01-02T03:04:05.123+01:00",
                "when": "2024-01-02T03:04:05Z",
            })
        );
        // Keys come out sorted, as Go prints maps.
        let text = line(EntryKind::Request, &input, &FormatOptions::default());
        let data_at = text.find("\"data\":{").unwrap();
        let order: Vec<usize> = ["\"date_only\"", "\"empty\"", "\"list\"", "\"when\""]
            .iter()
            .map(|k| text[data_at..].find(k).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn non_hmac_keys_apply_to_the_nearest_map_key() {
        let s = salt();
        let req = Request::write(
            "kv/x",
            crate::data(
                json!({"plain": ["a", "b"], "other": "c", "wrap": {"plain": "d", "x": "e"}}),
            ),
        );
        let keys = vec!["plain".to_string()];
        let mut input = AuditInput::new(&req);
        input.non_hmac_request_keys = &keys;
        let v: Value =
            serde_json::from_str(&line(EntryKind::Request, &input, &FormatOptions::default()))
                .unwrap();
        assert_eq!(
            v["request"]["data"],
            json!({"other": s.hmac("c"), "plain": ["a", "b"], "wrap": {"plain": "d", "x": s.hmac("e")}})
        );
    }

    #[test]
    fn log_raw_keeps_everything_in_clear_and_needs_no_salt() {
        let req = kv_write();
        let auth = root_auth();
        let input = AuditInput::new(&req).with_auth(&auth);
        let opts = FormatOptions {
            log_raw: true,
            ..FormatOptions::default()
        };
        let text =
            String::from_utf8(format_entry(EntryKind::Request, &input, &opts, None, TIME).unwrap())
                .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["auth"]["client_token"], "s.XbRt2bqKuWbM6wS0qLkRrFDN");
        assert_eq!(
            v["request"]["client_token_accessor"],
            "Qm9vbXNDb3VudGVyMTIzNDU2"
        );
        assert_eq!(v["request"]["data"]["data"]["password"], "s3cret");
        assert!(!text.contains("hmac-sha256:"));
        // Without log_raw, a missing salt is an error rather than a line in clear.
        let err = format_entry(
            EntryKind::Request,
            &input,
            &FormatOptions::default(),
            None,
            TIME,
        )
        .unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::Internal);
    }

    #[test]
    fn hmac_accessor_false_leaves_accessors_in_clear() {
        let s = salt();
        let req = kv_write();
        let auth = root_auth();
        let resp = Response {
            auth: Some(Auth {
                client_token: "s.new".into(),
                accessor: "newacc".into(),
                policies: vec!["default".into()],
                lease_duration: 3600,
                num_uses: 2,
                ..Auth::default()
            }),
            wrap_info: Some(WrapInfo {
                token: "s.wrap".into(),
                accessor: "wrapacc".into(),
                ttl: 60,
                creation_time: "2026-11-27T21:38:09Z".into(),
                creation_path: "sys/wrapping/wrap".into(),
                wrapped_accessor: "inner".into(),
            }),
            ..Response::default()
        };
        let input = AuditInput::new(&req).with_auth(&auth).with_response(&resp);
        let opts = FormatOptions {
            hmac_accessor: false,
            ..FormatOptions::default()
        };
        let v: Value = serde_json::from_str(&line(EntryKind::Response, &input, &opts)).unwrap();
        assert_eq!(v["auth"]["accessor"], "Qm9vbXNDb3VudGVyMTIzNDU2");
        assert_eq!(
            v["request"]["client_token_accessor"],
            "Qm9vbXNDb3VudGVyMTIzNDU2"
        );
        assert_eq!(
            v["auth"]["client_token"],
            s.hmac("s.XbRt2bqKuWbM6wS0qLkRrFDN")
        );
        assert_eq!(
            v["response"]["auth"],
            json!({"client_token": s.hmac("s.new"), "accessor": "newacc",
                   "policies": ["default"], "num_uses": 2, "token_type": "default", "token_ttl": 3600})
        );
        assert_eq!(
            v["response"]["wrap_info"],
            json!({"ttl": 60, "token": s.hmac("s.wrap"), "accessor": "wrapacc",
                   "creation_time": "2026-11-27T21:38:09Z", "creation_path": "sys/wrapping/wrap",
                   "wrapped_accessor": "inner"})
        );
        // With the default, every accessor is hashed.
        let v: Value = serde_json::from_str(&line(
            EntryKind::Response,
            &input,
            &FormatOptions::default(),
        ))
        .unwrap();
        assert_eq!(v["response"]["auth"]["accessor"], s.hmac("newacc"));
        assert_eq!(v["response"]["wrap_info"]["accessor"], s.hmac("wrapacc"));
        assert_eq!(
            v["response"]["wrap_info"]["wrapped_accessor"],
            s.hmac("inner")
        );
    }

    #[test]
    fn prefix_and_go_escaping() {
        let mut req = Request::write("kv/a<b>&c", Data::new());
        req.id = "x".into();
        let opts = FormatOptions {
            prefix: "@cee: ".into(),
            ..FormatOptions::default()
        };
        let text = line(EntryKind::Request, &AuditInput::new(&req), &opts);
        assert!(text.starts_with("@cee: {\"time\":"), "{text}");
        assert!(text.ends_with("}\n"));
        assert_eq!(text.matches('\n').count(), 1);
        assert!(
            text.contains(r#""path":"kv/a\u003cb\u003e\u0026c""#),
            "{text}"
        );
        let v: Value = serde_json::from_str(text.trim_start_matches("@cee: ")).unwrap();
        assert_eq!(v["request"]["path"], "kv/a<b>&c");
    }

    #[test]
    fn elide_list_responses_counts_keys() {
        let req = Request::list("kv/");
        let resp = Response::with_data(crate::data(json!({
            "keys": ["a", "b", "c"], "key_info": {"a": {}, "b": {}}
        })));
        let input = AuditInput::new(&req).with_response(&resp);
        let opts = FormatOptions {
            elide_list_responses: true,
            ..FormatOptions::default()
        };
        let v: Value = serde_json::from_str(&line(EntryKind::Response, &input, &opts)).unwrap();
        assert_eq!(v["response"]["data"], json!({"key_info": 2, "keys": 3}));
        let raw = FormatOptions {
            log_raw: true,
            ..opts.clone()
        };
        let v: Value = serde_json::from_str(&line(EntryKind::Response, &input, &raw)).unwrap();
        assert_eq!(v["response"]["data"], json!({"key_info": 2, "keys": 3}));
        // Only LIST responses are elided.
        let read = Request::read("kv/x");
        let input = AuditInput::new(&read).with_response(&resp);
        let v: Value = serde_json::from_str(&line(EntryKind::Response, &input, &raw)).unwrap();
        assert_eq!(v["response"]["data"]["keys"], json!(["a", "b", "c"]));
    }

    #[test]
    fn empty_response_and_lease_and_wrap_ttl() {
        let mut req = Request::read("kv/x");
        req.wrap_ttl = Some(std::time::Duration::from_secs(300));
        let resp = Response {
            lease_id: "kv/x/abc".into(),
            warnings: vec!["careful".into()],
            ..Response::default()
        };
        let v: Value = serde_json::from_str(&line(
            EntryKind::Response,
            &AuditInput::new(&req).with_response(&resp),
            &FormatOptions::default(),
        ))
        .unwrap();
        assert_eq!(v["request"]["wrap_ttl"], 300);
        assert_eq!(
            v["response"],
            json!({"secret": {"lease_id": "kv/x/abc"}, "warnings": ["careful"]})
        );
        let v: Value = serde_json::from_str(&line(
            EntryKind::Response,
            &AuditInput::new(&req),
            &FormatOptions::default(),
        ))
        .unwrap();
        assert_eq!(v["response"], json!({}));
        assert!(v.get("error").is_none());
    }
}
