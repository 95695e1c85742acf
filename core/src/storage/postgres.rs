//! PostgreSQL backend (being written).

/// PostgreSQL backend.
#[derive(Debug)]
pub struct PostgresBackend;

impl PostgresBackend {
    /// Connect (placeholder until the PostgreSQL backend lands).
    pub async fn connect(_url: &str) -> crate::Result<PostgresBackend> {
        Err(crate::Error::unavailable("postgres backend not built yet"))
    }
}

#[async_trait::async_trait]
impl super::Backend for PostgresBackend {
    async fn get(&self, _: &str) -> crate::Result<Option<Vec<u8>>> {
        Err(crate::Error::unavailable("not built"))
    }
    async fn put(&self, _: &str, _: &[u8]) -> crate::Result<()> {
        Err(crate::Error::unavailable("not built"))
    }
    async fn delete(&self, _: &str) -> crate::Result<()> {
        Err(crate::Error::unavailable("not built"))
    }
    async fn list(&self, _: &str, _: &super::Page) -> crate::Result<Vec<String>> {
        Err(crate::Error::unavailable("not built"))
    }
    async fn scan(&self, _: &str, _: &super::Page) -> crate::Result<Vec<String>> {
        Err(crate::Error::unavailable("not built"))
    }
    async fn transaction(&self, _: Vec<super::TxnOp>) -> crate::Result<()> {
        Err(crate::Error::unavailable("not built"))
    }
    fn kind(&self) -> &'static str {
        "postgres"
    }
}
