//! The `vault:v<N>:<payload>` envelope shared by ciphertexts, signatures and HMACs.

use crate::error::{Error, Result};

/// The fixed part before the version number.
pub(crate) const PREFIX: &str = "vault:v";

/// `vault:v<version>:<payload>`.
pub(crate) fn format(version: u32, payload: &str) -> String {
    format!("{PREFIX}{version}:{payload}")
}

/// `vault:v<version>:<base64 of raw>`, built in one allocation (the encrypt hot path).
pub(crate) fn format_raw(version: u32, raw: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(PREFIX.len() + 11 + raw.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    // Writing to a String cannot fail.
    let _ = write!(out, "{version}:");
    super::base64::encode_append(raw, &mut out);
    out
}

/// Which value is being parsed, for OpenBao's per-kind error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// A `decrypt`/`rewrap` ciphertext.
    Ciphertext,
    /// An HMAC given to `verify`.
    Hmac,
    /// A signature given to `verify`.
    Signature,
}

impl Envelope {
    fn no_prefix(self) -> &'static str {
        match self {
            Envelope::Ciphertext => "invalid ciphertext: no prefix",
            Envelope::Hmac => "invalid HMAC to verify: no prefix",
            Envelope::Signature => "invalid signature: no prefix",
        }
    }
    fn wrong_fields(self) -> &'static str {
        match self {
            Envelope::Ciphertext => "invalid ciphertext: wrong number of fields",
            Envelope::Hmac => "invalid HMAC: wrong number of fields",
            Envelope::Signature => "invalid signature: wrong number of fields",
        }
    }
    fn bad_version(self) -> &'static str {
        match self {
            Envelope::Ciphertext => "invalid ciphertext: version number could not be decoded",
            Envelope::Hmac => "invalid HMAC: version number could not be decoded",
            Envelope::Signature => "invalid signature: version number could not be decoded",
        }
    }
}

/// Split `vault:v<N>:<payload>` into the version as written (Go's `strconv.Atoi`: an optional
/// sign, then digits; `0` and negatives are left to the caller) and the payload.
pub(crate) fn parse(value: &str, kind: Envelope) -> Result<(i64, &str)> {
    let rest = value
        .strip_prefix(PREFIX)
        .ok_or_else(|| Error::invalid_input(kind.no_prefix()))?;
    let (version, payload) = rest
        .split_once(':')
        .ok_or_else(|| Error::invalid_input(kind.wrong_fields()))?;
    // `i64::from_str` accepts exactly what Atoi does: `[+-]?[0-9]+` within range.
    let version = version
        .parse::<i64>()
        .map_err(|_| Error::invalid_input(kind.bad_version()))?;
    Ok((version, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_the_first_colon_after_the_version() {
        assert_eq!(format(3, "abc"), "vault:v3:abc");
        assert_eq!(
            parse("vault:v3:a:b", Envelope::Ciphertext).unwrap(),
            (3, "a:b")
        );
        assert_eq!(
            parse("vault:v+2:x", Envelope::Ciphertext).unwrap(),
            (2, "x")
        );
        assert_eq!(parse("vault:v0:", Envelope::Ciphertext).unwrap(), (0, ""));
    }

    #[test]
    fn errors_use_openbao_text() {
        let msg = |v: &str, k| parse(v, k).unwrap_err().message().to_owned();
        assert_eq!(
            msg("vault:3:x", Envelope::Ciphertext),
            "invalid ciphertext: no prefix"
        );
        assert_eq!(
            msg("vault:v3", Envelope::Ciphertext),
            "invalid ciphertext: wrong number of fields"
        );
        assert_eq!(
            msg("vault:vx:abc", Envelope::Ciphertext),
            "invalid ciphertext: version number could not be decoded"
        );
        assert_eq!(
            msg("hmac", Envelope::Hmac),
            "invalid HMAC to verify: no prefix"
        );
        assert_eq!(
            msg("vault:v1", Envelope::Hmac),
            "invalid HMAC: wrong number of fields"
        );
        assert_eq!(
            msg("vault:v:x", Envelope::Hmac),
            "invalid HMAC: version number could not be decoded"
        );
    }

    #[test]
    fn format_raw_is_format_of_the_base64() {
        for (v, raw) in [
            (1u32, &b""[..]),
            (7, b"a"),
            (10, b"ab"),
            (4_294_967_295, b"abc"),
            (123, &[0xffu8; 77][..]),
        ] {
            assert_eq!(
                format_raw(v, raw),
                format(v, &super::super::base64::encode(raw))
            );
        }
    }
}
