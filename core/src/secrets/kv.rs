//! The KV secrets engine: version 1 (plain) and version 2 (versioned), chosen by the mount's
//! `options.version`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Engine;

pub(crate) mod v1;
pub(crate) mod v2;

/// The engine for a `kv` mount with these options.
pub(crate) fn new(options: &BTreeMap<String, String>) -> Arc<dyn Engine> {
    match options.get("version").map(String::as_str) {
        Some("2") => Arc::new(v2::KvV2),
        _ => Arc::new(v1::KvV1),
    }
}
