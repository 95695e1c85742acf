//! OpenBao's HTTP API over the engine: `/v1/<path>` becomes one [`Strongroom::handle`] call,
//! and the answer goes back in OpenBao's envelope with OpenBao's status codes. Nothing else
//! happens here: every decision about a request is the engine's.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sr = strongroom::Strongroom::open(strongroom::Config::dev()).await?;
//! let app = strongroom_server::http::router(sr, Some(32 * 1024 * 1024));
//! # let _ = app; Ok(()) }
//! ```
//!
//! Limits, per listener ([`ApiOptions`]): bodies above `max_request_size` answer 413, JSON
//! nested deeper than [`MAX_JSON_DEPTH`] answers 400 `failed to decode JSON input:
//! exceeded max depth`, a request running past `max_request_duration` answers 500 (OpenBao's
//! `context canceled`; the handler is dropped at its next await point, as when a client
//! disconnects), more than `max_concurrent_requests` in flight answer 503 at once with
//! `Retry-After: 1` instead of queueing without bound, a JSON body over
//! `max_request_json_memory` or `max_request_json_strings` answers 400 `refused JSON input due
//! to high complexity: ...` before it is built, and a body still arriving after
//! `http_read_timeout` answers 500 `read tcp a->b: i/o timeout` and closes the connection (all
//! as OpenBao).

mod envelope;
pub(crate) mod input;
mod raw;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response as HttpResponse;
use strongroom::{Data, Operation, Request, Strongroom};

use crate::config::{
    DEFAULT_HTTP_READ_TIMEOUT, DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_REQUEST_DURATION,
    DEFAULT_MAX_REQUEST_JSON_MEMORY, DEFAULT_MAX_REQUEST_JSON_STRINGS,
};
use crate::metrics::{Metrics, Rejection, UNKNOWN_MOUNT};
use input::InputError;
pub use input::{JsonLimits, MAX_JSON_DEPTH};

/// How one listener serves the API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Largest request body (413 above it); `None` = no limit.
    pub max_request_size: Option<usize>,
    /// Longest a request may run (500 after it); `None` = no limit.
    pub max_request_duration: Option<Duration>,
    /// Requests in flight at once on this listener (503 above it); `None` = no limit.
    pub max_concurrent_requests: Option<usize>,
    /// Serve `/v1/sys/metrics` without a token.
    pub unauthenticated_metrics_access: bool,
    /// `max_request_json_memory` and `max_request_json_strings` (400 above them).
    pub json_limits: JsonLimits,
    /// `http_read_timeout`: how long reading a request's body may take (500 after it, and the
    /// connection is closed); `None` = no limit.
    pub read_timeout: Option<Duration>,
    /// The listener's own address, for the text of a read timeout (Go's `read tcp a->b`).
    pub local_addr: Option<SocketAddr>,
    /// Where requests are counted (shared by every listener of a server).
    pub metrics: Arc<Metrics>,
}

impl ApiOptions {
    /// Vault's defaults with this body limit and metrics of its own.
    pub fn new(max_request_size: Option<usize>) -> ApiOptions {
        ApiOptions {
            max_request_size,
            max_request_duration: Some(DEFAULT_MAX_REQUEST_DURATION),
            max_concurrent_requests: Some(DEFAULT_MAX_CONCURRENT_REQUESTS),
            unauthenticated_metrics_access: false,
            json_limits: JsonLimits {
                memory: Some(DEFAULT_MAX_REQUEST_JSON_MEMORY),
                strings: Some(DEFAULT_MAX_REQUEST_JSON_STRINGS),
            },
            read_timeout: Some(DEFAULT_HTTP_READ_TIMEOUT),
            local_addr: None,
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// What every request on one listener shares.
struct ApiState {
    sr: Strongroom,
    max_request_size: Option<usize>,
    max_request_duration: Option<Duration>,
    limiter: Option<Arc<tokio::sync::Semaphore>>,
    unauthenticated_metrics_access: bool,
    json_limits: JsonLimits,
    read_timeout: Option<Duration>,
    local_addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
}

/// How one request's body is read: the listener's limits and this request's read deadline.
#[derive(Debug, Clone)]
pub(crate) struct BodyRules {
    pub(crate) max_size: Option<usize>,
    pub(crate) json: JsonLimits,
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// The connection's ends, for the read timeout's text (formatted only then).
    pub(crate) local: Option<SocketAddr>,
    pub(crate) remote: Option<SocketAddr>,
}

/// The whole API as an axum router, for one listener: `max_request_size` bounds request bodies
/// (`None` = no limit), the other limits are Vault's defaults. Serve it with connect info
/// (`into_make_service_with_connect_info`) so the engine learns the caller's address.
pub fn router(sr: Strongroom, max_request_size: Option<usize>) -> axum::Router {
    router_with(sr, ApiOptions::new(max_request_size))
}

/// The API as an axum router with these limits and metrics.
pub fn router_with(sr: Strongroom, opts: ApiOptions) -> axum::Router {
    axum::Router::new()
        .fallback(dispatch)
        .with_state(Arc::new(ApiState {
            sr,
            max_request_size: opts.max_request_size,
            max_request_duration: opts.max_request_duration,
            limiter: opts
                .max_concurrent_requests
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n))),
            unauthenticated_metrics_access: opts.unauthenticated_metrics_access,
            json_limits: opts.json_limits,
            read_timeout: opts.read_timeout,
            local_addr: opts.local_addr,
            metrics: opts.metrics,
        }))
}

async fn dispatch(State(state): State<Arc<ApiState>>, req: axum::extract::Request) -> HttpResponse {
    let started = Instant::now();
    let _in_flight = state.metrics.start();
    let rules = BodyRules {
        max_size: state.max_request_size,
        json: state.json_limits,
        // Go's read deadline runs from the start of the request; the headers are in by now.
        deadline: state
            .read_timeout
            .map(|t| tokio::time::Instant::from_std(started) + t),
        local: state.local_addr,
        remote: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
    };
    let method = req.method().clone();
    let path = input::decode_path(req.uri().path());
    let permit = state
        .limiter
        .as_ref()
        .and_then(|l| l.clone().try_acquire_owned().ok());
    let mut resp = if state.limiter.is_some() && permit.is_none() {
        state.metrics.reject(Rejection::Overload);
        let mut r = envelope::errors(
            StatusCode::SERVICE_UNAVAILABLE,
            &["server is overloaded: too many requests in flight; try again"],
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        r
    } else {
        let answer = route(&state, &rules, &path, req);
        match state.max_request_duration {
            Some(limit) => match tokio::time::timeout(limit, answer).await {
                Ok(r) => r,
                Err(_) => {
                    state.metrics.reject(Rejection::Timeout);
                    tracing::warn!(%method, path = %path.escape_debug(), "request ran past max_request_duration");
                    // OpenBao's answer when the request context ends.
                    envelope::errors(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &["1 error occurred:\n\t* context canceled\n\n"],
                    )
                }
            },
            None => answer.await,
        }
    };
    drop(permit);
    // OpenBao sets this on every response.
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    // Only a mount that exists becomes a label: a client inventing paths must not add series
    // (or see its invented names echoed to whoever reads the metrics).
    let mount = path
        .strip_prefix("/v1/")
        .and_then(|p| state.sr.mount_of(p))
        .unwrap_or_else(|| UNKNOWN_MOUNT.to_string());
    state
        .metrics
        .record(&mount, method.as_str(), status, elapsed);
    // The path names a secret but holds no value; query strings and bodies are never logged.
    tracing::debug!(
        %method,
        path = %path.escape_debug(),
        mount = %mount.escape_debug(),
        status,
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    resp
}

async fn route(
    state: &ApiState,
    rules: &BodyRules,
    path: &str,
    req: axum::extract::Request,
) -> HttpResponse {
    if !input::is_printable(path) {
        // As Go's `cleanhttp.PrintablePathCheckHandler`: 400 with no body.
        return envelope::empty(StatusCode::BAD_REQUEST);
    }
    let Some(api_path) = path.strip_prefix("/v1/") else {
        return envelope::errors(StatusCode::NOT_FOUND, &[]);
    };
    if api_path == "sys/metrics" {
        return metrics(state, rules, api_path, req).await;
    }
    if raw::is_raw(api_path) {
        let (parts, body) = req.into_parts();
        return raw::serve(
            &state.sr,
            api_path,
            &parts.method,
            parts.uri.query(),
            body,
            rules,
        )
        .await;
    }
    match logical_request(rules, api_path, req).await {
        Ok((op, request)) => match state.sr.handle(request).await {
            Ok(resp) if api_path == "sys/wrapping/unwrap" => envelope::unwrapped(op, resp),
            Ok(resp) => envelope::success(op, resp, envelope::injects_data(api_path)),
            Err(e) => envelope::error(&e),
        },
        Err(reject) => reject.into_response(),
    }
}

/// `GET /v1/sys/metrics[?format=prometheus]`: the server's and the engine's metrics. Reading
/// them takes a token with `read` on `sys/metrics` (the engine checks it, and audits the
/// call) unless the listener has `unauthenticated_metrics_access`.
async fn metrics(
    state: &ApiState,
    rules: &BodyRules,
    api_path: &str,
    req: axum::extract::Request,
) -> HttpResponse {
    if req.method() != Method::GET {
        return envelope::errors(StatusCode::METHOD_NOT_ALLOWED, &[]);
    }
    let query = input::query_data(req.uri().query());
    let format = match query.get("format") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) => a
            .first()
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    let prometheus = match format.as_str() {
        "" | "json" => false,
        "prometheus" => true,
        other => {
            return envelope::errors(
                StatusCode::BAD_REQUEST,
                &[&format!("metric response format \"{other}\" unknown")],
            );
        }
    };
    if !state.unauthenticated_metrics_access {
        // The engine's `sys/metrics` read authorises and audits the call (with the request's
        // token and address); the figures then come typed from `metrics()`.
        let authorised = match logical_request(rules, api_path, req).await {
            Ok((_, request)) => state.sr.handle(request).await,
            Err(reject) => return reject.into_response(),
        };
        if let Err(e) = authorised {
            return envelope::error(&e);
        }
    }
    let engine = state.sr.metrics().await;
    let engine = match engine {
        Ok(d) => d,
        Err(e) => return envelope::error(&e),
    };
    // Mounts removed since the last read stop being reported (and free their slot).
    state
        .metrics
        .retain_mounts(|m| state.sr.mount_of(m).as_deref() == Some(m));
    if prometheus {
        let mut resp = HttpResponse::new(axum::body::Body::from(state.metrics.prometheus(&engine)));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        resp
    } else {
        envelope::json(StatusCode::OK, &state.metrics.json(&engine))
    }
}

/// A request refused before it reaches the engine: a status and OpenBao's message (none for
/// the bare `{"errors":[]}` cases).
pub(crate) struct Reject {
    status: StatusCode,
    message: Option<String>,
    /// Close the connection after answering (the client was too slow to trust with another
    /// request, as Go's expired read deadline ends the connection).
    close: bool,
}

impl Reject {
    fn bare(status: StatusCode) -> Reject {
        Reject {
            status,
            message: None,
            close: false,
        }
    }

    fn with(status: StatusCode, message: impl Into<String>) -> Reject {
        Reject {
            status,
            message: Some(message.into()),
            close: false,
        }
    }

    pub(crate) fn into_response(self) -> HttpResponse {
        let mut resp = match &self.message {
            Some(m) => envelope::errors(self.status, &[m]),
            None => envelope::errors(self.status, &[]),
        };
        if self.close {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Build the engine request for a logical path, or the HTTP error OpenBao gives instead.
async fn logical_request(
    rules: &BodyRules,
    api_path: &str,
    req: axum::extract::Request,
) -> Result<(Operation, Request), Reject> {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query();
    let mut path = api_path.to_string();
    let (op, data) = match parts.method.as_str() {
        "GET" => {
            let mut data = input::query_data(query);
            let list = take_bool(&mut data, "list")?;
            let scan = take_bool(&mut data, "scan")?;
            match (list, scan) {
                (true, true) => return Err(Reject::bare(StatusCode::BAD_REQUEST)),
                (true, false) => (Operation::List, data),
                // There is no SCAN operation in the engine yet.
                (false, true) => return Err(unsupported_operation()),
                (false, false) => (Operation::Read, data),
            }
        }
        "LIST" => (Operation::List, input::query_data(query)),
        "DELETE" => (Operation::Delete, input::query_data(query)),
        "POST" | "PUT" => {
            let media = input::media_type(&parts.headers);
            let bytes = read(body, rules).await?;
            let data =
                input::body_data(&bytes, &media, rules.json).map_err(|e| input_error(e, rules))?;
            (Operation::Update, data)
        }
        "PATCH" => {
            let media = input::media_type(&parts.headers);
            if media.is_empty() {
                // Go's `mime.ParseMediaType("")`, which OpenBao reports as a 400.
                return Err(Reject::with(StatusCode::BAD_REQUEST, "mime: no media type"));
            }
            if media != input::MERGE_PATCH {
                let msg = format!(
                    "PATCH requires Content-Type of {}, provided {media}",
                    input::MERGE_PATCH
                );
                return Err(Reject::with(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg));
            }
            let bytes = read(body, rules).await?;
            (
                Operation::Patch,
                input::json_data(&bytes, rules.json).map_err(|e| input_error(e, rules))?,
            )
        }
        "SCAN" => return Err(unsupported_operation()),
        _ if parts.method == Method::HEAD => return Err(unsupported_operation()),
        _ => return Err(Reject::bare(StatusCode::METHOD_NOT_ALLOWED)),
    };
    if op == Operation::List && !path.ends_with('/') {
        path.push('/');
    }
    if let Some(ns) = parts
        .headers
        .get(input::NAMESPACE_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .filter(|ns| !ns.is_empty() && ns != "root" && ns != "/")
    {
        // Serving the root namespace to a client that asked for another would hand it the
        // wrong data, so refuse instead.
        return Err(Reject::with(
            StatusCode::BAD_REQUEST,
            format!("namespaces are not supported: `{}`", ns.escape_debug()),
        ));
    }
    let mut request = Request::new(op, path).with_data(data);
    request.token = input::token(&parts.headers);
    request.wrap_ttl = input::wrap_ttl(&parts.headers).map_err(|e| input_error(e, rules))?;
    request.remote_addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    Ok((op, request))
}

async fn read(body: axum::body::Body, rules: &BodyRules) -> Result<axum::body::Bytes, Reject> {
    input::read_body(body, rules.max_size, rules.deadline)
        .await
        .map_err(|e| input_error(e, rules))
}

pub(crate) fn input_error(e: InputError, rules: &BodyRules) -> Reject {
    match e {
        InputError::TooLarge => Reject::with(
            StatusCode::PAYLOAD_TOO_LARGE,
            "failed to decode JSON input: http: request body too large",
        ),
        InputError::Bad(m) => Reject::with(StatusCode::BAD_REQUEST, m),
        // OpenBao answers Go's read error as a 500: `read tcp a->b: i/o timeout`.
        InputError::TimedOut => Reject {
            close: true,
            ..Reject::with(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "read tcp {}->{}: i/o timeout",
                    end(rules.local),
                    end(rules.remote)
                ),
            )
        },
    }
}

fn end(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "?".to_string(), |a| a.to_string())
}

fn unsupported_operation() -> Reject {
    let e = strongroom::Error::unsupported_operation();
    Reject::with(
        envelope::status(e.code().http_status()),
        e.message().to_string(),
    )
}

/// Remove a boolean query flag (`list`, `scan`); a value Go's `strconv.ParseBool` rejects is a
/// 400 with no message, as in OpenBao.
fn take_bool(data: &mut Data, key: &str) -> Result<bool, Reject> {
    let bad = || Reject::bare(StatusCode::BAD_REQUEST);
    let value = match data.get(key) {
        None => return Ok(false),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) => a
            .first()
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string(),
        Some(_) => return Err(bad()),
    };
    if value.is_empty() {
        return Ok(false);
    }
    let flag = input::parse_bool(&value).ok_or_else(bad)?;
    if flag {
        data.remove(key);
    }
    Ok(flag)
}
