//! SQLite backend (being written).

/// SQLite backend.
#[derive(Debug)]
pub struct SqliteBackend;

impl SqliteBackend {
    /// Open (placeholder until the SQLite backend lands).
    pub fn open(_path: impl AsRef<std::path::Path>) -> crate::Result<SqliteBackend> {
        Err(crate::Error::unavailable("sqlite backend not built yet"))
    }
}

#[async_trait::async_trait]
impl super::Backend for SqliteBackend {
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
        "sqlite"
    }
}
