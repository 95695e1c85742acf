//! `hash[/:algo]` and `random[/:source][/:bytes]` (also `sys/tools/*`): stateless helpers.

use aws_lc_rs::digest;

use super::base64;
use crate::barrier::aead::random_key;
use crate::error::{Error, Result};

/// Requests for this many random bytes or more are refused.
pub(crate) const MAX_RANDOM_BYTES: usize = 128 * 1024;

/// How `hash` and `random` encode their output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    /// Lowercase hex.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

impl OutputFormat {
    /// Parse `hex` or `base64`.
    pub(crate) fn parse(name: &str) -> Result<OutputFormat> {
        match name {
            "hex" => Ok(OutputFormat::Hex),
            "base64" => Ok(OutputFormat::Base64),
            _ => Err(Error::invalid_input(format!(
                "unsupported encoding format {name}; must be \"hex\" or \"base64\""
            ))),
        }
    }

    /// Encode `bytes`.
    pub(crate) fn encode(self, bytes: &[u8]) -> String {
        match self {
            OutputFormat::Hex => hex::encode(bytes),
            OutputFormat::Base64 => base64::encode(bytes),
        }
    }
}

/// `sum` of `hash/:algo`. SHA3-224 is valid in OpenBao but missing from aws-lc-rs, so it is
/// refused like an unknown name.
pub(crate) fn hash(algorithm: &str, input: &[u8], format: OutputFormat) -> Result<String> {
    let alg = match algorithm {
        "sha2-224" => &digest::SHA224,
        "sha2-256" => &digest::SHA256,
        "sha2-384" => &digest::SHA384,
        "sha2-512" => &digest::SHA512,
        "sha3-256" => &digest::SHA3_256,
        "sha3-384" => &digest::SHA3_384,
        "sha3-512" => &digest::SHA3_512,
        _ => {
            return Err(Error::invalid_input(format!(
                "unsupported algorithm {algorithm}"
            )));
        }
    };
    Ok(format.encode(digest::digest(alg, input).as_ref()))
}

/// `random_bytes` of `random/:bytes`.
pub(crate) fn random(bytes: usize, format: OutputFormat) -> Result<String> {
    if bytes >= MAX_RANDOM_BYTES {
        return Err(Error::invalid_input(format!(
            "'bytes' should be less than {MAX_RANDOM_BYTES}"
        )));
    }
    Ok(format.encode(&random_key(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_known_answers() {
        assert_eq!(
            hash("sha2-256", b"abc", OutputFormat::Hex).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash("sha3-256", b"abc", OutputFormat::Hex).unwrap(),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        assert_eq!(
            hash("sha2-256", b"", OutputFormat::Base64).unwrap(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            hash("md5", b"", OutputFormat::Hex).unwrap_err().message(),
            "unsupported algorithm md5"
        );
        assert_eq!(
            OutputFormat::parse("bin").unwrap_err().message(),
            "unsupported encoding format bin; must be \"hex\" or \"base64\""
        );
    }

    #[test]
    fn random_sizes() {
        assert_eq!(random(32, OutputFormat::Hex).unwrap().len(), 64);
        assert_eq!(random(32, OutputFormat::Base64).unwrap().len(), 44);
        assert_eq!(
            random(131072, OutputFormat::Hex).unwrap_err().message(),
            "'bytes' should be less than 131072"
        );
        assert!(random(131071, OutputFormat::Hex).is_ok());
    }
}
