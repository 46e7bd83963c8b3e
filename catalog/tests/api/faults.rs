//! Every product is always served. Under each fault of the discount service, every response
//! is 200 with all products in catalog order (at full price where discount failed), within
//! a bound of one deadline plus slack, and `X-Discount-Status` says what happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog::data::Catalog;
use catalog::discounts::BreakerSettings;
use tokio::net::TcpListener;

use crate::helpers::{
    CUSTOMER_1_BODY, Fault, Gate, KillableDiscount, Load, UNDISCOUNTED_BODY, assert_whole_catalog,
    catalog_config, config_with, count_status, discount_address, discount_status, generated_keys,
    get_products, settings, spawn_catalog, spawn_catalog_for, spawn_discount, spawn_discount_on,
    spawn_faulty_discount, spawn_pair,
};

/// The discount deadline in these tests.
const TIMEOUT: Duration = Duration::from_millis(300);

/// No response may take longer: one deadline, plus slack for a busy machine. The old Go
/// catalog hung for 10 s.
const BOUND: Duration = Duration::from_millis(1300);

/// Sends `count` requests for customer 1, one after another, and checks each against the
/// rule and the bound. Returns the responses.
async fn requests_within_bound(
    catalog: std::net::SocketAddr,
    count: usize,
) -> Vec<crate::helpers::TestResponse> {
    let mut responses = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        let response = get_products(catalog, &[("X-USER-ID", b"1")]).await;
        let latency = started.elapsed();
        assert!(latency < BOUND, "a response took {latency:?}");
        assert_whole_catalog(&response);
        responses.push(response);
    }
    responses
}

/// A port with no listener: connections to it are refused.
async fn closed_port() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn discount_down_every_product_at_full_price_and_no_wait_for_the_deadline() {
    let (_dir, keys) = generated_keys();
    // A long deadline: answering well before it shows that refusals are not waited out.
    let timeout = Duration::from_secs(10);
    let catalog = spawn_catalog_for(&keys, closed_port().await, timeout).await;

    for _ in 0..10 {
        let started = Instant::now();
        let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
        assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
        assert_eq!(response.status, 200);
        assert_eq!(response.body, UNDISCOUNTED_BODY);
        assert_eq!(discount_status(&response), "unavailable");
    }
}

#[tokio::test]
async fn a_discount_that_accepts_connections_but_never_answers_costs_at_most_one_deadline() {
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
    let catalog = spawn_catalog_for(&keys, silent_addr, TIMEOUT).await;

    let started = Instant::now();
    let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    let elapsed = started.elapsed();
    assert_eq!(response.body, UNDISCOUNTED_BODY);
    assert_eq!(discount_status(&response), "unavailable");
    assert!(
        elapsed >= TIMEOUT,
        "answered before the deadline: {elapsed:?}"
    );
    // All three calls share the one deadline: not three deadlines in a row.
    assert!(elapsed < BOUND, "took {elapsed:?}");
    requests_within_bound(catalog.addr, 5).await;
}

#[tokio::test]
async fn a_discount_slower_than_the_deadline_is_not_waited_for() {
    let (_dir, keys) = generated_keys();
    let slow = spawn_faulty_discount(&keys, Fault::Delay(TIMEOUT * 3)).await;
    let catalog = spawn_catalog_for(&keys, slow.addr, TIMEOUT).await;

    for response in requests_within_bound(catalog.addr, 3).await {
        assert_eq!(response.body, UNDISCOUNTED_BODY);
        assert_eq!(discount_status(&response), "unavailable");
    }
}

#[tokio::test]
async fn a_discount_a_little_slow_but_within_the_deadline_still_discounts() {
    let (_dir, keys) = generated_keys();
    let slowish = spawn_faulty_discount(&keys, Fault::Delay(TIMEOUT / 6)).await;
    let catalog = spawn_catalog_for(&keys, slowish.addr, TIMEOUT).await;

    let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(response.body, CUSTOMER_1_BODY);
    assert_eq!(discount_status(&response), "complete");
}

#[tokio::test]
async fn a_discount_that_answers_errors_leaves_every_product_at_full_price() {
    let (_dir, keys) = generated_keys();
    for code in [
        tonic::Code::Internal,
        tonic::Code::ResourceExhausted,
        tonic::Code::Unimplemented,
    ] {
        let failing = spawn_faulty_discount(&keys, Fault::Status(code)).await;
        let catalog = spawn_catalog_for(&keys, failing.addr, TIMEOUT).await;
        for response in requests_within_bound(catalog.addr, 2).await {
            assert_eq!(response.body, UNDISCOUNTED_BODY, "{code:?}");
            assert_eq!(discount_status(&response), "unavailable", "{code:?}");
        }
    }
}

#[tokio::test]
async fn a_catalog_that_trusts_another_ca_gets_no_discounts_and_no_error() {
    let (_discount_dir, discount_keys) = generated_keys();
    let (_other_dir, other_keys) = generated_keys();
    let discount = spawn_discount(&discount_keys).await;
    let catalog = spawn_catalog_for(&other_keys, discount.addr, TIMEOUT).await;

    let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, UNDISCOUNTED_BODY);
    assert_eq!(discount_status(&response), "unavailable");
}

#[tokio::test]
async fn after_repeated_failures_the_breaker_serves_full_prices_at_once() {
    let (_dir, keys) = generated_keys();
    let slow = spawn_faulty_discount(&keys, Fault::Delay(Duration::from_secs(30))).await;
    let mut settings = settings(&keys, discount_address(slow.addr), TIMEOUT);
    // Three products time out together: one request opens the breaker.
    settings.breaker = BreakerSettings {
        failure_threshold: 3,
        cool_down: Duration::from_secs(60),
    };
    let catalog = spawn_catalog(config_with(Catalog::embedded(), settings).await).await;

    let started = Instant::now();
    let first = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert!(
        started.elapsed() >= TIMEOUT,
        "the first request waits for the deadline"
    );
    assert_eq!(first.body, UNDISCOUNTED_BODY);

    for _ in 0..5 {
        let started = Instant::now();
        let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
        let elapsed = started.elapsed();
        assert!(
            elapsed < TIMEOUT,
            "the open breaker answers at once, took {elapsed:?}"
        );
        assert_eq!(response.body, UNDISCOUNTED_BODY);
        assert_eq!(discount_status(&response), "unavailable");
    }
}

#[tokio::test]
async fn the_catalog_starts_before_discount_and_discounts_come_when_it_does() {
    let (_dir, keys) = generated_keys();
    let addr = closed_port().await;
    let catalog = spawn_catalog_for(&keys, addr, TIMEOUT).await;

    let before = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(before.body, UNDISCOUNTED_BODY);

    // The replica's health checks (every second) find it serving, and calls go to it again.
    let discount = spawn_discount_on(&keys, addr).await;
    let addr = catalog.addr;
    let after = testkit::poll::within(
        Duration::from_secs(3),
        "discounts, after discount started",
        || async move {
            let response = get_products(addr, &[("X-USER-ID", b"1")]).await;
            assert_whole_catalog(&response);
            match discount_status(&response) {
                "complete" => Ok(response),
                _ => Err(format!("{response:?}")),
            }
        },
    )
    .await;
    assert_eq!(after.body, CUSTOMER_1_BODY);
    discount.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discount_killed_and_restarted_during_requests_recovers_within_seconds() {
    let (_dir, keys) = generated_keys();
    let mut discount = KillableDiscount::start(&keys, "127.0.0.1:0".parse().unwrap());
    let addr = discount.addr;
    let catalog = spawn_catalog_for(&keys, addr, TIMEOUT).await;
    let load = Load::start(catalog.addr, 4);

    load.wait_until("discounted responses", |s| {
        count_status(s, "complete") >= 20
    })
    .await;
    discount.kill();
    load.wait_until("fallbacks after the kill", |s| {
        count_status(s, "unavailable") >= 20
    })
    .await;

    let restarted_at = Instant::now();
    let _discount = KillableDiscount::start(&keys, addr);
    load.wait_until("discounts after the restart", |s| {
        s.iter().any(|sample| {
            sample.started > restarted_at && discount_status(&sample.response) == "complete"
        })
    })
    .await;
    let recovery = restarted_at.elapsed();
    let samples = load.finish().await;

    // The breaker's cool-down is 1 s, and health checks run every second: the first check
    // after the cool-down that finds discount serving brings discounts back.
    assert!(
        recovery < Duration::from_secs(3),
        "recovered after {recovery:?}"
    );
    for sample in &samples {
        assert_whole_catalog(&sample.response);
        assert!(
            sample.latency < BOUND,
            "a response took {:?}",
            sample.latency
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_replicas_killed_costs_no_more_than_a_second_of_fallbacks() {
    let (_dir, keys) = generated_keys();
    let mut first = KillableDiscount::start(&keys, "127.0.0.1:0".parse().unwrap());
    let second = KillableDiscount::start(&keys, "127.0.0.1:0".parse().unwrap());
    // IP addresses: the certificate names 127.0.0.1 as well as localhost.
    let replicas = format!("{},{}", first.addr, second.addr);
    let catalog = spawn_catalog(catalog_config(&keys, replicas, TIMEOUT).await).await;
    let load = Load::start(catalog.addr, 4);

    load.wait_until("discounted responses", |s| {
        count_status(s, "complete") >= 20
    })
    .await;
    let killed_at = Instant::now();
    first.kill();
    let settled = killed_at + Duration::from_secs(1);
    load.wait_until("100 responses started a second after the kill", |s| {
        s.iter().filter(|sample| sample.started > settled).count() >= 100
    })
    .await;
    let samples = load.finish().await;

    for sample in &samples {
        assert_whole_catalog(&sample.response);
        assert!(
            sample.latency < BOUND,
            "a response took {:?}",
            sample.latency
        );
    }
    let late_fallbacks = samples
        .iter()
        .filter(|sample| {
            sample.started > settled && discount_status(&sample.response) != "complete"
        })
        .count();
    assert_eq!(
        late_fallbacks, 0,
        "responses without discounts a second after the kill"
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discount_shutting_down_during_requests_fails_no_request() {
    let pair = spawn_pair().await;
    let load = Load::start(pair.catalog.addr, 4);
    load.wait_until("discounted responses", |s| {
        count_status(s, "complete") >= 20
    })
    .await;

    let stopping = Instant::now();
    pair.discount.stop().await;
    let drain = stopping.elapsed();
    load.wait_until("fallbacks after the stop", |s| {
        count_status(s, "unavailable") >= 20
    })
    .await;
    let samples = load.finish().await;

    // Bounded: the catalog's connection must not hold the discount's shutdown open.
    assert!(
        drain < Duration::from_secs(5),
        "discount took {drain:?} to stop"
    );
    for sample in &samples {
        assert_whole_catalog(&sample.response);
        assert!(
            sample.latency < Duration::from_secs(6),
            "a response took {:?}",
            sample.latency
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_shutting_down_finishes_the_requests_it_accepted() {
    let (_dir, keys) = generated_keys();
    let gate = Arc::new(Gate::default());
    let discount = spawn_faulty_discount(&keys, Fault::Gate(gate.clone())).await;
    let mut catalog = spawn_catalog_for(&keys, discount.addr, Duration::from_secs(20)).await;

    // Ten requests in flight, each waiting on its three discount calls at the gate.
    let addr = catalog.addr;
    let requests: Vec<_> = (0..10)
        .map(|_| tokio::spawn(async move { get_products(addr, &[("X-USER-ID", b"1")]).await }))
        .collect();
    gate.wait_for_calls(30).await;

    catalog.begin_stop();
    gate.open();
    for request in requests {
        let response = request.await.unwrap();
        assert_eq!(response.body, CUSTOMER_1_BODY);
        assert_eq!(discount_status(&response), "complete");
    }
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_shutdown_is_bounded_when_a_request_never_finishes() {
    let (_dir, keys) = generated_keys();
    let gate = Arc::new(Gate::default()); // never opened
    let discount = spawn_faulty_discount(&keys, Fault::Gate(gate.clone())).await;
    let mut config = catalog_config(
        &keys,
        discount_address(discount.addr),
        Duration::from_secs(60),
    )
    .await;
    config.drain_timeout = Duration::from_millis(500);
    let catalog = spawn_catalog(config).await;

    let addr = catalog.addr;
    let _stuck = tokio::spawn(async move { get_products(addr, &[("X-USER-ID", b"1")]).await });
    gate.wait_for_calls(3).await;

    let started = Instant::now();
    catalog.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
