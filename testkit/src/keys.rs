//! A keys directory for a test: generated, like the services generate it, into a
//! temporary directory removed when the test ends; and directories broken in each way the
//! services must refuse.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ecommerce::keys::{self, CertificateUse, KeyPaths, Validity};
use tempfile::TempDir;

/// A keys directory with a freshly generated CA, server and client certificates, in a
/// temporary directory (keep the [`TempDir`] alive as long as the keys are used).
pub fn generated_keys() -> (TempDir, KeyPaths) {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = KeyPaths::new(dir.path().join("keys"));
    keys::ensure_keys(&paths, &[]).expect("keys generated");
    (dir, paths)
}

/// A keys directory broken in one way, for the start-up tests of both services.
pub struct BrokenKeys {
    /// What is wrong with it, in words.
    pub case: &'static str,
    /// The directory (removed when dropped).
    pub dir: TempDir,
    /// Its files.
    pub paths: KeyPaths,
    /// The file a refusal must name, and words of the reason it must give.
    pub expected: (PathBuf, &'static str),
}

/// The TLS sets both services must refuse at start-up as on reload, each made from a
/// generated directory by breaking the files that `usage` uses (`cert.pem`/`private.key`
/// for the server, `client.pem`/`client.key` for the client): a key from another set, a
/// certificate from another CA, an empty file, a directory where a file should be, an
/// expired certificate. Then `ca.key` is removed (a mounted Secret has none), so that
/// nothing is renewed or issued at start.
pub fn broken_sets(usage: CertificateUse) -> Vec<BrokenKeys> {
    let (_other_dir, other) = generated_keys();
    let (other_cert, other_key) = usage.files(&other);
    let copy = |from: &Path, to: &Path| {
        fs::copy(from, to).expect("copy");
    };
    type Break<'a> = &'a dyn Fn(&KeyPaths, &Path, &Path) -> PathBuf;
    let mut sets = Vec::new();
    let mut broken = |case, expected_reason, break_it: Break| {
        let (dir, paths) = generated_keys();
        let (cert, key) = usage.files(&paths);
        let named = break_it(&paths, &cert, &key);
        fs::remove_file(paths.ca_key()).expect("remove ca.key");
        sets.push(BrokenKeys {
            case,
            dir,
            paths,
            expected: (named, expected_reason),
        });
    };
    broken(
        "a key from another set",
        "does not go with",
        &|_, _, key| {
            copy(&other_key, key);
            key.to_owned()
        },
    );
    broken(
        "a certificate (and its key) from another CA",
        "not issued by the CA this directory trusts",
        &|_, cert, key| {
            copy(&other_cert, cert);
            copy(&other_key, key);
            cert.to_owned()
        },
    );
    broken(
        "an empty file",
        "does not hold a valid PEM certificate",
        &|_, cert, _| {
            fs::write(cert, b"").expect("truncate");
            cert.to_owned()
        },
    );
    broken(
        "a directory where a file should be",
        "Is a directory",
        &|_, _, key| {
            fs::remove_file(key).expect("remove the key");
            fs::create_dir(key).expect("a directory in its place");
            key.to_owned()
        },
    );
    broken(
        "an expired certificate",
        "it has expired",
        &|paths, cert, _| {
            expire(paths, cert);
            cert.to_owned()
        },
    );
    sets
}

/// Reissues the leaves of `paths` (keeping their keys) valid for no time at all, and
/// returns once `cert` has expired: certificate times are whole seconds, so this waits for
/// the clock to pass one.
fn expire(paths: &KeyPaths, cert: &Path) {
    let zero = Validity {
        leaf: Duration::ZERO,
        ..Validity::default()
    };
    keys::renew(paths, &[], &zero, Duration::MAX).expect("reissued");
    let not_after = keys::certificate_info(cert).expect("certificate").not_after;
    while SystemTime::now() < not_after + Duration::from_secs(1) {
        // Waiting for the clock, not for readiness.
        std::thread::sleep(Duration::from_millis(100));
    }
}
