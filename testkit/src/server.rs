//! Servers in the test's own runtime, on loopback ports the OS picks, stopped by their
//! shutdown signal: discount itself (`discount::run`, as its `main` calls it, TLS on), or
//! any server a test builds.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;

use discount::tls::{ServerTls, TlsFiles};
use ecommerce::keys::{self, KeyPaths};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::PATIENCE;

/// The shutdown signal a server started by [`Running::spawn`] gets: it completes when the
/// test stops the server.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server running in this test's runtime, aborted when dropped unless [`Self::stop`]
/// stopped it.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Runs `serve` on a task of its own: the server at `addr`, given the [`Shutdown`]
    /// signal to stop on.
    pub fn spawn<F>(addr: SocketAddr, serve: impl FnOnce(Shutdown) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        let shutdown: Shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        Self {
            addr,
            stop: Some(stop),
            task: tokio::spawn(serve(shutdown)),
        }
    }

    /// Sends the shutdown signal, without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Sends the shutdown signal and waits (at most [`PATIENCE`]) for the server to return.
    pub async fn stop(mut self) {
        self.begin_stop();
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("the server stops")
            .expect("the server's task");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The TLS set discount serves from `keys`, loaded by discount's own loader (as its `main`
/// loads it), requiring client certificates from their CA when `client_certificates`.
pub fn discount_tls(keys: &KeyPaths, client_certificates: bool) -> ServerTls {
    ecommerce::install_crypto_provider();
    TlsFiles {
        paths: keys.clone(),
        require_client_cert: client_certificates,
        renew_before: keys::DEFAULT_RENEW_BEFORE,
    }
    .load()
    .expect("the test's keys load")
    .tls
}

/// Starts discount with the server identity in `keys`.
pub async fn start_discount(keys: &KeyPaths) -> Running {
    start_discount_with(
        discount::Config::new(discount_tls(keys, false)),
        loopback().await,
    )
}

/// Starts discount with `config` on `listener`.
pub fn start_discount_with(config: discount::Config, listener: TcpListener) -> Running {
    ecommerce::install_crypto_provider();
    let addr = listener.local_addr().expect("listener address");
    Running::spawn(addr, |shutdown| async move {
        discount::run(listener, config, shutdown)
            .await
            .expect("discount runs");
    })
}

/// A listener on a loopback port the OS picks.
pub async fn loopback() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind port 0")
}
