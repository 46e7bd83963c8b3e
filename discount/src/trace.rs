//! discount's OpenTelemetry spans, made in one place: each call's server span, continuing
//! the caller's trace (W3C `traceparent` in the metadata), its status, and what the rule
//! did. The only module that asks whether spans are exported
//! ([`propagation::spans_enabled`]); without export, a call's span only carries the fields
//! of its log lines.
//!
//! Health checks get no span (a probe every second would bury the calls that matter).

use ecommerce::telemetry::propagation;
use tonic::Code;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The server span of a call (`None` for health checks): named and shaped by the
/// semantic conventions for RPC, its parent the caller's span if the metadata names one.
/// The handler ([`crate::service`]) records the request's fields on it (`request_id`, `customer_id`,
/// `product_id`), and its log lines are span events.
pub fn server_span(path: &str, headers: &http::HeaderMap) -> Option<tracing::Span> {
    if path.starts_with("/grpc.health.v1.Health/") {
        return None;
    }
    if !propagation::spans_enabled() {
        // For the log lines only (see the handler).
        return Some(tracing::info_span!(
            "grpc_call",
            request_id = tracing::field::Empty,
            customer_id = tracing::field::Empty,
            product_id = tracing::field::Empty,
        ));
    }
    let name = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    let span = tracing::info_span!(
        "grpc_call",
        request_id = tracing::field::Empty,
        customer_id = tracing::field::Empty,
        product_id = tracing::field::Empty,
        otel.name = name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
    );
    propagation::continue_trace(&span, headers);
    span.set_attribute("rpc.system", "grpc");
    span.set_attribute("rpc.service", service.to_owned());
    span.set_attribute("rpc.method", method.to_owned());
    Some(span)
}

/// Status codes that are the server's failure, for the span's status (semantic
/// conventions for gRPC servers): the others are the client's doing.
fn server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// Records a call's status `code` on its span: an error for the codes that are the server's
/// failure.
pub fn call_ended(span: Option<&tracing::Span>, code: Code) {
    if let Some(span) = span.filter(|_| propagation::spans_enabled()) {
        span.set_attribute("rpc.grpc.status_code", code as i64);
        if server_error(code) {
            span.record("otel.status_code", "error");
        }
    }
}

/// Records on the current call's span whether the rule gave a discount.
pub fn discount_applied(applied: bool) {
    if propagation::spans_enabled() {
        tracing::Span::current().set_attribute("ecommerce.discount.applied", applied);
    }
}

/// Records on the current call's span that a fault flag acted on it (`ecommerce.fault`:
/// `cpu`, `delay`, `hang` or `error`; the last, when several did), so that a trace tells an
/// injected failure from a real one.
pub fn fault_injected(fault: &'static str) {
    if propagation::spans_enabled() {
        tracing::Span::current().set_attribute("ecommerce.fault", fault);
    }
}
