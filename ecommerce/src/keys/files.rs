//! Reading and writing the directory's files: PEM that must parse, private keys that only
//! their owner may read, one generation at a time (a lock), and writes that are never seen
//! half done (a rename into place).

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::KeyError;
use super::paths::KeyPaths;

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

/// Reads and checks the server's certificate chain (`cert.pem`) and key (`private.key`).
pub fn read_server_identity(paths: &KeyPaths) -> Result<PemIdentity, KeyError> {
    read_identity(&paths.server_cert(), &paths.server_key())
}

/// Reads and checks the catalog's client certificate chain (`client.pem`) and key
/// (`client.key`).
pub fn read_client_identity(paths: &KeyPaths) -> Result<PemIdentity, KeyError> {
    read_identity(&paths.client_cert(), &paths.client_key())
}

/// Reads a certificate chain and its key, both checked to parse.
pub(crate) fn read_identity(cert_path: &Path, key_path: &Path) -> Result<PemIdentity, KeyError> {
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

/// Reads the certificates a client should trust ([`KeyPaths::trust_roots`]).
pub fn read_trust_roots(paths: &KeyPaths) -> Result<Vec<u8>, KeyError> {
    read_certificates(&paths.trust_roots())
}

/// Reads a PEM file and checks it holds at least one certificate, all of them parsable.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<u8>, KeyError> {
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

/// Reads a private key file, refusing one that other users may read or write. Group read
/// is allowed: Kubernetes mounts Secrets group-readable for the pod's group (`fsGroup`).
pub(crate) fn read_private(path: &Path) -> Result<Vec<u8>, KeyError> {
    let read_error = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = fs::metadata(path).map_err(read_error)?;
    // A directory's mode says nothing of a key: say what it is (a volume mounted at the
    // key's path, say), not that it is readable by others.
    if metadata.is_dir() {
        return Err(read_error(io::ErrorKind::IsADirectory.into()));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    read(path)
}

/// Reads a file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Takes the keys directory's generation lock, creating the directory if needed. The lock
/// is released when the returned file is dropped.
pub(crate) fn lock(paths: &KeyPaths) -> Result<File, KeyError> {
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

/// Writes `contents` to a temporary file beside `path` with `mode`, then renames it over
/// `path`, so `path` is either absent or complete.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
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

/// Makes the directory's renames durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| KeyError::Write {
            path: dir.to_owned(),
            source,
        })
}
