//! Transit: keys, encrypt / decrypt, sign / verify, HMAC, and batches.

use std::ffi::{CString, c_char};

use strongroom::{Ciphertext, Error, Result};
use zeroize::Zeroize;

use crate::abi::{
    Handle, Kind, bytes_arg, bytes_out, ct_string_out, free_handle, handle, into_handle,
    opt_str_arg, out_arg, str_arg, string_out,
};
use crate::client::with_client;
use crate::engine::sr_client;
use crate::result::sr_result;

/// Create the named key on the transit mount `mount`. `key_type`: NULL or `""` for
/// `aes256-gcm96`, else `chacha20-poly1305`, `ed25519`, `ecdsa-p256`, `rsa-2048`, `hmac`, ...
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_transit_create_key(
    client: *const sr_client,
    mount: *const c_char,
    name: *const c_char,
    key_type: *const c_char,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings.
        let (mount, name, key_type) = unsafe {
            (
                str_arg(mount, "mount")?,
                str_arg(name, "name")?,
                opt_str_arg(key_type, "key_type")?,
            )
        };
        let config = strongroom::KeyConfig {
            key_type: key_type.unwrap_or_default().to_string(),
            ..Default::default()
        };
        crate::abi::block_on(c.transit(mount).create_key(name, &config))
    })
}

/// Add a key version; `*latest_out` is the latest version number.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_transit_rotate(
    client: *const sr_client,
    mount: *const c_char,
    name: *const c_char,
    latest_out: *mut u32,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings / a writable pointer.
        let (out, mount, name) = unsafe {
            (
                out_arg(latest_out, 0, "latest_out")?,
                str_arg(mount, "mount")?,
                str_arg(name, "name")?,
            )
        };
        *out = crate::abi::block_on(c.transit(mount).rotate(name))?;
        Ok(())
    })
}

/// Encrypt `len` bytes at `plaintext` with `key`; `*ciphertext_out` is `vault:v<n>:...`
/// (free with `sr_string_free`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_transit_encrypt(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    plaintext: *const u8,
    len: usize,
    ciphertext_out: *mut *mut c_char,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings, `len` readable bytes,
        // a writable pointer.
        let (out, mount, key, pt) = unsafe {
            (
                out_arg(ciphertext_out, std::ptr::null_mut(), "ciphertext_out")?,
                str_arg(mount, "mount")?,
                str_arg(key, "key")?,
                bytes_arg(plaintext, len, "plaintext")?,
            )
        };
        let ct = crate::abi::block_on(c.transit(mount).encrypt(key, pt))?;
        // A ciphertext is no secret: copied straight from the core's string, which is left
        // as it is.
        *out = ct_string_out(&ct);
        Ok(())
    })
}

/// Encrypt as `sr_transit_encrypt` does, writing the ciphertext into the caller's buffer
/// instead of handing out a string (nothing to free): `ciphertext` holds `capacity` bytes, not
/// overlapping the plaintext, and receives the NUL-terminated `vault:v<n>:...` text;
/// `*len_out` is its length without the NUL. A buffer too small (it needs `*len_out + 1`
/// bytes) is `SR_INVALID_INPUT` with `*len_out` set to the length needed. After any failure
/// the buffer holds an empty string (when `capacity` is not 0). For the AEAD key types
/// (`aes128-gcm96`, `aes256-gcm96`, `chacha20-poly1305`, `xchacha20-poly1305`) a buffer of
/// `len / 3 * 4 + 80` bytes always suffices.
#[unsafe(no_mangle)]
#[allow(
    clippy::too_many_arguments,
    reason = "the C signature: the `sr_transit_encrypt` arguments and a buffer"
)]
pub unsafe extern "C" fn sr_transit_encrypt_into(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    plaintext: *const u8,
    len: usize,
    ciphertext: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> sr_result {
    let r = with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings, `len` readable bytes,
        // a writable pointer.
        let (len_out, mount, key, pt) = unsafe {
            (
                out_arg(len_out, 0, "len_out")?,
                str_arg(mount, "mount")?,
                str_arg(key, "key")?,
                bytes_arg(plaintext, len, "plaintext")?,
            )
        };
        if ciphertext.is_null() {
            return Err(Error::invalid_input("`ciphertext` is NULL"));
        }
        let ct = crate::abi::block_on(c.transit(mount).encrypt(key, pt))?;
        let text = ct.as_str().as_bytes();
        *len_out = text.len();
        if text.len() >= capacity {
            return Err(Error::invalid_input(format!(
                "the ciphertext buffer holds {capacity} bytes; this ciphertext needs {} (its \
                 NUL included)",
                text.len().saturating_add(1)
            )));
        }
        // SAFETY: the caller promises `capacity` writable bytes at `ciphertext`, more than
        // `text.len()` (checked above); `text` is the library's own string, no overlap.
        unsafe {
            let dst = ciphertext.cast::<u8>();
            std::ptr::copy_nonoverlapping(text.as_ptr(), dst, text.len());
            dst.add(text.len()).write(0);
        }
        Ok(())
    });
    if r != sr_result::SR_OK && !ciphertext.is_null() && capacity > 0 {
        // SAFETY: as above: at least one writable byte; the plaintext is no longer read.
        unsafe { ciphertext.write(0) };
    }
    r
}

/// Decrypt a ciphertext; `*plaintext_out` / `*len_out` are the plaintext bytes (NULL / 0 when
/// empty). Free it with `sr_bytes_free`, which zeroes it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_transit_decrypt(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    ciphertext: *const c_char,
    plaintext_out: *mut *mut u8,
    len_out: *mut usize,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings / writable pointers.
        let (out, len, mount, key, ct) = unsafe {
            (
                out_arg(plaintext_out, std::ptr::null_mut(), "plaintext_out")?,
                out_arg(len_out, 0, "len_out")?,
                str_arg(mount, "mount")?,
                str_arg(key, "key")?,
                str_arg(ciphertext, "ciphertext")?,
            )
        };
        let pt = crate::abi::block_on(c.transit(mount).decrypt(key, &Ciphertext::new(ct)))?;
        (*out, *len) = bytes_out(pt.expose());
        Ok(())
    })
}

fn text_op(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    input: *const u8,
    len: usize,
    text_out: *mut *mut c_char,
    f: impl AsyncFnOnce(&strongroom::Transit, &str, &[u8]) -> Result<String>,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings, `len` readable bytes,
        // a writable pointer.
        let (out, mount, key, input) = unsafe {
            (
                out_arg(text_out, std::ptr::null_mut(), "out")?,
                str_arg(mount, "mount")?,
                str_arg(key, "key")?,
                bytes_arg(input, len, "input")?,
            )
        };
        let text = crate::abi::block_on(f(&*c.transit(mount), key, input))?;
        *out = string_out(text)?;
        Ok(())
    })
}

#[allow(
    clippy::too_many_arguments,
    reason = "the C signature's arguments, passed on"
)]
fn check_op(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    input: *const u8,
    len: usize,
    proof: *const c_char,
    valid_out: *mut bool,
    f: impl AsyncFnOnce(&strongroom::Transit, &str, &[u8], &str) -> Result<bool>,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings, `len` readable bytes,
        // a writable pointer.
        let (out, mount, key, input, proof) = unsafe {
            (
                out_arg(valid_out, false, "valid_out")?,
                str_arg(mount, "mount")?,
                str_arg(key, "key")?,
                bytes_arg(input, len, "input")?,
                str_arg(proof, "signature")?,
            )
        };
        *out = crate::abi::block_on(f(&*c.transit(mount), key, input, proof))?;
        Ok(())
    })
}

/// Sign `len` bytes at `input` with an asymmetric key; `*signature_out` is
/// `vault:v<n>:<signature>` (free with `sr_string_free`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_transit_sign(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    input: *const u8,
    len: usize,
    signature_out: *mut *mut c_char,
) -> sr_result {
    text_op(
        client,
        mount,
        key,
        input,
        len,
        signature_out,
        async |t, k, i| t.sign(k, i).await,
    )
}

/// Whether `signature` is valid for the input (`*valid_out`); a malformed signature is an
/// error, a wrong one is `false`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_transit_verify(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    input: *const u8,
    len: usize,
    signature: *const c_char,
    valid_out: *mut bool,
) -> sr_result {
    check_op(
        client,
        mount,
        key,
        input,
        len,
        signature,
        valid_out,
        async |t, k, i, s| t.verify(k, i, s).await,
    )
}

/// The HMAC-SHA256 of the input: `*hmac_out` is `vault:v<n>:<base64>`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_transit_hmac(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    input: *const u8,
    len: usize,
    hmac_out: *mut *mut c_char,
) -> sr_result {
    text_op(client, mount, key, input, len, hmac_out, async |t, k, i| {
        t.hmac(k, i).await
    })
}

/// Whether `hmac` is the HMAC of the input (`*valid_out`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_transit_verify_hmac(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    input: *const u8,
    len: usize,
    hmac: *const c_char,
    valid_out: *mut bool,
) -> sr_result {
    check_op(
        client,
        mount,
        key,
        input,
        len,
        hmac,
        valid_out,
        async |t, k, i, h| t.verify_hmac(k, i, h).await,
    )
}

// ---- batches ----

/// One input of a batch: `len` bytes at `data`.
#[repr(C)]
pub struct sr_slice {
    /// The bytes (NULL allowed when `len` is 0).
    pub data: *const u8,
    /// How many.
    pub len: usize,
}

struct Item {
    status: sr_result,
    /// The value (ciphertext text with a trailing NUL, or plaintext bytes).
    value: Vec<u8>,
    /// Whether `value` ends in a NUL that is not part of it.
    text: bool,
    message: CString,
}

/// The results of a batch call, one per input in order: read with `sr_batch_len` and
/// `sr_batch_item`; free with `sr_batch_free` (every value zeroed).
pub struct sr_batch(Vec<Item>);

impl Handle for sr_batch {
    const KIND: Kind = Kind::Batch;
    const NAME: &'static str = "sr_batch";
}

impl Drop for sr_batch {
    fn drop(&mut self) {
        for item in &mut self.0 {
            item.value.zeroize();
        }
    }
}

fn batch_of<T>(items: Vec<Result<T>>, text: bool, bytes: impl Fn(&T) -> Vec<u8>) -> sr_batch {
    sr_batch(
        items
            .into_iter()
            .map(|r| match r {
                Ok(v) => Item {
                    status: sr_result::SR_OK,
                    value: bytes(&v),
                    text,
                    message: CString::default(),
                },
                Err(e) => Item {
                    status: sr_result::from_code(e.code()),
                    value: Vec::new(),
                    text: false,
                    message: CString::new(e.message().replace('\0', "")).unwrap_or_default(),
                },
            })
            .collect(),
    )
}

/// Encrypt `count` inputs in one call; `*batch_out` holds one result per input: a
/// ciphertext (NUL-terminated text) or the status and message of that item's failure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_transit_encrypt_batch(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    inputs: *const sr_slice,
    count: usize,
    batch_out: *mut *mut sr_batch,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings, `count` readable
        // sr_slice values each pointing to `len` readable bytes, a writable pointer.
        let (mount, key, out, slices) = unsafe {
            let slices: &[sr_slice] = if count == 0 {
                &[]
            } else if inputs.is_null() {
                return Err(Error::invalid_input("`inputs` is NULL"));
            } else {
                std::slice::from_raw_parts(inputs, count)
            };
            let slices = slices
                .iter()
                .map(|s| bytes_arg(s.data, s.len, "inputs[i].data"))
                .collect::<Result<Vec<&[u8]>>>()?;
            (
                str_arg(mount, "mount")?,
                str_arg(key, "key")?,
                out_arg(batch_out, std::ptr::null_mut(), "batch_out")?,
                slices,
            )
        };
        let items = crate::abi::block_on(c.transit(mount).encrypt_batch(key, &slices))?;
        *out = into_handle(batch_of(items, true, |ct: &Ciphertext| {
            let mut v = ct.as_str().as_bytes().to_vec();
            v.push(0);
            v
        }));
        Ok(())
    })
}

/// Decrypt `count` ciphertexts in one call; `*batch_out` holds one result per input: the
/// plaintext bytes or the status and message of that item's failure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_transit_decrypt_batch(
    client: *const sr_client,
    mount: *const c_char,
    key: *const c_char,
    ciphertexts: *const *const c_char,
    count: usize,
    batch_out: *mut *mut sr_batch,
) -> sr_result {
    with_client(client, |c| {
        // SAFETY: the header's contract: NULL or NUL-terminated strings, `count` readable
        // string pointers, a writable pointer.
        let (mount, key, out, cts) = unsafe {
            let ptrs: &[*const c_char] = if count == 0 {
                &[]
            } else if ciphertexts.is_null() {
                return Err(Error::invalid_input("`ciphertexts` is NULL"));
            } else {
                std::slice::from_raw_parts(ciphertexts, count)
            };
            let cts = ptrs
                .iter()
                .map(|p| str_arg(*p, "ciphertexts[i]").map(Ciphertext::new))
                .collect::<Result<Vec<_>>>()?;
            (
                str_arg(mount, "mount")?,
                str_arg(key, "key")?,
                out_arg(batch_out, std::ptr::null_mut(), "batch_out")?,
                cts,
            )
        };
        let items = crate::abi::block_on(c.transit(mount).decrypt_batch(key, &cts))?;
        *out = into_handle(batch_of(items, false, |p: &strongroom::Plaintext| {
            p.expose().to_vec()
        }));
        Ok(())
    })
}

/// How many results a batch holds (0 for NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_batch_len(batch: *const sr_batch) -> usize {
    // SAFETY: the header's contract: NULL or a live sr_batch.
    unsafe { handle(batch) }.map_or(0, |b| b.0.len())
}

/// Result `index` of a batch: `*status_out` is its status; on `SR_OK`, `*data_out` /
/// `*len_out` its value (a ciphertext is also NUL-terminated; `len` leaves the NUL out),
/// else `*message_out` the item's error message. Every pointer is borrowed from the batch and
/// valid until `sr_batch_free`. Any out-parameter may be NULL when not wanted. An index past
/// the end is `SR_INVALID_INPUT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_batch_item(
    batch: *const sr_batch,
    index: usize,
    status_out: *mut sr_result,
    data_out: *mut *const u8,
    len_out: *mut usize,
    message_out: *mut *const c_char,
) -> sr_result {
    crate::abi::guard(|| {
        // SAFETY: the header's contract: NULL or a live sr_batch.
        let b = unsafe { handle(batch) }?;
        let item = b.0.get(index).ok_or_else(|| {
            Error::invalid_input(format!(
                "index {index} is past the batch's {} items",
                b.0.len()
            ))
        })?;
        let len = if item.text {
            item.value.len().saturating_sub(1)
        } else {
            item.value.len()
        };
        // SAFETY: the header's contract: each out-parameter is NULL or writable.
        unsafe {
            if let Some(s) = status_out.as_mut() {
                *s = item.status;
            }
            if let Some(d) = data_out.as_mut() {
                *d = if item.value.is_empty() {
                    std::ptr::null()
                } else {
                    item.value.as_ptr()
                };
            }
            if let Some(l) = len_out.as_mut() {
                *l = len;
            }
            if let Some(m) = message_out.as_mut() {
                *m = item.message.as_ptr();
            }
        }
        Ok(())
    })
}

/// Free a batch, zeroing every value. NULL or a batch already freed: nothing happens.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sr_batch_free(batch: *mut sr_batch) {
    let _ = free_handle(batch);
}
