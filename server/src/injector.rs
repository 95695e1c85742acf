//! `strongroom injector`: a Kubernetes mutating admission webhook (HTTPS, `POST /mutate`,
//! AdmissionReview `admission.k8s.io/v1`) that honours HashiCorp's `vault.hashicorp.com/*`
//! annotations, so manifests written for Vault's injector work unchanged.
//!
//! For a pod with `vault.hashicorp.com/agent-inject: "true"` it answers a JSONPatch that adds
//! an in-memory volume mounted at `/vault/secrets` in every container, an init container that
//! renders every secret once (`strongroom agent` with `exit_after_auth = true`) and a sidecar
//! that keeps the files fresh, both configured from the annotations (the agent config travels
//! base64-encoded in an environment variable, as Vault's injector does), and marks the pod
//! `agent-inject-status: injected` so it is never injected twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

const PREFIX: &str = "vault.hashicorp.com/";
/// Where secrets appear in every container.
pub const SECRETS_DIR: &str = "/vault/secrets";
/// The agent's home (its config and token sink).
const HOME: &str = "/home/vault";
const SA_TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const CONFIG_ENV: &str = "STRONGROOM_AGENT_CONFIG";

/// consul-template's default for a secret without a template annotation (Vault's injector's).
const DEFAULT_TEMPLATE: &str =
    "{{ with secret \"PATH\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}";

/// What the injector puts into pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectorSettings {
    /// The server address the agents use (`vault.hashicorp.com/service` overrides it).
    pub vault_address: String,
    /// The image that runs `strongroom agent`.
    pub agent_image: String,
}

impl Default for InjectorSettings {
    fn default() -> InjectorSettings {
        InjectorSettings {
            vault_address: "https://strongroom.strongroom.svc:8200".into(),
            agent_image: "strongroom:latest".into(),
        }
    }
}

/// One secret to render: `agent-inject-secret-<name>` and its companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// `<name>`.
    pub name: String,
    /// The template text.
    pub template: String,
    /// The file under `/vault/secrets` (`agent-inject-file-<name>`, default `<name>`).
    pub file: String,
    /// `agent-inject-perms-<name>`.
    pub perms: Option<String>,
    /// `agent-inject-command-<name>`.
    pub command: Option<String>,
}

fn annotations(pod: &Value) -> BTreeMap<String, String> {
    pod.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn flag(a: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool, String> {
    match a
        .get(&format!("{PREFIX}{key}"))
        .map(|s| s.trim().to_ascii_lowercase())
    {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "1" | "t" | "yes" | "y" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "f" | "no" | "n" | "off") => Ok(false),
        Some(_) => Err(format!("annotation `{PREFIX}{key}` must be true or false")),
    }
}

/// The secrets the annotations ask for, in name order.
pub fn secret_files(a: &BTreeMap<String, String>) -> Result<Vec<SecretFile>, String> {
    let mut out = Vec::new();
    for (key, path) in a {
        let Some(name) = key.strip_prefix(&format!("{PREFIX}agent-inject-secret-")) else {
            continue;
        };
        if name.is_empty() {
            return Err(format!(
                "annotation `{key}` needs a name after `agent-inject-secret-`"
            ));
        }
        let get = |what: &str| {
            a.get(&format!("{PREFIX}agent-inject-{what}-{name}"))
                .cloned()
        };
        let file = get("file").unwrap_or_else(|| name.to_string());
        // The file lands under /vault/secrets: no absolute path, no way out.
        if file.is_empty()
            || file.starts_with('/')
            || file.split('/').any(|seg| seg == ".." || seg.is_empty())
        {
            return Err(format!(
                "annotation `{PREFIX}agent-inject-file-{name}` must be a relative path inside {SECRETS_DIR}"
            ));
        }
        if let Some(p) = get("perms")
            && (p.is_empty() || u32::from_str_radix(&p, 8).map_or(true, |m| m > 0o7777))
        {
            return Err(format!(
                "annotation `{PREFIX}agent-inject-perms-{name}` must be an octal mode such as \"0640\""
            ));
        }
        out.push(SecretFile {
            name: name.to_string(),
            template: get("template").unwrap_or_else(|| DEFAULT_TEMPLATE.replace("PATH", path)),
            file,
            perms: get("perms"),
            command: get("command"),
        });
    }
    Ok(out)
}

/// A string as an HCL quoted literal: escapes, and `${` / `%{` doubled so they stay text.
fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The agent configuration (HCL) the annotations describe; `one_shot` for the init container.
pub fn agent_config(
    a: &BTreeMap<String, String>,
    settings: &InjectorSettings,
    one_shot: bool,
) -> Result<String, String> {
    let get = |k: &str| a.get(&format!("{PREFIX}{k}")).cloned();
    let role = get("role").ok_or_else(|| format!("annotation `{PREFIX}role` is required"))?;
    let auth_path = get("auth-path").unwrap_or_else(|| "auth/kubernetes".into());
    let address = get("service").unwrap_or_else(|| settings.vault_address.clone());
    let mut vault = format!("  address = {}\n", hcl_string(&address));
    if flag(a, "tls-skip-verify", false)? {
        vault.push_str("  tls_skip_verify = true\n");
    }
    if let Some(ca) = get("ca-cert") {
        vault.push_str(&format!("  ca_cert = {}\n", hcl_string(&ca)));
    }
    let mut text = format!(
        "exit_after_auth = {one_shot}\n\nvault {{\n{vault}}}\n\nauto_auth {{\n  method \"kubernetes\" {{\n    mount_path = {}\n    config = {{\n      role = {}\n      token_path = {}\n    }}\n  }}\n  sink \"file\" {{\n    config = {{\n      path = {}\n    }}\n  }}\n}}\n\ntemplate_config {{\n  exit_on_retry_failure = true\n",
        hcl_string(auth_path.trim_matches('/')),
        hcl_string(&role),
        hcl_string(&format!("{SA_TOKEN_DIR}/token")),
        hcl_string(&format!("{HOME}/.vault-token")),
    );
    if let Some(interval) = get("template-static-secret-render-interval") {
        text.push_str(&format!(
            "  static_secret_render_interval = {}\n",
            hcl_string(&interval)
        ));
    }
    text.push_str("}\n");
    for s in secret_files(a)? {
        text.push_str(&format!(
            "\ntemplate {{\n  destination = {}\n  contents = {}\n",
            hcl_string(&format!("{SECRETS_DIR}/{}", s.file)),
            hcl_string(&s.template)
        ));
        if let Some(p) = &s.perms {
            text.push_str(&format!("  perms = {}\n", hcl_string(p)));
        }
        if let Some(c) = &s.command {
            text.push_str(&format!("  command = {}\n", hcl_string(c)));
        }
        text.push_str("}\n");
    }
    Ok(text)
}

fn resources(a: &BTreeMap<String, String>) -> Value {
    let get = |k: &str, d: Option<&str>| {
        a.get(&format!("{PREFIX}{k}"))
            .cloned()
            .or(d.map(str::to_string))
    };
    let mut limits = serde_json::Map::new();
    let mut requests = serde_json::Map::new();
    for (res, lim, req) in [
        ("cpu", Some("500m"), Some("250m")),
        ("memory", Some("128Mi"), Some("64Mi")),
        ("ephemeral-storage", None, None),
    ] {
        let short = match res {
            "memory" => "mem",
            "ephemeral-storage" => "ephemeral",
            other => other,
        };
        if let Some(v) = get(&format!("agent-limits-{short}"), lim) {
            limits.insert(res.into(), Value::String(v));
        }
        if let Some(v) = get(&format!("agent-requests-{short}"), req) {
            requests.insert(res.into(), Value::String(v));
        }
    }
    json!({ "limits": limits, "requests": requests })
}

/// What an agent container runs (`sh -ec`): the config from the environment into a file, then
/// `strongroom-agent`, the agent-only binary (a fraction of `strongroom`'s resident memory in
/// every pod), or `strongroom agent` in an image that has only the full binary.
fn agent_script() -> String {
    let config = format!("{HOME}/config.hcl");
    format!(
        "echo ${{{CONFIG_ENV}?}} | base64 -d > {config} && \
         if command -v strongroom-agent >/dev/null 2>&1; \
         then exec strongroom-agent -config={config}; \
         else exec strongroom agent -config={config}; fi"
    )
}

fn agent_container(
    name: &str,
    home_volume: &str,
    config: &str,
    pod: &Value,
    settings: &InjectorSettings,
    a: &BTreeMap<String, String>,
) -> Value {
    let mut mounts = vec![
        json!({"name": "vault-secrets", "mountPath": SECRETS_DIR}),
        json!({"name": home_volume, "mountPath": HOME}),
    ];
    // The service-account token the kubernetes method logs in with: the app container's
    // mount of it (Vault's injector copies it the same way).
    if let Some(sa) = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("volumeMounts").and_then(Value::as_array))
        .flatten()
        .find(|m| m.get("mountPath").and_then(Value::as_str) == Some(SA_TOKEN_DIR))
    {
        mounts.push(sa.clone());
    }
    json!({
        "name": name,
        "image": settings.agent_image,
        "command": ["/bin/sh", "-ec"],
        "args": [agent_script()],
        "env": [{"name": CONFIG_ENV, "value": B64.encode(config)}],
        "resources": resources(a),
        "volumeMounts": mounts,
        "securityContext": {
            "runAsNonRoot": true, "runAsUser": 100, "runAsGroup": 1000,
            "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}
        }
    })
}

/// The JSONPatch for `pod`, or `None` when it is not to be injected (no `agent-inject`, or
/// already injected). An annotation error is `Err` (the pod is refused with that message).
pub fn patch(pod: &Value, settings: &InjectorSettings) -> Result<Option<Vec<Value>>, String> {
    let a = annotations(pod);
    if !flag(&a, "agent-inject", false)? {
        return Ok(None);
    }
    if a.get(&format!("{PREFIX}agent-inject-status"))
        .map(String::as_str)
        == Some("injected")
    {
        return Ok(None);
    }
    let pre_populate = flag(&a, "agent-pre-populate", true)?;
    let only = flag(&a, "agent-pre-populate-only", false)?;
    let mut ops = Vec::new();
    let mut volumes = vec![json!({"name": "vault-secrets", "emptyDir": {"medium": "Memory"}})];
    if pre_populate || only {
        volumes.push(json!({"name": "vault-home-init", "emptyDir": {"medium": "Memory"}}));
    }
    if !only {
        volumes.push(json!({"name": "vault-home-sidecar", "emptyDir": {"medium": "Memory"}}));
    }
    let has = |p: &str| pod.pointer(p).and_then(Value::as_array).is_some();
    if has("/spec/volumes") {
        for v in volumes {
            ops.push(json!({"op": "add", "path": "/spec/volumes/-", "value": v}));
        }
    } else {
        ops.push(json!({"op": "add", "path": "/spec/volumes", "value": volumes}));
    }
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .ok_or("the pod has no containers")?;
    let mount = json!({"name": "vault-secrets", "mountPath": SECRETS_DIR, "readOnly": true});
    for (i, c) in containers.iter().enumerate() {
        if c.get("volumeMounts").and_then(Value::as_array).is_some() {
            ops.push(json!({"op": "add", "path": format!("/spec/containers/{i}/volumeMounts/-"), "value": mount}));
        } else {
            ops.push(json!({"op": "add", "path": format!("/spec/containers/{i}/volumeMounts"), "value": [mount]}));
        }
    }
    if pre_populate || only {
        let init = agent_container(
            "vault-agent-init",
            "vault-home-init",
            &agent_config(&a, settings, true)?,
            pod,
            settings,
            &a,
        );
        // First among the init containers: the others may need the secrets.
        if has("/spec/initContainers") {
            ops.push(json!({"op": "add", "path": "/spec/initContainers/0", "value": init}));
        } else {
            ops.push(json!({"op": "add", "path": "/spec/initContainers", "value": [init]}));
        }
    }
    if !only {
        let sidecar = agent_container(
            "vault-agent",
            "vault-home-sidecar",
            &agent_config(&a, settings, false)?,
            pod,
            settings,
            &a,
        );
        ops.push(json!({"op": "add", "path": "/spec/containers/-", "value": sidecar}));
    }
    let status = json!({"op": "add", "path": "/metadata/annotations/vault.hashicorp.com~1agent-inject-status", "value": "injected"});
    ops.push(status);
    Ok(Some(ops))
}

/// The AdmissionReview answer for an AdmissionReview request.
pub fn review(request: &Value, settings: &InjectorSettings) -> Value {
    let uid = request
        .pointer("/request/uid")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    let response = match request.pointer("/request/object") {
        None => {
            json!({"uid": uid, "allowed": false, "status": {"code": 400, "message": "the AdmissionReview has no request.object"}})
        }
        Some(pod) => match patch(pod, settings) {
            Ok(None) => json!({"uid": uid, "allowed": true}),
            Ok(Some(ops)) => json!({
                "uid": uid, "allowed": true, "patchType": "JSONPatch",
                "patch": B64.encode(Value::Array(ops).to_string()),
            }),
            Err(message) => {
                json!({"uid": uid, "allowed": false, "status": {"code": 400, "message": format!("strongroom injector: {message}")}})
            }
        },
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// `strongroom injector -h`.
pub const INJECTOR_HELP: &str = "Usage: strongroom injector [options]

  Kubernetes mutating admission webhook (POST /mutate, AdmissionReview v1) for
  the vault.hashicorp.com/* annotations: injects `strongroom agent` as an init
  container and a sidecar that render secrets into /vault/secrets.

Options:

  -listen=<addr>           Listen address. Default: 0.0.0.0:8080.
  -tls-cert-file=<path>    PEM certificate (required: the API server calls HTTPS).
  -tls-key-file=<path>     PEM private key.
  -vault-address=<url>     Address the agents use. Default:
                           https://strongroom.strongroom.svc:8200.
  -agent-image=<image>     Image with the strongroom binary. Default: strongroom:latest.
";

/// `strongroom injector ...`.
pub fn main(args: &[String]) -> ExitCode {
    let mut settings = InjectorSettings::default();
    let mut listen = "0.0.0.0:8080".to_string();
    let (mut cert, mut key): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let flag = arg.trim_start_matches('-');
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if matches!(name, "h" | "help") {
            print!("{INJECTOR_HELP}");
            return ExitCode::SUCCESS;
        }
        let Some(value) = inline.or_else(|| it.next().cloned()) else {
            eprintln!("flag -{name} needs a value\n\n{INJECTOR_HELP}");
            return ExitCode::from(1);
        };
        match name {
            "listen" => listen = value,
            "tls-cert-file" => cert = Some(value.into()),
            "tls-key-file" => key = Some(value.into()),
            "vault-address" => settings.vault_address = value,
            "agent-image" => settings.agent_image = value,
            other => {
                eprintln!("unknown flag -{other}\n\n{INJECTOR_HELP}");
                return ExitCode::from(1);
            }
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        eprintln!("-tls-cert-file and -tls-key-file are required\n\n{INJECTOR_HELP}");
        return ExitCode::from(1);
    };
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("-listen `{listen}` is not an address such as 0.0.0.0:8080");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(addr, cert, key, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The webhook's router: `POST /mutate`, `GET /health/ready`.
pub fn router(settings: InjectorSettings) -> axum::Router {
    use axum::routing::{get, post};
    let settings = std::sync::Arc::new(settings);
    axum::Router::new()
        .route(
            "/mutate",
            post(move |body: axum::body::Bytes| {
                let settings = settings.clone();
                async move {
                    let answer = match serde_json::from_slice::<Value>(&body) {
                        Ok(req) => review(&req, &settings),
                        Err(e) => json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                            "response": {"uid": "", "allowed": false, "status": {"code": 400, "message": format!("the body is not JSON: {e}")}}}),
                    };
                    ([(axum::http::header::CONTENT_TYPE, "application/json")], answer.to_string())
                }
            }),
        )
        .route("/health/ready", get(|| async { "ok" }))
}

async fn serve(
    addr: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    settings: InjectorSettings,
) -> Result<(), String> {
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
        .await
        .map_err(|e| format!("cannot load the TLS certificate and key: {e}"))?;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    // SIGTERM is how Kubernetes stops a pod: finish the reviews in flight, then exit 0.
    let stop = crate::run::stop_signal();
    tokio::spawn(async move {
        stop.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    eprintln!("strongroom injector listening on https://{addr}/mutate");
    axum_server::bind_rustls(addr, tls)
        .handle(handle)
        .serve(router(settings).into_make_service())
        .await
        .map_err(|e| format!("the listener failed: {e}"))
}
