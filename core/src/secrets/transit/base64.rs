//! Standard base64 as Go's `base64.StdEncoding` reads and writes it: padding required,
//! `\r`/`\n` skipped, non-zero trailing bits tolerated, and Go's error text.

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

/// Go's `StdEncoding` decoder (lenient about trailing bits, strict about padding).
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// URL-safe base64 without padding (JWS signatures).
pub(crate) fn encode_url_nopad(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decode URL-safe base64 without padding; `None` when malformed.
pub(crate) fn decode_url_nopad(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .map(Zeroizing::new)
}

/// Encode with padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

/// Encode with padding onto the end of `out`.
pub(crate) fn encode_append(bytes: &[u8], out: &mut String) {
    base64_simd::STANDARD.encode_append(bytes, out);
}

/// Decode, or Go's message (`illegal base64 data at input byte N`). The offset is exact for a
/// bad character or a short final group, and the input length for bad padding.
pub(crate) fn decode(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    // The SIMD decoder takes canonical padded input (nearly all of it) at memory speed; what
    // it refuses (line breaks, non-zero trailing bits Go tolerates, errors) goes to the exact
    // Go-compatible decoder below, which also words the error.
    if let Ok(v) = base64_simd::STANDARD.decode_to_vec(text.as_bytes()) {
        return Ok(Zeroizing::new(v));
    }
    let cleaned: Zeroizing<Vec<u8>>;
    let input: &[u8] = if text.bytes().any(|b| b == b'\r' || b == b'\n') {
        cleaned = Zeroizing::new(
            text.bytes()
                .filter(|b| *b != b'\r' && *b != b'\n')
                .collect(),
        );
        cleaned.as_slice()
    } else {
        text.as_bytes()
    };
    GO_STD.decode(input).map(Zeroizing::new).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(_, b'=') | base64::DecodeError::InvalidPadding => {
                padding_error_at(input)
            }
            base64::DecodeError::InvalidByte(at, _)
            | base64::DecodeError::InvalidLastSymbol(at, _) => at,
            // Go stops at the start of the incomplete final group.
            base64::DecodeError::InvalidLength(len) => len - len % 4,
        };
        format!("illegal base64 data at input byte {at}")
    })
}

/// Where Go's decoder reports a padding error: the start of an unpadded final group, a `=`
/// too early in its group or not followed by a second `=`, the end of input when the second
/// `=` is missing, or the first byte after the padding.
fn padding_error_at(input: &[u8]) -> usize {
    let len = input.len();
    let Some(first) = input.iter().position(|b| *b == b'=') else {
        return len - len % 4;
    };
    match first % 4 {
        0 | 1 => first,
        2 if first + 1 == len => len,
        2 if input.get(first + 1) != Some(&b'=') => first,
        2 => first + 2,
        _ => first + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go_std_encoding() {
        assert_eq!(encode(b"hello world"), "aGVsbG8gd29ybGQ=");
        assert_eq!(
            decode("aGVsbG8gd29ybGQ=").unwrap().as_slice(),
            b"hello world"
        );
        assert_eq!(decode("aGVs\nbG8=").unwrap().as_slice(), b"hello");
        // Trailing bits are not checked by Go's StdEncoding.
        assert_eq!(decode("QR==").unwrap().as_slice(), b"A");
        assert_eq!(decode("").unwrap().as_slice(), b"");
    }

    #[test]
    fn errors_use_go_text() {
        assert_eq!(
            decode("abc!").unwrap_err(),
            "illegal base64 data at input byte 3"
        );
        assert_eq!(
            decode("QUJDQ").unwrap_err(),
            "illegal base64 data at input byte 4"
        );
        assert_eq!(
            decode("QQ").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
    }

    #[test]
    fn fast_decoder_agrees_with_go_rules() {
        use base64::Engine as _;
        // Every length up to a few SIMD blocks, canonical: same bytes both ways.
        for n in 0..200usize {
            let raw: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            let text = base64::engine::general_purpose::STANDARD.encode(&raw);
            assert_eq!(decode(&text).unwrap().as_slice(), raw.as_slice(), "len {n}");
            assert_eq!(encode(&raw), text);
        }
        // What only the Go-compatible decoder takes or words: trailing bits, line breaks,
        // bad bytes, bad padding.
        assert_eq!(decode("YR==").unwrap().as_slice(), b"a");
        assert_eq!(decode("YW\r\nJj").unwrap().as_slice(), b"abc");
        assert_eq!(
            decode("YW*j").unwrap_err(),
            "illegal base64 data at input byte 2"
        );
        assert_eq!(
            decode("YWJ").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
    }
}
