//! The boundary: the last error of each thread, the panic guard, the library's runtime, the
//! checks on raw pointers, and the registry of everything handed out (which makes a second
//! free, or a free of something the library never handed out, do nothing).

use std::alloc::Layout;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use strongroom::{Error, ErrorCode, Result};
use zeroize::Zeroize;

use crate::result::sr_result;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message never holds a NUL from the core; one that did would be cut there.
    let text = message.split('\0').next().unwrap_or_default();
    let c = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

fn clear_last_error() {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        if !e.as_bytes().is_empty() {
            *e = CString::default();
        }
    });
}

/// Run one ABI call: its error becomes the status and this thread's last error message; a
/// panic becomes `SR_INTERNAL` and never unwinds into C.
pub fn guard(f: impl FnOnce() -> Result<()>) -> sr_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            clear_last_error();
            sr_result::SR_OK
        }
        Ok(Err(e)) => {
            set_last_error(e.message());
            sr_result::from_code(e.code())
        }
        Err(_) => {
            set_last_error("strongroom panicked during this call (a bug: please report it)");
            sr_result::SR_INTERNAL
        }
    }
}

/// The message of the last failed call on this thread ("" after a call that succeeded).
/// The pointer stays valid until the next call into the library on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn sr_error_message() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

static NAMES: OnceLock<Vec<(u32, CString)>> = OnceLock::new();

/// The snake_case name of a status (`"ok"`, `"permission_denied"`, ...), as the core's
/// `ErrorCode::name()` spells it; `"unknown"` for a number that is no status. Static storage.
#[unsafe(no_mangle)]
pub extern "C" fn sr_result_name(code: u32) -> *const c_char {
    let names = NAMES.get_or_init(|| {
        let mut v = vec![(0, CString::from(c"ok"))];
        v.extend(
            ErrorCode::ALL
                .iter()
                .filter_map(|c| Some((c.as_u32(), CString::new(c.name()).ok()?))),
        );
        v
    });
    names
        .iter()
        .find(|(n, _)| *n == code)
        .map_or(c"unknown".as_ptr(), |(_, s)| s.as_ptr())
}

/// The library's version (`"0.1.0"`). Static storage.
#[unsafe(no_mangle)]
pub extern "C" fn sr_version() -> *const c_char {
    static VERSION: OnceLock<CString> = OnceLock::new();
    VERSION
        .get_or_init(|| CString::new(env!("CARGO_PKG_VERSION")).unwrap_or_default())
        .as_ptr()
}

// ---- the runtime ----

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("strongroom-ffi")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::internal(format!("could not start the strongroom runtime: {e}")))
}

/// Run `fut` to completion on the library's runtime, blocking this thread. Refused from a
/// thread that is inside a Tokio runtime (blocking there would stall or deadlock it).
pub(crate) fn block_on<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::new(
            ErrorCode::UnsupportedOperation,
            "a blocking strongroom call was made from inside a Tokio runtime; call it from a \
             thread outside the runtime",
        ));
    }
    let rt = runtime()?;
    let mut fut = fut;
    // SAFETY: `fut` is never moved again: the binding is shadowed by the pinned reference
    // right here, and the future is dropped in place when this function returns. (`pin!`
    // would copy the future, several KiB for the engine's calls, on every call.)
    let mut fut = unsafe { std::pin::Pin::new_unchecked(&mut fut) };
    // Most calls that need no I/O (transit on a key in memory, a cached KV read) finish in
    // their first poll: run it here with the runtime's context entered, which costs far less
    // than a full `block_on`; the rest continue in `block_on`, which polls again at once.
    {
        let _entered = rt.enter();
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
    rt.block_on(fut)
}

/// Enter the library's runtime (for calls that need its context without blocking).
pub(crate) fn enter() -> Result<tokio::runtime::EnterGuard<'static>> {
    Ok(runtime()?.enter())
}

// ---- the registry of what was handed out ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string of this many bytes, its NUL included.
    String(usize),
    /// A byte buffer of this many bytes.
    Bytes(usize),
    Config,
    Clock,
    Strongroom,
    Client,
    Subscription,
    Batch,
}

/// The registry's hasher: its keys are addresses the library made itself (no attacker picks
/// them), so SipHash's flooding resistance buys nothing, and it was a few percent of every
/// call that hands out a string (one insert and one removal).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        // Fibonacci hashing; the rotation brings the well-mixed high bits down, since the
        // table takes its bucket index from the low bits and its tag from the top ones.
        let h = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ h.rotate_right(29);
    }
}

type Registry = HashMap<usize, Kind, BuildHasherDefault<AddrHasher>>;

static LIVE: Mutex<Option<Registry>> = Mutex::new(None);

/// The registry keeps addresses bit-inverted: a leak checker (LeakSanitizer, valgrind) that
/// scans memory for pointers must not take the registry for an owner, or a buffer the caller
/// forgot to free would never show up as a leak.
fn key(addr: usize) -> usize {
    !addr
}

fn register(addr: usize, kind: Kind) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.get_or_insert_with(Registry::default)
        .insert(key(addr), kind);
}

/// Take `addr` out of the registry if it is live and of this kind (`String` and `Bytes` match
/// any length); the kind it had, with its length.
fn unregister(addr: usize, kind: Kind) -> Option<Kind> {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    let map = live.as_mut()?;
    // One lookup on the usual path; a pointer of another kind (a caller's mistake) goes back.
    let found = map.remove(&key(addr))?;
    let same = match (found, kind) {
        (Kind::String(_), Kind::String(_)) | (Kind::Bytes(_), Kind::Bytes(_)) => true,
        (a, b) => a == b,
    };
    if same {
        Some(found)
    } else {
        map.insert(key(addr), found);
        None
    }
}

/// A handle type: what its registry entry says.
pub(crate) trait Handle: Sized {
    const KIND: Kind;
    const NAME: &'static str;
}

/// Box `value` and hand it out as a handle.
pub(crate) fn into_handle<T: Handle>(value: T) -> *mut T {
    let p = Box::into_raw(Box::new(value));
    register(p as usize, T::KIND);
    p
}

/// Take back a handle handed out by [`into_handle`]; `None` for NULL, a pointer the library
/// did not hand out as this type, or one already freed.
pub(crate) fn take_handle<T: Handle>(p: *mut T) -> Option<Box<T>> {
    if p.is_null() {
        return None;
    }
    unregister(p as usize, T::KIND)?;
    // SAFETY: the registry held `p` as a live `T`: it came from `Box::into_raw` in
    // `into_handle` and was not taken back before (taking it removed it from the registry).
    Some(unsafe { Box::from_raw(p) })
}

/// Free a handle; an error when it is not a live handle of this type.
pub(crate) fn free_handle<T: Handle>(p: *mut T) -> Result<Box<T>> {
    if p.is_null() {
        return Err(Error::invalid_input(format!("the {} is NULL", T::NAME)));
    }
    take_handle(p).ok_or_else(|| {
        Error::invalid_input(format!(
            "not a live {} (already freed, or not one the library handed out)",
            T::NAME
        ))
    })
}

// ---- arguments ----

/// A handle argument.
///
/// # Safety
/// `p` is NULL or points to a live `T` handed out by the library, not freed during the call.
pub(crate) unsafe fn handle<'a, T: Handle>(p: *const T) -> Result<&'a T> {
    // SAFETY: the caller's contract: NULL or a live handle.
    unsafe { p.as_ref() }.ok_or_else(|| Error::invalid_input(format!("the {} is NULL", T::NAME)))
}

/// A string argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that stays valid during the call.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::invalid_input(format!("`{what}` is NULL")));
    }
    // The usual argument is a short ASCII name (a mount, a key): one pass finds its NUL and
    // checks it is ASCII, cheaper than `strlen` and then UTF-8 validation. Anything else
    // takes the general path below.
    let bytes = p.cast::<u8>();
    for n in 0..SHORT {
        // SAFETY: the string is NUL-terminated and this loop stops at its NUL, so every byte
        // read is one of the string's.
        let b = unsafe { *bytes.add(n) };
        if b == 0 {
            // SAFETY: `n` readable bytes before the NUL, all ASCII, so valid UTF-8.
            return Ok(unsafe {
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(bytes, n))
            });
        }
        if !b.is_ascii() {
            break;
        }
    }
    // SAFETY: not NULL (checked above); the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Error::invalid_input(format!("`{what}` is not valid UTF-8")))
}

/// How long a string [`str_arg`] checks byte by byte before `strlen` and UTF-8 validation.
const SHORT: usize = 64;

/// An optional string argument: NULL is `None`.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: the caller's contract, passed on.
        unsafe { str_arg(p, what) }.map(Some)
    }
}

/// A byte buffer argument: NULL is allowed when `len` is 0.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that stay valid during the call.
pub(crate) unsafe fn bytes_arg<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Error::invalid_input(format!(
                "`{what}` is NULL with a length of {len}"
            )))
        };
    }
    // SAFETY: not NULL; the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An out-parameter, set to `empty` at once so a failed call leaves nothing behind.
///
/// # Safety
/// `p` is NULL or points to a writable `T`.
pub(crate) unsafe fn out_arg<'a, T>(p: *mut T, empty: T, what: &str) -> Result<&'a mut T> {
    // SAFETY: the caller's contract: NULL or writable.
    let out = unsafe { p.as_mut() }
        .ok_or_else(|| Error::invalid_input(format!("the out-parameter `{what}` is NULL")))?;
    *out = empty;
    Ok(out)
}

/// A JSON object argument; NULL is the empty object.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn json_arg(p: *const c_char, what: &str) -> Result<strongroom::Data> {
    // SAFETY: the caller's contract, passed on.
    let Some(text) = (unsafe { opt_str_arg(p, what) })? else {
        return Ok(strongroom::Data::new());
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::invalid_input(format!(
            "`{what}` is not a JSON object"
        ))),
        Err(e) => Err(Error::invalid_input(format!(
            "`{what}` is not valid JSON: {e}"
        ))),
    }
}

// ---- what is handed out ----

/// Strings and byte buffers are handed out in allocations of whole 8-byte words, 8-aligned,
/// their length kept in the registry: freeing needs no `strlen`, and zeroes a word at a time
/// rather than a byte at a time (handing a ciphertext out and freeing it, with three copies
/// and two byte-wise wipes, was a sixth of a transit encrypt through the ABI).
const WORD: usize = std::mem::size_of::<u64>();

fn out_layout(len: usize) -> Layout {
    let size = len.max(1).div_ceil(WORD).saturating_mul(WORD);
    match Layout::from_size_align(size, WORD) {
        Ok(layout) => layout,
        // Only for a length within a word of `isize::MAX`, which nothing held in memory has:
        // abort, as a failed allocation does.
        Err(_) => std::process::abort(),
    }
}

/// A new allocation holding `bytes`, then a NUL when `nul`, then zeroes up to the next word.
fn alloc_out(bytes: &[u8], nul: bool) -> (*mut u8, usize) {
    let len = bytes.len() + usize::from(nul);
    let layout = out_layout(len);
    // SAFETY: the layout's size is at least one word.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `p` holds `layout.size()` >= `bytes.len()` writable bytes, a fresh allocation
    // that cannot overlap `bytes`; the rest (the NUL and the padding) is zeroed.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        std::ptr::write_bytes(p.add(bytes.len()), 0, layout.size() - bytes.len());
    }
    (p, len)
}

/// Zero and free an allocation from [`alloc_out`] of `len` bytes.
///
/// # Safety
/// `p` came from `alloc_out` with this `len` and is freed only here, once.
unsafe fn free_out(p: *mut u8, len: usize) {
    let layout = out_layout(len);
    let words = p.cast::<u64>();
    for i in 0..layout.size() / WORD {
        // SAFETY: `p` is 8-aligned and holds `layout.size()` bytes, whole words. Volatile, so
        // the compiler cannot drop the writes as dead before the free.
        unsafe { words.add(i).write_volatile(0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: allocated by `alloc_out` with this layout.
    unsafe { std::alloc::dealloc(p, layout) };
}

/// A text handed out as a NUL-terminated string (free with `sr_string_free`, which zeroes
/// it). `text` is copied once; the caller wipes its own copy when it is a secret.
pub(crate) fn text_out(text: &str) -> Result<*mut c_char> {
    if text.as_bytes().contains(&0) {
        return Err(Error::internal(
            "a value held a NUL byte and cannot be handed to C as a string",
        ));
    }
    let (p, len) = alloc_out(text.as_bytes(), true);
    register(p as usize, Kind::String(len));
    Ok(p.cast())
}

/// A transit ciphertext (`vault:v<n>:<base64>`, which never holds a NUL) handed out as a
/// string, as [`text_out`] without the NUL scan.
pub(crate) fn ct_string_out(ct: &strongroom::Ciphertext) -> *mut c_char {
    let text = ct.as_str().as_bytes();
    debug_assert!(!text.contains(&0), "a ciphertext held a NUL byte");
    let (p, len) = alloc_out(text, true);
    register(p as usize, Kind::String(len));
    p.cast()
}

/// A string handed out: NUL-terminated, freed (and zeroed) by `sr_string_free`. The bytes are
/// copied once and `s` is wiped, so no copy is left behind.
pub(crate) fn string_out(mut s: String) -> Result<*mut c_char> {
    let r = text_out(&s);
    s.zeroize();
    r
}

/// A JSON value handed out as a string.
pub(crate) fn json_string(v: &serde_json::Value) -> Result<*mut c_char> {
    let s = serde_json::to_string(v)
        .map_err(|e| Error::internal(format!("could not write JSON: {e}")))?;
    string_out(s)
}

/// Free a string the library handed out, zeroing it first. NULL, a string already freed, or
/// a pointer the library did not hand out as a string: nothing happens.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    let Some(Kind::String(len)) = unregister(s as usize, Kind::String(0)) else {
        return;
    };
    // SAFETY: the registry held `s` as a live string of `len` bytes from `alloc_out` in
    // `text_out`; unregistering it means this is its only free.
    unsafe { free_out(s.cast(), len) };
}

/// A byte buffer handed out: `(pointer, length)`; NULL for an empty buffer. Freed (and
/// zeroed) by `sr_bytes_free`.
pub(crate) fn bytes_out(b: &[u8]) -> (*mut u8, usize) {
    if b.is_empty() {
        return (std::ptr::null_mut(), 0);
    }
    let (p, len) = alloc_out(b, false);
    register(p as usize, Kind::Bytes(len));
    (p, len)
}

/// Free a byte buffer the library handed out (its length is known), zeroing it first. NULL,
/// a buffer already freed, or a pointer the library did not hand out: nothing happens.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_bytes_free(data: *mut u8) {
    if data.is_null() {
        return;
    }
    let Some(Kind::Bytes(len)) = unregister(data as usize, Kind::Bytes(0)) else {
        return;
    };
    // SAFETY: the registry held `data` as a live buffer of `len` bytes from `alloc_out` in
    // `bytes_out`; unregistering it means this is its only free.
    unsafe { free_out(data, len) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_a_status_not_an_unwind() {
        let r = guard(|| panic!("boom"));
        assert_eq!(r, sr_result::SR_INTERNAL);
        // SAFETY: the message pointer is valid until the next call on this thread.
        let msg = unsafe { CStr::from_ptr(sr_error_message()) };
        assert!(msg.to_str().unwrap().contains("panicked"));
        assert_eq!(guard(|| Ok(())), sr_result::SR_OK);
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(sr_error_message()) };
        assert_eq!(msg.to_bytes(), b"");
    }

    #[test]
    fn blocking_inside_a_runtime_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(async { block_on(async { Ok(()) }) })
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnsupportedOperation);
        assert!(block_on(async { Ok(1) }).is_ok());
    }

    #[test]
    fn strings_and_bytes_free_once() {
        let s = string_out("secret".into()).unwrap();
        // SAFETY: `s` was handed out above; the second and third frees must do nothing.
        unsafe {
            sr_string_free(s);
            sr_string_free(s);
            sr_string_free(std::ptr::null_mut());
        }
        let (p, n) = bytes_out(b"abc");
        assert_eq!(n, 3);
        // SAFETY: as above; a string pointer passed as bytes is not freed as bytes.
        unsafe {
            sr_bytes_free(p);
            sr_bytes_free(p);
        }
        let s = string_out("x".into()).unwrap();
        // SAFETY: a string is not a byte buffer: nothing happens, then it is freed properly.
        unsafe {
            sr_bytes_free(s.cast());
            sr_string_free(s);
        }
        assert_eq!(bytes_out(b""), (std::ptr::null_mut(), 0));
    }

    #[test]
    fn handed_out_strings_and_bytes_hold_their_value() {
        for text in ["", "x", "secret", "exactly8", &"long ".repeat(40)] {
            let s = string_out(text.to_string()).unwrap();
            // SAFETY: `s` was just handed out, NUL-terminated.
            assert_eq!(unsafe { CStr::from_ptr(s) }.to_bytes(), text.as_bytes());
            // SAFETY: handed out above, freed once.
            unsafe { sr_string_free(s) };
        }
        assert!(string_out("a\0b".into()).is_err());
        let (p, n) = bytes_out(b"0123456789");
        // SAFETY: `p` holds the `n` bytes handed out above.
        assert_eq!(unsafe { std::slice::from_raw_parts(p, n) }, b"0123456789");
        // SAFETY: handed out above, freed once.
        unsafe { sr_bytes_free(p) };
    }

    #[test]
    fn string_arguments_short_long_and_not_ascii() {
        let long = "k".repeat(SHORT + 10);
        for text in ["", "transit", long.as_str(), "ключ", "a\u{10348}b"] {
            let c = CString::new(text).unwrap();
            // SAFETY: a NUL-terminated string that outlives the call.
            assert_eq!(unsafe { str_arg(c.as_ptr(), "s") }.unwrap(), text);
        }
        for bad in [&b"\xff\xfe"[..], b"ok\xc3", &[b'a'; SHORT + 3][..]] {
            let mut v = bad.to_vec();
            if bad.len() > SHORT {
                v.push(0xff);
            }
            let c = CString::new(v).unwrap();
            // SAFETY: as above.
            let err = unsafe { str_arg(c.as_ptr(), "s") }.unwrap_err();
            assert!(err.message().contains("UTF-8"));
        }
        // SAFETY: NULL is allowed.
        assert!(unsafe { str_arg(std::ptr::null(), "s") }.is_err());
    }

    #[test]
    fn names_follow_the_core_table() {
        for c in ErrorCode::ALL {
            // SAFETY: static strings.
            let n = unsafe { CStr::from_ptr(sr_result_name(c.as_u32())) };
            assert_eq!(n.to_str().unwrap(), c.name());
        }
        // SAFETY: static strings.
        unsafe {
            assert_eq!(CStr::from_ptr(sr_result_name(0)).to_bytes(), b"ok");
            assert_eq!(CStr::from_ptr(sr_result_name(999)).to_bytes(), b"unknown");
        }
    }
}
