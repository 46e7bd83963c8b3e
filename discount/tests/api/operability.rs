//! Health checking, reflection and metrics, as standard gRPC and Prometheus tools see them.

use std::time::Duration;

use futures_util::StreamExt;
use tonic::Code;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::helpers::{
    apply, channel_for, client_for, customer, loopback, product, start, start_with,
};

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_for_ecommerce_discount() {
    let server = start().await;
    let mut health = HealthClient::new(channel_for(&server).await);
    for service in ["", "ecommerce.Discount"] {
        let status = health
            .check(check(service))
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(check("no.Such")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

async fn list_services(server: &crate::helpers::Server) -> Vec<String> {
    let mut reflection = ServerReflectionClient::new(channel_for(server).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[tokio::test]
async fn reflection_lists_the_services_and_describes_apply_discount() {
    let server = start().await;
    let services = list_services(&server).await;
    for expected in ["ecommerce.Discount", "grpc.health.v1.Health"] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected} in {services:?}"
        );
    }

    let mut reflection = ServerReflectionClient::new(channel_for(&server).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "ecommerce.Discount".into(),
        )),
    };
    let response = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("no file descriptor");
    };
    let file = String::from_utf8_lossy(&files.file_descriptor_proto[0]).into_owned();
    for name in [
        "ecommerce.proto",
        "ApplyDiscount",
        "DiscountRequest",
        "value_in_cents",
    ] {
        assert!(file.contains(name), "{name} missing from the descriptor");
    }
}

#[tokio::test]
async fn reflection_v1alpha_answers_older_tools() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    let server = start().await;
    let mut reflection = Alpha::new(channel_for(&server).await);
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::ListServices(String::new())),
    };
    let response = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert!(format!("{response:?}").contains("ecommerce.Discount"));
}

#[tokio::test]
async fn plaintext_health_turns_not_serving_at_shutdown_while_calls_still_succeed() {
    let health_listener = loopback().await;
    let health_addr = health_listener.local_addr().unwrap();
    let mut server = start_with(loopback().await, |config, _| {
        config.health_listener = Some(health_listener);
        config.shutdown_delay = Duration::from_millis(500);
    })
    .await;

    // Plaintext, as a Kubernetes gRPC probe connects.
    let plaintext = Endpoint::from_shared(format!("http://{health_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(plaintext);
    let mut watch = health
        .watch(check("ecommerce.Discount"))
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let mut discount = client_for(&server).await;

    server.begin_stop();
    let next = watch.next().await.unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    let overall = health.check(check("")).await.unwrap().into_inner().status();
    assert_eq!(overall, ServingStatus::NotServing);
    // During the shutdown delay the service still answers.
    let answer = apply(&mut discount, customer(1), Some(product(100)))
        .await
        .unwrap();
    assert_eq!(answer.discount_value.unwrap().value_in_cents, 90);

    // The open Watch stream must not hold the shutdown open.
    server.stopped().await;
}

/// GET /metrics with an `Accept` header; (content type, body).
async fn scrape(addr: std::net::SocketAddr, accept: &str) -> (String, String) {
    let response = testkit::http_get(addr, "/metrics", &[("Accept", accept)]).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|line| line.strip_prefix("content-type: "))
        .unwrap()
        .to_owned();
    (content_type, body.to_owned())
}

#[tokio::test]
async fn metrics_count_every_call_by_method_and_status_code() {
    let metrics_listener = loopback().await;
    let metrics_addr = metrics_listener.local_addr().unwrap();
    let server = start_with(loopback().await, |config, _| {
        config.metrics_listener = Some(metrics_listener);
    })
    .await;
    let mut discount = client_for(&server).await;
    apply(&mut discount, customer(1), Some(product(100)))
        .await
        .unwrap();
    apply(&mut discount, customer(2), Some(product(100)))
        .await
        .unwrap();
    apply(&mut discount, customer(1), None).await.unwrap_err();
    HealthClient::new(channel_for(&server).await)
        .check(check(""))
        .await
        .unwrap();

    let (content_type, text) = scrape(metrics_addr, "application/openmetrics-text").await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    for line in [
        r#"discount_grpc_server_handled_total{grpc_method="/ecommerce.Discount/ApplyDiscount",grpc_code="OK"} 2"#,
        r#"discount_grpc_server_handled_total{grpc_method="/ecommerce.Discount/ApplyDiscount",grpc_code="INVALID_ARGUMENT"} 1"#,
        r#"discount_grpc_server_handled_total{grpc_method="/grpc.health.v1.Health/Check",grpc_code="OK"} 1"#,
        r#"discount_grpc_server_handling_seconds_count{grpc_method="/ecommerce.Discount/ApplyDiscount"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\nnot in:\n{text}");
    }

    let (content_type, text) = scrape(metrics_addr, "text/plain").await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(
        text.contains("# TYPE discount_grpc_server_handled_total counter"),
        "{text}"
    );
    assert!(!text.contains("# EOF"));
}
