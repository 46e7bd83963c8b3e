//! A keys directory for a test: generated, like the services generate it, into a
//! temporary directory removed when the test ends.

use ecommerce::keys::{self, KeyPaths};
use tempfile::TempDir;

/// A keys directory with a freshly generated CA, server and client certificates, in a
/// temporary directory (keep the [`TempDir`] alive as long as the keys are used).
pub fn generated_keys() -> (TempDir, KeyPaths) {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = KeyPaths::new(dir.path().join("keys"));
    keys::ensure_keys(&paths, &[]).expect("keys generated");
    (dir, paths)
}
