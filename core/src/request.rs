//! The logical, Vault-shaped API every call goes through: [`Request`] in, [`Response`] out.
//! The typed Rust API, the bindings and the HTTP server all build these.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

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

    /// Set the client token.
    pub fn with_token(mut self, token: impl Into<String>) -> Request {
        self.token = Some(SecretString::from(token.into()));
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

/// Authentication result returned by a login or token creation.
#[derive(Clone, Default)]
pub struct Auth {
    /// The new token.
    pub client_token: String,
    /// Its accessor.
    pub accessor: String,
    /// All policies attached.
    pub policies: Vec<String>,
    /// Policies that came from the token itself.
    pub token_policies: Vec<String>,
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

/// Response-wrapping information.
#[derive(Clone, Default)]
pub struct WrapInfo {
    /// The wrapping token.
    pub token: String,
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
    /// A raw HTTP status the engine wants with the full envelope (KV's 404 for a deleted
    /// version). `None` = the usual 200/204.
    pub http_status: Option<u16>,
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
            && self.http_status.is_none()
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
            .field("http_status", &self.http_status)
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
