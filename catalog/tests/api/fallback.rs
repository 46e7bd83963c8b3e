//! Every product is always served: when discount is down, stalled or not trusted, products
//! come back at full price, in order, with status 200.

use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::helpers::{
    CUSTOMER_1_BODY, UNDISCOUNTED_BODY, catalog_config, discount_address, generated_keys,
    get_products, spawn_catalog, spawn_discount, spawn_discount_on, spawn_pair,
};

#[tokio::test]
async fn with_discount_down_every_product_is_served_at_full_price_without_waiting() {
    let (_dir, keys) = generated_keys();
    // A port that was free a moment ago and has no listener: connections are refused.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    // A long deadline: answering well before it shows the refusal is not waited out.
    let timeout = Duration::from_secs(10);
    let catalog = spawn_catalog(catalog_config(&keys, discount_address(closed), timeout)).await;

    let started = Instant::now();
    let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
    assert_eq!(response.status, 200);
    assert_eq!(response.body, UNDISCOUNTED_BODY);
}

#[tokio::test]
async fn a_discount_that_accepts_but_never_answers_costs_one_deadline() {
    let (_dir, keys) = generated_keys();
    // Accepts TCP connections and then says nothing: not even the TLS handshake completes.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let timeout = Duration::from_millis(300);
    let catalog = spawn_catalog(catalog_config(
        &keys,
        discount_address(silent_addr),
        timeout,
    ))
    .await;

    let started = Instant::now();
    let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, UNDISCOUNTED_BODY);
    assert!(
        elapsed >= timeout,
        "answered before the deadline: {elapsed:?}"
    );
    // All three calls share the one deadline: far less than three deadlines in a row.
    assert!(elapsed < timeout * 3, "took {elapsed:?}");
}

#[tokio::test]
async fn a_catalog_that_trusts_another_ca_gets_no_discounts_and_no_error() {
    let (_discount_dir, discount_keys) = generated_keys();
    let (_other_dir, other_keys) = generated_keys();
    let discount = spawn_discount(&discount_keys).await;
    let config = catalog_config(
        &other_keys,
        discount_address(discount.addr),
        Duration::from_secs(5),
    );
    let catalog = spawn_catalog(config).await;

    let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, UNDISCOUNTED_BODY);
}

#[tokio::test]
async fn discounts_come_back_when_discount_starts_after_the_catalog() {
    let (_dir, keys) = generated_keys();
    // Reserve a port for discount, and keep it closed until discount starts.
    let reserved = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let config = catalog_config(&keys, discount_address(addr), Duration::from_secs(5));
    let catalog = spawn_catalog(config).await;

    let before = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(before.body, UNDISCOUNTED_BODY);

    // Now start discount on that very port.
    let discount = spawn_discount_on(&keys, addr).await;
    let after = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(after.body, CUSTOMER_1_BODY);
    discount.stop().await;
}

#[tokio::test]
async fn when_discount_stops_the_next_requests_fall_back_to_full_price() {
    let pair = spawn_pair().await;
    let before = get_products(pair.catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(before.body, CUSTOMER_1_BODY);

    pair.discount.stop().await;
    let after = get_products(pair.catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, UNDISCOUNTED_BODY);
}
