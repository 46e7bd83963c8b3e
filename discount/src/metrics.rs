//! Prometheus metrics of the discount service, and the plaintext HTTP listener that serves
//! them (the gRPC port speaks TLS gRPC only).
//!
//! - `discount_grpc_server_handled_total{grpc_method, grpc_code}`: finished calls by gRPC
//!   status code;
//! - `discount_grpc_server_handling_seconds{grpc_method}`: time from request to status;
//! - `discount_trace_spans_total{outcome}`: trace spans `exported`, `failed` (the
//!   collector refused or was unreachable), `dropped` (the export queue was full);
//! - `discount_tls_certificate_expiry_timestamp_seconds{certificate}`: when the `server`
//!   certificate and the `ca` expire (Unix time);
//! - `discount_tls_reloads_total{outcome}`: changed TLS files `ok` (in use) or `rejected`.
//!
//! The same layer starts each call's OpenTelemetry server span, continuing the caller's
//! trace (W3C `traceparent` in the metadata), and ends it with the status code: both need
//! the code, which is read once, here. Health checks get no span (a probe every second
//! would bury the calls that matter); they are still counted.
//!
//! Calls are counted by a tower layer around the whole gRPC server ([`MetricsLayer`]), so a
//! request that never reaches the handler also counts, under the code tonic gave it (an
//! undecodable message, an unknown method). The code is read from the response's trailers,
//! or from its headers for a "trailers-only" error. A call whose client went away before
//! the status was sent counts as `CANCELLED`. `grpc_method` is one of the methods this
//! server has, or `other`: an arbitrary path must not create a new time series.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use ecommerce::metrics::{ExpiryGauges, ReloadCounters};
use ecommerce::telemetry::export::SpanCounters;
use ecommerce::telemetry::propagation;
use ecommerce::tls_reload::ReloadMetrics;
use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tonic::Code;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Methods counted by name; anything else is `other`.
const KNOWN_METHODS: [&str; 3] = [
    "/ecommerce.Discount/ApplyDiscount",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    grpc_method: &'static str,
    grpc_code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_method: &'static str,
}

/// The service's metrics and their registry. Cheap to clone: handles share the values.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    handled: Family<CallLabels, Counter>,
    handling_seconds: Family<MethodLabels, Histogram>,
    spans: SpanCounters,
    /// When the certificates expire (set at start, and on reload).
    pub certificates: ExpiryGauges,
    /// Changes of the TLS files, used or refused.
    pub tls_reloads: ReloadCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the discount metrics, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("discount");
        let handled = Family::<CallLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "gRPC calls finished, by method and status code",
            handled.clone(),
        );
        // 50 µs to about 1.6 s: a discount call takes well under a millisecond when healthy.
        let handling_seconds = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register(
            "grpc_server_handling_seconds",
            "Time from a gRPC request to its status, by method",
            handling_seconds.clone(),
        );
        let spans = SpanCounters::register(&mut registry);
        let certificates = ExpiryGauges::register(&mut registry);
        let tls_reloads = ReloadCounters::register(&mut registry);
        Self {
            tls_reloads,
            registry: Arc::new(registry),
            handled,
            handling_seconds,
            spans,
            certificates,
        }
    }

    /// What TLS reloading reports to.
    pub fn tls_reload(&self) -> ReloadMetrics {
        ReloadMetrics {
            certificates: self.certificates.clone(),
            reloads: self.tls_reloads.clone(),
        }
    }

    /// The metrics, and their content type, in the format `accept` prefers (see
    /// [`ecommerce::metrics::format`]).
    pub fn encode(&self, accept: Option<&str>) -> (&'static str, String) {
        self.spans.catch_up();
        ecommerce::metrics::encode(&self.registry, accept)
    }

    fn record(&self, method: &'static str, code: Code, started: Instant) {
        self.handled
            .get_or_create(&CallLabels {
                grpc_method: method,
                grpc_code: code_name(code),
            })
            .inc();
        self.handling_seconds
            .get_or_create(&MethodLabels {
                grpc_method: method,
            })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// The canonical name of a status code, as the gRPC specification spells it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|value| Code::from_bytes(value.as_bytes()))
}

/// Counts every call through the server it wraps (see the module docs).
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Metrics,
}

impl MetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`MetricsLayer`] makes.
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for MetricsService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body<Data = Bytes> + Unpin,
{
    type Response = http::Response<MetricsBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        let method = KNOWN_METHODS
            .iter()
            .find(|known| **known == path)
            .copied()
            .unwrap_or("other");
        let span = server_span(path, request.headers());
        // Without spans, the caller's context is kept for the call's log lines.
        let incoming = propagation::incoming(request.headers());
        let mut pending = Some(PendingCall {
            metrics: self.metrics.clone(),
            method,
            started: Instant::now(),
            span: span.clone(),
        });
        let response = match &span {
            Some(span) => span.in_scope(|| self.inner.call(request)),
            None => self.inner.call(request),
        };
        let answered = async move {
            let response = response.await?;
            // A trailers-only response carries its status in the headers.
            if let Some(code) = grpc_status(response.headers())
                && let Some(call) = pending.take()
            {
                call.finish(code);
            }
            Ok(response.map(|inner| MetricsBody { inner, pending }))
        };
        let answered = propagation::scope(incoming, answered);
        match span {
            Some(span) => Box::pin(answered.instrument(span)),
            None => Box::pin(answered),
        }
    }
}

/// The server span of a call (`None` for health checks): named and shaped by the
/// semantic conventions for RPC, its parent the caller's span if the metadata names one.
/// The handler records the request's fields on it (`request_id`, `customer_id`,
/// `product_id`), and its log lines are span events.
fn server_span(path: &str, headers: &http::HeaderMap) -> Option<tracing::Span> {
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

/// A call whose status has not been seen yet.
struct PendingCall {
    metrics: Metrics,
    method: &'static str,
    started: Instant,
    span: Option<tracing::Span>,
}

impl PendingCall {
    fn finish(self, code: Code) {
        self.metrics.record(self.method, code, self.started);
        if let Some(span) = self.span.as_ref().filter(|_| propagation::spans_enabled()) {
            span.set_attribute("rpc.grpc.status_code", code as i64);
            if server_error(code) {
                span.record("otel.status_code", "error");
            }
        }
    }
}

/// A response body that records its call when the status goes by (or when it is dropped
/// first: the client went away).
pub struct MetricsBody<B> {
    inner: B,
    pending: Option<PendingCall>,
}

impl<B> Body for MetricsBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status)
                    && let Some(call) = self.pending.take()
                {
                    call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = self.pending.take() {
                    call.finish(Code::Internal);
                }
            }
            Poll::Ready(None) => {
                // The body ended without a status: not a valid gRPC response.
                if let Some(call) = self.pending.take() {
                    call.finish(Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MetricsBody<B> {
    fn drop(&mut self) {
        if let Some(call) = self.pending.take() {
            call.finish(Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_method_and_canonical_code() {
        let metrics = Metrics::new();
        metrics.record(
            "/ecommerce.Discount/ApplyDiscount",
            Code::Ok,
            Instant::now(),
        );
        metrics.record(
            "/ecommerce.Discount/ApplyDiscount",
            Code::InvalidArgument,
            Instant::now(),
        );
        metrics.record(
            "/ecommerce.Discount/ApplyDiscount",
            Code::Ok,
            Instant::now(),
        );
        let (_, text) = metrics.encode(None);
        assert!(text.contains(r#"discount_grpc_server_handled_total{grpc_method="/ecommerce.Discount/ApplyDiscount",grpc_code="OK"} 2"#), "{text}");
        assert!(
            text.contains(r#"grpc_code="INVALID_ARGUMENT"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"discount_grpc_server_handling_seconds_count{grpc_method="/ecommerce.Discount/ApplyDiscount"} 3"#), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
