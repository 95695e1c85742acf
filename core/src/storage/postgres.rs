//! PostgreSQL backend (being written).

/// PostgreSQL backend.
#[derive(Debug)]
pub struct PostgresBackend;
