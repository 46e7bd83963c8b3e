//! The catalog's TLS files: the CA it trusts and, with mutual TLS, its client certificate.
//!
//! One loader, [`TlsFiles::load`], judges a set at start-up and on every reload alike, so
//! that files a reload would refuse stop the start, before the port is bound, with the
//! same reason (a catalog that started with a client key from another set used to say it
//! was ready and serve full prices forever). It checks that:
//! - every file can be read and is PEM, and the key is private to its owner;
//! - the client certificate chains to the trusted CAs, is valid now, may be used by a
//!   client, and its key goes with it ([`keys::read_checked_identity`]);
//! - tonic makes a TLS client of the set, as each replica's channel will.
//!
//! After start-up, the files are polled by [`ecommerce::tls_reload`]. A good set is used
//! for every new connection: each discount replica gets a new channel, and calls in flight
//! finish on the old one, so no request fails for the change. A refused set changes
//! nothing.
//!
//! Rotating the CA takes three steps, so that discounts keep flowing: trust a bundle of
//! both CAs; move discount to a certificate from the new CA; trust the new CA alone.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ecommerce::keys::{self, CertificateUse, KeyError, KeyPaths, PemIdentity};
use ecommerce::tls_reload::{ReloadMetrics, TlsSource};

use crate::discounts::{Discounts, TlsMaterial, TlsMaterialError};

/// The files the catalog's TLS is made of.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The keys directory: `ca.pem` (or `cert.pem`), and `client.pem`/`client.key`.
    pub paths: KeyPaths,
    /// Whether the catalog presents its client certificate.
    pub client_cert: bool,
}

/// Why the catalog's TLS files cannot be used. Each error names its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or is not PEM, the client certificate is not valid, or its
    /// key is not its own.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// rustls refused to make a TLS client of them.
    #[error("the gRPC client refused the TLS files in {dir}")]
    Client {
        /// The keys directory.
        dir: PathBuf,
        /// rustls's reason.
        source: TlsMaterialError,
    },
}

/// A checked set, ready for new connections.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The CA certificates to trust (PEM), as read.
    pub trust_roots_pem: Vec<u8>,
    /// The client certificate and key to present (mutual TLS).
    pub identity: Option<PemIdentity>,
    /// The same, as the discount client's connections take them.
    pub material: TlsMaterial,
    /// When the trusted CAs expire (the earliest of a bundle).
    pub ca_expiry: SystemTime,
    /// When the client certificate expires.
    pub client_expiry: Option<SystemTime>,
}

impl ClientTls {
    /// Each certificate's expiry, named as the metrics name them (`ca`, `client`).
    pub fn expiries(&self) -> Vec<(&'static str, SystemTime)> {
        let mut expiries = vec![("ca", self.ca_expiry)];
        expiries.extend(self.client_expiry.map(|expiry| ("client", expiry)));
        expiries
    }
}

impl TlsFiles {
    /// Reads the set and checks it (see the module docs): at start-up, and on every reload.
    pub fn load(&self) -> Result<ClientTls, TlsError> {
        let trust_path = self.paths.trust_roots();
        let trust_roots_pem = keys::read_trust_roots(&self.paths)?;
        let ca_expiry = keys::earliest_expiry_in(&trust_roots_pem, &trust_path)?;
        let client = if self.client_cert {
            Some(keys::read_checked_identity(
                &self.paths,
                CertificateUse::Client,
                Some(&trust_roots_pem),
            )?)
        } else {
            None
        };
        let identity = client.as_ref().map(|client| client.identity.clone());
        let material = TlsMaterial::new(&trust_roots_pem, identity.as_ref()).map_err(|source| {
            TlsError::Client {
                dir: self.paths.dir().to_owned(),
                source,
            }
        })?;
        Ok(ClientTls {
            trust_roots_pem,
            identity,
            material,
            ca_expiry,
            client_expiry: client.map(|client| client.not_after),
        })
    }

    /// The files a change of the set touches.
    fn watched(&self) -> Vec<PathBuf> {
        let mut files = vec![self.paths.trust_roots()];
        if self.client_cert {
            files.extend([self.paths.client_cert(), self.paths.client_key()]);
        }
        files
    }

    /// Logs when each certificate of `tls` expires (a warning within the renewal window):
    /// at start-up; [`ecommerce::tls_reload`] watches them afterwards.
    pub fn log_expiries(&self, tls: &ClientTls) {
        let renew_before = keys::DEFAULT_RENEW_BEFORE;
        keys::log_expiry("ca", &self.paths.trust_roots(), tls.ca_expiry, renew_before);
        if let Some(expiry) = tls.client_expiry {
            keys::log_expiry("client", &self.paths.client_cert(), expiry, renew_before);
        }
    }
}

/// The catalog's TLS files, and the client that uses them.
struct CatalogTls {
    files: TlsFiles,
    discounts: Discounts,
}

impl TlsSource for CatalogTls {
    type Loaded = ClientTls;
    type Error = TlsError;

    fn watched(&self) -> Vec<PathBuf> {
        self.files.watched()
    }

    fn load(&self) -> Result<ClientTls, TlsError> {
        self.files.load()
    }

    fn expiries(loaded: &ClientTls) -> Vec<(&'static str, SystemTime)> {
        loaded.expiries()
    }

    fn apply(&self, loaded: ClientTls) -> Result<(), TlsError> {
        self.discounts.replace_tls(loaded.material);
        Ok(())
    }

    fn log_used(&self) {
        tracing::info!(
            trusted = %self.files.paths.trust_roots().display(),
            client_certificate = self.files.client_cert,
            "new TLS files: used for every new connection to discount"
        );
    }
}

/// Checks the files every `every` and, when they changed and are good, has `discounts`
/// use them for new connections. Ends when aborted (at shutdown).
pub fn spawn_reload(
    files: TlsFiles,
    discounts: Discounts,
    every: Duration,
    metrics: ReloadMetrics,
) -> tokio::task::JoinHandle<()> {
    ecommerce::tls_reload::spawn(
        CatalogTls { files, discounts },
        every,
        keys::DEFAULT_RENEW_BEFORE,
        metrics,
    )
}
