//! The PKI engine (`pki` mounts): root and intermediate CAs with OpenBao's multi-issuer API,
//! roles, issuing and signing, revocation with an incrementally built CRL, tidy.
//!
//! Certificates, CSRs and CRLs are built by rcgen and read by x509-parser; keys are generated
//! by aws-lc-rs (through rcgen). Keys and issuers are stored in the mount's storage view,
//! behind the barrier. Source of truth: OpenBao 2.7.2's `builtin/logical/pki`, checked side by
//! side with `bao server -dev`.

pub(crate) mod build;
pub(crate) mod crl;
pub(crate) mod crypto;
pub(crate) mod engine;
pub(crate) mod fields;
pub(crate) mod role;
pub(crate) mod store;
