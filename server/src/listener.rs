//! Binding the configured listeners (plain TCP or TLS with rustls), serving the API on each,
//! and stopping them together.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::{Control, Handle};
use strongroom::Strongroom;
use tokio::task::JoinHandle;

use crate::config::ListenerConfig;
use crate::http;
use crate::metrics::Metrics;

/// A listener that is accepting connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The address it is bound to (the real port when the config said `:0`).
    pub addr: SocketAddr,
    /// Whether it speaks TLS.
    pub tls: bool,
    /// Its request body limit (`None` = no limit).
    pub max_request_size: Option<usize>,
}

impl Bound {
    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

/// A listener that could not be started.
#[derive(Debug)]
pub struct ListenError {
    /// The configured address.
    pub address: String,
    /// What went wrong.
    pub source: io::Error,
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error initializing listener of type tcp at `{}`: {}",
            self.address, self.source
        )
    }
}

impl std::error::Error for ListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The running HTTP side of the server: every listener, stopped together.
pub struct Listeners {
    bound: Vec<Bound>,
    metrics: Arc<Metrics>,
    control: Control,
    tasks: Vec<JoinHandle<io::Result<()>>>,
    tls: TlsReloader,
}

/// The TLS listeners' certificates, reloadable from their files while serving (SIGHUP).
#[derive(Clone, Default)]
pub struct TlsReloader {
    configs: Vec<(RustlsConfig, std::path::PathBuf, std::path::PathBuf)>,
}

impl TlsReloader {
    /// Read every TLS listener's certificate and key files again; new connections get the new
    /// certificate, open ones keep theirs. A listener whose files cannot be loaded keeps its
    /// current certificate, and its error is returned (as Vault: the reload fails, the server
    /// goes on).
    pub async fn reload(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for (cfg, cert, key) in &self.configs {
            if let Err(e) = cfg.reload_from_pem_file(cert, key).await {
                errors.push(format!(
                    "cannot reload TLS certificate `{}` and key `{}`: {e}",
                    cert.display(),
                    key.display()
                ));
            }
        }
        errors
    }

    /// How many TLS listeners there are.
    pub fn len(&self) -> usize {
        self.configs.len()
    }

    /// Whether there is no TLS listener.
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }
}

/// How long a connection may take to send a request's headers, new or kept alive. Go has a
/// header timeout (`http_read_header_timeout`) and a separate idle timeout
/// (`http_idle_timeout`); hyper runs one timer for both (it starts when the connection waits
/// for a request head), so the shorter one is used: an idle keep-alive connection is closed
/// after `http_read_header_timeout` (10 s) rather than OpenBao's 5 min, and clients reconnect.
/// The first request also gets it before the protocol is known (a client that sends nothing).
fn head_timeout(t: &crate::config::HttpTimeouts) -> Option<Duration> {
    match (t.effective_read_header(), t.effective_idle()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `http_write_timeout` on every accepted connection: a write the client does not take for that
/// long fails, and hyper closes the connection. Go's `WriteTimeout` is one deadline for the
/// whole response; this bounds each stall instead (a client reading slowly but steadily is
/// served), which is what stops a client from holding a connection by not reading.
#[derive(Debug, Clone, Copy)]
struct WriteLimit(Option<Duration>);

impl<I, S> Accept<I, S> for WriteLimit {
    type Stream = WriteTimed<I>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(WriteTimed<I>, S)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        std::future::ready(Ok((
            WriteTimed {
                io: stream,
                limit: self.0,
                stalled: None,
            },
            service,
        )))
    }
}

/// A connection whose writes fail after stalling for `limit` (see [`WriteLimit`]).
struct WriteTimed<I> {
    io: I,
    limit: Option<Duration>,
    /// Running while a write is pending; reset by any progress.
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<I> WriteTimed<I> {
    /// Pass a write's outcome on, failing it when it has been pending for too long.
    fn watch<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        outcome: std::task::Poll<io::Result<T>>,
    ) -> std::task::Poll<io::Result<T>> {
        use std::future::Future as _;
        use std::task::Poll;
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "http_write_timeout: the client stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteTimed<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteTimed<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let outcome = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        let outcome = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let outcome = std::pin::Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, outcome)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let outcome = std::pin::Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, outcome)
    }
}

impl Listeners {
    /// Bind every listener (all or none: a failure stops the ones already started) and start
    /// serving `sr` on them.
    pub async fn start(
        sr: &Strongroom,
        configs: &[ListenerConfig],
    ) -> Result<Listeners, ListenError> {
        let mut running = Listeners {
            bound: Vec::new(),
            metrics: Arc::new(Metrics::new()),
            control: Control::new(),
            tasks: Vec::new(),
            tls: TlsReloader::default(),
        };
        for cfg in configs {
            if let Err(e) = running.start_one(sr, cfg).await {
                running.stop_now().await;
                return Err(e);
            }
        }
        Ok(running)
    }

    async fn start_one(
        &mut self,
        sr: &Strongroom,
        cfg: &ListenerConfig,
    ) -> Result<(), ListenError> {
        let err = |source: io::Error| ListenError {
            address: cfg.address.clone(),
            source,
        };
        let std_listener = std::net::TcpListener::bind(cfg.address.as_str()).map_err(err)?;
        let addr = std_listener.local_addr().map_err(err)?;
        let app = http::router_with(
            sr.clone(),
            http::ApiOptions {
                max_request_size: cfg.max_request_size,
                max_request_duration: cfg.max_request_duration,
                max_concurrent_requests: cfg.max_concurrent_requests,
                unauthenticated_metrics_access: cfg.unauthenticated_metrics_access,
                json_limits: http::JsonLimits {
                    memory: cfg.max_request_json_memory,
                    strings: cfg.max_request_json_strings,
                },
                read_timeout: cfg.timeouts.effective_read(),
                local_addr: Some(addr),
                metrics: self.metrics.clone(),
            },
        )
        .into_make_service_with_connect_info::<SocketAddr>();
        let handle: Handle<SocketAddr> = Handle::with_control(self.control.clone());
        let head_timeout = head_timeout(&cfg.timeouts);
        let write_limit = WriteLimit(cfg.timeouts.effective_write());
        let task = match &cfg.tls {
            None => {
                // HTTP/1 only, as OpenBao's plain listener (Go serves no h2c): the header and
                // idle timeouts are HTTP/1's, and an h2c connection would escape them.
                let mut server = axum_server::from_tcp(std_listener)
                    .map_err(err)?
                    .acceptor(write_limit)
                    .handle(handle)
                    .http1_only()
                    .first_request_timeout(head_timeout);
                server
                    .http_builder()
                    .http1()
                    .header_read_timeout(head_timeout);
                tokio::spawn(server.serve(app))
            }
            Some(tls) => {
                let rustls = RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file)
                    .await
                    .map_err(|e| {
                        err(io::Error::new(
                            e.kind(),
                            format!(
                                "cannot load TLS certificate `{}` and key `{}`: {e}",
                                tls.cert_file.display(),
                                tls.key_file.display()
                            ),
                        ))
                    })?;
                self.tls.configs.push((
                    rustls.clone(),
                    tls.cert_file.clone(),
                    tls.key_file.clone(),
                ));
                let mut server = axum_server::from_tcp(std_listener)
                    .map_err(err)?
                    .acceptor(RustlsAcceptor::new(rustls).acceptor(write_limit))
                    .handle(handle)
                    .first_request_timeout(head_timeout);
                server
                    .http_builder()
                    .http1()
                    .header_read_timeout(head_timeout);
                tokio::spawn(server.serve(app))
            }
        };
        self.tasks.push(task);
        self.bound.push(Bound {
            addr,
            tls: cfg.tls.is_some(),
            max_request_size: cfg.max_request_size,
        });
        Ok(())
    }

    /// What reloads the TLS listeners' certificates (SIGHUP).
    pub fn tls_reloader(&self) -> TlsReloader {
        self.tls.clone()
    }

    /// The request metrics every listener records into.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The bound listeners, in config order.
    pub fn bound(&self) -> &[Bound] {
        &self.bound
    }

    /// Stop accepting, let requests in flight finish for up to `grace`, then close everything.
    pub async fn shutdown(self, grace: Duration) {
        self.control.graceful_shutdown(Some(grace));
        self.join().await;
    }

    /// Close every connection now.
    pub async fn stop_now(self) {
        self.control.shutdown();
        self.join().await;
    }

    /// A handle that can stop the listeners from elsewhere (a second signal).
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    async fn join(self) {
        for task in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "listener stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "listener task failed"),
            }
        }
    }
}
