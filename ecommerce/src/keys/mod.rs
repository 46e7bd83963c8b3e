//! The demo's TLS files: where they live, how they are made, how they are read.
//!
//! The project makes its own keys with rcgen, so that nobody needs an `openssl` step. The
//! keys directory holds:
//!
//! | file          | what                                               | mode |
//! |---------------|----------------------------------------------------|------|
//! | `ca.pem`      | the local CA certificate: what clients trust       | 0644 |
//! | `ca.key`      | the CA's private key, kept to sign later leaves    | 0600 |
//! | `cert.pem`    | the server certificate, then the CA certificate    | 0644 |
//! | `private.key` | the server's private key (PKCS#8)                  | 0600 |
//! | `client.pem`  | the catalog's client certificate, then the CA      | 0644 |
//! | `client.key`  | the catalog's client private key (PKCS#8)          | 0600 |
//!
//! The client certificate (usage: TLS client authentication) is what the catalog presents
//! when discount requires mutual TLS. A directory made before it existed gets one issued,
//! on demand, by the CA kept in `ca.key` ([`ensure_client_keys`]).
//!
//! `cert.pem` and `private.key` are the names the old Go and Python services used. Putting
//! the CA after the leaf in `cert.pem` serves both directions of compatibility: a client of
//! any language that trusts `cert.pem` finds the CA in it, and a server of any language that
//! loads `cert.pem` and `private.key` sends a chain our catalog verifies against `ca.pem`.
//!
//! Either service generates the set when `cert.pem` is missing, whichever starts first. Two
//! processes may start at once (the demo script starts both), so generation holds an
//! exclusive lock on `.lock` in the directory, checks again under the lock, writes every file
//! to a temporary name and renames it into place, `cert.pem` last. A reader therefore never
//! sees a certificate without its key, and a crash part-way leaves `cert.pem` missing, which
//! the next start repairs. An existing set is reused; only [`renew`] rewrites a leaf
//! certificate (keeping its key), before it expires ([`lifetime`]).
//!
//! One module per concern, each using only those listed before it: `paths` (the file
//! names), `error`, `files` (reading, locking, atomic writes), `certificate` (what a
//! certificate says: expiry, names), `verify` (an identity checked as a peer and rustls
//! would), `issue` (generating with rcgen) and [`lifetime`] (validity and renewal).

mod certificate;
mod error;
mod files;
mod issue;
pub mod lifetime;
mod paths;
mod verify;

pub use self::certificate::{
    CertificateInfo, certificate_info, earliest_expiry, earliest_expiry_in,
};
pub use self::error::KeyError;
pub use self::files::{PemIdentity, read_client_identity, read_server_identity, read_trust_roots};
pub use self::issue::{
    DEFAULT_SERVER_NAMES, KeysOrigin, Validity, ensure_client_keys, ensure_keys, ensure_keys_with,
    ensure_trust_roots,
};
pub use self::lifetime::{
    DEFAULT_RENEW_BEFORE, ExpiryWatch, LifetimeArgs, Renewal, log_expiry, renew,
};
pub use self::paths::{KeyPaths, default_keys_dir};
pub use self::verify::{
    CertificateUse, CheckedIdentity, read_checked_identity, verify_identity, verify_key,
};

#[cfg(test)]
mod tests;
