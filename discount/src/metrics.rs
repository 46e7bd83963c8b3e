//! Prometheus metrics of the discount service (served on a plaintext listener of their own
//! by `ecommerce::metrics::server`; the gRPC port speaks TLS gRPC only).
//!
//! - `discount_grpc_server_handled_total{grpc_method, grpc_code}`: finished calls by gRPC
//!   status code;
//! - `discount_grpc_server_handling_seconds{grpc_method}`: time from request to status;
//! - `discount_trace_spans_total{outcome}`: trace spans `exported`, `failed` (the
//!   collector refused or was unreachable), `dropped` (the export queue was full);
//! - `discount_tls_certificate_expiry_timestamp_seconds{certificate}`: when the `server`
//!   certificate and the `ca` expire (Unix time);
//! - `discount_tls_reloads_total{outcome}`: changed TLS files `ok` (in use) or `rejected`;
//! - `discount_faults_injected_total{fault}`: calls a fault flag acted on (`error`,
//!   `delay`, `hang`, `cpu`; see [`crate::faults`]), each series from its first fault;
//! - `discount_fault_flags_loads_total{outcome}`: flag files read `ok`, or `rejected`
//!   (missing, unreadable, malformed: the last good flags stay).
//!
//! Calls are counted by [`crate::observe`], around the whole gRPC server, so a request
//! that never reaches the handler also counts. `grpc_method` is one of the methods this
//! server has, or `other`: an arbitrary path must not create a new time series.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ecommerce::metrics::{ExpiryGauges, ReloadCounters};
use ecommerce::telemetry::export::SpanCounters;
use ecommerce::tls_reload::ReloadMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tonic::Code;

/// The method nearly every call is for.
const APPLY_DISCOUNT: &str = "/ecommerce.Discount/ApplyDiscount";

/// Methods counted by name; anything else is `other`.
const KNOWN_METHODS: [&str; 3] = [
    APPLY_DISCOUNT,
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    grpc_method: &'static str,
    grpc_code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    fault: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_method: &'static str,
}

/// The service's metrics and their registry. Cheap to clone: handles share the values.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry, and the families only the fault flags use: one pointer, because the
    /// server's service stack (and so this) is cloned for every call.
    shared: Arc<Shared>,
    handled: Family<CallLabels, Counter>,
    handling_seconds: Family<MethodLabels, Histogram>,
    /// The series of a successful `ApplyDiscount` call, nearly every call's: looked up in
    /// the families once (at the first such call, so that /metrics shows no series before
    /// it has a value), not at every call (two hashes and two locks).
    applied: Arc<OnceLock<(Counter, Histogram)>>,
    spans: SpanCounters,
    /// When the certificates expire (set at start, and on reload).
    pub certificates: ExpiryGauges,
    /// Changes of the TLS files, used or refused.
    pub tls_reloads: ReloadCounters,
}

/// What every clone of [`Metrics`] shares behind one pointer.
#[derive(Debug)]
struct Shared {
    registry: Registry,
    faults: Family<FaultLabels, Counter>,
    flag_loads: Family<OutcomeLabels, Counter>,
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
        let faults = Family::<FaultLabels, Counter>::default();
        registry.register(
            "faults_injected",
            "Calls a fault flag acted on, by fault",
            faults.clone(),
        );
        let flag_loads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "fault_flags_loads",
            "Fault flag files read, ok or rejected (the last good flags stay)",
            flag_loads.clone(),
        );
        let spans = SpanCounters::register(&mut registry);
        let certificates = ExpiryGauges::register(&mut registry);
        let tls_reloads = ReloadCounters::register(&mut registry);
        Self {
            tls_reloads,
            shared: Arc::new(Shared {
                registry,
                faults,
                flag_loads,
            }),
            handled,
            handling_seconds,
            applied: Arc::default(),
            spans,
            certificates,
        }
    }

    /// Counts a call that a fault flag acted on with `fault`.
    pub fn fault_injected(&self, fault: &'static str) {
        self.shared
            .faults
            .get_or_create(&FaultLabels { fault })
            .inc();
    }

    /// Counts a reading of the fault flag file: `ok`, or refused.
    pub fn fault_flags_loaded(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "rejected" };
        self.shared
            .flag_loads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
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
        ecommerce::metrics::encode(&self.shared.registry, accept)
    }

    /// Counts a finished call of `method` (a [`method_label`]) and its time since `started`.
    pub fn record(&self, method: &'static str, code: Code, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        let series = || {
            (
                self.handled
                    .get_or_create(&CallLabels {
                        grpc_method: method,
                        grpc_code: code_name(code),
                    })
                    .clone(),
                self.handling_seconds
                    .get_or_create(&MethodLabels {
                        grpc_method: method,
                    })
                    .clone(),
            )
        };
        let looked_up;
        let (handled, handling_seconds) = if code == Code::Ok && method == APPLY_DISCOUNT {
            self.applied.get_or_init(series)
        } else {
            looked_up = series();
            &looked_up
        };
        handled.inc();
        handling_seconds.observe(seconds);
    }
}

/// The `grpc_method` label of a request path: a method this server has, or `other`.
pub fn method_label(path: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|known| **known == path)
        .copied()
        .unwrap_or("other")
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
