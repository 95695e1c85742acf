//! `hmac/:name[/:algo]` and `verify/:name {hmac}`: HMACs in `vault:v<N>:<base64>` form.
//!
//! SHA-1 and SHA-2 HMACs are aws-lc-rs's; aws-lc-rs has no SHA-3 HMAC (and no SHA3-224 at
//! all), so the SHA-3 ones are RustCrypto's `hmac` over `sha3`.

use ::hmac::{KeyInit, Mac};
use aws_lc_rs::hmac;

use crate::error::{Error, Result};

/// A hash for HMACs (`sha2-256` by default): every name OpenBao's `hmac` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum HmacAlgorithm {
    /// `sha1`.
    Sha1,
    /// `sha2-224`.
    Sha2_224,
    /// `sha2-256`.
    #[default]
    Sha2_256,
    /// `sha2-384`.
    Sha2_384,
    /// `sha2-512`.
    Sha2_512,
    /// `sha3-224`.
    Sha3_224,
    /// `sha3-256`.
    Sha3_256,
    /// `sha3-384`.
    Sha3_384,
    /// `sha3-512`.
    Sha3_512,
}

/// Every algorithm, in OpenBao's order.
pub(crate) const ALL: [HmacAlgorithm; 9] = [
    HmacAlgorithm::Sha1,
    HmacAlgorithm::Sha2_224,
    HmacAlgorithm::Sha2_256,
    HmacAlgorithm::Sha2_384,
    HmacAlgorithm::Sha2_512,
    HmacAlgorithm::Sha3_224,
    HmacAlgorithm::Sha3_256,
    HmacAlgorithm::Sha3_384,
    HmacAlgorithm::Sha3_512,
];

fn by_name(name: &str) -> Option<HmacAlgorithm> {
    ALL.into_iter().find(|a| a.name() == name)
}

/// `none` names no hash; OpenBao refuses it on both paths with this text.
const NONE_REFUSED: &str = "algorithm cannot be none";

impl HmacAlgorithm {
    /// Parse the algorithm of `hmac/:name[/:algo]`. OpenBao's text for an unknown name is
    /// `unsupported algorithm '\x00'` whatever the name (it prints the zero hash value).
    pub(crate) fn parse(name: &str) -> Result<HmacAlgorithm> {
        match name {
            "none" => Err(Error::invalid_input(NONE_REFUSED)),
            _ => by_name(name).ok_or_else(|| Error::invalid_input("unsupported algorithm '\\x00'")),
        }
    }

    /// Parse the algorithm of `verify/:name[/:algo] {hmac}`: there OpenBao checks the name
    /// as a signature hash first, so an unknown one is `invalid hash algorithm "<name>"`.
    pub(crate) fn parse_for_verify(name: &str) -> Result<HmacAlgorithm> {
        match name {
            "none" => Err(Error::invalid_input(NONE_REFUSED)),
            _ => by_name(name)
                .ok_or_else(|| Error::invalid_input(format!("invalid hash algorithm {name:?}"))),
        }
    }

    /// OpenBao's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HmacAlgorithm::Sha1 => "sha1",
            HmacAlgorithm::Sha2_224 => "sha2-224",
            HmacAlgorithm::Sha2_256 => "sha2-256",
            HmacAlgorithm::Sha2_384 => "sha2-384",
            HmacAlgorithm::Sha2_512 => "sha2-512",
            HmacAlgorithm::Sha3_224 => "sha3-224",
            HmacAlgorithm::Sha3_256 => "sha3-256",
            HmacAlgorithm::Sha3_384 => "sha3-384",
            HmacAlgorithm::Sha3_512 => "sha3-512",
        }
    }

    fn aws(self) -> Option<hmac::Algorithm> {
        Some(match self {
            HmacAlgorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            HmacAlgorithm::Sha2_224 => hmac::HMAC_SHA224,
            HmacAlgorithm::Sha2_256 => hmac::HMAC_SHA256,
            HmacAlgorithm::Sha2_384 => hmac::HMAC_SHA384,
            HmacAlgorithm::Sha2_512 => hmac::HMAC_SHA512,
            _ => return None,
        })
    }

    /// `HMAC(key, input)`.
    pub(crate) fn sign(self, key: &[u8], input: &[u8]) -> Vec<u8> {
        fn rc<M: Mac + KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
            // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(input);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            HmacAlgorithm::Sha3_224 => rc::<::hmac::Hmac<sha3::Sha3_224>>(key, input),
            HmacAlgorithm::Sha3_256 => rc::<::hmac::Hmac<sha3::Sha3_256>>(key, input),
            HmacAlgorithm::Sha3_384 => rc::<::hmac::Hmac<sha3::Sha3_384>>(key, input),
            HmacAlgorithm::Sha3_512 => rc::<::hmac::Hmac<sha3::Sha3_512>>(key, input),
            other => match other.aws() {
                Some(alg) => hmac::sign(&hmac::Key::new(alg, key), input)
                    .as_ref()
                    .to_vec(),
                None => Vec::new(),
            },
        }
    }

    /// Whether `tag` is `HMAC(key, input)`, compared in constant time.
    pub(crate) fn verify(self, key: &[u8], input: &[u8], tag: &[u8]) -> bool {
        fn rc<M: Mac + KeyInit>(key: &[u8], input: &[u8], tag: &[u8]) -> bool {
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(input);
                    m.verify_slice(tag).is_ok()
                }
                Err(_) => false,
            }
        }
        match self {
            HmacAlgorithm::Sha3_224 => rc::<::hmac::Hmac<sha3::Sha3_224>>(key, input, tag),
            HmacAlgorithm::Sha3_256 => rc::<::hmac::Hmac<sha3::Sha3_256>>(key, input, tag),
            HmacAlgorithm::Sha3_384 => rc::<::hmac::Hmac<sha3::Sha3_384>>(key, input, tag),
            HmacAlgorithm::Sha3_512 => rc::<::hmac::Hmac<sha3::Sha3_512>>(key, input, tag),
            other => match other.aws() {
                Some(alg) => hmac::verify(&hmac::Key::new(alg, key), input, tag).is_ok(),
                None => false,
            },
        }
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
    fn sha1_and_sha3_known_answers() {
        // RFC 2202 test case 2 (HMAC-SHA1).
        assert_eq!(
            hex::encode(HmacAlgorithm::Sha1.sign(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // NIST's HMAC-SHA3 examples, the 'Sample message for keylen<blocklen' cases.
        let key: Vec<u8> = (0u8..0x20).collect();
        let msg = b"Sample message for keylen<blocklen";
        assert_eq!(
            hex::encode(HmacAlgorithm::Sha3_256.sign(&key, msg)),
            "4fe8e202c4f058e8dddc23d8c34e467343e23555e24fc2f025d598f558f67205"
        );
        let key: Vec<u8> = (0u8..0x1c).collect();
        assert_eq!(
            hex::encode(HmacAlgorithm::Sha3_224.sign(&key, msg)),
            "332cfd59347fdb8e576e77260be4aba2d6dc53117b3bfb52c6d18c04"
        );
    }

    #[test]
    fn names_and_lengths() {
        for (n, len) in [
            ("sha1", 20),
            ("sha2-224", 28),
            ("sha2-256", 32),
            ("sha2-384", 48),
            ("sha2-512", 64),
            ("sha3-224", 28),
            ("sha3-256", 32),
            ("sha3-384", 48),
            ("sha3-512", 64),
        ] {
            let a = HmacAlgorithm::parse(n).unwrap();
            assert_eq!(a.name(), n);
            let mac = a.sign(b"k", b"x");
            assert_eq!(mac.len(), len);
            assert!(a.verify(b"k", b"x", &mac));
            assert!(!a.verify(b"k", b"y", &mac));
        }
        assert_eq!(
            HmacAlgorithm::parse("md5").unwrap_err().message(),
            "unsupported algorithm '\\x00'"
        );
        assert_eq!(
            HmacAlgorithm::parse_for_verify("md5")
                .unwrap_err()
                .message(),
            "invalid hash algorithm \"md5\""
        );
        for parse in [HmacAlgorithm::parse, HmacAlgorithm::parse_for_verify] {
            assert_eq!(
                parse("none").unwrap_err().message(),
                "algorithm cannot be none"
            );
        }
    }
}
