//! Byte-level compatibility with OpenBao 2.7.2: keys it created and backed up are restored
//! here, and everything it produced with them (ciphertexts, signatures, HMACs, exports, key
//! reads) is checked against Strongroom. Regenerate the fixture with
//! `scripts/transit-vectors.py` (needs the `bao` binary).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use serde_json::{Map, Value, json};
use strongroom::{Client, Config, Strongroom, data};

const FIXTURE: &str = include_str!("fixtures/transit/openbao-2.7.2.json");

async fn client() -> Client {
    let sr = Strongroom::open(Config::dev()).await.unwrap();
    let c = sr.client(sr.dev_root_token().unwrap());
    c.sys()
        .enable_mount("transit", "transit", &[])
        .await
        .unwrap();
    c
}

async fn post(c: &Client, path: &str, body: Value) -> Map<String, Value> {
    match c
        .write(&format!("transit/{path}"), data(body.clone()))
        .await
    {
        Ok(r) => r.data.unwrap_or_default(),
        Err(e) => panic!("{path} {body}: {e:?}"),
    }
}

async fn get(c: &Client, path: &str) -> Map<String, Value> {
    c.read(&format!("transit/{path}"))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path}: nothing"))
        .data
        .unwrap_or_default()
}

/// The request fields of a fixture item (everything but the produced value).
fn request(item: &Value, produced: &str) -> Value {
    let mut m = item.as_object().unwrap().clone();
    m.remove(produced);
    Value::Object(m)
}

fn keys() -> Map<String, Value> {
    let f: Value = serde_json::from_str(FIXTURE).unwrap();
    f["keys"].as_object().unwrap().clone()
}

async fn restored() -> (Client, Map<String, Value>) {
    let c = client().await;
    let keys = keys();
    for (name, k) in &keys {
        post(
            &c,
            &format!("restore/{name}"),
            json!({"backup": k["backup"]}),
        )
        .await;
    }
    (c, keys)
}

#[tokio::test]
async fn openbao_ciphertexts_decrypt_here() {
    let (c, keys) = restored().await;
    let mut checked = 0;
    for (name, k) in &keys {
        for item in k["ciphertexts"].as_array().into_iter().flatten() {
            let mut body = request(item, "ciphertext");
            let plaintext = body.as_object_mut().unwrap().remove("plaintext").unwrap();
            body["ciphertext"] = item["ciphertext"].clone();
            body.as_object_mut().unwrap().remove("key_version");
            let out = post(&c, &format!("decrypt/{name}"), body.clone()).await;
            assert_eq!(out["plaintext"], plaintext, "{name} {body}");
            // The associated data is bound: without it the tag fails, with Go's per-cipher text.
            if body.get("associated_data").is_some() {
                body.as_object_mut().unwrap().remove("associated_data");
                let e = c
                    .write(&format!("transit/decrypt/{name}"), data(body))
                    .await
                    .unwrap_err();
                let chacha = matches!(
                    k["type"].as_str(),
                    Some("chacha20-poly1305" | "xchacha20-poly1305")
                );
                let want = if chacha {
                    "chacha20poly1305: message authentication failed"
                } else {
                    "cipher: message authentication failed"
                };
                assert_eq!(e.message(), want);
            }
            checked += 1;
        }
    }
    assert!(checked >= 60, "{checked}");
    // XChaCha20-Poly1305 is covered plain, derived and convergent.
    for name in [
        "xchacha20-poly1305",
        "xchacha-derived",
        "xchacha-convergent",
    ] {
        assert_eq!(keys[name]["type"], "xchacha20-poly1305");
        assert!(
            keys[name]["ciphertexts"].as_array().unwrap().len() >= 6,
            "{name}"
        );
    }
}

#[tokio::test]
async fn convergent_ciphertexts_are_identical_here() {
    let (c, keys) = restored().await;
    for name in ["convergent", "xchacha-convergent"] {
        let items = keys[name]["ciphertexts"].as_array().unwrap();
        assert!(!items.is_empty(), "{name}");
        for item in items {
            let out = post(&c, &format!("encrypt/{name}"), request(item, "ciphertext")).await;
            assert_eq!(out["ciphertext"], item["ciphertext"], "{name} {item}");
        }
    }
}

/// Every hash OpenBao takes for `hmac` and `sign`/`verify`.
const HASHES: [&str; 9] = [
    "sha1", "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256", "sha3-384",
    "sha3-512",
];

#[tokio::test]
async fn hmacs_are_identical_here() {
    let (c, keys) = restored().await;
    let mut checked = 0;
    for (name, k) in &keys {
        let items = k["hmacs"].as_array().cloned().unwrap_or_default();
        if k["type"] == name.as_str() {
            // Every key type has an HMAC key (one key per type is named by it), and every
            // algorithm is covered for each.
            for algo in HASHES {
                assert!(
                    items.iter().any(|i| i["algorithm"] == algo),
                    "{name} {algo}"
                );
            }
        }
        for item in &items {
            let algo = item["algorithm"].as_str().unwrap();
            let mut body = request(item, "hmac");
            body.as_object_mut().unwrap().remove("algorithm");
            // The algorithm in the URL, and in the body.
            let out = post(&c, &format!("hmac/{name}/{algo}"), body.clone()).await;
            assert_eq!(out["hmac"], item["hmac"], "{name} {item}");
            let mut in_body = body.clone();
            in_body["algorithm"] = json!(algo);
            let out = post(&c, &format!("hmac/{name}"), in_body).await;
            assert_eq!(out["hmac"], item["hmac"], "{name} {item}");
            body.as_object_mut().unwrap().remove("key_version");
            body["hmac"] = item["hmac"].clone();
            let v = post(&c, &format!("verify/{name}/{algo}"), body.clone()).await;
            assert_eq!(v["valid"], true, "{name} {item}");
            for field in ["algorithm", "hash_algorithm"] {
                let mut in_body = body.clone();
                in_body[field] = json!(algo);
                let v = post(&c, &format!("verify/{name}"), in_body).await;
                assert_eq!(v["valid"], true, "{name} {field} {item}");
            }
            // Another algorithm's HMAC of the same input does not verify.
            let other = if algo == "sha2-256" {
                "sha3-256"
            } else {
                "sha2-256"
            };
            let v = post(&c, &format!("verify/{name}/{other}"), body).await;
            assert_eq!(v["valid"], false, "{name} {other} {item}");
            checked += 1;
        }
    }
    assert!(checked >= 640, "{checked}");
}

#[tokio::test]
async fn openbao_signatures_verify_here_and_deterministic_ones_match() {
    let (c, keys) = restored().await;
    let mut checked = 0;
    for (name, k) in &keys {
        let items = k["signatures"].as_array().cloned().unwrap_or_default();
        let kind = k["type"].as_str().unwrap_or_default();
        if kind.starts_with("ecdsa") || kind.starts_with("rsa") {
            // Every hash, plain and prehashed, is covered for each ECDSA and RSA key.
            for algo in HASHES {
                for prehashed in [false, true] {
                    assert!(
                        items.iter().any(|i| i["hash_algorithm"] == algo
                            && i.get("prehashed").is_some() == prehashed),
                        "{name} {algo} prehashed={prehashed}"
                    );
                }
            }
        }
        for item in &items {
            let mut body = request(item, "signature");
            body.as_object_mut().unwrap().remove("key_version");
            body["signature"] = item["signature"].clone();
            let v = post(&c, &format!("verify/{name}"), body.clone()).await;
            assert_eq!(v["valid"], true, "{name} {item}");
            // The hash named in the URL instead of the body.
            if let Some(hash) = body.as_object_mut().unwrap().remove("hash_algorithm") {
                let hash = hash.as_str().unwrap();
                let v = post(&c, &format!("verify/{name}/{hash}"), body.clone()).await;
                assert_eq!(v["valid"], true, "{name} {hash} {item}");
                body["hash_algorithm"] = json!(hash);
            }
            // A different input must not verify.
            body["input"] = json!("AAAA");
            let v = post(&c, &format!("verify/{name}"), body).await;
            assert_eq!(v["valid"], false, "{name} {item}");
            // ed25519 and PKCS #1 v1.5 are deterministic: our signature is OpenBao's.
            let deterministic = k["type"] == "ed25519"
                || item.get("signature_algorithm").and_then(Value::as_str) == Some("pkcs1v15");
            if deterministic {
                let s = post(&c, &format!("sign/{name}"), request(item, "signature")).await;
                assert_eq!(s["signature"], item["signature"], "{name} {item}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 1000, "{checked}");
}

/// What OpenBao refuses (an algorithm a key type does not take, `none` without prehashed
/// PKCS #1 v1.5, a bad or too long salt, a bad marshaling or signature algorithm, an RSA
/// decryption failure) is refused here with its status and text.
#[tokio::test]
async fn refusals_match_openbao() {
    let (c, _) = restored().await;
    let f: Value = serde_json::from_str(FIXTURE).unwrap();
    let refusals = f["refusals"].as_array().unwrap();
    assert!(refusals.len() >= 80, "{}", refusals.len());
    for r in refusals {
        let path = r["path"].as_str().unwrap();
        let e = c
            .write(&format!("transit/{path}"), data(r["body"].clone()))
            .await
            .unwrap_err();
        assert_eq!(json!([e.message()]), r["errors"], "{path} {}", r["body"]);
        assert_eq!(
            json!(e.code().http_status()),
            r["status"],
            "{path} {}",
            r["body"]
        );
    }
}

#[tokio::test]
async fn exports_and_key_reads_match_openbao() {
    let (c, keys) = restored().await;
    for (name, k) in &keys {
        for (kind, want) in k["exports"].as_object().unwrap() {
            let got = get(&c, &format!("export/{kind}/{name}")).await;
            assert_eq!(&got["keys"], want, "{name} {kind}");
        }
        let ours = get(&c, &format!("keys/{name}")).await;
        let theirs = k["read"].as_object().unwrap();
        for (field, value) in theirs {
            if matches!(field.as_str(), "backup_info" | "restore_info") {
                continue;
            }
            if field == "keys" && value.as_object().unwrap().values().any(Value::is_object) {
                for (v, entry) in value.as_object().unwrap() {
                    for f in ["name", "public_key"] {
                        assert_eq!(ours["keys"][v][f], entry[f], "{name} keys.{v}.{f}");
                    }
                }
                continue;
            }
            assert_eq!(ours.get(field), Some(value), "{name} {field}");
        }
    }
}

#[tokio::test]
async fn our_backups_carry_the_same_material() {
    let (c, keys) = restored().await;
    for (name, k) in &keys {
        let ours = get(&c, &format!("backup/{name}")).await["backup"].clone();
        post(
            &c,
            &format!("restore/again-{name}"),
            json!({"backup": ours}),
        )
        .await;
        for (kind, want) in k["exports"].as_object().unwrap() {
            let got = get(&c, &format!("export/{kind}/again-{name}")).await;
            assert_eq!(&got["keys"], want, "{name} {kind}");
        }
    }
}
