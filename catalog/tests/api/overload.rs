//! Overload and partial failure: admission control, attribution of failures, hedging and
//! out-of-band health, over real sockets with TLS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog::data::Catalog;
use catalog::discounts::BreakerSettings;
use catalog::overload::admission::AdmissionSettings;

use crate::helpers::{
    CUSTOMER_1_BODY, Fault, Gate, assert_samples, assert_whole_catalog, catalog_config,
    config_with, discount_address, discount_status, generated_keys, get_products, request, sample,
    scrape, settings, spawn_catalog, spawn_discount, spawn_discount_with, spawn_faulty_discount,
};

/// Admission for one request of three products at a time.
fn one_request_at_a_time(wait: Duration) -> AdmissionSettings {
    AdmissionSettings {
        max_inflight_calls: 3,
        wait,
        max_queue: 100,
        target_latency: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_waits_too_long_for_admission_gets_503_with_retry_after_and_probes_never_wait()
 {
    let (_dir, keys) = generated_keys();
    let gate = Arc::new(Gate::default());
    let discount = spawn_faulty_discount(&keys, Fault::Gate(gate.clone())).await;
    let mut config = catalog_config(
        &keys,
        discount_address(discount.addr),
        Duration::from_secs(20),
    )
    .await;
    config.admission = one_request_at_a_time(Duration::from_millis(200));
    let catalog = spawn_catalog(config).await;
    let addr = catalog.addr;

    // One request is admitted and holds every permit, its calls held at the gate.
    let admitted = tokio::spawn(async move { get_products(addr, &[("X-USER-ID", b"1")]).await });
    gate.wait_for_calls(3).await;

    // The next priced request waits its 200 ms, then is refused, cheaply and clearly.
    let started = Instant::now();
    let shed = get_products(addr, &[("X-USER-ID", b"2")]).await;
    let waited = started.elapsed();
    assert_eq!(shed.status, 503, "{shed:?}");
    assert_eq!(shed.headers["retry-after"], "1");
    assert_eq!(shed.headers["cache-control"], "no-store");
    assert!(shed.headers.contains_key("x-request-id"));
    assert!(!shed.headers.contains_key("x-discount-status"));
    assert!(
        waited >= Duration::from_millis(200),
        "refused before the wait: {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "took {waited:?}");

    // Probes, metrics, the storefront's files and unpriced requests are never queued:
    // queued, they would wait out the 200 ms and get 503 (the admitted request holds its
    // permits until the gate opens).
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/shop",
        "/shop/shop.js",
    ] {
        let started = Instant::now();
        assert_eq!(request(addr, "GET", path, &[]).await.status, 200, "{path}");
        assert!(started.elapsed() < Duration::from_secs(1), "{path}");
    }
    let unpriced = get_products(addr, &[]).await;
    assert_eq!(unpriced.status, 200);
    assert_eq!(discount_status(&unpriced), "skipped");

    // The admitted request still gets its discounts.
    gate.open();
    let admitted = admitted.await.unwrap();
    assert_eq!(admitted.body, CUSTOMER_1_BODY);
    assert_eq!(discount_status(&admitted), "complete");

    let metrics = scrape(addr).await;
    assert_samples(
        &metrics,
        &[
            (
                r#"catalog_requests_shed_total{reason="queue_timeout"}"#,
                1.0,
            ),
            ("catalog_requests_admitted_total", 1.0),
            (
                r#"catalog_http_requests_total{route="/products",status="503"}"#,
                1.0,
            ),
            ("catalog_admission_limit", 3.0),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_spent_waiting_for_admission_is_not_taken_from_the_discount_deadline() {
    let (_dir, keys) = generated_keys();
    // Each call takes 150 ms of a 400 ms deadline; requests run one at a time.
    let slow = spawn_faulty_discount(&keys, Fault::Delay(Duration::from_millis(150))).await;
    let mut config = catalog_config(
        &keys,
        discount_address(slow.addr),
        Duration::from_millis(400),
    )
    .await;
    config.admission = one_request_at_a_time(Duration::from_secs(5));
    let catalog = spawn_catalog(config).await;
    let addr = catalog.addr;

    // The fourth request waits about 450 ms for its turn, more than the whole deadline.
    let requests: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { get_products(addr, &[("X-USER-ID", b"1")]).await }))
        .collect();
    for request in requests {
        let response = request.await.unwrap();
        assert_eq!(response.body, CUSTOMER_1_BODY);
        assert_eq!(discount_status(&response), "complete");
    }
    let metrics = scrape(addr).await;
    assert!(sample(&metrics, "catalog_admission_wait_seconds_sum") >= 0.4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_while_the_catalog_is_overloaded_does_not_open_the_breaker() {
    let (_dir, keys) = generated_keys();
    let gate = Arc::new(Gate::default());
    let discount = spawn_faulty_discount(&keys, Fault::Gate(gate.clone())).await;
    let mut settings = settings(
        &keys,
        discount_address(discount.addr),
        Duration::from_secs(1),
    );
    // A single failure the replica is blamed for would open it.
    settings.breaker = BreakerSettings {
        failure_threshold: 1,
        cool_down: Duration::from_secs(60),
    };
    let mut config = config_with(Catalog::embedded(), settings).await;
    config.admission = one_request_at_a_time(Duration::from_secs(5));
    let catalog = spawn_catalog(config).await;
    let addr = catalog.addr;

    // The first request's calls are held past their deadline while a second request waits
    // for admission: the catalog is overloaded, so the timeouts are its own.
    let first = tokio::spawn(async move { get_products(addr, &[("X-USER-ID", b"1")]).await });
    gate.wait_for_calls(3).await;
    let second = tokio::spawn(async move { get_products(addr, &[("X-USER-ID", b"1")]).await });
    let first = first.await.unwrap();
    assert_whole_catalog(&first);
    assert_eq!(discount_status(&first), "unavailable");

    gate.open();
    let second = second.await.unwrap();
    assert_eq!(second.body, CUSTOMER_1_BODY, "the breaker stayed closed");

    let metrics = scrape(addr).await;
    assert_eq!(
        sample(
            &metrics,
            r#"catalog_discount_calls_total{outcome="timeout_local"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(&metrics, "catalog_discount_breaker_openings_total"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replica_is_hedged_around_within_the_deadline() {
    let (_dir, keys) = generated_keys();
    let slow = spawn_faulty_discount(&keys, Fault::Delay(Duration::from_secs(1))).await;
    let fast = spawn_discount(&keys).await;
    // IP addresses: the certificate names 127.0.0.1 as well as localhost.
    let replicas = format!("{},{}", slow.addr, fast.addr);
    let mut settings = settings(&keys, replicas, Duration::from_millis(1500));
    settings.hedge_delay = Some(Duration::from_millis(30));
    let catalog = spawn_catalog(config_with(Catalog::embedded(), settings).await).await;

    for _ in 0..4 {
        let started = Instant::now();
        let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
        let elapsed = started.elapsed();
        assert_eq!(response.body, CUSTOMER_1_BODY);
        // Hedged at 30 ms to the fast replica, not waited out for a second.
        assert!(elapsed < Duration::from_millis(600), "took {elapsed:?}");
    }
    let metrics = scrape(catalog.addr).await;
    let hedges = sample(&metrics, "catalog_discount_hedges_total");
    assert!(hedges >= 1.0, "{metrics}");
    assert_eq!(
        sample(&metrics, "catalog_discount_hedges_won_total"),
        hedges
    );
    drop((slow, fast));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_health_check_says_not_serving_gets_no_calls() {
    let (_dir, keys) = generated_keys();
    // `leaving` reports NOT_SERVING from its shutdown signal on, yet keeps serving for a
    // long shutdown delay, as a pod being replaced does.
    let mut leaving_config = discount::Config::new(testkit::discount_tls(&keys, false));
    leaving_config.shutdown_delay = Duration::from_secs(60);
    let leaving_metrics = leaving_config.metrics.clone();
    let mut leaving = spawn_discount_with(leaving_config).await;
    let staying = spawn_discount(&keys).await;
    let replicas = format!("{},{}", leaving.addr, staying.addr);
    let catalog =
        spawn_catalog(catalog_config(&keys, replicas, Duration::from_millis(300)).await).await;
    let calls_to_leaving = || {
        let (_, text) = leaving_metrics.encode(None);
        text.lines()
            .find_map(|line| {
                line.strip_prefix(r#"discount_grpc_server_handled_total{grpc_method="/ecommerce.Discount/ApplyDiscount",grpc_code="OK"} "#)
            })
            .map_or(0.0, |n| n.parse::<f64>().unwrap())
    };
    for _ in 0..4 {
        let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
        assert_eq!(response.body, CUSTOMER_1_BODY);
    }
    assert!(calls_to_leaving() > 0.0, "both replicas get calls at first");

    leaving.begin_stop();
    // Wait (bounded) for a health check to find it.
    let addr = catalog.addr;
    let not_serving = r#"catalog_discount_replicas{health="not_serving"}"#;
    testkit::poll::within(
        Duration::from_secs(5),
        "a health check to notice",
        || async move {
            let metrics = scrape(addr).await;
            if sample(&metrics, not_serving) >= 1.0 {
                Ok(())
            } else {
                Err(metrics)
            }
        },
    )
    .await;
    let before = calls_to_leaving();
    for _ in 0..10 {
        let response = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
        assert_eq!(response.body, CUSTOMER_1_BODY);
    }
    assert_eq!(
        calls_to_leaving(),
        before,
        "calls went to a NOT_SERVING replica"
    );
}
