//! Making the demo's keys with rcgen: a local CA, discount's server certificate and the
//! catalog's client certificate, ECDSA P-256, each with a random serial; generated when the
//! directory has none, under its lock, every file renamed into place, `cert.pem` last.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};

use super::error::KeyError;
use super::files::{lock, read_certificates, read_private, sync_dir, write_atomically};
use super::paths::KeyPaths;

/// Names every server certificate carries, so local clients verify it by name or address.
pub const DEFAULT_SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Whether [`ensure_keys`] found the set or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysOrigin {
    /// The directory already held `cert.pem` and `private.key`.
    Existing,
    /// A new CA and server certificate were generated.
    Generated,
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How long generated certificates are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Server and client certificates (default 90 days).
    pub leaf: Duration,
    /// The CA (default 10 years).
    pub ca: Duration,
}

impl Default for Validity {
    fn default() -> Self {
        Self {
            leaf: 90 * DAY,
            ca: 3650 * DAY,
        }
    }
}

/// Sets `params` to be valid from a minute ago (clocks differ a little) for `validity`.
fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::seconds(validity.as_secs() as i64);
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

/// Makes sure `paths` holds something for a client to trust (`ca.pem`, or `cert.pem`: see
/// [`KeyPaths::trust_roots`]), generating a new set of keys if it has neither.
///
/// A directory that holds only a CA (a client's mounted secret, say) is left as it is: only
/// a directory with nothing to trust gets keys generated.
pub fn ensure_trust_roots(paths: &KeyPaths) -> Result<KeysOrigin, KeyError> {
    if has_nothing_to_trust(paths) {
        ensure_keys(paths, &[])
    } else {
        Ok(KeysOrigin::Existing)
    }
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
        let (issuer, ca_pem) = kept_ca(paths)?;
        write_client_keys(paths, &issuer, &ca_pem, Validity::default().leaf)?;
        sync_dir(paths.dir())?;
        KeysOrigin::Generated
    };
    drop(lock);
    Ok(origin)
}

/// The CA kept in the directory, to issue leaves with (`ca.key` must exist), and its
/// certificate as PEM.
pub(crate) fn kept_ca(paths: &KeyPaths) -> Result<(Issuer<'static, KeyPair>, String), KeyError> {
    let ca_key_path = paths.ca_key();
    let pem = String::from_utf8_lossy(&read_private(&ca_key_path)?).into_owned();
    let ca_key = KeyPair::from_pem(&pem).map_err(|source| KeyError::CaKey {
        path: ca_key_path,
        source,
    })?;
    let ca_pem = String::from_utf8_lossy(&read_certificates(&paths.ca_cert())?).into_owned();
    // The CA's name is read from ca.pem: each generated CA has a name of its own.
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|source| KeyError::CaKey {
        path: paths.ca_cert(),
        source,
    })?;
    Ok((issuer, ca_pem))
}

/// Neither `ca.pem` nor `cert.pem`: the only case in which a reader of trust roots may
/// generate a new set without replacing a CA someone relies on.
fn has_nothing_to_trust(paths: &KeyPaths) -> bool {
    !paths.ca_cert().exists() && !paths.server_cert().exists()
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
pub(crate) fn generate(
    paths: &KeyPaths,
    extra_names: &[String],
    validity: &Validity,
) -> Result<(), KeyError> {
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
pub(crate) enum Leaf {
    /// discount's: `cert.pem`, for TLS servers.
    Server,
    /// the catalog's: `client.pem`, for TLS clients.
    Client,
}

/// [`DEFAULT_SERVER_NAMES`] and `extra`, as the server certificate carries them.
pub(crate) fn server_names(extra: &[String]) -> Vec<String> {
    DEFAULT_SERVER_NAMES
        .iter()
        .map(|name| name.to_string())
        .chain(extra.iter().filter(|name| !name.is_empty()).cloned())
        .collect()
}

/// A leaf's parameters: `names` (a server's), its use, valid for `validity` from now.
pub(crate) fn leaf_params(
    leaf: Leaf,
    names: &[String],
    validity: Duration,
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
    set_validity(&mut params, validity);
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
    validity: Duration,
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
pub(crate) fn ca_params(
    ca_key: &KeyPair,
    validity: Duration,
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
    set_validity(&mut params, validity);
    Ok(params)
}
