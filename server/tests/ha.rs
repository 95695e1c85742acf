//! High availability as the seed deploys it: three `strongroom` server processes on one
//! PostgreSQL database (`storage "postgresql" { ha_enabled = "true" }`). The leader is killed
//! with SIGKILL in the middle of a stream of reads, writes and dynamic-credential leases that
//! expire during the run, and the test checks that:
//!
//! * no request to a surviving process fails (only the killed process's own do);
//! * the leader lock moves: `sys/leader` on the survivors names the new active node, and
//!   `sys/health` answers 200 there, 429 on the standby (200 with `?standbyok=true`);
//! * every lease still expires on time: each credential's PostgreSQL role is gone within a
//!   few seconds of its lease's end, those issued by the killed process included.
//!
//! The servers are started before the store is initialised, so they also show that a sealed
//! server notices another one's initialisation (its unseal works without a restart).
//!
//! Processes cannot share a virtual clock: this runs on real time with 4 s leases and is
//! bounded to well under a minute. PostgreSQL is `STRONGROOM_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the test creates its own database.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Answer, Process, client};
use reqwest::StatusCode;
use serde_json::{Value, json};

const LEASE_TTL: u64 = 4;
/// How late a lease's revocation may be: the expiry index has one-second buckets, the runner
/// ticks every second, and a takeover adds one tick after PostgreSQL drops the dead session.
const SLACK: Duration = Duration::from_secs(3);

fn admin_url() -> String {
    std::env::var("STRONGROOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at STRONGROOM_TEST_POSTGRES_URL (default \
                 postgres://postgres@127.0.0.1:5432/postgres): {e}"
            )
        });
    tokio::spawn(conn);
    c
}

/// A database of its own, dropped (with the roles the test's leases created) at the end.
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    async fn create() -> TestDb {
        let admin = admin_url();
        let name = format!("strongroom_ha_{}", uuid::Uuid::new_v4().simple());
        pg(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestDb {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ =
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let c = pg(&admin_url()).await;
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                    // Roles are cluster-wide: drop what a failed run may have left.
                    if let Ok(rows) = c
                    .query(
                        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'v-token-hatest-%'",
                        &[],
                    )
                    .await
                {
                    for r in rows {
                        let role: String = r.get(0);
                        let _ = c.batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\"")).await;
                    }
                }
                });
            })
            .join();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(dir: &std::path::Path, i: usize, db_url: &str) -> Process {
    let port = free_port();
    let text = format!(
        r#"
        log_level = "warn"
        api_addr  = "http://127.0.0.1:{port}"
        storage "postgresql" {{
          connection_url = "{db_url}"
          ha_enabled     = "true"
        }}
        listener "tcp" {{
          address     = "127.0.0.1:{port}"
          tls_disable = true
        }}
        "#
    );
    let path = dir.join(format!("server{i}.hcl"));
    std::fs::write(&path, text).unwrap();
    let p = Process::start(&["server", "-config", path.to_str().unwrap()]);
    assert_eq!(p.url, format!("http://127.0.0.1:{port}"));
    assert!(
        p.banner.contains("Storage: postgresql (HA available)"),
        "{}",
        p.banner
    );
    p
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Answer, String> {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = http.request(m, format!("{url}/v1/{path}"));
    if let Some(t) = token {
        rb = rb.header("X-Vault-Token", t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.map_err(|e| e.to_string())?;
    Ok(Answer {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.map_err(|e| e.to_string())?,
    })
}

async fn must(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let a = call(http, url, method, path, token, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} at {url}: {e}"));
    assert!(
        a.status.is_success(),
        "{method} {path} at {url}: {} {}",
        a.status,
        a.body
    );
    a
}

/// Wait until exactly one of `urls` says it is the active node and all agree on its address;
/// returns its index.
async fn active_node(http: &reqwest::Client, urls: &[String], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut leaders = Vec::new();
        let mut addresses = Vec::new();
        for (i, u) in urls.iter().enumerate() {
            if let Ok(a) = call(http, u, "GET", "sys/leader", None, None).await {
                if a.status == StatusCode::OK {
                    let v = a.json();
                    if v["is_self"] == true {
                        leaders.push(i);
                    }
                    addresses.push(v["leader_address"].as_str().unwrap_or("").to_string());
                }
            }
        }
        if leaders.len() == 1 && addresses.len() == urls.len() {
            let l = leaders[0];
            if addresses.iter().all(|a| *a == urls[l]) {
                return l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no single active node within {within:?}: leaders {leaders:?}, addresses {addresses:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until `sys/ha-status` at `url` lists exactly `want` (api address, active) in order, in
/// OpenBao's shape.
async fn ha_status_until(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    want: &[(String, bool)],
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let a = must(http, url, "GET", "sys/ha-status", token, None).await;
        let v = a.json();
        // OpenBao copies `data` to the top level for this route.
        assert_eq!(v["nodes"], v["data"]["nodes"], "{}", a.body);
        let nodes = v["data"]["nodes"].as_array().cloned().unwrap_or_default();
        let got: Vec<(String, bool)> = nodes
            .iter()
            .map(|n| {
                (
                    n["api_address"].as_str().unwrap_or("").to_string(),
                    n["active_node"] == true,
                )
            })
            .collect();
        if got == want {
            for n in &nodes {
                assert_eq!(n["version"], "2.7.2", "{n}");
                assert_eq!(n["cluster_address"], "", "{n}");
                assert!(n["hostname"].is_string(), "{n}");
                // The active node's last echo is null; a standby's is an RFC 3339 time.
                if n["active_node"] == true {
                    assert_eq!(n["last_echo"], Value::Null, "{n}");
                } else {
                    assert!(
                        n["last_echo"].as_str().is_some_and(|e| e.contains('T')),
                        "{n}"
                    );
                }
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sys/ha-status at {url} did not list {want:?} within {within:?}: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One credential lease: its PostgreSQL role and the latest moment its lease can end.
struct Issued {
    username: String,
    ends_by: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_on_one_database_survive_the_leader_being_killed() {
    let started = Instant::now();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let mut procs: Vec<Option<Process>> = (0..3)
        .map(|i| Some(start_server(dir.path(), i, &db.url)))
        .collect();
    let urls: Vec<String> = procs
        .iter()
        .map(|p| p.as_ref().unwrap().url.clone())
        .collect();

    // All three started uninitialised; one initialises, each unseals with the key, the two
    // others without a restart.
    for u in &urls {
        let a = must(&http, u, "GET", "sys/seal-status", None, None).await;
        assert_eq!(a.json()["initialized"], false);
    }
    let init = must(
        &http,
        &urls[0],
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await
    .json();
    let key = init["keys"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();
    for u in &urls {
        let a = must(
            &http,
            u,
            "PUT",
            "sys/unseal",
            None,
            Some(json!({"key": key})),
        )
        .await;
        assert_eq!(a.json()["sealed"], false, "{u}: {}", a.body);
    }
    let t = Some(root.as_str());
    must(
        &http,
        &urls[0],
        "POST",
        "sys/mounts/secret",
        t,
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await;
    must(
        &http,
        &urls[0],
        "POST",
        "sys/mounts/database",
        t,
        Some(json!({"type": "database"})),
    )
    .await;
    must(
        &http,
        &urls[0],
        "POST",
        "database/config/pg",
        t,
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": db.url,
            "allowed_roles": "hatest",
        })),
    )
    .await;
    must(
        &http,
        &urls[0],
        "POST",
        "database/roles/hatest",
        t,
        Some(json!({
            "db_name": "pg",
            "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            "default_ttl": format!("{LEASE_TTL}s"),
            "max_ttl": format!("{LEASE_TTL}s"),
        })),
    )
    .await;

    // One active node, the two others standbys naming it.
    let leader = active_node(&http, &urls, Duration::from_secs(10)).await;
    for (i, u) in urls.iter().enumerate() {
        let h = call(&http, u, "GET", "sys/health", None, None)
            .await
            .unwrap();
        let want = if i == leader { 200 } else { 429 };
        assert_eq!(h.status.as_u16(), want, "{u}: {}", h.body);
        assert_eq!(h.json()["standby"], i != leader);
    }
    // `sys/ha-status` (`bao operator members`), asked of any node: the active node first, then
    // both standbys once they have written their first record.
    let want: Vec<(String, bool)> = std::iter::once((urls[leader].clone(), true))
        .chain(
            (0..3)
                .filter(|i| *i != leader)
                .map(|i| (urls[i].clone(), false)),
        )
        .collect();
    let mut sorted_standbys = want[1..].to_vec();
    sorted_standbys.sort();
    let want = [vec![want[0].clone()], sorted_standbys].concat();
    for u in &urls {
        ha_status_until(&http, u, t, &want, Duration::from_secs(10)).await;
    }

    // The stream: workers cycle through the live servers, each round a KV write on one
    // server read back on the next, and a credential lease.
    let dead: Arc<Mutex<Option<usize>>> = Arc::new(Mutex::new(None));
    let issued: Arc<Mutex<Vec<Issued>>> = Arc::new(Mutex::new(Vec::new()));
    let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let killed_own = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let per_server = Arc::new(Mutex::new(HashMap::<usize, usize>::new()));
    let stop_at = Instant::now() + Duration::from_secs(12);
    let mut workers = Vec::new();
    for w in 0..4usize {
        let (http, urls, root) = (http.clone(), urls.clone(), root.clone());
        let (dead, issued, failures) = (dead.clone(), issued.clone(), failures.clone());
        let (killed_own, per_server) = (killed_own.clone(), per_server.clone());
        workers.push(tokio::spawn(async move {
            let mut n = w;
            while Instant::now() < stop_at {
                // Paced: revocations (one DROP ROLE each) must keep up with issuing, on two
                // shared cores in a debug build.
                tokio::time::sleep(Duration::from_millis(150)).await;
                n += 1;
                let live: Vec<usize> = (0..3)
                    .filter(|i| *dead.lock().unwrap() != Some(*i))
                    .collect();
                let s = live[n % live.len()];
                let r = live[(n + 1) % live.len()];
                let token = Some(root.as_str());
                let key = format!("w{w}/k{n}");
                let steps: [(usize, &str, String, Option<Value>); 3] = [
                    (
                        s,
                        "POST",
                        format!("secret/data/{key}"),
                        Some(json!({"data": {"n": n}})),
                    ),
                    (r, "GET", format!("secret/data/{key}"), None),
                    (s, "GET", "database/creds/hatest".to_string(), None),
                ];
                for (server, method, path, body) in steps {
                    let result = call(&http, &urls[server], method, &path, token, body).await;
                    let ok = match &result {
                        Ok(a) if a.status.is_success() => {
                            if method == "GET" && path.starts_with("secret/") {
                                // Written on another process just before: seen here at once.
                                assert_eq!(
                                    a.json()["data"]["data"]["n"],
                                    n,
                                    "stale read at {}",
                                    urls[server]
                                );
                            }
                            if path.starts_with("database/") {
                                let v = a.json();
                                assert_eq!(v["lease_duration"], LEASE_TTL);
                                issued.lock().unwrap().push(Issued {
                                    username: v["data"]["username"].as_str().unwrap().to_string(),
                                    ends_by: Instant::now() + Duration::from_secs(LEASE_TTL),
                                });
                            }
                            true
                        }
                        _ => false,
                    };
                    *per_server.lock().unwrap().entry(server).or_default() += 1;
                    if !ok {
                        if *dead.lock().unwrap() == Some(server) {
                            killed_own.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        } else {
                            let what = match result {
                                Ok(a) => format!("{} {}", a.status, a.body),
                                Err(e) => e,
                            };
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{method} {path} at {}: {what}", urls[server]));
                        }
                        break;
                    }
                }
            }
        }));
    }

    // Watch the roles: none may outlive its lease by more than the slack.
    let watcher = {
        let (issued, db_url) = (issued.clone(), db.url.clone());
        tokio::spawn(async move {
            let c = pg(&db_url).await;
            let mut late = Vec::new();
            let until = stop_at + Duration::from_secs(LEASE_TTL) + SLACK + Duration::from_secs(1);
            while Instant::now() < until {
                let present: std::collections::HashSet<String> = c
                    .query(
                        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'v-token-hatest-%'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let now = Instant::now();
                for i in issued.lock().unwrap().iter() {
                    if present.contains(&i.username) && now > i.ends_by + SLACK {
                        late.push(format!(
                            "{} still exists {:?} after its lease ended",
                            i.username,
                            now - i.ends_by
                        ));
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            late
        })
    };

    // Kill the leader (SIGKILL) mid-stream.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let issued_before_kill = issued.lock().unwrap().len();
    *dead.lock().unwrap() = Some(leader);
    let mut victim = procs[leader].take().unwrap();
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    let killed_at = Instant::now();

    // The lock moves: the survivors agree on a new active node, which sys/health shows.
    let survivors: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| urls[i].clone())
        .collect();
    let new_leader = active_node(&http, &survivors, Duration::from_secs(10)).await;
    let takeover = killed_at.elapsed();
    let standby = 1 - new_leader;
    let h = call(
        &http,
        &survivors[new_leader],
        "GET",
        "sys/health",
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    let h = call(&http, &survivors[standby], "GET", "sys/health", None, None)
        .await
        .unwrap();
    assert_eq!(h.status, StatusCode::TOO_MANY_REQUESTS, "{}", h.body);
    assert_eq!(h.json()["standby"], true);
    let h = call(
        &http,
        &survivors[standby],
        "GET",
        "sys/health?standbyok=true",
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    let l = call(&http, &survivors[standby], "GET", "sys/leader", None, None)
        .await
        .unwrap()
        .json();
    assert_eq!(
        l,
        json!({"ha_enabled": true, "is_self": false, "leader_address": survivors[new_leader], "leader_cluster_address": ""})
    );
    // The killed leader is gone from `sys/ha-status`, the new one is active and no longer
    // listed as a standby.
    let want = vec![
        (survivors[new_leader].clone(), true),
        (survivors[standby].clone(), false),
    ];
    for u in &survivors {
        ha_status_until(&http, u, t, &want, Duration::from_secs(10)).await;
    }

    for w in workers {
        w.await.unwrap();
    }
    let late = watcher.await.unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "requests failed on surviving servers: {failures:#?}"
    );
    assert!(late.is_empty(), "leases revoked late: {late:#?}");
    // Every lease, those the killed leader issued included, ended with its role dropped.
    let c = pg(&db.url).await;
    let left: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-token-hatest-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let total = issued.lock().unwrap().len();
    assert_eq!(
        left, 0,
        "{left} of {total} credential roles outlived their leases"
    );
    assert!(
        issued_before_kill >= 10 && total > issued_before_kill + 10,
        "too few leases to show anything: {issued_before_kill} before the kill, {total} in all"
    );
    let counts = per_server.lock().unwrap().clone();
    eprintln!(
        "ha: {total} leases ({issued_before_kill} before the kill), requests per server {counts:?}, \
         {} failed on the killed server, takeover seen after {takeover:?}, whole test {:?}",
        killed_own.load(std::sync::atomic::Ordering::SeqCst),
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    drop(procs);
}
