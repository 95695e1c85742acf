//! Calls made with a client: the generic `sr_request`, KV version 2, database credentials and
//! leases. Each wraps one core call; JSON results are written the way the Python binding
//! shapes them.

use std::ffi::c_char;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use strongroom::{Error, Operation, Request, Result};
use zeroize::Zeroize;

use crate::abi::{guard, handle, json_arg, json_string, out_arg, str_arg, string_out};
use crate::engine::sr_client;
use crate::result::sr_result;

/// Wipe every string in a JSON value (secrets that were copied into it for output).
pub(crate) fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        Value::Object(m) => m.values_mut().for_each(wipe),
        _ => {}
    }
}

/// `v` handed out as a JSON string, then wiped.
pub(crate) fn secret_json_out(mut v: Value) -> Result<*mut c_char> {
    let r = json_string(&v);
    wipe(&mut v);
    r
}

pub(crate) fn with_client(
    client: *const sr_client,
    f: impl FnOnce(&sr_client) -> Result<()>,
) -> sr_result {
    guard(|| {
        // SAFETY: the header's contract: NULL or a live sr_client.
        let c = unsafe { handle(client) }?;
        f(c)
    })
}

/// A response as `{data, auth, lease_id, lease_duration, renewable, warnings, wrap_info}`.
fn response_json(r: &strongroom::Response) -> Value {
    json!({
        "data": r.data,
        "auth": r.auth.as_ref().map(strongroom::Auth::to_json),
        "lease_id": r.lease_id,
        "lease_duration": r.lease_duration,
        "renewable": r.renewable,
        "warnings": r.warnings,
        "wrap_info": r.wrap_info.as_ref().map(strongroom::WrapInfo::to_json),
    })
}

/// Any call by path. `method`: `read`, `write`, `list`, `delete`, `patch`, `create` (or the
/// HTTP verbs `GET`, `POST`, `PUT`, `LIST`, `DELETE`, `PATCH`), any case. `json_body`: a JSON
/// object or NULL. `*json_out`: the response as
/// `{"data", "auth", "lease_id", "lease_duration", "renewable", "warnings", "wrap_info"}`,
/// `{"keys": [...]}` for a list, NULL for a read of nothing or a delete. Free it with
/// `sr_string_free` (it may hold secrets; freeing zeroes it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_request(
    client: *const sr_client,
    method: *const c_char,
    path: *const c_char,
    json_body: *const c_char,
    json_out: *mut *mut c_char,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings / a writable pointer.
        let (out, method, path, mut body) = unsafe {
            (
                out_arg(json_out, std::ptr::null_mut(), "json_out")?,
                str_arg(method, "method")?,
                str_arg(path, "path")?,
                json_arg(json_body, "json_body")?,
            )
        };
        let op = match method.to_ascii_lowercase().as_str() {
            "read" | "get" => Operation::Read,
            "write" | "post" | "put" | "update" => Operation::Update,
            "create" => Operation::Create,
            "list" => Operation::List,
            "delete" => Operation::Delete,
            "patch" => Operation::Patch,
            other => return Err(Error::invalid_input(format!("unknown method `{other}`"))),
        };
        let result = match op {
            Operation::Read => crate::abi::block_on(c.read(path))?.map(|r| response_json(&r)),
            Operation::List => Some(json!({ "keys": crate::abi::block_on(c.list(path))? })),
            Operation::Delete => {
                crate::abi::block_on(c.delete(path))?;
                None
            }
            op => {
                let req = Request::new(op, path).with_data(std::mem::take(&mut body));
                Some(response_json(&crate::abi::block_on(c.handle(req))?))
            }
        };
        if let Some(v) = result {
            *out = secret_json_out(v)?;
        }
        Ok(())
    })
}

// ---- KV version 2 ----

fn kv_write(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    json_data: *const c_char,
    version_out: *mut u64,
    f: impl AsyncFnOnce(&strongroom::Kv, &str, &strongroom::Data) -> Result<strongroom::KvVersion>,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings / a writable pointer.
        let (out, mount, key, data) = unsafe {
            (
                out_arg(version_out, 0, "version_out")?,
                str_arg(mount, "mount")?,
                str_arg(key, "key")?,
                json_arg(json_data, "json_data")?,
            )
        };
        let mut data = data;
        let r = crate::abi::block_on(f(&c.kv(mount), key, &data));
        data.values_mut().for_each(wipe);
        *out = r?.version;
        Ok(())
    })
}

/// Write `json_data` (a JSON object) as a new version of `key`; `*version_out` is its number.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_kv_put(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    json_data: *const c_char,
    version_out: *mut u64,
) -> sr_result {
    kv_write(
        client,
        mount,
        key,
        json_data,
        version_out,
        async |kv, k, d| kv.put(k, d).await,
    )
}

/// Write a new version only if the current version is `cas` (0: the key must not exist).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_kv_put_cas(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    json_data: *const c_char,
    cas: u64,
    version_out: *mut u64,
) -> sr_result {
    kv_write(
        client,
        mount,
        key,
        json_data,
        version_out,
        async |kv, k, d| kv.put_cas(k, d, cas).await,
    )
}

/// Merge `json_data` (RFC 7386: `null` removes a field) into the latest version, as a new
/// version.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_kv_patch(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    json_data: *const c_char,
    version_out: *mut u64,
) -> sr_result {
    kv_write(
        client,
        mount,
        key,
        json_data,
        version_out,
        async |kv, k, d| kv.patch(k, d).await,
    )
}

fn kv_version_json(v: &strongroom::KvVersion) -> Value {
    json!({
        "version": v.version,
        "created_time": v.created_time,
        "deletion_time": v.deletion_time,
        "destroyed": v.destroyed,
        "custom_metadata": v.custom_metadata,
    })
}

fn kv_read(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    json_out: *mut *mut c_char,
    version: Option<u64>,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings / a writable pointer.
        let (out, mount, key) = unsafe {
            (
                out_arg(json_out, std::ptr::null_mut(), "json_out")?,
                str_arg(mount, "mount")?,
                str_arg(key, "key")?,
            )
        };
        let kv = c.kv(mount);
        let got = match version {
            Some(v) => crate::abi::block_on(kv.get_version(key, v))?,
            None => crate::abi::block_on(kv.get(key))?,
        };
        if let Some(s) = got {
            *out = secret_json_out(json!({
                "data": s.data.expose(),
                "version": s.metadata.version,
                "metadata": kv_version_json(&s.metadata),
            }))?;
        }
        Ok(())
    })
}

/// The latest version of `key`: `*json_out` is `{"data": {...}, "version": n, "metadata":
/// {...}}`, or NULL when the key is missing, deleted or destroyed. Free it with
/// `sr_string_free` (zeroed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_kv_get(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    json_out: *mut *mut c_char,
) -> sr_result {
    kv_read(client, mount, key, json_out, None)
}

/// A given version of `key`, as `sr_kv_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_kv_get_version(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    version: u64,
    json_out: *mut *mut c_char,
) -> sr_result {
    kv_read(client, mount, key, json_out, Some(version))
}

/// Soft-delete the latest version of `key`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_kv_delete(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings.
        let (mount, key) = unsafe { (str_arg(mount, "mount")?, str_arg(key, "key")?) };
        crate::abi::block_on(c.kv(mount).delete(key))
    })
}

/// Keys under `prefix` (folders end in `/`): `*json_out` is a JSON array of strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_kv_list(
    client: *const sr_client,
    mount: *const c_char,
    prefix: *const c_char,
    json_out: *mut *mut c_char,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings / a writable pointer.
        let (out, mount, prefix) = unsafe {
            (
                out_arg(json_out, std::ptr::null_mut(), "json_out")?,
                str_arg(mount, "mount")?,
                str_arg(prefix, "prefix")?,
            )
        };
        let keys = crate::abi::block_on(c.kv(mount).list(prefix))?;
        *out = json_string(&json!(keys))?;
        Ok(())
    })
}

/// The metadata of `key`: `*json_out` is `{"current_version", "oldest_version",
/// "max_versions", "cas_required", "delete_version_after", "custom_metadata",
/// "created_time", "updated_time", "versions": {"1": {...}}}`, or NULL when it does not exist.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_kv_metadata(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    json_out: *mut *mut c_char,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings / a writable pointer.
        let (out, mount, key) = unsafe {
            (
                out_arg(json_out, std::ptr::null_mut(), "json_out")?,
                str_arg(mount, "mount")?,
                str_arg(key, "key")?,
            )
        };
        if let Some(m) = crate::abi::block_on(c.kv(mount).metadata(key))? {
            let versions: serde_json::Map<String, Value> = m
                .versions
                .iter()
                .map(|(n, v)| {
                    (
                        n.clone(),
                        json!({
                            "created_time": v.created_time,
                            "deletion_time": v.deletion_time,
                            "destroyed": v.destroyed,
                        }),
                    )
                })
                .collect();
            *out = json_string(&json!({
                "current_version": m.current_version,
                "oldest_version": m.oldest_version,
                "max_versions": m.max_versions,
                "cas_required": m.cas_required,
                "delete_version_after": m.delete_version_after,
                "custom_metadata": m.custom_metadata,
                "created_time": m.created_time,
                "updated_time": m.updated_time,
                "versions": versions,
            }))?;
        }
        Ok(())
    })
}

// ---- database credentials ----

/// A dynamic database credential and its lease. Every string is owned by the struct: free
/// them all with `sr_db_credential_free` (the password is zeroed; freeing twice is safe).
#[repr(C)]
pub struct sr_db_credential {
    /// The generated database username.
    pub username: *mut c_char,
    /// The generated password (secret).
    pub password: *mut c_char,
    /// The lease to renew or revoke (`database/creds/<role>/<id>`).
    pub lease_id: *mut c_char,
    /// Seconds left on the lease.
    pub lease_duration: u64,
    /// Whether the lease can be renewed.
    pub renewable: bool,
}

impl sr_db_credential {
    fn empty() -> sr_db_credential {
        sr_db_credential {
            username: std::ptr::null_mut(),
            password: std::ptr::null_mut(),
            lease_id: std::ptr::null_mut(),
            lease_duration: 0,
            renewable: false,
        }
    }
}

/// A new credential for `role` on the database mount `mount`, under a lease. `*out` is filled
/// in; free it with `sr_db_credential_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_database_creds(
    client: *const sr_client,
    mount: *const c_char,
    role: *const c_char,
    out: *mut sr_db_credential,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings / a writable pointer.
        let (out, mount, role) = unsafe {
            (
                out_arg(out, sr_db_credential::empty(), "out")?,
                str_arg(mount, "mount")?,
                str_arg(role, "role")?,
            )
        };
        let cred = crate::abi::block_on(c.database(mount).creds(role))?;
        let mut filled = sr_db_credential::empty();
        let made = (|| {
            filled.username = string_out(cred.username.clone())?;
            filled.password = string_out(cred.password.expose_secret().to_string())?;
            filled.lease_id = string_out(cred.lease_id.clone())?;
            Ok::<(), Error>(())
        })();
        if let Err(e) = made {
            // SAFETY: `filled` holds only strings handed out just above, or NULL.
            unsafe { sr_db_credential_free(&mut filled) };
            return Err(e);
        }
        filled.lease_duration = cred.lease_duration.as_secs();
        filled.renewable = cred.renewable;
        *out = filled;
        Ok(())
    })
}

/// Free the strings of a credential (the password zeroed) and set them to NULL, so freeing
/// it twice does nothing. NULL: nothing happens.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_db_credential_free(cred: *mut sr_db_credential) {
    // SAFETY: the header's contract: NULL or a writable sr_db_credential.
    let Some(cred) = (unsafe { cred.as_mut() }) else {
        return;
    };
    for p in [&mut cred.username, &mut cred.password, &mut cred.lease_id] {
        // SAFETY: each field is NULL or a string handed out by the library (checked by the
        // registry, which ignores anything else).
        unsafe { crate::abi::sr_string_free(*p) };
        *p = std::ptr::null_mut();
    }
}

// ---- leases ----

/// A lease's details: `*json_out` is `{"id", "path", "issue_time", "expire_time",
/// "last_renewal", "ttl", "renewable"}`. An unknown lease is `SR_INVALID_INPUT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_lease_lookup(
    client: *const sr_client,
    lease_id: *const c_char,
    json_out: *mut *mut c_char,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or a NUL-terminated string / a writable pointer.
        let (out, id) = unsafe {
            (
                out_arg(json_out, std::ptr::null_mut(), "json_out")?,
                str_arg(lease_id, "lease_id")?,
            )
        };
        let d = crate::abi::block_on(c.leases().lookup(id))?;
        *out = json_string(&json!({
            "id": d.id,
            "path": d.path,
            "issue_time": d.issue_time,
            "expire_time": d.expire_time,
            "last_renewal": d.last_renewal,
            "ttl": d.ttl,
            "renewable": d.renewable,
        }))?;
        Ok(())
    })
}

/// Renew a lease by `increment_seconds` (0: the default); `*ttl_out` is its new TTL in
/// seconds.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_lease_renew(
    client: *const sr_client,
    lease_id: *const c_char,
    increment_seconds: u64,
    ttl_out: *mut u64,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or a NUL-terminated string / a writable pointer.
        let (out, id) = unsafe {
            (
                out_arg(ttl_out, 0, "ttl_out")?,
                str_arg(lease_id, "lease_id")?,
            )
        };
        let r = crate::abi::block_on(c.leases().renew(id, Duration::from_secs(increment_seconds)))?;
        *out = r.ttl.as_secs();
        Ok(())
    })
}

/// Revoke a lease now (its secret is gone: a database user is dropped).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_lease_revoke(
    client: *const sr_client,
    lease_id: *const c_char,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or a NUL-terminated string.
        let id = unsafe { str_arg(lease_id, "lease_id") }?;
        crate::abi::block_on(c.leases().revoke(id))
    })
}

/// Revoke every lease under a path prefix.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_lease_revoke_prefix(
    client: *const sr_client,
    prefix: *const c_char,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or a NUL-terminated string.
        let prefix = unsafe { str_arg(prefix, "prefix") }?;
        crate::abi::block_on(c.leases().revoke_prefix(prefix))
    })
}
