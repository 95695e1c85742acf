//! Lease events through a callback: a subscription runs the callback on a thread of its own
//! (outside the runtime, so the callback may call back into the library).

use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use strongroom::{Error, LeaseEvent};

use crate::abi::{Handle, Kind, free_handle, into_handle, out_arg};
use crate::client::with_client;
use crate::engine::sr_client;
use crate::result::sr_result;

/// What happened to a lease.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_lease_event_kind {
    /// Renewed; `ttl_seconds` is its new TTL.
    SR_LEASE_RENEWED = 1,
    /// It expires within the warning window; `expire_time` says when.
    SR_LEASE_EXPIRING_SOON = 2,
    /// Revoked: its secret is gone.
    SR_LEASE_REVOKED = 3,
    /// Revocation kept failing; `error` is the last error.
    SR_LEASE_IRREVOCABLE = 4,
    /// This subscriber fell behind and lost `missed` events (`lease_id` is "").
    SR_LEASE_MISSED = 5,
}

/// One lease event, borrowed for the duration of the callback (copy what you keep). No
/// pointer is NULL; fields that do not apply are "" or 0.
#[repr(C)]
pub struct sr_lease_event {
    /// What happened.
    pub kind: sr_lease_event_kind,
    /// The lease.
    pub lease_id: *const c_char,
    /// `SR_LEASE_RENEWED`: the new TTL in seconds.
    pub ttl_seconds: u64,
    /// `SR_LEASE_EXPIRING_SOON`: when it expires (RFC 3339).
    pub expire_time: *const c_char,
    /// `SR_LEASE_IRREVOCABLE`: the last revocation error.
    pub error: *const c_char,
    /// `SR_LEASE_MISSED`: how many events were lost.
    pub missed: u64,
}

/// Called for each lease event with the `userdata` given to `sr_lease_subscribe`.
pub type sr_lease_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const sr_lease_event)>;

/// A lease event subscription: its callback runs on a thread of the library's until
/// `sr_subscription_free`.
pub struct sr_subscription {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Handle for sr_subscription {
    const KIND: Kind = Kind::Subscription;
    const NAME: &'static str = "sr_subscription";
}

/// The caller's userdata, handed to the callback thread.
struct UserData(*mut c_void);

// SAFETY: `sr_lease_subscribe`'s contract: the caller hands `userdata` to a callback that runs
// on another thread and keeps it usable there until `sr_subscription_free` returns.
unsafe impl Send for UserData {}

fn deliver(
    cb: unsafe extern "C" fn(*mut c_void, *const sr_lease_event),
    ud: &UserData,
    e: LeaseEvent,
) {
    let c = |s: String| CString::new(s.replace('\0', "")).unwrap_or_default();
    let (kind, lease_id, ttl, expire_time, error, missed) = match e {
        LeaseEvent::Renewed { lease_id, ttl } => (
            sr_lease_event_kind::SR_LEASE_RENEWED,
            lease_id,
            ttl.as_secs(),
            String::new(),
            String::new(),
            0,
        ),
        LeaseEvent::ExpiringSoon {
            lease_id,
            expire_time,
        } => (
            sr_lease_event_kind::SR_LEASE_EXPIRING_SOON,
            lease_id,
            0,
            expire_time,
            String::new(),
            0,
        ),
        LeaseEvent::Revoked { lease_id } => (
            sr_lease_event_kind::SR_LEASE_REVOKED,
            lease_id,
            0,
            String::new(),
            String::new(),
            0,
        ),
        LeaseEvent::Irrevocable { lease_id, error } => (
            sr_lease_event_kind::SR_LEASE_IRREVOCABLE,
            lease_id,
            0,
            String::new(),
            error,
            0,
        ),
        LeaseEvent::Missed { count } => (
            sr_lease_event_kind::SR_LEASE_MISSED,
            String::new(),
            0,
            String::new(),
            String::new(),
            count,
        ),
    };
    let (lease_id, expire_time, error) = (c(lease_id), c(expire_time), c(error));
    let event = sr_lease_event {
        kind,
        lease_id: lease_id.as_ptr(),
        ttl_seconds: ttl,
        expire_time: expire_time.as_ptr(),
        error: error.as_ptr(),
        missed,
    };
    // SAFETY: `cb` is the caller's callback, given `userdata` as the caller asked; `event` and
    // its strings live until the call returns.
    unsafe { cb(ud.0, &event) };
}

/// Subscribe to lease events from now on: `callback(userdata, event)` runs for each event, in
/// order, on a thread of the library's (one per subscription), until `sr_subscription_free`.
/// The callback may call into the library. `userdata` must stay usable from that thread until
/// `sr_subscription_free` returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_lease_subscribe(
    client: *const sr_client,
    callback: sr_lease_callback,
    userdata: *mut c_void,
    out: *mut *mut sr_subscription,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or a writable pointer.
        let out = unsafe { out_arg(out, std::ptr::null_mut(), "subscription") }?;
        let cb = callback.ok_or_else(|| Error::invalid_input("`callback` is NULL"))?;
        let mut sub = {
            let _rt = crate::abi::enter()?;
            c.leases().events()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let ud = UserData(userdata);
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("strongroom-lease-events".into())
            .spawn(move || {
                let ud = ud;
                while !stopping.load(Ordering::Acquire) {
                    match sub.recv_blocking_timeout(Duration::from_millis(50)) {
                        Ok(Some(e)) => deliver(cb, &ud, e),
                        Ok(None) => {
                            // A timeout, or the engine is gone (then `try_recv` stays empty
                            // too and the loop just waits for the stop flag).
                        }
                        Err(_) => break,
                    }
                }
            })
            .map_err(|e| Error::internal(format!("could not start the event thread: {e}")))?;
        *out = into_handle(sr_subscription {
            stop,
            thread: Some(thread),
        });
        Ok(())
    })
}

/// Stop a subscription and free it. Returns after the callback has run for the last time
/// (unless called from inside the callback itself, which is allowed). NULL or a
/// subscription already freed: nothing happens.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_subscription_free(sub: *mut sr_subscription) {
    let Ok(mut sub) = free_handle(sub) else {
        return;
    };
    sub.stop.store(true, Ordering::Release);
    if let Some(t) = sub.thread.take() {
        if t.thread().id() != std::thread::current().id() {
            let _ = t.join();
        }
    }
}
