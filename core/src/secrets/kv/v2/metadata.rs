//! `<mount>/metadata/<key>` (read, write, patch, delete, list) and
//! `<mount>/detailed-metadata/<prefix>` (list with each key's metadata).

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::max_versions;
use super::custom_metadata;
use super::data::not_found_empty;
use super::layout::{
    KeyMeta, MAX_ATTEMPTS, MountConfig, check_key, commit, contention, encode, load_config,
    load_meta, meta_key, now_nanos, version_key,
};
use crate::error::{Error, Result};
use crate::request::{Data, Response};
use crate::secrets::EngineContext;
use crate::storage::{Backend, Page, TxnOp};
use crate::util::params;

const CAS_REQUIRED_IGNORED: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";
const METADATA_CAS_REQUIRED_IGNORED: &str = "\"metadata_cas_required\" set to false, but is mandated by backend config. This value will be ignored.";

/// `GET metadata/<key>`.
pub(super) async fn read(ctx: &EngineContext, key: &str) -> Result<Option<Response>> {
    let (_, meta) = load_meta(&ctx.storage, key).await?;
    Ok(meta.map(|m| Response::with_data(m.to_data())))
}

/// The settings a metadata write or patch may carry.
struct Settings {
    max_versions: Option<u32>,
    cas_required: Option<bool>,
    metadata_cas_required: Option<bool>,
    /// Whole seconds (OpenBao's `TypeDurationSecond`).
    delete_version_after: Option<u64>,
    /// The raw `custom_metadata` object (`Some(None)` = given as `null`).
    custom_metadata: Option<Option<Data>>,
    metadata_cas: Option<i64>,
}

impl Settings {
    fn parse(data: &Data) -> Result<Settings> {
        let custom_metadata = match data.get("custom_metadata") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => params::object(data, "custom_metadata")?.cloned().map(Some),
        };
        Ok(Settings {
            max_versions: max_versions(data)?,
            cas_required: params::bool(data, "cas_required")?,
            metadata_cas_required: params::bool(data, "metadata_cas_required")?,
            delete_version_after: params::duration(data, "delete_version_after")?
                .map(|d| d.as_secs()),
            custom_metadata,
            metadata_cas: params::int(data, "metadata_cas")?,
        })
    }

    /// Whether any setting (other than `metadata_cas` itself) was given.
    fn any(&self) -> bool {
        self.max_versions.is_some()
            || self.cas_required.is_some()
            || self.metadata_cas_required.is_some()
            || self.delete_version_after.is_some()
            || self.custom_metadata.is_some()
    }

    /// OpenBao's warnings for turning off what the mount mandates.
    fn warnings(&self, config: &MountConfig) -> Vec<String> {
        let mut w = Vec::new();
        if self.cas_required == Some(false) && config.cas_required {
            w.push(CAS_REQUIRED_IGNORED.to_string());
        }
        if self.metadata_cas_required == Some(false) && config.metadata_cas_required {
            w.push(METADATA_CAS_REQUIRED_IGNORED.to_string());
        }
        w
    }

    fn apply_scalars(&self, meta: &mut KeyMeta) {
        if let Some(m) = self.max_versions {
            meta.max_versions = m;
        }
        if let Some(c) = self.cas_required {
            meta.cas_required = c;
        }
        if let Some(c) = self.metadata_cas_required {
            meta.metadata_cas_required = c;
        }
        if let Some(d) = self.delete_version_after {
            meta.delete_version_after = d;
        }
    }
}

/// Check `metadata_cas` against an existing key (OpenBao's texts).
fn check_metadata_cas(
    settings: &Settings,
    config: &MountConfig,
    meta: Option<&KeyMeta>,
) -> Result<()> {
    let required = config.metadata_cas_required || meta.is_some_and(|m| m.metadata_cas_required);
    match (settings.metadata_cas, meta) {
        (None, _) if required => Err(Error::invalid_input(
            "metadata check-and-set parameter required for this call",
        )),
        (None, _) => Ok(()),
        (Some(0), None) => Ok(()),
        (Some(_), None) => Err(Error::conflict(
            "metadata_cas must be 0 when creating new metadata",
        )),
        (Some(cas), Some(m)) if u64::try_from(cas).ok() == Some(m.current_metadata_version) => {
            Ok(())
        }
        (Some(_), Some(_)) => Err(Error::conflict(
            "metadata check-and-set parameter does not match the current version",
        )),
    }
}

fn with_warnings(warnings: Vec<String>) -> Option<Response> {
    if warnings.is_empty() {
        return None;
    }
    Some(Response {
        warnings,
        ..Response::default()
    })
}

/// `POST metadata/<key>`: create or replace the key's settings. Never prunes versions.
pub(super) async fn write(ctx: &EngineContext, key: &str, req: &Data) -> Result<Option<Response>> {
    if key.is_empty() {
        return Err(Error::invalid_input("missing path"));
    }
    let settings = Settings::parse(req)?;
    if !settings.any() {
        return Ok(None);
    }
    let config = load_config(&ctx.storage).await?;
    let custom = match &settings.custom_metadata {
        None => None,
        Some(raw) => {
            let parsed = custom_metadata::parse(raw.as_ref().unwrap_or(&Data::new()), false)?;
            custom_metadata::validate(&parsed)?;
            Some(parsed)
        }
    };
    let warnings = settings.warnings(&config);
    for _ in 0..MAX_ATTEMPTS {
        let (prev, meta) = load_meta(&ctx.storage, key).await?;
        check_metadata_cas(&settings, &config, meta.as_ref())?;
        let now = now_nanos(ctx);
        let mut meta = match meta {
            None => KeyMeta {
                created_time: Some(now),
                updated_time: Some(now),
                current_metadata_version: 1,
                ..KeyMeta::default()
            },
            Some(mut m) => {
                m.current_metadata_version = m.current_metadata_version.saturating_add(1);
                m.updated_time = Some(now);
                m
            }
        };
        settings.apply_scalars(&mut meta);
        if let Some(c) = &custom {
            meta.custom_metadata = c.clone();
        }
        let ops = vec![TxnOp::Put {
            key: meta_key(key),
            value: encode(&meta)?,
        }];
        if commit(&ctx.storage, key, prev, ops).await? {
            return Ok(with_warnings(warnings));
        }
    }
    Err(contention())
}

/// What a metadata PATCH does to `custom_metadata`.
enum CustomPatch {
    /// Not in the patch.
    Keep,
    /// `"custom_metadata": null`.
    Clear,
    /// Set these pairs and remove the keys given as `null`.
    Merge {
        set: BTreeMap<String, String>,
        removed: Vec<String>,
    },
}

/// `PATCH metadata/<key>`: change only the given settings; `custom_metadata` is merged key by
/// key (`null` removes a key, a `null` map clears it). A missing key is a bare 404.
pub(super) async fn patch(ctx: &EngineContext, key: &str, req: &Data) -> Result<Option<Response>> {
    let settings = Settings::parse(req)?;
    if !settings.any() {
        return Ok(None);
    }
    if key.is_empty() {
        return Err(Error::invalid_input("missing path"));
    }
    let custom_patch = match &settings.custom_metadata {
        None => CustomPatch::Keep,
        Some(None) => CustomPatch::Clear,
        Some(Some(raw)) => {
            let set = custom_metadata::parse(raw, true)?;
            custom_metadata::validate(&set)?;
            let removed = raw
                .iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.clone())
                .collect();
            CustomPatch::Merge { set, removed }
        }
    };
    let config = load_config(&ctx.storage).await?;
    for _ in 0..MAX_ATTEMPTS {
        let (prev, Some(mut meta)) = load_meta(&ctx.storage, key).await? else {
            return Ok(Some(not_found_empty()));
        };
        check_metadata_cas(&settings, &config, Some(&meta))?;
        settings.apply_scalars(&mut meta);
        match &custom_patch {
            CustomPatch::Keep => {}
            CustomPatch::Clear => meta.custom_metadata.clear(),
            CustomPatch::Merge { set, removed } => {
                for k in removed {
                    meta.custom_metadata.remove(k);
                }
                meta.custom_metadata
                    .extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                // OpenBao only checks the patch; check the result too so the 64-key limit holds.
                custom_metadata::validate(&meta.custom_metadata)?;
            }
        }
        meta.current_metadata_version = meta.current_metadata_version.saturating_add(1);
        meta.updated_time = Some(now_nanos(ctx));
        let ops = vec![TxnOp::Put {
            key: meta_key(key),
            value: encode(&meta)?,
        }];
        if commit(&ctx.storage, key, prev, ops).await? {
            return Ok(with_warnings(settings.warnings(&config)));
        }
    }
    Err(contention())
}

/// `DELETE metadata/<key>`: every version's data and the metadata, in one transaction.
pub(super) async fn delete(ctx: &EngineContext, key: &str) -> Result<Option<Response>> {
    for _ in 0..MAX_ATTEMPTS {
        let (prev, Some(meta)) = load_meta(&ctx.storage, key).await? else {
            return Ok(None);
        };
        let mut ops: Vec<TxnOp> = meta
            .versions
            .keys()
            .map(|n| TxnOp::Delete {
                key: version_key(key, *n),
            })
            .collect();
        ops.push(TxnOp::Delete { key: meta_key(key) });
        if commit(&ctx.storage, key, prev, ops).await? {
            return Ok(None);
        }
    }
    Err(contention())
}

/// `LIST metadata/<prefix>/` and `LIST detailed-metadata/<prefix>/` (`after`, `limit`).
/// Folders end in `/`. `detailed` adds `key_info`: each entry's metadata, `{}` when none.
pub(super) async fn list(
    ctx: &EngineContext,
    prefix: &str,
    req: &Data,
    detailed: bool,
) -> Result<Option<Response>> {
    let after = params::string(req, "after")?.filter(|a| !a.is_empty());
    let limit = params::int(req, "limit")?
        .filter(|l| *l > 0)
        .and_then(|l| usize::try_from(l).ok());
    let mut prefix = prefix.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    check_key(&prefix)?;
    let keys = ctx
        .storage
        .list(&meta_key(&prefix), &Page { after, limit })
        .await?;
    if keys.is_empty() {
        return Ok(None);
    }
    let mut d = Data::new();
    if detailed {
        let mut info = Data::new();
        for k in &keys {
            // As OpenBao's filepath.Join: a folder `dir/` shows the metadata of a key `dir`.
            let full = format!("{prefix}{}", k.trim_end_matches('/'));
            let (_, meta) = load_meta(&ctx.storage, &full).await?;
            let entry = meta.map(|m| m.to_data()).unwrap_or_default();
            info.insert(k.clone(), Value::Object(entry));
        }
        d.insert("key_info".into(), Value::Object(info));
    }
    d.insert(
        "keys".into(),
        Value::Array(keys.into_iter().map(Value::String).collect()),
    );
    Ok(Some(Response::with_data(d)))
}
