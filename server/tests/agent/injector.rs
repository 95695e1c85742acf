//! (A module of the `agent` test binary: one binary, one link, for both.)
//!
//! `strongroom injector` as a process: AdmissionReview fixtures built from the seed's
//! Deployment go to its HTTPS `/mutate`; the JSONPatch is applied with a JSON Patch library
//! and the pod checked; the agent config it generated for the init container then runs
//! against a server whose Kubernetes auth talks to the API stand-in, and
//! `/vault/secrets/config` (under a temporary root) holds exactly the seed's lines.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{ROOT, TestServer, send};
use crate::k8s_standin::{Alg, StandIn};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The seed's Deployment's pod, as the API server sends it to the webhook (the
/// ServiceAccount admission plugin has already mounted the token).
fn seed_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "api-service-7d9c8-",
            "namespace": "production",
            "labels": {"app": "api-service"},
            "annotations": {
                "vault.hashicorp.com/agent-inject": "true",
                "vault.hashicorp.com/role": "api-service",
                "vault.hashicorp.com/agent-inject-secret-config": "secret/data/production/api-service",
                "vault.hashicorp.com/agent-inject-template-config": "{{- with secret \"secret/data/production/api-service\" -}}\nDATABASE_URL={{ .Data.data.database_url }}\nAPI_KEY={{ .Data.data.api_key }}\n{{- end -}}\n"
            }
        },
        "spec": {
            "serviceAccountName": "api-service-sa",
            "containers": [{
                "name": "api",
                "image": "api:latest",
                "volumeMounts": [{"name": "kube-api-access-x1", "mountPath": SA_DIR, "readOnly": true}]
            }],
            "volumes": [{"name": "kube-api-access-x1", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
        }
    })
}

fn admission_review(pod: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "production",
            "operation": "CREATE",
            "object": pod
        }
    })
}

struct Injector {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Injector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_injector(dir: &std::path::Path) -> Injector {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args([
            "injector",
            &format!("-listen=127.0.0.1:{port}"),
            &format!("-tls-cert-file={}", dir.join("tls.crt").display()),
            &format!("-tls-key-file={}", dir.join("tls.key").display()),
            "-vault-address=https://strongroom.strongroom.svc:8200",
            "-agent-image=strongroom:0.1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "injector did not start: {line}");
    let http = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Injector {
        child,
        url: format!("https://127.0.0.1:{port}"),
        http,
    }
}

async fn mutate(inj: &Injector, review: &Value) -> Value {
    let a = send(inj.http.post(format!("{}/mutate", inj.url)).json(review)).await;
    assert!(a.status.is_success(), "{} {}", a.status, a.body);
    a.json()
}

fn apply(pod: &Value, answer: &Value) -> Value {
    assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");
    let ops = B64
        .decode(answer["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&ops).unwrap();
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch).unwrap();
    out
}

fn config_of(container: &Value) -> String {
    let env = container["env"].as_array().unwrap();
    let v = env
        .iter()
        .find(|e| e["name"] == "STRONGROOM_AGENT_CONFIG")
        .unwrap();
    String::from_utf8(B64.decode(v["value"].as_str().unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn seed_deployment_is_injected_once_and_its_init_config_renders_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let inj = start_injector(dir.path());
    let pod = seed_pod();
    let answer = mutate(&inj, &admission_review(&pod)).await;
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        answer["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(answer["response"]["allowed"], true);
    let injected = apply(&pod, &answer);

    // The app container sees /vault/secrets (read-only); the volume is in memory.
    let api = &injected["spec"]["containers"][0];
    assert_eq!(api["name"], "api");
    assert!(api["volumeMounts"].as_array().unwrap().contains(
        &json!({"name": "vault-secrets", "mountPath": "/vault/secrets", "readOnly": true})
    ));
    let volumes = injected["spec"]["volumes"].as_array().unwrap();
    assert!(volumes.contains(&json!({"name": "vault-secrets", "emptyDir": {"medium": "Memory"}})));
    assert_eq!(
        volumes[0]["name"], "kube-api-access-x1",
        "existing volumes kept"
    );
    // An init container that renders once, a sidecar that keeps the files fresh.
    let init = &injected["spec"]["initContainers"][0];
    let sidecar = &injected["spec"]["containers"][1];
    assert_eq!(
        injected["spec"]["initContainers"].as_array().unwrap().len(),
        1
    );
    assert_eq!(injected["spec"]["containers"].as_array().unwrap().len(), 2);
    for (c, name) in [(init, "vault-agent-init"), (sidecar, "vault-agent")] {
        assert_eq!(c["name"], name);
        assert_eq!(c["image"], "strongroom:0.1");
        // The agent-only binary when the image has it, else the full one.
        let script = c["args"][0].as_str().unwrap();
        assert!(script.contains("command -v strongroom-agent"), "{script}");
        assert!(
            script.contains("then exec strongroom-agent -config=/home/vault/config.hcl;"),
            "{script}"
        );
        assert!(
            script.contains("else exec strongroom agent -config=/home/vault/config.hcl;"),
            "{script}"
        );
        assert_eq!(
            c["resources"],
            json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}})
        );
        let mounts = c["volumeMounts"].as_array().unwrap();
        assert!(mounts.iter().any(|m| m["mountPath"] == "/vault/secrets"));
        assert!(
            mounts.iter().any(|m| m["mountPath"] == SA_DIR),
            "the service-account token reaches the agent"
        );
    }
    let init_config = config_of(init);
    assert!(
        init_config.starts_with("exit_after_auth = true"),
        "{init_config}"
    );
    assert!(config_of(sidecar).starts_with("exit_after_auth = false"));
    assert_eq!(
        injected["metadata"]["annotations"]["vault.hashicorp.com/agent-inject-status"],
        "injected"
    );

    // Never twice: the injected pod comes back unchanged.
    let again = mutate(&inj, &admission_review(&injected)).await;
    assert_eq!(again["response"]["allowed"], true);
    assert!(again["response"].get("patch").is_none(), "{again}");
    // Without agent-inject: untouched.
    let mut plain = seed_pod();
    plain["metadata"]["annotations"] = json!({});
    assert!(
        mutate(&inj, &admission_review(&plain)).await["response"]
            .get("patch")
            .is_none()
    );
    // A file annotation that escapes /vault/secrets is refused with the reason.
    let mut evil = seed_pod();
    evil["metadata"]["annotations"]["vault.hashicorp.com/agent-inject-file-config"] =
        json!("../../etc/passwd");
    let refused = mutate(&inj, &admission_review(&evil)).await;
    assert_eq!(refused["response"]["allowed"], false);
    assert!(
        refused["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("inside /vault/secrets")
    );

    // The init container's config, run against a server whose Kubernetes auth reviews tokens
    // with the API stand-in; the pod's filesystem lives under a temporary root.
    let k8s = StandIn::start("reviewer-jwt").await;
    let server = TestServer::dev().await;
    let root = |m: &str, p: &str| server.root(m, p);
    for (m, p, body) in [
        ("POST", "sys/auth/kubernetes", json!({"type": "kubernetes"})),
        (
            "POST",
            "auth/kubernetes/config",
            json!({"kubernetes_host": k8s.url(), "kubernetes_ca_cert": k8s.ca_pem, "token_reviewer_jwt": "reviewer-jwt"}),
        ),
        (
            "PUT",
            "sys/policies/acl/api-secrets",
            json!({"policy": "path \"secret/data/production/api-service\" {\n capabilities = [\"read\"]\n}"}),
        ),
        (
            "POST",
            "auth/kubernetes/role/api-service",
            json!({"bound_service_account_names": "api-service-sa", "bound_service_account_namespaces": "production", "policies": "api-secrets", "ttl": "1h"}),
        ),
        (
            "POST",
            "secret/data/production/api-service",
            json!({"data": {"database_url": "postgresql://user:pass@db:5432/app", "api_key": "sk_live_xxxxx"}}),
        ),
    ] {
        let a = send(root(m, p).json(&body)).await;
        assert!(a.status.is_success(), "{p}: {} {}", a.status, a.body);
    }
    let _ = ROOT;
    let fs = dir.path().join("pod");
    std::fs::create_dir_all(fs.join("sa")).unwrap();
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let jwt = k8s.projected(
        Alg::Rs256,
        "production",
        "api-service-sa",
        "uid-api",
        &["https://kubernetes.default.svc"],
        exp,
    );
    std::fs::write(fs.join("sa/token"), jwt).unwrap();
    let local = init_config
        .replace("https://strongroom.strongroom.svc:8200", &server.url)
        .replace(SA_DIR, &fs.join("sa").display().to_string())
        .replace(
            "/vault/secrets",
            &fs.join("vault/secrets").display().to_string(),
        )
        .replace("/home/vault", &fs.join("home").display().to_string());
    std::fs::write(dir.path().join("agent.hcl"), &local).unwrap();
    let config = dir.path().join("agent.hcl");
    // The binary the injected containers run when the image has it (the agent-only one).
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_strongroom-agent"))
            .args(["-config", config.to_str().unwrap()])
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "agent: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(fs.join("vault/secrets/config")).unwrap(),
        "DATABASE_URL=postgresql://user:pass@db:5432/app\nAPI_KEY=sk_live_xxxxx"
    );
    assert!(fs.join("home/.vault-token").exists(), "the token sink");
    assert!(k8s.reviews() >= 1, "the login went through a TokenReview");
    server.stop().await;
}

#[test]
fn generated_config_round_trips_through_the_agent_parser() {
    use std::collections::BTreeMap;
    use strongroom_server::agent::config::AgentConfig;
    use strongroom_server::injector::{InjectorSettings, agent_config};
    let tricky = "{{ with secret \"a\" }}\"quoted\" \\ back ${not_hcl} %{ nor } \ttab\n{{ end }}";
    let a: BTreeMap<String, String> = [
        ("vault.hashicorp.com/role", "r"),
        ("vault.hashicorp.com/auth-path", "auth/k8s-prod"),
        ("vault.hashicorp.com/tls-skip-verify", "true"),
        ("vault.hashicorp.com/ca-cert", "/vault/tls/ca.crt"),
        (
            "vault.hashicorp.com/agent-inject-secret-db",
            "database/creds/app",
        ),
        (
            "vault.hashicorp.com/agent-inject-secret-cfg",
            "secret/data/x",
        ),
        ("vault.hashicorp.com/agent-inject-template-cfg", tricky),
        (
            "vault.hashicorp.com/agent-inject-file-cfg",
            "app/config.env",
        ),
        ("vault.hashicorp.com/agent-inject-perms-cfg", "0400"),
        (
            "vault.hashicorp.com/agent-inject-command-cfg",
            "kill -HUP $(pidof app)",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let text = agent_config(&a, &InjectorSettings::default(), false).unwrap();
    let cfg = AgentConfig::parse(&text).unwrap();
    assert!(!cfg.exit_after_auth && cfg.exit_on_retry_failure);
    assert!(cfg.vault.tls_skip_verify);
    assert_eq!(
        cfg.vault.ca_cert.as_deref(),
        Some(std::path::Path::new("/vault/tls/ca.crt"))
    );
    let cfg_t = cfg
        .templates
        .iter()
        .find(|t| t.destination.ends_with("app/config.env"))
        .unwrap();
    assert_eq!(cfg_t.contents.as_deref(), Some(tricky));
    assert_eq!(cfg_t.perms, 0o400);
    assert_eq!(cfg_t.command.as_deref(), Some("kill -HUP $(pidof app)"));
    let db = cfg
        .templates
        .iter()
        .find(|t| t.destination.ends_with("/vault/secrets/db"))
        .unwrap();
    assert_eq!(
        db.contents.as_deref(),
        Some(
            "{{ with secret \"database/creds/app\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}"
        )
    );
    match cfg.method.unwrap() {
        strongroom_server::agent::config::AuthMethod::Kubernetes {
            mount_path, role, ..
        } => {
            assert_eq!((mount_path.as_str(), role.as_str()), ("auth/k8s-prod", "r"));
        }
        other => panic!("{other:?}"),
    }
}
