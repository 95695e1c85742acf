//! The database secrets engine through the whole pipeline (token, ACL, engine, lease manager)
//! against the real PostgreSQL of this machine (`STRONGROOM_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`): credentials under leases that renew, expire
//! and revoke, revocation with the issuing token, and many concurrent requests with no orphan.
//! PostgreSQL down = the test fails. Each test makes its own database and drops it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{
    Client, Config, ErrorCode, KeeperAction, LeaseConfig, Strongroom, TokenRequest, VirtualClock,
    data,
};

fn pg_url() -> String {
    std::env::var("STRONGROOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin(db: Option<&str>) -> tokio_postgres::Client {
    let mut cfg: tokio_postgres::Config = pg_url().parse().expect("STRONGROOM_TEST_POSTGRES_URL");
    if let Some(db) = db {
        cfg.dbname(db);
    }
    let (c, conn) = match cfg.connect(tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => panic!("PostgreSQL at {} is not reachable: {e}", pg_url()),
    };
    tokio::spawn(conn);
    c
}

struct TestDb {
    name: String,
}

impl TestDb {
    async fn new() -> TestDb {
        let suffix: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(10)
            .map(|b| char::from(b).to_ascii_lowercase())
            .collect();
        let name = format!("sr_dbpipe_{suffix}");
        admin(None)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        admin(Some(&name))
            .await
            .batch_execute("CREATE TABLE items (id int); INSERT INTO items VALUES (1);")
            .await
            .unwrap();
        TestDb { name }
    }
    fn url(&self) -> String {
        let cfg: tokio_postgres::Config = pg_url().parse().unwrap();
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{port}/{}",
            self.name
        )
    }
    async fn role_exists(&self, user: &str) -> bool {
        admin(None)
            .await
            .query_one(
                "SELECT exists(SELECT 1 FROM pg_roles WHERE rolname = $1)",
                &[&user],
            )
            .await
            .unwrap()
            .get(0)
    }
    /// Roles that this database grants CONNECT or table rights to: the ones our engine made.
    async fn granted_roles(&self) -> Vec<String> {
        admin(Some(&self.name))
            .await
            .query(
                "SELECT DISTINCT grantee::text FROM information_schema.role_table_grants WHERE table_name = 'items' AND grantee LIKE 'v-%'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
    async fn drop(self) {
        let a = admin(None).await;
        let _ = a
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&self.name],
            )
            .await;
        a.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name))
            .await
            .unwrap();
    }
}

async fn setup(db: &TestDb) -> (Strongroom, Client, VirtualClock) {
    let clock = VirtualClock::new();
    let sr = Strongroom::open(
        Config::dev()
            .clock(Arc::new(clock.clone()))
            .leases(LeaseConfig {
                background: false,
                ..LeaseConfig::default()
            }),
    )
    .await
    .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.sys()
        .enable_mount("database", "database", &[])
        .await
        .unwrap();
    let user = {
        let cfg: tokio_postgres::Config = pg_url().parse().unwrap();
        cfg.get_user().unwrap_or("postgres").to_string()
    };
    let dbapi = root.database("database");
    dbapi
        .configure(
            "pg",
            data(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": db.url(),
                "username": user,
                "password": "unused",
                "allowed_roles": "ro",
                "max_open_connections": 8,
            })),
        )
        .await
        .unwrap();
    dbapi
        .write_role(
            "ro",
            data(json!({
                "db_name": "pg",
                "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON items TO \"{{name}}\";",
                "default_ttl": "1h",
                "max_ttl": "24h",
            })),
        )
        .await
        .unwrap();
    (sr, root, clock)
}

#[tokio::test]
async fn creds_through_the_pipeline_lease_renew_and_revoke() {
    let db = TestDb::new().await;
    let (_sr, root, _clock) = setup(&db).await;
    let cred = root.database("database").creds("ro").await.unwrap();
    assert!(
        cred.lease_id.starts_with("database/creds/ro/"),
        "{}",
        cred.lease_id
    );
    assert_eq!(cred.lease_duration, Duration::from_secs(3600));
    assert!(cred.renewable);
    assert_eq!(cred.password.expose_secret().len(), 20);
    assert!(!format!("{cred:?}").contains(cred.password.expose_secret()));
    assert!(db.role_exists(&cred.username).await);
    // `{{.DisplayName}}` is the calling token's: the dev root token's is `root`.
    assert!(cred.username.starts_with("v-root-ro-"), "{}", cred.username);

    let l = root.leases().lookup(&cred.lease_id).await.unwrap();
    assert_eq!(l.path, "database/creds/ro");
    let r = root
        .leases()
        .renew(&cred.lease_id, Duration::from_secs(7200))
        .await
        .unwrap();
    assert_eq!(r.ttl, Duration::from_secs(7200));

    root.leases().revoke(&cred.lease_id).await.unwrap();
    assert!(
        !db.role_exists(&cred.username).await,
        "revoked through sys/leases/revoke"
    );
    let err = root.leases().lookup(&cred.lease_id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    db.drop().await;
}

/// The engine's connections outlive changes to the mount table (another mount enabled here,
/// or any write by another process sharing the store, which reloads the table): before, each
/// reload rebuilt every engine, so every database pool was dropped and the next credential
/// paid a new connection and login to the database.
#[tokio::test]
async fn connections_survive_mount_table_reloads() {
    let db = TestDb::new().await;
    let (_sr, root, _clock) = setup(&db).await;
    let backends = || async {
        let rows = admin(None)
            .await
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'vault' ORDER BY pid",
                &[&db.name],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>()
    };
    let api = root.database("database");
    let first = api.creds("ro").await.unwrap();
    let before = backends().await;
    assert_eq!(before.len(), 1, "one connection for one caller: {before:?}");
    for i in 0..3 {
        root.sys()
            .enable_mount(&format!("kv{i}"), "kv", &[])
            .await
            .unwrap();
        let c = api.creds("ro").await.unwrap();
        assert!(db.role_exists(&c.username).await);
    }
    assert_eq!(backends().await, before, "the same pooled connection");
    root.leases()
        .revoke_prefix("database/creds/ro")
        .await
        .unwrap();
    assert!(!db.role_exists(&first.username).await);
    db.drop().await;
}

#[tokio::test]
async fn expiry_and_token_revocation_drop_the_users() {
    let db = TestDb::new().await;
    let (sr, root, clock) = setup(&db).await;
    let a = root.database("database").creds("ro").await.unwrap();
    clock.advance(Duration::from_secs(3601));
    let report = sr.run_expiry().await.unwrap();
    assert_eq!(report.revoked, 1);
    assert!(!db.role_exists(&a.username).await, "expired lease revoked");

    let child = root
        .token()
        .create(&TokenRequest {
            policies: vec!["root".into()],
            ..TokenRequest::default()
        })
        .await
        .unwrap();
    let b = sr
        .client(child.client_token.clone())
        .database("database")
        .creds("ro")
        .await
        .unwrap();
    assert!(db.role_exists(&b.username).await);
    assert!(b.username.starts_with("v-token-ro-"), "{}", b.username);
    root.token()
        .revoke(child.client_token.expose_secret())
        .await
        .unwrap();
    // Token revocation queues its leases for the runner.
    sr.run_expiry().await.unwrap();
    assert!(
        !db.role_exists(&b.username).await,
        "the token's leases went with it"
    );
    db.drop().await;
}

/// Issue 6's figures: issuing latency against the same CREATE ROLE + GRANT on one connection,
/// and concurrent issuing with zero errors and zero orphans after revoke-prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_creds_then_revoke_prefix_leaves_no_role() {
    let db = TestDb::new().await;
    let (_sr, root, _clock) = setup(&db).await;
    const SEQ: usize = 50;
    // Issue 6's figure: 1,000 at once, over a pool of 20 connections.
    let concurrent: usize = std::env::var("STRONGROOM_DB_CONCURRENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    root.database("database")
        .configure("pg", data(json!({"max_open_connections": 20})))
        .await
        .unwrap();

    let direct = admin(Some(&db.name)).await;
    let t = Instant::now();
    for i in 0..SEQ {
        let u = format!("v-token-direct-{i}-{}", std::process::id());
        direct
            .batch_execute(&format!(
                "BEGIN; CREATE ROLE \"{u}\" WITH LOGIN PASSWORD 'x-Pw-1' VALID UNTIL '2099-01-01 00:00:00+0000'; GRANT SELECT ON items TO \"{u}\"; COMMIT;"
            ))
            .await
            .unwrap();
    }
    let direct_per = t.elapsed() / SEQ as u32;
    for i in 0..SEQ {
        let u = format!("v-token-direct-{i}-{}", std::process::id());
        direct
            .batch_execute(&format!(
                "REVOKE ALL ON items FROM \"{u}\"; DROP ROLE \"{u}\";"
            ))
            .await
            .unwrap();
    }

    let api = root.database("database");
    let t = Instant::now();
    let mut seq = Vec::new();
    for _ in 0..SEQ {
        seq.push(api.creds("ro").await.unwrap());
    }
    let ours_per = t.elapsed() / SEQ as u32;

    let t = Instant::now();
    let tasks: Vec<_> = (0..concurrent)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.creds("ro").await })
        })
        .collect();
    let mut errors = 0;
    let mut names = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(c) => names.push(c.username),
            Err(e) => {
                errors += 1;
                eprintln!("creds error: {e}");
            }
        }
    }
    let concurrent_elapsed = t.elapsed();
    assert_eq!(errors, 0);
    // Zero orphans: the users holding grants are exactly the ones handed out under leases.
    let mut granted = db.granted_roles().await;
    granted.sort();
    let mut issued: Vec<String> = seq
        .iter()
        .map(|c| c.username.clone())
        .chain(names)
        .collect();
    issued.sort();
    assert_eq!(granted, issued);
    let leases = root
        .list("sys/leases/lookup/database/creds/ro/")
        .await
        .unwrap();
    assert_eq!(leases.len(), issued.len(), "one lease per user");

    let t = Instant::now();
    root.leases()
        .revoke_prefix("database/creds/ro")
        .await
        .unwrap();
    let revoke_elapsed = t.elapsed();
    let left = db.granted_roles().await;
    assert!(left.is_empty(), "orphans: {left:?}");
    for c in seq.iter().take(3) {
        assert!(!db.role_exists(&c.username).await);
    }
    println!(
        "issue latency: direct CREATE ROLE+GRANT {direct_per:?}, strongroom creds {ours_per:?} ({:+.0}%); \
         {concurrent} concurrent creds in {concurrent_elapsed:?}, 0 errors; revoke-prefix of {} leases in {revoke_elapsed:?}, 0 left",
        (ours_per.as_secs_f64() / direct_per.as_secs_f64() - 1.0) * 100.0,
        SEQ + concurrent
    );
    db.drop().await;
}

#[tokio::test]
async fn keeper_renews_then_replaces_the_credential_before_max_ttl() {
    let db = TestDb::new().await;
    let (sr, root, clock) = setup(&db).await;
    let keeper = root.database("database").keep_fresh("ro").await.unwrap();
    let mut changes = keeper.subscribe();
    let first = keeper.current();
    assert!(db.role_exists(&first.username).await);

    clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(keeper.tick().await.unwrap(), KeeperAction::Nothing);
    clock.advance(Duration::from_secs(15 * 60)); // 15 minutes left of the hour: renew
    assert_eq!(
        keeper.tick().await.unwrap(),
        KeeperAction::Renewed(Duration::from_secs(3600))
    );
    assert!(!changes.has_changed());

    // Keep renewing until the 24h max cannot give a third of an hour any more.
    let mut replaced = None;
    for _ in 0..40 {
        clock.advance(Duration::from_secs(45 * 60));
        sr.run_expiry().await.unwrap();
        match keeper.tick().await.unwrap() {
            KeeperAction::Replaced {
                old_username,
                new_username,
            } => {
                replaced = Some((old_username, new_username));
                break;
            }
            KeeperAction::Renewed(_) | KeeperAction::Nothing => {}
        }
    }
    let (old, new) = replaced.expect("replaced before the max TTL");
    assert_eq!(old, first.username);
    assert!(changes.has_changed());
    assert_eq!(changes.current().username, new);
    assert_eq!(changes.changed().await.unwrap().username, new);
    assert!(!changes.has_changed());
    assert!(db.role_exists(&new).await, "the new credential exists");
    // The old one runs out at its max TTL and the runner drops it.
    clock.advance(Duration::from_secs(3600));
    sr.run_expiry().await.unwrap();
    assert!(!db.role_exists(&old).await);

    // Revoked under the keeper: the next tick replaces it.
    root.leases()
        .revoke(&keeper.current().lease_id)
        .await
        .unwrap();
    assert!(matches!(
        keeper.tick().await.unwrap(),
        KeeperAction::Replaced { .. }
    ));
    // The replacement arrives through the updates handle, for a blocking reader too.
    let replacement = keeper.current();
    let mut blocking = changes.clone();
    let seen = std::thread::spawn(move || blocking.recv_blocking().unwrap())
        .join()
        .unwrap();
    assert_eq!(seen.unwrap().username, replacement.username);
    assert_eq!(
        changes.changed().await.unwrap().username,
        replacement.username
    );

    // On a timer: stop, join, and the updates end.
    let task = keeper.spawn().unwrap();
    assert!(!task.is_finished());
    task.stop();
    task.join().await.unwrap();
    assert_eq!(changes.changed().await.map(|c| c.username.clone()), None);
    root.leases()
        .revoke_prefix("database/creds/ro")
        .await
        .unwrap();
    db.drop().await;
}

/// Static roles are rotated on schedule by the maintenance run, with nobody reading them.
#[tokio::test]
async fn maintenance_rotates_static_roles_on_schedule() {
    let db = TestDb::new().await;
    let (sr, root, clock) = setup(&db).await;
    let user = format!("sr_static_{}", &db.name[10..]);
    admin(None)
        .await
        .batch_execute(&format!(
            "CREATE ROLE \"{user}\" LOGIN PASSWORD 'initial-Pw-1'"
        ))
        .await
        .unwrap();
    let api = root.database("database");
    api.configure("pg", data(json!({"allowed_roles": "ro,app"})))
        .await
        .unwrap();
    api.write_static_role(
        "app",
        data(json!({"db_name": "pg", "username": user, "rotation_period": "1h"})),
    )
    .await
    .unwrap();
    let last = || async {
        root.read("database/static-roles/app")
            .await
            .unwrap()
            .unwrap()
            .get("last_vault_rotation")
            .cloned()
            .unwrap()
    };
    let created = last().await;
    sr.run_maintenance().await.unwrap();
    assert_eq!(last().await, created, "not due yet");
    clock.advance(Duration::from_secs(3601));
    sr.run_maintenance().await.unwrap();
    let rotated = last().await;
    assert_ne!(rotated, created, "rotated by the maintenance run");
    let cred = api.static_creds("app").await.unwrap();
    assert_eq!(json!(cred.last_vault_rotation), rotated);
    assert_eq!(cred.ttl, Duration::from_secs(3600));
    root.delete("database/static-roles/app").await.unwrap();
    admin(None)
        .await
        .batch_execute(&format!("DROP ROLE \"{user}\""))
        .await
        .unwrap();
    db.drop().await;
}

/// `password_policy` on a connection config: credentials follow `sys/policies/password`; a
/// missing policy is OpenBao's 500 and creates nothing.
#[tokio::test]
async fn credentials_follow_the_configs_password_policy() {
    let db = TestDb::new().await;
    let (_sr, root, _clock) = setup(&db).await;
    let api = root.database("database");
    api.configure("pg", data(json!({"password_policy": "dbp"})))
        .await
        .unwrap();
    let before = db.granted_roles().await.len();
    let err = api.creds("ro").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal);
    assert_eq!(
        err.message(),
        "1 error occurred:\n\t* failed to generate password: no password policy found\n\n"
    );
    assert_eq!(db.granted_roles().await.len(), before, "nothing created");
    root.write(
        "sys/policies/password/dbp",
        data(json!({"policy": "length = 12\nrule \"charset\" {\n charset = \"abcdefgh\"\n}\nrule \"charset\" {\n charset = \"12\"\n min-chars = 2\n}"})),
    )
    .await
    .unwrap();
    for _ in 0..5 {
        let c = api.creds("ro").await.unwrap();
        let pw = c.password.expose_secret();
        assert_eq!(pw.len(), 12, "{pw}");
        assert!(pw.chars().all(|ch| "abcdefgh12".contains(ch)), "{pw}");
        assert!(
            pw.chars().filter(|ch| "12".contains(*ch)).count() >= 2,
            "{pw}"
        );
        assert!(db.role_exists(&c.username).await);
    }
    let generated = root
        .read("sys/policies/password/dbp/generate")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        generated.get("password").unwrap().as_str().unwrap().len(),
        12
    );
    root.leases()
        .revoke_prefix("database/creds/ro")
        .await
        .unwrap();
    assert!(db.granted_roles().await.is_empty());
    db.drop().await;
}
