//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

/// The PostgreSQL server the tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("STRONGROOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test and dropped when this guard goes (also on panic).
pub struct FreshDb {
    pub url: String,
    name: String,
    admin: String,
}

async fn admin_client(admin: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at STRONGROOM_TEST_POSTGRES_URL (default \
             postgres://postgres@127.0.0.1:5432/postgres): {e}. Start it or point the variable at one."
        )
    });
    tokio::spawn(conn);
    client
}

impl FreshDb {
    pub async fn create(tag: &str) -> FreshDb {
        let admin = postgres_admin_url();
        let name = format!("strongroom_{tag}_{}", uuid::Uuid::new_v4().simple());
        admin_client(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or(admin.clone());
        FreshDb {
            url: format!("{base}/{name}"),
            name,
            admin,
        }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside a runtime in async tests: use a fresh thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let c = admin_client(&admin).await;
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}
