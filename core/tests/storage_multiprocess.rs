//! Several processes on one store: the test binary re-executes itself (`child_process_entry`,
//! told what to do by environment variables) as child processes that write to the same SQLite
//! file or PostgreSQL database as the parent, which then checks that nothing was lost, that
//! compare-and-set held across processes, and that its own already-open handle sees the
//! children's writes at once and notices them through `change_marker`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod storage_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strongroom::ErrorCode;
use strongroom::storage::{Backend, Page, PostgresBackend, SqliteBackend, TxnOp};

use storage_support::FreshDatabase;

/// `writer` or `probe`; unset in a normal test run.
const ROLE: &str = "STRONGROOM_STORAGE_CHILD_ROLE";
/// `sqlite` or `postgres`.
const KIND: &str = "STRONGROOM_STORAGE_CHILD_KIND";
/// The SQLite path or the PostgreSQL url.
const TARGET: &str = "STRONGROOM_STORAGE_CHILD_TARGET";
const ID: &str = "STRONGROOM_STORAGE_CHILD_ID";
/// Milliseconds since the epoch at which writers start, so they all overlap.
const START_AT: &str = "STRONGROOM_STORAGE_CHILD_START_AT";
const RESULT_TAG: &str = "storage-child-result:";

const CHILDREN: usize = 3;
const KEYS_PER_CHILD: usize = 500;
/// One single-attempt compare-and-set every this many keys (losers just count a conflict).
const CAS_EVERY: usize = 5;
/// Then this many increments that retry until they land.
const SURE_INCREMENTS: u64 = 40;
const CHILD_TIMEOUT: Duration = Duration::from_secs(180);

/// The entry point of the child processes; does nothing in a normal test run.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let kind = std::env::var(KIND).unwrap();
    let target = std::env::var(TARGET).unwrap();
    let id: usize = std::env::var(ID).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backend = open(&kind, &target).await;
        match role.as_str() {
            "writer" => {
                let start_at: u64 = std::env::var(START_AT).unwrap().parse().unwrap();
                let now = epoch_millis();
                if start_at > now {
                    tokio::time::sleep(Duration::from_millis(start_at - now)).await;
                }
                let (successes, conflicts) = write_and_increment(backend.as_ref(), id).await;
                println!("{RESULT_TAG}{successes} {conflicts}");
            }
            "probe" => {
                backend
                    .put("probe", format!("from child {id}").as_bytes())
                    .await
                    .unwrap();
                println!("{RESULT_TAG}0 0");
            }
            other => panic!("unknown child role {other}"),
        }
    });
}

async fn open(kind: &str, target: &str) -> Arc<dyn Backend> {
    match kind {
        "sqlite" => Arc::new(SqliteBackend::open(target).unwrap()),
        "postgres" => Arc::new(PostgresBackend::connect(target).await.unwrap()),
        other => panic!("unknown backend kind {other}"),
    }
}

fn epoch_millis() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn key(child: usize, i: usize) -> String {
    format!("child/{child}/key/{i:04}")
}

fn value(child: usize, i: usize) -> Vec<u8> {
    format!("value {i} of child {child}").into_bytes()
}

/// Read the shared counter and try to bump it once: `Ok(true)` when it landed, `Ok(false)` on
/// a lost race (any other error fails the child).
async fn try_increment(b: &dyn Backend) -> bool {
    let current = b.get("counter").await.unwrap();
    let n = current
        .as_deref()
        .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
    match b
        .transaction(vec![
            TxnOp::Check {
                key: "counter".into(),
                expected: current,
            },
            TxnOp::Put {
                key: "counter".into(),
                value: (n + 1).to_be_bytes().to_vec(),
            },
        ])
        .await
    {
        Ok(()) => true,
        Err(e) if e.code() == ErrorCode::Conflict => false,
        Err(e) => panic!("increment failed with {:?}: {e}", e.code()),
    }
}

async fn write_and_increment(b: &dyn Backend, id: usize) -> (u64, u64) {
    let mut successes = 0;
    let mut conflicts = 0;
    for i in 0..KEYS_PER_CHILD {
        // Every write must land: SQLITE_BUSY or a serialization failure is a bug here.
        b.put(&key(id, i), &value(id, i)).await.unwrap();
        if i % CAS_EVERY == 0 {
            if try_increment(b).await {
                successes += 1;
            } else {
                conflicts += 1;
            }
        }
    }
    let mut sure = 0;
    while sure < SURE_INCREMENTS {
        if try_increment(b).await {
            sure += 1;
            successes += 1;
        } else {
            conflicts += 1;
        }
    }
    (successes, conflicts)
}

/// Start `count` children of `role` on the store and wait for them; returns each one's
/// (successful increments, conflicts).
async fn run_children(kind: &str, target: &str, role: &str, count: usize) -> Vec<(u64, u64)> {
    let exe = std::env::current_exe().unwrap();
    let start_at = epoch_millis() + 1500;
    let mut children = Vec::new();
    for id in 0..count {
        let child = Command::new(&exe)
            .args([
                "--exact",
                "child_process_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .env(KIND, kind)
            .env(TARGET, target)
            .env(ID, id.to_string())
            .env(START_AT, start_at.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push(child);
    }
    let mut results = Vec::new();
    for (id, child) in children.into_iter().enumerate() {
        let pid = child.id();
        let waited = tokio::time::timeout(
            CHILD_TIMEOUT,
            tokio::task::spawn_blocking(move || child.wait_with_output()),
        )
        .await;
        let output: Output = match waited {
            Ok(joined) => joined.unwrap().unwrap(),
            Err(_) => {
                // Only our own child, by its id.
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("child {id} ({kind} {role}) did not finish within {CHILD_TIMEOUT:?}");
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "child {id} ({kind} {role}) failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once(RESULT_TAG).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("child {id} reported no result\nstdout:\n{stdout}"));
        let (s, c) = line.trim().split_once(' ').unwrap();
        results.push((s.parse().unwrap(), c.parse().unwrap()));
    }
    results
}

async fn wait_for_marker_change(b: &dyn Backend, before: Option<u64>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = b.change_marker().await.unwrap();
        assert!(now.is_some(), "a shared backend has a change marker");
        if now != before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "change marker did not move within {within:?} after another process wrote"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The shared scenario: the parent's handle is open (and has read) before the children start.
async fn processes_share_one_store(parent: &dyn Backend, kind: &str, target: &str) {
    assert_eq!(parent.get(&key(0, 0)).await.unwrap(), None);
    assert!(parent.scan("", &Page::all()).await.unwrap().is_empty());
    let before = parent.change_marker().await.unwrap();

    let results = run_children(kind, target, "writer", CHILDREN).await;

    for child in 0..CHILDREN {
        for i in 0..KEYS_PER_CHILD {
            assert_eq!(
                parent.get(&key(child, i)).await.unwrap(),
                Some(value(child, i)),
                "{}",
                key(child, i)
            );
        }
    }
    let all = parent.scan("child/", &Page::all()).await.unwrap();
    assert_eq!(all.len(), CHILDREN * KEYS_PER_CHILD);
    assert_eq!(
        parent.list("child/", &Page::all()).await.unwrap(),
        (0..CHILDREN).map(|c| format!("{c}/")).collect::<Vec<_>>()
    );

    let successes: u64 = results.iter().map(|(s, _)| s).sum();
    let conflicts: u64 = results.iter().map(|(_, c)| c).sum();
    assert!(successes >= CHILDREN as u64 * SURE_INCREMENTS);
    let counter = parent.get("counter").await.unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(counter.try_into().unwrap()),
        successes,
        "the counter equals the successful increments ({conflicts} attempts lost a race)"
    );
    eprintln!("{kind}: {successes} increments landed, {conflicts} lost a race");

    wait_for_marker_change(parent, before, Duration::from_secs(10)).await;
}

/// One child writes once; the parent's open handle sees it at once (no stale snapshot or
/// cache) and its change marker moves.
async fn child_write_is_seen(parent: &dyn Backend, kind: &str, target: &str, wait: Duration) {
    assert_eq!(parent.get("probe").await.unwrap(), None);
    assert!(parent.list("", &Page::all()).await.unwrap().is_empty());
    let before = parent.change_marker().await.unwrap();
    run_children(kind, target, "probe", 1).await;
    assert_eq!(
        parent.get("probe").await.unwrap().as_deref(),
        Some(&b"from child 0"[..])
    );
    assert_eq!(
        parent.list("", &Page::all()).await.unwrap(),
        vec!["probe".to_string()]
    );
    wait_for_marker_change(parent, before, wait).await;
}

fn sqlite_target(dir: &Path) -> String {
    dir.join("shared.db").to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_processes_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(dir.path());
    let parent = SqliteBackend::open(&target).unwrap();
    processes_share_one_store(&parent, "sqlite", &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_child_write_is_seen_by_open_handle() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(dir.path());
    let parent = SqliteBackend::open(&target).unwrap();
    // SQLite's data_version is read synchronously: the marker has moved by the time the
    // child has exited.
    child_write_is_seen(&parent, "sqlite", &target, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_processes_share_one_database() {
    let db = FreshDatabase::create().await;
    let parent = PostgresBackend::connect(db.url()).await.unwrap();
    processes_share_one_store(&parent, "postgres", db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_child_write_is_seen_by_open_handle() {
    let db = FreshDatabase::create().await;
    let parent = PostgresBackend::connect(db.url()).await.unwrap();
    // The notification arrives asynchronously, shortly after the commit.
    child_write_is_seen(&parent, "postgres", db.url(), Duration::from_secs(10)).await;
}
