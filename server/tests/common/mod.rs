//! Shared helpers: an in-process server on 127.0.0.1:0, the `strongroom` binary as a child
//! process, and a reqwest client that speaks Vault's custom `LIST` method.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use strongroom::{Config, DevOptions, Strongroom};
use strongroom_server::config::ListenerConfig;
use strongroom_server::listener::Listeners;

/// The root token of the dev servers here.
pub const ROOT: &str = "root";

/// An HTTP client (no proxy from the environment: everything here is on loopback).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A response read completely: status, headers, raw body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Send and read the whole answer.
pub async fn send(rb: RequestBuilder) -> Answer {
    let resp = rb.send().await.unwrap();
    Answer {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// An in-process server: a dev engine (root token `root`) behind a real listener.
pub struct TestServer {
    pub url: String,
    pub sr: Strongroom,
    pub http: reqwest::Client,
    listeners: Option<Listeners>,
}

impl TestServer {
    /// Dev mode, KV v2 at `secret/`, default request size limit.
    pub async fn dev() -> TestServer {
        TestServer::with_limit(Some(32 * 1024 * 1024)).await
    }

    /// Dev mode with this `max_request_size`.
    pub async fn with_limit(limit: Option<usize>) -> TestServer {
        let sr = Strongroom::open(Config::dev_with(DevOptions {
            root_token_id: Some(ROOT.into()),
            kv_v1: false,
        }))
        .await
        .unwrap();
        TestServer::serve(sr, limit).await
    }

    /// Serve `sr` on 127.0.0.1:0.
    pub async fn serve(sr: Strongroom, limit: Option<usize>) -> TestServer {
        let mut cfg = ListenerConfig::plain("127.0.0.1:0");
        cfg.max_request_size = limit;
        TestServer::serve_with(sr, cfg).await
    }

    /// Serve `sr` on one listener configured as `cfg`.
    pub async fn serve_with(sr: Strongroom, cfg: ListenerConfig) -> TestServer {
        let listeners = Listeners::start(&sr, &[cfg]).await.unwrap();
        let url = listeners.bound()[0].url();
        TestServer {
            url,
            sr,
            http: client(),
            listeners: Some(listeners),
        }
    }

    /// A request to `/v1/<path>` with the root token.
    pub fn root(&self, method: &str, path: &str) -> RequestBuilder {
        self.anon(method, path).header("X-Vault-Token", ROOT)
    }

    /// A request to `/v1/<path>` without a token.
    pub fn anon(&self, method: &str, path: &str) -> RequestBuilder {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        self.http.request(m, format!("{}/v1/{path}", self.url))
    }

    /// A request to an arbitrary URL path on this server.
    pub fn raw(&self, method: &str, url_path: &str) -> RequestBuilder {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        self.http.request(m, format!("{}{url_path}", self.url))
    }

    /// Stop the listeners (gracefully).
    pub async fn stop(mut self) {
        if let Some(l) = self.listeners.take() {
            l.shutdown(Duration::from_secs(5)).await;
        }
    }
}

/// The `strongroom` binary running as a child process.
pub struct Process {
    pub child: Child,
    /// The banner and everything printed on stdout up to the end of the banner.
    pub banner: String,
    /// `http://addr` of the first listener.
    pub url: String,
}

impl Process {
    /// Start `strongroom <args>` and wait until its banner says the listeners are up (the
    /// banner is printed after binding, so no polling is needed).
    pub fn start(args: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .args(args)
            .env_remove("BAO_DEV_ROOT_TOKEN_ID")
            .env_remove("VAULT_DEV_ROOT_TOKEN_ID")
            .env_remove("BAO_DEV_LISTEN_ADDRESS")
            .env_remove("VAULT_DEV_LISTEN_ADDRESS")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the child never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut banner = String::new();
        loop {
            let line = match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(l) => l,
                Err(e) => {
                    let _ = child.kill();
                    panic!("server did not print its banner ({e}); got:\n{banner}");
                }
            };
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("server started!") {
                break;
            }
        }
        // The dev block follows the started line; collect it when present.
        if args.contains(&"-dev") || args.iter().any(|a| a.starts_with("-dev-kv-v1")) {
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
                banner.push_str(&line);
                banner.push('\n');
                if line.contains("should NOT be used") {
                    break;
                }
            }
        }
        let url = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("Api Address: "))
            .unwrap()
            .to_string();
        Process { child, banner, url }
    }

    /// The value after `key: ` in the banner.
    pub fn banner_value(&self, key: &str) -> Option<String> {
        self.banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
            .map(str::to_string)
    }

    /// Send SIGTERM and wait (bounded) for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        for _ in 0..200 {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("server did not stop within 10s of SIGTERM");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
