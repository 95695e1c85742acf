//! Running the server process: logging, opening the engine, the listeners, the start-up banner
//! (stdout, as `bao server` prints it), and a graceful stop on SIGINT or SIGTERM. Background
//! work (lease expiry, keyring and transit rotation, scheduled database rotations) is the
//! engine's own runner's, as for an embedded application.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use secrecy::ExposeSecret;
use strongroom::Strongroom;

use crate::config::{LogFormat, ServerConfig};
use crate::listener::{Bound, Listeners};

/// How long requests in flight may take to finish after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Start logging, build the runtime and serve until a stop signal. Returns the exit code.
pub fn run(cfg: ServerConfig) -> ExitCode {
    init_logging(cfg.log_level.as_deref().unwrap_or("info"), cfg.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(cfg))
}

fn init_logging(level: &str, format: LogFormat) {
    let level = match level {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "warn" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    // Only fails when a subscriber is already installed (never in the binary).
    let _ = match format {
        // One JSON object per line: {"timestamp", "level", "fields": {"message", ...}}.
        LogFormat::Json => tracing::subscriber::set_global_default(
            builder.json().with_ansi(false).flatten_event(true).finish(),
        ),
        LogFormat::Standard => tracing::subscriber::set_global_default(
            builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .finish(),
        ),
    };
}

async fn serve(cfg: ServerConfig) -> ExitCode {
    for note in &cfg.notes {
        tracing::info!("{note}");
    }
    let sr = match Strongroom::open(cfg.engine_config()).await {
        Ok(sr) => sr,
        Err(e) => {
            eprintln!("Error opening {} storage: {e}", cfg.storage.kind());
            return ExitCode::from(1);
        }
    };
    let listeners = match Listeners::start(&sr, &cfg.listeners).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    // Registered before the banner: whoever waits for it may signal right after.
    let hangup = tokio::spawn(on_hangup(sr.clone(), listeners.tls_reloader()));
    let stop = stop_signal();
    let initialized = sr.is_initialized().await.unwrap_or(false);
    // `sys/ha-status` names this node by the address the banner shows.
    sr.advertise(
        &api_address(&cfg, listeners.bound()),
        cfg.cluster_addr.as_deref().unwrap_or_default(),
    );
    print!("{}", banner(&cfg, listeners.bound(), &sr, initialized));
    if !initialized {
        tracing::info!("storage is not initialised: PUT /v1/sys/init, then PUT /v1/sys/unseal");
    } else if sr.is_sealed() {
        tracing::info!("storage is sealed: PUT /v1/sys/unseal with the unseal key shares");
    }

    stop.await;
    tracing::info!("shutdown triggered: no new connections, draining requests in flight");
    let control = listeners.control();
    tokio::select! {
        () = listeners.shutdown(SHUTDOWN_GRACE) => {}
        () = stop_signal() => {
            tracing::warn!("second stop signal: closing every connection now");
            control.shutdown();
        }
    }
    hangup.abort();
    // The engine's background runner stops, the leader lock is handed back (another server on
    // the same store takes over at once) and best-effort audit lines still queued go out.
    if let Err(e) = sr.shutdown().await {
        tracing::warn!(error = %e.message(), "engine shutdown was not clean");
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The address clients use: `api_addr`, else the first listener's.
fn api_address(cfg: &ServerConfig, bound: &[Bound]) -> String {
    cfg.api_addr
        .clone()
        .or_else(|| bound.first().map(Bound::url))
        .unwrap_or_default()
}

/// The start-up text, like `bao server`'s: the configuration, and in dev mode the address,
/// the unseal key and the root token.
pub fn banner(cfg: &ServerConfig, bound: &[Bound], sr: &Strongroom, initialized: bool) -> String {
    let api_addr = api_address(cfg, bound);
    let mut out = String::from("==> Strongroom server configuration:\n\n");
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(out, "{k:>24}: {v}");
    };
    line("Api Address", &api_addr);
    for (i, b) in bound.iter().enumerate() {
        let limit = b
            .max_request_size
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unlimited".into());
        let tls = if b.tls { "enabled" } else { "disabled" };
        line(
            &format!("Listener {}", i + 1),
            &format!(
                "tcp (addr: \"{}\", max_request_size: \"{limit}\", tls: \"{tls}\")",
                b.addr
            ),
        );
    }
    line("Log Level", cfg.log_level.as_deref().unwrap_or("info"));
    // As `bao server` prints it: `postgresql (HA available)` or `(HA disabled)`.
    let storage = match &cfg.storage {
        crate::config::StorageChoice::Postgres(pg) if cfg.dev.is_none() => format!(
            "postgresql (HA {})",
            if pg.ha_enabled {
                "available"
            } else {
                "disabled"
            }
        ),
        other => other.kind().to_string(),
    };
    line("Storage", &storage);
    line(
        "Seal",
        if !initialized {
            "not initialised"
        } else if sr.is_sealed() {
            "sealed"
        } else {
            "unsealed"
        },
    );
    line("Version", &crate::cli::version());
    out.push_str("\n==> Strongroom server started! Log data will stream in below:\n\n");
    if cfg.dev.is_some() {
        let _ = write!(
            out,
            "WARNING! dev mode is enabled! In this mode, Strongroom runs entirely in-memory\n\
             and starts unsealed with a single unseal key.\n\n\
             You may need to set the following environment variables:\n\n    \
             $ export BAO_ADDR='{api_addr}'\n    \
             $ export VAULT_ADDR='{api_addr}'\n\n\
             The unseal key and root token are displayed below in case you want to\n\
             seal/unseal the server or re-authenticate.\n\n\
             Unseal Key: {}\n\
             Root Token: {}\n\n\
             Development mode should NOT be used in production installations!\n\n",
            // The operator asked for dev mode: printing these is the point.
            sr.dev_unseal_key().unwrap_or_default().expose_secret(),
            sr.dev_root_token().unwrap_or_default().expose_secret(),
        );
    }
    out
}

/// SIGHUP, as in Vault: reload the TLS listeners' certificates from their files (a renewed
/// certificate is served to new connections without a restart; a file that cannot be loaded
/// leaves the old certificate in place and is logged) and reopen the audit files (log
/// rotation). The rest of the configuration is not reloaded. The handler is installed when
/// this is called; the returned future only reports.
fn on_hangup(
    sr: Strongroom,
    tls: crate::listener::TlsReloader,
) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut hup) = hup {
            while hup.recv().await.is_some() {
                sr.reopen_audit();
                let errors = tls.reload().await;
                for e in &errors {
                    tracing::error!("SIGHUP: {e}");
                }
                tracing::info!(
                    tls_listeners = tls.len(),
                    tls_reloaded = tls.len() - errors.len(),
                    "SIGHUP received: audit files reopened, TLS certificates reloaded; other settings need a restart"
                );
            }
        }
        #[cfg(not(unix))]
        let _ = (sr, tls);
    }
}

/// SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called, so a signal
/// that arrives before the returned future is first polled still counts (a supervisor may
/// stop the server right after the banner).
pub(crate) fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            (_, Err(e)) | (Err(e), _) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
