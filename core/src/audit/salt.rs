//! A device's salt and OpenBao's identified HMAC: `"hmac-sha256:" + hex(HMAC-SHA256(key=salt,
//! value))`. Each device has its own salt, so the same secret hashes differently per device.

use std::fmt;
use std::sync::Mutex;

use aws_lc_rs::{constant_time, hmac};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::storage::Backend;

/// Where device salts live behind the barrier: `sys/audit-salt/<device path without the
/// trailing slash>`.
const SALT_PREFIX: &str = "sys/audit-salt/";

/// The HMAC key of one device.
pub(crate) struct Salt {
    key: hmac::Key,
    /// The last client token and accessor hashed by [`Salt::token_hmacs`], with their HMACs:
    /// a client sends the same token request after request, and these two HMACs were half of
    /// an audited request's hashing.
    last_token: Mutex<Option<TokenHmacs>>,
}

struct TokenHmacs {
    token: Zeroizing<String>,
    accessor: String,
    token_hex: [u8; 64],
    accessor_hex: [u8; 64],
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(<redacted>)")
    }
}

impl Salt {
    /// A salt from its stored value (OpenBao keys the HMAC with the salt string's bytes).
    pub(crate) fn new(salt: &[u8]) -> Salt {
        Salt {
            key: hmac::Key::new(hmac::HMAC_SHA256, salt),
            last_token: Mutex::new(None),
        }
    }

    /// The hex HMACs of a client token and of its accessor, from the last pair hashed when it
    /// is the same pair (the token compared in constant time, so the time taken says nothing
    /// about the token remembered).
    pub(crate) fn token_hmacs(&self, token: &str, accessor: &str) -> ([u8; 64], [u8; 64]) {
        if let Ok(last) = self.last_token.lock() {
            if let Some(l) = last.as_ref() {
                if l.accessor == accessor
                    && constant_time::verify_slices_are_equal(l.token.as_bytes(), token.as_bytes())
                        .is_ok()
                {
                    return (l.token_hex, l.accessor_hex);
                }
            }
        }
        let token_hex = self.hmac_hex(token.as_bytes());
        let accessor_hex = self.hmac_hex(accessor.as_bytes());
        if let Ok(mut last) = self.last_token.lock() {
            *last = Some(TokenHmacs {
                token: Zeroizing::new(token.to_string()),
                accessor: accessor.to_string(),
                token_hex,
                accessor_hex,
            });
        }
        (token_hex, accessor_hex)
    }

    /// `hmac-sha256:<hex>` of `value`.
    pub(crate) fn hmac(&self, value: &str) -> String {
        let hex = self.hmac_hex(value.as_bytes());
        let mut out = String::with_capacity(12 + hex.len());
        out.push_str("hmac-sha256:");
        out.extend(hex.iter().map(|b| char::from(*b)));
        out
    }

    /// The lower-case hex of HMAC-SHA256(salt, `value`), without allocating. The key holds the
    /// precomputed inner and outer pads, so each call hashes only `value`.
    pub(crate) fn hmac_hex(&self, value: &[u8]) -> [u8; 64] {
        let tag = hmac::sign(&self.key, value);
        let mut hex = [b'0'; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(tag.as_ref()) {
            if let [hi, lo] = pair {
                *hi = super::json::hex_digit(byte >> 4);
                *lo = super::json::hex_digit(byte & 0x0f);
            }
        }
        hex
    }

    /// The storage key of the salt of the device at `device_path`.
    pub(crate) fn storage_key(device_path: &str) -> String {
        format!("{SALT_PREFIX}{}", device_path.trim_end_matches('/'))
    }

    /// Load the device's salt, creating (and storing) a random UUID the first time.
    pub(crate) async fn load_or_create(storage: &dyn Backend, device_path: &str) -> Result<Salt> {
        let key = Salt::storage_key(device_path);
        let stored = storage.get(&key).await?;
        let value = match stored {
            Some(v) if !v.is_empty() => v,
            _ => {
                let v = uuid::Uuid::new_v4().to_string().into_bytes();
                storage.put(&key, &v).await.map_err(|e| {
                    Error::new(
                        e.code(),
                        format!("cannot store the salt of audit device `{device_path}`"),
                    )
                    .with_source(e)
                })?;
                v
            }
        };
        Ok(Salt::new(&value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;

    #[test]
    fn hmac_is_identified_hex_sha256() {
        // RFC 4231 test case 2.
        let s = Salt::new(b"Jefe");
        assert_eq!(
            s.hmac("what do ya want for nothing?"),
            "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(format!("{s:?}"), "Salt(<redacted>)");
    }

    #[test]
    fn token_hmacs_are_the_hmacs_whatever_was_hashed_before() {
        let s = Salt::new(b"Jefe");
        let hex = |v: &str| s.hmac_hex(v.as_bytes());
        for (token, accessor) in [
            ("s.one", "acc1"),
            ("s.one", "acc1"),
            ("s.two", "acc1"),
            ("s.two", "acc2"),
            ("s.one", "acc1"),
            ("s.on", "acc1"),
        ] {
            assert_eq!(
                s.token_hmacs(token, accessor),
                (hex(token), hex(accessor)),
                "{token} {accessor}"
            );
        }
    }

    #[tokio::test]
    async fn salt_is_persisted_per_device() {
        let storage = MemoryBackend::new();
        let a = Salt::load_or_create(&storage, "a/").await.unwrap();
        let a_again = Salt::load_or_create(&storage, "a/").await.unwrap();
        let b = Salt::load_or_create(&storage, "b/").await.unwrap();
        assert_eq!(a.hmac("x"), a_again.hmac("x"));
        assert_ne!(a.hmac("x"), b.hmac("x"));
        let stored = storage.get("sys/audit-salt/a").await.unwrap().unwrap();
        assert_eq!(Salt::new(&stored).hmac("x"), a.hmac("x"));
        assert!(uuid::Uuid::parse_str(std::str::from_utf8(&stored).unwrap()).is_ok());
    }
}
