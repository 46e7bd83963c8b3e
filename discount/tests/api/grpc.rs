//! The discount service over real TLS sockets, called as any gRPC client would.

use discount::tls::{ServerTls, TlsError, TlsFiles};
use ecommerce::keys::{self, KeyPaths};
use ecommerce::pb::{DiscountValue, Product};
use tonic::Code;

use crate::helpers::{
    apply, client, client_for, customer, loopback, product, start, start_on, start_with,
};

#[tokio::test]
async fn customer_1_gets_ten_percent_off_truncated_and_every_field_echoed() {
    let server = start().await;
    let mut client = client_for(&server).await;
    for (price, expected) in [
        (99999, 89999),
        (150000, 135000),
        (32999, 29699),
        (1, 0),
        (9, 8),
        (2147483647, 1932735282),
    ] {
        let answer = apply(&mut client, customer(1), Some(product(price)))
            .await
            .unwrap();
        let wanted = Product {
            discount_value: Some(DiscountValue {
                pct: 0.1,
                value_in_cents: expected,
            }),
            ..product(price)
        };
        assert_eq!(answer, wanted, "price {price}");
    }
}

#[tokio::test]
async fn other_customers_zero_prices_and_no_customer_get_an_empty_discount() {
    let server = start().await;
    let mut client = client_for(&server).await;
    for (who, price) in [
        (customer(2), 99999),
        (customer(0), 99999),
        (None, 99999),
        (customer(1), 0),
        (customer(1), -100),
    ] {
        let answer = apply(&mut client, who.clone(), Some(product(price)))
            .await
            .unwrap();
        assert_eq!(
            answer,
            Product {
                discount_value: Some(DiscountValue::default()),
                ..product(price)
            },
            "{who:?} {price}"
        );
    }
}

#[tokio::test]
async fn a_request_without_a_product_is_invalid_argument() {
    let server = start().await;
    let mut client = client_for(&server).await;
    let status = apply(&mut client, customer(1), None).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("product"), "{}", status.message());
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_cannot_connect() {
    let server = start().await;
    let other = tempfile::tempdir().unwrap();
    let other_keys = KeyPaths::new(other.path());
    keys::ensure_keys(&other_keys, &[]).unwrap();
    let result = client(
        format!("https://localhost:{}", server.addr.port()),
        &other_keys,
    )
    .await;
    assert!(result.is_err(), "the handshake must fail");
}

#[tokio::test]
async fn the_certificate_is_valid_for_127_0_0_1_and_ipv6_loopback_on_one_dual_stack_port() {
    let listener = ecommerce::listener::bind_all_interfaces(0).unwrap();
    let server = start_on(listener).await;
    let port = server.addr.port();
    for uri in [
        format!("https://127.0.0.1:{port}"),
        format!("https://[::1]:{port}"),
        format!("https://localhost:{port}"),
    ] {
        let mut client = client(uri.clone(), &server.keys)
            .await
            .unwrap_or_else(|e| panic!("{uri}: {e:?}"));
        let answer = apply(&mut client, customer(1), Some(product(10)))
            .await
            .unwrap();
        assert_eq!(answer.discount_value.unwrap().value_in_cents, 9, "{uri}");
    }
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_before_serving() {
    ecommerce::install_crypto_provider();
    let (_a, keys_a) = testkit::generated_keys();
    let (_b, keys_b) = testkit::generated_keys();
    let mut identity = keys::read_server_identity(&keys_a).unwrap();
    identity.private_key_pem = keys::read_server_identity(&keys_b).unwrap().private_key_pem;

    // In memory: rustls's own check.
    let err = ServerTls::new(&identity, None).unwrap_err();
    assert!(matches!(err, TlsError::Rustls { .. }), "{err:?}");

    // From files, as at start-up and on reload: the files are named.
    std::fs::copy(keys_b.server_key(), keys_a.server_key()).unwrap();
    let files = TlsFiles {
        paths: keys_a.clone(),
        require_client_cert: false,
        renew_before: keys::DEFAULT_RENEW_BEFORE,
    };
    let err = files.load().unwrap_err();
    assert!(
        matches!(err, TlsError::Keys(keys::KeyError::KeyMismatch { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("private.key does not go with") && text.contains("cert.pem"),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_is_bounded_even_when_a_connected_client_stops_responding() {
    let mut server = start_with(loopback().await, |config, _| {
        config.drain_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let (addr, trust) = (server.addr, server.keys.clone());

    // A client on a runtime of its own makes one call, then freezes that runtime: its
    // connection stays open but never answers the server's graceful-shutdown GOAWAY and
    // PING, which tonic's drain would wait for without end.
    let (called, frozen) = std::sync::mpsc::channel::<()>();
    let (thaw, thawed) = std::sync::mpsc::channel::<()>();
    let frozen_client = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut client = client(format!("https://localhost:{}", addr.port()), &trust)
                .await
                .unwrap();
            apply(&mut client, customer(1), Some(product(10)))
                .await
                .unwrap();
            called.send(()).unwrap();
            // Blocks the runtime's only thread: nothing of this client runs any more.
            let _ = thawed.recv();
        });
    });
    tokio::task::spawn_blocking(move || frozen.recv())
        .await
        .unwrap()
        .unwrap();

    let started = std::time::Instant::now();
    server.begin_stop();
    server.stopped().await;
    let took = started.elapsed();
    let _ = thaw.send(());
    frozen_client.join().unwrap();
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
}
