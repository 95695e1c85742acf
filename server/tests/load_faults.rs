//! Load with faults (issue 21 item 3): the `strongroom` binary on PostgreSQL storage, reached
//! through a TCP proxy this test controls, under 32 concurrent clients doing KV writes, transit
//! encrypt/decrypt, database credentials and userpass logins, while the storage connection is
//! cut twice (every open connection through the proxy is dropped and new ones are refused for a
//! few seconds; the shared PostgreSQL itself keeps running).
//!
//! Afterwards: every KV write the server acknowledged reads back with its value and version,
//! the server logged no panic, and its resident memory is back within 10% of what it was after
//! a warm-up of the same load.
//!
//! PostgreSQL from `STRONGROOM_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`): the test creates two uniquely named
//! databases (storage, and the database engine's target) and drops them and the credentials'
//! roles at the end. `STRONGROOM_LOAD_SECS` sets the load's length (default 60),
//! `STRONGROOM_LOAD_WARMUP_SECS` the warm-up's (default 10).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::AbortHandle;

const CLIENTS: usize = 32;
/// How long each cut refuses new storage connections.
const CUT: Duration = Duration::from_secs(3);

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn pg_url() -> String {
    std::env::var("STRONGROOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `postgres://user@host:port/db` with its database replaced, and `host:port`.
fn pg_parts(url: &str, db: &str) -> (String, String) {
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    let authority = base
        .rsplit_once('@')
        .map_or(base.trim_start_matches("postgres://"), |(_, h)| h);
    (format!("{base}/{db}"), authority.to_string())
}

async fn pg_admin() -> tokio_postgres::Client {
    let url = pg_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable at {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// Drops the test's databases and any credential role left behind, also when the test fails
/// half way (from a thread of its own: `Drop` cannot await).
struct Cleanup {
    dbs: Vec<String>,
    role_pattern: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (dbs, pattern) = (self.dbs.clone(), self.role_pattern.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let admin = pg_admin().await;
                for db in dbs {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .await;
                }
                if let Ok(rows) = admin
                    .query(
                        "SELECT rolname FROM pg_roles WHERE rolname LIKE $1",
                        &[&pattern],
                    )
                    .await
                {
                    for row in rows {
                        let name: String = row.get(0);
                        let _ = admin
                            .batch_execute(&format!("DROP ROLE IF EXISTS \"{name}\""))
                            .await;
                    }
                }
            });
        });
        let _ = done.join();
    }
}

/// A TCP proxy to PostgreSQL that can cut every connection through it.
struct Proxy {
    port: u16,
    refusing: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<AbortHandle>>>,
    accepted: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let refusing = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let (r, o, a) = (refusing.clone(), open.clone(), accepted.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if r.load(Ordering::SeqCst) {
                    // Storage is "down": the connection is closed at once.
                    drop(inbound);
                    continue;
                }
                a.fetch_add(1, Ordering::Relaxed);
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                let mut open = o.lock().await;
                open.retain(|h| !h.is_finished());
                open.push(task.abort_handle());
            }
        });
        Proxy {
            port,
            refusing,
            open,
            accepted,
        }
    }

    /// Drop every open connection and refuse new ones for `for_how_long`.
    async fn cut(&self, for_how_long: Duration) -> usize {
        self.refusing.store(true, Ordering::SeqCst);
        let cut = {
            let mut open = self.open.lock().await;
            let n = open.iter().filter(|h| !h.is_finished()).count();
            for h in open.drain(..) {
                h.abort();
            }
            n
        };
        tokio::time::sleep(for_how_long).await;
        self.refusing.store(false, Ordering::SeqCst);
        cut
    }
}

/// The server process, its log (stdout and stderr) going to files.
struct Server {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Server {
    fn start(config: &Path, dir: &Path) -> Server {
        let log = dir.join("server.log");
        let err = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .args(["server", "-config", config.to_str().unwrap()])
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let out_log = dir.join("server.stdout");
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(out_log).unwrap();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes());
                let _ = tx.send(line);
            }
        });
        let mut url = None;
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("no banner from the server: {e}"));
            if let Some(u) = line.trim().strip_prefix("Api Address: ") {
                url = Some(u.to_string());
            }
            if line.contains("server started!") {
                break;
            }
        }
        Server {
            child,
            url: url.expect("the banner names the API address"),
            log,
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}/v1/{path}", self.base))
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        match rb.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            // A connection error or a timeout: not acknowledged.
            Err(_) => (0, Value::Null),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn must(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        v
    }
}

/// An acknowledged KV write.
struct Ack {
    path: String,
    value: String,
    version: u64,
}

#[derive(Default)]
struct Tally {
    attempts: AtomicU64,
    failures: AtomicU64,
    transit: AtomicU64,
    creds: AtomicU64,
    logins: AtomicU64,
    /// KV writes acknowledged after the last cut ended (the server recovered).
    acked_after_cuts: AtomicU64,
}

/// One client's loop until `until`: KV writes (half the requests), transit round trips,
/// database credentials and userpass logins. Returns the acknowledged writes.
async fn client_loop(
    api: Api,
    id: usize,
    phase: &'static str,
    until: Instant,
    role: String,
    tally: Arc<Tally>,
    recovered_at: Arc<std::sync::Mutex<Option<Instant>>>,
) -> Vec<Ack> {
    let mut acks = Vec::new();
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        tally.attempts.fetch_add(1, Ordering::Relaxed);
        let ok = match i % 10 {
            0..=4 => {
                let path = format!("kv/data/{phase}/c{id}/k{i}");
                let value = format!("{phase}-{id}-{i}-{}", i.wrapping_mul(7919));
                let (status, v) = api.post(&path, json!({"data": {"v": value}})).await;
                let acked = status == 200;
                if acked {
                    let version = v["data"]["version"].as_u64().expect("a version in the ack");
                    acks.push(Ack {
                        path,
                        value,
                        version,
                    });
                    let after = recovered_at
                        .lock()
                        .unwrap()
                        .is_some_and(|t| Instant::now() > t);
                    if after {
                        tally.acked_after_cuts.fetch_add(1, Ordering::Relaxed);
                    }
                }
                acked
            }
            5 | 6 => {
                let plain = base64_of(&format!("client {id} message {i}"));
                let (s, v) = api
                    .post("transit/encrypt/k", json!({"plaintext": plain}))
                    .await;
                let ok = s == 200 && {
                    let ct = v["data"]["ciphertext"].as_str().unwrap().to_string();
                    let (s, v) = api
                        .post("transit/decrypt/k", json!({"ciphertext": ct}))
                        .await;
                    if s == 200 {
                        assert_eq!(v["data"]["plaintext"], plain, "transit round trip");
                    }
                    s == 200
                };
                if ok {
                    tally.transit.fetch_add(1, Ordering::Relaxed);
                }
                ok
            }
            7 => {
                let (s, v) = api.get(&format!("database/creds/{role}")).await;
                if s == 200 {
                    assert!(v["data"]["username"].as_str().is_some(), "{v}");
                    assert!(v["data"]["password"].as_str().is_some(), "{v}");
                    tally.creds.fetch_add(1, Ordering::Relaxed);
                }
                s == 200
            }
            _ => {
                let (s, v) = api
                    .post(
                        "auth/userpass/login/loaduser",
                        json!({"password": "load-pw"}),
                    )
                    .await;
                if s == 200 {
                    assert!(v["auth"]["client_token"].as_str().is_some(), "{v}");
                    tally.logins.fetch_add(1, Ordering::Relaxed);
                }
                s == 200
            }
        };
        if !ok {
            tally.failures.fetch_add(1, Ordering::Relaxed);
            // A failed request (storage down) is retried after a short pause, as a client would.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    acks
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn run_load(
    api: &Api,
    phase: &'static str,
    length: Duration,
    role: &str,
    tally: Arc<Tally>,
    recovered_at: Arc<std::sync::Mutex<Option<Instant>>>,
) -> Vec<tokio::task::JoinHandle<Vec<Ack>>> {
    let until = Instant::now() + length;
    (0..CLIENTS)
        .map(|id| {
            tokio::spawn(client_loop(
                api.clone(),
                id,
                phase,
                until,
                role.to_string(),
                tally.clone(),
                recovered_at.clone(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_with_storage_cuts_loses_no_acknowledged_write() {
    let length = env_secs("STRONGROOM_LOAD_SECS", 60);
    let warmup = env_secs("STRONGROOM_LOAD_WARMUP_SECS", 10);
    let suffix = format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            >> 8
    );
    let store_db = format!("sr_load_store_{suffix}");
    let target_db = format!("sr_load_target_{suffix}");
    // The role's name is in the credentials' usernames (`v-<display>-<role>-...`), so the
    // cleanup can find any left behind.
    let role: String = format!("ld{suffix}").chars().take(10).collect();
    let admin = pg_admin().await;
    let _cleanup = Cleanup {
        dbs: vec![store_db.clone(), target_db.clone()],
        role_pattern: format!("v-%-{role}-%"),
    };
    for db in [&store_db, &target_db] {
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
    }

    let (store_url, upstream) = pg_parts(&pg_url(), &store_db);
    let proxy = Proxy::start(upstream.clone()).await;
    let (proxied_host, proxied) = {
        let host_port = format!("127.0.0.1:{}", proxy.port);
        (
            host_port.clone(),
            store_url.replacen(&upstream, &host_port, 1),
        )
    };
    assert!(proxied.contains(&proxied_host), "{proxied}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.hcl");
    std::fs::write(
        &config,
        format!(
            r#"
storage "postgresql" {{ connection_url = "{proxied}" }}
listener "tcp" {{
  address = "127.0.0.1:0"
  tls_disable = true
}}
disable_mlock = true
"#
        ),
    )
    .unwrap();
    let server = Server::start(&config, dir.path());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let mut api = Api {
        http,
        base: server.url.clone(),
        token: String::new(),
    };

    // Initialise, unseal, mount what the load uses.
    let init = api
        .call(
            reqwest::Method::PUT,
            "sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await;
    assert_eq!(init.0, 200, "{}", init.1);
    let key = init.1["keys_base64"][0].as_str().unwrap().to_string();
    api.token = init.1["root_token"].as_str().unwrap().to_string();
    let unseal = api
        .call(
            reqwest::Method::PUT,
            "sys/unseal",
            Some(json!({"key": key})),
        )
        .await;
    assert_eq!(unseal.1["sealed"], false, "{}", unseal.1);
    api.must(
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    api.must("sys/mounts/transit", json!({"type": "transit"}))
        .await;
    api.must("transit/keys/k", json!({"type": "aes256-gcm96"}))
        .await;
    api.must("sys/mounts/database", json!({"type": "database"}))
        .await;
    let (target_url, _) = pg_parts(&pg_url(), &target_db);
    api.must(
        "database/config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": target_url,
            "allowed_roles": role,
        }),
    )
    .await;
    api.must(
        &format!("database/roles/{role}"),
        json!({
            "db_name": "pg",
            "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            "default_ttl": "1h",
        }),
    )
    .await;
    api.must("sys/auth/userpass", json!({"type": "userpass"}))
        .await;
    api.must(
        "auth/userpass/users/loaduser",
        json!({"password": "load-pw", "token_ttl": "1h"}),
    )
    .await;

    // Warm-up: the same load without faults, then the memory it settles at is "before".
    let tally = Arc::new(Tally::default());
    let never = Arc::new(std::sync::Mutex::new(None));
    let mut acks = Vec::new();
    for h in run_load(&api, "warm", warmup, &role, tally.clone(), never).await {
        acks.extend(h.await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = server.rss_kib();

    // The load, with the storage connection cut at a third and at two thirds of it.
    let tally = Arc::new(Tally::default());
    let recovered_at = Arc::new(std::sync::Mutex::new(None));
    let started = Instant::now();
    let clients = run_load(
        &api,
        "load",
        length,
        &role,
        tally.clone(),
        recovered_at.clone(),
    )
    .await;
    let mut cut_connections = Vec::new();
    let mut accepted_before = Vec::new();
    for third in [1u32, 2] {
        let at = started + length * third / 3;
        tokio::time::sleep_until(at.into()).await;
        accepted_before.push(proxy.accepted.load(Ordering::Relaxed));
        cut_connections.push(proxy.cut(CUT).await);
    }
    *recovered_at.lock().unwrap() = Some(Instant::now());
    for h in clients {
        acks.extend(h.await.unwrap());
    }
    let end_rss = server.rss_kib();

    let attempts = tally.attempts.load(Ordering::Relaxed);
    let failures = tally.failures.load(Ordering::Relaxed);
    let after_cuts = tally.acked_after_cuts.load(Ordering::Relaxed);
    eprintln!(
        "load: {} s, {attempts} requests ({failures} failed), {} KV writes acknowledged, \
         {} transit round trips, {} credentials, {} logins; connections cut: {cut_connections:?}",
        length.as_secs(),
        acks.len(),
        tally.transit.load(Ordering::Relaxed),
        tally.creds.load(Ordering::Relaxed),
        tally.logins.load(Ordering::Relaxed),
    );
    // Each cut dropped live storage connections, and the server reconnected after each.
    for (n, cut) in cut_connections.iter().enumerate() {
        assert!(*cut > 0, "cut {} found no open storage connection", n + 1);
    }
    assert!(
        proxy.accepted.load(Ordering::Relaxed) > accepted_before[1],
        "the server never reconnected to storage after the second cut"
    );
    assert!(
        after_cuts > 0,
        "no KV write was acknowledged after the storage came back"
    );
    for counter in [&tally.transit, &tally.creds, &tally.logins] {
        assert!(
            counter.load(Ordering::Relaxed) > 0,
            "an operation never succeeded"
        );
    }

    // Memory once the load is over: back within 10% of the warm level (allocators return
    // memory lazily: give it up to 30 s). Measured before the verification below, whose reads
    // of every written version fill the storage read cache (bounded, 65,536 entries).
    let limit = rss_before + rss_before / 10;
    let mut rss_after = server.rss_kib();
    let settle = Instant::now();
    while rss_after > limit && settle.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_after = server.rss_kib();
    }
    eprintln!(
        "RSS: {rss_before} KiB after warm-up, {end_rss} KiB at the end of the load, \
         {rss_after} KiB after it"
    );
    assert!(
        rss_after <= limit,
        "RSS {rss_after} KiB is more than 10% over {rss_before} KiB before the load"
    );

    // Every acknowledged write reads back, with its version.
    let reads = Arc::new(tokio::sync::Semaphore::new(CLIENTS));
    let acks = Arc::new(acks);
    let mut checks = Vec::new();
    for n in 0..acks.len() {
        let (api, acks, reads) = (api.clone(), acks.clone(), reads.clone());
        checks.push(tokio::spawn(async move {
            let _permit = reads.acquire().await.unwrap();
            let a = &acks[n];
            let (s, v) = api.get(&format!("{}?version={}", a.path, a.version)).await;
            (s == 200 && v["data"]["data"]["v"] == a.value.as_str())
                .then_some(())
                .ok_or_else(|| format!("{} v{}: {s} {v}", a.path, a.version))
        }));
    }
    let mut lost = Vec::new();
    for c in checks {
        if let Err(e) = c.await.unwrap() {
            lost.push(e);
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are lost, e.g. {:?}",
        lost.len(),
        acks.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );

    // Clean up the credentials' roles, stop the server, check its log for panics.
    let (s, v) = api
        .call(
            reqwest::Method::PUT,
            "sys/leases/revoke-prefix/database/creds",
            None,
        )
        .await;
    assert!((200..300).contains(&s), "revoke-prefix: {s} {v}");
    let log_path = server.log.clone();
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap()
        + &std::fs::read_to_string(dir.path().join("server.stdout")).unwrap_or_default();
    assert!(
        !log.contains("panicked"),
        "the server panicked:\n{}",
        log.lines()
            .filter(|l| l.contains("panicked"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let leftover = admin
        .query(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE $1",
            &[&format!("v-%-{role}-%")],
        )
        .await
        .unwrap();
    assert!(
        leftover.is_empty(),
        "{} credential roles were not revoked",
        leftover.len()
    );
}
