//! The TLS port's connections, each served by hyper's HTTP/2 server, until shutdown; then
//! a graceful end (GOAWAY, in-flight calls finish).
//!
//! tonic's `Server`, which serves the plaintext health port, served this port too. Around
//! every connection it put `hyper_util`'s `auto` connection, which reads the first bytes to
//! tell HTTP/1 from HTTP/2 (this port speaks HTTP/2 only: TLS's ALPN settled it); around
//! every call, a boxed clone of the whole service stack, the connection's details copied
//! into the request's extensions (nothing here reads them), its error recovery and its
//! deadline layer. About 8% of the instructions discount spent on a call
//! (BENCHMARKS.md, "Fewer instructions per request"). Here each connection is hyper's
//! HTTP/2 connection with the settings tonic gave it, and each call goes to the service
//! stack, which reads its deadline itself ([`crate::deadline`]).
//!
//! Differences from tonic's settings, each deliberate: no `date` header on every answer
//! (gRPC has no use for it, and a value new every second churns HPACK's table), and
//! hyper's default cap on streams a client makes the server reset (tonic lifted it).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use ecommerce::runtime::BoxingExecutor;
use hyper::body::Incoming;
use hyper::server::conn::http2::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tonic::body::Body;
use tower::Service;

/// HTTP/2 settings of the TLS port's connections.
#[derive(Debug, Clone, Copy)]
pub struct Http2Settings {
    /// How long a connection may be silent before the server pings it.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
}

/// Serves each connection of `incoming` with `service` until `shutdown` completes; then
/// stops accepting (dropping `incoming`, which stops the accept loop and closes the
/// port), asks every connection to end gracefully, and waits for them all.
pub async fn serve<S, B>(
    incoming: impl tokio_stream::Stream<Item = io::Result<TlsStream<TcpStream>>>,
    service: S,
    settings: Http2Settings,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = Builder::new(BoxingExecutor);
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout)
        // As tonic: no cap of our own on a connection's concurrent calls.
        .max_concurrent_streams(None)
        .auto_date_header(false);
    let graceful = GracefulShutdown::new();
    {
        let mut incoming = std::pin::pin!(incoming);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => break,
                stream = incoming.next() => match stream {
                    Some(Ok(stream)) => stream,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "a connection could not be accepted");
                        continue;
                    }
                    // The accept loop ended: nothing more will come.
                    None => break,
                },
            };
            let connection = builder.serve_connection(
                TokioIo::new(stream),
                Calls {
                    service: service.clone(),
                },
            );
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
    }
    graceful.shutdown().await;
}

/// The service stack as hyper calls it: a clone of the stack per call, made ready, then
/// called (tower's contract), with hyper's body as tonic's.
#[derive(Debug, Clone)]
struct Calls<S> {
    service: S,
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for Calls<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible> + Clone,
{
    type Response = http::Response<B>;
    type Error = Infallible;
    type Future = tower::util::Oneshot<S, http::Request<Body>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        tower::util::Oneshot::new(self.service.clone(), request.map(Body::new))
    }
}
