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
    /// XChaCha20-Poly1305, 192-bit nonce (RustCrypto's implementation: aws-lc-rs has none).
    XChaCha20Poly1305,
    /// A bare HMAC key (`hmac/` only); its key bytes are the HMAC key.
    Hmac,
    /// Ed25519 signatures (derivable).
    Ed25519,
    /// ECDSA over NIST P-256.
    EcdsaP256,
    /// ECDSA over NIST P-384.
    EcdsaP384,
    /// ECDSA over NIST P-521.
    EcdsaP521,
    /// RSA with a 2048-bit modulus: OAEP-SHA256 encryption, PSS / PKCS#1 v1.5 signatures.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
}

impl KeyType {
    /// Every symmetric type that encrypts.
    pub(crate) const ENCRYPTING: [KeyType; 4] = [
        KeyType::Aes128Gcm96,
        KeyType::Aes256Gcm96,
        KeyType::ChaCha20Poly1305,
        KeyType::XChaCha20Poly1305,
    ];

    /// Every type, in OpenBao's numbering order where it has one.
    pub(crate) const ALL: [KeyType; 12] = [
        KeyType::Aes256Gcm96,
        KeyType::EcdsaP256,
        KeyType::Ed25519,
        KeyType::Rsa2048,
        KeyType::Rsa4096,
        KeyType::ChaCha20Poly1305,
        KeyType::EcdsaP384,
        KeyType::EcdsaP521,
        KeyType::Aes128Gcm96,
        KeyType::Rsa3072,
        KeyType::XChaCha20Poly1305,
        KeyType::Hmac,
    ];

    /// Parse OpenBao's type name. `external-key` (a KMS reference) is known but not built here.
    pub(crate) fn parse(name: &str) -> Result<KeyType> {
        if let Some(t) = KeyType::ALL.into_iter().find(|t| t.name() == name) {
            return Ok(t);
        }
        match name {
            "external-key" => Err(Error::invalid_input(format!(
                "key type {name} is not supported yet"
            ))),
            _ => Err(Error::invalid_input(format!("unknown key type {name}"))),
        }
    }

    /// OpenBao's stored number for the type (`keysutil.KeyType`), as in backups.
    pub(crate) fn number(self) -> u32 {
        match self {
            KeyType::Aes256Gcm96 => 0,
            KeyType::EcdsaP256 => 1,
            KeyType::Ed25519 => 2,
            KeyType::Rsa2048 => 3,
            KeyType::Rsa4096 => 4,
            KeyType::ChaCha20Poly1305 => 5,
            KeyType::EcdsaP384 => 6,
            KeyType::EcdsaP521 => 7,
            KeyType::Aes128Gcm96 => 8,
            KeyType::Rsa3072 => 9,
            KeyType::XChaCha20Poly1305 => 11,
            KeyType::Hmac => 10,
        }
    }

    /// The type with OpenBao's stored number `n`.
    pub(crate) fn from_number(n: u64) -> Result<KeyType> {
        KeyType::ALL
            .into_iter()
            .find(|t| u64::from(t.number()) == n)
            .ok_or_else(|| Error::invalid_input(format!("unsupported key type number {n}")))
    }

    /// Whether the type is one of the AEADs (encrypts with `nonce ‖ ct ‖ tag`).
    pub(crate) fn is_aead(self) -> bool {
        KeyType::ENCRYPTING.contains(&self)
    }

    /// Whether the type is an RSA key.
    pub(crate) fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    /// Whether the type is an ECDSA key.
    pub(crate) fn is_ecdsa(self) -> bool {
        matches!(
            self,
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521
        )
    }

    /// Whether the type signs and verifies.
    pub(crate) fn supports_signing(self) -> bool {
        self == KeyType::Ed25519 || self.is_ecdsa() || self.is_rsa()
    }

    /// Whether the type has a private/public key pair.
    pub(crate) fn is_asymmetric(self) -> bool {
        self.supports_signing()
    }

    /// OpenBao's name for the type.
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::XChaCha20Poly1305 => "xchacha20-poly1305",
            KeyType::Hmac => "hmac",
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::EcdsaP521 => "ecdsa-p521",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }

    /// Whether the type encrypts and decrypts.
    pub(crate) fn supports_encryption(self) -> bool {
        self.is_aead() || self.is_rsa()
    }

    /// Whether per-request keys can be derived from it.
    pub(crate) fn supports_derivation(self) -> bool {
        self.is_aead() || self == KeyType::Ed25519
    }

    /// Length of a newly generated key (`hmac` keys take `key_size` instead).
    pub(crate) fn key_len(self) -> usize {
        match self {
            KeyType::Aes128Gcm96 => 16,
            _ => 32,
        }
    }

    /// Nonce length of the AEAD, which prefixes every ciphertext.
    pub(crate) const fn nonce_len(self) -> usize {
        match self {
            KeyType::XChaCha20Poly1305 => 24,
            _ => 12,
        }
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
        assert_eq!(KeyType::parse("rsa-2048").unwrap(), KeyType::Rsa2048);
        assert!(KeyType::parse("external-key").is_err());
        for t in KeyType::ALL {
            assert_eq!(KeyType::parse(t.name()).unwrap(), t);
            assert_eq!(KeyType::from_number(u64::from(t.number())).unwrap(), t);
        }
    }

    #[test]
    fn sizes_follow_openbao() {
        assert_eq!(KeyType::Aes128Gcm96.key_len(), 16);
        assert_eq!(KeyType::Aes256Gcm96.key_len(), 32);
        assert_eq!(KeyType::ChaCha20Poly1305.nonce_len(), 12);
        assert_eq!(KeyType::XChaCha20Poly1305.nonce_len(), 24);
        assert_eq!(KeyType::XChaCha20Poly1305.key_len(), 32);
        assert!(KeyType::XChaCha20Poly1305.supports_derivation());
        assert!(!KeyType::Hmac.supports_encryption());
    }
}
