use super::*;
use crate::error::ErrorCode;

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

fn new_key(t: KeyType, derived: bool, convergent: bool) -> TransitKey {
    let opts = KeyOptions {
        derived,
        convergent_encryption: convergent,
        key_size: None,
    };
    TransitKey::new("k", t, opts, now()).unwrap()
}

/// A key whose version 1 has fixed material, for known answers.
fn fixed_key(t: KeyType, derived: bool, convergent: bool) -> TransitKey {
    let mut k = new_key(t, derived, convergent);
    k.versions.clear();
    k.latest_version = 0;
    let len = t.key_len();
    let material = (0..len).map(|i| i as u8).collect::<Vec<_>>();
    k.push_version(
        Zeroizing::new(material),
        Zeroizing::new(vec![9u8; 32]),
        now(),
    )
    .unwrap();
    k
}

fn err(r: Result<impl std::fmt::Debug>) -> String {
    r.unwrap_err().message().to_owned()
}

const SYMMETRIC: [KeyType; 4] = KeyType::ENCRYPTING;

#[test]
fn new_key_has_one_version_and_openbao_defaults() {
    let k = new_key(KeyType::Aes256Gcm96, false, false);
    assert_eq!(k.latest_version, 1);
    assert_eq!(k.min_decryption_version, 1);
    assert_eq!(k.min_encryption_version, 0);
    assert_eq!(k.versions[&1].key.len(), 32);
    assert_eq!(k.versions[&1].hmac_key.len(), 32);
    assert_eq!(
        new_key(KeyType::Aes128Gcm96, false, false).versions[&1]
            .key
            .len(),
        16
    );
    let c = new_key(KeyType::Aes256Gcm96, true, true);
    assert_eq!(c.convergent_version, -1);
    assert_eq!(c.versions[&1].convergent_version, 3);
}

#[test]
fn creation_rules() {
    let o = |derived, convergent_encryption, key_size| KeyOptions {
        derived,
        convergent_encryption,
        key_size,
    };
    let mk = |t, opts| TransitKey::new("k", t, opts, now()).map(|_| ());
    assert_eq!(
        err(mk(KeyType::Aes256Gcm96, o(false, true, None))),
        "convergent encryption requires derivation to be enabled"
    );
    // XChaCha20-Poly1305 takes derivation and convergent encryption like the other AEADs.
    for (derived, convergent) in [(false, false), (true, false), (true, true)] {
        let k = TransitKey::new(
            "k",
            KeyType::XChaCha20Poly1305,
            o(derived, convergent, None),
            now(),
        )
        .unwrap();
        assert_eq!(k.versions[&1].key.len(), 32);
        assert_eq!(k.derived, derived);
    }
    assert_eq!(
        err(mk(KeyType::XChaCha20Poly1305, o(false, true, None))),
        "convergent encryption requires derivation to be enabled"
    );
    assert_eq!(
        err(mk(KeyType::XChaCha20Poly1305, o(false, false, Some(64)))),
        "key_size is not valid for algorithm xchacha20-poly1305"
    );
    assert!(mk(KeyType::Hmac, o(false, false, Some(64))).is_ok());
    assert_eq!(
        err(mk(KeyType::Hmac, o(false, false, Some(16)))),
        "invalid key_size provided"
    );
    assert!(mk(KeyType::Aes256Gcm96, o(false, false, Some(64))).is_err());
}

#[test]
fn debug_never_shows_key_material() {
    let k = fixed_key(KeyType::Aes256Gcm96, false, false);
    let dbg = format!("{k:?}");
    assert!(dbg.contains("[redacted]"));
    assert!(!dbg.contains("[0, 1, 2"));
    assert!(!dbg.contains("9, 9, 9"));
}

#[test]
fn round_trips_for_every_type_with_and_without_aad() {
    for t in SYMMETRIC {
        let k = new_key(t, false, false);
        for aad in [&b""[..], b"bound"] {
            let e = k.encrypt(b"hello world", b"", aad, 0).unwrap();
            assert_eq!(e.key_version, 1);
            let raw = base64::decode(e.ciphertext.strip_prefix("vault:v1:").unwrap()).unwrap();
            assert_eq!(raw.len(), t.nonce_len() + 11 + 16, "{t}");
            assert_eq!(
                k.decrypt(&e.ciphertext, b"", aad).unwrap().as_slice(),
                b"hello world"
            );
        }
        // Random nonces: two encryptions differ.
        let a = k.encrypt(b"x", b"", b"", 0).unwrap();
        let b = k.encrypt(b"x", b"", b"", 0).unwrap();
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(
            k.encrypt(b"", b"", b"", 0)
                .map(|e| k.decrypt(&e.ciphertext, b"", b"").unwrap().len())
                .unwrap(),
            0
        );
    }
}

#[test]
fn known_answers_from_an_independent_implementation() {
    // Computed with Python's `cryptography` (AESGCM, HKDF) following policy.go.
    let k = fixed_key(KeyType::Aes256Gcm96, false, false);
    let plain = "vault:v1:AAAAAAAAAAAAAAAAZtnZstoM9NJ6xM3GK8p+SzSJIF/dkpncifRv";
    assert_eq!(
        k.decrypt(plain, b"", b"").unwrap().as_slice(),
        b"hello world"
    );

    let d = fixed_key(KeyType::Aes256Gcm96, true, false);
    let derived = "vault:v1:AAAAAAAAAAAAAAAA1YeJiaNloKk7GG5thnty7a+ijzZuG0J3fsiG";
    assert_eq!(
        d.decrypt(derived, b"my-context", b"aad")
            .unwrap()
            .as_slice(),
        b"hello world"
    );

    for (t, want) in [
        (
            KeyType::Aes256Gcm96,
            "vault:v1:qBGVuHYLU/LGxzvYPdKeG35Y6LqCcilxvrQ/jB7ngHXzKAMn7Tt4",
        ),
        (
            KeyType::Aes128Gcm96,
            "vault:v1:KIPBYq9R5t+A6uROxT2LDlMPKMnwyEeX00CPYvimeaswKXbBgHtu",
        ),
        (
            KeyType::ChaCha20Poly1305,
            "vault:v1:qBGVuHYLU/LGxzvYAntv8Dgfy/8Nos6O8JYssPHcRTOEA7m3bD3M",
        ),
    ] {
        let c = fixed_key(t, true, true);
        let e = c.encrypt(b"hello world", b"my-context", b"", 0).unwrap();
        assert_eq!(e.ciphertext, want, "{t}");
        assert_eq!(
            c.decrypt(want, b"my-context", b"").unwrap().as_slice(),
            b"hello world"
        );
    }

    let mac = "vault:v1:JpBw5yPi+IK1rAJXXGW6m/r3q3NJb1SJj9tXy+bpZXnDMujepnOUSDD/XwqK2rDMEVmm31dN0bEdYBgU55Gu/w==";
    assert_eq!(
        k.hmac(b"hello world", HmacAlgorithm::Sha2_512, 0).unwrap(),
        mac
    );
    assert!(
        k.verify_hmac(b"hello world", mac, HmacAlgorithm::Sha2_512)
            .unwrap()
    );
}

#[test]
fn hkdf_matches_rfc5869_case_3() {
    // Empty salt and info, as OpenBao's HKDF uses an empty salt.
    let okm = hkdf_sha256(&[0x0b; 22], b"", 42).unwrap();
    assert_eq!(
        hex::encode(okm.as_slice()),
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    );
}

#[test]
fn derived_keys_need_a_context_and_bind_it() {
    for t in SYMMETRIC {
        let k = new_key(t, true, false);
        assert_eq!(err(k.encrypt(b"x", b"", b"", 0)), ERR_MISSING_CONTEXT);
        let e = k.encrypt(b"x", b"ctx-a", b"", 0).unwrap();
        assert_eq!(err(k.decrypt(&e.ciphertext, b"", b"")), ERR_MISSING_CONTEXT);
        assert_eq!(
            k.decrypt(&e.ciphertext, b"ctx-a", b"").unwrap().as_slice(),
            b"x"
        );
        let wrong = k.decrypt(&e.ciphertext, b"ctx-b", b"").unwrap_err();
        assert_eq!(wrong.message(), aead::auth_failed(t).message());
    }
}

#[test]
fn convergent_encryption_is_deterministic_per_context() {
    for t in SYMMETRIC {
        let k = new_key(t, true, true);
        let a = k.encrypt(b"same", b"ctx", b"", 0).unwrap();
        let b = k.encrypt(b"same", b"ctx", b"", 0).unwrap();
        assert_eq!(a, b, "{t}");
        assert_ne!(a, k.encrypt(b"other", b"ctx", b"", 0).unwrap());
        assert_ne!(a, k.encrypt(b"same", b"ctx2", b"", 0).unwrap());
        assert_eq!(
            k.decrypt(&a.ciphertext, b"ctx", b"").unwrap().as_slice(),
            b"same"
        );
    }
}

#[test]
fn old_convergent_versions_are_refused() {
    let mut k = new_key(KeyType::Aes256Gcm96, true, true);
    let e = k.encrypt(b"x", b"ctx", b"", 0).unwrap();
    if let Some(v) = k.versions.get_mut(&1) {
        v.convergent_version = 2;
    }
    let want = "refusing to support decryption with old convergent encryption key: version 2";
    assert_eq!(err(k.decrypt(&e.ciphertext, b"ctx", b"")), want);
    assert_eq!(err(k.encrypt(b"x", b"ctx", b"", 0)), want);
    if let Some(v) = k.versions.get_mut(&1) {
        v.convergent_version = 0;
    }
    k.convergent_version = 0;
    assert_eq!(
        err(k.decrypt(&e.ciphertext, b"ctx", b"")),
        "refusing to support decryption with old convergent encryption key: version 1"
    );
}

#[test]
fn bad_ciphertexts_use_openbao_text() {
    let k = new_key(KeyType::Aes256Gcm96, false, false);
    let good = k.encrypt(b"hello", b"", b"", 0).unwrap().ciphertext;
    let cases = [
        ("abc", "invalid ciphertext: no prefix"),
        ("vault:v1", "invalid ciphertext: wrong number of fields"),
        (
            "vault:vone:abc",
            "invalid ciphertext: version number could not be decoded",
        ),
        ("vault:v2:abc", "invalid ciphertext: version is too new"),
        (
            "vault:v1:not base64!",
            "invalid ciphertext: could not decode base64",
        ),
        ("vault:v1:QUJD", "invalid ciphertext length"),
    ];
    for (c, want) in cases {
        let e = k.decrypt(c, b"", b"").unwrap_err();
        assert_eq!(e.message(), want, "{c}");
        assert_eq!(e.code(), ErrorCode::InvalidInput);
    }
    // Tampering anywhere in the payload gives the same text.
    let payload = good.strip_prefix("vault:v1:").unwrap();
    let raw = base64::decode(payload).unwrap();
    for i in 0..raw.len() {
        let mut bad = raw.to_vec();
        bad[i] ^= 0x80;
        let c = format!("vault:v1:{}", base64::encode(&bad));
        let e = k.decrypt(&c, b"", b"").unwrap_err();
        assert_eq!(e.message(), "cipher: message authentication failed");
        assert_eq!(e.code(), ErrorCode::Crypto);
    }
    // v0 is read as v1.
    let v0 = good.replacen("vault:v1:", "vault:v0:", 1);
    assert_eq!(k.decrypt(&v0, b"", b"").unwrap().as_slice(), b"hello");
}

#[test]
fn version_rules() {
    let mut k = new_key(KeyType::Aes256Gcm96, false, false);
    let v1 = k.encrypt(b"one", b"", b"", 0).unwrap();
    assert_eq!(k.rotate(now()).unwrap(), 2);
    assert_eq!(k.rotate(now()).unwrap(), 3);
    let latest = k.encrypt(b"three", b"", b"", 0).unwrap();
    assert_eq!(latest.key_version, 3);
    assert!(latest.ciphertext.starts_with("vault:v3:"));
    let pinned = k.encrypt(b"two", b"", b"", 2).unwrap();
    assert!(pinned.ciphertext.starts_with("vault:v2:"));
    assert_eq!(
        k.decrypt(&v1.ciphertext, b"", b"").unwrap().as_slice(),
        b"one"
    );
    assert_eq!(
        k.decrypt(&pinned.ciphertext, b"", b"").unwrap().as_slice(),
        b"two"
    );

    assert_eq!(
        err(k.encrypt(b"x", b"", b"", -1)),
        "requested version for encryption is negative"
    );
    assert_eq!(
        err(k.encrypt(b"x", b"", b"", 4)),
        "requested version for encryption is higher than the latest key version"
    );
    k.min_encryption_version = 2;
    assert_eq!(
        err(k.encrypt(b"x", b"", b"", 1)),
        "requested version for encryption is less than the minimum encryption key version"
    );
    k.min_decryption_version = 2;
    assert_eq!(err(k.decrypt(&v1.ciphertext, b"", b"")), ERR_TOO_OLD);
    assert_eq!(
        err(k.decrypt(&v1.ciphertext.replacen("v1", "v0", 1), b"", b"")),
        ERR_TOO_OLD
    );

    let re = k.rewrap(&pinned.ciphertext, b"", 0).unwrap();
    assert_eq!(re.key_version, 3);
    assert_eq!(
        k.decrypt(&re.ciphertext, b"", b"").unwrap().as_slice(),
        b"two"
    );
}

#[test]
fn data_keys() {
    for t in [KeyType::Aes256Gcm96, KeyType::XChaCha20Poly1305] {
        let k = new_key(t, false, false);
        for (bits, len) in [(128, 16), (256, 32), (512, 64)] {
            let (plain, wrapped) = k.data_key(bits, b"", 0).unwrap();
            assert_eq!(plain.len(), len);
            assert_eq!(k.decrypt(&wrapped.ciphertext, b"", b"").unwrap(), plain);
        }
        assert_eq!(err(k.data_key(64, b"", 0)), "invalid bit length");
    }
}

#[test]
fn xchacha_rewraps_across_versions() {
    let mut k = new_key(KeyType::XChaCha20Poly1305, true, false);
    let old = k.encrypt(b"payload", b"ctx", b"", 0).unwrap();
    k.rotate(now()).unwrap();
    let new = k.rewrap(&old.ciphertext, b"ctx", 0).unwrap();
    assert_eq!(new.key_version, 2);
    assert!(new.ciphertext.starts_with("vault:v2:"));
    assert_eq!(
        k.decrypt(&new.ciphertext, b"ctx", b"").unwrap().as_slice(),
        b"payload"
    );
    // The two versions hold different keys: v1's ciphertext relabelled v2 does not open.
    let relabelled = old.ciphertext.replacen("vault:v1:", "vault:v2:", 1);
    assert_eq!(
        err(k.decrypt(&relabelled, b"ctx", b"")),
        "chacha20poly1305: message authentication failed"
    );
}

#[test]
fn hmac_keys_cannot_encrypt() {
    let k = TransitKey::new(
        "h",
        KeyType::Hmac,
        KeyOptions {
            key_size: Some(64),
            ..KeyOptions::default()
        },
        now(),
    )
    .unwrap();
    assert_eq!(
        err(k.encrypt(b"x", b"", b"", 0)),
        "message encryption not supported for key type hmac"
    );
    // An hmac key's HMAC uses the key itself.
    let mac = k.hmac(b"in", HmacAlgorithm::Sha2_256, 0).unwrap();
    let want = base64::encode(&HmacAlgorithm::Sha2_256.sign(&k.versions[&1].key, b"in"));
    assert_eq!(mac, format!("vault:v1:{want}"));
}

#[test]
fn hmac_and_verify() {
    let mut k = new_key(KeyType::Aes256Gcm96, false, false);
    let mac = k.hmac(b"data", HmacAlgorithm::Sha2_256, 0).unwrap();
    let want = base64::encode(&HmacAlgorithm::Sha2_256.sign(&k.versions[&1].hmac_key, b"data"));
    assert_eq!(mac, format!("vault:v1:{want}"));
    assert!(
        k.verify_hmac(b"data", &mac, HmacAlgorithm::Sha2_256)
            .unwrap()
    );
    assert!(
        !k.verify_hmac(b"datb", &mac, HmacAlgorithm::Sha2_256)
            .unwrap()
    );
    assert!(
        !k.verify_hmac(b"data", &mac, HmacAlgorithm::Sha2_384)
            .unwrap()
    );
    for a in ["sha2-224", "sha2-384", "sha2-512"] {
        let a = HmacAlgorithm::parse(a).unwrap();
        let m = k.hmac(b"data", a, 0).unwrap();
        assert!(k.verify_hmac(b"data", &m, a).unwrap());
    }

    k.rotate(now()).unwrap();
    let m2 = k.hmac(b"data", HmacAlgorithm::Sha2_256, 0).unwrap();
    assert!(m2.starts_with("vault:v2:"));
    assert_ne!(m2, mac.replacen("v1", "v2", 1));
    assert!(
        k.verify_hmac(b"data", &mac, HmacAlgorithm::Sha2_256)
            .unwrap()
    );

    let cases = [
        ("abc", "invalid HMAC to verify: no prefix"),
        ("vault:v1", "invalid HMAC: wrong number of fields"),
        (
            "vault:vx:abc",
            "invalid HMAC: version number could not be decoded",
        ),
        (
            "vault:v1:ab!d",
            "unable to decode verification HMAC as base64: illegal base64 data at input byte 2",
        ),
        ("vault:v3:QUJD", "invalid HMAC: version is too new"),
    ];
    for (h, want) in cases {
        assert_eq!(
            err(k.verify_hmac(b"data", h, HmacAlgorithm::Sha2_256)),
            want,
            "{h}"
        );
    }
    k.min_decryption_version = 2;
    assert_eq!(
        err(k.verify_hmac(b"data", &mac, HmacAlgorithm::Sha2_256)),
        "cannot verify HMAC: version is too old (disallowed by policy)"
    );
    k.min_encryption_version = 2;
    assert_eq!(
        err(k.hmac(b"data", HmacAlgorithm::Sha2_256, 1)),
        "cannot generate HMAC: version is too old (disallowed by policy)"
    );
    assert_eq!(
        err(k.hmac(b"data", HmacAlgorithm::Sha2_256, 5)),
        "key version does not exist; latest key version is 2"
    );
}

#[test]
fn legacy_counter_mode_kdf() {
    let mut k = fixed_key(KeyType::Aes256Gcm96, true, false);
    k.kdf = Kdf::HmacSha256Counter;
    assert_eq!(k.kdf.name(), "hmac-sha256-counter");
    assert_eq!(Kdf::default().name(), "hkdf_sha256");
    // One HMAC-SHA256 round over be32(0) ‖ context ‖ be32(256).
    let mut input = vec![0, 0, 0, 0];
    input.extend_from_slice(b"ctx");
    input.extend_from_slice(&[0, 0, 1, 0]);
    let want = HmacAlgorithm::Sha2_256.sign(&k.versions[&1].key, &input);
    assert_eq!(
        k.key_for(b"ctx", 1, 32).unwrap().as_slice(),
        want.as_slice()
    );
    let e = k.encrypt(b"x", b"ctx", b"", 0).unwrap();
    assert_eq!(
        k.decrypt(&e.ciphertext, b"ctx", b"").unwrap().as_slice(),
        b"x"
    );
    assert_eq!(k.name, "k");
}

#[test]
fn version_limits_follow_openbao() {
    let mut k = new_key(KeyType::Aes256Gcm96, false, false);
    k.rotate(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(10))
        .unwrap();
    k.rotate(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(20))
        .unwrap();
    assert_eq!(
        k.version_times(),
        BTreeMap::from([(1, 0), (2, 10), (3, 20)])
    );

    let l = k.check_version_limits(Some(0), None).unwrap();
    assert_eq!(l.min_decryption_version, 1);
    assert_eq!(
        l.warnings,
        ["since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"]
    );
    assert_eq!(
        err(k.check_version_limits(Some(4), None)),
        "cannot set min decryption version of 4, latest key version is 3"
    );
    assert_eq!(
        err(k.check_version_limits(None, Some(4))),
        "cannot set min encryption version of 4, latest key version is 3"
    );
    assert_eq!(
        err(k.check_version_limits(Some(3), Some(2))),
        "cannot set min encryption/decryption values; min encryption version of 2 must be greater than or equal to min decryption version of 3"
    );
    assert_eq!(
        err(k.check_version_limits(Some(-1), None)),
        "min decryption version cannot be negative"
    );
    // A failed check changes nothing.
    assert_eq!(k.min_decryption_version, 1);

    let l = k.check_version_limits(Some(2), Some(3)).unwrap();
    assert!(l.warnings.is_empty());
    k.apply_version_limits(&l);
    assert_eq!((k.min_decryption_version, k.min_encryption_version), (2, 3));
    assert_eq!(k.version_times(), BTreeMap::from([(2, 10), (3, 20)]));
    // Min encryption 0 means "any" and is always compatible.
    assert!(k.check_version_limits(Some(3), Some(0)).is_ok());
}

mod properties {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_input_round_trips(
            t in prop::sample::select(SYMMETRIC.to_vec()),
            derived in any::<bool>(),
            convergent in any::<bool>(),
            pt in vec(any::<u8>(), 0..256),
            aad in vec(any::<u8>(), 0..32),
            ctx in vec(any::<u8>(), 1..32),
        ) {
            let k = new_key(t, derived || convergent, convergent);
            let e = k.encrypt(&pt, &ctx, &aad, 0).unwrap();
            let back = k.decrypt(&e.ciphertext, &ctx, &aad).unwrap();
            prop_assert_eq!(back.as_slice(), pt.as_slice());
            if convergent {
                prop_assert_eq!(k.encrypt(&pt, &ctx, &aad, 0).unwrap(), e);
            }
        }

        #[test]
        fn malformed_ciphertexts_are_errors_not_panics(
            s in "(vault:v[0-9+-]{0,3}:)?[A-Za-z0-9+/=\\n:]{0,80}",
        ) {
            let k = new_key(KeyType::Aes256Gcm96, false, false);
            prop_assert!(k.decrypt(&s, b"", b"").is_err());
            prop_assert!(k.verify_hmac(b"x", &s, HmacAlgorithm::Sha2_256).map_or(true, |ok| !ok));
        }
    }
}
