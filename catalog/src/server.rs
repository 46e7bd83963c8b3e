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

use crate::data::Catalog;
use crate::discounts::{DiscountClient, MAX_CALLS_IN_FLIGHT};
use crate::metrics::Metrics;
use crate::overload::admission::{Admission, AdmissionSettings};
use crate::routes::{self, App};
use crate::tls_reload::{self, TlsFiles};

/// What [`run`] needs besides the listener and the shutdown signal.
#[derive(Debug)]
pub struct Config {
    /// The products and customers to serve.
    pub catalog: Catalog,
    /// The discount service, already configured.
    pub discounts: DiscountClient,
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
    /// those read at start, for good). See [`crate::tls_reload`].
    pub tls_reload: Option<(TlsFiles, Duration)>,
}

impl Config {
    /// Defaults for the timeouts.
    pub fn new(catalog: Catalog, discounts: DiscountClient) -> Self {
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
        tls_reload::spawn(
            files,
            config.discounts.clone(),
            every,
            config.metrics.clone(),
        )
    });
    let app = Arc::new(App {
        catalog: config.catalog,
        discounts: config.discounts,
        metrics: config.metrics,
        admission,
        draining: AtomicBool::new(false),
    });
    let shutdown = {
        let app = app.clone();
        async move {
            shutdown.await;
            app.draining.store(true, Ordering::Relaxed);
            if !config.shutdown_delay.is_zero() {
                tracing::info!(delay = ?config.shutdown_delay, "not ready; still serving for the shutdown delay");
                tokio::time::sleep(config.shutdown_delay).await;
            }
        }
    };

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(256);

    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let header_read_timeout = config.header_read_timeout;
    tracing::info!(
        address = %local_addr,
        products = app.catalog.products().len(),
        "catalog HTTP server listening"
    );
    tokio::pin!(shutdown);
    loop {
        // A free connection slot first, then a connection: at the limit, accepting pauses.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break }; // the semaphore is never closed
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Typically EMFILE: out of file descriptors. Accepting again at once would
                // spin; a short pause lets connections close.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Responses are one write each; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            // hyper's header timeout starts with the first byte: a client that connects
            // and sends nothing would hold its connection forever. `peek` waits for real
            // data (or the end); `readable` may report readiness without any.
            let mut first_byte = [0u8; 1];
            let peeked = tokio::time::timeout(header_read_timeout, stream.peek(&mut first_byte));
            if !matches!(peeked.await, Ok(Ok(1..))) {
                tracing::debug!(%peer, "closing a connection that sent nothing");
                return;
            }
            let service = service_fn(move |request| routes::handle(app.clone(), request));
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                // Clients that go away, header timeouts, malformed requests: routine.
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!(
                timeout = ?config.drain_timeout,
                "requests still running after the drain timeout; stopping anyway"
            );
        }
    }
    if let Some(reload) = reload {
        reload.abort();
    }
    tracing::info!("catalog server stopped");
    Ok(())
}
