//! Transit key types and what each can do.

use std::fmt;

use crate::error::{Error, Result};

/// A transit key type, named as in `keys/:name type=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyType {
    /// AES-128-GCM, 96-bit nonce.
    Aes128Gcm96,
    /// AES-256-GCM, 96-bit nonce (the default).
    Aes256Gcm96,
    /// ChaCha20-Poly1305, 96-bit nonce.
    ChaCha20Poly1305,
    /// XChaCha20-Poly1305, 192-bit nonce. Recognised, but aws-lc-rs has no XChaCha20 AEAD
    /// yet, so creating or using such a key is refused.
    XChaCha20Poly1305,
    /// A bare HMAC key (`hmac/` only); its key bytes are the HMAC key.
    Hmac,
}

impl KeyType {
    /// Every symmetric type that encrypts.
    pub(crate) const ENCRYPTING: [KeyType; 4] = [
        KeyType::Aes128Gcm96,
        KeyType::Aes256Gcm96,
        KeyType::ChaCha20Poly1305,
        KeyType::XChaCha20Poly1305,
    ];

    /// Parse OpenBao's type name. Asymmetric types are known to OpenBao but not built here.
    pub(crate) fn parse(name: &str) -> Result<KeyType> {
        match name {
            "aes128-gcm96" => Ok(KeyType::Aes128Gcm96),
            "aes256-gcm96" => Ok(KeyType::Aes256Gcm96),
            "chacha20-poly1305" => Ok(KeyType::ChaCha20Poly1305),
            "xchacha20-poly1305" => Ok(KeyType::XChaCha20Poly1305),
            "hmac" => Ok(KeyType::Hmac),
            "ed25519" | "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" | "rsa-2048" | "rsa-3072"
            | "rsa-4096" | "external-key" => Err(Error::invalid_input(format!(
                "key type {name} is not supported yet"
            ))),
            _ => Err(Error::invalid_input(format!("unknown key type {name}"))),
        }
    }

    /// OpenBao's name for the type.
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::XChaCha20Poly1305 => "xchacha20-poly1305",
            KeyType::Hmac => "hmac",
        }
    }

    /// Whether the type encrypts and decrypts.
    pub(crate) fn supports_encryption(self) -> bool {
        !matches!(self, KeyType::Hmac)
    }

    /// Whether per-request keys can be derived from it.
    pub(crate) fn supports_derivation(self) -> bool {
        self.supports_encryption()
    }

    /// Length of a newly generated key (`hmac` keys take `key_size` instead).
    pub(crate) fn key_len(self) -> usize {
        match self {
            KeyType::Aes128Gcm96 => 16,
            _ => 32,
        }
    }

    /// Nonce length of the AEAD, which prefixes every ciphertext.
    pub(crate) fn nonce_len(self) -> usize {
        match self {
            KeyType::XChaCha20Poly1305 => 24,
            _ => 12,
        }
    }

    /// Refuse types whose cipher aws-lc-rs does not provide.
    pub(crate) fn ensure_available(self) -> Result<()> {
        match self {
            KeyType::XChaCha20Poly1305 => Err(KeyType::xchacha_unavailable()),
            _ => Ok(()),
        }
    }

    /// aws-lc-rs has no XChaCha20-Poly1305 AEAD; until it does, such keys are refused.
    pub(crate) fn xchacha_unavailable() -> Error {
        Error::invalid_input("key type xchacha20-poly1305 is not supported yet")
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How derived keys are computed from a version key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Kdf {
    /// HKDF-SHA256 (ikm = version key, empty salt, info = context): every new key.
    #[default]
    HkdfSha256,
    /// Legacy NIST SP 800-108 counter mode with HMAC-SHA256 and 256 output bits.
    HmacSha256Counter,
}

impl Kdf {
    /// OpenBao's name, shown as `kdf` on a key read.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kdf::HkdfSha256 => "hkdf_sha256",
            Kdf::HmacSha256Counter => "hmac-sha256-counter",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in KeyType::ENCRYPTING.into_iter().chain([KeyType::Hmac]) {
            assert_eq!(KeyType::parse(t.name()).unwrap(), t);
        }
        assert_eq!(
            KeyType::parse("des").unwrap_err().message(),
            "unknown key type des"
        );
        assert!(KeyType::parse("rsa-2048").is_err());
    }

    #[test]
    fn sizes_follow_openbao() {
        assert_eq!(KeyType::Aes128Gcm96.key_len(), 16);
        assert_eq!(KeyType::Aes256Gcm96.key_len(), 32);
        assert_eq!(KeyType::ChaCha20Poly1305.nonce_len(), 12);
        assert_eq!(KeyType::XChaCha20Poly1305.nonce_len(), 24);
        assert!(KeyType::XChaCha20Poly1305.ensure_available().is_err());
        assert!(!KeyType::Hmac.supports_encryption());
    }
}
