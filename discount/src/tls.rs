//! TLS on the gRPC port, terminated here with rustls rather than by tonic, so that the
//! certificate, its key and the client CA can change while the server runs.
//!
//! tonic's own TLS settings are fixed when the server starts. Here, each connection's
//! handshake uses the [`ServerConfig`] current at that moment ([`TlsState`]); connections
//! already open keep the one they started with. [`spawn_reload`] has
//! [`ecommerce::tls_reload`] watch the files and replace the configuration when they
//! change and the new set is good.
//!
//! One loader, [`TlsFiles::load`], judges a set at start-up and on every reload alike, so
//! that files a reload would refuse stop the start, before the port is bound, with the same
//! reason.
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
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// Why a set of TLS files cannot be used. Each error names its file, or what it is.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or is not PEM, the certificate is not valid (chain, dates,
    /// use), or the key is not its own.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// Part of a set in memory is not PEM (files give [`TlsError::Keys`] instead).
    #[error("{what} is not PEM")]
    Pem {
        /// "the certificate chain", "the private key" or "the client CA".
        what: &'static str,
        /// The parser's complaint.
        source: pem::Error,
    },
    /// rustls refused part of the set: most often a key that does not match the
    /// certificate.
    #[error("rustls refused {what}")]
    Rustls {
        /// "the protocol versions", "the client CA" or "the certificate and key".
        what: &'static str,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// rustls could not make a client certificate verifier of the client CA.
    #[error("rustls refused the client CA")]
    ClientCa(#[source] VerifierBuilderError),
}

/// A TLS set checked and ready for handshakes: the server's certificate and key and, with
/// mutual TLS, the CA its clients' certificates must come from.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    client_certificates: bool,
}

impl ServerTls {
    /// The set for `identity`, requiring client certificates issued by `client_ca_pem`
    /// when given (mutual TLS). Checks what rustls checks (the PEM parses, the key goes with
    /// the certificate); [`TlsFiles::load`] checks more, from files, and calls this last.
    pub fn new(identity: &PemIdentity, client_ca_pem: Option<&[u8]>) -> Result<Self, TlsError> {
        let pem_error = |what| move |source| TlsError::Pem { what, source };
        let rustls_error = |what| move |source| TlsError::Rustls { what, source };
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&identity.cert_chain_pem)
                .collect::<Result<_, _>>()
                .map_err(pem_error("the certificate chain"))?;
        let key = PrivateKeyDer::from_pem_slice(&identity.private_key_pem)
            .map_err(pem_error("the private key"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(rustls_error("the protocol versions"))?;
        let builder = match client_ca_pem {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(pem_error("the client CA"))?;
                    roots.add(cert).map_err(rustls_error("the client CA"))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(TlsError::ClientCa)?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(rustls_error("the certificate and key"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            client_certificates: client_ca_pem.is_some(),
        })
    }

    /// Whether clients must present a certificate (mutual TLS).
    pub fn requires_client_certificates(&self) -> bool {
        self.client_certificates
    }
}

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

/// The server's TLS files: `cert.pem` and `private.key`, and the directory's CA.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The keys directory, for `cert.pem`, `private.key` and the trust roots.
    pub paths: keys::KeyPaths,
    /// Require client certificates from the directory's CA.
    pub require_client_cert: bool,
    /// Warn when the server certificate has less than this left.
    pub renew_before: Duration,
}

/// What [`TlsFiles::load`] makes of the files: the set, and when its certificates expire.
#[derive(Debug, Clone)]
pub struct LoadedTls {
    /// The set, ready for handshakes.
    pub tls: ServerTls,
    /// When the server certificate expires.
    pub server_expiry: SystemTime,
    /// When the directory's CA expires (none: the directory has no `ca.pem`).
    pub ca_expiry: Option<SystemTime>,
}

impl LoadedTls {
    /// Each certificate's expiry, named as the metrics name them (`server`, `ca`).
    pub fn expiries(&self) -> Vec<(&'static str, SystemTime)> {
        let mut expiries = vec![("server", self.server_expiry)];
        expiries.extend(self.ca_expiry.map(|expiry| ("ca", expiry)));
        expiries
    }
}

impl TlsFiles {
    /// Reads the set and checks it, at start-up and on every reload alike: every file can
    /// be read and is PEM, the key is private to its owner and goes with the certificate;
    /// the certificate chains to the directory's CA, is valid now and is a server's (a
    /// directory without `ca.pem`, as the old openssl step made, has nothing to check it
    /// against); and rustls makes a server configuration of it.
    pub fn load(&self) -> Result<LoadedTls, TlsError> {
        let has_ca = self.paths.ca_cert().exists();
        let trust = if has_ca || self.require_client_cert {
            Some(keys::read_trust_roots(&self.paths)?)
        } else {
            None
        };
        let ca_expiry = match &trust {
            Some(pem) if has_ca => Some(keys::earliest_expiry_in(pem, &self.paths.ca_cert())?),
            _ => None,
        };
        let server = keys::read_checked_identity(
            &self.paths,
            CertificateUse::Server,
            trust.as_deref().filter(|_| has_ca),
        )?;
        let client_ca = trust.as_deref().filter(|_| self.require_client_cert);
        Ok(LoadedTls {
            tls: ServerTls::new(&server.identity, client_ca)?,
            server_expiry: server.not_after,
            ca_expiry,
        })
    }

    /// Logs when each certificate of `loaded` expires (a warning within the renewal
    /// window): at start-up; [`ecommerce::tls_reload`] watches them afterwards.
    pub fn log_expiries(&self, loaded: &LoadedTls) {
        let server = self.paths.server_cert();
        keys::log_expiry("server", &server, loaded.server_expiry, self.renew_before);
        if let Some(expiry) = loaded.ca_expiry {
            keys::log_expiry("ca", &self.paths.ca_cert(), expiry, self.renew_before);
        }
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
struct ServerFiles {
    files: TlsFiles,
    state: Weak<TlsState>,
}

impl TlsSource for ServerFiles {
    type Loaded = LoadedTls;
    type Error = TlsError;

    fn watched(&self) -> Vec<PathBuf> {
        self.files.watched()
    }

    fn load(&self) -> Result<LoadedTls, TlsError> {
        self.files.load()
    }

    fn expiries(loaded: &LoadedTls) -> Vec<(&'static str, SystemTime)> {
        loaded.expiries()
    }

    fn apply(&self, loaded: LoadedTls) -> Result<(), TlsError> {
        // Once the server has stopped nothing is applied, and `wanted` ends the reloading.
        if let Some(state) = self.state.upgrade() {
            state.replace(&loaded.tls);
        }
        Ok(())
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
    let source = ServerFiles {
        files,
        state: Arc::downgrade(tls),
    };
    ecommerce::tls_reload::spawn(source, every, renew_before, metrics)
}
