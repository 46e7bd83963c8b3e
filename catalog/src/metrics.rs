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

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use ecommerce::metrics::{ExpiryGauges, ReloadCounters};
use ecommerce::telemetry::export::SpanCounters;
use ecommerce::tls_reload::ReloadMetrics;

use crate::discounts::{BreakerState, CallError, ClientStats, DiscountStatus, Health};
use crate::overload::admission::{Admission, Shed};

/// The bounds of `catalog_http_request_duration_seconds`, in seconds.
const DURATION_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3,
    0.5, 1.0, 2.5,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    health: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiscountStatusLabels {
    discount_status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Counters whose totals the discount client keeps; they are brought up to date at scrape
/// time.
#[derive(Debug, Clone, Default)]
struct ClientCounters {
    retries: Counter,
    hedges: Counter,
    hedges_won: Counter,
    budget_exhausted: Counter,
    breaker_openings: Counter,
}

impl ClientCounters {
    fn catch_up(&self, stats: &ClientStats) {
        for (counter, total) in [
            (&self.retries, stats.retries),
            (&self.hedges, stats.hedges),
            (&self.hedges_won, stats.hedges_won),
            (&self.budget_exhausted, stats.budget_exhausted),
            (&self.breaker_openings, stats.breaker_openings),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }
}

/// The admission controller's gauges, set at scrape time.
#[derive(Debug, Clone, Default)]
struct AdmissionGauges {
    limit: Gauge,
    in_flight: Gauge,
    queued: Gauge,
}

/// The catalog's metrics and their registry. Cheap to clone: handles share the values.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    in_flight: Gauge,
    calls: Family<OutcomeLabels, Counter>,
    replica_calls: Family<ReplicaLabels, Counter>,
    products_responses: Family<DiscountStatusLabels, Counter>,
    fallbacks: Counter,
    breakers: Family<StateLabels, Gauge>,
    replicas: Family<HealthLabels, Gauge>,
    client: ClientCounters,
    admission: AdmissionGauges,
    admission_wait: Histogram,
    admitted: Counter,
    shed: Family<ReasonLabels, Counter>,
    admitted_duration: Histogram,
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
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        // 50 µs to 2.5 s, with bounds at the latency objective (50 ms) and at the default
        // discount deadline (300 ms): the alert rules count the requests under them.
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS.iter().copied())
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being answered now",
            in_flight.clone(),
        );
        let calls = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "discount_calls",
            "Discount calls, by outcome",
            calls.clone(),
        );
        let replica_calls = Family::<ReplicaLabels, Counter>::default();
        registry.register(
            "discount_replica_calls",
            "Discount calls (hedges and retries included) by replica address and result",
            replica_calls.clone(),
        );
        let products_responses = Family::<DiscountStatusLabels, Counter>::default();
        registry.register(
            "products_responses",
            "/products answers, by X-Discount-Status",
            products_responses.clone(),
        );
        // Every value from the start, at zero: an alert's rate() needs the series to exist
        // before its first increment.
        for status in DiscountStatus::ALL {
            products_responses
                .get_or_create(&DiscountStatusLabels {
                    discount_status: status.name(),
                })
                .inc_by(0);
        }
        let fallbacks = Counter::default();
        registry.register(
            "discount_fallbacks",
            "Products served at full price because their discount call failed",
            fallbacks.clone(),
        );
        let breakers = Family::<StateLabels, Gauge>::default();
        registry.register(
            "discount_breakers",
            "Discount replicas, by circuit breaker state",
            breakers.clone(),
        );
        let client = ClientCounters::default();
        registry.register(
            "discount_breaker_openings",
            "Times a discount replica's circuit breaker opened",
            client.breaker_openings.clone(),
        );
        let replicas = Family::<HealthLabels, Gauge>::default();
        registry.register(
            "discount_replicas",
            "Discount replicas, by what their health checks found",
            replicas.clone(),
        );
        registry.register(
            "discount_retries",
            "Discount calls tried again on another replica after UNAVAILABLE",
            client.retries.clone(),
        );
        registry.register(
            "discount_hedges",
            "Discount calls also sent to a second replica after the hedge delay",
            client.hedges.clone(),
        );
        registry.register(
            "discount_hedges_won",
            "Hedged discount calls whose second answer came first",
            client.hedges_won.clone(),
        );
        registry.register(
            "discount_budget_exhausted",
            "Retries and hedges not sent because their budget was spent",
            client.budget_exhausted.clone(),
        );
        let admission = AdmissionGauges::default();
        registry.register(
            "admission_limit",
            "The adaptive limit on discount calls of admitted requests",
            admission.limit.clone(),
        );
        registry.register(
            "admission_in_flight_calls",
            "Discount call permits held by admitted requests",
            admission.in_flight.clone(),
        );
        registry.register(
            "admission_queued",
            "Priced requests waiting for admission",
            admission.queued.clone(),
        );
        // 1 ms to about 1 s.
        let admission_wait = Histogram::new(exponential_buckets(0.001, 2.0, 11));
        registry.register(
            "admission_wait_seconds",
            "Time priced requests waited for admission, admitted or shed",
            admission_wait.clone(),
        );
        let admitted = Counter::default();
        registry.register(
            "requests_admitted",
            "Priced /products requests admitted",
            admitted.clone(),
        );
        let shed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "requests_shed",
            "Priced /products requests answered 503 without being admitted, by reason",
            shed.clone(),
        );
        for reason in [Shed::QueueTimeout, Shed::QueueFull] {
            shed.get_or_create(&ReasonLabels {
                reason: reason.reason(),
            })
            .inc_by(0);
        }
        // 0.5 ms to about 3.6 s, in steps of a quarter: fine enough for percentiles.
        let admitted_duration = Histogram::new(exponential_buckets(0.000_5, 1.25, 40));
        registry.register(
            "admitted_request_duration_seconds",
            "Time to answer an admitted priced request, from its arrival (queue wait included)",
            admitted_duration.clone(),
        );
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
            tls_reloads,
            registry: Arc::new(registry),
            spans,
            certificates,
            requests,
            duration,
            in_flight,
            calls,
            replica_calls,
            products_responses,
            fallbacks,
            breakers,
            replicas,
            client,
            admission,
            admission_wait,
            admitted,
            shed,
            admitted_duration,
            lag,
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

    /// Counts one request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Records an answered request.
    pub fn request_done(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        self.duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one discount call's outcome, and a fallback if it failed.
    pub fn discount_call<T>(&self, result: &Result<Option<T>, CallError>) {
        let outcome = match result {
            Ok(Some(_)) => "applied",
            Ok(None) => "no_discount",
            Err(error) => error.outcome(),
        };
        self.calls.get_or_create(&OutcomeLabels { outcome }).inc();
        if result.is_err() {
            self.fallbacks.inc();
        }
    }

    /// Records a `/products` answer with its `X-Discount-Status`.
    pub fn products_answered(&self, status: DiscountStatus) {
        self.products_responses
            .get_or_create(&DiscountStatusLabels {
                discount_status: status.name(),
            })
            .inc();
    }

    /// Records a priced request admitted after waiting `waited`.
    pub fn admitted(&self, waited: Duration) {
        self.admitted.inc();
        self.admission_wait.observe(waited.as_secs_f64());
    }

    /// Records a priced request shed for `reason` after waiting `waited`.
    pub fn shed(&self, reason: Shed, waited: Duration) {
        self.shed
            .get_or_create(&ReasonLabels {
                reason: reason.reason(),
            })
            .inc();
        self.admission_wait.observe(waited.as_secs_f64());
    }

    /// Records the time to answer an admitted priced request, from its arrival.
    pub fn admitted_request_done(&self, elapsed: Duration) {
        self.admitted_duration.observe(elapsed.as_secs_f64());
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
        for state in [
            BreakerState::Closed,
            BreakerState::HalfOpen,
            BreakerState::Open,
        ] {
            let count = stats.breakers.iter().filter(|s| **s == state).count();
            self.breakers
                .get_or_create(&StateLabels {
                    state: state.name(),
                })
                .set(count as i64);
        }
        for health in [
            Health::Unknown,
            Health::Serving,
            Health::NotServing,
            Health::Unreachable,
        ] {
            let count = stats.health.iter().filter(|h| **h == health).count();
            self.replicas
                .get_or_create(&HealthLabels {
                    health: health.name(),
                })
                .set(count as i64);
        }
        self.client.catch_up(stats);
        for &(addr, ok, failed) in &stats.replica_calls {
            for (result, total) in [("ok", ok), ("failed", failed)] {
                let counter = self.replica_calls.get_or_create(&ReplicaLabels {
                    replica: addr.to_string(),
                    result,
                });
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
        self.admission.limit.set(admission.limit() as i64);
        self.admission.in_flight.set(admission.in_flight() as i64);
        self.admission.queued.set(admission.queued() as i64);
        self.lag.set(stats.lag.as_secs_f64());
        self.spans.catch_up();
        ecommerce::metrics::encode(&self.registry, accept)
    }
}

/// Decrements the in-flight gauge when dropped (also when a request is abandoned).
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
