//! Mutual TLS from the catalog's side, and hostile HTTP clients: every answer is
//! deliberate, never a 5xx, a panic or a hang.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{
    CUSTOMER_1_BODY, UNDISCOUNTED_BODY, catalog_config, config_with, discount_address,
    discount_status, generated_keys, get_products, settings, spawn_catalog, spawn_catalog_for,
    spawn_discount_requiring_client_certs,
};

#[tokio::test]
async fn with_mutual_tls_the_catalogs_client_certificate_gets_discounts_and_none_does_not() {
    let (_dir, keys) = generated_keys();
    let discount = spawn_discount_requiring_client_certs(&keys).await;

    let mut with_cert = settings(
        &keys,
        discount_address(discount.addr),
        Duration::from_secs(5),
    );
    with_cert.client_identity = Some(ecommerce::keys::read_client_identity(&keys).unwrap());
    let catalog =
        spawn_catalog(config_with(catalog::data::Catalog::embedded(), with_cert).await).await;
    let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(response.body, CUSTOMER_1_BODY);

    let without = spawn_catalog_for(&keys, discount.addr, Duration::from_secs(5)).await;
    let response = get_products(without.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, UNDISCOUNTED_BODY);
    assert_eq!(discount_status(&response), "unavailable");
}

/// A catalog whose discount is down (not needed here), with `configure` applied.
async fn catalog_alone(configure: impl FnOnce(&mut catalog::Config)) -> crate::helpers::Running {
    let (_dir, keys) = generated_keys();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config =
        catalog_config(&keys, discount_address(closed), Duration::from_millis(300)).await;
    configure(&mut config);
    spawn_catalog(config).await
}

/// Sends raw bytes and reads until the server closes (bounded by `limit`); the response
/// text, or None if the connection was still open at `limit`.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut response = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut response)).await {
        Ok(_) => Some(String::from_utf8_lossy(&response).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let catalog = catalog_alone(|_| {}).await;
    let request = format!(
        "GET /products HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let response = raw_exchange(catalog.addr, request.as_bytes(), Duration::from_secs(10))
        .await
        .expect("an answer");
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
}

#[tokio::test]
async fn clients_that_send_headers_slowly_or_nothing_are_cut_off_and_others_served() {
    let catalog =
        catalog_alone(|config| config.header_read_timeout = Duration::from_millis(300)).await;
    let addr = catalog.addr;
    let started = Instant::now();
    let slow = tokio::spawn(raw_exchange(
        addr,
        b"GET /products HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(10),
    ));
    let silent = tokio::spawn(raw_exchange(addr, b"", Duration::from_secs(10)));

    // Meanwhile, a normal client is served.
    let normal = get_products(addr, &[]).await;
    assert_eq!(normal.status, 200);

    for (what, exchange) in [("slow headers", slow), ("silent", silent)] {
        let closed = exchange.await.unwrap();
        assert!(closed.is_some(), "{what}: the connection was not closed");
        assert!(!closed.unwrap().contains(" 200 "), "{what} got an answer");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn past_the_connection_limit_new_connections_wait_for_a_free_slot() {
    let catalog = catalog_alone(|config| {
        config.max_connections = 2;
        config.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = catalog.addr;
    // Two idle connections take both slots.
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let mut waiting = tokio::spawn(raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(30),
    ));
    // Not served while both slots are held (without the limit it would be answered in
    // about a millisecond)...
    let early = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
    assert!(early.is_err(), "served past the connection limit");
    // ...and served as soon as one is free.
    drop(first);
    let response = waiting.await.unwrap().expect("served once a slot was free");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn a_body_on_get_is_ignored_and_the_connection_stays_usable() {
    let catalog = catalog_alone(|_| {}).await;
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let response = raw_exchange(catalog.addr, request, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(response.matches("HTTP/1.1 200 OK").count(), 2, "{response}");
}

#[tokio::test]
async fn random_user_ids_always_get_200_or_400() {
    let catalog = catalog_alone(|_| {}).await;
    // Numbers in many spellings, and arbitrary header-legal bytes.
    let number_like =
        "[ \t]{0,2}[+-]?[0-9]{0,12}(\\.[0-9])?[ \t]{0,2}".prop_map(String::into_bytes);
    let any_bytes = proptest::collection::vec(
        proptest::num::u8::ANY.prop_filter("header-legal", |b| {
            *b == b'\t' || (*b >= 0x20 && *b != 0x7f)
        }),
        0..24,
    );
    let strategy = proptest::prop_oneof![number_like, any_bytes];
    let mut runner = TestRunner::deterministic();
    for _ in 0..200 {
        let value = strategy.new_tree(&mut runner).unwrap().current();
        let response = get_products(catalog.addr, &[("X-USER-ID", &value)]).await;
        let shown = String::from_utf8_lossy(&value);
        match response.status {
            200 => assert_eq!(response.body, UNDISCOUNTED_BODY, "{shown:?}"),
            400 => assert!(
                response.body.starts_with("Customer ID") || response.body.starts_with("X-USER-ID"),
                "{shown:?}"
            ),
            other => panic!("{shown:?} got {other}"),
        }
    }
}
