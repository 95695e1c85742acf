//! Crash safety: a child process writes KV versions in a loop and is killed with SIGKILL at
//! random moments, 20 times. After each kill the store is reopened: every write the child saw
//! acknowledged must be readable, and the store must be consistent.
//!
//! This test has its own `main` (harness = false): the same binary is the parent and, with
//! `STRONGROOM_CRASH_CHILD` set, the child.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use strongroom::{Config, Strongroom, data};

const ROUNDS: usize = 20;

fn config(dir: &Path) -> Config {
    Config::sqlite(dir.join("store.db")).unseal_key_file(dir.join("unseal.key"))
}

fn acked(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("acked"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

async fn child(dir: PathBuf) {
    let sr = Strongroom::open(config(&dir)).await.unwrap();
    let token = std::fs::read_to_string(dir.join("token")).unwrap();
    let kv = sr.client(token.trim()).kv("secret");
    let mut seq = acked(&dir).into_iter().max().map_or(0, |m| m + 1);
    let mut ack = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("acked"))
        .unwrap();
    loop {
        kv.put(
            &format!("k/{seq}"),
            &data(json!({"seq": seq, "pad": "x".repeat(200)})),
        )
        .await
        .unwrap();
        kv.put("latest", &data(json!({"seq": seq}))).await.unwrap();
        // Only now is the write acknowledged; the line reaches the page cache before the next
        // write starts, which is all SIGKILL can take away from us.
        // One write() for the whole line: `writeln!` on a File issues the number and the
        // newline separately, and a kill between them glued this number to the next one.
        ack.write_all(format!("{seq}\n").as_bytes()).unwrap();
        seq += 1;
    }
}

async fn verify(dir: &Path, round: usize) -> usize {
    let sr = Strongroom::open(config(dir)).await.unwrap();
    assert!(
        !sr.is_sealed(),
        "round {round}: store did not unseal after the kill"
    );
    let token = std::fs::read_to_string(dir.join("token")).unwrap();
    let kv = sr.client(token.trim()).kv("secret");
    let acks = acked(dir);
    for seq in &acks {
        let s = kv
            .get(&format!("k/{seq}"))
            .await
            .unwrap_or_else(|e| panic!("round {round}: k/{seq} unreadable: {e}"))
            .unwrap_or_else(|| panic!("round {round}: acknowledged write k/{seq} lost"));
        assert_eq!(
            s.data.expose()["seq"],
            json!(seq),
            "round {round}: k/{seq} has the wrong value"
        );
    }
    if let Some(max) = acks.iter().max() {
        let latest = kv.get("latest").await.unwrap().unwrap();
        assert!(
            latest.data.expose()["seq"].as_u64().unwrap() >= *max,
            "round {round}: latest went back"
        );
    }
    // Consistency: every listed key has metadata and a readable current version.
    let keys = kv.list("k").await.unwrap();
    assert!(keys.len() >= acks.len());
    for k in keys {
        let meta = kv
            .metadata(&format!("k/{k}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("k/{k} listed without metadata"));
        assert!(meta.current_version >= 1);
        assert!(
            kv.get(&format!("k/{k}")).await.unwrap().is_some(),
            "k/{k} listed but unreadable"
        );
    }
    acks.len()
}

#[tokio::main]
async fn main() {
    if let Ok(dir) = std::env::var("STRONGROOM_CRASH_CHILD") {
        child(PathBuf::from(dir)).await;
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    {
        let sr = Strongroom::open(config(&dir)).await.unwrap();
        let root = sr.init_with_key_file(dir.join("unseal.key")).await.unwrap();
        let token = secrecy::ExposeSecret::expose_secret(&root).to_string();
        sr.client(&token)
            .sys()
            .enable_mount("secret", "kv", &[("version", "2")])
            .await
            .unwrap();
        std::fs::write(dir.join("token"), &token).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut last = 0;
    for round in 0..ROUNDS {
        let mut c = Command::new(&exe)
            .env("STRONGROOM_CRASH_CHILD", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Real time here on purpose: the point is to kill a real process at a random moment.
        std::thread::sleep(Duration::from_millis(rng.random_range(150..600)));
        c.kill().unwrap(); // SIGKILL on unix
        let status = c.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child exited by itself: {status}"
        );
        let n = verify(&dir, round).await;
        println!("round {round}: {n} acknowledged writes, all readable");
        last = n;
    }
    assert!(
        last > ROUNDS,
        "the children barely wrote anything ({last} writes)"
    );
    println!("crash: 1 passed, 0 failed");
}
