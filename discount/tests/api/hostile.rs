//! Odd and hostile requests: every one gets a deliberate answer, never a panic.
//!
//! Well-formed requests, however odd, get the rule's answer. Requests that are not
//! well-formed get a precise status: no product is INVALID_ARGUMENT, a message over the
//! size limit is RESOURCE_EXHAUSTED, bytes that do not decode are INTERNAL (what tonic and
//! grpc-go answer for an undecodable message).

use ecommerce::pb::{DiscountResponse, DiscountValue, Product};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

use crate::helpers::{apply, channel_for, client_for, customer, product, start};

const APPLY_DISCOUNT: &str = "/ecommerce.Discount/ApplyDiscount";

/// Sends any prost message to ApplyDiscount, as a client with another idea of the
/// contract would.
async fn send<M: prost::Message + Default + Send + 'static>(
    server: &crate::helpers::Server,
    message: M,
) -> Result<DiscountResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel_for(server).await);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(message),
        PathAndQuery::from_static(APPLY_DISCOUNT),
        tonic_prost::ProstCodec::<M, DiscountResponse>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

/// A DiscountRequest with an extra field the contract does not have (tag 99).
#[derive(Clone, PartialEq, prost::Message)]
struct RequestWithUnknownField {
    #[prost(message, optional, tag = "1")]
    customer: Option<ecommerce::pb::Customer>,
    #[prost(message, optional, tag = "2")]
    product: Option<Product>,
    #[prost(string, tag = "99")]
    from_the_future: String,
}

/// Field 1 (`customer`, a message) sent as a varint: bytes that do not decode.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(uint64, tag = "1")]
    customer: u64,
}

#[tokio::test]
async fn well_formed_odd_requests_get_the_rules_answer() {
    let server = start().await;
    let mut client = client_for(&server).await;
    let discounted = |price: i32, value: i32| Product {
        discount_value: Some(DiscountValue {
            pct: 0.1,
            value_in_cents: value,
        }),
        ..product(price)
    };
    let undiscounted = |price: i32| Product {
        discount_value: Some(DiscountValue::default()),
        ..product(price)
    };
    let cases = [
        (None, product(1000), undiscounted(1000)),
        (customer(0), product(1000), undiscounted(1000)),
        (customer(-1), product(1000), undiscounted(1000)),
        (customer(i32::MAX), product(1000), undiscounted(1000)),
        (customer(1), product(0), undiscounted(0)),
        (customer(1), product(-5), undiscounted(-5)),
        (customer(1), product(i32::MIN), undiscounted(i32::MIN)),
        (
            customer(1),
            product(i32::MAX),
            discounted(i32::MAX, 1932735282),
        ),
        // A discount_value sent by the client is replaced by the rule's.
        (
            customer(1),
            Product {
                discount_value: Some(DiscountValue {
                    pct: 0.9,
                    value_in_cents: 1,
                }),
                ..product(1000)
            },
            discounted(1000, 900),
        ),
    ];
    for (who, sent, expected) in cases {
        let answer = apply(&mut client, who.clone(), Some(sent)).await.unwrap();
        assert_eq!(answer, expected, "customer {who:?}");
    }
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let server = start().await;
    let answer = send(
        &server,
        RequestWithUnknownField {
            customer: customer(1),
            product: Some(product(1000)),
            from_the_future: "ignored".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        answer
            .product
            .unwrap()
            .discount_value
            .unwrap()
            .value_in_cents,
        900
    );
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_resource_exhausted() {
    let server = start().await;
    let mut huge = product(1000);
    huge.description = "x".repeat(discount::limits::DEFAULT_MAX_REQUEST_BYTES + 1);
    let status = apply(&mut client_for(&server).await, customer(1), Some(huge))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // A product with a 100 KB description, as the Python service accepted, is discounted.
    let mut described = product(1000);
    described.description = "x".repeat(100 * 1024);
    let answer = apply(&mut client_for(&server).await, customer(1), Some(described))
        .await
        .unwrap();
    assert_eq!(answer.discount_value.unwrap().value_in_cents, 900);

    // Just under the limit is fine.
    let mut large = product(1000);
    large.description = "x".repeat(discount::limits::DEFAULT_MAX_REQUEST_BYTES - 100);
    apply(&mut client_for(&server).await, customer(1), Some(large))
        .await
        .unwrap();
}

#[tokio::test]
async fn bytes_that_do_not_decode_get_an_error_status_and_the_server_carries_on() {
    let server = start().await;
    let status = send(&server, Garbage { customer: 7 }).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    // The same server still answers.
    let answer = apply(
        &mut client_for(&server).await,
        customer(1),
        Some(product(10)),
    )
    .await
    .unwrap();
    assert_eq!(answer.discount_value.unwrap().value_in_cents, 9);
}

/// One `ApplyDiscount` call for customer 1 with `grpc-timeout` set to `timeout` as is.
async fn apply_with_timeout(
    server: &crate::helpers::Server,
    timeout: &'static str,
) -> Result<Product, tonic::Status> {
    let mut request = tonic::Request::new(ecommerce::pb::DiscountRequest {
        customer: customer(1),
        product: Some(product(1000)),
    });
    request.metadata_mut().insert(
        "grpc-timeout",
        tonic::metadata::MetadataValue::from_static(timeout),
    );
    let response = client_for(server)
        .await
        .apply_discount(request)
        .await?
        .into_inner();
    Ok(response.product.expect("the response has a product"))
}

#[tokio::test]
async fn a_deadline_in_any_unit_of_the_specification_is_kept_and_a_malformed_one_refused() {
    let server = start().await;
    for generous in ["5S", "5000m", "5000000u", "1M", "1H", "99999999n"] {
        let priced = apply_with_timeout(&server, generous)
            .await
            .unwrap_or_else(|status| panic!("grpc-timeout: {generous}: {status:?}"));
        assert_eq!(
            priced.discount_value.map(|value| value.value_in_cents),
            Some(900),
            "grpc-timeout: {generous}"
        );
    }
    for malformed in ["5", "5s", "123456789m", "1.5S", "-1m"] {
        let status = apply_with_timeout(&server, malformed).await.unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{malformed}: {status:?}");
        assert!(
            status.message().contains("malformed grpc-timeout"),
            "{malformed}: {status:?}"
        );
    }
}
