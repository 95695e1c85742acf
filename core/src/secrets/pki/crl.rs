//! Each issuer's CRL, built incrementally: the revoked entries are read from storage once
//! (the first CRL request after the mount starts), then a revocation appends its entry in
//! memory and marks the issuer's CRL stale; the next CRL read re-signs from that list, with
//! no storage read, and later reads serve the cached DER/PEM.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::OffsetDateTime;

use super::crypto;
use super::engine::LoadedIssuer;
use super::store::{self, RevokedEntry};
use crate::error::{Error, Result};
use crate::secrets::EngineContext;
use crate::storage::{Backend, Page};

/// How long a CRL is valid (OpenBao's default `crl expiry`, 72h).
const CRL_LIFETIME: time::Duration = time::Duration::hours(72);

#[derive(Default)]
struct State {
    loaded: bool,
    /// Revoked entries by issuer id.
    revoked: HashMap<String, Vec<RevokedCertParams>>,
    /// Signed CRLs by issuer id.
    built: HashMap<String, (Arc<Vec<u8>>, Arc<String>)>,
    stale: HashSet<String>,
}

/// The CRL cache of one mount.
#[derive(Default)]
pub(crate) struct CrlCache {
    state: Mutex<State>,
    load: tokio::sync::Mutex<()>,
}

fn entry_params(e: &RevokedEntry) -> RevokedCertParams {
    RevokedCertParams {
        serial_number: SerialNumber::from_slice(&crypto::serial_bytes(&e.serial)),
        revocation_time: OffsetDateTime::from_unix_timestamp(e.revocation_time)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        reason_code: None,
        invalidity_date: None,
    }
}

impl CrlCache {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state.lock().or_else(crate::util::unpoison)
    }

    /// Read every revoked entry once.
    pub(crate) async fn ensure_loaded(&self, ctx: &EngineContext) -> Result<()> {
        if self.lock()?.loaded {
            return Ok(());
        }
        let _g = self.load.lock().await;
        if self.lock()?.loaded {
            return Ok(());
        }
        let mut revoked: HashMap<String, Vec<RevokedCertParams>> = HashMap::new();
        for k in ctx
            .storage
            .list(store::REVOKED_PREFIX, &Page::all())
            .await?
        {
            if let Some(e) =
                store::get::<RevokedEntry>(ctx, &format!("{}{k}", store::REVOKED_PREFIX)).await?
            {
                revoked
                    .entry(e.issuer_id.clone())
                    .or_default()
                    .push(entry_params(&e));
            }
        }
        let mut s = self.lock()?;
        s.revoked = revoked;
        s.built.clear();
        s.loaded = true;
        Ok(())
    }

    /// A new revocation (after it is stored).
    pub(crate) fn add(&self, e: &RevokedEntry) -> Result<()> {
        let mut s = self.lock()?;
        if s.loaded {
            s.revoked
                .entry(e.issuer_id.clone())
                .or_default()
                .push(entry_params(e));
        }
        s.stale.insert(e.issuer_id.clone());
        Ok(())
    }

    /// A revocation tidied away.
    pub(crate) fn remove(&self, serial: &str) -> Result<()> {
        let bytes = crypto::serial_bytes(serial);
        let mut s = self.lock()?;
        let mut touched = Vec::new();
        for (issuer, list) in s.revoked.iter_mut() {
            let before = list.len();
            list.retain(|p| p.serial_number.to_bytes() != bytes);
            if list.len() != before {
                touched.push(issuer.clone());
            }
        }
        s.stale.extend(touched);
        Ok(())
    }

    /// Every CRL is rebuilt at its next read (`crl/rotate`).
    pub(crate) fn invalidate(&self) -> Result<()> {
        let mut s = self.lock()?;
        s.built.clear();
        Ok(())
    }

    /// The issuer's CRL: cached, or re-signed from the in-memory list.
    pub(crate) async fn current(
        &self,
        ctx: &EngineContext,
        issuer: &LoadedIssuer,
    ) -> Result<(Arc<Vec<u8>>, Arc<String>)> {
        let id = issuer.entry.id.clone();
        let entries = {
            let s = self.lock()?;
            if !s.stale.contains(&id) {
                if let Some(b) = s.built.get(&id) {
                    return Ok(b.clone());
                }
            }
            s.revoked.get(&id).cloned().unwrap_or_default()
        };
        let signer = issuer
            .signer
            .as_ref()
            .ok_or_else(|| Error::invalid_input("issuer has no key to sign its CRL with"))?;
        let number_path = format!("{}{id}", store::CRL_PREFIX);
        let number: u64 = store::get::<u64>(ctx, &number_path).await?.unwrap_or(0) + 1;
        store::put(ctx, &number_path, &number).await?;
        let now = ctx
            .clock
            .now()
            .replace_nanosecond(0)
            .unwrap_or(ctx.clock.now());
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + CRL_LIFETIME,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: entries,
            key_identifier_method: KeyIdMethod::PreSpecified(crypto::key_id(
                &crypto::spki_public_key(&issuer.info.spki_der)?,
            )),
        };
        let crl = params
            .signed_by(signer)
            .map_err(|e| Error::internal(format!("error building CRL: {e}")))?;
        let der = crl.der().to_vec();
        let pem = crypto::pem_block("X509 CRL", &der);
        let built = (Arc::new(der), Arc::new(pem));
        let mut s = self.lock()?;
        s.built.insert(id.clone(), built.clone());
        s.stale.remove(&id);
        Ok(built)
    }
}
