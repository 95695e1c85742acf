//! How a KV v2 mount lays out its storage, and the records kept there.
//!
//! All keys are relative to the mount's storage view:
//!
//! * `config`: the mount configuration ([`MountConfig`], JSON).
//! * `metadata/<key>`: one [`KeyMeta`] (JSON) per secret: the version table, the key's settings
//!   and its custom metadata. Times are Unix nanoseconds (integers), formatted only on output.
//!   Key paths are stored in clear (the barrier encrypts values, not paths) so that
//!   `LIST metadata/<prefix>/` is a plain storage list of `metadata/<prefix>/`.
//! * `versions/<key>/<n>`: the data of version `n` of `<key>`: the secret's JSON object with its
//!   keys sorted (OpenBao answers with Go's sorted map order). Every version key ends in
//!   `/<digits>` and the secret key is everything before that last `/`, so two secrets can never
//!   share a version key (`a` v1 is `versions/a/1`, `a/1` v1 is `versions/a/1/1`).
//!
//! Every change to a secret is ONE storage transaction that starts with a `Check` that
//! `metadata/<key>` still holds the bytes the change was computed from, then writes the metadata
//! and the version keys it touches. Two writers (threads or processes) that read the same
//! metadata cannot both commit: the loser re-reads and tries again ([`MAX_ATTEMPTS`]), so version
//! numbers are never handed out twice and a version's data never exists without its metadata.
//! Reads of `data/<key>` take the metadata and the version from the barrier's decoded cache
//! when their stored ciphertext is unchanged; every change reads what it needs from storage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::error::{Error, ErrorCode, Result};
use crate::request::Data;
use crate::secrets::EngineContext;
use crate::storage::view::View;
use crate::storage::{Backend, TxnOp};
use crate::util::duration;

/// Where the mount configuration lives.
pub(super) const CONFIG_KEY: &str = "config";

/// Versions kept per key when neither the key nor the mount sets `max_versions`.
pub(super) const DEFAULT_MAX_VERSIONS: u64 = 10;

/// How many times a change is recomputed when another writer changed the key first.
pub(super) const MAX_ATTEMPTS: usize = 16;

/// Deepest nesting accepted in secret data: beyond this, the stored JSON could not be read back.
const MAX_DATA_DEPTH: usize = 120;

/// Nanoseconds per second.
const NANOS: i64 = 1_000_000_000;

/// The storage key of a secret's metadata.
pub(super) fn meta_key(key: &str) -> String {
    format!("metadata/{key}")
}

/// The storage key of one version's data.
pub(super) fn version_key(key: &str, version: u64) -> String {
    format!("versions/{key}/{version}")
}

/// Refuse key paths that could address something other than the secret (`..`, `.`).
pub(super) fn check_key(key: &str) -> Result<()> {
    if key.split('/').any(|s| s == ".." || s == ".") {
        return Err(Error::invalid_input(format!("invalid path `{key}`")));
    }
    Ok(())
}

/// The mount configuration (`<mount>/config`).
#[derive(Serialize, Deserialize, Default, Clone, PartialEq, Eq)]
pub(super) struct MountConfig {
    /// Versions kept per key; 0 = the default (10).
    #[serde(default)]
    pub max_versions: u32,
    /// Every data write must carry `options.cas`.
    #[serde(default)]
    pub cas_required: bool,
    /// Every metadata write must carry `metadata_cas`.
    #[serde(default)]
    pub metadata_cas_required: bool,
    /// Seconds; 0 = unset, negative (-1) = disabled for every key, as OpenBao's `-1s`.
    #[serde(default)]
    pub delete_version_after: i64,
}

impl MountConfig {
    /// Whether `delete_version_after` is switched off for the whole mount.
    pub(super) fn delete_version_after_disabled(&self) -> bool {
        self.delete_version_after < 0
    }
}

/// One version in a key's version table. Stored with one-letter field names (`c`, `d`, `x`):
/// the table is parsed on every read and grows with `max_versions`.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
pub(super) struct VersionMeta {
    /// Unix nanoseconds.
    #[serde(rename = "c")]
    pub created_time: i64,
    /// Unix nanoseconds; the version reads as deleted from this instant on.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub deletion_time: Option<i64>,
    /// The data was destroyed for good.
    #[serde(rename = "x", default, skip_serializing_if = "std::ops::Not::not")]
    pub destroyed: bool,
}

impl VersionMeta {
    /// Whether reads of this version answer "deleted or destroyed" at `now`. A deletion
    /// takes effect at its own instant: on a clock that has not moved since (a virtual clock
    /// in tests, or two calls within one clock tick) a deleted version must not read back.
    pub(super) fn is_gone(&self, now: i64) -> bool {
        self.destroyed || self.deletion_time.is_some_and(|d| d <= now)
    }

    /// `{created_time, custom_metadata, deletion_time, destroyed, version}`, in OpenBao's order.
    pub(super) fn to_data(self, version: u64, custom: &BTreeMap<String, String>) -> Data {
        let mut d = Data::new();
        d.insert("created_time".into(), format_time(self.created_time).into());
        d.insert("custom_metadata".into(), custom_metadata_value(custom));
        d.insert(
            "deletion_time".into(),
            self.deletion_time
                .map(format_time)
                .unwrap_or_default()
                .into(),
        );
        d.insert("destroyed".into(), self.destroyed.into());
        d.insert("version".into(), version.into());
        d
    }
}

/// A secret's metadata record (`metadata/<key>`).
#[derive(Serialize, Deserialize, Default, Clone, PartialEq, Eq)]
pub(super) struct KeyMeta {
    /// The latest version number (0 before the first write).
    #[serde(default)]
    pub current_version: u64,
    /// Versions up to and including this one were pruned (OpenBao's `oldest_version`).
    #[serde(default)]
    pub oldest_version: u64,
    /// Bumped by every metadata write or patch (for `metadata_cas`).
    #[serde(default)]
    pub current_metadata_version: u64,
    /// Unix nanoseconds.
    #[serde(default)]
    pub created_time: Option<i64>,
    /// Unix nanoseconds.
    #[serde(default)]
    pub updated_time: Option<i64>,
    /// Versions kept for this key; 0 = the mount's setting.
    #[serde(default)]
    pub max_versions: u32,
    /// Data writes to this key must carry `options.cas`.
    #[serde(default)]
    pub cas_required: bool,
    /// Metadata writes to this key must carry `metadata_cas`.
    #[serde(default)]
    pub metadata_cas_required: bool,
    /// Seconds; 0 = unset.
    #[serde(default)]
    pub delete_version_after: u64,
    /// User-supplied strings describing the secret (not secret themselves).
    #[serde(default)]
    pub custom_metadata: BTreeMap<String, String>,
    /// The version table.
    #[serde(default)]
    pub versions: BTreeMap<u64, VersionMeta>,
}

impl KeyMeta {
    /// Append a version created at `created`, prune what `max_versions` no longer allows (as
    /// OpenBao's `AddVersion`: the limit is `max(key, mount)`, else 10), and return the new
    /// version number with the pruned ones (whose data must be deleted).
    pub(super) fn add_version(
        &mut self,
        created: i64,
        deletion: Option<i64>,
        mount_max: u32,
    ) -> Result<(u64, Vec<u64>)> {
        let version = self
            .current_version
            .checked_add(1)
            .ok_or_else(|| Error::internal("version counter overflow"))?;
        self.current_version = version;
        self.versions.insert(
            version,
            VersionMeta {
                created_time: created,
                deletion_time: deletion,
                destroyed: false,
            },
        );
        self.updated_time = Some(created);
        if self.created_time.is_none() {
            self.created_time = Some(created);
        }
        let max = match u64::from(self.max_versions.max(mount_max)) {
            0 => DEFAULT_MAX_VERSIONS,
            m => m,
        };
        let mut pruned = Vec::new();
        if version.saturating_sub(self.oldest_version) >= max {
            let delete_through = version - max;
            let keep = self.versions.split_off(&(delete_through + 1));
            pruned = std::mem::replace(&mut self.versions, keep)
                .into_keys()
                .collect();
            self.oldest_version = delete_through + 1;
        }
        Ok((version, pruned))
    }

    /// The metadata endpoint's answer, fields in OpenBao's (sorted) order.
    pub(super) fn to_data(&self) -> Data {
        // Go sorts map keys as strings: "1", "10", "2".
        let mut numbers: Vec<(String, &VersionMeta)> = self
            .versions
            .iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        numbers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut versions = Map::new();
        for (n, v) in numbers {
            let mut o = Map::new();
            o.insert("created_time".into(), format_time(v.created_time).into());
            o.insert(
                "deletion_time".into(),
                v.deletion_time.map(format_time).unwrap_or_default().into(),
            );
            o.insert("destroyed".into(), v.destroyed.into());
            versions.insert(n, Value::Object(o));
        }
        let mut d = Data::new();
        d.insert("cas_required".into(), self.cas_required.into());
        d.insert(
            "created_time".into(),
            format_opt_time(self.created_time).into(),
        );
        d.insert(
            "current_metadata_version".into(),
            self.current_metadata_version.into(),
        );
        d.insert("current_version".into(), self.current_version.into());
        d.insert(
            "custom_metadata".into(),
            custom_metadata_value(&self.custom_metadata),
        );
        d.insert(
            "delete_version_after".into(),
            duration::format(std::time::Duration::from_secs(self.delete_version_after)).into(),
        );
        d.insert("max_versions".into(), self.max_versions.into());
        d.insert(
            "metadata_cas_required".into(),
            self.metadata_cas_required.into(),
        );
        d.insert("oldest_version".into(), self.oldest_version.into());
        d.insert(
            "updated_time".into(),
            format_opt_time(self.updated_time).into(),
        );
        d.insert("versions".into(), Value::Object(versions));
        d
    }
}

/// `custom_metadata` as OpenBao prints it: `null` when empty (protobuf drops empty maps).
pub(super) fn custom_metadata_value(custom: &BTreeMap<String, String>) -> Value {
    if custom.is_empty() {
        return Value::Null;
    }
    Value::Object(
        custom
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// The engine clock's current time in Unix nanoseconds.
pub(super) fn now_nanos(ctx: &EngineContext) -> i64 {
    i64::try_from(ctx.clock.now().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// Unix nanoseconds as RFC 3339 with nanoseconds (Go's `RFC3339Nano`).
pub(super) fn format_time(nanos: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .map(rfc3339)
        .unwrap_or_default()
}

fn format_opt_time(nanos: Option<i64>) -> String {
    nanos.map(format_time).unwrap_or_default()
}

/// When a version created at `created` is deleted: `created` plus the smaller non-zero
/// `delete_version_after` of the mount and the key; `None` when neither is set or the mount
/// disabled it.
pub(super) fn deletion_time(
    created: i64,
    config: &MountConfig,
    meta: &KeyMeta,
) -> Result<Option<i64>> {
    if config.delete_version_after_disabled() {
        return Ok(None);
    }
    let mount = u64::try_from(config.delete_version_after).unwrap_or(0);
    let secs = match (mount, meta.delete_version_after) {
        (0, 0) => return Ok(None),
        (0, k) => k,
        (m, 0) => m,
        (m, k) => m.min(k),
    };
    i64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(NANOS))
        .and_then(|d| created.checked_add(d))
        .map(Some)
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "error setting deletion_time: `{secs}s` after the creation time is out of range"
            ))
        })
}

/// A secret's metadata as stored (the raw bytes, for the transaction's `Check`) and decoded.
pub(super) async fn load_meta(
    storage: &View,
    key: &str,
) -> Result<(Option<Vec<u8>>, Option<KeyMeta>)> {
    if key.is_empty() {
        return Ok((None, None));
    }
    let Some(raw) = storage.get(&meta_key(key)).await? else {
        return Ok((None, None));
    };
    let meta = serde_json::from_slice(&raw)
        .map_err(|e| Error::storage("failed to decode key metadata from storage").with_source(e))?;
    Ok((Some(raw), Some(meta)))
}

/// A secret's metadata as reads use it: decoded, with each version's `metadata` answer
/// formatted once (formatting times costs more than copying the result).
pub(crate) struct ReadMeta {
    pub(super) meta: KeyMeta,
    /// [`VersionMeta::to_data`] of every version in the table.
    pub(super) version_data: BTreeMap<u64, Data>,
}

/// A secret's metadata for reading, from the decoded cache when it is unchanged in storage
/// (metadata holds no secret values).
pub(super) async fn load_meta_decoded(
    storage: &View,
    key: &str,
) -> Result<Option<std::sync::Arc<ReadMeta>>> {
    if key.is_empty() {
        return Ok(None);
    }
    storage
        .get_decoded(&meta_key(key), |raw| {
            let meta: KeyMeta = serde_json::from_slice(raw).map_err(|e| {
                Error::storage("failed to decode key metadata from storage").with_source(e)
            })?;
            let version_data = meta
                .versions
                .iter()
                .map(|(n, v)| (*n, v.to_data(*n, &meta.custom_metadata)))
                .collect();
            Ok(ReadMeta { meta, version_data })
        })
        .await
}

/// The mount configuration (defaults when never written).
pub(super) async fn load_config(storage: &View) -> Result<MountConfig> {
    match storage.get(CONFIG_KEY).await? {
        None => Ok(MountConfig::default()),
        Some(raw) => serde_json::from_slice(&raw).map_err(|e| {
            Error::storage("failed to decode kv configuration from storage").with_source(e)
        }),
    }
}

/// Encode a record for storage.
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    crate::util::json::encode(value, || Error::internal("cannot encode kv record"))
}

/// Apply `ops` after checking that `metadata/<key>` still holds `prev` (`None` = absent).
/// `Ok(false)` means another writer changed the key first: re-read and recompute.
pub(super) async fn commit(
    storage: &View,
    key: &str,
    prev: Option<Vec<u8>>,
    ops: Vec<TxnOp>,
) -> Result<bool> {
    let mut all = Vec::with_capacity(ops.len() + 1);
    all.push(TxnOp::Check {
        key: meta_key(key),
        expected: prev,
    });
    all.extend(ops);
    match storage.transaction(all).await {
        Ok(()) => Ok(true),
        Err(e) if e.code() == ErrorCode::Conflict => {
            // Lost to another writer. Wait a random moment before the re-read: two writers
            // on a busy machine can otherwise stay in lockstep, one always committing between
            // the other's read and commit, until MAX_ATTEMPTS runs out.
            let jitter = rand::random_range(0..2_000u64);
            tokio::time::sleep(std::time::Duration::from_micros(jitter)).await;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The error once [`MAX_ATTEMPTS`] commits in a row lost to other writers.
pub(super) fn contention() -> Error {
    Error::conflict("the secret was changed concurrently too many times; retry the request")
}

/// Secret data as stored: keys sorted at every level (Go's map order), depth-limited.
pub(super) fn canonical(value: Value) -> Result<Value> {
    canonical_at(value, 1)
}

fn canonical_at(value: Value, depth: usize) -> Result<Value> {
    if depth > MAX_DATA_DEPTH {
        return Err(Error::invalid_input("data is nested too deeply"));
    }
    match value {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::with_capacity(entries.len());
            for (k, v) in entries {
                out.insert(k, canonical_at(v, depth + 1)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .into_iter()
            .map(|v| canonical_at(v, depth + 1))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        other => Ok(other),
    }
}

/// Decode a stored version's data.
pub(crate) fn decode_data(raw: &[u8]) -> Result<Data> {
    serde_json::from_slice(raw)
        .map_err(|e| Error::storage("failed to decode version data from storage").with_source(e))
}
