//! The catalog's HTTP server: accepts connections on a listener we are handed, serves
//! HTTP/1.1 and HTTP/2 (h2c) with hyper, and drains on shutdown.
//!
//! Against clients that hold resources without using them: at most
//! [`Config::max_connections`] connections at once; a connection must send its first byte,
//! and then each request's headers, within [`Config::header_read_timeout`]; request heads
//! over 16 KiB get 431.
//!
//! Against more work than it can do: priced requests go through admission control
//! ([`crate::overload::admission`], settings in [`Config::admission`]). The connection limit
//! bounds what comes before it (accepting, parsing, answering 503), since each connection
//! holds at most one request (HTTP/1.1) or 256 streams (HTTP/2) at a time; the admission
//! queue's own bound sheds at once what is past it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use ecommerce::listener;

use crate::app::App;
use crate::data::Catalog;
use crate::discounts::{Discounts, MAX_CALLS_IN_FLIGHT};
use crate::listing::Listing;
use crate::metrics::Metrics;
use crate::overload::admission::{Admission, AdmissionSettings};
use crate::routes;
use crate::tls::{self, TlsFiles};

/// What [`run`] needs besides the listener and the shutdown signal.
#[derive(Debug)]
pub struct Config {
    /// The products and customers to serve.
    pub catalog: Catalog,
    /// The discount service, already configured.
    pub discounts: Discounts,
    /// How long a client may take to send a request's headers, and, on a new connection,
    /// its first byte. hyper applies the first only when it has a timer, which [`run`] gives
    /// it, and starts it at the first byte; [`run`] times the wait for that byte itself.
    /// Without both, a client that trickles headers (slowloris) or sends nothing holds a
    /// connection forever.
    pub header_read_timeout: Duration,
    /// How long in-flight requests may run after the shutdown signal.
    pub drain_timeout: Duration,
    /// The most connections served at once. Past it, accepting pauses: new connections
    /// wait in the kernel's queue until one closes, instead of exhausting file descriptors.
    pub max_connections: usize,
    /// How long to keep serving after the shutdown signal, with `/readyz` at 503, before
    /// no longer accepting connections: time for a load balancer (Kubernetes endpoints) to
    /// stop sending new requests. Zero by default.
    pub shutdown_delay: Duration,
    /// What to count and measure.
    pub metrics: Metrics,
    /// How many priced requests run at once, and how long others wait.
    pub admission: AdmissionSettings,
    /// The TLS files to watch, and how often, to use new ones without a restart (none:
    /// those read at start, for good). See [`crate::tls`].
    pub tls_reload: Option<(TlsFiles, Duration)>,
}

impl Config {
    /// Defaults for the timeouts.
    pub fn new(catalog: Catalog, discounts: Discounts) -> Self {
        Self {
            catalog,
            discounts,
            header_read_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            shutdown_delay: Duration::ZERO,
            metrics: Metrics::new(),
            admission: AdmissionSettings::default(),
            tls_reload: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener's address could not be read.
    #[error("cannot read the listener's address")]
    Listener(#[source] std::io::Error),
}

/// Largest request head (request line and headers) accepted over HTTP/1.1; larger gets
/// `431 Request Header Fields Too Large`. hyper-util's auto builder exposes only the read
/// buffer size for this, whose minimum is 8 KiB.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Serves the catalog on `listener` until `shutdown` completes, then lets in-flight requests
/// finish for at most `config.drain_timeout`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let local_addr = listener.local_addr().map_err(ServeError::Listener)?;
    let weight = config.catalog.products().len().min(MAX_CALLS_IN_FLIGHT);
    let admission = Admission::new(config.admission, weight, config.discounts.local_load());
    let reload = config.tls_reload.map(|(files, every)| {
        tls::spawn_reload(
            files,
            config.discounts.clone(),
            every,
            config.metrics.tls_reload(),
        )
    });
    let app = Arc::new(App {
        listing: Listing::new(config.catalog.products()),
        catalog: config.catalog,
        discounts: config.discounts,
        metrics: config.metrics,
        admission,
        draining: AtomicBool::new(false),
    });
    let shutdown = unready_then(shutdown, app.clone(), config.shutdown_delay);
    tracing::info!(
        address = %local_addr,
        products = app.catalog.products().len(),
        "catalog HTTP server listening"
    );
    let graceful = GracefulShutdown::new();
    let connections = Connections {
        http: Arc::new(http_builder(config.header_read_timeout)),
        slots: Arc::new(Semaphore::new(config.max_connections)),
        first_byte_timeout: config.header_read_timeout,
    };
    connections
        .accept_until(&listener, &app, &graceful, shutdown)
        .await;
    drop(listener);
    drain(graceful, config.drain_timeout).await;
    if let Some(reload) = reload {
        reload.abort();
    }
    tracing::info!("catalog server stopped");
    Ok(())
}

/// `shutdown`, then `/readyz` at 503 and, for `delay`, still serving: time for a load
/// balancer to stop sending new requests.
async fn unready_then(shutdown: impl Future<Output = ()>, app: Arc<App>, delay: Duration) {
    shutdown.await;
    app.draining.store(true, Ordering::Relaxed);
    if !delay.is_zero() {
        tracing::info!(?delay, "not ready; still serving for the shutdown delay");
        tokio::time::sleep(delay).await;
    }
}

/// hyper's HTTP/1.1 and HTTP/2 settings: header timeouts (with the timer hyper needs to
/// apply them), header size limits, and the HTTP/2 stream limit.
fn http_builder(header_read_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(256);
    builder
}

/// How connections are taken and served.
struct Connections {
    http: Arc<auto::Builder<TokioExecutor>>,
    /// One permit per connection served.
    slots: Arc<Semaphore>,
    /// How long a new connection may take to send its first byte.
    first_byte_timeout: Duration,
}

impl Connections {
    /// Accepts and serves connections until `shutdown` completes.
    async fn accept_until(
        &self,
        listener: &TcpListener,
        app: &Arc<App>,
        graceful: &GracefulShutdown,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            // A free connection slot first, then a connection: at the limit, accepting pauses.
            let permit = tokio::select! {
                permit = self.slots.clone().acquire_owned() => permit,
                () = &mut shutdown => return,
            };
            let Ok(permit) = permit else { return }; // the semaphore is never closed
            let (stream, peer) = tokio::select! {
                accepted = listener::accept(listener) => accepted,
                () = &mut shutdown => return,
            };
            let app = app.clone();
            let http = self.http.clone();
            let watcher = graceful.watcher();
            let first_byte_timeout = self.first_byte_timeout;
            tokio::spawn(async move {
                let _permit = permit;
                // hyper's header timeout starts with the first byte: a client that connects
                // and sends nothing would hold its connection forever. `peek` waits for real
                // data (or the end); `readable` may report readiness without any.
                let mut first_byte = [0u8; 1];
                let peeked = tokio::time::timeout(first_byte_timeout, stream.peek(&mut first_byte));
                if !matches!(peeked.await, Ok(Ok(1..))) {
                    tracing::debug!(%peer, "closing a connection that sent nothing");
                    return;
                }
                let service = service_fn(move |request| routes::handle(app.clone(), request));
                let connection = http.serve_connection(TokioIo::new(stream), service);
                if let Err(error) = watcher.watch(connection).await {
                    // Clients that go away, header timeouts, malformed requests: routine.
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
        }
    }
}

/// Lets the requests in flight finish, for at most `timeout`.
async fn drain(graceful: GracefulShutdown, timeout: Duration) {
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(timeout) => {
            tracing::warn!(
                ?timeout,
                "requests still running after the drain timeout; stopping anyway"
            );
        }
    }
}
