//! The keys directory, end to end in a temporary directory.

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rcgen::{CertificateParams, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::issue::ca_params;
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
    assert_eq!(ensure_trust_roots(&only_ca).unwrap(), KeysOrigin::Existing);
    assert_eq!(
        read_trust_roots(&only_ca).unwrap(),
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
    rustls::ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the key matches the certificate");
}
