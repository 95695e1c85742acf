//! `Config`, `VirtualClock` and `Strongroom`: opening a store and its lifecycle.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use secrecy::ExposeSecret;

use crate::client::Client;
use crate::convert::{data_to_py, duration_arg, secret, token_arg};
use crate::runtime::{Flavour, Local, runtime};

/// How to open a store: `Config.dev()`, `Config.memory()`, `Config.sqlite(path)`,
/// `Config.postgres(url)`; then `.unseal_key_file(path)` and friends.
#[pyclass(frozen, module = "strongroom")]
#[derive(Clone)]
pub(crate) struct Config(strongroom::Config);

#[pymethods]
impl Config {
    /// Dev mode: in memory, unsealed at open, `secret/` as KV v2, a root token.
    #[staticmethod]
    #[pyo3(signature = (*, root_token_id=None, kv_v1=false))]
    fn dev(root_token_id: Option<String>, kv_v1: bool) -> Config {
        Config(strongroom::Config::dev_with(strongroom::DevOptions {
            root_token_id: root_token_id.map(secrecy::SecretString::from),
            kv_v1,
        }))
    }

    /// In-memory storage (initialise and unseal it yourself).
    #[staticmethod]
    fn memory() -> Config {
        Config(strongroom::Config::memory())
    }

    /// A SQLite file, created if missing.
    #[staticmethod]
    fn sqlite(path: std::path::PathBuf) -> Config {
        Config(strongroom::Config::sqlite(path))
    }

    /// A PostgreSQL database (`postgres://user@host:5432/db`).
    #[staticmethod]
    fn postgres(url: String) -> Config {
        Config(strongroom::Config::postgres(url))
    }

    /// Unseal at open with the key in this file.
    fn unseal_key_file(&self, path: std::path::PathBuf) -> Config {
        Config(self.0.clone().unseal_key_file(path))
    }

    /// Unseal at open with the key in this environment variable.
    fn unseal_key_env(&self, var: String) -> Config {
        Config(self.0.clone().unseal_key_env(var))
    }

    /// Use this virtual clock (tests: leases and TTLs without waiting).
    fn clock(&self, clock: &VirtualClock) -> Config {
        Config(self.0.clone().clock(Arc::new(clock.0.clone())))
    }

    fn __repr__(&self) -> String {
        // The core's Debug redacts a PostgreSQL URL.
        format!("Config({:?})", self.0)
    }
}

/// A clock that only moves when told to (`advance`).
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct VirtualClock(strongroom::VirtualClock);

#[pymethods]
impl VirtualClock {
    #[new]
    fn new() -> VirtualClock {
        VirtualClock(strongroom::VirtualClock::new())
    }

    /// Move the clock forward by a `timedelta`, seconds, or text like `"61m"`.
    fn advance(&self, by: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.advance(duration_arg(by)?);
        Ok(())
    }
}

/// The engine: open it, initialise / unseal / seal it, and make clients.
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct Strongroom {
    h: Local<strongroom::Strongroom>,
    flavour: Flavour,
}

fn wrap(py: Python<'_>, sr: strongroom::Strongroom, flavour: Flavour) -> PyResult<Py<PyAny>> {
    let rt = runtime()?;
    Ok(Py::new(
        py,
        Strongroom {
            h: Local::new(rt, sr),
            flavour,
        },
    )?
    .into_any())
}

impl Strongroom {
    fn open_with(py: Python<'_>, config: &Config, flavour: Flavour) -> PyResult<Py<PyAny>> {
        let rt = runtime()?;
        let cfg = config.0.clone();
        flavour.run(py, &rt, strongroom::Strongroom::open(cfg), move |py, sr| {
            wrap(py, sr, flavour)
        })
    }

    fn client_of(&self, c: strongroom::Client) -> PyResult<Client> {
        let (rt, _) = self.h.get()?;
        Ok(Client::new(rt.clone(), c, self.flavour))
    }

    fn login<F>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(strongroom::Strongroom) -> F,
    ) -> PyResult<Py<PyAny>>
    where
        F: std::future::Future<Output = strongroom::Result<strongroom::Client>> + Send + 'static,
    {
        let (rt, sr) = self.h.get()?;
        let (rt2, flavour) = (rt.clone(), self.flavour);
        self.flavour.run(py, rt, f(sr.clone()), move |py, c| {
            Ok(Py::new(py, Client::new(rt2, c, flavour))?.into_any())
        })
    }
}

fn none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

#[pymethods]
impl Strongroom {
    /// Open an engine on the configured storage (blocking).
    #[staticmethod]
    fn open(py: Python<'_>, config: &Config) -> PyResult<Py<PyAny>> {
        Strongroom::open_with(py, config, Flavour::Blocking)
    }

    /// Open an engine whose methods return awaitables (`strongroom.aio`).
    #[staticmethod]
    fn _open_aio(py: Python<'_>, config: &Config) -> PyResult<Py<PyAny>> {
        Strongroom::open_with(py, config, Flavour::Asyncio)
    }

    /// Whether this handle's methods return awaitables.
    #[getter]
    fn is_async(&self) -> bool {
        self.flavour == Flavour::Asyncio
    }

    /// The root token of a dev-mode engine.
    fn dev_root_token(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (_, sr) = self.h.get()?;
        match sr.dev_root_token() {
            Some(t) => secret(py, secrecy::ExposeSecret::expose_secret(&t)),
            None => Ok(py.None()),
        }
    }

    /// Whether the engine is sealed.
    fn is_sealed(&self) -> PyResult<bool> {
        Ok(self.h.get()?.1.is_sealed())
    }

    /// Whether the store has been initialised.
    fn is_initialized(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, sr) = self.h.get()?;
        let sr = sr.clone();
        self.flavour
            .run(py, rt, async move { sr.is_initialized().await }, |py, b| {
                Ok(pyo3::types::PyBool::new(py, b)
                    .to_owned()
                    .into_any()
                    .unbind())
            })
    }

    /// Initialise a new store with `shares` unseal key shares, `threshold` of which unseal
    /// it. Returns `{"keys": [Secret], "keys_base64": [Secret], "root_token": Secret}`.
    #[pyo3(signature = (shares=1, threshold=1))]
    fn init(&self, py: Python<'_>, shares: u64, threshold: u64) -> PyResult<Py<PyAny>> {
        let (rt, sr) = self.h.get()?;
        let sr = sr.clone();
        self.flavour.run(
            py,
            rt,
            async move { sr.init(shares, threshold).await },
            |py, r| {
                let d = PyDict::new(py);
                let secrets = |v: &[secrecy::SecretString]| {
                    v.iter()
                        .map(|k| secret(py, k.expose_secret()))
                        .collect::<PyResult<Vec<_>>>()
                };
                d.set_item("keys", secrets(&r.keys)?)?;
                d.set_item("keys_base64", secrets(&r.keys_base64)?)?;
                d.set_item("root_token", secret(py, r.root_token.expose_secret())?)?;
                Ok(d.into_any().unbind())
            },
        )
    }

    /// Initialise with one share written to `path` (mode 0600, must not exist) and unseal.
    /// Returns the root token.
    fn init_with_key_file(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<Py<PyAny>> {
        let (rt, sr) = self.h.get()?;
        let sr = sr.clone();
        self.flavour.run(
            py,
            rt,
            async move { sr.init_with_key_file(path).await },
            |py, t| secret(py, t.expose_secret()),
        )
    }

    /// Submit one unseal key share; returns the seal status (`sealed`, `progress`, ...).
    fn unseal(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let key = token_arg(key)?;
        let (rt, sr) = self.h.get()?;
        let sr = sr.clone();
        self.flavour.run(
            py,
            rt,
            async move { sr.unseal(key.expose_secret()).await },
            |py, s| data_to_py(py, &s.to_json()),
        )
    }

    /// The seal status.
    fn seal_status(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, sr) = self.h.get()?;
        let sr = sr.clone();
        self.flavour
            .run(py, rt, async move { sr.seal_status().await }, |py, s| {
                data_to_py(py, &s.to_json())
            })
    }

    /// Seal: drop every key from memory.
    fn seal(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, sr) = self.h.get()?;
        let sr = sr.clone();
        self.flavour
            .run(py, rt, async move { sr.seal().await }, none)
    }

    /// Stop the engine: refuse new calls, finish the ones in flight, give up leadership.
    fn close(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, sr) = self.h.get()?;
        let sr = sr.clone();
        self.flavour
            .run(py, rt, async move { sr.shutdown().await }, none)
    }

    /// Run the lease expiry work that is due now (the background runner does this itself).
    fn run_expiry(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, sr) = self.h.get()?;
        let sr = sr.clone();
        self.flavour
            .run(py, rt, async move { sr.run_expiry().await }, |py, r| {
                let d = PyDict::new(py);
                d.set_item("leader", r.leader)?;
                d.set_item("revoked", r.revoked)?;
                d.set_item("retried", r.retried)?;
                d.set_item("irrevocable", r.irrevocable)?;
                Ok(d.into_any().unbind())
            })
    }

    /// A client that makes calls with `token` (`str` or `Secret`).
    fn client(&self, token: &Bound<'_, PyAny>) -> PyResult<Client> {
        let token = token_arg(token)?;
        let (_, sr) = self.h.get()?;
        self.client_of(sr.client(token.expose_secret()))
    }

    /// Log in with userpass at `mount`; a client holding the new token.
    #[pyo3(signature = (mount, username, password))]
    fn login_userpass(
        &self,
        py: Python<'_>,
        mount: String,
        username: String,
        password: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let password = token_arg(password)?;
        self.login(py, move |sr| async move {
            sr.login_userpass(&mount, &username, password.expose_secret())
                .await
        })
    }

    /// Log in with AppRole at `mount`.
    #[pyo3(signature = (mount, role_id, secret_id))]
    fn login_approle(
        &self,
        py: Python<'_>,
        mount: String,
        role_id: String,
        secret_id: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let secret_id = token_arg(secret_id)?;
        self.login(py, move |sr| async move {
            sr.login_approle(&mount, &role_id, secret_id.expose_secret())
                .await
        })
    }

    /// Log in with a Kubernetes service-account JWT at `mount`.
    #[pyo3(signature = (mount, role, jwt))]
    fn login_kubernetes(
        &self,
        py: Python<'_>,
        mount: String,
        role: String,
        jwt: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let jwt = token_arg(jwt)?;
        self.login(py, move |sr| async move {
            sr.login_kubernetes(&mount, &role, jwt.expose_secret())
                .await
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        let (rt, sr) = self.h.get()?;
        let sr = sr.clone();
        crate::runtime::block_on(py, rt, async move { sr.shutdown().await })
    }

    fn __aenter__(slf: Py<Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let rt = slf.get().h.get()?.0.clone();
        Flavour::Asyncio.run(py, &rt, std::future::ready(Ok(())), move |_, ()| {
            Ok(slf.into_any())
        })
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__(
        &self,
        py: Python<'_>,
        _exc: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        let (rt, sr) = self.h.get()?;
        let sr = sr.clone();
        Flavour::Asyncio.run(py, rt, async move { sr.shutdown().await }, none)
    }

    fn __repr__(&self) -> String {
        match self.h.get() {
            Ok((_, sr)) => format!("Strongroom(sealed={})", sr.is_sealed()),
            Err(_) => "Strongroom(<opened in another process>)".into(),
        }
    }
}
