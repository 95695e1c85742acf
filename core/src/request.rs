//! The logical, Vault-shaped API every call goes through: [`Request`] in, [`Response`] out.
//! The typed Rust API, the bindings and the HTTP server all build these.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use crate::error::ErrorCode;

/// JSON object carried by requests and responses.
pub type Data = Map<String, Value>;

/// What a request does. HTTP `POST`/`PUT` arrive as [`Operation::Update`]; the pipeline turns
/// them into [`Operation::Create`] when the engine says the entry does not exist yet, so policies
/// can tell the two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Read (`GET`).
    Read,
    /// List children (`LIST`, `GET ?list=true`).
    List,
    /// Write to an entry that does not exist yet.
    Create,
    /// Write (`POST`, `PUT`).
    Update,
    /// JSON merge patch (`PATCH`).
    Patch,
    /// Delete (`DELETE`).
    Delete,
}

impl Operation {
    /// OpenBao's name for the operation (`read`, `list`, `create`, ...), as in audit entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call into the engine.
///
/// ```
/// use strongroom::{Operation, Request};
/// let req = Request::new(Operation::Read, "secret/data/app").with_token("s.example");
/// assert_eq!(req.path, "secret/data/app");
/// ```
#[derive(Clone)]
pub struct Request {
    /// What to do.
    pub operation: Operation,
    /// The path, relative to `/v1/`, without a leading `/`.
    pub path: String,
    /// Body parameters (and query parameters for read, list and delete).
    pub data: Data,
    /// The client token, if any.
    pub token: Option<SecretString>,
    /// Wrap the response in a response-wrapping token with this TTL.
    pub wrap_ttl: Option<Duration>,
    /// The caller's address, when known (for CIDR-bound credentials).
    pub remote_addr: Option<IpAddr>,
    /// A request id; the pipeline assigns a UUID when empty.
    pub id: String,
    /// The calling token's display name (database username templates use it, as OpenBao's
    /// `{{.DisplayName}}`). The pipeline sets it from the token; a value given here is
    /// overwritten.
    pub display_name: String,
}

impl Request {
    /// A request with no data and no token.
    pub fn new(operation: Operation, path: impl Into<String>) -> Request {
        Request {
            operation,
            path: path.into(),
            data: Data::new(),
            token: None,
            wrap_ttl: None,
            remote_addr: None,
            id: String::new(),
            display_name: String::new(),
        }
    }

    /// A read of `path`.
    pub fn read(path: impl Into<String>) -> Request {
        Request::new(Operation::Read, path)
    }

    /// A list of `path`.
    pub fn list(path: impl Into<String>) -> Request {
        Request::new(Operation::List, path)
    }

    /// A write (`POST`/`PUT`) of `data` to `path`.
    pub fn write(path: impl Into<String>, data: Data) -> Request {
        Request::new(Operation::Update, path).with_data(data)
    }

    /// A delete of `path`.
    pub fn delete(path: impl Into<String>) -> Request {
        Request::new(Operation::Delete, path)
    }

    /// Set the body.
    pub fn with_data(mut self, data: Data) -> Request {
        self.data = data;
        self
    }

    /// Set the client token (a `&str`, `String` or [`SecretString`]: see
    /// [`crate::IntoSecretString`]).
    pub fn with_token(mut self, token: impl crate::client::IntoSecretString) -> Request {
        self.token = Some(token.into_secret_string());
        self
    }

    /// Ask for the response wrapped in a single-use response-wrapping token that lives `ttl`
    /// (HTTP's `X-Vault-Wrap-TTL`). A zero TTL means no wrapping.
    ///
    /// ```
    /// use std::time::Duration;
    /// let req = strongroom::Request::read("secret/data/app").with_wrap_ttl(Duration::from_secs(300));
    /// assert_eq!(req.wrap_ttl, Some(Duration::from_secs(300)));
    /// ```
    pub fn with_wrap_ttl(mut self, ttl: Duration) -> Request {
        self.wrap_ttl = Some(ttl);
        self
    }

    /// The client token as a string slice ("" when absent).
    pub(crate) fn token_str(&self) -> &str {
        self.token.as_ref().map(|t| t.expose_secret()).unwrap_or("")
    }
}

impl fmt::Debug for Request {
    // Values and the token are secrets: show only the shape.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("wrap_ttl", &self.wrap_ttl)
            .finish()
    }
}

/// A secret with a lease, returned by an engine (dynamic credentials, KV v1 `ttl`). The lease
/// manager records it and fills [`Response::lease_id`].
#[derive(Clone, Default)]
pub struct LeaseInfo {
    /// Lease TTL.
    pub ttl: Duration,
    /// Maximum TTL from issue time.
    pub max_ttl: Duration,
    /// Whether the lease can be renewed.
    pub renewable: bool,
    /// Engine-private data kept with the lease for revocation (never returned to callers).
    pub internal: Data,
    /// Storage operations, relative to the engine's mount, that land in the same transaction
    /// as the lease record (a database credential's intent record is deleted there, so
    /// "lease recorded" and "intent resolved" can never disagree after a crash).
    pub(crate) on_commit: Vec<crate::storage::TxnOp>,
}

impl fmt::Debug for LeaseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseInfo")
            .field("ttl", &self.ttl)
            .field("max_ttl", &self.max_ttl)
            .field("renewable", &self.renewable)
            .finish_non_exhaustive()
    }
}

/// Authentication result returned by a login or token creation. The token is a
/// [`SecretString`]: `Debug` does not show it and it is wiped from memory on drop.
///
/// ```
/// use secrecy::ExposeSecret;
/// let auth = strongroom::Auth { client_token: "s.abc".into(), ..Default::default() };
/// assert!(!format!("{auth:?}").contains("s.abc"));
/// assert_eq!(auth.client_token.expose_secret(), "s.abc");
/// ```
#[derive(Clone, Default)]
pub struct Auth {
    /// The new token.
    pub client_token: SecretString,
    /// Its accessor.
    pub accessor: String,
    /// All policies attached.
    pub policies: Vec<String>,
    /// Policies that came from the token itself.
    pub token_policies: Vec<String>,
    /// Policies that come from the token's identity entity and its groups.
    pub identity_policies: Vec<String>,
    /// Metadata.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// TTL in seconds.
    pub lease_duration: u64,
    /// Whether it can be renewed.
    pub renewable: bool,
    /// Identity entity id ("" when none).
    pub entity_id: String,
    /// `service` or `batch`.
    pub token_type: String,
    /// Whether it has no parent.
    pub orphan: bool,
    /// Uses left (0 = unlimited).
    pub num_uses: u64,
}

impl Auth {
    /// OpenBao's `auth` object as 2.7.2 sends it (`token_policies` and `identity_policies`
    /// omitted when empty). This is the wire form: it
    /// holds the token in clear.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "client_token".into(),
            json!(self.client_token.expose_secret()),
        );
        m.insert("accessor".into(), json!(self.accessor));
        m.insert("policies".into(), json!(self.policies));
        if !self.token_policies.is_empty() {
            m.insert("token_policies".into(), json!(self.token_policies));
        }
        if !self.identity_policies.is_empty() {
            m.insert("identity_policies".into(), json!(self.identity_policies));
        }
        m.insert(
            "metadata".into(),
            if self.metadata.is_empty() {
                Value::Null
            } else {
                json!(self.metadata)
            },
        );
        m.insert("lease_duration".into(), json!(self.lease_duration));
        m.insert("renewable".into(), json!(self.renewable));
        m.insert("entity_id".into(), json!(self.entity_id));
        m.insert("token_type".into(), json!(self.token_type));
        m.insert("orphan".into(), json!(self.orphan));
        m.insert("mfa_requirement".into(), Value::Null);
        m.insert("num_uses".into(), json!(self.num_uses));
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Auth {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Auth {
            client_token: SecretString::from(s("client_token")),
            accessor: s("accessor"),
            policies: list("policies"),
            token_policies: list("token_policies"),
            identity_policies: list("identity_policies"),
            metadata: v
                .get("metadata")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            lease_duration: v.get("lease_duration").and_then(Value::as_u64).unwrap_or(0),
            renewable: v.get("renewable").and_then(Value::as_bool).unwrap_or(false),
            entity_id: s("entity_id"),
            token_type: s("token_type"),
            orphan: v.get("orphan").and_then(Value::as_bool).unwrap_or(false),
            num_uses: v.get("num_uses").and_then(Value::as_u64).unwrap_or(0),
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("client_token", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("lease_duration", &self.lease_duration)
            .finish_non_exhaustive()
    }
}

/// Response-wrapping information. The wrapping token is a [`SecretString`] (redacted by
/// `Debug`).
#[derive(Clone, Default)]
pub struct WrapInfo {
    /// The wrapping token.
    pub token: SecretString,
    /// Its accessor.
    pub accessor: String,
    /// TTL in seconds.
    pub ttl: u64,
    /// When it was created (RFC 3339).
    pub creation_time: String,
    /// The path whose response was wrapped.
    pub creation_path: String,
    /// The accessor of a wrapped token, if a token was wrapped.
    pub wrapped_accessor: String,
}

impl WrapInfo {
    /// OpenBao's `wrap_info` object (`wrapped_accessor` only when a token was wrapped). This
    /// is the wire form: it holds the wrapping token in clear.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("token".into(), json!(self.token.expose_secret()));
        m.insert("accessor".into(), json!(self.accessor));
        m.insert("ttl".into(), json!(self.ttl));
        m.insert("creation_time".into(), json!(self.creation_time));
        m.insert("creation_path".into(), json!(self.creation_path));
        if !self.wrapped_accessor.is_empty() {
            m.insert("wrapped_accessor".into(), json!(self.wrapped_accessor));
        }
        Value::Object(m)
    }
}

impl WrapInfo {
    /// Whether this holds a wrapping token (a wrapped response answers with only this).
    pub fn is_set(&self) -> bool {
        !self.token.expose_secret().is_empty()
    }
}

impl fmt::Debug for WrapInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrapInfo")
            .field("token", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("ttl", &self.ttl)
            .field("creation_path", &self.creation_path)
            .finish_non_exhaustive()
    }
}

/// The answer to a [`Request`], in the shape of OpenBao's success envelope.
#[derive(Clone, Default)]
pub struct Response {
    /// Request id (a UUID).
    pub request_id: String,
    /// Lease id, when the response carries a leased secret.
    pub lease_id: String,
    /// Whether the lease can be renewed.
    pub renewable: bool,
    /// Lease duration in seconds.
    pub lease_duration: u64,
    /// The payload; `None` for an empty (HTTP 204) answer.
    pub data: Option<Data>,
    /// Warnings for the caller.
    pub warnings: Vec<String>,
    /// Set when a login or token creation produced a token.
    pub auth: Option<Auth>,
    /// Set when the response was wrapped.
    pub wrap_info: Option<WrapInfo>,
    /// A lease the engine asks the pipeline to register (the lease manager's seam).
    pub lease: Option<LeaseInfo>,
    /// What kind of answer this is, when it is more than "done" (work started in the
    /// background, a not-found that still carries data, a batch with failed items).
    pub kind: ResponseKind,
}

/// What kind of answer a [`Response`] is. Most answers are [`ResponseKind::Done`]; the others
/// still carry data worth reading, so they are responses rather than errors. (The HTTP server
/// derives its status from this: 200/204, 202, 404, and the batch rules below.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseKind {
    /// The request was carried out.
    #[default]
    Done,
    /// The work was started and goes on in the background (the `tidy` endpoints).
    Accepted,
    /// Nothing is there, but the response says why: a KV v2 version that was deleted or
    /// destroyed (its metadata is in `data`), a path that is not a KV v2 route (a warning),
    /// an unknown AppRole secret-id accessor (`data.error`).
    NotFound,
    /// Some items of a batch failed; each item of `data.batch_results` says why.
    BatchFailed {
        /// The failures as one code: [`ErrorCode::Internal`] when every failed item failed
        /// inside Strongroom, else [`ErrorCode::InvalidInput`].
        code: ErrorCode,
        /// Set when some items succeeded and the request asked for this status then
        /// (OpenBao's `partial_failure_response_code`, 200 to 599).
        partial_status: Option<u16>,
    },
}

impl Response {
    /// A response carrying `data`.
    pub fn with_data(data: Data) -> Response {
        Response {
            data: Some(data),
            ..Response::default()
        }
    }

    /// Whether there is nothing to send (HTTP 204).
    pub fn is_empty(&self) -> bool {
        self.data.is_none()
            && self.auth.is_none()
            && self.wrap_info.is_none()
            && self.warnings.is_empty()
            && self.kind == ResponseKind::Done
            && self.lease_id.is_empty()
    }

    /// Add a warning.
    pub fn warn(&mut self, w: impl Into<String>) {
        self.warnings.push(w.into());
    }

    /// A field of `data`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.as_ref().and_then(|d| d.get(key))
    }

    /// OpenBao's JSON envelope for this response: `request_id, lease_id, renewable,
    /// lease_duration, data, wrap_info, warnings, auth`, in that order. A wrapped response shows
    /// only its `wrap_info` (and an empty request id), as OpenBao does.
    pub fn envelope(&self) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(w) = self.wrap_info.as_ref().filter(|w| w.is_set()) {
            out.insert("request_id".into(), json!(""));
            out.insert("lease_id".into(), json!(""));
            out.insert("renewable".into(), json!(false));
            out.insert("lease_duration".into(), json!(0));
            out.insert("data".into(), Value::Null);
            out.insert("wrap_info".into(), w.to_json());
            out.insert("warnings".into(), Value::Null);
            out.insert("auth".into(), Value::Null);
            return out;
        }
        out.insert("request_id".into(), json!(self.request_id));
        out.insert("lease_id".into(), json!(self.lease_id));
        out.insert("renewable".into(), json!(self.renewable));
        out.insert("lease_duration".into(), json!(self.lease_duration));
        out.insert(
            "data".into(),
            self.data.clone().map(Value::Object).unwrap_or(Value::Null),
        );
        out.insert("wrap_info".into(), Value::Null);
        out.insert(
            "warnings".into(),
            if self.warnings.is_empty() {
                Value::Null
            } else {
                json!(self.warnings)
            },
        );
        out.insert(
            "auth".into(),
            self.auth.as_ref().map(Auth::to_json).unwrap_or(Value::Null),
        );
        out
    }

    /// The response back from its [`Response::envelope`] JSON (what a wrapping token holds).
    pub(crate) fn from_envelope(v: &Value) -> Response {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Response {
            request_id: s("request_id"),
            lease_id: s("lease_id"),
            renewable: v.get("renewable").and_then(Value::as_bool).unwrap_or(false),
            lease_duration: v.get("lease_duration").and_then(Value::as_u64).unwrap_or(0),
            data: v.get("data").and_then(Value::as_object).cloned(),
            warnings: v
                .get("warnings")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|w| w.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            auth: v.get("auth").filter(|a| a.is_object()).map(Auth::from_json),
            ..Response::default()
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("request_id", &self.request_id)
            .field("lease_id", &self.lease_id)
            .field(
                "data_keys",
                &self.data.as_ref().map(|d| d.keys().collect::<Vec<_>>()),
            )
            .field("warnings", &self.warnings)
            .field("auth", &self.auth)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The JSON for a secret value: `{"a":"b"}`; a helper for building requests.
///
/// ```
/// let d = strongroom::data(serde_json::json!({"password": "hunter2"}));
/// assert_eq!(d.len(), 1);
/// ```
pub fn data(value: Value) -> Data {
    match value {
        Value::Object(m) => m,
        _ => Data::new(),
    }
}
