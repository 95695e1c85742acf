//! `<mount>/delete/<key>`, `undelete/<key>` and `destroy/<key>`: act on listed versions.

use std::collections::BTreeSet;

use super::layout::{
    KeyMeta, MAX_ATTEMPTS, VersionMeta, commit, contention, deletion_time, encode, load_config,
    load_meta, meta_key, now_nanos, version_key,
};
use crate::error::{Error, Result};
use crate::request::{Data, Response};
use crate::secrets::EngineContext;
use crate::storage::TxnOp;
use crate::util::params;

/// The `versions` parameter (numbers, numeric strings or `"1,2"`), deduplicated. `missing` is
/// the text for an empty list (OpenBao spells it differently per endpoint).
fn versions(data: &Data, missing: &str) -> Result<BTreeSet<u64>> {
    let list = params::int_list(data, "versions")?;
    if list.is_empty() {
        return Err(Error::invalid_input(missing));
    }
    list.into_iter()
        .map(|n| {
            u64::try_from(n)
                .map_err(|_| Error::invalid_input(format!("invalid version number `{n}`")))
        })
        .collect()
}

/// `POST delete/<key>` `{versions}`: soft-delete those versions (now).
pub(super) async fn delete(ctx: &EngineContext, key: &str, req: &Data) -> Result<Option<Response>> {
    let wanted = versions(req, "No version number provided")?;
    set_deletion(
        ctx,
        key,
        &wanted,
        |_, now| Ok(Some(now)),
        |vm, now, _| !vm.is_gone(now),
    )
    .await
}

/// `POST undelete/<key>` `{versions}`: clear the deletion of those versions (re-arming
/// `delete_version_after` from now when it applies). Destroyed versions stay destroyed.
pub(super) async fn undelete(
    ctx: &EngineContext,
    key: &str,
    req: &Data,
) -> Result<Option<Response>> {
    let wanted = versions(req, "No version number provided")?;
    let config = load_config(&ctx.storage).await?;
    set_deletion(
        ctx,
        key,
        &wanted,
        |meta, now| deletion_time(now, &config, meta),
        |vm, _, deletion| !vm.destroyed && vm.deletion_time != deletion,
    )
    .await
}

/// Set `deletion_time` of the `wanted` versions for which `applies` holds to what `target`
/// computes, in one metadata write (retried when another writer got in between).
async fn set_deletion(
    ctx: &EngineContext,
    key: &str,
    wanted: &BTreeSet<u64>,
    target: impl Fn(&KeyMeta, i64) -> Result<Option<i64>>,
    applies: impl Fn(&VersionMeta, i64, Option<i64>) -> bool,
) -> Result<Option<Response>> {
    for _ in 0..MAX_ATTEMPTS {
        let (prev, Some(mut meta)) = load_meta(&ctx.storage, key).await? else {
            return Ok(None);
        };
        let now = now_nanos(ctx);
        let deletion = target(&meta, now)?;
        let mut changed = false;
        for n in wanted {
            if let Some(vm) = meta.versions.get_mut(n) {
                if applies(vm, now, deletion) {
                    vm.deletion_time = deletion;
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(None);
        }
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

/// `POST destroy/<key>` `{versions}`: remove those versions' data for good and mark them
/// `destroyed`.
pub(super) async fn destroy(
    ctx: &EngineContext,
    key: &str,
    req: &Data,
) -> Result<Option<Response>> {
    let wanted = versions(req, "no version number provided")?;
    for _ in 0..MAX_ATTEMPTS {
        let (prev, Some(mut meta)) = load_meta(&ctx.storage, key).await? else {
            return Ok(None);
        };
        let mut destroyed = Vec::new();
        for n in &wanted {
            if let Some(vm) = meta.versions.get_mut(n) {
                if !vm.destroyed {
                    vm.destroyed = true;
                    destroyed.push(*n);
                }
            }
        }
        if destroyed.is_empty() {
            return Ok(None);
        }
        meta.updated_time = Some(now_nanos(ctx));
        let mut ops = Vec::with_capacity(destroyed.len() + 1);
        ops.push(TxnOp::Put {
            key: meta_key(key),
            value: encode(&meta)?,
        });
        ops.extend(destroyed.into_iter().map(|n| TxnOp::Delete {
            key: version_key(key, n),
        }));
        if commit(&ctx.storage, key, prev, ops).await? {
            return Ok(None);
        }
    }
    Err(contention())
}
