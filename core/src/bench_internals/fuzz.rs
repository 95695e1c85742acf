//! The fuzz targets' entry points (`fuzz/`, run with `cargo +nightly fuzz`; see
//! docs/fuzzing.md). Each takes arbitrary bytes, hands them to one decoder the way its callers
//! in the engine do, and must return without panicking, whatever the bytes: an error is the
//! expected answer to most of them. The regression tests (`core/tests/fuzz_regressions.rs`)
//! feed the inputs the fuzzer once crashed on through the same functions.
//!
//! Where a target needs engine state (keys to decrypt with, a PKI role to sign with), one
//! in-memory dev engine per process holds it; it is built on first use.

use std::sync::{Arc, OnceLock};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::error::Result;
use crate::policy::{Acl, Policy};
use crate::request::{Data, Operation, Request};
use crate::{Config, Strongroom};

/// The first byte picks a variant, the rest is the input proper.
fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((sel, rest)) => (*sel, rest),
        None => (0, &[]),
    }
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A JSON object from the bytes (`None` when they are not one).
fn object(data: &[u8]) -> Option<Data> {
    match serde_json::from_slice::<Value>(data).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Key generation is slow by design (an RSA-8192 key takes tens of seconds), not a decoding
/// fault: bodies asking for more than 4096 bits are not sent, so that a slow key does not
/// count as a hang.
fn too_costly(body: &Data) -> bool {
    let big = |v: &Value| match v {
        Value::Number(n) => n.as_f64().is_some_and(|b| b > 4096.0),
        Value::String(s) => s.trim().parse::<f64>().is_ok_and(|b| b > 4096.0),
        _ => true,
    };
    body.get("key_bits").is_some_and(big)
        || body.get("bits").is_some_and(big)
        || body
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.contains("rsa-4096") || t.contains("8192"))
}

/// One in-memory dev engine per process, with every engine mounted and a little state.
struct Engine {
    rt: tokio::runtime::Runtime,
    sr: Strongroom,
    root: SecretString,
}

impl Engine {
    fn handle(&self, op: Operation, path: &str, data: Data) -> Result<crate::Response> {
        let req = Request::new(op, path)
            .with_data(data)
            .with_token(self.root.expose_secret());
        self.rt.block_on(self.sr.handle(req))
    }

    fn write(&self, path: &str, body: Value) -> Result<crate::Response> {
        self.handle(Operation::Update, path, crate::data(body))
    }
}

fn build_engine() -> Result<Engine> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::internal("cannot start a runtime").with_source(e))?;
    let sr = rt.block_on(Strongroom::open(Config::dev()))?;
    let root = sr
        .dev_root_token()
        .ok_or_else(|| crate::Error::internal("dev mode has a root token"))?;
    let e = Engine { rt, sr, root };
    for (path, kind) in [
        ("sys/mounts/transit", "transit"),
        ("sys/mounts/pki", "pki"),
        ("sys/mounts/database", "database"),
        ("sys/mounts/kv1", "kv"),
        ("sys/auth/userpass", "userpass"),
        ("sys/auth/approle", "approle"),
        ("sys/auth/kubernetes", "kubernetes"),
    ] {
        e.write(path, json!({"type": kind}))?;
    }
    for (name, kind, derived) in [
        ("aes", "aes256-gcm96", false),
        ("aes-derived", "aes256-gcm96", true),
        ("chacha", "chacha20-poly1305", false),
        ("ed", "ed25519", false),
        ("ec", "ecdsa-p256", false),
        ("rsa", "rsa-2048", false),
        ("hmac", "hmac", false),
    ] {
        let mut body = crate::data(json!({"type": kind, "derived": derived, "exportable": true}));
        if kind == "hmac" {
            body.insert("key_size".to_string(), json!(32));
        }
        e.handle(Operation::Update, &format!("transit/keys/{name}"), body)?;
    }
    e.write(
        "pki/root/generate/internal",
        json!({"common_name": "fuzz root", "key_type": "ec", "ttl": "87600h"}),
    )?;
    e.write(
        "pki/roles/r",
        json!({"allow_any_name": true, "key_type": "any", "max_ttl": "720h"}),
    )?;
    e.write("auth/userpass/users/u", json!({"password": "pw"}))?;
    e.write("auth/approle/role/r", json!({"token_ttl": "1h"}))?;
    e.write("secret/data/x", json!({"data": {"a": "b"}}))?;
    Ok(e)
}

fn engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    // A fixture that cannot be built is a broken harness, not a finding: every run says so.
    ENGINE
        .get_or_init(|| match build_engine() {
            Ok(e) => Some(e),
            Err(err) => {
                eprintln!("fuzz fixture failed: {err}");
                None
            }
        })
        .as_ref()
}

/// Whether the shared engine (transit keys, PKI root and role, mounts) could be built; the
/// targets that need it are useless without it.
pub fn engine_ready() -> bool {
    engine().is_some()
}

/// ACL policies, HCL or JSON: parse, compile, and evaluate a few paths against the result.
pub fn policy(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(policy) = Policy::parse("fuzz", text) else {
        return;
    };
    let Ok(acl) = Acl::new(&[Arc::new(policy)]) else {
        return;
    };
    let body = crate::data(json!({"a": "b", "n": 1}));
    for path in ["secret/data/a", "sys/policies/acl/x", "a/b/c/", ""] {
        let _ = acl.capabilities(path);
        for op in [Operation::Read, Operation::Update, Operation::List] {
            let _ = acl.allow(op, path, &body, None);
        }
    }
}

/// Operations the router target maps its second byte to.
const OPERATIONS: [Operation; 6] = [
    Operation::Read,
    Operation::Update,
    Operation::Create,
    Operation::List,
    Operation::Delete,
    Operation::Patch,
];

/// Paths of every mounted engine the router target writes JSON bodies to (the first byte
/// picks one). Left out: `database/config/*` and `auth/kubernetes/login` reach out to a
/// database or a Kubernetes API over the network, and `sys/seal`, unmounting and disabling
/// would leave the fixture useless for the inputs after it.
pub const ROUTER_PATHS: &[&str] = &[
    "secret/data/x",
    "secret/metadata/x",
    "secret/delete/x",
    "secret/undelete/x",
    "secret/destroy/x",
    "secret/subkeys/x",
    "secret/config",
    "kv1/x",
    "cubbyhole/x",
    "transit/keys/k",
    "transit/keys/aes/config",
    "transit/keys/aes/rotate",
    "transit/keys/aes/trim",
    "transit/encrypt/aes",
    "transit/decrypt/aes",
    "transit/rewrap/aes",
    "transit/datakey/plaintext/aes",
    "transit/sign/ec",
    "transit/verify/ec",
    "transit/hmac/hmac",
    "transit/hash",
    "transit/random",
    "transit/backup/aes",
    "transit/restore",
    "transit/export/encryption-key/aes",
    "transit/cache-config",
    "pki/roles/x",
    "pki/issue/r",
    "pki/sign/r",
    "pki/sign-verbatim",
    "pki/root/generate/internal",
    "pki/intermediate/generate/internal",
    "pki/intermediate/set-signed",
    "pki/config/ca",
    "pki/config/urls",
    "pki/config/crl",
    "pki/revoke",
    "pki/tidy",
    "database/roles/x",
    "database/static-roles/x",
    "database/creds/x",
    "auth/userpass/users/x",
    "auth/userpass/login/u",
    "auth/approle/role/x",
    "auth/approle/role/r/secret-id",
    "auth/approle/login",
    "auth/kubernetes/config",
    "auth/kubernetes/role/x",
    "auth/token/create",
    "auth/token/lookup",
    "auth/token/roles/x",
    "auth/token/renew-self",
    "sys/policies/acl/x",
    "sys/policy/x",
    "sys/mounts/fuzz",
    "sys/auth/fuzz",
    "sys/tools/random",
    "sys/tools/hash",
    "sys/wrapping/wrap",
    "sys/wrapping/unwrap",
    "sys/wrapping/lookup",
    "sys/capabilities",
    "sys/capabilities-self",
    "sys/leases/lookup",
    "sys/leases/renew",
    "sys/leases/revoke",
    "sys/password-policies/x",
    "sys/remount",
    "sys/mounts/secret/tune",
];

/// Request bodies through the router: byte 0 picks a path of [`ROUTER_PATHS`], byte 1 the
/// operation, the rest is the JSON body.
pub fn router(data: &[u8]) {
    let (sel, rest) = split(data);
    let (op, body) = split(rest);
    let Some(path) = ROUTER_PATHS.get(usize::from(sel) % ROUTER_PATHS.len()) else {
        return;
    };
    let Some(op) = OPERATIONS.get(usize::from(op) % OPERATIONS.len()) else {
        return;
    };
    let Some(body) = object(body) else { return };
    if too_costly(&body) {
        return;
    }
    let Some(e) = engine() else { return };
    let _ = e.handle(*op, path, body);
}

/// Transit: byte 0 picks a key, byte 1 what the rest is: a ciphertext to decrypt or rewrap, a
/// signature or HMAC to verify, a whole JSON body (batches) for one of the endpoints, or a
/// backup to restore.
pub fn transit(data: &[u8]) {
    const KEYS: [&str; 7] = ["aes", "aes-derived", "chacha", "ed", "ec", "rsa", "hmac"];
    let (k, rest) = split(data);
    let (mode, rest) = split(rest);
    let Some(key) = KEYS.get(usize::from(k) % KEYS.len()) else {
        return;
    };
    let Some(e) = engine() else { return };
    let input = "aGVsbG8="; // "hello"
    let context = "Y3R4"; // "ctx"
    match mode % 8 {
        0 | 1 => {
            let Some(ct) = text(rest) else { return };
            let op = if mode % 8 == 0 { "decrypt" } else { "rewrap" };
            let _ = e.write(
                &format!("transit/{op}/{key}"),
                json!({"ciphertext": ct, "context": context}),
            );
        }
        2 => {
            let Some(sig) = text(rest) else { return };
            let _ = e.write(
                &format!("transit/verify/{key}"),
                json!({"input": input, "signature": sig, "context": context}),
            );
        }
        3 => {
            let Some(mac) = text(rest) else { return };
            let _ = e.write(
                &format!("transit/verify/{key}"),
                json!({"input": input, "hmac": mac}),
            );
        }
        4 => {
            let Some(backup) = text(rest) else { return };
            let _ = e.write(
                "transit/restore/fuzz-restored",
                json!({"backup": backup, "force": true}),
            );
        }
        _ => {
            const ENDPOINTS: [&str; 4] = ["encrypt", "decrypt", "sign", "verify"];
            let Some(endpoint) = ENDPOINTS.get(usize::from(mode / 8) % ENDPOINTS.len()) else {
                return;
            };
            let body = match serde_json::from_slice::<Value>(rest) {
                Ok(Value::Object(m)) => m,
                Ok(batch @ Value::Array(_)) => crate::data(json!({"batch_input": batch})),
                _ => return,
            };
            let _ = e.handle(
                Operation::Update,
                &format!("transit/{endpoint}/{key}"),
                body,
            );
        }
    }
}

/// Barrier entries and the records stored under it: byte 0 picks the decoder (a raw barrier
/// blob read back through a barrier, the sealed keyring's JSON, a token entry, a lease
/// record, a KV version, a transit key policy, a lockout entry).
pub fn barrier(data: &[u8]) {
    let (sel, rest) = split(data);
    match sel % 7 {
        0 => {
            let Some(e) = engine() else { return };
            let _ = e.rt.block_on(crate::barrier::fuzz_read_blob(rest));
        }
        1 => {
            let _ = crate::barrier::fuzz_decode_keyring(rest);
        }
        2 => {
            let _ = crate::token::decode(rest);
        }
        3 => {
            let _ = crate::leases::decode_record(rest);
        }
        4 => {
            let _ = crate::secrets::kv::v2::decode_data(rest);
        }
        5 => {
            let _ = crate::secrets::transit::store::decode(rest);
        }
        _ => {
            let _ = crate::auth::lockout::decode_entry(rest);
        }
    }
}

/// JWTs and their keys: byte 0 picks a compact JWS (parsed, its claims read and verified
/// against an RSA and an EC key), a JWKS document, or a PEM public key.
pub fn jwt(data: &[u8]) {
    use crate::auth::kubernetes::jwt;
    let (sel, rest) = split(data);
    let Some(text) = text(rest) else { return };
    match sel % 3 {
        0 => {
            let Ok(token) = jwt::Jwt::parse(text) else {
                return;
            };
            let _ = token.str_claim(&["kubernetes.io", "serviceaccount", "name"]);
            let _ = token.time_claim("exp");
            let _ = token.audiences();
            let keys = fuzz_jwt_keys();
            let _ = token.verify(&keys);
        }
        1 => {
            if let Ok(doc) = serde_json::from_str::<Value>(text) {
                if let Ok(keys) = jwt::parse_jwks(&doc) {
                    // Keys from the document are then used to verify a token.
                    if let Ok(t) = jwt::Jwt::parse(FUZZ_JWT) {
                        let _ = t.verify(&keys);
                    }
                }
            }
        }
        _ => {
            if let Ok(keys) = jwt::parse_pem_keys(&[text.to_string()]) {
                if let Ok(t) = jwt::Jwt::parse(FUZZ_JWT) {
                    let _ = t.verify(&keys);
                }
            }
        }
    }
}

/// An RS256 token (its signature matches no key): what the JWKS and PEM variants verify.
const FUZZ_JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp4IiwiaXNzIjoia3ViZXJuZXRlcy9zZXJ2aWNlYWNjb3VudCJ9.c2ln";

fn fuzz_jwt_keys() -> Vec<crate::auth::kubernetes::jwt::Key> {
    use crate::auth::kubernetes::jwt::{Key, PublicKey};
    vec![
        Key {
            kid: Some("k".to_string()),
            key: PublicKey::Rsa {
                n: vec![0xc5; 256],
                e: vec![1, 0, 1],
            },
        },
        Key {
            kid: None,
            key: PublicKey::Ec {
                p384: false,
                point: {
                    let mut p = vec![4u8];
                    p.extend([7u8; 64]);
                    p
                },
            },
        },
    ]
}

/// PEM and the DER inside it: byte 0 picks a CSR (parsed, then signed by the PKI role when it
/// parses), a certificate bundle, a private key, a CA bundle for `config/ca`, or a DER
/// SubjectPublicKeyInfo.
pub fn pem(data: &[u8]) {
    use crate::secrets::pki::{build, crypto};
    let (sel, rest) = split(data);
    match sel % 5 {
        0 => {
            let Some(text) = text(rest) else { return };
            if build::parse_csr(text).is_ok() {
                if let Some(e) = engine() {
                    for path in ["pki/sign/r", "pki/sign-verbatim"] {
                        let _ = e.write(path, json!({"csr": text, "common_name": "a.example"}));
                    }
                }
            }
        }
        1 => {
            let Some(text) = text(rest) else { return };
            if let Ok(ders) = crypto::pem_certs(text) {
                for der in ders {
                    if let Ok(info) = crypto::parse_cert(&der) {
                        let _ = crypto::spki_public_key(&info.spki_der);
                    }
                }
            }
        }
        2 => {
            let Some(text) = text(rest) else { return };
            if let Ok(key) = crypto::PrivateKey::from_pem(text) {
                let _ = key.export_pem(false);
            }
        }
        3 => {
            let Some(text) = text(rest) else { return };
            let Some(e) = engine() else { return };
            let _ = e.write("pki/config/ca", json!({"pem_bundle": text}));
        }
        _ => {
            let _ = crypto::spki_public_key(rest);
        }
    }
}

/// The template language (consul-template's, as the agent renders it): parse with byte 0
/// picking the options, then render against a brain holding one secret.
pub fn template(data: &[u8]) {
    use crate::template::{Brain, Dependency, Template, TemplateOptions, VaultSecret};
    let (sel, rest) = split(data);
    let Some(source) = text(rest) else { return };
    let mut options = TemplateOptions {
        error_on_missing_key: sel & 1 == 1,
        ..TemplateOptions::default()
    };
    if sel & 2 == 2 {
        options.left_delimiter = "<<".to_string();
        options.right_delimiter = ">>".to_string();
    }
    let Ok(t) = Template::parse("fuzz", source, &options) else {
        return;
    };
    let mut brain = Brain::default();
    if let Ok(secret) = VaultSecret::from_response(&json!({
        "request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": false,
        "data": {"data": {"user": "u", "pass": "p", "n": 3, "list": [1, 2]},
                 "metadata": {"version": 1}},
    })) {
        brain.insert_secret(Dependency::secret("secret/data/x"), &secret);
    }
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let _ = t.render(&brain, now);
}
