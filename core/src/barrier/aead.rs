//! AES-256-GCM in OpenBao's barrier layout: `term (u32 BE) ‖ 0x02 ‖ nonce (12) ‖ ct ‖ tag (16)`,
//! with the storage path as additional authenticated data.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Version byte of the current layout (path as AAD).
pub(crate) const VERSION_AAD: u8 = 0x02;
/// Legacy version byte (no AAD).
pub(crate) const VERSION_LEGACY: u8 = 0x01;
/// Bytes before the ciphertext: term, version, nonce.
pub(crate) const HEADER_LEN: usize = 4 + 1 + NONCE_LEN;
const TAG_LEN: usize = 16;

/// One AES-GCM key (16 or 32 bytes).
pub(crate) struct GcmKey {
    key: LessSafeKey,
}

impl GcmKey {
    pub(crate) fn new(bytes: &[u8]) -> Result<GcmKey> {
        let alg = match bytes.len() {
            32 => &AES_256_GCM,
            16 => &AES_128_GCM,
            _ => return Err(Error::internal("key size must be 16 or 32")),
        };
        let unbound = UnboundKey::new(alg, bytes)
            .map_err(|_| Error::internal("key size must be 16 or 32"))?;
        Ok(GcmKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Encrypt `plaintext` under `term`, binding it to `path`.
    pub(crate) fn seal(&self, term: u32, path: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Error::internal("random source failed"))?;
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&term.to_be_bytes());
        out.push(VERSION_AAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let (head, body) = out.split_at_mut(HEADER_LEN);
        let _ = head;
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(path.as_bytes()),
                body,
            )
            .map_err(|_| Error::internal("encryption failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypt a barrier blob (its term already checked by the caller).
    pub(crate) fn open(&self, path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let corrupt = || Error::storage(format!("stored entry at `{path}` failed to decrypt"));
        if blob.len() < HEADER_LEN + TAG_LEN {
            return Err(corrupt());
        }
        let version = *blob.get(4).ok_or_else(corrupt)?;
        let aad: &[u8] = match version {
            VERSION_AAD => path.as_bytes(),
            VERSION_LEGACY => &[],
            _ => return Err(Error::storage("version bytes mis-match")),
        };
        let nonce_bytes: [u8; NONCE_LEN] = blob
            .get(5..HEADER_LEN)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(corrupt)?;
        let mut buf = Zeroizing::new(blob.get(HEADER_LEN..).ok_or_else(corrupt)?.to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                buf.as_mut_slice(),
            )
            .map_err(|_| corrupt())?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// The term a barrier blob was written under.
pub(crate) fn term_of(blob: &[u8]) -> Option<u32> {
    let b: [u8; 4] = blob.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// `n` random bytes, zeroized on drop.
pub(crate) fn random_key(n: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut k = Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(k.as_mut_slice()).map_err(|_| Error::internal("random source failed"))?;
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_term_version_nonce_ct_tag() {
        let k = GcmKey::new(&[7u8; 32]).unwrap();
        let blob = k.seal(3, "a/b", b"hello").unwrap();
        assert_eq!(blob.len(), 4 + 1 + 12 + 5 + 16);
        assert_eq!(term_of(&blob), Some(3));
        assert_eq!(blob[4], 0x02);
        assert_eq!(k.open("a/b", &blob).unwrap().as_slice(), b"hello");
    }

    #[test]
    fn path_is_bound_and_tampering_detected() {
        let k = GcmKey::new(&[7u8; 32]).unwrap();
        let mut blob = k.seal(1, "a/b", b"hello").unwrap();
        assert_eq!(
            k.open("a/c", &blob).unwrap_err().code(),
            crate::ErrorCode::Storage
        );
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert!(k.open("a/b", &blob).is_err());
        blob[4] = 9;
        assert_eq!(
            k.open("a/b", &blob).unwrap_err().message(),
            "version bytes mis-match"
        );
        assert!(k.open("a/b", &[0, 0, 0, 1, 2]).is_err());
    }

    #[test]
    fn rejects_bad_key_sizes() {
        assert!(GcmKey::new(&[0u8; 16]).is_ok());
        assert_eq!(
            GcmKey::new(&[0u8; 20]).err().unwrap().message(),
            "key size must be 16 or 32"
        );
    }
}
