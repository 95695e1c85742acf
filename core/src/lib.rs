//! Strongroom: Vault's secrets-management core as an embeddable library.
//!
//! One engine, two shapes: call it in-process through [`Strongroom`] and [`Client`], or serve it
//! over Vault's HTTP API. Every call goes through [`Strongroom::handle`].
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

mod audit;
mod auth;
mod barrier;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals;
mod client;
mod clock;
mod config;
mod error;
mod ha;
mod identity;
mod leases;
mod metrics;
mod mounts;
mod password_policy;
mod pipeline;
mod policies;
pub(crate) mod policy;
mod request;
mod router;
mod scheduler;
pub(crate) mod secrets;
// Storage backends are engine internals: the engine's own tests and benchmarks reach them
// through `bench-internals` (hidden, not part of the API); everyone else names a store with
// `Config::memory/sqlite/postgres`.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod storage;
#[cfg(not(feature = "bench-internals"))]
mod storage;
mod strongroom;
mod sys;
pub mod template;
mod token;
pub(crate) mod util;
mod wrapping;

pub use audit::{
    AuditDevice, AuditDeviceStats, AuditKind, DEFAULT_AUDIT_DEADLINE, DEFAULT_AUDIT_QUEUE_CAPACITY,
    FailurePolicy, SocketType,
};
pub use auth::lockout::UserLockout;
pub use client::{
    AppRole, AuthMethods, CertEvent, CertKeeper, CertKeeperAction, CertificateRecord, Ciphertext,
    Client, CredentialKeeper, DataKey, Database, DbCredential, EncryptOptions, IntoSecretString,
    IssuedCertificate, KeeperAction, KeeperOptions, KeeperResolver, KeeperTask, KeeperUpdates,
    KeyConfig, Kubernetes, Kv, KvMetadata, KvSecret, KvVersion, KvVersionState, LeaseDetails,
    Leases, Pki, Plaintext, RenewedLease, SecretData, SecretId, StaticCredential, Subscription,
    Sys, TokenInfo, TokenRequest, Tokens, Transit, Userpass,
};
pub use clock::{Clock, SharedClock, SystemClock, VirtualClock};
pub use config::{
    Config, DEFAULT_MAX_ENTRY_SIZE, DevOptions, HaSettings, StorageConfig, UnsealKeySource,
    check_postgres_table_name,
};
pub use error::{Error, ErrorCode, Result};
pub use leases::{ExpiryReport, LeaseConfig, LeaseEvent, LeaseStats, MountLeaseStats};
pub use metrics::EngineMetrics;
pub use request::{
    Auth, Data, LeaseInfo, Operation, Request, Response, ResponseKind, WrapInfo, data,
};
pub use strongroom::{InitResponse, SealStatus, Strongroom};
pub use util::duration::parse_duration;
