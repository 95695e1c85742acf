//! The HTTP floor for `bench/floor.sh`: the smallest axum server on the same stack as
//! `strongroom server` (tokio multi-thread runtime, axum-server, HTTP/1, mimalloc) that reads
//! the request body and answers a fixed JSON body of a given size. What it costs per request is
//! what any server on this stack costs; the rest of a Strongroom request's CPU is ours.
//!
//! ```text
//! cargo run --release -p strongroom-server --example http_floor -- 127.0.0.1:18500 300
//! ```
#![allow(clippy::print_stderr, reason = "a benchmark helper's usage line")]

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr: Option<SocketAddr> = args.next().and_then(|a| a.parse().ok());
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let Some(addr) = addr else {
        eprintln!("usage: http_floor ADDR [BODY_BYTES]");
        return ExitCode::from(2);
    };
    // A JSON object of exactly `size` bytes (at least the braces and one key).
    let filler = size.saturating_sub(r#"{"data":""}"#.len() + 1);
    let body: &'static str =
        Box::leak(format!("{{\"data\":\"{}\"}}\n", "x".repeat(filler)).into_boxed_str());
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("cannot start the runtime");
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| async move {
            // Read the whole body, as a real handler must.
            let _ = req.into_body().collect().await;
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::OK;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        });
        match std::net::TcpListener::bind(addr).and_then(|l| {
            l.set_nonblocking(true)?;
            axum_server::from_tcp(l)
        }) {
            Ok(server) => {
                let _ = server.http1_only().serve(app.into_make_service()).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot listen on {addr}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
