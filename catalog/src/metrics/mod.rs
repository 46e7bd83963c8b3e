//! Prometheus metrics of the catalog, served at `GET /metrics`.
//!
//! | metric | what |
//! |---|---|
//! | `catalog_http_requests_total{route, status}` | finished HTTP requests |
//! | `catalog_http_request_duration_seconds{route}` | time to answer, histogram (with a bucket at the latency objective, 50 ms) |
//! | `catalog_products_responses_total{discount_status}` | `/products` answers by `X-Discount-Status`: `complete`, `partial`, `unavailable`, `skipped` (the discount coverage objective's numbers) |
//! | `catalog_http_requests_in_flight` | requests being answered now |
//! | `catalog_discount_calls_total{outcome}` | discount calls by final outcome: `applied`, `no_discount`, `timeout_remote` (the replica's fault), `timeout_local` (the catalog was overloaded), `unavailable`, `overloaded` (`RESOURCE_EXHAUSTED`), `error`, `breaker_open` (no replica accepting calls), `no_budget` (too little of the deadline left to start) |
//! | `catalog_discount_replica_calls_total{replica, result}` | calls (attempts: hedges and retries too) by replica address, `ok` or `failed` |
//! | `catalog_discount_fallbacks_total` | products served at full price because their call failed |
//! | `catalog_discount_breakers{state}` | discount replicas by breaker state: `closed`, `half_open` (cool-down over, waiting for a health check), `open` |
//! | `catalog_discount_breaker_openings_total` | times a replica's breaker opened |
//! | `catalog_discount_replicas{health}` | discount replicas by health check: `unknown`, `serving`, `not_serving`, `unreachable` |
//! | `catalog_discount_retries_total` | calls tried again on another replica after `UNAVAILABLE` |
//! | `catalog_discount_hedges_total`, `catalog_discount_hedges_won_total` | calls also sent to a second replica, and those whose answer came first |
//! | `catalog_discount_budget_exhausted_total` | retries and hedges not sent: their 10% budget was spent |
//! | `catalog_admission_limit` | the adaptive limit on admitted discount calls |
//! | `catalog_admission_in_flight_calls` | permits held by admitted requests |
//! | `catalog_admission_queued` | priced requests waiting for admission |
//! | `catalog_admission_wait_seconds` | time priced requests waited for admission (admitted or not), histogram |
//! | `catalog_requests_admitted_total` | priced requests admitted |
//! | `catalog_requests_shed_total{reason}` | priced requests answered 503: `queue_timeout`, `queue_full` |
//! | `catalog_admitted_request_duration_seconds` | time to answer an admitted priced request, from its arrival, histogram (fine buckets, for latency percentiles) |
//! | `catalog_trace_spans_total{outcome}` | trace spans `exported`, `failed` (the collector refused or was unreachable), `dropped` (the export queue was full) |
//! | `catalog_tls_certificate_expiry_timestamp_seconds{certificate}` | when the trusted `ca` (the earliest, for a bundle) and the `client` certificate expire (Unix time) |
//! | `catalog_tls_reloads_total{outcome}` | changed TLS files `ok` (in use for new connections) or `rejected` (the previous set kept) |
//! | `catalog_scheduler_lag_seconds` | how late the catalog's runtime runs (max over the last second) |
//!
//! `route` is one of the catalog's paths or `other` ([`crate::routes::route_label`]), so
//! that arbitrary paths cannot create new time series.

mod admission;
mod discounts;
mod http;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use ecommerce::metrics::{ExpiryGauges, ReloadCounters};
use ecommerce::telemetry::export::SpanCounters;
use ecommerce::tls_reload::ReloadMetrics;

pub use self::admission::AdmissionMetrics;
pub use self::discounts::DiscountMetrics;
pub use self::http::{HttpMetrics, InFlight};
use crate::discounts::ClientStats;
use crate::overload::admission::Admission;

/// The catalog's metrics and their registry, each group registered by its module. Cheap
/// to clone: handles share the values.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// `catalog_http_*`.
    pub http: HttpMetrics,
    /// The discount calls and the client's state.
    pub discounts: DiscountMetrics,
    /// Admission control.
    pub admission: AdmissionMetrics,
    lag: Gauge<f64, AtomicU64>,
    spans: SpanCounters,
    /// When the certificates the catalog relies on expire (set at start, and on reload).
    pub certificates: ExpiryGauges,
    /// Changes of the TLS files, used or refused.
    pub tls_reloads: ReloadCounters,
    /// Held while the values taken at scrape time are written, so that two scrapes at once
    /// cannot count a counter's catch-up twice.
    scrape: Arc<Mutex<()>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every catalog metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("catalog");
        let http = HttpMetrics::register(&mut registry);
        let discounts = DiscountMetrics::register(&mut registry);
        let admission = AdmissionMetrics::register(&mut registry);
        let lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "scheduler_lag_seconds",
            "How late the catalog's runtime runs: the most over the last second",
            lag.clone(),
        );
        let spans = SpanCounters::register(&mut registry);
        let certificates = ExpiryGauges::register(&mut registry);
        let tls_reloads = ReloadCounters::register(&mut registry);
        Self {
            registry: Arc::new(registry),
            http,
            discounts,
            admission,
            lag,
            spans,
            certificates,
            tls_reloads,
            scrape: Arc::new(Mutex::new(())),
        }
    }

    /// What TLS reloading reports to.
    pub fn tls_reload(&self) -> ReloadMetrics {
        ReloadMetrics {
            certificates: self.certificates.clone(),
            reloads: self.tls_reloads.clone(),
        }
    }

    /// The metrics, and their content type, in the format `accept` prefers, with the values
    /// that live elsewhere (the discount client's `stats`, the `admission` controller's
    /// state) brought up to date first.
    pub fn encode(
        &self,
        stats: &ClientStats,
        admission: &Admission,
        accept: Option<&str>,
    ) -> (&'static str, String) {
        let _scrape = self
            .scrape
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.discounts.catch_up(stats);
        self.admission.catch_up(admission);
        self.lag.set(stats.lag.as_secs_f64());
        self.spans.catch_up();
        ecommerce::metrics::encode(&self.registry, accept)
    }
}
