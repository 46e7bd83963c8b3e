//! New certificates without a restart: the TLS files change on disk, new handshakes
//! present the new certificate, connections already open continue, and a bad set is
//! refused while the previous one keeps serving.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use discount::metrics::Metrics;
use discount::tls::TlsFiles;
use ecommerce::keys::{self, KeyPaths, Validity};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::helpers::{apply, client_for, customer, loopback, product, start_with};

const RELOAD_EVERY: Duration = Duration::from_millis(50);

/// One way of writing a bad set of files.
type BadWrite<'a> = Box<dyn Fn() + 'a>;

/// The leaf certificate a new TLS handshake with `port` presents (DER).
async fn presented(port: u16, trust: &KeyPaths) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&keys::read_trust_roots(trust).unwrap()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), stream)
        .await
        .expect("handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// The first certificate of the PEM file at `path` (DER).
fn first_cert(path: &Path) -> Vec<u8> {
    let pem = fs::read(path).unwrap();
    CertificateDer::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// Waits until new handshakes present `expected`.
async fn wait_presenting(port: u16, trust: &KeyPaths, expected: &[u8]) {
    testkit::poll::until("new handshakes to present the new certificate", || async {
        if presented(port, trust).await == expected {
            Ok(())
        } else {
            Err("the previous certificate".to_owned())
        }
    })
    .await;
}

fn reloads(metrics: &Metrics, outcome: &str) -> f64 {
    let (_, text) = metrics.encode(Some("text/plain"));
    let series = format!("discount_tls_reloads_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .parse()
        .unwrap()
}

/// Waits until the reload counter for `outcome` reaches `count`.
async fn wait_reloads(metrics: &Metrics, outcome: &str, count: f64) {
    let what = format!("{count} {outcome} reloads counted");
    testkit::poll::until(&what, || async {
        if reloads(metrics, outcome) >= count {
            Ok(())
        } else {
            Err(format!(
                "ok {}, rejected {}",
                reloads(metrics, "ok"),
                reloads(metrics, "rejected")
            ))
        }
    })
    .await;
}

/// A certificate for the same key as `keys`' server certificate, from the same CA, with
/// `name` added (so a different certificate), as PEM; `keys` is left as it was.
fn reissued(keys: &KeyPaths, name: &str, validity: Duration) -> Vec<u8> {
    let scratch = tempfile::tempdir().unwrap();
    let copy = KeyPaths::new(scratch.path());
    for file in ["ca.pem", "ca.key", "cert.pem", "private.key"] {
        fs::copy(keys.dir().join(file), copy.dir().join(file)).unwrap();
    }
    let validity = Validity {
        leaf: validity,
        ..Validity::default()
    };
    // A window longer than any validity: always reissued.
    keys::renew(
        &copy,
        &[name.to_owned()],
        &validity,
        Duration::from_secs(1 << 40),
    )
    .unwrap();
    fs::read(copy.server_cert()).unwrap()
}

/// Calls in a loop on one connection opened before the rotations, and on a new connection
/// each time, counting failures, until `stop`.
fn keep_calling(
    port: u16,
    trust: KeyPaths,
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    mut open: ecommerce::pb::discount_client::DiscountClient<tonic::transport::Channel>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut calls = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut fresh =
                crate::helpers::client(format!("https://localhost:{port}"), &trust).await;
            for client in [Some(&mut open), fresh.as_mut().ok()] {
                let ok = match client {
                    Some(client) => apply(client, customer(1), Some(product(1000)))
                        .await
                        .is_ok_and(|p| p.discount_value.is_some_and(|v| v.value_in_cents == 900)),
                    None => false,
                };
                calls += 1;
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        calls
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_certificates_serve_new_connections_however_the_files_are_replaced() {
    // A Kubernetes-style directory: the files are symlinks into ..data, itself a symlink
    // to a timestamped directory, swapped atomically on update.
    let source_dir = tempfile::tempdir().unwrap();
    let source = KeyPaths::new(source_dir.path());
    keys::ensure_keys(&source, &[]).unwrap();
    let mounted_dir = tempfile::tempdir().unwrap();
    let mounted = KeyPaths::new(mounted_dir.path());
    let version = |name: &str, cert: &[u8]| {
        let dir = mounted.dir().join(name);
        fs::create_dir(&dir).unwrap();
        for file in ["ca.pem", "private.key"] {
            fs::copy(source.dir().join(file), dir.join(file)).unwrap();
        }
        fs::write(dir.join("cert.pem"), cert).unwrap();
    };
    version("..v1", &fs::read(source.server_cert()).unwrap());
    symlink("..v1", mounted.dir().join("..data")).unwrap();
    for file in ["ca.pem", "cert.pem", "private.key"] {
        symlink(format!("..data/{file}"), mounted.dir().join(file)).unwrap();
    }

    let metrics = Metrics::new();
    let server = start_with(loopback().await, |config, _| {
        *config = discount::Config::new(testkit::discount_tls(&mounted, false));
        config.metrics = metrics.clone();
        config.tls_reload = Some((
            TlsFiles {
                paths: mounted.clone(),
                require_client_cert: false,
                renew_before: keys::DEFAULT_RENEW_BEFORE,
            },
            RELOAD_EVERY,
        ));
    })
    .await;
    let port = server.addr.port();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let open = crate::helpers::client(format!("https://localhost:{port}"), &source)
        .await
        .expect("connects");
    let calling = keep_calling(port, source.clone(), stop.clone(), failures.clone(), open);

    // 1. The Kubernetes swap of ..data.
    version(
        "..v2",
        &reissued(&source, "swap.example", keys::DEFAULT_RENEW_BEFORE * 3),
    );
    symlink("..v2", mounted.dir().join("..data_tmp")).unwrap();
    fs::rename(
        mounted.dir().join("..data_tmp"),
        mounted.dir().join("..data"),
    )
    .unwrap();
    wait_presenting(port, &source, &first_cert(&mounted.server_cert())).await;
    wait_reloads(&metrics, "ok", 1.0).await;

    // 2. A new file renamed into place (what `discount gen-keys --renew` does).
    let target = mounted.dir().join("..v2").join("cert.pem");
    let staged = mounted.dir().join("..v2").join(".cert.pem.new");
    fs::write(
        &staged,
        reissued(&source, "rename.example", keys::DEFAULT_RENEW_BEFORE * 3),
    )
    .unwrap();
    fs::rename(&staged, &target).unwrap();
    wait_presenting(port, &source, &first_cert(&target)).await;

    // 3. The file rewritten in place.
    fs::write(
        &target,
        reissued(&source, "rewrite.example", keys::DEFAULT_RENEW_BEFORE * 3),
    )
    .unwrap();
    wait_presenting(port, &source, &first_cert(&target)).await;

    stop.store(true, Ordering::Relaxed);
    let calls = calling.await.unwrap();
    assert!(calls > 0);
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {calls} calls");
    assert_eq!(reloads(&metrics, "rejected"), 0.0);
    assert!(reloads(&metrics, "ok") >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_new_set_is_refused_and_the_previous_one_keeps_serving() {
    let metrics = Metrics::new();
    let server = start_with(loopback().await, |config, keys| {
        config.metrics = metrics.clone();
        config.tls_reload = Some((
            TlsFiles {
                paths: keys.clone(),
                require_client_cert: false,
                renew_before: keys::DEFAULT_RENEW_BEFORE,
            },
            RELOAD_EVERY,
        ));
    })
    .await;
    let keys = server.keys.clone();
    let port = server.addr.port();
    let original_cert = fs::read(keys.server_cert()).unwrap();
    let original_key = fs::read(keys.server_key()).unwrap();
    let serving = first_cert(&keys.server_cert());
    let mut client = client_for(&server).await;

    let other_dir = tempfile::tempdir().unwrap();
    let other = KeyPaths::new(other_dir.path());
    keys::ensure_keys(&other, &[]).unwrap();
    let valid_new = reissued(&keys, "valid.example", keys::DEFAULT_RENEW_BEFORE * 3);
    // Valid for no time at all: expired once its second has passed.
    let expired = reissued(&keys, "expired.example", Duration::ZERO);
    let expired_file = other_dir.path().join("expired.pem");
    fs::write(&expired_file, &expired).unwrap();
    let expired_at = keys::certificate_info(&expired_file).unwrap().not_after;
    let half = &valid_new[..valid_new.len() / 2];
    let bad: [(&str, BadWrite); 4] = [
        (
            "a key that does not match",
            Box::new(|| {
                fs::write(keys.server_key(), fs::read(keys.client_key()).unwrap()).unwrap();
            }),
        ),
        (
            "a certificate from another CA",
            Box::new(|| {
                // (Certificate first: with the original key back first, the reload could
                // catch the original, good set in between.)
                fs::write(keys.server_cert(), fs::read(other.server_cert()).unwrap()).unwrap();
                fs::write(keys.server_key(), &original_key).unwrap();
            }),
        ),
        (
            "an expired certificate",
            Box::new(|| {
                // Certificate times are in whole seconds: wait for the clock to pass it.
                while std::time::SystemTime::now() < expired_at + Duration::from_secs(1) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                fs::write(keys.server_cert(), &expired).unwrap();
            }),
        ),
        (
            "a half-written certificate",
            Box::new(|| {
                fs::write(keys.server_cert(), half).unwrap();
            }),
        ),
    ];
    for (n, (what, write)) in bad.iter().enumerate() {
        write();
        wait_reloads(&metrics, "rejected", (n + 1) as f64).await;
        assert_eq!(presented(port, &keys).await, serving, "after {what}");
        let product = apply(&mut client, customer(1), Some(product(1000))).await;
        assert!(product.is_ok(), "after {what}: {product:?}");
    }
    assert_eq!(reloads(&metrics, "ok"), 0.0);

    // The writing finishes: the next change is tried, and used.
    fs::write(keys.server_cert(), &valid_new).unwrap();
    wait_reloads(&metrics, "ok", 1.0).await;
    assert_eq!(
        presented(port, &keys).await,
        first_cert(&keys.server_cert())
    );
    assert_ne!(fs::read(keys.server_cert()).unwrap(), original_cert);
}
