//! Mutual TLS: with a client CA in its TLS set, only clients with a certificate from that CA
//! get in.

use ecommerce::keys::{self, KeyPaths};
use ecommerce::pb::discount_client::DiscountClient;

use crate::helpers::{Server, apply, channel_as, customer, loopback, product, start_with};

async fn start_requiring_client_certs() -> Server {
    start_with(loopback().await, |config, keys| {
        // `ca.pem`, as `--require-client-cert` does.
        config.tls = testkit::discount_tls(keys, true);
    })
    .await
}

/// Makes one call presenting `identity`; Ok when the call succeeds.
async fn call_as(server: &Server, identity: Option<&keys::PemIdentity>) -> Result<(), String> {
    let uri = format!("https://localhost:{}", server.addr.port());
    // With TLS 1.3 the server's refusal may come after the client's handshake completes, so
    // the failure can surface at connect or at the first call: both count as refused.
    let channel = channel_as(uri, &server.keys, identity)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    apply(
        &mut DiscountClient::new(channel),
        customer(1),
        Some(product(100)),
    )
    .await
    .map(|_| ())
    .map_err(|status| format!("call: {status:?}"))
}

#[tokio::test]
async fn a_client_with_a_certificate_from_the_ca_is_served() {
    let server = start_requiring_client_certs().await;
    let identity = keys::read_client_identity(&server.keys).unwrap();
    call_as(&server, Some(&identity)).await.unwrap();
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let server = start_requiring_client_certs().await;
    let refused = call_as(&server, None).await;
    assert!(refused.is_err(), "served without a client certificate");
}

#[tokio::test]
async fn a_client_with_a_certificate_from_another_ca_is_refused() {
    let server = start_requiring_client_certs().await;
    let other = tempfile::tempdir().unwrap();
    let other_keys = KeyPaths::new(other.path());
    keys::ensure_keys(&other_keys, &[]).unwrap();
    let stranger = keys::read_client_identity(&other_keys).unwrap();
    let refused = call_as(&server, Some(&stranger)).await;
    assert!(refused.is_err(), "served a certificate from another CA");
}

#[tokio::test]
async fn a_client_certificate_issued_later_from_ca_key_is_accepted() {
    let server = start_requiring_client_certs().await;
    std::fs::remove_file(server.keys.client_cert()).unwrap();
    std::fs::remove_file(server.keys.client_key()).unwrap();
    keys::ensure_client_keys(&server.keys).unwrap();
    let reissued = keys::read_client_identity(&server.keys).unwrap();
    call_as(&server, Some(&reissued)).await.unwrap();
}

#[tokio::test]
async fn without_mutual_tls_clients_need_no_certificate() {
    let server = start_with(loopback().await, |_, _| {}).await;
    call_as(&server, None).await.unwrap();
}
