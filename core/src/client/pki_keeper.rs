//! [`CertKeeper`]: keeps one certificate and key from a PKI role current, in process, the way
//! a Vault Agent template with `pkiCert` would, but with no sidecar and no restart: it renews
//! at a fraction of the certificate's life (2/3 by default), retries with exponential backoff
//! while the CA cannot issue (sealed, unreachable, refusing), publishes every change, and hands
//! a TLS server the current certificate through rustls's [`ResolvesServerCert`] (or writes PEM
//! files for servers that read them).
//!
//! Time comes from the engine's clock, so tests drive renewals with the virtual clock.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use secrecy::ExposeSecret;

use super::pki::{IssuedCertificate, Pki};
use crate::error::{Error, ErrorCode, Result};
use crate::request::Data;

/// How a [`CertKeeper`] renews.
#[derive(Debug, Clone)]
pub struct KeeperOptions {
    /// Renew once this fraction of the certificate's life has passed (default 2/3).
    pub renew_fraction: f64,
    /// The first retry delay after a failed issue (default 1 s); doubled per failure.
    pub min_backoff: Duration,
    /// The longest retry delay (default 5 min).
    pub max_backoff: Duration,
}

impl Default for KeeperOptions {
    fn default() -> KeeperOptions {
        KeeperOptions {
            renew_fraction: 2.0 / 3.0,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What a [`CertKeeper`] reports to its subscribers.
#[derive(Debug, Clone)]
pub enum CertEvent {
    /// A new certificate is current.
    Issued {
        /// Its serial.
        serial_number: String,
        /// Its notAfter (unix seconds).
        expiration: i64,
    },
    /// Issuing failed; the keeper tries again after `retry_in` (the current certificate, if
    /// any, stays in use).
    Failed {
        /// The error's code (`Sealed`, `Unavailable`, ...).
        code: ErrorCode,
        /// The error's message (never key material).
        message: String,
        /// Consecutive failures so far.
        attempt: u32,
        /// When the next attempt is due.
        retry_in: Duration,
    },
}

/// What one [`CertKeeper::tick`] did.
#[derive(Debug, Clone)]
pub enum CertKeeperAction {
    /// The certificate is fresh; the next renewal is due in this long.
    Nothing(Duration),
    /// A new certificate was issued.
    Renewed(Arc<IssuedCertificate>),
    /// Issuing failed; retried after this long.
    Retrying(Duration),
}

#[derive(Default)]
struct State {
    current: Option<Arc<IssuedCertificate>>,
    /// Unix seconds when the current certificate is due for renewal.
    renew_at: i64,
    failures: u32,
    /// Unix seconds before which no retry is made.
    retry_at: i64,
}

/// Keeps a certificate from `issue/:role` current. Build it with [`Pki::keeper`].
pub struct CertKeeper {
    pki: Pki,
    role: String,
    common_name: String,
    params: Data,
    options: KeeperOptions,
    state: Mutex<State>,
    resolver: Arc<KeeperResolver>,
    events: tokio::sync::broadcast::Sender<CertEvent>,
}

impl fmt::Debug for CertKeeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertKeeper")
            .field("mount", &self.pki.mount())
            .field("role", &self.role)
            .field("common_name", &self.common_name)
            .finish_non_exhaustive()
    }
}

/// The rustls certificate resolver of a [`CertKeeper`]: always the current certificate.
#[derive(Default)]
pub struct KeeperResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl fmt::Debug for KeeperResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeeperResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for KeeperResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().and_then(|c| c.clone())
    }
}

impl KeeperResolver {
    /// The certificate a TLS handshake gets now.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().and_then(|c| c.clone())
    }
}

/// The rustls form of an issued certificate: its chain and signing key.
fn certified_key(cert: &IssuedCertificate) -> Result<CertifiedKey> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let mut chain: Vec<CertificateDer<'static>> = Vec::new();
    for pem_text in std::iter::once(&cert.certificate).chain(cert.ca_chain.iter()) {
        chain.push(
            CertificateDer::from_pem_slice(pem_text.as_bytes())
                .map_err(|_| Error::internal("issued certificate is not PEM"))?,
        );
    }
    let key_pem = cert
        .private_key_pem()
        .ok_or_else(|| Error::internal("issued certificate has no private key"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| Error::internal("issued private key is not PEM"))?;
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|_| Error::internal("issued private key is not usable by rustls"))?;
    Ok(CertifiedKey::new(chain, signer))
}

impl Pki {
    /// A keeper of one certificate for `common_name` from role `role` (`params` as for
    /// [`Pki::issue`]: `ttl`, `alt_names`, ...). Nothing is issued until the first
    /// [`CertKeeper::tick`] (or [`CertKeeper::spawn`]).
    pub fn keeper(
        &self,
        role: &str,
        common_name: &str,
        params: Data,
        options: KeeperOptions,
    ) -> CertKeeper {
        let (events, _) = tokio::sync::broadcast::channel(64);
        CertKeeper {
            pki: self.clone(),
            role: role.to_string(),
            common_name: common_name.to_string(),
            params,
            options,
            state: Mutex::new(State::default()),
            resolver: Arc::new(KeeperResolver::default()),
            events,
        }
    }
}

impl CertKeeper {
    fn now(&self) -> i64 {
        self.pki.now_unix()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state.lock().or_else(crate::util::unpoison)
    }

    /// The current certificate, if one was issued.
    pub fn current(&self) -> Option<Arc<IssuedCertificate>> {
        self.lock().ok().and_then(|s| s.current.clone())
    }

    /// Every change and failure, as it happens.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<CertEvent> {
        self.events.subscribe()
    }

    /// The rustls resolver that always answers the current certificate: give it to
    /// `ServerConfig::builder().with_no_client_auth().with_cert_resolver(..)` and the server
    /// picks up every renewal with no restart.
    pub fn resolver(&self) -> Arc<KeeperResolver> {
        self.resolver.clone()
    }

    /// Renew if due (or retry if a retry is due): one step, driven by the engine's clock.
    pub async fn tick(&self) -> Result<CertKeeperAction> {
        let now = self.now();
        {
            let s = self.lock()?;
            if s.failures > 0 && now < s.retry_at {
                return Ok(CertKeeperAction::Retrying(secs(s.retry_at - now)));
            }
            if s.failures == 0 && s.current.is_some() && now < s.renew_at {
                return Ok(CertKeeperAction::Nothing(secs(s.renew_at - now)));
            }
        }
        match self
            .pki
            .issue(&self.role, &self.common_name, self.params.clone())
            .await
            .and_then(|c| certified_key(&c).map(|k| (c, k)))
        {
            Ok((cert, key)) => {
                let cert = Arc::new(cert);
                let life = (cert.expiration - now).max(1) as f64;
                let renew_in = (life * self.options.renew_fraction.clamp(0.05, 1.0)) as i64;
                {
                    let mut s = self.lock()?;
                    s.current = Some(cert.clone());
                    s.renew_at = now + renew_in.max(1);
                    s.failures = 0;
                    s.retry_at = 0;
                }
                if let Ok(mut slot) = self.resolver.current.write() {
                    *slot = Some(Arc::new(key));
                }
                let _ = self.events.send(CertEvent::Issued {
                    serial_number: cert.serial_number.clone(),
                    expiration: cert.expiration,
                });
                Ok(CertKeeperAction::Renewed(cert))
            }
            Err(e) => {
                let (attempt, retry_in) = {
                    let mut s = self.lock()?;
                    s.failures = s.failures.saturating_add(1);
                    let factor = 2u32.saturating_pow(s.failures.saturating_sub(1).min(20));
                    let retry_in = self
                        .options
                        .min_backoff
                        .saturating_mul(factor)
                        .min(self.options.max_backoff);
                    s.retry_at = now + i64::try_from(retry_in.as_secs().max(1)).unwrap_or(1);
                    (s.failures, retry_in)
                };
                let _ = self.events.send(CertEvent::Failed {
                    code: e.code(),
                    message: e.message().to_string(),
                    attempt,
                    retry_in,
                });
                Ok(CertKeeperAction::Retrying(retry_in))
            }
        }
    }

    /// Run [`CertKeeper::tick`] in the background until the handle is dropped or aborted,
    /// sleeping (real time) until each next step is due.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let wait = match self.tick().await {
                    Ok(CertKeeperAction::Nothing(d) | CertKeeperAction::Retrying(d)) => d,
                    Ok(CertKeeperAction::Renewed(_)) => Duration::from_secs(1),
                    Err(_) => self.options.min_backoff,
                };
                tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
            }
        })
    }

    /// Write the current certificate (with its chain) and key as PEM files, replacing them
    /// atomically (write then rename); the key file is created owner-only on Unix.
    pub fn write_pem_files(&self, cert_path: &Path, key_path: &Path) -> Result<bool> {
        let Some(cert) = self.current() else {
            return Ok(false);
        };
        let mut chain = cert.certificate.clone();
        for c in &cert.ca_chain {
            chain.push('\n');
            chain.push_str(c);
        }
        chain.push('\n');
        write_atomic(cert_path, chain.as_bytes(), false)?;
        if let Some(k) = &cert.private_key {
            let mut key = zeroize::Zeroizing::new(k.expose_secret().to_string());
            key.push('\n');
            write_atomic(key_path, key.as_bytes(), true)?;
        }
        Ok(true)
    }
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n.max(0)).unwrap_or(0))
}

fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    use std::io::Write;
    let tmp: PathBuf = path.with_extension("tmp");
    let io = |e: std::io::Error| Error::internal(format!("writing `{}`: {e}", path.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
