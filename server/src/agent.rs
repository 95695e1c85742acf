//! `strongroom agent -config agent.hcl`: Vault Agent's job against any Vault-compatible server
//! (Strongroom or OpenBao): log in (`auto_auth`), write the token to its sinks, render
//! `template` stanzas to files and keep them fresh (the rules live in
//! [`strongroom::template::Watcher`]), run each template's `command` after its file changed.
//!
//! With `exit_after_auth = true` (or `-exit-after-auth`) it renders every template once and
//! exits: the Kubernetes injector's init container. Otherwise it runs until SIGINT/SIGTERM,
//! surviving a server that is down or sealed (backoff; the last good files stay).
//! No secret value and no token is ever logged.

pub mod config;
pub mod vault;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use strongroom::template::{FileTarget, Template, TemplateOptions, WatchOptions, Watcher};
use strongroom::{Clock, Error, ErrorCode, SystemClock};

use config::AgentConfig;
use vault::VaultHttp;

/// `strongroom agent -h`.
pub const AGENT_HELP: &str = r#"Usage: strongroom agent -config=<path> [options]

  Vault Agent for any Vault-compatible server: authenticates (auto_auth),
  writes the token to its sinks, renders templates (consul-template's
  language) to files and keeps them fresh.

Options:

  -config=<path>       Agent configuration (Vault Agent's HCL). Required.
  -exit-after-auth     Render every template once and exit (as the config's
                       exit_after_auth = true): the injector's init container.
  -log-level=<level>   trace, debug, info, warn or error. Default: info.

Configuration:

  vault { address = "https://127.0.0.1:8200"  ca_cert = "/ca.pem"
          tls_skip_verify = false  retry { num_retries = 12 } }
  auto_auth {
    method "kubernetes" { mount_path = "auth/kubernetes"
                          config = { role = "api", token_path = "/var/run/..." } }
    method "approle"    { config = { role_id_file_path = "...",
                                     secret_id_file_path = "..." } }
    method "token_file" { config = { token_file_path = "..." } }
    sink "file" { config = { path = "/home/vault/.vault-token", mode = 0640 } }
  }
  template_config { static_secret_render_interval = "5m"
                    exit_on_retry_failure = true }
  template { destination = "/vault/secrets/config"  contents = "..." | source = "..."
             perms = "0640"  command = "..."  command_timeout = "30s"
             error_on_missing_key = false  create_dest_dirs = true
             left_delimiter = "{{"  right_delimiter = "}}" }
  exit_after_auth = false
"#;

/// What `strongroom agent` was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentArgs {
    /// `-config`.
    pub config: Option<PathBuf>,
    /// `-exit-after-auth`.
    pub exit_after_auth: bool,
    /// `-log-level`.
    pub log_level: Option<String>,
    /// `-h`.
    pub help: bool,
}

impl AgentArgs {
    /// Parses the arguments after `agent` (Go flag style: `-name value`, `-name=value`).
    pub fn parse(args: &[String]) -> Result<AgentArgs, String> {
        let mut out = AgentArgs::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let flag = arg.trim_start_matches('-');
            if flag.len() == arg.len() {
                return Err(format!("unexpected argument `{arg}`"));
            }
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            let mut value = |n: &str| {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| format!("flag -{n} needs a value"))
            };
            match name {
                "config" => out.config = Some(PathBuf::from(value(name)?)),
                "log-level" => out.log_level = Some(value(name)?),
                "exit-after-auth" => {
                    out.exit_after_auth = match inline.as_deref() {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(v) => {
                            return Err(format!("-exit-after-auth takes true or false, not `{v}`"));
                        }
                    }
                }
                "h" | "help" => out.help = true,
                other => return Err(format!("unknown flag -{other}")),
            }
        }
        Ok(out)
    }
}

/// `strongroom agent ...`.
pub fn main(args: &[String]) -> ExitCode {
    let args = match AgentArgs::parse(args) {
        Ok(a) if a.help => {
            print!("{AGENT_HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n\n{AGENT_HELP}");
            return ExitCode::from(1);
        }
    };
    let Some(path) = &args.config else {
        eprintln!("-config is required\n\n{AGENT_HELP}");
        return ExitCode::from(1);
    };
    let mut cfg = match AgentConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    cfg.exit_after_auth |= args.exit_after_auth;
    let level = match args.log_level.as_deref().unwrap_or("info") {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "info" => tracing::Level::INFO,
        "warn" | "warning" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        other => {
            eprintln!("Error: unknown log level `{other}`");
            return ExitCode::from(1);
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .try_init();
    for note in &cfg.notes {
        tracing::warn!("{note}");
    }
    // One thread: the agent waits on the network and timers, and a sidecar in every pod must
    // stay small (no idle worker threads, each with its own stack and allocator heap).
    // Commands still run on the blocking pool, which starts a thread only when one runs.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Doubling delay from 250 ms up to 30 s.
fn backoff(attempt: u32) -> Duration {
    (Duration::from_millis(250) * (1u32 << attempt.min(7))).min(Duration::from_secs(30))
}

/// Retries `op` on errors that may pass (server down, sealed, rate limited) up to
/// `num_retries` more times (negative: none).
async fn with_retries<T, F, Fut>(num_retries: i64, what: &str, mut op: F) -> strongroom::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = strongroom::Result<T>>,
{
    let mut attempt: u32 = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let transient = matches!(
                    e.code(),
                    ErrorCode::Unavailable
                        | ErrorCode::Sealed
                        | ErrorCode::QuotaExceeded
                        | ErrorCode::Upstream
                );
                if !transient || i64::from(attempt) >= num_retries {
                    return Err(e);
                }
                let wait = backoff(attempt);
                tracing::warn!("{what} failed ({e}); retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

struct Auth {
    /// When the token should be renewed (None: it does not expire).
    renew_at: Option<tokio::time::Instant>,
    renewable: bool,
}

async fn authenticate(cfg: &AgentConfig, http: &VaultHttp) -> strongroom::Result<Auth> {
    let (token, ttl, renewable) = match &cfg.method {
        Some(m) => {
            let login = with_retries(cfg.vault.num_retries, "login", || http.login(m)).await?;
            tracing::info!("authenticated to {}", http.address());
            (login.token, login.ttl, login.renewable)
        }
        None => {
            let t = std::env::var("VAULT_TOKEN")
                .or_else(|_| std::env::var("BAO_TOKEN"))
                .map_err(|_| {
                    Error::invalid_input("no auto_auth method and no VAULT_TOKEN / BAO_TOKEN")
                })?;
            let t = SecretString::from(t);
            http.set_token(t.clone());
            (t, 0, false)
        }
    };
    for sink in &cfg.sinks {
        FileTarget {
            path: sink.path.clone(),
            perms: sink.mode,
            create_dirs: true,
        }
        .write(token.expose_secret())?;
        tracing::info!("token written to sink `{}`", sink.path.display());
    }
    Ok(Auth {
        renew_at: (ttl > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(ttl) * 2 / 3),
        renewable,
    })
}

fn templates(
    cfg: &AgentConfig,
) -> strongroom::Result<Vec<(Template, FileTarget, config::TemplateStanza)>> {
    let mut out = Vec::new();
    for t in &cfg.templates {
        let (name, text) = match (&t.source, &t.contents) {
            (Some(src), _) => (
                src.display().to_string(),
                std::fs::read_to_string(src).map_err(|e| {
                    Error::invalid_input(format!("cannot read template `{}`: {e}", src.display()))
                })?,
            ),
            (None, Some(c)) => (t.destination.display().to_string(), c.clone()),
            (None, None) => {
                return Err(Error::invalid_input(
                    "a template needs `source` or `contents`",
                ));
            }
        };
        let options = TemplateOptions {
            left_delimiter: t.left_delimiter.clone(),
            right_delimiter: t.right_delimiter.clone(),
            error_on_missing_key: t.error_on_missing_key,
        };
        let template = Template::parse(&name, &text, &options)?;
        let target = FileTarget {
            path: t.destination.clone(),
            perms: t.perms,
            create_dirs: t.create_dest_dirs,
        };
        out.push((template, target, t.clone()));
    }
    Ok(out)
}

/// Runs `command` by `sh -c`, killed after `timeout`. Its output goes where the agent's goes.
async fn run_command(command: String, timeout: Duration, destination: String) {
    let outcome = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .spawn()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok::<_, std::io::Error>(Some(status));
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await;
    match outcome {
        Ok(Ok(Some(status))) if status.success() => {
            tracing::info!("command for `{destination}` ran");
        }
        Ok(Ok(Some(status))) => tracing::warn!("command for `{destination}` failed: {status}"),
        Ok(Ok(None)) => tracing::warn!("command for `{destination}` killed after {timeout:?}"),
        Ok(Err(e)) => tracing::warn!("command for `{destination}` could not run: {e}"),
        Err(e) => tracing::warn!("command for `{destination}` could not run: {e}"),
    }
}

async fn after_change(changed: &[usize], stanzas: &[config::TemplateStanza]) {
    for i in changed {
        let Some(t) = stanzas.get(*i) else { continue };
        tracing::info!("rendered `{}`", t.destination.display());
        if let Some(cmd) = &t.command {
            run_command(
                cmd.clone(),
                t.command_timeout,
                t.destination.display().to_string(),
            )
            .await;
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The agent's life: authenticate, render, and (unless one-shot) keep everything fresh.
pub async fn run(cfg: AgentConfig) -> strongroom::Result<()> {
    let http = VaultHttp::new(&cfg.vault)?;
    let parsed = templates(&cfg)?;
    let mut auth = authenticate(&cfg, &http).await?;
    if cfg.templates.is_empty() && cfg.exit_after_auth {
        return Ok(());
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = WatchOptions {
        static_secret_render_interval: cfg
            .static_secret_render_interval
            .unwrap_or(Duration::from_secs(300)),
        ..WatchOptions::default()
    };
    let mut watcher = Watcher::new(http, clock.clone(), options);
    let mut stanzas = Vec::new();
    for (template, target, stanza) in parsed {
        watcher.add(template, Some(target));
        stanzas.push(stanza);
    }
    let num_retries = cfg.vault.num_retries;
    // First render: retried like Vault Agent; a permission error may be an expired token.
    let mut attempt: u32 = 0;
    loop {
        match watcher.render_all().await {
            Ok(changed) => {
                after_change(&changed, &stanzas).await;
                break;
            }
            Err(e) if i64::from(attempt) < num_retries && e.code() != ErrorCode::InvalidInput => {
                let wait = backoff(attempt);
                tracing::warn!("rendering failed ({e}); retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                if e.code() == ErrorCode::PermissionDenied {
                    auth = authenticate(&cfg, watcher.source()).await?;
                }
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
    if cfg.exit_after_auth {
        return Ok(());
    }
    let mut failures: u32 = 0;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let now = clock.now();
        let mut wake = tokio::time::Instant::now() + Duration::from_secs(300);
        if let Some(due) = watcher.next_due() {
            let secs = (due - now).max(time::Duration::ZERO);
            wake = tokio::time::Instant::now()
                + Duration::try_from(secs).unwrap_or(Duration::from_secs(1));
        }
        if let Some(r) = auth.renew_at {
            wake = wake.min(r);
        }
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                return Ok(());
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        if auth
            .renew_at
            .is_some_and(|r| r <= tokio::time::Instant::now())
        {
            let renewed = if auth.renewable {
                watcher
                    .source()
                    .renew_self()
                    .await
                    .ok()
                    .filter(|ttl| *ttl > 0)
            } else {
                None
            };
            match renewed {
                Some(ttl) => {
                    auth.renew_at =
                        Some(tokio::time::Instant::now() + Duration::from_secs(ttl) * 2 / 3);
                }
                None => match authenticate(&cfg, watcher.source()).await {
                    Ok(a) => auth = a,
                    Err(e) => {
                        tracing::warn!("re-authentication failed ({e})");
                        auth.renew_at = Some(tokio::time::Instant::now() + backoff(failures));
                    }
                },
            }
        }
        match watcher.refresh().await {
            Ok(changed) => {
                failures = 0;
                after_change(&changed, &stanzas).await;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!("refreshing templates failed ({e}); keeping the last files");
                if e.code() == ErrorCode::PermissionDenied {
                    if let Ok(a) = authenticate(&cfg, watcher.source()).await {
                        auth = a;
                    }
                }
                if cfg.exit_on_retry_failure && i64::from(failures) > num_retries {
                    return Err(e);
                }
            }
        }
    }
}
