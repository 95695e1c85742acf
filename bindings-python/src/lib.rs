//! The Python binding: `strongroom._native`, wrapped by the `strongroom` package
//! (`python/strongroom`). Each class wraps one core handle; methods convert, make one core call
//! and map the error through the core's `ErrorCode` table. No business logic lives here.

mod client;
mod convert;
mod database;
mod engine;
mod error;
mod leases;
mod runtime;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    error::register(m)?;
    m.add_function(wrap_pyfunction!(runtime::_before_exit, m)?)?;
    m.add_class::<convert::Secret>()?;
    m.add_class::<engine::Config>()?;
    m.add_class::<engine::VirtualClock>()?;
    m.add_class::<engine::Strongroom>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Kv>()?;
    m.add_class::<client::KvSecret>()?;
    m.add_class::<client::KvVersion>()?;
    m.add_class::<client::Transit>()?;
    m.add_class::<client::DataKey>()?;
    m.add_class::<client::Sys>()?;
    m.add_class::<client::Tokens>()?;
    m.add_class::<leases::Leases>()?;
    m.add_class::<leases::LeaseDetails>()?;
    m.add_class::<leases::RenewedLease>()?;
    m.add_class::<leases::LeaseEvent>()?;
    m.add_class::<leases::LeaseEvents>()?;
    m.add_class::<database::Database>()?;
    m.add_class::<database::DbCredential>()?;
    m.add_class::<database::StaticCredential>()?;
    m.add_class::<database::CredentialKeeper>()?;
    m.add(
        "ERROR_CODES",
        strongroom::ErrorCode::ALL.map(|c| c.name()).to_vec(),
    )?;
    Ok(())
}
