//! `strongroom agent` as a process against real servers: `strongroom server -dev` and OpenBao's
//! `bao server -dev` (the seed's annotation example: a KV v2 secret rendered to a file with
//! its permissions), AppRole login with a long-running agent that re-renders on change, runs
//! the template's command, and keeps the last file while the server is gone. The injector's
//! tests live in the `injector` module (same binary).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;
#[path = "agent/injector.rs"]
mod injector;
#[path = "../../core/tests/k8s_standin/mod.rs"]
mod k8s_standin;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Process, client, send};
use serde_json::{Value, json};

const SEED_TEMPLATE: &str = r#"{{- with secret "secret/data/production/api-service" -}}
DATABASE_URL={{ .Data.data.database_url }}
API_KEY={{ .Data.data.api_key }}
{{- end -}}
"#;
const SEED_FILE: &str = "DATABASE_URL=postgresql://user:pass@db:5432/app\nAPI_KEY=sk_live_xxxxx";

async fn api(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Value {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = client().request(m, format!("{url}/v1/{path}"));
    if let Some(t) = token {
        rb = rb.header("X-Vault-Token", t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let a = send(rb).await;
    assert!(
        a.status.is_success(),
        "{method} {path}: {} {}",
        a.status,
        a.body
    );
    if a.body.trim().is_empty() {
        Value::Null
    } else {
        a.json()
    }
}

async fn put_seed_secret(url: &str, database_url: &str, api_key: &str) {
    api(
        url,
        "POST",
        "secret/data/production/api-service",
        Some("root"),
        Some(json!({"data": {"database_url": database_url, "api_key": api_key}})),
    )
    .await;
}

fn agent(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strongroom"));
    c.args(["agent", "-config", config.to_str().unwrap()])
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("BAO_TOKEN");
    c
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The seed's scenario, one-shot (the injector's init container): token file login, token
/// sink, the template rendered once with its permissions, exit 0, no secret in the output.
fn one_shot_seed(url: &str, dir: &Path) {
    std::fs::write(dir.join("token"), "root\n").unwrap();
    let config = dir.join("agent.hcl");
    std::fs::write(
        &config,
        format!(
            r#"
exit_after_auth = true
vault {{
  address = "{url}"
}}
auto_auth {{
  method "token_file" {{
    config = {{ token_file_path = "{token}" }}
  }}
  sink "file" {{
    config = {{
      path = "{sink}"
      mode = 0600
    }}
  }}
}}
template {{
  destination = "{dest}"
  perms = "0640"
  contents = <<EOT
{SEED_TEMPLATE}EOT
}}
"#,
            token = dir.join("token").display(),
            sink = dir.join("sink/token").display(),
            dest = dir.join("vault/secrets/config").display(),
        ),
    )
    .unwrap();
    let out: Output = agent(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "agent failed: {stderr}");
    let dest = dir.join("vault/secrets/config");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), SEED_FILE);
    assert_eq!(mode(&dest), 0o640);
    assert_eq!(
        std::fs::read_to_string(dir.join("sink/token")).unwrap(),
        "root"
    );
    assert_eq!(mode(&dir.join("sink/token")), 0o600);
    let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        !all.contains("sk_live") && !all.contains("user:pass"),
        "secret in the log: {all}"
    );
}

#[tokio::test]
async fn one_shot_against_strongroom_dev() {
    let server = Process::start(&[
        "server",
        "-dev",
        "-dev-root-token-id=root",
        "-dev-listen-address=127.0.0.1:0",
    ]);
    put_seed_secret(
        &server.url,
        "postgresql://user:pass@db:5432/app",
        "sk_live_xxxxx",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url.clone();
    tokio::task::spawn_blocking(move || one_shot_seed(&url, dir.path()))
        .await
        .unwrap();
}

/// OpenBao's dev server on a free port (`BAO_BIN`, else /usr/local/bin/bao).
struct Bao {
    child: Child,
    url: String,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_bao() -> Bao {
    let bin = std::env::var("BAO_BIN").unwrap_or_else(|_| "/usr/local/bin/bao".into());
    assert!(
        Path::new(&bin).exists(),
        "this test compares with OpenBao: `{bin}` is missing (install bao 2.x or set BAO_BIN)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{bin}`: {e}"));
    let url = format!("http://127.0.0.1:{port}");
    let bao = Bao { child, url };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client()
            .get(format!("{}/v1/sys/health", bao.url))
            .send()
            .await
            && r.status().is_success()
        {
            return bao;
        }
        assert!(
            Instant::now() < deadline,
            "bao did not become healthy in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_shot_against_openbao_dev() {
    let bao = start_bao().await;
    put_seed_secret(
        &bao.url,
        "postgresql://user:pass@db:5432/app",
        "sk_live_xxxxx",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = bao.url.clone();
    tokio::task::spawn_blocking(move || one_shot_seed(&url, dir.path()))
        .await
        .unwrap();
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn approle_login_files(url: &str, dir: &Path) -> (PathBuf, PathBuf) {
    api(
        url,
        "PUT",
        "sys/policies/acl/api-secrets",
        Some("root"),
        Some(json!({"policy": "path \"secret/data/production/*\" { capabilities = [\"read\"] }"})),
    )
    .await;
    api(
        url,
        "POST",
        "sys/auth/approle",
        Some("root"),
        Some(json!({"type": "approle"})),
    )
    .await;
    api(
        url,
        "POST",
        "auth/approle/role/api",
        Some("root"),
        Some(json!({"token_policies": "api-secrets", "token_ttl": "1h"})),
    )
    .await;
    let role_id = api(
        url,
        "GET",
        "auth/approle/role/api/role-id",
        Some("root"),
        None,
    )
    .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = api(
        url,
        "POST",
        "auth/approle/role/api/secret-id",
        Some("root"),
        None,
    )
    .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (r, s) = (dir.join("role-id"), dir.join("secret-id"));
    std::fs::write(&r, role_id).unwrap();
    std::fs::write(&s, secret_id).unwrap();
    (r, s)
}

/// Long-running: AppRole (secret id file removed after reading), re-render every second,
/// the command run after each change, the file kept while the server is sealed or gone,
/// SIGTERM.
#[tokio::test]
async fn long_running_approle_rerenders_and_survives_a_sealed_or_gone_server() {
    let server = Process::start(&[
        "server",
        "-dev",
        "-dev-root-token-id=root",
        "-dev-listen-address=127.0.0.1:0",
    ]);
    let url = server.url.clone();
    put_seed_secret(&url, "postgresql://user:pass@db:5432/app", "sk_live_xxxxx").await;
    let dir = tempfile::tempdir().unwrap();
    let (role_id, secret_id) = approle_login_files(&url, dir.path()).await;
    let dest = dir.path().join("out/config");
    let log = dir.path().join("commands.log");
    let config = dir.path().join("agent.hcl");
    std::fs::write(
        &config,
        format!(
            r#"
vault {{
  address = "{url}"
  retry {{ num_retries = 2 }}
}}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path = "{role_id}"
      secret_id_file_path = "{secret_id}"
    }}
  }}
}}
template_config {{
  static_secret_render_interval = "1s"
}}
template {{
  destination = "{dest}"
  contents = <<EOT
{SEED_TEMPLATE}EOT
  command = "echo changed >> {log}"
  command_timeout = "5s"
}}
"#,
            role_id = role_id.display(),
            secret_id = secret_id.display(),
            dest = dest.display(),
            log = log.display(),
        ),
    )
    .unwrap();
    let mut child = agent(&config).stderr(Stdio::piped()).spawn().unwrap();
    let d = dest.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the first render", Duration::from_secs(30), || {
            std::fs::read_to_string(&d).is_ok_and(|t| t == SEED_FILE)
        })
    })
    .await
    .unwrap();
    assert_eq!(mode(&dest), 0o644, "default perms");
    assert!(
        !secret_id.exists(),
        "the secret id file is removed after reading"
    );
    let l = log.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the first command", Duration::from_secs(10), || {
            std::fs::read_to_string(&l).is_ok_and(|t| t == "changed\n")
        })
    })
    .await
    .unwrap();

    put_seed_secret(&url, "postgresql://rotated@db:5432/app", "sk_live_rotated").await;
    let (d, l) = (dest.clone(), log.clone());
    tokio::task::spawn_blocking(move || {
        wait_for("the re-render", Duration::from_secs(30), || {
            std::fs::read_to_string(&d).is_ok_and(|t| {
                t == "DATABASE_URL=postgresql://rotated@db:5432/app\nAPI_KEY=sk_live_rotated"
            })
        });
        wait_for("the second command", Duration::from_secs(10), || {
            std::fs::read_to_string(&l).is_ok_and(|t| t == "changed\nchanged\n")
        });
    })
    .await
    .unwrap();

    // The server sealed: the agent keeps running and keeps the last good file; unsealed, it
    // picks up the change made meanwhile.
    let key = server.banner_value("Unseal Key").unwrap();
    api(&url, "PUT", "sys/seal", Some("root"), None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent must survive a sealed server"
    );
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "DATABASE_URL=postgresql://rotated@db:5432/app\nAPI_KEY=sk_live_rotated"
    );
    api(&url, "PUT", "sys/unseal", None, Some(json!({"key": key}))).await;
    put_seed_secret(
        &url,
        "postgresql://rotated@db:5432/app",
        "sk_live_after_unseal",
    )
    .await;
    let d = dest.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the render after unseal", Duration::from_secs(30), || {
            std::fs::read_to_string(&d).is_ok_and(|t| t.ends_with("API_KEY=sk_live_after_unseal"))
        })
    })
    .await
    .unwrap();
    let l = log.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the third command", Duration::from_secs(10), || {
            std::fs::read_to_string(&l).is_ok_and(|t| t == "changed\nchanged\nchanged\n")
        })
    })
    .await
    .unwrap();

    // The server goes away: the agent keeps running and keeps the last good file.
    drop(server);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent must survive the server going away"
    );
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "DATABASE_URL=postgresql://rotated@db:5432/app\nAPI_KEY=sk_live_after_unseal"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "changed\nchanged\nchanged\n"
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit after SIGTERM: {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("keeping the last files"), "{stderr}");
    assert!(
        !stderr.contains("sk_live") && !stderr.contains("rotated@"),
        "secret in the log: {stderr}"
    );
}

#[test]
fn bad_configs_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.hcl");
    std::fs::write(
        &config,
        "exit_after_auth = true\ntemplate {\n  destination = \"/tmp/x\"\n  contents = \"{{ with secret \\\"a\\\" }}\"\n}\n",
    )
    .unwrap();
    let out = agent(&config).env("VAULT_TOKEN", "t").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("template: /tmp/x:1:1: unexpected EOF"),
        "{stderr}"
    );
    let out = agent(&dir.path().join("missing.hcl")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

/// `strongroom-agent`, the agent-only binary the injected containers run: `strongroom agent`'s
/// command line (a leading `agent` accepted), the same help and the same errors.
#[test]
fn agent_only_binary_takes_the_agent_command_line() {
    let bin = env!("CARGO_BIN_EXE_strongroom-agent");
    for args in [&["-h"][..], &["agent", "-h"][..]] {
        let out = Command::new(bin).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            strongroom_server::agent::AGENT_HELP
        );
    }
    let out = Command::new(bin).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Strongroom v"));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .arg(format!(
            "-config={}",
            dir.path().join("missing.hcl").display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}
