//! What a certificate says that the services act on: when it expires, and the names it
//! carries. Read from PEM already in memory (a set being loaded) or from a file.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use super::error::KeyError;
use super::files::read;

/// What a certificate file says about its first certificate.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    /// When it expires.
    pub not_after: SystemTime,
    /// Its DNS names and IP addresses, as written in a name list ("localhost", "127.0.0.1").
    pub names: Vec<String>,
}

impl CertificateInfo {
    /// What the first certificate of `pem` (read from `path`, which errors name) says.
    pub fn from_pem(pem: &[u8], path: &Path) -> Result<Self, KeyError> {
        info_from_pem(pem).map_err(|reason| KeyError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// Time left until it expires (zero once it has).
    pub fn time_left(&self) -> Duration {
        self.not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }
}

/// Reads the first certificate of the PEM file at `path`.
pub fn certificate_info(path: &Path) -> Result<CertificateInfo, KeyError> {
    CertificateInfo::from_pem(&read(path)?, path)
}

/// Reads the earliest expiry among the certificates of the PEM file at `path` (a bundle of
/// CAs expires, for a client that needs them all, with its first member).
pub fn earliest_expiry(path: &Path) -> Result<SystemTime, KeyError> {
    earliest_expiry_in(&read(path)?, path)
}

/// [`earliest_expiry`] of `pem`, read from `path` (which errors name).
pub fn earliest_expiry_in(pem: &[u8], path: &Path) -> Result<SystemTime, KeyError> {
    let invalid = |reason: String| KeyError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let mut earliest: Option<SystemTime> = None;
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| invalid(format!("unreadable PEM: {e}")))?;
        let cert = block
            .parse_x509()
            .map_err(|e| invalid(format!("unreadable certificate: {e}")))?;
        let not_after = unix_to_system(cert.validity().not_after.timestamp());
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
    }
    earliest.ok_or_else(|| invalid("there is no certificate".into()))
}

fn info_from_pem(pem: &[u8]) -> Result<CertificateInfo, String> {
    let block = Pem::iter_from_buffer(pem)
        .next()
        .ok_or("there is no certificate")?
        .map_err(|e| format!("unreadable PEM: {e}"))?;
    let cert = block
        .parse_x509()
        .map_err(|e| format!("unreadable certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok(CertificateInfo {
        not_after: unix_to_system(cert.validity().not_after.timestamp()),
        names,
    })
}

fn unix_to_system(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds as u64)
    } else {
        UNIX_EPOCH
    }
}
