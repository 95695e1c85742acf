//! Values across the boundary: errors (tagged with the core's `ErrorCode` name for the JS layer
//! to turn into `StrongroomError` subclasses), JSON data, durations, RFC 3339 times as `Date`,
//! and [`Secret`], the redacted wrapper for tokens and passwords.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use napi::Env;
use napi::bindgen_prelude::{AsyncBlock, AsyncBlockBuilder, Either, ToNapiValue};
use napi_derive::napi;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use strongroom::ErrorCode;

/// `napi::Result` (named `Result`: napi-derive recognises a fallible function by that name).
pub(crate) use napi::Result;

/// The tag the JS layer (`index.js`) reads to pick the error class: `[strongroom:<code>] `.
pub(crate) fn error(code: ErrorCode, message: &str) -> napi::Error {
    napi::Error::new(
        napi::Status::GenericFailure,
        format!("[strongroom:{}] {message}", code.name()),
    )
}

/// A core error for JavaScript. The message is the core's, which never carries a secret.
pub(crate) fn err(e: strongroom::Error) -> napi::Error {
    error(e.code(), e.message())
}

/// Bad input found by the binding before it reaches the engine.
pub(crate) fn invalid(message: impl AsRef<str>) -> napi::Error {
    error(ErrorCode::InvalidInput, message.as_ref())
}

/// Run a core call and tag its error.
pub(crate) async fn call<T>(fut: impl Future<Output = strongroom::Result<T>>) -> Result<T> {
    fut.await.map_err(err)
}

/// What a hot call returns for its Promise: the value itself when the call finished at once,
/// else a Promise napi settles later. The JS layer (`index.js`) resolves its Promise with
/// either.
pub(crate) type Settled<T> = Either<T, AsyncBlock<T>>;

/// Run a Promise-returning call without a thread hop when it can be: its first poll runs here
/// on the JavaScript thread (with napi's runtime entered), where the calls that need no I/O
/// finish (transit on a key in memory, a KV read of a cached entry, a few microseconds), and
/// the value is handed back as is. A call that must wait continues on napi's tokio runtime and
/// settles a Promise through a threadsafe function, as an `async fn` does. Only for calls that
/// do no blocking work in a poll: the event loop must never wait on I/O.
pub(crate) fn settle<T, F>(env: &Env, fut: F) -> Result<Settled<T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    let mut fut = Box::pin(fut);
    let first = catch_unwind(AssertUnwindSafe(|| {
        napi::bindgen_prelude::within_runtime_if_available(|| {
            fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        })
    }));
    match first {
        Ok(Poll::Ready(r)) => r.map(Either::A),
        Ok(Poll::Pending) => AsyncBlockBuilder::new(fut).build(env).map(Either::B),
        Err(_) => Err(error(
            ErrorCode::Internal,
            "the engine panicked during this call (a bug: please report it)",
        )),
    }
}

/// One entry of the core's error code table.
#[napi(object, object_from_js = false)]
pub struct ErrorCodeEntry {
    /// The snake_case name (`permission_denied`).
    pub name: String,
    /// The stable number (the C status code).
    pub number: u32,
}

/// The core's error code table in order (`ErrorCode::ALL`): the JS layer builds its error
/// classes from it at load, so they cannot drift from the core.
#[napi]
pub fn error_codes() -> Vec<ErrorCodeEntry> {
    ErrorCode::ALL
        .iter()
        .map(|c| ErrorCodeEntry {
            name: c.name().to_string(),
            number: c.as_u32(),
        })
        .collect()
}

/// A duration: seconds (a number) or Go-style text (`"1h30m"`).
pub(crate) fn duration(v: Either<f64, String>) -> Result<Duration> {
    match v {
        Either::A(secs) if secs.is_finite() && secs >= 0.0 => Ok(Duration::from_secs_f64(secs)),
        Either::A(_) => Err(invalid(
            "a duration must be a finite number of seconds, zero or more",
        )),
        Either::B(text) => strongroom::parse_duration(&text).map_err(err),
    }
}

pub(crate) fn opt_duration(v: Option<Either<f64, String>>) -> Result<Duration> {
    v.map(duration).transpose().map(Option::unwrap_or_default)
}

/// An RFC 3339 time as a `Date`; `None` for "" (OpenBao's "not set") or an unparsable text.
pub(crate) fn date(text: &str) -> Option<DateTime<Utc>> {
    if text.is_empty() {
        return None;
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn opt_date(text: Option<&str>) -> Option<DateTime<Utc>> {
    date(text.unwrap_or_default())
}

/// Seconds as a JavaScript number.
pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Request data: an object, or nothing (`undefined` / `null`).
pub(crate) fn data_arg(v: Option<Value>) -> Result<Map<String, Value>> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(invalid("data must be an object")),
    }
}

/// String-valued options (`{version: "2"}`); other values are sent as their JSON text.
pub(crate) fn str_map(v: Option<Value>) -> Result<Vec<(String, String)>> {
    Ok(data_arg(v)?
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

/// A secret value (a token, a password, an unseal key). `reveal()` gives the value; the JS layer
/// makes `util.inspect`, `toString` and `JSON.stringify` show `Secret(<redacted>)`.
#[napi]
pub struct Secret {
    inner: SecretString,
}

impl Secret {
    pub(crate) fn of(s: &SecretString) -> Secret {
        Secret { inner: s.clone() }
    }
    pub(crate) fn from_string(s: String) -> Secret {
        Secret {
            inner: SecretString::from(s),
        }
    }
}

#[napi]
impl Secret {
    /// Wrap a value.
    #[napi(constructor)]
    pub fn new(value: String) -> Secret {
        Secret::from_string(value)
    }

    /// The secret value itself.
    #[napi]
    pub fn reveal(&self) -> String {
        self.inner.expose_secret().to_string()
    }

    /// Whether `other` holds the same value.
    #[napi]
    pub fn equals(&self, other: &Secret) -> bool {
        self.inner.expose_secret() == other.inner.expose_secret()
    }

    /// The value's length in bytes.
    #[napi(getter)]
    pub fn length(&self) -> u32 {
        u32::try_from(self.inner.expose_secret().len()).unwrap_or(u32::MAX)
    }

    /// `Secret(<redacted>)`.
    #[napi(js_name = "toString")]
    pub fn to_js_string(&self) -> String {
        "Secret(<redacted>)".to_string()
    }

    /// `Secret(<redacted>)`: a secret in `JSON.stringify` output stays hidden.
    #[napi(js_name = "toJSON")]
    pub fn to_json(&self) -> String {
        "Secret(<redacted>)".to_string()
    }
}
