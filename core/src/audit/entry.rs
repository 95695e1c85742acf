//! Audit entries in OpenBao's JSON shape (`internal/audit/format.go`): what goes in
//! ([`AuditInput`], [`AuditAuth`]), and the request and response lines each device writes,
//! with secrets replaced by their HMAC (`hashstructure.go`).
//!
//! Keys come out in OpenBao's order (its structs' field order; maps sorted, as Go sorts them),
//! empty values are omitted as Go's `omitempty` omits them, and `<`, `>`, `&`, U+2028 and U+2029
//! are escaped as Go's JSON encoder escapes them, so lines compare byte for byte.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::ExposeSecret;
use serde_json::Value;
use time::OffsetDateTime;

use super::config::FormatOptions;
use super::json::{self, Fields};
use super::salt::Salt;
use crate::error::{Error, Result};
use crate::request::{Auth, Data, Operation, Request, Response, WrapInfo};
use crate::router::MountEntry;

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
    /// Per-call scratch shared by the request and response entries of one call, so the
    /// response entry copies the `auth` and `request` parts the request entry already built.
    pub memo: Option<&'a AuditMemo>,
}

/// The `"auth":{...},"request":{...}` part of each device's request entry, kept for the
/// response entry of the same call (it is the same text). Keyed by device identity, so a
/// device enabled or disabled in between is never confused with another.
#[derive(Debug, Default)]
pub(crate) struct AuditMemo {
    parts: std::sync::Mutex<Vec<(usize, Vec<u8>)>>,
}

impl AuditMemo {
    /// Take the part kept for `device` (the response entry is its last use).
    pub(crate) fn take(&self, device: usize) -> Option<Vec<u8>> {
        let mut parts = self.parts.lock().ok()?;
        let at = parts.iter().position(|(d, _)| *d == device)?;
        Some(parts.swap_remove(at).1)
    }

    /// Keep `part` for `device`.
    pub(crate) fn put(&self, device: usize, part: &[u8]) {
        if let Ok(mut parts) = self.parts.lock() {
            parts.retain(|(d, _)| *d != device);
            parts.push((device, part.to_vec()));
        }
    }
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
            memo: None,
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

    /// Share `memo` between this call's request and response entries.
    pub(crate) fn with_memo(mut self, memo: &'a AuditMemo) -> AuditInput<'a> {
        self.memo = Some(memo);
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

/// A secret as it goes into a line: its HMAC (hex, computed once even when the line shows it
/// twice) or, for `log_raw`, itself.
enum Shown<'a> {
    Hmac([u8; 64]),
    Clear(&'a str),
}

impl Shown<'_> {
    fn write(&self, buf: &mut Vec<u8>) {
        match self {
            Shown::Hmac(hex) => write_hmac_hex(buf, hex),
            Shown::Clear(s) => json::string(buf, s),
        }
    }
}

/// `"hmac-sha256:<hex>"`, quoted.
fn write_hmac_hex(buf: &mut Vec<u8>, hex: &[u8; 64]) {
    buf.extend_from_slice(b"\"hmac-sha256:");
    buf.extend_from_slice(hex);
    buf.push(b'"');
}

/// Turns secret strings into HMACs, or leaves them in clear for `log_raw`.
#[derive(Clone, Copy)]
struct Hasher<'a> {
    salt: Option<&'a Salt>,
    hmac_accessor: bool,
}

impl Hasher<'_> {
    /// A token or other secret, to be written (maybe more than once).
    fn secret<'v>(&self, value: &'v str) -> Shown<'v> {
        match self.salt {
            Some(salt) => Shown::Hmac(salt.hmac_hex(value.as_bytes())),
            None => Shown::Clear(value),
        }
    }

    /// An accessor: HMAC'd only with `hmac_accessor`.
    fn accessor<'v>(&self, value: &'v str) -> Shown<'v> {
        if self.hmac_accessor {
            self.secret(value)
        } else {
            Shown::Clear(value)
        }
    }

    /// Write a string inside request or response data.
    fn data_string(
        &self,
        buf: &mut Vec<u8>,
        value: &str,
        key: Option<&str>,
        clear_keys: &[String],
    ) {
        let Some(salt) = self.salt else {
            return json::string(buf, value);
        };
        // OpenBao leaves anything that parses as a time in clear (`created_time`), and keys
        // the mount lists in `audit_non_hmac_*_keys`.
        if is_rfc3339(value) || key.is_some_and(|k| clear_keys.iter().any(|c| c == k)) {
            return json::string(buf, value);
        }
        write_hmac_hex(buf, &salt.hmac_hex(value.as_bytes()));
    }

    /// Write `data` with every string value hashed and map keys sorted as Go sorts them;
    /// `elide` replaces `keys` and `key_info` with their sizes (`elide_list_responses`).
    fn data(&self, buf: &mut Vec<u8>, data: &Data, clear_keys: &[String], elide: bool) {
        let mut entries: Vec<(&String, &Value)> = data.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut o = Fields::open(buf);
        for (k, v) in entries {
            o.key(buf, k);
            match (elide, k.as_str(), v) {
                (true, "keys", Value::Array(items)) => json::uint(buf, len_u64(items.len())),
                (true, "key_info", Value::Object(m)) => json::uint(buf, len_u64(m.len())),
                _ => self.value(buf, v, Some(k), clear_keys),
            }
        }
        o.close(buf);
    }

    fn value(&self, buf: &mut Vec<u8>, v: &Value, key: Option<&str>, clear_keys: &[String]) {
        match v {
            Value::String(s) => self.data_string(buf, s, key, clear_keys),
            Value::Array(items) => {
                buf.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    self.value(buf, item, key, clear_keys);
                }
                buf.push(b']');
            }
            Value::Object(m) => self.data(buf, m, clear_keys, false),
            other => json::value(buf, other),
        }
    }
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Whether `s` is a timestamp Go's `time.Time.UnmarshalText` accepts (RFC 3339 with an upper-case
/// `T` and `Z`, which the `time` crate's parser does not insist on).
fn is_rfc3339(s: &str) -> bool {
    s.as_bytes().get(10) == Some(&b'T')
        && !s.ends_with('z')
        && crate::clock::parse_rfc3339(s).is_some()
}

/// Build one line (prefix, JSON, newline) for a device. `salt` is required unless the device
/// logs raw; `time` is the entry time (RFC 3339, nanoseconds).
#[cfg(test)]
pub(crate) fn format_entry(
    kind: EntryKind,
    input: &AuditInput<'_>,
    opts: &FormatOptions,
    salt: Option<&Salt>,
    time: &str,
) -> Result<Vec<u8>> {
    let mut line = Vec::with_capacity(1024);
    write_entry(kind, input, opts, salt, time, &mut line)?;
    Ok(line)
}

/// Append one line (prefix, JSON, newline) for a device to `buf`. `salt` is required unless
/// the device logs raw; `time` is the entry time (RFC 3339, nanoseconds). On error nothing is
/// appended.
#[cfg(test)]
pub(crate) fn write_entry(
    kind: EntryKind,
    input: &AuditInput<'_>,
    opts: &FormatOptions,
    salt: Option<&Salt>,
    time: &str,
    buf: &mut Vec<u8>,
) -> Result<()> {
    write_entry_reusing(kind, input, opts, salt, time, buf, None).map(|_| ())
}

/// [`write_entry`], copying `part` (the `"auth":...,"request":{...}` text of this call's
/// request entry for the same device) instead of building it again. Returns where that part
/// is in `buf`, for the next entry to reuse.
pub(crate) fn write_entry_reusing(
    kind: EntryKind,
    input: &AuditInput<'_>,
    opts: &FormatOptions,
    salt: Option<&Salt>,
    time: &str,
    buf: &mut Vec<u8>,
    part: Option<&[u8]>,
) -> Result<std::ops::Range<usize>> {
    let salt = if opts.log_raw {
        None
    } else {
        Some(salt.ok_or_else(|| Error::internal("the audit salt is not loaded"))?)
    };
    let h = Hasher {
        salt,
        hmac_accessor: opts.hmac_accessor,
    };
    buf.extend_from_slice(opts.prefix.as_bytes());
    let mut e = Fields::open(buf);
    e.str(buf, "time", time);
    e.str(buf, "type", kind.as_str());
    // The response entry's `auth` differs only by `entity_created`.
    let reusable = kind == EntryKind::Request || input.auth.is_none_or(|a| !a.entity_created);
    let start = buf.len();
    match part.filter(|_| reusable) {
        Some(part) => {
            buf.push(b',');
            buf.extend_from_slice(part);
        }
        None => {
            // The token and its accessor each appear twice in a line: hash them once (and
            // once per token, not per request: the salt remembers the last pair).
            let token = input.request.token_str();
            let accessor = input
                .auth
                .map(|a| a.accessor.as_str())
                .filter(|a| !a.is_empty());
            let (token, accessor) = match (h.salt, accessor) {
                (Some(salt), Some(acc)) if !token.is_empty() => {
                    let (t, a) = salt.token_hmacs(token, acc);
                    let a = if h.hmac_accessor {
                        Shown::Hmac(a)
                    } else {
                        Shown::Clear(acc)
                    };
                    (Some(Shown::Hmac(t)), Some(a))
                }
                _ => (
                    (!token.is_empty()).then(|| h.secret(token)),
                    accessor.map(|a| h.accessor(a)),
                ),
            };
            let ids = Ids {
                token: token.as_ref(),
                accessor: accessor.as_ref(),
            };
            e.key(buf, "auth");
            entry_auth(buf, input, kind, &ids);
            e.key(buf, "request");
            request_object(buf, input, &h, &ids);
        }
    }
    // Without the leading comma.
    let part_range = start + 1..buf.len();
    if kind == EntryKind::Response {
        e.key(buf, "response");
        response_object(buf, input, opts, &h);
    }
    if let Some(err) = input.error {
        e.str(buf, "error", &error_text(kind, err));
    }
    e.close(buf);
    buf.push(b'\n');
    Ok(part_range)
}

/// The caller's token and accessor as the line shows them.
struct Ids<'a, 'v> {
    token: Option<&'a Shown<'v>>,
    accessor: Option<&'a Shown<'v>>,
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
fn entry_auth(buf: &mut Vec<u8>, input: &AuditInput<'_>, kind: EntryKind, ids: &Ids<'_, '_>) {
    let mut o = Fields::open(buf);
    let Some(a) = input.auth else {
        o.str(buf, "token_type", "default");
        return o.close(buf);
    };
    if let Some(t) = ids.token {
        o.key(buf, "client_token");
        t.write(buf);
    }
    if let Some(acc) = ids.accessor {
        o.key(buf, "accessor");
        acc.write(buf);
    }
    o.str(buf, "display_name", &a.display_name);
    o.list(buf, "policies", &a.policies);
    o.list(buf, "token_policies", &a.token_policies);
    o.list(buf, "identity_policies", &a.identity_policies);
    if !a.external_namespace_policies.is_empty() {
        o.key(buf, "external_namespace_policies");
        let mut m = Fields::open(buf);
        for (k, v) in &a.external_namespace_policies {
            m.key(buf, k);
            json::strings(buf, v);
        }
        m.close(buf);
    }
    o.flag(buf, "no_default_policy", a.no_default_policy);
    if let Some(results) = &a.policy_results {
        o.key(buf, "policy_results");
        policy_results(buf, results);
    }
    string_map(buf, &mut o, "metadata", &a.metadata);
    o.uint(buf, "remaining_uses", a.remaining_uses);
    o.str(buf, "entity_id", &a.entity_id);
    if kind == EntryKind::Response {
        o.flag(buf, "entity_created", a.entity_created);
    }
    o.str(buf, "token_type", token_type(&a.token_type));
    o.uint(buf, "token_ttl", a.token_ttl);
    if let Some(t) = a.token_issue_time {
        o.str(buf, "token_issue_time", &rfc3339_seconds(t));
    }
    o.close(buf);
}

fn policy_results(buf: &mut Vec<u8>, r: &PolicyResults) {
    let mut o = Fields::open(buf);
    o.key(buf, "allowed");
    buf.extend_from_slice(if r.allowed { b"true" } else { b"false" });
    if !r.granting_policies.is_empty() {
        o.key(buf, "granting_policies");
        buf.push(b'[');
        for (i, p) in r.granting_policies.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let mut g = Fields::open(buf);
            g.str(buf, "name", &p.name);
            g.str(buf, "namespace_id", &p.namespace_id);
            g.str(buf, "namespace_path", &p.namespace_path);
            g.key(buf, "type");
            json::string(buf, &p.policy_type);
            g.close(buf);
        }
        buf.push(b']');
    }
    o.close(buf);
}

/// A map of strings in clear (token metadata), left out when empty.
fn string_map(buf: &mut Vec<u8>, o: &mut Fields, key: &str, m: &BTreeMap<String, String>) {
    if m.is_empty() {
        return;
    }
    o.key(buf, key);
    let mut f = Fields::open(buf);
    for (k, v) in m {
        f.key(buf, k);
        json::string(buf, v);
    }
    f.close(buf);
}

/// Go prints an unset token type as `default`.
fn token_type(t: &str) -> &str {
    if t.is_empty() { "default" } else { t }
}

/// Go's `time.RFC3339`: whole seconds.
fn rfc3339_seconds(t: OffsetDateTime) -> String {
    let mut out = String::with_capacity(20);
    super::time::write_rfc3339_nanos(&mut out, t.replace_nanosecond(0).unwrap_or(t));
    out
}

/// `secret/` → `secret`, `auth/userpass/` → `auth`.
fn mount_class(mount: &MountEntry) -> &'static str {
    if mount.path.starts_with("auth/") {
        "auth"
    } else {
        "secret"
    }
}

/// `v<BAO_VERSION>+builtin.bao` (a test keeps the two in step).
const RUNNING_VERSION: &str = "v2.7.2+builtin.bao";

/// The mount fields of a request (`mount_running_version`) or response
/// (`mount_running_plugin_version`).
fn mount_fields(buf: &mut Vec<u8>, o: &mut Fields, m: &MountEntry, version_key: &str) {
    o.str(buf, "mount_point", &m.path);
    o.str(buf, "mount_type", &m.kind);
    o.str(buf, "mount_accessor", &m.accessor);
    o.str(buf, version_key, RUNNING_VERSION);
    o.str(buf, "mount_class", mount_class(m));
}

fn request_object(buf: &mut Vec<u8>, input: &AuditInput<'_>, h: &Hasher<'_>, ids: &Ids<'_, '_>) {
    let req = input.request;
    let mut o = Fields::open(buf);
    o.str(buf, "id", &req.id);
    o.str(buf, "client_id", input.client_id.unwrap_or(""));
    o.str(buf, "operation", req.operation.as_str());
    if let Some(m) = input.mount {
        mount_fields(buf, &mut o, m, "mount_running_version");
    }
    if let Some(t) = ids.token {
        o.key(buf, "client_token");
        t.write(buf);
    }
    if let Some(acc) = ids.accessor {
        o.key(buf, "client_token_accessor");
        acc.write(buf);
    }
    o.key(buf, "namespace");
    buf.extend_from_slice(br#"{"id":"root"}"#);
    o.str(buf, "path", &req.path);
    if !req.data.is_empty() {
        o.key(buf, "data");
        h.data(buf, &req.data, input.non_hmac_request_keys, false);
    }
    if let Some(addr) = req.remote_addr {
        o.str(buf, "remote_address", &addr.to_string());
    }
    o.uint(
        buf,
        "remote_port",
        input.remote_port.map(u64::from).unwrap_or(0),
    );
    o.uint(
        buf,
        "wrap_ttl",
        req.wrap_ttl.map(|d| d.as_secs()).unwrap_or(0),
    );
    o.close(buf);
}

fn response_object(
    buf: &mut Vec<u8>,
    input: &AuditInput<'_>,
    opts: &FormatOptions,
    h: &Hasher<'_>,
) {
    let mut o = Fields::open(buf);
    let resp = input.response;
    if let Some(auth) = resp.and_then(|r| r.auth.as_ref()) {
        o.key(buf, "auth");
        response_auth(buf, auth, h);
    }
    if let Some(m) = input.mount {
        mount_fields(buf, &mut o, m, "mount_running_plugin_version");
    }
    if let Some(r) = resp.filter(|r| !r.lease_id.is_empty()) {
        o.key(buf, "secret");
        let mut secret = Fields::open(buf);
        secret.str(buf, "lease_id", &r.lease_id);
        secret.close(buf);
    }
    let keys = input.non_hmac_response_keys;
    match (resp.and_then(|r| r.data.as_ref()), input.error) {
        (Some(data), _) if !data.is_empty() => {
            let elide = opts.elide_list_responses && input.request.operation == Operation::List;
            o.key(buf, "data");
            h.data(buf, data, keys, elide);
        }
        (Some(_), _) => {}
        // A failed call's response is OpenBao's error response: `{"error": "<message>"}`.
        (None, Some(err)) => {
            o.key(buf, "data");
            let mut d = Fields::open(buf);
            d.key(buf, "error");
            h.data_string(buf, err.message(), Some("error"), keys);
            d.close(buf);
        }
        (None, None) => {}
    }
    if let Some(r) = resp {
        o.list(buf, "warnings", &r.warnings);
        if let Some(w) = &r.wrap_info {
            o.key(buf, "wrap_info");
            wrap_info(buf, w, h);
        }
    }
    o.close(buf);
}

/// `response.auth`: the token a login or token creation produced.
fn response_auth(buf: &mut Vec<u8>, a: &Auth, h: &Hasher<'_>) {
    let mut o = Fields::open(buf);
    let token = a.client_token.expose_secret();
    if !token.is_empty() {
        o.key(buf, "client_token");
        h.secret(token).write(buf);
    }
    if !a.accessor.is_empty() {
        o.key(buf, "accessor");
        h.accessor(&a.accessor).write(buf);
    }
    o.list(buf, "policies", &a.policies);
    o.list(buf, "token_policies", &a.token_policies);
    string_map(buf, &mut o, "metadata", &a.metadata);
    o.uint(buf, "num_uses", a.num_uses);
    o.str(buf, "entity_id", &a.entity_id);
    o.str(buf, "token_type", token_type(&a.token_type));
    o.uint(buf, "token_ttl", a.lease_duration);
    o.close(buf);
}

/// `response.wrap_info`. As in OpenBao, the token is always HMAC'd (even when empty), the
/// accessor too with `hmac_accessor`, the wrapped accessor only when set.
fn wrap_info(buf: &mut Vec<u8>, w: &WrapInfo, h: &Hasher<'_>) {
    let mut o = Fields::open(buf);
    o.uint(buf, "ttl", w.ttl);
    let token = h.secret(w.token.expose_secret());
    if !matches!(token, Shown::Clear("")) {
        o.key(buf, "token");
        token.write(buf);
    }
    let accessor = h.accessor(&w.accessor);
    if !matches!(accessor, Shown::Clear("")) {
        o.key(buf, "accessor");
        accessor.write(buf);
    }
    o.str(buf, "creation_time", &w.creation_time);
    o.str(buf, "creation_path", &w.creation_path);
    if !w.wrapped_accessor.is_empty() {
        o.key(buf, "wrapped_accessor");
        h.accessor(&w.wrapped_accessor).write(buf);
    }
    o.close(buf);
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

    /// The response entry built from the request entry's `auth` and `request` text is the
    /// same line, byte for byte, as one built from scratch, unless the auth differs.
    #[test]
    fn response_entry_reuses_the_request_part_exactly() {
        let s = salt();
        let req = kv_write();
        let mut auth = root_auth();
        let mount = kv_mount();
        let resp = Response::with_data(crate::data(json!({"version": 1, "x": "y"})));
        let opts = FormatOptions {
            prefix: "p: ".into(),
            ..FormatOptions::default()
        };
        for entity_created in [false, true] {
            auth.entity_created = entity_created;
            let input = AuditInput::new(&req).with_auth(&auth).with_mount(&mount);
            let mut request_line = Vec::new();
            let range = write_entry_reusing(
                EntryKind::Request,
                &input,
                &opts,
                Some(&s),
                TIME,
                &mut request_line,
                None,
            )
            .unwrap();
            let part = request_line[range].to_vec();
            assert!(
                part.starts_with(b"\"auth\":{"),
                "{}",
                String::from_utf8_lossy(&part)
            );
            assert!(part.ends_with(b"}"));
            let input = input.with_response(&resp);
            let mut reused = Vec::new();
            write_entry_reusing(
                EntryKind::Response,
                &input,
                &opts,
                Some(&s),
                TIME,
                &mut reused,
                Some(&part),
            )
            .unwrap();
            let fresh = format_entry(EntryKind::Response, &input, &opts, Some(&s), TIME).unwrap();
            assert_eq!(
                String::from_utf8(reused).unwrap(),
                String::from_utf8(fresh).unwrap()
            );
        }
    }

    #[test]
    fn running_version_follows_bao_version() {
        assert_eq!(
            RUNNING_VERSION,
            format!("v{}+builtin.bao", crate::router::BAO_VERSION)
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
