//! Health, readiness, metrics and request ids, as orchestrators, Prometheus and people
//! following a request see them.

use std::time::Duration;

use crate::helpers::{
    Fault, assert_samples, catalog_config, discount_address, generated_keys, get_products, request,
    sample, spawn_catalog, spawn_catalog_for, spawn_pair, spawn_recording_discount,
};

#[tokio::test]
async fn healthz_and_readyz_answer_200_with_discount_up_or_down() {
    let pair = spawn_pair().await;
    let healthz = request(pair.catalog.addr, "GET", "/healthz", &[]).await;
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok\n"));
    let readyz = request(pair.catalog.addr, "GET", "/readyz", &[]).await;
    assert_eq!(readyz.status, 200);
    assert!(readyz.body.starts_with("ready\n"), "{}", readyz.body);

    // Readiness does not follow discount: the catalog serves without it.
    pair.discount.stop().await;
    get_products(pair.catalog.addr, &[("X-USER-ID", b"1")]).await;
    let readyz = request(pair.catalog.addr, "GET", "/readyz", &[]).await;
    assert_eq!(readyz.status, 200);
}

#[tokio::test]
async fn readyz_turns_503_at_shutdown_while_products_are_still_served() {
    let (_dir, keys) = generated_keys();
    let (discount, _) = spawn_recording_discount(&keys, Fault::Delay(Duration::ZERO)).await;
    let mut config = catalog_config(
        &keys,
        discount_address(discount.addr),
        Duration::from_secs(5),
    )
    .await;
    config.shutdown_delay = Duration::from_secs(30);
    let mut catalog = spawn_catalog(config).await;
    assert_eq!(
        request(catalog.addr, "GET", "/readyz", &[]).await.status,
        200
    );

    catalog.begin_stop();
    // Polls until the signal has been seen: readiness is what changes first.
    let addr = catalog.addr;
    let readyz = testkit::poll::until("/readyz to turn 503", || async move {
        let readyz = request(addr, "GET", "/readyz", &[]).await;
        match readyz.status {
            503 => Ok(readyz),
            _ => Err(format!("{readyz:?}")),
        }
    })
    .await;
    assert_eq!(readyz.body, "shutting down\n");
    let products = get_products(catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(products.status, 200);
    assert!(products.body.contains("discount_value"));
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_discount_receives_the_same() {
    let (_dir, keys) = generated_keys();
    let (discount, seen) = spawn_recording_discount(&keys, Fault::Delay(Duration::ZERO)).await;
    let catalog = spawn_catalog_for(&keys, discount.addr, Duration::from_secs(5)).await;

    // The client's own id is kept and passed on to every discount call.
    let response = get_products(
        catalog.addr,
        &[("X-USER-ID", b"1"), ("X-Request-ID", b"trace-42.a:b")],
    )
    .await;
    assert_eq!(response.headers["x-request-id"], "trace-42.a:b");
    assert_eq!(*seen.lock().unwrap(), ["trace-42.a:b"; 3]);

    // Without one (or with an unusable one) the catalog makes one.
    for headers in [
        &[("X-USER-ID", &b"1"[..])][..],
        &[("X-USER-ID", b"1"), ("X-Request-ID", b"bad id!")],
    ] {
        seen.lock().unwrap().clear();
        let response = get_products(catalog.addr, headers).await;
        let id = response.headers["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(*seen.lock().unwrap(), [id.as_str(); 3]);
    }

    let other = request(catalog.addr, "GET", "/nope", &[]).await;
    assert!(other.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn metrics_count_requests_discount_outcomes_fallbacks_and_breakers() {
    let pair = spawn_pair().await;
    let addr = pair.catalog.addr;
    get_products(addr, &[("X-USER-ID", b"1")]).await;
    get_products(addr, &[("X-USER-ID", b"2")]).await;
    get_products(addr, &[("X-USER-ID", b"x")]).await;
    request(addr, "GET", "/no/such/path", &[]).await;
    let discount_addr = pair.discount.addr;
    pair.discount.stop().await;
    get_products(addr, &[("X-USER-ID", b"1")]).await;

    let scraped = request(
        addr,
        "GET",
        "/metrics",
        &[("Accept", b"application/openmetrics-text")],
    )
    .await;
    assert_eq!(scraped.status, 200);
    assert!(
        scraped.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = &scraped.body;
    assert_samples(
        text,
        &[
            (
                r#"catalog_http_requests_total{route="/products",status="200"}"#,
                3.0,
            ),
            (
                r#"catalog_http_requests_total{route="/products",status="400"}"#,
                1.0,
            ),
            (
                r#"catalog_http_requests_total{route="other",status="404"}"#,
                1.0,
            ),
            (r#"catalog_discount_calls_total{outcome="applied"}"#, 3.0),
            (
                r#"catalog_discount_calls_total{outcome="no_discount"}"#,
                3.0,
            ),
            (
                r#"catalog_discount_calls_total{outcome="unavailable"}"#,
                3.0,
            ),
            ("catalog_discount_fallbacks_total", 3.0),
            (
                r#"catalog_http_request_duration_seconds_count{route="/products"}"#,
                4.0,
            ),
            // The discount coverage objective's numbers: X-Discount-Status of each answer.
            (
                r#"catalog_products_responses_total{discount_status="complete"}"#,
                2.0,
            ),
            (
                r#"catalog_products_responses_total{discount_status="unavailable"}"#,
                1.0,
            ),
            // The scrape itself is in flight.
            ("catalog_http_requests_in_flight", 1.0),
        ],
    );
    // The latency objective's bound is a bucket: the alert rules read it.
    assert!(
        sample(
            text,
            r#"catalog_http_request_duration_seconds_bucket{le="0.05",route="/products"}"#
        ) <= 4.0
    );
    assert_replica_counts(text, discount_addr);
    assert_text_format(addr).await;
}

/// Per replica: the six answered calls went to the discount's address (a retry on `::1`
/// may add failures, never answers); one or two replicas, each with a breaker.
fn assert_replica_counts(text: &str, discount_addr: std::net::SocketAddr) {
    let replica_calls = |result: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with("catalog_discount_replica_calls_total{"))
            .filter(|line| line.contains(&format!(r#"result="{result}""#)))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(replica_calls("ok"), 6.0);
    assert!(replica_calls("failed") >= 3.0);
    assert!(text.contains(&format!(
        r#"catalog_discount_replica_calls_total{{replica="{discount_addr}",result="ok"}} 6"#
    )));
    // `localhost` resolves to one or two loopback addresses, each a replica with a breaker.
    // (The test discount listens on 127.0.0.1 only, so how many refusals `::1` collects
    // depends on the round-robin order: only the total is certain.)
    let replicas: f64 = ["closed", "half_open", "open"]
        .iter()
        .map(|state| {
            sample(
                text,
                &format!(r#"catalog_discount_breakers{{state="{state}"}}"#),
            )
        })
        .sum();
    assert!((1.0..=2.0).contains(&replicas), "{replicas} replicas");
}

/// The metrics in the Prometheus text format 0.0.4, for scrapers that ask for it.
async fn assert_text_format(addr: std::net::SocketAddr) {
    let plain = request(addr, "GET", "/metrics", &[("Accept", b"text/plain")]).await;
    assert!(
        plain.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        plain
            .body
            .contains("# TYPE catalog_discount_calls_total counter")
    );
}
