//! The transit engine through the pipeline: key lifecycle, encrypt/decrypt/rewrap with batches,
//! datakeys, HMAC, sign/verify, export, backup/restore, auto-rotation on the virtual clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use strongroom::{Client, Config, ErrorCode, Response, Strongroom, VirtualClock, data};

async fn setup() -> (Strongroom, Client, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::new());
    let sr = Strongroom::open(Config::dev().clock(clock.clone()))
        .await
        .unwrap();
    let client = sr.client(sr.dev_root_token().unwrap());
    client
        .sys()
        .enable_mount("transit", "transit", &[])
        .await
        .unwrap();
    (sr, client, clock)
}

async fn write(c: &Client, path: &str, body: Value) -> strongroom::Result<Response> {
    c.write(&format!("transit/{path}"), data(body)).await
}

async fn ok(c: &Client, path: &str, body: Value) -> Value {
    let r = write(c, path, body).await.unwrap();
    Value::Object(r.data.unwrap_or_default())
}

async fn err(c: &Client, path: &str, body: Value) -> (ErrorCode, String) {
    let e = write(c, path, body).await.unwrap_err();
    (e.code(), e.message().to_string())
}

async fn read(c: &Client, path: &str) -> Option<Value> {
    c.read(&format!("transit/{path}"))
        .await
        .unwrap()
        .map(|r| Value::Object(r.data.unwrap_or_default()))
}

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

#[tokio::test]
async fn key_lifecycle_matches_openbao() {
    let (_sr, c, _) = setup().await;
    let created = ok(&c, "keys/k", json!({})).await;
    assert_eq!(created["type"], "aes256-gcm96");
    assert_eq!(created["latest_version"], 1);
    assert_eq!(created["min_decryption_version"], 1);
    assert_eq!(created["supports_encryption"], true);
    assert_eq!(created["supports_signing"], false);
    let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "fields come sorted, as Go marshals a map");

    let again = write(&c, "keys/k", json!({})).await.unwrap();
    assert_eq!(again.warnings, vec!["key k already existed".to_string()]);

    let rotated = ok(&c, "keys/k/rotate", json!({})).await;
    assert_eq!(rotated["latest_version"], 2);
    assert_eq!(rotated["keys"].as_object().unwrap().len(), 2);
    assert_eq!(c.list("transit/keys").await.unwrap(), vec!["k"]);

    // Version limits and their errors.
    assert_eq!(
        err(&c, "keys/k/config", json!({"min_decryption_version": 4}))
            .await
            .1,
        "cannot set min decryption version of 4, latest key version is 2"
    );
    let cfg = write(&c, "keys/k/config", json!({"min_decryption_version": 2}))
        .await
        .unwrap();
    let cfg = cfg.data.unwrap();
    assert_eq!(cfg["min_decryption_version"], 2);
    assert_eq!(
        cfg["keys"].as_object().unwrap().len(),
        1,
        "only versions >= min_dec"
    );
    assert_eq!(
        err(&c, "keys/k/config", json!({"auto_rotate_period": "10m"}))
            .await
            .1,
        "auto rotate period must be 0 to disable or at least an hour"
    );
    // exportable cannot be switched off again.
    ok(&c, "keys/k/config", json!({"exportable": true})).await;
    let k = ok(&c, "keys/k/config", json!({"exportable": false})).await;
    assert_eq!(k["exportable"], true);

    // Deletion needs deletion_allowed.
    let e = c.delete("transit/keys/k").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert_eq!(
        e.message(),
        "error deleting policy k: deletion is not allowed for this key"
    );
    ok(&c, "keys/k/config", json!({"deletion_allowed": true})).await;
    c.delete("transit/keys/k").await.unwrap();
    assert!(read(&c, "keys/k").await.is_none());

    // Creation errors.
    assert_eq!(
        err(&c, "keys/c", json!({"convergent_encryption": true}))
            .await
            .1,
        "convergent encryption requires derivation to be enabled"
    );
    assert_eq!(
        err(&c, "keys/c", json!({"type": "des"})).await.1,
        "unknown key type des"
    );
    let (code, msg) = err(&c, "keys/h", json!({"type": "hmac"})).await;
    assert_eq!(code, ErrorCode::Internal);
    assert!(msg.contains("invalid key size for HMAC key, must be between 32 and 512 bytes"));
    let h = ok(&c, "keys/h", json!({"type": "hmac", "key_size": 64})).await;
    assert_eq!(h["key_size"], 64);
    assert!(h.get("keys").is_none());
    assert!(
        read(&c, "keys/c").await.is_none(),
        "failed create changes nothing"
    );
}

#[tokio::test]
async fn encrypt_decrypt_rewrap_with_openbao_errors() {
    let (_sr, c, _) = setup().await;
    // Upsert on encrypt.
    let enc = ok(&c, "encrypt/up", json!({"plaintext": b64(b"hello world")})).await;
    let ct = enc["ciphertext"].as_str().unwrap().to_string();
    assert!(ct.starts_with("vault:v1:"));
    assert_eq!(enc["key_version"], 1);
    let raw = B64.decode(ct.trim_start_matches("vault:v1:")).unwrap();
    assert_eq!(raw.len(), 12 + 11 + 16);
    let dec = ok(&c, "decrypt/up", json!({"ciphertext": ct})).await;
    assert_eq!(dec["plaintext"], b64(b"hello world"));

    // Associated data binds.
    let enc = ok(
        &c,
        "encrypt/up",
        json!({"plaintext": b64(b"x"), "associated_data": b64(b"aad")}),
    )
    .await;
    let ct_aad = enc["ciphertext"].as_str().unwrap();
    assert_eq!(
        err(&c, "decrypt/up", json!({"ciphertext": ct_aad})).await,
        (
            ErrorCode::Crypto,
            "cipher: message authentication failed".into()
        )
    );

    // Error texts.
    let cases = [
        ("nope", "invalid ciphertext: no prefix"),
        ("vault:v1", "invalid ciphertext: wrong number of fields"),
        (
            "vault:vx:abc",
            "invalid ciphertext: version number could not be decoded",
        ),
        ("vault:v9:abc", "invalid ciphertext: version is too new"),
        ("vault:v1:!!", "invalid ciphertext: could not decode base64"),
        ("vault:v1:AAAA", "invalid ciphertext length"),
    ];
    for (input, want) in cases {
        let (code, msg) = err(&c, "decrypt/up", json!({"ciphertext": input})).await;
        assert_eq!(msg, want, "{input}");
        assert_eq!(code.http_status(), 400);
    }
    let mut tampered = B64.decode(ct.trim_start_matches("vault:v1:")).unwrap();
    tampered[14] ^= 1;
    let (code, msg) = err(
        &c,
        "decrypt/up",
        json!({"ciphertext": format!("vault:v1:{}", b64(&tampered))}),
    )
    .await;
    assert_eq!(
        (code, msg.as_str()),
        (ErrorCode::Crypto, "cipher: message authentication failed")
    );
    assert_eq!(
        err(&c, "encrypt/up", json!({"plaintext": "abc!"})).await.1,
        "illegal base64 data at input byte 3"
    );
    assert_eq!(
        err(&c, "decrypt/missing", json!({"ciphertext": ct}))
            .await
            .1,
        "encryption key not found"
    );

    // Rotation, rewrap, min_decryption_version.
    ok(&c, "keys/up/rotate", json!({})).await;
    let rw = ok(&c, "rewrap/up", json!({"ciphertext": ct})).await;
    assert_eq!(rw["key_version"], 2);
    let ct2 = rw["ciphertext"].as_str().unwrap().to_string();
    assert!(ct2.starts_with("vault:v2:"));
    assert_eq!(
        ok(&c, "decrypt/up", json!({"ciphertext": ct2})).await["plaintext"],
        b64(b"hello world")
    );
    ok(&c, "keys/up/config", json!({"min_decryption_version": 2})).await;
    assert_eq!(
        err(&c, "decrypt/up", json!({"ciphertext": ct})).await.1,
        "ciphertext or signature version is disallowed by policy (too old)"
    );
    ok(&c, "keys/up/config", json!({"min_encryption_version": 2})).await;
    assert_eq!(
        err(&c, "encrypt/up", json!({"plaintext": "", "key_version": 1}))
            .await
            .1,
        "requested version for encryption is less than the minimum encryption key version"
    );

    // Soft delete refuses everything until restored.
    c.delete("transit/keys/up/soft-delete").await.unwrap();
    assert_eq!(
        err(&c, "decrypt/up", json!({"ciphertext": ct2})).await.1,
        "refusing to use soft-deleted key"
    );
    ok(&c, "keys/up/soft-delete-restore", json!({})).await;
    ok(&c, "decrypt/up", json!({"ciphertext": ct2})).await;
}

#[tokio::test]
async fn batches_report_per_item_with_openbao_status_rules() {
    let (_sr, c, _) = setup().await;
    ok(&c, "keys/b", json!({})).await;
    let r = write(
        &c,
        "encrypt/b",
        json!({"batch_input": [{"plaintext": b64(b"one"), "reference": "a"}, {"plaintext": "!!"}]}),
    )
    .await
    .unwrap();
    assert_eq!(
        r.kind,
        strongroom::ResponseKind::BatchFailed {
            code: ErrorCode::InvalidInput,
            partial_status: None
        }
    );
    let results = r.data.as_ref().unwrap()["batch_results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results[0]["reference"], "a");
    assert_eq!(results[0]["key_version"], 1);
    assert_eq!(results[1]["error"], "illegal base64 data at input byte 0");
    assert_eq!(results[1]["reference"], "");

    // partial_failure_response_code applies when something succeeded.
    let r = write(
        &c,
        "encrypt/b",
        json!({"partial_failure_response_code": 207, "batch_input": [{"plaintext": b64(b"one")}, {"plaintext": "!!"}]}),
    )
    .await
    .unwrap();
    assert_eq!(
        r.kind,
        strongroom::ResponseKind::BatchFailed {
            code: ErrorCode::InvalidInput,
            partial_status: Some(207)
        }
    );

    // All good: 200, and decrypt in a batch.
    let r = ok(
        &c,
        "encrypt/b",
        json!({"batch_input": [{"plaintext": b64(b"one")}, {"plaintext": b64(b"")}]}),
    )
    .await;
    let cts: Vec<String> = r["batch_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ciphertext"].as_str().unwrap().to_string())
        .collect();
    let r = write(
        &c,
        "decrypt/b",
        json!({"batch_input": [{"ciphertext": cts[0]}, {"ciphertext": cts[1]}, {"ciphertext": "vault:v9:abc", "reference": "r"}]}),
    )
    .await
    .unwrap();
    assert_eq!(
        r.kind,
        strongroom::ResponseKind::BatchFailed {
            code: ErrorCode::InvalidInput,
            partial_status: None
        }
    );
    let res = &r.data.as_ref().unwrap()["batch_results"];
    assert_eq!(res[0]["plaintext"], b64(b"one"));
    assert_eq!(res[1]["plaintext"], "");
    assert!(res[1].get("error").is_none());
    assert_eq!(
        res[2],
        json!({"plaintext": "", "error": "invalid ciphertext: version is too new", "reference": "r"})
    );

    // Mixed contexts are refused as a whole.
    assert_eq!(
        err(
            &c,
            "encrypt/b",
            json!({"batch_input": [{"plaintext": "", "context": "YQ=="}, {"plaintext": ""}]})
        )
        .await
        .1,
        "context should be set either in all the request blocks or in none"
    );
}

#[tokio::test]
async fn derived_and_convergent_keys() {
    let (_sr, c, _) = setup().await;
    ok(
        &c,
        "keys/d",
        json!({"derived": true, "convergent_encryption": true}),
    )
    .await;
    let info = read(&c, "keys/d").await.unwrap();
    assert_eq!(info["kdf"], "hkdf_sha256");
    assert_eq!(info["convergent_encryption_version"], -1);
    let ctx = b64(b"tenant-1");
    let a = ok(
        &c,
        "encrypt/d",
        json!({"plaintext": b64(b"same"), "context": ctx}),
    )
    .await;
    let b = ok(
        &c,
        "encrypt/d",
        json!({"plaintext": b64(b"same"), "context": ctx}),
    )
    .await;
    assert_eq!(a["ciphertext"], b["ciphertext"]);
    let other = ok(
        &c,
        "encrypt/d",
        json!({"plaintext": b64(b"same"), "context": b64(b"t2")}),
    )
    .await;
    assert_ne!(a["ciphertext"], other["ciphertext"]);
    let (_, msg) = err(&c, "encrypt/d", json!({"plaintext": b64(b"same")})).await;
    assert!(msg.starts_with("missing 'context' for key derivation"));
    // Upsert with a context creates a derived key.
    ok(&c, "encrypt/ud", json!({"plaintext": "", "context": ctx})).await;
    assert_eq!(read(&c, "keys/ud").await.unwrap()["derived"], true);
}

#[tokio::test]
async fn datakey_hmac_hash_random() {
    let (_sr, c, _) = setup().await;
    ok(&c, "keys/k", json!({})).await;
    let dk = ok(&c, "datakey/plaintext/k", json!({"bits": 512})).await;
    let pt = B64.decode(dk["plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(pt.len(), 64);
    let back = ok(&c, "decrypt/k", json!({"ciphertext": dk["ciphertext"]})).await;
    assert_eq!(back["plaintext"], dk["plaintext"]);
    let wrapped = ok(&c, "datakey/wrapped/k", json!({})).await;
    assert!(wrapped.get("plaintext").is_none());
    assert_eq!(
        err(&c, "datakey/plaintext/k", json!({"bits": 100})).await.1,
        "invalid bit length"
    );
    assert_eq!(
        err(&c, "datakey/other/k", json!({})).await.1,
        "Invalid path, must be 'plaintext' or 'wrapped'"
    );

    let mac = ok(&c, "hmac/k", json!({"input": b64(b"msg")})).await;
    let mac = mac["hmac"].as_str().unwrap().to_string();
    assert!(mac.starts_with("vault:v1:"));
    let v = ok(&c, "verify/k", json!({"input": b64(b"msg"), "hmac": mac})).await;
    assert_eq!(v["valid"], true);
    let v = ok(&c, "verify/k", json!({"input": b64(b"other"), "hmac": mac})).await;
    assert_eq!(v["valid"], false);
    let m512 = ok(&c, "hmac/k/sha2-512", json!({"input": b64(b"msg")})).await;
    let raw = B64
        .decode(
            m512["hmac"]
                .as_str()
                .unwrap()
                .trim_start_matches("vault:v1:"),
        )
        .unwrap();
    assert_eq!(raw.len(), 64);
    let batch = write(
        &c,
        "hmac/k",
        json!({"batch_input": [{"input": b64(b"a")}, {"input": "!!"}]}),
    )
    .await
    .unwrap();
    assert_eq!(
        batch.kind,
        strongroom::ResponseKind::Done,
        "hmac batches answer 200"
    );
    let res = &batch.data.unwrap()["batch_results"];
    assert_eq!(
        res[1]["error"],
        "unable to decode input as base64: illegal base64 data at input byte 0"
    );

    let h = ok(&c, "hash", json!({"input": b64(b"abc")})).await;
    assert_eq!(
        h["sum"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let r = ok(&c, "random/16", json!({"format": "hex"})).await;
    assert_eq!(r["random_bytes"].as_str().unwrap().len(), 32);
    assert_eq!(
        err(&c, "random", json!({"bytes": 131072})).await.1,
        "'bytes' should be less than 131072"
    );
}

#[tokio::test]
async fn sign_and_verify_every_asymmetric_type() {
    let (_sr, c, _) = setup().await;
    for t in [
        "ed25519",
        "ecdsa-p256",
        "ecdsa-p384",
        "ecdsa-p521",
        "rsa-2048",
    ] {
        ok(&c, &format!("keys/{t}"), json!({"type": t})).await;
        let info = read(&c, &format!("keys/{t}")).await.unwrap();
        assert_eq!(info["supports_signing"], true, "{t}");
        assert!(info["keys"]["1"]["public_key"].as_str().unwrap().len() > 10);
        for hash in ["sha2-256", "sha2-384", "sha2-512"] {
            let s = ok(
                &c,
                &format!("sign/{t}/{hash}"),
                json!({"input": b64(b"message")}),
            )
            .await;
            let sig = s["signature"].as_str().unwrap().to_string();
            assert!(sig.starts_with("vault:v1:"), "{t}");
            let v = ok(
                &c,
                &format!("verify/{t}/{hash}"),
                json!({"input": b64(b"message"), "signature": sig}),
            )
            .await;
            assert_eq!(v["valid"], true, "{t} {hash}");
            let v = ok(
                &c,
                &format!("verify/{t}/{hash}"),
                json!({"input": b64(b"massage"), "signature": sig}),
            )
            .await;
            assert_eq!(v["valid"], false, "{t} {hash}");
        }
    }
    // JWS marshaling for ECDSA: r ‖ s, base64url without padding.
    let s = ok(
        &c,
        "sign/ecdsa-p256",
        json!({"input": b64(b"m"), "marshaling_algorithm": "jws"}),
    )
    .await;
    let sig = s["signature"].as_str().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig.trim_start_matches("vault:v1:"))
        .unwrap();
    assert_eq!(raw.len(), 64);
    let v = ok(
        &c,
        "verify/ecdsa-p256",
        json!({"input": b64(b"m"), "signature": sig, "marshaling_algorithm": "jws"}),
    )
    .await;
    assert_eq!(v["valid"], true);
    // RSA PKCS#1 v1.5 and RSA-OAEP encryption.
    let s = ok(
        &c,
        "sign/rsa-2048",
        json!({"input": b64(b"m"), "signature_algorithm": "pkcs1v15"}),
    )
    .await;
    let v = ok(
        &c,
        "verify/rsa-2048",
        json!({"input": b64(b"m"), "signature": s["signature"], "signature_algorithm": "pkcs1v15"}),
    )
    .await;
    assert_eq!(v["valid"], true);
    let enc = ok(&c, "encrypt/rsa-2048", json!({"plaintext": b64(b"secret")})).await;
    let raw = B64
        .decode(
            enc["ciphertext"]
                .as_str()
                .unwrap()
                .trim_start_matches("vault:v1:"),
        )
        .unwrap();
    assert_eq!(raw.len(), 256);
    let dec = ok(
        &c,
        "decrypt/rsa-2048",
        json!({"ciphertext": enc["ciphertext"]}),
    )
    .await;
    assert_eq!(dec["plaintext"], b64(b"secret"));

    // Errors.
    ok(&c, "keys/aes", json!({})).await;
    assert_eq!(
        err(&c, "sign/aes", json!({"input": ""})).await.1,
        "key type aes256-gcm96 does not support signing"
    );
    assert_eq!(
        err(
            &c,
            "verify/ed25519",
            json!({"input": "", "signature": "vault:v1:!!"})
        )
        .await
        .1,
        "invalid base64 signature value"
    );
    assert_eq!(
        err(
            &c,
            "verify/ed25519",
            json!({"input": "", "signature": "v1:abc"})
        )
        .await
        .1,
        "invalid signature: no prefix"
    );
    assert_eq!(
        err(
            &c,
            "verify/ed25519",
            json!({"input": "", "signature": "vault:v7:AAAA"})
        )
        .await
        .1,
        "invalid signature: version is too new"
    );
    // A mismatching signature of the right shape is valid:false with 200.
    let v = ok(
        &c,
        "verify/ed25519",
        json!({"input": "", "signature": "vault:v1:AAAA"}),
    )
    .await;
    assert_eq!(v["valid"], false);
    // Sign batches answer 200 with per-item errors.
    let r = write(
        &c,
        "sign/ed25519",
        json!({"batch_input": [{"input": b64(b"a")}, {"input": "!!"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.kind, strongroom::ResponseKind::Done);
    let res = &r.data.unwrap()["batch_results"];
    assert_eq!(res[1]["key_version"], 0);
    assert!(
        res[0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("vault:v1:")
    );
}

#[tokio::test]
async fn export_backup_restore_round_trip() {
    let (_sr, c, _) = setup().await;
    ok(&c, "keys/nx", json!({})).await;
    let e = c
        .read("transit/export/encryption-key/nx")
        .await
        .unwrap_err();
    assert_eq!(e.message(), "private key material is not exportable");
    let e = c.read("transit/backup/nx").await.unwrap_err();
    assert_eq!(e.code().http_status(), 500);
    assert_eq!(
        e.message(),
        "1 error occurred:\n\t* exporting is disallowed on the policy\n\n"
    );

    for t in [
        "aes256-gcm96",
        "chacha20-poly1305",
        "ed25519",
        "ecdsa-p384",
        "rsa-2048",
    ] {
        let name = format!("x-{t}");
        ok(
            &c,
            &format!("keys/{name}"),
            json!({"type": t, "exportable": true, "allow_plaintext_backup": true}),
        )
        .await;
        ok(&c, &format!("keys/{name}/rotate"), json!({})).await;
        let hk = read(&c, &format!("export/hmac-key/{name}/1"))
            .await
            .unwrap();
        assert_eq!(hk["keys"].as_object().unwrap().len(), 1);
        let sym = !t.starts_with("e") && !t.starts_with("r");
        let kind = if sym || t.starts_with("rsa") {
            "encryption-key"
        } else {
            "signing-key"
        };
        let exported = read(&c, &format!("export/{kind}/{name}")).await.unwrap();
        assert_eq!(exported["keys"].as_object().unwrap().len(), 2, "{t}");
        assert_eq!(exported["type"], t);

        // Something made with the key before the backup...
        let (made, path, field) = if sym || t.starts_with("rsa") {
            let ct = ok(
                &c,
                &format!("encrypt/{name}"),
                json!({"plaintext": b64(b"pt")}),
            )
            .await;
            (ct["ciphertext"].clone(), "decrypt", "ciphertext")
        } else {
            let s = ok(&c, &format!("sign/{name}"), json!({"input": b64(b"pt")})).await;
            (s["signature"].clone(), "verify", "signature")
        };
        let backup = read(&c, &format!("backup/{name}")).await.unwrap()["backup"].clone();
        // ...still works after restoring the backup under a new name.
        let restored = format!("r-{t}");
        let r = write(
            &c,
            &format!("restore/{restored}"),
            json!({"backup": backup}),
        )
        .await
        .unwrap();
        assert!(r.data.is_none());
        let info = read(&c, &format!("keys/{restored}")).await.unwrap();
        assert_eq!(info["latest_version"], 2);
        assert_eq!(info["type"], t);
        assert!(info.get("restore_info").is_some());
        let body = if path == "decrypt" {
            json!({field: made})
        } else {
            json!({"input": b64(b"pt"), field: made})
        };
        let out = ok(&c, &format!("{path}/{restored}"), body).await;
        if path == "decrypt" {
            assert_eq!(out["plaintext"], b64(b"pt"), "{t}");
        } else {
            assert_eq!(out["valid"], true, "{t}");
        }
        // Restoring over an existing key needs force.
        let e = write(
            &c,
            &format!("restore/{restored}"),
            json!({"backup": backup}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message(),
            format!("1 error occurred:\n\t* key \"{restored}\" already exists\n\n")
        );
        write(
            &c,
            &format!("restore/{restored}"),
            json!({"backup": backup, "force": true}),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn auto_rotation_runs_on_the_virtual_clock() {
    let (sr, c, clock) = setup().await;
    ok(&c, "keys/auto", json!({"auto_rotate_period": "1h"})).await;
    ok(&c, "keys/manual", json!({})).await;
    sr.run_maintenance().await.unwrap();
    assert_eq!(read(&c, "keys/auto").await.unwrap()["latest_version"], 1);
    clock.advance(Duration::from_secs(3599));
    sr.run_maintenance().await.unwrap();
    assert_eq!(read(&c, "keys/auto").await.unwrap()["latest_version"], 1);
    clock.advance(Duration::from_secs(1));
    sr.run_maintenance().await.unwrap();
    assert_eq!(read(&c, "keys/auto").await.unwrap()["latest_version"], 2);
    assert_eq!(read(&c, "keys/manual").await.unwrap()["latest_version"], 1);
    assert_eq!(
        read(&c, "keys/auto").await.unwrap()["auto_rotate_period"],
        3600
    );
}

#[tokio::test]
async fn policy_decides_create_versus_update_on_encrypt() {
    let (sr, root, _) = setup().await;
    root.sys()
        .write_policy(
            "enc",
            r#"path "transit/encrypt/*" { capabilities = ["update"] }"#,
        )
        .await
        .unwrap();
    ok(&root, "keys/present", json!({})).await;
    let tok = root
        .token()
        .create(&strongroom::TokenRequest {
            policies: vec!["enc".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let user = sr.client(tok.client_token.clone());
    ok(&user, "encrypt/present", json!({"plaintext": ""})).await;
    // Upsert needs `create`.
    let e = write(&user, "encrypt/absent", json!({"plaintext": ""}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert!(read(&root, "keys/absent").await.is_none());
}

#[tokio::test]
async fn typed_api_round_trips_and_reports_per_item_errors() {
    let (_sr, c, _) = setup().await;
    let t = c.transit("transit");
    let ct = t.encrypt("typed", b"secret").await.unwrap();
    assert_eq!(ct.key_version(), Some(1));
    assert_eq!(t.decrypt("typed", &ct).await.unwrap().expose(), b"secret");
    assert!(!format!("{:?}", t.decrypt("typed", &ct).await.unwrap()).contains("secret"));
    assert_eq!(t.rotate("typed").await.unwrap(), 2);
    let rw = t.rewrap("typed", &ct).await.unwrap();
    assert_eq!(rw.key_version(), Some(2));

    let aad = strongroom::EncryptOptions::new().associated_data(b"row-7");
    let bound = t.encrypt_with("typed", b"x", &aad).await.unwrap();
    assert_eq!(
        t.decrypt_with("typed", &bound, &aad)
            .await
            .unwrap()
            .expose(),
        b"x"
    );
    let e = t.decrypt("typed", &bound).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Crypto);

    let items = t
        .encrypt_batch("typed", &[b"a".as_slice(), b"b", b""])
        .await
        .unwrap();
    assert_eq!(items.len(), 3);
    let cts: Vec<_> = items.into_iter().map(Result::unwrap).collect();
    let mut with_bad = cts.clone();
    with_bad.push(strongroom::Ciphertext::new("vault:v9:AAAA"));
    let out = t.decrypt_batch("typed", &with_bad).await.unwrap();
    assert_eq!(out[0].as_ref().unwrap().expose(), b"a");
    assert_eq!(out[2].as_ref().unwrap().expose(), b"");
    let e = out[3].as_ref().unwrap_err();
    assert_eq!(e.message(), "invalid ciphertext: version is too new");
    assert_eq!(e.code(), ErrorCode::InvalidInput);

    let dk = t.datakey("typed", 256).await.unwrap();
    assert_eq!(dk.plaintext.expose().len(), 32);
    assert_eq!(
        t.decrypt("typed", &dk.ciphertext).await.unwrap(),
        dk.plaintext
    );

    t.create_key(
        "signer",
        &strongroom::KeyConfig {
            key_type: "ed25519".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let sig = t.sign("signer", b"doc").await.unwrap();
    assert!(t.verify("signer", b"doc", &sig).await.unwrap());
    assert!(!t.verify("signer", b"dog", &sig).await.unwrap());
    let mac = t.hmac("typed", b"doc").await.unwrap();
    assert!(t.verify_hmac("typed", b"doc", &mac).await.unwrap());
    assert!(!t.verify_hmac("typed", b"dog", &mac).await.unwrap());
}

#[tokio::test]
async fn typed_fast_path_keeps_policy_and_token_rules() {
    let (sr, root, _) = setup().await;
    root.transit("transit")
        .create_key("k", &strongroom::KeyConfig::default())
        .await
        .unwrap();
    root.sys()
        .write_policy(
            "enc-only",
            r#"path "transit/encrypt/k" { capabilities = ["update"] }
               path "transit/encrypt/guarded" {
                 capabilities = ["update"]
                 denied_parameters = { "associated_data" = [] }
               }"#,
        )
        .await
        .unwrap();
    root.transit("transit")
        .create_key("guarded", &strongroom::KeyConfig::default())
        .await
        .unwrap();
    let mk = |uses: u64| {
        let root = root.clone();
        async move {
            root.token()
                .create(&strongroom::TokenRequest {
                    policies: vec!["enc-only".into()],
                    num_uses: uses,
                    ..Default::default()
                })
                .await
                .unwrap()
                .client_token
        }
    };
    let user = sr.client(mk(0).await).transit("transit");
    let ct = user.encrypt("k", b"x").await.unwrap();
    // No decrypt capability: refused on the fast path too.
    let e = user.decrypt("k", &ct).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    let e = user.sign("k", b"x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    // A rule that inspects parameters is still enforced (the call takes the full pipeline).
    user.encrypt("guarded", b"x").await.unwrap();
    let aad = strongroom::EncryptOptions::new().associated_data(b"a");
    let e = user.encrypt_with("guarded", b"x", &aad).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    // Limited-use tokens are counted.
    let limited = sr.client(mk(2).await).transit("transit");
    limited.encrypt("k", b"1").await.unwrap();
    limited.encrypt("k", b"2").await.unwrap();
    let e = limited.encrypt("k", b"3").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    // A bad token is refused.
    let e = sr
        .client("s.nope")
        .transit("transit")
        .encrypt("k", b"x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    // A sealed engine answers Sealed.
    sr.seal().await.unwrap();
    let e = root
        .transit("transit")
        .encrypt("k", b"x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Sealed);
}

/// The typed handle remembers its fast-path authorisation decisions; every change they rest
/// on must end them: the token revoked or expired, the policy narrowed or deleted, the mount
/// gone, the engine sealed, an audit device added (which needs the full pipeline).
#[tokio::test]
async fn typed_handle_cached_decisions_follow_every_change() {
    use strongroom::{KeyConfig, TokenRequest};
    let (sr, root, clock) = setup().await;
    let policy = r#"path "transit/encrypt/*" { capabilities = ["update"] }
path "transit/decrypt/*" { capabilities = ["update"] }"#;
    root.sys().write_policy("enc", policy).await.unwrap();
    root.transit("transit")
        .create_key("k", &KeyConfig::default())
        .await
        .unwrap();
    let token = |ttl: u64| {
        let root = root.clone();
        async move {
            root.token()
                .create(&TokenRequest {
                    policies: vec!["enc".into()],
                    ttl: Duration::from_secs(ttl),
                    ..TokenRequest::default()
                })
                .await
                .unwrap()
                .client_token
        }
    };
    let denied = |r: strongroom::Result<strongroom::Ciphertext>| {
        assert_eq!(r.unwrap_err().code(), ErrorCode::PermissionDenied);
    };

    // Revocation.
    let tok = token(3600).await;
    let t = sr.client(tok.clone()).transit("transit");
    let ct = t.encrypt("k", b"x").await.unwrap();
    t.encrypt("k", b"x").await.unwrap();
    root.token().revoke(tok.expose_secret()).await.unwrap();
    denied(t.encrypt("k", b"x").await);
    assert_eq!(
        t.decrypt("k", &ct).await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );

    // Expiry on the virtual clock, with no change anywhere else.
    let t = sr.client(token(60).await).transit("transit");
    t.encrypt("k", b"x").await.unwrap();
    clock.advance(Duration::from_secs(61));
    denied(t.encrypt("k", b"x").await);

    // The policy narrowed, then deleted.
    let t = sr.client(token(3600).await).transit("transit");
    t.encrypt("k", b"x").await.unwrap();
    t.decrypt("k", &ct).await.unwrap();
    root.sys()
        .write_policy(
            "enc",
            r#"path "transit/decrypt/*" { capabilities = ["update"] }"#,
        )
        .await
        .unwrap();
    denied(t.encrypt("k", b"x").await);
    t.decrypt("k", &ct).await.unwrap();
    root.sys().delete_policy("enc").await.unwrap();
    assert_eq!(
        t.decrypt("k", &ct).await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    root.sys().write_policy("enc", policy).await.unwrap();

    // The mount disabled: the handle must not keep using the old engine's keys.
    let t = sr.client(token(3600).await).transit("transit");
    t.encrypt("k", b"x").await.unwrap();
    root.sys().disable_mount("transit").await.unwrap();
    assert!(t.encrypt("k", b"x").await.is_err());
    assert!(t.decrypt("k", &ct).await.is_err());

    // Sealed.
    root.sys()
        .enable_mount("transit", "transit", &[])
        .await
        .unwrap();
    root.transit("transit")
        .create_key("k", &KeyConfig::default())
        .await
        .unwrap();
    let t = sr.client(token(3600).await).transit("transit");
    t.encrypt("k", b"x").await.unwrap();
    t.encrypt("k", b"x").await.unwrap();
    sr.seal().await.unwrap();
    assert_eq!(
        t.encrypt("k", b"x").await.unwrap_err().code(),
        ErrorCode::Sealed
    );
}

/// What OpenBao 2.7.2 answers (checked against `bao server -dev`) to a signature that is not
/// ASN.1 at all, and to an explicit `null` where a field has a default.
#[tokio::test]
async fn ecdsa_garbage_signatures_and_null_options_follow_openbao() {
    let (_sr, c, _) = setup().await;
    ok(&c, "keys/ec", json!({"type": "ecdsa-p256"})).await;
    ok(&c, "keys/rsa", json!({"type": "rsa-2048"})).await;
    let input = b64(b"hello");
    for path in ["verify/ec", "verify/ec/sha3-224"] {
        let (code, msg) = err(
            &c,
            path,
            json!({"input": input, "signature": "vault:v1:AAAA"}),
        )
        .await;
        assert_eq!(
            (code, msg.as_str()),
            (ErrorCode::InvalidInput, "supplied signature is invalid")
        );
    }
    // Well-formed ASN.1 that is not the signature, or r ‖ s garbage, is only `valid: false`.
    for body in [
        json!({"input": input, "signature": "vault:v1:MAYCAQECAQE="}),
        json!({"input": input, "signature": "vault:v1:AAAA", "marshaling_algorithm": "jws"}),
    ] {
        assert_eq!(ok(&c, "verify/ec", body).await["valid"], false);
    }
    let (_, msg) = err(
        &c,
        "sign/rsa",
        json!({"input": input, "marshaling_algorithm": null}),
    )
    .await;
    assert_eq!(msg, "invalid marshaling type \"\"");
    let (_, msg) = err(&c, "sign/rsa", json!({"input": input, "salt_length": null})).await;
    assert_eq!(msg, "salt length neither 'auto', 'hash', nor an int: ");
}

/// The batch forms of sign / verify / hmac give what the single calls give, item by item,
/// on both doors: the in-memory fast path, and the full pipeline (taken once an audit
/// device is on, so every call is audited).
#[tokio::test]
async fn sign_verify_and_hmac_batches_match_single_calls_on_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let inputs: [&[u8]; 3] = [b"a", b"", b"third input"];
    for audited in [false, true] {
        let mut config = Config::dev();
        if audited {
            let log = dir.path().join("audit.log");
            config = config.audit(strongroom::AuditDevice::file("file", log.to_str().unwrap()));
        }
        let sr = Strongroom::open(config).await.unwrap();
        let c = sr.client(sr.dev_root_token().unwrap());
        c.sys()
            .enable_mount("transit", "transit", &[])
            .await
            .unwrap();
        let t = c.transit("transit");
        t.create_key(
            "signer",
            &strongroom::KeyConfig {
                key_type: "ed25519".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        t.create_key("mac", &strongroom::KeyConfig::default())
            .await
            .unwrap();
        let sigs: Vec<String> = t
            .sign_batch("signer", &inputs)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(sigs.len(), 3);
        // Ed25519 is deterministic: the batch signs exactly as the single call does.
        for (i, s) in inputs.iter().zip(&sigs) {
            assert_eq!(&t.sign("signer", i).await.unwrap(), s, "audited={audited}");
        }
        let checks: Vec<(&[u8], &str)> = vec![
            (inputs[0], sigs[0].as_str()),
            (b"tampered", sigs[1].as_str()),
            (inputs[2], "vault:v1:not-base64!"),
        ];
        let verified = t.verify_batch("signer", &checks).await.unwrap();
        assert!(*verified[0].as_ref().unwrap(), "audited={audited}");
        assert!(!*verified[1].as_ref().unwrap(), "audited={audited}");
        assert!(verified[2].is_err(), "audited={audited}: {:?}", verified[2]);

        let macs: Vec<String> = t
            .hmac_batch("mac", &inputs)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        for (i, m) in inputs.iter().zip(&macs) {
            assert_eq!(&t.hmac("mac", i).await.unwrap(), m, "audited={audited}");
        }
        let pairs: Vec<(&[u8], &str)> =
            vec![(inputs[0], macs[0].as_str()), (inputs[1], macs[0].as_str())];
        let ok = t.verify_hmac_batch("mac", &pairs).await.unwrap();
        assert!(*ok[0].as_ref().unwrap());
        assert!(!*ok[1].as_ref().unwrap());
        // A key that cannot sign: the single call's error, for the call or each item.
        let single = t.sign("mac", b"a").await.unwrap_err();
        match t.sign_batch("mac", &inputs).await {
            Err(e) => assert_eq!(e.code(), single.code()),
            Ok(items) => {
                assert!(
                    items
                        .iter()
                        .all(|r| r.as_ref().is_err_and(|e| e.code() == single.code()))
                )
            }
        }
    }
}
