//! What can go wrong with the keys directory, each error naming its file.

use std::io;
use std::path::PathBuf;

use rustls_pki_types::pem;

/// What can go wrong with the keys directory. Each variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The directory could not be created.
    #[error("cannot create the keys directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Another process's generation could not be waited for.
    #[error("cannot lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{path} does not hold a valid PEM {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
        /// The parser's complaint.
        source: pem::Error,
    },
    /// `cert.pem` is there without its key: someone else's files, which we do not overwrite.
    #[error(
        "{cert} exists but {key} does not; provide the key, or remove {cert} to have a new set generated"
    )]
    MissingKey {
        /// The certificate that is present.
        cert: PathBuf,
        /// The key that is missing.
        key: PathBuf,
    },
    /// rcgen refused a name or failed to sign.
    #[error("cannot generate the certificates")]
    Generate(#[from] rcgen::Error),
    /// A client certificate is needed but the CA's key, which would issue it, is missing.
    #[error(
        "cannot issue a client certificate: {ca_key} is missing; provide client.pem and client.key in {dir}, or the CA key that issues them"
    )]
    NoCaKey {
        /// The missing CA key.
        ca_key: PathBuf,
        /// The keys directory.
        dir: PathBuf,
    },
    /// A private key file that other users may read or write.
    #[error(
        "{path} is readable or writable by other users (mode {mode:03o}); private keys must not be: run `chmod 600 {path}`"
    )]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A certificate that does not chain to the CA, has expired, or is not valid yet.
    #[error("{path}: the certificate is not valid: {reason}")]
    Invalid {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// A private key that is not the certificate's: both parse, but they are not a pair
    /// (a key from another set, say).
    #[error("{key} does not go with {cert}")]
    KeyMismatch {
        /// The private key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// rustls's finding.
        source: rustls::Error,
    },
    /// Renewal was asked for, but the CA key that would sign the new certificates is gone.
    #[error(
        "cannot renew: {ca_key} is missing, and only the CA that issued the certificates can renew them; issue new ones where that CA is kept, or generate a new set (remove the directory's files)"
    )]
    NoCaKeyToRenew {
        /// The missing CA key.
        ca_key: PathBuf,
    },
    /// `ca.key` is not a private key rcgen can sign with.
    #[error("{path} is not a usable CA key")]
    CaKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rcgen::Error,
    },
}
