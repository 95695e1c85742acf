//! The AEADs behind the symmetric key types, in OpenBao's raw layout `nonce ‖ ct ‖ tag`.
//!
//! AES-GCM and ChaCha20-Poly1305 come from aws-lc-rs; XChaCha20-Poly1305, which aws-lc-rs
//! lacks, from RustCrypto's `chacha20poly1305`. A [`PreparedKey`] enum (not a trait object)
//! keeps the common AES path a direct call.

use aws_lc_rs::aead::{
    AES_128_GCM, AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey,
};
use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305};
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

/// Nonce length of the aws-lc-rs AEADs.
const NONCE_LEN_96: usize = aws_lc_rs::aead::NONCE_LEN;
/// Nonce length of XChaCha20-Poly1305, the longest of any supported AEAD.
const XCHACHA_NONCE_LEN: usize = KeyType::XChaCha20Poly1305.nonce_len();
const MAX_NONCE_LEN: usize = XCHACHA_NONCE_LEN;

/// A cipher key ready to use (the key schedule done once), for keys used many times.
pub(crate) enum PreparedKey {
    /// AES-GCM or ChaCha20-Poly1305 (aws-lc-rs), 12-byte nonces.
    AwsLc(LessSafeKey),
    /// XChaCha20-Poly1305 (RustCrypto), 24-byte nonces; the key is wiped on drop.
    XChaCha(XChaCha20Poly1305),
}

impl PreparedKey {
    fn nonce_len(&self) -> usize {
        match self {
            PreparedKey::AwsLc(_) => NONCE_LEN_96,
            PreparedKey::XChaCha(_) => XCHACHA_NONCE_LEN,
        }
    }
}

fn algorithm(key_type: KeyType) -> Result<&'static Algorithm> {
    match key_type {
        KeyType::Aes128Gcm96 => Ok(&AES_128_GCM),
        KeyType::Aes256Gcm96 => Ok(&AES_256_GCM),
        KeyType::ChaCha20Poly1305 => Ok(&CHACHA20_POLY1305),
        other => Err(Error::invalid_input(format!(
            "message encryption not supported for key type {other}"
        ))),
    }
}

/// A prepared AEAD key (the key schedule done once), for keys used many times.
pub(crate) fn prepare(key_type: KeyType, key: &[u8]) -> Result<PreparedKey> {
    let wrong_len = || Error::internal("could not derive enc key, length not correct");
    if key_type == KeyType::XChaCha20Poly1305 {
        let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| wrong_len())?;
        return Ok(PreparedKey::XChaCha(cipher));
    }
    let unbound = UnboundKey::new(algorithm(key_type)?, key).map_err(|_| wrong_len())?;
    Ok(PreparedKey::AwsLc(LessSafeKey::new(unbound)))
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
    seal_with(&prepare(key_type, key)?, plaintext, aad, nonce)
}

/// [`seal`] with a prepared key.
pub(crate) fn seal_with(
    sealing: &PreparedKey,
    plaintext: &[u8],
    aad: &[u8],
    nonce: NonceSource<'_>,
) -> Result<Vec<u8>> {
    let nonce_len = sealing.nonce_len();
    let mut nonce_buf = [0u8; MAX_NONCE_LEN];
    let nonce_bytes = nonce_buf
        .get_mut(..nonce_len)
        .ok_or_else(|| Error::internal("unexpected nonce length"))?;
    match nonce {
        // The thread's CSPRNG (ChaCha12, seeded and reseeded from the OS): unpredictable
        // nonces without a system call per encryption.
        NonceSource::Random => rand::RngCore::fill_bytes(&mut rand::rng(), nonce_bytes),
        NonceSource::Convergent { hmac_key } => {
            if hmac_key.is_empty() {
                return Err(Error::internal("invalid hmac key length of zero"));
            }
            // OpenBao: `HMAC-SHA256(hmacKey, plaintext)[:NonceSize()]`, 12 or 24 bytes.
            let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, hmac_key);
            let sum = aws_lc_rs::hmac::sign(&k, plaintext);
            let head = sum
                .as_ref()
                .get(..nonce_len)
                .ok_or_else(|| Error::internal("nonce hmac too short"))?;
            nonce_bytes.copy_from_slice(head);
        }
    }
    let mut out = Vec::with_capacity(nonce_len + plaintext.len() + TAG_LEN);
    out.extend_from_slice(nonce_bytes);
    out.extend_from_slice(plaintext);
    let body = out
        .get_mut(nonce_len..)
        .ok_or_else(|| Error::internal("encryption failed"))?;
    let failed = |_| Error::internal("encryption failed");
    match sealing {
        PreparedKey::AwsLc(key) => {
            let nonce: [u8; NONCE_LEN_96] = nonce_bytes
                .try_into()
                .map_err(|_| Error::internal("unexpected nonce length"))?;
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    body,
                )
                .map_err(failed)?;
            out.extend_from_slice(tag.as_ref());
        }
        PreparedKey::XChaCha(key) => {
            let nonce = chacha20poly1305::XNonce::try_from(&*nonce_bytes)
                .map_err(|_| Error::internal("unexpected nonce length"))?;
            let tag = key
                .encrypt_inout_detached(&nonce, aad, body.into())
                .map_err(|_| Error::internal("encryption failed"))?;
            out.extend_from_slice(tag.as_slice());
        }
    }
    Ok(out)
}

/// Decrypt `nonce ‖ ciphertext ‖ tag`.
pub(crate) fn open(
    key_type: KeyType,
    key: &[u8],
    raw: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    open_with(key_type, &prepare(key_type, key)?, raw, aad)
}

/// [`open`] with a prepared key.
pub(crate) fn open_with(
    key_type: KeyType,
    opening: &PreparedKey,
    raw: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let nonce_len = opening.nonce_len();
    if raw.len() < nonce_len {
        return Err(Error::invalid_input("invalid ciphertext length"));
    }
    let (nonce, sealed) = raw.split_at(nonce_len);
    match opening {
        PreparedKey::AwsLc(key) => {
            let nonce: [u8; NONCE_LEN_96] = nonce
                .try_into()
                .map_err(|_| Error::internal("unexpected nonce length"))?;
            let mut buf = Zeroizing::new(sealed.to_vec());
            let len = key
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
        PreparedKey::XChaCha(key) => {
            // Too short to carry a tag: the same error as a bad tag, as in Go.
            let body_len = sealed
                .len()
                .checked_sub(TAG_LEN)
                .ok_or_else(|| auth_failed(key_type))?;
            let (body, tag) = sealed.split_at(body_len);
            let nonce = chacha20poly1305::XNonce::try_from(nonce)
                .map_err(|_| Error::internal("unexpected nonce length"))?;
            let tag = chacha20poly1305::Tag::try_from(tag)
                .map_err(|_| Error::internal("unexpected tag length"))?;
            let mut buf = Zeroizing::new(body.to_vec());
            key.decrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into(), &tag)
                .map_err(|_| auth_failed(key_type))?;
            Ok(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: [KeyType; 4] = KeyType::ENCRYPTING;

    #[test]
    fn layout_is_nonce_ct_tag() {
        for t in TYPES {
            let key = vec![7u8; t.key_len()];
            let raw = seal(t, &key, b"hello world", b"", NonceSource::Random).unwrap();
            assert_eq!(raw.len(), t.nonce_len() + 11 + 16, "{t}");
            assert_eq!(open(t, &key, &raw, b"").unwrap().as_slice(), b"hello world");
            assert_eq!(prepare(t, &key).unwrap().nonce_len(), t.nonce_len(), "{t}");
        }
        // XChaCha20-Poly1305 (11 bytes of plaintext → 51 raw bytes, as in OpenBao).
        let raw = seal(
            KeyType::XChaCha20Poly1305,
            &[7u8; 32],
            b"hello world",
            b"",
            NonceSource::Random,
        )
        .unwrap();
        assert_eq!(raw.len(), 51);
    }

    #[test]
    fn xchacha_matches_the_draft_rfc_vector() {
        // draft-irtf-cfrg-xchacha-03 §A.3.1 (AEAD_XChaCha20_Poly1305).
        let key: Vec<u8> = (0x80u8..=0x9f).collect();
        let nonce: Vec<u8> = (0x40u8..=0x57).collect();
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let ct = hex::decode(concat!(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb",
            "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452",
            "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9",
            "21f9664c97637da9768812f615c68b13b52e",
        ))
        .unwrap();
        let tag = hex::decode("c0875924c1c7987947deafd8780acf49").unwrap();
        let mut raw = nonce.clone();
        raw.extend_from_slice(&ct);
        raw.extend_from_slice(&tag);
        let t = KeyType::XChaCha20Poly1305;
        assert_eq!(open(t, &key, &raw, &aad).unwrap().as_slice(), pt);
        // Sealing with that nonce (a convergent nonce key cannot force it, so check the body).
        let sealed = seal(t, &key, pt, &aad, NonceSource::Random).unwrap();
        assert_eq!(open(t, &key, &sealed, &aad).unwrap().as_slice(), pt);
        assert_ne!(&sealed[..24], &nonce[..]);
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
            let n = t.nonce_len();
            assert_eq!(
                open(t, &key, &raw[..n + 2], b"aad").unwrap_err().message(),
                want
            );
            assert_eq!(
                open(t, &key, &raw[..n - 1], b"aad").unwrap_err().message(),
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
    fn convergent_xchacha_nonce_is_24_bytes_of_the_hmac() {
        let key = [1u8; 32];
        let hk = [2u8; 32];
        let t = KeyType::XChaCha20Poly1305;
        let conv = || NonceSource::Convergent { hmac_key: &hk };
        let a = seal(t, &key, b"same", b"", conv()).unwrap();
        assert_eq!(a, seal(t, &key, b"same", b"", conv()).unwrap());
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &hk);
        let sum = aws_lc_rs::hmac::sign(&k, b"same");
        assert_eq!(&a[..24], &sum.as_ref()[..24]);
        assert_eq!(open(t, &key, &a, b"").unwrap().as_slice(), b"same");
    }

    #[test]
    fn hmac_refuses_to_encrypt_and_bad_key_lengths_are_errors() {
        assert_eq!(
            seal(KeyType::Hmac, &[0; 32], b"x", b"", NonceSource::Random)
                .unwrap_err()
                .message(),
            "message encryption not supported for key type hmac"
        );
        for t in TYPES {
            assert_eq!(
                seal(t, &[0; 31], b"x", b"", NonceSource::Random)
                    .unwrap_err()
                    .code(),
                ErrorCode::Internal,
                "{t}"
            );
        }
    }
}
