//! Database credentials against the local PostgreSQL (issue 6's figures):
//!
//! - issue latency through the typed API (`client.database("database").creds("ro")`: token,
//!   ACL, intent record, CREATE ROLE + GRANT on the pool, lease commit) on memory and on SQLite
//!   storage, against the same CREATE ROLE + GRANT run directly on one tokio-postgres
//!   connection [target: overhead ≤ 20%];
//! - the same overhead measured paired: rounds that each time one direct CREATE ROLE + GRANT
//!   and one issue on each storage, in rotating order, so the drift of PostgreSQL's own cost
//!   (its SCRAM hashing of the password is most of it, and varies ±20% from second to second
//!   on a shared VM) hits every side alike; the figure is the median of the per-round ratios;
//! - then one large run: `STRONGROOM_BENCH_DB_REVOKE` credentials (default 10,000) issued 64 at
//!   a time and revoked with one revoke-prefix (the role's revocation statement is
//!   `DROP ROLE IF EXISTS`, as in issue 22's comparison with OpenBao), checking that no role is
//!   left: the revocation rate in leases/s. `bench/compare_db.py` measures the same against
//!   `bao server -dev`.
//!
//! `STRONGROOM_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! PostgreSQL down = the bench fails. A fresh database is made and dropped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout,
    missing_docs,
    reason = "benchmarks"
)]

use secrecy::ExposeSecret;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use serde_json::json;
use strongroom::{Client, Config, LeaseConfig, Strongroom, data};

fn admin_url() -> String {
    std::env::var("STRONGROOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn pg(dbname: Option<&str>) -> tokio_postgres::Client {
    let mut cfg: tokio_postgres::Config = admin_url().parse().unwrap();
    if let Some(d) = dbname {
        cfg.dbname(d);
    }
    let (c, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is not reachable: {e}", admin_url()));
    tokio::spawn(conn);
    c
}

/// A fresh database with a table `items` readable by the group role [`group`]; returns its
/// name. PostgreSQL keeps a table's grants in one row (at most ~2,400 grantees), so the
/// thousands of users a bench makes get their rights through a group role, as large
/// deployments do.
async fn fresh_db() -> String {
    let name = format!("sr_dbbench_{}", uuid::Uuid::new_v4().simple());
    pg(None)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    pg(Some(&name))
        .await
        .batch_execute(&format!(
            "CREATE TABLE items (id int); CREATE ROLE \"{g}\" NOLOGIN; GRANT SELECT ON items TO \"{g}\";",
            g = group(&name)
        ))
        .await
        .unwrap();
    name
}

fn group(dbname: &str) -> String {
    format!("{dbname}_readers")
}

async fn drop_db(name: &str) {
    let a = pg(None).await;
    let _ = a
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .await;
    a.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    a.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", group(name)))
        .await
        .unwrap();
}

fn create_statements(dbname: &str) -> String {
    format!(
        "CREATE ROLE \"{{{{name}}}}\" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}'; GRANT \"{}\" TO \"{{{{name}}}}\";",
        group(dbname)
    )
}

fn manual() -> LeaseConfig {
    LeaseConfig {
        background: false,
        ..LeaseConfig::default()
    }
}

/// Mount `database/`, config `pg` (a pool of 20) and role `ro` on `sr`.
async fn configure(sr: &Strongroom, token: &str, dbname: &str) -> Client {
    let root = sr.client(token);
    root.sys()
        .enable_mount("database", "database", &[])
        .await
        .unwrap();
    let cfg: tokio_postgres::Config = admin_url().parse().unwrap();
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let user = cfg.get_user().unwrap_or("postgres").to_string();
    let db = root.database("database");
    db.configure(
        "pg",
        data(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{port}/{dbname}"),
            "username": user,
            "password": "unused",
            "allowed_roles": "ro",
            "max_open_connections": 20,
        })),
    )
    .await
    .unwrap();
    db.write_role(
        "ro",
        data(
            json!({"db_name": "pg", "creation_statements": create_statements(dbname),
                    "default_ttl": "1h", "max_ttl": "24h"}),
        ),
    )
    .await
    .unwrap();
    root
}

async fn dev_engine(dbname: &str) -> (Strongroom, Client) {
    let sr = Strongroom::open(Config::dev().leases(manual()))
        .await
        .unwrap();
    let token = sr.dev_root_token().unwrap();
    let root = configure(&sr, token.expose_secret(), dbname).await;
    (sr, root)
}

async fn sqlite_engine(dir: &Path, dbname: &str) -> (Strongroom, Client) {
    let cfg = || Config::sqlite(dir.join("store.db")).leases(manual());
    let sr = Strongroom::open(cfg()).await.unwrap();
    let root = sr.init_with_key_file(dir.join("unseal.key")).await.unwrap();
    drop(sr);
    let sr = Strongroom::open(cfg().unseal_key_file(dir.join("unseal.key")))
        .await
        .unwrap();
    let token = secrecy::ExposeSecret::expose_secret(&root).to_string();
    let root = configure(&sr, &token, dbname).await;
    (sr, root)
}

/// Users the bench made (members of the database's group role).
async fn leftover(dbname: &str) -> i64 {
    pg(None)
        .await
        .query_one(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = $1",
            &[&group(dbname)],
        )
        .await
        .unwrap()
        .get(0)
}

/// One fresh database, an engine over it on memory and one on SQLite, and a direct
/// connection: what the issue cases compare.
struct Fixture {
    dbname: String,
    _dir: tempfile::TempDir,
    engines: (Strongroom, Strongroom),
    mem_root: Client,
    lite_root: Client,
    direct: tokio_postgres::Client,
    /// Users made on the direct connection, dropped by [`Fixture::close`].
    direct_users: Vec<String>,
}

impl Fixture {
    fn open(rt: &tokio::runtime::Runtime) -> Fixture {
        let dbname = rt.block_on(fresh_db());
        let dir = tempfile::tempdir().unwrap();
        let (dev, mem_root) = rt.block_on(dev_engine(&dbname));
        let (lite, lite_root) = rt.block_on(sqlite_engine(dir.path(), &dbname));
        let direct = rt.block_on(pg(Some(&dbname)));
        Fixture {
            dbname,
            _dir: dir,
            engines: (dev, lite),
            mem_root,
            lite_root,
            direct,
            direct_users: Vec::new(),
        }
    }

    /// The role's CREATE ROLE + GRANT, run directly on one connection, for user `n`.
    async fn direct_create(&mut self, n: usize) {
        let u = format!("v-direct-{}-{n}", std::process::id());
        self.direct
            .batch_execute(&format!(
                "BEGIN; CREATE ROLE \"{u}\" WITH LOGIN PASSWORD 'x-Pw-1x-Pw-1x-Pw-1x' VALID UNTIL '2099-01-01 00:00:00+0000'; GRANT \"{g}\" TO \"{u}\"; COMMIT;",
                g = group(&self.dbname)
            ))
            .await
            .unwrap();
        self.direct_users.push(u);
    }

    /// Drop the direct users (PostgreSQL's GRANT gets slower as the group role gains
    /// members, so each case starts from the same catalog).
    async fn drop_direct_users(&mut self) {
        for u in std::mem::take(&mut self.direct_users) {
            self.direct
                .batch_execute(&format!("DROP ROLE \"{u}\";"))
                .await
                .unwrap();
        }
    }

    /// Revoke every credential the engines issued, check no user is left, drop the database.
    async fn close(mut self) {
        self.drop_direct_users().await;
        for root in [&self.mem_root, &self.lite_root] {
            root.leases()
                .revoke_prefix("database/creds/ro")
                .await
                .unwrap();
        }
        assert_eq!(
            leftover(&self.dbname).await,
            0,
            "the bench left users behind"
        );
        drop((self.engines, self.direct));
        drop_db(&self.dbname).await;
    }
}

fn issue(c: &mut Criterion) {
    let rt = rt();
    let mut fx = Fixture::open(&rt);
    let mut g = c.benchmark_group("database_creds");
    let mut n = 0;
    g.bench_function("direct CREATE ROLE + GRANT, one connection", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(fx.direct_create(n));
        });
    });
    rt.block_on(fx.drop_direct_users());
    for (name, root) in [
        ("strongroom creds, typed API, memory storage", &fx.mem_root),
        ("strongroom creds, typed API, SQLite storage", &fx.lite_root),
    ] {
        let api = root.database("database");
        g.bench_function(name, |b| {
            b.iter(|| rt.block_on(api.creds("ro")).unwrap());
        });
        rt.block_on(root.leases().revoke_prefix("database/creds/ro"))
            .unwrap();
    }
    g.finish();
    rt.block_on(fx.close());
}

/// Issue many, revoke them all with one revoke-prefix, count what is left.
fn revoke_many() {
    let n: usize = std::env::var("STRONGROOM_BENCH_DB_REVOKE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = rt();
    rt.block_on(async {
        let dbname = fresh_db().await;
        let (_sr, root) = dev_engine(&dbname).await;
        let api = root.database("database");
        api.configure("pg", data(json!({"allowed_roles": "ro,many"})))
            .await
            .unwrap();
        api.write_role(
            "many",
            data(json!({"db_name": "pg",
                "creation_statements": create_statements(&dbname),
                "revocation_statements": "DROP ROLE IF EXISTS \"{{name}}\";",
                "default_ttl": "1h", "max_ttl": "24h"})),
        )
        .await
        .unwrap();
        let members = || leftover(&dbname);
        let sem = Arc::new(tokio::sync::Semaphore::new(64));
        let t = Instant::now();
        let mut jobs = tokio::task::JoinSet::new();
        for _ in 0..n {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let api = api.clone();
            jobs.spawn(async move {
                let _p = permit;
                api.creds("many").await
            });
        }
        let mut errors = 0;
        while let Some(r) = jobs.join_next().await {
            if let Err(e) = r.unwrap() {
                if errors < 3 {
                    println!("creds error: {e}");
                }
                errors += 1;
            }
        }
        let issued = t.elapsed();
        assert_eq!(errors, 0, "errors while issuing");
        assert_eq!(members().await, i64::try_from(n).unwrap());
        let t = Instant::now();
        root.leases()
            .revoke_prefix("database/creds/many")
            .await
            .unwrap();
        let revoked = t.elapsed();
        let left = members().await;
        assert_eq!(left, 0, "users left after revoking every lease");
        println!(
            "database: {n} credentials issued (64 in flight) in {issued:.2?} ({:.0}/s), 0 errors; \
             revoke-prefix of {n} leases (DROP ROLE IF EXISTS) in {revoked:.2?} ({:.0} leases/s), {left} users left",
            n as f64 / issued.as_secs_f64(),
            n as f64 / revoked.as_secs_f64()
        );
        drop_db(&dbname).await;
    });
}

/// Rounds of the paired measurement (`STRONGROOM_BENCH_DB_PAIRED`, default 400).
fn paired_rounds() -> usize {
    std::env::var("STRONGROOM_BENCH_DB_PAIRED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Each round times one direct CREATE ROLE + GRANT and one issue through each engine, the
/// order rotating per round; prints the medians and the median per-round overhead.
fn paired() {
    let rounds = paired_rounds();
    if rounds == 0 {
        return;
    }
    let rt = rt();
    let mut fx = Fixture::open(&rt);
    let (mem_api, lite_api) = (
        fx.mem_root.database("database"),
        fx.lite_root.database("database"),
    );
    // times[0] = direct, [1] = memory, [2] = SQLite, in seconds.
    let mut times: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    rt.block_on(async {
        // Warm every path (pools, caches) before timing.
        for _ in 0..20 {
            mem_api.creds("ro").await.unwrap();
            lite_api.creds("ro").await.unwrap();
        }
        for round in 0..rounds {
            for k in 0..3 {
                let side = (round + k) % 3;
                let t = Instant::now();
                match side {
                    0 => fx.direct_create(round).await,
                    1 => drop(mem_api.creds("ro").await.unwrap()),
                    _ => drop(lite_api.creds("ro").await.unwrap()),
                }
                times[side].push(t.elapsed().as_secs_f64());
            }
        }
    });
    let ratios = |side: usize| -> Vec<f64> {
        times[side]
            .iter()
            .zip(&times[0])
            .map(|(s, d)| s / d - 1.0)
            .collect()
    };
    let (mut mem_r, mut lite_r) = (ratios(1), ratios(2));
    let [mut d, mut m, mut l] = times.clone();
    println!(
        "database paired, {rounds} rounds: median direct {:.3} ms, memory {:.3} ms, SQLite {:.3} ms; \
         median per-round overhead: memory {:+.1}%, SQLite {:+.1}% (target <= 20%)",
        median(&mut d) * 1e3,
        median(&mut m) * 1e3,
        median(&mut l) * 1e3,
        median(&mut mem_r) * 100.0,
        median(&mut lite_r) * 100.0,
    );
    rt.block_on(fx.close());
}

criterion_group!(benches, issue);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().all(|a| a != "--list" && a != "--profile-time") {
        paired();
        revoke_many();
    }
}
