//! The little DER and PEM that moving keys in and out of OpenBao's formats needs: RSA
//! `RSAPrivateKey` (PKCS #1) inside PKCS #8, ECDSA `r ‖ s` ↔ `SEQUENCE { r, s }`.

use num_bigint::BigUint;

use super::base64;
use crate::error::{Error, Result};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;

fn bad() -> Error {
    Error::invalid_input("invalid key encoding")
}

/// One TLV: its tag, its content and what follows it.
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    if rest.len() < len {
        return Err(bad());
    }
    let (content, rest) = rest.split_at(len);
    Ok((tag, content, rest))
}

/// The content of a TLV that must have tag `want`, and what follows.
fn expect(input: &[u8], want: u8) -> Result<(&[u8], &[u8])> {
    let (tag, content, rest) = read_tlv(input)?;
    if tag != want {
        return Err(bad());
    }
    Ok((content, rest))
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let tail = bytes.get(skip..).unwrap_or_default();
    out.push(0x80 | tail.len() as u8);
    out.extend_from_slice(tail);
}

fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    write_len(out, content.len());
    out.extend_from_slice(content);
}

/// A non-negative INTEGER from big-endian magnitude bytes.
fn write_uint(out: &mut Vec<u8>, be: &[u8]) {
    let skip = be.iter().take_while(|b| **b == 0).count();
    let mag = be.get(skip..).unwrap_or_default();
    let mut content = Vec::with_capacity(mag.len() + 1);
    if mag.first().is_none_or(|b| *b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(mag);
    write_tlv(out, INTEGER, &content);
}

/// The integers of `RSAPrivateKey`: `n, e, d, p, q, dp, dq, qinv`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RsaComponents(pub [BigUint; 8]);

/// `rsaEncryption` with NULL parameters.
const RSA_ALG_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

impl RsaComponents {
    /// Read PKCS #1 `RSAPrivateKey` DER.
    pub(crate) fn from_pkcs1(der: &[u8]) -> Result<RsaComponents> {
        let (mut body, _) = expect(der, SEQUENCE)?;
        let (_version, rest) = expect(body, INTEGER)?;
        body = rest;
        let mut out: [BigUint; 8] = Default::default();
        for slot in &mut out {
            let (int, rest) = expect(body, INTEGER)?;
            *slot = BigUint::from_bytes_be(int);
            body = rest;
        }
        Ok(RsaComponents(out))
    }

    /// PKCS #1 `RSAPrivateKey` DER.
    pub(crate) fn to_pkcs1(&self) -> Vec<u8> {
        let mut body = Vec::new();
        write_uint(&mut body, &[0]);
        for n in &self.0 {
            write_uint(&mut body, &n.to_bytes_be());
        }
        let mut out = Vec::with_capacity(body.len() + 4);
        write_tlv(&mut out, SEQUENCE, &body);
        out
    }

    /// PKCS #8 `PrivateKeyInfo` DER wrapping the PKCS #1 key.
    pub(crate) fn to_pkcs8(&self) -> Vec<u8> {
        let mut body = Vec::new();
        write_uint(&mut body, &[0]);
        body.extend_from_slice(&RSA_ALG_ID);
        write_tlv(&mut body, OCTET_STRING, &self.to_pkcs1());
        let mut out = Vec::with_capacity(body.len() + 4);
        write_tlv(&mut out, SEQUENCE, &body);
        out
    }
}

/// The PKCS #1 key inside a PKCS #8 `PrivateKeyInfo`.
pub(crate) fn pkcs1_of_pkcs8(der: &[u8]) -> Result<&[u8]> {
    let (body, _) = expect(der, SEQUENCE)?;
    let (_version, rest) = expect(body, INTEGER)?;
    let (_alg, rest) = expect(rest, SEQUENCE)?;
    let (key, _) = expect(rest, OCTET_STRING)?;
    Ok(key)
}

/// ECDSA `SEQUENCE { r, s }` → `r ‖ s`, each left-padded to `len` bytes (JWS form).
pub(crate) fn ecdsa_der_to_fixed(der: &[u8], len: usize) -> Result<Vec<u8>> {
    let (body, _) = expect(der, SEQUENCE)?;
    let (r, rest) = expect(body, INTEGER)?;
    let (s, _) = expect(rest, INTEGER)?;
    let mut out = vec![0u8; 2 * len];
    for (i, int) in [r, s].into_iter().enumerate() {
        let skip = int.iter().take_while(|b| **b == 0).count();
        let mag = int.get(skip..).unwrap_or_default();
        if mag.len() > len {
            return Err(bad());
        }
        let end = (i + 1) * len;
        out.get_mut(end - mag.len()..end)
            .ok_or_else(bad)?
            .copy_from_slice(mag);
    }
    Ok(out)
}

/// Whether `der` starts with an ECDSA `SEQUENCE { r INTEGER, s INTEGER }`, as Go's
/// `asn1.Unmarshal` reads it (anything after it is the caller's business).
pub(crate) fn ecdsa_der_parses(der: &[u8]) -> bool {
    let Ok((body, _)) = expect(der, SEQUENCE) else {
        return false;
    };
    let Ok((r, rest)) = expect(body, INTEGER) else {
        return false;
    };
    matches!(expect(rest, INTEGER), Ok((s, _)) if !r.is_empty() && !s.is_empty())
}

/// `r ‖ s` → ECDSA `SEQUENCE { r, s }`.
pub(crate) fn ecdsa_fixed_to_der(fixed: &[u8]) -> Result<Vec<u8>> {
    if fixed.is_empty() || fixed.len() % 2 != 0 {
        return Err(bad());
    }
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let mut body = Vec::new();
    write_uint(&mut body, r);
    write_uint(&mut body, s);
    let mut out = Vec::new();
    write_tlv(&mut out, SEQUENCE, &body);
    Ok(out)
}

/// PEM with 64-character lines, as Go's `pem.EncodeToMemory` writes it.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_forms_round_trip() {
        let fixed: Vec<u8> = (1..=64).collect();
        let der = ecdsa_fixed_to_der(&fixed).unwrap();
        assert_eq!(ecdsa_der_to_fixed(&der, 32).unwrap(), fixed);
        let mut high = vec![0u8; 64];
        high[0] = 0x80;
        high[63] = 1;
        let der = ecdsa_fixed_to_der(&high).unwrap();
        assert_eq!(ecdsa_der_to_fixed(&der, 32).unwrap(), high);
        assert!(ecdsa_der_to_fixed(&[0x30, 0x05, 1], 32).is_err());
        assert!(ecdsa_fixed_to_der(&[]).is_err());
    }

    #[test]
    fn pem_has_64_character_lines() {
        let p = pem("PUBLIC KEY", &[7u8; 100]);
        assert!(p.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(p.ends_with("-----END PUBLIC KEY-----\n"));
        assert!(p.lines().all(|l| l.len() <= 64));
    }
}
