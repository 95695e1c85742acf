//! `<mount>/subkeys/<key>?version=N&depth=D`: a version's structure with every value removed.

use serde_json::Value;

use super::data::{gone, version_param};
use super::layout::{decode_data, load_meta, now_nanos, version_key};
use crate::error::{Error, Result};
use crate::request::{Data, Response};
use crate::secrets::EngineContext;
use crate::storage::Backend;
use crate::util::params;

/// `GET subkeys/<key>`.
pub(super) async fn read(ctx: &EngineContext, key: &str, req: &Data) -> Result<Option<Response>> {
    let depth = match params::int(req, "depth")? {
        None => 0,
        Some(d) => {
            usize::try_from(d).map_err(|_| Error::invalid_input(format!("invalid depth `{d}`")))?
        }
    };
    let version = version_param(req)?;
    let (_, Some(meta)) = load_meta(&ctx.storage, key).await? else {
        return Ok(None);
    };
    let number = version.unwrap_or(meta.current_version);
    let Some(vm) = meta.versions.get(&number) else {
        return Ok(None);
    };
    let metadata = Value::Object(vm.to_data(number, &meta.custom_metadata));
    let mut out = Data::new();
    out.insert("metadata".into(), metadata);
    if vm.is_gone(now_nanos(ctx)) {
        out.insert("subkeys".into(), Value::Null);
        return Ok(Some(gone(out)));
    }
    let Some(raw) = ctx.storage.get(&version_key(key, number)).await? else {
        return Err(Error::storage("could not find version data"));
    };
    let mut data = decode_data(&raw)?;
    remove_values(&mut data, depth, 1);
    out.insert("subkeys".into(), Value::Object(data));
    Ok(Some(Response::with_data(out)))
}

/// OpenBao's `removeValues`: every leaf (a non-object or an empty object) becomes `null`;
/// objects at `max_depth` are cut to `null` too (0 = no limit).
fn remove_values(map: &mut Data, max_depth: usize, depth: usize) {
    for v in map.values_mut() {
        let next = depth + 1;
        match v {
            Value::Object(inner) if !inner.is_empty() && (max_depth == 0 || next <= max_depth) => {
                remove_values(inner, max_depth, next);
            }
            other => *other = Value::Null,
        }
    }
}
