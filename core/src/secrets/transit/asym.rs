//! The asymmetric key types: ed25519, ECDSA (P-256/384/521) and RSA (2048/3072/4096):
//! generation, signatures in OpenBao's forms, RSA-OAEP encryption and public-key display.
//!
//! Stored material per version: ed25519 `seed ‖ public` (Go's 64-byte private key); ECDSA the
//! private scalar and the uncompressed public point; RSA PKCS #8 DER.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, UnparsedPublicKey,
    VerificationAlgorithm,
};
use zeroize::Zeroizing;

use super::base64;
use super::der;
use super::key_type::KeyType;
use super::rsa_sign::RsaKey;
use crate::error::{Error, Result};

fn failed(what: &str) -> Error {
    Error::internal(format!("{what} failed"))
}

/// A hash named by `hash_algorithm` (sign/verify): every name OpenBao takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum HashAlgorithm {
    /// `sha1`.
    Sha1,
    /// `sha2-224`.
    Sha2_224,
    /// `sha2-256` (default).
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
    /// `none`: the input is already what is signed (RSA PKCS #1 v1.5 only).
    None,
}

impl HashAlgorithm {
    /// Every name, in OpenBao's order.
    pub(crate) const ALL: [HashAlgorithm; 10] = [
        HashAlgorithm::Sha1,
        HashAlgorithm::Sha2_224,
        HashAlgorithm::Sha2_256,
        HashAlgorithm::Sha2_384,
        HashAlgorithm::Sha2_512,
        HashAlgorithm::Sha3_224,
        HashAlgorithm::Sha3_256,
        HashAlgorithm::Sha3_384,
        HashAlgorithm::Sha3_512,
        HashAlgorithm::None,
    ];

    /// Parse OpenBao's name; an unknown one gets OpenBao's text.
    pub(crate) fn parse(name: &str) -> Result<HashAlgorithm> {
        HashAlgorithm::ALL
            .into_iter()
            .find(|h| h.name() == name)
            .ok_or_else(|| Error::invalid_input(format!("invalid hash algorithm {name:?}")))
    }

    /// OpenBao's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Sha2_224 => "sha2-224",
            HashAlgorithm::Sha2_256 => "sha2-256",
            HashAlgorithm::Sha2_384 => "sha2-384",
            HashAlgorithm::Sha2_512 => "sha2-512",
            HashAlgorithm::Sha3_224 => "sha3-224",
            HashAlgorithm::Sha3_256 => "sha3-256",
            HashAlgorithm::Sha3_384 => "sha3-384",
            HashAlgorithm::Sha3_512 => "sha3-512",
            HashAlgorithm::None => "none",
        }
    }

    /// aws-lc-rs's digest; it has every one but SHA3-224.
    fn aws(self) -> Option<&'static digest::Algorithm> {
        Some(match self {
            HashAlgorithm::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlgorithm::Sha2_224 => &digest::SHA224,
            HashAlgorithm::Sha2_256 => &digest::SHA256,
            HashAlgorithm::Sha2_384 => &digest::SHA384,
            HashAlgorithm::Sha2_512 => &digest::SHA512,
            HashAlgorithm::Sha3_256 => &digest::SHA3_256,
            HashAlgorithm::Sha3_384 => &digest::SHA3_384,
            HashAlgorithm::Sha3_512 => &digest::SHA3_512,
            HashAlgorithm::Sha3_224 | HashAlgorithm::None => return None,
        })
    }

    /// The digest length (`0` for `none`).
    pub(crate) fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha3_224 => 28,
            HashAlgorithm::None => 0,
            h => h.aws().map_or(0, |a| a.output_len()),
        }
    }

    /// The hash of `input` (`None` for `none`).
    pub(crate) fn digest(self, input: &[u8]) -> Option<Vec<u8>> {
        match self {
            HashAlgorithm::Sha3_224 => {
                use sha3::Digest as _;
                Some(sha3::Sha3_224::digest(input).to_vec())
            }
            h => h.aws().map(|a| digest::digest(a, input).as_ref().to_vec()),
        }
    }
}

/// How an RSA-PSS salt length is chosen (`salt_length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SaltLength {
    /// `auto` (or `0`): the maximum when signing, any length when verifying.
    #[default]
    Auto,
    /// `hash` (or `-1`): the hash length.
    Hash,
    /// An explicit length.
    Bytes(usize),
}

impl SaltLength {
    /// Parse `auto`, `hash` (any case) or an integer, with OpenBao's numbering (Go's
    /// `rsa.PSSSaltLengthAuto` is `0`, `PSSSaltLengthEqualsHash` is `-1`) and texts.
    pub(crate) fn parse(text: &str) -> Result<SaltLength> {
        match text.to_lowercase().as_str() {
            "auto" => Ok(SaltLength::Auto),
            "hash" => Ok(SaltLength::Hash),
            n => match n.parse::<i64>() {
                Err(_) => Err(Error::invalid_input(format!(
                    "salt length neither 'auto', 'hash', nor an int: {text}"
                ))),
                Ok(-1) => Ok(SaltLength::Hash),
                Ok(0) => Ok(SaltLength::Auto),
                Ok(n) => usize::try_from(n)
                    .map(SaltLength::Bytes)
                    .map_err(|_| Error::invalid_input(format!("salt length is invalid: {n}"))),
            },
        }
    }
}

/// The options of one `sign`/`verify` call.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SignOptions {
    /// The hash applied to the input (unless `prehashed`).
    pub hash: HashAlgorithm,
    /// The input already is the digest.
    pub prehashed: bool,
    /// RSA: PKCS #1 v1.5 instead of PSS.
    pub pkcs1v15: bool,
    /// ECDSA: `r ‖ s` (JWS) instead of ASN.1 DER.
    pub jws: bool,
    /// RSA-PSS salt length.
    pub salt: SaltLength,
}

/// A parsed private key, kept with its version so an operation does no parsing.
pub(crate) enum Parsed {
    /// ed25519.
    Ed25519(Ed25519KeyPair),
    /// ECDSA, with the byte length of the curve's scalars.
    Ecdsa(EcdsaKeyPair, usize),
    /// RSA: aws-lc-rs's signing and decrypting halves of one key, and more (see
    /// [`RsaKey`]).
    Rsa(Box<RsaKey>),
}

fn ecdsa_alg(t: KeyType) -> Result<(&'static EcdsaSigningAlgorithm, usize)> {
    match t {
        KeyType::EcdsaP256 => Ok((&signature::ECDSA_P256_SHA256_ASN1_SIGNING, 32)),
        KeyType::EcdsaP384 => Ok((&signature::ECDSA_P384_SHA384_ASN1_SIGNING, 48)),
        KeyType::EcdsaP521 => Ok((&signature::ECDSA_P521_SHA512_ASN1_SIGNING, 66)),
        _ => Err(Error::internal("not an ecdsa key")),
    }
}

fn ecdsa_verify_alg(t: KeyType) -> &'static dyn VerificationAlgorithm {
    match t {
        KeyType::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1,
        KeyType::EcdsaP521 => &signature::ECDSA_P521_SHA512_ASN1,
        _ => &signature::ECDSA_P256_SHA256_ASN1,
    }
}

fn ecdsa_native_digest(t: KeyType) -> &'static digest::Algorithm {
    match t {
        KeyType::EcdsaP384 => &digest::SHA384,
        KeyType::EcdsaP521 => &digest::SHA512,
        _ => &digest::SHA256,
    }
}

/// New key material for `t`: `(private, public)`.
pub(crate) fn generate(t: KeyType) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    match t {
        KeyType::Ed25519 => {
            let kp = Ed25519KeyPair::generate().map_err(|_| failed("key generation"))?;
            let seed = kp.seed().map_err(|_| failed("key generation"))?;
            let seed = seed.as_be_bytes().map_err(|_| failed("key generation"))?;
            let public = kp.public_key().as_ref().to_vec();
            let mut private = Zeroizing::new(seed.as_ref().to_vec());
            private.extend_from_slice(&public);
            Ok((private, public))
        }
        t if t.is_ecdsa() => {
            let (alg, _) = ecdsa_alg(t)?;
            let kp = EcdsaKeyPair::generate(alg).map_err(|_| failed("key generation"))?;
            let d = kp
                .private_key()
                .as_be_bytes()
                .map_err(|_| failed("key generation"))?;
            Ok((
                Zeroizing::new(d.as_ref().to_vec()),
                kp.public_key().as_ref().to_vec(),
            ))
        }
        t if t.is_rsa() => {
            let size = match t {
                KeyType::Rsa2048 => KeySize::Rsa2048,
                KeyType::Rsa3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let kp =
                aws_lc_rs::rsa::KeyPair::generate(size).map_err(|_| failed("key generation"))?;
            let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp)
                .map_err(|_| failed("key generation"))?;
            let public = kp.public_key().as_ref().to_vec();
            Ok((Zeroizing::new(pkcs8.as_ref().to_vec()), public))
        }
        _ => Err(Error::internal("not an asymmetric key type")),
    }
}

/// Parse stored material.
pub(crate) fn parse(t: KeyType, private: &[u8], public: &[u8]) -> Result<Parsed> {
    let rejected = || Error::invalid_input(format!("invalid {t} key material"));
    match t {
        KeyType::Ed25519 => {
            let seed = private.get(..32).ok_or_else(rejected)?;
            let kp = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| rejected())?;
            Ok(Parsed::Ed25519(kp))
        }
        t if t.is_ecdsa() => {
            let (alg, len) = ecdsa_alg(t)?;
            let kp = EcdsaKeyPair::from_private_key_and_public_key(alg, private, public)
                .map_err(|_| rejected())?;
            Ok(Parsed::Ecdsa(kp, len))
        }
        t if t.is_rsa() => {
            let key = RsaKey::from_pkcs8(private).ok_or_else(rejected)?;
            Ok(Parsed::Rsa(Box::new(key)))
        }
        _ => Err(Error::internal("not an asymmetric key type")),
    }
}

/// An ed25519 key pair from a derived 32-byte seed.
pub(crate) fn ed25519_from_seed(seed: &[u8]) -> Result<Parsed> {
    Ed25519KeyPair::from_seed_unchecked(seed)
        .map(Parsed::Ed25519)
        .map_err(|_| Error::internal("could not derive signing key"))
}

/// The digest OpenBao signs: the input itself when prehashed, else its hash.
fn message_digest(opts: &SignOptions, input: &[u8]) -> Result<Vec<u8>> {
    if opts.prehashed {
        return Ok(input.to_vec());
    }
    opts.hash.digest(input).ok_or_else(|| {
        Error::invalid_input(
            "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
        )
    })
}

/// ECDSA signs `hash` as Go does: the leftmost bytes when longer than the curve's native
/// digest, left zero-padded (the same integer) when shorter.
fn ecdsa_fit(t: KeyType, hash: &[u8]) -> Result<Digest> {
    let native = ecdsa_native_digest(t);
    let n = native.output_len();
    let fitted: Vec<u8> = if hash.len() >= n {
        hash.get(..n).unwrap_or_default().to_vec()
    } else {
        let mut v = vec![0u8; n - hash.len()];
        v.extend_from_slice(hash);
        v
    };
    Digest::import_less_safe(&fitted, native)
        .map_err(|_| Error::invalid_input("invalid digest length"))
}

impl Parsed {
    /// Sign `input`; the raw signature before the `vault:vN:` envelope's base64 (std for DER
    /// and RSA, url-safe without padding for JWS is applied by the caller).
    pub(crate) fn sign(&self, t: KeyType, opts: &SignOptions, input: &[u8]) -> Result<Vec<u8>> {
        match self {
            Parsed::Ed25519(kp) => Ok(kp
                .try_sign(input)
                .map_err(|_| failed("signing"))?
                .as_ref()
                .to_vec()),
            Parsed::Ecdsa(kp, len) => {
                let d = ecdsa_fit(t, &message_digest(opts, input)?)?;
                let sig = kp.sign_digest(&d).map_err(|_| failed("signing"))?;
                if opts.jws {
                    der::ecdsa_der_to_fixed(sig.as_ref(), *len)
                } else {
                    Ok(sig.as_ref().to_vec())
                }
            }
            Parsed::Rsa(key) => key.sign(opts, input),
        }
    }

    /// Whether `sig` is a valid signature of `input`.
    pub(crate) fn verify(
        &self,
        t: KeyType,
        opts: &SignOptions,
        input: &[u8],
        sig: &[u8],
    ) -> Result<bool> {
        match self {
            Parsed::Ed25519(kp) => Ok(UnparsedPublicKey::new(
                &signature::ED25519,
                kp.public_key().as_ref(),
            )
            .verify(input, sig)
            .is_ok()),
            Parsed::Ecdsa(kp, _) => {
                let d = ecdsa_fit(t, &message_digest(opts, input)?)?;
                let der_sig;
                let sig = if opts.jws {
                    der_sig = match der::ecdsa_fixed_to_der(sig) {
                        Ok(s) => s,
                        Err(_) => return Ok(false),
                    };
                    der_sig.as_slice()
                } else if !der::ecdsa_der_parses(sig) {
                    // OpenBao refuses what is not ASN.1 at all (a 400), and answers
                    // `valid: false` for a well-formed but wrong signature.
                    return Err(Error::invalid_input("supplied signature is invalid"));
                } else {
                    sig
                };
                Ok(
                    UnparsedPublicKey::new(ecdsa_verify_alg(t), kp.public_key().as_ref())
                        .verify_digest(&d, sig)
                        .is_ok(),
                )
            }
            Parsed::Rsa(key) => key.verify(opts, input, sig),
        }
    }

    /// RSA-OAEP(SHA-256) decryption.
    pub(crate) fn rsa_decrypt(&self, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let Parsed::Rsa(key) = self else {
            return Err(Error::internal("not an rsa key"));
        };
        let dec = &key.decrypting;
        let mut out = Zeroizing::new(vec![0u8; dec.min_output_size()]);
        // OpenBao answers a 500 with this text (in a batch, a 500 with it per item).
        let len = dec
            .decrypt(&OAEP_SHA256_MGF1SHA256, ct, &mut out, None)
            .map_err(|_| {
                Error::internal(
                    "failed to RSA decrypt the ciphertext: crypto/rsa: decryption error",
                )
            })?
            .len();
        out.truncate(len);
        Ok(out)
    }

    /// The public key as OpenBao shows it: base64 for ed25519, a `PUBLIC KEY` PEM otherwise.
    pub(crate) fn public_key_text(&self) -> Result<String> {
        match self {
            Parsed::Ed25519(kp) => Ok(base64::encode(kp.public_key().as_ref())),
            Parsed::Ecdsa(kp, _) => {
                let der = kp
                    .public_key()
                    .as_der()
                    .map_err(|_| failed("public key encoding"))?;
                Ok(der::pem("PUBLIC KEY", der.as_ref()))
            }
            Parsed::Rsa(key) => {
                let der = key
                    .pair
                    .public_key()
                    .as_der()
                    .map_err(|_| failed("public key encoding"))?;
                Ok(der::pem("PUBLIC KEY", der.as_ref()))
            }
        }
    }

    /// The private key as OpenBao exports it (`signing-key`, `encryption-key`).
    pub(crate) fn private_key_text(&self, private: &[u8]) -> Result<String> {
        match self {
            Parsed::Ed25519(_) => Ok(base64::encode(private)),
            Parsed::Ecdsa(kp, _) => {
                let der = kp
                    .private_key()
                    .as_der()
                    .map_err(|_| failed("private key encoding"))?;
                Ok(der::pem("EC PRIVATE KEY", der.as_ref()))
            }
            Parsed::Rsa(..) => Ok(der::pem("RSA PRIVATE KEY", der::pkcs1_of_pkcs8(private)?)),
        }
    }
}

/// RSA-OAEP(SHA-256) encryption with the public half of `public` (PKCS #1 public key DER).
pub(crate) fn rsa_encrypt(parsed: &Parsed, plaintext: &[u8]) -> Result<Vec<u8>> {
    let Parsed::Rsa(key) = parsed else {
        return Err(Error::internal("not an rsa key"));
    };
    let spki = key
        .pair
        .public_key()
        .as_der()
        .map_err(|_| failed("public key encoding"))?;
    let key = PublicEncryptingKey::from_der(spki.as_ref())
        .ok()
        .and_then(|k| OaepPublicEncryptingKey::new(k).ok())
        .ok_or_else(|| failed("encryption"))?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key
        .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
        .map_err(|_| Error::invalid_input("crypto/rsa: message too long for RSA key size"))?
        .len();
    out.truncate(len);
    Ok(out)
}
