//! Strongroom: Vault's secrets-management core as an embeddable library.
#![forbid(unsafe_code)]
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

#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals;
mod clock;
mod error;
pub(crate) mod policy;
mod request;
pub(crate) mod secrets;
pub mod storage;
pub(crate) mod util;

pub use clock::{Clock, SharedClock, SystemClock, VirtualClock};
pub use error::{Error, ErrorCode, Result};
pub use request::{Auth, Data, LeaseInfo, Operation, Request, Response, WrapInfo, data};
