//! Certificates rotated under load, without a restart, on both sides: a new CA brought in
//! through a bundle, and a new client certificate (mutual TLS). Every response stays fully
//! discounted throughout.

use std::fs;
use std::time::{Duration, Instant};

use catalog::tls_reload::TlsFiles;
use ecommerce::keys::{self, KeyPaths};

use crate::helpers::{
    Load, catalog_config, count_status, discount_address, generated_keys, sample, scrape,
    spawn_catalog, spawn_discount_with,
};

const RELOAD_EVERY: Duration = Duration::from_millis(50);

/// Waits until `series` in `text_of()` reaches `count`.
async fn wait_count<F, Fut>(what: &str, text_of: F, series: &str, count: f64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = text_of().await;
        if sample(&text, series) >= count {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {series} below {count}");
        tokio::time::sleep(RELOAD_EVERY).await; // polling a counter, not readiness
    }
}

fn concat(paths: &[&KeyPaths]) -> Vec<u8> {
    paths
        .iter()
        .flat_map(|p| fs::read(p.ca_cert()).unwrap())
        .collect()
}

/// A directory holding copies of `files` from `from`.
fn copy_of(from: &KeyPaths, files: &[&str]) -> (tempfile::TempDir, KeyPaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = KeyPaths::new(dir.path());
    for file in files {
        fs::copy(from.dir().join(file), paths.dir().join(file)).unwrap();
    }
    (dir, paths)
}

/// discount with its own keys directory, reloading it every [`RELOAD_EVERY`]; with
/// `client_ca`, requiring client certificates from the directory's CA.
async fn discount_on(
    keys: &KeyPaths,
    require_client_cert: bool,
) -> (crate::helpers::Running, discount::metrics::Metrics) {
    let mut config = discount::Config::new(keys::read_server_identity(keys).unwrap());
    if require_client_cert {
        config.client_ca_pem = Some(keys::read_trust_roots(keys).unwrap());
    }
    let metrics = discount::metrics::Metrics::new();
    config.metrics = metrics.clone();
    config.tls_reload = Some((
        discount::tls::TlsFiles {
            paths: keys.clone(),
            require_client_cert,
            renew_before: keys::DEFAULT_RENEW_BEFORE,
        },
        RELOAD_EVERY,
    ));
    (spawn_discount_with(config).await, metrics)
}

fn discount_text(metrics: &discount::metrics::Metrics) -> String {
    metrics.encode(Some("text/plain")).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_ca_through_a_bundle_keeps_every_discount_flowing() {
    let (_old_dir, old) = generated_keys();
    let (_new_dir, new) = generated_keys();
    let (_d, discount_keys) = copy_of(&old, &["ca.pem", "cert.pem", "private.key"]);
    let (_c, catalog_keys) = copy_of(&old, &["ca.pem"]);
    let (discount, discount_metrics) = discount_on(&discount_keys, false).await;
    let mut config = catalog_config(
        &catalog_keys,
        discount_address(discount.addr),
        Duration::from_secs(5),
    )
    .await;
    config.tls_reload = Some((
        TlsFiles {
            paths: catalog_keys.clone(),
            client_cert: false,
        },
        RELOAD_EVERY,
    ));
    let catalog = spawn_catalog(config).await;
    let addr = catalog.addr;
    let catalog_reloads = r#"catalog_tls_reloads_total{outcome="ok"}"#;
    let load = Load::start(addr, 2);
    load.wait_until("first answers", |s| s.len() >= 5).await;

    // 1. The catalog trusts both CAs.
    fs::write(catalog_keys.ca_cert(), concat(&[&old, &new])).unwrap();
    wait_count("the bundle", || scrape(addr), catalog_reloads, 1.0).await;
    // 2. discount moves to a certificate from the new CA (CA first, then the pair).
    for file in ["ca.pem", "cert.pem", "private.key"] {
        fs::copy(new.dir().join(file), discount_keys.dir().join(file)).unwrap();
    }
    let discount_reloads = r#"discount_tls_reloads_total{outcome="ok"}"#;
    wait_count(
        "discount's new certificate",
        || async { discount_text(&discount_metrics) },
        discount_reloads,
        1.0,
    )
    .await;
    // 3. The catalog trusts the new CA alone, and connects afresh.
    fs::write(catalog_keys.ca_cert(), concat(&[&new])).unwrap();
    wait_count("the new CA alone", || scrape(addr), catalog_reloads, 2.0).await;
    let before = load.answered();
    load.wait_until("answers on new connections", |s| s.len() >= before + 10)
        .await;

    let samples = load.finish().await;
    assert_eq!(
        count_status(&samples, "complete"),
        samples.len(),
        "every answer fully discounted: {:?}",
        samples
            .iter()
            .filter(|s| crate::helpers::discount_status(&s.response) != "complete")
            .map(|s| &s.response)
            .next()
    );
    let text = scrape(addr).await;
    assert_eq!(
        sample(&text, r#"catalog_tls_reloads_total{outcome="rejected"}"#),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_certificate_is_presented_and_accepted() {
    let (_old_dir, old) = generated_keys();
    let (_new_dir, new) = generated_keys();
    // discount accepts client certificates from either CA; the catalog trusts both, and
    // presents one from the old CA.
    let (_d, discount_keys) = copy_of(&old, &["cert.pem", "private.key"]);
    fs::write(discount_keys.ca_cert(), concat(&[&old, &new])).unwrap();
    let (_c, catalog_keys) = copy_of(&old, &["client.pem", "client.key"]);
    fs::write(catalog_keys.ca_cert(), concat(&[&old, &new])).unwrap();
    let (discount, discount_metrics) = discount_on(&discount_keys, true).await;
    let mut config = catalog_config(
        &catalog_keys,
        discount_address(discount.addr),
        Duration::from_secs(5),
    )
    .await;
    config
        .discounts
        .replace_tls(
            &keys::read_trust_roots(&catalog_keys).unwrap(),
            Some(&keys::read_client_identity(&catalog_keys).unwrap()),
        )
        .unwrap();
    config.tls_reload = Some((
        TlsFiles {
            paths: catalog_keys.clone(),
            client_cert: true,
        },
        RELOAD_EVERY,
    ));
    let catalog = spawn_catalog(config).await;
    let addr = catalog.addr;
    let catalog_reloads = r#"catalog_tls_reloads_total{outcome="ok"}"#;
    let load = Load::start(addr, 2);
    load.wait_until("first answers", |s| s.len() >= 5).await;

    // 1. The catalog's new client certificate, from the new CA (key first, then the
    //    certificate: the pair in between is refused, and counted).
    fs::copy(new.client_key(), catalog_keys.client_key()).unwrap();
    fs::copy(new.client_cert(), catalog_keys.client_cert()).unwrap();
    wait_count(
        "the new client certificate",
        || scrape(addr),
        catalog_reloads,
        1.0,
    )
    .await;
    // 2. discount moves to the new CA alone: its own certificate, and the client
    //    certificates it accepts.
    for file in ["ca.pem", "cert.pem", "private.key"] {
        fs::copy(new.dir().join(file), discount_keys.dir().join(file)).unwrap();
    }
    let discount_reloads = r#"discount_tls_reloads_total{outcome="ok"}"#;
    wait_count(
        "discount's new CA",
        || async { discount_text(&discount_metrics) },
        discount_reloads,
        1.0,
    )
    .await;
    // 3. The catalog connects afresh (its trusted file rewritten, the same CAs): were it
    //    still presenting the old certificate, discount would refuse it now.
    fs::write(catalog_keys.ca_cert(), concat(&[&new, &old])).unwrap();
    wait_count("fresh connections", || scrape(addr), catalog_reloads, 2.0).await;
    let before = load.answered();
    load.wait_until("answers on new connections", |s| s.len() >= before + 10)
        .await;

    let samples = load.finish().await;
    assert_eq!(count_status(&samples, "complete"), samples.len());
}
