//! KV version 2: versioned secrets with check-and-set, soft delete, undelete, destroy, per-key
//! metadata and mount configuration, as OpenBao's `kv` engine with `options.version = "2"`.
//!
//! Routes (relative to the mount): `config`, `data/<key>`, `metadata/<key>`,
//! `detailed-metadata/<prefix>`, `delete/<key>`, `undelete/<key>`, `destroy/<key>`,
//! `subkeys/<key>`. Anything else answers 404 with OpenBao's "Invalid path for a versioned K/V
//! secrets engine" warning. The storage layout is described in [`layout`].

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::request::{Operation, Request, Response};
use crate::secrets::{Engine, EngineContext};
use crate::storage::Backend;

mod config;
mod custom_metadata;
mod data;
mod layout;
#[cfg(feature = "bench-internals")]
pub(crate) use layout::decode_data;
mod metadata;
pub(crate) use data::VersionRead;
mod subkeys;
mod versions;

#[cfg(test)]
mod tests;

/// A KV v2 mount. Stateless: everything lives in the mount's storage view.
#[derive(Default)]
pub(crate) struct KvV2;

/// What a request path addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Config,
    Data(&'a str),
    Metadata(&'a str),
    DetailedMetadata(&'a str),
    Delete(&'a str),
    Undelete(&'a str),
    Destroy(&'a str),
    Subkeys(&'a str),
    /// `data`, `metadata`, `delete`, `undelete`, `destroy` without a key.
    Root,
    /// Not a KV v2 path (for example a KV v1-style `foo`).
    Invalid,
}

fn route(path: &str) -> Route<'_> {
    if path == "config" {
        return Route::Config;
    }
    if matches!(
        path,
        "data" | "metadata" | "delete" | "undelete" | "destroy"
    ) {
        return Route::Root;
    }
    let Some((head, rest)) = path.split_once('/') else {
        return Route::Invalid;
    };
    match head {
        "data" => Route::Data(rest),
        "metadata" => Route::Metadata(rest),
        "detailed-metadata" => Route::DetailedMetadata(rest),
        "delete" => Route::Delete(rest),
        "undelete" => Route::Undelete(rest),
        "destroy" => Route::Destroy(rest),
        "subkeys" => Route::Subkeys(rest),
        _ => Route::Invalid,
    }
}

/// OpenBao's 404 answer with a warning and no data.
fn warning_404(text: String) -> Response {
    Response {
        warnings: vec![text],
        kind: crate::request::ResponseKind::NotFound,
        ..Response::default()
    }
}

/// The warning for a path that is not a KV v2 route, naming the `bao kv` subcommand to use.
fn invalid_path(op: Operation) -> Response {
    let sub = match op {
        Operation::Create | Operation::Update => "put",
        Operation::Patch => "patch",
        Operation::Read => "get",
        Operation::List => "list",
        Operation::Delete => "delete",
    };
    warning_404(format!(
        "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the OpenBao CLI, use 'bao kv {sub}' for this operation."
    ))
}

impl KvV2 {
    /// Version `version` (`None`: the latest) of `key` as decoded from storage, for the typed
    /// API's fast path: what `GET data/<key>` answers, without building the answer's maps.
    pub(crate) async fn read_version(
        &self,
        ctx: &EngineContext,
        key: &str,
        version: Option<u64>,
    ) -> Result<VersionRead> {
        layout::check_key(key)?;
        data::read_version(ctx, key, version).await
    }
}

#[async_trait]
impl Engine for KvV2 {
    async fn handle(&self, ctx: &EngineContext, req: &Request) -> Result<Option<Response>> {
        use Operation::{Create, Delete, List, Patch, Read, Update};
        let r = route(&req.path);
        if let Some(key) = key_of(r) {
            layout::check_key(key)?;
        }
        let d = &req.data;
        match (r, req.operation) {
            (Route::Config, Read) => config::read(ctx).await,
            (Route::Config, Create | Update) => config::write(ctx, d).await,

            (Route::Data(k), Read) => data::read(ctx, k, d).await,
            (Route::Data(k), Create | Update) => data::write(ctx, k, d).await,
            (Route::Data(k), Patch) => data::patch(ctx, k, d).await,
            (Route::Data(k), Delete) => data::delete(ctx, k).await,

            (Route::Metadata(k), Read) => metadata::read(ctx, k).await,
            (Route::Metadata(k), Create | Update) => metadata::write(ctx, k, d).await,
            (Route::Metadata(k), Patch) => metadata::patch(ctx, k, d).await,
            (Route::Metadata(k), Delete) => metadata::delete(ctx, k).await,
            (Route::Metadata(k), List) => metadata::list(ctx, k, d, false).await,
            (Route::DetailedMetadata(k), List) => metadata::list(ctx, k, d, true).await,

            (Route::Delete(k), Create | Update) => versions::delete(ctx, k, d).await,
            (Route::Undelete(k), Create | Update) => versions::undelete(ctx, k, d).await,
            (Route::Destroy(k), Create | Update) => versions::destroy(ctx, k, d).await,
            (Route::Subkeys(k), Read) => subkeys::read(ctx, k, d).await,

            (Route::Root, _) => Ok(Some(warning_404(
                "Non-listing operations on the root of a K/V v2 mount are not supported."
                    .to_string(),
            ))),
            (Route::Invalid, op) => Ok(Some(invalid_path(op))),
            _ => Err(Error::unsupported_operation()),
        }
    }

    fn as_kv_v2(&self) -> Option<&KvV2> {
        Some(self)
    }

    async fn exists(&self, ctx: &EngineContext, req: &Request) -> Result<Option<bool>> {
        // OpenBao has existence checks on `data/` and `metadata/` only; `config` and the
        // version endpoints are always updates.
        match route(&req.path) {
            Route::Data(key) | Route::Metadata(key) => {
                if key.is_empty() {
                    return Ok(Some(false));
                }
                layout::check_key(key)?;
                let found = ctx.storage.get(&layout::meta_key(key)).await?.is_some();
                Ok(Some(found))
            }
            _ => Ok(None),
        }
    }
}

/// The secret key (or list prefix) a route addresses.
fn key_of(r: Route<'_>) -> Option<&str> {
    match r {
        Route::Data(k)
        | Route::Metadata(k)
        | Route::DetailedMetadata(k)
        | Route::Delete(k)
        | Route::Undelete(k)
        | Route::Destroy(k)
        | Route::Subkeys(k) => Some(k),
        Route::Config | Route::Root | Route::Invalid => None,
    }
}
