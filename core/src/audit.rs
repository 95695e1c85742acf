//! Audit devices: every request and response, as one JSON line per entry in OpenBao's shape,
//! with secrets replaced by per-device HMACs, written to files, standard output or sockets.
//!
//! Devices come from the host application's configuration ([`AuditDevice`]); the API
//! (`sys/audit/:path`) may add more only when the configuration allows it, as OpenBao's
//! `unsafe_allow_api_audit_creation` does. Unlike Vault and OpenBao, a device that blocks cannot hang the engine: each device
//! has a [`FailurePolicy`] and its own writer thread behind a bounded queue, and a required
//! device that misses its deadline fails the call instead of stalling it.
//!
//! * [`config`]: [`AuditDevice`], [`FailurePolicy`] and OpenBao's options.
//! * [`entry`]: what an entry is built from ([`AuditInput`], [`AuditAuth`]) and the JSON lines.
//! * [`salt`]: the per-device salt and `hmac-sha256:` hashes.
//! * [`sink`]: files, standard output, sockets.
//! * [`broker`]: queues, writer threads, failure policies, statistics.

pub(crate) mod broker;
pub(crate) mod config;
pub(crate) mod entry;
pub(crate) mod json;
pub(crate) mod salt;
pub(crate) mod sink;
pub(crate) mod table;
pub(crate) mod time;

pub(crate) use broker::AuditBroker;
pub use broker::AuditDeviceStats;
pub use config::{
    AuditDevice, AuditKind, DEFAULT_AUDIT_DEADLINE, DEFAULT_AUDIT_QUEUE_CAPACITY, FailurePolicy,
    SocketType,
};
pub(crate) use entry::{AuditAuth, AuditInput, AuditMemo, GrantingPolicy, PolicyResults};
