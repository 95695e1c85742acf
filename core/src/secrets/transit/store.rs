//! How a key is kept: OpenBao's `keysutil.Policy` JSON, both as the stored entry (behind the
//! barrier) and, base64'd with an archive, as `backup/:name` output. One shape for both means a
//! backup from OpenBao restores here and ours restores there.
//!
//! Go writes big integers (ECDSA scalars, RSA components) as bare JSON numbers, which
//! `serde_json` cannot hold; they are quoted on the way in and unquoted on the way out.

use std::collections::BTreeMap;

use num_bigint::BigUint;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::base64;
use super::der::RsaComponents;
use super::key::{KeyPolicy, TransitKey};
use super::key_type::{Kdf, KeyType};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::error::{Error, Result};

/// Marks a big integer inside a JSON string so it can be written back as a bare number.
const BIG: &str = "\u{1}big:";

#[derive(Serialize, Deserialize, Default)]
struct Info {
    time: String,
    version: u32,
}

#[derive(Serialize, Deserialize, Default)]
#[allow(non_snake_case, reason = "Go's field names")]
struct Precomputed {
    Dp: String,
    Dq: String,
    Qinv: String,
    #[serde(default)]
    CRTValues: Vec<Value>,
}

#[derive(Serialize, Deserialize, Default)]
#[allow(non_snake_case, reason = "Go's field names")]
struct RsaKey {
    N: String,
    E: u64,
    D: String,
    Primes: Vec<String>,
    Precomputed: Precomputed,
}

#[derive(Serialize, Deserialize, Default)]
struct Entry {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    hmac_key: Option<String>,
    #[serde(default)]
    time: String,
    #[serde(default)]
    ec_x: Option<String>,
    #[serde(default)]
    ec_y: Option<String>,
    #[serde(default)]
    ec_d: Option<String>,
    #[serde(default)]
    rsa_key: Option<RsaKey>,
    #[serde(default)]
    rsa_public_key: Option<Value>,
    #[serde(default)]
    public_key: String,
    #[serde(default)]
    convergent_version: i32,
    #[serde(default)]
    creation_time: i64,
    #[serde(default)]
    certificate_chain: Option<Value>,
    #[serde(default)]
    external_key_ref: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Policy {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_size: Option<usize>,
    keys: BTreeMap<String, Entry>,
    #[serde(default)]
    derived: bool,
    #[serde(default)]
    kdf: u8,
    #[serde(default)]
    convergent_encryption: bool,
    #[serde(default)]
    exportable: bool,
    #[serde(default)]
    min_decryption_version: u32,
    #[serde(default)]
    min_encryption_version: u32,
    #[serde(default)]
    latest_version: u32,
    #[serde(default)]
    archive_version: u32,
    #[serde(default)]
    archive_min_version: u32,
    #[serde(default)]
    min_available_version: u32,
    #[serde(default)]
    deletion_allowed: bool,
    #[serde(default)]
    convergent_version: i32,
    #[serde(rename = "type")]
    key_type: u64,
    #[serde(default)]
    backup_info: Option<Info>,
    #[serde(default)]
    restore_info: Option<Info>,
    #[serde(default)]
    allow_plaintext_backup: bool,
    #[serde(default)]
    version_template: String,
    #[serde(default)]
    storage_prefix: String,
    /// Go's `time.Duration`: nanoseconds.
    #[serde(default)]
    auto_rotate_period: i64,
    #[serde(default, rename = "Imported")]
    imported: bool,
    #[serde(default, rename = "AllowImportedKeyRotation")]
    allow_imported_key_rotation: bool,
    #[serde(default)]
    soft_deleted: bool,
}

#[derive(Serialize, Deserialize, Default)]
struct Archive {
    keys: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Backup {
    policy: Policy,
    archived_keys: Option<Archive>,
}

fn big(bytes: &[u8]) -> String {
    format!("{BIG}{}", BigUint::from_bytes_be(bytes))
}

fn unbig(text: &str) -> Result<BigUint> {
    let digits = text.strip_prefix(BIG).unwrap_or(text);
    BigUint::parse_bytes(digits.as_bytes(), 10)
        .ok_or_else(|| Error::invalid_input("invalid big integer in key material"))
}

/// `n` as exactly `len` big-endian bytes.
fn fixed_be(n: &BigUint, len: usize) -> Result<Vec<u8>> {
    let b = n.to_bytes_be();
    if b.len() > len {
        return Err(Error::invalid_input("key component too large"));
    }
    let mut out = vec![0u8; len - b.len()];
    out.extend_from_slice(&b);
    Ok(out)
}

fn curve_len(t: KeyType) -> usize {
    match t {
        KeyType::EcdsaP384 => 48,
        KeyType::EcdsaP521 => 66,
        _ => 32,
    }
}

fn entry_of(key: &TransitKey, v: &super::key::KeyVersion) -> Result<Entry> {
    let t = key.key_type;
    let mut e = Entry {
        hmac_key: Some(base64::encode(&v.hmac_key)),
        time: rfc3339(v.creation_time),
        convergent_version: v.convergent_version,
        creation_time: v.creation_time.unix_timestamp(),
        ..Entry::default()
    };
    if t.is_ecdsa() {
        let n = curve_len(t);
        let point = v.public_key.get(1..).unwrap_or_default();
        let (x, y) = point.split_at(point.len().min(n));
        e.ec_x = Some(big(x));
        e.ec_y = Some(big(y));
        e.ec_d = Some(big(&v.key));
        e.public_key = v.parsed(t)?.public_key_text()?;
    } else if t.is_rsa() {
        let c = RsaComponents::from_pkcs1(super::der::pkcs1_of_pkcs8(&v.key)?)?;
        let [n, ex, d, p, q, dp, dq, qinv] = &c.0;
        e.rsa_key = Some(RsaKey {
            N: big(&n.to_bytes_be()),
            E: u64::try_from(ex).map_err(|_| Error::invalid_input("rsa exponent too large"))?,
            D: big(&d.to_bytes_be()),
            Primes: vec![big(&p.to_bytes_be()), big(&q.to_bytes_be())],
            Precomputed: Precomputed {
                Dp: big(&dp.to_bytes_be()),
                Dq: big(&dq.to_bytes_be()),
                Qinv: big(&qinv.to_bytes_be()),
                CRTValues: Vec::new(),
            },
        });
    } else {
        e.key = Some(base64::encode(&v.key));
        if t == KeyType::Ed25519 {
            e.public_key = base64::encode(&v.public_key);
        }
    }
    Ok(e)
}

fn policy_of(key: &TransitKey) -> Result<Policy> {
    let p = &key.policy;
    let keys = key
        .versions
        .iter()
        .map(|(n, v)| Ok((n.to_string(), entry_of(key, v)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let info = |i: &Option<(String, u32)>| {
        i.as_ref().map(|(time, version)| Info {
            time: time.clone(),
            version: *version,
        })
    };
    Ok(Policy {
        name: key.name.clone(),
        key_size: (key.key_type == KeyType::Hmac).then_some(p.key_size),
        keys,
        derived: key.derived,
        kdf: match key.kdf {
            Kdf::HmacSha256Counter => 0,
            Kdf::HkdfSha256 => 1,
        },
        convergent_encryption: key.convergent_encryption,
        exportable: p.exportable,
        min_decryption_version: key.min_decryption_version,
        min_encryption_version: key.min_encryption_version,
        latest_version: key.latest_version,
        archive_version: key.latest_version,
        archive_min_version: p.min_available_version,
        min_available_version: p.min_available_version,
        deletion_allowed: p.deletion_allowed,
        convergent_version: key.convergent_version,
        key_type: u64::from(key.key_type.number()),
        backup_info: info(&p.backup_info),
        restore_info: info(&p.restore_info),
        allow_plaintext_backup: p.allow_plaintext_backup,
        auto_rotate_period: i64::try_from(p.auto_rotate_period)
            .unwrap_or(i64::MAX / 1_000_000_000)
            .saturating_mul(1_000_000_000),
        imported: p.imported,
        soft_deleted: p.soft_deleted,
        ..Policy::default()
    })
}

fn b64_field(v: &Option<String>, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let text = v
        .as_deref()
        .ok_or_else(|| Error::invalid_input(format!("key version is missing `{what}`")))?;
    base64::decode(text).map_err(|e| Error::invalid_input(format!("invalid `{what}`: {e}")))
}

/// One version's material: key, HMAC key, public key, creation time.
type Material = (
    Zeroizing<Vec<u8>>,
    Zeroizing<Vec<u8>>,
    Vec<u8>,
    OffsetDateTime,
);

fn version_of(t: KeyType, e: &Entry) -> Result<Material> {
    let hmac_key = b64_field(&e.hmac_key, "hmac_key")?;
    let time = parse_rfc3339(&e.time)
        .or_else(|| OffsetDateTime::from_unix_timestamp(e.creation_time).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (key, public) = if t.is_ecdsa() {
        let n = curve_len(t);
        let get = |v: &Option<String>, what: &str| {
            v.as_deref()
                .ok_or_else(|| Error::invalid_input(format!("key version is missing `{what}`")))
                .and_then(unbig)
                .and_then(|b| fixed_be(&b, n))
        };
        let mut point = vec![4u8];
        point.extend(get(&e.ec_x, "ec_x")?);
        point.extend(get(&e.ec_y, "ec_y")?);
        (Zeroizing::new(get(&e.ec_d, "ec_d")?), point)
    } else if t.is_rsa() {
        let r = e
            .rsa_key
            .as_ref()
            .ok_or_else(|| Error::invalid_input("key version is missing `rsa_key`"))?;
        let [p, q] = r.Primes.as_slice() else {
            return Err(Error::invalid_input(
                "only two-prime rsa keys are supported",
            ));
        };
        let c = RsaComponents([
            unbig(&r.N)?,
            BigUint::from(r.E),
            unbig(&r.D)?,
            unbig(p)?,
            unbig(q)?,
            unbig(&r.Precomputed.Dp)?,
            unbig(&r.Precomputed.Dq)?,
            unbig(&r.Precomputed.Qinv)?,
        ]);
        let pkcs8 = Zeroizing::new(c.to_pkcs8());
        let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| Error::invalid_input("invalid rsa key material"))?;
        let public = aws_lc_rs::signature::KeyPair::public_key(&kp)
            .as_ref()
            .to_vec();
        (pkcs8, public)
    } else if t == KeyType::Ed25519 {
        let key = b64_field(&e.key, "key")?;
        let public = key.get(32..).unwrap_or_default().to_vec();
        (key, public)
    } else {
        (b64_field(&e.key, "key")?, Vec::new())
    };
    Ok((key, hmac_key, public, time))
}

fn key_of(p: Policy, archive: Option<Archive>) -> Result<TransitKey> {
    let t = KeyType::from_number(p.key_type)?;
    if p.name.is_empty() {
        return Err(Error::invalid_input("backup is missing the key name"));
    }
    let mut key = TransitKey {
        name: p.name.clone(),
        key_type: t,
        versions: BTreeMap::new(),
        latest_version: 0,
        min_decryption_version: p.min_decryption_version,
        min_encryption_version: p.min_encryption_version,
        derived: p.derived,
        kdf: if p.kdf == 0 && p.derived {
            Kdf::HmacSha256Counter
        } else {
            Kdf::HkdfSha256
        },
        convergent_encryption: p.convergent_encryption,
        convergent_version: p.convergent_version,
        policy: KeyPolicy {
            exportable: p.exportable,
            allow_plaintext_backup: p.allow_plaintext_backup,
            deletion_allowed: p.deletion_allowed,
            auto_rotate_period: u64::try_from(p.auto_rotate_period / 1_000_000_000).unwrap_or(0),
            soft_deleted: p.soft_deleted,
            min_available_version: p.min_available_version,
            imported: p.imported,
            key_size: p.key_size.unwrap_or(0),
            backup_info: p.backup_info.map(|i| (i.time, i.version)),
            restore_info: p.restore_info.map(|i| (i.time, i.version)),
        },
    };
    // The archive holds every version down to min_available_version; the policy only the
    // ones still able to decrypt.
    let mut entries: BTreeMap<u32, Entry> = BTreeMap::new();
    if let Some(a) = archive {
        for (i, e) in a.keys.into_iter().enumerate() {
            let v = u32::try_from(i).map_err(|_| Error::invalid_input("too many versions"))?;
            if v == 0 || v < p.min_available_version || e.hmac_key.is_none() {
                continue;
            }
            entries.insert(v, e);
        }
    }
    for (n, e) in p.keys {
        let v: u32 = n
            .parse()
            .map_err(|_| Error::invalid_input(format!("invalid key version `{n}`")))?;
        entries.insert(v, e);
    }
    if entries.is_empty() {
        return Err(Error::invalid_input("backup holds no key versions"));
    }
    for (v, e) in &entries {
        let (k, h, public, time) = version_of(t, e)?;
        // Keep the version numbers of the source, gaps (trimmed versions) included.
        key.latest_version = v.saturating_sub(1);
        key.push_material(k, h, public, time)?;
        if let Some(kv) = key.versions.get_mut(v) {
            kv.convergent_version = e.convergent_version;
        }
    }
    if p.latest_version > key.latest_version {
        return Err(Error::invalid_input(
            "backup is missing the latest key version",
        ));
    }
    key.latest_version = p.latest_version.max(1);
    if key.min_decryption_version == 0 {
        key.min_decryption_version = 1;
    }
    Ok(key)
}

/// The stored form of `key`.
pub(crate) fn encode(key: &TransitKey) -> Result<Vec<u8>> {
    serde_json::to_vec(&policy_of(key)?)
        .map_err(|e| Error::internal("cannot encode transit key").with_source(e))
}

/// A key from its stored form.
pub(crate) fn decode(raw: &[u8]) -> Result<TransitKey> {
    let p: Policy =
        serde_json::from_slice(raw).map_err(|_| Error::storage("stored transit key is corrupt"))?;
    key_of(p, None)
}

/// `backup/:name`: base64 of `{"policy":...,"archived_keys":...}` in OpenBao's shape.
pub(crate) fn backup(key: &TransitKey) -> Result<String> {
    let policy = policy_of(key)?;
    let mut archive = Archive {
        keys: vec![Entry {
            time: "0001-01-01T00:00:00Z".into(),
            ..Entry::default()
        }],
    };
    for v in 1..=key.latest_version {
        archive.keys.push(match key.versions.get(&v) {
            Some(kv) => entry_of(key, kv)?,
            None => Entry {
                time: "0001-01-01T00:00:00Z".into(),
                ..Entry::default()
            },
        });
    }
    let json = serde_json::to_string(&Backup {
        policy,
        archived_keys: Some(archive),
    })
    .map_err(|e| Error::internal("cannot encode backup").with_source(e))?;
    let json = Zeroizing::new(unquote_bigs(&json));
    Ok(base64::encode(json.as_bytes()))
}

/// A key from a `backup/:name` value (base64 JSON); `name` overrides the name inside.
pub(crate) fn restore(backup: &str, name: Option<&str>) -> Result<TransitKey> {
    let raw = base64::decode(backup).map_err(|e| Error::invalid_input(e.to_string()))?;
    let text =
        std::str::from_utf8(&raw).map_err(|_| Error::invalid_input("backup is not valid json"))?;
    let quoted = Zeroizing::new(quote_bigs(text));
    let mut b: Backup = serde_json::from_str(&quoted)
        .map_err(|_| Error::invalid_input("backup is not valid json"))?;
    if let Some(n) = name {
        b.policy.name = n.to_string();
    }
    key_of(b.policy, b.archived_keys)
}

/// Turn `"\u0001big:123"` strings back into bare numbers.
fn unquote_bigs(json: &str) -> String {
    let marker = "\"\\u0001big:";
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(at) = rest.find(marker) {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        let after = tail.get(marker.len()..).unwrap_or_default();
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(after.get(..digits).unwrap_or_default());
        // Skip the closing quote.
        rest = after.get(digits + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Quote bare integers longer than 18 digits (outside strings), so `serde_json` keeps them.
fn quote_bigs(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len() + 64);
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b.is_ascii_digit() {
            let run = bytes
                .get(i..)
                .unwrap_or_default()
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            let digits = json.get(i..i + run).unwrap_or_default();
            if run > 18 {
                out.push('"');
                out.push_str(digits);
                out.push('"');
            } else {
                out.push_str(digits);
            }
            i += run;
            continue;
        }
        if let Some(c) = json.get(i..).and_then(|s| s.chars().next()) {
            out.push(c);
            i += c.len_utf8();
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_numbers_survive_both_ways() {
        let text =
            r#"{"a":123456789012345678901234567890,"b":"99999999999999999999999","c":[1,2]}"#;
        let q = quote_bigs(text);
        assert_eq!(
            q,
            r#"{"a":"123456789012345678901234567890","b":"99999999999999999999999","c":[1,2]}"#
        );
        let back = unquote_bigs(r#"{"a":"\u0001big:1234","b":"x"}"#);
        assert_eq!(back, r#"{"a":1234,"b":"x"}"#);
    }
}
