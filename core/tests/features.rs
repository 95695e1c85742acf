//! Builds without a storage backend or database plugin (`cargo test -p strongroom
//! --no-default-features`) refuse what they leave out with a clear, typed error, and run on
//! memory storage. With the default features these tests are not compiled: the rest of the
//! suite covers the parts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

#[cfg(not(feature = "sqlite"))]
#[tokio::test]
async fn sqlite_storage_names_the_feature_it_needs() {
    let e = strongroom::Strongroom::open(strongroom::Config::sqlite("/nonexistent/x.db"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), strongroom::ErrorCode::InvalidInput);
    assert_eq!(
        e.message(),
        "SQLite storage is not in this build of strongroom: enable the `sqlite` Cargo feature"
    );
}

#[cfg(not(feature = "postgres"))]
#[tokio::test]
async fn a_postgres_connection_names_the_feature_it_needs() {
    use serde_json::json;
    let sr = strongroom::Strongroom::open(strongroom::Config::dev())
        .await
        .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.sys()
        .enable_mount("database", "database", &[])
        .await
        .unwrap();
    let e = root
        .write(
            "database/config/pg",
            strongroom::data(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://u@127.0.0.1:5432/x",
            })),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), strongroom::ErrorCode::InvalidInput);
    assert!(
        e.message().contains("enable the `postgres` Cargo feature"),
        "{e:?}"
    );
    // The engine still serves what it has: memory storage, KV, transit.
    root.kv("secret")
        .put("a", &strongroom::data(json!({"k": "v"})))
        .await
        .unwrap();
}
