//! The AEADs behind the symmetric key types, in OpenBao's raw layout `nonce ‖ ct ‖ tag`.

use aws_lc_rs::aead::{
    AES_128_GCM, AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce,
    UnboundKey,
};
use zeroize::Zeroizing;

use super::key_type::KeyType;
use crate::error::{Error, ErrorCode, Result};

/// AEAD tag length of every supported type.
pub(crate) const TAG_LEN: usize = 16;

/// How the nonce of one encryption is chosen.
pub(crate) enum NonceSource<'a> {
    /// Fresh random bytes (ordinary encryption).
    Random,
    /// Convergent v2/v3: `HMAC-SHA256(hmac_key, plaintext)` truncated to the nonce length.
    Convergent {
        /// The derived per-context nonce key.
        hmac_key: &'a [u8],
    },
}

fn algorithm(key_type: KeyType) -> Result<&'static Algorithm> {
    match key_type {
        KeyType::Aes128Gcm96 => Ok(&AES_128_GCM),
        KeyType::Aes256Gcm96 => Ok(&AES_256_GCM),
        KeyType::ChaCha20Poly1305 => Ok(&CHACHA20_POLY1305),
        KeyType::XChaCha20Poly1305 => Err(KeyType::xchacha_unavailable()),
        other => Err(Error::invalid_input(format!(
            "message encryption not supported for key type {other}"
        ))),
    }
}

/// A prepared AEAD key (the key schedule done once), for keys used many times.
pub(crate) fn prepare(key_type: KeyType, key: &[u8]) -> Result<LessSafeKey> {
    aead_key(key_type, key)
}

fn aead_key(key_type: KeyType, key: &[u8]) -> Result<LessSafeKey> {
    let unbound = UnboundKey::new(algorithm(key_type)?, key)
        .map_err(|_| Error::internal("could not derive enc key, length not correct"))?;
    Ok(LessSafeKey::new(unbound))
}

/// The error Go's AEAD returns when the tag does not verify (or the input is too short to
/// carry one). One text per cipher, whatever was wrong.
pub(crate) fn auth_failed(key_type: KeyType) -> Error {
    let text = match key_type {
        KeyType::ChaCha20Poly1305 | KeyType::XChaCha20Poly1305 => {
            "chacha20poly1305: message authentication failed"
        }
        _ => "cipher: message authentication failed",
    };
    Error::new(ErrorCode::Crypto, text)
}

/// Encrypt `plaintext` with `key` and return `nonce ‖ ciphertext ‖ tag`.
pub(crate) fn seal(
    key_type: KeyType,
    key: &[u8],
    plaintext: &[u8],
    aad: &[u8],
    nonce: NonceSource<'_>,
) -> Result<Vec<u8>> {
    seal_with(&aead_key(key_type, key)?, plaintext, aad, nonce)
}

/// [`seal`] with a prepared key.
pub(crate) fn seal_with(
    sealing: &LessSafeKey,
    plaintext: &[u8],
    aad: &[u8],
    nonce: NonceSource<'_>,
) -> Result<Vec<u8>> {
    let mut nonce_bytes = [0u8; NONCE_LEN];
    match nonce {
        // The thread's CSPRNG (ChaCha12, seeded and reseeded from the OS): unpredictable
        // nonces without a system call per encryption.
        NonceSource::Random => rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce_bytes),
        NonceSource::Convergent { hmac_key } => {
            if hmac_key.is_empty() {
                return Err(Error::internal("invalid hmac key length of zero"));
            }
            let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, hmac_key);
            let sum = aws_lc_rs::hmac::sign(&k, plaintext);
            let head = sum
                .as_ref()
                .get(..NONCE_LEN)
                .ok_or_else(|| Error::internal("nonce hmac too short"))?;
            nonce_bytes.copy_from_slice(head);
        }
    }
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(plaintext);
    let body = out
        .get_mut(NONCE_LEN..)
        .ok_or_else(|| Error::internal("encryption failed"))?;
    let tag = sealing
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad),
            body,
        )
        .map_err(|_| Error::internal("encryption failed"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Decrypt `nonce ‖ ciphertext ‖ tag`.
pub(crate) fn open(
    key_type: KeyType,
    key: &[u8],
    raw: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    open_with(key_type, &aead_key(key_type, key)?, raw, aad)
}

/// [`open`] with a prepared key.
pub(crate) fn open_with(
    key_type: KeyType,
    opening: &LessSafeKey,
    raw: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let nonce_len = key_type.nonce_len();
    if raw.len() < nonce_len {
        return Err(Error::invalid_input("invalid ciphertext length"));
    }
    let (nonce, sealed) = raw.split_at(nonce_len);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| Error::internal("unexpected nonce length"))?;
    let mut buf = Zeroizing::new(sealed.to_vec());
    let len = opening
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            buf.as_mut_slice(),
        )
        .map_err(|_| auth_failed(key_type))?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: [KeyType; 3] = [
        KeyType::Aes128Gcm96,
        KeyType::Aes256Gcm96,
        KeyType::ChaCha20Poly1305,
    ];

    #[test]
    fn layout_is_nonce_ct_tag() {
        for t in TYPES {
            let key = vec![7u8; t.key_len()];
            let raw = seal(t, &key, b"hello world", b"", NonceSource::Random).unwrap();
            assert_eq!(raw.len(), 12 + 11 + 16, "{t}");
            assert_eq!(open(t, &key, &raw, b"").unwrap().as_slice(), b"hello world");
        }
    }

    #[test]
    fn tamper_and_wrong_aad_give_one_text_per_cipher() {
        for t in TYPES {
            let key = vec![7u8; t.key_len()];
            let raw = seal(t, &key, b"pt", b"aad", NonceSource::Random).unwrap();
            let want = auth_failed(t).message().to_owned();
            assert_eq!(open(t, &key, &raw, b"").unwrap_err().message(), want);
            for i in 0..raw.len() {
                let mut bad = raw.clone();
                bad[i] ^= 0x01;
                let e = open(t, &key, &bad, b"aad").unwrap_err();
                assert_eq!(e.message(), want);
                assert_eq!(e.code(), ErrorCode::Crypto);
            }
            // Long enough for a nonce, too short for a tag.
            assert_eq!(
                open(t, &key, &raw[..14], b"aad").unwrap_err().message(),
                want
            );
            assert_eq!(
                open(t, &key, &raw[..11], b"aad").unwrap_err().message(),
                "invalid ciphertext length"
            );
        }
        assert_eq!(
            auth_failed(KeyType::Aes256Gcm96).message(),
            "cipher: message authentication failed"
        );
    }

    #[test]
    fn convergent_nonce_is_the_hmac_prefix() {
        let key = [1u8; 32];
        let hk = [2u8; 32];
        let a = seal(
            KeyType::Aes256Gcm96,
            &key,
            b"same",
            b"",
            NonceSource::Convergent { hmac_key: &hk },
        )
        .unwrap();
        let b = seal(
            KeyType::Aes256Gcm96,
            &key,
            b"same",
            b"",
            NonceSource::Convergent { hmac_key: &hk },
        )
        .unwrap();
        assert_eq!(a, b);
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &hk);
        let sum = aws_lc_rs::hmac::sign(&k, b"same");
        assert_eq!(&a[..12], &sum.as_ref()[..12]);
    }

    #[test]
    fn hmac_and_xchacha_refuse_to_encrypt() {
        assert_eq!(
            seal(KeyType::Hmac, &[0; 32], b"x", b"", NonceSource::Random)
                .unwrap_err()
                .message(),
            "message encryption not supported for key type hmac"
        );
        assert!(
            seal(
                KeyType::XChaCha20Poly1305,
                &[0; 32],
                b"x",
                b"",
                NonceSource::Random
            )
            .is_err()
        );
    }
}
