//! The unauthenticated `sys/` endpoints OpenBao serves outside the logical envelope:
//! `sys/health`, `sys/seal-status`, `sys/init`, `sys/unseal` and `sys/leader` answer with the
//! bare JSON object, and reject other methods with 405 `{"errors":[]}`. The engine still does
//! the work: each becomes one [`Strongroom::handle`] call.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response as HttpResponse;
use serde_json::Value;
use strongroom::{Data, Operation, Request, Strongroom};

use super::envelope::{self, errors, json, status};
use super::input;
use super::{BodyRules, input_error};

/// The paths (relative to `/v1/`) served here.
pub(crate) fn is_raw(path: &str) -> bool {
    matches!(
        path,
        "sys/health" | "sys/seal-status" | "sys/init" | "sys/unseal" | "sys/leader"
    )
}

/// Serve one of the [`is_raw`] paths.
pub(crate) async fn serve(
    sr: &Strongroom,
    path: &str,
    method: &Method,
    query: Option<&str>,
    body: Body,
    rules: &BodyRules,
) -> HttpResponse {
    let read = matches!(*method, Method::GET);
    let write = matches!(*method, Method::PUT | Method::POST);
    match path {
        "sys/health" if read || *method == Method::HEAD => {
            health(sr, query, *method == Method::HEAD).await
        }
        "sys/seal-status" | "sys/leader" if read => call(sr, Request::read(path)).await,
        "sys/init" if read => call(sr, Request::read(path)).await,
        "sys/init" | "sys/unseal" if write => {
            let data = match input::read_body(body, rules.max_size, rules.deadline).await {
                Ok(bytes) => input::json_data(&bytes, rules.json),
                Err(e) => Err(e),
            };
            match data {
                Ok(data) => call(sr, Request::write(path, data)).await,
                Err(e) => input_error(e, rules).into_response(),
            }
        }
        _ => errors(StatusCode::METHOD_NOT_ALLOWED, &[]),
    }
}

/// One engine call whose `data` is the whole answer.
async fn call(sr: &Strongroom, req: Request) -> HttpResponse {
    match sr.handle(req).await {
        Ok(resp) => json(
            StatusCode::OK,
            &Value::Object(resp.data.unwrap_or_default()),
        ),
        Err(e) => envelope::error(&e),
    }
}

/// `sys/health`: the engine's body; the status from its state and the `standbyok`,
/// `activecode`, `standbycode`, `sealedcode` and `uninitcode` query overrides.
async fn health(sr: &Strongroom, query: Option<&str>, head: bool) -> HttpResponse {
    let q = input::query_data(query);
    let codes = match HealthCodes::from_query(&q) {
        Some(c) => c,
        None => return errors(StatusCode::BAD_REQUEST, &[]),
    };
    let resp = match sr.handle(Request::new(Operation::Read, "sys/health")).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e.message(), "error checking health");
            return errors(StatusCode::INTERNAL_SERVER_ERROR, &[]);
        }
    };
    let body = resp.data.unwrap_or_default();
    let flag = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
    let code = if !flag("initialized") {
        codes.uninit
    } else if flag("sealed") {
        codes.sealed
    } else if flag("standby") && !codes.standby_ok {
        codes.standby
    } else {
        codes.active
    };
    let st = status(code);
    if head {
        envelope::empty(st)
    } else {
        json(st, &Value::Object(body))
    }
}

/// The status codes `sys/health` answers with.
struct HealthCodes {
    standby_ok: bool,
    active: u16,
    standby: u16,
    sealed: u16,
    uninit: u16,
}

impl HealthCodes {
    /// Defaults (200, 429, 503, 501) with the query's overrides; `None` for a bad value.
    fn from_query(q: &Data) -> Option<HealthCodes> {
        let code = |key: &str, default: u16| -> Option<u16> {
            match q.get(key) {
                None => Some(default),
                Some(v) => first(v)?
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=999).contains(c)),
            }
        };
        let standby_ok = match q.get("standbyok") {
            None => false,
            Some(v) => input::parse_bool(first(v)?)?,
        };
        Some(HealthCodes {
            standby_ok,
            active: code("activecode", 200)?,
            standby: code("standbycode", 429)?,
            sealed: code("sealedcode", 503)?,
            uninit: code("uninitcode", 501)?,
        })
    }
}

/// The first value of a query parameter (a string, or the first of several).
fn first(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Array(a) => a.first().and_then(Value::as_str),
        _ => None,
    }
}
