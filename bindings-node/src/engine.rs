//! `Config`, `VirtualClock` and `Strongroom`: opening a store and its lifecycle.

use std::sync::Arc;

use napi::bindgen_prelude::Either;
use napi_derive::napi;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::client::Client;
use crate::convert::{Result, Secret, call, duration};

/// Options of `Config.dev()`.
#[napi(object)]
pub struct DevOptions {
    /// Use this root token id instead of a generated one.
    pub root_token_id: Option<String>,
    /// Mount `secret/` as KV version 1 instead of 2.
    pub kv_v1: Option<bool>,
}

/// How to open a store: `Config.dev()`, `Config.memory()`, `Config.sqlite(path)`,
/// `Config.postgres(url)`; then `.unsealKeyFile(path)` and friends (each returns a new `Config`).
#[napi]
#[derive(Clone)]
pub struct Config {
    inner: strongroom::Config,
}

#[napi]
impl Config {
    /// Dev mode: in memory, unsealed at open, `secret/` as KV v2, a root token.
    #[napi(factory)]
    pub fn dev(options: Option<DevOptions>) -> Config {
        let o = options.unwrap_or(DevOptions {
            root_token_id: None,
            kv_v1: None,
        });
        Config {
            inner: strongroom::Config::dev_with(strongroom::DevOptions {
                root_token_id: o.root_token_id.map(SecretString::from),
                kv_v1: o.kv_v1.unwrap_or(false),
            }),
        }
    }

    /// In-memory storage (initialise and unseal it yourself).
    #[napi(factory)]
    pub fn memory() -> Config {
        Config {
            inner: strongroom::Config::memory(),
        }
    }

    /// A SQLite file, created if missing.
    #[napi(factory)]
    pub fn sqlite(path: String) -> Config {
        Config {
            inner: strongroom::Config::sqlite(path),
        }
    }

    /// A PostgreSQL database (`postgres://user@host:5432/db`).
    #[napi(factory)]
    pub fn postgres(url: String) -> Config {
        Config {
            inner: strongroom::Config::postgres(url),
        }
    }

    /// Unseal at open with the key in this file.
    #[napi]
    pub fn unseal_key_file(&self, path: String) -> Config {
        Config {
            inner: self.inner.clone().unseal_key_file(path),
        }
    }

    /// Unseal at open with the key in this environment variable.
    #[napi]
    pub fn unseal_key_env(&self, name: String) -> Config {
        Config {
            inner: self.inner.clone().unseal_key_env(name),
        }
    }

    /// Use this virtual clock (tests: leases and TTLs without waiting).
    #[napi]
    pub fn clock(&self, clock: &VirtualClock) -> Config {
        Config {
            inner: self.inner.clone().clock(Arc::new(clock.inner.clone())),
        }
    }

    /// A description with secrets redacted (the core's `Debug` hides a PostgreSQL URL).
    #[napi]
    pub fn describe(&self) -> String {
        format!("Config({:?})", self.inner)
    }
}

/// A clock that only moves when told to (`advance`).
#[napi]
pub struct VirtualClock {
    inner: strongroom::VirtualClock,
}

#[napi]
impl VirtualClock {
    /// A clock at the current time that stands still.
    #[napi(constructor)]
    #[allow(
        clippy::new_without_default,
        reason = "a JavaScript constructor, not a Rust API"
    )]
    pub fn new() -> VirtualClock {
        VirtualClock {
            inner: strongroom::VirtualClock::new(),
        }
    }

    /// Move the clock forward by seconds or by text like `"61m"`.
    #[napi]
    pub fn advance(&self, by: Either<f64, String>) -> Result<()> {
        self.inner.advance(duration(by)?);
        Ok(())
    }
}

/// The result of `init()`: shown once, never stored.
#[napi(object, object_from_js = false)]
pub struct InitResult {
    /// The unseal key shares, hex.
    pub keys: Vec<Secret>,
    /// The same shares, base64.
    pub keys_base64: Vec<Secret>,
    /// The initial root token.
    pub root_token: Secret,
}

/// What `runExpiry()` did.
#[napi(object, object_from_js = false)]
pub struct ExpiryReport {
    /// Whether this engine held the expiry leadership.
    pub leader: bool,
    /// Leases revoked.
    pub revoked: u32,
    /// Revocations that failed and will be retried.
    pub retried: u32,
    /// Leases given up as irrevocable.
    pub irrevocable: u32,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The engine: open it, initialise / unseal / seal it, and make clients.
#[napi]
pub struct Strongroom {
    inner: strongroom::Strongroom,
}

fn seal_status(s: strongroom::SealStatus) -> Value {
    Value::Object(s.to_json())
}

#[napi]
impl Strongroom {
    /// Open an engine on the configured storage.
    #[napi]
    pub async fn open(config: &Config) -> Result<Strongroom> {
        let inner = call(strongroom::Strongroom::open(config.inner.clone())).await?;
        Ok(Strongroom { inner })
    }

    /// Whether the store has been initialised.
    #[napi]
    pub async fn is_initialized(&self) -> Result<bool> {
        call(self.inner.is_initialized()).await
    }

    /// Whether the engine is sealed.
    #[napi]
    pub fn is_sealed(&self) -> bool {
        self.inner.is_sealed()
    }

    /// Initialise a new store with `shares` unseal key shares, `threshold` of which unseal it.
    #[napi]
    pub async fn init(&self, shares: Option<u32>, threshold: Option<u32>) -> Result<InitResult> {
        let r = call(self.inner.init(
            u64::from(shares.unwrap_or(1)),
            u64::from(threshold.unwrap_or(1)),
        ))
        .await?;
        Ok(InitResult {
            keys: r.keys.iter().map(Secret::of).collect(),
            keys_base64: r.keys_base64.iter().map(Secret::of).collect(),
            root_token: Secret::of(&r.root_token),
        })
    }

    /// Initialise with one share written to `path` (mode 0600, must not exist) and unseal.
    /// Resolves to the root token.
    #[napi]
    pub async fn init_with_key_file(&self, path: String) -> Result<Secret> {
        let t = call(self.inner.init_with_key_file(path)).await?;
        Ok(Secret::of(&t))
    }

    /// Submit one unseal key share; resolves to the seal status.
    #[napi(ts_args_type = "key: string | Secret")]
    pub async fn unseal(&self, key: String) -> Result<Value> {
        let key = SecretString::from(key);
        call(self.inner.unseal(key.expose_secret()))
            .await
            .map(seal_status)
    }

    /// The seal status (`sealed`, `initialized`, `progress`, ...).
    #[napi]
    pub async fn seal_status(&self) -> Result<Value> {
        call(self.inner.seal_status()).await.map(seal_status)
    }

    /// Seal: drop every key from memory.
    #[napi]
    pub async fn seal(&self) -> Result<()> {
        call(self.inner.seal()).await
    }

    /// Stop the engine: refuse new calls, finish the ones in flight, give up leadership.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        call(self.inner.shutdown()).await
    }

    /// Run the lease expiry work that is due now (the background runner does this itself).
    #[napi]
    pub async fn run_expiry(&self) -> Result<ExpiryReport> {
        let r = call(self.inner.run_expiry()).await?;
        Ok(ExpiryReport {
            leader: r.leader,
            revoked: count(r.revoked),
            retried: count(r.retried),
            irrevocable: count(r.irrevocable),
        })
    }

    /// The root token of a dev-mode engine; `null` otherwise.
    #[napi]
    pub fn dev_root_token(&self) -> Option<Secret> {
        self.inner.dev_root_token().as_ref().map(Secret::of)
    }

    /// A client that makes calls with `token`.
    #[napi(ts_args_type = "token: string | Secret")]
    pub fn client(&self, token: String) -> Client {
        Client::new(self.inner.client(token))
    }

    /// Log in with userpass at `mount`; resolves to a client holding the new token.
    #[napi(ts_args_type = "mount: string, username: string, password: string | Secret")]
    pub async fn login_userpass(
        &self,
        mount: String,
        username: String,
        password: String,
    ) -> Result<Client> {
        let password = SecretString::from(password);
        call(
            self.inner
                .login_userpass(&mount, &username, password.expose_secret()),
        )
        .await
        .map(Client::new)
    }

    /// Log in with AppRole at `mount`.
    #[napi(ts_args_type = "mount: string, roleId: string, secretId: string | Secret")]
    pub async fn login_approle(
        &self,
        mount: String,
        role_id: String,
        secret_id: String,
    ) -> Result<Client> {
        let secret_id = SecretString::from(secret_id);
        call(
            self.inner
                .login_approle(&mount, &role_id, secret_id.expose_secret()),
        )
        .await
        .map(Client::new)
    }

    /// Log in with a Kubernetes service-account JWT at `mount`.
    #[napi(ts_args_type = "mount: string, role: string, jwt: string | Secret")]
    pub async fn login_kubernetes(
        &self,
        mount: String,
        role: String,
        jwt: String,
    ) -> Result<Client> {
        let jwt = SecretString::from(jwt);
        call(
            self.inner
                .login_kubernetes(&mount, &role, jwt.expose_secret()),
        )
        .await
        .map(Client::new)
    }
}
