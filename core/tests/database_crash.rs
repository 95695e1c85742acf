//! WAL-first database credentials under SIGKILL: a child process issues PostgreSQL credentials
//! in a loop (two at a time) and is killed with SIGKILL at random moments, several times.
//! After each kill the store is reopened and the expiry runner runs once: every user with the
//! test role's prefix in `pg_roles` must then be backed by a live lease (a kill between
//! CREATE ROLE and the lease commit leaves an intent record, which the runner resolves by
//! dropping the user). At the end, revoking every lease leaves no user at all.
//!
//! Against the real PostgreSQL of this machine (`STRONGROOM_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); PostgreSQL down = the test fails.
//! Harness-less: the same binary is the parent and, with `STRONGROOM_DBCRASH_CHILD` set, the
//! child.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use strongroom::{Config, LeaseConfig, Request, Strongroom, VirtualClock, data};

const ROUNDS: usize = 8;
const CHILD: &str = "STRONGROOM_DBCRASH_CHILD";

fn config(dir: &Path) -> Config {
    Config::sqlite(dir.join("store.db"))
        .unseal_key_file(dir.join("unseal.key"))
        .leases(LeaseConfig {
            // Only the parent runs expiry (and with it, crash recovery).
            background: false,
            ..LeaseConfig::default()
        })
}

fn role(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("role")).unwrap()
}

fn token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("token"))
        .unwrap()
        .trim()
        .to_string()
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {url}: {e}"));
    tokio::spawn(conn);
    c
}

/// Users whose names carry this test's role (the username template puts it in).
async fn roles(admin: &tokio_postgres::Client, role: &str) -> Vec<String> {
    admin
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1",
            &[&format!("v-root-{role}-%")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn child(dir: PathBuf) {
    let sr = Strongroom::open(config(&dir)).await.unwrap();
    let db = sr.client(token(&dir)).database("database");
    let role = role(&dir);
    let work = |db: strongroom::Database, role: String| async move {
        loop {
            db.creds(&role).await.unwrap();
        }
    };
    let a = tokio::spawn(work(db.clone(), role.clone()));
    let b = tokio::spawn(work(db, role));
    let _ = tokio::join!(a, b);
}

async fn leases(sr: &Strongroom, token: &str, role: &str) -> Vec<String> {
    match sr
        .handle(
            Request::list(format!("sys/leases/lookup/database/creds/{role}/"))
                .with_token(token.to_string()),
        )
        .await
    {
        Ok(r) => r
            .get("keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) if e.code() == strongroom::ErrorCode::NotFound => Vec::new(),
        Err(e) => panic!("list leases: {e}"),
    }
}

#[tokio::main]
async fn main() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(PathBuf::from(dir)).await;
        return;
    }
    let fresh = common::FreshDb::create("dbcrash").await;
    let admin_url = common::postgres_admin_url();
    let admin = pg(&admin_url).await;
    pg(&fresh.url)
        .await
        .batch_execute("CREATE TABLE items (id int)")
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // Unique on the shared server: `c` + 7 characters is what the template keeps (8).
    let role: String = std::iter::once('c')
        .chain(
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(7)
                .map(|b| char::from(b).to_ascii_lowercase()),
        )
        .collect();
    std::fs::write(dir.join("role"), &role).unwrap();
    let cfg: tokio_postgres::Config = fresh.url.parse().unwrap();
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let dbname = cfg.get_dbname().unwrap().to_string();
    let user = cfg.get_user().unwrap_or("postgres").to_string();
    {
        let sr = Strongroom::open(config(&dir)).await.unwrap();
        let root = sr.init_with_key_file(dir.join("unseal.key")).await.unwrap();
        let token = secrecy::ExposeSecret::expose_secret(&root).to_string();
        let c = sr.client(&token);
        c.sys()
            .enable_mount("database", "database", &[])
            .await
            .unwrap();
        let db = c.database("database");
        db.configure(
            "pg",
            data(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{port}/{dbname}"),
                "username": user,
                "password": "unused",
                "allowed_roles": role,
            })),
        )
        .await
        .unwrap();
        db.write_role(
            &role,
            data(json!({
                "db_name": "pg",
                "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON items TO \"{{name}}\";",
                "default_ttl": "1h",
                "max_ttl": "24h",
            })),
        )
        .await
        .unwrap();
        std::fs::write(dir.join("token"), &token).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut unleased_total = 0;
    let mut live = 0;
    for round in 0..ROUNDS {
        let mut c = Command::new(&exe)
            .env(CHILD, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Real time on purpose: the point is to kill a real process at a random moment.
        std::thread::sleep(Duration::from_millis(rng.random_range(400..1200)));
        c.kill().unwrap(); // SIGKILL on unix
        let status = c.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child exited by itself: {status}"
        );
        // The dead child's server sessions finish the statement they were running (a CREATE
        // ROLE can still commit after the kill) and only then notice the client is gone.
        // Real recovery waits a minute of real time before it drops an abandoned user; this
        // test jumps the clock instead, so it waits for those sessions to end.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let n: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                    &[&dbname],
                )
                .await
                .unwrap()
                .get(0);
            if n == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: the killed child's sessions did not end"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = roles(&admin, &role).await.len();
        // Reopen a minute later (the age past which an intent cannot be an issue still in
        // flight in another process) and run the expiry runner once.
        let clock = VirtualClock::at(time::OffsetDateTime::now_utc() + time::Duration::seconds(61));
        let sr = Strongroom::open(config(&dir).clock(Arc::new(clock)))
            .await
            .unwrap();
        let report = sr.run_expiry().await.unwrap();
        assert!(report.leader, "round {round}: the reopened engine leads");
        let after = roles(&admin, &role).await;
        let ids = leases(&sr, &token(&dir), &role).await;
        assert_eq!(
            after.len(),
            ids.len(),
            "round {round}: {} users for {} leases",
            after.len(),
            ids.len()
        );
        unleased_total += before - after.len();
        println!(
            "round {round}: {} users, {} leases, {} created but never leased (dropped)",
            after.len(),
            ids.len(),
            before - after.len()
        );
        live = ids.len();
        // Hand the leader lock back, as a clean shutdown does, for the next round's engine.
        sr.seal().await.unwrap();
    }
    assert!(
        live > ROUNDS,
        "the children barely issued anything ({live} credentials)"
    );
    // Revoking every lease leaves no user: none of them was unknown to a lease.
    let sr = Strongroom::open(config(&dir)).await.unwrap();
    let root = sr.client(token(&dir));
    root.leases()
        .revoke_prefix(&format!("database/creds/{role}"))
        .await
        .unwrap();
    let left = roles(&admin, &role).await;
    assert!(
        left.is_empty(),
        "users left after revoking every lease: {left:?}"
    );
    drop(sr);
    drop(fresh);
    println!(
        "database crash: {ROUNDS} kills, {live} credentials, {unleased_total} unleased creations dropped, 0 orphans"
    );
    println!("database_crash: 1 passed, 0 failed");
}
