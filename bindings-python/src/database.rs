//! `Database`: dynamic and static credentials, and `CredentialKeeper`, which keeps one
//! credential fresh (the core's keeper renews it, or replaces it before it expires) and calls
//! back so an application can refresh its connection pool.

use std::sync::Arc;

use pyo3::prelude::*;
use secrecy::ExposeSecret;
use tokio::runtime::Runtime;

use crate::convert::{data_arg, datetime, duration_arg, secret, timedelta};
use crate::error::ToPyErr;
use crate::runtime::{Flavour, Local, block_on};

fn none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

/// A database credential: `username`, `password` (a `Secret`), its lease.
#[pyclass(frozen, get_all, module = "strongroom")]
pub(crate) struct DbCredential {
    username: String,
    password: Py<PyAny>,
    lease_id: String,
    lease_duration: Py<PyAny>,
    renewable: bool,
}

#[pymethods]
impl DbCredential {
    fn __repr__(&self) -> String {
        format!(
            "DbCredential(username={:?}, password=<redacted>, lease_id={:?})",
            self.username, self.lease_id
        )
    }
}

fn credential(py: Python<'_>, c: &strongroom::DbCredential) -> PyResult<Py<PyAny>> {
    Ok(Py::new(
        py,
        DbCredential {
            username: c.username.clone(),
            password: secret(py, c.password.expose_secret())?,
            lease_id: c.lease_id.clone(),
            lease_duration: timedelta(py, c.lease_duration)?,
            renewable: c.renewable,
        },
    )?
    .into_any())
}

/// A static role's credential: `username`, `password` (a `Secret`), rotation times.
#[pyclass(frozen, get_all, module = "strongroom")]
pub(crate) struct StaticCredential {
    username: String,
    password: Py<PyAny>,
    last_vault_rotation: Py<PyAny>,
    ttl: Py<PyAny>,
}

#[pymethods]
impl StaticCredential {
    fn __repr__(&self) -> String {
        format!(
            "StaticCredential(username={:?}, password=<redacted>)",
            self.username
        )
    }
}

/// The database secrets engine on a mount.
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct Database {
    h: Local<strongroom::Database>,
    flavour: Flavour,
}

impl Database {
    pub(crate) fn new(rt: Arc<Runtime>, db: strongroom::Database, flavour: Flavour) -> Database {
        Database {
            h: Local::new(rt, db),
            flavour,
        }
    }
}

#[pymethods]
impl Database {
    /// Configure a connection (`plugin_name`, `connection_url`, `allowed_roles`, ...);
    /// returns the engine's warnings.
    fn configure(
        &self,
        py: Python<'_>,
        name: String,
        config: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let config = data_arg(Some(config))?;
        let (rt, db) = self.h.get()?;
        let db = db.clone();
        self.flavour.run(
            py,
            rt,
            async move { db.configure(&name, config).await },
            |py, w| Ok(pyo3::types::PyList::new(py, w)?.into_any().unbind()),
        )
    }

    /// Write a dynamic role (`db_name`, `creation_statements`, `default_ttl`, `max_ttl`, ...).
    fn write_role(
        &self,
        py: Python<'_>,
        name: String,
        role: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let role = data_arg(Some(role))?;
        let (rt, db) = self.h.get()?;
        let db = db.clone();
        self.flavour.run(
            py,
            rt,
            async move { db.write_role(&name, role).await },
            none,
        )
    }

    /// Write a static role (`db_name`, `username`, `rotation_period`, ...).
    fn write_static_role(
        &self,
        py: Python<'_>,
        name: String,
        role: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let role = data_arg(Some(role))?;
        let (rt, db) = self.h.get()?;
        let db = db.clone();
        self.flavour.run(
            py,
            rt,
            async move { db.write_static_role(&name, role).await },
            none,
        )
    }

    /// New credentials from a dynamic role, with a lease.
    fn creds(&self, py: Python<'_>, role: String) -> PyResult<Py<PyAny>> {
        let (rt, db) = self.h.get()?;
        let db = db.clone();
        self.flavour
            .run(py, rt, async move { db.creds(&role).await }, |py, c| {
                credential(py, &c)
            })
    }

    /// A static role's current credentials.
    fn static_creds(&self, py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
        let (rt, db) = self.h.get()?;
        let db = db.clone();
        self.flavour.run(
            py,
            rt,
            async move { db.static_creds(&name).await },
            |py, c| {
                Ok(Py::new(
                    py,
                    StaticCredential {
                        username: c.username.clone(),
                        password: secret(py, c.password.expose_secret())?,
                        last_vault_rotation: datetime(py, &c.last_vault_rotation)?,
                        ttl: timedelta(py, c.ttl)?,
                    },
                )?
                .into_any())
            },
        )
    }

    /// Rotate a static role's password now.
    fn rotate_role(&self, py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
        let (rt, db) = self.h.get()?;
        let db = db.clone();
        self.flavour
            .run(py, rt, async move { db.rotate_role(&name).await }, none)
    }

    /// Rotate the connection's root password.
    fn rotate_root(&self, py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
        let (rt, db) = self.h.get()?;
        let db = db.clone();
        self.flavour
            .run(py, rt, async move { db.rotate_root(&name).await }, none)
    }

    /// Credentials for `role` kept fresh in the background: renewed while the lease allows,
    /// replaced before it runs out. `on_change(credential)` is called (on a thread of its
    /// own) after each replacement, so a connection pool can switch over.
    #[pyo3(signature = (role, *, on_change=None))]
    fn keep_fresh(
        &self,
        py: Python<'_>,
        role: String,
        on_change: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (rt, db) = self.h.get()?;
        let db = db.clone();
        let runtime = rt.clone();
        self.flavour.run(
            py,
            rt,
            async move { db.keep_fresh(&role).await },
            move |py, keeper| {
                Ok(Py::new(py, start_keeper(&runtime, keeper, on_change)?)?.into_any())
            },
        )
    }
}

/// Run the core's keeper on the runtime, and `on_change` on a thread of its own (so the
/// callback may make blocking calls, and never holds up the runtime).
fn start_keeper(
    rt: &Arc<Runtime>,
    keeper: strongroom::CredentialKeeper,
    on_change: Option<Py<PyAny>>,
) -> PyResult<CredentialKeeper> {
    let rx = keeper.subscribe();
    let task = {
        let _entered = rt.enter();
        keeper.spawn()
    }
    .map_err(|e| Python::attach(|py| e.to_py_err(py)))?;
    if let Some(cb) = on_change {
        let mut rx = rx.clone();
        std::thread::Builder::new()
            .name("strongroom-keeper".into())
            .spawn(move || {
                // Ends when the keeper stops (its updates end).
                while let Ok(Some(cred)) = rx.recv_blocking() {
                    Python::attach(|py| {
                        let called = credential(py, &cred).and_then(|c| cb.call1(py, (c,)));
                        if let Err(e) = called {
                            e.write_unraisable(py, Some(cb.bind(py)));
                        }
                    });
                }
            })
            .map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "could not start the keeper's callback thread: {e}"
                ))
            })?;
    }
    Ok(CredentialKeeper {
        h: Local::new(rt.clone(), (rx, Arc::new(task))),
    })
}

/// A credential the engine keeps fresh; `stop()` (or leaving a `with` block) ends it.
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct CredentialKeeper {
    h: Local<(strongroom::KeeperUpdates, Arc<strongroom::KeeperTask>)>,
}

#[pymethods]
impl CredentialKeeper {
    /// The credential in use now.
    fn current(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (_, (rx, _)) = self.h.get()?;
        let cred = rx.current();
        credential(py, &cred)
    }

    /// Wait until the credential is next replaced (at most `timeout`: a `timedelta` or
    /// seconds); the new credential, or `None` on timeout.
    #[pyo3(signature = (timeout=None))]
    fn wait_for_change(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let timeout = timeout.map(duration_arg).transpose()?;
        let (rt, (rx, _)) = self.h.get()?;
        let mut mine = rx.clone();
        // Only a replacement after this call counts.
        mine.mark_seen();
        let changed = block_on(py, rt, async move {
            let wait = mine.changed();
            Ok(match timeout {
                Some(t) => tokio::time::timeout(t, wait).await.ok().flatten(),
                None => wait.await,
            })
        })?;
        match changed {
            Some(c) => credential(py, &c),
            None => Ok(py.None()),
        }
    }

    /// Stop renewing (the current lease stays until it expires or is revoked).
    fn stop(&self) -> PyResult<()> {
        let (_, (_, task)) = self.h.get()?;
        task.stop();
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.stop()
    }
}
