//! Audit devices enabled over the API (`sys/audit/:path`), which OpenBao allows only when the
//! configuration sets `unsafe_allow_api_audit_creation`. They are kept in an audit table behind
//! the barrier (`core/audit`), so they come back after a restart; devices from the
//! configuration are never stored there and cannot be disabled over the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::{AuditDevice, normalize_path};
use super::salt::Salt;
use crate::Strongroom;
use crate::error::{Error, Result};
use crate::request::Data;
use crate::storage::Backend;
use crate::util::params;

/// Where the table lives behind the barrier (OpenBao's path).
pub(crate) const TABLE_PATH: &str = "core/audit";

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredTable {
    #[serde(default)]
    entries: Vec<StoredDevice>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredDevice {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    options: BTreeMap<String, String>,
    #[serde(default)]
    local: bool,
}

impl StoredDevice {
    fn device(&self) -> Result<AuditDevice> {
        Ok(
            AuditDevice::from_config(&self.kind, &self.path, self.options.clone())?
                .with_description(self.description.clone()),
        )
    }
}

async fn load(storage: &dyn Backend) -> Result<StoredTable> {
    match storage.get(TABLE_PATH).await? {
        None => Ok(StoredTable::default()),
        Some(raw) => serde_json::from_slice(&raw)
            .map_err(|e| Error::internal("the stored audit table cannot be read").with_source(e)),
    }
}

async fn save(storage: &dyn Backend, table: &StoredTable) -> Result<()> {
    let raw = serde_json::to_vec(table)
        .map_err(|e| Error::internal("cannot encode the audit table").with_source(e))?;
    storage.put(TABLE_PATH, &raw).await
}

/// `POST sys/audit/:path {type, description, local, options}`.
pub(crate) async fn enable(sr: &Strongroom, path: &str, data: &Data) -> Result<()> {
    let i = &sr.inner;
    if !i.audit_api.allow_creation {
        return Err(Error::invalid_input(
            "cannot enable audit device via API; use declarative, config-based audit device management instead",
        ));
    }
    let path = crate::router::normalize_mount_path(path)?;
    let kind = params::string(data, "type")?.unwrap_or_default();
    let description = params::string(data, "description")?.unwrap_or_default();
    let local = params::bool(data, "local")?.unwrap_or(false);
    let options = options(data)?;
    if options.contains_key("prefix") && !i.audit_api.allow_prefixing {
        return Err(Error::invalid_input("audit log prefixing is not allowed"));
    }
    let device = AuditDevice::from_config(&kind, &path, options.clone())?
        .with_description(description.clone());
    let _guard = i.admin.lock().await;
    let mut table = load(i.storage.as_ref()).await?;
    // The broker refuses a taken or overlapping path before anything is opened.
    i.audit.add(device, Some(i.storage.as_ref())).await?;
    table.entries.push(StoredDevice {
        path: path.clone(),
        kind,
        description,
        options,
        local,
    });
    if let Err(e) = save(i.storage.as_ref(), &table).await {
        // Not stored, so not enabled: undo.
        let _ = i.audit.remove(&path);
        return Err(e);
    }
    tracing::info!(device = %path, "audit device enabled over the API");
    Ok(())
}

/// The `options` map, values as Go's weak decoding turns them into strings (OpenBao stores
/// `"hmac_accessor": false` as `"0"`).
fn options(data: &Data) -> Result<BTreeMap<String, String>> {
    let Some(map) = params::object(data, "options")? else {
        return Ok(BTreeMap::new());
    };
    Ok(map
        .iter()
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Bool(true) => "1".to_string(),
                serde_json::Value::Bool(false) => "0".to_string(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect())
}

/// `DELETE sys/audit/:path`. Devices from the configuration stay; an unknown path is a no-op
/// (as in OpenBao).
pub(crate) async fn disable(sr: &Strongroom, path: &str) -> Result<()> {
    let i = &sr.inner;
    let path = normalize_path(path);
    if i.audit_api.config_paths.contains(&path) {
        return Err(Error::invalid_input(
            "cannot disable configuration-managed audit device",
        ));
    }
    let _guard = i.admin.lock().await;
    let mut table = load(i.storage.as_ref()).await?;
    let before = table.entries.len();
    table.entries.retain(|e| normalize_path(&e.path) != path);
    if table.entries.len() == before {
        return Ok(());
    }
    save(i.storage.as_ref(), &table).await?;
    i.audit.remove(&path)?;
    // A device enabled again later at this path gets a new salt, as in OpenBao.
    i.storage.delete(&Salt::storage_key(&path)).await?;
    tracing::info!(device = %path, "audit device disabled over the API");
    Ok(())
}

/// After unseal: start the devices the table holds (those not running already). A device
/// that cannot start (its file cannot be opened) is logged and left out rather than keeping
/// the engine sealed.
pub(crate) async fn restore(sr: &Strongroom) -> Result<()> {
    let i = &sr.inner;
    let table = load(i.storage.as_ref()).await?;
    for stored in &table.entries {
        if i.audit.contains(&stored.path) {
            continue;
        }
        let started = match stored.device() {
            Ok(device) => i.audit.add(device, Some(i.storage.as_ref())).await,
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            tracing::error!(device = %stored.path, error = %e, "cannot start a stored audit device");
        }
    }
    Ok(())
}

/// What the configuration allows over the API, and which devices it manages.
#[derive(Debug, Clone, Default)]
pub(crate) struct ApiPolicy {
    /// `unsafe_allow_api_audit_creation`.
    pub allow_creation: bool,
    /// `allow_audit_log_prefixing`.
    pub allow_prefixing: bool,
    /// Paths of the devices from the configuration.
    pub config_paths: Vec<String>,
}
