//! Prometheus metrics of the catalog, served at `GET /metrics`.
//!
//! | metric | what |
//! |---|---|
//! | `catalog_http_requests_total{route, status}` | finished HTTP requests |
//! | `catalog_http_request_duration_seconds{route}` | time to answer, histogram |
//! | `catalog_http_requests_in_flight` | requests being answered now |
//! | `catalog_discount_calls_total{outcome}` | discount calls: `applied`, `no_discount`, `timeout`, `unavailable`, `error`, `breaker_open` |
//! | `catalog_discount_fallbacks_total` | products served at full price because their call failed |
//! | `catalog_discount_breakers{state}` | discount replicas by breaker state: `closed`, `half_open`, `open` |
//!
//! `route` is one of the catalog's paths ([`PATHS`]) or `other`, so that arbitrary paths cannot create
//! new time series.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::discounts::CallError;
use crate::discounts::breaker::BreakerState;
use crate::routes::PATHS;

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

/// The catalog's metrics and their registry. Cheap to clone: handles share the values.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    in_flight: Gauge,
    calls: Family<OutcomeLabels, Counter>,
    fallbacks: Counter,
    breakers: Family<StateLabels, Gauge>,
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
        // 50 µs to about 1.6 s.
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
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
        Self {
            registry: Arc::new(registry),
            requests,
            duration,
            in_flight,
            calls,
            fallbacks,
            breakers,
        }
    }

    /// The label for `path`.
    pub fn route(path: &str) -> &'static str {
        PATHS
            .iter()
            .find(|route| **route == path)
            .copied()
            .unwrap_or("other")
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
            Err(CallError::Timeout) => "timeout",
            Err(CallError::Unavailable(_)) => "unavailable",
            Err(CallError::CircuitOpen) => "breaker_open",
            Err(CallError::Status { .. } | CallError::BadAnswer(_)) => "error",
        };
        self.calls.get_or_create(&OutcomeLabels { outcome }).inc();
        if result.is_err() {
            self.fallbacks.inc();
        }
    }

    /// The metrics, and their content type, in the format `accept` prefers, with the
    /// breaker gauges set from `breakers` (the replicas' states now).
    pub fn encode(
        &self,
        breakers: impl IntoIterator<Item = BreakerState>,
        accept: Option<&str>,
    ) -> (&'static str, String) {
        let mut counts = [0i64; 3];
        for state in breakers {
            counts[state as usize] += 1;
        }
        for (state, count) in [
            BreakerState::Closed,
            BreakerState::HalfOpen,
            BreakerState::Open,
        ]
        .into_iter()
        .zip(counts)
        {
            self.breakers
                .get_or_create(&StateLabels {
                    state: state.name(),
                })
                .set(count);
        }
        ecommerce::metrics_format::encode(&self.registry, accept)
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
