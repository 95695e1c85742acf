//! `Leases` (lookup, renew, revoke) and `LeaseEvents`, lease events as an iterator and an
//! async iterator. The receiver type is the core's; [`next_event`] is the one place that
//! waits on it.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::convert::{datetime, duration_arg, opt_datetime, timedelta};
use crate::runtime::{Flavour, Local, block_on};

fn none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

/// One lease's details.
#[pyclass(frozen, get_all, module = "strongroom")]
pub(crate) struct LeaseDetails {
    id: String,
    path: String,
    issue_time: Py<PyAny>,
    expire_time: Py<PyAny>,
    last_renewal: Py<PyAny>,
    ttl: Py<PyAny>,
    renewable: bool,
}

#[pymethods]
impl LeaseDetails {
    fn __repr__(&self) -> String {
        format!(
            "LeaseDetails(id={:?}, renewable={})",
            self.id, self.renewable
        )
    }
}

/// The result of a renewal.
#[pyclass(frozen, get_all, module = "strongroom")]
pub(crate) struct RenewedLease {
    lease_id: String,
    ttl: Py<PyAny>,
    warnings: Vec<String>,
}

/// Something that happened to a lease: `kind` is `renewed`, `expiring_soon`, `revoked` or
/// `irrevocable`.
#[pyclass(frozen, get_all, module = "strongroom")]
pub(crate) struct LeaseEvent {
    kind: &'static str,
    lease_id: String,
    ttl: Py<PyAny>,
    expire_time: Py<PyAny>,
    error: Option<String>,
}

#[pymethods]
impl LeaseEvent {
    fn __repr__(&self) -> String {
        format!(
            "LeaseEvent(kind={:?}, lease_id={:?})",
            self.kind, self.lease_id
        )
    }
}

fn event_py(py: Python<'_>, e: strongroom::LeaseEvent) -> PyResult<Py<PyAny>> {
    use strongroom::LeaseEvent as E;
    let ev = match e {
        E::Renewed { lease_id, ttl } => LeaseEvent {
            kind: "renewed",
            lease_id,
            ttl: timedelta(py, ttl)?,
            expire_time: py.None(),
            error: None,
        },
        E::ExpiringSoon {
            lease_id,
            expire_time,
        } => LeaseEvent {
            kind: "expiring_soon",
            lease_id,
            ttl: py.None(),
            expire_time: datetime(py, &expire_time)?,
            error: None,
        },
        E::Revoked { lease_id } => LeaseEvent {
            kind: "revoked",
            lease_id,
            ttl: py.None(),
            expire_time: py.None(),
            error: None,
        },
        E::Irrevocable { lease_id, error } => LeaseEvent {
            kind: "irrevocable",
            lease_id,
            ttl: py.None(),
            expire_time: py.None(),
            error: Some(error),
        },
        // No lease: the reader fell behind and lost `count` events.
        E::Missed { count } => LeaseEvent {
            kind: "missed",
            lease_id: String::new(),
            ttl: py.None(),
            expire_time: py.None(),
            error: Some(format!("{count} lease events were missed")),
        },
    };
    Ok(Py::new(py, ev)?.into_any())
}

type Receiver = Arc<tokio::sync::Mutex<strongroom::Subscription>>;

/// The next event; `None` when the engine is gone or `timeout` passed. A reader that fell
/// behind gets a `missed` event (with the count) before the oldest event kept.
async fn next_event(rx: Receiver, timeout: Option<Duration>) -> Option<strongroom::LeaseEvent> {
    let mut rx = rx.lock().await;
    let wait = rx.recv();
    match timeout {
        Some(t) => tokio::time::timeout(t, wait).await.ok().flatten(),
        None => wait.await,
    }
}

/// Lease events from the moment of subscribing: `for event in events` (blocking), `async for
/// event in events`, or `events.next(timeout=...)`.
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct LeaseEvents {
    h: Local<Receiver>,
}

#[pymethods]
impl LeaseEvents {
    /// The next event, waiting at most `timeout` (a `timedelta` or seconds; forever when
    /// `None`); `None` when none came.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let timeout = timeout.map(duration_arg).transpose()?;
        let (rt, rx) = self.h.get()?;
        let rx = rx.clone();
        match block_on(py, rt, async move { Ok(next_event(rx, timeout).await) })? {
            Some(e) => event_py(py, e),
            None => Ok(py.None()),
        }
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, rx) = self.h.get()?;
        let rx = rx.clone();
        match block_on(py, rt, async move { Ok(next_event(rx, None).await) })? {
            Some(e) => event_py(py, e),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (rt, rx) = self.h.get()?;
        let rx = rx.clone();
        Flavour::Asyncio.run(
            py,
            rt,
            async move { Ok(next_event(rx, None).await) },
            |py, e| match e {
                Some(e) => event_py(py, e),
                None => Err(PyStopAsyncIteration::new_err(())),
            },
        )
    }
}

/// The lease manager: lookup, renew, revoke, events.
#[pyclass(frozen, module = "strongroom")]
pub(crate) struct Leases {
    h: Local<strongroom::Leases>,
    flavour: Flavour,
}

impl Leases {
    pub(crate) fn new(rt: Arc<Runtime>, l: strongroom::Leases, flavour: Flavour) -> Leases {
        Leases {
            h: Local::new(rt, l),
            flavour,
        }
    }
}

#[pymethods]
impl Leases {
    /// A lease's details (`InvalidInput` when there is no such lease).
    fn lookup(&self, py: Python<'_>, lease_id: String) -> PyResult<Py<PyAny>> {
        let (rt, l) = self.h.get()?;
        let l = l.clone();
        self.flavour
            .run(py, rt, async move { l.lookup(&lease_id).await }, |py, d| {
                Ok(Py::new(
                    py,
                    LeaseDetails {
                        issue_time: datetime(py, &d.issue_time)?,
                        expire_time: opt_datetime(py, d.expire_time.as_deref())?,
                        last_renewal: opt_datetime(py, d.last_renewal.as_deref())?,
                        ttl: timedelta(py, Duration::from_secs(d.ttl))?,
                        id: d.id,
                        path: d.path,
                        renewable: d.renewable,
                    },
                )?
                .into_any())
            })
    }

    /// Renew a lease by `increment` (a `timedelta`, seconds or `"1h"`; 0 = the default).
    #[pyo3(signature = (lease_id, increment=None))]
    fn renew(
        &self,
        py: Python<'_>,
        lease_id: String,
        increment: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let inc = increment.map(duration_arg).transpose()?.unwrap_or_default();
        let (rt, l) = self.h.get()?;
        let l = l.clone();
        self.flavour.run(
            py,
            rt,
            async move { l.renew(&lease_id, inc).await },
            |py, r| {
                Ok(Py::new(
                    py,
                    RenewedLease {
                        ttl: timedelta(py, r.ttl)?,
                        lease_id: r.lease_id,
                        warnings: r.warnings,
                    },
                )?
                .into_any())
            },
        )
    }

    /// Revoke a lease now.
    fn revoke(&self, py: Python<'_>, lease_id: String) -> PyResult<Py<PyAny>> {
        let (rt, l) = self.h.get()?;
        let l = l.clone();
        self.flavour
            .run(py, rt, async move { l.revoke(&lease_id).await }, none)
    }

    /// Revoke every lease under a path prefix.
    fn revoke_prefix(&self, py: Python<'_>, prefix: String) -> PyResult<Py<PyAny>> {
        let (rt, l) = self.h.get()?;
        let l = l.clone();
        self.flavour
            .run(py, rt, async move { l.revoke_prefix(&prefix).await }, none)
    }

    /// Forget every lease under a prefix even when revoking them fails.
    fn revoke_force(&self, py: Python<'_>, prefix: String) -> PyResult<Py<PyAny>> {
        let (rt, l) = self.h.get()?;
        let l = l.clone();
        self.flavour
            .run(py, rt, async move { l.revoke_force(&prefix).await }, none)
    }

    /// Subscribe to lease events in this process.
    fn events(&self) -> PyResult<LeaseEvents> {
        let (rt, l) = self.h.get()?;
        Ok(LeaseEvents {
            h: Local::new(rt.clone(), Arc::new(tokio::sync::Mutex::new(l.events()))),
        })
    }
}
