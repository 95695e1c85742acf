//! The database engine against the real PostgreSQL, MariaDB and Redis of this machine
//! (`STRONGROOM_TEST_POSTGRES_URL`, `STRONGROOM_TEST_MYSQL_URL`, `STRONGROOM_TEST_REDIS_URL`).
//! A server that is down fails the test with a message naming it. Every test makes its own
//! uniquely named database, table and users and drops them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

use super::Database;
use crate::clock::VirtualClock;
use crate::error::{ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::secrets::{Engine, EngineContext, LeasedSecret};
use crate::storage::view::View;
use crate::storage::{Backend, MemoryBackend};

fn pg_url() -> String {
    std::env::var("STRONGROOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}
fn mysql_url() -> String {
    std::env::var("STRONGROOM_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}
fn redis_url() -> String {
    std::env::var("STRONGROOM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn uniq() -> String {
    super::template::random_alnum(10).to_lowercase()
}

struct Env {
    engine: Database,
    ctx: EngineContext,
    clock: VirtualClock,
}

fn env_over(backend: Arc<dyn Backend>) -> Env {
    let clock = VirtualClock::new();
    Env {
        engine: Database {
            conns: tokio::sync::Mutex::new(Default::default()),
            rotations: std::sync::Mutex::new(Default::default()),
        },
        ctx: EngineContext {
            storage: View::new(backend.clone(), "logical/db/"),
            password_policies: View::new(backend, crate::password_policy::PREFIX),
            clock: Arc::new(clock.clone()),
            default_lease_ttl: Duration::from_secs(768 * 3600),
            max_lease_ttl: Duration::from_secs(768 * 3600),
        },
        clock,
    }
}

fn env() -> Env {
    env_over(Arc::new(MemoryBackend::new()))
}

fn body(v: Value) -> Data {
    crate::data(v)
}

/// A credential and its lease, as the pipeline would record it.
struct Cred {
    username: String,
    password: String,
    internal: Data,
    on_commit: Vec<crate::storage::TxnOp>,
    ttl: Duration,
    issued: SystemTime,
}

impl Env {
    async fn call(&self, op: Operation, path: &str, v: Value) -> Result<Option<Response>> {
        self.engine
            .handle(&self.ctx, &Request::new(op, path).with_data(body(v)))
            .await
    }
    async fn write(&self, path: &str, v: Value) -> Option<Response> {
        match self.call(Operation::Update, path, v).await {
            Ok(r) => r,
            Err(e) => panic!("write {path} failed: {e}"),
        }
    }
    async fn read(&self, path: &str) -> Option<Response> {
        match self.call(Operation::Read, path, json!({})).await {
            Ok(r) => r,
            Err(e) => panic!("read {path} failed: {e}"),
        }
    }
    /// A credential whose lease was recorded (the pipeline commits the engine's `on_commit`
    /// operations with the lease).
    async fn creds(&self, role: &str) -> Cred {
        let c = self.creds_unleased(role).await;
        self.ctx
            .storage
            .transaction(c.on_commit.clone())
            .await
            .expect("lease commit");
        c
    }

    /// A credential created but whose lease was never recorded (a crash in between).
    async fn creds_unleased(&self, role: &str) -> Cred {
        let r = self
            .read(&format!("creds/{role}"))
            .await
            .expect("a credential");
        let lease = r.lease.clone().expect("a lease");
        assert!(lease.renewable);
        Cred {
            username: r
                .get("username")
                .and_then(Value::as_str)
                .unwrap()
                .to_string(),
            password: r
                .get("password")
                .and_then(Value::as_str)
                .unwrap()
                .to_string(),
            internal: lease.internal,
            on_commit: lease.on_commit,
            ttl: lease.ttl,
            issued: SystemTime::from(crate::clock::Clock::now(&self.clock)),
        }
    }
    fn lease<'a>(&self, c: &'a Cred) -> LeasedSecret<'a> {
        LeasedSecret {
            lease_id: "database/creds/x/abc",
            path: "creds/x",
            internal: &c.internal,
            issue_time: c.issued,
            expire_time: c.issued + c.ttl,
        }
    }
    async fn revoke(&self, c: &Cred) -> Result<()> {
        self.engine.revoke(&self.ctx, &self.lease(c)).await
    }
}

/// Revoke every credential at once, as revoke-prefix and the expiry runner do (one task each);
/// each credential comes back with its revocation's result.
async fn revoke_all(e: &Arc<Env>, creds: Vec<Cred>) -> Vec<(Cred, Result<()>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in creds {
        let e = e.clone();
        tasks.spawn(async move {
            let r = e.revoke(&c).await;
            (c, r)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        out.push(done.expect("a revocation task"));
    }
    out
}

// ---------------------------------------------------------------- PostgreSQL

async fn pg_admin(db: &str) -> tokio_postgres::Client {
    let mut cfg: tokio_postgres::Config = pg_url().parse().expect("STRONGROOM_TEST_POSTGRES_URL");
    if !db.is_empty() {
        cfg.dbname(db);
    }
    let (client, conn) = match cfg.connect(tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => panic!("PostgreSQL at {} is not reachable: {e}", pg_url()),
    };
    tokio::spawn(conn);
    client
}

/// A fresh database with a table `items` (one row); dropped by `PgDb::drop_all`.
struct PgDb {
    name: String,
}

impl PgDb {
    async fn new() -> PgDb {
        let name = format!("sr_dbtest_{}", uniq());
        pg_admin("")
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        pg_admin(&name)
            .await
            .batch_execute("CREATE TABLE items (id int); INSERT INTO items VALUES (1);")
            .await
            .unwrap();
        PgDb { name }
    }
    fn url(&self) -> String {
        let cfg: tokio_postgres::Config = pg_url().parse().unwrap();
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{port}/{}?sslmode=disable",
            self.name
        )
    }
    fn admin_user(&self) -> String {
        let cfg: tokio_postgres::Config = pg_url().parse().unwrap();
        cfg.get_user().unwrap_or("postgres").to_string()
    }
    async fn login(
        &self,
        user: &str,
        password: &str,
    ) -> std::result::Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut cfg: tokio_postgres::Config = pg_url().parse().unwrap();
        cfg.dbname(&self.name).user(user).password(password);
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }
    async fn role_exists(&self, user: &str) -> bool {
        pg_admin("")
            .await
            .query_one(
                "SELECT exists(SELECT 1 FROM pg_roles WHERE rolname = $1)",
                &[&user],
            )
            .await
            .unwrap()
            .get(0)
    }
    /// Backend pids of the engine's connections to this database (sorted).
    async fn backends(&self) -> Vec<i32> {
        pg_admin("")
            .await
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'vault' ORDER BY pid",
                &[&self.name],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
    /// Poll (up to 5 s: the server notices a closed socket on its own time) until `ok` holds
    /// for the backends; returns them.
    async fn backends_until(&self, ok: impl Fn(&[i32]) -> bool) -> Vec<i32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let b = self.backends().await;
            if ok(&b) || std::time::Instant::now() > deadline {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    async fn roles_like(&self, prefix: &str) -> Vec<String> {
        pg_admin("")
            .await
            .query(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)",
                &[&prefix],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
    /// Drop the database and any role created for it.
    async fn drop_all(&self, roles: &[&str]) {
        let admin = pg_admin("").await;
        let _ = admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&self.name],
            )
            .await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name))
            .await
            .unwrap();
        for r in roles {
            admin
                .batch_execute(&format!("DROP ROLE IF EXISTS \"{r}\""))
                .await
                .unwrap();
        }
    }
}

impl Drop for PgDb {
    /// A failed test still cleans up: the database and the users its table was granted to.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                let users: Vec<String> = pg_admin(&name)
                    .await
                    .query(
                        "SELECT DISTINCT grantee::text FROM information_schema.role_table_grants WHERE table_name = 'items' AND grantee LIKE 'v-%'",
                        &[],
                    )
                    .await
                    .map(|rows| rows.iter().map(|r| r.get(0)).collect())
                    .unwrap_or_default();
                let db = PgDb { name: name.clone() };
                let roles: Vec<&str> = users.iter().map(String::as_str).collect();
                db.drop_all(&roles).await;
                std::mem::forget(db);
            });
        })
        .join();
    }
}

/// Whether `password` is the one PostgreSQL stored for `user` (its SCRAM-SHA-256 verifier):
/// this machine's pg_hba trusts loopback, so a login alone would not prove the password.
async fn pg_password_matches(user: &str, password: &str) -> bool {
    use aws_lc_rs::{digest, hmac, pbkdf2};
    use base64::Engine as _;
    let row = pg_admin("")
        .await
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&user],
        )
        .await
        .unwrap();
    let stored: Option<String> = row.get(0);
    let stored = stored.expect("a stored password");
    // SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>
    let rest = stored
        .strip_prefix("SCRAM-SHA-256$")
        .expect("a scram verifier");
    let (params, keys) = rest.split_once('$').unwrap();
    let (iter, salt) = params.split_once(':').unwrap();
    let (stored_key, _) = keys.split_once(':').unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64.decode(salt).unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iter.parse().unwrap()).unwrap(),
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    let client_key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &salted), b"Client Key");
    let computed = digest::digest(&digest::SHA256, client_key.as_ref());
    b64.encode(computed.as_ref()) == stored_key
}

const PG_CREATE: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON items TO \"{{name}}\";";

async fn pg_setup(e: &Env, db: &PgDb, role: &str) {
    e.write(
        "config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": db.url(),
            "username": db.admin_user(),
            "password": "unused-with-trust",
            "allowed_roles": format!("{role},other*"),
        }),
    )
    .await;
    e.write(
        &format!("roles/{role}"),
        json!({"db_name": "pg", "creation_statements": PG_CREATE, "default_ttl": "1h", "max_ttl": "24h"}),
    )
    .await;
}

#[tokio::test]
async fn pg_dynamic_creds_log_in_do_what_was_granted_and_vanish_on_revoke() {
    let db = PgDb::new().await;
    let e = env();
    pg_setup(&e, &db, "ro").await;

    let c = e.creds("ro").await;
    assert_eq!(c.ttl, Duration::from_secs(3600));
    let parts: Vec<&str> = c.username.split('-').collect();
    assert_eq!(parts[..3], ["v", "token", "ro"], "{}", c.username);
    assert_eq!(parts[3].len(), 20);
    assert_eq!(c.password.len(), 20);
    assert!(pg_password_matches(&c.username, &c.password).await);
    assert!(!pg_password_matches(&c.username, "wrong-password-1A").await);

    // VALID UNTIL = now + ttl + 5s.
    let until: String = pg_admin("")
        .await
        .query_one(
            "SELECT to_char(rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM pg_roles WHERE rolname = $1",
            &[&c.username],
        )
        .await
        .unwrap()
        .get(0);
    let expect =
        super::template::expiration(crate::clock::Clock::now(&e.clock) + Duration::from_secs(3605));
    assert_eq!(format!("{until}+0000"), expect);

    let session = db
        .login(&c.username, &c.password)
        .await
        .expect("the new user logs in");
    let n: i32 = session
        .query_one("SELECT id FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let denied = session
        .batch_execute("INSERT INTO items VALUES (2)")
        .await
        .unwrap_err();
    assert_eq!(
        denied.as_db_error().unwrap().code().code(),
        "42501",
        "insert was not granted"
    );

    e.revoke(&c).await.expect("revoke");
    assert!(!db.role_exists(&c.username).await, "the role is dropped");
    assert!(
        session.simple_query("SELECT 1").await.is_err(),
        "the open session was ended"
    );
    assert!(
        db.login(&c.username, &c.password).await.is_err(),
        "no new login"
    );
    // Idempotent: a second revoke (a retry) succeeds.
    e.revoke(&c).await.expect("revoking a gone user is success");
    assert!(
        e.ctx
            .storage
            .get(&format!("issued/{}", c.username))
            .await
            .unwrap()
            .is_none()
    );
    db.drop_all(&[]).await;
}

#[tokio::test]
async fn pg_concurrent_revocations_share_transactions_and_a_refused_one_fails_alone() {
    let db = PgDb::new().await;
    let e = Arc::new(env());
    pg_setup(&e, &db, "ro").await;
    // Given statements that record the transaction they ran in.
    pg_admin(&db.name)
        .await
        .batch_execute("CREATE TABLE revlog (name text, tx bigint)")
        .await
        .unwrap();
    e.write(
        "roles/otherlogged",
        json!({"db_name": "pg", "creation_statements": PG_CREATE, "default_ttl": "1h",
               "revocation_statements": "INSERT INTO revlog VALUES ('{{name}}', txid_current()); REVOKE ALL ON items FROM \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";"}),
    )
    .await;
    let mut creds = Vec::new();
    for i in 0..24 {
        // Default statements and given ones, in the same batches.
        creds.push(e.creds(if i % 3 == 0 { "ro" } else { "otherlogged" }).await);
    }
    let sessions = [
        db.login(&creds[0].username, &creds[0].password)
            .await
            .unwrap(),
        db.login(&creds[1].username, &creds[1].password)
            .await
            .unwrap(),
    ];
    for (c, r) in revoke_all(&e, creds).await {
        r.unwrap_or_else(|err| panic!("revoking {}: {err}", c.username));
        assert!(
            !db.role_exists(&c.username).await,
            "{} is dropped",
            c.username
        );
        assert!(
            e.ctx
                .storage
                .get(&format!("issued/{}", c.username))
                .await
                .unwrap()
                .is_none()
        );
    }
    for s in &sessions {
        assert!(
            s.simple_query("SELECT 1").await.is_err(),
            "the open session was ended"
        );
    }
    let (batches, users) = e.engine.revocation_stats("pg").await;
    assert_eq!(users, 24);
    assert!(
        batches <= 12,
        "24 revocations at once ran in {batches} batches"
    );
    // Each given revocation committed exactly once, several in one transaction.
    let row = pg_admin(&db.name)
        .await
        .query_one("SELECT count(*), count(DISTINCT tx) FROM revlog", &[])
        .await
        .unwrap();
    let (rows, txs): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows, 16, "one committed revocation per user");
    assert!(txs < 16, "16 revocations in {txs} transactions");

    // A user whose revocation the database refuses fails alone; the others in its batch go.
    e.write(
        "roles/otherbad",
        json!({"db_name": "pg", "creation_statements": PG_CREATE, "default_ttl": "1h",
               "revocation_statements": "REVOKE ALL ON items FROM \"{{name}}\"; SELECT 1/0; DROP ROLE IF EXISTS \"{{name}}\";"}),
    )
    .await;
    let mut creds = Vec::new();
    for i in 0..6 {
        creds.push(e.creds(if i == 3 { "otherbad" } else { "ro" }).await);
    }
    let bad = creds[3].username.clone();
    for (c, r) in revoke_all(&e, creds).await {
        if c.username == bad {
            let err = r.expect_err("the refused revocation fails");
            assert_eq!(err.code(), ErrorCode::Upstream, "{err}");
            assert!(err.message().contains("division by zero"), "{err}");
            assert!(
                db.role_exists(&bad).await,
                "a failed revocation leaves the user"
            );
        } else {
            r.unwrap_or_else(|err| panic!("revoking {}: {err}", c.username));
            assert!(!db.role_exists(&c.username).await);
        }
    }
    db.drop_all(&[&bad]).await;
}

#[tokio::test]
async fn pg_a_failing_statement_leaves_no_role_behind() {
    let db = PgDb::new().await;
    let e = env();
    pg_setup(&e, &db, "bad").await;
    e.write(
        "roles/bad",
        json!({"creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';", "GRANT SELECT ON no_such_table TO \"{{name}}\";"]}),
    )
    .await;
    let err = e
        .call(Operation::Read, "creds/bad", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Upstream);
    assert!(err.message().contains("no_such_table"), "{err}");
    assert!(
        db.roles_like("v-token-bad-").await.is_empty(),
        "nothing half-created"
    );
    // A syntax error quoting the password does not show it.
    e.write(
        "roles/bad",
        json!({"creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD {{password}};"]}),
    )
    .await;
    let err = e
        .call(Operation::Read, "creds/bad", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Upstream, "{err}");
    // Whatever PostgreSQL makes of the unquoted password, it names no piece of it.
    if err.message().contains(" near ") {
        assert!(err.message().ends_with("near [redacted]"), "{err}");
    }
    assert!(db.roles_like("v-token-bad-").await.is_empty());
    let intents = e
        .ctx
        .storage
        .list("issued/", &crate::storage::Page::all())
        .await
        .unwrap();
    assert!(intents.is_empty(), "{intents:?}");
    db.drop_all(&[]).await;
}

#[tokio::test]
async fn pg_renew_moves_valid_until_within_max_ttl() {
    let db = PgDb::new().await;
    let e = env();
    pg_setup(&e, &db, "ro").await;
    let c = e.creds("ro").await;
    let until = || async {
        let v: i64 = pg_admin("")
            .await
            .query_one(
                "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = $1",
                &[&c.username],
            )
            .await
            .unwrap()
            .get(0);
        v
    };
    let before = until().await;
    e.clock.advance(Duration::from_secs(1800));
    let l = e
        .engine
        .renew(&e.ctx, &e.lease(&c), Duration::from_secs(7200))
        .await
        .expect("renew");
    assert_eq!(l.ttl, Duration::from_secs(7200));
    assert_eq!(until().await - before, 1800 + 7200 - 3600);
    // Past the 24h max counted from issue: capped.
    e.clock.advance(Duration::from_secs(23 * 3600));
    let l = e
        .engine
        .renew(&e.ctx, &e.lease(&c), Duration::from_secs(7200))
        .await
        .unwrap();
    assert_eq!(l.ttl, Duration::from_secs(1800));
    e.revoke(&c).await.unwrap();
    db.drop_all(&[]).await;
}

#[tokio::test]
async fn pg_bad_input_gets_clear_errors_and_changes_nothing() {
    let db = PgDb::new().await;
    let e = env();
    pg_setup(&e, &db, "ro").await;
    e.write(
        "roles/notallowed",
        json!({"db_name": "pg", "creation_statements": PG_CREATE}),
    )
    .await;

    let err = e
        .call(Operation::Read, "creds/nope", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (ErrorCode::InvalidInput, "unknown role: nope")
    );
    let err = e
        .call(Operation::Read, "creds/notallowed", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal);
    assert_eq!(
        err.message(),
        "1 error occurred:\n\t* \"notallowed\" is not an allowed role\n\n"
    );
    // Injection through names.
    for bad in ["x\"; DROP ROLE postgres; --", "a'b", "../config/pg"] {
        let err = e
            .call(
                Operation::Update,
                &format!("roles/{bad}"),
                json!({"db_name": "pg"}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnsupportedPath, "{bad}");
        assert_eq!(err.message(), "1 error occurred:\n\t* unsupported path\n\n");
    }
    // Unreachable server: the config is refused and not stored.
    let err = e
        .call(
            Operation::Update,
            "config/down",
            json!({"plugin_name": "postgresql-database-plugin", "connection_url": "postgresql://u@127.0.0.1:1/x", "allowed_roles": "*"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    assert!(
        err.message()
            .starts_with("error creating database object: error verifying connection: "),
        "{err}"
    );
    assert!(err.message().contains("refused"), "says why: {err}");
    assert!(e.read("config/down").await.is_none());
    // Unknown plugin.
    let err = e
        .call(
            Operation::Update,
            "config/x",
            json!({"plugin_name": "oracle-database-plugin"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "error creating database object: invalid database version: 2 errors occurred:\n\t* plugin not found in the catalog: oracle-database-plugin\n\t* plugin not found in the catalog: oracle-database-plugin\n\n"
    );
    // A role on a connection that does not exist.
    e.write(
        "roles/ghost",
        json!({"db_name": "nodb", "creation_statements": "x"}),
    )
    .await;
    let err = e
        .call(Operation::Read, "creds/ghost", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal);
    assert_eq!(
        err.message(),
        "1 error occurred:\n\t* failed to find entry for connection with name: \"nodb\"\n\n"
    );
    let err = e
        .call(Operation::Update, "roles/nodb", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "database name is required");
    // Roles and static roles share one namespace.
    let err = e
        .call(
            Operation::Update,
            "static-roles/ro",
            json!({"db_name": "pg", "username": "x", "rotation_period": 60}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.message(), "Role and Static Role names must be unique");
    // Empty creation statements.
    e.write("roles/ro", json!({"creation_statements": []}))
        .await;
    let err = e
        .call(Operation::Read, "creds/ro", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "1 error occurred:\n\t* empty creation statements\n\n"
    );
    db.drop_all(&[]).await;
}

#[tokio::test]
async fn pg_config_and_role_read_back_in_openbaos_shape() {
    let db = PgDb::new().await;
    let e = env();
    pg_setup(&e, &db, "ro").await;
    let cfg = e.read("config/pg").await.unwrap();
    let d = cfg.data.unwrap();
    assert_eq!(d["plugin_name"], "postgresql-database-plugin");
    assert_eq!(d["allowed_roles"], json!(["ro", "other*"]));
    assert!(
        d["connection_details"].get("password").is_none(),
        "no password in reads"
    );
    assert_eq!(d["connection_details"]["username"], db.admin_user());
    assert_eq!(d["root_credentials_rotate_statements"], json!([]));
    let role = e.read("roles/ro").await.unwrap().data.unwrap();
    assert_eq!(
        Value::Object(role),
        json!({"creation_statements": [PG_CREATE], "credential_type": "password", "db_name": "pg",
               "default_ttl": 3600, "max_ttl": 86400, "renew_statements": [], "revocation_statements": [],
               "rollback_statements": []})
    );
    let keys = e
        .call(Operation::List, "roles/", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys.get("keys"), Some(&json!(["ro"])));
    // A literal password in the URL is redacted and warned about.
    let w = e
        .write(
            "config/lit",
            json!({"plugin_name": "postgresql-database-plugin", "verify_connection": false,
                   "connection_url": "postgresql://postgres:s3cret@127.0.0.1:5432/x"}),
        )
        .await
        .unwrap();
    assert!(w.warnings[0].starts_with("Password found in connection_url"));
    let lit = e.read("config/lit").await.unwrap().data.unwrap();
    assert_eq!(
        lit["connection_details"]["connection_url"],
        "postgresql://postgres:xxxxx@127.0.0.1:5432/x"
    );
    db.drop_all(&[]).await;
}

#[tokio::test]
async fn pg_reconciler_finds_and_drops_users_no_lease_knows() {
    let db = PgDb::new().await;
    let e = env();
    pg_setup(&e, &db, "ro").await;
    let live = e.creds("ro").await;
    let tag = format!("v-token-ro-orphan{}", uniq());
    let orphan = format!("{tag}-1");
    pg_admin("")
        .await
        .batch_execute(&format!("CREATE ROLE \"{orphan}\" LOGIN"))
        .await
        .unwrap();
    let dry = e.write("reconcile/pg", json!({})).await.unwrap();
    let err = e
        .call(
            Operation::Update,
            "reconcile/pg",
            json!({"username_prefix": "app_"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let found: Vec<String> = serde_json::from_value(dry.get("orphans").cloned().unwrap()).unwrap();
    assert!(found.contains(&orphan));
    assert!(!found.contains(&live.username));
    assert!(db.role_exists(&orphan).await, "a dry run changes nothing");
    // Applied to this test's prefix only: other tests' users share the server.
    let applied = e
        .write(
            "reconcile/pg",
            json!({"apply": true, "username_prefix": tag}),
        )
        .await
        .unwrap();
    assert_eq!(applied.get("orphans"), Some(&json!([orphan])));
    assert!(!db.role_exists(&orphan).await);
    assert!(db.role_exists(&live.username).await);

    // A credential whose lease was never recorded (a crash between creation and
    // registration): its intent record is still there, so it is not dropped while the issue
    // could still be in flight, and is dropped once the intent is a minute old, long before
    // any max TTL.
    let lost = e.creds_unleased("ro").await;
    let lost_tag = lost.username.get(..30).unwrap().to_string();
    let dry = e
        .write("reconcile/pg", json!({"username_prefix": lost_tag}))
        .await
        .unwrap();
    assert_eq!(dry.get("orphans"), Some(&json!([])));
    let applied = e
        .write(
            "reconcile/pg",
            json!({"apply": true, "username_prefix": lost_tag}),
        )
        .await
        .unwrap();
    assert_eq!(applied.get("unleased_dropped"), Some(&json!([])));
    assert!(db.role_exists(&lost.username).await, "still in flight");
    e.clock.advance(Duration::from_secs(61));
    e.engine.recover(&e.ctx).await.unwrap();
    assert!(!db.role_exists(&lost.username).await, "recovered");
    // A known user past its max TTL (and the grace hour) with no intent left: its lease must
    // have been lost some other way (a restored backup), so the reconciler drops it.
    let stale = e.creds("ro").await;
    let stale_tag = stale.username.get(..30).unwrap().to_string();
    e.clock.advance(Duration::from_secs(25 * 3600 + 1));
    let applied = e
        .write(
            "reconcile/pg",
            json!({"apply": true, "username_prefix": stale_tag}),
        )
        .await
        .unwrap();
    assert_eq!(applied.get("orphans"), Some(&json!([stale.username])));
    assert!(!db.role_exists(&stale.username).await);
    assert!(
        db.role_exists(&live.username).await,
        "never another credential"
    );
    e.revoke(&live).await.unwrap();
    db.drop_all(&[&orphan]).await;
}

#[tokio::test]
async fn pg_static_role_rotates_on_create_on_demand_and_when_due() {
    let db = PgDb::new().await;
    let e = env();
    pg_setup(&e, &db, "static-app").await;
    let user = format!("sr_static_{}", uniq());
    pg_admin("")
        .await
        .batch_execute(&format!(
            "CREATE ROLE \"{user}\" LOGIN PASSWORD 'initial-Pw-1'"
        ))
        .await
        .unwrap();
    e.call(Operation::Delete, "roles/static-app", json!({}))
        .await
        .unwrap();
    let err = e
        .call(
            Operation::Update,
            "static-roles/static-app",
            json!({"db_name": "pg", "username": user, "rotation_period": 3}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.message(), "rotation_period must be 5 seconds or more");
    e.write(
        "static-roles/static-app",
        json!({"db_name": "pg", "username": user, "rotation_period": "1h"}),
    )
    .await;
    assert!(
        !pg_password_matches(&user, "initial-Pw-1").await,
        "rotated at creation"
    );
    let c1 = e.read("static-creds/static-app").await.unwrap();
    let p1 = c1
        .get("password")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert!(pg_password_matches(&user, &p1).await);
    assert_eq!(c1.get("ttl"), Some(&json!(3600)));
    assert!(c1.lease.is_none(), "static credentials have no lease");

    e.write("rotate-role/static-app", json!({})).await;
    let p2 = e
        .read("static-creds/static-app")
        .await
        .unwrap()
        .get("password")
        .cloned()
        .unwrap();
    assert_ne!(p2, json!(p1));
    assert!(pg_password_matches(&user, p2.as_str().unwrap()).await);

    e.clock.advance(Duration::from_secs(3601));
    let p3 = e.read("static-creds/static-app").await.unwrap();
    assert_ne!(p3.get("password"), Some(&p2), "rotated when due");
    assert!(pg_password_matches(&user, p3.get("password").and_then(Value::as_str).unwrap()).await);
    // On schedule with nobody reading: the maintenance run rotates it.
    e.engine.periodic(&e.ctx).await.unwrap();
    let same = e.read("static-creds/static-app").await.unwrap();
    assert_eq!(same.get("password"), p3.get("password"), "not due yet");
    e.clock.advance(Duration::from_secs(3601));
    e.engine.periodic(&e.ctx).await.unwrap();
    let raw = e
        .ctx
        .storage
        .get("static-role/static-app")
        .await
        .unwrap()
        .unwrap();
    let stored: super::StaticRole = serde_json::from_slice(&raw).unwrap();
    assert_ne!(
        Some(&json!(stored.password)),
        p3.get("password"),
        "rotated by the maintenance run"
    );
    assert!(pg_password_matches(&user, &stored.password).await);
    let p4 = e.read("static-creds/static-app").await.unwrap();
    assert_eq!(p4.get("password"), Some(&json!(stored.password)));
    assert_eq!(
        p4.get("ttl"),
        Some(&json!(3600)),
        "counted from the maintenance run"
    );
    let err = e
        .call(
            Operation::Update,
            "static-roles/static-app",
            json!({"username": "other"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.message(), "cannot update static account username");
    db.drop_all(&[&user]).await;
}

/// A PostgreSQL config allowing every role, a fresh login role, and static role `name` over
/// it (rotation period 1h, so rotated once at creation).
async fn pg_static_role(name: &str) -> (PgDb, Env, String) {
    let db = PgDb::new().await;
    let e = env();
    pg_setup(&e, &db, "dyn-app").await;
    e.write("config/pg", json!({"allowed_roles": "*"})).await;
    let user = format!("sr_static_{}", uniq());
    pg_admin("")
        .await
        .batch_execute(&format!(
            "CREATE ROLE \"{user}\" LOGIN PASSWORD 'initial-Pw-1'"
        ))
        .await
        .unwrap();
    e.write(
        &format!("static-roles/{name}"),
        json!({"db_name": "pg", "username": user, "rotation_period": "1h"}),
    )
    .await;
    (db, e, user)
}

/// The `password` a credential response carries.
fn password_of(r: &Response) -> String {
    r.get("password")
        .and_then(Value::as_str)
        .unwrap()
        .to_string()
}

/// Rotations of one static role take turns: reads that all find the role due at the same
/// moment rotate it once and agree on the password, and `rotate-role` calls mixed with reads
/// and the scheduled run always leave the stored password equal to the database's (before,
/// two rotations could set different passwords and store them in the opposite order). A WAL
/// left by another process is finished with its password, not replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_concurrent_static_rotations_agree_with_the_database() {
    let (db, e, user) = pg_static_role("static-app").await;
    let password = |r: Option<Response>| password_of(&r.unwrap());
    let before = password(e.read("static-creds/static-app").await);

    // Eight readers find it due at once.
    e.clock.advance(Duration::from_secs(3601));
    let r = || e.read("static-creds/static-app");
    let (a, b, c, d, f, g, h, i) = tokio::join!(r(), r(), r(), r(), r(), r(), r(), r());
    let seen: std::collections::BTreeSet<String> =
        [a, b, c, d, f, g, h, i].into_iter().map(password).collect();
    assert_eq!(seen.len(), 1, "one rotation, one password for every reader");
    let now = seen.into_iter().next().unwrap();
    assert_ne!(now, before, "it was rotated");
    assert!(pg_password_matches(&user, &now).await);

    // rotate-role calls, reads and the scheduled run, all at once.
    e.clock.advance(Duration::from_secs(3601));
    let rot = || e.call(Operation::Update, "rotate-role/static-app", json!({}));
    let (r1, r2, r3, _, _, p) =
        tokio::join!(rot(), rot(), rot(), r(), r(), e.engine.periodic(&e.ctx));
    for x in [r1, r2, r3] {
        x.unwrap();
    }
    p.unwrap();
    let stored = password(e.read("static-creds/static-app").await);
    assert!(
        pg_password_matches(&user, &stored).await,
        "the stored password is the database's"
    );
    assert!(
        e.ctx
            .storage
            .get("wal/static/static-app")
            .await
            .unwrap()
            .is_none()
    );

    // A WAL another process left (it crashed after writing it): the next rotation finishes
    // it with that password instead of inventing a new one.
    let wal = super::PasswordWal {
        username: user.clone(),
        new_password: "from-the-Other-process-1".into(),
    };
    e.ctx
        .storage
        .put("wal/static/static-app", &serde_json::to_vec(&wal).unwrap())
        .await
        .unwrap();
    let got = password(e.read("static-creds/static-app").await);
    assert_eq!(got, wal.new_password);
    assert!(pg_password_matches(&user, &wal.new_password).await);
    db.drop_all(&[&user]).await;
}

/// A rotation the database refuses (here a statement that always fails) leaves the old
/// password in force: reads hand it out with a warning instead of failing, no WAL keeps the
/// refused password for ever (vault PR #28989), and once the statements are fixed the next
/// rotation makes a fresh password.
#[tokio::test]
async fn pg_refused_static_rotation_keeps_the_old_password_and_retries_fresh() {
    let (db, e, user) = pg_static_role("app").await;
    let password = password_of;
    let old = password(&e.read("static-creds/app").await.unwrap());
    e.write(
        "static-roles/app",
        json!({"rotation_statements": ["ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'; SELECT 1/0;"]}),
    )
    .await;
    e.clock.advance(Duration::from_secs(3601));
    for _ in 0..2 {
        let r = e.read("static-creds/app").await.unwrap();
        assert_eq!(password(&r), old, "the old password stays in force");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("rotation failed") && w.contains("division by zero")),
            "{:?}",
            r.warnings
        );
        assert!(pg_password_matches(&user, &old).await);
        assert!(
            e.ctx.storage.get("wal/static/app").await.unwrap().is_none(),
            "no WAL keeps the refused password"
        );
    }
    e.write(
        "static-roles/app",
        json!({"rotation_statements": ["ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';"]}),
    )
    .await;
    let r = e.read("static-creds/app").await.unwrap();
    let new = password(&r);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_ne!(new, old);
    assert!(pg_password_matches(&user, &new).await);
    db.drop_all(&[&user]).await;
}

/// The engine keeps its pool across mount-table reloads, so a config another process changed
/// in the shared store must be noticed on use: a broken URL written behind the engine's back
/// breaks the next issue, and the repaired one works again.
#[tokio::test]
async fn pg_config_changed_behind_the_engines_back_is_picked_up() {
    let db = PgDb::new().await;
    let e = env();
    pg_setup(&e, &db, "ro").await;
    let c = e.creds("ro").await;
    e.revoke(&c).await.unwrap();
    let good = e.ctx.storage.get("config/pg").await.unwrap().unwrap();
    let mut cfg: Value = serde_json::from_slice(&good).unwrap();
    let url = cfg["connection_details"]["connection_url"]
        .as_str()
        .unwrap()
        .to_string();
    // Same URL, with a port nothing listens on.
    let at = url.find('@').unwrap();
    let slash = at + url[at..].find('/').unwrap();
    cfg["connection_details"]["connection_url"] =
        json!(format!("{}@127.0.0.1:1{}", &url[..at], &url[slash..]));
    e.ctx
        .storage
        .put("config/pg", &serde_json::to_vec(&cfg).unwrap())
        .await
        .unwrap();
    let err = e
        .call(Operation::Read, "creds/ro", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{}", err.message());
    e.ctx.storage.put("config/pg", &good).await.unwrap();
    let c = e.creds("ro").await;
    assert!(db.role_exists(&c.username).await);
    e.revoke(&c).await.unwrap();
}

/// `max_idle_connections` bounds the connections a pool keeps open when idle, and
/// `max_connection_lifetime` retires a connection instead of reusing it once it is that old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_pool_honours_max_idle_and_max_connection_lifetime() {
    let db = PgDb::new().await;
    let e = env();
    pg_setup(&e, &db, "ro").await;
    e.write(
        "config/pg",
        json!({"max_open_connections": 4, "max_idle_connections": 1}),
    )
    .await;
    let (a, b, c) = tokio::join!(e.creds("ro"), e.creds("ro"), e.creds("ro"));
    let peak = db.backends().await;
    assert!(
        peak.len() >= 2,
        "three at once used several connections: {peak:?}"
    );
    let d = e.creds("ro").await;
    let idle = db.backends_until(|b| b.len() <= 1).await;
    assert!(
        idle.len() <= 1,
        "at most one idle connection kept: {idle:?}"
    );
    for cred in [a, b, c, d] {
        e.revoke(&cred).await.unwrap();
    }

    e.write("config/pg", json!({"max_connection_lifetime": "1ms"}))
        .await;
    let first = e.creds("ro").await;
    let before = db.backends_until(|b| b.len() == 1).await;
    let second = e.creds("ro").await;
    let after = db
        .backends_until(|b| b.len() == 1 && b != before.as_slice())
        .await;
    assert_ne!(after, before, "the old connection was retired, not reused");
    for cred in [first, second] {
        e.revoke(&cred).await.unwrap();
    }
    db.drop_all(&[]).await;
}

#[tokio::test]
async fn pg_root_rotation_changes_the_admin_password_and_keeps_working() {
    let db = PgDb::new().await;
    let admin = format!("sr_admin_{}", uniq());
    pg_admin("")
        .await
        .batch_execute(&format!("CREATE ROLE \"{admin}\" LOGIN CREATEROLE PASSWORD 'admin-Pw-1'; GRANT ALL ON DATABASE {} TO \"{admin}\";", db.name))
        .await
        .unwrap();
    pg_admin(&db.name)
        .await
        .batch_execute(&format!(
            "GRANT SELECT ON items TO \"{admin}\" WITH GRANT OPTION"
        ))
        .await
        .unwrap();
    let e = env();
    e.write(
        "config/pg",
        json!({"plugin_name": "postgresql-database-plugin", "connection_url": db.url(),
               "username": admin, "password": "admin-Pw-1", "allowed_roles": "ro"}),
    )
    .await;
    e.write(
        "roles/ro",
        json!({"db_name": "pg", "creation_statements": PG_CREATE}),
    )
    .await;
    e.write("rotate-root/pg", json!({})).await;
    assert!(
        !pg_password_matches(&admin, "admin-Pw-1").await,
        "old root password gone"
    );

    // Scheduled: nothing before the period, a rotation on the first use after it.
    let err = e
        .call(
            Operation::Update,
            "config/pg",
            json!({"root_rotation_period": 2}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "root_rotation_period must be 5 seconds or more"
    );
    e.write("config/pg", json!({"root_rotation_period": "1h"}))
        .await;
    let cfg = e.read("config/pg").await.unwrap();
    assert_eq!(cfg.get("root_rotation_period"), Some(&json!(3600)));
    let before = cfg.get("last_root_rotation").cloned().unwrap();
    let known = |e: &Env| {
        let e = e.ctx.storage.clone();
        async move {
            let raw = e.get("config/pg").await.unwrap().unwrap();
            let c: super::DbConfig = serde_json::from_slice(&raw).unwrap();
            params_password(&c)
        }
    };
    let pw1 = known(&e).await;
    assert!(pg_password_matches(&admin, &pw1).await);
    let c = e.creds("ro").await;
    e.revoke(&c).await.unwrap();
    assert_eq!(known(&e).await, pw1, "not due yet");
    e.clock.advance(Duration::from_secs(3601));
    let c = e.creds("ro").await;
    let pw2 = known(&e).await;
    assert_ne!(pw2, pw1, "rotated when due");
    assert!(pg_password_matches(&admin, &pw2).await);
    assert_ne!(
        e.read("config/pg").await.unwrap().get("last_root_rotation"),
        Some(&before)
    );
    e.revoke(&c).await.unwrap();
    // On schedule with no use at all: the maintenance run rotates it.
    e.engine.periodic(&e.ctx).await.unwrap();
    assert_eq!(known(&e).await, pw2, "not due yet");
    e.clock.advance(Duration::from_secs(3601));
    e.engine.periodic(&e.ctx).await.unwrap();
    let pw3 = known(&e).await;
    assert_ne!(pw3, pw2, "rotated by the maintenance run");
    assert!(pg_password_matches(&admin, &pw3).await);
    let c = e.creds("ro").await;
    assert!(
        db.role_exists(&c.username).await,
        "the engine works with the new password"
    );
    e.revoke(&c).await.unwrap();
    db.drop_all(&[&admin]).await;
}

fn params_password(c: &super::DbConfig) -> String {
    c.connection_details["password"]
        .as_str()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------- MySQL / MariaDB

fn mysql_opts() -> mysql_async::OptsBuilder {
    let opts = mysql_async::Opts::from_url(&mysql_url()).expect("STRONGROOM_TEST_MYSQL_URL");
    mysql_async::OptsBuilder::from_opts(opts).prefer_socket(false)
}

async fn my_admin() -> mysql_async::Conn {
    match mysql_async::Conn::new(mysql_opts()).await {
        Ok(c) => c,
        Err(e) => panic!("MariaDB/MySQL at {} is not reachable: {e}", mysql_url()),
    }
}

async fn my_login(
    user: &str,
    password: &str,
    db: &str,
) -> std::result::Result<mysql_async::Conn, mysql_async::Error> {
    mysql_async::Conn::new(
        mysql_opts()
            .user(Some(user))
            .pass(Some(password))
            .db_name(Some(db)),
    )
    .await
}

fn my_dsn() -> String {
    let o = mysql_async::Opts::from_url(&mysql_url()).unwrap();
    format!(
        "{{{{username}}}}:{{{{password}}}}@tcp({}:{})/",
        o.ip_or_hostname(),
        o.tcp_port()
    )
}

async fn my_db() -> String {
    let name = format!("sr_dbtest_{}", uniq());
    my_admin()
        .await
        .query_drop(format!("CREATE DATABASE {name}; CREATE TABLE {name}.items (id int); INSERT INTO {name}.items VALUES (1);"))
        .await
        .unwrap();
    name
}

async fn my_user_exists(user: &str) -> bool {
    let n: Option<i64> = my_admin()
        .await
        .exec_first("SELECT COUNT(*) FROM mysql.user WHERE User = ?", (user,))
        .await
        .unwrap();
    n.unwrap_or(0) > 0
}

async fn my_setup(e: &Env, db: &str, admin_user: &str, admin_pass: &str) {
    e.write(
        "config/my",
        json!({"plugin_name": "mysql-database-plugin", "connection_url": my_dsn(),
               "username": admin_user, "password": admin_pass, "allowed_roles": ["ro", "half", "static*"]}),
    )
    .await;
    e.write(
        "roles/ro",
        json!({"db_name": "my", "default_ttl": 600,
               "creation_statements": format!("CREATE USER '{{{{name}}}}'@'%' IDENTIFIED BY '{{{{password}}}}'; GRANT SELECT ON {db}.* TO '{{{{name}}}}'@'%';")}),
    )
    .await;
}

fn my_root() -> (String, String) {
    let o = mysql_async::Opts::from_url(&mysql_url()).unwrap();
    (
        o.user().unwrap_or("root").to_string(),
        o.pass().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn mysql_dynamic_creds_log_in_do_what_was_granted_and_vanish_on_revoke() {
    let db = my_db().await;
    let e = env();
    let (u, p) = my_root();
    my_setup(&e, &db, &u, &p).await;
    let c = e.creds("ro").await;
    assert!(
        c.username.len() <= 32 && c.username.starts_with("v-token-ro-"),
        "{}",
        c.username
    );
    let mut s = my_login(&c.username, &c.password, &db)
        .await
        .expect("the new user logs in");
    let n: Option<i32> = s.query_first("SELECT id FROM items").await.unwrap();
    assert_eq!(n, Some(1));
    let denied = s
        .query_drop("INSERT INTO items VALUES (2)")
        .await
        .unwrap_err();
    assert!(
        matches!(denied, mysql_async::Error::Server(ref se) if se.code == 1142),
        "{denied}"
    );
    assert!(my_login(&c.username, "wrong-password", &db).await.is_err());

    e.revoke(&c).await.expect("revoke");
    assert!(!my_user_exists(&c.username).await);
    assert!(
        s.query_drop("SELECT 1").await.is_err(),
        "the open session was killed"
    );
    assert!(my_login(&c.username, &c.password, &db).await.is_err());
    e.revoke(&c).await.expect("idempotent");
    my_admin()
        .await
        .query_drop(format!("DROP DATABASE {db}"))
        .await
        .unwrap();
}

/// The MySQL pool keeps its idle connections (up to `max_idle_connections`, by default all):
/// consecutive credentials reuse one connection instead of logging in to the server each time.
#[tokio::test]
async fn mysql_concurrent_revocations_go_in_batches() {
    let db = my_db().await;
    let e = Arc::new(env());
    let (u, p) = my_root();
    my_setup(&e, &db, &u, &p).await;
    e.write(
        "roles/half",
        json!({"db_name": "my", "default_ttl": 600,
               "creation_statements": format!("CREATE USER '{{{{name}}}}'@'%' IDENTIFIED BY '{{{{password}}}}'; GRANT SELECT ON {db}.* TO '{{{{name}}}}'@'%';"),
               "revocation_statements": "REVOKE ALL PRIVILEGES, GRANT OPTION FROM '{{name}}'@'%'; DROP USER '{{name}}'@'%';"}),
    )
    .await;
    let mut creds = Vec::new();
    for i in 0..12 {
        // Default statements and given ones, in the same batches.
        creds.push(e.creds(if i % 2 == 0 { "ro" } else { "half" }).await);
    }
    let mut sessions = Vec::new();
    for c in &creds[..2] {
        sessions.push(my_login(&c.username, &c.password, &db).await.unwrap());
    }
    for (c, r) in revoke_all(&e, creds).await {
        r.unwrap_or_else(|err| panic!("revoking {}: {err}", c.username));
        assert!(
            !my_user_exists(&c.username).await,
            "{} is dropped",
            c.username
        );
    }
    for s in &mut sessions {
        assert!(
            s.query_drop("SELECT 1").await.is_err(),
            "the open session was killed"
        );
    }
    let (batches, users) = e.engine.revocation_stats("my").await;
    assert_eq!(users, 12);
    assert!(
        batches <= 6,
        "12 revocations at once ran in {batches} batches"
    );
    my_admin()
        .await
        .query_drop(format!("DROP DATABASE {db}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn mysql_pool_reuses_its_idle_connection() {
    let db = my_db().await;
    let admin = format!("sr_admin_{}", uniq());
    let mut root = my_admin().await;
    root.query_drop(format!(
        "CREATE USER '{admin}'@'%' IDENTIFIED BY 'admin-Pw-1'; GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION;"
    ))
    .await
    .unwrap();
    let e = env();
    my_setup(&e, &db, &admin, "admin-Pw-1").await;
    let mut ids = Vec::new();
    let mut creds = Vec::new();
    for _ in 0..3 {
        creds.push(e.creds("ro").await);
        let now: Vec<u64> = root
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? ORDER BY ID",
                (admin.as_str(),),
            )
            .await
            .unwrap();
        ids.push(now);
    }
    assert!(!ids[0].is_empty(), "pooled connections stay open: {ids:?}");
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "the same connection each time: {ids:?}"
    );
    for c in &creds {
        e.revoke(c).await.unwrap();
    }
    e.call(Operation::Delete, "config/my", json!({}))
        .await
        .unwrap();
    root.query_drop(format!(
        "DROP USER IF EXISTS '{admin}'@'%'; DROP DATABASE {db};"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn mysql_half_created_user_is_dropped_and_wrong_admin_password_is_refused() {
    let db = my_db().await;
    let e = env();
    let (u, p) = my_root();
    my_setup(&e, &db, &u, &p).await;
    e.write(
        "roles/half",
        json!({"db_name": "my", "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON no_such_db_x.nope TO '{{name}}'@'%';"}),
    )
    .await;
    let err = e
        .call(Operation::Read, "creds/half", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Upstream, "{err}");
    let left: Vec<String> = my_admin()
        .await
        .query("SELECT User FROM mysql.user WHERE User LIKE 'v-token-half-%'")
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");

    let err = e
        .call(
            Operation::Update,
            "config/wrong",
            json!({"plugin_name": "mysql-database-plugin", "connection_url": my_dsn(), "username": u, "password": "definitely-wrong"}),
        )
        .await
        .unwrap_err();
    assert!(err.message().contains("Access denied"), "{err}");
    assert!(!err.message().contains("definitely-wrong"));
    assert!(e.read("config/wrong").await.is_none());
    my_admin()
        .await
        .query_drop(format!("DROP DATABASE {db}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn mysql_static_role_and_root_rotation_with_a_wal_that_survives_a_storage_failure() {
    let db = my_db().await;
    let admin = format!("sr_admin_{}", uniq());
    let target = format!("sr_static_{}", uniq());
    let mut root = my_admin().await;
    root.query_drop(format!(
        "CREATE USER '{admin}'@'%' IDENTIFIED BY 'admin-Pw-1'; GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION; \
         CREATE USER '{target}'@'%' IDENTIFIED BY 'initial-Pw-1'; GRANT SELECT ON {db}.* TO '{target}'@'%';"
    ))
    .await
    .unwrap();
    let mem = Arc::new(MemoryBackend::new());
    let failing = Arc::new(FailPuts {
        inner: mem.clone(),
        fail_key: std::sync::Mutex::new(None),
    });
    let e = env_over(failing.clone());
    my_setup(&e, &db, &admin, "admin-Pw-1").await;

    // Static role.
    e.write(
        "static-roles/static-app",
        json!({"db_name": "my", "username": target, "rotation_period": 60}),
    )
    .await;
    assert!(
        my_login(&target, "initial-Pw-1", &db).await.is_err(),
        "rotated at creation"
    );
    let sc = e.read("static-creds/static-app").await.unwrap();
    let pw = sc
        .get("password")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert_eq!(sc.get("username"), Some(&json!(target)));
    my_login(&target, &pw, &db)
        .await
        .expect("the static password logs in");
    e.write("rotate-role/static-app", json!({})).await;
    assert!(
        my_login(&target, &pw, &db).await.is_err(),
        "the old one does not"
    );

    // A rotation whose storage write fails: the database has the new password, the WAL
    // keeps it, and the next read finishes the rotation with that same password.
    *failing.fail_key.lock().unwrap() = Some("logical/db/static-role/static-app".into());
    let err = e
        .call(Operation::Update, "rotate-role/static-app", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage);
    let wal: super::PasswordWal = serde_json::from_slice(
        &e.ctx
            .storage
            .get("wal/static/static-app")
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    my_login(&target, &wal.new_password, &db)
        .await
        .expect("the database took the WAL password");
    *failing.fail_key.lock().unwrap() = None;
    let sc = e.read("static-creds/static-app").await.unwrap();
    assert_eq!(
        sc.get("password").and_then(Value::as_str),
        Some(wal.new_password.as_str())
    );
    assert!(
        e.ctx
            .storage
            .get("wal/static/static-app")
            .await
            .unwrap()
            .is_none()
    );

    // Root rotation whose final storage write fails: the WAL keeps the new password, and the
    // next engine over the same storage finishes the job.
    *failing.fail_key.lock().unwrap() = Some("logical/db/config/my".into());
    let err = e
        .call(Operation::Update, "rotate-root/my", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage);
    assert!(
        my_login(&admin, "admin-Pw-1", &db).await.is_err(),
        "the database took the new password"
    );
    *failing.fail_key.lock().unwrap() = None;
    let e2 = env_over(failing.clone());
    let c = e2.creds("ro").await;
    assert!(my_user_exists(&c.username).await, "recovered from the WAL");
    assert!(e2.ctx.storage.get("wal/root/my").await.unwrap().is_none());
    e2.revoke(&c).await.unwrap();

    root.query_drop(format!(
        "DROP USER IF EXISTS '{admin}'@'%'; DROP USER IF EXISTS '{target}'@'%'; DROP DATABASE {db};"
    ))
    .await
    .unwrap();
}

/// A backend whose puts to one key fail, standing in for a storage outage.
struct FailPuts {
    inner: Arc<MemoryBackend>,
    fail_key: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Backend for FailPuts {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        if self.fail_key.lock().unwrap().as_deref() == Some(key) {
            return Err(crate::Error::storage("storage is down"));
        }
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str, page: &crate::storage::Page) -> Result<Vec<String>> {
        self.inner.list(prefix, page).await
    }
    async fn scan(&self, prefix: &str, page: &crate::storage::Page) -> Result<Vec<String>> {
        self.inner.scan(prefix, page).await
    }
    async fn transaction(&self, ops: Vec<crate::storage::TxnOp>) -> Result<()> {
        let fail = self.fail_key.lock().unwrap().clone();
        let hits = |op: &crate::storage::TxnOp| matches!(op, crate::storage::TxnOp::Put { key, .. } if Some(key) == fail.as_ref());
        if ops.iter().any(hits) {
            return Err(crate::Error::storage("storage is down"));
        }
        self.inner.transaction(ops).await
    }
    fn kind(&self) -> &'static str {
        "fail-puts"
    }
}

// ---------------------------------------------------------------- Redis

fn redis_client(user: Option<(&str, &str)>) -> ::redis::Client {
    use ::redis::IntoConnectionInfo;
    let info = redis_url()
        .as_str()
        .into_connection_info()
        .expect("STRONGROOM_TEST_REDIS_URL");
    let info = match user {
        Some((u, p)) => {
            let s = info
                .redis_settings()
                .clone()
                .set_username(u)
                .set_password(p);
            info.set_redis_settings(s)
        }
        None => info,
    };
    ::redis::Client::open(info).unwrap()
}

async fn redis_login(
    u: &str,
    p: &str,
) -> ::redis::RedisResult<::redis::aio::MultiplexedConnection> {
    redis_client(Some((u, p)))
        .get_multiplexed_async_connection()
        .await
}

#[tokio::test]
async fn redis_dynamic_creds_are_acl_users_limited_to_their_rules() {
    let mut admin = match redis_client(None).get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => panic!("Redis at {} is not reachable: {e}", redis_url()),
    };
    let e = env();
    let prefix = format!("sr{}", uniq());
    e.write(
        "config/rd",
        json!({"plugin_name": "redis-database-plugin", "connection_url": redis_url(), "allowed_roles": "*"}),
    )
    .await;
    e.write(
        "roles/app",
        json!({"db_name": "rd", "creation_statements": format!("[\"~{prefix}:*\", \"+get\", \"+set\"]"), "default_ttl": "10m"}),
    )
    .await;
    let c = e.creds("app").await;
    assert!(c.username.starts_with("V_TOKEN_APP_"), "{}", c.username);
    let mut s = redis_login(&c.username, &c.password)
        .await
        .expect("the new user logs in");
    let ok: String = ::redis::cmd("SET")
        .arg(format!("{prefix}:k"))
        .arg("v")
        .query_async(&mut s)
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    let denied: ::redis::RedisResult<String> = ::redis::cmd("SET")
        .arg("elsewhere:k")
        .arg("v")
        .query_async(&mut s)
        .await;
    assert!(denied.is_err(), "keys outside the pattern are denied");
    let denied: ::redis::RedisResult<i64> = ::redis::cmd("DEL")
        .arg(format!("{prefix}:k"))
        .query_async(&mut s)
        .await;
    assert!(denied.is_err(), "commands outside the rules are denied");
    assert!(redis_login(&c.username, "wrong").await.is_err());

    e.revoke(&c).await.expect("revoke");
    let users: Vec<String> = ::redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(!users.contains(&c.username));
    let after: ::redis::RedisResult<String> = ::redis::cmd("GET")
        .arg(format!("{prefix}:k"))
        .query_async(&mut s)
        .await;
    assert!(after.is_err(), "the open connection was closed");
    assert!(redis_login(&c.username, &c.password).await.is_err());
    e.revoke(&c).await.expect("idempotent");
    let _: i64 = ::redis::cmd("DEL")
        .arg(format!("{prefix}:k"))
        .query_async(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_concurrent_revocations_go_in_one_command_per_batch() {
    let mut admin = match redis_client(None).get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => panic!("Redis at {} is not reachable: {e}", redis_url()),
    };
    let e = Arc::new(env());
    let prefix = format!("sr{}", uniq());
    e.write(
        "config/rd",
        json!({"plugin_name": "redis-database-plugin", "connection_url": redis_url(), "allowed_roles": "*"}),
    )
    .await;
    e.write(
        "roles/app",
        json!({"db_name": "rd", "creation_statements": format!("[\"~{prefix}:*\", \"+get\"]"), "default_ttl": "10m"}),
    )
    .await;
    let mut creds = Vec::new();
    for _ in 0..12 {
        creds.push(e.creds("app").await);
    }
    let mut session = redis_login(&creds[0].username, &creds[0].password)
        .await
        .unwrap();
    let names: Vec<String> = creds.iter().map(|c| c.username.clone()).collect();
    for (c, r) in revoke_all(&e, creds).await {
        r.unwrap_or_else(|err| panic!("revoking {}: {err}", c.username));
    }
    let users: Vec<String> = ::redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut admin)
        .await
        .unwrap();
    for n in &names {
        assert!(!users.contains(n), "{n} is dropped");
    }
    let after: ::redis::RedisResult<Option<String>> = ::redis::cmd("GET")
        .arg(format!("{prefix}:k"))
        .query_async(&mut session)
        .await;
    assert!(after.is_err(), "the open connection was closed");
    let (batches, users) = e.engine.revocation_stats("rd").await;
    assert_eq!(users, 12);
    assert!(
        batches <= 6,
        "12 revocations at once ran in {batches} batches"
    );
}

#[tokio::test]
async fn redis_static_role_and_root_rotation() {
    let mut admin = match redis_client(None).get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => panic!("Redis at {} is not reachable: {e}", redis_url()),
    };
    let tag = uniq();
    let (root_user, target) = (format!("sr_root_{tag}"), format!("sr_static_{tag}"));
    let _: String = ::redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&root_user)
        .arg("on")
        .arg(">root-Pw-1")
        .arg("+@all")
        .arg("~*")
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: String = ::redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&target)
        .arg("on")
        .arg(">initial-Pw-1")
        .arg("+ping")
        .query_async(&mut admin)
        .await
        .unwrap();
    let e = env();
    let url = redis_url();
    let o: Vec<&str> = url
        .trim_start_matches("redis://")
        .split([':', '/'])
        .collect();
    e.write(
        "config/rd",
        json!({"plugin_name": "redis-database-plugin", "host": o[0], "port": o.get(1).copied().unwrap_or("6379"),
               "username": root_user, "password": "root-Pw-1", "allowed_roles": "*"}),
    )
    .await;
    e.write(
        "static-roles/app",
        json!({"db_name": "rd", "username": target, "rotation_period": "1h"}),
    )
    .await;
    assert!(
        redis_login(&target, "initial-Pw-1").await.is_err(),
        "rotated at creation"
    );
    let pw = e
        .read("static-creds/app")
        .await
        .unwrap()
        .get("password")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    redis_login(&target, &pw)
        .await
        .expect("the static password logs in");

    e.write("rotate-root/rd", json!({})).await;
    assert!(
        redis_login(&root_user, "root-Pw-1").await.is_err(),
        "old root password gone"
    );
    e.write("rotate-role/app", json!({})).await;
    let pw2 = e
        .read("static-creds/app")
        .await
        .unwrap()
        .get("password")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert_ne!(pw, pw2);
    redis_login(&target, &pw2)
        .await
        .expect("rotated with the new root password");

    let _: i64 = ::redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&root_user)
        .arg(&target)
        .query_async(&mut admin)
        .await
        .unwrap();
}

/// Issue #23 item 8: on a mount tuned above the system's 768h, a role's `max_ttl` reaches the
/// mount's maximum (OpenBao's sysview reports the mount's tuning), not 768h.
#[test]
fn role_ttls_are_capped_by_the_mount_maximum() {
    use crate::clock::Clock as _;
    let mut env = env();
    env.ctx.max_lease_ttl = Duration::from_secs(87600 * 3600);
    let role: super::Role = serde_json::from_value(json!({
        "db_name": "pg",
        "default_ttl": 8760 * 3600,
        "max_ttl": 100_000 * 3600,
    }))
    .unwrap();
    let now = env.clock.now();
    let (ttl, max, warnings) = super::role_ttl(&env.ctx, &role, Duration::ZERO, now, now).unwrap();
    assert_eq!(ttl, Duration::from_secs(8760 * 3600));
    assert_eq!(max, Duration::from_secs(87600 * 3600));
    assert!(warnings.is_empty(), "{warnings:?}");
    // On a mount at the system's maximum the same role is capped to 768h.
    env.ctx.max_lease_ttl = Duration::from_secs(768 * 3600);
    let (ttl, max, _) = super::role_ttl(&env.ctx, &role, Duration::ZERO, now, now).unwrap();
    assert_eq!((ttl.as_secs(), max.as_secs()), (768 * 3600, 768 * 3600));
}
