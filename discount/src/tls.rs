//! TLS on the gRPC port, terminated here with rustls rather than by tonic, so that the
//! certificate, its key and the client CA can change while the server runs.
//!
//! tonic's own TLS settings are fixed when the server starts. Here, each connection's
//! handshake uses the [`ServerConfig`] current at that moment ([`TlsState`]); connections
//! already open keep the one they started with. [`spawn_reload`] has
//! [`ecommerce::tls_reload`] watch the files and replace the configuration when they
//! change and the new set is good.
//!
//! What tonic did and this keeps: a bound on each handshake (a client that connects and
//! says nothing is dropped after [`crate::Config::tls_handshake_timeout`]), handshakes that
//! run beside one another (one slow client delays no one), ALPN `h2`, and a failed
//! handshake (plaintext on the TLS port, an untrusted client certificate) logged at debug
//! as "tls accept error", then closed.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use ecommerce::keys::{self, CertificateUse, PemIdentity};
use ecommerce::listener;
use ecommerce::tls_reload::{ReloadMetrics, TlsSource};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// Why a set of TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read, or its certificate is not valid (chain, dates, use).
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// rustls refused the set: most often a key that does not match the certificate.
    #[error("{0}")]
    Rustls(String),
}

/// The server configuration for `identity`, requiring client certificates issued by
/// `client_ca_pem` when given (mutual TLS).
pub fn server_config(
    identity: &PemIdentity,
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let refuse =
        |what: &str, error: &dyn std::fmt::Display| TlsError::Rustls(format!("{what}: {error}"));
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&identity.cert_chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| refuse("the certificate chain", &e))?;
    let key = PrivateKeyDer::from_pem_slice(&identity.private_key_pem)
        .map_err(|e| refuse("the private key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| refuse("the protocol versions", &e))?;
    let builder = match client_ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| refuse("the client CA", &e))?;
                roots.add(cert).map_err(|e| refuse("the client CA", &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| refuse("the client CA", &e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| refuse("the certificate and key", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration new handshakes use; replaced on reload.
#[derive(Debug)]
pub struct TlsState {
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsState {
    /// Starts with `config`.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            current: RwLock::new(config),
        }
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Uses `config` for every handshake from now on.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
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

/// The files a reload reads: the server's chain and key, and (mutual TLS) the client CA.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The keys directory, for `cert.pem`, `private.key` and the trust roots.
    pub paths: keys::KeyPaths,
    /// Require client certificates from the directory's CA.
    pub require_client_cert: bool,
    /// Warn when the server certificate has less than this left.
    pub renew_before: Duration,
}

impl TlsFiles {
    /// Reads the set and checks it as at start-up: the chain to the CA (when the directory
    /// has one), the dates, the use; the key matching the certificate (rustls).
    pub fn load(&self) -> Result<(Arc<ServerConfig>, SystemTime), TlsError> {
        let identity = keys::read_server_identity(&self.paths)?;
        let trust = if self.paths.ca_cert().exists() || self.require_client_cert {
            Some(keys::read_trust_roots(&self.paths)?)
        } else {
            None
        };
        if self.paths.ca_cert().exists()
            && let Some(ca) = &trust
        {
            keys::verify_identity(
                &identity,
                ca,
                CertificateUse::Server,
                &self.paths.server_cert(),
            )?;
        }
        let client_ca = trust.as_deref().filter(|_| self.require_client_cert);
        let config = server_config(&identity, client_ca)?;
        let not_after = keys::certificate_info(&self.paths.server_cert())?.not_after;
        Ok((config, not_after))
    }

    /// The files a change of the set touches.
    fn watched(&self) -> Vec<PathBuf> {
        let mut files = vec![self.paths.server_cert(), self.paths.server_key()];
        if self.require_client_cert || self.paths.ca_cert().exists() {
            files.push(self.paths.ca_cert());
        }
        files
    }
}

/// The server's TLS files, and the state new handshakes take their configuration from.
struct ServerTls {
    files: TlsFiles,
    state: Weak<TlsState>,
}

impl TlsSource for ServerTls {
    type Loaded = (Arc<ServerConfig>, SystemTime);

    fn watched(&self) -> Vec<PathBuf> {
        self.files.watched()
    }

    fn load(&self) -> Result<Self::Loaded, String> {
        self.files.load().map_err(|error| format!("{error:#}"))
    }

    fn expiries((_, not_after): &Self::Loaded) -> Vec<(&'static str, SystemTime)> {
        vec![("server", *not_after)]
    }

    fn apply(&self, (config, _): Self::Loaded) -> Result<(), String> {
        match self.state.upgrade() {
            Some(state) => {
                state.replace(config);
                Ok(())
            }
            None => Err("the server has stopped".into()),
        }
    }

    fn log_used(&self) {
        tracing::info!(
            path = %self.files.paths.server_cert().display(),
            "new TLS certificates: used for every new connection"
        );
    }

    fn wanted(&self) -> bool {
        self.state.strong_count() > 0
    }
}

/// Checks the files every `every` and, when they changed, loads them and uses them for new
/// handshakes if they are good; a bad or half-written set is refused and logged, the
/// previous one kept, and the next change tried again. Ends when the state is dropped.
pub fn spawn_reload(
    files: TlsFiles,
    tls: &Arc<TlsState>,
    every: Duration,
    metrics: ReloadMetrics,
) -> tokio::task::JoinHandle<()> {
    let renew_before = files.renew_before;
    let source = ServerTls {
        files,
        state: Arc::downgrade(tls),
    };
    ecommerce::tls_reload::spawn(source, every, renew_before, metrics)
}
