//! Certificates with a life: how long generated ones are valid, when they expire, and
//! renewing the leaves from the kept CA.
//!
//! Leaves (the server's and the client's) are issued for 90 days by default, as ACME and
//! cert-manager do; the CA for ten years. Renewal reissues a leaf that expires within the
//! renewal window (30 days by default), or that lacks a name it should carry, **with the
//! same key**: only the certificate file changes, by one atomic rename, so a reader never
//! sees a certificate that does not match its key (a new key would be a second file, and
//! a reader between the two renames would get a mismatched pair).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::KeyPair;

use super::certificate::certificate_info;
use super::error::KeyError;
use super::files::{lock, read_private, sync_dir, write_atomically};
use super::issue::{self, Leaf, Validity, leaf_params};
use super::paths::KeyPaths;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn days(count: u64) -> Duration {
    Duration::from_secs(count.saturating_mul(DAY.as_secs()))
}

/// The certificate lifetime flags, for both services.
#[derive(Debug, Clone, clap::Args)]
pub struct LifetimeArgs {
    /// How long generated and renewed server and client certificates are valid, in days.
    #[arg(
        long = "cert-validity-days",
        env = "CERT_VALIDITY_DAYS",
        global = true,
        default_value_t = 90,
        value_parser = clap::value_parser!(u64).range(1..=3650)
    )]
    pub cert_validity_days: u64,

    /// How long a generated CA is valid, in days.
    #[arg(
        long = "ca-validity-days",
        env = "CA_VALIDITY_DAYS",
        global = true,
        default_value_t = 3650,
        value_parser = clap::value_parser!(u64).range(1..=36500)
    )]
    pub ca_validity_days: u64,

    /// Renew certificates with fewer days left than this (at start, and with
    /// `gen-keys --renew`), and warn about those that have.
    #[arg(
        long = "renew-before-days",
        env = "CERT_RENEW_BEFORE_DAYS",
        global = true,
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=3650)
    )]
    pub renew_before_days: u64,
}

impl LifetimeArgs {
    /// The validity of generated certificates, checked: a renewal window as long as a
    /// leaf's life would renew it at every start.
    pub fn validity(&self) -> Result<Validity, String> {
        if self.renew_before_days >= self.cert_validity_days {
            return Err(format!(
                "--renew-before-days ({}) must be less than --cert-validity-days ({}): certificates would be renewed at every start",
                self.renew_before_days, self.cert_validity_days
            ));
        }
        if self.ca_validity_days < self.cert_validity_days {
            return Err(format!(
                "--ca-validity-days ({}) must be at least --cert-validity-days ({})",
                self.ca_validity_days, self.cert_validity_days
            ));
        }
        Ok(Validity {
            leaf: days(self.cert_validity_days),
            ca: days(self.ca_validity_days),
        })
    }

    /// The renewal window.
    pub fn renew_before(&self) -> Duration {
        days(self.renew_before_days)
    }
}

/// Renew a leaf that has less than this left (default 30 days), and warn about one.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// One leaf [`renew`] looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    /// The certificate file.
    pub path: PathBuf,
    /// Whether it was reissued.
    pub renewed: bool,
    /// Why it was, or why not (in words, for the log and the command's output).
    pub reason: String,
}

/// Reissues, from `ca.key`, each leaf of `paths` (the server's `cert.pem`, the client's
/// `client.pem`, those present) that expires within `renew_before` or lacks one of
/// `server_names` (the server's only), keeping its key. Without `ca.key` nothing can be
/// issued: that is an error that says so.
pub fn renew(
    paths: &KeyPaths,
    server_names: &[String],
    validity: &Validity,
    renew_before: Duration,
) -> Result<Vec<Renewal>, KeyError> {
    let ca_key_path = paths.ca_key();
    if !ca_key_path.exists() {
        return Err(KeyError::NoCaKeyToRenew {
            ca_key: ca_key_path,
        });
    }
    // Decided first, reading only: a directory with nothing to renew is never locked or
    // written (it may be mounted read-only, as compose mounts the keys volume).
    let (mut done, due) = due_leaves(paths, server_names, renew_before)?;
    if due.is_empty() {
        return Ok(done);
    }
    let lock = lock(paths)?;
    let (issuer, ca_pem) = issue::kept_ca(paths)?;
    for leaf in due {
        let key_pem = String::from_utf8_lossy(&read_private(&leaf.key_path)?).into_owned();
        let key = KeyPair::from_pem(&key_pem).map_err(|source| KeyError::CaKey {
            path: leaf.key_path.clone(),
            source,
        })?;
        let params = leaf_params(leaf.kind, &leaf.names, validity.leaf)?;
        let cert = params.signed_by(&key, &issuer)?;
        write_atomically(
            &leaf.cert_path,
            format!("{}{ca_pem}", cert.pem()).as_bytes(),
            0o644,
        )?;
        done.push(Renewal {
            path: leaf.cert_path,
            renewed: true,
            reason: leaf.reason,
        });
    }
    sync_dir(paths.dir())?;
    drop(lock);
    Ok(done)
}

/// A leaf that [`renew`] will reissue.
struct DueLeaf {
    cert_path: PathBuf,
    key_path: PathBuf,
    kind: Leaf,
    /// The names it must carry.
    names: Vec<String>,
    /// Why it is due, in words.
    reason: String,
}

/// The leaves of `paths` that are fine (as [`Renewal`]s, not renewed), and those due.
fn due_leaves(
    paths: &KeyPaths,
    server_names: &[String],
    renew_before: Duration,
) -> Result<(Vec<Renewal>, Vec<DueLeaf>), KeyError> {
    let mut fine = Vec::new();
    let mut due = Vec::new();
    let leaves = [
        (paths.server_cert(), paths.server_key(), Leaf::Server),
        (paths.client_cert(), paths.client_key(), Leaf::Client),
    ];
    for (cert_path, key_path, kind) in leaves {
        if !cert_path.exists() {
            continue;
        }
        let info = certificate_info(&cert_path)?;
        let names: Vec<String> = match kind {
            Leaf::Server => issue::server_names(server_names),
            Leaf::Client => Vec::new(),
        };
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| !info.names.contains(name))
            .collect();
        let left = info.time_left();
        let days_left = format!("{} days left", left.as_secs() / DAY.as_secs());
        let reason = if !missing.is_empty() {
            format!("it lacks {missing:?}")
        } else if left < renew_before {
            days_left
        } else {
            fine.push(Renewal {
                path: cert_path,
                renewed: false,
                reason: days_left,
            });
            continue;
        };
        due.push(DueLeaf {
            cert_path,
            key_path,
            kind,
            names,
            reason,
        });
    }
    Ok((fine, due))
}

/// Logs when `what` (`"server"`, `"client"`, `"ca"`), read from `path`, expires
/// (`not_after`): at info, as a warning within `renew_before`, as an error once it has.
pub fn log_expiry(what: &'static str, path: &Path, not_after: SystemTime, renew_before: Duration) {
    let days_left = not_after
        .duration_since(SystemTime::now())
        .map(|left| left.as_secs() / DAY.as_secs());
    let until = time::OffsetDateTime::from(not_after);
    match days_left {
        Err(_) => {
            tracing::error!(certificate = what, path = %path.display(), %until, "the certificate has expired")
        }
        Ok(days) if Duration::from_secs(days * DAY.as_secs()) < renew_before => tracing::warn!(
            certificate = what,
            path = %path.display(),
            %until,
            days_left = days,
            "the certificate expires soon: renew it (discount gen-keys --renew, or your issuer)"
        ),
        Ok(days) => {
            tracing::info!(certificate = what, path = %path.display(), %until, days_left = days, "certificate valid")
        }
    }
}

/// Watches a certificate's expiry while the service runs: logs a warning when it enters
/// the renewal window and an error once it has expired, again every hour while it stays
/// so, and nothing while it is fine. (At start, [`log_expiry`] says it once.)
#[derive(Debug)]
pub struct ExpiryWatch {
    what: &'static str,
    renew_before: Duration,
    last: Option<(ExpiryState, std::time::Instant)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpiryState {
    Fine,
    Soon,
    Expired,
}

impl ExpiryWatch {
    /// For the certificate `what` (`"server"`, `"client"`, `"ca"`), warning within
    /// `renew_before` of its end.
    pub fn new(what: &'static str, renew_before: Duration) -> Self {
        Self {
            what,
            renew_before,
            last: None,
        }
    }

    /// The certificate it watches (`"server"`, `"client"`, `"ca"`).
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Looks at `not_after` now, logging as described above.
    pub fn check(&mut self, not_after: SystemTime) {
        let left = not_after.duration_since(SystemTime::now());
        let state = match left {
            Err(_) => ExpiryState::Expired,
            Ok(left) if left < self.renew_before => ExpiryState::Soon,
            Ok(_) => ExpiryState::Fine,
        };
        let due = match self.last {
            None => state != ExpiryState::Fine,
            Some((last, at)) => {
                state != last || (state != ExpiryState::Fine && at.elapsed() >= HOUR)
            }
        };
        if !due {
            return;
        }
        self.last = Some((state, std::time::Instant::now()));
        let until = time::OffsetDateTime::from(not_after);
        match state {
            ExpiryState::Expired => tracing::error!(
                certificate = self.what,
                %until,
                "the certificate has expired: new handshakes fail; renew it (discount gen-keys --renew, or your issuer)"
            ),
            ExpiryState::Soon => tracing::warn!(
                certificate = self.what,
                %until,
                "the certificate expires soon: renew it (discount gen-keys --renew, or your issuer)"
            ),
            ExpiryState::Fine => {
                tracing::info!(certificate = self.what, %until, "the certificate is valid again")
            }
        }
    }
}

const HOUR: Duration = Duration::from_secs(60 * 60);

#[cfg(test)]
mod tests {
    use std::fs;

    use x509_parser::pem::Pem;

    use super::*;
    use crate::keys::{self, CertificateUse, earliest_expiry};

    fn in_days(duration: Duration) -> f64 {
        duration.as_secs_f64() / DAY.as_secs_f64()
    }

    fn set(validity: &Validity) -> (tempfile::TempDir, KeyPaths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path().join("keys"));
        keys::ensure_keys_with(&paths, &[], validity).unwrap();
        (dir, paths)
    }

    /// Whether the certificate in `cert` is for the key in `key` (same public key).
    fn matches(cert: &Path, key: &Path) -> bool {
        let pem = fs::read(cert).unwrap();
        let block = Pem::iter_from_buffer(&pem).next().unwrap().unwrap();
        let cert = block.parse_x509().unwrap();
        let key = KeyPair::from_pem(&fs::read_to_string(key).unwrap()).unwrap();
        cert.public_key().raw == rcgen::PublicKeyData::subject_public_key_info(&key)
    }

    fn subject(path: &Path) -> String {
        let pem = fs::read(path).unwrap();
        let block = Pem::iter_from_buffer(&pem).next().unwrap().unwrap();
        block.parse_x509().unwrap().subject().to_string()
    }

    fn serial(path: &Path) -> Vec<u8> {
        let pem = fs::read(path).unwrap();
        let block = Pem::iter_from_buffer(&pem).next().unwrap().unwrap();
        block.parse_x509().unwrap().raw_serial().to_vec()
    }

    #[test]
    fn every_certificate_has_a_random_positive_serial_of_16_bytes() {
        let (_dir, paths) = set(&Validity::default());
        let (_other_dir, other) = set(&Validity::default());
        let mut serials = Vec::new();
        for cert in [paths.ca_cert(), paths.server_cert(), paths.client_cert()]
            .into_iter()
            .chain([other.ca_cert(), other.server_cert(), other.client_cert()])
        {
            let serial = serial(&cert);
            assert_eq!(serial.len(), 16, "{cert:?}: {serial:02x?}");
            assert_eq!(
                serial[0] & 0xc0,
                0x40,
                "{cert:?}: positive, no leading zero"
            );
            serials.push(serial);
        }
        serials.sort();
        serials.dedup();
        assert_eq!(serials.len(), 6, "a serial repeated");
    }

    #[test]
    fn leaves_live_90_days_and_the_ca_ten_years_each_ca_with_a_name_of_its_own() {
        let (_dir, paths) = set(&Validity::default());
        for leaf in [paths.server_cert(), paths.client_cert()] {
            let left = in_days(certificate_info(&leaf).unwrap().time_left());
            assert!((89.9..=90.0).contains(&left), "{left} days for {leaf:?}");
        }
        let ca_left = earliest_expiry(&paths.ca_cert())
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!((3649.9..=3650.0).contains(&in_days(ca_left)));
        let names = certificate_info(&paths.server_cert()).unwrap().names;
        assert_eq!(names, ["localhost", "127.0.0.1", "::1"]);

        let (_other_dir, other) = set(&Validity::default());
        assert_ne!(subject(&paths.ca_cert()), subject(&other.ca_cert()));
        assert!(subject(&paths.ca_cert()).starts_with("CN=ecommerce demo local CA "));
    }

    #[test]
    fn leaves_near_expiry_are_reissued_with_their_keys_and_the_rest_kept() {
        let (_dir, paths) = set(&Validity {
            leaf: 10 * DAY,
            ..Validity::default()
        });
        let server_key = fs::read(paths.server_key()).unwrap();
        let serials = [serial(&paths.server_cert()), serial(&paths.client_cert())];
        let done = renew(&paths, &[], &Validity::default(), DEFAULT_RENEW_BEFORE).unwrap();
        assert_eq!(done.len(), 2);
        // Same key, new certificate: a new serial (RFC 5280 §4.1.2.2).
        assert_ne!(serial(&paths.server_cert()), serials[0]);
        assert_ne!(serial(&paths.client_cert()), serials[1]);
        assert!(done.iter().all(|r| r.renewed), "{done:?}");
        for (cert, key, usage) in [
            (
                paths.server_cert(),
                paths.server_key(),
                CertificateUse::Server,
            ),
            (
                paths.client_cert(),
                paths.client_key(),
                CertificateUse::Client,
            ),
        ] {
            let left = in_days(certificate_info(&cert).unwrap().time_left());
            assert!(left > 89.9, "{left} days for {cert:?}");
            assert!(matches(&cert, &key), "{cert:?} no longer matches {key:?}");
            let identity = keys::files::read_identity(&cert, &key).unwrap();
            let ca = keys::read_trust_roots(&paths).unwrap();
            keys::verify_identity(&identity, &ca, usage, &cert).unwrap();
        }
        assert_eq!(fs::read(paths.server_key()).unwrap(), server_key);

        // Now far from expiry: kept as they are, byte for byte.
        let before = fs::read(paths.server_cert()).unwrap();
        let done = renew(&paths, &[], &Validity::default(), DEFAULT_RENEW_BEFORE).unwrap();
        assert!(done.iter().all(|r| !r.renewed), "{done:?}");
        assert_eq!(fs::read(paths.server_cert()).unwrap(), before);
    }

    #[test]
    fn a_server_certificate_without_a_requested_name_is_reissued_with_it() {
        let (_dir, paths) = set(&Validity::default());
        let names = vec!["discount.ecommerce.svc".to_owned()];
        let done = renew(&paths, &names, &Validity::default(), DEFAULT_RENEW_BEFORE).unwrap();
        let server = done.iter().find(|r| r.path == paths.server_cert()).unwrap();
        assert!(server.renewed && server.reason.contains("discount.ecommerce.svc"));
        let client = done.iter().find(|r| r.path == paths.client_cert()).unwrap();
        assert!(!client.renewed);
        let names = certificate_info(&paths.server_cert()).unwrap().names;
        assert!(
            names.contains(&"discount.ecommerce.svc".to_owned()),
            "{names:?}"
        );
    }

    #[test]
    fn without_the_ca_key_renewal_says_it_cannot() {
        let (_dir, paths) = set(&Validity::default());
        fs::remove_file(paths.ca_key()).unwrap();
        let err = renew(&paths, &[], &Validity::default(), DEFAULT_RENEW_BEFORE)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot renew:") && err.contains("ca.key is missing"),
            "{err}"
        );
    }
}
