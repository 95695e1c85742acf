//! Service-account JWTs: parse (header, claims, signature) and verify RS256/384/512 and
//! ES256/384 signatures against PEM public keys or JWKS keys, with aws-lc-rs.

use aws_lc_rs::signature::{
    self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};

/// A parsed (not yet trusted) JWT.
pub(crate) struct Jwt {
    pub alg: String,
    pub kid: Option<String>,
    pub claims: serde_json::Map<String, Value>,
    signed: Vec<u8>,
    signature: Vec<u8>,
}

/// A public key to check signatures with.
#[derive(Clone, Debug)]
pub(crate) enum PublicKey {
    /// RSA modulus and exponent (big-endian, from a JWK).
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An EC point (uncompressed, from a JWK) on P-256 or P-384.
    Ec { p384: bool, point: Vec<u8> },
    /// A DER SubjectPublicKeyInfo or PKCS#1 key (from PEM); its type is tried per algorithm.
    Der(Vec<u8>),
}

/// A key with its JWKS id, if any.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    pub kid: Option<String>,
    pub key: PublicKey,
}

fn denied() -> Error {
    Error::permission_denied()
}

fn b64(s: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| denied())
}

impl Jwt {
    /// Parse a compact JWS; anything malformed is `permission denied`, as in OpenBao.
    pub(crate) fn parse(token: &str) -> Result<Jwt> {
        let mut parts = token.trim().split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(denied());
        };
        let header: Value = serde_json::from_slice(&b64(h)?).map_err(|_| denied())?;
        let claims: Value = serde_json::from_slice(&b64(p)?).map_err(|_| denied())?;
        let Value::Object(claims) = claims else {
            return Err(denied());
        };
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !matches!(
            alg.as_str(),
            "RS256" | "RS384" | "RS512" | "ES256" | "ES384" | "ES512"
        ) {
            return Err(denied());
        }
        Ok(Jwt {
            alg,
            kid: header
                .get("kid")
                .and_then(Value::as_str)
                .map(str::to_string),
            claims,
            signed: format!("{h}.{p}").into_bytes(),
            signature: b64(s)?,
        })
    }

    /// Whether one of `keys` signed this token (a key with another `kid` is skipped when the
    /// token names one).
    pub(crate) fn verify(&self, keys: &[Key]) -> bool {
        keys.iter()
            .filter(|k| match (&self.kid, &k.kid) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            })
            .any(|k| self.verify_with(&k.key))
    }

    fn verify_with(&self, key: &PublicKey) -> bool {
        let rsa: Option<&'static signature::RsaParameters> = match self.alg.as_str() {
            "RS256" => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            "RS384" => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            "RS512" => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            _ => None,
        };
        let ec: Option<&'static signature::EcdsaVerificationAlgorithm> = match self.alg.as_str() {
            "ES256" => Some(&signature::ECDSA_P256_SHA256_FIXED),
            "ES384" => Some(&signature::ECDSA_P384_SHA384_FIXED),
            _ => None,
        };
        match (key, rsa, ec) {
            (PublicKey::Rsa { n, e }, Some(alg), _) => RsaPublicKeyComponents { n, e }
                .verify(alg, &self.signed, &self.signature)
                .is_ok(),
            (PublicKey::Ec { p384, point }, _, Some(alg)) => {
                (*p384 == (self.alg == "ES384"))
                    && UnparsedPublicKey::new(alg, point)
                        .verify(&self.signed, &self.signature)
                        .is_ok()
            }
            (PublicKey::Der(der), Some(alg), _) => {
                verify_der(alg, der, &self.signed, &self.signature)
            }
            (PublicKey::Der(der), _, Some(alg)) => {
                verify_der(alg, der, &self.signed, &self.signature)
            }
            _ => false,
        }
    }

    /// A string claim.
    pub(crate) fn str_claim(&self, path: &[&str]) -> Option<String> {
        let mut v = self.claims.get(*path.first()?)?;
        for p in path.iter().skip(1) {
            v = v.get(*p)?;
        }
        v.as_str().map(str::to_string)
    }

    /// A numeric-date claim (`exp`, `nbf`, `iat`), seconds.
    pub(crate) fn time_claim(&self, name: &str) -> Option<i64> {
        self.claims
            .get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    }

    /// The audiences (`aud` as a string or a list).
    pub(crate) fn audiences(&self) -> Vec<String> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn verify_der(alg: &'static dyn VerificationAlgorithm, der: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(alg, der).verify(msg, sig).is_ok()
}

/// Parse `pem_keys` entries (`PUBLIC KEY` or `RSA PUBLIC KEY` blocks). Certificates are refused
/// with a clear message: give the public key.
pub(crate) fn parse_pem_keys(pems: &[String]) -> Result<Vec<Key>> {
    let mut out = Vec::new();
    for pem in pems {
        let mut found = false;
        let mut label: Option<String> = None;
        let mut body = String::new();
        for line in pem.lines().map(str::trim) {
            if let Some(l) = line
                .strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
            {
                label = Some(l.to_string());
                body.clear();
            } else if line.starts_with("-----END ") {
                let l = label.take().unwrap_or_default();
                match l.as_str() {
                    "PUBLIC KEY" | "RSA PUBLIC KEY" => {
                        let der = STANDARD.decode(body.as_bytes()).map_err(|_| {
                            Error::invalid_input("pem_keys: a key is not valid base64")
                        })?;
                        out.push(Key {
                            kid: None,
                            key: PublicKey::Der(der),
                        });
                        found = true;
                    }
                    "CERTIFICATE" => {
                        return Err(Error::invalid_input(
                            "pem_keys: certificates are not supported, give the PUBLIC KEY block",
                        ));
                    }
                    other => {
                        return Err(Error::invalid_input(format!(
                            "pem_keys: unsupported PEM block `{other}`"
                        )));
                    }
                }
            } else if label.is_some() {
                body.push_str(line);
            }
        }
        if !found {
            return Err(Error::invalid_input("pem_keys: no PEM public key found"));
        }
    }
    Ok(out)
}

/// Parse a JWKS document (`{"keys":[...]}`): RSA and EC (P-256, P-384) signing keys.
pub(crate) fn parse_jwks(doc: &Value) -> Result<Vec<Key>> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::new(ErrorCode::Upstream, "JWKS document has no `keys`"))?;
    let field = |k: &Value, f: &str| -> Option<Vec<u8>> {
        k.get(f)
            .and_then(Value::as_str)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
    };
    let mut out = Vec::new();
    for k in keys {
        if k.get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let kid = k.get("kid").and_then(Value::as_str).map(str::to_string);
        let key = match k.get("kty").and_then(Value::as_str) {
            Some("RSA") => match (field(k, "n"), field(k, "e")) {
                (Some(n), Some(e)) => PublicKey::Rsa {
                    n: strip_zeros(n),
                    e: strip_zeros(e),
                },
                _ => continue,
            },
            Some("EC") => {
                let p384 = match k.get("crv").and_then(Value::as_str) {
                    Some("P-256") => false,
                    Some("P-384") => true,
                    _ => continue,
                };
                match (field(k, "x"), field(k, "y")) {
                    (Some(x), Some(y)) => {
                        let mut point = vec![4u8];
                        point.extend(x);
                        point.extend(y);
                        PublicKey::Ec { p384, point }
                    }
                    _ => continue,
                }
            }
            _ => continue,
        };
        out.push(Key { kid, key });
    }
    Ok(out)
}

fn strip_zeros(v: Vec<u8>) -> Vec<u8> {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.get(first..).map(<[u8]>::to_vec).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#),
            URL_SAFE_NO_PAD.encode("sig")
        )
    }

    #[test]
    fn only_asymmetric_algorithms_parse() {
        assert!(Jwt::parse(&token(r#"{"alg":"RS256"}"#)).is_ok());
        assert!(Jwt::parse(&token(r#"{"alg":"ES256","kid":"k"}"#)).is_ok());
        for bad in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{}"#,
            "not json",
        ] {
            let e = Jwt::parse(&token(bad)).err().unwrap();
            assert_eq!(e.code(), ErrorCode::PermissionDenied);
        }
        for garbage in ["", "a.b", "a.b.c.d", "....", "\u{0}.\u{1}.\u{2}"] {
            assert!(Jwt::parse(garbage).is_err());
        }
        // A token whose signature matches no key never verifies.
        let t = Jwt::parse(&token(r#"{"alg":"RS256"}"#)).unwrap();
        assert!(!t.verify(&[]));
        assert!(!t.verify(&[Key {
            kid: None,
            key: PublicKey::Rsa {
                n: vec![1; 256],
                e: vec![1, 0, 1]
            }
        }]));
    }

    #[test]
    fn pem_keys_and_jwks_parsing() {
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----".to_string();
        assert!(parse_pem_keys(&[cert]).is_err());
        assert!(parse_pem_keys(&["no pem here".to_string()]).is_err());
        let jwks = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "kid": "b", "x": "AAAA", "y": "AAAA"},
            {"kty": "oct", "k": "secret"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
        ]});
        let keys = parse_jwks(&jwks).unwrap();
        assert_eq!(keys.len(), 2, "symmetric and encryption keys are ignored");
        assert!(parse_jwks(&serde_json::json!({})).is_err());
    }
}
