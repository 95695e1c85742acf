//! Waiting on the engine's channels from code that is not async (the bindings' sync APIs,
//! plain threads), without a Tokio runtime and without Tokio's `blocking_recv`, which panics
//! when called on a runtime thread.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::{Error, ErrorCode, Result};

/// Wakes the thread that is parked waiting for the future.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Poll `f` on this thread, parking between wake-ups, until it is ready or `deadline` passes
/// (`None` = no deadline). Only for futures that need no runtime driver (channel receives).
fn park_on<F: Future>(f: F, deadline: Option<Instant>) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                std::thread::park_timeout(d - now);
            }
        }
    }
}

/// Block this thread on a channel receive (`None` when `deadline` passed first).
///
/// Outside a runtime the thread simply parks. On a multi-thread Tokio runtime's thread the
/// worker is handed off first (`block_in_place`), so other tasks keep running. On a
/// current-thread runtime blocking would stop the only thread that can deliver the value, so
/// this answers an `unsupported_operation` error instead (use the async method there).
pub(crate) fn wait<F: Future>(f: F, deadline: Option<Instant>) -> Result<Option<F::Output>> {
    match Handle::try_current() {
        Err(_) => Ok(park_on(f, deadline)),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| park_on(f, deadline)))
        }
        Ok(_) => Err(Error::new(
            ErrorCode::UnsupportedOperation,
            "a blocking receive cannot run on a current-thread Tokio runtime: await the async receive instead",
        )),
    }
}
