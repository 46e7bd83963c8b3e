//! The catalog's OpenTelemetry spans, made in one place: the request's server span, each
//! discount attempt's client span, and the span that pricing adds its attributes to.
//!
//! This is the only module that asks whether spans are exported
//! ([`propagation::spans_enabled`]). With export off no span is recorded at all: the
//! functions here hand out [`tracing::Span::none`] (or a plain span for the log lines),
//! on which attributes cost nothing, and the caller's trace context is passed through
//! instead (see `ecommerce::telemetry::propagation`). Handlers never test a mode.

use std::net::SocketAddr;

use ecommerce::telemetry::propagation;
use hyper::{Method, Request, Version};
use tonic::Code;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The span of one request: its log lines' context, and its OpenTelemetry server span,
/// continuing the caller's trace (W3C `traceparent`). Probes and scrapes get a span of
/// their own target, `catalog::probe`, which logs like any other but is not exported.
pub fn request_span<B>(request: &Request<B>, id: &str, route: &'static str) -> tracing::Span {
    let method = request.method();
    if matches!(route, "/healthz" | "/readyz" | "/metrics") {
        return tracing::info_span!(target: "catalog::probe", "request", request_id = %id, %method, route);
    }
    if !propagation::spans_enabled() {
        return tracing::info_span!("request", request_id = %id, %method, route);
    }
    // Semantic conventions: a method the catalog does not know is `_OTHER`, and a path it
    // does not serve has no route; neither may create new span names.
    let method_name: &'static str = match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    };
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        %method,
        route,
        otel.name = %if route == "other" {
            method_name.to_owned()
        } else {
            format!("{method_name} {route}")
        },
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
    );
    propagation::continue_trace(&span, request.headers());
    span.set_attribute("http.request.method", method_name);
    if route != "other" {
        span.set_attribute("http.route", route);
    }
    let path = request.uri().path();
    // The path is the client's: bounded, so a long one cannot bloat the span.
    let path = path.get(..path.len().min(256)).unwrap_or("");
    span.set_attribute("url.path", path.to_owned());
    span.set_attribute("url.scheme", "http");
    span.set_attribute(
        "network.protocol.version",
        match request.version() {
            Version::HTTP_2 => "2",
            Version::HTTP_10 => "1.0",
            _ => "1.1",
        },
    );
    span
}

/// Records the answer's status on a request's span (an error from 500 on).
pub fn request_answered(span: &tracing::Span, status: u16) {
    if propagation::spans_enabled() {
        span.set_attribute("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "error");
        }
    }
}

/// The current request's span, to add attributes to; with export off, none, so that its
/// attributes cost nothing on every request for nobody.
pub fn current() -> tracing::Span {
    if propagation::spans_enabled() {
        tracing::Span::current()
    } else {
        tracing::Span::none()
    }
}

/// The OpenTelemetry client span of one discount attempt on `replica`, a child of the
/// current span (the request's); with export off, none.
pub fn attempt_span(replica: SocketAddr, attempt: &'static str, product_id: i32) -> tracing::Span {
    if !propagation::spans_enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "discount_attempt",
        replica = %replica,
        attempt,
        otel.name = "ecommerce.Discount/ApplyDiscount",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
    );
    span.set_attribute("rpc.system", "grpc");
    span.set_attribute("rpc.service", "ecommerce.Discount");
    span.set_attribute("rpc.method", "ApplyDiscount");
    span.set_attribute("server.address", replica.ip().to_string());
    span.set_attribute("server.port", i64::from(replica.port()));
    span.set_attribute("ecommerce.attempt", attempt);
    span.set_attribute("ecommerce.product.id", i64::from(product_id));
    span
}

/// Records how an attempt ended on its span: the gRPC code and, for a failure, its
/// outcome label as `error.type`.
pub fn attempt_ended(span: &tracing::Span, code: Code, error: Option<&'static str>) {
    if span.is_none() {
        return;
    }
    span.set_attribute("rpc.grpc.status_code", code as i64);
    if let Some(outcome) = error {
        span.record("otel.status_code", "error");
        span.set_attribute("error.type", outcome);
    }
}
