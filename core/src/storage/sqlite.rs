//! SQLite backend (being written).

/// SQLite backend.
#[derive(Debug)]
pub struct SqliteBackend;
