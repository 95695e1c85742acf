//! The Node.js binding: a napi-rs addon loaded by the `strongroom` npm package's thin JS layer
//! (`index.js`), which maps errors to `StrongroomError` subclasses and redacts secrets in
//! `util.inspect`. Each class wraps one core handle; methods convert, make one core call (on the
//! tokio runtime napi owns for this addon, returning a Promise) and tag the error with the core's
//! `ErrorCode` name. No business logic lives here.
#![cfg_attr(
    test,
    allow(
        dead_code,
        reason = "napi-derive registers the exports only outside `cfg(test)`"
    )
)]
#![allow(
    unsafe_code,
    reason = "napi-derive's generated registration and conversion code; no hand-written unsafe"
)]

mod client;
mod convert;
mod database;
mod engine;
mod leases;
