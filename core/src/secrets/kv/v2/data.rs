//! `<mount>/data/<key>`: read a version, write a new one, merge-patch the latest, soft-delete the
//! latest.

use std::sync::Arc;

use serde_json::Value;

use super::layout::{
    KeyMeta, MAX_ATTEMPTS, MountConfig, ReadMeta, canonical, commit, contention, decode_data,
    deletion_time, encode, load_config, load_meta, load_meta_decoded, meta_key, now_nanos,
    version_key,
};
use crate::barrier::decoded::SecretData;
use crate::error::{Error, Result};
use crate::request::{Data, Response};
use crate::secrets::EngineContext;
use crate::storage::{Backend, TxnOp};
use crate::util::params;

/// How often a read starts over when a version vanished between its two storage reads.
const READ_ATTEMPTS: usize = 3;

/// A version number parameter (`version=N`): `None` when absent or 0 (= the latest).
pub(super) fn version_param(data: &Data) -> Result<Option<u64>> {
    match params::int(data, "version")? {
        None | Some(0) => Ok(None),
        Some(n) => u64::try_from(n)
            .map(Some)
            .map_err(|_| Error::invalid_input(format!("invalid version number `{n}`"))),
    }
}

/// The full-envelope 404 OpenBao sends for a deleted or destroyed version.
pub(super) fn gone(data: Data) -> Response {
    Response {
        kind: crate::request::ResponseKind::NotFound,
        ..Response::with_data(data)
    }
}

/// A 404 with nothing in it (OpenBao's `RespondWithStatusCode(nil, req, 404)`: an empty body).
pub(super) fn not_found_empty() -> Response {
    Response {
        kind: crate::request::ResponseKind::NotFound,
        ..Response::default()
    }
}

/// What a read of a version found, as decoded (and cached) from storage.
pub(crate) enum VersionRead {
    /// No such key or version.
    Missing,
    /// The version is deleted or destroyed.
    Gone { meta: Arc<ReadMeta>, number: u64 },
    Found {
        meta: Arc<ReadMeta>,
        number: u64,
        data: Arc<SecretData>,
    },
}

impl VersionRead {
    /// The version's `metadata` answer (`created_time`, `deletion_time`, `destroyed`,
    /// `version`, `custom_metadata`), formatted once per metadata record.
    pub(crate) fn metadata(&self) -> Option<&Data> {
        match self {
            VersionRead::Missing => None,
            VersionRead::Gone { meta, number } | VersionRead::Found { meta, number, .. } => {
                meta.version_data.get(number)
            }
        }
    }
}

/// Version `version` (`None`: the latest) of `key`: at most two storage reads (metadata, then
/// the version), both served from the decoded cache while unchanged.
pub(crate) async fn read_version(
    ctx: &EngineContext,
    key: &str,
    version: Option<u64>,
) -> Result<VersionRead> {
    for _ in 0..READ_ATTEMPTS {
        let Some(meta) = load_meta_decoded(&ctx.storage, key).await? else {
            return Ok(VersionRead::Missing);
        };
        let number = version.unwrap_or(meta.meta.current_version);
        let Some(vm) = meta.meta.versions.get(&number) else {
            return Ok(VersionRead::Missing);
        };
        if !meta.version_data.contains_key(&number) {
            return Ok(VersionRead::Missing);
        }
        if vm.is_gone(now_nanos(ctx)) {
            return Ok(VersionRead::Gone { meta, number });
        }
        // The version may be pruned or destroyed between the two reads: start over then.
        let version_data = ctx
            .storage
            .get_decoded(&version_key(key, number), |raw| {
                decode_data(raw).map(SecretData)
            })
            .await?;
        let Some(data) = version_data else {
            continue;
        };
        return Ok(VersionRead::Found { meta, number, data });
    }
    Err(Error::storage("could not find version data"))
}

/// `GET data/<key>[?version=N]`.
pub(super) async fn read(ctx: &EngineContext, key: &str, req: &Data) -> Result<Option<Response>> {
    let version = version_param(req)?;
    let read = read_version(ctx, key, version).await?;
    let Some(metadata) = read.metadata().cloned() else {
        return Ok(None);
    };
    let mut out = Data::new();
    match read {
        VersionRead::Missing => Ok(None),
        VersionRead::Gone { .. } => {
            out.insert("data".into(), Value::Null);
            out.insert("metadata".into(), Value::Object(metadata));
            Ok(Some(gone(out)))
        }
        VersionRead::Found { data, .. } => {
            out.insert("data".into(), Value::Object(data.0.clone()));
            out.insert("metadata".into(), Value::Object(metadata));
            Ok(Some(Response::with_data(out)))
        }
    }
}

/// What the request said about check-and-set.
enum Cas {
    /// No `options.cas`.
    Absent,
    /// `options.cas` as given (a negative number can never match).
    Value(i128),
}

/// `options.cas`, decoded as Go's weak decoding does (numbers, numeric strings, booleans,
/// `null` = 0).
fn cas_option(data: &Data) -> Result<Cas> {
    let Some(options) = params::object(data, "options")? else {
        return Ok(Cas::Absent);
    };
    let bad = || Error::invalid_input("error parsing check-and-set parameter");
    match options.get("cas") {
        None => Ok(Cas::Absent),
        Some(Value::Null) => Ok(Cas::Value(0)),
        Some(Value::Bool(b)) => Ok(Cas::Value(i128::from(*b))),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .map(Cas::Value)
            .ok_or_else(bad),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Cas::Value(0)),
        Some(Value::String(s)) => s.trim().parse::<i128>().map(Cas::Value).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// OpenBao's `validateCheckAndSetOption`.
fn check_cas(cas: &Cas, config: &MountConfig, meta: &KeyMeta) -> Result<()> {
    match cas {
        Cas::Value(v) if *v != i128::from(meta.current_version) => Err(Error::conflict(
            "check-and-set parameter did not match the current version",
        )),
        Cas::Value(_) => Ok(()),
        Cas::Absent if config.cas_required || meta.cas_required => Err(Error::invalid_input(
            "check-and-set parameter required for this call",
        )),
        Cas::Absent => Ok(()),
    }
}

/// The `data` object of a write or patch.
fn data_field(data: &Data) -> Result<&Data> {
    params::object(data, "data")?.ok_or_else(|| Error::invalid_input("no data provided"))
}

/// Add a version holding `bytes` to `meta` and commit it. `Ok(None)` = lost a race; retry.
async fn commit_version(
    ctx: &EngineContext,
    key: &str,
    config: &MountConfig,
    prev: Option<Vec<u8>>,
    mut meta: KeyMeta,
    bytes: Vec<u8>,
) -> Result<Option<Response>> {
    let now = now_nanos(ctx);
    let deletion = deletion_time(now, config, &meta)?;
    let (version, pruned) = meta.add_version(now, deletion, config.max_versions)?;
    let Some(vm) = meta.versions.get(&version).copied() else {
        return Err(Error::internal("new version missing from its metadata"));
    };
    let mut ops = Vec::with_capacity(pruned.len() + 2);
    ops.push(TxnOp::Put {
        key: version_key(key, version),
        value: bytes,
    });
    ops.push(TxnOp::Put {
        key: meta_key(key),
        value: encode(&meta)?,
    });
    ops.extend(pruned.into_iter().map(|v| TxnOp::Delete {
        key: version_key(key, v),
    }));
    if !commit(&ctx.storage, key, prev, ops).await? {
        return Ok(None);
    }
    Ok(Some(Response::with_data(
        vm.to_data(version, &meta.custom_metadata),
    )))
}

/// `POST data/<key>` `{data, options: {cas}}`: a new version.
pub(super) async fn write(ctx: &EngineContext, key: &str, req: &Data) -> Result<Option<Response>> {
    if key.is_empty() {
        return Err(Error::invalid_input("missing path"));
    }
    let config = load_config(&ctx.storage).await?;
    let data = data_field(req)?;
    let bytes = encode(&canonical(Value::Object(data.clone()))?)?;
    let cas = cas_option(req)?;
    for _ in 0..MAX_ATTEMPTS {
        let (prev, meta) = load_meta(&ctx.storage, key).await?;
        let meta = meta.unwrap_or_default();
        check_cas(&cas, &config, &meta)?;
        if let Some(resp) = commit_version(ctx, key, &config, prev, meta, bytes.clone()).await? {
            return Ok(Some(resp));
        }
    }
    Err(contention())
}

/// `PATCH data/<key>` `{data, options: {cas}}`: an RFC 7386 merge patch of the latest version,
/// stored as a new version. A missing, deleted or destroyed latest version is a bare 404.
pub(super) async fn patch(ctx: &EngineContext, key: &str, req: &Data) -> Result<Option<Response>> {
    let patch = Value::Object(data_field(req)?.clone());
    let cas = cas_option(req)?;
    let config = load_config(&ctx.storage).await?;
    let mut attempt = 0;
    while attempt < MAX_ATTEMPTS {
        attempt += 1;
        let (prev, Some(meta)) = load_meta(&ctx.storage, key).await? else {
            return Ok(Some(not_found_empty()));
        };
        check_cas(&cas, &config, &meta)?;
        let current = meta.current_version;
        match meta.versions.get(&current) {
            Some(vm) if !vm.is_gone(now_nanos(ctx)) => {}
            _ => return Ok(Some(not_found_empty())),
        }
        let Some(raw) = ctx.storage.get(&version_key(key, current)).await? else {
            continue;
        };
        let mut merged = Value::Object(decode_data(&raw)?);
        json_patch::merge(&mut merged, &patch);
        let bytes = encode(&canonical(merged)?)?;
        if let Some(resp) = commit_version(ctx, key, &config, prev, meta, bytes).await? {
            return Ok(Some(resp));
        }
    }
    Err(contention())
}

/// `DELETE data/<key>`: soft-delete the latest version (a no-op when it is already gone).
pub(super) async fn delete(ctx: &EngineContext, key: &str) -> Result<Option<Response>> {
    for _ in 0..MAX_ATTEMPTS {
        let (prev, Some(mut meta)) = load_meta(&ctx.storage, key).await? else {
            return Ok(None);
        };
        let now = now_nanos(ctx);
        let current = meta.current_version;
        let Some(vm) = meta.versions.get_mut(&current) else {
            return Ok(None);
        };
        if vm.is_gone(now) {
            return Ok(None);
        }
        vm.deletion_time = Some(now);
        let ops = vec![TxnOp::Put {
            key: meta_key(key),
            value: encode(&meta)?,
        }];
        if commit(&ctx.storage, key, prev, ops).await? {
            return Ok(None);
        }
    }
    Err(contention())
}
