//! Keys, serial numbers and certificate parsing for the PKI engine, over rcgen (building),
//! aws-lc-rs (key generation, SEC1 export) and x509-parser (reading).
//!
//! Private keys live in [`zeroize::Zeroizing`] buffers and are never shown by `Debug` or an
//! error message.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ECDSA_P521_SHA512};
use rcgen::{PKCS_ED25519, PKCS_RSA_SHA256, RsaKeySize, SignatureAlgorithm};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A key type with its size, as OpenBao's `key_type` / `key_bits` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa(u32),
    Ec(u32),
    Ed25519,
}

impl KeyKind {
    /// `key_type` and `key_bits` from a request (0 = the type's default), with OpenBao's texts.
    pub(crate) fn from_request(key_type: &str, key_bits: i64) -> Result<KeyKind> {
        match key_type {
            "rsa" => match key_bits {
                0 | 2048 => Ok(KeyKind::Rsa(2048)),
                3072 => Ok(KeyKind::Rsa(3072)),
                4096 => Ok(KeyKind::Rsa(4096)),
                b if b < 2048 => Err(Error::invalid_input(format!(
                    "RSA keys < 2048 bits are unsafe and not supported: got {b}"
                ))),
                b => Err(Error::invalid_input(format!(
                    "unsupported bit length for RSA key: {b}"
                ))),
            },
            "ec" => match key_bits {
                0 | 256 => Ok(KeyKind::Ec(256)),
                384 => Ok(KeyKind::Ec(384)),
                521 => Ok(KeyKind::Ec(521)),
                b => Err(Error::invalid_input(format!(
                    "unsupported bit length for EC key: {b}"
                ))),
            },
            "ed25519" => Ok(KeyKind::Ed25519),
            other => Err(Error::invalid_input(format!("unknown key type: {other}"))),
        }
    }

    /// OpenBao's `key_type` name.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            KeyKind::Rsa(_) => "rsa",
            KeyKind::Ec(_) => "ec",
            KeyKind::Ed25519 => "ed25519",
        }
    }

    /// OpenBao's `key_bits` (0 for ed25519).
    pub(crate) fn bits(self) -> u32 {
        match self {
            KeyKind::Rsa(b) | KeyKind::Ec(b) => b,
            KeyKind::Ed25519 => 0,
        }
    }

    /// The signature algorithm a key of this kind signs with (Go's defaults: SHA-256 for RSA
    /// and P-256, SHA-384 for P-384, SHA-512 for P-521).
    pub(crate) fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyKind::Rsa(_) => &PKCS_RSA_SHA256,
            KeyKind::Ec(384) => &PKCS_ECDSA_P384_SHA384,
            KeyKind::Ec(521) => &PKCS_ECDSA_P521_SHA512,
            KeyKind::Ec(_) => &PKCS_ECDSA_P256_SHA256,
            KeyKind::Ed25519 => &PKCS_ED25519,
        }
    }

    /// OpenBao's `revocation_signature_algorithm` name for an issuer with this key.
    pub(crate) fn signature_name(self) -> &'static str {
        match self {
            KeyKind::Rsa(_) => "SHA256WithRSA",
            KeyKind::Ec(384) => "ECDSAWithSHA384",
            KeyKind::Ec(521) => "ECDSAWithSHA512",
            KeyKind::Ec(_) => "ECDSAWithSHA256",
            KeyKind::Ed25519 => "PureEd25519",
        }
    }

    /// The kind of an existing key pair.
    pub(crate) fn of(key: &KeyPair) -> Result<KeyKind> {
        let alg = key.algorithm();
        if alg == &PKCS_ECDSA_P256_SHA256 {
            Ok(KeyKind::Ec(256))
        } else if alg == &PKCS_ECDSA_P384_SHA384 {
            Ok(KeyKind::Ec(384))
        } else if alg == &PKCS_ECDSA_P521_SHA512
            || alg == &rcgen::PKCS_ECDSA_P521_SHA256
            || alg == &rcgen::PKCS_ECDSA_P521_SHA384
        {
            Ok(KeyKind::Ec(521))
        } else if alg == &PKCS_ED25519 {
            Ok(KeyKind::Ed25519)
        } else if alg == &PKCS_RSA_SHA256
            || alg == &rcgen::PKCS_RSA_SHA384
            || alg == &rcgen::PKCS_RSA_SHA512
        {
            let bits = rsa_modulus_bits(key).unwrap_or(2048);
            Ok(KeyKind::Rsa(bits))
        } else {
            Err(Error::invalid_input("unsupported key type"))
        }
    }
}

fn rsa_modulus_bits(key: &KeyPair) -> Option<u32> {
    let der = Zeroizing::new(key.serialize_der());
    let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).ok()?;
    u32::try_from(kp.public_modulus_len() * 8).ok()
}

/// A private key the engine holds (an issuer's or a generated leaf's).
pub(crate) struct PrivateKey {
    pub kind: KeyKind,
    pub pair: KeyPair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// A fresh key of `kind`.
    pub(crate) fn generate(kind: KeyKind) -> Result<PrivateKey> {
        let pair = match kind {
            KeyKind::Rsa(bits) => {
                let size = match bits {
                    3072 => RsaKeySize::_3072,
                    4096 => RsaKeySize::_4096,
                    _ => RsaKeySize::_2048,
                };
                KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, size)
            }
            other => KeyPair::generate_for(other.algorithm()),
        }
        .map_err(|_| Error::internal("error generating private key"))?;
        Ok(PrivateKey { kind, pair })
    }

    /// A key from PEM (PKCS#8, PKCS#1 or SEC1), as `keys/import` and `config/ca` take it.
    pub(crate) fn from_pem(pem: &str) -> Result<PrivateKey> {
        let pair = KeyPair::from_pem(pem).map_err(|_| {
            Error::invalid_input("unable to parse private key: unsupported or malformed key")
        })?;
        let kind = KeyKind::of(&pair)?;
        // rcgen picks SHA-256 for a P-521 PEM; sign as Go does (SHA-512).
        let pair = match kind {
            KeyKind::Ec(521) if pair.algorithm() != &PKCS_ECDSA_P521_SHA512 => {
                let pem = Zeroizing::new(pair.serialize_pem());
                KeyPair::from_pem_and_sign_algo(&pem, &PKCS_ECDSA_P521_SHA512)
                    .map_err(|_| Error::invalid_input("unable to parse private key"))?
            }
            _ => pair,
        };
        Ok(PrivateKey { kind, pair })
    }

    /// The key as stored: PKCS#8 PEM.
    pub(crate) fn pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.pair.serialize_pem())
    }

    /// PKCS#8 version 1 (no public key inside), as Go writes it: the version 2 form that
    /// aws-lc-rs makes for Ed25519 keys is not read by OpenSSL 3.0.
    fn pkcs8_v1_pem(&self) -> Result<Zeroizing<String>> {
        use rsa::pkcs8::PrivateKeyInfoRef;
        use rsa::pkcs8::der::{Decode, Encode};
        let der = Zeroizing::new(self.pair.serialize_der());
        let mut info = PrivateKeyInfoRef::from_der(&der)
            .map_err(|_| Error::internal("error encoding private key"))?;
        info.public_key = None;
        let v1 = Zeroizing::new(
            info.to_der()
                .map_err(|_| Error::internal("error encoding private key"))?,
        );
        Ok(Zeroizing::new(pem_block("PRIVATE KEY", &v1)))
    }

    /// The key as OpenBao returns it with `private_key_format=der|pem`: SEC1 `EC PRIVATE
    /// KEY` for EC keys, PKCS#1 `RSA PRIVATE KEY` for RSA keys, PKCS#8 for Ed25519; PKCS#8
    /// for every type with `pkcs8`.
    pub(crate) fn export_pem(&self, pkcs8: bool) -> Result<(Zeroizing<String>, &'static str)> {
        if pkcs8 {
            return Ok((self.pkcs8_v1_pem()?, self.kind.type_name()));
        }
        match self.kind {
            KeyKind::Ec(bits) => {
                let alg = match bits {
                    384 => &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                    521 => &aws_lc_rs::signature::ECDSA_P521_SHA512_ASN1_SIGNING,
                    _ => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                };
                let der = Zeroizing::new(self.pair.serialize_der());
                let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, &der)
                    .map_err(|_| Error::internal("error encoding private key"))?;
                let sec1 = kp
                    .private_key()
                    .as_der()
                    .map_err(|_| Error::internal("error encoding private key"))?;
                Ok((
                    Zeroizing::new(pem_block("EC PRIVATE KEY", sec1.as_ref())),
                    "ec",
                ))
            }
            KeyKind::Rsa(_) => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::pkcs8::DecodePrivateKey;
                let der = Zeroizing::new(self.pair.serialize_der());
                let key = rsa::PrivateKey::from_pkcs8_der(&der)
                    .map_err(|_| Error::internal("error encoding private key"))?;
                let pkcs1 = key
                    .to_pkcs1_der()
                    .map_err(|_| Error::internal("error encoding private key"))?;
                Ok((
                    Zeroizing::new(pem_block("RSA PRIVATE KEY", pkcs1.as_bytes())),
                    "rsa",
                ))
            }
            KeyKind::Ed25519 => Ok((self.pkcs8_v1_pem()?, "ed25519")),
        }
    }
}

/// The fresh key of an issued leaf: the certificate needs only its public half and the
/// answer its private half, so an EC key stays an aws-lc key pair from generation to export
/// (rcgen's key pair would parse it twice more, a scalar multiplication each time: with the
/// SEC1 export, 40% of an issue). Other types go through [`PrivateKey`].
pub(crate) enum LeafKey {
    Ec {
        pair: aws_lc_rs::signature::EcdsaKeyPair,
        alg: &'static SignatureAlgorithm,
    },
    Other(PrivateKey),
}

impl fmt::Debug for LeafKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafKey").finish_non_exhaustive()
    }
}

impl LeafKey {
    /// A fresh key of `kind`.
    pub(crate) fn generate(kind: KeyKind) -> Result<LeafKey> {
        let (signing, alg) = match kind {
            KeyKind::Ec(384) => (
                &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                &PKCS_ECDSA_P384_SHA384,
            ),
            KeyKind::Ec(521) => (
                &aws_lc_rs::signature::ECDSA_P521_SHA512_ASN1_SIGNING,
                &PKCS_ECDSA_P521_SHA512,
            ),
            KeyKind::Ec(_) => (
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                &PKCS_ECDSA_P256_SHA256,
            ),
            other => return PrivateKey::generate(other).map(LeafKey::Other),
        };
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(signing)
            .map_err(|_| Error::internal("error generating private key"))?;
        Ok(LeafKey::Ec { pair, alg })
    }

    /// The key as OpenBao returns it (see [`PrivateKey::export_pem`]).
    pub(crate) fn export_pem(&self, pkcs8: bool) -> Result<(Zeroizing<String>, &'static str)> {
        match self {
            LeafKey::Other(k) => k.export_pem(pkcs8),
            LeafKey::Ec { pair, .. } => {
                let fail = |_| Error::internal("error encoding private key");
                if pkcs8 {
                    let der = pair.to_pkcs8v1().map_err(fail)?;
                    return Ok((Zeroizing::new(pem_block("PRIVATE KEY", der.as_ref())), "ec"));
                }
                let sec1 = pair.private_key().as_der().map_err(fail)?;
                Ok((
                    Zeroizing::new(pem_block("EC PRIVATE KEY", sec1.as_ref())),
                    "ec",
                ))
            }
        }
    }
}

impl rcgen::PublicKeyData for LeafKey {
    fn der_bytes(&self) -> &[u8] {
        use aws_lc_rs::signature::KeyPair as _;
        match self {
            LeafKey::Ec { pair, .. } => pair.public_key().as_ref(),
            LeafKey::Other(k) => k.pair.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            LeafKey::Ec { alg, .. } => alg,
            LeafKey::Other(k) => k.pair.algorithm(),
        }
    }
}

/// A PEM block with 64-column base64 lines, as Go's `pem.Encode` writes it.
pub(crate) fn pem_block(label: &str, der: &[u8]) -> String {
    let p = pem::Pem::new(label, der.to_vec());
    pem::encode_config(
        &p,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
    .trim_end()
    .to_string()
}

/// The DER of the first `CERTIFICATE` block in `pem` (any other block is skipped).
pub(crate) fn pem_certs(text: &str) -> Result<Vec<Vec<u8>>> {
    let blocks = pem::parse_many(text.as_bytes())
        .map_err(|_| Error::invalid_input("error parsing PEM bundle"))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect())
}

/// A fresh serial number as OpenBao makes them: a random positive integer below 2^159
/// (`certutil.GenerateSerialNumber`), so its DER never needs a padding byte past 20.
pub(crate) fn new_serial() -> Vec<u8> {
    let mut b = [0u8; 20];
    rand::fill(&mut b);
    if let Some(first) = b.first_mut() {
        *first &= 0x7f;
    }
    let start = b.iter().position(|x| *x != 0).unwrap_or(19);
    b.get(start..).unwrap_or(&[1]).to_vec()
}

/// `xx:xx:..` lowercase, OpenBao's serial form.
pub(crate) fn serial_colons(bytes: &[u8]) -> String {
    // Two hex digits a byte, straight into the string (a `format!` per byte was a percent of
    // an issue's CPU).
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(digit(b >> 4));
        s.push(digit(b & 0x0f));
    }
    s
}

/// A serial from a request: colon or dash separated hex, case-insensitive, normalised to the
/// colon form. `None` when it is not hex pairs.
pub(crate) fn normalize_serial(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase().replace('-', ":");
    let ok = !s.is_empty()
        && s.split(':')
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    ok.then_some(s)
}

/// The serial's bytes from its colon form.
pub(crate) fn serial_bytes(colons: &str) -> Vec<u8> {
    colons
        .split(':')
        .filter_map(|p| u8::from_str_radix(p, 16).ok())
        .collect()
}

/// The subject key identifier OpenBao (Go) puts in certificates: SHA-1 of the public key's
/// bit string.
pub(crate) fn key_id(public_key_raw: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, public_key_raw)
        .as_ref()
        .to_vec()
}

/// What the engine reads back from a certificate.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    pub spki_der: Vec<u8>,
}

/// Parse a DER certificate.
pub(crate) fn parse_cert(der: &[u8]) -> Result<CertInfo> {
    use x509_parser::prelude::*;
    let (_, c) = X509Certificate::from_der(der)
        .map_err(|_| Error::invalid_input("unable to parse certificate"))?;
    let tbs = &c.tbs_certificate;
    Ok(CertInfo {
        serial: serial_colons(tbs.raw_serial()),
        not_before: tbs.validity.not_before.to_datetime(),
        not_after: tbs.validity.not_after.to_datetime(),
        is_ca: c.is_ca(),
        subject_der: tbs.subject.as_raw().to_vec(),
        issuer_der: tbs.issuer.as_raw().to_vec(),
        spki_der: tbs.subject_pki.raw.to_vec(),
    })
}

/// The raw public key bits of a `SubjectPublicKeyInfo`.
pub(crate) fn spki_public_key(spki_der: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|_| Error::invalid_input("unable to parse public key"))?;
    Ok(spki.subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_round_trip_and_normalise() {
        let s = new_serial();
        assert!(s.len() <= 20 && !s.is_empty());
        let c = serial_colons(&s);
        assert_eq!(serial_bytes(&c), s);
        assert_eq!(normalize_serial("0A-1b"), Some("0a:1b".into()));
        assert_eq!(normalize_serial("0a:1"), None);
        assert_eq!(normalize_serial(""), None);
    }

    #[test]
    fn key_kinds_follow_openbao() {
        assert_eq!(
            KeyKind::from_request("rsa", 0).ok(),
            Some(KeyKind::Rsa(2048))
        );
        assert_eq!(KeyKind::from_request("ec", 0).ok(), Some(KeyKind::Ec(256)));
        assert!(KeyKind::from_request("ec", 255).is_err());
        assert!(KeyKind::from_request("dsa", 0).is_err());
        let k = PrivateKey::generate(KeyKind::Ec(384)).unwrap();
        assert_eq!(KeyKind::of(&k.pair).unwrap(), KeyKind::Ec(384));
        assert!(!format!("{k:?}").contains("BEGIN"));
    }
}
