//! Shared by the storage test suites: a fresh PostgreSQL database per test, dropped at the
//! end (also when the test fails).
#![allow(
    dead_code,
    reason = "each storage suite uses a different part of this module"
)]

use tokio_postgres::NoTls;

/// The variable naming the PostgreSQL server the tests use.
pub const POSTGRES_URL_VAR: &str = "STRONGROOM_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The admin connection url: `STRONGROOM_TEST_POSTGRES_URL` or the local default.
pub fn admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

/// `host:port` of a url, for messages (never the password).
pub fn describe(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let port = config.get_ports().first().copied().unwrap_or(5432);
            config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
                    tokio_postgres::config::Host::Unix(p) => format!("{}:{port}", p.display()),
                })
                .collect::<Vec<_>>()
                .join(",")
        }
        Err(_) => "an unparsable url".to_string(),
    }
}

/// `url` with its database replaced by `dbname` (url or `key=value` form).
pub fn with_dbname(url: &str, dbname: &str) -> String {
    for scheme in ["postgres://", "postgresql://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let (main, query) = match rest.split_once('?') {
                Some((m, q)) => (m, Some(q)),
                None => (rest, None),
            };
            let authority = main.split_once('/').map_or(main, |(a, _)| a);
            let mut out = format!("{scheme}{authority}/{dbname}");
            if let Some(q) = query {
                out.push('?');
                out.push_str(q);
            }
            return out;
        }
    }
    format!("{url} dbname={dbname}")
}

async fn admin_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A database created for one test and dropped when this is dropped.
pub struct FreshDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    /// Create it. PostgreSQL not being reachable fails the test: these suites are never
    /// skipped.
    pub async fn create() -> FreshDatabase {
        let admin_url = admin_url();
        let client = admin_client(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for the storage tests and is not reachable at {} \
                 ({e}); start it or point {POSTGRES_URL_VAR} at a server where the user may \
                 CREATE DATABASE",
                describe(&admin_url)
            )
        });
        let name = format!("strongroom_test_{}", uuid::Uuid::new_v4().simple());
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "could not create a test database on {} (set {POSTGRES_URL_VAR} to a user \
                     that may CREATE DATABASE): {e}",
                    describe(&admin_url)
                )
            });
        let url = with_dbname(&admin_url, &name);
        FreshDatabase {
            admin_url,
            name,
            url,
        }
    }

    /// The url of the fresh database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A plain client on the fresh database (for poking at it from the side).
    pub async fn client(&self) -> tokio_postgres::Client {
        admin_client(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime (or while unwinding): use a thread with its own.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = admin_client(&admin_url).await.map_err(|e| e.to_string())?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

#[test]
fn with_dbname_replaces_only_the_database() {
    assert_eq!(
        with_dbname("postgres://u:p@h:5432/postgres", "x"),
        "postgres://u:p@h:5432/x"
    );
    assert_eq!(
        with_dbname("postgresql://h?sslmode=disable", "x"),
        "postgresql://h/x?sslmode=disable"
    );
    assert_eq!(with_dbname("host=h user=u", "x"), "host=h user=u dbname=x");
}
