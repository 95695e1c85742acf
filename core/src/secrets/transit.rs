//! The transit engine's cryptographic core: key rings, OpenBao's `vault:v<N>:` ciphertext
//! format, derived and convergent keys, and HMACs.
//!
//! Only what the HTTP paths call; it knows nothing of storage or requests. Source of truth:
//! OpenBao's `sdk/helper/keysutil/policy.go` (see `openbao-behaviour.md` §5).
//!
//! Key bytes live in [`zeroize::Zeroizing`] buffers, so they are wiped on drop, and no error
//! message or `Debug` output ever shows key material or plaintext.

pub(crate) mod aead;
pub(crate) mod asym;
pub(crate) mod base64;
pub(crate) mod ciphertext;
pub(crate) mod der;
pub(crate) mod engine;
pub(crate) mod fields;
pub(crate) mod hmac;
pub(crate) mod key;
pub(crate) mod key_type;
pub(crate) mod rsa_sign;
pub(crate) mod store;
pub(crate) mod tools;

/// The convergent-encryption version new key versions get (OpenBao's
/// `currentConvergentVersion`); older versions are refused.
pub(crate) const CURRENT_CONVERGENT_VERSION: i32 = 3;
