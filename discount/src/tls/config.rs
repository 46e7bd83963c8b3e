//! A TLS set as rustls takes it: the server's certificate and key and, for mutual TLS, the
//! CA of its clients; and why a set is refused.

use std::sync::Arc;

use ecommerce::keys::{self, PemIdentity};
use rustls::ServerConfig;
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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
    pub(super) config: Arc<ServerConfig>,
    client_certificates: bool,
}

impl ServerTls {
    /// The set for `identity`, requiring client certificates issued by `client_ca_pem`
    /// when given (mutual TLS). Checks what rustls checks (the PEM parses, the key goes with
    /// the certificate); [`super::TlsFiles::load`] checks more, from files, and calls this last.
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
        config.alpn_protocols = vec![ecommerce::ALPN_H2.to_vec()];
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
