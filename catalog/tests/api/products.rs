//! The contract of `GET /products` and the other routes, with discount healthy.

/// Request headers as the helpers take them.
type Headers<'a> = &'a [(&'a str, &'a [u8])];

use crate::helpers::{CUSTOMER_1_BODY, UNDISCOUNTED_BODY, get_products, request, spawn_pair};

#[tokio::test]
async fn customer_1_gets_the_exact_contract_body() {
    let pair = spawn_pair().await;
    let response = get_products(pair.catalog.addr, &[("X-USER-ID", b"1")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.body, CUSTOMER_1_BODY);
}

#[tokio::test]
async fn customer_2_gets_every_product_without_discount() {
    let pair = spawn_pair().await;
    let response = get_products(pair.catalog.addr, &[("X-USER-ID", b"2")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, UNDISCOUNTED_BODY);
}

#[tokio::test]
async fn no_header_an_empty_one_or_an_unknown_customer_get_undiscounted_products() {
    let pair = spawn_pair().await;
    for headers in [
        &[][..],
        &[("X-USER-ID", &b""[..])],
        &[("X-USER-ID", &b"  "[..])],
        &[("X-USER-ID", &b"3"[..])],
        &[("X-USER-ID", &b"-1"[..])],
        &[("X-USER-ID", &b"0"[..])],
    ] {
        let response = get_products(pair.catalog.addr, headers).await;
        assert_eq!(response.status, 200, "{headers:?}");
        assert_eq!(response.body, UNDISCOUNTED_BODY, "{headers:?}");
    }
}

#[tokio::test]
async fn numbers_in_other_spellings_are_the_same_customer() {
    let pair = spawn_pair().await;
    for value in [&b"+1"[..], b"01", b" 1 "] {
        let response = get_products(pair.catalog.addr, &[("X-USER-ID", value)]).await;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.body,
            CUSTOMER_1_BODY,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
}

#[tokio::test]
async fn bad_customer_ids_are_400_with_a_message() {
    let pair = spawn_pair().await;
    let cases: [(Headers, &str); 7] = [
        (&[("X-USER-ID", b"abc")], "Customer ID is not a number."),
        (&[("X-USER-ID", b"1.0")], "Customer ID is not a number."),
        (&[("X-USER-ID", b"0x1")], "Customer ID is not a number."),
        (
            &[("X-USER-ID", b"\xc3\xa9")],
            "Customer ID is not a number.",
        ),
        (
            &[("X-USER-ID", b"2147483648")],
            "Customer ID is out of range",
        ),
        (
            &[("X-USER-ID", b"-2147483649")],
            "Customer ID is out of range",
        ),
        (
            &[("X-USER-ID", b"1"), ("X-USER-ID", b"2")],
            "X-USER-ID must be given once.",
        ),
    ];
    for (headers, message) in cases {
        let response = get_products(pair.catalog.addr, headers).await;
        assert_eq!(response.status, 400, "{headers:?}");
        assert!(
            response.body.starts_with(message),
            "{headers:?}: {}",
            response.body
        );
        assert!(
            response.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
    }
}

#[tokio::test]
async fn the_root_path_says_it_is_working() {
    let pair = spawn_pair().await;
    let response = request(pair.catalog.addr, "GET", "/", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body.trim_end(), "It is working.");
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405_with_allow() {
    let pair = spawn_pair().await;
    let response = request(pair.catalog.addr, "GET", "/nope", &[]).await;
    assert_eq!(response.status, 404);

    for method in ["POST", "PUT", "DELETE"] {
        let response = request(pair.catalog.addr, method, "/products", &[]).await;
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.headers["allow"], "GET, HEAD");
    }
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let pair = spawn_pair().await;
    let response = request(
        pair.catalog.addr,
        "HEAD",
        "/products",
        &[("X-USER-ID", b"1")],
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "");
    assert_eq!(
        response.headers["content-length"],
        CUSTOMER_1_BODY.len().to_string().as_str()
    );
}

#[tokio::test]
async fn many_concurrent_requests_share_the_discount_connection_and_all_get_discounts() {
    let pair = spawn_pair().await;
    let requests = (0..50).map(|_| get_products(pair.catalog.addr, &[("X-USER-ID", b"1")]));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status, 200);
        assert_eq!(response.body, CUSTOMER_1_BODY);
    }
}
