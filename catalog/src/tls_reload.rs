//! New TLS files without a restart: the CA the catalog trusts and, with mutual TLS, its
//! client certificate.
//!
//! Every few seconds the files are read (a poll: see [`ecommerce::keys::reload`]). When
//! they changed, the new set is checked as at start: certificates that parse, and a client
//! certificate that chains to the trusted CAs, is valid now, and matches its key. A good set is used for every new connection: each
//! discount replica gets a new channel, and calls in flight finish on the old one, so no
//! request fails for the change. A bad or half-written set is refused with a warning and
//! counted; the previous one keeps serving, and the next change is tried again.
//!
//! Rotating the CA takes three steps, so that discounts keep flowing: trust a bundle of
//! both CAs; move discount to a certificate from the new CA; trust the new CA alone.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ecommerce::keys::{self, CertificateUse, KeyError, KeyPaths, PemIdentity};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::discounts::DiscountClient;
use crate::metrics::Metrics;

/// The files the catalog's TLS is made of.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The keys directory: `ca.pem` (or `cert.pem`), and `client.pem`/`client.key`.
    pub paths: KeyPaths,
    /// Whether the catalog presents its client certificate.
    pub client_cert: bool,
}

/// A checked set, ready for new connections.
struct Loaded {
    trust_roots_pem: Vec<u8>,
    identity: Option<PemIdentity>,
    ca_expiry: SystemTime,
    client_expiry: Option<SystemTime>,
}

impl TlsFiles {
    /// What the catalog trusts: `ca.pem`, or `cert.pem` in a directory without one.
    fn trusted(&self) -> PathBuf {
        if self.paths.ca_cert().exists() {
            self.paths.ca_cert()
        } else {
            self.paths.server_cert()
        }
    }

    /// The files a change of the set touches.
    fn watched(&self) -> Vec<PathBuf> {
        let mut files = vec![self.trusted()];
        if self.client_cert {
            files.extend([self.paths.client_cert(), self.paths.client_key()]);
        }
        files
    }

    fn load(&self) -> Result<Loaded, KeyError> {
        let trust_roots_pem = keys::read_trust_roots(&self.paths)?;
        let ca_expiry = keys::earliest_expiry(&self.trusted())?;
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

/// Checks the files every `every` and, when they changed and are good, has `discounts`
/// use them for new connections. Ends when aborted (at shutdown).
pub fn spawn(
    files: TlsFiles,
    discounts: DiscountClient,
    every: Duration,
    metrics: Metrics,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut watch = keys::FileWatch::new(&files.watched());
        // Certificates that expire while the catalog runs are noticed here too.
        let mut ca_watch = keys::ExpiryWatch::new("ca", keys::DEFAULT_RENEW_BEFORE);
        let mut client_watch = keys::ExpiryWatch::new("client", keys::DEFAULT_RENEW_BEFORE);
        let mut expiries = files.load().ok().map(|l| (l.ca_expiry, l.client_expiry));
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Some((ca, client)) = expiries {
                ca_watch.check(ca);
                if let Some(client) = client {
                    client_watch.check(client);
                }
            }
            if !watch.changed(&files.watched()) {
                continue;
            }
            let loaded = files
                .load()
                .map_err(|error| format!("{error}"))
                .and_then(|loaded| {
                    discounts
                        .replace_tls(&loaded.trust_roots_pem, loaded.identity.as_ref())
                        .map(|()| loaded)
                        .map_err(|error| format!("tonic refused it: {error}"))
                });
            match loaded {
                Ok(loaded) => {
                    expiries = Some((loaded.ca_expiry, loaded.client_expiry));
                    metrics.certificates.set("ca", loaded.ca_expiry);
                    if let Some(expiry) = loaded.client_expiry {
                        metrics.certificates.set("client", expiry);
                    }
                    metrics.tls_reloads.record(true);
                    tracing::info!(
                        trusted = %files.trusted().display(),
                        client_certificate = files.client_cert,
                        "new TLS files: used for every new connection to discount"
                    );
                }
                Err(error) => {
                    metrics.tls_reloads.record(false);
                    tracing::warn!(
                        %error,
                        "the changed TLS files were refused; still using the previous ones"
                    );
                }
            }
        }
    })
}
