//! From a [`strongroom::Response`] or [`strongroom::Error`] to OpenBao's JSON: the success
//! envelope (keys in OpenBao's order), the `{"errors":[...]}` envelope, 204 for an empty answer,
//! raw statuses, and the legacy routes that also copy `data` to the top level.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response as HttpResponse;
use serde_json::{Map, Value, json};
use strongroom::{Error, ErrorCode, Operation, Response, ResponseKind};

/// Routes whose `data` OpenBao also writes at the top level of the JSON (`injectDataIntoTopRoutes`
/// in its `http/handler.go`). Go's mux matches these exactly ...
const INJECT_EXACT: &[&str] = &[
    "sys/audit",
    "sys/auth",
    "sys/config/cors",
    "sys/config/auditing/request-headers",
    "sys/capabilities",
    "sys/capabilities-accessor",
    "sys/capabilities-self",
    "sys/ha-status",
    "sys/key-status",
    "sys/mounts",
    "sys/policy",
    "sys/rekey/backup",
    "sys/rekey/recovery-key-backup",
    "sys/rotate/root/backup",
    "sys/rotate/recovery/backup",
    "sys/remount",
    "sys/rotate",
    "sys/rotate/keyring",
    "sys/wrapping/wrap",
];

/// ... and these (registered with a trailing `/`) as prefixes.
const INJECT_PREFIX: &[&str] = &[
    "sys/audit/",
    "sys/audit-hash/",
    "sys/auth/",
    "sys/config/auditing/request-headers/",
    "sys/mounts/",
    "sys/policy/",
];

/// Whether responses on this path (relative to `/v1/`, as sent) get `data` at the top level.
pub(crate) fn injects_data(path: &str) -> bool {
    INJECT_EXACT.contains(&path) || INJECT_PREFIX.iter().any(|p| path.starts_with(p))
}

/// A response with this status and a JSON body (Go's encoder adds a newline).
pub(crate) fn json(status: StatusCode, body: &Value) -> HttpResponse {
    // `to_vec` writes straight into the buffer; `to_string` (Display) goes through
    // `fmt::Write` a piece at a time. The bytes are the same.
    let mut text = serde_json::to_vec(body).unwrap_or_default();
    text.push(b'\n');
    with_body(status, Body::from(text))
}

/// A response with this status, `Content-Type: application/json` and no body.
pub(crate) fn empty(status: StatusCode) -> HttpResponse {
    with_body(status, Body::empty())
}

fn with_body(status: StatusCode, body: Body) -> HttpResponse {
    let mut resp = HttpResponse::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `{"errors":[...]}` with this status.
pub(crate) fn errors(status: StatusCode, messages: &[&str]) -> HttpResponse {
    json(status, &json!({ "errors": messages }))
}

/// An engine error. A not-found error is OpenBao's nil response: 404 `{"errors":[]}`.
pub(crate) fn error(e: &Error) -> HttpResponse {
    let status = status(e.code().http_status());
    if e.code() == ErrorCode::NotFound {
        return errors(status, &[]);
    }
    if status.is_server_error() {
        // Engine messages carry no secret values, so they may be logged.
        tracing::warn!(code = %e.code(), status = status.as_u16(), error = %e.message(), "request failed");
    }
    errors(status, &[&e.wire_message()])
}

/// The status OpenBao answers with for a response of this kind; `None` for the usual
/// 200/204 (and the LIST rules).
fn kind_status(kind: ResponseKind) -> Option<u16> {
    match kind {
        ResponseKind::Accepted => Some(202),
        ResponseKind::NotFound => Some(404),
        // Any failed item makes a batch 400 (500 when only internal errors failed), unless the
        // request named a status for a partial failure.
        ResponseKind::BatchFailed {
            code,
            partial_status,
        } => Some(partial_status.unwrap_or_else(|| code.http_status())),
        _ => None,
    }
}

/// A status from a number, falling back to 500 for one HTTP cannot carry.
pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A successful engine answer to a request with operation `op`; `inject` copies `data` to the
/// top level (legacy routes).
pub(crate) fn success(op: Operation, resp: Response, inject: bool) -> HttpResponse {
    if let Some(raw) = raw_body(&resp) {
        return raw;
    }
    // A kind with its own status (KV's 404 for a deleted version, 202 for a tidy, a batch
    // with failed items): the envelope when there is something to say, an empty body otherwise.
    if let Some(code) = kind_status(resp.kind) {
        let st = status(code);
        if resp.data.is_none() && resp.warnings.is_empty() && resp.auth.is_none() {
            return empty(st);
        }
        return json(st, &Value::Object(envelope(&resp, inject)));
    }
    if op == Operation::List && resp.wrap_info.is_none() {
        if let Some(st) = list_status(&resp) {
            return if st == StatusCode::NOT_FOUND {
                errors(st, &[])
            } else {
                empty(st)
            };
        }
    }
    if resp.is_empty() {
        return empty(StatusCode::NO_CONTENT);
    }
    json(StatusCode::OK, &Value::Object(envelope(&resp, inject)))
}

/// OpenBao's raw responses (`logical.HTTPRawBody`): an engine answer whose data holds
/// `http_content_type`, `http_raw_body` (base64, as Go encodes `[]byte`) and
/// `http_status_code` goes out as that body with that type (a PKI mount's `ca`, `crl/pem`).
fn raw_body(resp: &Response) -> Option<HttpResponse> {
    use base64::Engine as _;
    let d = resp.data.as_ref()?;
    let ct = d.get("http_content_type")?.as_str()?;
    let body = d.get("http_raw_body")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let code = d
        .get("http_status_code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(200);
    let mut r = HttpResponse::new(Body::from(bytes));
    *r.status_mut() = status(code);
    let ct =
        HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    r.headers_mut().insert(CONTENT_TYPE, ct);
    Some(r)
}

/// An unwrapped response: OpenBao hands back the stored JSON as a raw body, so it has no
/// trailing newline (and keeps the original request id).
pub(crate) fn unwrapped(op: Operation, resp: Response) -> HttpResponse {
    if resp.is_empty() || resp.wrap_info.is_some() {
        return success(op, resp, false);
    }
    with_body(
        StatusCode::OK,
        Body::from(Value::Object(resp.envelope()).to_string()),
    )
}

/// OpenBao answers a LIST with no keys (or an empty `keys`) with 404 `{"errors":[]}`, like a
/// read of nothing. Keys that are not all strings are a server error.
fn list_status(resp: &Response) -> Option<StatusCode> {
    let data = match &resp.data {
        Some(d) if !d.is_empty() => d,
        _ if !resp.warnings.is_empty() => return None,
        _ => return Some(StatusCode::NOT_FOUND),
    };
    match data.get("keys") {
        None | Some(Value::Null) => None,
        Some(Value::Array(keys)) if keys.iter().any(|k| !k.is_string()) => {
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Some(Value::Array(keys)) if keys.is_empty() => Some(StatusCode::NOT_FOUND),
        Some(Value::Array(_)) => None,
        Some(_) => Some(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The success envelope (see [`Response::envelope`]); `inject` also copies `data` to the top
/// level first, as OpenBao's legacy routes do.
fn envelope(resp: &Response, inject: bool) -> Map<String, Value> {
    let env = resp.envelope();
    if !inject || resp.wrap_info.as_ref().is_some_and(|w| w.is_set()) {
        return env;
    }
    let mut out = Map::new();
    if let Some(data) = &resp.data {
        out.extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out.extend(env);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use http_body_util::BodyExt;
    use strongroom::{Auth, data};

    async fn body_of(r: HttpResponse) -> String {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn envelope_keys_come_in_openbao_order() {
        let resp = Response {
            request_id: "id".into(),
            data: Some(data(json!({"a": "b"}))),
            ..Response::default()
        };
        let r = success(Operation::Read, resp, false);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            body_of(r).await,
            "{\"request_id\":\"id\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,\"data\":{\"a\":\"b\"},\"wrap_info\":null,\"warnings\":null,\"auth\":null}\n"
        );
    }

    #[tokio::test]
    async fn auth_fields_match_openbao() {
        let resp = Response {
            auth: Some(Auth {
                client_token: "s.x".into(),
                policies: vec!["root".into()],
                token_type: "service".into(),
                ..Auth::default()
            }),
            ..Response::default()
        };
        let body: Value =
            serde_json::from_str(&body_of(success(Operation::Update, resp, false)).await).unwrap();
        let keys: Vec<_> = body["auth"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "client_token",
                "accessor",
                "policies",
                "metadata",
                "lease_duration",
                "renewable",
                "entity_id",
                "token_type",
                "orphan",
                "mfa_requirement",
                "num_uses"
            ]
        );
    }

    #[tokio::test]
    async fn empty_answers_and_raw_statuses() {
        let r = success(Operation::Update, Response::default(), false);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(body_of(r).await, "");
        let raw = Response {
            kind: ResponseKind::NotFound,
            ..Response::default()
        };
        let r = success(Operation::Patch, raw, false);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_of(r).await, "");
        let raw = Response {
            kind: ResponseKind::NotFound,
            data: Some(data(json!({"data": null}))),
            ..Response::default()
        };
        let r = success(Operation::Read, raw, false);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(body_of(r).await.starts_with("{\"request_id\""));
    }

    #[tokio::test]
    async fn statuses_follow_the_response_kind() {
        let with = |kind| Response {
            kind,
            data: Some(data(json!({"batch_results": []}))),
            ..Response::default()
        };
        let cases = [
            (ResponseKind::Done, StatusCode::OK),
            (ResponseKind::Accepted, StatusCode::ACCEPTED),
            (ResponseKind::NotFound, StatusCode::NOT_FOUND),
            (
                ResponseKind::BatchFailed {
                    code: ErrorCode::InvalidInput,
                    partial_status: None,
                },
                StatusCode::BAD_REQUEST,
            ),
            (
                ResponseKind::BatchFailed {
                    code: ErrorCode::Internal,
                    partial_status: None,
                },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                ResponseKind::BatchFailed {
                    code: ErrorCode::InvalidInput,
                    partial_status: Some(207),
                },
                StatusCode::MULTI_STATUS,
            ),
        ];
        for (kind, want) in cases {
            let r = success(Operation::Update, with(kind), false);
            assert_eq!(r.status(), want, "{kind:?}");
        }
        // A tidy's 202 with nothing else to say has an empty body.
        let tidy = Response {
            kind: ResponseKind::Accepted,
            ..Response::default()
        };
        let r = success(Operation::Update, tidy, false);
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(body_of(r).await, "");
    }

    #[tokio::test]
    async fn empty_lists_are_not_found() {
        for d in [json!({}), json!({"keys": []})] {
            let resp = Response::with_data(data(d));
            let r = success(Operation::List, resp, false);
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
            assert_eq!(body_of(r).await, "{\"errors\":[]}\n");
        }
        let resp = Response::with_data(data(json!({"keys": ["a"]})));
        assert_eq!(
            success(Operation::List, resp, false).status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn legacy_routes_copy_data_to_the_top_level() {
        assert!(injects_data("sys/mounts"));
        assert!(injects_data("sys/mounts/secret/tune"));
        assert!(injects_data("sys/auth/token/tune"));
        assert!(!injects_data("sys/rotate/config"));
        assert!(!injects_data("secret/data/sys/mounts"));
        let resp = Response::with_data(data(json!({"secret/": {"type": "kv"}})));
        let body = body_of(success(Operation::Read, resp, true)).await;
        assert!(
            body.starts_with("{\"secret/\":{\"type\":\"kv\"},\"request_id\""),
            "{body}"
        );
    }

    #[tokio::test]
    async fn not_found_errors_are_empty() {
        let r = error(&Error::not_found("no value found at `x`"));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_of(r).await, "{\"errors\":[]}\n");
        let r = error(&Error::permission_denied());
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(body_of(r).await, "{\"errors\":[\"permission denied\"]}\n");
    }
}
