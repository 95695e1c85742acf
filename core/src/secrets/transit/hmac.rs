//! `hmac/:name[/:algo]` and `verify/:name {hmac}`: HMACs in `vault:v<N>:<base64>` form.

use aws_lc_rs::hmac;

use crate::error::{Error, Result};

/// A hash for HMACs (`sha2-256` by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum HmacAlgorithm {
    /// `sha2-224`.
    Sha2_224,
    /// `sha2-256`.
    #[default]
    Sha2_256,
    /// `sha2-384`.
    Sha2_384,
    /// `sha2-512`.
    Sha2_512,
}

impl HmacAlgorithm {
    /// Parse OpenBao's hash name (`sha2-256`). SHA-3 names are valid in OpenBao but aws-lc-rs
    /// has no SHA-3 HMAC, so they are refused like an unknown name.
    pub(crate) fn parse(name: &str) -> Result<HmacAlgorithm> {
        match name {
            "sha2-224" => Ok(HmacAlgorithm::Sha2_224),
            "sha2-256" => Ok(HmacAlgorithm::Sha2_256),
            "sha2-384" => Ok(HmacAlgorithm::Sha2_384),
            "sha2-512" => Ok(HmacAlgorithm::Sha2_512),
            _ => Err(Error::invalid_input(format!(
                "unsupported algorithm {name:?}"
            ))),
        }
    }

    /// OpenBao's name.
    #[cfg_attr(not(test), allow(dead_code, reason = "names round-trip in tests"))]
    pub(crate) fn name(self) -> &'static str {
        match self {
            HmacAlgorithm::Sha2_224 => "sha2-224",
            HmacAlgorithm::Sha2_256 => "sha2-256",
            HmacAlgorithm::Sha2_384 => "sha2-384",
            HmacAlgorithm::Sha2_512 => "sha2-512",
        }
    }

    fn aws(self) -> hmac::Algorithm {
        match self {
            HmacAlgorithm::Sha2_224 => hmac::HMAC_SHA224,
            HmacAlgorithm::Sha2_256 => hmac::HMAC_SHA256,
            HmacAlgorithm::Sha2_384 => hmac::HMAC_SHA384,
            HmacAlgorithm::Sha2_512 => hmac::HMAC_SHA512,
        }
    }

    /// `HMAC(key, input)`.
    pub(crate) fn sign(self, key: &[u8], input: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.aws(), key), input)
            .as_ref()
            .to_vec()
    }

    /// Whether `tag` is `HMAC(key, input)`, compared in constant time.
    pub(crate) fn verify(self, key: &[u8], input: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&hmac::Key::new(self.aws(), key), input, tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = HmacAlgorithm::Sha2_256.sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mac = HmacAlgorithm::Sha2_224.sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(&mac),
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"
        );
        assert!(HmacAlgorithm::Sha2_256.verify(
            b"Jefe",
            b"what do ya want for nothing?",
            &HmacAlgorithm::Sha2_256.sign(b"Jefe", b"what do ya want for nothing?")
        ));
    }

    #[test]
    fn names_and_lengths() {
        for (n, len) in [
            ("sha2-224", 28),
            ("sha2-256", 32),
            ("sha2-384", 48),
            ("sha2-512", 64),
        ] {
            let a = HmacAlgorithm::parse(n).unwrap();
            assert_eq!(a.name(), n);
            assert_eq!(a.sign(b"k", b"x").len(), len);
        }
        assert_eq!(
            HmacAlgorithm::parse("md5").unwrap_err().message(),
            "unsupported algorithm \"md5\""
        );
    }
}
