//! Checking an identity as a peer and the TLS library would, at start-up and on every
//! reload alike: the certificate's chain to the trusted CA, its dates and its use (server or
//! client), and a key that goes with it. Each service's loader of TLS files calls
//! [`read_checked_identity`], so that a set refused on reload is refused at start-up too,
//! with the same words, before the port is bound.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::certificate::CertificateInfo;
use super::error::KeyError;
use super::files::{PemIdentity, read_identity};
use super::paths::KeyPaths;

/// What a certificate is checked for by [`verify_identity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateUse {
    /// A TLS server's certificate (discount's).
    Server,
    /// A TLS client's certificate (the catalog's, for mutual TLS).
    Client,
}

impl CertificateUse {
    /// The certificate and key files of this use in `paths`: `cert.pem` and `private.key`
    /// for the server, `client.pem` and `client.key` for the client.
    pub fn files(self, paths: &KeyPaths) -> (PathBuf, PathBuf) {
        match self {
            Self::Server => (paths.server_cert(), paths.server_key()),
            Self::Client => (paths.client_cert(), paths.client_key()),
        }
    }
}

/// An identity read from the keys directory and checked, with when its certificate
/// expires.
#[derive(Debug, Clone)]
pub struct CheckedIdentity {
    /// The certificate chain and key.
    pub identity: PemIdentity,
    /// When the (leaf) certificate expires.
    pub not_after: SystemTime,
}

/// Reads the identity of `usage` from `paths` ([`CertificateUse::files`]) and checks what
/// peers and rustls would otherwise find out later, one handshake at a time: both files
/// parse (and the key is private to its owner); with `trust_roots_pem`, the certificate
/// chains to it, is valid now and may be used for `usage` ([`verify_identity`]); and the
/// key goes with the certificate ([`verify_key`]).
pub fn read_checked_identity(
    paths: &KeyPaths,
    usage: CertificateUse,
    trust_roots_pem: Option<&[u8]>,
) -> Result<CheckedIdentity, KeyError> {
    let (cert_path, key_path) = usage.files(paths);
    let identity = read_identity(&cert_path, &key_path)?;
    if let Some(trust_roots_pem) = trust_roots_pem {
        verify_identity(&identity, trust_roots_pem, usage, &cert_path)?;
    }
    verify_key(&identity, &cert_path, &key_path)?;
    let not_after = CertificateInfo::from_pem(&identity.cert_chain_pem, &cert_path)?.not_after;
    Ok(CheckedIdentity {
        identity,
        not_after,
    })
}

/// Checks that `identity`'s key (read from `key_path`) goes with its certificate (read from
/// `cert_path`), as rustls will when it is used: their public keys must be the same.
pub fn verify_key(
    identity: &PemIdentity,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), KeyError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&identity.cert_chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|source| KeyError::Pem {
                path: cert_path.to_owned(),
                what: "certificate",
                source,
            })?;
    let key = PrivateKeyDer::from_pem_slice(&identity.private_key_pem).map_err(|source| {
        KeyError::Pem {
            path: key_path.to_owned(),
            what: "private key",
            source,
        }
    })?;
    rustls::sign::CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map(|_| ())
        .map_err(|source| KeyError::KeyMismatch {
            key: key_path.to_owned(),
            cert: cert_path.to_owned(),
            source,
        })
}

/// Checks, at start-up, what peers would otherwise find out one handshake at a time: that
/// `identity`'s certificate (read from `path`) chains to a certificate in `trust_roots_pem`,
/// is valid now, and may be used as `usage`. A key that does not match its certificate is
/// [`verify_key`]'s to find.
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
