//! Configs, the virtual clock, opening and closing the engine, its lifecycle (init, unseal,
//! seal), clients and logins.

use std::ffi::c_char;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use secrecy::ExposeSecret;
use strongroom::{Error, Result};

use crate::abi::{
    Handle, Kind, block_on, free_handle, guard, handle, into_handle, json_string, out_arg, str_arg,
    string_out,
};
use crate::result::sr_result;

/// How to open a store. Made by `sr_config_dev`, `sr_config_memory`, `sr_config_sqlite` or
/// `sr_config_postgres`; freed by `sr_config_free`.
pub struct sr_config(strongroom::Config);

impl Handle for sr_config {
    const KIND: Kind = Kind::Config;
    const NAME: &'static str = "sr_config";
}

/// A clock that moves only when told to (`sr_clock_advance`): leases and TTLs in tests
/// without waiting. Freed by `sr_clock_free`.
pub struct sr_clock(strongroom::VirtualClock);

impl Handle for sr_clock {
    const KIND: Kind = Kind::Clock;
    const NAME: &'static str = "sr_clock";
}

/// An open engine. Made by `sr_open`; closed and freed by `sr_close`. Safe to use from many
/// threads at once.
pub struct sr_strongroom(strongroom::Strongroom);

impl Handle for sr_strongroom {
    const KIND: Kind = Kind::Strongroom;
    const NAME: &'static str = "sr_strongroom";
}

/// A handle that makes calls with one token. Made by `sr_client_new` or a login; freed by
/// `sr_client_free`. Safe to use from many threads at once.
pub struct sr_client {
    client: strongroom::Client,
    /// The transit and KV handles used so far, by mount: a handle remembers its policy
    /// decisions (the core's fast path), so keeping it makes repeated calls as fast as the
    /// typed API's.
    transits: Handles<strongroom::Transit>,
    kvs: Handles<strongroom::Kv>,
}

/// How many mounts of each kind a client keeps handles for.
const HANDLES: usize = 8;

/// Engine handles by mount, made on first use and kept for the client's life. The first
/// [`HANDLES`] mounts used get a slot, found again without a lock (a locked list and an `Arc`
/// per call were a few percent of a transit encrypt); a call on any further mount makes a
/// handle for that call only, which loses the remembered policy decisions, nothing else.
struct Handles<T> {
    /// Filled in order, under `fill`; never emptied.
    slots: [OnceLock<(Box<str>, T)>; HANDLES],
    fill: Mutex<()>,
}

/// A handle from [`Handles::get`]: kept by the client, or made for this call.
pub(crate) enum Got<'a, T> {
    Kept(&'a T),
    Once(T),
}

impl<T> std::ops::Deref for Got<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Got::Kept(t) => t,
            Got::Once(t) => t,
        }
    }
}

impl<T> Handles<T> {
    fn new() -> Handles<T> {
        Handles {
            slots: std::array::from_fn(|_| OnceLock::new()),
            fill: Mutex::new(()),
        }
    }

    fn find(&self, mount: &str) -> Option<&T> {
        for slot in &self.slots {
            match slot.get() {
                Some((m, h)) if **m == *mount => return Some(h),
                Some(_) => {}
                // Slots fill in order: none after an empty one is filled.
                None => return None,
            }
        }
        None
    }

    fn get(&self, mount: &str, make: impl FnOnce() -> T) -> Got<'_, T> {
        if let Some(h) = self.find(mount) {
            return Got::Kept(h);
        }
        let _fill = self.fill.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = self.find(mount) {
            return Got::Kept(h);
        }
        match self.slots.iter().find(|s| s.get().is_none()) {
            Some(slot) => Got::Kept(&slot.get_or_init(|| (mount.into(), make())).1),
            None => Got::Once(make()),
        }
    }
}

impl sr_client {
    fn new(client: strongroom::Client) -> sr_client {
        sr_client {
            client,
            transits: Handles::new(),
            kvs: Handles::new(),
        }
    }

    /// The transit handle for `mount`, made on first use and kept.
    pub(crate) fn transit(&self, mount: &str) -> Got<'_, strongroom::Transit> {
        self.transits.get(mount, || self.client.transit(mount))
    }

    /// The KV handle for `mount`, made on first use and kept.
    pub(crate) fn kv(&self, mount: &str) -> Got<'_, strongroom::Kv> {
        self.kvs.get(mount, || self.client.kv(mount))
    }
}

impl std::ops::Deref for sr_client {
    type Target = strongroom::Client;

    fn deref(&self) -> &strongroom::Client {
        &self.client
    }
}

impl Handle for sr_client {
    const KIND: Kind = Kind::Client;
    const NAME: &'static str = "sr_client";
}

fn config_out(
    out: *mut *mut sr_config,
    make: impl FnOnce() -> Result<strongroom::Config>,
) -> sr_result {
    guard(|| {
        // SAFETY: the header's contract: NULL or a writable pointer.
        let out = unsafe { out_arg(out, std::ptr::null_mut(), "config") }?;
        *out = into_handle(sr_config(make()?));
        Ok(())
    })
}

/// Dev mode: in memory, unsealed at open, `secret/` as KV v2, a root token
/// (`sr_dev_root_token`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_config_dev(out: *mut *mut sr_config) -> sr_result {
    config_out(out, || Ok(strongroom::Config::dev()))
}

/// In-memory storage: initialise and unseal it yourself.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_config_memory(out: *mut *mut sr_config) -> sr_result {
    config_out(out, || Ok(strongroom::Config::memory()))
}

/// A SQLite file, created if missing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_config_sqlite(
    path: *const c_char,
    out: *mut *mut sr_config,
) -> sr_result {
    config_out(out, || {
        // SAFETY: the header's contract: NULL or a NUL-terminated string.
        let path = unsafe { str_arg(path, "path") }?;
        Ok(strongroom::Config::sqlite(path))
    })
}

/// A PostgreSQL database (`postgres://user@host:5432/db`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_config_postgres(
    url: *const c_char,
    out: *mut *mut sr_config,
) -> sr_result {
    config_out(out, || {
        // SAFETY: the header's contract: NULL or a NUL-terminated string.
        let url = unsafe { str_arg(url, "url") }?;
        Ok(strongroom::Config::postgres(url))
    })
}

fn with_config(
    config: *mut sr_config,
    f: impl FnOnce(strongroom::Config) -> Result<strongroom::Config>,
) -> sr_result {
    guard(|| {
        // SAFETY: the header's contract: NULL or a live sr_config not used by another thread
        // during this call.
        let cfg = unsafe { config.as_mut() }
            .ok_or_else(|| Error::invalid_input("the sr_config is NULL"))?;
        cfg.0 = f(cfg.0.clone())?;
        Ok(())
    })
}

/// Unseal at open with the key in this file (written by `sr_init_with_key_file`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_config_unseal_key_file(
    config: *mut sr_config,
    path: *const c_char,
) -> sr_result {
    with_config(config, |c| {
        // SAFETY: the header's contract: NULL or a NUL-terminated string.
        let path = unsafe { str_arg(path, "path") }?;
        Ok(c.unseal_key_file(path))
    })
}

/// Use this virtual clock (the config keeps its own reference; the clock may be freed after).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_config_set_clock(
    config: *mut sr_config,
    clock: *const sr_clock,
) -> sr_result {
    with_config(config, |c| {
        // SAFETY: the header's contract: NULL or a live sr_clock.
        let clock = unsafe { handle(clock) }?;
        Ok(c.clock(Arc::new(clock.0.clone())))
    })
}

/// Free a config. NULL or a config already freed: nothing happens.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_config_free(config: *mut sr_config) {
    let _ = free_handle(config);
}

/// A new virtual clock at the current time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_clock_new(out: *mut *mut sr_clock) -> sr_result {
    guard(|| {
        // SAFETY: the header's contract: NULL or a writable pointer.
        let out = unsafe { out_arg(out, std::ptr::null_mut(), "clock") }?;
        *out = into_handle(sr_clock(strongroom::VirtualClock::new()));
        Ok(())
    })
}

/// Move the clock forward by `seconds`; then `sr_run_expiry` runs the work that came due.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_clock_advance(clock: *const sr_clock, seconds: u64) -> sr_result {
    guard(|| {
        // SAFETY: the header's contract: NULL or a live sr_clock.
        let clock = unsafe { handle(clock) }?;
        clock.0.advance(Duration::from_secs(seconds));
        Ok(())
    })
}

/// Free a clock (engines opened with it keep their own reference). NULL or a clock already
/// freed: nothing happens.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_clock_free(clock: *mut sr_clock) {
    let _ = free_handle(clock);
}

/// Open an engine on the configured storage. The config is not consumed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_open(
    config: *const sr_config,
    out: *mut *mut sr_strongroom,
) -> sr_result {
    guard(|| {
        // SAFETY: the header's contract: NULL or a live sr_config / a writable pointer.
        let (out, config) = unsafe { (out_arg(out, std::ptr::null_mut(), "sr")?, handle(config)?) };
        let sr = block_on(strongroom::Strongroom::open(config.0.clone()))?;
        *out = into_handle(sr_strongroom(sr));
        Ok(())
    })
}

/// Stop the engine (refuse new calls, finish the ones in flight) and free the handle. The
/// handle is freed even when the shutdown reports an error. Closing a handle twice answers
/// `SR_INVALID_INPUT` and does nothing. Clients made from it fail from then on; free them too.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_close(sr: *mut sr_strongroom) -> sr_result {
    guard(|| {
        let sr = free_handle(sr)?;
        block_on(sr.0.shutdown())
    })
}

fn with_sr(
    sr: *const sr_strongroom,
    f: impl FnOnce(&strongroom::Strongroom) -> Result<()>,
) -> sr_result {
    guard(|| {
        // SAFETY: the header's contract: NULL or a live sr_strongroom.
        let sr = unsafe { handle(sr) }?;
        f(&sr.0)
    })
}

/// Whether the store has been initialised.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_is_initialized(sr: *const sr_strongroom, out: *mut bool) -> sr_result {
    with_sr(sr, |sr| {
        // SAFETY: the header's contract: NULL or a writable pointer.
        let out = unsafe { out_arg(out, false, "initialized") }?;
        *out = block_on(sr.is_initialized())?;
        Ok(())
    })
}

/// Whether the engine is sealed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_is_sealed(sr: *const sr_strongroom, out: *mut bool) -> sr_result {
    with_sr(sr, |sr| {
        // SAFETY: the header's contract: NULL or a writable pointer.
        let out = unsafe { out_arg(out, false, "sealed") }?;
        *out = sr.is_sealed();
        Ok(())
    })
}

/// Initialise a new store with `shares` unseal key shares, `threshold` of which unseal it.
/// `*json_out`: `{"keys": [...], "keys_base64": [...], "root_token": "..."}` (secret: free it
/// with `sr_string_free`, which zeroes it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_init(
    sr: *const sr_strongroom,
    shares: u64,
    threshold: u64,
    json_out: *mut *mut c_char,
) -> sr_result {
    with_sr(sr, |sr| {
        // SAFETY: the header's contract: NULL or a writable pointer.
        let out = unsafe { out_arg(json_out, std::ptr::null_mut(), "json_out") }?;
        let init = block_on(sr.init(shares, threshold))?;
        let list = |v: &[secrecy::SecretString]| {
            v.iter()
                .map(|k| serde_json::Value::from(k.expose_secret()))
                .collect::<Vec<_>>()
        };
        let mut v = serde_json::json!({
            "keys": list(&init.keys),
            "keys_base64": list(&init.keys_base64),
            "root_token": init.root_token.expose_secret(),
        });
        let r = json_string(&v);
        crate::client::wipe(&mut v);
        *out = r?;
        Ok(())
    })
}

/// Initialise with one key share written to `key_path` (mode 0600, must not exist) and
/// unseal. `*root_token_out` is the root token (free with `sr_string_free`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_init_with_key_file(
    sr: *const sr_strongroom,
    key_path: *const c_char,
    root_token_out: *mut *mut c_char,
) -> sr_result {
    with_sr(sr, |sr| {
        // SAFETY: the header's contract: NULL or a NUL-terminated string / a writable pointer.
        let (out, path) = unsafe {
            (
                out_arg(root_token_out, std::ptr::null_mut(), "root_token_out")?,
                str_arg(key_path, "key_path")?,
            )
        };
        let token = block_on(sr.init_with_key_file(path))?;
        *out = string_out(token.expose_secret().to_string())?;
        Ok(())
    })
}

/// Submit one unseal key share (hex or base64). `*sealed_out`: whether it is still sealed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_unseal(
    sr: *const sr_strongroom,
    key: *const c_char,
    sealed_out: *mut bool,
) -> sr_result {
    with_sr(sr, |sr| {
        // SAFETY: the header's contract: NULL or a NUL-terminated string / a writable pointer.
        let (out, key) = unsafe {
            (
                out_arg(sealed_out, true, "sealed_out")?,
                str_arg(key, "key")?,
            )
        };
        let status = block_on(sr.unseal(key))?;
        *out = status.sealed;
        Ok(())
    })
}

/// Seal: drop every key from memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_seal(sr: *const sr_strongroom) -> sr_result {
    with_sr(sr, |sr| block_on(sr.seal()))
}

/// The root token of a dev-mode engine (`*token_out` NULL when it is not one). Free it with
/// `sr_string_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_dev_root_token(
    sr: *const sr_strongroom,
    token_out: *mut *mut c_char,
) -> sr_result {
    with_sr(sr, |sr| {
        // SAFETY: the header's contract: NULL or a writable pointer.
        let out = unsafe { out_arg(token_out, std::ptr::null_mut(), "token_out") }?;
        if let Some(t) = sr.dev_root_token() {
            *out = string_out(t.expose_secret().to_string())?;
        }
        Ok(())
    })
}

/// Run the lease expiry work that is due now (the background runner does this itself; with a
/// virtual clock, call it after `sr_clock_advance`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_run_expiry(sr: *const sr_strongroom) -> sr_result {
    with_sr(sr, |sr| block_on(sr.run_expiry()).map(|_| ()))
}

/// A client that makes calls with `token`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_client_new(
    sr: *const sr_strongroom,
    token: *const c_char,
    out: *mut *mut sr_client,
) -> sr_result {
    with_sr(sr, |sr| {
        // SAFETY: the header's contract: NULL or a NUL-terminated string / a writable pointer.
        let (out, token) = unsafe {
            (
                out_arg(out, std::ptr::null_mut(), "client")?,
                str_arg(token, "token")?,
            )
        };
        *out = into_handle(sr_client::new(sr.client(token)));
        Ok(())
    })
}

/// The token a client uses (free with `sr_string_free`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_client_token(
    client: *const sr_client,
    token_out: *mut *mut c_char,
) -> sr_result {
    guard(|| {
        // SAFETY: the header's contract: NULL or a live sr_client / a writable pointer.
        let (out, c) = unsafe {
            (
                out_arg(token_out, std::ptr::null_mut(), "token_out")?,
                handle(client)?,
            )
        };
        *out = string_out(c.token_id().to_string())?;
        Ok(())
    })
}

/// Free a client. NULL or a client already freed: nothing happens.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_client_free(client: *mut sr_client) {
    let _ = free_handle(client);
}

fn login(
    sr: *const sr_strongroom,
    out: *mut *mut sr_client,
    args: [(*const c_char, &str); 3],
    f: impl AsyncFnOnce(&strongroom::Strongroom, &str, &str, &str) -> Result<strongroom::Client>,
) -> sr_result {
    with_sr(sr, |sr| {
        let [(a, an), (b, bn), (c, cn)] = args;
        // SAFETY: the header's contract: NULL or NUL-terminated strings / a writable pointer.
        let (out, a, b, c) = unsafe {
            (
                out_arg(out, std::ptr::null_mut(), "client")?,
                str_arg(a, an)?,
                str_arg(b, bn)?,
                str_arg(c, cn)?,
            )
        };
        let client = block_on(f(sr, a, b, c))?;
        *out = into_handle(sr_client::new(client));
        Ok(())
    })
}

/// Log in with userpass at `mount`; `*out` is a client holding the new token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_login_userpass(
    sr: *const sr_strongroom,
    mount: *const c_char,
    username: *const c_char,
    password: *const c_char,
    out: *mut *mut sr_client,
) -> sr_result {
    login(
        sr,
        out,
        [
            (mount, "mount"),
            (username, "username"),
            (password, "password"),
        ],
        async |sr, m, u, p| sr.login_userpass(m, u, p).await,
    )
}

/// Log in with AppRole at `mount`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_login_approle(
    sr: *const sr_strongroom,
    mount: *const c_char,
    role_id: *const c_char,
    secret_id: *const c_char,
    out: *mut *mut sr_client,
) -> sr_result {
    login(
        sr,
        out,
        [
            (mount, "mount"),
            (role_id, "role_id"),
            (secret_id, "secret_id"),
        ],
        async |sr, m, r, s| sr.login_approle(m, r, s).await,
    )
}

/// Log in with a Kubernetes service-account JWT at `mount`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_login_kubernetes(
    sr: *const sr_strongroom,
    mount: *const c_char,
    role: *const c_char,
    jwt: *const c_char,
    out: *mut *mut sr_client,
) -> sr_result {
    login(
        sr,
        out,
        [(mount, "mount"), (role, "role"), (jwt, "jwt")],
        async |sr, m, r, j| sr.login_kubernetes(m, r, j).await,
    )
}
