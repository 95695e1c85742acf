//! The tokio runtime the engine runs on, and the two ways a Python call waits for it: blocking
//! (the GIL released while the engine works) and asyncio (an `asyncio.Future` on the running
//! loop). Every binding method builds one core future and hands it to [`Flavour::run`], so the
//! blocking and the asyncio API share one implementation.
//!
//! Fork safety: a runtime's worker threads do not survive `fork()`. The runtime is rebuilt in
//! a child the first time it is needed, and handles opened before the fork refuse to be used
//! there ([`Local`]) rather than wait on threads that no longer exist.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tokio::runtime::Runtime;

use crate::error::{ToPyErr, forked};

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// This process's runtime, built on first use (and again in a forked child).
pub(crate) fn runtime() -> PyResult<Arc<Runtime>> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return Ok(rt.clone());
        }
    }
    // A runtime inherited through fork() has no threads: dropping it would wait for them.
    if let Some(old) = slot.take() {
        std::mem::forget(old);
    }
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("strongroom")
            .build()
            .map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "could not start the strongroom runtime: {e}"
                ))
            })?,
    );
    *slot = Some((pid, rt.clone()));
    Ok(rt)
}

/// A core handle and the runtime it runs on, usable only in the process that made it.
pub(crate) struct Local<T> {
    pid: u32,
    inner: Option<(Arc<Runtime>, T)>,
}

impl<T> Local<T> {
    pub(crate) fn new(rt: Arc<Runtime>, value: T) -> Local<T> {
        Local {
            pid: std::process::id(),
            inner: Some((rt, value)),
        }
    }

    /// The handle and its runtime, or the "open it again" error in a forked child.
    pub(crate) fn get(&self) -> PyResult<(&Arc<Runtime>, &T)> {
        match &self.inner {
            Some((rt, v)) if self.pid == std::process::id() => Ok((rt, v)),
            _ => Err(forked()),
        }
    }
}

impl<T> Drop for Local<T> {
    fn drop(&mut self) {
        // In a forked child the handle may hold locks taken by threads that are gone: leak it.
        if self.pid != std::process::id() {
            std::mem::forget(self.inner.take());
        }
    }
}

/// Turns a finished core result into a Python object (runs with the GIL held).
pub(crate) type Convert<T> = Box<dyn FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send>;

/// Whether a handle's methods block (and return values) or return awaitables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    Blocking,
    Asyncio,
}

impl Flavour {
    /// Run `fut` on `rt` the way this flavour waits, and convert its result with `convert`.
    pub(crate) fn run<T, F>(
        self,
        py: Python<'_>,
        rt: &Arc<Runtime>,
        fut: F,
        convert: impl FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    ) -> PyResult<Py<PyAny>>
    where
        F: Future<Output = strongroom::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        match self {
            Flavour::Blocking => {
                let value = block_on(py, rt, fut)?;
                convert(py, value)
            }
            Flavour::Asyncio => spawn(py, rt, fut, Box::new(convert)),
        }
    }
}

/// Run `fut` to completion with the GIL released.
pub(crate) fn block_on<T, F>(py: Python<'_>, rt: &Arc<Runtime>, fut: F) -> PyResult<T>
where
    F: Future<Output = strongroom::Result<T>> + Send,
    T: Send,
{
    py.detach(|| {
        // A panic in the engine becomes an `Internal` error, never an unwind into Python.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Called from inside the runtime (a callback on one of its threads).
                return tokio::task::block_in_place(|| rt.block_on(fut));
            }
            let mut fut = std::pin::pin!(fut);
            // Calls that need no I/O (transit on a key in memory, a KV read of a cached entry)
            // finish in their first poll: run it here with the runtime's context entered,
            // which costs far less than a full `block_on`; the rest continue in `block_on`,
            // which polls again at once (with its own waker).
            {
                let _entered = rt.enter();
                if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                    return v;
                }
            }
            rt.block_on(fut)
        }))
        .unwrap_or_else(|_| Err(engine_panicked()))
    })
    .map_err(|e| e.to_py_err(py))
}

fn engine_panicked() -> strongroom::Error {
    strongroom::Error::internal("the engine panicked during this call (a bug: please report it)")
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Set by [`_before_exit`] (an `atexit` hook): the interpreter is about to finalise, and a
/// runtime thread that entered Python then would be ended mid-call by the finalising
/// interpreter and abort the process (`PyGILState_Release ... finalizing`).
static EXITING: AtomicBool = AtomicBool::new(false);
/// Runtime threads inside Python right now (settling an asyncio future).
static IN_PYTHON: AtomicUsize = AtomicUsize::new(0);

/// Called by `atexit` before the interpreter finalises: no runtime thread enters Python from
/// now on, and those inside are waited for (at most 2 s), with the GIL released so they can
/// finish. A future still pending then is never settled; nobody is left to await it.
#[pyfunction]
pub(crate) fn _before_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while IN_PYTHON.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
}
static COMPLETE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Settle an asyncio future unless it was cancelled meanwhile (runs on the loop's thread).
#[pyfunction]
fn _complete(fut: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if fut.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        fut.call_method1("set_result", (value,))?;
    } else {
        fut.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

/// `(true, value)` or `(false, exception)`, as [`_complete`] takes them.
fn settle(py: Python<'_>, outcome: PyResult<Py<PyAny>>) -> (bool, Py<PyAny>) {
    match outcome {
        Ok(v) => (true, v),
        Err(e) => (false, e.into_value(py).into_any()),
    }
}

/// An `asyncio.Future` on the running loop that `fut` settles. The first poll runs at once
/// (the GIL released): calls that need no I/O, such as transit on a cached key, finish there
/// without a thread hop; the rest continue on the runtime and settle the future through
/// `loop.call_soon_threadsafe`.
fn spawn<T, F>(
    py: Python<'_>,
    rt: &Arc<Runtime>,
    fut: F,
    convert: Convert<T>,
) -> PyResult<Py<PyAny>>
where
    F: Future<Output = strongroom::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let get_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
    })?;
    let event_loop = get_loop.call0(py)?;
    let py_fut = event_loop.call_method0(py, "create_future")?;
    let mut fut = Box::pin(fut);
    let first = py.detach(|| {
        let _entered = rt.enter();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        }))
        .unwrap_or_else(|_| Poll::Ready(Err(engine_panicked())))
    });
    if let Poll::Ready(result) = first {
        let outcome = result
            .map_err(|e| e.to_py_err(py))
            .and_then(|v| convert(py, v));
        let (ok, value) = settle(py, outcome);
        _complete(py_fut.bind(py), ok, value.bind(py))?;
        return Ok(py_fut);
    }
    let complete = COMPLETE
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(wrap_pyfunction!(_complete, py)?.into_any().unbind())
        })?
        .clone_ref(py);
    let target = py_fut.clone_ref(py);
    let task = rt.spawn(fut);
    rt.spawn(async move {
        // A panicked task still settles the Python future, as an `Internal` error.
        let result = task.await.unwrap_or_else(|_| Err(engine_panicked()));
        // Counted before the check, so `_before_exit` either waits for this thread or this
        // thread sees it and stays out of Python.
        IN_PYTHON.fetch_add(1, Ordering::SeqCst);
        if EXITING.load(Ordering::SeqCst) {
            IN_PYTHON.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        Python::attach(|py| {
            let outcome = result
                .map_err(|e| e.to_py_err(py))
                .and_then(|v| convert(py, v));
            let (ok, value) = settle(py, outcome);
            // Fails only when the loop is closed: then nobody is waiting.
            let _ =
                event_loop.call_method1(py, "call_soon_threadsafe", (complete, target, ok, value));
        });
        IN_PYTHON.fetch_sub(1, Ordering::SeqCst);
    });
    Ok(py_fut)
}
