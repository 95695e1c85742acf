//! Records as stored: JSON encoding and decoding with the caller's error (each store names
//! what failed in its own words).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Encode `v` as JSON; `err` says what could not be encoded (the serde error is its source).
pub(crate) fn encode<T: Serialize + ?Sized>(v: &T, err: impl FnOnce() -> Error) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| err().with_source(e))
}

/// Decode a stored JSON record; `err` says what is corrupt (the serde error is its source).
pub(crate) fn decode<T: DeserializeOwned>(raw: &[u8], err: impl FnOnce() -> Error) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| err().with_source(e))
}
