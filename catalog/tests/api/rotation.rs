//! Certificates rotated under load, without a restart, on both sides: a new CA brought in
//! through a bundle, and a new client certificate (mutual TLS). Every response stays fully
//! discounted throughout.

use std::fs;
use std::time::Duration;

use catalog::tls::TlsFiles;
use ecommerce::keys::{self, KeyPaths};

use crate::helpers::{
    Load, count_status, discount_address, generated_keys, sample, scrape, spawn_catalog,
    spawn_discount_with,
};

const RELOAD_EVERY: Duration = Duration::from_millis(50);

/// Waits until `series` in `text_of()` reaches `count`.
async fn wait_count<F, Fut>(what: &str, text_of: F, series: &str, count: f64)
where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    testkit::poll::until(&format!("{what}: {series} at {count}"), || async {
        let text = text_of().await;
        if sample(&text, series) >= count {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
}

/// Replaces `path` whole, as rotation tools do (a new file renamed over the old): a reader
/// never sees it half-written, which a plain rewrite would allow, and which the catalog
/// would rightly refuse and count.
fn replace(path: &std::path::Path, contents: &[u8]) {
    let new = path.with_extension("new");
    fs::write(&new, contents).unwrap();
    fs::rename(&new, path).unwrap();
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
    let mut config = discount::Config::new(testkit::discount_tls(keys, require_client_cert));
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

/// The catalog trusting `keys`' CA (and, with `client_cert`, presenting its client
/// certificate), reloading them every [`RELOAD_EVERY`].
async fn reloading_catalog(
    keys: &KeyPaths,
    discount: std::net::SocketAddr,
    client_cert: bool,
) -> crate::helpers::Running {
    let mut settings =
        crate::helpers::settings(keys, discount_address(discount), Duration::from_secs(5));
    // From the start, not swapped in after: the first health checks connect at once.
    if client_cert {
        settings.client_identity = Some(keys::read_client_identity(keys).unwrap());
    }
    let mut config =
        crate::helpers::config_with(catalog::data::Catalog::embedded(), settings).await;
    config.tls_reload = Some((
        TlsFiles {
            paths: keys.clone(),
            client_cert,
        },
        RELOAD_EVERY,
    ));
    spawn_catalog(config).await
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
    let catalog = reloading_catalog(&catalog_keys, discount.addr, false).await;
    let addr = catalog.addr;
    let catalog_reloads = r#"catalog_tls_reloads_total{outcome="ok"}"#;
    let load = Load::start(addr, 2);
    load.wait_until("first answers", |s| s.len() >= 5).await;

    // 1. The catalog trusts both CAs.
    replace(&catalog_keys.ca_cert(), &concat(&[&old, &new]));
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
    replace(&catalog_keys.ca_cert(), &concat(&[&new]));
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
    let catalog = reloading_catalog(&catalog_keys, discount.addr, true).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_new_ca_file_or_client_key_is_refused_and_the_previous_set_kept() {
    let (_keys_dir, keys) = generated_keys();
    let (_d, discount_keys) = copy_of(&keys, &["ca.pem", "cert.pem", "private.key"]);
    let (_c, catalog_keys) = copy_of(&keys, &["ca.pem", "client.pem", "client.key"]);
    let (discount, _) = discount_on(&discount_keys, true).await;
    let catalog = reloading_catalog(&catalog_keys, discount.addr, true).await;
    let addr = catalog.addr;
    let rejected = r#"catalog_tls_reloads_total{outcome="rejected"}"#;
    let load = Load::start(addr, 2);
    load.wait_until("first answers", |s| s.len() >= 5).await;

    // A CA file that is not PEM, then a client key that does not go with its certificate.
    let good_ca = fs::read(catalog_keys.ca_cert()).unwrap();
    fs::write(catalog_keys.ca_cert(), b"not a certificate").unwrap();
    wait_count("a bad CA file", || scrape(addr), rejected, 1.0).await;
    fs::write(catalog_keys.ca_cert(), &good_ca).unwrap();
    fs::copy(discount_keys.server_key(), catalog_keys.client_key()).unwrap();
    wait_count(
        "a client key for another certificate",
        || scrape(addr),
        rejected,
        2.0,
    )
    .await;
    let before = load.answered();
    load.wait_until("answers after the refusals", |s| s.len() >= before + 10)
        .await;

    let samples = load.finish().await;
    assert_eq!(count_status(&samples, "complete"), samples.len());
    let text = scrape(addr).await;
    assert_eq!(
        sample(&text, r#"catalog_tls_reloads_total{outcome="ok"}"#),
        0.0
    );
}
