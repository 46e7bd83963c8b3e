//! New TLS files without a restart: the CA the catalog trusts and, with mutual TLS, its
//! client certificate.
//!
//! The files are polled by [`ecommerce::tls_reload`]. When they changed, the new set is
//! checked as at start: certificates that parse, and a client certificate that chains to
//! the trusted CAs, is valid now, and matches its key. A good set is used for every new
//! connection: each discount replica gets a new channel, and calls in flight finish on the
//! old one, so no request fails for the change.
//!
//! Rotating the CA takes three steps, so that discounts keep flowing: trust a bundle of
//! both CAs; move discount to a certificate from the new CA; trust the new CA alone.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ecommerce::keys::{self, CertificateUse, KeyError, KeyPaths, PemIdentity};
use ecommerce::tls_reload::{ReloadMetrics, TlsSource};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::discounts::Discounts;

/// The files the catalog's TLS is made of.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The keys directory: `ca.pem` (or `cert.pem`), and `client.pem`/`client.key`.
    pub paths: KeyPaths,
    /// Whether the catalog presents its client certificate.
    pub client_cert: bool,
}

/// A checked set, ready for new connections.
pub struct Loaded {
    trust_roots_pem: Vec<u8>,
    identity: Option<PemIdentity>,
    ca_expiry: SystemTime,
    client_expiry: Option<SystemTime>,
}

impl TlsFiles {
    /// The files a change of the set touches.
    fn watched(&self) -> Vec<PathBuf> {
        let mut files = vec![self.paths.trust_roots()];
        if self.client_cert {
            files.extend([self.paths.client_cert(), self.paths.client_key()]);
        }
        files
    }

    fn load(&self) -> Result<Loaded, KeyError> {
        let trust_roots_pem = keys::read_trust_roots(&self.paths)?;
        let ca_expiry = keys::earliest_expiry(&self.paths.trust_roots())?;
        let (identity, client_expiry) = if self.client_cert {
            let path = self.paths.client_cert();
            let identity = keys::read_client_identity(&self.paths)?;
            keys::verify_identity(&identity, &trust_roots_pem, CertificateUse::Client, &path)?;
            key_matches(&identity).map_err(|reason| KeyError::Invalid {
                path: path.clone(),
                reason,
            })?;
            let expiry = keys::certificate_info(&path)?.not_after;
            (Some(identity), Some(expiry))
        } else {
            (None, None)
        };
        Ok(Loaded {
            trust_roots_pem,
            identity,
            ca_expiry,
            client_expiry,
        })
    }
}

/// Whether the client certificate is for its key: rustls compares the public keys.
fn key_matches(identity: &PemIdentity) -> Result<(), String> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&identity.cert_chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
    let key =
        PrivateKeyDer::from_pem_slice(&identity.private_key_pem).map_err(|e| e.to_string())?;
    rustls::sign::CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map(|_| ())
        .map_err(|e| format!("the key does not go with it: {e}"))
}

/// The catalog's TLS files, and the client that uses them.
struct CatalogTls {
    files: TlsFiles,
    discounts: Discounts,
}

impl TlsSource for CatalogTls {
    type Loaded = Loaded;

    fn watched(&self) -> Vec<PathBuf> {
        self.files.watched()
    }

    fn load(&self) -> Result<Loaded, String> {
        self.files.load().map_err(|error| error.to_string())
    }

    fn expiries(loaded: &Loaded) -> Vec<(&'static str, SystemTime)> {
        let mut expiries = vec![("ca", loaded.ca_expiry)];
        expiries.extend(loaded.client_expiry.map(|expiry| ("client", expiry)));
        expiries
    }

    fn apply(&self, loaded: Loaded) -> Result<(), String> {
        self.discounts
            .replace_tls(&loaded.trust_roots_pem, loaded.identity.as_ref())
            .map_err(|error| format!("tonic refused it: {error}"))
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
pub fn spawn(
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
