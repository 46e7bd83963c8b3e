//! Serving [`DiscountService`] over TLS on a listener we are handed, until told to stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ecommerce::keys::ServerIdentity;
use ecommerce::pb::discount_server::DiscountServer;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::service::DiscountService;

/// What [`run`] needs besides the listener and the shutdown signal.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server's certificate chain and key.
    pub identity: ServerIdentity,
    /// How long a client has to complete the TLS handshake. Without a bound, a client that
    /// connects and sends nothing holds a connection and a task forever.
    pub tls_handshake_timeout: Duration,
    /// How long in-flight calls may run after the shutdown signal before we stop anyway.
    /// tonic's own drain waits for clients to close their connections, without a bound.
    pub drain_timeout: Duration,
}

impl Config {
    /// Defaults for everything but the identity.
    pub fn new(identity: ServerIdentity) -> Self {
        Self {
            identity,
            tls_handshake_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// rustls rejected the certificate or key (unparsable, or a key that does not match).
    #[error("the TLS certificate or key is not usable")]
    Tls(#[source] tonic::transport::Error),
    /// The listener's address could not be read.
    #[error("cannot read the listener's address")]
    Listener(#[source] std::io::Error),
    /// The gRPC server failed while serving.
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// Serves `ecommerce.Discount` with TLS on `listener` until `shutdown` completes, then lets
/// in-flight calls finish for at most `config.drain_timeout`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let local_addr = listener.local_addr().map_err(ServeError::Listener)?;
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            &config.identity.cert_chain_pem,
            &config.identity.private_key_pem,
        ))
        .timeout(config.tls_handshake_timeout);
    let router = Server::builder()
        .tls_config(tls)
        .map_err(ServeError::Tls)?
        // A discount call is a few small frames: waiting to fill a packet only adds latency.
        .tcp_nodelay(true)
        // Finds dead peers (a catalog host that vanished) instead of keeping their streams.
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(DiscountServer::new(DiscountService));

    // tonic needs the shutdown future itself; we also need to know when it fired, to start
    // the clock on the drain.
    let stopping = Arc::new(Notify::new());
    let signal = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            stopping.notify_one();
        }
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tracing::info!(address = %local_addr, "discount gRPC server listening (TLS)");

    let serve = router.serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(serve);
    let drain_deadline = async {
        stopping.notified().await;
        tokio::time::sleep(config.drain_timeout).await;
    };
    tokio::select! {
        result = &mut serve => result.map_err(ServeError::Serve)?,
        () = drain_deadline => {
            tracing::warn!(
                timeout = ?config.drain_timeout,
                "connections still open after the drain timeout; stopping anyway"
            );
        }
    }
    tracing::info!("discount server stopped");
    Ok(())
}
