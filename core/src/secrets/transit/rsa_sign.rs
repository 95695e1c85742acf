//! RSA signatures in every form OpenBao makes them: PKCS #1 v1.5 or PSS, over any
//! `hash_algorithm` (`none` = an unprefixed PKCS #1 v1.5 block), with any PSS salt length.
//!
//! aws-lc-rs signs only SHA-256/384/512 with a salt of the hash length or the maximum; those
//! stay on it (the common, fast case). Everything else — SHA-1, SHA-224, SHA-3, `none`, other
//! salt lengths, and verifying `auto` salts of any length as Go does — is RustCrypto's `rsa`
//! (0.10: constant-time arithmetic, blinded private operations), which aws-lc-rs cannot
//! replace because it exposes no raw RSA operation.

use std::sync::OnceLock;

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::rsa::{KeyPair, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::{
    self, KeyPair as _, RsaParameters, RsaPssSaltLength, RsaSignatureEncoding, UnparsedPublicKey,
};
use rsa::signature::hazmat::PrehashVerifier;
use zeroize::Zeroizing;

use super::asym::{HashAlgorithm, SaltLength, SignOptions};
use crate::error::{Error, Result};

/// One RSA key version: aws-lc-rs's halves, and the RustCrypto key made on first need.
pub(crate) struct RsaKey {
    pub(crate) pair: KeyPair,
    pub(crate) decrypting: OaepPrivateDecryptingKey,
    pkcs8: Zeroizing<Vec<u8>>,
    rustcrypto: OnceLock<Option<rsa::PrivateKey>>,
}

/// OpenBao's text (`sdk/helper/keysutil`) for a hash that is not the input's length.
const NOT_HASHED: &str = "crypto/rsa: input must be hashed with given hash";

fn salt_invalid(n: usize) -> String {
    format!("requested salt length {n} is invalid")
}

fn failed() -> Error {
    Error::internal("signing failed")
}

macro_rules! encodings {
    ($($name:ident = $base:ident . $salt:ident;)*) => {
        $(static $name: RsaSignatureEncoding =
            signature::$base.with_pss_salt_length(RsaPssSaltLength::$salt);)*
    };
}
encodings! {
    PSS256_D = RSA_PSS_SHA256.Digest; PSS256_M = RSA_PSS_SHA256.Max;
    PSS384_D = RSA_PSS_SHA384.Digest; PSS384_M = RSA_PSS_SHA384.Max;
    PSS512_D = RSA_PSS_SHA512.Digest; PSS512_M = RSA_PSS_SHA512.Max;
}

macro_rules! params {
    ($($name:ident = $base:ident . $salt:ident;)*) => {
        $(static $name: RsaParameters =
            signature::$base.with_pss_salt_length(RsaPssSaltLength::$salt);)*
    };
}
params! {
    VPSS256_D = RSA_PSS_2048_8192_SHA256.Digest; VPSS256_M = RSA_PSS_2048_8192_SHA256.Max;
    VPSS384_D = RSA_PSS_2048_8192_SHA384.Digest; VPSS384_M = RSA_PSS_2048_8192_SHA384.Max;
    VPSS512_D = RSA_PSS_2048_8192_SHA512.Digest; VPSS512_M = RSA_PSS_2048_8192_SHA512.Max;
}

/// How aws-lc-rs pads: PKCS #1 v1.5, or PSS with the hash-length or the maximum salt.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Padding {
    Pkcs1,
    PssDigest,
    PssMax,
}

/// aws-lc-rs's digest, signing encoding and verification parameters, when it has them.
fn aws(
    h: HashAlgorithm,
    p: Padding,
) -> Option<(
    &'static digest::Algorithm,
    &'static RsaSignatureEncoding,
    &'static RsaParameters,
)> {
    use HashAlgorithm as H;
    use Padding as P;
    Some(match (h, p) {
        (H::Sha2_256, P::Pkcs1) => (
            &digest::SHA256,
            &signature::RSA_PKCS1_SHA256,
            &signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        (H::Sha2_384, P::Pkcs1) => (
            &digest::SHA384,
            &signature::RSA_PKCS1_SHA384,
            &signature::RSA_PKCS1_2048_8192_SHA384,
        ),
        (H::Sha2_512, P::Pkcs1) => (
            &digest::SHA512,
            &signature::RSA_PKCS1_SHA512,
            &signature::RSA_PKCS1_2048_8192_SHA512,
        ),
        (H::Sha2_256, P::PssDigest) => (&digest::SHA256, &PSS256_D, &VPSS256_D),
        (H::Sha2_256, P::PssMax) => (&digest::SHA256, &PSS256_M, &VPSS256_M),
        (H::Sha2_384, P::PssDigest) => (&digest::SHA384, &PSS384_D, &VPSS384_D),
        (H::Sha2_384, P::PssMax) => (&digest::SHA384, &PSS384_M, &VPSS384_M),
        (H::Sha2_512, P::PssDigest) => (&digest::SHA512, &PSS512_D, &VPSS512_D),
        (H::Sha2_512, P::PssMax) => (&digest::SHA512, &PSS512_M, &VPSS512_M),
        _ => return None,
    })
}

/// Run `$body` with `$d` the RustCrypto digest type of `$h` (`$none` for `none`).
macro_rules! with_digest {
    ($h:expr, $d:ident => $body:expr, none => $none:expr) => {
        match $h {
            HashAlgorithm::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            HashAlgorithm::Sha2_224 => {
                type $d = sha2::Sha224;
                $body
            }
            HashAlgorithm::Sha2_256 => {
                type $d = sha2::Sha256;
                $body
            }
            HashAlgorithm::Sha2_384 => {
                type $d = sha2::Sha384;
                $body
            }
            HashAlgorithm::Sha2_512 => {
                type $d = sha2::Sha512;
                $body
            }
            HashAlgorithm::Sha3_224 => {
                type $d = sha3::Sha3_224;
                $body
            }
            HashAlgorithm::Sha3_256 => {
                type $d = sha3::Sha3_256;
                $body
            }
            HashAlgorithm::Sha3_384 => {
                type $d = sha3::Sha3_384;
                $body
            }
            HashAlgorithm::Sha3_512 => {
                type $d = sha3::Sha3_512;
                $body
            }
            HashAlgorithm::None => $none,
        }
    };
}

impl RsaKey {
    /// Parse PKCS #8 DER; `None` when it is not an RSA key aws-lc-rs takes.
    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> Option<RsaKey> {
        let pair = KeyPair::from_pkcs8(pkcs8).ok()?;
        let decrypting = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .ok()
            .and_then(|k| OaepPrivateDecryptingKey::new(k).ok())?;
        Some(RsaKey {
            pair,
            decrypting,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
            rustcrypto: OnceLock::new(),
        })
    }

    fn rustcrypto(&self) -> Result<&rsa::PrivateKey> {
        self.rustcrypto
            .get_or_init(|| {
                use rsa::pkcs8::DecodePrivateKey;
                rsa::PrivateKey::from_pkcs8_der(&self.pkcs8).ok()
            })
            .as_ref()
            .ok_or_else(|| Error::internal("invalid rsa key material"))
    }

    /// Go's `emLen - 2 - hLen`: the longest PSS salt for `hash_len`.
    fn max_salt(&self, hash_len: usize) -> usize {
        let bits = {
            let n = self.pair.public_key().modulus();
            let n = n.big_endian_without_leading_zero();
            let lead = n.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
            n.len().saturating_sub(1) * 8 + lead
        };
        bits.saturating_sub(1)
            .div_ceil(8)
            .saturating_sub(2 + hash_len)
    }

    /// What is signed: the input itself when prehashed, else its hash. `Ok(None)` when a
    /// prehashed input is not the hash's length.
    fn hashed(opts: &SignOptions, input: &[u8]) -> Result<Option<Vec<u8>>> {
        let h = opts.hash;
        let hashed = if opts.prehashed {
            input.to_vec()
        } else {
            h.digest(input).ok_or_else(|| {
                Error::invalid_input(
                    "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
                )
            })?
        };
        if h != HashAlgorithm::None && hashed.len() != h.output_len() {
            return Ok(None);
        }
        Ok(Some(hashed))
    }

    /// Sign `input` as OpenBao does. Refusals OpenBao answers with a 500 are internal errors.
    pub(crate) fn sign(&self, opts: &SignOptions, input: &[u8]) -> Result<Vec<u8>> {
        let h = opts.hash;
        let hashed = Self::hashed(opts, input)?.ok_or_else(|| Error::internal(NOT_HASHED))?;
        let padding = if opts.pkcs1v15 {
            Padding::Pkcs1
        } else {
            let hash_len = h.output_len();
            let max = self.max_salt(hash_len);
            // Go signs an `auto` salt at the maximum length.
            let salt = match opts.salt {
                SaltLength::Auto => max,
                SaltLength::Hash => hash_len,
                SaltLength::Bytes(n) if n > max => return Err(Error::internal(salt_invalid(n))),
                SaltLength::Bytes(n) => n,
            };
            if salt == hash_len {
                Padding::PssDigest
            } else if salt == max {
                Padding::PssMax
            } else {
                return self.sign_rustcrypto(opts, &hashed, Some(salt));
            }
        };
        match aws(h, padding) {
            Some((alg, encoding, _)) => {
                let d = Digest::import_less_safe(&hashed, alg).map_err(|_| failed())?;
                let mut sig = vec![0u8; self.pair.public_modulus_len()];
                self.pair
                    .sign_digest(encoding, &d, &mut sig)
                    .map_err(|_| failed())?;
                Ok(sig)
            }
            None => {
                let salt = (padding != Padding::Pkcs1).then(|| match padding {
                    Padding::PssMax => self.max_salt(h.output_len()),
                    _ => h.output_len(),
                });
                self.sign_rustcrypto(opts, &hashed, salt)
            }
        }
    }

    /// PKCS #1 v1.5 (`salt` none) or PSS with `salt`, by RustCrypto's `rsa`.
    fn sign_rustcrypto(
        &self,
        opts: &SignOptions,
        hashed: &[u8],
        salt: Option<usize>,
    ) -> Result<Vec<u8>> {
        let key = self.rustcrypto()?;
        let too_long = || Error::internal("crypto/rsa: message too long for RSA key size");
        let signed = match salt {
            None => with_digest!(opts.hash, D => key.sign(rsa::Pkcs1v15Sign::new::<D>(), hashed),
            none => {
                // Go's limit for an unprefixed block: the input and 11 bytes of padding.
                if hashed.len() + 11 > self.pair.public_modulus_len() {
                    return Err(too_long());
                }
                key.sign(rsa::Pkcs1v15Sign::new_unprefixed(), hashed)
            }),
            Some(salt) => {
                with_digest!(opts.hash, D => key.sign(rsa::pss::Pss::<D>::new_with_salt(salt), hashed),
                none => return Err(failed()))
            }
        };
        signed.map_err(|_| failed())
    }

    /// Whether `sig` signs `input`. Only a salt longer than the key allows is an error.
    pub(crate) fn verify(&self, opts: &SignOptions, input: &[u8], sig: &[u8]) -> Result<bool> {
        let h = opts.hash;
        let Some(hashed) = Self::hashed(opts, input)? else {
            return Ok(false);
        };
        let aws_ok = |padding| {
            aws(h, padding).is_some_and(|(alg, _, params)| {
                Digest::import_less_safe(&hashed, alg).is_ok_and(|d| {
                    UnparsedPublicKey::new(params, self.pair.public_key().as_ref())
                        .verify_digest(&d, sig)
                        .is_ok()
                })
            })
        };
        if opts.pkcs1v15 {
            if aws(h, Padding::Pkcs1).is_some() {
                return Ok(aws_ok(Padding::Pkcs1));
            }
            let public = self.rustcrypto()?.as_public_key();
            let ok = with_digest!(h, D => public.verify(rsa::Pkcs1v15Sign::new::<D>(), &hashed, sig),
                none => public.verify(rsa::Pkcs1v15Sign::new_unprefixed(), &hashed, sig));
            return Ok(ok.is_ok());
        }
        let hash_len = h.output_len();
        let max = self.max_salt(hash_len);
        let salt = match opts.salt {
            // Go detects the salt length; the two usual ones first, on aws-lc-rs.
            SaltLength::Auto => {
                if aws_ok(Padding::PssMax) || aws_ok(Padding::PssDigest) {
                    return Ok(true);
                }
                None
            }
            SaltLength::Hash => Some(hash_len),
            SaltLength::Bytes(n) if n > max => {
                return Err(Error::invalid_input(salt_invalid(n)));
            }
            SaltLength::Bytes(n) => Some(n),
        };
        match salt {
            Some(s) if s == hash_len && aws(h, Padding::PssDigest).is_some() => {
                return Ok(aws_ok(Padding::PssDigest));
            }
            Some(s) if s == max && aws(h, Padding::PssMax).is_some() => {
                return Ok(aws_ok(Padding::PssMax));
            }
            _ => {}
        }
        let Ok(sig) = rsa::pss::Signature::try_from(sig) else {
            return Ok(false);
        };
        let public = self.rustcrypto()?.to_public_key();
        let ok = with_digest!(h, D => {
            let key = match salt {
                Some(s) => rsa::pss::VerifyingKey::<D>::new_with_salt_len(public, s),
                None => rsa::pss::VerifyingKey::<D>::new_with_auto_salt_len(public),
            };
            key.verify_prehash(&hashed, &sig).is_ok()
        }, none => false);
        Ok(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::secrets::transit::asym;
    use crate::secrets::transit::key_type::KeyType;

    fn key() -> RsaKey {
        let (private, _) = asym::generate(KeyType::Rsa2048).unwrap();
        RsaKey::from_pkcs8(&private).unwrap()
    }

    fn opts(hash: HashAlgorithm, pkcs1v15: bool, salt: SaltLength) -> SignOptions {
        SignOptions {
            hash,
            pkcs1v15,
            salt,
            ..SignOptions::default()
        }
    }

    #[test]
    fn salt_lengths_parse_as_openbao_reads_them() {
        use SaltLength::*;
        for (text, want) in [
            ("auto", Auto),
            ("AUTO", Auto),
            ("0", Auto),
            ("hash", Hash),
            ("Hash", Hash),
            ("-1", Hash),
            ("1", Bytes(1)),
            ("+20", Bytes(20)),
        ] {
            assert_eq!(SaltLength::parse(text).unwrap(), want, "{text}");
        }
        for (text, msg) in [
            ("", "salt length neither 'auto', 'hash', nor an int: "),
            (" 5", "salt length neither 'auto', 'hash', nor an int:  5"),
            ("1.5", "salt length neither 'auto', 'hash', nor an int: 1.5"),
            ("-2", "salt length is invalid: -2"),
        ] {
            assert_eq!(SaltLength::parse(text).unwrap_err().message(), msg);
        }
    }

    #[test]
    fn every_hash_padding_and_salt_signs_and_verifies() {
        let k = key();
        for h in HashAlgorithm::ALL {
            if h == HashAlgorithm::None {
                continue;
            }
            let max = k.max_salt(h.output_len());
            assert_eq!(max, 256 - 2 - h.output_len(), "{h:?}");
            let cases = [
                (true, SaltLength::Auto),
                (false, SaltLength::Auto),
                (false, SaltLength::Hash),
                (false, SaltLength::Bytes(1)),
                (false, SaltLength::Bytes(20)),
                (false, SaltLength::Bytes(max)),
            ];
            for (pkcs1v15, salt) in cases {
                let o = opts(h, pkcs1v15, salt);
                let sig = k.sign(&o, b"message").unwrap();
                assert_eq!(sig.len(), 256);
                assert!(k.verify(&o, b"message", &sig).unwrap(), "{o:?}");
                assert!(!k.verify(&o, b"massage", &sig).unwrap(), "{o:?}");
                if !pkcs1v15 {
                    // `auto` finds any salt length, as Go's verifier does.
                    let auto = opts(h, false, SaltLength::Auto);
                    assert!(k.verify(&auto, b"message", &sig).unwrap(), "{o:?}");
                } else {
                    // PKCS #1 v1.5 is deterministic, and not a PSS signature.
                    assert_eq!(k.sign(&o, b"message").unwrap(), sig);
                    let pss = opts(h, false, SaltLength::Auto);
                    assert!(!k.verify(&pss, b"message", &sig).unwrap());
                }
                // The input's digest, prehashed, is the same signature's message.
                let digest = h.digest(b"message").unwrap();
                let pre = SignOptions {
                    prehashed: true,
                    ..o
                };
                assert!(k.verify(&pre, &digest, &sig).unwrap(), "{o:?}");
            }
        }
    }

    #[test]
    fn none_signs_an_unprefixed_block_that_fits() {
        let k = key();
        let o = SignOptions {
            hash: HashAlgorithm::None,
            prehashed: true,
            pkcs1v15: true,
            ..SignOptions::default()
        };
        let sig = k.sign(&o, &[7u8; 245]).unwrap();
        assert!(k.verify(&o, &[7u8; 245], &sig).unwrap());
        assert!(!k.verify(&o, &[8u8; 245], &sig).unwrap());
        let e = k.sign(&o, &[7u8; 246]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Internal);
        assert_eq!(e.message(), "crypto/rsa: message too long for RSA key size");
    }

    #[test]
    fn refusals_carry_openbao_texts() {
        let k = key();
        // A prehashed input that is not the hash's length: a 500 on sign, invalid on verify.
        let pre = SignOptions {
            prehashed: true,
            ..opts(HashAlgorithm::Sha1, false, SaltLength::Auto)
        };
        let e = k.sign(&pre, &[0u8; 32]).unwrap_err();
        assert_eq!((e.code(), e.message()), (ErrorCode::Internal, NOT_HASHED));
        assert!(!k.verify(&pre, &[0u8; 32], &[0u8; 256]).unwrap());
        // A salt longer than the key allows: a 500 on sign, a 400 on verify.
        let long = opts(HashAlgorithm::Sha2_256, false, SaltLength::Bytes(223));
        let e = k.sign(&long, b"m").unwrap_err();
        assert_eq!(e.code(), ErrorCode::Internal);
        assert_eq!(e.message(), "requested salt length 223 is invalid");
        let e = k.verify(&long, b"m", &[0u8; 256]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
        assert_eq!(e.message(), "requested salt length 223 is invalid");
        // Garbage of any length is `false`, never an error or a panic.
        for len in [0, 1, 255, 256, 257] {
            for o in [
                opts(HashAlgorithm::Sha3_224, false, SaltLength::Auto),
                opts(HashAlgorithm::Sha1, true, SaltLength::Auto),
            ] {
                assert!(!k.verify(&o, b"m", &vec![0xffu8; len]).unwrap());
            }
        }
    }
}
