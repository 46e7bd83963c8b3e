//! Serving the discount gRPC service over TLS on a listener we are handed, until told to
//! stop; with gRPC health checking, server reflection and metrics.
//!
//! The TLS port serves:
//! - `ecommerce.Discount`;
//! - `grpc.health.v1.Health`, which reports SERVING for the overall server (`""`) and for
//!   `ecommerce.Discount`, and NOT_SERVING from the shutdown signal on;
//! - gRPC server reflection (v1 and v1alpha), so `grpcurl`-style tools can list and call
//!   the service without the `.proto`.
//!
//! With a [`ServerTls`] made with a client CA, the TLS port requires client certificates
//! (mutual TLS).
//! Request messages over [`Config::max_request_bytes`] (4 MiB by default, as in every
//! standard gRPC implementation) are refused with RESOURCE_EXHAUSTED before they are decoded.
//!
//! Kubernetes' built-in gRPC probes speak plaintext only, so [`Config::health_listener`] can
//! serve the health service alone, without TLS, on a port of its own. The metrics have a
//! plaintext listener of their own too ([`Config::metrics_listener`]).
//!
//! Shutdown order: health turns NOT_SERVING; the TLS server stops accepting and drains
//! (bounded by [`Config::drain_timeout`]); then the health and metrics listeners stop, so
//! probes see NOT_SERVING for the whole drain.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ecommerce::pb;
use ecommerce::pb::discount_server::DiscountServer;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;

use crate::deadline::DeadlineLayer;
use crate::dispatch::DirectLayer;
use crate::faults::{FaultFlags, Faults};
use crate::http2::{self, Http2Settings};
use crate::limits::{DEFAULT_MAX_REQUEST_BYTES, OversizeStatusLayer};
use crate::metrics::Metrics;
use crate::observe::{ObserveLayer, ObservedBody};
use crate::service::DiscountService;
use crate::tls::{self, ServerTls, TlsFiles, TlsState};

/// The name health checks use for the overall server.
const OVERALL: &str = "";

/// How long the health and metrics listeners get to finish after the TLS server stopped.
const SIDE_LISTENER_GRACE: Duration = Duration::from_secs(1);

/// What [`run`] needs besides the TLS listener and the shutdown signal.
#[derive(Debug)]
pub struct Config {
    /// The server's certificate and key and, for mutual TLS, the CA its clients'
    /// certificates must come from (a client without one, or with one from another CA, is
    /// refused in the handshake).
    pub tls: ServerTls,
    /// How long a client has to complete the TLS handshake. Without a bound, a client that
    /// connects and sends nothing holds a connection and a task forever.
    pub tls_handshake_timeout: Duration,
    /// How long in-flight calls may run after the shutdown signal before we stop anyway.
    /// tonic's own drain waits for clients to close their connections, without a bound.
    pub drain_timeout: Duration,
    /// How long to keep serving after the shutdown signal, with health at NOT_SERVING,
    /// before no longer accepting connections: time for load balancers and clients that
    /// watch health to move away. Zero by default.
    pub shutdown_delay: Duration,
    /// Where to serve `grpc.health.v1.Health` alone, in plaintext, for probes (none: off).
    pub health_listener: Option<TcpListener>,
    /// Where to serve `GET /metrics` (none: off).
    pub metrics_listener: Option<TcpListener>,
    /// The metrics to record into (and serve, with `metrics_listener`).
    pub metrics: Metrics,
    /// The largest request message decoded; larger ones get RESOURCE_EXHAUSTED.
    pub max_request_bytes: usize,
    /// The files to watch, and how often, to use new certificates without a restart
    /// (none: the identity above for the server's whole life). See [`crate::tls`].
    pub tls_reload: Option<(TlsFiles, Duration)>,
    /// Fault flags to follow ([`crate::faults`]; none: no faults, and nothing evaluated).
    pub fault_flags: Option<FaultFlags>,
}

impl Config {
    /// Defaults for everything but the TLS set: no health or metrics listener.
    pub fn new(tls: ServerTls) -> Self {
        Self {
            tls,
            tls_handshake_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            health_listener: None,
            metrics_listener: None,
            metrics: Metrics::new(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            tls_reload: None,
            fault_flags: None,
        }
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener's address could not be read.
    #[error("cannot read a listener's address")]
    Listener(#[source] std::io::Error),
    /// The reflection service could not read the embedded descriptors (a build problem).
    #[error("cannot build the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
}

/// Serves discount with TLS on `listener` until `shutdown` completes, then lets in-flight
/// calls finish for at most `config.drain_timeout` (see the module docs for the order).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let local_addr = listener.local_addr().map_err(ServeError::Listener)?;
    let tls = Arc::new(TlsState::new(&config.tls));
    let (health, health_service) = tonic_health::server::health_reporter();
    set_status(&health, ServingStatus::Serving).await;
    let (faults, follow_flags) = match config.fault_flags.clone() {
        Some(flags) => {
            let (faults, task) = Faults::start(flags, config.metrics.clone());
            (faults, Some(task))
        }
        None => (Faults::default(), None),
    };
    let service = grpc_service(&config, health_service.clone(), faults.clone())?;
    let side_listeners = SideListeners::start(
        config.health_listener,
        health_service,
        config.metrics_listener,
        &config.metrics,
    )?;

    // tonic needs the shutdown future itself; we also need to know when it fired, to turn
    // health to NOT_SERVING and start the clock on the drain.
    let stopping = Arc::new(Notify::new());
    let signal = not_serving_then(shutdown, health, config.shutdown_delay, stopping.clone());
    let reload = config
        .tls_reload
        .map(|(files, every)| tls::spawn_reload(files, &tls, every, config.metrics.tls_reload()));
    let incoming = tls::incoming(listener, tls, config.tls_handshake_timeout);
    tracing::info!(
        address = %local_addr,
        client_certificates = if config.tls.requires_client_certificates() { "required" } else { "not asked" },
        "discount gRPC server listening (TLS)"
    );

    let serve = http2::serve(incoming, service, HTTP2, signal);
    let drain_deadline = async {
        stopping.notified().await;
        tokio::time::sleep(config.drain_timeout).await;
    };
    tokio::select! {
        () = serve => {}
        () = drain_deadline => {
            tracing::warn!(
                timeout = ?config.drain_timeout,
                "connections still open after the drain timeout; stopping anyway"
            );
        }
    }
    for task in [reload, follow_flags].into_iter().flatten() {
        task.abort();
    }
    faults.stop().await;
    side_listeners.stop().await;
    tracing::info!("discount server stopped");
    Ok(())
}

/// The TLS port's HTTP/2 settings.
const HTTP2: Http2Settings = Http2Settings {
    // Finds dead peers (a catalog host that vanished) instead of keeping their streams.
    keepalive_interval: Duration::from_secs(20),
    keepalive_timeout: Duration::from_secs(10),
};

/// The TLS port's services: discount (straight to it, past the router: [`DirectLayer`]),
/// health, reflection (v1 and v1alpha), behind the observing, deadline and message-size
/// layers (outermost first).
fn grpc_service(
    config: &Config,
    health_service: HealthServer<impl Health>,
    faults: Faults,
) -> Result<
    impl tower::Service<
        http::Request<Body>,
        Response = http::Response<ObservedBody<Body>>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static,
    ServeError,
> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // v1 for current tools; v1alpha for older ones (grpcurl before 1.8.8, for instance).
    let reflection_v1 = reflection().build_v1().map_err(ServeError::Reflection)?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(ServeError::Reflection)?;
    let routes = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .prepare();
    Ok(ServiceBuilder::new()
        .layer(ObserveLayer::new(config.metrics.clone()))
        .layer(DeadlineLayer)
        .layer(OversizeStatusLayer)
        .layer(DirectLayer::new(
            DiscountServer::new(DiscountService::new(faults.clone()))
                .max_decoding_message_size(config.max_request_bytes),
            faults,
        ))
        .service(routes))
}

/// `shutdown`, then health at NOT_SERVING and, for `delay`, still serving; then
/// `stopping` is told, and the TLS server stops accepting and drains.
async fn not_serving_then(
    shutdown: impl Future<Output = ()>,
    health: HealthReporter,
    delay: Duration,
    stopping: Arc<Notify>,
) {
    shutdown.await;
    set_status(&health, ServingStatus::NotServing).await;
    if !delay.is_zero() {
        tracing::info!(
            ?delay,
            "health is NOT_SERVING; still serving for the shutdown delay"
        );
        tokio::time::sleep(delay).await;
    }
    tracing::info!("health is NOT_SERVING; draining");
    stopping.notify_one();
}

/// The plaintext health and metrics listeners, which run until the TLS server has drained.
struct SideListeners {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SideListeners {
    fn start(
        health_listener: Option<TcpListener>,
        health_service: HealthServer<impl Health>,
        metrics_listener: Option<TcpListener>,
        metrics: &Metrics,
    ) -> Result<Self, ServeError> {
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let mut tasks = Vec::new();
        if let Some(listener) = health_listener {
            let addr = listener.local_addr().map_err(ServeError::Listener)?;
            tracing::info!(address = %addr, "plaintext health listening");
            let incoming = TcpIncoming::from(listener);
            let server = Server::builder()
                .add_service(health_service)
                .serve_with_incoming_shutdown(incoming, until_stopped(stopped.clone()));
            tasks.push(tokio::spawn(async move {
                if let Err(error) = server.await {
                    tracing::error!(%error, "the plaintext health server failed");
                }
            }));
        }
        if let Some(listener) = metrics_listener {
            let addr = listener.local_addr().map_err(ServeError::Listener)?;
            tracing::info!(address = %addr, "metrics listening");
            let metrics = metrics.clone();
            tasks.push(tokio::spawn(ecommerce::metrics::server::serve(
                listener,
                move |accept: Option<&str>| metrics.encode(accept),
                until_stopped(stopped),
            )));
        }
        Ok(Self { stop, tasks })
    }

    /// A health Watch stream never ends by itself, so the plaintext health server's own
    /// graceful stop could wait forever: the listeners get a moment, then are ended.
    async fn stop(self) {
        self.stop.send_replace(true);
        for mut task in self.tasks {
            if tokio::time::timeout(SIDE_LISTENER_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

async fn set_status(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status(OVERALL, status).await;
    match status {
        ServingStatus::Serving => {
            health
                .set_serving::<DiscountServer<DiscountService>>()
                .await
        }
        _ => {
            health
                .set_not_serving::<DiscountServer<DiscountService>>()
                .await
        }
    }
}
