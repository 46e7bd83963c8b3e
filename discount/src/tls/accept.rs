//! Accepting TLS connections: each handshake with the configuration current at that moment
//! ([`TlsState`]), bounded in time, beside the others.

use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ecommerce::listener;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::config::ServerTls;

/// The configuration new handshakes use; replaced on reload.
#[derive(Debug)]
pub struct TlsState {
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsState {
    /// Starts with `tls`.
    pub fn new(tls: &ServerTls) -> Self {
        Self {
            current: RwLock::new(tls.config.clone()),
        }
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Uses `tls` for every handshake from now on.
    pub fn replace(&self, tls: &ServerTls) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = tls.config.clone();
    }
}

/// The TLS connections accepted on `listener`, as tonic's `serve_with_incoming` takes them.
/// Accepting stops when the server drops the stream.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<TlsState>,
    handshake_timeout: Duration,
) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
    let (send, receive) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener::accept(&listener) => accepted,
                () = send.closed() => return,
            };
            let acceptor = TlsAcceptor::from(tls.current());
            let send = send.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = send.send(Ok(tls)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "tls accept error"),
                    Err(_) => {
                        tracing::debug!(%peer, timeout = ?handshake_timeout, "tls accept error: the handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(receive)
}
