//! Small helpers shared by the engines: Go-style durations and parameter parsing.

pub(crate) mod blocking;
pub(crate) mod bounded;
pub(crate) mod duration;
pub(crate) mod json;
pub(crate) mod names;
pub(crate) mod params;
#[cfg(feature = "postgres")]
pub(crate) mod pgtls;
pub(crate) mod ttl;

/// A lock's guard even when a panic poisoned it, as `.or_else(unpoison)`.
///
/// Every `std::sync` lock in the engine guards state changed by whole-value steps (an insert,
/// a remove, an `Arc` swapped in), so a panic under one cannot leave it torn; refusing the
/// lock forever after would instead turn one panicking request into a process-wide outage.
pub(crate) fn unpoison<G>(p: std::sync::PoisonError<G>) -> crate::error::Result<G> {
    Ok(p.into_inner())
}

/// Lowercase hex, without the per-character iterator of `hex::encode` (this is on the hot
/// path: token salting and audit HMACs run for every call).
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}

/// A random (v4) UUID from the thread-local generator: request ids need to be unique, not
/// secret, and a `getrandom` syscall per call is measurable.
pub(crate) fn fast_uuid() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// A `LIST` answer: `keys`, or nothing when there are none (404, as OpenBao answers an empty
/// list).
pub(crate) fn list_response(keys: Vec<String>) -> Option<crate::request::Response> {
    if keys.is_empty() {
        return None;
    }
    let mut d = crate::request::Data::new();
    d.insert(
        "keys".into(),
        serde_json::Value::Array(keys.into_iter().map(serde_json::Value::String).collect()),
    );
    Some(crate::request::Response::with_data(d))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_poisoned_lock_stays_usable() {
        let m = std::sync::Arc::new(std::sync::Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *m.lock().or_else(super::unpoison).unwrap() += 1;
        assert_eq!(*m.lock().or_else(super::unpoison).unwrap(), 2);
    }

    #[test]
    fn hex_matches_the_hex_crate() {
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(super::hex_lower(&data), hex::encode(&data));
    }

    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = uuid::Uuid::parse_str(&super::fast_uuid()).unwrap();
        assert_eq!(a.get_version_num(), 4);
        assert_ne!(super::fast_uuid(), super::fast_uuid());
    }
}
