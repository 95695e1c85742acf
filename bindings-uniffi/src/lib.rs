//! Strongroom for Kotlin, Swift and Python through [uniffi](https://mozilla.github.io/uniffi-rs):
//! the engine's public surface (docs/uniffi.md, /BINDINGS.md's one surface) as uniffi
//! proc-macro exports. `uniffi-bindgen` (built from this crate, so the generator matches the
//! runtime) turns the cdylib into Kotlin, Swift and Python sources.
//!
//! Every call wraps one call of the core; no business logic lives here. Calls that wait are
//! `async` (`async_runtime = "tokio"`): Kotlin `suspend`, Swift `async`, Python coroutines.
//! Each runs on the library's own multi-thread Tokio runtime, whatever executor awaits it.
//! Errors are [`StrongroomError`], one variant per core `ErrorCode` (generated from the
//! core's table). Secret values are [`Secret`] objects whose `Debug`/`Display` (Python
//! `repr`/`str`, Kotlin/Swift `toString`/`description`) are redacted; `reveal()` gives them.
#![allow(
    unsafe_code,
    reason = "uniffi's scaffolding macros emit the extern \"C\" functions; this crate writes no unsafe block"
)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod client;
mod error;
mod leases;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::runtime::Runtime;

pub use client::{
    Auth, CiphertextItem, Client, Database, DbCredential, ItemError, Kv, KvMetadata, KvSecret,
    KvVersionState, PlaintextItem, Sys, Transit,
};
pub use error::StrongroomError;
pub use leases::{LeaseDetails, LeaseEvent, LeaseListener, Leases, RenewedLease, Subscription};

uniffi::setup_scaffolding!();

/// What every fallible call returns.
pub type Result<T, E = StrongroomError> = std::result::Result<T, E>;

impl From<strongroom::Error> for StrongroomError {
    fn from(e: strongroom::Error) -> StrongroomError {
        StrongroomError::of(
            e.code().as_u32(),
            e.code().name().to_string(),
            e.message().to_string(),
        )
    }
}

impl std::fmt::Display for StrongroomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.parts().1)
    }
}

impl std::error::Error for StrongroomError {}

pub(crate) fn invalid_input(message: impl Into<String>) -> StrongroomError {
    strongroom::Error::invalid_input(message).into()
}

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The library's runtime, built on first use.
pub(crate) fn runtime() -> Result<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("strongroom-uniffi")
                .build()
                .map_err(|e| format!("could not start the strongroom runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| strongroom::Error::internal(e.clone()).into())
}

/// Run one core future on the library's runtime and wait for it from whatever executor the
/// foreign side polls with.
pub(crate) async fn run<T: Send + 'static>(
    fut: impl Future<Output = strongroom::Result<T>> + Send + 'static,
) -> Result<T> {
    match runtime()?.spawn(fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => Err(strongroom::Error::internal(if e.is_panic() {
            "the call panicked inside the library"
        } else {
            "the call was cancelled"
        })
        .into()),
    }
}

/// A JSON object given as text (`None` or `""`: an empty object).
pub(crate) fn parse_data(json: Option<String>, what: &str) -> Result<strongroom::Data> {
    match json.as_deref().map(str::trim) {
        None | Some("") => Ok(strongroom::Data::new()),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => Err(invalid_input(format!("`{what}` must be a JSON object"))),
            Err(e) => Err(invalid_input(format!("`{what}` is not valid JSON: {e}"))),
        },
    }
}

/// JSON text of a value the library made (cannot fail for `serde_json::Value`).
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

// ---- secrets ----

/// A secret value (a token, a password, a plaintext, KV data as JSON): `reveal()` gives it;
/// `Debug`/`Display` (Python `repr`/`str`, Kotlin `toString`, Swift `description`) never
/// show it. Wiped from memory when the last reference goes.
#[derive(uniffi::Object)]
#[uniffi::export(Debug, Display)]
pub struct Secret(secrecy::SecretSlice<u8>);

impl Secret {
    pub(crate) fn new(bytes: Vec<u8>) -> Arc<Secret> {
        Arc::new(Secret(bytes.into()))
    }

    pub(crate) fn text(s: &str) -> Arc<Secret> {
        Secret::new(s.as_bytes().to_vec())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[uniffi::export]
impl Secret {
    /// A secret made on this side (to hand to calls that take one).
    #[uniffi::constructor]
    pub fn from_text(text: String) -> Arc<Secret> {
        Secret::new(text.into_bytes())
    }

    /// The value as text (`invalid_input` when it is not UTF-8: use `reveal_bytes`).
    pub fn reveal(&self) -> Result<String> {
        std::str::from_utf8(self.0.expose_secret())
            .map(str::to_string)
            .map_err(|_| invalid_input("the secret is not UTF-8 text; use reveal_bytes"))
    }

    /// The value as bytes.
    pub fn reveal_bytes(&self) -> Vec<u8> {
        self.0.expose_secret().to_vec()
    }
}

// ---- configs and the clock ----

/// A clock that moves only when told to (`advance`): leases and TTLs in tests without
/// waiting. Give it to `Config.with_clock`, then `Strongroom.run_expiry` after `advance`.
#[derive(uniffi::Object)]
pub struct VirtualClock(strongroom::VirtualClock);

#[uniffi::export]
impl VirtualClock {
    /// A clock at the current time.
    #[uniffi::constructor]
    pub fn new() -> Arc<VirtualClock> {
        Arc::new(VirtualClock(strongroom::VirtualClock::new()))
    }

    /// Move forward by `seconds`.
    pub fn advance(&self, seconds: u64) {
        self.0.advance(Duration::from_secs(seconds));
    }
}

/// How to open a store. Immutable: `with_*` return a new config.
#[derive(uniffi::Object)]
pub struct Config(strongroom::Config);

#[uniffi::export]
impl Config {
    /// Dev mode: in memory, unsealed at open, `secret/` as KV v2, a root token
    /// (`Strongroom.dev_root_token`).
    #[uniffi::constructor]
    pub fn dev() -> Arc<Config> {
        Arc::new(Config(strongroom::Config::dev()))
    }

    /// In-memory storage: initialise and unseal it yourself.
    #[uniffi::constructor]
    pub fn memory() -> Arc<Config> {
        Arc::new(Config(strongroom::Config::memory()))
    }

    /// A SQLite file, created if missing.
    #[uniffi::constructor]
    pub fn sqlite(path: String) -> Arc<Config> {
        Arc::new(Config(strongroom::Config::sqlite(path)))
    }

    /// A PostgreSQL database (`postgres://user@host:5432/db`).
    #[uniffi::constructor]
    pub fn postgres(url: String) -> Arc<Config> {
        Arc::new(Config(strongroom::Config::postgres(url)))
    }

    /// This config, unsealing at open with the key in this file (written by
    /// `Strongroom.init_with_key_file`).
    pub fn with_unseal_key_file(&self, path: String) -> Arc<Config> {
        Arc::new(Config(self.0.clone().unseal_key_file(path)))
    }

    /// This config, with a virtual clock.
    pub fn with_clock(&self, clock: Arc<VirtualClock>) -> Arc<Config> {
        Arc::new(Config(self.0.clone().clock(Arc::new(clock.0.clone()))))
    }
}

// ---- the engine ----

/// What `Strongroom.init` hands back once: the unseal key shares and the root token.
#[derive(uniffi::Record)]
pub struct InitResult {
    /// The unseal key shares, hex.
    pub keys: Vec<Arc<Secret>>,
    /// The same shares, base64.
    pub keys_base64: Vec<Arc<Secret>>,
    /// The initial root token.
    pub root_token: Arc<Secret>,
}

/// Where unsealing stands.
#[derive(uniffi::Record)]
pub struct SealStatus {
    /// Whether the store has been initialised.
    pub initialized: bool,
    /// Whether it is still sealed.
    pub sealed: bool,
    /// Shares needed.
    pub threshold: u8,
    /// Shares made.
    pub shares: u8,
    /// Shares given so far.
    pub progress: u64,
}

/// An open engine. Safe to use from many threads at once.
#[derive(uniffi::Object)]
pub struct Strongroom(strongroom::Strongroom);

impl Strongroom {
    fn core(&self) -> strongroom::Strongroom {
        self.0.clone()
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Strongroom {
    /// Open an engine on the configured storage.
    #[uniffi::constructor]
    pub async fn open(config: Arc<Config>) -> Result<Arc<Strongroom>> {
        let cfg = config.0.clone();
        let sr = run(strongroom::Strongroom::open(cfg)).await?;
        Ok(Arc::new(Strongroom(sr)))
    }

    /// Stop the engine: refuse new calls, finish the ones in flight. Clients made from it
    /// fail from then on. (Named as in the core: `close` is the handle release uniffi
    /// generates for Kotlin's `AutoCloseable`.)
    pub async fn shutdown(&self) -> Result<()> {
        let sr = self.core();
        run(async move { sr.shutdown().await }).await
    }

    /// Whether the store has been initialised.
    pub async fn is_initialized(&self) -> Result<bool> {
        let sr = self.core();
        run(async move { sr.is_initialized().await }).await
    }

    /// Whether the engine is sealed.
    pub fn is_sealed(&self) -> bool {
        self.0.is_sealed()
    }

    /// Initialise a new store with `shares` key shares, `threshold` of which unseal it.
    pub async fn init(&self, shares: u64, threshold: u64) -> Result<InitResult> {
        let sr = self.core();
        let init = run(async move { sr.init(shares, threshold).await }).await?;
        let list = |v: &[secrecy::SecretString]| {
            v.iter()
                .map(|k| Secret::text(k.expose_secret()))
                .collect::<Vec<_>>()
        };
        Ok(InitResult {
            keys: list(&init.keys),
            keys_base64: list(&init.keys_base64),
            root_token: Secret::text(init.root_token.expose_secret()),
        })
    }

    /// Initialise with one key share written to `key_path` (mode 0600, must not exist) and
    /// unseal; the root token comes back.
    pub async fn init_with_key_file(&self, key_path: String) -> Result<Arc<Secret>> {
        let sr = self.core();
        let token = run(async move { sr.init_with_key_file(key_path).await }).await?;
        Ok(Secret::text(token.expose_secret()))
    }

    /// Submit one unseal key share (hex or base64).
    pub async fn unseal(&self, key: Arc<Secret>) -> Result<SealStatus> {
        let sr = self.core();
        let key = key.reveal()?;
        let s = run(async move { sr.unseal(&key).await }).await?;
        Ok(SealStatus {
            initialized: s.initialized,
            sealed: s.sealed,
            threshold: s.threshold,
            shares: s.shares,
            progress: s.progress as u64,
        })
    }

    /// Seal: drop every key from memory.
    pub async fn seal(&self) -> Result<()> {
        let sr = self.core();
        run(async move { sr.seal().await }).await
    }

    /// The root token of a dev-mode engine (`None` when it is not one).
    pub fn dev_root_token(&self) -> Option<Arc<Secret>> {
        self.0
            .dev_root_token()
            .map(|t| Secret::text(t.expose_secret()))
    }

    /// Run the lease expiry work that is due now (with a virtual clock, after `advance`).
    pub async fn run_expiry(&self) -> Result<()> {
        let sr = self.core();
        run(async move { sr.run_expiry().await.map(|_| ()) }).await
    }

    /// A client that makes calls with `token`.
    pub fn client(&self, token: Arc<Secret>) -> Result<Arc<Client>> {
        Ok(Client::new(self.0.client(token.reveal()?)))
    }

    /// Log in with userpass at `mount`: a client holding the new token.
    pub async fn login_userpass(
        &self,
        mount: String,
        username: String,
        password: Arc<Secret>,
    ) -> Result<Arc<Client>> {
        let sr = self.core();
        let password = password.reveal()?;
        let c = run(async move { sr.login_userpass(&mount, &username, &password).await }).await?;
        Ok(Client::new(c))
    }

    /// Log in with AppRole at `mount`.
    pub async fn login_approle(
        &self,
        mount: String,
        role_id: String,
        secret_id: Arc<Secret>,
    ) -> Result<Arc<Client>> {
        let sr = self.core();
        let secret_id = secret_id.reveal()?;
        let c = run(async move { sr.login_approle(&mount, &role_id, &secret_id).await }).await?;
        Ok(Client::new(c))
    }

    /// Log in with a Kubernetes service-account JWT at `mount`.
    pub async fn login_kubernetes(
        &self,
        mount: String,
        role: String,
        jwt: Arc<Secret>,
    ) -> Result<Arc<Client>> {
        let sr = self.core();
        let jwt = jwt.reveal()?;
        let c = run(async move { sr.login_kubernetes(&mount, &role, &jwt).await }).await?;
        Ok(Client::new(c))
    }
}
