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

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub mod lifetime;
pub mod reload;

pub use lifetime::{
    CertificateInfo, DEFAULT_RENEW_BEFORE, ExpiryGauges, ExpiryWatch, LifetimeArgs, Renewal,
    Validity, certificate_info, earliest_expiry, log_expiry, renew,
};
pub use reload::{FileWatch, ReloadCounters};

/// Names every server certificate carries, so local clients verify it by name or address.
pub const DEFAULT_SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The repository's `keys/` directory, the default for both services.
///
/// It is fixed at build time so that `cargo run -p discount` and `cargo run -p catalog`
/// share one directory whatever the working directory. An installed binary (a container)
/// should be given `--keys-dir` or `KEYS_DIR` instead.
pub fn default_keys_dir() -> PathBuf {
    let ecommerce_crate = Path::new(env!("CARGO_MANIFEST_DIR"));
    ecommerce_crate
        .parent()
        .unwrap_or(ecommerce_crate)
        .join("keys")
}

/// The paths of the files in one keys directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPaths {
    dir: PathBuf,
}

impl KeyPaths {
    /// The files of the keys directory `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The keys directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.pem`: the local CA's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `ca.key`: the local CA's private key.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// `cert.pem`: the server certificate followed by the CA certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// `private.key`: the server's private key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("private.key")
    }

    /// `client.pem`: the catalog's client certificate followed by the CA certificate.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    /// `client.key`: the catalog's client private key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    fn lock_file(&self) -> PathBuf {
        self.dir.join(".lock")
    }
}

/// Whether [`ensure_keys`] found the set or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysOrigin {
    /// The directory already held `cert.pem` and `private.key`.
    Existing,
    /// A new CA and server certificate were generated.
    Generated,
}

/// A certificate chain and its private key, as PEM, checked to parse: a server's or a
/// client's identity.
#[derive(Clone)]
pub struct PemIdentity {
    /// The leaf certificate first, then any intermediates and the CA.
    pub cert_chain_pem: Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key_pem: Vec<u8>,
}

impl std::fmt::Debug for PemIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, even in debug logs.
        f.debug_struct("PemIdentity").finish_non_exhaustive()
    }
}

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

/// Makes sure `paths` holds a server certificate and key, generating a new set if not.
///
/// `extra_names` are added to the server certificate's subject alternative names besides
/// [`DEFAULT_SERVER_NAMES`] (a container's host name, say). They only matter when the set is
/// generated: an existing certificate is reused as it is.
///
/// This blocks while another process generates the set, for as long as that takes.
pub fn ensure_keys(paths: &KeyPaths, extra_names: &[String]) -> Result<KeysOrigin, KeyError> {
    ensure_keys_with(paths, extra_names, &Validity::default())
}

/// [`ensure_keys`], with the validity of the certificates it may generate.
pub fn ensure_keys_with(
    paths: &KeyPaths,
    extra_names: &[String],
    validity: &Validity,
) -> Result<KeysOrigin, KeyError> {
    // Fast path with no lock: a complete set is never removed or rewritten by us.
    if paths.server_cert().exists() {
        return check_key_present(paths).map(|()| KeysOrigin::Existing);
    }

    let lock = lock(paths)?;
    // Another process may have finished while we waited for the lock.
    let origin = if paths.server_cert().exists() {
        check_key_present(paths)?;
        KeysOrigin::Existing
    } else {
        generate(paths, extra_names, validity)?;
        KeysOrigin::Generated
    };
    drop(lock); // Closing the file releases the lock.
    Ok(origin)
}

/// Reads the certificates a client should trust (see [`read_trust_roots`]), generating a
/// new set of keys first if the directory has neither `ca.pem` nor `cert.pem`.
///
/// A directory that holds only a CA (a client's mounted secret, say) is read as it is: only
/// a directory with nothing to trust gets keys generated.
pub fn read_or_generate_trust_roots(paths: &KeyPaths) -> Result<Vec<u8>, KeyError> {
    if has_nothing_to_trust(paths) {
        ensure_keys(paths, &[])?;
    }
    read_trust_roots(paths)
}

/// Makes sure `paths` holds the catalog's client certificate and key, issuing them with
/// the CA in `ca.key` if they are missing.
///
/// Only a directory with nothing to trust (no `ca.pem`, no `cert.pem`) gets a whole new
/// set; a directory that holds only a CA (a client's mounted secret) is never given a new
/// one, which would replace the CA that discount's certificate chains to.
pub fn ensure_client_keys(paths: &KeyPaths) -> Result<KeysOrigin, KeyError> {
    if paths.client_cert().exists() {
        return Ok(KeysOrigin::Existing);
    }
    if has_nothing_to_trust(paths) && ensure_keys(paths, &[])? == KeysOrigin::Generated {
        return Ok(KeysOrigin::Generated); // a new set includes the client certificate
    }
    let lock = lock(paths)?;
    let origin = if paths.client_cert().exists() {
        KeysOrigin::Existing
    } else {
        let ca_key_path = paths.ca_key();
        if !ca_key_path.exists() {
            return Err(KeyError::NoCaKey {
                ca_key: ca_key_path,
                dir: paths.dir().to_owned(),
            });
        }
        let pem = String::from_utf8_lossy(&read_private(&ca_key_path)?).into_owned();
        let ca_key = KeyPair::from_pem(&pem).map_err(|source| KeyError::CaKey {
            path: ca_key_path,
            source,
        })?;
        let ca_pem = String::from_utf8_lossy(&read_certificates(&paths.ca_cert())?).into_owned();
        // The CA's name is read from ca.pem: each generated CA has a name of its own.
        let issuer =
            Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|source| KeyError::CaKey {
                path: paths.ca_cert(),
                source,
            })?;
        write_client_keys(paths, &issuer, &ca_pem, Validity::default().leaf)?;
        sync_dir(paths.dir())?;
        KeysOrigin::Generated
    };
    drop(lock);
    Ok(origin)
}

/// Reads and checks the catalog's client certificate chain (`client.pem`) and key
/// (`client.key`).
pub fn read_client_identity(paths: &KeyPaths) -> Result<PemIdentity, KeyError> {
    read_identity(&paths.client_cert(), &paths.client_key())
}

/// Neither `ca.pem` nor `cert.pem`: the only case in which a reader of trust roots may
/// generate a new set without replacing a CA someone relies on.
fn has_nothing_to_trust(paths: &KeyPaths) -> bool {
    !paths.ca_cert().exists() && !paths.server_cert().exists()
}

/// Takes the keys directory's generation lock, creating the directory if needed. The lock
/// is released when the returned file is dropped.
fn lock(paths: &KeyPaths) -> Result<File, KeyError> {
    fs::create_dir_all(paths.dir()).map_err(|source| KeyError::CreateDir {
        path: paths.dir().to_owned(),
        source,
    })?;
    let lock_path = paths.lock_file();
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|source| KeyError::Lock {
            path: lock_path,
            source,
        })
}

/// Reads and checks the server's certificate chain (`cert.pem`) and key (`private.key`).
pub fn read_server_identity(paths: &KeyPaths) -> Result<PemIdentity, KeyError> {
    read_identity(&paths.server_cert(), &paths.server_key())
}

fn read_identity(cert_path: &Path, key_path: &Path) -> Result<PemIdentity, KeyError> {
    let cert_chain_pem = read_certificates(cert_path)?;
    let private_key_pem = read_private(key_path)?;
    PrivateKeyDer::from_pem_slice(&private_key_pem).map_err(|source| KeyError::Pem {
        path: key_path.to_owned(),
        what: "private key",
        source,
    })?;
    Ok(PemIdentity {
        cert_chain_pem,
        private_key_pem,
    })
}

/// Reads the certificates a client should trust: `ca.pem`, or `cert.pem` where there is no
/// `ca.pem` (keys made by the old services' openssl step had only a self-signed `cert.pem`).
pub fn read_trust_roots(paths: &KeyPaths) -> Result<Vec<u8>, KeyError> {
    let ca = paths.ca_cert();
    if ca.exists() {
        read_certificates(&ca)
    } else {
        read_certificates(&paths.server_cert())
    }
}

/// Reads a PEM file and checks it holds at least one certificate, all of them parsable.
fn read_certificates(path: &Path) -> Result<Vec<u8>, KeyError> {
    let bytes = read(path)?;
    let pem_error = |source| KeyError::Pem {
        path: path.to_owned(),
        what: "certificate",
        source,
    };
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        cert.map_err(pem_error)?;
        count += 1;
    }
    if count == 0 {
        return Err(pem_error(pem::Error::NoItemsFound));
    }
    Ok(bytes)
}

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

/// Reads a private key file, refusing one that other users may read or write. Group read
/// is allowed: Kubernetes mounts Secrets group-readable for the pod's group (`fsGroup`).
fn read_private(path: &Path) -> Result<Vec<u8>, KeyError> {
    let mode = fs::metadata(path)
        .map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o007 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    read(path)
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

fn check_key_present(paths: &KeyPaths) -> Result<(), KeyError> {
    if paths.server_key().exists() {
        Ok(())
    } else {
        Err(KeyError::MissingKey {
            cert: paths.server_cert(),
            key: paths.server_key(),
        })
    }
}

/// Generates a CA and a server certificate signed by it, and writes the four files.
///
/// Leaves are valid for `validity.leaf` (90 days by default) and the CA for `validity.ca`
/// (10 years): [`renew`] reissues the leaves from `ca.key`, and the services do it at
/// start. Keys are ECDSA P-256, which every mainstream TLS stack (rustls, Go, BoringSSL in
/// Python's grpcio, OpenSSL) accepts.
fn generate(paths: &KeyPaths, extra_names: &[String], validity: &Validity) -> Result<(), KeyError> {
    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params(&ca_key, validity.ca)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let server = leaf_params(Leaf::Server, &server_names(extra_names), validity.leaf)?;
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let chain = format!("{}{}", server_cert.pem(), ca_cert.pem());
    write_atomically(&paths.ca_key(), ca_key_pem.as_bytes(), 0o600)?;
    write_atomically(&paths.ca_cert(), ca_cert.pem().as_bytes(), 0o644)?;
    write_client_keys(paths, &issuer, &ca_cert.pem(), validity.leaf)?;
    write_atomically(
        &paths.server_key(),
        server_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    // Last: its presence is what tells every reader the set is complete.
    write_atomically(&paths.server_cert(), chain.as_bytes(), 0o644)?;
    sync_dir(paths.dir())
}

/// The two kinds of leaf certificate the directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    /// discount's: `cert.pem`, for TLS servers.
    Server,
    /// the catalog's: `client.pem`, for TLS clients.
    Client,
}

/// [`DEFAULT_SERVER_NAMES`] and `extra`, as the server certificate carries them.
fn server_names(extra: &[String]) -> Vec<String> {
    DEFAULT_SERVER_NAMES
        .iter()
        .map(|name| name.to_string())
        .chain(extra.iter().filter(|name| !name.is_empty()).cloned())
        .collect()
}

/// A leaf's parameters: `names` (a server's), its use, valid for `validity` from now.
fn leaf_params(
    leaf: Leaf,
    names: &[String],
    validity: std::time::Duration,
) -> Result<CertificateParams, KeyError> {
    // `new` turns "127.0.0.1" and "::1" into IP-address names and the rest into DNS names.
    let mut params = CertificateParams::new(names.to_vec())?;
    let (common_name, usage) = match leaf {
        Leaf::Server => ("discount", ExtendedKeyUsagePurpose::ServerAuth),
        Leaf::Client => ("catalog", ExtendedKeyUsagePurpose::ClientAuth),
    };
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    lifetime::set_validity(&mut params, validity);
    Ok(params)
}

/// A new certificate's serial number, random for each certificate, renewals included: RFC
/// 5280 §4.1.2.2 wants serials unique per CA (a renewal keeps its key, so a serial derived
/// from the key, rcgen's default, would repeat), and the CA/Browser Forum asks for at
/// least 64 random bits. 16 bytes from the system's generator, the top bit clear (positive)
/// and the next one set (never zero, and always 16 bytes long): 126 random bits.
fn random_serial() -> Result<SerialNumber, rcgen::Error> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    bytes[0] = (bytes[0] & 0x3f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Issues the catalog's client certificate with `issuer` and writes `client.key` and
/// `client.pem` (the certificate, then `ca_pem`).
fn write_client_keys(
    paths: &KeyPaths,
    issuer: &Issuer<'_, KeyPair>,
    ca_pem: &str,
    validity: std::time::Duration,
) -> Result<(), KeyError> {
    let client = leaf_params(Leaf::Client, &[], validity)?;
    let client_key = KeyPair::generate()?;
    let client_cert = client.signed_by(&client_key, issuer)?;
    write_atomically(
        &paths.client_key(),
        client_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_atomically(
        &paths.client_cert(),
        format!("{}{ca_pem}", client_cert.pem()).as_bytes(),
        0o644,
    )
}

/// A new local CA's parameters. Its name carries part of its key's public bytes, so that
/// each generated CA has a name of its own: a certificate from another of our CAs is then
/// reported as from an unknown issuer, not as a bad signature under a same-named one.
fn ca_params(
    ca_key: &KeyPair,
    validity: std::time::Duration,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let public = ca_key.public_key_raw();
    let id: String = public[public.len().saturating_sub(4)..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("ecommerce demo local CA {id}"));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial()?);
    lifetime::set_validity(&mut params, validity);
    Ok(params)
}

/// Writes `contents` to a temporary file beside `path` with `mode`, then renames it over
/// `path`, so `path` is either absent or complete.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` applies only to a new file; a stale temporary may have another.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        KeyError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| KeyError::Write {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_gets_a_full_set_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path().join("keys"));
        assert_eq!(ensure_keys(&paths, &[]).unwrap(), KeysOrigin::Generated);

        assert_eq!(mode(&paths.server_key()), 0o600);
        assert_eq!(mode(&paths.ca_key()), 0o600);
        let identity = read_server_identity(&paths).unwrap();
        let chain: Vec<_> = CertificateDer::pem_slice_iter(&identity.cert_chain_pem)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(chain.len(), 2, "cert.pem holds the leaf then the CA");
        let ca = CertificateDer::from_pem_file(paths.ca_cert()).unwrap();
        assert_eq!(chain[1], ca);
    }

    #[test]
    fn a_new_set_has_a_client_certificate_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        ensure_keys(&paths, &[]).unwrap();
        assert_eq!(mode(&paths.client_key()), 0o600);
        let client = read_client_identity(&paths).unwrap();
        assert_eq!(
            CertificateDer::pem_slice_iter(&client.cert_chain_pem).count(),
            2
        );
        assert_eq!(ensure_client_keys(&paths).unwrap(), KeysOrigin::Existing);
    }

    #[test]
    fn an_older_set_without_a_client_certificate_gets_one_from_its_ca() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        ensure_keys(&paths, &[]).unwrap();
        fs::remove_file(paths.client_cert()).unwrap();
        fs::remove_file(paths.client_key()).unwrap();
        let server_before = fs::read(paths.server_cert()).unwrap();

        assert_eq!(ensure_client_keys(&paths).unwrap(), KeysOrigin::Generated);
        assert_eq!(
            fs::read(paths.server_cert()).unwrap(),
            server_before,
            "the server's keys stay"
        );
        let client = read_client_identity(&paths).unwrap();
        let chain: Vec<_> = CertificateDer::pem_slice_iter(&client.cert_chain_pem)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            chain[1],
            CertificateDer::from_pem_file(paths.ca_cert()).unwrap()
        );

        // Without the CA's key nothing can issue it: a clear error.
        fs::remove_file(paths.client_cert()).unwrap();
        fs::remove_file(paths.ca_key()).unwrap();
        let err = ensure_client_keys(&paths).unwrap_err();
        assert!(err.to_string().contains("ca.key is missing"), "{err}");
    }

    #[test]
    fn a_directory_with_only_a_ca_never_gets_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let full = KeyPaths::new(dir.path().join("full"));
        ensure_keys(&full, &[]).unwrap();
        let only_ca = KeyPaths::new(dir.path().join("ca-only"));
        fs::create_dir(only_ca.dir()).unwrap();
        fs::copy(full.ca_cert(), only_ca.ca_cert()).unwrap();

        let err = ensure_client_keys(&only_ca).unwrap_err();
        assert!(matches!(err, KeyError::NoCaKey { .. }), "{err}");
        assert_eq!(
            fs::read(only_ca.ca_cert()).unwrap(),
            fs::read(full.ca_cert()).unwrap()
        );
        assert_eq!(
            read_or_generate_trust_roots(&only_ca).unwrap(),
            fs::read(full.ca_cert()).unwrap()
        );
    }

    #[test]
    fn a_private_key_others_can_read_is_refused_and_group_read_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        ensure_keys(&paths, &[]).unwrap();
        fs::set_permissions(paths.server_key(), Permissions::from_mode(0o640)).unwrap();
        read_server_identity(&paths).expect("group read is allowed (Kubernetes fsGroup)");
        fs::set_permissions(paths.server_key(), Permissions::from_mode(0o644)).unwrap();
        let err = read_server_identity(&paths).unwrap_err().to_string();
        assert!(
            err.contains("readable or writable by other users (mode 644)"),
            "{err}"
        );
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn generated_identities_verify_against_their_ca_for_their_use() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        ensure_keys(&paths, &[]).unwrap();
        let ca = fs::read(paths.ca_cert()).unwrap();
        let server = read_server_identity(&paths).unwrap();
        let client = read_client_identity(&paths).unwrap();
        verify_identity(&server, &ca, CertificateUse::Server, &paths.server_cert()).unwrap();
        verify_identity(&client, &ca, CertificateUse::Client, &paths.client_cert()).unwrap();
        let err = verify_identity(&client, &ca, CertificateUse::Server, &paths.client_cert())
            .unwrap_err()
            .to_string();
        assert!(err.contains("extended key usage"), "{err}");
    }

    #[test]
    fn a_certificate_from_another_ca_or_expired_is_invalid_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, other) = (
            KeyPaths::new(dir.path().join("a")),
            KeyPaths::new(dir.path().join("b")),
        );
        ensure_keys(&ours, &[]).unwrap();
        ensure_keys(&other, &[]).unwrap();
        let server = read_server_identity(&ours).unwrap();
        let other_ca = fs::read(other.ca_cert()).unwrap();
        let err = verify_identity(
            &server,
            &other_ca,
            CertificateUse::Server,
            &ours.server_cert(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("cert.pem: the certificate is not valid: it was not issued by the CA"),
            "{err}"
        );

        // An expired certificate, signed by a CA made for the purpose.
        let ca_key = KeyPair::generate().unwrap();
        let ca_params = ca_params(&ca_key, Validity::default().ca).unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.not_before = rcgen::date_time_ymd(2000, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let leaf_key = KeyPair::generate().unwrap();
        let expired = PemIdentity {
            cert_chain_pem: leaf
                .signed_by(&leaf_key, &issuer)
                .unwrap()
                .pem()
                .into_bytes(),
            private_key_pem: leaf_key.serialize_pem().into_bytes(),
        };
        let err = verify_identity(
            &expired,
            ca_cert.pem().as_bytes(),
            CertificateUse::Server,
            Path::new("cert.pem"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.ends_with("it has expired"), "{err}");
    }

    #[test]
    fn an_existing_set_is_reused_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        ensure_keys(&paths, &[]).unwrap();
        let before = read_server_identity(&paths).unwrap();
        assert_eq!(ensure_keys(&paths, &[]).unwrap(), KeysOrigin::Existing);
        let after = read_server_identity(&paths).unwrap();
        assert_eq!(before.cert_chain_pem, after.cert_chain_pem);
        assert_eq!(before.private_key_pem, after.private_key_pem);
    }

    #[test]
    fn a_certificate_without_its_key_is_an_error_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        ensure_keys(&paths, &[]).unwrap();
        fs::remove_file(paths.server_key()).unwrap();
        let err = ensure_keys(&paths, &[]).unwrap_err();
        assert!(matches!(err, KeyError::MissingKey { .. }), "{err}");
    }

    #[test]
    fn a_key_without_its_certificate_is_a_crashed_generation_and_is_redone() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        ensure_keys(&paths, &[]).unwrap();
        fs::remove_file(paths.server_cert()).unwrap();
        assert_eq!(ensure_keys(&paths, &[]).unwrap(), KeysOrigin::Generated);
        read_server_identity(&paths).unwrap();
    }

    #[test]
    fn trust_roots_fall_back_to_cert_pem_without_ca_pem() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        ensure_keys(&paths, &[]).unwrap();
        assert_eq!(
            read_trust_roots(&paths).unwrap(),
            fs::read(paths.ca_cert()).unwrap()
        );
        fs::remove_file(paths.ca_cert()).unwrap();
        assert_eq!(
            read_trust_roots(&paths).unwrap(),
            fs::read(paths.server_cert()).unwrap()
        );
    }

    #[test]
    fn a_file_that_is_not_pem_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        fs::write(paths.server_cert(), "not a certificate").unwrap();
        fs::write(paths.server_key(), "not a key").unwrap();
        let err = read_server_identity(&paths).unwrap_err();
        assert!(err.to_string().contains("cert.pem"), "{err}");
    }

    #[test]
    fn concurrent_generators_agree_on_one_matching_set() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path().join("keys"));
        let origins: Vec<KeysOrigin> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| ensure_keys(&paths, &[]).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let generated = origins
            .iter()
            .filter(|o| **o == KeysOrigin::Generated)
            .count();
        assert_eq!(generated, 1, "exactly one thread generates: {origins:?}");

        // The key must belong to the certificate: rustls checks that when it builds a config.
        let identity = read_server_identity(&paths).unwrap();
        let chain = CertificateDer::pem_slice_iter(&identity.cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(&identity.private_key_pem).unwrap();
        rustls::ServerConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the key matches the certificate");
    }
}
