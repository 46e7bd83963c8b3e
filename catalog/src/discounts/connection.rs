//! A replica's connection: one HTTP/2 connection over TLS, made when first needed, shared
//! by the replica's calls and health checks, and made anew once it has closed.
//!
//! **Why not tonic's `Channel`.** A `Channel` puts a `tower::buffer` in front of its
//! connection: every call is a message to a worker task and an answer back by oneshot, and
//! then goes through tonic's layers (origin, user agent, a deadline timer of its own, which
//! the attempt already has). That was about 6% of the catalog's instructions per request
//! (BENCHMARKS.md, "Fewer instructions per request"). A [`ReplicaChannel`] hands each call
//! straight to hyper's HTTP/2 `SendRequest`, and tonic's generated clients take it as they
//! take a `Channel` (it is a tower `Service` of HTTP requests).
//!
//! What the `Channel` did and this keeps:
//! - connecting lazily, on the first call or health check, within a connect timeout; calls
//!   that arrive meanwhile wait for the same attempt ([`State::Connecting`]);
//! - TLS checked against the replica's host **name** (not its IP), ALPN `h2` required, the
//!   client certificate presented for mutual TLS ([`TlsMaterial`]);
//! - TCP without Nagle's delay, TCP keepalive, and HTTP/2 keepalive that standard servers
//!   accept (see [`super::replica`]);
//! - a connection that closed (GOAWAY, reset, keepalive timeout) is replaced on the next
//!   call; one that is presumed dead is dropped by [`super::replica::Replica::reconnect`];
//! - the same gRPC codes: a failure to connect is `UNAVAILABLE` with its cause as the
//!   status's source; hyper's errors go through tonic's own mapping, as before.
//!
//! Requests carry a `user-agent` naming the catalog (`catalog/VERSION`), as the gRPC
//! specification suggests; tonic's was `tonic/VERSION`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use ecommerce::ALPN_H2;
use ecommerce::keys::PemIdentity;
use ecommerce::runtime::BoxingExecutor;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http::header::USER_AGENT;
use http::{HeaderValue, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, InvalidDnsNameError, PrivateKeyDer, ServerName};
use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::body::Body;

/// What calls send as `user-agent`.
const USER_AGENT_VALUE: &str = concat!("catalog/", env!("CARGO_PKG_VERSION"));

/// HTTP/2 keepalive: a ping after this long without a frame, never while idle (see
/// [`super::replica`] for why five minutes).
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(300);
/// How long a keepalive ping may go unanswered before the connection is closed.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive, which watches idle connections: first probe after 30 s of silence, then
/// every 5 s, three unanswered probes and the kernel closes the connection.
const TCP_KEEPALIVE: (Duration, Duration, u32) =
    (Duration::from_secs(30), Duration::from_secs(5), 3);

/// A call's error, as tonic's generated clients take it: a [`tonic::Status`], or hyper's
/// error for tonic to map to one.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the TLS files cannot make a client configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsMaterialError {
    /// A PEM block cannot be read.
    #[error("cannot read {what} (PEM)")]
    Pem {
        /// Which part: the CA certificates, the client certificate, its key.
        what: &'static str,
        /// The parser's reason.
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused them.
    #[error("cannot use {what}")]
    Rustls {
        /// Which part.
        what: &'static str,
        /// rustls's reason.
        source: rustls::Error,
    },
}

/// The TLS client configuration every replica's connection is made with: the CAs that
/// discount servers must chain to and, for mutual TLS, the client certificate. Checked when
/// made, so that every connection made with it can be.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    config: Arc<ClientConfig>,
}

impl TlsMaterial {
    /// The configuration that trusts the CAs in `trust_roots_pem`, presenting
    /// `client_identity` if given, over rustls's ring provider, offering HTTP/2 only.
    pub fn new(
        trust_roots_pem: &[u8],
        client_identity: Option<&PemIdentity>,
    ) -> Result<Self, TlsMaterialError> {
        let pem = |what| move |source| TlsMaterialError::Pem { what, source };
        let rustls = |what| move |source| TlsMaterialError::Rustls { what, source };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(trust_roots_pem) {
            roots
                .add(cert.map_err(pem("the CA certificates"))?)
                .map_err(rustls("the CA certificates"))?;
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(rustls("the protocol versions"))?
                .with_root_certificates(roots);
        let mut config = match client_identity {
            Some(identity) => {
                let chain = CertificateDer::pem_slice_iter(&identity.cert_chain_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(pem("the client certificate"))?;
                let key = PrivateKeyDer::from_pem_slice(&identity.private_key_pem)
                    .map_err(pem("the client key"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(rustls("the client certificate and key"))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Not connected within the connect timeout.
    #[error("no connection within {0:?}")]
    TimedOut(Duration),
    /// TCP refused, unreachable, reset.
    #[error("tcp connect error")]
    Tcp(#[source] std::io::Error),
    /// The TLS handshake failed (a certificate not from our CA, not for the name, …).
    #[error("tls handshake error")]
    Tls(#[source] std::io::Error),
    /// The server did not agree to HTTP/2 in the handshake (ALPN).
    #[error("the server did not agree to HTTP/2 (ALPN)")]
    NoHttp2,
    /// HTTP/2's own handshake failed.
    #[error("http2 handshake error")]
    Http2(#[source] hyper::Error),
}

/// Why a replica's name or address cannot be connected to.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The name cannot be checked against a certificate.
    #[error("the name cannot be a TLS server name")]
    ServerName(#[from] InvalidDnsNameError),
    /// The address cannot be a URI's authority (never seen: a socket address always is).
    #[error("the address cannot be a URI's authority")]
    Origin(#[from] http::Error),
}

/// How to connect to one replica.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    addr: SocketAddr,
    /// `https://ADDR`, where calls go (`:scheme` and `:authority`), as tonic's `Channel`
    /// sent them.
    origin: Uri,
    server_name: ServerName<'static>,
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

impl Connector {
    /// Connects to `addr`, whose certificate must name `host`, with `tls`, within
    /// `timeout`.
    pub(crate) fn new(
        tls: &TlsMaterial,
        host: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Self, ConnectorError> {
        Ok(Self {
            addr,
            origin: Uri::builder()
                .scheme("https")
                .authority(addr.to_string())
                .path_and_query("/")
                .build()?,
            server_name: ServerName::try_from(host.to_owned())?,
            tls: tls.config.clone(),
            timeout,
        })
    }

    /// The same, with `tls` for new connections.
    pub(crate) fn with_tls(&self, tls: &TlsMaterial) -> Self {
        Self {
            tls: tls.config.clone(),
            ..self.clone()
        }
    }

    /// Whether new connections use `tls`.
    #[cfg(test)]
    pub(crate) fn uses(&self, tls: &TlsMaterial) -> bool {
        Arc::ptr_eq(&self.tls, &tls.config)
    }

    /// Where calls go: `https://ADDR`.
    pub(crate) fn origin(&self) -> &Uri {
        &self.origin
    }

    async fn connect(&self) -> Result<SendRequest<Body>, ConnectError> {
        tokio::time::timeout(self.timeout, self.connect_now())
            .await
            .map_err(|_elapsed| ConnectError::TimedOut(self.timeout))?
    }

    async fn connect_now(&self) -> Result<SendRequest<Body>, ConnectError> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(ConnectError::Tcp)?;
        // Calls are a few small frames: waiting to fill a packet only adds latency.
        tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
        let (time, interval, retries) = TCP_KEEPALIVE;
        let keepalive = TcpKeepalive::new()
            .with_time(time)
            .with_interval(interval)
            .with_retries(retries);
        SockRef::from(&tcp)
            .set_tcp_keepalive(&keepalive)
            .map_err(ConnectError::Tcp)?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(ConnectError::Tls)?;
        if tls.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
            return Err(ConnectError::NoHttp2);
        }
        let (send, connection) = Builder::new(BoxingExecutor)
            .timer(TokioTimer::new())
            .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(false)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(ConnectError::Http2)?;
        let addr = self.addr;
        // Ends when the server closes the connection or, once every `SendRequest` is
        // dropped (a new connection replaced this one), after its last call.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%addr, %error, "discount connection ended");
            }
        });
        Ok(send)
    }
}

/// A connection being made, awaited by every call that needs it.
type Connecting = Shared<BoxFuture<'static, Result<SendRequest<Body>, Arc<ConnectError>>>>;

/// Where a [`ReplicaChannel`]'s connection is.
enum State {
    /// None yet, or the last attempt failed: the next call connects.
    Idle,
    /// Being made.
    Connecting(Connecting),
    /// Made; replaced by a new one once closed.
    Ready(SendRequest<Body>),
}

struct Inner {
    connector: Connector,
    state: Mutex<State>,
}

/// One replica's connection, made when first needed; clones share it. tonic's generated
/// clients (`DiscountClient`, `HealthClient`) take it as they take a `Channel`.
#[derive(Clone)]
pub(crate) struct ReplicaChannel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ReplicaChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaChannel")
            .field("addr", &self.inner.connector.addr)
            .finish_non_exhaustive()
    }
}

impl ReplicaChannel {
    /// A channel that connects with `connector` when first called.
    pub(crate) fn lazy(connector: Connector) -> Self {
        Self {
            inner: Arc::new(Inner {
                connector,
                state: Mutex::new(State::Idle),
            }),
        }
    }
}

impl Inner {
    /// The connection's sender: the one made, or a new one once it has closed.
    async fn sender(&self) -> Result<SendRequest<Body>, tonic::Status> {
        let connecting = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &*state {
                State::Ready(send) if !send.is_closed() => return Ok(send.clone()),
                State::Connecting(connecting) => connecting.clone(),
                State::Ready(_) | State::Idle => {
                    // The connector's own copy, not `self`: the state holds this future,
                    // which must not keep the state alive. A channel replaced while it
                    // connects, with no call left waiting, drops the attempt and its socket.
                    let connector = self.connector.clone();
                    let connecting = async move { connector.connect().await.map_err(Arc::new) }
                        .boxed()
                        .shared();
                    *state = State::Connecting(connecting.clone());
                    connecting
                }
            }
        };
        let result = connecting.clone().await;
        // Whichever call sees the attempt end first records how it ended.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(&*state, State::Connecting(current) if current.ptr_eq(&connecting)) {
            *state = match &result {
                Ok(send) => State::Ready(send.clone()),
                Err(_) => State::Idle,
            };
        }
        drop(state);
        result.map_err(|error| {
            let mut status =
                tonic::Status::unavailable(format!("cannot connect to {}", self.connector.addr));
            status.set_source(error);
            status
        })
    }
}

impl tower::Service<http::Request<Body>> for ReplicaChannel {
    type Response = http::Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    /// Always ready: a call waits for the connection itself.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        request
            .headers_mut()
            .insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        let inner = self.inner.clone();
        Box::pin(async move {
            // The request's one message, whole, so that hyper sends it in one DATA frame
            // that ends the stream. As tonic streams it, hyper cannot know the message is
            // the last one and ends the stream with an empty DATA frame of its own: one
            // more frame per call for both sides to write and read.
            let (parts, body) = request.into_parts();
            let message = body.collect().await?.to_bytes();
            let request = http::Request::from_parts(parts, Body::new(Full::new(message)));
            let response = inner.sender().await?.send_request(request);
            Ok(response.await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A server that accepts and never answers the TLS handshake: the attempt waits. When
    /// the only call gives up and the channel is replaced (dropped), the attempt must go
    /// with it, and its socket be closed, rather than be kept alive by the channel's state.
    #[tokio::test]
    async fn a_channel_dropped_while_connecting_closes_its_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = TlsMaterial::new(b"", None).unwrap();
        let connector = Connector::new(
            &tls,
            "localhost",
            listener.local_addr().unwrap(),
            Duration::from_secs(600),
        )
        .unwrap();
        let channel = ReplicaChannel::lazy(connector);
        let inner = channel.inner.clone();
        let call = tokio::spawn(async move { inner.sender().await.map(|_| ()) });
        let (mut server_side, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; 1];
        server_side.read_exact(&mut hello).await.unwrap();
        // The attempt is in its TLS handshake, waiting for an answer that never comes.
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        drop(channel);

        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(20), server_side.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(_))),
            "the socket stayed open after its channel was dropped: {read:?}"
        );
    }
}
