//! The server's TLS files: [`TlsFiles::load`], the one loader of start-up and reload, and
//! the reload's [`TlsSource`].

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use ecommerce::keys::{self, CertificateUse};
use ecommerce::tls_reload::{ReloadMetrics, TlsSource};

use super::accept::TlsState;
use super::config::{ServerTls, TlsError};

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
