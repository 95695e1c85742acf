//! The C ABI of Strongroom, in the manner of rustls-ffi: opaque handles (`sr_strongroom`,
//! `sr_client`, ...), every function returns an [`sr_result`] whose values are the core's
//! `ErrorCode` numbers, results come back through out-parameters, and the message of the last
//! failure on this thread is [`sr_error_message`]. Every function wraps one call of the core's
//! public surface; no business logic lives here.
//!
//! # The contract every function keeps (see docs/c.md)
//! - Pointer arguments are NULL or valid for the call; NULL where a value is needed answers
//!   `SR_INVALID_INPUT` and changes nothing. Strings are NUL-terminated UTF-8.
//! - Out-parameters are set to NULL / 0 first, so a failed call leaves nothing to free.
//! - Whatever the library hands out has its `_free`; freeing NULL, or freeing the same
//!   pointer twice, does nothing. Strings and byte buffers are zeroed when freed.
//! - A panic inside the library is caught at the boundary and answered as `SR_INTERNAL`.
//! - Blocking calls run on the library's own Tokio runtime and may be made from any number of
//!   threads at once; a call made from inside a Tokio runtime is refused with
//!   `SR_UNSUPPORTED_OPERATION` rather than deadlock.
#![allow(
    unsafe_code,
    reason = "the C ABI: raw pointers in and out; each block says why it is sound"
)]
#![allow(
    non_camel_case_types,
    reason = "C names (sr_client, sr_result) are the ABI"
)]
#![allow(
    clippy::missing_safety_doc,
    reason = "one contract for every function, in the crate docs and docs/c.md"
)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        reason = "tests"
    )
)]

mod abi;
mod client;
mod engine;
mod events;
mod result;
mod transit;

pub use abi::{sr_bytes_free, sr_error_message, sr_result_name, sr_string_free, sr_version};
pub use client::*;
pub use engine::*;
pub use events::*;
pub use result::sr_result;
pub use transit::*;

#[doc(hidden)]
pub use abi::guard as __guard;
