//! `<mount>/config`: mount-wide `max_versions`, `cas_required`, `metadata_cas_required` and
//! `delete_version_after`.

use std::time::Duration;

use serde_json::Value;

use super::layout::{CONFIG_KEY, MountConfig, encode, load_config};
use crate::error::{Error, Result};
use crate::request::{Data, Response};
use crate::secrets::EngineContext;
use crate::storage::Backend;
use crate::util::{duration, params};

/// `GET config`.
pub(super) async fn read(ctx: &EngineContext) -> Result<Option<Response>> {
    let config = load_config(&ctx.storage).await?;
    let mut d = Data::new();
    d.insert("cas_required".into(), config.cas_required.into());
    d.insert(
        "delete_version_after".into(),
        format_signed_secs(config.delete_version_after).into(),
    );
    d.insert("max_versions".into(), config.max_versions.into());
    d.insert(
        "metadata_cas_required".into(),
        config.metadata_cas_required.into(),
    );
    Ok(Some(Response::with_data(d)))
}

/// `POST config`: only the fields given change; a negative `delete_version_after` disables it
/// on every key, zero clears it.
pub(super) async fn write(ctx: &EngineContext, data: &Data) -> Result<Option<Response>> {
    let max_versions = max_versions(data)?;
    let cas_required = params::bool(data, "cas_required")?;
    let metadata_cas_required = params::bool(data, "metadata_cas_required")?;
    let dva = signed_duration_secs(data, "delete_version_after")?;
    if max_versions.is_none()
        && cas_required.is_none()
        && metadata_cas_required.is_none()
        && dva.is_none()
    {
        return Ok(None);
    }
    let mut config: MountConfig = load_config(&ctx.storage).await?;
    if let Some(m) = max_versions {
        config.max_versions = m;
    }
    if let Some(c) = cas_required {
        config.cas_required = c;
    }
    if let Some(c) = metadata_cas_required {
        config.metadata_cas_required = c;
    }
    if let Some(d) = dva {
        config.delete_version_after = d.clamp(-1, i64::MAX);
    }
    ctx.storage.put(CONFIG_KEY, &encode(&config)?).await?;
    Ok(None)
}

/// `max_versions` as a count (a negative or oversized value is refused rather than wrapped).
pub(super) fn max_versions(data: &Data) -> Result<Option<u32>> {
    params::int(data, "max_versions")?
        .map(|n| {
            u32::try_from(n).map_err(|_| {
                Error::invalid_input(format!(
                    "max_versions must be between 0 and {}, got `{n}`",
                    u32::MAX
                ))
            })
        })
        .transpose()
}

/// A duration in whole seconds that may be negative (`-1s`, `-5`), as OpenBao's
/// `TypeSignedDurationSecond`.
fn signed_duration_secs(data: &Data, field: &str) -> Result<Option<i64>> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(duration::parse_signed_value(v)? / duration::SECOND)),
    }
}

/// Go's `time.Duration.String()` for a whole number of seconds that may be negative.
fn format_signed_secs(secs: i64) -> String {
    let text = duration::format(Duration::from_secs(secs.unsigned_abs()));
    if secs < 0 { format!("-{text}") } else { text }
}
