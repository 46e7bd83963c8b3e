//! Where the keys directory is, and the names of its files.

use std::path::{Path, PathBuf};

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

    /// What a client trusts: `ca.pem`, or `cert.pem` where there is no `ca.pem` (keys made
    /// by the old services' openssl step had only a self-signed `cert.pem`).
    pub fn trust_roots(&self) -> PathBuf {
        let ca = self.ca_cert();
        if ca.exists() { ca } else { self.server_cert() }
    }

    /// `.lock`: held while a set is generated or renewed.
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.dir.join(".lock")
    }
}
