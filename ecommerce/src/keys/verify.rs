//! Checking a certificate as a peer would, at start-up and on reload: its chain to the
//! trusted CA, its dates, and its use (server or client).

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::error::KeyError;
use super::files::PemIdentity;

/// What a certificate is checked for by [`verify_identity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateUse {
    /// A TLS server's certificate (discount's).
    Server,
    /// A TLS client's certificate (the catalog's, for mutual TLS).
    Client,
}

/// Checks, at start-up, what peers would otherwise find out one handshake at a time: that
/// `identity`'s certificate (read from `path`) chains to a certificate in `trust_roots_pem`,
/// is valid now, and may be used as `usage`. A key that does not match its certificate is
/// caught separately, by rustls, when the TLS configuration is built.
pub fn verify_identity(
    identity: &PemIdentity,
    trust_roots_pem: &[u8],
    usage: CertificateUse,
    path: &Path,
) -> Result<(), KeyError> {
    let invalid = |reason: String| KeyError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&identity.cert_chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("unreadable: {e}")))?;
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(trust_roots_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("the CA is unreadable: {e}")))?;
    let anchors: Vec<_> = roots
        .iter()
        .filter_map(|root| webpki::anchor_from_trusted_cert(root).ok())
        .collect();
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| invalid("there is no certificate".into()))?;
    let leaf = webpki::EndEntityCert::try_from(leaf).map_err(|e| invalid(format!("{e:?}")))?;
    let algorithms = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    let usage = match usage {
        CertificateUse::Server => webpki::KeyUsage::server_auth(),
        CertificateUse::Client => webpki::KeyUsage::client_auth(),
    };
    leaf.verify_for_usage(
        algorithms,
        &anchors,
        intermediates,
        rustls_pki_types::UnixTime::now(),
        usage,
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| {
        invalid(match e {
            webpki::Error::CertExpired { .. } => "it has expired".into(),
            webpki::Error::CertNotValidYet { .. } => "it is not valid yet".into(),
            // Each CA generated now has a name of its own (an unknown issuer); sets made
            // before shared one name, so such a CA is found by name and then fails the
            // signature check.
            webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
                "it was not issued by the CA this directory trusts (ca.pem)".into()
            }
            webpki::Error::RequiredEkuNotFoundContext(_) => {
                "it may not be used for this (extended key usage)".into()
            }
            other => format!("{other:?}"),
        })
    })
}
